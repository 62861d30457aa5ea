//! Transactions of the sending side: committing packets to send, finding due ones,
//! recording submission attempts and delivery receipts.

use redb::ReadableTable;

use exchange::Timestamp;
use exchange::packet_id::PacketId;
use store::DbResult;
use store::codec::{decode, encode};

use super::*;

impl NodeDb {
    /// Commits a packet to send (packet, outbox row, queue key, `sent` index for documents,
    /// tracking rows). Refuses a document id this node already sent, unless that packet failed.
    pub async fn commit_outgoing(&self, out: Outgoing) -> Result<(), NodeDbError> {
        let blobs = self.store.blobs().clone();
        self.store
            .write(move |txn| insert_outgoing(txn, &blobs, &out))
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
        let blobs = self.store.blobs().clone();
        self.store
            .read(move |txn| {
                let t = txn.open_table(PACKETS).db()?;
                Ok(t.get(id.as_bytes())
                    .db()?
                    .map(|v| blobs.load(v.value()))
                    .transpose()?)
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
        let notices = self.notices.clone();
        let r = self
            .store
            .write(move |txn| -> Result<_, NodeDbError> {
                let mut e =
                    get_outbox(txn, &id)?.ok_or_else(|| NodeDbError::NotOurs(id.to_hex()))?;
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
                        let at = Timestamp::from_offset(receipt.hub_time);
                        e.state = OutboxState::Submitted;
                        e.submitted_at = Some(at);
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
                                .insert((id.as_bytes(), code), encode(&row)?.as_slice())
                                .db()?;
                            Ok::<(), NodeDbError>(())
                        };
                        for code in &receipt.accepted {
                            update(code, &|row| row.accepted_at = Some(at))?;
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
                        e.failed_at = Some(Timestamp::now());
                        if before != OutboxState::Failed {
                            bump(txn, FAILED, 1)?;
                            if let Some(n) = &notices
                                && e.kind == PacketKind::Document
                            {
                                let about = crate::notices::About {
                                    code: code_of(&e.document_id),
                                    subject: e.subject.as_deref(),
                                    document_id: &e.document_id,
                                    agency: e.recipients.first().map_or("", String::as_str),
                                    agency_name: &e.recipients.join(", "),
                                };
                                queue_notice(txn, n.gave_up(&about, error))?;
                            }
                        }
                    }
                }
                put_outbox(txn, &id, &e)?;
                Ok(e)
            })
            .await?;
        self.wake_mail();
        Ok(r)
    }

    /// Records the hub's verified delivery receipt for (packet, recipient). Returns whether it
    /// was new (a receipt already recorded is kept).
    pub async fn record_delivery(
        &self,
        id: PacketId,
        recipient: String,
        delivered_at: Timestamp,
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
                row.delivered_at = Some(delivered_at);
                row.delivery_receipt = Some(receipt.clone());
                t.insert(
                    (id.as_bytes(), recipient.as_str()),
                    encode(&row)?.as_slice(),
                )
                .db()?;
                Ok(true)
            })
            .await
    }

    /// Keeps a verified delivery receipt that matches no packet this node sent (`reason` says
    /// why). Storing it again changes nothing. Returns whether it was new.
    pub async fn store_unmatched_receipt(
        &self,
        id: PacketId,
        unmatched: UnmatchedReceipt,
    ) -> Result<bool, NodeDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(UNMATCHED_RECEIPTS).db()?;
                let key = (id.as_bytes(), unmatched.recipient.as_str());
                if t.get(key).db()?.is_some() {
                    return Ok(false);
                }
                t.insert(key, encode(&unmatched)?.as_slice()).db()?;
                Ok(true)
            })
            .await
    }
}
