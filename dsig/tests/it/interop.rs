//! Interoperability with Debian's `xmlsec1` (OpenSSL): packets signed by DocAxis verify with
//! `xmlsec1 --verify` given only the root CA, packets signed by `xmlsec1` from a template in
//! the DocAxis profile verify with DocAxis, and a one-byte change to signed content is
//! refused by both.
//!
//! `xmlsec1` must be installed (`apt-get install xmlsec1`); these tests fail otherwise.

use crate::support;

use std::path::Path;
use std::process::Command;

use docaxis_dsig::{
    DigestAlgorithm, Refusal, SignatureAlgorithm, SigningIdentity, TrustStore, Verdict,
    VerifyPolicy, sign_packet, verify_packet,
};
use support::{Ca, KeyKind, Leaf, small_packet};

fn require_xmlsec1() {
    assert!(
        support::xmlsec1_available(),
        "xmlsec1 is not installed: install xmlsec1 (Debian: apt-get install xmlsec1) to run \
         the interoperability tests"
    );
}

struct Pki {
    root: Ca,
    inter: Ca,
    leaf: Leaf,
}

fn pki(kind: KeyKind) -> Pki {
    let root = Ca::root("DocAxis Interop Root");
    let inter = root.intermediate("DocAxis Interop Agency CA");
    let leaf = inter.leaf("000.00.00.G22", "Văn phòng Chính phủ", kind);
    Pki { root, inter, leaf }
}

fn trust(p: &Pki) -> TrustStore {
    TrustStore::from_pem(&[p.root.cert_pem.as_bytes()], &[]).unwrap()
}

fn identity(p: &Pki) -> SigningIdentity {
    SigningIdentity::from_pem(
        p.leaf.key_pem.as_bytes(),
        p.leaf.chain_pem(&[&p.inter]).as_bytes(),
    )
    .unwrap()
}

/// Runs `xmlsec1 --verify` with only the root as trusted; returns (success, output).
fn xmlsec_verify(dir: &Path, root_pem: &str, packet: &[u8]) -> (bool, String) {
    let root = dir.join("root.pem");
    let file = dir.join("packet.xml");
    std::fs::write(&root, root_pem).unwrap();
    std::fs::write(&file, packet).unwrap();
    let out = Command::new("xmlsec1")
        .arg("--verify")
        .arg("--trusted-pem")
        .arg(&root)
        .args(["--enabled-key-data", "x509"])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The DocAxis-profile template xmlsec1 fills in: empty values and one empty
/// `X509Certificate` that xmlsec1 expands into the key's certificates.
fn xmlsec_template(unsigned: &str, alg: SignatureAlgorithm) -> String {
    let sig = format!(
        r#"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
        <ds:SignedInfo>
          <ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
          <ds:SignatureMethod Algorithm="{}"/>
          <ds:Reference URI="">
            <ds:Transforms>
              <ds:Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
              <ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
            </ds:Transforms>
            <ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
            <ds:DigestValue/>
          </ds:Reference>
        </ds:SignedInfo>
        <ds:SignatureValue/>
        <ds:KeyInfo>
          <ds:X509Data>
            <ds:X509Certificate/>
          </ds:X509Data>
        </ds:KeyInfo>
      </ds:Signature>
    "#,
        alg.uri()
    );
    let at = unsigned.find("</edXML:edXMLHeader>").unwrap();
    format!("{}  {}{}", &unsigned[..at], sig, &unsigned[at..])
}

/// Signs `unsigned` with `xmlsec1 --sign` using the leaf key and its chain.
fn xmlsec_sign(dir: &Path, p: &Pki, unsigned: &str, alg: SignatureAlgorithm) -> Vec<u8> {
    let key = dir.join("leaf.key.pem");
    let leaf = dir.join("leaf.pem");
    let inter = dir.join("inter.pem");
    let tmpl = dir.join("template.xml");
    let out = dir.join("signed-by-xmlsec.xml");
    std::fs::write(&key, &p.leaf.key_pem).unwrap();
    std::fs::write(&leaf, &p.leaf.cert_pem).unwrap();
    std::fs::write(&inter, &p.inter.cert_pem).unwrap();
    std::fs::write(&tmpl, xmlsec_template(unsigned, alg)).unwrap();
    let keyspec = format!("{},{},{}", key.display(), leaf.display(), inter.display());
    let res = Command::new("xmlsec1")
        .args(["--sign", "--privkey-pem", &keyspec, "--output"])
        .arg(&out)
        .arg(&tmpl)
        .output()
        .unwrap();
    assert!(
        res.status.success(),
        "xmlsec1 --sign failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    std::fs::read(&out).unwrap()
}

/// Replaces the first occurrence of `from` with `to` (the same length: one changed byte).
fn tamper(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let text = std::str::from_utf8(bytes).unwrap();
    let at = text
        .find(from)
        .unwrap_or_else(|| panic!("'{from}' not in packet"));
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to.as_bytes());
    out
}

const SUBJECT_FRAGMENT: &str = "V/v kết nối";
const SUBJECT_TAMPERED: &str = "V/v kết nốI";
const ATTACHMENT_FRAGMENT: &str = "JVBERi0xLjQK";
const ATTACHMENT_TAMPERED: &str = "JVBERi0xLjRK";

#[test]
fn docaxis_signed_packets_verify_with_xmlsec1_given_only_the_ca() {
    require_xmlsec1();
    for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
        let p = pki(kind);
        let dir = tempfile::tempdir().unwrap();
        let signed = sign_packet(small_packet("000.00.00.G22").as_bytes(), &identity(&p)).unwrap();
        let (ok, out) = xmlsec_verify(dir.path(), &p.root.cert_pem, &signed);
        assert!(ok, "{kind:?}: xmlsec1 refused a DocAxis signature:\n{out}");
        assert!(out.contains("OK"), "{out}");
        // The signer that takes (and frees early) the unsigned bytes signs the same way.
        let owned = docaxis_dsig::sign_packet_owned(
            small_packet("000.00.00.G22").into_bytes(),
            &identity(&p),
        )
        .unwrap();
        let (ok, out) = xmlsec_verify(dir.path(), &p.root.cert_pem, &owned);
        assert!(ok, "{kind:?}: xmlsec1 refused sign_packet_owned:\n{out}");
        let without_values = |b: &[u8]| {
            let t = String::from_utf8(b.to_vec()).unwrap();
            let start = t.find("<ds:SignatureValue>").unwrap();
            let end = t.find("</ds:SignatureValue>").unwrap();
            format!("{}{}", &t[..start], &t[end..])
        };
        assert_eq!(
            without_values(&signed),
            without_values(&owned),
            "{kind:?}: same bytes but for the (randomised) signature value"
        );
    }
}

#[test]
fn xmlsec1_signed_packets_verify_with_docaxis() {
    require_xmlsec1();
    for (kind, alg) in [
        (KeyKind::EcP256, SignatureAlgorithm::EcdsaSha256),
        (KeyKind::Rsa2048, SignatureAlgorithm::RsaSha256),
    ] {
        let p = pki(kind);
        let dir = tempfile::tempdir().unwrap();
        let signed = xmlsec_sign(dir.path(), &p, &small_packet("000.00.00.G22"), alg);
        let verdict = verify_packet(&signed, &trust(&p), &VerifyPolicy::default())
            .unwrap_or_else(|e| panic!("{kind:?}: DocAxis refused an xmlsec1 signature: {e}"));
        let Verdict::Signed(s) = verdict else {
            panic!("not signed: {verdict:?}");
        };
        assert_eq!(s.signature_algorithm, alg);
        assert_eq!(s.digest_algorithm, DigestAlgorithm::Sha256);
        assert_eq!(s.agency_code.as_deref(), Some("000.00.00.G22"));
        assert_eq!(s.signer_cert_der, p.leaf.cert_der);
        assert_eq!(s.chain.len(), 3);
    }
}

#[test]
fn one_changed_byte_is_refused_by_both_docaxis_and_xmlsec1() {
    require_xmlsec1();
    let p = pki(KeyKind::EcP256);
    let dir = tempfile::tempdir().unwrap();
    let by_docaxis = sign_packet(small_packet("000.00.00.G22").as_bytes(), &identity(&p)).unwrap();
    let by_xmlsec = xmlsec_sign(
        dir.path(),
        &p,
        &small_packet("000.00.00.G22"),
        SignatureAlgorithm::EcdsaSha256,
    );
    for (who, signed) in [("docaxis", &by_docaxis), ("xmlsec1", &by_xmlsec)] {
        for (what, from, to) in [
            ("header Subject", SUBJECT_FRAGMENT, SUBJECT_TAMPERED),
            (
                "attachment base64",
                ATTACHMENT_FRAGMENT,
                ATTACHMENT_TAMPERED,
            ),
        ] {
            let bad = tamper(signed, from, to);
            assert_eq!(bad.len(), signed.len());
            let err = verify_packet(&bad, &trust(&p), &VerifyPolicy::default()).unwrap_err();
            assert_eq!(
                err,
                Refusal::DigestMismatch,
                "{who}-signed, {what} changed: {err}"
            );
            let (ok, out) = xmlsec_verify(dir.path(), &p.root.cert_pem, &bad);
            assert!(
                !ok,
                "xmlsec1 accepted a {who}-signed packet with its {what} changed:\n{out}"
            );
        }
        // The untouched packet still verifies with both.
        verify_packet(signed, &trust(&p), &VerifyPolicy::default()).unwrap();
        let (ok, out) = xmlsec_verify(dir.path(), &p.root.cert_pem, signed);
        assert!(ok, "{who}: {out}");
    }
}

#[test]
fn a_changed_signature_value_is_refused_as_bad_signature() {
    require_xmlsec1();
    let p = pki(KeyKind::Rsa2048);
    let dir = tempfile::tempdir().unwrap();
    let signed = sign_packet(small_packet("000.00.00.G22").as_bytes(), &identity(&p)).unwrap();
    let text = std::str::from_utf8(&signed).unwrap();
    let start = text.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
    let mut bad = signed.clone();
    // Flip one base64 character of the signature value (A<->B keep it valid base64).
    bad[start + 10] = if bad[start + 10] == b'A' { b'B' } else { b'A' };
    let err = verify_packet(&bad, &trust(&p), &VerifyPolicy::default()).unwrap_err();
    assert_eq!(err, Refusal::BadSignature, "{err}");
    let (ok, _) = xmlsec_verify(dir.path(), &p.root.cert_pem, &bad);
    assert!(!ok);
}

#[test]
fn a_large_packet_interoperates() {
    require_xmlsec1();
    let p = pki(KeyKind::EcP256);
    let dir = tempfile::tempdir().unwrap();
    let unsigned = support::packet_of_size("000.00.00.G22", 2 * 1024 * 1024);
    let signed = sign_packet(unsigned.as_bytes(), &identity(&p)).unwrap();
    let (ok, out) = xmlsec_verify(dir.path(), &p.root.cert_pem, &signed);
    assert!(ok, "{out}");
    let by_xmlsec = xmlsec_sign(dir.path(), &p, &unsigned, SignatureAlgorithm::EcdsaSha256);
    verify_packet(&by_xmlsec, &trust(&p), &VerifyPolicy::default()).unwrap();
}

/// A batch-signed hub receipt checks out without DocAxis: Debian's `xmllint` validates it and
/// its tree head against `schemas/hub-receipt.xsd`, `scripts/check-receipt-proof.py` (Python's
/// standard library, the documented rule) checks its inclusion proof, and `xmlsec1` verifies
/// the tree head's signature given only the CA. A changed field fails the proof.
#[test]
fn batch_signed_receipts_verify_with_xmlsec1_xmllint_and_the_documented_rule() {
    use docaxis_dsig::batch::sign_batch;
    use docaxis_dsig::receipt::{HubReceipt, ReceiptKind};
    require_xmlsec1();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let certs = format!("{root}/certs");
    let hub = SigningIdentity::from_pem(
        &std::fs::read(format!("{certs}/hub.key.pem")).unwrap(),
        &std::fs::read(format!("{certs}/hub.pem")).unwrap(),
    )
    .unwrap();
    let receipts: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            HubReceipt {
                kind: ReceiptKind::Submission,
                packet_id: format!("{i:064x}"),
                packet_kind: "document".into(),
                from: "000.00.00.G22".into(),
                document_id: format!("000.00.00.G22,2026/12/07,{i}/VPCP-TTĐT"),
                hub_time: time::OffsetDateTime::now_utc(),
                accepted: vec!["000.00.00.H41".into()],
                refused: Vec::new(),
                delivered_to: None,
            }
            .to_xml()
        })
        .collect();
    let signed = sign_batch(&receipts, &hub, time::OffsetDateTime::now_utc()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let check = |bytes: &[u8], name: &str| {
        let file = dir.path().join(format!("{name}.xml"));
        let head = dir.path().join(format!("{name}.head.xml"));
        std::fs::write(&file, bytes).unwrap();
        let out = Command::new("/usr/bin/python3")
            .arg(format!("{root}/scripts/check-receipt-proof.py"))
            .arg("--hub")
            .arg(format!("{certs}/hub.pem"))
            .arg(&file)
            .arg(&head)
            .output()
            .expect("/usr/bin/python3 runs the proof check");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said, file, head)
    };
    for (i, r) in signed.iter().enumerate() {
        let (ok, said, file, head) = check(r, &format!("r{i}"));
        assert!(ok, "receipt {i}: {said}");
        let schema = format!("{root}/schemas/hub-receipt.xsd");
        for doc in [&file, &head] {
            let lint = Command::new("xmllint")
                .args(["--noout", "--schema", &schema])
                .arg(doc)
                .output()
                .expect("xmllint is required: apt-get install libxml2-utils");
            assert!(
                lint.status.success(),
                "xmllint refused {}: {}",
                doc.display(),
                String::from_utf8_lossy(&lint.stderr)
            );
        }
        let (ok, out) = xmlsec_verify(
            dir.path(),
            &std::fs::read_to_string(format!("{certs}/ca.pem")).unwrap(),
            &std::fs::read(&head).unwrap(),
        );
        assert!(ok, "receipt {i}: xmlsec1 refused the tree head:\n{out}");
    }
    let changed = String::from_utf8(signed[3].clone())
        .unwrap()
        .replace("000.00.00.H41", "000.00.00.H14");
    let (ok, said, _, _) = check(changed.as_bytes(), "changed");
    assert!(!ok, "a changed receipt passed the proof check: {said}");
    assert!(said.contains("proof FAILS"), "{said}");

    // A forged leaf under a comment in the head (which the signature does not cover): the
    // head's signature still verifies, the check refuses the comment.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = String::from_utf8(signed[0].clone()).unwrap();
    let head_b64 = &text[text.find("<Head>").unwrap() + 6..text.find("</Head>").unwrap()];
    let head = String::from_utf8(b64.decode(head_b64).unwrap()).unwrap();
    let forged = head.replace("<Size>", "<!--<Size>1</Size>--><Size>");
    let forged_receipt = text.replace(head_b64, &b64.encode(&forged));
    let (ok, said, _, _) = check(forged_receipt.as_bytes(), "comment");
    assert!(!ok && said.contains("comment"), "{said}");
    // The fields moved into the batch element: refused.
    let moved = text.replace("<Batch>", "<Batch><Kind>delivery</Kind>");
    let (ok, said, _, _) = check(moved.as_bytes(), "moved");
    assert!(!ok, "{said}");
    // A batch signed by an agency, chained to the same CA: xmlsec1 would accept the head, the
    // check refuses it for not carrying the hub certificate.
    let agencies = format!("{certs}/agencies");
    let agency = SigningIdentity::from_pem(
        &std::fs::read(format!("{agencies}/000.00.00.G22.key.pem")).unwrap(),
        &std::fs::read(format!("{agencies}/000.00.00.G22.pem")).unwrap(),
    )
    .unwrap();
    let by_agency = sign_batch(&receipts, &agency, time::OffsetDateTime::now_utc()).unwrap();
    let (ok, said, _, _) = check(&by_agency[0], "agency");
    assert!(!ok && said.contains("hub certificate"), "{said}");
}
