//! `docaxis edxml check` and `docaxis edxml new`: inspect packets and write new ones.
//!
//! `check` reads each file with the tolerant reader (as DocAxis reads what arrives from the
//! field), optionally also against the strict schema, and prints one summary per file, or a
//! JSON array. The exit status is non-zero when any file is refused.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use edxml::compose::{
    AttachmentSpec, CodeSpec, DocumentSpec, PromulgationSpec, known_agency_name, org_from_arg,
};
use edxml::schema::{SchemaKind, validate};
use edxml::{Packet, ReadOptions, SignatureState, read, write};

/// Inspect and write edXML packets (QCVN 102:2016).
#[derive(Debug, clap::Subcommand)]
pub(crate) enum EdxmlCommand {
    /// Validate packets and print what each one says.
    ///
    /// Each FILE is read as DocAxis reads packets from the network: tolerant of the variations
    /// found in the field (element order, prefixes, CRLF, `Business` spelling), strict about
    /// anything unsafe (DTDs, entities, non-UTF-8, limits). Exit status 1 if any file is refused.
    Check(CheckArgs),
    /// Write a new, unsigned document packet.
    ///
    /// Give the document with flags, or describe it fully in a TOML file (`--spec`, see
    /// `examples/*.toml`). Organisations are `CODE` (for well-known agencies) or `CODE=NAME`.
    /// Sign the result with `docaxis sign`.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// Print a JSON array instead of text.
    #[arg(long)]
    pub json: bool,
    /// Treat warnings (non-standard agency codes, unknown elements …) as refusals.
    #[arg(long)]
    pub strict: bool,
    /// Also validate against the strict DocAxis schema (`schemas/`), as the hub does.
    #[arg(long)]
    pub schema: bool,
    /// Packets to check (`.edxml`).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// TOML description of the whole document (see examples/). Other flags then are not used.
    #[arg(long, conflicts_with_all = ["from", "to", "subject", "number", "notation"])]
    pub spec: Option<PathBuf>,
    /// Sending agency: CODE or CODE=NAME.
    #[arg(long, required_unless_present = "spec")]
    pub from: Option<String>,
    /// Recipient agency: CODE or CODE=NAME; repeat for several.
    #[arg(long, required_unless_present = "spec")]
    pub to: Vec<String>,
    /// Trích yếu: what the document is about.
    #[arg(long, required_unless_present = "spec")]
    pub subject: Option<String>,
    /// Số: the document number.
    #[arg(long, required_unless_present = "spec")]
    pub number: Option<String>,
    /// Ký hiệu: the document notation, e.g. VPCP-TTĐT.
    #[arg(long, required_unless_present = "spec")]
    pub notation: Option<String>,
    /// 0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc, 4 hỏa tốc hẹn giờ.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=4))]
    pub priority: u8,
    /// File to attach; repeat for several.
    #[arg(long = "attach")]
    pub attach: Vec<PathBuf>,
    /// Where to write the packet.
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
}

/// Runs an `edxml` subcommand.
pub(crate) fn run(cmd: EdxmlCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EdxmlCommand::Check(args) => check(&args, &mut std::io::stdout().lock()),
        EdxmlCommand::New(args) => {
            new(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One attachment in a summary.
#[derive(Debug, Serialize)]
pub(crate) struct AttachmentSummary {
    pub name: String,
    pub content_type: String,
    pub size: u64,
    pub zip: bool,
}

/// What `check` reports for one file.
#[derive(Debug, Serialize)]
pub(crate) struct CheckReport {
    pub file: String,
    pub ok: bool,
    pub kind: Option<String>,
    pub from: Option<String>,
    pub to: Vec<String>,
    pub document_id: Option<String>,
    pub code: Option<String>,
    pub subject: Option<String>,
    pub priority: Option<u8>,
    pub status_code: Option<String>,
    pub attachments: Vec<AttachmentSummary>,
    pub signature: Option<String>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
}

impl CheckReport {
    fn refused(file: &Path, error: String) -> CheckReport {
        CheckReport {
            file: file.display().to_string(),
            ok: false,
            kind: None,
            from: None,
            to: Vec::new(),
            document_id: None,
            code: None,
            subject: None,
            priority: None,
            status_code: None,
            attachments: Vec::new(),
            signature: None,
            warnings: Vec::new(),
            error: Some(error),
        }
    }
}

fn signature_label(s: &SignatureState) -> &'static str {
    match s {
        SignatureState::Absent => "unsigned",
        SignatureState::LegacyUnsigned => "unsigned (legacy)",
        SignatureState::XmlDsig => "signed (not verified: use docaxis verify)",
    }
}

/// Checks one file's bytes.
pub(crate) fn check_bytes(file: &Path, bytes: &[u8], strict: bool, schema: bool) -> CheckReport {
    let opts = ReadOptions {
        strict,
        ..ReadOptions::default()
    };
    let outcome = match read(bytes, &opts) {
        Ok(o) => o,
        Err(e) => return CheckReport::refused(file, e.to_string()),
    };
    let mut report = CheckReport::refused(file, String::new());
    report.error = None;
    report.ok = true;
    report.warnings = outcome.warnings.iter().map(|w| w.to_string()).collect();
    report.signature = Some(signature_label(&outcome.signature).to_string());
    report.from = Some(outcome.packet.from().organ_id.to_string());
    report.to = outcome.packet.to().iter().map(|c| c.to_string()).collect();
    report.document_id = Some(outcome.packet.document_id().to_string());
    let schema_kind = match &outcome.packet {
        Packet::Document(d) => {
            report.kind = Some("document".into());
            report.code = Some(format!("{}/{}", d.code.code_number, d.code.code_notation));
            report.subject = Some(d.subject.clone());
            report.priority = Some(d.priority().code());
            report.attachments = d
                .attachments
                .iter()
                .map(|a| AttachmentSummary {
                    name: a.name.clone(),
                    content_type: a.content_type.clone(),
                    size: a.decoded_len(),
                    zip: a.is_zip(),
                })
                .collect();
            SchemaKind::Document
        }
        Packet::Status(s) => {
            report.kind = Some("status".into());
            report.status_code = Some(s.status_code.as_str().to_string());
            report.code = s.response_for.code.clone();
            SchemaKind::Status
        }
    };
    if strict && !report.warnings.is_empty() {
        report.ok = false;
        report.error = Some(format!(
            "refused in strict mode: {}",
            report.warnings.join("; ")
        ));
    } else if schema && let Err(e) = validate(schema_kind, bytes) {
        report.ok = false;
        report.error = Some(format!("not valid against the strict schema: {e}"));
    }
    report
}

fn check(args: &CheckArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let mut reports = Vec::new();
    for file in &args.files {
        let report = match read_limited(file) {
            Ok(bytes) => check_bytes(file, &bytes, args.strict, args.schema),
            Err(e) => CheckReport::refused(file, format!("{e:#}")),
        };
        reports.push(report);
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &reports)?;
        writeln!(out)?;
    } else {
        for r in &reports {
            print_report(r, out)?;
        }
        let refused = reports.iter().filter(|r| !r.ok).count();
        writeln!(
            out,
            "{} file(s) checked: {} ok, {} refused",
            reports.len(),
            reports.len() - refused,
            refused
        )?;
    }
    Ok(if reports.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn read_limited(file: &Path) -> anyhow::Result<Vec<u8>> {
    let limit = ReadOptions::default().limits.max_bytes as u64;
    let meta =
        std::fs::metadata(file).with_context(|| format!("cannot read {}", file.display()))?;
    anyhow::ensure!(
        meta.len() <= limit,
        "{} is {} bytes, over the {} byte limit",
        file.display(),
        meta.len(),
        limit
    );
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

fn print_report(r: &CheckReport, out: &mut dyn Write) -> std::io::Result<()> {
    if !r.ok {
        writeln!(out, "REFUSED {}", r.file)?;
        if let Some(e) = &r.error {
            writeln!(out, "  reason:      {e}")?;
        }
        return writeln!(out);
    }
    writeln!(out, "OK      {}", r.file)?;
    let field = |out: &mut dyn Write, name: &str, v: &Option<String>| -> std::io::Result<()> {
        match v {
            Some(v) => writeln!(out, "  {name:<12} {v}"),
            None => Ok(()),
        }
    };
    field(out, "kind:", &r.kind)?;
    field(out, "from:", &r.from)?;
    writeln!(out, "  {:<12} {}", "to:", r.to.join(", "))?;
    field(out, "document:", &r.document_id)?;
    field(out, "code:", &r.code)?;
    field(out, "subject:", &r.subject)?;
    if let Some(p) = r.priority
        && let Some(p) = edxml::Priority::from_code(p)
    {
        writeln!(
            out,
            "  {:<12} {} ({}, {})",
            "priority:",
            p.code(),
            p.label_vi(),
            p.label_en()
        )?;
    }
    if let Some(code) = &r.status_code
        && let Ok(s) = edxml::StatusCode::parse(code)
    {
        writeln!(
            out,
            "  {:<12} {} {} ({})",
            "status:",
            code,
            s.label_vi(),
            s.label_en()
        )?;
    }
    for a in &r.attachments {
        writeln!(
            out,
            "  {:<12} {} ({}, {} bytes{})",
            "attachment:",
            a.name,
            a.content_type,
            a.size,
            if a.zip { ", ZIP" } else { "" }
        )?;
    }
    field(out, "signature:", &r.signature)?;
    for w in &r.warnings {
        writeln!(out, "  {:<12} {w}", "warning:")?;
    }
    writeln!(out)
}

fn new(args: &NewArgs) -> anyhow::Result<()> {
    let (spec, base) = match &args.spec {
        Some(path) => {
            let spec = DocumentSpec::load(path)?;
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            (spec, base)
        }
        None => (spec_from_flags(args), PathBuf::from(".")),
    };
    let doc = spec.build(&base, &known_agency_name)?;
    let bytes = write(&Packet::Document(doc.clone()))?;
    edxml::schema::validate(edxml::schema::SchemaKind::Document, &bytes)
        .context("the document would not pass the strict edXML schema; nothing was written")?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!(
        "wrote {} ({} bytes): document {} from {} to {}, {} attachment(s), unsigned",
        args.output.display(),
        bytes.len(),
        doc.document_id,
        doc.from.organ_id,
        doc.to
            .iter()
            .map(|o| o.organ_id.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        doc.attachments.len()
    );
    Ok(())
}

fn spec_from_flags(args: &NewArgs) -> DocumentSpec {
    DocumentSpec {
        from: org_from_arg(args.from.as_deref().unwrap_or_default()),
        to: args.to.iter().map(|t| org_from_arg(t)).collect(),
        subject: args.subject.clone().unwrap_or_default(),
        content: None,
        document_id: None,
        code: CodeSpec {
            number: args.number.clone().unwrap_or_default(),
            notation: args.notation.clone().unwrap_or_default(),
        },
        promulgation: PromulgationSpec::default(),
        document_type: None,
        priority: Some(args.priority),
        steering_type: None,
        due_date: None,
        to_places: Vec::new(),
        signer: None,
        staff: None,
        attachments: args
            .attach
            .iter()
            .map(|f| AttachmentSpec {
                file: f.clone(),
                name: None,
                content_type: None,
                description: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance_packets_summarise_and_attacks_are_refused() {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/conformance"
        ));
        let doc = dir.join("document_new.edxml");
        let r = check_bytes(&doc, &std::fs::read(&doc).unwrap(), false, false);
        assert!(r.ok, "{:?}", r.error);
        assert_eq!(r.kind.as_deref(), Some("document"));
        assert_eq!(r.signature.as_deref(), Some("unsigned (legacy)"));
        assert_eq!(r.to.len(), 3);
        assert_eq!(r.attachments.len(), 1);
        assert!(r.attachments[0].zip);
        let bomb = b"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><edXML/>";
        let r = check_bytes(Path::new("bomb.xml"), bomb, false, false);
        assert!(!r.ok);
        assert!(r.error.unwrap().to_lowercase().contains("doctype"));
    }

    #[test]
    fn json_output_has_the_documented_fields() {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/conformance"
        ));
        let args = CheckArgs {
            json: true,
            strict: false,
            schema: false,
            files: vec![dir.join("status_01_received.edxml")],
        };
        let mut out = Vec::new();
        let code = check(&args, &mut out).unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let r = &v[0];
        for key in [
            "file",
            "ok",
            "kind",
            "from",
            "to",
            "document_id",
            "subject",
            "status_code",
            "signature",
            "warnings",
            "error",
        ] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert_eq!(r["kind"], "status");
        assert_eq!(r["status_code"], "01");
        assert_eq!(r["to"][0], "000.00.00.G22");
    }
}
