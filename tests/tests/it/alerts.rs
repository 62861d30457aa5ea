//! Operator alerts by email (issue 12.3), received by a real SMTP server (Debian's
//! `python3-aiosmtpd`).
//!
//! G22 sends a document to H14, which is registered but has no node: after the (short) test
//! threshold the hub opens a `pending:H14` incident and queues one mail. The SMTP server is
//! down at first: the mail waits in the queue with the error while the exchange goes on. The
//! hub is killed (SIGKILL) with the incident open and the mail unsent: after the restart the
//! incident is still open and nothing is announced twice. The SMTP server starts: exactly one
//! "CẢNH BÁO" mail arrives. H14's node starts and takes its document: the incident resolves
//! and exactly one "ĐÃ KHẮC PHỤC" mail follows.

use std::time::Duration;

use docaxis_e2e::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn alerts(hub: &HubProc) -> Value {
    let (status, body) = hub.admin_get("/admin/alerts");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn keys(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

fn about_h14(mails: &[ReceivedMail], prefix: &str) -> Vec<ReceivedMail> {
    mails
        .iter()
        .filter(|m| m.subject.starts_with(prefix) && m.subject.contains(H14))
        .cloned()
        .collect()
}

#[test]
fn a_stuck_delivery_mails_the_operator_once_and_its_resolution_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let smtp_port = free_port();
    let mut smtp = SmtpServer::new(&tmp.path().join("smtp"), smtp_port);
    let mut hub = HubProc::start(
        &tmp.path().join("hub"),
        &pki,
        &format!(
            "[alerts]\nto = [\"van-hanh@hub.demo\"]\ncheck_secs = 1\npending_after_secs = 2\n\
             console_url = \"http://127.0.0.1:1/\"\n\
             [mail]\nsmtp = \"127.0.0.1:{smtp_port}\"\nsecurity = \"none\"\n\
             from = \"DocAxis <hub@hub.demo>\"\ntimeout_secs = 5\nretry_initial_secs = 1\n\
             retry_max_secs = 2\n"
        ),
    );
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let sent = g22.send(&[
        "--to",
        H14,
        "--subject",
        "Về việc báo cáo tình hình",
        "--number",
        "77",
        "--notation",
        "VPCP-TH",
    ]);
    let doc = sent["document_id"].as_str().unwrap().to_string();

    // The incident opens; its mail cannot leave (no SMTP server yet) and says why.
    let view = wait_for("pending:H14 open, its mail failing", WAIT, || {
        let v = alerts(&hub);
        let failing = v["mail_waiting"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["attempts"].as_u64() >= Some(1) && !m["last_error"].is_null());
        (keys(&v["open"]).contains(&format!("pending:{H14}")) && failing).then_some(v)
    });
    assert_eq!(
        view["mail_waiting"].as_array().unwrap().len(),
        1,
        "{view:#}"
    );
    let incident = &view["open"][0];
    assert_eq!(incident["agency"], H14);
    assert!(
        incident["summary"]
            .as_str()
            .unwrap()
            .contains("UBND Tỉnh Cao Bằng"),
        "{incident}"
    );
    // A mail server that is down does not hold up the exchange.
    let second = g22.send(&[
        "--to",
        H14,
        "--subject",
        "Văn bản thứ hai",
        "--number",
        "78",
        "--notation",
        "VPCP-TH",
    ]);
    assert!(second["document_id"].is_string());

    // kill -9 with the incident open and its mail unsent: both survive, nothing is doubled.
    hub.kill();
    hub.restart();
    std::thread::sleep(Duration::from_secs(3)); // three checks of the restarted hub
    let view = alerts(&hub);
    assert_eq!(
        keys(&view["open"]),
        vec![format!("pending:{H14}")],
        "{view:#}"
    );
    assert_eq!(
        view["mail_waiting"].as_array().unwrap().len(),
        1,
        "{view:#}"
    );

    // The SMTP server comes up: the one queued alert arrives.
    smtp.start();
    let opened = wait_for("the alert mail", WAIT, || {
        let m = about_h14(&smtp.mails(), "[DocAxis] CẢNH BÁO:");
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(opened.len(), 1, "{opened:#?}");
    let mail = &opened[0];
    assert!(mail.to.contains("van-hanh@hub.demo"), "{mail:?}");
    assert!(mail.from.contains("hub@hub.demo"), "{mail:?}");
    assert!(mail.subject.contains("UBND Tỉnh Cao Bằng"), "{mail:?}");
    assert!(mail.body.contains("chưa nhận"), "{}", mail.body);
    assert!(
        mail.body.contains("http://127.0.0.1:1/alerts"),
        "{}",
        mail.body
    );
    wait_for("the queue empties", WAIT, || {
        let v = alerts(&hub);
        v["mail_waiting"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    });

    // H14's node starts and takes both documents: the incident resolves, once.
    let h14 = NodeProc::start(&tmp.path().join("h14"), &pki, H14, &hub.url());
    wait_for("H14 has the document", WAIT, || {
        h14.inbox(&[])
            .iter()
            .any(|d| d["document_id"] == doc.as_str())
            .then_some(())
    });
    let resolved = wait_for("the resolution mail", WAIT, || {
        let m = about_h14(&smtp.mails(), "[DocAxis] ĐÃ KHẮC PHỤC:");
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(resolved.len(), 1, "{resolved:#?}");
    assert_ne!(resolved[0].message_id, mail.message_id);
    let view = alerts(&hub);
    assert!(keys(&view["open"]).is_empty(), "{view:#}");
    assert_eq!(
        keys(&view["past"]),
        vec![format!("pending:{H14}")],
        "{view:#}"
    );
    assert!(view["past"][0]["closed_ms"].as_u64().is_some());
    std::thread::sleep(Duration::from_secs(3)); // later checks announce nothing more
    let all = smtp.mails();
    assert_eq!(about_h14(&all, "[DocAxis] CẢNH BÁO:").len(), 1, "{all:#?}");
    assert_eq!(
        about_h14(&all, "[DocAxis] ĐÃ KHẮC PHỤC:").len(),
        1,
        "{all:#?}"
    );

    // The alert state is in the metrics too.
    let (_, metrics) = hub.admin_get("/metrics");
    assert!(metrics.contains("docaxis_hub_alerts_open 0"), "{metrics}");
    assert!(metrics.contains("docaxis_hub_mail_queued 0"), "{metrics}");
}
