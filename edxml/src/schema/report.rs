//! Turning parser and validator output into messages a clerk or an operator can act on.
//!
//! Owns: [`Violation`] (one schema violation: where, which element, what), the bounded
//! summary used in `SchemaError`'s message, and line/column arithmetic.
//!
//! Invariants:
//! - Every message is at most [`MAX_MESSAGE_CHARS`] characters: validator messages quote the
//!   offending value, which may be megabytes long.
//! - Positions are computed in one pass over the input, whatever the number of violations.
//! - Lines and columns are 1-based; columns count bytes from the start of the line, as the
//!   validator reports them.

use std::collections::HashMap;
use std::fmt;

use uppsala::dom::{Document, NodeId, NodeKind};
use uppsala::{ValidationError, XmlError};

use super::{SchemaError, SchemaKind};

/// Longest message kept in a [`Violation`] (characters); longer ones are cut with "…".
pub const MAX_MESSAGE_CHARS: usize = 400;

/// How many violations the `Display` of `SchemaError::Invalid` spells out.
const SHOWN_IN_SUMMARY: usize = 3;

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// 1-based line of the element concerned; `None` when positions were not computed (see
    /// `SchemaError::Invalid`).
    pub line: Option<usize>,
    /// 1-based column (in bytes) of the element's start tag, when known.
    pub column: Option<usize>,
    /// Local name of the element concerned, when known.
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

/// The first few violations and how many there are in all.
pub(super) struct Summary<'a> {
    pub(super) total: usize,
    pub(super) shown: &'a [Violation],
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.total;
        write!(f, "{n} violation{}", if n == 1 { "" } else { "s" })?;
        if self.shown.iter().any(|v| v.line.is_none()) {
            f.write_str(" (too many to locate in a packet this large: positions omitted)")?;
        }
        for v in self.shown.iter().take(SHOWN_IN_SUMMARY) {
            write!(f, "; {v}")?;
        }
        let spelled = self.shown.len().min(SHOWN_IN_SUMMARY);
        if n > spelled {
            write!(f, "; and {} more", n - spelled)?;
        }
        Ok(())
    }
}

/// Violations from uppsala errors and native-check failures (always located), in document
/// order when located. `located` says whether `errors` come from validating `doc` itself
/// (true) or its position-free copy, whose errors all claim line 1, column 1 (false).
pub(super) fn violations(
    doc: &Document<'_>,
    errors: &[ValidationError],
    located: bool,
    native: &[(NodeId, String)],
) -> Vec<Violation> {
    let names = element_starts(doc);
    let native_offsets: Vec<usize> = native
        .iter()
        .map(|(id, _)| doc.node_range(*id).map_or(0, |r| r.start))
        .collect();
    let native_positions = line_columns(doc.input_text().as_bytes(), &native_offsets);

    let mut out: Vec<Violation> = errors
        .iter()
        .map(|e| {
            let (line, column) = if located {
                (e.line, e.column)
            } else {
                (None, None)
            };
            Violation {
                line,
                column,
                element: line.zip(column).and_then(|pos| names.get(&pos).cloned()),
                message: bounded(&e.message),
            }
        })
        .collect();
    out.extend(
        native
            .iter()
            .zip(native_positions)
            .map(|((id, message), (line, column))| Violation {
                line: Some(line),
                column: Some(column),
                element: doc.element(*id).map(|e| e.name.local_name.to_string()),
                message: bounded(message),
            }),
    );
    // Stable: unlocated ones keep their (document) order, after the located ones.
    out.sort_by_key(|v| (v.line.is_none(), v.line, v.column));
    out
}

/// Local names of the elements, keyed by the (line, column) of their start tag.
fn element_starts(doc: &Document<'_>) -> HashMap<(usize, usize), String> {
    let Some(root) = doc.document_element() else {
        return HashMap::new();
    };
    let (offsets, names): (Vec<usize>, Vec<String>) = std::iter::once(root)
        .chain(doc.descendants(root))
        .filter_map(|id| match doc.node_kind(id) {
            Some(NodeKind::Element(e)) => doc
                .node_range(id)
                .map(|r| (r.start, e.name.local_name.to_string())),
            _ => None,
        })
        .unzip();
    line_columns(doc.input_text().as_bytes(), &offsets)
        .into_iter()
        .zip(names)
        .collect()
}

/// 1-based (line, column) of each byte offset of `input` (any order), in one pass.
/// Offsets beyond the input are clamped to its end.
pub(super) fn line_columns(input: &[u8], offsets: &[usize]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..offsets.len()).collect();
    order.sort_unstable_by_key(|&i| offsets[i]);
    let mut out = vec![(1, 1); offsets.len()];
    let (mut line, mut line_start, mut scanned) = (1usize, 0usize, 0usize);
    for i in order {
        let offset = offsets[i].min(input.len());
        for (k, &b) in input[scanned..offset].iter().enumerate() {
            if b == b'\n' {
                line += 1;
                line_start = scanned + k + 1;
            }
        }
        scanned = offset;
        out[i] = (line, offset - line_start + 1);
    }
    out
}

/// `message`, cut to [`MAX_MESSAGE_CHARS`] characters.
pub(super) fn bounded(message: &str) -> String {
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
    fn line_columns_are_one_based_and_order_free() {
        let input = b"ab\ncd\n\nef";
        assert_eq!(
            line_columns(input, &[8, 0, 2, 3, 4, 7, 99]),
            vec![(4, 2), (1, 1), (1, 3), (2, 1), (2, 2), (4, 1), (4, 3)]
        );
        assert!(line_columns(input, &[]).is_empty());
    }

    #[test]
    fn summary_counts_and_truncates() {
        let v = |n| Violation {
            line: Some(n),
            column: None,
            element: Some("To".into()),
            message: "bad".into(),
        };
        let all: Vec<Violation> = (1..=4).map(v).collect();
        assert_eq!(
            Summary {
                total: 5,
                shown: &all
            }
            .to_string(),
            "5 violations; line 1: element To: bad; line 2: element To: bad; line 3: element \
             To: bad; and 2 more"
        );
        assert_eq!(
            Summary {
                total: 1,
                shown: &all[..1]
            }
            .to_string(),
            "1 violation; line 1: element To: bad"
        );
        let unlocated = [Violation {
            line: None,
            column: None,
            element: None,
            message: "Unexpected element 'x' in sequence".into(),
        }];
        assert_eq!(
            Summary {
                total: 2,
                shown: &unlocated
            }
            .to_string(),
            "2 violations (too many to locate in a packet this large: positions omitted); \
             Unexpected element 'x' in sequence; and 1 more"
        );
    }
}
