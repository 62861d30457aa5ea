//! The console's pages: each handler reads what it shows from the hub database, shapes it
//! into a template's fields (display strings computed here, escaped by the template) and
//! renders it inside the shared layout.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use axum::extract::Query;

use super::{Console, DocumentQuery};
use crate::alerts::{AlertKind, Incident};
use crate::ledger::{DeliveryState, Search, StateFilter};
use crate::track::{DocumentTrack, TrackedStatus};
use exchange::clock::Timestamp;
use web::display;
use web::{Chrome, Session};

const NAV: &[(&str, &str, &str)] = &[
    ("/", "Tổng quan", "Overview"),
    ("/agencies", "Cơ quan", "Agencies"),
    ("/search", "Tra cứu", "Search"),
    ("/alerts", "Cảnh báo", "Alerts"),
];

fn chrome(current: &str, session: Option<&Session>) -> Chrome {
    Chrome::new(
        "Trục liên thông văn bản quốc gia",
        "National document axis — operator console",
        NAV,
        current,
        session,
        "/logout",
    )
}

fn render(status: StatusCode, t: &impl Template) -> Response {
    web::assets::page(status, t)
}

fn t(ts: Timestamp) -> String {
    display::time(ts)
}

fn ot(ts: Option<Timestamp>) -> String {
    ts.map(display::time).unwrap_or_default()
}

fn ms(ms: u64) -> String {
    display::time(Timestamp::from_unix_ms(ms))
}

// ---- messages and errors ----

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    chrome: Chrome,
    title: &'a str,
    text: &'a str,
}

/// A page saying one thing (errors, refusals).
pub(super) fn message(
    status: StatusCode,
    session: Option<&Session>,
    title: &str,
    text: &str,
) -> Response {
    render(
        status,
        &MessagePage {
            chrome: chrome("", session),
            title,
            text,
        },
    )
}

/// The store could not be read.
pub(super) fn store_error(session: &Session, detail: &str) -> Response {
    message(
        StatusCode::SERVICE_UNAVAILABLE,
        Some(session),
        "Không đọc được cơ sở dữ liệu · Database unavailable",
        &format!(
            "Hub không đọc được cơ sở dữ liệu của mình; hãy xem nhật ký của hub. (The hub \
             database could not be read: {detail})"
        ),
    )
}

macro_rules! session_or_return {
    ($c:expr, $headers:expr) => {
        match $c.session(&$headers) {
            Ok(s) => s,
            Err(r) => return r,
        }
    };
}

macro_rules! or_store_error {
    ($session:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return store_error(&$session, &e.to_string()),
        }
    };
}

// ---- login ----

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    error: Option<String>,
}

pub(super) fn login_page(c: &Console, status: StatusCode, error: Option<String>) -> Response {
    let (csrf, cookie) = c.sessions.login_form();
    let mut r = render(
        status,
        &LoginPage {
            chrome: chrome("", None),
            csrf,
            error,
        },
    );
    r.headers_mut()
        .append(axum::http::header::SET_COOKIE, cookie);
    r
}

// ---- agencies, as the overview and the agencies page show them ----

/// How an agency is doing, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    Alert,
    Late,
    Suspended,
    Ok,
}

pub(super) struct AgencyRow {
    pub code: String,
    pub name: String,
    pub email: String,
    pub active: bool,
    pub last_poll: String,
    pub pending: u64,
    pub oldest: String,
    pub certificate: String,
    pub certificate_class: &'static str,
    pub health: &'static str,
    pub health_class: &'static str,
    pub incidents: Vec<String>,
    rank: Health,
    oldest_secs: u64,
}

async fn agency_rows(c: &Console) -> Result<(Vec<AgencyRow>, Vec<Incident>), String> {
    let db = &c.hub.db;
    let agencies = db.agencies().await.map_err(|e| e.to_string())?;
    let pending = db.pending_summary().await.map_err(|e| e.to_string())?;
    let open = db.open_incidents().await.map_err(|e| e.to_string())?;
    let now_ms = exchange::clock::now_ms();
    let pending: HashMap<String, (u64, u64)> = pending
        .into_iter()
        .map(|p| {
            let age = p
                .oldest_queued_at
                .map_or(0, |t| now_ms.saturating_sub(t.unix_ms()) / 1000);
            (p.recipient, (p.count, age))
        })
        .collect();
    let polls: HashMap<String, f64> = c.hub.metrics.last_poll_ages().into_iter().collect();
    let certs: HashMap<String, f64> = c
        .hub
        .metrics
        .agency_certificate_seconds()
        .into_iter()
        .collect();
    let mut rows: Vec<AgencyRow> = agencies
        .into_iter()
        .map(|a| {
            let (count, oldest_secs) = pending.get(&a.code).copied().unwrap_or((0, 0));
            let incidents: Vec<String> = open
                .iter()
                .filter(|i| i.agency.as_deref() == Some(a.code.as_str()))
                .map(|i| i.summary.clone())
                .collect();
            let rank = if !incidents.is_empty() {
                Health::Alert
            } else if count > 0 && oldest_secs >= c.options.late_after_secs {
                Health::Late
            } else if !a.active {
                Health::Suspended
            } else {
                Health::Ok
            };
            let (health, health_class) = match rank {
                Health::Alert => ("Có cảnh báo", "bad"),
                Health::Late => ("Chậm nhận", "warn"),
                Health::Suspended => ("Tạm dừng", "warn"),
                Health::Ok => ("Bình thường", "ok"),
            };
            let (certificate, certificate_class) = match certs.get(&a.code) {
                Some(s) if *s < 0.0 => ("đã hết hạn".to_string(), "bad"),
                Some(s) => {
                    let days = (*s / 86_400.0).floor() as u64;
                    let class = if days < 30 { "warn" } else { "ok" };
                    (format!("còn {days} ngày"), class)
                }
                None => ("chưa kết nối từ khi hub khởi động".to_string(), "info"),
            };
            AgencyRow {
                last_poll: polls.get(&a.code).map_or_else(
                    || "chưa từ khi hub khởi động".to_string(),
                    |s| format!("{} trước", display::age(*s as u64)),
                ),
                pending: count,
                oldest: if count > 0 {
                    display::age(oldest_secs)
                } else {
                    String::new()
                },
                certificate,
                certificate_class,
                health,
                health_class,
                incidents,
                rank,
                oldest_secs,
                email: a.email.unwrap_or_default(),
                code: a.code,
                name: a.name,
                active: a.active,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.rank, std::cmp::Reverse(a.oldest_secs), &a.code).cmp(&(
            b.rank,
            std::cmp::Reverse(b.oldest_secs),
            &b.code,
        ))
    });
    Ok((rows, open))
}

// ---- overview ----

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    today: String,
    week: String,
    pending: String,
    oldest: String,
    active: usize,
    suspended: usize,
    open_alerts: usize,
    trouble: Vec<AgencyRow>,
    all_ok: bool,
    chart: String,
    last24_documents: String,
    last24_deliveries: String,
    as_of: String,
    /// Where the hub's state lives, for an operator who may be on one of several replicas.
    store: &'static str,
}

pub(super) async fn overview(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = session_or_return!(c, headers);
    let (rows, open) = or_store_error!(session, agency_rows(&c).await);
    let now = time::OffsetDateTime::now_utc();
    let day = Timestamp::from_offset(display::start_of_day(now));
    let week = Timestamp::from_offset(display::start_of_week(now));
    let now_ts = Timestamp::from_offset(now);
    let counts = c
        .hub
        .db
        .traffic(day, week, now_ts, 24)
        .await
        .map(|t| (t.today, t.week, t.hours));
    let (today, this_week, hours) = or_store_error!(session, counts);
    let pending: u64 = rows.iter().map(|r| r.pending).sum();
    let oldest = rows.iter().map(|r| r.oldest_secs).max().unwrap_or(0);
    let active = rows.iter().filter(|r| r.active).count();
    let trouble: Vec<AgencyRow> = rows
        .into_iter()
        .filter(|r| r.rank != Health::Ok || r.pending > 0)
        .take(15)
        .collect();
    let page = OverviewPage {
        chrome: chrome("/", Some(&session)),
        today: display::count(today),
        week: display::count(this_week),
        pending: display::count(pending),
        oldest: if pending > 0 {
            display::age(oldest)
        } else {
            "—".into()
        },
        suspended: c.hub.agencies().len().saturating_sub(active),
        active,
        open_alerts: open.len(),
        all_ok: trouble.is_empty(),
        trouble,
        last24_documents: display::count(hours.iter().map(|h| h.documents).sum()),
        last24_deliveries: display::count(hours.iter().map(|h| h.deliveries).sum()),
        chart: super::chart::throughput(&hours),
        as_of: t(now_ts),
        store: match c.hub.db.backend_name() {
            "postgresql" => {
                "dữ liệu chung PostgreSQL, mọi bản sao trục đều thấy / shared PostgreSQL, every replica sees the same"
            }
            _ => "cơ sở dữ liệu nhúng / embedded database",
        },
    };
    render(StatusCode::OK, &page)
}

// ---- agencies ----

#[derive(Template)]
#[template(path = "console/agencies.html")]
struct AgenciesPage {
    chrome: Chrome,
    rows: Vec<AgencyRow>,
    form: RegisterForm,
    error: Option<String>,
    done: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RegisterForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub certificate: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Flash {
    #[serde(default)]
    pub done: String,
}

async fn agencies_page(
    c: &Console,
    session: &Session,
    status: StatusCode,
    form: RegisterForm,
    error: Option<String>,
    done: Option<String>,
) -> Response {
    let (rows, _) = or_store_error!(session, agency_rows(c).await);
    render(
        status,
        &AgenciesPage {
            chrome: chrome("/agencies", Some(session)),
            rows,
            form: RegisterForm {
                csrf: String::new(),
                ..form
            },
            error,
            done,
        },
    )
}

pub(super) async fn agencies(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let session = session_or_return!(c, headers);
    let done = match flash.done.as_str() {
        "" => None,
        code => c
            .hub
            .agencies()
            .into_iter()
            .find(|a| a.code == code)
            .map(|a| {
                format!(
                    "Đã lưu: {} ({}) hiện {}.",
                    a.name,
                    a.code,
                    if a.active {
                        "đang hoạt động"
                    } else {
                        "tạm dừng"
                    }
                )
            }),
    };
    agencies_page(
        &c,
        &session,
        StatusCode::OK,
        RegisterForm::default(),
        None,
        done,
    )
    .await
}

pub(super) async fn register(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<RegisterForm>,
) -> Response {
    let session = match c.form_session(&headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let req = crate::admin::NewAgency {
        code: form.code.trim().to_string(),
        name: form.name.trim().to_string(),
        email: Some(form.email.trim().to_string()).filter(|e| !e.is_empty()),
        certificates: vec![form.certificate.clone()],
    };
    match crate::admin::add_agency(&c.hub.db, req).await {
        Ok(agency) => {
            tracing::info!(agency = %agency.code, "agency registered from the console");
            let code = agency.code.clone();
            c.hub.cache_agency(agency);
            Redirect::to(&format!("/agencies?done={}", urlencode(&code))).into_response()
        }
        Err(e) => {
            let status = match e.code {
                exchange::protocol::ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            agencies_page(&c, &session, status, form, Some(e.message), None).await
        }
    }
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Template)]
#[template(path = "console/confirm.html")]
struct ConfirmPage {
    chrome: Chrome,
    code: String,
    name: String,
    action: String,
    suspend: bool,
    pending: u64,
}

fn parse_action(action: &str) -> Option<bool> {
    match action {
        "suspend" => Some(false),
        "resume" => Some(true),
        _ => None,
    }
}

/// The confirmation page of a suspension or resumption.
pub(super) async fn confirm(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath((code, action)): UrlPath<(String, String)>,
) -> Response {
    let session = session_or_return!(c, headers);
    let Some(active) = parse_action(&action) else {
        return message(
            StatusCode::NOT_FOUND,
            Some(&session),
            "Không có thao tác này · No such action",
            "Chỉ có tạm dừng (suspend) và khôi phục (resume).",
        );
    };
    let agency = or_store_error!(session, c.hub.db.agency(&code).await);
    let Some(agency) = agency else {
        return message(
            StatusCode::NOT_FOUND,
            Some(&session),
            "Không có cơ quan này · No such agency",
            &format!("Cơ quan {code} chưa được đăng ký. (Agency {code} is not registered.)"),
        );
    };
    let pending = or_store_error!(session, c.hub.db.pending_summary().await)
        .into_iter()
        .find(|p| p.recipient == code)
        .map_or(0, |p| p.count);
    render(
        StatusCode::OK,
        &ConfirmPage {
            chrome: chrome("/agencies", Some(&session)),
            code: agency.code,
            name: agency.name,
            action,
            suspend: !active,
            pending,
        },
    )
}

/// Suspends or resumes an agency (after the confirmation page).
pub(super) async fn change_state(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath((code, action)): UrlPath<(String, String)>,
    Form(form): Form<web::session::CsrfForm>,
) -> Response {
    let session = match c.form_session(&headers, &form.csrf) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(active) = parse_action(&action) else {
        return message(
            StatusCode::NOT_FOUND,
            Some(&session),
            "Không có thao tác này · No such action",
            "Chỉ có tạm dừng (suspend) và khôi phục (resume).",
        );
    };
    match crate::admin::set_active(&c.hub.db, &code, active).await {
        Ok(agency) => {
            tracing::info!(agency = %agency.code, active, "agency state changed from the console");
            c.hub.cache_agency(agency);
            Redirect::to(&format!("/agencies?done={}", urlencode(&code))).into_response()
        }
        Err(e) => message(
            if e.code == exchange::protocol::ErrorCode::NotFound {
                StatusCode::NOT_FOUND
            } else if e.code == exchange::protocol::ErrorCode::Internal {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            },
            Some(&session),
            "Không thực hiện được · Not done",
            &e.message,
        ),
    }
}

// ---- search ----

#[derive(Debug, Default, Deserialize)]
pub(super) struct SearchForm {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub sender: String,
    #[serde(default)]
    pub recipient: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub state: String,
}

impl SearchForm {
    fn is_empty(&self) -> bool {
        [
            &self.q,
            &self.sender,
            &self.recipient,
            &self.from,
            &self.to,
            &self.state,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }

    /// The search it asks for, or what is wrong with it.
    fn to_search(&self) -> Result<Search, String> {
        let day = |s: &str, end: bool| -> Result<Option<u64>, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let date =
                time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
                    .map_err(|_| {
                        format!("Ngày {s:?} không đúng dạng năm-tháng-ngày (YYYY-MM-DD).")
                    })?;
            let date = if end {
                date.next_day()
                    .ok_or_else(|| format!("Ngày {s:?} nằm ngoài lịch. (Date out of range.)"))?
            } else {
                date
            };
            let t = date
                .with_time(time::Time::MIDNIGHT)
                .assume_offset(display::vietnam());
            let ms = exchange::clock::unix_ms(t);
            Ok(Some(if end { ms.saturating_sub(1) } else { ms }))
        };
        Ok(Search {
            text: self.q.trim().to_string(),
            sender: self.sender.trim().to_string(),
            recipient: self.recipient.trim().to_string(),
            from_ms: day(&self.from, false)?,
            to_ms: day(&self.to, true)?,
            state: StateFilter::parse(self.state.trim())
                .ok_or_else(|| format!("Trạng thái {:?} không có.", self.state))?,
        })
    }
}

pub(super) struct FoundRow {
    pub accepted: String,
    pub owner: String,
    pub document_id: String,
    pub code: String,
    pub subject: String,
    pub action: &'static str,
    pub sender: String,
    pub recipient: String,
    pub state: &'static str,
    pub state_class: &'static str,
    pub detail: String,
    pub packet_id: String,
}

#[derive(Template)]
#[template(path = "console/search.html")]
struct SearchPage {
    chrome: Chrome,
    form: SearchForm,
    agencies: Vec<(String, String)>,
    searched: bool,
    error: Option<String>,
    rows: Vec<FoundRow>,
    note: String,
}

/// How many rows a search shows.
const SEARCH_ROWS: usize = 200;

fn action_label(bdt: u8) -> &'static str {
    match bdt {
        1 => "thu hồi",
        2 => "cập nhật",
        3 => "thay thế",
        _ => "",
    }
}

pub(super) async fn search(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(form): Query<SearchForm>,
) -> Response {
    let session = session_or_return!(c, headers);
    let agencies = or_store_error!(session, c.hub.db.agencies().await)
        .into_iter()
        .map(|a| (a.code, a.name))
        .collect();
    let mut page = SearchPage {
        chrome: chrome("/search", Some(&session)),
        searched: false,
        error: None,
        rows: Vec::new(),
        note: String::new(),
        agencies,
        form: SearchForm::default(),
    };
    // An empty form lists the latest deliveries.
    let query = match form.to_search() {
        Ok(q) => q,
        Err(e) => {
            page.error = Some(e);
            page.form = form;
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    let found = or_store_error!(session, c.hub.db.search(query, SEARCH_ROWS).await);
    let now_ms = exchange::clock::now_ms();
    page.rows = found
        .rows
        .into_iter()
        .map(|r| {
            let (state, state_class, detail) = match r.state {
                DeliveryState::Delivered => ("đã nhận", "ok", ot(r.delivered_at)),
                DeliveryState::Pending => (
                    "đang chờ",
                    if now_ms.saturating_sub(r.accepted_at.unix_ms()) / 1000
                        >= c.options.late_after_secs
                    {
                        "warn"
                    } else {
                        "info"
                    },
                    format!(
                        "chờ {}",
                        display::age(now_ms.saturating_sub(r.accepted_at.unix_ms()) / 1000)
                    ),
                ),
                DeliveryState::Refused => ("bị từ chối", "bad", r.refusal.unwrap_or_default()),
            };
            FoundRow {
                accepted: t(r.accepted_at),
                owner: r.sender.clone(),
                document_id: r.document_id,
                code: r.code.unwrap_or_default(),
                subject: r.subject.unwrap_or_default(),
                action: action_label(r.business_doc_type),
                sender: r.sender,
                recipient: r.recipient,
                state,
                state_class,
                detail,
                packet_id: r.packet_id,
            }
        })
        .collect();
    page.note = match (page.rows.len(), found.truncated) {
        (0, _) => String::new(),
        (n, true) => format!(
            "{n} lượt gửi đầu tiên (mới nhất trước; đã xem {} văn bản) — thu hẹp điều kiện để \
             xem tiếp.",
            display::count(found.scanned as u64)
        ),
        (n, false) => format!("{n} lượt gửi, mới nhất trước."),
    };
    page.searched = !form.is_empty();
    page.form = form;
    render(StatusCode::OK, &page)
}

// ---- one document ----

pub(super) struct StatusLine {
    pub time: String,
    pub code: String,
    pub label: String,
    pub label_en: String,
    pub from: String,
    pub staff: String,
    pub reason: String,
    pub delivered: String,
    pub anomaly: String,
    pub repeat: bool,
}

fn status_lines(statuses: &[TrackedStatus]) -> Vec<StatusLine> {
    statuses
        .iter()
        .map(|s| StatusLine {
            time: t(s.time),
            code: s.code.clone(),
            label: s.label.clone(),
            label_en: s.label_en.clone(),
            from: s.from.clone(),
            staff: s.staff.clone().unwrap_or_default(),
            reason: s.reason.clone().unwrap_or_default(),
            delivered: match s.delivered_at {
                Some(at) => format!("đã chuyển tới bên nhận {}", t(at)),
                None => "đang chờ bên nhận tải về".into(),
            },
            anomaly: s.anomaly.clone().unwrap_or_default(),
            repeat: s.repeat,
        })
        .collect()
}

pub(super) struct ActionView {
    pub action: String,
    pub document_id: String,
    pub accepted: String,
    pub reason: String,
    pub delivery: String,
    pub answer: String,
    pub statuses: Vec<StatusLine>,
    pub packet_id: String,
}

pub(super) struct RecipientView {
    pub code: String,
    pub name: String,
    pub delivery: &'static str,
    pub delivery_class: &'static str,
    pub delivered: String,
    pub refused: String,
    pub state: String,
    pub statuses: Vec<StatusLine>,
    pub anomalies: Vec<String>,
    pub actions: Vec<ActionView>,
}

pub(super) struct PacketRow {
    pub id: String,
    pub short: String,
    pub kind: String,
    pub from: String,
    pub accepted: String,
    pub to: String,
}

#[derive(Template)]
#[template(path = "console/document.html")]
struct DocumentPage {
    chrome: Chrome,
    owner: String,
    owner_name: String,
    document_id: String,
    subject: String,
    code: String,
    accepted: String,
    packet_id: String,
    found: bool,
    recipients: Vec<RecipientView>,
    packets: Vec<PacketRow>,
}

fn delivery_label(d: &str) -> (&'static str, &'static str) {
    match d {
        "delivered" => ("đã nhận", "ok"),
        "pending" => ("đang chờ", "warn"),
        "refused" => ("bị từ chối", "bad"),
        _ => ("không gửi tới", "info"),
    }
}

pub(super) async fn document(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<DocumentQuery>,
) -> Response {
    let session = session_or_return!(c, headers);
    if q.owner.trim().is_empty() || q.id.trim().is_empty() {
        return message(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Thiếu mã văn bản · Document not named",
            "Hãy mở văn bản từ trang Tra cứu (cần cơ quan ban hành và mã văn bản). (Open a \
             document from the search page: the issuing agency and the document id are needed.)",
        );
    }
    let track: DocumentTrack = match crate::admin::track(&c.hub.db, q.owner.trim(), &q.id).await {
        Ok(t) => t,
        Err(e) => return store_error(&session, &e.message),
    };
    let names: BTreeMap<String, String> = c
        .hub
        .agencies()
        .into_iter()
        .map(|a| (a.code, a.name))
        .collect();
    let (subject, code) = match &track.document {
        Some(d) => match d.packet_id.parse() {
            Ok(id) => match c.hub.db.packet(id).await {
                Ok(Some((_, meta))) => (
                    meta.subject.unwrap_or_default(),
                    meta.code.unwrap_or_default(),
                ),
                _ => Default::default(),
            },
            Err(_) => Default::default(),
        },
        None => Default::default(),
    };
    let recipients = track
        .recipients
        .iter()
        .map(|r| {
            let (delivery, delivery_class) = delivery_label(&r.delivery);
            RecipientView {
                name: names.get(&r.recipient).cloned().unwrap_or_default(),
                code: r.recipient.clone(),
                delivery,
                delivery_class,
                delivered: ot(r.delivered_at),
                refused: r.refused.clone().unwrap_or_default(),
                state: r.describe_state(),
                statuses: status_lines(&r.statuses),
                anomalies: r.anomalies.clone(),
                actions: r
                    .actions
                    .iter()
                    .map(|a| ActionView {
                        action: format!("{} ({})", action_label(a.business_doc_type), a.action),
                        document_id: a.document_id.clone(),
                        accepted: t(a.accepted_at),
                        reason: a.reason.clone().unwrap_or_default(),
                        delivery: delivery_label(&a.delivery).0.to_string(),
                        answer: match a.answer.as_deref() {
                            Some("15") => "đồng ý (15)".into(),
                            Some("16") => "từ chối (16)".into(),
                            Some(other) => other.to_string(),
                            None => "chưa trả lời".into(),
                        },
                        statuses: status_lines(&a.statuses),
                        packet_id: a.packet_id.clone(),
                    })
                    .collect(),
            }
        })
        .collect();
    let packets = track
        .packets
        .iter()
        .map(|p| PacketRow {
            short: p.packet_id.chars().take(16).collect(),
            id: p.packet_id.clone(),
            kind: match (p.status_code, p.business_doc_type) {
                (Some(code), _) => format!("trạng thái {}", code.as_str()),
                (None, Some(b)) if b > 0 => format!("văn bản ({})", action_label(b)),
                _ => "văn bản".into(),
            },
            from: p.from.clone(),
            accepted: t(p.accepted_at),
            to: p
                .recipients
                .iter()
                .map(|d| {
                    format!(
                        "{} {}",
                        d.recipient,
                        if d.delivered_at.is_some() {
                            "✓"
                        } else {
                            "…"
                        }
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let page = DocumentPage {
        chrome: chrome("/search", Some(&session)),
        owner_name: names.get(&track.owner).cloned().unwrap_or_default(),
        owner: track.owner.clone(),
        document_id: track.document_id.clone(),
        found: !track.packets.is_empty(),
        accepted: track
            .document
            .as_ref()
            .map(|d| t(d.accepted_at))
            .unwrap_or_default(),
        packet_id: track
            .document
            .as_ref()
            .map(|d| d.packet_id.clone())
            .unwrap_or_default(),
        subject,
        code,
        recipients,
        packets,
    };
    render(
        if page.found {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        },
        &page,
    )
}

// ---- alerts ----

pub(super) struct IncidentRow {
    pub kind: &'static str,
    pub agency: String,
    pub summary: String,
    pub detail: String,
    pub opened: String,
    pub closed: String,
    pub duration: String,
}

pub(super) struct MailRow {
    pub to: String,
    pub subject: String,
    pub queued: String,
    pub attempts: u32,
    pub next: String,
    pub error: String,
}

#[derive(Template)]
#[template(path = "console/alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    open: Vec<IncidentRow>,
    past: Vec<IncidentRow>,
    mail: Vec<MailRow>,
    mail_sent: u64,
    mail_configured: bool,
}

fn kind_label(k: AlertKind) -> &'static str {
    match k {
        AlertKind::Pending => "Chậm nhận văn bản",
        AlertKind::Silent => "Ngừng kết nối",
        AlertKind::Refusals => "Nhiều gói tin bị từ chối",
        AlertKind::Certificate => "Chứng thư sắp hết hạn",
        AlertKind::Crl => "CRL sắp hết hạn",
    }
}

fn incident_row(i: Incident) -> IncidentRow {
    let end = i.closed_ms.unwrap_or_else(exchange::clock::now_ms);
    IncidentRow {
        kind: kind_label(i.kind),
        agency: i.agency.unwrap_or_default(),
        summary: i.summary,
        detail: i.detail,
        opened: ms(i.opened_ms),
        closed: i.closed_ms.map(ms).unwrap_or_default(),
        duration: display::age(end.saturating_sub(i.opened_ms) / 1000),
    }
}

pub(super) async fn alerts(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = session_or_return!(c, headers);
    let view = match crate::admin::alerts(&c.hub.db).await {
        Ok(v) => v,
        Err(e) => return store_error(&session, &e.message),
    };
    let page = AlertsPage {
        chrome: chrome("/alerts", Some(&session)),
        open: view.open.into_iter().map(incident_row).collect(),
        past: view.past.into_iter().map(incident_row).collect(),
        mail: view
            .mail_waiting
            .into_iter()
            .map(|m| MailRow {
                to: m.mail.to.join(", "),
                subject: m.mail.subject,
                queued: ms(m.queued_at_ms),
                attempts: m.attempts,
                next: ms(m.next_attempt_ms),
                error: m.last_error.unwrap_or_default(),
            })
            .collect(),
        mail_sent: view.mail_sent,
        mail_configured: c.options.mail_configured,
    };
    render(StatusCode::OK, &page)
}
