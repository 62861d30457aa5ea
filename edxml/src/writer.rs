//! Writing packets in the canonical form of the shared contract: [`write`].
//!
//! Invariants: output is UTF-8 with `<?xml version="1.0" encoding="UTF-8"?>`, LF line endings
//! and two-space indentation; the root is in the default QCVN namespace, envelope elements use
//! the `edXML:` prefix, the `AttachmentEncoded` subtree redeclares the default namespace and
//! is unprefixed except `edXML:ContentTransferEncoded`; elements come in the canonical order;
//! no signature is written (signing inserts `ds:Signature` into the bytes later). Text is
//! trimmed, escaped (`&`, `<`, `>`, and CR as `&#13;` so it survives end-of-line
//! normalisation), and checked: required fields non-empty, only XML characters, within the
//! reader's field limit, manifest and attachments paired one-to-one by ContentId.

use std::borrow::Cow;
use std::collections::HashSet;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::QCVN_NS;
use super::attachment::normalize_content_id;
use super::model::*;
use super::reader::Limits;

/// Why a packet cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("{field} is required but empty")]
    EmptyRequired { field: String },
    #[error("{field} contains character U+{code:04X}, which XML 1.0 cannot carry")]
    IllegalCharacter { field: String, code: u32 },
    #[error("{field} is {len} bytes long, over the {limit}-byte limit that readers apply")]
    FieldTooLong {
        field: String,
        len: usize,
        limit: usize,
    },
    #[error("a document packet needs at least one recipient (To)")]
    NoRecipient,
    #[error("ContentId {content_id:?} is used more than once among the {element}s")]
    DuplicateContentId { content_id: String, element: String },
    #[error("manifest reference {content_id:?} has no attachment")]
    ReferenceWithoutAttachment { content_id: String },
    #[error("attachment {content_id:?} has no manifest reference")]
    AttachmentWithoutReference { content_id: String },
    #[error("writing XML failed: {0}")]
    Xml(String),
}

fn legal_xml_char(c: char) -> bool {
    matches!(c as u32, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

fn trim_xml(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// Escapes text content; borrows when nothing needs escaping.
fn escape_text(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| matches!(b, b'&' | b'<' | b'>' | b'\r')) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

struct Out {
    w: Writer<Vec<u8>>,
    /// Element prefix in force: `"edXML:"` in the envelope, `""` under AttachmentEncoded.
    prefix: &'static str,
    field_limit: usize,
}

type Res = Result<(), WriteError>;

fn io_err(e: std::io::Error) -> WriteError {
    WriteError::Xml(e.to_string())
}

impl Out {
    fn qname(&self, local: &str) -> String {
        format!("{}{local}", self.prefix)
    }

    fn start_with(&mut self, local: &str, attrs: &[(&str, &str)]) -> Res {
        let mut s = BytesStart::new(self.qname(local));
        for a in attrs {
            s.push_attribute(*a);
        }
        self.w.write_event(Event::Start(s)).map_err(io_err)
    }

    fn start(&mut self, local: &str) -> Res {
        self.start_with(local, &[])
    }

    fn end(&mut self, local: &str) -> Res {
        self.w
            .write_event(Event::End(BytesEnd::new(self.qname(local))))
            .map_err(io_err)
    }

    fn check<'v>(&self, field: &str, value: &'v str) -> Result<&'v str, WriteError> {
        let v = trim_xml(value);
        if let Some(c) = v.chars().find(|&c| !legal_xml_char(c)) {
            return Err(WriteError::IllegalCharacter {
                field: field.to_owned(),
                code: c as u32,
            });
        }
        if v.len() > self.field_limit {
            return Err(WriteError::FieldTooLong {
                field: field.to_owned(),
                len: v.len(),
                limit: self.field_limit,
            });
        }
        Ok(v)
    }

    fn raw_leaf(&mut self, local: &str, escaped: &str) -> Res {
        self.start(local)?;
        self.w
            .write_event(Event::Text(BytesText::from_escaped(escaped)))
            .map_err(io_err)?;
        self.end(local)
    }

    /// A required leaf: `field` names it in errors.
    fn leaf(&mut self, field: &str, local: &str, value: &str) -> Res {
        let v = self.check(field, value)?;
        if v.is_empty() {
            return Err(WriteError::EmptyRequired {
                field: field.to_owned(),
            });
        }
        self.raw_leaf(local, &escape_text(v))
    }

    /// An optional leaf, omitted when absent or blank.
    fn opt_leaf(&mut self, field: &str, local: &str, value: Option<&str>) -> Res {
        let Some(value) = value else { return Ok(()) };
        let v = self.check(field, value)?;
        if v.is_empty() {
            return Ok(());
        }
        self.raw_leaf(local, &escape_text(v))
    }

    fn organization(&mut self, field: &str, local: &str, o: &Organization) -> Res {
        let f = |name: &str| format!("{field}/{name}");
        self.start(local)?;
        self.leaf(&f("OrganId"), "OrganId", o.organ_id.as_str())?;
        self.opt_leaf(
            &f("OrganizationInCharge"),
            "OrganizationInCharge",
            o.organization_in_charge.as_deref(),
        )?;
        self.leaf(&f("OrganName"), "OrganName", &o.organ_name)?;
        self.opt_leaf(&f("OrganAdd"), "OrganAdd", o.organ_add.as_deref())?;
        self.opt_leaf(&f("Email"), "Email", o.email.as_deref())?;
        self.opt_leaf(&f("Telephone"), "Telephone", o.telephone.as_deref())?;
        self.opt_leaf(&f("Fax"), "Fax", o.fax.as_deref())?;
        self.opt_leaf(&f("Website"), "Website", o.website.as_deref())?;
        self.end(local)
    }

    fn response_for(&mut self, r: &ResponseFor) -> Res {
        self.start("ResponseFor")?;
        self.leaf("ResponseFor/OrganId", "OrganId", r.organ_id.as_str())?;
        self.opt_leaf("ResponseFor/Code", "Code", r.code.as_deref())?;
        if let Some(d) = r.promulgation_date {
            self.raw_leaf("PromulgationDate", &d.to_string())?;
        }
        self.leaf(
            "ResponseFor/DocumentId",
            "DocumentId",
            r.document_id.as_str(),
        )?;
        self.end("ResponseFor")
    }

    /// StaffInfo, omitted when none of its fields has text (it would read back as absent).
    fn staff_info(&mut self, field: &str, s: &StaffInfo) -> Res {
        let blank = [&s.department, &s.staff, &s.email, &s.mobile]
            .iter()
            .all(|v| v.as_deref().is_none_or(|t| trim_xml(t).is_empty()));
        if blank {
            return Ok(());
        }
        let f = |name: &str| format!("{field}/{name}");
        self.start("StaffInfo")?;
        self.opt_leaf(&f("Department"), "Department", s.department.as_deref())?;
        self.opt_leaf(&f("Staff"), "Staff", s.staff.as_deref())?;
        self.opt_leaf(&f("Email"), "Email", s.email.as_deref())?;
        self.opt_leaf(&f("Mobile"), "Mobile", s.mobile.as_deref())?;
        self.end("StaffInfo")
    }

    fn other_info(&mut self, o: &OtherInfo) -> Res {
        self.start("OtherInfo")?;
        self.raw_leaf("Priority", &o.priority.code().to_string())?;
        self.opt_leaf(
            "OtherInfo/SphereOfPromulgation",
            "SphereOfPromulgation",
            o.sphere_of_promulgation.as_deref(),
        )?;
        self.opt_leaf(
            "OtherInfo/TyperNotation",
            "TyperNotation",
            o.typer_notation.as_deref(),
        )?;
        if let Some(n) = o.promulgation_amount {
            self.raw_leaf("PromulgationAmount", &n.to_string())?;
        }
        if let Some(n) = o.page_amount {
            self.raw_leaf("PageAmount", &n.to_string())?;
        }
        if let Some(d) = o.direction {
            self.raw_leaf("Direction", if d { "true" } else { "false" })?;
        }
        self.text_list(
            "OtherInfo/Appendixes",
            "Appendixes",
            "Appendix",
            &o.appendixes,
        )?;
        self.end("OtherInfo")
    }

    /// A container of repeated leaves, omitted when no item has text.
    fn text_list(&mut self, field: &str, local: &str, item: &str, items: &[String]) -> Res {
        if items.iter().all(|i| trim_xml(i).is_empty()) {
            return Ok(());
        }
        self.start(local)?;
        for i in items {
            self.opt_leaf(&format!("{field}/{item}"), item, Some(i))?;
        }
        self.end(local)
    }

    fn header(&mut self, d: &DocumentPacket) -> Res {
        self.start("MessageHeader")?;
        self.organization("From", "From", &d.from)?;
        if d.to.is_empty() {
            return Err(WriteError::NoRecipient);
        }
        for to in &d.to {
            self.organization("To", "To", to)?;
        }
        self.leaf("DocumentId", "DocumentId", d.document_id.as_str())?;
        self.start("Code")?;
        self.leaf("Code/CodeNumber", "CodeNumber", &d.code.code_number)?;
        self.leaf("Code/CodeNotation", "CodeNotation", &d.code.code_notation)?;
        self.end("Code")?;
        self.start("PromulgationInfo")?;
        self.opt_leaf(
            "PromulgationInfo/Place",
            "Place",
            d.promulgation_info.place.as_deref(),
        )?;
        self.raw_leaf(
            "PromulgationDate",
            &d.promulgation_info.promulgation_date.to_string(),
        )?;
        self.end("PromulgationInfo")?;
        self.start("DocumentType")?;
        self.raw_leaf("Type", &d.document_type.type_code.to_string())?;
        if let Some(t) = d.document_type.type_detail {
            self.raw_leaf("TypeDetail", &t.to_string())?;
        }
        self.opt_leaf(
            "DocumentType/TypeName",
            "TypeName",
            d.document_type.type_name.as_deref(),
        )?;
        self.end("DocumentType")?;
        self.leaf("Subject", "Subject", &d.subject)?;
        self.opt_leaf("Content", "Content", d.content.as_deref())?;
        if let Some(s) = &d.signer_info {
            self.start("SignerInfo")?;
            self.opt_leaf(
                "SignerInfo/Competence",
                "Competence",
                s.competence.as_deref(),
            )?;
            self.opt_leaf("SignerInfo/Position", "Position", s.position.as_deref())?;
            self.leaf("SignerInfo/FullName", "FullName", &s.full_name)?;
            self.end("SignerInfo")?;
        }
        if let Some(due) = d.due_date {
            self.raw_leaf("DueDate", &due.to_string())?;
        }
        self.text_list("ToPlaces", "ToPlaces", "Place", &d.to_places)?;
        if let Some(o) = &d.other_info {
            self.other_info(o)?;
        }
        for r in &d.response_for {
            self.response_for(r)?;
        }
        if let Some(s) = d.steering_type {
            self.raw_leaf("SteeringType", &s.to_string())?;
        }
        self.end("MessageHeader")
    }

    fn bussiness(&mut self, b: &Bussiness) -> Res {
        self.start("Bussiness")?;
        if let Some(id) = &b.document_id {
            self.opt_leaf("Bussiness/DocumentId", "DocumentId", Some(id.as_str()))?;
        }
        self.raw_leaf("BussinessDocType", &b.doc_type.code().to_string())?;
        self.opt_leaf(
            "Bussiness/BussinessDocReason",
            "BussinessDocReason",
            b.reason.as_deref(),
        )?;
        if let Some(p) = b.paper {
            self.raw_leaf("Paper", &p.to_string())?;
        }
        if let Some(info) = &b.document_info {
            self.start("BussinessDocumentInfo")?;
            self.raw_leaf("DocumentInfo", &info.document_info.to_string())?;
            self.raw_leaf("DocumentReceiver", &info.document_receiver.to_string())?;
            if !info.receivers.is_empty() {
                self.start("ReceiverList")?;
                for r in &info.receivers {
                    self.start("Receiver")?;
                    self.leaf("Receiver/OrganId", "OrganId", r.organ_id.as_str())?;
                    self.raw_leaf("ReceiverType", &r.receiver_type.code().to_string())?;
                    self.end("Receiver")?;
                }
                self.end("ReceiverList")?;
            }
            self.end("BussinessDocumentInfo")?;
        }
        if !b.replacements.is_empty() {
            self.start("ReplacementInfoList")?;
            for r in &b.replacements {
                self.start("ReplacementInfo")?;
                self.leaf(
                    "ReplacementInfo/DocumentId",
                    "DocumentId",
                    r.document_id.as_str(),
                )?;
                self.start("OrganIdList")?;
                for id in &r.organ_ids {
                    self.leaf("OrganIdList/OrganId", "OrganId", id.as_str())?;
                }
                self.end("OrganIdList")?;
                self.end("ReplacementInfo")?;
            }
            self.end("ReplacementInfoList")?;
        }
        if let Some(s) = &b.staff_info {
            self.staff_info("Bussiness/StaffInfo", s)?;
        }
        self.end("Bussiness")
    }

    fn content_id(&self, field: &str, id: &str) -> Result<String, WriteError> {
        let v = self.check(field, normalize_content_id(id))?;
        if v.is_empty() {
            return Err(WriteError::EmptyRequired {
                field: field.to_owned(),
            });
        }
        Ok(format!("cid:{}", escape_text(v)))
    }
}

fn check_pairing(d: &DocumentPacket) -> Res {
    let mut refs = HashSet::new();
    for r in &d.references {
        let id = normalize_content_id(&r.content_id);
        if !refs.insert(id) {
            return Err(WriteError::DuplicateContentId {
                content_id: id.to_owned(),
                element: "manifest reference".into(),
            });
        }
    }
    let mut atts = HashSet::new();
    for a in &d.attachments {
        let id = normalize_content_id(&a.content_id);
        if !atts.insert(id) {
            return Err(WriteError::DuplicateContentId {
                content_id: id.to_owned(),
                element: "attachment".into(),
            });
        }
        if !refs.contains(id) {
            return Err(WriteError::AttachmentWithoutReference {
                content_id: id.to_owned(),
            });
        }
    }
    if let Some(id) = refs.iter().find(|id| !atts.contains(*id)) {
        return Err(WriteError::ReferenceWithoutAttachment {
            content_id: (*id).to_owned(),
        });
    }
    Ok(())
}

fn document(out: &mut Out, d: &DocumentPacket) -> Res {
    check_pairing(d)?;
    out.start_with("edXMLEnvelope", &[("xmlns:edXML", QCVN_NS)])?;
    out.start("edXMLHeader")?;
    out.header(d)?;
    if !d.trace_headers.is_empty() || d.bussiness.is_some() {
        out.start("TraceHeaderList")?;
        for t in &d.trace_headers {
            out.start("TraceHeader")?;
            out.leaf("TraceHeader/OrganId", "OrganId", t.organ_id.as_str())?;
            out.raw_leaf("Timestamp", &t.timestamp.to_string())?;
            out.end("TraceHeader")?;
        }
        if let Some(b) = &d.bussiness {
            out.bussiness(b)?;
        }
        out.end("TraceHeaderList")?;
    }
    out.end("edXMLHeader")?;
    out.start("edXMLBody")?;
    out.start_with("edXMLManifest", &[("version", "1.0")])?;
    for r in &d.references {
        out.start("Reference")?;
        let cid = out.content_id("Reference/ContentId", &r.content_id)?;
        out.raw_leaf("ContentId", &cid)?;
        out.leaf("Reference/ContentType", "ContentType", &r.content_type)?;
        out.opt_leaf(
            "Reference/Description",
            "Description",
            r.description.as_deref(),
        )?;
        out.leaf(
            "Reference/AttachmentName",
            "AttachmentName",
            &r.attachment_name,
        )?;
        out.end("Reference")?;
    }
    out.end("edXMLManifest")?;
    out.end("edXMLBody")?;
    out.end("edXMLEnvelope")?;
    if !d.attachments.is_empty() {
        out.prefix = "";
        out.start_with("AttachmentEncoded", &[("xmlns", QCVN_NS)])?;
        for a in &d.attachments {
            out.start("Attachment")?;
            let cid = out.content_id("Attachment/ContentId", &a.content_id)?;
            out.raw_leaf("ContentId", &cid)?;
            out.leaf("Attachment/AttachmentName", "AttachmentName", &a.name)?;
            out.opt_leaf(
                "Attachment/Description",
                "Description",
                a.description.as_deref(),
            )?;
            out.leaf("Attachment/ContentType", "ContentType", &a.content_type)?;
            // Validated base64 needs no escaping.
            let mut s = BytesStart::new("edXML:ContentTransferEncoded");
            s.push_attribute(("xmlns:edXML", QCVN_NS));
            out.w.write_event(Event::Start(s)).map_err(io_err)?;
            out.w
                .write_event(Event::Text(BytesText::from_escaped(a.payload.as_base64())))
                .map_err(io_err)?;
            out.w
                .write_event(Event::End(BytesEnd::new("edXML:ContentTransferEncoded")))
                .map_err(io_err)?;
            out.end("Attachment")?;
        }
        out.end("AttachmentEncoded")?;
    }
    Ok(())
}

fn status(out: &mut Out, s: &StatusPacket) -> Res {
    out.start_with("edXMLEnvelope", &[("xmlns:edXML", QCVN_NS)])?;
    out.start("edXMLHeader")?;
    out.start("MessageHeader")?;
    out.organization("From", "From", &s.from)?;
    out.response_for(&s.response_for)?;
    if let Some(st) = &s.staff_info {
        out.staff_info("StaffInfo", st)?;
    }
    out.raw_leaf("StatusCode", s.status_code.as_str())?;
    out.opt_leaf("Description", "Description", s.description.as_deref())?;
    out.raw_leaf("Timestamp", &s.timestamp.to_string())?;
    out.end("MessageHeader")?;
    out.end("edXMLHeader")?;
    out.end("edXMLEnvelope")
}

/// Writes a packet in canonical form.
pub fn write(packet: &Packet) -> Result<Vec<u8>, WriteError> {
    let payload: usize = match packet {
        Packet::Document(d) => d.attachments.iter().map(|a| a.payload.encoded_len()).sum(),
        Packet::Status(_) => 0,
    };
    let mut out = Out {
        w: Writer::new_with_indent(Vec::with_capacity(payload + 8 * 1024), b' ', 2),
        prefix: "",
        field_limit: Limits::default().max_field_len,
    };
    out.w
        .write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io_err)?;
    out.start_with("edXML", &[("xmlns", QCVN_NS)])?;
    out.prefix = "edXML:";
    match packet {
        Packet::Document(d) => document(&mut out, d)?,
        Packet::Status(s) => status(&mut out, s)?,
    }
    out.prefix = "";
    out.end("edXML")?;
    let mut bytes = out.w.into_inner();
    bytes.push(b'\n');
    Ok(bytes)
}
