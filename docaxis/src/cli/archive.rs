//! `docaxis archive export` (at a node, through its API) and `docaxis archive verify`
//! (anywhere, offline): records packages of documents with their evidence.
//!
//! Exit status of `verify`: 0 every container valid, 1 at least one invalid, 3 none invalid
//! but at least one that cannot be told (evidence missing, e.g. no CRL for the time), 2 a
//! usage or I/O error (as every other command).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use archive::verify::{Report, Verdict, VerifyOptions};

use super::node::{ConfigArg, refused, runtime};

/// `docaxis archive …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ArchiveCommand {
    Export(ExportArgs),
    Verify(VerifyArgs),
}

/// Export documents from a running node as ASiC-E containers (one `.asice` per document):
/// the exchanged packets byte for byte, the hub's receipts, every status and request, the
/// signers' certificates, the CRLs in force and the records metadata of Nghị định 30/2020.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Document ids (or document packet ids) to export.
    #[arg(value_name = "DOC", required_unless_present_any = ["since", "until"])]
    pub documents: Vec<String>,
    /// Export every document sent or received from this day (YYYY-MM-DD, Vietnam time) or
    /// instant (RFC 3339).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// … up to the end of this day (YYYY-MM-DD) or before this instant (RFC 3339).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Where to write: a file (one document) or a folder (created if needed). Default: the
    /// current folder, each container under its document's name.
    #[arg(short = 'o', long = "output", value_name = "FILE|DIR")]
    pub output: Option<PathBuf>,
    /// Print JSON (one object per container written).
    #[arg(long)]
    pub json: bool,
}

/// Verify containers entirely offline: every signature (strict profile), every digest of
/// the manifest, that each receipt names the packet it acknowledges, and that each signer
/// chained to the trusted CA and was valid and unrevoked when the hub received the packet.
/// Prints who sent what, when the hub accepted it, who received it when, and every status.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Containers (`.asice`).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// The trusted national CA certificate(s), PEM.
    #[arg(long, value_name = "CA.pem", required = true)]
    pub trust: Vec<PathBuf>,
    /// More CRLs (PEM) besides those the container carries, e.g. a newer one from the CA.
    #[arg(long, value_name = "CRL.pem")]
    pub crl: Vec<PathBuf>,
    /// Require the hub's receipts to be signed with exactly this certificate (PEM).
    #[arg(long, value_name = "HUB.pem")]
    pub hub: Option<PathBuf>,
    /// Print JSON: an array with one report per file.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn run(cmd: ArchiveCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ArchiveCommand::Export(a) => run_export(a),
        ArchiveCommand::Verify(a) => run_verify(a),
    }
}

fn run_export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let client = args.config.client()?;
    let rt = runtime()?;
    let mut keys = args.documents.clone();
    if args.since.is_some() || args.until.is_some() {
        let since = args
            .since
            .as_deref()
            .map(|s| exchange::clock::parse_bound(s, false))
            .transpose()?;
        let until = args
            .until
            .as_deref()
            .map(|s| exchange::clock::parse_bound(s, true))
            .transpose()?;
        let found = match rt.block_on(client.archive_candidates(since, until)) {
            Ok(c) => c,
            Err(e) => return refused(e),
        };
        if found.truncated {
            eprintln!(
                "note: more documents matched than one listing holds ({}); narrow the window \
                 and export the rest separately",
                found.items.len()
            );
        }
        keys.extend(found.items);
    }
    if keys.is_empty() {
        eprintln!("no document sent or received in that window");
        return Ok(ExitCode::SUCCESS);
    }
    let to_file = match &args.output {
        Some(p) => keys.len() == 1 && !p.is_dir() && !p.to_string_lossy().ends_with('/'),
        None => false,
    };
    let dir = match (&args.output, to_file) {
        (Some(p), false) => {
            std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))?;
            p.clone()
        }
        _ => PathBuf::from("."),
    };
    let mut out = std::io::stdout().lock();
    let total = keys.len();
    for (i, key) in keys.iter().enumerate() {
        let (name, bytes) = match rt.block_on(client.archive_container(key)) {
            Ok(x) => x,
            Err(e) => return refused(e),
        };
        let path = match (&args.output, to_file) {
            (Some(p), true) => p.clone(),
            _ => dir.join(&name),
        };
        write_durably(&path, &bytes)?;
        if args.json {
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({
                    "key": key,
                    "file": path.display().to_string(),
                    "bytes": bytes.len(),
                    "sha256": archive::manifest::sha256_hex(&bytes),
                }),
            )?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "[{}/{total}] {} ({} KB)",
                i + 1,
                path.display(),
                bytes.len().div_ceil(1024)
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it into place.
fn write_durably(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.part",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn pem_ders(path: &Path, label: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let blocks =
        dsig::pem::blocks(&pem, label).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if blocks.is_empty() {
        anyhow::bail!("{} holds no PEM block {label:?}", path.display());
    }
    Ok(blocks)
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut opts = VerifyOptions::default();
    for p in &args.trust {
        opts.anchors.extend(pem_ders(p, "CERTIFICATE")?);
    }
    for p in &args.crl {
        opts.extra_crls.extend(pem_ders(p, "X509 CRL")?);
    }
    if let Some(p) = &args.hub {
        opts.hub_cert = pem_ders(p, "CERTIFICATE")?.into_iter().next();
    }
    let mut reports = Vec::new();
    for f in &args.files {
        let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
        reports.push((f.display().to_string(), archive::verify(&bytes, &opts)));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let list = reports
            .iter()
            .map(|(file, r)| {
                let mut v = serde_json::to_value(r)?;
                v["file"] = serde_json::Value::String(file.clone());
                Ok(v)
            })
            .collect::<Result<Vec<serde_json::Value>, serde_json::Error>>()?;
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
    } else {
        for (file, r) in &reports {
            print_report(&mut out, "", file, r)?;
        }
    }
    let worst = reports.iter().map(|(_, r)| r.verdict).max();
    Ok(match worst {
        Some(Verdict::Invalid) => ExitCode::from(1),
        Some(Verdict::CannotTell) => ExitCode::from(3),
        _ => ExitCode::SUCCESS,
    })
}

/// The human summary of one report.
pub(crate) fn print_report(
    out: &mut dyn Write,
    indent: &str,
    file: &str,
    r: &Report,
) -> std::io::Result<()> {
    let verdict = match r.verdict {
        Verdict::Valid => "VALID",
        Verdict::Invalid => "INVALID",
        Verdict::CannotTell => "CANNOT TELL",
    };
    writeln!(out, "{indent}{file}: {verdict}")?;
    if let Some(d) = &r.document {
        writeln!(
            out,
            "{indent}  document   {} {} — {}",
            d.type_name.as_deref().unwrap_or("văn bản"),
            d.number,
            d.subject
        )?;
        writeln!(out, "{indent}  id         {}", d.document_id)?;
        writeln!(
            out,
            "{indent}  issued     {} by {} ({})",
            d.promulgation_date, d.from_name, d.from
        )?;
        if let Some(s) = &d.signer {
            writeln!(out, "{indent}  signed by  {s}")?;
        }
        writeln!(out, "{indent}  to         {}", d.recipients.join(", "))?;
        writeln!(
            out,
            "{indent}  exported   by {} ({} there)",
            d.node, d.direction
        )?;
    }
    if !r.events.is_empty() {
        writeln!(out, "{indent}  what happened (hub time, UTC):")?;
        for e in &r.events {
            let mut line = format!("{indent}    {}  {}", e.at, e.text);
            if let Some(s) = &e.staff {
                line.push_str(&format!(" — {s}"));
            }
            if let Some(reason) = &e.reason {
                line.push_str(&format!(" — “{reason}”"));
            }
            writeln!(out, "{line}")?;
        }
    }
    for p in &r.problems {
        let mark = match p.verdict {
            Verdict::Invalid => "invalid",
            _ => "cannot tell",
        };
        match &p.file {
            Some(f) => writeln!(out, "{indent}  {mark}: {f}: {}", p.reason)?,
            None => writeln!(out, "{indent}  {mark}: {}", p.reason)?,
        }
    }
    for n in &r.notes {
        writeln!(out, "{indent}  note: {n}")?;
    }
    writeln!(
        out,
        "{indent}  checked {} files, {} signatures, {} certificates, {} CRLs{}",
        r.files,
        r.signatures,
        r.certificates,
        r.crls,
        if r.verdict == Verdict::Valid {
            ": every signature, digest and receipt holds"
        } else {
            ""
        }
    )?;
    Ok(())
}
