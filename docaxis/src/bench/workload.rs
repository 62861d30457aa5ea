//! The documents a benchmark sends: clerk API requests (`POST /api/v1/documents`) from the
//! sender to the recipient, each with one attachment of exactly the asked size.
//!
//! Invariants: every document of a run has its own number under a notation unique to the run,
//! so no two share a business key, at the hub or across runs on the same folder; attachment
//! bytes are pseudo-random (incompressible, like a scanned PDF) and reproducible from the seed
//! and the index, so building a request costs no entropy and no I/O.

use base64::Engine as _;
use serde_json::json;

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

    /// The JSON body of the request for document `index` (0-based), built in one buffer of
    /// exactly its size: the attachment's base64 is written straight into it from the
    /// pseudo-random stream, so a big document is held once by the bench's clerk (a `Value`
    /// and its serialisation held it twice, and the raw bytes a third time while encoding,
    /// all counted in the process's peak memory with the parties').
    pub(crate) fn request_body(&self, index: usize) -> Vec<u8> {
        let number = index + 1;
        let head = json!({
            "to": [self.recipient],
            "subject": format!("Văn bản thử tải số {number} (docaxis bench)"),
            "code": {"number": number.to_string(), "notation": self.notation},
            "priority": 0,
        });
        let mut body = head.to_string();
        if self.size == 0 {
            return body.into_bytes();
        }
        let attachment = json!({
            "name": format!("tai-lieu-{number}.bin"),
            "content_type": "application/octet-stream",
        })
        .to_string();
        // `{…}` becomes `{…,"attachments":[{…,"data":"<base64>"}]}`.
        let encoded_len = self.size.div_ceil(3) * 4;
        body.pop();
        let mut out = String::with_capacity(body.len() + attachment.len() + encoded_len + 64);
        out.push_str(&body);
        out.push_str(",\"attachments\":[");
        out.push_str(&attachment[..attachment.len() - 1]);
        out.push_str(",\"data\":\"");
        let mut stream = SplitMix64::new(self.seed ^ (index as u64));
        // Whole groups of three bytes per chunk, so the chunks' encodings concatenate.
        let mut chunk = vec![0u8; 3 * 16 * 1024];
        let mut left = self.size;
        while left > 0 {
            let n = left.min(chunk.len());
            stream.fill(&mut chunk[..n]);
            base64::engine::general_purpose::STANDARD.encode_string(&chunk[..n], &mut out);
            left -= n;
        }
        out.push_str("\"}]}");
        out.into_bytes()
    }
}

/// A SplitMix64 stream: reproducible, incompressible bytes at memory speed.
struct SplitMix64 {
    state: u64,
    /// Bytes of the last word not handed out yet.
    spare: [u8; 8],
    spare_len: usize,
}

impl SplitMix64 {
    fn new(seed: u64) -> SplitMix64 {
        SplitMix64 {
            state: seed,
            spare: [0; 8],
            spare_len: 0,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)).to_le_bytes()
    }

    /// Fills `out` with the stream's next bytes; successive calls continue the stream.
    fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            if self.spare_len == 0 {
                self.spare = self.next_word();
                self.spare_len = 8;
            }
            let from = 8 - self.spare_len;
            let n = self.spare_len.min(out.len() - i);
            out[i..i + n].copy_from_slice(&self.spare[from..from + n]);
            self.spare_len -= n;
            i += n;
        }
    }
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
        let a: SendDocument = serde_json::from_slice(&w.request_body(0)).unwrap();
        let b: SendDocument = serde_json::from_slice(&w.request_body(1)).unwrap();
        let a = compose_document(&a, &me).unwrap();
        let b = compose_document(&b, &me).unwrap();
        assert_ne!(a.document_id, b.document_id);
        assert_eq!(a.attachments.len(), 1);
        let bytes = a.attachments[0].decoded().unwrap();
        assert_eq!(bytes.len(), 10_240);
        assert_ne!(bytes, b.attachments[0].decoded().unwrap());
        // Reproducible, and one buffer of exactly its size.
        let body = w.request_body(0);
        assert_eq!(body, w.request_body(0));
        assert!(body.capacity() - body.len() <= 64);

        let none: serde_json::Value =
            serde_json::from_slice(&Workload::new("000.00.00.H41", 0, "T1").request_body(0))
                .unwrap();
        assert!(none.get("attachments").is_none());
        assert_eq!(none["to"][0], "000.00.00.H41");
    }

    #[test]
    fn the_stream_is_the_same_whatever_the_chunking() {
        // Sizes that are not multiples of the chunk nor of three, so both the base64 groups
        // and the stream's words straddle chunk boundaries.
        for size in [1, 2, 3, 7, 49_153, 3 * 16 * 1024 + 5] {
            let w = Workload::new("000.00.00.H41", size, "T2");
            let doc: SendDocument = serde_json::from_slice(&w.request_body(3)).unwrap();
            let me = Organization::new(
                AgencyCode::parse_strict("000.00.00.G22").unwrap(),
                "Văn phòng Chính phủ",
            );
            let bytes = compose_document(&doc, &me).unwrap().attachments[0]
                .decoded()
                .unwrap();
            let mut whole = vec![0u8; size];
            SplitMix64::new(w.seed ^ 3).fill(&mut whole);
            assert_eq!(bytes, whole, "size {size}");
            let mut pieces = vec![0u8; size];
            let mut s = SplitMix64::new(w.seed ^ 3);
            for part in pieces.chunks_mut(5) {
                s.fill(part);
            }
            assert_eq!(pieces, whole, "size {size}");
        }
    }
}
