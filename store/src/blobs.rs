//! Large values (signed packets) kept in an append-only file beside the database.
//!
//! redb keeps a value inside its B-tree leaf, so inserting an 18 KB packet under a random key
//! (a packet id is a SHA-256) rewrites the leaf pages around it: about 450 KB written per
//! document for 70 KB of packets. Here the bytes are appended once to `<database>.blobs` and
//! the table holds a 23-byte reference to them (offset, length, CRC-32 of the bytes).
//!
//! Invariants:
//! - **Written before referenced, synced before committed.** [`Blobs::put`] runs inside a write
//!   job (it takes the [`WriteTransaction`] as proof); the store's writer calls
//!   [`Blobs::sync`] (fdatasync) after the batch's jobs ran and *before* the redb commit, so a
//!   committed reference never points at bytes that are not durable.
//! - **A batch that is not committed leaves nothing referenced.** The writer marks the end of
//!   the file before a batch and rolls it back when the batch's jobs fail or the sync fails, so
//!   the next batch writes over those bytes. After an ambiguous commit failure it does not roll
//!   back: the bytes stay, unreferenced, rather than risk overwriting committed ones.
//! - Bytes past every committed reference (a crash between the sync and the commit, a torn
//!   append) are never read; the next process appends after them.
//! - Append-only: referenced bytes are never rewritten, so reads (`pread`) need no lock and
//!   see exactly what was committed. Each read checks the length against the file and the
//!   CRC-32 against the bytes, and names the database when either disagrees.
//! - Values written by earlier versions inline in the table (raw packet bytes, which never start
//!   with a NUL byte) are still read as they are: [`Blobs::load`] takes either form.
//! - The file is readable by its owner only (0600), like the database.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use redb::WriteTransaction;

use super::StoreError;

/// First bytes of a stored reference: a NUL (no XML document starts with one), `B`, version 1.
const TAG: [u8; 3] = [0, b'B', 1];
/// Length of an encoded reference: tag, offset, length, CRC-32.
pub const REF_LEN: usize = 3 + 8 + 8 + 4;

/// Where one value lives in the blob file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    /// Byte offset in the file.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// CRC-32 of the bytes.
    pub crc: u32,
}

impl BlobRef {
    /// The reference as stored in a table value.
    pub fn encode(&self) -> [u8; REF_LEN] {
        let mut out = [0u8; REF_LEN];
        out[..3].copy_from_slice(&TAG);
        out[3..11].copy_from_slice(&self.offset.to_le_bytes());
        out[11..19].copy_from_slice(&self.len.to_le_bytes());
        out[19..].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    /// A table value that is a reference, or `None` for a value stored inline.
    pub fn decode(value: &[u8]) -> Option<BlobRef> {
        if value.len() != REF_LEN || value[..3] != TAG {
            return None;
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&value[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&value[19..23]);
        Some(BlobRef {
            offset: u64_at(3),
            len: u64_at(11),
            crc: u32::from_le_bytes(crc),
        })
    }
}

/// The blob file of one store. Cheap to clone; share it with the jobs and reads that need it.
#[derive(Clone)]
pub struct Blobs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs")
            .field("path", &self.inner.path)
            .field("end", &self.inner.end.load(Ordering::Relaxed))
            .finish()
    }
}

struct Inner {
    path: PathBuf,
    /// Opened when the file exists at open, or created by the first append.
    file: OnceLock<File>,
    /// Serialises creation of the file (the first append).
    create: Mutex<()>,
    /// Where the next append goes. Only the writer moves it.
    end: AtomicU64,
    /// Appended since the last sync.
    dirty: AtomicBool,
    /// The last append's I/O failure, for the writer to treat as the storage failing.
    failure: Mutex<Option<String>>,
}

impl Blobs {
    /// The blob file beside the database at `db_path`: opened if it exists, created on the
    /// first append otherwise.
    pub(crate) fn open(db_path: &Path) -> Result<Blobs, StoreError> {
        let mut name = db_path.as_os_str().to_owned();
        name.push(".blobs");
        let path = PathBuf::from(name);
        let file = OnceLock::new();
        let mut end = 0;
        match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => {
                end = f.metadata().map_err(|e| io_error(&path, e))?.len();
                let _ = file.set(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
        Ok(Blobs {
            inner: Arc::new(Inner {
                path,
                file,
                create: Mutex::new(()),
                end: AtomicU64::new(end),
                dirty: AtomicBool::new(false),
                failure: Mutex::new(None),
            }),
        })
    }

    /// The blob file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Appends `bytes` and returns the value to store in the table in their place. Durable
    /// only with the transaction `_txn` belongs to: the writer syncs before it commits.
    pub fn put(&self, _txn: &WriteTransaction, bytes: &[u8]) -> Result<[u8; REF_LEN], StoreError> {
        let file = self.file_for_append()?;
        let offset = self.inner.end.load(Ordering::Acquire);
        if let Err(e) = file.write_all_at(bytes, offset) {
            return Err(self.failed(e));
        }
        self.inner
            .end
            .store(offset + bytes.len() as u64, Ordering::Release);
        self.inner.dirty.store(true, Ordering::Release);
        Ok(BlobRef {
            offset,
            len: bytes.len() as u64,
            crc: crc32fast::hash(bytes),
        }
        .encode())
    }

    /// The bytes a table value stands for: read from the file for a reference, as they are for
    /// a value stored inline by an earlier version.
    pub fn load(&self, value: &[u8]) -> Result<Vec<u8>, StoreError> {
        match BlobRef::decode(value) {
            Some(r) => self.read(r),
            None => Ok(value.to_vec()),
        }
    }

    fn read(&self, r: BlobRef) -> Result<Vec<u8>, StoreError> {
        let corrupt = |why: String| {
            StoreError::Corrupt(format!(
                "{} at offset {} ({} bytes): {why}",
                self.inner.path.display(),
                r.offset,
                r.len
            ))
        };
        let Some(file) = self.file_for_read()? else {
            return Err(corrupt("the blob file is missing".into()));
        };
        let len = usize::try_from(r.len).map_err(|_| corrupt("too long to read".into()))?;
        let file_len = file
            .metadata()
            .map_err(|e| io_error(&self.inner.path, e))?
            .len();
        if r.offset.checked_add(r.len).is_none_or(|end| end > file_len) {
            return Err(corrupt(format!("the file holds only {file_len} bytes")));
        }
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, r.offset)
            .map_err(|e| io_error(&self.inner.path, e))?;
        if crc32fast::hash(&buf) != r.crc {
            return Err(corrupt("the bytes do not match their checksum".into()));
        }
        Ok(buf)
    }

    /// Where the next append goes (the writer's mark before a batch).
    pub(crate) fn mark(&self) -> u64 {
        self.inner.end.load(Ordering::Acquire)
    }

    /// Forgets what was appended since `mark`: its transaction was not committed.
    pub(crate) fn roll_back(&self, mark: u64) {
        self.inner.end.store(mark, Ordering::Release);
    }

    /// Makes every append so far durable (fdatasync), if there was any since the last sync.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        if !self.inner.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let Some(file) = self.inner.file.get() else {
            return Ok(());
        };
        file.sync_data().map_err(|e| {
            self.inner.dirty.store(true, Ordering::Release);
            self.failed(e)
        })
    }

    /// The last append or sync failure since asked, if any (the storage failing, not a job).
    pub(crate) fn take_failure(&self) -> Option<String> {
        self.inner
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn failed(&self, e: std::io::Error) -> StoreError {
        let error = io_error(&self.inner.path, e);
        *self.inner.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
        error
    }

    fn file_for_read(&self) -> Result<Option<&File>, StoreError> {
        self.file(false)
    }

    fn file_for_append(&self) -> Result<&File, StoreError> {
        // `create` never answers `None`.
        self.file(true)?
            .ok_or_else(|| self.failed(std::io::ErrorKind::NotFound.into()))
    }

    /// The open file; opened on first use, and created (its name made durable) when `create`.
    /// `None` when it does not exist and `create` is false.
    fn file(&self, create: bool) -> Result<Option<&File>, StoreError> {
        if let Some(f) = self.inner.file.get() {
            return Ok(Some(f));
        }
        let _guard = self.inner.create.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = self.inner.file.get() {
            return Ok(Some(f));
        }
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(create);
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let f = match options.open(&self.inner.path) {
            Ok(f) => f,
            Err(e) if !create && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if create => return Err(self.failed(e)),
            Err(e) => return Err(io_error(&self.inner.path, e)),
        };
        if create {
            // The new file's name must be durable before anything in it is referenced.
            let dir = match self.inner.path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| self.failed(e))?;
        }
        Ok(Some(self.inner.file.get_or_init(|| f)))
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Blob {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_inline_values_are_not_references() {
        let r = BlobRef {
            offset: 1 << 40,
            len: 53 * 1024 * 1024,
            crc: 0xdead_beef,
        };
        assert_eq!(BlobRef::decode(&r.encode()), Some(r));
        assert_eq!(BlobRef::decode(b"<?xml version=\"1.0\"?><edXML/>"), None);
        // An inline value of exactly the reference's length is still inline unless tagged.
        assert_eq!(BlobRef::decode(&[b'<'; REF_LEN]), None);
    }
}
