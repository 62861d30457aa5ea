//! The receipt collector: long-polls the hub for delivery receipts of packets this node sent,
//! verifies and records each, then acknowledges the ones recorded.
//!
//! A receipt is recorded only when its signature verifies against the pinned hub certificate
//! and it says what the listing says: a delivery of this packet, from this agency, to that
//! recipient. Then:
//! - about a packet in this node's outbox sent to that recipient: "delivered at" is recorded;
//! - about a packet this node has no record of (submitted around it, or before its database
//!   was new): the receipt is kept in `unmatched_receipts`, with the reason, as evidence;
//!
//! and either way it is acknowledged. A receipt that fails the checks is an anomaly: logged,
//! recorded, not acknowledged, and set aside for a growing while — and the next polls ask only
//! for receipts *after* it, so a receipt set aside never holds up the ones behind it. The
//! receipts of one poll are verified on every CPU (one blocking task per share) and recorded
//! concurrently, so their writes share commits.
//!
//! Invariants: a receipt is acknowledged only after it is durably recorded or kept; an
//! unreachable hub is retried with backoff, never in a tight loop.

use std::collections::BTreeMap;
use std::time::Instant;

use tokio::sync::watch;
use tokio::task::JoinSet;

use dsig::batch::{HeadCache, verify_receipt};
use dsig::receipt::ReceiptKind;
use exchange::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::ReceiptItem;

use super::Shared;
use super::db::UnmatchedReceipt;
use super::hub_api::HubCallError;
use super::inbox::SetAside;

/// Most receipts asked for in one poll.
const POLL_LIMIT: usize = 200;
/// Most receipts verified and recorded at once.
const CONCURRENCY: usize = 32;

/// The collector's side of the poll loop ([`super::poller`]).
#[derive(Default)]
struct ReceiptPuller {
    aside: SetAside,
    /// Receipts set aside, by sequence number, with when they are due again.
    skipped: BTreeMap<u64, Instant>,
    /// The highest sequence number below which everything listed was acknowledged or set
    /// aside: the next poll asks for receipts after it.
    cursor: u64,
}

impl ReceiptPuller {
    /// Where the next poll starts: after the cursor, or from the start again once a receipt
    /// set aside is due for another try.
    fn after(&mut self, now: Instant) -> u64 {
        if self.skipped.values().any(|due| *due <= now) {
            self.skipped.retain(|_, due| *due > now);
            self.cursor = 0;
        }
        self.cursor
    }

    /// Moves the cursor over the prefix of `listed` (in sequence order) that needs no retry
    /// at once: acknowledged, or set aside.
    fn advance(&mut self, listed: &[u64], acked: &[u64]) {
        for seq in listed {
            let done = acked.contains(seq) || self.skipped.contains_key(seq);
            if !done {
                break;
            }
            self.cursor = self.cursor.max(*seq);
        }
    }
}

impl super::poller::Puller for ReceiptPuller {
    type Item = ReceiptItem;
    const NAME: &'static str = "receipts";

    async fn poll(&mut self, node: &Shared) -> Result<Vec<ReceiptItem>, HubCallError> {
        let after = self.after(Instant::now());
        let list = node
            .hub
            .receipts(node.config.poll_wait_secs, POLL_LIMIT, after)
            .await?;
        Ok(list.items)
    }

    /// Records what verifies, then acknowledges what was recorded; returns how many went
    /// through (recorded, or set aside so that the next poll passes them).
    async fn handle(&mut self, node: &Shared, items: Vec<ReceiptItem>) -> usize {
        let mut listed: Vec<u64> = items.iter().map(|i| i.seq).collect();
        listed.sort_unstable();
        let (seqs, aside) = record_all(node, items, &mut self.aside).await;
        let set_aside = aside.len();
        self.skipped.extend(aside);
        let recorded = seqs.len();
        let mut acked: Vec<u64> = Vec::new();
        if recorded > 0 {
            match node.hub.ack_receipts(seqs.clone()).await {
                Ok(()) => {
                    tracing::info!(receipts = recorded, "receipts: collected");
                    acked = seqs;
                }
                Err(e) => tracing::warn!(error = %e,
                    "receipts: acknowledgement failed; they will be listed again"),
            }
        }
        self.advance(&listed, &acked);
        acked.len() + set_aside
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(node: Shared, shutdown: watch::Receiver<bool>) {
    super::poller::run(node, ReceiptPuller::default(), shutdown).await;
}

/// Verifies the listed receipts (on every CPU, one blocking task per share), then records the
/// good ones [`CONCURRENCY`] at a time (their writes share commits); returns the sequence
/// numbers recorded or kept, to acknowledge, and those set aside with when they are due.
async fn record_all(
    node: &Shared,
    items: Vec<ReceiptItem>,
    aside: &mut SetAside,
) -> (Vec<u64>, Vec<(u64, Instant)>) {
    let now = Instant::now();
    let items: Vec<ReceiptItem> = items
        .into_iter()
        .filter(|item| !aside.holds(&key_of(item), now))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = items.len().div_ceil(cpus).max(1);
    let mut checks: JoinSet<Vec<(ReceiptItem, Result<Checked, Problem>)>> = JoinSet::new();
    for part in items.chunks(share) {
        let part = part.to_vec();
        let hub = node.hub_cert_der.clone();
        let heads = std::sync::Arc::clone(&node.receipt_heads);
        let me = node.config.agency.clone();
        checks.spawn_blocking(move || {
            part.into_iter()
                .map(|item| {
                    // One bad receipt must not take its share down with it.
                    let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        check(&hub, &heads, &me, &item)
                    }))
                    .unwrap_or_else(|_| {
                        Err(Problem::Refused(
                            "checking it failed unexpectedly (a bug, logged)".into(),
                        ))
                    });
                    (item, checked)
                })
                .collect()
        });
    }
    let mut checked = Vec::new();
    while let Some(done) = checks.join_next().await {
        match done {
            Ok(part) => checked.extend(part),
            Err(e) => tracing::error!(error = %e, "receipts: a verification task failed"),
        }
    }
    let mut tasks: JoinSet<(ReceiptItem, Result<(), Problem>)> = JoinSet::new();
    let mut seqs = Sorted::default();
    for (item, outcome) in checked {
        let good = match outcome {
            Ok(good) => good,
            Err(problem) => {
                settle(node, item, Err(problem), aside, &mut seqs).await;
                continue;
            }
        };
        while tasks.len() >= CONCURRENCY {
            if let Some(done) = tasks.join_next().await {
                settle_task(node, done, aside, &mut seqs).await;
            }
        }
        let n = node.clone();
        tasks.spawn(async move {
            let outcome = record(&n, &item, good).await;
            (item, outcome)
        });
    }
    while let Some(done) = tasks.join_next().await {
        settle_task(node, done, aside, &mut seqs).await;
    }
    (seqs.acked, seqs.aside)
}

/// What became of the receipts of one poll.
#[derive(Default)]
struct Sorted {
    /// Recorded or kept: to acknowledge.
    acked: Vec<u64>,
    /// Refused for now, with when they are due again.
    aside: Vec<(u64, Instant)>,
}

fn key_of(item: &ReceiptItem) -> String {
    format!("receipt {}", item.seq)
}

async fn settle_task(
    node: &Shared,
    done: Result<(ReceiptItem, Result<(), Problem>), tokio::task::JoinError>,
    aside: &mut SetAside,
    seqs: &mut Sorted,
) {
    match done {
        Ok((item, outcome)) => settle(node, item, outcome, aside, seqs).await,
        Err(e) => tracing::error!(error = %e, "receipts: a recording task failed"),
    }
}

async fn settle(
    node: &Shared,
    item: ReceiptItem,
    outcome: Result<(), Problem>,
    aside: &mut SetAside,
    seqs: &mut Sorted,
) {
    let key = key_of(&item);
    match outcome {
        Ok(()) => {
            aside.clear(&key);
            seqs.acked.push(item.seq);
        }
        Err(Problem::Refused(reason)) => {
            let now = Instant::now();
            let delay = aside.put(&key, &node.backoff, now);
            seqs.aside.push((item.seq, now + delay));
            tracing::error!(seq = item.seq, packet = %item.packet_id,
                recipient = %item.recipient, %reason, set_aside_for = ?delay,
                "receipts: delivery receipt refused, NOT acknowledged");
            if let Err(e) = node
                .db
                .record_anomaly("receipts", &key, None, &reason)
                .await
            {
                tracing::error!(error = %e, "receipts: cannot record an anomaly");
            }
        }
        Err(Problem::Local(reason)) => {
            tracing::error!(seq = item.seq, %reason, "receipts: cannot record");
        }
    }
}

enum Problem {
    /// The receipt itself is wrong.
    Refused(String),
    /// This node could not record it (database).
    Local(String),
}

/// A receipt whose signature and content passed.
struct Checked {
    id: PacketId,
    /// The hub's delivery time.
    at: Timestamp,
}

/// Verifies a listed receipt against the pinned hub certificate `hub` and checks it says what
/// the listing says, about a packet from `me`. Blocking.
fn check(hub: &[u8], heads: &HeadCache, me: &str, item: &ReceiptItem) -> Result<Checked, Problem> {
    let id: PacketId = item
        .packet_id
        .parse()
        .map_err(|e| Problem::Refused(format!("the listing names no valid packet: {e}")))?;
    let xml = item.receipt.as_bytes();
    let r = verify_receipt(xml, hub, heads)
        .map_err(|e| Problem::Refused(format!("its signature: {e}")))?;
    if r.kind != ReceiptKind::Delivery {
        return Err(Problem::Refused("it is not a delivery receipt".into()));
    }
    if r.packet_id != item.packet_id {
        return Err(Problem::Refused(format!(
            "it names packet {}, the listing {}",
            r.packet_id, item.packet_id
        )));
    }
    if r.from != me {
        return Err(Problem::Refused(format!(
            "it is about a packet from {}, not from this agency",
            r.from
        )));
    }
    if r.delivered_to.as_deref() != Some(item.recipient.as_str()) {
        return Err(Problem::Refused(format!(
            "it names recipient {:?}, the listing {}",
            r.delivered_to, item.recipient
        )));
    }
    Ok(Checked {
        id,
        at: Timestamp::from_offset(r.hub_time),
    })
}

/// Records a checked receipt with the outbox entry it is about.
async fn record(node: &Shared, item: &ReceiptItem, good: Checked) -> Result<(), Problem> {
    let Checked { id, at } = good;
    match node
        .db
        .record_delivery(id, item.recipient.clone(), at, item.receipt.clone())
        .await
    {
        Ok(new) => {
            if new {
                tracing::info!(packet = %id, recipient = %item.recipient, %at,
                    "receipts: delivered");
            }
            Ok(())
        }
        Err(
            e @ (super::db::NodeDbError::NotOurs(_) | super::db::NodeDbError::NotRecipient { .. }),
        ) => keep_unmatched(node, item, id, e.to_string()).await,
        Err(e) => Err(Problem::Local(e.to_string())),
    }
}

/// Keeps a verified receipt that matches no packet sent from here, as evidence.
async fn keep_unmatched(
    node: &Shared,
    item: &ReceiptItem,
    id: PacketId,
    reason: String,
) -> Result<(), Problem> {
    let unmatched = UnmatchedReceipt {
        packet_id: id.to_hex(),
        recipient: item.recipient.clone(),
        receipt: item.receipt.clone(),
        reason: reason.clone(),
        stored_at: Timestamp::now(),
    };
    match node.db.store_unmatched_receipt(id, unmatched).await {
        Ok(new) => {
            if new {
                tracing::warn!(packet = %id, recipient = %item.recipient, %reason,
                    "receipts: a hub-signed delivery receipt matches no packet sent from this \
                     node; kept in unmatched_receipts and acknowledged");
            }
            Ok(())
        }
        Err(e) => Err(Problem::Local(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_receipt_set_aside_is_passed_until_it_is_due() {
        let start = Instant::now();
        let mut p = ReceiptPuller::default();
        assert_eq!(p.after(start), 0);
        // 1 set aside, 2 and 3 acknowledged: the next poll starts after 3.
        p.skipped.insert(1, start + Duration::from_secs(60));
        p.advance(&[1, 2, 3], &[2, 3]);
        assert_eq!(p.after(start), 3);
        // 4 failed locally (neither acknowledged nor set aside): the cursor stays before it.
        p.advance(&[4, 5], &[5]);
        assert_eq!(p.after(start), 3);
        // Once 1 is due, the listing starts from the beginning again.
        assert_eq!(p.after(start + Duration::from_secs(61)), 0);
        assert!(p.skipped.is_empty());
    }
}
