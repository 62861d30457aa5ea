//! The hub's record of one business document, as an operator sees it (`docaxis hub track`):
//! every packet the hub accepted for it and, per recipient, the hub's own events (accepted,
//! delivered, refused), the business statuses exchanged with the issuer (times, staff,
//! reasons), the resulting business state, and the actions (revoke, update, replace) sent to
//! that recipient with their answers (15/16).
//!
//! Invariants:
//! - The business state and the anomalies come from the nodes' lifecycle rules
//!   ([`exchange::lifecycle::replay`]), never from rules of its own: statuses are replayed
//!   by their own timestamps (ties: code order), as the sender's node replays them.
//! - Only what passed through the hub is shown, from the rows `hub::db` keeps (nothing here
//!   reads packet bytes, clocks or storage): [`build`] is a pure function of
//!   [`crate::db::HubDb::document_history`].
//! - A status from the wrong side (13 from a recipient, 01–06/15/16 from the issuer) is shown
//!   with an anomaly and left out of the replay.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::db::{Delivery, PacketMeta};
use edxml::{BussinessDocType, StatusCode};
use exchange::clock::Timestamp;
use exchange::lifecycle::{
    ActionKind, Decision, Lifecycle, TakeBackState, replay_from, sent_by_original_sender,
};
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;

/// Answer of `GET /admin/track?owner=&document_id=` and of `docaxis hub track --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentTrack {
    /// The agency that issued the document (its `From/OrganId`).
    pub owner: String,
    pub document_id: String,
    /// The document packet itself, when the hub has it.
    pub document: Option<TrackedDocument>,
    /// One entry per agency involved: the document's recipients first (in the packet's
    /// order, refused ones included), then agencies reached only by an action or that sent
    /// statuses about the document.
    pub recipients: Vec<RecipientTrack>,
    /// Every packet of the document (actions and the statuses about them included), in the
    /// order the hub accepted them.
    pub packets: Vec<TrackedPacket>,
}

/// The document packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedDocument {
    pub packet_id: String,
    /// Hub time of acceptance (RFC 3339).
    pub accepted_at: Timestamp,
    /// BussinessDocType (0 for a new document).
    pub business_doc_type: u8,
}

/// Everything the hub saw between the issuer and one agency about the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientTrack {
    /// The agency's code.
    pub recipient: String,
    /// The document packet for this agency: `delivered`, `pending` (not yet fetched and
    /// acknowledged), `refused` (the hub did not route it), or `not_addressed` (the document
    /// was not addressed to it: it appears through an action or a status).
    pub delivery: String,
    /// Hub time at which the hub accepted the document for this agency (RFC 3339).
    pub accepted_at: Option<Timestamp>,
    /// Hub time at which the agency stored and acknowledged the document.
    pub delivered_at: Option<Timestamp>,
    /// Why the hub refused to route the document to this agency.
    pub refused: Option<String>,
    /// The business state after replaying the statuses through the lifecycle rules:
    /// `nothing` (no status yet), `new` (01), `rejected`, `accepted`, `assigned`,
    /// `processing`, `completed`, or `taken_back` (13 agreed with 15); once the agency agreed
    /// to a revoke/update/replace, `revoked`, `updated`, `replaced` or `removed` (as the nodes
    /// mark it); for a request tracked by its own id, `agreed` or `refused` until processed.
    pub state: String,
    /// Code of the furthest valid progression status (`01`–`06`), if any.
    pub stage: Option<String>,
    /// The take-back request: `none`, `requested`, `agreed` or `refused`.
    pub take_back: String,
    /// The business statuses about the document between the issuer and this agency, in
    /// timeline order (their own timestamps; ties in code order).
    pub statuses: Vec<TrackedStatus>,
    /// What does not fit, one sentence each: statuses the lifecycle rules refuse, statuses
    /// from the wrong side, statuses from an agency the document never went to.
    pub anomalies: Vec<String>,
    /// Revoke, update and replace packets about the document sent to this agency, in the
    /// order the hub accepted them, with the statuses answering them.
    pub actions: Vec<TrackedAction>,
}

/// One status packet as the hub saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedStatus {
    /// Two digits (`01` …).
    pub code: String,
    /// Vietnamese label (`đã tiếp nhận`).
    pub label: String,
    /// English label (`accepted`).
    pub label_en: String,
    /// Who sent it: the agency, or the issuer for a take-back request (13).
    pub from: String,
    /// The status packet's own `Timestamp` (RFC 3339, UTC); for a row recorded before the
    /// hub kept it and whose bytes could not be read again, the hub's acceptance time.
    pub time: Timestamp,
    /// Hub time at which the hub accepted the status packet.
    pub hub_accepted_at: Timestamp,
    /// `StaffInfo` summarised (`staff, department`).
    pub staff: Option<String>,
    /// `Description`: the reason of a 02, 13 or 16.
    pub reason: Option<String>,
    pub packet_id: String,
    /// Hub time at which its addressee (the issuer; for 13 the recipient) stored and
    /// acknowledged it; `None` while it waits at the hub.
    pub delivered_at: Option<Timestamp>,
    /// Why the lifecycle rules do not accept it here (shown, not applied).
    #[serde(default)]
    pub anomaly: Option<String>,
    /// The rules found it already applied: it changes nothing.
    #[serde(default)]
    pub repeat: bool,
}

/// A revoke, update or replace packet sent to one agency, and its answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedAction {
    pub packet_id: String,
    /// The action's own DocumentId (statuses answering it name this one).
    pub document_id: String,
    /// BussinessDocType: 1 revoke, 2 update, 3 replace.
    pub business_doc_type: u8,
    /// `revoke`, `update` or `replace`.
    pub action: String,
    /// Hub time of acceptance.
    pub accepted_at: Timestamp,
    /// `Bussiness/StaffInfo` summarised.
    pub staff: Option<String>,
    /// `BussinessDocReason`.
    pub reason: Option<String>,
    /// As [`RecipientTrack::delivery`], for this agency.
    pub delivery: String,
    pub delivered_at: Option<Timestamp>,
    pub refused: Option<String>,
    /// Statuses about the action between the issuer and this agency, in timeline order.
    pub statuses: Vec<TrackedStatus>,
    /// The agency's answer: the latest 15 (agreed) or 16 (refused), if any.
    pub answer: Option<String>,
}

/// One packet of a document's history, as the hub saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedPacket {
    pub packet_id: String,
    pub kind: PacketKind,
    pub from: String,
    /// Its DocumentId (a status: the DocumentId it answers).
    #[serde(default)]
    pub document_id: String,
    /// Documents: BussinessDocType.
    #[serde(default)]
    pub business_doc_type: Option<u8>,
    pub status_code: Option<edxml::StatusCode>,
    pub accepted_at: Timestamp,
    pub recipients: Vec<TrackedDelivery>,
    pub refused: Vec<(String, String)>,
}

/// Delivery of one packet to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackedDelivery {
    pub recipient: String,
    pub queued_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// A packet of the history: (id, meta, delivery per recipient).
pub type HistoryRow = (PacketId, PacketMeta, BTreeMap<String, Delivery>);

/// Unix nanoseconds of a time, for ordering.
fn nanos(t: &Timestamp) -> i128 {
    t.unix_nanos()
}

/// The delivery of `row`'s packet to `agency`: (state, delivered at, refusal).
fn delivery_of(row: &HistoryRow, agency: &str) -> (String, Option<Timestamp>, Option<String>) {
    let (_, meta, deliveries) = row;
    if meta.recipients.iter().any(|r| r == agency) {
        match deliveries.get(agency).and_then(|d| d.delivered_at) {
            Some(at) => ("delivered".into(), Some(at), None),
            None => ("pending".into(), None, None),
        }
    } else if let Some((_, reason)) = meta.refused.iter().find(|(c, _)| c == agency) {
        ("refused".into(), None, Some(reason.clone()))
    } else {
        ("not_addressed".into(), None, None)
    }
}

/// Whether `row`'s packet was addressed to `agency` (routed or refused).
fn addressed_to(row: &HistoryRow, agency: &str) -> bool {
    row.1.recipients.iter().any(|r| r == agency) || row.1.refused.iter().any(|(c, _)| c == agency)
}

/// The agency on the other side of a status packet from the issuer `owner`.
fn counterpart(meta: &PacketMeta, owner: &str) -> String {
    if meta.from == owner {
        meta.recipients.first().cloned().unwrap_or_default()
    } else {
        meta.from.clone()
    }
}

/// A status row as shown, before the rules' verdict; with its sort key.
fn status_view(row: &HistoryRow) -> (TrackedStatus, (i128, String)) {
    let (id, meta, deliveries) = row;
    let code = meta
        .status_code
        .map(|c| c.as_str().to_string())
        .unwrap_or_default();
    let (label, label_en) = match meta.status_code {
        Some(c) => (c.label_vi().to_string(), c.label_en().to_string()),
        None => ("không rõ".to_string(), "unknown code".to_string()),
    };
    let time = meta.status_time.unwrap_or(meta.accepted_at);
    let key = (nanos(&time), code.clone());
    let delivered_at = meta
        .recipients
        .first()
        .and_then(|r| deliveries.get(r))
        .and_then(|d| d.delivered_at);
    (
        TrackedStatus {
            code,
            label,
            label_en,
            from: meta.from.clone(),
            time,
            hub_accepted_at: meta.accepted_at,
            staff: meta.staff.clone(),
            reason: meta.reason.clone(),
            packet_id: id.to_hex(),
            delivered_at,
            anomaly: None,
            repeat: false,
        },
        key,
    )
}

/// The statuses of `rows` in timeline order (own timestamps, ties in code order, then the
/// order the hub accepted them).
fn timeline(rows: &[&HistoryRow]) -> Vec<TrackedStatus> {
    let mut views: Vec<(TrackedStatus, (i128, String))> =
        rows.iter().map(|r| status_view(r)).collect();
    views.sort_by(|a, b| a.1.cmp(&b.1));
    views.into_iter().map(|(v, _)| v).collect()
}

/// Builds the record of document `document_id` issued by `owner` from its history.
pub fn build(owner: &str, document_id: &str, mut history: Vec<HistoryRow>) -> DocumentTrack {
    history.sort_by(|a, b| {
        nanos(&a.1.accepted_at)
            .cmp(&nanos(&b.1.accepted_at))
            .then(a.0.cmp(&b.0))
    });
    let is_document = |m: &PacketMeta| m.kind == PacketKind::Document && m.from == owner;
    let primary = history
        .iter()
        .filter(|(_, m, _)| is_document(m) && m.document_id == document_id)
        .min_by_key(|(_, m, _)| m.business_doc_type.unwrap_or(0));
    let primary_id = primary.map(|(id, _, _)| *id);
    let actions: Vec<&HistoryRow> = history
        .iter()
        .filter(|(id, m, _)| {
            is_document(m)
                && Some(*id) != primary_id
                && matches!(m.business_doc_type, Some(1..=3))
                && (m.action_target() == Some(document_id) || m.document_id == document_id)
        })
        .collect();
    let statuses: Vec<&HistoryRow> = history
        .iter()
        .filter(|(_, m, _)| m.kind == PacketKind::Status && m.document_id == document_id)
        .collect();

    // Agencies: the document's recipients first, then whoever else appears.
    let mut agencies: Vec<String> = Vec::new();
    let mut add = |code: &str| {
        if !code.is_empty() && code != owner && !agencies.iter().any(|a| a == code) {
            agencies.push(code.to_string());
        }
    };
    for row in primary.into_iter().chain(actions.iter().copied()) {
        for r in &row.1.recipients {
            add(r);
        }
        for (r, _) in &row.1.refused {
            add(r);
        }
    }
    for row in &statuses {
        add(&counterpart(&row.1, owner));
    }

    let recipients = agencies
        .iter()
        .map(|agency| recipient_track(owner, agency, primary, &actions, &statuses, &history))
        .collect();
    DocumentTrack {
        owner: owner.to_string(),
        document_id: document_id.to_string(),
        document: primary.map(|(id, m, _)| TrackedDocument {
            packet_id: id.to_hex(),
            accepted_at: m.accepted_at,
            business_doc_type: m.business_doc_type.unwrap_or(0),
        }),
        recipients,
        packets: history.iter().map(tracked_packet).collect(),
    }
}

fn recipient_track(
    owner: &str,
    agency: &str,
    primary: Option<&HistoryRow>,
    actions: &[&HistoryRow],
    statuses: &[&HistoryRow],
    history: &[HistoryRow],
) -> RecipientTrack {
    let (delivery, delivered_at, refused) = match primary {
        Some(row) => delivery_of(row, agency),
        None => ("not_addressed".into(), None, None),
    };
    let accepted_at = primary
        .filter(|row| row.1.recipients.iter().any(|r| r == agency))
        .map(|row| row.1.accepted_at);
    let mine: Vec<&HistoryRow> = statuses
        .iter()
        .copied()
        .filter(|row| counterpart(&row.1, owner) == agency)
        .collect();
    let mut shown = timeline(&mine);
    let mut anomalies = Vec::new();

    // Replay the statuses sent by the right side through the lifecycle rules.
    let mut events = Vec::new();
    let mut replayed = Vec::new();
    for (i, s) in shown.iter_mut().enumerate() {
        let Ok(code) = StatusCode::parse(&s.code) else {
            s.anomaly = Some(format!("status code {:?} is unknown", s.code));
            continue;
        };
        let by_issuer = s.from == owner;
        if by_issuer != sent_by_original_sender(code) {
            s.anomaly = Some(if by_issuer {
                format!(
                    "status {} is sent by the document's recipient, not by its issuer {owner}",
                    s.code
                )
            } else {
                format!(
                    "status {} is sent by the document's issuer, not by its recipient {agency}",
                    s.code
                )
            });
            continue;
        }
        events.push((code, nanos(&s.time)));
        replayed.push(i);
    }
    // A revoke/update/replace tracked by its own id starts with its request pending.
    let own_request = primary
        .and_then(|row| row.1.business_doc_type)
        .and_then(BussinessDocType::from_code)
        .and_then(ActionKind::of);
    let result = replay_from(Lifecycle::start(own_request), &events);
    for e in &result.events {
        let s = &mut shown[replayed[e.index]];
        match &e.outcome {
            Ok(Decision::Repeat) => s.repeat = true,
            Ok(Decision::Apply) => {}
            Err(err) => s.anomaly = Some(err.to_string()),
        }
    }
    for s in &shown {
        if let Some(a) = &s.anomaly {
            anomalies.push(format!(
                "status {} at {} (packet {}): {a}",
                s.code,
                s.time,
                short(&s.packet_id)
            ));
        }
    }

    let my_actions: Vec<TrackedAction> = actions
        .iter()
        .filter(|row| addressed_to(row, agency))
        .map(|row| tracked_action(owner, agency, row, history))
        .collect();
    if delivery == "not_addressed" && my_actions.is_empty() && !shown.is_empty() {
        anomalies.push(format!(
            "the hub never routed this document to {agency}, which exchanged statuses about it"
        ));
    }
    let l = result.lifecycle;
    // Once the agency agreed (15) to a revoke/update/replace, the original is marked as the
    // nodes mark it: revoked, updated, replaced, or removed (an update that took it off).
    // A closing mark (revoked, replaced, removed) wins over `updated`.
    let marks: Vec<(&'static str, bool)> = actions
        .iter()
        .filter(|row| addressed_to(row, agency))
        .zip(&my_actions)
        .filter(|(_, a)| a.answer.as_deref() == Some(StatusCode::Agreed.as_str()))
        .filter_map(|(row, _)| {
            let kind = row
                .1
                .business_doc_type
                .and_then(BussinessDocType::from_code)
                .and_then(ActionKind::of)?;
            let removed = row.1.removed_recipients.iter().any(|r| r == agency);
            Some((kind.mark(removed), kind.closes_original(removed)))
        })
        .collect();
    let mark = marks
        .iter()
        .find(|(_, closes)| *closes)
        .or(marks.first())
        .map(|(m, _)| *m);
    RecipientTrack {
        recipient: agency.to_string(),
        delivery,
        accepted_at,
        delivered_at,
        refused,
        state: mark.unwrap_or(l.state_name()).to_string(),
        stage: l.stage.code().map(|c| c.as_str().to_string()),
        take_back: l.take_back.as_str().to_string(),
        statuses: shown,
        anomalies,
        actions: my_actions,
    }
}

fn tracked_action(
    owner: &str,
    agency: &str,
    row: &HistoryRow,
    history: &[HistoryRow],
) -> TrackedAction {
    let (id, meta, _) = row;
    let (delivery, delivered_at, refused) = delivery_of(row, agency);
    let answers: Vec<&HistoryRow> = history
        .iter()
        .filter(|(_, m, _)| {
            m.kind == PacketKind::Status
                && m.document_id == meta.document_id
                && meta.action_target().is_some()
                && counterpart(m, owner) == agency
        })
        .collect();
    let statuses = timeline(&answers);
    let bdt = meta.business_doc_type.unwrap_or(0);
    // The answer as the nodes decide it: the request starts pending, the first valid 15/16
    // stands (a later contrary one is an anomaly there).
    let events: Vec<(StatusCode, i128)> = statuses
        .iter()
        .filter(|s| s.from == agency)
        .filter_map(|s| Some((StatusCode::parse(&s.code).ok()?, nanos(&s.time))))
        .collect();
    let kind = BussinessDocType::from_code(bdt).and_then(ActionKind::of);
    let answer = match replay_from(Lifecycle::start(kind), &events)
        .lifecycle
        .take_back
    {
        TakeBackState::Agreed => Some(StatusCode::Agreed.as_str().to_string()),
        TakeBackState::Refused => Some(StatusCode::Refused.as_str().to_string()),
        _ => None,
    };
    TrackedAction {
        packet_id: id.to_hex(),
        document_id: meta.document_id.clone(),
        business_doc_type: bdt,
        action: BussinessDocType::from_code(bdt)
            .map_or("unknown", |t| t.label_en())
            .to_string(),
        accepted_at: meta.accepted_at,
        staff: meta.staff.clone(),
        reason: meta.reason.clone(),
        delivery,
        delivered_at,
        refused,
        statuses,
        answer,
    }
}

fn tracked_packet(row: &HistoryRow) -> TrackedPacket {
    let (id, meta, deliveries) = row;
    TrackedPacket {
        packet_id: id.to_hex(),
        kind: meta.kind,
        from: meta.from.clone(),
        document_id: meta.document_id.clone(),
        business_doc_type: meta.business_doc_type,
        status_code: meta.status_code,
        accepted_at: meta.accepted_at,
        recipients: deliveries
            .iter()
            .map(|(recipient, d)| TrackedDelivery {
                recipient: recipient.clone(),
                queued_at: d.queued_at,
                delivered_at: d.delivered_at,
            })
            .collect(),
        refused: meta.refused.clone(),
    }
}

/// The first 16 hex digits of a packet id.
pub fn short(packet_id: &str) -> &str {
    packet_id.get(..16).unwrap_or(packet_id)
}

impl RecipientTrack {
    /// "completed (06)", "taken_back (05, take-back agreed)", "nothing (no status yet)".
    pub fn describe_state(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        match &self.stage {
            Some(code) => parts.push(code.clone()),
            None => parts.push("no status yet".into()),
        }
        let take_back = match self.take_back.as_str() {
            s if s == TakeBackState::Requested.as_str() => Some("take-back requested"),
            s if s == TakeBackState::Agreed.as_str() => Some("take-back agreed"),
            s if s == TakeBackState::Refused.as_str() => Some("take-back refused"),
            _ => None,
        };
        parts.extend(take_back.map(str::to_string));
        format!("{} ({})", self.state, parts.join(", "))
    }
}

/// Prints the hub's record of a document for an operator.
pub fn print_track(out: &mut dyn Write, t: &DocumentTrack) -> std::io::Result<()> {
    if t.packets.is_empty() {
        return writeln!(
            out,
            "the hub has no packet of document {:?} issued by {}",
            t.document_id, t.owner
        );
    }
    writeln!(out, "document {} issued by {}", t.document_id, t.owner)?;
    match &t.document {
        Some(d) => writeln!(
            out,
            "  packet {}  accepted by the hub {}",
            short(&d.packet_id),
            d.accepted_at
        )?,
        None => writeln!(
            out,
            "  (the hub has no document packet with this id from {}; only packets about it)",
            t.owner
        )?,
    }
    for r in &t.recipients {
        print_recipient(out, r)?;
    }
    writeln!(out)?;
    writeln!(out, "  packets ({}):", t.packets.len())?;
    for p in &t.packets {
        let what = match (&p.status_code, p.business_doc_type) {
            (Some(code), _) => format!("status {code} from {}", p.from),
            (None, Some(bdt)) if bdt != 0 => format!(
                "{} {} from {}",
                edxml::BussinessDocType::from_code(bdt).map_or("action", |t| t.label_en()),
                p.document_id,
                p.from
            ),
            (None, _) => format!("{} from {}", p.kind, p.from),
        };
        let to: Vec<String> = p
            .recipients
            .iter()
            .map(|d| match &d.delivered_at {
                Some(_) => format!("{} delivered", d.recipient),
                None => format!("{} pending", d.recipient),
            })
            .chain(p.refused.iter().map(|(c, _)| format!("{c} refused")))
            .collect();
        writeln!(
            out,
            "    {}  {}  {what} -> {}",
            p.accepted_at,
            short(&p.packet_id),
            to.join(", ")
        )?;
    }
    Ok(())
}

fn print_recipient(out: &mut dyn Write, r: &RecipientTrack) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "  {}  state: {}", r.recipient, r.describe_state())?;
    match r.delivery.as_str() {
        "refused" => writeln!(
            out,
            "      refused by the hub: {}",
            r.refused.as_deref().unwrap_or("no reason recorded")
        )?,
        "not_addressed" => writeln!(
            out,
            "      (the document itself was not sent to this agency)"
        )?,
        _ => {}
    }
    if let Some(at) = &r.accepted_at {
        writeln!(out, "      {at:<24}  accepted by the hub")?;
    }
    match (&r.delivered_at, r.delivery.as_str()) {
        (Some(at), _) => writeln!(out, "      {at:<24}  delivered")?,
        (None, "pending") => writeln!(out, "      {:<24}  pending: not yet fetched", "")?,
        _ => {}
    }
    for s in &r.statuses {
        print_status(out, s, &r.recipient, "      ")?;
    }
    for a in &r.actions {
        writeln!(
            out,
            "      {} {} (packet {}){}",
            a.action,
            a.document_id,
            short(&a.packet_id),
            match &a.answer {
                Some(code) if code == "15" => ": agreed (15)".to_string(),
                Some(code) if code == "16" => ": refused (16)".to_string(),
                Some(code) => format!(": answered {code}"),
                None => ": no answer yet".to_string(),
            }
        )?;
        let who = who_and_why(a.staff.as_deref(), a.reason.as_deref());
        if who.is_empty() {
            writeln!(out, "        {:<24}  accepted by the hub", a.accepted_at)?;
        } else {
            writeln!(
                out,
                "        {:<24}  accepted by the hub; {who}",
                a.accepted_at
            )?;
        }
        match a.delivery.as_str() {
            "delivered" => writeln!(
                out,
                "        {:<24}  delivered",
                a.delivered_at.map(|t| t.to_string()).unwrap_or_default()
            )?,
            "pending" => writeln!(out, "        {:<24}  pending: not yet fetched", "")?,
            "refused" => writeln!(
                out,
                "        refused by the hub: {}",
                a.refused.as_deref().unwrap_or("no reason recorded")
            )?,
            _ => {}
        }
        for s in &a.statuses {
            print_status(out, s, &r.recipient, "        ")?;
        }
    }
    Ok(())
}

fn print_status(
    out: &mut dyn Write,
    s: &TrackedStatus,
    recipient: &str,
    indent: &str,
) -> std::io::Result<()> {
    let to = if s.from == recipient {
        "the sender"
    } else {
        "the recipient"
    };
    let delivered = if s.delivered_at.is_some() {
        format!("delivered to {to}")
    } else {
        format!("not yet delivered to {to}")
    };
    let mut line = format!("{indent}{:<24}  {} {:<11}", s.time, s.code, s.label_en);
    let who = who_and_why(s.staff.as_deref(), s.reason.as_deref());
    if !who.is_empty() {
        line.push(' ');
        line.push_str(&who);
    }
    line.push_str(&format!("  (packet {}, {delivered})", short(&s.packet_id)));
    if s.repeat {
        line.push_str(" [repeat: changes nothing]");
    }
    writeln!(out, "{line}")?;
    if let Some(a) = &s.anomaly {
        writeln!(out, "{indent}  ! does not follow the lifecycle: {a}")?;
    }
    Ok(())
}

/// "by STAFF; reason: REASON", either part left out when absent.
fn who_and_why(staff: Option<&str>, reason: Option<&str>) -> String {
    let mut parts = Vec::new();
    if let Some(staff) = staff {
        parts.push(format!("by {staff}"));
    }
    if let Some(reason) = reason {
        parts.push(format!("reason: {reason}"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        tag: &str,
        kind: PacketKind,
        from: &str,
        document_id: &str,
        to: &[&str],
        code: Option<&str>,
        accepted_at: &str,
    ) -> HistoryRow {
        let meta = PacketMeta {
            kind,
            from: from.into(),
            document_id: document_id.into(),
            business_doc_type: (kind == PacketKind::Document).then_some(0),
            status_code: code.map(|c| StatusCode::parse(c).unwrap()),
            priority: 0,
            size: 1,
            accepted_at: Timestamp::parse(accepted_at).unwrap(),
            recipients: to.iter().map(|s| s.to_string()).collect(),
            refused: vec![],
            receipt: String::new(),
            status_time: None,
            staff: None,
            reason: None,
            target_document_id: None,
            removed_recipients: Vec::new(),
            subject: None,
            code: None,
        };
        (PacketId::of(tag.as_bytes()), meta, BTreeMap::new())
    }

    #[test]
    fn wrong_sides_strangers_refusals_and_old_rows() {
        let mut doc = row(
            "doc",
            PacketKind::Document,
            "A",
            "d",
            &["B"],
            None,
            "2026-01-01T00:00:00Z",
        );
        doc.1.refused = vec![("C".into(), "agency is suspended at this hub".into())];
        // An old row without its own timestamp: ordered by the hub's time.
        let old_01 = row(
            "01",
            PacketKind::Status,
            "B",
            "d",
            &["A"],
            Some("01"),
            "2026-01-01T00:00:05Z",
        );
        let mut late_03 = row(
            "03",
            PacketKind::Status,
            "B",
            "d",
            &["A"],
            Some("03"),
            "2026-01-01T00:00:01Z",
        );
        late_03.1.status_time =
            Some(exchange::clock::Timestamp::parse("2026-01-01T00:00:10Z").unwrap());
        // 13 from the recipient and 03 from the issuer: the wrong sides.
        let mut b13 = row(
            "b13",
            PacketKind::Status,
            "B",
            "d",
            &["A"],
            Some("13"),
            "2026-01-01T00:00:20Z",
        );
        b13.1.status_time =
            Some(exchange::clock::Timestamp::parse("2026-01-01T00:00:20Z").unwrap());
        let mut a03 = row(
            "a03",
            PacketKind::Status,
            "A",
            "d",
            &["B"],
            Some("03"),
            "2026-01-01T00:00:21Z",
        );
        a03.1.status_time =
            Some(exchange::clock::Timestamp::parse("2026-01-01T00:00:21Z").unwrap());
        // D never received the document but sends a status about it.
        let mut d01 = row(
            "d01",
            PacketKind::Status,
            "D",
            "d",
            &["A"],
            Some("01"),
            "2026-01-01T00:00:30Z",
        );
        d01.1.status_time =
            Some(exchange::clock::Timestamp::parse("2026-01-01T00:00:30Z").unwrap());
        let t = build("A", "d", vec![d01, a03, b13, late_03, old_01, doc]);

        let agencies: Vec<&str> = t.recipients.iter().map(|r| r.recipient.as_str()).collect();
        assert_eq!(agencies, ["B", "C", "D"]);
        let b = &t.recipients[0];
        assert_eq!(b.delivery, "pending");
        assert_eq!(
            b.accepted_at.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        let order: Vec<(&str, &str)> = b
            .statuses
            .iter()
            .map(|s| (s.code.as_str(), s.from.as_str()))
            .collect();
        assert_eq!(order, [("01", "B"), ("03", "B"), ("13", "B"), ("03", "A")]);
        assert_eq!(b.statuses[0].time.to_string(), "2026-01-01T00:00:05Z");
        assert_eq!(b.state, "accepted");
        assert_eq!(
            b.take_back, "none",
            "a 13 from the recipient is not applied"
        );
        assert_eq!(b.anomalies.len(), 2, "{:?}", b.anomalies);
        assert!(
            b.statuses[2]
                .anomaly
                .as_deref()
                .unwrap()
                .contains("not by its recipient"),
            "{:?}",
            b.statuses[2]
        );
        assert!(
            b.statuses[3]
                .anomaly
                .as_deref()
                .unwrap()
                .contains("not by its issuer"),
            "{:?}",
            b.statuses[3]
        );

        let c = &t.recipients[1];
        assert_eq!(c.delivery, "refused");
        assert_eq!(
            c.refused.as_deref(),
            Some("agency is suspended at this hub")
        );
        assert_eq!(c.accepted_at, None);
        assert_eq!(c.describe_state(), "nothing (no status yet)");

        let d = &t.recipients[2];
        assert_eq!(d.delivery, "not_addressed");
        assert_eq!(d.state, "new");
        assert_eq!(d.anomalies.len(), 1);
        assert!(d.anomalies[0].contains("never routed"), "{:?}", d.anomalies);

        // Packets in the order the hub accepted them.
        let kinds: Vec<Option<&str>> = t
            .packets
            .iter()
            .map(|p| p.status_code.map(StatusCode::as_str))
            .collect();
        assert_eq!(
            kinds,
            [
                None,
                Some("03"),
                Some("01"),
                Some("13"),
                Some("03"),
                Some("01")
            ]
        );
    }
}
