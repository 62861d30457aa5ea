//! Attacks on the signed edXML envelope. Each must be refused with a specific reason, and
//! nothing the attacker injected may reach the caller: `verify_packet` returns only the
//! refusal, whose message never quotes injected business content (checked with a marker).
//! Every attack is also put to `verify_parsed` (the hub's path, one parse shared with the
//! schema): it must be refused there too, for the same reason, or already by the parse.

use crate::support;

use docaxis_dsig::{
    ParsedPacket, Refusal, SigningIdentity, TrustError, TrustStore, Verdict, VerifyPolicy,
    check_sender, sender_organ_id, sign_packet, verify_packet, verify_parsed,
};
use support::{Ca, KeyKind, Leaf, document_packet, small_packet};
use time::{Duration, OffsetDateTime};

/// Marker placed in every piece of attacker content.
const MARK: &str = "FORGED-BY-ATTACKER";

struct World {
    root: Ca,
    inter: Ca,
    leaf: Leaf,
    id: SigningIdentity,
    trust: TrustStore,
    signed: Vec<u8>,
}

fn world() -> World {
    let root = Ca::root("DocAxis Attack Root");
    let inter = root.intermediate("DocAxis Attack Agency CA");
    let leaf = inter.leaf("000.00.00.G22", "Văn phòng Chính phủ", KeyKind::EcP256);
    let id = SigningIdentity::from_pem(
        leaf.key_pem.as_bytes(),
        leaf.chain_pem(&[&inter]).as_bytes(),
    )
    .unwrap();
    let trust = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).unwrap();
    let signed = sign_packet(small_packet("000.00.00.G22").as_bytes(), &id).unwrap();
    World {
        root,
        inter,
        leaf,
        id,
        trust,
        signed,
    }
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn replace_once(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let t = text(bytes);
    assert!(t.contains(from), "'{from}' not found");
    t.replacen(from, to, 1).into_bytes()
}

fn signature_block(bytes: &[u8]) -> String {
    let t = text(bytes);
    let start = t.find("<ds:Signature").unwrap();
    let end = t.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    t[start..end].to_owned()
}

fn without_signature(bytes: &[u8]) -> String {
    text(bytes).replacen(&signature_block(bytes), "", 1)
}

/// Verifies with the default (strict) policy and returns the refusal, checking that the
/// attacker's marker does not appear in it.
fn refuse(w: &World, bytes: &[u8]) -> Refusal {
    refuse_with(&w.trust, bytes, &VerifyPolicy::default())
}

fn refuse_with(trust: &TrustStore, bytes: &[u8], policy: &VerifyPolicy) -> Refusal {
    let refusal = match verify_packet(bytes, trust, policy) {
        Ok(v) => panic!("attack accepted: {v:?}"),
        Err(e) => {
            assert!(
                !e.to_string().contains(MARK),
                "refusal quotes attacker content: {e}"
            );
            e
        }
    };
    match ParsedPacket::parse(bytes, &policy.limits) {
        Ok(parsed) => match verify_parsed(&parsed, trust, policy) {
            Ok(v) => panic!("attack accepted on the shared parse: {v:?}"),
            Err(e) => assert_eq!(e.to_string(), refusal.to_string(), "same reason both ways"),
        },
        Err(e) => assert!(!e.to_string().contains(MARK), "{e}"),
    }
    refusal
}

fn assert_profile(r: &Refusal, needle: &str) {
    match r {
        Refusal::WrongProfile { what } => {
            assert!(what.contains(needle), "expected '{needle}' in: {what}")
        }
        other => panic!("expected WrongProfile ({needle}), got {other:?}"),
    }
}

fn forged_header() -> String {
    format!(
        "<edXML:MessageHeader><edXML:From><edXML:OrganId>000.00.00.G99</edXML:OrganId>\
         <edXML:OrganName>{MARK}</edXML:OrganName></edXML:From>\
         <edXML:Subject>{MARK}</edXML:Subject></edXML:MessageHeader>"
    )
}

#[test]
fn baseline_the_untouched_packet_verifies_and_names_its_sender() {
    let w = world();
    let Verdict::Signed(s) = verify_packet(&w.signed, &w.trust, &VerifyPolicy::default()).unwrap()
    else {
        panic!("not signed");
    };
    let policy = VerifyPolicy::default();
    let parsed = ParsedPacket::parse(&w.signed, &policy.limits).unwrap();
    let Verdict::Signed(shared) = verify_parsed(&parsed, &w.trust, &policy).unwrap() else {
        panic!("not signed on the shared parse");
    };
    assert_eq!(shared, s);
    let from = sender_organ_id(&w.signed).unwrap();
    assert_eq!(from, "000.00.00.G22");
    check_sender(&s, &from).unwrap();
    assert_eq!(s.signer_cert_der, w.leaf.cert_der);
}

#[test]
fn signature_moved_into_message_header() {
    let w = world();
    let sig = signature_block(&w.signed);
    let moved = without_signature(&w.signed).replacen(
        "<edXML:MessageHeader>",
        &format!("<edXML:MessageHeader>{sig}"),
        1,
    );
    assert_profile(&refuse(&w, moved.as_bytes()), "must be the last child");
}

#[test]
fn signature_moved_under_the_root() {
    let w = world();
    let sig = signature_block(&w.signed);
    let moved = without_signature(&w.signed).replacen("</edXML>", &format!("{sig}</edXML>"), 1);
    assert_profile(&refuse(&w, moved.as_bytes()), "must be the last child");
}

#[test]
fn signature_not_last_in_the_header() {
    let w = world();
    let sig = signature_block(&w.signed);
    let moved = without_signature(&w.signed).replacen(
        "<edXML:TraceHeaderList>",
        &format!("{sig}<edXML:TraceHeaderList>"),
        1,
    );
    assert_profile(&refuse(&w, moved.as_bytes()), "must be the last child");
}

#[test]
fn second_message_header_beside_the_signed_one() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "</edXML:MessageHeader>",
        &format!("</edXML:MessageHeader>{}", forged_header()),
    );
    assert_profile(&refuse(&w, &bad), "more than one MessageHeader");
}

#[test]
fn second_edxml_header_beside_the_signed_one() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<edXML:edXMLHeader>",
        &format!(
            "<edXML:edXMLHeader>{}</edXML:edXMLHeader><edXML:edXMLHeader>",
            forged_header()
        ),
    );
    assert_profile(&refuse(&w, &bad), "more than one edXMLHeader");
}

#[test]
fn forged_header_inside_a_ds_object() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "</ds:KeyInfo>",
        &format!("</ds:KeyInfo><ds:Object>{}</ds:Object>", forged_header()),
    );
    assert_profile(&refuse(&w, &bad), "ds:Object");
    // Even a caller that skipped verification could not read the forged sender.
    assert_eq!(sender_organ_id(&bad).unwrap(), "000.00.00.G22");
}

#[test]
fn forged_business_data_inside_key_info() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<ds:X509Data>",
        &format!("<ds:X509Data>{}", forged_header()),
    );
    assert_profile(&refuse(&w, &bad), "not allowed inside ds:X509Data");
}

#[test]
fn two_signatures() {
    let w = world();
    let sig = signature_block(&w.signed);
    let bad = replace_once(&w.signed, &sig, &format!("{sig}{sig}"));
    assert_profile(&refuse(&w, &bad), "more than one ds:Signature");
}

#[test]
fn extra_reference_to_an_id() {
    let w = world();
    let extra = "<ds:Reference URI=\"#hdr\"><ds:Transforms>\
        <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
        <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\
        <ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>";
    let bad = replace_once(
        &w.signed,
        "</ds:SignedInfo>",
        &format!("{extra}</ds:SignedInfo>"),
    );
    assert_profile(&refuse(&w, &bad), "more than one Reference");
}

#[test]
fn reference_to_an_id_instead_of_the_whole_packet() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<ds:Reference URI=\"\">",
        "<ds:Reference URI=\"#hdr\">",
    );
    assert_profile(&refuse(&w, &bad), "URI=\"#hdr\" is not allowed");
}

#[test]
fn comment_injected_into_signed_text() {
    let w = world();
    // exc-c14n drops comments, so the digest would still match: the profile must refuse.
    let bad = replace_once(
        &w.signed,
        "V/v kết nối",
        &format!("V/v kết<!--{MARK}--> nối"),
    );
    assert_profile(&refuse(&w, &bad), "comment");
}

#[test]
fn whitespace_injected_into_signed_text() {
    let w = world();
    let bad = replace_once(&w.signed, "V/v kết nối", "V/v  kết nối");
    assert_eq!(refuse(&w, &bad), Refusal::DigestMismatch);
}

#[test]
fn attachments_swapped_between_two_signed_packets() {
    let w = world();
    let other = sign_packet(
        document_packet(
            "000.00.00.G22",
            "V/v kết nối, liên thông phần mềm quản lý văn bản",
            "T1RIRVItRE9DVU1FTlQ=",
        )
        .as_bytes(),
        &w.id,
    )
    .unwrap();
    verify_packet(&other, &w.trust, &VerifyPolicy::default()).unwrap();
    let block = |b: &[u8]| {
        let t = text(b);
        let s = t.find("<AttachmentEncoded").unwrap();
        let e = t.find("</AttachmentEncoded>").unwrap();
        t[s..e].to_owned()
    };
    let swapped = replace_once(&w.signed, &block(&w.signed), &block(&other));
    assert_ne!(swapped, w.signed);
    assert_eq!(refuse(&w, &swapped), Refusal::DigestMismatch);
}

#[test]
fn weak_or_mac_algorithms() {
    let w = world();
    let ecdsa = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256";
    for (uri, needle) in [
        ("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "SHA-1"),
        ("http://www.w3.org/2000/09/xmldsig#hmac-sha1", "HMAC"),
        ("http://www.w3.org/2001/04/xmldsig-more#hmac-sha256", "HMAC"),
        ("http://www.w3.org/2000/09/xmldsig#dsa-sha1", "DSA"),
        ("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1", "SHA-1"),
    ] {
        let bad = replace_once(&w.signed, ecdsa, uri);
        let r = refuse(&w, &bad);
        assert_profile(&r, "SignatureMethod");
        assert_profile(&r, needle);
    }
    let sha256 = "http://www.w3.org/2001/04/xmlenc#sha256";
    for uri in [
        "http://www.w3.org/2000/09/xmldsig#sha1",
        "http://www.w3.org/2001/04/xmldsig-more#md5",
    ] {
        let bad = replace_once(&w.signed, sha256, uri);
        assert_profile(&refuse(&w, &bad), "DigestMethod");
    }
}

#[test]
fn hmac_output_length_is_refused() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256\"/>",
        "<ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256\">\
         <ds:HMACOutputLength>8</ds:HMACOutputLength></ds:SignatureMethod>",
    );
    assert_profile(&refuse(&w, &bad), "must be empty");
}

#[test]
fn signature_method_not_matching_the_key() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    );
    assert_profile(&refuse(&w, &bad), "needs an RSA key");
}

#[test]
fn xpath_transform() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xpath-19991116\">\
         <ds:XPath>not(ancestor-or-self::edXML:Subject)</ds:XPath></ds:Transform>",
    );
    assert_profile(&refuse(&w, &bad), "REC-xpath-19991116");
}

#[test]
fn xslt_and_extra_transforms() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "</ds:Transforms>",
        "<ds:Transform Algorithm=\"http://www.w3.org/TR/1999/REC-xslt-19991116\"/></ds:Transforms>",
    );
    assert_profile(&refuse(&w, &bad), "more than two transforms");
    let only_c14n = replace_once(
        &w.signed,
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
        "",
    );
    assert_profile(&refuse(&w, &only_c14n), "not allowed at position 1");
}

#[test]
fn inclusive_namespaces_prefix_list() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">\
         <ec:InclusiveNamespaces xmlns:ec=\"http://www.w3.org/2001/10/xml-exc-c14n#\" \
         PrefixList=\"edXML\"/></ds:CanonicalizationMethod>",
    );
    assert_profile(&refuse(&w, &bad), "PrefixList");
}

#[test]
fn inclusive_c14n_is_not_in_the_profile() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\"/>",
    );
    assert_profile(&refuse(&w, &bad), "CanonicalizationMethod");
}

#[test]
fn retrieval_method() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<ds:KeyInfo>",
        "<ds:KeyInfo><ds:RetrievalMethod URI=\"http://attacker.example/key.pem\"/>",
    );
    assert_profile(&refuse(&w, &bad), "RetrievalMethod");
}

#[test]
fn key_info_with_only_a_key_value() {
    // The attacker signs with their own key and ships only its KeyValue.
    let w = world();
    let attacker_root = Ca::root("Attacker Root");
    let attacker = attacker_root.leaf("000.00.00.G22", MARK, KeyKind::EcP256);
    let attacker_id =
        SigningIdentity::from_pem(attacker.key_pem.as_bytes(), attacker.cert_pem.as_bytes())
            .unwrap();
    let forged = sign_packet(
        document_packet("000.00.00.G22", MARK, "QUFBQQ==").as_bytes(),
        &attacker_id,
    )
    .unwrap();
    let t = text(&forged);
    let s = t.find("<ds:X509Data>").unwrap();
    let e = t.find("</ds:X509Data>").unwrap() + "</ds:X509Data>".len();
    let key_value = format!(
        "{}<ds:KeyValue><dsig11:ECKeyValue xmlns:dsig11=\"http://www.w3.org/2009/xmldsig11#\"><dsig11:NamedCurve URI=\"urn:oid:1.2.840.10045.3.1.7\"/><dsig11:PublicKey>AAAA</dsig11:PublicKey></dsig11:ECKeyValue></ds:KeyValue>{}",
        &t[..s],
        &t[e..]
    );
    assert_profile(
        &refuse(&w, key_value.as_bytes()),
        "no X509Data/X509Certificate",
    );
    let key_name = format!("{}<ds:KeyName>{MARK}</ds:KeyName>{}", &t[..s], &t[e..]);
    assert_profile(
        &refuse(&w, key_name.as_bytes()),
        "no X509Data/X509Certificate",
    );
}

#[test]
fn self_signed_certificate_not_chaining_to_the_anchor() {
    let w = world();
    // The attacker's own self-signed certificate, named like the real agency.
    let attacker = Ca::root("Văn phòng Chính phủ");
    let id = SigningIdentity::from_pem(
        attacker.key.serialize_pem().as_bytes(),
        attacker.cert_pem.as_bytes(),
    )
    .unwrap();
    let forged = sign_packet(
        document_packet("000.00.00.G22", MARK, "QUFBQQ==").as_bytes(),
        &id,
    )
    .unwrap();
    let r = refuse(&w, &forged);
    let Refusal::Trust(TrustError::UntrustedChain { reason }) = &r else {
        panic!("expected UntrustedChain, got {r:?}");
    };
    assert!(reason.contains("self-signed"), "{reason}");
}

#[test]
fn signer_certificate_from_another_ca() {
    let w = world();
    let other_root = Ca::root("Other National Root");
    let other_inter = other_root.intermediate("DocAxis Attack Agency CA");
    let leaf = other_inter.leaf("000.00.00.G22", "Văn phòng Chính phủ", KeyKind::Rsa2048);
    let id = SigningIdentity::from_pem(
        leaf.key_pem.as_bytes(),
        leaf.chain_pem(&[&other_inter]).as_bytes(),
    )
    .unwrap();
    let forged = sign_packet(
        document_packet("000.00.00.G22", MARK, "QUFBQQ==").as_bytes(),
        &id,
    )
    .unwrap();
    // The other CA even has the same intermediate name as ours: names alone never link.
    let r = refuse(&w, &forged);
    assert!(
        matches!(r, Refusal::Trust(TrustError::UntrustedChain { .. })),
        "{r:?}"
    );
}

#[test]
fn expired_signer_certificate() {
    let w = world();
    let cert = x509_not_after(&w.leaf.cert_der);
    let policy = VerifyPolicy {
        at: Some(cert + Duration::days(1)),
        ..VerifyPolicy::default()
    };
    let r = refuse_with(&w.trust, &w.signed, &policy);
    assert!(
        matches!(r, Refusal::Trust(TrustError::Expired { .. })),
        "{r:?}"
    );
    // The same packet verified as of a time within validity is accepted.
    let ok = VerifyPolicy {
        at: Some(cert - Duration::days(1)),
        ..VerifyPolicy::default()
    };
    verify_packet(&w.signed, &w.trust, &ok).unwrap();
}

#[test]
fn not_yet_valid_signer_certificate() {
    let w = world();
    let policy = VerifyPolicy {
        at: Some(OffsetDateTime::now_utc() - Duration::days(30)),
        ..VerifyPolicy::default()
    };
    let r = refuse_with(&w.trust, &w.signed, &policy);
    assert!(
        matches!(r, Refusal::Trust(TrustError::NotYetValid { .. })),
        "{r:?}"
    );
}

#[test]
fn revoked_signer_certificate() {
    let w = world();
    let now = OffsetDateTime::now_utc();
    let crl = w.inter.crl(
        &[&w.leaf.serial],
        now - Duration::hours(1),
        now - Duration::hours(1),
        now + Duration::days(7),
    );
    let trust = TrustStore::from_pem(&[w.root.cert_pem.as_bytes()], &[crl.as_bytes()]).unwrap();
    let r = refuse_with(&trust, &w.signed, &VerifyPolicy::default());
    assert!(
        matches!(r, Refusal::Trust(TrustError::Revoked { .. })),
        "{r:?}"
    );
    // Verified as of a time before the revocation, the packet is accepted.
    let before = VerifyPolicy {
        at: Some(now - Duration::hours(2)),
        ..VerifyPolicy::default()
    };
    verify_packet(&w.signed, &trust, &before).unwrap();
}

#[test]
fn crl_forged_by_another_ca_with_the_same_name() {
    let w = world();
    let now = OffsetDateTime::now_utc();
    let impostor_root = Ca::root("DocAxis Attack Root");
    let impostor = impostor_root.intermediate("DocAxis Attack Agency CA");
    let crl = impostor.crl(&[], now, now - Duration::hours(1), now + Duration::days(7));
    let trust = TrustStore::from_pem(&[w.root.cert_pem.as_bytes()], &[crl.as_bytes()]).unwrap();
    let r = refuse_with(&trust, &w.signed, &VerifyPolicy::default());
    assert!(
        matches!(r, Refusal::Trust(TrustError::CrlInvalid { .. })),
        "{r:?}"
    );
}

#[test]
fn doctype_with_entities() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
        &format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE edXML [<!ENTITY x \"{MARK}\">]>"
        ),
    );
    let bad = replace_once(&bad, "V/v kết nối", "&x;");
    assert_profile(&refuse(&w, &bad), "DOCTYPE");
}

#[test]
fn billion_laughs_is_refused_before_expansion() {
    let w = world();
    let mut dtd = String::from("<!DOCTYPE edXML [<!ENTITY l0 \"lol\">");
    for i in 1..10 {
        dtd.push_str(&format!(
            "<!ENTITY l{i} \"&l{p};&l{p};&l{p};&l{p};&l{p};&l{p};&l{p};&l{p};&l{p};&l{p};\">",
            p = i - 1
        ));
    }
    dtd.push_str("]>");
    let bad = replace_once(&w.signed, "<edXML xmlns=", &format!("{dtd}<edXML xmlns="));
    let bad = replace_once(&bad, "V/v kết nối", "&l9;");
    assert_profile(&refuse(&w, &bad), "DOCTYPE");
}

#[test]
fn signer_is_not_the_sender() {
    let w = world();
    // A genuine, trusted agency (H41) signs a packet claiming to come from G22.
    let h41 = w
        .inter
        .leaf("000.00.00.H41", "UBND Tỉnh Nghệ An", KeyKind::EcP256);
    let id = SigningIdentity::from_pem(
        h41.key_pem.as_bytes(),
        h41.chain_pem(&[&w.inter]).as_bytes(),
    )
    .unwrap();
    let packet = sign_packet(small_packet("000.00.00.G22").as_bytes(), &id).unwrap();
    let Verdict::Signed(s) = verify_packet(&packet, &w.trust, &VerifyPolicy::default()).unwrap()
    else {
        panic!("not signed");
    };
    let from = sender_organ_id(&packet).unwrap();
    assert_eq!(
        check_sender(&s, &from).unwrap_err(),
        Refusal::SignerNotSender {
            signer: "000.00.00.H41".into(),
            from: "000.00.00.G22".into()
        }
    );
}

#[test]
fn stripped_signature_and_legacy_placeholder_are_unsigned() {
    let w = world();
    let stripped = without_signature(&w.signed);
    assert_eq!(
        refuse(&w, stripped.as_bytes()),
        Refusal::Unsigned { legacy: false }
    );
    let legacy_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/dsig/legacy_document_new.edxml"
    );
    let legacy = std::fs::read(legacy_path).unwrap();
    assert_eq!(refuse(&w, &legacy), Refusal::Unsigned { legacy: true });
    let lenient = VerifyPolicy {
        accept_unsigned_legacy: true,
        ..VerifyPolicy::default()
    };
    assert!(matches!(
        verify_packet(&legacy, &w.trust, &lenient).unwrap(),
        Verdict::UnsignedLegacy { .. }
    ));
    assert!(matches!(
        verify_packet(stripped.as_bytes(), &w.trust, &lenient).unwrap(),
        Verdict::Unsigned { .. }
    ));
    // A broken ds:Signature is never downgraded to "unsigned", whatever the policy.
    let broken = replace_once(&w.signed, "V/v kết nối", "V/v kết nốI");
    assert_eq!(
        refuse_with(&w.trust, &broken, &lenient),
        Refusal::DigestMismatch
    );
}

#[test]
fn legacy_placeholder_beside_a_real_signature() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<edXML:TraceHeaderList>",
        "<Signature xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"/><edXML:TraceHeaderList>",
    );
    assert_profile(&refuse(&w, &bad), "legacy placeholder");
}

#[test]
fn dsig_elements_outside_the_signature() {
    let w = world();
    let bad = replace_once(
        &w.signed,
        "<edXML:Subject>",
        "<edXML:Subject><ds:SignedInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>",
    );
    assert_profile(&refuse(&w, &bad), "outside ds:Signature");
}

#[test]
fn oversized_and_non_utf8_packets() {
    let w = world();
    let policy = VerifyPolicy {
        limits: docaxis_dsig::Limits {
            max_bytes: 1000,
            ..Default::default()
        },
        ..VerifyPolicy::default()
    };
    assert!(matches!(
        refuse_with(&w.trust, &w.signed, &policy),
        Refusal::TooLarge { .. }
    ));
    let mut latin1 = w.signed.clone();
    let at = text(&w.signed).find("ết").unwrap();
    latin1[at] = 0xFF;
    assert!(matches!(refuse(&w, &latin1), Refusal::Malformed { .. }));
}

/// notAfter of a DER certificate, read without the library under test.
fn x509_not_after(der: &[u8]) -> OffsetDateTime {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).unwrap();
    cert.validity().not_after.to_datetime()
}

/// The attacker signs with their own key but ships the genuine signer's trusted chain in
/// KeyInfo (optionally with their own public key as a KeyValue beside it): bergshamra only
/// gets the validated leaf's key, so the signature cannot verify.
#[test]
fn key_info_names_a_trusted_signer_but_another_key_signed() {
    use base64::Engine as _;
    use x509_parser::prelude::FromDer;
    let w = world();
    let attacker_root = Ca::root("Attacker Root");
    let attacker = attacker_root.leaf("000.00.00.G22", "Văn phòng Chính phủ", KeyKind::EcP256);
    let attacker_id =
        SigningIdentity::from_pem(attacker.key_pem.as_bytes(), attacker.cert_pem.as_bytes())
            .unwrap();
    let forged = sign_packet(
        document_packet("000.00.00.G22", MARK, "QUFBQQ==").as_bytes(),
        &attacker_id,
    )
    .unwrap();
    let genuine_x509 = {
        let t = text(&w.signed);
        let s = t.find("<ds:X509Data>").unwrap();
        let e = t.find("</ds:X509Data>").unwrap() + "</ds:X509Data>".len();
        t[s..e].to_owned()
    };
    let t = text(&forged);
    let s = t.find("<ds:X509Data>").unwrap();
    let e = t.find("</ds:X509Data>").unwrap() + "</ds:X509Data>".len();
    let swapped = format!("{}{}{}", &t[..s], genuine_x509, &t[e..]);
    assert_eq!(refuse(&w, swapped.as_bytes()), Refusal::BadSignature);

    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(&attacker.cert_der).unwrap();
    let point = base64::engine::general_purpose::STANDARD
        .encode(&cert.public_key().subject_public_key.data);
    let key_value = format!(
        "<ds:KeyValue><dsig11:ECKeyValue xmlns:dsig11=\"http://www.w3.org/2009/xmldsig11#\">\
         <dsig11:NamedCurve URI=\"urn:oid:1.2.840.10045.3.1.7\"/>\
         <dsig11:PublicKey>{point}</dsig11:PublicKey></dsig11:ECKeyValue></ds:KeyValue>"
    );
    for key_info in [
        format!("{key_value}{genuine_x509}"),
        format!("{genuine_x509}{key_value}"),
    ] {
        let bad = format!("{}{}{}", &t[..s], key_info, &t[e..]);
        assert_eq!(refuse(&w, bad.as_bytes()), Refusal::BadSignature);
    }
}
