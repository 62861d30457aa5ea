//! Reading one document's whole evidence for an archive package, the CRLs this node has held,
//! and the records feed (issue 15).
//!
//! Tables (keys → values):
//! - `crl_history`: SHA-256 of a CRL's DER → [`HeldCrl`] (JSON): every distinct CRL this
//!   node's trust has held, with when it first saw it, so that an archive made years later
//!   still carries the CRL that was in force when the hub received a packet
//! - `archive_feed`: sequence number → [`FeedEntry`] (JSON): documents whose processing
//!   finished or closed, in the order they did, each linked to the one before it by digest
//! - `archive_feed_index`: packet id → sequence number: a document enters the feed once
//!
//! Invariants:
//! - The bytes handed out are the stored bytes: packets exactly as signed or received,
//!   receipts exactly as the hub signed them. Nothing is re-serialised.
//! - A feed entry's `digest` is SHA-256 over the previous entry's digest and this entry's
//!   fields ([`FeedEntry::compute_digest`]); entries are appended in the transaction that
//!   finishes the document, so the chain has no gaps and no entry is ever rewritten.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use exchange::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;
use store::codec::{decode, encode};
use store::{Blobs, DbResult, StoreError};

use super::{
    INBOX, INBOX_BY_FROM, INBOX_BY_TIME, InboxEntry, NodeDb, NodeDbError, OUTBOX_BY_TIME, PACKETS,
    SENT, corrupt, read_inbox, read_outbox, tracking_rows,
};

pub(super) const CRL_HISTORY: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("crl_history");
pub(super) const ARCHIVE_FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("archive_feed");
pub(super) const ARCHIVE_FEED_INDEX: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("archive_feed_index");

fn sha256(bytes: &[u8]) -> [u8; 32] {
    PacketId::of(bytes).0
}

/// A CRL this node's trust held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldCrl {
    /// The CRL, DER.
    #[serde(with = "serde_bytes_b64")]
    pub der: Vec<u8>,
    /// When this node first held it.
    pub first_seen: Timestamp,
}

mod serde_bytes_b64 {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// Which side of the exchange this node was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Văn bản đi: this node sent it.
    Sent,
    /// Văn bản đến: this node received it.
    Received,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// What one packet is, in a document's story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceRole {
    /// The document itself.
    Document,
    /// A status packet about it (01–06, 13, 15, 16).
    Status,
    /// A revoke/update/replace request about it.
    Request,
}

/// One packet with the hub's receipts about it, as stored.
#[derive(Debug, Clone)]
pub struct EvidencePacket {
    pub role: EvidenceRole,
    pub id: PacketId,
    /// Signed bytes, exactly as signed or received.
    pub bytes: Vec<u8>,
    /// The hub's submission receipt (sent packets: from the submission; received packets:
    /// handed over with the delivery receipt).
    pub submission_receipt: Option<String>,
    /// The hub's delivery receipts (sent packets: one per recipient that fetched it;
    /// received packets: the delivery to this node).
    pub delivery_receipts: Vec<String>,
}

/// Everything this node holds about one business document.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub direction: Direction,
    pub document_id: String,
    /// The document first, then its statuses and requests (with their own statuses), oldest
    /// first.
    pub packets: Vec<EvidencePacket>,
    /// Received documents: when this node stored it (ngày đến).
    pub received_at: Option<Timestamp>,
    /// Its number in this node's register of that year and direction, counted in the order
    /// documents were sent or received (văn bản đi: số thứ tự; văn bản đến: số đến).
    pub register_number: u64,
    /// The state this node's records give it (`finished`, `revoked`, `open`, …).
    pub state: String,
}

/// One entry of the records feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub seq: u64,
    pub document_id: String,
    /// The document packet's id.
    pub packet_id: String,
    pub direction: Direction,
    /// Why it is finished: `06`, `02`, `revoked`, `replaced`, …
    pub reason: String,
    /// When it entered the feed.
    pub at: Timestamp,
    /// Lower-case hex SHA-256 of the previous entry's digest (64 zeros for the first).
    pub previous: String,
    /// Lower-case hex [`FeedEntry::compute_digest`].
    pub digest: String,
}

/// The digest before the first feed entry.
pub const FEED_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl FeedEntry {
    /// SHA-256 over `previous ␊ seq ␊ document id ␊ packet id ␊ direction ␊ reason ␊ at (Unix
    /// ms)`, lower-case hex: the documented linking rule (README, "Records").
    pub fn compute_digest(&self) -> String {
        let text = format!(
            "{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.previous,
            self.seq,
            self.document_id,
            self.packet_id,
            self.direction.as_str(),
            self.reason,
            self.at.unix_ms()
        );
        hex::encode(sha256(text.as_bytes()))
    }
}

/// Appends a document to the feed in the caller's transaction, unless it is there already.
pub(super) fn feed_append(
    txn: &WriteTransaction,
    packet: &PacketId,
    document_id: &str,
    direction: Direction,
    reason: &str,
) -> Result<(), StoreError> {
    let mut index = txn.open_table(ARCHIVE_FEED_INDEX).db()?;
    if index.get(packet.as_bytes()).db()?.is_some() {
        return Ok(());
    }
    let mut feed = txn.open_table(ARCHIVE_FEED).db()?;
    let last = feed
        .last()
        .db()?
        .map(|(k, v)| (k.value(), v.value().to_vec()));
    let (seq, previous) = match last {
        Some((seq, bytes)) => {
            let e: FeedEntry = decode(&bytes)?;
            (seq + 1, e.digest)
        }
        None => (1, FEED_GENESIS.to_string()),
    };
    let mut entry = FeedEntry {
        seq,
        document_id: document_id.to_string(),
        packet_id: packet.to_hex(),
        direction,
        reason: reason.to_string(),
        at: Timestamp::now(),
        previous,
        digest: String::new(),
    };
    entry.digest = entry.compute_digest();
    feed.insert(seq, encode(&entry)?.as_slice()).db()?;
    index.insert(packet.as_bytes(), seq).db()?;
    Ok(())
}

/// Why a received document is finished at this node, if it is: its last status from this
/// node is 06 or 02, or a closing mark.
pub(super) fn received_finished(entry: &InboxEntry) -> Option<String> {
    if let Some(m) = entry.mark.as_ref().filter(|m| m.closed) {
        return Some(m.state.clone());
    }
    let last = entry
        .statuses
        .iter()
        .filter(|s| s.by_us)
        .max_by_key(|s| s.time.unix_nanos())?;
    matches!(last.code.as_str(), "06" | "02" | "15").then(|| last.code.clone())
}

/// Why a sent document is finished, if it is: every recipient refused by the hub, answered
/// 06 or 02, or closed by a mark.
pub(super) fn sent_finished(rows: &[(String, super::Tracking)]) -> Option<String> {
    if rows.is_empty() {
        return None;
    }
    let mut reasons: Vec<String> = Vec::new();
    for (_, row) in rows {
        let reason = if let Some(m) = row.mark.as_ref().filter(|m| m.closed) {
            m.state.clone()
        } else if row.refused.is_some() {
            "refused".to_string()
        } else {
            let last = row
                .statuses
                .iter()
                .filter(|s| !s.by_us)
                .max_by_key(|s| s.time.unix_nanos())?;
            if !matches!(last.code.as_str(), "06" | "02" | "15") {
                return None;
            }
            last.code.clone()
        };
        if !reasons.contains(&reason) {
            reasons.push(reason);
        }
    }
    Some(reasons.join(","))
}

fn packet_bytes(
    txn: &ReadTransaction,
    blobs: &Blobs,
    id: &PacketId,
) -> Result<Vec<u8>, NodeDbError> {
    let table = txn.open_table(PACKETS).db()?;
    let value = table
        .get(id.as_bytes())
        .db()?
        .ok_or_else(|| corrupt(format!("packet {id} has no bytes")))?;
    Ok(blobs.load(value.value())?)
}

/// One packet's evidence, from the outbox (sent by this node) or the inbox (received).
fn packet_evidence(
    txn: &ReadTransaction,
    blobs: &Blobs,
    id: &PacketId,
    role: EvidenceRole,
) -> Result<Option<(EvidencePacket, Vec<String>)>, NodeDbError> {
    if let Some(entry) = read_outbox(txn, id)? {
        let rows = tracking_rows(txn, id)?;
        let statuses = rows
            .iter()
            .flat_map(|(_, r)| r.statuses.iter().map(|s| s.packet_id.clone()))
            .collect();
        let delivery_receipts = rows
            .into_iter()
            .filter_map(|(_, r)| r.delivery_receipt)
            .collect();
        return Ok(Some((
            EvidencePacket {
                role,
                id: *id,
                bytes: packet_bytes(txn, blobs, id)?,
                submission_receipt: entry.receipt,
                delivery_receipts,
            },
            statuses,
        )));
    }
    if let Some(entry) = read_inbox(txn, id)? {
        let statuses = entry.statuses.iter().map(|s| s.packet_id.clone()).collect();
        return Ok(Some((
            EvidencePacket {
                role,
                id: *id,
                bytes: packet_bytes(txn, blobs, id)?,
                submission_receipt: entry.submission_receipt,
                delivery_receipts: entry.delivery_receipt.into_iter().collect(),
            },
            statuses,
        )));
    }
    Ok(None)
}

/// Adds `id` and, recursively, the statuses recorded about it (each packet once).
fn collect(
    txn: &ReadTransaction,
    blobs: &Blobs,
    id: &PacketId,
    role: EvidenceRole,
    out: &mut Vec<EvidencePacket>,
) -> Result<(), NodeDbError> {
    if out.iter().any(|p| p.id == *id) {
        return Ok(());
    }
    let Some((packet, statuses)) = packet_evidence(txn, blobs, id, role)? else {
        return Ok(());
    };
    out.push(packet);
    for s in statuses {
        if let Ok(sid) = s.parse::<PacketId>() {
            collect(txn, blobs, &sid, EvidenceRole::Status, out)?;
        }
    }
    Ok(())
}

/// The register number of `id` among documents of the same calendar year (Vietnam time,
/// UTC+7) in `by_time`, in time order.
fn register_number(
    txn: &ReadTransaction,
    by_time: TableDefinition<(u64, &[u8; 32]), ()>,
    id: &PacketId,
    at_ms: u64,
    is_document: impl Fn(&ReadTransaction, &PacketId) -> Result<bool, NodeDbError>,
) -> Result<u64, NodeDbError> {
    const VN_OFFSET_MS: u64 = 7 * 3_600_000;
    let local = time::OffsetDateTime::from_unix_timestamp_nanos(
        i128::from(at_ms.saturating_add(VN_OFFSET_MS)) * 1_000_000,
    )
    .map_err(|e| corrupt(format!("time {at_ms} out of range: {e}")))?;
    let year_start = time::Date::from_calendar_date(local.year(), time::Month::January, 1)
        .map_err(|e| corrupt(e.to_string()))?
        .midnight()
        .assume_utc();
    let start_ms = (year_start.unix_timestamp().max(0) as u64)
        .saturating_mul(1000)
        .saturating_sub(VN_OFFSET_MS);
    let t = txn.open_table(by_time).db()?;
    let mut n = 0;
    for row in t.range((start_ms, &[0u8; 32])..).db()? {
        let (k, _) = row.db()?;
        let (_, pid) = k.value();
        let pid = PacketId(*pid);
        if is_document(txn, &pid)? {
            n += 1;
        }
        if pid == *id {
            return Ok(n);
        }
    }
    Ok(n)
}

impl NodeDb {
    /// Everything this node holds about the business document `key`: a document id this
    /// node sent or received, or a document packet's id (64 hex digits).
    pub async fn archive_bundle(&self, key: String) -> Result<Option<Bundle>, NodeDbError> {
        let blobs = self.store.blobs().clone();
        self.store.read(move |txn| bundle(txn, &blobs, &key)).await
    }

    /// Feed entries after `after`, at most `limit`, and the digest of the entry at `after`
    /// (the genesis digest for 0; `None` when there is no such entry).
    pub async fn archive_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Option<String>, Vec<FeedEntry>), NodeDbError> {
        self.store
            .read(move |txn| {
                let feed = txn.open_table(ARCHIVE_FEED).db()?;
                let previous = if after == 0 {
                    Some(FEED_GENESIS.to_string())
                } else {
                    match feed.get(after).db()? {
                        Some(v) => Some(decode::<FeedEntry>(v.value())?.digest),
                        None => None,
                    }
                };
                let mut out = Vec::new();
                for row in feed.range(after.saturating_add(1)..).db()?.take(limit) {
                    let (_, v) = row.db()?;
                    out.push(decode::<FeedEntry>(v.value())?);
                }
                Ok((previous, out))
            })
            .await
    }

    /// Records the CRLs (DER) this node's trust holds now; returns how many were new.
    pub async fn remember_crls(&self, crls: Vec<Vec<u8>>) -> Result<usize, NodeDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(CRL_HISTORY).db()?;
                let mut new = 0;
                for der in &crls {
                    let key = sha256(der);
                    if t.get(&key).db()?.is_some() {
                        continue;
                    }
                    let held = HeldCrl {
                        der: der.clone(),
                        first_seen: Timestamp::now(),
                    };
                    t.insert(&key, encode(&held)?.as_slice()).db()?;
                    new += 1;
                }
                Ok::<usize, NodeDbError>(new)
            })
            .await
    }

    /// Every CRL this node's trust has held.
    pub async fn held_crls(&self) -> Result<Vec<HeldCrl>, NodeDbError> {
        self.store
            .read(|txn| {
                let t = txn.open_table(CRL_HISTORY).db()?;
                let mut out = Vec::new();
                for row in t.iter().db()? {
                    let (_, v) = row.db()?;
                    out.push(decode::<HeldCrl>(v.value())?);
                }
                out.sort_by_key(|c| c.first_seen.unix_ms());
                Ok(out)
            })
            .await
    }

    /// Document packets this node sent or received from `since_ms` until before `until_ms`
    /// (sent: when queued; received: when stored), oldest first.
    pub async fn archive_candidates(
        &self,
        since_ms: u64,
        until_ms: u64,
    ) -> Result<Vec<String>, NodeDbError> {
        self.store
            .read(move |txn| {
                let mut out: Vec<(u64, String)> = Vec::new();
                let outbox = txn.open_table(OUTBOX_BY_TIME).db()?;
                for row in outbox.range((since_ms, &[0u8; 32])..).db()? {
                    let (k, _) = row.db()?;
                    let (at, pid) = k.value();
                    if at >= until_ms {
                        break;
                    }
                    let pid = PacketId(*pid);
                    if let Some(e) = read_outbox(txn, &pid)?
                        && e.kind == PacketKind::Document
                        && e.action.is_none()
                    {
                        out.push((at, pid.to_hex()));
                    }
                }
                let inbox = txn.open_table(INBOX_BY_TIME).db()?;
                for row in inbox.range((since_ms, &[0u8; 32])..).db()? {
                    let (k, _) = row.db()?;
                    let (at, pid) = k.value();
                    if at >= until_ms {
                        break;
                    }
                    let pid = PacketId(*pid);
                    if let Some(e) = read_inbox(txn, &pid)?
                        && e.kind == PacketKind::Document
                        && e.action.is_none()
                    {
                        out.push((at, pid.to_hex()));
                    }
                }
                out.sort();
                Ok(out.into_iter().map(|(_, id)| id).collect())
            })
            .await
    }
}

fn bundle(txn: &ReadTransaction, blobs: &Blobs, key: &str) -> Result<Option<Bundle>, NodeDbError> {
    let by_id = key.parse::<PacketId>().ok();
    // Sent by this node?
    let sent_id = match by_id {
        Some(id) if read_outbox(txn, &id)?.is_some() => Some(id),
        Some(_) => None,
        None => txn
            .open_table(SENT)
            .db()?
            .get(key)
            .db()?
            .map(|v| PacketId(*v.value())),
    };
    if let Some(id) = sent_id {
        let entry = read_outbox(txn, &id)?
            .ok_or_else(|| corrupt(format!("sent index names {id}, not in outbox")))?;
        if entry.kind != PacketKind::Document {
            return Ok(None);
        }
        let mut packets = Vec::new();
        collect(txn, blobs, &id, EvidenceRole::Document, &mut packets)?;
        for request in requests_sent(txn, &entry.document_id)? {
            collect(txn, blobs, &request, EvidenceRole::Request, &mut packets)?;
        }
        let rows = tracking_rows(txn, &id)?;
        let state = sent_finished(&rows).unwrap_or_else(|| "open".into());
        let register_number = register_number(
            txn,
            OUTBOX_BY_TIME,
            &id,
            entry.created_at.unix_ms(),
            |txn, pid| {
                Ok(read_outbox(txn, pid)?
                    .is_some_and(|e| e.kind == PacketKind::Document && e.action.is_none()))
            },
        )?;
        return Ok(Some(Bundle {
            direction: Direction::Sent,
            document_id: entry.document_id,
            packets,
            received_at: None,
            register_number,
            state,
        }));
    }
    // Received?
    let received = match by_id {
        Some(id) => read_inbox(txn, &id)?.map(|e| (id, e)),
        None => received_by_document_id(txn, key)?,
    };
    let Some((id, entry)) = received else {
        return Ok(None);
    };
    if entry.kind != PacketKind::Document {
        return Ok(None);
    }
    let mut packets = Vec::new();
    collect(txn, blobs, &id, EvidenceRole::Document, &mut packets)?;
    for request in requests_received(txn, &entry.from, &entry.document_id)? {
        collect(txn, blobs, &request, EvidenceRole::Request, &mut packets)?;
    }
    let state = received_finished(&entry).unwrap_or_else(|| "open".into());
    let register_number = register_number(
        txn,
        INBOX_BY_TIME,
        &id,
        entry.received_at.unix_ms(),
        |txn, pid| {
            Ok(read_inbox(txn, pid)?
                .is_some_and(|e| e.kind == PacketKind::Document && e.action.is_none()))
        },
    )?;
    Ok(Some(Bundle {
        direction: Direction::Received,
        document_id: entry.document_id,
        packets,
        received_at: Some(entry.received_at),
        register_number,
        state,
    }))
}

/// The revoke/update/replace requests this node sent about `original`.
fn requests_sent(txn: &ReadTransaction, original: &str) -> Result<Vec<PacketId>, NodeDbError> {
    let t = txn.open_table(super::ACTIONS).db()?;
    let mut out = Vec::new();
    for row in t.range((original, &[0u8; 32])..).db()? {
        let (k, _) = row.db()?;
        let (doc, id) = k.value();
        if doc != original {
            break;
        }
        out.push(PacketId(*id));
    }
    Ok(out)
}

/// The latest document packet received from the agency that issued `document_id` under that
/// id (the issuer is the id's first field).
fn received_by_document_id(
    txn: &ReadTransaction,
    document_id: &str,
) -> Result<Option<(PacketId, InboxEntry)>, NodeDbError> {
    let Some(from) = document_id.split(',').next() else {
        return Ok(None);
    };
    let t = txn.open_table(INBOX_BY_FROM).db()?;
    let mut best: Option<(PacketId, InboxEntry)> = None;
    for row in t.range((from, document_id, &[0u8; 32])..).db()? {
        let (k, _) = row.db()?;
        let (f, d, id) = k.value();
        if f != from || d != document_id {
            break;
        }
        let id = PacketId(*id);
        if let Some(e) = read_inbox(txn, &id)?
            && e.kind == PacketKind::Document
            && best
                .as_ref()
                .is_none_or(|(_, b)| b.received_at.unix_ms() <= e.received_at.unix_ms())
        {
            best = Some((id, e));
        }
    }
    Ok(best)
}

/// The requests received from `from` about `original`.
fn requests_received(
    txn: &ReadTransaction,
    from: &str,
    original: &str,
) -> Result<Vec<PacketId>, NodeDbError> {
    let t = txn.open_table(INBOX_BY_FROM).db()?;
    let inbox = txn.open_table(INBOX).db()?;
    let mut out = Vec::new();
    for row in t.range((from, "", &[0u8; 32])..).db()? {
        let (k, _) = row.db()?;
        let (f, _, id) = k.value();
        if f != from {
            break;
        }
        let Some(v) = inbox.get(id).db()? else {
            continue;
        };
        let e: InboxEntry = decode(v.value())?;
        if e.action.as_ref().is_some_and(|a| a.original == original) {
            out.push(PacketId(*id));
        }
    }
    Ok(out)
}

/// Appends sent document `id` to the feed, in the caller's transaction, once it is finished.
pub(super) fn note_sent(txn: &WriteTransaction, id: &PacketId) -> Result<(), NodeDbError> {
    let Some(entry) = super::get_outbox(txn, id)? else {
        return Ok(());
    };
    if entry.kind != PacketKind::Document || entry.action.is_some() {
        return Ok(());
    }
    let mut rows = Vec::new();
    {
        let t = txn.open_table(super::TRACKING).db()?;
        for row in t.range((id.as_bytes(), "")..).db()? {
            let (k, v) = row.db()?;
            let (pid, recipient) = k.value();
            if pid != id.as_bytes() {
                break;
            }
            rows.push((recipient.to_string(), decode::<super::Tracking>(v.value())?));
        }
    }
    if let Some(reason) = sent_finished(&rows) {
        feed_append(txn, id, &entry.document_id, Direction::Sent, &reason)?;
    }
    Ok(())
}

/// Appends received document `id` to the feed, in the caller's transaction, once it is
/// finished.
pub(super) fn note_received(txn: &WriteTransaction, id: &PacketId) -> Result<(), NodeDbError> {
    let entry = {
        let t = txn.open_table(INBOX).db()?;
        let v = t.get(id.as_bytes()).db()?;
        match v {
            Some(v) => decode::<InboxEntry>(v.value())?,
            None => return Ok(()),
        }
    };
    if entry.kind != PacketKind::Document || entry.action.is_some() {
        return Ok(());
    }
    if let Some(reason) = received_finished(&entry) {
        feed_append(txn, id, &entry.document_id, Direction::Received, &reason)?;
    }
    Ok(())
}
