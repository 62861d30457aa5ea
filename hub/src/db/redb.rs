//! The hub's embedded backend: agencies, packets, delivery rows, queues and receipts in one
//! redb file (see [`super`] for the interface and the guarantees both backends keep).
//!
//! Tables (keys → values):
//! - `agencies`: code → [`Agency`] (JSON)
//! - `packets`: packet id → signed bytes, exactly as received
//! - `packet_meta`: packet id → [`PacketMeta`] (JSON; includes the signed submission receipt)
//! - `business_keys`: "from␟document id␟bussiness doc type" → packet id (documents only)
//! - `deliveries`: (packet id, recipient) → [`Delivery`] (JSON; one row per routed recipient)
//! - `queue`: (recipient, urgency rank, seq) → packet id: what each recipient still has to fetch
//! - `sender_receipts`: (sender, seq) → (packet id, recipient): delivery receipts to collect
//! - `by_document`: (owner, document id, packet id) → (): every packet of one business
//!   document, for tracking. The owner is the agency that issued the document: a document
//!   packet's sender; for a status packet the agency it goes to, except a take-back request
//!   (13), which the issuer sends and is filed under the issuer. A status is filed under the
//!   DocumentId it answers (`ResponseFor/DocumentId`). An action packet (revoke, update or
//!   replace: BussinessDocType 1–3) is filed under its own DocumentId *and* under the
//!   DocumentId it acts on (`Bussiness/DocumentId`), so the original's record finds it.
//! - `alerts_open`, `alerts_past`, `alert_counters`: operator incidents ([`crate::alerts`])
//! - `mail_queue`, `mail_counters`: the operators' mail, queued with the incident it reports
//!   ([`mail::queue`])
//! - `counters`: name → u64 (also `layout`: the version of the rows' layout, see
//!   [`LAYOUT_VERSION`])
//!
//! Invariants:
//! - A packet, its meta (with its receipt), its business key, its `by_document` rows and all
//!   its delivery and queue rows are written in one transaction: a submission is entirely
//!   there or not at all.
//! - Marking a delivery done, storing its receipt, removing its queue row and queueing the
//!   receipt for the sender happen in one transaction.
//! - A recipient can only reach packets for which a delivery row names it.
//! - A database written with an older row layout is upgraded once, inside the transaction
//!   that opens it, before anything else reads it.

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition, WriteTransaction};

use edxml::{Packet, ReadOptions};
use exchange::clock::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;
use store::codec::{decode, encode};
use store::{Blobs, DbResult, Store, StoreError, WriterStats};

use super::{
    Agency, AlertsView, Delivery, DocumentHistory, HubDbError, InlineBudget, NewPacket, PacketMeta,
    PendingPacket, PendingSummary, Submitted, Traffic, business_key, document_owner, urgency_rank,
};
use crate::alerts::{Changes, Condition, Incident};
use crate::ledger::{Found, Search};

pub(super) const AGENCIES: TableDefinition<&str, &[u8]> = TableDefinition::new("agencies");
pub(super) const PACKETS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("packets");
pub(crate) const PACKET_META: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("packet_meta");
pub(super) const BUSINESS_KEYS: TableDefinition<&str, &[u8; 32]> =
    TableDefinition::new("business_keys");
pub(crate) const DELIVERIES: TableDefinition<(&[u8; 32], &str), &[u8]> =
    TableDefinition::new("deliveries");
pub(super) const QUEUE: TableDefinition<(&str, u8, u64), &[u8; 32]> = TableDefinition::new("queue");
pub(super) const SENDER_RECEIPTS: TableDefinition<(&str, u64), (&[u8; 32], &str)> =
    TableDefinition::new("sender_receipts");
pub(super) const BY_DOCUMENT: TableDefinition<(&str, &str, &[u8; 32]), ()> =
    TableDefinition::new("by_document");
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

fn next_seq(txn: &WriteTransaction, name: &str) -> Result<u64, StoreError> {
    let mut counters = txn.open_table(COUNTERS).db()?;
    let next = counters.get(name).db()?.map(|v| v.value()).unwrap_or(0) + 1;
    counters.insert(name, next).db()?;
    Ok(next)
}

/// Typed access to the embedded hub database.
#[derive(Clone, Debug)]
pub struct RedbHub {
    store: Store,
}

impl RedbHub {
    /// Opens or creates the hub database file.
    pub fn open(path: &std::path::Path) -> Result<RedbHub, StoreError> {
        let store = Store::open_with(path, |txn, blobs| {
            txn.open_table(AGENCIES).db()?;
            txn.open_table(PACKETS).db()?;
            txn.open_table(PACKET_META).db()?;
            txn.open_table(BUSINESS_KEYS).db()?;
            txn.open_table(DELIVERIES).db()?;
            txn.open_table(QUEUE).db()?;
            txn.open_table(SENDER_RECEIPTS).db()?;
            txn.open_table(BY_DOCUMENT).db()?;
            txn.open_table(COUNTERS).db()?;
            crate::alerts::create_tables(txn)?;
            mail::queue::create_tables(txn)?;
            crate::ledger::create_tables(txn)?;
            upgrade_layout(txn, blobs)
        })?;
        Ok(RedbHub { store })
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(super) fn writer_stats(&self) -> WriterStats {
        self.store.writer_stats()
    }

    pub(super) fn observe_batches(&self, observer: store::BatchObserver) {
        self.store.observe_batches(observer);
    }

    pub(super) fn mail_queue(&self) -> Arc<dyn mail::queue::MailStore> {
        Arc::new(self.store.clone())
    }

    // ---- ledger and alerts (their tables live in `crate::ledger` and `crate::alerts`) ----

    pub(super) async fn traffic(
        &self,
        day: Timestamp,
        week: Timestamp,
        now: Timestamp,
        hours: u64,
    ) -> Result<Traffic, HubDbError> {
        Ok(self
            .store
            .read(move |t| {
                Ok::<_, StoreError>(Traffic {
                    today: crate::ledger::documents_since(t, day)?,
                    week: crate::ledger::documents_since(t, week)?,
                    hours: crate::ledger::hourly(t, now, hours)?,
                })
            })
            .await?)
    }

    pub(super) async fn search(&self, q: Search, limit: usize) -> Result<Found, HubDbError> {
        Ok(self
            .store
            .read(move |t| crate::ledger::search(t, &q, limit))
            .await?)
    }

    pub(super) async fn open_incidents(&self) -> Result<Vec<Incident>, HubDbError> {
        Ok(self.store.read(crate::alerts::open_incidents).await?)
    }

    pub(super) async fn alerts_view(
        &self,
        past: usize,
        mail: usize,
    ) -> Result<AlertsView, HubDbError> {
        Ok(self
            .store
            .read(move |t| {
                let (_, mail_sent) = mail::queue::counts(t)?;
                Ok::<_, StoreError>(AlertsView {
                    open: crate::alerts::open_incidents(t)?,
                    past: crate::alerts::past_incidents(t, past)?,
                    mail_waiting: mail::queue::waiting(t, mail)?,
                    mail_sent,
                })
            })
            .await?)
    }

    pub(super) async fn alert_counts(&self) -> Result<(u64, u64), HubDbError> {
        Ok(self
            .store
            .read(|t| {
                let open = crate::alerts::open_incidents(t)?.len() as u64;
                let (queued, _) = mail::queue::counts(t)?;
                Ok::<_, StoreError>((open, queued))
            })
            .await?)
    }

    pub(super) async fn apply_alerts(
        &self,
        conditions: Vec<Condition>,
        to: Vec<String>,
        console_url: Option<String>,
        now_ms: u64,
    ) -> Result<Changes, HubDbError> {
        Ok(self
            .store
            .write(move |txn| {
                crate::alerts::apply(txn, &conditions, &to, console_url.as_deref(), now_ms)
            })
            .await?)
    }

    // ---- agencies ----

    /// Registers an agency; refuses if the code exists.
    pub async fn add_agency(&self, agency: Agency) -> Result<(), HubDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(AGENCIES).db()?;
                if t.get(agency.code.as_str()).db()?.is_some() {
                    return Err(HubDbError::AgencyExists(agency.code.clone()));
                }
                t.insert(agency.code.as_str(), encode(&agency)?.as_slice())
                    .db()?;
                Ok(())
            })
            .await
    }

    /// Changes an agency with `f` (suspend, resume, add a fingerprint …).
    pub async fn update_agency(
        &self,
        code: &str,
        f: impl Fn(&mut Agency) + Send + 'static,
    ) -> Result<Agency, HubDbError> {
        let code = code.to_string();
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(AGENCIES).db()?;
                let mut agency: Agency = match t.get(code.as_str()).db()? {
                    Some(v) => decode(v.value())?,
                    None => return Err(HubDbError::UnknownAgency(code.clone())),
                };
                f(&mut agency);
                t.insert(code.as_str(), encode(&agency)?.as_slice()).db()?;
                Ok(agency)
            })
            .await
    }

    /// All agencies, by code.
    pub async fn agencies(&self) -> Result<Vec<Agency>, HubDbError> {
        self.store
            .read(|txn| {
                let t = txn.open_table(AGENCIES).db()?;
                let mut out = Vec::new();
                for row in t.iter().db()? {
                    let (_, v) = row.db()?;
                    out.push(decode(v.value())?);
                }
                Ok(out)
            })
            .await
    }

    /// One agency.
    pub async fn agency(&self, code: &str) -> Result<Option<Agency>, HubDbError> {
        let code = code.to_string();
        self.store
            .read(move |txn| {
                let t = txn.open_table(AGENCIES).db()?;
                match t.get(code.as_str()).db()? {
                    Some(v) => Ok(Some(decode(v.value())?)),
                    None => Ok(None),
                }
            })
            .await
    }

    // ---- submissions ----

    /// Commits a verified packet with its receipt and one delivery row per accepted recipient.
    pub async fn submit(&self, packet: NewPacket) -> Result<Submitted, HubDbError> {
        let blobs = self.store.blobs().clone();
        self.store
            .write(move |txn| {
                let id = packet.id;
                let meta = &packet.meta;
                {
                    let metas = txn.open_table(PACKET_META).db()?;
                    if let Some(v) = metas.get(id.as_bytes()).db()? {
                        let old: PacketMeta = decode(v.value())?;
                        return Ok(Submitted::Again {
                            receipt: old.receipt,
                        });
                    }
                }
                if let Some(bdt) = meta.business_doc_type {
                    let key = business_key(&meta.from, &meta.document_id, bdt);
                    let mut keys = txn.open_table(BUSINESS_KEYS).db()?;
                    if let Some(existing) = keys.get(key.as_str()).db()? {
                        return Err(HubDbError::DuplicateBusinessKey {
                            from: meta.from.clone(),
                            document_id: meta.document_id.clone(),
                            business_doc_type: bdt,
                            existing: PacketId(*existing.value()).to_hex(),
                        });
                    }
                    keys.insert(key.as_str(), id.as_bytes()).db()?;
                }
                let stored = blobs.put(txn, &packet.bytes)?;
                txn.open_table(PACKETS)
                    .db()?
                    .insert(id.as_bytes(), stored.as_slice())
                    .db()?;
                txn.open_table(PACKET_META)
                    .db()?
                    .insert(id.as_bytes(), encode(meta)?.as_slice())
                    .db()?;
                index_by_document(txn, id, meta)?;
                if meta.kind == PacketKind::Document {
                    crate::ledger::record_document(txn, id, meta.accepted_at)?;
                }
                let rank = urgency_rank(meta.priority);
                for recipient in &meta.recipients {
                    let seq = next_seq(txn, "queue")?;
                    txn.open_table(QUEUE)
                        .db()?
                        .insert((recipient.as_str(), rank, seq), id.as_bytes())
                        .db()?;
                    let d = Delivery {
                        queued_at: meta.accepted_at,
                        delivered_at: None,
                        receipt: None,
                        queue_key: (rank, seq),
                    };
                    txn.open_table(DELIVERIES)
                        .db()?
                        .insert((id.as_bytes(), recipient.as_str()), encode(&d)?.as_slice())
                        .db()?;
                }
                Ok(Submitted::New {
                    receipt: meta.receipt.clone(),
                })
            })
            .await
    }

    // ---- delivery ----

    /// Packets waiting for `recipient`, most urgent first, then oldest first, the small ones
    /// within `budget` with their bytes.
    pub async fn pending(
        &self,
        recipient: &str,
        limit: usize,
        budget: InlineBudget,
    ) -> Result<Vec<PendingPacket>, HubDbError> {
        let recipient = recipient.to_string();
        let blobs = self.store.blobs().clone();
        self.store
            .read(move |txn| {
                let queue = txn.open_table(QUEUE).db()?;
                let metas = txn.open_table(PACKET_META).db()?;
                let packets = txn.open_table(PACKETS).db()?;
                let mut out = Vec::new();
                let mut used = 0u64;
                let range =
                    (recipient.as_str(), 0u8, 0u64)..=(recipient.as_str(), u8::MAX, u64::MAX);
                for row in queue.range(range).db()? {
                    let (_, v) = row.db()?;
                    let id = PacketId(*v.value());
                    let meta: PacketMeta = match metas.get(id.as_bytes()).db()? {
                        Some(m) => decode(m.value())?,
                        None => {
                            return Err(HubDbError::Store(StoreError::Corrupt(format!(
                                "queued packet {id} has no meta"
                            ))));
                        }
                    };
                    let bytes = if budget.take(&mut used, meta.size) {
                        packets
                            .get(id.as_bytes())
                            .db()?
                            .map(|r| blobs.load(r.value()))
                            .transpose()?
                            // Listed sizes are the stored sizes; a disagreement is fetched.
                            .filter(|b| b.len() as u64 == meta.size)
                    } else {
                        None
                    };
                    out.push(PendingPacket { id, meta, bytes });
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Per recipient with anything pending: how many deliveries wait and when the oldest was
    /// queued. One read snapshot over the queue (its size is the backlog, not the history).
    pub async fn pending_summary(&self) -> Result<Vec<PendingSummary>, HubDbError> {
        self.store
            .read(move |txn| {
                let queue = txn.open_table(QUEUE).db()?;
                let deliveries = txn.open_table(DELIVERIES).db()?;
                // recipient -> (count, lowest seq, its packet id)
                let mut per: BTreeMap<String, (u64, u64, PacketId)> = BTreeMap::new();
                for row in queue.iter().db()? {
                    let (k, v) = row.db()?;
                    let (recipient, _rank, seq) = k.value();
                    let id = PacketId(*v.value());
                    let e = per.entry(recipient.to_string()).or_insert((0, seq, id));
                    e.0 += 1;
                    if seq < e.1 {
                        e.1 = seq;
                        e.2 = id;
                    }
                }
                let mut out = Vec::with_capacity(per.len());
                for (recipient, (count, _, id)) in per {
                    let oldest = match deliveries.get((id.as_bytes(), recipient.as_str())).db()? {
                        Some(d) => Some(decode::<Delivery>(d.value())?.queued_at),
                        None => None,
                    };
                    out.push(PendingSummary {
                        recipient,
                        count,
                        oldest_queued_at: oldest,
                    });
                }
                Ok(out)
            })
            .await
    }

    /// A stored packet, exactly as received, with its meta (for operators).
    pub async fn packet(&self, id: PacketId) -> Result<Option<(Vec<u8>, PacketMeta)>, HubDbError> {
        let blobs = self.store.blobs().clone();
        self.store
            .read(move |txn| {
                let packets = txn.open_table(PACKETS).db()?;
                let metas = txn.open_table(PACKET_META).db()?;
                let (Some(b), Some(m)) = (
                    packets.get(id.as_bytes()).db()?,
                    metas.get(id.as_bytes()).db()?,
                ) else {
                    return Ok(None);
                };
                Ok(Some((blobs.load(b.value())?, decode(m.value())?)))
            })
            .await
    }

    /// The packet bytes, if a delivery row names `recipient` (pending or delivered).
    pub async fn fetch_for(
        &self,
        recipient: &str,
        id: PacketId,
    ) -> Result<Option<Vec<u8>>, HubDbError> {
        let recipient = recipient.to_string();
        let blobs = self.store.blobs().clone();
        self.store
            .read(move |txn| {
                let deliveries = txn.open_table(DELIVERIES).db()?;
                if deliveries
                    .get((id.as_bytes(), recipient.as_str()))
                    .db()?
                    .is_none()
                {
                    return Ok(None);
                }
                let packets = txn.open_table(PACKETS).db()?;
                Ok(packets
                    .get(id.as_bytes())
                    .db()?
                    .map(|v| blobs.load(v.value()))
                    .transpose()?)
            })
            .await
    }

    /// The meta and delivery row of many packets in one read snapshot, in the order asked; packets
    /// without a delivery row for `recipient` are left out.
    pub async fn metas_for(
        &self,
        recipient: &str,
        ids: Vec<PacketId>,
    ) -> Result<Vec<(PacketId, PacketMeta, Delivery)>, HubDbError> {
        let recipient = recipient.to_string();
        self.store
            .read(move |txn| {
                let deliveries = txn.open_table(DELIVERIES).db()?;
                let metas = txn.open_table(PACKET_META).db()?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let Some(d) = deliveries.get((id.as_bytes(), recipient.as_str())).db()? else {
                        continue;
                    };
                    let d: Delivery = decode(d.value())?;
                    if let Some(m) = metas.get(id.as_bytes()).db()? {
                        out.push((id, decode(m.value())?, d));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Records deliveries to `recipient` with their (already signed) receipts. Idempotent: a
    /// packet delivered before keeps and returns its first receipt. Ids without a delivery row
    /// for `recipient` are left out of the answer.
    pub async fn record_deliveries(
        &self,
        recipient: &str,
        acks: Vec<(PacketId, Timestamp, String)>, // (id, delivered_at, signed receipt)
    ) -> Result<Vec<(PacketId, String)>, HubDbError> {
        let recipient = recipient.to_string();
        self.store
            .write(move |txn| {
                let mut out = Vec::new();
                for (id, at, receipt) in &acks {
                    let mut deliveries = txn.open_table(DELIVERIES).db()?;
                    let Some(row) = deliveries.get((id.as_bytes(), recipient.as_str())).db()?
                    else {
                        continue;
                    };
                    let mut d: Delivery = decode(row.value())?;
                    drop(row);
                    if let Some(existing) = &d.receipt {
                        out.push((*id, existing.clone()));
                        continue;
                    }
                    d.delivered_at = Some(*at);
                    d.receipt = Some(receipt.clone());
                    deliveries
                        .insert((id.as_bytes(), recipient.as_str()), encode(&d)?.as_slice())
                        .db()?;
                    drop(deliveries);
                    let (rank, seq) = d.queue_key;
                    txn.open_table(QUEUE)
                        .db()?
                        .remove((recipient.as_str(), rank, seq))
                        .db()?;
                    let (sender, kind) = {
                        let metas = txn.open_table(PACKET_META).db()?;
                        let m = metas.get(id.as_bytes()).db()?.ok_or_else(|| {
                            StoreError::Corrupt(format!("delivered packet {id} has no meta"))
                        })?;
                        let m = decode::<PacketMeta>(m.value())?;
                        (m.from, m.kind)
                    };
                    if kind == PacketKind::Document {
                        crate::ledger::record_delivery(txn, *at)?;
                    }
                    let rseq = next_seq(txn, "receipts")?;
                    txn.open_table(SENDER_RECEIPTS)
                        .db()?
                        .insert((sender.as_str(), rseq), (id.as_bytes(), recipient.as_str()))
                        .db()?;
                    out.push((*id, receipt.clone()));
                }
                Ok(out)
            })
            .await
    }

    /// Delivery receipts waiting for `sender` with a sequence number above `after`, in order:
    /// (seq, packet id, recipient, receipt).
    pub async fn receipts_for_sender(
        &self,
        sender: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PacketId, String, String)>, HubDbError> {
        let sender = sender.to_string();
        self.store
            .read(move |txn| {
                let t = txn.open_table(SENDER_RECEIPTS).db()?;
                let deliveries = txn.open_table(DELIVERIES).db()?;
                let mut out = Vec::new();
                for row in t
                    .range((sender.as_str(), after.saturating_add(1))..=(sender.as_str(), u64::MAX))
                    .db()?
                {
                    let (k, v) = row.db()?;
                    let (_, seq) = k.value();
                    let (id, recipient) = v.value();
                    let id = PacketId(*id);
                    let receipt = deliveries
                        .get((id.as_bytes(), recipient))
                        .db()?
                        .map(|d| decode::<Delivery>(d.value()))
                        .transpose()?
                        .and_then(|d| d.receipt)
                        .ok_or_else(|| {
                            StoreError::Corrupt(format!("receipt row {seq} has no receipt"))
                        })?;
                    out.push((seq, id, recipient.to_string(), receipt));
                    if out.len() >= limit {
                        break;
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Forgets collected receipt rows of `sender` (the receipts stay with the deliveries).
    pub async fn ack_receipts(&self, sender: &str, seqs: Vec<u64>) -> Result<(), HubDbError> {
        let sender = sender.to_string();
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(SENDER_RECEIPTS).db()?;
                for seq in &seqs {
                    t.remove((sender.as_str(), *seq)).db()?;
                }
                Ok(())
            })
            .await
    }

    /// Every packet of one business document, read in one snapshot: the document, the
    /// statuses about it, the actions (revoke, update, replace) on it, and the packets filed
    /// under each action's own DocumentId (the statuses answering it); each with every
    /// recipient's delivery state. Each packet appears once.
    pub async fn document_history(
        &self,
        owner: &str,
        document_id: &str,
    ) -> Result<DocumentHistory, HubDbError> {
        let owner = owner.to_string();
        let document_id = document_id.to_string();
        self.store
            .read(move |txn| {
                let idx = txn.open_table(BY_DOCUMENT).db()?;
                let metas = txn.open_table(PACKET_META).db()?;
                let deliveries = txn.open_table(DELIVERIES).db()?;
                let mut ids: Vec<PacketId> = Vec::new();
                let filed = |doc: &str, ids: &mut Vec<PacketId>| -> Result<(), StoreError> {
                    let lo = (owner.as_str(), doc, &[0u8; 32]);
                    let hi = (owner.as_str(), doc, &[0xffu8; 32]);
                    for row in idx.range(lo..=hi).db()? {
                        let (k, _) = row.db()?;
                        let id = PacketId(*k.value().2);
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                    Ok(())
                };
                filed(&document_id, &mut ids)?;
                let mut out = Vec::new();
                let mut i = 0;
                while i < ids.len() {
                    let id = ids[i];
                    i += 1;
                    let Some(m) = metas.get(id.as_bytes()).db()? else {
                        continue;
                    };
                    let meta: PacketMeta = decode(m.value())?;
                    if meta.from == owner && meta.action_target() == Some(document_id.as_str()) {
                        filed(&meta.document_id, &mut ids)?;
                    }
                    let mut per = BTreeMap::new();
                    for r in &meta.recipients {
                        if let Some(d) = deliveries.get((id.as_bytes(), r.as_str())).db()? {
                            per.insert(r.clone(), decode(d.value())?);
                        }
                    }
                    out.push((id, meta, per));
                }
                Ok(out)
            })
            .await
    }
}

/// Files a packet in `by_document`: under its owner and its DocumentId, and an action packet
/// also under the DocumentId it acts on.
fn index_by_document(
    txn: &WriteTransaction,
    id: PacketId,
    meta: &PacketMeta,
) -> Result<(), StoreError> {
    let owner = document_owner(meta);
    let mut idx = txn.open_table(BY_DOCUMENT).db()?;
    idx.insert(
        (owner.as_str(), meta.document_id.as_str(), id.as_bytes()),
        (),
    )
    .db()?;
    if let Some(target) = meta.action_target() {
        idx.insert((owner.as_str(), target, id.as_bytes()), ())
            .db()?;
    }
    Ok(())
}

/// The layout of the rows this code writes. Version 2: status metas carry their timestamp,
/// staff and reason, action metas their target; take-back requests (13) are filed under
/// their issuer and actions also under their target in `by_document`. Version 1 (no
/// `layout` counter) filed a 13 under its addressee. Version 3: document metas carry their
/// subject and number/notation, and the operators' ledger ([`crate::ledger`]) indexes every
/// document packet by time and counts documents and deliveries per hour.
pub const LAYOUT_VERSION: u64 = 3;

/// Brings a database written by an older version to [`LAYOUT_VERSION`], once, inside the
/// opening transaction: re-reads the stored bytes of status and action packets to fill in
/// what their metas lack, and re-files them in `by_document`. Bytes that cannot be read again
/// leave those fields empty (tracking then falls back to the hub's times).
fn upgrade_layout(txn: &WriteTransaction, blobs: &Blobs) -> Result<(), StoreError> {
    let version = txn
        .open_table(COUNTERS)
        .db()?
        .get("layout")
        .db()?
        .map_or(1, |v| v.value());
    if version >= LAYOUT_VERSION {
        return Ok(());
    }
    if version < 2 {
        upgrade_to_2(txn, blobs)?;
    }
    upgrade_to_3(txn, blobs)?;
    txn.open_table(COUNTERS)
        .db()?
        .insert("layout", LAYOUT_VERSION)
        .db()?;
    Ok(())
}

/// Reads a stored packet again, with limits wide enough for what the hub accepted.
fn reread(
    txn: &WriteTransaction,
    blobs: &Blobs,
    id: PacketId,
) -> Result<Option<Packet>, StoreError> {
    let bytes = txn
        .open_table(PACKETS)
        .db()?
        .get(id.as_bytes())
        .db()?
        .map(|v| blobs.load(v.value()))
        .transpose()?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    let mut opts = ReadOptions::default();
    opts.limits.max_bytes = opts.limits.max_bytes.max(bytes.len());
    opts.limits.max_text_len = opts.limits.max_text_len.max(bytes.len());
    match edxml::read(&bytes, &opts) {
        Ok(o) => Ok(Some(o.packet)),
        Err(e) => {
            tracing::warn!(packet = %id, error = %e,
                "hub database upgrade: stored packet cannot be read again; its tracking keeps the hub's times");
            Ok(None)
        }
    }
}

/// Version 3: subjects and numbers in document metas; the ledger's time index and hourly
/// counts rebuilt from the packets and deliveries already stored.
fn upgrade_to_3(txn: &WriteTransaction, blobs: &Blobs) -> Result<(), StoreError> {
    let mut docs: Vec<(PacketId, PacketMeta)> = Vec::new();
    {
        let metas = txn.open_table(PACKET_META).db()?;
        for row in metas.iter().db()? {
            let (k, v) = row.db()?;
            let meta: PacketMeta = decode(v.value())?;
            if meta.kind == PacketKind::Document {
                docs.push((PacketId(*k.value()), meta));
            }
        }
    }
    for (id, mut meta) in docs {
        if let Some(packet) = reread(txn, blobs, id)? {
            meta.record_business(&packet);
            txn.open_table(PACKET_META)
                .db()?
                .insert(id.as_bytes(), encode(&meta)?.as_slice())
                .db()?;
        }
        if !crate::ledger::record_document(txn, id, meta.accepted_at)? {
            continue;
        }
        let mut delivered = Vec::new();
        {
            let deliveries = txn.open_table(DELIVERIES).db()?;
            for r in &meta.recipients {
                if let Some(d) = deliveries.get((id.as_bytes(), r.as_str())).db()?
                    && let Some(at) = decode::<Delivery>(d.value())?.delivered_at
                {
                    delivered.push(at);
                }
            }
        }
        for at in delivered {
            crate::ledger::record_delivery(txn, at)?;
        }
    }
    Ok(())
}

/// Version 2: status metas gain their timestamp, staff and reason, actions their target;
/// both are filed again in `by_document`.
fn upgrade_to_2(txn: &WriteTransaction, blobs: &Blobs) -> Result<(), StoreError> {
    let mut todo: Vec<(PacketId, PacketMeta)> = Vec::new();
    {
        let metas = txn.open_table(PACKET_META).db()?;
        for row in metas.iter().db()? {
            let (k, v) = row.db()?;
            let meta: PacketMeta = decode(v.value())?;
            if meta.kind == PacketKind::Status || matches!(meta.business_doc_type, Some(1..=3)) {
                todo.push((PacketId(*k.value()), meta));
            }
        }
    }
    for (id, mut meta) in todo {
        let old_owner = if meta.kind == PacketKind::Status {
            meta.recipients.first().cloned().unwrap_or_default()
        } else {
            meta.from.clone()
        };
        if let Some(packet) = reread(txn, blobs, id)? {
            meta.record_business(&packet);
        }
        txn.open_table(BY_DOCUMENT)
            .db()?
            .remove((old_owner.as_str(), meta.document_id.as_str(), id.as_bytes()))
            .db()?;
        index_by_document(txn, id, &meta)?;
        txn.open_table(PACKET_META)
            .db()?
            .insert(id.as_bytes(), encode(&meta)?.as_slice())
            .db()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edxml::StatusCode;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn meta(from: &str, doc: &str, to: &[&str], priority: u8) -> PacketMeta {
        PacketMeta {
            kind: PacketKind::Document,
            from: from.into(),
            document_id: doc.into(),
            business_doc_type: Some(0),
            status_code: None,
            priority,
            size: 10,
            accepted_at: ts("2026-11-23T00:00:00Z"),
            recipients: to.iter().map(|s| s.to_string()).collect(),
            refused: vec![],
            receipt: format!("receipt for {doc}"),
            status_time: None,
            staff: None,
            reason: None,
            target_document_id: None,
            removed_recipients: Vec::new(),
            subject: None,
            code: None,
        }
    }

    fn packet(bytes: &[u8], m: PacketMeta) -> NewPacket {
        NewPacket {
            id: PacketId::of(bytes),
            bytes: bytes.to_vec(),
            meta: m,
        }
    }

    // The rules both backends keep (idempotent submissions, unique business keys, urgency
    // order, deliveries recorded once, receipts for the sender) are tested against both in
    // `hub/tests/store.rs`; what follows is particular to the redb file.

    fn status_bytes(from: &str, to: &str, doc: &str, code: StatusCode, at: &str) -> Vec<u8> {
        use edxml::{
            AgencyCode, EdxmlDateTime, Organization, ResponseFor, StaffInfo, StatusPacket,
        };
        let org = |c: &str| Organization::new(AgencyCode::parse_strict(c).unwrap(), "Cơ quan");
        let mut s = StatusPacket::new(
            org(from),
            ResponseFor {
                organ_id: AgencyCode::parse_strict(to).unwrap(),
                code: None,
                promulgation_date: None,
                document_id: doc.into(),
            },
            code,
            EdxmlDateTime::from_offset(ts(at).to_offset_date_time()),
        );
        s.description = Some("Văn bản có sai sót".into());
        s.staff_info = Some(StaffInfo {
            staff: Some("Nguyễn Văn A".into()),
            department: Some("Văn thư".into()),
            ..StaffInfo::default()
        });
        edxml::write(&Packet::Status(s)).unwrap()
    }

    #[tokio::test]
    async fn the_ledger_counts_and_finds_documents_and_is_rebuilt_by_the_upgrade() {
        use crate::ledger::{self, DeliveryState, Search, StateFilter};
        let dir = tempfile::tempdir().unwrap();
        let db = RedbHub::open(&dir.path().join("hub.redb")).unwrap();
        let mut a = meta("G", "G,2026/11/23,1/VPCP", &["B", "C"], 0);
        a.subject = Some("Về việc <kiểm tra> công tác".into());
        a.code = Some("1/VPCP".into());
        a.refused = vec![("D".into(), "agency is suspended at this hub".into())];
        let mut b = meta("H", "H,2026/11/23,7/UBND", &["B"], 0);
        b.accepted_at = ts("2026-11-23T05:30:00Z");
        b.subject = Some("Báo cáo tuần".into());
        b.code = Some("7/UBND".into());
        let ida = PacketId::of(b"a");
        db.submit(packet(b"a", a)).await.unwrap();
        db.submit(packet(b"b", b)).await.unwrap();
        // Submitting the same bytes again counts nothing twice.
        db.submit(packet(
            b"a",
            meta("G", "G,2026/11/23,1/VPCP", &["B", "C"], 0),
        ))
        .await
        .unwrap();
        db.record_deliveries("B", vec![(ida, ts("2026-11-23T00:10:00Z"), "r".into())])
            .await
            .unwrap();

        let read = |q: Search| {
            let db = db.clone();
            async move {
                db.store()
                    .read(move |t| ledger::search(t, &q, 100))
                    .await
                    .unwrap()
            }
        };
        let all = read(Search::default()).await;
        assert_eq!(all.rows.len(), 4, "{:#?}", all.rows);
        assert_eq!(all.rows[0].sender, "H", "newest first");
        let by_text = read(Search {
            text: "KIỂM TRA".into(),
            ..Search::default()
        })
        .await;
        assert_eq!(by_text.rows.len(), 3, "B, C and the refused D");
        let pending = read(Search {
            state: StateFilter::Pending,
            ..Search::default()
        })
        .await;
        let who: Vec<(&str, &str)> = pending
            .rows
            .iter()
            .map(|r| (r.sender.as_str(), r.recipient.as_str()))
            .collect();
        assert_eq!(who, [("H", "B"), ("G", "C")]);
        let refused = read(Search {
            state: StateFilter::Refused,
            ..Search::default()
        })
        .await;
        assert_eq!(refused.rows.len(), 1);
        assert_eq!(refused.rows[0].state, DeliveryState::Refused);
        assert_eq!(
            refused.rows[0].refusal.as_deref(),
            Some("agency is suspended at this hub")
        );
        let early = read(Search {
            to_ms: Some(ts("2026-11-23T01:00:00Z").unix_ms()),
            recipient: "B".into(),
            ..Search::default()
        })
        .await;
        assert_eq!(early.rows.len(), 1);
        assert_eq!(early.rows[0].state, DeliveryState::Delivered);
        assert_eq!(early.rows[0].code.as_deref(), Some("1/VPCP"));

        let hours = |db: RedbHub| async move {
            db.store()
                .read(|t| ledger::hourly(t, ts("2026-11-23T06:10:00Z"), 7))
                .await
                .unwrap()
        };
        let before = hours(db.clone()).await;
        assert_eq!(before.len(), 7);
        assert_eq!((before[0].documents, before[0].deliveries), (1, 1));
        assert_eq!((before[5].documents, before[5].deliveries), (1, 0));
        assert_eq!(before[6].documents, 0);

        // A database from layout 2 has no ledger: the upgrade builds the same one.
        db.store()
            .write(|txn| {
                txn.delete_table(redb::TableDefinition::<(u64, &[u8; 32]), ()>::new(
                    "doc_index",
                ))
                .db()?;
                txn.delete_table(redb::TableDefinition::<(u64, &str), u64>::new("hourly"))
                    .db()?;
                crate::ledger::create_tables(txn)?;
                txn.open_table(COUNTERS).db()?.insert("layout", 2).db()?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert!(read(Search::default()).await.rows.is_empty());
        {
            let blobs = db.store().blobs().clone();
            db.store()
                .write(move |txn| upgrade_layout(txn, &blobs))
                .await
                .unwrap();
        }
        assert_eq!(read(Search::default()).await.rows.len(), 4);
        assert_eq!(hours(db.clone()).await, before);
        let since = db
            .store()
            .read(|t| ledger::documents_since(t, ts("2026-11-23T05:00:00Z")))
            .await
            .unwrap();
        assert_eq!(since, 1);
    }

    #[tokio::test]
    async fn old_rows_decode_and_are_upgraded_once() {
        const G22: &str = "000.00.00.G22";
        const H41: &str = "000.00.00.H41";
        // A row written before the status fields existed still decodes.
        let old = r#"{"kind":"status","from":"000.00.00.G22","document_id":"d",
            "business_doc_type":null,"status_code":"13","priority":0,"size":5,
            "accepted_at":"2026-11-23T10:00:09Z","recipients":["000.00.00.H41"],
            "refused":[],"receipt":"r"}"#;
        let old_meta: PacketMeta = decode(old.as_bytes()).unwrap();
        assert_eq!(old_meta.status_time, None);

        let dir = tempfile::tempdir().unwrap();
        let db = RedbHub::open(&dir.path().join("hub.redb")).unwrap();
        db.submit(packet(b"doc", meta(G22, "d", &[H41], 0)))
            .await
            .unwrap();
        // Layout 1: a take-back request (13) filed under its addressee, without its fields.
        let bytes = status_bytes(G22, H41, "d", StatusCode::TakeBack, "2026-11-23T10:00:05Z");
        let id = PacketId::of(&bytes);
        db.store()
            .write(move |txn| {
                txn.open_table(PACKETS)
                    .db()?
                    .insert(id.as_bytes(), bytes.as_slice())
                    .db()?;
                txn.open_table(PACKET_META)
                    .db()?
                    .insert(id.as_bytes(), old.as_bytes())
                    .db()?;
                txn.open_table(BY_DOCUMENT)
                    .db()?
                    .insert((H41, "d", id.as_bytes()), ())
                    .db()?;
                txn.open_table(COUNTERS).db()?.remove("layout").db()?;
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        assert_eq!(db.document_history(H41, "d").await.unwrap().len(), 1);

        {
            let blobs = db.store().blobs().clone();
            db.store()
                .write(move |txn| upgrade_layout(txn, &blobs))
                .await
                .unwrap();
        }
        assert!(
            db.document_history(H41, "d").await.unwrap().is_empty(),
            "the 13 is no longer filed under its addressee"
        );
        let history = db.document_history(G22, "d").await.unwrap();
        let (_, m, _) = history
            .iter()
            .find(|(i, _, _)| *i == id)
            .expect("the 13 is filed under the issuer");
        assert_eq!(m.status_time, Some(ts("2026-11-23T10:00:05Z")));
        assert_eq!(m.staff.as_deref(), Some("Nguyễn Văn A, Văn thư"));
        assert_eq!(m.reason.as_deref(), Some("Văn bản có sai sót"));
        assert_eq!(history.len(), 2);
        // Once: the layout is recorded and a second run changes nothing.
        let version = db
            .store()
            .read(|txn| {
                Ok::<_, StoreError>(
                    txn.open_table(COUNTERS)
                        .db()?
                        .get("layout")
                        .db()?
                        .map(|v| v.value()),
                )
            })
            .await
            .unwrap();
        assert_eq!(version, Some(LAYOUT_VERSION));
        {
            let blobs = db.store().blobs().clone();
            db.store()
                .write(move |txn| upgrade_layout(txn, &blobs))
                .await
                .unwrap();
        }
        assert_eq!(db.document_history(G22, "d").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn actions_are_filed_under_their_target_and_their_answers_followed() {
        let dir = tempfile::tempdir().unwrap();
        let db = RedbHub::open(&dir.path().join("hub.redb")).unwrap();
        db.submit(packet(b"doc", meta("A", "d", &["B"], 0)))
            .await
            .unwrap();
        let mut revoke = meta("A", "d#revoke-1", &["B"], 0);
        revoke.business_doc_type = Some(1);
        revoke.target_document_id = Some("d".into());
        db.submit(packet(b"revoke", revoke)).await.unwrap();
        let mut answer = meta("B", "d#revoke-1", &["A"], 0);
        answer.kind = PacketKind::Status;
        answer.business_doc_type = None;
        answer.status_code = Some(StatusCode::Agreed);
        db.submit(packet(b"answer", answer)).await.unwrap();
        // Another document of A, and B's own document with the same id: not part of it.
        db.submit(packet(b"other", meta("A", "e", &["B"], 0)))
            .await
            .unwrap();
        db.submit(packet(b"b-own", meta("B", "d", &["A"], 0)))
            .await
            .unwrap();

        let history = db.document_history("A", "d").await.unwrap();
        let mut ids: Vec<PacketId> = history.iter().map(|(id, _, _)| *id).collect();
        ids.sort();
        let mut expected = vec![
            PacketId::of(b"doc"),
            PacketId::of(b"revoke"),
            PacketId::of(b"answer"),
        ];
        expected.sort();
        assert_eq!(
            ids, expected,
            "each packet once, the answer found via the action"
        );
        // The action keeps its own record too.
        assert_eq!(
            db.document_history("A", "d#revoke-1").await.unwrap().len(),
            2
        );
    }
}
