//! The hub's durable state, behind one interface with two backends.
//!
//! [`HubDb`] is what the rest of the hub calls; it holds either
//! - [`redb::RedbHub`]: the embedded redb file (`data_dir/hub.redb`), one process, the default
//!   for a single machine and for the demo; or
//! - [`pg::PgHub`]: PostgreSQL (`[store] postgres = "postgresql://…"`), shared by any number of
//!   hub replicas.
//!
//! Both keep the same guarantees, and the same tests run against both
//! (`tests/tests/it/hub_store.rs`):
//! - A submission (packet, meta with its signed receipt, business key, tracking index, ledger,
//!   one delivery row per recipient) is one transaction; so is a delivery (delivery row,
//!   receipt, the sender's receipt row, the ledger). Nothing is answered before it committed.
//! - A packet id is stored once and a business key (From, DocumentId, BussinessDocType) names
//!   one packet: the database enforces both, so two replicas racing on the same packet
//!   cannot both win — the loser answers with the winner's receipt, or 409.
//! - A delivery's first receipt stands: acknowledging again returns it.
//! - A recipient only ever reaches packets for which a delivery row names it.
//! - Alert incidents and the mail that reports them are written in one transaction.

pub mod migrate;
pub mod pg;
pub mod redb;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use edxml::{BussinessDocType, Packet};
use exchange::clock::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;
use store::{StoreError, WriterStats};

use crate::alerts::{Changes, Condition, Incident};
use crate::ledger::{Found, HourCount, Search};

pub use pg::{PgError, PgHub};
pub use redb::{LAYOUT_VERSION, RedbHub};

/// A registered agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    /// SHA-256 fingerprints (lower-case hex) of the certificates it may use.
    pub fingerprints: Vec<String>,
    pub active: bool,
    pub added_at: Timestamp,
}

/// What the hub remembers about a packet besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketMeta {
    /// `document` or `status`.
    pub kind: PacketKind,
    pub from: String,
    pub document_id: String,
    /// BussinessDocType for documents (0–3); None for status packets.
    pub business_doc_type: Option<u8>,
    /// Status code for status packets.
    pub status_code: Option<edxml::StatusCode>,
    pub priority: u8,
    pub size: u64,
    /// When the submission committed.
    pub accepted_at: Timestamp,
    pub recipients: Vec<String>,
    pub refused: Vec<(String, String)>,
    /// The signed submission receipt returned to the sender (and again on resubmission).
    pub receipt: String,
    /// Status packets: the packet's own `Timestamp`, the time the business lifecycle is
    /// ordered by. `None` only if the stored bytes could not be read again when the row was
    /// upgraded.
    #[serde(default)]
    pub status_time: Option<Timestamp>,
    /// `StaffInfo` summarised (`staff, department`): of a status packet, or of an action's
    /// `Bussiness`.
    #[serde(default)]
    pub staff: Option<String>,
    /// The reason: a status packet's `Description`, or an action's `BussinessDocReason`.
    #[serde(default)]
    pub reason: Option<String>,
    /// Action documents (BussinessDocType 1–3): the DocumentId of the document acted upon
    /// (`Bussiness/DocumentId`, or for a replacement without it the first
    /// `ReplacementInfo/DocumentId`).
    #[serde(default)]
    pub target_document_id: Option<String>,
    /// Updates: the agencies the update removes from the recipients (`ReceiverType` 0).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_recipients: Vec<String>,
    /// Document packets: the subject (`TrichYeu`), as sent; shown to operators escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Document packets: the number and notation (`CodeNumber/CodeNotation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl PacketMeta {
    /// Records what the packet says about the business lifecycle: a status's timestamp, staff
    /// and reason; an action document's target, staff and reason.
    pub fn record_business(&mut self, packet: &Packet) {
        match packet {
            Packet::Status(s) => {
                self.status_time = Some(s.timestamp.to_offset_date_time().into());
                self.staff = s.staff_info.as_ref().and_then(exchange::staff_summary);
                self.reason = s.description.clone();
            }
            Packet::Document(d) => {
                self.subject = Some(d.subject.clone());
                self.code = Some(match d.code.code_notation.is_empty() {
                    true => d.code.code_number.clone(),
                    false => format!("{}/{}", d.code.code_number, d.code.code_notation),
                });
                let Some(b) = &d.bussiness else {
                    return;
                };
                if b.doc_type == BussinessDocType::New {
                    return;
                }
                // Read the way the nodes read it.
                if let Some(action) = exchange::action_of(d) {
                    self.target_document_id = Some(action.original);
                    self.removed_recipients = action.removed;
                }
                self.staff = b.staff_info.as_ref().and_then(exchange::staff_summary);
                self.reason = b.reason.clone();
            }
        }
    }

    /// An action (revoke, update, replace) on another document: the document it acts on.
    pub fn action_target(&self) -> Option<&str> {
        match self.business_doc_type {
            Some(1..=3) => self
                .target_document_id
                .as_deref()
                .filter(|t| *t != self.document_id),
            _ => None,
        }
    }
}

/// Delivery state of one (packet, recipient) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub queued_at: Timestamp,
    #[serde(default)]
    pub delivered_at: Option<Timestamp>,
    /// Signed delivery receipt, once delivered.
    #[serde(default)]
    pub receipt: Option<String>,
    /// Queue position while pending: (urgency rank, seq).
    pub queue_key: (u8, u64),
}

/// What one recipient has waiting (see [`HubDb::pending_summary`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingSummary {
    pub recipient: String,
    pub count: u64,
    /// When the longest-waiting delivery was queued.
    pub oldest_queued_at: Option<Timestamp>,
}

/// How many packet bytes an inbox listing may carry inline (see [`HubDb::pending_inline`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineBudget {
    /// Largest packet carried inline.
    pub packet_bytes: u64,
    /// Most bytes of the listing's inline packets together.
    pub listing_bytes: u64,
}

impl InlineBudget {
    /// No packet inline.
    pub const NONE: InlineBudget = InlineBudget {
        packet_bytes: 0,
        listing_bytes: 0,
    };

    /// Whether a packet of `size` bytes goes inline when `used` bytes of the small packets
    /// before it (in listing order, inline or not) have been counted; adds it to `used` when
    /// it is small.
    /// Once the small packets add up past the budget, none after them goes inline, so a
    /// listing's inline packets are always a prefix of its small ones.
    pub fn take(&self, used: &mut u64, size: u64) -> bool {
        if size == 0 || size > self.packet_bytes {
            return false;
        }
        *used = used.saturating_add(size);
        *used <= self.listing_bytes
    }
}

/// A packet waiting for its recipient, with its bytes when they come inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPacket {
    pub id: PacketId,
    pub meta: PacketMeta,
    pub bytes: Option<Vec<u8>>,
}

/// A verified submission ready to be committed.
#[derive(Debug, Clone)]
pub struct NewPacket {
    pub id: PacketId,
    pub bytes: Vec<u8>,
    pub meta: PacketMeta,
}

/// Result of committing a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Newly stored; here is the receipt that was committed with it.
    New { receipt: String },
    /// These exact bytes were stored before: the original receipt.
    Again { receipt: String },
}

/// Hub storage errors and refusals decided inside a transaction.
#[derive(Debug, thiserror::Error)]
pub enum HubDbError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "a different packet already uses document id {document_id:?} from {from} with BussinessDocType {business_doc_type} (packet {existing}); send a new DocumentId, or an update/replace packet"
    )]
    DuplicateBusinessKey {
        from: String,
        document_id: String,
        business_doc_type: u8,
        existing: String,
    },
    #[error("agency {0} is already registered")]
    AgencyExists(String),
    #[error("agency {0} is not registered")]
    UnknownAgency(String),
    #[error("{0}")]
    Postgres(#[from] pg::PgError),
}

/// Urgency rank used in queue keys: lower is served first. Priority 4 (hỏa tốc hẹn giờ) and 3
/// (hỏa tốc) first, then 2, 1, 0.
pub fn urgency_rank(priority: u8) -> u8 {
    4u8.saturating_sub(priority.min(4))
}

pub(crate) fn business_key(from: &str, document_id: &str, bdt: u8) -> String {
    format!("{from}\u{1f}{document_id}\u{1f}{bdt}")
}

/// Which agency "owns" the business document a packet belongs to: the issuer. That is the
/// sender of a document packet and of a take-back request (13, which only the issuer sends),
/// and the addressee of any other status packet (a recipient answering the issuer).
pub(crate) fn document_owner(meta: &PacketMeta) -> String {
    let take_back = meta
        .status_code
        .is_some_and(exchange::lifecycle::sent_by_original_sender);
    if meta.kind == PacketKind::Status && !take_back {
        meta.recipients.first().cloned().unwrap_or_default()
    } else {
        meta.from.clone()
    }
}

/// Today's and this week's traffic, and the last hours (the console's overview).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Traffic {
    /// Documents accepted since the start of the day asked for (whole hours).
    pub today: u64,
    /// Documents accepted since the start of the week asked for (whole hours).
    pub week: u64,
    /// Documents and deliveries per hour, oldest first, empty hours included.
    pub hours: Vec<HourCount>,
}

/// The incidents and the mail queue, read together (`GET /admin/alerts`, the console).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlertsView {
    pub open: Vec<Incident>,
    pub past: Vec<Incident>,
    pub mail_waiting: Vec<mail::QueuedMail>,
    pub mail_sent: u64,
}

/// Every packet of one business document with each recipient's delivery state (see
/// [`HubDb::document_history`]).
pub type DocumentHistory = Vec<(PacketId, PacketMeta, BTreeMap<String, Delivery>)>;

/// The hub database: one of the two backends (see the module documentation).
#[derive(Clone, Debug)]
pub struct HubDb {
    backend: Backend,
}

#[derive(Clone, Debug)]
enum Backend {
    Redb(RedbHub),
    Postgres(PgHub),
}

/// Runs the same call on whichever backend this is (both have the same methods).
macro_rules! on_backend {
    ($self:expr, $db:ident => $call:expr) => {
        match &$self.backend {
            Backend::Redb($db) => $call,
            Backend::Postgres($db) => $call,
        }
    };
}

impl HubDb {
    /// Opens or creates the embedded database file.
    pub fn open(path: &std::path::Path) -> Result<HubDb, StoreError> {
        Ok(HubDb {
            backend: Backend::Redb(RedbHub::open(path)?),
        })
    }

    /// Connects to PostgreSQL at `url` and brings its schema up to date (migrations under
    /// `hub/migrations`, applied once whatever the number of replicas starting at once).
    pub async fn connect(url: &str) -> Result<HubDb, HubDbError> {
        Ok(HubDb {
            backend: Backend::Postgres(PgHub::connect(url).await?),
        })
    }

    /// Uses an already connected PostgreSQL backend.
    pub fn from_postgres(pg: PgHub) -> HubDb {
        HubDb {
            backend: Backend::Postgres(pg),
        }
    }

    /// The embedded backend, if this is one (upgrade tests, `hub migrate`).
    pub fn as_redb(&self) -> Option<&RedbHub> {
        match &self.backend {
            Backend::Redb(r) => Some(r),
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL backend, if this is one (cross-replica wake-ups).
    pub fn as_postgres(&self) -> Option<&PgHub> {
        match &self.backend {
            Backend::Redb(_) => None,
            Backend::Postgres(p) => Some(p),
        }
    }

    /// `redb` or `postgresql`, for logs and the console.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Redb(_) => "redb",
            Backend::Postgres(_) => "postgresql",
        }
    }

    /// Commits and jobs so far (metrics).
    pub fn writer_stats(&self) -> WriterStats {
        on_backend!(self, db => db.writer_stats())
    }

    /// Calls `observer` with the number of jobs of every commit (metrics).
    pub fn observe_batches(&self, observer: store::BatchObserver) {
        on_backend!(self, db => db.observe_batches(observer))
    }

    /// The mail queue, for the sender ([`mail::Mailer`]).
    pub fn mail_queue(&self) -> Arc<dyn mail::queue::MailStore> {
        on_backend!(self, db => db.mail_queue())
    }

    // ---- agencies ----

    /// Registers an agency; refuses if the code exists.
    pub async fn add_agency(&self, agency: Agency) -> Result<(), HubDbError> {
        on_backend!(self, db => db.add_agency(agency).await)
    }

    /// Changes an agency with `f` (suspend, resume, add a fingerprint …).
    pub async fn update_agency(
        &self,
        code: &str,
        f: impl Fn(&mut Agency) + Send + 'static,
    ) -> Result<Agency, HubDbError> {
        on_backend!(self, db => db.update_agency(code, f).await)
    }

    /// All agencies, by code.
    pub async fn agencies(&self) -> Result<Vec<Agency>, HubDbError> {
        on_backend!(self, db => db.agencies().await)
    }

    /// One agency.
    pub async fn agency(&self, code: &str) -> Result<Option<Agency>, HubDbError> {
        on_backend!(self, db => db.agency(code).await)
    }

    // ---- submissions and deliveries ----

    /// Commits a verified packet with its receipt and one delivery row per accepted recipient.
    pub async fn submit(&self, packet: NewPacket) -> Result<Submitted, HubDbError> {
        on_backend!(self, db => db.submit(packet).await)
    }

    /// Packets waiting for `recipient`, most urgent first, then oldest first.
    pub async fn pending(
        &self,
        recipient: &str,
        limit: usize,
    ) -> Result<Vec<(PacketId, PacketMeta)>, HubDbError> {
        Ok(self
            .pending_inline(recipient, limit, InlineBudget::NONE)
            .await?
            .into_iter()
            .map(|p| (p.id, p.meta))
            .collect())
    }

    /// [`HubDb::pending`], with the bytes of the small packets within `budget` (their size
    /// as stored), read in the same snapshot.
    pub async fn pending_inline(
        &self,
        recipient: &str,
        limit: usize,
        budget: InlineBudget,
    ) -> Result<Vec<PendingPacket>, HubDbError> {
        on_backend!(self, db => db.pending(recipient, limit, budget).await)
    }

    /// Per recipient with anything pending: how many deliveries wait and when the oldest was
    /// queued.
    pub async fn pending_summary(&self) -> Result<Vec<PendingSummary>, HubDbError> {
        on_backend!(self, db => db.pending_summary().await)
    }

    /// A stored packet, exactly as received, with its meta (for operators).
    pub async fn packet(&self, id: PacketId) -> Result<Option<(Vec<u8>, PacketMeta)>, HubDbError> {
        on_backend!(self, db => db.packet(id).await)
    }

    /// The packet bytes, if a delivery row names `recipient` (pending or delivered).
    pub async fn fetch_for(
        &self,
        recipient: &str,
        id: PacketId,
    ) -> Result<Option<Vec<u8>>, HubDbError> {
        on_backend!(self, db => db.fetch_for(recipient, id).await)
    }

    /// The meta and delivery row of many packets, in the order asked; packets without a
    /// delivery row for `recipient` are left out.
    pub async fn metas_for(
        &self,
        recipient: &str,
        ids: Vec<PacketId>,
    ) -> Result<Vec<(PacketId, PacketMeta, Delivery)>, HubDbError> {
        on_backend!(self, db => db.metas_for(recipient, ids).await)
    }

    /// Records deliveries to `recipient` with their (already signed) receipts. Idempotent: a
    /// packet delivered before keeps and returns its first receipt. Ids without a delivery row
    /// for `recipient` are left out of the answer.
    pub async fn record_deliveries(
        &self,
        recipient: &str,
        acks: Vec<(PacketId, Timestamp, String)>,
    ) -> Result<Vec<(PacketId, String)>, HubDbError> {
        on_backend!(self, db => db.record_deliveries(recipient, acks).await)
    }

    /// Delivery receipts waiting for `sender` with a sequence number above `after`, in order:
    /// (seq, packet id, recipient, receipt). Sequence numbers of one sender are given in
    /// commit order, so a reader that moves past a number never misses a later commit.
    pub async fn receipts_for_sender(
        &self,
        sender: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, PacketId, String, String)>, HubDbError> {
        on_backend!(self, db => db.receipts_for_sender(sender, after, limit).await)
    }

    /// Forgets collected receipt rows of `sender` (the receipts stay with the deliveries).
    pub async fn ack_receipts(&self, sender: &str, seqs: Vec<u64>) -> Result<(), HubDbError> {
        on_backend!(self, db => db.ack_receipts(sender, seqs).await)
    }

    /// Every packet of one business document, read in one snapshot (see
    /// [`RedbHub::document_history`]).
    pub async fn document_history(
        &self,
        owner: &str,
        document_id: &str,
    ) -> Result<DocumentHistory, HubDbError> {
        on_backend!(self, db => db.document_history(owner, document_id).await)
    }

    // ---- the operators' ledger ----

    /// Documents since `day` and since `week`, and the `hours` hours up to `now`.
    pub async fn traffic(
        &self,
        day: Timestamp,
        week: Timestamp,
        now: Timestamp,
        hours: u64,
    ) -> Result<Traffic, HubDbError> {
        on_backend!(self, db => db.traffic(day, week, now, hours).await)
    }

    /// Deliveries matching `q`, newest document first, at most `limit` rows.
    pub async fn search(&self, q: Search, limit: usize) -> Result<Found, HubDbError> {
        on_backend!(self, db => db.search(q, limit).await)
    }

    /// Shares when agencies last polled this replica (Unix ms) and returns the latest poll of
    /// each agency at any replica. The embedded backend serves one process: it returns `polls`.
    pub async fn share_polls(
        &self,
        polls: Vec<(String, u64)>,
    ) -> Result<Vec<(String, u64)>, HubDbError> {
        match &self.backend {
            Backend::Redb(_) => Ok(polls),
            Backend::Postgres(db) => db.share_polls(polls).await,
        }
    }

    // ---- alerts ----

    /// The incidents open now.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>, HubDbError> {
        on_backend!(self, db => db.open_incidents().await)
    }

    /// Open incidents, the last `past` closed ones, and the mail queue (`mail` waiting at most).
    pub async fn alerts_view(&self, past: usize, mail: usize) -> Result<AlertsView, HubDbError> {
        on_backend!(self, db => db.alerts_view(past, mail).await)
    }

    /// (open incidents, mails waiting), for the metrics.
    pub async fn alert_counts(&self) -> Result<(u64, u64), HubDbError> {
        on_backend!(self, db => db.alert_counts().await)
    }

    /// Opens and closes incidents to match `conditions`, queueing their mail, in one
    /// transaction (see [`crate::alerts::plan`]).
    pub async fn apply_alerts(
        &self,
        conditions: Vec<Condition>,
        to: Vec<String>,
        console_url: Option<String>,
        now_ms: u64,
    ) -> Result<Changes, HubDbError> {
        on_backend!(self, db => db.apply_alerts(conditions, to, console_url, now_ms).await)
    }
}
