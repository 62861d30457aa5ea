//! Several `docaxis hub` replicas on one real PostgreSQL (a throwaway cluster made by
//! `docaxis-pgtest`): killed with SIGKILL while packets stream, PostgreSQL itself restarted,
//! the same packet submitted to two replicas at once. Senders and recipients move to the next
//! replica when one does not answer, as nodes do. Every acknowledged packet is delivered, none
//! is stored or delivered twice, and no receipt ever changes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docaxis_e2e::*;
use serde_json::Value;

/// Two replicas of one hub, the state in database `hub` of `cluster`.
fn replicas(tmp: &std::path::Path, pki: &Pki, cluster: &pgtest::Cluster) -> Vec<HubProc> {
    HubProc::replicas_on(tmp, pki, cluster, "")
}

/// Submits `packet` to the replicas in turn, starting with `first`, until one answers with a
/// receipt; a refusal (4xx) fails the test.
async fn submit(client: &reqwest::Client, urls: &[String], first: usize, packet: &[u8]) -> String {
    let mut i = first;
    loop {
        let url = &urls[i % urls.len()];
        let r = client
            .post(format!("{url}/v1/packets"))
            .header("content-type", "application/xml")
            .body(packet.to_vec())
            .send()
            .await;
        match r {
            Ok(r) if r.status().is_success() => {
                let receipt = r.text().await.unwrap_or_default();
                if !receipt.is_empty() {
                    return receipt;
                }
            }
            Ok(r) if r.status().is_client_error() => panic!(
                "packet refused by {url}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            _ => tokio::time::sleep(Duration::from_millis(30)).await,
        }
        i += 1;
    }
}

/// What the recipient saw.
#[derive(Default)]
struct Seen {
    /// Packets it holds the exact bytes of.
    fetched: HashSet<String>,
    /// Packets whose acknowledgement a replica confirmed.
    confirmed: HashSet<String>,
    /// Packets listed again after a confirmed acknowledgement.
    relisted: Vec<String>,
    /// Delivery receipt per packet, as answered (must never change).
    receipts: HashMap<String, String>,
}

/// One round of the recipient at replica `url`: list, fetch, acknowledge. `None` when the
/// replica did not answer (the caller moves to the next one).
async fn drain_once(client: &reqwest::Client, url: &str, seen: &mut Seen) -> Option<usize> {
    let r = client
        .get(format!("{url}/v1/inbox?wait=1&limit=50"))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let list: Value = r.json().await.ok()?;
    let ids: Vec<String> = list["items"]
        .as_array()?
        .iter()
        .filter_map(|i| i["packet_id"].as_str().map(str::to_string))
        .collect();
    for id in &ids {
        if seen.confirmed.contains(id) {
            seen.relisted.push(id.clone());
        }
    }
    if ids.is_empty() {
        return Some(0);
    }
    for id in &ids {
        let r = client
            .get(format!("{url}/v1/packets/{id}"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let bytes = r.bytes().await.ok()?;
        assert_eq!(
            &exchange::packet_id::PacketId::of(&bytes).to_hex(),
            id,
            "fetched bytes are the packet"
        );
        seen.fetched.insert(id.clone());
    }
    let r = client
        .post(format!("{url}/v1/acks"))
        .json(&serde_json::json!({ "packet_ids": ids }))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let acked: Value = r.json().await.ok()?;
    for a in acked["acked"].as_array()? {
        let id = a["packet_id"].as_str()?.to_string();
        let receipt = a["receipt"].as_str().unwrap_or_default().to_string();
        if let Some(before) = seen.receipts.get(&id) {
            assert_eq!(before, &receipt, "a delivery receipt changed for {id}");
        }
        seen.receipts.insert(id.clone(), receipt);
        seen.confirmed.insert(id);
    }
    Some(ids.len())
}

/// The recipient: drains through whichever replica answers until `done` and three idle rounds.
async fn recipient(client: reqwest::Client, urls: Vec<String>, done: Arc<AtomicBool>) -> Seen {
    let mut seen = Seen::default();
    let mut at = 0;
    let mut idle = 0;
    loop {
        match drain_once(&client, &urls[at % urls.len()], &mut seen).await {
            None => {
                at += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(0) if done.load(Ordering::SeqCst) => {
                idle += 1;
                if idle >= 3 {
                    return seen;
                }
                at += 1;
            }
            Some(_) => idle = 0,
        }
    }
}

/// Counts in the shared database: (deliveries, deliveries with a receipt, receipt rows for the
/// sender, distinct packets among those rows).
fn counts(cluster: &pgtest::Cluster) -> (u64, u64, u64, u64) {
    let n = |sql: &str| -> u64 { cluster.psql("hub", sql).unwrap().parse().unwrap() };
    (
        n("SELECT count(*) FROM deliveries"),
        n("SELECT count(*) FROM deliveries WHERE receipt IS NOT NULL"),
        n("SELECT count(*) FROM sender_receipts"),
        n("SELECT count(DISTINCT (packet_id, recipient)) FROM sender_receipts"),
    )
}

/// Sends `packets` from G22 through the replicas (8 at a time, spread over them, each sender
/// pausing `pace` between packets) while `during` runs, and drains them at H41 meanwhile;
/// returns the submission receipts, what the recipient saw, and what `during` returned (the
/// disturbances it made while packets were still being sent: `done` turns true when the last
/// packet was acknowledged).
fn stream(
    pki: &Pki,
    urls: &[String],
    packets: Vec<Vec<u8>>,
    pace: Duration,
    during: impl FnOnce(Arc<AtomicBool>) -> std::thread::JoinHandle<usize>,
) -> (HashMap<String, String>, Seen, usize) {
    let done = Arc::new(AtomicBool::new(false));
    let disturber = during(Arc::clone(&done));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (receipts, seen) = rt.block_on(async {
        let consumer = tokio::spawn(recipient(
            pki.client_as(H41),
            urls.to_vec(),
            Arc::clone(&done),
        ));
        let receipts: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let queue = Arc::new(Mutex::new(packets));
        let turn = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (client, queue, receipts, turn) = (
                pki.client_as(G22),
                Arc::clone(&queue),
                Arc::clone(&receipts),
                Arc::clone(&turn),
            );
            let urls = urls.to_vec();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(p) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let id = exchange::packet_id::PacketId::of(&p).to_hex();
                    let first = turn.fetch_add(1, Ordering::Relaxed);
                    let receipt = submit(&client, &urls, first, &p).await;
                    // A retry elsewhere must get the same receipt: ask the other replica too
                    // now and then.
                    if first % 10 == 0 {
                        let again = submit(&client, &urls, first + 1, &p).await;
                        assert_eq!(again, receipt, "another replica answered another receipt");
                    }
                    receipts.lock().unwrap().insert(id, receipt);
                    tokio::time::sleep(pace).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        done.store(true, Ordering::SeqCst);
        let seen = consumer.await.unwrap();
        let receipts = Arc::try_unwrap(receipts).unwrap().into_inner().unwrap();
        (receipts, seen)
    });
    let disturbances = disturber.join().unwrap();
    (receipts, seen, disturbances)
}

fn packets(pki: &Pki, n: usize, first_number: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            pki.sign_as(
                G22,
                &unsigned_document(G22, &[H41], &format!("{}", first_number + i), None),
            )
        })
        .collect()
}

/// What every stream must show: every packet acknowledged, delivered, once.
fn assert_exactly_once(
    n: usize,
    receipts: &HashMap<String, String>,
    seen: &Seen,
    cluster: &pgtest::Cluster,
    what: &str,
) {
    assert_eq!(receipts.len(), n, "every packet was acknowledged ({what})");
    let sent: HashSet<String> = receipts.keys().cloned().collect();
    let missing: Vec<_> = sent.difference(&seen.fetched).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged packets never delivered ({what}): {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        seen.relisted.is_empty(),
        "packets listed again after a confirmed ack ({what}): {:?}",
        seen.relisted
    );
    let (deliveries, delivered, receipt_rows, distinct) = counts(cluster);
    assert_eq!(deliveries, n as u64, "one delivery row per packet ({what})");
    assert_eq!(
        delivered, n as u64,
        "every delivery has its one receipt ({what})"
    );
    assert_eq!(
        receipt_rows, distinct,
        "no delivery receipt queued twice for the sender ({what})"
    );
}

#[test]
fn two_replicas_one_killed_over_and_over_lose_and_duplicate_nothing() {
    const N: usize = 500;
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let cluster = pgtest::Cluster::start().unwrap();
    let hubs = replicas(tmp.path(), &pki, &cluster);
    let urls: Vec<String> = hubs.iter().map(HubProc::url).collect();

    // The same packet at both replicas at once, ten times: one receipt each time, one
    // delivery row.
    let twins = packets(&pki, 10, 9000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, b) = (pki.client_as(G22), pki.client_as(G22));
        for p in &twins {
            let (ra, rb) = tokio::join!(submit(&a, &urls, 0, p), submit(&b, &urls, 1, p));
            assert_eq!(ra, rb, "two replicas, one packet, one receipt");
        }
    });
    let (deliveries, _, _, _) = counts(&cluster);
    assert_eq!(deliveries, 10, "one delivery row per twin packet");
    let seen = rt.block_on(async {
        let done = Arc::new(AtomicBool::new(true));
        recipient(pki.client_as(H41), urls.clone(), done).await
    });
    assert_eq!(seen.fetched.len(), 10);
    drop(rt);

    // Now 500 more while one replica or the other is killed and restarted at random moments.
    let hubs = Arc::new(Mutex::new(hubs));
    // Paced so that sending lasts a few seconds (about 60 packets per sender, 40 ms apart):
    // long enough for several kills while packets are on their way.
    let pace = Duration::from_millis(40);
    let (receipts, seen, kills) = stream(&pki, &urls, packets(&pki, N, 1000), pace, |done| {
        let hubs = Arc::clone(&hubs);
        std::thread::spawn(move || {
            let mut rng = CrashRng::announce(module_path!());
            let (mut kills, mut after) = (0, 0);
            while after < 3 {
                std::thread::sleep(rng.between_ms(100, 300));
                let victim = (rng.next_u64() % 2) as usize;
                let mut hubs = hubs.lock().unwrap();
                hubs[victim].kill();
                if done.load(Ordering::SeqCst) {
                    after += 1;
                } else {
                    kills += 1;
                }
                // Down for a moment: the other replica carries everything meanwhile.
                std::thread::sleep(rng.between_ms(50, 250));
                hubs[victim].restart();
            }
            kills
        })
    });
    assert!(
        kills >= 3,
        "only {kills} kills while packets were sent; the test proves little"
    );
    let mut all = receipts;
    for (i, p) in twins.iter().enumerate() {
        all.insert(
            exchange::packet_id::PacketId::of(p).to_hex(),
            format!("twin {i}"),
        );
    }
    let mut everything = seen;
    everything.fetched.extend(
        twins
            .iter()
            .map(|p| exchange::packet_id::PacketId::of(p).to_hex()),
    );
    assert_exactly_once(N + 10, &all, &everything, &cluster, "replicas killed");
    eprintln!("replicas killed {kills} times; {N} packets delivered exactly once");
}

#[test]
fn postgres_restarted_during_a_stream_loses_nothing_and_replicas_wake_each_other() {
    const N: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let cluster = Arc::new(pgtest::Cluster::start().unwrap());
    let hubs = replicas(tmp.path(), &pki, &cluster);
    let urls: Vec<String> = hubs.iter().map(HubProc::url).collect();

    // A long poll at replica 2 answers as soon as replica 1 accepts a packet for it (the
    // replicas hear each other through PostgreSQL), not when the wait runs out.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let poller = pki.client_as(H41);
        let at_second = urls[1].clone();
        let poll = tokio::spawn(async move {
            let started = Instant::now();
            let list: Value = poller
                .get(format!("{at_second}/v1/inbox?wait=40&limit=10"))
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (list, started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let p = packets(&pki, 1, 8000).remove(0);
        submit(&pki.client_as(G22), &urls[..1], 0, &p).await;
        let (list, waited) = poll.await.unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
        assert!(
            waited < Duration::from_secs(30),
            "the long poll at the other replica was not woken ({waited:?})"
        );
    });
    let first = rt.block_on(recipient(
        pki.client_as(H41),
        urls.clone(),
        Arc::new(AtomicBool::new(true)),
    ));
    assert_eq!(first.fetched.len(), 1);
    drop(rt);

    // PostgreSQL goes away twice while packets stream (a clean stop, then a crash-like
    // immediate stop), for a second each time.
    // Paced so that sending lasts well past both outages.
    let pg = Arc::clone(&cluster);
    let pace = Duration::from_millis(200);
    let (receipts, seen, restarts) =
        stream(&pki, &urls, packets(&pki, N, 2000), pace, move |done| {
            std::thread::spawn(move || {
                let mut during = 0;
                for fast in [true, false] {
                    std::thread::sleep(Duration::from_millis(700));
                    if !done.load(Ordering::SeqCst) {
                        during += 1;
                    }
                    pg.stop(fast).unwrap();
                    std::thread::sleep(Duration::from_secs(1));
                    pg.restart().unwrap();
                }
                during
            })
        });
    assert_eq!(
        restarts, 2,
        "PostgreSQL went away twice while packets were sent"
    );
    let mut all = receipts;
    let mut everything = seen;
    for id in first.fetched {
        all.insert(id.clone(), String::new());
        everything.fetched.insert(id);
    }
    assert_exactly_once(N + 1, &all, &everything, &cluster, "PostgreSQL restarted");
    for hub in &hubs {
        let (status, _) = hub.admin_get("/metrics");
        assert_eq!(
            status,
            200,
            "replica {} serves after the restarts",
            hub.url()
        );
    }
}

#[test]
fn nodes_move_to_the_next_replica_and_every_document_arrives_once() {
    const DOCS: usize = 12;
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let cluster = pgtest::Cluster::start().unwrap();
    let mut hubs = replicas(tmp.path(), &pki, &cluster);
    // Both nodes list both replicas, in opposite orders: G22 submits to replica 1, H41 polls
    // replica 2, so every document crosses from one replica to the other.
    let list = |a: &HubProc, b: &HubProc| format!("[\"{}\", \"{}\"]", a.url(), b.url());
    let mut g22 = NodeProc::configure(
        &tmp.path().join("g22"),
        &pki,
        G22,
        G22,
        &list(&hubs[0], &hubs[1]),
        "",
    );
    g22.restart();
    let mut h41 = NodeProc::configure(
        &tmp.path().join("h41"),
        &pki,
        H41,
        H41,
        &list(&hubs[1], &hubs[0]),
        "",
    );
    h41.restart();

    let send = |n: usize| {
        let number = format!("{}", 500 + n);
        g22.send(&[
            "--to",
            H41,
            "--subject",
            &format!("Công văn thử chuyển đổi máy chủ {n}"),
            "--number",
            &number,
            "--notation",
            "VPCP-TEST",
        ])["document_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut docs: Vec<String> = (0..DOCS / 2).map(send).collect();
    // Replica 1 dies for good in the middle: G22 moves to replica 2 for what follows (and for
    // anything of the first half still in its outbox).
    hubs[0].kill();
    docs.extend((DOCS / 2..DOCS).map(send));
    // Then replica 2 dies and replica 1 comes back: both nodes move again.
    wait_for(
        "H41 to hold the first documents",
        Duration::from_secs(60),
        || (h41.inbox(&[]).len() >= DOCS / 2).then_some(()),
    );
    hubs[1].kill();
    hubs[0].restart();

    let inbox = wait_for(
        "every document in H41's inbox",
        Duration::from_secs(90),
        || {
            let inbox = h41.inbox(&[]);
            (inbox.len() >= DOCS).then_some(inbox)
        },
    );
    let held: Vec<&str> = inbox
        .iter()
        .map(|i| i["document_id"].as_str().unwrap())
        .collect();
    let distinct: HashSet<&str> = held.iter().copied().collect();
    assert_eq!(held.len(), DOCS, "each document once: {held:?}");
    assert_eq!(distinct.len(), DOCS);
    for d in &docs {
        assert!(distinct.contains(d.as_str()), "{d} missing from {held:?}");
    }
    // The statuses 01 come back to G22 through whichever replica is up.
    for d in &docs {
        wait_for("status 01 back at G22", Duration::from_secs(60), || {
            let t = g22.track(d);
            (t["recipients"][0]["last_status"]["code"] == "01").then_some(())
        });
    }
    let (deliveries, delivered, _, _) = counts(&cluster);
    // Documents to H41 and statuses 01 back to G22: one delivery row each.
    assert_eq!(deliveries, 2 * DOCS as u64);
    assert_eq!(delivered, 2 * DOCS as u64);
    let g22_log = g22.log();
    assert!(
        g22_log.contains(&hubs[1].url()),
        "G22's log says it moved to the second replica:\n{g22_log}"
    );
}

#[test]
fn a_redb_hub_moves_to_postgresql_and_carries_on_where_it_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let mut hub = HubProc::start(&tmp.path().join("hub"), &pki, "");
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hub.url());
    let h41 = NodeProc::start(&tmp.path().join("h41"), &pki, H41, &hub.url());
    let send = |to: &str, n: u32| {
        g22.send(&[
            "--to",
            to,
            "--subject",
            &format!("Công văn trước khi chuyển cơ sở dữ liệu {n}"),
            "--number",
            &n.to_string(),
            "--notation",
            "VPCP-MIG",
        ])["document_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let answered = |doc: &str| {
        wait_for(
            &format!("{doc} delivered and answered 01"),
            Duration::from_secs(60),
            || {
                let t = g22.track(doc);
                let r = &t["recipients"][0];
                (!r["delivered_at"].is_null() && r["last_status"]["code"] == "01").then_some(())
            },
        )
    };
    // Before: two documents to H41 delivered and answered; one to H14 (no node yet) waits.
    let before: Vec<String> = (1..=2).map(|n| send(H41, n)).collect();
    for d in &before {
        answered(d);
    }
    let waiting = send(H14, 3);
    wait_for(
        "the hub accepted the document for H14",
        Duration::from_secs(30),
        || {
            let t = g22.track(&waiting);
            (!t["recipients"][0]["accepted_at"].is_null()).then_some(())
        },
    );
    hub.kill();

    let cluster = pgtest::Cluster::start().unwrap();
    let url = cluster.database("hub").unwrap();
    let config = hub.config.to_str().unwrap().to_string();
    let out = run(&["hub", "--config", &config, "migrate", "--to", &url]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}\n{text}", stderr(&out));
    let row = |table: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{table} ")))
            .unwrap_or_else(|| panic!("no row for {table}:\n{text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    for table in [
        "agencies",
        "packets",
        "deliveries",
        "business_keys",
        "by_document",
    ] {
        let r = row(table);
        assert_eq!(r[1], r[2], "{table} copied whole:\n{text}");
    }
    assert_eq!(row("agencies")[1], "3");
    // Documents and their statuses 01: packets, each routed once.
    assert_eq!(row("packets")[1], "5", "{text}");
    assert!(stderr(&out).contains("copied"), "progress is shown");
    // Into a database that holds a hub already: refused, naming why.
    let again = run(&["hub", "--config", &config, "migrate", "--to", &url]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not empty"), "{}", stderr(&again));

    // The same hub, now on PostgreSQL: what waited is delivered when H14 comes, new documents
    // flow, and G22's receipt cursor carries on (its new documents show as delivered).
    let mut toml = std::fs::read_to_string(&hub.config).unwrap();
    toml.push_str(&format!("\n[store]\npostgres = \"{url}\"\n"));
    std::fs::write(&hub.config, toml).unwrap();
    hub.restart();
    assert!(hub.log().contains("PostgreSQL"), "{}", hub.log());
    let after = send(H41, 4);
    answered(&after);
    let h14 = NodeProc::start(&tmp.path().join("h14"), &pki, H14, &hub.url());
    answered(&waiting);
    assert_eq!(h14.inbox(&[]).len(), 1);
    let held: Vec<String> = h41
        .inbox(&[])
        .iter()
        .map(|i| i["document_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(held.len(), 3, "{held:?}");
    for d in before.iter().chain([&after]) {
        assert!(held.contains(d), "{d} in {held:?}");
    }
    // The hub's record of a document from before the move, read from PostgreSQL.
    let track = hub.admin(&["track", &before[0], "--owner", G22, "--json"]);
    assert!(track.status.success(), "{}", stderr(&track));
    let track: Value = serde_json::from_slice(&track.stdout).unwrap();
    assert!(track.to_string().contains(H41), "{track}");
}

#[test]
fn the_benchmark_runs_on_two_replicas_and_counts_every_delivery_once() {
    let cluster = pgtest::Cluster::start().unwrap();
    let out = run(&[
        "bench",
        "--count",
        "40",
        "--size",
        "1024",
        "--postgres",
        &cluster.url("postgres"),
        "--hub-replicas",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["hub_store"], "postgresql", "{report}");
    assert_eq!(report["hub_replicas"], 2);
    assert_eq!(report["arrived"], 40);
    assert_eq!(report["statuses_back"], 40);
    assert_eq!(report["delivered"], 40, "every document delivered once");
    // The run's own database is dropped afterwards.
    let left = cluster
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'docaxis_bench_%'",
        )
        .unwrap();
    assert_eq!(left, "0");
}

#[test]
fn any_replica_shows_the_whole_hub_and_directory_changes_reach_every_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let shots = std::env::var_os("DOCAXIS_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let cluster = pgtest::Cluster::start().unwrap();
    let hubs = replicas(tmp.path(), &pki, &cluster);
    // G22 sends through replica 1 only; H41 has no node, so its copy waits.
    let g22 = NodeProc::start(&tmp.path().join("g22"), &pki, G22, &hubs[0].url());
    let doc = g22.send(&[
        "--to",
        H41,
        "--subject",
        "Báo cáo qua hai máy chủ trục",
        "--number",
        "21",
        "--notation",
        "VPCP-HA",
    ])["document_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for("the document accepted", Duration::from_secs(60), || {
        let t = g22.track(&doc);
        (!t["recipients"][0]["accepted_at"].is_null()).then_some(())
    });

    // Replica 2's console shows what replica 1 accepted.
    let base = format!("http://{}", hubs[1].admin_addr());
    let token = hubs[1].admin_token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let b = docaxis_e2e::browser::Browser::start().await;
        b.goto(&format!("{base}/login")).await;
        b.fill("#token", &token).await;
        b.click("button[type=submit]").await;
        assert_eq!(b.path().await, "/");
        assert_eq!(b.text("#docs-today").await, "1");
        assert_eq!(b.text("#pending").await, "1");
        assert!(b.text("#store").await.contains("PostgreSQL"));
        b.screenshot(&shots.join("replica-2-overview.png")).await;
        b.goto(&format!("{base}/search?q=21%2FVPCP-HA")).await;
        assert_eq!(
            b.text("#results .subject").await,
            "Báo cáo qua hai máy chủ trục"
        );
        b.click("#results tbody a").await;
        assert_eq!(b.path().await, "/document");
        b.screenshot(&shots.join("replica-2-document.png")).await;
        b.close().await;
    });

    // Suspending H14 through replica 2 reaches replica 1 at once: H14 can no longer submit
    // there.
    let out = hubs[1].admin(&["agency", "suspend", "--code", H14]);
    assert!(out.status.success(), "{}", stderr(&out));
    let packet = pki.sign_as(H14, &unsigned_document(H14, &[G22], "31", None));
    let (status, body) = wait_for(
        "replica 1 to refuse the suspended agency",
        Duration::from_secs(10),
        || {
            let (status, body) = hubs[0].submit_as(&pki, H14, packet.clone());
            (status == 403).then_some((status, body))
        },
    );
    assert!(body.contains("suspended"), "{status} {body}");
}

#[test]
fn a_revocation_published_at_one_replica_applies_at_every_replica() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let cluster = pgtest::Cluster::start().unwrap();
    let url = cluster.database("hub").unwrap();
    let store = format!("trust_reload_secs = 1\n[store]\npostgres = \"{url}\"\n");
    let first = HubProc::start(&tmp.path().join("hub-1"), &pki, &store);
    // Replica 2 runs on another machine: its CRL file is its own copy, which nobody updates.
    let mut second = HubProc::replica(&tmp.path().join("hub-2"), &pki, &store);
    let own_crl = tmp.path().join("hub-2/crl.pem");
    std::fs::copy(pki.crl(), &own_crl).unwrap();
    let toml = std::fs::read_to_string(&second.config)
        .unwrap()
        .replace(s(&pki.crl()), s(&own_crl));
    std::fs::write(&second.config, toml).unwrap();
    second.restart();

    let packet = |n: &str| pki.sign_as(H14, &unsigned_document(H14, &[G22], n, None));
    let (status, body) = second.submit_as(&pki, H14, packet("41"));
    assert_eq!(status, 200, "{body}");

    // The CA revokes H14; only replica 1's machine gets the new CRL file.
    run_ok(&["pki", "revoke", "--dir", s(&pki.dir), "--code", H14]);
    let mut number = 42;
    let (status, body) = wait_for(
        "replica 2 to refuse the revoked agency",
        Duration::from_secs(20),
        || {
            number += 1;
            let (status, body) = second.submit_as(&pki, H14, packet(&number.to_string()));
            (status != 200).then_some((status, body))
        },
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("revoked") || body.contains("no longer trusted"),
        "{body}"
    );
    assert_ne!(
        std::fs::read(&own_crl).unwrap(),
        std::fs::read(pki.crl()).unwrap(),
        "replica 2's file is still the old copy: the revocation came through PostgreSQL"
    );
    drop(first);
}
