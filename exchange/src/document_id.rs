//! Which `DocumentId`s an agency may give its documents — one rule, applied by the node before
//! it signs and by the hub before it accepts.
//!
//! A document id is how both ends, the hub and the records systems name a document for good,
//! so a sender may not pick one that:
//! - claims another agency: an id in the national form `code,yyyy/MM/dd,number/notation`
//!   starts with the sending agency's own code;
//! - reads as a path: no `\`, no `..` segment, and `/` only inside the national form's date
//!   and number/notation;
//! - hides what it is: no control or invisible formatting characters (bidi overrides, zero-width
//!   marks), no leading or trailing space;
//! - collides with DocAxis's request ids (`<original>#revoke-N`, `#update-N`): no `#`;
//! - is unbounded: at most [`MAX_CHARS`] characters.
//!
//! Other forms stay allowed: document systems send UUIDs and their own register keys.
//!
//! Request packets (revoke, update) carry `<original>#<kind>-<N>`, checked by
//! [`check_request`]; the original part follows the same rule.

/// Longest document id accepted, in characters.
pub const MAX_CHARS: usize = 200;

/// Why a document id is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentIdError {
    #[error("the document id is empty")]
    Empty,
    #[error("the document id is {len} characters long; at most {MAX_CHARS} are allowed")]
    TooLong { len: usize },
    #[error("the document id {id:?} begins or ends with white space")]
    Padded { id: String },
    #[error(
        "the document id {id:?} holds the character U+{code:04X}: control and invisible \
         formatting characters are not allowed"
    )]
    Hidden { id: String, code: u32 },
    #[error(
        "the document id {id:?} holds '#', which DocAxis reserves for its request ids \
         (<original>#revoke-N)"
    )]
    Reserved { id: String },
    #[error("the document id {id:?} reads as a file path ({why})")]
    Path { id: String, why: &'static str },
    #[error(
        "the document id {id:?} claims agency {claims}; a document sent by {sender} must use \
         its own code ({sender},yyyy/MM/dd,number/notation) or another form (a UUID)"
    )]
    OtherAgency {
        id: String,
        claims: String,
        sender: String,
    },
    #[error("the request id {id:?} is not <original document id>#{kind}-N as DocAxis writes it")]
    NotARequest { id: String, kind: &'static str },
}

/// Checks a document id `sender` chose for a new (or replacement) document.
pub fn check_new(id: &str, sender: &str) -> Result<(), DocumentIdError> {
    common(id)?;
    if id.contains('#') {
        return Err(DocumentIdError::Reserved { id: id.into() });
    }
    match national_form(id) {
        Some((code, rest)) => {
            if code != sender {
                return Err(DocumentIdError::OtherAgency {
                    id: id.into(),
                    claims: code.into(),
                    sender: sender.into(),
                });
            }
            if rest.split('/').any(|segment| segment == "..") {
                return Err(DocumentIdError::Path {
                    id: id.into(),
                    why: "a '..' segment",
                });
            }
        }
        None => {
            if let Some(code) = claimed_code(id)
                && code != sender
            {
                return Err(DocumentIdError::OtherAgency {
                    id: id.into(),
                    claims: code.into(),
                    sender: sender.into(),
                });
            }
            if id.contains('/') {
                return Err(DocumentIdError::Path {
                    id: id.into(),
                    why: "'/' outside the national form code,yyyy/MM/dd,number/notation",
                });
            }
        }
    }
    Ok(())
}

/// Checks the id of a revoke or update request: `<original>#<kind>-<N>`, the original being
/// an id `sender` may use.
pub fn check_request(id: &str, sender: &str, kind: &'static str) -> Result<(), DocumentIdError> {
    common(id)?;
    let not_a_request = || DocumentIdError::NotARequest {
        id: id.into(),
        kind,
    };
    let (original, suffix) = id.rsplit_once('#').ok_or_else(not_a_request)?;
    let n = suffix
        .strip_prefix(kind)
        .and_then(|s| s.strip_prefix('-'))
        .ok_or_else(not_a_request)?;
    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_request());
    }
    check_new(original, sender)
}

/// Length, padding, invisible characters and backslashes: what no id may have.
fn common(id: &str) -> Result<(), DocumentIdError> {
    if id.is_empty() {
        return Err(DocumentIdError::Empty);
    }
    let len = id.chars().count();
    if len > MAX_CHARS {
        return Err(DocumentIdError::TooLong { len });
    }
    if id.trim() != id {
        return Err(DocumentIdError::Padded { id: id.into() });
    }
    if let Some(c) = id.chars().find(|c| is_hidden(*c)) {
        return Err(DocumentIdError::Hidden {
            id: id.into(),
            code: c as u32,
        });
    }
    if id.contains('\\') {
        return Err(DocumentIdError::Path {
            id: id.into(),
            why: "a backslash",
        });
    }
    Ok(())
}

/// `(code, rest)` when `id` is `code,yyyy/MM/dd,rest` with a well-formed agency code.
fn national_form(id: &str) -> Option<(&str, &str)> {
    let mut parts = id.splitn(3, ',');
    let code = parts.next()?;
    let date = parts.next()?;
    let rest = parts.next()?;
    let d = date.as_bytes();
    let is_date = d.len() == 10
        && d[4] == b'/'
        && d[7] == b'/'
        && d.iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    (is_date && edxml::AgencyCode::parse_strict(code).is_ok()).then_some((code, rest))
}

/// The agency code an id in another comma-separated form starts with, if it starts with one.
fn claimed_code(id: &str) -> Option<&str> {
    let (first, _) = id.split_once(',')?;
    edxml::AgencyCode::parse_strict(first)
        .is_ok()
        .then_some(first)
}

/// Control characters and the invisible formatting characters (Unicode Cf) that can make an
/// id display as something it is not.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const G22: &str = "000.00.00.G22";

    #[test]
    fn the_sender_s_own_national_ids_and_other_forms_pass() {
        for id in [
            "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT",
            "000.00.00.G22,2026/11/23,12/2026/QĐ-UBND",
            "3f2b9c1e-7a4d-4e2b-9f11-0c6a5d2e8b40",
            "VB-2026-000123",
        ] {
            check_new(id, G22).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
    }

    #[test]
    fn hostile_ids_are_refused_with_the_reason() {
        let cases: &[(&str, &str)] = &[
            ("../../etc/passwd", "file path"),
            (
                "000.00.00.H41,2026/11/23,1/UBND",
                "claims agency 000.00.00.H41",
            ),
            ("000.00.00.H41,x", "claims agency 000.00.00.H41"),
            ("000.00.00.G22,2026/11/23,1/../../x", "'..' segment"),
            ("000.00.00.G22,2026/11/23,12/VPCP#revoke-1", "reserves"),
            ("a\\b", "backslash"),
            ("abc\u{202E}fdp.exe", "U+202E"),
            ("abc\u{200E}", "U+200E"),
            ("line\nbreak", "U+000A"),
            (" padded", "white space"),
            ("", "empty"),
        ];
        for (id, expected) in cases {
            let err = check_new(id, G22).expect_err(id).to_string();
            assert!(err.contains(expected), "{id:?}: {err}");
        }
        let long = "x".repeat(MAX_CHARS + 1);
        assert!(matches!(
            check_new(&long, G22),
            Err(DocumentIdError::TooLong { len }) if len == MAX_CHARS + 1
        ));
    }

    #[test]
    fn request_ids_are_the_original_with_a_numbered_suffix() {
        let original = "000.00.00.G22,2026/11/23,12/VPCP";
        check_request(&format!("{original}#revoke-1"), G22, "revoke").unwrap();
        check_request(&format!("{original}#update-12"), G22, "update").unwrap();
        for id in [
            format!("{original}#update-1"),
            format!("{original}#revoke-"),
            format!("{original}#revoke-x"),
            original.to_string(),
        ] {
            assert!(
                matches!(
                    check_request(&id, G22, "revoke"),
                    Err(DocumentIdError::NotARequest { .. })
                ),
                "{id}"
            );
        }
        assert!(matches!(
            check_request("000.00.00.H41,2026/11/23,1/X#revoke-1", G22, "revoke"),
            Err(DocumentIdError::OtherAgency { .. })
        ));
    }
}
