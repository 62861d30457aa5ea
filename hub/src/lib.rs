//! The national hub: authenticates nodes, verifies and stores every packet, routes it to each
//! recipient, issues signed receipts and tracks every (packet, recipient) delivery.
//!
//! - `config`: `hub.toml`.
//! - `db`: durable state (redb).
//! - `service`: the checks and decisions.
//! - `api`: node-facing mTLS HTTP routes; `admin`: the operators' API on the admin listener.
//! - `console`: the operators' web pages, on the admin listener too; `ledger`: the time
//!   index and hourly counts they read.
//! - `alerts`: operator incidents and their mail.
//! - `metrics`: Prometheus metrics, served at `GET /metrics` on the admin listener.
//! - `track`: the record of one business document built for operators (`docaxis hub track`).
//!
//! [`start`] runs a hub inside the current tokio runtime and reports its bound addresses, so
//! the CLI, the demo and tests share one code path.

pub mod admin;
pub mod alerts;
pub mod api;
pub mod config;
pub mod console;
pub mod db;
pub mod ledger;
pub mod metrics;
pub mod service;
pub mod signer;
pub mod track;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;

use dsig::SigningIdentity;
use net::live_trust::LiveTrust;
use net::serve::{HttpServer, ServeOptions, serve_http, serve_tls};

/// Most connections the admin API keeps open at once (its clients are operators' tools).
const ADMIN_CONNECTIONS: usize = 32;

pub use config::HubConfig;
pub use service::Hub;

/// A hub running in this process.
pub struct RunningHub {
    /// Where nodes connect (mTLS).
    pub addr: SocketAddr,
    /// Where the admin API and the console listen (loopback HTTP, or HTTPS).
    pub admin_addr: SocketAddr,
    /// The console's address (`http://…/` or `https://…/`).
    pub console_url: String,
    /// The admin bearer token.
    pub admin_token: String,
    pub hub: Arc<Hub>,
    server: HttpServer,
    admin_server: HttpServer,
    trust_stop: tokio::sync::watch::Sender<bool>,
}

impl RunningHub {
    /// Stops accepting, lets requests in flight finish, and closes the database.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.trust_stop.send(true);
        self.admin_server
            .shutdown()
            .await
            .context("hub admin API shutdown")?;
        self.server
            .shutdown()
            .await
            .context("hub server shutdown")?;
        Ok(())
    }

    /// Serves until `signal` completes, then shuts down.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        signal.await;
        self.shutdown().await
    }
}

/// Opens the database, loads keys and trust, and starts both listeners.
pub async fn start(config: &HubConfig) -> anyhow::Result<RunningHub> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let db = open_db(config).await?;
    let trust = Arc::new(
        LiveTrust::load(&config.trust, &config.crl).context("cannot load trust anchors or CRLs")?,
    );
    let identity = SigningIdentity::from_pem_files(&config.private_key, &config.certificate)
        .context("cannot load the hub's signing key and certificate")?;
    let hub = Hub::new(db, trust, identity, config.max_packet_bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let tls = net::tls::server_config(
        &config.certificate,
        &config.private_key,
        &config.trust,
        &config.crl,
    )
    .context("cannot build the hub's TLS configuration")?;
    let server = serve_tls(
        config.listen,
        tls,
        api::router(Arc::clone(&hub)),
        ServeOptions {
            max_connections: config.max_connections,
            ..ServeOptions::default()
        },
    )
    .await
    .context("cannot start the node API")?;
    let addr = server.local_addr();
    if let Some(reloader) = server.tls_reloader() {
        let tls_files = config.clone();
        hub.set_tls_refresh(Box::new(move || {
            reloader.reload(net::tls::server_config(
                &tls_files.certificate,
                &tls_files.private_key,
                &tls_files.trust,
                &tls_files.crl,
            )?);
            Ok(())
        }));
    }
    let (trust_stop, trust_stopped) = tokio::sync::watch::channel(false);
    let reload_hub = Arc::clone(&hub);
    tokio::spawn(net::live_trust::watch(
        Arc::clone(hub.trust()),
        std::time::Duration::from_secs(config.trust_reload_secs.max(1)),
        "hub",
        Arc::new(move || reload_hub.reload_trust()),
        trust_stopped,
    ));

    let mailer = match &config.mail {
        Some(m) => Some(Arc::new(
            mail::Mailer::new(hub.db.mail_queue(), m).context("cannot set up the mail")?,
        )),
        None => None,
    };
    if let Some(m) = &mailer {
        tokio::spawn(Arc::clone(m).run(trust_stop.subscribe()));
    }
    tokio::spawn(alerts::watch(
        Arc::clone(&hub),
        config.alerts.clone(),
        mailer,
        trust_stop.subscribe(),
    ));

    if let Some(pg) = hub.db.as_postgres() {
        let heard_by = Arc::clone(&hub);
        tokio::spawn(db::pg::listen(
            pg.config().clone(),
            pg.tls().clone(),
            Arc::new(move |heard| heard_by.heard(heard)),
            trust_stop.subscribe(),
        ));
        tokio::spawn(share_polls(Arc::clone(&hub), trust_stop.subscribe()));
        tokio::spawn(share_crls(
            Arc::clone(&hub),
            std::time::Duration::from_secs(config.trust_reload_secs.max(1)),
            trust_stop.subscribe(),
        ));
    }

    let admin_token = net::token::load_or_create(&config.admin_token_path())?;
    let console = console::router(
        Arc::clone(&hub),
        admin_token.clone(),
        console::Options {
            tls: config.admin_tls.is_some(),
            late_after_secs: config.alerts.pending_after_secs,
            mail_configured: config.mail.is_some() && !config.alerts.to.is_empty(),
        },
    );
    let admin_routes = admin::router(Arc::clone(&hub), admin_token.clone()).merge(console);
    let admin_server = match &config.admin_tls {
        None => serve_http(
            config.admin_listen,
            admin_routes,
            ServeOptions::local(ADMIN_CONNECTIONS),
        )
        .await
        .with_context(|| format!("cannot listen on admin address {}", config.admin_listen))?,
        Some(tls) => {
            let tls_config =
                net::tls::server_config_without_client_auth(&tls.certificate, &tls.private_key)
                    .context("cannot set up TLS for the admin listener ([admin_tls])")?;
            serve_tls(
                config.admin_listen,
                tls_config,
                admin_routes,
                ServeOptions::local(ADMIN_CONNECTIONS),
            )
            .await
            .with_context(|| format!("cannot listen on admin address {}", config.admin_listen))?
        }
    };
    let admin_addr = admin_server.local_addr();
    let console_url = format!(
        "{}://{}/",
        if config.admin_tls.is_some() {
            "https"
        } else {
            "http"
        },
        admin_addr
    );
    write_addresses(config, addr, admin_addr);
    tracing::info!(%addr, %admin_addr, "hub started");
    Ok(RunningHub {
        addr,
        admin_addr,
        console_url,
        admin_token,
        hub,
        server,
        admin_server,
        trust_stop,
    })
}

/// How often a replica shares the polls it saw with the others.
const SHARE_POLLS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Every [`SHARE_POLLS_EVERY`] until `stop`: writes when agencies last polled this replica and
/// learns when they polled the others, so alerts and the console judge the whole hub.
async fn share_polls(hub: Arc<Hub>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match hub.db.share_polls(hub.metrics.poll_times()).await {
            Ok(all) => hub.metrics.merge_polls(all),
            Err(e) => {
                tracing::warn!(error = %e, "cannot share the agencies' polls with the other replicas")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(SHARE_POLLS_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Every `every` until `stop`: shares the CRLs this replica read from its files through
/// PostgreSQL and takes in the others', so a revocation published at one replica's machine
/// applies at all of them (the trust keeps the newest CRL of each issuer).
async fn share_crls(
    hub: Arc<Hub>,
    every: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(pg) = hub.db.as_postgres().cloned() else {
        return;
    };
    loop {
        match pg.share_crls(hub.trust().file_crls()).await {
            Ok(all) => {
                // Parsing the CRLs is blocking work: off the executor.
                let trust = Arc::clone(hub.trust());
                let (changed, bad) =
                    match tokio::task::spawn_blocking(move || trust.set_shared_crls(all)).await {
                        Ok(done) => done,
                        Err(e) => {
                            tracing::error!(error = %e, "taking in the shared CRLs failed");
                            (false, Vec::new())
                        }
                    };
                for e in bad {
                    tracing::warn!(error = %e, "a CRL shared by another replica is unreadable; left out");
                }
                if changed {
                    hub.trust().reload_soon();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot share CRLs with the other replicas"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Opens the configured store: PostgreSQL when `[store]` names one, else the redb file.
pub async fn open_db(config: &HubConfig) -> anyhow::Result<db::HubDb> {
    match config.store.postgres_url()? {
        Some(url) => {
            let tls = db::pg::PgTls::from_ca_files(&config.store.ca)?;
            let pg = db::PgHub::connect_with(&url, config.store.pool_size, tls)
                .await
                .context("cannot use the hub database in PostgreSQL ([store] postgres)")?;
            Ok(db::HubDb::from_postgres(pg))
        }
        None => db::HubDb::open(&config.db_path()).with_context(|| {
            format!(
                "cannot open the hub database {}",
                config.db_path().display()
            )
        }),
    }
}

/// Records the bound addresses in `data_dir/addresses.json` (useful when ports were 0).
fn write_addresses(config: &HubConfig, addr: SocketAddr, admin: SocketAddr) {
    let body = serde_json::json!({ "listen": addr.to_string(), "admin_listen": admin.to_string() });
    let path = config.data_dir.join("addresses.json");
    // Written whole then renamed, so a reader never sees half a file.
    let tmp = config.data_dir.join("addresses.json.tmp");
    if let Err(e) =
        std::fs::write(&tmp, body.to_string()).and_then(|()| std::fs::rename(&tmp, &path))
    {
        tracing::warn!(path = %path.display(), error = %e, "cannot record the hub's addresses");
    }
}
