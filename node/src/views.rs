//! The JSON answers of the clerk API, shared by the server ([`super::api`]) and the clerk
//! commands' client ([`super::client`]), and their derivation from stored records.
//!
//! Invariants: every time is RFC 3339 (UTC); a view never exposes signed receipts or packet
//! bytes (those stay in the database and in archive exports); status codes are shown with
//! their labels.

use serde::{Deserialize, Serialize};

use edxml::StatusCode;

use super::db::{
    Counts, InboxEntry, Mark, OutboxEntry, PacketKind, SentPacket, StatusEvent, Tracking,
};
use super::hub_api::HubStatus;
use exchange::ActionRef;
use exchange::clock::Timestamp;

/// Body of every error answer: `code` for programs, `message` for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

/// Answer of `POST /api/v1/documents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub document_id: String,
    pub packet_id: String,
}

/// Body of `POST /api/v1/inbox/{packet_id}/status` and
/// `POST /api/v1/documents/{document_id}/status`: a clerk's business status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Two digits: 02–06, 15, 16 (recipient), 13 (original sender).
    pub code: String,
    /// Required for 02 (rejection) and 13 (take-back); written in Description.
    #[serde(default)]
    pub reason: Option<String>,
    /// The clerk or officer, written in StaffInfo/Staff.
    #[serde(default)]
    pub staff: Option<String>,
    /// Their position or department, written in StaffInfo/Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// By document id, as its recipient: the sender, when several sent that id.
    #[serde(default)]
    pub from: Option<String>,
    /// For 13: the recipient asked to give the document back (needed when it went to several).
    #[serde(default)]
    pub to: Option<String>,
}

/// Answer of the status routes: 201 when a packet was signed and queued, 200 for a repeat
/// (the code was already sent: no second packet, `packet_id` is the first one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusSent {
    pub document_id: String,
    pub code: String,
    /// Where the status goes.
    pub to: String,
    pub packet_id: String,
    pub repeated: bool,
    /// The document's business state at that recipient afterwards (`accepted`, …).
    pub state: String,
}

/// A status as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub code: String,
    /// Vietnamese label (`đã tiếp nhận`).
    pub label: String,
    /// English label (`accepted`).
    pub label_en: String,
    /// The status packet's timestamp.
    pub time: Timestamp,
    pub staff: Option<String>,
    pub description: Option<String>,
    pub packet_id: String,
}

impl From<&StatusEvent> for StatusView {
    fn from(s: &StatusEvent) -> Self {
        let (label, label_en) = match StatusCode::parse(&s.code) {
            Ok(c) => (c.label_vi().to_string(), c.label_en().to_string()),
            Err(_) => ("không rõ".to_string(), "unknown code".to_string()),
        };
        StatusView {
            code: s.code.clone(),
            label,
            label_en,
            time: s.time,
            staff: s.staff.clone(),
            description: s.description.clone(),
            packet_id: s.packet_id.clone(),
        }
    }
}

/// One recipient of a sent packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientView {
    pub code: String,
    /// Hub time at which the hub accepted the packet for this recipient.
    pub accepted_at: Option<Timestamp>,
    /// Why the hub refused to route to this recipient.
    pub refused: Option<String>,
    /// Hub time at which the recipient stored and acknowledged the packet.
    pub delivered_at: Option<Timestamp>,
    pub last_status: Option<StatusView>,
    /// The furthest valid business state (`new`, `accepted`, …, `taken_back`; `nothing`
    /// before any status), statuses replayed in timestamp order.
    #[serde(default)]
    pub business_state: String,
    /// Take-back request: `none`, `requested`, `agreed`, `refused`.
    #[serde(default)]
    pub take_back: String,
    /// The recipient agreed to a revoke/update/replace of this document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

impl RecipientView {
    fn of(code: &str, t: &Tracking) -> RecipientView {
        let l = t.replay().lifecycle;
        RecipientView {
            business_state: t.state_name(),
            mark: t.mark.clone(),
            take_back: l.take_back.as_str().to_string(),
            code: code.to_string(),
            accepted_at: t.accepted_at,
            refused: t.refused.clone(),
            delivered_at: t.delivered_at,
            last_status: t.last_status().map(StatusView::from),
        }
    }
}

/// One outbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub packet_id: String,
    pub kind: PacketKind,
    pub document_id: String,
    pub subject: Option<String>,
    pub status_code: Option<edxml::StatusCode>,
    pub priority: u8,
    pub created_at: Timestamp,
    /// `queued`, `submitted` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Timestamp>,
    pub submitted_at: Option<Timestamp>,
    pub failed_at: Option<Timestamp>,
    pub recipients: Vec<RecipientView>,
    /// "2/2 accepted, 1/2 delivered".
    pub summary: String,
    /// The recipients' business states: "1 accepted, 1 rejected".
    #[serde(default)]
    pub business: String,
    /// This document is a revoke/update/replace request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionRef>,
}

impl From<&SentPacket> for OutboxItem {
    fn from(p: &SentPacket) -> Self {
        let e: &OutboxEntry = &p.entry;
        OutboxItem {
            packet_id: p.id.to_hex(),
            kind: e.kind,
            document_id: e.document_id.clone(),
            subject: e.subject.clone(),
            status_code: e.status_code,
            priority: e.priority,
            created_at: e.created_at,
            state: e.state.as_str().to_string(),
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            next_attempt_at: e.next_attempt_ms.map(Timestamp::from_unix_ms),
            submitted_at: e.submitted_at,
            failed_at: e.failed_at,
            recipients: p
                .recipients
                .iter()
                .map(|(code, t)| RecipientView::of(code, t))
                .collect(),
            summary: summary(&p.recipients),
            business: business_summary(&p.recipients),
            action: e.action.clone(),
        }
    }
}

/// "1 accepted, 1 rejected, 1 taken back" over the recipients; "no status yet" when none
/// answered.
pub fn business_summary(rows: &[(String, Tracking)]) -> String {
    const ORDER: [&str; 13] = [
        "new",
        "rejected",
        "accepted",
        "assigned",
        "processing",
        "completed",
        "taken_back",
        "agreed",
        "refused",
        "updated",
        "revoked",
        "replaced",
        "removed",
    ];
    let states: Vec<String> = rows.iter().map(|(_, t)| t.state_name()).collect();
    let parts: Vec<String> = ORDER
        .iter()
        .filter_map(|s| {
            let n = states.iter().filter(|x| *x == s).count();
            let label = match *s {
                "new" => "received (01)",
                "taken_back" => "taken back",
                "agreed" => "agreed (15)",
                "refused" => "refused (16)",
                other => other,
            };
            (n > 0).then(|| format!("{n} {label}"))
        })
        .collect();
    if parts.is_empty() {
        "no status yet".to_string()
    } else {
        parts.join(", ")
    }
}

/// "2/2 accepted, 1/2 delivered" (with refusals when there are some).
pub fn summary(rows: &[(String, Tracking)]) -> String {
    let total = rows.len();
    let accepted = rows.iter().filter(|(_, t)| t.accepted_at.is_some()).count();
    let refused = rows.iter().filter(|(_, t)| t.refused.is_some()).count();
    let delivered = rows
        .iter()
        .filter(|(_, t)| t.delivered_at.is_some())
        .count();
    let mut s = format!("{accepted}/{total} accepted");
    if refused > 0 {
        s.push_str(&format!(", {refused}/{total} refused"));
    }
    s.push_str(&format!(", {delivered}/{total} delivered"));
    s
}

/// Answer of `GET /api/v1/outbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxList {
    pub items: Vec<OutboxItem>,
}

/// One inbox entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxItem {
    pub packet_id: String,
    pub kind: PacketKind,
    pub from: String,
    pub from_name: String,
    pub document_id: String,
    pub subject: Option<String>,
    pub code: Option<String>,
    pub priority: u8,
    pub status_code: Option<edxml::StatusCode>,
    pub received_at: Timestamp,
    /// `new`, `applied` or `unmatched`.
    pub state: String,
    /// Hub time of the delivery receipt, once the hub acknowledged the acknowledgement.
    pub delivered_at: Option<Timestamp>,
    /// The status 01 this node sent in answer.
    pub answered_with: Option<String>,
    /// Documents: the business state (`new`, `accepted`, …, `taken_back`).
    #[serde(default)]
    pub business_state: Option<String>,
    /// Documents: the sender asked to take it back (13), or this document is a
    /// revoke/update/replace request, and no answer (15/16) was sent yet.
    #[serde(default)]
    pub take_back_requested: bool,
    /// Documents: this one is a revoke/update/replace request about an earlier document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionRef>,
    /// Documents: this node agreed to a revoke/update/replace of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<Mark>,
}

impl InboxItem {
    /// The view of a stored entry.
    pub fn of(packet_id: &str, e: &InboxEntry) -> InboxItem {
        let is_document = e.kind == PacketKind::Document;
        let business = e.business_state();
        InboxItem {
            packet_id: packet_id.to_string(),
            kind: e.kind,
            from: e.from.clone(),
            from_name: e.from_name.clone(),
            document_id: e.document_id.clone(),
            subject: e.subject.clone(),
            code: e.code.clone(),
            priority: e.priority,
            status_code: e.status_code,
            received_at: e.received_at,
            state: e.state.as_str().to_string(),
            delivered_at: e.delivered_at,
            answered_with: e.answered_with.clone(),
            business_state: is_document.then(|| business.0.clone()),
            take_back_requested: is_document && business.1,
            action: e.action.clone(),
            mark: e.mark.clone(),
        }
    }
}

/// Answer of `GET /api/v1/inbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxList {
    pub items: Vec<InboxItem>,
}

/// An attachment of a received document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentView {
    pub name: String,
    pub content_type: String,
    pub description: Option<String>,
    /// Decoded size in bytes.
    pub size: u64,
}

/// The signature verdict on the stored bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureView {
    /// Verified now, with the node's current trust anchors and CRLs.
    pub valid: bool,
    /// Who signed, or why the signature is not accepted.
    pub detail: String,
    /// Signer certificate subject recorded when the packet was received.
    pub signer_subject: String,
    pub signer_agency: Option<String>,
}

/// The status 01 sent in answer, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerView {
    pub packet_id: String,
    pub state: String,
    pub last_error: Option<String>,
    pub submitted_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
}

/// Answer of `GET /api/v1/inbox/{packet_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxDetail {
    #[serde(flatten)]
    pub item: InboxItem,
    pub size: u64,
    pub signature: SignatureView,
    pub attachments: Vec<AttachmentView>,
    pub answer: Option<AnswerView>,
    /// Documents: the statuses sent about it and the sender's requests, in time order.
    #[serde(default)]
    pub timeline: Vec<TimelineEvent>,
}

/// One event of a recipient's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at: Timestamp,
    pub event: String,
    /// Why this status does not follow the lifecycle rules (shown, not applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<String>,
}

/// One recipient in a tracking answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRecipient {
    #[serde(flatten)]
    pub summary: RecipientView,
    pub timeline: Vec<TimelineEvent>,
}

/// Answer of `GET /api/v1/documents/{document_id}/track`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackView {
    pub document_id: String,
    pub packet_id: String,
    pub subject: Option<String>,
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub submitted_at: Option<Timestamp>,
    pub summary: String,
    /// The recipients' business states: "1 accepted, 1 rejected".
    #[serde(default)]
    pub business: String,
    pub recipients: Vec<TrackRecipient>,
    /// This document is a revoke/update/replace request about an earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<ActionRef>,
    /// The revoke/update/replace requests this node sent about this document, oldest first,
    /// each with its recipients' answers.
    #[serde(default)]
    pub requests: Vec<OutboxItem>,
}

impl From<&SentPacket> for TrackView {
    fn from(p: &SentPacket) -> Self {
        let e = &p.entry;
        TrackView {
            document_id: e.document_id.clone(),
            packet_id: p.id.to_hex(),
            subject: e.subject.clone(),
            state: e.state.as_str().to_string(),
            attempts: e.attempts,
            last_error: e.last_error.clone(),
            created_at: e.created_at,
            submitted_at: e.submitted_at,
            summary: summary(&p.recipients),
            business: business_summary(&p.recipients),
            recipients: p
                .recipients
                .iter()
                .map(|(code, t)| TrackRecipient {
                    summary: RecipientView::of(code, t),
                    timeline: timeline(e, t),
                })
                .collect(),
            action: e.action.clone(),
            requests: Vec::new(),
        }
    }
}

/// Everything known about one recipient, in time order.
pub fn timeline(e: &OutboxEntry, t: &Tracking) -> Vec<TimelineEvent> {
    let mut events = vec![TimelineEvent {
        at: e.created_at,
        event: "signed and queued by this node".into(),
        anomaly: None,
    }];
    if let Some(at) = &t.accepted_at {
        events.push(TimelineEvent {
            at: *at,
            event: "accepted by the hub".into(),
            anomaly: None,
        });
    }
    if let Some(reason) = &t.refused {
        events.push(TimelineEvent {
            at: e.submitted_at.unwrap_or(e.created_at),
            event: format!("refused by the hub: {reason}"),
            anomaly: None,
        });
    }
    if let Some(at) = &t.delivered_at {
        events.push(TimelineEvent {
            at: *at,
            event: "delivered: fetched, verified and stored by the recipient".into(),
            anomaly: None,
        });
    }
    events.extend(status_events(t.request, &t.statuses));
    if let Some(m) = &t.mark {
        events.push(mark_event(m));
    }
    // Stable sort by whole seconds (a status's timestamp has no fraction, so within one second
    // the causal order of insertion is kept).
    events.sort_by_key(|ev| ev.at.to_offset_date_time().unix_timestamp());
    events
}

/// The timeline events of business statuses, each with the lifecycle rules' verdict.
pub fn status_events(
    request: Option<exchange::lifecycle::ActionKind>,
    statuses: &[StatusEvent],
) -> Vec<TimelineEvent> {
    let replay = super::db::replay_with(request, statuses);
    statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = StatusView::from(s);
            let mut event = format!("status {} {} ({})", v.code, v.label, v.label_en);
            if s.by_us {
                event.push_str(" sent by this node");
            }
            match (&v.staff, s.by_us) {
                (Some(staff), true) => event.push_str(&format!(" ({staff})")),
                (Some(staff), false) => event.push_str(&format!(" by {staff}")),
                (None, _) => {}
            }
            if let Some(d) = &v.description {
                event.push_str(&format!(": {d}"));
            }
            let anomaly = replay
                .anomalies()
                .find(|(j, _)| *j == i)
                .map(|(_, e)| e.to_string());
            TimelineEvent {
                at: v.time,
                event,
                anomaly,
            }
        })
        .collect()
}

/// The event of an agreed revoke/update/replace on the original.
fn mark_event(m: &Mark) -> TimelineEvent {
    TimelineEvent {
        at: m.at,
        event: format!(
            "{}: the recipient agreed (15) to request {}",
            m.state, m.by_document
        ),
        anomaly: None,
    }
}

/// A received document's statuses in time order.
pub fn inbox_timeline(e: &InboxEntry) -> Vec<TimelineEvent> {
    let mut events = status_events(e.action.as_ref().map(|a| a.kind), &e.statuses);
    if let Some(m) = &e.mark {
        events.push(mark_event(m));
    }
    events.sort_by_key(|ev| ev.at.unix_nanos());
    events
}

/// Answer of `GET /api/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub agency: String,
    /// The hub URL the node calls now (the first of `hub_urls` until a failover).
    pub hub_url: String,
    /// Every configured hub URL, in failover order.
    #[serde(default)]
    pub hub_urls: Vec<String>,
    pub hub: HubStatus,
    /// The node's database: whether it is writable now, and the last failure it recovered from.
    pub store: store::StoreHealth,
    /// What the node holds (none when the database cannot be read).
    pub counts: Option<Counts>,
    /// When the hub issued the verified agency directory this node uses (none yet: recipients
    /// are not checked before sending).
    #[serde(default)]
    pub directory_issued_at: Option<Timestamp>,
    /// How many agencies that directory lists.
    #[serde(default)]
    pub directory_agencies: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::PacketKind;
    use exchange::packet_id::PacketId;

    #[test]
    fn summaries_and_timelines() {
        let mut entry = OutboxEntry::queued(
            PacketKind::Document,
            "d".into(),
            vec!["B".into(), "C".into()],
            0,
            0,
        );
        entry.submitted_at = Some("1970-01-01T00:00:05Z".parse().unwrap());
        let b = Tracking {
            accepted_at: Some("1970-01-01T00:00:05Z".parse().unwrap()),
            delivered_at: Some("1970-01-01T00:00:09Z".parse().unwrap()),
            statuses: vec![
                StatusEvent {
                    code: "03".into(),
                    time: "1970-01-01T00:01:00Z".parse().unwrap(),
                    staff: Some("Lan".into()),
                    description: None,
                    packet_id: "p3".into(),
                    received_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                    by_us: false,
                },
                StatusEvent {
                    code: "01".into(),
                    time: "1970-01-01T00:00:10Z".parse().unwrap(),
                    staff: None,
                    description: None,
                    packet_id: "p1".into(),
                    received_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                    by_us: false,
                },
            ],
            ..Tracking::default()
        };
        let c = Tracking {
            refused: Some("not registered".into()),
            ..Tracking::default()
        };
        let rows = vec![("B".to_string(), b.clone()), ("C".to_string(), c)];
        assert_eq!(summary(&rows), "1/2 accepted, 1/2 refused, 1/2 delivered");
        let events: Vec<String> = timeline(&entry, &b).into_iter().map(|e| e.event).collect();
        assert_eq!(
            events,
            [
                "signed and queued by this node",
                "accepted by the hub",
                "delivered: fetched, verified and stored by the recipient",
                "status 01 đã đến (received)",
                "status 03 đã tiếp nhận (accepted) by Lan",
            ]
        );
        let view = TrackView::from(&SentPacket {
            id: PacketId::of(b"x"),
            entry,
            recipients: rows,
        });
        let b_view = &view.recipients[0].summary;
        assert_eq!(b_view.last_status.as_ref().unwrap().code, "03");
        assert_eq!(
            view.recipients[1].summary.refused.as_deref(),
            Some("not registered")
        );
        // Flattened JSON round trip (what the CLI reads).
        let json = serde_json::to_string(&view).unwrap();
        assert_eq!(serde_json::from_str::<TrackView>(&json).unwrap(), view);
    }
}
