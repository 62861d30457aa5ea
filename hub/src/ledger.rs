//! The operators' ledger: what the console reads to show traffic and find documents, kept in
//! the hub database itself (no cache beside it that could drift).
//!
//! Tables (keys → values):
//! - `doc_index`: (hub acceptance time in Unix ms, packet id) → (): every document packet,
//!   so a search walks the newest first and a date range is a key range;
//! - `hourly`: (Unix hour, "documents" | "deliveries") → count of document packets accepted
//!   and of document deliveries completed in that hour.
//!
//! Invariants:
//! - Both are written inside the transaction that commits the submission or the delivery
//!   they count ([`crate::db::HubDb::submit`], [`crate::db::HubDb::record_deliveries`]), so
//!   a count never disagrees with the packets stored; a database from before they existed is
//!   indexed once when it is opened (layout version 3).
//! - A search reads one snapshot and scans at most [`SCAN_LIMIT`] documents; when it stops
//!   early it says so ([`Found::truncated`]) instead of pretending the list is complete.

use redb::{ReadTransaction, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;

use crate::db::{Delivery, PacketMeta};
use exchange::clock::Timestamp;
use exchange::packet_id::PacketId;
use store::codec::decode;
use store::{DbResult, StoreError};

const DOC_INDEX: TableDefinition<(u64, &[u8; 32]), ()> = TableDefinition::new("doc_index");
const HOURLY: TableDefinition<(u64, &str), u64> = TableDefinition::new("hourly");

const DOCUMENTS: &str = "documents";
const DELIVERIES: &str = "deliveries";
/// Milliseconds in an hour (the ledger's buckets).
pub(crate) const MS_PER_HOUR: u64 = 3_600_000;

/// Most documents one search looks at before it stops and says so.
pub const SCAN_LIMIT: usize = 50_000;

/// Creates the ledger's tables (at database open).
pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(DOC_INDEX).db()?;
    txn.open_table(HOURLY).db()?;
    Ok(())
}

fn bump(txn: &WriteTransaction, hour: u64, what: &str) -> Result<(), StoreError> {
    let mut t = txn.open_table(HOURLY).db()?;
    let n = t.get((hour, what)).db()?.map_or(0, |v| v.value());
    t.insert((hour, what), n + 1).db()?;
    Ok(())
}

/// Files a newly committed document packet (same transaction as the packet). Filing the
/// same packet again changes nothing; the answer says whether it was new.
pub(crate) fn record_document(
    txn: &WriteTransaction,
    id: PacketId,
    accepted_at: Timestamp,
) -> Result<bool, StoreError> {
    let ms = accepted_at.unix_ms();
    let before = txn
        .open_table(DOC_INDEX)
        .db()?
        .insert((ms, id.as_bytes()), ())
        .db()?
        .is_some();
    if before {
        return Ok(false);
    }
    bump(txn, ms / MS_PER_HOUR, DOCUMENTS)?;
    Ok(true)
}

/// Counts one completed document delivery (same transaction as the delivery).
pub(crate) fn record_delivery(txn: &WriteTransaction, at: Timestamp) -> Result<(), StoreError> {
    bump(txn, at.unix_ms() / MS_PER_HOUR, DELIVERIES)
}

/// Documents accepted and deliveries completed in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HourCount {
    /// Start of the hour.
    pub start: Timestamp,
    pub documents: u64,
    pub deliveries: u64,
}

/// Hours `first` to `last` (Unix hours, both included) with nothing counted yet.
pub(crate) fn empty_hours(first: u64, last: u64) -> Vec<HourCount> {
    (first..=last)
        .map(|h| HourCount {
            start: Timestamp::from_unix_ms(h * MS_PER_HOUR),
            documents: 0,
            deliveries: 0,
        })
        .collect()
}

/// The `hours` whole hours ending with the one containing `now`, oldest first (empty hours
/// included, so a chart has no gaps).
pub fn hourly(
    t: &ReadTransaction,
    now: Timestamp,
    hours: u64,
) -> Result<Vec<HourCount>, StoreError> {
    let last = now.unix_ms() / MS_PER_HOUR;
    let first = last.saturating_sub(hours.saturating_sub(1));
    let table = t.open_table(HOURLY).db()?;
    let mut out = empty_hours(first, last);
    for row in table.range((first, "")..).db()? {
        let (k, v) = row.db()?;
        let (hour, what) = k.value();
        if hour > last {
            break;
        }
        let Some(slot) = out.get_mut((hour - first) as usize) else {
            continue;
        };
        match what {
            DOCUMENTS => slot.documents = v.value(),
            DELIVERIES => slot.deliveries = v.value(),
            _ => {}
        }
    }
    Ok(out)
}

/// Documents accepted from `since` on (whole hours: the hour containing `since` counts).
pub fn documents_since(t: &ReadTransaction, since: Timestamp) -> Result<u64, StoreError> {
    let first = since.unix_ms() / MS_PER_HOUR;
    let table = t.open_table(HOURLY).db()?;
    let mut n = 0;
    for row in table.range((first, "")..).db()? {
        let (k, v) = row.db()?;
        if k.value().1 == DOCUMENTS {
            n += v.value();
        }
    }
    Ok(n)
}

/// Which deliveries a search wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateFilter {
    #[default]
    Any,
    Pending,
    Delivered,
    Refused,
}

impl StateFilter {
    /// From a form value; an empty value is [`StateFilter::Any`].
    pub fn parse(s: &str) -> Option<StateFilter> {
        match s {
            "" | "any" => Some(StateFilter::Any),
            "pending" => Some(StateFilter::Pending),
            "delivered" => Some(StateFilter::Delivered),
            "refused" => Some(StateFilter::Refused),
            _ => None,
        }
    }

    pub(crate) fn admits(self, state: DeliveryState) -> bool {
        match self {
            StateFilter::Any => true,
            StateFilter::Pending => state == DeliveryState::Pending,
            StateFilter::Delivered => state == DeliveryState::Delivered,
            StateFilter::Refused => state == DeliveryState::Refused,
        }
    }
}

/// What a search looks for; empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Part of the document id, of the number/notation, or of the subject (case-insensitive).
    pub text: String,
    pub sender: String,
    pub recipient: String,
    /// Acceptance time bounds, Unix ms, inclusive.
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    pub state: StateFilter,
}

/// One delivery's state at the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// The hub refused this recipient (unknown or suspended agency) at submission.
    Refused,
}

/// One (document, recipient) row of a search.
#[derive(Debug, Clone, Serialize)]
pub struct FoundDelivery {
    pub packet_id: String,
    pub accepted_at: Timestamp,
    pub sender: String,
    pub document_id: String,
    pub code: Option<String>,
    pub subject: Option<String>,
    pub business_doc_type: u8,
    pub recipient: String,
    pub state: DeliveryState,
    pub delivered_at: Option<Timestamp>,
    /// Why the hub refused this recipient.
    pub refusal: Option<String>,
}

/// A search's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub rows: Vec<FoundDelivery>,
    /// Documents looked at.
    pub scanned: usize,
    /// The search stopped at its row limit or at [`SCAN_LIMIT`] before the range's end.
    pub truncated: bool,
}

fn contains_ci(hay: &str, needle_lower: &str) -> bool {
    needle_lower.is_empty() || hay.to_lowercase().contains(needle_lower)
}

/// A search with its text fields normalised once (both backends filter documents with it).
pub(crate) struct Matcher<'a> {
    q: &'a Search,
    text: String,
}

impl<'a> Matcher<'a> {
    pub(crate) fn new(q: &'a Search) -> Matcher<'a> {
        Matcher {
            q,
            text: q.text.trim().to_lowercase(),
        }
    }

    /// The document passes the sender and text filters (its deliveries are judged next).
    pub(crate) fn admits(&self, meta: &PacketMeta) -> bool {
        let sender = self.q.sender.trim();
        if !sender.is_empty() && meta.from != sender {
            return false;
        }
        let text = self.text.as_str();
        text.is_empty()
            || contains_ci(&meta.document_id, text)
            || meta.code.as_deref().is_some_and(|c| contains_ci(c, text))
            || meta
                .subject
                .as_deref()
                .is_some_and(|s| contains_ci(s, text))
    }

    /// The recipients whose delivery state the search needs (none filtered out by name).
    pub(crate) fn recipients<'m>(&self, meta: &'m PacketMeta) -> Vec<&'m str> {
        let recipient = self.q.recipient.trim();
        meta.recipients
            .iter()
            .map(String::as_str)
            .filter(|r| recipient.is_empty() || *r == recipient)
            .collect()
    }

    /// The rows of one admitted document, given when each wanted recipient's delivery
    /// completed (`None`: pending, or no delivery row).
    pub(crate) fn rows(
        &self,
        id: PacketId,
        meta: &PacketMeta,
        delivered: &[(&str, Option<Timestamp>)],
    ) -> Vec<FoundDelivery> {
        let recipient = self.q.recipient.trim();
        let mut rows = Vec::new();
        for (r, delivered_at) in delivered {
            let state = match delivered_at {
                Some(_) => DeliveryState::Delivered,
                None => DeliveryState::Pending,
            };
            rows.push((r.to_string(), state, *delivered_at, None));
        }
        for (r, why) in &meta.refused {
            if recipient.is_empty() || r == recipient {
                rows.push((r.clone(), DeliveryState::Refused, None, Some(why.clone())));
            }
        }
        rows.into_iter()
            .filter(|(_, state, _, _)| self.q.state.admits(*state))
            .map(|(r, state, delivered_at, refusal)| FoundDelivery {
                packet_id: id.to_hex(),
                accepted_at: meta.accepted_at,
                sender: meta.from.clone(),
                document_id: meta.document_id.clone(),
                code: meta.code.clone(),
                subject: meta.subject.clone(),
                business_doc_type: meta.business_doc_type.unwrap_or(0),
                recipient: r,
                state,
                delivered_at,
                refusal,
            })
            .collect()
    }
}

/// Deliveries matching `q`, newest document first, at most `limit` rows.
pub fn search(t: &ReadTransaction, q: &Search, limit: usize) -> Result<Found, StoreError> {
    let index = t.open_table(DOC_INDEX).db()?;
    let metas = t.open_table(crate::db::redb::PACKET_META).db()?;
    let deliveries = t.open_table(crate::db::redb::DELIVERIES).db()?;
    let lo = (q.from_ms.unwrap_or(0), &[0u8; 32]);
    let hi = (q.to_ms.unwrap_or(u64::MAX), &[0xffu8; 32]);
    let matcher = Matcher::new(q);
    let mut found = Found {
        rows: Vec::new(),
        scanned: 0,
        truncated: false,
    };
    for row in index.range(lo..=hi).db()?.rev() {
        if found.scanned >= SCAN_LIMIT || found.rows.len() >= limit {
            found.truncated = true;
            break;
        }
        found.scanned += 1;
        let (k, _) = row.db()?;
        let id = PacketId(*k.value().1);
        let Some(m) = metas.get(id.as_bytes()).db()? else {
            continue;
        };
        let meta: PacketMeta = decode(m.value())?;
        if !matcher.admits(&meta) {
            continue;
        }
        let mut delivered = Vec::new();
        for r in matcher.recipients(&meta) {
            let d: Option<Delivery> = match deliveries.get((id.as_bytes(), r)).db()? {
                Some(v) => Some(decode(v.value())?),
                None => None,
            };
            delivered.push((r, d.and_then(|d| d.delivered_at)));
        }
        found.rows.extend(matcher.rows(id, &meta, &delivered));
    }
    Ok(found)
}
