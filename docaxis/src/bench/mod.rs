//! The engine of `docaxis bench`: end-to-end throughput and latency of the exchange.
//!
//! A run makes a fresh development PKI (agency keys ECDSA P-256 or RSA-2048), starts a hub and
//! two agency nodes in this process on loopback ([`exchange`]), and sends `count` documents with
//! `size`-byte attachments ([`workload`]) from the sender's clerk API, `concurrency` calls at a
//! time (optionally paced at `rate` per second). Every document then goes the whole real way:
//! signed and committed by the sender, submitted over mutual TLS, verified and committed by the
//! hub, pulled, verified and committed (with its signed status 01) by the recipient,
//! acknowledged; the status 01 travels back the same way.
//!
//! What is measured:
//! - latency of a document: from the start of its clerk API call to the instant the
//!   recipient's inbox transaction holding it has committed (the inbox tells
//!   [`node::inbox::InboxWatchers`] right after the commit returns);
//! - throughput: documents / (first call start → last recipient commit);
//! - phases: setup, sending (clerk calls), delivery, status 01 back at the sender.
//!
//! Invariants: nothing is weakened for speed — every signature, schema and trust check runs and
//! every commit is durable (redb `Durability::Immediate`, group commit); a run succeeds only if
//! every document sent reached the recipient and every status 01 came back, otherwise it fails
//! with what is missing; the run's folder is a fresh one and is removed unless kept.

pub(crate) mod cpu;
pub(crate) mod exchange;
pub(crate) mod stats;
pub(crate) mod workload;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::task::JoinSet;

use ::exchange::packet_id::PacketId;
use dsig::pki::{KeyAlgorithm, PkiError};
use node::client::ApiClient;

pub(crate) use self::exchange::{Exchange, HubSetup};
pub(crate) use stats::{LatencySummary, summarize};
use workload::Workload;

/// What a build without optimisations prints before its figures.
pub(crate) const DEBUG_WARNING: &str = "this docaxis was built without optimisations (debug build): \
    the figures are meaningless; run `cargo run --release -p docaxis -- bench`";

/// Key type of the agencies' certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BenchKey {
    /// ECDSA P-256 (signatures ECDSA-SHA256).
    Ecdsa,
    /// RSA 2048 (signatures RSA-SHA256, PKCS#1 v1.5).
    Rsa,
}

impl BenchKey {
    /// The PKI's key algorithm.
    pub(crate) fn algorithm(self) -> KeyAlgorithm {
        match self {
            BenchKey::Ecdsa => KeyAlgorithm::EcdsaP256,
            BenchKey::Rsa => KeyAlgorithm::Rsa2048,
        }
    }

    /// `ecdsa` or `rsa`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BenchKey::Ecdsa => "ecdsa",
            BenchKey::Rsa => "rsa",
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub(crate) struct BenchOptions {
    /// Documents to send (at least 1).
    pub count: usize,
    /// Attachment size of each document, bytes (0: no attachment).
    pub size: usize,
    pub key: BenchKey,
    /// Clerk API calls in flight at once (at least 1).
    pub concurrency: usize,
    /// Start document `i` no earlier than `i / rate` seconds after the first (none: as fast as
    /// the clerk API answers).
    pub rate: Option<f64>,
    /// Folder in which the run's own folder is made (default: the system's temporary folder).
    pub dir: Option<PathBuf>,
    /// Keep the run's folder (PKI, configurations, databases) afterwards.
    pub keep: bool,
    /// Give up when not everything arrived and came back within this time after the first send.
    pub timeout: Duration,
    /// The hub's store and replicas (default: redb, one hub).
    pub hub: HubSetup,
}

impl Default for BenchOptions {
    /// 1000 documents of 10 KiB, ECDSA, 32 calls in flight, 10 minutes at most.
    fn default() -> Self {
        BenchOptions {
            count: 1000,
            size: 10_240,
            key: BenchKey::Ecdsa,
            concurrency: 32,
            rate: None,
            dir: None,
            keep: false,
            timeout: Duration::from_secs(600),
            hub: HubSetup::default(),
        }
    }
}

/// Where a run stands (reported about once a second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub elapsed: Duration,
    pub count: usize,
    /// Clerk API calls answered.
    pub sent: usize,
    /// Documents committed by the recipient.
    pub arrived: usize,
    /// Status 01 committed back at the sender.
    pub answered: usize,
}

/// How long each phase took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Phases {
    /// PKI, hub, registrations, nodes.
    pub setup_secs: f64,
    /// First clerk call start → last clerk answer.
    pub send_secs: f64,
    /// First clerk call start → first document committed by the recipient.
    pub first_arrival_ms: f64,
    /// First clerk call start → last document committed by the recipient.
    pub deliver_secs: f64,
    /// First clerk call start → last status 01 committed by the sender.
    pub statuses_back_secs: f64,
    /// Stopping the nodes and the hub.
    pub shutdown_secs: f64,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BenchReport {
    /// Documents per second end to end (clerk call → recipient commit).
    pub documents_per_second: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub count: usize,
    pub size_bytes: usize,
    pub key: BenchKey,
    /// Size of one signed document packet as sent (the first one; the others differ by a few
    /// bytes at most).
    pub packet_bytes: u64,
    /// The most resident memory the whole process (hub and both nodes) held during the run,
    /// when the system tells (Linux `VmHWM`).
    pub peak_rss_bytes: Option<u64>,
    /// Resident memory when the first document was sent (hub and both nodes running, idle):
    /// what the peak adds to it is what the documents cost.
    pub rss_before_bytes: Option<u64>,
    pub concurrency: usize,
    pub rate: Option<f64>,
    /// Clerk API answers per second over the sending phase.
    pub clerk_calls_per_second: f64,
    /// Clerk call start → recipient commit, every document.
    pub latency: LatencySummary,
    /// Duration of the clerk API call (compose, sign, commit), every document.
    pub clerk_api: LatencySummary,
    pub phases: Phases,
    /// CPU time this process used from the first send to the last status 01 back, when the
    /// system tells (Linux).
    pub cpu: Option<CpuUse>,
    /// Group commit at work, per database.
    pub commits: Vec<Commits>,
    /// Documents committed by the recipient (equals `count` in a report).
    pub arrived: usize,
    /// Status 01 committed back at the sender (equals `count` in a report).
    pub statuses_back: usize,
    /// Deliveries of documents the hub recorded (with their receipts) in its own database
    /// after the run: equals `count` when nothing was lost or delivered twice.
    pub delivered: u64,
    /// Hub receipts signed during the whole run (setup included), and the hub signatures that
    /// covered them (one per batch, `dsig::batch`), summed over the replicas.
    pub hub_receipts: u64,
    pub hub_receipt_signatures: u64,
    /// `redb` or `postgresql`.
    pub hub_store: &'static str,
    /// Hub replicas that served the run.
    pub hub_replicas: usize,
    pub cpus: usize,
    /// One-minute load average of the whole system just before the run, when known: above
    /// `cpus`, other processes were competing for the CPUs and the figures are low.
    pub load_average_before: Option<f64>,
    /// Most threads of the blocking pool, when the caller limited it (the runtime is the
    /// caller's; reported here so figures can be compared).
    pub blocking_threads: Option<usize>,
    /// `release` or `debug`.
    pub build_profile: &'static str,
    /// Set when the figures cannot be trusted (debug build).
    pub warning: Option<String>,
    pub durability: &'static str,
    /// The run's folder, when kept.
    pub folder: Option<String>,
}

/// CPU used over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct CpuUse {
    pub seconds: f64,
    /// CPU milliseconds per document, everything included (both nodes, the hub, the clerk
    /// calls and this benchmark's own bookkeeping).
    pub per_document_ms: f64,
    /// Share of all CPUs busy over the window (1.0 = every CPU all the time).
    pub utilisation: f64,
}

/// Durable commits of one database over the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Commits {
    /// `hub`, `sender` or `recipient`.
    pub database: &'static str,
    /// Transactions committed (each one fsync).
    pub commits: u64,
    /// Write jobs they carried.
    pub jobs: u64,
    pub commits_per_document: f64,
    pub jobs_per_commit: f64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("invalid benchmark option: {0}")]
    Options(String),
    #[error("cannot make the benchmark's PKI: {0}")]
    Pki(#[from] PkiError),
    #[error("cannot start {0}")]
    Start(String),
    #[error("cannot stop {0}")]
    Stop(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the clerk API did not accept document {index}: {message}")]
    Send { index: usize, message: String },
    #[error(
        "timed out after {secs} s: {sent} of {count} documents sent, {arrived} committed by the \
         recipient, {answered} status 01 back at the sender"
    )]
    Timeout {
        secs: u64,
        count: usize,
        sent: usize,
        arrived: usize,
        answered: usize,
    },
    #[error("document packet {0} was accepted by the clerk API but never reached the recipient")]
    Missing(String),
    #[error("a benchmark task failed: {0}")]
    Task(String),
}

/// `release` or `debug`, for the crate as compiled.
pub(crate) fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Runs a benchmark; `progress` is called about once a second while documents move.
pub(crate) async fn run(
    opts: &BenchOptions,
    mut progress: impl FnMut(&Progress),
) -> Result<BenchReport, BenchError> {
    check(opts)?;
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_uppercase();
    let base = opts.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("docaxis-bench-{}", tag.to_lowercase()));
    std::fs::create_dir_all(&dir).map_err(|source| BenchError::Io {
        path: dir.clone(),
        source,
    })?;
    let load = cpu::load_average();
    // A PostgreSQL hub gets a database of its own on the server named.
    let mut opts = opts.clone();
    let made = match opts.hub.postgres.clone() {
        Some(url) => {
            let name = format!("docaxis_bench_{}", tag.to_lowercase());
            let run_url = hub::db::pg::create_database(&url, &name)
                .await
                .map_err(|e| BenchError::Start(format!("the PostgreSQL database: {e}")))?;
            opts.hub.postgres = Some(run_url);
            Some((url, name))
        }
        None => None,
    };
    let result = run_in(&dir, &tag, &opts, &mut progress).await.map(|mut r| {
        r.load_average_before = load;
        r
    });
    if let Some((url, name)) = made
        && !opts.keep
        && let Err(e) = hub::db::pg::drop_database(&url, &name).await
    {
        eprintln!("note: the benchmark's database {name} could not be dropped: {e}");
    }
    if opts.keep {
        result.map(|mut r| {
            r.folder = Some(dir.display().to_string());
            r
        })
    } else {
        let removed = std::fs::remove_dir_all(&dir);
        let report = result?;
        removed.map_err(|source| BenchError::Io { path: dir, source })?;
        Ok(report)
    }
}

fn check(opts: &BenchOptions) -> Result<(), BenchError> {
    if opts.count == 0 {
        return Err(BenchError::Options("count must be at least 1".into()));
    }
    if opts.concurrency == 0 {
        return Err(BenchError::Options("concurrency must be at least 1".into()));
    }
    if let Some(rate) = opts.rate
        && !(rate.is_finite() && rate > 0.0)
    {
        return Err(BenchError::Options(format!(
            "rate must be a positive number of documents per second, not {rate}"
        )));
    }
    Ok(())
}

async fn run_in(
    dir: &std::path::Path,
    tag: &str,
    opts: &BenchOptions,
    progress: &mut impl FnMut(&Progress),
) -> Result<BenchReport, BenchError> {
    let started = Instant::now();
    let exchange = Exchange::start(dir, opts.key.algorithm(), &opts.hub).await?;
    let setup = started.elapsed();
    let measured = drive(&exchange, tag, opts, progress).await;
    let stopping = Instant::now();
    let stopped = exchange.shutdown().await;
    let shutdown = stopping.elapsed();
    let mut report = measured?;
    stopped?;
    report.phases.setup_secs = setup.as_secs_f64();
    report.phases.shutdown_secs = shutdown.as_secs_f64();
    Ok(report)
}

/// One document as the clerk API accepted it.
struct SentDoc {
    id: PacketId,
    start: Instant,
    answered: Instant,
}

/// Sends everything, waits for every arrival and every status 01, and computes the figures.
async fn drive(
    exchange: &Exchange,
    tag: &str,
    opts: &BenchOptions,
    progress: &mut impl FnMut(&Progress),
) -> Result<BenchReport, BenchError> {
    let mut arrivals_rx = exchange.recipient.node().inbox_watchers.subscribe();
    let mut answers_rx = exchange.sender.node().inbox_watchers.subscribe();
    let clerk = ApiClient::new(
        exchange.sender.api_addr(),
        exchange.sender.token().to_string(),
    )
    .map_err(|e| BenchError::Start(format!("the clerk API client: {e}")))?;
    let workload = Arc::new(Workload::new(exchange::RECIPIENT.0, opts.size, tag));
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let count = opts.count;

    let hub_stats = || {
        exchange.hubs.iter().map(|h| h.hub.db.writer_stats()).fold(
            store::WriterStats::default(),
            |a, b| store::WriterStats {
                commits: a.commits + b.commits,
                jobs: a.jobs + b.jobs,
            },
        )
    };
    let stores: [(&'static str, StatsOf<'_>); 3] = [
        ("hub", Box::new(hub_stats)),
        (
            "sender",
            Box::new(|| exchange.sender.node().db.store().writer_stats()),
        ),
        (
            "recipient",
            Box::new(|| exchange.recipient.node().db.store().writer_stats()),
        ),
    ];
    let stats_before = stores.each_ref().map(|(_, stats)| stats());
    let cpu_before = cpu::process_cpu_time();
    let rss_before = cpu::rss_bytes();
    let t0 = Instant::now();
    let mut workers: JoinSet<Result<Vec<SentDoc>, BenchError>> = JoinSet::new();
    for _ in 0..opts.concurrency.min(count) {
        let (clerk, workload, next, sent) =
            (clerk.clone(), workload.clone(), next.clone(), sent.clone());
        let rate = opts.rate;
        workers.spawn(async move {
            let mut out = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok(out);
                }
                let request = workload.request_body(index);
                if let Some(rate) = rate {
                    let at = t0 + Duration::from_secs_f64(index as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                }
                let start = Instant::now();
                let answer = clerk
                    .send_body(request)
                    .await
                    .map_err(|e| BenchError::Send {
                        index: index + 1,
                        message: e.to_string(),
                    })?;
                let answered = Instant::now();
                let id = answer.packet_id.parse().map_err(|e| BenchError::Send {
                    index: index + 1,
                    message: format!("the answer names no packet: {e}"),
                })?;
                sent.fetch_add(1, Ordering::Relaxed);
                out.push(SentDoc {
                    id,
                    start,
                    answered,
                });
            }
        });
    }

    let mut docs: Vec<SentDoc> = Vec::with_capacity(count);
    let mut arrivals: HashMap<PacketId, Instant> = HashMap::with_capacity(count);
    let mut answered = 0usize;
    let mut last_answer = t0;
    let deadline = tokio::time::Instant::from(t0 + opts.timeout);
    let second = Duration::from_secs(1);
    let mut tick = tokio::time::interval_at((t0 + second).into(), second);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !(workers.is_empty() && arrivals.len() >= count && answered >= count) {
        tokio::select! {
            Some(c) = arrivals_rx.recv() => {
                if c.document {
                    arrivals.insert(c.id, c.at);
                }
            }
            Some(c) = answers_rx.recv() => {
                if !c.document {
                    answered += 1;
                    last_answer = last_answer.max(c.at);
                }
            }
            Some(done) = workers.join_next(), if !workers.is_empty() => {
                match done {
                    Ok(Ok(list)) => docs.extend(list),
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(BenchError::Task(e.to_string())),
                }
            }
            _ = tick.tick() => progress(&Progress {
                elapsed: t0.elapsed(),
                count,
                sent: sent.load(Ordering::Relaxed),
                arrived: arrivals.len(),
                answered,
            }),
            () = tokio::time::sleep_until(deadline) => {
                return Err(BenchError::Timeout {
                    secs: opts.timeout.as_secs(),
                    count,
                    sent: sent.load(Ordering::Relaxed),
                    arrived: arrivals.len(),
                    answered,
                });
            }
        }
    }
    let window = t0.elapsed();
    let commits = stores
        .iter()
        .zip(stats_before)
        .map(|((database, stats), before)| {
            let after = stats();
            let commits = after.commits.saturating_sub(before.commits);
            let jobs = after.jobs.saturating_sub(before.jobs);
            Commits {
                database,
                commits,
                jobs,
                commits_per_document: commits as f64 / count as f64,
                jobs_per_commit: jobs as f64 / (commits.max(1)) as f64,
            }
        })
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = match (cpu_before, cpu::process_cpu_time()) {
        (Some(before), Some(after)) => {
            let seconds = after.saturating_sub(before).as_secs_f64();
            Some(CpuUse {
                seconds,
                per_document_ms: seconds * 1_000.0 / count as f64,
                utilisation: seconds / (window.as_secs_f64() * cpus as f64).max(f64::EPSILON),
            })
        }
        _ => None,
    };
    progress(&Progress {
        elapsed: t0.elapsed(),
        count,
        sent: docs.len(),
        arrived: arrivals.len(),
        answered,
    });

    let mut latencies = Vec::with_capacity(count);
    let mut calls = Vec::with_capacity(count);
    let mut first_start = t0 + opts.timeout;
    let mut last_answered = t0;
    let mut first_arrival = t0 + opts.timeout;
    let mut last_arrival = t0;
    for d in &docs {
        let at = *arrivals
            .get(&d.id)
            .ok_or_else(|| BenchError::Missing(d.id.to_hex()))?;
        latencies.push(at.saturating_duration_since(d.start));
        calls.push(d.answered.saturating_duration_since(d.start));
        first_start = first_start.min(d.start);
        last_answered = last_answered.max(d.answered);
        first_arrival = first_arrival.min(at);
        last_arrival = last_arrival.max(at);
    }
    let latency = summarize(&latencies).ok_or_else(|| BenchError::Missing("(none)".into()))?;
    let clerk_api = summarize(&calls).ok_or_else(|| BenchError::Missing("(none)".into()))?;
    let deliver = last_arrival.saturating_duration_since(first_start);
    let send = last_answered.saturating_duration_since(first_start);
    let packet_bytes = match docs.first() {
        Some(d) => exchange
            .sender
            .node()
            .db
            .packet(d.id)
            .await
            .map_err(|e| BenchError::Task(format!("reading a sent packet: {e}")))?
            .map_or(0, |b| b.len() as u64),
        None => 0,
    };
    // The recipient acknowledges after its commit: the hub may record the last deliveries a
    // moment after the recipient's inbox has them.
    let hub = &exchange.hubs[0].hub;
    let settle = Instant::now() + Duration::from_secs(10);
    let delivered = loop {
        let now = ::exchange::Timestamp::now();
        let delivered: u64 = hub
            .db
            .traffic(now, now, now, 24)
            .await
            .map_err(|e| BenchError::Task(format!("reading the hub's deliveries: {e}")))?
            .hours
            .iter()
            .map(|h| h.deliveries)
            .sum();
        if delivered >= count as u64 || Instant::now() > settle {
            break delivered;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (hub_receipt_signatures, hub_receipts) = exchange
        .hubs
        .iter()
        .map(|h| h.hub.metrics.receipt_signing())
        .fold((0, 0), |(s, r), (s2, r2)| (s + s2, r + r2));
    Ok(BenchReport {
        hub_receipts,
        hub_receipt_signatures,
        delivered,
        hub_store: hub.db.backend_name(),
        hub_replicas: exchange.hubs.len(),
        documents_per_second: per_second(count, deliver),
        latency_p50_ms: latency.p50_ms,
        latency_p99_ms: latency.p99_ms,
        count,
        size_bytes: opts.size,
        key: opts.key,
        packet_bytes,
        peak_rss_bytes: cpu::peak_rss_bytes(),
        rss_before_bytes: rss_before,
        concurrency: opts.concurrency,
        rate: opts.rate,
        clerk_calls_per_second: per_second(count, send),
        latency,
        clerk_api,
        phases: Phases {
            setup_secs: 0.0,
            send_secs: send.as_secs_f64(),
            first_arrival_ms: first_arrival
                .saturating_duration_since(first_start)
                .as_secs_f64()
                * 1_000.0,
            deliver_secs: deliver.as_secs_f64(),
            statuses_back_secs: last_answer
                .saturating_duration_since(first_start)
                .as_secs_f64(),
            shutdown_secs: 0.0,
        },
        cpu,
        commits,
        arrived: arrivals.len(),
        statuses_back: answered,
        cpus,
        load_average_before: None,
        blocking_threads: None,
        build_profile: build_profile(),
        warning: cfg!(debug_assertions).then(|| DEBUG_WARNING.to_string()),
        durability: match hub.db.backend_name() {
            "postgresql" => {
                "nodes: redb Durability::Immediate (fsync, group commit); hub: PostgreSQL commits \
                 (synchronous_commit as the server is configured)"
            }
            _ => "redb Durability::Immediate (fsync on every commit, group commit)",
        },
        folder: None,
    })
}

/// Reads one database's writer statistics (the hub's: summed over its replicas).
type StatsOf<'a> = Box<dyn Fn() -> store::WriterStats + 'a>;

fn per_second(count: usize, over: Duration) -> f64 {
    let secs = over.as_secs_f64();
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let ok = BenchOptions::default();
        assert!(check(&ok).is_ok());
        for (bad, word) in [
            (
                BenchOptions {
                    count: 0,
                    ..BenchOptions::default()
                },
                "count",
            ),
            (
                BenchOptions {
                    concurrency: 0,
                    ..BenchOptions::default()
                },
                "concurrency",
            ),
            (
                BenchOptions {
                    rate: Some(0.0),
                    ..BenchOptions::default()
                },
                "rate",
            ),
            (
                BenchOptions {
                    rate: Some(f64::NAN),
                    ..BenchOptions::default()
                },
                "rate",
            ),
        ] {
            let err = check(&bad).unwrap_err();
            assert!(err.to_string().contains(word), "{err}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_run_delivers_every_document_and_every_status() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let opts = BenchOptions {
            count: 20,
            size: 2_000,
            concurrency: 4,
            dir: Some(dir.path().to_owned()),
            timeout: Duration::from_secs(120),
            ..BenchOptions::default()
        };
        let mut reports = 0;
        let report = run(&opts, |_| reports += 1).await.unwrap();
        assert_eq!(report.count, 20);
        assert_eq!(report.arrived, 20);
        assert_eq!(report.statuses_back, 20);
        assert_eq!(report.latency.count, 20);
        assert_eq!(report.clerk_api.count, 20);
        assert_eq!(report.key, BenchKey::Ecdsa);
        assert!(report.packet_bytes > 2_000, "{}", report.packet_bytes);
        assert!(reports >= 1, "the final progress is always reported");
        assert!(report.latency.min_ms <= report.latency_p50_ms);
        assert!(report.latency_p50_ms <= report.latency_p99_ms);
        assert!(report.folder.is_none());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the run's folder is removed"
        );
    }
}
