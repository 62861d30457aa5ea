//! The node's calls to the hub (protocol v1, [`exchange::protocol`]) over the mutual-TLS client,
//! and what the node learns about the hub's reachability from them.
//!
//! Invariants:
//! - Every call classifies its failure: [`HubCallError::Transport`] (no answer), or
//!   [`HubCallError::Refused`] with the HTTP status and, when the hub sent one, its
//!   [`ErrorBody`]. Only a 4xx answer carrying an `ErrorBody`, other than 408 and 429, is
//!   permanent ([`HubCallError::is_permanent`]).
//! - Long polls get their own timeout: the wait granted plus a margin.
//! - Every answer is read with a bound (a fetched packet: the packet limit; an inbox listing:
//!   [`MAX_LISTING_BYTES`]; other JSON answers, receipts, error answers and the directory: limits
//!   of their own), streaming: past it the answer is refused as a bad answer, not read on.
//! - Every answer (or its absence) updates [`HubHealth`].
//! - Failover: the node may know several URLs of the hub (`hub_url` as a list). Every call goes
//!   to the URL in use, which starts as the first. A call that gets no answer
//!   ([`HubCallError::Transport`], including an answer cut short) or a 5xx answer moves the URL
//!   in use to the next one in the list (after the last, the first again), so the caller's
//!   next attempt, after its usual backoff, goes there ([`fails_over`]). Nothing else moves it:
//!   a 4xx answer (408 and 429 included), an answer not understood, or a success leave it as it
//!   is; the node stays on a URL that works and does not return to the first by itself. With
//!   one URL nothing ever moves and calls behave as before failover existed.
//! - A call is made to one URL only and returns its own outcome: it does not try the other
//!   URLs itself. Retrying stays with the callers, which already retry with backoff (the outbox
//!   with the same bytes, the pollers, the directory refresh), so a hub that is down costs at
//!   most one attempt per backoff step, never a burst across every URL.
//! - The move is race-free: it is a compare-and-swap from the index the failed call used, so
//!   concurrent failures of the same URL move the node one step, not one per call, and a call
//!   that failed on a URL the node has already left moves nothing.
//! - Failover adds no sending: a retry carries the same request as before, whichever URL it
//!   reaches. The URLs are addresses of one hub (one store), where a submission is idempotent
//!   per packet id (the first receipt is returned for the same bytes) and acknowledgements are
//!   idempotent, so nothing reaches a recipient's inbox twice.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use exchange::protocol::{
    ACKS, AckRequest, AckResponse, DIRECTORY, DIRECTORY_SIGNATURE_HEADER, ErrorBody, ErrorCode,
    INBOX, MAX_LISTING_BYTES, PACKETS, PendingList, RECEIPTS, RECEIPTS_ACK, ReceiptAckRequest,
    ReceiptList, packet_path,
};

/// Largest packet the node fetches (the packet limit of the reader and verifier).
pub const MAX_PACKET_BYTES: u64 = edxml::reader::DEFAULT_MAX_BYTES as u64;

/// Largest directory the node reads (tens of thousands of agencies fit easily).
const MAX_DIRECTORY_BYTES: u64 = 64 * 1024 * 1024;

/// Largest JSON answer the node reads apart from inbox listings (an acknowledgement of the
/// most packets one call may name, each with two receipts of a few kilobytes, fits easily).
const MAX_ANSWER_BYTES: u64 = 16 * 1024 * 1024;

/// Largest submission receipt the node reads (one receipt with its batch proof: kilobytes).
const MAX_RECEIPT_BYTES: u64 = 1024 * 1024;

/// Largest error answer the node reads.
const MAX_ERROR_BYTES: u64 = 64 * 1024;

/// Reads a body of at most `limit` bytes into one buffer (sized from `Content-Length` when the
/// hub gives it), refusing a larger one as soon as it is announced or has arrived.
async fn read_bounded(
    mut resp: reqwest::Response,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, HubCallError> {
    let too_large =
        || HubCallError::BadAnswer(format!("{what} is larger than the {limit} byte limit"));
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(usize::try_from(announced.unwrap_or(0)).unwrap_or(0));
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HubCallError::Transport(describe(&e)))?
    {
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Margin added to a long poll's wait before the request times out.
const POLL_MARGIN: Duration = Duration::from_secs(15);

/// Why a hub call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HubCallError {
    #[error("cannot reach the hub: {0}")]
    Transport(String),
    #[error("the hub answered {status}{}: {message}", code.map(|c| format!(" ({c:?})")).unwrap_or_default())]
    Refused {
        status: u16,
        code: Option<ErrorCode>,
        message: String,
    },
    #[error("the hub's answer is not understood: {0}")]
    BadAnswer(String),
}

impl HubCallError {
    /// A refusal that retrying cannot change: 4xx with the hub's error body, except 408 and 429.
    pub fn is_permanent(&self) -> bool {
        match self {
            HubCallError::Refused {
                status,
                code: Some(_),
                ..
            } => (400..500).contains(status) && *status != 408 && *status != 429,
            _ => false,
        }
    }
}

/// What the node last learned about the hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HubStatus {
    /// `None` before the first call.
    pub reachable: Option<bool>,
    /// RFC 3339 time of the last answer.
    pub last_contact: Option<exchange::Timestamp>,
    /// The last transport error.
    pub last_error: Option<String>,
}

/// Shared, updated by every call.
#[derive(Debug, Clone, Default)]
pub struct HubHealth(Arc<Mutex<HubStatus>>);

impl HubHealth {
    /// A copy of the current status.
    pub fn snapshot(&self) -> HubStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn answered(&self) {
        if let Ok(mut s) = self.0.lock() {
            s.reachable = Some(true);
            s.last_contact = Some(exchange::Timestamp::now());
        }
    }

    fn unreachable(&self, error: &str) {
        if let Ok(mut s) = self.0.lock() {
            s.reachable = Some(false);
            s.last_error = Some(error.to_string());
        }
    }
}

/// Whether a call's failure moves the node to the next hub URL: no answer, or a 5xx answer.
pub fn fails_over(error: &HubCallError) -> bool {
    match error {
        HubCallError::Transport(_) => true,
        HubCallError::Refused { status, .. } => (500..600).contains(status),
        HubCallError::BadAnswer(_) => false,
    }
}

/// The hub's URLs and the index of the one in use, shared by every clone of a [`HubApi`].
#[derive(Debug)]
struct HubUrls {
    /// Without trailing slashes.
    urls: Vec<String>,
    current: AtomicUsize,
}

impl HubUrls {
    fn new<S: AsRef<str>>(urls: &[S]) -> HubUrls {
        HubUrls {
            urls: urls
                .iter()
                .map(|u| u.as_ref().trim_end_matches('/').to_string())
                .collect(),
            current: AtomicUsize::new(0),
        }
    }

    /// The index of the URL in use.
    fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    fn get(&self, index: usize) -> Option<&str> {
        self.urls.get(index).map(String::as_str)
    }

    /// A call to the URL at `failed` failed over: moves to the next URL, unless the node has
    /// already left `failed`. Returns the index moved to.
    fn rotate_from(&self, failed: usize) -> Option<usize> {
        let n = self.urls.len();
        if n < 2 {
            return None;
        }
        let next = (failed + 1) % n;
        self.current
            .compare_exchange(failed, next, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| next)
    }
}

/// The hub, as the node calls it.
#[derive(Debug, Clone)]
pub struct HubApi {
    /// Swapped when the trust anchors or CRLs change ([`HubApi::replace_client`]): new
    /// connections then check the hub's certificate against the new CRL.
    client: Arc<std::sync::RwLock<reqwest::Client>>,
    hubs: Arc<HubUrls>,
    health: HubHealth,
}

impl HubApi {
    /// Calls the hub at `urls` (each `https://host:port`, the first in use first; see the
    /// module's failover rules) with `client` (from [`net::client::build_client`]). With no
    /// URL (a configuration [`crate::NodeConfig::validate`] refuses), every call fails with
    /// [`HubCallError::Transport`].
    pub fn new<S: AsRef<str>>(client: reqwest::Client, urls: &[S]) -> HubApi {
        HubApi {
            client: Arc::new(std::sync::RwLock::new(client)),
            hubs: Arc::new(HubUrls::new(urls)),
            health: HubHealth::default(),
        }
    }

    /// The hub URL calls go to now (without a trailing slash; empty without any URL).
    pub fn current_url(&self) -> String {
        self.hubs
            .get(self.hubs.current())
            .unwrap_or_default()
            .to_string()
    }

    /// Every hub URL, in the order failover goes through them (without trailing slashes).
    pub fn urls(&self) -> &[String] {
        &self.hubs.urls
    }

    /// Calls from now on use `client` (built with fresh trust anchors and CRLs); calls in
    /// flight finish on the old one.
    pub fn replace_client(&self, client: reqwest::Client) {
        *self.client.write().unwrap_or_else(|p| p.into_inner()) = client;
    }

    fn client(&self) -> reqwest::Client {
        self.client
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The reachability record.
    pub fn health(&self) -> &HubHealth {
        &self.health
    }

    /// Runs one call, `call(base)`, against the URL in use, then moves to the next URL when
    /// the call's failure says so ([`fails_over`]).
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, HubCallError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<T, HubCallError>>,
    {
        let at = self.hubs.current();
        let Some(base) = self.hubs.get(at) else {
            let error = HubCallError::Transport("no hub URL is configured (hub_url)".into());
            self.health.unreachable(&error.to_string());
            return Err(error);
        };
        let result = call(base.to_string()).await;
        if let Err(error) = &result
            && fails_over(error)
        {
            self.fail_over(at, error);
        }
        result
    }

    fn fail_over(&self, failed: usize, error: &HubCallError) {
        let Some(next) = self.hubs.rotate_from(failed) else {
            return;
        };
        let from = self.hubs.get(failed).unwrap_or_default();
        let to = self.hubs.get(next).unwrap_or_default();
        tracing::warn!(%from, %to, %error,
            "hub: {from} failed; the next calls go to {to}");
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, HubCallError> {
        match req.send().await {
            Ok(resp) => {
                self.health.answered();
                if resp.status().is_success() {
                    Ok(resp)
                } else {
                    Err(refusal(resp).await)
                }
            }
            Err(e) => {
                let message = describe(&e);
                self.health.unreachable(&message);
                Err(HubCallError::Transport(message))
            }
        }
    }

    async fn json<T: DeserializeOwned>(
        resp: reqwest::Response,
        what: &str,
    ) -> Result<T, HubCallError> {
        let bytes = read_bounded(resp, MAX_ANSWER_BYTES, what).await?;
        serde_json::from_slice(&bytes).map_err(|e| HubCallError::BadAnswer(e.to_string()))
    }

    /// `POST /v1/packets`: submits signed bytes; the answer is the hub's signed receipt.
    pub async fn submit(&self, bytes: Vec<u8>) -> Result<Vec<u8>, HubCallError> {
        self.call(|base| async move {
            let req = self
                .client()
                .post(format!("{base}{PACKETS}"))
                .header(CONTENT_TYPE, "application/xml")
                .body(bytes);
            let resp = self.send(req).await?;
            read_bounded(resp, MAX_RECEIPT_BYTES, "the hub's receipt").await
        })
        .await
    }

    /// `GET /v1/inbox`: packets waiting for this node, the small ones inline. A listing
    /// larger than [`MAX_LISTING_BYTES`] is refused as a bad answer before it is read whole.
    pub async fn pending(&self, wait_secs: u64, limit: usize) -> Result<PendingList, HubCallError> {
        self.call(|base| async move {
            let req = self
                .client()
                .get(format!("{base}{INBOX}"))
                .query(&[
                    ("wait", wait_secs.to_string()),
                    ("limit", limit.to_string()),
                ])
                .timeout(Duration::from_secs(wait_secs) + POLL_MARGIN);
            let resp = self.send(req).await?;
            let bytes = read_bounded(resp, MAX_LISTING_BYTES, "the inbox listing").await?;
            serde_json::from_slice(&bytes).map_err(|e| HubCallError::BadAnswer(e.to_string()))
        })
        .await
    }

    /// `GET /v1/packets/{id}`: the packet's bytes; `None` when the hub says it does not exist.
    pub async fn fetch(&self, packet_id: &str) -> Result<Option<Vec<u8>>, HubCallError> {
        self.call(|base| async move {
            let req = self
                .client()
                .get(format!("{base}{}", packet_path(packet_id)));
            let resp = match self.send(req).await {
                Ok(r) => r,
                Err(HubCallError::Refused { status: 404, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let what = format!("packet {packet_id}");
            read_bounded(resp, MAX_PACKET_BYTES, &what).await.map(Some)
        })
        .await
    }

    /// `GET /v1/directory`: the agency directory's JSON body and the hub's detached signature
    /// (header `x-docaxis-signature`, base64), unverified: see [`super::directory`].
    pub async fn directory(&self) -> Result<(Vec<u8>, Option<String>), HubCallError> {
        self.call(|base| async move {
            let resp = self
                .send(self.client().get(format!("{base}{DIRECTORY}")))
                .await?;
            let signature = resp
                .headers()
                .get(DIRECTORY_SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let bytes = read_bounded(resp, MAX_DIRECTORY_BYTES, "the directory").await?;
            Ok((bytes, signature))
        })
        .await
    }

    /// `POST /v1/acks`: acknowledges stored packets; the answer carries delivery receipts.
    pub async fn ack(&self, packet_ids: Vec<String>) -> Result<AckResponse, HubCallError> {
        self.call(|base| async move {
            let req = self
                .client()
                .post(format!("{base}{ACKS}"))
                .json(&AckRequest { packet_ids });
            Self::json(self.send(req).await?, "the acknowledgement answer").await
        })
        .await
    }

    /// `GET /v1/receipts`: delivery receipts for packets this node sent, with a sequence
    /// number above `after`.
    pub async fn receipts(
        &self,
        wait_secs: u64,
        limit: usize,
        after: u64,
    ) -> Result<ReceiptList, HubCallError> {
        self.call(|base| async move {
            let req = self
                .client()
                .get(format!("{base}{RECEIPTS}"))
                .query(&[
                    ("wait", wait_secs.to_string()),
                    ("limit", limit.to_string()),
                    ("after", after.to_string()),
                ])
                .timeout(Duration::from_secs(wait_secs) + POLL_MARGIN);
            Self::json(self.send(req).await?, "the receipt listing").await
        })
        .await
    }

    /// `POST /v1/receipts/ack`: the receipts with these sequence numbers are stored.
    pub async fn ack_receipts(&self, seqs: Vec<u64>) -> Result<(), HubCallError> {
        self.call(|base| async move {
            let req = self
                .client()
                .post(format!("{base}{RECEIPTS_ACK}"))
                .json(&ReceiptAckRequest { seqs });
            self.send(req).await.map(|_| ())
        })
        .await
    }
}

async fn refusal(resp: reqwest::Response) -> HubCallError {
    let status = resp.status();
    // Only the start of an error answer is ever shown; a longer one is not read on.
    let text = match read_bounded(resp, MAX_ERROR_BYTES, "the error answer").await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => HubCallError::Refused {
            status: status.as_u16(),
            code: Some(body.code),
            message: body.message,
        },
        Err(_) => HubCallError::Refused {
            status: status.as_u16(),
            code: None,
            message: summary(status, &text),
        },
    }
}

fn summary(status: StatusCode, text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("no explanation")
            .to_string()
    } else {
        text.chars().take(300).collect()
    }
}

/// A reqwest error with its causes, which is where TLS failures are explained, and what it
/// most likely means for a clerk or operator.
fn describe(e: &reqwest::Error) -> String {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    if let Some(hint) = transport_hint(&message) {
        message.push_str(" — ");
        message.push_str(hint);
    }
    message
}

/// The likely cause of a transport failure, from its text. The hub checks client certificates
/// during the handshake; with TLS 1.3 a refused certificate often reaches the client only as a
/// closed connection, so those symptoms are named too.
fn transport_hint(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
    if has(&["certificaterevoked", "certificate revoked"]) {
        Some("the hub refused this node's certificate: it is revoked (see the CRL)")
    } else if has(&["notvalidyet", "not valid yet"]) {
        Some("the hub's certificate is not valid yet: check its validity dates and this clock")
    } else if has(&["certificateexpired", "certificate expired"]) {
        // rustls sends the same alert for "not yet valid" as for "expired".
        Some(
            "a certificate is expired or not yet valid (this node's or the hub's): check their \
             validity dates and both clocks",
        )
    } else if has(&[
        "unknownca",
        "unknown ca",
        "unknownissuer",
        "unknown issuer",
        "badcertificate",
        "bad certificate",
    ]) {
        Some(
            "the TLS handshake failed on a certificate: check that this node's certificate and \
             the hub's come from the configured CA",
        )
    } else if has(&[
        "broken pipe",
        "connection reset",
        "connection closed",
        "unexpected eof",
        "handshake",
    ]) {
        Some(
            "the hub closed the connection during the handshake; if the hub is up, it probably \
             refuses this node's certificate (revoked, expired, unregistered CA): see the hub's \
             log",
        )
    } else if has(&["connection refused"]) {
        Some("nothing listens at the hub address: is the hub running, is hub_url right?")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_name_their_likely_cause() {
        let revoked = transport_hint(
            "error sending request: client error (Connect): received fatal alert: \
             CertificateRevoked",
        );
        assert!(
            revoked.is_some_and(|h| h.contains("revoked")),
            "{revoked:?}"
        );
        let closed =
            transport_hint("error sending request: connection error: Broken pipe (os error 32)");
        assert!(closed.is_some_and(|h| h.contains("refuses this node's certificate")));
        // What a TLS 1.3 client sees when the hub drops it after its certificate.
        let canceled = transport_hint(
            "error sending request: client error (Canceled): operation was canceled: connection \
             closed",
        );
        assert!(canceled.is_some_and(|h| h.contains("refuses this node's certificate")));
        let down = transport_hint(
            "error sending request: tcp connect error: Connection refused (os error 111)",
        );
        assert!(down.is_some_and(|h| h.contains("is the hub running")));
        assert_eq!(transport_hint("operation timed out"), None);
    }

    #[test]
    fn only_no_answer_and_server_errors_fail_over() {
        let refused = |status, code| HubCallError::Refused {
            status,
            code,
            message: "m".into(),
        };
        assert!(fails_over(&HubCallError::Transport("refused".into())));
        assert!(fails_over(&refused(500, Some(ErrorCode::Internal))));
        assert!(fails_over(&refused(502, None)));
        assert!(fails_over(&refused(503, None)));
        assert!(fails_over(&refused(504, None)));
        assert!(!fails_over(&refused(404, None)));
        assert!(!fails_over(&refused(408, Some(ErrorCode::BadRequest))));
        assert!(!fails_over(&refused(
            409,
            Some(ErrorCode::DuplicateBusinessKey)
        )));
        assert!(!fails_over(&refused(429, Some(ErrorCode::Internal))));
        assert!(!fails_over(&HubCallError::BadAnswer("not JSON".into())));
    }

    #[test]
    fn rotation_moves_one_step_from_the_failed_url_and_wraps() {
        let one = HubUrls::new(&["https://a:8443/"]);
        assert_eq!(one.get(one.current()), Some("https://a:8443"));
        assert_eq!(one.rotate_from(0), None, "one URL: nowhere to go");
        assert_eq!(one.current(), 0);

        let none = HubUrls::new::<&str>(&[]);
        assert_eq!(none.rotate_from(0), None);
        assert_eq!(none.get(none.current()), None);

        let three = HubUrls::new(&["https://a", "https://b", "https://c"]);
        assert_eq!(three.current(), 0);
        assert_eq!(three.rotate_from(0), Some(1));
        assert_eq!(
            three.rotate_from(0),
            None,
            "a second failure of a URL already left moves nothing"
        );
        assert_eq!(three.current(), 1);
        assert_eq!(three.rotate_from(2), None, "not the URL in use");
        assert_eq!(three.current(), 1);
        assert_eq!(three.rotate_from(1), Some(2));
        assert_eq!(three.rotate_from(2), Some(0), "after the last, the first");
        assert_eq!(three.get(three.current()), Some("https://a"));
    }

    #[test]
    fn concurrent_failures_of_one_url_move_one_step() {
        let urls = HubUrls::new(&["https://a", "https://b", "https://c"]);
        let moved = std::sync::atomic::AtomicUsize::new(0);
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    start.wait();
                    if urls.rotate_from(0).is_some() {
                        moved.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(moved.load(Ordering::Relaxed), 1);
        assert_eq!(urls.current(), 1);
    }

    /// A plain-HTTP stand-in for one hub address: answers every request with `status` and
    /// `body` (echoing a POST's body when `body` is empty), counting requests.
    async fn stand_in(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move |request: axum::body::Bytes| {
            let counted = Arc::clone(&counted);
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                let status = axum::http::StatusCode::from_u16(status)
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
                let body = if body.is_empty() {
                    request.to_vec()
                } else {
                    body.as_bytes().to_vec()
                };
                (status, body)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), hits)
    }

    /// An address where nothing listens.
    async fn nobody() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    fn plain_client() -> reqwest::Client {
        let tls = rustls::ClientConfig::builder_with_provider(net::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn no_answer_and_5xx_send_the_next_call_to_the_next_url() {
        let dead = nobody().await;
        let (down, down_hits) = stand_in(503, "overloaded").await;
        let (up, up_hits) = stand_in(200, "").await;
        let hub = HubApi::new(
            plain_client(),
            &[dead.clone(), down.clone(), format!("{up}/")],
        );
        assert_eq!(hub.urls(), [dead.clone(), down.clone(), up.clone()]);
        assert_eq!(hub.current_url(), dead);

        // Each call makes one attempt, to the URL in use, and returns its own failure.
        let first = hub.submit(b"<packet/>".to_vec()).await.unwrap_err();
        assert!(matches!(first, HubCallError::Transport(_)), "{first:?}");
        assert_eq!(hub.health().snapshot().reachable, Some(false));
        assert_eq!(hub.current_url(), down);
        assert_eq!(down_hits.load(Ordering::SeqCst), 0, "no immediate retry");

        let second = hub.submit(b"<packet/>".to_vec()).await.unwrap_err();
        assert!(
            matches!(second, HubCallError::Refused { status: 503, .. }),
            "{second:?}"
        );
        assert_eq!(down_hits.load(Ordering::SeqCst), 1);
        assert_eq!(up_hits.load(Ordering::SeqCst), 0, "no immediate retry");
        assert_eq!(hub.current_url(), up);

        // The retry carries the same bytes; the node then stays where it works.
        let receipt = hub.submit(b"<packet/>".to_vec()).await.unwrap();
        assert_eq!(receipt, b"<packet/>");
        assert_eq!(hub.health().snapshot().reachable, Some(true));
        assert_eq!(hub.ack_receipts(vec![1, 2]).await, Ok(()));
        assert_eq!(up_hits.load(Ordering::SeqCst), 2);
        assert_eq!(hub.current_url(), up);
        assert_eq!(hub.clone().current_url(), up, "clones share the URL in use");
    }

    #[tokio::test]
    async fn client_errors_and_a_single_url_stay_put() {
        let (refusing, refusing_hits) = stand_in(
            409,
            r#"{"code":"duplicate_business_key","message":"already sent"}"#,
        )
        .await;
        let (not_found, _) = stand_in(404, "no such packet").await;
        let (up, up_hits) = stand_in(200, "").await;

        let hub = HubApi::new(plain_client(), &[refusing.clone(), up.clone()]);
        let error = hub.submit(b"<packet/>".to_vec()).await.unwrap_err();
        assert!(error.is_permanent(), "{error:?}");
        assert_eq!(hub.current_url(), refusing, "a 4xx does not fail over");
        assert_eq!(refusing_hits.load(Ordering::SeqCst), 1);
        assert_eq!(up_hits.load(Ordering::SeqCst), 0);

        let hub = HubApi::new(plain_client(), &[not_found.clone(), up.clone()]);
        assert_eq!(hub.fetch("x").await, Ok(None));
        assert_eq!(hub.current_url(), not_found, "a 404 does not fail over");

        let dead = nobody().await;
        let hub = HubApi::new(plain_client(), &[dead.as_str()]);
        for _ in 0..2 {
            let error = hub.directory().await.unwrap_err();
            assert!(matches!(error, HubCallError::Transport(_)), "{error:?}");
            assert_eq!(hub.current_url(), dead, "one URL: always the same");
        }

        let hub = HubApi::new::<String>(plain_client(), &[]);
        let error = hub.pending(1, 10).await.unwrap_err();
        assert!(
            matches!(&error, HubCallError::Transport(m) if m.contains("hub_url")),
            "{error:?}"
        );
        assert_eq!(hub.current_url(), "");
    }

    /// A plain-HTTP stand-in that answers every request with an endless chunked body of
    /// spaces (valid JSON whitespace, so only a bound stops the reader), counting what it wrote
    /// until the reader hung up.
    async fn endless() -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let written = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&written);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = Arc::clone(&counted);
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                 transfer-encoding: chunked\r\n\r\n";
                    if socket.write_all(head).await.is_err() {
                        return;
                    }
                    let mut chunk = b"10000\r\n".to_vec();
                    chunk.extend(std::iter::repeat_n(b' ', 0x10000));
                    chunk.extend_from_slice(b"\r\n");
                    // At most 256 MiB: far past every bound, short of forever.
                    for _ in 0..4096 {
                        if socket.write_all(&chunk).await.is_err() {
                            return;
                        }
                        counted.fetch_add(0x10000, Ordering::SeqCst);
                    }
                });
            }
        });
        (format!("http://{addr}"), written)
    }

    #[tokio::test]
    async fn answers_are_read_with_a_bound_and_not_on_past_it() {
        let (url, written) = endless().await;
        let hub = HubApi::new(plain_client(), &[url.as_str()]);
        let listing = hub.pending(0, 10).await.unwrap_err();
        assert!(
            matches!(&listing, HubCallError::BadAnswer(m)
                if m.contains("inbox listing") && m.contains(&MAX_LISTING_BYTES.to_string())),
            "{listing:?}"
        );
        let fetched = hub.fetch("x").await.unwrap_err();
        assert!(
            matches!(&fetched, HubCallError::BadAnswer(m) if m.contains("packet x is larger")),
            "{fetched:?}"
        );
        let receipt = hub.submit(b"<packet/>".to_vec()).await.unwrap_err();
        assert!(
            matches!(&receipt, HubCallError::BadAnswer(m) if m.contains("receipt")),
            "{receipt:?}"
        );
        let acked = hub.ack(vec!["x".into()]).await.unwrap_err();
        assert!(matches!(acked, HubCallError::BadAnswer(_)), "{acked:?}");
        // The stand-in stopped being read soon after each bound: far less than it would send.
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Read whole, the four answers would have been 1 GiB (and no bound would have fired).
        let sent = written.load(Ordering::SeqCst) as u64;
        let bounds = MAX_PACKET_BYTES + MAX_LISTING_BYTES + MAX_ANSWER_BYTES + MAX_RECEIPT_BYTES;
        let buffers = 4 * 16 * 1024 * 1024;
        assert!(sent < bounds + buffers, "{sent} bytes were sent");
    }

    #[test]
    fn only_explained_client_errors_are_permanent() {
        let refused = |status, code| HubCallError::Refused {
            status,
            code,
            message: "m".into(),
        };
        assert!(refused(409, Some(ErrorCode::DuplicateBusinessKey)).is_permanent());
        assert!(refused(422, Some(ErrorCode::Signature)).is_permanent());
        assert!(!refused(408, Some(ErrorCode::BadRequest)).is_permanent());
        assert!(!refused(429, Some(ErrorCode::Internal)).is_permanent());
        assert!(!refused(503, Some(ErrorCode::Internal)).is_permanent());
        assert!(
            !refused(404, None).is_permanent(),
            "no ErrorBody: a proxy, not the hub"
        );
        assert!(!HubCallError::Transport("x".into()).is_permanent());
        let text = refused(409, Some(ErrorCode::DuplicateBusinessKey)).to_string();
        assert!(
            text.contains("409") && text.contains("DuplicateBusinessKey"),
            "{text}"
        );
    }
}
