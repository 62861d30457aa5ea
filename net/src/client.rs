//! The node's HTTPS client towards the hub.
//!
//! Invariants:
//! - The client presents the agency certificate on every connection and trusts only the CA
//!   certificates of its [`ClientTls`] (the `rustls` configuration comes from
//!   [`crate::tls`]; reqwest's own root stores are not compiled in).
//! - HTTPS only: a plain `http://` URL is refused by the client, never sent in clear.
//! - Redirects are not followed: the hub API answers directly, and a redirect would carry the
//!   request elsewhere.
//! - HTTP/2 is negotiated through ALPN; idle connections are pinged so a dead hub connection is
//!   noticed instead of hanging a long poll.

use std::path::PathBuf;
use std::time::Duration;

use super::tls::{self, TlsError};

/// Where the node's TLS material lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// The agency certificate chain, PEM, leaf first.
    pub cert_chain_pem: PathBuf,
    /// The agency private key, PEM.
    pub key_pem: PathBuf,
    /// The CA certificates trusted for the hub, PEM (at least one).
    pub ca_pems: Vec<PathBuf>,
    /// CRLs applied to the hub's certificate, PEM (may be empty).
    pub crl_pems: Vec<PathBuf>,
}

/// Builds the HTTPS client from PEM files. `timeout` bounds each whole request (connect,
/// send, answer); a request that needs longer (a long poll) sets its own with
/// `RequestBuilder::timeout`.
pub fn build_client(tls: &ClientTls, timeout: Duration) -> Result<reqwest::Client, TlsError> {
    let config = tls::client_config(
        &tls.cert_chain_pem,
        &tls.key_pem,
        &tls.ca_pems,
        &tls.crl_pems,
    )?;
    build_client_with_config(config, timeout)
}

/// Builds the HTTPS client from a configuration made by [`tls::client_config`] or
/// [`tls::client_config_from_pem`].
pub fn build_client_with_config(
    config: rustls::ClientConfig,
    timeout: Duration,
) -> Result<reqwest::Client, TlsError> {
    reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(20))
        .http2_keep_alive_while_idle(true)
        .http2_adaptive_window(true)
        .user_agent(concat!("docaxis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(TlsError::Client)
}
