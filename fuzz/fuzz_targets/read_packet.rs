//! Fuzz target: the edXML reader on arbitrary bytes. It must never panic, hang or blow up
//! memory; and whatever it accepts must survive a write/read cycle unchanged.
#![no_main]

use edxml::{ReadOptions, read, write};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lenient = read(data, &ReadOptions::default());
    let strict = read(data, &ReadOptions::strict());
    if strict.is_ok() {
        assert!(
            lenient.is_ok(),
            "strict mode accepted what lenient mode refused"
        );
    }
    if let Ok(outcome) = lenient {
        // The writer may refuse what lenient reading tolerated (e.g. an unpaired manifest
        // entry); anything it writes must read back as the same packet.
        if let Ok(bytes) = write(&outcome.packet) {
            let again = read(&bytes, &ReadOptions::default())
                .unwrap_or_else(|e| panic!("writer output refused: {e}"));
            assert_eq!(again.packet, outcome.packet);
        }
    }
});
