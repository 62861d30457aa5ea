//! Fuzz target: the signature profile scanner and strict verifier on arbitrary bytes, against
//! the committed development CA, in the strict and the lenient (unsigned legacy) policy. It
//! must never panic, hang or blow up memory, and a signed verdict must name the digest of
//! exactly the bytes given. Differentially: on the hub's path (one parse shared with the
//! schema, `verify_parsed`) the verdict must be the same whenever that parse succeeds.
#![no_main]

use std::sync::OnceLock;

use dsig::{ParsedPacket, TrustStore, Verdict, VerifyPolicy, verify_packet, verify_parsed};
use libfuzzer_sys::fuzz_target;

fn trust() -> &'static TrustStore {
    static TRUST: OnceLock<TrustStore> = OnceLock::new();
    TRUST.get_or_init(|| {
        let ca = include_bytes!("../../certs/ca.pem");
        TrustStore::from_pem(&[ca], &[]).expect("the development CA loads")
    })
}

fuzz_target!(|data: &[u8]| {
    let strict = VerifyPolicy::default();
    // Arbitrary bytes never carry a valid signature of the development CA's agencies unless
    // the corpus seeded one; either way the digest must be that of the input.
    let verdict = verify_packet(data, trust(), &strict);
    if let Ok(Verdict::Signed(signed)) = &verdict {
        assert_eq!(signed.packet_sha256, sha256(data));
    }
    if let Ok(parsed) = ParsedPacket::parse(data, &strict.limits) {
        let shared = verify_parsed(&parsed, trust(), &strict);
        assert_eq!(
            shared.as_ref().map_err(|e| e.to_string()),
            verdict.as_ref().map_err(|e| e.to_string()),
            "the shared parse changed the verdict"
        );
    }
    let lenient = VerifyPolicy {
        accept_unsigned_legacy: true,
        ..VerifyPolicy::default()
    };
    let _ = verify_packet(data, trust(), &lenient);
});

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
