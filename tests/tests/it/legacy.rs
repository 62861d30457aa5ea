//! The national axis's client API on real nodes (issue 16), driven by a client that speaks
//! the SDK's wire protocol byte for byte (`docaxis_e2e::vdxp`): send → list → get → done →
//! no longer listed between two nodes through the real hub; a status sent through the
//! facade reaching the sender's `docaxis track`; wrong secret, tampered sign-header, another
//! agency's `from`, a broken packet and an oversized body each refused with FAIL and nothing
//! stored; what `getEdoc` returns verifying with `xmlsec1` against the national CA alone; an
//! OK'd sendEdoc and a `done` surviving a SIGKILL of the node.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use docaxis_e2e::vdxp::{SdkClient, lossy_hash_file};
use docaxis_e2e::{G22, H41, HubProc, NodeProc, Pki, free_port, s, wait_for};

const WAIT: Duration = Duration::from_secs(30);
/// The document system's own id for its document (a UUID, as QLVBĐH systems choose).
const DOC_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn legacy_node(
    dir: &std::path::Path,
    pki: &Pki,
    agency: &str,
    hub: &str,
    system: &str,
) -> (NodeProc, SdkClient) {
    std::fs::create_dir_all(dir).unwrap();
    let secret = format!("c2VjcmV0LW9m-{system}==");
    std::fs::write(dir.join("qlvb.secret"), format!("{secret}\n")).unwrap();
    let port = free_port();
    let extra = format!(
        "\n[legacy]\nlisten = \"127.0.0.1:{port}\"\nmax_body_bytes = 262144\n\n[[legacy.systems]]\nsystem_id = \"{system}\"\nsecret_file = \"qlvb.secret\"\n"
    );
    let mut node = NodeProc::configure(dir, pki, agency, agency, hub, &extra);
    node.restart();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    (node, SdkClient::new(addr, system, &secret))
}

/// The field's document packet, as a QLVBĐH hands it over: unsigned with the legacy
/// placeholder `Signature`, its own DocumentId, a trace point with no OrganId (a 2025
/// gateway's), to H41 only.
fn legacy_document() -> Vec<u8> {
    let text = std::fs::read_to_string(
        docaxis_e2e::repo_root().join("examples/conformance/document_new.edxml"),
    )
    .unwrap();
    let mut text = text.replace("000.00.00.G22,2015/09/30,7816/VPCP-TTĐT", DOC_ID);
    for code in ["000.00.00.H14", "000.00.00.G17"] {
        let at = text
            .find(&format!("<edXML:OrganId>{code}</edXML:OrganId>"))
            .unwrap();
        let start = text[..at].rfind("<edXML:To>").unwrap();
        let end = text[at..].find("</edXML:To>").unwrap() + at + "</edXML:To>".len();
        text.replace_range(start..end, "");
    }
    let t = text.find("<edXML:TraceHeader>").unwrap();
    let organ = text[t..].find("<edXML:OrganId>").unwrap() + t;
    let organ_end =
        text[organ..].find("</edXML:OrganId>").unwrap() + organ + "</edXML:OrganId>".len();
    text.replace_range(organ..organ_end, "");
    assert!(
        text.contains("<Signature>"),
        "the legacy placeholder stays in"
    );
    text.into_bytes()
}

fn legacy_status(code: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(
        docaxis_e2e::repo_root().join("examples/conformance/status_03_accepted.edxml"),
    )
    .unwrap();
    text.replace("000.00.00.G22,2015/09/30,7816/VPCP-TTĐT", DOC_ID)
        .replace(
            "<edXML:StatusCode>03</edXML:StatusCode>",
            &format!("<edXML:StatusCode>{code}</edXML:StatusCode>"),
        )
        .into_bytes()
}

fn ok(a: &docaxis_e2e::vdxp::Answer) -> serde_json::Value {
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["status"], "OK", "{v:#}");
    assert_eq!(v["ErrorCode"], "0", "{v:#}");
    v
}

fn failed(a: &docaxis_e2e::vdxp::Answer, words: &str) -> serde_json::Value {
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["status"], "FAIL", "{v:#}");
    assert_ne!(v["ErrorCode"], "0", "{v:#}");
    assert!(
        v["ErrorDesc"].as_str().unwrap().contains(words),
        "expected {words:?}: {v:#}"
    );
    v
}

fn outbox_len(node: &NodeProc) -> usize {
    node.outbox(&[]).len()
}

#[test]
fn a_document_system_on_the_axis_sdk_sends_and_receives_through_docaxis_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let (mut g22, mut sdk_g22) =
        legacy_node(&tmp.path().join("g22"), &pki, G22, &hub.url(), "qlvb-g22");
    let (mut h41, mut sdk_h41) =
        legacy_node(&tmp.path().join("h41"), &pki, H41, &hub.url(), "qlvb-h41");
    let packet = legacy_document();

    // Refusals first: each FAIL, nothing stored.
    let before = outbox_len(&g22);
    let mut wrong = SdkClient::new(sdk_g22.addr, "qlvb-g22", "not-the-secret");
    let a = wrong.send_edoc(&packet, G22, "edoc");
    let v = failed(&a, "HMAC");
    assert_eq!(v["DocId"], "", "DocId even on FAIL");
    assert!(v["ErrorDesc"].as_str().unwrap().is_ascii());
    // A sign-header changed after it was signed.
    let mut tampered: Vec<(String, String)> = Vec::new();
    {
        let mut probe = SdkClient::new(sdk_g22.addr, "qlvb-g22", &sdk_g22.secret);
        probe.set(&[
            ("from", G22),
            ("servicetype", "eDoc"),
            ("messagetype", "edoc"),
            ("hash-file", &lossy_hash_file(&packet)),
        ]);
        let json = format!(
            "{{\"XroadVnpt-systemid\":\"qlvb-g22\",\"XroadVnpt-from\":\"{H41}\",\"XroadVnpt-messagetype\":\"edoc\",\"XroadVnpt-hash-file\":\"{}\"}}",
            lossy_hash_file(&packet)
        );
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, sdk_g22.secret.as_bytes());
        let tag = hex::encode(aws_lc_rs::hmac::sign(&key, json.as_bytes()).as_ref());
        tampered.push(("XroadVnpt-systemid".into(), "qlvb-g22".into()));
        tampered.push(("XroadVnpt-from".into(), G22.into()));
        tampered.push(("XroadVnpt-messagetype".into(), "edoc".into()));
        tampered.push(("XroadVnpt-hash-file".into(), lossy_hash_file(&packet)));
        tampered.push(("XroadVnpt-hash-header".into(), tag));
        // Signed for from = H41, sent with from = G22.
        tampered.push(("XroadVnpt-sign-header".into(), json));
        let mut body = packet.clone();
        body.extend_from_slice(b"\r\n");
        let a = probe.raw(
            "POST",
            "sendEdoc",
            &tampered,
            "application/octet-stream",
            &body,
        );
        failed(&a, "differs");
    }
    // `from` of another agency, properly signed.
    let a = sdk_g22.send_edoc(&packet, H41, "edoc");
    failed(&a, "khong dung voi ma da dang ky");
    // A broken packet (its hash-file right).
    let broken = &packet[..packet.len() / 2];
    let a = sdk_g22.send_edoc(broken, G22, "edoc");
    failed(&a, "cannot be read");
    // A hash-file that does not match.
    sdk_g22.set(&[("hash-file", "abc")]);
    let mut body = packet.clone();
    body.extend_from_slice(b"\r\n");
    let a = sdk_g22.call(
        "POST",
        "sendEdoc",
        &["servicetype", "messagetype", "hash-file", "from"],
        "application/octet-stream",
        body,
    );
    failed(&a, "hash-file");
    // An oversized body: refused from its Content-Length (max_body_bytes = 256 KiB).
    let big = vec![b'x'; 300 * 1024];
    let a = sdk_g22.send_edoc(&big, G22, "edoc");
    failed(&a, "max_body_bytes");
    assert_eq!(outbox_len(&g22), before, "nothing stored");

    // The document: signed by the node and queued; the same bytes again, the same DocId.
    let a = sdk_g22.send_edoc(&packet, G22, "edoc");
    let v = ok(&a);
    let doc_id = v["DocId"].as_str().unwrap().to_string();
    assert_eq!(doc_id.len(), 64, "{v:#}");
    // OK means committed: the node killed with SIGKILL at once loses nothing, and after the
    // restart the same bytes still get the same DocId (nothing signed or queued twice).
    g22.kill();
    g22.restart();
    let again = ok(&sdk_g22.send_edoc(&packet, G22, "edoc"));
    assert_eq!(again["DocId"], doc_id.as_str());
    assert_eq!(outbox_len(&g22), before + 1);
    // Other bytes under the same DocumentId are refused.
    let other = String::from_utf8(packet.clone())
        .unwrap()
        .replacen("V/v kết nối", "V/v khác", 1)
        .into_bytes();
    failed(&sdk_g22.send_edoc(&other, G22, "edoc"), "already sent");

    // At H41: listed, fetched (base64 and raw), done, no longer listed.
    sdk_h41.set(&[("servicetype", "eDoc"), ("messagetype", "edoc")]);
    let item = wait_for("H41's system sees the document", WAIT, || {
        let v = ok(&sdk_h41.op(
            "POST",
            "getReceivedEdocList",
            &["servicetype", "messagetype"],
            b"",
        ));
        v["data"].as_array().unwrap().first().cloned()
    });
    assert_eq!(item["from"], G22);
    for field in [
        "docId",
        "serviceType",
        "messageType",
        "created_time",
        "updated_time",
        "from",
        "to",
        "status",
        "status_desc",
    ] {
        assert!(item[field].is_string(), "{field}: {item:#}");
    }
    let received = item["docId"].as_str().unwrap().to_string();
    let count = ok(&sdk_h41.op(
        "POST",
        "countReceiveEdoc",
        &["servicetype", "messagetype"],
        b"{}",
    ));
    assert_eq!(count["count"], 1);
    sdk_h41.set(&[("docId", &received), ("filePath", "/tmp/qlvb/inbox")]);
    let a = sdk_h41.op("POST", "getEdoc", &["docId"], b"{}");
    assert!(a.continued, "Expect: 100-continue was honoured");
    let got = ok(&a);
    let signed = base64::engine::general_purpose::STANDARD
        .decode(got["data"].as_str().unwrap())
        .unwrap();
    let raw = sdk_h41.op("GET", "downloadEdoc", &["docId"], b"");
    assert_eq!(raw.status, 200);
    assert_eq!(raw.body, signed);
    // What getEdoc returns is the signed packet: xmlsec1 verifies it with the CA alone, and it
    // kept the system's DocumentId and G22's trace point.
    let file = tmp.path().join("received.edxml");
    std::fs::write(&file, &signed).unwrap();
    let out = Command::new("xmlsec1")
        .args([
            "--verify",
            "--trusted-pem",
            s(&pki.ca()),
            "--enabled-key-data",
            "x509",
            s(&file),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(signed.clone()).unwrap();
    assert!(text.contains(DOC_ID));
    assert!(
        !text.contains("<Signature>"),
        "the legacy placeholder is gone"
    );
    // `docid` in lower case, headers left over from earlier calls: as the SDK sends them.
    sdk_h41.options.remove("docId");
    sdk_h41.set(&[("docid", &received), ("status", "done")]);
    ok(&sdk_h41.op("POST", "updateStatus", &["docid", "status"], b"{}"));
    sdk_h41.options.remove("docid");
    // `done` is durable: killed and restarted, the node still does not list it.
    h41.kill();
    h41.restart();
    let v = ok(&sdk_h41.op(
        "POST",
        "getReceivedEdocList",
        &["servicetype", "messagetype"],
        b"",
    ));
    assert!(v["data"].as_array().unwrap().is_empty(), "{v:#}");

    // H41's system accepts (03) through the facade; G22's clerk sees it in `docaxis track`.
    let a = sdk_h41.send_edoc(&legacy_status("03"), H41, "status");
    let v = ok(&a);
    assert_eq!(v["DocId"].as_str().unwrap().len(), 64, "{v:#}");
    wait_for("G22 tracks H41's 03", WAIT, || {
        let t = g22.track(DOC_ID);
        (t["recipients"][0]["business_state"] == "accepted").then_some(())
    });
    // A status the rules refuse (05 before 04 is fine, 02 after 03 is not).
    failed(
        &sdk_h41.send_edoc(&legacy_status("02"), H41, "status"),
        "exclude each other",
    );
    // G22's system sees the delivery and the business status per recipient.
    sdk_g22.set(&[("docId", &doc_id)]);
    let rows = wait_for("G22's sent list shows the 03", WAIT, || {
        let v = ok(&sdk_g22.op(
            "POST",
            "getSentEdocList",
            &["servicetype", "messagetype", "docId"],
            b"",
        ));
        let rows = v["data"].as_array().unwrap().clone();
        (rows.len() == 1 && rows[0]["receiveStatus"] == "03").then_some(rows)
    });
    assert_eq!(rows[0]["toCode"], H41);
    assert_eq!(rows[0]["senderDocId"], DOC_ID);
    assert!(
        !rows[0]["receivedTime"].as_str().unwrap().is_empty(),
        "{rows:#?}"
    );

    // The directory, and registration refused without a crash on a malformed body.
    let v = ok(&sdk_g22.op("POST", "getAgenciesList", &[], b""));
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["code"] == H41),
        "{v:#}"
    );
    let v = ok(&sdk_g22.op("POST", "getSynchronizeUnit", &[], b""));
    assert!(v["data"][0]["deleted"].is_boolean(), "{v:#}");
    failed(
        &sdk_g22.op("POST", "registerAgency", &[], b"{not json"),
        "registered at the hub",
    );
    failed(
        &sdk_g22.op("POST", "deleteAgency", &[], b"{}"),
        "registered at the hub",
    );
    drop(h41);
    drop(g22);
}
