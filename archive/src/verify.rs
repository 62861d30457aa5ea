//! Offline verification of a container: nothing but the container, the trusted CA and
//! (optionally) more CRLs. No network, no node, no hub.
//!
//! Order of checks, each refusal naming the file and the reason:
//! 1. the container: ASiC-E form and limits ([`crate::container::read`]);
//! 2. the manifests: every entry listed in `META-INF/evidence.xml` and
//!    `META-INF/manifest.xml`, every listed file present, every SHA-256 right;
//! 3. each hub receipt: it names the SHA-256 of the packet it is about and that packet's
//!    sender; its signature verifies with a certificate that chains to the trusted CA at the
//!    receipt's own time and carries no agency code (it is the hub, not an agency);
//! 4. each packet: its signature verifies with the strict profile, its signer chains to the
//!    CA and was valid and unrevoked **at the time the hub received it** (the submission
//!    receipt's time: a revocation dated after it does not invalidate the packet, one dated
//!    before it does), and the signer is the agency the packet says sent it;
//! 5. every certificate file belongs to a chain that was validated; every CRL is readable;
//!    for each issuer in a chain a CRL speaks for the time of the check (else: cannot tell).
//!
//! The verdict is [`Verdict::Invalid`] when anything is wrong, [`Verdict::CannotTell`] when
//! nothing is wrong but evidence is missing (no CRL for the time, no hub receipt), and
//! [`Verdict::Valid`] otherwise.

use std::collections::{BTreeMap, BTreeSet};

use dsig::evidence::{CrlFacts, crl_facts, names_of};
use dsig::receipt::{HubReceipt, ReceiptKind};
use dsig::{TrustStore, Verdict as SigVerdict, VerifyPolicy, check_sender, verify_packet};
use edxml::{Packet, ReadOptions};
use serde::Serialize;
use time::OffsetDateTime;

use crate::container::{self, Limits, MANIFEST_PATH, odf_manifest_paths};
use crate::manifest::{EVIDENCE_PATH, Manifest, Role, sha256_hex};

/// What to trust.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Trusted CA certificates (DER).
    pub anchors: Vec<Vec<u8>>,
    /// CRLs given beside the container (DER).
    pub extra_crls: Vec<Vec<u8>>,
    /// When given, receipts must be signed with exactly this certificate (DER).
    pub hub_cert: Option<Vec<u8>>,
    pub limits: Limits,
}

/// The overall answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Valid,
    CannotTell,
    Invalid,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Valid => "valid",
            Verdict::CannotTell => "cannot tell",
            Verdict::Invalid => "invalid",
        }
    }
}

/// One thing found wrong or missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub verdict: Verdict,
    /// The file concerned, when there is one.
    pub file: Option<String>,
    pub reason: String,
}

/// Who sent what.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DocumentSummary {
    pub document_id: String,
    /// `sent` or `received`, from the exporting node's side.
    pub direction: String,
    /// The exporting node.
    pub node: String,
    pub number: String,
    pub type_name: Option<String>,
    pub subject: String,
    pub promulgation_date: String,
    pub from: String,
    pub from_name: String,
    /// The signer certificate's subject.
    pub signer: Option<String>,
    pub recipients: Vec<String>,
}

/// One event of the document's story, proved by a signed file.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub at: String,
    /// `accepted`, `delivered`, `status` or `request`.
    pub kind: String,
    /// The agency concerned (recipient, or the status's or request's sender).
    pub agency: String,
    /// In words.
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The file that proves it.
    pub file: String,
}

/// What verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub problems: Vec<Problem>,
    pub document: Option<DocumentSummary>,
    pub events: Vec<Event>,
    /// Files in the container (mimetype and manifests included).
    pub files: usize,
    /// Signatures verified (packets and receipts).
    pub signatures: usize,
    pub certificates: usize,
    pub crls: usize,
    /// Remarks that do not change the verdict.
    pub notes: Vec<String>,
}

fn time_text(t: OffsetDateTime) -> String {
    crate::xml::utc_millis(t)
}

struct Checker<'a> {
    opts: &'a VerifyOptions,
    /// The trusted CAs, read once.
    anchors: TrustStore,
    crls: Vec<(Vec<u8>, CrlFacts)>,
    problems: Vec<Problem>,
    used_certs: BTreeSet<Vec<u8>>,
    signatures: usize,
}

impl Checker<'_> {
    fn problem(&mut self, verdict: Verdict, file: Option<&str>, reason: impl Into<String>) {
        self.problems.push(Problem {
            verdict,
            file: file.map(str::to_string),
            reason: reason.into(),
        });
    }

    /// The trust for a check at `at`: the anchors and every CRL that speaks for `at`.
    fn trust_at(&self, at: OffsetDateTime) -> TrustStore {
        let mut t = self.anchors.clone();
        for (der, facts) in &self.crls {
            // Every CRL here was read by `crl_facts`, with the parser `add_crl_der` uses: it
            // cannot be refused now.
            if facts.speaks_for(at) {
                let _ = t.add_crl_der(der);
            }
        }
        t
    }

    /// Reports an issuer in `chain` (signer first, anchor last) with no CRL speaking for `at`.
    fn crl_gap(&mut self, file: &str, chain: &[Vec<u8>], at: OffsetDateTime) {
        for cert in chain.iter().take(chain.len().saturating_sub(1)) {
            let Ok(names) = names_of(cert) else { continue };
            let covered = self
                .crls
                .iter()
                .any(|(_, f)| f.issuer_raw == names.issuer_raw && f.speaks_for(at));
            if !covered {
                self.problem(
                    Verdict::CannotTell,
                    Some(file),
                    format!(
                        "no CRL of {} in the archive or given with --crl speaks for {}: whether \
                         {} was revoked then cannot be told",
                        names.issuer,
                        time_text(at),
                        names.subject
                    ),
                );
            }
        }
    }
}

/// Verifies the container `bytes`.
pub fn verify(bytes: &[u8], opts: &VerifyOptions) -> Report {
    let mut report = Report {
        verdict: Verdict::Valid,
        problems: Vec::new(),
        document: None,
        events: Vec::new(),
        files: 0,
        signatures: 0,
        certificates: 0,
        crls: 0,
        notes: Vec::new(),
    };
    let mut c = Checker {
        opts,
        anchors: TrustStore::new(),
        crls: Vec::new(),
        problems: Vec::new(),
        used_certs: BTreeSet::new(),
        signatures: 0,
    };
    check(bytes, &mut c, &mut report);
    report.signatures = c.signatures;
    report.problems = c.problems;
    report.verdict = report
        .problems
        .iter()
        .map(|p| p.verdict)
        .max()
        .unwrap_or(Verdict::Valid);
    report.events.sort_by(|a, b| a.at.cmp(&b.at));
    report
}

fn check(bytes: &[u8], c: &mut Checker<'_>, report: &mut Report) {
    for (i, der) in c.opts.anchors.iter().enumerate() {
        if let Err(e) = c.anchors.add_anchor_der(der) {
            c.problem(
                Verdict::CannotTell,
                None,
                format!("trusted CA certificate #{} cannot be used: {e}", i + 1),
            );
        }
    }
    // 1. The container.
    let entries = match container::read(bytes, &c.opts.limits) {
        Ok(e) => e,
        Err(e) => {
            c.problem(Verdict::Invalid, None, e.to_string());
            return;
        }
    };
    report.files = entries.len() + 1;
    // 2. The manifests.
    let Some(evidence) = entries.get(EVIDENCE_PATH) else {
        c.problem(
            Verdict::Invalid,
            Some(EVIDENCE_PATH),
            "missing: the container lists no evidence",
        );
        return;
    };
    let manifest = match Manifest::parse(evidence) {
        Ok(m) => m,
        Err(e) => {
            c.problem(Verdict::Invalid, Some(EVIDENCE_PATH), e);
            return;
        }
    };
    let listed: BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for name in entries.keys() {
        if name == EVIDENCE_PATH || name == MANIFEST_PATH {
            continue;
        }
        if !listed.contains(name.as_str()) {
            c.problem(
                Verdict::Invalid,
                Some(name),
                "extra file: in the container but not in META-INF/evidence.xml",
            );
        }
    }
    match entries.get(MANIFEST_PATH).map(|m| odf_manifest_paths(m)) {
        None => c.problem(Verdict::Invalid, Some(MANIFEST_PATH), "missing"),
        Some(Err(e)) => c.problem(Verdict::Invalid, Some(MANIFEST_PATH), e),
        Some(Ok(paths)) => {
            let odf: BTreeSet<&str> = paths.iter().map(String::as_str).collect();
            let want: BTreeSet<&str> = entries
                .keys()
                .map(String::as_str)
                .filter(|n| *n != MANIFEST_PATH)
                .collect();
            if odf != want {
                c.problem(
                    Verdict::Invalid,
                    Some(MANIFEST_PATH),
                    format!(
                        "it does not list exactly the container's files (lists {}, the \
                         container holds {})",
                        odf.len(),
                        want.len()
                    ),
                );
            }
        }
    }
    let mut files: BTreeMap<&str, (&crate::manifest::FileEntry, &[u8])> = BTreeMap::new();
    for f in &manifest.files {
        match entries.get(&f.path) {
            None => c.problem(
                Verdict::Invalid,
                Some(&f.path),
                "missing: listed in META-INF/evidence.xml but not in the container",
            ),
            Some(bytes) => {
                let actual = sha256_hex(bytes);
                if actual != f.sha256 {
                    c.problem(
                        Verdict::Invalid,
                        Some(&f.path),
                        format!(
                            "changed: its SHA-256 is {actual}, the manifest says {}",
                            f.sha256
                        ),
                    );
                } else {
                    files.insert(f.path.as_str(), (f, bytes.as_slice()));
                }
            }
        }
    }
    // CRLs: the container's and the caller's.
    for (path, (f, bytes)) in &files {
        if f.role == Role::Crl {
            match crl_facts(bytes) {
                Ok(facts) => c.crls.push((bytes.to_vec(), facts)),
                Err(e) => c.problem(Verdict::Invalid, Some(path), format!("not a CRL: {e}")),
            }
        }
    }
    report.crls = c.crls.len();
    for der in &c.opts.extra_crls {
        if let Ok(facts) = crl_facts(der) {
            c.crls.push((der.clone(), facts));
        }
    }

    // 3 and 4: packets with their receipts.
    let packets: Vec<(&str, Role, &[u8])> = files
        .iter()
        .filter(|(_, (f, _))| f.role.is_packet())
        .map(|(p, (f, b))| (*p, f.role, *b))
        .collect();
    let documents = packets.iter().filter(|p| p.1 == Role::Document).count();
    if documents != 1 {
        c.problem(
            Verdict::Invalid,
            Some(EVIDENCE_PATH),
            format!("{documents} document packets are listed; exactly one is expected"),
        );
    }
    let mut signer_leaves: Vec<(String, Vec<u8>)> = Vec::new();
    for (path, role, bytes) in &packets {
        let parsed = match edxml::read(bytes, &ReadOptions::default()) {
            Ok(o) => o.packet,
            Err(e) => {
                c.problem(
                    Verdict::Invalid,
                    Some(path),
                    format!("not a readable packet: {e}"),
                );
                continue;
            }
        };
        let from = match &parsed {
            Packet::Document(d) => d.from.organ_id.to_string(),
            Packet::Status(s) => s.from.organ_id.to_string(),
        };
        let packet_id = sha256_hex(bytes);
        let receipts: Vec<(&str, &[u8], Role)> = files
            .iter()
            .filter(|(_, (f, _))| f.role.is_receipt() && f.about.as_deref() == Some(*path))
            .map(|(p, (f, b))| (*p, *b, f.role))
            .collect();
        let receipts_claim: Vec<OffsetDateTime> = receipts
            .iter()
            .filter_map(|(_, b, _)| HubReceipt::parse(b).ok().map(|r| r.hub_time))
            .collect();
        let mut accepted: Option<(OffsetDateTime, Vec<String>, String)> = None;
        let mut delivered: Vec<(OffsetDateTime, String, String)> = Vec::new();
        for (rpath, rbytes, rrole) in receipts {
            let Some(r) = check_receipt(c, rpath, rbytes, rrole, &packet_id, path, &from) else {
                continue;
            };
            match r.kind {
                ReceiptKind::Submission => {
                    accepted = Some((r.hub_time, r.accepted.clone(), rpath.to_string()));
                }
                ReceiptKind::Delivery => delivered.push((
                    r.hub_time,
                    r.delivered_to.clone().unwrap_or_default(),
                    rpath.to_string(),
                )),
            }
        }
        if let Some((_, list, _)) = &accepted {
            for (_, to, rpath) in &delivered {
                if !list.contains(to) {
                    c.problem(
                        Verdict::Invalid,
                        Some(rpath),
                        format!(
                            "it says {to} received {path}, but the hub's submission receipt \
                             did not queue it for {to}"
                        ),
                    );
                }
            }
        }
        // The time of the check: when the hub received it.
        let at = match (&accepted, delivered.iter().map(|d| d.0).min()) {
            (Some((t, _, _)), _) => Some(*t),
            (None, Some(t)) => {
                report.notes.push(format!(
                    "{path}: the hub's submission receipt is not in the archive; its signer is \
                     checked at the first delivery time, {}, which is later and so stricter",
                    time_text(t)
                ));
                Some(t)
            }
            (None, None) if !receipts_claim.is_empty() => {
                // Receipts are there but none holds (already reported): the signature is
                // still checked, at the earliest time they claim, to say what else is wrong.
                receipts_claim.iter().min().copied()
            }
            (None, None) => {
                c.problem(
                    Verdict::CannotTell,
                    Some(path),
                    "no hub receipt about it: nothing proves when the hub received it, so its \
                     signer's validity then cannot be told",
                );
                None
            }
        };
        let mut signer_subject = None;
        if let Some(at) = at {
            let trust = c.trust_at(at);
            let policy = VerifyPolicy {
                accept_unsigned_legacy: false,
                at: Some(at),
                limits: dsig::Limits {
                    max_bytes: c.opts.limits.max_entry_bytes as usize,
                    ..dsig::Limits::default()
                },
            };
            match verify_packet(bytes, &trust, &policy) {
                Ok(SigVerdict::Signed(signed)) => {
                    c.signatures += 1;
                    if let Err(e) = check_sender(&signed, &from) {
                        c.problem(Verdict::Invalid, Some(path), e.to_string());
                    }
                    c.crl_gap(path, &signed.chain, at);
                    signer_subject = Some(signed.signer_subject.clone());
                    signer_leaves.push((path.to_string(), signed.signer_cert_der.clone()));
                    c.used_certs.extend(signed.chain.iter().cloned());
                }
                Ok(other) => c.problem(
                    Verdict::Invalid,
                    Some(path),
                    format!("it is {}, not signed", other.label()),
                ),
                Err(e) => c.problem(
                    Verdict::Invalid,
                    Some(path),
                    format!(
                        "its signature, checked as of {} (when the hub received it): {e}",
                        time_text(at)
                    ),
                ),
            }
        }
        story(
            report,
            *role,
            path,
            &parsed,
            signer_subject,
            &accepted,
            &delivered,
            &manifest,
        );
    }

    // 5. Certificates: each belongs to a validated chain, each signer's is present.
    let present: BTreeSet<Vec<u8>> = files
        .values()
        .filter(|(f, _)| f.role == Role::Certificate)
        .map(|(_, b)| b.to_vec())
        .collect();
    report.certificates = present.len();
    for (path, (f, b)) in &files {
        if f.role == Role::Certificate && !c.used_certs.contains(*b) {
            c.problem(
                Verdict::Invalid,
                Some(path),
                "this certificate is not in the validated chain of any signature in the archive \
                 (swapped or foreign)",
            );
        }
    }
    for (path, leaf) in &signer_leaves {
        if !present.contains(leaf) {
            c.problem(
                Verdict::Invalid,
                Some(path),
                "its signer's certificate is not among the archive's certificates",
            );
        }
    }
    // The metadata: present once and well-formed.
    let metas: Vec<_> = files
        .iter()
        .filter(|(_, (f, _))| f.role == Role::Metadata)
        .collect();
    if metas.len() != 1 {
        c.problem(
            Verdict::Invalid,
            Some(EVIDENCE_PATH),
            format!(
                "{} metadata files are listed; exactly one is expected",
                metas.len()
            ),
        );
    }
    for (path, (_, b)) in metas {
        if let Err(e) = crate::xml::well_formed(b, 16) {
            c.problem(Verdict::Invalid, Some(path), e);
        }
    }
    if let Some(d) = report.document.as_mut() {
        d.direction = manifest.direction.clone();
        d.node = manifest.node.clone();
        if d.document_id != manifest.document_id {
            c.problem(
                Verdict::Invalid,
                Some(EVIDENCE_PATH),
                format!(
                    "it names document {:?}, the packet is {:?}",
                    manifest.document_id, d.document_id
                ),
            );
        }
    }
}

/// Checks one receipt; returns it when it is good.
fn check_receipt(
    c: &mut Checker<'_>,
    rpath: &str,
    rbytes: &[u8],
    rrole: Role,
    packet_id: &str,
    packet_path: &str,
    from: &str,
) -> Option<HubReceipt> {
    let r = match HubReceipt::parse(rbytes) {
        Ok(r) => r,
        Err(e) => {
            c.problem(
                Verdict::Invalid,
                Some(rpath),
                format!("not a hub receipt: {e}"),
            );
            return None;
        }
    };
    let kind_ok = matches!(
        (rrole, r.kind),
        (Role::SubmissionReceipt, ReceiptKind::Submission)
            | (Role::DeliveryReceipt, ReceiptKind::Delivery)
    );
    if !kind_ok {
        c.problem(
            Verdict::Invalid,
            Some(rpath),
            format!(
                "listed as a {} but it is a {:?} receipt",
                rrole.as_str(),
                r.kind
            ),
        );
        return None;
    }
    if r.packet_id != packet_id {
        c.problem(
            Verdict::Invalid,
            Some(rpath),
            format!(
                "it is a receipt for packet {}, not for {packet_path} (SHA-256 {packet_id})",
                r.packet_id
            ),
        );
        return None;
    }
    if r.from != from {
        c.problem(
            Verdict::Invalid,
            Some(rpath),
            format!("it names sender {}, the packet is from {from}", r.from),
        );
        return None;
    }
    let trust = c.trust_at(r.hub_time);
    match dsig::batch::verify_receipt_trusted(rbytes, &trust, r.hub_time) {
        Ok((signed, _)) if signed != r => {
            // The fields checked above must be the ones the signature covers.
            c.problem(
                Verdict::Invalid,
                Some(rpath),
                "its fields read differently from what the hub signed".to_string(),
            );
            None
        }
        Ok((_, chain)) => {
            c.signatures += 1;
            if let Some(code) = chain.agency_code() {
                c.problem(
                    Verdict::Invalid,
                    Some(rpath),
                    format!("it is signed by agency {code}, not by the hub"),
                );
                return None;
            }
            if let Some(pin) = &c.opts.hub_cert
                && pin.as_slice() != chain.leaf_der()
            {
                c.problem(
                    Verdict::Invalid,
                    Some(rpath),
                    format!(
                        "it is signed by {}, not by the hub certificate given",
                        chain.subject()
                    ),
                );
                return None;
            }
            let certs = chain.certs().to_vec();
            c.crl_gap(rpath, &certs, r.hub_time);
            c.used_certs.extend(certs);
            Some(r)
        }
        Err(e) => {
            c.problem(
                Verdict::Invalid,
                Some(rpath),
                format!("its signature, as of {}: {e}", time_text(r.hub_time)),
            );
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn story(
    report: &mut Report,
    role: Role,
    path: &str,
    parsed: &Packet,
    signer: Option<String>,
    accepted: &Option<(OffsetDateTime, Vec<String>, String)>,
    delivered: &[(OffsetDateTime, String, String)],
    manifest: &Manifest,
) {
    match (role, parsed) {
        (Role::Document, Packet::Document(d)) => {
            report.document = Some(DocumentSummary {
                document_id: d.document_id.to_string(),
                direction: manifest.direction.clone(),
                node: manifest.node.clone(),
                number: format!("{}/{}", d.code.code_number, d.code.code_notation),
                type_name: d.document_type.type_name.clone(),
                subject: d.subject.clone(),
                promulgation_date: d.promulgation_info.promulgation_date.to_string(),
                from: d.from.organ_id.to_string(),
                from_name: d.from.organ_name.clone(),
                signer,
                recipients: d.to.iter().map(|o| o.organ_id.to_string()).collect(),
            });
            if let Some((at, list, file)) = accepted {
                report.events.push(Event {
                    at: time_text(*at),
                    kind: "accepted".into(),
                    agency: d.from.organ_id.to_string(),
                    text: format!("the hub accepted the document for {}", list.join(", ")),
                    staff: None,
                    reason: None,
                    file: file.clone(),
                });
            }
            for (at, to, file) in delivered {
                report.events.push(Event {
                    at: time_text(*at),
                    kind: "delivered".into(),
                    agency: to.clone(),
                    text: format!("{to} received the document"),
                    staff: None,
                    reason: None,
                    file: file.clone(),
                });
            }
        }
        (_, Packet::Status(s)) => {
            let staff = s.staff_info.as_ref().and_then(|i| {
                let parts: Vec<&str> = [i.staff.as_deref(), i.department.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                (!parts.is_empty()).then(|| parts.join(", "))
            });
            report.events.push(Event {
                at: time_text(
                    accepted
                        .as_ref()
                        .map(|a| a.0)
                        .unwrap_or_else(|| s.timestamp.to_offset_date_time()),
                ),
                kind: "status".into(),
                agency: s.from.organ_id.to_string(),
                text: format!(
                    "{} sent status {} ({}) at {}",
                    s.from.organ_id,
                    s.status_code.as_str(),
                    s.status_code.label_vi(),
                    s.timestamp
                ),
                staff,
                reason: s.description.clone(),
                file: path.to_string(),
            });
        }
        (_, Packet::Document(d)) => {
            let kind = d.bussiness_doc_type();
            report.events.push(Event {
                at: time_text(
                    accepted
                        .as_ref()
                        .map(|a| a.0)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                ),
                kind: "request".into(),
                agency: d.from.organ_id.to_string(),
                text: format!(
                    "{} sent a {} request ({}), {}",
                    d.from.organ_id,
                    kind.label_en(),
                    kind.label_vi(),
                    d.document_id
                ),
                staff: d
                    .bussiness
                    .as_ref()
                    .and_then(|b| b.staff_info.as_ref())
                    .and_then(|i| i.staff.clone()),
                reason: d.bussiness.as_ref().and_then(|b| b.reason.clone()),
                file: path.to_string(),
            });
        }
    }
}
