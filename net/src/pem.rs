//! PEM input for the TLS configuration: where the text came from, and its decoding (through
//! `dsig::pem`, the one PEM reader) into DER certificates, one private key, and CRLs.
//!
//! Invariants:
//! - Every error names the origin (usually the file path) and what was expected in it, so an
//!   operator knows which file to fix.
//! - A source that decodes to nothing of the expected kind is an error, never an empty list.
//! - Private key bytes never appear in `Debug` output.

use std::fmt;
use std::path::Path;

use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::tls::TlsError;

/// PEM text together with a human-readable origin used in error messages (the file path when
/// it was read from a file).
#[derive(Clone)]
pub struct PemSource {
    origin: String,
    text: Vec<u8>,
}

impl PemSource {
    /// Wraps PEM text that is already in memory; `origin` says where it came from.
    pub fn from_bytes(origin: impl Into<String>, text: impl Into<Vec<u8>>) -> Self {
        Self {
            origin: origin.into(),
            text: text.into(),
        }
    }

    /// Reads a PEM file; `what` says what the file should hold (for the error message).
    pub fn read(path: &Path, what: &'static str) -> Result<Self, TlsError> {
        let text = std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            origin: path.display().to_string(),
            text,
        })
    }

    /// Where the text came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The raw PEM text.
    pub fn text(&self) -> &[u8] {
        &self.text
    }
}

impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PemSource")
            .field("origin", &self.origin)
            .field("bytes", &self.text.len())
            .finish()
    }
}

/// Reads every file of `paths` as a [`PemSource`].
pub(crate) fn read_all<P: AsRef<Path>>(
    paths: &[P],
    what: &'static str,
) -> Result<Vec<PemSource>, TlsError> {
    paths
        .iter()
        .map(|p| PemSource::read(p.as_ref(), what))
        .collect()
}

/// All `CERTIFICATE` blocks of `src`, in order; at least one.
pub(crate) fn certificates(
    src: &PemSource,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = dsig::pem::blocks(src.text(), "CERTIFICATE")
        .map_err(|e| TlsError::Pem {
            what,
            origin: src.origin.clone(),
            detail: e.to_string(),
        })?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            origin: src.origin.clone(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, SEC1 or PKCS#1) in `src`.
pub(crate) fn private_key(src: &PemSource) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem_error = |detail: String| TlsError::Pem {
        what: "private key",
        origin: src.origin.clone(),
        detail,
    };
    let keys = dsig::pem::private_keys(src.text()).map_err(|e| pem_error(e.to_string()))?;
    let Some(key) = keys.into_iter().next() else {
        return Err(TlsError::Empty {
            what: "private key",
            origin: src.origin.clone(),
            expected: "PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY",
        });
    };
    match key.label.as_str() {
        "PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs8(key.der.into())),
        "EC PRIVATE KEY" => Ok(PrivateKeyDer::Sec1(key.der.into())),
        "RSA PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs1(key.der.into())),
        other => Err(pem_error(format!(
            "'{other}' keys are not supported: use an unencrypted PKCS#8, SEC1 or PKCS#1 key"
        ))),
    }
}

/// All `X509 CRL` blocks of `src`; at least one. Each is checked to parse as a CRL, and a CRL
/// whose `nextUpdate` has passed is reported in the log (it is still used: a stale list is
/// better than none, and refusing every client because the CA is late would stop the exchange).
pub(crate) fn crls(
    src: &PemSource,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crls: Vec<CertificateRevocationListDer<'static>> =
        dsig::pem::blocks(src.text(), "X509 CRL")
            .map_err(|e| TlsError::Pem {
                what: "certificate revocation list",
                origin: src.origin.clone(),
                detail: e.to_string(),
            })?
            .into_iter()
            .map(CertificateRevocationListDer::from)
            .collect();
    if crls.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate revocation list",
            origin: src.origin.clone(),
            expected: "X509 CRL",
        });
    }
    for crl in &crls {
        let (_, parsed) = x509_parser::parse_x509_crl(crl.as_ref()).map_err(|e| TlsError::Crl {
            origin: src.origin.clone(),
            detail: e.to_string(),
        })?;
        if let Some(next) = parsed.next_update()
            && next < x509_parser::time::ASN1Time::now()
        {
            tracing::warn!(
                crl = %src.origin,
                issuer = %parsed.issuer(),
                next_update = %next,
                "certificate revocation list is past its nextUpdate; fetch a fresh one from the CA"
            );
        }
    }
    Ok(crls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_certificate_file_is_an_error_naming_the_origin() {
        let src = PemSource::from_bytes("ca.pem", "just text\n");
        let err = certificates(&src, "CA certificate").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ca.pem"), "{msg}");
        assert!(msg.contains("CERTIFICATE"), "{msg}");
    }

    #[test]
    fn missing_key_is_an_error_naming_the_origin() {
        let src = PemSource::from_bytes("node.key", "");
        let msg = private_key(&src).unwrap_err().to_string();
        assert!(msg.contains("node.key"), "{msg}");
        assert!(msg.contains("PRIVATE KEY"), "{msg}");
    }

    #[test]
    fn debug_output_hides_the_key_text() {
        let src = PemSource::from_bytes("k.pem", "-----BEGIN PRIVATE KEY-----\nSECRET\n");
        let shown = format!("{src:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("k.pem"), "{shown}");
    }

    #[test]
    fn corrupt_crl_is_refused() {
        let src = PemSource::from_bytes(
            "crl.pem",
            "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
        );
        let msg = crls(&src).unwrap_err().to_string();
        assert!(msg.contains("crl.pem"), "{msg}");
    }

    #[test]
    fn unreadable_file_names_the_path() {
        let err = PemSource::read(Path::new("/nonexistent/docaxis/ca.pem"), "CA certificate")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/docaxis/ca.pem"), "{msg}");
        assert!(msg.contains("CA certificate"), "{msg}");
    }
}
