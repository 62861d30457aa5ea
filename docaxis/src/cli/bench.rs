//! `docaxis bench`: end-to-end throughput and latency of the exchange on this machine.
//!
//! Runs [`crate::bench::run`] (hub and two nodes in this process, on loopback, durable commits)
//! and prints documents per second and the send-to-inbox latency percentiles, as text or as one
//! JSON object (`--json`). Progress goes to stderr once a second; the figures go to stdout.
//! A build without optimisations says so, loudly, before and in the figures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::bench::{self, BenchKey, BenchOptions, BenchReport, Progress};

/// Measure documents per second and latency end to end: hub and two nodes on loopback.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Documents to send.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Attachment size of each document, in bytes (0: no attachment).
    #[arg(long, default_value_t = 10_240)]
    pub size: usize,
    /// Key type of the agencies' certificates.
    #[arg(long, value_enum, default_value_t = BenchKey::Ecdsa)]
    pub key: BenchKey,
    /// Clerk API calls in flight at once.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// Pace the sending at this many documents per second (default: as fast as accepted).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Folder in which to make the run's folder (default: the temporary folder). Put it on the
    /// disk you want to measure: every commit is fsynced.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the run's folder (PKI, configurations, databases) and print where it is.
    #[arg(long)]
    pub keep: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Most threads of the runtime's blocking pool (signing, verification, database reads);
    /// default: what hub and node use, four per core.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub blocking_threads: Option<u64>,
    /// Keep the hub's state in PostgreSQL: the URL of a database on the server to use (e.g.
    /// postgresql://user@127.0.0.1:5432/postgres). The run makes a database of its own there
    /// and drops it afterwards (kept with --keep).
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Hub replicas on that PostgreSQL database (the sender's node lists them in order, the
    /// recipient's in reverse, so every replica carries traffic). Needs --postgres above 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub hub_replicas: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl BenchArgs {
    /// The engine's options.
    pub(crate) fn options(&self) -> anyhow::Result<BenchOptions> {
        if self.hub_replicas > 1 && self.postgres.is_none() {
            anyhow::bail!(
                "--hub-replicas {} needs --postgres URL: replicas share their state in PostgreSQL \
                 (the embedded redb file belongs to one process)",
                self.hub_replicas
            );
        }
        Ok(BenchOptions {
            hub: bench::HubSetup {
                postgres: self.postgres.clone(),
                replicas: usize::try_from(self.hub_replicas).context("--hub-replicas")?,
            },
            count: usize::try_from(self.count).context("--count is too large")?,
            size: self.size,
            key: self.key,
            concurrency: usize::try_from(self.concurrency).context("--concurrency is too large")?,
            rate: self.rate,
            dir: self.dir.clone(),
            keep: self.keep,
            timeout: Duration::from_secs(self.timeout),
        })
    }
}

/// Runs the benchmark and prints its figures.
pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let opts = args.options()?;
    if cfg!(debug_assertions) {
        eprintln!("WARNING: {}", bench::DEBUG_WARNING);
    }
    eprintln!(
        "docaxis bench: {} documents of {} bytes, {} keys, {} clerk calls in flight{}",
        opts.count,
        opts.size,
        opts.key.as_str(),
        opts.concurrency,
        opts.rate
            .map(|r| format!(", paced at {r}/s"))
            .unwrap_or_default()
    );
    let blocking_threads = match args.blocking_threads {
        Some(n) => usize::try_from(n).context("--blocking-threads is too large")?,
        None => super::server_rt::default_blocking_threads(),
    };
    let rt = super::server_rt::build(Some(blocking_threads))?;
    let mut last = (Duration::ZERO, 0usize);
    let mut report = rt.block_on(bench::run(&opts, |p| {
        eprintln!("{}", progress_line(p, last));
        last = (p.elapsed, p.arrived);
    }))?;
    report.blocking_threads = Some(blocking_threads);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &report)?;
        use std::io::Write as _;
        writeln!(out)?;
    } else {
        print_report(&mut out, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One progress line; `last` is the previous report's (elapsed, arrived).
pub(crate) fn progress_line(p: &Progress, last: (Duration, usize)) -> String {
    let span = p.elapsed.saturating_sub(last.0).as_secs_f64();
    let rate = if span > 0.0 {
        p.arrived.saturating_sub(last.1) as f64 / span
    } else {
        0.0
    };
    format!(
        "[{:6.1} s] sent {}/{}  at recipient {}/{} ({rate:.0}/s)  status 01 back {}/{}",
        p.elapsed.as_secs_f64(),
        p.sent,
        p.count,
        p.arrived,
        p.count,
        p.answered,
        p.count
    )
}

/// The human form of a report.
pub(crate) fn print_report(out: &mut impl std::io::Write, r: &BenchReport) -> std::io::Result<()> {
    if let Some(w) = &r.warning {
        writeln!(out, "WARNING: {w}")?;
    }
    writeln!(
        out,
        "{} documents, {} byte attachments ({} byte signed packets), {} keys, {} CPU(s), {} build",
        r.count,
        r.size_bytes,
        r.packet_bytes,
        r.key.as_str(),
        r.cpus,
        r.build_profile
    )?;
    writeln!(out, "durability: {}", r.durability)?;
    writeln!(
        out,
        "hub:           {} replica(s) on {}; {} document deliveries recorded by the hub",
        r.hub_replicas, r.hub_store, r.delivered
    )?;
    if let Some(load) = r.load_average_before
        && load > r.cpus as f64
    {
        writeln!(
            out,
            "note: the load average was {load:.1} on {} CPU(s) before the run: other processes \
             (or a run that had just ended) were competing for the CPUs, so these figures may be \
             lower than this machine can do",
            r.cpus
        )?;
    }
    if let Some(n) = r.blocking_threads {
        writeln!(out, "runtime:       blocking pool of at most {n} threads")?;
    }
    writeln!(
        out,
        "end to end:    {:.1} documents/s (clerk API call → committed in the recipient's inbox)",
        r.documents_per_second
    )?;
    writeln!(
        out,
        "latency:       p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  (min {:.1}, mean {:.1}, max {:.1})",
        r.latency.p50_ms,
        r.latency.p90_ms,
        r.latency.p99_ms,
        r.latency.min_ms,
        r.latency.mean_ms,
        r.latency.max_ms
    )?;
    writeln!(
        out,
        "clerk API:     {:.1} calls/s, p50 {:.1} ms  p99 {:.1} ms  ({} in flight)",
        r.clerk_calls_per_second, r.clerk_api.p50_ms, r.clerk_api.p99_ms, r.concurrency
    )?;
    let p = &r.phases;
    writeln!(
        out,
        "phases:        setup {:.2} s, sending {:.2} s, first arrival {:.0} ms, all delivered {:.2} s, all status 01 back {:.2} s, shutdown {:.2} s",
        p.setup_secs,
        p.send_secs,
        p.first_arrival_ms,
        p.deliver_secs,
        p.statuses_back_secs,
        p.shutdown_secs
    )?;
    if let Some(cpu) = &r.cpu {
        writeln!(
            out,
            "CPU:           {:.2} s, {:.2} ms per document, {:.0} % of {} CPU(s) busy",
            cpu.seconds,
            cpu.per_document_ms,
            cpu.utilisation * 100.0,
            r.cpus
        )?;
    }
    if let Some(rss) = r.peak_rss_bytes {
        let packet = r.packet_bytes.max(1) as f64;
        let before = r
            .rss_before_bytes
            .map(|b| {
                let added = rss.saturating_sub(b) as f64;
                // Ratios to the packet only say something for packets of a megabyte or more.
                let per_packet = if r.packet_bytes >= 1 << 20 {
                    format!(", {:.1} × the signed packet", added / packet)
                } else {
                    String::new()
                };
                format!(
                    "; {:.1} MB more than before the first document{per_packet}",
                    added / 1e6
                )
            })
            .unwrap_or_default();
        let whole = if r.packet_bytes >= 1 << 20 {
            format!(" ({:.1} × the signed packet)", rss as f64 / packet)
        } else {
            String::new()
        };
        writeln!(
            out,
            "memory:        peak RSS {:.1} MB for hub and both nodes{whole}{before}",
            rss as f64 / 1e6,
        )?;
    }
    writeln!(
        out,
        "hub receipts:  {} signed with {} hub signatures ({:.1} receipts per signature)",
        r.hub_receipts,
        r.hub_receipt_signatures,
        r.hub_receipts as f64 / r.hub_receipt_signatures.max(1) as f64
    )?;
    for c in &r.commits {
        writeln!(
            out,
            "commits:       {:<9} {:>6} fsynced transactions ({:.2} per document), {:.1} jobs each",
            c.database, c.commits, c.commits_per_document, c.jobs_per_commit
        )?;
    }
    if let Some(folder) = &r.folder {
        writeln!(out, "kept:          {folder}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_and_flags() {
        let a = parse(&[]).unwrap();
        let o = a.options().unwrap();
        assert_eq!((o.count, o.size, o.key), (1000, 10_240, BenchKey::Ecdsa));
        assert_eq!(o.concurrency, 32);
        assert_eq!(o.rate, None);
        assert!(!a.json && !o.keep);
        assert_eq!(a.blocking_threads, None);

        let a = parse(&[
            "--count",
            "20",
            "--size",
            "0",
            "--key",
            "rsa",
            "--json",
            "--rate",
            "50.5",
            "--concurrency",
            "4",
            "--keep",
            "--timeout",
            "30",
            "--blocking-threads",
            "16",
        ])
        .unwrap();
        let o = a.options().unwrap();
        assert_eq!((o.count, o.size, o.key), (20, 0, BenchKey::Rsa));
        assert_eq!((o.concurrency, o.rate), (4, Some(50.5)));
        assert!(a.json && o.keep);
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(a.blocking_threads, Some(16));

        for bad in [
            &["--count", "0"][..],
            &["--key", "dsa"],
            &["--size", "-1"],
            &["--concurrency", "0"],
            &["--blocking-threads", "0"],
            &["--frobnicate"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn replicas_need_postgres() {
        let err = parse(&["--hub-replicas", "2"])
            .unwrap()
            .options()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--postgres"), "{err}");
        let o = parse(&[
            "--hub-replicas",
            "2",
            "--postgres",
            "postgresql://u@127.0.0.1/p",
        ])
        .unwrap()
        .options()
        .unwrap();
        assert_eq!(o.hub.replicas, 2);
        assert!(parse(&["--hub-replicas", "0"]).is_err());
    }

    #[test]
    fn the_text_report_carries_the_figures_and_the_warnings() {
        let latency =
            bench::summarize(&[Duration::from_millis(10), Duration::from_millis(30)]).unwrap();
        let report = BenchReport {
            documents_per_second: 123.4,
            latency_p50_ms: latency.p50_ms,
            latency_p99_ms: latency.p99_ms,
            count: 2,
            size_bytes: 10_240,
            key: BenchKey::Rsa,
            packet_bytes: 18_000,
            peak_rss_bytes: Some(90_000_000),
            rss_before_bytes: Some(60_000_000),
            concurrency: 32,
            rate: None,
            clerk_calls_per_second: 400.0,
            latency: latency.clone(),
            clerk_api: latency,
            phases: bench::Phases {
                setup_secs: 0.1,
                send_secs: 0.2,
                first_arrival_ms: 5.0,
                deliver_secs: 0.3,
                statuses_back_secs: 0.4,
                shutdown_secs: 0.05,
            },
            cpu: None,
            commits: Vec::new(),
            arrived: 2,
            statuses_back: 2,
            delivered: 2,
            hub_receipts: 8,
            hub_receipt_signatures: 3,
            hub_store: "postgresql",
            hub_replicas: 2,
            cpus: 2,
            load_average_before: Some(6.5),
            blocking_threads: Some(16),
            build_profile: "debug",
            warning: Some(bench::DEBUG_WARNING.into()),
            durability: "fsync",
            folder: None,
        };
        let mut out = Vec::new();
        print_report(&mut out, &report).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("WARNING: this docaxis was built without optimisations"));
        assert!(text.contains("123.4 documents/s"), "{text}");
        assert!(
            text.contains("p50 10.0 ms") && text.contains("p99 30.0 ms"),
            "{text}"
        );
        assert!(text.contains("rsa keys"), "{text}");
        assert!(
            text.contains("2 replica(s) on postgresql; 2 document deliveries recorded"),
            "{text}"
        );
        assert!(
            text.contains("8 signed with 3 hub signatures (2.7 receipts per signature)"),
            "{text}"
        );
        assert!(text.contains("load average was 6.5"), "{text}");
        assert!(
            text.contains("blocking pool of at most 16 threads"),
            "{text}"
        );
        assert!(
            text.contains(
                "peak RSS 90.0 MB for hub and both nodes; 30.0 MB more than before the first \
                 document\n"
            ),
            "an 18 KB packet gets no ratio: {text}"
        );
        let big = BenchReport {
            packet_bytes: 10_000_000,
            ..report
        };
        let mut out = Vec::new();
        print_report(&mut out, &big).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                "peak RSS 90.0 MB for hub and both nodes (9.0 × the signed packet); 30.0 MB more \
                 than before the first document, 3.0 × the signed packet"
            ),
            "{text}"
        );
    }

    #[test]
    fn progress_lines_show_the_rate_of_the_last_second() {
        let p = Progress {
            elapsed: Duration::from_secs(3),
            count: 1000,
            sent: 800,
            arrived: 600,
            answered: 400,
        };
        let line = progress_line(&p, (Duration::from_secs(2), 350));
        assert!(line.contains("sent 800/1000"), "{line}");
        assert!(line.contains("at recipient 600/1000 (250/s)"), "{line}");
        assert!(line.contains("status 01 back 400/1000"), "{line}");
    }
}
