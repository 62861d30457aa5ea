//! `docaxis node` (the agency node daemon) and the clerk commands that talk to a running node:
//! `docaxis send`, `docaxis outbox`, `docaxis inbox` (and `inbox show`), `docaxis track`,
//! `docaxis status send`.
//!
//! Every command takes `--config node.toml` (or `DOCAXIS_NODE_CONFIG`); the clerk commands
//! read the node's API address and token from it. Human output by default, `--json` for
//! programs; exit status 1 when the node refuses, 2 on other errors (from `main`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use edxml::{Packet, ReadOptions, read};
use edxml::{Priority, StatusCode};
use exchange::Timestamp;
use exchange::protocol::PacketKind;
use node::client::{
    ApiClient, ClientError, InboxParams, is_packet_id, request_from_flags, request_from_spec_file,
};
use node::views::{InboxDetail, InboxItem, OutboxItem, StatusRequest, TrackView};
use node::{NodeConfig, start};

/// The node configuration option shared by every node command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigArg {
    /// The node configuration (see examples/node.toml).
    #[arg(long, env = "DOCAXIS_NODE_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

impl ConfigArg {
    fn load(&self) -> anyhow::Result<NodeConfig> {
        Ok(NodeConfig::load(&self.config)?)
    }

    pub(crate) fn client(&self) -> anyhow::Result<ApiClient> {
        Ok(ApiClient::from_config(&self.load()?)?)
    }
}

/// `docaxis node`: run the agency node.
///
/// Submits what clerks send to the hub (retrying while the hub is unreachable), pulls what is
/// addressed to this agency, verifies it, stores it, answers each document with a signed
/// status 01, and collects the hub's receipts. Clerks use `docaxis send/outbox/inbox/track`
/// or the local API it serves (printed at start). Stops cleanly on Ctrl-C or SIGTERM.
#[derive(Debug, clap::Args)]
#[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
pub(crate) struct NodeArgs {
    #[command(flatten)]
    pub config: Option<ConfigArg>,
    #[command(subcommand)]
    pub command: Option<NodeCommand>,
}

/// `docaxis node …` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum NodeCommand {
    /// Accounts of the node's web pages (clerk, records, admin).
    #[command(subcommand)]
    User(super::users::UserCommand),
}

/// `docaxis send`: sign and queue a document on a running node.
///
/// Describe the document fully in a TOML file (`--spec`, see examples/*.toml; its `from`
/// must be this node's agency), or with flags. Recipients are `CODE` (well-known agencies) or
/// `CODE=NAME`. Prints the document id and packet id once the node has durably queued it.
#[derive(Debug, clap::Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Recipient agency: CODE or CODE=NAME; repeat for several.
    #[arg(long, required_unless_present = "spec")]
    pub to: Vec<String>,
    #[command(flatten)]
    pub document: DocumentFlags,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A document described by a TOML file or by flags (`docaxis send`, `docaxis replace`); the
/// recipients (`--to`) belong to the command.
#[derive(Debug, clap::Args)]
pub(crate) struct DocumentFlags {
    /// TOML description of the whole document; the other document flags are then not used.
    #[arg(long, conflicts_with_all = ["to", "subject", "number", "notation", "attach"])]
    pub spec: Option<PathBuf>,
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
}

impl DocumentFlags {
    /// The clerk API request for this document, sent to `to`.
    pub(crate) fn request(&self, to: &[String]) -> anyhow::Result<serde_json::Value> {
        Ok(match &self.spec {
            Some(path) => request_from_spec_file(path)?,
            None => request_from_flags(
                to,
                self.subject.as_deref().unwrap_or_default(),
                self.number.as_deref().unwrap_or_default(),
                self.notation.as_deref().unwrap_or_default(),
                self.priority,
                &self.attach,
            )?,
        })
    }
}

/// `docaxis outbox`: what this node sent and where each packet stands.
#[derive(Debug, clap::Args)]
pub(crate) struct OutboxArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// document, status or all (default: all).
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many entries, newest first.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `docaxis inbox`: what this node received; `docaxis inbox show DOC`: one document.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct InboxArgs {
    #[command(subcommand)]
    pub command: Option<InboxCommand>,
    /// The node configuration (see examples/node.toml).
    #[arg(long, env = "DOCAXIS_NODE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Documents: new, rejected, accepted, assigned, processing, completed, taken_back,
    /// take_back_requested (a 13, revoke, update or replace waits for 15/16), revoked,
    /// updated, replaced, removed, agreed, refused. Statuses: applied, unmatched (about
    /// unknown documents).
    #[arg(long)]
    pub state: Option<String>,
    /// Only packets from this agency code.
    #[arg(long)]
    pub from: Option<String>,
    /// Only documents of this priority: 0 thường, 1 khẩn, 2 thượng khẩn, 3 hỏa tốc, 4 hỏa tốc
    /// hẹn giờ.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=4))]
    pub priority: Option<u8>,
    /// Received on or after this day (YYYY-MM-DD, Vietnam time) or time (RFC 3339).
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Received on or before this day (YYYY-MM-DD, the whole day), or before this RFC 3339
    /// time (exclusive).
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// document, status or all (default: document).
    #[arg(long)]
    pub kind: Option<String>,
    /// At most this many entries, newest first.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `docaxis inbox show`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum InboxCommand {
    /// One received document: metadata, signature verdict, attachments, statuses.
    Show(InboxShowArgs),
}

/// `docaxis inbox show DOC`.
#[derive(Debug, clap::Args)]
pub(crate) struct InboxShowArgs {
    /// The received packet id, or the document id.
    pub document: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// With a document id: the sender, when several agencies used that id.
    #[arg(long)]
    pub from: Option<String>,
    /// Write the attachments (decoded) into this folder.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `docaxis status`: business statuses.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    #[command(subcommand)]
    pub command: StatusCommand,
}

/// `docaxis status send`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum StatusCommand {
    /// Sign and send a business status about a document.
    ///
    /// As the recipient of DOC: 02 reject (needs --reason), 03 accept, 04 assign, 05
    /// processing, 06 done, 15 agree / 16 refuse a take-back request. As its original sender:
    /// 13 take back (needs --reason; --to RECIPIENT when it went to several). Steps that do
    /// not follow (e.g. 05 before 03) are refused; sending a code again sends nothing new.
    Send(StatusSendArgs),
}

/// `docaxis status send DOC --code NN`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusSendArgs {
    /// The document id, or the received packet id.
    pub document: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// 02, 03, 04, 05, 06, 13, 15 or 16.
    #[arg(long)]
    pub code: String,
    /// Why (required for 02 and 13).
    #[arg(long)]
    pub reason: Option<String>,
    /// Who handled it (written in StaffInfo).
    #[arg(long)]
    pub staff: Option<String>,
    /// As recipient: the document's sender, when several agencies used that document id.
    #[arg(long)]
    pub from: Option<String>,
    /// For 13: the recipient asked to give the document back.
    #[arg(long)]
    pub to: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `docaxis track`: per recipient, where a sent document stands.
#[derive(Debug, clap::Args)]
pub(crate) struct TrackArgs {
    /// The document id (e.g. "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT").
    pub document_id: String,
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A refusal by the node is exit status 1 (with its message); other errors propagate.
pub(crate) fn refused(e: ClientError) -> anyhow::Result<ExitCode> {
    match e {
        ClientError::Api { .. } => {
            eprintln!("refused: {e}");
            Ok(ExitCode::FAILURE)
        }
        other => Err(other.into()),
    }
}

/// Runs the node until Ctrl-C or SIGTERM.
pub(crate) fn run_node(args: NodeArgs) -> anyhow::Result<ExitCode> {
    if let Some(NodeCommand::User(cmd)) = args.command {
        return super::users::run(cmd);
    }
    let Some(config) = args.config else {
        anyhow::bail!("`docaxis node` needs --config node.toml (or DOCAXIS_NODE_CONFIG)");
    };
    let config = config.load()?;
    let rt = super::server_rt::build(None)?;
    rt.block_on(async move {
        super::signals::survive_file_size_limit();
        let node = start(config).await?;
        println!(
            "DocAxis node {} running: clerk API and web pages on {} (token in {})",
            node.agency(),
            node.web_url(),
            node.token_path().display()
        );
        super::signals::reload_on_hangup(std::sync::Arc::clone(&node.node().trust));
        super::signals::shutdown().await;
        println!("stopping…");
        node.shutdown().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `docaxis send`.
pub(crate) fn run_send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let client = args.config.client()?;
    let request = args.document.request(&args.to)?;
    let sent = match runtime()?.block_on(client.send(&request)) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &sent)?;
        writeln!(out)?;
    } else {
        writeln!(out, "queued   document {}", sent.document_id)?;
        writeln!(out, "         packet   {}", sent.packet_id)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `docaxis outbox`.
pub(crate) fn run_outbox(args: OutboxArgs) -> anyhow::Result<ExitCode> {
    let client = args.config.client()?;
    let list = match runtime()?.block_on(client.outbox(args.kind.as_deref(), args.limit)) {
        Ok(l) => l,
        Err(e) => return refused(e),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.items.is_empty() {
        writeln!(out, "the outbox is empty")?;
    }
    for item in &list.items {
        print_outbox_item(&mut out, item)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_outbox_item(out: &mut dyn Write, i: &OutboxItem) -> std::io::Result<()> {
    let what = match (i.kind, &i.status_code) {
        (PacketKind::Status, Some(code)) => format!("status {}", status_label(code.as_str())),
        _ => "document".to_string(),
    };
    writeln!(out, "{:<10} {}  ({what})", i.state, i.document_id)?;
    if let Some(s) = &i.subject {
        writeln!(out, "  {:<11} {s}", "subject:")?;
    }
    writeln!(out, "  {:<11} {}", "to:", recipients(i))?;
    writeln!(out, "  {:<11} {}", "created:", i.created_at)?;
    writeln!(out, "  {:<11} {}", "progress:", i.summary)?;
    if i.kind == PacketKind::Document {
        writeln!(out, "  {:<11} {}", "business:", i.business)?;
    }
    writeln!(out, "  {:<11} {}", "attempts:", i.attempts)?;
    if let Some(at) = &i.next_attempt_at
        && i.state == "queued"
    {
        writeln!(out, "  {:<11} {at}", "next try:")?;
    }
    if let Some(e) = &i.last_error {
        writeln!(out, "  {:<11} {e}", "last error:")?;
    }
    writeln!(out, "  {:<11} {}", "packet:", i.packet_id)?;
    writeln!(out)
}

fn recipients(i: &OutboxItem) -> String {
    i.recipients
        .iter()
        .map(|r| r.code.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn status_label(code: &str) -> String {
    match StatusCode::parse(code) {
        Ok(c) => format!("{code} {} ({})", c.label_vi(), c.label_en()),
        Err(_) => code.to_string(),
    }
}

/// `docaxis inbox`.
pub(crate) fn run_inbox(args: InboxArgs) -> anyhow::Result<ExitCode> {
    if let Some(InboxCommand::Show(show)) = args.command {
        return run_inbox_show(show);
    }
    let Some(config) = args.config else {
        anyhow::bail!("the node configuration is needed: --config FILE (or DOCAXIS_NODE_CONFIG)");
    };
    let client = ConfigArg { config }.client()?;
    let params = InboxParams {
        state: args.state.as_deref(),
        from: args.from.as_deref(),
        kind: args.kind.as_deref(),
        priority: args.priority,
        since: args.since.as_deref(),
        until: args.until.as_deref(),
        limit: args.limit,
    };
    let fut = client.inbox(&params);
    let list = match runtime()?.block_on(fut) {
        Ok(l) => l,
        Err(e) => return refused(e),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &list)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.items.is_empty() {
        writeln!(out, "nothing received")?;
    }
    for item in &list.items {
        print_inbox_item(&mut out, item)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_inbox_item(out: &mut dyn Write, i: &InboxItem) -> std::io::Result<()> {
    let what = match &i.status_code {
        Some(code) => format!("status {}", status_label(code.as_str())),
        None => "document".to_string(),
    };
    let state = i.business_state.as_deref().unwrap_or(&i.state);
    writeln!(out, "{state:<10} {}  ({what})", i.document_id)?;
    if let Some(a) = &i.action {
        writeln!(out, "  {:<11} {}", "request:", a.describe())?;
    }
    if i.take_back_requested {
        let asks = match &i.action {
            Some(a) => format!("the sender asks to {} {}", a.kind.as_str(), a.original),
            None => "the sender asks to take it back".to_string(),
        };
        writeln!(
            out,
            "  {:<11} {asks} (answer with --code 15 or 16)",
            "pending:"
        )?;
    }
    if let Some(m) = &i.mark {
        writeln!(
            out,
            "  {:<11} {} by {} (agreed {})",
            "marked:", m.state, m.by_document, m.at
        )?;
    }
    writeln!(out, "  {:<11} {} ({})", "from:", i.from, i.from_name)?;
    if let Some(s) = &i.subject {
        writeln!(out, "  {:<11} {s}", "subject:")?;
    }
    if let Some(c) = &i.code {
        writeln!(out, "  {:<11} {c}", "code:")?;
    }
    if i.kind == PacketKind::Document
        && let Some(p) = Priority::from_code(i.priority)
    {
        writeln!(out, "  {:<11} {p}", "priority:")?;
    }
    writeln!(out, "  {:<11} {}", "received:", i.received_at)?;
    if let Some(a) = &i.answered_with {
        writeln!(out, "  {:<11} status 01 sent as packet {a}", "answered:")?;
    }
    writeln!(out, "  {:<11} {}", "packet:", i.packet_id)?;
    writeln!(out)
}

/// `docaxis track`.
pub(crate) fn run_track(args: TrackArgs) -> anyhow::Result<ExitCode> {
    let client = args.config.client()?;
    let view = match runtime()?.block_on(client.track(&args.document_id)) {
        Ok(v) => v,
        Err(e) => return refused(e),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &view)?;
        writeln!(out)?;
    } else {
        print_track(&mut out, &view)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a document's tracking view for a clerk.
pub(crate) fn print_track(out: &mut dyn Write, v: &TrackView) -> std::io::Result<()> {
    writeln!(out, "document:  {}", v.document_id)?;
    if let Some(s) = &v.subject {
        writeln!(out, "subject:   {s}")?;
    }
    writeln!(out, "packet:    {}", v.packet_id)?;
    writeln!(
        out,
        "state:     {} after {} attempt(s): {}",
        v.state, v.attempts, v.summary
    )?;
    writeln!(out, "business:  {}", v.business)?;
    if let Some(a) = &v.action {
        writeln!(out, "request:   {}", a.describe())?;
    }
    if let Some(e) = &v.last_error {
        writeln!(out, "error:     {e}")?;
    }
    for r in &v.requests {
        let kind = r.action.as_ref().map_or("request", |a| a.kind.as_str());
        writeln!(
            out,
            "{:<10} {kind} {} ({}): {}",
            "requested:", r.document_id, r.state, r.business
        )?;
    }
    for r in &v.recipients {
        let s = &r.summary;
        writeln!(out)?;
        writeln!(out, "{}", s.code)?;
        let or_dash = |v: &Option<Timestamp>| v.map_or_else(|| "–".into(), |t| t.to_string());
        writeln!(out, "  {:<14} {}", "hub accepted:", or_dash(&s.accepted_at))?;
        if let Some(reason) = &s.refused {
            writeln!(out, "  {:<14} {reason}", "hub refused:")?;
        }
        writeln!(out, "  {:<14} {}", "delivered:", or_dash(&s.delivered_at))?;
        writeln!(out, "  {:<14} {}", "state:", s.business_state)?;
        if s.take_back != "none" && !s.take_back.is_empty() {
            let what = if v.action.is_some() {
                "answer:"
            } else {
                "take back:"
            };
            writeln!(out, "  {:<14} {}", what, s.take_back)?;
        }
        if let Some(m) = &s.mark {
            writeln!(
                out,
                "  {:<14} {} by {} at {}",
                "marked:", m.state, m.by_document, m.at
            )?;
        }
        match &s.last_status {
            Some(st) => writeln!(
                out,
                "  {:<14} {} {} ({}) at {}",
                "last status:", st.code, st.label, st.label_en, st.time
            )?,
            None => writeln!(out, "  {:<14} –", "last status:")?,
        }
        for ev in &r.timeline {
            writeln!(out, "    {}  {}", ev.at, ev.event)?;
            if let Some(a) = &ev.anomaly {
                writeln!(out, "      ! out of order: {a}")?;
            }
        }
    }
    Ok(())
}

/// `docaxis status send`.
pub(crate) fn run_status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let StatusCommand::Send(args) = args.command;
    let client = args.config.client()?;
    let request = StatusRequest {
        code: args.code.clone(),
        reason: args.reason.clone(),
        staff: args.staff.clone(),
        position: None,
        from: args.from.clone(),
        to: args.to.clone(),
    };
    let sent = match runtime()?.block_on(client.send_status(&args.document, &request)) {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &sent)?;
        writeln!(out)?;
    } else {
        let verb = if sent.repeated {
            "already sent"
        } else {
            "queued  "
        };
        writeln!(
            out,
            "{verb} status {} to {} for document {}",
            status_label(&sent.code),
            sent.to,
            sent.document_id
        )?;
        writeln!(out, "         packet {}", sent.packet_id)?;
        writeln!(out, "         state  {}", sent.state)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds the received packet for a document id (or takes the packet id as it is).
async fn resolve_received(
    client: &ApiClient,
    document: &str,
    from: Option<&str>,
) -> Result<Result<String, String>, ClientError> {
    if is_packet_id(document) {
        return Ok(Ok(document.to_string()));
    }
    let list = client
        .inbox(&InboxParams {
            from,
            kind: Some("document"),
            limit: Some(5_000),
            ..InboxParams::default()
        })
        .await?;
    let found: Vec<&InboxItem> = list
        .items
        .iter()
        .filter(|i| i.document_id == document)
        .collect();
    let mut senders: Vec<&str> = found.iter().map(|i| i.from.as_str()).collect();
    senders.sort_unstable();
    senders.dedup();
    Ok(match (found.first(), senders.len()) {
        (None, _) => Err(format!("no received document with id {document:?}")),
        (Some(i), 1) => Ok(i.packet_id.clone()),
        _ => Err(format!(
            "several agencies sent a document with id {document:?} ({}): name one with --from",
            senders.join(", ")
        )),
    })
}

/// `docaxis inbox show`.
pub(crate) fn run_inbox_show(args: InboxShowArgs) -> anyhow::Result<ExitCode> {
    let client = args.config.client()?;
    let rt = runtime()?;
    let packet_id = match rt.block_on(resolve_received(
        &client,
        &args.document,
        args.from.as_deref(),
    )) {
        Ok(Ok(id)) => id,
        Ok(Err(message)) => {
            eprintln!("refused: {message}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return refused(e),
    };
    let detail = match rt.block_on(client.inbox_item(&packet_id)) {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    let mut extracted = Vec::new();
    let mut failures = Vec::new();
    if let Some(dir) = &args.extract {
        let bytes = match rt.block_on(client.inbox_packet(&packet_id)) {
            Ok(b) => b,
            Err(e) => return refused(e),
        };
        let packet = read(&bytes, &ReadOptions::default())
            .with_context(|| format!("stored packet {packet_id} cannot be read"))?
            .packet;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        if let Packet::Document(d) = packet {
            for (i, a) in d.attachments.iter().enumerate() {
                let written = a
                    .decoded()
                    .map_err(|e| format!("attachment {:?} cannot be decoded: {e}", a.name))
                    .and_then(|data| super::extract::write_attachment(dir, &a.name, i + 1, &data));
                match written {
                    Ok(path) => extracted.push(path),
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &detail)?;
        writeln!(out)?;
    } else {
        print_inbox_detail(&mut out, &detail)?;
        for p in &extracted {
            writeln!(out, "extracted  {}", p.display())?;
        }
    }
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for f in &failures {
        eprintln!("not extracted: {f}");
    }
    Ok(ExitCode::FAILURE)
}

fn print_inbox_detail(out: &mut dyn Write, d: &InboxDetail) -> std::io::Result<()> {
    print_inbox_item(out, &d.item)?;
    let verdict = if d.signature.valid {
        "valid"
    } else {
        "NOT VALID"
    };
    writeln!(
        out,
        "  {:<11} {verdict}: {}",
        "signature:", d.signature.detail
    )?;
    writeln!(out, "  {:<11} {} bytes", "size:", d.size)?;
    for a in &d.attachments {
        writeln!(
            out,
            "  {:<11} {} ({}, {} bytes)",
            "attachment:", a.name, a.content_type, a.size
        )?;
    }
    if !d.timeline.is_empty() {
        writeln!(out, "  statuses:")?;
        for ev in &d.timeline {
            writeln!(out, "    {}  {}", ev.at, ev.event)?;
            if let Some(a) = &ev.anomaly {
                writeln!(out, "      ! out of order: {a}")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Cmd {
        Node(NodeArgs),
        Send(SendArgs),
        Outbox(OutboxArgs),
        Inbox(InboxArgs),
        Track(TrackArgs),
        Status(StatusArgs),
    }

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("docaxis").chain(args.iter().copied())).map(|c| c.cmd)
    }

    #[test]
    fn command_lines() {
        Cli::command().debug_assert();
        let Cmd::Send(s) = parse(&[
            "send",
            "--config",
            "n.toml",
            "--to",
            "000.00.00.H41",
            "--to",
            "000.00.00.X01=Sở",
            "--subject",
            "S",
            "--number",
            "1",
            "--notation",
            "X",
            "--priority",
            "3",
            "--attach",
            "a.pdf",
        ])
        .unwrap() else {
            panic!("not send")
        };
        assert_eq!(s.to.len(), 2);
        assert_eq!(s.document.priority, 3);
        assert_eq!(s.config.config, PathBuf::from("n.toml"));
        assert!(parse(&["send", "--config", "n.toml", "--spec", "d.toml"]).is_ok());
        // --spec excludes the document flags; without it they are required.
        assert!(
            parse(&[
                "send", "--config", "n.toml", "--spec", "d.toml", "--to", "x"
            ])
            .is_err()
        );
        assert!(parse(&["send", "--config", "n.toml", "--to", "000.00.00.H41"]).is_err());
        assert!(
            parse(&[
                "send",
                "--config",
                "n.toml",
                "--spec",
                "d.toml",
                "--priority",
                "5"
            ])
            .is_err()
        );
        let Cmd::Track(t) = parse(&[
            "track",
            "000.00.00.G22,2026/11/23,1/X",
            "--config",
            "n.toml",
            "--json",
        ])
        .unwrap() else {
            panic!("not track")
        };
        assert_eq!(t.document_id, "000.00.00.G22,2026/11/23,1/X");
        assert!(t.json);
        assert!(matches!(
            parse(&[
                "inbox",
                "--config",
                "n.toml",
                "--state",
                "new",
                "--from",
                "000.00.00.G22"
            ]),
            Ok(Cmd::Inbox(_))
        ));
        assert!(matches!(
            parse(&["outbox", "--config", "n.toml"]),
            Ok(Cmd::Outbox(_))
        ));
        assert!(matches!(
            parse(&["node", "--config", "n.toml"]),
            Ok(Cmd::Node(_))
        ));
        let Cmd::Status(StatusArgs {
            command: StatusCommand::Send(st),
        }) = parse(&[
            "status",
            "send",
            "D",
            "--config",
            "n.toml",
            "--code",
            "02",
            "--reason",
            "sai",
            "--staff",
            "Lan",
            "--from",
            "000.00.00.G22",
        ])
        .unwrap()
        else {
            panic!("not status")
        };
        assert_eq!(
            (st.code.as_str(), st.reason.as_deref(), st.from.as_deref()),
            ("02", Some("sai"), Some("000.00.00.G22"))
        );
        let Cmd::Inbox(i) = parse(&[
            "inbox",
            "show",
            "D",
            "--config",
            "n.toml",
            "--extract",
            "out",
        ])
        .unwrap() else {
            panic!("not inbox")
        };
        assert!(matches!(
            i.command,
            Some(InboxCommand::Show(InboxShowArgs {
                extract: Some(_),
                ..
            }))
        ));
    }
}
