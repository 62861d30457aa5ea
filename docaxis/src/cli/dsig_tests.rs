//! Tests of the `sign` / `verify` command functions in `cli/dsig.rs`, with the throw-away PKI
//! of the dsig crate's tests.

#[path = "../../../dsig/tests/it/support.rs"]
mod support;

use std::process::ExitCode;

use super::dsig::{SignArgs, VerifyArgs, run_sign, run_verify};
use clap::{CommandFactory, Parser, Subcommand};
use support::{Ca, KeyKind, small_packet};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Sign(SignArgs),
    Verify(VerifyArgs),
}

fn parse(args: &[&str]) -> Cmd {
    Cli::try_parse_from(std::iter::once("docaxis").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{e}"))
        .command
}

#[test]
fn help_texts_build_and_explain() {
    Cli::command().debug_assert();
    let mut cmd = Cli::command();
    let help = cmd
        .find_subcommand_mut("verify")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(help.contains("--trust <CA.pem>"), "{help}");
    assert!(help.contains("RFC 3339"), "{help}");
    let help = cmd
        .find_subcommand_mut("sign")
        .unwrap()
        .render_long_help()
        .to_string();
    assert!(help.contains("PKCS#8"), "{help}");
}

#[test]
fn sign_then_verify_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::root("CLI Root");
    let inter = root.intermediate("CLI Agency CA");
    let leaf = inter.leaf("000.00.00.G22", "Văn phòng Chính phủ", KeyKind::EcP256);
    let p = |name: &str| dir.path().join(name);
    std::fs::write(p("key.pem"), &leaf.key_pem).unwrap();
    std::fs::write(p("chain.pem"), leaf.chain_pem(&[&inter])).unwrap();
    std::fs::write(p("root.pem"), &root.cert_pem).unwrap();
    std::fs::write(p("in.edxml"), small_packet("000.00.00.G22")).unwrap();

    let sign = |out: &str| {
        let Cmd::Sign(args) = parse(&[
            "sign",
            "--key",
            p("key.pem").to_str().unwrap(),
            "--cert",
            p("chain.pem").to_str().unwrap(),
            p("in.edxml").to_str().unwrap(),
            "-o",
            p(out).to_str().unwrap(),
        ]) else {
            unreachable!()
        };
        run_sign(args)
    };
    sign("signed.edxml").unwrap();
    let signed = std::fs::read(p("signed.edxml")).unwrap();
    assert!(
        std::str::from_utf8(&signed)
            .unwrap()
            .contains("<ds:Signature")
    );
    // No temporary file is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
    // Signing a signed packet fails and leaves the output untouched.
    std::fs::copy(p("signed.edxml"), p("in.edxml")).unwrap();
    let err = sign("again.edxml").unwrap_err();
    assert!(format!("{err:#}").contains("already signed"), "{err:#}");
    assert!(!p("again.edxml").exists());

    let mut tampered = signed.clone();
    let at = std::str::from_utf8(&signed)
        .unwrap()
        .find("JVBERi0x")
        .unwrap();
    tampered[at] = b'K';
    std::fs::write(p("tampered.edxml"), tampered).unwrap();

    let root_arg = p("root.pem").to_str().unwrap().to_owned();
    let verify = |extra: &[&str], files: &[&str]| {
        let mut args: Vec<String> = vec!["verify".into(), "--trust".into(), root_arg.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(files.iter().map(|f| p(f).to_str().unwrap().to_owned()));
        let Cmd::Verify(args) = parse(&args.iter().map(String::as_str).collect::<Vec<_>>()) else {
            unreachable!()
        };
        run_verify(args).unwrap()
    };
    assert_eq!(verify(&[], &["signed.edxml"]), ExitCode::SUCCESS);
    assert_eq!(
        verify(&["--json", "--check-sender"], &["signed.edxml"]),
        ExitCode::SUCCESS
    );
    assert_eq!(
        verify(&[], &["signed.edxml", "tampered.edxml"]),
        ExitCode::from(1)
    );
    assert_eq!(verify(&["--json"], &["missing.edxml"]), ExitCode::from(1));
    // As of a time after the signer certificate expired.
    assert_eq!(
        verify(&["--at", "2099-01-01T00:00:00Z"], &["signed.edxml"]),
        ExitCode::from(1)
    );
}

#[test]
fn unsigned_packets_need_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain.edxml");
    std::fs::write(&file, small_packet("000.00.00.G22")).unwrap();
    let run = |flag: Option<&str>| {
        let mut args = vec!["verify"];
        args.extend(flag);
        args.push(file.to_str().unwrap());
        let Cmd::Verify(args) = parse(&args) else {
            unreachable!()
        };
        run_verify(args).unwrap()
    };
    assert_eq!(run(None), ExitCode::from(1));
    assert_eq!(run(Some("--accept-unsigned")), ExitCode::SUCCESS);
}

#[test]
fn bad_arguments_are_reported() {
    assert!(Cli::try_parse_from(["docaxis", "verify", "--at", "yesterday", "f"]).is_err());
    assert!(Cli::try_parse_from(["docaxis", "verify"]).is_err());
    let Cmd::Verify(args) = parse(&["verify", "--trust", "/nonexistent/ca.pem", "f.edxml"]) else {
        unreachable!()
    };
    let err = run_verify(args).unwrap_err();
    assert!(
        format!("{err:#}").contains("/nonexistent/ca.pem"),
        "{err:#}"
    );
}
