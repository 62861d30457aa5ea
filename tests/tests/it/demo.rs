//! `docaxis demo`, the one-command tour, run as a user would: it makes its PKI, starts a hub
//! and three nodes, sends the công văn with its PDF to two provinces, waits for delivery and
//! both status 01 answers; Nghệ An takes it through 03 → 06 and Cao Bằng rejects it; the
//! demo prints both sides' histories, checks they agree, and exits 0.

use docaxis_e2e::*;

#[test]
fn demo_delivers_to_both_provinces_and_prints_the_tracking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let out = run(&["demo", "--dir", s(&dir), "--timeout", "60"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "docaxis demo failed ({:?}):\n{text}\n{}",
        out.status,
        stderr(&out)
    );
    // The tracking summary: accepted and delivered for both recipients, and where each
    // recipient's process ended.
    assert!(text.contains("2/2 accepted, 2/2 delivered"), "{text}");
    assert!(
        text.contains("business:  1 rejected, 1 completed"),
        "{text}"
    );
    // The records step: the sender's archive of the document verifies with the CA alone.
    assert!(text.contains(".asice: VALID"), "{text}");
    assert!(
        text.contains("every signature, digest and receipt holds"),
        "{text}"
    );
    // Both recipients, each with a delivery time and status 01 as its last status.
    for code in [H41, H14] {
        let section = text
            .split(&format!("\n{code}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no tracking section for {code}:\n{text}"));
        let section = section.split("\n\n").next().unwrap();
        let delivered = section
            .lines()
            .find(|l| l.trim_start().starts_with("delivered:"))
            .unwrap_or_else(|| panic!("no delivered line for {code}:\n{section}"));
        assert!(
            !delivered.contains('–'),
            "{code} not delivered: {delivered}"
        );
        let (last, statuses) = if code == H41 {
            ("last status:   06 hoàn thành (completed)", 5)
        } else {
            ("last status:   02 từ chối tiếp nhận (rejected)", 2)
        };
        assert!(section.contains(last), "{code}:\n{section}");
        // The recipient's own record matches the sender's, status for status.
        assert!(
            text.contains(&format!(
                "= the sender's record: the same {statuses} statuses at the same times"
            )),
            "{code}:\n{text}"
        );
        // And each recipient's inbox lists the document.
        assert!(
            text.contains(&format!("{code}: 000.00.00.G22,")),
            "{code} inbox line missing:\n{text}"
        );
    }
    // The hub's own record agrees with the sender's, recipient by recipient.
    assert!(
        text.contains("000.00.00.H41: the hub agrees with the sender (completed, statuses 01 → 03 → 04 → 05 → 06)"),
        "{text}"
    );
    assert!(
        text.contains("000.00.00.H14: the hub agrees with the sender (rejected, statuses 01 → 02)"),
        "{text}"
    );
    for step in [
        "03 đã tiếp nhận (accepted) by Trần Thị Lan",
        "04 phân công (assigned) by Lê Văn Hùng",
        "05 đang xử lý (processing)",
        "06 hoàn thành (completed)",
        "02 từ chối tiếp nhận (rejected) by Hoàng Thị Hoa, Văn thư: Không thuộc thẩm quyền",
    ] {
        assert!(text.contains(step), "missing {step:?}:\n{text}");
    }
    assert!(text.contains("done:"), "{text}");
    // It used the folder it was given: the PKI, the hub's and the nodes' databases are there.
    assert!(dir.join("pki/ca.pem").exists());
    assert!(dir.join("hub/hub.redb").exists());
    for code in [G22, H41, H14] {
        assert!(dir.join(code).join("data/node.redb").exists(), "{code}");
    }
}

/// `docaxis demo --keep-running --dir DIR --smtp …` writes `DIR/demo.json` with what a script
/// needs (`shared/design/demo-json.md`): absolute paths, loopback URLs that answer, no nulls;
/// and removes it when stopped (SIGINT).
#[test]
fn keep_running_writes_demo_json_whose_addresses_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let smtp_port = free_port();
    let mut smtp = SmtpServer::new(&tmp.path().join("smtp"), smtp_port);
    smtp.start();
    let smtp_addr = format!("127.0.0.1:{smtp_port}");
    let (mut child, json) =
        keep_running(&dir, &tmp.path().join("demo.log"), &["--smtp", &smtp_addr]);
    fn no_nulls(v: &serde_json::Value, at: &str) {
        match v {
            serde_json::Value::Null => panic!("null at {at}"),
            serde_json::Value::Object(m) => m
                .iter()
                .for_each(|(k, v)| no_nulls(v, &format!("{at}.{k}"))),
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .for_each(|(i, v)| no_nulls(v, &format!("{at}[{i}]"))),
            _ => {}
        }
    }
    no_nulls(&json, "demo.json");
    assert_eq!(json["smtp"], smtp_addr.as_str());
    let hub = &json["hub"];
    assert_eq!(hub["operator_email"], "van-hanh@hub.demo");
    assert_eq!(hub["alert_pending_after_secs"], 20);
    for path in [
        &json["dir"],
        &json["pki"]["ca"],
        &hub["config"],
        &hub["operator_token_file"],
    ] {
        let p = std::path::Path::new(path.as_str().unwrap());
        assert!(p.is_absolute() && p.exists(), "{path}");
    }
    assert!(
        hub["url"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    let token = std::fs::read_to_string(hub["operator_token_file"].as_str().unwrap()).unwrap();
    let get = http_get;
    let (status, metrics) = get(hub["metrics"].as_str().unwrap(), &token);
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics.contains("docaxis_hub_deliveries_total"),
        "{metrics}"
    );
    let (status, alerts) = get(hub["alerts"].as_str().unwrap(), &token);
    assert_eq!(status, 200, "{alerts}");
    let console = hub["console"].as_str().unwrap();
    assert!(console.starts_with("http://127.0.0.1:") && console.ends_with('/'));
    let (status, login) = get(&format!("{console}login"), "");
    assert_eq!(status, 200, "{login}");
    assert!(login.contains("Đăng nhập"), "{login}");
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    for n in nodes {
        let node_token = std::fs::read_to_string(n["token_file"].as_str().unwrap()).unwrap();
        let (status, text) = get(n["metrics"].as_str().unwrap(), &node_token);
        assert_eq!(status, 200, "{} {text}", n["agency"]);
        assert!(text.contains("docaxis_node_"), "{text}");
        // The clerk's pages answer, with a demo account and the clerks' address.
        let web = n["web"].as_str().unwrap();
        assert!(
            web.starts_with("http://127.0.0.1:") && web.ends_with('/'),
            "{web}"
        );
        let (status, login) = get(&format!("{web}login"), "");
        assert_eq!(status, 200, "{login}");
        assert!(login.contains("Đăng nhập"), "{login}");
        assert_eq!(n["web_login"]["user"], "vanthu");
        assert!(n["web_login"]["password"].as_str().unwrap().len() >= 10);
        let short = n["agency"]
            .as_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .to_lowercase();
        assert_eq!(n["clerk_email"], format!("van-thu@{short}.demo"));
        // The records feed answers the demo's records account (and nobody without one).
        let archive = &n["archive"];
        assert_eq!(archive["login"]["user"], "luutru");
        let feed = archive["feed"].as_str().unwrap();
        let (status, body) = get(feed, "");
        assert_eq!(status, 401, "{body}");
        let (status, body) = http_get_basic(
            feed,
            archive["login"]["user"].as_str().unwrap(),
            archive["login"]["password"].as_str().unwrap(),
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"previous\""), "{body}");
        // The document system's legacy endpoint answers its credentials, and only them.
        let legacy = &n["legacy"];
        let endpoint = legacy["endpoint"].as_str().unwrap().to_string();
        let system = legacy["systemid"].as_str().unwrap().to_string();
        let secret = legacy["secret"].as_str().unwrap().to_string();
        let call = |secret: String| {
            let (endpoint, system) = (endpoint.clone(), system.clone());
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    node::legacy::sdk_call(
                        &endpoint,
                        &system,
                        &secret,
                        "countReceiveEdoc",
                        &[("servicetype", "eDoc"), ("messagetype", "edoc")],
                    )
                    .await
                    .unwrap()
                })
        };
        let v = call(secret);
        assert_eq!(v["status"], "OK", "{v}");
        assert!(v["count"].is_u64(), "{v}");
        assert_eq!(call("wrong".into())["status"], "FAIL");
    }
    // The demo document's archive: a container that verifies with the CA alone.
    let container = json["document"]["archive"].as_str().unwrap();
    let out = run(&[
        "archive",
        "verify",
        "--trust",
        json["pki"]["ca"].as_str().unwrap(),
        container,
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(": VALID"), "{}", stdout(&out));
    // The clerks' notices of the demo's exchange reached the mail server: the công văn at
    // both provinces, Cao Bằng's rejection at Văn phòng Chính phủ.
    let mails = wait_for(
        "the clerks' notices",
        std::time::Duration::from_secs(60),
        || {
            let m = smtp.mails();
            let to = |who: &str, what: &str| {
                m.iter()
                    .any(|x| x.to.contains(who) && x.subject.contains(what))
            };
            (to("van-thu@h41.demo", "7816/VPCP-TTĐT")
                && to("van-thu@h14.demo", "7816/VPCP-TTĐT")
                && to("van-thu@g22.demo", "từ chối"))
            .then_some(m)
        },
    );
    assert!(
        mails
            .iter()
            .any(|m| m.to.contains("van-thu@h41.demo") && m.subject.contains("HỎA TỐC")),
        "the second, urgent document is announced as such: {mails:#?}"
    );
    assert_eq!(nodes[0]["agency"], G22);
    assert!(
        json["document"]["document_id"]
            .as_str()
            .unwrap()
            .starts_with(G22)
    );

    // Ctrl-C: the demo stops cleanly and takes demo.json with it.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_for("the demo stops", std::time::Duration::from_secs(30), || {
        child.try_wait().unwrap()
    });
    assert!(status.success(), "{status}");
    assert!(!dir.join("demo.json").exists(), "demo.json left behind");
}

/// `docaxis demo --postgres URL --hub-replicas 2 --keep-running`: the same demo with the hub as
/// two replicas on PostgreSQL; `demo.json` lists both (`hub.store`, `hub.replicas`), each
/// replica answers, and each node lists both replicas in its `hub_url`.
#[test]
fn the_demo_runs_on_two_hub_replicas_on_postgresql() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let cluster = pgtest::Cluster::start().unwrap();
    let url = cluster.database("demo").unwrap();
    let log_path = tmp.path().join("demo.log");
    let (mut child, json) = keep_running(
        &dir,
        &log_path,
        &["--postgres", &url, "--hub-replicas", "2"],
    );
    let hub = &json["hub"];
    assert_eq!(hub["store"], "postgresql", "{json:#}");
    let replicas = hub["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{json:#}");
    assert_eq!(replicas[0]["url"], hub["url"]);
    let second = &replicas[1];
    let token = std::fs::read_to_string(second["operator_token_file"].as_str().unwrap()).unwrap();
    let (status, metrics) = http_get(second["metrics"].as_str().unwrap(), &token);
    assert_eq!(status, 200, "{metrics}");
    // The second replica knows the three agencies the first registered, from the database.
    assert!(
        metrics.contains("docaxis_hub_agencies{state=\"active\"} 3"),
        "{metrics}"
    );
    for n in json["nodes"].as_array().unwrap() {
        let config = std::fs::read_to_string(n["config"].as_str().unwrap()).unwrap();
        for r in replicas {
            assert!(
                config.contains(r["url"].as_str().unwrap()),
                "{} lists every replica:\n{config}",
                n["agency"]
            );
        }
    }
    let printed = std::fs::read_to_string(&log_path).unwrap();
    assert!(printed.contains("2 replica(s) on PostgreSQL"), "{printed}");
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts `docaxis demo --keep-running --dir DIR ARGS…` (output to `log`) and waits for its
/// `demo.json`; panics with the output if the demo exits first.
fn keep_running(
    dir: &std::path::Path,
    log: &std::path::Path,
    args: &[&str],
) -> (std::process::Child, serde_json::Value) {
    let out = std::fs::File::create(log).unwrap();
    let mut child = docaxis()
        .args(["demo", "--keep-running", "--dir", s(dir)])
        .args(args)
        .stdout(std::process::Stdio::from(out.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(out))
        .spawn()
        .unwrap();
    let json_path = dir.join("demo.json");
    let json = wait_for("demo.json", std::time::Duration::from_secs(120), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the demo exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::fs::read(&json_path)
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("demo.json is JSON"))
    });
    (child, json)
}
