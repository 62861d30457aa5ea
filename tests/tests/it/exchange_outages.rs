//! The exchange through outages, on real processes (`docaxis hub`, `docaxis node`, real mutual
//! TLS): what a clerk sends is durably queued by the node whatever the state of the hub, and
//! delivered exactly once when the hub, or the recipient, comes back.

use std::time::Duration;

use docaxis_e2e::*;
use serde_json::Value;

/// Generous: the nodes and the hub share 2 cores with other test binaries in CI.
const WAIT: Duration = Duration::from_secs(60);

fn outbox_entry(node: &NodeProc, packet_id: &str) -> Value {
    node.outbox(&[])
        .into_iter()
        .find(|i| i["packet_id"] == packet_id)
        .unwrap_or_else(|| panic!("packet {packet_id} not in the outbox of {}", node.agency))
}

fn wait_delivered_01(node: &NodeProc, document_id: &str, recipient: &str) -> Value {
    wait_for(
        &format!("{document_id} delivered to {recipient} with status 01"),
        WAIT,
        || {
            let t = node.track(document_id);
            let r = &t["recipients"][0];
            (r["code"] == recipient
                && r["delivered_at"].is_string()
                && r["last_status"]["code"] == "01")
                .then_some(t)
        },
    )
}

fn send_to(node: &NodeProc, to: &str, number: &str) -> (String, String) {
    let sent = node.send(&[
        "--to",
        to,
        "--subject",
        &format!("Văn bản gửi khi có sự cố số {number}"),
        "--number",
        number,
        "--notation",
        "SC",
    ]);
    (
        sent["document_id"].as_str().unwrap().to_string(),
        sent["packet_id"].as_str().unwrap().to_string(),
    )
}

/// The hub is not running when the clerk sends: the node queues the document durably (it
/// survives a SIGKILL of the node), keeps retrying with the reason recorded, and once the hub
/// starts the document is accepted, delivered once, and answered with status 01.
#[test]
fn sent_while_the_hub_is_down_then_delivered_when_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let mut hub = HubProc::prepare(&tmp.path().join("hub"), &pki, "");
    let mut g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());

    let (doc, packet) = send_to(&g22, H41, "1");

    // Queued, with the failed attempts and their reason visible to the clerk.
    let entry = wait_for("a failed submission attempt recorded", WAIT, || {
        let e = outbox_entry(&g22, &packet);
        (e["attempts"].as_u64().unwrap() >= 1).then_some(e)
    });
    assert_eq!(entry["state"], "queued", "{entry:#}");
    assert_eq!(entry["document_id"], doc.as_str());
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.contains("cannot reach the hub"), "{error}");
    assert!(entry["next_attempt_at"].is_string(), "{entry:#}");
    assert!(entry["recipients"][0]["accepted_at"].is_null(), "{entry:#}");
    let human = stdout(&g22.clerk(&["outbox"]));
    assert!(
        human.contains("last error:") && human.contains("cannot reach the hub"),
        "{human}"
    );
    let health = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(g22.api().get("/api/v1/health"))
        .unwrap();
    assert_eq!(health["hub"]["reachable"], false, "{health:#}");

    // The queue is durable: the sending node is killed and restarted, the document is still
    // there, still queued.
    g22.kill();
    g22.restart();
    let entry = outbox_entry(&g22, &packet);
    assert_eq!(entry["state"], "queued", "{entry:#}");
    assert!(h41.inbox(&["--kind", "all"]).is_empty());

    // The hub starts: accepted, delivered, 01.
    hub.restart();
    let track = wait_delivered_01(&g22, &doc, H41);
    assert_eq!(track["state"], "submitted", "{track:#}");
    assert!(
        track["recipients"][0]["accepted_at"].is_string(),
        "{track:#}"
    );
    assert!(track["attempts"].as_u64().unwrap() >= 2, "{track:#}");
    assert_eq!(track["summary"], "1/1 accepted, 1/1 delivered");
    let inbox = h41.inbox(&[]);
    assert_eq!(inbox.len(), 1, "{inbox:#?}");
    assert_eq!(inbox[0]["packet_id"], packet.as_str());
    assert_eq!(g22.inbox(&["--kind", "status"]).len(), 1);
    assert_eq!(
        hub.log().matches("packet accepted").count(),
        2,
        "the document and its status 01, each accepted once:\n{}",
        hub.log()
    );
}

/// The recipient's node is down (SIGKILL) while documents are sent to it: the hub accepts
/// them and keeps them; when the node comes back each is delivered exactly once and its status
/// 01 reaches the sender.
#[test]
fn recipient_offline_receives_everything_once_when_it_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let mut h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    h41.kill();

    let sent: Vec<(String, String)> = (1..=3)
        .map(|n| send_to(&g22, H41, &n.to_string()))
        .collect();
    for (doc, _) in &sent {
        let t = wait_for(&format!("the hub accepting {doc}"), WAIT, || {
            let t = g22.track(doc);
            t["recipients"][0]["accepted_at"].is_string().then_some(t)
        });
        assert_eq!(t["state"], "submitted", "{t:#}");
        assert!(t["recipients"][0]["delivered_at"].is_null(), "{t:#}");
        assert!(t["recipients"][0]["last_status"].is_null(), "{t:#}");
    }

    h41.restart();
    for (doc, _) in &sent {
        wait_delivered_01(&g22, doc, H41);
    }
    let inbox = h41.inbox(&[]);
    let mut got: Vec<&str> = inbox
        .iter()
        .map(|i| i["packet_id"].as_str().unwrap())
        .collect();
    got.sort();
    let mut want: Vec<&str> = sent.iter().map(|(_, p)| p.as_str()).collect();
    want.sort();
    assert_eq!(got, want, "each document exactly once: {inbox:#?}");
    let statuses = g22.inbox(&["--kind", "status"]);
    let mut answered: Vec<&str> = statuses
        .iter()
        .map(|i| i["document_id"].as_str().unwrap())
        .collect();
    answered.sort();
    let mut docs: Vec<&str> = sent.iter().map(|(d, _)| d.as_str()).collect();
    docs.sort();
    assert_eq!(answered, docs, "one status 01 per document: {statuses:#?}");
}
