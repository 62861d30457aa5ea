//! Enveloped signatures over DocAxis's own XML documents (hub receipts, the agency
//! directory): `ds:Signature` is the last child of the document element.
//!
//! These documents are produced only by the hub, and their readers pin the hub's certificate
//! (from configuration), so verification here is: the signature verifies with exactly that
//! certificate's key, its single reference `URI=""` covers the whole document, and it sits as
//! a direct child of the document element. The same template as packets is used (exclusive
//! C14N, enveloped transform, SHA-256, the signer's chain in `X509Data`), so `xmlsec1` can
//! verify these documents too.
//!
//! Blocking and CPU-bound: call from a blocking thread.

use super::DSIG_NS;
use super::sign::{
    SIGNING_SLACK, SignError, SigningIdentity, Templated, fill_template, signature_template,
};
use super::verify::{Refusal, crypto_check_with};

/// Signs `xml` (UTF-8, no existing `ds:Signature`) by inserting the signature before the
/// document element's end tag.
pub fn sign_root(xml: &[u8], id: &SigningIdentity) -> Result<Vec<u8>, SignError> {
    let text = std::str::from_utf8(xml).map_err(|_| SignError::NotSignable {
        what: "the document is not UTF-8".into(),
    })?;
    if text.contains(DSIG_NS) {
        return Err(SignError::AlreadySigned);
    }
    let trimmed = text.trim_end();
    let close = trimmed.rfind("</").ok_or_else(|| SignError::NotSignable {
        what: "no end tag for the document element".into(),
    })?;
    let template = signature_template(id, "\n");
    let mut doc = String::with_capacity(text.len() + template.len() + SIGNING_SLACK);
    doc.push_str(&text[..close]);
    let template_at = doc.len();
    doc.push_str(&template);
    doc.push('\n');
    doc.push_str(&text[close..]);
    let signed = fill_template(Templated { doc, template_at }, id)?;
    Ok(signed.into_bytes())
}

/// Verifies a document signed by [`sign_root`] with the pinned signer certificate.
pub fn verify_root(xml: &[u8], signer_cert_der: &[u8]) -> Result<(), Refusal> {
    let text = std::str::from_utf8(xml).map_err(|_| Refusal::Malformed {
        what: "the document is not UTF-8".into(),
    })?;
    if text.contains("<!DOCTYPE") || text.contains("<!ENTITY") {
        return Err(Refusal::Malformed {
            what: "a DOCTYPE is present; DTDs are refused".into(),
        });
    }
    crypto_check_with(text, signer_cert_der, signature_under_root)
}

fn signature_under_root(doc: &uppsala::Document<'_>, sig: uppsala::NodeId) -> Result<(), Refusal> {
    let count = doc
        .descendants(doc.root())
        .into_iter()
        .filter(|&n| {
            doc.element(n)
                .is_some_and(|e| e.matches_name_ns(DSIG_NS, "Signature"))
        })
        .count();
    if count != 1 {
        return Err(Refusal::WrongProfile {
            what: format!("{count} ds:Signature elements; exactly one is allowed"),
        });
    }
    if doc.parent(sig) != doc.document_element() {
        return Err(Refusal::WrongProfile {
            what: "the signature is not a child of the document element".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The development hub (`certs/hub.pem`) and its certificate's DER.
    pub(crate) fn hub_identity() -> (SigningIdentity, Vec<u8>) {
        let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../certs");
        let key = std::fs::read(format!("{certs}/hub.key.pem")).unwrap();
        let cert = std::fs::read(format!("{certs}/hub.pem")).unwrap();
        let id = SigningIdentity::from_pem(&key, &cert).unwrap();
        let der = id.chain()[0].clone();
        (id, der)
    }

    #[test]
    fn signed_receipt_verifies_with_the_hub_cert_only_and_tampering_is_refused() {
        let (id, hub_der) = hub_identity();
        let xml =
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<R xmlns=\"urn:x\">\n  <A>1</A>\n</R>\n";
        let signed = sign_root(xml, &id).unwrap();
        verify_root(&signed, &hub_der).unwrap();
        let tampered = String::from_utf8(signed.clone())
            .unwrap()
            .replace("<A>1</A>", "<A>2</A>");
        assert_eq!(
            verify_root(tampered.as_bytes(), &hub_der),
            Err(Refusal::DigestMismatch)
        );
        // Signed by an agency, not the hub: refused with the hub's certificate pinned.
        let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../certs/agencies");
        let key = std::fs::read(format!("{certs}/000.00.00.G22.key.pem")).unwrap();
        let cert = std::fs::read(format!("{certs}/000.00.00.G22.pem")).unwrap();
        let agency = SigningIdentity::from_pem(&key, &cert).unwrap();
        let forged = sign_root(xml, &agency).unwrap();
        assert!(verify_root(&forged, &hub_der).is_err());
    }
}
