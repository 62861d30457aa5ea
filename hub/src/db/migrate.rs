//! Moving a hub from its redb file to PostgreSQL (`docaxis hub migrate --to postgresql://…`).
//!
//! The hub must be stopped (redb lets one process open the file, so a running hub makes the
//! copy fail at once). The target must be an empty DocAxis database (the schema is applied
//! first); the copy refuses anything else rather than merge two hubs.
//!
//! What is copied: agencies; every packet byte for byte with its meta (receipt included), its
//! business key, its tracking rows and its delivery rows (pending ones keep their queue order);
//! the receipts senders have not collected, with each sender's sequence continuing after the
//! highest number the redb hub gave (a node's receipt cursor stays valid); open and closed
//! incidents; queued mail and the count of mail sent. The operators' ledger is not copied:
//! on PostgreSQL it is read from indexes.
//!
//! Invariants:
//! - Packets are copied in chunks, each chunk one PostgreSQL transaction, so memory stays
//!   bounded by the chunk, not by the hub's history.
//! - Nothing in the redb file is changed.
//! - At the end every table's rows are counted on both sides; any difference fails the
//!   migration with the table named (the redb hub is still whole: keep running it).

use redb::{ReadableTable, ReadableTableMetadata};
use serde::Serialize;

use exchange::packet_id::PacketId;
use store::codec::decode;
use store::{DbResult, StoreError};

use super::pg::{PgError, PgHub};
use super::redb::{
    AGENCIES, BUSINESS_KEYS, BY_DOCUMENT, COUNTERS, DELIVERIES, PACKET_META, PACKETS, RedbHub,
    SENDER_RECEIPTS,
};
use super::{Agency, Delivery, HubDbError, PacketMeta};

/// Packets read and written per transaction.
const CHUNK: usize = 200;

/// One table's rows on each side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: &'static str,
    pub redb: u64,
    pub postgres: u64,
}

/// What a migration copied.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
    pub tables: Vec<TableCount>,
}

impl Migrated {
    /// The tables whose counts differ.
    pub fn mismatches(&self) -> Vec<&TableCount> {
        self.tables
            .iter()
            .filter(|t| t.redb != t.postgres)
            .collect()
    }
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Db(#[from] HubDbError),
    #[error(
        "the PostgreSQL database is not empty ({0}); migrate into a new database (CREATE \
         DATABASE …), or drop this one and create it again if an earlier migration stopped"
    )]
    NotEmpty(String),
    #[error("the copy does not match the source: {0}")]
    Mismatch(String),
}

impl From<StoreError> for MigrateError {
    fn from(e: StoreError) -> Self {
        MigrateError::Db(HubDbError::Store(e))
    }
}

impl From<PgError> for MigrateError {
    fn from(e: PgError) -> Self {
        MigrateError::Db(HubDbError::Postgres(e))
    }
}

/// A packet with everything filed under it.
struct Row {
    id: PacketId,
    bytes: Vec<u8>,
    meta: PacketMeta,
    deliveries: Vec<(String, Delivery)>,
}

/// Copies `from` into the empty database behind `to`; `progress` hears what was done after
/// each step (a sentence for the operator).
pub async fn copy(
    from: &RedbHub,
    to: &PgHub,
    mut progress: impl FnMut(&str),
) -> Result<Migrated, MigrateError> {
    let held = to.row_counts().await?;
    let busy: Vec<String> = held
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(t, n)| format!("{t}: {n}"))
        .collect();
    if !busy.is_empty() {
        return Err(MigrateError::NotEmpty(busy.join(", ")));
    }

    let agencies: Vec<Agency> = from.agencies().await?;
    for a in &agencies {
        to.add_agency(a.clone()).await?;
    }
    progress(&format!("{} agencies", agencies.len()));

    let mut after: Option<PacketId> = None;
    let mut packets = 0u64;
    loop {
        let start = after;
        let blobs = from.store().blobs().clone();
        let chunk: Vec<Row> = from
            .store()
            .read(move |t| {
                let bytes = t.open_table(PACKETS).db()?;
                let metas = t.open_table(PACKET_META).db()?;
                let deliveries = t.open_table(DELIVERIES).db()?;
                let range = match &start {
                    Some(id) => bytes.range::<&[u8; 32]>((
                        std::ops::Bound::Excluded(id.as_bytes()),
                        std::ops::Bound::Unbounded,
                    )),
                    None => bytes.range::<&[u8; 32]>(..),
                }
                .db()?;
                let mut out = Vec::new();
                for row in range.take(CHUNK) {
                    let (k, v) = row.db()?;
                    let id = PacketId(*k.value());
                    let meta: PacketMeta = match metas.get(id.as_bytes()).db()? {
                        Some(m) => decode(m.value())?,
                        None => {
                            return Err(StoreError::Corrupt(format!("packet {id} has no meta")));
                        }
                    };
                    let mut rows = Vec::new();
                    for r in &meta.recipients {
                        if let Some(d) = deliveries.get((id.as_bytes(), r.as_str())).db()? {
                            rows.push((r.clone(), decode::<Delivery>(d.value())?));
                        }
                    }
                    out.push(Row {
                        id,
                        bytes: blobs.load(v.value())?,
                        meta,
                        deliveries: rows,
                    });
                }
                Ok::<_, StoreError>(out)
            })
            .await?;
        let Some(last) = chunk.last() else {
            break;
        };
        after = Some(last.id);
        packets += chunk.len() as u64;
        to.import_packets(
            chunk
                .into_iter()
                .map(|r| (r.id, r.bytes, r.meta, r.deliveries))
                .collect(),
        )
        .await?;
        progress(&format!("{packets} packets"));
    }

    // Receipts not collected yet, and where each sender's numbering continues.
    let (receipts, last_seq) = from
        .store()
        .read(|t| {
            let table = t.open_table(SENDER_RECEIPTS).db()?;
            let mut rows = Vec::new();
            for row in table.iter().db()? {
                let (k, v) = row.db()?;
                let (sender, seq) = k.value();
                let (id, recipient) = v.value();
                rows.push((
                    sender.to_string(),
                    seq,
                    PacketId(*id),
                    recipient.to_string(),
                ));
            }
            let last = t
                .open_table(COUNTERS)
                .db()?
                .get("receipts")
                .db()?
                .map_or(0, |v| v.value());
            Ok::<_, StoreError>((rows, last))
        })
        .await?;
    let mut senders: Vec<String> = agencies.iter().map(|a| a.code.clone()).collect();
    senders.extend(receipts.iter().map(|r| r.0.clone()));
    senders.sort();
    senders.dedup();
    to.import_receipts(&receipts, &senders, last_seq).await?;
    progress(&format!(
        "{} receipts waiting for their senders",
        receipts.len()
    ));

    let (open, past, mail, mail_sent) = from
        .store()
        .read(|t| {
            let (_, sent) = mail::queue::counts(t)?;
            Ok::<_, StoreError>((
                crate::alerts::open_incidents(t)?,
                crate::alerts::past_incidents(t, usize::MAX)?,
                mail::queue::waiting(t, usize::MAX)?,
                sent,
            ))
        })
        .await?;
    to.import_alerts(&open, &past, &mail, mail_sent).await?;
    progress(&format!(
        "{} open and {} closed incidents, {} mails waiting",
        open.len(),
        past.len(),
        mail.len()
    ));

    let source = from
        .store()
        .read(|t| {
            let len = |n: Result<u64, redb::StorageError>| n.db();
            Ok::<_, StoreError>(vec![
                ("agencies", len(t.open_table(AGENCIES).db()?.len())?),
                ("packets", len(t.open_table(PACKETS).db()?.len())?),
                (
                    "business_keys",
                    len(t.open_table(BUSINESS_KEYS).db()?.len())?,
                ),
                ("deliveries", len(t.open_table(DELIVERIES).db()?.len())?),
                (
                    "sender_receipts",
                    len(t.open_table(SENDER_RECEIPTS).db()?.len())?,
                ),
                ("by_document", len(t.open_table(BY_DOCUMENT).db()?.len())?),
            ])
        })
        .await?;
    let target = to.row_counts().await?;
    let mut tables: Vec<TableCount> = source
        .into_iter()
        .map(|(table, redb)| TableCount {
            table,
            redb,
            postgres: target
                .iter()
                .find(|(t, _)| *t == table)
                .map_or(0, |(_, n)| *n),
        })
        .collect();
    let pg = |table: &str| {
        target
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    };
    tables.push(TableCount {
        table: "alerts_open",
        redb: open.len() as u64,
        postgres: pg("alerts_open"),
    });
    tables.push(TableCount {
        table: "alerts_past",
        redb: past.len() as u64,
        postgres: pg("alerts_past"),
    });
    tables.push(TableCount {
        table: "mail_queue",
        redb: mail.len() as u64,
        postgres: pg("mail_queue"),
    });
    let report = Migrated { tables };
    let wrong: Vec<String> = report
        .mismatches()
        .iter()
        .map(|t| {
            format!(
                "{}: {} in redb, {} in PostgreSQL",
                t.table, t.redb, t.postgres
            )
        })
        .collect();
    if !wrong.is_empty() {
        return Err(MigrateError::Mismatch(wrong.join("; ")));
    }
    Ok(report)
}
