//! Turning parser and validator output into messages a clerk or an operator can act on.
//!
//! Owns: [`Violation`] (one schema violation: where, which element, what), the bounded
//! summary used in `SchemaError`'s message, and line/column arithmetic.
//!
//! Invariants:
//! - Every message is at most [`MAX_MESSAGE_CHARS`] characters: validator messages quote the
//!   offending value, which for an attachment is megabytes of base64.
//! - Lines and columns are 1-based; columns count bytes from the start of the line, as the
//!   validator reports them.

use std::collections::HashMap;
use std::fmt;

use uppsala::dom::{Document, NodeKind};
use uppsala::{ValidationError, XmlError};

use super::{SchemaError, SchemaKind};

/// Longest message kept in a [`Violation`] (characters); longer ones are cut with "…".
pub const MAX_MESSAGE_CHARS: usize = 400;

/// How many violations the `Display` of `SchemaError::Invalid` spells out.
const SHOWN_IN_SUMMARY: usize = 3;

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// 1-based line of the element concerned, when the validator knows it.
    pub line: Option<usize>,
    /// 1-based column (in bytes) of the element's start tag, when known.
    pub column: Option<usize>,
    /// Local name of the element at that position, when one starts there.
    pub element: Option<String>,
    /// What is wrong, as the validator says it (bounded length).
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: ")?,
            (Some(l), None) => write!(f, "line {l}: ")?,
            _ => {}
        }
        if let Some(e) = &self.element {
            write!(f, "element {e}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The first few violations and how many more there are.
pub(super) struct Summary<'a>(pub(super) &'a [Violation]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} violation{}", if n == 1 { "" } else { "s" })?;
        for v in self.0.iter().take(SHOWN_IN_SUMMARY) {
            write!(f, "; {v}")?;
        }
        if n > SHOWN_IN_SUMMARY {
            write!(f, "; and {} more", n - SHOWN_IN_SUMMARY)?;
        }
        Ok(())
    }
}

/// Converts validator errors, naming the element that starts at each reported position.
pub(super) fn violations(doc: &Document<'_>, errors: &[ValidationError]) -> Vec<Violation> {
    let names = element_starts(doc);
    errors
        .iter()
        .map(|e| Violation {
            line: e.line,
            column: e.column,
            element: e
                .line
                .zip(e.column)
                .and_then(|pos| names.get(&pos).cloned()),
            message: bounded(&e.message),
        })
        .collect()
}

/// Local names of the elements, keyed by the (line, column) of their start tag. Computed in
/// one pass over the input (the DOM's own position lookup rescans the input per node).
fn element_starts(doc: &Document<'_>) -> HashMap<(usize, usize), String> {
    let input = doc.input_text().as_bytes();
    let Some(root) = doc.document_element() else {
        return HashMap::new();
    };
    let mut starts: Vec<(usize, String)> = std::iter::once(root)
        .chain(doc.descendants(root))
        .filter_map(|id| match doc.node_kind(id) {
            Some(NodeKind::Element(e)) => doc
                .node_range(id)
                .map(|r| (r.start, e.name.local_name.to_string())),
            _ => None,
        })
        .collect();
    starts.sort_unstable_by_key(|(offset, _)| *offset);

    let mut out = HashMap::with_capacity(starts.len());
    let (mut line, mut line_start, mut scanned) = (1usize, 0usize, 0usize);
    for (offset, name) in starts {
        let Some(chunk) = input.get(scanned..offset) else {
            continue;
        };
        for (i, &b) in chunk.iter().enumerate() {
            if b == b'\n' {
                line += 1;
                line_start = scanned + i + 1;
            }
        }
        scanned = offset;
        out.insert((line, offset - line_start + 1), name);
    }
    out
}

/// `message`, cut to [`MAX_MESSAGE_CHARS`] characters.
fn bounded(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_owned(),
    }
}

/// A parse failure as [`SchemaError::NotWellFormed`].
pub(super) fn not_well_formed(kind: SchemaKind, e: &XmlError) -> SchemaError {
    let (line, column, message) = match e {
        XmlError::WellFormedness(w) => (w.line, w.column, w.message.as_str()),
        XmlError::Namespace(n) => (n.line, n.column, n.message.as_str()),
        XmlError::Parse(p) => (p.line, p.column, p.message.as_str()),
        XmlError::Validation(v) => (
            v.line.unwrap_or(0),
            v.column.unwrap_or(0),
            v.message.as_str(),
        ),
        XmlError::XPath(x) => (0, 0, x.message.as_str()),
        XmlError::UnexpectedEof => (0, 0, "unexpected end of input"),
    };
    SchemaError::NotWellFormed {
        kind,
        line,
        column,
        message: bounded(message),
    }
}

/// 1-based (line, column) just after `prefix`.
pub(super) fn line_column(prefix: &[u8]) -> (usize, usize) {
    let line = prefix.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = match prefix.iter().rposition(|&b| b == b'\n') {
        Some(nl) => prefix.len() - nl,
        None => prefix.len() + 1,
    };
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut() {
        let long = "é".repeat(MAX_MESSAGE_CHARS + 10);
        let cut = bounded(&long);
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn element_starts_match_the_dom_positions() {
        let xml = "<a>\n  <b/><c>\n\n    <d x='1'/></c>\n</a>";
        let doc = uppsala::parse(xml).unwrap();
        let starts = element_starts(&doc);
        for id in doc.descendants(doc.root()) {
            if let Some(NodeKind::Element(e)) = doc.node_kind(id) {
                let pos = (doc.node_line(id), doc.node_column(id));
                assert_eq!(starts.get(&pos), Some(&e.name.local_name.to_string()));
            }
        }
        assert_eq!(starts.len(), 4);
    }

    #[test]
    fn line_column_is_one_based() {
        assert_eq!(line_column(b""), (1, 1));
        assert_eq!(line_column(b"ab"), (1, 3));
        assert_eq!(line_column(b"ab\n"), (2, 1));
        assert_eq!(line_column(b"ab\ncd"), (2, 3));
    }

    #[test]
    fn summary_counts_and_truncates() {
        let v = |n| Violation {
            line: Some(n),
            column: None,
            element: Some("To".into()),
            message: "bad".into(),
        };
        let all: Vec<Violation> = (1..=5).map(v).collect();
        assert_eq!(
            Summary(&all).to_string(),
            "5 violations; line 1: element To: bad; line 2: element To: bad; line 3: element \
             To: bad; and 2 more"
        );
        assert_eq!(
            Summary(&all[..1]).to_string(),
            "1 violation; line 1: element To: bad"
        );
    }
}
