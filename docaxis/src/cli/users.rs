//! `docaxis node user add|list|disable|enable|passwd`: the accounts of a running node's web
//! pages, managed through its clerk API (as admin, with the node's token).
//!
//! Passwords never appear on the command line (where `ps` would show them): they are read from
//! `--password-file FILE` or, without it, from the first line of standard input.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use node::accounts::{ChangeUser, NewUser, UserView};

use super::node::{ConfigArg, refused, runtime};

/// `docaxis node user …`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum UserCommand {
    /// Add an account: `clerk` (văn thư: sends, receives, statuses), `records` (lưu trữ:
    /// reads and exports only) or `admin` (accounts, and what a clerk does).
    Add(AddArgs),
    /// List the accounts.
    List(ListArgs),
    /// Disable an account (its sessions end at once; the name stays reserved).
    Disable(NameArgs),
    /// Enable a disabled account again.
    Enable(NameArgs),
    /// Set an account's password (its open sessions end).
    Passwd(PasswdArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct AddArgs {
    /// Login name: lowercase letters, digits, '.', '_' or '-' (e.g. lan.nt).
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Full name, written in StaffInfo/Staff of what this person sends.
    #[arg(long)]
    pub full_name: String,
    /// clerk, records or admin.
    #[arg(long, default_value = "clerk")]
    pub role: String,
    /// Position (chức vụ), written in StaffInfo/Department.
    #[arg(long)]
    pub position: Option<String>,
    /// Work email, written in StaffInfo/Email.
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from this file (first line); otherwise from standard input.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct NameArgs {
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PasswdArgs {
    pub name: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Read the password from this file (first line); otherwise from standard input.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
}

fn password(file: Option<&PathBuf>) -> anyhow::Result<String> {
    let line = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the password file {}", f.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("password (it will show as you type; prefer --password-file): ");
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if line.is_empty() {
        anyhow::bail!("no password given (first line of --password-file, or of standard input)");
    }
    Ok(line)
}

fn print(out: &mut impl Write, u: &UserView) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<8} {:<9} {}{}{}",
        u.name,
        u.role,
        if u.disabled { "disabled" } else { "active" },
        u.full_name,
        u.position
            .as_deref()
            .map(|p| format!(", {p}"))
            .unwrap_or_default(),
        u.email
            .as_deref()
            .map(|e| format!(" <{e}>"))
            .unwrap_or_default(),
    )
}

pub(crate) fn run(cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    let mut out = std::io::stdout().lock();
    match cmd {
        UserCommand::Add(a) => {
            let client = a.config.client()?;
            let req = NewUser {
                name: a.name,
                full_name: a.full_name,
                position: a.position,
                email: a.email,
                role: a.role,
                password: password(a.password_file.as_ref())?,
            };
            match rt.block_on(client.add_user(&req)) {
                Ok(u) if a.json => {
                    serde_json::to_writer_pretty(&mut out, &u)?;
                    writeln!(out)?;
                }
                Ok(u) => {
                    write!(out, "added    ")?;
                    print(&mut out, &u)?;
                }
                Err(e) => return refused(e),
            }
        }
        UserCommand::List(a) => {
            let client = a.config.client()?;
            match rt.block_on(client.users()) {
                Ok(list) if a.json => {
                    serde_json::to_writer_pretty(&mut out, &list)?;
                    writeln!(out)?;
                }
                Ok(list) if list.items.is_empty() => writeln!(
                    out,
                    "no accounts yet: add one with `docaxis node user add NAME --full-name … --role admin`"
                )?,
                Ok(list) => {
                    for u in &list.items {
                        print(&mut out, u)?;
                    }
                }
                Err(e) => return refused(e),
            }
        }
        UserCommand::Disable(a) => {
            return change(&rt, &a.config, &a.name, Some(true), None, "disabled");
        }
        UserCommand::Enable(a) => {
            return change(&rt, &a.config, &a.name, Some(false), None, "enabled");
        }
        UserCommand::Passwd(a) => {
            let p = password(a.password_file.as_ref())?;
            return change(&rt, &a.config, &a.name, None, Some(p), "password set");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn change(
    rt: &tokio::runtime::Runtime,
    config: &ConfigArg,
    name: &str,
    disabled: Option<bool>,
    password: Option<String>,
    what: &str,
) -> anyhow::Result<ExitCode> {
    let client = config.client()?;
    match rt.block_on(client.change_user(name, &ChangeUser { disabled, password })) {
        Ok(u) => {
            let mut out = std::io::stdout().lock();
            write!(out, "{what:<8} ")?;
            print(&mut out, &u)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}
