//! Reading facts out of certificates: agency code, fingerprint, serial, subject, validity.
//!
//! These are the functions other modules (trust checks, the hub's directory) rely on to bind a
//! certificate to an agency. The agency code is the value of the subject's single UID attribute
//! (OID 0.9.2342.19200300.100.1.1), returned exactly as stored; more than one UID is an error,
//! never a guess.

use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::oid_registry::{
    OID_USERID, OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_LOCALITY_NAME,
    OID_X509_ORGANIZATION_NAME, OID_X509_ORGANIZATIONAL_UNIT, OID_X509_STATE_OR_PROVINCE_NAME,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use super::PkiError;

/// Facts about one certificate, as the CLI prints them and tests check them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Subject, RFC 4514-like (`C=VN, O=…, CN=…, UID=…`).
    pub subject: String,
    /// Issuer, in the same form.
    pub issuer: String,
    /// Serial number, lower-case hex without separators or leading zero bytes.
    pub serial: String,
    /// SHA-256 of the DER encoding, lower-case hex.
    pub fingerprint_sha256: String,
    /// Start of validity (UTC).
    pub not_before: OffsetDateTime,
    /// End of validity (UTC).
    pub not_after: OffsetDateTime,
    /// The agency code from the UID attribute, if the subject has one.
    pub agency_code: Option<String>,
}

/// Parses DER bytes as one X.509 certificate, refusing trailing bytes. `what` names the
/// certificate in the error.
pub(crate) fn parse_certificate<'a>(
    der: &'a [u8],
    what: &str,
) -> Result<X509Certificate<'a>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::BadCertificate {
        what: what.to_owned(),
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(PkiError::BadCertificate {
            what: what.to_owned(),
            reason: format!("{} unexpected bytes after the certificate", rest.len()),
        });
    }
    Ok(cert)
}

/// The agency code of a certificate: the value of its subject's UID attribute, or `None` when
/// the subject has no UID (the hub's certificate, for instance).
///
/// Errors when the bytes are not a certificate, when the subject holds several UIDs, or when
/// the UID is not a string.
pub fn agency_code_of(cert_der: &[u8]) -> Result<Option<String>, PkiError> {
    let cert = parse_certificate(cert_der, "the certificate")?;
    agency_code_of_parsed(&cert)
}

pub(crate) fn agency_code_of_parsed(
    cert: &X509Certificate<'_>,
) -> Result<Option<String>, PkiError> {
    let uids: Vec<_> = cert.subject().iter_by_oid(&OID_USERID).collect();
    match uids.as_slice() {
        [] => Ok(None),
        [uid] => uid.as_str().map(|code| Some(code.to_owned())).map_err(|e| {
            PkiError::BadAgencyCodeAttribute {
                reason: e.to_string(),
            }
        }),
        many => Err(PkiError::AmbiguousAgencyCode { count: many.len() }),
    }
}

/// SHA-256 fingerprint of DER bytes (normally a certificate), lower-case hex, no separators.
pub fn fingerprint_sha256(cert_der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        cert_der,
    ))
}

/// Formats a distinguished name as `C=VN, O=…, CN=…, UID=…` (attribute names as OpenSSL
/// prints them; unknown attribute types as dotted OIDs; non-string values as `#hex`).
pub(crate) fn format_name(name: &X509Name<'_>) -> String {
    let mut parts = Vec::new();
    for attr in name.iter_attributes() {
        let oid = attr.attr_type();
        let label = NAME_LABELS
            .iter()
            .find(|(known, _)| known == oid)
            .map_or_else(|| oid.to_id_string(), |(_, label)| (*label).to_owned());
        let value = attr.as_str().map_or_else(
            |_| format!("#{}", hex::encode(attr.as_slice())),
            str::to_owned,
        );
        parts.push(format!("{label}={value}"));
    }
    parts.join(", ")
}

/// Short names of the subject attributes this PKI writes or commonly meets.
const NAME_LABELS: [(Oid<'static>, &str); 7] = [
    (OID_X509_COUNTRY_NAME, "C"),
    (OID_X509_STATE_OR_PROVINCE_NAME, "ST"),
    (OID_X509_LOCALITY_NAME, "L"),
    (OID_X509_ORGANIZATION_NAME, "O"),
    (OID_X509_ORGANIZATIONAL_UNIT, "OU"),
    (OID_X509_COMMON_NAME, "CN"),
    (OID_USERID, "UID"),
];

/// Lower-case hex of a serial number's unsigned big-endian value (no leading zero bytes).
pub(crate) fn serial_hex(serial: &x509_parser::num_bigint::BigUint) -> String {
    hex::encode(serial.to_bytes_be())
}

/// Reads subject, issuer, serial, fingerprint, validity and agency code of a certificate.
pub fn cert_info(cert_der: &[u8]) -> Result<CertInfo, PkiError> {
    let cert = parse_certificate(cert_der, "the certificate")?;
    Ok(CertInfo {
        subject: format_name(cert.subject()),
        issuer: format_name(cert.issuer()),
        serial: serial_hex(&cert.tbs_certificate.serial),
        fingerprint_sha256: fingerprint_sha256(cert_der),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        agency_code: agency_code_of_parsed(&cert)?,
    })
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    use super::*;
    use crate::pki::profile::AGENCY_CODE_OID;

    fn self_signed(uid: Option<&str>, cn: &str) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        if let Some(uid) = uid {
            params
                .distinguished_name
                .push(DnType::CustomDnType(AGENCY_CODE_OID.to_vec()), uid);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_the_uid_exactly() {
        let der = self_signed(Some("000.00.00.G22"), "Văn phòng Chính phủ");
        assert_eq!(
            agency_code_of(&der).unwrap().as_deref(),
            Some("000.00.00.G22")
        );
        let info = cert_info(&der).unwrap();
        assert_eq!(info.agency_code.as_deref(), Some("000.00.00.G22"));
        assert_eq!(info.subject, "CN=Văn phòng Chính phủ, UID=000.00.00.G22");
        assert_eq!(info.issuer, info.subject);
        assert_eq!(info.fingerprint_sha256, fingerprint_sha256(&der));
    }

    #[test]
    fn no_uid_means_no_agency() {
        let der = self_signed(None, "DocAxis development hub");
        assert_eq!(agency_code_of(&der).unwrap(), None);
    }

    #[test]
    fn several_uids_are_refused() {
        // rcgen keeps one value per attribute type, so build the subject with a UID and a
        // placeholder attribute whose OID differs in the last arc, then patch that arc.
        let placeholder_oid: Vec<u64> = vec![0, 9, 2342, 19_200_300, 100, 1, 2];
        let mut params = CertificateParams::default();
        params.distinguished_name.push(
            DnType::CustomDnType(AGENCY_CODE_OID.to_vec()),
            "000.00.00.G22",
        );
        params
            .distinguished_name
            .push(DnType::CustomDnType(placeholder_oid), "000.00.00.H41");
        let key = KeyPair::generate().unwrap();
        let mut der = params.self_signed(&key).unwrap().der().to_vec();
        // Content octets of OID 0.9.2342.19200300.100.1.2; UID's end in 0x01 instead. The name
        // appears twice (issuer and subject of a self-signed certificate): patch both.
        let needle = [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x02];
        let spots: Vec<usize> = der
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(at, _)| at)
            .collect();
        assert_eq!(spots.len(), 2);
        for at in spots {
            der[at + needle.len() - 1] = 0x01;
        }
        // The signature no longer matches, which does not matter for reading the subject.
        let err = agency_code_of(&der).unwrap_err();
        assert!(
            matches!(err, PkiError::AmbiguousAgencyCode { count: 2 }),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        let err = agency_code_of(b"not a certificate").unwrap_err();
        assert!(matches!(err, PkiError::BadCertificate { .. }), "{err}");
    }

    #[test]
    fn fingerprint_is_lowercase_sha256_hex() {
        assert_eq!(
            fingerprint_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
