//! Verifying signed edXML packets: strict profile, then trust, then cryptography.
//!
//! [`verify_packet`] runs, in this order, and stops at the first failure:
//! 1. size limit and UTF-8;
//! 2. the strict profile scan (`scan` module): envelope shape, exactly one `ds:Signature`
//!    as the last child of the single `edXMLHeader`, exactly one `Reference URI=""` with
//!    exactly enveloped-signature + exclusive C14N, accepted algorithms, certificates in
//!    `KeyInfo`, no DOCTYPE/comments/PIs/`ds:Object`/`RetrievalMethod` — all before any
//!    cryptography and before any business data is used;
//! 3. the signer's chain from the `KeyInfo` certificates to the configured anchors
//!    ([`TrustStore`]), at the verification time; `KeyInfo` alone is never trusted;
//! 4. the signature with bergshamra, given **only the validated leaf's public key**
//!    (`trusted_keys_only`: inline keys in the document are ignored; strict reference
//!    positions; every reference digest computed locally), parsed once with uppsala (or on the
//!    caller's parse, [`ParsedPacket`] and [`verify_parsed`], shared with its schema check);
//!    the engine key of each signer certificate is read once and kept (`engine_keys`);
//! 5. a cross-check on bergshamra's own DOM that the verified signature is the single
//!    `ds:Signature` under `/edXML/edXMLEnvelope/edXMLHeader` and that its only reference is
//!    `URI=""` with a locally verified digest, so the signature covers the whole packet
//!    (attachments included) and a parser disagreement cannot move it.
//!
//! The packet id is `packet_sha256`: SHA-256 of the exact bytes as received.
//!
//! Verification is blocking and CPU-bound; async callers use `spawn_blocking`.

use aws_lc_rs::digest;
use bergshamra::{DsigContext, KeysManager, VerifyResult};
use time::OffsetDateTime;

use super::algorithms::{DigestAlgorithm, SignatureAlgorithm};
use super::engine_keys;
use super::scan::{self, ScanError, ScanLimits, SignatureState};
use super::trust::{TrustError, TrustStore};
use super::{DSIG_NS, QCVN_NS};

/// Resource limits applied before and during verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest element nesting accepted.
    pub max_depth: usize,
    /// Most elements accepted.
    pub max_elements: usize,
    /// Most certificates accepted in `KeyInfo`.
    pub max_certificates: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_depth: 64,
            max_elements: 200_000,
            max_certificates: 8,
        }
    }
}

impl Limits {
    pub(crate) fn scan_limits(&self) -> ScanLimits {
        ScanLimits {
            max_depth: self.max_depth,
            max_elements: self.max_elements,
            max_certificates: self.max_certificates,
        }
    }
}

/// What a verification accepts.
#[derive(Debug, Clone, Default)]
pub struct VerifyPolicy {
    /// Accept packets without a DocAxis signature (no signature at all, or a legacy
    /// QCVN-namespace placeholder) as [`Verdict::Unsigned`] / [`Verdict::UnsignedLegacy`].
    /// A packet that carries a `ds:Signature` is always fully verified, whatever this says.
    pub accept_unsigned_legacy: bool,
    /// Verification time for certificate validity and CRLs; `None` = now.
    pub at: Option<OffsetDateTime>,
    /// Resource limits.
    pub limits: Limits,
}

/// A packet whose signature verified and whose signer chains to a trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPacket {
    /// DER of the signer's certificate.
    pub signer_cert_der: Vec<u8>,
    /// The signer certificate's subject.
    pub signer_subject: String,
    /// The agency code from the signer certificate's subject UID, if exactly one.
    pub agency_code: Option<String>,
    /// The `SignatureMethod`.
    pub signature_algorithm: SignatureAlgorithm,
    /// The `DigestMethod`.
    pub digest_algorithm: DigestAlgorithm,
    /// SHA-256 of the exact bytes verified (the packet id).
    pub packet_sha256: [u8; 32],
    /// The validated chain, signer first, anchor last.
    pub chain: Vec<Vec<u8>>,
}

/// The outcome of an accepted packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by a trusted signer.
    Signed(SignedPacket),
    /// Carries a legacy placeholder signature: unsigned (accepted only by policy).
    UnsignedLegacy {
        /// SHA-256 of the bytes.
        packet_sha256: [u8; 32],
    },
    /// Carries no signature at all (accepted only by policy).
    Unsigned {
        /// SHA-256 of the bytes.
        packet_sha256: [u8; 32],
    },
}

impl Verdict {
    /// SHA-256 of the packet bytes.
    pub fn packet_sha256(&self) -> &[u8; 32] {
        match self {
            Verdict::Signed(p) => &p.packet_sha256,
            Verdict::UnsignedLegacy { packet_sha256 } | Verdict::Unsigned { packet_sha256 } => {
                packet_sha256
            }
        }
    }

    /// Short label: `signed`, `unsigned-legacy` or `unsigned`.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Signed(_) => "signed",
            Verdict::UnsignedLegacy { .. } => "unsigned-legacy",
            Verdict::Unsigned { .. } => "unsigned",
        }
    }
}

/// Why a packet was refused. Messages are written for the clerk or operator who reads them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Over the size limit.
    #[error("the packet is too large: {size} bytes (limit {limit} bytes)")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not well-formed UTF-8 XML, or over a structural limit.
    #[error("the packet is not well-formed: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// Outside the edXML envelope shape or the DocAxis signature profile.
    #[error("the packet does not follow the DocAxis signature profile: {what}")]
    WrongProfile {
        /// Which rule it breaks.
        what: String,
    },
    /// No DocAxis signature and the policy requires one.
    #[error("{}", if *.legacy {
        "the packet is not signed (it carries only a legacy placeholder signature) and unsigned \
         packets are not accepted"
    } else {
        "the packet is not signed and unsigned packets are not accepted"
    })]
    Unsigned {
        /// Whether a legacy placeholder signature was present.
        legacy: bool,
    },
    /// The signer's certificate is not trusted.
    #[error("untrusted signer: {0}")]
    Trust(#[from] TrustError),
    /// The signed content does not match its digest.
    #[error(
        "the packet was modified after it was signed: the content no longer matches the signed \
         digest"
    )]
    DigestMismatch,
    /// The signature value does not verify with the signer's key.
    #[error(
        "the signature value does not verify with the signer's certificate (the signature or \
         its SignedInfo was altered, or it was made with another key)"
    )]
    BadSignature,
    /// The signer is not the agency the packet claims to come from.
    #[error("the packet claims to come from {from}, but it was signed by {signer}")]
    SignerNotSender {
        /// The signer (agency code, or subject when the certificate has none).
        signer: String,
        /// The `From/OrganId` of the packet.
        from: String,
    },
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn scan_refusal(e: ScanError) -> Refusal {
    match e {
        ScanError::Malformed(what) => Refusal::Malformed { what },
        ScanError::Profile(what) => Refusal::WrongProfile { what },
    }
}

/// Verifies a packet; see the module documentation for the order of checks.
///
/// Blocking and CPU-bound.
pub fn verify_packet(
    bytes: &[u8],
    trust: &TrustStore,
    policy: &VerifyPolicy,
) -> Result<Verdict, Refusal> {
    verify_inner(bytes, trust, policy, None)
}

/// A packet parsed once for every check that needs its tree: a caller that judges the tree
/// itself (the hub's strict schema) hands the same parse to [`verify_parsed`] instead of the
/// signature check parsing the packet again.
///
/// The tree is uppsala's parse of the packet's text (its bytes without a byte-order mark),
/// with DTDs refused, made here so that it cannot belong to other bytes than those verified.
pub struct ParsedPacket<'a> {
    bytes: &'a [u8],
    text: &'a str,
    doc: uppsala::Document<'a>,
}

impl<'a> ParsedPacket<'a> {
    /// Parses `bytes` within `limits` (size, UTF-8, number of start tags, nesting depth).
    pub fn parse(bytes: &'a [u8], limits: &Limits) -> Result<Self, Refusal> {
        if bytes.len() > limits.max_bytes {
            return Err(Refusal::TooLarge {
                size: bytes.len(),
                limit: limits.max_bytes,
            });
        }
        let text = scan::as_utf8(bytes).map_err(scan_refusal)?;
        if scan::more_elements_than(text, limits.max_elements) {
            return Err(Refusal::Malformed {
                what: format!("more than {} elements", limits.max_elements),
            });
        }
        let doc = uppsala::Parser::new()
            .with_forbid_dtd(true)
            .with_max_depth(u32::try_from(limits.max_depth).unwrap_or(u32::MAX))
            .parse(text)
            .map_err(|e| Refusal::Malformed {
                what: format!("the XML-DSig engine's parser refused it: {e}"),
            })?;
        Ok(ParsedPacket { bytes, text, doc })
    }

    /// The packet's text (without a byte-order mark).
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// The tree.
    pub fn doc(&self) -> &uppsala::Document<'a> {
        &self.doc
    }
}

/// [`verify_packet`] on a packet parsed with [`ParsedPacket::parse`]: the same checks in the
/// same order, the cryptography on that parse.
pub fn verify_parsed(
    parsed: &ParsedPacket<'_>,
    trust: &TrustStore,
    policy: &VerifyPolicy,
) -> Result<Verdict, Refusal> {
    verify_inner(
        parsed.bytes,
        trust,
        policy,
        Some((parsed.text, &parsed.doc)),
    )
}

/// The checks of [`verify_packet`]; `parsed` is the packet's text and tree when the caller
/// parsed it already ([`ParsedPacket`]).
fn verify_inner(
    bytes: &[u8],
    trust: &TrustStore,
    policy: &VerifyPolicy,
    parsed: Option<(&str, &uppsala::Document<'_>)>,
) -> Result<Verdict, Refusal> {
    let limits = &policy.limits;
    if bytes.len() > limits.max_bytes {
        return Err(Refusal::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let packet_sha256 = sha256(bytes);
    let text = match parsed {
        Some((text, _)) => text,
        None => scan::as_utf8(bytes).map_err(scan_refusal)?,
    };
    let layout = scan::scan(text, limits.scan_limits()).map_err(scan_refusal)?;
    let model = match layout.signature {
        SignatureState::Signed(model) => model,
        SignatureState::Legacy if policy.accept_unsigned_legacy => {
            return Ok(Verdict::UnsignedLegacy { packet_sha256 });
        }
        SignatureState::None if policy.accept_unsigned_legacy => {
            return Ok(Verdict::Unsigned { packet_sha256 });
        }
        SignatureState::Legacy => return Err(Refusal::Unsigned { legacy: true }),
        SignatureState::None => return Err(Refusal::Unsigned { legacy: false }),
    };
    if !model.values_present {
        return Err(Refusal::WrongProfile {
            what: "DigestValue or SignatureValue is empty (an unsigned template)".into(),
        });
    }

    // Trust: the KeyInfo certificates are only candidates until the chain validates.
    let at = policy.at.unwrap_or_else(OffsetDateTime::now_utc);
    let chain = trust.validate_signer(&model.certificates, at)?;
    let needed = model.signature_algorithm.key_family();
    if chain.leaf_key_family() != Some(needed) {
        return Err(Refusal::WrongProfile {
            what: format!(
                "SignatureMethod {} needs an {needed} key, but the signer's certificate holds \
                 an {} key",
                model.signature_algorithm,
                chain.leaf_key_description()
            ),
        });
    }

    // Cryptography, with only the validated leaf's public key available.
    match parsed {
        Some((_, doc)) => crypto_check_doc(text, doc, chain.leaf_der(), confirm_position)?,
        None => crypto_check(text, chain.leaf_der())?,
    }

    Ok(Verdict::Signed(SignedPacket {
        signer_cert_der: chain.leaf_der().to_vec(),
        signer_subject: chain.subject().to_owned(),
        agency_code: chain.agency_code().map(str::to_owned),
        signature_algorithm: model.signature_algorithm,
        digest_algorithm: model.digest_algorithm,
        packet_sha256,
        chain: chain.certs().to_vec(),
    }))
}

/// Runs bergshamra on `text` with `leaf_der`'s public key as the only usable key and
/// cross-checks what it verified.
fn crypto_check(text: &str, leaf_der: &[u8]) -> Result<(), Refusal> {
    crypto_check_with(text, leaf_der, confirm_position)
}

/// Which element a verified `ds:Signature` must sit in: checked on the engine's own parse.
pub(crate) type PositionCheck = fn(&uppsala::Document<'_>, uppsala::NodeId) -> Result<(), Refusal>;

/// The cryptographic check with only `leaf_der`'s public key available, requiring a single
/// whole-document reference, then `confirm` on the signature's position.
pub(crate) fn crypto_check_with(
    text: &str,
    leaf_der: &[u8],
    confirm: PositionCheck,
) -> Result<(), Refusal> {
    let doc = uppsala::parse(text).map_err(|e| Refusal::Malformed {
        what: format!("the XML-DSig engine's parser refused it: {e}"),
    })?;
    crypto_check_doc(text, &doc, leaf_der, confirm)
}

/// The engine's context: `key` is the only key it may use, and nothing it finds in the
/// document is trusted or followed.
fn engine_context(key: bergshamra::keys::Key) -> DsigContext {
    let mut keys = KeysManager::new();
    keys.add_key(key);
    let mut ctx = DsigContext::new(keys);
    ctx.trusted_keys_only = true;
    ctx.strict_verification = true;
    ctx.require_reference_digests = true;
    ctx.insecure = false;
    ctx.verify_keys = false;
    ctx.enabled_key_data_x509 = false;
    ctx.allow_raw_inline_keyinfo_with_trust_anchors = false;
    ctx
}

/// [`crypto_check_with`] on `doc`, uppsala's parse of `text`.
fn crypto_check_doc(
    text: &str,
    doc: &uppsala::Document<'_>,
    leaf_der: &[u8],
    confirm: PositionCheck,
) -> Result<(), Refusal> {
    let key = engine_keys::public_key_of(leaf_der).map_err(|reason| {
        Refusal::Trust(TrustError::BadCertificate {
            subject: "signer certificate".into(),
            reason,
        })
    })?;
    let ctx = engine_context(key);
    let result = bergshamra::dsig::verify::verify_document_with_source(&ctx, doc, Some(text))
        .map_err(|e| engine_refusal(&e))?;
    match result {
        VerifyResult::Invalid { reason } => {
            if reason.starts_with("Reference digest failed") {
                Err(Refusal::DigestMismatch)
            } else if reason.starts_with("signature value verification failed") {
                Err(Refusal::BadSignature)
            } else {
                Err(Refusal::WrongProfile {
                    what: format!("the XML-DSig engine refused it: {reason}"),
                })
            }
        }
        VerifyResult::Valid {
            signature_node,
            references,
            ..
        } => {
            let covers_whole = references.len() == 1
                && references
                    .iter()
                    .all(|r| r.uri.is_empty() && r.digest_verified && r.resolved_node.is_none());
            if !covers_whole {
                return Err(Refusal::WrongProfile {
                    what: "the verified signature does not cover the whole packet".into(),
                });
            }
            confirm(doc, signature_node)
        }
    }
}

fn engine_refusal(e: &bergshamra::Error) -> Refusal {
    use bergshamra::Error as E;
    match e {
        E::XmlParse(m) => Refusal::Malformed {
            what: format!("the XML-DSig engine's parser refused it: {m}"),
        },
        E::Crypto(_) | E::SignatureInvalid(_) => Refusal::BadSignature,
        E::DigestMismatch(_) => Refusal::DigestMismatch,
        other => Refusal::WrongProfile {
            what: format!("the XML-DSig engine refused it: {other}"),
        },
    }
}

/// On bergshamra's DOM: the verified node is the only W3C `Signature` and sits at
/// `/edXML/edXMLEnvelope/edXMLHeader`, as the profile scan found.
fn confirm_position(doc: &uppsala::Document<'_>, sig: uppsala::NodeId) -> Result<(), Refusal> {
    let disagreement = |what: &str| Refusal::WrongProfile {
        what: format!("parsers disagree about the signature ({what})"),
    };
    let count = doc
        .descendants(doc.root())
        .into_iter()
        .filter(|&n| {
            doc.element(n)
                .is_some_and(|e| e.matches_name_ns(DSIG_NS, "Signature"))
        })
        .count();
    if count != 1 {
        return Err(disagreement("more than one ds:Signature"));
    }
    let names = ["edXMLHeader", "edXMLEnvelope", "edXML"];
    let mut node = sig;
    for name in names {
        let Some(parent) = doc.parent(node) else {
            return Err(disagreement("signature has no parent"));
        };
        if !doc
            .element(parent)
            .is_some_and(|e| e.matches_name_ns(QCVN_NS, name))
        {
            return Err(disagreement("signature not under edXMLHeader"));
        }
        node = parent;
    }
    if doc.document_element() != Some(node) {
        return Err(disagreement("edXML is not the document element"));
    }
    Ok(())
}

/// Checks that the signer is the agency named in the packet's `From/OrganId` (read with
/// [`super::sender_organ_id`] from the verified bytes).
pub fn check_sender(signed: &SignedPacket, from_organ_id: &str) -> Result<(), Refusal> {
    match signed.agency_code.as_deref() {
        Some(code) if code == from_organ_id => Ok(()),
        Some(code) => Err(Refusal::SignerNotSender {
            signer: code.to_owned(),
            from: from_organ_id.to_owned(),
        }),
        None => Err(Refusal::SignerNotSender {
            signer: format!(
                "'{}' (no agency code in the certificate)",
                signed.signer_subject
            ),
            from: from_organ_id.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::{SigningIdentity, sign_packet};
    use crate::test_pki::{Ca, KeyKind, small_packet};

    fn setup(kind: KeyKind) -> (Ca, SigningIdentity, TrustStore) {
        let root = Ca::root("DocAxis Test Root");
        let inter = root.intermediate("DocAxis Test Agency CA");
        let leaf = inter.leaf("000.00.00.G22", "Văn phòng Chính phủ", kind);
        let id = SigningIdentity::from_pem(
            leaf.key_pem.as_bytes(),
            leaf.chain_pem(&[&inter]).as_bytes(),
        )
        .unwrap();
        let trust = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).unwrap();
        (root, id, trust)
    }

    #[test]
    fn round_trip_ec_and_rsa() {
        for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
            let (_root, id, trust) = setup(kind);
            let packet = small_packet("000.00.00.G22");
            let signed = sign_packet(packet.as_bytes(), &id).unwrap();
            let verdict = verify_packet(&signed, &trust, &VerifyPolicy::default()).unwrap();
            let Verdict::Signed(p) = verdict else {
                panic!("not signed: {verdict:?}");
            };
            assert_eq!(p.agency_code.as_deref(), Some("000.00.00.G22"));
            assert_eq!(p.signature_algorithm, id.signature_algorithm());
            assert_eq!(p.digest_algorithm, DigestAlgorithm::Sha256);
            assert_eq!(p.packet_sha256, sha256(&signed));
            assert_eq!(p.chain.len(), 3);
            assert_eq!(p.signer_cert_der, id.chain()[0]);
        }
    }

    #[test]
    fn the_shared_parse_is_bounded_and_refuses_dtds() {
        let limits = Limits {
            max_bytes: 4096,
            max_depth: 8,
            max_elements: 20,
            max_certificates: 8,
        };
        let refused = |xml: &[u8]| match ParsedPacket::parse(xml, &limits) {
            Ok(_) => panic!("parsed: {}", String::from_utf8_lossy(xml)),
            Err(e) => e.to_string(),
        };
        assert!(refused(&[b'a'; 5000]).contains("4096"));
        assert!(refused(b"<a>\xff</a>").contains("UTF-8"));
        let many = format!("<a>{}</a>", "<b/>".repeat(20));
        assert!(refused(many.as_bytes()).contains("more than 20 elements"));
        let deep = format!("{}{}", "<a>".repeat(9), "</a>".repeat(9));
        assert!(!refused(deep.as_bytes()).is_empty());
        let dtd = b"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>";
        assert!(!refused(dtd).is_empty());
        let ok = ParsedPacket::parse("\u{feff}<a><b/></a>".as_bytes(), &limits).unwrap();
        assert_eq!(ok.text(), "<a><b/></a>", "without its byte-order mark");
        assert!(ok.doc().document_element().is_some());
    }

    #[test]
    fn unsigned_template_is_not_a_signature() {
        let (_root, id, trust) = setup(KeyKind::EcP256);
        let signed = sign_packet(small_packet("000.00.00.G22").as_bytes(), &id).unwrap();
        let text = String::from_utf8(signed).unwrap();
        let start = text.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
        let end = text.find("</ds:SignatureValue>").unwrap();
        let template = format!("{}{}", &text[..start], &text[end..]);
        let err = verify_packet(template.as_bytes(), &trust, &VerifyPolicy::default()).unwrap_err();
        assert!(
            matches!(&err, Refusal::WrongProfile { what } if what.contains("empty")),
            "{err}"
        );
    }

    #[test]
    fn check_sender_without_agency_code() {
        let packet = SignedPacket {
            signer_cert_der: vec![],
            signer_subject: "CN=Somebody".into(),
            agency_code: None,
            signature_algorithm: SignatureAlgorithm::EcdsaSha256,
            digest_algorithm: DigestAlgorithm::Sha256,
            packet_sha256: [0; 32],
            chain: vec![],
        };
        let err = check_sender(&packet, "000.00.00.G22").unwrap_err();
        assert!(err.to_string().contains("CN=Somebody"), "{err}");
        let ok = SignedPacket {
            agency_code: Some("000.00.00.G22".into()),
            ..packet
        };
        check_sender(&ok, "000.00.00.G22").unwrap();
    }

    #[test]
    fn refusal_messages_read_well() {
        assert!(
            Refusal::Unsigned { legacy: true }
                .to_string()
                .contains("legacy placeholder")
        );
        assert!(
            !Refusal::Unsigned { legacy: false }
                .to_string()
                .contains("legacy")
        );
        let r = Refusal::Trust(TrustError::Expired {
            subject: "CN=X".into(),
            not_after: time::macros::datetime!(2026-03-22 22:15:37 UTC),
        });
        assert_eq!(
            r.to_string(),
            "untrusted signer: certificate 'CN=X' expired on 2026-03-22 22:15:37 UTC"
        );
    }

    #[test]
    fn shared_types_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<TrustStore>();
        send_sync::<crate::SigningIdentity>();
        send_sync::<Verdict>();
        send_sync::<Refusal>();
    }
}
