//! The documents a benchmark sends: clerk API requests (`POST /api/v1/documents`) from the
//! sender to the recipient, each with one attachment of exactly the asked size.
//!
//! Invariants: every document of a run has its own number under a notation unique to the run,
//! so no two share a business key, at the hub or across runs on the same folder; attachment
//! bytes are pseudo-random (incompressible, like a scanned PDF) and reproducible from the seed
//! and the index, so building a request costs no entropy and no I/O.

use base64::Engine as _;
use serde_json::{Value, json};

/// Builds the requests of one run.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    notation: String,
    recipient: String,
    size: usize,
    seed: u64,
}

impl Workload {
    /// Documents to `recipient` with `size`-byte attachments (none when `size` is 0), numbered
    /// under a notation made from `tag` (letters and digits).
    pub(crate) fn new(recipient: &str, size: usize, tag: &str) -> Workload {
        let seed = tag.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Workload {
            notation: format!("BENCH-{tag}"),
            recipient: recipient.to_string(),
            size,
            seed,
        }
    }

    /// The request for document `index` (0-based).
    pub(crate) fn request(&self, index: usize) -> Value {
        let number = index + 1;
        let mut req = json!({
            "to": [self.recipient],
            "subject": format!("Văn bản thử tải số {number} (docaxis bench)"),
            "code": {"number": number.to_string(), "notation": self.notation},
            "priority": 0,
        });
        if self.size > 0 {
            let data = pseudo_random(self.seed ^ (index as u64), self.size);
            req["attachments"] = json!([{
                "name": format!("tai-lieu-{number}.bin"),
                "content_type": "application/octet-stream",
                "data": base64::engine::general_purpose::STANDARD.encode(data),
            }]);
        }
        req
    }
}

/// `len` bytes from a SplitMix64 stream seeded with `seed`.
fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use edxml::{AgencyCode, Organization};
    use node::outgoing::{SendDocument, compose_document};

    #[test]
    fn requests_compose_into_distinct_documents_with_exact_attachments() {
        let w = Workload::new("000.00.00.H41", 10_240, "T1");
        let me = Organization::new(
            AgencyCode::parse_strict("000.00.00.G22").unwrap(),
            "Văn phòng Chính phủ",
        );
        let a: SendDocument = serde_json::from_value(w.request(0)).unwrap();
        let b: SendDocument = serde_json::from_value(w.request(1)).unwrap();
        let a = compose_document(&a, &me).unwrap();
        let b = compose_document(&b, &me).unwrap();
        assert_ne!(a.document_id, b.document_id);
        assert_eq!(a.attachments.len(), 1);
        let bytes = a.attachments[0].decoded().unwrap();
        assert_eq!(bytes.len(), 10_240);
        assert_ne!(bytes, b.attachments[0].decoded().unwrap());
        // Reproducible.
        assert_eq!(w.request(0), w.request(0));

        let none = Workload::new("000.00.00.H41", 0, "T1").request(0);
        assert!(none.get("attachments").is_none());
    }
}
