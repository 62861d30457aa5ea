//! Simple types that this module checks in Rust instead of handing them to uppsala.
//!
//! Owns: the list of such types and, for each, a check with exactly the semantics of its
//! declaration in the schema.
//!
//! Why: the attachment payload (`edXML:Base64PayloadType`, tens of MB of base64) dominates
//! validation. uppsala 0.12 checks `xs:base64Binary` by copying the text several times, char by
//! char (about 25 ms and 17 bytes of heap per byte of payload: 0.6 s and 355 MiB for 20 MB),
//! and a pattern facet over it is slower still (3 s for 20 MB). The native check is one pass
//! over the bytes, without allocation.
//!
//! Invariants:
//! - A native check accepts exactly the values its schema type accepts. The schema type must be
//!   declared exactly as [`NativeType::declaration`] says (base type and single pattern);
//!   composition refuses the schema otherwise, so the XSD and this file cannot drift apart.
//! - Messages name the offending offset and are short (they never quote the payload).

/// A simple type with a native check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NativeType {
    /// `edXML:Base64PayloadType`: one-line, canonical base64 of at least one byte.
    Base64Payload,
}

/// The pattern facet of `edXML:Base64PayloadType` (a restriction of `xs:base64Binary`):
/// groups of four alphabet characters, the last group possibly padded, with the unused bits of
/// a padded group zero (the canonical form, which every encoder writes).
pub(crate) const BASE64_PAYLOAD_PATTERN: &str = "([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)";

impl NativeType {
    /// Every native type.
    pub(crate) const ALL: [NativeType; 1] = [NativeType::Base64Payload];

    /// (type name in the target namespace, built-in base local name, pattern) as the schema
    /// must declare it.
    pub(crate) const fn declaration(self) -> (&'static str, &'static str, &'static str) {
        match self {
            NativeType::Base64Payload => {
                ("Base64PayloadType", "base64Binary", BASE64_PAYLOAD_PATTERN)
            }
        }
    }

    /// Checks a value (the concatenated character data of the element).
    pub(crate) fn check(self, value: &str) -> Result<(), String> {
        match self {
            NativeType::Base64Payload => base64_payload(value),
        }
    }
}

/// XML whitespace, which `xs:base64Binary`'s whiteSpace=collapse strips at both ends.
fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// `value` after whitespace collapse must match [`BASE64_PAYLOAD_PATTERN`]. Collapse trims the
/// ends and turns inner whitespace runs into one space, which the pattern refuses: so inner
/// whitespace of any kind is refused.
fn base64_payload(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    let start = bytes.iter().position(|&b| !is_xml_space(b));
    let Some(start) = start else {
        return Err("base64 payload is empty".into());
    };
    let end = bytes.iter().rposition(|&b| !is_xml_space(b)).map_or(start, |e| e + 1);
    let body = &bytes[start..end];

    let head = body.len() - body.len() % 4;
    if let Some(at) = body[..head.saturating_sub(4)].iter().position(|&b| !is_b64(b)) {
        return Err(bad_char(body[at], start + at));
    }
    if body.len() % 4 != 0 {
        if let Some(at) = body.iter().position(|&b| !is_b64(b)) {
            return Err(bad_char(body[at], start + at));
        }
        return Err(format!(
            "base64 payload length {} is not a multiple of 4",
            body.len()
        ));
    }
    let last_at = body.len() - 4;
    let last = &body[last_at..];
    let ok = match last {
        [a, b, c, d] if is_b64(*a) && is_b64(*b) && is_b64(*c) && is_b64(*d) => true,
        [a, b, b'=', b'='] => is_b64(*a) && b"AQgw".contains(b),
        [a, b, c, b'='] => is_b64(*a) && is_b64(*b) && b"AEIMQUYcgkosw048".contains(c),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    if let Some(i) = last.iter().position(|&b| !is_b64(b) && b != b'=') {
        return Err(bad_char(last[i], start + last_at + i));
    }
    Err(format!(
        "base64 payload ends with a malformed final group at offset {} (misplaced '=' or \
         non-zero padding bits)",
        start + last_at
    ))
}

fn bad_char(b: u8, offset: usize) -> String {
    let shown = match b {
        b'\n' => "line feed".to_string(),
        b'\r' => "carriage return".to_string(),
        b'\t' => "tab".to_string(),
        b' ' => "space".to_string(),
        b'=' => "'=' (padding before the end)".to_string(),
        0x21..=0x7e => format!("'{}'", b as char),
        _ => format!("byte 0x{b:02X}"),
    };
    format!("base64 payload has {shown} at offset {offset}; only A-Z a-z 0-9 + / and final '=' padding are allowed, on one line")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use uppsala::XsdRegex;

    fn by_pattern(value: &str) -> bool {
        // What a schema processor does: collapse whitespace, then match the pattern.
        let collapsed = value
            .split(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        XsdRegex::compile(BASE64_PAYLOAD_PATTERN)
            .unwrap()
            .is_match(&collapsed)
    }

    #[test]
    fn accepts_canonical_base64() {
        for v in ["QQ==", "QUI=", "QUJD", "QUJDRA==", "  QUJD\n", "+/+/"] {
            assert_eq!(base64_payload(v), Ok(()), "{v:?}");
            assert!(by_pattern(v), "{v:?}");
        }
    }

    #[test]
    fn refuses_with_a_precise_reason() {
        let cases = [
            ("", "empty"),
            (" \n ", "empty"),
            ("QUJ", "multiple of 4"),
            ("QU\nJD", "line feed at offset 2"),
            ("QU JD", "space at offset 2"),
            ("QU*D", "'*' at offset 2"),
            ("Q=JDQUJD", "padding before the end) at offset 1"),
            ("QR==", "non-zero padding bits"),
            ("QUJ=QUJD", "offset 3"),
            ("Q===", "malformed final group"),
            ("QUJDé", "byte 0xC3 at offset 4"),
        ];
        for (v, reason) in cases {
            let err = base64_payload(v).unwrap_err();
            assert!(err.contains(reason), "{v:?}: {err}");
            assert!(!by_pattern(v), "pattern accepts {v:?}");
        }
    }

    proptest! {
        /// The native check and the schema pattern agree on arbitrary strings over the
        /// relevant alphabet (base64 characters, '=', whitespace, a stray symbol).
        #[test]
        fn native_check_equals_the_pattern(v in "[A-Za-z0-9+/=QAgw \n\t*]{0,24}") {
            prop_assert_eq!(base64_payload(&v).is_ok(), by_pattern(&v), "{:?}", v);
        }

        /// ... and on values that are valid except, perhaps, for their final group.
        #[test]
        fn native_check_equals_the_pattern_near_valid(
            head in "([A-Za-z0-9+/]{4}){0,3}",
            tail in "[A-Za-z0-9+/=]{4}",
        ) {
            let v = format!("{head}{tail}");
            prop_assert_eq!(base64_payload(&v).is_ok(), by_pattern(&v), "{:?}", v);
        }
    }
}
