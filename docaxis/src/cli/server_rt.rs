//! The async runtime of the long-running roles: hub, node, demo and bench.
//!
//! Tokio's blocking pool grows to 512 threads by default. The exchange hands it every
//! packet's signing, verification, schema validation and database read, so under load it ran
//! dozens of threads on a few cores: the kernel switched between them and each thread's
//! caches and allocator heap went cold. Capped at four threads per core, the same work
//! queues instead, and `docaxis bench` moves 15–25 % more documents per second with less CPU
//! per document (README, "Where a document's time goes").
//!
//! Nothing that runs on the blocking pool waits for another blocking task (the store's
//! writer is a thread of its own), so a small pool cannot deadlock; a slow task only delays
//! the ones queued behind it.

use anyhow::Context as _;

/// Blocking threads per core the servers use.
const PER_CORE: usize = 4;

/// The blocking pool's size for this machine: four threads per core the process may use.
pub(crate) fn default_blocking_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * PER_CORE
}

/// A multi-threaded runtime with `blocking_threads` (default: [`default_blocking_threads`]).
pub(crate) fn build(blocking_threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(
            blocking_threads
                .unwrap_or_else(default_blocking_threads)
                .max(1),
        )
        .build()
        .context("cannot start the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_scales_with_the_cores_and_a_runtime_starts() {
        let n = default_blocking_threads();
        assert!(n >= PER_CORE && n.is_multiple_of(PER_CORE), "{n}");
        let rt = build(Some(0)).unwrap();
        assert_eq!(
            rt.block_on(async { tokio::task::spawn_blocking(|| 7).await.unwrap() }),
            7
        );
    }
}
