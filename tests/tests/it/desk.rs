//! The clerk's desk (issue 13): the node's web pages in a real headless Chromium, and the
//! clerks' email notices received by a real SMTP server (Debian's aiosmtpd).
//!
//! - A văn thư logs in by name and password, finds an urgent document in the inbox (marked
//!   new until opened), reads it with its PDF and signature verdict, is offered only the
//!   statuses the rules allow, accepts it; composes a document with a PDF that the recipient
//!   node then holds with a valid signature and the văn thư's name in StaffInfo.
//! - Refusals: pages need a login; wrong passwords are refused and lock the account; a
//!   `records` account cannot send; a forged form (no CSRF token) changes nothing; another
//!   agency's packet is not found; a subject with markup is shown as text.
//! - Notices: arrival at both recipients (urgent ones say so), the rejection at the sender;
//!   queued with their events, so a recipient killed with SIGKILL before the mail server is
//!   up still sends each notice exactly once.

use std::time::Duration;

use docaxis_e2e::browser::Browser;
use docaxis_e2e::smtp::SmtpServer;
use docaxis_e2e::*;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
const XSS_SUBJECT: &str = "<script>document.title='pwned'</script> V/v <b>họp</b> & \"khẩn\"";
const PASSWORD: &str = "mật-khẩu-văn-thư-2026";

fn pdf() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/attachments/cong-van-7816-VPCP-TTDT.pdf")).unwrap()
}

/// `[notices]` and `[mail]` of a node whose clerks are `to`.
fn notices(to: &str, smtp_port: u16) -> String {
    format!(
        "[notices]\nto = [\"{to}\"]\n\n[mail]\nsmtp = \"127.0.0.1:{smtp_port}\"\nsecurity = \"none\"\n\
         from = \"DocAxis <docaxis@node.test>\"\ntimeout_secs = 5\nretry_initial_secs = 1\n\
         retry_max_secs = 2\n"
    )
}

fn node_with_notices(
    tmp: &std::path::Path,
    pki: &Pki,
    agency: &str,
    hub: &HubProc,
    to: &str,
    smtp_port: u16,
) -> NodeProc {
    let mut n = NodeProc::configure(
        &tmp.join(agency),
        pki,
        agency,
        agency,
        &hub.url(),
        &notices(to, smtp_port),
    );
    n.restart();
    n
}

fn add_user(node: &NodeProc, name: &str, full_name: &str, role: &str) {
    node.add_user(name, full_name, role, PASSWORD);
}

fn delivered_to_all(sender: &NodeProc, document_id: &str, n: usize) {
    wait_for("delivery to every recipient", WAIT, || {
        let t = sender.track(document_id);
        let r = t["recipients"].as_array()?;
        (r.len() == n && r.iter().all(|r| !r["delivered_at"].is_null())).then_some(())
    });
}

fn mails_to<'a>(
    mails: &'a [docaxis_e2e::smtp::ReceivedMail],
    to: &str,
) -> Vec<&'a docaxis_e2e::smtp::ReceivedMail> {
    mails.iter().filter(|m| m.to.contains(to)).collect()
}

#[test]
fn clerks_are_mailed_arrivals_and_rejections_exactly_once_even_across_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let smtp_port = free_port();
    let mut smtp = SmtpServer::new(&tmp.path().join("smtp"), smtp_port);
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = node_with_notices(tmp.path(), &pki, G22, &hub, "van-thu@g22.test", smtp_port);
    let mut h41 = node_with_notices(tmp.path(), &pki, H41, &hub, "van-thu@h41.test", smtp_port);
    let h14 = node_with_notices(tmp.path(), &pki, H14, &hub, "van-thu@h14.test", smtp_port);

    let sent = g22.json(&[
        "send",
        "--to",
        H41,
        "--to",
        H14,
        "--subject",
        "Về việc phòng chống bão số 15",
        "--number",
        "901",
        "--notation",
        "VPCP-KTTH",
        "--priority",
        "3",
    ]);
    let doc = sent["document_id"].as_str().unwrap().to_string();
    delivered_to_all(&g22, &doc, 2);
    // The notices wait in the recipients' databases (no mail server yet); H41 is killed
    // with SIGKILL and restarted: its queued notice must neither vanish nor double.
    h41.kill();
    h41.restart();
    let out = h14.clerk(&[
        "status",
        "send",
        &doc,
        "--code",
        "02",
        "--reason",
        "Không thuộc thẩm quyền",
        "--staff",
        "Hoàng Thị Hoa",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for("the rejection back at the sender", WAIT, || {
        let t = g22.track(&doc);
        t["recipients"]
            .as_array()?
            .iter()
            .any(|r| r["business_state"] == "rejected")
            .then_some(())
    });

    smtp.start();
    let mails = wait_for("the three notices", WAIT, || {
        let m = smtp.mails();
        (m.len() >= 3).then_some(m)
    });
    // Sent once each: give a duplicate the time to show up.
    std::thread::sleep(Duration::from_secs(3));
    let mails = {
        let again = smtp.mails();
        assert_eq!(again.len(), mails.len(), "no notice is sent twice");
        again
    };
    assert_eq!(mails.len(), 3, "{mails:#?}");
    let packet = h41.inbox(&[])[0]["packet_id"].as_str().unwrap().to_string();
    for (to, node) in [("van-thu@h41.test", &h41), ("van-thu@h14.test", &h14)] {
        let m = mails_to(&mails, to);
        assert_eq!(m.len(), 1, "{to}: {m:#?}");
        let m = m[0];
        assert!(
            m.subject.contains("HỎA TỐC") && m.subject.contains("Văn bản đến"),
            "an urgent arrival says so: {}",
            m.subject
        );
        assert!(m.subject.contains("901/VPCP-KTTH"), "{}", m.subject);
        assert!(m.body.contains("Văn phòng Chính phủ"), "{}", m.body);
        assert!(
            m.body
                .contains(&format!("http://{}/inbox/{packet}", node.api_addr)),
            "the notice links to the document's page: {}",
            m.body
        );
    }
    let rejected = mails_to(&mails, "van-thu@g22.test");
    assert_eq!(rejected.len(), 1, "{mails:#?}");
    assert!(
        rejected[0].subject.contains("từ chối") && rejected[0].subject.contains("Cao Bằng"),
        "{}",
        rejected[0].subject
    );
    assert!(
        rejected[0].body.contains("Không thuộc thẩm quyền")
            && rejected[0].body.contains("Hoàng Thị Hoa"),
        "{}",
        rejected[0].body
    );
}

/// A request with this browser session's cookie (for what a page cannot show: downloads,
/// forged forms).
fn with_session(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    cookie: &str,
) -> reqwest::RequestBuilder {
    client
        .request(method, url)
        .header("Cookie", format!("docaxis_desk={cookie}"))
}

#[test]
fn a_clerk_reads_accepts_and_composes_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("DOCAXIS_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    add_user(&h41, "lan", "Nguyễn Thị Lan", "clerk");
    add_user(&h41, "luutru", "Phạm Văn Lưu", "records");

    // An urgent document with a PDF and a subject full of markup, from G22 to H41.
    let pdf_path = tmp.path().join("ke-hoach.pdf");
    std::fs::write(&pdf_path, pdf()).unwrap();
    let sent = g22.send(&[
        "--to",
        H41,
        "--subject",
        XSS_SUBJECT,
        "--number",
        "55",
        "--notation",
        "VPCP-HC",
        "--priority",
        "2",
        "--attach",
        s(&pdf_path),
    ]);
    let doc = sent["document_id"].as_str().unwrap().to_string();
    delivered_to_all(&g22, &doc, 1);
    let packet = h41.inbox(&[])[0]["packet_id"].as_str().unwrap().to_string();
    let web = format!("http://{}", h41.api_addr);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        for page in [
            "/inbox",
            "/compose",
            "/sent",
            "/users",
            &format!("/inbox/{packet}"),
        ] {
            b.goto(&format!("{web}{page}")).await;
            assert_eq!(b.path().await, "/login", "{page} requires a login");
        }
        b.screenshot(&shots.join("desk-0-login.png")).await;
        b.fill("#name", "lan").await;
        b.fill("#password", "not the password").await;
        b.click("button[type=submit]").await;
        assert!(
            b.text("[role=alert]").await.contains("không đúng"),
            "{}",
            b.source().await
        );

        b.fill("#name", "lan").await;
        b.fill("#password", PASSWORD).await;
        b.click("button[type=submit]").await;
        assert_eq!(b.path().await, "/inbox");
        let cookie = b.cookie("docaxis_desk").await.expect("a session cookie");
        // The inbox: urgent first and marked, new until opened; the subject is text.
        let row = format!("tr[data-packet='{packet}']");
        assert!(
            b.has(&format!("{row}.unread.urgent")).await,
            "{}",
            b.source().await
        );
        assert!(b.text(&row).await.contains("thượng khẩn"));
        assert!(
            b.text(&format!("{row} .subject"))
                .await
                .contains("<script>"),
            "markup is shown as text"
        );
        assert!(
            !b.has("tbody script, tbody b").await,
            "no markup was injected"
        );
        assert_eq!(
            b.client.title().await.unwrap(),
            "Văn bản đến · Văn thư điện tử"
        );
        b.screenshot(&shots.join("desk-1-inbox.png")).await;

        // Filters: another sender shows nothing, the right one shows it.
        b.goto(&format!("{web}/inbox?from={H41}")).await;
        assert!(!b.has(&row).await);
        b.goto(&format!("{web}/inbox?from={G22}&priority=2")).await;
        assert!(b.has(&row).await);

        // The document: metadata, a valid signature by G22, the PDF, only 03 and 02 offered.
        b.click(&format!("{row} a")).await;
        assert_eq!(b.path().await, format!("/inbox/{packet}"));
        assert_eq!(b.text("#code").await, "55/VPCP-HC");
        assert!(b.text("#subject").await.contains("<b>họp</b>"));
        let sig = b.text("#signature").await;
        assert!(sig.contains("hợp lệ") && sig.contains(G22), "{sig}");
        assert!(b.has("iframe.pdf").await, "the PDF is shown in the page");
        let offered = b.texts("#actions form.action button").await;
        assert_eq!(offered.len(), 2, "{offered:?}");
        assert!(offered[0].starts_with("Tiếp nhận") && offered[1].starts_with("Từ chối"));
        b.screenshot(&shots.join("desk-2-document.png")).await;
        // The PDF downloads as the exact bytes that were sent.
        let file = with_session(
            &http,
            reqwest::Method::GET,
            &format!("{web}/inbox/{packet}/files/0"),
            &cookie,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(file.status(), 200);
        assert_eq!(file.headers()["content-type"], "application/pdf");
        assert!(
            file.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment"),
        );
        assert_eq!(file.bytes().await.unwrap().to_vec(), pdf());

        // A forged form (no CSRF token) is refused and changes nothing.
        let forged = with_session(
            &http,
            reqwest::Method::POST,
            &format!("{web}/inbox/{packet}/status"),
            &cookie,
        )
        .form(&[("code", "03"), ("csrf", "0000")])
        .send()
        .await
        .unwrap();
        assert_eq!(forged.status(), 403);
        assert_eq!(h41.inbox(&[])[0]["business_state"], "new");
        // Another agency's packet (what G22 sent is not in H41's inbox as such) is not found.
        let other = g22.outbox(&["--kind", "status"]);
        let foreign = other
            .first()
            .map(|p| p["packet_id"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "ab".repeat(32));
        b.goto(&format!("{web}/inbox/{foreign}")).await;
        assert!(b.source().await.contains("Không tìm thấy"));

        // Accept (03): the rule now offers 04, not 03; the sender sees it.
        b.goto(&format!("{web}/inbox/{packet}")).await;
        b.click("#do-03").await;
        assert!(b.text("[role=status]").await.contains("03"));
        assert_eq!(b.text("#state").await, "đã tiếp nhận");
        let offered = b.texts("#actions form.action button").await;
        assert!(
            offered.iter().any(|o| o.starts_with("Phân công"))
                && !offered.iter().any(|o| o.starts_with("Tiếp nhận")),
            "{offered:?}"
        );
        b.screenshot(&shots.join("desk-3-accepted.png")).await;
        wait_for("03 at the sender", WAIT, || {
            let t = g22.track(&doc);
            (t["recipients"][0]["business_state"] == "accepted").then_some(())
        });
        let status_packet = g22.track(&doc)["recipients"][0]["last_status"]["staff"].clone();
        assert_eq!(
            status_packet,
            json!("Nguyễn Thị Lan, Văn thư"),
            "the logged-in person signs the status"
        );
        // Opened: no longer highlighted.
        b.goto(&format!("{web}/inbox")).await;
        assert!(!b.has(&format!("{row}.unread")).await);

        // Compose a document with a PDF to G22, through the form's named fields.
        b.goto(&format!("{web}/compose?q=chinh phu")).await;
        b.press(&format!("input[name=to][value='{G22}']")).await;
        b.fill("input[name=subject]", "V/v báo cáo kết quả tiếp nhận")
            .await;
        b.fill("input[name=number]", "12").await;
        b.fill("input[name=notation]", "UBND-VP").await;
        b.fill("textarea[name=content]", "Kính gửi Văn phòng Chính phủ.")
            .await;
        b.upload("input[name=attachment]", &pdf_path).await;
        b.screenshot(&shots.join("desk-4-compose.png")).await;
        b.click("#send").await;
        assert_eq!(b.path().await, "/sent/document", "{}", b.source().await);
        assert!(b.text("#subject").await.contains("báo cáo kết quả"));
        assert!(b.text("#overall").await.contains("0/1 đã tiếp nhận"));
        b.screenshot(&shots.join("desk-5-sent.png")).await;
        // Revoke it from its page: a request signed and queued, listed with its answers.
        b.fill(
            "#requests form:nth-of-type(1) input[name=reason]",
            "Gửi nhầm",
        )
        .await;
        b.click("#requests form:nth-of-type(1) button").await;
        assert!(
            b.text("[role=status]").await.contains("thu hồi"),
            "{}",
            b.source().await
        );
        assert!(b.source().await.contains("Các yêu cầu đã gửi"));
        b.close().await;

        // A records account reads but cannot send.
        let r = Browser::start().await;
        r.goto(&format!("{web}/login")).await;
        r.fill("#name", "luutru").await;
        r.fill("#password", PASSWORD).await;
        r.click("button[type=submit]").await;
        assert_eq!(r.path().await, "/inbox");
        assert!(!r.has("nav a[href='/compose']").await);
        r.goto(&format!("{web}/inbox/{packet}")).await;
        assert!(
            !r.has("#actions").await,
            "no actions are offered to records"
        );
        let csrf = r
            .attr("form.logout input[name=csrf]", "value")
            .await
            .unwrap();
        let cookie = r.cookie("docaxis_desk").await.unwrap();
        let refused = with_session(
            &http,
            reqwest::Method::POST,
            &format!("{web}/inbox/{packet}/status"),
            &cookie,
        )
        .header("Origin", &web)
        .form(&[("code", "04"), ("csrf", csrf.as_str()), ("assignee", "X")])
        .send()
        .await
        .unwrap();
        assert_eq!(refused.status(), 403);
        // … and downloads the document's archive package from its page.
        let href = r.attr("a#archive", "href").await.expect("an archive link");
        assert_eq!(href, format!("/archive/{packet}"));
        let package = with_session(
            &http,
            reqwest::Method::GET,
            &format!("{web}{href}"),
            &cookie,
        )
        .send()
        .await
        .unwrap();
        assert_eq!(package.status(), 200);
        assert_eq!(
            package.headers()["content-type"],
            "application/vnd.etsi.asic-e+zip"
        );
        assert!(
            package.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains(".asice"),
        );
        let bytes = package.bytes().await.unwrap();
        assert_eq!(&bytes[30..38], b"mimetype");
        // Without a session: the login page, not the package.
        let anonymous = http.get(format!("{web}{href}")).send().await.unwrap();
        assert!(
            anonymous.status().is_redirection(),
            "{}",
            anonymous.status()
        );
        assert_eq!(anonymous.headers()["location"], "/login");
        r.goto(&format!("{web}/compose")).await;
        assert!(r.source().await.contains("Không có quyền"));
        r.close().await;
    });
    assert_eq!(h41.inbox(&[])[0]["business_state"], "accepted");

    // G22 holds the composed document with a valid signature, the PDF and Lan in StaffInfo.
    let item = wait_for("the composed document at G22", WAIT, || {
        g22.inbox(&[])
            .into_iter()
            .find(|i| i["subject"] == "V/v báo cáo kết quả tiếp nhận" && i["action"].is_null())
    });
    let id = item["packet_id"].as_str().unwrap();
    let detail = g22.json(&["inbox", "show", id]);
    assert_eq!(detail["signature"]["valid"], true, "{detail:#}");
    assert_eq!(detail["attachments"][0]["name"], "ke-hoach.pdf");
    assert_eq!(
        detail["attachments"][0]["size"].as_u64(),
        Some(pdf().len() as u64)
    );
    let (status, bytes) = http_get(
        &format!("http://{}/api/v1/inbox/{id}/packet", g22.api_addr),
        &g22.token(),
    );
    assert_eq!(status, 200);
    assert!(
        bytes.contains("Nguyễn Thị Lan"),
        "StaffInfo names the clerk"
    );

    // Wrong passwords lock the account for a while, even with the right one after.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        for _ in 0..5 {
            b.goto(&format!("{web}/login")).await;
            b.fill("#name", "lan").await;
            b.fill("#password", "wrong-wrong-wrong").await;
            b.click("button[type=submit]").await;
        }
        b.goto(&format!("{web}/login")).await;
        b.fill("#name", "lan").await;
        b.fill("#password", PASSWORD).await;
        b.click("button[type=submit]").await;
        assert_eq!(b.path().await, "/login");
        assert!(b.text("[role=alert]").await.contains("tạm khóa"));
        b.close().await;
    });
}

/// `web_listen` with `[tls]`: the pages (and the API) over HTTPS on a second listener, the
/// session cookie `Secure`, no plain HTTP there; the loopback clerk API and the CLI unchanged.
/// A non-loopback `web_listen` without `[tls]` is refused at start, naming the option.
#[test]
fn the_pages_are_served_over_https_on_the_web_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let port = free_port();
    // The hub's development certificate names 127.0.0.1: it serves as this listener's here.
    let mut h41 = NodeProc::configure(
        &tmp.path().join("h41"),
        &pki,
        H41,
        H41,
        &hub.url(),
        &format!(
            "web_listen = \"127.0.0.1:{port}\"\n[tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            s(&pki.dir.join("hub.pem")),
            s(&pki.dir.join("hub.key.pem"))
        ),
    );
    h41.restart();
    add_user(&h41, "lan", "Nguyễn Thị Lan", "clerk");
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = pki.https_client(true);
        let r = client
            .get(format!("https://127.0.0.1:{port}/login"))
            .send()
            .await
            .expect("the pages answer over TLS");
        assert_eq!(r.status().as_u16(), 200);
        let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(set_cookie.contains("Secure"), "{set_cookie}");
        let page = r.text().await.unwrap();
        assert!(page.contains("Đăng nhập"));
        // Logging in over HTTPS (HTTP/2: the host is in :authority, not in a Host header).
        let login_cookie = set_cookie.split(';').next().unwrap().to_string();
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap()
            .to_string();
        let no_redirect = pki.https_client(false);
        let r = no_redirect
            .post(format!("https://127.0.0.1:{port}/login"))
            .header("Cookie", login_cookie)
            .header("Origin", format!("https://127.0.0.1:{port}"))
            .form(&[
                ("name", "lan"),
                ("password", PASSWORD),
                ("csrf", csrf.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status().as_u16(), 303, "{:?}", r.text().await);
        let session = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(
            session.starts_with("docaxis_desk=") && session.contains("Secure"),
            "{session}"
        );
        let plain = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}/login"))
            .send()
            .await;
        assert!(
            plain.is_err() || !plain.unwrap().status().is_success(),
            "plain HTTP is not served on the web listener"
        );
    });
    let out = h41.clerk(&["node", "user", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Nguyễn Thị Lan"), "{}", stdout(&out));
    // Disabling from the CLI takes effect; the listing says so.
    let out = h41.clerk(&["node", "user", "disable", "lan"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("disabled"), "{}", stdout(&out));

    let bad = NodeProc::configure(
        &tmp.path().join("h14"),
        &pki,
        H14,
        H14,
        &hub.url(),
        "web_listen = \"0.0.0.0:0\"\n",
    );
    let out = docaxis()
        .args(["node", "--config", s(&bad.config)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("web_listen") && err.contains("[tls]"), "{err}");
}
