//! XML-DSig signing, trust and verification of edXML packets.
//!
//! This module owns everything between "an unsigned packet" and "a packet whose signer we
//! trust":
//!
//! - [`sign`] inserts one W3C `ds:Signature` as the last child of `edXMLHeader` (enveloped,
//!   exclusive C14N, SHA-256, RSA-SHA256 or ECDSA-SHA256, signer chain in `KeyInfo`) and
//!   returns final bytes that nobody re-serialises afterwards.
//! - [`trust`] validates a certificate chain to configured anchors (full-certificate / key
//!   match, validity at a given time, CRLs, basicConstraints / keyUsage). It knows nothing
//!   about edXML, so it is also tested on generic XML-DSig vectors.
//! - [`verify`] checks the strict DocAxis signature profile **before** any cryptography,
//!   then the chain, then the signature with bergshamra using only the validated leaf key.
//! - [`sender`] reads `From/OrganId` from verified bytes, ignoring anything inside
//!   `ds:Signature`, so the caller can bind the signer to the sending agency.
//!
//! Invariants kept here:
//! - Nothing is ever read from inside `ds:Signature` except the signature itself: the signed
//!   algorithms, the signature value and the `KeyInfo` certificates (which are only
//!   candidates until the chain validates).
//! - A packet that carries a `ds:Signature` is either fully verified or refused; it is never
//!   downgraded to "unsigned".
//! - Signing and verification are blocking, CPU-bound functions. Async callers run them in
//!   `tokio::task::spawn_blocking`.

pub mod algorithms;
pub mod batch;
mod certs;
mod engine_keys;
pub mod evidence;
pub mod pem;
pub mod pki;
pub mod receipt;
pub mod rootsig;
mod scan;
pub mod sender;
pub mod sign;
pub mod trust;
pub mod verify;

pub use algorithms::{DigestAlgorithm, SignatureAlgorithm};
pub use rootsig::{sign_root, verify_root};
pub use sender::sender_organ_id;
pub use sign::{SignError, SigningIdentity, sign_packet, sign_packet_checked, sign_packet_owned};
pub use trust::{TrustError, TrustStore, TrustStoreError, ValidatedChain};
pub use verify::{
    Limits, ParsedPacket, Refusal, SignedPacket, Verdict, VerifyPolicy, check_sender,
    verify_packet, verify_parsed,
};

/// QCVN 102:2016 edXML namespace.
pub const QCVN_NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
/// W3C XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// Exclusive XML canonicalization 1.0 (without comments).
pub const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
/// The enveloped-signature transform.
pub const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

#[cfg(test)]
#[path = "../tests/it/support.rs"]
pub(crate) mod test_pki;
