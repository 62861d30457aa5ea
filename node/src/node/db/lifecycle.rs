//! Transactions of the document lifecycle: committing a clerk's business status (02–06,
//! 15, 16 on a received document; 13 on a sent one) after checking the rules inside the
//! transaction, and finding received documents by document id.

use redb::ReadableTable;

use crate::edxml::StatusCode;
use crate::node::lifecycle::Decision;
use crate::packet_id::PacketId;
use crate::store::DbResult;
use crate::store::codec::{decode, encode};

use super::*;

/// The packet of the last event with `code` sent by this node.
fn previous_packet(statuses: &[StatusEvent], code: &str) -> String {
    statuses
        .iter()
        .rev()
        .find(|s| s.by_us && s.code == code)
        .map(|s| s.packet_id.clone())
        .unwrap_or_default()
}

fn code_of(event: &StatusEvent) -> Result<StatusCode, NodeDbError> {
    StatusCode::parse(&event.code).map_err(|e| corrupt(format!("status event: {e}")))
}

impl NodeDb {
    /// Received documents with this document id (optionally only from `from`), newest first.
    pub async fn received_by_document(
        &self,
        document_id: String,
        from: Option<String>,
    ) -> Result<Vec<(PacketId, InboxEntry)>, NodeDbError> {
        self.store
            .read(move |txn| {
                let t = txn.open_table(INBOX).db()?;
                let mut out = Vec::new();
                for row in t.iter().db()? {
                    let (k, v) = row.db()?;
                    let e: InboxEntry = decode(v.value())?;
                    if e.kind == KIND_DOCUMENT
                        && e.document_id == document_id
                        && from.as_deref().is_none_or(|f| f == e.from)
                    {
                        out.push((PacketId(*k.value()), e));
                    }
                }
                out.sort_by_key(|e| std::cmp::Reverse(e.1.received_ms));
                Ok(out)
            })
            .await
    }

    /// Commits a clerk's status about received document `doc` (02–06, 15, 16) if the rules
    /// allow it; a repeat commits nothing and names the first packet.
    pub async fn commit_received_status(
        &self,
        doc: PacketId,
        st: OutgoingStatus,
    ) -> Result<StatusCommit, NodeDbError> {
        self.store
            .write(move |txn| {
                let mut entry = {
                    let t = txn.open_table(INBOX).db()?;
                    let v = t.get(doc.as_bytes()).db()?;
                    match v {
                        Some(v) => decode::<InboxEntry>(v.value())?,
                        None => return Err(NodeDbError::NotInInbox(doc.to_hex())),
                    }
                };
                if entry.kind != KIND_DOCUMENT {
                    return Err(NodeDbError::NotInInbox(doc.to_hex()));
                }
                let code = code_of(&st.event)?;
                let before = replay_statuses(&entry.statuses).lifecycle;
                if before.check_send(code)? == Decision::Repeat {
                    return Ok(StatusCommit::Repeat {
                        packet_id: previous_packet(&entry.statuses, &st.event.code),
                        state: before.state_name().to_string(),
                    });
                }
                insert_outgoing(txn, &st.out)?;
                entry.statuses.push(st.event.clone());
                let after = replay_statuses(&entry.statuses).lifecycle;
                if before.state_name() == "new" && after.state_name() != "new" {
                    bump(txn, INBOX_NEW, -1)?;
                }
                txn.open_table(INBOX)
                    .db()?
                    .insert(doc.as_bytes(), encode(&entry).as_slice())
                    .db()?;
                Ok(StatusCommit::Sent {
                    packet_id: st.out.id.to_hex(),
                    state: after.state_name().to_string(),
                })
            })
            .await
    }

    /// Commits this node's take-back request (13) for `document_id` at `recipient` if the
    /// rules allow it (as far as this node knows the recipient's statuses).
    pub async fn commit_take_back(
        &self,
        document_id: String,
        recipient: String,
        st: OutgoingStatus,
    ) -> Result<StatusCommit, NodeDbError> {
        self.store
            .write(move |txn| {
                let sent = txn
                    .open_table(SENT)
                    .db()?
                    .get(document_id.as_str())
                    .db()?
                    .map(|v| PacketId(*v.value()));
                let Some(doc) = sent else {
                    return Err(NodeDbError::NotSent(document_id.clone()));
                };
                let key = (doc.as_bytes(), recipient.as_str());
                let mut row: Tracking = {
                    let t = txn.open_table(TRACKING).db()?;
                    let v = t.get(key).db()?;
                    match v {
                        Some(v) => decode(v.value())?,
                        None => {
                            return Err(NodeDbError::NotRecipient {
                                packet_id: doc.to_hex(),
                                recipient: recipient.clone(),
                            });
                        }
                    }
                };
                let code = code_of(&st.event)?;
                let before = replay_statuses(&row.statuses).lifecycle;
                if before.check_send(code)? == Decision::Repeat {
                    return Ok(StatusCommit::Repeat {
                        packet_id: previous_packet(&row.statuses, &st.event.code),
                        state: before.state_name().to_string(),
                    });
                }
                insert_outgoing(txn, &st.out)?;
                row.statuses.push(st.event.clone());
                let after = replay_statuses(&row.statuses).lifecycle;
                txn.open_table(TRACKING)
                    .db()?
                    .insert(key, encode(&row).as_slice())
                    .db()?;
                Ok(StatusCommit::Sent {
                    packet_id: st.out.id.to_hex(),
                    state: after.state_name().to_string(),
                })
            })
            .await
    }
}
