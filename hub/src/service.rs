//! The hub's decisions: who may call, whether a packet is accepted, routing, receipts.
//!
//! A submission is checked in this order, and the first failure is the answer (nothing is
//! stored): body size (enforced before the body is read, in `api`); well-formed edXML without
//! DTD; the strict schema; the strict signature profile and trust chain; the signer's
//! certificate registered for `From/OrganId`; the TLS client being that same agency; a
//! document's DocumentId being one that agency may use (`exchange::document_id`); the
//! recipients being registered and active. Then the packet, its signed receipt, what it says
//! for tracking (a status's own timestamp, staff and reason; an action's target document) and
//! one delivery row per accepted recipient are committed in one transaction, and only then
//! answered.
//!
//! Invariants:
//! - Verification, schema validation and signing run on the blocking pool, never on the
//!   executor.
//! - A caller is an agency only if its client certificate's UID names a registered, active
//!   agency *and* the certificate's fingerprint is registered for it.
//! - The directory cache is updated only after the database committed the change.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use store::StoreError;
use tokio::sync::Notify;

use crate::db::{Agency, HubDb, HubDbError, NewPacket, PacketMeta, Submitted};
use crate::metrics::HubMetrics;
use crate::signer::ReceiptSigner;
use dsig::receipt::{HubReceipt, ReceiptKind, RefusedRecipient};
use dsig::{self, SigningIdentity, TrustStoreError, Verdict, VerifyPolicy};
use edxml::schema::{self, SchemaKind};
use edxml::{self, BussinessDocType, Packet, ReadOptions};
use exchange::clock::Timestamp;
use exchange::document_id;
use exchange::packet_id::PacketId;
use exchange::protocol::ErrorCode;
use exchange::protocol::PacketKind;
use net::live_trust::{LiveTrust, Reloaded};

/// A refusal or failure, with the protocol code and a sentence for a human.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HubError {
    pub code: ErrorCode,
    pub message: String,
}

impl HubError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> HubError {
        HubError {
            code,
            message: message.into(),
        }
    }

    fn internal(what: impl std::fmt::Display) -> HubError {
        HubError::new(ErrorCode::Internal, format!("hub failure: {what}"))
    }
}

impl From<HubDbError> for HubError {
    fn from(e: HubDbError) -> Self {
        match e {
            HubDbError::DuplicateBusinessKey { .. } => {
                HubError::new(ErrorCode::DuplicateBusinessKey, e.to_string())
            }
            HubDbError::AgencyExists(_) => HubError::new(ErrorCode::BadRequest, e.to_string()),
            HubDbError::UnknownAgency(_) => HubError::new(ErrorCode::NotFound, e.to_string()),
            HubDbError::Store(s) => HubError::internal(s),
            HubDbError::Postgres(p) => HubError::internal(p),
        }
    }
}

impl From<StoreError> for HubError {
    fn from(e: StoreError) -> Self {
        HubError::internal(e)
    }
}

/// Per-agency wake-up signals for long polls.
#[derive(Default)]
pub struct Notifier {
    map: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
}

impl Notifier {
    /// The signal for `agency`.
    pub fn get(&self, agency: &str) -> Arc<Notify> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(map.entry(agency.to_string()).or_default())
    }

    /// Wakes every long poll waiting for `agency`.
    pub fn wake(&self, agency: &str) {
        self.get(agency).notify_waiters();
    }

    /// Wakes every long poll (after news may have been missed).
    pub fn wake_all(&self) {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        for signal in map.values() {
            signal.notify_waiters();
        }
    }
}

/// One acknowledged packet: its delivery receipt, and the submission receipt the hub signed
/// when it accepted the packet (the recipient keeps both as evidence, see issue 15).
#[derive(Debug, Clone)]
pub struct Acked {
    pub id: PacketId,
    pub delivery: String,
    pub submission: Option<String>,
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agency: String,
}

/// The hub: state shared by all request handlers.
pub struct Hub {
    pub db: HubDb,
    trust: Arc<LiveTrust>,
    /// Client certificates (by fingerprint) found unrevoked, and under which trust generation.
    unrevoked: RwLock<HashMap<String, u64>>,
    /// Rebuilds the TLS server configuration after the trust changed (set by [`crate::start`]).
    tls_refresh: OnceLock<TlsRefresh>,
    identity: Arc<SigningIdentity>,
    /// Signs receipts in batches, one signature per batch.
    signer: ReceiptSigner,
    directory: RwLock<HashMap<String, Agency>>,
    /// Woken when packets are queued for an agency.
    pub inbox_signal: Notifier,
    /// Woken when delivery receipts are queued for a sender.
    pub receipt_signal: Notifier,
    pub max_packet_bytes: usize,
    /// Counted events and scrape-time state (`GET /metrics`).
    pub metrics: Arc<HubMetrics>,
}

/// Rebuilds and installs the TLS server configuration from the files.
pub type TlsRefresh = Box<dyn Fn() -> Result<(), net::TlsError> + Send + Sync>;

/// Why reloading trust failed; what was in force stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Trust(#[from] TrustStoreError),
    #[error("the new trust was loaded but the TLS configuration cannot be rebuilt: {0}")]
    Tls(#[from] net::TlsError),
}

/// What passed every check, ready to commit.
struct Checked {
    id: PacketId,
    meta: PacketMeta,
}

impl Hub {
    /// Builds the hub over an opened database and loads the directory cache.
    pub async fn new(
        db: HubDb,
        trust: Arc<LiveTrust>,
        identity: SigningIdentity,
        max_packet_bytes: usize,
    ) -> Result<Arc<Hub>, HubError> {
        let identity = Arc::new(identity);
        let agencies = db.agencies().await?;
        let directory = agencies.into_iter().map(|a| (a.code.clone(), a)).collect();
        let metrics = Arc::new(HubMetrics::new());
        let observer = Arc::clone(&metrics);
        db.observe_batches(Box::new(move |jobs| observer.store_batch(jobs)));
        Ok(Arc::new(Hub {
            db,
            trust,
            unrevoked: RwLock::new(HashMap::new()),
            tls_refresh: OnceLock::new(),
            signer: ReceiptSigner::start(Arc::clone(&identity), Arc::clone(&metrics)),
            identity,
            directory: RwLock::new(directory),
            inbox_signal: Notifier::default(),
            receipt_signal: Notifier::default(),
            max_packet_bytes,
            metrics,
        }))
    }

    /// Renders the metrics, reading the state figures from the store and the trust now.
    pub async fn render_metrics(&self) -> Result<String, HubError> {
        let snap = self.state_snapshot().await?;
        self.metrics
            .render(snap)
            .await
            .map_err(|e| HubError::internal(format!("cannot encode the metrics: {e}")))
    }

    /// The state figures, read from the store and the trust now (metrics, alerts, console).
    pub async fn state_snapshot(&self) -> Result<crate::metrics::Snapshot, HubError> {
        let now = time::OffsetDateTime::now_utc();
        let seconds_to = |t: time::OffsetDateTime| (t - now).as_seconds_f64();
        let pending = self
            .db
            .pending_summary()
            .await?
            .into_iter()
            .map(|p| {
                let age = p
                    .oldest_queued_at
                    .map_or(0.0, |t| -seconds_to(t.to_offset_date_time()));
                (p.recipient, p.count, age.max(0.0))
            })
            .collect();
        let (alerts_open, mail_queued) = self.db.alert_counts().await?;
        let stats = self.db.writer_stats();
        Ok(crate::metrics::Snapshot {
            pending,
            agencies: self
                .agencies()
                .into_iter()
                .map(|a| (a.code, a.active))
                .collect(),
            hub_certificate_seconds: seconds_to(self.identity.not_after()),
            crl_next_update: self
                .trust
                .current()
                .crl_next_updates()
                .into_iter()
                .map(|(issuer, next)| (issuer, next.map(seconds_to)))
                .collect(),
            store_commits: stats.commits,
            store_jobs: stats.jobs,
            alerts_open,
            mail_queued,
        })
    }

    /// What the alert checks judge (the refusal count is the watcher's own).
    pub async fn alert_inputs(&self) -> Result<crate::alerts::Inputs, HubError> {
        let snap = self.state_snapshot().await?;
        let mut certificates = vec![("hub".to_string(), snap.hub_certificate_seconds)];
        certificates.extend(self.metrics.agency_certificate_seconds());
        Ok(crate::alerts::Inputs {
            pending: snap.pending,
            agencies: self
                .agencies()
                .into_iter()
                .map(|a| (a.code, a.name, a.active))
                .collect(),
            last_poll: self.metrics.last_poll_ages(),
            refused_in_window: 0,
            certificates,
            crl_next_update: snap
                .crl_next_update
                .into_iter()
                .filter_map(|(issuer, secs)| secs.map(|s| (issuer, s)))
                .collect(),
        })
    }

    /// The trust in force (anchors and CRLs as last loaded).
    pub fn trust(&self) -> &Arc<LiveTrust> {
        &self.trust
    }

    /// Installs what rebuilds the TLS configuration after a trust change (once).
    pub fn set_tls_refresh(&self, refresh: TlsRefresh) {
        let _ = self.tls_refresh.set(refresh);
    }

    /// Reads the trust files again; when they changed, swaps the store in and rebuilds the TLS
    /// configuration. Blocking.
    pub fn reload_trust(&self) -> Result<Reloaded, ReloadError> {
        let outcome = self.trust.reload()?;
        if let Reloaded::Changed { .. } = outcome
            && let Some(refresh) = self.tls_refresh.get()
        {
            refresh()?;
        }
        Ok(outcome)
    }

    /// Refuses a client certificate the CRLs in force revoke (it may have connected before
    /// they were loaded). Verdicts are kept per trust generation.
    fn check_unrevoked(&self, peer: &net::peer::PeerIdentity) -> Result<(), HubError> {
        let generation = self.trust.generation();
        let known = self
            .unrevoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&peer.fingerprint_sha256)
            .copied();
        if known == Some(generation) {
            return Ok(());
        }
        self.trust
            .current()
            .check_not_revoked(&peer.cert_der, time::OffsetDateTime::now_utc())
            .map_err(|e| {
                HubError::new(
                    ErrorCode::AgencyNotActive,
                    format!("the client certificate is no longer trusted: {e}"),
                )
            })?;
        let mut map = self.unrevoked.write().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear();
        }
        map.insert(peer.fingerprint_sha256.clone(), generation);
        Ok(())
    }

    fn agency(&self, code: &str) -> Option<Agency> {
        self.directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(code)
            .cloned()
    }

    /// All agencies, from the cache.
    pub fn agencies(&self) -> Vec<Agency> {
        let mut v: Vec<Agency> = self
            .directory
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }

    /// Reads the whole directory again from the database (another replica changed it).
    pub async fn reload_directory(&self) -> Result<(), HubError> {
        let agencies = self.db.agencies().await?;
        let fresh: HashMap<String, Agency> =
            agencies.into_iter().map(|a| (a.code.clone(), a)).collect();
        *self.directory.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// Acts on what another replica said through PostgreSQL: wakes the long polls it concerns
    /// and reloads the directory when it changed. After a reconnection everything is woken and
    /// reloaded, since notifications may have been missed.
    pub fn heard(self: &Arc<Self>, heard: crate::db::pg::Heard) {
        use crate::db::pg::Heard;
        let reload = match heard {
            Heard::Inbox(agency) => {
                self.inbox_signal.wake(&agency);
                false
            }
            Heard::Receipts(agency) => {
                self.receipt_signal.wake(&agency);
                false
            }
            Heard::Directory(_) => true,
            Heard::Resync => {
                self.inbox_signal.wake_all();
                self.receipt_signal.wake_all();
                true
            }
        };
        if reload {
            let hub = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = hub.reload_directory().await {
                    tracing::warn!(error = %e, "cannot reload the directory from PostgreSQL");
                }
            });
        }
    }

    /// Refreshes one cache entry after a committed change.
    pub fn cache_agency(&self, agency: Agency) {
        self.directory
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agency.code.clone(), agency);
    }

    /// Decides whether a TLS peer may act as an agency.
    pub fn authorize(&self, peer: &net::peer::PeerIdentity) -> Result<Caller, HubError> {
        let code = peer.agency_code.as_deref().ok_or_else(|| {
            HubError::new(
                ErrorCode::AgencyNotActive,
                format!(
                    "the client certificate ({}) names no agency (no UID attribute)",
                    peer.subject
                ),
            )
        })?;
        let agency = self.agency(code).ok_or_else(|| {
            HubError::new(
                ErrorCode::AgencyNotActive,
                format!("agency {code} is not registered at this hub"),
            )
        })?;
        if !agency.active {
            return Err(HubError::new(
                ErrorCode::AgencyNotActive,
                format!("agency {code} is suspended at this hub"),
            ));
        }
        if !agency.fingerprints.contains(&peer.fingerprint_sha256) {
            return Err(HubError::new(
                ErrorCode::AgencyNotActive,
                format!(
                    "the client certificate {} is not registered for agency {code}",
                    peer.fingerprint_sha256
                ),
            ));
        }
        self.check_unrevoked(peer)?;
        Ok(Caller {
            agency: code.to_string(),
        })
    }

    /// Checks, stores and acknowledges a submitted packet. Returns the signed receipt. The
    /// outcome and the time it took are counted in the metrics.
    pub async fn submit(
        self: &Arc<Self>,
        caller: Caller,
        bytes: Vec<u8>,
    ) -> Result<String, HubError> {
        let started = std::time::Instant::now();
        let result = self.submit_checked(caller, bytes).await;
        let outcome = match &result {
            Ok((_, true)) => "accepted",
            Ok((_, false)) => "resubmitted",
            Err(e) => e.code.as_str(),
        };
        self.metrics
            .submitted(outcome, started.elapsed().as_secs_f64());
        result.map(|(receipt, _)| receipt)
    }

    /// [`Hub::submit`] without the counting: the receipt, and whether the packet is new.
    async fn submit_checked(
        self: &Arc<Self>,
        caller: Caller,
        bytes: Vec<u8>,
    ) -> Result<(String, bool), HubError> {
        let hub = Arc::clone(self);
        let (checked, bytes) = tokio::task::spawn_blocking(move || {
            let checked = hub.check_submission(&caller, &bytes)?;
            Ok::<_, HubError>((checked, bytes))
        })
        .await
        .map_err(HubError::internal)??;
        let receipt = self
            .sign_receipts(vec![submission_receipt(&checked)])
            .await?;
        let receipt = receipt
            .into_iter()
            .next()
            .ok_or_else(|| HubError::internal("the receipt signer returned no receipt"))?;
        let mut meta = checked.meta;
        meta.receipt = receipt;
        let recipients = meta.recipients.clone();
        let outcome = self
            .db
            .submit(NewPacket {
                id: checked.id,
                bytes,
                meta,
            })
            .await?;
        match outcome {
            Submitted::New { receipt } => {
                for r in &recipients {
                    self.inbox_signal.wake(r);
                }
                tracing::info!(packet = %checked.id, recipients = recipients.len(), "packet accepted");
                self.metrics.receipt("submission");
                Ok((receipt, true))
            }
            Submitted::Again { receipt } => {
                tracing::info!(packet = %checked.id, "resubmission: original receipt returned");
                Ok((receipt, false))
            }
        }
    }

    /// The blocking checks of a submission, in the documented order.
    fn check_submission(&self, caller: &Caller, bytes: &[u8]) -> Result<Checked, HubError> {
        if bytes.len() > self.max_packet_bytes {
            return Err(HubError::new(
                ErrorCode::TooLarge,
                format!(
                    "the packet is {} bytes; this hub accepts at most {}",
                    bytes.len(),
                    self.max_packet_bytes
                ),
            ));
        }
        let mut opts = ReadOptions::default();
        opts.limits.max_bytes = self.max_packet_bytes;
        let mut outcome = edxml::read(bytes, &opts).map_err(|e| {
            HubError::new(
                ErrorCode::Malformed,
                format!("not an acceptable edXML packet: {e}"),
            )
        })?;
        // The hub routes by the header and stores the bytes as received: the attachments'
        // text (most of a big packet) is not kept while the schema and signature are checked.
        outcome.packet.drop_attachment_text();
        let kind = match outcome.packet {
            Packet::Document(_) => SchemaKind::Document,
            Packet::Status(_) => SchemaKind::Status,
        };
        // One parse of the packet serves the schema and the signature check.
        let policy = VerifyPolicy::default();
        let parsed = dsig::ParsedPacket::parse(bytes, &policy.limits).map_err(|e| {
            HubError::new(
                ErrorCode::Malformed,
                format!("not an acceptable edXML packet: {e}"),
            )
        })?;
        schema::validate_parsed(kind, parsed.text(), parsed.doc()).map_err(|e| {
            HubError::new(
                ErrorCode::Schema,
                format!("the packet does not follow the strict edXML schema: {e}"),
            )
        })?;
        let verdict = dsig::verify_parsed(&parsed, &self.trust.current(), &policy)
            .map_err(|e| HubError::new(ErrorCode::Signature, format!("signature refused: {e}")))?;
        drop(parsed);
        let Verdict::Signed(signed) = verdict else {
            return Err(HubError::new(
                ErrorCode::Signature,
                "the packet is not signed",
            ));
        };
        let packet = outcome.packet;
        let from = packet.from().organ_id.to_string();
        let sender = self.agency(&from).filter(|a| a.active).ok_or_else(|| {
            HubError::new(
                ErrorCode::SignerNotRegistered,
                format!("sender {from} is not a registered, active agency"),
            )
        })?;
        let fingerprint = dsig::pki::fingerprint_sha256(&signed.signer_cert_der);
        if !sender.fingerprints.contains(&fingerprint) {
            return Err(HubError::new(
                ErrorCode::SignerNotRegistered,
                format!(
                    "the signing certificate ({}, {fingerprint}) is not registered for {from}",
                    signed.signer_subject
                ),
            ));
        }
        dsig::check_sender(&signed, &from)
            .map_err(|e| HubError::new(ErrorCode::SignerNotRegistered, e.to_string()))?;
        if caller.agency != from {
            return Err(HubError::new(
                ErrorCode::ClientNotSender,
                format!(
                    "this connection belongs to agency {}, which may not submit packets from {from}",
                    caller.agency
                ),
            ));
        }
        if let Packet::Document(d) = &packet {
            let id = d.document_id.as_str();
            let checked = match d.bussiness_doc_type() {
                BussinessDocType::Revoke => document_id::check_request(id, &from, "revoke"),
                BussinessDocType::Update => document_id::check_request(id, &from, "update"),
                _ => document_id::check_new(id, &from),
            };
            checked.map_err(|e| HubError::new(ErrorCode::DocumentId, e.to_string()))?;
        }
        let mut recipients: Vec<String> = Vec::new();
        let mut refused: Vec<(String, String)> = Vec::new();
        for code in packet.to() {
            let code = code.to_string();
            if recipients.contains(&code) || refused.iter().any(|(c, _)| *c == code) {
                continue;
            }
            if code == from {
                refused.push((code, "an agency cannot send to itself".into()));
                continue;
            }
            match self.agency(&code) {
                Some(a) if a.active => recipients.push(code),
                Some(_) => refused.push((code, "agency is suspended at this hub".into())),
                None => refused.push((code, "not a registered agency".into())),
            }
        }
        if recipients.is_empty() {
            let reasons: Vec<String> = refused.iter().map(|(c, r)| format!("{c}: {r}")).collect();
            return Err(HubError::new(
                ErrorCode::NoRecipient,
                format!("no recipient can be routed to ({})", reasons.join("; ")),
            ));
        }
        let (business_doc_type, status_code, priority) = match &packet {
            Packet::Document(d) => (
                Some(d.bussiness_doc_type().code()),
                None,
                d.priority().code(),
            ),
            Packet::Status(s) => (None, Some(s.status_code), 0),
        };
        let id = PacketId(signed.packet_sha256);
        let mut meta = PacketMeta {
            kind: PacketKind::of(&packet),
            from,
            document_id: packet.document_id().to_string(),
            business_doc_type,
            status_code,
            priority,
            size: bytes.len() as u64,
            accepted_at: now(),
            recipients,
            refused,
            receipt: String::new(),
            status_time: None,
            staff: None,
            reason: None,
            target_document_id: None,
            removed_recipients: Vec::new(),
            subject: None,
            code: None,
        };
        meta.record_business(&packet);
        Ok(Checked { id, meta })
    }

    /// Signs receipts, batched with those asked for at the same time (`crate::signer`).
    async fn sign_receipts(&self, receipts: Vec<HubReceipt>) -> Result<Vec<String>, HubError> {
        self.signer.sign(receipts).await.map_err(HubError::internal)
    }

    /// Records that `caller` durably stored these packets; returns a signed delivery receipt
    /// for each packet it may see (others are silently left out, as if unknown).
    pub async fn acknowledge(
        self: &Arc<Self>,
        caller: Caller,
        ids: Vec<PacketId>,
    ) -> Result<Vec<Acked>, HubError> {
        let todo = self.db.metas_for(&caller.agency, ids).await?;
        let submission: HashMap<PacketId, String> = todo
            .iter()
            .map(|(id, m, _)| (*id, m.receipt.clone()))
            .collect();
        let mut senders: Vec<String> = todo.iter().map(|(_, m, _)| m.from.clone()).collect();
        let delivered_before: std::collections::HashSet<PacketId> = todo
            .iter()
            .filter(|(_, _, d)| d.receipt.is_some())
            .map(|(id, _, _)| *id)
            .collect();
        let accepted_at: HashMap<PacketId, Timestamp> =
            todo.iter().map(|(id, m, _)| (*id, m.accepted_at)).collect();
        let signed = self.delivery_receipts(&caller.agency, todo).await?;
        // A receipt signed now that the database kept is a delivery completed now (one signed
        // concurrently by a retry loses to the first and is not counted).
        let fresh: HashMap<PacketId, (String, Timestamp)> = signed
            .iter()
            .filter(|(id, _, _)| !delivered_before.contains(id))
            .map(|(id, _, r)| {
                (
                    *id,
                    (r.clone(), accepted_at.get(id).copied().unwrap_or_else(now)),
                )
            })
            .collect();
        let recorded = self.db.record_deliveries(&caller.agency, signed).await?;
        let now_ms = now().unix_ms();
        for (id, receipt) in &recorded {
            if let Some((ours, accepted)) = fresh.get(id)
                && ours == receipt
            {
                let waited = now_ms.saturating_sub(accepted.unix_ms()) as f64 / 1000.0;
                self.metrics.delivered(waited);
            }
        }
        senders.sort();
        senders.dedup();
        for s in &senders {
            self.receipt_signal.wake(s);
        }
        Ok(recorded
            .into_iter()
            .map(|(id, delivery)| Acked {
                submission: submission.get(&id).cloned(),
                id,
                delivery,
            })
            .collect())
    }

    /// Signed delivery receipts to `agency` for these packets (a packet delivered before keeps
    /// its stored receipt); the new ones signed as one batch.
    async fn delivery_receipts(
        &self,
        agency: &str,
        todo: Vec<(PacketId, PacketMeta, crate::db::Delivery)>,
    ) -> Result<Vec<(PacketId, Timestamp, String)>, HubError> {
        let mut out = Vec::with_capacity(todo.len());
        let mut fresh = Vec::new();
        for (id, meta, delivery) in todo {
            if let Some(existing) = delivery.receipt {
                // Delivered before: the stored receipt stands (the database keeps it).
                let at = delivery.delivered_at.ok_or_else(|| {
                    HubError::internal(format!(
                        "the delivery of {id} to {agency} has a receipt but no delivery time"
                    ))
                })?;
                out.push((id, at, existing));
                continue;
            }
            let at = now();
            fresh.push((
                id,
                at,
                HubReceipt {
                    kind: ReceiptKind::Delivery,
                    packet_id: id.to_hex(),
                    packet_kind: meta.kind.as_str().to_string(),
                    from: meta.from.clone(),
                    document_id: meta.document_id.clone(),
                    hub_time: at.to_offset_date_time(),
                    accepted: Vec::new(),
                    refused: Vec::new(),
                    delivered_to: Some(agency.to_string()),
                },
            ));
        }
        let (keys, receipts): (Vec<(PacketId, Timestamp)>, Vec<HubReceipt>) =
            fresh.into_iter().map(|(id, at, r)| ((id, at), r)).unzip();
        let signed = self.sign_receipts(receipts).await?;
        if signed.len() != keys.len() {
            return Err(HubError::internal("the receipt signer lost receipts"));
        }
        out.extend(
            keys.into_iter()
                .zip(signed)
                .map(|((id, at), r)| (id, at, r)),
        );
        Ok(out)
    }

    /// The directory as JSON, and a hub-signed XML statement of its SHA-256.
    pub async fn signed_directory(self: &Arc<Self>) -> Result<(Vec<u8>, String), HubError> {
        let directory = exchange::protocol::Directory {
            issued_at: now(),
            agencies: self
                .agencies()
                .into_iter()
                .map(|a| exchange::protocol::DirectoryEntry {
                    code: a.code,
                    name: a.name,
                    email: a.email,
                    fingerprints: a.fingerprints,
                    active: a.active,
                })
                .collect(),
        };
        let body = serde_json::to_vec(&directory).map_err(HubError::internal)?;
        let hub = Arc::clone(self);
        let digest = PacketId::of(&body).to_hex();
        let issued = directory.issued_at;
        let statement = tokio::task::spawn_blocking(move || {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DirectoryDigest xmlns=\"urn:docaxis:directory:1\">\n  <Sha256>{digest}</Sha256>\n  <IssuedAt>{issued}</IssuedAt>\n</DirectoryDigest>\n"
            );
            dsig::sign_root(xml.as_bytes(), &hub.identity)
                .map_err(|e| HubError::internal(format!("cannot sign the directory: {e}")))
        })
        .await
        .map_err(HubError::internal)??;
        use base64::Engine as _;
        Ok((
            body,
            base64::engine::general_purpose::STANDARD.encode(statement),
        ))
    }
}

/// Now, to the millisecond (the precision of receipts' `HubTime`).
pub fn now() -> Timestamp {
    Timestamp::from_unix_ms(exchange::clock::now_ms())
}
/// The submission receipt of a checked packet, unsigned.
fn submission_receipt(checked: &Checked) -> HubReceipt {
    let m = &checked.meta;
    HubReceipt {
        kind: ReceiptKind::Submission,
        packet_id: checked.id.to_hex(),
        packet_kind: m.kind.as_str().to_string(),
        from: m.from.clone(),
        document_id: m.document_id.clone(),
        hub_time: m.accepted_at.to_offset_date_time(),
        accepted: m.recipients.clone(),
        refused: m
            .refused
            .iter()
            .map(|(code, reason)| RefusedRecipient {
                code: code.clone(),
                reason: reason.clone(),
            })
            .collect(),
        delivered_to: None,
    }
}
