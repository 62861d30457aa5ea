//! The certificate authority in memory: created fresh by `init`, or loaded from `ca.pem` and
//! `ca.key.pem` by `issue` and `revoke`; it signs leaf certificates and CRLs.
//!
//! Invariants: a loaded authority's key is the private key of its certificate, the certificate
//! is a CA certificate and not expired; a leaf never outlives the CA; every CRL carries the CA's
//! own subject key identifier as its authority key identifier.

use std::path::Path;

use rcgen::{
    CertificateParams, CertificateRevocationListParams, Issuer, KeyIdMethod, KeyPair,
    PublicKeyData, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;

use super::PkiError;
use super::inspect::parse_certificate;
use super::profile::{self, KeyAlgorithm, LeafSubject};
use super::store::{self, PkiLayout};

/// A CA able to sign.
pub(crate) struct Authority {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    not_after: OffsetDateTime,
    key_id: Option<Vec<u8>>,
}

/// A CA just created, with the PEM texts to write.
pub(crate) struct CreatedCa {
    pub(crate) authority: Authority,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// A freshly signed leaf certificate with its private key.
pub(crate) struct SignedLeaf {
    pub(crate) cert_der: CertificateDer<'static>,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// Requested validity of a leaf; `None` means the profile's default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Validity {
    pub(crate) not_before: Option<OffsetDateTime>,
    pub(crate) not_after: Option<OffsetDateTime>,
}

impl Authority {
    /// Makes a new self-signed development CA valid for 20 years from `not_before` (default:
    /// `now - BACKDATE`).
    pub(crate) fn create(
        now: OffsetDateTime,
        not_before: Option<OffsetDateTime>,
    ) -> Result<CreatedCa, PkiError> {
        let not_before = not_before.map_or(now - profile::BACKDATE, profile::normalize_time);
        let not_after = not_before + profile::CA_VALIDITY;
        let params = profile::ca_params(not_before, not_after)?;
        let key = KeyAlgorithm::EcdsaP256.generate()?;
        let cert = params
            .self_signed(&key)
            .map_err(|e| PkiError::generate("sign the CA certificate", e))?;
        let key_id = Some(params.key_identifier(&key));
        let key_pem = key.serialize_pem();
        Ok(CreatedCa {
            cert_pem: cert.pem(),
            key_pem,
            authority: Authority {
                issuer: Issuer::new(params, key),
                cert_der: cert.der().clone(),
                not_after,
                key_id,
            },
        })
    }

    /// Loads the CA of a PKI directory, checking that the key matches the certificate, that the
    /// certificate is a CA and that it is still valid at `now`.
    pub(crate) fn load(layout: &PkiLayout, now: OffsetDateTime) -> Result<Self, PkiError> {
        let cert_path = layout.ca_cert();
        let key_path = layout.ca_key();
        for path in [&cert_path, &key_path] {
            if !store::exists(path) {
                return Err(PkiError::CaMissing {
                    dir: layout.dir().to_owned(),
                    path: path.clone(),
                });
            }
        }
        let cert_der = store::load_cert_pem(&cert_path)?;
        let key_pem = String::from_utf8(store::read(&key_path)?).map_err(|_| PkiError::Pem {
            path: key_path.clone(),
            reason: "not a text file".to_owned(),
        })?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::BadPrivateKey {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;

        let parsed = parse_certificate(&cert_der, &cert_path.display().to_string())?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err(PkiError::KeyMismatch {
                key_path,
                cert_path,
            });
        }
        if !parsed.is_ca() {
            return Err(PkiError::NotACa { path: cert_path });
        }
        let not_after = parsed.validity().not_after.to_datetime();
        if not_after <= now {
            return Err(PkiError::CaExpired {
                path: cert_path,
                not_after,
            });
        }
        let key_id = parsed
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| PkiError::BadCertificate {
                what: cert_path.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Authority {
            issuer,
            cert_der,
            not_after,
            key_id,
        })
    }

    /// The CA certificate, DER.
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// End of the CA's validity.
    #[cfg(test)]
    pub(crate) fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Resolves a leaf's validity: defaults start `BACKDATE` before `now` and last 10 years,
    /// cut at the CA's expiry; explicit bounds must form a non-empty period within the CA's.
    pub(crate) fn leaf_validity(
        &self,
        requested: Validity,
        now: OffsetDateTime,
    ) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
        let not_before = requested
            .not_before
            .map_or(now - profile::BACKDATE, profile::normalize_time);
        let not_after = match requested.not_after {
            Some(explicit) => {
                let explicit = profile::normalize_time(explicit);
                if explicit > self.not_after {
                    return Err(PkiError::OutlivesCa {
                        not_after: explicit,
                        ca_not_after: self.not_after,
                    });
                }
                explicit
            }
            None => (not_before + profile::LEAF_VALIDITY).min(self.not_after),
        };
        if not_before >= not_after {
            return Err(PkiError::EmptyValidity {
                not_before,
                not_after,
            });
        }
        Ok((not_before, not_after))
    }

    /// Generates a key of type `key` and signs a leaf certificate for `subject`.
    pub(crate) fn sign_leaf(
        &self,
        subject: LeafSubject<'_>,
        key: KeyAlgorithm,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<SignedLeaf, PkiError> {
        let params: CertificateParams = profile::leaf_params(subject, key, not_before, not_after)?;
        let key_pair = key.generate()?;
        let what = match subject {
            LeafSubject::Hub => "sign the hub certificate".to_owned(),
            LeafSubject::Agency { code, .. } => format!("sign the certificate of agency {code}"),
        };
        let cert = params
            .signed_by(&key_pair, &self.issuer)
            .map_err(|e| PkiError::generate(what, e))?;
        Ok(SignedLeaf {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key_pair.serialize_pem(),
        })
    }

    /// Signs a CRL numbered `number` listing `revoked`, issued at `this_update` and due again
    /// 10 years later (cut at the CA's expiry). Returns it as PEM.
    pub(crate) fn sign_crl(
        &self,
        number: u64,
        revoked: Vec<RevokedCertParams>,
        this_update: OffsetDateTime,
    ) -> Result<String, PkiError> {
        let next_update = (this_update + profile::LEAF_VALIDITY).min(self.not_after);
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: match &self.key_id {
                Some(id) => KeyIdMethod::PreSpecified(id.clone()),
                None => KeyIdMethod::Sha256,
            },
        };
        let crl = params
            .signed_by(&self.issuer)
            .map_err(|e| PkiError::generate(format!("sign CRL number {number}"), e))?;
        crl.pem()
            .map_err(|e| PkiError::generate(format!("encode CRL number {number}"), e))
    }
}

/// Loads the certificate of a PKI file and checks that the CA issued it.
pub(crate) fn load_issued_cert(
    authority: &Authority,
    path: &Path,
) -> Result<CertificateDer<'static>, PkiError> {
    let der = store::load_cert_pem(path)?;
    super::verify::verify_issued_by(&der, authority.cert_der())?;
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_validity_is_cut_at_the_ca_expiry() {
        let now = profile::now();
        let ca = Authority::create(now, None).unwrap().authority;
        let (nb, na) = ca.leaf_validity(Validity::default(), now).unwrap();
        assert_eq!(nb, now - profile::BACKDATE);
        assert_eq!(na, nb + profile::LEAF_VALIDITY);
        let late = ca.not_after() - time::Duration::days(365);
        let (_, na) = ca.leaf_validity(Validity::default(), late).unwrap();
        assert_eq!(na, ca.not_after());
    }

    #[test]
    fn explicit_validity_is_checked() {
        let now = profile::now();
        let ca = Authority::create(now, None).unwrap().authority;
        let past = Validity {
            not_before: Some(now - time::Duration::days(30)),
            not_after: Some(now - time::Duration::days(1)),
        };
        ca.leaf_validity(past, now).unwrap();
        let backwards = Validity {
            not_before: Some(now),
            not_after: Some(now - time::Duration::days(1)),
        };
        let err = ca.leaf_validity(backwards, now).unwrap_err();
        assert!(matches!(err, PkiError::EmptyValidity { .. }), "{err}");
        let too_long = Validity {
            not_before: None,
            not_after: Some(ca.not_after() + time::Duration::days(1)),
        };
        let err = ca.leaf_validity(too_long, now).unwrap_err();
        assert!(matches!(err, PkiError::OutlivesCa { .. }), "{err}");
    }
}
