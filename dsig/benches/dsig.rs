//! Signing and verification throughput: DocAxis (bergshamra 0.11.1 on aws-lc) against
//! Debian's `xmlsec1` (OpenSSL), for ~10 KB and ~5 MB packets, RSA-2048 and ECDSA P-256.
//!
//! Plain `main` (harness = false) that prints a table; every cell runs for a bounded time
//! (about three seconds, or fewer iterations for slow operations), so the whole run takes
//! one to two minutes. `xmlsec1` is spawned once per operation, as a caller without a
//! library binding would; the table header gives the bare spawn cost measured in the same
//! run. Run with `cargo bench -p docaxis --bench dsig`.

#[path = "../tests/it/support.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use docaxis_dsig::{SigningIdentity, TrustStore, VerifyPolicy, sign_packet, verify_packet};
use support::{Ca, KeyKind, Leaf};

const BUDGET: Duration = Duration::from_secs(3);
const MAX_ITERS: u32 = 2000;

/// Runs `f` until the budget is spent (at least 3 runs, after one warm-up); returns
/// (operations per second, milliseconds per operation).
fn measure(mut f: impl FnMut()) -> (f64, f64) {
    f();
    let start = Instant::now();
    let mut n = 0u32;
    while n < 3 || (start.elapsed() < BUDGET && n < MAX_ITERS) {
        f();
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (f64::from(n) / secs, secs * 1000.0 / f64::from(n))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("cannot run xmlsec1");
    assert!(
        out.status.success(),
        "xmlsec1 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn template(unsigned: &str, alg_uri: &str) -> String {
    let sig = format!(
        "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>\
         <ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>\
         <ds:SignatureMethod Algorithm=\"{alg_uri}\"/><ds:Reference URI=\"\"><ds:Transforms>\
         <ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>\
         <ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/></ds:Transforms>\
         <ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/>\
         <ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo>\
         <ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"
    );
    let at = unsigned
        .find("</edXML:edXMLHeader>")
        .expect("packet has a header");
    format!("{}{}{}", &unsigned[..at], sig, &unsigned[at..])
}

struct Row {
    key: &'static str,
    size: String,
    cells: [(f64, f64); 4],
}

#[allow(clippy::too_many_arguments)]
fn bench_case(
    dir: &Path,
    key_name: &'static str,
    root: &Ca,
    inter: &Ca,
    leaf: &Leaf,
    size: usize,
    size_label: &str,
) -> Row {
    let id =
        SigningIdentity::from_pem(leaf.key_pem.as_bytes(), leaf.chain_pem(&[inter]).as_bytes())
            .expect("identity");
    let trust = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).expect("trust");
    let policy = VerifyPolicy::default();
    let unsigned = support::packet_of_size("000.00.00.G22", size);
    let signed = sign_packet(unsigned.as_bytes(), &id).expect("sign");
    verify_packet(&signed, &trust, &policy).expect("verify");

    let docaxis_sign = measure(|| {
        std::hint::black_box(sign_packet(unsigned.as_bytes(), &id).expect("sign"));
    });
    let docaxis_verify = measure(|| {
        std::hint::black_box(verify_packet(&signed, &trust, &policy).expect("verify"));
    });

    let p = |name: &str| dir.join(format!("{key_name}-{size_label}-{name}"));
    std::fs::write(p("key.pem"), &leaf.key_pem).unwrap();
    std::fs::write(p("leaf.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(p("inter.pem"), &inter.cert_pem).unwrap();
    std::fs::write(p("root.pem"), &root.cert_pem).unwrap();
    std::fs::write(
        p("tmpl.xml"),
        template(&unsigned, id.signature_algorithm().uri()),
    )
    .unwrap();
    std::fs::write(p("signed.xml"), &signed).unwrap();
    let keyspec = format!(
        "{},{},{}",
        p("key.pem").display(),
        p("leaf.pem").display(),
        p("inter.pem").display()
    );
    let xmlsec_sign = measure(|| {
        run(Command::new("xmlsec1")
            .args(["--sign", "--privkey-pem", &keyspec, "--output"])
            .arg(p("out.xml"))
            .arg(p("tmpl.xml")));
    });
    let xmlsec_verify = measure(|| {
        run(Command::new("xmlsec1")
            .args(["--verify", "--enabled-key-data", "x509", "--trusted-pem"])
            .arg(p("root.pem"))
            .arg(p("signed.xml")));
    });
    // The xmlsec1-signed output must verify with DocAxis (sanity of the comparison).
    let by_xmlsec = std::fs::read(p("out.xml")).unwrap();
    verify_packet(&by_xmlsec, &trust, &policy).expect("DocAxis verifies xmlsec1 output");

    Row {
        key: key_name,
        size: format!(
            "{size_label} ({:.0} KiB signed)",
            signed.len() as f64 / 1024.0
        ),
        cells: [docaxis_sign, docaxis_verify, xmlsec_sign, xmlsec_verify],
    }
}

fn main() {
    if !support::xmlsec1_available() {
        eprintln!("xmlsec1 is not installed: install xmlsec1 (apt-get install xmlsec1)");
        std::process::exit(1);
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let spawn = measure(|| run(Command::new("xmlsec1").arg("--version")));
    let version = Command::new("xmlsec1")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();

    let root = Ca::root("Bench Root");
    let inter = root.intermediate("Bench Agency CA");
    let rsa = inter.leaf("000.00.00.G22", "Bench RSA signer", KeyKind::Rsa2048);
    let ec = inter.leaf("000.00.00.G22", "Bench EC signer", KeyKind::EcP256);

    let mut rows = Vec::new();
    for (name, leaf) in [("RSA-2048", &rsa), ("ECDSA P-256", &ec)] {
        for (size, label) in [(10 * 1024, "10 KB"), (5 * 1024 * 1024, "5 MB")] {
            rows.push(bench_case(
                dir.path(),
                name,
                &root,
                &inter,
                leaf,
                size,
                label,
            ));
        }
    }

    println!();
    println!("dsig benchmark: DocAxis (bergshamra 0.11.1, aws-lc) vs {version}, single thread");
    println!(
        "xmlsec1 runs as one process per operation; bare spawn+exit (xmlsec1 --version) = \
         {:.2} ms, included in its figures. Signer chain: leaf + intermediate, verified \
         against the root.",
        spawn.1
    );
    println!();
    println!(
        "| {:<11} | {:<23} | {:<21} | {:<21} | {:<21} | {:<21} |",
        "key", "packet", "DocAxis sign", "DocAxis verify", "xmlsec1 sign", "xmlsec1 verify"
    );
    println!(
        "|{}|{}|{}|{}|{}|{}|",
        "-".repeat(13),
        "-".repeat(25),
        "-".repeat(23),
        "-".repeat(23),
        "-".repeat(23),
        "-".repeat(23)
    );
    for r in &rows {
        let cell = |(ops, ms): (f64, f64)| format!("{ops:8.1}/s {ms:7.2} ms");
        println!(
            "| {:<11} | {:<23} | {} | {} | {} | {} |",
            r.key,
            r.size,
            cell(r.cells[0]),
            cell(r.cells[1]),
            cell(r.cells[2]),
            cell(r.cells[3])
        );
    }
    println!();
    println!("total run time {:.1} s", started.elapsed().as_secs_f64());
}
