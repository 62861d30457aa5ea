//! Development public-key infrastructure: a national CA, its CRL, the hub's certificate and one
//! certificate per agency node — **not for production**.
//!
//! What this module owns:
//! - making a PKI directory ([`init`]), issuing or rotating an agency certificate ([`issue`]),
//!   revoking one ([`revoke`]); the directory layout is described in [`PkiLayout`];
//! - the certificate profile (see `profile.rs`): the agency code sits in the subject attribute
//!   UID (OID 0.9.2342.19200300.100.1.1) exactly, CN and O hold the agency name, C = VN; leaf
//!   certificates serve TLS client and server authentication and document signing;
//! - reading certificates for other modules: [`agency_code_of`], [`fingerprint_sha256`],
//!   [`cert_info`], PEM loaders, a single-link signature check ([`verify_issued_by`]) and the
//!   checked CRL reader ([`read_crl`]).
//!
//! Trust decisions (path validation, revocation checking at use, directory binding) are not
//! made here.

mod authority;
mod code;
mod error;
mod init;
mod inspect;
mod issue;
mod profile;
mod revoke;
mod store;
mod verify;

pub use code::{check_standard_agency_code, is_standard_agency_code};
pub use error::PkiError;
pub use init::{AgencyIdentity, InitOptions, InitReport, development_agencies, init};
pub use inspect::{CertInfo, agency_code_of, cert_info, fingerprint_sha256};
pub use issue::{IssueRequest, Issued, Retired, WrittenCert, issue};
pub use profile::{
    AGENCY_CODE_OID, CA_COMMON_NAME, CA_VALIDITY, COUNTRY, DEV_ORGANIZATION, HUB_COMMON_NAME,
    KeyAlgorithm, LEAF_VALIDITY,
};
pub use revoke::{CrlInfo, REVOCATION_REASON, Revoked, RevokedEntry, read_crl, revoke};
pub use store::{
    PkiLayout, load_cert_chain_pem, load_cert_pem, load_crl_pem, load_private_key_pem,
};
pub use verify::{verify_crl_issued_by, verify_issued_by};
