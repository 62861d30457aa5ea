//! Reading edXML packets from untrusted bytes: [`read`].
//!
//! Pipeline: size limit → prolog scan (DOCTYPE refused before any parsing, declared encoding,
//! BOM, UTF-8 validity) → bounded streaming parse into a namespace-resolved tree (limits checked
//! per event) → mapping to the model. Invariants: names are matched by (namespace URI, local
//! name) only, element order is free, every refusal is a located [`ReadError`], and nothing is
//! read from inside a `ds:Signature` (its presence is reported as [`SignatureState::XmlDsig`];
//! verification belongs to another module).
//!
//! Lenient (default) versus strict ([`ReadOptions::strict`]): these are warnings in lenient mode
//! and refusals in strict mode — unknown elements (any namespace) inside known containers,
//! non-whitespace text between child elements, agency codes outside the national pattern,
//! elements a status packet must not carry (TraceHeaderList, edXMLBody, AttachmentEncoded),
//! a legacy `Signature` next to a `ds:Signature`, and manifest/attachment mismatches.
//! Mismatches are tolerated in lenient mode so that a receiving node can still read who sent
//! the packet and answer with a status 02 (rejection) naming the missing file, instead of
//! dropping the packet silently; duplicated ContentIds are always refused because they make
//! the pairing ambiguous.

mod fields;
mod map;
mod prolog;
mod tree;

use serde::Serialize;

use super::diagnostics::{ReadError, ReadErrorKind, Warning};
use super::model::Packet;

/// Resource bounds applied while reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting (the root is depth 1).
    pub max_depth: usize,
    /// Most elements in one packet (signature subtrees included).
    pub max_elements: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attributes: usize,
    /// Longest text of an attachment payload (`ContentTransferEncoded`), in bytes.
    pub max_text_len: usize,
    /// Longest text of any other element, in bytes.
    pub max_field_len: usize,
}

/// Default `max_bytes`: 64 MiB.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_BYTES,
            max_depth: 32,
            max_elements: 100_000,
            max_attributes: 32,
            max_text_len: DEFAULT_MAX_BYTES,
            max_field_len: 64 * 1024,
        }
    }
}

/// How to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    pub limits: Limits,
    /// Refuse what lenient mode only warns about (see the module documentation).
    pub strict: bool,
}

impl ReadOptions {
    /// Default limits, strict mode.
    pub fn strict() -> Self {
        Self {
            limits: Limits::default(),
            strict: true,
        }
    }
}

/// What the packet carries as a signature (never verified here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureState {
    /// No signature element.
    Absent,
    /// A `Signature` in the QCVN namespace (placeholder values, possibly empty): unsigned.
    LegacyUnsigned,
    /// A W3C `ds:Signature` as the header's child, to be verified by the signature module.
    XmlDsig,
}

/// A packet that was read, with what was tolerated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    pub packet: Packet,
    pub warnings: Vec<Warning>,
    pub signature: SignatureState,
}

/// Reads one packet from untrusted bytes.
pub fn read(bytes: &[u8], opts: &ReadOptions) -> Result<ReadOutcome, ReadError> {
    let limits = &opts.limits;
    if bytes.len() > limits.max_bytes {
        return Err(ReadError::at(
            bytes,
            0,
            "/",
            ReadErrorKind::TooLarge {
                size: bytes.len(),
                limit: limits.max_bytes,
            },
        ));
    }
    let bom = prolog::check(bytes).map_err(|(at, kind)| {
        let path = match kind {
            // Name the element holding the bad bytes: re-read the valid part before them.
            ReadErrorKind::InvalidUtf8 => std::str::from_utf8(&bytes[..at])
                .map(|valid| {
                    tree::open_path(valid.trim_start_matches('\u{feff}'), limits.max_depth)
                })
                .unwrap_or_else(|_| "/".to_owned()),
            _ => "/".to_owned(),
        };
        ReadError::at(bytes, at, path, kind)
    })?;
    let src = std::str::from_utf8(&bytes[bom..]).map_err(|e| {
        ReadError::at(
            bytes,
            bom + e.valid_up_to(),
            "/",
            ReadErrorKind::InvalidUtf8,
        )
    })?;
    let tree = tree::build(bytes, src, bom, limits)?;
    let mapped = map::map(bytes, &tree, opts.strict)?;
    Ok(ReadOutcome {
        packet: mapped.packet,
        warnings: mapped.warnings,
        signature: mapped.signature,
    })
}
