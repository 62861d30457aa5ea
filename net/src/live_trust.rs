//! Trust anchors and CRLs that follow their files while the process runs.
//!
//! [`LiveTrust`] holds the [`TrustStore`] built from the configured PEM files and a
//! generation number. [`LiveTrust::reload`] reads the files again; when their bytes changed
//! it builds a new store and swaps it in (bumping the generation), so a CRL published with
//! `docaxis pki revoke` applies without a restart. [`watch`] runs a process's reload (this,
//! plus rebuilding what depends on the trust, like the TLS server configuration) on an
//! interval and on demand (SIGHUP, `docaxis hub reload`).
//!
//! Invariants:
//! - A reload that fails (a file missing, half written, unparsable) changes nothing: the last
//!   good store stays in force and the failure is reported; the next reload tries again.
//! - Readers always see a whole store, old or new; never a mix.
//! - The generation grows by one with every swap, so callers can cache verdicts per generation.
//! - CRLs given by [`LiveTrust::set_shared_crls`] (the hub replicas' shared copies) join the
//!   files' at the next reload; of each issuer's CRLs only the newest counts
//!   ([`TrustStore::keep_newest_crls`]), so a replica whose file is older follows the others.
//!   A shared CRL that does not parse is left out, never allowed to stop reloads.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use dsig::{TrustStore, TrustStoreError};
use tokio::sync::{Notify, watch as tokio_watch};

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// The files are as they were.
    Unchanged,
    /// New trust is in force, with this generation.
    Changed { generation: u64 },
}

struct State {
    store: Arc<TrustStore>,
    generation: u64,
    /// The bytes of every file, in order: what "changed" compares.
    fingerprint: Vec<Vec<u8>>,
}

/// A trust store kept in step with its files.
pub struct LiveTrust {
    anchors: Vec<PathBuf>,
    crls: Vec<PathBuf>,
    /// CRLs (PEM) from elsewhere than the files, added at every reload.
    shared: RwLock<Vec<Vec<u8>>>,
    state: RwLock<State>,
    /// Woken to reload at once.
    now: Notify,
}

impl std::fmt::Debug for LiveTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTrust")
            .field("anchors", &self.anchors)
            .field("crls", &self.crls)
            .field("generation", &self.generation())
            .finish()
    }
}

impl LiveTrust {
    /// Loads the anchors and CRLs (blocking file reads).
    pub fn load(anchors: &[PathBuf], crls: &[PathBuf]) -> Result<LiveTrust, TrustStoreError> {
        let fingerprint = read_all(anchors, crls)?;
        let store = build(&fingerprint, anchors.len())?;
        Ok(LiveTrust {
            anchors: anchors.to_vec(),
            crls: crls.to_vec(),
            shared: RwLock::new(Vec::new()),
            state: RwLock::new(State {
                store: Arc::new(store),
                generation: 1,
                fingerprint,
            }),
            now: Notify::new(),
        })
    }

    /// A store fixed for good (tests, tools): reloading it never changes anything.
    pub fn fixed(store: TrustStore) -> LiveTrust {
        LiveTrust {
            anchors: Vec::new(),
            crls: Vec::new(),
            shared: RwLock::new(Vec::new()),
            state: RwLock::new(State {
                store: Arc::new(store),
                generation: 1,
                fingerprint: Vec::new(),
            }),
            now: Notify::new(),
        }
    }

    /// The store in force.
    pub fn current(&self) -> Arc<TrustStore> {
        Arc::clone(&self.read().store)
    }

    /// Bumped by every swap.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// The configured files, anchors then CRLs.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.anchors.iter().chain(&self.crls).map(PathBuf::as_path)
    }

    /// The CRL files' bytes as last read (what this process can share with others).
    pub fn file_crls(&self) -> Vec<Vec<u8>> {
        let state = self.read();
        state
            .fingerprint
            .iter()
            .skip(self.anchors.len())
            .take(self.crls.len())
            .cloned()
            .collect()
    }

    /// CRLs (PEM) to add to the files' from the next reload on; those that do not parse are
    /// left out and returned as errors. Returns whether the set differs from the last one.
    pub fn set_shared_crls(&self, crls: Vec<Vec<u8>>) -> (bool, Vec<TrustStoreError>) {
        let mut good = Vec::with_capacity(crls.len());
        let mut bad = Vec::new();
        for pem in crls {
            match TrustStore::new().add_crl_pem(&pem) {
                Ok(_) => good.push(pem),
                Err(e) => bad.push(e),
            }
        }
        let mut shared = self.shared.write().unwrap_or_else(|p| p.into_inner());
        let changed = *shared != good;
        *shared = good;
        (changed, bad)
    }

    /// Reads the files again and swaps in a new store when they (or the shared CRLs) changed
    /// (blocking reads).
    pub fn reload(&self) -> Result<Reloaded, TrustStoreError> {
        if self.anchors.is_empty() && self.crls.is_empty() {
            return Ok(Reloaded::Unchanged);
        }
        let mut fresh = read_all(&self.anchors, &self.crls)?;
        fresh.extend(
            self.shared
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .cloned(),
        );
        if fresh == self.read().fingerprint {
            return Ok(Reloaded::Unchanged);
        }
        let store = build(&fresh, self.anchors.len())?;
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        state.store = Arc::new(store);
        state.fingerprint = fresh;
        state.generation += 1;
        Ok(Reloaded::Changed {
            generation: state.generation,
        })
    }

    /// Asks a running [`watch`] to reload at once.
    pub fn reload_soon(&self) {
        self.now.notify_one();
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn read_all(anchors: &[PathBuf], crls: &[PathBuf]) -> Result<Vec<Vec<u8>>, TrustStoreError> {
    anchors
        .iter()
        .chain(crls)
        .map(|path| {
            std::fs::read(path).map_err(|source| TrustStoreError::Io {
                path: path.clone(),
                source,
            })
        })
        .collect()
}

/// The store from the files' bytes: the first `anchors` are trust anchors, the rest CRLs (the
/// files' and the shared ones), of which the newest of each issuer counts.
fn build(files: &[Vec<u8>], anchors: usize) -> Result<TrustStore, TrustStoreError> {
    let (a, c) = files.split_at(anchors);
    let a: Vec<&[u8]> = a.iter().map(Vec::as_slice).collect();
    let c: Vec<&[u8]> = c.iter().map(Vec::as_slice).collect();
    let mut store = TrustStore::from_pem(&a, &c)?;
    store.keep_newest_crls();
    Ok(store)
}

/// How a process reloads: [`LiveTrust::reload`] plus whatever must follow a swap (the TLS
/// server configuration). Blocking; run off the executor.
pub type ReloadFn<E> = Arc<dyn Fn() -> Result<Reloaded, E> + Send + Sync>;

/// Runs `reload` every `every` and whenever [`LiveTrust::reload_soon`] is called on `trust`,
/// until `shutdown` turns true. `what` names the process in the logs (`hub`, `node`).
pub async fn watch<E: std::fmt::Display + Send + 'static>(
    trust: Arc<LiveTrust>,
    every: Duration,
    what: &'static str,
    reload: ReloadFn<E>,
    mut shutdown: tokio_watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep(every) => {}
            () = trust.now.notified() => {}
        }
        let r = Arc::clone(&reload);
        match tokio::task::spawn_blocking(move || r()).await {
            Ok(Ok(Reloaded::Unchanged)) => {}
            Ok(Ok(Reloaded::Changed { generation })) => tracing::info!(
                generation,
                "{what}: trust anchors and CRLs reloaded; they apply to new connections, \
                 requests and signatures from now on"
            ),
            Ok(Err(e)) => tracing::error!(error = %e,
                "{what}: cannot reload trust anchors or CRLs; the previous ones stay in force"),
            Err(e) => tracing::error!(error = %e, "{what}: the trust reload task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki(dir: &Path) -> (PathBuf, PathBuf) {
        dsig::pki::init(dir, &dsig::pki::InitOptions::default()).unwrap();
        (dir.join("ca.pem"), dir.join("crl.pem"))
    }

    #[test]
    fn a_changed_crl_is_swapped_in_and_a_broken_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, crl) = pki(dir.path());
        let live = LiveTrust::load(std::slice::from_ref(&ca), std::slice::from_ref(&crl)).unwrap();
        assert_eq!(live.reload().unwrap(), Reloaded::Unchanged);
        let before = live.current();

        let code = dsig::pki::development_agencies()[0].code.clone();
        dsig::pki::revoke(dir.path(), &code).unwrap();
        assert_eq!(live.reload().unwrap(), Reloaded::Changed { generation: 2 });
        assert!(!Arc::ptr_eq(&before, &live.current()));

        std::fs::write(&crl, b"-----BEGIN X509 CRL-----\nnot base64\n").unwrap();
        assert!(live.reload().is_err());
        assert_eq!(live.generation(), 2, "the last good store stays");
        std::fs::remove_file(&crl).unwrap();
        assert!(live.reload().is_err());
        assert_eq!(live.generation(), 2);
    }

    #[test]
    fn a_newer_shared_crl_applies_and_an_unreadable_one_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, crl) = pki(dir.path());
        let live = LiveTrust::load(std::slice::from_ref(&ca), std::slice::from_ref(&crl)).unwrap();
        let agency = &dsig::pki::development_agencies()[0].code;
        let pem = std::fs::read(dir.path().join(format!("agencies/{agency}.pem"))).unwrap();
        let cert = dsig::pem::blocks(&pem, "CERTIFICATE").unwrap().remove(0);
        let now = time::OffsetDateTime::now_utc();
        live.current().check_not_revoked(&cert, now).unwrap();
        // Another replica's file has the revocation; this one's file does not.
        let old = std::fs::read(&crl).unwrap();
        dsig::pki::revoke(dir.path(), agency).unwrap();
        let newer = std::fs::read(&crl).unwrap();
        std::fs::write(&crl, &old).unwrap();
        assert_eq!(live.file_crls(), vec![old.clone()]);

        let (changed, bad) = live.set_shared_crls(vec![newer.clone(), b"garbage".to_vec()]);
        assert!(changed && bad.len() == 1, "{bad:?}");
        assert_eq!(live.reload().unwrap(), Reloaded::Changed { generation: 2 });
        let err = live.current().check_not_revoked(&cert, now).unwrap_err();
        assert!(matches!(err, dsig::TrustError::Revoked { .. }), "{err:?}");
        // The same set again changes nothing.
        assert!(!live.set_shared_crls(vec![newer]).0);
        assert_eq!(live.reload().unwrap(), Reloaded::Unchanged);
    }
}
