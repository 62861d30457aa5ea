//! Building the packets this node sends: documents from a clerk's request, the automatic
//! status 01 answering a received document, and their signing.
//!
//! Invariants:
//! - A document always comes from this node's own agency: a request naming another sender is
//!   refused, never rewritten.
//! - Every document carries exactly one TraceHeader, this agency at composition time.
//! - Every packet built here passes the strict schema the hub applies before it is returned.
//! - Signing is blocking and CPU-bound: async callers run [`sign`] in `spawn_blocking`.
//! - Nothing here touches storage; the caller commits what is returned.

use serde::Deserialize;

use dsig::{SignError, SigningIdentity, sign_packet_checked};
use edxml::compose::{
    CodeSpec, ComposeError, DocumentSpec, DocumentTypeSpec, OrgSpec, PromulgationSpec, SignerSpec,
    StaffSpec, guess_content_type, known_agency_name,
};
use edxml::schema::SchemaKind;
use edxml::{
    Attachment, DocumentPacket, EdxmlDateTime, Organization, Packet, Payload, TraceHeader,
    WriteError, write,
};
use exchange::packet_id::PacketId;

use super::db::{OutboxEntry, Outgoing, PacketKind};

/// A document as a clerk or records system sends it to `POST /api/v1/documents`: the fields of
/// a document description (`examples/*.toml`), with `from` optional (it defaults to, and must
/// be, this node's agency) and attachments given inline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendDocument {
    #[serde(default)]
    pub from: Option<OrgSpec>,
    pub to: Vec<OrgSpec>,
    pub subject: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub document_id: Option<String>,
    pub code: CodeSpec,
    #[serde(default)]
    pub promulgation: PromulgationSpec,
    #[serde(default)]
    pub document_type: Option<DocumentTypeSpec>,
    #[serde(default)]
    pub priority: Option<u8>,
    #[serde(default)]
    pub steering_type: Option<u32>,
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub to_places: Vec<String>,
    #[serde(default)]
    pub signer: Option<SignerSpec>,
    #[serde(default)]
    pub staff: Option<StaffSpec>,
    #[serde(default)]
    pub attachments: Vec<InlineAttachment>,
}

/// An attachment carried inside the request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InlineAttachment {
    /// File name written in the packet.
    pub name: String,
    /// MIME type; guessed from the name's extension when absent.
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The file's bytes, base64 (standard alphabet, padded).
    pub data: String,
}

/// Why a packet could not be built or signed.
#[derive(Debug, thiserror::Error)]
pub enum OutgoingError {
    #[error("{0}")]
    Compose(#[from] ComposeError),
    #[error("this node sends only as {agency}, but the document says it comes from {from}")]
    WrongSender { from: String, agency: String },
    #[error("attachment #{index} ({name:?}): {message}")]
    Attachment {
        index: usize,
        name: String,
        message: String,
    },
    #[error("the packet cannot be written: {0}")]
    Write(#[from] WriteError),
    #[error("{0}")]
    Sign(#[from] SignError),
    #[error(
        "the packet would be {size} bytes (attachments are base64-encoded in it, a third larger \
         than the files); this node sends at most {max} bytes (max_packet_bytes in node.toml; \
         the hub has a limit of its own)"
    )]
    TooLarge { size: usize, max: usize },
    #[error("the packet would be refused by the hub: {0}")]
    Schema(#[from] edxml::schema::SchemaError),
    #[error("document_id: {0}")]
    DocumentId(#[from] exchange::document_id::DocumentIdError),
}

impl OutgoingError {
    /// Whether the clerk's request is at fault (as opposed to this node's keys).
    pub fn is_request_error(&self) -> bool {
        !matches!(self, OutgoingError::Sign(_))
    }
}

/// Builds the document packet a clerk asked for, sent by `me`; recipients given by code only
/// get their well-known names.
pub fn compose_document(
    req: &SendDocument,
    me: &Organization,
) -> Result<DocumentPacket, OutgoingError> {
    compose_document_named(req, me, &known_agency_name)
}

/// [`compose_document`] with the names of other agencies from `others` (the node passes the
/// hub's directory, then the well-known list).
pub fn compose_document_named(
    req: &SendDocument,
    me: &Organization,
    others: &dyn Fn(&str) -> Option<String>,
) -> Result<DocumentPacket, OutgoingError> {
    if let Some(id) = &req.document_id {
        exchange::document_id::check_new(id, me.organ_id.as_str())?;
    }
    let my_code = me.organ_id.as_str().to_string();
    let my_name = me.organ_name.clone();
    let names = move |code: &str| {
        if code == my_code {
            Some(my_name.clone())
        } else {
            others(code)
        }
    };
    let spec = DocumentSpec {
        from: req
            .from
            .clone()
            .unwrap_or_else(|| OrgSpec::Code(me.organ_id.as_str().to_string())),
        to: req.to.clone(),
        subject: req.subject.clone(),
        content: req.content.clone(),
        document_id: req.document_id.clone(),
        code: req.code.clone(),
        promulgation: req.promulgation.clone(),
        document_type: req.document_type.clone(),
        priority: req.priority,
        steering_type: req.steering_type,
        due_date: req.due_date.clone(),
        to_places: req.to_places.clone(),
        signer: req.signer.clone(),
        staff: req.staff.clone(),
        attachments: Vec::new(),
    };
    let mut doc = spec.build(std::path::Path::new("."), &names)?;
    if doc.from.organ_id != me.organ_id {
        return Err(OutgoingError::WrongSender {
            from: doc.from.organ_id.to_string(),
            agency: me.organ_id.to_string(),
        });
    }
    for (i, a) in req.attachments.iter().enumerate() {
        let index = i + 1;
        let fail = |message: String| OutgoingError::Attachment {
            index,
            name: a.name.clone(),
            message,
        };
        let name = a.name.trim();
        if name.is_empty() {
            return Err(fail("the name is empty".into()));
        }
        let payload = strict_payload(a.data.trim())
            .map_err(|e| fail(format!("data is not valid base64: {e}")))?;
        let content_type = a
            .content_type
            .clone()
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| guess_content_type(name).to_string());
        let mut attachment =
            Attachment::from_payload(index.to_string(), name.to_string(), content_type, payload);
        attachment.description = a.description.clone().filter(|d| !d.trim().is_empty());
        doc.add_attachment(attachment);
    }
    doc.trace_headers = vec![TraceHeader {
        organ_id: me.organ_id.clone(),
        timestamp: EdxmlDateTime::now(),
    }];
    Ok(doc)
}

/// Base64 from a request as the packet's payload, checked as strictly as decoding it with the
/// standard padded alphabet would (canonical padding and trailing bits), but in 64 KiB pieces:
/// a big file is never decoded whole, nor encoded again.
fn strict_payload(text: &str) -> Result<Payload, String> {
    use base64::Engine as _;
    const PIECE: usize = 64 * 1024; // a multiple of 4: only the last piece may carry padding
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut buf = vec![0u8; PIECE / 4 * 3];
    for piece in text.as_bytes().chunks(PIECE) {
        if engine.decode_slice(piece, &mut buf).is_err() {
            // Decode the whole once more, only to name the fault with its true offset.
            return Err(match engine.decode(text) {
                Err(e) => e.to_string(),
                Ok(_) => "invalid base64".to_string(),
            });
        }
    }
    Payload::from_base64(text).map_err(|e| e.to_string())
}

/// The agency codes a request sends to.
pub fn recipient_codes(req: &SendDocument) -> Vec<String> {
    req.to.iter().map(|o| o.code().to_string()).collect()
}

/// Writes and signs a packet, and checks it against the strict schema the hub applies, so
/// that nothing is queued that the hub would refuse. Blocking and CPU-bound.
pub fn sign(packet: &Packet, identity: &SigningIdentity) -> Result<Vec<u8>, OutgoingError> {
    sign_within(packet, identity, usize::MAX)
}

/// [`sign`], refusing a packet over `max` bytes before signing it.
pub fn sign_within(
    packet: &Packet,
    identity: &SigningIdentity,
    max: usize,
) -> Result<Vec<u8>, OutgoingError> {
    let unsigned = write(packet)?;
    sign_written(packet, unsigned, identity, max)
}

/// [`sign_within`] for a packet the caller hands over: once the unsigned packet is written,
/// the attachments' text is freed, so a big document is held once less while it is signed.
/// Returns the packet (its attachments without their text: names and types only) and the
/// signed bytes.
pub fn sign_within_owned(
    mut packet: Packet,
    identity: &SigningIdentity,
    max: usize,
) -> Result<(Packet, Vec<u8>), OutgoingError> {
    let unsigned = write(&packet)?;
    packet.drop_attachment_text();
    let signed = sign_written(&packet, unsigned, identity, max)?;
    Ok((packet, signed))
}

fn sign_written(
    packet: &Packet,
    unsigned: Vec<u8>,
    identity: &SigningIdentity,
    max: usize,
) -> Result<Vec<u8>, OutgoingError> {
    // The signature adds a few kilobytes (the signer's chain): count them against the limit.
    if unsigned.len().saturating_add(8 * 1024) > max {
        return Err(OutgoingError::TooLarge {
            size: unsigned.len() + 8 * 1024,
            max,
        });
    }
    let kind = match packet {
        Packet::Document(_) => SchemaKind::Document,
        Packet::Status(_) => SchemaKind::Status,
    };
    // The strict schema judges the packet on the signer's own parse of it, before the key is
    // used: what it would refuse is never signed.
    sign_packet_checked(unsigned, identity, |text, doc| {
        Ok(edxml::schema::validate_parsed(kind, text, &doc)?)
    })
}

/// The outbox entry for a signed packet, queued now.
pub fn outgoing(packet: &Packet, bytes: Vec<u8>, now_ms: u64) -> Outgoing {
    let id = PacketId::of(&bytes);
    let recipients = packet.to().iter().map(|c| c.to_string()).collect();
    let document_id = packet.document_id().to_string();
    let entry = match packet {
        Packet::Document(d) => {
            let mut e = OutboxEntry::queued(
                PacketKind::Document,
                document_id,
                recipients,
                d.priority().code(),
                now_ms,
            );
            e.subject = Some(d.subject.clone());
            e.action = exchange::action_of(d);
            e
        }
        Packet::Status(s) => {
            let mut e = OutboxEntry::queued(PacketKind::Status, document_id, recipients, 0, now_ms);
            e.status_code = Some(s.status_code);
            e
        }
    };
    Outgoing { id, bytes, entry }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edxml::{AgencyCode, ReadOptions, StatusCode, read};
    use exchange::status::status_received;

    #[test]
    fn request_base64_is_checked_as_strictly_as_a_whole_decode_without_one() {
        use base64::Engine as _;
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
        let text = base64::engine::general_purpose::STANDARD.encode(&big);
        let payload = strict_payload(&text).unwrap();
        assert_eq!(payload.decoded().unwrap(), big, "several 64 KiB pieces");
        assert_eq!(strict_payload("QQ==").unwrap().decoded().unwrap(), b"A");
        for (bad, why) in [
            ("QR==", "trailing bits"),
            ("QQ", "missing padding"),
            ("QQ=", "short padding"),
            ("Q Q==", "whitespace"),
            ("QQ==QQ==", "padding in the middle"),
            ("QQ*=", "a character outside the alphabet"),
        ] {
            let e = strict_payload(bad).unwrap_err();
            assert_eq!(
                Some(e.as_str()),
                base64::engine::general_purpose::STANDARD
                    .decode(bad)
                    .err()
                    .map(|e| e.to_string())
                    .as_deref(),
                "{why}: the whole decode's message"
            );
        }
        let mut late = text.clone();
        late.replace_range(150_000..150_001, "*");
        let e = strict_payload(&late).unwrap_err();
        assert!(e.contains("150000"), "the true offset, not a piece's: {e}");
    }

    fn me() -> Organization {
        Organization::new(
            AgencyCode::parse_strict("000.00.00.G22").unwrap(),
            "Văn phòng Chính phủ",
        )
    }

    fn request(json: serde_json::Value) -> SendDocument {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn from_defaults_to_this_agency_and_attachments_are_inline() {
        let req = request(serde_json::json!({
            "to": ["000.00.00.H41", {"id": "000.00.00.X01", "name": "Sở Thử nghiệm"}],
            "subject": "Về việc thử nghiệm",
            "code": {"number": "12", "notation": "VPCP-TTĐT"},
            "promulgation": {"date": "2026/11/23"},
            "priority": 3,
            "attachments": [{"name": "a.pdf", "data": "JVBERi0xLjQK", "description": "Bản ký số"}]
        }));
        let doc = compose_document(&req, &me()).unwrap();
        assert_eq!(doc.from, me());
        assert_eq!(doc.to[0].organ_name, "UBND Tỉnh Nghệ An");
        assert_eq!(doc.to[1].organ_name, "Sở Thử nghiệm");
        assert_eq!(
            doc.document_id.as_str(),
            "000.00.00.G22,2026/11/23,12/VPCP-TTĐT"
        );
        assert_eq!(doc.attachments.len(), 1);
        assert_eq!(doc.attachments[0].content_type, "application/pdf");
        assert_eq!(doc.attachments[0].decoded().unwrap(), b"%PDF-1.4\n");
        assert_eq!(doc.trace_headers.len(), 1);
        assert_eq!(doc.trace_headers[0].organ_id, me().organ_id);
        let bytes = write(&Packet::Document(doc.clone())).unwrap();
        edxml::schema::validate(edxml::schema::SchemaKind::Document, &bytes).unwrap();
        let out = outgoing(&Packet::Document(doc), bytes.clone(), 42);
        assert_eq!(out.id, PacketId::of(&bytes));
        assert_eq!(out.entry.priority, 3);
        assert_eq!(out.entry.recipients, ["000.00.00.H41", "000.00.00.X01"]);
        assert_eq!(out.entry.next_attempt_ms, Some(42));
    }

    #[test]
    fn what_the_schema_refuses_is_refused_before_it_is_queued() {
        let req = request(serde_json::json!({
            "to": [{"id": "000.00.00.H41", "name": "UBND Tỉnh Nghệ An",
                    "email": format!("{}@nghean.gov.vn", "a".repeat(100))}],
            "subject": "S",
            "code": {"number": "1", "notation": "X"},
        }));
        let doc = compose_document(&req, &me()).unwrap();
        let certs = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../certs/agencies/000.00.00.G22"
        );
        let identity = SigningIdentity::from_pem_files(
            std::path::Path::new(&format!("{certs}.key.pem")),
            std::path::Path::new(&format!("{certs}.pem")),
        )
        .unwrap();
        let err = sign(&Packet::Document(doc), &identity).unwrap_err();
        assert!(matches!(err, OutgoingError::Schema(_)), "{err}");
        assert!(err.is_request_error());
        assert!(err.to_string().contains("Email"), "{err}");
    }

    #[test]
    fn refusals_name_the_problem() {
        let base = serde_json::json!({
            "to": ["000.00.00.H41"],
            "subject": "S",
            "code": {"number": "1", "notation": "X"},
        });
        let mut other_sender = base.clone();
        other_sender["from"] = "000.00.00.H14".into();
        let err = compose_document(&request(other_sender), &me()).unwrap_err();
        assert!(matches!(err, OutgoingError::WrongSender { .. }), "{err}");
        assert!(err.to_string().contains("000.00.00.H14"));

        let mut bad_data = base.clone();
        bad_data["attachments"] = serde_json::json!([{"name": "x.pdf", "data": "%%%"}]);
        let err = compose_document(&request(bad_data), &me()).unwrap_err();
        assert!(err.to_string().contains("x.pdf") && err.to_string().contains("base64"));

        let mut unknown = base.clone();
        unknown["to"] = serde_json::json!(["000.00.00.X77"]);
        let err = compose_document(&request(unknown), &me()).unwrap_err();
        assert!(err.to_string().contains("000.00.00.X77"), "{err}");

        let mut extra = base;
        extra["colour"] = "red".into();
        let err = serde_json::from_value::<SendDocument>(extra).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn status_01_answers_the_document_and_is_schema_valid() {
        let req = request(serde_json::json!({
            "to": ["000.00.00.H41"],
            "subject": "S",
            "code": {"number": "7", "notation": "VPCP"},
            "promulgation": {"date": "2026/11/23"},
        }));
        let doc = compose_document(&req, &me()).unwrap();
        let h41 = Organization::new(
            AgencyCode::parse_strict("000.00.00.H41").unwrap(),
            "UBND Tỉnh Nghệ An",
        );
        let status = status_received(&doc, &h41);
        assert_eq!(status.response_for.organ_id, me().organ_id);
        assert_eq!(status.response_for.document_id, doc.document_id);
        assert_eq!(status.response_for.code.as_deref(), Some("7/VPCP"));
        assert_eq!(status.status_code, StatusCode::Received);
        let packet = Packet::Status(status);
        let bytes = write(&packet).unwrap();
        edxml::schema::validate(edxml::schema::SchemaKind::Status, &bytes).unwrap();
        let back = read(&bytes, &ReadOptions::strict()).unwrap();
        assert_eq!(back.packet, packet);
        let out = outgoing(&packet, bytes, 1);
        assert_eq!(out.entry.kind, PacketKind::Status);
        assert_eq!(out.entry.recipients, ["000.00.00.G22"]);
        assert_eq!(out.entry.status_code, Some(edxml::StatusCode::Received));
    }
}
