//! Errors and warnings of the edXML reader, located by line, column and element path.
//!
//! Invariants: every refusal is one [`ReadError`] naming where (1-based line and column of the
//! offending markup in the input bytes, columns counted in characters; the element path by local
//! names such as `/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId`) and what
//! ([`ReadErrorKind`]). Tolerated oddities become [`Warning`]s with the same location; strict
//! mode turns each of them into [`ReadErrorKind::Strict`] carrying the same description.

use serde::Serialize;

use super::agency::AgencyCodeError;
use super::codes::CodeError;
use super::datetime::DateError;

/// What is wrong with a refused packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadErrorKind {
    #[error("the input is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("a DOCTYPE declaration is present; DTDs and entity declarations are refused in edXML")]
    Doctype,
    #[error("encoding {encoding} is not accepted; edXML packets must be UTF-8")]
    UnsupportedEncoding { encoding: String },
    #[error("the bytes are not valid UTF-8 (edXML packets must be UTF-8)")]
    InvalidUtf8,
    #[error(
        "entity reference &{name}; is not allowed (only &lt; &gt; &amp; &apos; &quot; and character references)"
    )]
    UndefinedEntity { name: String },
    #[error("character U+{code:04X} is not allowed in XML")]
    IllegalCharacter { code: u32 },
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("the root element is {found}, expected edXML")]
    UnexpectedRoot { found: String },
    #[error(
        "element {element} is in {found}, expected namespace http://www.mic.gov.vn/TBT/QCVN_102_2016"
    )]
    WrongNamespace { element: String, found: String },
    #[error("elements are nested deeper than the limit of {limit}")]
    TooDeep { limit: usize },
    #[error("more than {limit} elements")]
    TooManyElements { limit: usize },
    #[error("more than {limit} attributes on one element")]
    TooManyAttributes { limit: usize },
    #[error("text longer than the limit of {limit} bytes")]
    TextTooLong { limit: usize },
    #[error("required element {name} is missing")]
    MissingElement { name: String },
    #[error("element {name} appears more than once; it must be unique")]
    DuplicateElement { name: String },
    #[error("required element {name} is empty")]
    EmptyElement { name: String },
    #[error("element {name} must hold text only, but contains element {child}")]
    UnexpectedChildElement { name: String, child: String },
    #[error("ds:Signature is only allowed as a child of edXMLHeader")]
    MisplacedSignature,
    #[error(transparent)]
    Date(#[from] DateError),
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error(transparent)]
    AgencyCode(#[from] AgencyCodeError),
    #[error("invalid number {value:?} in {name}: expected a non-negative integer")]
    InvalidNumber { name: String, value: String },
    #[error("invalid boolean {value:?} in {name}: expected true, false, 1 or 0")]
    InvalidBoolean { name: String, value: String },
    #[error("ContentId {content_id:?} is used by more than one {element}")]
    DuplicateContentId { content_id: String, element: String },
    #[error("invalid attachment payload: {detail}")]
    InvalidPayload { detail: String },
    #[error("{0} (refused in strict mode)")]
    Strict(WarningKind),
}

/// A refused packet: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column} at {path}: {kind}")]
pub struct ReadError {
    /// 1-based line in the input.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
    /// Element path by local names, `/` for the document itself.
    pub path: String,
    pub kind: ReadErrorKind,
}

/// Something tolerated in lenient mode (refused in strict mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WarningKind {
    #[error("unknown element {name}{}", namespace_note(.namespace))]
    UnknownElement {
        name: String,
        namespace: Option<String>,
    },
    #[error("element {name} does not belong in a {context}")]
    UnexpectedElement { name: String, context: String },
    #[error("text found between the child elements of {name}")]
    UnexpectedText { name: String },
    #[error("agency code {code:?} does not follow the national pattern 000.00.00.A00")]
    NonStandardAgencyCode { code: String },
    #[error("manifest reference {content_id:?} has no attachment")]
    ReferenceWithoutAttachment { content_id: String },
    #[error("attachment {content_id:?} is not listed in the manifest")]
    AttachmentWithoutReference { content_id: String },
    #[error("a legacy QCVN Signature is present next to ds:Signature; it is ignored")]
    LegacySignatureIgnored,
    #[error("a TraceHeader has a Timestamp but no OrganId; that trace point is left out")]
    TraceHeaderWithoutOrganId,
    #[error("{count} more warnings omitted")]
    MoreWarningsOmitted { count: usize },
}

fn namespace_note(ns: &Option<String>) -> String {
    match ns {
        Some(ns) => format!(" in namespace {ns}"),
        None => " in no namespace".to_owned(),
    }
}

/// A tolerated oddity, located like an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}, column {column} at {path}: {kind}")]
pub struct Warning {
    pub line: u64,
    pub column: u64,
    pub path: String,
    pub kind: WarningKind,
}

/// 1-based line and column (in characters) of a byte offset; tolerates invalid UTF-8.
pub(crate) fn line_column(bytes: &[u8], offset: usize) -> (u64, u64) {
    let offset = offset.min(bytes.len());
    let before = &bytes[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count() as u64;
    let column = 1 + before[line_start..]
        .iter()
        .filter(|&&b| b & 0xC0 != 0x80)
        .count() as u64;
    (line, column)
}

/// Locates many warnings in one forward pass over the input (instead of one scan each),
/// returning them in document order.
pub(crate) fn locate_all(
    bytes: &[u8],
    mut pending: Vec<(usize, String, WarningKind)>,
) -> Vec<Warning> {
    pending.sort_by_key(|(offset, _, _)| *offset);
    let (mut line, mut column, mut at) = (1u64, 1u64, 0usize);
    pending
        .into_iter()
        .map(|(offset, path, kind)| {
            let offset = offset.min(bytes.len());
            for &b in &bytes[at..offset] {
                if b == b'\n' {
                    line += 1;
                    column = 1;
                } else if b & 0xC0 != 0x80 {
                    column += 1;
                }
            }
            at = offset;
            Warning {
                line,
                column,
                path,
                kind,
            }
        })
        .collect()
}

impl ReadError {
    pub(crate) fn at(
        bytes: &[u8],
        offset: usize,
        path: impl Into<String>,
        kind: ReadErrorKind,
    ) -> Self {
        let (line, column) = line_column(bytes, offset);
        Self {
            line,
            column,
            path: path.into(),
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let text = "ab\r\nĐc<x>".as_bytes();
        let off = text.iter().position(|&b| b == b'<').unwrap();
        assert_eq!(line_column(text, off), (2, 3));
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 10_000), line_column(text, text.len()));
    }

    #[test]
    fn locate_all_agrees_with_line_column() {
        let text = "ab\r\nĐc<x>\n  <y/>".as_bytes();
        let offsets = [12usize, 0, 6, 3, 6];
        let pending = offsets
            .iter()
            .map(|&o| (o, "/".to_owned(), WarningKind::LegacySignatureIgnored))
            .collect();
        let located = locate_all(text, pending);
        let mut sorted = offsets;
        sorted.sort();
        for (w, o) in located.iter().zip(sorted) {
            assert_eq!((w.line, w.column), line_column(text, o), "offset {o}");
        }
    }

    #[test]
    fn error_display_names_place_and_cause() {
        let e = ReadError {
            line: 14,
            column: 9,
            path: "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId".into(),
            kind: ReadErrorKind::DuplicateElement {
                name: "DocumentId".into(),
            },
        };
        assert_eq!(
            e.to_string(),
            "line 14, column 9 at /edXML/edXMLEnvelope/edXMLHeader/MessageHeader/DocumentId: \
             element DocumentId appears more than once; it must be unique"
        );
        let s = ReadErrorKind::Strict(WarningKind::UnknownElement {
            name: "Foo".into(),
            namespace: None,
        });
        assert_eq!(
            s.to_string(),
            "unknown element Foo in no namespace (refused in strict mode)"
        );
    }
}
