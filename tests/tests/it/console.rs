//! The operators' console (issue 12.2) in a real headless Chromium: login required, a wrong
//! token refused and then rate-limited, the session cookie HttpOnly and SameSite=Strict, a
//! subject containing markup shown as text, a suspension confirmed on the page taking effect
//! at the hub, a forged form (no CSRF token) refused without changing anything, and logout.
//! Screenshots of each page are left in the test's folder while it runs.

use std::time::Duration;

use docaxis_e2e::browser::Browser;
use docaxis_e2e::*;
use serde_json::Value;

const XSS_SUBJECT: &str =
    "<script>document.title='pwned'</script> V/v <b>kiểm tra</b> & \"trích yếu\"";

fn agency(hub: &HubProc, code: &str) -> Value {
    let (status, body) = hub.admin_get("/admin/agencies");
    assert_eq!(status, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    list.into_iter()
        .find(|a| a["code"] == code)
        .unwrap_or_else(|| panic!("{code} is registered"))
}

#[test]
fn operators_log_in_find_documents_and_suspend_an_agency_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    // DOCAXIS_SCREENSHOTS=DIR keeps the screenshots for a person to look at.
    let shots = std::env::var_os("DOCAXIS_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(
        &tmp.path().join("hub"),
        &pki,
        "[alerts]\ncheck_secs = 1\npending_after_secs = 2\n",
    );
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let sent = g22.send(&[
        "--to",
        H41,
        "--subject",
        XSS_SUBJECT,
        "--number",
        "15",
        "--notation",
        "VPCP-KT",
    ]);
    let doc = sent["document_id"].as_str().unwrap().to_string();
    wait_for("the document at the hub", Duration::from_secs(60), || {
        let (_, body) = hub.admin_get(&format!(
            "/admin/track?owner={G22}&document_id={}",
            doc.replace('/', "%2F").replace(',', "%2C")
        ));
        let v: Value = serde_json::from_str(&body).ok()?;
        (!v["packets"].as_array()?.is_empty()).then_some(())
    });
    let base = format!("http://{}", hub.admin_addr());
    let token = hub.admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();

    let b = rt.block_on(async {
        let b = Browser::start().await;
        // Every page asks for a login first.
        for page in ["/", "/agencies", "/search", "/alerts"] {
            b.goto(&format!("{base}{page}")).await;
            assert_eq!(b.path().await, "/login", "{page} requires a login");
        }
        b.screenshot(&shots.join("0-login.png")).await;
        // A wrong token is refused and opens nothing.
        b.fill("#token", "0000wrong").await;
        b.click("button[type=submit]").await;
        assert!(
            b.text("[role=alert]")
                .await
                .contains("Mã vận hành không đúng"),
            "{}",
            b.source().await
        );
        b.goto(&format!("{base}/agencies")).await;
        assert_eq!(b.path().await, "/login", "a wrong token opens no session");

        // The right one opens the overview.
        b.fill("#token", &token).await;
        b.click("button[type=submit]").await;
        assert_eq!(b.path().await, "/");
        assert!(b.text("h1").await.contains("Tổng quan"));
        assert_eq!(b.text("#docs-today").await, "1");
        assert_eq!(
            b.text("#pending").await,
            "1",
            "H41 has no node: its copy waits"
        );
        b.screenshot(&shots.join("1-overview.png")).await;
        let cookies = b.client.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|c| c.name() == "docaxis_console")
            .expect("a session cookie");
        assert_eq!(session.http_only(), Some(true));
        assert_eq!(
            session.same_site().map(|s| s.to_string()),
            Some("Strict".to_string())
        );

        // The three agencies.
        b.goto(&format!("{base}/agencies")).await;
        for code in [G22, H41, H14] {
            assert!(
                b.has(&format!("tr[data-agency='{code}']")).await,
                "{code} listed"
            );
        }
        b.screenshot(&shots.join("2-agencies.png")).await;

        // The document, found by its number; its subject is text, not markup.
        b.goto(&format!("{base}/search?q=15%2FVPCP-KT")).await;
        assert_eq!(b.text("#results .subject").await, XSS_SUBJECT);
        b.screenshot(&shots.join("3-search.png")).await;
        b.click("#results tbody a").await;
        assert_eq!(b.path().await, "/document");
        assert_eq!(b.text("#subject").await, XSS_SUBJECT);
        let title = b.client.title().await.unwrap();
        assert!(
            !title.contains("pwned"),
            "the subject's script did not run: {title}"
        );
        let scripts = b
            .client
            .execute(
                "return document.querySelectorAll('script, b').length",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            scripts,
            serde_json::json!(0),
            "no element came from the subject"
        );
        assert!(b.source().await.contains("&lt;script&gt;"));
        b.screenshot(&shots.join("4-document.png")).await;
        b
    });

    // A suspension, confirmed on the page, takes effect at the hub.
    assert_eq!(agency(&hub, H14)["active"], true);
    let session_cookie = rt.block_on(async {
        b.goto(&format!("{base}/agencies")).await;
        b.click(&format!("tr[data-agency='{H14}'] a.button")).await;
        assert_eq!(b.path().await, format!("/agencies/{H14}/suspend"));
        assert!(b.text("main").await.contains("UBND Tỉnh Cao Bằng"));
        b.screenshot(&shots.join("5-confirm.png")).await;
        b.click("#confirm").await;
        assert_eq!(b.path().await, "/agencies");
        assert!(
            b.text(&format!("tr[data-agency='{H14}']"))
                .await
                .contains("Tạm dừng")
        );
        b.screenshot(&shots.join("6-suspended.png")).await;
        b.cookie("docaxis_console").await.expect("session cookie")
    });
    assert_eq!(
        agency(&hub, H14)["active"],
        false,
        "the hub's directory changed"
    );
    let refused = g22.send(&[
        "--to",
        H41,
        "--to",
        H14,
        "--subject",
        "Gửi cả cơ quan tạm dừng",
        "--number",
        "16",
        "--notation",
        "VPCP-KT",
    ]);
    let refused_doc = refused["document_id"].as_str().unwrap().to_string();
    wait_for(
        "the hub refusing the suspended recipient",
        Duration::from_secs(60),
        || {
            let (_, body) = hub.admin_get(&format!(
                "/admin/track?owner={G22}&document_id={}",
                refused_doc.replace('/', "%2F").replace(',', "%2C")
            ));
            let v: Value = serde_json::from_str(&body).ok()?;
            let h14 = v["recipients"]
                .as_array()?
                .iter()
                .find(|r| r["recipient"] == H14)?
                .clone();
            (h14["delivery"] == "refused").then_some(())
        },
    );

    // A forged form, with the session cookie but without the CSRF token, changes nothing.
    let forged = rt.block_on(async {
        reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{base}/agencies/{G22}/suspend"))
            .header("Cookie", format!("docaxis_console={session_cookie}"))
            .form(&[("csrf", "forged")])
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(forged, 403);
    assert_eq!(
        agency(&hub, G22)["active"],
        true,
        "the forged form changed nothing"
    );

    rt.block_on(async {
        // Resume again through the page, then log out.
        b.goto(&format!("{base}/agencies/{H14}/resume")).await;
        b.click("#confirm").await;
        b.click("form.logout button").await;
        assert_eq!(b.path().await, "/login");
        b.goto(&format!("{base}/")).await;
        assert_eq!(b.path().await, "/login", "the session ended at logout");

        // Wrong tokens are rate-limited: after five, even the right one waits.
        for _ in 0..5 {
            b.fill("#token", "0000wrong").await;
            b.click("button[type=submit]").await;
        }
        b.fill("#token", &token).await;
        b.click("button[type=submit]").await;
        assert_eq!(b.path().await, "/login");
        assert!(
            b.text("[role=alert]").await.contains("quá nhiều lần"),
            "{}",
            b.source().await
        );
        b.screenshot(&shots.join("7-rate-limited.png")).await;
        b.close().await;
    });
    assert_eq!(agency(&hub, H14)["active"], true);
    let _ = (hub, g22);
}

/// With `[admin_tls]` the console and the admin API speak HTTPS only (the certificate is the
/// configured one), the session cookie is `Secure`, and the hub CLI still reaches the running
/// hub through it.
#[test]
fn the_admin_listener_serves_https_when_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(
        &tmp.path().join("hub"),
        &pki,
        &format!(
            "[admin_tls]\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            s(&pki.dir.join("hub.pem")),
            s(&pki.dir.join("hub.key.pem"))
        ),
    );
    let port = hub.admin_addr().port();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = pki.https_client(true);
        let r = client
            .get(format!("https://127.0.0.1:{port}/login"))
            .send()
            .await
            .expect("the console answers over TLS");
        assert_eq!(r.status().as_u16(), 200);
        let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
        assert!(set_cookie.contains("Secure"), "{set_cookie}");
        assert!(r.text().await.unwrap().contains("Đăng nhập"));
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
            "plain HTTP is not served"
        );
    });
    // The CLI talks to the running hub over the same TLS listener.
    let out = hub.admin(&["agency", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(G22), "{}", stdout(&out));
    assert!(!hub.log().contains("database is locked"), "{}", hub.log());
}
