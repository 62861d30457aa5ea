//! Validation of packets against the STRICT DocAxis XML schemas (`schemas/*.xsd`).
//!
//! Owns: the mapping from a [`SchemaKind`] to its schema, the compiled schemas (built once per
//! process, on first use, and cached), the order of the checks and the resource bounds around
//! them, and the conversion of validator output into a [`SchemaError`] a clerk or an operator
//! can act on.
//!
//! The schemas describe the form DocAxis WRITES (BRIEF.md canonical order). Field packets from
//! other producers are not expected to pass: the tolerant reader handles those.
//!
//! How a packet is checked:
//! 1. UTF-8 (an optional byte-order mark is accepted), then a byte scan that refuses more than
//!    [`MAX_ELEMENTS`] start tags before anything is built.
//! 2. Parse, refusing any DOCTYPE (no DTD is read, no entity is expanded).
//! 3. The natively checked types (the base64 attachment payloads, see `native.rs`) are checked
//!    in Rust, in one pass over their bytes.
//! 4. uppsala validates a position-free copy of the document (`Document::into_static` drops
//!    the source text), with the payload texts blanked (for uppsala their type is relaxed to
//!    `xs:string`, so its verdict is unchanged). uppsala locates each error by rescanning
//!    the input from its start, so on the original document a packet with many errors after a
//!    large text costs errors × size (a 20 MB packet with 1,000 such errors: 16 s). On the copy
//!    every error costs O(1).
//! 5. Only if there are errors, and few enough for the size of the packet
//!    ([`LOCATE_BUDGET`]), the original document is validated again to locate them; otherwise
//!    they are reported without positions.
//!
//! Invariants:
//! - Self-contained: the schemas are embedded in the binary (`include_str!`, see
//!   `embedded.rs`); nothing is read from disk or fetched from the network, ever.
//! - Work is bounded: at most [`MAX_ELEMENTS`] elements reach the parser's tree, at most
//!   [`LOCATE_BUDGET`] bytes·errors are rescanned to locate errors, at most
//!   [`MAX_REPORTED`] violations (each message bounded) are kept.
//! - Located violations carry the line and column of the element they concern and name it.

mod embedded;
mod native;
mod report;
mod substitute;

use std::fmt;
use std::sync::OnceLock;

use thiserror::Error;
use uppsala::Parser;
use uppsala::dom::{Document, NodeId, NodeKind};

use embedded::Compiled;
use substitute::NativeElement;

pub use embedded::SchemaBuildError;
pub use report::{MAX_MESSAGE_CHARS, Violation};

/// Most start tags a packet may have. A strict document packet has about ten elements per
/// recipient plus a few dozen: 100,000 leaves room for thousands of recipients while bounding
/// the tree and the error list of a hostile packet.
pub const MAX_ELEMENTS: usize = 100_000;

/// Largest (number of errors × packet bytes) for which errors are located: locating rescans
/// the packet twice per error, so this bounds that work to about 2 GiB of scanning (under a
/// second). A 20 MB packet gets up to 53 errors located, a 1 MB packet up to 1,073.
pub const LOCATE_BUDGET: usize = 1 << 30;

/// Most violations kept in [`SchemaError::Invalid`] (the total is always reported).
pub const MAX_REPORTED: usize = 100;

/// Which strict schema a packet is validated against. The reader knows the kind; there is no
/// detection. Extensible: a new kind needs a variant, an entry in [`SchemaKind::ALL`], its
/// file in [`SchemaKind::file_name`] and in the embedded file table (`embedded.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    /// A document packet: `schemas/edxml-document.xsd`.
    Document,
    /// A status packet: `schemas/edxml-status.xsd`.
    Status,
}

impl SchemaKind {
    /// Every kind, in the order of the compiled-schema cache.
    pub const ALL: [SchemaKind; 2] = [SchemaKind::Document, SchemaKind::Status];

    /// The schema file (in `schemas/`) of this kind.
    pub const fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Document => "edxml-document.xsd",
            SchemaKind::Status => "edxml-status.xsd",
        }
    }

    const fn index(self) -> usize {
        match self {
            SchemaKind::Document => 0,
            SchemaKind::Status => 1,
        }
    }
}

impl fmt::Display for SchemaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SchemaKind::Document => "edXML document packet",
            SchemaKind::Status => "edXML status packet",
        })
    }
}

/// Why a packet does not conform to its strict schema.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// The packet is not UTF-8.
    #[error(
        "{kind} is not UTF-8: invalid byte sequence at line {line}, column {column} (byte \
         offset {offset})"
    )]
    NotUtf8 {
        kind: SchemaKind,
        line: usize,
        column: usize,
        offset: usize,
    },
    /// The packet has more start tags than [`MAX_ELEMENTS`] (counted before parsing; tags
    /// inside comments and CDATA sections count too).
    #[error(
        "{kind} has more than {limit} elements; a strict packet has at most a few thousand \
         (refused before parsing)"
    )]
    TooManyElements { kind: SchemaKind, limit: usize },
    /// The packet is not well-formed XML, or carries a DOCTYPE.
    #[error("{kind} is not well-formed XML at line {line}, column {column}: {message}")]
    NotWellFormed {
        kind: SchemaKind,
        line: usize,
        column: usize,
        message: String,
    },
    /// The packet is well-formed but violates the schema. `violations` holds the first
    /// [`MAX_REPORTED`] of `total`, located (line, column, element) unless there were too
    /// many for the size of the packet (see [`LOCATE_BUDGET`]).
    #[error(
        "{kind} does not conform to the strict schema {}: {}",
        kind.file_name(),
        report::Summary { total: *total, shown: violations }
    )]
    Invalid {
        kind: SchemaKind,
        total: usize,
        violations: Vec<Violation>,
    },
    /// The embedded schema itself could not be compiled (a defect of this build, not of the
    /// packet).
    #[error("the strict schema for {kind} is unusable in this build: {source}")]
    SchemaUnavailable {
        kind: SchemaKind,
        source: SchemaBuildError,
    },
}

/// Validates `xml` against the strict schema of `kind`.
///
/// `Ok(())` means the packet has exactly the strict shape (the content of `ds:Signature`
/// excepted: that is the signature verifier's business). The first call for a kind compiles
/// its schema; later calls, from any thread, reuse it.
pub fn validate(kind: SchemaKind, xml: &[u8]) -> Result<(), SchemaError> {
    let compiled = compiled(kind)?;
    let text = utf8(kind, xml)?;
    bounded(kind, text)?;
    let doc = Parser::new()
        .with_forbid_dtd(true)
        .parse(text)
        .map_err(|e| report::not_well_formed(kind, &e))?;
    validate_tree(kind, compiled, text, doc)
}

/// [`validate`] for a document already parsed with uppsala from `text` (without a byte-order
/// mark) by a caller that parses it anyway: the signer, whose one parse of a packet then
/// serves the digest and the schema (the verdict ignores the content of `ds:Signature`, so a
/// packet with its signature template validates as the signed packet will), and the hub,
/// whose one parse serves the schema and the signature check.
///
/// The caller's parse must refuse a DOCTYPE, as [`validate`]'s does; the element bound is
/// checked on `text` here, after the fact.
pub fn validate_parsed(
    kind: SchemaKind,
    text: &str,
    doc: &Document<'_>,
) -> Result<(), SchemaError> {
    let compiled = compiled(kind)?;
    bounded(kind, text)?;
    // The payload texts are blanked in a copy: the caller's tree stays as parsed (the hub
    // verifies the signature on it next). The copy shares the text it borrows from `text`.
    validate_tree(kind, compiled, text, doc.clone())
}

/// Refuses more than [`MAX_ELEMENTS`] start tags.
fn bounded(kind: SchemaKind, text: &str) -> Result<(), SchemaError> {
    if start_tags_exceed(text.as_bytes(), MAX_ELEMENTS) {
        return Err(SchemaError::TooManyElements {
            kind,
            limit: MAX_ELEMENTS,
        });
    }
    Ok(())
}

/// Steps 3 to 5 of the module documentation on `doc`, parsed from `text`.
fn validate_tree(
    kind: SchemaKind,
    compiled: &Compiled,
    text: &str,
    mut doc: Document<'_>,
) -> Result<(), SchemaError> {
    let payloads = native_elements(&doc, compiled);
    let native_failures: Vec<(NodeId, String)> = payloads
        .iter()
        .filter_map(|&(id, check)| {
            check
                .check(&character_data(&doc, id))
                .err()
                .map(|m| (id, m))
        })
        .collect();

    // uppsala's relaxed payload type accepts any text, so blanking the payloads does not change
    // its verdict; it spares it (and the copy below) tens of megabytes.
    blank_character_data(&mut doc, &payloads);
    let errors = compiled.validator.validate(&doc.clone().into_static());
    if errors.is_empty() && native_failures.is_empty() {
        return Ok(());
    }
    let total = errors.len() + native_failures.len();
    let located = errors.is_empty()
        || (errors.len() <= MAX_REPORTED
            && errors.len().saturating_mul(text.len()) <= LOCATE_BUDGET);
    let errors = if located && !errors.is_empty() {
        compiled.validator.validate(&doc)
    } else {
        errors
    };
    let mut violations = report::violations(&doc, &errors, located, &native_failures);
    violations.truncate(MAX_REPORTED);
    Err(SchemaError::Invalid {
        kind,
        total,
        violations,
    })
}

/// The compiled schema of `kind`, built on first use.
fn compiled(kind: SchemaKind) -> Result<&'static Compiled, SchemaError> {
    static CACHE: [OnceLock<Result<Compiled, SchemaBuildError>>; SchemaKind::ALL.len()] =
        [const { OnceLock::new() }; SchemaKind::ALL.len()];
    CACHE[kind.index()]
        .get_or_init(|| embedded::compile(kind.file_name()))
        .as_ref()
        .map_err(|source| SchemaError::SchemaUnavailable {
            kind,
            source: source.clone(),
        })
}

/// The packet as text, without a UTF-8 byte-order mark.
fn utf8(kind: SchemaKind, xml: &[u8]) -> Result<&str, SchemaError> {
    let body = xml.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(xml);
    std::str::from_utf8(body).map_err(|e| {
        let offset = e.valid_up_to();
        let (line, column) = report::line_columns(body, &[offset])[0];
        SchemaError::NotUtf8 {
            kind,
            line,
            column,
            offset: offset + (xml.len() - body.len()),
        }
    })
}

/// Whether `text` has more than `limit` start tags (`<` not followed by `/`, `!` or `?`). An
/// over-estimate: `<` inside comments, CDATA sections and processing instructions counts too.
fn start_tags_exceed(text: &[u8], limit: usize) -> bool {
    let mut count = 0usize;
    for (i, _) in text.iter().enumerate().filter(|&(_, &b)| b == b'<') {
        if !matches!(text.get(i + 1), Some(b'/' | b'!' | b'?')) {
            count += 1;
            if count > limit {
                return true;
            }
        }
    }
    false
}

/// The elements of `doc` whose values are checked natively, with their check.
///
/// Elements below an element of another namespace than the schema's are not visited: such
/// content is a wildcard's (the `ds:Signature` slot, processContents="skip"), which the schema
/// does not judge, or is refused anyway as unexpected.
fn native_elements(doc: &Document<'_>, compiled: &Compiled) -> Vec<(NodeId, native::NativeType)> {
    let native: &[NativeElement] = &compiled.native;
    let mut found = Vec::new();
    let Some(root) = doc.document_element().filter(|_| !native.is_empty()) else {
        return found;
    };
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        let Some(e) = doc.element(id) else { continue };
        let ns = e.name.namespace_uri.as_deref();
        if ns != compiled.target_namespace.as_deref() {
            continue;
        }
        if let Some(n) = native
            .iter()
            .find(|n| e.name.local_name == n.local_name.as_str() && ns == n.namespace.as_deref())
        {
            found.push((id, n.check));
        }
        stack.extend(doc.children_iter(id));
    }
    found
}

/// The character data of a simple-content element (text and CDATA children, comments and
/// processing instructions skipped). Borrowed when it is a single text node, as a payload is.
fn character_data<'d>(doc: &'d Document<'_>, id: NodeId) -> std::borrow::Cow<'d, str> {
    let mut parts = doc
        .children_iter(id)
        .filter_map(|c| match doc.node_kind(c) {
            Some(NodeKind::Text(t) | NodeKind::CData(t)) => Some(t.as_ref()),
            _ => None,
        });
    let Some(first) = parts.next() else {
        return std::borrow::Cow::Borrowed("");
    };
    match parts.next() {
        None => std::borrow::Cow::Borrowed(first),
        Some(second) => {
            let mut all = String::from(first);
            all.push_str(second);
            parts.for_each(|p| all.push_str(p));
            std::borrow::Cow::Owned(all)
        }
    }
}

/// Empties the text and CDATA children of the natively checked elements. Node positions are
/// kept (they are stored per node, not derived from the text).
fn blank_character_data(doc: &mut Document<'_>, payloads: &[(NodeId, native::NativeType)]) {
    for &(id, _) in payloads {
        for child in doc.children(id) {
            if let Some(kind @ (NodeKind::Text(_) | NodeKind::CData(_))) = doc.node_kind_mut(child)
            {
                *kind = NodeKind::Text("".into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>000.00.00.H41</OrganId><OrganName>UBND tỉnh Nghệ An</OrganName></From>
        <ResponseFor><OrganId>000.00.00.G22</OrganId><DocumentId>x</DocumentId></ResponseFor>
        <StatusCode>01</StatusCode>
        <Timestamp>2025/03/14 08:00:00</Timestamp>
      </MessageHeader>
    </edXMLHeader>
  </edXMLEnvelope>
</edXML>
"#;

    #[test]
    fn every_kind_compiles() {
        for kind in SchemaKind::ALL {
            compiled(kind).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(SchemaKind::ALL[kind.index()], kind);
        }
    }

    #[test]
    fn prefixes_do_not_matter_only_namespaces() {
        validate(SchemaKind::Status, STATUS.as_bytes()).unwrap();
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend_from_slice(STATUS.as_bytes());
        validate(SchemaKind::Status, &bytes).unwrap();
    }

    #[test]
    fn the_wrong_kind_is_refused_at_the_first_difference() {
        let err = validate(SchemaKind::Document, STATUS.as_bytes()).unwrap_err();
        let SchemaError::Invalid { violations, .. } = &err else {
            panic!("expected Invalid, got {err:?}");
        };
        assert!(
            violations
                .iter()
                .any(|v| v.element.as_deref() == Some("ResponseFor")),
            "{err}"
        );
    }

    #[test]
    fn a_parsed_document_gets_the_same_verdict() {
        fn parse(text: &str) -> Document<'_> {
            Parser::new().with_forbid_dtd(true).parse(text).unwrap()
        }
        let wrong_kind = STATUS.replacen("</StatusCode>", "</StatusCode><Extra/>", 1);
        for (kind, text) in [
            (SchemaKind::Status, STATUS.to_string()),
            (SchemaKind::Document, STATUS.to_string()),
            (SchemaKind::Status, wrong_kind),
        ] {
            let whole = validate(kind, text.as_bytes()).map_err(|e| e.to_string());
            let parsed = validate_parsed(kind, &text, &parse(&text)).map_err(|e| e.to_string());
            assert_eq!(whole, parsed, "{kind}");
        }
        assert!(validate_parsed(SchemaKind::Status, STATUS, &parse(STATUS)).is_ok());
        let many = format!("{}{}", STATUS, "<a/>".repeat(MAX_ELEMENTS));
        assert!(matches!(
            validate_parsed(SchemaKind::Status, &many, &parse(STATUS)),
            Err(SchemaError::TooManyElements { .. })
        ));
    }

    #[test]
    fn non_utf8_input_names_its_position() {
        let mut bytes = STATUS.as_bytes().to_vec();
        let at = STATUS.find("UBND").unwrap();
        bytes[at] = 0xFF;
        let err = validate(SchemaKind::Status, &bytes).unwrap_err();
        assert_eq!(
            err,
            SchemaError::NotUtf8 {
                kind: SchemaKind::Status,
                line: 6,
                column: 58,
                offset: at
            }
        );
    }

    #[test]
    fn a_doctype_is_refused_and_no_entity_is_expanded() {
        let xml = STATUS.replacen(
            "<edXML ",
            "<!DOCTYPE edXML [<!ENTITY x \"01\">]>\n<edXML ",
            1,
        );
        let xml = xml.replacen("<StatusCode>01<", "<StatusCode>&x;<", 1);
        let err = validate(SchemaKind::Status, xml.as_bytes()).unwrap_err();
        match &err {
            SchemaError::NotWellFormed { line, message, .. } => {
                assert_eq!(*line, 2, "{err}");
                assert!(message.contains("DOCTYPE"), "{err}");
            }
            other => panic!("expected NotWellFormed, got {other:?}"),
        }
    }

    #[test]
    fn malformed_xml_names_its_position() {
        let xml = STATUS.replacen("</StatusCode>", "</Status>", 1);
        let err = validate(SchemaKind::Status, xml.as_bytes()).unwrap_err();
        assert!(
            matches!(err, SchemaError::NotWellFormed { line: 8, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn too_many_start_tags_are_refused_before_parsing() {
        assert!(!start_tags_exceed(b"<a><b/><!-- c --><?pi?></a>", 2));
        assert!(start_tags_exceed(b"<a><b/><c/></a>", 2));
        let junk = "<x/>".repeat(MAX_ELEMENTS);
        let xml = STATUS.replacen("<StatusCode>", &format!("{junk}<StatusCode>"), 1);
        assert_eq!(
            validate(SchemaKind::Status, xml.as_bytes()),
            Err(SchemaError::TooManyElements {
                kind: SchemaKind::Status,
                limit: MAX_ELEMENTS
            })
        );
    }

    #[test]
    fn a_flood_of_errors_is_counted_but_not_located() {
        let junk = "<x/>".repeat(MAX_REPORTED + 50);
        let xml = STATUS.replacen("<StatusCode>", &format!("{junk}<StatusCode>"), 1);
        let err = validate(SchemaKind::Status, xml.as_bytes()).unwrap_err();
        let SchemaError::Invalid {
            total, violations, ..
        } = &err
        else {
            panic!("expected Invalid, got {err:?}");
        };
        assert!(*total > MAX_REPORTED, "{total}");
        assert_eq!(violations.len(), MAX_REPORTED);
        assert!(
            violations
                .iter()
                .all(|v| v.line.is_none() && v.element.is_none())
        );
        assert!(err.to_string().contains("positions omitted"), "{err}");
    }

    #[test]
    fn a_few_errors_are_located_and_named() {
        let xml = STATUS.replacen("000.00.00.G22", "G22", 1).replacen(
            "<StatusCode>01",
            "<StatusCode>14",
            1,
        );
        let err = validate(SchemaKind::Status, xml.as_bytes()).unwrap_err();
        let SchemaError::Invalid {
            total, violations, ..
        } = &err
        else {
            panic!("expected Invalid, got {err:?}");
        };
        assert_eq!(*total, 2);
        let at: Vec<(Option<usize>, Option<&str>)> = violations
            .iter()
            .map(|v| (v.line, v.element.as_deref()))
            .collect();
        assert_eq!(
            at,
            [(Some(7), Some("OrganId")), (Some(8), Some("StatusCode"))]
        );
        assert!(
            err.to_string()
                .contains("line 7, column 22: element OrganId"),
            "{err}"
        );
    }

    const DOCUMENT: &str = r#"<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>000.00.00.G22</OrganId><OrganName>VPCP</OrganName></From>
        <To><OrganId>000.00.00.H41</OrganId><OrganName>UBND</OrganName></To>
        <DocumentId>d</DocumentId>
        <Code><CodeNumber>1</CodeNumber><CodeNotation>VPCP</CodeNotation></Code>
        <PromulgationInfo><PromulgationDate>2025/03/14</PromulgationDate></PromulgationInfo>
        <DocumentType><Type>1</Type></DocumentType>
        <Subject>s</Subject>
      </MessageHeader>
    </edXMLHeader>
    <edXMLBody><edXMLManifest version="1.0"/></edXMLBody>
  </edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment>
      <ContentId>1</ContentId><AttachmentName>a</AttachmentName>
      <ContentType>application/pdf</ContentType>
      <ContentTransferEncoded>PAYLOAD</ContentTransferEncoded>
    </Attachment>
  </AttachmentEncoded>
</edXML>
"#;

    #[test]
    fn payloads_are_checked_natively_and_located() {
        for ok in [
            "QUJD",
            "QQ==",
            "<![CDATA[QUJD]]>",
            "QU<!-- c -->JD",
            "\n  QUJD  \n",
            "QU\nJD",
            "QU&#x20;JD",
        ] {
            let xml = DOCUMENT.replace("PAYLOAD", ok);
            validate(SchemaKind::Document, xml.as_bytes())
                .unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        }
        for bad in ["", "QUJ", "QR==", "QU*D", "QU&#x2A;D"] {
            let xml = DOCUMENT.replace("PAYLOAD", bad);
            let err = validate(SchemaKind::Document, xml.as_bytes()).unwrap_err();
            let SchemaError::Invalid { violations, .. } = &err else {
                panic!("{bad:?}: expected Invalid, got {err:?}");
            };
            assert_eq!(violations.len(), 1, "{bad:?}: {err}");
            assert_eq!(violations[0].line, Some(20), "{bad:?}: {err}");
            assert_eq!(
                violations[0].element.as_deref(),
                Some("ContentTransferEncoded")
            );
            assert!(violations[0].message.contains("base64"), "{err}");
        }
    }

    #[test]
    fn payload_and_schema_violations_are_reported_together_in_document_order() {
        let xml = DOCUMENT
            .replace("PAYLOAD", "QUJ")
            .replace("<Subject>s</Subject>", "<Subject> </Subject>");
        let err = validate(SchemaKind::Document, xml.as_bytes()).unwrap_err();
        let SchemaError::Invalid { violations, .. } = &err else {
            panic!("expected Invalid, got {err:?}");
        };
        let at: Vec<Option<&str>> = violations.iter().map(|v| v.element.as_deref()).collect();
        assert_eq!(
            at,
            [Some("Subject"), Some("ContentTransferEncoded")],
            "{err}"
        );
    }
}
