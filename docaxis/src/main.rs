//! `docaxis`: the command-line front end. Parses arguments and hands over to the library's
//! `cli` modules; no logic of its own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod alloc;
mod bench;
mod cli;

/// mimalloc for ordinary blocks, the kernel directly for big ones (`alloc`). The
/// `system-allocator` feature leaves glibc's malloc in place, for heap profilers that watch
/// malloc (heaptrack); it is not for production.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: alloc::Allocator = alloc::Allocator;
/// DocAxis — inter-agency electronic document exchange (edXML, QCVN 102:2016).
///
/// One binary plays every role: the national hub, an agency node, and the tools clerks and
/// operators use around them. Start with `docaxis edxml check examples/conformance/*.edxml`.
#[derive(Debug, Parser)]
#[command(
    name = "docaxis",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure documents per second and latency end to end: hub and two nodes on loopback.
    Bench(cli::bench::BenchArgs),
    /// Run a hub and three agency nodes on loopback and send a document across.
    Demo(cli::demo::DemoArgs),
    /// Inspect and write edXML packets.
    #[command(subcommand)]
    Edxml(cli::edxml::EdxmlCommand),
    /// Development PKI: a national CA, the hub's and agencies' certificates, the CRL.
    #[command(subcommand)]
    Pki(cli::pki::PkiCommand),
    /// Sign an edXML packet with an agency's key and certificate (XML-DSig, enveloped).
    Sign(cli::dsig::SignArgs),
    /// Verify signed edXML packets strictly against trusted CA certificates.
    Verify(cli::dsig::VerifyArgs),
    /// Run the national hub (`--config hub.toml`), or manage its agency directory.
    Hub(cli::hub::HubArgs),
    /// Run an agency node (`--config node.toml`): outbox, inbox, statuses, clerk API.
    Node(cli::node::NodeArgs),
    /// Send a document through a running node (prints its document id and packet id).
    Send(cli::node::SendArgs),
    /// What this agency sent, and how far each document got.
    Outbox(cli::node::OutboxArgs),
    /// What this agency received.
    Inbox(cli::node::InboxArgs),
    /// One document's journey to each recipient: accepted, delivered, statuses.
    Track(cli::node::TrackArgs),
    /// Send a business status about a document: accept, reject, assign, … or take it back.
    Status(cli::node::StatusArgs),
    /// Revoke (thu hồi) a document this agency sent; recipients answer 15 or 16.
    Revoke(cli::actions::RevokeArgs),
    /// Update (cập nhật) a document this agency sent: subject, content, recipients.
    Update(cli::actions::UpdateArgs),
    /// Replace (thay thế) a document this agency sent by a new one.
    Replace(cli::actions::ReplaceArgs),
    /// Records: export documents with their evidence as ASiC-E containers, verify them offline.
    #[command(subcommand)]
    Archive(cli::archive::ArchiveCommand),
}

fn main() -> ExitCode {
    alloc::return_freed_memory_sooner();
    let cli = Cli::parse();
    // The demo and the benchmark narrate on stdout; its components' logs stay quiet unless asked for.
    init_logging(
        if matches!(cli.command, Command::Demo(_) | Command::Bench(_)) {
            "warn"
        } else {
            "info"
        },
    );
    // One process-wide TLS crypto provider (aws-lc-rs), for every client and server.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let result = match cli.command {
        Command::Bench(args) => cli::bench::run(args),
        Command::Demo(args) => cli::demo::run(args),
        Command::Edxml(cmd) => cli::edxml::run(cmd),
        Command::Pki(cmd) => cli::pki::run(cmd).map(|()| ExitCode::SUCCESS),
        Command::Sign(args) => cli::dsig::run_sign(args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => cli::dsig::run_verify(args),
        Command::Hub(args) => cli::hub::run(args),
        Command::Node(args) => cli::node::run_node(args),
        Command::Send(args) => cli::node::run_send(args),
        Command::Outbox(args) => cli::node::run_outbox(args),
        Command::Inbox(args) => cli::node::run_inbox(args),
        Command::Track(args) => cli::node::run_track(args),
        Command::Status(args) => cli::node::run_status(args),
        Command::Revoke(args) => cli::actions::run_revoke(args),
        Command::Update(args) => cli::actions::run_update(args),
        Command::Replace(args) => cli::actions::run_replace(args),
        Command::Archive(cmd) => cli::archive::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DOCAXIS_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
