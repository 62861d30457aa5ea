//! The outbox worker: submits queued packets to the hub until each is accepted, refused, or
//! given up.
//!
//! Each due entry is POSTed as its exact signed bytes. A 200 answer carries the hub's signed
//! submission receipt: it is verified against the pinned hub certificate, parsed, checked to
//! name this packet and this sender, and stored with the entry (now `submitted`) and the
//! per-recipient acceptances and refusals. A 4xx answer with the hub's error body (not 408 or
//! 429) is a permanent refusal: the entry fails with the hub's message. Anything else (no
//! answer, 5xx, 408, 429, a receipt that does not verify) is retried with exponential backoff
//! and full jitter, until `retry.give_up_after_secs` after the entry's creation.
//!
//! Invariants:
//! - Resubmitting is safe (the hub returns the first receipt for the same bytes), so an attempt
//!   interrupted by a crash or a shutdown is simply made again.
//! - One attempt per entry at a time: entries in flight are skipped when scanning for due ones.
//! - The worker wakes at once on a new send (`Node::outbox_wake`), otherwise sleeps until the
//!   earliest due attempt.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use dsig::batch::verify_receipt;
use dsig::receipt::{HubReceipt, ReceiptKind};
use exchange::packet_id::PacketId;

use super::Shared;
use super::backoff::Backoff;
use super::db::{Attempt, OutboxEntry, OutboxState};
use exchange::clock;

/// Most submissions in flight at once (the hub commits concurrent submissions together).
const MAX_IN_FLIGHT: usize = 32;
/// Longest sleep when nothing is queued (a wake-up arrives on every send anyway).
const IDLE: Duration = Duration::from_secs(60);

/// Runs until `shutdown` turns true.
pub async fn run(node: Shared, mut shutdown: watch::Receiver<bool>) {
    let mut in_flight: HashSet<PacketId> = HashSet::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut task_ids: HashMap<tokio::task::Id, PacketId> = HashMap::new();
    loop {
        let mut sleep_for = IDLE;
        let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
        if room > 0 {
            match node.db.due(clock::now_ms(), room, in_flight.clone()).await {
                Ok(due) => {
                    for (id, entry) in due.ready {
                        in_flight.insert(id);
                        let n = node.clone();
                        let handle = tasks.spawn(async move { attempt(&n, id, entry).await });
                        task_ids.insert(handle.id(), id);
                    }
                    if let Some(next) = due.next_ms {
                        sleep_for = Duration::from_millis(next.saturating_sub(clock::now_ms()));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox: cannot read the queue");
                    sleep_for = Duration::from_secs(1);
                }
            }
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            () = node.outbox_wake.notified() => {}
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let task = match &done {
                    Ok((task, ())) => *task,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox: a submission task failed");
                        e.id()
                    }
                };
                if let Some(id) = task_ids.remove(&task) {
                    in_flight.remove(&id);
                }
            }
            () = tokio::time::sleep(sleep_for) => {}
        }
    }
    tasks.abort_all();
}

/// Makes one submission attempt for `id` and records its outcome.
async fn attempt(node: &Shared, id: PacketId, entry: OutboxEntry) {
    let bytes = match node.db.packet(id).await {
        Ok(Some(b)) => b,
        Ok(None) => {
            record(
                node,
                id,
                &entry,
                Attempt::Failed {
                    error: "the packet's bytes are missing from the node database".into(),
                },
            )
            .await;
            return;
        }
        Err(e) => {
            tracing::error!(packet = %id, error = %e, "outbox: cannot read the packet");
            return;
        }
    };
    let outcome = match node.hub.submit(bytes).await {
        Ok(receipt) => match check_receipt(node, id, receipt).await {
            Ok((receipt, xml)) => Attempt::Submitted { receipt, xml },
            Err(problem) => {
                tracing::error!(packet = %id, %problem, "outbox: the hub's receipt is refused");
                transient(
                    node,
                    &entry,
                    format!("the hub's receipt is refused: {problem}"),
                )
            }
        },
        Err(e) if e.is_permanent() => Attempt::Failed {
            error: format!("the hub refused the packet: {e}"),
        },
        Err(e) => transient(node, &entry, e.to_string()),
    };
    record(node, id, &entry, outcome).await;
}

async fn record(node: &Shared, id: PacketId, entry: &OutboxEntry, outcome: Attempt) {
    let kind = entry.kind.as_str();
    let document = entry.document_id.as_str();
    match node.db.record_attempt(id, outcome).await {
        Ok(e) => match e.state {
            OutboxState::Submitted => tracing::info!(
                packet = %id, kind, document, attempts = e.attempts,
                at = e.submitted_at.map(|t| t.to_string()).unwrap_or_default(),
                "outbox: accepted by the hub"
            ),
            OutboxState::Failed => tracing::error!(
                packet = %id, kind, document, attempts = e.attempts,
                error = e.last_error.as_deref().unwrap_or(""),
                "outbox: failed"
            ),
            OutboxState::Queued => {
                node.metrics.retried();
                tracing::warn!(
                packet = %id, kind, document, attempts = e.attempts,
                retry_at = %exchange::Timestamp::from_unix_ms(e.next_attempt_ms.unwrap_or(0)),
                error = e.last_error.as_deref().unwrap_or(""),
                "outbox: will retry"
                )
            }
        },
        Err(e) => tracing::error!(packet = %id, error = %e, "outbox: cannot record the attempt"),
    }
}

/// A transient failure: retry later, or give up when the entry is too old.
fn transient(node: &Shared, entry: &OutboxEntry, error: String) -> Attempt {
    after_transient(
        entry,
        error,
        clock::now_ms(),
        node.config.retry.give_up_after(),
        &node.backoff,
    )
}

/// What a transient failure at `now_ms` leads to: a retry after a backoff delay, or, once
/// `give_up_after` has passed since the entry was created, failure.
pub fn after_transient(
    entry: &OutboxEntry,
    error: String,
    now_ms: u64,
    give_up_after: Duration,
    backoff: &Backoff,
) -> Attempt {
    let attempts = entry.attempts.saturating_add(1);
    let age = Duration::from_millis(now_ms.saturating_sub(entry.created_at.unix_ms()));
    if age >= give_up_after {
        return Attempt::Failed {
            error: format!(
                "gave up after {attempts} attempt(s) over {}: last error: {error}",
                human_duration(age)
            ),
        };
    }
    let delay = backoff.delay(attempts);
    Attempt::Retry {
        error,
        next_ms: now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
    }
}

/// Verifies a submission receipt: the pinned hub signature, then its content.
async fn check_receipt(
    node: &Shared,
    id: PacketId,
    receipt: Vec<u8>,
) -> Result<(HubReceipt, String), String> {
    let hub = node.hub_cert_der.clone();
    let heads = std::sync::Arc::clone(&node.receipt_heads);
    let parsed = tokio::task::spawn_blocking(move || {
        let parsed =
            verify_receipt(&receipt, &hub, &heads).map_err(|e| format!("its signature: {e}"))?;
        let xml = String::from_utf8(receipt).map_err(|_| "it is not UTF-8".to_string())?;
        Ok::<_, String>((parsed, xml))
    })
    .await
    .map_err(|e| format!("verification task failed: {e}"))??;
    let (r, xml) = parsed;
    if r.kind != ReceiptKind::Submission {
        return Err("it is not a submission receipt".into());
    }
    if r.packet_id != id.to_hex() {
        return Err(format!("it names packet {}, not {id}", r.packet_id));
    }
    if r.from != node.config.agency {
        return Err(format!(
            "it names sender {}, not {}",
            r.from, node.config.agency
        ));
    }
    Ok((r, xml))
}

/// "1d 2h 3m 4s" style.
pub fn human_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return format!("{} ms", d.as_millis());
    }
    let mut parts = Vec::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            parts.push(format!("{}{unit}", s / size));
            s %= size;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::RetryConfig;
    use crate::db::PacketKind;

    #[test]
    fn transient_failures_retry_with_backoff_then_give_up() {
        let backoff = Backoff::new(&RetryConfig {
            initial_ms: 100,
            max_ms: 1_000,
            give_up_after_secs: 60,
        });
        let mut entry = OutboxEntry::queued(
            PacketKind::Document,
            "d".into(),
            vec!["B".into()],
            0,
            10_000,
        );
        entry.attempts = 2;
        let give_up = Duration::from_secs(60);
        match after_transient(&entry, "503".into(), 20_000, give_up, &backoff) {
            Attempt::Retry { error, next_ms } => {
                assert_eq!(error, "503");
                // Third attempt: ceiling 400 ms.
                assert!((20_000..=20_400).contains(&next_ms), "{next_ms}");
            }
            other => panic!("{other:?}"),
        }
        match after_transient(
            &entry,
            "connection refused".into(),
            70_000,
            give_up,
            &backoff,
        ) {
            Attempt::Failed { error } => {
                assert_eq!(
                    error,
                    "gave up after 3 attempt(s) over 1m: last error: connection refused"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(human_duration(Duration::from_secs(59)), "59s");
        assert_eq!(
            human_duration(Duration::from_secs(86_400 + 3_600 * 2 + 5)),
            "1d 2h 5s"
        );
    }
}
