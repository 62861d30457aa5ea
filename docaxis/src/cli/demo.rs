//! `docaxis demo`: the whole exchange on loopback, in one command that needs nothing but the
//! binary.
//!
//! It makes a development PKI (or uses `--certs DIR`), writes a `hub.toml` and three
//! `node.toml` files, starts the hub and three agency nodes in this process on free loopback
//! ports (real mutual TLS, real redb files), registers the agencies, sends a công văn with a
//! PDF attachment from Văn phòng Chính phủ to two provinces through the sender node's clerk
//! API, waits until the hub delivered it and both recipients answered with status 01; then the
//! recipients' clerks work on it (Nghệ An 03 → 04 → 05 → 06, Cao Bằng 02 with a reason), and
//! the demo prints the sender's timeline, each recipient's and the hub's record, checks that
//! they all hold the same statuses, prints where everything lives, and exits 0. With `--keep-running` it
//! stays up and prints the commands to use it.
//!
//! The example document and its attachment are compiled into the binary, so the demo runs from
//! anywhere.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use hub::{self, HubConfig};
use node::client::{ApiClient, InboxParams};
use node::views::StatusRequest;
use node::{self as agency_node, NodeConfig};

const SPEC: &str = include_str!("../../../examples/cong-van-ket-noi.toml");
const PDF: &[u8] = include_bytes!("../../../examples/attachments/cong-van-7816-VPCP-TTDT.pdf");
const PDF_PATH: &str = "attachments/cong-van-7816-VPCP-TTDT.pdf";

const AGENCIES: [(&str, &str); 3] = [
    ("000.00.00.G22", "Văn phòng Chính phủ"),
    ("000.00.00.H41", "UBND Tỉnh Nghệ An"),
    ("000.00.00.H14", "UBND Tỉnh Cao Bằng"),
];

/// Run a hub and three agency nodes on loopback and send a document across.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Folder for the PKI, configurations and databases (default: a new temporary folder).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Use this existing development PKI (e.g. `certs/`) instead of making a new one.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// Leave the hub and nodes running (until Ctrl-C) and print how to use them.
    #[arg(long)]
    pub keep_running: bool,
    /// How long to wait for delivery and the 01 statuses, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
    /// Send every email (operators' alerts) to this SMTP server (HOST:PORT on loopback, plain
    /// SMTP), e.g. `python3 -m aiosmtpd -n -l 127.0.0.1:2525`.
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp: Option<String>,
    /// Keep the hub's state in this PostgreSQL database (an empty one, or the one an earlier
    /// demo in the same --dir used) instead of the embedded file.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Run the hub as this many replicas on that database; the nodes list them all, each in
    /// its own order, and move to the next when one does not answer. Needs --postgres above 1.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=8))]
    pub hub_replicas: u64,
}

/// Who receives the operators' alerts in the demo.
const OPERATOR_EMAIL: &str = "van-hanh@hub.demo";

/// The demo's short threshold for a delivery left pending (production: an hour).
const ALERT_PENDING_AFTER_SECS: u64 = 20;

/// Runs the demo.
pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let rt = super::server_rt::build(None)?;
    rt.block_on(demo(args))
}

fn step(text: &str) {
    println!("\n==> {text}");
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    if args.hub_replicas > 1 && args.postgres.is_none() {
        bail!(
            "--hub-replicas {} needs --postgres URL: replicas share their state in PostgreSQL",
            args.hub_replicas
        );
    }
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.canonicalize()?
        }
        None => tempdir()?,
    };
    println!("DocAxis demo in {}", dir.display());

    let pki_dir = match &args.certs {
        Some(c) => c
            .canonicalize()
            .with_context(|| format!("no PKI at {}", c.display()))?,
        None => {
            step("making a development PKI (national CA, CRL, hub and 3 agency certificates)");
            let pki_dir = dir.join("pki");
            if !pki_dir.join("ca.pem").exists() {
                dsig::pki::init(&pki_dir, &dsig::pki::InitOptions::default())
                    .context("cannot make the development PKI")?;
            }
            println!("    {}", pki_dir.display());
            pki_dir
        }
    };

    match &args.postgres {
        None => step("starting the hub (mutual TLS, HTTP/2) on a free loopback port"),
        Some(_) => step(&format!(
            "starting the hub as {} replica(s) on PostgreSQL (mutual TLS, HTTP/2), free loopback ports",
            args.hub_replicas
        )),
    }
    // Replica i (from 1) has hub.toml (the first) or hub-i.toml, and its own data_dir.
    let hub_config_of = |i: u64| -> anyhow::Result<PathBuf> {
        let (file, data) = if i == 1 {
            ("hub.toml".to_string(), "hub".to_string())
        } else {
            (format!("hub-{i}.toml"), format!("hub-{i}"))
        };
        let path = dir.join(file);
        let store = match &args.postgres {
            Some(url) => format!("\n[store]\npostgres = {url:?}\n"),
            None => String::new(),
        };
        std::fs::write(
            &path,
            format!(
                "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\ndata_dir = \"{data}\"\ncertificate = \"{pki}/hub.pem\"\nprivate_key = \"{pki}/hub.key.pem\"\ntrust = [\"{pki}/ca.pem\"]\ncrl = [\"{pki}/crl.pem\"]\n{alerts}{store}",
                pki = pki_dir.display(),
                alerts = alert_config(args.smtp.as_deref()),
            ),
        )?;
        Ok(path)
    };
    let hub_config_path = hub_config_of(1)?;
    let hub_config = HubConfig::load(&hub_config_path)?;
    let running_hub = hub::start(&hub_config).await?;
    for (code, name) in AGENCIES {
        let pem = std::fs::read_to_string(pki_dir.join("agencies").join(format!("{code}.pem")))
            .with_context(|| format!("no certificate for {code} in {}", pki_dir.display()))?;
        let req = hub::admin::NewAgency {
            code: code.into(),
            name: name.into(),
            email: None,
            certificates: vec![pem],
        };
        match hub::admin::add_agency(&running_hub.hub.db, req).await {
            Ok(a) => running_hub.hub.cache_agency(a),
            Err(e)
                if e.code == exchange::protocol::ErrorCode::BadRequest
                    && e.message.contains("already") => {}
            Err(e) => bail!("cannot register {code}: {e}"),
        }
    }
    println!(
        "    hub at https://{}  (agencies registered: {})",
        running_hub.addr,
        AGENCIES.len()
    );
    // Further replicas read the directory just registered from the shared database.
    let mut replicas: Vec<(PathBuf, hub::RunningHub)> = Vec::new();
    for i in 2..=args.hub_replicas {
        let path = hub_config_of(i)?;
        let running = hub::start(&HubConfig::load(&path)?).await?;
        println!("    replica {i} at https://{}", running.addr);
        replicas.push((path, running));
    }
    let hub_urls: Vec<String> = std::iter::once(&running_hub)
        .chain(replicas.iter().map(|(_, r)| r))
        .map(|h| format!("https://{}", h.addr))
        .collect();

    step("starting three agency nodes");
    let mut nodes = Vec::new();
    for (n, &(code, name)) in AGENCIES.iter().enumerate() {
        // Each node starts at another replica (all of them listed), so documents cross.
        let mut urls = hub_urls.clone();
        urls.rotate_left(n % hub_urls.len());
        let node_dir = dir.join(code);
        std::fs::create_dir_all(&node_dir)?;
        let path = node_dir.join("node.toml");
        std::fs::write(
            &path,
            format!(
                "agency = \"{code}\"\nagency_name = \"{name}\"\nhub_url = {urls:?}\ndata_dir = \"data\"\ncertificate = \"{pki}/agencies/{code}.pem\"\nprivate_key = \"{pki}/agencies/{code}.key.pem\"\ntrust = [\"{pki}/ca.pem\"]\ncrl = [\"{pki}/crl.pem\"]\nhub_certificate = \"{pki}/hub.pem\"\napi_listen = \"127.0.0.1:0\"\npoll_wait_secs = 20\n",
                pki = pki_dir.display()
            ),
        )?;
        // The document system (QLVBĐH) of this agency, on the axis SDK: the legacy API.
        let legacy_secret = node_dir.join("legacy.secret");
        let secret = match std::fs::read_to_string(&legacy_secret) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = uuid::Uuid::new_v4().simple().to_string();
                std::fs::write(&legacy_secret, format!("{t}\n"))?;
                t
            }
        };
        let legacy_system = format!("qlvb-{}", short_name(code));
        {
            let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
            std::io::Write::write_all(
                &mut f,
                format!(
                    "\n[legacy]\nlisten = \"127.0.0.1:0\"\n\n[[legacy.systems]]\nsystem_id = \"{legacy_system}\"\nsecret_file = \"legacy.secret\"\n"
                )
                .as_bytes(),
            )?;
        }
        if let Some(smtp) = &args.smtp {
            let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
            std::io::Write::write_all(
                &mut f,
                format!(
                    "\n[notices]\nto = [\"{email}\"]\n\n[mail]\nsmtp = \"{smtp}\"\nsecurity = \"none\"\nfrom = \"DocAxis {name} <docaxis@{short}.demo>\"\nretry_initial_secs = 2\nretry_max_secs = 30\n",
                    email = clerk_email(code),
                    short = short_name(code),
                )
                .as_bytes(),
            )?;
        }
        let config = NodeConfig::load(&path)?;
        let running = agency_node::start(config)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the node of {code}: {e}"))?;
        let (full_name, position) = demo_clerk(code);
        let login = demo_account(&running, code, "vanthu", "clerk", full_name, position).await?;
        let records = demo_account(
            &running,
            code,
            "luutru",
            "records",
            "Phòng Lưu trữ",
            "Lưu trữ",
        )
        .await?;
        println!(
            "    {code} {name}: web and clerk API {}  (log in as {} / {})  config {}",
            running.web_url(),
            login.0,
            login.1,
            path.display()
        );
        nodes.push((code, path, running, login, records, (legacy_system, secret)));
    }

    step(
        "a clerk at Văn phòng Chính phủ sends công văn 7816/VPCP-TTĐT with a PDF to Nghệ An and Cao Bằng",
    );
    let spec_dir = dir.join("document");
    std::fs::create_dir_all(spec_dir.join("attachments"))?;
    std::fs::write(spec_dir.join("cong-van-ket-noi.toml"), SPEC)?;
    std::fs::write(spec_dir.join(PDF_PATH), PDF)?;
    let request = node::client::request_from_spec_file(&spec_dir.join("cong-van-ket-noi.toml"))?;
    let sender = &nodes[0].2;
    let clerk = ApiClient::new(sender.api_addr(), sender.token().to_string())?;
    let sent = clerk.send(&request).await?;
    println!("    document id {}", sent.document_id);
    println!(
        "    packet id   {} (SHA-256 of the signed bytes)",
        sent.packet_id
    );

    step(
        "waiting for the hub's receipts, delivery to both agencies and their 01 (đã đến) statuses",
    );
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let view = clerk.track(&sent.document_id).await?;
        let done = view.recipients.len() == 2
            && view.recipients.iter().all(|r| {
                r.summary.delivered_at.is_some()
                    && r.summary
                        .last_status
                        .as_ref()
                        .is_some_and(|s| s.code == "01")
            });
        if done {
            break;
        }
        if Instant::now() > deadline {
            let mut out = std::io::stdout().lock();
            crate::cli::node::print_track(&mut out, &view)?;
            bail!(
                "the document did not reach both agencies within {} s",
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("    delivered to both; each answered 01 (đã đến) automatically");

    step(
        "the recipients' clerks work on it: Nghệ An accepts (03), assigns (04), processes (05) \
         and completes it (06); Cao Bằng rejects it (02) with a reason",
    );
    let recipient_client = |i: usize| {
        let running = &nodes[i].2;
        ApiClient::new(running.api_addr(), running.token().to_string())
    };
    let h41 = recipient_client(1)?;
    let h14 = recipient_client(2)?;
    let steps: [(&ApiClient, &str, &str, &str, Option<&str>); 5] = [
        (&h41, "000.00.00.H41", "03", "Trần Thị Lan, Văn thư", None),
        (
            &h41,
            "000.00.00.H41",
            "04",
            "Lê Văn Hùng, Phó Chánh Văn phòng",
            None,
        ),
        (
            &h41,
            "000.00.00.H41",
            "05",
            "Nguyễn Văn Minh, Chuyên viên",
            None,
        ),
        (
            &h41,
            "000.00.00.H41",
            "06",
            "Nguyễn Văn Minh, Chuyên viên",
            None,
        ),
        (
            &h14,
            "000.00.00.H14",
            "02",
            "Hoàng Thị Hoa, Văn thư",
            Some("Không thuộc thẩm quyền giải quyết của tỉnh"),
        ),
    ];
    for (client, code, status, staff, reason) in steps {
        let answer = client
            .send_status(
                &sent.document_id,
                &StatusRequest {
                    code: status.into(),
                    reason: reason.map(str::to_string),
                    staff: Some(staff.into()),
                    ..StatusRequest::default()
                },
            )
            .await
            .with_context(|| format!("{code} could not send status {status}"))?;
        println!(
            "    {code} sent {} by {staff} (now {})",
            status_name(status),
            answer.state
        );
    }
    // The statuses travel back through the hub; wait until the sender has them all.
    let view = loop {
        let view = clerk.track(&sent.document_id).await?;
        let state = |code: &str| {
            view.recipients
                .iter()
                .find(|r| r.summary.code == code)
                .map(|r| r.summary.business_state.clone())
        };
        if state("000.00.00.H41").as_deref() == Some("completed")
            && state("000.00.00.H14").as_deref() == Some("rejected")
        {
            break view;
        }
        if Instant::now() > deadline {
            let mut out = std::io::stdout().lock();
            crate::cli::node::print_track(&mut out, &view)?;
            bail!(
                "the recipients' statuses did not reach the sender within {} s",
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    step(&format!(
        "the whole history, as the sender sees it (docaxis track --config {})",
        nodes[0].1.display()
    ));
    {
        let mut out = std::io::stdout().lock();
        crate::cli::node::print_track(&mut out, &view)?;
    }

    step("the same history, as each recipient recorded it (docaxis inbox show)");
    for (i, client) in [(1, &h41), (2, &h14)] {
        let code = nodes[i].0;
        let inbox = client.inbox(&InboxParams::default()).await?;
        let Some(item) = inbox
            .items
            .iter()
            .find(|item| item.document_id == sent.document_id)
        else {
            bail!("{code} does not list the document");
        };
        let detail = client.inbox_item(&item.packet_id).await?;
        println!(
            "    {code}: {} — state {}",
            item.document_id,
            item.business_state.as_deref().unwrap_or(&item.state)
        );
        for ev in &detail.timeline {
            println!("      {}  {}", ev.at, ev.event);
        }
        let theirs = status_history(detail.timeline.iter().map(|e| (&e.at, &e.event)));
        let Some(ours) = view.recipients.iter().find(|r| r.summary.code == code) else {
            bail!("the sender does not track {code}");
        };
        let ours = status_history(ours.timeline.iter().map(|e| (&e.at, &e.event)));
        if theirs != ours {
            bail!(
                "the sender and {code} disagree on the history: sender {ours:?}, {code} {theirs:?}"
            );
        }
        println!(
            "      = the sender's record: the same {} statuses at the same times",
            ours.len()
        );
    }

    step(
        "the hub's own record of the same document (docaxis hub track), from what passed through it",
    );
    let hub_view = hub::admin::track(&running_hub.hub.db, nodes[0].0, &sent.document_id)
        .await
        .map_err(|e| anyhow::anyhow!("hub track: {e}"))?;
    {
        let mut out = std::io::stdout().lock();
        hub::track::print_track(&mut out, &hub_view)?;
    }
    for r in &view.recipients {
        let code = &r.summary.code;
        let Some(at_hub) = hub_view.recipients.iter().find(|h| &h.recipient == code) else {
            bail!("the hub has no record for {code}");
        };
        let ours: Vec<String> = status_history(r.timeline.iter().map(|e| (&e.at, &e.event)))
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        let hubs: Vec<String> = at_hub.statuses.iter().map(|s| s.code.clone()).collect();
        if at_hub.state != r.summary.business_state || hubs != ours {
            bail!(
                "the hub and the sender disagree about {code}: hub {} {hubs:?}, sender {} {ours:?}",
                at_hub.state,
                r.summary.business_state
            );
        }
        println!(
            "    {code}: the hub agrees with the sender ({}, statuses {})",
            at_hub.state,
            hubs.join(" → ")
        );
    }

    step(&format!(
        "records: the sender archives the document with its evidence (docaxis archive export --config {} …), and it is verified offline with only the national CA (docaxis archive verify --trust {}/ca.pem …)",
        nodes[0].1.display(),
        pki_dir.display()
    ));
    let archive_file = archive_demo_document(&dir, &pki_dir, sender, &sent.document_id).await?;

    step(
        "the document system (QLVBĐH) at Nghệ An, built on the national axis's SDK, asks Nghệ An's node for what arrived (legacy API: getReceivedEdocList, then getEdoc)",
    );
    {
        let (code, _, running, _, _, (system_id, secret)) = &nodes[1];
        let Some(addr) = running.legacy_addr() else {
            bail!("{code} has no legacy listener");
        };
        let endpoint = format!("http://{addr}");
        let list = agency_node::legacy::sdk_call(
            &endpoint,
            system_id,
            secret,
            "getReceivedEdocList",
            &[("servicetype", "eDoc"), ("messagetype", "edoc")],
        )
        .await
        .map_err(|e| anyhow::anyhow!("legacy API: {e}"))?;
        if list["status"] != "OK" {
            bail!("the legacy API refused the demo's document system: {list}");
        }
        let items = list["data"].as_array().cloned().unwrap_or_default();
        println!(
            "    {endpoint} (systemid {system_id}): {} document(s) waiting",
            items.len()
        );
        for item in &items {
            let doc = item["docId"].as_str().unwrap_or_default();
            let got = agency_node::legacy::sdk_call(
                &endpoint,
                system_id,
                secret,
                "getEdoc",
                &[("docId", doc)],
            )
            .await
            .map_err(|e| anyhow::anyhow!("legacy API: {e}"))?;
            let size = got["data"].as_str().map_or(0, str::len);
            println!(
                "      {doc} from {}: getEdoc {} ({} base64 characters, the signed packet)",
                item["from"].as_str().unwrap_or_default(),
                got["status"].as_str().unwrap_or_default(),
                size
            );
        }
    }

    if args.keep_running {
        step(
            "Văn phòng Chính phủ sends a second công văn, hỏa tốc (flash), 7817/VPCP-TTĐT: it waits in both provinces' inboxes for a văn thư in the browser",
        );
        let mut second = request.clone();
        second["code"]["number"] = "7817".into();
        second["priority"] = 3.into();
        second["subject"] =
            "V/v triển khai văn thư điện tử: đề nghị tiếp nhận và phản hồi ngay".into();
        let second = clerk.send(&second).await?;
        let deadline = Instant::now() + Duration::from_secs(args.timeout);
        loop {
            let view = clerk.track(&second.document_id).await?;
            if view
                .recipients
                .iter()
                .all(|r| r.summary.delivered_at.is_some())
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("the second document did not reach both agencies in time");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("    delivered: {}", second.document_id);
    }

    step("where everything lives");
    match running_hub.hub.db.backend_name() {
        "postgresql" => println!(
            "    hub database     PostgreSQL ([store] in {}), {} replica(s)",
            hub_config_path.display(),
            args.hub_replicas
        ),
        _ => println!("    hub database     {}", hub_config.db_path().display()),
    }
    for (code, path, running, _, _, _) in &nodes {
        let cfg = NodeConfig::load(path)?;
        println!(
            "    {code} database {}  (token {})",
            cfg.database_path().display(),
            running.token_path().display()
        );
    }

    let demo_json = dir.join("demo.json");
    if args.keep_running {
        let json = demo_json_value(&DemoFacts {
            dir: &dir,
            pki: &pki_dir,
            smtp: args.smtp.as_deref(),
            hub_config: &hub_config_path,
            hub: &running_hub,
            replicas: &replicas,
            token_file: &hub_config.admin_token_path(),
            nodes: &nodes,
            sent: &sent,
            archive: &archive_file,
        })?;
        write_atomically(&demo_json, &serde_json::to_vec_pretty(&json)?)?;
        step("operators");
        println!(
            "    console  {}  (log in with the token in {})",
            running_hub.console_url,
            hub_config.admin_token_path().display()
        );
        println!(
            "    metrics  http://{}/metrics  (bearer token in {})",
            running_hub.admin_addr,
            hub_config.admin_token_path().display()
        );
        println!(
            "    alerts   http://{}/admin/alerts  (a delivery pending {ALERT_PENDING_AFTER_SECS} s opens one{})",
            running_hub.admin_addr,
            match &args.smtp {
                Some(smtp) => format!("; mail to {OPERATOR_EMAIL} via {smtp}"),
                None => String::new(),
            }
        );
        for (i, (config, running)) in replicas.iter().enumerate() {
            println!(
                "    replica {} console  {}  (token in {})",
                i + 2,
                running.console_url,
                HubConfig::load(config)?.admin_token_path().display()
            );
        }
        step("clerks (văn thư), in a browser");
        for (code, _, running, (user, password), _, _) in &nodes {
            println!(
                "    {code}  {}/  log in as {user} / {password}{}",
                running.web_url(),
                if args.smtp.is_some() {
                    format!("  (notices to {})", clerk_email(code))
                } else {
                    String::new()
                }
            );
        }
        println!(
            "    at Nghệ An (000.00.00.H41): open 7817/VPCP-TTĐT (hỏa tốc) in the inbox, read its PDF, accept it"
        );
        println!("    everything above, for scripts: {}", demo_json.display());
        step("running; press Ctrl-C to stop. Try, in another terminal:");
        let g22 = nodes[0].1.display();
        let h41 = nodes[1].1.display();
        println!(
            "    docaxis send --config {g22} --to 000.00.00.H41 --subject 'Thử nghiệm' --number 1 --notation VPCP-TEST"
        );
        println!("    docaxis outbox --config {g22}");
        println!("    docaxis inbox --config {h41}");
        println!("    docaxis track '{}' --config {g22}", sent.document_id);
        println!(
            "    docaxis hub --config {} agency list",
            hub_config_path.display()
        );
        crate::cli::signals::shutdown().await;
    }

    step("stopping");
    for (_, _, running, _, _, _) in nodes {
        running
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    for (_, running) in replicas {
        running.shutdown().await?;
    }
    running_hub.shutdown().await?;
    if args.keep_running {
        let _ = std::fs::remove_file(&demo_json);
    }
    println!("    done: the document crossed the country and both sides agree on its history.");
    Ok(ExitCode::SUCCESS)
}

/// The `[alerts]` (and, with `--smtp`, `[mail]`) sections of the demo's `hub.toml`.
fn alert_config(smtp: Option<&str>) -> String {
    let mut text =
        format!("\n[alerts]\ncheck_secs = 2\npending_after_secs = {ALERT_PENDING_AFTER_SECS}\n");
    if let Some(smtp) = smtp {
        text.push_str(&format!(
            "to = [\"{OPERATOR_EMAIL}\"]\n\n[mail]\nsmtp = \"{smtp}\"\nsecurity = \"none\"\nfrom = \"DocAxis demo <hub@hub.demo>\"\nretry_initial_secs = 2\nretry_max_secs = 30\n"
        ));
    }
    text
}

/// Exports the demo document's container at the sender into `DIR/archive/`, verifies it as
/// a records system would (only the CA), prints the verifier's story; returns the file.
async fn archive_demo_document(
    dir: &std::path::Path,
    pki: &std::path::Path,
    sender: &agency_node::RunningNode,
    document_id: &str,
) -> anyhow::Result<PathBuf> {
    let Some(export) = node::archive::export(sender.node(), document_id)
        .await
        .map_err(|e| anyhow::anyhow!("archive export: {e}"))?
    else {
        bail!("the sender has no record of {document_id} to archive");
    };
    let folder = dir.join("archive");
    std::fs::create_dir_all(&folder)?;
    let file = folder.join(&export.file_name);
    write_atomically(&file, &export.bytes)?;
    let ca = std::fs::read(pki.join("ca.pem"))?;
    let opts = archive::VerifyOptions {
        anchors: dsig::pem::blocks(&ca, "CERTIFICATE").map_err(|e| anyhow::anyhow!("{e}"))?,
        ..archive::VerifyOptions::default()
    };
    let bytes = export.bytes;
    let (report, batches) = tokio::task::spawn_blocking(move || {
        (archive::verify(&bytes, &opts), receipt_batches(&bytes))
    })
    .await?;
    {
        let mut out = std::io::stdout().lock();
        crate::cli::archive::print_report(&mut out, "    ", &file.display().to_string(), &report)?;
    }
    if report.verdict != archive::Verdict::Valid {
        bail!(
            "the demo document's archive does not verify: {:?}",
            report.problems
        );
    }
    println!("    the hub signed its receipts in batches, one signature per batch:");
    for line in batches {
        println!("      {line}");
    }
    println!(
        "    any one checks out without DocAxis: unzip it, then scripts/check-receipt-proof.py \
         --hub {pki}/hub.pem RECEIPT.xml head.xml && xmlsec1 --verify --trusted-pem {pki}/ca.pem \
         --enabled-key-data x509 head.xml",
        pki = pki.display()
    );
    Ok(file)
}

/// How the receipts in a container were signed: how many, under how many hub signatures, and
/// where a few of those signed with others sit in their batch.
fn receipt_batches(container: &[u8]) -> Vec<String> {
    let Ok(entries) = archive::container::read(container, &Default::default()) else {
        return vec!["(the container could not be read)".into()];
    };
    let mut heads = std::collections::HashSet::new();
    let (mut receipts, mut alone, mut shared) = (0, 0, Vec::new());
    for (name, bytes) in entries.iter().filter(|(n, _)| n.starts_with("receipts/")) {
        receipts += 1;
        match dsig::batch::form(bytes) {
            Ok(dsig::batch::Form::Batched(b)) => {
                let size = match dsig::batch::TreeHead::parse(&b.head) {
                    Ok(head) => head.size,
                    Err(e) => {
                        shared.push(format!("{name}: {e}"));
                        continue;
                    }
                };
                heads.insert(b.head);
                if size > 1 {
                    shared.push(format!(
                        "{name}: receipt {} of {size} under one signature, {} hash(es) to its root",
                        b.index + 1,
                        b.path.len()
                    ));
                }
            }
            _ => alone += 1,
        }
    }
    let mut lines = vec![format!(
        "{receipts} receipts under {} hub signatures{}",
        heads.len() + alone,
        if alone > 0 {
            format!(" ({alone} signed alone)")
        } else {
            String::new()
        }
    )];
    lines.extend(shared.into_iter().take(3));
    lines
}

/// What `demo.json` is made of.
struct DemoFacts<'a> {
    dir: &'a std::path::Path,
    pki: &'a std::path::Path,
    smtp: Option<&'a str>,
    hub_config: &'a std::path::Path,
    hub: &'a hub::RunningHub,
    /// Further hub replicas (PostgreSQL): their configuration and running hub.
    replicas: &'a [(PathBuf, hub::RunningHub)],
    token_file: &'a std::path::Path,
    nodes: &'a [DemoNode<'a>],
    sent: &'a node::views::Sent,
    /// The demo document's archive container.
    archive: &'a std::path::Path,
}

/// One node of the demo: agency code, its node.toml, the running node, its demo clerk's and
/// its records system's accounts (name, password), its document system on the legacy API
/// (system id, secret).
type DemoNode<'a> = (
    &'a str,
    PathBuf,
    agency_node::RunningNode,
    (String, String),
    (String, String),
    (String, String),
);

/// The demo clerk of each agency: (full name, position).
fn demo_clerk(code: &str) -> (&'static str, &'static str) {
    match code {
        "000.00.00.G22" => ("Trần Thị Bình", "Văn thư"),
        "000.00.00.H41" => ("Nguyễn Thị Lan", "Văn thư"),
        _ => ("Hoàng Văn Đức", "Văn thư"),
    }
}

/// `G22` for `000.00.00.G22`, lowercased.
fn short_name(code: &str) -> String {
    code.rsplit('.').next().unwrap_or(code).to_lowercase()
}

/// Where a demo agency's clerks get their notices.
fn clerk_email(code: &str) -> String {
    format!("van-thu@{}.demo", short_name(code))
}

/// Creates (or finds, when the demo folder is reused) a demo web account on a node, with a
/// password kept in the node's folder; returns (name, password).
async fn demo_account(
    running: &agency_node::RunningNode,
    code: &str,
    name: &str,
    role: &str,
    full_name: &str,
    position: &str,
) -> anyhow::Result<(String, String)> {
    let file = running.node().config.data_dir.join(if name == "vanthu" {
        "demo-web-password".to_string()
    } else {
        format!("demo-{name}-password")
    });
    let password = match std::fs::read_to_string(&file) {
        Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
        _ => {
            let p = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
            std::fs::write(&file, format!("{p}\n"))?;
            p
        }
    };
    let req = node::accounts::NewUser {
        name: name.into(),
        full_name: full_name.into(),
        position: Some(position.into()),
        email: (role == "clerk").then(|| clerk_email(code)),
        role: role.into(),
        password: password.clone(),
    };
    match node::accounts::add(&running.node().db, req).await {
        Ok(_) => {}
        Err(node::accounts::AccountError::Db(node::db::NodeDbError::UserExists(_))) => {}
        Err(e) => bail!("cannot create the demo account {name} of {code}: {e}"),
    }
    Ok((name.into(), password))
}

/// `demo.json` (`shared/design/demo-json.md`): absolute paths, loopback URLs, and only the
/// fields of what exists (no nulls).
fn demo_json_value(f: &DemoFacts<'_>) -> anyhow::Result<serde_json::Value> {
    let abs = |p: &std::path::Path| -> anyhow::Result<String> {
        Ok(std::path::absolute(p)
            .with_context(|| format!("cannot make {} absolute", p.display()))?
            .display()
            .to_string())
    };
    let admin = format!("http://{}", f.hub.admin_addr);
    let mut hub = serde_json::json!({
        "url": format!("https://{}", f.hub.addr),
        "config": abs(f.hub_config)?,
        "admin": admin,
        "console": f.hub.console_url,
        "metrics": format!("{admin}/metrics"),
        "alerts": format!("{admin}/admin/alerts"),
        "operator_token_file": abs(f.token_file)?,
        "alert_pending_after_secs": ALERT_PENDING_AFTER_SECS,
    });
    if f.smtp.is_some() {
        hub["operator_email"] = OPERATOR_EMAIL.into();
    }
    if f.hub.hub.db.backend_name() == "postgresql" {
        hub["store"] = "postgresql".into();
        let mut all = vec![serde_json::json!({
            "url": hub["url"].clone(),
            "config": hub["config"].clone(),
            "admin": hub["admin"].clone(),
            "console": hub["console"].clone(),
        })];
        for (config, running) in f.replicas {
            let admin = format!("http://{}", running.admin_addr);
            let token = HubConfig::load(config)?.admin_token_path();
            all.push(serde_json::json!({
                "url": format!("https://{}", running.addr),
                "config": abs(config)?,
                "admin": admin,
                "console": running.console_url,
                "metrics": format!("{admin}/metrics"),
                "operator_token_file": abs(&token)?,
            }));
        }
        hub["replicas"] = all.into();
    }
    let mut nodes = Vec::new();
    for (
        code,
        config,
        running,
        (user, password),
        (records_user, records_password),
        (system_id, secret),
    ) in f.nodes
    {
        let name = AGENCIES
            .iter()
            .find(|(c, _)| c == code)
            .map_or("", |(_, n)| *n);
        let api = running.web_url();
        let mut node = serde_json::json!({
            "agency": code,
            "name": name,
            "config": abs(config)?,
            "api": api,
            "token_file": abs(&running.token_path())?,
            "web": format!("{api}/"),
            "web_login": {"user": user, "password": password},
            "metrics": format!("{api}/metrics"),
            "archive": {
                "feed": format!("{api}/api/v1/archive"),
                "documents": format!("{api}/api/v1/archive/documents/"),
                "login": {"user": records_user, "password": records_password},
            },
        });
        if let Some(addr) = running.legacy_addr() {
            node["legacy"] = serde_json::json!({
                "endpoint": format!("http://{addr}"),
                "systemid": system_id,
                "secret": secret,
            });
        }
        if f.smtp.is_some() {
            node["clerk_email"] = clerk_email(code).into();
        }
        nodes.push(node);
    }
    let mut out = serde_json::json!({
        "dir": abs(f.dir)?,
        "pki": {
            "dir": abs(f.pki)?,
            "ca": abs(&f.pki.join("ca.pem"))?,
            "crl": abs(&f.pki.join("crl.pem"))?,
        },
        "hub": hub,
        "nodes": nodes,
        "document": {
            "document_id": f.sent.document_id,
            "packet_id": f.sent.packet_id,
            "archive": abs(f.archive)?,
        },
    });
    if let Some(smtp) = f.smtp {
        out["smtp"] = smtp.into();
    }
    Ok(out)
}

/// Writes `bytes` to `path` whole (temporary file, fsync, rename): readers never see half.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// "03 (accepted)".
fn status_name(code: &str) -> String {
    match edxml::StatusCode::parse(code) {
        Ok(c) => format!("{code} ({})", c.label_en()),
        Err(_) => code.to_string(),
    }
}

/// The (time, code) of every business status in a timeline, in order.
fn status_history<'a>(
    events: impl Iterator<Item = (&'a exchange::Timestamp, &'a String)>,
) -> Vec<(String, String)> {
    events
        .filter_map(|(at, event)| {
            let code = event.strip_prefix("status ")?.get(..2)?;
            Some((at.to_string(), code.to_string()))
        })
        .collect()
}

fn tempdir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("docaxis-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}
