//! Transactions of the receiving side: received documents (with their status 01), received
//! statuses (with their effect on tracking), delivery receipts of acknowledgements, anomalies.

use redb::ReadableTable;

use edxml::StatusCode;
use exchange::Timestamp;
use exchange::lifecycle::{ActionKind, TakeBackState, TransitionError};
use exchange::packet_id::PacketId;
use store::DbResult;
use store::codec::{decode, encode};

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
        let notices = self.notices.clone();
        let blobs = self.store.blobs().clone();
        let r = self
            .store
            .write(move |txn| -> Result<_, NodeDbError> {
                if in_inbox(txn, &inc.id)? {
                    return Ok(Received::AlreadyThere);
                }
                let mut entry = inc.entry.clone();
                entry.answered_with = Some(inc.answer.id.to_hex());
                insert_inbox(txn, &blobs, &inc.id, &inc.bytes, &entry)?;
                insert_outgoing(txn, &blobs, &inc.answer)?;
                if entry.state == InboxState::New {
                    bump(txn, INBOX_NEW, 1)?;
                }
                if entry.action.is_none() {
                    // A request about it that overtook it and was already agreed.
                    super::lifecycle::mark_from_earlier_requests(
                        txn,
                        &entry.from,
                        &entry.document_id,
                    )?;
                }
                if let Some(n) = &notices {
                    let about = crate::notices::About {
                        code: entry.code.as_deref(),
                        subject: entry.subject.as_deref(),
                        document_id: &entry.document_id,
                        agency: &entry.from,
                        agency_name: &entry.from_name,
                    };
                    let mail = n.arrived(
                        &about,
                        &inc.id.to_hex(),
                        entry.priority,
                        entry.action.as_ref().map(|a| a.kind),
                    );
                    queue_notice(txn, mail)?;
                }
                Ok(Received::New { matched: true })
            })
            .await?;
        self.wake_mail();
        Ok(r)
    }

    /// Commits a verified status packet and applies it to the tracking row of the document and
    /// recipient it is about; an unmatched status is stored as such and recorded as an anomaly.
    pub async fn receive_status(&self, inc: IncomingStatus) -> Result<Received, NodeDbError> {
        let notices = self.notices.clone();
        let blobs = self.store.blobs().clone();
        let r = self
            .store
            .write(move |txn| -> Result<_, NodeDbError> {
                if in_inbox(txn, &inc.id)? {
                    return Ok(Received::AlreadyThere);
                }
                let mut entry = inc.entry.clone();
                let n = notices.as_deref();
                let (problem, anomaly) = if inc.event.code == StatusCode::TakeBack.as_str() {
                    apply_to_received(txn, &inc, &entry, n)?
                } else {
                    apply_to_sent(txn, &inc, &entry, n)?
                };
                if let Some(reason) = &anomaly {
                    upsert_anomaly(
                        txn,
                        "lifecycle",
                        &inc.id.to_hex(),
                        Some(entry.from.as_str()),
                        reason,
                    )?;
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
                insert_inbox(txn, &blobs, &inc.id, &inc.bytes, &entry)?;
                Ok(Received::New {
                    matched: problem.is_none(),
                })
            })
            .await?;
        self.wake_mail();
        Ok(r)
    }

    /// Stores the hub's verified delivery receipts with the inbox entries they are about
    /// (`(packet id, hub time, receipt)`); a receipt already stored is kept.
    pub async fn store_acks(
        &self,
        acks: Vec<(PacketId, Timestamp, String, Option<String>)>,
    ) -> Result<(), NodeDbError> {
        self.store
            .write(move |txn| {
                let mut t = txn.open_table(INBOX).db()?;
                for (id, at, receipt, submission) in &acks {
                    let entry = t
                        .get(id.as_bytes())
                        .db()?
                        .map(|v| decode::<InboxEntry>(v.value()))
                        .transpose()?;
                    let Some(mut entry) = entry else { continue };
                    if entry.delivery_receipt.is_some() {
                        continue;
                    }
                    entry.delivered_at = Some(*at);
                    entry.delivery_receipt = Some(receipt.clone());
                    entry.submission_receipt = submission.clone();
                    t.insert(id.as_bytes(), encode(&entry)?.as_slice()).db()?;
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

/// The anomaly text for the last event of `statuses`, if the rules refuse it for good. A
/// status that only lacks an earlier step ("05 needs 03") is not recorded: the missing status
/// may still be on its way (statuses travel independently); the timeline shows the verdict
/// of the moment.
fn rule_anomaly(
    request: Option<ActionKind>,
    statuses: &[StatusEvent],
    inc: &IncomingStatus,
) -> Option<String> {
    let index = statuses.len().checked_sub(1)?;
    let replay = replay_with(request, statuses);
    replay
        .anomalies()
        .find(|(i, e)| *i == index && !matches!(e, TransitionError::Needs { .. }))
        .map(|(_, e)| {
            format!(
                "status {} from {} about document {:?} does not follow the lifecycle (stored \
                 and shown anyway): {e}",
                inc.event.code, inc.entry.from, inc.entry.document_id
            )
        })
}

/// Applies a received 02–06/15/16 (or 01) to the tracking row of the sent document.
/// Returns (why it matches nothing, why it breaks the rules).
fn apply_to_sent(
    txn: &redb::WriteTransaction,
    inc: &IncomingStatus,
    entry: &InboxEntry,
    notices: Option<&crate::notices::Notices>,
) -> Result<(Option<String>, Option<String>), NodeDbError> {
    let sent = txn
        .open_table(SENT)
        .db()?
        .get(entry.document_id.as_str())
        .db()?
        .map(|v| PacketId(*v.value()));
    let Some(doc) = sent else {
        return Ok((
            Some(format!(
                "status {} from {} is about document {:?}, which this node never sent",
                inc.event.code, entry.from, entry.document_id
            )),
            None,
        ));
    };
    let mut t = txn.open_table(TRACKING).db()?;
    let row = t
        .get((doc.as_bytes(), entry.from.as_str()))
        .db()?
        .map(|v| decode::<Tracking>(v.value()))
        .transpose()?;
    let Some(mut row) = row else {
        return Ok((
            Some(format!(
                "status {} from {} is about document {:?}, which this node did not send to {}",
                inc.event.code, entry.from, entry.document_id, entry.from
            )),
            None,
        ));
    };
    let earlier = row.replay().lifecycle;
    let before = earlier.take_back;
    row.statuses.push(inc.event.clone());
    let anomaly = rule_anomaly(row.request, &row.statuses, inc);
    let after = row.replay().lifecycle;
    let agreed_now = before != TakeBackState::Agreed && after.take_back == TakeBackState::Agreed;
    let code = StatusCode::parse(&inc.event.code).ok();
    let news = match code {
        Some(StatusCode::Rejected) => {
            earlier.stage != exchange::lifecycle::Stage::Rejected
                && after.stage == exchange::lifecycle::Stage::Rejected
        }
        Some(StatusCode::Refused) => {
            before != TakeBackState::Refused && after.take_back == TakeBackState::Refused
        }
        _ => false,
    };
    if let (Some(n), Some(code), true) = (notices, code, news) {
        let subject = get_outbox(txn, &doc)?.and_then(|o| o.subject);
        let about = crate::notices::About {
            code: code_of(&entry.document_id),
            subject: subject.as_deref(),
            document_id: &entry.document_id,
            agency: &entry.from,
            agency_name: &entry.from_name,
        };
        let mail = n.answered(
            &about,
            code,
            inc.event.description.as_deref(),
            inc.event.staff.as_deref(),
        );
        queue_notice(txn, mail)?;
    }
    t.insert(
        (doc.as_bytes(), entry.from.as_str()),
        encode(&row)?.as_slice(),
    )
    .db()?;
    drop(t);
    if agreed_now {
        mark_sent_original(txn, &doc, &entry.from, &inc.event.time)?;
    }
    super::archive::note_sent(txn, &doc)?;
    Ok((None, anomaly))
}

/// Applies a received 13 (take-back request from the original sender) to the document this
/// node received from that sender under that id (the newest, if several).
fn apply_to_received(
    txn: &redb::WriteTransaction,
    inc: &IncomingStatus,
    entry: &InboxEntry,
    notices: Option<&crate::notices::Notices>,
) -> Result<(Option<String>, Option<String>), NodeDbError> {
    let found = super::lifecycle::find_received(txn, &entry.from, &entry.document_id)?;
    let Some((doc, mut received)) = found else {
        return Ok((
            Some(format!(
                "take-back request (13) from {} is about document {:?}, which this node never \
                 received from {}",
                entry.from, entry.document_id, entry.from
            )),
            None,
        ));
    };
    let before = received.replay().lifecycle.take_back;
    received.statuses.push(inc.event.clone());
    let anomaly = rule_anomaly(
        received.action.as_ref().map(|a| a.kind),
        &received.statuses,
        inc,
    );
    if let Some(n) = notices
        && before != TakeBackState::Requested
        && received.replay().lifecycle.take_back == TakeBackState::Requested
    {
        let about = crate::notices::About {
            code: received.code.as_deref(),
            subject: received.subject.as_deref(),
            document_id: &received.document_id,
            agency: &received.from,
            agency_name: &received.from_name,
        };
        let mail = n.take_back(&about, &doc.to_hex(), inc.event.description.as_deref());
        queue_notice(txn, mail)?;
    }
    txn.open_table(INBOX)
        .db()?
        .insert(doc.as_bytes(), encode(&received)?.as_slice())
        .db()?;
    Ok((None, anomaly))
}

/// A recipient agreed (15) to request `request` this node sent: marks this node's tracking row
/// of the original at that recipient (`revoked`, `updated`, `replaced`, `removed`). A closing
/// mark is final, an `updated` one gives way to a later closing one; a recipient the original
/// never went to (added by an update) has no row.
fn mark_sent_original(
    txn: &redb::WriteTransaction,
    request: &PacketId,
    recipient: &str,
    at: &Timestamp,
) -> Result<(), NodeDbError> {
    let Some(req) = get_outbox(txn, request)? else {
        return Ok(());
    };
    let Some(action) = req.action else {
        return Ok(());
    };
    let original = txn
        .open_table(SENT)
        .db()?
        .get(action.original.as_str())
        .db()?
        .map(|v| PacketId(*v.value()));
    let Some(original) = original else {
        return Ok(());
    };
    let mut t = txn.open_table(TRACKING).db()?;
    let key = (original.as_bytes(), recipient);
    let row = t
        .get(key)
        .db()?
        .map(|v| decode::<Tracking>(v.value()))
        .transpose()?;
    let Some(mut row) = row else { return Ok(()) };
    let closes = action.closes_for(recipient);
    // A closing mark is final; an `updated` one gives way to a later closing one.
    if row.mark.as_ref().is_some_and(|m| m.closed || !closes) {
        return Ok(());
    }
    row.mark = Some(Mark {
        state: action.mark_for(recipient).to_string(),
        closed: closes,
        by_document: req.document_id.clone(),
        by_packet: request.to_hex(),
        at: *at,
    });
    t.insert(key, encode(&row)?.as_slice()).db()?;
    drop(t);
    super::archive::note_sent(txn, &original)?;
    Ok(())
}
