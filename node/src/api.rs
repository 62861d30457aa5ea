//! The local clerk API: JSON over plain HTTP on a loopback address, bearer-token protected.
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/api/v1/documents` | body [`SendDocument`]; 201 [`Sent`] once committed; 400/409 [`ApiErrorBody`] |
//! | GET | `/api/v1/outbox?kind=document\|status&limit=N` | [`OutboxList`], newest first (all kinds by default) |
//! | GET | `/api/v1/inbox?state=new\|accepted\|…\|taken_back\|revoked\|replaced\|applied\|unmatched&from=CODE&priority=0..4&since=DATE&until=DATE&kind=document\|status\|all&limit=N` (dates `YYYY-MM-DD`, Vietnam days, both inclusive; or RFC 3339 times, `until` exclusive) | [`InboxList`], newest first (documents by default) |
//! | GET | `/api/v1/inbox/{packet_id}` | [`InboxDetail`]: metadata, signature verdict, attachments, the status 01 sent |
//! | POST | `/api/v1/inbox/{packet_id}/status` | body [`StatusRequest`] (02–06, 15, 16 on a received document); 201/200 [`StatusSent`]; 400/404/409 |
//! | POST | `/api/v1/documents/{document_id}/status` | body [`StatusRequest`]: 13 on a sent document (`to`), or 02–06/15/16 on a received one (`from` when ambiguous) |
//! | POST | `/api/v1/documents/{document_id}/revoke` | body [`ActionRequest`] (`reason`, `staff`): a revoke (BussinessDocType 1) of a document this node sent; 201 [`Sent`] once committed |
//! | POST | `/api/v1/documents/{document_id}/update` | body [`ActionRequest`] (`reason`, `add`, `remove`, `subject`, `content`): an update (2) |
//! | POST | `/api/v1/documents/{document_id}/replace` | body [`ActionRequest`] (`reason`, `document`): a replacement (3), a new document |
//! | GET | `/api/v1/inbox/{packet_id}/packet` | the stored packet bytes (`application/xml`), for extraction |
//! | GET | `/api/v1/documents/{document_id}/track` | [`TrackView`] (percent-encode the id: it holds `/`) |
//! | GET | `/api/v1/users` | [`UserList`]: the web pages' accounts |
//! | POST | `/api/v1/users` | body [`crate::accounts::NewUser`]; 201 the account; 400/409 |
//! | POST | `/api/v1/users/{name}` | body [`crate::accounts::ChangeUser`] (`disabled` or `password`); 200 the account |
//! | GET | `/api/v1/health` | [`Health`], without authentication |
//!
//! Invariants:
//! - Every route but `health` requires `Authorization: Bearer <token>`; a missing or wrong
//!   token gets 401 with a message saying where the token is.
//! - `POST /api/v1/documents` answers 201 only after the signed packet and its outbox row are
//!   durably committed; any refusal leaves nothing stored.
//! - Every error answer is JSON [`ApiErrorBody`].
//! - A status route answers 201 only after the signed status packet is committed with its
//!   lifecycle event; a transition the rules refuse is 409 `invalid_transition` with the
//!   rule's message, and stores nothing; a repeat is 200 with the first packet.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use edxml::{Packet, ReadOptions, read};
use exchange::packet_id::PacketId;

use super::Shared;
use super::actions::{ActionRequest, send_action};
use super::db::{InboxFilter, InboxState, NodeDbError, PacketKind};
use super::incoming::verify_incoming;
use super::outgoing::SendDocument;
use super::send::{SendError, send_document};
use super::status::{StatusTarget, send_status};
use super::views::{
    AnswerView, ApiErrorBody, AttachmentView, Health, InboxDetail, InboxItem, InboxList,
    OutboxItem, OutboxList, SignatureView, StatusRequest, TrackView, inbox_timeline,
};
use exchange::clock;
use exchange::lifecycle::ActionKind;
use net::token;

/// Largest request body: a 64 MiB packet's worth of base64 plus JSON.
pub const MAX_BODY: usize = 100 * 1024 * 1024;
/// Default and largest list lengths.
const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 5_000;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            code: self.code.to_string(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<NodeDbError> for ApiError {
    fn from(e: NodeDbError) -> Self {
        match e {
            NodeDbError::DuplicateDocument { .. } => {
                ApiError::new(StatusCode::CONFLICT, "duplicate_document", e.to_string())
            }
            NodeDbError::Transition(_) | NodeDbError::Closed(_) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", e.to_string())
            }
            NodeDbError::NotInInbox(_)
            | NodeDbError::NotSent(_)
            | NodeDbError::NotRecipient { .. }
            | NodeDbError::NoUser(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            NodeDbError::UserExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "user_exists", e.to_string())
            }
            NodeDbError::Store(e) if e.is_storage_failure() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                format!(
                    "the node could not save this (nothing was kept; retry when the node's \
                     health says its database is ok again): {e}"
                ),
            ),
            other => ApiError::internal(format!("node database: {other}")),
        }
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        let message = e.to_string();
        match e {
            SendError::Invalid(_) => ApiError::bad_request(message),
            SendError::UnknownRecipient(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "unknown_recipient", message)
            }
            SendError::WrongSender(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "wrong_sender", message)
            }
            SendError::InvalidDocument(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_document", message)
            }
            SendError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
            SendError::TooLarge(_) => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            SendError::Conflict { kind, .. } => {
                ApiError::new(StatusCode::CONFLICT, kind.as_str(), message)
            }
            SendError::Db(e) => e.into(),
            SendError::Internal(_) => ApiError::internal(message),
        }
    }
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response {
    (status, axum::Json(body)).into_response()
}

/// The API router (health open, everything else behind the token).
pub fn router(node: Shared) -> Router {
    let protected = Router::new()
        .route("/api/v1/documents", post(post_document))
        .route("/api/v1/outbox", get(get_outbox))
        .route("/api/v1/inbox", get(get_inbox))
        .route("/api/v1/inbox/{packet_id}", get(get_inbox_item))
        .route("/api/v1/documents/{document_id}/track", get(get_track))
        .route("/api/v1/inbox/{packet_id}/status", post(post_inbox_status))
        .route("/api/v1/inbox/{packet_id}/packet", get(get_inbox_packet))
        .route(
            "/api/v1/documents/{document_id}/status",
            post(post_document_status),
        )
        .route(
            "/api/v1/documents/{document_id}/revoke",
            post(|s, p, b| post_action(s, p, b, ActionKind::Revoke)),
        )
        .route(
            "/api/v1/documents/{document_id}/update",
            post(|s, p, b| post_action(s, p, b, ActionKind::Update)),
        )
        .route(
            "/api/v1/documents/{document_id}/replace",
            post(|s, p, b| post_action(s, p, b, ActionKind::Replace)),
        )
        .route("/api/v1/users", get(get_users).post(post_user))
        .route("/api/v1/users/{name}", post(change_user))
        .route("/metrics", get(get_metrics))
        .route_layer(middleware::from_fn_with_state(node.clone(), require_token));
    Router::new()
        .route("/api/v1/health", get(get_health))
        .merge(protected)
        .merge(crate::archive::router(node.clone()))
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/api/") || uri.path() == "/metrics" {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    "no such API route; see /api/v1/health, /api/v1/documents, /api/v1/outbox, \
                     /api/v1/inbox",
                )
                .into_response()
            } else {
                crate::desk::not_found_page()
            }
        })
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            // A document's JSON carries its attachments base64-encoded, as the packet does.
            net::limits::BodyLimits::new(node.config.max_packet_bytes.saturating_add(1024 * 1024)),
            net::limits::buffer_body,
        ))
        .layer(middleware::from_fn(net::limits::json_errors))
        .with_state(node)
}

/// Answer of `GET /api/v1/users`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct UserList {
    pub items: Vec<crate::accounts::UserView>,
}

impl From<crate::accounts::AccountError> for ApiError {
    fn from(e: crate::accounts::AccountError) -> Self {
        match e {
            crate::accounts::AccountError::Invalid(m) => ApiError::bad_request(m),
            crate::accounts::AccountError::Db(e) => e.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

async fn get_users(State(node): State<Shared>) -> Result<Response, ApiError> {
    let users = node.db.users().await?;
    let items = users.iter().map(crate::accounts::UserView::from).collect();
    Ok(json(StatusCode::OK, &UserList { items }))
}

async fn post_user(State(node): State<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let req: crate::accounts::NewUser = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the request is not a valid account: {e}")))?;
    let user = crate::accounts::add(&node.db, req).await?;
    tracing::info!(account = %user.name, role = user.role.as_str(), "account added through the API");
    Ok(json(
        StatusCode::CREATED,
        &crate::accounts::UserView::from(&user),
    ))
}

async fn change_user(
    State(node): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path(name) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let req: crate::accounts::ChangeUser = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the request is not a valid change: {e}")))?;
    let user = crate::accounts::change(&node.db, &name, req).await?;
    tracing::info!(account = %user.name, "account changed through the API");
    Ok(json(
        StatusCode::OK,
        &crate::accounts::UserView::from(&user),
    ))
}

/// Prometheus metrics (OpenMetrics text).
async fn get_metrics(State(node): State<Shared>) -> Response {
    let counts = match node.db.counts().await {
        Ok(c) => c,
        Err(e) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                format!("cannot read the store for the metrics: {e}"),
            )
            .into_response();
        }
    };
    match node
        .metrics
        .render(&counts, node.db.store().writer_stats().commits)
    {
        Ok(body) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            body,
        )
            .into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot encode the metrics: {e}"),
        )
        .into_response(),
    }
}

async fn require_token(State(node): State<Shared>, req: Request, next: Next) -> Response {
    let presented = token::bearer(req.headers());
    match presented {
        Some(t) if token::matches(t, &node.token) => next.run(req).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "the bearer token is wrong: use the token in {}",
                node.config.token_path().display()
            ),
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!(
                "missing `Authorization: Bearer <token>`; the token is in {}",
                node.config.token_path().display()
            ),
        )
        .into_response(),
    }
}

async fn post_document(State(node): State<Shared>, body: Bytes) -> Response {
    let req: SendDocument = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!("the request is not a valid document: {e}"))
                .into_response();
        }
    };
    // A big document is held once at a time: the parsed request replaces the body.
    drop(body);
    match send_document(&node, req).await {
        Ok(sent) => json(StatusCode::CREATED, &sent),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT)
}

fn kind_filter(
    kind: Option<&str>,
    default: Option<PacketKind>,
) -> Result<Option<PacketKind>, ApiError> {
    match kind {
        None => Ok(default),
        Some("all") => Ok(None),
        Some(k) => PacketKind::parse(k).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "kind {k:?} is unknown: use document, status or all"
            ))
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutboxQuery {
    kind: Option<String>,
    limit: Option<usize>,
}

async fn get_outbox(
    State(node): State<Shared>,
    query: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let kind = kind_filter(q.kind.as_deref(), None)?;
    let list = node.db.outbox_list(kind, limit(q.limit)).await?;
    let items = list.iter().map(OutboxItem::from).collect();
    Ok(json(StatusCode::OK, &OutboxList { items }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InboxQuery {
    state: Option<String>,
    from: Option<String>,
    kind: Option<String>,
    priority: Option<u8>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
}

async fn get_inbox(
    State(node): State<Shared>,
    query: Result<Query<InboxQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (state, business) = match q.state.as_deref() {
        None => (None, None),
        Some("applied") => (Some(InboxState::Applied), None),
        Some("unmatched") => (Some(InboxState::Unmatched), None),
        Some(
            b @ ("new"
            | "rejected"
            | "accepted"
            | "assigned"
            | "processing"
            | "completed"
            | "taken_back"
            | "take_back_requested"
            | "agreed"
            | "refused"
            | "revoked"
            | "updated"
            | "replaced"
            | "removed"),
        ) => (None, Some(b.to_string())),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "state {other:?} is unknown: use new, rejected, accepted, assigned, processing, \
                 completed, taken_back, take_back_requested, revoked, updated, replaced, \
                 removed, agreed, refused (documents), applied or unmatched (statuses)"
            )));
        }
    };
    if let Some(p) = q.priority
        && p > 4
    {
        return Err(ApiError::bad_request(format!(
            "priority {p} is unknown: use 0 (thường) to 4 (hỏa tốc hẹn giờ)"
        )));
    }
    let bound = |v: &Option<String>, name: &str, end: bool| {
        v.as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| clock::parse_bound(s, end))
            .transpose()
            .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
    };
    let since_ms = bound(&q.since, "since", false)?;
    let until_ms = bound(&q.until, "until", true)?;
    let filter = InboxFilter {
        state,
        business,
        from: q.from.filter(|f| !f.is_empty()),
        kind: kind_filter(q.kind.as_deref(), Some(PacketKind::Document))?,
        priority: q.priority,
        since_ms,
        until_ms,
    };
    let list = node.db.inbox_list(filter, limit(q.limit)).await?;
    let items = list
        .iter()
        .map(|(id, e)| InboxItem::of(&id.to_hex(), e))
        .collect();
    Ok(json(StatusCode::OK, &InboxList { items }))
}

async fn get_inbox_item(
    State(node): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id: PacketId = raw
        .parse()
        .map_err(|e: exchange::packet_id::BadPacketId| ApiError::bad_request(e.to_string()))?;
    let Some((entry, bytes)) = node.db.inbox_entry(id).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("packet {id} is not in this node's inbox"),
        ));
    };
    let trust = node.trust.current();
    let me = node.config.agency.clone();
    let size = bytes.len() as u64;
    let (verdict, attachments) = tokio::task::spawn_blocking(move || {
        let verdict = verify_incoming(&bytes, &id, &trust, &me);
        let packet = match &verdict {
            Ok(v) => Some(v.packet.clone()),
            Err(_) => read(&bytes, &ReadOptions::default()).ok().map(|o| o.packet),
        };
        let attachments = match packet {
            Some(Packet::Document(d)) => d
                .attachments
                .iter()
                .map(|a| AttachmentView {
                    name: a.name.clone(),
                    content_type: a.content_type.clone(),
                    description: a.description.clone(),
                    size: a.decoded_len(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let verdict = verdict.map(|v| {
            format!(
                "signed by {} ({}), {} with {}",
                v.signer.agency_code.as_deref().unwrap_or("no agency code"),
                v.signer.signer_subject,
                v.signer.signature_algorithm,
                v.signer.digest_algorithm
            )
        });
        (verdict, attachments)
    })
    .await
    .map_err(|e| ApiError::internal(format!("verification task failed: {e}")))?;
    let answer = match entry.answered_with.as_deref().map(str::parse::<PacketId>) {
        Some(Ok(answer_id)) => node.db.sent_packet(answer_id).await?.map(|p| AnswerView {
            packet_id: p.id.to_hex(),
            state: p.entry.state.as_str().to_string(),
            last_error: p.entry.last_error.clone(),
            submitted_at: p.entry.submitted_at,
            delivered_at: p.recipients.first().and_then(|(_, t)| t.delivered_at),
        }),
        _ => None,
    };
    let detail = InboxDetail {
        item: InboxItem::of(&id.to_hex(), &entry),
        size,
        signature: SignatureView {
            valid: verdict.is_ok(),
            detail: match verdict {
                Ok(d) => d,
                Err(e) => e.to_string(),
            },
            signer_subject: entry.signer_subject.clone(),
            signer_agency: entry.signer_agency.clone(),
        },
        attachments,
        answer,
        timeline: inbox_timeline(&entry),
    };
    Ok(json(StatusCode::OK, &detail))
}

async fn post_inbox_status(
    State(node): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id: PacketId = raw
        .parse()
        .map_err(|e: exchange::packet_id::BadPacketId| ApiError::bad_request(e.to_string()))?;
    status_answer(&node, StatusTarget::Received(id), &body).await
}

async fn post_document_status(
    State(node): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path(document_id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    status_answer(&node, StatusTarget::Document(document_id), &body).await
}

async fn status_answer(
    node: &Shared,
    target: StatusTarget,
    body: &[u8],
) -> Result<Response, ApiError> {
    let req: StatusRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request is not a valid status: {e}")))?;
    let sent = send_status(node, target, req).await?;
    let code = if sent.repeated {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(code, &sent))
}

async fn post_action(
    State(node): State<Shared>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
    kind: ActionKind,
) -> Result<Response, ApiError> {
    let Path(document_id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let req: ActionRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the request is not a valid {}: {e}", kind.as_str()))
    })?;
    let sent = send_action(&node, kind, document_id, req).await?;
    Ok(json(StatusCode::CREATED, &sent))
}

async fn get_inbox_packet(
    State(node): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id: PacketId = raw
        .parse()
        .map_err(|e: exchange::packet_id::BadPacketId| ApiError::bad_request(e.to_string()))?;
    match node.db.inbox_entry(id).await? {
        Some((_, bytes)) => {
            Ok(([(header::CONTENT_TYPE, "application/xml")], bytes).into_response())
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("packet {id} is not in this node's inbox"),
        )),
    }
}

async fn get_track(
    State(node): State<Shared>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(document_id) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    match node.db.track(document_id.clone()).await? {
        Some(p) => {
            let mut view = TrackView::from(&p);
            view.requests = node
                .db
                .actions_of(document_id)
                .await?
                .iter()
                .map(OutboxItem::from)
                .collect();
            Ok(json(StatusCode::OK, &view))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("this node has sent no document with id {document_id:?}"),
        )),
    }
}

/// Health answers even when the database cannot be read: it says why, with 503, so a monitor
/// (or a clerk) sees "disk full" rather than a bare 500.
async fn get_health(State(node): State<Shared>) -> Result<Response, ApiError> {
    let counts = node.db.counts().await;
    let mut store = node.db.store().health();
    if let Err(e) = &counts {
        store.ok = false;
        if store.last_failure.is_none() {
            store.last_failure = Some(e.to_string());
        }
    }
    let code = if store.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json(
        code,
        &Health {
            agency: node.config.agency.clone(),
            hub_url: node.hub.current_url(),
            hub_urls: node.hub.urls().to_vec(),
            hub: node.hub.health().snapshot(),
            store,
            counts: counts.ok(),
            directory_issued_at: node.directory.issued_at(),
            directory_agencies: node.directory.len(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ApiClient, ClientError, InboxParams};
    use crate::db::{InboxEntry, IncomingDocument};
    use crate::outgoing::{compose_document, outgoing, sign};
    use crate::{Node, NodeConfig};
    use exchange::Timestamp;
    use exchange::status::status_received;
    use std::sync::Arc;

    fn certs() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs"))
    }

    fn config(dir: &std::path::Path, agency: &str) -> NodeConfig {
        let text = format!(
            r#"
            agency = "{agency}"
            hub_url = "https://127.0.0.1:9"
            data_dir = "{data}"
            certificate = "{certs}/agencies/{agency}.pem"
            private_key = "{certs}/agencies/{agency}.key.pem"
            trust = ["{certs}/ca.pem"]
            crl = ["{certs}/crl.pem"]
            hub_certificate = "{certs}/hub.pem"
            api_listen = "127.0.0.1:0"
            "#,
            data = dir.display(),
            certs = certs().display()
        );
        NodeConfig::from_toml(&text, dir, std::path::Path::new("test.toml")).unwrap()
    }

    /// A node (no workers) with its API served on a free loopback port.
    async fn serve(dir: &std::path::Path) -> (Shared, ApiClient) {
        let node: Shared = Arc::new(Node::open(config(dir, "000.00.00.G22")).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(axum::serve(listener, router(node.clone())).into_future());
        let client = ApiClient::new(addr, node.token.clone()).unwrap();
        (node, client)
    }

    fn request() -> serde_json::Value {
        serde_json::json!({
            "to": ["000.00.00.H41"],
            "subject": "Về việc thử nghiệm",
            "code": {"number": "12", "notation": "VPCP-TTĐT"},
            "promulgation": {"date": "2026/11/23"},
        })
    }

    fn api_error(e: ClientError) -> (u16, String, String) {
        match e {
            ClientError::Api {
                status,
                code,
                message,
            } => (status, code, message),
            other => panic!("not an API refusal: {other}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_is_required_except_for_health() {
        let dir = tempfile::tempdir().unwrap();
        let (node, client) = serve(dir.path()).await;
        let health = client.health().await.unwrap();
        assert_eq!(health.agency, "000.00.00.G22");
        assert_eq!(health.hub_url, "https://127.0.0.1:9");
        assert_eq!(health.hub_urls, ["https://127.0.0.1:9"]);
        assert_eq!(health.hub.reachable, None);

        let anonymous = reqwest_plain();
        let url = format!("http://{}/api/v1/outbox", client.addr());
        let resp = anonymous.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 401);
        let body: ApiErrorBody = resp.json().await.unwrap();
        assert_eq!(body.code, "unauthorized");
        assert!(body.message.contains("api.token"), "{}", body.message);

        let wrong = ApiClient::new(client.addr(), "0".repeat(64)).unwrap();
        let (status, _, message) = api_error(wrong.outbox(None, None).await.unwrap_err());
        assert_eq!(status, 401);
        assert!(message.contains("wrong"), "{message}");

        assert!(client.outbox(None, None).await.unwrap().items.is_empty());
        drop(node);
    }

    fn reqwest_plain() -> reqwest::Client {
        let tls = rustls::ClientConfig::builder_with_provider(net::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .build()
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn send_answers_only_after_commit_and_refusals_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (node, client) = serve(dir.path()).await;
        let sent = client.send(&request()).await.unwrap();
        assert_eq!(sent.document_id, "000.00.00.G22,2026/11/23,12/VPCP-TTĐT");
        // The answer came back: the packet and its queued outbox row are committed.
        let id: PacketId = sent.packet_id.parse().unwrap();
        let bytes = node.db.packet(id).await.unwrap().expect("packet committed");
        assert_eq!(PacketId::of(&bytes), id);
        let queued = node
            .db
            .track(sent.document_id.clone())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(queued.entry.state, crate::db::OutboxState::Queued);
        assert_eq!(queued.recipients.len(), 1);
        // Signed by this agency, verifiable by the recipient.
        let trust = trust();
        let v = verify_incoming(&bytes, &id, &trust, "000.00.00.H41").unwrap();
        assert_eq!(v.signer.agency_code.as_deref(), Some("000.00.00.G22"));
        let Packet::Document(d) = v.packet else {
            panic!()
        };
        assert_eq!(d.trace_headers.len(), 1);

        let before = node.db.counts().await.unwrap();
        let (status, code, message) = api_error(client.send(&request()).await.unwrap_err());
        assert_eq!((status, code.as_str()), (409, "duplicate_document"));
        assert!(message.contains(&sent.packet_id), "{message}");

        let mut other_sender = request();
        other_sender["from"] = "000.00.00.H14".into();
        other_sender["code"]["number"] = "13".into();
        let (status, code, _) = api_error(client.send(&other_sender).await.unwrap_err());
        assert_eq!((status, code.as_str()), (400, "wrong_sender"));

        let mut bad = request();
        bad["priority"] = 9.into();
        bad["code"]["number"] = "14".into();
        let (status, code, message) = api_error(client.send(&bad).await.unwrap_err());
        assert_eq!((status, code.as_str()), (400, "invalid_document"));
        assert!(message.contains("priority"), "{message}");

        let (status, code, _) = api_error(
            client
                .send(&serde_json::json!({"to": []}))
                .await
                .unwrap_err(),
        );
        assert_eq!((status, code.as_str()), (400, "bad_request"));

        assert_eq!(
            node.db.counts().await.unwrap(),
            before,
            "refusals stored nothing"
        );

        // Tracking by a document id holding '/' and ','.
        let track = client.track(&sent.document_id).await.unwrap();
        assert_eq!(track.packet_id, sent.packet_id);
        assert_eq!(track.state, "queued");
        assert_eq!(track.summary, "0/1 accepted, 0/1 delivered");
        let (status, _, _) = api_error(client.track("nope").await.unwrap_err());
        assert_eq!(status, 404);

        let outbox = client.outbox(Some("document"), None).await.unwrap();
        assert_eq!(outbox.items.len(), 1);
        let (status, _, message) =
            api_error(client.outbox(Some("letters"), None).await.unwrap_err());
        assert_eq!(status, 400);
        assert!(message.contains("letters"));
    }

    fn trust() -> dsig::TrustStore {
        dsig::TrustStore::from_pem_files(&[&certs().join("ca.pem")], &[]).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn inbox_listing_and_detail_with_signature_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let (node, client) = serve(dir.path()).await;
        // A document from H41 to G22, signed by H41, stored as the inbox poller would.
        let h41_dir = tempfile::tempdir().unwrap();
        let h41 = Node::open(config(h41_dir.path(), "000.00.00.H41")).unwrap();
        let req: crate::outgoing::SendDocument = serde_json::from_value(serde_json::json!({
            "to": ["000.00.00.G22"],
            "subject": "Báo cáo",
            "code": {"number": "5", "notation": "UBND"},
            "attachments": [{"name": "r.txt", "data": "aGVsbG8="}]
        }))
        .unwrap();
        let doc = compose_document(&req, &h41.me).unwrap();
        let bytes = sign(&Packet::Document(doc.clone()), &h41.identity).unwrap();
        let id = PacketId::of(&bytes);
        let status = Packet::Status(status_received(&doc, &node.me));
        let status_bytes = sign(&status, &node.identity).unwrap();
        let answer = outgoing(&status, status_bytes, clock::now_ms());
        let answer_id = answer.id;
        let now = clock::now_ms();
        let entry = InboxEntry {
            kind: PacketKind::Document,
            from: "000.00.00.H41".into(),
            from_name: "UBND Tỉnh Nghệ An".into(),
            document_id: doc.document_id.to_string(),
            subject: Some(doc.subject.clone()),
            code: Some("5/UBND".into()),
            priority: 0,
            status_code: None,
            received_at: Timestamp::from_unix_ms(now),
            state: InboxState::New,
            signer_subject: "s".into(),
            signer_agency: Some("000.00.00.H41".into()),
            answered_with: None,
            delivered_at: None,
            delivery_receipt: None,
            submission_receipt: None,
            statuses: Vec::new(),
            action: None,
            mark: None,
            agreed_mark: None,
        };
        node.db
            .receive_document(IncomingDocument {
                id,
                bytes,
                entry,
                answer,
            })
            .await
            .unwrap();
        let list = client.inbox(&InboxParams::default()).await.unwrap();
        assert_eq!(list.items.len(), 1);
        assert_eq!(list.items[0].answered_with, Some(answer_id.to_hex()));
        assert!(
            client
                .inbox(&InboxParams {
                    state: Some("new"),
                    from: Some("000.00.00.H14"),
                    ..InboxParams::default()
                })
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert!(
            client
                .inbox(&InboxParams {
                    kind: Some("status"),
                    ..InboxParams::default()
                })
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let (status, _, _) = api_error(
            client
                .inbox(&InboxParams {
                    state: Some("old"),
                    ..InboxParams::default()
                })
                .await
                .unwrap_err(),
        );
        assert_eq!(status, 400);

        let detail = client.inbox_item(&id.to_hex()).await.unwrap();
        assert!(detail.signature.valid, "{}", detail.signature.detail);
        assert!(detail.signature.detail.contains("000.00.00.H41"));
        assert_eq!(detail.attachments.len(), 1);
        assert_eq!(detail.attachments[0].size, 5);
        let answer = detail.answer.unwrap();
        assert_eq!(
            (answer.packet_id, answer.state.as_str()),
            (answer_id.to_hex(), "queued")
        );
        let (status, _, _) = api_error(client.inbox_item("zz").await.unwrap_err());
        assert_eq!(status, 400);
        let (status, _, _) = api_error(client.inbox_item(&"0".repeat(64)).await.unwrap_err());
        assert_eq!(status, 404);
    }
}
