//! The signature and digest algorithms the DocAxis profile accepts, by XML-DSig URI.
//!
//! Only these algorithms are ever accepted; everything else (SHA-1, MD5, HMAC, DSA, RSA-PSS,
//! unknown URIs) is refused by the profile check before any cryptography runs. DocAxis itself
//! signs with RSA-SHA256 or ECDSA-SHA256 and SHA-256 digests; the SHA-384/512 variants are
//! accepted on input so that other conforming producers with larger keys interoperate.

use std::fmt;

/// An accepted `SignatureMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// `http://www.w3.org/2001/04/xmldsig-more#rsa-sha256`
    RsaSha256,
    /// `http://www.w3.org/2001/04/xmldsig-more#rsa-sha384`
    RsaSha384,
    /// `http://www.w3.org/2001/04/xmldsig-more#rsa-sha512`
    RsaSha512,
    /// `http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256`
    EcdsaSha256,
    /// `http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384`
    EcdsaSha384,
    /// `http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512`
    EcdsaSha512,
}

/// The public-key family a signature algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// RSA keys (PKCS#1 v1.5 signatures).
    Rsa,
    /// Elliptic-curve keys (ECDSA).
    Ec,
}

impl fmt::Display for KeyFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyFamily::Rsa => "RSA",
            KeyFamily::Ec => "EC",
        })
    }
}

impl SignatureAlgorithm {
    /// All accepted algorithms.
    pub const ALL: [SignatureAlgorithm; 6] = [
        SignatureAlgorithm::RsaSha256,
        SignatureAlgorithm::RsaSha384,
        SignatureAlgorithm::RsaSha512,
        SignatureAlgorithm::EcdsaSha256,
        SignatureAlgorithm::EcdsaSha384,
        SignatureAlgorithm::EcdsaSha512,
    ];

    /// The XML-DSig algorithm URI.
    pub fn uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            SignatureAlgorithm::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            SignatureAlgorithm::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            SignatureAlgorithm::EcdsaSha256 => {
                "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
            }
            SignatureAlgorithm::EcdsaSha384 => {
                "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
            }
            SignatureAlgorithm::EcdsaSha512 => {
                "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
            }
        }
    }

    /// Short name, e.g. `rsa-sha256`.
    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha256 => "rsa-sha256",
            SignatureAlgorithm::RsaSha384 => "rsa-sha384",
            SignatureAlgorithm::RsaSha512 => "rsa-sha512",
            SignatureAlgorithm::EcdsaSha256 => "ecdsa-sha256",
            SignatureAlgorithm::EcdsaSha384 => "ecdsa-sha384",
            SignatureAlgorithm::EcdsaSha512 => "ecdsa-sha512",
        }
    }

    /// Parses an accepted algorithm URI; `None` for anything the profile refuses.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.uri() == uri)
    }

    /// The key family this algorithm needs.
    pub fn key_family(self) -> KeyFamily {
        match self {
            SignatureAlgorithm::RsaSha256
            | SignatureAlgorithm::RsaSha384
            | SignatureAlgorithm::RsaSha512 => KeyFamily::Rsa,
            SignatureAlgorithm::EcdsaSha256
            | SignatureAlgorithm::EcdsaSha384
            | SignatureAlgorithm::EcdsaSha512 => KeyFamily::Ec,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An accepted `DigestMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DigestAlgorithm {
    /// `http://www.w3.org/2001/04/xmlenc#sha256`
    Sha256,
    /// `http://www.w3.org/2001/04/xmldsig-more#sha384`
    Sha384,
    /// `http://www.w3.org/2001/04/xmlenc#sha512`
    Sha512,
}

impl DigestAlgorithm {
    /// All accepted digests.
    pub const ALL: [DigestAlgorithm; 3] = [
        DigestAlgorithm::Sha256,
        DigestAlgorithm::Sha384,
        DigestAlgorithm::Sha512,
    ];

    /// The XML-DSig algorithm URI.
    pub fn uri(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "http://www.w3.org/2001/04/xmlenc#sha256",
            DigestAlgorithm::Sha384 => "http://www.w3.org/2001/04/xmldsig-more#sha384",
            DigestAlgorithm::Sha512 => "http://www.w3.org/2001/04/xmlenc#sha512",
        }
    }

    /// Short name, e.g. `sha256`.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha384 => "sha384",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }

    /// Parses an accepted digest URI; `None` for anything the profile refuses.
    pub fn from_uri(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.uri() == uri)
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Describes a refused algorithm URI for an error message ("rsa-sha1 (SHA-1 is broken)").
pub(crate) fn describe_refused(uri: &str) -> String {
    let lower = uri.to_ascii_lowercase();
    let why = if lower.contains("hmac") {
        "HMAC is a shared-secret MAC, not a signature"
    } else if lower.contains("dsa-sha1") && !lower.contains("ecdsa") {
        "DSA is not supported"
    } else if lower.contains("md5") {
        "MD5 is broken"
    } else if lower.ends_with("sha1") || lower.contains("#sha1") || lower.contains("-sha1") {
        "SHA-1 is broken"
    } else if lower.contains("sha224") {
        "SHA-224 is not in the profile"
    } else {
        "not in the DocAxis profile"
    };
    format!("{uri} ({why})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip() {
        for a in SignatureAlgorithm::ALL {
            assert_eq!(SignatureAlgorithm::from_uri(a.uri()), Some(a));
        }
        for d in DigestAlgorithm::ALL {
            assert_eq!(DigestAlgorithm::from_uri(d.uri()), Some(d));
        }
    }

    #[test]
    fn weak_algorithms_are_not_accepted() {
        for uri in [
            "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
            "http://www.w3.org/2000/09/xmldsig#dsa-sha1",
            "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
            "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
            "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1",
        ] {
            assert_eq!(SignatureAlgorithm::from_uri(uri), None, "{uri}");
        }
        for uri in [
            "http://www.w3.org/2000/09/xmldsig#sha1",
            "http://www.w3.org/2001/04/xmldsig-more#md5",
            "http://www.w3.org/2001/04/xmldsig-more#sha224",
        ] {
            assert_eq!(DigestAlgorithm::from_uri(uri), None, "{uri}");
        }
        assert!(describe_refused("http://www.w3.org/2000/09/xmldsig#rsa-sha1").contains("SHA-1"));
        assert!(describe_refused("http://www.w3.org/2000/09/xmldsig#hmac-sha1").contains("HMAC"));
        assert!(describe_refused("http://www.w3.org/2000/09/xmldsig#dsa-sha1").contains("DSA"));
    }
}
