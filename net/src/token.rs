//! The bearer token of a local API — the node's clerk API (`data_dir/api.token`) and the
//! hub's admin API (`data_dir/admin.token`): generated once, read by the tools beside it, and
//! checked on every request ([`bearer`], [`matches`]).
//!
//! Invariants:
//! - The token is 32 random bytes from the operating system's generator, written as 64
//!   lower-case hex digits.
//! - A new token file is created exclusively (never overwriting one that appeared meanwhile)
//!   with mode 0600 on Unix, so only the node's own user can read it.
//! - An existing token file is read, never replaced; an empty or malformed one is an error
//!   naming the file, not a silent regeneration (clerk tools would stop working unannounced).
//! - Tokens are compared in constant time.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the API token file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the API token file {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the API token file {path} does not hold a token (expected 64 hex digits); delete it to \
         have the node make a new one"
    )]
    Malformed { path: PathBuf },
    #[error("the operating system's random generator failed")]
    Random,
}

/// Reads the token at `path`, creating it first if the file does not exist.
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    match read(path) {
        Ok(token) => Ok(token),
        Err(TokenError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            create(path)
        }
        Err(e) => Err(e),
    }
}

/// Reads an existing token file.
pub fn read(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.len() < 32 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(TokenError::Malformed {
            path: path.to_owned(),
        });
    }
    Ok(token.to_string())
}

fn create(path: &Path) -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::Random)?;
    let token = hex::encode(bytes);
    let create_err = |source| TokenError::Create {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(create_err)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(f) => f,
        // Another process created it between our read and our create: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return read(path),
        Err(e) => return Err(create_err(e)),
    };
    file.write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(create_err)?;
    Ok(token)
}

/// The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive
/// (RFC 9110 §11.1): `bearer` and `BEARER` are the same scheme.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim_start();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Constant-time comparison of a presented token with the expected one.
pub fn matches(presented: &str, expected: &str) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(presented.as_bytes(), expected.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_private_mode_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/api.token");
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(load_or_create(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = load_or_create(&dir.path().join("other.token")).unwrap();
        assert_ne!(other, first, "tokens are random");
    }

    #[test]
    fn a_damaged_token_file_is_an_error_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.token");
        std::fs::write(&path, "\n").unwrap();
        let err = load_or_create(&path).unwrap_err();
        assert!(matches!(err, TokenError::Malformed { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "\n");
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        let with = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert_eq!(bearer(&with("Bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("bearer abc")), Some("abc"));
        assert_eq!(bearer(&with("BEARER  abc ")), Some("abc"));
        assert_eq!(bearer(&with("Basic abc")), None);
        assert_eq!(bearer(&with("Bearer")), None);
        assert_eq!(bearer(&with("Bearer ")), None);
        assert_eq!(bearer(&axum::http::HeaderMap::new()), None);
    }

    #[test]
    fn comparison() {
        assert!(matches("abc", "abc"));
        assert!(!matches("abd", "abc"));
        assert!(!matches("ab", "abc"));
    }
}
