//! Prometheus metrics of a running hub and nodes (issue 12.1), parsed by the reference
//! OpenMetrics parser (Debian's `python3-prometheus-client`) and checked against what the test
//! sent.
//!
//! G22 sends three documents to H41 (its node runs) and H14 (registered, no node): H41 stores
//! and answers each with status 01; H14's three deliveries stay pending. One malformed and one
//! unsigned packet are refused. The counts must say exactly that.

use std::collections::HashMap;
use std::time::Duration;

use docaxis_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// One sample: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// Parses an OpenMetrics exposition with `prometheus_client`'s strict parser.
fn parse(text: &str) -> Vec<Sample> {
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({"name": s.name, "labels": s.labels, "value": s.value})
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/test.sh installs python3-prometheus-client)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    samples
        .into_iter()
        .map(|s| Sample {
            name: s["name"].as_str().unwrap().to_string(),
            labels: s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect(),
            value: s["value"].as_f64().unwrap(),
        })
        .collect()
}

/// The value of `name` with exactly these labels, if present.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

fn get(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in {samples:#?}"))
}

/// `GET url` with a bearer token: status, content type, body.
fn scrape(url: &str, token: Option<&str>) -> (u16, String, String) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let mut req = client.get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let ctype = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            (status, ctype, r.text().await.unwrap())
        })
}

#[test]
fn hub_and_node_metrics_count_what_was_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());

    let mut docs = Vec::new();
    for n in ["901", "902", "903"] {
        let sent = g22.send(&[
            "--to",
            H41,
            "--to",
            H14,
            "--subject",
            "Báo cáo số liệu",
            "--number",
            n,
            "--notation",
            "VPCP",
        ]);
        docs.push(sent["document_id"].as_str().unwrap().to_string());
    }
    let (status, _) = hub.submit_as(&pki, G22, b"<not edxml".to_vec());
    assert_eq!(status, 400);
    let (status, body) = hub.submit_as(&pki, G22, unsigned_document(G22, &[H41], "904", None));
    assert!(status >= 400, "{status} {body}");
    let unsigned_code = serde_json::from_str::<Value>(&body).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();

    // Every document delivered to H41 and answered with 01, which reached G22.
    for doc in &docs {
        wait_for(&format!("{doc}: H41 delivered and 01"), WAIT, || {
            let t = g22.track(doc);
            t["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| {
                    r["code"] == H41
                        && !r["delivered_at"].is_null()
                        && r["last_status"]["code"] == "01"
                })
                .then_some(())
        });
    }
    // The status 01 packets' own deliveries to G22 are acknowledged a moment later.
    let admin = format!("http://{}/metrics", hub.admin_addr());
    let token = hub.admin_token();
    let hub_samples = wait_for("six deliveries counted", WAIT, || {
        let (status, _, text) = scrape(&admin, Some(&token));
        assert_eq!(status, 200, "{text}");
        let samples = parse(&text);
        (value(&samples, "docaxis_hub_deliveries_total", &[]) == Some(6.0)).then_some(samples)
    });

    let (status, ctype, text) = scrape(&admin, Some(&token));
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert!(text.ends_with("# EOF\n"));
    let s = &hub_samples;
    // 3 documents from G22 + 3 statuses 01 from H41; one malformed, one unsigned.
    let sub = "docaxis_hub_submissions_total";
    assert_eq!(get(s, sub, &[("outcome", "accepted")]), 6.0);
    assert_eq!(get(s, sub, &[("outcome", "malformed")]), 1.0);
    assert_eq!(get(s, sub, &[("outcome", &unsigned_code)]), 1.0);
    assert_eq!(
        get(s, "docaxis_hub_submission_duration_seconds_count", &[]),
        8.0
    );
    let receipts = "docaxis_hub_receipts_issued_total";
    assert_eq!(get(s, receipts, &[("kind", "submission")]), 6.0);
    assert_eq!(get(s, receipts, &[("kind", "delivery")]), 6.0);
    assert_eq!(
        get(s, "docaxis_hub_delivery_latency_seconds_count", &[]),
        6.0
    );
    // H14 has no node: its three deliveries wait; nothing waits for the others.
    let pending = "docaxis_hub_pending_deliveries";
    assert_eq!(get(s, pending, &[("agency", H14)]), 3.0);
    assert_eq!(get(s, pending, &[("agency", H41)]), 0.0);
    assert_eq!(get(s, pending, &[("agency", G22)]), 0.0);
    assert!(
        get(
            s,
            "docaxis_hub_oldest_pending_age_seconds",
            &[("agency", H14)]
        ) > 0.0
    );
    assert_eq!(get(s, "docaxis_hub_agencies", &[("state", "active")]), 3.0);
    assert_eq!(
        get(s, "docaxis_hub_agencies", &[("state", "suspended")]),
        0.0
    );
    // Polls: G22 and H41 poll, H14 never did.
    let poll = "docaxis_hub_last_poll_age_seconds";
    assert!(get(s, poll, &[("agency", H41)]) < 60.0);
    assert!(get(s, poll, &[("agency", G22)]) < 60.0);
    assert_eq!(value(s, poll, &[("agency", H14)]), None);
    // Certificates (the test PKI issues them for a year or more) and the CRL.
    let cert = "docaxis_hub_certificate_expiry_seconds";
    assert!(get(s, cert, &[("owner", "hub")]) > 86_400.0 * 30.0);
    assert!(get(s, cert, &[("owner", G22)]) > 86_400.0 * 30.0);
    assert!(
        s.iter()
            .any(|x| x.name == "docaxis_hub_crl_next_update_seconds" && x.value > 0.0),
        "the test CRL names a next update"
    );
    assert!(get(s, "docaxis_hub_store_commits_total", &[]) >= 1.0);
    assert!(get(s, "docaxis_hub_store_batch_jobs_count", &[]) >= 1.0);
    // Labels are bounded: never a packet id or a document id.
    for x in s.iter() {
        for v in x.labels.values() {
            assert!(
                !(v.contains("VPCP") || v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())),
                "an unbounded label: {x:?}"
            );
        }
    }

    // The metrics are the operators': no token, no metrics.
    let (status, _, _) = scrape(&admin, None);
    assert_eq!(status, 401);
    let (status, _, _) = scrape(&admin, Some("wrong"));
    assert_eq!(status, 401);

    // Nodes: G22 submitted its three documents; H41 its three statuses and holds three new
    // documents.
    let node_metrics = |node: &NodeProc| {
        let (status, ctype, text) = scrape(
            &format!("http://{}/metrics", node.api_addr),
            Some(&node.token()),
        );
        assert_eq!(status, 200, "{text}");
        assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
        parse(&text)
    };
    let g = node_metrics(&g22);
    let outbox = "docaxis_node_outbox_packets";
    assert_eq!(get(&g, outbox, &[("state", "submitted")]), 3.0);
    assert_eq!(get(&g, outbox, &[("state", "queued")]), 0.0);
    assert_eq!(get(&g, outbox, &[("state", "failed")]), 0.0);
    assert_eq!(get(&g, "docaxis_node_submission_retries_total", &[]), 0.0);
    assert_eq!(
        get(&g, "docaxis_node_inbox_packets", &[("state", "handled")]),
        3.0,
        "the three statuses 01"
    );
    let h = node_metrics(&h41);
    assert_eq!(get(&h, outbox, &[("state", "submitted")]), 3.0);
    assert_eq!(
        get(&h, "docaxis_node_inbox_packets", &[("state", "new")]),
        3.0
    );
    assert!(get(&h, "docaxis_node_store_commits_total", &[]) >= 1.0);
    let (status, _, _) = scrape(&format!("http://{}/metrics", h41.api_addr), None);
    assert_eq!(status, 401);
}
