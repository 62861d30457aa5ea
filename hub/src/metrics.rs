//! The hub's Prometheus metrics (`GET /metrics` on the admin listener), with
//! `prometheus-client`.
//!
//! Two kinds of figures:
//! - **events**, counted where they happen: submissions by outcome, deliveries, receipts, the
//!   time a submission took and the time from acceptance to delivery, the size of every store
//!   batch;
//! - **state**, read from the store and the trust at scrape time (never a second copy that can
//!   drift): per agency the pending deliveries and the age of the oldest one, agencies by
//!   state, seconds to each certificate's expiry and to each CRL's next update, seconds since
//!   each agency last polled.
//!
//! Invariants:
//! - Labels are bounded: outcomes are protocol error codes, agency labels are codes from the
//!   directory, issuers come from the configured CRLs. Never a document or packet id.
//! - Names follow Prometheus conventions: `docaxis_hub_` prefix, base units (`_seconds`),
//!   counters end in `_total` (added by the encoder).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Kind {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgencyLabel {
    agency: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabel {
    /// `hub`, or the agency code.
    owner: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabel {
    issuer: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// What the scrape reads from the store and trust (gathered by the caller).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// (agency, pending deliveries, age in seconds of the oldest one).
    pub pending: Vec<(String, u64, f64)>,
    /// (agency, active).
    pub agencies: Vec<(String, bool)>,
    /// Seconds until the hub's signing certificate expires.
    pub hub_certificate_seconds: f64,
    /// (CRL issuer, seconds until its next update; None when it names none).
    pub crl_next_update: Vec<(String, Option<f64>)>,
    /// Store writer totals (commits, jobs) since the store opened.
    pub store_commits: u64,
    pub store_jobs: u64,
    /// Operator incidents open now.
    pub alerts_open: u64,
    /// Operator mails waiting to be sent.
    pub mail_queued: u64,
}

/// Every metric of the hub, registered once.
pub struct HubMetrics {
    registry: Registry,
    submissions: Family<Outcome, Counter>,
    submission_seconds: Histogram,
    deliveries: Counter,
    delivery_latency: Histogram,
    receipts: Family<Kind, Counter>,
    store_commits: Counter,
    store_jobs: Counter,
    store_batch: Histogram,
    receipt_batch: Histogram,
    pending: Family<AgencyLabel, Gauge>,
    oldest_pending: Family<AgencyLabel, FloatGauge>,
    agencies: Family<StateLabel, Gauge>,
    certificate_expiry: Family<CertLabel, FloatGauge>,
    crl_next_update: Family<IssuerLabel, FloatGauge>,
    last_poll_age: Family<AgencyLabel, FloatGauge>,
    alerts_open: Gauge,
    mail_queued: Gauge,
    /// Last poll per agency (agencies that passed `authorize`, so bounded by the directory).
    last_poll: Mutex<HashMap<String, Instant>>,
    /// Agency certificate expiry as last presented: agency -> (fingerprint, unix seconds).
    agency_certs: Mutex<HashMap<String, (String, i64)>>,
    /// Refused submissions since the start (what the refusal alert watches).
    refused: AtomicU64,
    /// Store totals already added to the counters.
    seen_commits: AtomicU64,
    seen_jobs: AtomicU64,
    /// Hub signatures over receipt batches, and the receipts they covered, since the start.
    receipt_signatures: AtomicU64,
    receipts_signed: AtomicU64,
    /// Serialises scrapes: gauge families are rebuilt while encoding.
    scrape: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for HubMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubMetrics").finish_non_exhaustive()
    }
}

impl Default for HubMetrics {
    fn default() -> Self {
        HubMetrics::new()
    }
}

impl HubMetrics {
    pub fn new() -> HubMetrics {
        let mut registry = Registry::with_prefix("docaxis_hub");
        let submissions = Family::<Outcome, Counter>::default();
        registry.register(
            "submissions",
            "Packets submitted, by outcome: accepted, resubmitted, or the refusal code",
            submissions.clone(),
        );
        let submission_seconds = Histogram::new(exponential_buckets(0.000_5, 2.0, 16));
        registry.register_with_unit(
            "submission_duration",
            "Time to check, sign the receipt of and commit one submission",
            Unit::Seconds,
            submission_seconds.clone(),
        );
        let deliveries = Counter::default();
        registry.register(
            "deliveries",
            "Deliveries completed (a recipient durably stored a packet)",
            deliveries.clone(),
        );
        let delivery_latency = Histogram::new(exponential_buckets(0.01, 3.0, 14));
        registry.register_with_unit(
            "delivery_latency",
            "Time from the hub's acceptance of a packet to its delivery to a recipient",
            Unit::Seconds,
            delivery_latency.clone(),
        );
        let receipts = Family::<Kind, Counter>::default();
        registry.register(
            "receipts_issued",
            "Signed receipts issued, by kind (submission, delivery)",
            receipts.clone(),
        );
        let store_commits = Counter::default();
        registry.register(
            "store_commits",
            "Durable commits (each one fsync) of the hub's store",
            store_commits.clone(),
        );
        let store_jobs = Counter::default();
        registry.register(
            "store_jobs",
            "Write jobs committed by the hub's store (jobs / commits is the mean batch)",
            store_jobs.clone(),
        );
        let store_batch = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        registry.register(
            "store_batch_jobs",
            "Write jobs sharing one transaction of the hub's store",
            store_batch.clone(),
        );
        let receipt_batch = Histogram::new(exponential_buckets(1.0, 2.0, 12));
        registry.register(
            "receipt_batch_receipts",
            "Receipts signed with one hub signature (one batch, its tree head signed once)",
            receipt_batch.clone(),
        );
        let pending = Family::<AgencyLabel, Gauge>::default();
        registry.register(
            "pending_deliveries",
            "Deliveries waiting for a recipient agency",
            pending.clone(),
        );
        let oldest_pending = Family::<AgencyLabel, FloatGauge>::default();
        registry.register_with_unit(
            "oldest_pending_age",
            "Age of the oldest delivery waiting for a recipient agency",
            Unit::Seconds,
            oldest_pending.clone(),
        );
        let agencies = Family::<StateLabel, Gauge>::default();
        registry.register(
            "agencies",
            "Registered agencies by state (active, suspended)",
            agencies.clone(),
        );
        let certificate_expiry = Family::<CertLabel, FloatGauge>::default();
        registry.register_with_unit(
            "certificate_expiry",
            "Time until a certificate expires: the hub's signing certificate (owner=hub) and \
             each agency's client certificate as last presented (owner=agency code)",
            Unit::Seconds,
            certificate_expiry.clone(),
        );
        let crl_next_update = Family::<IssuerLabel, FloatGauge>::default();
        registry.register_with_unit(
            "crl_next_update",
            "Time until each loaded CRL's nextUpdate (negative: overdue)",
            Unit::Seconds,
            crl_next_update.clone(),
        );
        let last_poll_age = Family::<AgencyLabel, FloatGauge>::default();
        registry.register_with_unit(
            "last_poll_age",
            "Time since an agency last asked for its inbox (since this hub started)",
            Unit::Seconds,
            last_poll_age.clone(),
        );
        let alerts_open = Gauge::default();
        registry.register(
            "alerts_open",
            "Operator incidents open now (pending deliveries, silent agencies, refusals, \
             certificates, CRLs)",
            alerts_open.clone(),
        );
        let mail_queued = Gauge::default();
        registry.register(
            "mail_queued",
            "Operator alert mails waiting to be accepted by the SMTP server",
            mail_queued.clone(),
        );
        HubMetrics {
            registry,
            alerts_open,
            mail_queued,
            submissions,
            submission_seconds,
            deliveries,
            delivery_latency,
            receipts,
            store_commits,
            store_jobs,
            store_batch,
            receipt_batch,
            pending,
            oldest_pending,
            agencies,
            certificate_expiry,
            crl_next_update,
            last_poll_age,
            last_poll: Mutex::new(HashMap::new()),
            agency_certs: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            seen_commits: AtomicU64::new(0),
            seen_jobs: AtomicU64::new(0),
            receipt_signatures: AtomicU64::new(0),
            receipts_signed: AtomicU64::new(0),
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts one submission's outcome (`accepted`, `resubmitted` or a refusal code).
    pub fn submitted(&self, outcome: &str, seconds: f64) {
        if outcome != "accepted" && outcome != "resubmitted" {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        self.submissions
            .get_or_create(&Outcome {
                outcome: outcome.to_string(),
            })
            .inc();
        self.submission_seconds.observe(seconds);
    }

    /// Counts a signed receipt.
    pub fn receipt(&self, kind: &str) {
        self.receipts
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// Counts a completed delivery and how long it waited at the hub.
    pub fn delivered(&self, waited_seconds: f64) {
        self.deliveries.inc();
        self.delivery_latency.observe(waited_seconds.max(0.0));
        self.receipt("delivery");
    }

    /// Observes one store batch.
    pub fn store_batch(&self, jobs: usize) {
        self.store_batch.observe(jobs as f64);
    }

    /// Observes one signature over a batch of `receipts` receipts.
    pub fn receipt_batch(&self, receipts: usize) {
        self.receipt_batch.observe(receipts as f64);
        self.receipt_signatures.fetch_add(1, Ordering::Relaxed);
        self.receipts_signed
            .fetch_add(receipts as u64, Ordering::Relaxed);
    }

    /// Hub signatures over receipt batches since the start, and the receipts they covered.
    pub fn receipt_signing(&self) -> (u64, u64) {
        (
            self.receipt_signatures.load(Ordering::Relaxed),
            self.receipts_signed.load(Ordering::Relaxed),
        )
    }

    /// Submissions refused since the hub started.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Seconds since each agency last polled (those that polled since the hub started).
    pub fn last_poll_ages(&self) -> Vec<(String, f64)> {
        self.last_poll
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, at)| (a.clone(), at.elapsed().as_secs_f64()))
            .collect()
    }

    /// Seconds until each agency's certificate expires, as last presented.
    pub fn agency_certificate_seconds(&self) -> Vec<(String, f64)> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.agency_certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, (_, not_after))| (a.clone(), (not_after - now) as f64))
            .collect()
    }

    /// When each agency last polled, in Unix milliseconds (what this process saw, and what
    /// [`HubMetrics::merge_polls`] learnt from other replicas).
    pub fn poll_times(&self) -> Vec<(String, u64)> {
        let now = Instant::now();
        let now_ms = exchange::clock::now_ms();
        self.last_poll
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(a, at)| {
                let ago = now.saturating_duration_since(*at).as_millis() as u64;
                (a.clone(), now_ms.saturating_sub(ago))
            })
            .collect()
    }

    /// Takes in polls other replicas saw (Unix milliseconds): each agency's last poll becomes
    /// the later of the two.
    pub fn merge_polls(&self, polls: Vec<(String, u64)>) {
        let now = Instant::now();
        let now_ms = exchange::clock::now_ms();
        let mut last = self.last_poll.lock().unwrap_or_else(|p| p.into_inner());
        for (agency, ms) in polls {
            let ago = std::time::Duration::from_millis(now_ms.saturating_sub(ms));
            let at = now.checked_sub(ago).unwrap_or(now);
            let entry = last.entry(agency).or_insert(at);
            if at > *entry {
                *entry = at;
            }
        }
    }

    /// Notes that `agency` polled, with the certificate it presented (fingerprint and DER).
    pub fn polled(&self, agency: &str, fingerprint: &str, cert_der: &[u8]) {
        self.last_poll
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agency.to_string(), Instant::now());
        let mut certs = self.agency_certs.lock().unwrap_or_else(|p| p.into_inner());
        if certs.get(agency).is_some_and(|(f, _)| f == fingerprint) {
            return;
        }
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) {
            let not_after = cert.validity().not_after.timestamp();
            certs.insert(agency.to_string(), (fingerprint.to_string(), not_after));
        }
    }

    /// Sets the state gauges from `snap` and encodes every metric (OpenMetrics text).
    pub async fn render(&self, snap: Snapshot) -> Result<String, std::fmt::Error> {
        let _one_at_a_time = self.scrape.lock().await;
        let add = |seen: &AtomicU64, total: u64, counter: &Counter| {
            let before = seen.swap(total, Ordering::Relaxed);
            if total > before {
                counter.inc_by(total - before);
            }
        };
        add(&self.seen_commits, snap.store_commits, &self.store_commits);
        add(&self.seen_jobs, snap.store_jobs, &self.store_jobs);

        self.pending.clear();
        self.oldest_pending.clear();
        let known: std::collections::HashSet<&str> =
            snap.agencies.iter().map(|(c, _)| c.as_str()).collect();
        for (code, _) in &snap.agencies {
            let label = AgencyLabel {
                agency: code.clone(),
            };
            self.pending.get_or_create(&label).set(0);
            self.oldest_pending.get_or_create(&label).set(0.0);
        }
        for (code, count, age) in &snap.pending {
            if !known.contains(code.as_str()) {
                continue;
            }
            let label = AgencyLabel {
                agency: code.clone(),
            };
            self.pending
                .get_or_create(&label)
                .set(i64::try_from(*count).unwrap_or(i64::MAX));
            self.oldest_pending.get_or_create(&label).set(*age);
        }
        self.alerts_open.set(snap.alerts_open as i64);
        self.mail_queued.set(snap.mail_queued as i64);
        self.agencies.clear();
        let active = snap.agencies.iter().filter(|(_, a)| *a).count();
        for (state, n) in [
            ("active", active),
            ("suspended", snap.agencies.len() - active),
        ] {
            self.agencies
                .get_or_create(&StateLabel {
                    state: state.into(),
                })
                .set(n as i64);
        }
        let now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
        self.certificate_expiry.clear();
        self.certificate_expiry
            .get_or_create(&CertLabel {
                owner: "hub".into(),
            })
            .set(snap.hub_certificate_seconds);
        for (agency, (_, not_after)) in self
            .agency_certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if known.contains(agency.as_str()) {
                self.certificate_expiry
                    .get_or_create(&CertLabel {
                        owner: agency.clone(),
                    })
                    .set((not_after - now_unix) as f64);
            }
        }
        self.crl_next_update.clear();
        for (issuer, secs) in &snap.crl_next_update {
            if let Some(secs) = secs {
                self.crl_next_update
                    .get_or_create(&IssuerLabel {
                        issuer: issuer.clone(),
                    })
                    .set(*secs);
            }
        }
        self.last_poll_age.clear();
        for (agency, at) in self
            .last_poll
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if known.contains(agency.as_str()) {
                self.last_poll_age
                    .get_or_create(&AgencyLabel {
                        agency: agency.clone(),
                    })
                    .set(at.elapsed().as_secs_f64());
            }
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
    fn polls_seen_elsewhere_count_when_they_are_later() {
        let m = HubMetrics::new();
        let now = exchange::clock::now_ms();
        m.merge_polls(vec![("H41".into(), now - 600_000)]);
        let ages: HashMap<String, f64> = m.last_poll_ages().into_iter().collect();
        assert!((599.0..700.0).contains(&ages["H41"]), "{ages:?}");
        // An older poll from another replica changes nothing; a newer one wins.
        m.merge_polls(vec![("H41".into(), now - 900_000)]);
        let ages: HashMap<String, f64> = m.last_poll_ages().into_iter().collect();
        assert!(ages["H41"] < 700.0, "{ages:?}");
        m.merge_polls(vec![("H41".into(), now - 5_000)]);
        let times: HashMap<String, u64> = m.poll_times().into_iter().collect();
        assert!(times["H41"] >= now - 6_000, "{times:?}");
    }

    #[tokio::test]
    async fn renders_events_and_state_with_conventional_names() {
        let m = HubMetrics::new();
        m.submitted("accepted", 0.002);
        m.submitted("signature", 0.001);
        m.submitted("accepted", 0.003);
        m.receipt("submission");
        m.delivered(1.5);
        m.store_batch(3);
        m.receipt_batch(5);
        let text = m
            .render(Snapshot {
                pending: vec![("B".into(), 2, 30.0), ("GHOST".into(), 9, 1.0)],
                agencies: vec![("A".into(), true), ("B".into(), false)],
                hub_certificate_seconds: 86_400.0,
                crl_next_update: vec![("CN=Test CA".into(), Some(3600.0))],
                store_commits: 5,
                store_jobs: 7,
                alerts_open: 1,
                mail_queued: 2,
            })
            .await
            .unwrap();
        for line in [
            "docaxis_hub_submissions_total{outcome=\"accepted\"} 2",
            "docaxis_hub_submissions_total{outcome=\"signature\"} 1",
            "docaxis_hub_deliveries_total 1",
            "docaxis_hub_receipts_issued_total{kind=\"delivery\"} 1",
            "docaxis_hub_store_commits_total 5",
            "docaxis_hub_alerts_open 1",
            "docaxis_hub_mail_queued 2",
            "docaxis_hub_store_jobs_total 7",
            "docaxis_hub_pending_deliveries{agency=\"A\"} 0",
            "docaxis_hub_pending_deliveries{agency=\"B\"} 2",
            "docaxis_hub_oldest_pending_age_seconds{agency=\"B\"} 30.0",
            "docaxis_hub_agencies{state=\"suspended\"} 1",
            "docaxis_hub_certificate_expiry_seconds{owner=\"hub\"} 86400.0",
            "docaxis_hub_crl_next_update_seconds{issuer=\"CN=Test CA\"} 3600.0",
            "docaxis_hub_submission_duration_seconds_count 3",
            "docaxis_hub_store_batch_jobs_count 1",
            "docaxis_hub_receipt_batch_receipts_count 1",
            "docaxis_hub_receipt_batch_receipts_sum 5.0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("GHOST"),
            "agencies not in the directory get no label"
        );
        assert!(text.ends_with("# EOF\n"));
        // Store totals are applied as deltas: a second scrape does not double them.
        let again = m
            .render(Snapshot {
                store_commits: 6,
                store_jobs: 7,
                ..Snapshot::default()
            })
            .await
            .unwrap();
        assert!(
            again
                .lines()
                .any(|l| l == "docaxis_hub_store_commits_total 6")
        );
        assert!(
            !again.contains("agency=\"B\""),
            "state gauges are rebuilt per scrape"
        );
    }
}
