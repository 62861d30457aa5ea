//! The agency node against a hub, over real mutual TLS with the committed development PKI
//! (`certs/`): submitting with receipts, retrying through hub outages, permanent refusals,
//! pulling and verifying packets, status 01, delivery receipts, duplicates and forgeries, and
//! the document lifecycle (business statuses 02–06, take-back 13/15/16).
//!
//! The hub here is a SMALL FAKE written for the node's own tests (a test double): it keeps
//! everything in memory, implements just enough of `exchange::protocol` v1 for a node
//! (submit, inbox long poll, fetch, acks, receipts, receipt acks), signs its receipts with
//! `certs/hub.key.pem` through `dsig::sign_root`, and can be told to fail (503), to refuse a
//! document (409), or to queue arbitrary bytes for a recipient. It does NOT verify what it is
//! given (that is exactly what lets it hand a forged packet to a node). The real hub is
//! exercised end to end by the e2e tests.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use docaxis_node::client::{ApiClient, ClientError, InboxParams};
use docaxis_node::db::{Anomaly, InboxFilter, NodeDb, OutboxState};
use docaxis_node::outgoing::{SendDocument, compose_document, sign};
use docaxis_node::views::{StatusRequest, TrackView};
use docaxis_node::{NodeConfig, RunningNode, start};
use dsig::receipt::{HubReceipt, ReceiptKind, RefusedRecipient};
use dsig::{SigningIdentity, sign_root};
use edxml::{AgencyCode, Organization, Packet, ReadOptions, read};
use exchange::packet_id::PacketId;
use exchange::protocol::{
    AckRequest, AckResponse, AckedPacket, ErrorBody, ErrorCode, PendingItem, PendingList,
    ReceiptAckRequest, ReceiptItem, ReceiptList,
};
use net::peer::PeerIdentity;
use net::serve::{HttpServer, ServeOptions, serve_tls};
use net::tls;
use serde::Deserialize;
use time::OffsetDateTime;

const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const H14: &str = "000.00.00.H14";

fn certs() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs"))
}

// ---------------------------------------------------------------------------------------------
// The fake hub.

struct Stored {
    bytes: Vec<u8>,
    from: String,
    kind: &'static str,
    document_id: String,
    recipients: Vec<String>,
    receipt: String,
}

#[derive(Default)]
struct HubState {
    packets: HashMap<String, Stored>,
    /// Pending packet ids per recipient (what `GET /v1/inbox` lists).
    queues: HashMap<String, Vec<String>>,
    /// Delivery receipts by (packet, recipient).
    delivered: HashMap<(String, String), String>,
    /// Receipts waiting for each sender: (seq, packet, recipient).
    for_senders: HashMap<String, Vec<(u64, String, String)>>,
    seq: u64,
    /// Answer the next N submissions with 503.
    fail_next: usize,
    /// Refuse these document ids with 409.
    refuse: HashSet<String>,
    /// Every submission received (packet ids), including failed ones.
    submissions: Vec<String>,
    /// Every acknowledgement received (packet ids).
    acks: Vec<String>,
    /// Text listed inline with a pending packet (as the real hub does for small packets;
    /// here only for the packets given one, and it may differ from the packet).
    inline: HashMap<String, String>,
    /// Every `GET /v1/packets/{id}` received (packet ids).
    fetches: Vec<String>,
}

#[derive(Clone)]
struct FakeHub {
    state: Arc<Mutex<HubState>>,
    identity: Arc<SigningIdentity>,
}

fn error(status: StatusCode, code: ErrorCode, message: &str) -> Response {
    (
        status,
        Json(ErrorBody {
            code,
            message: message.to_string(),
        }),
    )
        .into_response()
}

fn caller(peer: &PeerIdentity) -> String {
    peer.agency_code.clone().unwrap_or_default()
}

impl FakeHub {
    fn new() -> FakeHub {
        let identity =
            SigningIdentity::from_pem_files(&certs().join("hub.key.pem"), &certs().join("hub.pem"))
                .unwrap();
        FakeHub {
            state: Arc::new(Mutex::new(HubState::default())),
            identity: Arc::new(identity),
        }
    }

    async fn serve(&self) -> HttpServer {
        self.serve_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn serve_on(&self, addr: SocketAddr) -> HttpServer {
        let config = tls::server_config(
            &certs().join("hub.pem"),
            &certs().join("hub.key.pem"),
            &[certs().join("ca.pem")],
            &[certs().join("crl.pem")],
        )
        .unwrap();
        let router = Router::new()
            .route("/v1/packets", post(submit))
            .route("/v1/packets/{id}", get(fetch))
            .route("/v1/inbox", get(inbox))
            .route("/v1/acks", post(acks))
            .route("/v1/receipts", get(receipts))
            .route("/v1/receipts/ack", post(receipts_ack))
            .with_state(self.clone());
        serve_tls(addr, config, router, ServeOptions::default())
            .await
            .unwrap()
    }

    async fn signed(&self, receipt: HubReceipt) -> String {
        let id = self.identity.clone();
        tokio::task::spawn_blocking(move || {
            String::from_utf8(sign_root(&receipt.to_xml(), &id).unwrap()).unwrap()
        })
        .await
        .unwrap()
    }

    /// Queues arbitrary bytes for `recipient`, as if the hub had accepted them.
    fn inject(&self, recipient: &str, bytes: Vec<u8>, from: &str) -> String {
        let id = PacketId::of(&bytes).to_hex();
        let mut s = self.state.lock().unwrap();
        s.packets.insert(
            id.clone(),
            Stored {
                bytes,
                from: from.into(),
                kind: "document",
                document_id: "injected".into(),
                recipients: vec![recipient.into()],
                receipt: String::new(),
            },
        );
        s.queues
            .entry(recipient.into())
            .or_default()
            .push(id.clone());
        id
    }

    /// Lists a packet for `recipient` again, as after an acknowledgement the hub lost.
    fn requeue(&self, recipient: &str, id: &str) {
        let mut s = self.state.lock().unwrap();
        s.queues
            .entry(recipient.into())
            .or_default()
            .push(id.to_string());
    }

    fn pending_for(&self, recipient: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.queues.get(recipient).cloned().unwrap_or_default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut HubState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

async fn submit(State(hub): State<FakeHub>, peer: PeerIdentity, body: Bytes) -> Response {
    let id = PacketId::of(&body).to_hex();
    {
        let mut s = hub.state.lock().unwrap();
        s.submissions.push(id.clone());
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Internal,
                "the hub is restarting; retry later",
            );
        }
        if let Some(p) = s.packets.get(&id) {
            return xml(p.receipt.clone());
        }
    }
    let Ok(outcome) = read(&body, &ReadOptions::default()) else {
        return error(StatusCode::BAD_REQUEST, ErrorCode::Malformed, "not edXML");
    };
    let packet = outcome.packet;
    let from = packet.from().organ_id.to_string();
    if from != caller(&peer) {
        return error(
            StatusCode::FORBIDDEN,
            ErrorCode::ClientNotSender,
            "the client is not the sender",
        );
    }
    let document_id = packet.document_id().to_string();
    if hub.state.lock().unwrap().refuse.contains(&document_id) {
        return error(
            StatusCode::CONFLICT,
            ErrorCode::DuplicateBusinessKey,
            &format!("a different packet already uses document id {document_id:?}"),
        );
    }
    let to: Vec<String> = packet.to().iter().map(|c| c.to_string()).collect();
    let (accepted, refused): (Vec<String>, Vec<String>) =
        to.into_iter().partition(|c| c != "000.00.00.X99");
    let kind = match packet {
        Packet::Document(_) => "document",
        Packet::Status(_) => "status",
    };
    let receipt = hub
        .signed(HubReceipt {
            kind: ReceiptKind::Submission,
            packet_id: id.clone(),
            packet_kind: kind.into(),
            from: from.clone(),
            document_id: document_id.clone(),
            hub_time: OffsetDateTime::now_utc(),
            accepted: accepted.clone(),
            refused: refused
                .iter()
                .map(|c| RefusedRecipient {
                    code: c.clone(),
                    reason: "not a registered agency".into(),
                })
                .collect(),
            delivered_to: None,
        })
        .await;
    let mut s = hub.state.lock().unwrap();
    for r in &accepted {
        s.queues.entry(r.clone()).or_default().push(id.clone());
    }
    s.packets.insert(
        id,
        Stored {
            bytes: body.to_vec(),
            from,
            kind,
            document_id,
            recipients: accepted,
            receipt: receipt.clone(),
        },
    );
    xml(receipt)
}

fn xml(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml")], text).into_response()
}

#[derive(Deserialize)]
struct Wait {
    wait: Option<u64>,
    limit: Option<usize>,
}

/// Long poll: answers as soon as `f` finds something, or after `wait` seconds.
async fn long_poll<T>(wait: Option<u64>, mut f: impl FnMut() -> Vec<T>) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait.unwrap_or(0).min(5));
    loop {
        let found = f();
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn inbox(State(hub): State<FakeHub>, peer: PeerIdentity, Query(q): Query<Wait>) -> Response {
    let me = caller(&peer);
    let items = long_poll(q.wait, || {
        let s = hub.state.lock().unwrap();
        s.queues
            .get(&me)
            .into_iter()
            .flatten()
            .take(q.limit.unwrap_or(100))
            .filter_map(|id| {
                s.packets.get(id).map(|p| PendingItem {
                    packet_id: id.clone(),
                    from: p.from.clone(),
                    kind: exchange::protocol::PacketKind::parse(p.kind).unwrap(),
                    priority: 0,
                    size: p.bytes.len() as u64,
                    queued_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                    packet: s.inline.get(id).cloned(),
                })
            })
            .collect()
    })
    .await;
    Json(PendingList { items }).into_response()
}

async fn fetch(
    State(hub): State<FakeHub>,
    peer: PeerIdentity,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let me = caller(&peer);
    let mut s = hub.state.lock().unwrap();
    s.fetches.push(id.clone());
    match s.packets.get(&id) {
        Some(p) if p.recipients.contains(&me) => {
            ([(header::CONTENT_TYPE, "application/xml")], p.bytes.clone()).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such packet"),
    }
}

async fn acks(
    State(hub): State<FakeHub>,
    peer: PeerIdentity,
    Json(req): Json<AckRequest>,
) -> Response {
    let me = caller(&peer);
    let mut acked = Vec::new();
    for id in req.packet_ids {
        let (known, existing, sender, document_id, kind) = {
            let mut s = hub.state.lock().unwrap();
            s.acks.push(id.clone());
            match s.packets.get(&id) {
                Some(p) if p.recipients.contains(&me) => {
                    let (from, doc, kind) = (p.from.clone(), p.document_id.clone(), p.kind);
                    if let Some(q) = s.queues.get_mut(&me) {
                        q.retain(|x| x != &id);
                    }
                    let existing = s.delivered.get(&(id.clone(), me.clone())).cloned();
                    (true, existing, from, doc, kind)
                }
                _ => (false, None, String::new(), String::new(), ""),
            }
        };
        if !known {
            continue;
        }
        let receipt = match existing {
            Some(r) => r,
            None => {
                let r = hub
                    .signed(HubReceipt {
                        kind: ReceiptKind::Delivery,
                        packet_id: id.clone(),
                        packet_kind: kind.into(),
                        from: sender.clone(),
                        document_id,
                        hub_time: OffsetDateTime::now_utc(),
                        accepted: vec![],
                        refused: vec![],
                        delivered_to: Some(me.clone()),
                    })
                    .await;
                let mut s = hub.state.lock().unwrap();
                s.delivered.insert((id.clone(), me.clone()), r.clone());
                s.seq += 1;
                let seq = s.seq;
                s.for_senders
                    .entry(sender)
                    .or_default()
                    .push((seq, id.clone(), me.clone()));
                r
            }
        };
        acked.push(AckedPacket {
            packet_id: id,
            receipt,
            submission_receipt: None,
        });
    }
    Json(AckResponse { acked }).into_response()
}

async fn receipts(
    State(hub): State<FakeHub>,
    peer: PeerIdentity,
    Query(q): Query<Wait>,
) -> Response {
    let me = caller(&peer);
    let items = long_poll(q.wait, || {
        let s = hub.state.lock().unwrap();
        s.for_senders
            .get(&me)
            .into_iter()
            .flatten()
            .filter_map(|(seq, id, recipient)| {
                s.delivered
                    .get(&(id.clone(), recipient.clone()))
                    .map(|r| ReceiptItem {
                        seq: *seq,
                        packet_id: id.clone(),
                        recipient: recipient.clone(),
                        receipt: r.clone(),
                    })
            })
            .collect()
    })
    .await;
    Json(ReceiptList { items }).into_response()
}

async fn receipts_ack(
    State(hub): State<FakeHub>,
    peer: PeerIdentity,
    Json(req): Json<ReceiptAckRequest>,
) -> Response {
    let me = caller(&peer);
    let mut s = hub.state.lock().unwrap();
    if let Some(list) = s.for_senders.get_mut(&me) {
        list.retain(|(seq, _, _)| !req.seqs.contains(seq));
    }
    StatusCode::NO_CONTENT.into_response()
}

// ---------------------------------------------------------------------------------------------
// Nodes and helpers.

fn node_config_text(data: &Path, agency: &str, hub: SocketAddr) -> String {
    let certs = certs();
    format!(
        r#"
        agency = "{agency}"
        hub_url = "https://127.0.0.1:{port}"
        data_dir = "{data}"
        certificate = "{certs}/agencies/{agency}.pem"
        private_key = "{certs}/agencies/{agency}.key.pem"
        trust = ["{certs}/ca.pem"]
        crl = ["{certs}/crl.pem"]
        hub_certificate = "{certs}/hub.pem"
        api_listen = "127.0.0.1:0"
        poll_wait_secs = 1
        [retry]
        initial_ms = 20
        max_ms = 200
        give_up_after_secs = 3600
        "#,
        port = hub.port(),
        data = data.display(),
        certs = certs.display(),
    )
}

fn node_config(data: &Path, agency: &str, hub: SocketAddr) -> NodeConfig {
    NodeConfig::from_toml(
        &node_config_text(data, agency, hub),
        data,
        Path::new("test node.toml"),
    )
    .unwrap()
}

struct TestNode {
    running: RunningNode,
    client: ApiClient,
    _dir: tempfile::TempDir,
}

async fn start_node(agency: &str, hub: SocketAddr) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let running = start(node_config(dir.path(), agency, hub)).await.unwrap();
    let client = ApiClient::new(running.api_addr(), running.token().to_string()).unwrap();
    TestNode {
        running,
        client,
        _dir: dir,
    }
}

/// Waits up to 20 s for `check` to return `Some`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `id` is acknowledged to the hub and stored in `db`'s inbox.
async fn stored_and_acknowledged(what: &str, hub: &FakeHub, db: &NodeDb, id: &str) {
    eventually(what, || async {
        let acked = hub.with(|s| s.acks.iter().any(|a| a == id));
        let stored = db.has_inbox(id.parse().unwrap()).await.unwrap();
        (acked && stored).then_some(())
    })
    .await
}

/// Waits until `db` records an anomaly about `id`, and returns it.
async fn anomaly_about(what: &str, db: &NodeDb, id: &str) -> Anomaly {
    eventually(what, || async {
        db.anomalies(10)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.subject == id)
    })
    .await
}

fn document_request(number: &str) -> serde_json::Value {
    serde_json::json!({
        "to": [H41],
        "subject": "V/v kết nối, liên thông phần mềm quản lý văn bản",
        "code": {"number": number, "notation": "VPCP-TTĐT"},
        "promulgation": {"date": "2026/11/23"},
        "priority": 3,
        "attachments": [{"name": "cong-van.pdf", "data": "JVBERi0xLjQK"}],
    })
}

fn signed_document(signer: &str, claimed_from: &str, to: &str, number: &str) -> Vec<u8> {
    let identity = SigningIdentity::from_pem_files(
        &certs().join(format!("agencies/{signer}.key.pem")),
        &certs().join(format!("agencies/{signer}.pem")),
    )
    .unwrap();
    let from = Organization::new(AgencyCode::parse_strict(claimed_from).unwrap(), "Cơ quan");
    let req: SendDocument = serde_json::from_value(serde_json::json!({
        "to": [to],
        "subject": "Thử nghiệm",
        "code": {"number": number, "notation": "TN"},
    }))
    .unwrap();
    let doc = compose_document(&req, &from).unwrap();
    sign(&Packet::Document(doc), &identity).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_submitted_delivered_answered_with_status_01_and_tracked() {
    let hub = FakeHub::new();
    let server = hub.serve().await;
    let g22 = start_node(G22, server.local_addr()).await;
    let h41 = start_node(H41, server.local_addr()).await;

    let sent = g22.client.send(&document_request("7816")).await.unwrap();

    // G22: submitted with a verified receipt, H41 accepted by the hub.
    let tracked = eventually("G22's document accepted by the hub", || async {
        let t = g22.client.track(&sent.document_id).await.unwrap();
        (t.state == "submitted").then_some(t)
    })
    .await;
    assert_eq!(tracked.attempts, 1);
    assert!(tracked.recipients[0].summary.accepted_at.is_some());
    let stored = g22
        .running
        .node()
        .db
        .track(sent.document_id.clone())
        .await
        .unwrap()
        .unwrap();
    let receipt = HubReceipt::parse(stored.entry.receipt.unwrap().as_bytes()).unwrap();
    assert_eq!(receipt.packet_id, sent.packet_id);
    assert_eq!(receipt.accepted, [H41]);

    // H41: the document is in the inbox, verified, acknowledged, and answered with 01.
    let item = eventually("H41 received the document", || async {
        let list = h41.client.inbox(&InboxParams::default()).await.unwrap();
        list.items.into_iter().next()
    })
    .await;
    assert_eq!(item.packet_id, sent.packet_id);
    assert_eq!(item.from, G22);
    assert_eq!(item.priority, 3);
    let detail = eventually("H41's acknowledgement receipt stored", || async {
        let d = h41.client.inbox_item(&item.packet_id).await.unwrap();
        d.item.delivered_at.is_some().then_some(d)
    })
    .await;
    assert!(detail.signature.valid, "{}", detail.signature.detail);
    assert_eq!(detail.attachments[0].name, "cong-van.pdf");
    assert!(hub.pending_for(H41).is_empty(), "acknowledged at the hub");

    // G22: delivered (receipt collector) and status 01 received from H41 (inbox poller).
    let tracked = eventually("G22 sees delivery and status 01", || async {
        let t = g22.client.track(&sent.document_id).await.unwrap();
        let r = &t.recipients[0].summary;
        (r.delivered_at.is_some() && r.last_status.is_some()).then_some(t)
    })
    .await;
    let r = &tracked.recipients[0];
    assert_eq!(r.summary.code, H41);
    let status = r.summary.last_status.as_ref().unwrap();
    assert_eq!(
        (status.code.as_str(), status.label.as_str()),
        ("01", "đã đến")
    );
    assert_eq!(tracked.summary, "1/1 accepted, 1/1 delivered");
    let events: Vec<&str> = r.timeline.iter().map(|e| e.event.as_str()).collect();
    assert!(events.contains(&"accepted by the hub"), "{events:?}");
    assert!(
        events.iter().any(|e| e.starts_with("status 01")),
        "{events:?}"
    );

    // H41's status 01 itself was submitted and delivered to G22.
    let answer = eventually("H41's status 01 delivered", || async {
        let d = h41.client.inbox_item(&item.packet_id).await.unwrap();
        d.answer.filter(|a| a.delivered_at.is_some())
    })
    .await;
    assert_eq!(answer.state, "submitted");
    let g22_statuses = g22
        .client
        .inbox(&InboxParams {
            kind: Some("status"),
            ..InboxParams::default()
        })
        .await
        .unwrap();
    assert_eq!(g22_statuses.items.len(), 1);
    assert_eq!(g22_statuses.items[0].state, "applied");
    assert_eq!(g22_statuses.items[0].packet_id, answer.packet_id);

    let health = g22.client.health().await.unwrap();
    assert_eq!(health.hub.reachable, Some(true));
    assert_eq!(health.counts.as_ref().expect("counts").outbox_submitted, 1);
    assert_eq!(health.counts.as_ref().expect("counts").anomalies, 0);

    g22.running.shutdown().await.unwrap();
    h41.running.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_outage_is_retried_until_the_packet_is_accepted() {
    let hub = FakeHub::new();
    hub.with(|s| s.fail_next = 3);
    let server = hub.serve().await;
    let g22 = start_node(G22, server.local_addr()).await;
    let mut request = document_request("1");
    request["to"] = serde_json::json!([H41, {"id": "000.00.00.X99", "name": "Sở Không Tồn Tại"}]);
    let sent = g22.client.send(&request).await.unwrap();
    let item = eventually("accepted after the outage", || async {
        let list = g22.client.outbox(None, None).await.unwrap();
        list.items
            .into_iter()
            .find(|i| i.packet_id == sent.packet_id && i.state == "submitted")
    })
    .await;
    assert_eq!(item.attempts, 4);
    assert!(
        item.last_error.as_deref().unwrap_or("").contains("503"),
        "{:?}",
        item.last_error
    );
    // The hub's refusal of one recipient is recorded with its reason.
    assert_eq!(item.summary, "1/2 accepted, 1/2 refused, 0/2 delivered");
    let x99 = item
        .recipients
        .iter()
        .find(|r| r.code == "000.00.00.X99")
        .unwrap();
    assert_eq!(x99.refused.as_deref(), Some("not a registered agency"));
    let submissions = hub.with(|s| s.submissions.clone());
    assert_eq!(submissions.len(), 4);
    assert!(
        submissions.iter().all(|s| *s == sent.packet_id),
        "same bytes each time"
    );
    g22.running.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_refusal_fails_with_the_hubs_message() {
    let hub = FakeHub::new();
    hub.with(|s| {
        s.refuse
            .insert("000.00.00.G22,2026/11/23,2/VPCP-TTĐT".to_string());
    });
    let server = hub.serve().await;
    let g22 = start_node(G22, server.local_addr()).await;
    let sent = g22.client.send(&document_request("2")).await.unwrap();
    let tracked = eventually("failed", || async {
        let t = g22.client.track(&sent.document_id).await.unwrap();
        (t.state == "failed").then_some(t)
    })
    .await;
    assert_eq!(tracked.attempts, 1, "no retry after a permanent refusal");
    let error = tracked.last_error.unwrap();
    assert!(error.contains("409"), "{error}");
    assert!(
        error.contains("a different packet already uses document id"),
        "{error}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hub.with(|s| s.submissions.len()), 1);
    let health = g22.client.health().await.unwrap();
    assert_eq!(health.counts.as_ref().expect("counts").outbox_failed, 1);
    assert_eq!(health.counts.as_ref().expect("counts").outbox_queued, 0);
    g22.running.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_stored_once_and_forgeries_are_never_acknowledged() {
    let hub = FakeHub::new();
    let server = hub.serve().await;
    let h41 = start_node(H41, server.local_addr()).await;
    let db = h41.running.node().db.clone();

    let good = signed_document(G22, G22, H41, "10");
    let good_id = hub.inject(H41, good, G22);
    // Claims to come from G22 but is signed with H14's key.
    let forged = signed_document(H14, G22, H41, "11");
    let forged_id = hub.inject(H41, forged, G22);

    stored_and_acknowledged(
        "the good packet stored and acknowledged",
        &hub,
        &db,
        &good_id,
    )
    .await;

    // Listed again (the hub lost the acknowledgement): acknowledged again, stored once.
    hub.requeue(H41, &good_id);
    eventually("the repeated packet acknowledged again", || async {
        let n = hub.with(|s| s.acks.iter().filter(|a| **a == good_id).count());
        (n >= 2 && !hub.pending_for(H41).contains(&good_id)).then_some(())
    })
    .await;
    let inbox = db.inbox_list(InboxFilter::default(), 10).await.unwrap();
    assert_eq!(inbox.len(), 1, "one inbox entry");
    let statuses: Vec<_> = db
        .outbox_list(Some(docaxis_node::db::PacketKind::Status), 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.entry.document_id == inbox[0].1.document_id)
        .collect();
    assert_eq!(statuses.len(), 1, "one status 01");
    eventually("status 01 submitted", || async {
        let p = db.sent_packet(statuses[0].id).await.unwrap().unwrap();
        (p.entry.state == OutboxState::Submitted).then_some(())
    })
    .await;

    // The forgery: an anomaly, never acknowledged, still pending at the hub.
    let anomaly = anomaly_about("the forgery recorded as an anomaly", &db, &forged_id).await;
    assert!(
        anomaly
            .reason
            .contains("claims to come from 000.00.00.G22, but it was signed by 000.00.00.H14"),
        "{}",
        anomaly.reason
    );
    assert_eq!(anomaly.source, "inbox");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !hub.with(|s| s.acks.contains(&forged_id)),
        "never acknowledged"
    );
    assert!(hub.pending_for(H41).contains(&forged_id));
    assert!(!db.has_inbox(forged_id.parse().unwrap()).await.unwrap());
    let health = h41.client.health().await.unwrap();
    assert_eq!(health.counts.as_ref().expect("counts").anomalies, 1);
    assert_eq!(health.counts.as_ref().expect("counts").inbox_new, 1);

    h41.running.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_listed_inline_are_not_fetched_and_are_checked_like_fetched_ones() {
    let hub = FakeHub::new();
    let server = hub.serve().await;
    let h41 = start_node(H41, server.local_addr()).await;
    let db = h41.running.node().db.clone();

    // Listed with its own bytes: stored and acknowledged without a fetch.
    let good = signed_document(G22, G22, H41, "20");
    let good_text = String::from_utf8(good.clone()).unwrap();
    let good_id = hub.inject(H41, good, G22);
    hub.with(|s| s.inline.insert(good_id.clone(), good_text.clone()));
    // Listed with other bytes than its id's (a hub gone wrong): refused as the same bytes
    // fetched would be, never acknowledged, and not fetched behind the listing's back.
    let other = signed_document(G22, G22, H41, "21");
    let other_id = hub.inject(H41, other, G22);
    let swapped = good_text.replace(">20<", ">22<");
    assert_ne!(swapped, good_text, "the test changes the packet");
    hub.with(|s| s.inline.insert(other_id.clone(), swapped));

    stored_and_acknowledged(
        "the inline packet stored and acknowledged",
        &hub,
        &db,
        &good_id,
    )
    .await;
    let anomaly = anomaly_about(
        "the wrong inline bytes recorded as an anomaly",
        &db,
        &other_id,
    )
    .await;
    assert!(
        anomaly
            .reason
            .contains("do not match the packet id: it listed"),
        "{}",
        anomaly.reason
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    hub.with(|s| {
        assert!(s.fetches.is_empty(), "nothing fetched: {:?}", s.fetches);
        assert!(!s.acks.contains(&other_id), "never acknowledged");
    });
    assert!(!db.has_inbox(other_id.parse().unwrap()).await.unwrap());

    h41.running.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_hub_is_retried_with_backoff_until_it_comes_up() {
    // A free port with nothing listening on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let g22 = start_node(G22, port).await;
    let sent = g22.client.send(&document_request("3")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let item = g22.client.outbox(None, None).await.unwrap().items.remove(0);
    assert_eq!(item.state, "queued");
    assert!(item.attempts >= 2, "retried: {} attempts", item.attempts);
    // With delays drawn up to 20, 40, 80, 160, 200 ms, one second holds a few dozen attempts
    // at most; a retry loop without backoff would make thousands against a refused port.
    assert!(
        item.attempts < 100,
        "not spinning: {} attempts",
        item.attempts
    );
    let error = item.last_error.unwrap();
    assert!(error.contains("cannot reach the hub"), "{error}");
    let health = g22.client.health().await.unwrap();
    assert_eq!(health.hub.reachable, Some(false));
    assert!(health.hub.last_error.is_some());

    // The hub comes up on that port: the packet goes through.
    let hub = FakeHub::new();
    let server = hub.serve_on(port).await;
    eventually("submitted once the hub is up", || async {
        let t = g22.client.track(&sent.document_id).await.unwrap();
        (t.state == "submitted").then_some(())
    })
    .await;
    assert_eq!(g22.client.health().await.unwrap().hub.reachable, Some(true));
    g22.running.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

fn status(code: &str, reason: Option<&str>, staff: Option<&str>) -> StatusRequest {
    StatusRequest {
        code: code.into(),
        reason: reason.map(str::to_string),
        staff: staff.map(str::to_string),
        ..StatusRequest::default()
    }
}

fn refusal(e: ClientError) -> (u16, String, String) {
    match e {
        ClientError::Api {
            status,
            code,
            message,
        } => (status, code, message),
        other => panic!("not an API refusal: {other}"),
    }
}

/// Waits until G22's view of `recipient` satisfies `check`.
async fn g22_sees(
    g22: &TestNode,
    document_id: &str,
    recipient: &str,
    what: &str,
    check: impl Fn(&docaxis_node::views::RecipientView) -> bool,
) -> TrackView {
    eventually(what, || async {
        let t = g22.client.track(document_id).await.unwrap();
        let ok = t
            .recipients
            .iter()
            .any(|r| r.summary.code == recipient && check(&r.summary));
        ok.then_some(t)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_statuses_and_take_back_travel_back_to_the_sender() {
    let hub = FakeHub::new();
    let server = hub.serve().await;
    let g22 = start_node(G22, server.local_addr()).await;
    let h41 = start_node(H41, server.local_addr()).await;
    let h14 = start_node(H14, server.local_addr()).await;

    let mut request = document_request("100");
    request["to"] = serde_json::json!([H41, H14]);
    let sent = g22.client.send(&request).await.unwrap();
    let doc = sent.document_id.clone();
    for node in [&h41, &h14] {
        eventually("the document reached its recipients", || async {
            let l = node.client.inbox(&InboxParams::default()).await.unwrap();
            l.items.into_iter().next()
        })
        .await;
    }
    let packet = sent.packet_id.clone();

    // Nonsense is refused at the sending node, and stores nothing.
    let (code, kind, message) = refusal(
        h41.client
            .send_status(&packet, &status("05", None, None))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, kind.as_str()), (409, "invalid_transition"));
    assert_eq!(
        message,
        "status 05 needs 03 (accepted) first; the document is at 01 (received)"
    );
    let (code, _, message) = refusal(
        h14.client
            .send_status(&doc, &status("02", None, None))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    assert!(message.contains("needs a reason"), "{message}");
    let (code, kind, _) = refusal(
        h41.client
            .send_status(&packet, &status("13", Some("x"), None))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, kind.as_str()), (409, "wrong_side"));

    // H41 accepts, assigns, processes, completes; a repeated 03 sends nothing new.
    let s03 = h41
        .client
        .send_status(&packet, &status("03", None, Some("Trần Thị Lan")))
        .await
        .unwrap();
    assert!(!s03.repeated);
    assert_eq!((s03.to.as_str(), s03.state.as_str()), (G22, "accepted"));
    let again = h41
        .client
        .send_status(&doc, &status("03", None, None))
        .await
        .unwrap();
    assert!(again.repeated);
    assert_eq!(again.packet_id, s03.packet_id);
    for code in ["04", "05", "06"] {
        let s = h41
            .client
            .send_status(&packet, &status(code, None, Some("Lê Văn Hùng")))
            .await
            .unwrap();
        assert!(!s.repeated, "{code}");
    }
    let done = h41
        .client
        .inbox(&InboxParams {
            state: Some("completed"),
            ..InboxParams::default()
        })
        .await
        .unwrap();
    assert_eq!(done.items.len(), 1);

    // H14 rejects with a reason (by document id); 03 after 02 is refused.
    let s02 = h14
        .client
        .send_status(
            &doc,
            &StatusRequest {
                from: Some(G22.into()),
                ..status("02", Some("Không đúng thẩm quyền"), Some("Văn thư"))
            },
        )
        .await
        .unwrap();
    assert_eq!(s02.state, "rejected");
    let (code, _, message) = refusal(
        h14.client
            .send_status(&doc, &status("03", None, None))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    assert!(message.contains("exclude each other"), "{message}");

    // G22 sees both timelines.
    g22_sees(&g22, &doc, H41, "H41 completed", |r| {
        r.business_state == "completed"
    })
    .await;
    let t = g22_sees(&g22, &doc, H14, "H14 rejected", |r| {
        r.business_state == "rejected"
    })
    .await;
    assert_eq!(t.business, "1 rejected, 1 completed");
    let h41_row = t.recipients.iter().find(|r| r.summary.code == H41).unwrap();
    let statuses: Vec<&str> = h41_row
        .timeline
        .iter()
        .filter(|e| e.event.starts_with("status"))
        .map(|e| &e.event[..9])
        .collect();
    assert_eq!(
        statuses,
        [
            "status 01",
            "status 03",
            "status 04",
            "status 05",
            "status 06"
        ]
    );
    assert!(
        h41_row
            .timeline
            .iter()
            .any(|e| e.event.contains("by Trần Thị Lan"))
    );
    let h14_row = t.recipients.iter().find(|r| r.summary.code == H14).unwrap();
    assert!(
        h14_row
            .timeline
            .iter()
            .any(|e| e.event.contains("status 02") && e.event.ends_with(": Không đúng thẩm quyền")),
        "{:?}",
        h14_row.timeline
    );
    let outbox = g22.client.outbox(Some("document"), None).await.unwrap();
    assert_eq!(outbox.items[0].business, "1 rejected, 1 completed");

    // Take-back: the recipient must be named; a rejected document cannot be taken back.
    let (code, _, message) = refusal(
        g22.client
            .send_status(&doc, &status("13", Some("Sai sót"), None))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    assert!(message.contains(H41) && message.contains(H14), "{message}");
    let to = |who: &str| StatusRequest {
        to: Some(who.into()),
        ..status(
            "13",
            Some("Văn bản có sai sót, xin lấy lại"),
            Some("Văn thư VPCP"),
        )
    };
    let (code, _, message) = refusal(g22.client.send_status(&doc, &to(H14)).await.unwrap_err());
    assert_eq!(code, 409);
    assert!(message.contains("nothing to take back"), "{message}");

    // 13 to H41, refused with 16; asked again, agreed with 15.
    let first = g22.client.send_status(&doc, &to(H41)).await.unwrap();
    assert!(!first.repeated);
    assert!(
        g22.client
            .send_status(&doc, &to(H41))
            .await
            .unwrap()
            .repeated
    );
    eventually("H41 sees the take-back request", || async {
        let l = h41
            .client
            .inbox(&InboxParams {
                state: Some("take_back_requested"),
                ..InboxParams::default()
            })
            .await
            .unwrap();
        l.items.into_iter().next()
    })
    .await;
    h41.client
        .send_status(&packet, &status("16", None, Some("Lãnh đạo")))
        .await
        .unwrap();
    g22_sees(&g22, &doc, H41, "H41 refused the take-back", |r| {
        r.take_back == "refused"
    })
    .await;
    let second = g22.client.send_status(&doc, &to(H41)).await.unwrap();
    assert!(!second.repeated);
    assert_ne!(second.packet_id, first.packet_id);
    eventually("H41 sees the second request", || async {
        let l = h41
            .client
            .inbox(&InboxParams {
                state: Some("take_back_requested"),
                ..InboxParams::default()
            })
            .await
            .unwrap();
        l.items.into_iter().next()
    })
    .await;
    let agreed = h41
        .client
        .send_status(&packet, &status("15", None, None))
        .await
        .unwrap();
    assert_eq!(agreed.state, "taken_back");
    let taken = h41
        .client
        .inbox(&InboxParams {
            state: Some("taken_back"),
            ..InboxParams::default()
        })
        .await
        .unwrap();
    assert_eq!(taken.items[0].business_state.as_deref(), Some("taken_back"));
    let (code, _, message) = refusal(
        h41.client
            .send_status(&packet, &status("02", Some("late"), None))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 409);
    assert!(message.contains("took the document back"), "{message}");
    let t = g22_sees(&g22, &doc, H41, "H41 agreed to the take-back", |r| {
        r.business_state == "taken_back"
    })
    .await;
    assert_eq!(t.business, "1 rejected, 1 taken back");
    // The recipient's own view of the document.
    let detail = h41.client.inbox_item(&packet).await.unwrap();
    let codes: Vec<&str> = detail.timeline.iter().map(|e| &e.event[7..9]).collect();
    assert_eq!(
        codes,
        ["01", "03", "04", "05", "06", "13", "16", "13", "15"]
    );
    assert!(detail.timeline.iter().all(|e| e.anomaly.is_none()));
    let health = g22.client.health().await.unwrap();
    assert_eq!(health.counts.as_ref().expect("counts").anomalies, 0);

    g22.running.shutdown().await.unwrap();
    h41.running.shutdown().await.unwrap();
    h14.running.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}
