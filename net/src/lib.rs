//! Transport between agency nodes and the hub: HTTPS over HTTP/2 with mandatory mutual TLS.
//!
//! - [`tls`] turns PEM files (certificate chain, key, CA, CRLs) into rustls configurations. The
//!   aws-lc-rs provider is used everywhere, explicitly; no process-wide default provider is
//!   installed or relied on.
//! - [`peer`] derives the authenticated [`peer::PeerIdentity`] (agency code from the subject UID,
//!   SHA-256 fingerprint) from the client certificate and offers it to axum handlers.
//! - [`serve`] runs an axum router behind that TLS configuration with bounded handshakes and
//!   graceful shutdown, and reports the port it actually bound.
//! - [`limits`] bounds connections and request bodies and keeps error answers JSON.
//! - [`live_trust`] keeps the trust anchors and CRLs in step with their files while running.
//! - [`client`] builds the node's `reqwest` client: it presents the agency certificate and trusts
//!   only the configured CA.
//!
//! Invariants kept by this module as a whole:
//! - The server never completes a handshake with a client that has not presented a certificate
//!   chaining to a configured CA, valid now, and not listed in a configured CRL.
//! - Every request that reaches a handler carries the identity of the connection it arrived on.
//! - A client built here never trusts the operating system's root store.

pub mod client;
pub mod limits;
pub mod live_trust;
pub mod peer;
mod pem;
pub mod serve;
pub mod tls;
pub mod token;

pub use pem::PemSource;
pub use tls::TlsError;
