//! The document lifecycle end to end, with real processes (a hub and three agency nodes on
//! loopback) driven through the clerk commands: `status send` (01→03→04→05→06, a rejection
//! with its reason, a refused transition, take-back refused then agreed), `track`, `outbox`,
//! `inbox --state`, `inbox show --extract`; and the hub's record of the same document
//! (`docaxis hub track`), which must show each recipient's statuses as the sender's node does.

use std::time::Duration;

use docaxis_e2e::{G22, H14, H41, HubProc, NodeProc, Pki, s, stderr, stdout, wait_for};

const WAIT: Duration = Duration::from_secs(30);

fn recipient<'a>(track: &'a serde_json::Value, code: &str) -> &'a serde_json::Value {
    track["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .unwrap()
}

/// The status codes of one recipient in the sender node's `track --json` timeline, in order.
fn node_codes(track: &serde_json::Value, code: &str) -> Vec<String> {
    recipient(track, code)["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str()?.strip_prefix("status ")?.get(..2))
        .map(str::to_string)
        .collect()
}

/// One recipient of `docaxis hub track --json`.
fn hub_recipient<'a>(track: &'a serde_json::Value, code: &str) -> &'a serde_json::Value {
    track["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recipient"] == code)
        .unwrap_or_else(|| panic!("no recipient {code} in {track:#}"))
}

/// The status codes of one recipient in `docaxis hub track --json`, in order.
fn hub_codes(track: &serde_json::Value, code: &str) -> Vec<String> {
    hub_recipient(track, code)["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap().to_string())
        .collect()
}

fn status_ok(node: &NodeProc, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["status", "send"];
    all.extend_from_slice(args);
    node.json(&all)
}

#[test]
fn lifecycle_through_the_clerk_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let h14 = NodeProc::start(&tmp.path().join("h14"), &pki, H14, &hub.url());

    let attachment = tmp.path().join("cong-van.pdf");
    std::fs::write(&attachment, b"%PDF-1.4 lifecycle\n").unwrap();
    let sent = g22.json(&[
        "send",
        "--to",
        H41,
        "--to",
        H14,
        "--subject",
        "V/v thử nghiệm vòng đời văn bản",
        "--number",
        "21",
        "--notation",
        "VPCP-TTĐT",
        "--attach",
        s(&attachment),
    ]);
    let doc = sent["document_id"].as_str().unwrap().to_string();
    for node in [&h41, &h14] {
        wait_for("the document reaches its recipients", WAIT, || {
            let l = node.json(&["inbox", "--state", "new"]);
            (l["items"].as_array().unwrap().len() == 1).then_some(())
        });
    }

    // A nonsense transition is refused at the sending node: exit 1 and the rule's message.
    let out = h41.clerk(&["status", "send", &doc, "--code", "05"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out)
            .contains("status 05 needs 03 (accepted) first; the document is at 01 (received)"),
        "{}",
        stderr(&out)
    );
    // A rejection needs its reason.
    let out = h14.clerk(&["status", "send", &doc, "--code", "02"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("needs a reason"), "{}", stderr(&out));

    // H41: 03 → 04 → 05 → 06; H14 rejects with a reason.
    let accepted = status_ok(&h41, &[&doc, "--code", "03", "--staff", "Trần Thị Lan"]);
    assert_eq!(accepted["state"], "accepted");
    let again = status_ok(&h41, &[&doc, "--code", "03"]);
    assert_eq!(again["repeated"], true);
    assert_eq!(again["packet_id"], accepted["packet_id"]);
    for code in ["04", "05", "06"] {
        status_ok(&h41, &[&doc, "--code", code, "--staff", "Lê Văn Hùng"]);
    }
    let rejected = status_ok(
        &h14,
        &[
            &doc,
            "--code",
            "02",
            "--reason",
            "Không đúng thẩm quyền",
            "--from",
            G22,
        ],
    );
    assert_eq!(rejected["state"], "rejected");
    let out = h14.clerk(&["status", "send", &doc, "--code", "03"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exclude each other"),
        "{}",
        stderr(&out)
    );

    // G22 tracks both recipients.
    let track = wait_for("G22 sees H41 completed and H14 rejected", WAIT, || {
        let t = g22.json(&["track", &doc]);
        (recipient(&t, H41)["business_state"] == "completed"
            && recipient(&t, H14)["business_state"] == "rejected")
            .then_some(t)
    });
    assert_eq!(track["business"], "1 rejected, 1 completed");
    let text = stdout(&g22.clerk(&["track", &doc]));
    assert!(text.contains("Không đúng thẩm quyền"), "{text}");
    assert!(
        text.contains("status 04 phân công (assigned) by Lê Văn Hùng"),
        "{text}"
    );
    let outbox = stdout(&g22.clerk(&["outbox", "--kind", "document"]));
    assert!(
        outbox.contains("business:   1 rejected, 1 completed"),
        "{outbox}"
    );

    // Take-back: refused (16), asked again, agreed (15).
    let reason = "Văn bản có sai sót, xin lấy lại";
    let out = g22.clerk(&["status", "send", &doc, "--code", "13", "--reason", reason]);
    assert_eq!(out.status.code(), Some(1), "two recipients: --to is needed");
    status_ok(
        &g22,
        &[&doc, "--code", "13", "--reason", reason, "--to", H41],
    );
    let requested = || {
        wait_for("H41 sees the take-back request", WAIT, || {
            let l = h41.json(&["inbox", "--state", "take_back_requested"]);
            (l["items"].as_array().unwrap().len() == 1).then_some(())
        })
    };
    requested();
    status_ok(&h41, &[&doc, "--code", "16", "--staff", "Lãnh đạo"]);
    wait_for("G22 sees the refusal", WAIT, || {
        let t = g22.json(&["track", &doc]);
        (recipient(&t, H41)["take_back"] == "refused").then_some(())
    });
    status_ok(
        &g22,
        &[&doc, "--code", "13", "--reason", reason, "--to", H41],
    );
    requested();
    let agreed = status_ok(&h41, &[&doc, "--code", "15"]);
    assert_eq!(agreed["state"], "taken_back");
    let taken = h41.json(&["inbox", "--state", "taken_back"]);
    assert_eq!(taken["items"].as_array().unwrap().len(), 1);
    wait_for("G22 sees the document taken back", WAIT, || {
        let t = g22.json(&["track", &doc]);
        (recipient(&t, H41)["business_state"] == "taken_back").then_some(())
    });
    let outbox = stdout(&g22.clerk(&["outbox", "--kind", "document"]));
    assert!(outbox.contains("1 rejected, 1 taken back"), "{outbox}");

    // The hub keeps the same per-recipient record from what passed through it: the same
    // statuses in the same order, the same business states.
    let sender_view = g22.json(&["track", &doc]);
    let hub_track = || {
        let out = hub.admin(&["track", &doc, "--owner", G22, "--json"]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        serde_json::from_str::<serde_json::Value>(&stdout(&out)).unwrap()
    };
    let mut hub_view = hub_track();
    let deadline = std::time::Instant::now() + WAIT;
    while [H41, H14]
        .iter()
        .any(|r| hub_codes(&hub_view, r) != node_codes(&sender_view, r))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        hub_view = hub_track();
    }
    for r in [H41, H14] {
        assert_eq!(
            hub_codes(&hub_view, r),
            node_codes(&sender_view, r),
            "statuses of {r}: hub vs sender node"
        );
        assert_eq!(
            hub_recipient(&hub_view, r)["state"],
            recipient(&sender_view, r)["business_state"],
            "state of {r}"
        );
        assert_eq!(hub_recipient(&hub_view, r)["delivery"], "delivered");
    }
    assert_eq!(
        hub_codes(&hub_view, H41),
        ["01", "03", "04", "05", "06", "13", "16", "13", "15"]
    );
    assert_eq!(hub_recipient(&hub_view, H41)["take_back"], "agreed");
    assert_eq!(
        hub_recipient(&hub_view, H41)["anomalies"],
        serde_json::json!([])
    );
    let h14_statuses = &hub_recipient(&hub_view, H14)["statuses"];
    assert_eq!(h14_statuses[1]["reason"], "Không đúng thẩm quyền");
    assert_eq!(h14_statuses[1]["from"], H14);
    let text = stdout(&hub.admin(&["track", &doc, "--owner", G22]));
    assert!(
        text.contains(&format!("document {doc} issued by {G22}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{H41}  state: taken_back (06, take-back agreed)")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{H14}  state: rejected (02)")),
        "{text}"
    );
    assert!(text.contains("by Trần Thị Lan"), "{text}");
    assert!(text.contains("reason: Không đúng thẩm quyền"), "{text}");
    assert!(text.contains("delivered to the sender"), "{text}");

    // The recipient's view: metadata, signature verdict, statuses, attachments extracted.
    let dir = tmp.path().join("extracted");
    let out = h41.clerk(&["inbox", "show", &doc, "--extract", s(&dir)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("signature:  valid"), "{text}");
    assert!(
        text.contains("status 15 đồng ý (agreed) sent by this node"),
        "{text}"
    );
    assert_eq!(
        std::fs::read(dir.join("cong-van.pdf")).unwrap(),
        b"%PDF-1.4 lifecycle\n"
    );
    drop(hub);
}
