//! Crashes during a stream of documents between two real agency nodes, through the real hub,
//! over real mutual TLS: every document acknowledged to the clerk is delivered exactly once,
//! answered exactly once with status 01, and tracked as such by the sender.
//!
//! "Acknowledged" means the sender node's clerk API answered `201 {document_id, packet_id}`
//! (the node answers only once the signed packet is durably queued). The clerk API is called
//! directly (the token from `data_dir/api.token`) so that hundreds of documents stream in a
//! few seconds; what is checked afterwards is read back through the same API.
//!
//! 1. The hub is SIGKILLed and restarted at random moments while 500 documents are sent and
//!    delivered (and their 01 statuses travel back).
//! 2. The recipient's node is SIGKILLed and restarted at random moments while it receives a
//!    stream. The node commits a packet (with its status 01) before acknowledging it to the
//!    hub, so a kill between the two leaves a packet the hub offers again: the node must
//!    acknowledge it without storing it twice or answering it twice. The node offers no way to
//!    inject a crash at exactly that point, so the test kills at random during a high-rate
//!    stream, and reads the node's log to show that the window was hit: every run's log has one
//!    `inbox: document received` line per packet stored and one `inbox: acknowledged
//!    acknowledged=N` line per acknowledgement (batch); an acknowledgement covering more
//!    packets than its batch stored is the hub re-offering packets the node already had.
//!    Documents keep streaming until that happened a few times (bounded).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docaxis_e2e::*;
use serde_json::{Value, json};

/// Documents in the hub-crash stream.
const DOCUMENTS: usize = 500;
/// The recipient-crash stream: at least this many documents, at most `MAX_STREAM`.
const MIN_STREAM: usize = 150;
const MAX_STREAM: usize = 600;
/// Concurrent clerk API calls.
const SENDERS: usize = 4;
/// Generous bound on delivery after the last kill (2 cores shared with other tests in CI).
const SETTLE: Duration = Duration::from_secs(75);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn request(to: &str, number: usize) -> Value {
    json!({
        "to": [to],
        "subject": format!("Văn bản trong luồng thử nghiệm số {number}"),
        "code": {"number": number.to_string(), "notation": "LUONG"},
        "priority": number % 3,
    })
}

/// Sends documents numbered from the shared counter with `SENDERS` concurrent clerks until
/// `more()` says stop or `max` were sent; returns document id → packet id of every document
/// the node acknowledged. A send the node refuses fails the test (nothing here should be
/// refused).
async fn stream(
    api: &NodeApi,
    to: &str,
    max: usize,
    more: impl Fn(usize) -> bool + Send + Sync + 'static,
) -> HashMap<String, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let more = Arc::new(more);
    let mut tasks = Vec::new();
    for _ in 0..SENDERS {
        let (api, next, acked, more, to) = (
            api.clone(),
            Arc::clone(&next),
            Arc::clone(&acked),
            Arc::clone(&more),
            to.to_string(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= max || !more(n) {
                    break;
                }
                let sent = api
                    .send(&request(&to, 1000 + n))
                    .await
                    .unwrap_or_else(|e| panic!("document {n} not acknowledged: {e}"));
                let doc = sent["document_id"].as_str().unwrap().to_string();
                let packet = sent["packet_id"].as_str().unwrap().to_string();
                let previous = acked.lock().unwrap().insert(doc.clone(), packet);
                assert!(previous.is_none(), "document id {doc} acknowledged twice");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(acked).unwrap().into_inner().unwrap()
}

/// How many of `expected` the sender's outbox shows delivered with a status 01.
async fn answered(sender: &NodeApi, expected: &HashMap<String, String>) -> usize {
    let Ok(items) = sender
        .items("/api/v1/outbox?kind=document&limit=5000")
        .await
    else {
        return 0;
    };
    items
        .iter()
        .filter(|i| {
            let r = &i["recipients"][0];
            expected.contains_key(i["document_id"].as_str().unwrap())
                && r["delivered_at"].is_string()
                && r["last_status"]["code"] == "01"
        })
        .count()
}

/// Waits until the sender's outbox shows every expected document delivered and answered 01.
async fn wait_all_answered(sender: &NodeApi, expected: &HashMap<String, String>, what: &str) {
    let start = Instant::now();
    loop {
        let n = answered(sender, expected).await;
        if n == expected.len() {
            return;
        }
        assert!(
            start.elapsed() < SETTLE,
            "{what}: after {SETTLE:?} only {n} of {} documents are delivered and answered 01",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The facts both crash tests end with: the recipient holds each acknowledged document exactly
/// once (same packet), nothing else; the sender received exactly one status 01 per document and
/// tracks each as delivered once and answered once.
async fn assert_exactly_once(
    sender: &NodeApi,
    recipient: &NodeApi,
    recipient_code: &str,
    acked: &HashMap<String, String>,
) {
    let inbox = recipient
        .items("/api/v1/inbox?kind=all&limit=5000")
        .await
        .unwrap();
    let packets: Vec<&str> = inbox
        .iter()
        .map(|i| i["packet_id"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = packets.iter().copied().collect();
    assert_eq!(
        packets.len(),
        distinct.len(),
        "the recipient's inbox holds a packet twice"
    );
    let docs: HashMap<&str, &str> = inbox
        .iter()
        .map(|i| {
            (
                i["document_id"].as_str().unwrap(),
                i["packet_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(docs.len(), inbox.len(), "a document id stored twice");
    let missing: Vec<&String> = acked
        .keys()
        .filter(|d| !docs.contains_key(d.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged documents never reached the recipient, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let extra: Vec<&&str> = docs.keys().filter(|d| !acked.contains_key(**d)).collect();
    assert!(extra.is_empty(), "unexpected documents received: {extra:?}");
    for (doc, packet) in acked {
        assert_eq!(
            docs[doc.as_str()],
            packet,
            "{doc} arrived as another packet"
        );
    }

    // One status 01 per document at the sender, applied to its tracking.
    let statuses = sender
        .items("/api/v1/inbox?kind=status&limit=5000")
        .await
        .unwrap();
    let mut per_doc: HashMap<&str, usize> = HashMap::new();
    for s in &statuses {
        assert_eq!(s["from"], recipient_code);
        assert_eq!(s["status_code"], "01");
        assert_eq!(s["state"], "applied", "{s:#}");
        *per_doc
            .entry(s["document_id"].as_str().unwrap())
            .or_default() += 1;
    }
    let twice: Vec<_> = per_doc.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "statuses 01 received more than once: {twice:?}"
    );
    assert_eq!(per_doc.len(), acked.len(), "one status 01 per document");

    // Tracking: each document accepted, delivered and answered exactly once.
    for doc in acked.keys() {
        let t = sender.track(doc).await.unwrap();
        assert_eq!(t["state"], "submitted", "{t:#}");
        assert_eq!(t["summary"], "1/1 accepted, 1/1 delivered", "{t:#}");
        let events: Vec<&str> = t["recipients"][0]["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        for needle in ["accepted by the hub", "delivered:", "status 01"] {
            assert_eq!(
                events.iter().filter(|e| e.starts_with(needle)).count(),
                1,
                "{doc}: {events:?}"
            );
        }
    }
}

/// G22's clerk sends 500 documents to H41 through the node API while a thread SIGKILLs and
/// restarts the hub every 0.15–0.7 s (during the sending, and three more times after the last
/// document was acknowledged, while deliveries, receipts and 01 statuses are still moving),
/// then leaves it up. Once G22's outbox shows all 500 delivered and answered: the documents
/// acknowledged to the clerk are exactly those in H41's inbox, none twice, each answered by one
/// status 01 and tracked as delivered once.
#[test]
fn hub_killed_repeatedly_every_acknowledged_document_is_delivered_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let url = hub.url();
    let hub = Arc::new(Mutex::new(hub));
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &url);
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &url);
    let (sender, recipient) = (g22.api(), h41.api());

    // The killer: random kills while documents are sent and delivered, three more after the
    // last one was acknowledged to the clerk, then the hub is left up.
    let sending_done = Arc::new(AtomicBool::new(false));
    let complete = Arc::new(AtomicBool::new(false));
    let killer = {
        let (hub, sending_done, complete) = (
            Arc::clone(&hub),
            Arc::clone(&sending_done),
            Arc::clone(&complete),
        );
        std::thread::spawn(move || {
            let mut rng = CrashRng::announce(module_path!());
            let (mut kills, mut after_sending) = (0, 0);
            while after_sending < 3 {
                // Often enough that a fast machine (500 documents through in about 3 s) still
                // sees several kills while documents are on their way; each kill also slows
                // the delivery down, widening the window.
                std::thread::sleep(rng.between_ms(150, 700));
                if complete.load(Ordering::SeqCst) {
                    break;
                }
                let mut h = hub.lock().unwrap();
                h.kill();
                kills += 1;
                if sending_done.load(Ordering::SeqCst) {
                    after_sending += 1;
                }
                h.restart();
            }
            kills
        })
    };

    let started = Instant::now();
    let acked = runtime().block_on(async {
        let acked = stream(&sender, H41, DOCUMENTS, |_| true).await;
        sending_done.store(true, Ordering::SeqCst);
        let sent_in = started.elapsed();
        wait_all_answered(&sender, &acked, "hub killed repeatedly").await;
        complete.store(true, Ordering::SeqCst);
        eprintln!(
            "{} documents acknowledged in {sent_in:?}, all delivered and answered 01 after {:?}",
            acked.len(),
            started.elapsed()
        );
        acked
    });
    let kills = killer.join().unwrap();
    assert_eq!(acked.len(), DOCUMENTS, "every send was acknowledged");
    assert!(
        kills >= 3,
        "the hub was killed only {kills} times while documents were on their way: the test \
         proves little"
    );
    runtime().block_on(assert_exactly_once(&sender, &recipient, H41, &acked));

    let hub = hub.lock().unwrap();
    let retries = g22.log().matches("outbox: will retry").count();
    eprintln!(
        "hub killed {kills} times while documents were on their way; G22 retried submissions \
         {retries} times; hub log: {} packets accepted, {} resubmissions answered with the \
         original receipt",
        hub.log().matches("packet accepted").count(),
        hub.log()
            .matches("resubmission: original receipt returned")
            .count(),
    );
}

/// What one run of the recipient's node did, read from its log.
#[derive(Debug, Default, Clone, Copy)]
struct RunAcks {
    /// Packets newly stored (`inbox: document received`).
    stored: usize,
    /// Acknowledgements the hub answered (`inbox: acknowledged`).
    acks: usize,
    /// Packets acknowledged although not stored in their batch: the hub offered them again
    /// after an earlier run had stored them.
    reoffered: usize,
    /// Packets stored after the last acknowledgement (for a killed run: stored but never
    /// acknowledged by that run).
    pending: usize,
    /// Acknowledgements that got no answer from the hub.
    ack_failures: usize,
}

fn run_acks(run: &str) -> RunAcks {
    let mut r = RunAcks::default();
    for line in run.lines() {
        if line.contains("inbox: document received") {
            r.stored += 1;
            r.pending += 1;
        } else if line.contains("inbox: acknowledged ") {
            let n: usize = line
                .split("acknowledged=")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|digits| digits.parse().ok())
                .unwrap_or_else(|| panic!("unexpected log line: {line}"));
            r.acks += 1;
            r.reoffered += n.saturating_sub(r.pending);
            r.pending = 0;
        } else if line.contains("inbox: acknowledgement failed") {
            r.ack_failures += 1;
            r.pending = 0;
        }
    }
    r
}

/// Totals over all runs; `killed_pending` sums the pending packets of every run but the last
/// (those runs were killed).
#[derive(Debug, Default, Clone, Copy)]
struct AckWindow {
    stored: usize,
    reoffered: usize,
    killed_pending: usize,
    kills_in_window: usize,
    ack_failures: usize,
}

fn ack_window(runs: &[String]) -> AckWindow {
    let mut w = AckWindow::default();
    for (i, run) in runs.iter().enumerate() {
        let r = run_acks(run);
        w.stored += r.stored;
        w.reoffered += r.reoffered;
        w.ack_failures += r.ack_failures;
        if i + 1 < runs.len() && r.pending > 0 {
            w.killed_pending += r.pending;
            w.kills_in_window += 1;
        }
    }
    w
}

/// Polls `f` every 20 ms until it holds or `deadline` passes.
fn until(deadline: Instant, mut f: impl FnMut() -> bool) -> bool {
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The recipient's node is killed (SIGKILL) and restarted over and over while documents stream
/// to it. Kills alternate between two kinds:
/// - targeted: once the run has acknowledged at least one batch (so every run makes progress),
///   the killer waits for the next `inbox: document received` line (a packet committed, its
///   batch not yet acknowledged) and kills 0–100 ms later, inside the batch;
/// - blind: 200–1500 ms after the restart, wherever the node is (starting, polling, fetching,
///   verifying, committing, acknowledging).
///
/// Then: every acknowledged document is in the recipient's inbox exactly once, the sender got
/// exactly one status 01 for each and tracks each as delivered once; the log shows the hub
/// re-offered packets the node had already committed.
#[test]
fn recipient_killed_between_commit_and_acknowledgement_stores_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let (sender, recipient) = (g22.api(), h41.api());
    let h41 = Arc::new(Mutex::new(h41));

    // The killer stops after at least 8 kills once the hub re-offered stored packets at least
    // 3 times (or after 30 kills, or 60 s); the stream lasts as long as the killer does.
    let enough = Arc::new(AtomicBool::new(false));
    let killer = {
        let (h41, enough) = (Arc::clone(&h41), Arc::clone(&enough));
        std::thread::spawn(move || {
            let mut rng = CrashRng::announce(module_path!());
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut kills = 0;
            loop {
                let mut node = h41.lock().unwrap();
                if kills % 2 == 0 {
                    let in_window = until(deadline, || {
                        let run = node.log_runs().pop().unwrap_or_default();
                        let r = run_acks(&run);
                        r.acks >= 1 && r.pending >= 1
                    });
                    if !in_window {
                        break;
                    }
                    // Soon: the node acknowledges a batch once it is stored, and a kill after
                    // the hub took the acknowledgement (but before the node logged it) hits
                    // nothing.
                    std::thread::sleep(rng.between_ms(0, 100));
                } else {
                    std::thread::sleep(rng.between_ms(200, 1500));
                }
                node.kill();
                kills += 1;
                node.restart();
                let w = ack_window(&node.log_runs());
                if (kills >= 8 && w.reoffered >= 3) || kills >= 30 || Instant::now() > deadline {
                    break;
                }
            }
            enough.store(true, Ordering::SeqCst);
            kills
        })
    };

    let started = Instant::now();
    let rt = runtime();
    let acked = rt.block_on(async {
        let stop = Arc::clone(&enough);
        stream(&sender, H41, MAX_STREAM, move |n| {
            n < MIN_STREAM || !stop.load(Ordering::SeqCst)
        })
        .await
    });
    let sent_in = started.elapsed();
    let kills = killer.join().unwrap();
    rt.block_on(wait_all_answered(
        &sender,
        &acked,
        "recipient killed repeatedly",
    ));
    eprintln!(
        "{} documents acknowledged in {sent_in:?}; all delivered and answered 01 after {:?}",
        acked.len(),
        started.elapsed()
    );
    rt.block_on(assert_exactly_once(&sender, &recipient, H41, &acked));

    let w = ack_window(&h41.lock().unwrap().log_runs());
    eprintln!(
        "recipient killed {kills} times, {} of them with packets committed but not acknowledged \
         ({} packets); the hub re-offered {} already-stored packets, each acknowledged without \
         being stored again; {} documents stored for {} sent; {} acknowledgements failed",
        w.kills_in_window,
        w.killed_pending,
        w.reoffered,
        w.stored,
        acked.len(),
        w.ack_failures
    );
    assert!(
        w.stored <= acked.len(),
        "the node logged {} new documents for {} sent: something was stored twice",
        w.stored,
        acked.len()
    );
    assert!(
        w.reoffered >= 1 && w.kills_in_window >= 1,
        "in {kills} kills the window between commit and acknowledgement was never hit: the test \
         proves little ({w:?})"
    );
}

/// 3. The hub as two replicas on PostgreSQL: one replica or the other is SIGKILLed and
///    restarted at random moments while 500 documents go from G22 to H41 through the real
///    nodes, which list both replicas (each in its own order) and move to the other when one
///    does not answer. Every document acknowledged to the clerk is delivered exactly once,
///    answered exactly once with status 01 and tracked as such, whichever replica took what.
#[test]
fn hub_replicas_killed_repeatedly_every_acknowledged_document_is_delivered_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let cluster = pgtest::Cluster::start().unwrap();
    let hubs = HubProc::replicas_on(tmp.path(), &pki, &cluster, "");
    let (a, b) = (hubs[0].url(), hubs[1].url());
    let g22 = NodeProc::start(
        &tmp.path().join("g22"),
        &pki,
        G22,
        &format!("[\"{a}\", \"{b}\"]"),
    );
    let h41 = NodeProc::start(
        &tmp.path().join("h41"),
        &pki,
        H41,
        &format!("[\"{b}\", \"{a}\"]"),
    );
    let (sender, recipient) = (g22.api(), h41.api());
    let hubs = Arc::new(Mutex::new(hubs));

    // One replica down at a time, for a moment, while documents are sent and delivered; three
    // more kills after the last one was acknowledged to the clerk; then both are left up.
    let sending_done = Arc::new(AtomicBool::new(false));
    let complete = Arc::new(AtomicBool::new(false));
    let killer = {
        let (hubs, sending_done, complete) = (
            Arc::clone(&hubs),
            Arc::clone(&sending_done),
            Arc::clone(&complete),
        );
        std::thread::spawn(move || {
            let mut rng = CrashRng::announce(module_path!());
            let (mut kills, mut after_sending) = (0, 0);
            while after_sending < 3 {
                std::thread::sleep(rng.between_ms(150, 700));
                if complete.load(Ordering::SeqCst) {
                    break;
                }
                let victim = (rng.next_u64() % 2) as usize;
                let mut hubs = hubs.lock().unwrap();
                hubs[victim].kill();
                kills += 1;
                if sending_done.load(Ordering::SeqCst) {
                    after_sending += 1;
                }
                std::thread::sleep(rng.between_ms(50, 400));
                hubs[victim].restart();
            }
            kills
        })
    };

    let started = Instant::now();
    let acked = runtime().block_on(async {
        let acked = stream(&sender, H41, DOCUMENTS, |_| true).await;
        sending_done.store(true, Ordering::SeqCst);
        wait_all_answered(&sender, &acked, "hub replicas killed repeatedly").await;
        complete.store(true, Ordering::SeqCst);
        acked
    });
    let kills = killer.join().unwrap();
    eprintln!(
        "{} documents through two replicas, {kills} kills, all delivered and answered 01 after {:?}",
        acked.len(),
        started.elapsed()
    );
    assert_eq!(acked.len(), DOCUMENTS, "every send was acknowledged");
    assert!(
        kills >= 3,
        "replicas were killed only {kills} times while documents were on their way: the test \
         proves little"
    );
    runtime().block_on(assert_exactly_once(&sender, &recipient, H41, &acked));
    // At the hub: one delivery row per document and per status 01, each with one receipt.
    let count = |sql: &str| cluster.psql("hub", sql).unwrap();
    assert_eq!(
        count("SELECT count(*) FROM deliveries"),
        (2 * DOCUMENTS).to_string()
    );
    assert_eq!(
        count("SELECT count(*) FROM deliveries WHERE receipt IS NOT NULL"),
        (2 * DOCUMENTS).to_string()
    );
}
