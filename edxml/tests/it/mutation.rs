//! Mutation testing of the reader (a cheap, always-on companion of the `fuzz/` target): the
//! conformance packets are damaged at random (bit flips, insertions, deletions, truncations,
//! duplicated slices, XML tokens dropped in) and the reader must never panic; whatever it still
//! accepts must survive a write/read cycle unchanged, and strict mode never accepts what lenient
//! mode refuses.

use std::path::Path;

use docaxis_edxml::{ReadOptions, read, write};
use proptest::prelude::*;

const FILES: [&str; 4] = [
    "document_new.edxml",
    "status_01_received.edxml",
    "status_03_accepted.edxml",
    "status_13_takeback.edxml",
];

const TOKENS: [&str; 16] = [
    "<",
    "&",
    "&lt;",
    "&#0;",
    "&#x10FFFF;",
    "<!DOCTYPE x>",
    "]]>",
    "<![CDATA[a]]>",
    "<edXML:To>",
    "</edXML:To>",
    "<edXML:Unknown/>",
    "xmlns:edXML=\"urn:x\" ",
    "cid:",
    "\u{0}",
    "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"/>",
    "Đ",
];

fn conformance(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/conformance")
            .join(name),
    )
    .unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    Truncate(usize),
    Duplicate(usize, usize),
    Token(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0..8u8).prop_map(|(p, bit)| Mutation::Flip(p, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Insert(p, b)),
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 1..400usize).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Mutation::Token(p, t)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |p: usize| p % bytes.len();
    match *m {
        Mutation::Flip(p, bit) => {
            let i = at(p);
            bytes[i] ^= 1 << bit;
        }
        Mutation::Insert(p, b) => {
            let i = at(p);
            bytes.insert(i, b);
        }
        Mutation::Delete(p) => {
            let i = at(p);
            bytes.remove(i);
        }
        Mutation::Truncate(p) => {
            let i = at(p);
            bytes.truncate(i);
        }
        Mutation::Duplicate(p, n) => {
            let i = at(p);
            let end = (i + n).min(bytes.len());
            let slice = bytes[i..end].to_vec();
            bytes.splice(end..end, slice);
        }
        Mutation::Token(p, t) => {
            let i = at(p);
            bytes.splice(i..i, TOKENS[t].bytes());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn damaged_packets_never_panic_and_accepted_ones_round_trip(
        file in 0..FILES.len(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut bytes = conformance(FILES[file]);
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let lenient = read(&bytes, &ReadOptions::default());
        let strict = read(&bytes, &ReadOptions::strict());
        prop_assert!(strict.is_err() || lenient.is_ok());
        match lenient {
            Ok(outcome) => {
                if let Ok(written) = write(&outcome.packet) {
                    let again = read(&written, &ReadOptions::default());
                    prop_assert!(again.is_ok(), "writer output refused: {:?}", again.err());
                    prop_assert_eq!(again.unwrap().packet, outcome.packet);
                }
            }
            Err(e) => {
                prop_assert!(e.line >= 1 && e.column >= 1);
                prop_assert!(e.path.starts_with('/'));
            }
        }
    }
}
