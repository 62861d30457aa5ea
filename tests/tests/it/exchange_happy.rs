//! The exchange's happy path across three agencies, on real processes: a `docaxis hub` and
//! three `docaxis node`s over real mutual TLS, driven only through the clerk commands
//! (`docaxis send/outbox/inbox/track --json`) and the clerk API.
//!
//! Văn phòng Chính phủ (G22) sends công văn 7816 with its PDF to Nghệ An (H41) and Cao Bằng
//! (H14): each inbox holds it exactly once with the attachment intact and a valid G22
//! signature, each answers with status 01, and G22's tracking shows, for both, accepted by the
//! hub, delivered, last status 01. Nghệ An then sends an urgent (thượng khẩn) document back:
//! G22's inbox shows it with its priority and H41's tracking closes the same way.

use std::time::Duration;

use docaxis_e2e::*;
use serde_json::Value;

/// Generous: the nodes and the hub share 2 cores with other test binaries in CI.
const WAIT: Duration = Duration::from_secs(60);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `docaxis track` at `node` until every listed recipient has a delivery and a status 01.
fn wait_tracked_01(node: &NodeProc, document_id: &str, recipients: &[&str]) -> Value {
    wait_for(
        &format!("{document_id} delivered with status 01 to {recipients:?}"),
        WAIT,
        || {
            let t = node.track(document_id);
            let all = t["recipients"].as_array().unwrap();
            let done = all.len() == recipients.len()
                && all.iter().all(|r| {
                    recipients.contains(&r["code"].as_str().unwrap())
                        && !r["delivered_at"].is_null()
                        && r["last_status"]["code"] == "01"
                });
            done.then_some(t)
        },
    )
}

#[test]
fn a_document_with_a_pdf_reaches_two_provinces_and_an_urgent_one_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    round_trip(tmp.path(), &pki, &hub.url(), &hub.url(), &hub.url());
}

/// The same exchange through two hub replicas on PostgreSQL: each node lists both, in its own
/// order, so the document, its statuses and receipts cross from one replica to the other.
#[test]
fn the_same_round_trip_through_two_hub_replicas_on_postgresql() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let cluster = pgtest::Cluster::start().unwrap();
    let hubs = HubProc::replicas_on(tmp.path(), &pki, &cluster, "");
    let (a, b) = (hubs[0].url(), hubs[1].url());
    round_trip(
        tmp.path(),
        &pki,
        &format!("[\"{a}\", \"{b}\"]"),
        &format!("[\"{b}\", \"{a}\"]"),
        &format!("[\"{b}\", \"{a}\"]"),
    );
}

/// G22 sends the example công văn with its PDF to H41 and H14; both answer 01, H41 sends an
/// urgent one back. `hub_g22`, `hub_h41`, `hub_h14`: each node's `hub_url` (one URL or a TOML
/// list).
fn round_trip(dir: &std::path::Path, pki: &Pki, hub_g22: &str, hub_h41: &str, hub_h14: &str) {
    let g22 = NodeProc::start(&dir.join("g22"), pki, G22, hub_g22);
    let h41 = NodeProc::start(&dir.join("h41"), pki, H41, hub_h41);
    let h14 = NodeProc::start(&dir.join("h14"), pki, H14, hub_h14);

    // 1. G22 sends the example công văn (TOML description with a PDF) to H41 and H14.
    let spec = repo_root().join("examples/cong-van-ket-noi.toml");
    let pdf = std::fs::read(repo_root().join("examples/attachments/cong-van-7816-VPCP-TTDT.pdf"))
        .unwrap();
    let sent = g22.send(&["--spec", s(&spec)]);
    let doc = sent["document_id"].as_str().unwrap().to_string();
    let packet = sent["packet_id"].as_str().unwrap().to_string();
    assert!(
        doc.starts_with(G22) && doc.ends_with("7816/VPCP-TTĐT"),
        "{doc}"
    );
    assert_eq!(packet.len(), 64, "a SHA-256 packet id: {packet}");

    let track = wait_tracked_01(&g22, &doc, &[H41, H14]);
    assert_eq!(track["packet_id"], packet.as_str());
    assert_eq!(track["state"], "submitted");
    assert_eq!(track["summary"], "2/2 accepted, 2/2 delivered", "{track:#}");
    for r in track["recipients"].as_array().unwrap() {
        assert!(r["accepted_at"].is_string(), "{r:#}");
        assert!(r["refused"].is_null(), "{r:#}");
        assert!(r["delivered_at"].is_string(), "{r:#}");
        assert_eq!(r["last_status"]["label_en"], "received", "{r:#}");
        let events: Vec<&str> = r["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        for needle in ["accepted by the hub", "delivered", "status 01"] {
            assert_eq!(
                events.iter().filter(|e| e.contains(needle)).count(),
                1,
                "exactly one '{needle}' event for {}: {events:?}",
                r["code"]
            );
        }
        // In the order things happened: the status's own timestamp has whole seconds only, so
        // it must not sort before the sending and the hub's acceptance that caused it. (It may
        // come before "delivered": the recipient stamps its 01 before it acknowledges.)
        assert!(
            events[0].starts_with("signed and queued")
                && events[1].starts_with("accepted by the hub"),
            "timeline out of order for {}: {events:?}",
            r["code"]
        );
    }

    // 2. Each recipient holds it exactly once, signed by G22, with the PDF byte-for-byte sized,
    //    and answered it with a status 01 that the hub accepted.
    for node in [&h41, &h14] {
        let inbox = node.inbox(&[]);
        let ours: Vec<&Value> = inbox
            .iter()
            .filter(|i| i["packet_id"] == packet.as_str())
            .collect();
        assert_eq!(inbox.len(), 1, "{} inbox: {inbox:#?}", node.agency);
        assert_eq!(ours.len(), 1);
        let item = ours[0];
        assert_eq!(item["document_id"], doc.as_str());
        assert_eq!(item["from"], G22);
        assert_eq!(item["kind"], "document");
        assert_eq!(
            item["subject"],
            "V/v kết nối, liên thông phần mềm quản lý văn bản"
        );
        assert_eq!(item["code"], "7816/VPCP-TTĐT");
        let answer = item["answered_with"]
            .as_str()
            .expect("answered with a status 01");

        let detail = rt()
            .block_on(node.api().get(&format!("/api/v1/inbox/{packet}")))
            .unwrap();
        assert_eq!(detail["signature"]["valid"], true, "{detail:#}");
        assert_eq!(detail["signature"]["signer_agency"], G22, "{detail:#}");
        let atts = detail["attachments"].as_array().unwrap();
        assert_eq!(atts.len(), 1, "{detail:#}");
        assert_eq!(atts[0]["content_type"], "application/pdf");
        assert_eq!(atts[0]["size"].as_u64().unwrap(), pdf.len() as u64);

        let statuses = node.outbox(&["--kind", "status"]);
        assert_eq!(statuses.len(), 1, "{statuses:#?}");
        assert_eq!(statuses[0]["packet_id"], answer);
        assert_eq!(statuses[0]["status_code"], "01");
        assert_eq!(statuses[0]["document_id"], doc.as_str());
        assert_eq!(statuses[0]["recipients"][0]["code"], G22);
    }

    // G22 received the two statuses and applied them; nothing unmatched.
    let statuses = g22.inbox(&["--kind", "status"]);
    let mut from: Vec<&str> = statuses
        .iter()
        .map(|i| i["from"].as_str().unwrap())
        .collect();
    from.sort();
    assert_eq!(from, [H14, H41], "{statuses:#?}");
    for st in &statuses {
        assert_eq!(st["status_code"], "01");
        assert_eq!(st["state"], "applied");
        assert_eq!(st["document_id"], doc.as_str());
    }
    assert!(
        g22.inbox(&["--state", "unmatched", "--kind", "all"])
            .is_empty()
    );

    // 3. H41 answers with an urgent document (flags, an attachment) to G22.
    let note = dir.join("bao-cao.txt");
    std::fs::write(&note, "Báo cáo tiến độ kết nối của tỉnh Nghệ An.\n").unwrap();
    let back = h41.send(&[
        "--to",
        G22,
        "--subject",
        "Báo cáo tiến độ kết nối",
        "--number",
        "55",
        "--notation",
        "UBND-VX",
        "--priority",
        "2",
        "--attach",
        s(&note),
    ]);
    let back_doc = back["document_id"].as_str().unwrap().to_string();
    let track = wait_tracked_01(&h41, &back_doc, &[G22]);
    assert_eq!(track["summary"], "1/1 accepted, 1/1 delivered", "{track:#}");

    let got = g22.inbox(&["--from", H41]);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["document_id"], back_doc.as_str());
    assert_eq!(got[0]["priority"], 2, "thượng khẩn: {got:#?}");
    assert_eq!(got[0]["subject"], "Báo cáo tiến độ kết nối");
    assert_eq!(got[0]["code"], "55/UBND-VX");
    // Only what was addressed to it: G22's document inbox holds just this one.
    assert_eq!(g22.inbox(&[]).len(), 1);
    // And H14 got nothing but the công văn.
    assert_eq!(h14.inbox(&["--kind", "all"]).len(), 1);

    // The human outputs say the same.
    let human = stdout(&g22.clerk(&["track", &doc]));
    assert!(human.contains("2/2 accepted, 2/2 delivered"), "{human}");
    assert_eq!(human.matches("01 đã đến (received)").count(), 4, "{human}");
    let human = stdout(&g22.clerk(&["inbox"]));
    assert!(human.contains("Báo cáo tiến độ kết nối"), "{human}");
}
