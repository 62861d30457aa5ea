//! Hub configuration (`hub.toml`).
//!
//! Relative paths are resolved against the folder of the configuration file, so a config and
//! its certificates can move together. Every option has a sensible default except the
//! certificate, key and trust anchors, which must be named.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default largest packet the hub accepts (64 MiB; packets carry signed PDFs).
pub const DEFAULT_MAX_PACKET_BYTES: usize = 64 * 1024 * 1024;

/// The hub's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubConfig {
    /// Address of the mutual-TLS API for nodes.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address of the operators' admin API and console (bearer token; the console logs in
    /// with it). Plain HTTP on loopback; any other address requires `[admin_tls]`.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// TLS for the admin listener (`[admin_tls]`), required when it is not on loopback.
    #[serde(default)]
    pub admin_tls: Option<AdminTls>,
    /// Folder of the database (`hub.redb`) and the admin token (`admin.token`).
    pub data_dir: PathBuf,
    /// The hub's certificate chain (PEM): TLS server certificate and receipt signer.
    pub certificate: PathBuf,
    /// The hub's private key (PKCS#8 PEM).
    pub private_key: PathBuf,
    /// Trusted CA certificates (PEM) for client certificates and packet signatures.
    pub trust: Vec<PathBuf>,
    /// Certificate revocation lists (PEM).
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// Largest accepted packet, in bytes.
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: usize,
    /// How often the trust anchors and CRLs are read again, in seconds (also on SIGHUP and
    /// `docaxis hub reload`).
    #[serde(default = "default_trust_reload_secs")]
    pub trust_reload_secs: u64,
    /// Most node connections open at once (each is a file handle; keep it under `ulimit -n`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Operator alerts (`[alerts]`): thresholds and who is mailed.
    #[serde(default)]
    pub alerts: crate::alerts::AlertConfig,
    /// Outgoing mail (`[mail]`): the SMTP server the alerts go through.
    #[serde(default)]
    pub mail: Option<mail::MailConfig>,
    /// Where the state lives (`[store]`): the embedded redb file in `data_dir` (the default),
    /// or PostgreSQL, shared by several hub replicas.
    #[serde(default)]
    pub store: StoreConfig,
}

/// The `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// PostgreSQL connection URL (`postgresql://user:password@host:port/db`, several hosts
    /// allowed with `target_session_attrs=read-write`). Absent: the embedded redb file.
    #[serde(default)]
    pub postgres: Option<String>,
    /// A file holding that URL instead (keeps a password out of `hub.toml`; readable by the
    /// hub's user only).
    #[serde(default)]
    pub postgres_file: Option<PathBuf>,
    /// Most PostgreSQL connections this replica opens.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// CA certificates (PEM) of the PostgreSQL server: with them every connection uses TLS,
    /// verifying the server's chain and name (add `sslmode=require` to the URL so that a
    /// server without TLS is refused). Without them connections are in clear: keep the
    /// database on the hub's private network.
    #[serde(default)]
    pub ca: Vec<PathBuf>,
}

fn default_pool_size() -> usize {
    crate::db::pg::DEFAULT_POOL_SIZE
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            postgres: None,
            postgres_file: None,
            pool_size: default_pool_size(),
            ca: Vec::new(),
        }
    }
}

impl StoreConfig {
    /// The PostgreSQL URL, from `postgres` or read from `postgres_file`; `None` for redb.
    pub fn postgres_url(&self) -> Result<Option<String>, ConfigError> {
        if let Some(url) = &self.postgres {
            return Ok(Some(url.clone()));
        }
        let Some(path) = &self.postgres_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let url = text.trim();
        if url.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.clone(),
                message: "[store] postgres_file is empty; it must hold the PostgreSQL URL".into(),
            });
        }
        Ok(Some(url.to_string()))
    }
}

/// The admin listener's own certificate (server authentication only: operators log in with
/// the token, browsers present no certificate).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    /// Certificate chain (PEM, leaf first) naming the host operators type in their browser.
    pub certificate: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub private_key: PathBuf,
    /// CA certificates (PEM) the hub CLI trusts for this listener, besides `trust`.
    #[serde(default)]
    pub ca: Vec<PathBuf>,
}

/// Default connection limit of the node-facing listener.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;

fn default_max_connections() -> usize {
    DEFAULT_MAX_CONNECTIONS
}

/// Default interval of the trust reload, in seconds.
pub const DEFAULT_TRUST_RELOAD_SECS: u64 = 30;

fn default_trust_reload_secs() -> u64 {
    DEFAULT_TRUST_RELOAD_SECS
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8444))
}

fn default_max_packet_bytes() -> usize {
    DEFAULT_MAX_PACKET_BYTES
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl HubConfig {
    /// Reads `hub.toml` and resolves relative paths against its folder.
    pub fn load(path: &Path) -> Result<HubConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg: HubConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.resolve(exchange::config_file::base_of(path));
        cfg.check().map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    /// Makes relative paths relative to `base`.
    pub fn resolve(&mut self, base: &Path) {
        exchange::config_file::resolve(
            base,
            [
                &mut self.data_dir,
                &mut self.certificate,
                &mut self.private_key,
            ]
            .into_iter()
            .chain(&mut self.trust)
            .chain(&mut self.crl),
        );
        if let Some(m) = &mut self.mail {
            m.resolve(base);
        }
        exchange::config_file::resolve(
            base,
            self.store
                .postgres_file
                .iter_mut()
                .chain(self.store.ca.iter_mut()),
        );
        if let Some(t) = &mut self.admin_tls {
            exchange::config_file::resolve(
                base,
                [&mut t.certificate, &mut t.private_key]
                    .into_iter()
                    .chain(&mut t.ca),
            );
        }
    }

    /// Checks what can be checked without touching files.
    pub fn check(&self) -> Result<(), String> {
        if self.trust.is_empty() {
            return Err("`trust` must name at least one CA certificate".into());
        }
        if !self.admin_listen.ip().is_loopback() && self.admin_tls.is_none() {
            return Err(format!(
                "admin_listen {} is not a loopback address: operators would send the token in \
                 clear over the network; add [admin_tls] with a certificate and private_key, or \
                 listen on loopback",
                self.admin_listen
            ));
        }
        if self.max_packet_bytes < 1024 {
            return Err("max_packet_bytes must be at least 1024".into());
        }
        self.alerts.check()?;
        if self.store.postgres.is_some() && self.store.postgres_file.is_some() {
            return Err("[store]: give `postgres` or `postgres_file`, not both".into());
        }
        if let Some(url) = &self.store.postgres {
            crate::db::pg::parse_url(url).map_err(|e| format!("[store] postgres: {e}"))?;
        }
        if self.store.pool_size == 0 {
            return Err("[store] pool_size must be at least 1".into());
        }
        match &self.mail {
            Some(m) => m.check().map_err(|e| e.to_string())?,
            None if !self.alerts.to.is_empty() => {
                return Err(
                    "alerts: `to` names recipients but there is no [mail] section to send through"
                        .into(),
                );
            }
            None => {}
        }
        Ok(())
    }

    /// Path of the hub database.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("hub.redb")
    }

    /// Path of the admin token file.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join("admin.token")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_follow_the_config_and_admin_must_be_local() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(
            &path,
            "data_dir = \"data\"\ncertificate = \"c.pem\"\nprivate_key = \"k.pem\"\ntrust = [\"ca.pem\"]\n",
        )
        .unwrap();
        let cfg = HubConfig::load(&path).unwrap();
        assert_eq!(cfg.data_dir, dir.path().join("data"));
        assert_eq!(cfg.trust, vec![dir.path().join("ca.pem")]);
        assert_eq!(cfg.max_packet_bytes, DEFAULT_MAX_PACKET_BYTES);

        std::fs::write(
            &path,
            "data_dir = \"d\"\ncertificate = \"c\"\nprivate_key = \"k\"\ntrust = [\"t\"]\nadmin_listen = \"0.0.0.0:1\"\n",
        )
        .unwrap();
        let err = HubConfig::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("loopback") && err.contains("[admin_tls]"),
            "{err}"
        );
        std::fs::write(
            &path,
            "data_dir = \"d\"\ncertificate = \"c\"\nprivate_key = \"k\"\ntrust = [\"t\"]\nadmin_listen = \"0.0.0.0:1\"\n[admin_tls]\ncertificate = \"a.pem\"\nprivate_key = \"a.key\"\n",
        )
        .unwrap();
        let cfg = HubConfig::load(&path).unwrap();
        assert_eq!(
            cfg.admin_tls.unwrap().certificate,
            dir.path().join("a.pem"),
            "a networked admin listener with TLS is accepted"
        );
        std::fs::write(
            &path,
            "data_dir = \"d\"\ncertificate = \"c\"\nprivate_key = \"k\"\ntrust = [\"t\"]\n[store]\npostgres = \"postgresql://hub@127.0.0.1:5432/docaxis\"\n",
        )
        .unwrap();
        let cfg = HubConfig::load(&path).unwrap();
        assert_eq!(
            cfg.store.postgres_url().unwrap().as_deref(),
            Some("postgresql://hub@127.0.0.1:5432/docaxis")
        );
        assert_eq!(cfg.store.pool_size, crate::db::pg::DEFAULT_POOL_SIZE);
        std::fs::write(
            &path,
            "data_dir = \"d\"\ncertificate = \"c\"\nprivate_key = \"k\"\ntrust = [\"t\"]\n[store]\npostgres = \"postgresql://h:notaport/db\"\n",
        )
        .unwrap();
        let err = HubConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("[store] postgres"), "{err}");
        std::fs::write(&path, "data_dir = \"d\"\nbogus = 1\n").unwrap();
        let err = HubConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("bogus") || err.contains("unknown"), "{err}");
    }
}
