//! Chain validation (`docaxis_dsig::trust`) against the xmlsec chain cases X11–X21 of
//! `vectors/xmlsec/EXPECTED.tsv` (copies under `tests/data/dsig/xmlsec`).
//!
//! These are generic XML-DSig documents, not edXML packets, so only the trust layer is
//! exercised: the `X509Certificate` values are extracted from the XML and validated with the
//! anchors, intermediates, CRLs and verification time each case prescribes.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use docaxis_dsig::{Refusal, TrustError, TrustStore, VerifyPolicy, verify_packet};
use time::OffsetDateTime;
use time::macros::datetime;

fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/dsig/xmlsec")
        .join(rel)
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The `X509Certificate` values of a vector, in document order.
fn key_info_certs(rel: &str) -> Vec<Vec<u8>> {
    let xml = String::from_utf8(read(rel)).unwrap();
    let mut out = Vec::new();
    let mut rest = xml.as_str();
    while let Some(i) = rest.find("<X509Certificate>") {
        let after = &rest[i + "<X509Certificate>".len()..];
        let end = after.find("</X509Certificate>").unwrap();
        let b64: String = after[..end].split_whitespace().collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap(),
        );
        rest = &after[end..];
    }
    assert!(!out.is_empty(), "{rel} has no certificate");
    out
}

fn store(anchors: &[&str], intermediates: &[&str], crls: &[&str]) -> TrustStore {
    let mut s = TrustStore::new();
    for a in anchors {
        assert_eq!(s.add_anchor_pem(&read(a)).unwrap(), 1);
    }
    for i in intermediates {
        assert_eq!(s.add_intermediate_pem(&read(i)).unwrap(), 1);
    }
    for c in crls {
        assert_eq!(s.add_crl_pem(&read(c)).unwrap(), 1);
    }
    s
}

const MISSING_CERT: &str = "enveloped-x509-missing-cert.xml";
const SAME_SUBJ: &str = "enveloped-x509-same-subj-cert.xml";
const ENVELOPING: &str = "enveloping-sha256-rsa-sha256.xml";
const EXPIRED: &str = "enveloping-expired-cert.xml";

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[test]
fn x11_leaf_in_document_intermediate_out_of_band_trusted_ca_ok() {
    let s = store(&["keys/cacert.pem"], &["keys/ca2cert.pem"], &[]);
    let chain = s
        .validate_signer(&key_info_certs(MISSING_CERT), now())
        .unwrap();
    assert_eq!(chain.certs().len(), 3, "leaf, ca2, root");
    assert!(
        chain.subject().contains("Test Key rsa-2048"),
        "{}",
        chain.subject()
    );
    assert_eq!(chain.agency_code(), None);
}

#[test]
fn x12_missing_intermediate_is_untrusted() {
    let s = store(&["keys/cacert.pem"], &[], &[]);
    let err = s
        .validate_signer(&key_info_certs(MISSING_CERT), now())
        .unwrap_err();
    let TrustError::UntrustedChain { reason } = &err else {
        panic!("expected UntrustedChain, got {err:?}");
    };
    assert!(reason.contains("Second level CA"), "{reason}");
    assert!(reason.contains("missing intermediate"), "{reason}");
}

#[test]
fn x13_wrong_anchor_is_untrusted() {
    let s = store(&["keys/rsa/rsa-4096-cert.pem"], &["keys/ca2cert.pem"], &[]);
    let err = s
        .validate_signer(&key_info_certs(MISSING_CERT), now())
        .unwrap_err();
    assert!(matches!(err, TrustError::UntrustedChain { .. }), "{err:?}");
}

#[test]
fn x14_revoked_by_crl_at_2026_03_20() {
    let s = store(
        &["keys/cacert.pem"],
        &["keys/ca2cert.pem"],
        &["keys/rsa/rsa-2048-cert-revoked-crl.pem"],
    );
    let err = s
        .validate_signer(
            &key_info_certs(MISSING_CERT),
            datetime!(2026-03-20 00:00 UTC),
        )
        .unwrap_err();
    match err {
        TrustError::Revoked {
            serial,
            at,
            subject,
        } => {
            assert_eq!(serial, "7735EE487F6862DAF1B3956D961CCB0FA6F34F53");
            assert_eq!(at, datetime!(2026-03-08 22:14:16 UTC));
            assert!(subject.contains("rsa-2048"));
        }
        other => panic!("expected Revoked, got {other:?}"),
    }
}

#[test]
fn x14_crl_past_its_next_update_is_refused_not_ignored() {
    let s = store(
        &["keys/cacert.pem"],
        &["keys/ca2cert.pem"],
        &["keys/rsa/rsa-2048-cert-revoked-crl.pem"],
    );
    // nextUpdate is 2026-04-14 15:16:17 UTC.
    let err = s
        .validate_signer(
            &key_info_certs(MISSING_CERT),
            datetime!(2026-05-01 00:00 UTC),
        )
        .unwrap_err();
    match &err {
        TrustError::CrlInvalid { issuer, reason } => {
            assert!(issuer.contains("Second level CA"), "{issuer}");
            assert!(
                reason.contains("expired on 2026-04-14 15:16:17 UTC"),
                "{reason}"
            );
        }
        other => panic!("expected CrlInvalid, got {other:?}"),
    }
}

#[test]
fn x14_crl_does_not_revoke_other_certificates() {
    // The same CRL, checked for a certificate it does not list (rsa-4096, also issued by
    // ca2): the chain is valid at a time inside the CRL's validity.
    let s = store(
        &["keys/cacert.pem"],
        &["keys/ca2cert.pem"],
        &["keys/rsa/rsa-2048-cert-revoked-crl.pem"],
    );
    let leaf = docaxis_pem_cert(&read("keys/rsa/rsa-4096-cert.pem"));
    s.validate_chain(&leaf, &[], datetime!(2026-03-20 00:00 UTC))
        .unwrap();
}

#[test]
fn x16_same_subject_right_certificate_ok() {
    let s = store(&["keys/same-subj-cert1.pem"], &[], &[]);
    let chain = s
        .validate_signer(&key_info_certs(SAME_SUBJ), now())
        .unwrap();
    assert_eq!(
        chain.certs().len(),
        1,
        "the signer certificate is the anchor itself"
    );
}

#[test]
fn x17_same_subject_other_certificate_is_refused() {
    let s = store(&["keys/same-subj-cert2.pem"], &[], &[]);
    let err = s
        .validate_signer(&key_info_certs(SAME_SUBJ), now())
        .unwrap_err();
    let TrustError::UntrustedChain { reason } = &err else {
        panic!("expected UntrustedChain, got {err:?}");
    };
    assert!(reason.contains("different key"), "{reason}");
}

#[test]
fn x18_chain_in_key_info_with_trusted_root_ok() {
    let certs = key_info_certs(ENVELOPING);
    assert_eq!(certs.len(), 3);
    let s = store(&["keys/cacert.pem"], &[], &[]);
    let chain = s.validate_signer(&certs, now()).unwrap();
    assert_eq!(chain.certs().len(), 3);
    assert_eq!(chain.leaf_der(), certs[0].as_slice());
}

#[test]
fn x18_signer_is_found_whatever_the_certificate_order() {
    let mut certs = key_info_certs(ENVELOPING);
    let leaf = certs[0].clone();
    certs.rotate_left(1);
    let s = store(&["keys/cacert.pem"], &[], &[]);
    let chain = s.validate_signer(&certs, now()).unwrap();
    assert_eq!(chain.leaf_der(), leaf.as_slice());
}

#[test]
fn x19_no_anchor_configured_is_refused() {
    let s = TrustStore::new();
    let err = s
        .validate_signer(&key_info_certs(ENVELOPING), now())
        .unwrap_err();
    let TrustError::UntrustedChain { reason } = &err else {
        panic!("expected UntrustedChain, got {err:?}");
    };
    assert!(reason.contains("no trust anchor"), "{reason}");
}

#[test]
fn x20_expired_signer_is_refused() {
    let s = store(&["keys/cacert.pem"], &[], &[]);
    let err = s
        .validate_signer(&key_info_certs(EXPIRED), now())
        .unwrap_err();
    match err {
        TrustError::Expired { subject, not_after } => {
            assert!(subject.contains("rsa-expired"), "{subject}");
            assert_eq!(not_after, datetime!(2026-03-22 22:15:37 UTC));
        }
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[test]
fn x21_expired_signer_verified_as_of_a_time_inside_validity_ok() {
    let s = store(&["keys/cacert.pem"], &[], &[]);
    s.validate_signer(&key_info_certs(EXPIRED), datetime!(2026-03-15 00:00 UTC))
        .unwrap();
}

#[test]
fn trust_store_loads_from_files() {
    let anchor = data("keys/cacert.pem");
    let crl = data("keys/rsa/rsa-2048-cert-revoked-crl.pem");
    let s = TrustStore::from_pem_files(&[anchor.as_path()], &[crl.as_path()]).unwrap();
    assert_eq!(s.anchor_count(), 1);
    assert_eq!(s.crl_count(), 1);
    let missing = data("keys/does-not-exist.pem");
    let err = TrustStore::from_pem_files(&[missing.as_path()], &[]).unwrap_err();
    assert!(err.to_string().contains("does-not-exist.pem"), "{err}");
    let err = TrustStore::from_pem_files(&[crl.as_path()], &[]).unwrap_err();
    assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
}

#[test]
fn generic_xml_dsig_documents_are_not_edxml_packets() {
    let s = store(&["keys/cacert.pem"], &[], &[]);
    let err = verify_packet(&read(ENVELOPING), &s, &VerifyPolicy::default()).unwrap_err();
    let Refusal::WrongProfile { what } = &err else {
        panic!("expected WrongProfile, got {err:?}");
    };
    assert!(what.contains("root element must be edXML"), "{what}");
}

/// DER of the single certificate in a PEM text.
fn docaxis_pem_cert(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(pem.to_vec()).unwrap();
    let start = text.find("-----BEGIN CERTIFICATE-----").unwrap();
    let body = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
    let end = body.find("-----END CERTIFICATE-----").unwrap();
    let b64: String = body[..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}
