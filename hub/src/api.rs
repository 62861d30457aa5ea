//! The hub's HTTP routes for nodes (protocol v1, see [`exchange::protocol`]).
//!
//! Every route first authorises the TLS peer as an agency ([`Hub::authorize`]). Objects of
//! other agencies are answered exactly like unknown ones (404 `not_found`). Bodies larger than
//! the configured packet limit are refused with 413 before being read in full, bodies that
//! arrive too slowly with 408 ([`net::limits`]); every error answer is JSON. Inbox listings
//! carry small packets inline ([`INLINE`]): fetching stays available for every packet.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::service::{Hub, HubError};
use exchange::packet_id::PacketId;
use exchange::protocol::{
    self, AckRequest, AckResponse, AckedPacket, ErrorBody, ErrorCode, PendingItem, PendingList,
    ReceiptAckRequest, ReceiptItem, ReceiptList,
};
use net::peer::PeerIdentity;

use crate::db::InlineBudget;

/// What an inbox listing carries inline: small packets (documents of a few attachments,
/// every status packet) come with the listing, so their recipient fetches nothing.
const INLINE: InlineBudget = InlineBudget {
    packet_bytes: protocol::INLINE_PACKET_BYTES,
    listing_bytes: protocol::INLINE_LISTING_BYTES,
};

/// Builds the router for the node-facing API.
pub fn router(hub: Arc<Hub>) -> axum::Router {
    let limit = hub.max_packet_bytes;
    axum::Router::new()
        .route(protocol::PACKETS, post(submit))
        .route("/v1/packets/{id}", get(fetch))
        .route(protocol::INBOX, get(inbox))
        .route(protocol::ACKS, post(acks))
        .route(protocol::RECEIPTS, get(receipts))
        .route(protocol::RECEIPTS_ACK, post(receipts_ack))
        .route(protocol::DIRECTORY, get(directory))
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            net::limits::BodyLimits::new(limit),
            net::limits::buffer_body,
        ))
        .layer(axum::middleware::from_fn(net::limits::json_errors))
        .with_state(hub)
}

/// An error answer: status code by protocol code, JSON body.
pub struct ApiError(pub HubError);

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Malformed | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Schema
            | ErrorCode::Signature
            | ErrorCode::NoRecipient
            | ErrorCode::DocumentId => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::SignerNotRegistered
            | ErrorCode::ClientNotSender
            | ErrorCode::AgencyNotActive => StatusCode::FORBIDDEN,
            ErrorCode::DuplicateBusinessKey => StatusCode::CONFLICT,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
        };
        if status.is_server_error() {
            tracing::error!(error = %self.0.message, "request failed");
        } else {
            tracing::info!(code = ?self.0.code, error = %self.0.message, "request refused");
        }
        let body = ErrorBody {
            code: self.0.code,
            message: self.0.message,
        };
        (status, Json(body)).into_response()
    }
}

fn not_found() -> ApiError {
    ApiError(HubError::new(ErrorCode::NotFound, "no such object"))
}

fn xml(body: impl Into<axum::body::Body>) -> Response {
    let mut r = Response::new(body.into());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}

async fn submit(
    State(hub): State<Arc<Hub>>,
    peer: PeerIdentity,
    body: Bytes,
) -> Result<Response, ApiError> {
    let caller = hub.authorize(&peer).inspect_err(|e| {
        hub.metrics.submitted(e.code.as_str(), 0.0);
    })?;
    // The body becomes the packet's bytes (without a copy when nothing else holds it).
    let receipt = hub.submit(caller, Vec::from(body)).await?;
    Ok(xml(receipt))
}

async fn fetch(
    State(hub): State<Arc<Hub>>,
    peer: PeerIdentity,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = hub.authorize(&peer)?;
    let id: PacketId = id.parse().map_err(|_| not_found())?;
    match hub
        .db
        .fetch_for(&caller.agency, id)
        .await
        .map_err(HubError::from)?
    {
        Some(bytes) => Ok(xml(bytes)),
        None => Err(not_found()),
    }
}

/// `?wait=SECONDS&limit=N`
#[derive(Debug, Deserialize)]
pub struct PollParams {
    #[serde(default)]
    wait: u64,
    #[serde(default)]
    limit: Option<usize>,
    /// Lists only rows after this sequence number (receipts: the node skips those it has set
    /// aside, so they never hide the ones behind them).
    #[serde(default)]
    after: u64,
}

impl PollParams {
    fn wait(&self) -> Duration {
        Duration::from_secs(self.wait.min(protocol::MAX_WAIT_SECS))
    }
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, protocol::MAX_LIST)
    }
}

/// Answers with `fetch()`'s items as soon as there are any, or after `wait` with none.
/// Interest in `signal` is registered before each look, so an item queued meanwhile wakes the
/// poll instead of being missed.
async fn long_poll<T, F, Fut>(
    signal: Arc<tokio::sync::Notify>,
    wait: Duration,
    mut fetch: F,
) -> Result<Vec<T>, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Vec<T>, ApiError>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = signal.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let items = fetch().await?;
        if !items.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(items);
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(Vec::new());
        }
    }
}

async fn inbox(
    State(hub): State<Arc<Hub>>,
    peer: PeerIdentity,
    Query(params): Query<PollParams>,
) -> Result<Json<PendingList>, ApiError> {
    let caller = hub.authorize(&peer)?;
    hub.metrics
        .polled(&caller.agency, &peer.fingerprint_sha256, &peer.cert_der);
    let signal = hub.inbox_signal.get(&caller.agency);
    let items = long_poll(signal, params.wait(), || async {
        let pending = hub
            .db
            .pending_inline(&caller.agency, params.limit(), INLINE)
            .await
            .map_err(HubError::from)?;
        Ok(pending
            .into_iter()
            .map(|p| PendingItem {
                packet_id: p.id.to_hex(),
                from: p.meta.from,
                kind: p.meta.kind,
                priority: p.meta.priority,
                size: p.meta.size,
                queued_at: p.meta.accepted_at,
                // Accepted packets are UTF-8 (the strict profile checks it); anything else
                // is left to the fetch.
                packet: p.bytes.and_then(|b| String::from_utf8(b).ok()),
            })
            .collect())
    })
    .await?;
    Ok(Json(PendingList { items }))
}

async fn acks(
    State(hub): State<Arc<Hub>>,
    peer: PeerIdentity,
    Json(req): Json<AckRequest>,
) -> Result<Json<AckResponse>, ApiError> {
    let caller = hub.authorize(&peer)?;
    if req.packet_ids.len() > protocol::MAX_LIST {
        return Err(ApiError(HubError::new(
            ErrorCode::BadRequest,
            format!(
                "at most {} packet ids per acknowledgement",
                protocol::MAX_LIST
            ),
        )));
    }
    let ids = req
        .packet_ids
        .iter()
        .map(|s| s.parse::<PacketId>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError(HubError::new(ErrorCode::BadRequest, e.to_string())))?;
    let acked = hub.acknowledge(caller, ids).await?;
    Ok(Json(AckResponse {
        acked: acked
            .into_iter()
            .map(|a| AckedPacket {
                packet_id: a.id.to_hex(),
                receipt: a.delivery,
                submission_receipt: a.submission,
            })
            .collect(),
    }))
}

async fn receipts(
    State(hub): State<Arc<Hub>>,
    peer: PeerIdentity,
    Query(params): Query<PollParams>,
) -> Result<Json<ReceiptList>, ApiError> {
    let caller = hub.authorize(&peer)?;
    let signal = hub.receipt_signal.get(&caller.agency);
    let items = long_poll(signal, params.wait(), || async {
        let rows = hub
            .db
            .receipts_for_sender(&caller.agency, params.after, params.limit())
            .await
            .map_err(HubError::from)?;
        Ok(rows
            .into_iter()
            .map(|(seq, id, recipient, receipt)| ReceiptItem {
                seq,
                packet_id: id.to_hex(),
                recipient,
                receipt,
            })
            .collect())
    })
    .await?;
    Ok(Json(ReceiptList { items }))
}

async fn receipts_ack(
    State(hub): State<Arc<Hub>>,
    peer: PeerIdentity,
    Json(req): Json<ReceiptAckRequest>,
) -> Result<StatusCode, ApiError> {
    let caller = hub.authorize(&peer)?;
    hub.db
        .ack_receipts(&caller.agency, req.seqs)
        .await
        .map_err(HubError::from)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn directory(State(hub): State<Arc<Hub>>, peer: PeerIdentity) -> Result<Response, ApiError> {
    hub.authorize(&peer)?;
    let (body, signature) = hub.signed_directory().await?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&signature) {
        headers.insert(protocol::DIRECTORY_SIGNATURE_HEADER, v);
    }
    Ok((headers, body).into_response())
}
