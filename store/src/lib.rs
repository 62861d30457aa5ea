//! Durable embedded storage (redb) with group commit.
//!
//! A [`Store`] owns one redb file. All writes go through a single dedicated writer thread that
//! gathers the jobs waiting at that moment into **one** write transaction and commits it with
//! `Durability::Immediate` (fsync) before answering any of them. When the store is busy (its
//! previous batch ended moments ago) a batch also waits up to a millisecond for more jobs
//! (`gather_window`); an idle store commits a lone job at once. This is how DocAxis gets
//! throughput from a disk whose fsync costs milliseconds: many documents share one fsync, and
//! none of them is acknowledged before that fsync returned.
//!
//! Invariants:
//! - A job's result reaches its caller only after the transaction holding its writes committed
//!   durably. Callers acknowledge to peers or clerks only after `write` returned `Ok`.
//! - A job that fails leaves no trace: when any job of a batch fails, the whole transaction is
//!   aborted and every job of the batch is re-run alone in its own transaction. Jobs are
//!   therefore `FnMut` and must be safe to run again (they only touch the transaction).
//! - Reads use redb's MVCC snapshots and never block the writer; they run on the blocking pool.
//! - Nothing here runs on the async executor: the writer is a plain thread and reads go through
//!   `spawn_blocking`.
//! - An I/O failure (a full disk, a file-size limit) poisons a redb handle for good ("Previous
//!   I/O error"), so the store **reopens itself**: the writer drops the handle, waits for the
//!   reads in flight, and opens the file again — redb recovers to the last durable commit, which
//!   is exactly what was acknowledged. Until a reopen succeeds, every call fails with
//!   [`StoreError::Unavailable`], and [`Store::health`] says why; when space is back, the next
//!   write works. Nothing acknowledged is lost either way.
//! - The file is readable by its owner only (0600): it holds documents and keys to business.
//! - Large values (signed packets) live in the append-only blob file beside the database
//!   ([`blobs`]): the writer syncs it after a batch's jobs ran and before the commit, and rolls
//!   it back when the batch is not committed, so a committed reference always points at
//!   durable bytes. A failing append counts as the storage failing (the database reopens).

pub mod blobs;
pub mod codec;

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

pub use blobs::Blobs;

/// Errors of the storage layer itself.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    #[error("database transaction failed: {0}")]
    Transaction(#[from] redb::TransactionError),
    #[error("database table error: {0}")]
    Table(#[from] redb::TableError),
    #[error("database storage error: {0}")]
    Storage(#[from] redb::StorageError),
    #[error("database commit failed (nothing from this batch was acknowledged): {0}")]
    Commit(String),
    #[error("cannot use the blob file {path}: {source}")]
    Blob {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database writer gave no answer (it failed or stopped); the write is not acknowledged"
    )]
    WriterGone,
    #[error("the database {path} is unavailable: {reason}")]
    Unavailable { path: PathBuf, reason: String },
}

impl StoreError {
    /// Whether this is the storage failing (disk full, I/O error, database being reopened)
    /// rather than a fault in the data: the caller may retry later, nothing was kept.
    pub fn is_storage_failure(&self) -> bool {
        !matches!(self, StoreError::Corrupt(_))
    }
}

/// What the store has been through, for health pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreHealth {
    /// Whether the database is open and the last commit succeeded.
    pub ok: bool,
    /// The last storage failure, if any (kept after recovery, for the record).
    pub last_failure: Option<String>,
    /// When it happened (Unix ms).
    pub last_failure_ms: Option<u64>,
    /// How many times the database was reopened after a failure.
    pub reopened: u64,
}

impl From<redb::CommitError> for StoreError {
    fn from(e: redb::CommitError) -> Self {
        StoreError::Commit(e.to_string())
    }
}

/// Converts any redb error into a [`StoreError`], so `?` works in functions whose error type
/// wraps `StoreError`: `txn.open_table(T).db()?`.
pub trait DbResult<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<StoreError>> DbResult<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(Into::into)
    }
}

type AnyBox = Box<dyn Any + Send>;
/// A job's failure: the boxed error for its caller and its text (for the store's health when
/// the failure turns out to be the storage's).
type JobFailure = (AnyBox, String);
type JobFn = Box<dyn FnMut(&WriteTransaction) -> Result<AnyBox, JobFailure> + Send>;

struct Job {
    run: JobFn,
    reply: tokio::sync::oneshot::Sender<JobOutcome>,
}

enum JobOutcome {
    Ok(AnyBox),
    /// The job refused (its error, for the caller); nothing written.
    Err(AnyBox),
    /// The job's error was the storage failing under it (its error and its text).
    StorageFailed(AnyBox, String),
    Store(StoreError),
}

/// Largest number of jobs that share one transaction.
const MAX_BATCH: usize = 256;

/// How much the writer has done since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Durable commits (each one fsync), re-runs after a failed batch included.
    pub commits: u64,
    /// Write jobs answered.
    pub jobs: u64,
}

/// Told the size of every batch the writer runs (for a metrics histogram).
pub type BatchObserver = Box<dyn Fn(usize) + Send + Sync>;

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    jobs: AtomicU64,
    batch_observer: std::sync::OnceLock<BatchObserver>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("commits", &self.commits)
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

/// The database handle, swapped when the store reopens itself.
struct Handle {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    health: Mutex<StoreHealth>,
}

impl Handle {
    /// The open database, or why there is none.
    fn current(&self) -> Result<Arc<Database>, StoreError> {
        let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(db) => Ok(Arc::clone(db)),
            None => Err(StoreError::Unavailable {
                path: self.path.clone(),
                reason: self
                    .health()
                    .last_failure
                    .unwrap_or_else(|| "it is being reopened".into()),
            }),
        }
    }

    fn health(&self) -> StoreHealth {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn failed(&self, what: &str, error: &dyn std::fmt::Display) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.ok = false;
        h.last_failure = Some(format!("{what}: {error}"));
        h.last_failure_ms = Some(now_ms());
        tracing::error!(path = %self.path.display(), %error,
            "store: {what}; reopening the database (nothing unacknowledged is kept)");
    }

    fn committed(&self) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        if !h.ok {
            h.ok = true;
            tracing::info!(path = %self.path.display(), "store: commits succeed again");
        }
    }

    /// Drops the poisoned handle (after the reads holding it finish) and opens the file again.
    /// Writer thread only.
    fn reopen(&self) -> Result<Arc<Database>, StoreError> {
        let old = self.db.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(old) = old {
            let mut old = Some(old);
            for _ in 0..5000 {
                match Arc::try_unwrap(old.take().expect("held")) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still_shared) => {
                        old = Some(still_shared);
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            }
            if old.is_some() {
                let reason = "reads still hold the failed database handle".to_string();
                *self.db.write().unwrap_or_else(|p| p.into_inner()) = old;
                return Err(StoreError::Unavailable {
                    path: self.path.clone(),
                    reason,
                });
            }
        }
        let db = Database::create(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        let db = Arc::new(db);
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&db));
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        h.reopened += 1;
        tracing::warn!(path = %self.path.display(), times = h.reopened,
            "store: database reopened after a failure");
        Ok(db)
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A redb database with a group-committing writer thread. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
    jobs: mpsc::SyncSender<Job>,
    path: Arc<PathBuf>,
    counters: Arc<Counters>,
    blobs: Blobs,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and starts its writer thread.
    /// `init` runs once in a write transaction before anything else (create tables here).
    pub fn open(
        path: &Path,
        init: impl FnOnce(&WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<Store, StoreError> {
        Store::open_with(path, |txn, _| init(txn))
    }

    /// Like [`Store::open`], with the blob file at hand for `init` (upgrades that read or move
    /// large values).
    pub fn open_with(
        path: &Path,
        init: impl FnOnce(&WriteTransaction, &Blobs) -> Result<(), StoreError>,
    ) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(parent);
        }
        let db = Database::create(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
        owner_only(path);
        let blobs = Blobs::open(path)?;
        let txn = db.begin_write()?;
        init(&txn, &blobs)?;
        blobs.sync()?;
        txn.commit()?;
        let handle = Arc::new(Handle {
            path: path.to_owned(),
            db: RwLock::new(Some(Arc::new(db))),
            health: Mutex::new(StoreHealth {
                ok: true,
                ..StoreHealth::default()
            }),
        });
        let (tx, rx) = mpsc::sync_channel::<Job>(4 * MAX_BATCH);
        let writer_handle = Arc::clone(&handle);
        let counters = Arc::new(Counters::default());
        let writer_counters = Arc::clone(&counters);
        let writer_blobs = blobs.clone();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(&writer_handle, &rx, &writer_counters, &writer_blobs))
            .map_err(|e| StoreError::Commit(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            handle,
            jobs: tx,
            path: Arc::new(path.to_owned()),
            counters,
            blobs,
        })
    }

    /// The blob file beside the database, for large values (signed packets): jobs
    /// [`Blobs::put`] them, reads [`Blobs::load`] them.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Where the database file lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the database works, and its last failure.
    pub fn health(&self) -> StoreHealth {
        self.handle.health()
    }

    /// Installs what is told each batch's size (once; later calls are ignored).
    pub fn observe_batches(&self, observer: BatchObserver) {
        let _ = self.counters.batch_observer.set(observer);
    }

    /// Commits and jobs so far (for benchmarks and health figures).
    pub fn writer_stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
        }
    }

    /// Runs `job` in a write transaction shared with other concurrent jobs and returns its
    /// result once that transaction is durably committed. If the job returns `Err`, none of
    /// its writes are kept.
    pub async fn write<R, E, F>(&self, job: F) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + std::fmt::Display + Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, E> + Send + 'static,
    {
        let answer = self.enqueue(job)?;
        let outcome = answer.await.map_err(|_| E::from(StoreError::WriterGone))?;
        unbox_outcome(outcome)
    }

    /// Like [`Store::write`] for code that is not async (CLI tools, blocking workers).
    pub fn write_blocking<R, E, F>(&self, job: F) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + std::fmt::Display + Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, E> + Send + 'static,
    {
        let answer = self.enqueue(job)?;
        let outcome = answer
            .blocking_recv()
            .map_err(|_| E::from(StoreError::WriterGone))?;
        unbox_outcome(outcome)
    }

    /// Hands a job to the writer thread; the receiver yields its outcome after the commit.
    fn enqueue<R, E, F>(&self, job: F) -> Result<tokio::sync::oneshot::Receiver<JobOutcome>, E>
    where
        R: Send + 'static,
        E: From<StoreError> + std::fmt::Display + Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, E> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job {
                run: box_job(job),
                reply,
            })
            .map_err(|_| E::from(StoreError::WriterGone))?;
        Ok(answer)
    }

    /// Runs `f` on a consistent read snapshot, off the async executor.
    pub async fn read<R, E, F>(&self, f: F) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<R, E> + Send + 'static,
    {
        let handle = Arc::clone(&self.handle);
        tokio::task::spawn_blocking(move || {
            let db = handle.current()?;
            let txn = db.begin_read().map_err(StoreError::from)?;
            drop(db);
            f(&txn)
        })
        .await
        .map_err(|_| E::from(StoreError::WriterGone))?
    }
}

fn box_job<R, E, F>(mut job: F) -> JobFn
where
    R: Send + 'static,
    E: std::fmt::Display + Send + 'static,
    F: FnMut(&WriteTransaction) -> Result<R, E> + Send + 'static,
{
    Box::new(move |txn| match job(txn) {
        Ok(r) => Ok(Box::new(r) as AnyBox),
        Err(e) => {
            let text = e.to_string();
            Err((Box::new(e) as AnyBox, text))
        }
    })
}

fn unbox_outcome<R: 'static, E: From<StoreError> + 'static>(outcome: JobOutcome) -> Result<R, E> {
    match outcome {
        JobOutcome::Ok(b) => b
            .downcast::<R>()
            .map(|r| *r)
            .map_err(|_| E::from(StoreError::Corrupt("job result type mismatch".into()))),
        JobOutcome::Err(b) | JobOutcome::StorageFailed(b, _) => Err(b
            .downcast::<E>()
            .map(|e| *e)
            .unwrap_or_else(|_| E::from(StoreError::Corrupt("job error type mismatch".into())))),
        JobOutcome::Store(e) => Err(E::from(e)),
    }
}

fn writer_loop(handle: &Handle, rx: &mpsc::Receiver<Job>, counters: &Counters, blobs: &Blobs) {
    // When the previous batch ended (its commit included).
    let mut last_end: Option<Instant> = None;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        let until = Instant::now() + gather_window(last_end.map(|t| t.elapsed()));
        while batch.len() < MAX_BATCH {
            // What is waiting joins at once; past the window, only what is waiting.
            let left = until.saturating_duration_since(Instant::now());
            let next = if left.is_zero() {
                rx.try_recv().ok()
            } else {
                rx.recv_timeout(left).ok()
            };
            let Some(job) = next else { break };
            batch.push(job);
        }
        counters
            .jobs
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Some(observe) = counters.batch_observer.get() {
            observe(batch.len());
        }
        let db = match handle.current().or_else(|_| handle.reopen()) {
            Ok(db) => db,
            Err(e) => {
                handle.failed("the database cannot be reopened", &e);
                for job in batch {
                    let _ = job.reply.send(JobOutcome::Store(StoreError::Unavailable {
                        path: handle.path.clone(),
                        reason: e.to_string(),
                    }));
                }
                continue;
            }
        };
        // A panic inside redb (it asserts on some states after I/O errors) must not end the
        // writer: the batch's callers see their reply dropped, and the database is reopened.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batch(&db, blobs, batch, counters, handle)
        }));
        if !matches!(ran, Ok(Ok(()))) {
            if ran.is_err() {
                handle.failed("the database engine panicked", &"see the log above");
            }
            drop(db);
            if let Err(e) = handle.reopen() {
                handle.failed("the database cannot be reopened", &e);
            }
        }
        last_end = Some(Instant::now());
    }
}

/// How long a batch may wait for more jobs after its first arrived.
const GATHER: Duration = Duration::from_millis(1);
/// A store whose previous batch ended less than this before a job arrives is busy.
const BUSY_WITHIN: Duration = Duration::from_millis(5);

/// How long the batch that a job opens waits for company, given how long ago the previous
/// batch ended (`None`: there was none). A busy store waits up to [`GATHER`], so that at
/// ordinary rates the jobs arriving one by one share a commit (each commit costs two fsyncs
/// and its pages whatever it carries: at half the sustained rate this halved the commits and
/// cut the CPU per document by a tenth or more, README "Benchmarks"); an idle store commits a
/// lone job at once.
fn gather_window(since_last_batch: Option<Duration>) -> Duration {
    match since_last_batch {
        Some(since) if since < BUSY_WITHIN => GATHER,
        _ => Duration::ZERO,
    }
}

/// The storage failed (not a job): the handle must be reopened.
struct Poisoned;

/// Runs a batch in one transaction; falls back to one transaction per job if any job fails.
fn run_batch(
    db: &Database,
    blobs: &Blobs,
    mut batch: Vec<Job>,
    counters: &Counters,
    handle: &Handle,
) -> Result<(), Poisoned> {
    if batch.len() > 1 {
        counters.commits.fetch_add(1, Ordering::Relaxed);
        match try_together(db, blobs, &mut batch) {
            Ok(results) => {
                handle.committed();
                for (job, result) in batch.into_iter().zip(results) {
                    let _ = job.reply.send(JobOutcome::Ok(result));
                }
                return Ok(());
            }
            Err(()) => { /* a job failed or the commit failed: re-run each job alone */ }
        }
    }
    let mut poisoned = false;
    for mut job in batch {
        if poisoned {
            let _ = job.reply.send(JobOutcome::Store(StoreError::Unavailable {
                path: handle.path.clone(),
                reason: "a commit just failed; the database is being reopened".into(),
            }));
            continue;
        }
        counters.commits.fetch_add(1, Ordering::Relaxed);
        let outcome = run_alone(db, blobs, &mut job);
        match &outcome {
            JobOutcome::Store(e) => {
                handle.failed("a commit failed", e);
                poisoned = true;
            }
            JobOutcome::Ok(_) => handle.committed(),
            JobOutcome::Err(_) => {}
            JobOutcome::StorageFailed(_, text) => {
                handle.failed("a write failed", text);
                poisoned = true;
            }
        }
        let _ = job.reply.send(outcome);
    }
    if poisoned { Err(Poisoned) } else { Ok(()) }
}

fn try_together(db: &Database, blobs: &Blobs, batch: &mut [Job]) -> Result<Vec<AnyBox>, ()> {
    let mark = blobs.mark();
    let txn = db.begin_write().map_err(|_| ())?;
    let mut results = Vec::with_capacity(batch.len());
    for job in batch.iter_mut() {
        match (job.run)(&txn) {
            Ok(r) => results.push(r),
            Err(_) => {
                // Dropped, not `abort()`ed: after a storage failure redb's explicit abort
                // asserts (panics); its Drop knows to skip the rollback.
                drop(txn);
                blobs.roll_back(mark);
                // Each job runs again alone, and meets the blob file's failure itself.
                let _ = blobs.take_failure();
                return Err(());
            }
        }
    }
    if blobs.sync().is_err() {
        drop(txn);
        blobs.roll_back(mark);
        let _ = blobs.take_failure();
        return Err(());
    }
    // A failed commit is not rolled back in the blob file: it may have been durable after all.
    txn.commit().map_err(|_| ())?;
    Ok(results)
}

fn run_alone(db: &Database, blobs: &Blobs, job: &mut Job) -> JobOutcome {
    let mark = blobs.mark();
    let txn = match db.begin_write() {
        Ok(t) => t,
        Err(e) => return JobOutcome::Store(e.into()),
    };
    match (job.run)(&txn) {
        Ok(r) => {
            if let Err(e) = blobs.sync() {
                drop(txn);
                blobs.roll_back(mark);
                let _ = blobs.take_failure();
                return JobOutcome::Store(e);
            }
            match txn.commit() {
                Ok(()) => JobOutcome::Ok(r),
                Err(e) => JobOutcome::Store(e.into()),
            }
        }
        Err((e, text)) => {
            drop(txn); // see try_together: never abort() a transaction that may have failed I/O
            blobs.roll_back(mark);
            // A job fails for its own reasons (a refusal) or because the storage failed under
            // it: the blob file says so, or the database refuses the next transaction.
            if let Some(failure) = blobs.take_failure() {
                return JobOutcome::StorageFailed(e, failure);
            }
            match db.begin_write() {
                Ok(probe) => {
                    drop(probe);
                    JobOutcome::Err(e)
                }
                Err(_) => JobOutcome::StorageFailed(e, text),
            }
        }
    }
}

/// Restricts the database file to its owner (it may have been created with the umask's 0644).
fn owner_only(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
            tracing::warn!(path = %path.display(), error = %e,
                "cannot restrict the database file to its owner");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableTable, TableDefinition};

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    #[test]
    fn only_a_busy_store_waits_for_company_and_never_long() {
        assert_eq!(gather_window(None), Duration::ZERO, "the first batch");
        assert_eq!(gather_window(Some(Duration::ZERO)), GATHER);
        assert_eq!(gather_window(Some(BUSY_WITHIN / 2)), GATHER);
        assert_eq!(gather_window(Some(BUSY_WITHIN)), Duration::ZERO, "idle");
        assert_eq!(gather_window(Some(Duration::from_secs(60))), Duration::ZERO);
        assert!(
            GATHER <= Duration::from_millis(1),
            "a wait short next to an fsync"
        );
    }

    #[derive(Debug, thiserror::Error)]
    enum TestError {
        #[error(transparent)]
        Store(#[from] StoreError),
        #[error("refused: {0}")]
        Refused(String),
    }

    fn open(dir: &Path) -> Store {
        Store::open(&dir.join("t.redb"), |txn| {
            txn.open_table(T)?;
            Ok(())
        })
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_commit_and_a_failing_job_leaves_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut handles = Vec::new();
        for i in 0..200u64 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                s.write(move |txn| -> Result<u64, TestError> {
                    let mut t = txn.open_table(T).db()?;
                    let key = format!("k{i}");
                    t.insert(key.as_str(), i).db()?;
                    if i % 50 == 7 {
                        return Err(TestError::Refused(key));
                    }
                    Ok(i)
                })
                .await
            }));
        }
        let mut ok = 0;
        let mut refused = Vec::new();
        for h in handles {
            match h.await.unwrap() {
                Ok(_) => ok += 1,
                Err(TestError::Refused(k)) => refused.push(k),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(ok, 196);
        assert_eq!(refused.len(), 4);
        let stats = store.writer_stats();
        assert_eq!(
            stats.jobs, 200,
            "every job counted once, re-runs included in commits"
        );
        assert!(stats.commits >= 4 && stats.commits <= 200 + 4, "{stats:?}");
        let present: Vec<String> = store
            .read(|txn| -> Result<Vec<String>, TestError> {
                let t = txn.open_table(T).db()?;
                Ok(t.iter()
                    .db()?
                    .map(|r| r.map(|(k, _)| k.value().to_string()))
                    .collect::<Result<_, _>>()
                    .db()?)
            })
            .await
            .unwrap();
        assert_eq!(present.len(), 196);
        for k in refused {
            assert!(!present.contains(&k), "refused job {k} left a write behind");
        }
    }

    const P: TableDefinition<u64, &[u8]> = TableDefinition::new("p");

    fn open_p(dir: &Path) -> Store {
        Store::open(&dir.join("p.redb"), |txn| {
            txn.open_table(P)?;
            Ok(())
        })
        .unwrap()
    }

    /// A job that puts `bytes` in the blob file under `key`, then refuses when told to.
    fn put_job(
        store: &Store,
        key: u64,
        bytes: Vec<u8>,
        refuse: bool,
    ) -> impl FnMut(&WriteTransaction) -> Result<(), TestError> + Send + 'static {
        let blobs = store.blobs().clone();
        move |txn| {
            let value = blobs.put(txn, &bytes)?;
            txn.open_table(P).db()?.insert(key, value.as_slice()).db()?;
            if refuse {
                return Err(TestError::Refused(key.to_string()));
            }
            Ok(())
        }
    }

    fn put(store: &Store, key: u64, bytes: Vec<u8>, refuse: bool) -> Result<(), TestError> {
        store.write_blocking(put_job(store, key, bytes, refuse))
    }

    fn get(store: &Store, key: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let blobs = store.blobs().clone();
        let txn = store.handle.current()?.begin_read()?;
        let t = txn.open_table(P)?;
        t.get(key)?.map(|v| blobs.load(v.value())).transpose()
    }

    /// Waits until the dropped store's writer released the file, then opens it again.
    fn reopen_p(dir: &Path) -> Store {
        for _ in 0..200 {
            match Store::open(&dir.join("p.redb"), |txn| {
                txn.open_table(P)?;
                Ok(())
            }) {
                Ok(s) => return s,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        panic!("the store was not released");
    }

    #[test]
    fn blobs_round_trip_across_reopen_with_inline_values_of_earlier_versions() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        {
            let store = open_p(dir.path());
            put(&store, 1, b"<edXML>one</edXML>".to_vec(), false).unwrap();
            put(&store, 2, big.clone(), false).unwrap();
            // A value stored inline, as earlier versions did.
            store
                .write_blocking(|txn| -> Result<(), StoreError> {
                    txn.open_table(P)?
                        .insert(3, b"<edXML>inline</edXML>".as_slice())?;
                    Ok(())
                })
                .unwrap();
            assert_eq!(get(&store, 2).unwrap().unwrap(), big);
        }
        let blob_file = dir.path().join("p.redb.blobs");
        let meta = std::fs::metadata(&blob_file).unwrap();
        assert_eq!(meta.len(), 18 + big.len() as u64);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let store = reopen_p(dir.path());
        assert_eq!(get(&store, 1).unwrap().unwrap(), b"<edXML>one</edXML>");
        assert_eq!(get(&store, 2).unwrap().unwrap(), big);
        assert_eq!(get(&store, 3).unwrap().unwrap(), b"<edXML>inline</edXML>");
        put(&store, 4, b"after reopen".to_vec(), false).unwrap();
        assert_eq!(get(&store, 4).unwrap().unwrap(), b"after reopen");
        assert_eq!(
            std::fs::metadata(&blob_file).unwrap().len(),
            18 + big.len() as u64 + 12,
            "appended after what was there"
        );
    }

    #[test]
    fn a_refused_job_leaves_no_bytes_behind_and_its_space_is_reused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_p(dir.path());
        put(&store, 1, vec![b'a'; 1000], false).unwrap();
        let refused = put(&store, 2, vec![b'b'; 5000], true);
        assert!(matches!(refused, Err(TestError::Refused(_))), "{refused:?}");
        assert_eq!(get(&store, 2).unwrap(), None);
        put(&store, 3, vec![b'c'; 10], false).unwrap();
        let value = {
            let txn = store.handle.current().unwrap().begin_read().unwrap();
            let t = txn.open_table(P).unwrap();
            t.get(3u64).unwrap().unwrap().value().to_vec()
        };
        let r = blobs::BlobRef::decode(&value).unwrap();
        assert_eq!(r.offset, 1000, "written where the refused bytes were");
        assert_eq!(get(&store, 1).unwrap().unwrap(), vec![b'a'; 1000]);
        assert_eq!(get(&store, 3).unwrap().unwrap(), vec![b'c'; 10]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_puts_in_shared_batches_each_read_back_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_p(dir.path());
        let largest = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&largest);
        store.observe_batches(Box::new(move |n| {
            seen.fetch_max(n as u64, Ordering::Relaxed);
        }));
        let mut handles = Vec::new();
        for i in 0..300u64 {
            let s = store.clone();
            handles.push(tokio::spawn(async move {
                let bytes = vec![(i % 256) as u8; 100 + i as usize * 37];
                s.write(put_job(&s, i, bytes, i % 40 == 3)).await
            }));
        }
        for h in handles {
            let _ = h.await.unwrap();
        }
        assert!(largest.load(Ordering::Relaxed) > 1, "batches were shared");
        for i in 0..300u64 {
            let got = get(&store, i).unwrap();
            if i % 40 == 3 {
                assert_eq!(got, None, "refused {i}");
            } else {
                assert_eq!(
                    got.unwrap(),
                    vec![(i % 256) as u8; 100 + i as usize * 37],
                    "{i}"
                );
            }
        }
    }

    #[test]
    fn bytes_changed_on_disk_or_cut_short_are_named_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open_p(dir.path());
            put(&store, 1, vec![b'x'; 4096], false).unwrap();
            put(&store, 2, vec![b'y'; 4096], false).unwrap();
        }
        let blob_file = dir.path().join("p.redb.blobs");
        let mut bytes = std::fs::read(&blob_file).unwrap();
        bytes[100] = b'z';
        bytes.truncate(6000);
        std::fs::write(&blob_file, &bytes).unwrap();
        let store = reopen_p(dir.path());
        let changed = get(&store, 1).unwrap_err().to_string();
        assert!(
            changed.contains("p.redb.blobs") && changed.contains("checksum"),
            "{changed}"
        );
        let short = get(&store, 2).unwrap_err().to_string();
        assert!(short.contains("holds only 6000 bytes"), "{short}");
    }

    #[test]
    fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store
                .write_blocking(|txn| -> Result<(), StoreError> {
                    txn.open_table(T)?.insert("a", 1)?;
                    Ok(())
                })
                .unwrap();
        }
        // The writer thread holds the database until its channel closes; wait for release.
        let mut reopened = None;
        for _ in 0..100 {
            match Database::create(dir.path().join("t.redb")) {
                Ok(db) => {
                    reopened = Some(db);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        let db = reopened.expect("database released after the store was dropped");
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(T).unwrap();
        assert_eq!(t.get("a").unwrap().unwrap().value(), 1);
    }
}
