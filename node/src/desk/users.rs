//! The accounts page (admins only): list, add, disable, enable, set a password. Every change
//! goes through [`crate::accounts`], like the API and the CLI.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use web::Chrome;

use super::pages::{chrome, render, store_error};
use super::{Desk, Person, forbidden_role, is_admin};
use crate::accounts::{self, AccountError, ChangeUser, NewUser};

struct Row {
    name: String,
    full_name: String,
    position: String,
    email: String,
    role: String,
    disabled: bool,
    created: String,
    me: bool,
}

#[derive(Template)]
#[template(path = "desk/users.html")]
struct UsersPage {
    chrome: Chrome,
    csrf: String,
    rows: Vec<Row>,
    error: Option<String>,
    done: Option<String>,
    min_password: usize,
}

async fn show(
    d: &Desk,
    p: &Person,
    status: StatusCode,
    error: Option<String>,
    done: Option<String>,
) -> Response {
    let users = match d.node.db.users().await {
        Ok(u) => u,
        Err(e) => return store_error(Some(&p.session), &e.to_string()),
    };
    let rows = users
        .iter()
        .map(|u| Row {
            name: u.name.clone(),
            full_name: u.full_name.clone(),
            position: u.position.clone().unwrap_or_default(),
            email: u.email.clone().unwrap_or_default(),
            role: format!("{} ({})", u.role.label_vi(), u.role.as_str()),
            disabled: u.disabled,
            created: web::display::time(u.created_at),
            me: u.name == p.user.name,
        })
        .collect();
    render(
        status,
        &UsersPage {
            chrome: chrome("/users", Some(p)),
            csrf: p.session.csrf.clone(),
            rows,
            error,
            done,
            min_password: accounts::MIN_PASSWORD,
        },
    )
}

pub(super) async fn list(State(d): State<Arc<Desk>>, headers: HeaderMap) -> Response {
    let p = match d.person(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !is_admin(p.user.role) {
        return forbidden_role(&p);
    }
    show(&d, &p, StatusCode::OK, None, None).await
}

#[derive(Debug, Deserialize)]
pub(super) struct AddForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    position: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    password: String,
}

fn problem(e: &AccountError) -> (StatusCode, String) {
    match e {
        AccountError::Invalid(m) => (StatusCode::BAD_REQUEST, m.clone()),
        AccountError::Db(crate::db::NodeDbError::UserExists(_)) => {
            (StatusCode::CONFLICT, e.to_string())
        }
        AccountError::Db(crate::db::NodeDbError::NoUser(_)) => {
            (StatusCode::NOT_FOUND, e.to_string())
        }
        other => (StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
    }
}

pub(super) async fn add(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    Form(form): Form<AddForm>,
) -> Response {
    let p = match d.form_person(&headers, &form.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !is_admin(p.user.role) {
        return forbidden_role(&p);
    }
    let req = NewUser {
        name: form.name,
        full_name: form.full_name,
        position: Some(form.position),
        email: Some(form.email),
        role: form.role,
        password: form.password,
    };
    match accounts::add(&d.node.db, req).await {
        Ok(u) => {
            tracing::info!(admin = %p.user.name, account = %u.name, role = u.role.as_str(), "account added from the desk");
            show(
                &d,
                &p,
                StatusCode::OK,
                None,
                Some(format!("Đã tạo tài khoản {} (account added).", u.name)),
            )
            .await
        }
        Err(e) => {
            let (status, m) = problem(&e);
            show(&d, &p, status, Some(m), None).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    password: String,
}

pub(super) async fn change(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    UrlPath((name, change)): UrlPath<(String, String)>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let p = match d.form_person(&headers, &form.csrf).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !is_admin(p.user.role) {
        return forbidden_role(&p);
    }
    let req = match change.as_str() {
        "disable" if name == p.user.name => {
            return show(
                &d,
                &p,
                StatusCode::CONFLICT,
                Some("Không thể tự khóa tài khoản của mình. (You cannot disable yourself.)".into()),
                None,
            )
            .await;
        }
        "disable" => ChangeUser {
            disabled: Some(true),
            password: None,
        },
        "enable" => ChangeUser {
            disabled: Some(false),
            password: None,
        },
        "password" => ChangeUser {
            disabled: None,
            password: Some(form.password),
        },
        _ => return Redirect::to("/users").into_response(),
    };
    let ends_sessions = req.disabled == Some(true) || req.password.is_some();
    match accounts::change(&d.node.db, &name, req).await {
        Ok(u) => {
            if ends_sessions {
                if u.name == p.user.name {
                    // Their own password: other browsers (a stolen session) are logged out.
                    d.sessions.end_others(&u.name, &headers);
                } else {
                    d.sessions.end_all(&u.name);
                }
            }
            tracing::info!(admin = %p.user.name, account = %u.name, change = %change, "account changed from the desk");
            show(
                &d,
                &p,
                StatusCode::OK,
                None,
                Some(format!(
                    "Đã cập nhật tài khoản {} (account changed).",
                    u.name
                )),
            )
            .await
        }
        Err(e) => {
            let (status, m) = problem(&e);
            show(&d, &p, status, Some(m), None).await
        }
    }
}
