//! Attached files of a document packet (`AttachmentEncoded/Attachment`) and their payloads.
//!
//! Invariants: a [`Payload`] holds base64 text over the standard alphabet with ASCII whitespace
//! removed, `=` padding only at the very end, and a length that decodes to whole bytes, so
//! decoding can only fail on a bug; reading a packet never decodes a payload (decoding is lazy,
//! on request, and can stream in bounded chunks). ZIP detection looks at the decoded magic bytes
//! only, and ZIP listing counts real inflated bytes against a caller-given bound.

use std::fmt;
use std::io::{self, Cursor, Read, Write};

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

/// Decoder accepting payloads with or without padding and non-canonical trailing bits, as
/// producers in the field emit both.
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Base64 characters decoded per chunk when streaming (a multiple of 4).
const STREAM_CHUNK: usize = 64 * 1024;

/// ZIP local file header magic.
const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Errors about a payload or its ZIP content.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("invalid base64 character {found:?} at offset {offset} of the payload")]
    InvalidBase64Char { offset: usize, found: char },
    #[error(
        "invalid base64 padding at offset {offset} of the payload ('=' may only end the text, at most twice)"
    )]
    InvalidBase64Padding { offset: usize },
    #[error("base64 payload length {len} does not decode to whole bytes")]
    InvalidBase64Length { len: usize },
    #[error("base64 decoding failed: {0}")]
    Decode(#[from] base64::DecodeError),
    #[error("the attachment is not a ZIP archive (no PK\\x03\\x04 signature at its start)")]
    NotZip,
    #[error("invalid ZIP archive: {0}")]
    Zip(String),
    #[error(
        "ZIP content exceeds {limit} bytes once decompressed (reached while inflating {entry:?}); refused as a possible zip bomb"
    )]
    ZipTooLarge { limit: u64, entry: String },
    #[error("I/O error while writing the decoded attachment: {0}")]
    Io(#[from] io::Error),
}

/// Base64 text of an attached file, validated but not decoded.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload {
    base64: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Alphabet,
    Pad,
    Space,
    Invalid,
}

fn class(b: u8) -> Class {
    match b {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'+' | b'/' => Class::Alphabet,
        b'=' => Class::Pad,
        b' ' | b'\t' | b'\r' | b'\n' => Class::Space,
        _ => Class::Invalid,
    }
}

fn is_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric() | (b == b'+') | (b == b'/')
}

impl Payload {
    /// Validates base64 text, dropping ASCII whitespace (line-wrapped producers).
    pub fn from_base64(text: &str) -> Result<Self, AttachmentError> {
        let bytes = text.as_bytes();
        // Fast path: the whole text is plain alphabet followed by at most two '='.
        let body_end = bytes.len()
            - bytes
                .iter()
                .rev()
                .take(2)
                .take_while(|&&b| b == b'=')
                .count();
        let plain = bytes[..body_end]
            .chunks(256)
            .all(|c| c.iter().fold(true, |ok, &b| ok & is_alphabet(b)));
        let cleaned = if plain {
            text.to_owned()
        } else {
            Self::clean_slow(bytes)?
        };
        let pad = cleaned.bytes().rev().take_while(|&b| b == b'=').count();
        let data = cleaned.len() - pad;
        let valid_len = if pad > 0 {
            cleaned.len() % 4 == 0 && data % 4 + pad == 4
        } else {
            data % 4 != 1
        };
        if !valid_len {
            return Err(AttachmentError::InvalidBase64Length { len: cleaned.len() });
        }
        Ok(Self { base64: cleaned })
    }

    fn clean_slow(bytes: &[u8]) -> Result<String, AttachmentError> {
        let mut out = Vec::with_capacity(bytes.len());
        let mut pads = 0usize;
        for (offset, &b) in bytes.iter().enumerate() {
            match class(b) {
                Class::Alphabet if pads == 0 => out.push(b),
                Class::Alphabet => return Err(AttachmentError::InvalidBase64Padding { offset }),
                Class::Pad if pads < 2 => {
                    pads += 1;
                    out.push(b);
                }
                Class::Pad => return Err(AttachmentError::InvalidBase64Padding { offset }),
                Class::Space => {}
                Class::Invalid => {
                    let found = String::from_utf8_lossy(&bytes[offset..])
                        .chars()
                        .next()
                        .unwrap_or(char::REPLACEMENT_CHARACTER);
                    return Err(AttachmentError::InvalidBase64Char { offset, found });
                }
            }
        }
        // Only ASCII bytes were kept.
        String::from_utf8(out).map_err(|e| AttachmentError::InvalidBase64Char {
            offset: e.utf8_error().valid_up_to(),
            found: char::REPLACEMENT_CHARACTER,
        })
    }

    /// Encodes file bytes (standard alphabet, padded, no line breaks).
    pub fn encode(bytes: &[u8]) -> Self {
        Self {
            base64: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }

    /// The base64 text (no whitespace).
    pub fn as_base64(&self) -> &str {
        &self.base64
    }

    /// Length of the base64 text in bytes.
    pub fn encoded_len(&self) -> usize {
        self.base64.len()
    }

    /// Exact number of bytes the payload decodes to, computed without decoding.
    pub fn decoded_len(&self) -> u64 {
        let pad = self.base64.bytes().rev().take_while(|&b| b == b'=').count();
        let n = (self.base64.len() - pad) as u64;
        n / 4 * 3 + [0, 0, 1, 2][(n % 4) as usize]
    }

    /// Decodes the whole payload in memory.
    pub fn decoded(&self) -> Result<Vec<u8>, AttachmentError> {
        let mut out = Vec::with_capacity(usize::try_from(self.decoded_len()).unwrap_or(0));
        DECODER.decode_vec(self.base64.as_bytes(), &mut out)?;
        Ok(out)
    }

    /// Decodes in 48 KiB chunks into `w`; returns the number of bytes written.
    pub fn write_decoded_to(&self, mut w: impl Write) -> Result<u64, AttachmentError> {
        let mut buf = vec![0u8; STREAM_CHUNK / 4 * 3];
        let mut total = 0u64;
        for chunk in self.base64.as_bytes().chunks(STREAM_CHUNK) {
            let n = DECODER.decode_slice(chunk, &mut buf).map_err(|e| match e {
                base64::DecodeSliceError::DecodeError(d) => AttachmentError::Decode(d),
                base64::DecodeSliceError::OutputSliceTooSmall => {
                    AttachmentError::InvalidBase64Length { len: chunk.len() }
                }
            })?;
            w.write_all(&buf[..n])?;
            total += n as u64;
        }
        Ok(total)
    }

    /// The first decoded bytes (up to 6), enough for magic-number checks.
    fn decoded_prefix(&self) -> Vec<u8> {
        let end = self.base64.len().min(8);
        let head = &self.base64.as_bytes()[..end - end % 4];
        DECODER.decode(head).unwrap_or_default()
    }

    /// Whether the decoded bytes start with the ZIP signature `PK\x03\x04`.
    pub fn is_zip(&self) -> bool {
        self.decoded_prefix().starts_with(ZIP_MAGIC)
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never dump megabytes of base64 into logs.
        let head: String = self.base64.chars().take(16).collect();
        f.debug_struct("Payload")
            .field("base64_len", &self.base64.len())
            .field("decoded_len", &self.decoded_len())
            .field("head", &head)
            .finish()
    }
}

/// JSON shows the payload's size, not its content.
impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Payload", 2)?;
        st.serialize_field("base64_len", &self.base64.len())?;
        st.serialize_field("decoded_len", &self.decoded_len())?;
        st.end()
    }
}

/// One file inside a ZIP attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZipEntry {
    pub name: String,
    /// Bytes actually produced by inflating the entry (not the header's claim).
    pub size: u64,
    pub compressed_size: u64,
    pub is_dir: bool,
}

/// Strips surrounding whitespace and a leading `cid:` (any case) from a ContentId.
pub fn normalize_content_id(id: &str) -> &str {
    let t = id.trim();
    match t.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("cid:") => t[4..].trim_start(),
        _ => t,
    }
}

/// An attached file: `AttachmentEncoded/Attachment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    /// ContentId without the `cid:` prefix.
    pub content_id: String,
    /// `AttachmentName`: the file name.
    pub name: String,
    pub description: Option<String>,
    /// `ContentType` as declared (not trusted: see [`Attachment::is_zip`]).
    pub content_type: String,
    pub payload: Payload,
}

impl Attachment {
    /// Builds an attachment from file bytes (the payload is base64-encoded here).
    pub fn from_bytes(
        content_id: impl AsRef<str>,
        name: impl Into<String>,
        content_type: impl Into<String>,
        bytes: &[u8],
    ) -> Self {
        Self::from_payload(content_id, name, content_type, Payload::encode(bytes))
    }

    /// Builds an attachment from base64 text already validated as a [`Payload`] (no decoding
    /// and encoding again: a big file is held once less).
    pub fn from_payload(
        content_id: impl AsRef<str>,
        name: impl Into<String>,
        content_type: impl Into<String>,
        payload: Payload,
    ) -> Self {
        Self {
            content_id: normalize_content_id(content_id.as_ref()).to_owned(),
            name: name.into(),
            description: None,
            content_type: content_type.into(),
            payload,
        }
    }

    pub fn decoded(&self) -> Result<Vec<u8>, AttachmentError> {
        self.payload.decoded()
    }

    pub fn decoded_len(&self) -> u64 {
        self.payload.decoded_len()
    }

    pub fn write_decoded_to(&self, w: impl Write) -> Result<u64, AttachmentError> {
        self.payload.write_decoded_to(w)
    }

    pub fn is_zip(&self) -> bool {
        self.payload.is_zip()
    }

    /// Lists the entries of a ZIP attachment, inflating each one to count its real size, and
    /// refuses as soon as the running total exceeds `max_total_uncompressed`.
    pub fn zip_entries(
        &self,
        max_total_uncompressed: u64,
    ) -> Result<Vec<ZipEntry>, AttachmentError> {
        if !self.is_zip() {
            return Err(AttachmentError::NotZip);
        }
        let zip_err = |e: zip::result::ZipError| AttachmentError::Zip(e.to_string());
        let mut archive = zip::ZipArchive::new(Cursor::new(self.decoded()?)).map_err(zip_err)?;
        let mut entries = Vec::with_capacity(archive.len());
        let mut total = 0u64;
        for i in 0..archive.len() {
            let file = archive.by_index(i).map_err(zip_err)?;
            let name = file.name().to_owned();
            let compressed_size = file.compressed_size();
            let is_dir = file.is_dir();
            let remaining = max_total_uncompressed - total;
            // Read at most one byte past the bound: enough to know it is exceeded.
            let mut limited = file.take(remaining.saturating_add(1));
            let size = io::copy(&mut limited, &mut io::sink())
                .map_err(|e| AttachmentError::Zip(format!("cannot inflate {name:?}: {e}")))?;
            if size > remaining {
                return Err(AttachmentError::ZipTooLarge {
                    limit: max_total_uncompressed,
                    entry: name,
                });
            }
            total += size;
            entries.push(ZipEntry {
                name,
                size,
                compressed_size,
                is_dir,
            });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn payload_validation() {
        assert_eq!(
            Payload::from_base64("QUJD").unwrap().decoded().unwrap(),
            b"ABC"
        );
        assert_eq!(
            Payload::from_base64("QUI=").unwrap().decoded().unwrap(),
            b"AB"
        );
        assert_eq!(
            Payload::from_base64("QUI").unwrap().decoded().unwrap(),
            b"AB"
        );
        let wrapped = Payload::from_base64("QU\r\nJD\n").unwrap();
        assert_eq!(wrapped.as_base64(), "QUJD");
        assert_eq!(Payload::from_base64("").unwrap().decoded_len(), 0);
        assert!(matches!(
            Payload::from_base64("QU*D"),
            Err(AttachmentError::InvalidBase64Char {
                offset: 2,
                found: '*'
            })
        ));
        assert!(matches!(
            Payload::from_base64("QU=D"),
            Err(AttachmentError::InvalidBase64Padding { offset: 3 })
        ));
        assert!(matches!(
            Payload::from_base64("QUJDQ"),
            Err(AttachmentError::InvalidBase64Length { len: 5 })
        ));
        assert!(matches!(
            Payload::from_base64("QQ==="),
            Err(AttachmentError::InvalidBase64Padding { .. })
        ));
        assert!(matches!(
            Payload::from_base64("QUJD=="),
            Err(AttachmentError::InvalidBase64Length { .. })
        ));
    }

    #[test]
    fn decoded_len_matches_decoding() {
        for n in 0..40usize {
            let data: Vec<u8> = (0..n as u8).collect();
            let p = Payload::encode(&data);
            assert_eq!(p.decoded_len(), n as u64);
            let unpadded = Payload::from_base64(p.as_base64().trim_end_matches('=')).unwrap();
            assert_eq!(unpadded.decoded_len(), n as u64);
            assert_eq!(unpadded.decoded().unwrap(), data);
        }
    }

    #[test]
    fn streaming_decode_matches_in_memory_decode() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let p = Payload::encode(&data);
        let mut out = Vec::new();
        assert_eq!(p.write_decoded_to(&mut out).unwrap(), data.len() as u64);
        assert_eq!(out, data);
    }

    #[test]
    fn content_id_normalisation() {
        assert_eq!(normalize_content_id("cid:209"), "209");
        assert_eq!(normalize_content_id(" CID:abc "), "abc");
        assert_eq!(normalize_content_id("209"), "209");
        assert_eq!(
            Attachment::from_bytes("cid:7", "a", "b", b"x").content_id,
            "7"
        );
    }

    #[test]
    fn zip_detection_uses_magic_bytes_not_names() {
        let zip = zip_of(&[("a.txt", b"hello")]);
        let a = Attachment::from_bytes("1", "report.pdf", "application/pdf", &zip);
        assert!(a.is_zip());
        let b = Attachment::from_bytes("2", "x.zip", "application/zip", b"%PDF-1.7");
        assert!(!b.is_zip());
        assert!(matches!(
            b.zip_entries(1 << 20),
            Err(AttachmentError::NotZip)
        ));
    }

    #[test]
    fn zip_entries_counts_real_sizes_and_refuses_bombs() {
        let big = vec![b'a'; 1_000_000];
        let zip = zip_of(&[("small.txt", b"hello"), ("big.txt", &big)]);
        let a = Attachment::from_bytes("1", "x.zip", "application/zip", &zip);
        let entries = a.zip_entries(2_000_000).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "small.txt");
        assert_eq!(entries[0].size, 5);
        assert_eq!(entries[1].size, 1_000_000);
        assert!(entries[1].compressed_size < 10_000);
        match a.zip_entries(500_000) {
            Err(AttachmentError::ZipTooLarge { limit, entry }) => {
                assert_eq!(limit, 500_000);
                assert_eq!(entry, "big.txt");
            }
            other => panic!("expected ZipTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn payload_debug_and_json_do_not_dump_content() {
        let p = Payload::encode(&vec![0u8; 3000]);
        let dbg = format!("{p:?}");
        assert!(dbg.len() < 200, "{dbg}");
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"base64_len":4000,"decoded_len":3000}"#
        );
    }
}
