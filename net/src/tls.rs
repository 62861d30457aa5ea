//! rustls configurations for the hub (server, mandatory client certificates) and for nodes
//! (client presenting the agency certificate).
//!
//! Invariants:
//! - The crypto provider is aws-lc-rs, passed explicitly; TLS 1.3 and 1.2 with rustls' safe
//!   defaults; ALPN offers `h2` then `http/1.1`.
//! - Server: a client must present a certificate chaining to one of the configured CAs, valid
//!   at the time of the handshake. When CRLs are configured, the **end-entity** certificate is
//!   checked against them and a certificate whose revocation status is unknown (no CRL from its
//!   issuer among those configured) is refused: fail closed. Intermediate CAs are not checked
//!   for revocation (the national CA issues leaves directly).
//! - Server: no TLS session resumption, so every connection's client certificate is checked
//!   against the current time and CRLs.
//! - Client: trusts only the configured CA certificates, never the system roots; optional CRLs
//!   are applied to the server's certificate the same way.
//! - Configuration problems are reported at start-up with the file that causes them, never at
//!   the first handshake.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::pem::{self, PemSource};

/// ALPN protocol identifiers offered by both sides, preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Everything that can go wrong while building a TLS configuration or an HTTPS client.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {what} in {origin} is not valid PEM: {detail}")]
    Pem {
        what: &'static str,
        origin: String,
        detail: String,
    },
    #[error("{origin} was given as {what} but contains no \"{expected}\" PEM block")]
    Empty {
        what: &'static str,
        origin: String,
        expected: &'static str,
    },
    #[error("no CA certificate is configured: client and server certificates cannot be checked")]
    NoCa,
    #[error("the CA certificate in {origin} cannot be used as a trust anchor: {detail}")]
    TrustAnchor { origin: String, detail: String },
    #[error("{origin} is not a valid certificate revocation list: {detail}")]
    Crl { origin: String, detail: String },
    #[error(
        "the certificate chain {cert} and the private key {key} cannot be used together: {detail}"
    )]
    CertificateKey {
        cert: String,
        key: String,
        detail: String,
    },
    #[error("cannot build the certificate verifier: {0}")]
    Verifier(String),
    #[error("the TLS protocol versions cannot be configured: {0}")]
    Protocol(String),
    #[error("cannot build the HTTPS client: {0}")]
    Client(#[source] reqwest::Error),
}

/// The provider used for every DocAxis TLS configuration.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Hub configuration from PEM files: `cert_chain_pem` (leaf first, then intermediates),
/// `key_pem`, the CA certificates that issue client certificates, and the CRLs to apply.
///
/// An empty `crl_pem_paths` disables revocation checking (a warning is logged).
pub fn server_config<P: AsRef<Path>, Q: AsRef<Path>>(
    cert_chain_pem: &Path,
    key_pem: &Path,
    ca_pem_paths: &[P],
    crl_pem_paths: &[Q],
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_from_pem(
        &PemSource::read(cert_chain_pem, "server certificate chain")?,
        &PemSource::read(key_pem, "server private key")?,
        &pem::read_all(ca_pem_paths, "CA certificate")?,
        &pem::read_all(crl_pem_paths, "certificate revocation list")?,
    )
}

/// Same as [`server_config`], from PEM text already in memory.
pub fn server_config_from_pem(
    cert_chain: &PemSource,
    key: &PemSource,
    cas: &[PemSource],
    crls: &[PemSource],
) -> Result<Arc<ServerConfig>, TlsError> {
    let m = Material::load(cert_chain, key, cas, crls, "server certificate chain")?;
    if m.crls.is_empty() {
        tracing::warn!(
            "no certificate revocation list configured: revoked client certificates will be accepted"
        );
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(m.roots, m.provider.clone())
        .with_crls(m.crls)
        .only_check_end_entity_revocation()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(m.provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Protocol(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(m.chain, m.key)
        .map_err(|e| mismatch(cert_chain, key, e))?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    // No session resumption: a resumed session would carry the client certificate verified at
    // the first handshake past its expiry or a later CRL. Every connection is verified afresh
    // (nodes keep long-lived HTTP/2 connections, so full handshakes are rare).
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// A server that asks no client certificate (the operators' console over the network):
/// `cert_chain_pem` (leaf first) and `key_pem`. Browsers speak HTTP/1.1 or h2 to it.
pub fn server_config_without_client_auth(
    cert_chain_pem: &Path,
    key_pem: &Path,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = PemSource::read(cert_chain_pem, "admin certificate chain")?;
    let key = PemSource::read(key_pem, "admin private key")?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Protocol(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(
            pem::certificates(&chain, "admin certificate chain")?,
            pem::private_key(&key)?,
        )
        .map_err(|e| mismatch(&chain, &key, e))?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A client that verifies the server against `ca_pem_paths` and presents no certificate
/// (the hub CLI talking to an admin listener served over TLS).
pub fn client_config_without_auth<P: AsRef<Path>>(
    ca_pem_paths: &[P],
) -> Result<ClientConfig, TlsError> {
    let cas = pem::read_all(ca_pem_paths, "CA certificate")?;
    let roots = Arc::new(root_store(&cas)?);
    let p = provider();
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, p.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ClientConfig::builder_with_provider(p)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Protocol(e.to_string()))?
        .with_webpki_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Node (client) configuration from PEM files: the agency certificate chain and key it presents,
/// the CA certificates it trusts for the hub (and nothing else), and optional CRLs applied to
/// the hub's certificate.
pub fn client_config<P: AsRef<Path>, Q: AsRef<Path>>(
    cert_chain_pem: &Path,
    key_pem: &Path,
    ca_pem_paths: &[P],
    crl_pem_paths: &[Q],
) -> Result<ClientConfig, TlsError> {
    client_config_from_pem(
        &PemSource::read(cert_chain_pem, "client certificate chain")?,
        &PemSource::read(key_pem, "client private key")?,
        &pem::read_all(ca_pem_paths, "CA certificate")?,
        &pem::read_all(crl_pem_paths, "certificate revocation list")?,
    )
}

/// Same as [`client_config`], from PEM text already in memory.
pub fn client_config_from_pem(
    cert_chain: &PemSource,
    key: &PemSource,
    cas: &[PemSource],
    crls: &[PemSource],
) -> Result<ClientConfig, TlsError> {
    let m = Material::load(cert_chain, key, cas, crls, "client certificate chain")?;
    let verifier = WebPkiServerVerifier::builder_with_provider(m.roots, m.provider.clone())
        .with_crls(m.crls)
        .only_check_end_entity_revocation()
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ClientConfig::builder_with_provider(m.provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Protocol(e.to_string()))?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(m.chain, m.key)
        .map_err(|e| mismatch(cert_chain, key, e))?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// What both sides load: the provider, the trust anchors, the CRLs, and the own certificate
/// chain and key.
struct Material {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    crls: Vec<CertificateRevocationListDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl Material {
    fn load(
        cert_chain: &PemSource,
        key: &PemSource,
        cas: &[PemSource],
        crls: &[PemSource],
        chain_what: &'static str,
    ) -> Result<Material, TlsError> {
        Ok(Material {
            provider: provider(),
            roots: Arc::new(root_store(cas)?),
            crls: load_crls(crls)?,
            chain: pem::certificates(cert_chain, chain_what)?,
            key: pem::private_key(key)?,
        })
    }
}

/// The own certificate chain and key do not belong together.
fn mismatch(cert_chain: &PemSource, key: &PemSource, e: rustls::Error) -> TlsError {
    TlsError::CertificateKey {
        cert: cert_chain.origin().to_owned(),
        key: key.origin().to_owned(),
        detail: e.to_string(),
    }
}

/// A root store holding every certificate of every CA source; at least one.
fn root_store(cas: &[PemSource]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for src in cas {
        for cert in pem::certificates(src, "CA certificate")? {
            add_anchor(&mut store, src, cert)?;
        }
    }
    if store.is_empty() {
        return Err(TlsError::NoCa);
    }
    Ok(store)
}

fn add_anchor(
    store: &mut RootCertStore,
    src: &PemSource,
    cert: CertificateDer<'static>,
) -> Result<(), TlsError> {
    store.add(cert).map_err(|e| TlsError::TrustAnchor {
        origin: src.origin().to_owned(),
        detail: e.to_string(),
    })
}

fn load_crls(
    sources: &[PemSource],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut all = Vec::new();
    for src in sources {
        all.extend(pem::crls(src)?);
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };

    struct Material {
        ca: String,
        leaf: String,
        leaf_key: String,
        other_key: String,
    }

    fn material() -> Material {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["hub.test".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        Material {
            ca: ca.pem(),
            leaf: leaf.pem(),
            leaf_key: leaf_key.serialize_pem(),
            other_key: KeyPair::generate().unwrap().serialize_pem(),
        }
    }

    #[test]
    fn server_config_offers_h2_then_http11_without_resumption() {
        let m = material();
        let config = server_config_from_pem(
            &PemSource::from_bytes("hub.pem", m.leaf),
            &PemSource::from_bytes("hub.key", m.leaf_key),
            &[PemSource::from_bytes("ca.pem", m.ca)],
            &[],
        )
        .unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(config.send_tls13_tickets, 0, "no resumption tickets");
    }

    #[test]
    fn mismatched_key_is_reported_with_both_files() {
        let m = material();
        let err = server_config_from_pem(
            &PemSource::from_bytes("hub.pem", m.leaf),
            &PemSource::from_bytes("other.key", m.other_key),
            &[PemSource::from_bytes("ca.pem", m.ca)],
            &[],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TlsError::CertificateKey { .. }), "{msg}");
        assert!(
            msg.contains("hub.pem") && msg.contains("other.key"),
            "{msg}"
        );
    }

    #[test]
    fn no_ca_is_refused() {
        let m = material();
        let err = client_config_from_pem(
            &PemSource::from_bytes("node.pem", m.leaf),
            &PemSource::from_bytes("node.key", m.leaf_key),
            &[],
            &[],
        )
        .unwrap_err();
        assert!(matches!(err, TlsError::NoCa), "{err}");
    }

    #[test]
    fn ca_file_without_certificate_is_refused_by_name() {
        let m = material();
        let err = client_config_from_pem(
            &PemSource::from_bytes("node.pem", m.leaf),
            &PemSource::from_bytes("node.key", m.leaf_key.clone()),
            &[PemSource::from_bytes("wrong-ca.pem", m.leaf_key)],
            &[],
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("wrong-ca.pem"), "{msg}");
    }
}
