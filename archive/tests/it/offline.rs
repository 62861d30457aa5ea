//! Offline verification against real signatures: packets signed with the development PKI's
//! agency keys, receipts signed with its hub key, CRLs signed by its CA — and every kind of
//! tampering the records issue names, each refused naming the file.

use std::collections::BTreeMap;

use docaxis_archive as archive;
use std::path::PathBuf;

use archive::container::{self, FileOut, MANIFEST_PATH};
use archive::manifest::{EVIDENCE_PATH, Manifest, sha256_hex};
use archive::{Input, PacketIn, Records, Role, Verdict, VerifyOptions};
use dsig::SigningIdentity;
use dsig::receipt::{HubReceipt, ReceiptKind};
use edxml::{Packet, ReadOptions};
use time::{Duration, OffsetDateTime};

fn certs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certs")
}

fn identity(key: &str, cert: &str) -> SigningIdentity {
    let key = std::fs::read(certs().join(key)).unwrap();
    let cert = std::fs::read(certs().join(cert)).unwrap();
    SigningIdentity::from_pem(&key, &cert).unwrap()
}

fn agency(code: &str) -> SigningIdentity {
    identity(
        &format!("agencies/{code}.key.pem"),
        &format!("agencies/{code}.pem"),
    )
}

fn hub() -> SigningIdentity {
    identity("hub.key.pem", "hub.pem")
}

fn ca_der() -> Vec<u8> {
    let pem = std::fs::read(certs().join("ca.pem")).unwrap();
    dsig::pem::blocks(&pem, "CERTIFICATE").unwrap().remove(0)
}

/// A CRL of the development CA issued now, revoking `revoked` (certificate DER, when).
fn crl(revoked: &[(&[u8], OffsetDateTime)]) -> Vec<u8> {
    use rcgen::{
        CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair, RevokedCertParams,
        SerialNumber,
    };
    let key_pem = std::fs::read_to_string(certs().join("ca.key.pem")).unwrap();
    let key = KeyPair::from_pem(&key_pem).unwrap();
    let ca = ca_der();
    let issuer = Issuer::from_ca_cert_der(&ca.clone().into(), key).unwrap();
    let now = OffsetDateTime::now_utc();
    let revoked_certs = revoked
        .iter()
        .map(|(der, at)| {
            let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
            RevokedCertParams {
                serial_number: SerialNumber::from_slice(cert.raw_serial()),
                revocation_time: *at,
                reason_code: None,
                invalidity_date: None,
            }
        })
        .collect();
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + Duration::days(30),
        crl_number: SerialNumber::from(now.unix_timestamp() as u64),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    params.signed_by(&issuer).unwrap().der().to_vec()
}

fn strict_packet(file: &str) -> Vec<u8> {
    let bytes = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/conformance")
            .join(file),
    )
    .unwrap();
    let packet = edxml::read(&bytes, &ReadOptions::default()).unwrap().packet;
    edxml::write(&packet).unwrap()
}

fn receipt(
    kind: ReceiptKind,
    packet: &[u8],
    at: OffsetDateTime,
    accepted: &[&str],
    delivered_to: Option<&str>,
    signer: &SigningIdentity,
) -> Vec<u8> {
    let parsed = edxml::read(packet, &ReadOptions::default()).unwrap().packet;
    let (from, kind_text, document_id) = match &parsed {
        Packet::Document(d) => (
            d.from.organ_id.to_string(),
            "document",
            d.document_id.to_string(),
        ),
        Packet::Status(s) => (
            s.from.organ_id.to_string(),
            "status",
            s.response_for.document_id.to_string(),
        ),
    };
    let r = HubReceipt {
        kind,
        packet_id: sha256_hex(packet),
        packet_kind: kind_text.into(),
        from,
        document_id,
        hub_time: at,
        accepted: accepted.iter().map(|s| s.to_string()).collect(),
        refused: Vec::new(),
        delivered_to: delivered_to.map(str::to_string),
    };
    dsig::sign_root(&r.to_xml(), signer).unwrap()
}

struct Story {
    document: Vec<u8>,
    status: Vec<u8>,
    hub_time: OffsetDateTime,
}

fn story() -> Story {
    Story {
        document: dsig::sign_packet(
            &strict_packet("document_new.edxml"),
            &agency("000.00.00.G22"),
        )
        .unwrap(),
        status: dsig::sign_packet(
            &strict_packet("status_03_accepted.edxml"),
            &agency("000.00.00.H41"),
        )
        .unwrap(),
        hub_time: OffsetDateTime::now_utc() - Duration::minutes(10),
    }
}

fn input(s: &Story, crls: Vec<Vec<u8>>) -> Input {
    let h = hub();
    let t = s.hub_time;
    let to = ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"];
    Input {
        node: "000.00.00.G22".into(),
        document_id: "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT".into(),
        records: Records {
            direction: "sent".into(),
            register_number: 1,
            received_at: None,
            state: "open".into(),
        },
        packets: vec![
            PacketIn {
                role: Role::Document,
                bytes: s.document.clone(),
                submission_receipt: Some(receipt(
                    ReceiptKind::Submission,
                    &s.document,
                    t,
                    &to,
                    None,
                    &h,
                )),
                delivery_receipts: vec![receipt(
                    ReceiptKind::Delivery,
                    &s.document,
                    t + Duration::seconds(2),
                    &[],
                    Some("000.00.00.H41"),
                    &h,
                )],
            },
            PacketIn {
                role: Role::Status,
                bytes: s.status.clone(),
                submission_receipt: Some(receipt(
                    ReceiptKind::Submission,
                    &s.status,
                    t + Duration::seconds(5),
                    &["000.00.00.G22"],
                    None,
                    &h,
                )),
                delivery_receipts: Vec::new(),
            },
        ],
        crls,
        created: OffsetDateTime::now_utc(),
    }
}

fn opts() -> VerifyOptions {
    VerifyOptions {
        anchors: vec![ca_der()],
        ..VerifyOptions::default()
    }
}

fn valid_container() -> (Story, Vec<u8>) {
    let s = story();
    let bytes = archive::build(&input(&s, vec![crl(&[])])).unwrap();
    (s, bytes)
}

/// Rewrites a container: `change` edits the entries; with `relist`, the evidence manifest's
/// digests are brought up to date (an attacker who also edits the manifest).
fn rewrite(
    bytes: &[u8],
    relist: bool,
    change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>, &mut Manifest),
) -> Vec<u8> {
    let mut entries = container::read(bytes, &Default::default()).unwrap();
    let mut manifest = Manifest::parse(&entries[EVIDENCE_PATH]).unwrap();
    change(&mut entries, &mut manifest);
    if relist {
        for f in &mut manifest.files {
            if let Some(b) = entries.get(&f.path) {
                f.sha256 = sha256_hex(b);
            }
        }
        entries.insert(EVIDENCE_PATH.into(), manifest.to_xml());
    }
    entries.remove(MANIFEST_PATH);
    let files: Vec<FileOut> = entries
        .into_iter()
        .map(|(path, bytes)| FileOut {
            path,
            bytes,
            media_type: "application/xml",
        })
        .collect();
    container::write(&files).unwrap()
}

fn assert_refused(bytes: &[u8], verdict: Verdict, file: &str, words: &str) {
    let r = archive::verify(bytes, &opts());
    assert_eq!(r.verdict, verdict, "{:#?}", r.problems);
    assert!(
        r.problems.iter().any(
            |p| p.file.as_deref().is_some_and(|f| f.contains(file)) && p.reason.contains(words)
        ),
        "expected a problem with {file} saying {words:?}: {:#?}",
        r.problems
    );
}

#[test]
fn a_whole_container_verifies_offline_and_tells_the_story() {
    let (_, bytes) = valid_container();
    let r = archive::verify(&bytes, &opts());
    assert_eq!(r.verdict, Verdict::Valid, "{:#?}", r.problems);
    let d = r.document.as_ref().unwrap();
    assert_eq!(d.from, "000.00.00.G22");
    assert_eq!(d.number, "7816/VPCP-TTĐT");
    assert!(d.signer.as_deref().unwrap().contains("000.00.00.G22"));
    let kinds: Vec<&str> = r.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["accepted", "delivered", "status"]);
    assert!(r.events[2].text.contains("03"), "{:?}", r.events[2]);
    // Five signatures: two packets, three receipts.
    assert_eq!(r.signatures, 5);
    assert_eq!(r.crls, 1);
}

#[test]
fn each_kind_of_tampering_is_refused_naming_the_file() {
    let (s, bytes) = valid_container();
    // A changed byte, manifest left alone.
    let t = rewrite(&bytes, false, |e, _| {
        let p = e.get_mut("packets/01-document.edxml").unwrap();
        let i = p.len() / 2;
        p[i] ^= 0x01;
    });
    assert_refused(&t, Verdict::Invalid, "packets/01-document.edxml", "changed");
    // A changed word with the manifest updated too: the signature catches it.
    let t = rewrite(&bytes, true, |e, _| {
        let p = e.get_mut("packets/01-document.edxml").unwrap();
        let text = String::from_utf8(p.clone())
            .unwrap()
            .replacen("7816", "7817", 1);
        *p = text.into_bytes();
    });
    assert_refused(
        &t,
        Verdict::Invalid,
        "packets/01-document.edxml",
        "signature",
    );
    // A missing file.
    let t = rewrite(&bytes, false, |e, _| {
        e.remove("receipts/01-document.submission.xml");
    });
    assert_refused(
        &t,
        Verdict::Invalid,
        "receipts/01-document.submission.xml",
        "missing",
    );
    // An extra file.
    let t = rewrite(&bytes, false, |e, _| {
        e.insert("notes.txt".into(), b"trust me".to_vec());
    });
    assert_refused(&t, Verdict::Invalid, "notes.txt", "extra file");
    // A receipt for another packet: the status's receipt put in the document's place.
    let t = rewrite(&bytes, true, |e, _| {
        let other = e["receipts/02-status-03-000.00.00.H41.submission.xml"].clone();
        e.insert("receipts/01-document.submission.xml".into(), other);
    });
    assert_refused(
        &t,
        Verdict::Invalid,
        "receipts/01-document.submission.xml",
        "receipt for packet",
    );
    // A swapped certificate: another agency's in place of the signer's.
    let t = rewrite(&bytes, true, |e, m| {
        let signer = agency("000.00.00.G22").chain()[0].clone();
        let path = m
            .files
            .iter()
            .find(|f| f.role == Role::Certificate && e.get(&f.path) == Some(&signer))
            .unwrap()
            .path
            .clone();
        e.insert(path, agency("000.00.00.H14").chain()[0].clone());
    });
    assert_refused(&t, Verdict::Invalid, "certs/", "not in the validated chain");
    // A receipt forged by an agency (its certificate chains to the CA too).
    let mut forged = input(&s, vec![crl(&[])]);
    forged.packets[0].submission_receipt = Some(receipt(
        ReceiptKind::Submission,
        &s.document,
        s.hub_time,
        &["000.00.00.H41"],
        None,
        &agency("000.00.00.H14"),
    ));
    let t = archive::build(&forged).unwrap();
    assert_refused(
        &t,
        Verdict::Invalid,
        "01-document.submission.xml",
        "not by the hub",
    );
    // Not ASiC-E at all.
    let r = archive::verify(b"PK\x03\x04 not really", &opts());
    assert_eq!(r.verdict, Verdict::Invalid);
}

#[test]
fn revocation_counts_only_when_dated_before_the_hub_received_the_packet() {
    let s = story();
    let signer = agency("000.00.00.G22").chain()[0].clone();
    // Revoked an hour after the hub's receipt: the document stays valid.
    let later = archive::build(&input(
        &s,
        vec![crl(&[(&signer, s.hub_time + Duration::hours(1))])],
    ))
    .unwrap();
    let r = archive::verify(&later, &opts());
    assert_eq!(r.verdict, Verdict::Valid, "{:#?}", r.problems);
    // Revoked an hour before the hub received it: signed after its revocation.
    let earlier = archive::build(&input(
        &s,
        vec![crl(&[(&signer, s.hub_time - Duration::hours(1))])],
    ))
    .unwrap();
    assert_refused(
        &earlier,
        Verdict::Invalid,
        "packets/01-document.edxml",
        "revoked",
    );
    // No CRL at all: nothing says whether it was revoked then.
    let none = archive::build(&input(&s, Vec::new())).unwrap();
    assert_refused(
        &none,
        Verdict::CannotTell,
        "packets/01-document.edxml",
        "no CRL",
    );
    // … unless the verifier is handed one.
    let mut with = opts();
    with.extra_crls.push(crl(&[]));
    assert_eq!(archive::verify(&none, &with).verdict, Verdict::Valid);
}

#[test]
fn a_verifier_trusting_another_ca_refuses() {
    let (_, bytes) = valid_container();
    let other = rcgen::CertificateParams::new(vec!["other".to_string()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap()
        .der()
        .to_vec();
    let r = archive::verify(
        &bytes,
        &VerifyOptions {
            anchors: vec![other],
            ..VerifyOptions::default()
        },
    );
    assert_eq!(r.verdict, Verdict::Invalid, "{:#?}", r.problems);
}

/// The same story with its receipts signed as one batch, as hubs sign them now: valid, the
/// hub's certificate taken from the batch's tree head; a receipt edited afterwards (its
/// manifest digest updated too) no longer reaches the signed root, and one carrying another
/// receipt's proof neither.
#[test]
fn batch_signed_receipts_verify_and_an_edited_one_is_refused() {
    let s = story();
    let mut inp = input(&s, vec![crl(&[])]);
    let mut all: Vec<Vec<u8>> = Vec::new();
    for p in &inp.packets {
        all.extend(p.submission_receipt.iter().cloned());
        all.extend(p.delivery_receipts.iter().cloned());
    }
    let unsigned: Vec<Vec<u8>> = all
        .iter()
        .map(|r| HubReceipt::parse(r).unwrap().to_xml())
        .collect();
    let mut batched = dsig::batch::sign_batch(&unsigned, &hub(), s.hub_time)
        .unwrap()
        .into_iter();
    for p in &mut inp.packets {
        if let Some(r) = &mut p.submission_receipt {
            *r = batched.next().unwrap();
        }
        for r in &mut p.delivery_receipts {
            *r = batched.next().unwrap();
        }
    }
    let bytes = archive::build(&inp).unwrap();
    let r = archive::verify(&bytes, &opts());
    assert_eq!(r.verdict, Verdict::Valid, "{:#?}", r.problems);
    let entries = container::read(&bytes, &Default::default()).unwrap();
    assert!(
        entries.keys().any(|k| k.starts_with("certs/")),
        "the hub's certificate, carried by the tree head, is in the container"
    );

    let delivery = "receipts/01-document.delivery-000.00.00.H41.xml";
    let edited = rewrite(&bytes, true, |e, _| {
        let r = e.get_mut(delivery).unwrap();
        let text = String::from_utf8(r.clone()).unwrap();
        *r = text.replace("2015/09/30", "2015/09/29").into_bytes();
    });
    assert_refused(&edited, Verdict::Invalid, delivery, "not part of the batch");
    let other_proof = rewrite(&bytes, true, |e, _| {
        let donor = String::from_utf8(e["receipts/01-document.submission.xml"].clone()).unwrap();
        let proof = &donor[donor.find("<Batch>").unwrap()..donor.find("</Batch>").unwrap()];
        let r = e.get_mut(delivery).unwrap();
        let text = String::from_utf8(r.clone()).unwrap();
        let mine = &text[text.find("<Batch>").unwrap()..text.find("</Batch>").unwrap()];
        *r = text.replace(mine, proof).into_bytes();
    });
    assert_refused(
        &other_proof,
        Verdict::Invalid,
        delivery,
        "not part of the batch",
    );
}
