//! The packet model: what a document packet or a status packet says, independent of XML
//! syntax (prefixes, element order, line endings).
//!
//! Invariants kept by the reader and expected by the writer: text fields are trimmed of XML
//! whitespace (space, tab, CR, LF) at both ends and hold LF line endings inside; optional text
//! is `None` rather than empty; required text is non-empty; ContentIds carry no `cid:` prefix;
//! `references` is the manifest as sent and `attachments` the files as sent (they normally
//! match one-to-one by ContentId, see [`DocumentPacket::add_attachment`]).

use serde::Serialize;

use super::agency::AgencyCode;
use super::attachment::Attachment;
use super::codes::{BussinessDocType, Priority, ReceiverType, StatusCode};
use super::datetime::{EdxmlDate, EdxmlDateTime};

/// The business identity of a document (`DocumentId`). Opaque: commonly
/// `"{senderOrganId},{yyyy/MM/dd},{số}/{ký hiệu}"`, but UUIDs and impossible dates occur.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct DocumentId(pub String);

impl DocumentId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DocumentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DocumentId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<String> for DocumentId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// `From` or `To`: an agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    pub organ_id: AgencyCode,
    pub organization_in_charge: Option<String>,
    pub organ_name: String,
    pub organ_add: Option<String>,
    pub email: Option<String>,
    pub telephone: Option<String>,
    pub fax: Option<String>,
    pub website: Option<String>,
}

impl Organization {
    /// An organization with its code and name, other fields empty.
    pub fn new(organ_id: AgencyCode, organ_name: impl Into<String>) -> Self {
        Self {
            organ_id,
            organization_in_charge: None,
            organ_name: organ_name.into(),
            organ_add: None,
            email: None,
            telephone: None,
            fax: None,
            website: None,
        }
    }
}

/// `Code`: số (CodeNumber) and ký hiệu (CodeNotation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code {
    pub code_number: String,
    pub code_notation: String,
}

impl Code {
    pub fn new(code_number: impl Into<String>, code_notation: impl Into<String>) -> Self {
        Self {
            code_number: code_number.into(),
            code_notation: code_notation.into(),
        }
    }
}

/// `PromulgationInfo`: where and when the document was issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromulgationInfo {
    pub place: Option<String>,
    pub promulgation_date: EdxmlDate,
}

/// `DocumentType`: numeric type, detail, and the printed type name ("Công văn").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentType {
    /// `Type`.
    pub type_code: u32,
    pub type_detail: Option<u32>,
    pub type_name: Option<String>,
}

/// `SignerInfo`: who signed the paper document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignerInfo {
    /// Signing capacity, e.g. "TL. BỘ TRƯỞNG", "KT.".
    pub competence: Option<String>,
    pub position: Option<String>,
    pub full_name: String,
}

/// `OtherInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct OtherInfo {
    pub priority: Priority,
    pub sphere_of_promulgation: Option<String>,
    pub typer_notation: Option<String>,
    pub promulgation_amount: Option<u32>,
    pub page_amount: Option<u32>,
    pub direction: Option<bool>,
    /// `Appendixes/Appendix*`.
    pub appendixes: Vec<String>,
}

/// `ResponseFor`: the document a packet answers (document packets: 0..n; status packets: the
/// document whose status this is, and `organ_id` is the status packet's destination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResponseFor {
    pub organ_id: AgencyCode,
    /// "số/ký hiệu" as one string.
    pub code: Option<String>,
    pub promulgation_date: Option<EdxmlDate>,
    pub document_id: DocumentId,
}

/// `TraceHeader`: one hop (agency and time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceHeader {
    pub organ_id: AgencyCode,
    pub timestamp: EdxmlDateTime,
}

/// `StaffInfo`: the clerk who handled the packet.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StaffInfo {
    pub department: Option<String>,
    pub staff: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

/// `Receiver` in an update: an agency added to or removed from the recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receiver {
    pub organ_id: AgencyCode,
    pub receiver_type: ReceiverType,
}

/// `BussinessDocumentInfo` (BussinessDocType 2, update): what changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BussinessDocumentInfo {
    /// `DocumentInfo`: 1 when the metadata changed.
    pub document_info: u32,
    /// `DocumentReceiver`: 1 when the recipients changed.
    pub document_receiver: u32,
    /// `ReceiverList/Receiver*`.
    pub receivers: Vec<Receiver>,
}

/// `ReplacementInfo` (BussinessDocType 3, replace): the replaced document and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplacementInfo {
    pub document_id: DocumentId,
    /// `OrganIdList/OrganId*`.
    pub organ_ids: Vec<AgencyCode>,
}

/// `Bussiness` (sic): what this document packet does to earlier documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bussiness {
    /// The earlier document this action targets.
    pub document_id: Option<DocumentId>,
    pub doc_type: BussinessDocType,
    pub reason: Option<String>,
    pub paper: Option<u32>,
    pub document_info: Option<BussinessDocumentInfo>,
    /// `ReplacementInfoList/ReplacementInfo*`.
    pub replacements: Vec<ReplacementInfo>,
    pub staff_info: Option<StaffInfo>,
}

impl Bussiness {
    pub fn new(doc_type: BussinessDocType) -> Self {
        Self {
            document_id: None,
            doc_type,
            reason: None,
            paper: None,
            document_info: None,
            replacements: Vec::new(),
            staff_info: None,
        }
    }
}

/// A manifest entry (`edXMLManifest/Reference`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// ContentId without the `cid:` prefix.
    pub content_id: String,
    pub content_type: String,
    pub description: Option<String>,
    pub attachment_name: String,
}

impl Reference {
    /// The manifest entry describing an attachment.
    pub fn describing(a: &Attachment) -> Self {
        Self {
            content_id: a.content_id.clone(),
            content_type: a.content_type.clone(),
            description: a.description.clone(),
            attachment_name: a.name.clone(),
        }
    }
}

/// A document packet (gói tin văn bản).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DocumentPacket {
    pub from: Organization,
    /// One per recipient agency; at least one.
    pub to: Vec<Organization>,
    pub document_id: DocumentId,
    pub code: Code,
    pub promulgation_info: PromulgationInfo,
    pub document_type: DocumentType,
    /// Trích yếu.
    pub subject: String,
    pub content: Option<String>,
    pub signer_info: Option<SignerInfo>,
    pub due_date: Option<EdxmlDate>,
    /// `ToPlaces/Place*`: "nơi nhận" as printed, not routing.
    pub to_places: Vec<String>,
    pub other_info: Option<OtherInfo>,
    pub response_for: Vec<ResponseFor>,
    /// Kept as the number (meanings uncertain: 0 none, 1 chỉ đạo, 2 báo cáo chỉ đạo).
    pub steering_type: Option<u32>,
    pub trace_headers: Vec<TraceHeader>,
    pub bussiness: Option<Bussiness>,
    /// The manifest (`edXMLBody/edXMLManifest/Reference*`).
    pub references: Vec<Reference>,
    /// The files (`AttachmentEncoded/Attachment*`).
    pub attachments: Vec<Attachment>,
}

impl DocumentPacket {
    /// A packet with the required fields; the rest empty (set the public fields as needed).
    pub fn new(
        from: Organization,
        to: Vec<Organization>,
        document_id: impl Into<DocumentId>,
        code: Code,
        promulgation_date: EdxmlDate,
        document_type: DocumentType,
        subject: impl Into<String>,
    ) -> Self {
        Self {
            from,
            to,
            document_id: document_id.into(),
            code,
            promulgation_info: PromulgationInfo {
                place: None,
                promulgation_date,
            },
            document_type,
            subject: subject.into(),
            content: None,
            signer_info: None,
            due_date: None,
            to_places: Vec::new(),
            other_info: None,
            response_for: Vec::new(),
            steering_type: None,
            trace_headers: Vec::new(),
            bussiness: None,
            references: Vec::new(),
            attachments: Vec::new(),
        }
    }

    /// Adds a file and its manifest entry.
    pub fn add_attachment(&mut self, attachment: Attachment) {
        self.references.push(Reference::describing(&attachment));
        self.attachments.push(attachment);
    }

    /// The priority, `Normal` when OtherInfo is absent.
    pub fn priority(&self) -> Priority {
        self.other_info
            .as_ref()
            .map(|o| o.priority)
            .unwrap_or_default()
    }

    /// The business action, `New` when Bussiness is absent.
    pub fn bussiness_doc_type(&self) -> BussinessDocType {
        self.bussiness
            .as_ref()
            .map(|b| b.doc_type)
            .unwrap_or_default()
    }

    /// The attachment a manifest reference points to.
    pub fn attachment(&self, content_id: &str) -> Option<&Attachment> {
        let id = super::attachment::normalize_content_id(content_id);
        self.attachments.iter().find(|a| a.content_id == id)
    }
}

/// A status packet (gói tin trạng thái).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusPacket {
    /// The agency sending this status.
    pub from: Organization,
    /// The document concerned; its `organ_id` is where this status goes.
    pub response_for: ResponseFor,
    pub staff_info: Option<StaffInfo>,
    pub status_code: StatusCode,
    /// Free text; the reason for 02 and 13.
    pub description: Option<String>,
    pub timestamp: EdxmlDateTime,
}

impl StatusPacket {
    pub fn new(
        from: Organization,
        response_for: ResponseFor,
        status_code: StatusCode,
        timestamp: EdxmlDateTime,
    ) -> Self {
        Self {
            from,
            response_for,
            staff_info: None,
            status_code,
            description: None,
            timestamp,
        }
    }
}

/// Which kind of packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketKind {
    Document,
    Status,
}

impl PacketKind {
    /// The national axis `messagetype` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            PacketKind::Document => "edoc",
            PacketKind::Status => "status",
        }
    }
}

/// An edXML packet.
#[expect(
    clippy::large_enum_variant,
    reason = "packets are built once and passed by reference; boxing would only burden callers"
)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Packet {
    Document(DocumentPacket),
    Status(StatusPacket),
}

impl Packet {
    /// Frees the attachments' base64 text, keeping their names, types and descriptions: for
    /// code that needs only the header of a packet whose bytes are kept elsewhere, so that a
    /// big packet is not held twice. The packet can no longer be written out whole.
    pub fn drop_attachment_text(&mut self) {
        if let Packet::Document(d) = self {
            for a in &mut d.attachments {
                drop(std::mem::take(&mut a.payload));
            }
        }
    }

    pub fn kind(&self) -> PacketKind {
        match self {
            Packet::Document(_) => PacketKind::Document,
            Packet::Status(_) => PacketKind::Status,
        }
    }

    /// The sending agency.
    pub fn from(&self) -> &Organization {
        match self {
            Packet::Document(d) => &d.from,
            Packet::Status(s) => &s.from,
        }
    }

    /// The destination agencies: every `To/OrganId`, or a status packet's `ResponseFor/OrganId`.
    pub fn to(&self) -> Vec<&AgencyCode> {
        match self {
            Packet::Document(d) => d.to.iter().map(|o| &o.organ_id).collect(),
            Packet::Status(s) => vec![&s.response_for.organ_id],
        }
    }

    /// The document identity the packet is about: its own DocumentId, or for a status packet
    /// the DocumentId it answers.
    pub fn document_id(&self) -> &DocumentId {
        match self {
            Packet::Document(d) => &d.document_id,
            Packet::Status(s) => &s.response_for.document_id,
        }
    }
}
