//! Development PKI end to end: `init`, `issue`, `revoke` in a temporary directory, checked with
//! x509-parser, with the library's own signature check, and independently with the `openssl`
//! command-line tool (required: the tests fail with a clear message if it is missing).

use std::path::Path;
use std::process::Command;

use docaxis_dsig::pki::{
    self, AGENCY_CODE_OID, InitOptions, IssueRequest, KeyAlgorithm, PkiError, PkiLayout,
};
use rustls_pki_types::PrivateKeyDer;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

const AGENCIES: [(&str, &str); 3] = [
    ("000.00.00.G22", "Văn phòng Chính phủ"),
    ("000.00.00.H41", "UBND Tỉnh Nghệ An"),
    ("000.00.00.H14", "UBND Tỉnh Cao Bằng"),
];

/// Runs `openssl ARGS`; returns whether it succeeded and its combined output.
fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need the `openssl` command-line tool (apt-get install openssl): {e}"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `openssl verify` of `cert` under the CA (and CRL when given), strict X.509 checks, for the
/// given purpose.
fn openssl_verify(dir: &Path, cert: &Path, purpose: &str, with_crl: bool) -> (bool, String) {
    let layout = PkiLayout::new(dir);
    let ca = layout.ca_cert();
    let crl = layout.crl();
    let mut args = vec![
        "verify",
        "-x509_strict",
        "-purpose",
        purpose,
        "-CAfile",
        s(&ca),
    ];
    if with_crl {
        args.extend(["-crl_check", "-CRLfile", s(&crl)]);
    }
    args.push(s(cert));
    openssl(&args)
}

/// The CRL number as `openssl crl -text` prints it (on the line after "X509v3 CRL Number:").
fn crl_number_shown(text: &str) -> Option<&str> {
    let mut lines = text.lines();
    lines.find(|l| l.trim_start().starts_with("X509v3 CRL Number:"))?;
    lines.next().map(str::trim)
}

fn der(path: &Path) -> Vec<u8> {
    pki::load_cert_pem(path).unwrap().as_ref().to_vec()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).unwrap();
    assert!(rest.is_empty());
    cert
}

fn fresh_pki() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    pki::init(tmp.path(), &InitOptions::default()).unwrap();
    tmp
}

/// Checks the leaf profile common to hub and agency certificates.
fn assert_leaf_profile(cert: &X509Certificate<'_>, ca: &X509Certificate<'_>, rsa: bool) {
    assert_eq!(cert.version().0, 2, "X.509 v3");
    let serial = cert.raw_serial();
    assert_eq!(serial.len(), 16, "16-byte serial");
    assert!(
        serial[0] & 0x80 == 0 && serial[0] != 0,
        "positive serial, no padding"
    );

    let bc = cert.basic_constraints().unwrap().unwrap();
    assert!(bc.critical && !bc.value.ca, "CA:false");

    let ku = cert.key_usage().unwrap().unwrap();
    assert!(ku.critical);
    assert!(ku.value.digital_signature() && ku.value.non_repudiation());
    assert_eq!(ku.value.key_encipherment(), rsa);
    assert!(!ku.value.key_cert_sign() && !ku.value.crl_sign());

    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);

    let san = cert.subject_alternative_name().unwrap().unwrap().value;
    let names: Vec<String> = san
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("DNS:{d}"),
            GeneralName::IPAddress(ip) => format!("IP:{}", hex::encode(ip)),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "DNS:localhost".to_owned(),
            "IP:7f000001".to_owned(),
            format!("IP:{}01", "00".repeat(15)),
        ]
    );

    let ca_ski = ski(ca);
    let aki = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.clone(),
            _ => None,
        })
        .expect("authorityKeyIdentifier");
    assert_eq!(aki.0, ca_ski.as_slice(), "AKI = CA's SKI");
    assert!(!ski(cert).is_empty(), "subjectKeyIdentifier");
    assert_eq!(cert.issuer().as_raw(), ca.subject().as_raw());
}

fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .expect("subjectKeyIdentifier")
}

fn attribute<'a>(
    cert: &'a X509Certificate<'_>,
    oid: &x509_parser::der_parser::Oid<'_>,
) -> Vec<&'a str> {
    cert.subject()
        .iter_attributes()
        .filter(|a| a.attr_type() == oid)
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The private key file is PKCS#8 PEM, mode 0600, and belongs to the certificate.
fn assert_key_matches(key_path: &Path, cert: &X509Certificate<'_>) {
    let key = pki::load_private_key_pem(key_path).unwrap();
    assert!(
        matches!(key, PrivateKeyDer::Pkcs8(_)),
        "{} is PKCS#8",
        key_path.display()
    );
    let text = std::fs::read_to_string(key_path).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let pair = rcgen::KeyPair::from_pem(&text).unwrap();
    assert_eq!(
        pair.public_key_raw(),
        cert.public_key().subject_public_key.data.as_ref(),
        "{} is the key of its certificate",
        key_path.display()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", key_path.display());
    }
}

#[test]
fn init_writes_a_coherent_pki() {
    let tmp = tempfile::tempdir().unwrap();
    let before = pki::init(tmp.path(), &InitOptions::default()).unwrap();
    let layout = PkiLayout::new(tmp.path());

    // CA.
    let ca_der = der(&layout.ca_cert());
    let ca = parse(&ca_der);
    assert_eq!(
        ca.subject().to_string(),
        "C=VN, O=DocAxis development, CN=DocAxis Development National CA (NOT FOR PRODUCTION)"
    );
    assert_eq!(ca.subject().as_raw(), ca.issuer().as_raw(), "self-signed");
    let bc = ca.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let validity = ca.validity().not_after.to_datetime() - ca.validity().not_before.to_datetime();
    assert_eq!(validity, pki::CA_VALIDITY);
    assert!(ca.validity().is_valid());
    assert_eq!(
        ca.public_key().algorithm.algorithm,
        x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
    );
    pki::verify_issued_by(&ca_der, &ca_der).unwrap();
    assert_key_matches(&layout.ca_key(), &ca);
    assert_eq!(
        before.ca.info.fingerprint_sha256,
        pki::fingerprint_sha256(&ca_der)
    );

    // CRL: empty, number 1, signed by the CA.
    let crl = pki::load_crl_pem(&layout.crl()).unwrap();
    let info = pki::read_crl(&crl, &ca_der).unwrap();
    assert_eq!(info.number, 1);
    assert!(info.entries.is_empty());
    assert!(info.next_update.unwrap() - info.this_update >= Duration::days(3650));
    let (ok, text) = openssl(&[
        "crl",
        "-in",
        s(&layout.crl()),
        "-CAfile",
        s(&layout.ca_cert()),
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    // Hub.
    let hub_der = der(&layout.hub_cert());
    let hub = parse(&hub_der);
    assert_leaf_profile(&hub, &ca, false);
    assert_eq!(
        pki::agency_code_of(&hub_der).unwrap(),
        None,
        "the hub is no agency"
    );
    assert_eq!(
        attribute(&hub, &x509_parser::oid_registry::OID_X509_COMMON_NAME),
        ["DocAxis development hub"]
    );
    assert_key_matches(&layout.hub_key(), &hub);
    pki::verify_issued_by(&hub_der, &ca_der).unwrap();

    // Agencies.
    let uid = x509_parser::der_parser::Oid::from(AGENCY_CODE_OID).unwrap();
    assert_eq!(before.agencies.len(), 3);
    for (code, name) in AGENCIES {
        let path = layout.agency_cert(code);
        let cert_der = der(&path);
        let cert = parse(&cert_der);
        assert_leaf_profile(&cert, &ca, false);
        assert_eq!(attribute(&cert, &uid), [code]);
        assert_eq!(
            attribute(&cert, &x509_parser::oid_registry::OID_X509_COMMON_NAME),
            [name]
        );
        assert_eq!(
            attribute(
                &cert,
                &x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME
            ),
            [name]
        );
        assert_eq!(
            attribute(&cert, &x509_parser::oid_registry::OID_X509_COUNTRY_NAME),
            ["VN"]
        );
        assert_eq!(
            pki::agency_code_of(&cert_der).unwrap().as_deref(),
            Some(code)
        );
        let v = cert.validity();
        assert_eq!(
            v.not_after.to_datetime() - v.not_before.to_datetime(),
            pki::LEAF_VALIDITY
        );
        assert!(v.is_valid());
        assert_key_matches(&layout.agency_key(code), &cert);
        pki::verify_issued_by(&cert_der, &ca_der).unwrap();
        for purpose in ["sslclient", "sslserver"] {
            let (ok, text) = openssl_verify(tmp.path(), &path, purpose, true);
            assert!(ok, "{code} for {purpose}: {text}");
        }
        let reported = before.agencies.iter().find(|a| a.code == code).unwrap();
        assert_eq!(reported.cert.cert_path, path);
        assert_eq!(
            reported.cert.info.fingerprint_sha256,
            pki::fingerprint_sha256(&cert_der)
        );
        assert_eq!(
            reported.cert.info.subject,
            format!("C=VN, O={name}, CN={name}, UID={code}")
        );
    }
    // The hub's certificate chains as well, for both TLS roles.
    for purpose in ["sslclient", "sslserver"] {
        let (ok, text) = openssl_verify(tmp.path(), &layout.hub_cert(), purpose, true);
        assert!(ok, "hub for {purpose}: {text}");
    }
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let tmp = fresh_pki();
    let layout = PkiLayout::new(tmp.path());
    let ca_before = der(&layout.ca_cert());

    let err = pki::init(tmp.path(), &InitOptions::default()).unwrap_err();
    assert!(matches!(err, PkiError::PkiExists { .. }), "{err}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
    assert_eq!(der(&layout.ca_cert()), ca_before, "untouched");

    // A lone agency file from an earlier PKI also counts as a PKI.
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("agencies")).unwrap();
    std::fs::copy(
        layout.agency_cert("000.00.00.G22"),
        other.path().join("agencies/x.pem"),
    )
    .unwrap();
    let err = pki::init(other.path(), &InitOptions::default()).unwrap_err();
    assert!(err.to_string().contains("agencies/x.pem"), "{err}");

    // --force: a new CA; agency files only the old CA knew are removed; other files stay.
    let extra = pki::issue(
        tmp.path(),
        &IssueRequest::new("000.00.00.H29", "UBND Thành phố Hà Nội"),
    )
    .unwrap();
    std::fs::write(tmp.path().join("README.md"), "keep me").unwrap();
    let forced = InitOptions {
        force: true,
        ..InitOptions::default()
    };
    let report = pki::init(tmp.path(), &forced).unwrap();
    assert_ne!(der(&layout.ca_cert()), ca_before, "a new CA");
    assert!(!extra.cert.cert_path.exists() && !extra.cert.key_path.exists());
    let mut removed = report.removed.clone();
    removed.sort();
    let mut expected = vec![extra.cert.cert_path.clone(), extra.cert.key_path.clone()];
    expected.sort();
    assert_eq!(removed, expected);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("README.md")).unwrap(),
        "keep me"
    );
    let ca_der = der(&layout.ca_cert());
    for (code, _) in AGENCIES {
        pki::verify_issued_by(&der(&layout.agency_cert(code)), &ca_der).unwrap();
    }
}

#[test]
fn init_with_a_fixed_start_date() {
    let tmp = tempfile::tempdir().unwrap();
    let start = time::macros::datetime!(2025-01-01 00:00 UTC);
    let opts = InitOptions {
        valid_from: Some(start),
        ..InitOptions::default()
    };
    let report = pki::init(tmp.path(), &opts).unwrap();
    assert_eq!(report.ca.info.not_before, start);
    assert_eq!(report.ca.info.not_after, start + pki::CA_VALIDITY);
    let ca_der = report.ca.der.as_ref();
    let crl = pki::read_crl(&pki::load_crl_pem(&report.crl_path).unwrap(), ca_der).unwrap();
    assert_eq!(
        crl.this_update, start,
        "the first CRL dates from the start too"
    );
    for agency in &report.agencies {
        assert_eq!(agency.cert.info.not_before, start);
        assert_eq!(agency.cert.info.not_after, start + pki::LEAF_VALIDITY);
    }
}

#[test]
fn issue_ecdsa_and_rsa() {
    let tmp = fresh_pki();
    let layout = PkiLayout::new(tmp.path());
    let ca_der = der(&layout.ca_cert());
    let ca = parse(&ca_der);

    for (code, key, rsa) in [
        ("000.00.00.H29", KeyAlgorithm::EcdsaP256, false),
        ("000.00.00.H26", KeyAlgorithm::Rsa2048, true),
    ] {
        let req = IssueRequest {
            key,
            ..IssueRequest::new(code, "Sở Thông tin và Truyền thông")
        };
        let issued = pki::issue(tmp.path(), &req).unwrap();
        assert_eq!(issued.cert.cert_path, layout.agency_cert(code));
        let cert_der = der(&issued.cert.cert_path);
        let cert = parse(&cert_der);
        assert_leaf_profile(&cert, &ca, rsa);
        let expected_alg = if rsa {
            x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
        } else {
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        };
        assert_eq!(cert.public_key().algorithm.algorithm, expected_alg);
        assert_eq!(
            pki::agency_code_of(&cert_der).unwrap().as_deref(),
            Some(code)
        );
        assert_key_matches(&issued.cert.key_path, &cert);
        pki::verify_issued_by(&cert_der, &ca_der).unwrap();
        let (ok, text) = openssl_verify(tmp.path(), &issued.cert.cert_path, "sslserver", true);
        assert!(ok, "{code}: {text}");
        let (ok, text) = openssl(&["pkey", "-in", s(&issued.cert.key_path), "-noout"]);
        assert!(ok, "openssl reads the key: {text}");
    }
}

#[test]
fn issue_refuses_silent_overwrite_and_rotates_on_replace() {
    let tmp = fresh_pki();
    let layout = PkiLayout::new(tmp.path());
    let code = "000.00.00.G22";
    let old_der = der(&layout.agency_cert(code));
    let old_key = std::fs::read(layout.agency_key(code)).unwrap();

    let err = pki::issue(tmp.path(), &IssueRequest::new(code, "Văn phòng Chính phủ")).unwrap_err();
    assert!(matches!(err, PkiError::AgencyExists { .. }), "{err}");
    assert!(err.to_string().contains("--replace"), "{err}");
    assert_eq!(der(&layout.agency_cert(code)), old_der, "untouched");

    let req = IssueRequest {
        replace: true,
        ..IssueRequest::new(code, "Văn phòng Chính phủ")
    };
    let issued = pki::issue(tmp.path(), &req).unwrap();
    let retired = issued.replaced.expect("the old certificate is reported");
    let old_serial = pki::cert_info(&old_der).unwrap().serial;
    assert_eq!(retired.serial, old_serial);
    assert_eq!(
        retired.cert_path,
        layout.retired_agency_cert(code, &old_serial)
    );
    assert_eq!(der(&retired.cert_path), old_der, "old certificate kept");
    assert_eq!(
        std::fs::read(retired.key_path.unwrap()).unwrap(),
        old_key,
        "old key kept"
    );
    let new_der = der(&layout.agency_cert(code));
    assert_ne!(new_der, old_der);
    assert_ne!(issued.cert.info.serial, old_serial);
    // Both certificates chain: a node can switch over while the old one is still accepted.
    let ca_der = der(&layout.ca_cert());
    pki::verify_issued_by(&new_der, &ca_der).unwrap();
    pki::verify_issued_by(&old_der, &ca_der).unwrap();
}

#[test]
fn issue_validates_code_name_and_ca() {
    let tmp = fresh_pki();
    let err = pki::issue(tmp.path(), &IssueRequest::new("G22", "Test")).unwrap_err();
    assert!(matches!(err, PkiError::NonStandardCode { .. }), "{err}");
    assert!(!PkiLayout::new(tmp.path()).agency_cert("G22").exists());

    let req = IssueRequest {
        allow_nonstandard_code: true,
        ..IssueRequest::new("test-node_1", "Test node")
    };
    let issued = pki::issue(tmp.path(), &req).unwrap();
    assert_eq!(
        pki::agency_code_of(&issued.cert.der).unwrap().as_deref(),
        Some("test-node_1")
    );

    let req = IssueRequest {
        allow_nonstandard_code: true,
        ..IssueRequest::new("../ca", "Escape")
    };
    let err = pki::issue(tmp.path(), &req).unwrap_err();
    assert!(matches!(err, PkiError::UnsafeCode { .. }), "{err}");

    let err = pki::issue(tmp.path(), &IssueRequest::new("000.00.00.H29", " ")).unwrap_err();
    assert!(matches!(err, PkiError::InvalidName { .. }), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = pki::issue(empty.path(), &IssueRequest::new("000.00.00.H29", "X")).unwrap_err();
    assert!(matches!(err, PkiError::CaMissing { .. }), "{err}");
    assert!(err.to_string().contains("ca.pem"), "{err}");
}

#[test]
fn issue_refuses_a_ca_key_that_does_not_match() {
    let tmp = fresh_pki();
    let other = fresh_pki();
    let layout = PkiLayout::new(tmp.path());
    std::fs::copy(PkiLayout::new(other.path()).ca_key(), layout.ca_key()).unwrap();
    let err = pki::issue(tmp.path(), &IssueRequest::new("000.00.00.H29", "X")).unwrap_err();
    assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
}

#[test]
fn expired_and_not_yet_valid_certificates() {
    let tmp = fresh_pki();
    let now = OffsetDateTime::now_utc();

    let expired = IssueRequest {
        not_before: Some(now - Duration::days(30)),
        not_after: Some(now - Duration::days(1)),
        ..IssueRequest::new("000.00.00.H29", "Expired agency")
    };
    let issued = pki::issue(tmp.path(), &expired).unwrap();
    let cert_der = der(&issued.cert.cert_path);
    let cert = parse(&cert_der);
    assert!(!cert.validity().is_valid());
    assert!(cert.validity().not_after.to_datetime() < now);
    pki::verify_issued_by(&cert_der, &der(&PkiLayout::new(tmp.path()).ca_cert())).unwrap();
    let (ok, text) = openssl_verify(tmp.path(), &issued.cert.cert_path, "sslclient", false);
    assert!(!ok && text.contains("certificate has expired"), "{text}");

    let future = IssueRequest {
        not_before: Some(now + Duration::days(1)),
        ..IssueRequest::new("000.00.00.H26", "Future agency")
    };
    let issued = pki::issue(tmp.path(), &future).unwrap();
    let (ok, text) = openssl_verify(tmp.path(), &issued.cert.cert_path, "sslclient", false);
    assert!(
        !ok && text.contains("certificate is not yet valid"),
        "{text}"
    );

    let backwards = IssueRequest {
        not_before: Some(now),
        not_after: Some(now - Duration::days(1)),
        ..IssueRequest::new("000.00.00.H30", "Backwards")
    };
    let err = pki::issue(tmp.path(), &backwards).unwrap_err();
    assert!(matches!(err, PkiError::EmptyValidity { .. }), "{err}");
}

#[test]
fn revoke_extends_the_crl() {
    let tmp = fresh_pki();
    let layout = PkiLayout::new(tmp.path());
    let ca_der = der(&layout.ca_cert());
    let h14 = layout.agency_cert("000.00.00.H14");
    let h41 = layout.agency_cert("000.00.00.H41");
    let g22 = layout.agency_cert("000.00.00.G22");
    let h14_serial = pki::cert_info(&der(&h14)).unwrap().serial;
    let h41_serial = pki::cert_info(&der(&h41)).unwrap().serial;

    let first = pki::revoke(tmp.path(), "000.00.00.H14").unwrap();
    assert_eq!(first.serial, h14_serial);
    assert_eq!(first.crl_number, 2);
    assert_eq!(first.revoked_serials, std::slice::from_ref(&h14_serial));
    let info = pki::read_crl(&pki::load_crl_pem(&layout.crl()).unwrap(), &ca_der).unwrap();
    assert_eq!(info.number, 2);
    assert_eq!(info.entries.len(), 1);
    assert_eq!(info.entries[0].serial, h14_serial);
    assert_eq!(info.entries[0].reason, Some("keyCompromise"));
    let first_revoked_at = info.entries[0].revoked_at;

    // openssl sees the serial, the reason, and a valid CA signature.
    let (ok, text) = openssl(&[
        "crl",
        "-in",
        s(&layout.crl()),
        "-CAfile",
        s(&layout.ca_cert()),
        "-noout",
        "-text",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");
    assert!(
        text.to_uppercase().contains(&h14_serial.to_uppercase()),
        "{text}"
    );
    assert!(text.contains("Key Compromise"), "{text}");
    assert_eq!(crl_number_shown(&text), Some("2"), "{text}");

    let (ok, text) = openssl_verify(tmp.path(), &h14, "sslclient", true);
    assert!(
        !ok && text.contains("certificate revoked"),
        "revoked: {text}"
    );
    let (ok, text) = openssl_verify(tmp.path(), &h41, "sslclient", true);
    assert!(ok, "not revoked: {text}");

    // A second revocation keeps the first.
    let second = pki::revoke(tmp.path(), "000.00.00.H41").unwrap();
    assert_eq!(second.crl_number, 3);
    assert_eq!(
        second.revoked_serials,
        [h14_serial.clone(), h41_serial.clone()]
    );
    let info = pki::read_crl(&pki::load_crl_pem(&layout.crl()).unwrap(), &ca_der).unwrap();
    assert_eq!(info.number, 3);
    let serials: Vec<_> = info.entries.iter().map(|e| e.serial.as_str()).collect();
    assert_eq!(serials, [h14_serial.as_str(), h41_serial.as_str()]);
    assert_eq!(
        info.entries[0].revoked_at, first_revoked_at,
        "kept as first recorded"
    );
    for revoked in [&h14, &h41] {
        let (ok, text) = openssl_verify(tmp.path(), revoked, "sslserver", true);
        assert!(!ok && text.contains("certificate revoked"), "{text}");
    }
    let (ok, text) = openssl_verify(tmp.path(), &g22, "sslserver", true);
    assert!(ok, "{text}");

    // Revoking again is refused; the CRL stays as it was.
    let crl_before = std::fs::read(layout.crl()).unwrap();
    let err = pki::revoke(tmp.path(), "000.00.00.H14").unwrap_err();
    assert!(matches!(err, PkiError::AlreadyRevoked { .. }), "{err}");
    assert_eq!(std::fs::read(layout.crl()).unwrap(), crl_before);

    let err = pki::revoke(tmp.path(), "000.00.00.H99").unwrap_err();
    assert!(matches!(err, PkiError::AgencyMissing { .. }), "{err}");
}

#[test]
fn revoke_refuses_a_crl_the_ca_did_not_sign() {
    let tmp = fresh_pki();
    let other = fresh_pki();
    let layout = PkiLayout::new(tmp.path());
    std::fs::copy(PkiLayout::new(other.path()).crl(), layout.crl()).unwrap();
    let err = pki::revoke(tmp.path(), "000.00.00.G22").unwrap_err();
    assert!(matches!(err, PkiError::NotSignedBy { .. }), "{err}");
    assert!(err.to_string().contains("crl.pem"), "{err}");
}

#[test]
fn revoke_refuses_a_certificate_from_another_ca() {
    let tmp = fresh_pki();
    let other = fresh_pki();
    let layout = PkiLayout::new(tmp.path());
    std::fs::copy(
        PkiLayout::new(other.path()).agency_cert("000.00.00.G22"),
        layout.agency_cert("000.00.00.G22"),
    )
    .unwrap();
    let err = pki::revoke(tmp.path(), "000.00.00.G22").unwrap_err();
    assert!(matches!(err, PkiError::NotSignedBy { .. }), "{err}");
}
