//! Revoking an agency's certificate, and reading the CRL back.
//!
//! State: `crl.pem` itself is the only record of revocations. `revoke` reads it with
//! x509-parser, checks that the CA signed it, copies every entry (serial, revocation time,
//! reason, invalidity date), appends the new one and re-signs the list with the CRL number
//! incremented. Keeping no second file means the list served to verifiers and the list the
//! tool extends can never disagree.
//!
//! Invariants: only a certificate the CA issued is revoked; a serial is listed at most once;
//! the CRL number strictly increases.

use std::path::{Path, PathBuf};

use rcgen::{RevocationReason, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::PkiError;
use super::authority::{Authority, load_issued_cert};
use super::code::check_file_safe_code;
use super::inspect::{parse_certificate, serial_hex};
use super::profile;
use super::store::{self, PkiLayout, Secrecy};
use super::verify::verify_crl_issued_by;

/// Reason recorded for revocations made by [`revoke`].
pub const REVOCATION_REASON: &str = "keyCompromise";

/// One entry of a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Serial of the revoked certificate, lower-case hex.
    pub serial: String,
    /// When the CA revoked it.
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 reason name (`keyCompromise`, …), if the entry carries one.
    pub reason: Option<&'static str>,
    /// When the key is known or suspected to have been compromised, if recorded.
    pub invalidity_date: Option<OffsetDateTime>,
}

/// Contents of a CRL whose signature was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlInfo {
    /// CRL number.
    pub number: u64,
    /// When the CRL was issued.
    pub this_update: OffsetDateTime,
    /// When the next CRL is due.
    pub next_update: Option<OffsetDateTime>,
    /// Revoked certificates, in CRL order.
    pub entries: Vec<RevokedEntry>,
}

impl CrlInfo {
    /// True when the CRL lists the serial (lower-case hex, no leading zero bytes).
    pub fn lists(&self, serial: &str) -> bool {
        self.entries.iter().any(|e| e.serial == serial)
    }
}

/// What [`revoke`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The agency code.
    pub code: String,
    /// Serial of the certificate revoked, lower-case hex.
    pub serial: String,
    /// The CRL file rewritten.
    pub crl_path: PathBuf,
    /// The new CRL's number.
    pub crl_number: u64,
    /// Every serial now on the CRL, in CRL order (earlier revocations first).
    pub revoked_serials: Vec<String>,
}

/// Reads a DER CRL after checking that `ca_der` issued and signed it.
pub fn read_crl(crl_der: &[u8], ca_der: &[u8]) -> Result<CrlInfo, PkiError> {
    verify_crl_issued_by(crl_der, ca_der)?;
    let bad = |reason: String| PkiError::BadCrl {
        what: "the CRL".to_owned(),
        reason,
    };
    let (rest, crl) =
        CertificateRevocationList::from_der(crl_der).map_err(|e| bad(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad(format!(
            "{} unexpected bytes after the CRL",
            rest.len()
        )));
    }
    let number = crl
        .crl_number()
        .ok_or_else(|| bad("it has no CRL number".to_owned()))?;
    let number =
        u64::try_from(number).map_err(|_| bad(format!("CRL number {number} is too large")))?;
    let mut entries = Vec::new();
    for revoked in crl.iter_revoked_certificates() {
        let serial = serial_hex(revoked.serial());
        let reason = match revoked.reason_code() {
            None => None,
            Some((_, code)) => Some(reason_name(code.0).ok_or_else(|| {
                bad(format!(
                    "serial {serial} has the undefined reason code {}",
                    code.0
                ))
            })?),
        };
        entries.push(RevokedEntry {
            serial,
            revoked_at: revoked.revocation_date.to_datetime(),
            reason,
            invalidity_date: revoked.invalidity_date().map(|(_, t)| t.to_datetime()),
        });
    }
    Ok(CrlInfo {
        number,
        this_update: crl.last_update().to_datetime(),
        next_update: crl.next_update().map(|t| t.to_datetime()),
        entries,
    })
}

/// Revokes the current certificate of agency `code` (`dir/agencies/CODE.pem`): its serial is
/// added to `dir/crl.pem` with reason keyCompromise, earlier entries kept, CRL number + 1.
pub fn revoke(dir: &Path, code: &str) -> Result<Revoked, PkiError> {
    check_file_safe_code(code)?;
    let layout = PkiLayout::new(dir);
    let now = profile::now();
    let authority = Authority::load(&layout, now)?;

    let cert_path = layout.agency_cert(code);
    if !store::exists(&cert_path) {
        return Err(PkiError::AgencyMissing {
            code: code.to_owned(),
            path: cert_path,
        });
    }
    let cert_der = load_issued_cert(&authority, &cert_path)?;
    let serial = serial_hex(
        &parse_certificate(&cert_der, &cert_path.display().to_string())?
            .tbs_certificate
            .serial,
    );

    let crl_path = layout.crl();
    let crl_der = store::load_crl_pem(&crl_path)?;
    let current = read_crl(&crl_der, authority.cert_der()).map_err(|e| name_crl(e, &crl_path))?;
    if current.lists(&serial) {
        return Err(PkiError::AlreadyRevoked {
            code: code.to_owned(),
            serial,
            crl_path,
        });
    }
    let crl_number = current
        .number
        .checked_add(1)
        .ok_or_else(|| PkiError::BadCrl {
            what: crl_path.display().to_string(),
            reason: "the CRL number cannot be incremented".to_owned(),
        })?;

    let mut entries = current
        .entries
        .iter()
        .map(to_params)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| name_crl(e, &crl_path))?;
    entries.push(RevokedCertParams {
        serial_number: serial_number(&serial).map_err(|e| name_crl(e, &crl_path))?,
        revocation_time: now,
        reason_code: Some(RevocationReason::KeyCompromise),
        invalidity_date: None,
    });
    let pem = authority.sign_crl(crl_number, entries, now)?;
    store::write_atomic(&crl_path, pem.as_bytes(), Secrecy::Public)?;

    let mut revoked_serials: Vec<String> = current.entries.into_iter().map(|e| e.serial).collect();
    revoked_serials.push(serial.clone());
    Ok(Revoked {
        code: code.to_owned(),
        serial,
        crl_path,
        crl_number,
        revoked_serials,
    })
}

/// Puts the CRL file's name into errors that say only "the CRL".
fn name_crl(error: PkiError, path: &Path) -> PkiError {
    match error {
        PkiError::BadCrl { reason, .. } => PkiError::BadCrl {
            what: path.display().to_string(),
            reason,
        },
        PkiError::NotSignedBy { issuer, reason, .. } => PkiError::NotSignedBy {
            what: path.display().to_string(),
            issuer,
            reason,
        },
        other => other,
    }
}

fn to_params(entry: &RevokedEntry) -> Result<RevokedCertParams, PkiError> {
    Ok(RevokedCertParams {
        serial_number: serial_number(&entry.serial)?,
        revocation_time: entry.revoked_at,
        reason_code: entry.reason.and_then(reason_from_name),
        invalidity_date: entry.invalidity_date,
    })
}

fn serial_number(hex_serial: &str) -> Result<SerialNumber, PkiError> {
    let bytes = hex::decode(hex_serial).map_err(|e| PkiError::BadCrl {
        what: "the CRL".to_owned(),
        reason: format!("serial {hex_serial:?} is not hex: {e}"),
    })?;
    Ok(SerialNumber::from(bytes))
}

/// RFC 5280 reason codes with their ASN.1 names, in the order of the standard.
const REASONS: [(u8, &str, RevocationReason); 10] = [
    (0, "unspecified", RevocationReason::Unspecified),
    (1, "keyCompromise", RevocationReason::KeyCompromise),
    (2, "cACompromise", RevocationReason::CaCompromise),
    (
        3,
        "affiliationChanged",
        RevocationReason::AffiliationChanged,
    ),
    (4, "superseded", RevocationReason::Superseded),
    (
        5,
        "cessationOfOperation",
        RevocationReason::CessationOfOperation,
    ),
    (6, "certificateHold", RevocationReason::CertificateHold),
    (8, "removeFromCRL", RevocationReason::RemoveFromCrl),
    (
        9,
        "privilegeWithdrawn",
        RevocationReason::PrivilegeWithdrawn,
    ),
    (10, "aACompromise", RevocationReason::AaCompromise),
];

fn reason_name(code: u8) -> Option<&'static str> {
    REASONS.iter().find(|r| r.0 == code).map(|r| r.1)
}

fn reason_from_name(name: &str) -> Option<RevocationReason> {
    REASONS.iter().find(|r| r.1 == name).map(|r| r.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_round_trip() {
        for (code, name, reason) in REASONS {
            assert_eq!(reason_name(code), Some(name));
            assert_eq!(reason_from_name(name), Some(reason));
            assert_eq!(reason as u8, code);
        }
        assert_eq!(reason_name(7), None);
        assert_eq!(REVOCATION_REASON, reason_name(1).unwrap());
    }
}
