//! The agency node's configuration (`node.toml`): what it is called, where the hub is, where
//! its keys, trust anchors and data live, and how patiently it retries.
//!
//! Invariants:
//! - Unknown keys are refused (`deny_unknown_fields`), so a misspelt option is an error rather
//!   than a silently ignored default.
//! - Every relative path is resolved against the folder of the configuration file, never the
//!   working directory of the process.
//! - A validated configuration has a strict agency code, one or more distinct `https://` hub
//!   URLs (`hub_url` is a string or a list; a string is a list of one), a loopback address for
//!   the clerk API (that API is plain HTTP), at least one trust anchor, a long-poll wait the hub
//!   grants, and a coherent retry policy.
//!
//! `examples/node.toml` documents every option.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use edxml::AgencyCode;
use exchange::protocol::MAX_WAIT_SECS;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the node configuration {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the node configuration {path} is not valid TOML for a node: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("the node configuration {path}: option `{option}` {message}")]
    Invalid {
        path: PathBuf,
        option: &'static str,
        message: String,
    },
}

/// Retry policy for submissions to the hub and for reaching the hub at all.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First retry delay ceiling, in milliseconds (doubled at each attempt).
    #[serde(default = "default_initial_ms")]
    pub initial_ms: u64,
    /// Largest retry delay ceiling, in milliseconds.
    #[serde(default = "default_max_ms")]
    pub max_ms: u64,
    /// A packet still not accepted by the hub this long after it was created is marked failed.
    #[serde(default = "default_give_up_after_secs")]
    pub give_up_after_secs: u64,
}

/// `hub_url`: a string or a list of strings.
fn one_or_more_urls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMore {
        One(String),
        More(Vec<String>),
    }
    match OneOrMore::deserialize(d) {
        Ok(OneOrMore::One(url)) => Ok(vec![url]),
        Ok(OneOrMore::More(urls)) => Ok(urls),
        Err(_) => Err(serde::de::Error::custom(
            "hub_url must be a URL string (\"https://host:port\") or a list of them",
        )),
    }
}

fn default_initial_ms() -> u64 {
    500
}
fn default_max_ms() -> u64 {
    60_000
}
fn default_give_up_after_secs() -> u64 {
    86_400
}
fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8600))
}
fn default_poll_wait_secs() -> u64 {
    25
}
fn default_trust_reload_secs() -> u64 {
    30
}
fn default_max_packet_bytes() -> usize {
    64 * 1024 * 1024
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            initial_ms: default_initial_ms(),
            max_ms: default_max_ms(),
            give_up_after_secs: default_give_up_after_secs(),
        }
    }
}

impl RetryConfig {
    /// How long after creation a packet is given up.
    pub fn give_up_after(&self) -> Duration {
        Duration::from_secs(self.give_up_after_secs)
    }
}

/// The whole `node.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's agency code, e.g. `000.00.00.G22`; must be the subject UID of `certificate`.
    pub agency: String,
    /// The agency's name as written in `From/OrganName`; when absent, the well-known list, then
    /// the certificate's common name.
    #[serde(default)]
    pub agency_name: Option<String>,
    /// Base URL of the hub, `https://host:port`: one string, or a list of the addresses of the
    /// same hub (replicas sharing one store: `["https://a:8443", "https://b:8443"]`), tried in
    /// order: after a call finds no answer or a 5xx answer, the next calls go to the next URL
    /// (see [`crate::hub_api`]). A single string is read as a list of one. Use
    /// [`NodeConfig::hub_urls`] and [`NodeConfig::primary_hub_url`].
    #[serde(deserialize_with = "one_or_more_urls")]
    pub hub_url: Vec<String>,
    /// Folder holding `node.redb` and `api.token`.
    pub data_dir: PathBuf,
    /// The agency certificate chain (PEM, leaf first): TLS client certificate and signer.
    pub certificate: PathBuf,
    /// The agency's PKCS#8 private key (PEM).
    pub private_key: PathBuf,
    /// CA certificates (PEM) trusted for the hub's TLS certificate and for packet signers.
    pub trust: Vec<PathBuf>,
    /// Certificate revocation lists (PEM) applied to the hub's TLS certificate and to signers.
    #[serde(default)]
    pub crl: Vec<PathBuf>,
    /// The hub's own certificate (PEM), pinned to verify the hub's signed receipts.
    pub hub_certificate: PathBuf,
    /// Where the clerk API listens: plain HTTP, so loopback addresses only. Port 0 picks one.
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
    /// Retry policy.
    #[serde(default)]
    pub retry: RetryConfig,
    /// How long one long poll to the hub may wait for news, in seconds (1–60).
    #[serde(default = "default_poll_wait_secs")]
    pub poll_wait_secs: u64,
    /// How often the trust anchors and CRLs are read again, in seconds (also on SIGHUP).
    #[serde(default = "default_trust_reload_secs")]
    pub trust_reload_secs: u64,
    /// Largest packet this node signs and sends, in bytes (the hub has its own limit, 64 MiB
    /// by default). A document over it is refused at once (413), before anything is signed.
    #[serde(default = "default_max_packet_bytes")]
    pub max_packet_bytes: usize,
    /// A second listener for the web pages (and the API) where clerks reach them over the
    /// agency's network; HTTPS with `[tls]`, which a non-loopback address requires. Without
    /// it the pages are served on `api_listen` only.
    #[serde(default)]
    pub web_listen: Option<SocketAddr>,
    /// The certificate of `web_listen`.
    #[serde(default)]
    pub tls: Option<ListenTls>,
    /// Outgoing mail for the clerks' notices (the same `[mail]` section as the hub's).
    #[serde(default)]
    pub mail: Option<mail::MailConfig>,
    /// Who gets the clerks' notices, and the address their links use.
    #[serde(default)]
    pub notices: NoticesConfig,
    /// The national axis's client API for existing document systems (`[legacy]`); off unless
    /// configured.
    #[serde(default)]
    pub legacy: Option<LegacyConfig>,
}

/// `[legacy]`: the VDXP-compatible listener (`crate::legacy`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyConfig {
    /// Where document systems connect (plain HTTP, as the SDK speaks it; put TLS in front of
    /// it to leave the agency's machine).
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes (default: `max_packet_bytes`).
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// The document systems allowed to connect.
    #[serde(default)]
    pub systems: Vec<LegacySystem>,
}

/// One registered document system.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacySystem {
    /// Its `systemid`.
    pub system_id: String,
    /// A file holding its secret (the HMAC key, used as the UTF-8 text it is).
    pub secret_file: PathBuf,
}

/// `[tls]`: the certificate of the clerk listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTls {
    /// Certificate chain (PEM, leaf first) naming the host clerks type in their browser.
    pub certificate: PathBuf,
    /// Its private key (PKCS#8 PEM).
    pub private_key: PathBuf,
}

/// `[notices]`: email to the agency's clerks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticesConfig {
    /// The clerks' addresses (văn thư); no notices when empty.
    #[serde(default)]
    pub to: Vec<String>,
    /// How clerks reach the node's pages (`https://vanthu.h41.gov.vn`); by default the
    /// listener's own address.
    #[serde(default)]
    pub web_url: Option<String>,
}

impl NodeConfig {
    /// Reads, resolves and validates a configuration file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, exchange::config_file::base_of(path), path)
    }

    /// Parses TOML text; relative paths are resolved against `base`. `origin` names the text
    /// in error messages.
    pub fn from_toml(text: &str, base: &Path, origin: &Path) -> Result<NodeConfig, ConfigError> {
        let mut config: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.resolve_paths(base);
        config.validate(origin)?;
        Ok(config)
    }

    /// Makes every relative path absolute against `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        exchange::config_file::resolve(
            base,
            [
                &mut self.data_dir,
                &mut self.certificate,
                &mut self.private_key,
                &mut self.hub_certificate,
            ]
            .into_iter()
            .chain(&mut self.trust)
            .chain(&mut self.crl)
            .chain(
                self.tls
                    .iter_mut()
                    .flat_map(|t| [&mut t.certificate, &mut t.private_key]),
            ),
        );
        if let Some(m) = &mut self.mail {
            m.resolve(base);
        }
        if let Some(l) = &mut self.legacy {
            exchange::config_file::resolve(base, l.systems.iter_mut().map(|s| &mut s.secret_file));
        }
    }

    /// Checks the values; `origin` names the configuration in error messages.
    pub fn validate(&self, origin: &Path) -> Result<(), ConfigError> {
        let invalid = |option: &'static str, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            option,
            message,
        };
        AgencyCode::parse_strict(&self.agency).map_err(|e| {
            invalid(
                "agency",
                format!("{:?} is not an agency code: {e}", self.agency),
            )
        })?;
        check_hub_urls(&self.hub_url).map_err(|message| invalid("hub_url", message))?;
        if !self.api_listen.ip().is_loopback() {
            return Err(invalid(
                "api_listen",
                format!(
                    "{} is not a loopback address: the clerk API is plain HTTP with a bearer \
                     token and must only listen on 127.0.0.1 or ::1 (serve the pages to the \
                     agency's network with web_listen and [tls])",
                    self.api_listen
                ),
            ));
        }
        if let Some(w) = self.web_listen {
            if !w.ip().is_loopback() && self.tls.is_none() {
                return Err(invalid(
                    "web_listen",
                    format!(
                        "{w} is not a loopback address: clerks would log in over plain HTTP. Add \
                         a [tls] section (certificate, private_key) to serve the pages over HTTPS"
                    ),
                ));
            }
        } else if self.tls.is_some() {
            return Err(invalid(
                "tls",
                "is set but web_listen is not: [tls] is the certificate of web_listen".into(),
            ));
        }
        if self.max_packet_bytes < 64 * 1024 || self.max_packet_bytes > 1 << 30 {
            return Err(invalid(
                "max_packet_bytes",
                format!(
                    "is {}; it must be between 65536 (64 KiB) and 1073741824 (1 GiB)",
                    self.max_packet_bytes
                ),
            ));
        }
        if let Some(m) = &self.mail {
            m.check().map_err(|e| invalid("mail", e.to_string()))?;
        }
        for to in &self.notices.to {
            if !to.contains('@') || to.contains(char::is_whitespace) {
                return Err(invalid(
                    "notices.to",
                    format!("{to:?} is not an email address"),
                ));
            }
        }
        if !self.notices.to.is_empty() && self.mail.is_none() {
            return Err(invalid(
                "notices.to",
                "names recipients but there is no [mail] section to send with".into(),
            ));
        }
        if let Some(u) = &self.notices.web_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(invalid(
                "notices.web_url",
                format!("{u:?} must be an http:// or https:// URL"),
            ));
        }
        if let Some(l) = &self.legacy {
            if l.systems.is_empty() {
                return Err(invalid(
                    "legacy.systems",
                    "is empty: register at least one document system ([[legacy.systems]] with \
                     system_id and secret_file)"
                        .into(),
                ));
            }
            let mut ids: Vec<&str> = Vec::new();
            for sys in &l.systems {
                let id = sys.system_id.as_str();
                if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
                    return Err(invalid(
                        "legacy.systems.system_id",
                        format!("{id:?} must be 1 to 128 printable characters"),
                    ));
                }
                if ids.contains(&id) {
                    return Err(invalid(
                        "legacy.systems.system_id",
                        format!("{id:?} is registered twice"),
                    ));
                }
                ids.push(id);
            }
            if l.listen.port() != 0
                && (l.listen == self.api_listen || Some(l.listen) == self.web_listen)
            {
                return Err(invalid(
                    "legacy.listen",
                    format!(
                        "{} is already the clerk API's or the pages' address",
                        l.listen
                    ),
                ));
            }
            if let Some(m) = l.max_body_bytes
                && m < 1024
            {
                return Err(invalid(
                    "legacy.max_body_bytes",
                    format!("is {m}; it must be at least 1024"),
                ));
            }
        }
        if self.trust.is_empty() {
            return Err(invalid(
                "trust",
                "must list at least one CA certificate (PEM)".into(),
            ));
        }
        if self.poll_wait_secs == 0 || self.poll_wait_secs > MAX_WAIT_SECS {
            return Err(invalid(
                "poll_wait_secs",
                format!(
                    "is {}, it must be between 1 and {MAX_WAIT_SECS} (the longest wait the hub grants)",
                    self.poll_wait_secs
                ),
            ));
        }
        let r = &self.retry;
        if r.initial_ms == 0 {
            return Err(invalid("retry.initial_ms", "must be at least 1".into()));
        }
        if r.max_ms < r.initial_ms {
            return Err(invalid(
                "retry.max_ms",
                format!(
                    "is {} ms, less than retry.initial_ms ({} ms)",
                    r.max_ms, r.initial_ms
                ),
            ));
        }
        if r.give_up_after_secs == 0 {
            return Err(invalid(
                "retry.give_up_after_secs",
                "must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The node database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("node.redb")
    }

    /// The clerk API token file.
    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("api.token")
    }

    /// Where a running node writes the API address it actually bound (useful with port 0).
    pub fn api_addr_path(&self) -> PathBuf {
        self.data_dir.join("api.addr")
    }

    /// Every hub URL, in the order they are tried (at least one once validated).
    pub fn hub_urls(&self) -> &[String] {
        &self.hub_url
    }

    /// The first hub URL, the one a node starts with (empty only in an unvalidated
    /// configuration without any).
    pub fn primary_hub_url(&self) -> &str {
        self.hub_url.first().map_or("", String::as_str)
    }
}

/// Checks the hub URLs: at least one, each an `https://` URL with a host, no two the same
/// once normalised (host case, default port, trailing slash).
fn check_hub_urls(urls: &[String]) -> Result<(), String> {
    if urls.is_empty() {
        return Err(
            "is an empty list: give the hub's URL (\"https://host:port\"), or several addresses \
             of the hub to fail over between"
                .into(),
        );
    }
    let mut seen: Vec<String> = Vec::with_capacity(urls.len());
    for url in urls {
        let is_https = url
            .get(.."https://".len())
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"));
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) if is_https && u.host_str().is_some_and(|h| !h.is_empty()) => u,
            _ => {
                return Err(format!(
                    "{url:?} must be an https:// URL with a host (the hub is only reached over \
                     mutual TLS)"
                ));
            }
        };
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(format!(
                "{url:?} must be a base URL, without a query (?) or fragment (#)"
            ));
        }
        let key = parsed.as_str().trim_end_matches('/').to_string();
        if seen.contains(&key) {
            return Err(format!("lists {url:?} twice"));
        }
        seen.push(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        agency = "000.00.00.G22"
        hub_url = "https://127.0.0.1:8443"
        data_dir = "data/g22"
        certificate = "certs/agencies/000.00.00.G22.pem"
        private_key = "certs/agencies/000.00.00.G22.key.pem"
        trust = ["certs/ca.pem"]
        hub_certificate = "certs/hub.pem"
    "#;

    fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
        NodeConfig::from_toml(text, Path::new("/etc/docaxis"), Path::new("node.toml"))
    }

    #[test]
    fn defaults_and_paths_relative_to_the_config_folder() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/docaxis/data/g22"));
        assert_eq!(c.trust, vec![PathBuf::from("/etc/docaxis/certs/ca.pem")]);
        assert_eq!(c.api_listen, "127.0.0.1:8600".parse().unwrap());
        assert_eq!(c.retry, RetryConfig::default());
        assert_eq!(c.poll_wait_secs, 25);
        assert!(c.crl.is_empty());
        assert_eq!(
            c.database_path(),
            PathBuf::from("/etc/docaxis/data/g22/node.redb")
        );
        assert_eq!(c.hub_urls(), ["https://127.0.0.1:8443"]);
        assert_eq!(c.primary_hub_url(), "https://127.0.0.1:8443");
    }

    #[test]
    fn hub_url_is_one_url_or_a_list() {
        let with = |value: &str| MINIMAL.replace("\"https://127.0.0.1:8443\"", value);

        let c = parse(&with(r#"["https://hub-a:8443", "https://hub-b.example/"]"#)).unwrap();
        assert_eq!(
            c.hub_urls(),
            ["https://hub-a:8443", "https://hub-b.example/"]
        );
        assert_eq!(c.primary_hub_url(), "https://hub-a:8443");
        let c = parse(&with(r#"["https://[::1]:8443"]"#)).unwrap();
        assert_eq!(c.hub_urls(), ["https://[::1]:8443"]);

        let refused = |value: &str, expected: &str| {
            let err = parse(&with(value)).unwrap_err().to_string();
            assert!(
                err.contains("hub_url") && err.contains(expected),
                "{value}: {err}"
            );
        };
        refused("[]", "empty list");
        refused(r#"["https://a:8443", "http://b:8443"]"#, "https://");
        refused(r#"["https://a:8443", "ftp://b"]"#, "https://");
        refused(r#"["https://"]"#, "with a host");
        refused(r#"["https://a b:8443"]"#, "with a host");
        refused(r#"["https://a:8443", ""]"#, "https://");
        refused(r#"["https://a:8443?x=1"]"#, "without a query");
        refused(r#"["https://a:8443", "https://a:8443"]"#, "twice");
        refused(r#"["https://A:8443/", "https://a:8443"]"#, "twice");
        refused(r#"["https://a:443", "https://a"]"#, "twice");
        assert!(parse(&with(r#"["https://a/x", "https://a/X"]"#)).is_ok());
        refused("8443", "a list of them");
        refused("[8443]", "a list of them");
        refused(r#"{ url = "https://a:8443" }"#, "a list of them");
    }

    #[test]
    fn the_example_file_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/node.toml"
        ));
        let c = NodeConfig::load(path).unwrap();
        assert_eq!(c.agency, "000.00.00.G22");
        assert!(c.certificate.is_absolute());
    }

    #[test]
    fn errors_name_the_option() {
        let err = parse(&format!("{MINIMAL}\nfoo = 1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("foo"), "{err}");

        let err = parse(&MINIMAL.replace("127.0.0.1:8443", "")).unwrap_err();
        assert!(err.to_string().contains("hub_url"), "{err}");
        let err = parse(&MINIMAL.replace("https://", "http://")).unwrap_err();
        assert!(err.to_string().contains("hub_url"), "{err}");

        let err = parse(&format!("{MINIMAL}\napi_listen = \"0.0.0.0:8600\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api_listen") && err.contains("loopback"),
            "{err}"
        );
        assert!(parse(&format!("{MINIMAL}\napi_listen = \"[::1]:0\"")).is_ok());

        let err = parse(&MINIMAL.replace("agency = \"000.00.00.G22\"", "agency = \"G22\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("agency"), "{err}");

        let err = parse(&format!("{MINIMAL}\npoll_wait_secs = 61"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("poll_wait_secs"), "{err}");

        let err = parse(&format!(
            "{MINIMAL}\n[retry]\ninitial_ms = 1000\nmax_ms = 10"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("retry.max_ms"), "{err}");

        let err = parse(&format!("{MINIMAL}\n[retry]\nintial_ms = 1000"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("intial_ms"), "{err}");

        let err = parse(&MINIMAL.replace("trust = [\"certs/ca.pem\"]", "trust = []"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("trust"), "{err}");

        let err = parse(&MINIMAL.replace("hub_certificate = \"certs/hub.pem\"", ""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("hub_certificate"), "{err}");
    }
}
