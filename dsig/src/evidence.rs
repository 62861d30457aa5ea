//! Checking evidence offline, with nothing but a trusted CA: hub receipts whose signer is not
//! pinned but must chain to the CA, and the facts of CRLs carried beside them (archives,
//! issue 15).
//!
//! A node pins the hub's certificate ([`crate::verify_root`]); an archive verifier years later
//! has only the national CA. [`verify_root_trusted`] therefore takes the signer's certificates
//! from the signature's own `X509Data` (candidates only), validates them to an anchor at the
//! time the receipt claims, and then verifies the signature with exactly the validated leaf's
//! key. Which certificate is *the hub's* is the caller's rule (the hub's subject carries no
//! agency code, see [`crate::pki`]); this module reports the validated chain so the caller can
//! apply it.
//!
//! Invariants: a certificate that does not chain is never used to verify; a DTD is refused; at
//! most [`MAX_CERTIFICATES`] certificates are read from a signature.

use base64::Engine;
use quick_xml::events::Event;
use time::OffsetDateTime;

use super::DSIG_NS;
use super::certs::CrlInfo;
use super::trust::{TrustStore, ValidatedChain};
use super::verify::Refusal;

/// Most certificates read from one signature's `X509Data`.
pub const MAX_CERTIFICATES: usize = 8;

/// The base64 `ds:X509Certificate` contents of a document's signatures, decoded, in document
/// order. Refuses a DTD, malformed XML and bad base64.
pub fn signature_certificates(xml: &[u8]) -> Result<Vec<Vec<u8>>, Refusal> {
    let mut reader = quick_xml::NsReader::from_reader(xml);
    reader.config_mut().trim_text(false);
    let mut out = Vec::new();
    let mut inside = false;
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| Refusal::Malformed {
                what: format!("not well-formed XML: {e}"),
            })?;
        match event {
            (_, Event::DocType(_)) => {
                return Err(Refusal::Malformed {
                    what: "a DOCTYPE is present; DTDs are refused".into(),
                });
            }
            (quick_xml::name::ResolveResult::Bound(ns), Event::Start(e))
                if ns.as_ref() == DSIG_NS.as_bytes()
                    && e.local_name().as_ref() == b"X509Certificate" =>
            {
                inside = true;
                text.clear();
            }
            (_, Event::Text(t)) if inside => {
                let t = t.decode().map_err(|e| Refusal::Malformed {
                    what: format!("unreadable certificate text: {e}"),
                })?;
                text.push_str(&t);
            }
            (quick_xml::name::ResolveResult::Bound(ns), Event::End(e))
                if inside
                    && ns.as_ref() == DSIG_NS.as_bytes()
                    && e.local_name().as_ref() == b"X509Certificate" =>
            {
                inside = false;
                let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(compact.as_bytes())
                    .map_err(|e| Refusal::Malformed {
                        what: format!("an X509Certificate is not base64: {e}"),
                    })?;
                if out.len() == MAX_CERTIFICATES {
                    return Err(Refusal::WrongProfile {
                        what: format!("more than {MAX_CERTIFICATES} certificates in X509Data"),
                    });
                }
                out.push(der);
            }
            (_, Event::Eof) => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

/// Verifies a document signed by [`crate::sign_root`] (a hub receipt) whose signer must chain
/// to an anchor of `trust` at `at`; returns the validated chain (signer first).
///
/// Blocking and CPU-bound.
pub fn verify_root_trusted(
    xml: &[u8],
    trust: &TrustStore,
    at: OffsetDateTime,
) -> Result<ValidatedChain, Refusal> {
    let certs = signature_certificates(xml)?;
    let chain = trust.validate_signer(&certs, at)?;
    super::verify_root(xml, chain.leaf_der())?;
    Ok(chain)
}

/// A certificate's issuer and subject names (RFC 4514-like) and its issuer as DER, for
/// matching it with CRLs.
pub fn names_of(cert_der: &[u8]) -> Result<CertNames, String> {
    let c = super::certs::CertInfo::parse(cert_der)?;
    Ok(CertNames {
        subject: c.subject.clone(),
        issuer: c.issuer.clone(),
        issuer_raw: c.issuer_raw.clone(),
        self_issued: c.issuer_raw == c.subject_raw,
    })
}

/// See [`names_of`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertNames {
    pub subject: String,
    pub issuer: String,
    pub issuer_raw: Vec<u8>,
    /// Issuer and subject are the same name (a root).
    pub self_issued: bool,
}

/// What a CRL says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlFacts {
    /// The issuer's name, RFC 4514-like.
    pub issuer: String,
    /// The issuer's name as DER (what certificates' issuer fields are compared with).
    pub issuer_raw: Vec<u8>,
    /// When it was issued.
    pub this_update: OffsetDateTime,
    /// When the next one is due; `None` when the CRL does not say.
    pub next_update: Option<OffsetDateTime>,
    /// How many certificates it revokes.
    pub revoked: usize,
}

impl CrlFacts {
    /// True when the CRL speaks for time `at`: in force then (issued at or before `at`, next
    /// update at or after it), or issued after it (it lists every revocation up to its
    /// issue, each with its date).
    pub fn speaks_for(&self, at: OffsetDateTime) -> bool {
        match self.next_update {
            Some(next) => next >= at,
            None => false,
        }
    }
}

/// Reads the facts of one DER CRL (its signature is checked when a [`TrustStore`] uses it).
pub fn crl_facts(der: &[u8]) -> Result<CrlFacts, String> {
    let crl = CrlInfo::parse(der)?;
    Ok(CrlFacts {
        issuer: crl.issuer.clone(),
        issuer_raw: crl.issuer_raw.clone(),
        this_update: crl.this_update,
        next_update: crl.next_update,
        revoked: crl.revoked.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningIdentity;

    fn certs_dir() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs")
    }

    fn identity(key: &str, cert: &str) -> SigningIdentity {
        let dir = certs_dir();
        let key = std::fs::read(dir.join(key)).unwrap();
        let cert = std::fs::read(dir.join(cert)).unwrap();
        SigningIdentity::from_pem(&key, &cert).unwrap()
    }

    fn trust() -> TrustStore {
        let ca = std::fs::read(certs_dir().join("ca.pem")).unwrap();
        let crl = std::fs::read(certs_dir().join("crl.pem")).unwrap();
        TrustStore::from_pem(&[&ca], &[&crl]).unwrap()
    }

    const XML: &[u8] =
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"urn:x\">\n  <A>1</A>\n</R>\n";

    #[test]
    fn a_hub_signed_document_verifies_with_the_ca_alone_and_names_its_signer() {
        let hub = identity("hub.key.pem", "hub.pem");
        let signed = crate::sign_root(XML, &hub).unwrap();
        let certs = signature_certificates(&signed).unwrap();
        assert_eq!(certs[0], hub.chain()[0]);
        let chain = verify_root_trusted(&signed, &trust(), OffsetDateTime::now_utc()).unwrap();
        assert_eq!(chain.leaf_der(), hub.chain()[0].as_slice());
        assert_eq!(
            chain.agency_code(),
            None,
            "the hub's subject has no agency code"
        );

        let tampered = String::from_utf8(signed.clone())
            .unwrap()
            .replace("<A>1</A>", "<A>2</A>");
        assert_eq!(
            verify_root_trusted(tampered.as_bytes(), &trust(), OffsetDateTime::now_utc()),
            Err(Refusal::DigestMismatch)
        );
        // A time before the certificates were issued: the chain is not valid then.
        let long_ago = OffsetDateTime::UNIX_EPOCH;
        assert!(matches!(
            verify_root_trusted(&signed, &trust(), long_ago),
            Err(Refusal::Trust(_))
        ));
    }

    #[test]
    fn an_agency_signed_receipt_chains_but_carries_an_agency_code() {
        let agency = identity(
            "agencies/000.00.00.G22.key.pem",
            "agencies/000.00.00.G22.pem",
        );
        let signed = crate::sign_root(XML, &agency).unwrap();
        let chain = verify_root_trusted(&signed, &trust(), OffsetDateTime::now_utc()).unwrap();
        assert_eq!(chain.agency_code(), Some("000.00.00.G22"));
    }

    #[test]
    fn doctype_and_bad_base64_are_refused() {
        let dtd = b"<?xml version=\"1.0\"?><!DOCTYPE R [<!ENTITY e \"x\">]><R/>";
        assert!(matches!(
            signature_certificates(dtd),
            Err(Refusal::Malformed { .. })
        ));
        let bad = format!(
            "<R><ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:X509Certificate>@@@</ds:X509Certificate></ds:Signature></R>"
        );
        assert!(matches!(
            signature_certificates(bad.as_bytes()),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn crl_facts_read_the_development_crl() {
        let pem = std::fs::read(certs_dir().join("crl.pem")).unwrap();
        let der = crate::pem::blocks(&pem, "X509 CRL").unwrap().remove(0);
        let facts = crl_facts(&der).unwrap();
        assert!(facts.issuer.contains("CN="), "{}", facts.issuer);
        assert!(facts.next_update.is_some_and(|n| n > facts.this_update));
        assert!(facts.speaks_for(facts.this_update));
    }
}
