//! The node's stored records (JSON values of the redb tables) and the values passed to and
//! from its transactions.

use serde::{Deserialize, Serialize};

use dsig::receipt::HubReceipt;
use exchange::packet_id::PacketId;

use exchange::ActionRef;
use exchange::clock::Timestamp;
use exchange::lifecycle::{ActionKind, Lifecycle, Replay};

pub use exchange::protocol::PacketKind;

/// Where an outgoing packet stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxState {
    /// Waiting for (another) submission attempt.
    Queued,
    /// The hub accepted it and its signed receipt is stored.
    Submitted,
    /// The hub refused it, or the node gave up; `last_error` says why.
    Failed,
}

impl OutboxState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Queued => "queued",
            OutboxState::Submitted => "submitted",
            OutboxState::Failed => "failed",
        }
    }
}

/// One packet this node sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub kind: PacketKind,
    /// The document's id (for a status: the document it answers).
    pub document_id: String,
    /// Trích yếu (documents).
    #[serde(default)]
    pub subject: Option<String>,
    /// Status code (status packets).
    #[serde(default)]
    pub status_code: Option<edxml::StatusCode>,
    pub priority: u8,
    /// Destination agencies.
    pub recipients: Vec<String>,
    pub state: OutboxState,
    /// Submission attempts made so far.
    pub attempts: u32,
    /// While queued: when the next attempt is due (Unix ms).
    #[serde(default)]
    pub next_attempt_ms: Option<u64>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When a clerk (or the inbox, for a status 01) queued it.
    pub created_at: Timestamp,
    /// Hub time of acceptance.
    #[serde(default)]
    pub submitted_at: Option<Timestamp>,
    /// When the entry failed.
    #[serde(default)]
    pub failed_at: Option<Timestamp>,
    /// The hub's signed submission receipt.
    #[serde(default)]
    pub receipt: Option<String>,
    /// A revoke/update/replace: what it asks about which original.
    #[serde(default)]
    pub action: Option<ActionRef>,
    /// Sent through the legacy API: SHA-256 (hex) of the bytes the document system handed
    /// over, so that the same bytes again get the same DocId and different ones are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_source: Option<String>,
}

impl OutboxEntry {
    /// A fresh entry, queued for an attempt now.
    pub fn queued(
        kind: PacketKind,
        document_id: String,
        recipients: Vec<String>,
        priority: u8,
        now_ms: u64,
    ) -> OutboxEntry {
        OutboxEntry {
            kind,
            document_id,
            subject: None,
            status_code: None,
            priority,
            recipients,
            state: OutboxState::Queued,
            attempts: 0,
            next_attempt_ms: Some(now_ms),
            last_error: None,
            created_at: Timestamp::from_unix_ms(now_ms),
            submitted_at: None,
            failed_at: None,
            receipt: None,
            action: None,
            legacy_source: None,
        }
    }
}

/// An original document marked by an agreed revoke/update/replace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// `revoked`, `updated`, `replaced` or `removed`.
    pub state: String,
    /// Whether nothing but repeats may follow on the original.
    pub closed: bool,
    /// The request's document id and packet.
    pub by_document: String,
    pub by_packet: String,
    /// The time of the agreement (the 15's timestamp).
    pub at: Timestamp,
}

/// Why a status cannot be sent about a document its sender revoked or replaced.
pub fn closed_by_mark(mark: Option<&Mark>, code: &str) -> Option<String> {
    let m = mark.filter(|m| m.closed)?;
    Some(format!(
        "status {code} is refused: the document was {} (request {:?}, agreed at {}); send \
         statuses about {:?} instead",
        m.state, m.by_document, m.at, m.by_document
    ))
}

/// A status received about a sent document, from one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// Two-digit code (`01` …).
    pub code: String,
    /// The status packet's own Timestamp.
    pub time: Timestamp,
    /// StaffInfo, summarised (`staff, department`).
    #[serde(default)]
    pub staff: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The status packet's id.
    pub packet_id: String,
    /// When this node stored it.
    pub received_at: Timestamp,
    /// Sent by this node (its own 01–06/15/16 on a received document, its 13 on a sent one)
    /// rather than received.
    #[serde(default)]
    pub by_us: bool,
}

/// Replays statuses through the lifecycle rules (timestamp order); unknown codes and
/// unparseable times are left out. The replay's indices are indices into `statuses`.
pub fn replay_statuses(statuses: &[StatusEvent]) -> Replay {
    replay_with(None, statuses)
}

/// [`replay_statuses`] for a document that may itself be a request.
pub fn replay_with(request: Option<ActionKind>, statuses: &[StatusEvent]) -> Replay {
    use edxml::StatusCode;
    let mut keep = Vec::new();
    let mut events = Vec::new();
    for (i, s) in statuses.iter().enumerate() {
        if let Ok(code) = StatusCode::parse(&s.code) {
            keep.push(i);
            events.push((code, s.time.unix_nanos()));
        }
    }
    let mut r = exchange::lifecycle::replay_from(Lifecycle::start(request), &events);
    for e in &mut r.events {
        e.index = keep[e.index];
    }
    r
}

/// What happened to one sent packet at one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    /// Hub time at which the hub accepted the packet for this recipient.
    #[serde(default)]
    pub accepted_at: Option<Timestamp>,
    /// The hub refused to route to this recipient, with this reason.
    #[serde(default)]
    pub refused: Option<String>,
    /// Hub time at which the recipient acknowledged the packet.
    #[serde(default)]
    pub delivered_at: Option<Timestamp>,
    /// The hub's signed delivery receipt.
    #[serde(default)]
    pub delivery_receipt: Option<String>,
    /// Statuses received from this recipient, in arrival order.
    #[serde(default)]
    pub statuses: Vec<StatusEvent>,
    /// This packet is a revoke/update/replace request (its lifecycle starts pending).
    #[serde(default)]
    pub request: Option<ActionKind>,
    /// The recipient agreed to a revoke/update/replace of this document.
    #[serde(default)]
    pub mark: Option<Mark>,
}

impl Tracking {
    /// The statuses replayed through the lifecycle rules.
    pub fn replay(&self) -> Replay {
        replay_with(self.request, &self.statuses)
    }

    /// The business state shown for this recipient: the mark once a request was agreed,
    /// otherwise the lifecycle state.
    pub fn state_name(&self) -> String {
        match &self.mark {
            Some(m) => m.state.clone(),
            None => self.replay().lifecycle.state_name().to_string(),
        }
    }

    /// The most recent status by its own timestamp (ties: the later arrival).
    pub fn last_status(&self) -> Option<&StatusEvent> {
        self.statuses
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| a.time.cmp(&b.time).then(i.cmp(j)))
            .map(|(_, s)| s)
    }
}

/// Where a received packet stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboxState {
    /// A document not yet handled by a clerk.
    New,
    /// A status applied to the tracking of a document this node sent.
    Applied,
    /// A status that matches no document this node sent to its sender (see the anomalies).
    Unmatched,
}

impl InboxState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            InboxState::New => "new",
            InboxState::Applied => "applied",
            InboxState::Unmatched => "unmatched",
        }
    }
}

/// One received packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxEntry {
    pub kind: PacketKind,
    pub from: String,
    pub from_name: String,
    /// The document's id (for a status: the document it answers).
    pub document_id: String,
    #[serde(default)]
    pub subject: Option<String>,
    /// "số/ký hiệu".
    #[serde(default)]
    pub code: Option<String>,
    pub priority: u8,
    #[serde(default)]
    pub status_code: Option<edxml::StatusCode>,
    pub received_at: Timestamp,
    pub state: InboxState,
    /// Subject of the verified signer certificate.
    pub signer_subject: String,
    /// Agency code of the signer certificate.
    #[serde(default)]
    pub signer_agency: Option<String>,
    /// The status 01 this node sent in answer (documents).
    #[serde(default)]
    pub answered_with: Option<String>,
    /// Hub time of the delivery (from the delivery receipt).
    #[serde(default)]
    pub delivered_at: Option<Timestamp>,
    /// The hub's signed delivery receipt for this packet.
    #[serde(default)]
    pub delivery_receipt: Option<String>,
    /// The hub's signed submission receipt for this packet (when it accepted it from the
    /// sender), handed over with the delivery receipt: the archive's evidence of time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_receipt: Option<String>,
    /// Documents: the business statuses about it, sent by this node (01–06, 15, 16) or
    /// received from its sender (13); see [`exchange::lifecycle`].
    #[serde(default)]
    pub statuses: Vec<StatusEvent>,
    /// Documents: this one is a revoke/update/replace request about an earlier document.
    #[serde(default)]
    pub action: Option<ActionRef>,
    /// Documents: this node agreed to a revoke/update/replace of this document.
    #[serde(default)]
    pub mark: Option<Mark>,
    /// Requests: the mark this node's agreement puts on the original (kept for an original
    /// that arrives after the request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreed_mark: Option<Mark>,
}

/// Something an operator must look at: a packet or receipt that failed verification, a status
/// about an unknown document, …
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Which worker saw it: `inbox` or `receipts`.
    pub source: String,
    /// What it is about (a packet id, a receipt sequence number).
    pub subject: String,
    /// The claimed sender, when known.
    #[serde(default)]
    pub from: Option<String>,
    pub reason: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// How many times it was seen.
    pub count: u64,
}

/// A packet ready to be committed to the outbox.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub id: PacketId,
    pub bytes: Vec<u8>,
    pub entry: OutboxEntry,
}

/// A verified received document and the signed status 01 answering it.
#[derive(Debug, Clone)]
pub struct IncomingDocument {
    pub id: PacketId,
    pub bytes: Vec<u8>,
    pub entry: InboxEntry,
    pub answer: Outgoing,
}

/// A verified received status packet.
#[derive(Debug, Clone)]
pub struct IncomingStatus {
    pub id: PacketId,
    pub bytes: Vec<u8>,
    pub entry: InboxEntry,
    pub event: StatusEvent,
}

/// What receiving did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// Stored now. For statuses: whether it matched a sent document and recipient.
    New { matched: bool },
    /// Already in the inbox; nothing changed.
    AlreadyThere,
}

/// The outcome of one submission attempt.
#[derive(Debug, Clone)]
pub enum Attempt {
    /// The hub accepted the packet: its verified receipt.
    Submitted { receipt: HubReceipt, xml: String },
    /// Try again at `next_ms`.
    Retry { error: String, next_ms: u64 },
    /// Do not try again.
    Failed { error: String },
}

/// Sizes for the health answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub outbox_queued: u64,
    pub outbox_submitted: u64,
    pub outbox_failed: u64,
    pub inbox_new: u64,
    /// Every packet received (documents and statuses).
    pub inbox_total: u64,
    pub anomalies: u64,
    /// Hub-signed delivery receipts about packets this node has no record of sending.
    pub unmatched_receipts: u64,
}

/// A verified delivery receipt this node could not match to a packet it sent, kept as
/// evidence (and acknowledged, so that it never holds up the receipts behind it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedReceipt {
    pub packet_id: String,
    pub recipient: String,
    /// The receipt exactly as the hub signed it.
    pub receipt: String,
    /// Why it matched nothing.
    pub reason: String,
    /// When this node first stored it.
    pub stored_at: Timestamp,
}

/// Filter of the inbox listing.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub state: Option<InboxState>,
    /// Documents in this business state (`new`, `accepted`, …, `taken_back`,
    /// `take_back_requested`).
    pub business: Option<String>,
    pub from: Option<String>,
    /// `None`: every kind.
    pub kind: Option<PacketKind>,
    /// Documents with this priority (0–4).
    pub priority: Option<u8>,
    /// Received at or after (Unix ms).
    pub since_ms: Option<u64>,
    /// Received before (Unix ms).
    pub until_ms: Option<u64>,
}

/// A sent packet with its per-recipient tracking rows.
#[derive(Debug, Clone)]
pub struct SentPacket {
    pub id: PacketId,
    pub entry: OutboxEntry,
    pub recipients: Vec<(String, Tracking)>,
}

/// Due entries and when the next one falls due.
#[derive(Debug, Clone, Default)]
pub struct Due {
    pub ready: Vec<(PacketId, OutboxEntry)>,
    /// Earliest due time (Unix ms) of the queued entries not returned, if any.
    pub next_ms: Option<u64>,
}

impl InboxEntry {
    /// The business state of a received document (`new`, `accepted`, …, `taken_back`), and
    /// whether a take-back request waits for an answer.
    pub fn business_state(&self) -> (String, bool) {
        let r = self.replay();
        (
            match &self.mark {
                Some(m) => m.state.clone(),
                None => r.lifecycle.state_name().to_string(),
            },
            r.lifecycle.take_back == exchange::lifecycle::TakeBackState::Requested,
        )
    }

    /// The statuses replayed through the lifecycle rules (a request starts pending).
    pub fn replay(&self) -> Replay {
        replay_with(self.action.as_ref().map(|a| a.kind), &self.statuses)
    }
}

/// A status packet a clerk asked for, signed, with the event it adds.
#[derive(Debug, Clone)]
pub struct OutgoingStatus {
    pub out: Outgoing,
    pub event: StatusEvent,
}

/// What committing a clerk's status did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusCommit {
    /// Committed and queued: this packet.
    Sent { packet_id: String, state: String },
    /// The same code was already sent: nothing new, the first packet stands.
    Repeat { packet_id: String, state: String },
}
