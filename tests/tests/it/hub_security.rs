//! The hub as a hostile-input boundary, tested against the real `docaxis hub` process over real
//! mutual TLS: who may connect, who may send what, who may see what, and that every refusal
//! names its reason and changes nothing.

use docaxis_e2e::*;
use reqwest::StatusCode;
use serde_json::Value;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn submit(client: &reqwest::Client, hub: &HubProc, body: Vec<u8>) -> (StatusCode, String) {
    let r = client
        .post(format!("{}/v1/packets", hub.url()))
        .header("content-type", "application/xml")
        .body(body)
        .send()
        .await
        .expect("hub answers");
    let status = r.status();
    (status, r.text().await.unwrap_or_default())
}

fn error_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .map(|v| v["code"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

#[test]
fn sender_binding_visibility_routing_limits_and_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "max_packet_bytes = 200000");
    rt().block_on(async {
        let g22 = pki.client_as(G22);
        let h41 = pki.client_as(H41);
        let h14 = pki.client_as(H14);

        // G22's certificate submitting a packet that says From H41 (signed by H41): refused.
        let forged = pki.sign_as(H41, &unsigned_document(H41, &[G22], "1", None));
        let (status, body) = submit(&g22, &hub, forged).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(error_code(&body), "client_not_sender", "{body}");
        assert!(body.contains(G22) && body.contains(H41), "the reason names both agencies: {body}");

        // G22 signing a packet that claims From H41, sent over G22's own connection: refused.
        let wrong_signer = pki.sign_as(G22, &unsigned_document(H41, &[H14], "2", None));
        let (status, body) = submit(&g22, &hub, wrong_signer).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(error_code(&body), "signer_not_registered", "{body}");

        // Unsigned and tampered packets: refused by the signature check.
        let (status, body) = submit(&g22, &hub, unsigned_document(G22, &[H41], "3", None)).await;
        assert_eq!((status, error_code(&body).as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "signature"), "{body}");
        let signed = pki.sign_as(G22, &unsigned_document(G22, &[H41], "4", None));
        let tampered = String::from_utf8(signed.clone()).unwrap().replace("thử nghiệm", "thu nghiem");
        let (status, body) = submit(&g22, &hub, tampered.into_bytes()).await;
        assert_eq!((status, error_code(&body).as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "signature"), "{body}");
        assert!(body.contains("modified after it was signed"), "{body}");

        // A DTD: refused as malformed, whatever else it says.
        let dtd = b"<?xml version=\"1.0\"?><!DOCTYPE edXML [<!ENTITY x \"y\">]><edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"/>".to_vec();
        let (status, body) = submit(&g22, &hub, dtd).await;
        assert_eq!((status, error_code(&body).as_str()), (StatusCode::BAD_REQUEST, "malformed"), "{body}");

        // A legacy field packet (placeholder signature, non-strict form): refused with the reason.
        let legacy = std::fs::read(repo_root().join("examples/conformance/document_new.edxml")).unwrap();
        let (status, body) = submit(&g22, &hub, legacy).await;
        assert!(status.is_client_error(), "{status} {body}");

        // Oversized: 413 before the hub reads it all.
        let big = pki.sign_as(G22, &unsigned_document(G22, &[H41], "5", Some(&vec![7u8; 300_000])));
        let (status, _) = submit(&g22, &hub, big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

        // A good packet to H41 and an unknown agency: accepted for H41, X99 refused in the receipt.
        let good = pki.sign_as(G22, &unsigned_document(G22, &[H41, "000.00.00.X99"], "6", Some(b"%PDF-1.4 test")));
        let (status, receipt) = submit(&g22, &hub, good.clone()).await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        let parsed = dsig::receipt::HubReceipt::parse(receipt.as_bytes()).unwrap();
        assert_eq!(parsed.accepted, vec![H41.to_string()]);
        assert_eq!(parsed.refused.len(), 1);
        assert_eq!(parsed.refused[0].code, "000.00.00.X99");
        assert!(parsed.refused[0].reason.contains("not a registered agency"));
        let hub_der = dsig::pki::load_cert_pem(&pki.dir.join("hub.pem")).unwrap();
        let heads = dsig::batch::HeadCache::default();
        let checked = dsig::batch::verify_receipt(receipt.as_bytes(), hub_der.as_ref(), &heads)
            .expect("receipt signed by the hub");
        assert_eq!(checked, parsed);
        assert!(receipt.contains("<Batch>"), "the hub signs receipts in batches: {receipt}");
        let id = parsed.packet_id.clone();

        // Only unknown recipients: refused.
        let nowhere = pki.sign_as(G22, &unsigned_document(G22, &["000.00.00.X98"], "7", None));
        let (status, body) = submit(&g22, &hub, nowhere).await;
        assert_eq!((status, error_code(&body).as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "no_recipient"), "{body}");

        // The same bytes again: the original receipt, byte for byte.
        let (status, again) = submit(&g22, &hub, good.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(again, receipt, "resubmission returns the first receipt");
        // Another packet with the same (From, DocumentId, BussinessDocType): 409.
        let clash = pki.sign_as(G22, &unsigned_document(G22, &[H41], "6", None));
        let (status, body) = submit(&g22, &hub, clash).await;
        assert_eq!((status, error_code(&body).as_str()), (StatusCode::CONFLICT, "duplicate_business_key"), "{body}");

        // Visibility: H14 sees nothing of it, cannot fetch it, cannot acknowledge it.
        let list: Value = h14.get(format!("{}/v1/inbox?wait=0", hub.url())).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
        let r = h14.get(format!("{}/v1/packets/{id}", hub.url())).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let unknown = "0".repeat(64);
        let r2 = h14.get(format!("{}/v1/packets/{unknown}", hub.url())).send().await.unwrap();
        assert_eq!(r2.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.text().await.unwrap(), r2.text().await.unwrap(), "someone else's packet looks exactly like a missing one");
        let acked: Value = h14.post(format!("{}/v1/acks", hub.url())).json(&serde_json::json!({"packet_ids": [id]})).send().await.unwrap().json().await.unwrap();
        assert_eq!(acked["acked"].as_array().unwrap().len(), 0, "{acked}");

        // H41 sees it, fetches the exact signed bytes, acknowledges, gets a delivery receipt.
        let list: Value = h41.get(format!("{}/v1/inbox?wait=0", hub.url())).send().await.unwrap().json().await.unwrap();
        assert_eq!(list["items"][0]["packet_id"], id.as_str());
        let bytes = h41.get(format!("{}/v1/packets/{id}", hub.url())).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(bytes.as_ref(), good.as_slice(), "the hub forwards the signed bytes unchanged");
        let acked: Value = h41.post(format!("{}/v1/acks", hub.url())).json(&serde_json::json!({"packet_ids": [id]})).send().await.unwrap().json().await.unwrap();
        let delivery = acked["acked"][0]["receipt"].as_str().unwrap();
        let d = dsig::batch::verify_receipt(delivery.as_bytes(), hub_der.as_ref(), &heads)
            .expect("delivery receipt signed by the hub");
        assert_eq!(d.delivered_to.as_deref(), Some(H41));
        // And G22 collects that delivery receipt; H14 does not see it.
        let theirs: Value = h14.get(format!("{}/v1/receipts?wait=0", hub.url())).send().await.unwrap().json().await.unwrap();
        assert_eq!(theirs["items"].as_array().unwrap().len(), 0);
        let ours: Value = g22.get(format!("{}/v1/receipts?wait=0", hub.url())).send().await.unwrap().json().await.unwrap();
        assert_eq!(ours["items"][0]["recipient"], H41);
    });
}

#[test]
fn expired_revoked_foreign_and_suspended_clients_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    // An expired certificate for a fourth agency, and a revoked one for H14.
    run_ok(&[
        "pki",
        "issue",
        "--dir",
        s(&pki.dir),
        "--code",
        "000.00.00.H49",
        "--name",
        "UBND Tỉnh Quảng Ninh",
        "--valid-from",
        "2020-01-01T00:00:00Z",
        "--valid-until",
        "2021-01-01T00:00:00Z",
    ]);
    run_ok(&["pki", "revoke", "--dir", s(&pki.dir), "--code", H14]);
    let foreign = Pki::init(&tmp.path().join("foreign"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    rt().block_on(async {
        let url = format!("{}/v1/inbox?wait=0", hub.url());
        let ok = pki.client_as(H41).get(&url).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        for (who, client) in [
            ("expired", pki.client_as("000.00.00.H49")),
            ("revoked", pki.client_as(H14)),
            (
                "foreign CA",
                pki.client_with(&foreign.cert(G22), &foreign.key(G22)),
            ),
        ] {
            let r = client.get(&url).send().await;
            assert!(
                r.is_err(),
                "{who} client certificate must be refused at the TLS handshake, got {:?}",
                r.map(|r| r.status())
            );
        }
    });
    // Suspension takes effect at once on the running hub.
    let out = hub.admin(&["agency", "suspend", "--code", H41]);
    assert!(out.status.success(), "{}", stderr(&out));
    rt().block_on(async {
        let r = pki
            .client_as(H41)
            .get(format!("{}/v1/inbox?wait=0", hub.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.text().await.unwrap().contains("suspended"));
    });
}
