//! The clerk's desk: the node's web pages, in Vietnamese with English beside it, on the same
//! listener as the clerk API.
//!
//! Pages: inbox (`/inbox`, urgent first, filters), one received document (`/inbox/{packet}`,
//! its attachments at `/inbox/{packet}/files/{n}`, its statuses posted to
//! `/inbox/{packet}/status`), compose (`/compose`), sent documents (`/sent`) and one sent
//! document's tracking (`/sent/document?id=…`, with revoke, update, replace and take-back),
//! accounts (`/users`, admins only); `/login`, `/logout`.
//!
//! Invariants:
//! - Every page but the login form and the assets requires a session, opened by an enabled
//!   account's name and password; the account is read from the store on every request, so a
//!   disabled account is out at once. Wrong passwords lock the address and the account out for
//!   a while ([`web::limit`]).
//! - Every POST carries the session's CSRF token and a same-origin `Origin`; otherwise it is
//!   refused (403) and changes nothing. A `records` account reads and downloads only: every
//!   sending form is refused to it (403) and not offered.
//! - What a clerk sends goes through the same services as the JSON API (`send_document`,
//!   `send_status`, `send_action`), with the logged-in person in `StaffInfo`.
//! - Only this node's own records are reachable: a packet id not in this node's inbox, or a
//!   document id it did not send, is "not found".
//! - Every value is escaped by the templates; a packet's text is shown as text.

mod compose;
mod pages;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Form;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::Shared;
use super::db::{Role, User};
use web::limit::LoginLimiter;
use web::session::same_origin;
use web::{Session, Sessions};

/// Name of the session cookie.
const COOKIE: &str = "docaxis_desk";
/// Largest ordinary form (statuses, accounts, actions).
const MAX_FORM: usize = 256 * 1024;

pub(crate) struct Desk {
    node: Shared,
    sessions: Sessions,
    by_address: LoginLimiter,
    by_account: LoginLimiter<String>,
}

/// A logged-in person on one request.
pub(crate) struct Person {
    pub session: Session,
    pub user: User,
}

/// The desk's routes (merged with the clerk API's on one listener). `tls`: the listener is
/// HTTPS (the session cookie is then `Secure`).
pub fn router(node: Shared, tls: bool) -> axum::Router {
    let max_compose = compose::max_upload(&node);
    let state = Arc::new(Desk {
        node,
        sessions: Sessions::new(COOKIE, tls),
        by_address: LoginLimiter::default(),
        by_account: LoginLimiter::new(std::time::Duration::from_secs(900)),
    });
    let forms = axum::Router::new()
        .route("/", get(|| async { Redirect::to("/inbox") }))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/inbox", get(pages::inbox))
        .route("/inbox/{packet}", get(pages::document))
        .route("/inbox/{packet}/files/{index}", get(pages::file))
        .route("/inbox/{packet}/status", post(pages::post_status))
        .route("/compose", get(compose::form))
        .route("/sent", get(pages::sent))
        .route("/sent/document", get(pages::sent_document))
        .route("/sent/action", post(pages::post_action))
        .route("/archive/{key}", get(pages::archive))
        .route("/users", get(users::list).post(users::add))
        .route("/users/{name}/{change}", post(users::change))
        .route(web::assets::CSS_PATH, get(web::assets::css))
        .route(web::assets::ICON_PATH, get(web::assets::icon))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .with_state(state.clone());
    let upload = axum::Router::new()
        .route("/compose", post(compose::submit))
        .layer(DefaultBodyLimit::max(max_compose))
        .with_state(state);
    forms
        .merge(upload)
        .layer(axum::middleware::from_fn(web::session::host_from_authority))
}

/// The page of an address that has none.
pub fn not_found_page() -> Response {
    pages::message(
        StatusCode::NOT_FOUND,
        None,
        "Không tìm thấy trang · Page not found",
        "Địa chỉ này không có trang nào. (There is no page at this address.)",
    )
}

// The error side is the page to answer with; it is built once per refused request.
#[allow(clippy::result_large_err)]
impl Desk {
    /// The logged-in person, or a redirect to the login page.
    async fn person(&self, headers: &HeaderMap) -> Result<Person, Response> {
        let Some(session) = self.sessions.get(headers) else {
            return Err(Redirect::to("/login").into_response());
        };
        match self.node.db.user(session.user.clone()).await {
            Ok(Some(user)) if !user.disabled => Ok(Person { session, user }),
            Ok(_) => {
                self.sessions.end_all(&session.user);
                Err(Redirect::to("/login").into_response())
            }
            Err(e) => Err(pages::store_error(Some(&session), &e.to_string())),
        }
    }

    /// The person behind a form POST whose CSRF token and origin are right; 403 otherwise.
    async fn form_person(&self, headers: &HeaderMap, csrf: &str) -> Result<Person, Response> {
        let p = self.person(headers).await?;
        if !same_origin(headers) || !p.session.csrf_ok(csrf) {
            return Err(pages::message(
                StatusCode::FORBIDDEN,
                Some(&p),
                "Biểu mẫu không hợp lệ · Form refused",
                "Biểu mẫu này đã hết hạn hoặc không được gửi từ trang của nút; không có gì thay \
                 đổi. Hãy tải lại trang và thử lại. (The form's CSRF token or origin is wrong; \
                 nothing was changed.)",
            ));
        }
        Ok(p)
    }

    /// [`Desk::form_person`] for someone allowed to send (clerk or admin).
    async fn sender(&self, headers: &HeaderMap, csrf: &str) -> Result<Person, Response> {
        let p = self.form_person(headers, csrf).await?;
        if !p.user.role.may_send() {
            return Err(forbidden_role(&p));
        }
        Ok(p)
    }
}

/// The refusal of an action the person's role does not allow.
fn forbidden_role(p: &Person) -> Response {
    pages::message(
        StatusCode::FORBIDDEN,
        Some(p),
        "Không có quyền · Not allowed",
        &format!(
            "Tài khoản {} có vai trò {} ({}): chỉ xem và tải về, không gửi hay thay đổi gì. \
             (This account may read and export only; nothing was changed.)",
            p.user.name,
            p.user.role.label_vi(),
            p.user.role.as_str()
        ),
    )
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login_form(State(d): State<Arc<Desk>>, headers: HeaderMap) -> Response {
    if d.person(&headers).await.is_ok() {
        return Redirect::to("/inbox").into_response();
    }
    pages::login_page(&d, StatusCode::OK, None, "")
}

fn locked(d: &Desk, wait: std::time::Duration, name: &str) -> Response {
    let secs = wait.as_secs().max(1);
    let r = pages::login_page(
        d,
        StatusCode::TOO_MANY_REQUESTS,
        Some(format!(
            "Đăng nhập sai quá nhiều lần; tạm khóa. Hãy thử lại sau {}. (Too many wrong \
             passwords; try again in {secs} s.)",
            web::display::age(secs)
        )),
        name,
    );
    web::limit::with_retry_after(r, wait)
}

async fn login(
    State(d): State<Arc<Desk>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = peer.ip();
    // Account names are at most 64 characters: a longer one is no account, and keying the
    // limiter on it would let a hostile form fill memory.
    let name: String = form.name.trim().to_lowercase().chars().take(64).collect();
    if !same_origin(&headers) || !d.sessions.login_form_ok(&headers, &form.csrf) {
        return pages::login_page(
            &d,
            StatusCode::FORBIDDEN,
            Some(
                "Biểu mẫu đăng nhập đã hết hạn; hãy nhập lại. (The login form expired or did not \
                 come from this node.)"
                    .into(),
            ),
            &name,
        );
    }
    if let Err(wait) = d.by_address.attempt(ip) {
        tracing::warn!(%ip, "desk login refused: too many wrong passwords from this address");
        return locked(&d, wait, &name);
    }
    if let Err(wait) = d.by_account.attempt(name.clone()) {
        tracing::warn!(%ip, account = %name, "desk login refused: account locked for a while");
        return locked(&d, wait, &name);
    }
    let user = match d.node.db.user(name.clone()).await {
        Ok(u) => u,
        Err(e) => return pages::store_error(None, &e.to_string()),
    };
    let Some(user) = super::accounts::verify(user, form.password).await else {
        tracing::warn!(%ip, account = %name, "desk login refused: wrong name or password");
        return pages::login_page(
            &d,
            StatusCode::UNAUTHORIZED,
            Some(
                "Tên đăng nhập hoặc mật khẩu không đúng, hoặc tài khoản đã bị khóa. (Wrong name \
                 or password, or the account is disabled.)"
                    .into(),
            ),
            &name,
        );
    };
    d.by_address.succeeded(ip);
    d.by_account.succeeded(name.clone());
    tracing::info!(%ip, account = %user.name, "logged in to the desk");
    let who = match &user.position {
        Some(p) => format!("{} · {p}", user.full_name),
        None => user.full_name.clone(),
    };
    let (_, cookie) = d.sessions.create_for(&who, &user.name);
    web::session::redirect_setting("/inbox", cookie)
}

async fn logout(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    Form(form): Form<web::session::CsrfForm>,
) -> Response {
    if let Err(r) = d.form_person(&headers, &form.csrf).await {
        return r;
    }
    web::session::redirect_setting("/login", d.sessions.end(&headers))
}

/// Whether `role` may see the accounts page.
fn is_admin(role: Role) -> bool {
    role == Role::Admin
}
