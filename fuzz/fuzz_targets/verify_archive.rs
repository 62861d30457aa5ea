//! Fuzz target: `docaxis archive verify` on arbitrary bytes (a container from anywhere). It
//! must never panic, hang or blow up memory, and never call anything valid without a trusted
//! anchor: with no anchor at all, nothing verifies.
#![no_main]

use archive::{Verdict, VerifyOptions, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = VerifyOptions {
        limits: archive::container::Limits {
            max_entries: 64,
            max_entry_bytes: 1 << 20,
            max_total_bytes: 4 << 20,
        },
        ..VerifyOptions::default()
    };
    let report = verify(data, &opts);
    assert_ne!(report.verdict, Verdict::Valid, "valid with no trusted CA");
    // The manifest reader on its own, too.
    let _ = archive::manifest::Manifest::parse(data);
});
