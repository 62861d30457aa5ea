//! What one hub receipt costs: signing it (`sign_root`) and verifying it against the pinned
//! hub certificate (`verify_root`), the step every node takes for every receipt, and the parts
//! of a verification measured alone (reading the certificate, parsing the XML); then the same
//! with receipts signed in batches (`dsig::batch`): signing a batch of 8, and a node's check of
//! a receipt whose batch's signature it has already verified. Single thread,
//! ECDSA P-256 (the development hub key in `certs/`). Plain `main` printing a table; about ten
//! seconds. Run with `cargo bench -p docaxis-dsig --bench receipt`.

use std::time::{Duration, Instant};

use docaxis_dsig::batch::{HeadCache, sign_batch, verify_receipt};
use docaxis_dsig::receipt::{HubReceipt, ReceiptKind};
use docaxis_dsig::{SigningIdentity, sign_root, verify_root};

const BUDGET: Duration = Duration::from_secs(2);

/// Runs `f` for about [`BUDGET`] after a warm-up; returns microseconds per call.
fn measure(mut f: impl FnMut()) -> f64 {
    for _ in 0..20 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < BUDGET {
        f();
        n += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../certs");
    let key = std::fs::read(format!("{certs}/hub.key.pem")).expect("certs/hub.key.pem");
    let cert = std::fs::read(format!("{certs}/hub.pem")).expect("certs/hub.pem");
    let hub = SigningIdentity::from_pem(&key, &cert).expect("the development hub identity");
    let hub_der = hub.chain()[0].clone();
    let receipt = HubReceipt {
        kind: ReceiptKind::Delivery,
        packet_id: "ab".repeat(32),
        packet_kind: "document".into(),
        from: "000.00.00.G22".into(),
        document_id: "000.00.00.G22,2026/12/07,7816/VPCP-TTĐT".into(),
        hub_time: time::OffsetDateTime::now_utc(),
        accepted: Vec::new(),
        refused: Vec::new(),
        delivered_to: Some("000.00.00.H41".into()),
    };
    let xml = receipt.to_xml();
    let signed = sign_root(&xml, &hub).expect("sign");
    let text = std::str::from_utf8(&signed).expect("UTF-8");
    let eight: Vec<Vec<u8>> = (0..8)
        .map(|i| {
            let mut r = receipt.clone();
            r.packet_id = format!("{i:064x}");
            r.to_xml()
        })
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let batch = sign_batch(&eight, &hub, now).expect("sign a batch");
    let heads = HeadCache::default();
    verify_receipt(&batch[3], &hub_der, &heads).expect("verify a batched receipt");

    let rows = [
        (
            "sign_root (hub signs one receipt)",
            measure(|| {
                sign_root(&xml, &hub).expect("sign");
            }),
        ),
        (
            "verify_root (a node checks one receipt)",
            measure(|| verify_root(&signed, &hub_der).expect("verify")),
        ),
        (
            "  of which: load the pinned certificate's key",
            measure(|| {
                bergshamra::keys::loader::load_x509_cert_der(&hub_der).expect("key");
            }),
        ),
        (
            "  of which: parse the receipt (uppsala)",
            measure(|| {
                uppsala::parse(text).expect("parse");
            }),
        ),
        (
            "HubReceipt::parse (reading its fields)",
            measure(|| {
                HubReceipt::parse(&signed).expect("fields");
            }),
        ),
        (
            "sign_batch of 8 receipts, per receipt",
            measure(|| {
                sign_batch(&eight, &hub, now).expect("sign a batch");
            }) / 8.0,
        ),
        (
            "verify_receipt, its batch's head already verified",
            measure(|| {
                verify_receipt(&batch[5], &hub_der, &heads).expect("verify");
            }),
        ),
        (
            "verify_receipt, first of its batch (head verified)",
            measure(|| {
                verify_receipt(&batch[5], &hub_der, &HeadCache::default()).expect("verify");
            }),
        ),
    ];
    println!();
    println!(
        "hub receipt ({} bytes signed), ECDSA P-256, single thread",
        signed.len()
    );
    println!();
    println!("| {:<52} | {:>10} |", "operation", "µs");
    println!("|{}|{}|", "-".repeat(54), "-".repeat(12));
    for (what, us) in rows {
        println!("| {what:<52} | {us:>10.1} |");
    }
}
