//! The operators' side of the hub: the agency directory and tracking (the record itself is
//! built by [`crate::track`]), as a local admin API (plain HTTP on loopback, bearer token
//! from `data_dir/admin.token`) and as direct database operations for when the hub is not
//! running.
//!
//! Invariants:
//! - The admin API listens on loopback only (checked by the configuration).
//! - An agency's certificates must carry its own code in their UID: the directory can never
//!   bind a certificate to another agency's code.
//! - Every change is committed before it is answered and before the in-memory directory of a
//!   running hub changes.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::db::{Agency, HubDb};
use crate::service::{Hub, HubError, now};
use crate::track::DocumentTrack;
use exchange::protocol::{ErrorBody, ErrorCode};

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
        let certs = dsig::pem::blocks(pem.as_bytes(), "CERTIFICATE")
            .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?;
        let leaf = certs.first().ok_or_else(|| {
            HubError::new(ErrorCode::BadRequest, "no CERTIFICATE block in the PEM")
        })?;
        let info = dsig::pki::cert_info(leaf)
            .map_err(|e| HubError::new(ErrorCode::BadRequest, e.to_string()))?;
        check_valid_now(code, &info, time::OffsetDateTime::now_utc())?;
        let uid = info.agency_code;
        if uid.as_deref() != Some(code) {
            return Err(HubError::new(
                ErrorCode::BadRequest,
                format!(
                    "the certificate names agency {} in its UID, not {code}",
                    uid.as_deref().unwrap_or("(none)")
                ),
            ));
        }
        out.push(dsig::pki::fingerprint_sha256(leaf));
    }
    Ok(out)
}

/// Refuses a certificate outside its validity period: documents to an agency registered with
/// it would wait forever (the hub's TLS refuses its node, its signatures do not verify).
fn check_valid_now(
    code: &str,
    info: &dsig::pki::CertInfo,
    now: time::OffsetDateTime,
) -> Result<(), HubError> {
    let date = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| t.to_string())
    };
    if now > info.not_after {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            format!(
                "agency {code}: the certificate {} expired on {}; issue a current one",
                info.fingerprint_sha256,
                date(info.not_after)
            ),
        ));
    }
    if now < info.not_before {
        return Err(HubError::new(
            ErrorCode::BadRequest,
            format!(
                "agency {code}: the certificate {} is not valid yet (valid from {}); register \
                 it once it is, or check the issuing machine's clock",
                info.fingerprint_sha256,
                date(info.not_before)
            ),
        ));
    }
    Ok(())
}

/// Registers an agency directly in the database.
pub async fn add_agency(db: &HubDb, req: NewAgency) -> Result<Agency, HubError> {
    edxml::AgencyCode::parse_strict(&req.code).map_err(|e| {
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
        added_at: now(),
    };
    db.add_agency(agency.clone()).await?;
    Ok(agency)
}

/// Sets an agency active or suspended directly in the database.
pub async fn set_active(db: &HubDb, code: &str, active: bool) -> Result<Agency, HubError> {
    Ok(db.update_agency(code, move |a| a.active = active).await?)
}

/// The hub's record of a document issued by `owner`: every packet, and per recipient the
/// hub's events, the business statuses, the resulting state and the actions on it.
pub async fn track(db: &HubDb, owner: &str, document_id: &str) -> Result<DocumentTrack, HubError> {
    let history = db.document_history(owner, document_id).await?;
    Ok(crate::track::build(owner, document_id, history))
}

/// Largest admin request (an agency with its certificates).
const ADMIN_MAX_BODY: usize = 1024 * 1024;

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
        .route("/admin/reload", post(reload))
        .route("/metrics", get(metrics_route))
        .route("/admin/alerts", get(alerts_route))
        .layer(axum::middleware::from_fn_with_state(
            net::limits::BodyLimits::new(ADMIN_MAX_BODY),
            net::limits::buffer_body,
        ))
        .layer(axum::middleware::from_fn(net::limits::json_errors))
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
    let ok = net::token::bearer(headers).is_some_and(|t| net::token::matches(t, &state.token));
    if ok {
        Ok(())
    } else {
        Err(AdminError(
            StatusCode::UNAUTHORIZED,
            HubError::new(
                ErrorCode::Unauthorized,
                "missing or wrong admin token (Authorization: Bearer <data_dir/admin.token>)",
            ),
        ))
    }
}

/// Prometheus metrics (OpenMetrics text), behind the admin token like every admin route.
async fn metrics_route(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    check_token(&s, &headers)?;
    let body = s.hub.render_metrics().await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            crate::metrics::CONTENT_TYPE,
        )],
        body,
    )
        .into_response())
}

/// Incidents open now and the latest closed ones, with the mail still waiting.
pub use crate::db::AlertsView;

/// How many closed incidents `GET /admin/alerts` returns.
const PAST_INCIDENTS: usize = 200;

/// Reads the incidents and the mail queue (one snapshot).
pub async fn alerts(db: &HubDb) -> Result<AlertsView, HubError> {
    Ok(db.alerts_view(PAST_INCIDENTS, 100).await?)
}

async fn alerts_route(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Json<AlertsView>, AdminError> {
    check_token(&s, &headers)?;
    Ok(Json(alerts(&s.hub.db).await?))
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

/// What `POST /admin/reload` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Whether the trust files had changed (and were swapped in).
    pub changed: bool,
    /// The trust generation now in force.
    pub generation: u64,
    /// The files read.
    pub files: Vec<String>,
}

/// Reads the trust anchors and CRLs again now (what SIGHUP and the interval also do).
async fn reload(
    State(s): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> Result<Json<ReloadReport>, AdminError> {
    check_token(&s, &headers)?;
    let hub = Arc::clone(&s.hub);
    let outcome = tokio::task::spawn_blocking(move || hub.reload_trust())
        .await
        .map_err(|e| HubError::new(ErrorCode::Internal, format!("reload task failed: {e}")))?
        .map_err(|e| {
            AdminError(
                StatusCode::UNPROCESSABLE_ENTITY,
                HubError::new(
                    ErrorCode::BadRequest,
                    format!("{e}; the previous trust anchors and CRLs stay in force"),
                ),
            )
        })?;
    let trust = s.hub.trust();
    Ok(Json(ReloadReport {
        changed: matches!(outcome, net::live_trust::Reloaded::Changed { .. }),
        generation: trust.generation(),
        files: trust.files().map(|p| p.display().to_string()).collect(),
    }))
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
) -> Result<Json<DocumentTrack>, AdminError> {
    check_token(&s, &headers)?;
    Ok(Json(track(&s.hub.db, &p.owner, &p.document_id).await?))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::service::Caller;
    use dsig::{SigningIdentity, TrustStore};
    use edxml::compose::{CodeSpec, DocumentSpec, OrgSpec, PromulgationSpec, known_agency_name};
    use edxml::{
        AgencyCode, Bussiness, BussinessDocType, DocumentPacket, EdxmlDateTime, Organization,
        Packet, StaffInfo, StatusCode, StatusPacket,
    };
    use exchange::packet_id::PacketId;
    use exchange::status::{status_about, take_back_request};

    const G22: &str = "000.00.00.G22";
    const H41: &str = "000.00.00.H41";
    const H14: &str = "000.00.00.H14";
    const DOC: &str = "000.00.00.G22,2026/11/23,12/VPCP";
    const REVOKE: &str = "000.00.00.G22,2026/11/23,12/VPCP#revoke-1";

    fn certs() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs"))
    }

    #[test]
    fn certificates_outside_their_validity_are_named_for_what_they_are() {
        let pem = std::fs::read(agency_file(G22, ".pem")).unwrap();
        let der = dsig::pem::blocks(&pem, "CERTIFICATE").unwrap().remove(0);
        let info = dsig::pki::cert_info(&der).unwrap();
        assert!(check_valid_now(G22, &info, time::OffsetDateTime::now_utc()).is_ok());
        let late = check_valid_now(G22, &info, info.not_after + time::Duration::days(1))
            .unwrap_err()
            .to_string();
        assert!(late.contains("expired on"), "{late}");
        let early = check_valid_now(G22, &info, info.not_before - time::Duration::days(1))
            .unwrap_err()
            .to_string();
        assert!(early.contains("is not valid yet (valid from"), "{early}");
        assert!(!early.contains("expired"), "{early}");
    }

    fn agency_file(code: &str, suffix: &str) -> PathBuf {
        certs().join("agencies").join(format!("{code}{suffix}"))
    }

    /// A hub over a fresh database with the three development agencies registered.
    async fn hub(dir: &Path) -> Arc<Hub> {
        let db = HubDb::open(&dir.join("hub.redb")).unwrap();
        for code in [G22, H41, H14] {
            add_agency(
                &db,
                NewAgency {
                    code: code.into(),
                    name: known_agency_name(code).unwrap(),
                    email: None,
                    certificates: vec![std::fs::read_to_string(agency_file(code, ".pem")).unwrap()],
                },
            )
            .await
            .unwrap();
        }
        let trust = TrustStore::from_pem_files(
            &[certs().join("ca.pem").as_path()],
            &[certs().join("crl.pem").as_path()],
        )
        .unwrap();
        let identity =
            SigningIdentity::from_pem_files(&certs().join("hub.key.pem"), &certs().join("hub.pem"))
                .unwrap();
        Hub::new(
            db,
            Arc::new(net::live_trust::LiveTrust::fixed(trust)),
            identity,
            16 << 20,
        )
        .await
        .unwrap()
    }

    fn org(code: &str) -> Organization {
        Organization::new(
            AgencyCode::parse_strict(code).unwrap(),
            known_agency_name(code).unwrap(),
        )
    }

    fn document() -> DocumentPacket {
        DocumentSpec {
            from: OrgSpec::Code(G22.into()),
            to: vec![OrgSpec::Code(H41.into()), OrgSpec::Code(H14.into())],
            subject: "V/v theo dõi văn bản tại trục".into(),
            content: None,
            document_id: Some(DOC.into()),
            code: CodeSpec {
                number: "12".into(),
                notation: "VPCP".into(),
            },
            promulgation: PromulgationSpec {
                place: None,
                date: Some("2026/11/23".into()),
            },
            document_type: None,
            priority: Some(0),
            steering_type: None,
            due_date: None,
            to_places: vec![],
            signer: None,
            staff: None,
            attachments: vec![],
        }
        .build(Path::new("."), &known_agency_name)
        .unwrap()
    }

    /// 2026-11-23T10:00:00Z plus `secs`.
    fn at(secs: i64) -> EdxmlDateTime {
        let base = exchange::Timestamp::parse("2026-11-23T10:00:00Z")
            .unwrap()
            .to_offset_date_time();
        EdxmlDateTime::from_offset(base + time::Duration::seconds(secs))
    }

    fn rfc(secs: i64) -> String {
        exchange::Timestamp::from_offset(at(secs).to_offset_date_time()).to_string()
    }

    /// Signs `packet` as `agency` and submits it through the hub's checks.
    async fn submit(hub: &Arc<Hub>, agency: &str, packet: Packet) -> PacketId {
        let identity = SigningIdentity::from_pem_files(
            &agency_file(agency, ".key.pem"),
            &agency_file(agency, ".pem"),
        )
        .unwrap();
        let bytes = dsig::sign_packet(&edxml::write(&packet).unwrap(), &identity).unwrap();
        let id = PacketId::of(&bytes);
        hub.submit(
            Caller {
                agency: agency.into(),
            },
            bytes,
        )
        .await
        .unwrap();
        id
    }

    /// A recipient's status about `doc`, timestamped `secs` after the base time.
    fn status(
        doc: &DocumentPacket,
        me: &str,
        code: StatusCode,
        secs: i64,
        reason: Option<&str>,
        staff: Option<(&str, &str)>,
    ) -> Packet {
        let mut s: StatusPacket = status_about(
            doc,
            &org(me),
            code,
            reason.map(str::to_string),
            staff.map(|(staff, department)| StaffInfo {
                staff: Some(staff.into()),
                department: Some(department.into()),
                ..StaffInfo::default()
            }),
        );
        s.timestamp = at(secs);
        Packet::Status(s)
    }

    async fn ack(hub: &Arc<Hub>, agency: &str, ids: &[PacketId]) {
        let done = hub
            .acknowledge(
                Caller {
                    agency: agency.into(),
                },
                ids.to_vec(),
            )
            .await
            .unwrap();
        assert_eq!(done.len(), ids.len());
    }

    fn codes(statuses: &[crate::track::TrackedStatus]) -> Vec<&str> {
        statuses.iter().map(|s| s.code.as_str()).collect()
    }

    #[tokio::test]
    async fn track_shows_each_recipients_statuses_state_and_actions() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path()).await;
        let doc = document();
        let doc_id = submit(&hub, G22, Packet::Document(doc.clone())).await;
        ack(&hub, H41, &[doc_id]).await;

        // H41: 01, then 05 arrives before 03 (their timestamps give the real order).
        let s01 = submit(
            &hub,
            H41,
            status(&doc, H41, StatusCode::Received, 1, None, None),
        )
        .await;
        ack(&hub, G22, &[s01]).await;
        let staff = Some(("Trần Văn B", "Văn thư"));
        submit(
            &hub,
            H41,
            status(&doc, H41, StatusCode::Processing, 300, None, staff),
        )
        .await;
        submit(
            &hub,
            H41,
            status(&doc, H41, StatusCode::Accepted, 120, None, staff),
        )
        .await;
        // G22 asks to take it back (13), H41 agrees (15).
        let mut take_back = take_back_request(
            &doc,
            &org(G22),
            AgencyCode::parse_strict(H41).unwrap(),
            "Văn bản có sai sót".into(),
            None,
        );
        take_back.timestamp = at(400);
        submit(&hub, G22, Packet::Status(take_back)).await;
        submit(
            &hub,
            H41,
            status(&doc, H41, StatusCode::Agreed, 460, None, None),
        )
        .await;

        // H14 has not fetched the document; its node still sent 01, then a 04 without 03.
        submit(
            &hub,
            H14,
            status(&doc, H14, StatusCode::Received, 2, None, None),
        )
        .await;
        submit(
            &hub,
            H14,
            status(&doc, H14, StatusCode::Assigned, 60, None, None),
        )
        .await;
        // G22 revokes the document at H14 (its own id, Bussiness/DocumentId = the original);
        // H14 refuses (16) about the revoke's id.
        let mut revoke = doc.clone();
        revoke.document_id = REVOKE.into();
        revoke.to = vec![org(H14)];
        let mut b = Bussiness::new(BussinessDocType::Revoke);
        b.document_id = Some(DOC.into());
        b.reason = Some("Ban hành nhầm".into());
        revoke.bussiness = Some(b);
        submit(&hub, G22, Packet::Document(revoke.clone())).await;
        submit(
            &hub,
            H14,
            status(
                &revoke,
                H14,
                StatusCode::Refused,
                600,
                Some("Đã phân công xử lý"),
                None,
            ),
        )
        .await;

        let t = track(&hub.db, G22, DOC).await.unwrap();
        assert_eq!(t.owner, G22);
        assert_eq!(t.document.as_ref().unwrap().packet_id, doc_id.to_hex());
        assert_eq!(t.packets.len(), 10, "{:#?}", t.packets);
        let agencies: Vec<&str> = t.recipients.iter().map(|r| r.recipient.as_str()).collect();
        assert_eq!(agencies, [H41, H14]);

        let h41 = &t.recipients[0];
        assert_eq!(h41.delivery, "delivered");
        assert!(h41.delivered_at.is_some());
        assert_eq!(codes(&h41.statuses), ["01", "03", "05", "13", "15"]);
        assert_eq!(h41.state, "taken_back");
        assert_eq!(h41.stage.as_deref(), Some("05"));
        assert_eq!(h41.take_back, "agreed");
        assert!(h41.anomalies.is_empty(), "{:?}", h41.anomalies);
        assert_eq!(h41.describe_state(), "taken_back (05, take-back agreed)");
        let s = &h41.statuses;
        assert_eq!(s[0].time.to_string(), rfc(1));
        assert!(s[0].delivered_at.is_some(), "G22 acknowledged the 01");
        assert_eq!(s[1].time.to_string(), rfc(120));
        assert_eq!(s[1].label_en, "accepted");
        assert_eq!(s[1].staff.as_deref(), Some("Trần Văn B, Văn thư"));
        assert!(s[1].delivered_at.is_none());
        assert_eq!(s[3].from, G22);
        assert_eq!(s[3].reason.as_deref(), Some("Văn bản có sai sót"));
        assert!(s.iter().all(|x| x.anomaly.is_none() && !x.repeat));
        assert!(h41.actions.is_empty());

        let h14 = &t.recipients[1];
        assert_eq!(h14.delivery, "pending");
        assert_eq!(h14.delivered_at, None);
        assert_eq!(codes(&h14.statuses), ["01", "04"]);
        assert_eq!(h14.state, "new");
        assert_eq!(h14.stage.as_deref(), Some("01"));
        let anomaly = h14.statuses[1].anomaly.as_deref().unwrap();
        assert!(anomaly.contains("needs 03 (accepted)"), "{anomaly}");
        assert_eq!(h14.anomalies.len(), 1);
        assert_eq!(h14.actions.len(), 1);
        let a = &h14.actions[0];
        assert_eq!((a.action.as_str(), a.business_doc_type), ("revoke", 1));
        assert_eq!(a.document_id, REVOKE);
        assert_eq!(a.reason.as_deref(), Some("Ban hành nhầm"));
        assert_eq!(a.delivery, "pending");
        assert_eq!(codes(&a.statuses), ["16"]);
        assert_eq!(a.statuses[0].reason.as_deref(), Some("Đã phân công xử lý"));
        assert_eq!(a.answer.as_deref(), Some("16"));

        // The take-back request is filed under the issuer, not under H41.
        assert!(
            hub.db.document_history(H41, DOC).await.unwrap().is_empty(),
            "nothing of G22's document is filed under H41"
        );
        // What an operator reads.
        let mut text = Vec::new();
        crate::track::print_track(&mut text, &t).unwrap();
        let text = String::from_utf8(text).unwrap();
        for line in [
            format!("document {DOC} issued by {G22}"),
            format!("  {H41}  state: taken_back (05, take-back agreed)"),
            format!(
                "{}      03 accepted    by Trần Văn B, Văn thư  (packet {}, not yet delivered to the sender)",
                rfc(120),
                &s[1].packet_id[..16]
            ),
            format!(
                "{}      01 received     (packet {}, delivered to the sender)",
                rfc(1),
                &s[0].packet_id[..16]
            ),
            format!(
                "{}      13 take back   reason: Văn bản có sai sót",
                rfc(400)
            ),
            format!("  {H14}  state: new (01)"),
            "pending: not yet fetched".to_string(),
            "! does not follow the lifecycle: status 04 needs 03 (accepted) first".to_string(),
            format!(
                "revoke {REVOKE} (packet {}): refused (16)",
                &a.packet_id[..16]
            ),
            "accepted by the hub; reason: Ban hành nhầm".to_string(),
            format!(
                "{}      16 refused     reason: Đã phân công xử lý",
                rfc(600)
            ),
            "packets (10):".to_string(),
        ] {
            assert!(text.contains(&line), "{line:?} missing from:\n{text}");
        }
        // The JSON the admin API sends is what the CLI reads back.
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<DocumentTrack>(&json).unwrap(), t);
        // An unknown document has no packets (the CLI exits 1).
        let none = track(&hub.db, G22, "no such document").await.unwrap();
        assert!(none.packets.is_empty() && none.recipients.is_empty());
    }
}
