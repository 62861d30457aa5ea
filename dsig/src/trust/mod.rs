//! Certificate trust: which signer certificates DocAxis accepts, and why others are refused.
//!
//! A [`TrustStore`] holds the configured trust anchors (CA certificates), optional
//! out-of-band intermediate certificates and CRLs. [`TrustStore::validate_signer`] takes the
//! certificates a signature carries in `KeyInfo` (which are only *candidates*: an attacker
//! controls them), picks the signer's certificate, builds a path to an anchor and validates
//! it at a given time.
//!
//! Why not bergshamra's own X.509 validation: in 0.11.1 (`bergshamra-keys/src/x509.rs`) it
//! picks candidate anchors by subject name, checks CRLs only for the leaf, never verifies a
//! CRL's signature nor its `nextUpdate`, does not check the leaf's keyUsage, and reports
//! failures as free-form strings. DocAxis needs typed reasons and those checks, so path
//! validation is done here: `x509-parser` parses, `aws-lc-rs` (bergshamra's provider, already
//! linked) verifies certificate and CRL signatures. x509-parser's own `verify` feature is not
//! used because it would link `ring` as a second crypto library.
//!
//! Rules (RFC 5280 subset, fail closed):
//! - An anchor is matched by the full certificate (byte equality) or by its key: a
//!   certificate is issued by an anchor only if the issuer name matches **and** the anchor's
//!   key verifies the certificate's signature. A different certificate with the same subject
//!   name is therefore never trusted (xmlsec vector X17).
//! - Every chain element, the anchor included, must be valid at the verification time.
//! - Intermediates must carry basicConstraints cA=TRUE; an anchor without basicConstraints
//!   (an old v1 root) is accepted because an operator configured it explicitly, one with
//!   cA=FALSE is not. pathLenConstraint is enforced. An issuer's keyUsage, when present, must
//!   allow keyCertSign; the leaf's, when present, digitalSignature or nonRepudiation.
//! - Unknown critical extensions, RSA keys under 2048 bits, curves other than P-256/384/521
//!   and SHA-1/MD5 certificate signatures are refused.
//! - Remembered verdicts: a validated chain is reused for the same `KeyInfo` certificates
//!   only while every chain element is valid and every CRL current, and never when a chain
//!   certificate has a revocation dated in the future (`cache`).
//! - Revocation: for every non-anchor certificate, each configured CRL whose issuer name is
//!   the certificate's issuer must be signed by that issuer (and the issuer's keyUsage, when
//!   present, must allow cRLSign), must be current (`nextUpdate` present and not before the
//!   verification time; an expired CRL refuses the chain rather than being ignored), and
//!   must not list the certificate's serial with a revocation date at or before the
//!   verification time. An issuer with no configured CRL is not revocation-checked.

mod cache;
mod path;

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::algorithms::KeyFamily;
use super::certs::{CertInfo, CrlInfo, fmt_time, pem_blocks};

/// A configuration problem while loading anchors, intermediates or CRLs.
#[derive(Debug, thiserror::Error)]
pub enum TrustStoreError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The input holds no PEM block with the expected label.
    #[error("{what}: no PEM block '-----BEGIN {label}-----' found")]
    NoPem {
        /// Which input (file name or position).
        what: String,
        /// The PEM label looked for.
        label: &'static str,
    },
    /// A certificate could not be parsed or is unusable.
    #[error("{what}: {reason}")]
    BadCertificate {
        /// Which input.
        what: String,
        /// Why.
        reason: String,
    },
    /// A CRL could not be parsed.
    #[error("{what}: {reason}")]
    BadCrl {
        /// Which input.
        what: String,
        /// Why.
        reason: String,
    },
}

/// Why a signer's certificate chain is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// No path from the signer's certificate to a configured anchor (no anchor configured,
    /// missing intermediate, wrong anchor, or a look-alike certificate with the anchor's
    /// name but another key).
    #[error("the signer's certificate does not chain to a trusted CA: {reason}")]
    UntrustedChain {
        /// What is missing or wrong.
        reason: String,
    },
    /// A chain element expired before the verification time.
    #[error("certificate '{subject}' expired on {}", fmt_time(.not_after))]
    Expired {
        /// Subject of the expired certificate.
        subject: String,
        /// Its notAfter.
        not_after: OffsetDateTime,
    },
    /// A chain element is not yet valid at the verification time.
    #[error("certificate '{subject}' is not valid before {}", fmt_time(.not_before))]
    NotYetValid {
        /// Subject of the certificate.
        subject: String,
        /// Its notBefore.
        not_before: OffsetDateTime,
    },
    /// A chain element is listed in its issuer's CRL.
    #[error(
        "certificate '{subject}' (serial {serial}) was revoked by its issuer on {}",
        fmt_time(.at)
    )]
    Revoked {
        /// Subject of the revoked certificate.
        subject: String,
        /// Its serial number, upper-case hex.
        serial: String,
        /// The revocation date from the CRL.
        at: OffsetDateTime,
    },
    /// A configured CRL for an issuer in the chain cannot be relied on.
    #[error("the CRL issued by '{issuer}' cannot be used: {reason}")]
    CrlInvalid {
        /// The CRL's issuer.
        issuer: String,
        /// Why (bad signature, expired, unknown critical extension …).
        reason: String,
    },
    /// A certificate that issues others is not a CA.
    #[error("certificate '{subject}' is used as an issuing CA but {reason}")]
    NotACa {
        /// The issuer certificate's subject.
        subject: String,
        /// What is wrong (no basicConstraints, cA=FALSE, path length exceeded).
        reason: String,
    },
    /// A keyUsage extension forbids the use made of the key.
    #[error("certificate '{subject}': {reason}")]
    KeyUsage {
        /// The certificate's subject.
        subject: String,
        /// The missing usage.
        reason: String,
    },
    /// A certificate cannot be parsed or uses something DocAxis refuses.
    #[error("certificate '{subject}' is unusable: {reason}")]
    BadCertificate {
        /// The certificate's subject, or its position when it does not parse.
        subject: String,
        /// Why.
        reason: String,
    },
}

/// A validated chain: the signer's certificate first, the trust anchor last (a directly
/// trusted signer certificate gives a chain of one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedChain {
    certs: Vec<Vec<u8>>,
    subject: String,
    agency_code: Option<String>,
    /// The signer key's family (`None`: a key DocAxis cannot use) and its description for
    /// messages, read when the chain was validated so that a verification need not parse the
    /// signer's certificate again.
    leaf_key: (Option<KeyFamily>, String),
}

impl ValidatedChain {
    /// DER of the signer's certificate.
    pub fn leaf_der(&self) -> &[u8] {
        self.certs.first().map(Vec::as_slice).unwrap_or_default()
    }

    /// DER certificates, signer first, anchor last.
    pub fn certs(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// The signer certificate's subject (display form).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The agency code from the signer certificate's subject UID attribute, if exactly one.
    pub fn agency_code(&self) -> Option<&str> {
        self.agency_code.as_deref()
    }

    /// The signer key's family, if DocAxis can use the key at all.
    pub(crate) fn leaf_key_family(&self) -> Option<KeyFamily> {
        self.leaf_key.0
    }

    /// The signer key in words ("EC P-256", "RSA-2048"), for messages.
    pub(crate) fn leaf_key_description(&self) -> &str {
        &self.leaf_key.1
    }
}

/// Trust anchors, optional intermediates and CRLs used to validate signer chains.
///
/// Construct once at start-up and share (`Arc`) between verifications; its anchors and CRLs
/// never change after construction. Successful validations are remembered for as long as
/// their verdict cannot change ([`cache`]), so the same signer is not re-validated for every
/// packet.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: Vec<CertInfo>,
    intermediates: Vec<CertInfo>,
    crls: Vec<CrlInfo>,
    /// Signer chains already validated ([`cache`]).
    validated: cache::ChainCache,
}

impl TrustStore {
    /// An empty store: it trusts nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a store from PEM texts: each anchor input may hold several certificates,
    /// each CRL input several CRLs.
    pub fn from_pem(anchors: &[&[u8]], crls: &[&[u8]]) -> Result<Self, TrustStoreError> {
        let mut store = Self::new();
        for (i, pem) in anchors.iter().enumerate() {
            store.add_anchor_pem_named(pem, &format!("trust anchor input #{}", i + 1))?;
        }
        for (i, pem) in crls.iter().enumerate() {
            store.add_crl_pem_named(pem, &format!("CRL input #{}", i + 1))?;
        }
        Ok(store)
    }

    /// Builds a store from PEM files: anchors (CA certificates) and CRLs.
    pub fn from_pem_files(anchors: &[&Path], crls: &[&Path]) -> Result<Self, TrustStoreError> {
        let mut store = Self::new();
        for path in anchors {
            let pem = read(path)?;
            store.add_anchor_pem_named(&pem, &path.display().to_string())?;
        }
        for path in crls {
            let pem = read(path)?;
            store.add_crl_pem_named(&pem, &path.display().to_string())?;
        }
        Ok(store)
    }

    /// Adds every certificate of a PEM text as a trust anchor; returns how many.
    pub fn add_anchor_pem(&mut self, pem: &[u8]) -> Result<usize, TrustStoreError> {
        self.add_anchor_pem_named(pem, "trust anchor PEM")
    }

    /// Adds one DER certificate as a trust anchor.
    pub fn add_anchor_der(&mut self, der: &[u8]) -> Result<(), TrustStoreError> {
        let cert = parse_config_cert(der, "trust anchor")?;
        self.anchors.push(cert);
        Ok(())
    }

    /// Adds every certificate of a PEM text as an untrusted intermediate, available for
    /// path building when a packet's `KeyInfo` omits it; returns how many.
    pub fn add_intermediate_pem(&mut self, pem: &[u8]) -> Result<usize, TrustStoreError> {
        let ders = pem_certs(pem, "intermediate PEM")?;
        for der in &ders {
            let cert = parse_config_cert(der, "intermediate certificate")?;
            self.intermediates.push(cert);
        }
        Ok(ders.len())
    }

    /// Adds every CRL of a PEM text; returns how many.
    pub fn add_crl_pem(&mut self, pem: &[u8]) -> Result<usize, TrustStoreError> {
        self.add_crl_pem_named(pem, "CRL PEM")
    }

    /// Adds one DER CRL.
    pub fn add_crl_der(&mut self, der: &[u8]) -> Result<(), TrustStoreError> {
        let crl = CrlInfo::parse(der).map_err(|reason| TrustStoreError::BadCrl {
            what: "CRL".into(),
            reason,
        })?;
        self.crls.push(crl);
        Ok(())
    }

    /// Keeps, of the CRLs of each issuer, only the newest (latest `thisUpdate`; on a tie, the
    /// one listing more revocations): a complete CRL supersedes its predecessors, and an older
    /// copy that has passed its `nextUpdate` must not fail checks the newer one answers. Used
    /// when CRLs come from several places (files and the hub replicas' shared copies).
    pub fn keep_newest_crls(&mut self) {
        let mut newest: Vec<usize> = Vec::new();
        for (i, crl) in self.crls.iter().enumerate() {
            match newest
                .iter_mut()
                .find(|j| self.crls[**j].issuer_raw == crl.issuer_raw)
            {
                None => newest.push(i),
                Some(j) => {
                    let kept = &self.crls[*j];
                    if (crl.this_update, crl.revoked.len()) > (kept.this_update, kept.revoked.len())
                    {
                        *j = i;
                    }
                }
            }
        }
        newest.sort_unstable();
        let mut i = 0;
        self.crls.retain(|_| {
            let keep = newest.binary_search(&i).is_ok();
            i += 1;
            keep
        });
    }

    /// Number of configured trust anchors.
    pub fn anchor_count(&self) -> usize {
        self.anchors.len()
    }

    /// Number of configured CRLs.
    pub fn crl_count(&self) -> usize {
        self.crls.len()
    }

    /// Each configured CRL's issuer and when its next update is due (`None`: the CRL names no
    /// next update), for operators watching that a fresh CRL arrives in time.
    pub fn crl_next_updates(&self) -> Vec<(String, Option<OffsetDateTime>)> {
        self.crls
            .iter()
            .map(|c| (c.issuer.clone(), c.next_update))
            .collect()
    }

    /// Validates the signer of a signature from the certificates its `KeyInfo` carries.
    ///
    /// The signer's certificate is the one that issues no other certificate of the set
    /// (the first such in document order); the others, plus the configured intermediates,
    /// are untrusted path-building material. `at` is the verification time.
    pub fn validate_signer(
        &self,
        key_info_certs: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<ValidatedChain, TrustError> {
        let key = cache::key_of(key_info_certs);
        if let Some(chain) = self.validated.get(&key, at) {
            return Ok(chain);
        }
        let parsed = key_info_certs
            .iter()
            .enumerate()
            .map(|(i, der)| {
                CertInfo::parse(der).map_err(|reason| TrustError::BadCertificate {
                    subject: format!("KeyInfo certificate #{}", i + 1),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let Some(leaf_index) = path::select_leaf(&parsed) else {
            return Err(TrustError::UntrustedChain {
                reason: "the signature carries no certificate".into(),
            });
        };
        let pool: Vec<&CertInfo> = parsed
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leaf_index)
            .map(|(_, c)| c)
            .chain(self.intermediates.iter())
            .collect();
        let (chain, window) = self.validate_parsed(&parsed[leaf_index], &pool, at)?;
        if let Some(window) = window {
            self.validated.put(key, chain.clone(), window);
        }
        Ok(chain)
    }

    /// Checks `leaf_der` — a certificate validated earlier (at a TLS handshake, say) — against
    /// this store's CRLs again: refused when its issuer's CRL revokes it (or that CRL is
    /// unusable). An issuer this store does not hold has no CRL here: `Ok`.
    pub fn check_not_revoked(&self, leaf_der: &[u8], at: OffsetDateTime) -> Result<(), TrustError> {
        let leaf = CertInfo::parse(leaf_der).map_err(|reason| TrustError::BadCertificate {
            subject: "certificate".into(),
            reason,
        })?;
        for issuer in self
            .anchors
            .iter()
            .chain(self.intermediates.iter())
            .filter(|c| c.subject_raw == leaf.issuer_raw)
        {
            path::check_revocation(&leaf, issuer, &self.crls, at)?;
        }
        Ok(())
    }

    /// Validates `leaf_der` with `untrusted` as extra path-building certificates.
    pub fn validate_chain(
        &self,
        leaf_der: &[u8],
        untrusted: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<ValidatedChain, TrustError> {
        let leaf = CertInfo::parse(leaf_der).map_err(|reason| TrustError::BadCertificate {
            subject: "signer certificate".into(),
            reason,
        })?;
        let parsed = untrusted
            .iter()
            .enumerate()
            .map(|(i, der)| {
                CertInfo::parse(der).map_err(|reason| TrustError::BadCertificate {
                    subject: format!("untrusted certificate #{}", i + 1),
                    reason,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pool: Vec<&CertInfo> = parsed.iter().chain(self.intermediates.iter()).collect();
        Ok(self.validate_parsed(&leaf, &pool, at)?.0)
    }

    /// The validated chain, and the window in which that verdict holds (see [`cache`]).
    fn validate_parsed(
        &self,
        leaf: &CertInfo,
        pool: &[&CertInfo],
        at: OffsetDateTime,
    ) -> Result<(ValidatedChain, Option<(OffsetDateTime, OffsetDateTime)>), TrustError> {
        if self.anchors.is_empty() {
            return Err(TrustError::UntrustedChain {
                reason: "no trust anchor is configured, so no signer can be trusted".into(),
            });
        }
        let chain = path::validate(leaf, pool, &self.anchors, &self.crls, at)?;
        let window = cache::window(&chain, &self.crls, at);
        Ok((
            ValidatedChain {
                certs: chain.iter().map(|c| c.der.clone()).collect(),
                subject: leaf.subject.clone(),
                agency_code: leaf.agency_code.clone(),
                leaf_key: (leaf.key.family(), leaf.key.describe()),
            },
            window,
        ))
    }

    fn add_anchor_pem_named(&mut self, pem: &[u8], what: &str) -> Result<usize, TrustStoreError> {
        let ders = pem_certs(pem, what)?;
        for der in &ders {
            let cert = parse_config_cert(der, what)?;
            self.anchors.push(cert);
        }
        Ok(ders.len())
    }

    fn add_crl_pem_named(&mut self, pem: &[u8], what: &str) -> Result<usize, TrustStoreError> {
        let ders = pem_blocks(pem, "X509 CRL").map_err(|reason| TrustStoreError::BadCrl {
            what: what.to_owned(),
            reason,
        })?;
        if ders.is_empty() {
            return Err(TrustStoreError::NoPem {
                what: what.to_owned(),
                label: "X509 CRL",
            });
        }
        for der in &ders {
            let crl = CrlInfo::parse(der).map_err(|reason| TrustStoreError::BadCrl {
                what: what.to_owned(),
                reason,
            })?;
            self.crls.push(crl);
        }
        Ok(ders.len())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TrustStoreError> {
    std::fs::read(path).map_err(|source| TrustStoreError::Io {
        path: path.to_owned(),
        source,
    })
}

fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<Vec<u8>>, TrustStoreError> {
    let ders =
        pem_blocks(pem, "CERTIFICATE").map_err(|reason| TrustStoreError::BadCertificate {
            what: what.to_owned(),
            reason,
        })?;
    if ders.is_empty() {
        return Err(TrustStoreError::NoPem {
            what: what.to_owned(),
            label: "CERTIFICATE",
        });
    }
    Ok(ders)
}

fn parse_config_cert(der: &[u8], what: &str) -> Result<CertInfo, TrustStoreError> {
    CertInfo::parse(der).map_err(|reason| TrustStoreError::BadCertificate {
        what: what.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{Ca, KeyKind};
    use rcgen::{
        BasicConstraints, CertificateParams, CustomExtension, DnType, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    use time::Duration;

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn store(root: &Ca) -> TrustStore {
        TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).unwrap()
    }

    /// A certificate for `name` issued by (`params`, `key`), with a fresh P-256 key.
    fn issue(
        name: &str,
        is_ca: IsCa,
        usages: Vec<KeyUsagePurpose>,
        issuer_params: &CertificateParams,
        issuer_key: &KeyPair,
        extra: Option<CustomExtension>,
    ) -> (CertificateParams, KeyPair, Vec<u8>) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = is_ca;
        params.key_usages = usages;
        params.not_before = now() - Duration::days(1);
        params.not_after = now() + Duration::days(30);
        if let Some(ext) = extra {
            params.custom_extensions.push(ext);
        }
        let cert = params
            .signed_by(&key, &Issuer::from_params(issuer_params, issuer_key))
            .unwrap();
        (params, key, cert.der().to_vec())
    }

    #[test]
    fn valid_chain_and_accessors() {
        let root = Ca::root("Root");
        let inter = root.intermediate("Agency CA");
        let leaf = inter.leaf("000.00.00.H41", "UBND Tỉnh Nghệ An", KeyKind::EcP256);
        let chain = store(&root)
            .validate_signer(&[leaf.cert_der.clone(), inter.cert_der.clone()], now())
            .unwrap();
        assert_eq!(chain.certs().len(), 3);
        assert_eq!(chain.leaf_der(), leaf.cert_der.as_slice());
        assert_eq!(chain.certs()[2], root.cert_der);
        assert_eq!(chain.agency_code(), Some("000.00.00.H41"));
        assert!(
            chain.subject().contains("UBND Tỉnh Nghệ An"),
            "{}",
            chain.subject()
        );
    }

    #[test]
    fn leaf_without_signing_usage_is_refused() {
        let root = Ca::root("Root");
        let leaf = root.leaf_with(
            "000.00.00.G22",
            "Encryption only",
            KeyKind::EcP256,
            now() - Duration::days(1),
            now() + Duration::days(1),
            false,
        );
        let err = store(&root)
            .validate_signer(&[leaf.cert_der], now())
            .unwrap_err();
        assert!(matches!(err, TrustError::KeyUsage { .. }), "{err:?}");
    }

    #[test]
    fn end_entity_used_as_issuer_is_not_a_ca() {
        let root = Ca::root("Root");
        let (p1, k1, d1) = issue(
            "Not a CA",
            IsCa::ExplicitNoCa,
            vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyCertSign,
            ],
            &root.params,
            &root.key,
            None,
        );
        let (_, _, d2) = issue(
            "Leaf",
            IsCa::ExplicitNoCa,
            vec![KeyUsagePurpose::DigitalSignature],
            &p1,
            &k1,
            None,
        );
        let err = store(&root).validate_signer(&[d2, d1], now()).unwrap_err();
        let TrustError::NotACa { subject, reason } = &err else {
            panic!("expected NotACa, got {err:?}");
        };
        assert!(
            subject.contains("Not a CA") && reason.contains("cA=FALSE"),
            "{err}"
        );
    }

    #[test]
    fn issuer_without_key_cert_sign_is_refused() {
        let root = Ca::root("Root");
        let (p1, k1, d1) = issue(
            "CA without keyCertSign",
            IsCa::Ca(BasicConstraints::Unconstrained),
            vec![KeyUsagePurpose::DigitalSignature],
            &root.params,
            &root.key,
            None,
        );
        let (_, _, d2) = issue("Leaf", IsCa::ExplicitNoCa, vec![], &p1, &k1, None);
        let err = store(&root).validate_signer(&[d2, d1], now()).unwrap_err();
        assert!(matches!(err, TrustError::KeyUsage { .. }), "{err:?}");
    }

    #[test]
    fn path_length_constraint_is_enforced() {
        let root = Ca::root("Root");
        let (p1, k1, d1) = issue(
            "Constrained CA",
            IsCa::Ca(BasicConstraints::Constrained(0)),
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign],
            &root.params,
            &root.key,
            None,
        );
        let (p2, k2, d2) = issue(
            "Sub CA",
            IsCa::Ca(BasicConstraints::Unconstrained),
            vec![KeyUsagePurpose::KeyCertSign],
            &p1,
            &k1,
            None,
        );
        let (_, _, d3) = issue("Leaf", IsCa::ExplicitNoCa, vec![], &p2, &k2, None);
        let err = store(&root)
            .validate_signer(&[d3, d2, d1.clone()], now())
            .unwrap_err();
        let TrustError::NotACa { reason, .. } = &err else {
            panic!("expected NotACa, got {err:?}");
        };
        assert!(reason.contains("pathLenConstraint 0"), "{reason}");
        // One level below the constrained CA is fine.
        let (_, _, direct) = issue("Leaf", IsCa::ExplicitNoCa, vec![], &p1, &k1, None);
        store(&root).validate_signer(&[direct, d1], now()).unwrap();
    }

    #[test]
    fn unknown_critical_extension_is_refused() {
        let root = Ca::root("Root");
        let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], vec![5, 0]);
        ext.set_criticality(true);
        let (_, _, d) = issue(
            "Leaf",
            IsCa::ExplicitNoCa,
            vec![],
            &root.params,
            &root.key,
            Some(ext),
        );
        let err = store(&root).validate_signer(&[d], now()).unwrap_err();
        let TrustError::BadCertificate { reason, .. } = &err else {
            panic!("expected BadCertificate, got {err:?}");
        };
        assert!(reason.contains("1.3.6.1.4.1.99999.1"), "{reason}");
    }

    #[test]
    fn revoked_intermediate_is_refused() {
        let root = Ca::root("Root");
        let inter = root.intermediate("Agency CA");
        let leaf = inter.leaf("000.00.00.G22", "Leaf", KeyKind::EcP256);
        let serial = inter.params.serial_number.clone().unwrap();
        let crl = root.crl(
            &[&serial],
            now() - Duration::hours(1),
            now() - Duration::hours(1),
            now() + Duration::days(1),
        );
        let s = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[crl.as_bytes()]).unwrap();
        let err = s
            .validate_signer(&[leaf.cert_der, inter.cert_der], now())
            .unwrap_err();
        let TrustError::Revoked { subject, .. } = &err else {
            panic!("expected Revoked, got {err:?}");
        };
        assert!(subject.contains("Agency CA"), "{subject}");
    }

    #[test]
    fn the_newest_crl_of_an_issuer_wins_over_older_and_expired_copies() {
        let root = Ca::root("Root");
        let other = Ca::root("Other Root");
        let leaf = root.leaf("000.00.00.G22", "Leaf", KeyKind::EcP256);
        // An old CRL, expired an hour ago, revoking nothing; a new one revoking the leaf.
        let old = root.crl(
            &[],
            now() - Duration::days(3),
            now() - Duration::days(3),
            now() - Duration::hours(1),
        );
        let new = root.crl(
            &[&leaf.serial],
            now() - Duration::hours(1),
            now() - Duration::hours(1),
            now() + Duration::days(1),
        );
        let foreign = other.crl(
            &[],
            now() - Duration::hours(2),
            now() - Duration::hours(2),
            now() + Duration::days(1),
        );
        let anchors = [root.cert_pem.as_bytes(), other.cert_pem.as_bytes()];
        let crls = [old.as_bytes(), foreign.as_bytes(), new.as_bytes()];
        let mut s = TrustStore::from_pem(&anchors, &crls).unwrap();
        assert_eq!(s.crl_count(), 3);
        // Both of the root's CRLs count while both are kept: the expired one fails the check.
        let err = s.check_not_revoked(&leaf.cert_der, now()).unwrap_err();
        assert!(matches!(err, TrustError::CrlInvalid { .. }), "{err:?}");
        s.keep_newest_crls();
        assert_eq!(s.crl_count(), 2, "one per issuer");
        let err = s.check_not_revoked(&leaf.cert_der, now()).unwrap_err();
        assert!(matches!(err, TrustError::Revoked { .. }), "{err:?}");
    }

    #[test]
    fn a_certificate_checked_again_is_refused_once_its_crl_revokes_it() {
        let root = Ca::root("Root");
        let leaf = root.leaf("000.00.00.G22", "Leaf", KeyKind::EcP256);
        let other = root.leaf("000.00.00.H41", "Other", KeyKind::EcP256);
        let before = store(&root);
        before.check_not_revoked(&leaf.cert_der, now()).unwrap();
        let crl = root.crl(
            &[&leaf.serial],
            now() - Duration::hours(1),
            now() - Duration::hours(1),
            now() + Duration::days(1),
        );
        let after = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[crl.as_bytes()]).unwrap();
        let err = after.check_not_revoked(&leaf.cert_der, now()).unwrap_err();
        assert!(matches!(err, TrustError::Revoked { .. }), "{err:?}");
        after.check_not_revoked(&other.cert_der, now()).unwrap();
        // Another CA's certificate: this store has no CRL for it.
        let stranger = Ca::root("Elsewhere").leaf("000.00.00.H14", "X", KeyKind::EcP256);
        after.check_not_revoked(&stranger.cert_der, now()).unwrap();
    }

    #[test]
    fn validated_chains_are_reused_only_while_nothing_can_change() {
        let root = Ca::root_with(
            "Root",
            KeyKind::EcP256,
            now() - Duration::days(10),
            now() + Duration::days(5),
        );
        let leaf = root.leaf("000.00.00.G22", "Leaf", KeyKind::EcP256);
        let s = store(&root);
        let first = s
            .validate_signer(std::slice::from_ref(&leaf.cert_der), now())
            .unwrap();
        assert_eq!(s.validated.len(), 1);
        assert_eq!(
            s.validate_signer(std::slice::from_ref(&leaf.cert_der), now())
                .unwrap(),
            first
        );
        // Past the anchor's expiry the kept verdict is not used.
        let err = s
            .validate_signer(
                std::slice::from_ref(&leaf.cert_der),
                now() + Duration::days(6),
            )
            .unwrap_err();
        assert!(matches!(err, TrustError::Expired { .. }), "{err:?}");
        // Other path material is another key; a cloned store starts empty.
        let other = root.leaf("000.00.00.H41", "Other", KeyKind::EcP256);
        s.validate_signer(std::slice::from_ref(&other.cert_der), now())
            .unwrap();
        assert_eq!(s.validated.len(), 2);
        assert_eq!(s.clone().validated.len(), 0);

        // A revocation still to come is never kept, and applies once its date passed.
        let crl = root.crl(
            &[&leaf.serial],
            now() + Duration::hours(1),
            now() - Duration::hours(1),
            now() + Duration::days(1),
        );
        let s = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[crl.as_bytes()]).unwrap();
        s.validate_signer(std::slice::from_ref(&leaf.cert_der), now())
            .unwrap();
        assert_eq!(s.validated.len(), 0);
        let err = s
            .validate_signer(
                std::slice::from_ref(&leaf.cert_der),
                now() + Duration::hours(2),
            )
            .unwrap_err();
        assert!(matches!(err, TrustError::Revoked { .. }), "{err:?}");

        // A verdict is not kept past the CRL's nextUpdate.
        let crl = root.crl(
            &[],
            now() - Duration::hours(1),
            now() - Duration::hours(1),
            now() + Duration::hours(1),
        );
        let s = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[crl.as_bytes()]).unwrap();
        s.validate_signer(std::slice::from_ref(&leaf.cert_der), now())
            .unwrap();
        assert_eq!(s.validated.len(), 1);
        let err = s
            .validate_signer(&[leaf.cert_der], now() + Duration::hours(2))
            .unwrap_err();
        assert!(matches!(err, TrustError::CrlInvalid { .. }), "{err:?}");
    }

    #[test]
    fn expired_anchor_is_refused() {
        let root = Ca::root_with(
            "Old Root",
            KeyKind::EcP256,
            now() - Duration::days(10),
            now() + Duration::days(5),
        );
        let leaf = root.leaf("000.00.00.G22", "Leaf", KeyKind::EcP256);
        let later = now() + Duration::days(6);
        let err = store(&root)
            .validate_signer(&[leaf.cert_der], later)
            .unwrap_err();
        let TrustError::Expired { subject, .. } = &err else {
            panic!("expected Expired, got {err:?}");
        };
        // The leaf (one year) outlives the root: the anchor is the expired element.
        assert!(subject.contains("Old Root"), "{subject}");
    }

    #[test]
    fn garbage_inputs_are_typed_errors() {
        let root = Ca::root("Root");
        let err = store(&root)
            .validate_signer(&[vec![0x30, 0x03, 1, 2, 3]], now())
            .unwrap_err();
        assert!(matches!(err, TrustError::BadCertificate { .. }), "{err:?}");
        assert!(matches!(
            TrustStore::from_pem(&[b"not pem".as_slice()], &[]),
            Err(TrustStoreError::NoPem { .. })
        ));
        let mut s = TrustStore::new();
        assert!(s.add_anchor_der(&[1, 2, 3]).is_err());
        assert!(s.add_crl_der(&[1, 2, 3]).is_err());
        assert_eq!(s.anchor_count(), 0);
    }
}
