//! The exchange a benchmark runs on: a development PKI, a hub and two agency nodes (sender and
//! recipient), all in this process on loopback, with real mutual TLS and real redb files
//! committed with `Durability::Immediate` (fsync), exactly as `docaxis demo` runs them. With
//! [`HubSetup::postgres`] the hub keeps its state in that PostgreSQL database instead and runs
//! as [`HubSetup::replicas`] replicas: the sender's node lists them in order and the
//! recipient's in the reverse order, so both replicas carry traffic and a document crosses
//! from one to the other (the recipient's long polls are woken through PostgreSQL).
//!
//! Invariants: everything lives under one folder given by the caller; the agencies' keys are of
//! the kind asked for (the CA and the hub keep ECDSA P-256, as `pki init` makes them);
//! [`Exchange::shutdown`] stops the nodes before the hub so no worker is left calling a hub
//! that is gone.

use std::path::{Path, PathBuf};

use dsig::pki::{self, AgencyIdentity, InitOptions, IssueRequest, KeyAlgorithm};
use hub::{self, HubConfig, RunningHub};
use node::{self as agency_node, NodeConfig, RunningNode};

use super::BenchError;

/// The sending agency.
pub(crate) const SENDER: (&str, &str) = ("000.00.00.G22", "Văn phòng Chính phủ");
/// The receiving agency.
pub(crate) const RECIPIENT: (&str, &str) = ("000.00.00.H41", "UBND Tỉnh Nghệ An");

/// Where the hub keeps its state, and how many replicas serve it.
#[derive(Debug, Clone, Default)]
pub(crate) struct HubSetup {
    /// PostgreSQL URL (an empty database: the run's tables are made in it); none: redb.
    pub postgres: Option<String>,
    /// Hub processes (tasks here) on that database; 1 with redb.
    pub replicas: usize,
}

/// The hub replicas and two nodes running in this process.
pub(crate) struct Exchange {
    pub hubs: Vec<RunningHub>,
    pub sender: RunningNode,
    pub recipient: RunningNode,
}

impl Exchange {
    /// Makes the PKI in `dir/pki` with agency keys of type `key`, starts the hub (every
    /// replica of it), registers both agencies and starts their nodes.
    pub(crate) async fn start(
        dir: &Path,
        key: KeyAlgorithm,
        setup: &HubSetup,
    ) -> Result<Exchange, BenchError> {
        let pki_dir = dir.join("pki");
        make_pki(&pki_dir, key)?;
        let hub_config = |i: usize| {
            let store = hub::config::StoreConfig {
                postgres: setup.postgres.clone(),
                ..hub::config::StoreConfig::default()
            };
            HubConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                admin_listen: ([127, 0, 0, 1], 0).into(),
                data_dir: dir.join(if i == 0 {
                    "hub".to_string()
                } else {
                    format!("hub-{}", i + 1)
                }),
                certificate: pki_dir.join("hub.pem"),
                private_key: pki_dir.join("hub.key.pem"),
                trust: vec![pki_dir.join("ca.pem")],
                crl: vec![pki_dir.join("crl.pem")],
                max_packet_bytes: hub::config::DEFAULT_MAX_PACKET_BYTES,
                trust_reload_secs: hub::config::DEFAULT_TRUST_RELOAD_SECS,
                max_connections: hub::config::DEFAULT_MAX_CONNECTIONS,
                alerts: hub::alerts::AlertConfig::default(),
                mail: None,
                admin_tls: None,
                store,
            }
        };
        let hub = hub::start(&hub_config(0))
            .await
            .map_err(|e| BenchError::Start(format!("the hub: {e:#}")))?;
        for (code, name) in [SENDER, RECIPIENT] {
            let cert = pki_dir.join("agencies").join(format!("{code}.pem"));
            let pem = std::fs::read_to_string(&cert).map_err(|source| BenchError::Io {
                path: cert.clone(),
                source,
            })?;
            let req = hub::admin::NewAgency {
                code: code.into(),
                name: name.into(),
                email: None,
                certificates: vec![pem],
            };
            let agency = hub::admin::add_agency(&hub.hub.db, req)
                .await
                .map_err(|e| BenchError::Start(format!("registering {code} at the hub: {e}")))?;
            hub.hub.cache_agency(agency);
        }
        // Further replicas read the directory just registered when they start.
        let mut hubs = vec![hub];
        for i in 1..setup.replicas.max(1) {
            hubs.push(
                hub::start(&hub_config(i))
                    .await
                    .map_err(|e| BenchError::Start(format!("hub replica {}: {e:#}", i + 1)))?,
            );
        }
        let urls: Vec<String> = hubs.iter().map(|h| format!("https://{}", h.addr)).collect();
        let sender = start_node(dir, &pki_dir, SENDER, &urls).await?;
        let reversed: Vec<String> = urls.iter().rev().cloned().collect();
        let recipient = start_node(dir, &pki_dir, RECIPIENT, &reversed).await?;
        Ok(Exchange {
            hubs,
            sender,
            recipient,
        })
    }

    /// Stops both nodes, then the hub.
    pub(crate) async fn shutdown(self) -> Result<(), BenchError> {
        for node in [self.sender, self.recipient] {
            let code = node.agency().to_string();
            node.shutdown()
                .await
                .map_err(|e| BenchError::Stop(format!("the node of {code}: {e}")))?;
        }
        for hub in self.hubs {
            hub.shutdown()
                .await
                .map_err(|e| BenchError::Stop(format!("the hub: {e:#}")))?;
        }
        Ok(())
    }
}

/// A CA, CRL and hub certificate (ECDSA P-256), and both agencies with `key` keys.
fn make_pki(pki_dir: &Path, key: KeyAlgorithm) -> Result<(), BenchError> {
    let agencies = [SENDER, RECIPIENT].map(|(code, name)| AgencyIdentity::new(code, name));
    let init = InitOptions {
        agencies: match key {
            KeyAlgorithm::EcdsaP256 => agencies.to_vec(),
            KeyAlgorithm::Rsa2048 => Vec::new(),
        },
        ..InitOptions::default()
    };
    pki::init(pki_dir, &init)?;
    if key != KeyAlgorithm::EcdsaP256 {
        for agency in agencies {
            let mut req = IssueRequest::new(agency.code, agency.name);
            req.key = key;
            pki::issue(pki_dir, &req)?;
        }
    }
    Ok(())
}

async fn start_node(
    dir: &Path,
    pki_dir: &Path,
    (code, name): (&str, &str),
    hub_urls: &[String],
) -> Result<RunningNode, BenchError> {
    let node_dir: PathBuf = dir.join(code);
    std::fs::create_dir_all(&node_dir).map_err(|source| BenchError::Io {
        path: node_dir.clone(),
        source,
    })?;
    let text = format!(
        "agency = \"{code}\"\nagency_name = \"{name}\"\nhub_url = {hubs:?}\n\
         data_dir = \"data\"\ncertificate = \"{pki}/agencies/{code}.pem\"\n\
         private_key = \"{pki}/agencies/{code}.key.pem\"\ntrust = [\"{pki}/ca.pem\"]\n\
         crl = [\"{pki}/crl.pem\"]\nhub_certificate = \"{pki}/hub.pem\"\n\
         api_listen = \"127.0.0.1:0\"\npoll_wait_secs = 20\n",
        hubs = hub_urls,
        pki = pki_dir.display()
    );
    let config = NodeConfig::from_toml(&text, &node_dir, &node_dir.join("node.toml"))
        .map_err(|e| BenchError::Start(format!("the configuration of {code}: {e}")))?;
    agency_node::start(config)
        .await
        .map_err(|e| BenchError::Start(format!("the node of {code}: {e}")))
}
