//! Mutual TLS between nodes and the hub: who gets through, who is refused and why, what a
//! handler learns about its client, and how the server behaves at its limits (body size,
//! silent clients, shutdown, CRL reload).
//!
//! Every certificate is made here with rcgen: a test CA, agency leaves with a UID, a revoked
//! leaf listed in a CRL, an expired leaf, and leaves from a foreign CA.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use docaxis_net::client::{ClientTls, build_client, build_client_with_config};
use docaxis_net::peer::PeerIdentity;
use docaxis_net::serve::{HttpServer, ServeOptions, serve_tls};
use docaxis_net::{PemSource, tls};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    DnValue, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

const UID: &[u64] = &[0, 9, 2342, 19200300, 100, 1, 1];
const G22: &str = "000.00.00.G22";
const H41: &str = "000.00.00.H41";
const BODY_LIMIT: usize = 64 * 1024;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

#[derive(Clone)]
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CountryName, "VN");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Self {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf valid for TLS client and server use; `days` is its validity window relative to
    /// now (start, end).
    fn leaf(&self, agency: Option<&str>, serial: u64, days: (i64, i64), sans: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CountryName, "VN");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Cơ quan thử nghiệm");
        params
            .distinguished_name
            .push(DnType::CommonName, agency.unwrap_or("hub"));
        if let Some(code) = agency {
            params.distinguished_name.push(
                DnType::CustomDnType(UID.to_vec()),
                DnValue::Utf8String(code.to_owned()),
            );
        }
        params.serial_number = Some(SerialNumber::from(serial));
        let now = OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(days.0);
        params.not_after = now + time::Duration::days(days.1);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ClientAuth,
            ExtendedKeyUsagePurpose::ServerAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    fn valid_leaf(&self, agency: Option<&str>, serial: u64) -> Leaf {
        self.leaf(agency, serial, (-1, 365), &["127.0.0.1", "localhost"])
    }

    fn crl(&self, revoked_serials: &[u64]) -> String {
        let now = OffsetDateTime::now_utc();
        CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(7),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked_serials
                .iter()
                .map(|s| RevokedCertParams {
                    serial_number: SerialNumber::from(*s),
                    revocation_time: now - time::Duration::hours(1),
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .pem()
        .unwrap()
    }
}

/// The test PKI, written to a temporary directory as the hub and nodes would find it.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    foreign: Ca,
    hub: Leaf,
    g22: Leaf,
}

impl Pki {
    fn new() -> Self {
        let ca = Ca::new("DocAxis Test CA");
        let foreign = Ca::new("Foreign CA");
        let hub = ca.valid_leaf(None, 1);
        let g22 = ca.valid_leaf(Some(G22), 22);
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
            foreign,
            hub,
            g22,
        };
        pki.write("ca.pem", &pki.ca.pem());
        pki.write("crl.pem", &pki.ca.crl(&[41]));
        pki
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn server_config_with(&self, hub: &Leaf, crl: &Path) -> Arc<rustls::ServerConfig> {
        let cert = self.write("hub.pem", &hub.cert_pem);
        let key = self.write("hub.key", &hub.key_pem);
        tls::server_config(&cert, &key, &[self.path("ca.pem")], &[crl]).unwrap()
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_with(&self.hub.clone(), &self.path("crl.pem"))
    }

    fn client(&self, leaf: &Leaf, name: &str) -> reqwest::Client {
        let tls = ClientTls {
            cert_chain_pem: self.write(&format!("{name}.pem"), &leaf.cert_pem),
            key_pem: self.write(&format!("{name}.key"), &leaf.key_pem),
            ca_pems: vec![self.path("ca.pem")],
            crl_pems: vec![self.path("crl.pem")],
        };
        build_client(&tls, Duration::from_secs(20)).unwrap()
    }
}

#[derive(Clone, Default)]
struct AppState {
    uploads_handled: Arc<AtomicUsize>,
    slow_started: Arc<Notify>,
}

async fn whoami(peer: PeerIdentity) -> Json<Value> {
    Json(json!({
        "agency_code": peer.agency_code,
        "fingerprint_sha256": peer.fingerprint_sha256,
        "subject": peer.subject,
        "cert_len": peer.cert_der.len(),
    }))
}

async fn upload(State(state): State<AppState>, body: Bytes) -> String {
    state.uploads_handled.fetch_add(1, Ordering::SeqCst);
    body.len().to_string()
}

async fn slow(State(state): State<AppState>) -> &'static str {
    state.slow_started.notify_one();
    tokio::time::sleep(Duration::from_millis(500)).await;
    "finished"
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/whoami", get(whoami))
        .route(
            "/upload",
            post(upload).layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT)),
        )
        .route("/slow", get(slow))
        .with_state(state)
}

async fn start(config: Arc<rustls::ServerConfig>, state: AppState) -> HttpServer {
    start_with(config, state, ServeOptions::default()).await
}

async fn start_with(
    config: Arc<rustls::ServerConfig>,
    state: AppState,
    options: ServeOptions,
) -> HttpServer {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let server = serve_tls(addr, config, router(state), options)
        .await
        .unwrap();
    assert_ne!(server.local_addr().port(), 0, "the real port is reported");
    server
}

fn url(server: &HttpServer, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", server.local_addr().port())
}

/// The error and all its sources, for checking the reason of a refusal.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(" <- ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

async fn refused_with(client: &reqwest::Client, server: &HttpServer, reason: &str) {
    let err = client
        .get(url(server, "/whoami"))
        .send()
        .await
        .expect_err("the connection must be refused");
    let text = chain(&err);
    assert!(text.contains(reason), "expected {reason:?} in: {text}");
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

#[tokio::test]
async fn agency_gets_its_own_identity_over_http2() {
    let pki = Pki::new();
    let server = start(pki.server_config(), AppState::default()).await;
    let response = pki
        .client(&pki.g22, "g22")
        .get(url(&server, "/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["agency_code"], G22);
    assert_eq!(body["fingerprint_sha256"], sha256_hex(&pki.g22.der));
    assert_eq!(body["cert_len"], pki.g22.der.len());
    let subject = body["subject"].as_str().unwrap();
    assert!(subject.contains(G22), "{subject}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn http11_client_is_served_with_the_same_identity() {
    let pki = Pki::new();
    let server = start(pki.server_config(), AppState::default()).await;
    let mut config = tls::client_config_from_pem(
        &PemSource::from_bytes("g22.pem", pki.g22.cert_pem.clone()),
        &PemSource::from_bytes("g22.key", pki.g22.key_pem.clone()),
        &[PemSource::from_bytes("ca.pem", pki.ca.pem())],
        &[],
    )
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = build_client_with_config(config, Duration::from_secs(20)).unwrap();
    let response = client.get(url(&server, "/whoami")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["agency_code"], G22);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let pki = Pki::new();
    let server = start(pki.server_config(), AppState::default()).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.issuer.der().clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let client = build_client_with_config(config, Duration::from_secs(20)).unwrap();
    refused_with(&client, &server, "CertificateRequired").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_from_a_foreign_ca_is_refused() {
    let pki = Pki::new();
    let server = start(pki.server_config(), AppState::default()).await;
    let intruder = pki.foreign.valid_leaf(Some(G22), 22);
    refused_with(&pki.client(&intruder, "intruder"), &server, "UnknownCA").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn expired_client_is_refused() {
    let pki = Pki::new();
    let server = start(pki.server_config(), AppState::default()).await;
    let expired = pki
        .ca
        .leaf(Some(G22), 23, (-60, -1), &["127.0.0.1", "localhost"]);
    refused_with(
        &pki.client(&expired, "expired"),
        &server,
        "CertificateExpired",
    )
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn revoked_client_is_refused() {
    let pki = Pki::new();
    let server = start(pki.server_config(), AppState::default()).await;
    let revoked = pki.ca.valid_leaf(Some(H41), 41);
    refused_with(&pki.client(&revoked, "h41"), &server, "CertificateRevoked").await;
    // The same CA's non-revoked agency still gets through with the same server.
    let ok = pki
        .client(&pki.g22, "g22")
        .get(url(&server, "/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn client_refuses_a_server_from_a_foreign_ca() {
    let pki = Pki::new();
    let impostor = pki.foreign.valid_leaf(None, 2);
    let server = start(
        pki.server_config_with(&impostor, &pki.path("crl.pem")),
        AppState::default(),
    )
    .await;
    refused_with(&pki.client(&pki.g22, "g22"), &server, "UnknownIssuer").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reloaded_crl_refuses_newly_revoked_client() {
    let pki = Pki::new();
    let server = start(pki.server_config(), AppState::default()).await;
    let before = pki
        .client(&pki.g22, "g22")
        .get(url(&server, "/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), StatusCode::OK);
    let crl = pki.write("crl-2.pem", &pki.ca.crl(&[41, 22]));
    server.reload_tls(pki.server_config_with(&pki.hub.clone(), &crl));
    // A fresh client opens a fresh connection, which gets the new configuration.
    refused_with(&pki.client(&pki.g22, "g22"), &server, "CertificateRevoked").await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_body_is_answered_413_without_reading_it_all() {
    let pki = Pki::new();
    let state = AppState::default();
    let server = start(pki.server_config(), state.clone()).await;
    let client = pki.client(&pki.g22, "g22");

    // Within the limit: accepted and counted.
    let small = client
        .post(url(&server, "/upload"))
        .body(vec![b'x'; BODY_LIMIT])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), StatusCode::OK);
    assert_eq!(small.text().await.unwrap(), BODY_LIMIT.to_string());
    assert_eq!(state.uploads_handled.load(Ordering::SeqCst), 1);

    // Declared length over the limit: refused on the headers alone.
    let declared = client
        .post(url(&server, "/upload"))
        .body(vec![b'x'; 4 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Streamed without a length: refused once the limit is crossed; flow control keeps the
    // client from pushing more than a window's worth, so most of the stream is never produced.
    const CHUNK: usize = 16 * 1024;
    const CHUNKS: usize = 4096; // 64 MiB in all
    let produced = Arc::new(AtomicUsize::new(0));
    let counter = produced.clone();
    let stream = futures_util::stream::iter((0..CHUNKS).map(move |_| {
        counter.fetch_add(CHUNK, Ordering::SeqCst);
        Ok::<_, std::io::Error>(vec![b'x'; CHUNK])
    }));
    let streamed = client
        .post(url(&server, "/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let produced = produced.load(Ordering::SeqCst);
    assert!(
        produced < CHUNK * CHUNKS / 4,
        "the server should stop reading early, yet {produced} bytes were produced"
    );
    assert_eq!(
        state.uploads_handled.load(Ordering::SeqCst),
        1,
        "the handler never ran for oversized bodies"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn silent_client_is_disconnected_after_the_handshake_timeout() {
    let pki = Pki::new();
    let options = ServeOptions {
        handshake_timeout: Duration::from_millis(200),
        ..ServeOptions::default()
    };
    let server = start_with(pki.server_config(), AppState::default(), options).await;
    let mut silent = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    // A safety bound only: the server closes long before it.
    let read = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf))
        .await
        .expect("the server must close a connection that never starts its handshake");
    match read {
        Ok(n) => assert_eq!(n, 0, "the server sent data to a client that said nothing"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight_then_refuses() {
    let pki = Pki::new();
    let state = AppState::default();
    let server = start(pki.server_config(), state.clone()).await;
    let addr = server.local_addr();
    let client = pki.client(&pki.g22, "g22");
    let in_flight = tokio::spawn({
        let request = client.get(url(&server, "/slow"));
        async move { request.send().await }
    });
    state.slow_started.notified().await;
    let handle = server.shutdown_handle();
    handle.shutdown();
    server.wait().await.unwrap();
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "finished");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn busy_port_is_reported_with_its_address() {
    let pki = Pki::new();
    let first = start(pki.server_config(), AppState::default()).await;
    let err = serve_tls(
        first.local_addr(),
        pki.server_config(),
        router(AppState::default()),
        ServeOptions::default(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&first.local_addr().to_string()), "{text}");
    first.shutdown().await.unwrap();
}
