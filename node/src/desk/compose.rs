//! Composing a document in the browser: recipients from the hub's signed directory
//! (searchable), subject, number, notation, priority, content, signer and several attachments.
//!
//! The form's fields are named `to` (repeated), `subject`, `number`, `notation`, `priority`,
//! `content`, `signer`, `signer_position` and `attachment` (files, repeated), so scripts and
//! tests can drive it. It posts through [`crate::send::send_document`], the code path of
//! `POST /api/v1/documents`, with the logged-in person as `StaffInfo`.
//!
//! Invariants:
//! - The CSRF token is checked before anything is read past the form's small fields' order:
//!   a form without a valid token stores nothing, whatever it carries.
//! - Uploads are bounded ([`max_files`], from `max_packet_bytes`) before they are read; a refusal stores nothing and
//!   shows the form again with what was typed.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use serde::Deserialize;

use web::Chrome;
use web::session::same_origin;

use super::pages::{chrome, render, store_error};
use super::{Desk, Person, forbidden_role};
use crate::Shared;
use crate::client::encode_segment;
use crate::db::User;
use crate::outgoing::{InlineAttachment, SendDocument};
use crate::send::send_document;

/// Largest upload of one compose form (all files together, before base64): what a packet of
/// `max_packet_bytes` can carry once base64 (4/3) and the packet's own text are counted.
pub(super) fn max_files(node: &Shared) -> usize {
    node.config.max_packet_bytes.saturating_sub(256 * 1024) / 4 * 3
}

/// The body limit of the compose route (the files and the form's fields).
pub(super) fn max_upload(node: &Shared) -> usize {
    max_files(node) + 1024 * 1024
}

struct Agency {
    code: String,
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "desk/compose.html")]
struct ComposePage {
    chrome: Chrome,
    csrf: String,
    q: String,
    agencies: Vec<Agency>,
    directory_known: bool,
    subject: String,
    number: String,
    notation: String,
    priority: String,
    content: String,
    signer: String,
    signer_position: String,
    error: Option<String>,
    me: String,
    max_upload: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ComposeQuery {
    #[serde(default)]
    q: String,
}

#[derive(Debug, Default)]
struct Typed {
    to: Vec<String>,
    subject: String,
    number: String,
    notation: String,
    priority: String,
    content: String,
    signer: String,
    signer_position: String,
}

/// Lowercase without Vietnamese diacritics, so that "chinh phu" finds "Chính phủ".
fn fold(s: &str) -> String {
    const GROUPS: [(char, &str); 7] = [
        ('a', "àáảãạăằắẳẵặâầấẩẫậ"),
        ('e', "èéẻẽẹêềếểễệ"),
        ('i', "ìíỉĩị"),
        ('o', "òóỏõọôồốổỗộơờớởỡợ"),
        ('u', "ùúủũụưừứửữự"),
        ('y', "ỳýỷỹỵ"),
        ('d', "đ"),
    ];
    s.to_lowercase()
        .chars()
        .map(|c| {
            GROUPS
                .iter()
                .find(|(_, marked)| marked.contains(c))
                .map_or(c, |(base, _)| *base)
        })
        .collect()
}

fn page(d: &Desk, p: &Person, q: &str, typed: &Typed, error: Option<String>) -> ComposePage {
    let mut list = d.node.directory.agencies();
    let directory_known = !list.is_empty();
    if list.is_empty() {
        list = edxml::compose::KNOWN_AGENCIES
            .iter()
            .map(|(c, n)| (c.to_string(), n.to_string(), true))
            .collect();
    }
    let needle = fold(q.trim());
    let agencies = list
        .into_iter()
        .filter(|(code, _, active)| *active && *code != d.node.config.agency)
        .filter(|(code, name, _)| {
            needle.is_empty()
                || fold(name).contains(&needle)
                || code.contains(&needle)
                || typed.to.contains(code)
        })
        .map(|(code, name, _)| Agency {
            selected: typed.to.contains(&code),
            code,
            name,
        })
        .collect();
    ComposePage {
        chrome: chrome("/compose", Some(p)),
        csrf: p.session.csrf.clone(),
        q: q.to_string(),
        agencies,
        directory_known,
        subject: typed.subject.clone(),
        number: typed.number.clone(),
        notation: typed.notation.clone(),
        priority: if typed.priority.is_empty() {
            "0".into()
        } else {
            typed.priority.clone()
        },
        content: typed.content.clone(),
        signer: typed.signer.clone(),
        signer_position: typed.signer_position.clone(),
        error,
        me: format!("{} ({})", d.node.me.organ_name, d.node.config.agency),
        max_upload: format!("{} MB", max_files(&d.node) / (1024 * 1024)),
    }
}

pub(super) async fn form(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    query: Result<Query<ComposeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let p = match d.person(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.user.role.may_send() {
        return forbidden_role(&p);
    }
    let q = query.map(|Query(q)| q.q).unwrap_or_default();
    render(StatusCode::OK, &page(&d, &p, &q, &Typed::default(), None))
}

struct Upload {
    name: String,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn field_error(e: impl std::fmt::Display) -> String {
    format!("Không đọc được biểu mẫu (the form could not be read): {e}")
}

pub(super) async fn submit(
    State(d): State<Arc<Desk>>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    // The session and the role first: nobody uploads anything without them.
    let p = match d.person(&headers).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if !p.user.role.may_send() {
        return forbidden_role(&p);
    }
    let mut multipart = match multipart {
        Ok(m) => m,
        Err(e) => {
            return render(
                StatusCode::BAD_REQUEST,
                &page(&d, &p, "", &Typed::default(), Some(field_error(e))),
            );
        }
    };
    let mut typed = Typed::default();
    let mut csrf = String::new();
    let mut files: Vec<Upload> = Vec::new();
    let mut total = 0usize;
    let mut problem: Option<String> = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                let status = e.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    format!(
                        "Tệp đính kèm quá lớn: tổng cộng tối đa {} MB. (Attachments too large: at \
                         most {} MB in all.)",
                        max_files(&d.node) / (1024 * 1024),
                        max_files(&d.node) / (1024 * 1024)
                    )
                } else {
                    field_error(e)
                };
                return render(status, &page(&d, &p, "", &typed, Some(message)));
            }
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "attachment" {
            // The token comes first in the form; no file is kept before it was checked.
            if !p.session.csrf_ok(&csrf) {
                problem.get_or_insert_with(|| "csrf".into());
                break;
            }
            let file_name = field.file_name().unwrap_or("").trim().to_string();
            let content_type = field.content_type().map(str::to_string);
            let data = match field.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    return render(
                        StatusCode::BAD_REQUEST,
                        &page(&d, &p, "", &typed, Some(field_error(e))),
                    );
                }
            };
            if file_name.is_empty() && data.is_empty() {
                continue; // the empty file input of a form sent without files
            }
            total += data.len();
            if total > max_files(&d.node) {
                return render(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &page(
                        &d,
                        &p,
                        "",
                        &typed,
                        Some(format!(
                            "Tệp đính kèm quá lớn: tổng cộng tối đa {} MB. (Attachments too large.)",
                            max_files(&d.node) / (1024 * 1024)
                        )),
                    ),
                );
            }
            files.push(Upload {
                name: if file_name.is_empty() {
                    format!("tep-{}", files.len() + 1)
                } else {
                    file_name
                },
                content_type: content_type.filter(|c| c != "application/octet-stream"),
                data: data.to_vec(),
            });
            continue;
        }
        let value = match field.text().await {
            Ok(v) => v,
            Err(e) => {
                return render(
                    StatusCode::BAD_REQUEST,
                    &page(&d, &p, "", &typed, Some(field_error(e))),
                );
            }
        };
        match name.as_str() {
            "csrf" => csrf = value,
            "to" => typed.to.push(value.trim().to_string()),
            "subject" => typed.subject = value,
            "number" => typed.number = value,
            "notation" => typed.notation = value,
            "priority" => typed.priority = value,
            "content" => typed.content = value,
            "signer" => typed.signer = value,
            "signer_position" => typed.signer_position = value,
            _ => {}
        }
    }
    if problem.is_some() || !same_origin(&headers) || !p.session.csrf_ok(&csrf) {
        return super::pages::message(
            StatusCode::FORBIDDEN,
            Some(&p),
            "Biểu mẫu không hợp lệ · Form refused",
            "Biểu mẫu này đã hết hạn hoặc không được gửi từ trang của nút; không có gì được gửi. \
             (The form's CSRF token or origin is wrong; nothing was sent.)",
        );
    }
    typed.to.retain(|t| !t.is_empty());
    typed.to.sort();
    typed.to.dedup();
    let count = files.len();
    let built = {
        let typed = std::mem::take(&mut typed);
        let user = p.user.clone();
        tokio::task::spawn_blocking(move || {
            let r = build(&typed, files, &user);
            (typed, r)
        })
        .await
    };
    let request = match built {
        Ok((t, Ok(r))) => {
            typed = t;
            r
        }
        Ok((t, Err(message))) => {
            return render(
                StatusCode::BAD_REQUEST,
                &page(&d, &p, "", &t, Some(message)),
            );
        }
        Err(e) => return store_error(Some(&p.session), &format!("the form task failed: {e}")),
    };
    match send_document(&d.node, request).await {
        Ok(sent) => {
            tracing::info!(account = %p.user.name, document = %sent.document_id, files = count, "document sent from the desk");
            Redirect::to(&format!(
                "/sent/document?id={}&done={}",
                encode_segment(&sent.document_id),
                encode_segment(&sent.document_id)
            ))
            .into_response()
        }
        Err(e) if super::pages::send_error_status(&e) == StatusCode::SERVICE_UNAVAILABLE => {
            store_error(Some(&p.session), &e.to_string())
        }
        Err(e) => render(
            super::pages::send_error_status(&e),
            &page(
                &d,
                &p,
                "",
                &typed,
                Some(format!(
                    "Chưa gửi được, không có gì được lưu. (Not sent, nothing stored.) {e}"
                )),
            ),
        ),
    }
}

/// The request of `POST /api/v1/documents` the form amounts to (the files base64-encoded as
/// that request carries them). Blocking: it encodes every file.
fn build(typed: &Typed, files: Vec<Upload>, user: &User) -> Result<SendDocument, String> {
    use edxml::compose::{CodeSpec, OrgSpec, SignerSpec};
    if typed.to.is_empty() {
        return Err("Hãy chọn ít nhất một nơi nhận. (Choose at least one recipient.)".into());
    }
    let need = |v: &str, what: &str| {
        if v.trim().is_empty() {
            Err(format!("Hãy nhập {what}."))
        } else {
            Ok(v.trim().to_string())
        }
    };
    let subject = need(&typed.subject, "trích yếu (subject)")?;
    let number = need(&typed.number, "số văn bản (number)")?;
    let notation = need(&typed.notation, "ký hiệu (notation)")?;
    let priority: u8 = match typed.priority.trim() {
        "" => 0,
        v => v
            .parse()
            .map_err(|_| format!("Độ khẩn {v:?} không hợp lệ (0–4)."))?,
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    Ok(SendDocument {
        from: None,
        to: typed.to.iter().cloned().map(OrgSpec::Code).collect(),
        subject,
        content: nonempty(&typed.content),
        document_id: None,
        code: CodeSpec { number, notation },
        promulgation: Default::default(),
        document_type: None,
        priority: Some(priority),
        steering_type: None,
        due_date: None,
        to_places: Vec::new(),
        signer: nonempty(&typed.signer).map(|full_name| SignerSpec {
            competence: None,
            position: nonempty(&typed.signer_position),
            full_name,
        }),
        staff: Some(crate::accounts::staff(user)),
        attachments: files
            .into_iter()
            .map(|f| InlineAttachment {
                name: f.name,
                content_type: f.content_type,
                description: None,
                data: b64.encode(&f.data),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn searching_ignores_case_and_diacritics() {
        assert_eq!(super::fold("Văn phòng Chính phủ"), "van phong chinh phu");
        assert_eq!(super::fold("UBND Tỉnh Đắk Lắk"), "ubnd tinh dak lak");
    }
}
