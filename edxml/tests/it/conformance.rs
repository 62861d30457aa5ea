//! Conformance: the field packets of `shared/conformance/edxml/` (and their copies in
//! `examples/conformance/`) parse to exactly the facts listed in their README, whatever the
//! prefixes, element order, line endings, `Bussiness`/`Business` spelling or status wrapper;
//! and `read(write(read(f))) == read(f)`.

use std::path::{Path, PathBuf};

use docaxis_edxml::{
    BussinessDocType, Packet, Priority, ReadOptions, ReadOutcome, SignatureState, StatusCode, read,
    write,
};
use quick_xml::Writer;
use quick_xml::events::{BytesStart, Event};

const QCVN: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
const DOC_ID: &str = "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT";
const FILES: [&str; 4] = [
    "document_new.edxml",
    "status_01_received.edxml",
    "status_03_accepted.edxml",
    "status_13_takeback.edxml",
];

/// Both copies of the conformance set: the shared one (when present on this machine) and the
/// repository's own copy, which must always be there.
fn conformance_dirs() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo_copy = manifest.join("../examples/conformance");
    assert!(
        repo_copy.join("README.md").is_file(),
        "missing {}",
        repo_copy.display()
    );
    let mut dirs = vec![repo_copy];
    let shared = manifest.join("../../shared/conformance/edxml");
    if shared.is_dir() {
        dirs.push(shared);
    }
    dirs
}

fn load(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

fn read_ok(bytes: &[u8]) -> ReadOutcome {
    read(bytes, &ReadOptions::default()).unwrap_or_else(|e| panic!("refused: {e}"))
}

fn check_facts(name: &str, out: &ReadOutcome) {
    match name {
        "document_new.edxml" => check_document(out),
        "status_01_received.edxml" => {
            let s = status(out, StatusCode::Received);
            assert_eq!(s.from.organ_id.as_str(), "000.00.00.H41");
            assert_eq!(s.response_for.organ_id.as_str(), "000.00.00.G22");
            assert_eq!(s.response_for.document_id.as_str(), DOC_ID);
            assert_eq!(s.timestamp.to_string(), "2015/09/20 11:08:36");
        }
        "status_03_accepted.edxml" => {
            let s = status(out, StatusCode::Accepted);
            assert_eq!(s.from.organ_id.as_str(), "000.00.00.H41");
            assert_eq!(s.response_for.organ_id.as_str(), "000.00.00.G22");
        }
        "status_13_takeback.edxml" => {
            let s = status(out, StatusCode::TakeBack);
            assert_eq!(s.from.organ_id.as_str(), "000.00.00.G22");
            assert_eq!(s.response_for.organ_id.as_str(), "000.00.00.H41");
            assert_eq!(out.packet.to()[0].as_str(), "000.00.00.H41");
        }
        other => panic!("no facts for {other}"),
    }
    assert!(out.warnings.is_empty(), "{name}: {:?}", out.warnings);
}

fn status(out: &ReadOutcome, code: StatusCode) -> &docaxis_edxml::StatusPacket {
    let Packet::Status(s) = &out.packet else {
        panic!("expected a status packet, got {:?}", out.packet.kind())
    };
    assert_eq!(s.status_code, code);
    assert_eq!(out.signature, SignatureState::Absent);
    assert_eq!(s.response_for.document_id.as_str(), DOC_ID);
    s
}

fn check_document(out: &ReadOutcome) {
    let Packet::Document(d) = &out.packet else {
        panic!("expected a document packet")
    };
    assert_eq!(d.from.organ_id.as_str(), "000.00.00.G22");
    let to: Vec<&str> = out.packet.to().iter().map(|c| c.as_str()).collect();
    assert_eq!(to, ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]);
    assert_eq!(d.document_id.as_str(), DOC_ID);
    assert_eq!(d.code.code_number, "7816");
    assert_eq!(d.code.code_notation, "VPCP-TTĐT");
    assert_eq!(d.priority(), Priority::Normal);
    assert_eq!(d.steering_type, Some(1));
    assert_eq!(d.bussiness_doc_type(), BussinessDocType::New);
    assert_eq!(d.trace_headers.len(), 1);
    assert_eq!(d.trace_headers[0].organ_id.as_str(), "000.00.00.G22");
    assert_eq!(
        d.subject,
        "V/v kết nối, liên thông phần mềm quản lý văn bản"
    );
    assert_eq!(d.document_type.type_name.as_deref(), Some("Công văn"));
    assert_eq!(d.to_places.len(), 2);
    assert_eq!(d.references.len(), 1);
    assert_eq!(d.references[0].content_id, "209");
    assert_eq!(d.attachments.len(), 1);
    let a = &d.attachments[0];
    assert_eq!(a.content_id, "209");
    assert_eq!(a.name, "1896_QD-TTg_m_294779.doc");
    assert_eq!(a.content_type, "application/zip");
    assert!(a.is_zip(), "the payload is a ZIP by its magic bytes");
    let entries = a.zip_entries(1 << 20).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].name, "1896_QD-TTg_m_294779.txt");
    assert_eq!(entries[0].size, 4080);
    let text = String::from_utf8(
        zip::ZipArchive::new(std::io::Cursor::new(a.decoded().unwrap()))
            .unwrap()
            .by_index(0)
            .map(|mut f| {
                let mut s = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut s).unwrap();
                s
            })
            .unwrap(),
    )
    .unwrap();
    assert!(text.starts_with("Văn bản mẫu"), "{text:.40}");
    // A bound below the real size refuses the archive.
    assert!(a.zip_entries(4000).is_err());
    assert_eq!(out.signature, SignatureState::LegacyUnsigned);
}

#[test]
fn every_conformance_file_gives_its_facts() {
    for dir in conformance_dirs() {
        for name in FILES {
            let out = read_ok(&load(&dir, name));
            check_facts(name, &out);
            // Strict mode accepts them too: they follow the pattern and pair up.
            read(&load(&dir, name), &ReadOptions::strict()).unwrap();
        }
    }
}

#[test]
fn repository_copies_match_the_shared_set() {
    let dirs = conformance_dirs();
    if let [repo, shared] = dirs.as_slice() {
        for name in FILES.iter().copied().chain(["README.md"]) {
            assert_eq!(load(repo, name), load(shared, name), "{name} differs");
        }
    }
    let readme = std::fs::read_to_string(dirs[0].join("README.md")).unwrap();
    assert!(readme.contains("Origin:"), "README keeps its origin note");
}

#[test]
fn write_then_read_gives_the_same_packet() {
    for dir in conformance_dirs() {
        for name in FILES {
            let first = read_ok(&load(&dir, name));
            let written = write(&first.packet).unwrap();
            let second = read_ok(&written);
            assert_eq!(second.packet, first.packet, "{name}");
            assert!(second.warnings.is_empty());
            // The legacy placeholder signature is not written.
            assert_eq!(second.signature, SignatureState::Absent);
            let text = String::from_utf8(written).unwrap();
            assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edXML xmlns="));
            assert!(!text.contains('\r'));
        }
    }
}

// ---- variants made by transforming the bytes ----

fn replace(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = std::str::from_utf8(bytes).unwrap();
    assert!(s.contains(from), "{from:?} not found");
    s.replace(from, to).into_bytes()
}

fn packet_of(bytes: &[u8]) -> Packet {
    read_ok(bytes).packet
}

/// Re-emits the document with the children of every element in another order: groups of
/// same-named siblings reversed.
fn reverse_children(bytes: &[u8]) -> Vec<u8> {
    enum Node {
        Element(BytesStart<'static>, Vec<Node>),
        Other(Event<'static>),
    }
    fn emit(w: &mut Writer<Vec<u8>>, nodes: Vec<Node>) {
        let has_elements = nodes.iter().any(|n| matches!(n, Node::Element(..)));
        let mut nodes: Vec<Node> = nodes
            .into_iter()
            .filter(|n| {
                !(has_elements
                    && matches!(n, Node::Other(Event::Text(t)) if t.iter().all(u8::is_ascii_whitespace)))
            })
            .collect();
        if has_elements {
            // Reverse the order of the groups of same-named siblings; keep each group's own
            // order (the order of To, Place, ... is meaningful).
            let name = |n: &Node| match n {
                Node::Element(s, _) => s.name().as_ref().to_vec(),
                Node::Other(_) => Vec::new(),
            };
            let mut groups: Vec<Vec<u8>> = Vec::new();
            for n in &nodes {
                if !groups.contains(&name(n)) {
                    groups.push(name(n));
                }
            }
            nodes.sort_by_key(|n| std::cmp::Reverse(groups.iter().position(|g| *g == name(n))));
        }
        for n in nodes {
            match n {
                Node::Element(start, kids) => {
                    let end = start.to_end().into_owned();
                    w.write_event(Event::Start(start)).unwrap();
                    emit(w, kids);
                    w.write_event(Event::End(end)).unwrap();
                }
                Node::Other(e) => w.write_event(e).unwrap(),
            }
        }
    }
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut stack: Vec<(BytesStart<'static>, Vec<Node>)> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    let mut buf = Vec::new();
    loop {
        let ev = reader.read_event_into(&mut buf).unwrap().into_owned();
        buf.clear();
        match ev {
            Event::Eof => break,
            Event::Start(s) => stack.push((s, Vec::new())),
            Event::Empty(s) => {
                let n = Node::Element(s, Vec::new());
                match stack.last_mut() {
                    Some((_, kids)) => kids.push(n),
                    None => top.push(n),
                }
            }
            Event::End(_) => {
                let (s, kids) = stack.pop().unwrap();
                let n = Node::Element(s, kids);
                match stack.last_mut() {
                    Some((_, k)) => k.push(n),
                    None => top.push(n),
                }
            }
            other => match stack.last_mut() {
                Some((_, kids)) => kids.push(Node::Other(other)),
                None => top.push(Node::Other(other)),
            },
        }
    }
    let mut w = Writer::new(Vec::new());
    for n in top {
        match n {
            Node::Element(s, kids) => emit(&mut w, vec![Node::Element(s, kids)]),
            Node::Other(e) => w.write_event(e).unwrap(),
        }
    }
    w.into_inner()
}

fn variants(name: &str, bytes: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let ns_decl = format!(" xmlns:edXML=\"{QCVN}\"");
    let mut v = vec![
        (
            "prefix q:",
            replace(&replace(bytes, "edXML:", "q:"), "xmlns:edXML=", "xmlns:q="),
        ),
        (
            "root prefixed too",
            replace(
                &replace(
                    &replace(&replace(bytes, "edXML:", "q:"), "xmlns:edXML=", "xmlns:q="),
                    &format!("<edXML xmlns=\"{QCVN}\">"),
                    &format!("<q:edXML xmlns:q=\"{QCVN}\" xmlns=\"{QCVN}\">"),
                ),
                "</edXML>",
                "</q:edXML>",
            ),
        ),
        (
            "unprefixed",
            replace(&replace(bytes, "edXML:", ""), &ns_decl, ""),
        ),
        ("LF only", replace(bytes, "\r\n", "\n")),
        ("children reversed", reverse_children(bytes)),
        ("single line", replace(bytes, "\r\n", "")),
    ];
    if name.starts_with("document") {
        v.push((
            "Business spelling",
            replace(bytes, "edXML:Bussiness>", "edXML:Business>"),
        ));
        // Bussiness after TraceHeader instead of before.
        let s = std::str::from_utf8(bytes).unwrap();
        let b0 = s.find("<edXML:Bussiness>").unwrap();
        let b1 = s.find("</edXML:Bussiness>").unwrap() + "</edXML:Bussiness>".len();
        let t1 = s.find("</edXML:TraceHeader>").unwrap() + "</edXML:TraceHeader>".len();
        let moved = format!("{}{}{}{}", &s[..b0], &s[b1..t1], &s[b0..b1], &s[t1..]);
        v.push(("Bussiness after TraceHeader", moved.into_bytes()));
    } else {
        v.push((
            "Status wrapper",
            replace(bytes, "edXML:MessageHeader>", "edXML:Status>"),
        ));
    }
    v
}

#[test]
fn syntactic_variants_give_the_same_packet() {
    for dir in conformance_dirs() {
        for name in FILES {
            let original = load(&dir, name);
            let expected = packet_of(&original);
            for (label, bytes) in variants(name, &original) {
                assert_ne!(bytes, original, "{label} changed nothing");
                if label == "children reversed" {
                    let s = String::from_utf8(bytes.clone()).unwrap();
                    let from = s.find("<edXML:From>").unwrap();
                    let timestamp = s.find("<edXML:Timestamp>").unwrap();
                    assert!(timestamp < from, "{name}: order unchanged");
                }
                let out = read(&bytes, &ReadOptions::default())
                    .unwrap_or_else(|e| panic!("{name} / {label}: {e}"));
                assert_eq!(out.packet, expected, "{name} / {label}");
                assert!(
                    out.warnings.is_empty(),
                    "{name} / {label}: {:?}",
                    out.warnings
                );
                check_facts(name, &out);
            }
        }
    }
}

#[test]
fn writer_output_with_crlf_and_reversed_order_reads_back() {
    for dir in conformance_dirs() {
        for name in FILES {
            let p = packet_of(&load(&dir, name));
            let written = write(&p).unwrap();
            let crlf = replace(&written, "\n", "\r\n");
            assert_eq!(packet_of(&crlf), p, "{name} CRLF");
            assert_eq!(packet_of(&reverse_children(&written)), p, "{name} reversed");
        }
    }
}

#[test]
fn json_shows_the_wire_values() {
    let dir = &conformance_dirs()[0];
    let doc = serde_json::to_value(read_ok(&load(dir, "document_new.edxml")).packet).unwrap();
    assert_eq!(doc["kind"], "document");
    assert_eq!(doc["from"]["organ_id"], "000.00.00.G22");
    assert_eq!(doc["other_info"]["priority"], 0);
    assert_eq!(doc["promulgation_info"]["promulgation_date"], "2019/04/11");
    assert_eq!(doc["attachments"][0]["payload"]["decoded_len"], 272);
    let status =
        serde_json::to_value(read_ok(&load(dir, "status_01_received.edxml")).packet).unwrap();
    assert_eq!(status["kind"], "status");
    assert_eq!(status["status_code"], "01");
    assert_eq!(status["timestamp"], "2015/09/20 11:08:36");
}

/// A 2025 third-party gateway writes a trace point with a `Timestamp` and no `OrganId`; the
/// axis's reference parser reads it, so lenient mode does (with a warning, that point left
/// out), and strict mode refuses it naming why.
#[test]
fn a_trace_point_without_organ_id_is_read_leniently_and_refused_strictly() {
    let dir = conformance_dirs().remove(0);
    let text = std::fs::read_to_string(dir.join("document_new.edxml")).unwrap();
    let start = text.find("<edXML:TraceHeader>").unwrap();
    let end = text[start..].find("</edXML:TraceHeader>").unwrap() + start;
    let inner = &text[start..end];
    let organ = inner.find("<edXML:OrganId>").unwrap();
    let organ_end = inner.find("</edXML:OrganId>").unwrap() + "</edXML:OrganId>".len();
    let gateway = format!(
        "{}{}{}",
        &text[..start + organ],
        &text[start + organ_end..end],
        &text[end..]
    );
    assert!(!gateway[start..].starts_with("<edXML:TraceHeader><edXML:OrganId>"));
    let out = read(gateway.as_bytes(), &ReadOptions::default()).expect("lenient mode reads it");
    let Packet::Document(d) = &out.packet else {
        panic!("a document")
    };
    assert!(d.trace_headers.is_empty(), "{:?}", d.trace_headers);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.to_string().contains("no OrganId")),
        "{:?}",
        out.warnings
    );
    let err = read(gateway.as_bytes(), &ReadOptions::strict()).unwrap_err();
    assert!(err.to_string().contains("no OrganId"), "{err}");
}

/// `drop_attachment_text` keeps what the header of a big packet is needed for (sender,
/// recipients, document id, attachment names and types) and frees only the base64 text;
/// a status packet is left as it was.
#[test]
fn dropping_attachment_text_keeps_the_header_and_the_names() {
    let dir = &conformance_dirs()[0];
    let bytes = std::fs::read(dir.join("document_new.edxml")).unwrap();
    let read_one = || read(&bytes, &ReadOptions::default()).unwrap().packet;
    let whole = read_one();
    let mut light = read_one();
    light.drop_attachment_text();
    let (Packet::Document(w), Packet::Document(l)) = (&whole, &light) else {
        panic!("document_new.edxml is a document");
    };
    assert!(!w.attachments.is_empty(), "the sample carries attachments");
    assert_eq!(w.attachments.len(), l.attachments.len());
    for (a, b) in w.attachments.iter().zip(&l.attachments) {
        assert!(a.payload.encoded_len() > 0);
        assert_eq!(b.payload.encoded_len(), 0, "{}", b.name);
        assert_eq!((&a.name, &a.content_type), (&b.name, &b.content_type));
    }
    assert_eq!(whole.from(), light.from());
    assert_eq!(whole.to(), light.to());
    assert_eq!(whole.document_id(), light.document_id());

    let status = std::fs::read(dir.join("status_01_received.edxml")).unwrap();
    let before = read(&status, &ReadOptions::default()).unwrap().packet;
    let mut after = before.clone();
    after.drop_attachment_text();
    assert_eq!(before, after);
}
