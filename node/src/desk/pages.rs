//! The desk's reading pages and the forms that answer a document: each handler reads what it
//! shows from the node database at request time, shapes display strings here, and renders
//! them in the shared layout (askama escapes every value).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use edxml::{Packet, Priority, ReadOptions, StatusCode as Code, read};
use exchange::clock::{self, Timestamp};
use exchange::lifecycle::{ActionKind, Decision};
use exchange::packet_id::PacketId;
use web::display;
use web::{Chrome, Session};

use super::{Desk, Person, is_admin};
use crate::actions::{ActionRequest, send_action};
use crate::client::encode_segment;
use crate::db::{InboxFilter, PacketKind, closed_by_mark};
use crate::incoming::verify_incoming;
use crate::send::SendError;
use crate::status::{StatusTarget, send_status};
use crate::views::{StatusRequest, TimelineEvent, inbox_timeline, timeline};

const NAV: &[(&str, &str, &str)] = &[
    ("/inbox", "Văn bản đến", "Inbox"),
    ("/compose", "Soạn văn bản", "Compose"),
    ("/sent", "Văn bản đi", "Sent"),
];
const NAV_ADMIN: &[(&str, &str, &str)] = &[
    ("/inbox", "Văn bản đến", "Inbox"),
    ("/compose", "Soạn văn bản", "Compose"),
    ("/sent", "Văn bản đi", "Sent"),
    ("/users", "Tài khoản", "Accounts"),
];
const NAV_RECORDS: &[(&str, &str, &str)] = &[
    ("/inbox", "Văn bản đến", "Inbox"),
    ("/sent", "Văn bản đi", "Sent"),
];

/// The layout's chrome for `current`, with the navigation the person's role uses.
pub(super) fn chrome(current: &str, person: Option<&Person>) -> Chrome {
    let nav = match person.map(|p| p.user.role) {
        Some(r) if is_admin(r) => NAV_ADMIN,
        Some(r) if !r.may_send() => NAV_RECORDS,
        _ => NAV,
    };
    Chrome::new(
        "Văn thư điện tử",
        "Clerk's desk — document exchange",
        nav,
        current,
        person.map(|p| &p.session),
        "/logout",
    )
}

fn chrome_of_session(session: Option<&Session>) -> Chrome {
    Chrome::new(
        "Văn thư điện tử",
        "Clerk's desk — document exchange",
        NAV,
        "",
        session,
        "/logout",
    )
}

pub(super) fn render(status: StatusCode, t: &impl Template) -> Response {
    web::assets::page(status, t)
}

fn t(ts: Timestamp) -> String {
    display::time(ts)
}

fn ot(ts: Option<Timestamp>) -> String {
    ts.map(display::time).unwrap_or_default()
}

// ---- messages ----

#[derive(Template)]
#[template(path = "desk/message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    title: &'a str,
    text: &'a str,
    back: &'a str,
}

/// A page saying one thing (errors, refusals).
pub(super) fn message(
    status: StatusCode,
    person: Option<&Person>,
    title: &str,
    text: &str,
) -> Response {
    render(
        status,
        &MessagePage {
            chrome: chrome("", person),
            title,
            text,
            back: "/inbox",
        },
    )
}

/// The store could not be read or written.
pub(super) fn store_error(session: Option<&Session>, detail: &str) -> Response {
    render(
        StatusCode::SERVICE_UNAVAILABLE,
        &MessagePage {
            chrome: chrome_of_session(session),
            title: "Không đọc được cơ sở dữ liệu · Database unavailable",
            text: &format!(
                "Nút không đọc hoặc ghi được cơ sở dữ liệu; không có gì thay đổi. Hãy báo quản trị \
                 viên. (The node database failed: {detail})"
            ),
            back: "/inbox",
        },
    )
}

fn not_found(person: &Person, what: &str) -> Response {
    message(
        StatusCode::NOT_FOUND,
        Some(person),
        "Không tìm thấy · Not found",
        &format!("Nút này không có {what}. (This node holds no such record.)"),
    )
}

/// A refusal from the sending services as a page, with the form to go back to.
fn refused(person: &Person, e: SendError, back: &str) -> Response {
    let status = send_error_status(&e);
    render(
        status,
        &MessagePage {
            chrome: chrome("", Some(person)),
            title: "Không thực hiện được · Refused",
            text: &format!("Không có gì được gửi hay lưu. (Nothing was sent or stored.) {e}"),
            back,
        },
    )
}

/// The HTTP status of a refusal from the sending services, as the JSON API maps it.
pub(super) fn send_error_status(e: &SendError) -> StatusCode {
    use crate::db::NodeDbError as D;
    match e {
        SendError::NotFound(_) => StatusCode::NOT_FOUND,
        SendError::Conflict { .. } => StatusCode::CONFLICT,
        SendError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        SendError::Db(D::DuplicateDocument { .. } | D::Transition(_) | D::Closed(_)) => {
            StatusCode::CONFLICT
        }
        SendError::Db(D::NotInInbox(_) | D::NotSent(_) | D::NotRecipient { .. }) => {
            StatusCode::NOT_FOUND
        }
        SendError::Db(_) | SendError::Internal(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

macro_rules! person_or_return {
    ($d:expr, $headers:expr) => {
        match $d.person(&$headers).await {
            Ok(p) => p,
            Err(r) => return r,
        }
    };
}

macro_rules! or_store_error {
    ($person:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return store_error(Some(&$person.session), &e.to_string()),
        }
    };
}

// ---- login ----

#[derive(Template)]
#[template(path = "desk/login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    csrf: String,
    error: Option<String>,
    name: &'a str,
    agency: &'a str,
}

pub(super) fn login_page(
    d: &Desk,
    status: StatusCode,
    error: Option<String>,
    name: &str,
) -> Response {
    let (csrf, cookie) = d.sessions.login_form();
    let mut r = render(
        status,
        &LoginPage {
            chrome: chrome("", None),
            csrf,
            error,
            name,
            agency: &d.node.me.organ_name,
        },
    );
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

// ---- labels ----

/// Vietnamese and English names of a business state.
pub(super) fn state_label(state: &str) -> (&'static str, &'static str) {
    match state {
        "nothing" => ("chưa có trạng thái", "no status yet"),
        "new" => ("đã đến", "received"),
        "rejected" => ("đã từ chối", "rejected"),
        "accepted" => ("đã tiếp nhận", "accepted"),
        "assigned" => ("đã phân công", "assigned"),
        "processing" => ("đang xử lý", "processing"),
        "completed" => ("đã hoàn thành", "completed"),
        "taken_back" => ("đã trả lại cho nơi gửi", "taken back"),
        "agreed" => ("đã đồng ý yêu cầu", "request agreed"),
        "refused" => ("đã từ chối yêu cầu", "request refused"),
        "revoked" => ("đã bị thu hồi", "revoked"),
        "updated" => ("đã được cập nhật", "updated"),
        "replaced" => ("đã được thay thế", "replaced"),
        "removed" => ("đã bỏ khỏi nơi nhận", "removed"),
        _ => ("không rõ", "unknown"),
    }
}

fn state_class(state: &str) -> &'static str {
    match state {
        "new" | "nothing" => "info",
        "rejected" | "refused" | "revoked" | "removed" | "taken_back" => "bad",
        "completed" | "agreed" => "ok",
        _ => "warn",
    }
}

fn priority_label(p: u8) -> (String, bool) {
    let p = Priority::from_code(p).unwrap_or_default();
    (p.label_vi().to_string(), p >= Priority::VeryUrgent)
}

struct Event {
    at: String,
    event: String,
    anomaly: String,
}

fn events(list: Vec<TimelineEvent>) -> Vec<Event> {
    list.into_iter()
        .map(|e| Event {
            at: t(e.at),
            event: e.event,
            anomaly: e.anomaly.unwrap_or_default(),
        })
        .collect()
}

// ---- inbox ----

#[derive(Debug, Default, Deserialize)]
pub(super) struct InboxQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    priority: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

struct InboxRow {
    packet_id: String,
    code: String,
    subject: String,
    from: String,
    from_name: String,
    received: String,
    priority: String,
    urgent: bool,
    state: String,
    state_en: String,
    state_class: &'static str,
    unread: bool,
    request: String,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "desk/inbox.html")]
struct InboxPage {
    chrome: Chrome,
    rows: Vec<InboxRow>,
    states: Vec<Choice>,
    senders: Vec<Choice>,
    priorities: Vec<Choice>,
    since: String,
    until: String,
    error: Option<String>,
    unread: usize,
    urgent: usize,
}

const STATES: &[&str] = &[
    "new",
    "accepted",
    "assigned",
    "processing",
    "completed",
    "rejected",
    "take_back_requested",
    "taken_back",
    "revoked",
    "updated",
    "replaced",
];

fn choices(options: Vec<(String, String)>, current: &str) -> Vec<Choice> {
    options
        .into_iter()
        .map(|(value, label)| Choice {
            selected: value == current,
            value,
            label,
        })
        .collect()
}

pub(super) async fn inbox(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    query: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = person_or_return!(d, headers);
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let mut error = None;
    let business = Some(q.state.trim())
        .filter(|s| STATES.contains(s))
        .map(str::to_string);
    if !q.state.trim().is_empty() && business.is_none() {
        error = Some(format!(
            "Trạng thái {:?} không có. (Unknown state.)",
            q.state
        ));
    }
    let priority = match q.priority.trim() {
        "" => None,
        v => match v.parse::<u8>() {
            Ok(n) if n <= 4 => Some(n),
            _ => {
                error = Some(format!("Độ khẩn {v:?} không có. (Unknown priority.)"));
                None
            }
        },
    };
    let mut bound = |v: &str, end: bool, name: &str| match v.trim() {
        "" => None,
        s => match clock::parse_bound(s, end) {
            Ok(ms) => Some(ms),
            Err(e) => {
                error = Some(format!("{name}: {e}"));
                None
            }
        },
    };
    let since_ms = bound(&q.since, false, "Từ ngày (since)");
    let until_ms = bound(&q.until, true, "Đến ngày (until)");
    let filter = InboxFilter {
        state: None,
        business,
        from: Some(q.from.trim().to_string()).filter(|f| !f.is_empty()),
        kind: Some(PacketKind::Document),
        priority,
        since_ms,
        until_ms,
    };
    let list = or_store_error!(p, d.node.db.inbox_list(filter, 500).await);
    let ids: Vec<PacketId> = list.iter().map(|(id, _)| *id).collect();
    let opened = or_store_error!(p, d.node.db.opened(ids).await);
    let mut rows: Vec<InboxRow> = list
        .iter()
        .zip(opened)
        .map(|((id, e), opened)| {
            let (state, take_back) = e.business_state();
            let (vi, en) = state_label(&state);
            let (priority, urgent) = priority_label(e.priority);
            InboxRow {
                packet_id: id.to_hex(),
                code: e.code.clone().unwrap_or_default(),
                subject: e.subject.clone().unwrap_or_default(),
                from: e.from.clone(),
                from_name: e.from_name.clone(),
                received: t(e.received_at),
                priority,
                urgent,
                state: vi.to_string(),
                state_en: en.to_string(),
                state_class: state_class(&state),
                unread: opened.is_none(),
                request: match (&e.action, take_back) {
                    (Some(a), _) => format!("Yêu cầu {}", action_label(a.kind).0),
                    (None, true) => "Nơi gửi đề nghị lấy lại".into(),
                    _ => String::new(),
                },
            }
        })
        .collect();
    // Urgent first (thượng khẩn, hỏa tốc), each group newest first (the listing's order).
    rows.sort_by_key(|r| !r.urgent);
    let mut senders: Vec<(String, String)> = list
        .iter()
        .map(|(_, e)| (e.from.clone(), format!("{} ({})", e.from_name, e.from)))
        .collect();
    if !q.from.trim().is_empty() && !senders.iter().any(|(c, _)| c == q.from.trim()) {
        senders.push((q.from.trim().to_string(), q.from.trim().to_string()));
    }
    senders.sort();
    senders.dedup();
    let page = InboxPage {
        chrome: chrome("/inbox", Some(&p)),
        unread: rows.iter().filter(|r| r.unread).count(),
        urgent: rows.iter().filter(|r| r.urgent).count(),
        rows,
        states: choices(
            STATES
                .iter()
                .map(|s| {
                    let label = if *s == "take_back_requested" {
                        "chờ trả lời đề nghị lấy lại".to_string()
                    } else {
                        state_label(s).0.to_string()
                    };
                    (s.to_string(), label)
                })
                .collect(),
            q.state.trim(),
        ),
        senders: choices(senders, q.from.trim()),
        priorities: choices(
            Priority::ALL
                .iter()
                .map(|p| (p.code().to_string(), p.label_vi().to_string()))
                .collect(),
            q.priority.trim(),
        ),
        since: q.since,
        until: q.until,
        error,
    };
    render(StatusCode::OK, &page)
}

// ---- one received document ----

struct FileRow {
    index: usize,
    name: String,
    size: String,
    content_type: String,
    pdf: bool,
}

struct ActionOption {
    code: &'static str,
    label: &'static str,
    label_en: &'static str,
    needs_reason: bool,
    assign: bool,
    danger: bool,
}

#[derive(Template)]
#[template(path = "desk/document.html")]
struct DocumentPage {
    chrome: Chrome,
    packet_id: String,
    /// The records package of this document (ASiC-E).
    archive_href: String,
    code: String,
    date: String,
    issuer: String,
    issuer_code: String,
    subject: String,
    content: String,
    doc_type: String,
    signer: String,
    priority: String,
    urgent: bool,
    received: String,
    state: String,
    state_en: String,
    state_class: &'static str,
    files: Vec<FileRow>,
    first_pdf: Option<usize>,
    signature_ok: bool,
    signature: String,
    signer_subject: String,
    signer_agency: String,
    history: Vec<Event>,
    actions: Vec<ActionOption>,
    may_send: bool,
    csrf: String,
    request: String,
    request_reason: String,
    closed: String,
    done: Option<String>,
}

fn action_label(kind: ActionKind) -> (&'static str, &'static str) {
    match kind {
        ActionKind::Revoke => ("thu hồi", "revoke"),
        ActionKind::Update => ("cập nhật", "update"),
        ActionKind::Replace => ("thay thế", "replace"),
    }
}

/// The statuses a clerk may send now on a received document, in the order they come.
fn allowed(e: &crate::db::InboxEntry) -> Vec<ActionOption> {
    let lifecycle = e.replay().lifecycle;
    let all = [
        (
            Code::Accepted,
            "Tiếp nhận",
            "accept (03)",
            false,
            false,
            false,
        ),
        (Code::Rejected, "Từ chối", "reject (02)", true, false, true),
        (
            Code::Assigned,
            "Phân công xử lý",
            "assign (04)",
            false,
            true,
            false,
        ),
        (
            Code::Processing,
            "Đang xử lý",
            "processing (05)",
            false,
            false,
            false,
        ),
        (
            Code::Completed,
            "Hoàn thành",
            "done (06)",
            false,
            false,
            false,
        ),
        (
            Code::Agreed,
            "Đồng ý yêu cầu",
            "agree (15)",
            false,
            false,
            false,
        ),
        (
            Code::Refused,
            "Từ chối yêu cầu",
            "refuse (16)",
            true,
            false,
            true,
        ),
    ];
    all.into_iter()
        .filter(|(code, ..)| {
            lifecycle.check_send(*code) == Ok(Decision::Apply)
                && closed_by_mark(e.mark.as_ref(), code.as_str()).is_none()
        })
        .map(
            |(code, label, label_en, needs_reason, assign, danger)| ActionOption {
                code: code.as_str(),
                label,
                label_en,
                needs_reason,
                assign,
                danger,
            },
        )
        .collect()
}

fn human_size(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MB", n as f64 / (1024.0 * 1024.0))
    }
}

// The error side is the page to answer with, built once per refused request.
#[allow(clippy::result_large_err)]
fn parse_packet(p: &Person, raw: &str) -> Result<PacketId, Response> {
    raw.parse::<PacketId>().map_err(|_| {
        message(
            StatusCode::BAD_REQUEST,
            Some(p),
            "Mã gói tin không hợp lệ · Bad packet id",
            "Mã gói tin gồm 64 chữ số hệ 16. (A packet id is 64 hex digits.)",
        )
    })
}

/// The received document a page's packet id names in this node's inbox, with its bytes; the
/// page to answer otherwise (a bad id, a status packet, nothing, a database failure).
// The error side is the page to answer with, built once per refused request.
#[allow(clippy::result_large_err)]
async fn received_document(
    d: &Desk,
    p: &Person,
    raw: &str,
) -> Result<(PacketId, crate::db::InboxEntry, Vec<u8>), Response> {
    let id = parse_packet(p, raw)?;
    match d.node.db.inbox_entry(id).await {
        Ok(Some((entry, bytes))) if entry.kind == PacketKind::Document => Ok((id, entry, bytes)),
        Ok(Some(_)) => Err(not_found(
            p,
            "văn bản đến với mã gói tin này (đây là một gói trạng thái)",
        )),
        Ok(None) => Err(not_found(p, "văn bản đến với mã gói tin này")),
        Err(e) => Err(store_error(Some(&p.session), &e.to_string())),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DoneQuery {
    #[serde(default)]
    done: String,
}

pub(super) async fn document(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    UrlPath(raw): UrlPath<String>,
    query: Result<Query<DoneQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = person_or_return!(d, headers);
    let (id, entry, bytes) = match received_document(&d, &p, &raw).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    // Only someone who handles documents marks one as seen: a records account reading it
    // must not take the "new" mark away from the clerks.
    if p.user.role.may_send() {
        or_store_error!(p, d.node.db.mark_opened(id, p.user.name.clone()).await);
    }
    let trust = d.node.trust.current();
    let me = d.node.config.agency.clone();
    let verified = tokio::task::spawn_blocking(move || {
        let verdict = verify_incoming(&bytes, &id, &trust, &me).map(|v| {
            (
                format!(
                    "Chữ ký hợp lệ: ký bởi {} ({}), {} / {}",
                    v.signer
                        .agency_code
                        .as_deref()
                        .unwrap_or("không có mã cơ quan"),
                    v.signer.signer_subject,
                    v.signer.signature_algorithm,
                    v.signer.digest_algorithm
                ),
                v.packet,
            )
        });
        match verdict {
            Ok((text, packet)) => (true, text, Some(packet)),
            Err(e) => (
                false,
                format!("Chữ ký KHÔNG hợp lệ theo tin cậy hiện tại: {e}"),
                read(&bytes, &ReadOptions::default()).ok().map(|o| o.packet),
            ),
        }
    })
    .await;
    let Ok((signature_ok, signature, packet)) = verified else {
        return store_error(Some(&p.session), "the verification task failed");
    };
    let Some(Packet::Document(doc)) = packet else {
        return store_error(Some(&p.session), "the stored packet cannot be read");
    };
    let (state, _) = entry.business_state();
    let (vi, en) = state_label(&state);
    let (priority, urgent) = priority_label(entry.priority);
    let files: Vec<FileRow> = doc
        .attachments
        .iter()
        .enumerate()
        .map(|(i, a)| FileRow {
            index: i,
            name: a.name.clone(),
            size: human_size(a.decoded_len()),
            content_type: a.content_type.clone(),
            pdf: is_pdf(&a.name, &a.content_type),
        })
        .collect();
    let may_send = p.user.role.may_send();
    let (request, request_reason) = match (&entry.action, &doc.bussiness) {
        (Some(a), b) => (
            format!(
                "Đây là yêu cầu {} văn bản {} ({}).",
                action_label(a.kind).0,
                a.original,
                action_label(a.kind).1
            ),
            b.as_ref()
                .and_then(|b| b.reason.clone())
                .unwrap_or_default(),
        ),
        _ => (String::new(), String::new()),
    };
    let page = DocumentPage {
        chrome: chrome("/inbox", Some(&p)),
        archive_href: archive_href(&id.to_hex()),
        packet_id: id.to_hex(),
        code: format!("{}/{}", doc.code.code_number, doc.code.code_notation),
        date: format!(
            "{}{}",
            doc.promulgation_info.promulgation_date,
            doc.promulgation_info
                .place
                .as_deref()
                .map(|p| format!(", {p}"))
                .unwrap_or_default()
        ),
        issuer: doc.from.organ_name.clone(),
        issuer_code: doc.from.organ_id.to_string(),
        subject: doc.subject.clone(),
        content: doc.content.clone().unwrap_or_default(),
        doc_type: doc.document_type.type_name.clone().unwrap_or_default(),
        signer: doc
            .signer_info
            .as_ref()
            .map(|s| {
                [
                    s.competence.as_deref(),
                    s.position.as_deref(),
                    Some(s.full_name.as_str()),
                ]
                .into_iter()
                .flatten()
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
                .join(" · ")
            })
            .unwrap_or_default(),
        priority,
        urgent,
        received: t(entry.received_at),
        state: vi.to_string(),
        state_en: en.to_string(),
        state_class: state_class(&state),
        first_pdf: files.iter().find(|f| f.pdf).map(|f| f.index),
        files,
        signature_ok,
        signature,
        signer_subject: entry.signer_subject.clone(),
        signer_agency: entry.signer_agency.clone().unwrap_or_default(),
        history: events(inbox_timeline(&entry)),
        actions: if may_send {
            allowed(&entry)
        } else {
            Vec::new()
        },
        may_send,
        csrf: p.session.csrf.clone(),
        request,
        request_reason,
        closed: entry
            .mark
            .as_ref()
            .map(|m| {
                format!(
                    "Văn bản {} theo yêu cầu {} (đồng ý lúc {}).",
                    state_label(&m.state).0,
                    m.by_document,
                    t(m.at)
                )
            })
            .unwrap_or_default(),
        done: query
            .ok()
            .map(|Query(q)| q.done)
            .filter(|d| !d.is_empty())
            .map(|code| format!("Đã gửi trạng thái {code}. (Status {code} signed and queued.)")),
    };
    render(StatusCode::OK, &page)
}

fn is_pdf(name: &str, content_type: &str) -> bool {
    content_type.eq_ignore_ascii_case("application/pdf")
        || name.to_ascii_lowercase().ends_with(".pdf")
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FileQuery {
    #[serde(default)]
    inline: Option<String>,
}

/// One attachment of a received document: a download, or (`?inline=1`, PDFs only) shown in
/// the browser.
/// The desk address of a document's records package.
fn archive_href(key: &str) -> String {
    format!("/archive/{}", crate::client::encode_segment(key))
}

/// `GET /archive/{key}`: the document's ASiC-E container ([`crate::archive`]), for anyone
/// logged in (records staff archive it; clerks may keep a copy).
pub(super) async fn archive(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    UrlPath(key): UrlPath<String>,
) -> Response {
    let p = person_or_return!(d, headers);
    match crate::archive::export(&d.node, &key).await {
        Ok(Some(e)) => {
            tracing::info!(account = %p.user.name, document = %e.document_id,
                "desk: archive package downloaded");
            crate::archive::container_response(e)
        }
        Ok(None) => not_found(&p, "văn bản này"),
        Err(e) => store_error(Some(&p.session), &e.to_string()),
    }
}

pub(super) async fn file(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    UrlPath((raw, index)): UrlPath<(String, usize)>,
    query: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = person_or_return!(d, headers);
    let (_, _, bytes) = match received_document(&d, &p, &raw).await {
        Ok(found) => found,
        Err(r) => return r,
    };
    let decoded = tokio::task::spawn_blocking(move || {
        let packet = read(&bytes, &ReadOptions::default()).ok()?.packet;
        let Packet::Document(doc) = packet else {
            return None;
        };
        let a = doc.attachments.get(index)?;
        let data = a.decoded().ok()?;
        Some((a.name.clone(), a.content_type.clone(), data))
    })
    .await
    .ok()
    .flatten();
    let Some((name, content_type, data)) = decoded else {
        return not_found(&p, "tệp đính kèm này");
    };
    let pdf = is_pdf(&name, &content_type);
    let inline = pdf && query.ok().and_then(|Query(q)| q.inline).is_some();
    let safe_name: String = name
        .chars()
        .map(|c| {
            if c.is_control() || c == '"' || c == '\\' {
                '_'
            } else {
                c
            }
        })
        .collect();
    let disposition = format!(
        "{}; filename=\"{}\"; filename*=UTF-8''{}",
        if inline { "inline" } else { "attachment" },
        safe_name
            .chars()
            .map(|c| if c.is_ascii() { c } else { '_' })
            .collect::<String>(),
        encode_segment(&safe_name)
    );
    let mime = if pdf {
        "application/pdf".to_string()
    } else {
        // Never let a browser render an attachment as a page of this site.
        "application/octet-stream".to_string()
    };
    let mut r = (
        [
            (header::CONTENT_TYPE, mime),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        data,
    )
        .into_response();
    r = if inline {
        web::assets::framable_file_headers(r)
    } else {
        web::assets::security_headers(r)
    };
    r
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    assignee: String,
}

/// A clerk's status on a received document (02–06, 15, 16).
pub(super) async fn post_status(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    UrlPath(raw): UrlPath<String>,
    Form(form): Form<StatusForm>,
) -> Response {
    let p = match d.sender(&headers, &form.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let id = match parse_packet(&p, &raw) {
        Ok(id) => id,
        Err(r) => return r,
    };
    let back = format!("/inbox/{}", id.to_hex());
    let code = form.code.trim().to_string();
    let mut reason = Some(form.reason.trim().to_string()).filter(|r| !r.is_empty());
    if code == "04" {
        let assignee = form.assignee.trim();
        if assignee.is_empty() {
            return refused(
                &p,
                SendError::invalid("phân công (04) cần tên người được giao (assignee)"),
                &back,
            );
        }
        reason = Some(match reason {
            Some(r) => format!("Giao cho {assignee}: {r}"),
            None => format!("Giao cho {assignee}"),
        });
    }
    let req = StatusRequest {
        code,
        reason,
        staff: Some(p.user.full_name.clone()),
        position: p.user.position.clone(),
        ..StatusRequest::default()
    };
    match send_status(&d.node, StatusTarget::Received(id), req).await {
        Ok(sent) => {
            tracing::info!(account = %p.user.name, code = %sent.code, document = %sent.document_id, "status sent from the desk");
            Redirect::to(&format!("{back}?done={}", sent.code)).into_response()
        }
        Err(e) => refused(&p, e, &back),
    }
}

// ---- sent documents ----

struct SentRow {
    document_id: String,
    link: String,
    code: String,
    subject: String,
    created: String,
    state: String,
    state_class: &'static str,
    summary: String,
    business: String,
    request: String,
}

#[derive(Template)]
#[template(path = "desk/sent.html")]
struct SentPage {
    chrome: Chrome,
    rows: Vec<SentRow>,
}

fn outbox_state(state: &str) -> (&'static str, &'static str) {
    match state {
        "queued" => ("đang chờ gửi lên trục", "warn"),
        "submitted" => ("trục đã tiếp nhận", "ok"),
        "failed" => ("không gửi được", "bad"),
        _ => ("không rõ", "warn"),
    }
}

/// "3/5 đã tiếp nhận, 1 từ chối, 1 chưa trả lời" for the recipients' business states.
fn business_line(states: &[String]) -> String {
    let n = states.len();
    let count = |f: &dyn Fn(&str) -> bool| states.iter().filter(|s| f(s)).count();
    let accepted = count(&|s| matches!(s, "accepted" | "assigned" | "processing" | "completed"));
    let completed = count(&|s| s == "completed");
    let rejected = count(&|s| s == "rejected");
    let pending = count(&|s| matches!(s, "nothing" | "new"));
    let mut parts = vec![format!("{accepted}/{n} đã tiếp nhận")];
    if completed > 0 {
        parts.push(format!("{completed} đã hoàn thành"));
    }
    if rejected > 0 {
        parts.push(format!("{rejected} từ chối"));
    }
    if pending > 0 {
        parts.push(format!("{pending} chưa trả lời"));
    }
    let other = n - accepted - rejected - pending;
    if other > 0 {
        parts.push(format!("{other} khác"));
    }
    parts.join(", ")
}

pub(super) async fn sent(State(d): State<Arc<Desk>>, headers: HeaderMap) -> Response {
    let p = person_or_return!(d, headers);
    let list = or_store_error!(
        p,
        d.node.db.outbox_list(Some(PacketKind::Document), 500).await
    );
    let rows = list
        .iter()
        .map(|s| {
            let e = &s.entry;
            let states: Vec<String> = s.recipients.iter().map(|(_, t)| t.state_name()).collect();
            let (vi, class) = outbox_state(e.state.as_str());
            let delivered = s
                .recipients
                .iter()
                .filter(|(_, t)| t.delivered_at.is_some())
                .count();
            SentRow {
                link: format!("/sent/document?id={}", encode_segment(&e.document_id)),
                document_id: e.document_id.clone(),
                code: code_of(&e.document_id),
                subject: e.subject.clone().unwrap_or_default(),
                created: t(e.created_at),
                state: vi.to_string(),
                state_class: class,
                summary: format!("{delivered}/{} đã nhận", s.recipients.len()),
                business: business_line(&states),
                request: e
                    .action
                    .as_ref()
                    .map(|a| format!("Yêu cầu {} {}", action_label(a.kind).0, a.original))
                    .unwrap_or_default(),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &SentPage {
            chrome: chrome("/sent", Some(&p)),
            rows,
        },
    )
}

/// "số/ký hiệu" of a document id, or the id itself when it has none.
fn code_of(document_id: &str) -> String {
    crate::db::code_of(document_id)
        .unwrap_or(document_id)
        .to_string()
}

struct RecipientBlock {
    code: String,
    name: String,
    delivery: String,
    delivery_class: &'static str,
    state: String,
    state_en: String,
    state_class: &'static str,
    events: Vec<Event>,
    take_back: bool,
}

struct RequestRow {
    kind: String,
    document_id: String,
    state: String,
    answers: String,
}

#[derive(Template)]
#[template(path = "desk/sent_document.html")]
struct SentDocumentPage {
    chrome: Chrome,
    document_id: String,
    /// The records package of this document (ASiC-E).
    archive_href: String,
    code: String,
    subject: String,
    state: String,
    state_class: &'static str,
    last_error: String,
    created: String,
    submitted: String,
    business: String,
    recipients: Vec<RecipientBlock>,
    requests: Vec<RequestRow>,
    may_act: bool,
    csrf: String,
    done: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SentQuery {
    #[serde(default)]
    id: String,
    #[serde(default)]
    done: String,
}

pub(super) async fn sent_document(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    query: Result<Query<SentQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = person_or_return!(d, headers);
    let q = query.map(|Query(q)| q).unwrap_or_default();
    let Some(sent) = or_store_error!(p, d.node.db.track(q.id.clone()).await) else {
        return not_found(&p, "văn bản đi với mã này");
    };
    let requests = or_store_error!(p, d.node.db.actions_of(q.id.clone()).await);
    let e = &sent.entry;
    let (state, class) = outbox_state(e.state.as_str());
    let states: Vec<String> = sent
        .recipients
        .iter()
        .map(|(_, t)| t.state_name())
        .collect();
    let recipients = sent
        .recipients
        .iter()
        .map(|(code, tr)| {
            let s = tr.state_name();
            let (vi, en) = state_label(&s);
            let (delivery, delivery_class) = match (&tr.refused, tr.delivered_at, tr.accepted_at) {
                (Some(r), _, _) => (format!("trục từ chối: {r}"), "bad"),
                (None, Some(at), _) => (format!("đã nhận lúc {}", t(at)), "ok"),
                (None, None, Some(_)) => ("trục đã tiếp nhận, chờ nơi nhận lấy về".into(), "warn"),
                _ => ("chưa lên trục".into(), "warn"),
            };
            let l = tr.replay().lifecycle;
            RecipientBlock {
                name: d.node.agency_name(code).unwrap_or_else(|| code.clone()),
                code: code.clone(),
                delivery,
                delivery_class,
                state: vi.to_string(),
                state_en: en.to_string(),
                state_class: state_class(&s),
                events: events(timeline(e, tr)),
                take_back: e.action.is_none()
                    && tr.delivered_at.is_some()
                    && l.check_send(Code::TakeBack) == Ok(Decision::Apply)
                    && closed_by_mark(tr.mark.as_ref(), "13").is_none(),
            }
        })
        .collect();
    let requests = requests
        .iter()
        .map(|r| RequestRow {
            kind: r
                .entry
                .action
                .as_ref()
                .map(|a| action_label(a.kind).0.to_string())
                .unwrap_or_default(),
            document_id: r.entry.document_id.clone(),
            state: outbox_state(r.entry.state.as_str()).0.to_string(),
            answers: r
                .recipients
                .iter()
                .map(|(c, t)| format!("{c}: {}", state_label(&t.state_name()).0))
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect();
    let page = SentDocumentPage {
        chrome: chrome("/sent", Some(&p)),
        archive_href: archive_href(&e.document_id),
        code: code_of(&e.document_id),
        document_id: e.document_id.clone(),
        subject: e.subject.clone().unwrap_or_default(),
        state: state.to_string(),
        state_class: class,
        last_error: e.last_error.clone().unwrap_or_default(),
        created: t(e.created_at),
        submitted: ot(e.submitted_at),
        business: business_line(&states),
        recipients,
        requests,
        may_act: p.user.role.may_send()
            && e.action.is_none()
            && e.state != crate::db::OutboxState::Failed,
        csrf: p.session.csrf.clone(),
        done: Some(q.done)
            .filter(|d| !d.is_empty())
            .map(|d| format!("Đã ký và xếp hàng gửi: {d}. (Signed and queued.)")),
    };
    render(StatusCode::OK, &page)
}

#[derive(Debug, Deserialize)]
pub(super) struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    id: String,
    /// revoke, update, replace, take_back
    #[serde(default)]
    kind: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    notation: String,
    #[serde(default)]
    content: String,
}

/// Revoke, update, replace or take back (13) a sent document.
pub(super) async fn post_action(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> Response {
    let p = match d.sender(&headers, &form.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let back = format!("/sent/document?id={}", encode_segment(&form.id));
    let staff = Some(p.user.full_name.clone());
    let position = p.user.position.clone();
    let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let kind = match form.kind.as_str() {
        "revoke" => ActionKind::Revoke,
        "update" => ActionKind::Update,
        "replace" => ActionKind::Replace,
        "take_back" => {
            let req = StatusRequest {
                code: "13".into(),
                reason: nonempty(&form.reason),
                staff,
                position,
                to: nonempty(&form.to),
                ..StatusRequest::default()
            };
            return match send_status(&d.node, StatusTarget::Document(form.id.clone()), req).await {
                Ok(s) => Redirect::to(&format!(
                    "{back}&done={}",
                    encode_segment(&format!("13 → {}", s.to))
                ))
                .into_response(),
                Err(e) => refused(&p, e, &back),
            };
        }
        other => {
            return refused(
                &p,
                SendError::invalid(format!("unknown action {other:?}")),
                &back,
            );
        }
    };
    let document = if kind == ActionKind::Replace {
        let (Some(number), Some(notation), Some(subject)) = (
            nonempty(&form.number),
            nonempty(&form.notation),
            nonempty(&form.subject),
        ) else {
            return refused(
                &p,
                SendError::invalid(
                    "văn bản thay thế cần số, ký hiệu và trích yếu (number, notation, subject)",
                ),
                &back,
            );
        };
        let mut doc = serde_json::json!({
            "to": [],
            "subject": subject,
            "code": {"number": number, "notation": notation},
            "staff": crate::accounts::staff(&p.user),
        });
        if let Some(c) = nonempty(&form.content) {
            doc["content"] = c.into();
        }
        Some(doc)
    } else {
        None
    };
    let req = ActionRequest {
        reason: form.reason.trim().to_string(),
        staff,
        position,
        subject: if kind == ActionKind::Update {
            nonempty(&form.subject)
        } else {
            None
        },
        content: if kind == ActionKind::Update {
            nonempty(&form.content)
        } else {
            None
        },
        document,
        ..ActionRequest::default()
    };
    match send_action(&d.node, kind, form.id.clone(), req).await {
        Ok(sent) => {
            tracing::info!(account = %p.user.name, kind = kind.as_str(), document = %form.id, "request sent from the desk");
            Redirect::to(&format!(
                "{back}&done={}",
                encode_segment(&format!("{} {}", action_label(kind).0, sent.document_id))
            ))
            .into_response()
        }
        Err(e) => refused(&p, e, &back),
    }
}
