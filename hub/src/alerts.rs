//! Operator alerts: what is wrong now, as incidents that open and resolve, each announced by
//! one email.
//!
//! Every `check_secs` the hub looks at its own state (the same figures `/metrics` shows, read
//! from the store and the trust in force) and derives the set of **conditions** that hold now,
//! each under a stable key: `pending:AGENCY` (a delivery waits longer than
//! `pending_after_secs`), `silent:AGENCY` (an agency that polled has not polled for
//! `silent_after_secs`), `refusals` (more than `refusals` submissions refused within
//! `refusal_window_secs`), `certificate:hub` / `certificate:AGENCY` (expires within
//! `certificate_days`), `crl:ISSUER` (next update within `crl_hours`, or past).
//!
//! Tables: `alerts_open`: key → [`Incident`] (JSON); `alerts_past`: seq → [`Incident`]
//! (closed, JSON); `alert_counters`: `seq`.
//!
//! Invariants:
//! - One incident per key while its condition holds: a condition that holds for days raises one
//!   "opened" mail, and one "resolved" mail when it clears, not one per document or per check.
//! - Opening or closing an incident and queueing its mail are one transaction; incidents live
//!   in the store, so a restart neither forgets an open incident nor announces it again.
//! - A condition the hub cannot judge after a restart (an agency's last poll is only known
//!   once it polls again) keeps its open incident open rather than resolving it.
//! - Suspended agencies raise no delivery or polling alerts: an operator stopped them.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use store::codec::{decode, encode};
use store::{DbResult, StoreError};
use tokio::sync::watch;

use crate::service::Hub;

const OPEN: TableDefinition<&str, &[u8]> = TableDefinition::new("alerts_open");
const PAST: TableDefinition<u64, &[u8]> = TableDefinition::new("alerts_past");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("alert_counters");

/// The `[alerts]` section of `hub.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertConfig {
    /// Who gets the alert mails (needs a `[mail]` section). Empty: incidents are still
    /// recorded and shown, no mail is sent.
    pub to: Vec<String>,
    /// How often the state is checked, in seconds.
    pub check_secs: u64,
    /// A delivery pending longer than this raises an alert for its recipient.
    pub pending_after_secs: u64,
    /// An agency that polled before and then not for this long raises an alert.
    pub silent_after_secs: u64,
    /// More refused submissions than this within `refusal_window_secs` raise an alert.
    pub refusals: u64,
    pub refusal_window_secs: u64,
    /// A certificate (the hub's, an agency's) expiring within this many days raises an alert.
    pub certificate_days: u64,
    /// A CRL whose next update is within this many hours (or past) raises an alert.
    pub crl_hours: u64,
    /// Base URL of the operator console, quoted in the mails when set.
    pub console_url: Option<String>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            to: Vec::new(),
            check_secs: 60,
            pending_after_secs: 3600,
            silent_after_secs: 3600,
            refusals: 50,
            refusal_window_secs: 600,
            certificate_days: 30,
            crl_hours: 24,
            console_url: None,
        }
    }
}

impl AlertConfig {
    /// Checks the addresses and the figures.
    pub fn check(&self) -> Result<(), String> {
        for to in &self.to {
            if to.parse::<lettre::message::Mailbox>().is_err() {
                return Err(format!("alerts: to {to:?} is not an email address"));
            }
        }
        if self.check_secs == 0 || self.pending_after_secs == 0 || self.silent_after_secs == 0 {
            return Err(
                "alerts: check_secs, pending_after_secs and silent_after_secs must be at least 1"
                    .into(),
            );
        }
        Ok(())
    }
}

/// What kind of trouble an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Pending,
    Silent,
    Refusals,
    Certificate,
    Crl,
}

/// One incident: opened when its condition started to hold, closed when it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub key: String,
    pub kind: AlertKind,
    /// The agency concerned, when there is one.
    pub agency: Option<String>,
    /// One line, Vietnamese.
    pub summary: String,
    /// The figures when it opened, English and Vietnamese.
    pub detail: String,
    pub opened_ms: u64,
    pub closed_ms: Option<u64>,
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub kind: AlertKind,
    pub agency: Option<String>,
    pub summary: String,
    pub detail: String,
}

/// The state the conditions are judged on (gathered by [`Hub::alert_inputs`]).
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// (agency, pending deliveries, age in seconds of the oldest one).
    pub pending: Vec<(String, u64, f64)>,
    /// (agency, name, active).
    pub agencies: Vec<(String, String, bool)>,
    /// Seconds since each agency last polled (agencies that polled since the hub started).
    pub last_poll: Vec<(String, f64)>,
    /// Submissions refused within the window.
    pub refused_in_window: u64,
    /// (owner: "hub" or an agency code, seconds until its certificate expires).
    pub certificates: Vec<(String, f64)>,
    /// (CRL issuer, seconds until its next update).
    pub crl_next_update: Vec<(String, f64)>,
}

/// The conditions that hold, given `inputs` and the keys of the incidents open now.
pub fn conditions(config: &AlertConfig, inputs: &Inputs, open: &HashSet<String>) -> Vec<Condition> {
    let mut out = Vec::new();
    let names: BTreeMap<&str, (&str, bool)> = inputs
        .agencies
        .iter()
        .map(|(c, n, a)| (c.as_str(), (n.as_str(), *a)))
        .collect();
    let active = |code: &str| names.get(code).is_some_and(|(_, a)| *a);
    let name = |code: &str| names.get(code).map_or("", |(n, _)| *n).to_string();
    for (agency, count, age) in &inputs.pending {
        if active(agency) && *count > 0 && *age >= config.pending_after_secs as f64 {
            out.push(Condition {
                key: format!("pending:{agency}"),
                kind: AlertKind::Pending,
                agency: Some(agency.clone()),
                summary: format!(
                    "{} ({agency}) chưa nhận {count} văn bản; văn bản cũ nhất chờ {}",
                    name(agency),
                    human(*age)
                ),
                detail: format!(
                    "{count} deliveries to {agency} are pending; the oldest has waited {} \
                     (threshold {}).",
                    human(*age),
                    human(config.pending_after_secs as f64)
                ),
            });
        }
    }
    let polled: BTreeMap<&str, f64> = inputs
        .last_poll
        .iter()
        .map(|(a, s)| (a.as_str(), *s))
        .collect();
    for (agency, _, is_active) in &inputs.agencies {
        if !is_active {
            continue;
        }
        let key = format!("silent:{agency}");
        let silent_for = polled.get(agency.as_str()).copied();
        let holds = match silent_for {
            Some(secs) => secs >= config.silent_after_secs as f64,
            // Not polled since the hub started: unknown; an open incident stays open.
            None => open.contains(&key),
        };
        if holds {
            let since = silent_for.map_or_else(
                || "không rõ từ khi hub khởi động lại".to_string(),
                |s| format!("đã {}", human(s)),
            );
            out.push(Condition {
                key,
                kind: AlertKind::Silent,
                agency: Some(agency.clone()),
                summary: format!(
                    "{} ({agency}) ngừng kết nối tới hub ({since})",
                    name(agency)
                ),
                detail: format!(
                    "{agency} has not polled the hub for {} (threshold {}).",
                    silent_for.map_or_else(|| "an unknown time".to_string(), human),
                    human(config.silent_after_secs as f64)
                ),
            });
        }
    }
    if inputs.refused_in_window > config.refusals {
        out.push(Condition {
            key: "refusals".into(),
            kind: AlertKind::Refusals,
            agency: None,
            summary: format!(
                "Hub từ chối {} gói tin trong {}",
                inputs.refused_in_window,
                human(config.refusal_window_secs as f64)
            ),
            detail: format!(
                "{} submissions were refused within {} (threshold {}).",
                inputs.refused_in_window,
                human(config.refusal_window_secs as f64),
                config.refusals
            ),
        });
    }
    let cert_limit = config.certificate_days as f64 * 86_400.0;
    for (owner, secs) in &inputs.certificates {
        let concerns_agency = owner != "hub";
        if concerns_agency && !active(owner) {
            continue;
        }
        if *secs < cert_limit {
            let whose = if concerns_agency {
                format!("{} ({owner})", name(owner))
            } else {
                "của hub".to_string()
            };
            let when = if *secs <= 0.0 {
                "đã hết hạn".to_string()
            } else {
                format!("hết hạn sau {}", human(*secs))
            };
            out.push(Condition {
                key: format!("certificate:{owner}"),
                kind: AlertKind::Certificate,
                agency: concerns_agency.then(|| owner.clone()),
                summary: format!("Chứng thư số {whose} {when}"),
                detail: format!(
                    "The certificate of {owner} expires in {} (threshold {} days).",
                    human(*secs),
                    config.certificate_days
                ),
            });
        }
    }
    let crl_limit = config.crl_hours as f64 * 3600.0;
    for (issuer, secs) in &inputs.crl_next_update {
        if *secs < crl_limit {
            let when = if *secs <= 0.0 {
                "đã quá hạn cập nhật".to_string()
            } else {
                format!("cần cập nhật trong {}", human(*secs))
            };
            out.push(Condition {
                key: format!("crl:{issuer}"),
                kind: AlertKind::Crl,
                agency: None,
                summary: format!("Danh sách thu hồi (CRL) của {issuer} {when}"),
                detail: format!(
                    "The CRL of {issuer} has its next update in {} (threshold {} hours); \
                     fetch a fresh CRL and run `docaxis hub reload`.",
                    human(*secs),
                    config.crl_hours
                ),
            });
        }
    }
    out
}

/// A duration for people: "45 s", "12 min", "3 h 5 min", "2 d 4 h" (negative: "0 s").
pub fn human(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Creates the tables (from the hub database's `init`).
pub fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(OPEN).db()?;
    txn.open_table(PAST).db()?;
    txn.open_table(COUNTERS).db()?;
    Ok(())
}

/// The incidents open now, by key.
pub fn open_incidents(txn: &ReadTransaction) -> Result<Vec<Incident>, StoreError> {
    let t = txn.open_table(OPEN).db()?;
    let mut out = Vec::new();
    for row in t.iter().db()? {
        out.push(decode(row.db()?.1.value())?);
    }
    Ok(out)
}

/// Closed incidents, newest first, at most `limit`.
pub fn past_incidents(txn: &ReadTransaction, limit: usize) -> Result<Vec<Incident>, StoreError> {
    let t = txn.open_table(PAST).db()?;
    let mut out = Vec::new();
    for row in t.iter().db()?.rev().take(limit) {
        out.push(decode(row.db()?.1.value())?);
    }
    Ok(out)
}

/// What [`apply`] changed.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    pub opened: Vec<String>,
    pub resolved: Vec<String>,
}

/// What applying the conditions changes: incidents to open, incidents to close (with their
/// closing time set), and the mail reporting each change.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub open: Vec<Incident>,
    pub close: Vec<Incident>,
    pub mails: Vec<mail::Mail>,
}

impl Plan {
    /// The keys opened and resolved.
    pub fn changes(&self) -> Changes {
        Changes {
            opened: self.open.iter().map(|i| i.key.clone()).collect(),
            resolved: self.close.iter().map(|i| i.key.clone()).collect(),
        }
    }
}

/// Decides, from the incidents open now (`existing`), which to open (a condition without an
/// incident) and which to close (an incident whose condition no longer holds), with one mail
/// per change to `to` (none when `to` is empty). Each backend writes the plan in one
/// transaction with the reading of `existing` ([`apply`] for redb).
pub fn plan(
    existing: Vec<Incident>,
    conditions: &[Condition],
    to: &[String],
    console_url: Option<&str>,
    now_ms: u64,
) -> Plan {
    let mut plan = Plan::default();
    let holding: HashSet<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
    let known: HashSet<String> = existing.iter().map(|i| i.key.clone()).collect();
    let footer = console_url.map_or_else(String::new, |u| {
        format!("\nBảng điều khiển / Console: {u}alerts\n")
    });
    for c in conditions.iter().filter(|c| !known.contains(&c.key)) {
        plan.open.push(Incident {
            key: c.key.clone(),
            kind: c.kind,
            agency: c.agency.clone(),
            summary: c.summary.clone(),
            detail: c.detail.clone(),
            opened_ms: now_ms,
            closed_ms: None,
        });
        if !to.is_empty() {
            plan.mails.push(mail::Mail {
                to: to.to_vec(),
                subject: format!("[DocAxis] CẢNH BÁO: {}", c.summary),
                body: format!(
                    "Sự cố mới trên trục liên thông văn bản / New incident on the document axis\n\n\
                     {}\n{}\n\nMã sự cố / key: {}\nMở lúc / opened: {}\n\
                     Một thư khác sẽ báo khi sự cố được khắc phục. / \
                     Another mail follows when it is resolved.\n{footer}",
                    c.summary,
                    c.detail,
                    c.key,
                    rfc3339(now_ms)
                ),
            });
        }
    }
    for mut incident in existing
        .into_iter()
        .filter(|i| !holding.contains(i.key.as_str()))
    {
        incident.closed_ms = Some(now_ms);
        if !to.is_empty() {
            plan.mails.push(mail::Mail {
                to: to.to_vec(),
                subject: format!("[DocAxis] ĐÃ KHẮC PHỤC: {}", incident.summary),
                body: format!(
                    "Sự cố đã được khắc phục / Incident resolved\n\n{}\n\n\
                     Mã sự cố / key: {}\nMở lúc / opened: {}\nĐóng lúc / resolved: {} \
                     (kéo dài / lasted {})\n{footer}",
                    incident.summary,
                    incident.key,
                    rfc3339(incident.opened_ms),
                    rfc3339(now_ms),
                    human(now_ms.saturating_sub(incident.opened_ms) as f64 / 1000.0)
                ),
            });
        }
        plan.close.push(incident);
    }
    plan
}

/// Opens an incident for each condition without one and closes each incident whose condition
/// no longer holds, queueing one mail per change to `to` (none when `to` is empty), all in
/// the caller's redb transaction.
pub fn apply(
    txn: &WriteTransaction,
    conditions: &[Condition],
    to: &[String],
    console_url: Option<&str>,
    now_ms: u64,
) -> Result<Changes, StoreError> {
    let mut open = txn.open_table(OPEN).db()?;
    let mut existing: Vec<Incident> = Vec::new();
    for row in open.iter().db()? {
        existing.push(decode(row.db()?.1.value())?);
    }
    let plan = plan(existing, conditions, to, console_url, now_ms);
    for incident in &plan.open {
        open.insert(incident.key.as_str(), encode(incident)?.as_slice())
            .db()?;
    }
    let mut past = txn.open_table(PAST).db()?;
    let mut counters = txn.open_table(COUNTERS).db()?;
    for incident in &plan.close {
        open.remove(incident.key.as_str()).db()?;
        let seq = counters.get("seq").db()?.map_or(0, |v| v.value()) + 1;
        counters.insert("seq", seq).db()?;
        past.insert(seq, encode(incident)?.as_slice()).db()?;
    }
    for m in &plan.mails {
        mail::queue::enqueue(txn, m, now_ms)?;
    }
    Ok(plan.changes())
}

fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Checks every `check_secs` until `stop`; wakes `mailer` when a check queued mail.
pub async fn watch(
    hub: Arc<Hub>,
    config: AlertConfig,
    mailer: Option<Arc<mail::Mailer>>,
    mut stop: watch::Receiver<bool>,
) {
    // Recipients only when mail can go out; incidents are recorded either way.
    let to: Vec<String> = if mailer.is_some() {
        config.to.clone()
    } else {
        Vec::new()
    };
    // (when, refusals counted so far): the refusals within the window are the difference.
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
    let window = Duration::from_secs(config.refusal_window_secs.max(1));
    loop {
        let refused = hub.metrics.refused_total();
        let now = Instant::now();
        samples.push_back((now, refused));
        while samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > window)
        {
            samples.pop_front();
        }
        let baseline = samples.front().map_or(refused, |(_, r)| *r);
        match check(&hub, &config, &to, refused - baseline.min(refused)).await {
            Ok(changes) => {
                for key in &changes.opened {
                    tracing::warn!(%key, "alert opened");
                }
                for key in &changes.resolved {
                    tracing::info!(%key, "alert resolved");
                }
                if (!changes.opened.is_empty() || !changes.resolved.is_empty())
                    && let Some(m) = &mailer
                {
                    m.notify();
                }
            }
            Err(e) => tracing::warn!(error = %e, "alert check failed; next check as usual"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(config.check_secs.max(1))) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One check: gathers the inputs, derives the conditions, applies them in one transaction.
async fn check(
    hub: &Arc<Hub>,
    config: &AlertConfig,
    to: &[String],
    refused_in_window: u64,
) -> Result<Changes, crate::service::HubError> {
    let mut inputs = hub.alert_inputs().await?;
    inputs.refused_in_window = refused_in_window;
    let open: HashSet<String> = hub
        .db
        .open_incidents()
        .await?
        .into_iter()
        .map(|i| i.key)
        .collect();
    let found = conditions(config, &inputs, &open);
    Ok(hub
        .db
        .apply_alerts(found, to.to_vec(), config.console_url.clone(), now_ms())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Store;

    fn config() -> AlertConfig {
        AlertConfig {
            to: vec!["van-hanh@hub.demo".into()],
            pending_after_secs: 20,
            silent_after_secs: 60,
            refusals: 5,
            ..AlertConfig::default()
        }
    }

    fn inputs() -> Inputs {
        Inputs {
            pending: vec![("H14".into(), 3, 25.0), ("H41".into(), 1, 5.0)],
            agencies: vec![
                ("H14".into(), "UBND Tỉnh Cao Bằng".into(), true),
                ("H41".into(), "UBND Tỉnh Nghệ An".into(), true),
                ("S01".into(), "Sở bị đình chỉ".into(), false),
            ],
            last_poll: vec![("H41".into(), 2.0)],
            refused_in_window: 0,
            certificates: vec![("hub".into(), 400.0 * 86_400.0), ("H41".into(), 86_400.0)],
            crl_next_update: vec![("CN=DocAxis CA".into(), 30.0 * 86_400.0)],
        }
    }

    #[test]
    fn conditions_name_the_agency_in_trouble_and_skip_suspended_ones() {
        let mut i = inputs();
        i.pending.push(("S01".into(), 9, 9_999.0));
        let found = conditions(&config(), &i, &HashSet::new());
        let keys: Vec<&str> = found.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, vec!["pending:H14", "certificate:H41"]);
        assert!(
            found[0].summary.contains("UBND Tỉnh Cao Bằng"),
            "{}",
            found[0].summary
        );
        assert!(
            found[0].summary.contains("3 văn bản"),
            "{}",
            found[0].summary
        );
        // H14 never polled since the start: unknown, so only an open incident stays open.
        let open: HashSet<String> = ["silent:H14".to_string()].into();
        let found = conditions(&config(), &i, &open);
        assert!(found.iter().any(|c| c.key == "silent:H14"));
        i.refused_in_window = 6;
        i.crl_next_update[0].1 = -5.0;
        i.last_poll[0].1 = 61.0;
        let keys: Vec<String> = conditions(&config(), &i, &HashSet::new())
            .into_iter()
            .map(|c| c.key)
            .collect();
        for k in ["silent:H41", "refusals", "crl:CN=DocAxis CA"] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
    }

    #[tokio::test]
    async fn one_mail_when_an_incident_opens_and_one_when_it_clears() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a.redb"), |t| {
            create_tables(t)?;
            mail::queue::create_tables(t)
        })
        .unwrap();
        let cfg = config();
        let to = cfg.to.clone();
        let found = conditions(&cfg, &inputs(), &HashSet::new());
        let apply_now = |found: Vec<Condition>, at: u64| {
            let to = to.clone();
            let store = store.clone();
            async move {
                store
                    .write(move |t| apply(t, &found, &to, Some("http://127.0.0.1:1/"), at))
                    .await
                    .unwrap()
            }
        };
        let first = apply_now(found.clone(), 1_000).await;
        assert_eq!(first.opened, vec!["pending:H14", "certificate:H41"]);
        // The same conditions again (a later check, or after a restart): nothing new.
        assert_eq!(apply_now(found.clone(), 2_000).await, Changes::default());
        assert_eq!(store.read(mail::queue::counts).await.unwrap(), (2, 0));
        // H14 takes its documents: its incident resolves; the certificate one stays.
        let still: Vec<Condition> = found
            .into_iter()
            .filter(|c| c.key != "pending:H14")
            .collect();
        let cleared = apply_now(still, 61_000).await;
        assert_eq!(cleared.resolved, vec!["pending:H14"]);
        let open = store.read(open_incidents).await.unwrap();
        assert_eq!(open.len(), 1);
        let past = store.read(|t| past_incidents(t, 10)).await.unwrap();
        assert_eq!(past[0].key, "pending:H14");
        assert_eq!(past[0].closed_ms, Some(61_000));
        let mails = store.read(|t| mail::queue::waiting(t, 10)).await.unwrap();
        assert_eq!(mails.len(), 3);
        assert!(
            mails[0]
                .mail
                .subject
                .starts_with("[DocAxis] CẢNH BÁO: UBND Tỉnh Cao Bằng")
        );
        assert!(
            mails[2]
                .mail
                .subject
                .starts_with("[DocAxis] ĐÃ KHẮC PHỤC: UBND Tỉnh Cao Bằng")
        );
        assert!(
            mails[2].mail.body.contains("1 min"),
            "{}",
            mails[2].mail.body
        );
        assert!(mails[0].mail.body.contains("http://127.0.0.1:1/alerts"));
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(-3.0), "0 s");
        assert_eq!(human(45.2), "45 s");
        assert_eq!(human(720.0), "12 min");
        assert_eq!(human(11_100.0), "3 h 5 min");
        assert_eq!(human(187_200.0), "2 d 4 h");
    }
}
