//! The hub's storage rules, run against both backends: the embedded redb file and a real
//! PostgreSQL (a throwaway cluster, `docaxis-pgtest`). Then what only a shared database can
//! show: replicas (separate connection pools) racing on the same packet, the same delivery,
//! the same alert, the same mail, and replicas migrating the schema at once.

use std::collections::HashSet;
use std::sync::Arc;

use docaxis_hub as hub;

use exchange::clock::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::PacketKind;
use hub::alerts::{AlertKind, Condition};
use hub::db::pg::PgTls;
use hub::db::{Agency, HubDb, HubDbError, InlineBudget, NewPacket, PacketMeta, PgHub, Submitted};
use hub::ledger::{DeliveryState, Search, StateFilter};

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn meta(from: &str, doc: &str, to: &[&str], priority: u8, at: &str) -> PacketMeta {
    PacketMeta {
        kind: PacketKind::Document,
        from: from.into(),
        document_id: doc.into(),
        business_doc_type: Some(0),
        status_code: None,
        priority,
        size: 10,
        accepted_at: ts(at),
        recipients: to.iter().map(|s| s.to_string()).collect(),
        refused: vec![],
        receipt: format!("receipt for {doc}"),
        status_time: None,
        staff: None,
        reason: None,
        target_document_id: None,
        removed_recipients: Vec::new(),
        subject: Some(format!("Trích yếu {doc}")),
        code: Some(format!("{doc}/VPCP")),
    }
}

fn packet(bytes: &[u8], m: PacketMeta) -> NewPacket {
    NewPacket {
        id: PacketId::of(bytes),
        bytes: bytes.to_vec(),
        meta: m,
    }
}

const T0: &str = "2026-11-23T00:10:00Z";

/// Fresh databases of one backend.
enum Backend<'a> {
    Redb(tempfile::TempDir, u32),
    Postgres(&'a pgtest::Cluster, u32),
}

impl Backend<'_> {
    async fn fresh(&mut self) -> HubDb {
        match self {
            Backend::Redb(dir, n) => {
                *n += 1;
                HubDb::open(&dir.path().join(format!("hub{n}.redb"))).unwrap()
            }
            Backend::Postgres(cluster, n) => {
                *n += 1;
                let url = cluster.database(&format!("hub{n}")).unwrap();
                HubDb::connect(&url).await.unwrap()
            }
        }
    }
}

async fn submissions_are_idempotent_and_business_keys_unique(db: HubDb) {
    let p = packet(b"one", meta("A", "d1", &["B"], 0, T0));
    assert!(matches!(
        db.submit(p.clone()).await.unwrap(),
        Submitted::New { .. }
    ));
    match db.submit(p).await.unwrap() {
        Submitted::Again { receipt } => assert_eq!(receipt, "receipt for d1"),
        other => panic!("{other:?}"),
    }
    let mut clash = packet(b"two", meta("A", "d1", &["B", "C"], 0, T0));
    clash.meta.receipt = "another receipt".into();
    let err = db.submit(clash).await.unwrap_err();
    assert!(
        matches!(err, HubDbError::DuplicateBusinessKey { ref existing, .. } if *existing == PacketId::of(b"one").to_hex()),
        "{err}"
    );
    // The refused packet left nothing behind.
    assert!(db.packet(PacketId::of(b"two")).await.unwrap().is_none());
    assert!(db.pending("C", 10).await.unwrap().is_empty());
    assert_eq!(db.pending("B", 10).await.unwrap().len(), 1);
    let (bytes, m) = db.packet(PacketId::of(b"one")).await.unwrap().unwrap();
    assert_eq!(bytes, b"one");
    assert_eq!(m.document_id, "d1");
}

async fn urgent_first_and_only_own_packets(db: HubDb) {
    db.submit(packet(b"normal", meta("A", "n", &["B"], 0, T0)))
        .await
        .unwrap();
    db.submit(packet(b"flash", meta("A", "f", &["B", "C"], 3, T0)))
        .await
        .unwrap();
    let pending = db.pending("B", 10).await.unwrap();
    let docs: Vec<_> = pending
        .iter()
        .map(|(_, m)| m.document_id.as_str())
        .collect();
    assert_eq!(docs, ["f", "n"]);
    assert_eq!(
        db.pending("B", 1).await.unwrap().len(),
        1,
        "the limit holds"
    );
    let normal = PacketId::of(b"normal");
    assert!(db.fetch_for("C", normal).await.unwrap().is_none());
    assert_eq!(db.fetch_for("B", normal).await.unwrap().unwrap(), b"normal");
    let summary = db.pending_summary().await.unwrap();
    let b = summary.iter().find(|s| s.recipient == "B").unwrap();
    assert_eq!(b.count, 2);
    assert_eq!(b.oldest_queued_at, Some(ts(T0)));
    let asked = vec![normal, PacketId::of(b"flash"), PacketId::of(b"unknown")];
    let metas = db.metas_for("B", asked).await.unwrap();
    let order: Vec<_> = metas
        .iter()
        .map(|(_, m, _)| m.document_id.as_str())
        .collect();
    assert_eq!(order, ["n", "f"], "in the order asked, unknown left out");
    assert_eq!(metas[1].2.queue_key.0, 1, "hỏa tốc ranks first");
}

async fn deliveries_are_recorded_once_and_receipts_collected(db: HubDb) {
    let id = PacketId::of(b"p");
    db.submit(packet(b"p", meta("A", "d", &["B", "C"], 0, T0)))
        .await
        .unwrap();
    let first = db
        .record_deliveries("B", vec![(id, ts("2026-11-23T00:10:01Z"), "r1".into())])
        .await
        .unwrap();
    assert_eq!(first, vec![(id, "r1".to_string())]);
    let again = db
        .record_deliveries("B", vec![(id, ts("2026-11-23T00:10:02Z"), "r2".into())])
        .await
        .unwrap();
    assert_eq!(again, vec![(id, "r1".to_string())], "first receipt kept");
    assert!(db.pending("B", 10).await.unwrap().is_empty());
    assert_eq!(db.pending("C", 10).await.unwrap().len(), 1);
    let foreign = db
        .record_deliveries("D", vec![(id, ts("2026-11-23T00:10:03Z"), "r".into())])
        .await
        .unwrap();
    assert!(foreign.is_empty(), "D has no delivery row for this packet");
    db.record_deliveries("C", vec![(id, ts("2026-11-23T00:10:04Z"), "rc".into())])
        .await
        .unwrap();
    let receipts = db.receipts_for_sender("A", 0, 10).await.unwrap();
    let who: Vec<_> = receipts
        .iter()
        .map(|r| (r.2.as_str(), r.3.as_str()))
        .collect();
    assert_eq!(who, [("B", "r1"), ("C", "rc")]);
    assert!(receipts[0].0 < receipts[1].0, "in sequence order");
    let after_first = db
        .receipts_for_sender("A", receipts[0].0, 10)
        .await
        .unwrap();
    assert_eq!(after_first.len(), 1);
    db.ack_receipts("A", vec![receipts[0].0]).await.unwrap();
    let left = db.receipts_for_sender("A", 0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].2, "C");
    let history = db.document_history("A", "d").await.unwrap();
    assert_eq!(history.len(), 1);
    let deliveries = &history[0].2;
    assert_eq!(deliveries["B"].receipt.as_deref(), Some("r1"));
    assert_eq!(
        deliveries["B"].delivered_at,
        Some(ts("2026-11-23T00:10:01Z"))
    );
}

async fn statuses_are_filed_under_the_issuer(db: HubDb) {
    db.submit(packet(b"doc", meta("G", "d", &["H"], 0, T0)))
        .await
        .unwrap();
    let mut status = meta("H", "d", &["G"], 0, "2026-11-23T00:11:00Z");
    status.kind = PacketKind::Status;
    status.business_doc_type = None;
    status.status_code = Some(edxml::StatusCode::Accepted);
    db.submit(packet(b"status", status)).await.unwrap();
    let history = db.document_history("G", "d").await.unwrap();
    let kinds: Vec<_> = history.iter().map(|(_, m, _)| m.kind).collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&PacketKind::Status) && kinds.contains(&PacketKind::Document));
    assert!(db.document_history("H", "d").await.unwrap().is_empty());
}

async fn the_ledger_counts_and_finds(db: HubDb) {
    db.submit(packet(
        b"a",
        meta("G", "1", &["B"], 0, "2026-11-23T00:10:00Z"),
    ))
    .await
    .unwrap();
    let mut refused = meta("H", "2", &["B", "C"], 0, "2026-11-23T05:10:00Z");
    refused.refused = vec![("X".into(), "agency is suspended at this hub".into())];
    db.submit(packet(b"b", refused)).await.unwrap();
    db.record_deliveries(
        "B",
        vec![(PacketId::of(b"a"), ts("2026-11-23T00:20:00Z"), "r".into())],
    )
    .await
    .unwrap();
    let traffic = db
        .traffic(
            ts("2026-11-23T00:00:00Z"),
            ts("2026-11-16T00:00:00Z"),
            ts("2026-11-23T06:10:00Z"),
            7,
        )
        .await
        .unwrap();
    assert_eq!((traffic.today, traffic.week), (2, 2));
    assert_eq!(traffic.hours.len(), 7);
    assert_eq!(traffic.hours[0].start, ts("2026-11-23T00:00:00Z"));
    assert_eq!(
        (traffic.hours[0].documents, traffic.hours[0].deliveries),
        (1, 1)
    );
    assert_eq!(
        (traffic.hours[5].documents, traffic.hours[5].deliveries),
        (1, 0)
    );
    let found = db.search(Search::default(), 100).await.unwrap();
    let rows: Vec<_> = found
        .rows
        .iter()
        .map(|r| (r.document_id.as_str(), r.recipient.as_str(), r.state))
        .collect();
    assert_eq!(
        rows,
        [
            ("2", "B", DeliveryState::Pending),
            ("2", "C", DeliveryState::Pending),
            ("2", "X", DeliveryState::Refused),
            ("1", "B", DeliveryState::Delivered),
        ],
        "newest first"
    );
    let text = Search {
        text: "TRÍCH YẾU 1".into(),
        ..Search::default()
    };
    assert_eq!(db.search(text, 100).await.unwrap().rows.len(), 1);
    let refused = Search {
        state: StateFilter::Refused,
        ..Search::default()
    };
    let refused = db.search(refused, 100).await.unwrap();
    assert_eq!(refused.rows.len(), 1);
    assert_eq!(
        refused.rows[0].refusal.as_deref(),
        Some("agency is suspended at this hub")
    );
    let window = Search {
        to_ms: Some(ts("2026-11-23T01:00:00Z").unix_ms()),
        ..Search::default()
    };
    assert_eq!(db.search(window, 100).await.unwrap().rows.len(), 1);
    let limited = db.search(Search::default(), 2).await.unwrap();
    assert!(limited.truncated);
}

fn condition(key: &str) -> Condition {
    Condition {
        key: key.into(),
        kind: AlertKind::Pending,
        agency: Some("B".into()),
        summary: format!("Sự cố {key}"),
        detail: "chi tiết".into(),
    }
}

async fn alerts_open_once_close_once_and_queue_their_mail(db: HubDb) {
    let to = vec!["van-hanh@hub.demo".to_string()];
    let opened = db
        .apply_alerts(vec![condition("pending:B")], to.clone(), None, 1_000)
        .await
        .unwrap();
    assert_eq!(opened.opened, ["pending:B"]);
    let again = db
        .apply_alerts(vec![condition("pending:B")], to.clone(), None, 2_000)
        .await
        .unwrap();
    assert!(again.opened.is_empty() && again.resolved.is_empty());
    assert_eq!(db.alert_counts().await.unwrap(), (1, 1));
    let closed = db
        .apply_alerts(vec![], to.clone(), Some("https://hub/".into()), 3_000)
        .await
        .unwrap();
    assert_eq!(closed.resolved, ["pending:B"]);
    let view = db.alerts_view(10, 10).await.unwrap();
    assert!(view.open.is_empty());
    assert_eq!(view.past.len(), 1);
    assert_eq!(view.past[0].closed_ms, Some(3_000));
    assert_eq!(view.mail_waiting.len(), 2);
    assert!(
        view.mail_waiting[1]
            .mail
            .body
            .contains("https://hub/alerts")
    );
    // The sender's side of the queue.
    let queue = db.mail_queue();
    let (due, _) = queue.due(5_000, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_ne!(due[0].1.message_id, due[1].1.message_id);
    queue
        .mark_failed(due[0].0, "connection refused".into(), 60_000)
        .await
        .unwrap();
    queue.mark_sent(due[1].0).await.unwrap();
    queue.mark_sent(due[1].0).await.unwrap();
    let view = db.alerts_view(10, 10).await.unwrap();
    assert_eq!(view.mail_sent, 1, "sending twice counts once");
    assert_eq!(view.mail_waiting.len(), 1);
    assert_eq!(view.mail_waiting[0].attempts, 1);
    assert_eq!(view.mail_waiting[0].next_attempt_ms, 60_000);
    let (due, next) = queue.due(59_000, 10).await.unwrap();
    assert!(due.is_empty());
    assert_eq!(next, Some(60_000));
}

async fn agencies_are_registered_once_and_changed(db: HubDb) {
    let agency = Agency {
        code: "000.00.00.H41".into(),
        name: "UBND Tỉnh Nghệ An".into(),
        email: None,
        fingerprints: vec!["ab".into()],
        active: true,
        added_at: ts(T0),
    };
    db.add_agency(agency.clone()).await.unwrap();
    assert!(matches!(
        db.add_agency(agency.clone()).await.unwrap_err(),
        HubDbError::AgencyExists(_)
    ));
    let changed = db
        .update_agency("000.00.00.H41", |a| a.active = false)
        .await
        .unwrap();
    assert!(!changed.active);
    assert!(!db.agency("000.00.00.H41").await.unwrap().unwrap().active);
    assert!(matches!(
        db.update_agency("000.00.00.X", |_| {}).await.unwrap_err(),
        HubDbError::UnknownAgency(_)
    ));
    assert_eq!(db.agencies().await.unwrap().len(), 1);
}

async fn small_packets_come_inline_within_the_budget(db: HubDb) {
    // In listing order (all priority 0, oldest first): 40, 300, 50, 30, 20 bytes.
    let sizes = [40usize, 300, 50, 30, 20];
    let mut ids = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let bytes = vec![b'a' + i as u8; *size];
        let mut m = meta("A", &format!("i{i}"), &["B"], 0, T0);
        m.size = *size as u64;
        m.accepted_at = ts(&format!("2026-11-23T00:10:0{i}Z"));
        db.submit(packet(&bytes, m)).await.unwrap();
        ids.push((PacketId::of(&bytes), bytes));
    }
    let budget = InlineBudget {
        packet_bytes: 100,
        listing_bytes: 120,
    };
    let listed = db.pending_inline("B", 10, budget).await.unwrap();
    let order: Vec<PacketId> = listed.iter().map(|p| p.id).collect();
    let expected: Vec<PacketId> = ids.iter().map(|(id, _)| *id).collect();
    assert_eq!(order, expected, "the listing's order is unchanged");
    // 40 fits (40), 300 is too big for inline, 50 fits (90), 30 would make 120: fits, 20
    // would make 140: past the listing's budget, so it is fetched.
    let inline: Vec<bool> = listed.iter().map(|p| p.bytes.is_some()).collect();
    assert_eq!(inline, [true, false, true, true, false]);
    for (p, (_, bytes)) in listed.iter().zip(&ids) {
        if let Some(b) = &p.bytes {
            assert_eq!(b, bytes, "inline bytes are the packet's");
        }
    }
    // Nothing inline without a budget, and another recipient sees nothing.
    let none = db
        .pending_inline("B", 10, InlineBudget::NONE)
        .await
        .unwrap();
    assert!(none.iter().all(|p| p.bytes.is_none()));
    assert!(db.pending_inline("C", 10, budget).await.unwrap().is_empty());
    // Delivered packets leave the listing.
    db.record_deliveries(
        "B",
        vec![(ids[0].0, ts("2026-11-23T00:11:00Z"), "r".into())],
    )
    .await
    .unwrap();
    let after = db.pending_inline("B", 10, budget).await.unwrap();
    assert_eq!(after.len(), 4);
    assert_eq!(after[0].id, ids[1].0);
}

async fn every_rule(mut backend: Backend<'_>) {
    submissions_are_idempotent_and_business_keys_unique(backend.fresh().await).await;
    urgent_first_and_only_own_packets(backend.fresh().await).await;
    small_packets_come_inline_within_the_budget(backend.fresh().await).await;
    deliveries_are_recorded_once_and_receipts_collected(backend.fresh().await).await;
    statuses_are_filed_under_the_issuer(backend.fresh().await).await;
    the_ledger_counts_and_finds(backend.fresh().await).await;
    alerts_open_once_close_once_and_queue_their_mail(backend.fresh().await).await;
    agencies_are_registered_once_and_changed(backend.fresh().await).await;
}

#[tokio::test]
async fn redb_keeps_every_rule() {
    every_rule(Backend::Redb(tempfile::tempdir().unwrap(), 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_keeps_every_rule_and_replicas_race_safely() {
    let cluster = pgtest::Cluster::start().unwrap();
    every_rule(Backend::Postgres(&cluster, 0)).await;
    let url = cluster.database("race").unwrap();
    replicas_race(&url).await;
}

/// Several replicas: each its own pool on the same database.
async fn replicas(url: &str, n: usize) -> Vec<HubDb> {
    // They migrate at once: the schema is applied once.
    let joins: Vec<_> = (0..n)
        .map(|_| {
            let url = url.to_string();
            tokio::spawn(async move { PgHub::connect_with(&url, 4, PgTls::Plain).await })
        })
        .collect();
    let mut out = Vec::new();
    for j in joins {
        out.push(HubDb::from_postgres(j.await.unwrap().unwrap()));
    }
    out
}

async fn replicas_race(url: &str) {
    let dbs = replicas(url, 4).await;

    // The same packet submitted by every replica at once, 20 times over: one New each time,
    // every other answer the same receipt, one delivery row per recipient.
    for round in 0..20u32 {
        let bytes = format!("packet {round}").into_bytes();
        let p = packet(
            &bytes,
            meta("A", &format!("doc{round}"), &["B", "C"], 0, T0),
        );
        let joins: Vec<_> = dbs
            .iter()
            .map(|db| {
                let (db, p) = (db.clone(), p.clone());
                tokio::spawn(async move { db.submit(p).await })
            })
            .collect();
        let mut new = 0;
        for j in joins {
            let receipt = match j.await.unwrap().unwrap() {
                Submitted::New { receipt } => {
                    new += 1;
                    receipt
                }
                Submitted::Again { receipt } => receipt,
            };
            assert_eq!(receipt, format!("receipt for doc{round}"));
        }
        assert_eq!(new, 1, "one replica stored packet {round}");
    }
    let b = dbs[0].pending("B", 500).await.unwrap();
    assert_eq!(b.len(), 20, "one delivery row per packet for B");
    let ids: HashSet<PacketId> = b.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 20);

    // The same business key with other bytes from two replicas: one wins, the other is 409.
    let one = packet(b"x1", meta("A", "clash", &["B"], 0, T0));
    let two = packet(b"x2", meta("A", "clash", &["B"], 0, T0));
    let (r1, r2) = tokio::join!(dbs[0].submit(one), dbs[1].submit(two));
    let wins = [r1.is_ok(), r2.is_ok()];
    assert_eq!(wins.iter().filter(|w| **w).count(), 1, "{r1:?} {r2:?}");

    // Every replica acknowledges B's packets at once, with its own receipts: each delivery
    // keeps one receipt, and A gets exactly one receipt row per delivery.
    let acks: Vec<PacketId> = ids.iter().copied().collect();
    let joins: Vec<_> = dbs
        .iter()
        .enumerate()
        .map(|(i, db)| {
            let db = db.clone();
            let acks: Vec<_> = acks
                .iter()
                .map(|id| {
                    (
                        *id,
                        ts("2026-11-23T00:20:00Z"),
                        format!("receipt by replica {i}"),
                    )
                })
                .collect();
            tokio::spawn(async move { db.record_deliveries("B", acks).await })
        })
        .collect();
    let mut answers = Vec::new();
    for j in joins {
        answers.push(j.await.unwrap().unwrap());
    }
    for id in &acks {
        let kept: HashSet<&String> = answers
            .iter()
            .map(|a| &a.iter().find(|(i, _)| i == id).unwrap().1)
            .collect();
        assert_eq!(kept.len(), 1, "every replica answers the one receipt kept");
    }
    let receipts = dbs[2].receipts_for_sender("A", 0, 500).await.unwrap();
    assert_eq!(receipts.len(), 20, "one receipt row per delivery");
    let seqs: Vec<u64> = receipts.iter().map(|r| r.0).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "dense, in order");
    let left = dbs[3].pending("B", 500).await.unwrap();
    let docs: Vec<&str> = left.iter().map(|(_, m)| m.document_id.as_str()).collect();
    assert_eq!(
        docs,
        ["clash"],
        "only the business-key winner is left for B"
    );
    assert_eq!(dbs[3].pending("C", 500).await.unwrap().len(), 20);

    // Alerts judged by every replica at once: the incident opens once, one mail.
    let to = vec!["van-hanh@hub.demo".to_string()];
    let joins: Vec<_> = dbs
        .iter()
        .map(|db| {
            let (db, to) = (db.clone(), to.clone());
            tokio::spawn(async move {
                db.apply_alerts(vec![condition("silent:C")], to, None, 1_000)
                    .await
            })
        })
        .collect();
    let mut opened = 0;
    for j in joins {
        opened += j.await.unwrap().unwrap().opened.len();
    }
    assert_eq!(opened, 1);
    assert_eq!(dbs[0].alert_counts().await.unwrap(), (1, 1));

    // Each replica saw some polls: every replica learns the latest of each agency.
    dbs[0]
        .share_polls(vec![("H41".into(), 1_000)])
        .await
        .unwrap();
    let mut all = dbs[1]
        .share_polls(vec![("H41".into(), 500), ("H14".into(), 700)])
        .await
        .unwrap();
    all.sort();
    assert_eq!(all, [("H14".to_string(), 700), ("H41".to_string(), 1_000)]);

    // Two senders take what is due at once: the mail goes to one of them.
    let queues: Vec<Arc<dyn mail::queue::MailStore>> = dbs.iter().map(|d| d.mail_queue()).collect();
    let (a, b) = tokio::join!(queues[0].due(10_000, 10), queues[1].due(10_000, 10));
    let (a, b) = (a.unwrap().0, b.unwrap().0);
    assert_eq!(a.len() + b.len(), 1, "leased to one sender");
    let (later, _) = queues[2]
        .due(10_000 + hub::db::pg::MAIL_LEASE_MS, 10)
        .await
        .unwrap();
    assert_eq!(
        later.len(),
        1,
        "a sender that died leaves it to another after the lease"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_verifies_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path().join("pki");
    dsig::pki::init(&pki, &dsig::pki::InitOptions::default()).unwrap();
    let other = dir.path().join("other");
    dsig::pki::init(&other, &dsig::pki::InitOptions::default()).unwrap();
    // The server presents a certificate for 127.0.0.1 issued by the development CA.
    let cluster =
        pgtest::Cluster::start_tls(&pki.join("hub.pem"), &pki.join("hub.key.pem")).unwrap();
    let url = format!("{}?sslmode=require", cluster.database("tls").unwrap());

    let tls = PgTls::from_ca_files(&[pki.join("ca.pem")]).unwrap();
    let db = HubDb::from_postgres(PgHub::connect_with(&url, 2, tls).await.unwrap());
    db.add_agency(Agency {
        code: "000.00.00.H41".into(),
        name: "UBND Tỉnh Nghệ An".into(),
        email: None,
        fingerprints: vec![],
        active: true,
        added_at: ts(T0),
    })
    .await
    .unwrap();
    let encrypted: u64 = cluster
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE s.ssl AND a.datname = 'tls'",
        )
        .unwrap()
        .parse()
        .unwrap();
    assert!(encrypted >= 1, "the hub's connections use TLS");

    // A server whose certificate another CA issued is refused, and so is TLS required
    // without any CA to check the server with.
    let wrong = PgTls::from_ca_files(&[other.join("ca.pem")]).unwrap();
    let err = PgHub::connect_with(&url, 2, wrong).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(PgHub::connect_with(&url, 2, PgTls::Plain).await.is_err());
    // A CA file that is not there is named.
    let missing = PgTls::from_ca_files(&[dir.path().join("nope.pem")]);
    let err = missing
        .err()
        .expect("a missing CA file is an error")
        .to_string();
    assert!(
        err.contains("[store] ca") && err.contains("nope.pem"),
        "{err}"
    );
}
