//! Checking that a certificate or CRL was signed by a given issuer certificate.
//!
//! This is a single-link check (issuer name matches, signature verifies under the issuer's
//! public key), used to keep the PKI directory coherent: a CRL read back before it is extended,
//! an agency certificate before it is revoked. It is not path validation: validity periods,
//! key usages and revocation are the trust module's business.
//!
//! Supported signature algorithms: ecdsa-with-SHA256 (P-256), ecdsa-with-SHA384 (P-384) and
//! sha256WithRSAEncryption — everything this PKI and rcgen's defaults produce.

use aws_lc_rs::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::oid_registry::{
    OID_PKCS1_SHA256WITHRSA, OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384,
};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo, X509Name};

use super::PkiError;
use super::inspect::parse_certificate;

/// Checks that `cert_der` names `issuer_der`'s subject as its issuer and carries a signature
/// that verifies under `issuer_der`'s public key.
pub fn verify_issued_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<(), PkiError> {
    let cert = parse_certificate(cert_der, "the certificate")?;
    let issuer = parse_certificate(issuer_der, "the issuer certificate")?;
    let what = format!("the certificate {}", cert.subject());
    check_signed(
        SignedObject {
            what: &what,
            issuer_name: cert.issuer(),
            tbs: cert.tbs_certificate.as_ref(),
            outer_algorithm: &cert.signature_algorithm,
            inner_algorithm: &cert.tbs_certificate.signature,
            signature: &cert.signature_value.data,
        },
        issuer.subject(),
        issuer.public_key(),
    )
}

/// Checks that the DER CRL `crl_der` was issued and signed by `issuer_der`.
pub fn verify_crl_issued_by(crl_der: &[u8], issuer_der: &[u8]) -> Result<(), PkiError> {
    let (_, crl) = CertificateRevocationList::from_der(crl_der).map_err(|e| PkiError::BadCrl {
        what: "the CRL".to_owned(),
        reason: e.to_string(),
    })?;
    let issuer = parse_certificate(issuer_der, "the issuer certificate")?;
    check_signed(
        SignedObject {
            what: "the CRL",
            issuer_name: crl.issuer(),
            tbs: crl.tbs_cert_list.as_ref(),
            outer_algorithm: &crl.signature_algorithm,
            inner_algorithm: &crl.tbs_cert_list.signature,
            signature: &crl.signature_value.data,
        },
        issuer.subject(),
        issuer.public_key(),
    )
}

/// The parts of a signed X.509 structure that a signature check needs.
struct SignedObject<'a> {
    what: &'a str,
    issuer_name: &'a X509Name<'a>,
    tbs: &'a [u8],
    outer_algorithm: &'a AlgorithmIdentifier<'a>,
    inner_algorithm: &'a AlgorithmIdentifier<'a>,
    signature: &'a [u8],
}

fn check_signed(
    object: SignedObject<'_>,
    issuer_subject: &X509Name<'_>,
    issuer_key: &SubjectPublicKeyInfo<'_>,
) -> Result<(), PkiError> {
    let fail = |reason: String| PkiError::NotSignedBy {
        what: object.what.to_owned(),
        issuer: issuer_subject.to_string(),
        reason,
    };
    if object.issuer_name.as_raw() != issuer_subject.as_raw() {
        return Err(fail(format!("its issuer is {}", object.issuer_name)));
    }
    if object.outer_algorithm != object.inner_algorithm {
        return Err(fail(
            "the signed and unsigned signature algorithm identifiers differ".to_owned(),
        ));
    }
    let algorithm = verification_algorithm(&object.outer_algorithm.algorithm).ok_or_else(|| {
        fail(format!(
            "unsupported signature algorithm {}",
            object.outer_algorithm.algorithm
        ))
    })?;
    UnparsedPublicKey::new(algorithm, &issuer_key.subject_public_key.data)
        .verify(object.tbs, object.signature)
        .map_err(|_| fail("the signature does not verify under the issuer's public key".to_owned()))
}

fn verification_algorithm(
    oid: &x509_parser::der_parser::oid::Oid<'_>,
) -> Option<&'static dyn VerificationAlgorithm> {
    if *oid == OID_SIG_ECDSA_WITH_SHA256 {
        Some(&signature::ECDSA_P256_SHA256_ASN1)
    } else if *oid == OID_SIG_ECDSA_WITH_SHA384 {
        Some(&signature::ECDSA_P384_SHA384_ASN1)
    } else if *oid == OID_PKCS1_SHA256WITHRSA {
        Some(&signature::RSA_PKCS1_2048_8192_SHA256)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    use super::*;

    fn ca(cn: &str) -> (Vec<u8>, Issuer<'static, KeyPair>) {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        (der, Issuer::new(params, key))
    }

    fn leaf(issuer: &Issuer<'_, KeyPair>, rsa: bool) -> Vec<u8> {
        let key = if rsa {
            KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap()
        } else {
            KeyPair::generate().unwrap()
        };
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    #[test]
    fn accepts_the_real_issuer_and_refuses_another() {
        let (ca_der, issuer) = ca("CA one");
        let (other_der, _) = ca("CA two");
        let leaf_der = leaf(&issuer, false);
        verify_issued_by(&leaf_der, &ca_der).unwrap();
        verify_issued_by(&ca_der, &ca_der).unwrap();
        let err = verify_issued_by(&leaf_der, &other_der).unwrap_err();
        assert!(err.to_string().contains("its issuer is CN=CA one"), "{err}");
    }

    #[test]
    fn same_name_different_key_is_refused() {
        let (_, issuer) = ca("Same name");
        let (impostor_der, _) = ca("Same name");
        let leaf_der = leaf(&issuer, false);
        let err = verify_issued_by(&leaf_der, &impostor_der).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }

    #[test]
    fn rsa_issuer_is_supported() {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, "RSA CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let ca_der = params.self_signed(&key).unwrap().der().to_vec();
        let issuer = Issuer::new(params, key);
        verify_issued_by(&leaf(&issuer, true), &ca_der).unwrap();
    }

    #[test]
    fn a_flipped_signature_bit_is_caught() {
        let (ca_der, issuer) = ca("CA");
        let mut leaf_der = leaf(&issuer, false);
        let last = leaf_der.len() - 1;
        leaf_der[last] ^= 0x01;
        assert!(verify_issued_by(&leaf_der, &ca_der).is_err());
    }
}
