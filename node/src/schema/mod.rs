//! Validation of packets against the STRICT DocAxis XML schemas (`schemas/*.xsd`).
//!
//! Owns: the mapping from a [`SchemaKind`] to its schema, the compiled schemas (built once per
//! process, on first use, and cached), and the conversion of validator output into a
//! [`SchemaError`] a clerk or an operator can act on.
//!
//! The schemas describe the form DocAxis WRITES (BRIEF.md canonical order). Field packets from
//! other producers are not expected to pass: the tolerant reader handles those.
//!
//! Invariants:
//! - Self-contained: the schemas are embedded in the binary (`include_str!`, see
//!   [`embedded`]); nothing is read from disk or fetched from the network, ever.
//! - A DOCTYPE is refused at parse time (no DTD is read, no entity is expanded), even though
//!   the packet reader refuses DTDs before calling us.
//! - Input must be UTF-8 (the strict form); an optional UTF-8 byte-order mark is accepted.
//! - Every violation carries the line (and column) of the element it concerns and a message
//!   naming that element; messages are bounded in length (a 20 MB base64 payload is never
//!   copied into an error).

mod embedded;
mod report;

use std::fmt;
use std::sync::OnceLock;

use thiserror::Error;
use uppsala::{Parser, XsdValidator};

pub use embedded::SchemaBuildError;
pub use report::Violation;

/// Which strict schema a packet is validated against. The reader knows the kind; there is no
/// detection. Extensible: a new kind needs a variant, an entry in [`SchemaKind::ALL`], its
/// file in [`SchemaKind::file_name`] and in the embedded file table.
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
    /// The packet is not well-formed XML, or carries a DOCTYPE.
    #[error("{kind} is not well-formed XML at line {line}, column {column}: {message}")]
    NotWellFormed {
        kind: SchemaKind,
        line: usize,
        column: usize,
        message: String,
    },
    /// The packet is well-formed but violates the schema.
    #[error("{kind} does not conform to the strict schema {}: {}", kind.file_name(), report::Summary(violations))]
    Invalid {
        kind: SchemaKind,
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
/// `Ok(())` means the packet has exactly the strict shape (signature content excepted: that
/// is the verifier's business). The first call for a kind compiles its schema; later calls,
/// from any thread, reuse it.
pub fn validate(kind: SchemaKind, xml: &[u8]) -> Result<(), SchemaError> {
    let validator = compiled(kind)?;
    let text = utf8(kind, xml)?;
    let doc = Parser::new()
        .with_forbid_dtd(true)
        .parse(text)
        .map_err(|e| report::not_well_formed(kind, &e))?;
    let errors = validator.validate(&doc);
    if errors.is_empty() {
        return Ok(());
    }
    Err(SchemaError::Invalid {
        kind,
        violations: report::violations(&doc, &errors),
    })
}

/// The compiled schema of `kind`, built on first use.
fn compiled(kind: SchemaKind) -> Result<&'static XsdValidator, SchemaError> {
    static CACHE: [OnceLock<Result<XsdValidator, SchemaBuildError>>; SchemaKind::ALL.len()] =
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
        let (line, column) = report::line_column(&body[..offset]);
        SchemaError::NotUtf8 {
            kind,
            line,
            column,
            offset: offset + (xml.len() - body.len()),
        }
    })
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
}
