//! The inbox poller: long-polls the hub for packets addressed to this agency, fetches and
//! verifies each one (small packets come with the listing and are not fetched), commits it,
//! and only then acknowledges it.
//!
//! For a document, the signed status 01 answering it is composed and signed first, then
//! committed in the same transaction as the inbox entry, and the outbox worker is woken. For a
//! status packet, its effect on the tracking of the document it answers is committed with it.
//! The acknowledgements of one poll are sent in one `POST /v1/acks`; the delivery receipts the
//! hub answers with are verified against the pinned hub certificate and stored with the inbox
//! entries.
//!
//! Invariants:
//! - Nothing is acknowledged before it is durably in the inbox.
//! - A packet that fails verification is never acknowledged: it is recorded as an anomaly (log
//!   and table) and set aside for a growing while (it stays in the hub's queue, so an operator
//!   can act on it), so the poller neither spins on it nor stops serving the others.
//! - A packet already in the inbox is acknowledged again, never stored twice.
//! - An unreachable hub is retried with backoff, never in a tight loop.
//! - [`InboxWatchers`] are told of a packet only after its transaction committed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use dsig::batch::{HeadCache, verify_receipt};
use dsig::receipt::{HubReceipt, ReceiptKind};
use edxml::{Packet, StatusPacket};
use exchange::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::{AckedPacket, PendingItem};

use super::Shared;
use super::backoff::Backoff;
use super::db::{
    InboxEntry, InboxState, IncomingDocument, IncomingStatus, PacketKind, Received, StatusEvent,
};
use super::hub_api::HubCallError;
use super::incoming::{Verified, verify_incoming};
use super::outgoing;
use exchange::clock;

/// Most packets asked for in one poll.
const POLL_LIMIT: usize = 200;
/// Most packets fetched and verified at once (their commits are shared, so more in flight
/// means fewer fsyncs per packet) ...
const CONCURRENCY: usize = 64;
/// ... as long as their listed sizes add up to at most this; a larger packet is handled alone.
const BYTES_IN_FLIGHT: u64 = 128 * 1024 * 1024;

/// Packets set aside after a failure, and until when.
#[derive(Debug, Default)]
pub struct SetAside {
    until: HashMap<String, (Instant, u32)>,
}

impl SetAside {
    /// Is `key` still set aside at `now`?
    pub fn holds(&self, key: &str, now: Instant) -> bool {
        self.until.get(key).is_some_and(|(t, _)| *t > now)
    }

    /// Sets `key` aside for the ceiling of its next backoff step; returns the delay.
    pub fn put(&mut self, key: &str, backoff: &Backoff, now: Instant) -> Duration {
        let count = self.until.get(key).map(|(_, n)| n + 1).unwrap_or(1);
        let delay = Duration::from_millis(backoff.ceiling_ms(count));
        self.until.insert(key.to_string(), (now + delay, count));
        delay
    }

    /// Forgets `key` (it went through).
    pub fn clear(&mut self, key: &str) {
        self.until.remove(key);
    }
}

/// A packet the inbox has just committed durably, and when (right after the commit returned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub id: PacketId,
    /// `true` for a document, `false` for a status packet.
    pub document: bool,
    pub at: Instant,
}

/// Listeners told of every packet the inbox commits (`docaxis bench` times deliveries with
/// it). Unbounded, so a slow listener never loses an event nor slows the inbox; listeners that
/// went away are dropped.
#[derive(Debug, Default)]
pub struct InboxWatchers {
    senders: Mutex<Vec<tokio::sync::mpsc::UnboundedSender<Committed>>>,
}

impl InboxWatchers {
    /// A new listener: it receives every packet committed from now on.
    pub fn subscribe(&self) -> tokio::sync::mpsc::UnboundedReceiver<Committed> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.senders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(tx);
        rx
    }

    fn committed(&self, id: PacketId, document: bool) {
        let event = Committed {
            id,
            document,
            at: Instant::now(),
        };
        let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
        if !senders.is_empty() {
            senders.retain(|tx| tx.send(event).is_ok());
        }
    }
}

/// What became of one listed packet.
enum Outcome {
    /// In the inbox (now or before): acknowledge it.
    Ack(String),
    /// Not acknowledged; set aside for a while.
    Refused(String),
    /// Not acknowledged; try again at the next poll (a local or transport problem).
    Later,
}

/// The inbox's side of the poll loop ([`super::poller`]).
#[derive(Default)]
struct InboxPuller {
    aside: SetAside,
}

impl super::poller::Puller for InboxPuller {
    type Item = PendingItem;
    const NAME: &'static str = "inbox";

    async fn poll(&mut self, node: &Shared) -> Result<Vec<PendingItem>, HubCallError> {
        let list = node
            .hub
            .pending(node.config.poll_wait_secs, POLL_LIMIT)
            .await?;
        Ok(list.items)
    }

    async fn handle(&mut self, node: &Shared, items: Vec<PendingItem>) -> usize {
        handle_items(node, items, &mut self.aside).await
    }
}

/// Runs until `shutdown` turns true.
pub async fn run(node: Shared, shutdown: watch::Receiver<bool>) {
    super::poller::run(node, InboxPuller::default(), shutdown).await;
}

/// Handles one poll's items; returns how many were acknowledged.
async fn handle_items(node: &Shared, items: Vec<PendingItem>, aside: &mut SetAside) -> usize {
    let now = Instant::now();
    let mut tasks: JoinSet<(String, u64, Outcome)> = JoinSet::new();
    let mut bytes = 0u64;
    let mut to_ack = Vec::new();
    for item in items {
        if aside.holds(&item.packet_id, now) {
            continue;
        }
        while tasks.len() >= CONCURRENCY
            || (!tasks.is_empty() && bytes.saturating_add(item.size) > BYTES_IN_FLIGHT)
        {
            if let Some(done) = tasks.join_next().await {
                bytes = bytes.saturating_sub(collect(node, done, aside, &mut to_ack).await);
            }
        }
        bytes = bytes.saturating_add(item.size);
        let n = node.clone();
        tasks.spawn(async move {
            let key = item.packet_id.clone();
            let size = item.size;
            (key, size, handle_item(&n, item).await)
        });
    }
    while let Some(done) = tasks.join_next().await {
        collect(node, done, aside, &mut to_ack).await;
    }
    if to_ack.is_empty() {
        return 0;
    }
    let count = to_ack.len();
    acknowledge(node, to_ack).await;
    count
}

/// Takes in one finished packet task; returns the listed size it held (0 if the task died:
/// its share then stays counted until this poll's handling ends, which errs on the safe side).
async fn collect(
    node: &Shared,
    done: Result<(String, u64, Outcome), tokio::task::JoinError>,
    aside: &mut SetAside,
    to_ack: &mut Vec<String>,
) -> u64 {
    match done {
        Ok((key, size, Outcome::Ack(id))) => {
            aside.clear(&key);
            to_ack.push(id);
            size
        }
        Ok((key, size, Outcome::Refused(reason))) => {
            let delay = aside.put(&key, &node.backoff, Instant::now());
            tracing::error!(packet = %key, %reason, set_aside_for = ?delay,
                "inbox: packet refused and NOT acknowledged (see anomalies)");
            size
        }
        Ok((_, size, Outcome::Later)) => size,
        Err(e) => {
            tracing::error!(error = %e, "inbox: a packet task failed");
            0
        }
    }
}

async fn handle_item(node: &Shared, mut item: PendingItem) -> Outcome {
    let inline = item.packet.take();
    let key = item.packet_id.clone();
    let anomaly = |reason: String| {
        let from = item.from.clone();
        let key = key.clone();
        async move {
            if let Err(e) = node
                .db
                .record_anomaly("inbox", &key, Some(from.as_str()), &reason)
                .await
            {
                tracing::error!(packet = %key, error = %e, "inbox: cannot record an anomaly");
            }
            Outcome::Refused(reason)
        }
    };
    let id: PacketId = match key.parse() {
        Ok(id) => id,
        Err(e) => return anomaly(format!("the hub listed an invalid packet id: {e}")).await,
    };
    match node.db.has_inbox(id).await {
        Ok(true) => {
            // Stored before (e.g. a crash between our commit and our acknowledgement): the
            // hub offers it again; acknowledge without storing it twice.
            tracing::info!(packet = %id, "inbox: already stored; acknowledging again");
            return Outcome::Ack(key);
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(packet = %id, error = %e, "inbox: cannot read the database");
            return Outcome::Later;
        }
    }
    // A small packet came with the listing; it is checked exactly as a fetched one (its
    // SHA-256 against the listed id first).
    let fetched = match inline {
        Some(text) => Ok(Some(text.into_bytes())),
        None => node.hub.fetch(&key).await,
    };
    let bytes = match fetched {
        Ok(Some(b)) => b,
        Ok(None) => {
            tracing::warn!(packet = %id, "inbox: listed by the hub but not found when fetched");
            return Outcome::Later;
        }
        Err(e) => {
            tracing::warn!(packet = %id, error = %e, "inbox: cannot fetch the packet");
            return Outcome::Later;
        }
    };
    let trust = node.trust.current();
    let me = node.config.agency.clone();
    // The bytes go to the check and come back with its verdict: a big packet is not copied.
    let checked = tokio::task::spawn_blocking(move || {
        let verdict = verify_incoming(&bytes, &id, &trust, &me);
        (bytes, verdict)
    })
    .await;
    let (bytes, mut verified) = match checked {
        Ok((bytes, Ok(v))) => (bytes, v),
        Ok((_, Err(e))) => return anomaly(e.to_string()).await,
        Err(e) => {
            tracing::error!(packet = %id, error = %e, "inbox: verification task failed");
            return Outcome::Later;
        }
    };
    // The inbox entry and the answer need the header; the attachments stay in the stored bytes.
    verified.packet.drop_attachment_text();
    let stored = match &verified.packet {
        Packet::Document(_) => store_document(node, id, bytes, verified).await,
        Packet::Status(_) => store_status(node, id, bytes, verified).await,
    };
    match stored {
        Ok(()) => Outcome::Ack(key),
        Err(e) => {
            tracing::error!(packet = %id, error = %e, "inbox: cannot store the packet");
            Outcome::Later
        }
    }
}

fn base_entry(verified: &Verified, kind: PacketKind) -> InboxEntry {
    let from = verified.packet.from();
    let now = clock::now_ms();
    InboxEntry {
        kind,
        from: from.organ_id.to_string(),
        from_name: from.organ_name.clone(),
        document_id: verified.packet.document_id().to_string(),
        subject: None,
        code: None,
        priority: 0,
        status_code: None,
        received_at: Timestamp::from_unix_ms(now),
        state: InboxState::New,
        signer_subject: verified.signer.signer_subject.clone(),
        signer_agency: verified.signer.agency_code.clone(),
        answered_with: None,
        delivered_at: None,
        delivery_receipt: None,
        submission_receipt: None,
        statuses: Vec::new(),
        action: None,
        mark: None,
        agreed_mark: None,
    }
}

async fn store_document(
    node: &Shared,
    id: PacketId,
    bytes: Vec<u8>,
    verified: Verified,
) -> Result<(), String> {
    let Packet::Document(doc) = &verified.packet else {
        return Err("not a document".into());
    };
    let mut entry = base_entry(&verified, PacketKind::Document);
    entry.subject = Some(doc.subject.clone());
    entry.code = Some(format!(
        "{}/{}",
        doc.code.code_number, doc.code.code_notation
    ));
    entry.priority = doc.priority().code();
    entry.action = exchange::action_of(doc);
    let status = Packet::Status(exchange::status::status_received(doc, &node.me));
    let identity = node.identity.clone();
    let signed = tokio::task::spawn_blocking(move || {
        outgoing::sign(&status, &identity).map(|bytes| (status, bytes))
    })
    .await
    .map_err(|e| format!("signing task failed: {e}"))?
    .map_err(|e| format!("cannot sign status 01: {e}"))?;
    let (status, status_bytes) = signed;
    let answer = outgoing::outgoing(&status, status_bytes, clock::now_ms());
    let answer_id = answer.id;
    if let Packet::Status(s) = &status {
        entry.statuses.push(StatusEvent {
            code: s.status_code.as_str().to_string(),
            time: Timestamp::from_offset(s.timestamp.to_offset_date_time()),
            staff: None,
            description: None,
            packet_id: answer_id.to_hex(),
            received_at: entry.received_at,
            by_us: true,
        });
    }
    let document_id = entry.document_id.clone();
    let from = entry.from.clone();
    let received = node
        .db
        .receive_document(IncomingDocument {
            id,
            bytes,
            entry,
            answer,
        })
        .await
        .map_err(|e| e.to_string())?;
    if received != Received::AlreadyThere {
        node.inbox_watchers.committed(id, true);
        tracing::info!(packet = %id, from = %from, document = %document_id, status_01 = %answer_id,
            "inbox: document received; status 01 queued");
        node.outbox_wake.notify_one();
    }
    Ok(())
}

async fn store_status(
    node: &Shared,
    id: PacketId,
    bytes: Vec<u8>,
    verified: Verified,
) -> Result<(), String> {
    let Packet::Status(status) = &verified.packet else {
        return Err("not a status".into());
    };
    let inc = incoming_status(status, base_entry(&verified, PacketKind::Status), id, bytes);
    let from = inc.entry.from.clone();
    let document_id = inc.entry.document_id.clone();
    let code = inc.event.code.clone();
    let received = node
        .db
        .receive_status(inc)
        .await
        .map_err(|e| e.to_string())?;
    if received != Received::AlreadyThere {
        node.inbox_watchers.committed(id, false);
    }
    match received {
        Received::New { matched: true } => tracing::info!(packet = %id, from = %from,
            document = %document_id, status = %code, "inbox: status received"),
        Received::New { matched: false } => tracing::error!(packet = %id, from = %from,
            document = %document_id, status = %code,
            "inbox: status matches no document sent to its sender (stored, see anomalies)"),
        Received::AlreadyThere => {}
    }
    Ok(())
}

/// The record of a received status packet (verified, or a legacy packet read for tests and
/// imports): its inbox entry completed from `entry` (sender, signer, times) and the
/// lifecycle event it carries. The one place a status packet's fields become an event.
pub fn incoming_status(
    status: &StatusPacket,
    mut entry: InboxEntry,
    id: PacketId,
    bytes: Vec<u8>,
) -> IncomingStatus {
    entry.code = status.response_for.code.clone();
    entry.status_code = Some(status.status_code);
    entry.state = InboxState::Applied;
    let event = StatusEvent {
        code: status.status_code.as_str().to_string(),
        time: Timestamp::from_offset(status.timestamp.to_offset_date_time()),
        staff: status.staff_info.as_ref().and_then(exchange::staff_summary),
        description: status.description.clone(),
        packet_id: id.to_hex(),
        received_at: entry.received_at,
        by_us: false,
    };
    IncomingStatus {
        id,
        bytes,
        entry,
        event,
    }
}

/// Acknowledges stored packets and keeps the verified delivery receipts.
async fn acknowledge(node: &Shared, ids: Vec<String>) {
    let asked = ids.len();
    let answer = match node.hub.ack(ids.clone()).await {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, packets = asked,
                "inbox: acknowledgement failed; the packets are stored and will be acknowledged again");
            return;
        }
    };
    // Verify the receipts in one blocking task: the hub signs an acknowledgement's receipts as
    // one batch, so the first check verifies the batch's signature and the rest are hashes.
    let acked = answer.acked;
    let hub = node.hub_cert_der.clone();
    let heads = std::sync::Arc::clone(&node.receipt_heads);
    let me = node.config.agency.clone();
    let checks = tokio::task::spawn_blocking(move || {
        acked
            .into_iter()
            .map(|a| {
                // One bad receipt must not take the others down with it.
                let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check_delivery_receipt(&hub, &heads, &me, &a)
                }))
                .unwrap_or_else(|_| Err("checking it failed unexpectedly (a bug)".into()));
                (a, checked)
            })
            .collect::<Vec<CheckedReceipt>>()
    });
    let checked_all = checks.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "inbox: the receipt check failed");
        Vec::new()
    });
    let mut good = Vec::new();
    for (acked, checked) in checked_all {
        match checked {
            Ok((at, xml, submission)) => {
                if let Ok(id) = acked.packet_id.parse::<PacketId>() {
                    good.push((id, at, xml, submission));
                }
            }
            Err(problem) => {
                let subject = format!("delivery receipt for {}", acked.packet_id);
                tracing::error!(packet = %acked.packet_id, %problem,
                    "inbox: the hub's delivery receipt is refused");
                if let Err(e) = node
                    .db
                    .record_anomaly("inbox", &subject, None, &problem)
                    .await
                {
                    tracing::error!(error = %e, "inbox: cannot record an anomaly");
                }
            }
        }
    }
    let stored = good.len();
    if let Err(e) = node.db.store_acks(good).await {
        tracing::error!(error = %e, "inbox: cannot store delivery receipts");
    }
    tracing::info!(
        acknowledged = asked,
        receipts = stored,
        "inbox: acknowledged"
    );
}

/// A delivery receipt and what its check found: the hub time and the receipt, or the problem.
type CheckedReceipt = (
    AckedPacket,
    Result<(Timestamp, String, Option<String>), String>,
);

/// Verifies a delivery receipt against the pinned hub certificate `hub`, then checks it is
/// about this packet and delivered to `me`; returns it with the hub time, and the packet's
/// submission receipt when the hub sent one that names this packet (one that does not is
/// logged and left out: the delivery stands on its own receipt). Blocking.
fn check_delivery_receipt(
    hub: &[u8],
    heads: &HeadCache,
    me: &str,
    acked: &AckedPacket,
) -> Result<(Timestamp, String, Option<String>), String> {
    let xml = acked.receipt.as_bytes();
    let r = verify_receipt(xml, hub, heads).map_err(|e| format!("its signature: {e}"))?;
    if r.kind != ReceiptKind::Delivery {
        return Err("it is not a delivery receipt".into());
    }
    if r.packet_id != acked.packet_id {
        return Err(format!(
            "it names packet {}, not {}",
            r.packet_id, acked.packet_id
        ));
    }
    if r.delivered_to.as_deref() != Some(me) {
        return Err(format!("it names recipient {:?}, not {me}", r.delivered_to));
    }
    let submission =
        acked.submission_receipt.as_ref().and_then(|xml| {
            match check_submission_receipt(&acked.packet_id, xml.as_bytes()) {
                Ok(()) => Some(xml.clone()),
                Err(problem) => {
                    tracing::warn!(packet = %acked.packet_id, %problem,
                    "inbox: the hub's submission receipt is left out");
                    None
                }
            }
        });
    Ok((
        Timestamp::from_offset(r.hub_time),
        acked.receipt.clone(),
        submission,
    ))
}

/// A submission receipt handed to the recipient: a submission receipt about `packet_id`.
/// It is kept as evidence only (this node acts on nothing it says), so its signature is not
/// verified here, which would cost a second XML-DSig verification per packet: it came over
/// the hub's mutual-TLS connection with the delivery receipt that was verified, and
/// `docaxis archive verify` checks it against the CA with everything else.
fn check_submission_receipt(packet_id: &str, xml: &[u8]) -> Result<(), String> {
    let r = HubReceipt::parse(xml).map_err(|e| e.to_string())?;
    if r.kind != ReceiptKind::Submission {
        return Err("it is not a submission receipt".into());
    }
    if r.packet_id != packet_id {
        return Err(format!("it names packet {}, not {packet_id}", r.packet_id));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::RetryConfig;
    use crate::db::IncomingDocument;
    use edxml::StaffInfo;
    use exchange::staff_summary;

    #[test]
    fn refused_packets_are_set_aside_for_growing_whiles() {
        let backoff = Backoff::new(&RetryConfig {
            initial_ms: 1_000,
            max_ms: 4_000,
            give_up_after_secs: 1,
        });
        let mut aside = SetAside::default();
        let t0 = Instant::now();
        assert!(!aside.holds("p", t0));
        assert_eq!(aside.put("p", &backoff, t0), Duration::from_secs(1));
        assert!(aside.holds("p", t0));
        assert!(!aside.holds("q", t0));
        assert!(!aside.holds("p", t0 + Duration::from_secs(1)));
        assert_eq!(aside.put("p", &backoff, t0), Duration::from_secs(2));
        assert_eq!(aside.put("p", &backoff, t0), Duration::from_secs(4));
        assert_eq!(aside.put("p", &backoff, t0), Duration::from_secs(4));
        aside.clear("p");
        assert!(!aside.holds("p", t0));
        assert_eq!(aside.put("p", &backoff, t0), Duration::from_secs(1));
    }

    #[test]
    fn staff_summaries() {
        let s = StaffInfo {
            department: Some("Văn thư".into()),
            staff: Some("Trần Thị B".into()),
            email: None,
            mobile: None,
        };
        assert_eq!(staff_summary(&s).as_deref(), Some("Trần Thị B, Văn thư"));
        assert_eq!(staff_summary(&StaffInfo::default()), None);
    }

    fn conformance(name: &str) -> (Vec<u8>, StatusPacket) {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/conformance"
        ))
        .join(name);
        let bytes = std::fs::read(&path).unwrap();
        let outcome = edxml::read(&bytes, &edxml::ReadOptions::default()).unwrap();
        let Packet::Status(s) = outcome.packet else {
            panic!("{name} is not a status packet")
        };
        (bytes, s)
    }

    /// What the inbox poller records for a packet, here for an unsigned legacy one.
    fn entry_for(status: &StatusPacket, kind: PacketKind) -> InboxEntry {
        let now = clock::now_ms();
        InboxEntry {
            kind,
            from: status.from.organ_id.to_string(),
            from_name: status.from.organ_name.clone(),
            document_id: status.response_for.document_id.to_string(),
            subject: None,
            code: None,
            priority: 0,
            status_code: None,
            received_at: Timestamp::from_unix_ms(now),
            state: InboxState::New,
            signer_subject: "unsigned (legacy)".into(),
            signer_agency: None,
            answered_with: None,
            delivered_at: None,
            delivery_receipt: None,
            submission_receipt: None,
            statuses: Vec::new(),
            action: None,
            mark: None,
            agreed_mark: None,
        }
    }

    #[tokio::test]
    async fn conformance_status_packets_go_through_the_same_application_path() {
        use crate::db::{NodeDb, OutboxEntry, Outgoing, replay_statuses};
        let dir = tempfile::tempdir().unwrap();
        // G22 sent document 7816 to H41; the field packets 01 and 03 come back from H41.
        let g22 = NodeDb::open(&dir.path().join("g22.redb")).unwrap();
        let (_, s01) = conformance("status_01_received.edxml");
        let doc_id = s01.response_for.document_id.to_string();
        let mut sent = OutboxEntry::queued(
            PacketKind::Document,
            doc_id.clone(),
            vec!["000.00.00.H41".into()],
            0,
            1,
        );
        sent.subject = Some("7816".into());
        g22.commit_outgoing(Outgoing {
            id: PacketId::of(b"doc7816"),
            bytes: b"doc7816".to_vec(),
            entry: sent,
        })
        .await
        .unwrap();
        // Arrival order 03 then 01 (same second in the field packets).
        for name in ["status_03_accepted.edxml", "status_01_received.edxml"] {
            let (bytes, s) = conformance(name);
            let id = PacketId::of(&bytes);
            let inc = incoming_status(&s, entry_for(&s, PacketKind::Status), id, bytes);
            assert_eq!(
                g22.receive_status(inc).await.unwrap(),
                Received::New { matched: true },
                "{name}"
            );
        }
        let tracked = g22.track(doc_id.clone()).await.unwrap().unwrap();
        let row = &tracked.recipients[0].1;
        let codes: Vec<&str> = row.statuses.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["03", "01"]);
        let replay = replay_statuses(&row.statuses);
        assert_eq!(replay.lifecycle.state_name(), "accepted");
        assert_eq!(replay.anomalies().count(), 0);
        assert!(g22.anomalies(10).await.unwrap().is_empty());

        // H41 received that document from G22; the field 13 asks for it back.
        let h41 = NodeDb::open(&dir.path().join("h41.redb")).unwrap();
        let (bytes13, s13) = conformance("status_13_takeback.edxml");
        let mut doc = entry_for(&s13, PacketKind::Document);
        doc.statuses.push(StatusEvent {
            code: "01".into(),
            time: "2015-09-20T04:00:00Z".parse().unwrap(),
            staff: None,
            description: None,
            packet_id: "a".into(),
            received_at: doc.received_at,
            by_us: true,
        });
        let mut answer = OutboxEntry::queued(
            PacketKind::Status,
            doc_id.clone(),
            vec!["000.00.00.G22".into()],
            0,
            1,
        );
        answer.status_code = Some(edxml::StatusCode::Received);
        let doc_packet = PacketId::of(b"doc7816 at H41");
        h41.receive_document(IncomingDocument {
            id: doc_packet,
            bytes: b"doc7816 at H41".to_vec(),
            entry: doc,
            answer: Outgoing {
                id: PacketId::of(b"a"),
                bytes: b"a".to_vec(),
                entry: answer,
            },
        })
        .await
        .unwrap();
        let id13 = PacketId::of(&bytes13);
        let inc = incoming_status(&s13, entry_for(&s13, PacketKind::Status), id13, bytes13);
        assert_eq!(
            inc.event.staff.as_deref(),
            Some("Nguyen thi ngoc tram, Phong hanh chinh")
        );
        assert_eq!(
            h41.receive_status(inc).await.unwrap(),
            Received::New { matched: true }
        );
        let (e, _) = h41.inbox_entry(doc_packet).await.unwrap().unwrap();
        assert_eq!(e.business_state(), ("new".to_string(), true));
        assert_eq!(
            e.statuses[1].description.as_deref(),
            Some("Văn thư yêu cầu lấy lại văn bản điện tử kèm lý do")
        );
    }
}
