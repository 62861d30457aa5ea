//! Fuzz target: the strict hub-receipt reader on arbitrary bytes. It must never panic, hang
//! or blow up memory; whatever it accepts must write back to a receipt that reads the same
//! (the canonical writer and the strict reader agree). The batch-proof reader and the tree-head
//! reader (`dsig::batch`) take the same bytes: nothing panics, and a batch taken apart gives
//! back bytes without a batch.
#![no_main]

use dsig::batch::{Form, TreeHead, form};
use dsig::receipt::HubReceipt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(receipt) = HubReceipt::parse(data) {
        let again = HubReceipt::parse(&receipt.to_xml())
            .unwrap_or_else(|e| panic!("the canonical writer's receipt is refused: {e}"));
        assert_eq!(again, receipt);
    }
    if let Ok(Form::Batched(b)) = form(data) {
        assert!(b.unsigned.len() < data.len());
        assert!(matches!(form(&b.unsigned), Ok(Form::Enveloped)));
        let _ = TreeHead::parse(&b.head);
    }
    let _ = TreeHead::parse(data);
});
