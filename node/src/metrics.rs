//! The node's Prometheus metrics (`GET /metrics` on the clerk listener, behind the token),
//! with `prometheus-client`.
//!
//! Retries are counted where they happen (`outbox`); the outbox and inbox figures are read from
//! the store at scrape time, so they never drift from what the node holds.
//!
//! Invariants: bounded labels (states only); Prometheus names (`docaxis_node_` prefix,
//! counters end in `_total`, added by the encoder).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::db::Counts;

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

/// Every metric of a node, registered once.
pub struct NodeMetrics {
    registry: Registry,
    retries: Counter,
    outbox: Family<StateLabel, Gauge>,
    inbox: Family<StateLabel, Gauge>,
    anomalies: Gauge,
    unmatched_receipts: Gauge,
    store_commits: Counter,
    seen_commits: AtomicU64,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        NodeMetrics::new()
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::with_prefix("docaxis_node");
        let retries = Counter::default();
        registry.register(
            "submission_retries",
            "Submission attempts that failed transiently and were rescheduled",
            retries.clone(),
        );
        let outbox = Family::<StateLabel, Gauge>::default();
        registry.register(
            "outbox_packets",
            "Packets in the outbox by state (queued, submitted, failed)",
            outbox.clone(),
        );
        let inbox = Family::<StateLabel, Gauge>::default();
        registry.register(
            "inbox_packets",
            "Packets received by state (new: documents no clerk has handled yet; handled: the rest)",
            inbox.clone(),
        );
        let anomalies = Gauge::default();
        registry.register(
            "anomalies",
            "Received statuses that match nothing this node sent (kept for review)",
            anomalies.clone(),
        );
        let unmatched_receipts = Gauge::default();
        registry.register(
            "unmatched_receipts",
            "Hub delivery receipts about packets this node has no record of sending",
            unmatched_receipts.clone(),
        );
        let store_commits = Counter::default();
        registry.register(
            "store_commits",
            "Durable commits (each one fsync) of the node's store",
            store_commits.clone(),
        );
        NodeMetrics {
            registry,
            retries,
            outbox,
            inbox,
            anomalies,
            unmatched_receipts,
            store_commits,
            seen_commits: AtomicU64::new(0),
        }
    }

    /// Counts a submission rescheduled after a transient failure.
    pub fn retried(&self) {
        self.retries.inc();
    }

    /// Sets the state figures and encodes every metric (OpenMetrics text).
    pub fn render(&self, counts: &Counts, store_commits: u64) -> Result<String, std::fmt::Error> {
        for (state, n) in [
            ("queued", counts.outbox_queued),
            ("submitted", counts.outbox_submitted),
            ("failed", counts.outbox_failed),
        ] {
            self.outbox
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(gauge_value(n));
        }
        for (state, n) in [
            ("new", counts.inbox_new),
            (
                "handled",
                counts.inbox_total.saturating_sub(counts.inbox_new),
            ),
        ] {
            self.inbox
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(gauge_value(n));
        }
        self.anomalies.set(gauge_value(counts.anomalies));
        self.unmatched_receipts
            .set(gauge_value(counts.unmatched_receipts));
        let before = self
            .seen_commits
            .fetch_max(store_commits, Ordering::Relaxed);
        if store_commits > before {
            self.store_commits.inc_by(store_commits - before);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_outbox_inbox_and_retries() {
        let m = NodeMetrics::new();
        m.retried();
        m.retried();
        let counts = Counts {
            outbox_queued: 1,
            outbox_submitted: 4,
            outbox_failed: 0,
            inbox_new: 2,
            inbox_total: 7,
            anomalies: 0,
            unmatched_receipts: 0,
        };
        let text = m.render(&counts, 9).unwrap();
        for line in [
            "docaxis_node_submission_retries_total 2",
            "docaxis_node_outbox_packets{state=\"submitted\"} 4",
            "docaxis_node_inbox_packets{state=\"new\"} 2",
            "docaxis_node_inbox_packets{state=\"handled\"} 5",
            "docaxis_node_store_commits_total 9",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let again = m.render(&counts, 9).unwrap();
        assert!(
            again
                .lines()
                .any(|l| l == "docaxis_node_store_commits_total 9")
        );
    }
}
