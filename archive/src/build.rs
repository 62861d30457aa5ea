//! Building one document's container from the bytes a node stored.
//!
//! Invariants: every packet and receipt goes in byte for byte as stored (never parsed and
//! written again); every file is listed in `META-INF/evidence.xml` with its SHA-256 and in
//! `META-INF/manifest.xml`; the certificates are those the signatures carry; the CRLs are
//! those that were in force when the hub received a packet, plus the newest of each issuer.

use std::collections::BTreeMap;

use dsig::evidence::{crl_facts, names_of, signature_certificates};
use dsig::receipt::{HubReceipt, ReceiptKind};
use edxml::{Packet, ReadOptions};
use time::OffsetDateTime;

use crate::container::{self, FileOut};
use crate::manifest::{EVIDENCE_PATH, FileEntry, Manifest, Role, sha256_hex};
use crate::metadata::{self, Records};

/// One packet and the hub's receipts about it, as the node stored them.
#[derive(Debug, Clone)]
pub struct PacketIn {
    /// [`Role::Document`], [`Role::Status`] or [`Role::Request`].
    pub role: Role,
    pub bytes: Vec<u8>,
    pub submission_receipt: Option<Vec<u8>>,
    pub delivery_receipts: Vec<Vec<u8>>,
}

/// What a container is made of.
#[derive(Debug, Clone)]
pub struct Input {
    /// The node's agency code.
    pub node: String,
    pub document_id: String,
    pub records: Records,
    /// The document first; statuses and requests after it, in any order.
    pub packets: Vec<PacketIn>,
    /// Every CRL the node's trust has held (DER); the builder picks the ones that matter.
    pub crls: Vec<Vec<u8>>,
    pub created: OffsetDateTime,
}

/// Why a container cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the archive has no document packet")]
    NoDocument,
    #[error("stored packet {index} cannot be read: {reason}")]
    Packet { index: usize, reason: String },
    #[error("a stored receipt cannot be read: {0}")]
    Receipt(String),
    #[error(transparent)]
    Container(#[from] container::ContainerError),
}

fn time_text(t: OffsetDateTime) -> String {
    crate::xml::utc_millis(t)
}

struct Named {
    packet: PacketIn,
    parsed: Packet,
    stem: String,
    /// When the hub received it (submission receipt), or else when it delivered it.
    hub_time: Option<OffsetDateTime>,
}

/// Builds the container.
pub fn build(input: &Input) -> Result<Vec<u8>, BuildError> {
    let mut named: Vec<Named> = Vec::new();
    for (index, p) in input.packets.iter().enumerate() {
        let parsed = edxml::read(&p.bytes, &ReadOptions::default())
            .map_err(|e| BuildError::Packet {
                index,
                reason: e.to_string(),
            })?
            .packet;
        let submission = p
            .submission_receipt
            .as_deref()
            .map(HubReceipt::parse)
            .transpose()
            .map_err(|e| BuildError::Receipt(e.to_string()))?;
        let mut hub_time = submission.map(|r| r.hub_time);
        if hub_time.is_none() {
            for d in &p.delivery_receipts {
                let r = HubReceipt::parse(d).map_err(|e| BuildError::Receipt(e.to_string()))?;
                hub_time = Some(hub_time.map_or(r.hub_time, |t: OffsetDateTime| t.min(r.hub_time)));
            }
        }
        named.push(Named {
            packet: p.clone(),
            parsed,
            stem: String::new(),
            hub_time,
        });
    }
    let doc_index = named
        .iter()
        .position(|n| n.packet.role == Role::Document)
        .ok_or(BuildError::NoDocument)?;
    let document = named.remove(doc_index);
    named.sort_by_key(|n| n.hub_time.map(|t| t.unix_timestamp_nanos()));
    named.insert(0, document);
    let width = if named.len() > 99 { 3 } else { 2 };
    for (i, n) in named.iter_mut().enumerate() {
        let what = match (&n.parsed, n.packet.role) {
            (_, Role::Document) => "document".to_string(),
            (Packet::Status(s), _) => {
                format!("status-{}-{}", s.status_code.as_str(), s.from.organ_id)
            }
            (Packet::Document(d), _) => format!(
                "request-{}-{}",
                d.bussiness_doc_type().label_en(),
                d.from.organ_id
            ),
        };
        n.stem = format!("{:0width$}-{what}", i + 1);
    }

    let mut files: Vec<(FileEntry, Vec<u8>)> = Vec::new();
    let mut certs: BTreeMap<String, (Vec<u8>, String)> = BTreeMap::new();
    let mut remember_certs = |bytes: &[u8], signer_of: &str| {
        // A batch-signed receipt's certificates are in its batch's signed tree head.
        let signed = dsig::batch::signed_part(bytes);
        if let Ok(list) = signature_certificates(&signed) {
            for der in list {
                let fp = sha256_hex(&der);
                let path = format!("certs/{}.cer", &fp[..16]);
                certs.entry(path).or_insert_with(|| {
                    let proves = match names_of(&der) {
                        Ok(n) => format!(
                            "a certificate of the chain that signed {signer_of}: {} (issued by {})",
                            n.subject, n.issuer
                        ),
                        Err(_) => format!("a certificate carried by the signature of {signer_of}"),
                    };
                    (der, proves)
                });
            }
        }
    };
    for n in &named {
        let packet_path = format!("packets/{}.edxml", n.stem);
        let proves = match (&n.parsed, n.packet.role) {
            (Packet::Document(d), Role::Document) => format!(
                "the document {}/{} \"{}\" exactly as {} ({}) signed and sent it; its SHA-256 is \
                 the packet id the hub's receipts name",
                d.code.code_number,
                d.code.code_notation,
                d.subject,
                d.from.organ_id,
                d.from.organ_name
            ),
            (Packet::Status(s), _) => format!(
                "status {} ({}) from {} about {}, exactly as signed and sent",
                s.status_code.as_str(),
                s.status_code.label_vi(),
                s.from.organ_id,
                s.response_for.document_id
            ),
            (Packet::Document(d), _) => format!(
                "a {} request ({}) from {} about {}, exactly as signed and sent",
                d.bussiness_doc_type().label_en(),
                d.bussiness_doc_type().label_vi(),
                d.from.organ_id,
                d.bussiness
                    .as_ref()
                    .and_then(|b| b.document_id.as_ref())
                    .map(|id| id.to_string())
                    .unwrap_or_default()
            ),
        };
        remember_certs(&n.packet.bytes, &packet_path);
        files.push((
            FileEntry {
                path: packet_path.clone(),
                sha256: sha256_hex(&n.packet.bytes),
                role: n.packet.role,
                about: None,
                proves,
            },
            n.packet.bytes.clone(),
        ));
        if let Some(r) = &n.packet.submission_receipt {
            let parsed = HubReceipt::parse(r).map_err(|e| BuildError::Receipt(e.to_string()))?;
            let path = format!("receipts/{}.submission.xml", n.stem);
            remember_certs(r, &path);
            files.push((
                FileEntry {
                    path,
                    sha256: sha256_hex(r),
                    role: Role::SubmissionReceipt,
                    about: Some(packet_path.clone()),
                    proves: format!(
                        "the hub received {packet_path} at {} and queued it for {}",
                        time_text(parsed.hub_time),
                        if parsed.accepted.is_empty() {
                            "nobody".to_string()
                        } else {
                            parsed.accepted.join(", ")
                        }
                    ),
                },
                r.clone(),
            ));
        }
        let mut seen = Vec::new();
        for r in &n.packet.delivery_receipts {
            let parsed = HubReceipt::parse(r).map_err(|e| BuildError::Receipt(e.to_string()))?;
            if parsed.kind != ReceiptKind::Delivery {
                continue;
            }
            let to = parsed.delivered_to.clone().unwrap_or_default();
            if seen.contains(&to) {
                continue;
            }
            seen.push(to.clone());
            let path = format!("receipts/{}.delivery-{to}.xml", n.stem);
            remember_certs(r, &path);
            files.push((
                FileEntry {
                    path,
                    sha256: sha256_hex(r),
                    role: Role::DeliveryReceipt,
                    about: Some(packet_path.clone()),
                    proves: format!(
                        "{to} fetched, verified and stored {packet_path}; the hub recorded it \
                         at {}",
                        time_text(parsed.hub_time)
                    ),
                },
                r.clone(),
            ));
        }
    }
    for (path, (der, proves)) in certs {
        files.push((
            FileEntry {
                path,
                sha256: sha256_hex(&der),
                role: Role::Certificate,
                about: None,
                proves,
            },
            der,
        ));
    }
    let times: Vec<OffsetDateTime> = named.iter().filter_map(|n| n.hub_time).collect();
    for (i, (der, facts)) in pick_crls(&input.crls, &times).into_iter().enumerate() {
        files.push((
            FileEntry {
                path: format!(
                    "crls/{:02}-{}.crl",
                    i + 1,
                    facts.this_update.unix_timestamp()
                ),
                sha256: sha256_hex(&der),
                role: Role::Crl,
                about: None,
                proves: format!(
                    "the revocations {} had published at {} (next update {})",
                    facts.issuer,
                    time_text(facts.this_update),
                    facts
                        .next_update
                        .map(time_text)
                        .unwrap_or_else(|| "not given".into())
                ),
            },
            der,
        ));
    }
    let Packet::Document(doc) = &named[0].parsed else {
        return Err(BuildError::NoDocument);
    };
    let meta = metadata::to_xml(doc, &input.records);
    files.push((
        FileEntry {
            path: "metadata.xml".into(),
            sha256: sha256_hex(&meta),
            role: Role::Metadata,
            about: None,
            proves: "the records metadata (Nghị định 30/2020/NĐ-CP), from the packet and the \
                     node's records; informative, not signed"
                .into(),
        },
        meta,
    ));
    let manifest = Manifest {
        created: time_text(input.created),
        node: input.node.clone(),
        document_id: input.document_id.clone(),
        direction: input.records.direction.clone(),
        files: files.iter().map(|(f, _)| f.clone()).collect(),
    };
    let mut out: Vec<FileOut> = files
        .into_iter()
        .map(|(f, bytes)| FileOut {
            media_type: f.role.media_type(),
            path: f.path,
            bytes,
        })
        .collect();
    out.push(FileOut {
        path: EVIDENCE_PATH.into(),
        bytes: manifest.to_xml(),
        media_type: "application/xml",
    });
    Ok(container::write(&out)?)
}

/// The CRLs in force at one of `times`, plus the newest of each issuer.
fn pick_crls(
    crls: &[Vec<u8>],
    times: &[OffsetDateTime],
) -> Vec<(Vec<u8>, dsig::evidence::CrlFacts)> {
    let mut parsed: Vec<(Vec<u8>, dsig::evidence::CrlFacts)> = crls
        .iter()
        .filter_map(|der| crl_facts(der).ok().map(|f| (der.clone(), f)))
        .collect();
    parsed.sort_by_key(|(_, f)| f.this_update);
    parsed.dedup_by(|a, b| a.0 == b.0);
    let newest: BTreeMap<Vec<u8>, OffsetDateTime> =
        parsed.iter().fold(BTreeMap::new(), |mut m, (_, f)| {
            m.insert(f.issuer_raw.clone(), f.this_update);
            m
        });
    parsed
        .into_iter()
        .filter(|(_, f)| {
            newest.get(&f.issuer_raw) == Some(&f.this_update)
                || times
                    .iter()
                    .any(|t| f.this_update <= *t && f.next_update.is_some_and(|n| n >= *t))
        })
        .collect()
}
