//! Tests of the node database: state transitions, atomicity of receive + status 01,
//! duplicates, tracking.

use super::*;
use dsig::receipt::{HubReceipt, ReceiptKind, RefusedRecipient};
use exchange::ActionRef;

fn open() -> (tempfile::TempDir, NodeDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = NodeDb::open(&dir.path().join("node.redb")).unwrap();
    (dir, db)
}

fn outgoing(bytes: &[u8], doc: &str, to: &[&str], now: u64) -> Outgoing {
    let mut entry = OutboxEntry::queued(
        PacketKind::Document,
        doc.into(),
        to.iter().map(|s| s.to_string()).collect(),
        0,
        now,
    );
    entry.subject = Some("S".into());
    Outgoing {
        id: PacketId::of(bytes),
        bytes: bytes.to_vec(),
        entry,
    }
}

fn inbox_entry(kind: PacketKind, from: &str, doc: &str) -> InboxEntry {
    InboxEntry {
        kind,
        from: from.into(),
        from_name: "Name".into(),
        document_id: doc.into(),
        subject: None,
        code: None,
        priority: 0,
        status_code: None,
        received_at: Timestamp::now(),
        state: InboxState::New,
        signer_subject: "CN=x".into(),
        signer_agency: Some(from.into()),
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

fn receipt(id: PacketId, accepted: &[&str], refused: &[(&str, &str)]) -> HubReceipt {
    HubReceipt {
        kind: ReceiptKind::Submission,
        packet_id: id.to_hex(),
        packet_kind: "document".into(),
        from: "A".into(),
        document_id: "d".into(),
        hub_time: time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap(),
        accepted: accepted.iter().map(|s| s.to_string()).collect(),
        refused: refused
            .iter()
            .map(|(c, r)| RefusedRecipient {
                code: c.to_string(),
                reason: r.to_string(),
            })
            .collect(),
        delivered_to: None,
    }
}

#[tokio::test]
async fn outbox_state_transitions_and_queue_index() {
    let (_d, db) = open();
    let out = outgoing(b"p1", "d1", &["B", "C"], 1_000);
    let id = out.id;
    db.commit_outgoing(out).await.unwrap();
    assert_eq!(db.counts().await.unwrap().outbox_queued, 1);

    // Not due before its time; due at its time.
    let due = db.due(999, 10, Default::default()).await.unwrap();
    assert!(due.ready.is_empty());
    assert_eq!(due.next_ms, Some(1_000));
    let due = db.due(1_000, 10, Default::default()).await.unwrap();
    assert_eq!(due.ready.len(), 1);
    // In-flight entries are skipped.
    let due = db.due(1_000, 10, [id].into()).await.unwrap();
    assert!(due.ready.is_empty() && due.next_ms.is_none());

    // A transient failure moves it in the queue.
    let e = db
        .record_attempt(
            id,
            Attempt::Retry {
                error: "hub unreachable".into(),
                next_ms: 5_000,
            },
        )
        .await
        .unwrap();
    assert_eq!((e.state, e.attempts), (OutboxState::Queued, 1));
    let due = db.due(4_999, 10, Default::default()).await.unwrap();
    assert!(due.ready.is_empty());
    assert_eq!(due.next_ms, Some(5_000));

    // Accepted: out of the queue, receipt and per-recipient acceptance stored.
    let r = receipt(id, &["B"], &[("C", "not registered")]);
    let e = db
        .record_attempt(
            id,
            Attempt::Submitted {
                receipt: r,
                xml: "<r/>".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!((e.state, e.attempts), (OutboxState::Submitted, 2));
    assert_eq!(e.receipt.as_deref(), Some("<r/>"));
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.outbox_queued, counts.outbox_submitted), (0, 1));
    let sent = db.track("d1".into()).await.unwrap().unwrap();
    let rows: std::collections::BTreeMap<_, _> = sent.recipients.into_iter().collect();
    assert!(rows["B"].accepted_at.is_some());
    assert_eq!(rows["C"].refused.as_deref(), Some("not registered"));
    assert!(rows["C"].accepted_at.is_none());

    // A late failure report does not undo the acceptance.
    let e = db
        .record_attempt(id, Attempt::Failed { error: "x".into() })
        .await
        .unwrap();
    assert_eq!(e.state, OutboxState::Submitted);
}

#[tokio::test]
async fn duplicate_document_ids_are_refused_unless_the_first_failed() {
    let (_d, db) = open();
    let first = outgoing(b"p1", "d1", &["B"], 1);
    let first_id = first.id;
    db.commit_outgoing(first).await.unwrap();
    let err = db
        .commit_outgoing(outgoing(b"p2", "d1", &["B"], 2))
        .await
        .unwrap_err();
    assert!(
        matches!(err, NodeDbError::DuplicateDocument { state, .. } if state == "queued"),
        "{err}"
    );
    // The refused packet left nothing behind.
    assert!(db.packet(PacketId::of(b"p2")).await.unwrap().is_none());
    assert_eq!(db.counts().await.unwrap().outbox_queued, 1);

    db.record_attempt(
        first_id,
        Attempt::Failed {
            error: "hub refused: schema".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(db.counts().await.unwrap().outbox_failed, 1);
    db.commit_outgoing(outgoing(b"p3", "d1", &["B"], 3))
        .await
        .unwrap();
    let tracked = db.track("d1".into()).await.unwrap().unwrap();
    assert_eq!(tracked.id, PacketId::of(b"p3"));
}

#[tokio::test]
async fn a_received_document_is_stored_once_with_its_status_01() {
    let (_d, db) = open();
    let mut answer = outgoing(b"status01", "doc", &["A"], 10);
    answer.entry.kind = PacketKind::Status;
    answer.entry.status_code = Some(edxml::StatusCode::Received);
    let inc = IncomingDocument {
        id: PacketId::of(b"doc-packet"),
        bytes: b"doc-packet".to_vec(),
        entry: inbox_entry(PacketKind::Document, "A", "doc"),
        answer: answer.clone(),
    };
    assert_eq!(
        db.receive_document(inc.clone()).await.unwrap(),
        Received::New { matched: true }
    );
    // Both the inbox entry and the 01 (bytes + queued outbox row) are there.
    let (entry, bytes) = db.inbox_entry(inc.id).await.unwrap().unwrap();
    assert_eq!(bytes, b"doc-packet");
    assert_eq!(entry.answered_with, Some(answer.id.to_hex()));
    assert_eq!(db.packet(answer.id).await.unwrap().unwrap(), b"status01");
    let due = db.due(u64::MAX, 10, Default::default()).await.unwrap();
    assert_eq!(due.ready.len(), 1);
    assert_eq!(due.ready[0].0, answer.id);
    assert_eq!(
        due.ready[0].1.status_code,
        Some(edxml::StatusCode::Received)
    );

    // Offered again (even with a freshly signed 01): nothing new.
    let mut again = inc.clone();
    again.answer = outgoing(b"another01", "doc", &["A"], 11);
    again.answer.entry.kind = PacketKind::Status;
    assert_eq!(
        db.receive_document(again).await.unwrap(),
        Received::AlreadyThere
    );
    assert!(
        db.packet(PacketId::of(b"another01"))
            .await
            .unwrap()
            .is_none()
    );
    let counts = db.counts().await.unwrap();
    assert_eq!((counts.inbox_new, counts.outbox_queued), (1, 1));
    let listed = db.inbox_list(InboxFilter::default(), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let by_from = db
        .inbox_list(
            InboxFilter {
                from: Some("A".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_from.len(), 1);
    let other = db
        .inbox_list(
            InboxFilter {
                from: Some("Z".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert!(other.is_empty());
}

#[tokio::test]
async fn statuses_apply_to_tracking_or_become_anomalies() {
    let (_d, db) = open();
    let out = outgoing(b"p1", "d1", &["B"], 1);
    let doc_id = out.id;
    db.commit_outgoing(out).await.unwrap();
    let status = |bytes: &[u8], from: &str, doc: &str, code: &str, time: &str| {
        let mut entry = inbox_entry(PacketKind::Status, from, doc);
        entry.status_code = Some(edxml::StatusCode::parse(code).unwrap());
        IncomingStatus {
            id: PacketId::of(bytes),
            bytes: bytes.to_vec(),
            entry,
            event: StatusEvent {
                code: code.into(),
                time: time.parse().unwrap(),
                staff: None,
                description: None,
                packet_id: PacketId::of(bytes).to_hex(),
                received_at: Timestamp::now(),
                by_us: false,
            },
        }
    };
    let s3 = status(b"s3", "B", "d1", "03", "2026-01-01T10:00:00Z");
    let s1 = status(b"s1", "B", "d1", "01", "2026-01-01T09:00:00Z");
    assert_eq!(
        db.receive_status(s3.clone()).await.unwrap(),
        Received::New { matched: true }
    );
    assert_eq!(
        db.receive_status(s1).await.unwrap(),
        Received::New { matched: true }
    );
    assert_eq!(db.receive_status(s3).await.unwrap(), Received::AlreadyThere);
    let sent = db.sent_packet(doc_id).await.unwrap().unwrap();
    let row = &sent.recipients[0].1;
    assert_eq!(row.statuses.len(), 2);
    assert_eq!(row.last_status().unwrap().code, "03", "latest by timestamp");

    // Unknown document, and a known document from a non-recipient.
    let unknown = status(b"s4", "B", "nope", "01", "2026-01-01T09:00:00Z");
    assert_eq!(
        db.receive_status(unknown).await.unwrap(),
        Received::New { matched: false }
    );
    let stranger = status(b"s5", "Z", "d1", "01", "2026-01-01T09:00:00Z");
    assert_eq!(
        db.receive_status(stranger).await.unwrap(),
        Received::New { matched: false }
    );
    let anomalies = db.anomalies(10).await.unwrap();
    assert_eq!(anomalies.len(), 2);
    assert!(
        anomalies
            .iter()
            .any(|a| a.reason.contains("never sent") && a.subject == PacketId::of(b"s4").to_hex())
    );
    assert!(
        anomalies
            .iter()
            .any(|a| a.reason.contains("did not send to Z"))
    );
    let (e, _) = db.inbox_entry(PacketId::of(b"s5")).await.unwrap().unwrap();
    assert_eq!(e.state, InboxState::Unmatched);
}

#[tokio::test]
async fn deliveries_and_anomaly_counts() {
    let (_d, db) = open();
    let out = outgoing(b"p1", "d1", &["B"], 1);
    let id = out.id;
    db.commit_outgoing(out).await.unwrap();
    assert!(
        db.record_delivery(
            id,
            "B".into(),
            "2026-01-01T00:00:01Z".parse().unwrap(),
            "r1".into()
        )
        .await
        .unwrap()
    );
    assert!(
        !db.record_delivery(
            id,
            "B".into(),
            "2026-01-01T00:00:02Z".parse().unwrap(),
            "r2".into()
        )
        .await
        .unwrap(),
        "first receipt kept"
    );
    let err = db
        .record_delivery(
            id,
            "Z".into(),
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "r".into(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NodeDbError::NotRecipient { .. }), "{err}");
    let err = db
        .record_delivery(
            PacketId::of(b"x"),
            "B".into(),
            "2026-01-01T00:00:00Z".parse().unwrap(),
            "r".into(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NodeDbError::NotOurs(_)), "{err}");
    let row = db.track("d1".into()).await.unwrap().unwrap().recipients;
    assert_eq!(
        row[0]
            .1
            .delivered_at
            .map(|t| t.to_string())
            .map(|t| t.to_string())
            .as_deref(),
        Some("2026-01-01T00:00:01Z")
    );

    db.record_anomaly("receipts", "seq 7", None, "bad signature")
        .await
        .unwrap();
    db.record_anomaly("receipts", "seq 7", None, "bad signature")
        .await
        .unwrap();
    let a = db.anomalies(10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].count, 2);
    assert_eq!(db.counts().await.unwrap().anomalies, 1);
}

fn event(code: &str, time: &str, packet: &str, by_us: bool) -> StatusEvent {
    StatusEvent {
        code: code.into(),
        time: time.parse().unwrap(),
        staff: None,
        description: None,
        packet_id: packet.into(),
        received_at: Timestamp::now(),
        by_us,
    }
}

fn incoming_status(bytes: &[u8], from: &str, doc: &str, code: &str, time: &str) -> IncomingStatus {
    let mut entry = inbox_entry(PacketKind::Status, from, doc);
    entry.status_code = Some(edxml::StatusCode::parse(code).unwrap());
    IncomingStatus {
        id: PacketId::of(bytes),
        bytes: bytes.to_vec(),
        entry,
        event: event(code, time, &PacketId::of(bytes).to_hex(), false),
    }
}

#[tokio::test]
async fn statuses_out_of_order_give_the_furthest_state_and_nonsense_is_an_anomaly() {
    let (_d, db) = open();
    db.commit_outgoing(outgoing(b"p1", "d1", &["B"], 1))
        .await
        .unwrap();
    // Arrival order 05, 03, 01, 02 (nonsense after 03), 05 again.
    for (bytes, code, time) in [
        (&b"s5"[..], "05", "2026-01-01T10:02:00Z"),
        (b"s3", "03", "2026-01-01T10:01:00Z"),
        (b"s1", "01", "2026-01-01T10:00:00Z"),
        (b"s2", "02", "2026-01-01T10:03:00Z"),
        (b"s5bis", "05", "2026-01-01T10:04:00Z"),
    ] {
        let r = db
            .receive_status(incoming_status(bytes, "B", "d1", code, time))
            .await
            .unwrap();
        assert_eq!(r, Received::New { matched: true }, "{code}");
    }
    let sent = db.track("d1".into()).await.unwrap().unwrap();
    let row = &sent.recipients[0].1;
    assert_eq!(row.statuses.len(), 5, "everything is kept for the timeline");
    let replay = replay_statuses(&row.statuses);
    assert_eq!(replay.lifecycle.state_name(), "processing");
    let anomalies = db.anomalies(10).await.unwrap();
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    assert_eq!(anomalies[0].source, "lifecycle");
    assert_eq!(anomalies[0].subject, PacketId::of(b"s2").to_hex());
    assert!(
        anomalies[0].reason.contains("exclude each other"),
        "{anomalies:?}"
    );
}

#[tokio::test]
async fn clerk_statuses_follow_the_rules_inside_the_transaction() {
    let (_d, db) = open();
    // A received document from A, answered with 01.
    let mut entry = inbox_entry(PacketKind::Document, "A", "d9");
    entry
        .statuses
        .push(event("01", "2026-01-01T09:00:00Z", "a01", true));
    let answer = outgoing(b"a01", "d9", &["A"], 1);
    let mut answer = answer;
    answer.entry.kind = PacketKind::Status;
    let doc = PacketId::of(b"doc9");
    db.receive_document(IncomingDocument {
        id: doc,
        bytes: b"doc9".to_vec(),
        entry,
        answer,
    })
    .await
    .unwrap();
    assert_eq!(db.counts().await.unwrap().inbox_new, 1);
    let status = |bytes: &[u8], code: &str, time: &str| {
        let mut out = outgoing(bytes, "d9", &["A"], 2);
        out.entry.kind = PacketKind::Status;
        OutgoingStatus {
            event: event(code, time, &out.id.to_hex(), true),
            out,
        }
    };
    let err = db
        .commit_received_status(
            doc,
            "000.00.00.H41".into(),
            status(b"c05", "05", "2026-01-01T09:01:00Z"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, NodeDbError::Transition(_)), "{err}");
    assert!(
        db.packet(PacketId::of(b"c05")).await.unwrap().is_none(),
        "nothing stored"
    );
    let ok = db
        .commit_received_status(
            doc,
            "000.00.00.H41".into(),
            status(b"c03", "03", "2026-01-01T09:02:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        ok,
        StatusCommit::Sent {
            packet_id: PacketId::of(b"c03").to_hex(),
            state: "accepted".into()
        }
    );
    assert_eq!(db.counts().await.unwrap().inbox_new, 0, "no longer new");
    let again = db
        .commit_received_status(
            doc,
            "000.00.00.H41".into(),
            status(b"c03bis", "03", "2026-01-01T09:03:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        StatusCommit::Repeat {
            packet_id: PacketId::of(b"c03").to_hex(),
            state: "accepted".into()
        }
    );
    assert!(db.packet(PacketId::of(b"c03bis")).await.unwrap().is_none());
    let accepted = db
        .inbox_list(
            InboxFilter {
                business: Some("accepted".into()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(accepted.len(), 1);

    // A take-back request (13) from A applies to the received document.
    let r = db
        .receive_status(incoming_status(
            b"t13",
            "A",
            "d9",
            "13",
            "2026-01-01T09:04:00Z",
        ))
        .await
        .unwrap();
    assert_eq!(r, Received::New { matched: true });
    let (e, _) = db.inbox_entry(doc).await.unwrap().unwrap();
    assert_eq!(e.business_state(), ("accepted".to_string(), true));
    db.commit_received_status(
        doc,
        "000.00.00.H41".into(),
        status(b"c15", "15", "2026-01-01T09:05:00Z"),
    )
    .await
    .unwrap();
    let (e, _) = db.inbox_entry(doc).await.unwrap().unwrap();
    assert_eq!(e.business_state(), ("taken_back".to_string(), false));
    // A 13 about a document never received from that sender is unmatched.
    let r = db
        .receive_status(incoming_status(
            b"t13x",
            "Z",
            "d9",
            "13",
            "2026-01-01T09:04:00Z",
        ))
        .await
        .unwrap();
    assert_eq!(r, Received::New { matched: false });
}

/// A document received from A under `id` (answered with 01 packet `answer`), optionally a
/// revoke/update/replace request.
fn received_from_a(
    bytes: &[u8],
    id: &str,
    answer: &[u8],
    action: Option<ActionRef>,
) -> IncomingDocument {
    let mut entry = inbox_entry(PacketKind::Document, "A", id);
    entry.statuses.push(event(
        "01",
        "2026-01-01T09:00:00Z",
        &PacketId::of(answer).to_hex(),
        true,
    ));
    entry.action = action;
    let mut out = outgoing(answer, id, &["A"], 1);
    out.entry.kind = PacketKind::Status;
    IncomingDocument {
        id: PacketId::of(bytes),
        bytes: bytes.to_vec(),
        entry,
        answer: out,
    }
}

/// This node's status `code` (packet `bytes`) at `time`, back to A.
fn clerk_status(bytes: &[u8], code: &str, time: &str) -> OutgoingStatus {
    let mut out = outgoing(bytes, "x", &["A"], 2);
    out.entry.kind = PacketKind::Status;
    OutgoingStatus {
        event: event(code, time, &out.id.to_hex(), true),
        out,
    }
}

#[tokio::test]
async fn agreeing_to_a_request_marks_the_original_not_the_request() {
    let (_d, db) = open();
    // The original, then a revoke from a system that gave it the original's own id.
    db.receive_document(received_from_a(b"orig", "d7", b"o01", None))
        .await
        .unwrap();
    let revoke = ActionRef {
        kind: exchange::lifecycle::ActionKind::Revoke,
        original: "d7".into(),
        reason: Some("nhầm".into()),
        added: vec![],
        removed: vec![],
    };
    db.receive_document(received_from_a(b"revoke", "d7", b"r01", Some(revoke)))
        .await
        .unwrap();
    assert_eq!(db.counts().await.unwrap().inbox_new, 2);
    let (e, _) = db
        .inbox_entry(PacketId::of(b"revoke"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        e.business_state(),
        ("new".to_string(), true),
        "the request waits"
    );
    let agreed = clerk_status(b"r15", "15", "2026-01-01T09:05:00Z");
    let done = db
        .commit_received_status(PacketId::of(b"revoke"), "B".into(), agreed)
        .await
        .unwrap();
    assert!(matches!(done, StatusCommit::Sent { ref state, .. } if state == "agreed"));
    let (original, _) = db
        .inbox_entry(PacketId::of(b"orig"))
        .await
        .unwrap()
        .unwrap();
    let mark = original.mark.expect("the original is marked");
    assert_eq!((mark.state.as_str(), mark.closed), ("revoked", true));
    assert_eq!(mark.by_packet, PacketId::of(b"revoke").to_hex());
    let (request, _) = db
        .inbox_entry(PacketId::of(b"revoke"))
        .await
        .unwrap()
        .unwrap();
    assert!(request.mark.is_none());
    assert_eq!(
        db.counts().await.unwrap().inbox_new,
        0,
        "neither is new any more"
    );
    // Nothing but repeats on the revoked original.
    let accept = clerk_status(b"o03", "03", "2026-01-01T09:06:00Z");
    let err = db
        .commit_received_status(PacketId::of(b"orig"), "B".into(), accept)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the document was revoked"),
        "{err}"
    );
    assert!(db.packet(PacketId::of(b"o03")).await.unwrap().is_none());
}

#[tokio::test]
async fn a_closing_mark_overrides_updated_and_an_overtaken_original_is_marked_on_arrival() {
    use exchange::lifecycle::ActionKind;
    let (_d, db) = open();
    let request = |kind, original: &str| ActionRef {
        kind,
        original: original.into(),
        reason: None,
        added: vec![],
        removed: vec![],
    };
    // Update agreed, then revoke agreed: the original ends revoked and closed.
    db.receive_document(received_from_a(b"o", "d1", b"o01", None))
        .await
        .unwrap();
    db.receive_document(received_from_a(
        b"u",
        "d1#update-1",
        b"u01",
        Some(request(ActionKind::Update, "d1")),
    ))
    .await
    .unwrap();
    db.receive_document(received_from_a(
        b"r",
        "d1#revoke-1",
        b"r01",
        Some(request(ActionKind::Revoke, "d1")),
    ))
    .await
    .unwrap();
    for (req, bytes, time) in [
        (
            b"u" as &[u8],
            b"u15" as &'static [u8],
            "2026-01-01T09:01:00Z",
        ),
        (b"r", b"r15", "2026-01-01T09:02:00Z"),
    ] {
        db.commit_received_status(
            PacketId::of(req),
            "B".into(),
            clerk_status(bytes, "15", time),
        )
        .await
        .unwrap();
    }
    let (o, _) = db.inbox_entry(PacketId::of(b"o")).await.unwrap().unwrap();
    let m = o.mark.unwrap();
    assert_eq!((m.state.as_str(), m.closed), ("revoked", true));

    // A revoke that overtook its original and was agreed: the original is marked on arrival.
    db.receive_document(received_from_a(
        b"r2",
        "d2#revoke-1",
        b"r201",
        Some(request(ActionKind::Revoke, "d2")),
    ))
    .await
    .unwrap();
    db.commit_received_status(
        PacketId::of(b"r2"),
        "B".into(),
        clerk_status(b"r215", "15", "2026-01-01T09:03:00Z"),
    )
    .await
    .unwrap();
    db.receive_document(received_from_a(b"o2", "d2", b"o201", None))
        .await
        .unwrap();
    let (o2, _) = db.inbox_entry(PacketId::of(b"o2")).await.unwrap().unwrap();
    let m = o2.mark.expect("marked on arrival");
    assert_eq!(
        (m.state.as_str(), m.by_document.as_str()),
        ("revoked", "d2#revoke-1")
    );
    assert_eq!(
        db.counts().await.unwrap().inbox_new,
        0,
        "nothing left as new"
    );
}

/// Receives a document `name` from A, with its 01; returns its packet id.
async fn receive(db: &NodeDb, name: &str, at: u64) -> PacketId {
    let mut answer = outgoing(format!("01 for {name}").as_bytes(), name, &["A"], at);
    answer.entry.kind = PacketKind::Status;
    answer.entry.status_code = Some(edxml::StatusCode::Received);
    let mut entry = inbox_entry(PacketKind::Document, "A", name);
    entry.received_at = Timestamp::from_unix_ms(at);
    let inc = IncomingDocument {
        id: PacketId::of(name.as_bytes()),
        bytes: name.as_bytes().to_vec(),
        entry,
        answer,
    };
    db.receive_document(inc.clone()).await.unwrap();
    inc.id
}

#[tokio::test]
async fn each_legacy_system_settles_its_own_list_and_fail_cannot_loop_for_ever() {
    let (_d, db) = open();
    let a = receive(&db, "a", 1_000).await;
    let b = receive(&db, "b", 2_000).await;
    let pending = |system: &str, now: u64| {
        let db = db.clone();
        let system = system.to_string();
        async move {
            db.legacy_pending(system, PacketKind::Document, 100, now)
                .await
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(pending("s1", 0).await, vec![a, b]);
    // `done` settles it for that system only.
    assert_eq!(
        db.legacy_update("s1".into(), a, "DONE".into(), 0)
            .await
            .unwrap(),
        LegacyUpdate::Done
    );
    assert_eq!(pending("s1", 0).await, vec![b]);
    assert_eq!(pending("s2", 0).await, vec![a, b]);
    // Another status is noted and changes nothing.
    assert_eq!(
        db.legacy_update("s1".into(), b, "processing".into(), 0)
            .await
            .unwrap(),
        LegacyUpdate::Noted
    );
    assert_eq!(pending("s1", 0).await, vec![b]);
    // `fail`: hidden for a growing while, then set aside for good, with an anomaly.
    let mut now = 10_000;
    for (n, minutes) in RETRY_MINUTES
        .iter()
        .take(MAX_FAILS as usize - 1)
        .enumerate()
    {
        let r = db
            .legacy_update("s1".into(), b, "fail".into(), now)
            .await
            .unwrap();
        assert_eq!(
            r,
            LegacyUpdate::RetryAfter {
                until_ms: now + minutes * 60_000,
                fails: n as u32 + 1
            }
        );
        assert!(
            pending("s1", now + 1).await.is_empty(),
            "hidden after fail {}",
            n + 1
        );
        now += minutes * 60_000;
        assert_eq!(pending("s1", now).await, vec![b], "listed again");
    }
    assert_eq!(
        db.legacy_update("s1".into(), b, "fail".into(), now)
            .await
            .unwrap(),
        LegacyUpdate::SetAside { fails: MAX_FAILS }
    );
    assert!(pending("s1", u64::MAX).await.is_empty());
    assert!(
        db.anomalies(10)
            .await
            .unwrap()
            .iter()
            .any(|a| a.source == "legacy" && a.reason.contains("fail"))
    );
    // Settled stays settled; an unknown packet is refused.
    assert_eq!(
        db.legacy_update("s1".into(), a, "fail".into(), now)
            .await
            .unwrap(),
        LegacyUpdate::Done
    );
    assert!(matches!(
        db.legacy_update("s1".into(), PacketId::of(b"nothing"), "done".into(), 0)
            .await,
        Err(NodeDbError::NotInInbox(_))
    ));
    // A new arrival after the settled prefix is listed (the cursor moved only over settled).
    let c = receive(&db, "c", 3_000).await;
    assert_eq!(pending("s1", now).await, vec![c]);
}
