//! The authenticated client of a TLS connection, as handlers see it.
//!
//! After the handshake, [`crate::serve`] computes the identity once per connection from the
//! client's end-entity certificate and attaches it to every request of that connection. Handlers
//! take a [`PeerIdentity`] argument; a request without one is answered `401 Unauthorized`.
//!
//! Invariants:
//! - The identity describes the certificate rustls verified for this connection; nothing in the
//!   request (headers, body) can influence it.
//! - `agency_code` is the subject's single UID attribute (OID 0.9.2342.19200300.100.1.1), exactly
//!   as written in the certificate. A certificate with no UID has no agency code; a certificate
//!   with several UIDs, or a UID that is not a non-empty string, has no usable identity at all
//!   and its requests are refused with a message saying why.
//! - `fingerprint_sha256` is the lowercase hex SHA-256 of the leaf certificate's DER.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Extensions, StatusCode};
use axum::response::{IntoResponse, Response};
use x509_parser::oid_registry::OID_USERID;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The authenticated client of the connection a request arrived on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Agency code from the subject UID attribute (e.g. `000.00.00.G22`), if the certificate
    /// has one.
    pub agency_code: Option<String>,
    /// Lowercase hex SHA-256 of the leaf certificate DER.
    pub fingerprint_sha256: String,
    /// The certificate subject, RFC 4514 style (for logs and messages).
    pub subject: String,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
}

/// Why a verified client certificate yields no usable identity.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("the client certificate cannot be parsed: {0}")]
    Unparsable(String),
    #[error(
        "the client certificate subject has {0} UID attributes; exactly one agency code is expected"
    )]
    SeveralAgencyCodes(usize),
    #[error("the UID attribute of the client certificate subject is not a text string: {0}")]
    AgencyCodeNotText(String),
    #[error("the UID attribute of the client certificate subject is empty")]
    EmptyAgencyCode,
}

impl PeerIdentity {
    /// The identity carried by a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, PeerError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| PeerError::Unparsable(e.to_string()))?;
        let subject = cert.subject();
        let uids: Vec<_> = subject.iter_by_oid(&OID_USERID).collect();
        let agency_code = match uids.as_slice() {
            [] => None,
            [uid] => {
                let code = uid
                    .as_str()
                    .map_err(|e| PeerError::AgencyCodeNotText(e.to_string()))?;
                if code.is_empty() {
                    return Err(PeerError::EmptyAgencyCode);
                }
                Some(code.to_owned())
            }
            several => return Err(PeerError::SeveralAgencyCodes(several.len())),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        Ok(Self {
            agency_code,
            fingerprint_sha256: hex::encode(digest.as_ref()),
            subject: subject.to_string(),
            cert_der: der.to_vec(),
        })
    }

    /// The identity attached to a request's extensions by the TLS server.
    pub fn from_extensions(extensions: &Extensions) -> Result<Self, PeerRejection> {
        match extensions.get::<ConnectionPeer>() {
            None => Err(PeerRejection::NoCertificate),
            Some(ConnectionPeer(peer)) => match peer.as_ref() {
                Ok(identity) => Ok(identity.clone()),
                Err(e) => Err(PeerRejection::Unusable(e.clone())),
            },
        }
    }
}

/// What the TLS server attaches to every request of a connection: the identity derived from
/// the client certificate, or why none could be derived. Shared by all requests of the
/// connection (computed once per handshake).
#[derive(Clone, Debug)]
pub struct ConnectionPeer(pub Arc<Result<PeerIdentity, PeerError>>);

impl ConnectionPeer {
    /// Derives the connection's peer from the certificates the client presented (leaf first).
    /// `None` when the client presented no certificate.
    pub fn from_chain(chain: &[impl AsRef<[u8]>]) -> Option<Self> {
        chain
            .first()
            .map(|leaf| Self(Arc::new(PeerIdentity::from_der(leaf.as_ref()))))
    }
}

/// The answer to a request whose connection has no usable client identity: `401`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerRejection {
    #[error("this connection presented no client certificate")]
    NoCertificate,
    #[error("{0}")]
    Unusable(PeerError),
}

impl IntoResponse for PeerRejection {
    fn into_response(self) -> Response {
        (StatusCode::UNAUTHORIZED, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PeerIdentity {
    type Rejection = PeerRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        PeerIdentity::from_extensions(&parts.extensions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, DnValue, KeyPair};

    const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];

    fn cert_with_uids(uids: &[&str]) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CountryName, "VN");
        params
            .distinguished_name
            .push(DnType::CommonName, "Văn phòng Chính phủ");
        for uid in uids {
            params.distinguished_name.push(
                DnType::CustomDnType(UID.to_vec()),
                DnValue::Utf8String((*uid).to_owned()),
            );
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_agency_code_fingerprint_and_subject() {
        let der = cert_with_uids(&["000.00.00.G22"]);
        let id = PeerIdentity::from_der(&der).unwrap();
        assert_eq!(id.agency_code.as_deref(), Some("000.00.00.G22"));
        let expected =
            hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref());
        assert_eq!(id.fingerprint_sha256, expected);
        assert_eq!(id.fingerprint_sha256.len(), 64);
        assert!(id.subject.contains("Văn phòng Chính phủ"), "{}", id.subject);
        assert!(id.subject.contains("000.00.00.G22"), "{}", id.subject);
        assert_eq!(id.cert_der, der);
    }

    #[test]
    fn certificate_without_uid_has_no_agency_code() {
        let der = cert_with_uids(&[]);
        let id = PeerIdentity::from_der(&der).unwrap();
        assert_eq!(id.agency_code, None);
    }

    #[test]
    fn empty_uid_is_refused() {
        let der = cert_with_uids(&[""]);
        assert_eq!(
            PeerIdentity::from_der(&der).unwrap_err(),
            PeerError::EmptyAgencyCode
        );
    }

    #[test]
    fn several_uids_are_refused() {
        // rcgen keeps one value per attribute type, so write a second attribute whose OID has
        // the same encoded length (0.9.2342.19200300.100.1.3, mail) and rename it to UID in the
        // DER. The signature no longer matches, which parsing alone does not check.
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(
            DnType::CustomDnType(UID.to_vec()),
            DnValue::Utf8String("000.00.00.G22".to_owned()),
        );
        params.distinguished_name.push(
            DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 3]),
            DnValue::Utf8String("000.00.00.H41".to_owned()),
        );
        let key = KeyPair::generate().unwrap();
        let mut der = params.self_signed(&key).unwrap().der().to_vec();
        let mail_oid = [
            0x06, 0x0a, 0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x03,
        ];
        // Self-signed: the name is written twice (issuer, then subject); rename both.
        let places: Vec<usize> = der
            .windows(mail_oid.len())
            .enumerate()
            .filter(|(_, w)| *w == mail_oid)
            .map(|(at, _)| at)
            .collect();
        assert_eq!(places.len(), 2);
        for at in places {
            der[at + mail_oid.len() - 1] = 0x01;
        }
        assert_eq!(
            PeerIdentity::from_der(&der).unwrap_err(),
            PeerError::SeveralAgencyCodes(2)
        );
    }

    #[test]
    fn garbage_is_unparsable() {
        assert!(matches!(
            PeerIdentity::from_der(b"not a certificate"),
            Err(PeerError::Unparsable(_))
        ));
    }

    #[test]
    fn extensions_without_peer_are_rejected_401() {
        let ext = Extensions::new();
        let rejection = PeerIdentity::from_extensions(&ext).unwrap_err();
        assert_eq!(rejection, PeerRejection::NoCertificate);
        assert_eq!(rejection.into_response().status(), StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn unusable_peer_is_rejected_with_its_reason() {
        let mut ext = Extensions::new();
        ext.insert(ConnectionPeer(Arc::new(Err(
            PeerError::SeveralAgencyCodes(2),
        ))));
        let rejection = PeerIdentity::from_extensions(&ext).unwrap_err();
        assert!(
            rejection.to_string().contains("2 UID attributes"),
            "{rejection}"
        );
    }

    #[test]
    fn connection_peer_from_chain_uses_the_leaf() {
        let leaf = cert_with_uids(&["000.00.00.H41"]);
        let other = cert_with_uids(&["000.00.00.G22"]);
        let peer = ConnectionPeer::from_chain(&[leaf, other]).unwrap();
        let id = peer.0.as_ref().as_ref().unwrap();
        assert_eq!(id.agency_code.as_deref(), Some("000.00.00.H41"));
        assert!(ConnectionPeer::from_chain(&Vec::<Vec<u8>>::new()).is_none());
    }
}
