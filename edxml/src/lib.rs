//! edXML packets (QCVN 102:2016): the model, a tolerant and bounded reader, a strict writer.
//!
//! Read tolerantly, write strictly. [`read`] accepts what real producers send (any prefixes,
//! any element order, CRLF, `Business`/`Bussiness`, `Status`/`MessageHeader`, `cid:` ContentIds)
//! and refuses what is dangerous or ambiguous (DOCTYPE, foreign entities, non-UTF-8, duplicated
//! singletons, inputs past the [`Limits`]). [`write`] emits the canonical form of the shared
//! contract (BRIEF: canonical element order and prefixes).
//!
//! Whitespace: the text of every leaf element is trimmed of XML whitespace at both ends and keeps
//! LF line endings inside (XML end-of-line normalisation; a CR is kept only when written as a
//! character reference, which the writer does). The writer trims the same way and omits empty
//! optional fields, so `read(write(p)) == p` for any packet already in that normal form, and
//! `read(write(read(bytes))) == read(bytes)` for any readable input.

pub mod agency;
pub mod attachment;
pub mod codes;
pub mod compose;
pub mod datetime;
pub mod diagnostics;
pub mod model;
pub mod reader;
pub mod schema;
pub mod writer;

/// The QCVN 102:2016 namespace URI.
pub const QCVN_NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
/// The W3C XML-DSig namespace URI.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

pub use agency::{AgencyCode, AgencyCodeError, AgencyLevels};
pub use attachment::{Attachment, AttachmentError, Payload, ZipEntry};
pub use codes::{BussinessDocType, CodeError, Priority, ReceiverType, StatusCode};
pub use datetime::{DateError, EdxmlDate, EdxmlDateTime};
pub use diagnostics::{ReadError, ReadErrorKind, Warning, WarningKind};
pub use model::{
    Bussiness, BussinessDocumentInfo, Code, DocumentId, DocumentPacket, DocumentType, Organization,
    OtherInfo, Packet, PacketKind, PromulgationInfo, Receiver, Reference, ReplacementInfo,
    ResponseFor, SignerInfo, StaffInfo, StatusPacket, TraceHeader,
};
pub use reader::{Limits, ReadOptions, ReadOutcome, SignatureState, read};
pub use writer::{WriteError, write};
