//! The mail queue: one table in the owner's store, written inside the owner's transactions.
//!
//! Tables: `mail_queue`: seq → [`QueuedMail`] (JSON); `mail_counters`: name → u64 (`seq`, the
//! last sequence number given; `sent`, mails accepted by the server since the store was made).
//!
//! Invariants:
//! - [`enqueue`] takes the caller's write transaction: the mail exists exactly when the state
//!   change it reports was committed.
//! - A row is removed only by [`mark_sent`], after the server accepted the mail.

use redb::{
    ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};
use store::codec::{decode, encode};
use store::{DbResult, StoreError};

const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("mail_queue");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("mail_counters");

/// One plain-text email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    /// Recipient addresses.
    pub to: Vec<String>,
    pub subject: String,
    /// Plain text (UTF-8).
    pub body: String,
}

/// A mail waiting in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMail {
    pub mail: Mail,
    /// `Message-ID` (without angle brackets), fixed at queueing so that a mail sent twice after
    /// a crash is recognisably the same one.
    pub message_id: String,
    pub queued_at_ms: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Not before this time (Unix ms).
    pub next_attempt_ms: u64,
    /// The last failure, for operators.
    pub last_error: Option<String>,
}

/// Creates the tables (call from the store's `init`).
pub fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(QUEUE).db()?;
    txn.open_table(COUNTERS).db()?;
    Ok(())
}

/// Queues `mail` in the caller's transaction; returns its sequence number.
pub fn enqueue(txn: &WriteTransaction, mail: &Mail, now_ms: u64) -> Result<u64, StoreError> {
    let mut counters = txn.open_table(COUNTERS).db()?;
    let seq = counters.get("seq").db()?.map_or(0, |v| v.value()) + 1;
    counters.insert("seq", seq).db()?;
    let queued = QueuedMail {
        mail: mail.clone(),
        message_id: format!("docaxis.{seq}.{now_ms}@docaxis.invalid"),
        queued_at_ms: now_ms,
        attempts: 0,
        next_attempt_ms: now_ms,
        last_error: None,
    };
    txn.open_table(QUEUE)
        .db()?
        .insert(seq, encode(&queued)?.as_slice())
        .db()?;
    Ok(seq)
}

/// Mails due now (sequence number, mail), and when the next one not yet due is (Unix ms).
pub type DueMails = (Vec<(u64, QueuedMail)>, Option<u64>);

/// Mails due at `now_ms`, oldest first, at most `limit`; and when the next one not yet due is.
pub fn due(txn: &ReadTransaction, now_ms: u64, limit: usize) -> Result<DueMails, StoreError> {
    let t = txn.open_table(QUEUE).db()?;
    let mut out = Vec::new();
    let mut next: Option<u64> = None;
    for row in t.iter().db()? {
        let (k, v) = row.db()?;
        let q: QueuedMail = decode(v.value())?;
        if q.next_attempt_ms <= now_ms {
            if out.len() < limit {
                out.push((k.value(), q));
            } else {
                next = Some(now_ms);
            }
        } else {
            next = Some(next.map_or(q.next_attempt_ms, |n| n.min(q.next_attempt_ms)));
        }
    }
    Ok((out, next))
}

/// The server accepted mail `seq`: remove it and count it.
pub fn mark_sent(txn: &WriteTransaction, seq: u64) -> Result<(), StoreError> {
    if txn.open_table(QUEUE).db()?.remove(seq).db()?.is_some() {
        let mut counters = txn.open_table(COUNTERS).db()?;
        let sent = counters.get("sent").db()?.map_or(0, |v| v.value()) + 1;
        counters.insert("sent", sent).db()?;
    }
    Ok(())
}

/// Mail `seq` failed: count the attempt and set when to try again.
pub fn mark_failed(
    txn: &WriteTransaction,
    seq: u64,
    error: &str,
    next_attempt_ms: u64,
) -> Result<(), StoreError> {
    let mut t = txn.open_table(QUEUE).db()?;
    let Some(v) = t.get(seq).db()? else {
        return Ok(());
    };
    let mut q: QueuedMail = decode(v.value())?;
    drop(v);
    q.attempts = q.attempts.saturating_add(1);
    q.next_attempt_ms = next_attempt_ms;
    q.last_error = Some(error.chars().take(500).collect());
    t.insert(seq, encode(&q)?.as_slice()).db()?;
    Ok(())
}

/// A failure of the database holding the queue, as the sender reports it.
pub type QueueError = Box<dyn std::error::Error + Send + Sync>;

/// A future of a [`MailStore`] call.
pub type QueueFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, QueueError>> + Send + 'a>>;

/// The queue as the sender ([`crate::Mailer`]) uses it: the functions above over the owner's
/// redb [`store::Store`], or the same rules over another database (the hub's PostgreSQL
/// backend keeps its queue in PostgreSQL, written in the transactions that queue the mail).
///
/// Implementations keep this module's invariants: a mail is removed only by `mark_sent`, and
/// `due` returns each mail at most once to concurrent senders for a while (a database shared
/// by several processes leases what it hands out), so two senders do not mail the same row
/// at the same time.
pub trait MailStore: Send + Sync + 'static {
    /// Mails due at `now_ms`, oldest first, at most `limit`; and when the next one is due.
    fn due(&self, now_ms: u64, limit: usize) -> QueueFuture<'_, DueMails>;
    /// The server accepted mail `seq`.
    fn mark_sent(&self, seq: u64) -> QueueFuture<'_, ()>;
    /// Mail `seq` failed with `error`; try again at `next_attempt_ms`.
    fn mark_failed(&self, seq: u64, error: String, next_attempt_ms: u64) -> QueueFuture<'_, ()>;
}

impl MailStore for store::Store {
    fn due(&self, now_ms: u64, limit: usize) -> QueueFuture<'_, DueMails> {
        Box::pin(async move {
            Ok(self
                .read(move |t| due(t, now_ms, limit))
                .await
                .map_err(Box::new)?)
        })
    }

    fn mark_sent(&self, seq: u64) -> QueueFuture<'_, ()> {
        Box::pin(async move {
            Ok(self
                .write(move |txn| mark_sent(txn, seq))
                .await
                .map_err(Box::new)?)
        })
    }

    fn mark_failed(&self, seq: u64, error: String, next_attempt_ms: u64) -> QueueFuture<'_, ()> {
        Box::pin(async move {
            Ok(self
                .write(move |txn| mark_failed(txn, seq, &error, next_attempt_ms))
                .await
                .map_err(Box::new)?)
        })
    }
}

/// How many mails wait, and how many were sent since the store was made.
pub fn counts(txn: &ReadTransaction) -> Result<(u64, u64), StoreError> {
    let waiting = match txn.open_table(QUEUE) {
        Ok(t) => t.len().db()?,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
        Err(e) => return Err(e.into()),
    };
    let sent = txn
        .open_table(COUNTERS)
        .db()?
        .get("sent")
        .db()?
        .map_or(0, |v| v.value());
    Ok((waiting, sent))
}

/// The waiting mails, oldest first (at most `limit`), for operators' pages.
pub fn waiting(txn: &ReadTransaction, limit: usize) -> Result<Vec<QueuedMail>, StoreError> {
    let t = txn.open_table(QUEUE).db()?;
    let mut out = Vec::new();
    for row in t.iter().db()?.take(limit) {
        let (_, v) = row.db()?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Store;

    fn mail(n: u32) -> Mail {
        Mail {
            to: vec!["van-hanh@hub.demo".into()],
            subject: format!("Cảnh báo {n}"),
            body: "Nội dung".into(),
        }
    }

    #[tokio::test]
    async fn queued_mail_waits_until_sent_and_failures_postpone_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("m.redb"), create_tables).unwrap();
        let seqs: Vec<u64> = store
            .write(|txn| {
                Ok::<_, StoreError>(vec![
                    enqueue(txn, &mail(1), 1000)?,
                    enqueue(txn, &mail(2), 1000)?,
                ])
            })
            .await
            .unwrap();
        assert_eq!(seqs, vec![1, 2]);
        let (due_now, next) = store.read(|t| due(t, 1000, 10)).await.unwrap();
        assert_eq!(due_now.len(), 2);
        assert_eq!(next, None);
        assert_ne!(due_now[0].1.message_id, due_now[1].1.message_id);

        store
            .write(|txn| {
                mark_failed(txn, 1, "connection refused", 5000)?;
                mark_sent(txn, 2)
            })
            .await
            .unwrap();
        let (due_now, next) = store.read(|t| due(t, 1000, 10)).await.unwrap();
        assert!(due_now.is_empty());
        assert_eq!(next, Some(5000));
        let (later, _) = store.read(|t| due(t, 5000, 10)).await.unwrap();
        assert_eq!(later[0].1.attempts, 1);
        assert_eq!(later[0].1.last_error.as_deref(), Some("connection refused"));
        assert_eq!(store.read(counts).await.unwrap(), (1, 1));
        // Sending twice counts once.
        store.write(|txn| mark_sent(txn, 2)).await.unwrap();
        assert_eq!(store.read(counts).await.unwrap(), (1, 1));
    }
}
