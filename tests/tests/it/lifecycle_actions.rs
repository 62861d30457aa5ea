//! Revoke, update (with a change of recipients) and replace end to end, with real processes: a
//! hub and four agency nodes on loopback, driven through `docaxis revoke|update|replace`,
//! `status send 15|16`, `inbox --state`, `track`; and statuses that reach the sender out of
//! order and twice, submitted to the real hub as signed packets.

use std::time::Duration;

use docaxis_e2e::{G22, H14, H41, HubProc, NodeProc, Pki, run_ok, s, stderr, stdout, wait_for};
use edxml::{EdxmlDateTime, Organization, Packet, StaffInfo, StatusCode, write};
use exchange::status::status_about;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// A fourth agency, added to the recipients by an update.
const G01: &str = "000.00.00.G01";

fn recipient<'a>(track: &'a Value, code: &str) -> &'a Value {
    track["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["code"] == code)
        .unwrap_or_else(|| panic!("no recipient {code} in {track:#}"))
}

fn items(list: &Value) -> &Vec<Value> {
    list["items"].as_array().unwrap()
}

/// Waits until `node` holds a document with this id (in any state) and returns it.
fn received(node: &NodeProc, document_id: &str) -> Value {
    wait_for(
        &format!("{} receives {document_id}", node.agency),
        WAIT,
        || {
            let l = node.json(&["inbox"]);
            items(&l)
                .iter()
                .find(|i| i["document_id"] == document_id)
                .cloned()
        },
    )
}

/// The inbox entry of `document_id` at `node` once `pred` holds.
fn inbox_until(
    node: &NodeProc,
    document_id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(&format!("{}: {what}", node.agency), WAIT, || {
        let l = node.json(&["inbox"]);
        items(&l)
            .iter()
            .find(|i| i["document_id"] == document_id && pred(i))
            .cloned()
    })
}

fn track_until(
    node: &NodeProc,
    document_id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, WAIT, || {
        let t = node.json(&["track", document_id]);
        pred(&t).then_some(t)
    })
}

/// The hub's record of `document_id` issued by G22 (`docaxis hub track --json`).
fn hub_track(hub: &HubProc, document_id: &str) -> Value {
    let out = hub.admin(&["track", document_id, "--owner", G22, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The hub's state for `agency` in a `hub track` answer.
fn hub_state(track: &Value, agency: &str) -> String {
    track["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["recipient"] == agency)
        .map(|r| r["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

fn send(node: &NodeProc, to: &[&str], number: &str, subject: &str, attachment: &str) -> String {
    let mut args = vec!["send"];
    for t in to {
        args.extend(["--to", t]);
    }
    args.extend([
        "--subject",
        subject,
        "--number",
        number,
        "--notation",
        "VPCP-TTĐT",
        "--attach",
        attachment,
    ]);
    node.json(&args)["document_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn refused_with(out: &std::process::Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected a refusal: {}{}",
        stdout(out),
        stderr(out)
    );
    assert!(stderr(out).contains(needle), "{}", stderr(out));
}

#[test]
fn revoke_update_with_new_recipients_and_replace() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    run_ok(&[
        "pki",
        "issue",
        "--dir",
        s(&pki.dir),
        "--code",
        G01,
        "--name",
        "Bộ Công an",
    ]);
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let added = hub.admin(&[
        "agency",
        "add",
        "--code",
        G01,
        "--name",
        "Bộ Công an",
        "--cert",
        s(&pki.cert(G01)),
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let h14 = NodeProc::start(&tmp.path().join("h14"), &pki, H14, &hub.url());
    let g01 = NodeProc::start(&tmp.path().join("g01"), &pki, G01, &hub.url());
    let pdf = tmp.path().join("van-ban.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 actions\n").unwrap();
    let pdf = s(&pdf);

    // ---- Revoke: H41 agrees (its copy is marked revoked), H14 refuses (16).
    let a = send(&g22, &[H41, H14], "41", "V/v văn bản sẽ bị thu hồi", pdf);
    received(&h41, &a);
    received(&h14, &a);
    // Only the original sender may revoke, and only about a document (not a request).
    refused_with(
        &h41.clerk(&["revoke", &a, "--reason", "x"]),
        "has sent no document",
    );
    let revoke = g22.json(&[
        "revoke",
        &a,
        "--reason",
        "Ban hành nhầm",
        "--staff",
        "Văn thư",
    ]);
    let revoke_id = revoke["document_id"].as_str().unwrap().to_string();
    assert_eq!(revoke_id, format!("{a}#revoke-1"));
    refused_with(
        &g22.clerk(&["revoke", &revoke_id, "--reason", "x"]),
        "is itself a revoke",
    );
    for node in [&h41, &h14] {
        let r = inbox_until(node, &revoke_id, "the revoke waits for an answer", |i| {
            i["take_back_requested"] == true
        });
        assert_eq!(r["action"]["kind"], "revoke");
        assert_eq!(r["action"]["original"], a.as_str());
        assert_eq!(r["action"]["reason"], "Ban hành nhầm");
    }
    let text = stdout(&h41.clerk(&["inbox", "--state", "take_back_requested"]));
    assert!(
        text.contains(&format!("the sender asks to revoke {a}")),
        "{text}"
    );
    let agreed = h41.json(&[
        "status", "send", &revoke_id, "--code", "15", "--staff", "Lan",
    ]);
    assert_eq!(agreed["state"], "agreed");
    let refused = h14.json(&[
        "status",
        "send",
        &revoke_id,
        "--code",
        "16",
        "--reason",
        "Đã xử lý xong",
    ]);
    assert_eq!(refused["state"], "refused");
    // The recipient's inbox shows the original revoked; nothing more may be done with it.
    let original = h41.json(&["inbox", "--state", "revoked"]);
    assert_eq!(items(&original).len(), 1, "{original:#}");
    assert_eq!(items(&original)[0]["document_id"], a.as_str());
    assert_eq!(
        items(&original)[0]["mark"]["by_document"],
        revoke_id.as_str()
    );
    refused_with(
        &h41.clerk(&["status", "send", &a, "--code", "03"]),
        "the document was revoked",
    );
    // H14 keeps its copy and may go on.
    h14.json(&["status", "send", &a, "--code", "03"]);
    // The sender sees the same: H41 revoked, H14 accepted; the request's answers.
    let t = track_until(&g22, &a, "G22 sees the revoke agreed by H41", |t| {
        recipient(t, H41)["business_state"] == "revoked"
            && recipient(t, H14)["business_state"] == "accepted"
            && t["requests"][0]["business"] == "1 agreed (15), 1 refused (16)"
    });
    assert_eq!(
        recipient(&t, H41)["mark"]["by_document"],
        revoke_id.as_str()
    );
    assert!(recipient(&t, H14)["mark"].is_null());
    let text = stdout(&g22.clerk(&["track", &a]));
    assert!(text.contains(&format!("revoke {revoke_id}")), "{text}");
    assert!(text.contains("marked:        revoked by"), "{text}");
    // The hub keeps the same record from what passed through it.
    wait_for("the hub sees the same marks", WAIT, || {
        let h = hub_track(&hub, &a);
        (hub_state(&h, H41) == "revoked" && hub_state(&h, H14) == "accepted").then_some(())
    });
    let h = hub_track(&hub, &revoke_id);
    assert_eq!(hub_state(&h, H41), "agreed", "{h:#}");
    assert_eq!(hub_state(&h, H14), "refused", "{h:#}");
    let rt = g22.json(&["track", &revoke_id]);
    assert_eq!(rt["action"]["kind"], "revoke");
    assert_eq!(recipient(&rt, H14)["take_back"], "refused");
    // A second revoke goes only where the document still stands (H14).
    let again = g22.json(&["revoke", &a, "--reason", "Thu hồi lần hai"]);
    assert_eq!(again["document_id"], format!("{a}#revoke-2"));
    let t2 = g22.json(&["track", again["document_id"].as_str().unwrap()]);
    let to: Vec<&str> = t2["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    assert_eq!(to, [H14]);

    // ---- Update: add G01, remove H14, correct the subject.
    let b = send(&g22, &[H41, H14], "42", "V/v văn bản sẽ được cập nhật", pdf);
    received(&h41, &b);
    received(&h14, &b);
    h41.json(&["status", "send", &b, "--code", "03"]);
    refused_with(
        &g22.clerk(&["update", &b, "--reason", "Không đổi gì"]),
        "must change something",
    );
    let update = g22.json(&[
        "update",
        &b,
        "--reason",
        "Bổ sung nơi nhận",
        "--add",
        G01,
        "--remove",
        H14,
        "--subject",
        "V/v văn bản đã được cập nhật",
    ]);
    let update_id = update["document_id"].as_str().unwrap().to_string();
    assert_eq!(update_id, format!("{b}#update-1"));
    // G01 never had the original: it gets the whole document, attachment included.
    let at_g01 = received(&g01, &update_id);
    assert_eq!(at_g01["subject"], "V/v văn bản đã được cập nhật");
    assert_eq!(at_g01["action"]["added"][0], G01);
    let shown = g01.json(&["inbox", "show", at_g01["packet_id"].as_str().unwrap()]);
    assert_eq!(shown["attachments"][0]["name"], "van-ban.pdf");
    assert_eq!(shown["signature"]["valid"], true);
    // The removed agency learns it was removed; the remaining one that its copy changed.
    let at_h14 = received(&h14, &update_id);
    assert_eq!(at_h14["action"]["removed"][0], H14);
    h14.json(&["status", "send", &update_id, "--code", "15"]);
    h41.json(&["status", "send", &update_id, "--code", "15"]);
    g01.json(&["status", "send", &update_id, "--code", "15"]);
    inbox_until(&h14, &b, "H14's copy is marked removed", |i| {
        i["business_state"] == "removed"
    });
    refused_with(
        &h14.clerk(&["status", "send", &b, "--code", "03"]),
        "the document was removed",
    );
    // An update does not close the original: H41 may still report on it.
    inbox_until(&h41, &b, "H41's copy is marked updated", |i| {
        i["business_state"] == "updated"
    });
    h41.json(&["status", "send", &b, "--code", "04"]);
    // The added agency processes the update like any document.
    let done = g01.json(&["status", "send", &update_id, "--code", "03"]);
    assert_eq!(done["state"], "accepted");
    let t = track_until(&g22, &b, "G22 sees H41 updated and H14 removed", |t| {
        recipient(t, H41)["business_state"] == "updated"
            && recipient(t, H14)["business_state"] == "removed"
    });
    assert_eq!(t["requests"][0]["document_id"], update_id.as_str());
    let h = hub_track(&hub, &b);
    assert_eq!(hub_state(&h, H41), "updated", "{h:#}");
    assert_eq!(hub_state(&h, H14), "removed", "{h:#}");
    track_until(&g22, &update_id, "G22 sees G01 accept the update", |t| {
        recipient(t, G01)["business_state"] == "accepted"
    });
    // H14 no longer stands on the recipients: it cannot be removed again, and a revoke of
    // the updated document goes to H41 and the added G01.
    refused_with(
        &g22.clerk(&["update", &b, "--reason", "x", "--remove", H14]),
        "cannot remove 000.00.00.H14",
    );
    let revoke_b = g22.json(&["revoke", &b, "--reason", "Thu hồi bản cập nhật"]);
    let t = g22.json(&["track", revoke_b["document_id"].as_str().unwrap()]);
    let mut to: Vec<&str> = t["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap())
        .collect();
    to.sort_unstable();
    assert_eq!(to, [G01, H41]);

    // ---- Replace: a new document with its own number; H41 agrees and processes it.
    let c = send(&g22, &[H41], "43", "V/v văn bản sẽ bị thay thế", pdf);
    received(&h41, &c);
    let replace = g22.json(&[
        "replace",
        &c,
        "--reason",
        "Thay thế do sai sót",
        "--subject",
        "V/v văn bản thay thế",
        "--number",
        "44",
        "--notation",
        "VPCP-TTĐT",
        "--attach",
        pdf,
    ]);
    let new_id = replace["document_id"].as_str().unwrap().to_string();
    assert!(new_id.ends_with(",44/VPCP-TTĐT"), "{new_id}");
    let r = received(&h41, &new_id);
    assert_eq!(r["action"]["kind"], "replace");
    assert_eq!(r["action"]["original"], c.as_str());
    h41.json(&["status", "send", &new_id, "--code", "15"]);
    h41.json(&["status", "send", &new_id, "--code", "03"]);
    let replaced = h41.json(&["inbox", "--state", "replaced"]);
    assert_eq!(items(&replaced)[0]["document_id"], c.as_str());
    let shown = stdout(&h41.clerk(&["inbox", "show", &c]));
    assert!(shown.contains(&format!("replaced by {new_id}")), "{shown}");
    track_until(&g22, &c, "G22 sees the original replaced at H41", |t| {
        recipient(t, H41)["business_state"] == "replaced"
    });
    track_until(&g22, &new_id, "G22 sees the replacement accepted", |t| {
        recipient(t, H41)["business_state"] == "accepted"
    });
    let outbox = stdout(&g22.clerk(&["outbox", "--kind", "document"]));
    assert!(outbox.contains("business:   1 replaced"), "{outbox}");
}

/// A status packet from H41 about `doc` (sent by G22), at `at`, signed with H41's key.
fn signed_status(
    pki: &Pki,
    doc: &edxml::DocumentPacket,
    code: StatusCode,
    at: time::OffsetDateTime,
    staff: &str,
) -> Vec<u8> {
    let h41 = Organization::new(
        edxml::AgencyCode::parse_strict(H41).unwrap(),
        "UBND Tỉnh Nghệ An",
    );
    let mut status = status_about(
        doc,
        &h41,
        code,
        None,
        Some(StaffInfo {
            staff: Some(staff.into()),
            ..StaffInfo::default()
        }),
    );
    status.timestamp = EdxmlDateTime::from_offset(at);
    let unsigned = write(&Packet::Status(status)).unwrap();
    pki.sign_as(H41, &unsigned)
}

#[test]
fn statuses_arriving_out_of_order_and_twice_give_the_right_timeline() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let pdf = tmp.path().join("a.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 order\n").unwrap();
    // Once the node holds the hub's signed directory, a recipient the hub does not know is
    // refused before anything is signed, naming the agency.
    wait_for("G22 holds the hub's directory", WAIT, || {
        (health(&g22)["directory_agencies"].as_u64() == Some(3)).then_some(())
    });
    let out = g22.clerk(&[
        "send",
        "--to",
        "000.00.00.G01",
        "--subject",
        "S",
        "--number",
        "50",
        "--notation",
        "X",
    ]);
    refused_with(&out, "000.00.00.G01 is not registered at the hub");
    assert!(
        items(&g22.json(&["outbox"])).is_empty(),
        "nothing was queued"
    );
    let doc_id = send(&g22, &[H41], "51", "V/v thứ tự trạng thái", s(&pdf));
    let at_h41 = received(&h41, &doc_id);
    // The document as H41 stored it, to answer it like another vendor's system would.
    let packet = stored_packet(&h41, at_h41["packet_id"].as_str().unwrap());
    let doc = match edxml::read(&packet, &edxml::ReadOptions::default())
        .unwrap()
        .packet
    {
        Packet::Document(d) => d,
        Packet::Status(_) => panic!("not a document"),
    };
    // Timestamps after the automatic 01; sent to the hub in the order 05, 03, 03 (the same
    // bytes again), 03 (another packet: a second clerk), 04.
    let base = time::OffsetDateTime::now_utc() + time::Duration::seconds(60);
    let s05 = signed_status(
        &pki,
        &doc,
        StatusCode::Processing,
        base + time::Duration::seconds(30),
        "Hùng",
    );
    let s03 = signed_status(
        &pki,
        &doc,
        StatusCode::Accepted,
        base + time::Duration::seconds(10),
        "Lan",
    );
    let s03b = signed_status(
        &pki,
        &doc,
        StatusCode::Accepted,
        base + time::Duration::seconds(11),
        "Mai",
    );
    let s04 = signed_status(
        &pki,
        &doc,
        StatusCode::Assigned,
        base + time::Duration::seconds(20),
        "Hùng",
    );
    let client = pki.client_as(H41);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for body in [&s05, &s03, &s03, &s03b, &s04] {
            let r = client
                .post(format!("{}/v1/packets", hub.url()))
                .header("content-type", "application/xml")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "{}",
                r.text().await.unwrap_or_default()
            );
        }
    });
    let t = track_until(&g22, &doc_id, "G22 has all four distinct statuses", |t| {
        recipient(t, H41)["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["event"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("status ")
            })
            .count()
            == 5
    });
    let r = recipient(&t, H41);
    assert_eq!(r["business_state"], "processing", "{r:#}");
    let statuses: Vec<&str> = r["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|e| e.starts_with("status "))
        .collect();
    assert_eq!(statuses.len(), 5, "{statuses:?}");
    assert!(statuses[0].starts_with("status 01"), "{statuses:?}");
    assert!(statuses[1].starts_with("status 03") && statuses[1].contains("Lan"));
    assert!(statuses[2].starts_with("status 03") && statuses[2].contains("Mai"));
    assert!(statuses[3].starts_with("status 04"), "{statuses:?}");
    assert!(statuses[4].starts_with("status 05"), "{statuses:?}");
    // Nothing here breaks the rules: a second 03 is a repeat, the late 04 fits by its time.
    assert!(
        r["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["anomaly"].is_null()),
        "{r:#}"
    );
    assert_eq!(r["last_status"]["code"], "05");
}

/// The node's own clerk API client, with a runtime to drive it.
fn clerk_api(node: &NodeProc) -> (tokio::runtime::Runtime, node::client::ApiClient) {
    let config = node::NodeConfig::load(&node.config).unwrap();
    let client = node::client::ApiClient::from_config(&config).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (rt, client)
}

/// The node's health answer (`GET /api/v1/health`).
fn health(node: &NodeProc) -> Value {
    let (rt, client) = clerk_api(node);
    serde_json::to_value(rt.block_on(client.health()).unwrap()).unwrap()
}

/// The stored bytes of a received packet (`GET /api/v1/inbox/{packet_id}/packet`).
fn stored_packet(node: &NodeProc, packet_id: &str) -> Vec<u8> {
    let (rt, client) = clerk_api(node);
    rt.block_on(client.inbox_packet(packet_id)).unwrap()
}

/// The recipients a request `document_id` was sent to, as the sender tracks it.
fn sent_to(node: &NodeProc, document_id: &str) -> Vec<String> {
    node.json(&["track", document_id])["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_string())
        .collect()
}

/// An agreed take-back (13 → 15) closes the recipient's copy like an agreed revoke: later
/// revokes and updates go only where the document still stands, and the recipient can do
/// nothing more with it.
#[test]
fn an_agreed_take_back_closes_the_copy_for_later_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let h14 = NodeProc::start(&tmp.path().join("h14"), &pki, H14, &hub.url());
    let pdf = tmp.path().join("van-ban.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 take-back\n").unwrap();

    let doc = send(&g22, &[H41, H14], "51", "V/v lấy lại văn bản", s(&pdf));
    received(&h41, &doc);
    received(&h14, &doc);
    g22.json(&[
        "status", "send", &doc, "--code", "13", "--reason", "Sai sót", "--to", H41,
    ]);
    inbox_until(&h41, &doc, "the take-back request arrives", |i| {
        i["take_back_requested"] == true
    });
    let agreed = h41.json(&["status", "send", &doc, "--code", "15"]);
    assert_eq!(agreed["state"], "taken_back");
    track_until(&g22, &doc, "G22 sees H41 agreed to the take-back", |t| {
        recipient(t, H41)["take_back"] == "agreed"
    });
    // The recipient's copy is closed.
    refused_with(
        &h41.clerk(&["status", "send", &doc, "--code", "03"]),
        "took the document back",
    );

    let revoke = g22.json(&["revoke", &doc, "--reason", "Thu hồi"]);
    let revoke_id = revoke["document_id"].as_str().unwrap();
    assert_eq!(sent_to(&g22, revoke_id), [H14], "the revoke skips H41");
    let update = g22.json(&[
        "update",
        &doc,
        "--reason",
        "Sửa trích yếu",
        "--subject",
        "V/v lấy lại văn bản (sửa)",
    ]);
    let update_id = update["document_id"].as_str().unwrap();
    assert_eq!(sent_to(&g22, update_id), [H14], "the update skips H41");
    received(&h14, revoke_id);
    received(&h14, update_id);
}
