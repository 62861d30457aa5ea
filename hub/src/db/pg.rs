//! The hub's PostgreSQL backend: the state of [`super::redb::RedbHub`] in tables that any
//! number of hub replicas share (`[store] postgres = "postgresql://…"` in `hub.toml`).
//!
//! Tables (`hub/migrations/0001_hub.sql`): `agencies`, `packets` (bytes, meta, sender, kind,
//! acceptance time), `business_keys`, `deliveries` (the queue is the pending rows),
//! `receipt_counters` and `sender_receipts`, `by_document`, `alerts_open`, `alerts_past`,
//! `mail_queue`, `mail_counters`. The operators' ledger needs no tables of its own here: its
//! counts and searches read partial indexes on `packets` and `deliveries`.
//!
//! Invariants:
//! - Each operation that writes is one transaction, committed before the call returns (the
//!   server's `synchronous_commit` decides how durable a commit is: keep it `on`, the default).
//! - Uniqueness is the database's: `packets.id` and `business_keys.key` are primary keys, and
//!   a submission inserts them with `ON CONFLICT DO NOTHING` and looks at what won. Two
//!   replicas storing the same packet at once: the second waits for the first's commit, then
//!   answers with the first's receipt.
//! - A delivery row is locked (`FOR UPDATE`) before its receipt is written: two replicas
//!   acknowledging the same packet keep one receipt. Rows are locked in packet-id order and
//!   receipt counters in sender order, so concurrent acknowledgements cannot deadlock.
//! - A sender's receipt sequence numbers are given under the lock of its counter row, hence
//!   in commit order.
//! - Commits that other replicas must hear about notify them in the same transaction
//!   (`pg_notify`, delivered at commit): `docaxis_inbox` (payload: the recipient),
//!   `docaxis_receipts` (the sender), `docaxis_directory` (an agency code).
//! - Alert changes take a transaction-scoped advisory lock, so replicas judging the same
//!   conditions open (and mail) an incident once.
//! - The mail queue leases what it hands a sender for [`MAIL_LEASE_MS`]: replicas do not send
//!   the same mail at once; a replica that dies mid-send leaves the mail to another after the
//!   lease (at-least-once, like the embedded queue after a crash).
//!
//! Migrations: the files under `hub/migrations`, embedded in the binary, applied in order at
//! connection under a session advisory lock (replicas starting together apply each once) and
//! recorded in `docaxis_migrations`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::{IsolationLevel, NoTls, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use exchange::clock::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;
use store::WriterStats;

use super::{
    Agency, AlertsView, Delivery, DocumentHistory, HubDbError, InlineBudget, NewPacket, PacketMeta,
    PendingPacket, PendingSummary, Submitted, Traffic, business_key, document_owner, urgency_rank,
};
use crate::alerts::{Changes, Condition, Incident};
use crate::ledger::{Found, MS_PER_HOUR, Matcher, SCAN_LIMIT, Search};

/// The schema, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../../migrations/0001_hub.sql"))];

/// Advisory lock key held while migrations run ("docaxis" in ASCII).
const MIGRATION_LOCK: i64 = 0x0064_6f63_6178_6973;
/// Advisory lock key of alert changes.
const ALERT_LOCK: i64 = 0x0064_6f63_6178_6974;

/// How long a mail handed to a sender stays reserved for it.
pub const MAIL_LEASE_MS: u64 = 5 * 60 * 1000;

/// Most shared CRLs a replica takes in (the newest; every replica keeps its own files too).
pub const SHARED_CRLS: i64 = 50;

/// Most connections one replica opens.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// The notification channels (see the module invariants).
pub const CHANNEL_INBOX: &str = "docaxis_inbox";
pub const CHANNEL_RECEIPTS: &str = "docaxis_receipts";
pub const CHANNEL_DIRECTORY: &str = "docaxis_directory";

/// A PostgreSQL failure, said for a human.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("the PostgreSQL address is not usable: {0}")]
    Config(String),
    #[error("PostgreSQL: {0}")]
    Query(String),
    #[error("no PostgreSQL connection: {0}")]
    Pool(String),
    #[error("a record in PostgreSQL is corrupt: {0}")]
    Corrupt(String),
}

/// How connections to PostgreSQL are made: in clear (no `[store] ca`: the database is on the
/// hub's private network), or over TLS verifying the server's chain to the configured CAs
/// and its name (then `sslmode=require` in the URL refuses a server without TLS).
#[derive(Clone)]
pub enum PgTls {
    Plain,
    Verified(MakeRustlsConnect),
}

impl PgTls {
    /// TLS with `ca` (PEM files) as the only roots; `Plain` when `ca` is empty.
    pub fn from_ca_files(ca: &[std::path::PathBuf]) -> Result<PgTls, PgError> {
        if ca.is_empty() {
            return Ok(PgTls::Plain);
        }
        let mut config = net::tls::client_config_without_auth(ca)
            .map_err(|e| PgError::Config(format!("[store] ca: {e}")))?;
        // PostgreSQL negotiates its own way; no HTTP protocols are offered to it.
        config.alpn_protocols.clear();
        Ok(PgTls::Verified(MakeRustlsConnect::new(config)))
    }

    async fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio::task::JoinHandle<Option<String>>,
            Connection,
        ),
        tokio_postgres::Error,
    > {
        // Each arm drives its own connection type; the caller gets the client, and the
        // notifications through `Connection`.
        match self {
            PgTls::Plain => {
                let (client, connection) = config.connect(NoTls).await?;
                Ok(drive(client, connection))
            }
            PgTls::Verified(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                Ok(drive(client, connection))
            }
        }
    }
}

/// The notifications of a connection driven in its own task.
type Connection = tokio::sync::mpsc::UnboundedReceiver<Heard>;

/// Drives `connection` in a task that forwards its notifications; the task ends with why the
/// connection ended.
fn drive<S, T>(
    client: tokio_postgres::Client,
    mut connection: tokio_postgres::Connection<S, T>,
) -> (
    tokio_postgres::Client,
    tokio::task::JoinHandle<Option<String>>,
    Connection,
)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use futures_util::StreamExt as _;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Heard>();
    let task = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if let Some(h) = Heard::from_notification(n.channel(), n.payload()) {
                        let _ = tx.send(h);
                    }
                }
                Ok(_) => {}
                Err(e) => return Some(e.to_string()),
            }
        }
        None
    });
    (client, task, rx)
}

/// An error with its causes ("error performing TLS handshake: invalid peer certificate: …"):
/// the driver's own Display leaves out why.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl From<tokio_postgres::Error> for PgError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's own message says what is wrong; the driver's Display alone is terse.
        match e.as_db_error() {
            Some(db) => PgError::Query(format!("{}: {}", db.code().code(), db.message())),
            None => PgError::Query(with_causes(&e)),
        }
    }
}

impl From<deadpool_postgres::PoolError> for PgError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        PgError::Pool(with_causes(&e))
    }
}

impl From<tokio_postgres::Error> for HubDbError {
    fn from(e: tokio_postgres::Error) -> Self {
        HubDbError::Postgres(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for HubDbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        HubDbError::Postgres(e.into())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String, HubDbError> {
    serde_json::to_string(v).map_err(|e| PgError::Corrupt(format!("cannot encode: {e}")).into())
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, HubDbError> {
    serde_json::from_str(s).map_err(|e| {
        PgError::Corrupt(format!(
            "cannot decode a stored {}: {e}",
            std::any::type_name::<T>()
        ))
        .into()
    })
}

fn packet_id(bytes: &[u8]) -> Result<PacketId, HubDbError> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| PgError::Corrupt(format!("a packet id of {} bytes", bytes.len())))?;
    Ok(PacketId(arr))
}

fn ms(v: i64) -> Timestamp {
    Timestamp::from_unix_ms(u64::try_from(v).unwrap_or(0))
}

fn db_ms(t: Timestamp) -> i64 {
    i64::try_from(t.unix_ms()).unwrap_or(i64::MAX)
}

/// A delivery row from the columns (packet_id, queued_ms, rank, seq, delivered_ms, receipt)
/// starting at `at`.
fn delivery(row: &Row, at: usize) -> Delivery {
    let queued: i64 = row.get(at);
    let rank: i16 = row.get(at + 1);
    let seq: i64 = row.get(at + 2);
    let delivered: Option<i64> = row.get(at + 3);
    let receipt: Option<String> = row.get(at + 4);
    Delivery {
        queued_at: ms(queued),
        delivered_at: delivered.map(ms),
        receipt,
        queue_key: (
            u8::try_from(rank).unwrap_or(u8::MAX),
            u64::try_from(seq).unwrap_or(0),
        ),
    }
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    observer: OnceLock<store::BatchObserver>,
}

/// The hub's state in PostgreSQL, through a connection pool.
#[derive(Clone)]
pub struct PgHub {
    pool: Pool,
    config: Arc<tokio_postgres::Config>,
    tls: PgTls,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for PgHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgHub")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .finish_non_exhaustive()
    }
}

/// Parses a `postgresql://…` URL (or a `key=value` string), with a connection timeout when
/// it names none.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, PgError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::Config(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    if config.get_application_name().is_none() {
        config.application_name("docaxis-hub");
    }
    Ok(config)
}

impl PgHub {
    /// Connects to `url` in clear with a pool of [`DEFAULT_POOL_SIZE`] and applies the
    /// migrations.
    pub async fn connect(url: &str) -> Result<PgHub, HubDbError> {
        Self::connect_with(url, DEFAULT_POOL_SIZE, PgTls::Plain).await
    }

    /// Connects with at most `pool_size` connections made with `tls`, and applies the
    /// migrations.
    pub async fn connect_with(
        url: &str,
        pool_size: usize,
        tls: PgTls,
    ) -> Result<PgHub, HubDbError> {
        let config = parse_url(url)?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match &tls {
            PgTls::Plain => Manager::from_config(config.clone(), NoTls, manager_config),
            PgTls::Verified(t) => Manager::from_config(config.clone(), t.clone(), manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| PgError::Config(e.to_string()))?;
        let hub = PgHub {
            pool,
            config: Arc::new(config),
            tls,
            counters: Arc::new(Counters::default()),
        };
        hub.migrate().await?;
        Ok(hub)
    }

    /// The connection settings (the listener opens its own connection with them).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// How connections are made.
    pub fn tls(&self) -> &PgTls {
        &self.tls
    }

    async fn migrate(&self) -> Result<(), HubDbError> {
        let mut client = self.pool.get().await?;
        exec(&client, "SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
        let result = async {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS docaxis_migrations (
                        version integer PRIMARY KEY,
                        applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await?;
            for (version, sql) in MIGRATIONS {
                let tx = client.transaction().await?;
                let done = query_row_opt(
                    &tx,
                    "SELECT 1 FROM docaxis_migrations WHERE version = $1",
                    &[version],
                )
                .await?
                .is_some();
                if !done {
                    tx.batch_execute(sql).await?;
                    exec(
                        &tx,
                        "INSERT INTO docaxis_migrations (version) VALUES ($1)",
                        &[version],
                    )
                    .await?;
                    tracing::info!(version, "PostgreSQL schema migrated");
                }
                tx.commit().await?;
            }
            Ok::<_, HubDbError>(())
        }
        .await;
        // Unlocked either way (a failed unlock ends with the session anyway).
        let _ = exec(&client, "SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
        result
    }

    fn committed(&self) {
        self.counters.commits.fetch_add(1, Ordering::Relaxed);
        if let Some(observe) = self.counters.observer.get() {
            observe(1);
        }
    }

    pub(super) fn writer_stats(&self) -> WriterStats {
        let commits = self.counters.commits.load(Ordering::Relaxed);
        WriterStats {
            commits,
            jobs: commits,
        }
    }

    pub(super) fn observe_batches(&self, observer: store::BatchObserver) {
        let _ = self.counters.observer.set(observer);
    }

    pub(super) fn mail_queue(&self) -> Arc<dyn mail::queue::MailStore> {
        Arc::new(PgMailQueue { hub: self.clone() })
    }

    // ---- agencies ----

    pub(super) async fn add_agency(&self, agency: Agency) -> Result<(), HubDbError> {
        let body = to_json(&agency)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let n = exec(
            &tx,
            "INSERT INTO agencies (code, body) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING",
            &[&agency.code, &body],
        )
        .await?;
        if n == 0 {
            return Err(HubDbError::AgencyExists(agency.code));
        }
        exec(
            &tx,
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL_DIRECTORY, &agency.code],
        )
        .await?;
        tx.commit().await?;
        self.committed();
        Ok(())
    }

    pub(super) async fn update_agency(
        &self,
        code: &str,
        f: impl Fn(&mut Agency) + Send + 'static,
    ) -> Result<Agency, HubDbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = query_row_opt(
            &tx,
            "SELECT body FROM agencies WHERE code = $1 FOR UPDATE",
            &[&code],
        )
        .await?
        else {
            return Err(HubDbError::UnknownAgency(code.to_string()));
        };
        let mut agency: Agency = from_json(row.get(0))?;
        f(&mut agency);
        exec(
            &tx,
            "UPDATE agencies SET body = $2 WHERE code = $1",
            &[&code, &to_json(&agency)?],
        )
        .await?;
        exec(
            &tx,
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL_DIRECTORY, &code],
        )
        .await?;
        tx.commit().await?;
        self.committed();
        Ok(agency)
    }

    pub(super) async fn agencies(&self) -> Result<Vec<Agency>, HubDbError> {
        let client = self.pool.get().await?;
        let rows = query_rows(&client, "SELECT body FROM agencies ORDER BY code", &[]).await?;
        rows.iter().map(|r| from_json(r.get(0))).collect()
    }

    pub(super) async fn agency(&self, code: &str) -> Result<Option<Agency>, HubDbError> {
        let client = self.pool.get().await?;
        match query_row_opt(
            &client,
            "SELECT body FROM agencies WHERE code = $1",
            &[&code],
        )
        .await?
        {
            Some(r) => Ok(Some(from_json(r.get(0))?)),
            None => Ok(None),
        }
    }

    // ---- submissions ----

    pub(super) async fn submit(&self, packet: NewPacket) -> Result<Submitted, HubDbError> {
        let id = packet.id;
        let meta = &packet.meta;
        let meta_json = to_json(meta)?;
        let accepted = db_ms(meta.accepted_at);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = exec(
            &tx,
            "INSERT INTO packets (id, bytes, meta, kind, sender, accepted_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            &[
                &id.as_bytes().as_slice(),
                &packet.bytes.as_slice(),
                &meta_json,
                &meta.kind.as_str(),
                &meta.from,
                &accepted,
            ],
        )
        .await?;
        if inserted == 0 {
            // Stored before (perhaps by another replica a moment ago): its first receipt.
            let row = query_row(
                &tx,
                "SELECT meta FROM packets WHERE id = $1",
                &[&id.as_bytes().as_slice()],
            )
            .await?;
            let old: PacketMeta = from_json(row.get(0))?;
            return Ok(Submitted::Again {
                receipt: old.receipt,
            });
        }
        if let Some(bdt) = meta.business_doc_type {
            let key = business_key(&meta.from, &meta.document_id, bdt);
            let n = exec(
                &tx,
                "INSERT INTO business_keys (key, packet_id) VALUES ($1, $2)
                     ON CONFLICT (key) DO NOTHING",
                &[&key, &id.as_bytes().as_slice()],
            )
            .await?;
            if n == 0 {
                let row = query_row(
                    &tx,
                    "SELECT packet_id FROM business_keys WHERE key = $1",
                    &[&key],
                )
                .await?;
                let existing = packet_id(row.get(0))?;
                // Dropping the transaction rolls the packet back.
                return Err(HubDbError::DuplicateBusinessKey {
                    from: meta.from.clone(),
                    document_id: meta.document_id.clone(),
                    business_doc_type: bdt,
                    existing: existing.to_hex(),
                });
            }
        }
        file_by_document(&tx, id, meta).await?;
        let rank = i16::from(urgency_rank(meta.priority));
        let document = meta.kind == PacketKind::Document;
        // One delivery row per recipient, then one notification each (delivered at commit).
        exec(
            &tx,
            "INSERT INTO deliveries (packet_id, recipient, document, queued_ms, rank, seq)
             SELECT $1, r.code, $3, $4, $5, nextval('queue_seq')
             FROM unnest($2::text[]) AS r(code)",
            &[
                &id.as_bytes().as_slice(),
                &meta.recipients,
                &document,
                &accepted,
                &rank,
            ],
        )
        .await?;
        exec(
            &tx,
            "SELECT pg_notify($1, r) FROM unnest($2::text[]) AS r",
            &[&CHANNEL_INBOX, &meta.recipients],
        )
        .await?;
        tx.commit().await?;
        self.committed();
        Ok(Submitted::New {
            receipt: meta.receipt.clone(),
        })
    }

    // ---- delivery ----

    pub(super) async fn pending(
        &self,
        recipient: &str,
        limit: usize,
        budget: InlineBudget,
    ) -> Result<Vec<PendingPacket>, HubDbError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let packet_max = i32::try_from(budget.packet_bytes).unwrap_or(i32::MAX);
        let client = self.pool.get().await?;
        // Only packets small enough to go inline bring their bytes; the listing's budget is
        // then applied in order, as on the embedded store.
        let rows = query_rows(
            &client,
            "SELECT d.packet_id, p.meta,
                    CASE WHEN octet_length(p.bytes) <= $3 THEN p.bytes END
                 FROM deliveries d JOIN packets p ON p.id = d.packet_id
                 WHERE d.recipient = $1 AND d.delivered_ms IS NULL
                 ORDER BY d.rank, d.seq LIMIT $2",
            &[&recipient, &limit, &packet_max],
        )
        .await?;
        let mut used = 0u64;
        rows.iter()
            .map(|r| {
                let meta: PacketMeta = from_json(r.get(1))?;
                let bytes: Option<Vec<u8>> = r.get(2);
                let bytes = if budget.take(&mut used, meta.size) {
                    bytes.filter(|b| b.len() as u64 == meta.size)
                } else {
                    None
                };
                Ok(PendingPacket {
                    id: packet_id(r.get(0))?,
                    meta,
                    bytes,
                })
            })
            .collect()
    }

    pub(super) async fn pending_summary(&self) -> Result<Vec<PendingSummary>, HubDbError> {
        let client = self.pool.get().await?;
        let rows = query_rows(
            &client,
            "SELECT recipient, count(*), min(queued_ms) FROM deliveries
                 WHERE delivered_ms IS NULL GROUP BY recipient ORDER BY recipient",
            &[],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let count: i64 = r.get(1);
                let oldest: Option<i64> = r.get(2);
                PendingSummary {
                    recipient: r.get(0),
                    count: u64::try_from(count).unwrap_or(0),
                    oldest_queued_at: oldest.map(ms),
                }
            })
            .collect())
    }

    pub(super) async fn packet(
        &self,
        id: PacketId,
    ) -> Result<Option<(Vec<u8>, PacketMeta)>, HubDbError> {
        let client = self.pool.get().await?;
        match query_row_opt(
            &client,
            "SELECT bytes, meta FROM packets WHERE id = $1",
            &[&id.as_bytes().as_slice()],
        )
        .await?
        {
            Some(r) => Ok(Some((r.get(0), from_json(r.get(1))?))),
            None => Ok(None),
        }
    }

    pub(super) async fn fetch_for(
        &self,
        recipient: &str,
        id: PacketId,
    ) -> Result<Option<Vec<u8>>, HubDbError> {
        let client = self.pool.get().await?;
        Ok(query_row_opt(
            &client,
            "SELECT p.bytes FROM deliveries d JOIN packets p ON p.id = d.packet_id
                 WHERE d.packet_id = $1 AND d.recipient = $2",
            &[&id.as_bytes().as_slice(), &recipient],
        )
        .await?
        .map(|r| r.get(0)))
    }

    pub(super) async fn metas_for(
        &self,
        recipient: &str,
        ids: Vec<PacketId>,
    ) -> Result<Vec<(PacketId, PacketMeta, Delivery)>, HubDbError> {
        let keys: Vec<&[u8]> = ids.iter().map(|i| i.as_bytes().as_slice()).collect();
        let client = self.pool.get().await?;
        let rows = query_rows(
            &client,
            "SELECT d.packet_id, p.meta, d.queued_ms, d.rank, d.seq, d.delivered_ms, d.receipt
                 FROM deliveries d JOIN packets p ON p.id = d.packet_id
                 WHERE d.recipient = $1 AND d.packet_id = ANY($2)",
            &[&recipient, &keys],
        )
        .await?;
        let mut found: HashMap<PacketId, (PacketMeta, Delivery)> = HashMap::new();
        for r in &rows {
            found.insert(packet_id(r.get(0))?, (from_json(r.get(1))?, delivery(r, 2)));
        }
        let mut out = Vec::with_capacity(found.len());
        for id in ids {
            if let Some((meta, d)) = found.remove(&id) {
                out.push((id, meta, d));
            }
        }
        Ok(out)
    }

    pub(super) async fn record_deliveries(
        &self,
        recipient: &str,
        acks: Vec<(PacketId, Timestamp, String)>,
    ) -> Result<Vec<(PacketId, String)>, HubDbError> {
        let asked: HashMap<PacketId, (Timestamp, &String)> = acks
            .iter()
            .map(|(id, at, receipt)| (*id, (*at, receipt)))
            .collect();
        let keys: Vec<&[u8]> = asked.keys().map(|id| id.as_bytes().as_slice()).collect();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Every row asked for, locked in packet-id order (concurrent acknowledgements of the
        // same packets lock in the same order, so they wait, never deadlock).
        let rows = query_rows(
            &tx,
            "SELECT d.packet_id, d.receipt, p.sender FROM deliveries d
             JOIN packets p ON p.id = d.packet_id
             WHERE d.recipient = $1 AND d.packet_id = ANY($2)
             ORDER BY d.packet_id FOR UPDATE OF d",
            &[&recipient, &keys],
        )
        .await?;
        let mut kept: HashMap<PacketId, String> = HashMap::new();
        // sender → the newly delivered packets whose receipts it collects.
        let mut per_sender: BTreeMap<String, Vec<PacketId>> = BTreeMap::new();
        let (mut new_ids, mut new_at, mut new_receipts) = (Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let id = packet_id(r.get(0))?;
            let existing: Option<String> = r.get(1);
            if let Some(existing) = existing {
                kept.insert(id, existing);
                continue;
            }
            let Some((at, receipt)) = asked.get(&id) else {
                continue;
            };
            new_ids.push(id.as_bytes().to_vec());
            new_at.push(db_ms(*at));
            new_receipts.push((*receipt).clone());
            per_sender.entry(r.get(2)).or_default().push(id);
            kept.insert(id, (*receipt).clone());
        }
        if !new_ids.is_empty() {
            exec(
                &tx,
                "UPDATE deliveries d SET delivered_ms = v.at, receipt = v.receipt
                 FROM unnest($2::bytea[], $3::bigint[], $4::text[]) AS v(id, at, receipt)
                 WHERE d.packet_id = v.id AND d.recipient = $1",
                &[&recipient, &new_ids, &new_at, &new_receipts],
            )
            .await?;
        }
        for (sender, ids) in &per_sender {
            // The counter row's lock orders this sender's receipt numbers by commit.
            let last: i64 = query_row(
                &tx,
                "INSERT INTO receipt_counters AS c (sender, last) VALUES ($1, $2)
                 ON CONFLICT (sender) DO UPDATE SET last = c.last + $2
                 RETURNING last",
                &[sender, &(ids.len() as i64)],
            )
            .await?
            .get(0);
            let first = last - ids.len() as i64 + 1;
            let seqs: Vec<i64> = (first..=last).collect();
            let packets: Vec<&[u8]> = ids.iter().map(|id| id.as_bytes().as_slice()).collect();
            exec(
                &tx,
                "INSERT INTO sender_receipts (sender, seq, packet_id, recipient)
                 SELECT $1, v.seq, v.id, $4 FROM unnest($2::bigint[], $3::bytea[]) AS v(seq, id)",
                &[sender, &seqs, &packets, &recipient],
            )
            .await?;
            exec(
                &tx,
                "SELECT pg_notify($1, $2)",
                &[&CHANNEL_RECEIPTS, sender],
            )
            .await?;
        }
        tx.commit().await?;
        self.committed();
        let mut out = Vec::with_capacity(kept.len());
        for (id, _, _) in &acks {
            if let Some(r) = kept.remove(id) {
                out.push((*id, r));
            }
        }
        Ok(out)
    }

    pub(super) async fn receipts_for_sender(
        &self,
        sender: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PacketId, String, String)>, HubDbError> {
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.pool.get().await?;
        let rows = query_rows(
            &client,
            "SELECT r.seq, r.packet_id, r.recipient, d.receipt FROM sender_receipts r
                 JOIN deliveries d ON d.packet_id = r.packet_id AND d.recipient = r.recipient
                 WHERE r.sender = $1 AND r.seq > $2 ORDER BY r.seq LIMIT $3",
            &[&sender, &after, &limit],
        )
        .await?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let receipt: Option<String> = r.get(3);
                let receipt = receipt
                    .ok_or_else(|| PgError::Corrupt(format!("receipt row {seq} has no receipt")))?;
                Ok((
                    u64::try_from(seq).unwrap_or(0),
                    packet_id(r.get(1))?,
                    r.get(2),
                    receipt,
                ))
            })
            .collect()
    }

    pub(super) async fn ack_receipts(
        &self,
        sender: &str,
        seqs: Vec<u64>,
    ) -> Result<(), HubDbError> {
        let seqs: Vec<i64> = seqs
            .into_iter()
            .filter_map(|s| i64::try_from(s).ok())
            .collect();
        let client = self.pool.get().await?;
        exec(
            &client,
            "DELETE FROM sender_receipts WHERE sender = $1 AND seq = ANY($2)",
            &[&sender, &seqs],
        )
        .await?;
        self.committed();
        Ok(())
    }

    pub(super) async fn document_history(
        &self,
        owner: &str,
        document_id: &str,
    ) -> Result<DocumentHistory, HubDbError> {
        let mut client = self.pool.get().await?;
        let tx = snapshot(&mut client).await?;
        let filed = "SELECT packet_id FROM by_document WHERE owner = $1 AND document_id = $2
                     ORDER BY packet_id";
        let mut ids: Vec<PacketId> = Vec::new();
        for r in query_rows(&tx, filed, &[&owner, &document_id]).await? {
            ids.push(packet_id(r.get(0))?);
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            let id = ids[i];
            i += 1;
            let Some(m) = query_row_opt(
                &tx,
                "SELECT meta FROM packets WHERE id = $1",
                &[&id.as_bytes().as_slice()],
            )
            .await?
            else {
                continue;
            };
            let meta: PacketMeta = from_json(m.get(0))?;
            if meta.from == owner && meta.action_target() == Some(document_id) {
                for r in query_rows(&tx, filed, &[&owner, &meta.document_id]).await? {
                    let more = packet_id(r.get(0))?;
                    if !ids.contains(&more) {
                        ids.push(more);
                    }
                }
            }
            let mut per = BTreeMap::new();
            for r in query_rows(
                &tx,
                "SELECT recipient, queued_ms, rank, seq, delivered_ms, receipt
                     FROM deliveries WHERE packet_id = $1",
                &[&id.as_bytes().as_slice()],
            )
            .await?
            {
                let recipient: String = r.get(0);
                if meta.recipients.contains(&recipient) {
                    per.insert(recipient, delivery(&r, 1));
                }
            }
            out.push((id, meta, per));
        }
        tx.commit().await?;
        Ok(out)
    }

    // ---- the operators' ledger ----

    pub(super) async fn traffic(
        &self,
        day: Timestamp,
        week: Timestamp,
        now: Timestamp,
        hours: u64,
    ) -> Result<Traffic, HubDbError> {
        let hour_ms = i64::try_from(MS_PER_HOUR).unwrap_or(i64::MAX);
        let start_of_hour = |t: Timestamp| db_ms(t) / hour_ms * hour_ms;
        let last = now.unix_ms() / MS_PER_HOUR;
        let first = last.saturating_sub(hours.saturating_sub(1));
        let first_ms = i64::try_from(first * MS_PER_HOUR).unwrap_or(i64::MAX);
        let mut client = self.pool.get().await?;
        let tx = snapshot(&mut client).await?;
        let count = "SELECT count(*) FROM packets WHERE kind = 'document' AND accepted_ms >= $1";
        let today: i64 = query_row(&tx, count, &[&start_of_hour(day)]).await?.get(0);
        let week: i64 = query_row(&tx, count, &[&start_of_hour(week)]).await?.get(0);
        let mut out = crate::ledger::empty_hours(first, last);
        let per_hour = |column: &str, table: &str, filter: &str| {
            format!(
                "SELECT {column} / {hour_ms}, count(*) FROM {table}
                 WHERE {filter} AND {column} >= $1 GROUP BY 1"
            )
        };
        let docs = query_rows(
            &tx,
            &per_hour("accepted_ms", "packets", "kind = 'document'"),
            &[&first_ms],
        )
        .await?;
        let delivered = query_rows(
            &tx,
            &per_hour("delivered_ms", "deliveries", "document"),
            &[&first_ms],
        )
        .await?;
        tx.commit().await?;
        for (rows, is_docs) in [(docs, true), (delivered, false)] {
            for r in rows {
                let hour: i64 = r.get(0);
                let n: i64 = r.get(1);
                let Some(slot) = u64::try_from(hour)
                    .ok()
                    .and_then(|h| h.checked_sub(first))
                    .and_then(|i| out.get_mut(usize::try_from(i).ok()?))
                else {
                    continue;
                };
                let n = u64::try_from(n).unwrap_or(0);
                if is_docs {
                    slot.documents = n;
                } else {
                    slot.deliveries = n;
                }
            }
        }
        Ok(Traffic {
            today: u64::try_from(today).unwrap_or(0),
            week: u64::try_from(week).unwrap_or(0),
            hours: out,
        })
    }

    pub(super) async fn search(&self, q: Search, limit: usize) -> Result<Found, HubDbError> {
        /// Documents read per round trip.
        const PAGE: i64 = 500;
        let lo = i64::try_from(q.from_ms.unwrap_or(0)).unwrap_or(i64::MAX);
        let hi = i64::try_from(q.to_ms.unwrap_or(u64::MAX)).unwrap_or(i64::MAX);
        let matcher = Matcher::new(&q);
        let mut found = Found {
            rows: Vec::new(),
            scanned: 0,
            truncated: false,
        };
        let mut client = self.pool.get().await?;
        let tx = snapshot(&mut client).await?;
        // Newest first, walking down (accepted_ms, id) one page at a time.
        let mut before: (i64, Vec<u8>) = (hi, vec![0xff; 33]);
        'pages: loop {
            let rows = query_rows(
                &tx,
                "SELECT id, meta, accepted_ms FROM packets
                     WHERE kind = 'document' AND accepted_ms >= $1
                       AND (accepted_ms, id) < ($2, $3)
                     ORDER BY accepted_ms DESC, id DESC LIMIT $4",
                &[&lo, &before.0, &before.1, &PAGE],
            )
            .await?;
            if rows.is_empty() {
                break;
            }
            let full = rows.len() as i64 == PAGE;
            for r in &rows {
                if found.scanned >= SCAN_LIMIT || found.rows.len() >= limit {
                    found.truncated = true;
                    break 'pages;
                }
                found.scanned += 1;
                let raw_id: Vec<u8> = r.get(0);
                let id = packet_id(&raw_id)?;
                before = (r.get(2), raw_id);
                let meta: PacketMeta = from_json(r.get(1))?;
                if !matcher.admits(&meta) {
                    continue;
                }
                let wanted = matcher.recipients(&meta);
                let mut at: HashMap<String, Option<Timestamp>> = HashMap::new();
                for d in query_rows(
                    &tx,
                    "SELECT recipient, delivered_ms FROM deliveries WHERE packet_id = $1",
                    &[&id.as_bytes().as_slice()],
                )
                .await?
                {
                    let delivered: Option<i64> = d.get(1);
                    at.insert(d.get(0), delivered.map(ms));
                }
                let delivered: Vec<(&str, Option<Timestamp>)> = wanted
                    .into_iter()
                    .map(|r| (r, at.get(r).copied().flatten()))
                    .collect();
                found.rows.extend(matcher.rows(id, &meta, &delivered));
            }
            if !full {
                break;
            }
        }
        tx.commit().await?;
        Ok(found)
    }

    pub(super) async fn share_polls(
        &self,
        polls: Vec<(String, u64)>,
    ) -> Result<Vec<(String, u64)>, HubDbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut polls = polls;
        polls.sort();
        for (code, ms) in &polls {
            exec(
                &tx,
                "INSERT INTO agency_polls (code, last_ms) VALUES ($1, $2)
                 ON CONFLICT (code) DO UPDATE SET last_ms = GREATEST(agency_polls.last_ms, $2)",
                &[code, &i64::try_from(*ms).unwrap_or(i64::MAX)],
            )
            .await?;
        }
        let rows = query_rows(&tx, "SELECT code, last_ms FROM agency_polls", &[]).await?;
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| {
                let ms: i64 = r.get(1);
                (r.get(0), u64::try_from(ms).unwrap_or(0))
            })
            .collect())
    }

    /// Shares the CRLs this replica read from its files (PEM) and returns the most recently
    /// shared ones of every replica ([`SHARED_CRLS`] at most), its own included.
    pub async fn share_crls(&self, own: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, HubDbError> {
        let now = i64::try_from(exchange::clock::now_ms()).unwrap_or(i64::MAX);
        let client = self.pool.get().await?;
        for pem in &own {
            exec(
                &client,
                "INSERT INTO crls (sha256, pem, added_ms) VALUES ($1, $2, $3)
                 ON CONFLICT (sha256) DO NOTHING",
                &[&PacketId::of(pem).as_bytes().as_slice(), pem, &now],
            )
            .await?;
        }
        let limit = SHARED_CRLS;
        let rows = query_rows(
            &client,
            "SELECT pem FROM crls ORDER BY added_ms DESC, sha256 LIMIT $1",
            &[&limit],
        )
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    // ---- alerts ----

    pub(super) async fn open_incidents(&self) -> Result<Vec<Incident>, HubDbError> {
        let client = self.pool.get().await?;
        let rows = query_rows(&client, "SELECT body FROM alerts_open ORDER BY key", &[]).await?;
        rows.iter().map(|r| from_json(r.get(0))).collect()
    }

    pub(super) async fn alerts_view(
        &self,
        past: usize,
        mail: usize,
    ) -> Result<AlertsView, HubDbError> {
        let past = i64::try_from(past).unwrap_or(i64::MAX);
        let mail = i64::try_from(mail).unwrap_or(i64::MAX);
        let mut client = self.pool.get().await?;
        let tx = snapshot(&mut client).await?;
        let open = query_rows(&tx, "SELECT body FROM alerts_open ORDER BY key", &[]).await?;
        let closed = query_rows(
            &tx,
            "SELECT body FROM alerts_past ORDER BY seq DESC LIMIT $1",
            &[&past],
        )
        .await?;
        let waiting = query_rows(
            &tx,
            "SELECT body, next_attempt_ms FROM mail_queue ORDER BY seq LIMIT $1",
            &[&mail],
        )
        .await?;
        let sent: Option<i64> =
            query_row_opt(&tx, "SELECT n FROM mail_counters WHERE name = 'sent'", &[])
                .await?
                .map(|r| r.get(0));
        tx.commit().await?;
        Ok(AlertsView {
            open: open
                .iter()
                .map(|r| from_json(r.get(0)))
                .collect::<Result<_, _>>()?,
            past: closed
                .iter()
                .map(|r| from_json(r.get(0)))
                .collect::<Result<_, _>>()?,
            mail_waiting: waiting.iter().map(queued_mail).collect::<Result<_, _>>()?,
            mail_sent: sent.map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        })
    }

    pub(super) async fn alert_counts(&self) -> Result<(u64, u64), HubDbError> {
        let client = self.pool.get().await?;
        let r = query_row(
            &client,
            "SELECT (SELECT count(*) FROM alerts_open), (SELECT count(*) FROM mail_queue)",
            &[],
        )
        .await?;
        let (open, mail): (i64, i64) = (r.get(0), r.get(1));
        Ok((
            u64::try_from(open).unwrap_or(0),
            u64::try_from(mail).unwrap_or(0),
        ))
    }

    pub(super) async fn apply_alerts(
        &self,
        conditions: Vec<Condition>,
        to: Vec<String>,
        console_url: Option<String>,
        now_ms: u64,
    ) -> Result<Changes, HubDbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        exec(&tx, "SELECT pg_advisory_xact_lock($1)", &[&ALERT_LOCK]).await?;
        let existing: Vec<Incident> =
            query_rows(&tx, "SELECT body FROM alerts_open ORDER BY key", &[])
                .await?
                .iter()
                .map(|r| from_json(r.get(0)))
                .collect::<Result<_, _>>()?;
        let plan = crate::alerts::plan(existing, &conditions, &to, console_url.as_deref(), now_ms);
        for incident in &plan.open {
            exec(
                &tx,
                "INSERT INTO alerts_open (key, body) VALUES ($1, $2)",
                &[&incident.key, &to_json(incident)?],
            )
            .await?;
        }
        for incident in &plan.close {
            exec(
                &tx,
                "DELETE FROM alerts_open WHERE key = $1",
                &[&incident.key],
            )
            .await?;
            exec(
                &tx,
                "INSERT INTO alerts_past (body) VALUES ($1)",
                &[&to_json(incident)?],
            )
            .await?;
        }
        for m in &plan.mails {
            enqueue_mail(&tx, m, now_ms).await?;
        }
        tx.commit().await?;
        self.committed();
        Ok(plan.changes())
    }
}

// ---- `hub migrate` (see `super::migrate`) ----

/// The tables `hub migrate` fills and counts.
const COUNTED: &[&str] = &[
    "agencies",
    "packets",
    "business_keys",
    "deliveries",
    "sender_receipts",
    "by_document",
    "alerts_open",
    "alerts_past",
    "mail_queue",
];

/// A packet with its meta and delivery rows, as `hub migrate` copies it.
pub(super) type ImportedPacket = (PacketId, Vec<u8>, PacketMeta, Vec<(String, Delivery)>);

impl PgHub {
    /// Rows in each table `hub migrate` fills.
    pub(super) async fn row_counts(&self) -> Result<Vec<(&'static str, u64)>, HubDbError> {
        let client = self.pool.get().await?;
        let mut out = Vec::new();
        for table in COUNTED {
            let n: i64 = query_row(&client, &format!("SELECT count(*) FROM {table}"), &[])
                .await?
                .get(0);
            out.push((*table, u64::try_from(n).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Stores packets exactly as they were, with their filing and delivery rows (one
    /// transaction).
    pub(super) async fn import_packets(&self, rows: Vec<ImportedPacket>) -> Result<(), HubDbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for (id, bytes, meta, deliveries) in &rows {
            exec(
                &tx,
                "INSERT INTO packets (id, bytes, meta, kind, sender, accepted_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &id.as_bytes().as_slice(),
                    bytes,
                    &to_json(meta)?,
                    &meta.kind.as_str(),
                    &meta.from,
                    &db_ms(meta.accepted_at),
                ],
            )
            .await?;
            if let Some(bdt) = meta.business_doc_type {
                exec(
                    &tx,
                    "INSERT INTO business_keys (key, packet_id) VALUES ($1, $2)",
                    &[
                        &business_key(&meta.from, &meta.document_id, bdt),
                        &id.as_bytes().as_slice(),
                    ],
                )
                .await?;
            }
            file_by_document(&tx, *id, meta).await?;
            let document = meta.kind == PacketKind::Document;
            for (recipient, d) in deliveries {
                let (rank, seq) = d.queue_key;
                exec(
                    &tx,
                    "INSERT INTO deliveries
                       (packet_id, recipient, document, queued_ms, rank, seq, delivered_ms, receipt)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &[
                        &id.as_bytes().as_slice(),
                        recipient,
                        &document,
                        &db_ms(d.queued_at),
                        &i16::from(rank),
                        &i64::try_from(seq).unwrap_or(i64::MAX),
                        &d.delivered_at.map(db_ms),
                        &d.receipt,
                    ],
                )
                .await?;
            }
        }
        // New deliveries queue after every copied one.
        exec(
            &tx,
            "SELECT setval('queue_seq', GREATEST((SELECT max(seq) FROM deliveries), 1))",
            &[],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores the receipts senders have still to collect, and starts every sender's numbering
    /// after `last_seq` (so a node's cursor from the redb hub stays valid).
    pub(super) async fn import_receipts(
        &self,
        rows: &[(String, u64, PacketId, String)],
        senders: &[String],
        last_seq: u64,
    ) -> Result<(), HubDbError> {
        let last = i64::try_from(last_seq).unwrap_or(i64::MAX);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for sender in senders {
            exec(
                &tx,
                "INSERT INTO receipt_counters (sender, last) VALUES ($1, $2)",
                &[sender, &last],
            )
            .await?;
        }
        for (sender, seq, id, recipient) in rows {
            exec(
                &tx,
                "INSERT INTO sender_receipts (sender, seq, packet_id, recipient)
                 VALUES ($1, $2, $3, $4)",
                &[
                    sender,
                    &i64::try_from(*seq).unwrap_or(i64::MAX),
                    &id.as_bytes().as_slice(),
                    recipient,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stores incidents (closed ones given newest first) and the mail queue.
    pub(super) async fn import_alerts(
        &self,
        open: &[Incident],
        past_newest_first: &[Incident],
        mail: &[mail::QueuedMail],
        mail_sent: u64,
    ) -> Result<(), HubDbError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for incident in open {
            exec(
                &tx,
                "INSERT INTO alerts_open (key, body) VALUES ($1, $2)",
                &[&incident.key, &to_json(incident)?],
            )
            .await?;
        }
        for incident in past_newest_first.iter().rev() {
            exec(
                &tx,
                "INSERT INTO alerts_past (body) VALUES ($1)",
                &[&to_json(incident)?],
            )
            .await?;
        }
        for q in mail {
            exec(
                &tx,
                "INSERT INTO mail_queue (body, next_attempt_ms) VALUES ($1, $2)",
                &[
                    &to_json(q)?,
                    &i64::try_from(q.next_attempt_ms).unwrap_or(i64::MAX),
                ],
            )
            .await?;
        }
        exec(
            &tx,
            "INSERT INTO mail_counters (name, n) VALUES ('sent', $1)",
            &[&i64::try_from(mail_sent).unwrap_or(i64::MAX)],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Creates database `name` on the server of `url` (connecting to the database `url` names)
/// and returns the URL of the new one (benchmarks and tests get a database of their own).
pub async fn create_database(url: &str, name: &str) -> Result<String, PgError> {
    check_name(name)?;
    let config = parse_url(url)?;
    let (client, driver, _) = PgTls::Plain.connect(&config).await?;
    client
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    drop(client);
    let _ = driver.await;
    let mut out = config;
    out.dbname(name);
    Ok(config_url(&out))
}

/// Drops database `name` on the server of `url` (its connections are ended first).
pub async fn drop_database(url: &str, name: &str) -> Result<(), PgError> {
    check_name(name)?;
    let (client, driver, _) = PgTls::Plain.connect(&parse_url(url)?).await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

fn check_name(name: &str) -> Result<(), PgError> {
    if name.is_empty()
        || name.len() > 63
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(PgError::Config(format!(
            "{name:?} is not a database name this tool makes (a-z, 0-9, _)"
        )));
    }
    Ok(())
}

/// A `key=value` connection string for `config` (what `parse_url` reads back).
fn config_url(config: &tokio_postgres::Config) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        parts.push(format!("host={}", quote(&hosts.join(","))));
    }
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    if !ports.is_empty() {
        parts.push(format!("port={}", ports.join(",")));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={}", quote(user)));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!(
            "password={}",
            quote(&String::from_utf8_lossy(password))
        ));
    }
    if let Some(db) = config.get_dbname() {
        parts.push(format!("dbname={}", quote(db)));
    }
    parts.join(" ")
}

// ---- statements: prepared once per connection, then only bound and executed ----

type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

async fn exec<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    c.execute(&statement, params).await
}

async fn query_rows<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    c.query(&statement, params).await
}

async fn query_row<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    c.query_one(&statement, params).await
}

async fn query_row_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let statement = c.prepare_cached(sql).await?;
    c.query_opt(&statement, params).await
}

/// Files `id` in `by_document` under its owner and DocumentId, and an action packet also
/// under the DocumentId it acts on (the rule of the redb backend's `index_by_document`).
async fn file_by_document(
    tx: &deadpool_postgres::Transaction<'_>,
    id: PacketId,
    meta: &PacketMeta,
) -> Result<(), HubDbError> {
    let owner = document_owner(meta);
    let mut filed = vec![meta.document_id.as_str()];
    if let Some(target) = meta.action_target() {
        filed.push(target);
    }
    for doc in filed {
        exec(
            tx,
            "INSERT INTO by_document (owner, document_id, packet_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&owner, &doc, &id.as_bytes().as_slice()],
        )
        .await?;
    }
    Ok(())
}

/// A read-only transaction over one consistent snapshot (what several reads must agree on).
async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, HubDbError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// A waiting mail from (body, next_attempt_ms).
fn queued_mail(r: &Row) -> Result<mail::QueuedMail, HubDbError> {
    let mut q: mail::QueuedMail = from_json(r.get(0))?;
    let next: i64 = r.get(1);
    q.next_attempt_ms = u64::try_from(next).unwrap_or(0);
    Ok(q)
}

/// Queues `m` in the caller's transaction (the rules of [`mail::queue::enqueue`]).
async fn enqueue_mail(
    tx: &deadpool_postgres::Transaction<'_>,
    m: &mail::Mail,
    now_ms: u64,
) -> Result<(), HubDbError> {
    let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
    let seq: i64 = query_row(tx, "SELECT nextval('mail_queue_seq_seq')", &[])
        .await?
        .get(0);
    let queued = mail::QueuedMail {
        mail: m.clone(),
        message_id: format!("docaxis.{seq}.{now_ms}@docaxis.invalid"),
        queued_at_ms: now_ms,
        attempts: 0,
        next_attempt_ms: now_ms,
        last_error: None,
    };
    exec(
        tx,
        "INSERT INTO mail_queue (seq, body, next_attempt_ms) VALUES ($1, $2, $3)",
        &[&seq, &to_json(&queued)?, &now],
    )
    .await?;
    Ok(())
}

/// The mail queue in PostgreSQL, for the sender of each replica.
struct PgMailQueue {
    hub: PgHub,
}

impl PgMailQueue {
    async fn due(&self, now_ms: u64, limit: usize) -> Result<mail::queue::DueMails, HubDbError> {
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let lease = i64::try_from(now_ms + MAIL_LEASE_MS).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut client = self.hub.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = query_rows(
            &tx,
            "SELECT seq, body, next_attempt_ms FROM mail_queue WHERE next_attempt_ms <= $1
                 ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&now, &limit],
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        let mut seqs: Vec<i64> = Vec::with_capacity(rows.len());
        for r in &rows {
            let seq: i64 = r.get(0);
            let mut q: mail::QueuedMail = from_json(r.get(1))?;
            let next: i64 = r.get(2);
            q.next_attempt_ms = u64::try_from(next).unwrap_or(0);
            seqs.push(seq);
            out.push((u64::try_from(seq).unwrap_or(0), q));
        }
        if !seqs.is_empty() {
            exec(
                &tx,
                "UPDATE mail_queue SET next_attempt_ms = $2 WHERE seq = ANY($1)",
                &[&seqs, &lease],
            )
            .await?;
        }
        let next: Option<i64> = query_row(
            &tx,
            "SELECT min(next_attempt_ms) FROM mail_queue WHERE next_attempt_ms > $1",
            &[&now],
        )
        .await?
        .get(0);
        tx.commit().await?;
        let next = if out.len() as i64 == limit {
            Some(now_ms)
        } else {
            next.map(|n| u64::try_from(n).unwrap_or(0))
        };
        Ok((out, next))
    }

    async fn mark_sent(&self, seq: u64) -> Result<(), HubDbError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let mut client = self.hub.pool.get().await?;
        let tx = client.transaction().await?;
        let n = exec(&tx, "DELETE FROM mail_queue WHERE seq = $1", &[&seq]).await?;
        if n > 0 {
            exec(
                &tx,
                "INSERT INTO mail_counters (name, n) VALUES ('sent', 1)
                 ON CONFLICT (name) DO UPDATE SET n = mail_counters.n + 1",
                &[],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn mark_failed(
        &self,
        seq: u64,
        error: String,
        next_attempt_ms: u64,
    ) -> Result<(), HubDbError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let next = i64::try_from(next_attempt_ms).unwrap_or(i64::MAX);
        let mut client = self.hub.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = query_row_opt(
            &tx,
            "SELECT body FROM mail_queue WHERE seq = $1 FOR UPDATE",
            &[&seq],
        )
        .await?
        else {
            return Ok(());
        };
        let mut q: mail::QueuedMail = from_json(row.get(0))?;
        q.attempts = q.attempts.saturating_add(1);
        q.next_attempt_ms = next_attempt_ms;
        q.last_error = Some(error.chars().take(500).collect());
        exec(
            &tx,
            "UPDATE mail_queue SET body = $2, next_attempt_ms = $3 WHERE seq = $1",
            &[&seq, &to_json(&q)?, &next],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl mail::queue::MailStore for PgMailQueue {
    fn due(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> mail::queue::QueueFuture<'_, mail::queue::DueMails> {
        Box::pin(async move {
            Ok(PgMailQueue::due(self, now_ms, limit)
                .await
                .map_err(Box::new)?)
        })
    }

    fn mark_sent(&self, seq: u64) -> mail::queue::QueueFuture<'_, ()> {
        Box::pin(async move { Ok(PgMailQueue::mark_sent(self, seq).await.map_err(Box::new)?) })
    }

    fn mark_failed(
        &self,
        seq: u64,
        error: String,
        next_attempt_ms: u64,
    ) -> mail::queue::QueueFuture<'_, ()> {
        Box::pin(async move {
            Ok(PgMailQueue::mark_failed(self, seq, error, next_attempt_ms)
                .await
                .map_err(Box::new)?)
        })
    }
}

/// What a replica hears from the others through PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// Packets were queued for this agency.
    Inbox(String),
    /// Delivery receipts were queued for this sender.
    Receipts(String),
    /// This agency was registered or changed.
    Directory(String),
    /// The listening connection was (re)established: notifications sent while it was down are
    /// lost, so everything they could have said must be read again.
    Resync,
}

impl Heard {
    fn from_notification(channel: &str, payload: &str) -> Option<Heard> {
        let payload = payload.to_string();
        match channel {
            CHANNEL_INBOX => Some(Heard::Inbox(payload)),
            CHANNEL_RECEIPTS => Some(Heard::Receipts(payload)),
            CHANNEL_DIRECTORY => Some(Heard::Directory(payload)),
            _ => None,
        }
    }
}

/// Listens on the notification channels with a connection of its own until `stop`, handing
/// each notification to `on`; reconnects with backoff (1 s doubling to 10 s) when PostgreSQL
/// goes away, and says [`Heard::Resync`] after every (re)connection.
pub async fn listen(
    config: tokio_postgres::Config,
    tls: PgTls,
    on: Arc<dyn Fn(Heard) + Send + Sync>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let session = async {
            let (client, driver, mut rx) = tls.connect(&config).await?;
            client
                .batch_execute(&format!(
                    "LISTEN {CHANNEL_INBOX}; LISTEN {CHANNEL_RECEIPTS}; LISTEN {CHANNEL_DIRECTORY}"
                ))
                .await?;
            tracing::info!("listening to the other hub replicas through PostgreSQL");
            on(Heard::Resync);
            loop {
                tokio::select! {
                    heard = rx.recv() => match heard {
                        Some(h) => on(h),
                        None => break,
                    },
                    _ = stop.changed() => {
                        driver.abort();
                        return Ok::<_, tokio_postgres::Error>(true);
                    }
                }
            }
            let why = match driver.await {
                Ok(Some(e)) => e,
                Ok(None) => "the server closed the connection".to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(error = %why, "lost the PostgreSQL notification connection; reconnecting");
            drop(client);
            Ok(false)
        };
        match session.await {
            Ok(true) => return,
            Ok(false) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %PgError::from(e), retry_in_secs = backoff.as_secs(),
                    "cannot listen to the other hub replicas through PostgreSQL");
            }
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}
