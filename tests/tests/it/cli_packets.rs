//! The README's packet walk-through, run on the real binary: check, new, pki, sign, verify,
//! revoke — and an independent verifier (`xmlsec1`) agreeing with ours.

use docaxis_e2e::{repo_root, run, stderr, stdout};

fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn check_reports_field_packets_and_refuses_attacks_with_reasons() {
    let root = repo_root();
    let conf = root.join("examples/conformance");
    let out = run(&[
        "edxml",
        "check",
        "--json",
        s(&conf.join("document_new.edxml")),
        s(&conf.join("status_13_takeback.edxml")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["kind"], "document");
    assert_eq!(v[0]["from"], "000.00.00.G22");
    assert_eq!(v[0]["signature"], "unsigned (legacy)");
    assert_eq!(v[1]["status_code"], "13");
    assert_eq!(v[1]["to"][0], "000.00.00.H41");

    // The billion-laughs file from defusedxml (repository copy of shared/vectors/xml-attacks).
    let bomb = root.join("edxml/tests/data/edxml/xml-attacks/defusedxml/xmlbomb.xml");
    assert!(bomb.is_file(), "missing {}", bomb.display());
    let out = run(&["edxml", "check", s(&bomb)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a refused file makes the exit status 1"
    );
    let text = stdout(&out);
    assert!(text.contains("REFUSED"), "{text}");
    assert!(
        text.to_lowercase().contains("doctype"),
        "the reason names the DOCTYPE: {text}"
    );
}

#[test]
fn new_sign_verify_revoke_chain_and_xmlsec1_agrees() {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let out = run(&["pki", "init", s(&pki)]);
    assert!(out.status.success(), "{}", stderr(&out));

    let unsigned = tmp.path().join("cv.edxml");
    let spec = root.join("examples/cong-van-ket-noi.toml");
    let out = run(&["edxml", "new", "--spec", s(&spec), "-o", s(&unsigned)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["edxml", "check", "--schema", s(&unsigned)]);
    assert!(
        out.status.success(),
        "written packet is schema-valid: {}",
        stdout(&out)
    );

    let signed = tmp.path().join("cv.signed.edxml");
    let key = pki.join("agencies/000.00.00.G22.key.pem");
    let cert = pki.join("agencies/000.00.00.G22.pem");
    let out = run(&[
        "sign",
        "--key",
        s(&key),
        "--cert",
        s(&cert),
        s(&unsigned),
        "-o",
        s(&signed),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let ca = pki.join("ca.pem");
    let crl = pki.join("crl.pem");
    let out = run(&[
        "verify",
        "--json",
        "--trust",
        s(&ca),
        "--crl",
        s(&crl),
        s(&signed),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["ok"], true);
    assert_eq!(v[0]["agency_code"], "000.00.00.G22");

    let xmlsec = std::process::Command::new("xmlsec1")
        .args([
            "--verify",
            "--trusted-pem",
            s(&ca),
            "--enabled-key-data",
            "x509",
            s(&signed),
        ])
        .output()
        .expect("xmlsec1 is required: apt-get install xmlsec1 (scripts/test.sh does)");
    assert!(
        xmlsec.status.success(),
        "xmlsec1 refused our signature: {}",
        stderr(&xmlsec)
    );

    // One changed byte in the subject: both verifiers refuse.
    let text = std::fs::read_to_string(&signed).unwrap();
    let tampered = tmp.path().join("tampered.edxml");
    std::fs::write(&tampered, text.replacen("kết nối", "kết nốj", 1)).unwrap();
    let out = run(&["verify", "--trust", s(&ca), s(&tampered)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("modified after it was signed"),
        "{}",
        stdout(&out)
    );
    let xmlsec = std::process::Command::new("xmlsec1")
        .args([
            "--verify",
            "--trusted-pem",
            s(&ca),
            "--enabled-key-data",
            "x509",
            s(&tampered),
        ])
        .output()
        .unwrap();
    assert!(
        !xmlsec.status.success(),
        "xmlsec1 must refuse the tampered packet too"
    );

    // Revoking the signer makes the same packet untrusted.
    let out = run(&["pki", "revoke", "--dir", s(&pki), "--code", "000.00.00.G22"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["verify", "--trust", s(&ca), "--crl", s(&crl), s(&signed)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).to_lowercase().contains("revoked"),
        "{}",
        stdout(&out)
    );
}
