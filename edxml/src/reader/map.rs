//! Maps the element tree to the packet model: finds each field by (namespace, local name) in any
//! order, refuses missing and duplicated singletons, parses coded values, and applies the
//! lenient/strict policy.
//!
//! Invariants: every QCVN element the model knows is looked up exactly once per container and
//! a second occurrence of a singleton is refused (signature-wrapping defence); anything left
//! unclaimed in a known container is reported (warning, or refusal in strict mode); leaf text
//! is trimmed of XML whitespace, and empty optional leaves count as absent.

use std::collections::HashSet;

use super::fields::{Ctx, Fields, boolean, number};
use super::tree::{Ns, Tree};
use crate::attachment::{Attachment, Payload, normalize_content_id};
use crate::codes::{BussinessDocType, Priority, ReceiverType, StatusCode};
use crate::datetime::{EdxmlDate, EdxmlDateTime};
use crate::diagnostics::{ReadError, ReadErrorKind, Warning, WarningKind};
use crate::model::*;
use crate::reader::SignatureState;

pub(super) struct Mapped {
    pub packet: Packet,
    pub warnings: Vec<Warning>,
    pub signature: SignatureState,
}

fn organization(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<Organization, ReadError> {
    let mut f = Fields::of(ctx, node);
    let org = Organization {
        organ_id: f.req_agency(ctx, "OrganId")?,
        organization_in_charge: f.opt_text(ctx, "OrganizationInCharge")?,
        organ_name: f.req_text(ctx, "OrganName")?,
        organ_add: f.opt_text(ctx, "OrganAdd")?,
        email: f.opt_text(ctx, "Email")?,
        telephone: f.opt_text(ctx, "Telephone")?,
        fax: f.opt_text(ctx, "Fax")?,
        website: f.opt_text(ctx, "Website")?,
    };
    f.finish(ctx)?;
    Ok(org)
}

fn response_for(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<ResponseFor, ReadError> {
    let mut f = Fields::of(ctx, node);
    let r = ResponseFor {
        organ_id: f.req_agency(ctx, "OrganId")?,
        code: f.opt_text(ctx, "Code")?,
        promulgation_date: f.opt_parse(ctx, "PromulgationDate", EdxmlDate::parse)?,
        document_id: DocumentId(f.req_text(ctx, "DocumentId")?),
    };
    f.finish(ctx)?;
    Ok(r)
}

fn staff_info(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<StaffInfo, ReadError> {
    let mut f = Fields::of(ctx, node);
    let s = StaffInfo {
        department: f.opt_text(ctx, "Department")?,
        staff: f.opt_text(ctx, "Staff")?,
        email: f.opt_text(ctx, "Email")?,
        mobile: f.opt_text(ctx, "Mobile")?,
    };
    f.finish(ctx)?;
    Ok(s)
}

/// Texts of repeated leaves (`Place*`, `Appendix*`), empty ones skipped.
fn text_list(ctx: &mut Ctx<'_, '_>, node: u32, item: &str) -> Result<Vec<String>, ReadError> {
    let mut f = Fields::of(ctx, node);
    let mut out = Vec::new();
    for id in f.many(ctx, item) {
        let t = ctx.text(id)?;
        if !t.is_empty() {
            out.push(t.to_owned());
        }
    }
    f.finish(ctx)?;
    Ok(out)
}

fn code(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<Code, ReadError> {
    let mut f = Fields::of(ctx, node);
    let c = Code {
        code_number: f.req_text(ctx, "CodeNumber")?,
        code_notation: f.req_text(ctx, "CodeNotation")?,
    };
    f.finish(ctx)?;
    Ok(c)
}

fn promulgation_info(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<PromulgationInfo, ReadError> {
    let mut f = Fields::of(ctx, node);
    let p = PromulgationInfo {
        place: f.opt_text(ctx, "Place")?,
        promulgation_date: f.req_parse(ctx, "PromulgationDate", EdxmlDate::parse)?,
    };
    f.finish(ctx)?;
    Ok(p)
}

fn document_type(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<DocumentType, ReadError> {
    let mut f = Fields::of(ctx, node);
    let d = DocumentType {
        type_code: f.req_parse(ctx, "Type", number("Type"))?,
        type_detail: f.opt_parse(ctx, "TypeDetail", number("TypeDetail"))?,
        type_name: f.opt_text(ctx, "TypeName")?,
    };
    f.finish(ctx)?;
    Ok(d)
}

fn signer_info(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<SignerInfo, ReadError> {
    let mut f = Fields::of(ctx, node);
    let s = SignerInfo {
        competence: f.opt_text(ctx, "Competence")?,
        position: f.opt_text(ctx, "Position")?,
        full_name: f.req_text(ctx, "FullName")?,
    };
    f.finish(ctx)?;
    Ok(s)
}

fn other_info(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<OtherInfo, ReadError> {
    let mut f = Fields::of(ctx, node);
    let o = OtherInfo {
        priority: f.req_parse(ctx, "Priority", Priority::parse)?,
        sphere_of_promulgation: f.opt_text(ctx, "SphereOfPromulgation")?,
        typer_notation: f.opt_text(ctx, "TyperNotation")?,
        promulgation_amount: f.opt_parse(
            ctx,
            "PromulgationAmount",
            number("PromulgationAmount"),
        )?,
        page_amount: f.opt_parse(ctx, "PageAmount", number("PageAmount"))?,
        direction: f.opt_parse(ctx, "Direction", boolean)?,
        appendixes: match f.opt(ctx, "Appendixes")? {
            Some(id) => text_list(ctx, id, "Appendix")?,
            None => Vec::new(),
        },
    };
    f.finish(ctx)?;
    Ok(o)
}

/// One trace point. Gateways in the field write some without `OrganId` (a `Timestamp`
/// only); the axis's reference parser reads them, so lenient mode does too, leaving that
/// incomplete point out of the model with a warning (the packet's bytes keep it); strict mode
/// refuses it.
fn trace_header(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<Option<TraceHeader>, ReadError> {
    let mut f = Fields::of(ctx, node);
    let has_organ = f.opt_peek(ctx, "OrganId");
    if !has_organ {
        f.req_parse(ctx, "Timestamp", EdxmlDateTime::parse)?;
        f.finish(ctx)?;
        ctx.issue(node, WarningKind::TraceHeaderWithoutOrganId)?;
        return Ok(None);
    }
    let t = TraceHeader {
        organ_id: f.req_agency(ctx, "OrganId")?,
        timestamp: f.req_parse(ctx, "Timestamp", EdxmlDateTime::parse)?,
    };
    f.finish(ctx)?;
    Ok(Some(t))
}

fn receiver(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<Receiver, ReadError> {
    let mut f = Fields::of(ctx, node);
    let r = Receiver {
        organ_id: f.req_agency(ctx, "OrganId")?,
        receiver_type: f.req_parse(ctx, "ReceiverType", ReceiverType::parse)?,
    };
    f.finish(ctx)?;
    Ok(r)
}

fn document_info(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<BussinessDocumentInfo, ReadError> {
    let mut f = Fields::of(ctx, node);
    let document_info = f.req_parse(ctx, "DocumentInfo", number("DocumentInfo"))?;
    let document_receiver = f.req_parse(ctx, "DocumentReceiver", number("DocumentReceiver"))?;
    let mut receivers = Vec::new();
    if let Some(list) = f.opt(ctx, "ReceiverList")? {
        let mut lf = Fields::of(ctx, list);
        for r in lf.many(ctx, "Receiver") {
            receivers.push(receiver(ctx, r)?);
        }
        lf.finish(ctx)?;
    }
    f.finish(ctx)?;
    Ok(BussinessDocumentInfo {
        document_info,
        document_receiver,
        receivers,
    })
}

fn replacement(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<ReplacementInfo, ReadError> {
    let mut f = Fields::of(ctx, node);
    let document_id = DocumentId(f.req_text(ctx, "DocumentId")?);
    let list = f.one(ctx, "OrganIdList")?;
    let mut lf = Fields::of(ctx, list);
    let mut organ_ids = Vec::new();
    for id in lf.many(ctx, "OrganId") {
        organ_ids.push(ctx.agency(id)?);
    }
    lf.finish(ctx)?;
    f.finish(ctx)?;
    Ok(ReplacementInfo {
        document_id,
        organ_ids,
    })
}

fn bussiness(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<Bussiness, ReadError> {
    let mut f = Fields::of(ctx, node);
    let document_id = f.opt_text(ctx, "DocumentId")?.map(DocumentId);
    let doc_type = f.req_parse(ctx, "BussinessDocType", BussinessDocType::parse)?;
    let reason = f.opt_text(ctx, "BussinessDocReason")?;
    let paper = f.opt_parse(ctx, "Paper", number("Paper"))?;
    let document_info = match f.opt_container(ctx, "BussinessDocumentInfo")? {
        Some(id) => Some(self::document_info(ctx, id)?),
        None => None,
    };
    let mut replacements = Vec::new();
    if let Some(list) = f.opt(ctx, "ReplacementInfoList")? {
        let mut lf = Fields::of(ctx, list);
        for r in lf.many(ctx, "ReplacementInfo") {
            replacements.push(replacement(ctx, r)?);
        }
        lf.finish(ctx)?;
    }
    let staff_info = match f.opt_container(ctx, "StaffInfo")? {
        Some(id) => Some(self::staff_info(ctx, id)?),
        None => None,
    };
    f.finish(ctx)?;
    Ok(Bussiness {
        document_id,
        doc_type,
        reason,
        paper,
        document_info,
        replacements,
        staff_info,
    })
}

fn reference(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<Reference, ReadError> {
    let mut f = Fields::of(ctx, node);
    let content_id = content_id(ctx, &mut f)?;
    let r = Reference {
        content_id,
        content_type: f.req_text(ctx, "ContentType")?,
        description: f.opt_text(ctx, "Description")?,
        attachment_name: f.req_text(ctx, "AttachmentName")?,
    };
    f.finish(ctx)?;
    Ok(r)
}

fn content_id(ctx: &Ctx<'_, '_>, f: &mut Fields) -> Result<String, ReadError> {
    let id = f.one(ctx, "ContentId")?;
    let cid = normalize_content_id(ctx.text(id)?);
    if cid.is_empty() {
        return Err(ctx.err(
            id,
            ReadErrorKind::EmptyElement {
                name: "ContentId".into(),
            },
        ));
    }
    Ok(cid.to_owned())
}

fn attachment(ctx: &mut Ctx<'_, '_>, node: u32) -> Result<Attachment, ReadError> {
    let mut f = Fields::of(ctx, node);
    let content_id = content_id(ctx, &mut f)?;
    let name = f.req_text(ctx, "AttachmentName")?;
    let description = f.opt_text(ctx, "Description")?;
    let content_type = f.req_text(ctx, "ContentType")?;
    let payload_node = f.one(ctx, "ContentTransferEncoded")?;
    let payload = Payload::from_base64(ctx.text(payload_node)?).map_err(|e| {
        ctx.err(
            payload_node,
            ReadErrorKind::InvalidPayload {
                detail: e.to_string(),
            },
        )
    })?;
    f.finish(ctx)?;
    Ok(Attachment {
        content_id,
        name,
        description,
        content_type,
        payload,
    })
}

/// Manifest entries and attached files must pair up by ContentId; duplicates are refused.
fn check_manifest(
    ctx: &mut Ctx<'_, '_>,
    refs: &[(u32, Reference)],
    atts: &[(u32, Attachment)],
) -> Result<(), ReadError> {
    let mut ref_ids = HashSet::new();
    for (node, r) in refs {
        if !ref_ids.insert(r.content_id.as_str()) {
            return Err(ctx.err(
                *node,
                ReadErrorKind::DuplicateContentId {
                    content_id: r.content_id.clone(),
                    element: "manifest Reference".into(),
                },
            ));
        }
    }
    let mut att_ids = HashSet::new();
    for (node, a) in atts {
        if !att_ids.insert(a.content_id.as_str()) {
            return Err(ctx.err(
                *node,
                ReadErrorKind::DuplicateContentId {
                    content_id: a.content_id.clone(),
                    element: "Attachment".into(),
                },
            ));
        }
    }
    for (node, r) in refs {
        if !att_ids.contains(r.content_id.as_str()) {
            ctx.issue(
                *node,
                WarningKind::ReferenceWithoutAttachment {
                    content_id: r.content_id.clone(),
                },
            )?;
        }
    }
    for (node, a) in atts {
        if !ref_ids.contains(a.content_id.as_str()) {
            ctx.issue(
                *node,
                WarningKind::AttachmentWithoutReference {
                    content_id: a.content_id.clone(),
                },
            )?;
        }
    }
    Ok(())
}

struct Header {
    wrapper: u32,
    is_status: bool,
    trace_list: Option<u32>,
}

fn document(
    ctx: &mut Ctx<'_, '_>,
    h: &Header,
    body: Option<u32>,
    attachments_node: Option<u32>,
) -> Result<DocumentPacket, ReadError> {
    let mut f = Fields::of(ctx, h.wrapper);
    let from_node = f.one(ctx, "From")?;
    let from = organization(ctx, from_node)?;
    let to_nodes = f.many(ctx, "To");
    if to_nodes.is_empty() {
        return Err(ctx.err(
            h.wrapper,
            ReadErrorKind::MissingElement { name: "To".into() },
        ));
    }
    let mut to = Vec::with_capacity(to_nodes.len());
    for id in to_nodes {
        to.push(organization(ctx, id)?);
    }
    let document_id = DocumentId(f.req_text(ctx, "DocumentId")?);
    let code_node = f.one(ctx, "Code")?;
    let code = code(ctx, code_node)?;
    let pi = f.one(ctx, "PromulgationInfo")?;
    let promulgation_info = promulgation_info(ctx, pi)?;
    let dt = f.one(ctx, "DocumentType")?;
    let document_type = document_type(ctx, dt)?;
    let subject = f.req_text(ctx, "Subject")?;
    let content = f.opt_text(ctx, "Content")?;
    let signer_info = match f.opt_container(ctx, "SignerInfo")? {
        Some(id) => Some(self::signer_info(ctx, id)?),
        None => None,
    };
    let due_date = f.opt_parse(ctx, "DueDate", EdxmlDate::parse)?;
    let to_places = match f.opt(ctx, "ToPlaces")? {
        Some(id) => text_list(ctx, id, "Place")?,
        None => Vec::new(),
    };
    let other_info = match f.opt_container(ctx, "OtherInfo")? {
        Some(id) => Some(self::other_info(ctx, id)?),
        None => None,
    };
    let mut responses = Vec::new();
    for id in f.many(ctx, "ResponseFor") {
        responses.push(response_for(ctx, id)?);
    }
    let steering_type = f.opt_parse(ctx, "SteeringType", number("SteeringType"))?;
    f.finish(ctx)?;

    let mut trace_headers = Vec::new();
    let mut bussiness = None;
    if let Some(list) = h.trace_list {
        let mut lf = Fields::of(ctx, list);
        for id in lf.many(ctx, "TraceHeader") {
            if let Some(t) = trace_header(ctx, id)? {
                trace_headers.push(t);
            }
        }
        if let Some(id) = lf.opt_any(ctx, &["Bussiness", "Business"])? {
            bussiness = Some(self::bussiness(ctx, id)?);
        }
        lf.finish(ctx)?;
    }

    let mut refs = Vec::new();
    if let Some(body) = body {
        let mut bf = Fields::of(ctx, body);
        if let Some(manifest) = bf.opt(ctx, "edXMLManifest")? {
            let mut mf = Fields::of(ctx, manifest);
            for id in mf.many(ctx, "Reference") {
                refs.push((id, reference(ctx, id)?));
            }
            mf.finish(ctx)?;
        }
        bf.finish(ctx)?;
    }
    let mut atts = Vec::new();
    if let Some(node) = attachments_node {
        let mut af = Fields::of(ctx, node);
        for id in af.many(ctx, "Attachment") {
            atts.push((id, attachment(ctx, id)?));
        }
        af.finish(ctx)?;
    }
    check_manifest(ctx, &refs, &atts)?;

    Ok(DocumentPacket {
        from,
        to,
        document_id,
        code,
        promulgation_info,
        document_type,
        subject,
        content,
        signer_info,
        due_date,
        to_places,
        other_info,
        response_for: responses,
        steering_type,
        trace_headers,
        bussiness,
        references: refs.into_iter().map(|(_, r)| r).collect(),
        attachments: atts.into_iter().map(|(_, a)| a).collect(),
    })
}

fn status(ctx: &mut Ctx<'_, '_>, h: &Header) -> Result<StatusPacket, ReadError> {
    let mut f = Fields::of(ctx, h.wrapper);
    let from_node = f.one(ctx, "From")?;
    let from = organization(ctx, from_node)?;
    let rf = f.one(ctx, "ResponseFor")?;
    let response_for = response_for(ctx, rf)?;
    let staff_info = match f.opt_container(ctx, "StaffInfo")? {
        Some(id) => Some(self::staff_info(ctx, id)?),
        None => None,
    };
    let status_code = f.req_parse(ctx, "StatusCode", StatusCode::parse)?;
    let description = f.opt_text(ctx, "Description")?;
    let timestamp = f.req_parse(ctx, "Timestamp", EdxmlDateTime::parse)?;
    f.finish(ctx)?;
    Ok(StatusPacket {
        from,
        response_for,
        staff_info,
        status_code,
        description,
        timestamp,
    })
}

fn has_qcvn_child(ctx: &Ctx<'_, '_>, node: u32, name: &str) -> bool {
    ctx.tree
        .children(node)
        .any(|k| ctx.tree.node(k).ns == Ns::Qcvn && ctx.tree.node(k).local == name)
}

pub(super) fn map(bytes: &[u8], tree: &Tree<'_>, strict: bool) -> Result<Mapped, ReadError> {
    let mut ctx = Ctx {
        bytes,
        tree,
        strict,
        warnings: Vec::new(),
        omitted_warnings: 0,
    };
    let ctx = &mut ctx;
    let root = 0u32;

    let mut rf = Fields::of(ctx, root);
    let envelope = rf.one(ctx, "edXMLEnvelope")?;
    let attachments_node = rf.opt(ctx, "AttachmentEncoded")?;
    rf.finish(ctx)?;

    let mut ef = Fields::of(ctx, envelope);
    let header = ef.one(ctx, "edXMLHeader")?;
    let body = ef.opt(ctx, "edXMLBody")?;
    ef.finish(ctx)?;

    let mut hf = Fields::of(ctx, header);
    let wrapper = hf
        .opt_any(ctx, &["MessageHeader", "Status"])?
        .ok_or_else(|| {
            ctx.err(
                header,
                ReadErrorKind::MissingElement {
                    name: "MessageHeader".into(),
                },
            )
        })?;
    let trace_list = hf.opt(ctx, "TraceHeaderList")?;
    let legacy_signature = hf.opt(ctx, "Signature")?;
    // ds:Signature: at most one in the whole document, and only here.
    let mut dsig = None;
    for (i, s) in tree.dsig_signatures.iter().enumerate() {
        let err = |kind| ReadError::at(bytes, s.offset, s.path.clone(), kind);
        if i > 0 {
            return Err(err(ReadErrorKind::DuplicateElement {
                name: "Signature".into(),
            }));
        }
        if s.parent != header {
            return Err(err(ReadErrorKind::MisplacedSignature));
        }
        dsig = Some(s);
    }
    for (k, claimed) in &mut hf.kids {
        let n = tree.node(*k);
        if n.ns == Ns::Dsig && n.local == "Signature" {
            *claimed = true;
        }
    }
    hf.finish(ctx)?;

    let is_status =
        tree.node(wrapper).local == "Status" || has_qcvn_child(ctx, wrapper, "StatusCode");
    let h = Header {
        wrapper,
        is_status,
        trace_list,
    };
    let packet = if h.is_status {
        let context = "status packet".to_owned();
        for extra in [h.trace_list, body, attachments_node].into_iter().flatten() {
            let name = ctx.local(extra).to_owned();
            ctx.issue(
                extra,
                WarningKind::UnexpectedElement {
                    name,
                    context: context.clone(),
                },
            )?;
        }
        Packet::Status(status(ctx, &h)?)
    } else {
        Packet::Document(document(ctx, &h, body, attachments_node)?)
    };

    let signature = match (dsig, legacy_signature) {
        (Some(_), Some(legacy)) => {
            ctx.issue(legacy, WarningKind::LegacySignatureIgnored)?;
            SignatureState::XmlDsig
        }
        (Some(_), None) => SignatureState::XmlDsig,
        (None, Some(_)) => SignatureState::LegacyUnsigned,
        (None, None) => SignatureState::Absent,
    };
    Ok(Mapped {
        packet,
        warnings: ctx.take_warnings(),
        signature,
    })
}
