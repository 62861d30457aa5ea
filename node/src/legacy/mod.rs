//! The national axis's client API (VDXP, `shared/spec/vdxp-api.md`) on a listener of its own
//! (`[legacy]` in `node.toml`), so that a document-management system built on the axis SDK
//! switches to this node by changing its endpoint URL and nothing else.
//!
//! The system hands the node unsigned packets as it does today; the node reads them
//! tolerantly, brings them to DocAxis's strict form (the legacy placeholder `Signature`
//! dropped, this node's `TraceHeader` added), signs them with the agency's certificate and
//! queues them exactly like the clerk API does ([`crate::send`], [`crate::status`]): same
//! lifecycle rules, same duplicate handling. What the node receives is handed out as received
//! (the signed bytes).
//!
//! Invariants:
//! - Every request is authenticated ([`auth`]); `from` and the packet's sender must be this
//!   node's agency; a refused request stores nothing.
//! - Answers are HTTP 200 with string `status`, `ErrorCode`, `ErrorDesc` (never `null`);
//!   `sendEdoc` always carries `DocId` and an ASCII `ErrorDesc`.
//! - A body over the limit is refused from its `Content-Length`, before it is read.
//! - The same bytes sent twice get the same `DocId` (the outbox remembers their SHA-256);
//!   other bytes under a `DocumentId` already sent are refused.
//! - Received packets leave a system's list only by its `done` (or after repeated `fail`s,
//!   see [`crate::db::LegacyUpdate`]), durably, per system.

pub mod auth;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

use edxml::{
    BussinessDocType, EdxmlDateTime, Packet, ReadOptions, StatusCode as EdxmlStatus, TraceHeader,
};
use exchange::clock;
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;

use self::auth::{System, authenticate, header as sdk_header, sdk_hash_file};
use super::Shared;
use super::db::{LegacyUpdate, NodeDbError};
use super::status::{StatusTarget, send_status};
use super::views::StatusRequest;

/// Most items one list answers.
const MAX_PAGE: usize = 500;

/// The legacy listener's configuration, secrets read.
#[derive(Debug, Clone)]
pub struct Legacy {
    pub systems: Vec<System>,
    pub max_body: usize,
}

impl Legacy {
    /// Reads the systems' secret files (blocking).
    pub fn load(node: &crate::config::NodeConfig) -> Result<Option<Legacy>, String> {
        let Some(l) = &node.legacy else {
            return Ok(None);
        };
        let mut systems = Vec::new();
        for s in &l.systems {
            let text = std::fs::read_to_string(&s.secret_file).map_err(|e| {
                format!(
                    "cannot read the secret of legacy system {:?} from {}: {e}",
                    s.system_id,
                    s.secret_file.display()
                )
            })?;
            let secret = text.trim().to_string();
            if secret.is_empty() {
                return Err(format!(
                    "the secret file {} of legacy system {:?} is empty",
                    s.secret_file.display(),
                    s.system_id
                ));
            }
            systems.push(System {
                id: s.system_id.clone(),
                secret,
            });
        }
        Ok(Some(Legacy {
            systems,
            max_body: l.max_body_bytes.unwrap_or(node.max_packet_bytes),
        }))
    }
}

type LegacyState = (Shared, Arc<Legacy>);

/// Every path goes to [`handle`]: the operation is the last segment (the SDK may prefix the
/// endpoint or double the slash).
pub fn router(node: Shared, legacy: Arc<Legacy>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state((node, legacy))
}

/// Error codes of `ErrorCode`.
mod code {
    pub(super) const AUTH: &str = "401";
    pub(super) const BAD_REQUEST: &str = "400";
    pub(super) const NOT_FOUND: &str = "404";
    pub(super) const REFUSED: &str = "409";
    pub(super) const TOO_LARGE: &str = "413";
    pub(super) const INTERNAL: &str = "500";
    pub(super) const UNKNOWN_OPERATION: &str = "501";
}

fn answer(mut body: Map<String, Value>) -> Response {
    body.entry("status").or_insert_with(|| "OK".into());
    body.entry("ErrorCode").or_insert_with(|| "0".into());
    body.entry("ErrorDesc").or_insert_with(|| "".into());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        Value::Object(body).to_string(),
    )
        .into_response()
}

fn ok(extra: Value) -> Response {
    let mut m = match extra {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.insert("status".into(), "OK".into());
    answer(m)
}

fn fail(code: &str, desc: impl Into<String>) -> Response {
    let mut m = Map::new();
    m.insert("status".into(), "FAIL".into());
    m.insert("ErrorCode".into(), code.into());
    m.insert("ErrorDesc".into(), desc.into().into());
    answer(m)
}

/// `sendEdoc`'s answers: `DocId` always there, `ErrorDesc` in ASCII (the SDK reads it so).
fn send_answer(doc_id: &str, failure: Option<(&str, String)>) -> Response {
    let mut m = Map::new();
    m.insert("DocId".into(), doc_id.into());
    if let Some((code, desc)) = failure {
        m.insert("status".into(), "FAIL".into());
        m.insert("ErrorCode".into(), code.into());
        m.insert("ErrorDesc".into(), ascii(&desc).into());
    }
    answer(m)
}

/// Vietnamese letters without their marks; anything else outside ASCII becomes `?`.
pub fn ascii(s: &str) -> String {
    const GROUPS: [(&str, char); 14] = [
        ("àáảãạăằắẳẵặâầấẩẫậ", 'a'),
        ("ÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬ", 'A'),
        ("èéẻẽẹêềếểễệ", 'e'),
        ("ÈÉẺẼẸÊỀẾỂỄỆ", 'E'),
        ("ìíỉĩị", 'i'),
        ("ÌÍỈĨỊ", 'I'),
        ("òóỏõọôồốổỗộơờớởỡợ", 'o'),
        ("ÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢ", 'O'),
        ("ùúủũụưừứửữự", 'u'),
        ("ÙÚỦŨỤƯỪỨỬỮỰ", 'U'),
        ("ỳýỷỹỵ", 'y'),
        ("ỲÝỶỸỴ", 'Y'),
        ("đ", 'd'),
        ("Đ", 'D'),
    ];
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                return c;
            }
            GROUPS
                .iter()
                .find(|(g, _)| g.contains(c))
                .map_or('?', |(_, base)| *base)
        })
        .collect()
}

/// The operation: the last non-empty path segment.
fn operation(path: &str) -> &str {
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("")
}

async fn handle(State((node, legacy)): State<LegacyState>, req: Request) -> Response {
    let op = operation(req.uri().path()).to_string();
    let method = req.method().clone();
    let headers = req.headers().clone();
    let send = op == "sendEdoc";
    let refuse = |code: &str, desc: String| {
        if send {
            send_answer("", Some((code, desc)))
        } else {
            fail(code, desc)
        }
    };
    if !(method == Method::POST || method == Method::GET) {
        return refuse(
            code::BAD_REQUEST,
            format!("{method} is not an operation's method"),
        );
    }
    // The limit, before reading the body.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > legacy.max_body as u64) {
        return refuse(
            code::TOO_LARGE,
            format!(
                "the body is {} bytes; this node accepts at most {} (max_body_bytes)",
                declared.unwrap_or_default(),
                legacy.max_body
            ),
        );
    }
    let required: &[&str] = if send {
        &["from", "hash-file", "messagetype"]
    } else {
        &[]
    };
    let system = match authenticate(&legacy.systems, &headers, required) {
        Ok(s) => s.clone(),
        Err(why) => {
            tracing::warn!(operation = %op, reason = %why, "legacy: request refused");
            return refuse(code::AUTH, why);
        }
    };
    let body = match axum::body::to_bytes(Body::new(req.into_body()), legacy.max_body).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(
                code::TOO_LARGE,
                format!(
                    "the body is larger than this node accepts ({} bytes, max_body_bytes)",
                    legacy.max_body
                ),
            );
        }
    };
    let out = match op.as_str() {
        "sendEdoc" => send_edoc(&node, &headers, &body).await,
        "getReceivedEdocList" => received_list(&node, &system, &headers).await,
        "getEdoc" => get_edoc(&node, &headers, false).await,
        "downloadEdoc" => get_edoc(&node, &headers, true).await,
        "updateStatus" => update_status(&node, &system, &headers).await,
        "getSentEdocList" => sent_list(&node, &headers).await,
        "countReceiveEdoc" => count(&node, &system, PacketKind::Document).await,
        "countReceiveStatus" => count(&node, &system, PacketKind::Status).await,
        "getAgenciesList" | "getAgenciesListQD20" | "getSynchronizeUnit" => agencies(&node, &op),
        "registerAgency" | "deleteAgency" => fail(
            code::REFUSED,
            "agencies are registered at the hub (docaxis hub agency add), not through a node",
        ),
        other => fail(
            code::UNKNOWN_OPERATION,
            format!("unknown operation {other:?}"),
        ),
    };
    tracing::debug!(operation = %op, system = %system.id, "legacy: answered");
    out
}

fn message_kind(headers: &HeaderMap) -> Result<PacketKind, String> {
    match sdk_header(headers, "messagetype")
        .unwrap_or_else(|| "edoc".into())
        .to_ascii_lowercase()
        .as_str()
    {
        "edoc" => Ok(PacketKind::Document),
        "status" => Ok(PacketKind::Status),
        other => Err(format!(
            "messagetype {other:?} is unknown: use edoc or status"
        )),
    }
}

/// `sendEdoc`.
async fn send_edoc(node: &Shared, headers: &HeaderMap, body: &[u8]) -> Response {
    let failed = |code: &str, desc: String| send_answer("", Some((code, desc)));
    let bytes = body.strip_suffix(b"\r\n").unwrap_or(body);
    let kind = match message_kind(headers) {
        Ok(k) => k,
        Err(e) => return failed(code::BAD_REQUEST, e),
    };
    let given = sdk_header(headers, "hash-file").unwrap_or_default();
    if !given.trim().eq_ignore_ascii_case(&sdk_hash_file(bytes)) {
        return failed(
            code::BAD_REQUEST,
            "hash-file is not the SHA-256 of the body (the file, without the SDK's final CRLF)"
                .into(),
        );
    }
    let me = node.config.agency.clone();
    let from = sdk_header(headers, "from").unwrap_or_default();
    if from.trim() != me {
        return failed(
            code::AUTH,
            format!("Don vi gui {from} khong dung voi ma da dang ky: {me}"),
        );
    }
    let limits = edxml::Limits {
        max_bytes: node.config.max_packet_bytes,
        ..edxml::Limits::default()
    };
    let opts = ReadOptions {
        limits,
        strict: false,
    };
    let owned = bytes.to_vec();
    let parsed = tokio::task::spawn_blocking(move || edxml::read(&owned, &opts)).await;
    let packet = match parsed {
        Ok(Ok(o)) => o.packet,
        Ok(Err(e)) => return failed(code::BAD_REQUEST, format!("the packet cannot be read: {e}")),
        Err(e) => return failed(code::INTERNAL, format!("reading failed: {e}")),
    };
    match (kind, packet) {
        (PacketKind::Document, Packet::Document(d)) => {
            let source = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes));
            match send_document(node, d, source).await {
                Ok(id) => send_answer(&id, None),
                Err((code, why)) => failed(code, why),
            }
        }
        (PacketKind::Status, Packet::Status(s)) => match send_status_packet(node, s).await {
            Ok(id) => send_answer(&id, None),
            Err((code, why)) => failed(code, why),
        },
        (PacketKind::Document, Packet::Status(_)) => failed(
            code::BAD_REQUEST,
            "messagetype is edoc but the packet is a status packet".into(),
        ),
        (PacketKind::Status, Packet::Document(_)) => failed(
            code::BAD_REQUEST,
            "messagetype is status but the packet is a document".into(),
        ),
    }
}

type Refused = (&'static str, String);

fn send_error(e: super::send::SendError) -> Refused {
    use super::send::SendError as E;
    let code = match &e {
        E::Invalid(_) | E::InvalidDocument(_) | E::TooLarge(_) => code::BAD_REQUEST,
        E::UnknownRecipient(_) | E::WrongSender(_) | E::Conflict { .. } => code::REFUSED,
        E::NotFound(_) => code::NOT_FOUND,
        _ => code::INTERNAL,
    };
    (code, e.to_string())
}

/// A document from the system: strict form, this node's trace point, signed, queued.
async fn send_document(
    node: &Shared,
    mut d: edxml::DocumentPacket,
    source: String,
) -> Result<String, Refused> {
    let me = node.me.organ_id.clone();
    if d.from.organ_id != me {
        return Err((
            code::AUTH,
            format!(
                "the packet's From/OrganId is {}, not this node's agency {me}",
                d.from.organ_id
            ),
        ));
    }
    if d.bussiness_doc_type() != BussinessDocType::New {
        return Err((
            code::REFUSED,
            format!(
                "a {} request (BussinessDocType {}) is sent from the clerk API or the desk \
                 (docaxis revoke/update/replace), not through the legacy API yet",
                d.bussiness_doc_type().label_en(),
                d.bussiness_doc_type().code()
            ),
        ));
    }
    exchange::document_id::check_new(d.document_id.as_str(), me.as_str())
        .map_err(|e| (code::BAD_REQUEST, e.to_string()))?;
    let codes: Vec<String> = d.to.iter().map(|o| o.organ_id.to_string()).collect();
    crate::directory::check_recipients(node.directory_access(), &codes)
        .await
        .map_err(|e| (code::REFUSED, e))?;
    d.trace_headers.push(TraceHeader {
        organ_id: me.clone(),
        timestamp: EdxmlDateTime::now(),
    });
    let identity = node.identity.clone();
    let max = node.config.max_packet_bytes;
    let packet = Packet::Document(d);
    let mut out = tokio::task::spawn_blocking(move || {
        crate::outgoing::sign_within_owned(packet, &identity, max)
            .map(|(packet, bytes)| crate::outgoing::outgoing(&packet, bytes, clock::now_ms()))
    })
    .await
    .map_err(|e| (code::INTERNAL, format!("signing failed: {e}")))?
    .map_err(|e| {
        (
            code::BAD_REQUEST,
            format!("the document cannot be sent: {e}"),
        )
    })?;
    out.entry.legacy_source = Some(source.clone());
    let id = out.id.to_hex();
    let document_id = out.entry.document_id.clone();
    match node.db.commit_outgoing(out).await {
        Ok(()) => {
            tracing::info!(document = %document_id, packet = %id,
                "legacy: document signed and queued");
            node.outbox_wake.notify_one();
            Ok(id)
        }
        Err(NodeDbError::DuplicateDocument { packet_id, .. }) => {
            let earlier = match packet_id.parse::<PacketId>() {
                Ok(p) => node.db.sent_packet(p).await.ok().flatten(),
                Err(_) => None,
            };
            match earlier {
                Some(p) if p.entry.legacy_source.as_deref() == Some(source.as_str()) => {
                    Ok(packet_id)
                }
                _ => Err((
                    code::REFUSED,
                    format!(
                        "document id {document_id:?} was already sent by this node (packet \
                         {packet_id}) with other content; give the new document its own id"
                    ),
                )),
            }
        }
        Err(e) => Err((code::INTERNAL, e.to_string())),
    }
}

/// A status from the system: through the same rules as a clerk's.
async fn send_status_packet(node: &Shared, s: edxml::StatusPacket) -> Result<String, Refused> {
    let me = node.me.organ_id.clone();
    if s.from.organ_id != me {
        return Err((
            code::AUTH,
            format!(
                "the status's From/OrganId is {}, not this node's agency {me}",
                s.from.organ_id
            ),
        ));
    }
    let document_id = s.response_for.document_id.to_string();
    let other = s.response_for.organ_id.to_string();
    if s.status_code == EdxmlStatus::Received {
        // 01 is this node's own, sent when the document arrived: answer with it.
        let found = node
            .db
            .received_by_document(document_id.clone(), Some(other.clone()))
            .await
            .map_err(|e| (code::INTERNAL, e.to_string()))?;
        return match found.first() {
            Some((_, e)) => Ok(e.answered_with.clone().unwrap_or_default()),
            None => Err((
                code::NOT_FOUND,
                format!("this node received no document {document_id:?} from {other}"),
            )),
        };
    }
    let take_back = exchange::lifecycle::sent_by_original_sender(s.status_code);
    let staff = s.staff_info.as_ref();
    let req = StatusRequest {
        code: s.status_code.as_str().to_string(),
        reason: s.description.clone(),
        staff: staff.and_then(|i| i.staff.clone()),
        position: staff.and_then(|i| i.department.clone()),
        from: (!take_back).then(|| other.clone()),
        to: take_back.then(|| other.clone()),
    };
    send_status(node, StatusTarget::Document(document_id), req)
        .await
        .map(|sent| sent.packet_id)
        .map_err(send_error)
}

fn page_size(headers: &HeaderMap) -> usize {
    sdk_header(headers, "pageSize")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(100)
        .min(MAX_PAGE)
}

fn vn_time(t: exchange::Timestamp) -> String {
    web::display::time(t)
}

/// `getReceivedEdocList`: what this system has not settled.
async fn received_list(node: &Shared, system: &System, headers: &HeaderMap) -> Response {
    let kind = match message_kind(headers) {
        Ok(k) => k,
        Err(e) => return fail(code::BAD_REQUEST, e),
    };
    let items = match node
        .db
        .legacy_pending(system.id.clone(), kind, page_size(headers), clock::now_ms())
        .await
    {
        Ok(i) => i,
        Err(e) => return fail(code::INTERNAL, e.to_string()),
    };
    let me = node.config.agency.clone();
    let data: Vec<Value> = items
        .into_iter()
        .map(|(id, e)| {
            let (state, _) = e.business_state();
            json!({
                "docId": id.to_hex(),
                "serviceType": "eDoc",
                "messageType": if kind == PacketKind::Document { "edoc" } else { "status" },
                "created_time": vn_time(e.received_at),
                "updated_time": vn_time(e.delivered_at.unwrap_or(e.received_at)),
                "from": e.from,
                "to": me,
                "status": "initial",
                "status_desc": state,
            })
        })
        .collect();
    ok(json!({ "data": data }))
}

fn doc_id(headers: &HeaderMap) -> Result<PacketId, String> {
    let raw = sdk_header(headers, "docId").unwrap_or_default();
    raw.trim()
        .parse::<PacketId>()
        .map_err(|_| format!("docId {raw:?} is not a DocId this node gave (64 hex digits)"))
}

/// `getEdoc` (base64 in JSON) and `downloadEdoc` (raw bytes).
async fn get_edoc(node: &Shared, headers: &HeaderMap, raw: bool) -> Response {
    let id = match doc_id(headers) {
        Ok(id) => id,
        Err(e) => return fail(code::BAD_REQUEST, e),
    };
    match node.db.inbox_entry(id).await {
        Ok(Some((_, bytes))) if raw => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        Ok(Some((_, bytes))) => {
            // A packet may be tens of megabytes: encode it off the executor.
            let encoded = tokio::task::spawn_blocking(move || {
                base64::engine::general_purpose::STANDARD.encode(bytes)
            })
            .await;
            match encoded {
                Ok(data) => ok(json!({ "data": data })),
                Err(e) => fail(code::INTERNAL, format!("encoding failed: {e}")),
            }
        }
        Ok(None) => fail(
            code::NOT_FOUND,
            format!("this node received no packet {}", id.to_hex()),
        ),
        Err(e) => fail(code::INTERNAL, e.to_string()),
    }
}

/// `updateStatus`: `done` settles a packet for this system; `fail` retries it later, then
/// sets it aside ([`crate::db::LegacyUpdate`]).
async fn update_status(node: &Shared, system: &System, headers: &HeaderMap) -> Response {
    let id = match doc_id(headers) {
        Ok(id) => id,
        Err(e) => return fail(code::BAD_REQUEST, e),
    };
    let status = sdk_header(headers, "status").unwrap_or_default();
    if status.trim().is_empty() {
        return fail(code::BAD_REQUEST, "status is missing (done, fail, …)");
    }
    match node
        .db
        .legacy_update(
            system.id.clone(),
            id,
            status.trim().to_string(),
            clock::now_ms(),
        )
        .await
    {
        Ok(LegacyUpdate::Done | LegacyUpdate::Noted) => ok(json!({})),
        Ok(LegacyUpdate::RetryAfter { until_ms, fails }) => ok(json!({
            "ErrorDesc": format!(
                "fail {fails} noted: listed again after {}",
                web::display::time(exchange::Timestamp::from_unix_ms(until_ms))
            ),
        })),
        Ok(LegacyUpdate::SetAside { fails }) => ok(json!({
            "ErrorDesc": format!(
                "fail {fails} noted: set aside for this system (no longer listed; the operator \
                 is told)"
            ),
        })),
        Err(NodeDbError::NotInInbox(_)) => fail(
            code::NOT_FOUND,
            format!("this node received no packet {}", id.to_hex()),
        ),
        Err(e) => fail(code::INTERNAL, e.to_string()),
    }
}

/// `getSentEdocList`: one row per recipient of what this node sent.
async fn sent_list(node: &Shared, headers: &HeaderMap) -> Response {
    let kind = match message_kind(headers) {
        Ok(k) => k,
        Err(e) => return fail(code::BAD_REQUEST, e),
    };
    let wanted = sdk_header(headers, "docId").filter(|d| !d.trim().is_empty());
    let packets = match &wanted {
        Some(d) => match d.trim().parse::<PacketId>() {
            Ok(id) => node
                .db
                .sent_packet(id)
                .await
                .map(|p| p.into_iter().collect()),
            Err(_) => node
                .db
                .track(d.trim().to_string())
                .await
                .map(|p| p.into_iter().collect()),
        },
        None => node.db.outbox_list(Some(kind), page_size(headers)).await,
    };
    let packets: Vec<crate::db::SentPacket> = match packets {
        Ok(p) => p,
        Err(e) => return fail(code::INTERNAL, e.to_string()),
    };
    let me = node.config.agency.clone();
    let mut data = Vec::new();
    for p in packets {
        let e = &p.entry;
        for (to, row) in &p.recipients {
            let last = row.last_status();
            let (send_status, send_desc) = match (&row.refused, row.accepted_at) {
                (Some(why), _) => ("fail", why.clone()),
                (None, Some(_)) => ("done", "accepted by the hub".to_string()),
                (None, None) => ("pending", e.state.as_str().to_string()),
            };
            data.push(json!({
                "serviceType": "eDoc",
                "receiverDocId": p.id.to_hex(),
                "toCode": to,
                "receiveStatus": last.map(|s| s.code.clone()).unwrap_or_default(),
                "receiveStatusDesc": row.state_name(),
                "title": e.subject.clone().unwrap_or_default(),
                "messageType": if e.kind == PacketKind::Document { "edoc" } else { "status" },
                "notation": crate::db::code_of(&e.document_id).unwrap_or_default(),
                "receivedTime": row.delivered_at.map(vn_time).unwrap_or_default(),
                "sentTime": e.submitted_at.map(vn_time).unwrap_or_else(|| vn_time(e.created_at)),
                "sendStatus": send_status,
                "sendStatusDesc": send_desc,
                "senderDocId": e.document_id,
                "fromCode": me,
            }));
        }
    }
    ok(json!({ "data": data }))
}

/// `countReceiveEdoc` / `countReceiveStatus`.
async fn count(node: &Shared, system: &System, kind: PacketKind) -> Response {
    match node
        .db
        .legacy_pending(system.id.clone(), kind, 100_000, clock::now_ms())
        .await
    {
        Ok(items) => ok(json!({ "count": items.len() })),
        Err(e) => fail(code::INTERNAL, e.to_string()),
    }
}

/// The three agency lists, from the hub's signed directory.
fn agencies(node: &Shared, op: &str) -> Response {
    let list = node.directory.agencies();
    let issued_at = node.directory.issued_at();
    let issued = issued_at.map(vn_time).unwrap_or_default();
    // A unit's version: the directory copy it comes from (Unix seconds of its issue), so that
    // it grows whenever the hub publishes a new directory.
    let version = issued_at.map_or(0, |t| t.unix_ms() / 1000);
    let data: Vec<Value> = list
        .into_iter()
        .enumerate()
        .map(|(i, (code, name, active))| match op {
            "getAgenciesListQD20" => json!({
                "id": (i + 1).to_string(), "code": code, "name": name, "mail": "",
                "code102": code,
            }),
            "getSynchronizeUnit" => json!({
                "id": (i + 1).to_string(), "pid": "", "code": code, "name": name, "mail": "",
                "version": version, "centerCode": "", "deleted": !active, "modifyDate": issued,
                "isAgency": true,
            }),
            _ => json!({
                "id": (i + 1).to_string(), "pid": "", "code": code, "name": name, "mail": "",
                "oldCode": "",
            }),
        })
        .collect();
    ok(json!({ "data": data }))
}

/// Calls operation `op` of a node's legacy API as a document system on the SDK would (for
/// the demo and tools): POST, the options as signed `XroadVnpt-` headers, an empty body;
/// returns the JSON answer.
pub async fn sdk_call(
    endpoint: &str,
    system_id: &str,
    secret: &str,
    op: &str,
    options: &[(&str, &str)],
) -> Result<Value, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.post(format!("{}/{op}", endpoint.trim_end_matches('/')));
    for (k, v) in auth::sdk_headers(system_id, secret, options) {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| format!("{op}: {e}"))?;
    let bytes = resp.bytes().await.map_err(|e| format!("{op}: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{op} answered no JSON: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operation_is_the_last_segment_whatever_the_prefix() {
        assert_eq!(operation("/sendEdoc"), "sendEdoc");
        assert_eq!(operation("//getEdoc"), "getEdoc");
        assert_eq!(
            operation("/vxp/api/getReceivedEdocList/"),
            "getReceivedEdocList"
        );
        assert_eq!(operation("/"), "");
    }

    #[test]
    fn send_edoc_error_texts_are_ascii() {
        let t = ascii("Đơn vị gửi không đúng — “mã” đã đăng ký");
        assert!(t.is_ascii(), "{t}");
        assert_eq!(t, "Don vi gui khong dung ? ?ma? da dang ky");
    }
}
