//! Records (issue 15) end to end, with real processes: a document through its whole lifecycle
//! and a revoked one, exported at both nodes with `docaxis archive export`, verified with no
//! network at all (`unshare -n`, when the machine allows it) by `docaxis archive verify`;
//! `xmlsec1` alone agreeing on every signed file; the records feed read as a records system
//! does, with its linking digests; and a revocation published after the hub's receipt
//! leaving the evidence valid.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use docaxis_e2e::{
    G22, H41, HubProc, NodeProc, Pki, docaxis_bin, http_get_basic, run_ok, s, stderr, stdout,
    wait_for,
};

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = "lưu trữ 2026 an toàn";

fn received(node: &NodeProc, document_id: &str) -> String {
    wait_for("the document reaches H41", WAIT, || {
        node.inbox(&[])
            .iter()
            .find(|i| i["document_id"] == document_id && i["kind"] == "document")
            .and_then(|i| i["packet_id"].as_str().map(str::to_string))
    })
}

/// `docaxis archive verify` with only the CA, in a network namespace of its own when
/// `unshare` is allowed here (it has no interface but a downed loopback: no network at all).
fn verify_offline(dir: &Path, args: &[&str]) -> Output {
    let isolated = Command::new("unshare")
        .args(["-rn", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if isolated {
        let mut c = Command::new("unshare");
        c.args(["-rn"]).arg(docaxis_bin());
        c
    } else {
        eprintln!("unshare -rn is not allowed here: verifying with every DocAxis process stopped");
        Command::new(docaxis_bin())
    };
    cmd.current_dir(dir)
        .args(["archive", "verify"])
        .args(args)
        .output()
        .expect("docaxis runs")
}

fn containers(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "asice"))
        .collect();
    v.sort();
    v
}

/// Records-system credentials on the feed: (status, body).
fn feed(node: &NodeProc, query: &str, user: &str, password: &str) -> (u16, String) {
    http_get_basic(
        &format!("http://{}/api/v1/archive{query}", node.api_addr),
        user,
        password,
    )
}

fn add_account(node: &NodeProc, name: &str, role: &str) {
    node.add_user(name, "Phòng Lưu trữ", role, PASSWORD);
}

#[test]
fn a_documents_whole_story_is_exported_and_proved_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let pdf = tmp.path().join("cong-van.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 records\n").unwrap();

    // A: the whole lifecycle at H41. B: revoked by G22, H41 agrees.
    let send = |number: &str, subject: &str| {
        g22.send(&[
            "--to",
            H41,
            "--subject",
            subject,
            "--number",
            number,
            "--notation",
            "VPCP-LT",
            "--attach",
            s(&pdf),
        ])["document_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a = send("31", "V/v lưu trữ hồ sơ điện tử");
    let b = send("32", "V/v văn bản sẽ bị thu hồi");
    received(&h41, &a);
    received(&h41, &b);
    for code in ["03", "04", "05", "06"] {
        h41.json(&[
            "status",
            "send",
            &a,
            "--code",
            code,
            "--staff",
            "Trần Thị Lan",
        ]);
    }
    let revoke = g22.json(&[
        "revoke",
        &b,
        "--reason",
        "Ban hành nhầm",
        "--staff",
        "Văn thư",
    ]);
    let revoke_id = revoke["document_id"].as_str().unwrap().to_string();
    wait_for("H41 receives the revoke", WAIT, || {
        h41.inbox(&[])
            .iter()
            .any(|i| i["document_id"] == revoke_id.as_str())
            .then_some(())
    });
    h41.json(&[
        "status", "send", &revoke_id, "--code", "15", "--staff", "Lan",
    ]);
    wait_for(
        "G22 sees A completed and B revoked, each delivered",
        WAIT,
        || {
            let ta = g22.track(&a);
            let tb = g22.track(&b);
            let ra = &ta["recipients"][0];
            let rb = &tb["recipients"][0];
            (ra["business_state"] == "completed"
                && !ra["delivered_at"].is_null()
                && rb["business_state"] == "revoked")
                .then_some(())
        },
    );
    // The statuses' delivery receipts reach H41 (their sender) too.
    std::thread::sleep(Duration::from_secs(2));

    // Export: at G22 two named documents into a folder, at H41 a date window.
    let out_g22 = tmp.path().join("export-g22");
    let out = g22.clerk(&["archive", "export", &a, &b, "-o", s(&out_g22)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("[2/2]"), "{}", stdout(&out));
    let out_h41 = tmp.path().join("export-h41");
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let out = h41.clerk(&["archive", "export", "--since", &today, "-o", s(&out_h41)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // The revoke request is part of B's story, not a document of its own.
    assert_eq!(containers(&out_h41).len(), 2, "{}", stdout(&out));
    // A document this node never saw.
    let out = g22.clerk(&["archive", "export", "000.00.00.G22,2026/01/01,9/NONE"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no document"), "{}", stderr(&out));

    // The records feed at H41, read one batch at a time as a records system does.
    add_account(&h41, "luutru", "records");
    add_account(&h41, "lan", "clerk");
    let (code, body) = feed(&h41, "?after=0", "luutru", "wrong");
    assert_eq!(code, 401, "{body}");
    let (code, body) = feed(&h41, "?after=0", "lan", PASSWORD);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("records"), "{body}");
    let mut last = node::db::FEED_GENESIS.to_string();
    let mut after = 0;
    let mut batches = Vec::new();
    loop {
        let (code, body) = feed(&h41, &format!("?after={after}&limit=1"), "luutru", PASSWORD);
        assert_eq!(code, 200, "{body}");
        let batch: node::archive::FeedBatch = serde_json::from_str(&body).unwrap();
        if batch.items.is_empty() {
            break;
        }
        batch.check_follows(&last).unwrap();
        last = batch.last.clone();
        after = batch.next_after;
        batches.push(batch);
    }
    let reasons: Vec<(&str, &str)> = batches
        .iter()
        .map(|b| {
            (
                b.items[0].entry.document_id.as_str(),
                b.items[0].entry.reason.as_str(),
            )
        })
        .collect();
    assert!(reasons.contains(&(a.as_str(), "06")), "{reasons:?}");
    assert!(reasons.contains(&(b.as_str(), "revoked")), "{reasons:?}");
    // A records system that missed a batch notices.
    let err = batches[1]
        .check_follows(node::db::FEED_GENESIS)
        .unwrap_err();
    assert!(err.contains("missing"), "{err}");
    // The container of a feed entry downloads with the same credentials.
    let (code, _) = feed(
        &h41,
        &batches[0].items[0].container["/api/v1/archive".len()..],
        "luutru",
        PASSWORD,
    );
    assert_eq!(code, 200);

    // Then the revocation: G22's certificate revoked now, after every hub receipt.
    run_ok(&["pki", "revoke", "--dir", s(&pki.dir), "--code", G22]);
    drop(g22);
    drop(h41);
    drop(hub);

    // A records clerk copies the files and the CA's certificate to a machine with nothing else.
    let offline = tmp.path().join("offline");
    std::fs::create_dir_all(&offline).unwrap();
    std::fs::copy(pki.ca(), offline.join("ca.pem")).unwrap();
    std::fs::copy(pki.crl(), offline.join("crl-now.pem")).unwrap();
    let mut names = Vec::new();
    for (i, f) in containers(&out_g22)
        .into_iter()
        .chain(containers(&out_h41))
        .enumerate()
    {
        let name = format!("{i}-{}", f.file_name().unwrap().to_string_lossy());
        std::fs::copy(&f, offline.join(&name)).unwrap();
        names.push(name);
    }
    let mut args: Vec<&str> = vec!["--trust", "ca.pem", "--crl", "crl-now.pem"];
    args.extend(names.iter().map(String::as_str));
    let out = verify_offline(&offline, &args);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert_eq!(text.matches(": VALID").count(), 4, "{text}");
    for expected in [
        "V/v lưu trữ hồ sơ điện tử",
        "the hub accepted the document for 000.00.00.H41",
        "000.00.00.H41 received the document",
        "sent status 06 (hoàn thành)",
        "Trần Thị Lan",
        "a revoke request (thu hồi)",
        "Ban hành nhầm",
        "sent status 15",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // --json: the same, for programs.
    let mut json_args = args.clone();
    json_args.push("--json");
    let out = verify_offline(&offline, &json_args);
    let reports: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for r in reports.as_array().unwrap() {
        assert_eq!(r["verdict"], "valid", "{r:#}");
    }

    // Without DocAxis: xmlsec1 alone, given only the national CA, verifies every packet; a
    // receipt, signed in a batch, is checked as README says: its inclusion proof by the
    // documented rule (scripts/check-receipt-proof.py, Python's standard library), then the
    // batch's signed tree head with xmlsec1.
    let bytes = std::fs::read(offline.join(&names[0])).unwrap();
    let entries = archive::container::read(&bytes, &Default::default()).unwrap();
    let mut signed = 0;
    for (name, data) in &entries {
        if !(name.starts_with("packets/") || name.starts_with("receipts/")) {
            continue;
        }
        let mut file = offline.join("signed.xml");
        std::fs::write(&file, data).unwrap();
        if name.starts_with("receipts/") {
            let head = offline.join("head.xml");
            let proof = Command::new("/usr/bin/python3")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../scripts/check-receipt-proof.py"
                ))
                .arg("--hub")
                .arg(pki.dir.join("hub.pem"))
                .arg(&file)
                .arg(&head)
                .output()
                .expect("python3 runs");
            assert!(
                proof.status.success(),
                "the inclusion proof of {name} fails: {}{}",
                String::from_utf8_lossy(&proof.stdout),
                String::from_utf8_lossy(&proof.stderr)
            );
            file = head;
        }
        let out = Command::new("xmlsec1")
            .args(["--verify", "--trusted-pem"])
            .arg(offline.join("ca.pem"))
            .args(["--enabled-key-data", "x509"])
            .arg(&file)
            .output()
            .expect("xmlsec1 runs");
        assert!(
            out.status.success(),
            "xmlsec1 refuses {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        signed += 1;
    }
    assert!(signed >= 10, "only {signed} signed files in {}", names[0]);

    // One changed byte in the copy: refused, naming the file, exit status 1.
    let mut tampered = bytes.clone();
    let at = tampered
        .windows(4)
        .rposition(|w| w == b"PK\x01\x02")
        .expect("a central directory");
    // Flip a byte well inside the data, before the central directory.
    tampered[at / 2] ^= 0x20;
    std::fs::write(offline.join("tampered.asice"), &tampered).unwrap();
    let out = verify_offline(&offline, &["--trust", "ca.pem", "tampered.asice"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("INVALID"), "{}", stdout(&out));
}
