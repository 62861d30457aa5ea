//! The node ↔ hub wire protocol, version 1: paths, JSON bodies and error codes.
//!
//! Transport is HTTPS (HTTP/2 preferred) with mandatory client certificates; the client's
//! certificate names the agency (subject UID), so no request carries an agency code of its own:
//! a node can only ever act as itself.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/v1/packets` | signed edXML (`application/xml`) | 200 signed submission receipt (`application/xml`), or [`ErrorBody`] |
//! | GET | `/v1/inbox?wait=S&limit=N` | – | [`PendingList`]: packets waiting for the caller, most urgent first, small ones inline ([`PendingItem::packet`]); long-polls up to `S` seconds |
//! | GET | `/v1/packets/{id}` | – | the packet's signed bytes, if it is queued for or was delivered to the caller; else 404 |
//! | POST | `/v1/acks` | [`AckRequest`] | [`AckResponse`]: one signed delivery receipt per acknowledged packet |
//! | GET | `/v1/receipts?wait=S&limit=N` | – | [`ReceiptList`]: delivery receipts for packets the caller sent |
//! | POST | `/v1/receipts/ack` | [`ReceiptAckRequest`] | 204: those receipts are no longer listed |
//! | GET | `/v1/directory` | – | [`Directory`] JSON, with the hub's detached signature in header `x-docaxis-signature` |
//!
//! Anything a caller may not see (another agency's packet or receipt) is answered exactly like
//! something that does not exist: 404 with code `not_found`.
//!
//! Invariants: the hub answers 200 to a submission only after the packet and its delivery rows
//! are durably committed; resubmitting the same bytes returns the first receipt again.

use serde::{Deserialize, Serialize};

/// Submit a packet.
pub const PACKETS: &str = "/v1/packets";
/// List pending packets for the caller.
pub const INBOX: &str = "/v1/inbox";
/// Acknowledge fetched packets.
pub const ACKS: &str = "/v1/acks";
/// List delivery receipts for the caller's packets.
pub const RECEIPTS: &str = "/v1/receipts";
/// Acknowledge collected delivery receipts.
pub const RECEIPTS_ACK: &str = "/v1/receipts/ack";
/// The agency directory.
pub const DIRECTORY: &str = "/v1/directory";
/// Header carrying the hub's signature over a directory body (base64 of an XML-DSig document).
pub const DIRECTORY_SIGNATURE_HEADER: &str = "x-docaxis-signature";

/// Path to fetch one packet.
pub fn packet_path(packet_id: &str) -> String {
    format!("{PACKETS}/{packet_id}")
}

/// Longest long-poll the hub grants, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// Most items one list answer carries.
pub const MAX_LIST: usize = 500;

/// Largest packet the hub carries inline in an inbox listing; larger ones are fetched.
pub const INLINE_PACKET_BYTES: u64 = 64 * 1024;
/// Most packet bytes one inbox listing carries inline; the items past it are fetched.
pub const INLINE_LISTING_BYTES: u64 = 2 * 1024 * 1024;
/// Largest inbox listing a node reads: the inline packets (JSON escapes at most double a
/// packet's text: `"`, `\`, tab, CR and LF are the only characters an XML packet can hold
/// that JSON escapes) and every item's fields.
pub const MAX_LISTING_BYTES: u64 = 2 * INLINE_LISTING_BYTES + MAX_LIST as u64 * 2048;

/// Machine-readable error codes, with the HTTP status the hub uses for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 413: the body is larger than the hub accepts.
    TooLarge,
    /// 400: not well-formed XML, a DTD, or not an edXML packet.
    Malformed,
    /// 422: the packet does not follow the strict schema.
    Schema,
    /// 422: the signature is missing, invalid, untrusted, expired or revoked.
    Signature,
    /// 403: the signing certificate is not registered for `From/OrganId`.
    SignerNotRegistered,
    /// 403: the TLS client certificate belongs to another agency than `From/OrganId`.
    ClientNotSender,
    /// 403: the agency is unknown to the hub or suspended.
    AgencyNotActive,
    /// 422: the DocumentId is not one the sender may use (another agency's, a path, hidden
    /// characters, DocAxis's request form; see `exchange::document_id`).
    DocumentId,
    /// 409: another packet already uses this (From, DocumentId, BussinessDocType).
    DuplicateBusinessKey,
    /// 422: no recipient of the packet can be routed to.
    NoRecipient,
    /// 404: nothing of that name exists for the caller.
    NotFound,
    /// 400: the request itself is wrong (bad id, bad JSON).
    BadRequest,
    /// 401: a local API's bearer token is missing or wrong.
    Unauthorized,
    /// 408: the request body arrived too slowly.
    RequestTimeout,
    /// 500/503: the hub failed; retry later.
    Internal,
}

impl ErrorCode {
    /// The code as on the wire (`snake_case`), for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Malformed => "malformed",
            ErrorCode::Schema => "schema",
            ErrorCode::Signature => "signature",
            ErrorCode::SignerNotRegistered => "signer_not_registered",
            ErrorCode::ClientNotSender => "client_not_sender",
            ErrorCode::AgencyNotActive => "agency_not_active",
            ErrorCode::DocumentId => "document_id",
            ErrorCode::DuplicateBusinessKey => "duplicate_business_key",
            ErrorCode::NoRecipient => "no_recipient",
            ErrorCode::NotFound => "not_found",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    /// A sentence for a human: what is wrong, precisely.
    pub message: String,
}

/// What a packet is: a document (with its attachments) or a status about one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketKind {
    Document,
    Status,
}

impl PacketKind {
    /// `document` or `status`, as on the wire and in stored records.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketKind::Document => "document",
            PacketKind::Status => "status",
        }
    }

    /// The kind of a packet.
    pub fn of(packet: &edxml::Packet) -> PacketKind {
        match packet {
            edxml::Packet::Document(_) => PacketKind::Document,
            edxml::Packet::Status(_) => PacketKind::Status,
        }
    }

    /// Parses `document` or `status`.
    pub fn parse(s: &str) -> Option<PacketKind> {
        match s {
            "document" => Some(PacketKind::Document),
            "status" => Some(PacketKind::Status),
            _ => None,
        }
    }
}

impl std::fmt::Display for PacketKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One packet waiting for the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingItem {
    pub packet_id: String,
    pub from: String,
    pub kind: PacketKind,
    /// edXML priority 0–4 (status packets: 0).
    pub priority: u8,
    pub size: u64,
    /// When the hub accepted it.
    pub queued_at: crate::clock::Timestamp,
    /// The packet's exact bytes (UTF-8 XML) when small enough to come with the listing
    /// ([`INLINE_PACKET_BYTES`], [`INLINE_LISTING_BYTES`]): one request less per packet. The
    /// node checks them exactly as fetched bytes, starting with their SHA-256 against
    /// `packet_id`. Absent: fetch `GET /v1/packets/{id}`. Older nodes ignore the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<String>,
}

/// Answer of `GET /v1/inbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingList {
    pub items: Vec<PendingItem>,
}

/// Body of `POST /v1/acks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRequest {
    pub packet_ids: Vec<String>,
}

/// One acknowledged packet and the hub's signed delivery receipt for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckedPacket {
    pub packet_id: String,
    /// Signed delivery receipt XML.
    pub receipt: String,
    /// The signed submission receipt the hub gave the sender when it accepted the packet:
    /// the recipient keeps it as the evidence of when the hub received the packet (archives).
    /// Absent from hubs older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_receipt: Option<String>,
}

/// Answer of `POST /v1/acks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckResponse {
    pub acked: Vec<AckedPacket>,
}

/// A delivery receipt waiting for the sender to collect it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptItem {
    pub seq: u64,
    pub packet_id: String,
    pub recipient: String,
    /// Signed receipt XML.
    pub receipt: String,
}

/// Answer of `GET /v1/receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptList {
    pub items: Vec<ReceiptItem>,
}

/// Body of `POST /v1/receipts/ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptAckRequest {
    pub seqs: Vec<u64>,
}

/// One agency as the hub publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    pub code: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// SHA-256 fingerprints (hex) of the certificates the agency may sign and connect with.
    pub fingerprints: Vec<String>,
    pub active: bool,
}

/// The agency directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Directory {
    /// RFC 3339 time the hub produced this copy.
    pub issued_at: crate::clock::Timestamp,
    pub agencies: Vec<DirectoryEntry>,
}

/// Is `s` a packet id (64 lower-case hex digits)?
pub fn is_packet_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_snake_case_on_the_wire() {
        let body = ErrorBody {
            code: ErrorCode::DuplicateBusinessKey,
            message: "x".into(),
        };
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.contains("\"duplicate_business_key\""), "{json}");
    }

    #[test]
    fn error_code_names_are_the_wire_names() {
        for code in [
            ErrorCode::TooLarge,
            ErrorCode::Malformed,
            ErrorCode::Schema,
            ErrorCode::Signature,
            ErrorCode::SignerNotRegistered,
            ErrorCode::ClientNotSender,
            ErrorCode::AgencyNotActive,
            ErrorCode::DocumentId,
            ErrorCode::DuplicateBusinessKey,
            ErrorCode::NoRecipient,
            ErrorCode::NotFound,
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::RequestTimeout,
            ErrorCode::Internal,
        ] {
            let wire = serde_json::to_value(code).unwrap();
            assert_eq!(wire.as_str(), Some(code.as_str()));
        }
    }

    #[test]
    fn packet_ids_are_strict() {
        assert!(is_packet_id(&"a".repeat(64)));
        assert!(!is_packet_id(&"A".repeat(64)));
        assert!(!is_packet_id("../etc/passwd"));
        assert!(!is_packet_id(&"a".repeat(63)));
    }
}
