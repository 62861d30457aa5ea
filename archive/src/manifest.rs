//! `META-INF/evidence.xml`: the container's own manifest, listing every file with its
//! SHA-256, its role and what it proves (namespace [`EVIDENCE_NS`]).
//!
//! ```xml
//! <Evidence xmlns="urn:docaxis:archive:1" version="1">
//!   <Created>2026-12-04T20:15:00Z</Created>
//!   <Node>000.00.00.G22</Node>
//!   <DocumentId>000.00.00.G22,2026-12-04,12/VPCP-TTĐT</DocumentId>
//!   <Direction>sent</Direction>
//!   <File path="packets/01-document.edxml" sha256="…" role="document">…</File>
//!   <File path="receipts/01-document.submission.xml" sha256="…" role="submission-receipt"
//!         about="packets/01-document.edxml">…</File>
//! </Evidence>
//! ```
//!
//! Invariants: [`Manifest::to_xml`] and [`Manifest::parse`] round-trip; parsing refuses a
//! DTD, unknown elements or roles, a missing attribute, a path listed twice and digests
//! that are not 64 lower-case hex digits.

use quick_xml::events::Event;

use crate::xml::escape;

/// Namespace of the evidence manifest.
pub const EVIDENCE_NS: &str = "urn:docaxis:archive:1";
/// Path of the evidence manifest in the container.
pub const EVIDENCE_PATH: &str = "META-INF/evidence.xml";

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The document packet, as signed.
    Document,
    /// A status packet about it.
    Status,
    /// A revoke/update/replace request about it.
    Request,
    /// The hub's signed statement that it received a packet (`about`).
    SubmissionReceipt,
    /// The hub's signed statement that a recipient fetched a packet (`about`).
    DeliveryReceipt,
    /// A certificate of a signer's chain (DER).
    Certificate,
    /// A CRL (DER).
    Crl,
    /// The records metadata (Nghị định 30/2020 fields).
    Metadata,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Document,
        Role::Status,
        Role::Request,
        Role::SubmissionReceipt,
        Role::DeliveryReceipt,
        Role::Certificate,
        Role::Crl,
        Role::Metadata,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Document => "document",
            Role::Status => "status",
            Role::Request => "request",
            Role::SubmissionReceipt => "submission-receipt",
            Role::DeliveryReceipt => "delivery-receipt",
            Role::Certificate => "certificate",
            Role::Crl => "crl",
            Role::Metadata => "metadata",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// A packet (signed edXML).
    pub fn is_packet(self) -> bool {
        matches!(self, Role::Document | Role::Status | Role::Request)
    }

    /// A hub receipt.
    pub fn is_receipt(self) -> bool {
        matches!(self, Role::SubmissionReceipt | Role::DeliveryReceipt)
    }

    /// The file's media type in the container.
    pub fn media_type(self) -> &'static str {
        match self {
            Role::Certificate => "application/pkix-cert",
            Role::Crl => "application/pkix-crl",
            _ => "application/xml",
        }
    }
}

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileEntry {
    pub path: String,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: String,
    pub role: Role,
    /// For receipts: the packet file it is about.
    pub about: Option<String>,
    /// What this file proves, in words.
    pub proves: String,
}

/// The evidence manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Manifest {
    /// When the container was made (RFC 3339, UTC).
    pub created: String,
    /// The node that made it (its agency code).
    pub node: String,
    pub document_id: String,
    /// `sent` or `received`, from the node's side.
    pub direction: String,
    pub files: Vec<FileEntry>,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

impl Manifest {
    pub fn to_xml(&self) -> Vec<u8> {
        let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        s.push_str(&format!(
            "<Evidence xmlns=\"{EVIDENCE_NS}\" version=\"1\">\n"
        ));
        s.push_str(&format!("  <Created>{}</Created>\n", escape(&self.created)));
        s.push_str(&format!("  <Node>{}</Node>\n", escape(&self.node)));
        s.push_str(&format!(
            "  <DocumentId>{}</DocumentId>\n",
            escape(&self.document_id)
        ));
        s.push_str(&format!(
            "  <Direction>{}</Direction>\n",
            escape(&self.direction)
        ));
        for f in &self.files {
            s.push_str(&format!(
                "  <File path=\"{}\" sha256=\"{}\" role=\"{}\"",
                escape(&f.path),
                f.sha256,
                f.role.as_str()
            ));
            if let Some(a) = &f.about {
                s.push_str(&format!(" about=\"{}\"", escape(a)));
            }
            s.push_str(&format!(">{}</File>\n", escape(&f.proves)));
        }
        s.push_str("</Evidence>\n");
        s.into_bytes()
    }

    pub fn parse(xml: &[u8]) -> Result<Manifest, String> {
        crate::xml::well_formed(xml, 4)?;
        let mut reader = quick_xml::NsReader::from_reader(xml);
        let mut buf = Vec::new();
        let mut m = Manifest {
            created: String::new(),
            node: String::new(),
            document_id: String::new(),
            direction: String::new(),
            files: Vec::new(),
        };
        let mut path: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut current: Option<FileEntry> = None;
        let mut seen_root = false;
        loop {
            let (ns, ev) = reader
                .read_resolved_event_into(&mut buf)
                .map_err(|e| format!("not well-formed XML: {e}"))?;
            let ours = matches!(ns, quick_xml::name::ResolveResult::Bound(n)
                if n.as_ref() == EVIDENCE_NS.as_bytes());
            match ev {
                Event::Start(e) | Event::Empty(e) if !ours => {
                    return Err(format!(
                        "element {:?} is not in the evidence namespace",
                        String::from_utf8_lossy(e.name().as_ref())
                    ));
                }
                Event::Start(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    match (path.len(), name.as_str()) {
                        (0, "Evidence") => seen_root = true,
                        (1, "Created" | "Node" | "DocumentId" | "Direction") => {}
                        (1, "File") => current = Some(file_entry(&e)?),
                        _ => return Err(format!("unexpected element {name:?}")),
                    }
                    path.push(name);
                    text.clear();
                }
                Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    match (path.len(), name.as_str()) {
                        (1, "File") => m.files.push(file_entry(&e)?),
                        _ => return Err(format!("unexpected empty element {name:?}")),
                    }
                }
                Event::Text(t) => {
                    text.push_str(&t.decode().map_err(|e| format!("bad text: {e}"))?);
                }
                Event::GeneralRef(r) => {
                    let name = r.decode().map_err(|e| format!("bad reference: {e}"))?;
                    let c = match name.as_ref() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => {
                            if let Some(ch) = r.resolve_char_ref().ok().flatten() {
                                ch
                            } else {
                                return Err(format!("unknown entity &{other};"));
                            }
                        }
                    };
                    text.push(c);
                }
                Event::End(_) => {
                    let name = path.pop().unwrap_or_default();
                    let value = std::mem::take(&mut text);
                    match name.as_str() {
                        "Created" => m.created = value,
                        "Node" => m.node = value,
                        "DocumentId" => m.document_id = value,
                        "Direction" => m.direction = value,
                        "File" => {
                            if let Some(mut f) = current.take() {
                                f.proves = value;
                                m.files.push(f);
                            }
                        }
                        _ => {}
                    }
                }
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        if !seen_root {
            return Err("the document element is not Evidence".into());
        }
        if m.document_id.is_empty() {
            return Err("DocumentId is missing".into());
        }
        let mut paths: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
        paths.sort_unstable();
        if let Some(w) = paths.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("{:?} is listed twice", w[0]));
        }
        Ok(m)
    }
}

fn file_entry(e: &quick_xml::events::BytesStart<'_>) -> Result<FileEntry, String> {
    let mut path = None;
    let mut sha = None;
    let mut role = None;
    let mut about = None;
    for a in e.attributes() {
        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
        let v = a
            .unescape_value()
            .map_err(|e| format!("bad attribute: {e}"))?
            .into_owned();
        match a.key.as_ref() {
            b"path" => path = Some(v),
            b"sha256" => sha = Some(v),
            b"role" => role = Some(v),
            b"about" => about = Some(v),
            other => {
                return Err(format!(
                    "unknown File attribute {:?}",
                    String::from_utf8_lossy(other)
                ));
            }
        }
    }
    let path = path.ok_or("a File has no path")?;
    let sha256 = sha.ok_or_else(|| format!("File {path:?} has no sha256"))?;
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "File {path:?}: sha256 is not 64 lower-case hex digits"
        ));
    }
    let role_text = role.ok_or_else(|| format!("File {path:?} has no role"))?;
    let role = Role::parse(&role_text)
        .ok_or_else(|| format!("File {path:?}: unknown role {role_text:?}"))?;
    Ok(FileEntry {
        path,
        sha256,
        role,
        about,
        proves: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_round_trips_and_refuses_what_it_does_not_know() {
        let m = Manifest {
            created: "2026-12-04T20:15:00Z".into(),
            node: "000.00.00.G22".into(),
            document_id: "000.00.00.G22,2026-12-04,12/VPCP-TTĐT".into(),
            direction: "sent".into(),
            files: vec![
                FileEntry {
                    path: "packets/01-document.edxml".into(),
                    sha256: sha256_hex(b"x"),
                    role: Role::Document,
                    about: None,
                    proves: "what <was> sent & signed".into(),
                },
                FileEntry {
                    path: "receipts/01-document.submission.xml".into(),
                    sha256: sha256_hex(b"y"),
                    role: Role::SubmissionReceipt,
                    about: Some("packets/01-document.edxml".into()),
                    proves: "when".into(),
                },
            ],
        };
        let xml = m.to_xml();
        assert_eq!(Manifest::parse(&xml).unwrap(), m);
        let text = String::from_utf8(xml).unwrap();
        let twice = text.replace(
            "receipts/01-document.submission.xml",
            "packets/01-document.edxml",
        );
        assert!(
            Manifest::parse(twice.as_bytes())
                .unwrap_err()
                .contains("twice")
        );
        let odd = text.replace("role=\"document\"", "role=\"poem\"");
        assert!(
            Manifest::parse(odd.as_bytes())
                .unwrap_err()
                .contains("unknown role")
        );
        let dtd = text.replace("<Evidence", "<!DOCTYPE x><Evidence");
        assert!(Manifest::parse(dtd.as_bytes()).is_err());
    }
}
