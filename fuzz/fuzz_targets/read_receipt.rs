//! Fuzz target: the strict hub-receipt reader on arbitrary bytes. It must never panic, hang
//! or blow up memory; whatever it accepts must write back to a receipt that reads the same
//! (the canonical writer and the strict reader agree).
#![no_main]

use dsig::receipt::HubReceipt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(receipt) = HubReceipt::parse(data) {
        let again = HubReceipt::parse(&receipt.to_xml())
            .unwrap_or_else(|e| panic!("the canonical writer's receipt is refused: {e}"));
        assert_eq!(again, receipt);
    }
});
