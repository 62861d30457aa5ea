//! What each document system connected through the legacy API ([`crate::legacy`]) still has
//! to fetch, and what it acknowledged.
//!
//! Tables (keys → values):
//! - `legacy_acks`: (system id, packet id) → [`LegacyAck`] (JSON): a system's answer about one
//!   received packet (`done`, or the `fail`s it reported)
//! - `legacy_cursor`: system id → Unix ms: every packet received before it is settled for
//!   that system (done or set aside), so listing starts there instead of at the beginning
//!
//! What `fail` does (so that a naive client cannot loop on one item for ever): the packet
//! leaves that system's list for [`RETRY_MINUTES`] (1, then 4, then 16 minutes) after each
//! `fail`; after [`MAX_FAILS`] it is set aside for good for that system — no longer listed,
//! recorded as an anomaly for the operator, still in the node's inbox and still fetchable by
//! id. `done` settles it at once. Any other status (`processing`, `inbox`, …) is recorded and
//! changes nothing.
//!
//! Invariants: an answer is durable before it is acknowledged to the system; every system has
//! its own answers (two systems at one node each get every packet); the cursor only moves over
//! settled packets.

use redb::{ReadTransaction, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use exchange::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;
use store::DbResult;
use store::codec::{decode, encode};

use super::{INBOX, INBOX_BY_TIME, InboxEntry, NodeDb, NodeDbError, upsert_anomaly};

pub(super) const LEGACY_ACKS: TableDefinition<(&str, &[u8; 32]), &[u8]> =
    TableDefinition::new("legacy_acks");
pub(super) const LEGACY_CURSOR: TableDefinition<&str, u64> = TableDefinition::new("legacy_cursor");

/// After the n-th `fail`, the packet leaves the list for this many minutes.
pub const RETRY_MINUTES: [u64; 3] = [1, 4, 16];
/// `fail`s after which a packet is set aside for good for that system.
pub const MAX_FAILS: u32 = 3;
/// Most packets looked at by one listing.
const SCAN_LIMIT: usize = 50_000;

/// A system's answer about one packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyAck {
    /// `done`, `failed` (set aside) or `pending`.
    pub state: String,
    pub fails: u32,
    /// While `pending` after a `fail`: not listed before this time (Unix ms).
    pub hidden_until_ms: u64,
    /// The last status the system sent, as it sent it.
    pub last_status: String,
    pub at: Timestamp,
}

/// What an `updateStatus` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyUpdate {
    /// Settled: no longer listed.
    Done,
    /// Listed again after this time.
    RetryAfter { until_ms: u64, fails: u32 },
    /// Set aside for good after too many `fail`s.
    SetAside { fails: u32 },
    /// Recorded; the packet stays listed.
    Noted,
}

fn ack_of(
    t: &impl ReadableTable<(&'static str, &'static [u8; 32]), &'static [u8]>,
    system: &str,
    id: &[u8; 32],
) -> Result<Option<LegacyAck>, NodeDbError> {
    Ok(match t.get((system, id)).db()? {
        Some(v) => Some(decode(v.value())?),
        None => None,
    })
}

fn settled(a: &Option<LegacyAck>) -> bool {
    a.as_ref()
        .is_some_and(|a| a.state == "done" || a.state == "failed")
}

fn pending_in(
    txn: &ReadTransaction,
    system: &str,
    kind: PacketKind,
    limit: usize,
    now_ms: u64,
) -> Result<Vec<(PacketId, InboxEntry)>, NodeDbError> {
    let cursor = txn
        .open_table(LEGACY_CURSOR)
        .db()?
        .get(system)
        .db()?
        .map(|v| v.value())
        .unwrap_or(0);
    let by_time = txn.open_table(INBOX_BY_TIME).db()?;
    let inbox = txn.open_table(INBOX).db()?;
    let acks = txn.open_table(LEGACY_ACKS).db()?;
    let mut out = Vec::new();
    for row in by_time.range((cursor, &[0u8; 32])..).db()?.take(SCAN_LIMIT) {
        let (k, _) = row.db()?;
        let (_, id) = k.value();
        let ack = ack_of(&acks, system, id)?;
        if settled(&ack) || ack.as_ref().is_some_and(|a| a.hidden_until_ms > now_ms) {
            continue;
        }
        let Some(v) = inbox.get(id).db()? else {
            continue;
        };
        let e: InboxEntry = decode(v.value())?;
        if e.kind != kind {
            continue;
        }
        out.push((PacketId(*id), e));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

impl NodeDb {
    /// Received packets of `kind` that `system` has not settled, oldest first, at most
    /// `limit` (those hidden after a `fail` are left out until their time).
    pub async fn legacy_pending(
        &self,
        system: String,
        kind: PacketKind,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<(PacketId, InboxEntry)>, NodeDbError> {
        self.store
            .read(move |txn| pending_in(txn, &system, kind, limit, now_ms))
            .await
    }

    /// Records `system`'s status about received packet `id`; see the module documentation
    /// for what `done` and `fail` do.
    pub async fn legacy_update(
        &self,
        system: String,
        id: PacketId,
        status: String,
        now_ms: u64,
    ) -> Result<LegacyUpdate, NodeDbError> {
        self.store
            .write(move |txn| {
                let entry_time = {
                    let inbox = txn.open_table(INBOX).db()?;
                    let v = inbox.get(id.as_bytes()).db()?;
                    match v {
                        Some(v) => decode::<InboxEntry>(v.value())?.received_at.unix_ms(),
                        None => return Err(NodeDbError::NotInInbox(id.to_hex())),
                    }
                };
                let mut acks = txn.open_table(LEGACY_ACKS).db()?;
                let before = ack_of(&acks, &system, id.as_bytes())?;
                let mut ack = before.clone().unwrap_or(LegacyAck {
                    state: "pending".into(),
                    fails: 0,
                    hidden_until_ms: 0,
                    last_status: String::new(),
                    at: Timestamp::now(),
                });
                ack.last_status = status.clone();
                ack.at = Timestamp::now();
                let outcome = if settled(&before) {
                    // Already settled: `done` again is a repeat, anything else is noted only.
                    if ack.state == "done" {
                        LegacyUpdate::Done
                    } else {
                        LegacyUpdate::SetAside { fails: ack.fails }
                    }
                } else {
                    match status.to_ascii_lowercase().as_str() {
                        "done" => {
                            ack.state = "done".into();
                            LegacyUpdate::Done
                        }
                        "fail" => {
                            ack.fails += 1;
                            if ack.fails >= MAX_FAILS {
                                ack.state = "failed".into();
                                upsert_anomaly(
                                    txn,
                                    "legacy",
                                    &format!("{system}:{}", id.to_hex()),
                                    None,
                                    &format!(
                                        "document system {system} reported `fail` {} times for \
                                         packet {}; it is no longer listed for that system",
                                        ack.fails,
                                        id.to_hex()
                                    ),
                                )?;
                                LegacyUpdate::SetAside { fails: ack.fails }
                            } else {
                                let i = (ack.fails as usize - 1).min(RETRY_MINUTES.len() - 1);
                                ack.hidden_until_ms = now_ms + RETRY_MINUTES[i] * 60_000;
                                LegacyUpdate::RetryAfter {
                                    until_ms: ack.hidden_until_ms,
                                    fails: ack.fails,
                                }
                            }
                        }
                        _ => LegacyUpdate::Noted,
                    }
                };
                acks.insert((system.as_str(), id.as_bytes()), encode(&ack)?.as_slice())
                    .db()?;
                // Move the cursor over the settled prefix.
                let mut cursors = txn.open_table(LEGACY_CURSOR).db()?;
                let cursor = cursors
                    .get(system.as_str())
                    .db()?
                    .map(|v| v.value())
                    .unwrap_or(0);
                if settled(&Some(ack)) && entry_time >= cursor {
                    // Past every settled packet, up to the first one that is not (the packets
                    // sharing its millisecond are looked at again, and skipped, next time).
                    let by_time = txn.open_table(INBOX_BY_TIME).db()?;
                    let mut next = cursor;
                    for row in by_time.range((cursor, &[0u8; 32])..).db()?.take(10_000) {
                        let (k, _) = row.db()?;
                        let (at, pid) = k.value();
                        if !settled(&ack_of(&acks, &system, pid)?) {
                            next = at;
                            break;
                        }
                        next = at.saturating_add(1);
                    }
                    if next > cursor {
                        cursors.insert(system.as_str(), next).db()?;
                    }
                }
                Ok(outcome)
            })
            .await
    }
}
