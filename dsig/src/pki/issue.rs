//! Issuing (and rotating) an agency certificate under the CA of a PKI directory.
//!
//! Invariants: an agency's current certificate and key are never overwritten silently — without
//! `replace` the request is refused; with `replace` the old pair is first renamed to
//! `CODE.SERIAL.pem` / `CODE.SERIAL.key.pem` (never clobbering an existing file), so both the
//! old and the new certificate remain usable during a rotation. The new key and certificate are
//! generated before anything on disk changes.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use super::PkiError;
use super::authority::{Authority, SignedLeaf, Validity};
use super::code::accept_agency_code;
use super::inspect::{CertInfo, cert_info, parse_certificate, serial_hex};
use super::profile::{self, KeyAlgorithm, LeafSubject};
use super::store::{self, PkiLayout, Secrecy};

/// What to issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// Agency code, written into the subject's UID attribute, e.g. `000.00.00.G22`.
    pub code: String,
    /// Agency name, written into CN and O, e.g. `Văn phòng Chính phủ`.
    pub name: String,
    /// Key type of the new certificate.
    pub key: KeyAlgorithm,
    /// Start of validity; default: one hour ago.
    pub not_before: Option<OffsetDateTime>,
    /// End of validity; default: ten years after the start, cut at the CA's expiry.
    pub not_after: Option<OffsetDateTime>,
    /// Accept a code that does not have the standard form `NNN.NN.NN.XNN`.
    pub allow_nonstandard_code: bool,
    /// Replace an existing certificate, keeping the old one as `CODE.SERIAL.pem`.
    pub replace: bool,
}

impl IssueRequest {
    /// A request with the defaults: ECDSA P-256, default validity, standard code, no replace.
    pub fn new(code: impl Into<String>, name: impl Into<String>) -> Self {
        IssueRequest {
            code: code.into(),
            name: name.into(),
            key: KeyAlgorithm::default(),
            not_before: None,
            not_after: None,
            allow_nonstandard_code: false,
            replace: false,
        }
    }
}

/// A certificate and key written to disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenCert {
    /// The certificate file (PEM).
    pub cert_path: PathBuf,
    /// The private key file (PKCS#8 PEM, mode 0600).
    pub key_path: PathBuf,
    /// Subject, serial, fingerprint, validity.
    pub info: CertInfo,
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
}

impl WrittenCert {
    /// Describes a certificate just written.
    pub(crate) fn new(
        cert_path: PathBuf,
        key_path: PathBuf,
        der: CertificateDer<'static>,
    ) -> Result<Self, PkiError> {
        Ok(WrittenCert {
            info: cert_info(&der)?,
            cert_path,
            key_path,
            der,
        })
    }
}

/// An agency certificate that was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The agency code.
    pub code: String,
    /// The agency name.
    pub name: String,
    /// Key type.
    pub key: KeyAlgorithm,
    /// The files written and what they hold.
    pub cert: WrittenCert,
    /// The certificate this one replaced, if any.
    pub replaced: Option<Retired>,
}

/// A replaced certificate, kept under its serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    /// Serial of the replaced certificate, lower-case hex.
    pub serial: String,
    /// Where the replaced certificate now is.
    pub cert_path: PathBuf,
    /// Where its key now is (absent if the key file was missing).
    pub key_path: Option<PathBuf>,
}

/// Issues a certificate for an agency under the CA in `dir`, writing
/// `dir/agencies/CODE.pem` and `dir/agencies/CODE.key.pem`.
pub fn issue(dir: &Path, req: &IssueRequest) -> Result<Issued, PkiError> {
    accept_agency_code(&req.code, req.allow_nonstandard_code)?;
    profile::check_agency_name(&req.name)?;
    let layout = PkiLayout::new(dir);
    let now = profile::now();
    let authority = Authority::load(&layout, now)?;

    let cert_path = layout.agency_cert(&req.code);
    let key_path = layout.agency_key(&req.code);
    let has_cert = store::exists(&cert_path);
    let has_key = store::exists(&key_path);
    if !req.replace {
        if has_cert {
            return Err(agency_exists(&req.code, "certificate", cert_path));
        }
        if has_key {
            return Err(agency_exists(&req.code, "private key", key_path));
        }
    } else if has_key && !has_cert {
        return Err(PkiError::WouldOverwrite {
            what: "private key that has no certificate beside it",
            path: key_path,
        });
    }

    let validity = Validity {
        not_before: req.not_before,
        not_after: req.not_after,
    };
    let (not_before, not_after) = authority.leaf_validity(validity, now)?;
    let subject = LeafSubject::Agency {
        code: &req.code,
        name: &req.name,
    };
    let leaf = authority.sign_leaf(subject, req.key, not_before, not_after)?;

    let replaced = if has_cert {
        Some(retire(&layout, &req.code, &cert_path, &key_path, has_key)?)
    } else {
        None
    };
    let cert = write_leaf(leaf, cert_path, key_path)?;
    Ok(Issued {
        code: req.code.clone(),
        name: req.name.clone(),
        key: req.key,
        cert,
        replaced,
    })
}

fn agency_exists(code: &str, what: &'static str, path: PathBuf) -> PkiError {
    PkiError::AgencyExists {
        code: code.to_owned(),
        what,
        path,
    }
}

/// Moves the current certificate (and key) of an agency aside, named by serial.
fn retire(
    layout: &PkiLayout,
    code: &str,
    cert_path: &Path,
    key_path: &Path,
    has_key: bool,
) -> Result<Retired, PkiError> {
    let old = store::load_cert_pem(cert_path)?;
    let parsed = parse_certificate(&old, &cert_path.display().to_string())?;
    let serial = serial_hex(&parsed.tbs_certificate.serial);
    let retired_cert = layout.retired_agency_cert(code, &serial);
    let retired_key = layout.retired_agency_key(code, &serial);
    if has_key && store::exists(&retired_key) {
        return Err(PkiError::WouldOverwrite {
            what: "retired private key",
            path: retired_key,
        });
    }
    store::rename_new(cert_path, &retired_cert, "retired certificate")?;
    let key_path = if has_key {
        store::rename_new(key_path, &retired_key, "retired private key")?;
        Some(retired_key)
    } else {
        None
    };
    Ok(Retired {
        serial,
        cert_path: retired_cert,
        key_path,
    })
}

/// Writes a signed leaf: key first (so a certificate file never exists without its key).
pub(crate) fn write_leaf(
    leaf: SignedLeaf,
    cert_path: PathBuf,
    key_path: PathBuf,
) -> Result<WrittenCert, PkiError> {
    store::write_atomic(&key_path, leaf.key_pem.as_bytes(), Secrecy::Secret)?;
    store::write_atomic(&cert_path, leaf.cert_pem.as_bytes(), Secrecy::Public)?;
    WrittenCert::new(cert_path, key_path, leaf.cert_der)
}
