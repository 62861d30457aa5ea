//! Revoke, update and replace (QCVN 102:2016 BussinessDocType 1, 2, 3): the requests a
//! document's original sender sends about it, built from the original this node stored, and
//! their reading on arrival ([`action_of`]).
//!
//! Decisions (see ARCHITECTURE.md):
//! - A request is a document packet with its **own** DocumentId; `Bussiness/DocumentId` names
//!   the original. A revoke or update is numbered after the original
//!   (`<original>#revoke-1`, `<original>#update-2`, counting this node's earlier requests of
//!   that kind); a replacement is a new document with its own number. The recipient answers
//!   the request with 15 (agree) or 16 (refuse) about the request's id, so every answer is
//!   unambiguous, and the agreement marks the original (`revoked`, `updated`, `replaced`,
//!   `removed`) at both ends.
//! - A revoke carries the original's metadata and no attachments; an update carries the whole
//!   new version (attachments included: an added recipient has nothing else); a replacement
//!   is whatever the clerk composed, plus `ReplacementInfo`.
//!
//! Invariants:
//! - Only the original's sender sends a request, only about a document (not a request) that
//!   it sent and that did not fail; a request needs a reason.
//! - A revoke or replace goes to the recipients the original still stands at (not refused by
//!   the hub, not already revoked/replaced/removed there); an update goes to those, minus
//!   nobody: removed agencies get it too, so they learn, and added ones get the whole
//!   document.
//! - Nothing here touches storage; [`send_action`] commits through the node database like any
//!   document (one transaction, before answering).

use serde::Deserialize;

use edxml::compose::{OrgSpec, organization};
use edxml::{
    AgencyCode, Bussiness, BussinessDocumentInfo, DocumentPacket, EdxmlDateTime, Organization,
    Packet, ReadOptions, Receiver, ReceiverType, ReplacementInfo, TraceHeader, read,
};

use super::Shared;
use super::db::SentPacket;
use super::outgoing::{OutgoingError, SendDocument, compose_document_named, outgoing, sign};
use super::send::{Conflict, SendError};
use super::status::staff_with_position;
use super::views::Sent;
use exchange::clock;
use exchange::lifecycle::{ActionKind, TakeBackState};

/// Body of `POST /api/v1/documents/{document_id}/{revoke|update|replace}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRequest {
    /// Why (BussinessDocReason). Required.
    pub reason: String,
    /// Who sends it (StaffInfo/Staff).
    #[serde(default)]
    pub staff: Option<String>,
    /// Their position (StaffInfo/Department).
    #[serde(default)]
    pub position: Option<String>,
    /// Update: agencies to add (`CODE` or `{id, name}`).
    #[serde(default)]
    pub add: Vec<OrgSpec>,
    /// Update: agency codes to remove.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Update: the new trích yếu.
    #[serde(default)]
    pub subject: Option<String>,
    /// Update: the new content summary.
    #[serde(default)]
    pub content: Option<String>,
    /// Replace: the replacement document (as for `POST /api/v1/documents`); its recipients
    /// default to where the original still stands.
    #[serde(default)]
    pub document: Option<serde_json::Value>,
}

fn bad(message: impl Into<String>) -> SendError {
    SendError::invalid(message)
}

fn conflict(kind: Conflict, message: impl Into<String>) -> SendError {
    SendError::conflict(kind, message)
}

/// Where the original still stands: its recipients the hub did not refuse, changed by the
/// earlier updates (a removal or addition the agency refused with 16 does not count), minus
/// those where it is closed (revoked, replaced, removed — by the mark on the original's row,
/// or by an agreement to a closing request where the agency has no row of the original).
pub fn standing_recipients(original: &SentPacket, earlier: &[SentPacket]) -> Vec<String> {
    let mut out: Vec<String> = original
        .recipients
        .iter()
        .filter(|(_, t)| {
            t.refused.is_none()
                && !t.mark.as_ref().is_some_and(|m| m.closed)
                // A recipient that agreed to take the document back (13 → 15) closed its
                // copy, exactly like an agreed revoke.
                && t.replay().lifecycle.take_back != TakeBackState::Agreed
        })
        .map(|(r, _)| r.clone())
        .collect();
    for a in earlier {
        let Some(action) = &a.entry.action else {
            continue;
        };
        if a.entry.state == super::db::OutboxState::Failed {
            continue;
        }
        let answer = |r: &str| {
            a.recipients
                .iter()
                .find(|(code, _)| code == r)
                .map(|(_, t)| t.replay().lifecycle.take_back)
        };
        if action.kind == ActionKind::Update {
            // A removal counts unless refused (16); an addition unless refused.
            out.retain(|r| {
                !action.removed.contains(r) || answer(r) == Some(TakeBackState::Refused)
            });
            for added in &action.added {
                if !out.contains(added) && answer(added) != Some(TakeBackState::Refused) {
                    out.push(added.clone());
                }
            }
        }
        // An agency that agreed to a request closing the document there (it may have no row
        // of the original: added by an update) no longer stands.
        out.retain(|r| !(answer(r) == Some(TakeBackState::Agreed) && action.closes_for(r)));
    }
    out
}

/// Builds the request packet. `n` numbers it among this node's requests of that kind about
/// the original; `standing` is where the original still stands.
/// `others` names other agencies (the node passes its hub directory, then the well-known list).
pub fn build_action(
    kind: ActionKind,
    original: &DocumentPacket,
    me: &Organization,
    req: &ActionRequest,
    n: usize,
    standing: &[String],
    others: &dyn Fn(&str) -> Option<String>,
) -> Result<DocumentPacket, SendError> {
    let reason = req.reason.trim();
    if reason.is_empty() {
        return Err(bad(format!(
            "a {} needs a reason (`reason`, --reason)",
            kind.as_str()
        )));
    }
    if kind != ActionKind::Update
        && (!req.add.is_empty()
            || !req.remove.is_empty()
            || req.subject.is_some()
            || req.content.is_some())
    {
        return Err(bad(format!(
            "add, remove, subject and content belong to an update, not a {}",
            kind.as_str()
        )));
    }
    if kind != ActionKind::Replace && req.document.is_some() {
        return Err(bad(format!(
            "`document` belongs to a replace, not a {}",
            kind.as_str()
        )));
    }
    let staff = staff_with_position(req.staff.as_deref(), req.position.as_deref());
    let original_id = original.document_id.clone();
    // The original's recipients as it named them; agencies added by an earlier update by
    // their well-known names.
    let at_standing = |doc: &DocumentPacket| -> Vec<Organization> {
        standing
            .iter()
            .filter_map(|code| {
                doc.to
                    .iter()
                    .find(|o| o.organ_id.as_str() == code)
                    .cloned()
                    .or_else(|| {
                        let c = AgencyCode::parse_lenient(code).ok()?;
                        let name = others(code).unwrap_or_else(|| code.clone());
                        Some(Organization::new(c, name))
                    })
            })
            .collect()
    };
    let mut bussiness = Bussiness::new(kind.doc_type());
    bussiness.document_id = Some(original_id.clone());
    bussiness.reason = Some(reason.to_string());
    bussiness.paper = Some(0);
    bussiness.staff_info = staff;
    let mut doc = match kind {
        ActionKind::Revoke => {
            if standing.is_empty() {
                return Err(conflict(
                    Conflict::NothingToRevoke,
                    format!(
                        "document {original_id} stands at no recipient any more (refused, \
                         revoked, replaced or removed everywhere)"
                    ),
                ));
            }
            let mut doc = original.clone();
            doc.document_id = format!("{original_id}#revoke-{n}").into();
            doc.to = at_standing(original);
            doc.references.clear();
            doc.attachments.clear();
            doc
        }
        ActionKind::Update => {
            let mut doc = original.clone();
            doc.document_id = format!("{original_id}#update-{n}").into();
            let mut receivers = Vec::new();
            for code in &req.remove {
                let code = code.trim();
                if receivers
                    .iter()
                    .any(|r: &Receiver| r.organ_id.as_str() == code)
                {
                    continue; // named twice
                }
                if !standing.iter().any(|s| s == code) {
                    return Err(bad(format!(
                        "cannot remove {code}: document {original_id} stands at {}",
                        list(standing)
                    )));
                }
                receivers.push(Receiver {
                    organ_id: AgencyCode::parse_lenient(code)
                        .map_err(|e| bad(format!("remove {code:?}: {e}")))?,
                    receiver_type: ReceiverType::Removed,
                });
            }
            let mut added = Vec::new();
            let names = |code: &str| {
                if code == me.organ_id.as_str() {
                    Some(me.organ_name.clone())
                } else {
                    others(code)
                }
            };
            for spec in &req.add {
                let org = organization(spec, &names).map_err(|e| bad(format!("add: {e}")))?;
                let code = org.organ_id.to_string();
                if added
                    .iter()
                    .any(|a: &Organization| a.organ_id == org.organ_id)
                {
                    continue; // named twice
                }
                if req.remove.iter().any(|r| r.trim() == code) {
                    return Err(bad(format!("{code} is both added and removed")));
                }
                if standing.contains(&code) {
                    return Err(bad(format!(
                        "cannot add {code}: document {original_id} already stands there"
                    )));
                }
                if code == me.organ_id.as_str() {
                    return Err(bad(format!("cannot add {code}: that is this agency")));
                }
                receivers.push(Receiver {
                    organ_id: org.organ_id.clone(),
                    receiver_type: ReceiverType::Added,
                });
                added.push(org);
            }
            let subject = req
                .subject
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let content = req
                .content
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty());
            let metadata_changed = subject.is_some() || content.is_some();
            if !metadata_changed && receivers.is_empty() {
                return Err(bad(
                    "an update must change something: subject, content, add or remove \
                     (--subject, --content, --add, --remove)",
                ));
            }
            let remaining = standing
                .iter()
                .filter(|s| !req.remove.iter().any(|r| r.trim() == s.as_str()))
                .count()
                + added.len();
            if remaining == 0 {
                return Err(bad(format!(
                    "the update would leave document {original_id} with no recipient: revoke it \
                     instead"
                )));
            }
            if let Some(s) = subject {
                doc.subject = s.to_string();
            }
            if let Some(c) = content {
                doc.content = Some(c.to_string());
            }
            doc.to = at_standing(original);
            doc.to.extend(added);
            bussiness.document_info = Some(BussinessDocumentInfo {
                document_info: u32::from(metadata_changed),
                document_receiver: u32::from(!receivers.is_empty()),
                receivers,
            });
            doc
        }
        ActionKind::Replace => {
            let Some(value) = &req.document else {
                return Err(bad(
                    "a replace needs the replacement document (`document`, --spec FILE)",
                ));
            };
            let mut value = value.clone();
            if let Some(obj) = value.as_object_mut()
                && !obj.contains_key("to")
            {
                obj.insert("to".into(), serde_json::json!(standing));
            }
            let send: SendDocument = serde_json::from_value(value)
                .map_err(|e| bad(format!("the replacement is not a valid document: {e}")))?;
            let doc = compose_document_named(&send, me, others).map_err(|e| match e {
                OutgoingError::WrongSender { .. } => SendError::WrongSender(e.to_string()),
                e => SendError::InvalidDocument(e.to_string()),
            })?;
            if doc.document_id == original_id {
                return Err(bad(format!(
                    "the replacement has the original's document id {original_id}: give it its \
                     own number"
                )));
            }
            bussiness.replacements = vec![ReplacementInfo {
                document_id: original_id.clone(),
                organ_ids: doc.to.iter().map(|o| o.organ_id.clone()).collect(),
            }];
            doc
        }
    };
    if doc.to.is_empty() {
        return Err(conflict(
            Conflict::NoRecipient,
            format!("document {original_id} stands at no recipient any more"),
        ));
    }
    doc.bussiness = Some(bussiness);
    doc.trace_headers = vec![TraceHeader {
        organ_id: me.organ_id.clone(),
        timestamp: EdxmlDateTime::now(),
    }];
    Ok(doc)
}

fn list(codes: &[String]) -> String {
    if codes.is_empty() {
        "no recipient".into()
    } else {
        codes.join(", ")
    }
}

/// Checks, builds, signs and commits a request about `original_id`; answers once it is
/// durably queued.
pub async fn send_action(
    node: &Shared,
    kind: ActionKind,
    original_id: String,
    req: ActionRequest,
) -> Result<Sent, SendError> {
    let Some(original) = node.db.track(original_id.clone()).await? else {
        return Err(SendError::not_found(format!(
            "this node has sent no document with id {original_id:?}; only its original \
                 sender can {} it",
            kind.as_str()
        )));
    };
    if let Some(a) = &original.entry.action {
        return Err(conflict(
            Conflict::RequestOfRequest,
            format!(
                "{original_id} is itself a {} of {}: send the {} about {} instead",
                a.kind.as_str(),
                a.original,
                kind.as_str(),
                a.original
            ),
        ));
    }
    if original.entry.state == super::db::OutboxState::Failed {
        return Err(conflict(
            Conflict::OriginalFailed,
            format!(
                "document {original_id} never reached the hub (it failed: {}); there is \
                 nothing to {}",
                original.entry.last_error.as_deref().unwrap_or("no detail"),
                kind.as_str()
            ),
        ));
    }
    let earlier = node.db.actions_of(original_id.clone()).await?;
    let n = earlier
        .iter()
        .filter(|a| a.entry.action.as_ref().is_some_and(|x| x.kind == kind))
        .count()
        + 1;
    let standing = standing_recipients(&original, &earlier);
    // Agencies this request reaches that the original did not: checked like a new send.
    let mut new_codes: Vec<String> = req.add.iter().map(|o| o.code().to_string()).collect();
    if let Some(to) = req.document.as_ref().and_then(|d| d.get("to")) {
        let to: Vec<OrgSpec> = serde_json::from_value(to.clone()).map_err(|e| {
            bad(format!(
                "the replacement's `to` is not a list of agencies: {e}"
            ))
        })?;
        new_codes.extend(to.iter().map(|o| o.code().to_string()));
    }
    super::directory::check_recipients(node.directory_access(), &new_codes)
        .await
        .map_err(SendError::UnknownRecipient)?;
    let Some(bytes) = node.db.packet(original.id).await? else {
        return Err(SendError::internal(format!(
            "sent packet {} has no bytes",
            original.id
        )));
    };
    let me = node.me.clone();
    let identity = node.identity.clone();
    let names = node.clone();
    let out = tokio::task::spawn_blocking(move || {
        let doc = match read(&bytes, &ReadOptions::default()) {
            Ok(o) => match o.packet {
                Packet::Document(d) => d,
                Packet::Status(_) => {
                    return Err(SendError::internal("the original is not a document"));
                }
            },
            Err(e) => {
                return Err(SendError::internal(format!(
                    "the original cannot be read: {e}"
                )));
            }
        };
        let doc = build_action(kind, &doc, &me, &req, n, &standing, &|c| {
            names.agency_name(c)
        })?;
        let packet = Packet::Document(doc);
        let bytes = sign(&packet, &identity)
            .map_err(|e| SendError::internal(format!("cannot sign the {}: {e}", kind.as_str())))?;
        Ok(outgoing(&packet, bytes, clock::now_ms()))
    })
    .await
    .map_err(|e| SendError::internal(format!("composition task failed: {e}")))??;
    let sent = Sent {
        document_id: out.entry.document_id.clone(),
        packet_id: out.id.to_hex(),
    };
    let recipients = out.entry.recipients.join(", ");
    node.db.commit_outgoing(out).await.map_err(|e| match e {
        // Two clerks numbered the same request at once: the other one is queued.
        super::db::NodeDbError::DuplicateDocument { document_id, .. } => conflict(
            Conflict::ConcurrentRequest,
            format!(
                "another {} of {original_id} was queued at the same moment as {document_id}; \
                 see `docaxis track {original_id}` before sending it again",
                kind.as_str()
            ),
        ),
        other => other.into(),
    })?;
    tracing::info!(original = %original_id, request = %sent.document_id, kind = kind.as_str(),
        packet = %sent.packet_id, to = %recipients, "request signed and queued");
    node.outbox_wake.notify_one();
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{OutboxEntry, OutboxState, PacketKind, Tracking};
    use crate::outgoing::compose_document;
    use edxml::compose::known_agency_name;
    use edxml::{BussinessDocType, write};
    use exchange::ActionRef;
    use exchange::action_of;
    use exchange::packet_id::PacketId;

    fn me() -> Organization {
        Organization::new(
            AgencyCode::parse_strict("000.00.00.G22").unwrap(),
            "Văn phòng Chính phủ",
        )
    }

    fn original() -> DocumentPacket {
        let req: SendDocument = serde_json::from_value(serde_json::json!({
            "to": ["000.00.00.H41", "000.00.00.H14"],
            "subject": "Về việc thử nghiệm",
            "code": {"number": "12", "notation": "VPCP-TTĐT"},
            "promulgation": {"date": "2026/11/23"},
            "attachments": [{"name": "a.pdf", "data": "JVBERi0xLjQK"}]
        }))
        .unwrap();
        compose_document(&req, &me()).unwrap()
    }

    fn schema_valid(doc: &DocumentPacket) {
        let bytes = write(&Packet::Document(doc.clone())).unwrap();
        edxml::schema::validate(edxml::schema::SchemaKind::Document, &bytes).unwrap();
        let back = read(&bytes, &ReadOptions::strict()).unwrap();
        assert_eq!(back.packet, Packet::Document(doc.clone()));
    }

    /// [`build_action`] by G22 with the well-known names.
    fn build(
        kind: ActionKind,
        o: &DocumentPacket,
        req: &ActionRequest,
        n: usize,
        standing: &[String],
    ) -> Result<DocumentPacket, SendError> {
        build_action(kind, o, &me(), req, n, standing, &known_agency_name)
    }

    fn both() -> Vec<String> {
        vec!["000.00.00.H41".into(), "000.00.00.H14".into()]
    }

    #[test]
    fn a_revoke_names_the_original_carries_no_files_and_reads_back() {
        let o = original();
        let req = ActionRequest {
            reason: "Ban hành nhầm".into(),
            staff: Some("Nguyễn Văn A".into()),
            ..ActionRequest::default()
        };
        let doc = build(ActionKind::Revoke, &o, &req, 1, &both()).unwrap();
        assert_eq!(
            doc.document_id.as_str(),
            "000.00.00.G22,2026/11/23,12/VPCP-TTĐT#revoke-1"
        );
        assert!(doc.attachments.is_empty());
        assert_eq!(doc.to.len(), 2);
        schema_valid(&doc);
        let a = action_of(&doc).unwrap();
        assert_eq!(a.kind, ActionKind::Revoke);
        assert_eq!(a.original, o.document_id.as_str());
        assert_eq!(a.reason.as_deref(), Some("Ban hành nhầm"));
        // Only where it still stands.
        let doc = build(
            ActionKind::Revoke,
            &o,
            &req,
            2,
            &["000.00.00.H14".to_string()],
        )
        .unwrap();
        assert_eq!(doc.to.len(), 1);
        assert_eq!(doc.to[0].organ_id.as_str(), "000.00.00.H14");
        let e = build(ActionKind::Revoke, &o, &req, 2, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                SendError::Conflict {
                    kind: Conflict::NothingToRevoke,
                    ..
                }
            ),
            "{e}"
        );
        let e = build(
            ActionKind::Revoke,
            &o,
            &ActionRequest::default(),
            1,
            &both(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs a reason"), "{e}");
    }

    #[test]
    fn an_update_lists_added_and_removed_recipients_and_goes_to_all_of_them() {
        let o = original();
        let req = ActionRequest {
            reason: "Bổ sung nơi nhận".into(),
            add: vec![OrgSpec::Code("000.00.00.G01".into())],
            remove: vec!["000.00.00.H14".into()],
            ..ActionRequest::default()
        };
        let doc = build(ActionKind::Update, &o, &req, 1, &both()).unwrap();
        assert_eq!(
            doc.document_id.as_str(),
            "000.00.00.G22,2026/11/23,12/VPCP-TTĐT#update-1"
        );
        let to: Vec<&str> = doc.to.iter().map(|o| o.organ_id.as_str()).collect();
        assert_eq!(to, ["000.00.00.H41", "000.00.00.H14", "000.00.00.G01"]);
        assert_eq!(
            doc.attachments.len(),
            1,
            "an added recipient needs the files"
        );
        schema_valid(&doc);
        let a = action_of(&doc).unwrap();
        assert_eq!(a.added, ["000.00.00.G01"]);
        assert_eq!(a.removed, ["000.00.00.H14"]);
        assert_eq!(a.mark_for("000.00.00.H14"), "removed");
        assert!(a.closes_for("000.00.00.H14"));
        assert_eq!(a.mark_for("000.00.00.H41"), "updated");
        assert!(!a.closes_for("000.00.00.H41"));

        let nothing = ActionRequest {
            reason: "x".into(),
            ..ActionRequest::default()
        };
        let e = build(ActionKind::Update, &o, &nothing, 1, &both()).unwrap_err();
        assert!(e.to_string().contains("must change something"), "{e}");
        let stranger = ActionRequest {
            reason: "x".into(),
            remove: vec!["000.00.00.G01".into()],
            ..ActionRequest::default()
        };
        let e = build(ActionKind::Update, &o, &stranger, 1, &both()).unwrap_err();
        assert!(e.to_string().contains("cannot remove 000.00.00.G01"), "{e}");
        let everyone = ActionRequest {
            reason: "x".into(),
            remove: both(),
            ..ActionRequest::default()
        };
        let e = build(ActionKind::Update, &o, &everyone, 1, &both()).unwrap_err();
        assert!(e.to_string().contains("revoke it instead"), "{e}");
        let subject = ActionRequest {
            reason: "Sửa trích yếu".into(),
            subject: Some("Về việc thử nghiệm (sửa đổi)".into()),
            ..ActionRequest::default()
        };
        let doc = build(ActionKind::Update, &o, &subject, 2, &both()).unwrap();
        assert_eq!(doc.subject, "Về việc thử nghiệm (sửa đổi)");
        let info = doc.bussiness.unwrap().document_info.unwrap();
        assert_eq!((info.document_info, info.document_receiver), (1, 0));
        // Named twice: once in the packet; added and removed at once: refused.
        let twice = ActionRequest {
            reason: "x".into(),
            add: vec![
                OrgSpec::Code("000.00.00.G01".into()),
                OrgSpec::Code("000.00.00.G01".into()),
            ],
            remove: vec!["000.00.00.H14".into(), " 000.00.00.H14".into()],
            ..ActionRequest::default()
        };
        let doc = build(ActionKind::Update, &o, &twice, 3, &both()).unwrap();
        assert_eq!(doc.to.len(), 3);
        let info = doc.bussiness.unwrap().document_info.unwrap();
        assert_eq!(info.receivers.len(), 2);
        let both_ways = ActionRequest {
            reason: "x".into(),
            add: vec![OrgSpec::Code("000.00.00.G01".into())],
            remove: vec!["000.00.00.G01".into()],
            ..ActionRequest::default()
        };
        assert!(build(ActionKind::Update, &o, &both_ways, 3, &both()).is_err());
    }

    #[test]
    fn a_replacement_is_a_new_document_pointing_at_the_original() {
        let o = original();
        let req = ActionRequest {
            reason: "Thay thế văn bản".into(),
            document: Some(serde_json::json!({
                "subject": "Về việc thử nghiệm (thay thế)",
                "code": {"number": "13", "notation": "VPCP-TTĐT"},
                "promulgation": {"date": "2026/11/24"},
            })),
            ..ActionRequest::default()
        };
        let doc = build(ActionKind::Replace, &o, &req, 1, &both()).unwrap();
        assert_eq!(
            doc.document_id.as_str(),
            "000.00.00.G22,2026/11/24,13/VPCP-TTĐT"
        );
        assert_eq!(
            doc.to.len(),
            2,
            "recipients default to where the original stands"
        );
        schema_valid(&doc);
        let b = doc.bussiness.as_ref().unwrap();
        assert_eq!(b.doc_type, BussinessDocType::Replace);
        assert_eq!(b.replacements[0].document_id, o.document_id);
        assert_eq!(action_of(&doc).unwrap().original, o.document_id.as_str());
        let same = ActionRequest {
            reason: "x".into(),
            document: Some(serde_json::json!({
                "subject": "S",
                "code": {"number": "12", "notation": "VPCP-TTĐT"},
                "promulgation": {"date": "2026/11/23"},
            })),
            ..ActionRequest::default()
        };
        let e = build(ActionKind::Replace, &o, &same, 1, &both()).unwrap_err();
        assert!(e.to_string().contains("give it its own number"), "{e}");
        let missing = ActionRequest {
            reason: "x".into(),
            ..ActionRequest::default()
        };
        assert!(build(ActionKind::Replace, &o, &missing, 1, &both()).is_err());
        assert!(action_of(&o).is_none());
    }

    #[test]
    fn standing_recipients_follow_refusals_marks_and_earlier_updates() {
        let row = |refused: bool, closed: bool| Tracking {
            refused: refused.then(|| "unknown".to_string()),
            mark: closed.then(|| crate::db::Mark {
                state: "revoked".into(),
                closed: true,
                by_document: "d#revoke-1".into(),
                by_packet: "p".into(),
                at: "2026-01-01T00:00:00Z".parse().unwrap(),
            }),
            ..Tracking::default()
        };
        let entry = OutboxEntry::queued(PacketKind::Document, "d".into(), vec![], 0, 0);
        let original = SentPacket {
            id: PacketId::of(b"o"),
            entry: entry.clone(),
            recipients: vec![
                ("A".into(), row(false, false)),
                ("B".into(), row(true, false)),
                ("C".into(), row(false, true)),
                ("D".into(), row(false, false)),
            ],
        };
        let mut update = entry.clone();
        update.action = Some(ActionRef {
            kind: ActionKind::Update,
            original: "d".into(),
            reason: None,
            added: vec!["E".into()],
            removed: vec!["D".into()],
        });
        let mut failed = update.clone();
        failed.state = OutboxState::Failed;
        failed.action.as_mut().unwrap().removed = vec!["A".into()];
        let earlier = [
            SentPacket {
                id: PacketId::of(b"u"),
                entry: update,
                recipients: vec![],
            },
            SentPacket {
                id: PacketId::of(b"f"),
                entry: failed,
                recipients: vec![],
            },
        ];
        assert_eq!(standing_recipients(&original, &earlier), ["A", "E"]);

        // D refused its removal (16): it still stands. E, added, agreed to a revoke: it no
        // longer does (it has no row of the original to mark).
        let answered = |code: &str| Tracking {
            statuses: vec![crate::db::StatusEvent {
                code: code.into(),
                time: "2026-01-01T00:00:00Z".parse().unwrap(),
                staff: None,
                description: None,
                packet_id: "p".into(),
                received_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                by_us: false,
            }],
            request: Some(ActionKind::Update),
            ..Tracking::default()
        };
        let mut earlier = earlier.to_vec();
        earlier[0].recipients = vec![("D".into(), answered("16"))];
        assert_eq!(standing_recipients(&original, &earlier), ["A", "D", "E"]);
        let mut revoke = entry.clone();
        revoke.action = Some(ActionRef {
            kind: ActionKind::Revoke,
            original: "d".into(),
            reason: None,
            added: vec![],
            removed: vec![],
        });
        let mut agreed = answered("15");
        agreed.request = Some(ActionKind::Revoke);
        earlier.push(SentPacket {
            id: PacketId::of(b"r"),
            entry: revoke,
            recipients: vec![("E".into(), agreed)],
        });
        assert_eq!(standing_recipients(&original, &earlier), ["A", "D"]);

        // A agreed to take the original back (13 answered by 15): it no longer stands; a
        // refused take-back (16) leaves D standing.
        let mut original = original;
        let take_back = |answer: &str| Tracking {
            statuses: ["01", "13", answer]
                .iter()
                .enumerate()
                .map(|(i, code)| crate::db::StatusEvent {
                    code: (*code).into(),
                    time: format!("2026-01-01T00:00:0{i}Z").parse().unwrap(),
                    staff: None,
                    description: None,
                    packet_id: format!("p{i}"),
                    received_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                    by_us: *code == "13",
                })
                .collect(),
            ..Tracking::default()
        };
        original.recipients[0].1 = take_back("15");
        original.recipients[3].1 = take_back("16");
        assert_eq!(standing_recipients(&original, &earlier), ["D"]);
    }
}
