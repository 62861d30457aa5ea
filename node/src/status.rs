//! Sending a clerk's business status: 02–06, 15 and 16 by the recipient of a document, 13
//! (take-back request) by its original sender. Checks the request and the lifecycle rules,
//! composes and signs the status packet, and commits it (the database checks the rules again
//! inside the transaction).
//!
//! Invariants:
//! - A recipient's status goes to the document's sender; a 13 goes to the recipient named
//!   (ResponseFor/OrganId = the receiver, QCVN 102:2016 §3).
//! - 02 and 13 need a reason; 01 is never sent by a clerk.
//! - A status is timestamped strictly after every status this node knows for that document
//!   and agency (now, or one second after the latest): timestamps have one-second resolution
//!   and the receiving side orders by them, so causally later steps must not tie.
//! - A refused transition signs nothing and stores nothing; a repeat signs nothing and names
//!   the first packet.

use edxml::{
    AgencyCode, DocumentPacket, EdxmlDateTime, Packet, ReadOptions, StaffInfo, StatusCode, read,
};
use exchange::Timestamp;
use exchange::lifecycle::{Decision, sent_by_original_sender};
use exchange::packet_id::PacketId;

use super::Shared;
use super::db::{InboxEntry, OutgoingStatus, StatusCommit, StatusEvent, closed_by_mark};
use super::outgoing::{outgoing, sign};
use super::send::{Conflict, SendError};
use super::views::{StatusRequest, StatusSent};
use exchange::clock;
use exchange::staff_summary;
use exchange::status::{status_about, take_back_request};

/// Which document a status is about.
#[derive(Debug, Clone)]
pub enum StatusTarget {
    /// A received document, by its packet id.
    Received(PacketId),
    /// By document id: a sent document (13) or a received one.
    Document(String),
}

fn conflict(kind: Conflict, message: impl Into<String>) -> SendError {
    SendError::conflict(kind, message)
}

fn not_found(message: impl Into<String>) -> SendError {
    SendError::not_found(message)
}

/// The parsed code, with the reason checked.
fn parse_request(req: &StatusRequest) -> Result<(StatusCode, Option<String>), SendError> {
    let code = StatusCode::parse(req.code.trim()).map_err(|_| {
        SendError::invalid(format!(
            "status code {:?} is unknown: use 02 (reject), 03 (accept), 04 (assign), 05 \
             (processing), 06 (done), 13 (take back), 15 (agree) or 16 (refuse)",
            req.code
        ))
    })?;
    let reason = req
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    if matches!(code, StatusCode::Rejected | StatusCode::TakeBack) && reason.is_none() {
        return Err(SendError::invalid(format!(
            "status {} ({}) needs a reason (`reason`, --reason)",
            code.as_str(),
            code.label_en()
        )));
    }
    if code == StatusCode::Received {
        return Err(conflict(
            Conflict::InvalidTransition,
            exchange::lifecycle::TransitionError::ReceivedIsAutomatic.to_string(),
        ));
    }
    Ok((code, reason))
}

fn staff_info(req: &StatusRequest) -> Option<StaffInfo> {
    staff_with_position(req.staff.as_deref(), req.position.as_deref())
}

/// StaffInfo naming `staff`, with `position` as its Department (none when no name is given).
pub fn staff_with_position(staff: Option<&str>, position: Option<&str>) -> Option<StaffInfo> {
    staff_named(staff).map(|mut s| {
        s.department = position
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        s
    })
}

/// StaffInfo naming the clerk `staff` (none when absent or blank).
pub fn staff_named(staff: Option<&str>) -> Option<StaffInfo> {
    staff
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| StaffInfo {
            staff: Some(s.to_string()),
            ..StaffInfo::default()
        })
}

fn read_document(bytes: &[u8], what: &str) -> Result<DocumentPacket, SendError> {
    match read(bytes, &ReadOptions::default()) {
        Ok(o) => match o.packet {
            Packet::Document(d) => Ok(d),
            Packet::Status(_) => Err(SendError::internal(format!("{what} is not a document"))),
        },
        Err(e) => Err(SendError::internal(format!("{what} cannot be read: {e}"))),
    }
}

/// How far ahead of this node's clock another party's status time is still believed.
const MAX_SKEW: time::Duration = time::Duration::minutes(5);

/// Now, or one second after the latest of `known` if that is not in the past. A known time
/// further ahead than [`MAX_SKEW`] (a peer's clock, or a hostile timestamp such as year 9999)
/// is not followed: our statuses keep this node's time.
fn next_timestamp(known: &[StatusEvent]) -> EdxmlDateTime {
    let now = time::OffsetDateTime::now_utc();
    let latest = known
        .iter()
        .map(|e| e.time.to_offset_date_time())
        .filter(|t| *t <= now + MAX_SKEW)
        .max();
    match latest {
        Some(t) if t + time::Duration::seconds(1) > now => {
            EdxmlDateTime::from_offset(t + time::Duration::seconds(1))
        }
        _ => EdxmlDateTime::from_offset(now),
    }
}

/// Signs `status` and returns it ready to commit, with its lifecycle event.
async fn signed(
    node: &Shared,
    mut status: edxml::StatusPacket,
    known: &[StatusEvent],
) -> Result<OutgoingStatus, SendError> {
    status.timestamp = next_timestamp(known);
    let event = StatusEvent {
        code: status.status_code.as_str().to_string(),
        time: Timestamp::from_offset(status.timestamp.to_offset_date_time()),
        staff: status.staff_info.as_ref().and_then(staff_summary),
        description: status.description.clone(),
        packet_id: String::new(),
        received_at: Timestamp::now(),
        by_us: true,
    };
    let identity = node.identity.clone();
    let packet = Packet::Status(status);
    let out = tokio::task::spawn_blocking(move || {
        sign(&packet, &identity).map(|bytes| outgoing(&packet, bytes, clock::now_ms()))
    })
    .await
    .map_err(|e| SendError::internal(format!("signing task failed: {e}")))?
    .map_err(|e| SendError::internal(format!("cannot sign the status: {e}")))?;
    let mut event = event;
    event.packet_id = out.id.to_hex();
    Ok(OutgoingStatus { out, event })
}

/// Checks, signs and commits a clerk's status; answers once it is durably queued.
pub async fn send_status(
    node: &Shared,
    target: StatusTarget,
    req: StatusRequest,
) -> Result<StatusSent, SendError> {
    let (code, reason) = parse_request(&req)?;
    if sent_by_original_sender(code) {
        let StatusTarget::Document(document_id) = target else {
            return Err(conflict(
                Conflict::WrongSide,
                "status 13 (take back) is sent by the document's original sender, by document \
                 id (`POST /api/v1/documents/{id}/status`, `docaxis status send DOC --code 13 \
                 --to RECIPIENT`), not about a received document",
            ));
        };
        return send_take_back(node, document_id, req, reason).await;
    }
    if req.to.is_some() {
        return Err(SendError::invalid(format!(
            "`to` is only for status 13; status {} goes back to the document's sender",
            code.as_str()
        )));
    }
    let (doc_id, entry) = match target {
        StatusTarget::Received(id) => match node.db.inbox_entry(id).await? {
            Some((e, _)) if e.kind == super::db::PacketKind::Document => (id, e),
            _ => {
                return Err(not_found(format!(
                    "packet {id} is not a document in this node's inbox"
                )));
            }
        },
        StatusTarget::Document(document_id) => {
            let found = node
                .db
                .received_by_document(document_id.clone(), req.from.clone())
                .await?;
            let mut senders: Vec<&str> = found.iter().map(|(_, e)| e.from.as_str()).collect();
            senders.dedup();
            match (found.first(), senders.len()) {
                (None, _) => {
                    return Err(not_found(match &req.from {
                        Some(f) => format!(
                            "this node received no document with id {document_id:?} from {f}"
                        ),
                        None => format!("this node received no document with id {document_id:?}"),
                    }));
                }
                (Some(first), 1) => first.clone(),
                (Some(_), _) => {
                    return Err(conflict(
                        Conflict::Ambiguous,
                        format!(
                            "several agencies sent a document with id {document_id:?} ({}): \
                             name the sender with `from` (--from)",
                            senders.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let to = entry.from.clone();
    // Fail fast before signing; the transaction checks again.
    if let Some(sent) = precheck(&entry, code, &to)? {
        return Ok(sent);
    }
    let Some((_, bytes)) = node.db.inbox_entry(doc_id).await? else {
        return Err(not_found(format!(
            "packet {doc_id} is not in this node's inbox"
        )));
    };
    let doc = read_document(&bytes, &format!("received packet {doc_id}"))?;
    let status = status_about(&doc, &node.me, code, reason, staff_info(&req));
    let st = signed(node, status, &entry.statuses).await?;
    let me = node.me.organ_id.to_string();
    let commit = node.db.commit_received_status(doc_id, me, st).await?;
    Ok(answer(node, entry.document_id, code, to, commit))
}

fn precheck(
    entry: &InboxEntry,
    code: StatusCode,
    to: &str,
) -> Result<Option<StatusSent>, SendError> {
    let l = entry.replay().lifecycle;
    match l.check_send(code) {
        Err(e) => Err(conflict(Conflict::InvalidTransition, e.to_string())),
        Ok(Decision::Apply) => match closed_by_mark(entry.mark.as_ref(), code.as_str()) {
            Some(why) => Err(conflict(Conflict::InvalidTransition, why)),
            None => Ok(None),
        },
        Ok(Decision::Repeat) => Ok(Some(StatusSent {
            document_id: entry.document_id.clone(),
            code: code.as_str().to_string(),
            to: to.to_string(),
            packet_id: entry
                .statuses
                .iter()
                .rev()
                .find(|s| s.by_us && s.code == code.as_str())
                .map(|s| s.packet_id.clone())
                .unwrap_or_default(),
            repeated: true,
            state: entry.business_state().0,
        })),
    }
}

fn answer(
    node: &Shared,
    document_id: String,
    code: StatusCode,
    to: String,
    commit: StatusCommit,
) -> StatusSent {
    let (packet_id, state, repeated) = match commit {
        StatusCommit::Sent { packet_id, state } => {
            node.outbox_wake.notify_one();
            tracing::info!(document = %document_id, status = code.as_str(), to = %to,
                packet = %packet_id, "status signed and queued");
            (packet_id, state, false)
        }
        StatusCommit::Repeat { packet_id, state } => (packet_id, state, true),
    };
    StatusSent {
        document_id,
        code: code.as_str().to_string(),
        to,
        packet_id,
        repeated,
        state,
    }
}

async fn send_take_back(
    node: &Shared,
    document_id: String,
    req: StatusRequest,
    reason: Option<String>,
) -> Result<StatusSent, SendError> {
    let Some(sent) = node.db.track(document_id.clone()).await? else {
        return Err(not_found(format!(
            "this node has sent no document with id {document_id:?}; only its original sender \
             can ask to take it back"
        )));
    };
    let recipients: Vec<&str> = sent.recipients.iter().map(|(r, _)| r.as_str()).collect();
    let to = match (&req.to, recipients.as_slice()) {
        (Some(t), _) => t.trim().to_string(),
        (None, [only]) => only.to_string(),
        (None, many) => {
            return Err(SendError::invalid(format!(
                "the document went to {}: name the recipient asked to give it back with `to` \
                 (--to)",
                many.join(", ")
            )));
        }
    };
    let Some((_, row)) = sent.recipients.iter().find(|(r, _)| *r == to) else {
        return Err(not_found(format!(
            "document {document_id:?} was not sent to {to} (it went to {})",
            recipients.join(", ")
        )));
    };
    let l = row.replay().lifecycle;
    match l.check_send(StatusCode::TakeBack) {
        Err(e) => return Err(conflict(Conflict::InvalidTransition, e.to_string())),
        Ok(Decision::Repeat) => {
            return Ok(StatusSent {
                document_id,
                code: "13".into(),
                to,
                packet_id: row
                    .statuses
                    .iter()
                    .rev()
                    .find(|s| s.by_us && s.code == "13")
                    .map(|s| s.packet_id.clone())
                    .unwrap_or_default(),
                repeated: true,
                state: row.state_name(),
            });
        }
        Ok(Decision::Apply) => {
            // A repeat stays harmless; a new request about a closed document is refused.
            if let Some(why) = closed_by_mark(row.mark.as_ref(), "13") {
                return Err(conflict(Conflict::InvalidTransition, why));
            }
        }
    }
    let recipient = AgencyCode::parse_strict(&to)
        .map_err(|e| SendError::invalid(format!("recipient {to:?}: {e}")))?;
    let Some(bytes) = node.db.packet(sent.id).await? else {
        return Err(SendError::internal(format!(
            "sent packet {} has no bytes",
            sent.id
        )));
    };
    let doc = read_document(&bytes, &format!("sent packet {}", sent.id))?;
    let status = take_back_request(
        &doc,
        &node.me,
        recipient,
        reason.unwrap_or_default(),
        staff_info(&req),
    );
    let st = signed(node, status, &row.statuses).await?;
    let commit = node
        .db
        .commit_take_back(document_id.clone(), to.clone(), st)
        .await?;
    Ok(answer(node, document_id, StatusCode::TakeBack, to, commit))
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_far_future_status_time_is_not_followed() {
        let event = |t: time::OffsetDateTime| StatusEvent {
            code: "01".into(),
            time: Timestamp::from_offset(t),
            staff: None,
            description: None,
            packet_id: String::new(),
            received_at: Timestamp::now(),
            by_us: false,
        };
        let now = time::OffsetDateTime::now_utc();
        // A hostile peer's year-9999 time would push ours past the calendar (a panic) or
        // stamp every later status of ours in year 9999.
        let far = time::macros::datetime!(9999-12-31 23:59:59 UTC);
        let next = next_timestamp(&[event(far)]).local();
        assert!(next.year() < 9999, "{next}");
        // A peer a few seconds ahead is still followed, one second later.
        let soon = now + time::Duration::seconds(30);
        let next = next_timestamp(&[event(soon)]).local();
        let expected = (soon + time::Duration::seconds(1)).to_offset(time::macros::offset!(+7));
        assert_eq!(next.second(), expected.second());
    }

    use super::*;

    fn at(time: &str) -> StatusEvent {
        StatusEvent {
            code: "01".into(),
            time: time.parse().unwrap(),
            staff: None,
            description: None,
            packet_id: "p".into(),
            received_at: time.parse().unwrap(),
            by_us: true,
        }
    }

    #[test]
    fn a_new_status_is_never_stamped_at_or_before_a_known_one() {
        let now = time::OffsetDateTime::now_utc();
        let soon = exchange::Timestamp::from_offset(now + time::Duration::seconds(30));
        let t = next_timestamp(&[at("2020-01-01T00:00:00Z"), at(&soon.to_string())]);
        let expected = soon.to_offset_date_time() + time::Duration::seconds(1);
        assert_eq!(t.unix_timestamp(), expected.unix_timestamp());
        let t = next_timestamp(&[at("2020-01-01T00:00:00Z")]);
        assert!((t.unix_timestamp() - now.unix_timestamp()).abs() <= 2);
    }

    #[test]
    fn requests_are_checked_before_anything_is_signed() {
        let req = |code: &str, reason: Option<&str>| StatusRequest {
            code: code.into(),
            reason: reason.map(str::to_string),
            ..StatusRequest::default()
        };
        let e = parse_request(&req("02", None)).unwrap_err();
        assert!(
            matches!(&e, SendError::Invalid(m) if m.contains("needs a reason")),
            "{e}"
        );
        assert!(parse_request(&req("02", Some("  "))).is_err());
        assert!(parse_request(&req("13", None)).is_err());
        let e = parse_request(&req("01", None)).unwrap_err();
        assert!(
            matches!(
                e,
                SendError::Conflict {
                    kind: Conflict::InvalidTransition,
                    ..
                }
            ),
            "{e}"
        );
        let e = parse_request(&req("07", None)).unwrap_err();
        assert!(e.to_string().contains("\"07\" is unknown"), "{e}");
        assert_eq!(
            parse_request(&req(" 03 ", None)).unwrap(),
            (StatusCode::Accepted, None)
        );
    }
}
