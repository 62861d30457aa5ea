//! Certification path building and validation (see the parent module for the rules).
//!
//! Paths are searched depth-first from the signer's certificate through the untrusted pool
//! to an anchor, following only links whose issuer key verifies the subject certificate's
//! signature. Each complete path is then validated (time, CA flags, key usage, CRLs); the
//! first valid one wins, otherwise the first path's error is reported, or an
//! `UntrustedChain` explaining where the search stopped.

use time::OffsetDateTime;

use super::TrustError;
use crate::certs::{
    CertInfo, CrlInfo, KU_CRL_SIGN, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, KU_NON_REPUDIATION,
    SigCheck, fmt_time,
};

/// Longest path searched (certificates, anchor included).
const MAX_PATH_LEN: usize = 8;
/// Most candidate paths examined.
const MAX_PATHS: usize = 8;

/// Picks the signer's certificate among those a `KeyInfo` carries: the first (in document
/// order) that issues none of the others. Certificates that do not verify as issuers are
/// not considered issuers, so a wrong choice can only lead to a refusal, never to trust.
pub(super) fn select_leaf(certs: &[CertInfo]) -> Option<usize> {
    if certs.is_empty() {
        return None;
    }
    let issues_another = |i: usize| {
        certs.iter().enumerate().any(|(j, other)| {
            j != i && other.der != certs[i].der && other.check_issued_by(&certs[i]).is_ok()
        })
    };
    Some((0..certs.len()).find(|&i| !issues_another(i)).unwrap_or(0))
}

/// Where the path search stopped, for the error message.
#[derive(Default)]
struct DeadEnd {
    depth: usize,
    reason: Option<String>,
}

impl DeadEnd {
    fn record(&mut self, depth: usize, reason: String) {
        if self.reason.is_none() || depth > self.depth {
            self.depth = depth;
            self.reason = Some(reason);
        }
    }
}

/// Builds candidate paths and returns the first that validates.
pub(super) fn validate<'a>(
    leaf: &'a CertInfo,
    pool: &[&'a CertInfo],
    anchors: &'a [CertInfo],
    crls: &[CrlInfo],
    at: OffsetDateTime,
) -> Result<Vec<&'a CertInfo>, TrustError> {
    let mut paths: Vec<Vec<&'a CertInfo>> = Vec::new();
    let mut dead_end = DeadEnd::default();
    let mut current_path = vec![leaf];
    search(&mut current_path, pool, anchors, &mut paths, &mut dead_end);
    if paths.is_empty() {
        return Err(TrustError::UntrustedChain {
            reason: dead_end.reason.unwrap_or_else(|| {
                format!(
                    "no path from '{}' to a configured trust anchor",
                    leaf.subject
                )
            }),
        });
    }
    let mut first_error = None;
    for path in paths {
        match check_path(&path, crls, at) {
            Ok(()) => return Ok(path),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| TrustError::UntrustedChain {
        reason: "no valid path".into(),
    }))
}

/// Depth-first search. `path` holds the certificates from the leaf to the current one.
fn search<'a>(
    path: &mut Vec<&'a CertInfo>,
    pool: &[&'a CertInfo],
    anchors: &'a [CertInfo],
    out: &mut Vec<Vec<&'a CertInfo>>,
    dead_end: &mut DeadEnd,
) {
    if out.len() >= MAX_PATHS {
        return;
    }
    let Some(&current) = path.last() else {
        return;
    };
    let depth = path.len();
    // The current certificate is itself an anchor (full-certificate match).
    if anchors.iter().any(|a| a.der == current.der) {
        out.push(path.clone());
        return;
    }
    let mut found = false;
    // Issued by an anchor: name match AND the anchor's key verifies the signature.
    for anchor in anchors {
        if current.issuer_raw != anchor.subject_raw {
            continue;
        }
        match current.check_issued_by(anchor) {
            Ok(()) => {
                let mut complete = path.clone();
                complete.push(anchor);
                out.push(complete);
                found = true;
            }
            Err(SigCheck::Invalid) => dead_end.record(
                depth,
                format!(
                    "'{}' names '{}' as its issuer; a trust anchor has that name but a \
                     different key (it is another certificate with the same subject), so \
                     it did not issue this certificate",
                    current.subject, current.issuer
                ),
            ),
            Err(SigCheck::Unsupported(why)) => dead_end.record(
                depth,
                format!(
                    "cannot check '{}' against its anchor: {why}",
                    current.subject
                ),
            ),
        }
    }
    if found || path.len() >= MAX_PATH_LEN {
        if !found {
            dead_end.record(
                depth,
                format!("path longer than {MAX_PATH_LEN} certificates"),
            );
        }
        return;
    }
    // Issued by an untrusted intermediate.
    let mut any_candidate = false;
    for &cand in pool {
        if cand.der == current.der
            || path.iter().any(|p| p.der == cand.der)
            || anchors.iter().any(|a| a.der == cand.der)
            || current.issuer_raw != cand.subject_raw
        {
            continue;
        }
        any_candidate = true;
        match current.check_issued_by(cand) {
            Ok(()) => {
                path.push(cand);
                search(path, pool, anchors, out, dead_end);
                path.pop();
            }
            Err(SigCheck::Invalid) => dead_end.record(
                depth,
                format!(
                    "the supplied certificate '{}' has the issuer name of '{}' but did not \
                     sign it",
                    cand.subject, current.subject
                ),
            ),
            Err(SigCheck::Unsupported(why)) => {
                dead_end.record(depth, format!("cannot check '{}': {why}", current.subject))
            }
        }
    }
    if !any_candidate && !found {
        let is_leaf = depth == 1;
        let reason = if current.is_self_issued() {
            format!(
                "'{}' is self-signed and is not a configured trust anchor",
                current.subject
            )
        } else if is_leaf {
            format!(
                "the signer certificate '{}' was issued by '{}', which is neither a \
                 configured trust anchor nor among the supplied certificates (missing \
                 intermediate CA certificate, or signed by another CA)",
                current.subject, current.issuer
            )
        } else {
            format!(
                "intermediate '{}' was issued by '{}', which is neither a configured trust \
                 anchor nor among the supplied certificates",
                current.subject, current.issuer
            )
        };
        dead_end.record(depth, reason);
    }
}

/// Validates one complete path (leaf first, anchor last).
fn check_path(path: &[&CertInfo], crls: &[CrlInfo], at: OffsetDateTime) -> Result<(), TrustError> {
    // Parse-level refusals first, for every element.
    for cert in path {
        if let Some(oid) = &cert.unknown_critical {
            return Err(TrustError::BadCertificate {
                subject: cert.subject.clone(),
                reason: format!("unsupported critical extension {oid}"),
            });
        }
        if let Some(why) = cert.key.weakness() {
            return Err(TrustError::BadCertificate {
                subject: cert.subject.clone(),
                reason: why,
            });
        }
    }
    // Validity of every element, leaf first.
    for cert in path {
        if at < cert.not_before {
            return Err(TrustError::NotYetValid {
                subject: cert.subject.clone(),
                not_before: cert.not_before,
            });
        }
        if at > cert.not_after {
            return Err(TrustError::Expired {
                subject: cert.subject.clone(),
                not_after: cert.not_after,
            });
        }
    }
    // The signer's key usage.
    let Some(leaf) = path.first() else {
        return Err(TrustError::UntrustedChain {
            reason: "empty path".into(),
        });
    };
    if let Some(ku) = leaf.key_usage
        && ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION) == 0
    {
        return Err(TrustError::KeyUsage {
            subject: leaf.subject.clone(),
            reason: "its keyUsage allows neither digitalSignature nor nonRepudiation, so it \
                     may not sign documents"
                .into(),
        });
    }
    // Issuers: CA flag, key usage, path length.
    let last = path.len() - 1;
    for (i, issuer) in path.iter().enumerate().skip(1) {
        let is_anchor = i == last;
        match issuer.basic_constraints {
            Some((false, _)) => {
                return Err(TrustError::NotACa {
                    subject: issuer.subject.clone(),
                    reason: "its basicConstraints say cA=FALSE".into(),
                });
            }
            None if !is_anchor => {
                return Err(TrustError::NotACa {
                    subject: issuer.subject.clone(),
                    reason: "it has no basicConstraints extension".into(),
                });
            }
            Some((true, Some(max))) => {
                // Non-self-issued intermediates between this issuer and the leaf.
                let below = path[1..i].iter().filter(|c| !c.is_self_issued()).count();
                if below > usize::try_from(max).unwrap_or(usize::MAX) {
                    return Err(TrustError::NotACa {
                        subject: issuer.subject.clone(),
                        reason: format!(
                            "its pathLenConstraint {max} allows fewer intermediate CAs than \
                             the {below} below it"
                        ),
                    });
                }
            }
            _ => {}
        }
        if let Some(ku) = issuer.key_usage
            && ku & KU_KEY_CERT_SIGN == 0
        {
            return Err(TrustError::KeyUsage {
                subject: issuer.subject.clone(),
                reason: "its keyUsage does not allow keyCertSign, so it may not issue \
                         certificates"
                    .into(),
            });
        }
    }
    // Revocation of every non-anchor element by its issuer's CRLs.
    for (i, cert) in path.iter().enumerate().take(last) {
        let issuer = path[i + 1];
        check_revocation(cert, issuer, crls, at)?;
    }
    Ok(())
}

pub(super) fn check_revocation(
    cert: &CertInfo,
    issuer: &CertInfo,
    crls: &[CrlInfo],
    at: OffsetDateTime,
) -> Result<(), TrustError> {
    for crl in crls.iter().filter(|c| c.issuer_raw == issuer.subject_raw) {
        let invalid = |reason: String| TrustError::CrlInvalid {
            issuer: crl.issuer.clone(),
            reason,
        };
        match crl.check_signed_by(issuer) {
            Ok(()) => {}
            Err(SigCheck::Invalid) => {
                return Err(invalid(
                    "its signature does not verify with the issuer's key (it was issued by \
                     another CA with the same name, or it is corrupt)"
                        .into(),
                ));
            }
            Err(SigCheck::Unsupported(why)) => return Err(invalid(why)),
        }
        if let Some(ku) = issuer.key_usage
            && ku & KU_CRL_SIGN == 0
        {
            return Err(invalid(
                "the issuer's keyUsage does not allow cRLSign".into(),
            ));
        }
        if let Some(oid) = &crl.unknown_critical {
            return Err(invalid(format!("unsupported critical extension {oid}")));
        }
        match crl.next_update {
            None => {
                return Err(invalid(
                    "it has no nextUpdate, so its freshness cannot be judged".into(),
                ));
            }
            Some(next) if next < at => {
                return Err(invalid(format!(
                    "it expired on {} (nextUpdate); install a current CRL from the CA",
                    fmt_time(&next)
                )));
            }
            Some(_) => {}
        }
        if let Some((_, date)) = crl
            .revoked
            .iter()
            .find(|(serial, date)| *serial == cert.serial_raw && *date <= at)
        {
            return Err(TrustError::Revoked {
                subject: cert.subject.clone(),
                serial: cert.serial_hex(),
                at: *date,
            });
        }
    }
    Ok(())
}
