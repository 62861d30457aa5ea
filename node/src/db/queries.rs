//! Read-only queries for the clerk API and the workers (MVCC snapshots, never blocking the
//! writer).

use redb::{ReadableTable, ReadableTableMetadata};

use exchange::packet_id::PacketId;
use store::codec::decode;
use store::{DbResult, StoreError};

use super::*;

impl NodeDb {
    /// Sent packets, newest first, with their tracking rows; `kind` filters.
    pub async fn outbox_list(
        &self,
        kind: Option<PacketKind>,
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
                    if kind.is_some_and(|k| k != entry.kind) {
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

    /// The revoke/update/replace requests this node sent about `original`, oldest first.
    pub async fn actions_of(&self, original: String) -> Result<Vec<SentPacket>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(ACTIONS).db()?;
                let mut out = Vec::new();
                for row in t.range((original.as_str(), &[0u8; 32])..).db()? {
                    let (k, _) = row.db()?;
                    let (doc, id) = k.value();
                    if doc != original {
                        break;
                    }
                    let id = PacketId(*id);
                    let entry = read_outbox(txn, &id)?
                        .ok_or_else(|| corrupt(format!("action {id} is not in the outbox")))?;
                    let recipients = tracking_rows(txn, &id)?;
                    out.push(SentPacket {
                        id,
                        entry,
                        recipients,
                    });
                }
                out.sort_by_key(|p| p.entry.created_at.unix_ms());
                Ok(out)
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
                        && filter.priority.is_none_or(|p| p == e.priority)
                        && filter.since_ms.is_none_or(|t| e.received_at.unix_ms() >= t)
                        && filter.until_ms.is_none_or(|t| e.received_at.unix_ms() < t)
                        && filter.kind.is_none_or(|k| k == e.kind)
                        && filter.business.as_deref().is_none_or(|b| {
                            if e.kind != PacketKind::Document {
                                return false;
                            }
                            let (state, requested) = e.business_state();
                            if b == "take_back_requested" {
                                requested
                            } else {
                                state == b
                            }
                        })
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
                    out.sort_by_key(|e| std::cmp::Reverse(e.1.received_at.unix_ms()));
                    out.truncate(limit);
                    return Ok(out);
                }
                let by_time = txn.open_table(INBOX_BY_TIME).db()?;
                let lo = (filter.since_ms.unwrap_or(0), &[0u8; 32]);
                let hi = (filter.until_ms.unwrap_or(u64::MAX), &[0u8; 32]);
                for row in by_time.range(lo..hi).db()?.rev() {
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
        let blobs = self.store.blobs().clone();
        self.store
            .read(move |txn| {
                let Some(e) = read_inbox(txn, &id)? else {
                    return Ok(None);
                };
                let table = txn.open_table(PACKETS).db()?;
                let value = table
                    .get(id.as_bytes())
                    .db()?
                    .ok_or_else(|| corrupt(format!("inbox packet {id} has no bytes")))?;
                Ok(Some((e, blobs.load(value.value())?)))
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
                out.sort_by_key(|a| std::cmp::Reverse(a.last_seen));
                out.truncate(limit);
                Ok(out)
            })
            .await
    }

    /// The unmatched delivery receipts kept, oldest first.
    pub async fn unmatched_receipts(
        &self,
        limit: usize,
    ) -> Result<Vec<UnmatchedReceipt>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(UNMATCHED_RECEIPTS).db()?;
                let mut out: Vec<UnmatchedReceipt> = Vec::new();
                for row in t.iter().db()? {
                    let (_, v) = row.db()?;
                    out.push(decode(v.value())?);
                }
                out.sort_by_key(|u| u.stored_at);
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
                    inbox_total: txn.open_table(INBOX).db()?.len().db()?,
                    anomalies: txn.open_table(ANOMALIES).db()?.len().db()?,
                    unmatched_receipts: txn.open_table(UNMATCHED_RECEIPTS).db()?.len().db()?,
                })
            })
            .await
    }
}
