//! Where the files of a PKI directory live, and how they are read and written.
//!
//! Layout of a PKI directory `DIR`:
//!
//! | file | content |
//! |------|---------|
//! | `DIR/ca.pem`, `DIR/ca.key.pem` | CA certificate and its private key |
//! | `DIR/crl.pem` | the CA's current CRL (the only record of revocations) |
//! | `DIR/hub.pem`, `DIR/hub.key.pem` | hub certificate and key |
//! | `DIR/agencies/CODE.pem`, `DIR/agencies/CODE.key.pem` | an agency's current certificate and key |
//! | `DIR/agencies/CODE.SERIAL.pem`, `DIR/agencies/CODE.SERIAL.key.pem` | a certificate replaced by rotation, kept |
//!
//! Invariants: every file is written to a temporary sibling and renamed into place, so a reader
//! never sees half a file; private keys are PKCS#8 PEM created with mode 0600 on Unix (the
//! mode is set when the file is created, never loosened afterwards).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use super::PkiError;

/// File names inside a PKI directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiLayout {
    dir: PathBuf,
}

impl PkiLayout {
    /// The layout of the PKI directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiLayout { dir: dir.into() }
    }

    /// The PKI directory itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/ca.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `DIR/ca.key.pem`.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key.pem")
    }

    /// `DIR/crl.pem`.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    /// `DIR/hub.pem`.
    pub fn hub_cert(&self) -> PathBuf {
        self.dir.join("hub.pem")
    }

    /// `DIR/hub.key.pem`.
    pub fn hub_key(&self) -> PathBuf {
        self.dir.join("hub.key.pem")
    }

    /// `DIR/agencies`.
    pub fn agencies_dir(&self) -> PathBuf {
        self.dir.join("agencies")
    }

    /// `DIR/agencies/CODE.pem`: the agency's current certificate.
    pub fn agency_cert(&self, code: &str) -> PathBuf {
        self.agencies_dir().join(format!("{code}.pem"))
    }

    /// `DIR/agencies/CODE.key.pem`: the agency's current private key.
    pub fn agency_key(&self, code: &str) -> PathBuf {
        self.agencies_dir().join(format!("{code}.key.pem"))
    }

    /// `DIR/agencies/CODE.SERIAL.pem`: a replaced certificate, kept for rotation.
    pub fn retired_agency_cert(&self, code: &str, serial: &str) -> PathBuf {
        self.agencies_dir().join(format!("{code}.{serial}.pem"))
    }

    /// `DIR/agencies/CODE.SERIAL.key.pem`: the key of a replaced certificate.
    pub fn retired_agency_key(&self, code: &str, serial: &str) -> PathBuf {
        self.agencies_dir().join(format!("{code}.{serial}.key.pem"))
    }
}

/// Reads every certificate of a PEM file, in file order (leaf first for a chain file).
/// Sections other than `CERTIFICATE` are skipped; a file without any certificate is an error.
pub fn load_cert_chain_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let bytes = read(path)?;
    let certs: Vec<CertificateDer<'static>> = crate::pem::blocks(&bytes, "CERTIFICATE")
        .map_err(|e| pem_error(path, &e))?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    if certs.is_empty() {
        return Err(PkiError::Pem {
            path: path.to_owned(),
            reason: "no CERTIFICATE section found".to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the single certificate of a PEM file; a file with several certificates is an error.
pub fn load_cert_pem(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let mut certs = load_cert_chain_pem(path)?;
    match certs.len() {
        1 => Ok(certs.remove(0)),
        n => Err(PkiError::Pem {
            path: path.to_owned(),
            reason: format!("expected one certificate, found {n}"),
        }),
    }
}

/// Reads the first private key of a PEM file (`PRIVATE KEY` = PKCS#8, also `EC PRIVATE KEY`
/// and `RSA PRIVATE KEY`); the DER bytes are in [`PrivateKeyDer::secret_der`].
pub fn load_private_key_pem(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let bytes = read(path)?;
    let keys = crate::pem::private_keys(&bytes).map_err(|e| pem_error(path, &e))?;
    let no_key = || PkiError::Pem {
        path: path.to_owned(),
        reason: "no PRIVATE KEY section found".to_owned(),
    };
    let key = keys.into_iter().next().ok_or_else(no_key)?;
    match key.label.as_str() {
        "PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs8(key.der.into())),
        "EC PRIVATE KEY" => Ok(PrivateKeyDer::Sec1(key.der.into())),
        "RSA PRIVATE KEY" => Ok(PrivateKeyDer::Pkcs1(key.der.into())),
        other => Err(PkiError::Pem {
            path: path.to_owned(),
            reason: format!("'{other}' keys are not supported: use an unencrypted PKCS#8 key"),
        }),
    }
}

/// Reads the CRL of a PEM file (`X509 CRL` section).
pub fn load_crl_pem(path: &Path) -> Result<CertificateRevocationListDer<'static>, PkiError> {
    let bytes = read(path)?;
    crate::pem::blocks(&bytes, "X509 CRL")
        .map_err(|e| pem_error(path, &e))?
        .into_iter()
        .next()
        .map(CertificateRevocationListDer::from)
        .ok_or_else(|| PkiError::Pem {
            path: path.to_owned(),
            reason: "no X509 CRL section found".to_owned(),
        })
}

fn pem_error(path: &Path, error: &crate::pem::PemError) -> PkiError {
    PkiError::Pem {
        path: path.to_owned(),
        reason: error.to_string(),
    }
}

/// Reads a whole file.
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::io("read", path, e))
}

/// True when `path` exists (a dangling symbolic link counts as existing: it is not ours to
/// replace silently).
pub(crate) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Whether a written file is public (certificate, CRL) or secret (private key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrecy {
    /// Readable by everyone the umask allows.
    Public,
    /// Mode 0600 on Unix.
    Secret,
}

/// Writes `contents` to `path` atomically (temporary sibling, then rename), creating the parent
/// directory if needed. Secret files are created with mode 0600 on Unix.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<(), PkiError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| PkiError::io("create the directory", &parent, e))?;
    let file_name = path.file_name().map_or_else(
        || "pki-file".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    let tmp = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = write_new(&tmp, contents, secrecy).and_then(|()| {
        fs::rename(&tmp, path).map_err(|e| PkiError::io("rename into place", path, e))
    });
    if result.is_err() {
        // Best effort: the error being reported is the one that matters.
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn write_new(path: &Path, contents: &[u8], secrecy: Secrecy) -> Result<(), PkiError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(match secrecy {
            Secrecy::Secret => 0o600,
            Secrecy::Public => 0o644,
        });
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    let mut file = options
        .open(path)
        .map_err(|e| PkiError::io("create", path, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| PkiError::io("write", path, e))
}

/// Renames `from` to `to`, refusing to replace an existing `to`.
pub(crate) fn rename_new(from: &Path, to: &Path, what: &'static str) -> Result<(), PkiError> {
    if exists(to) {
        return Err(PkiError::WouldOverwrite {
            what,
            path: to.to_owned(),
        });
    }
    fs::rename(from, to).map_err(|e| PkiError::io("rename", from, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names() {
        let l = PkiLayout::new("certs");
        assert_eq!(l.ca_cert(), Path::new("certs/ca.pem"));
        assert_eq!(l.ca_key(), Path::new("certs/ca.key.pem"));
        assert_eq!(l.crl(), Path::new("certs/crl.pem"));
        assert_eq!(l.hub_cert(), Path::new("certs/hub.pem"));
        assert_eq!(l.hub_key(), Path::new("certs/hub.key.pem"));
        assert_eq!(
            l.agency_cert("000.00.00.G22"),
            Path::new("certs/agencies/000.00.00.G22.pem")
        );
        assert_eq!(
            l.agency_key("000.00.00.G22"),
            Path::new("certs/agencies/000.00.00.G22.key.pem")
        );
        assert_eq!(
            l.retired_agency_cert("000.00.00.G22", "4a0b"),
            Path::new("certs/agencies/000.00.00.G22.4a0b.pem")
        );
        assert_eq!(
            l.retired_agency_key("000.00.00.G22", "4a0b"),
            Path::new("certs/agencies/000.00.00.G22.4a0b.key.pem")
        );
    }

    #[cfg(unix)]
    #[test]
    fn secrets_are_0600_and_replaced_atomically() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/k.pem");
        write_atomic(&path, b"one", Secrecy::Secret).unwrap();
        write_atomic(&path, b"two", Secrecy::Secret).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("k.pem")]);
    }

    #[test]
    fn pem_loading_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        fs::write(&empty, "nothing here\n").unwrap();
        let err = load_cert_chain_pem(&empty).unwrap_err();
        assert!(err.to_string().contains("empty.pem"), "{err}");
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        let err = load_private_key_pem(&empty).unwrap_err();
        assert!(err.to_string().contains("no PRIVATE KEY"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = load_cert_pem(&missing).unwrap_err();
        assert!(matches!(err, PkiError::Io { .. }), "{err}");
        let broken = dir.path().join("broken.pem");
        fs::write(&broken, "-----BEGIN CERTIFICATE-----\n!!!!\n").unwrap();
        let err = load_cert_chain_pem(&broken).unwrap_err();
        assert!(err.to_string().contains("malformed PEM"), "{err}");
    }

    #[test]
    fn rename_new_refuses_to_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        fs::write(&a, "a").unwrap();
        fs::write(&b, "b").unwrap();
        let err = rename_new(&a, &b, "retired certificate").unwrap_err();
        assert!(matches!(err, PkiError::WouldOverwrite { .. }), "{err}");
        assert_eq!(fs::read(&b).unwrap(), b"b");
    }
}
