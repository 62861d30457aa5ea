//! Transactions of the receiving side: received documents (with their status 01), received
//! statuses (with their effect on tracking), delivery receipts of acknowledgements, anomalies.

use redb::ReadableTable;

use crate::packet_id::PacketId;
use crate::store::DbResult;
use crate::store::codec::{decode, encode};

use super::*;

impl NodeDb {
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
    pub async fn store_acks(
        &self,
        acks: Vec<(PacketId, String, String)>,
    ) -> Result<(), NodeDbError> {
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
}
