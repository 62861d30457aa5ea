//! Signing edXML packets with the DocAxis XML-DSig profile.
//!
//! [`sign_packet`] inserts one `ds:Signature` (W3C namespace, prefix `ds`) as the last
//! child of `edXMLHeader`, with exclusive C14N, one `Reference URI=""` whose transforms are
//! exactly enveloped-signature then exclusive C14N, a SHA-256 digest, RSA-SHA256 or
//! ECDSA-SHA256 chosen from the key, and the signer's certificate chain (leaf first, then
//! intermediates) in `KeyInfo/X509Data`. The digest is bergshamra's exclusive C14N of the
//! packet streamed into SHA-256, and the signature value aws-lc's over bergshamra's canonical
//! `SignedInfo`, from one parse of the packet.
//!
//! Invariants:
//! - The input bytes are kept as they are; the only change is the inserted signature (plus
//!   line-break/indent text around it so the result stays readable, and a dropped UTF-8
//!   byte-order mark). The returned bytes are final: re-serialising them would break the
//!   signature.
//! - Input that already carries a `ds:Signature`, lacks `edXMLHeader`, or would fail the
//!   verifier's profile (DOCTYPE, comments, processing instructions) is refused.
//! - A legacy QCVN-namespace placeholder `Signature` is **refused, not stripped**: silently
//!   removing content before signing would sign something other than what the caller
//!   handed over. The caller (the edXML writer) removes it and signs the result.
//! - The output is re-scanned with the verifier's profile check and must carry the whole
//!   certificate chain; a key loaded without its chain therefore cannot produce a packet
//!   with an empty `X509Data`.
//!
//! Signing is blocking and CPU-bound; async callers use `spawn_blocking`.

use std::fmt;
use std::path::Path;

use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use base64::Engine as _;
use bergshamra::c14n::{self, C14nMode};
use bergshamra::xml::nodeset::NodeSet;
use time::OffsetDateTime;

use super::algorithms::{DigestAlgorithm, SignatureAlgorithm};
use super::certs::{
    CertInfo, Curve, KU_DIGITAL_SIGNATURE, KU_NON_REPUDIATION, PublicKeyInfo, SigCheck, fmt_time,
    pem_blocks,
};
use super::scan::{self, ScanError, SignatureState};
use super::verify::Limits;
use super::{DSIG_NS, ENVELOPED_SIGNATURE, EXC_C14N};

/// Why a key could not be loaded or a packet could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// A key or certificate file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The private key is unusable.
    #[error("signing key: {reason}")]
    Key {
        /// Why.
        reason: String,
    },
    /// The certificate chain is unusable.
    #[error("signing certificate chain: {reason}")]
    Certificate {
        /// Why.
        reason: String,
    },
    /// The private key does not belong to the first (leaf) certificate.
    #[error(
        "the private key does not match the signing certificate '{subject}' (the first \
         certificate of the chain must be the signer's own)"
    )]
    KeyCertificateMismatch {
        /// Subject of the leaf certificate.
        subject: String,
    },
    /// The input is not well-formed UTF-8 XML.
    #[error("the packet to sign is not well-formed: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// The input is not a packet DocAxis can sign.
    #[error("the packet cannot be signed: {what}")]
    NotSignable {
        /// What is wrong.
        what: String,
    },
    /// The input already carries a W3C signature.
    #[error(
        "the packet is already signed (it has a ds:Signature); a signed packet is never changed"
    )]
    AlreadySigned,
    /// The input carries a legacy placeholder signature.
    #[error(
        "the packet carries a legacy QCVN-namespace <Signature> placeholder (an unsigned legacy \
         packet); remove that element before signing"
    )]
    LegacySignature,
    /// bergshamra failed to sign.
    #[error("the XML-DSig engine failed to sign: {reason}")]
    Engine {
        /// Its message.
        reason: String,
    },
    /// The signed output did not pass the self-check.
    #[error("internal check of the signed packet failed: {what}")]
    OutputCheck {
        /// What is wrong.
        what: String,
    },
}

/// A private key with its certificate chain, ready to sign packets.
///
/// Cheap to clone; shareable between threads.
#[derive(Clone)]
pub struct SigningIdentity {
    signer: Arc<PacketSigner>,
    chain: Vec<Vec<u8>>,
    algorithm: SignatureAlgorithm,
    subject: String,
    agency_code: Option<String>,
    not_after: OffsetDateTime,
}

impl fmt::Debug for SigningIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningIdentity")
            .field("subject", &self.subject)
            .field("agency_code", &self.agency_code)
            .field("algorithm", &self.algorithm)
            .field("chain_len", &self.chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningIdentity {
    /// Loads an identity from a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`) and a
    /// PEM certificate chain: the signer's certificate first, then its intermediate CAs.
    ///
    /// Refuses a key that does not match the first certificate, a chain whose certificates
    /// do not issue one another in order, a signer certificate outside its validity period
    /// or without digitalSignature/nonRepudiation usage, and keys other than RSA ≥ 2048 bits
    /// or EC P-256.
    pub fn from_pem(key_pem: &[u8], chain_pem: &[u8]) -> Result<Self, SignError> {
        let (key, pkcs8) = load_private_key(key_pem)?;
        let chain = pem_blocks(chain_pem, "CERTIFICATE")
            .map_err(|reason| SignError::Certificate { reason })?;
        if chain.is_empty() {
            return Err(SignError::Certificate {
                reason: "no '-----BEGIN CERTIFICATE-----' block found".into(),
            });
        }
        let certs = chain
            .iter()
            .enumerate()
            .map(|(i, der)| {
                CertInfo::parse(der).map_err(|reason| SignError::Certificate {
                    reason: format!("certificate #{}: {reason}", i + 1),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let leaf = &certs[0];
        for pair in certs.windows(2) {
            match pair[0].check_issued_by(&pair[1]) {
                Ok(()) => {}
                Err(SigCheck::Invalid) => {
                    return Err(SignError::Certificate {
                        reason: format!(
                            "'{}' is not issued by the next certificate '{}': the chain must \
                             list the signer first, then each issuer in order",
                            pair[0].subject, pair[1].subject
                        ),
                    });
                }
                Err(SigCheck::Unsupported(why)) => {
                    return Err(SignError::Certificate {
                        reason: format!("cannot check '{}': {why}", pair[0].subject),
                    });
                }
            }
        }
        let key_spki = key.to_spki_der().ok_or_else(|| SignError::Key {
            reason: "the key has no public part".into(),
        })?;
        let key_public =
            PublicKeyInfo::from_spki_der(&key_spki).map_err(|reason| SignError::Key { reason })?;
        if key_public != leaf.key {
            return Err(SignError::KeyCertificateMismatch {
                subject: leaf.subject.clone(),
            });
        }
        let algorithm = match &leaf.key {
            PublicKeyInfo::Rsa { bits, .. } if *bits >= super::certs::MIN_RSA_BITS => {
                SignatureAlgorithm::RsaSha256
            }
            PublicKeyInfo::Ec {
                curve: Curve::P256, ..
            } => SignatureAlgorithm::EcdsaSha256,
            other => {
                return Err(SignError::Key {
                    reason: format!(
                        "{} keys cannot sign packets: use RSA (2048 bits or more) or EC P-256",
                        other.describe()
                    ),
                });
            }
        };
        let now = OffsetDateTime::now_utc();
        if now < leaf.not_before || now > leaf.not_after {
            return Err(SignError::Certificate {
                reason: format!(
                    "the signing certificate '{}' is valid only from {} to {}",
                    leaf.subject,
                    fmt_time(&leaf.not_before),
                    fmt_time(&leaf.not_after)
                ),
            });
        }
        if let Some(ku) = leaf.key_usage
            && ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION) == 0
        {
            return Err(SignError::Certificate {
                reason: format!(
                    "the keyUsage of '{}' allows neither digitalSignature nor nonRepudiation",
                    leaf.subject
                ),
            });
        }
        let signer = Arc::new(PacketSigner::from_pkcs8(&pkcs8, algorithm)?);
        Ok(SigningIdentity {
            signer,
            algorithm,
            subject: leaf.subject.clone(),
            agency_code: leaf.agency_code.clone(),
            not_after: leaf.not_after,
            chain,
        })
    }

    /// Loads an identity from a PKCS#8 PEM key file and a PEM chain file.
    pub fn from_pem_files(key_path: &Path, chain_path: &Path) -> Result<Self, SignError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| SignError::Io {
                path: p.display().to_string(),
                source,
            })
        };
        let key = read(key_path)?;
        let chain = read(chain_path)?;
        Self::from_pem(&key, &chain)
    }

    /// The signature algorithm this identity signs with.
    pub fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    /// The signer certificate's subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The agency code (subject UID) of the signer certificate, if any.
    pub fn agency_code(&self) -> Option<&str> {
        self.agency_code.as_deref()
    }

    /// The certificate chain written into `KeyInfo`, leaf first.
    pub fn chain(&self) -> &[Vec<u8>] {
        &self.chain
    }

    /// End of the signer certificate's validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }
}

/// The engine's key and the PKCS#8 DER it was read from.
fn load_private_key(pem: &[u8]) -> Result<(bergshamra::Key, Vec<u8>), SignError> {
    let blocks = crate::pem::private_keys(pem).map_err(|e| SignError::Key {
        reason: e.to_string(),
    })?;
    let mut keys = blocks.iter();
    let block = match (keys.next(), keys.next()) {
        (Some(b), None) => b,
        (None, _) => {
            return Err(SignError::Key {
                reason: "no '-----BEGIN PRIVATE KEY-----' block found".into(),
            });
        }
        (Some(_), Some(_)) => {
            return Err(SignError::Key {
                reason: "the key file holds more than one private key".into(),
            });
        }
    };
    if block.label != "PRIVATE KEY" {
        return Err(SignError::Key {
            reason: format!(
                "'{}' keys are not accepted: provide an unencrypted PKCS#8 key \
                 ('-----BEGIN PRIVATE KEY-----'), e.g. with `openssl pkcs8 -topk8 -nocrypt`",
                block.label
            ),
        });
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&block.der);
    let mut text = String::with_capacity(b64.len() + 64);
    text.push_str("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str("-----END PRIVATE KEY-----\n");
    let mut key = bergshamra::keys::loader::load_pem_auto(text.as_bytes(), None).map_err(|e| {
        SignError::Key {
            reason: format!("cannot load the PKCS#8 key: {e}"),
        }
    })?;
    if !key.has_private_key() {
        return Err(SignError::Key {
            reason: "the PEM block holds no private key".into(),
        });
    }
    // The chain is written into the template by DocAxis, not by bergshamra.
    key.x509_chain.clear();
    Ok((key, block.der.clone()))
}

/// Signs an unsigned edXML packet and returns the final signed bytes.
///
/// Blocking and CPU-bound (digest over the whole packet, one private-key operation).
pub fn sign_packet(unsigned: &[u8], id: &SigningIdentity) -> Result<Vec<u8>, SignError> {
    sign_inner(Input::Borrowed(unsigned), id, no_check)
}

/// [`sign_packet`] taking the unsigned bytes, which it frees as soon as the signature
/// template is in place: a big packet is then held once less while it is signed.
pub fn sign_packet_owned(unsigned: Vec<u8>, id: &SigningIdentity) -> Result<Vec<u8>, SignError> {
    sign_inner(Input::Owned(unsigned), id, no_check)
}

/// [`sign_packet_owned`] that hands the packet's one parse to `check` before the private key
/// is used: the text (the packet with its empty signature template, no byte-order mark) and
/// the uppsala tree of it, for a check that would otherwise parse the packet again (the
/// strict schema: `edxml::schema::validate_parsed`). A refusal by `check` is returned as is
/// and nothing is signed.
pub fn sign_packet_checked<E: From<SignError>>(
    unsigned: Vec<u8>,
    id: &SigningIdentity,
    check: impl FnOnce(&str, uppsala::Document<'_>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    sign_inner(Input::Owned(unsigned), id, check)
}

/// The check of [`sign_packet`] and [`sign_packet_owned`]: none.
fn no_check(_: &str, _: uppsala::Document<'_>) -> Result<(), SignError> {
    Ok(())
}

/// The unsigned bytes, lent or given.
enum Input<'a> {
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
}

fn sign_inner<E: From<SignError>>(
    input: Input<'_>,
    id: &SigningIdentity,
    check: impl FnOnce(&str, uppsala::Document<'_>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let doc = with_template(&input, id)?;
    drop(input);
    let signed = fill_template_checked(doc, id, check)?;
    Ok(check_output(signed, id)?)
}

/// Spare capacity left in the templated packet for what signing writes into it in place
/// (`DigestValue` and `SignatureValue`): without it, filling them would reallocate a big
/// packet and hold it twice at the peak.
pub(crate) const SIGNING_SLACK: usize = 8192;

/// The unsigned packet with the empty signature template inserted as the last child of
/// `edXMLHeader`, after the profile scan of the unsigned bytes.
fn with_template(input: &Input<'_>, id: &SigningIdentity) -> Result<Templated, SignError> {
    let unsigned: &[u8] = match input {
        Input::Borrowed(b) => b,
        Input::Owned(v) => v,
    };
    let limits = Limits::default();
    if unsigned.len() > limits.max_bytes {
        return Err(SignError::NotSignable {
            what: format!(
                "{} bytes is over the {} byte packet limit",
                unsigned.len(),
                limits.max_bytes
            ),
        });
    }
    let text = scan::as_utf8(unsigned).map_err(scan_to_sign_error)?;
    let layout = scan::scan(text, limits.scan_limits()).map_err(scan_to_sign_error)?;
    match layout.signature {
        SignatureState::None => {}
        SignatureState::Signed(_) => return Err(SignError::AlreadySigned),
        SignatureState::Legacy => return Err(SignError::LegacySignature),
    }

    // Follow the packet's line ending (CRLF is common in the field) and, when the end tag
    // sits on its own indented line, indent the signature one level deeper and put the end
    // tag back on its own line.
    let before = &text[..layout.header_end];
    let last_newline = before.rfind('\n');
    let newline = if last_newline.is_some_and(|i| before[..i].ends_with('\r')) {
        "\r\n"
    } else {
        "\n"
    };
    let template = signature_template(id, newline);
    let line_start = last_newline.map_or(0, |i| i + 1);
    let indent = &before[line_start..];
    let own_line = line_start > 0 && indent.bytes().all(|b| b == b' ' || b == b'\t');
    let mut doc = String::with_capacity(text.len() + template.len() + SIGNING_SLACK);
    doc.push_str(before);
    if own_line {
        doc.push_str("  ");
    }
    let template_at = doc.len();
    if own_line {
        doc.push_str(&template);
        doc.push_str(newline);
        doc.push_str(indent);
    } else {
        doc.push_str(&template);
    }
    doc.push_str(&text[layout.header_end..]);
    Ok(Templated { doc, template_at })
}

/// A document with the empty signature template in it.
pub(crate) struct Templated {
    pub(crate) doc: String,
    /// Byte offset of the template's `<ds:Signature`.
    pub(crate) template_at: usize,
}

/// Where the template leaves the two values empty.
const EMPTY_DIGEST: &str = "<ds:DigestValue></ds:DigestValue>";
const EMPTY_SIGNATURE: &str = "<ds:SignatureValue></ds:SignatureValue>";

/// Checks a filled template with the verifier's profile scan.
fn check_output(signed: String, id: &SigningIdentity) -> Result<Vec<u8>, SignError> {
    let limits = Limits::default();

    // Self-check with the verifier's profile scan.
    let out = scan::scan(&signed, limits.scan_limits()).map_err(|e| SignError::OutputCheck {
        what: match e {
            ScanError::Malformed(w) | ScanError::Profile(w) => w,
        },
    })?;
    match out.signature {
        SignatureState::Signed(model) => {
            if !model.values_present {
                return Err(SignError::OutputCheck {
                    what: "DigestValue or SignatureValue was left empty".into(),
                });
            }
            if model.certificates != id.chain {
                return Err(SignError::OutputCheck {
                    what: format!(
                        "KeyInfo carries {} certificate(s) instead of the {} of the chain",
                        model.certificates.len(),
                        id.chain.len()
                    ),
                });
            }
            if model.signature_algorithm != id.algorithm
                || model.digest_algorithm != DigestAlgorithm::Sha256
            {
                return Err(SignError::OutputCheck {
                    what: "unexpected algorithms in the signed output".into(),
                });
            }
        }
        _ => {
            return Err(SignError::OutputCheck {
                what: "the output carries no ds:Signature".into(),
            });
        }
    }
    Ok(signed.into_bytes())
}

fn scan_to_sign_error(e: ScanError) -> SignError {
    match e {
        ScanError::Malformed(what) => SignError::Malformed { what },
        ScanError::Profile(what) => SignError::NotSignable { what },
    }
}

/// Fills the `DigestValue` and `SignatureValue` of the template (the only `ds:Signature` of
/// the document); the document's shape is the caller's to check.
///
/// One parse of the document (uppsala, the engine's parser): the reference digest is
/// bergshamra's exclusive C14N of the whole document without the signature, streamed into
/// SHA-256; `SignedInfo` is canonicalised by bergshamra too, with the digest in it; the
/// signature value is aws-lc's. bergshamra's own `sign_owned` parses a document four times
/// (ARCHITECTURE decision 28); the output is the same document, and `xmlsec1` checks it in
/// the tests.
pub(crate) fn fill_template(
    templated: Templated,
    id: &SigningIdentity,
) -> Result<String, SignError> {
    fill_template_checked(templated, id, no_check)
}

/// [`fill_template`], handing its parse to `check` once the digests are taken and before the
/// private key is used (see [`sign_packet_checked`]).
fn fill_template_checked<E: From<SignError>>(
    templated: Templated,
    id: &SigningIdentity,
    check: impl FnOnce(&str, uppsala::Document<'_>) -> Result<(), E>,
) -> Result<String, E> {
    let Templated {
        mut doc,
        template_at,
    } = templated;

    let engine = |e: &dyn fmt::Display| SignError::Engine {
        reason: e.to_string(),
    };
    let (digest, canonical_signed_info) = {
        let parsed = uppsala::parse(&doc).map_err(|e| engine(&e))?;
        let signature = dsig_element(&parsed, parsed.descendants(parsed.root()), "Signature")?;
        let signed_info = dsig_element(&parsed, parsed.children(signature), "SignedInfo")?;
        // The reference: the whole packet without comments (it has none) and, by the
        // enveloped-signature transform, without the signature element.
        let mut whole = NodeSet::all_without_comments(&parsed);
        let mut stack = vec![signature];
        while let Some(n) = stack.pop() {
            whole.remove_id(n);
            stack.extend(parsed.children(n));
        }
        let mut sink = DigestSink(digest::Context::new(&digest::SHA256));
        c14n::canonicalize_doc_to(
            &parsed,
            C14nMode::Exclusive,
            Some(&whole),
            &[] as &[&str],
            &mut sink,
        )
        .map_err(|e| engine(&e))?;
        let info = NodeSet::tree_without_comments(signed_info, &parsed);
        let canonical =
            c14n::canonicalize_doc(&parsed, C14nMode::Exclusive, Some(&info), &[] as &[&str])
                .map_err(|e| engine(&e))?;
        let digest = sink.0.finish();
        drop((whole, info));
        check(&doc, parsed)?;
        (digest, canonical)
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let digest = b64.encode(digest.as_ref());
    // The canonical SignedInfo holds the template's empty DigestValue as written (exclusive
    // C14N keeps an empty element's start and end tags and adds no namespace there), and
    // base64 text canonicalises to itself.
    let mut canonical_signed_info = String::from_utf8(canonical_signed_info)
        .map_err(|_| engine(&"the canonical SignedInfo is not UTF-8"))?;
    fill(&mut canonical_signed_info, 0, EMPTY_DIGEST, &digest)?;
    let value = id.signer.sign(canonical_signed_info.as_bytes())?;
    // In place: the slack left by `with_template` holds both values without a reallocation.
    fill(&mut doc, template_at, EMPTY_DIGEST, &digest)?;
    fill(&mut doc, template_at, EMPTY_SIGNATURE, &b64.encode(value))?;
    Ok(doc)
}

/// The first of `nodes` that is the XML-DSig element `local` of the template.
fn dsig_element(
    parsed: &uppsala::Document<'_>,
    nodes: Vec<uppsala::NodeId>,
    local: &str,
) -> Result<uppsala::NodeId, SignError> {
    nodes
        .into_iter()
        .find(|&n| {
            parsed
                .element(n)
                .is_some_and(|e| e.matches_name_ns(DSIG_NS, local))
        })
        .ok_or_else(|| SignError::Engine {
            reason: format!("the template's ds:{local} is missing"),
        })
}

/// Writes `value` into the first `empty` element at or after `from`.
fn fill(text: &mut String, from: usize, empty: &str, value: &str) -> Result<(), SignError> {
    let at = text
        .get(from..)
        .and_then(|rest| rest.find(empty))
        .ok_or_else(|| SignError::Engine {
            reason: format!("the signature template has no {empty}"),
        })?;
    // Between the start and the end tag: after the first '>'.
    let open_end = empty.find('>').map_or(0, |i| i + 1);
    text.insert_str(from + at + open_end, value);
    Ok(())
}

/// SHA-256 fed by the canonicaliser, so the canonical packet is never held in memory.
struct DigestSink(digest::Context);

impl c14n::C14nSink for DigestSink {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The private key in aws-lc's form, for the one operation signing needs.
pub(crate) enum PacketSigner {
    /// ECDSA P-256 with SHA-256; XML-DSig wants the value as r ‖ s.
    EcdsaP256(EcdsaKeyPair),
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rsa(RsaKeyPair),
}

impl PacketSigner {
    fn from_pkcs8(der: &[u8], algorithm: SignatureAlgorithm) -> Result<Self, SignError> {
        let refused = |e: &dyn fmt::Display| SignError::Key {
            reason: format!("the PKCS#8 key cannot be loaded for signing: {e}"),
        };
        match algorithm {
            SignatureAlgorithm::EcdsaSha256 => {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map(PacketSigner::EcdsaP256)
                    .map_err(|e| refused(&e))
            }
            SignatureAlgorithm::RsaSha256 => RsaKeyPair::from_pkcs8(der)
                .map(PacketSigner::Rsa)
                .map_err(|e| refused(&e)),
            other => Err(SignError::Key {
                reason: format!("{other} is not a signing algorithm of DocAxis"),
            }),
        }
    }

    /// The signature value over `message` (the canonical `SignedInfo`).
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = SystemRandom::new();
        let failed = |what: &str| SignError::Engine {
            reason: format!("the {what} signature failed"),
        };
        match self {
            PacketSigner::EcdsaP256(key) => key
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| failed("ECDSA")),
            PacketSigner::Rsa(key) => {
                let mut value = vec![0u8; key.public_modulus_len()];
                key.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut value)
                    .map_err(|_| failed("RSA"))?;
                Ok(value)
            }
        }
    }
}

/// The signature template, with the certificate chain already filled in.
pub(crate) fn signature_template(id: &SigningIdentity, nl: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut certs = String::new();
    for der in &id.chain {
        certs.push_str("<ds:X509Certificate>");
        certs.push_str(&b64.encode(der));
        certs.push_str("</ds:X509Certificate>");
        certs.push_str(nl);
    }
    format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\">{nl}\
         <ds:SignedInfo>{nl}\
         <ds:CanonicalizationMethod Algorithm=\"{EXC_C14N}\"/>{nl}\
         <ds:SignatureMethod Algorithm=\"{sig}\"/>{nl}\
         <ds:Reference URI=\"\">{nl}\
         <ds:Transforms>{nl}\
         <ds:Transform Algorithm=\"{ENVELOPED_SIGNATURE}\"/>{nl}\
         <ds:Transform Algorithm=\"{EXC_C14N}\"/>{nl}\
         </ds:Transforms>{nl}\
         <ds:DigestMethod Algorithm=\"{digest}\"/>{nl}\
         <ds:DigestValue></ds:DigestValue>{nl}\
         </ds:Reference>{nl}\
         </ds:SignedInfo>{nl}\
         <ds:SignatureValue></ds:SignatureValue>{nl}\
         <ds:KeyInfo>{nl}\
         <ds:X509Data>{nl}\
         {certs}\
         </ds:X509Data>{nl}\
         </ds:KeyInfo>{nl}\
         </ds:Signature>",
        sig = id.algorithm.uri(),
        digest = DigestAlgorithm::Sha256.uri(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_pki::{Ca, KeyKind, Leaf, small_packet};
    use crate::trust::TrustStore;
    use crate::verify::{Verdict, VerifyPolicy, verify_packet};
    use time::Duration;

    fn pki() -> (Ca, Ca, Leaf) {
        let root = Ca::root("Sign Test Root");
        let inter = root.intermediate("Sign Test CA");
        let leaf = inter.leaf("000.00.00.G22", "Văn phòng Chính phủ", KeyKind::EcP256);
        (root, inter, leaf)
    }

    /// A chain like [`pki`]'s with an RSA-2048 leaf (RSA PKCS#1 v1.5 is deterministic, so
    /// whole outputs can be compared), and its identity.
    fn rsa_pki() -> (Ca, Ca, Leaf, SigningIdentity) {
        let root = Ca::root("Sign Test Root");
        let inter = root.intermediate("Sign Test CA");
        let leaf = inter.leaf("000.00.00.G22", "Văn phòng Chính phủ", KeyKind::Rsa2048);
        let id = id(&leaf, &inter);
        (root, inter, leaf, id)
    }

    fn id(leaf: &Leaf, inter: &Ca) -> SigningIdentity {
        SigningIdentity::from_pem(leaf.key_pem.as_bytes(), leaf.chain_pem(&[inter]).as_bytes())
            .unwrap()
    }

    /// What bergshamra's own signer makes of the same template: the reference this module's
    /// one-parse signer is held to.
    fn signed_by_bergshamra(unsigned: &[u8], id: &SigningIdentity, key_pem: &str) -> Vec<u8> {
        let templated = with_template(&Input::Borrowed(unsigned), id).unwrap();
        let mut keys = bergshamra::KeysManager::new();
        keys.add_key(load_private_key(key_pem.as_bytes()).unwrap().0);
        let ctx = bergshamra::DsigContext::new(keys);
        bergshamra::dsig::sign::sign_owned(&ctx, templated.doc)
            .unwrap()
            .into_bytes()
    }

    /// Unsigned packets of several shapes: DocAxis's own, and field packets with CRLF line
    /// ends, a default namespace and a prefixed one, and non-ASCII text.
    fn packets() -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(
            "small".to_string(),
            small_packet("000.00.00.G22").into_bytes(),
        )];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/conformance");
        for name in [
            "status_01_received.edxml",
            "status_03_accepted.edxml",
            "status_13_takeback.edxml",
        ] {
            out.push((name.to_string(), std::fs::read(dir.join(name)).unwrap()));
        }
        out
    }

    #[test]
    fn rsa_signatures_are_byte_for_byte_bergshamras() {
        // RSA PKCS#1 v1.5 is deterministic: the whole packet must come out the same.
        let (_root, _inter, leaf, id) = rsa_pki();
        for (name, unsigned) in packets() {
            let ours = sign_packet(&unsigned, &id).unwrap();
            let theirs = signed_by_bergshamra(&unsigned, &id, &leaf.key_pem);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_check_sees_the_signing_parse_and_its_refusal_signs_nothing() {
        let (_root, _inter, _leaf, id) = rsa_pki();
        for (name, unsigned) in packets() {
            let mut seen = None;
            let checked = sign_packet_checked(unsigned.clone(), &id, |text, doc| {
                let signatures = doc
                    .descendants(doc.root())
                    .into_iter()
                    .filter(|&n| {
                        doc.element(n)
                            .is_some_and(|e| e.matches_name_ns(crate::DSIG_NS, "Signature"))
                    })
                    .count();
                seen = Some((text.to_owned(), signatures));
                Ok::<(), SignError>(())
            })
            .unwrap();
            // The same bytes as without a check (RSA is deterministic) ...
            assert_eq!(checked, sign_packet(&unsigned, &id).unwrap(), "{name}");
            // ... and the check saw that packet with its template, values still empty.
            let (text, signatures) = seen.expect("the check ran");
            assert_eq!(signatures, 1, "{name}");
            assert!(text.contains(EMPTY_DIGEST) && text.contains(EMPTY_SIGNATURE));
            let signed = String::from_utf8(checked).unwrap();
            let start = signed.find("<ds:DigestValue>").unwrap();
            assert_eq!(text[..start], signed[..start], "{name}");
        }

        #[derive(Debug, PartialEq)]
        enum Refused {
            Check,
            Sign,
        }
        impl From<SignError> for Refused {
            fn from(_: SignError) -> Self {
                Refused::Sign
            }
        }
        let unsigned = small_packet("000.00.00.G22").into_bytes();
        let refused = sign_packet_checked(unsigned, &id, |_, _| Err(Refused::Check));
        assert_eq!(refused, Err(Refused::Check));
        let not_xml = sign_packet_checked(b"<edXML".to_vec(), &id, |_, _| Err(Refused::Check));
        assert_eq!(
            not_xml,
            Err(Refused::Sign),
            "signing errors come through From"
        );
    }

    #[test]
    fn root_signatures_are_byte_for_byte_bergshamras_with_rsa() {
        let (_root, _inter, leaf, id) = rsa_pki();
        let xml = "<HubReceipt xmlns=\"urn:docaxis:receipt\" v=\"1\">\n  <Seq>7</Seq>\n  \
                   <Note>Đã nhận &amp; lưu</Note>\n</HubReceipt>\n";
        let ours = crate::sign_root(xml.as_bytes(), &id).unwrap();
        let close = xml.trim_end().rfind("</").unwrap();
        let templated = format!(
            "{}{}\n{}",
            &xml[..close],
            signature_template(&id, "\n"),
            &xml[close..]
        );
        let mut keys = bergshamra::KeysManager::new();
        keys.add_key(load_private_key(leaf.key_pem.as_bytes()).unwrap().0);
        let ctx = bergshamra::DsigContext::new(keys);
        let theirs = bergshamra::dsig::sign::sign_owned(&ctx, templated).unwrap();
        assert_eq!(String::from_utf8(ours.clone()).unwrap(), theirs);
        crate::verify_root(&ours, &leaf.cert_der).unwrap();
    }

    #[test]
    fn ecdsa_signatures_differ_from_bergshamras_only_in_the_random_value() {
        let (root, inter, leaf) = pki();
        let id = id(&leaf, &inter);
        let trust = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).unwrap();
        let without_value = |signed: &[u8]| {
            let text = String::from_utf8(signed.to_vec()).unwrap();
            let start = text.find("<ds:SignatureValue>").unwrap();
            let end = text.find("</ds:SignatureValue>").unwrap();
            format!("{}{}", &text[..start], &text[end..])
        };
        for (name, unsigned) in packets() {
            let ours = sign_packet(&unsigned, &id).unwrap();
            let theirs = signed_by_bergshamra(&unsigned, &id, &leaf.key_pem);
            assert_eq!(without_value(&ours), without_value(&theirs), "{name}");
            assert!(
                matches!(
                    verify_packet(&ours, &trust, &VerifyPolicy::default()),
                    Ok(Verdict::Signed(_))
                ),
                "{name}"
            );
        }
    }

    #[test]
    fn identity_facts() {
        let (_, inter, leaf) = pki();
        let id = id(&leaf, &inter);
        assert_eq!(id.signature_algorithm(), SignatureAlgorithm::EcdsaSha256);
        assert_eq!(id.agency_code(), Some("000.00.00.G22"));
        assert_eq!(id.chain(), &[leaf.cert_der.clone(), inter.cert_der.clone()]);
        assert!(id.not_after() > OffsetDateTime::now_utc());
        let debug = format!("{id:?}");
        assert!(
            debug.contains("redacted") && !debug.contains("PRIVATE"),
            "{debug}"
        );
    }

    #[test]
    fn key_must_match_the_first_certificate() {
        let (_, inter, leaf) = pki();
        let other = inter.leaf("000.00.00.G22", "Other", KeyKind::EcP256);
        let err = SigningIdentity::from_pem(
            other.key_pem.as_bytes(),
            leaf.chain_pem(&[&inter]).as_bytes(),
        )
        .unwrap_err();
        assert!(
            matches!(err, SignError::KeyCertificateMismatch { .. }),
            "{err}"
        );
        // The intermediate first and the leaf second is a wrong order.
        let reversed = format!("{}{}", inter.cert_pem, leaf.cert_pem);
        let err =
            SigningIdentity::from_pem(leaf.key_pem.as_bytes(), reversed.as_bytes()).unwrap_err();
        assert!(matches!(err, SignError::Certificate { .. }), "{err}");
    }

    #[test]
    fn key_format_errors_are_explained() {
        let (_, inter, leaf) = pki();
        let chain = leaf.chain_pem(&[&inter]);
        let pkcs1 = leaf.key_pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
        let err = SigningIdentity::from_pem(pkcs1.as_bytes(), chain.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("openssl pkcs8 -topk8"), "{err}");
        let err = SigningIdentity::from_pem(b"nothing", chain.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("no '-----BEGIN PRIVATE KEY-----'"),
            "{err}"
        );
        let err = SigningIdentity::from_pem(leaf.key_pem.as_bytes(), b"").unwrap_err();
        assert!(err.to_string().contains("BEGIN CERTIFICATE"), "{err}");
    }

    #[test]
    fn expired_signing_certificate_is_refused() {
        let root = Ca::root("Sign Test Root");
        let now = OffsetDateTime::now_utc();
        let old = root.leaf_with(
            "000.00.00.G22",
            "Old",
            KeyKind::EcP256,
            now - Duration::days(30),
            now - Duration::days(1),
            true,
        );
        let err =
            SigningIdentity::from_pem(old.key_pem.as_bytes(), old.cert_pem.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("valid only from"), "{err}");
    }

    #[test]
    fn signing_only_inserts_the_signature() {
        let (root, inter, leaf) = pki();
        let unsigned = small_packet("000.00.00.G22");
        let signed =
            String::from_utf8(sign_packet(unsigned.as_bytes(), &id(&leaf, &inter)).unwrap())
                .unwrap();
        let start = signed.find("<ds:Signature").unwrap();
        let end = signed.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
        // Before the signature: unchanged bytes plus two spaces of indentation; after it: a
        // line break and the original indentation of the end tag.
        let header_end = unsigned.find("</edXML:edXMLHeader>").unwrap();
        assert_eq!(&signed[..start], format!("{}  ", &unsigned[..header_end]));
        assert_eq!(&signed[end..], format!("\n    {}", &unsigned[header_end..]));
        let trust = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).unwrap();
        verify_packet(signed.as_bytes(), &trust, &VerifyPolicy::default()).unwrap();
    }

    #[test]
    fn crlf_and_bom_inputs_sign_and_verify() {
        let (root, inter, leaf) = pki();
        let crlf = format!(
            "\u{feff}{}",
            small_packet("000.00.00.G22").replace('\n', "\r\n")
        );
        let signed = sign_packet(crlf.as_bytes(), &id(&leaf, &inter)).unwrap();
        let text = std::str::from_utf8(&signed).unwrap();
        assert!(!text.starts_with('\u{feff}'));
        assert!(text.contains("<ds:SignedInfo>\r\n"));
        let trust = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).unwrap();
        assert!(matches!(
            verify_packet(&signed, &trust, &VerifyPolicy::default()).unwrap(),
            Verdict::Signed(_)
        ));
    }

    #[test]
    fn unsignable_inputs_are_refused() {
        let (_, inter, leaf) = pki();
        let id = id(&leaf, &inter);
        let packet = small_packet("000.00.00.G22");
        let signed = sign_packet(packet.as_bytes(), &id).unwrap();
        assert!(matches!(
            sign_packet(&signed, &id).unwrap_err(),
            SignError::AlreadySigned
        ));
        let legacy = packet.replace(
            "</edXML:edXMLHeader>",
            "<Signature><SignedInfo/></Signature></edXML:edXMLHeader>",
        );
        assert!(matches!(
            sign_packet(legacy.as_bytes(), &id).unwrap_err(),
            SignError::LegacySignature
        ));
        let no_header =
            "<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"><edXMLEnvelope/></edXML>";
        let err = sign_packet(no_header.as_bytes(), &id).unwrap_err();
        assert!(
            matches!(&err, SignError::NotSignable { what } if what.contains("no edXMLHeader")),
            "{err}"
        );
        let comment = packet.replace("<edXML:Subject>", "<!-- note --><edXML:Subject>");
        assert!(matches!(
            sign_packet(comment.as_bytes(), &id).unwrap_err(),
            SignError::NotSignable { .. }
        ));
        assert!(matches!(
            sign_packet(b"<edXML", &id).unwrap_err(),
            SignError::Malformed { .. }
        ));
    }

    #[test]
    fn rsa_keys_sign_with_rsa_sha256() {
        let root = Ca::root("Sign Test Root");
        let leaf = root.leaf("000.00.00.G22", "RSA signer", KeyKind::Rsa2048);
        let id =
            SigningIdentity::from_pem(leaf.key_pem.as_bytes(), leaf.cert_pem.as_bytes()).unwrap();
        assert_eq!(id.signature_algorithm(), SignatureAlgorithm::RsaSha256);
        let signed = sign_packet(small_packet("000.00.00.G22").as_bytes(), &id).unwrap();
        let trust = TrustStore::from_pem(&[root.cert_pem.as_bytes()], &[]).unwrap();
        let Verdict::Signed(p) = verify_packet(&signed, &trust, &VerifyPolicy::default()).unwrap()
        else {
            panic!("not signed");
        };
        assert_eq!(p.signature_algorithm, SignatureAlgorithm::RsaSha256);
        assert_eq!(p.chain.len(), 2);
    }
}
