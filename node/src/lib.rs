//! The agency node daemon: an agency's outbox and inbox on the national exchange.
//!
//! A node composes and signs documents for its clerks, submits them to the hub, collects the
//! hub's receipts, pulls the packets addressed to its agency, verifies them exactly as the hub
//! did, stores them, answers each document with a signed status 01, and keeps a per-recipient
//! timeline of everything it sent.
//!
//! Parts (one job each):
//! - [`config`]: `node.toml`; [`token`]: the clerk API token; [`backoff`]: retry delays;
//!   [`clock`]: time formats.
//! - [`db`]: the node's tables and every transaction that changes them.
//! - [`outgoing`]: composing and signing documents and status 01; [`incoming`]: verifying
//!   fetched packets.
//! - [`hub_api`]: the calls to the hub.
//! - Workers: [`outbox`] (submissions), [`inbox`] (pull, verify, store, status 01, ack),
//!   [`receipts`] (delivery receipts).
//! - [`lifecycle`]: the pure rules of business statuses (01–06, take-back 13/15/16);
//!   [`status`]: sending a clerk's status (checked, signed, committed).
//! - [`api`]: the local clerk API (JSON over HTTP on loopback), with [`metrics`] at `/metrics`; [`views`]: its answer types;
//!   [`client`]: the clerk commands' client of that API.
//!
//! Invariants (kept by the parts named):
//! - Nothing is acknowledged to a clerk or to the hub before the transaction holding it has
//!   committed durably (`api`, `inbox`, `receipts` through `db`).
//! - The status 01 of a received document is committed in the same transaction as the
//!   document (`db::NodeDb::receive_document`).
//! - Signing and verification run on the blocking pool, never on the async executor.
//! - Hub receipts are trusted only after verifying against the pinned hub certificate.
//! - A clerk's status is refused before anything is signed when the lifecycle rules refuse
//!   it, and checked again inside the transaction that commits it (`status`, `db`).

pub mod accounts;
pub mod actions;
pub mod api;
pub mod archive;
pub mod backoff;
pub mod client;
pub mod config;
pub mod db;
pub mod desk;
pub mod directory;
pub mod hub_api;
pub mod inbox;
pub mod incoming;
pub mod legacy;
pub mod metrics;
pub mod notices;
pub mod outbox;
pub mod outgoing;
mod poller;
pub mod receipts;
pub mod send;
pub mod status;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use dsig::{SignError, SigningIdentity, TrustStoreError};
use edxml::compose::known_agency_name;
use edxml::{AgencyCode, Organization};
use net::TlsError;
use net::client::{ClientTls, build_client};
use net::live_trust::LiveTrust;
use store::StoreError;

pub use config::{ConfigError, NodeConfig, RetryConfig};

use backoff::Backoff;
use db::NodeDb;
use hub_api::HubApi;
use net::token::{self, TokenError};

/// Longest time one ordinary call to the hub (not a long poll) may take.
const HUB_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot load the agency identity (certificate {certificate}, key {key}): {source}")]
    Identity {
        certificate: PathBuf,
        key: PathBuf,
        #[source]
        source: SignError,
    },
    #[error(
        "the configuration says agency {agency}, but the certificate {certificate} belongs to {found}"
    )]
    IdentityMismatch {
        agency: String,
        certificate: PathBuf,
        found: String,
    },
    #[error("cannot load the trust anchors or CRLs: {0}")]
    Trust(#[from] TrustStoreError),
    #[error("the hub certificate {path}: {message}")]
    HubCertificate { path: PathBuf, message: String },
    #[error("cannot set up TLS towards the hub: {0}")]
    Tls(#[from] TlsError),
    #[error("cannot open the node database {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot listen for the clerk API on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a node task failed: {0}")]
    Task(String),
    #[error("cannot set up the mail ([mail]): {0}")]
    Mail(String),
}

/// Most clerk API connections open at once (more are closed at accept, so a flood cannot take
/// the file handles the node needs to reach the hub).
const API_CONNECTIONS: usize = 128;

/// Everything the workers and the API share.
#[derive(Debug)]
pub struct Node {
    pub config: NodeConfig,
    pub db: NodeDb,
    /// Signs what this node sends.
    pub identity: SigningIdentity,
    /// Anchors and CRLs for incoming signers, following their files while running.
    pub trust: Arc<LiveTrust>,
    /// The pinned hub certificate (DER) receipts must verify with.
    pub hub_cert_der: Arc<Vec<u8>>,
    /// Batch-signed receipts' tree heads already verified with `hub_cert_der`.
    pub receipt_heads: Arc<dsig::batch::HeadCache>,
    pub hub: HubApi,
    /// This agency as it appears in `From`.
    pub me: Organization,
    /// Woken on every new packet to send.
    pub outbox_wake: Notify,
    /// The clerk API token.
    pub token: String,
    pub backoff: Backoff,
    /// Told of every packet the inbox commits.
    pub inbox_watchers: inbox::InboxWatchers,
    /// The hub's agency directory, once fetched and verified.
    pub directory: directory::KnownDirectory,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: metrics::NodeMetrics,
    /// Sends the queued notices (`[mail]`).
    pub mailer: Option<Arc<mail::Mailer>>,
    /// Where notices go and how they link (`[notices]`).
    pub notices: Arc<notices::Notices>,
}

/// The shared node.
pub type Shared = Arc<Node>;

impl Node {
    /// The directory and the hub it comes from, for the services that check recipients.
    pub fn directory_access(&self) -> directory::DirectoryAccess<'_> {
        directory::DirectoryAccess {
            known: &self.directory,
            hub: &self.hub,
            hub_cert_der: &self.hub_cert_der,
        }
    }

    /// Another agency's name: from the hub's directory, else the well-known list.
    pub fn agency_name(&self, code: &str) -> Option<String> {
        self.directory
            .name(code)
            .or_else(|| known_agency_name(code))
    }

    /// Loads keys, trust, the hub certificate, the token and the database (blocking).
    pub fn open(config: NodeConfig) -> Result<Node, NodeError> {
        let identity = SigningIdentity::from_pem_files(&config.private_key, &config.certificate)
            .map_err(|source| NodeError::Identity {
                certificate: config.certificate.clone(),
                key: config.private_key.clone(),
                source,
            })?;
        match identity.agency_code() {
            Some(code) if code == config.agency => {}
            other => {
                return Err(NodeError::IdentityMismatch {
                    agency: config.agency.clone(),
                    certificate: config.certificate.clone(),
                    found: other.map_or_else(
                        || {
                            format!(
                                "'{}' (no agency code in its subject UID)",
                                identity.subject()
                            )
                        },
                        str::to_string,
                    ),
                });
            }
        }
        let trust = LiveTrust::load(&config.trust, &config.crl)?;
        let hub_cert_der = read_certificate(&config.hub_certificate)?;
        let client = build_client(&client_tls(&config), HUB_CALL_TIMEOUT)?;
        let hub = HubApi::new(client, config.hub_urls());
        let token = token::load_or_create(&config.token_path())?;
        let db_path = config.database_path();
        let mut db = NodeDb::open(&db_path).map_err(|source| NodeError::Store {
            path: db_path,
            source,
        })?;
        let mailer = match &config.mail {
            Some(m) => Some(Arc::new(
                mail::Mailer::new(std::sync::Arc::new(db.store().clone()), m)
                    .map_err(|e| NodeError::Mail(e.to_string()))?,
            )),
            None => None,
        };
        let notices = Arc::new(notices::Notices {
            to: config.notices.to.clone(),
            web_url: match &config.notices.web_url {
                Some(u) => u.trim_end_matches('/').to_string().into(),
                None => std::sync::OnceLock::new(),
            },
            mailer: mailer.clone(),
        });
        if !notices.to.is_empty() {
            db.set_notices(notices.clone());
        }
        let code = AgencyCode::parse_strict(&config.agency).map_err(|e| ConfigError::Invalid {
            path: PathBuf::from("node configuration"),
            option: "agency",
            message: e.to_string(),
        })?;
        let name = config
            .agency_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .or_else(|| known_agency_name(&config.agency))
            .or_else(|| common_name(&identity))
            .unwrap_or_else(|| config.agency.clone());
        Ok(Node {
            backoff: Backoff::new(&config.retry),
            me: Organization::new(code, name),
            config,
            db,
            identity,
            trust: Arc::new(trust),
            hub_cert_der: Arc::new(hub_cert_der),
            receipt_heads: Arc::new(dsig::batch::HeadCache::default()),
            hub,
            outbox_wake: Notify::new(),
            token,
            inbox_watchers: inbox::InboxWatchers::default(),
            directory: directory::KnownDirectory::default(),
            metrics: metrics::NodeMetrics::new(),
            mailer,
            notices,
        })
    }
}

/// Where the node's TLS client material lives (its certificate, the anchors, the CRLs).
fn client_tls(config: &NodeConfig) -> ClientTls {
    ClientTls {
        cert_chain_pem: config.certificate.clone(),
        key_pem: config.private_key.clone(),
        ca_pems: config.trust.clone(),
        crl_pems: config.crl.clone(),
    }
}

/// Reads the trust anchors and CRLs again; when they changed, signatures are checked against
/// them at once and the TLS client towards the hub is rebuilt with them (new connections check
/// the hub's certificate against the new CRL). A failed rebuild keeps the old client.
fn reload_trust(node: &Node) -> Result<net::live_trust::Reloaded, String> {
    let outcome = node.trust.reload().map_err(|e| e.to_string())?;
    if let net::live_trust::Reloaded::Changed { .. } = outcome {
        let client = build_client(&client_tls(&node.config), HUB_CALL_TIMEOUT)
            .map_err(|e| format!("signatures use the new trust, the TLS client does not: {e}"))?;
        node.hub.replace_client(client);
    }
    Ok(outcome)
}

/// The DER of the single certificate in a PEM file.
fn read_certificate(path: &Path) -> Result<Vec<u8>, NodeError> {
    let fail = |message: String| NodeError::HubCertificate {
        path: path.to_owned(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    let mut found = dsig::pem::blocks(&pem, "CERTIFICATE").map_err(|e| fail(e.to_string()))?;
    match found.len() {
        1 => {
            let der = found.remove(0);
            x509_parser::parse_x509_certificate(&der)
                .map_err(|e| fail(format!("not a certificate: {e}")))?;
            Ok(der)
        }
        0 => Err(fail("no '-----BEGIN CERTIFICATE-----' block".into())),
        n => Err(fail(format!(
            "{n} certificates; pin exactly the hub's own certificate"
        ))),
    }
}

fn common_name(identity: &SigningIdentity) -> Option<String> {
    let der = identity.chain().first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// A node running in this process.
#[derive(Debug)]
pub struct RunningNode {
    node: Shared,
    api_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    api: JoinHandle<Result<(), net::serve::ServeError>>,
    web: Option<JoinHandle<Result<(), net::serve::ServeError>>>,
    /// The legacy (VDXP) listener, when `[legacy]` is configured.
    legacy: Option<(SocketAddr, JoinHandle<Result<(), net::serve::ServeError>>)>,
}

impl RunningNode {
    /// The address the clerk API actually listens on.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The address the legacy (VDXP) listener actually listens on, when configured.
    pub fn legacy_addr(&self) -> Option<SocketAddr> {
        self.legacy.as_ref().map(|(a, _)| *a)
    }

    /// Where the web pages and the API answer (`http://127.0.0.1:PORT`, or `https://…`).
    pub fn web_url(&self) -> String {
        self.node
            .notices
            .web_url
            .get()
            .cloned()
            .unwrap_or_else(|| format!("http://{}", self.api_addr))
    }

    /// The clerk API token.
    pub fn token(&self) -> &str {
        &self.node.token
    }

    /// Where the token is kept.
    pub fn token_path(&self) -> PathBuf {
        self.node.config.token_path()
    }

    /// This node's agency code.
    pub fn agency(&self) -> &str {
        &self.node.config.agency
    }

    /// The shared state (database, configuration …), for embedding and tests.
    pub fn node(&self) -> &Shared {
        &self.node
    }

    /// Stops the workers and the API (requests in flight finish), and waits for them.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        let mut problems = Vec::new();
        for (name, task) in self.tasks {
            if let Err(e) = task.await {
                problems.push(format!("{name}: {e}"));
            }
        }
        match self.api.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!("clerk API: {e}")),
            Err(e) => problems.push(format!("clerk API: {e}")),
        }
        if let Some(web) = self.web {
            match web.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("web listener: {e}")),
                Err(e) => problems.push(format!("web listener: {e}")),
            }
        }
        if let Some((_, legacy)) = self.legacy {
            match legacy.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => problems.push(format!("legacy listener: {e}")),
                Err(e) => problems.push(format!("legacy listener: {e}")),
            }
        }
        tracing::info!(agency = %self.node.config.agency, "node stopped");
        if problems.is_empty() {
            Ok(())
        } else {
            Err(NodeError::Task(problems.join("; ")))
        }
    }
}

/// Starts a node in this process: opens everything, binds the clerk API, starts the workers,
/// and returns at once.
pub async fn start(config: NodeConfig) -> Result<RunningNode, NodeError> {
    let listen = config.api_listen;
    if !listen.ip().is_loopback() {
        return Err(NodeError::Config(ConfigError::Invalid {
            path: PathBuf::from("node configuration"),
            option: "api_listen",
            message: format!("{listen} is not a loopback address"),
        }));
    }
    let node = tokio::task::spawn_blocking(move || Node::open(config))
        .await
        .map_err(|e| NodeError::Task(e.to_string()))??;
    let node: Shared = Arc::new(node);
    let routes = api::router(node.clone()).merge(desk::router(node.clone(), false));
    let listen_error = |addr: SocketAddr| {
        move |e: net::serve::ServeError| NodeError::Listen {
            addr,
            source: std::io::Error::other(e),
        }
    };
    let server = net::serve::serve_http(
        listen,
        routes,
        net::serve::ServeOptions::local(API_CONNECTIONS),
    )
    .await
    .map_err(listen_error(listen))?;
    let api_addr = server.local_addr();
    // The pages on the agency's network: the same routes on a second listener, over HTTPS
    // when [tls] is set (required off loopback); its own sessions, their cookies `Secure`.
    let web_server = match node.config.web_listen {
        None => None,
        Some(addr) => {
            let tls = node.config.tls.clone();
            let routes = api::router(node.clone()).merge(desk::router(node.clone(), tls.is_some()));
            let options = net::serve::ServeOptions::local(API_CONNECTIONS);
            Some(match &tls {
                None => net::serve::serve_http(addr, routes, options)
                    .await
                    .map_err(listen_error(addr))?,
                Some(t) => {
                    let config = net::tls::server_config_without_client_auth(
                        &t.certificate,
                        &t.private_key,
                    )?;
                    net::serve::serve_tls(addr, config, routes, options)
                        .await
                        .map_err(listen_error(addr))?
                }
            })
        }
    };
    // The national axis's client API for existing document systems ([legacy]).
    let legacy_server = match legacy::Legacy::load(&node.config) {
        Err(e) => {
            return Err(NodeError::Config(ConfigError::Invalid {
                path: PathBuf::from("node configuration"),
                option: "legacy.systems.secret_file",
                message: e,
            }));
        }
        Ok(None) => None,
        Ok(Some(l)) => {
            let addr = node.config.legacy.as_ref().map_or(listen, |c| c.listen);
            let routes = legacy::router(node.clone(), Arc::new(l));
            Some(
                net::serve::serve_http(
                    addr,
                    routes,
                    net::serve::ServeOptions::local(API_CONNECTIONS),
                )
                .await
                .map_err(listen_error(addr))?,
            )
        }
    };
    let web_url = match &web_server {
        None => format!("http://{api_addr}"),
        Some(w) => {
            let a = w.local_addr();
            let host = if a.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], a.port()))
            } else {
                a
            };
            let scheme = if node.config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            format!("{scheme}://{host}")
        }
    };
    let _ = node.notices.web_url.set(web_url);
    let addr_path = node.config.api_addr_path();
    std::fs::write(&addr_path, format!("{api_addr}\n")).map_err(|source| NodeError::Write {
        path: addr_path,
        source,
    })?;
    let (stop, stopped) = watch::channel(false);
    let mut api_stop = stopped.clone();
    let api = tokio::spawn(server.run_until(async move {
        let _ = api_stop.changed().await;
    }));
    let web = web_server.map(|w| {
        let mut web_stop = stopped.clone();
        tokio::spawn(w.run_until(async move {
            let _ = web_stop.changed().await;
        }))
    });
    let legacy = legacy_server.map(|l| {
        let addr = l.local_addr();
        let mut legacy_stop = stopped.clone();
        tracing::info!(%addr, "legacy (VDXP) listener started");
        (
            addr,
            tokio::spawn(l.run_until(async move {
                let _ = legacy_stop.changed().await;
            })),
        )
    });
    let mut tasks = vec![
        (
            "outbox",
            tokio::spawn(outbox::run(node.clone(), stopped.clone())),
        ),
        (
            "inbox",
            tokio::spawn(inbox::run(node.clone(), stopped.clone())),
        ),
        (
            "receipts",
            tokio::spawn(receipts::run(node.clone(), stopped.clone())),
        ),
        (
            "directory",
            tokio::spawn(directory::run(node.clone(), stopped.clone())),
        ),
        (
            "trust",
            tokio::spawn(net::live_trust::watch(
                node.trust.clone(),
                Duration::from_secs(node.config.trust_reload_secs.max(1)),
                "node",
                {
                    let node = node.clone();
                    Arc::new(move || reload_trust(&node))
                },
                stopped.clone(),
            )),
        ),
    ];
    tasks.push((
        "archive",
        tokio::spawn(archive::run(node.clone(), stopped.clone())),
    ));
    if let Some(m) = &node.mailer {
        tasks.push(("mail", tokio::spawn(Arc::clone(m).run(stopped.clone()))));
    }
    tracing::info!(agency = %node.config.agency, hub = %node.config.primary_hub_url(),
        hub_urls = ?node.config.hub_urls(), api = %api_addr, "node started");
    Ok(RunningNode {
        node,
        api_addr,
        stop,
        tasks,
        api,
        web,
        legacy,
    })
}

/// Runs a node until `shutdown` completes, then stops it gracefully.
pub async fn run(config: NodeConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(config).await?;
    shutdown.await;
    running.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs"))
    }

    fn config(dir: &Path, agency: &str, cert_of: &str) -> NodeConfig {
        let text = format!(
            r#"
            agency = "{agency}"
            hub_url = "https://127.0.0.1:9"
            data_dir = "data"
            certificate = "{certs}/agencies/{cert_of}.pem"
            private_key = "{certs}/agencies/{cert_of}.key.pem"
            trust = ["{certs}/ca.pem"]
            hub_certificate = "{certs}/hub.pem"
            api_listen = "127.0.0.1:0"
            "#,
            certs = certs().display()
        );
        NodeConfig::from_toml(&text, dir, Path::new("node.toml")).unwrap()
    }

    #[test]
    fn opening_checks_identity_and_hub_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(config(dir.path(), "000.00.00.G22", "000.00.00.G22")).unwrap();
        assert_eq!(node.me.organ_name, "Văn phòng Chính phủ");
        assert_eq!(node.token.len(), 64);
        assert!(dir.path().join("data/api.token").exists());
        drop(node);

        let dir = tempfile::tempdir().unwrap();
        let err = Node::open(config(dir.path(), "000.00.00.H41", "000.00.00.G22")).unwrap_err();
        assert!(matches!(err, NodeError::IdentityMismatch { .. }), "{err}");
        assert!(err.to_string().contains("000.00.00.G22"), "{err}");

        let mut c = config(dir.path(), "000.00.00.G22", "000.00.00.G22");
        c.hub_certificate = certs().join("ca.key.pem");
        let err = Node::open(c).unwrap_err();
        assert!(matches!(err, NodeError::HubCertificate { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_non_loopback_api_address_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path(), "000.00.00.G22", "000.00.00.G22");
        c.api_listen = "0.0.0.0:0".parse().unwrap();
        let err = start(c).await.unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }
}
