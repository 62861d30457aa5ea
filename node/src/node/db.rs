//! The agency node's durable state (redb through [`crate::store::Store`], file
//! `data_dir/node.redb`).
//!
//! Tables (keys → values):
//! - `packets`: packet id → signed bytes, exactly as signed or received (sent and received)
//! - `outbox`: packet id → [`OutboxEntry`] (JSON): every packet this node sends
//! - `outbox_queue`: (next attempt, Unix ms; packet id) → (): the queued entries, by due time
//! - `outbox_by_time`: (created, Unix ms; packet id) → (): listing order
//! - `sent`: document id → packet id: the document packets this node sent (business key)
//! - `tracking`: (packet id, recipient) → [`Tracking`] (JSON): what happened to one sent packet
//!   at one recipient: hub acceptance or refusal, delivery, statuses received
//! - `inbox`: packet id → [`InboxEntry`] (JSON): every packet received (documents, statuses)
//! - `inbox_by_time`: (received, Unix ms; packet id) → (): listing order
//! - `inbox_by_from`: (from, document id, packet id) → ()
//! - `anomalies`: "source:subject" → [`Anomaly`] (JSON): what an operator must look at
//! - `counters`: name → u64 (`outbox_submitted`, `outbox_failed`, `inbox_new`)
//!
//! Invariants:
//! - A packet to send, its outbox row, its queue key, its `sent` index entry and one tracking
//!   row per recipient are committed in one transaction, before the clerk gets an answer.
//! - A received document, its inbox rows and the signed status 01 answering it (packet,
//!   outbox row, queue key, tracking row) are committed in one transaction, before the hub is
//!   acknowledged: a crash can lose neither, and never one without the other.
//! - A received status packet and its effect on the tracking row are one transaction.
//! - A packet id is in the inbox at most once; receiving it again changes nothing.
//! - An outbox entry is in `outbox_queue` exactly while its state is `queued`, under its
//!   `next_attempt_ms`.
//! - One `sent` entry per document id; a document id may be reused only after the packet that
//!   used it failed.

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::packet_id::PacketId;
use crate::receipt::HubReceipt;
use crate::store::codec::{decode, encode};
use crate::store::{DbResult, Store, StoreError};

use super::clock;

const PACKETS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("packets");
const OUTBOX: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("outbox");
const OUTBOX_QUEUE: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("outbox_queue");
const OUTBOX_BY_TIME: TableDefinition<(u64, &[u8; 32]), ()> =
    TableDefinition::new("outbox_by_time");
const SENT: TableDefinition<&str, &[u8; 32]> = TableDefinition::new("sent");
const TRACKING: TableDefinition<(&[u8; 32], &str), &[u8]> = TableDefinition::new("tracking");
const INBOX: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("inbox");
const INBOX_BY_TIME: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("inbox_by_time");
const INBOX_BY_FROM: TableDefinition<(&str, &str, &[u8; 32]), ()> =
    TableDefinition::new("inbox_by_from");
const ANOMALIES: TableDefinition<&str, &[u8]> = TableDefinition::new("anomalies");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

const SUBMITTED: &str = "outbox_submitted";
const FAILED: &str = "outbox_failed";
const INBOX_NEW: &str = "inbox_new";

/// `kind` of a document packet.
pub const KIND_DOCUMENT: &str = "document";
/// `kind` of a status packet.
pub const KIND_STATUS: &str = "status";

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
    /// [`KIND_DOCUMENT`] or [`KIND_STATUS`].
    pub kind: String,
    /// The document's id (for a status: the document it answers).
    pub document_id: String,
    /// Trích yếu (documents).
    #[serde(default)]
    pub subject: Option<String>,
    /// Status code (status packets).
    #[serde(default)]
    pub status_code: Option<String>,
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
    /// RFC 3339.
    pub created_at: String,
    pub created_ms: u64,
    /// Hub time of acceptance (RFC 3339).
    #[serde(default)]
    pub submitted_at: Option<String>,
    /// When the entry failed (RFC 3339).
    #[serde(default)]
    pub failed_at: Option<String>,
    /// The hub's signed submission receipt.
    #[serde(default)]
    pub receipt: Option<String>,
}

impl OutboxEntry {
    /// A fresh entry, queued for an attempt now.
    pub fn queued(
        kind: &str,
        document_id: String,
        recipients: Vec<String>,
        priority: u8,
        now_ms: u64,
    ) -> OutboxEntry {
        OutboxEntry {
            kind: kind.to_string(),
            document_id,
            subject: None,
            status_code: None,
            priority,
            recipients,
            state: OutboxState::Queued,
            attempts: 0,
            next_attempt_ms: Some(now_ms),
            last_error: None,
            created_at: clock::ms_rfc3339(now_ms),
            created_ms: now_ms,
            submitted_at: None,
            failed_at: None,
            receipt: None,
        }
    }
}

/// A status received about a sent document, from one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    /// Two-digit code (`01` …).
    pub code: String,
    /// The status packet's own Timestamp, as RFC 3339.
    pub time: String,
    /// StaffInfo, summarised (`staff, department`).
    #[serde(default)]
    pub staff: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// The status packet's id.
    pub packet_id: String,
    /// When this node stored it (RFC 3339).
    pub received_at: String,
}

/// What happened to one sent packet at one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracking {
    /// Hub time at which the hub accepted the packet for this recipient.
    #[serde(default)]
    pub accepted_at: Option<String>,
    /// The hub refused to route to this recipient, with this reason.
    #[serde(default)]
    pub refused: Option<String>,
    /// Hub time at which the recipient acknowledged the packet.
    #[serde(default)]
    pub delivered_at: Option<String>,
    /// The hub's signed delivery receipt.
    #[serde(default)]
    pub delivery_receipt: Option<String>,
    /// Statuses received from this recipient, in arrival order.
    #[serde(default)]
    pub statuses: Vec<StatusEvent>,
}

impl Tracking {
    /// The most recent status by its own timestamp (ties: the later arrival).
    pub fn last_status(&self) -> Option<&StatusEvent> {
        self.statuses
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| {
                let ta = clock::parse_rfc3339(&a.time);
                let tb = clock::parse_rfc3339(&b.time);
                ta.cmp(&tb).then(i.cmp(j))
            })
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
    /// [`KIND_DOCUMENT`] or [`KIND_STATUS`].
    pub kind: String,
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
    pub status_code: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    pub received_ms: u64,
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
    pub delivered_at: Option<String>,
    /// The hub's signed delivery receipt for this packet.
    #[serde(default)]
    pub delivery_receipt: Option<String>,
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
    pub first_seen: String,
    pub last_seen: String,
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
    pub anomalies: u64,
}

/// Filter of the inbox listing.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub state: Option<InboxState>,
    pub from: Option<String>,
    /// `None`: every kind.
    pub kind: Option<String>,
}

/// A sent packet with its per-recipient tracking rows.
#[derive(Debug, Clone)]
pub struct SentPacket {
    pub id: PacketId,
    pub entry: OutboxEntry,
    pub recipients: Vec<(String, Tracking)>,
}

/// Node storage errors and refusals decided inside a transaction.
#[derive(Debug, thiserror::Error)]
pub enum NodeDbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "document id {document_id:?} was already sent by this node (packet {packet_id}, {state}); \
         give the new document its own number or document id"
    )]
    DuplicateDocument {
        document_id: String,
        packet_id: String,
        state: &'static str,
    },
    #[error("packet {0} is not in this node's outbox")]
    NotOurs(String),
    #[error("packet {packet_id} was not sent to {recipient}")]
    NotRecipient { packet_id: String, recipient: String },
}

fn corrupt(what: String) -> NodeDbError {
    NodeDbError::Store(StoreError::Corrupt(what))
}

fn bump(txn: &WriteTransaction, name: &str, delta: i64) -> Result<(), StoreError> {
    let mut t = txn.open_table(COUNTERS).db()?;
    let current = t.get(name).db()?.map(|v| v.value()).unwrap_or(0);
    let next = current.saturating_add_signed(delta);
    t.insert(name, next).db()?;
    Ok(())
}

fn get_outbox(txn: &WriteTransaction, id: &PacketId) -> Result<Option<OutboxEntry>, NodeDbError> {
    let t = txn.open_table(OUTBOX).db()?;
    let v = t.get(id.as_bytes()).db()?;
    Ok(match v {
        Some(v) => Some(decode(v.value())?),
        None => None,
    })
}

fn put_outbox(txn: &WriteTransaction, id: &PacketId, e: &OutboxEntry) -> Result<(), StoreError> {
    txn.open_table(OUTBOX)
        .db()?
        .insert(id.as_bytes(), encode(e).as_slice())
        .db()?;
    Ok(())
}

fn insert_outgoing(txn: &WriteTransaction, out: &Outgoing) -> Result<(), NodeDbError> {
    let id = out.id.as_bytes();
    let e = &out.entry;
    if e.kind == KIND_DOCUMENT {
        let mut sent = txn.open_table(SENT).db()?;
        let previous = sent.get(e.document_id.as_str()).db()?.map(|v| *v.value());
        if let Some(prev) = previous {
            let prev = PacketId(prev);
            let state = match get_outbox(txn, &prev)? {
                Some(p) => p.state,
                None => return Err(corrupt(format!("sent index names {prev}, not in outbox"))),
            };
            if state != OutboxState::Failed {
                return Err(NodeDbError::DuplicateDocument {
                    document_id: e.document_id.clone(),
                    packet_id: prev.to_hex(),
                    state: state.as_str(),
                });
            }
        }
        sent.insert(e.document_id.as_str(), id).db()?;
    }
    txn.open_table(PACKETS)
        .db()?
        .insert(id, out.bytes.as_slice())
        .db()?;
    put_outbox(txn, &out.id, e)?;
    if e.state == OutboxState::Queued {
        let due = e.next_attempt_ms.unwrap_or(e.created_ms);
        txn.open_table(OUTBOX_QUEUE).db()?.insert((due, id), ()).db()?;
    }
    txn.open_table(OUTBOX_BY_TIME)
        .db()?
        .insert((e.created_ms, id), ())
        .db()?;
    let mut tracking = txn.open_table(TRACKING).db()?;
    for r in &e.recipients {
        tracking
            .insert((id, r.as_str()), encode(&Tracking::default()).as_slice())
            .db()?;
    }
    Ok(())
}

fn insert_inbox(
    txn: &WriteTransaction,
    id: &PacketId,
    bytes: &[u8],
    e: &InboxEntry,
) -> Result<(), StoreError> {
    let key = id.as_bytes();
    txn.open_table(PACKETS).db()?.insert(key, bytes).db()?;
    txn.open_table(INBOX)
        .db()?
        .insert(key, encode(e).as_slice())
        .db()?;
    txn.open_table(INBOX_BY_TIME)
        .db()?
        .insert((e.received_ms, key), ())
        .db()?;
    txn.open_table(INBOX_BY_FROM)
        .db()?
        .insert((e.from.as_str(), e.document_id.as_str(), key), ())
        .db()?;
    Ok(())
}

fn in_inbox(txn: &WriteTransaction, id: &PacketId) -> Result<bool, StoreError> {
    Ok(txn.open_table(INBOX).db()?.get(id.as_bytes()).db()?.is_some())
}

fn upsert_anomaly(
    txn: &WriteTransaction,
    source: &str,
    subject: &str,
    from: Option<&str>,
    reason: &str,
) -> Result<(), NodeDbError> {
    let key = format!("{source}:{subject}");
    let mut t = txn.open_table(ANOMALIES).db()?;
    let now = clock::now_rfc3339();
    let previous: Option<Anomaly> = match t.get(key.as_str()).db()? {
        Some(v) => Some(decode(v.value())?),
        None => None,
    };
    let a = match previous {
        Some(mut a) => {
            a.last_seen = now;
            a.count += 1;
            a.reason = reason.to_string();
            a
        }
        None => Anomaly {
            source: source.to_string(),
            subject: subject.to_string(),
            from: from.map(str::to_string),
            reason: reason.to_string(),
            first_seen: now.clone(),
            last_seen: now,
            count: 1,
        },
    };
    t.insert(key.as_str(), encode(&a).as_slice()).db()?;
    Ok(())
}

fn tracking_rows(
    txn: &ReadTransaction,
    id: &PacketId,
) -> Result<Vec<(String, Tracking)>, NodeDbError> {
    let t = txn.open_table(TRACKING).db()?;
    let mut out = Vec::new();
    for row in t.range((id.as_bytes(), "")..).db()? {
        let (k, v) = row.db()?;
        let (pid, recipient) = k.value();
        if pid != id.as_bytes() {
            break;
        }
        out.push((recipient.to_string(), decode(v.value())?));
    }
    Ok(out)
}

fn read_outbox(txn: &ReadTransaction, id: &PacketId) -> Result<Option<OutboxEntry>, NodeDbError> {
    let t = txn.open_table(OUTBOX).db()?;
    let v = t.get(id.as_bytes()).db()?;
    Ok(match v {
        Some(v) => Some(decode(v.value())?),
        None => None,
    })
}

fn read_inbox(txn: &ReadTransaction, id: &PacketId) -> Result<Option<InboxEntry>, NodeDbError> {
    let t = txn.open_table(INBOX).db()?;
    let v = t.get(id.as_bytes()).db()?;
    Ok(match v {
        Some(v) => Some(decode(v.value())?),
        None => None,
    })
}

/// Due entries and when the next one falls due.
#[derive(Debug, Clone, Default)]
pub struct Due {
    pub ready: Vec<(PacketId, OutboxEntry)>,
    /// Earliest due time (Unix ms) of the queued entries not returned, if any.
    pub next_ms: Option<u64>,
}

/// Typed access to the node database.
#[derive(Clone, Debug)]
pub struct NodeDb {
    store: Store,
}

impl NodeDb {
    /// Opens or creates the node database file.
    pub fn open(path: &std::path::Path) -> Result<NodeDb, StoreError> {
        let store = Store::open(path, |txn| {
            txn.open_table(PACKETS).db()?;
            txn.open_table(OUTBOX).db()?;
            txn.open_table(OUTBOX_QUEUE).db()?;
            txn.open_table(OUTBOX_BY_TIME).db()?;
            txn.open_table(SENT).db()?;
            txn.open_table(TRACKING).db()?;
            txn.open_table(INBOX).db()?;
            txn.open_table(INBOX_BY_TIME).db()?;
            txn.open_table(INBOX_BY_FROM).db()?;
            txn.open_table(ANOMALIES).db()?;
            txn.open_table(COUNTERS).db()?;
            Ok(())
        })?;
        Ok(NodeDb { store })
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    // ---- outbox ----

    /// Commits a packet to send (packet, outbox row, queue key, `sent` index for documents,
    /// tracking rows). Refuses a document id this node already sent, unless that packet failed.
    pub async fn commit_outgoing(&self, out: Outgoing) -> Result<(), NodeDbError> {
        self.store
            .write(move |txn| insert_outgoing(txn, &out))
            .await
    }

    /// Up to `limit` queued entries due at `now_ms`, earliest first, leaving out `skip` (entries
    /// in flight); and the earliest due time among the others.
    pub async fn due(
        &self,
        now_ms: u64,
        limit: usize,
        skip: std::collections::HashSet<PacketId>,
    ) -> Result<Due, NodeDbError> {
        self.store
            .read(move |txn| {
                let queue = txn.open_table(OUTBOX_QUEUE).db()?;
                let mut due = Due::default();
                for row in queue.iter().db()? {
                    let (k, _) = row.db()?;
                    let (at, id) = k.value();
                    let id = PacketId(*id);
                    if skip.contains(&id) {
                        continue;
                    }
                    if at > now_ms || due.ready.len() >= limit {
                        due.next_ms = Some(at);
                        break;
                    }
                    let entry = read_outbox(txn, &id)?
                        .ok_or_else(|| corrupt(format!("queued packet {id} has no outbox row")))?;
                    due.ready.push((id, entry));
                }
                Ok(due)
            })
            .await
    }

    /// The stored bytes of a packet (sent or received).
    pub async fn packet(&self, id: PacketId) -> Result<Option<Vec<u8>>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(PACKETS).db()?;
                Ok(t.get(id.as_bytes()).db()?.map(|v| v.value().to_vec()))
            })
            .await
    }

    /// Records the outcome of one submission attempt and returns the updated entry. A packet
    /// already submitted stays submitted whatever a late attempt says.
    pub async fn record_attempt(
        &self,
        id: PacketId,
        attempt: Attempt,
    ) -> Result<OutboxEntry, NodeDbError> {
        self.store
            .write(move |txn| {
                let mut e = get_outbox(txn, &id)?
                    .ok_or_else(|| NodeDbError::NotOurs(id.to_hex()))?;
                if e.state == OutboxState::Submitted {
                    return Ok(e);
                }
                let before = e.state;
                if let (OutboxState::Queued, Some(at)) = (e.state, e.next_attempt_ms) {
                    txn.open_table(OUTBOX_QUEUE)
                        .db()?
                        .remove((at, id.as_bytes()))
                        .db()?;
                }
                e.attempts = e.attempts.saturating_add(1);
                match &attempt {
                    Attempt::Submitted { receipt, xml } => {
                        let at = clock::rfc3339(receipt.hub_time);
                        e.state = OutboxState::Submitted;
                        e.submitted_at = Some(at.clone());
                        e.receipt = Some(xml.clone());
                        e.next_attempt_ms = None;
                        e.failed_at = None;
                        let mut tracking = txn.open_table(TRACKING).db()?;
                        let mut update = |code: &str, f: &dyn Fn(&mut Tracking)| {
                            let mut row: Tracking =
                                match tracking.get((id.as_bytes(), code)).db()? {
                                    Some(v) => decode(v.value())?,
                                    None => Tracking::default(),
                                };
                            f(&mut row);
                            tracking
                                .insert((id.as_bytes(), code), encode(&row).as_slice())
                                .db()?;
                            Ok::<(), NodeDbError>(())
                        };
                        for code in &receipt.accepted {
                            update(code, &|row| row.accepted_at = Some(at.clone()))?;
                        }
                        for refused in &receipt.refused {
                            update(&refused.code, &|row| {
                                row.refused = Some(refused.reason.clone())
                            })?;
                        }
                        bump(txn, SUBMITTED, 1)?;
                        if before == OutboxState::Failed {
                            bump(txn, FAILED, -1)?;
                        }
                    }
                    Attempt::Retry { error, next_ms } => {
                        if e.state != OutboxState::Queued {
                            return Ok(e);
                        }
                        e.last_error = Some(error.clone());
                        e.next_attempt_ms = Some(*next_ms);
                        txn.open_table(OUTBOX_QUEUE)
                            .db()?
                            .insert((*next_ms, id.as_bytes()), ())
                            .db()?;
                    }
                    Attempt::Failed { error } => {
                        e.state = OutboxState::Failed;
                        e.last_error = Some(error.clone());
                        e.next_attempt_ms = None;
                        e.failed_at = Some(clock::now_rfc3339());
                        if before != OutboxState::Failed {
                            bump(txn, FAILED, 1)?;
                        }
                    }
                }
                put_outbox(txn, &id, &e)?;
                Ok(e)
            })
            .await
    }

    /// Records the hub's verified delivery receipt for (packet, recipient). Returns whether it
    /// was new (a receipt already recorded is kept).
    pub async fn record_delivery(
        &self,
        id: PacketId,
        recipient: String,
        delivered_at: String,
        receipt: String,
    ) -> Result<bool, NodeDbError> {
        self.store
            .write(move |txn| {
                if get_outbox(txn, &id)?.is_none() {
                    return Err(NodeDbError::NotOurs(id.to_hex()));
                }
                let mut t = txn.open_table(TRACKING).db()?;
                let mut row: Tracking = match t.get((id.as_bytes(), recipient.as_str())).db()? {
                    Some(v) => decode(v.value())?,
                    None => {
                        return Err(NodeDbError::NotRecipient {
                            packet_id: id.to_hex(),
                            recipient: recipient.clone(),
                        });
                    }
                };
                if row.delivery_receipt.is_some() {
                    return Ok(false);
                }
                row.delivered_at = Some(delivered_at.clone());
                row.delivery_receipt = Some(receipt.clone());
                t.insert((id.as_bytes(), recipient.as_str()), encode(&row).as_slice())
                    .db()?;
                Ok(true)
            })
            .await
    }

    // ---- inbox ----

    /// Is this packet already in the inbox?
    pub async fn has_inbox(&self, id: PacketId) -> Result<bool, NodeDbError> {
        self.store
            .read(move |txn| Ok(read_inbox(txn, &id)?.is_some()))
            .await
    }

    /// Commits a verified document with the signed status 01 answering it, in one transaction.
    pub async fn receive_document(&self, inc: IncomingDocument) -> Result<Received, NodeDbError> {
        self.store
            .write(move |txn| {
                if in_inbox(txn, &inc.id)? {
                    return Ok(Received::AlreadyThere);
                }
                let mut entry = inc.entry.clone();
                entry.answered_with = Some(inc.answer.id.to_hex());
                insert_inbox(txn, &inc.id, &inc.bytes, &entry)?;
                insert_outgoing(txn, &inc.answer)?;
                if entry.state == InboxState::New {
                    bump(txn, INBOX_NEW, 1)?;
                }
                Ok(Received::New { matched: true })
            })
            .await
    }

    /// Commits a verified status packet and applies it to the tracking row of the document and
    /// recipient it is about; an unmatched status is stored as such and recorded as an anomaly.
    pub async fn receive_status(&self, inc: IncomingStatus) -> Result<Received, NodeDbError> {
        self.store
            .write(move |txn| {
                if in_inbox(txn, &inc.id)? {
                    return Ok(Received::AlreadyThere);
                }
                let mut entry = inc.entry.clone();
                let sent = txn
                    .open_table(SENT)
                    .db()?
                    .get(entry.document_id.as_str())
                    .db()?
                    .map(|v| PacketId(*v.value()));
                let mut problem = None;
                match sent {
                    None => {
                        problem = Some(format!(
                            "status {} from {} is about document {:?}, which this node never sent",
                            inc.event.code, entry.from, entry.document_id
                        ));
                    }
                    Some(doc) => {
                        let mut t = txn.open_table(TRACKING).db()?;
                        let row = t
                            .get((doc.as_bytes(), entry.from.as_str()))
                            .db()?
                            .map(|v| decode::<Tracking>(v.value()))
                            .transpose()?;
                        match row {
                            Some(mut row) => {
                                row.statuses.push(inc.event.clone());
                                t.insert(
                                    (doc.as_bytes(), entry.from.as_str()),
                                    encode(&row).as_slice(),
                                )
                                .db()?;
                            }
                            None => {
                                problem = Some(format!(
                                    "status {} from {} is about document {:?}, which this node \
                                     did not send to {}",
                                    inc.event.code, entry.from, entry.document_id, entry.from
                                ));
                            }
                        }
                    }
                }
                entry.state = if problem.is_some() {
                    InboxState::Unmatched
                } else {
                    InboxState::Applied
                };
                if let Some(reason) = &problem {
                    upsert_anomaly(
                        txn,
                        "inbox",
                        &inc.id.to_hex(),
                        Some(entry.from.as_str()),
                        reason,
                    )?;
                }
                insert_inbox(txn, &inc.id, &inc.bytes, &entry)?;
                Ok(Received::New {
                    matched: problem.is_none(),
                })
            })
            .await
    }

    /// Stores the hub's verified delivery receipts with the inbox entries they are about
    /// (`(packet id, hub time, receipt)`); a receipt already stored is kept.
    pub async fn store_acks(&self, acks: Vec<(PacketId, String, String)>) -> Result<(), NodeDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(INBOX).db()?;
                for (id, at, receipt) in &acks {
                    let entry = t
                        .get(id.as_bytes())
                        .db()?
                        .map(|v| decode::<InboxEntry>(v.value()))
                        .transpose()?;
                    let Some(mut entry) = entry else { continue };
                    if entry.delivery_receipt.is_some() {
                        continue;
                    }
                    entry.delivered_at = Some(at.clone());
                    entry.delivery_receipt = Some(receipt.clone());
                    t.insert(id.as_bytes(), encode(&entry).as_slice()).db()?;
                }
                Ok(())
            })
            .await
    }

    /// Records (or counts again) an anomaly.
    pub async fn record_anomaly(
        &self,
        source: &str,
        subject: &str,
        from: Option<&str>,
        reason: &str,
    ) -> Result<(), NodeDbError> {
        let (source, subject, from, reason) = (
            source.to_string(),
            subject.to_string(),
            from.map(str::to_string),
            reason.to_string(),
        );
        self.store
            .write(move |txn| upsert_anomaly(txn, &source, &subject, from.as_deref(), &reason))
            .await
    }

    // ---- queries ----

    /// Sent packets, newest first, with their tracking rows; `kind` filters.
    pub async fn outbox_list(
        &self,
        kind: Option<String>,
        limit: usize,
    ) -> Result<Vec<SentPacket>, NodeDbError> {
        self.store
            .read(move |txn| {
                let by_time = txn.open_table(OUTBOX_BY_TIME).db()?;
                let mut out = Vec::new();
                for row in by_time.iter().db()?.rev() {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, _) = row.db()?;
                    let id = PacketId(*k.value().1);
                    let Some(entry) = read_outbox(txn, &id)? else {
                        continue;
                    };
                    if kind.as_deref().is_some_and(|k| k != entry.kind) {
                        continue;
                    }
                    let recipients = tracking_rows(txn, &id)?;
                    out.push(SentPacket {
                        id,
                        entry,
                        recipients,
                    });
                }
                Ok(out)
            })
            .await
    }

    /// One sent packet with its tracking rows.
    pub async fn sent_packet(&self, id: PacketId) -> Result<Option<SentPacket>, NodeDbError> {
        self.store
            .read(move |txn| {
                let Some(entry) = read_outbox(txn, &id)? else {
                    return Ok(None);
                };
                let recipients = tracking_rows(txn, &id)?;
                Ok(Some(SentPacket {
                    id,
                    entry,
                    recipients,
                }))
            })
            .await
    }

    /// The latest packet sent for a document id, with its tracking rows.
    pub async fn track(&self, document_id: String) -> Result<Option<SentPacket>, NodeDbError> {
        self.store
            .read(move |txn| {
                let id = txn
                    .open_table(SENT)
                    .db()?
                    .get(document_id.as_str())
                    .db()?
                    .map(|v| PacketId(*v.value()));
                let Some(id) = id else { return Ok(None) };
                let entry = read_outbox(txn, &id)?
                    .ok_or_else(|| corrupt(format!("sent index names {id}, not in outbox")))?;
                let recipients = tracking_rows(txn, &id)?;
                Ok(Some(SentPacket {
                    id,
                    entry,
                    recipients,
                }))
            })
            .await
    }

    /// Received packets, newest first, filtered.
    pub async fn inbox_list(
        &self,
        filter: InboxFilter,
        limit: usize,
    ) -> Result<Vec<(PacketId, InboxEntry)>, NodeDbError> {
        self.store
            .read(move |txn| {
                let keep = |e: &InboxEntry| {
                    filter.state.is_none_or(|s| s == e.state)
                        && filter.kind.as_deref().is_none_or(|k| k == e.kind)
                };
                let mut out = Vec::new();
                if let Some(from) = &filter.from {
                    let idx = txn.open_table(INBOX_BY_FROM).db()?;
                    for row in idx.range((from.as_str(), "", &[0u8; 32])..).db()? {
                        let (k, _) = row.db()?;
                        let (f, _, id) = k.value();
                        if f != from {
                            break;
                        }
                        let id = PacketId(*id);
                        if let Some(e) = read_inbox(txn, &id)?
                            && keep(&e)
                        {
                            out.push((id, e));
                        }
                    }
                    out.sort_by(|a, b| b.1.received_ms.cmp(&a.1.received_ms));
                    out.truncate(limit);
                    return Ok(out);
                }
                let by_time = txn.open_table(INBOX_BY_TIME).db()?;
                for row in by_time.iter().db()?.rev() {
                    if out.len() >= limit {
                        break;
                    }
                    let (k, _) = row.db()?;
                    let id = PacketId(*k.value().1);
                    if let Some(e) = read_inbox(txn, &id)?
                        && keep(&e)
                    {
                        out.push((id, e));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// One received packet and its bytes.
    pub async fn inbox_entry(
        &self,
        id: PacketId,
    ) -> Result<Option<(InboxEntry, Vec<u8>)>, NodeDbError> {
        self.store
            .read(move |txn| {
                let Some(e) = read_inbox(txn, &id)? else {
                    return Ok(None);
                };
                let bytes = txn
                    .open_table(PACKETS)
                    .db()?
                    .get(id.as_bytes())
                    .db()?
                    .map(|v| v.value().to_vec())
                    .ok_or_else(|| corrupt(format!("inbox packet {id} has no bytes")))?;
                Ok(Some((e, bytes)))
            })
            .await
    }

    /// Anomalies, most recently seen first.
    pub async fn anomalies(&self, limit: usize) -> Result<Vec<Anomaly>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(ANOMALIES).db()?;
                let mut out: Vec<Anomaly> = Vec::new();
                for row in t.iter().db()? {
                    let (_, v) = row.db()?;
                    out.push(decode(v.value())?);
                }
                out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
                out.truncate(limit);
                Ok(out)
            })
            .await
    }

    /// Queue sizes and counters.
    pub async fn counts(&self) -> Result<Counts, NodeDbError> {
        self.store
            .read(move |txn| {
                let counters = txn.open_table(COUNTERS).db()?;
                let get = |name: &str| -> Result<u64, StoreError> {
                    Ok(counters.get(name).db()?.map(|v| v.value()).unwrap_or(0))
                };
                Ok(Counts {
                    outbox_queued: txn.open_table(OUTBOX_QUEUE).db()?.len().db()?,
                    outbox_submitted: get(SUBMITTED)?,
                    outbox_failed: get(FAILED)?,
                    inbox_new: get(INBOX_NEW)?,
                    anomalies: txn.open_table(ANOMALIES).db()?.len().db()?,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::{ReceiptKind, RefusedRecipient};

    fn open() -> (tempfile::TempDir, NodeDb) {
        let dir = tempfile::tempdir().unwrap();
        let db = NodeDb::open(&dir.path().join("node.redb")).unwrap();
        (dir, db)
    }

    fn outgoing(bytes: &[u8], doc: &str, to: &[&str], now: u64) -> Outgoing {
        let mut entry = OutboxEntry::queued(
            KIND_DOCUMENT,
            doc.into(),
            to.iter().map(|s| s.to_string()).collect(),
            0,
            now,
        );
        entry.subject = Some("S".into());
        Outgoing {
            id: PacketId::of(bytes),
            bytes: bytes.to_vec(),
            entry,
        }
    }

    fn inbox_entry(kind: &str, from: &str, doc: &str) -> InboxEntry {
        InboxEntry {
            kind: kind.into(),
            from: from.into(),
            from_name: "Name".into(),
            document_id: doc.into(),
            subject: None,
            code: None,
            priority: 0,
            status_code: None,
            received_at: clock::now_rfc3339(),
            received_ms: clock::now_ms(),
            state: InboxState::New,
            signer_subject: "CN=x".into(),
            signer_agency: Some(from.into()),
            answered_with: None,
            delivered_at: None,
            delivery_receipt: None,
        }
    }

    fn receipt(id: PacketId, accepted: &[&str], refused: &[(&str, &str)]) -> HubReceipt {
        HubReceipt {
            kind: ReceiptKind::Submission,
            packet_id: id.to_hex(),
            packet_kind: "document".into(),
            from: "A".into(),
            document_id: "d".into(),
            hub_time: time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
            accepted: accepted.iter().map(|s| s.to_string()).collect(),
            refused: refused
                .iter()
                .map(|(c, r)| RefusedRecipient {
                    code: c.to_string(),
                    reason: r.to_string(),
                })
                .collect(),
            delivered_to: None,
        }
    }

    #[tokio::test]
    async fn outbox_state_transitions_and_queue_index() {
        let (_d, db) = open();
        let out = outgoing(b"p1", "d1", &["B", "C"], 1_000);
        let id = out.id;
        db.commit_outgoing(out).await.unwrap();
        assert_eq!(db.counts().await.unwrap().outbox_queued, 1);

        // Not due before its time; due at its time.
        let due = db.due(999, 10, Default::default()).await.unwrap();
        assert!(due.ready.is_empty());
        assert_eq!(due.next_ms, Some(1_000));
        let due = db.due(1_000, 10, Default::default()).await.unwrap();
        assert_eq!(due.ready.len(), 1);
        // In-flight entries are skipped.
        let due = db.due(1_000, 10, [id].into()).await.unwrap();
        assert!(due.ready.is_empty() && due.next_ms.is_none());

        // A transient failure moves it in the queue.
        let e = db
            .record_attempt(
                id,
                Attempt::Retry {
                    error: "hub unreachable".into(),
                    next_ms: 5_000,
                },
            )
            .await
            .unwrap();
        assert_eq!((e.state, e.attempts), (OutboxState::Queued, 1));
        let due = db.due(4_999, 10, Default::default()).await.unwrap();
        assert!(due.ready.is_empty());
        assert_eq!(due.next_ms, Some(5_000));

        // Accepted: out of the queue, receipt and per-recipient acceptance stored.
        let r = receipt(id, &["B"], &[("C", "not registered")]);
        let e = db
            .record_attempt(
                id,
                Attempt::Submitted {
                    receipt: r,
                    xml: "<r/>".into(),
                },
            )
            .await
            .unwrap();
        assert_eq!((e.state, e.attempts), (OutboxState::Submitted, 2));
        assert_eq!(e.receipt.as_deref(), Some("<r/>"));
        let counts = db.counts().await.unwrap();
        assert_eq!((counts.outbox_queued, counts.outbox_submitted), (0, 1));
        let sent = db.track("d1".into()).await.unwrap().unwrap();
        let rows: std::collections::BTreeMap<_, _> = sent.recipients.into_iter().collect();
        assert!(rows["B"].accepted_at.is_some());
        assert_eq!(rows["C"].refused.as_deref(), Some("not registered"));
        assert!(rows["C"].accepted_at.is_none());

        // A late failure report does not undo the acceptance.
        let e = db
            .record_attempt(id, Attempt::Failed { error: "x".into() })
            .await
            .unwrap();
        assert_eq!(e.state, OutboxState::Submitted);
    }

    #[tokio::test]
    async fn duplicate_document_ids_are_refused_unless_the_first_failed() {
        let (_d, db) = open();
        let first = outgoing(b"p1", "d1", &["B"], 1);
        let first_id = first.id;
        db.commit_outgoing(first).await.unwrap();
        let err = db
            .commit_outgoing(outgoing(b"p2", "d1", &["B"], 2))
            .await
            .unwrap_err();
        assert!(
            matches!(err, NodeDbError::DuplicateDocument { ref state, .. } if *state == "queued"),
            "{err}"
        );
        // The refused packet left nothing behind.
        assert!(db.packet(PacketId::of(b"p2")).await.unwrap().is_none());
        assert_eq!(db.counts().await.unwrap().outbox_queued, 1);

        db.record_attempt(
            first_id,
            Attempt::Failed {
                error: "hub refused: schema".into(),
            },
        )
        .await
        .unwrap();
        assert_eq!(db.counts().await.unwrap().outbox_failed, 1);
        db.commit_outgoing(outgoing(b"p3", "d1", &["B"], 3))
            .await
            .unwrap();
        let tracked = db.track("d1".into()).await.unwrap().unwrap();
        assert_eq!(tracked.id, PacketId::of(b"p3"));
    }

    #[tokio::test]
    async fn a_received_document_is_stored_once_with_its_status_01() {
        let (_d, db) = open();
        let mut answer = outgoing(b"status01", "doc", &["A"], 10);
        answer.entry.kind = KIND_STATUS.into();
        answer.entry.status_code = Some("01".into());
        let inc = IncomingDocument {
            id: PacketId::of(b"doc-packet"),
            bytes: b"doc-packet".to_vec(),
            entry: inbox_entry(KIND_DOCUMENT, "A", "doc"),
            answer: answer.clone(),
        };
        assert_eq!(
            db.receive_document(inc.clone()).await.unwrap(),
            Received::New { matched: true }
        );
        // Both the inbox entry and the 01 (bytes + queued outbox row) are there.
        let (entry, bytes) = db.inbox_entry(inc.id).await.unwrap().unwrap();
        assert_eq!(bytes, b"doc-packet");
        assert_eq!(entry.answered_with, Some(answer.id.to_hex()));
        assert_eq!(db.packet(answer.id).await.unwrap().unwrap(), b"status01");
        let due = db.due(u64::MAX, 10, Default::default()).await.unwrap();
        assert_eq!(due.ready.len(), 1);
        assert_eq!(due.ready[0].0, answer.id);
        assert_eq!(due.ready[0].1.status_code.as_deref(), Some("01"));

        // Offered again (even with a freshly signed 01): nothing new.
        let mut again = inc.clone();
        again.answer = outgoing(b"another01", "doc", &["A"], 11);
        again.answer.entry.kind = KIND_STATUS.into();
        assert_eq!(
            db.receive_document(again).await.unwrap(),
            Received::AlreadyThere
        );
        assert!(db.packet(PacketId::of(b"another01")).await.unwrap().is_none());
        let counts = db.counts().await.unwrap();
        assert_eq!((counts.inbox_new, counts.outbox_queued), (1, 1));
        let listed = db.inbox_list(InboxFilter::default(), 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        let by_from = db
            .inbox_list(
                InboxFilter {
                    from: Some("A".into()),
                    ..Default::default()
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(by_from.len(), 1);
        let other = db
            .inbox_list(
                InboxFilter {
                    from: Some("Z".into()),
                    ..Default::default()
                },
                10,
            )
            .await
            .unwrap();
        assert!(other.is_empty());
    }

    #[tokio::test]
    async fn statuses_apply_to_tracking_or_become_anomalies() {
        let (_d, db) = open();
        let out = outgoing(b"p1", "d1", &["B"], 1);
        let doc_id = out.id;
        db.commit_outgoing(out).await.unwrap();
        let status = |bytes: &[u8], from: &str, doc: &str, code: &str, time: &str| {
            let mut entry = inbox_entry(KIND_STATUS, from, doc);
            entry.status_code = Some(code.into());
            IncomingStatus {
                id: PacketId::of(bytes),
                bytes: bytes.to_vec(),
                entry,
                event: StatusEvent {
                    code: code.into(),
                    time: time.into(),
                    staff: None,
                    description: None,
                    packet_id: PacketId::of(bytes).to_hex(),
                    received_at: clock::now_rfc3339(),
                },
            }
        };
        let s3 = status(b"s3", "B", "d1", "03", "2026-01-01T10:00:00Z");
        let s1 = status(b"s1", "B", "d1", "01", "2026-01-01T09:00:00Z");
        assert_eq!(
            db.receive_status(s3.clone()).await.unwrap(),
            Received::New { matched: true }
        );
        assert_eq!(
            db.receive_status(s1).await.unwrap(),
            Received::New { matched: true }
        );
        assert_eq!(
            db.receive_status(s3).await.unwrap(),
            Received::AlreadyThere
        );
        let sent = db.sent_packet(doc_id).await.unwrap().unwrap();
        let row = &sent.recipients[0].1;
        assert_eq!(row.statuses.len(), 2);
        assert_eq!(row.last_status().unwrap().code, "03", "latest by timestamp");

        // Unknown document, and a known document from a non-recipient.
        let unknown = status(b"s4", "B", "nope", "01", "2026-01-01T09:00:00Z");
        assert_eq!(
            db.receive_status(unknown).await.unwrap(),
            Received::New { matched: false }
        );
        let stranger = status(b"s5", "Z", "d1", "01", "2026-01-01T09:00:00Z");
        assert_eq!(
            db.receive_status(stranger).await.unwrap(),
            Received::New { matched: false }
        );
        let anomalies = db.anomalies(10).await.unwrap();
        assert_eq!(anomalies.len(), 2);
        assert!(
            anomalies
                .iter()
                .any(|a| a.reason.contains("never sent") && a.subject == PacketId::of(b"s4").to_hex())
        );
        assert!(anomalies.iter().any(|a| a.reason.contains("did not send to Z")));
        let (e, _) = db.inbox_entry(PacketId::of(b"s5")).await.unwrap().unwrap();
        assert_eq!(e.state, InboxState::Unmatched);
    }

    #[tokio::test]
    async fn deliveries_and_anomaly_counts() {
        let (_d, db) = open();
        let out = outgoing(b"p1", "d1", &["B"], 1);
        let id = out.id;
        db.commit_outgoing(out).await.unwrap();
        assert!(
            db.record_delivery(id, "B".into(), "t1".into(), "r1".into())
                .await
                .unwrap()
        );
        assert!(
            !db.record_delivery(id, "B".into(), "t2".into(), "r2".into())
                .await
                .unwrap(),
            "first receipt kept"
        );
        let err = db
            .record_delivery(id, "Z".into(), "t".into(), "r".into())
            .await
            .unwrap_err();
        assert!(matches!(err, NodeDbError::NotRecipient { .. }), "{err}");
        let err = db
            .record_delivery(PacketId::of(b"x"), "B".into(), "t".into(), "r".into())
            .await
            .unwrap_err();
        assert!(matches!(err, NodeDbError::NotOurs(_)), "{err}");
        let row = db.track("d1".into()).await.unwrap().unwrap().recipients;
        assert_eq!(row[0].1.delivered_at.as_deref(), Some("t1"));

        db.record_anomaly("receipts", "seq 7", None, "bad signature")
            .await
            .unwrap();
        db.record_anomaly("receipts", "seq 7", None, "bad signature")
            .await
            .unwrap();
        let a = db.anomalies(10).await.unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].count, 2);
        assert_eq!(db.counts().await.unwrap().anomalies, 1);
    }
}
