//! The committed development PKI in `certs/` is coherent and usable: every certificate chains to
//! the CA and is currently valid, carries the right agency code, its key file holds its private
//! key, and the CRL is signed by the CA and revokes nothing. Checked with the library and with
//! the `openssl` command-line tool (required; the test fails with a clear message without it).
//!
//! These tests only read `certs/`; anything that changes a PKI works on a temporary copy.

use std::path::{Path, PathBuf};
use std::process::Command;

use docaxis_dsig::pki::{self, PkiLayout};
use rustls_pki_types::PrivateKeyDer;

const AGENCIES: [(&str, &str); 3] = [
    ("000.00.00.G22", "Văn phòng Chính phủ"),
    ("000.00.00.H41", "UBND Tỉnh Nghệ An"),
    ("000.00.00.H14", "UBND Tỉnh Cao Bằng"),
];

fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs")
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs the `openssl` command-line tool (apt-get install openssl): {e}")
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

/// The certificate of `cert_path` is currently valid, issued by the CA, and `key_path` holds its
/// PKCS#8 private key.
fn check_leaf(cert_path: &Path, key_path: &Path, ca_der: &[u8]) -> pki::CertInfo {
    let der = pki::load_cert_pem(cert_path).unwrap();
    pki::verify_issued_by(&der, ca_der).unwrap();
    let info = pki::cert_info(&der).unwrap();
    let now = time::OffsetDateTime::now_utc();
    assert!(
        info.not_before <= now && now < info.not_after,
        "{} is valid {} to {}: remake certs/ (see certs/README.md)",
        cert_path.display(),
        info.not_before,
        info.not_after
    );
    let key = pki::load_private_key_pem(key_path).unwrap();
    assert!(
        matches!(key, PrivateKeyDer::Pkcs8(_)),
        "{}",
        key_path.display()
    );
    let pair = rcgen::KeyPair::from_pem(&std::fs::read_to_string(key_path).unwrap()).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        pair.public_key_raw(),
        parsed.public_key().subject_public_key.data.as_ref(),
        "{} belongs to {}",
        key_path.display(),
        cert_path.display()
    );
    for purpose in ["sslclient", "sslserver"] {
        let layout = PkiLayout::new(certs_dir());
        let (ok, text) = openssl(&[
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            s(&layout.ca_cert()),
            "-crl_check",
            "-CRLfile",
            s(&layout.crl()),
            s(cert_path),
        ]);
        assert!(ok, "{} for {purpose}: {text}", cert_path.display());
    }
    info
}

#[test]
fn committed_dev_pki_is_coherent() {
    let layout = PkiLayout::new(certs_dir());

    let ca_der = pki::load_cert_pem(&layout.ca_cert()).unwrap();
    pki::verify_issued_by(&ca_der, &ca_der).unwrap();
    let ca = pki::cert_info(&ca_der).unwrap();
    assert_eq!(
        ca.subject,
        format!(
            "C=VN, O={}, CN={}",
            pki::DEV_ORGANIZATION,
            pki::CA_COMMON_NAME
        )
    );
    assert!(ca.subject.contains("NOT FOR PRODUCTION"));
    assert_eq!(ca.agency_code, None);
    let (_, parsed_ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    assert!(parsed_ca.is_ca());
    assert!(parsed_ca.validity().is_valid(), "CA expired: remake certs/");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(layout.ca_key()).unwrap()).unwrap();
    assert_eq!(
        ca_key.public_key_raw(),
        parsed_ca.public_key().subject_public_key.data.as_ref(),
        "ca.key.pem belongs to ca.pem"
    );

    let crl = pki::load_crl_pem(&layout.crl()).unwrap();
    let crl_info = pki::read_crl(&crl, &ca_der).unwrap();
    assert!(
        crl_info.entries.is_empty(),
        "the committed CRL revokes nothing"
    );
    let next_update = crl_info.next_update.expect("nextUpdate");
    assert!(
        next_update > time::OffsetDateTime::now_utc(),
        "CRL expired: remake certs/"
    );
    let (ok, text) = openssl(&[
        "crl",
        "-in",
        s(&layout.crl()),
        "-CAfile",
        s(&layout.ca_cert()),
        "-noout",
    ]);
    assert!(ok && text.contains("verify OK"), "{text}");

    let hub = check_leaf(&layout.hub_cert(), &layout.hub_key(), &ca_der);
    assert_eq!(hub.agency_code, None);
    assert_eq!(
        hub.subject,
        format!(
            "C=VN, O={}, CN={}",
            pki::DEV_ORGANIZATION,
            pki::HUB_COMMON_NAME
        )
    );

    for (code, name) in AGENCIES {
        let info = check_leaf(&layout.agency_cert(code), &layout.agency_key(code), &ca_der);
        assert_eq!(info.agency_code.as_deref(), Some(code));
        assert_eq!(
            info.subject,
            format!("C=VN, O={name}, CN={name}, UID={code}")
        );
    }
}

#[test]
fn committed_dev_pki_has_exactly_the_documented_files() {
    let dir = certs_dir();
    let mut files: Vec<String> = Vec::new();
    for entry in walk(&dir) {
        files.push(
            entry
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
    }
    files.sort();
    let mut expected: Vec<String> = [
        "README.md",
        "ca.key.pem",
        "ca.pem",
        "crl.pem",
        "hub.key.pem",
        "hub.pem",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for (code, _) in AGENCIES {
        expected.push(format!("agencies/{code}.pem"));
        expected.push(format!("agencies/{code}.key.pem"));
    }
    expected.sort();
    assert_eq!(files, expected);
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("NOT FOR PRODUCTION"));
    assert!(readme.contains("0.9.2342.19200300.100.1.1"));
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
