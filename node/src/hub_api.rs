//! The node's calls to the hub (protocol v1, [`exchange::protocol`]) over the mutual-TLS client,
//! and what the node learns about the hub's reachability from them.
//!
//! Invariants:
//! - Every call classifies its failure: [`HubCallError::Transport`] (no answer), or
//!   [`HubCallError::Refused`] with the HTTP status and, when the hub sent one, its
//!   [`ErrorBody`]. Only a 4xx answer carrying an `ErrorBody`, other than 408 and 429, is
//!   permanent ([`HubCallError::is_permanent`]).
//! - Long polls get their own timeout: the wait granted plus a margin.
//! - A fetched packet larger than the packet limit is not read into memory.
//! - Every answer (or its absence) updates [`HubHealth`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use exchange::protocol::{
    ACKS, AckRequest, AckResponse, DIRECTORY, DIRECTORY_SIGNATURE_HEADER, ErrorBody, ErrorCode,
    INBOX, PACKETS, PendingList, RECEIPTS, RECEIPTS_ACK, ReceiptAckRequest, ReceiptList,
    packet_path,
};

/// Largest packet the node fetches (the packet limit of the reader and verifier).
pub const MAX_PACKET_BYTES: u64 = edxml::reader::DEFAULT_MAX_BYTES as u64;

/// Largest directory the node reads (tens of thousands of agencies fit easily).
const MAX_DIRECTORY_BYTES: u64 = 64 * 1024 * 1024;

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

/// The hub, as the node calls it.
#[derive(Debug, Clone)]
pub struct HubApi {
    /// Swapped when the trust anchors or CRLs change ([`HubApi::replace_client`]): new
    /// connections then check the hub's certificate against the new CRL.
    client: Arc<std::sync::RwLock<reqwest::Client>>,
    base: String,
    health: HubHealth,
}

impl HubApi {
    /// Calls the hub at `base` (`https://host:port`) with `client` (from
    /// [`net::client::build_client`]).
    pub fn new(client: reqwest::Client, base: &str) -> HubApi {
        HubApi {
            client: Arc::new(std::sync::RwLock::new(client)),
            base: base.trim_end_matches('/').to_string(),
            health: HubHealth::default(),
        }
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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

    async fn json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, HubCallError> {
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| HubCallError::Transport(describe(&e)))?;
        serde_json::from_slice(&bytes).map_err(|e| HubCallError::BadAnswer(e.to_string()))
    }

    /// `POST /v1/packets`: submits signed bytes; the answer is the hub's signed receipt.
    pub async fn submit(&self, bytes: Vec<u8>) -> Result<Vec<u8>, HubCallError> {
        let req = self
            .client()
            .post(self.url(PACKETS))
            .header(CONTENT_TYPE, "application/xml")
            .body(bytes);
        let resp = self.send(req).await?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| HubCallError::Transport(describe(&e)))?;
        Ok(body.to_vec())
    }

    /// `GET /v1/inbox`: packets waiting for this node.
    pub async fn pending(&self, wait_secs: u64, limit: usize) -> Result<PendingList, HubCallError> {
        let req = self
            .client()
            .get(self.url(INBOX))
            .query(&[
                ("wait", wait_secs.to_string()),
                ("limit", limit.to_string()),
            ])
            .timeout(Duration::from_secs(wait_secs) + POLL_MARGIN);
        Self::json(self.send(req).await?).await
    }

    /// `GET /v1/packets/{id}`: the packet's bytes; `None` when the hub says it does not exist.
    pub async fn fetch(&self, packet_id: &str) -> Result<Option<Vec<u8>>, HubCallError> {
        let req = self.client().get(self.url(&packet_path(packet_id)));
        let resp = match self.send(req).await {
            Ok(r) => r,
            Err(HubCallError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        if resp.content_length().is_some_and(|n| n > MAX_PACKET_BYTES) {
            return Err(HubCallError::BadAnswer(format!(
                "packet {packet_id} is larger than the {MAX_PACKET_BYTES} byte limit"
            )));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| HubCallError::Transport(describe(&e)))?;
        if bytes.len() as u64 > MAX_PACKET_BYTES {
            return Err(HubCallError::BadAnswer(format!(
                "packet {packet_id} is larger than the {MAX_PACKET_BYTES} byte limit"
            )));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// `GET /v1/directory`: the agency directory's JSON body and the hub's detached signature
    /// (header `x-docaxis-signature`, base64), unverified: see [`super::directory`].
    pub async fn directory(&self) -> Result<(Vec<u8>, Option<String>), HubCallError> {
        let resp = self.send(self.client().get(self.url(DIRECTORY))).await?;
        let signature = resp
            .headers()
            .get(DIRECTORY_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DIRECTORY_BYTES)
        {
            return Err(HubCallError::BadAnswer(format!(
                "the directory is larger than {MAX_DIRECTORY_BYTES} bytes"
            )));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| HubCallError::Transport(describe(&e)))?;
        if bytes.len() as u64 > MAX_DIRECTORY_BYTES {
            return Err(HubCallError::BadAnswer(format!(
                "the directory is larger than {MAX_DIRECTORY_BYTES} bytes"
            )));
        }
        Ok((bytes.to_vec(), signature))
    }

    /// `POST /v1/acks`: acknowledges stored packets; the answer carries delivery receipts.
    pub async fn ack(&self, packet_ids: Vec<String>) -> Result<AckResponse, HubCallError> {
        let req = self
            .client()
            .post(self.url(ACKS))
            .json(&AckRequest { packet_ids });
        Self::json(self.send(req).await?).await
    }

    /// `GET /v1/receipts`: delivery receipts for packets this node sent, with a sequence
    /// number above `after`.
    pub async fn receipts(
        &self,
        wait_secs: u64,
        limit: usize,
        after: u64,
    ) -> Result<ReceiptList, HubCallError> {
        let req = self
            .client()
            .get(self.url(RECEIPTS))
            .query(&[
                ("wait", wait_secs.to_string()),
                ("limit", limit.to_string()),
                ("after", after.to_string()),
            ])
            .timeout(Duration::from_secs(wait_secs) + POLL_MARGIN);
        Self::json(self.send(req).await?).await
    }

    /// `POST /v1/receipts/ack`: the receipts with these sequence numbers are stored.
    pub async fn ack_receipts(&self, seqs: Vec<u64>) -> Result<(), HubCallError> {
        let req = self
            .client()
            .post(self.url(RECEIPTS_ACK))
            .json(&ReceiptAckRequest { seqs });
        self.send(req).await.map(|_| ())
    }
}

async fn refusal(resp: reqwest::Response) -> HubCallError {
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
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
