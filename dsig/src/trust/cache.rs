//! A cache of validated signer chains: the same agency signs thousands of packets with the
//! same certificate, and re-validating its chain (parsing, the CA's signature, the CRL's
//! signature) for each is wasted work.
//!
//! Invariants:
//! - Only successes are cached, keyed by the exact `KeyInfo` certificate set (in order), so a
//!   packet carrying other path-building material is validated afresh.
//! - An entry is used only inside the window in which its validation cannot change: every
//!   chain certificate valid (max notBefore .. min notAfter) and every configured CRL current
//!   (before the earliest nextUpdate). A chain certificate listed in a CRL with a revocation
//!   date still to come is never cached (it will become revoked).
//! - The trust store is immutable, so its anchors and CRLs cannot change under an entry; a
//!   cloned store starts with an empty cache. The cache is bounded: when full it is emptied.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;

use super::ValidatedChain;
use crate::certs::{CertInfo, CrlInfo};

/// Most entries kept (one per signing certificate in practice).
const CAPACITY: usize = 4096;

#[derive(Debug, Clone)]
struct Entry {
    chain: ValidatedChain,
    from: OffsetDateTime,
    until: OffsetDateTime,
}

/// Validated chains by the SHA-256 of their `KeyInfo` certificates.
#[derive(Debug, Default)]
pub(super) struct ChainCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl Clone for ChainCache {
    fn clone(&self) -> Self {
        ChainCache::default()
    }
}

/// The cache key of a `KeyInfo` certificate set (lengths included, so boundaries count).
pub(super) fn key_of(certs: &[Vec<u8>]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for der in certs {
        ctx.update(&(der.len() as u64).to_be_bytes());
        ctx.update(der);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The window in which `chain` stays valid against `crls`, or `None` when it must not be
/// cached (a chain certificate has a revocation still to come).
pub(super) fn window(
    chain: &[&CertInfo],
    crls: &[CrlInfo],
    at: OffsetDateTime,
) -> Option<(OffsetDateTime, OffsetDateTime)> {
    let from = chain.iter().map(|c| c.not_before).max()?;
    let mut until = chain.iter().map(|c| c.not_after).min()?;
    for crl in crls {
        until = until.min(crl.next_update?);
        for cert in chain {
            if crl.issuer_raw == cert.issuer_raw
                && crl
                    .revoked
                    .iter()
                    .any(|(serial, date)| *serial == cert.serial_raw && *date > at)
            {
                return None;
            }
        }
    }
    Some((from, until))
}

impl ChainCache {
    /// The cached chain for `key`, if valid at `at`.
    pub(super) fn get(&self, key: &[u8; 32], at: OffsetDateTime) -> Option<ValidatedChain> {
        let entries = self.entries.lock().ok()?;
        let e = entries.get(key)?;
        (e.from <= at && at < e.until).then(|| e.chain.clone())
    }

    /// How many chains are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Keeps `chain` for `key` during `window`.
    pub(super) fn put(
        &self,
        key: [u8; 32],
        chain: ValidatedChain,
        (from, until): (OffsetDateTime, OffsetDateTime),
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(key, Entry { chain, from, until });
    }
}
