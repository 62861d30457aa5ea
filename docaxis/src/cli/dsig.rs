//! `docaxis sign` and `docaxis verify`: sign edXML packets and check signed ones offline.
//!
//! Thin front end over [`dsig`]: argument parsing, file I/O and report formatting.
//! Exit codes: `run_verify` returns success only when every file is accepted; any refusal
//! gives exit code 1. Configuration problems (unreadable key, bad trust anchor file) are
//! returned as errors for the caller to report.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use dsig::{
    Refusal, SigningIdentity, TrustStore, Verdict, VerifyPolicy, check_sender, sender_organ_id,
    sign_packet, verify_packet,
};

/// Sign an unsigned edXML packet with your agency's key.
///
/// Adds one W3C XML-DSig signature (enveloped, exclusive C14N, SHA-256, RSA-SHA256 or
/// ECDSA-SHA256 depending on the key) as the last child of edXMLHeader, with your
/// certificate chain in KeyInfo. The output file is final: do not edit or re-format it, or
/// the signature breaks.
///
/// Example: docaxis sign --key agency.key.pem --cert agency.chain.pem cv-7816.edxml -o cv-7816.signed.edxml
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SignArgs {
    /// Private key of the signing agency: unencrypted PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----").
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,

    /// Certificate chain PEM: the agency's signing certificate first, then its intermediate
    /// CA certificates. The key must belong to the first certificate.
    #[arg(long, value_name = "CERT")]
    pub cert: PathBuf,

    /// The unsigned packet (.edxml); "-" reads standard input. It must not already carry a
    /// signature or a legacy placeholder <Signature> element.
    #[arg(value_name = "IN")]
    pub input: PathBuf,

    /// Where to write the signed packet; "-" writes to standard output. An existing file is
    /// replaced only once signing succeeded.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
}

/// Verify signed edXML packets: signature profile, signer chain and signature value.
///
/// For each file prints whether it is accepted, who signed it (certificate subject and
/// agency code), the algorithms, and the packet's SHA-256 (its packet id); or the reason
/// it is refused. Exits with status 1 if any file is refused.
///
/// Example: docaxis verify --trust national-ca.pem --crl agency-ca.crl.pem inbox/*.edxml
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Trusted CA certificate (PEM, may hold several); repeat for several anchors. Without
    /// any, every signed packet is refused.
    #[arg(long = "trust", value_name = "CA.pem")]
    pub trust: Vec<PathBuf>,

    /// Certificate revocation list (PEM) of a CA in the chain; repeat for several. An
    /// expired CRL makes verification fail for certificates of its CA.
    #[arg(long = "crl", value_name = "CRL.pem")]
    pub crl: Vec<PathBuf>,

    /// Intermediate CA certificates (PEM) for signers whose packets do not carry them.
    #[arg(long = "intermediate", value_name = "CA.pem")]
    pub intermediate: Vec<PathBuf>,

    /// Print a JSON array (one object per file: file, ok, verdict, signer, agency_code,
    /// algorithm, digest, packet_sha256, error) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Accept packets without a DocAxis signature (legacy producers); they are reported as
    /// "unsigned" or "unsigned-legacy", never as signed.
    #[arg(long)]
    pub accept_unsigned: bool,

    /// Also require that the signer's agency code (certificate UID) equals the packet's
    /// From/OrganId.
    #[arg(long)]
    pub check_sender: bool,

    /// Verify as of this time instead of now (RFC 3339, e.g. 2026-03-20T00:00:00Z): for a
    /// packet whose signing time is established by a receipt.
    #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
    pub at: Option<OffsetDateTime>,

    /// Packets to verify.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("'{s}' is not an RFC 3339 time like 2026-03-20T00:00:00Z: {e}"))
}

/// Runs `docaxis sign`.
pub(crate) fn run_sign(args: SignArgs) -> anyhow::Result<()> {
    let id = SigningIdentity::from_pem_files(&args.key, &args.cert)
        .with_context(|| format!("cannot use the signing key {}", args.key.display()))?;
    let unsigned = read_input(&args.input)?;
    let signed = sign_packet(&unsigned, &id)
        .with_context(|| format!("cannot sign {}", args.input.display()))?;
    write_output(&args.output, &signed)?;
    if args.output != Path::new("-") {
        eprintln!(
            "signed {} as {} ({}) -> {}",
            args.input.display(),
            id.subject(),
            id.signature_algorithm(),
            args.output.display()
        );
    }
    Ok(())
}

fn read_input(path: &Path) -> anyhow::Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read standard input")?;
        return Ok(buf);
    }
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Writes to a temporary file beside `path`, then renames it, so a partial file never
/// replaces an existing one.
fn write_output(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if path == Path::new("-") {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .context("cannot write to standard output")?;
        return out.flush().context("cannot write to standard output");
    }
    let Some(name) = path.file_name() else {
        bail!("{} is not a file path", path.display());
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e)
            .with_context(|| format!("cannot move the signed packet to {}", path.display()));
    }
    Ok(())
}

/// One file's result, as printed.
#[derive(Debug, serde::Serialize)]
struct Report {
    file: String,
    ok: bool,
    verdict: &'static str,
    signer: Option<String>,
    agency_code: Option<String>,
    algorithm: Option<String>,
    digest: Option<String>,
    packet_sha256: Option<String>,
    error: Option<String>,
}

/// Runs `docaxis verify`; returns exit code 0 when every file is accepted, 1 otherwise.
pub(crate) fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let anchors: Vec<&Path> = args.trust.iter().map(PathBuf::as_path).collect();
    let crls: Vec<&Path> = args.crl.iter().map(PathBuf::as_path).collect();
    let mut trust = TrustStore::from_pem_files(&anchors, &crls)
        .context("cannot load the trust configuration")?;
    for path in &args.intermediate {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        trust
            .add_intermediate_pem(&pem)
            .with_context(|| format!("cannot load intermediate {}", path.display()))?;
    }
    let policy = VerifyPolicy {
        accept_unsigned_legacy: args.accept_unsigned,
        at: args.at,
        ..VerifyPolicy::default()
    };

    let reports: Vec<Report> = args
        .files
        .iter()
        .map(|file| verify_one(file, &trust, &policy, args.check_sender))
        .collect();
    let all_ok = reports.iter().all(|r| r.ok);

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &reports).context("cannot write JSON")?;
        writeln!(out)?;
    } else {
        for r in &reports {
            write_text(&mut out, r)?;
        }
    }
    out.flush()?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verify_one(file: &Path, trust: &TrustStore, policy: &VerifyPolicy, sender: bool) -> Report {
    let mut report = Report {
        file: file.display().to_string(),
        ok: false,
        verdict: "refused",
        signer: None,
        agency_code: None,
        algorithm: None,
        digest: None,
        packet_sha256: None,
        error: None,
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            report.error = Some(format!("cannot read the file: {e}"));
            return report;
        }
    };
    let verdict = verify_packet(&bytes, trust, policy).and_then(|verdict| {
        if let (true, Verdict::Signed(signed)) = (sender, &verdict) {
            let from = sender_organ_id(&bytes)?;
            check_sender(signed, &from)?;
        }
        Ok::<_, Refusal>(verdict)
    });
    match verdict {
        Ok(v) => {
            report.ok = true;
            report.verdict = v.label();
            report.packet_sha256 = Some(hex::encode(v.packet_sha256()));
            if let Verdict::Signed(p) = v {
                report.signer = Some(p.signer_subject);
                report.agency_code = p.agency_code;
                report.algorithm = Some(p.signature_algorithm.name().to_owned());
                report.digest = Some(p.digest_algorithm.name().to_owned());
            }
        }
        Err(refusal) => report.error = Some(refusal.to_string()),
    }
    report
}

fn write_text(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    if !r.ok {
        return writeln!(
            out,
            "{}: REFUSED: {}",
            r.file,
            r.error.as_deref().unwrap_or("unknown reason")
        );
    }
    writeln!(out, "{}: OK ({})", r.file, r.verdict)?;
    if let Some(signer) = &r.signer {
        writeln!(out, "  signer:        {signer}")?;
        writeln!(
            out,
            "  agency code:   {}",
            r.agency_code.as_deref().unwrap_or("(none in certificate)")
        )?;
        writeln!(
            out,
            "  algorithms:    {} / {}",
            r.algorithm.as_deref().unwrap_or("?"),
            r.digest.as_deref().unwrap_or("?")
        )?;
    }
    if let Some(sha) = &r.packet_sha256 {
        writeln!(out, "  packet sha256: {sha}")?;
    }
    Ok(())
}
