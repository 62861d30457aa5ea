//! edXML reader/writer throughput (MB/s) and peak extra memory, on a ~10 KB packet and on a
//! ~20 MB packet with attachments, both generated here.
//!
//! Peak memory comes from a counting global allocator: the highest number of live heap bytes
//! during one call, minus what was live before it (the input itself is not counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use docaxis_edxml::*;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                    + (new_size - layout.size());
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak extra heap bytes while running `f` (its result is dropped afterwards).
fn peak_extra<T>(f: impl FnOnce() -> T) -> usize {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    let peak = PEAK.load(Ordering::Relaxed);
    drop(black_box(out));
    peak - before
}

/// Deterministic, poorly compressible bytes (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn packet(attachment_sizes: &[usize]) -> Packet {
    let code = |s: &str| AgencyCode::parse_strict(s).unwrap();
    let mut from = Organization::new(code("000.00.00.G22"), "Văn phòng Chính phủ");
    from.organ_add = Some("Số 1 Hoàng Hoa Thám, Quận Ba Đình, Hà Nội".into());
    from.email = Some("vpcp@gov.vn".into());
    let to = ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]
        .iter()
        .map(|c| {
            let mut o = Organization::new(code(c), "Ủy ban nhân dân tỉnh");
            o.organ_add = Some("Số 03, đường Trường Thi, Thành phố Vinh".into());
            o
        })
        .collect();
    let mut d = DocumentPacket::new(
        from,
        to,
        "000.00.00.G22,2024/05/06,7816/VPCP-TTĐT",
        Code::new("7816", "VPCP-TTĐT"),
        EdxmlDate::parse("2024/05/06").unwrap(),
        DocumentType {
            type_code: 1,
            type_detail: Some(0),
            type_name: Some("Công văn".into()),
        },
        "V/v kết nối, liên thông phần mềm quản lý văn bản",
    );
    d.content = Some("Nội dung tóm tắt của văn bản & các phụ lục <kèm theo>.".into());
    d.to_places = vec![
        "Các bộ, cơ quan ngang bộ".into(),
        "UBND các tỉnh, TP".into(),
    ];
    d.other_info = Some(OtherInfo {
        priority: Priority::Urgent,
        ..OtherInfo::default()
    });
    d.trace_headers.push(TraceHeader {
        organ_id: code("000.00.00.G22"),
        timestamp: EdxmlDateTime::parse("2024/05/06 08:30:00").unwrap(),
    });
    d.bussiness = Some(Bussiness::new(BussinessDocType::New));
    for (i, &size) in attachment_sizes.iter().enumerate() {
        d.add_attachment(Attachment::from_bytes(
            format!("{i}"),
            format!("van-ban-{i}.pdf"),
            "application/pdf",
            &noise(size, i as u64 + 7),
        ));
    }
    Packet::Document(d)
}

fn bench_size(c: &mut Criterion, label: &str, attachment_sizes: &[usize]) {
    let p = packet(attachment_sizes);
    let bytes = write(&p).unwrap();
    let opts = ReadOptions::default();
    assert_eq!(read(&bytes, &opts).unwrap().packet, p);

    let read_peak = peak_extra(|| read(&bytes, &opts).unwrap());
    let write_peak = peak_extra(|| write(&p).unwrap());
    println!(
        "edxml {label}: packet {} bytes; peak extra heap: read {} bytes ({:.2}x the packet), write {} bytes ({:.2}x)",
        bytes.len(),
        read_peak,
        read_peak as f64 / bytes.len() as f64,
        write_peak,
        write_peak as f64 / bytes.len() as f64,
    );

    let mut g = c.benchmark_group(format!("edxml_{label}"));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    if bytes.len() > 1_000_000 {
        g.sample_size(10);
    }
    g.bench_function("read", |b| {
        b.iter(|| read(black_box(&bytes), &opts).unwrap())
    });
    g.bench_function("write", |b| b.iter(|| write(black_box(&p)).unwrap()));
    g.finish();
}

/// Refusals must be cheap: DOCTYPE found in the prolog, limits hit while streaming.
fn bench_refusals(c: &mut Criterion) {
    let big = write(&packet(&[5 << 20, 5 << 20, 5 << 20])).unwrap();
    let mut doctype_first =
        b"<?xml version=\"1.0\"?>\n<!DOCTYPE edXML [<!ENTITY a \"b\">]>\n".to_vec();
    doctype_first.extend_from_slice(&big);
    let root = b"<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">";
    let mut many = root.to_vec();
    many.extend(std::iter::repeat_n(b"<x/>".as_slice(), 5_000_000).flatten());
    let mut deep = root.to_vec();
    deep.extend(std::iter::repeat_n(b"<x>".as_slice(), 6_000_000).flatten());
    let attacks =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/edxml/xml-attacks");
    let quadratic = std::fs::read(attacks.join("defusedxml/quadratic.xml")).unwrap();
    let laughs = std::fs::read(
        attacks.join("payloadsallthethings-xxe/Deny Of Service - Billion Laugh Attack"),
    )
    .unwrap();

    let opts = ReadOptions::default();
    let cases: [(&str, &[u8]); 5] = [
        ("doctype_before_20MB_packet", &doctype_first),
        ("quadratic_blowup_xml", &quadratic),
        ("billion_laughs", &laughs),
        ("20MB_of_empty_elements", &many),
        ("18MB_of_nesting", &deep),
    ];
    let mut g = c.benchmark_group("edxml_refusal");
    for (name, bytes) in cases {
        let mut err = None;
        let peak = peak_extra(|| err = read(bytes, &opts).err());
        let err = err.expect("refused");
        println!(
            "edxml refusal {name}: {} input bytes, peak extra heap {peak} bytes: {err}",
            bytes.len()
        );
        g.bench_function(name, |b| {
            b.iter(|| read(black_box(bytes), &opts).unwrap_err())
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_refusals(c);
    bench_size(c, "10KB", &[6 * 1024]);
    // Three attachments of 5 MiB: 15 MiB of files, ~20 MiB of base64.
    bench_size(c, "20MB", &[5 << 20, 5 << 20, 5 << 20]);
}

criterion_group!(edxml, benches);
criterion_main!(edxml);
