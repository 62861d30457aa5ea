//! Creating a whole development PKI in one go: CA, empty CRL, hub and agency certificates.
//!
//! Invariants: an existing PKI is never replaced without `force`; everything is generated in
//! memory before the first file is touched; with `force`, agency files left from the old CA
//! (which would no longer chain to the new one) are removed and reported, and files that are
//! not part of the PKI layout (a README, say) are left alone.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::PkiError;
use super::authority::{Authority, CreatedCa, Validity};
use super::code::accept_agency_code;
use super::issue::{Issued, WrittenCert, write_leaf};
use super::profile::{self, KeyAlgorithm, LeafSubject};
use super::store::{self, PkiLayout, Secrecy};

/// An agency to certify: code and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyIdentity {
    /// Agency code (standard form), e.g. `000.00.00.G22`.
    pub code: String,
    /// Agency name, e.g. `Văn phòng Chính phủ`.
    pub name: String,
}

impl AgencyIdentity {
    /// An agency with this code and name.
    pub fn new(code: impl Into<String>, name: impl Into<String>) -> Self {
        AgencyIdentity {
            code: code.into(),
            name: name.into(),
        }
    }
}

/// The agencies of the committed development PKI.
pub fn development_agencies() -> Vec<AgencyIdentity> {
    vec![
        AgencyIdentity::new("000.00.00.G22", "Văn phòng Chính phủ"),
        AgencyIdentity::new("000.00.00.H41", "UBND Tỉnh Nghệ An"),
        AgencyIdentity::new("000.00.00.H14", "UBND Tỉnh Cao Bằng"),
    ]
}

/// Options of [`init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// Replace an existing PKI in the directory.
    pub force: bool,
    /// Agencies to certify (ECDSA P-256 keys).
    pub agencies: Vec<AgencyIdentity>,
    /// Start of validity of every certificate; default: one hour ago. The CA lasts 20 years
    /// from it, the hub and agency certificates 10 years. A date well in the past keeps a
    /// committed PKI usable on machines whose clocks disagree.
    pub valid_from: Option<OffsetDateTime>,
}

impl Default for InitOptions {
    /// No force; the three development agencies; validity from one hour ago.
    fn default() -> Self {
        InitOptions {
            force: false,
            agencies: development_agencies(),
            valid_from: None,
        }
    }
}

/// What [`init`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The PKI directory.
    pub dir: PathBuf,
    /// The CA certificate and key.
    pub ca: WrittenCert,
    /// The CRL file.
    pub crl_path: PathBuf,
    /// Its CRL number (1).
    pub crl_number: u64,
    /// The hub certificate and key.
    pub hub: WrittenCert,
    /// The agency certificates and keys.
    pub agencies: Vec<Issued>,
    /// Files of the previous PKI removed because of `force`.
    pub removed: Vec<PathBuf>,
}

/// Creates a development PKI in `dir`: `ca.pem`, `ca.key.pem`, `crl.pem` (empty, number 1),
/// `hub.pem`, `hub.key.pem` and `agencies/CODE.pem` + `agencies/CODE.key.pem` per agency.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<InitReport, PkiError> {
    let mut codes = BTreeSet::new();
    for agency in &opts.agencies {
        accept_agency_code(&agency.code, false)?;
        profile::check_agency_name(&agency.name)?;
        if !codes.insert(agency.code.as_str()) {
            return Err(PkiError::DuplicateAgency {
                code: agency.code.clone(),
            });
        }
    }
    let layout = PkiLayout::new(dir);
    let existing = existing_pki_files(&layout)?;
    if let Some((what, path)) = existing.first()
        && !opts.force
    {
        return Err(PkiError::PkiExists {
            what,
            path: path.clone(),
        });
    }

    // Generate everything before touching the disk.
    let now = profile::now();
    let CreatedCa {
        authority,
        cert_pem: ca_cert_pem,
        key_pem: ca_key_pem,
    } = Authority::create(now, opts.valid_from)?;
    let validity = Validity {
        not_before: opts.valid_from,
        not_after: None,
    };
    let (not_before, not_after) = authority.leaf_validity(validity, now)?;
    // The first CRL dates from the start of the PKI, like every certificate in it.
    let crl_number = 1;
    let crl_pem = authority.sign_crl(crl_number, Vec::new(), not_before)?;
    let hub = authority.sign_leaf(
        LeafSubject::Hub,
        KeyAlgorithm::EcdsaP256,
        not_before,
        not_after,
    )?;
    let mut agency_leaves = Vec::with_capacity(opts.agencies.len());
    for agency in &opts.agencies {
        let subject = LeafSubject::Agency {
            code: &agency.code,
            name: &agency.name,
        };
        agency_leaves.push(authority.sign_leaf(
            subject,
            KeyAlgorithm::EcdsaP256,
            not_before,
            not_after,
        )?);
    }

    // Remove what the new PKI does not overwrite: agency files of the old CA.
    let keep: BTreeSet<PathBuf> = opts
        .agencies
        .iter()
        .flat_map(|a| [layout.agency_cert(&a.code), layout.agency_key(&a.code)])
        .collect();
    let mut removed = Vec::new();
    for (_, path) in existing {
        let top_level = path.parent() == Some(layout.dir());
        if !top_level && !keep.contains(&path) {
            fs::remove_file(&path).map_err(|e| PkiError::io("remove", &path, e))?;
            removed.push(path);
        }
    }

    store::write_atomic(&layout.ca_key(), ca_key_pem.as_bytes(), Secrecy::Secret)?;
    store::write_atomic(&layout.ca_cert(), ca_cert_pem.as_bytes(), Secrecy::Public)?;
    store::write_atomic(&layout.crl(), crl_pem.as_bytes(), Secrecy::Public)?;
    let ca = WrittenCert::new(
        layout.ca_cert(),
        layout.ca_key(),
        authority.cert_der().clone(),
    )?;
    let hub = write_leaf(hub, layout.hub_cert(), layout.hub_key())?;
    let mut agencies = Vec::with_capacity(opts.agencies.len());
    for (agency, leaf) in opts.agencies.iter().zip(agency_leaves) {
        let cert = write_leaf(
            leaf,
            layout.agency_cert(&agency.code),
            layout.agency_key(&agency.code),
        )?;
        agencies.push(Issued {
            code: agency.code.clone(),
            name: agency.name.clone(),
            key: KeyAlgorithm::EcdsaP256,
            cert,
            replaced: None,
        });
    }
    Ok(InitReport {
        dir: dir.to_owned(),
        ca,
        crl_path: layout.crl(),
        crl_number,
        hub,
        agencies,
        removed,
    })
}

/// Files of an existing PKI in the directory, CA first, with a label for messages.
fn existing_pki_files(layout: &PkiLayout) -> Result<Vec<(&'static str, PathBuf)>, PkiError> {
    let mut found: Vec<(&'static str, PathBuf)> = [
        ("CA certificate", layout.ca_cert()),
        ("CA private key", layout.ca_key()),
        ("CRL", layout.crl()),
        ("hub certificate", layout.hub_cert()),
        ("hub private key", layout.hub_key()),
    ]
    .into_iter()
    .filter(|(_, path)| store::exists(path))
    .collect();
    let agencies = layout.agencies_dir();
    let entries = match fs::read_dir(&agencies) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(PkiError::io("list", &agencies, e)),
    };
    let mut agency_files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| PkiError::io("list", &agencies, e))?;
        let path = entry.path();
        let is_file = entry
            .file_type()
            .map_err(|e| PkiError::io("inspect", &path, e))?
            .is_file();
        if is_file && path.extension().is_some_and(|ext| ext == "pem") {
            agency_files.push(path);
        }
    }
    agency_files.sort();
    found.extend(agency_files.into_iter().map(|p| ("agency file", p)));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_agencies_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let opts = InitOptions {
            force: false,
            valid_from: None,
            agencies: vec![
                AgencyIdentity::new("000.00.00.G22", "A"),
                AgencyIdentity::new("000.00.00.G22", "B"),
            ],
        };
        let err = init(dir.path(), &opts).unwrap_err();
        assert!(matches!(err, PkiError::DuplicateAgency { .. }), "{err}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }
}
