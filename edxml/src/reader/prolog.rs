//! Cheap checks on the raw bytes before any XML parsing: DOCTYPE in the prolog, declared and
//! detected encoding, UTF-8 validity.
//!
//! Invariants: a DOCTYPE anywhere in the prolog is found by scanning only the prolog (XML
//! declaration, comments, processing instructions, whitespace), so an entity bomb is refused
//! without reading its DTD; after [`check`] succeeds the bytes past the returned BOM length are
//! valid UTF-8 and nothing declares another encoding.

use crate::diagnostics::ReadErrorKind;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay[..needle.len()].eq_ignore_ascii_case(needle)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Scans the prolog; returns the offset of a DOCTYPE if there is one, and the XML declaration
/// text (between `<?xml` and `?>`) if the input starts with one.
fn scan_prolog(bytes: &[u8], start: usize) -> (Option<usize>, Option<&[u8]>) {
    let mut i = start;
    let mut decl = None;
    loop {
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        let rest = &bytes[i..];
        if starts_with_ci(rest, b"<!DOCTYPE") {
            return (Some(i), decl);
        } else if rest.starts_with(b"<?") {
            let Some(end) = find(&rest[2..], b"?>") else {
                return (None, decl);
            };
            let body = &rest[2..2 + end];
            if i == start && body.starts_with(b"xml") && body.get(3).is_some_and(|&b| is_space(b)) {
                decl = Some(&body[3..]);
            }
            i += 2 + end + 2;
        } else if rest.starts_with(b"<!--") {
            let Some(end) = find(&rest[4..], b"-->") else {
                return (None, decl);
            };
            i += 4 + end + 3;
        } else {
            return (None, decl);
        }
    }
}

/// The value of the `encoding` pseudo-attribute of an XML declaration.
fn declared_encoding(decl: &[u8]) -> Option<&[u8]> {
    let at = find(decl, b"encoding")?;
    let mut rest = &decl[at + b"encoding".len()..];
    rest = &rest[rest.iter().take_while(|&&b| is_space(b)).count()..];
    rest = rest.strip_prefix(b"=")?;
    rest = &rest[rest.iter().take_while(|&&b| is_space(b)).count()..];
    let quote = *rest.first()?;
    if quote != b'"' && quote != b'\'' {
        return None;
    }
    let end = rest[1..].iter().position(|&b| b == quote)?;
    Some(&rest[1..1 + end])
}

/// Runs the pre-parse checks; on success returns the length of a UTF-8 BOM to skip (0 or 3).
pub(super) fn check(bytes: &[u8]) -> Result<usize, (usize, ReadErrorKind)> {
    let bom = if bytes.starts_with(UTF8_BOM) {
        UTF8_BOM.len()
    } else {
        0
    };
    let (doctype, decl) = scan_prolog(bytes, bom);
    if let Some(at) = doctype {
        return Err((at, ReadErrorKind::Doctype));
    }
    let unsupported = |encoding: &str| {
        Err((
            0,
            ReadErrorKind::UnsupportedEncoding {
                encoding: encoding.to_owned(),
            },
        ))
    };
    if bytes.starts_with(b"\x00\x00\xFE\xFF") || bytes.starts_with(b"\xFF\xFE\x00\x00") {
        return unsupported("UTF-32 (byte order mark)");
    }
    if bytes.starts_with(b"\xFE\xFF") || bytes.starts_with(b"\xFF\xFE") {
        return unsupported("UTF-16 (byte order mark)");
    }
    if bytes.starts_with(b"<\x00") || bytes.starts_with(b"\x00<") {
        return unsupported("UTF-16 (no byte order mark)");
    }
    if let Some(enc) = decl.and_then(declared_encoding)
        && !enc.eq_ignore_ascii_case(b"UTF-8")
    {
        return unsupported(&String::from_utf8_lossy(enc));
    }
    if let Err(e) = std::str::from_utf8(&bytes[bom..]) {
        return Err((bom + e.valid_up_to(), ReadErrorKind::InvalidUtf8));
    }
    Ok(bom)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(bytes: &[u8]) -> Option<ReadErrorKind> {
        check(bytes).err().map(|(_, k)| k)
    }

    #[test]
    fn doctype_found_after_declaration_comments_and_pis() {
        let doc = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<!-- c -->\n<?pi x?>\n<!DOCTYPE a [<!ENTITY b \"c\">]><a/>";
        let (at, k) = check(doc).unwrap_err();
        assert_eq!(k, ReadErrorKind::Doctype);
        assert_eq!(&doc[at..at + 9], b"<!DOCTYPE");
        assert_eq!(kind(b"<!doctype html><a/>"), Some(ReadErrorKind::Doctype));
    }

    #[test]
    fn encodings() {
        assert_eq!(check(b"<?xml version='1.0' encoding='utf-8'?><a/>"), Ok(0));
        assert_eq!(check(b"\xEF\xBB\xBF<a/>"), Ok(3));
        assert_eq!(
            kind(b"<?xml version=\"1.0\" encoding = \"windows-1258\"?><a/>"),
            Some(ReadErrorKind::UnsupportedEncoding {
                encoding: "windows-1258".into()
            })
        );
        assert!(matches!(
            kind(b"\xFF\xFE<\x00a\x00/\x00>\x00"),
            Some(ReadErrorKind::UnsupportedEncoding { .. })
        ));
        assert!(matches!(
            kind(b"<\x00a\x00/\x00>\x00"),
            Some(ReadErrorKind::UnsupportedEncoding { .. })
        ));
        let latin1 = b"<a>Vi\xEAt</a>";
        assert_eq!(check(latin1), Err((5, ReadErrorKind::InvalidUtf8)));
    }

    #[test]
    fn unterminated_prolog_items_are_left_to_the_parser() {
        assert_eq!(check(b"<?xml version='1.0'"), Ok(0));
        assert_eq!(check(b"<!-- never closed"), Ok(0));
    }
}
