//! Makes the committed development PKI (or a fresh one anywhere else) — NOT FOR PRODUCTION.
//!
//! Same effect and output as `docaxis pki init DIR [--force]`, usable before that command is
//! wired into the binary:
//!
//! ```text
//! cargo run -p docaxis --example make_dev_pki -- certs --force --valid-from 2025-01-01T00:00:00Z
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use docaxis::cli::pki::{PkiCommand, run};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Create a development PKI (CA, CRL, hub and the development agencies) in DIR.
#[derive(Debug, Parser)]
struct Args {
    /// Directory to create the PKI in (the repository's is `certs`).
    dir: PathBuf,
    /// Replace an existing PKI in DIR.
    #[arg(long)]
    force: bool,
    /// Start of validity of every certificate, RFC 3339; default: one hour ago.
    #[arg(long, value_name = "RFC3339")]
    valid_from: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let valid_from = args
        .valid_from
        .map(|v| OffsetDateTime::parse(&v, &Rfc3339).with_context(|| format!("--valid-from {v:?}")))
        .transpose()?;
    run(PkiCommand::Init {
        dir: args.dir,
        force: args.force,
        valid_from,
    })
}
