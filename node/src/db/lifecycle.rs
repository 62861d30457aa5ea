//! Transactions of the document lifecycle: committing a clerk's business status (02–06,
//! 15, 16 on a received document; 13 on a sent one) after checking the rules inside the
//! transaction, and finding received documents by document id.

use redb::ReadableTable;

use edxml::StatusCode;
use exchange::lifecycle::{Decision, TakeBackState};
use exchange::packet_id::PacketId;
use store::DbResult;
use store::codec::{decode, encode};

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
                    if e.kind == PacketKind::Document
                        && e.document_id == document_id
                        && from.as_deref().is_none_or(|f| f == e.from)
                    {
                        out.push((PacketId(*k.value()), e));
                    }
                }
                out.sort_by_key(|e| std::cmp::Reverse(e.1.received_at.unix_ms()));
                Ok(out)
            })
            .await
    }

    /// Commits a clerk's status about received document `doc` (02–06, 15, 16) if the rules
    /// allow it; a repeat commits nothing and names the first packet. `me` is this node's
    /// agency: agreeing (15) to a revoke/update/replace marks the original this node received
    /// (`revoked`, `updated`, `replaced`, or `removed` when an update took `me` off the
    /// recipients) in the same transaction.
    pub async fn commit_received_status(
        &self,
        doc: PacketId,
        me: String,
        st: OutgoingStatus,
    ) -> Result<StatusCommit, NodeDbError> {
        let blobs = self.store.blobs().clone();
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
                if entry.kind != PacketKind::Document {
                    return Err(NodeDbError::NotInInbox(doc.to_hex()));
                }
                let code = code_of(&st.event)?;
                let before = entry.replay().lifecycle;
                let before_state = entry.business_state().0;
                if before.check_send(code)? == Decision::Repeat {
                    return Ok(StatusCommit::Repeat {
                        packet_id: previous_packet(&entry.statuses, &st.event.code),
                        state: before_state,
                    });
                }
                if let Some(why) = closed_by_mark(entry.mark.as_ref(), code.as_str()) {
                    return Err(NodeDbError::Closed(why));
                }
                insert_outgoing(txn, &blobs, &st.out)?;
                entry.statuses.push(st.event.clone());
                let after = entry.replay().lifecycle;
                let after_state = entry.business_state().0;
                if before_state == "new" && after_state != "new" {
                    bump(txn, INBOX_NEW, -1)?;
                }
                txn.open_table(INBOX)
                    .db()?
                    .insert(doc.as_bytes(), encode(&entry)?.as_slice())
                    .db()?;
                if let Some(action) = &entry.action
                    && before.take_back != TakeBackState::Agreed
                    && after.take_back == TakeBackState::Agreed
                {
                    let mark = Mark {
                        state: action.mark_for(&me).to_string(),
                        closed: action.closes_for(&me),
                        by_document: entry.document_id.clone(),
                        by_packet: doc.to_hex(),
                        at: st.event.time,
                    };
                    mark_received_original(txn, &entry.from, &action.original, mark.clone())?;
                    // Kept with the request, for an original that arrives after it.
                    entry.agreed_mark = Some(mark);
                    txn.open_table(INBOX)
                        .db()?
                        .insert(doc.as_bytes(), encode(&entry)?.as_slice())
                        .db()?;
                }
                super::archive::note_received(txn, &doc)?;
                Ok(StatusCommit::Sent {
                    packet_id: st.out.id.to_hex(),
                    state: after_state,
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
        let blobs = self.store.blobs().clone();
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
                let before = row.replay().lifecycle;
                if before.check_send(code)? == Decision::Repeat {
                    return Ok(StatusCommit::Repeat {
                        packet_id: previous_packet(&row.statuses, &st.event.code),
                        state: row.state_name(),
                    });
                }
                if let Some(why) = closed_by_mark(row.mark.as_ref(), code.as_str()) {
                    return Err(NodeDbError::Closed(why));
                }
                insert_outgoing(txn, &blobs, &st.out)?;
                row.statuses.push(st.event.clone());
                txn.open_table(TRACKING)
                    .db()?
                    .insert(key, encode(&row)?.as_slice())
                    .db()?;
                Ok(StatusCommit::Sent {
                    packet_id: st.out.id.to_hex(),
                    state: row.state_name(),
                })
            })
            .await
    }
}

/// The newest document received from `from` under `document_id` that is not itself a
/// revoke/update/replace request (systems that give a request its original's id exist: the
/// request must not be taken for the original).
pub(super) fn find_received(
    txn: &redb::WriteTransaction,
    from: &str,
    document_id: &str,
) -> Result<Option<(PacketId, InboxEntry)>, NodeDbError> {
    let mut found: Option<(PacketId, InboxEntry)> = None;
    let idx = txn.open_table(INBOX_BY_FROM).db()?;
    let inbox = txn.open_table(INBOX).db()?;
    let start = (from, document_id, &[0u8; 32]);
    for row in idx.range(start..).db()? {
        let (k, _) = row.db()?;
        let (f, d, id) = k.value();
        if f != from || d != document_id {
            break;
        }
        let Some(v) = inbox.get(id).db()? else {
            continue;
        };
        let e: InboxEntry = decode(v.value())?;
        if e.kind == PacketKind::Document
            && e.action.is_none()
            && found
                .as_ref()
                .is_none_or(|(_, f)| f.received_at.unix_ms() < e.received_at.unix_ms())
        {
            found = Some((PacketId(*id), e));
        }
    }
    Ok(found)
}

/// Marks the original a request is about (received from `from`), if this node has it (an
/// agency added by an update never received the original). A closing mark is final; an
/// `updated` mark gives way to a later closing one.
fn mark_received_original(
    txn: &redb::WriteTransaction,
    from: &str,
    original: &str,
    mark: Mark,
) -> Result<(), NodeDbError> {
    let Some((id, mut e)) = find_received(txn, from, original)? else {
        return Ok(());
    };
    // A closing mark (revoked, replaced, removed) is final; an `updated` one gives way to it.
    if e.mark.as_ref().is_some_and(|m| m.closed || !mark.closed) {
        return Ok(());
    }
    let was_new = e.business_state().0 == "new";
    e.mark = Some(mark);
    if was_new {
        bump(txn, INBOX_NEW, -1)?;
    }
    txn.open_table(INBOX)
        .db()?
        .insert(id.as_bytes(), encode(&e)?.as_slice())
        .db()?;
    super::archive::note_received(txn, &id)?;
    Ok(())
}

/// An original received after requests about it (they overtook it: the hub serves urgent
/// packets first): applies the marks of those this node already agreed to. Requests named
/// after their original (`<original>#…`) are found by a prefix scan of the sender's index;
/// a replacement with a number of its own is not (it names the original only inside).
pub(super) fn mark_from_earlier_requests(
    txn: &redb::WriteTransaction,
    from: &str,
    document_id: &str,
) -> Result<(), NodeDbError> {
    let prefix = format!("{document_id}#");
    let mut marks = Vec::new();
    {
        let idx = txn.open_table(INBOX_BY_FROM).db()?;
        let inbox = txn.open_table(INBOX).db()?;
        for row in idx.range((from, prefix.as_str(), &[0u8; 32])..).db()? {
            let (k, _) = row.db()?;
            let (f, d, id) = k.value();
            if f != from || !d.starts_with(&prefix) {
                break;
            }
            let Some(v) = inbox.get(id).db()? else {
                continue;
            };
            let e: InboxEntry = decode(v.value())?;
            if e.action.as_ref().is_none_or(|a| a.original != document_id) {
                continue;
            }
            if let Some(mark) = &e.agreed_mark {
                marks.push(mark.clone());
            }
        }
    }
    for mark in marks {
        mark_received_original(txn, from, document_id, mark)?;
    }
    Ok(())
}
