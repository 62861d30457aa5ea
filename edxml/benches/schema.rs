//! Timing and memory of `docaxis_edxml::schema::validate` on large packets.
//!
//! `cargo bench -p docaxis --bench schema` prints, for each case: packet size, wall time per
//! validation (min and median of several runs), the peak heap REQUESTED during one validation
//! (counted by a wrapping global allocator, on top of the input itself) and the growth of the
//! resident set (Linux VmHWM after resetting it). The two differ because uppsala's parser
//! reserves room for input-length/14 nodes up front, most of which is never touched. When
//! `xmllint` is installed, it is timed on the same file for comparison (process start and
//! schema compilation included).
//!
//! Cases: a valid strict document packet with two attachments totalling ~20 MB and ~64 MB of
//! base64; the same with one bad date in the header; and hostile packets that put a large
//! text early and many unexpected elements after it (uppsala locates every error by rescanning
//! the input from its start, which `docaxis_edxml::schema` avoids, see its module documentation).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use docaxis_edxml::schema::{SchemaError, SchemaKind, validate};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Deterministic pseudo-random base64 text of `len` characters (a multiple of 4).
fn base64_text(len: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            B64[(x % 64) as usize] as char
        })
        .collect()
}

fn header(date: &str, extra_in_header: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016" xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXML:edXMLEnvelope>
    <edXML:edXMLHeader>
      <edXML:MessageHeader>
        <edXML:From>
          <edXML:OrganId>000.00.00.G22</edXML:OrganId>
          <edXML:OrganName>Văn phòng Chính phủ</edXML:OrganName>
        </edXML:From>
        <edXML:To>
          <edXML:OrganId>000.00.00.H41</edXML:OrganId>
          <edXML:OrganName>Ủy ban nhân dân tỉnh Nghệ An</edXML:OrganName>
        </edXML:To>
        <edXML:DocumentId>000.00.00.G22,2025/03/14,1/VPCP-KSTT</edXML:DocumentId>
        <edXML:Code>
          <edXML:CodeNumber>1</edXML:CodeNumber>
          <edXML:CodeNotation>VPCP-KSTT</edXML:CodeNotation>
        </edXML:Code>
        <edXML:PromulgationInfo>
          <edXML:PromulgationDate>{date}</edXML:PromulgationDate>
        </edXML:PromulgationInfo>
        <edXML:DocumentType>
          <edXML:Type>1</edXML:Type>
        </edXML:DocumentType>
        <edXML:Subject>Bench</edXML:Subject>
      </edXML:MessageHeader>
{extra_in_header}    </edXML:edXMLHeader>
"#
    )
}

/// A valid strict document packet whose two attachments hold `payload` base64 characters.
fn large_packet(payload: usize, date: &str) -> Vec<u8> {
    let half = payload / 8 * 4;
    let mut s = header(date, "");
    s.push_str(
        r#"    <edXML:edXMLBody>
      <edXML:edXMLManifest version="1.0">
        <edXML:Reference>
          <edXML:ContentId>cid:1</edXML:ContentId>
          <edXML:ContentType>application/pdf</edXML:ContentType>
          <edXML:AttachmentName>a.pdf</edXML:AttachmentName>
        </edXML:Reference>
        <edXML:Reference>
          <edXML:ContentId>cid:2</edXML:ContentId>
          <edXML:ContentType>application/zip</edXML:ContentType>
          <edXML:AttachmentName>b.zip</edXML:AttachmentName>
        </edXML:Reference>
      </edXML:edXMLManifest>
    </edXML:edXMLBody>
  </edXML:edXMLEnvelope>
  <AttachmentEncoded xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
"#,
    );
    for (i, name) in [(1, "a.pdf"), (2, "b.zip")] {
        s.push_str(&format!(
            "    <Attachment>\n      <ContentId>cid:{i}</ContentId>\n      \
             <AttachmentName>{name}</AttachmentName>\n      \
             <ContentType>application/octet-stream</ContentType>\n      \
             <edXML:ContentTransferEncoded>"
        ));
        s.push_str(&base64_text(half, i));
        s.push_str("</edXML:ContentTransferEncoded>\n    </Attachment>\n");
    }
    s.push_str("  </AttachmentEncoded>\n</edXML>\n");
    s.into_bytes()
}

/// A hostile packet: `bulk` bytes of text inside ds:Signature (content not checked), then
/// `junk` unexpected empty elements, each of which the validator reports.
fn hostile_packet(bulk: usize, junk: usize) -> Vec<u8> {
    let mut extra =
        String::from("      <ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">");
    extra.push_str(&base64_text(bulk / 4 * 4, 7));
    extra.push_str("</ds:Signature>\n      ");
    extra.push_str(&"<x/>".repeat(junk));
    extra.push('\n');
    let mut s = header("2025/03/14", &extra);
    s.push_str(
        "    <edXML:edXMLBody>\n      <edXML:edXMLManifest version=\"1.0\"/>\n    \
         </edXML:edXMLBody>\n  </edXML:edXMLEnvelope>\n</edXML>\n",
    );
    s.into_bytes()
}

struct Outcome {
    times: Vec<Duration>,
    peak_heap: usize,
    peak_rss_growth: Option<usize>,
    verdict: String,
}

/// A field of /proc/self/status, in bytes (Linux only).
fn proc_status_bytes(field: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the process's peak resident set size to the current one (Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn measure(xml: &[u8], runs: usize) -> Outcome {
    // Warm-up: compiles and caches the schema, so it is not counted.
    let _ = validate(SchemaKind::Document, b"<warm-up/>");
    let mut times = Vec::with_capacity(runs);
    let mut peak_heap = 0;
    let mut peak_rss_growth = None;
    let mut verdict = String::new();
    for _ in 0..runs {
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let rss_before = proc_status_bytes("VmRSS:").filter(|_| reset_peak_rss());
        let start = Instant::now();
        let result = validate(SchemaKind::Document, xml);
        times.push(start.elapsed());
        peak_heap = peak_heap.max(PEAK.load(Ordering::Relaxed) - base);
        if let (Some(before), Some(peak)) = (rss_before, proc_status_bytes("VmHWM:")) {
            let growth = peak.saturating_sub(before);
            peak_rss_growth = Some(peak_rss_growth.map_or(growth, |g: usize| g.max(growth)));
        }
        verdict = match result {
            Ok(()) => "valid".into(),
            Err(SchemaError::Invalid { violations, .. }) => {
                format!("invalid, {} violations", violations.len())
            }
            Err(e) => format!("error: {e}"),
        };
    }
    times.sort();
    Outcome {
        times,
        peak_heap,
        peak_rss_growth,
        verdict,
    }
}

/// xmllint's wall time and verdict on the same packet (`--huge`: libxml2 refuses text nodes
/// over 10,000,000 bytes without it).
fn xmllint(xml: &[u8]) -> Option<(Duration, &'static str)> {
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/../schemas/edxml-document.xsd");
    let path =
        std::env::temp_dir().join(format!("docaxis-schema-bench-{}.edxml", std::process::id()));
    std::fs::write(&path, xml).ok()?;
    let start = Instant::now();
    let status = std::process::Command::new("xmllint")
        .args(["--huge", "--noout", "--nonet", "--schema", schema])
        .arg(&path)
        .stderr(std::process::Stdio::null())
        .status()
        .ok();
    let elapsed = start.elapsed();
    let _ = std::fs::remove_file(&path);
    let verdict = match status?.code() {
        Some(0) => "valid",
        Some(3) => "invalid",
        _ => "error",
    };
    Some((elapsed, verdict))
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn report(name: &str, xml: &[u8], runs: usize) {
    let o = measure(xml, runs);
    let lint = xmllint(xml)
        .map(|(d, verdict)| format!("{:.0} ms {verdict}", d.as_secs_f64() * 1e3))
        .unwrap_or_else(|| "n/a".into());
    let rss = o
        .peak_rss_growth
        .map(|b| format!("{:.1} MiB", mib(b)))
        .unwrap_or_else(|| "n/a".into());
    println!(
        "{name:<46} {:>5.1} MiB  min {:>7.1} ms  median {:>7.1} ms  heap requested {:>6.1} MiB  \
         RSS growth {rss:>9}  xmllint {lint:>16}  [{}]",
        mib(xml.len()),
        o.times[0].as_secs_f64() * 1e3,
        o.times[o.times.len() / 2].as_secs_f64() * 1e3,
        mib(o.peak_heap),
        o.verdict
    );
}

fn main() {
    // `cargo bench` passes --bench; anything else (`cargo test --benches` / `--all-targets`,
    // which run this unoptimised) gets a quick 1 MiB smoke run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 1 } else { 20 };

    println!("docaxis_edxml::schema::validate (uppsala 0.12), input size, wall time, heap");
    report(
        "valid document, 2 attachments",
        &large_packet(scale << 20, "2025/03/14"),
        5,
    );
    report(
        "invalid: bad date in the header",
        &large_packet(scale << 20, "2025-03-14"),
        5,
    );
    if !quick {
        report(
            "valid document, 2 attachments (64 MiB class)",
            &large_packet(64 << 20, "2025/03/14"),
            3,
        );
    }
    // 50 errors in 20 MiB is near the locating budget: the slowest case that is located.
    for junk in [10, 50, 100, 1_000, 10_000, 90_000] {
        report(
            &format!("hostile: {scale} MiB text, then {junk} junk elements"),
            &hostile_packet(scale << 20, junk),
            3,
        );
    }
}
