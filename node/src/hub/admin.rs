//! The operators' side of the hub: the agency directory and tracking, as a local admin API
//! (plain HTTP on loopback, bearer token from `data_dir/admin.token`) and as direct database
//! operations for when the hub is not running.
//!
//! Invariants:
//! - The admin API listens on loopback only (checked by the configuration).
//! - An agency's certificates must carry its own code in their UID: the directory can never
//!   bind a certificate to another agency's code.
//! - Every change is committed before it is answered and before the in-memory directory of a
//!   running hub changes.

use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::hub::db::{Agency, HubDb};
use crate::hub::service::{Hub, HubError, now_rfc3339};
use crate::protocol::{ErrorBody, ErrorCode};

/// A request to register an agency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewAgency {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// PEM certificates the agency may use (TLS client and signing).
    pub certificates: Vec<String>,
}

/// One packet of a document's history, as the hub saw it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackedPacket {
    pub packet_id: String,
    pub kind: String,
    pub from: String,
    pub status_code: Option<String>,
    pub accepted_at: String,
    pub recipients: Vec<TrackedDelivery>,
    pub refused: Vec<(String, String)>,
}

/// Delivery of one packet to one recipient.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackedDelivery {
    pub recipient: String,
    pub queued_at: String,
    pub delivered_at: Option<String>,
}

/// Turns PEM certificates into fingerprints, checking each one names `code` in its UID.
pub fn fingerprints_for(code: &str, pems: &[String]) -> Result<Vec<String>, HubError> {
    if pems.is_empty() {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            format!("agency {code}: at least one certificate is required"),
        ));
    }
    let mut out = Vec::new();
    for pem in pems {
        let certs = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HubError::new(ErrorCode::BadRequest, format!("malformed PEM: {e}")))?;
        let leaf = certs
            .iter()
            .find(|p| p.label == "CERTIFICATE")
            .ok_or_else(|| {
                HubError::new(ErrorCode::BadRequest, "no CERTIFICATE block in the PEM")
            })?;
        let uid = crate::pki::agency_code_of(&leaf.contents)
            .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?;
        if uid.as_deref() != Some(code) {
            return Err(HubError::new(
                ErrorCode::BadRequest,
                format!(
                    "the certificate names agency {} in its UID, not {code}",
                    uid.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        out.push(crate::pki::fingerprint_sha256(&leaf.contents));
    }
    Ok(out)
}

/// Registers an agency directly in the database.
pub async fn add_agency(db: &HubDb, req: NewAgency) -> Result<Agency, HubError> {
    crate::edxml::AgencyCode::parse_strict(&req.code).map_err(|e| {
        HubError::new(
            ErrorCode::BadRequest,
            format!("agency code {}: {e}", req.code),
        )
    })?;
    if req.name.trim().is_empty() {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            "the agency name is empty",
        ));
    }
    let agency = Agency {
        fingerprints: fingerprints_for(&req.code, &req.certificates)?,
        code: req.code,
        name: req.name.trim().to_string(),
        email: req.email,
        active: true,
        added_at: now_rfc3339(),
    };
    db.add_agency(agency.clone()).await?;
    Ok(agency)
}

/// Sets an agency active or suspended directly in the database.
pub async fn set_active(db: &HubDb, code: &str, active: bool) -> Result<Agency, HubError> {
    Ok(db.update_agency(code, move |a| a.active = active).await?)
}

/// The hub's record of every packet of a document.
pub async fn track(
    db: &HubDb,
    owner: &str,
    document_id: &str,
) -> Result<Vec<TrackedPacket>, HubError> {
    let history = db.document_history(owner, document_id).await?;
    let mut out: Vec<TrackedPacket> = history
        .into_iter()
        .map(|(id, meta, deliveries)| TrackedPacket {
            packet_id: id.to_hex(),
            kind: meta.kind,
            from: meta.from,
            status_code: meta.status_code,
            accepted_at: meta.accepted_at,
            recipients: deliveries
                .into_iter()
                .map(|(recipient, d)| TrackedDelivery {
                    recipient,
                    queued_at: d.queued_at,
                    delivered_at: d.delivered_at,
                })
                .collect(),
            refused: meta.refused,
        })
        .collect();
    out.sort_by(|a, b| a.accepted_at.cmp(&b.accepted_at));
    Ok(out)
}

/// Reads the admin token, creating it (mode 0600) if absent.
pub fn ensure_token(path: &Path) -> std::io::Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(token)
}

struct AdminState {
    hub: Arc<Hub>,
    token: String,
}

/// The admin router.
pub fn router(hub: Arc<Hub>, token: String) -> axum::Router {
    axum::Router::new()
        .route("/admin/agencies", get(list).post(add))
        .route("/admin/agencies/{code}/suspend", post(suspend))
        .route("/admin/agencies/{code}/resume", post(resume))
        .route("/admin/track", get(track_route))
        .with_state(Arc::new(AdminState { hub, token }))
}

struct AdminError(StatusCode, HubError);

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(ErrorBody {
                code: self.1.code,
                message: self.1.message,
            }),
        )
            .into_response()
    }
}

impl From<HubError> for AdminError {
    fn from(e: HubError) -> Self {
        let status = match e.code {
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Internal => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        AdminError(status, e)
    }
}

fn check_token(state: &AdminState, headers: &HeaderMap) -> Result<(), AdminError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let ok = given.len() == state.token.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            given.as_bytes(),
            state.token.as_bytes(),
        )
        .is_ok();
    if ok {
        Ok(())
    } else {
        Err(AdminError(
            StatusCode::UNAUTHORIZED,
            HubError::new(
                ErrorCode::BadRequest,
                "missing or wrong admin token (Authorization: Bearer <data_dir/admin.token>)",
            ),
        ))
    }
}

async fn list(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Json<Vec<Agency>>, AdminError> {
    check_token(&s, &headers)?;
    Ok(Json(s.hub.agencies()))
}

async fn add(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    Json(req): Json<NewAgency>,
) -> Result<(StatusCode, Json<Agency>), AdminError> {
    check_token(&s, &headers)?;
    let agency = add_agency(&s.hub.db, req).await?;
    s.hub.cache_agency(agency.clone());
    Ok((StatusCode::CREATED, Json(agency)))
}

async fn suspend(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    UrlPath(code): UrlPath<String>,
) -> Result<Json<Agency>, AdminError> {
    check_token(&s, &headers)?;
    let a = set_active(&s.hub.db, &code, false).await?;
    s.hub.cache_agency(a.clone());
    Ok(Json(a))
}

async fn resume(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    UrlPath(code): UrlPath<String>,
) -> Result<Json<Agency>, AdminError> {
    check_token(&s, &headers)?;
    let a = set_active(&s.hub.db, &code, true).await?;
    s.hub.cache_agency(a.clone());
    Ok(Json(a))
}

/// `?owner=CODE&document_id=ID`
#[derive(Debug, Deserialize)]
struct TrackParams {
    owner: String,
    document_id: String,
}

async fn track_route(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
    Query(p): Query<TrackParams>,
) -> Result<Json<Vec<TrackedPacket>>, AdminError> {
    check_token(&s, &headers)?;
    Ok(Json(track(&s.hub.db, &p.owner, &p.document_id).await?))
}
