//! Composing new document packets from what a clerk provides: a TOML document description
//! (`examples/*.toml`) or command-line flags.
//!
//! Invariants:
//! - Every packet composed here is complete for the strict schema: agency codes are checked in
//!   strict form, names are known for every organisation, dates are valid.
//! - Defaults are the conventional ones: DocumentId `"{from},{yyyy/MM/dd},{number}/{notation}"`,
//!   promulgation date today (UTC+7), document type "Công văn", priority 0, a TraceHeader for
//!   the sender at composition time and a `Bussiness` of type 0 ("Văn bản điện tử mới").
//! - Attachment files are read from disk relative to the description's folder; their MIME type
//!   is taken from the description or guessed from the extension.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    AgencyCode, Attachment, Bussiness, BussinessDocType, Code, DocumentPacket, DocumentType,
    EdxmlDate, EdxmlDateTime, Organization, OtherInfo, Priority, SignerInfo, StaffInfo,
    TraceHeader,
};

/// Why a document could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("document description {path} is invalid: {message}")]
    Spec { path: PathBuf, message: String },
    #[error("agency code {code:?} is invalid: {message}")]
    AgencyCode { code: String, message: String },
    #[error(
        "no name is known for agency {0}: give it as {{ id = \"{0}\", name = \"...\" }} in a description, or as {0}=NAME on the command line"
    )]
    UnknownName(String),
    #[error("{field} {value:?} is invalid: {message}")]
    Field {
        field: &'static str,
        value: String,
        message: String,
    },
    #[error("a document needs at least one recipient (to)")]
    NoRecipient,
    #[error("recipient {0} is listed twice in `to`")]
    DuplicateRecipient(String),
    #[error("recipient {0} is the sending agency itself: an agency cannot send to itself")]
    SelfRecipient(String),
    #[error("{field} is {len} characters long; the edXML schema allows at most {max}: {value:?}")]
    TooLong {
        field: &'static str,
        value: String,
        len: usize,
        max: usize,
    },
}

/// Refuses a value longer than the schema's `max` characters, naming the field.
fn at_most(field: &'static str, value: &str, max: usize) -> Result<(), ComposeError> {
    let len = value.chars().count();
    if len > max {
        return Err(ComposeError::TooLong {
            field,
            value: value.to_string(),
            len,
            max,
        });
    }
    Ok(())
}

/// An organisation in a description: a bare code (name looked up) or a full table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OrgSpec {
    Code(String),
    Full(OrgTable),
}

impl OrgSpec {
    /// The agency code it names.
    pub fn code(&self) -> &str {
        match self {
            OrgSpec::Code(c) => c.trim(),
            OrgSpec::Full(t) => t.id.trim(),
        }
    }
}

/// Full organisation details.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgTable {
    pub id: String,
    pub name: Option<String>,
    pub in_charge: Option<String>,
    pub address: Option<String>,
    pub email: Option<String>,
    pub telephone: Option<String>,
    pub fax: Option<String>,
    pub website: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeSpec {
    pub number: String,
    pub notation: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromulgationSpec {
    pub place: Option<String>,
    /// `yyyy/MM/dd`; today when absent.
    pub date: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentTypeSpec {
    #[serde(rename = "type")]
    pub type_code: u32,
    pub type_detail: Option<u32>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerSpec {
    pub competence: Option<String>,
    pub position: Option<String>,
    pub full_name: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaffSpec {
    pub department: Option<String>,
    pub staff: Option<String>,
    pub email: Option<String>,
    pub mobile: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentSpec {
    /// Path of the file, relative to the description.
    pub file: PathBuf,
    /// File name written in the packet; the file's own name when absent.
    pub name: Option<String>,
    pub content_type: Option<String>,
    pub description: Option<String>,
}

/// A whole document description (`examples/*.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSpec {
    pub from: OrgSpec,
    pub to: Vec<OrgSpec>,
    pub subject: String,
    pub content: Option<String>,
    pub document_id: Option<String>,
    pub code: CodeSpec,
    #[serde(default)]
    pub promulgation: PromulgationSpec,
    pub document_type: Option<DocumentTypeSpec>,
    pub priority: Option<u8>,
    pub steering_type: Option<u32>,
    pub due_date: Option<String>,
    #[serde(default)]
    pub to_places: Vec<String>,
    pub signer: Option<SignerSpec>,
    pub staff: Option<StaffSpec>,
    #[serde(default)]
    pub attachments: Vec<AttachmentSpec>,
}

/// Names of well-known agencies, used when a description gives only a code.
pub const KNOWN_AGENCIES: &[(&str, &str)] = &[
    ("000.00.00.G01", "Bộ Công an"),
    ("000.00.00.G12", "Bộ Tài chính"),
    ("000.00.00.G22", "Văn phòng Chính phủ"),
    ("000.00.00.H14", "UBND Tỉnh Cao Bằng"),
    ("000.00.00.H41", "UBND Tỉnh Nghệ An"),
    ("000.00.00.H49", "UBND Tỉnh Quảng Ninh"),
    ("000.00.00.H53", "UBND Tỉnh Tây Ninh"),
];

/// Looks a name up in [`KNOWN_AGENCIES`].
pub fn known_agency_name(code: &str) -> Option<String> {
    KNOWN_AGENCIES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| n.to_string())
}

impl DocumentSpec {
    /// Reads a description from a TOML file.
    pub fn load(path: &Path) -> Result<DocumentSpec, ComposeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ComposeError::Io {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ComposeError::Spec {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// Builds the packet. `base` is the folder attachment paths are relative to; `names`
    /// resolves names for organisations given by code only.
    pub fn build(
        &self,
        base: &Path,
        names: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DocumentPacket, ComposeError> {
        let from = organization(&self.from, names)?;
        if self.to.is_empty() {
            return Err(ComposeError::NoRecipient);
        }
        let to = self
            .to
            .iter()
            .map(|o| organization(o, names))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, org) in to.iter().enumerate() {
            if org.organ_id == from.organ_id {
                return Err(ComposeError::SelfRecipient(org.organ_id.to_string()));
            }
            if to[..i].iter().any(|o| o.organ_id == org.organ_id) {
                return Err(ComposeError::DuplicateRecipient(org.organ_id.to_string()));
            }
        }
        let date = match &self.promulgation.date {
            Some(d) => parse_date("promulgation.date", d)?,
            None => EdxmlDate::today(),
        };
        let number = non_empty("code.number", &self.code.number)?;
        at_most("code.number", &number, 11)?;
        let notation = non_empty("code.notation", &self.code.notation)?;
        at_most("code.notation", &notation, 30)?;
        if let Some(place) = &self.promulgation.place {
            at_most("promulgation.place", place, 50)?;
        }
        if let Some(name) = self.document_type.as_ref().and_then(|t| t.name.as_ref()) {
            at_most("document_type.name", name, 100)?;
        }
        let document_id = match &self.document_id {
            Some(id) => non_empty("document_id", id)?,
            None => format!("{},{},{}/{}", from.organ_id, date, number, notation),
        };
        let document_type = match &self.document_type {
            Some(t) => DocumentType {
                type_code: t.type_code,
                type_detail: t.type_detail,
                type_name: t.name.clone(),
            },
            None => DocumentType {
                type_code: 1,
                type_detail: Some(0),
                type_name: Some("Công văn".into()),
            },
        };
        let subject = non_empty("subject", &self.subject)?;
        let mut doc = DocumentPacket::new(
            from.clone(),
            to,
            document_id,
            Code::new(number, notation),
            date,
            document_type,
            subject,
        );
        doc.promulgation_info.place = self.promulgation.place.clone();
        doc.content = self.content.clone().filter(|c| !c.trim().is_empty());
        doc.signer_info = self.signer.as_ref().map(|s| SignerInfo {
            competence: s.competence.clone(),
            position: s.position.clone(),
            full_name: s.full_name.clone(),
        });
        doc.due_date = match &self.due_date {
            Some(d) => Some(parse_date("due_date", d)?),
            None => None,
        };
        doc.to_places = self.to_places.clone();
        let priority = match self.priority {
            Some(p) => Priority::from_code(p).ok_or_else(|| ComposeError::Field {
                field: "priority",
                value: p.to_string(),
                message: "must be 0 (thường), 1 (khẩn), 2 (thượng khẩn), 3 (hỏa tốc) or 4 (hỏa tốc hẹn giờ)".into(),
            })?,
            None => Priority::default(),
        };
        doc.other_info = Some(OtherInfo {
            priority,
            ..OtherInfo::default()
        });
        doc.steering_type = self.steering_type;
        doc.trace_headers.push(TraceHeader {
            organ_id: from.organ_id.clone(),
            timestamp: EdxmlDateTime::now(),
        });
        let mut bussiness = Bussiness::new(BussinessDocType::New);
        bussiness.reason = Some("Văn bản điện tử mới".into());
        bussiness.paper = Some(0);
        bussiness.staff_info = self.staff.as_ref().map(|s| StaffInfo {
            department: s.department.clone(),
            staff: s.staff.clone(),
            email: s.email.clone(),
            mobile: s.mobile.clone(),
        });
        doc.bussiness = Some(bussiness);
        for (i, a) in self.attachments.iter().enumerate() {
            doc.add_attachment(load_attachment(base, i + 1, a)?);
        }
        Ok(doc)
    }
}

/// Reads one attachment file into an [`Attachment`] with ContentId `n`.
pub fn load_attachment(
    base: &Path,
    n: usize,
    spec: &AttachmentSpec,
) -> Result<Attachment, ComposeError> {
    let path = base.join(&spec.file);
    let bytes = std::fs::read(&path).map_err(|source| ComposeError::Io {
        path: path.clone(),
        source,
    })?;
    let name = match &spec.name {
        Some(n) => n.clone(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("attachment-{n}")),
    };
    let content_type = spec
        .content_type
        .clone()
        .unwrap_or_else(|| guess_content_type(&name).to_string());
    let mut a = Attachment::from_bytes(n.to_string(), name, content_type, &bytes);
    a.description = spec.description.clone();
    Ok(a)
}

/// MIME type from a file name's extension (`application/octet-stream` when unknown).
pub fn guess_content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "zip" => "application/zip",
        "xml" => "application/xml",
        "txt" => "text/plain",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// Parses `CODE` or `CODE=NAME` as given on a command line.
pub fn org_from_arg(arg: &str) -> OrgSpec {
    match arg.split_once('=') {
        Some((code, name)) => OrgSpec::Full(OrgTable {
            id: code.trim().to_string(),
            name: Some(name.trim().to_string()),
            in_charge: None,
            address: None,
            email: None,
            telephone: None,
            fax: None,
            website: None,
        }),
        None => OrgSpec::Code(arg.trim().to_string()),
    }
}

/// The organisation `spec` names; its name from the spec, else from `names`.
pub fn organization(
    spec: &OrgSpec,
    names: &dyn Fn(&str) -> Option<String>,
) -> Result<Organization, ComposeError> {
    let (id, table) = match spec {
        OrgSpec::Code(c) => (c.as_str(), None),
        OrgSpec::Full(t) => (t.id.as_str(), Some(t)),
    };
    let code = AgencyCode::parse_strict(id).map_err(|e| ComposeError::AgencyCode {
        code: id.to_string(),
        message: e.to_string(),
    })?;
    let name = table
        .and_then(|t| t.name.clone())
        .filter(|n| !n.trim().is_empty())
        .or_else(|| names(id))
        .ok_or_else(|| ComposeError::UnknownName(id.to_string()))?;
    let mut org = Organization::new(code, name);
    if let Some(t) = table {
        org.organization_in_charge = t.in_charge.clone();
        org.organ_add = t.address.clone();
        org.email = t.email.clone();
        org.telephone = t.telephone.clone();
        org.fax = t.fax.clone();
        org.website = t.website.clone();
    }
    Ok(org)
}

fn parse_date(field: &'static str, value: &str) -> Result<EdxmlDate, ComposeError> {
    EdxmlDate::parse(value).map_err(|e| ComposeError::Field {
        field,
        value: value.to_string(),
        message: e.to_string(),
    })
}

fn non_empty(field: &'static str, value: &str) -> Result<String, ComposeError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ComposeError::Field {
            field,
            value: value.to_string(),
            message: "must not be empty".into(),
        });
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Packet, ReadOptions, read, write};

    fn examples() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
    }

    #[test]
    fn every_example_description_builds_a_packet_that_reads_back() {
        for name in ["cong-van-ket-noi.toml", "quyet-dinh-hoa-toc.toml"] {
            let path = examples().join(name);
            let spec = DocumentSpec::load(&path).unwrap();
            let doc = spec.build(&examples(), &known_agency_name).unwrap();
            assert!(!doc.attachments.is_empty(), "{name}");
            let bytes = write(&Packet::Document(doc.clone())).unwrap();
            let back = read(&bytes, &ReadOptions::default()).unwrap();
            assert_eq!(back.packet, Packet::Document(doc), "{name}");
            crate::schema::validate(crate::schema::SchemaKind::Document, &bytes)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn default_document_id_and_errors_are_explicit() {
        let spec: DocumentSpec = toml::from_str(
            r#"
            from = "000.00.00.G22"
            to = ["000.00.00.H41=ignored-because-bare-code-needs-lookup"]
            subject = "S"
            code = { number = "12", notation = "VPCP-KSTT" }
            promulgation = { date = "2026/11/23" }
            "#,
        )
        .unwrap();
        // A bare string that is not a known code fails with the code named.
        let err = spec.build(Path::new("."), &known_agency_name).unwrap_err();
        assert!(err.to_string().contains("000.00.00.H41=ignored"), "{err}");

        let mut spec = spec;
        spec.to = vec![org_from_arg("000.00.00.H41")];
        let doc = spec.build(Path::new("."), &known_agency_name).unwrap();
        assert_eq!(
            doc.document_id.as_str(),
            "000.00.00.G22,2026/11/23,12/VPCP-KSTT"
        );
        assert_eq!(doc.to[0].organ_name, "UBND Tỉnh Nghệ An");

        spec.to = vec![org_from_arg("000.00.00.X77")];
        let err = spec.build(Path::new("."), &known_agency_name).unwrap_err();
        assert!(matches!(err, ComposeError::UnknownName(ref c) if c == "000.00.00.X77"));
        spec.to = vec![org_from_arg("000.00.00.X77=Sở Thử nghiệm")];
        assert!(spec.build(Path::new("."), &known_agency_name).is_ok());
        spec.priority = Some(9);
        assert!(spec.build(Path::new("."), &known_agency_name).is_err());
    }
}
