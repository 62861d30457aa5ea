//! The one error type of the development PKI.
//!
//! Every variant names the file, agency or value at fault, because an operator reads these
//! messages at a terminal and must know what to fix without reading the source.

use std::path::PathBuf;

use time::OffsetDateTime;

/// What can go wrong while creating, reading or changing the development PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be read, written, renamed or removed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `write`, `rename`, …).
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// `init` found an existing PKI and was not told to replace it.
    #[error(
        "refusing to overwrite the existing {what} {path}; pass --force to replace the whole \
         development PKI (every certificate issued under the old CA becomes useless)"
    )]
    PkiExists {
        /// Which file of the PKI it is (`CA certificate`, `agency certificate`, …).
        what: &'static str,
        /// The existing file.
        path: PathBuf,
    },

    /// A file that must not be replaced already exists.
    #[error("refusing to overwrite the existing {what} {path}")]
    WouldOverwrite {
        /// Which kind of file it is.
        what: &'static str,
        /// The existing file.
        path: PathBuf,
    },

    /// The directory holds no certificate authority.
    #[error("no certificate authority in {dir}: {path} is missing (run `docaxis pki init` first)")]
    CaMissing {
        /// The PKI directory.
        dir: PathBuf,
        /// The missing CA certificate or key file.
        path: PathBuf,
    },

    /// The CA certificate is past its validity period.
    #[error("the CA certificate {path} expired on {not_after}; make a new development PKI")]
    CaExpired {
        /// The CA certificate file.
        path: PathBuf,
        /// When it expired.
        not_after: OffsetDateTime,
    },

    /// The certificate in the CA file is not a CA certificate.
    #[error("{path} is not a CA certificate (basicConstraints CA:true is missing)")]
    NotACa {
        /// The file that should hold the CA certificate.
        path: PathBuf,
    },

    /// `issue` found a certificate (or key) for the agency and was not told to replace it.
    #[error(
        "agency {code} already has a {what} at {path}; pass --replace to rotate it (the old \
         certificate and key are kept as {code}.<serial>.pem and {code}.<serial>.key.pem)"
    )]
    AgencyExists {
        /// The agency code.
        code: String,
        /// `certificate` or `private key`.
        what: &'static str,
        /// The existing file.
        path: PathBuf,
    },

    /// The same agency code is listed twice.
    #[error("agency {code} is listed twice")]
    DuplicateAgency {
        /// The repeated code.
        code: String,
    },

    /// The agency has no certificate in the PKI directory.
    #[error("agency {code} has no certificate: {path} does not exist")]
    AgencyMissing {
        /// The agency code.
        code: String,
        /// Where its certificate was expected.
        path: PathBuf,
    },

    /// The agency code does not match the standard form `NNN.NN.NN.XNN`.
    #[error(
        "agency code {code:?} is not a standard agency code: {reason} (expected the form \
         NNN.NN.NN.XNN, e.g. 000.00.00.G22; pass --allow-nonstandard-code to accept it anyway)"
    )]
    NonStandardCode {
        /// The code as given.
        code: String,
        /// The first character or length that breaks the pattern.
        reason: String,
    },

    /// The agency code cannot be used in a file name.
    #[error("agency code {code:?} cannot be used: {reason}")]
    UnsafeCode {
        /// The code as given.
        code: String,
        /// Why it cannot name a file.
        reason: String,
    },

    /// The agency name cannot go into a certificate subject.
    #[error("agency name {name:?} cannot be used: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The requested validity period is empty.
    #[error(
        "empty validity period: not before {not_before} is not earlier than not after {not_after}"
    )]
    EmptyValidity {
        /// Start of the requested period.
        not_before: OffsetDateTime,
        /// End of the requested period.
        not_after: OffsetDateTime,
    },

    /// The requested certificate would outlive the CA that signs it.
    #[error("requested not after {not_after} is later than the CA's own expiry {ca_not_after}")]
    OutlivesCa {
        /// Requested end of validity.
        not_after: OffsetDateTime,
        /// The CA's end of validity.
        ca_not_after: OffsetDateTime,
    },

    /// A PEM file could not be decoded or lacks the expected section.
    #[error("{path}: {reason}")]
    Pem {
        /// The PEM file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Bytes that should be an X.509 certificate are not one.
    #[error("{what} is not a valid X.509 certificate: {reason}")]
    BadCertificate {
        /// Which certificate (usually a file name).
        what: String,
        /// The parser's complaint.
        reason: String,
    },

    /// Bytes that should be a CRL are not one, or the CRL is not usable.
    #[error("{what} is not a usable certificate revocation list: {reason}")]
    BadCrl {
        /// Which CRL (usually a file name).
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A private key file does not belong to the certificate next to it.
    #[error("{key_path} does not hold the private key of the certificate {cert_path}")]
    KeyMismatch {
        /// The private key file.
        key_path: PathBuf,
        /// The certificate file.
        cert_path: PathBuf,
    },

    /// A private key file could not be used for signing.
    #[error("cannot use the private key {path}: {reason}")]
    BadPrivateKey {
        /// The private key file.
        path: PathBuf,
        /// Why it is unusable.
        reason: String,
    },

    /// A certificate or CRL is not signed by the expected issuer.
    #[error("{what} is not signed by {issuer}: {reason}")]
    NotSignedBy {
        /// The certificate or CRL checked.
        what: String,
        /// The expected issuer's subject.
        issuer: String,
        /// Why the check failed.
        reason: String,
    },

    /// The subject holds more than one UID attribute, so the agency code is ambiguous.
    #[error(
        "certificate subject carries {count} UID attributes; exactly one agency code is allowed"
    )]
    AmbiguousAgencyCode {
        /// How many UID attributes there are.
        count: usize,
    },

    /// The UID attribute is not a character string.
    #[error("the UID attribute of the certificate subject is not a readable string: {reason}")]
    BadAgencyCodeAttribute {
        /// The parser's complaint.
        reason: String,
    },

    /// Certificate, key or CRL generation failed inside rcgen.
    #[error("could not {what}: {source}")]
    Generate {
        /// What was being generated.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },

    /// The system random number generator failed.
    #[error("the system random number generator failed while making a certificate serial number")]
    Random,

    /// The certificate is already on the CRL.
    #[error("the certificate of agency {code} (serial {serial}) is already revoked in {crl_path}")]
    AlreadyRevoked {
        /// The agency code.
        code: String,
        /// The certificate serial, lower-case hex.
        serial: String,
        /// The CRL file.
        crl_path: PathBuf,
    },
}

impl PkiError {
    /// Wraps an I/O error with the action and path it concerns.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        PkiError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Wraps an rcgen error with a description of what was being generated.
    pub(crate) fn generate(what: impl Into<String>, source: rcgen::Error) -> Self {
        PkiError::Generate {
            what: what.into(),
            source,
        }
    }
}
