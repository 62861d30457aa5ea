//! The ASiC-E container (ETSI EN 319 162-1): a zip whose first entry is `mimetype`, stored
//! uncompressed, holding `application/vnd.etsi.asic-e+zip`, with `META-INF/manifest.xml`
//! (the OASIS OpenDocument manifest ASiC-E uses) listing every data file and its media type.
//!
//! Reading is for hostile input: entry count, each entry's size and the total are bounded
//! before and while inflating (a zip bomb stops at the limit), names must be plain relative
//! paths (no `..`, no absolute path, no backslash, no control characters), a name appears
//! once, and encrypted or directory entries are refused. Writing produces exactly what
//! reading accepts.

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};

use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// The ASiC-E media type, the content of `mimetype`.
pub const MIMETYPE: &str = "application/vnd.etsi.asic-e+zip";
/// The OpenDocument manifest's namespace.
pub const MANIFEST_NS: &str = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0";
/// Path of the OpenDocument manifest.
pub const MANIFEST_PATH: &str = "META-INF/manifest.xml";

/// Bounds on what a container may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_entries: usize,
    pub max_entry_bytes: u64,
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 10_000,
            max_entry_bytes: 256 * 1024 * 1024,
            max_total_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Why a container cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerError {
    #[error("not a zip archive: {0}")]
    NotZip(String),
    #[error("not an ASiC-E container: {0}")]
    NotAsic(String),
    #[error("entry {name:?}: {reason}")]
    BadEntry { name: String, reason: String },
    #[error("the container is larger than allowed: {0}")]
    TooLarge(String),
    #[error("cannot write the container: {0}")]
    Write(String),
}

/// One file to put in a container.
#[derive(Debug, Clone)]
pub struct FileOut {
    pub path: String,
    pub bytes: Vec<u8>,
    pub media_type: &'static str,
}

/// Writes a container: `mimetype` first (stored), then `META-INF/manifest.xml`, then the
/// files in the order given (deflated).
pub fn write(files: &[FileOut]) -> Result<Vec<u8>, ContainerError> {
    let w = |e: zip::result::ZipError| ContainerError::Write(e.to_string());
    let io = |e: std::io::Error| ContainerError::Write(e.to_string());
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Stored)
        .unix_permissions(0o644);
    let deflated = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o644);
    zip.start_file("mimetype", stored).map_err(w)?;
    zip.write_all(MIMETYPE.as_bytes()).map_err(io)?;
    zip.start_file(MANIFEST_PATH, deflated).map_err(w)?;
    zip.write_all(&odf_manifest(files)).map_err(io)?;
    for f in files {
        check_name(&f.path).map_err(|reason| ContainerError::BadEntry {
            name: f.path.clone(),
            reason,
        })?;
        zip.start_file(f.path.as_str(), deflated).map_err(w)?;
        zip.write_all(&f.bytes).map_err(io)?;
    }
    Ok(zip.finish().map_err(w)?.into_inner())
}

fn odf_manifest(files: &[FileOut]) -> Vec<u8> {
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!(
        "<manifest:manifest xmlns:manifest=\"{MANIFEST_NS}\" manifest:version=\"1.2\">\n"
    ));
    s.push_str(&format!(
        "  <manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"{MIMETYPE}\"/>\n"
    ));
    for f in files {
        s.push_str(&format!(
            "  <manifest:file-entry manifest:full-path=\"{}\" manifest:media-type=\"{}\"/>\n",
            crate::xml::escape(&f.path),
            crate::xml::escape(f.media_type)
        ));
    }
    s.push_str("</manifest:manifest>\n");
    s.into_bytes()
}

/// A plain relative path: segments of printable characters, no `.`/`..` segment, no
/// backslash, not absolute, at most 255 bytes.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("the name is empty or longer than 255 bytes".into());
    }
    if name.starts_with('/') || name.contains('\\') || name.ends_with('/') {
        return Err("not a plain relative file path".into());
    }
    if name.chars().any(|c| c.is_control()) {
        return Err("the name holds a control character".into());
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err("the path has an empty, `.` or `..` segment".into());
    }
    Ok(())
}

/// A container's entries: name → bytes (every entry but `mimetype`).
pub type Entries = BTreeMap<String, Vec<u8>>;

/// Reads a container, checking its ASiC-E form and the limits.
pub fn read(bytes: &[u8], limits: &Limits) -> Result<Entries, ContainerError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ContainerError::NotZip(e.to_string()))?;
    if zip.len() > limits.max_entries {
        return Err(ContainerError::TooLarge(format!(
            "{} entries, at most {} allowed",
            zip.len(),
            limits.max_entries
        )));
    }
    if zip.is_empty() {
        return Err(ContainerError::NotAsic("the zip is empty".into()));
    }
    let mut out = Entries::new();
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| ContainerError::NotZip(format!("entry #{}: {e}", i + 1)))?;
        let name = entry.name().to_string();
        let bad = |reason: String| ContainerError::BadEntry {
            name: name.clone(),
            reason,
        };
        if entry.encrypted() {
            return Err(bad("encrypted entries are refused".into()));
        }
        if entry.is_dir() {
            return Err(bad(
                "directory entries are not part of an ASiC-E container".into()
            ));
        }
        check_name(&name).map_err(&bad)?;
        if i == 0 {
            if name != "mimetype" {
                return Err(ContainerError::NotAsic(format!(
                    "the first entry is {name:?}, not \"mimetype\""
                )));
            }
            if entry.compression() != CompressionMethod::Stored {
                return Err(ContainerError::NotAsic(
                    "\"mimetype\" is compressed; it must be stored".into(),
                ));
            }
        } else if name == "mimetype" {
            return Err(bad("\"mimetype\" appears twice".into()));
        }
        let mut data = Vec::new();
        let cap = limits.max_entry_bytes.min(limits.max_total_bytes - total);
        (&mut entry)
            .take(cap + 1)
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("cannot be read: {e}")))?;
        if data.len() as u64 > cap {
            return Err(ContainerError::TooLarge(format!(
                "entry {name:?} inflates past {cap} bytes"
            )));
        }
        total += data.len() as u64;
        if i == 0 {
            if data != MIMETYPE.as_bytes() {
                return Err(ContainerError::NotAsic(format!(
                    "\"mimetype\" holds {:?}, not {MIMETYPE:?}",
                    String::from_utf8_lossy(&data)
                )));
            }
            continue;
        }
        if out.insert(name.clone(), data).is_some() {
            return Err(bad("the name appears twice".into()));
        }
    }
    Ok(out)
}

/// The data files `META-INF/manifest.xml` lists (full paths, without the `/` root entry).
pub fn odf_manifest_paths(xml: &[u8]) -> Result<Vec<String>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::NsReader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    loop {
        match reader.read_resolved_event_into(&mut buf) {
            Err(e) => return Err(format!("not well-formed XML: {e}")),
            Ok((_, Event::DocType(_))) => return Err("a DOCTYPE is present".into()),
            Ok((ns, Event::Start(e) | Event::Empty(e))) => {
                let in_ns = matches!(ns, quick_xml::name::ResolveResult::Bound(n)
                    if n.as_ref() == MANIFEST_NS.as_bytes());
                if in_ns && e.local_name().as_ref() == b"file-entry" {
                    let mut path = None;
                    for a in e.attributes() {
                        let a = a.map_err(|e| format!("bad attribute: {e}"))?;
                        if a.key.local_name().as_ref() == b"full-path" {
                            path = Some(
                                a.unescape_value()
                                    .map_err(|e| format!("bad attribute: {e}"))?
                                    .into_owned(),
                            );
                        }
                    }
                    match path {
                        Some(p) if p == "/" => {}
                        Some(p) => out.push(p),
                        None => return Err("a file-entry has no full-path".into()),
                    }
                }
            }
            Ok((_, Event::Eof)) => break,
            Ok(_) => {}
        }
        buf.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<FileOut> {
        vec![
            FileOut {
                path: "packets/01-document.edxml".into(),
                bytes: b"<edXML/>".to_vec(),
                media_type: "application/xml",
            },
            FileOut {
                path: "metadata.xml".into(),
                bytes: b"<m/>".to_vec(),
                media_type: "application/xml",
            },
        ]
    }

    #[test]
    fn written_containers_read_back_with_mimetype_first_and_stored() {
        let zip = write(&files()).unwrap();
        // The mimetype is readable at a fixed offset, as ASiC requires (offset 30, after the
        // local header with the 8-byte name).
        assert_eq!(&zip[30..38], b"mimetype");
        assert_eq!(&zip[38..38 + MIMETYPE.len()], MIMETYPE.as_bytes());
        let entries = read(&zip, &Limits::default()).unwrap();
        assert_eq!(entries["packets/01-document.edxml"], b"<edXML/>");
        let listed = odf_manifest_paths(&entries[MANIFEST_PATH]).unwrap();
        assert_eq!(listed, vec!["packets/01-document.edxml", "metadata.xml"]);
    }

    #[test]
    fn hostile_containers_are_refused_with_the_reason() {
        // Not a zip.
        assert!(matches!(
            read(b"hello", &Limits::default()),
            Err(ContainerError::NotZip(_))
        ));
        // First entry not mimetype.
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("a.xml", SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"x").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(matches!(
            read(&bytes, &Limits::default()),
            Err(ContainerError::NotAsic(_))
        ));
        // A path that climbs out.
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        zip.start_file("mimetype", stored).unwrap();
        zip.write_all(MIMETYPE.as_bytes()).unwrap();
        zip.start_file("../evil", stored).unwrap();
        zip.write_all(b"x").unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(matches!(
            read(&bytes, &Limits::default()),
            Err(ContainerError::BadEntry { .. })
        ));
        // A bomb: 10 MB of zeros deflates small, but the limit stops it.
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("mimetype", stored).unwrap();
        zip.write_all(MIMETYPE.as_bytes()).unwrap();
        zip.start_file("big", SimpleFileOptions::default()).unwrap();
        zip.write_all(&vec![0u8; 10 * 1024 * 1024]).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(bytes.len() < 100_000);
        let small = Limits {
            max_entry_bytes: 1024 * 1024,
            ..Limits::default()
        };
        assert!(matches!(
            read(&bytes, &small),
            Err(ContainerError::TooLarge(_))
        ));
    }
}
