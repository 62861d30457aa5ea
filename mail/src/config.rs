//! The `[mail]` section: where mail goes out and how.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Default timeout of one SMTP attempt (connect, greet, send), in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// STARTTLS on the submission port (587), required: no fallback to plain text.
    #[default]
    Starttls,
    /// Implicit TLS (SMTPS, port 465).
    Tls,
    /// No encryption: only for a server on loopback (a local relay, tests).
    None,
}

/// SMTP settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// `host:port` of the SMTP server.
    pub smtp: String,
    /// `starttls` (default), `tls`, or `none` (loopback only).
    #[serde(default)]
    pub security: Security,
    /// The sender address (`From`), e.g. `"DocAxis <docaxis@hub.gov.vn>"`.
    pub from: String,
    /// SMTP user name, when the server wants a login.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the SMTP password (one line; keep it 0600).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Extra CA certificate (PEM) trusted for the SMTP server, besides the system's.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Timeout of one attempt, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Wait after the first failed attempt, in seconds; it doubles with each failure.
    #[serde(default = "default_retry_initial")]
    pub retry_initial_secs: u64,
    /// Longest wait between attempts, in seconds.
    #[serde(default = "default_retry_max")]
    pub retry_max_secs: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

fn default_retry_initial() -> u64 {
    30
}

fn default_retry_max() -> u64 {
    3600
}

/// What is wrong with a `[mail]` section.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    #[error("mail: smtp {0:?} is not HOST:PORT")]
    Address(String),
    #[error(
        "mail: security = \"none\" sends mail in clear and is allowed only for a loopback \
         server, not {0}; use \"starttls\" or \"tls\""
    )]
    PlainRemote(String),
    #[error("mail: from {0:?} is not an email address")]
    From(String),
    #[error("mail: username is set but password_file is not (or the other way round)")]
    Credentials,
    #[error("mail: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("mail: {0}")]
    Transport(String),
}

impl MailConfig {
    /// A plain-SMTP configuration for a loopback server (`--smtp HOST:PORT` of the demo, tests).
    pub fn loopback(smtp: &str, from: &str) -> MailConfig {
        MailConfig {
            smtp: smtp.to_string(),
            security: Security::None,
            from: from.to_string(),
            username: None,
            password_file: None,
            ca: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            retry_initial_secs: default_retry_initial(),
            retry_max_secs: default_retry_max(),
        }
    }

    /// Makes relative paths relative to `base` (the configuration file's folder).
    pub fn resolve(&mut self, base: &Path) {
        for p in [&mut self.password_file, &mut self.ca]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The server's host and port.
    pub fn host_port(&self) -> Result<(String, u16), MailConfigError> {
        let bad = || MailConfigError::Address(self.smtp.clone());
        let (host, port) = self.smtp.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok((host.to_string(), port))
    }

    /// Checks what can be checked without the network.
    pub fn check(&self) -> Result<(), MailConfigError> {
        let (host, _) = self.host_port()?;
        if self.security == Security::None && !is_loopback(&host) {
            return Err(MailConfigError::PlainRemote(self.smtp.clone()));
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|_| MailConfigError::From(self.from.clone()))?;
        if self.username.is_some() != self.password_file.is_some() {
            return Err(MailConfigError::Credentials);
        }
        Ok(())
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MailConfig, String> {
        #[derive(Deserialize)]
        struct W {
            mail: MailConfig,
        }
        let w: W = serde_json::from_str(text).map_err(|e| e.to_string())?;
        w.mail.check().map_err(|e| e.to_string())?;
        Ok(w.mail)
    }

    #[test]
    fn plain_smtp_is_for_loopback_only() {
        let ok = parse(
            r#"{"mail": {"smtp": "127.0.0.1:2525", "security": "none", "from": "hub@demo.vn"}}"#,
        )
        .unwrap();
        assert_eq!(ok.host_port().unwrap(), ("127.0.0.1".into(), 2525));
        let err = parse(
            r#"{"mail": {"smtp": "mail.gov.vn:25", "security": "none", "from": "hub@demo.vn"}}"#,
        )
        .unwrap_err();
        assert!(err.contains("loopback"), "{err}");
        let tls = parse(r#"{"mail": {"smtp": "mail.gov.vn:465", "security": "tls", "from": "DocAxis <hub@demo.vn>"}}"#)
            .unwrap();
        assert_eq!(tls.security, Security::Tls);
        let err = parse(r#"{"mail": {"smtp": "mail.gov.vn", "from": "hub@demo.vn"}}"#).unwrap_err();
        assert!(err.contains("HOST:PORT"), "{err}");
        let err = parse(
            r#"{"mail": {"smtp": "[::1]:25", "security": "none", "from": "not an address"}}"#,
        )
        .unwrap_err();
        assert!(err.contains("not an email address"), "{err}");
        let err =
            parse(r#"{"mail": {"smtp": "mail.gov.vn:587", "from": "a@b.vn", "username": "u"}}"#)
                .unwrap_err();
        assert!(err.contains("password_file"), "{err}");
    }
}
