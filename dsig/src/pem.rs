//! Reading PEM: the one place in DocAxis where certificates, private keys and CRLs are taken
//! out of PEM text (the TLS configuration in `net`, signing identities, trust stores, the
//! development PKI, the hub's agency registration and the node's pinned hub certificate all
//! come through here).
//!
//! Invariants:
//! - Blocks come back in file order (a chain file lists its leaf first).
//! - Malformed PEM is an error naming what is wrong, never a silently shorter list; callers
//!   decide whether an empty result is an error and say which file and label they expected.

/// A PEM text that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed PEM: {0}")]
pub struct PemError(pub String);

/// One `-----BEGIN LABEL-----` block: its label and the DER it holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

impl std::fmt::Debug for Block {
    // Private key bytes never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("label", &self.label)
            .field("bytes", &self.der.len())
            .finish()
    }
}

/// Every block of `pem`, in order.
pub fn all_blocks(pem: &[u8]) -> Result<Vec<Block>, PemError> {
    x509_parser::pem::Pem::iter_from_buffer(pem)
        .map(|b| {
            b.map(|b| Block {
                label: b.label,
                der: b.contents,
            })
            .map_err(|e| PemError(e.to_string()))
        })
        .collect()
}

/// The DER of every block labelled `label` (`CERTIFICATE`, `X509 CRL`, …), in order.
pub fn blocks(pem: &[u8], label: &str) -> Result<Vec<Vec<u8>>, PemError> {
    Ok(all_blocks(pem)?
        .into_iter()
        .filter(|b| b.label == label)
        .map(|b| b.der)
        .collect())
}

/// The private key blocks of `pem` (`PRIVATE KEY` = PKCS#8, `EC PRIVATE KEY` = SEC1,
/// `RSA PRIVATE KEY` = PKCS#1, or any other `… PRIVATE KEY`), in order.
pub fn private_keys(pem: &[u8]) -> Result<Vec<Block>, PemError> {
    Ok(all_blocks(pem)?
        .into_iter()
        .filter(|b| b.label.ends_with("PRIVATE KEY"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_in_order_by_label_and_malformed_text_is_an_error() {
        let text = b"-----BEGIN CERTIFICATE-----\nAQI=\n-----END CERTIFICATE-----\n\
            -----BEGIN X509 CRL-----\nAw==\n-----END X509 CRL-----\n\
            -----BEGIN CERTIFICATE-----\nBAU=\n-----END CERTIFICATE-----\n\
            -----BEGIN EC PRIVATE KEY-----\nBg==\n-----END EC PRIVATE KEY-----\n";
        assert_eq!(
            blocks(text, "CERTIFICATE").unwrap(),
            [vec![1, 2], vec![4, 5]]
        );
        assert_eq!(blocks(text, "X509 CRL").unwrap(), [vec![3]]);
        let keys = private_keys(text).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].label, "EC PRIVATE KEY");
        assert!(
            !format!("{:?}", keys[0]).contains('6'),
            "no key bytes in Debug"
        );
        assert!(blocks(b"no pem here", "CERTIFICATE").unwrap().is_empty());
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(blocks(broken, "CERTIFICATE").is_err());
    }
}
