//! Simple types that this module checks in Rust instead of handing them to uppsala.
//!
//! Owns: the list of such types and, for each, a check with exactly the semantics of its
//! declaration in the schema.
//!
//! Why: the attachment payload (`edXML:Base64PayloadType`, tens of MB of base64) dominates
//! validation. uppsala 0.12 checks `xs:base64Binary` by copying the text several times, char by
//! char: about 25 ms per MB (0.5 s for a 20 MB packet, 2.8 s for 64 MB). The native check is
//! one pass over the bytes, without allocation.
//!
//! Invariants:
//! - A native check accepts exactly the values its schema type accepts. The schema type must be
//!   declared exactly as [`NativeType::declaration`] says (built-in base and facets);
//!   composition refuses the schema otherwise, so the XSD and this file cannot drift apart.
//! - Messages name the offending offset and are short (they never quote the payload).

/// A simple type with a native check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NativeType {
    /// `edXML:Base64PayloadType`: `xs:base64Binary` with `minLength="1"`.
    Base64Payload,
}

/// How the schema must declare a native type.
pub(crate) struct Declaration {
    /// Name of the simple type in the schema's target namespace.
    pub(crate) type_name: &'static str,
    /// Local name of its built-in base type (XML Schema namespace).
    pub(crate) base: &'static str,
    /// Its facets, (facet element local name, value), in order; nothing else is allowed.
    pub(crate) facets: &'static [(&'static str, &'static str)],
}

impl NativeType {
    /// Every native type.
    pub(crate) const ALL: [NativeType; 1] = [NativeType::Base64Payload];

    /// The declaration whose semantics [`NativeType::check`] implements.
    pub(crate) const fn declaration(self) -> Declaration {
        match self {
            NativeType::Base64Payload => Declaration {
                type_name: "Base64PayloadType",
                base: "base64Binary",
                facets: &[("minLength", "1")],
            },
        }
    }

    /// Checks a value (the concatenated character data of the element).
    pub(crate) fn check(self, value: &str) -> Result<(), String> {
        match self {
            NativeType::Base64Payload => base64_binary_non_empty(value.as_bytes()),
        }
    }
}

/// XML whitespace.
const fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

const fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Byte classes for the fast path.
const OTHER: u8 = 0;
const ALPHABET: u8 = 1;
const SPACE: u8 = 2;
const PAD: u8 = 3;

static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if is_b64(b) {
            ALPHABET
        } else if is_xml_space(b) {
            SPACE
        } else if b == b'=' {
            PAD
        } else {
            OTHER
        };
        i += 1;
    }
    t
};

/// `xs:base64Binary` (XSD 1.0 Part 2, 3.2.16) with `minLength="1"`.
///
/// After whiteSpace=collapse the lexical grammar allows one space after any character but the
/// last, so whitespace anywhere is accepted and ignored. Without it the value must be whole
/// groups of four alphabet characters, the last group possibly `xx==` with its second
/// character in `[AQgw]` or `xxx=` with its third in `[AEIMQUYcgkosw048]` (unused bits zero),
/// and `=` nowhere else. The empty value (0 octets) fails minLength.
///
/// A table-driven pass accepts the common case (about 1 ns per byte); anything unusual goes to
/// [`base64_binary_precise`], which judges every value and words the reason. The fast pass
/// only ever accepts values the precise one accepts.
fn base64_binary_non_empty(value: &[u8]) -> Result<(), String> {
    let (mut count, mut pads) = (0usize, 0usize);
    for &b in value {
        match CLASS[b as usize] {
            ALPHABET if pads == 0 => count += 1,
            SPACE => {}
            PAD => {
                pads += 1;
                count += 1;
            }
            _ => return base64_binary_precise(value),
        }
    }
    if count == 0 || !count.is_multiple_of(4) || pads > 2 {
        return base64_binary_precise(value);
    }
    if pads > 0 {
        // The final group, last character first: d c b a.
        let mut last = value.iter().rev().filter(|&&b| !is_xml_space(b));
        let (_d, c, b) = (last.next(), last.next(), last.next());
        let canonical = match (pads, c, b) {
            (1, Some(c), _) => b"AEIMQUYcgkosw048".contains(c),
            (2, _, Some(b)) => b"AQgw".contains(b),
            _ => false,
        };
        if !canonical {
            return base64_binary_precise(value);
        }
    }
    Ok(())
}

/// The same judgement as [`base64_binary_non_empty`], group by group, naming what is wrong.
fn base64_binary_precise(value: &[u8]) -> Result<(), String> {
    let mut count = 0usize;
    // Offsets (in `value`) of the significant characters of the current group.
    let mut group = [0usize; 4];
    // Padding seen: the value must end right after the group that holds it.
    let mut padded_group_end = false;
    for (offset, &b) in value.iter().enumerate() {
        if is_xml_space(b) {
            continue;
        }
        if padded_group_end {
            return Err(format!(
                "base64 payload continues after its '=' padding, at offset {offset}"
            ));
        }
        if !is_b64(b) && b != b'=' {
            return Err(bad_char(b, offset));
        }
        let slot = count % 4;
        group[slot] = offset;
        count += 1;
        // Padding may only be the 3rd (then also the 4th, checked when the group closes) or
        // the 4th character of a group.
        if b == b'=' && slot < 2 {
            return Err(format!(
                "base64 payload has '=' padding before the end of a group, at offset {offset}"
            ));
        }
        if slot == 3 {
            let [_, b2, c, d] = group.map(|i| value[i]);
            match (c, d) {
                (b'=', b'=') => {
                    if !b"AQgw".contains(&b2) {
                        return Err(padding_bits(group[1]));
                    }
                    padded_group_end = true;
                }
                (b'=', _) => {
                    return Err(format!(
                        "base64 payload has '=' padding before the end of a group, at offset {}",
                        group[2]
                    ));
                }
                (_, b'=') => {
                    if !b"AEIMQUYcgkosw048".contains(&c) {
                        return Err(padding_bits(group[2]));
                    }
                    padded_group_end = true;
                }
                _ => {}
            }
        }
    }
    if count == 0 {
        return Err("base64 payload is empty".into());
    }
    if !count.is_multiple_of(4) {
        return Err(format!(
            "base64 payload has {count} characters, not a multiple of 4 (truncated?)"
        ));
    }
    Ok(())
}

fn padding_bits(offset: usize) -> String {
    format!(
        "base64 payload's final group has non-zero padding bits (character at offset {offset}); \
         it is not canonical base64"
    )
}

fn bad_char(b: u8, offset: usize) -> String {
    let shown = match b {
        0x21..=0x7e => format!("'{}'", b as char),
        _ => format!("byte 0x{b:02X}"),
    };
    format!(
        "base64 payload has {shown} at offset {offset}; only A-Z a-z 0-9 + / and final '=' \
         padding are allowed"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uppsala::XsdRegex;

    /// The XSD 1.0 lexical grammar of base64Binary (3.2.16), applied after collapse, as a
    /// regular expression; minLength 1 excludes the empty value.
    const GRAMMAR: &str = "((([A-Za-z0-9+/] ?){4})*(([A-Za-z0-9+/] ?){3}[A-Za-z0-9+/]|([A-Za-z0-9+/] ?){2}[AEIMQUYcgkosw048] ?=|[A-Za-z0-9+/] ?[AQgw] ?= ?=))";

    fn by_grammar(value: &str) -> bool {
        let collapsed = value
            .split([' ', '\t', '\n', '\r'])
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        XsdRegex::compile(GRAMMAR).unwrap().is_match(&collapsed)
    }

    fn check(v: &str) -> Result<(), String> {
        NativeType::Base64Payload.check(v)
    }

    #[test]
    fn accepts_base64binary_values() {
        for v in [
            "QQ==",
            "QUI=",
            "QUJD",
            "QUJDRA==",
            "  QUJD\n",
            "+/+/",
            "QUJD QUJD",
            "Q U J D",
            "QU\n\nJD",
            "QQ= =",
            "QUI =",
            "QUJD\t",
        ] {
            assert_eq!(check(v), Ok(()), "{v:?}");
            assert!(by_grammar(v), "{v:?}");
        }
    }

    #[test]
    fn refuses_with_a_precise_reason() {
        let cases = [
            ("", "empty"),
            (" \n ", "empty"),
            ("QUJ", "not a multiple of 4"),
            ("QU*D", "'*' at offset 2"),
            ("QUJDé", "byte 0xC3 at offset 4"),
            ("Q=JD", "before the end of a group, at offset 1"),
            ("QU=D", "before the end of a group, at offset 2"),
            ("QR==", "non-zero padding bits (character at offset 1)"),
            ("QUJ=", "non-zero padding bits (character at offset 2)"),
            ("QQ==QUJD", "continues after its '=' padding, at offset 4"),
            ("QUJD=", "before the end of a group, at offset 4"),
            ("QUJDQQ=", "not a multiple of 4"),
            ("Q===", "before the end of a group, at offset 1"),
            ("=QQQ", "at offset 0"),
        ];
        for (v, reason) in cases {
            let err = check(v).unwrap_err();
            assert!(err.contains(reason), "{v:?}: {err}");
            assert!(!by_grammar(v), "grammar accepts {v:?}");
        }
    }

    proptest! {
        /// The fast pass never decides differently from the precise one.
        #[test]
        fn fast_pass_equals_precise_pass(v in "[ABQJgwR+/= \n*]{0,14}") {
            prop_assert_eq!(
                base64_binary_non_empty(v.as_bytes()),
                base64_binary_precise(v.as_bytes()),
                "{:?}", v
            );
        }

        /// The native check and the XSD grammar agree on arbitrary short strings over the
        /// relevant alphabet (some base64 characters, '=', whitespace, a stray symbol).
        #[test]
        fn native_check_equals_the_grammar(v in "[ABQJgwR+/= \n\t*]{0,14}") {
            prop_assert_eq!(check(&v).is_ok(), by_grammar(&v), "{:?}", v);
        }

        /// ... and on values that are valid except, perhaps, for their final group.
        #[test]
        fn native_check_equals_the_grammar_near_valid(
            head in "([A-Za-z0-9+/]{4}){0,3}",
            tail in "[A-Za-z0-9+/= ]{4,5}",
        ) {
            let v = format!("{head}{tail}");
            prop_assert_eq!(check(&v).is_ok(), by_grammar(&v), "{:?}", v);
        }
    }
}
