//! Nothing acknowledged is lost when the hub is killed with SIGKILL, over and over, while
//! packets stream through it; and an acknowledged delivery never comes back.
//!
//! A sender submits 500 signed packets with retries while another thread kills and restarts
//! the real `docaxis hub` process at random moments. A recipient polls, fetches and
//! acknowledges at the same time. At the end every packet the hub acknowledged (receipt) has
//! been delivered, the receipt returned for a packet never changes across crashes, and no
//! packet whose acknowledgement the hub confirmed is ever listed again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docaxis_e2e::*;
use serde_json::Value;

const PACKETS: usize = 500;

#[test]
fn hub_killed_repeatedly_loses_nothing_and_never_redelivers_an_acknowledged_packet() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(&tmp.path().join("pki"));
    let hub = Arc::new(Mutex::new(HubProc::start(
        &tmp.path().join("hub"),
        &pki,
        "",
    )));
    let url = hub.lock().unwrap().url();

    let packets: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| {
            pki.sign_as(
                G22,
                &unsigned_document(G22, &[H41], &format!("{}", 1000 + i), None),
            )
        })
        .collect();

    // The killer runs while packets are sent, then kills 3 more times while they are drained,
    // then leaves the hub up so the recipient can finish.
    let done_sending = Arc::new(AtomicBool::new(false));
    let killer = {
        let hub = Arc::clone(&hub);
        let done_sending = Arc::clone(&done_sending);
        std::thread::spawn(move || {
            let mut kills = 0;
            let mut kills_after_sending = 0;
            let mut rng = CrashRng::announce(module_path!());
            while kills_after_sending < 3 {
                std::thread::sleep(rng.between_ms(150, 550));
                let mut h = hub.lock().unwrap();
                h.kill();
                kills += 1;
                if done_sending.load(Ordering::SeqCst) {
                    kills_after_sending += 1;
                }
                h.restart();
            }
            kills
        })
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (receipts, delivered, redelivered) = rt.block_on(async {
        let sender = pki.client_as(G22);
        let recipient = pki.client_as(H41);

        // Recipient: poll, fetch, ack; remember what the hub confirmed as delivered.
        let consumer = {
            let url = url.clone();
            let done_sending = Arc::clone(&done_sending);
            tokio::spawn(async move {
                // Fetched = the recipient holds the exact bytes (a node commits them before it
                // acknowledges); confirmed = the hub answered the acknowledgement.
                let mut fetched: HashSet<String> = HashSet::new();
                let mut confirmed: HashSet<String> = HashSet::new();
                let mut relisted: Vec<String> = Vec::new();
                let mut idle_rounds = 0;
                loop {
                    let list = match recipient
                        .get(format!("{url}/v1/inbox?wait=1&limit=50"))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                        _ => None,
                    };
                    let Some(list) = list else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let ids: Vec<String> = list["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["packet_id"].as_str().unwrap().to_string())
                        .collect();
                    if ids.is_empty() {
                        if done_sending.load(Ordering::SeqCst) {
                            idle_rounds += 1;
                            if idle_rounds >= 3 {
                                break;
                            }
                        }
                        continue;
                    }
                    idle_rounds = 0;
                    for id in &ids {
                        if confirmed.contains(id) {
                            relisted.push(id.clone());
                        }
                    }
                    let ok = async {
                        for id in &ids {
                            let r = recipient
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
                            fetched.insert(id.clone());
                        }
                        let r = recipient
                            .post(format!("{url}/v1/acks"))
                            .json(&serde_json::json!({ "packet_ids": ids }))
                            .send()
                            .await
                            .ok()?;
                        if !r.status().is_success() {
                            return None;
                        }
                        r.json::<Value>().await.ok()
                    }
                    .await;
                    if let Some(acked) = ok {
                        for a in acked["acked"].as_array().unwrap() {
                            confirmed.insert(a["packet_id"].as_str().unwrap().to_string());
                        }
                    }
                }
                (fetched, relisted)
            })
        };

        // Sender: every packet until the hub acknowledges it with a receipt; 8 at a time.
        let receipts: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let mut tasks = Vec::new();
        let queue = Arc::new(Mutex::new(packets));
        for _ in 0..8 {
            let sender = sender.clone();
            let queue = Arc::clone(&queue);
            let receipts = Arc::clone(&receipts);
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Some(p) = queue.lock().unwrap().pop() else {
                        break;
                    };
                    let id = exchange::packet_id::PacketId::of(&p).to_hex();
                    loop {
                        let r = sender
                            .post(format!("{url}/v1/packets"))
                            .header("content-type", "application/xml")
                            .body(p.clone())
                            .send()
                            .await;
                        match r {
                            Ok(r) if r.status().is_success() => {
                                let receipt = r.text().await.unwrap_or_default();
                                if receipt.is_empty() {
                                    continue; // connection cut mid-answer: retry
                                }
                                let mut all = receipts.lock().unwrap();
                                if let Some(prev) = all.get(&id) {
                                    assert_eq!(prev, &receipt, "a retry got a different receipt");
                                }
                                all.insert(id.clone(), receipt);
                                break;
                            }
                            Ok(r) if r.status().is_client_error() => {
                                panic!(
                                    "packet refused: {} {}",
                                    r.status(),
                                    r.text().await.unwrap_or_default()
                                )
                            }
                            _ => tokio::time::sleep(Duration::from_millis(30)).await,
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        done_sending.store(true, Ordering::SeqCst);
        let (fetched, relisted) = consumer.await.unwrap();
        let receipts = Arc::try_unwrap(receipts).unwrap().into_inner().unwrap();
        (receipts, fetched, relisted)
    });
    let kills = killer.join().unwrap();

    assert!(
        kills >= 3,
        "the hub was killed only {kills} times; the test proves little"
    );
    assert_eq!(
        receipts.len(),
        PACKETS,
        "every packet was eventually acknowledged by the hub"
    );
    let sent: HashSet<String> = receipts.keys().cloned().collect();
    let missing: Vec<_> = sent.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged packets never delivered (hub killed {kills} times): {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        redelivered.is_empty(),
        "packets listed again after a confirmed ack: {redelivered:?}"
    );
    eprintln!(
        "hub killed {kills} times; all {PACKETS} acknowledged packets fetched, none listed again after a confirmed ack"
    );
}
