//! The certificate profile of the development PKI: subjects, extensions, validity and keys.
//!
//! Invariants kept here, and nowhere else:
//! - the CA is self-signed, ECDSA P-256, `CA:true, pathlen:0`, keyUsage keyCertSign + cRLSign;
//! - every leaf (hub or agency) is `CA:false`, keyUsage digitalSignature + contentCommitment
//!   (+ keyEncipherment for RSA), extendedKeyUsage serverAuth + clientAuth, SAN `localhost`,
//!   `127.0.0.1`, `::1`, with authority and subject key identifiers;
//! - an agency subject is `C=VN, O=<name>, CN=<name>, UID=<agency code>`; the hub's subject has
//!   no UID, so no agency code can be read from it;
//! - serials are 16 random bytes, positive, with the top bits set so they always encode in
//!   exactly 16 bytes;
//! - times are UTC, whole seconds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::PkiError;

/// OID of the subject attribute that carries the agency code: UID, 0.9.2342.19200300.100.1.1.
pub const AGENCY_CODE_OID: &[u64] = &[0, 9, 2342, 19_200_300, 100, 1, 1];

/// Common name of the development CA.
pub const CA_COMMON_NAME: &str = "DocAxis Development National CA (NOT FOR PRODUCTION)";

/// Organisation of the development CA and hub.
pub const DEV_ORGANIZATION: &str = "DocAxis development";

/// Common name of the development hub certificate.
pub const HUB_COMMON_NAME: &str = "DocAxis development hub";

/// Country of every subject.
pub const COUNTRY: &str = "VN";

/// Validity of the CA: 20 years.
pub const CA_VALIDITY: Duration = Duration::days(7305);

/// Default validity of hub and agency certificates: 10 years.
pub const LEAF_VALIDITY: Duration = Duration::days(3653);

/// Certificates start this long before they are made, to tolerate clock skew between machines.
pub(super) const BACKDATE: Duration = Duration::hours(1);

/// Longest name accepted for an agency (X.520 upper bound of commonName and organizationName).
const MAX_NAME_CHARS: usize = 64;

/// Key type of a hub or agency certificate. The CA key is always ECDSA P-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on the NIST P-256 curve, signatures with SHA-256 (the default).
    #[default]
    EcdsaP256,
    /// RSA with a 2048-bit modulus, PKCS#1 v1.5 signatures with SHA-256.
    Rsa2048,
}

impl KeyAlgorithm {
    /// Short human-readable label, as printed by the CLI.
    pub fn label(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ECDSA P-256",
            KeyAlgorithm::Rsa2048 => "RSA 2048",
        }
    }

    /// Generates a fresh key pair of this type.
    pub(crate) fn generate(self) -> Result<KeyPair, PkiError> {
        let generated = match self {
            KeyAlgorithm::EcdsaP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyAlgorithm::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            }
        };
        generated.map_err(|e| PkiError::generate(format!("generate an {} key", self.label()), e))
    }
}

/// Whose certificate a leaf is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeafSubject<'a> {
    /// The national hub: no agency code.
    Hub,
    /// An agency node, identified by its code.
    Agency {
        /// Agency code, written into UID.
        code: &'a str,
        /// Agency name, written into CN and O.
        name: &'a str,
    },
}

/// Current time, UTC, whole seconds.
pub(crate) fn now() -> OffsetDateTime {
    normalize_time(OffsetDateTime::now_utc())
}

/// `time` converted to UTC and truncated to whole seconds, as certificates store it.
pub(crate) fn normalize_time(time: OffsetDateTime) -> OffsetDateTime {
    let utc = time.to_offset(time::UtcOffset::UTC);
    utc.replace_nanosecond(0).unwrap_or(utc)
}

/// Checks that `name` can go into CN and O.
pub(crate) fn check_agency_name(name: &str) -> Result<(), PkiError> {
    let invalid = |reason: &str| PkiError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    if name.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.trim() != name {
        return Err(invalid("it starts or ends with white space"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("it contains a control character"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid("it is longer than 64 characters"));
    }
    Ok(())
}

/// A fresh serial number: 16 random bytes, positive, always exactly 16 bytes when encoded.
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    // Clear the sign bit and set the next one: positive, and no leading zero byte to strip.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// Parameters of the self-signed development CA.
pub(crate) fn ca_params(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, COUNTRY);
    dn.push(DnType::OrganizationName, DEV_ORGANIZATION);
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// Parameters of a hub or agency certificate.
pub(crate) fn leaf_params(
    subject: LeafSubject<'_>,
    key: KeyAlgorithm,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(random_serial()?);
    params.distinguished_name = leaf_distinguished_name(subject);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    if key == KeyAlgorithm::Rsa2048 {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let localhost = "localhost"
        .try_into()
        .map_err(|e| PkiError::generate("encode the DNS name localhost", e))?;
    params.subject_alt_names = vec![
        SanType::DnsName(localhost),
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn leaf_distinguished_name(subject: LeafSubject<'_>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, COUNTRY);
    match subject {
        LeafSubject::Hub => {
            dn.push(DnType::OrganizationName, DEV_ORGANIZATION);
            dn.push(DnType::CommonName, HUB_COMMON_NAME);
        }
        LeafSubject::Agency { code, name } => {
            dn.push(DnType::OrganizationName, name);
            dn.push(DnType::CommonName, name);
            dn.push(DnType::CustomDnType(AGENCY_CODE_OID.to_vec()), code);
        }
    }
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_sixteen_positive_bytes_and_differ() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_eq!(a.len(), 16);
        assert_eq!(a[0] & 0xc0, 0x40, "sign bit clear, next bit set");
        assert_ne!(a, b);
    }

    #[test]
    fn names_are_checked() {
        check_agency_name("Văn phòng Chính phủ").unwrap();
        for bad in ["", "   ", " UBND", "UBND\n", &"x".repeat(65)] {
            let err = check_agency_name(bad).unwrap_err();
            assert!(matches!(err, PkiError::InvalidName { .. }), "{bad:?}");
        }
        check_agency_name(&"ệ".repeat(64)).unwrap();
    }

    #[test]
    fn normalized_time_is_utc_whole_seconds() {
        let t = time::macros::datetime!(2025-01-02 03:04:05.678 +07:00);
        let n = normalize_time(t);
        assert_eq!(n, time::macros::datetime!(2025-01-01 20:04:05 UTC));
        assert_eq!(n.offset(), time::UtcOffset::UTC);
    }

    #[test]
    fn rsa_leaves_also_allow_key_encipherment() {
        let now = now();
        let subject = LeafSubject::Agency {
            code: "000.00.00.G22",
            name: "Văn phòng Chính phủ",
        };
        let ec = leaf_params(subject, KeyAlgorithm::EcdsaP256, now, now + LEAF_VALIDITY).unwrap();
        let rsa = leaf_params(subject, KeyAlgorithm::Rsa2048, now, now + LEAF_VALIDITY).unwrap();
        assert!(!ec.key_usages.contains(&KeyUsagePurpose::KeyEncipherment));
        assert!(rsa.key_usages.contains(&KeyUsagePurpose::KeyEncipherment));
    }
}
