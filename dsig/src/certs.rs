//! Owned facts extracted from X.509 certificates and CRLs, and signature checks over them.
//!
//! Certificates and CRLs are parsed once with `x509-parser` into small owned structs holding
//! exactly what path validation needs (raw names, validity, extensions, public key, signed
//! bytes). Signatures on certificates and CRLs are checked with `aws-lc-rs`, the same crypto
//! provider bergshamra uses here, so no second crypto library is linked.
//!
//! Invariants: a [`CertInfo`] exists only for a certificate that parsed completely (no
//! trailing bytes, no duplicate extensions); names are compared as raw DER bytes, never as
//! display strings; only RSA (≥ 2048 bits) and NIST P-256/384/521 keys are usable.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use time::OffsetDateTime;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA,
    OID_PKCS1_SHA512WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
    OID_SIG_ECDSA_WITH_SHA512, OID_USERID, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME, Oid,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;
use x509_parser::revocation_list::CertificateRevocationList;

use super::algorithms::KeyFamily;

/// Smallest RSA modulus accepted anywhere in a chain.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// The curves DocAxis accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Curve {
    P256,
    P384,
    P521,
}

/// A public key in a form aws-lc-rs can verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKeyInfo {
    /// RSA key: `bits` is the modulus size, `pkcs1` the RSAPublicKey DER.
    Rsa { bits: usize, pkcs1: Vec<u8> },
    /// EC key on an accepted curve: `point` is the encoded point.
    Ec { curve: Curve, point: Vec<u8> },
    /// Anything else (kept only for error messages).
    Unsupported { what: String },
}

impl PublicKeyInfo {
    /// Parses a DER SubjectPublicKeyInfo.
    pub(crate) fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        let (rest, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| format!("cannot parse public key: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the public key".into());
        }
        Ok(Self::from_spki(&spki))
    }

    fn from_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Self {
        let alg = &spki.algorithm.algorithm;
        if *alg == OID_PKCS1_RSAENCRYPTION {
            return match spki.parsed() {
                Ok(PublicKey::RSA(rsa)) => PublicKeyInfo::Rsa {
                    bits: rsa.key_size(),
                    pkcs1: spki.subject_public_key.data.to_vec(),
                },
                _ => PublicKeyInfo::Unsupported {
                    what: "malformed RSA public key".into(),
                },
            };
        }
        if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let curve = match &curve_oid {
                Some(o) if *o == OID_EC_P256 => Some(Curve::P256),
                Some(o) if *o == OID_NIST_EC_P384 => Some(Curve::P384),
                Some(o) if *o == OID_NIST_EC_P521 => Some(Curve::P521),
                _ => None,
            };
            return match curve {
                Some(curve) => PublicKeyInfo::Ec {
                    curve,
                    point: spki.subject_public_key.data.to_vec(),
                },
                None => PublicKeyInfo::Unsupported {
                    what: format!(
                        "EC key on an unsupported curve ({})",
                        curve_oid.map_or_else(|| "no curve named".into(), |o| o.to_id_string())
                    ),
                },
            };
        }
        PublicKeyInfo::Unsupported {
            what: format!(
                "public key algorithm {} is not supported",
                alg.to_id_string()
            ),
        }
    }

    /// The key family, if the key is usable at all.
    pub(crate) fn family(&self) -> Option<KeyFamily> {
        match self {
            PublicKeyInfo::Rsa { .. } => Some(KeyFamily::Rsa),
            PublicKeyInfo::Ec { .. } => Some(KeyFamily::Ec),
            PublicKeyInfo::Unsupported { .. } => None,
        }
    }

    /// Why this key cannot be used, or `None` when it can.
    pub(crate) fn weakness(&self) -> Option<String> {
        match self {
            PublicKeyInfo::Rsa { bits, .. } if *bits < MIN_RSA_BITS => Some(format!(
                "RSA key of {bits} bits is too small (minimum {MIN_RSA_BITS})"
            )),
            PublicKeyInfo::Unsupported { what } => Some(what.clone()),
            _ => None,
        }
    }

    /// Short description for messages ("RSA-2048", "EC P-256").
    pub(crate) fn describe(&self) -> String {
        match self {
            PublicKeyInfo::Rsa { bits, .. } => format!("RSA-{bits}"),
            PublicKeyInfo::Ec { curve, .. } => format!(
                "EC {}",
                match curve {
                    Curve::P256 => "P-256",
                    Curve::P384 => "P-384",
                    Curve::P521 => "P-521",
                }
            ),
            PublicKeyInfo::Unsupported { what } => what.clone(),
        }
    }
}

/// Why a certificate or CRL signature did not check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SigCheck {
    /// The algorithm or the key cannot be used; the text says why.
    Unsupported(String),
    /// The signature is wrong for this key.
    Invalid,
}

/// Verifies `sig` over `tbs` with `key`, for an X.509 signature algorithm OID.
pub(crate) fn verify_x509_signature(
    key: &PublicKeyInfo,
    sig_alg: &Oid<'static>,
    tbs: &[u8],
    sig: &[u8],
) -> Result<(), SigCheck> {
    if let Some(w) = key.weakness() {
        return Err(SigCheck::Unsupported(format!("issuer key: {w}")));
    }
    let (alg, raw): (&'static dyn VerificationAlgorithm, &[u8]) = match key {
        PublicKeyInfo::Rsa { pkcs1, .. } => {
            let alg: &'static dyn VerificationAlgorithm = if *sig_alg == OID_PKCS1_SHA256WITHRSA {
                &signature::RSA_PKCS1_2048_8192_SHA256
            } else if *sig_alg == OID_PKCS1_SHA384WITHRSA {
                &signature::RSA_PKCS1_2048_8192_SHA384
            } else if *sig_alg == OID_PKCS1_SHA512WITHRSA {
                &signature::RSA_PKCS1_2048_8192_SHA512
            } else {
                return Err(SigCheck::Unsupported(unsupported_sig_alg(sig_alg, "RSA")));
            };
            (alg, pkcs1.as_slice())
        }
        PublicKeyInfo::Ec { curve, point } => {
            let hash = if *sig_alg == OID_SIG_ECDSA_WITH_SHA256 {
                256
            } else if *sig_alg == OID_SIG_ECDSA_WITH_SHA384 {
                384
            } else if *sig_alg == OID_SIG_ECDSA_WITH_SHA512 {
                512
            } else {
                return Err(SigCheck::Unsupported(unsupported_sig_alg(sig_alg, "EC")));
            };
            let alg: &'static dyn VerificationAlgorithm = match (curve, hash) {
                (Curve::P256, 256) => &signature::ECDSA_P256_SHA256_ASN1,
                (Curve::P256, 384) => &signature::ECDSA_P256_SHA384_ASN1,
                (Curve::P256, _) => &signature::ECDSA_P256_SHA512_ASN1,
                (Curve::P384, 256) => &signature::ECDSA_P384_SHA256_ASN1,
                (Curve::P384, 384) => &signature::ECDSA_P384_SHA384_ASN1,
                (Curve::P384, _) => &signature::ECDSA_P384_SHA512_ASN1,
                (Curve::P521, 256) => &signature::ECDSA_P521_SHA256_ASN1,
                (Curve::P521, 384) => &signature::ECDSA_P521_SHA384_ASN1,
                (Curve::P521, _) => &signature::ECDSA_P521_SHA512_ASN1,
            };
            (alg, point.as_slice())
        }
        PublicKeyInfo::Unsupported { what } => return Err(SigCheck::Unsupported(what.clone())),
    };
    UnparsedPublicKey::new(alg, raw)
        .verify(tbs, sig)
        .map_err(|_| SigCheck::Invalid)
}

fn unsupported_sig_alg(oid: &Oid<'_>, family: &str) -> String {
    let name = x509_parser::objects::oid2sn(oid, x509_parser::objects::oid_registry())
        .map(str::to_owned)
        .unwrap_or_else(|_| oid.to_id_string());
    format!(
        "signature algorithm {name} is not accepted with an {family} issuer key (SHA-256/384/512 only)"
    )
}

/// The facts about one certificate that path validation needs.
#[derive(Debug, Clone)]
pub(crate) struct CertInfo {
    pub der: Vec<u8>,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub subject: String,
    pub issuer: String,
    pub serial_raw: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// `Some((ca, path_len))` when basicConstraints is present.
    pub basic_constraints: Option<(bool, Option<u32>)>,
    /// keyUsage flags when present (bit 0 = digitalSignature … bit 6 = cRLSign).
    pub key_usage: Option<u16>,
    pub key: PublicKeyInfo,
    /// A critical extension this validator does not process, if any.
    pub unknown_critical: Option<String>,
    pub agency_code: Option<String>,
    tbs: Vec<u8>,
    sig_alg: Oid<'static>,
    sig: Vec<u8>,
}

/// keyUsage bit: digitalSignature.
pub(crate) const KU_DIGITAL_SIGNATURE: u16 = 1;
/// keyUsage bit: nonRepudiation (contentCommitment).
pub(crate) const KU_NON_REPUDIATION: u16 = 1 << 1;
/// keyUsage bit: keyCertSign.
pub(crate) const KU_KEY_CERT_SIGN: u16 = 1 << 5;
/// keyUsage bit: cRLSign.
pub(crate) const KU_CRL_SIGN: u16 = 1 << 6;

impl CertInfo {
    /// Parses one DER certificate.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| format!("cannot parse certificate: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let subject = cert.subject().to_string();
        let basic_constraints = cert
            .basic_constraints()
            .map_err(|e| format!("certificate '{subject}': bad basicConstraints: {e}"))?
            .map(|bc| (bc.value.ca, bc.value.path_len_constraint));
        let key_usage = cert
            .key_usage()
            .map_err(|e| format!("certificate '{subject}': bad keyUsage: {e}"))?
            .map(|ku| ku.value.flags);
        let known_critical = [
            OID_X509_EXT_BASIC_CONSTRAINTS,
            OID_X509_EXT_KEY_USAGE,
            OID_X509_EXT_EXTENDED_KEY_USAGE,
            OID_X509_EXT_SUBJECT_ALT_NAME,
        ];
        let unknown_critical = cert
            .extensions()
            .iter()
            .find(|e| e.critical && !known_critical.contains(&e.oid))
            .map(|e| e.oid.to_id_string());
        let mut uids = cert
            .subject()
            .iter_by_oid(&OID_USERID)
            .filter_map(|a| a.as_str().ok().map(str::to_owned));
        let agency_code = match (uids.next(), uids.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        };
        Ok(CertInfo {
            der: der.to_vec(),
            subject_raw: cert.subject().as_raw().to_vec(),
            issuer_raw: cert.issuer().as_raw().to_vec(),
            issuer: cert.issuer().to_string(),
            subject,
            serial_raw: cert.tbs_certificate.raw_serial().to_vec(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            basic_constraints,
            key_usage,
            key: PublicKeyInfo::from_spki(cert.public_key()),
            unknown_critical,
            agency_code,
            tbs: cert.tbs_certificate.as_ref().to_vec(),
            sig_alg: cert.signature_algorithm.algorithm.to_owned(),
            sig: cert.signature_value.data.to_vec(),
        })
    }

    /// Serial number as upper-case hex.
    pub(crate) fn serial_hex(&self) -> String {
        hex::encode_upper(&self.serial_raw)
    }

    /// Whether `issuer`'s name matches this certificate's issuer name and `issuer`'s key
    /// verifies this certificate's signature.
    pub(crate) fn check_issued_by(&self, issuer: &CertInfo) -> Result<(), SigCheck> {
        if self.issuer_raw != issuer.subject_raw {
            return Err(SigCheck::Invalid);
        }
        verify_x509_signature(&issuer.key, &self.sig_alg, &self.tbs, &self.sig)
    }

    /// Whether the certificate is self-issued (subject == issuer).
    pub(crate) fn is_self_issued(&self) -> bool {
        self.subject_raw == self.issuer_raw
    }
}

/// The facts about one CRL that revocation checking needs.
#[derive(Debug, Clone)]
pub(crate) struct CrlInfo {
    pub issuer_raw: Vec<u8>,
    pub issuer: String,
    pub this_update: OffsetDateTime,
    pub next_update: Option<OffsetDateTime>,
    /// (raw serial, revocation date).
    pub revoked: Vec<(Vec<u8>, OffsetDateTime)>,
    pub unknown_critical: Option<String>,
    tbs: Vec<u8>,
    sig_alg: Oid<'static>,
    sig: Vec<u8>,
}

impl CrlInfo {
    /// Parses one DER CRL.
    pub(crate) fn parse(der: &[u8]) -> Result<Self, String> {
        let (rest, crl) = CertificateRevocationList::from_der(der)
            .map_err(|e| format!("cannot parse CRL: {e}"))?;
        if !rest.is_empty() {
            return Err("trailing bytes after the CRL".into());
        }
        // CRL extensions this checker understands when critical: none need processing
        // except that a critical one we do not know (e.g. issuingDistributionPoint, which
        // narrows the CRL's scope) makes the CRL unusable.
        let unknown_critical = crl
            .extensions()
            .iter()
            .find(|e| e.critical)
            .map(|e| e.oid.to_id_string())
            .or_else(|| {
                crl.iter_revoked_certificates()
                    .flat_map(|r| r.extensions().iter())
                    .find(|e| e.critical)
                    .map(|e| e.oid.to_id_string())
            });
        Ok(CrlInfo {
            issuer_raw: crl.issuer().as_raw().to_vec(),
            issuer: crl.issuer().to_string(),
            this_update: crl.last_update().to_datetime(),
            next_update: crl.next_update().map(|t| t.to_datetime()),
            revoked: crl
                .iter_revoked_certificates()
                .map(|r| (r.raw_serial().to_vec(), r.revocation_date.to_datetime()))
                .collect(),
            unknown_critical,
            tbs: crl.tbs_cert_list.as_ref().to_vec(),
            sig_alg: crl.signature_algorithm.algorithm.to_owned(),
            sig: crl.signature_value.data.to_vec(),
        })
    }

    /// Checks that `issuer` signed this CRL.
    pub(crate) fn check_signed_by(&self, issuer: &CertInfo) -> Result<(), SigCheck> {
        verify_x509_signature(&issuer.key, &self.sig_alg, &self.tbs, &self.sig)
    }
}

/// Formats a time for messages: `2026-03-22 22:15:37 UTC`.
pub(crate) fn fmt_time(t: &OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Decodes every block labelled `label` of a PEM text into DER (see [`crate::pem`]).
pub(crate) fn pem_blocks(pem: &[u8], label: &str) -> Result<Vec<Vec<u8>>, String> {
    crate::pem::blocks(pem, label).map_err(|e| e.to_string())
}
