//! Refusals: XML attack files, and packets broken one way at a time, each refused with the
//! expected error kind and element path (and line where it matters).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use docaxis_edxml::{
    CodeError, DateError, Limits, Packet, ReadError, ReadErrorKind, ReadOptions, SignatureState,
    WarningKind, read,
};

const HEADER: &str = "/edXML/edXMLEnvelope/edXMLHeader/MessageHeader";

fn conformance(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/conformance")
        .join(name);
    String::from_utf8(std::fs::read(&path).unwrap()).unwrap()
}

fn document() -> String {
    conformance("document_new.edxml")
}

fn status01() -> String {
    conformance("status_01_received.edxml")
}

fn edit(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "{from:?} not found");
    s.replacen(from, to, 1)
}

fn refuse(bytes: impl AsRef<[u8]>, opts: &ReadOptions) -> ReadError {
    match read(bytes.as_ref(), opts) {
        Ok(o) => panic!("accepted: {:?}", o.packet.kind()),
        Err(e) => e,
    }
}

fn refuse_default(bytes: impl AsRef<[u8]>) -> ReadError {
    refuse(bytes, &ReadOptions::default())
}

/// 1-based line of the first occurrence of `needle`.
fn line_of(s: &str, needle: &str) -> u64 {
    let at = s.find(needle).unwrap();
    1 + s[..at].matches('\n').count() as u64
}

fn with_limits(f: impl FnOnce(&mut Limits)) -> ReadOptions {
    let mut opts = ReadOptions::default();
    f(&mut opts.limits);
    opts
}

// ---- attack files ----

fn attack_dirs() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = manifest.join("tests/data/edxml/xml-attacks");
    assert!(copy.is_dir(), "missing {}", copy.display());
    let mut dirs = vec![copy];
    let shared = manifest.join("../../shared/vectors/xml-attacks");
    if shared.is_dir() {
        dirs.push(shared);
    }
    dirs
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Reads on another thread so that a hang fails the test instead of stalling it.
fn read_with_watchdog(bytes: Vec<u8>) -> Result<Packet, ReadError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = read(&bytes, &ReadOptions::default()).map(|o| o.packet);
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the reader did not finish (hang) or panicked")
}

#[test]
fn every_attack_file_with_a_doctype_is_refused() {
    let mut checked = 0;
    for dir in attack_dirs() {
        let mut files = Vec::new();
        files_under(&dir, &mut files);
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).unwrap();
            let has_doctype = bytes.windows(9).any(|w| w == b"<!DOCTYPE");
            let result = read_with_watchdog(bytes.clone());
            if has_doctype {
                let err = result
                    .err()
                    .unwrap_or_else(|| panic!("{} accepted", f.display()));
                // Files that are XML from their first byte carry the DOCTYPE in their prolog and
                // are refused for it; one file starts with a line of plain text and is refused
                // as malformed before any DOCTYPE is reached.
                if bytes.first() == Some(&b'<') {
                    assert_eq!(err.kind, ReadErrorKind::Doctype, "{}: {err}", f.display());
                    assert_eq!(err.path, "/");
                } else {
                    assert!(
                        matches!(err.kind, ReadErrorKind::Malformed(_)),
                        "{}: {err}",
                        f.display()
                    );
                }
                checked += 1;
            } else if let Err(e) = result {
                // Not edXML at all: refused, with a located reason.
                assert!(e.line >= 1 && e.column >= 1, "{}: {e}", f.display());
            }
        }
    }
    assert!(checked >= 28, "only {checked} DOCTYPE files found");
}

#[test]
fn doctype_in_front_of_a_valid_packet_is_refused() {
    let doc = edit(
        &document(),
        "<edXML xmlns=",
        "<!DOCTYPE edXML [<!ENTITY x \"y\">]>\r\n<edXML xmlns=",
    );
    let err = refuse_default(&doc);
    assert_eq!(err.kind, ReadErrorKind::Doctype);
    assert_eq!((err.line, err.column), (2, 1));
}

#[test]
fn entity_references_other_than_the_predefined_ones_are_refused() {
    let doc = edit(&document(), "TL. BO TRUONG", "TL. &bo; TRUONG");
    let err = refuse_default(&doc);
    assert_eq!(
        err.kind,
        ReadErrorKind::UndefinedEntity { name: "bo".into() }
    );
    assert_eq!(err.path, format!("{HEADER}/SignerInfo/Competence"));
    // Predefined entities and character references are fine.
    let ok = edit(
        &document(),
        "TL. BO TRUONG",
        "TL. &amp; &#x42;&#79; &lt;&gt;&quot;&apos;",
    );
    let Packet::Document(d) = read(ok.as_bytes(), &ReadOptions::default()).unwrap().packet else {
        panic!()
    };
    assert_eq!(
        d.signer_info.unwrap().competence.as_deref(),
        Some("TL. & BO <>\"'")
    );
    let bad_char = edit(&document(), "TL. BO TRUONG", "TL. &#1;");
    assert_eq!(
        refuse_default(&bad_char).kind,
        ReadErrorKind::IllegalCharacter { code: 1 }
    );
}

// ---- broken packets ----

#[test]
fn wrong_namespace_on_the_root() {
    let doc = edit(
        &document(),
        "<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">",
        "<edXML xmlns=\"http://example.org/not-qcvn\">",
    );
    let err = refuse_default(&doc);
    assert!(
        matches!(&err.kind, ReadErrorKind::WrongNamespace { element, found }
            if element == "edXML" && found.contains("http://example.org/not-qcvn")),
        "{err}"
    );
    assert_eq!(err.path, "/edXML");
    assert_eq!((err.line, err.column), (2, 1));

    let no_ns = edit(
        &document(),
        "<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">",
        "<edXML>",
    );
    assert!(matches!(
        refuse_default(&no_ns).kind,
        ReadErrorKind::WrongNamespace { .. }
    ));
    let other_root =
        "<?xml version=\"1.0\"?><Packet xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"/>";
    assert_eq!(
        refuse_default(other_root).kind,
        ReadErrorKind::UnexpectedRoot {
            found: "Packet".into()
        }
    );
}

#[test]
fn missing_subject() {
    let src = document();
    let start = src.find("<edXML:Subject>").unwrap();
    let end = src.find("</edXML:Subject>").unwrap() + "</edXML:Subject>".len();
    let doc = format!("{}{}", &src[..start], &src[end..]);
    let err = refuse_default(&doc);
    assert_eq!(
        err.kind,
        ReadErrorKind::MissingElement {
            name: "Subject".into()
        }
    );
    assert_eq!(err.path, HEADER);
    assert_eq!(err.line, line_of(&src, "<edXML:MessageHeader>"));
    let subject = &src[start..end];
    let empty = edit(&src, subject, "<edXML:Subject> \r\n </edXML:Subject>");
    let err = refuse_default(&empty);
    assert_eq!(
        err.kind,
        ReadErrorKind::EmptyElement {
            name: "Subject".into()
        }
    );
    assert_eq!(err.path, format!("{HEADER}/Subject"));
}

#[test]
fn bad_date() {
    let src = document();
    let doc = edit(
        &src,
        "<edXML:PromulgationDate>2019/04/11",
        "<edXML:PromulgationDate>2019/02/30",
    );
    let err = refuse_default(&doc);
    assert_eq!(
        err.kind,
        ReadErrorKind::Date(DateError::Date {
            value: "2019/02/30".into()
        })
    );
    assert_eq!(
        err.path,
        format!("{HEADER}/PromulgationInfo/PromulgationDate")
    );
    assert_eq!(err.line, line_of(&src, "<edXML:PromulgationDate>"));
    assert_eq!(err.column, 11);
    let ts = edit(&status01(), "2015/09/20 11:08:36", "20/09/2015 11:08:36");
    let err = refuse_default(&ts);
    assert!(
        matches!(err.kind, ReadErrorKind::Date(DateError::DateTime { .. })),
        "{err}"
    );
    assert_eq!(err.path, format!("{HEADER}/Timestamp"));
}

#[test]
fn bad_priority() {
    let doc = edit(&document(), "<edXML:Priority>0<", "<edXML:Priority>7<");
    let err = refuse_default(&doc);
    assert_eq!(
        err.kind,
        ReadErrorKind::Code(CodeError::Priority { value: "7".into() })
    );
    assert_eq!(err.path, format!("{HEADER}/OtherInfo/Priority"));
}

#[test]
fn unknown_status_code() {
    let src = status01();
    let doc = edit(&src, "<edXML:StatusCode>01<", "<edXML:StatusCode>14<");
    let err = refuse_default(&doc);
    assert_eq!(
        err.kind,
        ReadErrorKind::Code(CodeError::StatusCode { value: "14".into() })
    );
    assert!(err.to_string().contains("\"14\""), "{err}");
    assert_eq!(err.path, format!("{HEADER}/StatusCode"));
    assert_eq!(err.line, line_of(&src, "<edXML:StatusCode>"));
}

#[test]
fn non_utf8_encoding_declaration() {
    let doc = edit(&document(), "encoding=\"UTF-8\"", "encoding=\"ISO-8859-1\"");
    let err = refuse_default(&doc);
    assert_eq!(
        err.kind,
        ReadErrorKind::UnsupportedEncoding {
            encoding: "ISO-8859-1".into()
        }
    );
    assert_eq!(err.path, "/");
    let mut utf16 = vec![0xFF, 0xFE];
    for u in document().encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    assert!(matches!(
        refuse_default(&utf16).kind,
        ReadErrorKind::UnsupportedEncoding { .. }
    ));
}

#[test]
fn latin1_bytes() {
    let src = status01();
    let mut bytes = src.clone().into_bytes();
    let at = src.find("Phong hanh chinh").unwrap() + 2; // the 'o'
    bytes[at] = 0xF2; // 'ò' in ISO-8859-1
    let err = refuse_default(&bytes);
    assert_eq!(err.kind, ReadErrorKind::InvalidUtf8);
    assert_eq!(err.path, format!("{HEADER}/StaffInfo/Department"));
    assert_eq!(err.line, line_of(&src, "Phong hanh chinh"));
    let line_start = src[..at].rfind('\n').unwrap() + 1;
    assert_eq!(err.column, (src[line_start..at].chars().count() + 1) as u64);
}

#[test]
fn too_deep() {
    let deep = format!(
        "{}x{}",
        "<edXML:Appendix>".repeat(40),
        "</edXML:Appendix>".repeat(40)
    );
    let doc = edit(
        &document(),
        "<edXML:Appendixes>",
        &format!("<edXML:Appendixes>{deep}"),
    );
    let err = refuse_default(&doc);
    assert_eq!(err.kind, ReadErrorKind::TooDeep { limit: 32 });
    assert_eq!(err.path.matches('/').count(), 33, "{}", err.path);
    assert!(
        err.path
            .starts_with(&format!("{HEADER}/OtherInfo/Appendixes/Appendix/"))
    );

    let err = refuse(document(), &with_limits(|l| l.max_depth = 5));
    assert_eq!(err.kind, ReadErrorKind::TooDeep { limit: 5 });
    assert_eq!(err.path, format!("{HEADER}/From/OrganId"));
}

#[test]
fn too_many_elements() {
    let err = refuse(document(), &with_limits(|l| l.max_elements = 10));
    assert_eq!(err.kind, ReadErrorKind::TooManyElements { limit: 10 });
    // edXML, edXMLEnvelope, edXMLHeader, MessageHeader, From and its 6 first children.
    assert_eq!(err.path, format!("{HEADER}/From/Telephone"));
    let many = "<edXML:Place>p</edXML:Place>".repeat(100_001);
    let doc = edit(
        &document(),
        "<edXML:ToPlaces>",
        &format!("<edXML:ToPlaces>{many}"),
    );
    assert_eq!(
        refuse_default(&doc).kind,
        ReadErrorKind::TooManyElements { limit: 100_000 }
    );
}

#[test]
fn too_many_attributes() {
    let attrs: String = (0..33).map(|i| format!(" a{i}=\"v\"")).collect();
    let doc = edit(
        &document(),
        "<edXML:Subject>",
        &format!("<edXML:Subject{attrs}>"),
    );
    let err = refuse_default(&doc);
    assert_eq!(err.kind, ReadErrorKind::TooManyAttributes { limit: 32 });
    assert_eq!(err.path, format!("{HEADER}/Subject"));
}

#[test]
fn oversized_text() {
    let long = "Đ".repeat(40_000); // 80 000 bytes
    let doc = edit(
        &document(),
        "<edXML:Subject>",
        &format!("<edXML:Subject>{long}"),
    );
    let err = refuse_default(&doc);
    assert_eq!(err.kind, ReadErrorKind::TextTooLong { limit: 64 * 1024 });
    assert_eq!(err.path, format!("{HEADER}/Subject"));
    // Payloads have their own, larger bound.
    let err = refuse(document(), &with_limits(|l| l.max_text_len = 100));
    assert_eq!(err.kind, ReadErrorKind::TextTooLong { limit: 100 });
    assert_eq!(
        err.path,
        "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"
    );
    // And the input as a whole.
    let err = refuse(document(), &with_limits(|l| l.max_bytes = 1000));
    assert_eq!(
        err.kind,
        ReadErrorKind::TooLarge {
            size: document().len(),
            limit: 1000
        }
    );
}

#[test]
fn duplicate_message_header() {
    let src = document();
    let start = src.find("<edXML:MessageHeader>").unwrap();
    let end = src.find("</edXML:MessageHeader>").unwrap() + "</edXML:MessageHeader>".len();
    let block = &src[start..end];
    let doc = format!("{}{block}\r\n      {}", &src[..end], &src[end..]);
    let err = refuse_default(&doc);
    assert_eq!(
        err.kind,
        ReadErrorKind::DuplicateElement {
            name: "MessageHeader".into()
        }
    );
    assert_eq!(err.path, HEADER);
    assert_eq!(err.line, line_of(&src, "</edXML:MessageHeader>"));

    // A Status wrapper next to a MessageHeader is a duplicate too.
    let status = edit(
        &src,
        "</edXML:MessageHeader>",
        "</edXML:MessageHeader><edXML:Status/>",
    );
    assert_eq!(
        refuse_default(&status).kind,
        ReadErrorKind::DuplicateElement {
            name: "Status".into()
        }
    );
}

#[test]
fn other_duplicated_singletons() {
    let src = document();
    for (what, from, to) in [
        (
            "From",
            "<edXML:To>",
            "<edXML:From><edXML:OrganId>000.00.00.G01</edXML:OrganId><edXML:OrganName>x</edXML:OrganName></edXML:From><edXML:To>",
        ),
        (
            "DocumentId",
            "<edXML:Code>",
            "<edXML:DocumentId>other</edXML:DocumentId><edXML:Code>",
        ),
        (
            "edXMLHeader",
            "<edXML:edXMLBody>",
            "<edXML:edXMLHeader/><edXML:edXMLBody>",
        ),
        (
            "edXMLEnvelope",
            "<AttachmentEncoded>",
            "<q:edXMLEnvelope xmlns:q=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\"/><AttachmentEncoded>",
        ),
        (
            "Subject",
            "<edXML:Content>",
            "<edXML:Subject>second</edXML:Subject><edXML:Content>",
        ),
    ] {
        let err = refuse_default(edit(&src, from, to));
        assert_eq!(
            err.kind,
            ReadErrorKind::DuplicateElement { name: what.into() },
            "{err}"
        );
        assert!(err.path.ends_with(&format!("/{what}")), "{err}");
    }
}

#[test]
fn signature_wrapping_shapes_are_refused() {
    let src = document();
    let ds = "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo/></ds:Signature>";
    let signed = edit(
        &src,
        "</edXML:edXMLHeader>",
        &format!("{ds}</edXML:edXMLHeader>"),
    );
    let out = read(signed.as_bytes(), &ReadOptions::default()).unwrap();
    assert_eq!(out.signature, SignatureState::XmlDsig);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.kind == WarningKind::LegacySignatureIgnored)
    );

    let two = edit(
        &signed,
        "</edXML:edXMLHeader>",
        &format!("{ds}</edXML:edXMLHeader>"),
    );
    assert_eq!(
        refuse_default(&two).kind,
        ReadErrorKind::DuplicateElement {
            name: "Signature".into()
        }
    );
    let misplaced = edit(
        &src,
        "</edXML:MessageHeader>",
        &format!("{ds}</edXML:MessageHeader>"),
    );
    let err = refuse_default(&misplaced);
    assert_eq!(err.kind, ReadErrorKind::MisplacedSignature);
    assert_eq!(err.path, format!("{HEADER}/Signature"));
    let hidden = edit(
        &src,
        "</edXML:MessageHeader>",
        &format!("<edXML:Extra>{ds}</edXML:Extra></edXML:MessageHeader>"),
    );
    assert_eq!(
        refuse_default(&hidden).kind,
        ReadErrorKind::MisplacedSignature
    );
}

#[test]
fn lenient_warnings_become_strict_refusals() {
    let src = document();
    let cases = [
        edit(
            &src,
            "<edXML:Subject>",
            "<edXML:Unknown>x</edXML:Unknown><edXML:Subject>",
        ),
        edit(&src, "000.00.00.H14", "H37.DN.001"),
        edit(
            &src,
            "<edXML:ContentId>cid:209</edXML:ContentId>",
            "<edXML:ContentId>cid:210</edXML:ContentId>",
        ),
        edit(&src, "<edXML:From>", "<edXML:From>stray"),
    ];
    for doc in cases {
        let out = read(doc.as_bytes(), &ReadOptions::default()).unwrap();
        assert!(!out.warnings.is_empty());
        let err = refuse(&doc, &ReadOptions::strict());
        assert!(matches!(err.kind, ReadErrorKind::Strict(_)), "{err}");
    }
    // A reference and an attachment that do not pair up give two warnings.
    let unpaired = edit(
        &src,
        "<edXML:ContentId>cid:209</edXML:ContentId>",
        "<edXML:ContentId>cid:210</edXML:ContentId>",
    );
    let kinds: Vec<WarningKind> = read(unpaired.as_bytes(), &ReadOptions::default())
        .unwrap()
        .warnings
        .into_iter()
        .map(|w| w.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            WarningKind::ReferenceWithoutAttachment {
                content_id: "210".into()
            },
            WarningKind::AttachmentWithoutReference {
                content_id: "209".into()
            },
        ]
    );
}

#[test]
fn duplicate_content_ids_are_refused() {
    let src = document();
    let start = src.find("<Attachment>").unwrap();
    let end = src.find("</Attachment>").unwrap() + "</Attachment>".len();
    let doc = format!("{}{}{}", &src[..end], &src[start..end], &src[end..]);
    let err = refuse_default(&doc);
    assert!(
        matches!(&err.kind, ReadErrorKind::DuplicateContentId { content_id, .. } if content_id == "209"),
        "{err}"
    );
    assert_eq!(err.path, "/edXML/AttachmentEncoded/Attachment");
}

#[test]
fn malformed_xml_is_located() {
    let src = status01();
    let doc = edit(&src, "</edXML:Staff>", "</edXML:Staf>");
    let err = refuse_default(&doc);
    assert!(matches!(err.kind, ReadErrorKind::Malformed(_)), "{err}");
    assert_eq!(err.line, line_of(&src, "</edXML:Staff>"));
    let truncated = &src.as_bytes()[..src.len() / 2];
    assert!(matches!(
        refuse_default(truncated).kind,
        ReadErrorKind::Malformed(_)
    ));
    let trailing = format!("{src}<edXML/>");
    assert!(matches!(
        refuse_default(trailing).kind,
        ReadErrorKind::Malformed(_)
    ));
    let undeclared = edit(&src, "<edXML:Description>", "<x:Description>");
    assert!(matches!(
        refuse_default(undeclared).kind,
        ReadErrorKind::Malformed(_)
    ));
    let bad_payload = edit(&document(), "UEsDBBQA", "UEsD*BQA");
    let err = refuse_default(bad_payload);
    assert!(
        matches!(err.kind, ReadErrorKind::InvalidPayload { .. }),
        "{err}"
    );
    assert_eq!(
        err.path,
        "/edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"
    );
}

#[test]
fn warnings_are_bounded_and_in_document_order() {
    let many = "<edXML:Unknown/>".repeat(5000);
    let long_ns = format!("urn:{}", "n".repeat(50_000));
    let foreign = format!("<f:x xmlns:f=\"{long_ns}\"><f:y/></f:x>");
    let doc = edit(
        &document(),
        "<edXML:Subject>",
        &format!("{many}<edXML:Subject>"),
    );
    let doc = edit(&doc, "<edXML:Code>", &format!("{foreign}<edXML:Code>"));
    let out = read(doc.as_bytes(), &ReadOptions::default()).unwrap();
    assert_eq!(out.warnings.len(), 1001);
    assert_eq!(
        out.warnings.last().unwrap().kind,
        WarningKind::MoreWarningsOmitted { count: 4001 }
    );
    let positions: Vec<(u64, u64)> = out.warnings.iter().map(|w| (w.line, w.column)).collect();
    let mut sorted = positions.clone();
    sorted.sort();
    assert_eq!(positions, sorted);
    // The foreign element comes first in the document; its namespace is named, shortened.
    match &out.warnings[0].kind {
        WarningKind::UnknownElement {
            name,
            namespace: Some(ns),
        } => {
            assert_eq!(name, "x");
            assert!(ns.starts_with("urn:nnn") && ns.len() < 200, "{ns:.40}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(out.warnings[0].path, format!("{HEADER}/x"));
}
