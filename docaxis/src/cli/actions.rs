//! `docaxis revoke`, `docaxis update`, `docaxis replace`: the original sender's requests about
//! a document it sent (BussinessDocType 1, 2, 3), through a running node. Each is signed and
//! queued by the node like a document; the recipients answer with 15 (agree) or 16 (refuse),
//! which `docaxis track` shows, and once they agree the original is marked revoked, updated,
//! replaced or removed on both sides.

use std::io::Write;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::node::{ConfigArg, DocumentFlags, refused, runtime};

/// `docaxis revoke DOC --reason TEXT`: withdraw a document this agency sent (thu hồi).
///
/// Goes to every recipient where the document still stands; each answers 15 (agree: its copy
/// is marked revoked) or 16 (refuse).
#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    /// The original document id.
    pub document_id: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Why (BussinessDocReason); required.
    #[arg(long)]
    pub reason: String,
    /// Who sends it (StaffInfo).
    #[arg(long)]
    pub staff: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `docaxis update DOC --reason TEXT [--add CODE] [--remove CODE] [--subject TEXT]`: correct a
/// document this agency sent (cập nhật).
///
/// The update carries the whole new version (attachments included) and goes to the current
/// recipients, to the added ones (who get the document) and to the removed ones (whose copy is
/// marked removed once they agree).
#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    /// The original document id.
    pub document_id: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Why (BussinessDocReason); required.
    #[arg(long)]
    pub reason: String,
    /// Add a recipient: CODE or CODE=NAME; repeat for several.
    #[arg(long)]
    pub add: Vec<String>,
    /// Remove a recipient (agency code); repeat for several.
    #[arg(long)]
    pub remove: Vec<String>,
    /// The corrected trích yếu.
    #[arg(long)]
    pub subject: Option<String>,
    /// The corrected content summary.
    #[arg(long)]
    pub content: Option<String>,
    /// Who sends it (StaffInfo).
    #[arg(long)]
    pub staff: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `docaxis replace DOC --reason TEXT --spec NEW.toml`: replace a document this agency sent by
/// a new one with its own number (thay thế).
///
/// Describe the replacement like `docaxis send` does (a TOML file, or flags); its recipients
/// default to wherever the original still stands.
#[derive(Debug, clap::Args)]
pub(crate) struct ReplaceArgs {
    /// The original document id.
    pub document_id: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Why (BussinessDocReason); required.
    #[arg(long)]
    pub reason: String,
    /// Recipient: CODE or CODE=NAME; repeat. Default: where the original still stands.
    #[arg(long)]
    pub to: Vec<String>,
    /// The replacement: a TOML description (`--spec`, see examples/*.toml) or flags; give it a
    /// new number.
    #[command(flatten)]
    pub document: DocumentFlags,
    /// Who sends it (StaffInfo).
    #[arg(long)]
    pub staff: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn with_staff(mut body: Value, staff: &Option<String>) -> Value {
    if let (Some(s), Some(obj)) = (staff, body.as_object_mut()) {
        obj.insert("staff".into(), Value::String(s.clone()));
    }
    body
}

fn submit(
    config: &ConfigArg,
    kind: &str,
    document_id: &str,
    body: Value,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let client = config.client()?;
    let sent = match runtime()?.block_on(client.send_action(kind, document_id, &body)) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let mut out = std::io::stdout().lock();
    if json_out {
        serde_json::to_writer_pretty(&mut out, &sent)?;
        writeln!(out)?;
    } else {
        writeln!(out, "queued   {kind} {}", sent.document_id)?;
        writeln!(out, "         of       {document_id}")?;
        writeln!(out, "         packet   {}", sent.packet_id)?;
        writeln!(
            out,
            "the recipients answer with 15 (agree) or 16 (refuse): docaxis track {:?}",
            sent.document_id
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `docaxis revoke`.
pub(crate) fn run_revoke(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let body = with_staff(json!({ "reason": args.reason }), &args.staff);
    submit(&args.config, "revoke", &args.document_id, body, args.json)
}

/// `docaxis update`.
pub(crate) fn run_update(args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let add: Vec<Value> = args
        .add
        .iter()
        .map(|a| match a.split_once('=') {
            Some((code, name)) => json!({"id": code.trim(), "name": name.trim()}),
            None => Value::String(a.trim().to_string()),
        })
        .collect();
    let mut body = json!({
        "reason": args.reason,
        "add": add,
        "remove": args.remove,
    });
    if let Some(obj) = body.as_object_mut() {
        if let Some(s) = &args.subject {
            obj.insert("subject".into(), Value::String(s.clone()));
        }
        if let Some(c) = &args.content {
            obj.insert("content".into(), Value::String(c.clone()));
        }
    }
    let body = with_staff(body, &args.staff);
    submit(&args.config, "update", &args.document_id, body, args.json)
}

/// `docaxis replace`.
pub(crate) fn run_replace(args: ReplaceArgs) -> anyhow::Result<ExitCode> {
    let mut document = args.document.request(&args.to)?;
    // No recipients given: the node sends the replacement where the original stands.
    if let Some(obj) = document.as_object_mut()
        && obj
            .get("to")
            .is_some_and(|t| t.as_array().is_some_and(Vec::is_empty))
    {
        obj.remove("to");
    }
    let body = with_staff(
        json!({ "reason": args.reason, "document": document }),
        &args.staff,
    );
    submit(&args.config, "replace", &args.document_id, body, args.json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    enum Cmd {
        Revoke(RevokeArgs),
        Update(UpdateArgs),
        Replace(ReplaceArgs),
    }

    #[test]
    fn command_lines() {
        let Cmd::Update(u) = Cmd::try_parse_from([
            "x",
            "update",
            "DOC",
            "--config",
            "n.toml",
            "--reason",
            "r",
            "--add",
            "000.00.00.G01",
            "--remove",
            "000.00.00.H14",
        ])
        .unwrap() else {
            panic!("not an update");
        };
        assert_eq!(u.add, ["000.00.00.G01"]);
        assert_eq!(u.remove, ["000.00.00.H14"]);
        assert!(Cmd::try_parse_from(["x", "revoke", "DOC", "--config", "n.toml"]).is_err());
        // A replacement needs a description: a spec or its number.
        assert!(
            Cmd::try_parse_from(["x", "replace", "DOC", "--config", "n.toml", "--reason", "r"])
                .is_err()
        );
        assert!(
            Cmd::try_parse_from([
                "x", "replace", "DOC", "--config", "n.toml", "--reason", "r", "--spec", "new.toml"
            ])
            .is_ok()
        );
        assert_eq!(
            with_staff(json!({"reason": "r"}), &Some("Lan".into())),
            json!({"reason": "r", "staff": "Lan"})
        );
    }
}
