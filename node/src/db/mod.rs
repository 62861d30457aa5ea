//! The agency node's durable state (redb through [`store::Store`], file
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
//! - `actions`: (original document id, request packet id) → (): the revoke/update/replace
//!   requests this node sent about one of its documents
//! - `anomalies`: "source:subject" → [`Anomaly`] (JSON): what an operator must look at
//! - `unmatched_receipts`: (packet id, recipient) → [`UnmatchedReceipt`] (JSON): hub-signed
//!   delivery receipts about packets this node has no record of sending (sent around it, or
//!   before its database was new); kept for the record, then acknowledged
//! - `counters`: name → u64 (`outbox_submitted`, `outbox_failed`, `inbox_new`)
//! - `users`: login name → [`User`] (JSON): the people of the web pages ([`users`])
//! - `inbox_opened`: packet id → [`Opened`]: who first opened a received document
//! - `crl_history`, `archive_feed`, `archive_feed_index`: what archives and the records feed
//!   need ([`archive`])
//! - `legacy_acks`, `legacy_cursor`: what each document system of the legacy API settled
//!   ([`legacy`])
//! - `mail_queue`, `mail_counters`: notices to the clerks, queued in the transaction of the
//!   event they report ([`mail::queue`])
//!
//! Invariants:
//! - A packet to send, its outbox row, its queue key, its `sent` index entry and one tracking
//!   row per recipient are committed in one transaction, before the clerk gets an answer.
//! - A received document, its inbox rows and the signed status 01 answering it (packet,
//!   outbox row, queue key, tracking row) are committed in one transaction, before the hub is
//!   acknowledged: a crash can lose neither, and never one without the other.
//! - A received status packet and its effect on the tracking row (or, for a 13, on the
//!   received document's statuses) are one transaction; statuses that break the lifecycle
//!   rules are stored and shown, and recorded as anomalies.
//! - A clerk's status packet, its outbox row and the event it adds to the document's
//!   lifecycle are one transaction, and the rules are checked again inside it: two clerks
//!   racing cannot both send 02 and 03.
//! - A packet id is in the inbox at most once; receiving it again changes nothing.
//! - An outbox entry is in `outbox_queue` exactly while its state is `queued`, under its
//!   `next_attempt_ms`.
//! - One `sent` entry per document id; a document id may be reused only after the packet that
//!   used it failed.
//! - A revoke/update/replace request is committed with its `actions` entry; its tracking rows
//!   start with the request pending. A recipient's agreement (15) and the mark it puts on the
//!   original (the sender's tracking row, or the recipient's inbox entry) are one transaction;
//!   a closing mark is final and overrides `updated`; an original received after a request it
//!   agreed to gets the mark in the transaction that stores it.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};

use exchange::Timestamp;
use exchange::packet_id::PacketId;
use store::codec::{decode, encode};
use store::{Blobs, DbResult, Store, StoreError};

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
const ACTIONS: TableDefinition<(&str, &[u8; 32]), ()> = TableDefinition::new("actions");
const ANOMALIES: TableDefinition<&str, &[u8]> = TableDefinition::new("anomalies");
const UNMATCHED_RECEIPTS: TableDefinition<(&[u8; 32], &str), &[u8]> =
    TableDefinition::new("unmatched_receipts");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

const SUBMITTED: &str = "outbox_submitted";
const FAILED: &str = "outbox_failed";
const INBOX_NEW: &str = "inbox_new";

mod archive;
mod legacy;
mod lifecycle;
mod queries;
mod receiving;
mod records;
mod sending;
mod users;

pub use archive::{
    Bundle, Direction, EvidencePacket, EvidenceRole, FEED_GENESIS, FeedEntry, HeldCrl,
};
pub use legacy::{LegacyAck, LegacyUpdate, MAX_FAILS, RETRY_MINUTES};
pub use records::*;
pub use users::{Opened, Role, User, UserChange};

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
    #[error("{0}")]
    Transition(#[from] exchange::lifecycle::TransitionError),
    #[error("packet {0} is not a document in this node's inbox")]
    NotInInbox(String),
    #[error("this node has sent no document with id {0:?}")]
    NotSent(String),
    #[error("{0}")]
    Closed(String),
    #[error("packet {packet_id} was not sent to {recipient}")]
    NotRecipient {
        packet_id: String,
        recipient: String,
    },
    #[error("an account named {0:?} already exists")]
    UserExists(String),
    #[error("there is no account named {0:?}")]
    NoUser(String),
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
        .insert(id.as_bytes(), encode(e)?.as_slice())
        .db()?;
    Ok(())
}

fn insert_outgoing(
    txn: &WriteTransaction,
    blobs: &Blobs,
    out: &Outgoing,
) -> Result<(), NodeDbError> {
    let id = out.id.as_bytes();
    let e = &out.entry;
    if e.kind == PacketKind::Document {
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
    let stored = blobs.put(txn, &out.bytes)?;
    txn.open_table(PACKETS)
        .db()?
        .insert(id, stored.as_slice())
        .db()?;
    put_outbox(txn, &out.id, e)?;
    if e.state == OutboxState::Queued {
        let due = e.next_attempt_ms.unwrap_or(e.created_at.unix_ms());
        txn.open_table(OUTBOX_QUEUE)
            .db()?
            .insert((due, id), ())
            .db()?;
    }
    txn.open_table(OUTBOX_BY_TIME)
        .db()?
        .insert((e.created_at.unix_ms(), id), ())
        .db()?;
    let row = Tracking {
        request: e.action.as_ref().map(|a| a.kind),
        ..Tracking::default()
    };
    let mut tracking = txn.open_table(TRACKING).db()?;
    for r in &e.recipients {
        tracking
            .insert((id, r.as_str()), encode(&row)?.as_slice())
            .db()?;
    }
    if let Some(a) = &e.action {
        txn.open_table(ACTIONS)
            .db()?
            .insert((a.original.as_str(), id), ())
            .db()?;
    }
    Ok(())
}

fn insert_inbox(
    txn: &WriteTransaction,
    blobs: &Blobs,
    id: &PacketId,
    bytes: &[u8],
    e: &InboxEntry,
) -> Result<(), StoreError> {
    let key = id.as_bytes();
    let stored = blobs.put(txn, bytes)?;
    txn.open_table(PACKETS)
        .db()?
        .insert(key, stored.as_slice())
        .db()?;
    txn.open_table(INBOX)
        .db()?
        .insert(key, encode(e)?.as_slice())
        .db()?;
    txn.open_table(INBOX_BY_TIME)
        .db()?
        .insert((e.received_at.unix_ms(), key), ())
        .db()?;
    txn.open_table(INBOX_BY_FROM)
        .db()?
        .insert((e.from.as_str(), e.document_id.as_str(), key), ())
        .db()?;
    Ok(())
}

fn in_inbox(txn: &WriteTransaction, id: &PacketId) -> Result<bool, StoreError> {
    Ok(txn
        .open_table(INBOX)
        .db()?
        .get(id.as_bytes())
        .db()?
        .is_some())
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
    let now = Timestamp::now();
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
            first_seen: now,
            last_seen: now,
            count: 1,
        },
    };
    t.insert(key.as_str(), encode(&a)?.as_slice()).db()?;
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

/// Queues `mail` (when there is one) in the caller's transaction.
fn queue_notice(txn: &WriteTransaction, mail: Option<mail::Mail>) -> Result<(), StoreError> {
    if let Some(m) = mail {
        mail::queue::enqueue(txn, &m, exchange::clock::now_ms())?;
    }
    Ok(())
}

/// "số/ký hiệu" of a document id (`agency,date,number/notation`).
pub(crate) fn code_of(document_id: &str) -> Option<&str> {
    document_id.splitn(3, ',').nth(2).filter(|c| !c.is_empty())
}

/// Typed access to the node database.
#[derive(Clone, Debug)]
pub struct NodeDb {
    store: Store,
    /// Clerks' notices, queued in the transactions of their events.
    notices: Option<std::sync::Arc<crate::notices::Notices>>,
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
            txn.open_table(ACTIONS).db()?;
            txn.open_table(ANOMALIES).db()?;
            txn.open_table(UNMATCHED_RECEIPTS).db()?;
            txn.open_table(COUNTERS).db()?;
            txn.open_table(users::USERS).db()?;
            txn.open_table(users::INBOX_OPENED).db()?;
            txn.open_table(archive::CRL_HISTORY).db()?;
            txn.open_table(legacy::LEGACY_ACKS).db()?;
            txn.open_table(legacy::LEGACY_CURSOR).db()?;
            txn.open_table(archive::ARCHIVE_FEED).db()?;
            txn.open_table(archive::ARCHIVE_FEED_INDEX).db()?;
            mail::queue::create_tables(txn)?;
            Ok(())
        })?;
        Ok(NodeDb {
            store,
            notices: None,
        })
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues clerks' notices from now on (see [`crate::notices`]).
    pub fn set_notices(&mut self, notices: std::sync::Arc<crate::notices::Notices>) {
        self.notices = Some(notices);
    }

    /// Wakes the mail sender after a commit that may have queued a notice.
    fn wake_mail(&self) {
        if let Some(n) = &self.notices {
            n.wake();
        }
    }
}

#[cfg(test)]
mod tests;
