//! The operators' console: web pages on the hub's admin listener, in Vietnamese with English
//! beside it.
//!
//! Pages: overview (`/`), agencies (`/agencies`, register, suspend and resume with a
//! confirmation), search (`/search`), one document (`/document`, packets downloadable at
//! `/packets/{id}`), alerts (`/alerts`); `/login` and `/logout`.
//!
//! Invariants:
//! - Every page but the login form and the assets requires a session, opened by the operator
//!   token (`data_dir/admin.token`); wrong tokens are refused and rate-limited per address
//!   ([`web::limit`]).
//! - Every POST carries the session's CSRF token and a same-origin `Origin`; otherwise it is
//!   refused (403) and changes nothing.
//! - Everything shown is read from the hub database at request time (the agency directory,
//!   the queue, the ledger, the incidents); the only figures from memory are the last poll
//!   time and the certificate an agency last presented (the hub does not store them).
//! - Every value is escaped by the templates; a packet's text is shown as text.

mod chart;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::service::Hub;
use exchange::packet_id::PacketId;
use web::session::same_origin;
use web::{Session, Sessions};

/// Largest form the console accepts (an agency registration with its certificates).
const MAX_FORM: usize = 256 * 1024;

/// Name of the session cookie.
const COOKIE: &str = "docaxis_console";

pub(crate) struct Console {
    hub: Arc<Hub>,
    token: String,
    sessions: Sessions,
    limiter: web::limit::LoginLimiter,
    options: Options,
}

/// How the console is served.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Served over TLS: the session cookie is marked `Secure`.
    pub tls: bool,
    /// After how long a pending delivery is shown as late (the alert threshold).
    pub late_after_secs: u64,
    /// Whether alert mail is configured (`[mail]` in hub.toml).
    pub mail_configured: bool,
}

/// The console's routes.
pub fn router(hub: Arc<Hub>, token: String, options: Options) -> axum::Router {
    let state = Arc::new(Console {
        hub,
        token,
        sessions: Sessions::new(COOKIE, options.tls),
        limiter: web::limit::LoginLimiter::default(),
        options,
    });
    axum::Router::new()
        .route("/", get(views::overview))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/agencies", get(views::agencies).post(views::register))
        .route(
            "/agencies/{code}/{action}",
            get(views::confirm).post(views::change_state),
        )
        .route("/search", get(views::search))
        .route("/document", get(views::document))
        .route("/packets/{id}", get(download))
        .route("/alerts", get(views::alerts))
        .route(web::assets::CSS_PATH, get(web::assets::css))
        .route(web::assets::ICON_PATH, get(web::assets::icon))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(web::session::host_from_authority))
        .layer(axum::middleware::from_fn_with_state(
            net::limits::BodyLimits::new(MAX_FORM),
            net::limits::buffer_body,
        ))
        .with_state(state)
}

// The error side is the page to answer with; it is built once per refused request, so its size
// does not matter and boxing it would only add noise at every call site.
#[allow(clippy::result_large_err)]
impl Console {
    /// The session, or a redirect to the login page.
    fn session(&self, headers: &HeaderMap) -> Result<Session, Response> {
        self.sessions
            .get(headers)
            .ok_or_else(|| Redirect::to("/login").into_response())
    }

    /// The session of a form POST whose CSRF token and origin are right; a 403 page otherwise.
    fn form_session(&self, headers: &HeaderMap, csrf: &str) -> Result<Session, Response> {
        let session = self.session(headers)?;
        if !same_origin(headers) || !session.csrf_ok(csrf) {
            return Err(views::message(
                StatusCode::FORBIDDEN,
                Some(&session),
                "Biểu mẫu không hợp lệ · Form refused",
                "Biểu mẫu này đã hết hạn hoặc không được gửi từ bảng điều hành; không có gì thay \
                 đổi. Hãy tải lại trang và thử lại. (The form's CSRF token or origin is wrong; \
                 nothing was changed.)",
            ));
        }
        Ok(session)
    }
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn login_form(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    if c.sessions.get(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    views::login_page(&c, StatusCode::OK, None)
}

async fn login(
    State(c): State<Arc<Console>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = peer.ip();
    if !same_origin(&headers) || !c.sessions.login_form_ok(&headers, &form.csrf) {
        return views::login_page(
            &c,
            StatusCode::FORBIDDEN,
            Some(
                "Biểu mẫu đăng nhập đã hết hạn; hãy nhập lại. (The login form expired or did not \
                 come from this console.)"
                    .into(),
            ),
        );
    }
    if let Err(wait) = c.limiter.attempt(ip) {
        tracing::warn!(%ip, "console login refused: too many wrong tokens");
        let r = views::login_page(
            &c,
            StatusCode::TOO_MANY_REQUESTS,
            Some(format!(
                "Đã nhập sai mã quá nhiều lần. Hãy thử lại sau {}. (Too many wrong tokens from \
                 this address; try again in {} s.)",
                web::display::age(wait.as_secs().max(1)),
                wait.as_secs().max(1)
            )),
        );
        return web::limit::with_retry_after(r, wait);
    }
    if !net::token::matches(form.token.trim(), &c.token) {
        tracing::warn!(%ip, "console login refused: wrong operator token");
        return views::login_page(
            &c,
            StatusCode::UNAUTHORIZED,
            Some(
                "Mã vận hành không đúng. (Wrong operator token: it is the content of \
                 data_dir/admin.token.)"
                    .into(),
            ),
        );
    }
    c.limiter.succeeded(ip);
    tracing::info!(%ip, "operator logged in to the console");
    let (_, cookie) = c.sessions.create("Vận hành viên · operator");
    web::session::redirect_setting("/", cookie)
}

async fn logout(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<web::session::CsrfForm>,
) -> Response {
    if let Err(r) = c.form_session(&headers, &form.csrf) {
        return r;
    }
    web::session::redirect_setting("/login", c.sessions.end(&headers))
}

/// A stored packet as received (signed edXML), as a file download.
async fn download(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let session = match c.session(&headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(pid) = id.parse::<PacketId>() else {
        return views::message(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Mã gói tin không hợp lệ · Bad packet id",
            "Mã gói tin phải gồm 64 chữ số hệ 16. (A packet id is 64 hex digits.)",
        );
    };
    match c.hub.db.packet(pid).await {
        Ok(Some((bytes, _))) => web::assets::security_headers(
            (
                [
                    (header::CONTENT_TYPE, "application/xml".to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{}.edxml\"", pid.to_hex()),
                    ),
                ],
                bytes,
            )
                .into_response(),
        ),
        Ok(None) => views::message(
            StatusCode::NOT_FOUND,
            Some(&session),
            "Không có gói tin này · No such packet",
            "Hub không lưu gói tin nào có mã này. (The hub stores no packet with this id.)",
        ),
        Err(e) => views::store_error(&session, &e.to_string()),
    }
}

async fn not_found(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let session = c.sessions.get(&headers);
    views::message(
        StatusCode::NOT_FOUND,
        session.as_ref(),
        "Không tìm thấy trang · Page not found",
        "Địa chỉ này không có trang nào. (There is no page at this address.)",
    )
}

/// `?owner=&id=` of the document page, and a query with a form's state.
#[derive(Debug, Deserialize)]
pub(crate) struct DocumentQuery {
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub id: String,
}
