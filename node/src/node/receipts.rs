//! The receipt collector: long-polls the hub for delivery receipts of packets this node sent,
//! verifies and records each, then acknowledges the ones recorded.
//!
//! A receipt is recorded only when its signature verifies against the pinned hub certificate
//! and it says what the listing says: a delivery of this packet, from this agency, to that
//! recipient, of a packet in this node's outbox sent to that recipient. Otherwise it is an
//! anomaly: logged, recorded, not acknowledged, and set aside for a growing while. The receipts
//! of one poll are verified and recorded concurrently, so their writes share commits.
//!
//! Invariants: "delivered at" is recorded before the receipt is acknowledged to the hub; an
//! unreachable hub is retried with backoff, never in a tight loop.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::dsig::verify_root;
use crate::packet_id::PacketId;
use crate::protocol::ReceiptItem;
use crate::receipt::{HubReceipt, ReceiptKind};

use super::Shared;
use super::clock;
use super::inbox::SetAside;

/// Most receipts asked for in one poll.
const POLL_LIMIT: usize = 200;
/// Most receipts verified and recorded at once.
const CONCURRENCY: usize = 32;

/// Runs until `shutdown` turns true.
pub async fn run(node: Shared, mut shutdown: watch::Receiver<bool>) {
    let mut failures = 0u32;
    let mut idle_rounds = 0u32;
    let mut aside = SetAside::default();
    loop {
        let poll = node.hub.receipts(node.config.poll_wait_secs, POLL_LIMIT);
        let list = tokio::select! {
            _ = shutdown.changed() => break,
            r = poll => r,
        };
        let pause = match list {
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = node.backoff.delay(failures);
                tracing::warn!(error = %e, retry_in = ?delay, "receipts: cannot poll the hub");
                delay
            }
            Ok(list) => {
                failures = 0;
                let listed = list.items.len();
                let seqs = record_all(&node, list.items, &mut aside).await;
                let recorded = seqs.len();
                if recorded > 0 {
                    match node.hub.ack_receipts(seqs).await {
                        Ok(()) => tracing::info!(receipts = recorded, "receipts: collected"),
                        Err(e) => tracing::warn!(error = %e,
                            "receipts: acknowledgement failed; they will be listed again"),
                    }
                }
                if listed > 0 && recorded == 0 {
                    idle_rounds = idle_rounds.saturating_add(1);
                    node.backoff
                        .delay(idle_rounds)
                        .max(Duration::from_millis(100))
                } else {
                    idle_rounds = 0;
                    Duration::ZERO
                }
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                _ = shutdown.changed() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Records the listed receipts, [`CONCURRENCY`] at a time (their writes share commits);
/// returns the sequence numbers recorded, to acknowledge.
async fn record_all(node: &Shared, items: Vec<ReceiptItem>, aside: &mut SetAside) -> Vec<u64> {
    let mut tasks: JoinSet<(String, ReceiptItem, Result<(), Problem>)> = JoinSet::new();
    let mut seqs = Vec::new();
    for item in items {
        let key = format!("receipt {}", item.seq);
        if aside.holds(&key, Instant::now()) {
            continue;
        }
        while tasks.len() >= CONCURRENCY {
            if let Some(done) = tasks.join_next().await {
                settle(node, done, aside, &mut seqs).await;
            }
        }
        let n = node.clone();
        tasks.spawn(async move {
            let outcome = record(&n, &item).await;
            (key, item, outcome)
        });
    }
    while let Some(done) = tasks.join_next().await {
        settle(node, done, aside, &mut seqs).await;
    }
    seqs
}

async fn settle(
    node: &Shared,
    done: Result<(String, ReceiptItem, Result<(), Problem>), tokio::task::JoinError>,
    aside: &mut SetAside,
    seqs: &mut Vec<u64>,
) {
    let (key, item, outcome) = match done {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "receipts: a recording task failed");
            return;
        }
    };
    match outcome {
        Ok(()) => {
            aside.clear(&key);
            seqs.push(item.seq);
        }
        Err(Problem::Refused(reason)) => {
            let delay = aside.put(&key, &node.backoff, Instant::now());
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

async fn record(node: &Shared, item: &ReceiptItem) -> Result<(), Problem> {
    let id: PacketId = item
        .packet_id
        .parse()
        .map_err(|e| Problem::Refused(format!("the listing names no valid packet: {e}")))?;
    let hub = node.hub_cert_der.clone();
    let xml = item.receipt.clone();
    let r = tokio::task::spawn_blocking(move || {
        verify_root(xml.as_bytes(), &hub).map_err(|e| format!("its signature: {e}"))?;
        HubReceipt::parse(xml.as_bytes()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| Problem::Local(format!("verification task failed: {e}")))?
    .map_err(Problem::Refused)?;
    if r.kind != ReceiptKind::Delivery {
        return Err(Problem::Refused("it is not a delivery receipt".into()));
    }
    if r.packet_id != item.packet_id {
        return Err(Problem::Refused(format!(
            "it names packet {}, the listing {}",
            r.packet_id, item.packet_id
        )));
    }
    if r.from != node.config.agency {
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
    let at = clock::rfc3339(r.hub_time);
    match node
        .db
        .record_delivery(id, item.recipient.clone(), at.clone(), item.receipt.clone())
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
        ) => Err(Problem::Refused(e.to_string())),
        Err(e) => Err(Problem::Local(e.to_string())),
    }
}
