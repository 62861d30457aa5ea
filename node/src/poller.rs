//! The one long-poll loop behind the node's pullers (the inbox and the receipt collector):
//! poll the hub, hand what it listed to the puller, pause when needed, stop at shutdown.
//!
//! Invariants:
//! - An unreachable hub is retried with backoff (growing with consecutive failures), never in
//!   a tight loop.
//! - When a poll listed items and none went through (all set aside or failed locally), the hub
//!   would list them again at once: the loop waits, growing with such rounds (at least 100 ms).
//! - Shutdown is honoured while polling and while pausing; an item being handled is finished
//!   first (handlers commit before they acknowledge).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use super::Shared;
use super::hub_api::HubCallError;

/// What a puller does with the hub; [`run`] does the rest.
pub(crate) trait Puller {
    type Item;
    /// `inbox` or `receipts`, for the logs.
    const NAME: &'static str;

    /// One long poll.
    fn poll(
        &mut self,
        node: &Shared,
    ) -> impl Future<Output = Result<Vec<Self::Item>, HubCallError>> + Send;

    /// Handles what one poll listed; returns how many went through.
    fn handle(
        &mut self,
        node: &Shared,
        items: Vec<Self::Item>,
    ) -> impl Future<Output = usize> + Send;
}

/// Runs `puller` until `shutdown` turns true.
pub(crate) async fn run<P: Puller>(
    node: Shared,
    mut puller: P,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    let mut idle_rounds = 0u32;
    loop {
        let list = tokio::select! {
            _ = shutdown.changed() => break,
            r = puller.poll(&node) => r,
        };
        let pause = match list {
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = node.backoff.delay(failures);
                tracing::warn!(error = %e, retry_in = ?delay, "{}: cannot poll the hub", P::NAME);
                delay
            }
            Ok(items) => {
                failures = 0;
                let listed = items.len();
                let through = puller.handle(&node, items).await;
                if listed > 0 && through == 0 {
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
