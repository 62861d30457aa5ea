//! Archive packages and the records feed at the node (issue 15).
//!
//! Routes, on the clerk listener:
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/api/v1/archive?after=SEQ&limit=N` | [`FeedBatch`]: finished documents after `SEQ`, linked by digest |
//! | GET | `/api/v1/archive/documents?since=MS&until=MS` | [`Candidates`]: documents sent or received in that window (Unix ms, `until` exclusive) |
//! | GET | `/api/v1/archive/documents/{key}` | the document's ASiC-E container (`key`: document id or packet id) |
//!
//! They answer the clerk API's bearer token, or HTTP Basic credentials of an enabled account
//! with the `records` or `admin` role (records systems are machines with an account of their
//! own); wrong credentials are limited per account like the login page.
//!
//! Invariants: a container is built from the stored bytes only ([`archive::build`]), off the
//! async executor; every CRL the node's trust holds is remembered ([`remember_crls`]) before
//! a container is built, so the CRLs in force when the hub received a packet stay available
//! after the CA publishes newer ones.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Shared;
use super::api::ApiError;
use super::db::{Bundle, EvidenceRole, FeedEntry, Role as UserRole};
use net::token;

/// Most feed entries in one batch.
pub const MAX_BATCH: usize = 500;
/// Most documents one candidates query lists.
pub const MAX_CANDIDATES: usize = 10_000;

/// A container ready to hand out.
#[derive(Debug, Clone)]
pub struct Export {
    pub document_id: String,
    /// A file name for it: the document's number and notation, made safe.
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Db(#[from] super::db::NodeDbError),
    #[error("the stored evidence cannot be packaged: {0}")]
    Build(#[from] archive::BuildError),
    #[error("{0}")]
    Internal(String),
}

/// Reads the CRLs of the node's configured CRL files and remembers those not seen before.
pub async fn remember_crls(node: &Shared) -> Result<usize, ExportError> {
    let paths = node.config.crl.clone();
    let ders = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for p in paths {
            match std::fs::read(&p) {
                Ok(pem) => match dsig::pem::blocks(&pem, "X509 CRL") {
                    Ok(blocks) => out.extend(blocks),
                    Err(e) => {
                        tracing::warn!(file = %p.display(), error = %e, "archive: unreadable CRL")
                    }
                },
                Err(e) => {
                    tracing::warn!(file = %p.display(), error = %e, "archive: cannot read a CRL")
                }
            }
        }
        out
    })
    .await
    .map_err(|e| ExportError::Internal(e.to_string()))?;
    let known = node.db.held_crls().await?;
    let new: Vec<Vec<u8>> = ders
        .into_iter()
        .filter(|d| !known.iter().any(|k| &k.der == d))
        .collect();
    if new.is_empty() {
        return Ok(0);
    }
    Ok(node.db.remember_crls(new).await?)
}

/// Remembers the CRLs at start and then every `trust_reload_secs`, until `shutdown`.
pub async fn run(node: Shared, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(node.config.trust_reload_secs.max(1));
    loop {
        match remember_crls(&node).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(crls = n, "archive: remembered new CRLs"),
            Err(e) => tracing::warn!(error = %e, "archive: cannot remember the CRLs"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Builds the container of the document `key` (document id or document packet id);
/// `None` when this node holds no such document.
pub async fn export(node: &Shared, key: &str) -> Result<Option<Export>, ExportError> {
    if let Err(e) = remember_crls(node).await {
        tracing::warn!(error = %e, "archive: CRLs not refreshed before the export");
    }
    let Some(bundle) = node.db.archive_bundle(key.to_string()).await? else {
        return Ok(None);
    };
    let crls = node
        .db
        .held_crls()
        .await?
        .into_iter()
        .map(|c| c.der)
        .collect();
    let me = node.config.agency.clone();
    tokio::task::spawn_blocking(move || package(&me, bundle, crls))
        .await
        .map_err(|e| ExportError::Internal(e.to_string()))?
        .map(Some)
}

fn package(me: &str, bundle: Bundle, crls: Vec<Vec<u8>>) -> Result<Export, ExportError> {
    let packets = bundle
        .packets
        .iter()
        .map(|p| archive::PacketIn {
            role: match p.role {
                EvidenceRole::Document => archive::Role::Document,
                EvidenceRole::Status => archive::Role::Status,
                EvidenceRole::Request => archive::Role::Request,
            },
            bytes: p.bytes.clone(),
            submission_receipt: p.submission_receipt.as_ref().map(|r| r.as_bytes().to_vec()),
            delivery_receipts: p
                .delivery_receipts
                .iter()
                .map(|r| r.as_bytes().to_vec())
                .collect(),
        })
        .collect();
    let input = archive::Input {
        node: me.to_string(),
        document_id: bundle.document_id.clone(),
        records: archive::Records {
            direction: bundle.direction.as_str().to_string(),
            register_number: bundle.register_number,
            received_at: bundle.received_at.map(|t| t.to_offset_date_time()),
            state: bundle.state.clone(),
        },
        packets,
        crls,
        created: OffsetDateTime::now_utc(),
    };
    let bytes = archive::build(&input)?;
    Ok(Export {
        file_name: file_name(&bundle.document_id),
        document_id: bundle.document_id,
        bytes,
    })
}

/// `agency,date,12/VPCP-TTĐT` → `agency_date_12-VPCP-TTĐT.asice`: letters (any script),
/// digits, `.`, `-` and `_` kept, everything else `-`.
pub fn file_name(document_id: &str) -> String {
    let safe: String = document_id
        .chars()
        .map(|c| match c {
            ',' => '_',
            c if c.is_alphanumeric() || c == '.' || c == '-' || c == '_' => c,
            _ => '-',
        })
        .take(120)
        .collect();
    format!("{safe}.asice")
}

/// One batch of the records feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedBatch {
    /// The `after` asked for.
    pub after: u64,
    /// The digest of entry `after` (64 zeros for 0): the first item's `previous` must equal it,
    /// and it must equal the `last` of the batch the caller read before.
    pub previous: String,
    pub items: Vec<FeedItem>,
    /// The digest of the last item (`previous` when there is none).
    pub last: String,
    /// Where the next batch starts.
    pub next_after: u64,
}

impl FeedBatch {
    /// What a records system checks on each batch: it continues from `expected_previous`
    /// (the `last` of the batch read before, or [`super::db::FEED_GENESIS`] at the start),
    /// each entry names the one before it, and each digest is the documented rule's
    /// ([`FeedEntry::compute_digest`]). A batch left out, an entry removed or changed, fails.
    pub fn check_follows(&self, expected_previous: &str) -> Result<(), String> {
        if self.previous != expected_previous {
            return Err(format!(
                "the batch after entry {} continues from digest {}, but the last digest read                  was {expected_previous}: entries are missing between them",
                self.after, self.previous
            ));
        }
        let mut previous = self.previous.as_str();
        for item in &self.items {
            let e = &item.entry;
            if e.previous != previous {
                return Err(format!(
                    "entry {} names previous digest {}, not {previous}",
                    e.seq, e.previous
                ));
            }
            if e.compute_digest() != e.digest {
                return Err(format!(
                    "entry {}: its digest does not match its fields",
                    e.seq
                ));
            }
            previous = &e.digest;
        }
        if previous != self.last {
            return Err(format!(
                "the batch's last digest is {}, not {previous}",
                self.last
            ));
        }
        Ok(())
    }
}

/// One finished document of the feed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeedItem {
    #[serde(flatten)]
    pub entry: FeedEntry,
    /// Where its container is.
    pub container: String,
}

/// Documents sent or received in a window.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Candidates {
    /// Document packet ids (the `key` of `/api/v1/archive/documents/{key}`).
    pub items: Vec<String>,
    /// More matched than [`MAX_CANDIDATES`].
    pub truncated: bool,
}

#[derive(Debug, Deserialize)]
struct FeedQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct WindowQuery {
    since: Option<u64>,
    until: Option<u64>,
}

/// The archive routes (state: the node), behind [`require_records`].
pub fn router(node: Shared) -> Router<Shared> {
    let limiter = Arc::new(web::limit::LoginLimiter::<String>::new(
        std::time::Duration::from_secs(900),
    ));
    Router::new()
        .route("/api/v1/archive", get(get_feed))
        .route("/api/v1/archive/documents", get(get_candidates))
        .route("/api/v1/archive/documents/{key}", get(get_container))
        .route_layer(middleware::from_fn_with_state(
            (node, limiter),
            require_records,
        ))
}

fn unauthorized(message: String) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"docaxis records\", charset=\"UTF-8\""),
    );
    r
}

fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, password) = text.split_once(':')?;
    Some((name.to_string(), password.to_string()))
}

async fn require_records(
    State((node, limiter)): State<(Shared, Arc<web::limit::LoginLimiter<String>>)>,
    req: Request,
    next: Next,
) -> Response {
    if let Some(t) = token::bearer(req.headers()) {
        if token::matches(t, &node.token) {
            return next.run(req).await;
        }
        return unauthorized("the bearer token is wrong".into());
    }
    let Some((name, password)) = basic(req.headers()) else {
        return unauthorized(
            "the archive needs the API's bearer token, or Basic credentials of an account with \
             the records or admin role"
                .into(),
        );
    };
    let name: String = name.chars().take(64).collect();
    if let Err(wait) = limiter.attempt(name.clone()) {
        let r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!(
                "too many wrong passwords for {name:?}; try again in {} s",
                wait.as_secs().max(1)
            ),
        )
        .into_response();
        return web::limit::with_retry_after(r, wait);
    }
    let user = match node.db.user(name.clone()).await {
        Ok(u) => u,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let Some(user) = crate::accounts::verify(user, password).await else {
        return unauthorized(format!(
            "the name or password is wrong, or account {name:?} is disabled"
        ));
    };
    limiter.succeeded(name);
    if !matches!(user.role, UserRole::Records | UserRole::Admin) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "account {:?} has the {} role; the archive is for the records and admin roles",
                user.name,
                user.role.as_str()
            ),
        )
        .into_response();
    }
    next.run(req).await
}

async fn get_feed(
    State(node): State<Shared>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; use ?after=SEQ (a number, 0 for the start) and optionally &limit=N",
            e.body_text()
        ))
    })?;
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_BATCH);
    let (previous, entries) = node.db.archive_feed(q.after, limit).await?;
    let Some(previous) = previous else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the feed has no entry {}; start from after=0", q.after),
        ));
    };
    let last = entries
        .last()
        .map(|e| e.digest.clone())
        .unwrap_or_else(|| previous.clone());
    let next_after = entries.last().map_or(q.after, |e| e.seq);
    let items = entries
        .into_iter()
        .map(|entry| FeedItem {
            container: format!("/api/v1/archive/documents/{}", entry.packet_id),
            entry,
        })
        .collect();
    Ok(axum::Json(FeedBatch {
        after: q.after,
        previous,
        items,
        last,
        next_after,
    })
    .into_response())
}

async fn get_candidates(
    State(node): State<Shared>,
    query: Result<Query<WindowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; use ?since=MS&until=MS (Unix milliseconds)",
            e.body_text()
        ))
    })?;
    let since = q.since.unwrap_or(0);
    let until = q.until.unwrap_or(u64::MAX);
    if since > until {
        return Err(ApiError::bad_request("since is after until"));
    }
    let mut items = node.db.archive_candidates(since, until).await?;
    let truncated = items.len() > MAX_CANDIDATES;
    items.truncate(MAX_CANDIDATES);
    Ok(axum::Json(Candidates { items, truncated }).into_response())
}

async fn get_container(
    State(node): State<Shared>,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    match export(&node, &key).await {
        Ok(Some(e)) => Ok(container_response(e)),
        Ok(None) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("this node has sent or received no document {key:?}"),
        )),
        Err(ExportError::Db(e)) => Err(e.into()),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// The container as a download.
pub fn container_response(e: Export) -> Response {
    let ascii: String = e
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        crate::client::encode_segment(&e.file_name)
    );
    let mut r = (
        [(header::CONTENT_TYPE, archive::container::MIMETYPE)],
        e.bytes,
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, previous: &str) -> FeedEntry {
        let mut e = FeedEntry {
            seq,
            document_id: format!("000.00.00.G22,2026/12/04,{seq}/VPCP"),
            packet_id: "ab".repeat(32),
            direction: super::super::db::Direction::Sent,
            reason: "06".into(),
            at: exchange::Timestamp::from_unix_ms(1_700_000_000_000 + seq),
            previous: previous.to_string(),
            digest: String::new(),
        };
        e.digest = e.compute_digest();
        e
    }

    fn batch(after: u64, entries: Vec<FeedEntry>, previous: &str) -> FeedBatch {
        let last = entries
            .last()
            .map_or(previous.to_string(), |e| e.digest.clone());
        FeedBatch {
            after,
            previous: previous.to_string(),
            next_after: entries.last().map_or(after, |e| e.seq),
            items: entries
                .into_iter()
                .map(|entry| FeedItem {
                    container: String::new(),
                    entry,
                })
                .collect(),
            last,
        }
    }

    #[test]
    fn the_feed_chain_detects_a_removed_batch_and_a_changed_entry() {
        use super::super::db::FEED_GENESIS;
        let e1 = entry(1, FEED_GENESIS);
        let e2 = entry(2, &e1.digest);
        let e3 = entry(3, &e2.digest);
        let b1 = batch(0, vec![e1.clone()], FEED_GENESIS);
        let b2 = batch(1, vec![e2.clone()], &e1.digest);
        let b3 = batch(2, vec![e3.clone()], &e2.digest);
        b1.check_follows(FEED_GENESIS).unwrap();
        b2.check_follows(&b1.last).unwrap();
        b3.check_follows(&b2.last).unwrap();
        // Batch 2 left out: batch 3 does not follow batch 1.
        let err = b3.check_follows(&b1.last).unwrap_err();
        assert!(err.contains("missing"), "{err}");
        // An entry changed after the fact.
        let mut changed = b2.clone();
        changed.items[0].entry.reason = "revoked".into();
        assert!(
            changed
                .check_follows(&b1.last)
                .unwrap_err()
                .contains("digest")
        );
        // An entry removed from inside a batch.
        let mut gap = batch(0, vec![e1, e2, e3], FEED_GENESIS);
        gap.items.remove(1);
        assert!(gap.check_follows(FEED_GENESIS).is_err());
    }

    #[test]
    fn file_names_keep_the_number_and_lose_what_paths_and_headers_cannot_hold() {
        assert_eq!(
            file_name("000.00.00.G22,2026-12-04,12/VPCP-TTĐT"),
            "000.00.00.G22_2026-12-04_12-VPCP-TTĐT.asice"
        );
        assert_eq!(file_name("a\"b\\c/../d"), "a-b-c-..-d.asice");
    }

    #[test]
    fn basic_credentials_are_read_and_garbage_is_not() {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode("luutru:mật khẩu:x");
        h.insert(header::AUTHORIZATION, format!("Basic {v}").parse().unwrap());
        assert_eq!(
            basic(&h),
            Some(("luutru".to_string(), "mật khẩu:x".to_string()))
        );
        h.insert(header::AUTHORIZATION, "Basic @@@".parse().unwrap());
        assert_eq!(basic(&h), None);
    }
}
