//! `docaxis pki …`: make and maintain the development PKI from the command line.
//!
//! A thin layer over [`dsig::pki`]: it parses arguments, calls the library and prints what was
//! written (paths, subject, serial, SHA-256 fingerprint, validity). It makes no decision of its
//! own; every refusal comes from the library with its message.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use dsig::pki::{self, InitOptions, IssueRequest, KeyAlgorithm, WrittenCert};

/// Development PKI commands (certificates for local testing and demos — NOT FOR PRODUCTION).
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub(crate) enum PkiCommand {
    /// Create a development PKI: national CA, empty CRL, hub and agency certificates.
    ///
    /// Writes DIR/ca.pem and DIR/ca.key.pem (the CA, ECDSA P-256, 20 years), DIR/crl.pem (an
    /// empty CRL, number 1), DIR/hub.pem and DIR/hub.key.pem, and DIR/agencies/CODE.pem and
    /// DIR/agencies/CODE.key.pem for the development agencies 000.00.00.G22 (Văn phòng Chính
    /// phủ), 000.00.00.H41 (UBND Tỉnh Nghệ An) and 000.00.00.H14 (UBND Tỉnh Cao Bằng).
    /// Private keys are PKCS#8 PEM with mode 0600. Agency codes are in the subject attribute
    /// UID; every certificate is valid for TLS client and server use on localhost, 127.0.0.1
    /// and ::1, and for signing documents.
    #[command(
        after_help = "Example: docaxis pki init certs --force --valid-from 2025-01-01T00:00:00Z"
    )]
    Init {
        /// Directory to create the PKI in; created if missing. Other files in it are kept.
        dir: PathBuf,
        /// Replace an existing PKI in DIR. Certificates issued by the old CA stop chaining,
        /// so its agency files are removed (and listed).
        #[arg(long)]
        force: bool,
        /// Start of validity of every certificate, RFC 3339 (e.g. 2025-01-01T00:00:00Z).
        /// Default: one hour ago. The CA lasts 20 years from it, the others 10 years.
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
        valid_from: Option<OffsetDateTime>,
    },

    /// Issue a certificate for an agency under the CA of a PKI directory.
    ///
    /// Writes DIR/agencies/CODE.pem and DIR/agencies/CODE.key.pem. An agency that already
    /// has a certificate is refused unless --replace is given; the old certificate and key are
    /// then kept as CODE.SERIAL.pem and CODE.SERIAL.key.pem, so nodes can rotate.
    #[command(
        after_help = "Example: docaxis pki issue --dir certs --code 000.00.00.H29 \
                            --name 'UBND Thành phố Hà Nội'"
    )]
    Issue {
        /// PKI directory holding ca.pem and ca.key.pem.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Agency code, standard form NNN.NN.NN.XNN (e.g. 000.00.00.G22); stored in UID.
        #[arg(long)]
        code: String,
        /// Agency name, stored in CN and O (at most 64 characters).
        #[arg(long)]
        name: String,
        /// ECDSA P-256 key (the default).
        #[arg(long, conflicts_with = "rsa")]
        ecdsa: bool,
        /// RSA 2048-bit key instead of ECDSA P-256.
        #[arg(long)]
        rsa: bool,
        /// Start of validity, RFC 3339 (e.g. 2020-01-01T00:00:00Z). Default: one hour ago.
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
        valid_from: Option<OffsetDateTime>,
        /// End of validity, RFC 3339. Default: ten years after the start (never past the
        /// CA's expiry). A date in the past makes an expired certificate, for tests.
        #[arg(long, value_name = "RFC3339", value_parser = parse_rfc3339)]
        valid_until: Option<OffsetDateTime>,
        /// Replace the agency's current certificate, keeping the old one as CODE.SERIAL.pem.
        #[arg(long)]
        replace: bool,
        /// Accept a code that is not of the form NNN.NN.NN.XNN (letters, digits, '.', '-'
        /// and '_' only).
        #[arg(long)]
        allow_nonstandard_code: bool,
    },

    /// Revoke an agency's current certificate by adding its serial to DIR/crl.pem.
    ///
    /// The CRL is re-signed by the CA with its number incremented; earlier revocations stay.
    /// The reason recorded is keyCompromise.
    #[command(after_help = "Example: docaxis pki revoke --dir certs --code 000.00.00.H14")]
    Revoke {
        /// PKI directory holding ca.pem, ca.key.pem and crl.pem.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Agency code whose current certificate (agencies/CODE.pem) is revoked.
        #[arg(long)]
        code: String,
    },
}

/// Parses an RFC 3339 timestamp given on the command line.
fn parse_rfc3339(value: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|e| {
        format!("{value:?} is not an RFC 3339 timestamp such as 2030-12-31T23:59:59Z ({e})")
    })
}

/// Runs a `docaxis pki` command, printing what it wrote to standard output.
pub(crate) fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    run_to(cmd, &mut out)
}

/// Runs a `docaxis pki` command, printing what it wrote to `out`.
pub(crate) fn run_to(cmd: PkiCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init {
            dir,
            force,
            valid_from,
        } => {
            let opts = InitOptions {
                force,
                valid_from,
                ..InitOptions::default()
            };
            let report = pki::init(&dir, &opts)
                .with_context(|| format!("cannot create a development PKI in {}", dir.display()))?;
            writeln!(
                out,
                "Development PKI written to {} (NOT FOR PRODUCTION)",
                report.dir.display()
            )?;
            for path in &report.removed {
                writeln!(
                    out,
                    "removed   {} (issued by the replaced CA)",
                    path.display()
                )?;
            }
            print_cert(out, "CA", &report.ca)?;
            writeln!(
                out,
                "CRL       {} (number {}, no revocations)",
                report.crl_path.display(),
                report.crl_number
            )?;
            print_cert(out, "hub", &report.hub)?;
            for agency in &report.agencies {
                print_cert(out, &format!("agency {}", agency.code), &agency.cert)?;
            }
        }
        PkiCommand::Issue {
            dir,
            code,
            name,
            ecdsa: _,
            rsa,
            valid_from,
            valid_until,
            replace,
            allow_nonstandard_code,
        } => {
            let req = IssueRequest {
                key: if rsa {
                    KeyAlgorithm::Rsa2048
                } else {
                    KeyAlgorithm::EcdsaP256
                },
                not_before: valid_from,
                not_after: valid_until,
                allow_nonstandard_code,
                replace,
                ..IssueRequest::new(code, name)
            };
            let issued = pki::issue(&dir, &req).with_context(|| {
                format!(
                    "cannot issue a certificate for agency {} in {}",
                    req.code,
                    dir.display()
                )
            })?;
            if let Some(old) = &issued.replaced {
                writeln!(
                    out,
                    "kept      previous certificate (serial {}) as {}",
                    old.serial,
                    old.cert_path.display()
                )?;
                if let Some(key) = &old.key_path {
                    writeln!(out, "          and its key as {}", key.display())?;
                }
            }
            print_cert(
                out,
                &format!("agency {} ({})", issued.code, issued.key.label()),
                &issued.cert,
            )?;
        }
        PkiCommand::Revoke { dir, code } => {
            let revoked = pki::revoke(&dir, &code).with_context(|| {
                format!(
                    "cannot revoke the certificate of agency {code} in {}",
                    dir.display()
                )
            })?;
            writeln!(
                out,
                "revoked   agency {} certificate serial {} ({})",
                revoked.code,
                revoked.serial,
                pki::REVOCATION_REASON
            )?;
            writeln!(
                out,
                "CRL       {} (number {}, {} revoked: {})",
                revoked.crl_path.display(),
                revoked.crl_number,
                revoked.revoked_serials.len(),
                revoked.revoked_serials.join(", ")
            )?;
        }
    }
    Ok(())
}

fn print_cert(out: &mut dyn Write, label: &str, cert: &WrittenCert) -> anyhow::Result<()> {
    let info = &cert.info;
    writeln!(out, "{label}")?;
    writeln!(out, "  certificate  {}", cert.cert_path.display())?;
    writeln!(out, "  private key  {}", cert.key_path.display())?;
    writeln!(out, "  subject      {}", info.subject)?;
    writeln!(out, "  serial       {}", info.serial)?;
    writeln!(out, "  sha256       {}", info.fingerprint_sha256)?;
    writeln!(
        out,
        "  valid        {} to {}",
        format_time(info.not_before),
        format_time(info.not_after)
    )?;
    Ok(())
}

fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        pki: PkiCommand,
    }

    fn parse(args: &[&str]) -> Result<PkiCommand, clap::Error> {
        Cli::try_parse_from(std::iter::once("pki").chain(args.iter().copied())).map(|c| c.pki)
    }

    #[test]
    fn init_parses() {
        assert_eq!(
            parse(&["init", "certs", "--force"]).unwrap(),
            PkiCommand::Init {
                dir: "certs".into(),
                force: true,
                valid_from: None,
            }
        );
        let cmd = parse(&["init", "certs", "--valid-from", "2025-01-01T00:00:00Z"]).unwrap();
        assert!(
            matches!(cmd, PkiCommand::Init { valid_from: Some(t), force: false, .. }
            if t == time::macros::datetime!(2025-01-01 00:00 UTC))
        );
        assert!(parse(&["init"]).is_err(), "DIR is required");
    }

    #[test]
    fn issue_parses_with_defaults_and_options() {
        let cmd = parse(&[
            "issue",
            "--dir",
            "certs",
            "--code",
            "000.00.00.G22",
            "--name",
            "Văn phòng Chính phủ",
        ])
        .unwrap();
        let PkiCommand::Issue {
            rsa,
            valid_from,
            valid_until,
            replace,
            allow_nonstandard_code,
            ..
        } = cmd
        else {
            panic!("not an issue command: {cmd:?}");
        };
        assert!(!rsa && !replace && !allow_nonstandard_code);
        assert_eq!((valid_from, valid_until), (None, None));

        let cmd = parse(&[
            "issue",
            "--dir",
            "d",
            "--code",
            "X",
            "--name",
            "N",
            "--rsa",
            "--valid-from",
            "2020-01-01T00:00:00Z",
            "--valid-until",
            "2021-01-01T07:00:00+07:00",
            "--replace",
            "--allow-nonstandard-code",
        ])
        .unwrap();
        let PkiCommand::Issue {
            rsa,
            valid_from,
            valid_until,
            replace,
            allow_nonstandard_code,
            ..
        } = cmd
        else {
            panic!("not an issue command: {cmd:?}");
        };
        assert!(rsa && replace && allow_nonstandard_code);
        assert_eq!(
            valid_from,
            Some(time::macros::datetime!(2020-01-01 00:00 UTC))
        );
        assert_eq!(
            valid_until,
            Some(time::macros::datetime!(2021-01-01 00:00 UTC))
        );
    }

    #[test]
    fn issue_refuses_bad_arguments() {
        let base = ["issue", "--dir", "d", "--code", "C", "--name", "N"];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            parse(&args)
        };
        let err = with(&["--ecdsa", "--rsa"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        let err = with(&["--valid-until", "tomorrow"]).unwrap_err();
        assert!(
            err.to_string().contains("not an RFC 3339 timestamp"),
            "{err}"
        );
        assert!(
            parse(&["issue", "--dir", "d", "--code", "C"]).is_err(),
            "--name is required"
        );
    }

    #[test]
    fn revoke_parses() {
        assert_eq!(
            parse(&["revoke", "--dir", "certs", "--code", "000.00.00.H14"]).unwrap(),
            PkiCommand::Revoke {
                dir: "certs".into(),
                code: "000.00.00.H14".into()
            }
        );
    }

    #[test]
    fn help_texts_explain_the_files() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        let init = cmd
            .find_subcommand_mut("init")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(init.contains("DIR/crl.pem"), "{init}");
        assert!(init.contains("UID"), "{init}");
        let issue = cmd
            .find_subcommand_mut("issue")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(issue.contains("--replace"), "{issue}");
        assert!(issue.contains("RFC 3339"), "{issue}");
    }

    #[test]
    fn runs_init_issue_and_revoke_and_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let certs_arg = certs.to_str().unwrap();
        let run = |args: &[&str]| {
            let mut out = Vec::new();
            let result = run_to(parse(args).unwrap(), &mut out);
            (result, String::from_utf8(out).unwrap())
        };

        let (result, out) = run(&["init", certs_arg]);
        result.unwrap();
        assert!(out.contains("NOT FOR PRODUCTION"), "{out}");
        assert!(out.contains("agency 000.00.00.H41"), "{out}");
        assert!(out.contains("UID=000.00.00.H41"), "{out}");
        assert!(out.contains("CRL "), "{out}");

        let (result, _) = run(&["init", certs_arg]);
        let err = format!("{:#}", result.unwrap_err());
        assert!(err.contains("--force"), "{err}");

        let (result, out) = run(&[
            "issue",
            "--dir",
            certs_arg,
            "--code",
            "000.00.00.H29",
            "--name",
            "UBND Thành phố Hà Nội",
            "--rsa",
        ]);
        result.unwrap();
        assert!(out.contains("agency 000.00.00.H29 (RSA 2048)"), "{out}");
        assert!(out.contains("sha256"), "{out}");

        let (result, out) = run(&["revoke", "--dir", certs_arg, "--code", "000.00.00.H29"]);
        result.unwrap();
        assert!(out.contains("number 2, 1 revoked"), "{out}");
    }
}
