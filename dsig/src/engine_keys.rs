//! The XML-DSig engine's public keys, read once per signer certificate.
//!
//! Owns: turning a signer certificate (DER) into the bare public key bergshamra verifies with,
//! and remembering that key for the next packet from the same signer. Reading it (an X.509
//! parse and an EC point or RSA key decode) cost about as much as a quarter of the ECDSA
//! verification itself, for every packet and every hub receipt.
//!
//! Invariants:
//! - A key is looked up by the SHA-256 of the exact certificate bytes, so a different
//!   certificate never finds another's key.
//! - The key carries no certificate chain: chain validation is DocAxis's (`trust`), and the
//!   engine gets nothing else to consult.
//! - Only keys that loaded are kept; a certificate that fails is read (and fails) again.
//! - Bounded: when [`CAPACITY`] keys are kept, the cache is emptied before the next is added.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use aws_lc_rs::digest;
use bergshamra::keys::Key;

/// Most keys kept (one per signing certificate in practice: agencies and the hub).
const CAPACITY: usize = 1024;

fn cache() -> &'static Mutex<HashMap<[u8; 32], Key>> {
    static CACHE: OnceLock<Mutex<HashMap<[u8; 32], Key>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn fingerprint(der: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
    out
}

/// The public key of the certificate `der`, for bergshamra, without its chain.
pub(crate) fn public_key_of(der: &[u8]) -> Result<Key, String> {
    let id = fingerprint(der);
    if let Some(key) = cache().lock().ok().and_then(|keys| keys.get(&id).cloned()) {
        return Ok(key);
    }
    let mut key = bergshamra::keys::loader::load_x509_cert_der(der)
        .map_err(|e| format!("its public key cannot be loaded: {e}"))?;
    key.x509_chain.clear();
    if let Ok(mut keys) = cache().lock() {
        if keys.len() >= CAPACITY {
            keys.clear();
        }
        keys.insert(id, key.clone());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{Ca, KeyKind};

    fn cert(kind: KeyKind, code: &str) -> Vec<u8> {
        Ca::root("Engine key test CA")
            .leaf(code, "Engine key test agency", kind)
            .cert_der
    }

    fn public_der(key: &Key) -> Vec<u8> {
        key.data.to_spki_der().expect("public key encodes")
    }

    #[test]
    fn a_kept_key_is_the_certificate_s_own_and_carries_no_chain() {
        for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
            let der = cert(kind, "000.00.31.H01");
            let first = public_key_of(&der).unwrap();
            let again = public_key_of(&der).unwrap();
            let fresh = bergshamra::keys::loader::load_x509_cert_der(&der).unwrap();
            assert_eq!(public_der(&first), public_der(&fresh));
            assert_eq!(public_der(&again), public_der(&fresh));
            assert!(first.x509_chain.is_empty() && again.x509_chain.is_empty());
        }
    }

    #[test]
    fn each_certificate_finds_its_own_key() {
        let a = cert(KeyKind::EcP256, "000.00.32.H01");
        let b = cert(KeyKind::EcP256, "000.00.33.H01");
        let (ka, kb) = (public_key_of(&a).unwrap(), public_key_of(&b).unwrap());
        assert_ne!(public_der(&ka), public_der(&kb));
        assert_eq!(public_der(&public_key_of(&a).unwrap()), public_der(&ka));
    }

    #[test]
    fn a_certificate_that_does_not_load_is_refused_every_time() {
        for _ in 0..2 {
            let err = public_key_of(b"not a certificate").unwrap_err();
            assert!(err.contains("cannot be loaded"), "{err}");
        }
    }
}
