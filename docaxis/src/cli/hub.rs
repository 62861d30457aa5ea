//! `docaxis hub`: run the national hub, and manage its agency directory.
//!
//! Directory commands talk to a running hub's admin API (loopback, token in
//! `data_dir/admin.token`); when no hub is running they open its database directly, so an
//! operator can register agencies before the first start.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use exchange::protocol::ErrorBody;
use hub::admin::{self, NewAgency};
use hub::db::{Agency, HubDb};
use hub::track::DocumentTrack;
use hub::{self, HubConfig};

/// Run the national hub, or manage it.
#[derive(Debug, clap::Args)]
pub(crate) struct HubArgs {
    /// The hub configuration (see examples/hub.toml).
    #[arg(long, env = "DOCAXIS_HUB_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<HubCommand>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum HubCommand {
    /// Manage the agency directory.
    #[command(subcommand)]
    Agency(AgencyCommand),
    /// Show what the hub recorded about a document: per recipient, the hub's events, the
    /// business statuses (times, staff, reasons), the resulting state and the actions
    /// (revoke, update, replace) with their answers; then every packet.
    Track {
        /// The document id.
        document_id: String,
        /// The agency that issued the document (its From/OrganId).
        #[arg(long)]
        owner: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the running hub read its trust anchors and CRLs again now (after `docaxis pki
    /// revoke`, say). The hub also does this every `trust_reload_secs` and on SIGHUP.
    Reload,
    /// Copy this hub's embedded database (data_dir/hub.redb) into an empty PostgreSQL
    /// database, then check every table's row count. Stop the hub first; afterwards set
    /// `[store] postgres` in hub.toml and start one or more replicas on it.
    Migrate {
        /// The target: postgresql://user:password@host:port/database (an empty database).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AgencyCommand {
    /// Register an agency with the certificate(s) it may use.
    Add {
        /// Agency code, e.g. 000.00.00.H41.
        #[arg(long)]
        code: String,
        /// Agency name, e.g. "UBND Tỉnh Nghệ An".
        #[arg(long)]
        name: String,
        /// Contact email of the agency's registry clerks.
        #[arg(long)]
        email: Option<String>,
        /// PEM certificate whose UID is the agency code; repeat for several (rotation).
        #[arg(long = "cert", required = true)]
        certs: Vec<PathBuf>,
    },
    /// List registered agencies.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Suspend an agency: it can no longer connect, send or receive.
    Suspend {
        #[arg(long)]
        code: String,
    },
    /// Resume a suspended agency.
    Resume {
        #[arg(long)]
        code: String,
    },
}

/// Runs `docaxis hub …`.
pub(crate) fn run(args: HubArgs) -> anyhow::Result<ExitCode> {
    let config_path = args
        .config
        .clone()
        .context("--config hub.toml is required (or set DOCAXIS_HUB_CONFIG)")?;
    let config = HubConfig::load(&config_path)?;
    let rt = super::server_rt::build(None)?;
    match args.command {
        None => rt.block_on(serve(config)),
        Some(HubCommand::Migrate { to }) => rt.block_on(migrate(&config, &to)),
        Some(cmd) => rt.block_on(manage(&config, cmd)),
    }
}

async fn serve(config: HubConfig) -> anyhow::Result<ExitCode> {
    super::signals::survive_file_size_limit();
    let running = hub::start(&config).await?;
    println!("hub listening on https://{} (mutual TLS)", running.addr);
    println!(
        "operator console and admin API on {} (token in {})",
        running.console_url,
        config.admin_token_path().display()
    );
    match running.hub.db.backend_name() {
        "postgresql" => println!("database PostgreSQL ([store] in the configuration)"),
        _ => println!("database {}", config.db_path().display()),
    }
    super::signals::reload_on_hangup(std::sync::Arc::clone(running.hub.trust()));
    running.run_until(super::signals::shutdown()).await?;
    println!("hub stopped");
    Ok(ExitCode::SUCCESS)
}

/// How to reach the hub: its admin API when it runs, its database when it does not.
enum Admin {
    Api {
        client: reqwest::Client,
        base: String,
        token: String,
    },
    Db(HubDb),
}

async fn connect(config: &HubConfig) -> anyhow::Result<Admin> {
    if let Some(api) = try_api(config).await? {
        return Ok(api);
    }
    // PostgreSQL is shared: change it directly; running replicas hear of it (NOTIFY).
    if config.store.postgres_url()?.is_some() {
        return Ok(Admin::Db(hub::open_db(config).await?));
    }
    // The database is locked while a hub runs; one that is starting binds its admin API a
    // moment after opening it, so a locked database is retried briefly (API first) before
    // giving up.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match HubDb::open(&config.db_path()) {
            Ok(db) => return Ok(Admin::Db(db)),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                if let Some(api) = try_api(config).await? {
                    return Ok(api);
                }
            }
            Err(e) => bail!(
                "the hub's admin API at {} does not answer and its database {} cannot be opened ({e}); is the hub starting or stopping?",
                admin_address(config),
                config.db_path().display()
            ),
        }
    }
}

/// `docaxis hub migrate --to URL`: copies the redb file into PostgreSQL, with progress.
async fn migrate(config: &HubConfig, to: &str) -> anyhow::Result<ExitCode> {
    if config.store.postgres_url()?.is_some() {
        bail!(
            "this hub already keeps its state in PostgreSQL ([store] in {}); migrate copies a \
             hub's embedded database (data_dir/hub.redb)",
            config.data_dir.display()
        );
    }
    let path = config.db_path();
    if !path.exists() {
        bail!("there is no hub database at {} to migrate", path.display());
    }
    let from = hub::db::RedbHub::open(&path).with_context(|| {
        format!(
            "cannot open {} (stop the hub first: a running hub holds its database)",
            path.display()
        )
    })?;
    let tls = hub::db::pg::PgTls::from_ca_files(&config.store.ca)?;
    let target = hub::db::PgHub::connect_with(to, 4, tls)
        .await
        .context("cannot use the target PostgreSQL database")?;
    eprintln!("migrating {} to PostgreSQL", path.display());
    let report = hub::db::migrate::copy(&from, &target, |done| eprintln!("  copied {done}"))
        .await
        .context("the migration stopped; the redb hub is unchanged")?;
    println!("{:<18} {:>12} {:>12}", "table", "redb", "postgresql");
    for t in &report.tables {
        println!("{:<18} {:>12} {:>12}", t.table, t.redb, t.postgres);
    }
    println!(
        "every count matches. Now add to the hub's configuration\n\n[store]\npostgres = \"…\"   \
         # the URL given to --to (or postgres_file)\n\nand start the hub, and any further \
         replicas, on it."
    );
    Ok(ExitCode::SUCCESS)
}

/// The admin API address: as the running hub recorded it, else as configured.
fn admin_address(config: &HubConfig) -> String {
    std::fs::read_to_string(config.data_dir.join("addresses.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["admin_listen"].as_str().map(str::to_string))
        .unwrap_or_else(|| config.admin_listen.to_string())
        // A hub listening on every address is reached on loopback from its own machine.
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:")
}

/// The running hub's admin API, if it answers.
async fn try_api(config: &HubConfig) -> anyhow::Result<Option<Admin>> {
    let Ok(token) = net::token::read(&config.admin_token_path()) else {
        return Ok(None);
    };
    let builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
    let (builder, scheme) = match &config.admin_tls {
        None => (builder, "http"),
        Some(tls) => {
            let cas: Vec<&std::path::Path> = config
                .trust
                .iter()
                .chain(&tls.ca)
                .map(|p| p.as_path())
                .collect();
            let tls = net::tls::client_config_without_auth(&cas)
                .context("cannot set up TLS to the hub's admin listener")?;
            (builder.use_preconfigured_tls(tls), "https")
        }
    };
    let client = builder.build().context("cannot build an HTTP client")?;
    let base = format!("{scheme}://{}", admin_address(config));
    let answered = client
        .get(format!("{base}/admin/agencies"))
        .bearer_auth(token.trim())
        .send()
        .await
        .is_ok();
    Ok(answered.then(|| Admin::Api {
        client,
        base,
        token: token.trim().to_string(),
    }))
}

async fn api_call<T: serde::de::DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> anyhow::Result<T> {
    let resp = req
        .send()
        .await
        .context("the hub's admin API did not answer")?;
    let status = resp.status();
    let body = resp.bytes().await?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<ErrorBody>(&body)
            .map(|e| e.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        bail!("{msg}");
    }
    serde_json::from_slice(&body).context("unexpected answer from the admin API")
}

fn hub_err(e: hub::service::HubError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

async fn manage(config: &HubConfig, cmd: HubCommand) -> anyhow::Result<ExitCode> {
    let admin = connect(config).await?;
    match cmd {
        // `run` sends migrate straight to `migrate` (it needs the redb file, not the admin
        // API); here the database opened for the directory commands is closed first.
        HubCommand::Migrate { to } => {
            drop(admin);
            return migrate(config, &to).await;
        }
        HubCommand::Reload => {
            let Admin::Api {
                client,
                base,
                token,
            } = &admin
            else {
                bail!(
                    "the hub is not running (its admin API does not answer): it reads its trust \
                     anchors and CRLs when it starts"
                );
            };
            let report: admin::ReloadReport = api_call(
                client
                    .post(format!("{base}/admin/reload"))
                    .bearer_auth(token),
            )
            .await?;
            if report.changed {
                println!(
                    "trust anchors and CRLs reloaded (generation {}): {}",
                    report.generation,
                    report.files.join(", ")
                );
            } else {
                println!(
                    "trust anchors and CRLs unchanged (generation {}): {}",
                    report.generation,
                    report.files.join(", ")
                );
            }
        }
        HubCommand::Agency(AgencyCommand::Add {
            code,
            name,
            email,
            certs,
        }) => {
            let certificates = certs
                .iter()
                .map(|p| {
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let req = NewAgency {
                code,
                name,
                email,
                certificates,
            };
            let agency: Agency = match &admin {
                Admin::Api {
                    client,
                    base,
                    token,
                } => {
                    api_call(
                        client
                            .post(format!("{base}/admin/agencies"))
                            .bearer_auth(token)
                            .json(&req),
                    )
                    .await?
                }
                Admin::Db(db) => admin::add_agency(db, req).await.map_err(hub_err)?,
            };
            println!(
                "registered {} {} ({} certificate(s))",
                agency.code,
                agency.name,
                agency.fingerprints.len()
            );
        }
        HubCommand::Agency(AgencyCommand::List { json }) => {
            let agencies: Vec<Agency> = match &admin {
                Admin::Api {
                    client,
                    base,
                    token,
                } => {
                    api_call(
                        client
                            .get(format!("{base}/admin/agencies"))
                            .bearer_auth(token),
                    )
                    .await?
                }
                Admin::Db(db) => db.agencies().await.map_err(|e| anyhow::anyhow!("{e}"))?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&agencies)?);
            } else {
                for a in &agencies {
                    println!(
                        "{:<16} {:<9} {}  ({} certificate(s){})",
                        a.code,
                        if a.active { "active" } else { "SUSPENDED" },
                        a.name,
                        a.fingerprints.len(),
                        a.email
                            .as_deref()
                            .map(|e| format!(", {e}"))
                            .unwrap_or_default()
                    );
                }
                println!("{} agencies", agencies.len());
            }
        }
        HubCommand::Agency(AgencyCommand::Suspend { code }) => {
            let a = set_active(&admin, &code, false).await?;
            println!("{} {} is suspended", a.code, a.name);
        }
        HubCommand::Agency(AgencyCommand::Resume { code }) => {
            let a = set_active(&admin, &code, true).await?;
            println!("{} {} is active", a.code, a.name);
        }
        HubCommand::Track {
            document_id,
            owner,
            json,
        } => {
            let record: DocumentTrack = match &admin {
                Admin::Api {
                    client,
                    base,
                    token,
                } => {
                    api_call(
                        client
                            .get(format!("{base}/admin/track"))
                            .query(&[
                                ("owner", owner.as_str()),
                                ("document_id", document_id.as_str()),
                            ])
                            .bearer_auth(token),
                    )
                    .await?
                }
                Admin::Db(db) => admin::track(db, &owner, &document_id)
                    .await
                    .map_err(hub_err)?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                let mut out = std::io::stdout().lock();
                hub::track::print_track(&mut out, &record)?;
            }
            if record.packets.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn set_active(admin: &Admin, code: &str, active: bool) -> anyhow::Result<Agency> {
    match admin {
        Admin::Api {
            client,
            base,
            token,
        } => {
            let verb = if active { "resume" } else { "suspend" };
            api_call(
                client
                    .post(format!("{base}/admin/agencies/{code}/{verb}"))
                    .bearer_auth(token),
            )
            .await
        }
        Admin::Db(db) => admin::set_active(db, code, active).await.map_err(hub_err),
    }
}
