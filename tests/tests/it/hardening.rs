//! Faults an adversarial probe of a running hub and nodes found (issue 11), each proven fixed
//! on real processes.

use std::time::Duration;

use docaxis_e2e::*;
use serde_json::{Value, json};

/// Generous: the nodes and the hub share 2 cores with other tests in CI.
const WAIT: Duration = Duration::from_secs(60);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The outbox entry of `sent` once an attempt to submit it failed (its `last_error` set).
fn failed_attempt(node: &NodeProc, sent: &Value, what: &str) -> Value {
    let packet_id = sent["packet_id"].as_str().unwrap().to_string();
    wait_for(what, WAIT, || {
        node.outbox(&[])
            .into_iter()
            .find(|e| e["packet_id"] == packet_id.as_str())
            .filter(|e| e["last_error"].as_str().is_some_and(|s| !s.is_empty()))
    })
}

fn health(node: &NodeProc) -> Value {
    rt().block_on(node.api().get("/api/v1/health")).unwrap()
}

/// A packet submitted to the hub with G22's certificate but not through G22's node leaves a
/// delivery receipt the node cannot match. The node keeps it (hub-signed, as evidence),
/// acknowledges it so the hub stops listing it, and the receipts behind it keep flowing.
#[test]
fn an_unmatched_delivery_receipt_is_kept_acknowledged_and_holds_up_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());

    // Around the node: signed with G22's key, submitted with G22's certificate.
    let packet = pki.sign_as(G22, &unsigned_document(G22, &[H41], "77", None));
    let (status, body) = hub.submit_as(&pki, G22, packet);
    assert!((200..300).contains(&status), "{status}: {body}");

    wait_for("the unmatched receipt kept at G22", WAIT, || {
        (health(&g22)["counts"]["unmatched_receipts"] == 1).then_some(())
    });
    // Acknowledged: the hub lists nothing more for G22.
    let client = pki.client_as(G22);
    let url = hub.url();
    let listed: Value = rt().block_on(async {
        client
            .get(format!("{url}/v1/receipts?wait=0"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(listed["items"], serde_json::json!([]), "{listed:#}");
    assert!(
        g22.log()
            .contains("matches no packet sent from this node; kept in unmatched_receipts"),
        "{}",
        g22.log()
    );

    // What G22's node sends afterwards is confirmed as usual.
    let sent = g22.send(&[
        "--to",
        H41,
        "--subject",
        "Sau biên nhận lạ",
        "--number",
        "78",
        "--notation",
        "VPCP",
    ]);
    let doc = sent["document_id"].as_str().unwrap().to_string();
    let track = wait_for("the next document delivered", WAIT, || {
        let t = g22.track(&doc);
        (t["summary"] == "1/1 accepted, 1/1 delivered").then_some(t)
    });
    assert_eq!(health(&g22)["counts"]["unmatched_receipts"], 1, "{track:#}");
    assert_eq!(
        h41.inbox(&["--kind", "all"]).len(),
        2,
        "both documents reached H41"
    );
}

/// `docaxis pki revoke` while everything runs: a node told by SIGHUP refuses a packet G22
/// signed from then on; after `docaxis hub reload` the hub refuses G22 on the connection it
/// already holds and at new handshakes, and accepts nothing more from it. Nobody restarts.
#[test]
fn a_revocation_applies_while_the_hub_and_nodes_run() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "trust_reload_secs = 3600");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let send = |number: &str| {
        g22.send(&[
            "--to",
            H41,
            "--subject",
            "Trước và sau thu hồi",
            "--number",
            number,
            "--notation",
            "VPCP",
        ])
    };
    // Before: delivered; G22's node holds a connection to the hub.
    let first = send("1");
    let doc = first["document_id"].as_str().unwrap().to_string();
    wait_for("the first document delivered", WAIT, || {
        (g22.track(&doc)["summary"] == "1/1 accepted, 1/1 delivered").then_some(())
    });

    run_ok(&["pki", "revoke", "--dir", s(&pki.dir), "--code", G22]);

    // H41 reloads on SIGHUP; the hub (not yet reloaded) still routes what G22 signs.
    h41.hangup();
    wait_for("H41 reloaded its CRLs", WAIT, || {
        h41.log()
            .contains("node: trust anchors and CRLs reloaded")
            .then_some(())
    });
    let packet = pki.sign_as(G22, &unsigned_document(G22, &[H41], "2", None));
    let (status, body) = hub.submit_as(&pki, G22, packet);
    assert!(
        (200..300).contains(&status),
        "the hub has not reloaded yet: {status} {body}"
    );
    wait_for("H41 refuses the revoked signer", WAIT, || {
        h41.log()
            .lines()
            .any(|l| l.contains("inbox: packet refused") && l.contains("revoked"))
            .then_some(())
    });
    assert_eq!(
        h41.inbox(&["--kind", "all"]).len(),
        1,
        "only the first document"
    );

    // The hub reloads on demand.
    let out = hub.admin(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("trust anchors and CRLs reloaded (generation 2)"),
        "{}",
        stdout(&out)
    );
    let out = hub.admin(&["reload"]);
    assert!(
        stdout(&out).contains("unchanged (generation 2)"),
        "{}",
        stdout(&out)
    );

    // G22's node, on its existing connection or a new one, is refused.
    let third = send("3");
    let entry = failed_attempt(&g22, &third, "G22's next submission refused");
    let error = entry["last_error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("revoked") || error.contains("no longer trusted"),
        "{entry:#}"
    );
    let accepted = hub.log().matches("packet accepted").count();
    assert_eq!(
        accepted,
        3,
        "the first document, H41's status 01 about it, the direct packet; nothing after the \
         reload:\n{}",
        hub.log()
    );
}

/// What the hub's schema and recipient rules would refuse is refused by the node before it
/// answers — with the field named and nothing queued — and by `edxml new` before it writes.
#[test]
fn documents_the_hub_would_refuse_are_refused_before_they_are_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--to",
                H41,
                "--to",
                H41,
                "--number",
                "1",
                "--notation",
                "VPCP",
            ],
            "recipient 000.00.00.H41 is listed twice",
        ),
        (
            &["--to", G22, "--number", "1", "--notation", "VPCP"],
            "cannot send to itself",
        ),
        (
            &[
                "--to",
                H41,
                "--number",
                "123456789012",
                "--notation",
                "VPCP",
            ],
            "code.number is 12 characters long; the edXML schema allows at most 11",
        ),
        (
            &[
                "--to",
                H41,
                "--number",
                "1",
                "--notation",
                "QĐ-UBND-VPCP-TTĐT-BLĐTBXH-BTC-X",
            ],
            "code.notation is 31 characters long; the edXML schema allows at most 30",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["send", "--subject", "Không hợp lệ"];
        all.extend_from_slice(args);
        let out = g22.clerk(&all);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );

        let file = tmp.path().join("new.edxml");
        let mut new = vec!["edxml", "new", "--from", G22, "--subject", "Không hợp lệ"];
        new.extend_from_slice(args);
        new.extend_from_slice(&["-o", s(&file)]);
        let out = run(&new);
        assert!(!out.status.success(), "edxml new {args:?} succeeded");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(!file.exists(), "nothing written for {args:?}");
    }
    assert!(g22.outbox(&[]).is_empty(), "nothing was queued");
    assert_eq!(hub.log().matches("packet accepted").count(), 0);
}

/// A given DocumentId may not claim another agency, read as a path, hide characters or take
/// DocAxis's request form: the clerk API refuses it (nothing queued), and so does the hub when
/// a packet is submitted around the node. UUIDs, as document systems send, pass.
#[test]
fn a_client_chosen_document_id_cannot_claim_another_agency_or_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let api = g22.api();
    let request = |id: &str| {
        serde_json::json!({
            "to": [H41],
            "subject": "Mã văn bản do hệ thống gửi",
            "code": {"number": "5", "notation": "VPCP"},
            "document_id": id,
        })
    };
    let original = format!("{G22},2026/11/23,12/VPCP");
    let hostile = [
        ("../../etc/passwd".to_string(), "reads as a file path"),
        (
            format!("{H41},2026/11/23,9/UBND"),
            "claims agency 000.00.00.H41",
        ),
        (
            format!("{original}#revoke-1"),
            "reserves for its request ids",
        ),
        ("hoa-don\u{202E}fdp.exe".to_string(), "U+202E"),
        ("x".repeat(201), "at most 200"),
    ];
    rt().block_on(async {
        for (id, expected) in &hostile {
            let err = api.send(&request(id)).await.expect_err(id);
            assert!(
                err.contains("400") && err.contains(expected),
                "{id:?}: {err}"
            );
        }
        let uuid = "3f2b9c1e-7a4d-4e2b-9f11-0c6a5d2e8b40";
        let sent = api.send(&request(uuid)).await.unwrap();
        assert_eq!(sent["document_id"], uuid);
        // The original keeps its revoke: nobody could take its request id.
        let sent = api.send(&request(&original)).await.unwrap();
        assert_eq!(sent["document_id"], original.as_str());
    });
    assert_eq!(
        g22.outbox(&[]).len(),
        2,
        "only the two good documents were queued"
    );

    // Around the node, the hub applies the same rule.
    for (id, expected) in &hostile {
        let unsigned = String::from_utf8(unsigned_document(G22, &[H41], "6", None)).unwrap();
        let start = unsigned.find("<edXML:DocumentId>").unwrap() + "<edXML:DocumentId>".len();
        let end = unsigned.find("</edXML:DocumentId>").unwrap();
        let escaped = id.replace('&', "&amp;").replace('<', "&lt;");
        let forged = format!("{}{escaped}{}", &unsigned[..start], &unsigned[end..]);
        let packet = pki.sign_as(G22, forged.as_bytes());
        let (status, body) = hub.submit_as(&pki, G22, packet);
        assert_eq!(status, 422, "{id:?}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["code"], "document_id", "{body:#}");
        assert!(
            body["message"].as_str().unwrap().contains(expected),
            "{id:?}: {body:#}"
        );
    }
}

/// Connections to `addr` that send nothing, or half a request, are closed by the server; the
/// answer is how long the last one stayed open.
fn silent_connections_are_closed(addr: std::net::SocketAddr, what: &str) {
    use std::io::{Read, Write};
    let mut held = Vec::new();
    for i in 0..4 {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        if i % 2 == 1 {
            c.write_all(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        c.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
        held.push(c);
    }
    for (i, mut c) in held.into_iter().enumerate() {
        let mut buf = [0u8; 512];
        match c.read(&mut buf) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("{what}: connection {i} was still open after 40 s: {e}"),
        }
    }
}

/// The clerk API and the hub's admin API close idle and slow-header connections, refuse a
/// body that stalls (408, JSON), and keep at most a fixed number of connections, so a flood
/// cannot take the node's file handles. The hub's mTLS listener refuses a stalled body too.
#[test]
fn local_apis_and_the_hub_time_out_slow_clients_and_cap_connections() {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let admin = hub.admin_addr();

    silent_connections_are_closed(g22.api_addr, "clerk API");
    silent_connections_are_closed(admin, "admin API");

    // A body that stops after a few bytes: 408 with a JSON error, well before a minute.
    let mut c = std::net::TcpStream::connect(g22.api_addr).unwrap();
    let head = format!(
        "POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{{\"to\":",
        g22.token()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // A flood of connections: beyond the cap they are closed at once.
    let flood: Vec<std::net::TcpStream> = (0..300)
        .map(|_| std::net::TcpStream::connect(g22.api_addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut closed = 0;
    for mut c in flood {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut buf = [0u8; 1];
        // End of stream: closed by the server. A read timeout: still open.
        if matches!(c.read(&mut buf), Ok(0)) {
            closed += 1;
        }
    }
    assert!(
        closed >= 300 - 128,
        "only {closed} of 300 were closed at accept"
    );
    // Once they are gone, the API answers again.
    wait_for("the clerk API answering after the flood", WAIT, || {
        rt().block_on(g22.api().get("/api/v1/health")).ok()
    });

    // The hub: a packet body that stalls after its first bytes is refused, not waited for.
    let client = pki.client_as(G22);
    let url = hub.url();
    let (status, body) = rt().block_on(async {
        let stalled = futures_stalled();
        let r = client
            .post(format!("{url}/v1/packets"))
            .header("content-type", "application/xml")
            .body(reqwest::Body::wrap_stream(stalled))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    });
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("request_timeout"), "{body}");
}

/// A body stream that yields a few bytes, then nothing, for ever.
fn futures_stalled()
-> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    use futures_util::StreamExt;
    futures_util::stream::once(async { Ok(b"<?xml version=\"1.0\"?>".to_vec()) })
        .chain(futures_util::stream::pending())
}

/// Sets the soft file-size limit of process `pid` (`None`: unlimited), as `ulimit -f` would.
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let soft = bytes.map_or("unlimited".to_string(), |b| b.to_string());
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), &format!("--fsize={soft}:")])
        .output()
        .expect("prlimit runs (util-linux)");
    assert!(out.status.success(), "prlimit: {}", stderr(&out));
}

/// A full disk, made real without root: the node's file-size limit is lowered to its
/// database's present size, so the next write that grows the file fails with EFBIG — the
/// same I/O error path as ENOSPC in redb. The node refuses (no 201), survives (SIGXFSZ does not
/// kill it), and its health says what is wrong; once space is back the store reopens itself
/// and sends work again without a restart; every document acknowledged before, during and
/// after is delivered.
#[test]
fn a_full_disk_is_refused_reported_and_recovered_from_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let mut g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let api = g22.api();
    let request = |n: usize, size: usize| {
        serde_json::json!({
            "to": [H41],
            "subject": format!("Văn bản số {n} khi đĩa đầy"),
            "code": {"number": n.to_string(), "notation": "DAY"},
            "attachments": [{
                "name": "phu-luc.txt",
                "data": base64_of(&vec![b'a' + (n % 26) as u8; size]),
            }],
        })
    };
    let mut acknowledged = vec![rt().block_on(api.send(&request(1, 1000))).unwrap()];

    let db = g22.data_dir().join("node.redb");
    let size = std::fs::metadata(&db).unwrap().len();
    {
        use std::os::unix::fs::PermissionsExt;
        let blobs = g22.data_dir().join("node.redb.blobs");
        let mode = std::fs::metadata(&blobs).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            mode, 0o600,
            "the packets' file is the owner's only: {mode:o}"
        );
    }
    limit_file_size(g22.pid(), Some(size));
    let mut refusal = None;
    for n in 2..40 {
        match rt().block_on(api.send(&request(n, 1 << 20))) {
            Ok(sent) => acknowledged.push(sent),
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let refusal = refusal.expect("a send that needs the database to grow is refused");
    assert!(refusal.starts_with("503"), "{refusal}");
    assert!(
        refusal.contains("\"storage_unavailable\"") && refusal.contains("File too large"),
        "a JSON error naming the cause: {refusal}"
    );
    assert!(g22.is_running(), "the node survives the file-size limit");

    let (status, health) = rt().block_on(api.get_any("/api/v1/health")).unwrap();
    let failure = health["store"]["last_failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("too large") || failure.contains("No space"),
        "{status}: {health}"
    );

    limit_file_size(g22.pid(), None);
    let after = wait_for("a send accepted once space is back", WAIT, || {
        rt().block_on(api.send(&request(100, 1 << 20))).ok()
    });
    acknowledged.push(after);
    let (status, health) = rt().block_on(api.get_any("/api/v1/health")).unwrap();
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["store"]["ok"], true, "{health}");
    assert!(
        health["store"]["reopened"].as_u64().unwrap() >= 1,
        "{health}"
    );
    assert_eq!(g22.runs(), 1, "no restart was needed");

    let h41_api = h41.api();
    for sent in &acknowledged {
        let id = sent["document_id"].as_str().unwrap();
        wait_for(&format!("{id} delivered to H41"), WAIT, || {
            let items = rt()
                .block_on(h41_api.items("/api/v1/inbox?limit=500"))
                .ok()?;
            items.iter().any(|i| i["document_id"] == id).then_some(())
        });
    }
    assert!(g22.is_running());
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `inbox show --extract DIR` with hostile attachment names from another agency: two with the
/// same name, a 300-character one, a bidi override, and one named like a symlink already in
/// DIR that points outside. Every attachment lands, uniquely and safely named; nothing is
/// overwritten and nothing is written outside DIR.
#[test]
fn extracting_hostile_attachment_names_writes_each_once_inside_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let long = format!("{}.pdf", "v".repeat(300));
    let attachments = [
        ("bien-ban.pdf", "một"),
        ("bien-ban.pdf", "hai"),
        (long.as_str(), "dài"),
        ("\u{202E}fdp.exe", "đảo chiều"),
        ("link.txt", "liên kết"),
    ];
    let request = serde_json::json!({
        "to": [H41],
        "subject": "Tên tệp đính kèm nguy hiểm",
        "code": {"number": "9", "notation": "TEP"},
        "attachments": attachments.iter().map(|(name, text)| serde_json::json!({
            "name": name, "data": base64_of(text.as_bytes()),
        })).collect::<Vec<_>>(),
    });
    let sent = rt().block_on(g22.api().send(&request)).unwrap();
    let doc = sent["document_id"].as_str().unwrap().to_string();
    wait_for("the document reaches H41", WAIT, || {
        (!h41.inbox(&[]).is_empty()).then_some(())
    });

    let dir = tmp.path().join("tep");
    std::fs::create_dir(&dir).unwrap();
    let outside = tmp.path().join("ngoai.txt");
    std::os::unix::fs::symlink(&outside, dir.join("link.txt")).unwrap();
    let out = h41.clerk(&["inbox", "show", &doc, "--extract", s(&dir)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    assert!(!outside.exists(), "nothing written through the symlink");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("bien-ban.pdf"), "một");
    assert_eq!(read("bien-ban (2).pdf"), "hai");
    assert_eq!(read("fdp.exe"), "đảo chiều");
    assert_eq!(read("link (2).txt"), "liên kết");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let shortened = names
        .iter()
        .find(|n| n.starts_with("vvv"))
        .expect("the long name was shortened, not dropped");
    assert!(
        shortened.len() <= 120 && shortened.ends_with(".pdf"),
        "{shortened}"
    );
    assert_eq!(read(shortened), "dài");
    assert_eq!(names.len(), 6, "5 attachments and the symlink: {names:?}");
}

/// The node's own TLS client follows CRL changes too: once the hub's certificate is revoked
/// and the node reloads (SIGHUP), its new connections refuse the hub, and it says why.
#[test]
fn a_node_refuses_a_hub_whose_certificate_was_revoked_while_it_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let _h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let send = |number: &str| {
        g22.send(&[
            "--to",
            H41,
            "--subject",
            "Trục bị thu hồi",
            "--number",
            number,
            "--notation",
            "VPCP",
        ])
    };
    let first = send("1");
    let doc = first["document_id"].as_str().unwrap().to_string();
    wait_for("the first document delivered", WAIT, || {
        (g22.track(&doc)["summary"] == "1/1 accepted, 1/1 delivered").then_some(())
    });

    // `pki revoke` revokes the certificate filed under a code: file the hub's there.
    let alias = "000.00.00.A99";
    std::fs::copy(
        pki.dir.join("hub.pem"),
        pki.dir.join("agencies").join(format!("{alias}.pem")),
    )
    .unwrap();
    run_ok(&["pki", "revoke", "--dir", s(&pki.dir), "--code", alias]);
    g22.hangup();
    wait_for("G22 reloaded its CRLs", WAIT, || {
        g22.log()
            .contains("node: trust anchors and CRLs reloaded")
            .then_some(())
    });

    let second = send("2");
    let entry = failed_attempt(&g22, &second, "G22 refuses the hub");
    let error = entry["last_error"].as_str().unwrap_or_default();
    assert!(error.to_ascii_lowercase().contains("revoked"), "{entry:#}");
    assert_eq!(
        hub.log().matches("packet accepted").count(),
        2,
        "the first document and H41's status 01; nothing after the reload:\n{}",
        hub.log()
    );
}

/// The smaller faults of issue 11.8, on running processes: framework refusals (415, bad JSON,
/// bad query, 413) are JSON error bodies; the admin API's 401 says `unauthorized`; the bearer
/// scheme is case-insensitive; the databases are readable by their owner only.
#[test]
fn errors_are_json_tokens_case_insensitive_and_databases_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let admin = hub.admin_addr();
    let node = format!("http://{}", g22.api_addr);
    let token = g22.token();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let answer = |req: reqwest::RequestBuilder| {
        rt().block_on(async {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            let json: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {body}"));
            (status, json)
        })
    };
    let post = || {
        http.post(format!("{node}/api/v1/documents"))
            .header("authorization", format!("Bearer {token}"))
    };

    // The clerk API reads the body as JSON whatever its content type: a refusal, as JSON.
    let (status, body) = answer(post().header("content-type", "text/plain").body("{}"));
    assert!(status == 400 || status == 415, "{status} {body}");
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );
    let (status, body) = answer(
        post()
            .header("content-type", "application/json")
            .body("{\"to\": ["),
    );
    assert!((400..500).contains(&status), "{status} {body}");
    assert!(body["code"].is_string(), "{body}");
    let (status, body) = answer(
        http.get(format!("{node}/api/v1/inbox?limit=many"))
            .header("authorization", format!("Bearer {token}")),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
    // Too large by its Content-Length: refused before the body is read (sent raw, so the
    // client is not still writing when the node answers and closes).
    {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(g22.api_addr).unwrap();
        c.set_read_timeout(Some(WAIT)).unwrap();
        let head = format!(
            "POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 200000000\r\n\
             Connection: close\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        let body = &answer[answer.find("\r\n\r\n").map_or(0, |i| i + 4)..];
        let json: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
        assert!(json["code"].is_string(), "{answer}");
    }

    // The scheme in lower case is accepted.
    let (status, body) = answer(
        http.get(format!("{node}/api/v1/health"))
            .header("authorization", format!("bearer {token}")),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = answer(
        http.get(format!("{node}/api/v1/outbox"))
            .header("authorization", format!("bearer {token}")),
    );
    assert_eq!(status, 200, "{body}");

    // The admin API without its token: 401 `unauthorized`, as JSON.
    let (status, body) = answer(http.get(format!("http://{admin}/admin/agencies")));
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthorized", "{body}");

    for db in [
        hub.dir.join("data/hub.redb"),
        g22.data_dir().join("node.redb"),
    ] {
        let mode = std::fs::metadata(&db).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}: {mode:o}", db.display());
    }
}

/// The packet limit is a setting at both ends, refused early and clearly: a document over the
/// node's `max_packet_bytes` gets 413 `too_large` from the clerk API naming the setting, and
/// nothing is stored; one the node allows but the hub does not is refused by the hub (413)
/// and the outbox entry says so, instead of an internal error.
#[test]
fn packets_over_the_limits_are_refused_with_413_naming_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "max_packet_bytes = 1500000");
    let mut g22 = NodeProc::configure(
        &tmp.path().join("g22"),
        &pki,
        G22,
        G22,
        &hub.url(),
        "max_packet_bytes = 3000000",
    );
    g22.restart();
    let api = g22.api();
    let doc = |number: &str, bytes: usize| {
        json!({
            "to": [H41], "subject": "Kích thước", "code": {"number": number, "notation": "VPCP-KT"},
            "attachments": [{"name": "lon.bin", "data": base64_of(&vec![7u8; bytes])}],
        })
    };
    let before = g22.outbox(&[]).len();
    let err = rt().block_on(api.send(&doc("1", 2_400_000))).unwrap_err();
    assert!(err.starts_with("413"), "{err}");
    assert!(
        err.contains("too_large") && err.contains("max_packet_bytes") && err.contains("3000000"),
        "{err}"
    );
    assert_eq!(g22.outbox(&[]).len(), before, "nothing was stored");
    // Within the node's limit, over the hub's: the hub refuses it at once, clearly.
    let sent = rt().block_on(api.send(&doc("2", 1_400_000))).unwrap();
    let failed = failed_attempt(&g22, &sent, "the hub's refusal");
    let error = failed["last_error"].as_str().unwrap();
    assert!(
        error.contains("1500000") && !error.contains("internal"),
        "{error}"
    );
}
