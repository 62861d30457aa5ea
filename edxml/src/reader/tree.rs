//! Bounded, namespace-resolved element tree built from quick-xml events over a borrowed input.
//!
//! Invariants: every limit (depth, element count, attributes per element, text length) is
//! checked as events stream in, before anything is stored; text is borrowed from the input
//! unless an entity, a character reference or a CR forces a copy; only the five predefined
//! entities and legal character references are accepted; a DOCTYPE anywhere is refused;
//! signature subtrees (`ds:Signature`, legacy QCVN `Signature`) are parsed for well-formedness
//! but not stored.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

use crate::diagnostics::{ReadError, ReadErrorKind};
use crate::reader::Limits;
use crate::{DSIG_NS, QCVN_NS};

/// Bytes of a foreign namespace URI kept per element (for warnings).
const MAX_KEPT_URI: usize = 128;

/// Sentinel for "no node" in the index links.
pub(super) const NONE: u32 = u32::MAX;

/// The namespace of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ns {
    None,
    Qcvn,
    Dsig,
    Other(Box<str>),
}

impl Ns {
    pub(super) fn uri(&self) -> Option<String> {
        match self {
            Ns::None => None,
            Ns::Qcvn => Some(QCVN_NS.to_owned()),
            Ns::Dsig => Some(DSIG_NS.to_owned()),
            Ns::Other(u) => Some(u.to_string()),
        }
    }
}

#[derive(Debug)]
pub(super) struct Node<'a> {
    pub ns: Ns,
    pub local: &'a str,
    /// Byte offset of the `<` of the start tag in the whole input.
    pub offset: usize,
    pub parent: u32,
    pub first_child: u32,
    pub last_child: u32,
    pub next_sibling: u32,
    /// Text content, EOL-normalised and unescaped (only for elements without children).
    pub text: Cow<'a, str>,
    /// Non-whitespace text was found next to child elements.
    pub stray_text: bool,
    /// A signature subtree, parsed but not stored.
    pub opaque: bool,
}

/// A `ds:Signature` element found anywhere (including inside skipped subtrees).
#[derive(Debug)]
pub(super) struct DsigSignature {
    pub offset: usize,
    pub path: String,
    /// The element holding it, when that element is stored in the tree.
    pub parent: u32,
}

#[derive(Debug)]
pub(super) struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
    pub dsig_signatures: Vec<DsigSignature>,
}

impl<'a> Tree<'a> {
    pub(super) fn node(&self, id: u32) -> &Node<'a> {
        &self.nodes[id as usize]
    }

    pub(super) fn children(&self, id: u32) -> Children<'_, 'a> {
        Children {
            tree: self,
            next: self.node(id).first_child,
        }
    }

    /// `/edXML/edXMLEnvelope/...` for a stored node.
    pub(super) fn path(&self, id: u32) -> String {
        let mut names = Vec::new();
        let mut cur = id;
        while cur != NONE {
            let n = self.node(cur);
            names.push(n.local);
            cur = n.parent;
        }
        names.iter().rev().fold(String::new(), |mut acc, n| {
            acc.push('/');
            acc.push_str(n);
            acc
        })
    }
}

pub(super) struct Children<'t, 'a> {
    tree: &'t Tree<'a>,
    next: u32,
}

impl Iterator for Children<'_, '_> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        if self.next == NONE {
            return None;
        }
        let id = self.next;
        self.next = self.tree.node(id).next_sibling;
        Some(id)
    }
}

struct Open<'a> {
    local: &'a str,
    /// Stored node, or NONE inside an opaque subtree.
    node: u32,
}

struct Builder<'a, 'b> {
    bytes: &'b [u8],
    limits: &'b Limits,
    nodes: Vec<Node<'a>>,
    stack: Vec<Open<'a>>,
    /// Depth (stack length) at which the current opaque subtree started.
    opaque_from: Option<usize>,
    dsig_signatures: Vec<DsigSignature>,
    elements: usize,
    root_done: bool,
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn legal_xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Finds a character XML 1.0 forbids even when written raw: C0 controls other than tab, LF and
/// CR, and U+FFFE / U+FFFF. The fast path looks at bytes only (0xEF leads U+F000..U+FFFF).
fn find_illegal(s: &str) -> Option<char> {
    let suspicious = |b: u8| (b < 0x20 && b != b'\t' && b != b'\n' && b != b'\r') || b == 0xEF;
    if s.as_bytes()
        .chunks(256)
        .all(|c| !c.iter().fold(false, |acc, &b| acc | suspicious(b)))
    {
        return None;
    }
    s.chars().find(|&c| !legal_xml_char(c))
}

impl<'a, 'b> Builder<'a, 'b> {
    fn path_with(&self, extra: Option<&str>) -> String {
        let mut p = String::new();
        for o in &self.stack {
            p.push('/');
            p.push_str(o.local);
        }
        if let Some(e) = extra {
            p.push('/');
            p.push_str(e);
        }
        if p.is_empty() {
            p.push('/');
        }
        p
    }

    fn err(&self, offset: usize, kind: ReadErrorKind) -> ReadError {
        ReadError::at(self.bytes, offset, self.path_with(None), kind)
    }

    fn err_in(&self, offset: usize, local: &str, kind: ReadErrorKind) -> ReadError {
        ReadError::at(self.bytes, offset, self.path_with(Some(local)), kind)
    }

    fn current(&self) -> Option<u32> {
        self.stack.last().map(|o| o.node).filter(|&n| n != NONE)
    }

    fn start(&mut self, ns: Ns, local: &'a str, offset: usize) -> Result<(), ReadError> {
        if self.root_done {
            return Err(self.err_in(
                offset,
                local,
                ReadErrorKind::Malformed("content after the end of the root element".into()),
            ));
        }
        self.elements += 1;
        if self.elements > self.limits.max_elements {
            return Err(self.err_in(
                offset,
                local,
                ReadErrorKind::TooManyElements {
                    limit: self.limits.max_elements,
                },
            ));
        }
        if self.stack.len() + 1 > self.limits.max_depth {
            return Err(self.err_in(
                offset,
                local,
                ReadErrorKind::TooDeep {
                    limit: self.limits.max_depth,
                },
            ));
        }
        if self.stack.is_empty() {
            if local != "edXML" {
                return Err(self.err_in(
                    offset,
                    local,
                    ReadErrorKind::UnexpectedRoot {
                        found: local.to_owned(),
                    },
                ));
            }
            if ns != Ns::Qcvn {
                let found = ns
                    .uri()
                    .map_or_else(|| "no namespace".to_owned(), |u| format!("namespace {u}"));
                return Err(self.err_in(
                    offset,
                    local,
                    ReadErrorKind::WrongNamespace {
                        element: local.to_owned(),
                        found,
                    },
                ));
            }
        }
        let is_signature = local == "Signature" && matches!(ns, Ns::Dsig | Ns::Qcvn);
        if ns == Ns::Dsig && local == "Signature" {
            let parent = self.current().unwrap_or(NONE);
            self.dsig_signatures.push(DsigSignature {
                offset,
                path: self.path_with(Some(local)),
                parent: if self.opaque_from.is_some() {
                    NONE
                } else {
                    parent
                },
            });
        }
        if self.opaque_from.is_some() {
            self.stack.push(Open { local, node: NONE });
            return Ok(());
        }
        let parent = self.current().unwrap_or(NONE);
        let id = u32::try_from(self.nodes.len()).map_err(|_| {
            self.err_in(
                offset,
                local,
                ReadErrorKind::TooManyElements {
                    limit: self.limits.max_elements,
                },
            )
        })?;
        if parent != NONE {
            let p = &mut self.nodes[parent as usize];
            if p.first_child == NONE {
                // Text seen so far was indentation, or stray text next to children.
                if p.text.chars().any(|c| !is_xml_space(c)) {
                    p.stray_text = true;
                }
                p.text = Cow::Borrowed("");
                p.first_child = id;
            } else {
                let last = p.last_child as usize;
                self.nodes[last].next_sibling = id;
            }
            self.nodes[parent as usize].last_child = id;
        }
        self.nodes.push(Node {
            ns,
            local,
            offset,
            parent,
            first_child: NONE,
            last_child: NONE,
            next_sibling: NONE,
            text: Cow::Borrowed(""),
            stray_text: false,
            opaque: is_signature,
        });
        if is_signature {
            self.opaque_from = Some(self.stack.len() + 1);
        }
        self.stack.push(Open { local, node: id });
        Ok(())
    }

    fn end(&mut self) {
        if self.opaque_from == Some(self.stack.len()) {
            self.opaque_from = None;
        }
        self.stack.pop();
        if self.stack.is_empty() {
            self.root_done = true;
        }
    }

    fn text(&mut self, piece: Cow<'a, str>, offset: usize) -> Result<(), ReadError> {
        if let Some(c) = find_illegal(&piece) {
            return Err(self.err(
                offset,
                ReadErrorKind::IllegalCharacter { code: u32::from(c) },
            ));
        }
        let Some(id) = self.current() else {
            if self.stack.is_empty() && piece.chars().any(|c| !is_xml_space(c)) {
                return Err(self.err(
                    offset,
                    ReadErrorKind::Malformed("text outside the root element".into()),
                ));
            }
            return Ok(());
        };
        if self.opaque_from.is_some() {
            return Ok(());
        }
        let node = &self.nodes[id as usize];
        if node.first_child != NONE {
            if piece.chars().any(|c| !is_xml_space(c)) {
                self.nodes[id as usize].stray_text = true;
            }
            return Ok(());
        }
        let limit = if node.ns == Ns::Qcvn && node.local == "ContentTransferEncoded" {
            self.limits.max_text_len
        } else {
            self.limits.max_field_len
        };
        if node.text.len() + piece.len() > limit {
            return Err(self.err(offset, ReadErrorKind::TextTooLong { limit }));
        }
        let node = &mut self.nodes[id as usize];
        if node.text.is_empty() {
            node.text = piece;
        } else {
            node.text.to_mut().push_str(&piece);
        }
        Ok(())
    }

    fn reference(
        &mut self,
        name: &str,
        resolved: Option<char>,
        offset: usize,
    ) -> Result<(), ReadError> {
        let ch = match (resolved, name) {
            (Some(c), _) => {
                if !legal_xml_char(c) {
                    return Err(
                        self.err(offset, ReadErrorKind::IllegalCharacter { code: c as u32 })
                    );
                }
                c
            }
            (None, "lt") => '<',
            (None, "gt") => '>',
            (None, "amp") => '&',
            (None, "apos") => '\'',
            (None, "quot") => '"',
            (None, _) => {
                return Err(self.err(
                    offset,
                    ReadErrorKind::UndefinedEntity {
                        name: name.to_owned(),
                    },
                ));
            }
        };
        if self.stack.is_empty() {
            return Err(self.err(
                offset,
                ReadErrorKind::Malformed("reference outside the root element".into()),
            ));
        }
        let piece = match name {
            "lt" => Cow::Borrowed("<"),
            "gt" => Cow::Borrowed(">"),
            "amp" => Cow::Borrowed("&"),
            "apos" => Cow::Borrowed("'"),
            "quot" => Cow::Borrowed("\""),
            _ => Cow::Owned(ch.to_string()),
        };
        self.text(piece, offset)
    }
}

fn classify(ns: ResolveResult<'_>) -> Result<Ns, String> {
    match ns {
        ResolveResult::Bound(n) if n.as_ref() == QCVN_NS.as_bytes() => Ok(Ns::Qcvn),
        ResolveResult::Bound(n) if n.as_ref() == DSIG_NS.as_bytes() => Ok(Ns::Dsig),
        ResolveResult::Bound(n) => {
            // Keep a bounded prefix: many elements may share one very long declared URI.
            let uri = n.as_ref();
            let kept = String::from_utf8_lossy(&uri[..uri.len().min(MAX_KEPT_URI)]);
            let marker = if uri.len() > MAX_KEPT_URI { "…" } else { "" };
            Ok(Ns::Other(format!("{kept}{marker}").into()))
        }
        ResolveResult::Unbound => Ok(Ns::None),
        ResolveResult::Unknown(p) => Err(String::from_utf8_lossy(&p).into_owned()),
    }
}

/// Builds the tree of `src` (the input after any BOM, which is `base` bytes long).
pub(super) fn build<'a>(
    bytes: &'a [u8],
    src: &'a str,
    base: usize,
    limits: &Limits,
) -> Result<Tree<'a>, ReadError> {
    let mut reader = NsReader::from_str(src);
    let mut b = Builder {
        bytes,
        limits,
        nodes: Vec::new(),
        stack: Vec::new(),
        opaque_from: None,
        dsig_signatures: Vec::new(),
        elements: 0,
        root_done: false,
    };
    let mut first = true;
    loop {
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let offset = base.saturating_add(pos);
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, ev)) => (classify(ns), ev),
            Err(e) => {
                let at = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
                return Err(b.err(
                    base.saturating_add(at),
                    ReadErrorKind::Malformed(e.to_string()),
                ));
            }
        };
        let was_first = std::mem::replace(&mut first, false);
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let qlen = e.name().as_ref().len();
                let qname = src.get(pos + 1..pos + 1 + qlen).ok_or_else(|| {
                    b.err(
                        offset,
                        ReadErrorKind::Malformed("cannot locate the element name".into()),
                    )
                })?;
                let local = qname.split_once(':').map_or(qname, |(_, l)| l);
                let ns = ns.map_err(|prefix| {
                    b.err_in(
                        offset,
                        local,
                        ReadErrorKind::Malformed(format!(
                            "namespace prefix {prefix:?} is not declared"
                        )),
                    )
                })?;
                let mut count = 0usize;
                for attr in e.attributes() {
                    let attr = attr.map_err(|err| {
                        b.err_in(offset, local, ReadErrorKind::Malformed(err.to_string()))
                    })?;
                    count += 1;
                    if count > limits.max_attributes {
                        return Err(b.err_in(
                            offset,
                            local,
                            ReadErrorKind::TooManyAttributes {
                                limit: limits.max_attributes,
                            },
                        ));
                    }
                    if attr.value.contains(&b'&') {
                        attr.unescape_value().map_err(|err| {
                            b.err_in(
                                offset,
                                local,
                                ReadErrorKind::Malformed(format!("attribute value: {err}")),
                            )
                        })?;
                    }
                }
                b.start(ns, local, offset)?;
                if matches!(event, Event::Empty(_)) {
                    b.end();
                }
            }
            Event::End(_) => b.end(),
            Event::Text(t) => {
                let piece = t
                    .xml10_content()
                    .map_err(|e| b.err(offset, ReadErrorKind::Malformed(e.to_string())))?;
                b.text(piece, offset)?;
            }
            Event::CData(c) => {
                let piece = c
                    .xml10_content()
                    .map_err(|e| b.err(offset, ReadErrorKind::Malformed(e.to_string())))?;
                if b.stack.is_empty() {
                    return Err(b.err(
                        offset,
                        ReadErrorKind::Malformed("CDATA outside the root element".into()),
                    ));
                }
                b.text(piece, offset)?;
            }
            Event::GeneralRef(r) => {
                let resolved = r
                    .resolve_char_ref()
                    .map_err(|e| b.err(offset, ReadErrorKind::Malformed(e.to_string())))?;
                let name = r
                    .decode()
                    .map_err(|e| b.err(offset, ReadErrorKind::Malformed(e.to_string())))?;
                b.reference(&name, resolved, offset)?;
            }
            Event::DocType(_) => return Err(b.err(offset, ReadErrorKind::Doctype)),
            Event::Decl(_) => {
                if !was_first || pos != 0 {
                    return Err(b.err(
                        offset,
                        ReadErrorKind::Malformed(
                            "the XML declaration must be at the very start".into(),
                        ),
                    ));
                }
            }
            Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !b.root_done {
        let kind = if b.stack.is_empty() {
            ReadErrorKind::Malformed("no root element".into())
        } else {
            ReadErrorKind::Malformed("unexpected end of input inside an element".into())
        };
        return Err(b.err(bytes.len(), kind));
    }
    Ok(Tree {
        nodes: b.nodes,
        dsig_signatures: b.dsig_signatures,
    })
}

/// The element path open at the end of `prefix` (the valid start of the input before an encoding
/// error), so that errors found before parsing can still name where they are.
pub(super) fn open_path(prefix: &str, max_depth: usize) -> String {
    let mut reader = quick_xml::Reader::from_str(prefix);
    let mut names: Vec<&str> = Vec::new();
    let mut depth = 0usize;
    loop {
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                depth += 1;
                let qlen = e.name().as_ref().len();
                if depth <= max_depth
                    && let Some(q) = prefix.get(pos + 1..pos + 1 + qlen)
                {
                    names.push(q.split_once(':').map_or(q, |(_, l)| l));
                }
            }
            Ok(Event::End(_)) => {
                if depth <= max_depth {
                    names.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if names.is_empty() {
        return "/".to_owned();
    }
    names.iter().fold(String::new(), |mut acc, n| {
        acc.push('/');
        acc.push_str(n);
        acc
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn illegal_characters() {
        assert_eq!(find_illegal("Việt Nam\t\r\n"), None);
        assert_eq!(find_illegal("a\u{1}b"), Some('\u{1}'));
        assert_eq!(find_illegal("a\u{FFFE}"), Some('\u{FFFE}'));
        assert_eq!(find_illegal("ｆｕｌｌ\u{FEFF}"), None);
    }

    #[test]
    fn open_path_names_the_elements_still_open() {
        let doc = "<?xml version='1.0'?><q:a xmlns:q='u'><b/><c><d>x</d><e>te";
        assert_eq!(open_path(doc, 32), "/a/c/e");
        assert_eq!(open_path("", 32), "/");
        assert_eq!(open_path("<a><b><c>", 2), "/a/b");
    }
}
