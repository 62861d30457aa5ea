//! Node-level security, on real processes: a node acts only as the agency of its certificate,
//! and a node whose certificate was revoked cannot reach the hub at all.

use std::time::Duration;

use docaxis_e2e::*;

/// Generous: the nodes and the hub share 2 cores with other test binaries in CI.
const WAIT: Duration = Duration::from_secs(60);

/// A node configured as H41 but holding G22's certificate and key refuses to start, saying
/// which agency the configuration names and which one the certificate belongs to; it opens no
/// clerk API.
#[test]
fn a_node_refuses_to_start_as_an_agency_its_certificate_does_not_name() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let mut node = NodeProc::configure(&tmp.path().join("h41"), &pki, H41, G22, &hub.url(), "");
    let (status, log) = node.run_expecting_exit(WAIT);
    assert!(!status.success(), "{status:?}\n{log}");
    assert!(
        log.contains(&format!("the configuration says agency {H41}"))
            && log.contains(&format!("belongs to {G22}")),
        "the refusal names both agencies:\n{log}"
    );
    assert!(
        !node.data_dir().join("api.addr").exists(),
        "no clerk API was opened"
    );
    let out = node.clerk(&["outbox"]);
    assert!(!out.status.success(), "a clerk command finds no node");
    assert_eq!(hub.log().matches("packet accepted").count(), 0);
}

/// H14's certificate is revoked in the CRL the hub loads: its node starts (it holds its own
/// key), queues what its clerk sends, but every connection to the hub is refused at the TLS
/// handshake. The outbox keeps retrying and shows why; the hub accepts nothing; the intended
/// recipient receives nothing. A healthy node next to it works normally.
#[test]
fn a_revoked_node_cannot_reach_the_hub_and_nothing_it_sends_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    run_ok(&["pki", "revoke", "--dir", s(&pki.dir), "--code", H14]);
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let h14 = NodeProc::start(&tmp.path().join("h14"), &pki, H14, &hub.url());
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());

    let sent = h14.send(&[
        "--to",
        G22,
        "--subject",
        "Văn bản từ cơ quan bị thu hồi chứng thư",
        "--number",
        "9",
        "--notation",
        "UBND-VP",
    ]);
    let packet = sent["packet_id"].as_str().unwrap().to_string();

    // Several attempts, each refused, the reason recorded.
    let entry = wait_for("three refused submission attempts", WAIT, || {
        h14.outbox(&[])
            .into_iter()
            .find(|i| i["packet_id"] == packet.as_str())
            .filter(|e| e["attempts"].as_u64().unwrap() >= 3)
    });
    assert_eq!(entry["state"], "queued", "still retrying: {entry:#}");
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.contains("cannot reach the hub"), "{error}");
    // The clerk is told the likely cause, not only the socket's symptom.
    assert!(
        error.contains("revoked") || error.contains("refuses this node's certificate"),
        "{error}"
    );
    assert!(entry["recipients"][0]["accepted_at"].is_null(), "{entry:#}");
    let track = h14.track(sent["document_id"].as_str().unwrap());
    assert_eq!(track["summary"], "0/1 accepted, 0/1 delivered", "{track:#}");

    // The hub refused the connections and accepted nothing.
    let log = hub.log();
    assert!(
        log.contains("connection refused") && log.contains("invalid peer certificate: Revoked"),
        "the hub refuses the revoked certificate at the handshake:\n{log}"
    );
    assert_eq!(log.matches("packet accepted").count(), 0, "{log}");

    // G22, healthy, is connected and has received nothing.
    wait_for("G22's node in contact with the hub", WAIT, || {
        let h = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(g22.api().get("/api/v1/health"))
            .unwrap();
        (h["hub"]["reachable"] == true).then_some(())
    });
    assert!(g22.inbox(&["--kind", "all"]).is_empty());
    let h = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(h14.api().get("/api/v1/health"))
        .unwrap();
    assert_eq!(h["hub"]["reachable"], false, "{h:#}");
}
