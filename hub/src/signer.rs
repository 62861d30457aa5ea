//! The hub's receipt signer: receipts asked for at the same time are signed together, one
//! signature per batch (`dsig::batch`), the way a store commits concurrent writes together.
//!
//! Invariants:
//! - Each caller gets back exactly its receipts, in the order it gave them, each with the
//!   inclusion proof of the batch it was signed in; or the error that batch met.
//! - One batch is signed at a time, on the blocking pool; what is asked for meanwhile forms the
//!   next batch, so a batch grows with the load and an idle hub signs at once (no waiting for
//!   company). A batch holds at most [`MAX_RECEIPTS`] receipts.
//! - Nothing is stored here: the caller commits the signed receipts, and only then answers.

use std::sync::Arc;

use crate::metrics::HubMetrics;
use dsig::SigningIdentity;
use dsig::receipt::HubReceipt;
use tokio::sync::{mpsc, oneshot};

/// Most receipts signed in one batch (an inclusion path is then at most 13 hashes).
pub const MAX_RECEIPTS: usize = 8192;

type Reply = oneshot::Sender<Result<Vec<String>, String>>;

struct Job {
    receipts: Vec<HubReceipt>,
    reply: Reply,
}

/// Hands receipts to the signing task.
pub struct ReceiptSigner {
    tx: mpsc::UnboundedSender<Job>,
}

impl ReceiptSigner {
    /// Starts the signing task on the current runtime.
    /// Each batch signed is observed in `metrics` (`receipt_batch_receipts`).
    pub fn start(identity: Arc<SigningIdentity>, metrics: Arc<HubMetrics>) -> ReceiptSigner {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(identity, metrics, rx));
        ReceiptSigner { tx }
    }

    /// Signs `receipts` (with whatever else is being asked for now); returns them signed, in
    /// order. An error is a sentence for the operator's log.
    pub async fn sign(&self, receipts: Vec<HubReceipt>) -> Result<Vec<String>, String> {
        if receipts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { receipts, reply })
            .map_err(|_| "the receipt signer has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the receipt signer stopped before answering".to_string())?
    }
}

async fn run(
    identity: Arc<SigningIdentity>,
    metrics: Arc<HubMetrics>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut waiting: Option<Job> = None;
    loop {
        let first = match waiting.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut count = first.receipts.len();
        let mut jobs = vec![first];
        while count < MAX_RECEIPTS {
            match rx.try_recv() {
                Ok(job) if count + job.receipts.len() > MAX_RECEIPTS => {
                    waiting = Some(job);
                    break;
                }
                Ok(job) => {
                    count += job.receipts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let (mut sizes, mut replies, mut receipts) = (Vec::new(), Vec::new(), Vec::new());
        for Job {
            receipts: mine,
            reply,
        } in jobs
        {
            sizes.push(mine.len());
            replies.push(reply);
            receipts.extend(mine);
        }
        let identity = Arc::clone(&identity);
        let signed = tokio::task::spawn_blocking(move || {
            let unsigned: Vec<Vec<u8>> = receipts.iter().map(HubReceipt::to_xml).collect();
            let signed =
                dsig::batch::sign_batch(&unsigned, &identity, time::OffsetDateTime::now_utc())
                    .map_err(|e| format!("cannot sign receipts: {e}"))?;
            signed
                .into_iter()
                .map(|r| String::from_utf8(r).map_err(|e| e.to_string()))
                .collect::<Result<Vec<String>, String>>()
        })
        .await
        .unwrap_or_else(|e| Err(format!("the receipt signing task failed: {e}")));
        match signed {
            Ok(all) => {
                metrics.receipt_batch(all.len());
                let mut all = all.into_iter();
                for (n, reply) in sizes.into_iter().zip(replies) {
                    let _ = reply.send(Ok(all.by_ref().take(n).collect()));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsig::batch::{HeadCache, verify_receipt};
    use dsig::receipt::ReceiptKind;

    fn identity() -> (Arc<SigningIdentity>, Vec<u8>) {
        let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../certs");
        let id =
            SigningIdentity::from_pem_files(&certs.join("hub.key.pem"), &certs.join("hub.pem"))
                .unwrap();
        let der = id.chain()[0].clone();
        (Arc::new(id), der)
    }

    fn receipt(caller: usize, i: usize) -> HubReceipt {
        HubReceipt {
            kind: ReceiptKind::Delivery,
            packet_id: format!("{:064x}", caller * 1000 + i),
            packet_kind: "document".into(),
            from: "000.00.00.G22".into(),
            document_id: format!("000.00.00.G22,2026/12/07,{caller}-{i}/VP"),
            hub_time: time::OffsetDateTime::from_unix_timestamp(1_796_000_000).unwrap(),
            accepted: Vec::new(),
            refused: Vec::new(),
            delivered_to: Some("000.00.00.H41".into()),
        }
    }

    /// On one thread, the 40 callers all ask before the signer first runs: they share batches.
    #[tokio::test]
    async fn concurrent_callers_each_get_their_own_receipts_in_order_in_shared_batches() {
        let (id, der) = identity();
        let metrics = Arc::new(HubMetrics::new());
        let signer = Arc::new(ReceiptSigner::start(id, Arc::clone(&metrics)));
        let mut tasks = Vec::new();
        for caller in 0..40 {
            let signer = Arc::clone(&signer);
            tasks.push(tokio::spawn(async move {
                let mine: Vec<HubReceipt> = (0..=caller % 5).map(|i| receipt(caller, i)).collect();
                (mine.clone(), signer.sign(mine).await.unwrap())
            }));
        }
        let cache = HeadCache::default();
        let mut receipts = 0;
        for t in tasks {
            let (asked, got) = t.await.unwrap();
            assert_eq!(asked.len(), got.len());
            for (a, g) in asked.iter().zip(&got) {
                assert_eq!(&verify_receipt(g.as_bytes(), &der, &cache).unwrap(), a);
                receipts += 1;
            }
        }
        assert_eq!(receipts, (0..40).map(|c| c % 5 + 1).sum::<usize>());
        assert!(
            cache.len() < 40,
            "40 callers' receipts in {} batches: concurrent requests were not batched",
            cache.len()
        );
        assert!(signer.sign(Vec::new()).await.unwrap().is_empty());
    }
}
