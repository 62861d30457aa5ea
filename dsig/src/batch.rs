//! Batch-signed hub receipts: one hub signature over a whole batch of receipts.
//!
//! Signing every receipt on its own made hub receipts an eighth of a document's CPU (four
//! signatures at the hub, six verifications at the nodes). Here the hub signs once per batch,
//! Certificate Transparency style (RFC 6962 / RFC 9162):
//!
//! - Each receipt is first written unsigned, in its canonical form (`HubReceipt::to_xml`): the
//!   bytes `U`. Its **leaf hash** is `SHA-256(0x00 ‖ U)`.
//! - The leaf hashes of a batch, in order, form a Merkle tree exactly as RFC 6962 §2.1 defines
//!   it (inner nodes `SHA-256(0x01 ‖ left ‖ right)`, the split at the largest power of two
//!   below the size).
//! - The hub signs a **tree head**, a small XML document `ReceiptBatch` (tree size, root hash,
//!   time) with the same enveloped XML-DSig as before ([`crate::sign_root`]), so `xmlsec1`
//!   verifies it.
//! - Each receipt then carries a `<Batch>` element, inserted just before `</HubReceipt>`:
//!   its leaf index, its inclusion path (RFC 9162 §2.1.3) and the signed tree head in base64.
//!   **Deleting the bytes from `<Batch>` to `</Batch>` inclusive gives back `U` exactly**;
//!   that is the whole rule for recomputing the leaf.
//!
//! A receipt is valid when its tree head's signature verifies with the hub's certificate and
//! its inclusion path leads from its leaf hash to the signed root. A node that has checked a
//! tree head's signature remembers it ([`HeadCache`]), so a batch costs one signature check
//! per node instead of one per receipt. Receipts signed one by one (an enveloped `ds:Signature`
//! in the receipt itself, as hubs did before) are still accepted by every check here.
//!
//! Invariants:
//! - The fields a caller reads are those of `U`, the hashed bytes: the whole receipt must parse
//!   to the same fields as `U`, `U` carries neither a signature nor a batch, and there is one
//!   `<Batch>` element, strictly read (no attributes, no other content).
//! - A receipt is signed one way: both a `ds:Signature` and a `<Batch>` is refused.
//!
//! Blocking and CPU-bound: call from a blocking thread.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::digest;
use base64::Engine;
use quick_xml::Reader;
use quick_xml::events::Event;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::DSIG_NS;
use super::evidence::verify_root_trusted;
use super::receipt::{HubReceipt, Parts, RECEIPT_NS, ReceiptError};
use super::sign::{SignError, SigningIdentity};
use super::trust::{TrustStore, ValidatedChain};
use super::verify::Refusal;
use super::{sign_root, verify_root};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Most receipts in one batch (a path is then at most 20 hashes long).
pub const MAX_BATCH: usize = 1 << 20;
/// Most hashes read from one inclusion path.
const MAX_PATH: usize = 64;
/// Largest signed tree head read from a receipt, in bytes once decoded.
const MAX_HEAD_BYTES: usize = 64 * 1024;

const BATCH_OPEN: &str = "<Batch>";
const BATCH_CLOSE: &str = "</Batch>";
const RECEIPT_CLOSE: &str = "</HubReceipt>";

/// Why a receipt's signature or batch proof is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    /// The receipt or its `<Batch>` element is not in the expected form.
    #[error("the receipt's batch proof is malformed: {0}")]
    Malformed(String),
    /// The receipt's fields could not be read.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// The signature (of the receipt, or of its batch's tree head) was refused.
    #[error("{0}")]
    Signature(#[from] Refusal),
    /// The inclusion path does not lead to the signed root.
    #[error(
        "the receipt is not part of the batch the hub signed: its inclusion path does not lead \
         to the signed root hash (the receipt or its proof was altered)"
    )]
    NotIncluded,
}

/// `SHA-256(0x00 ‖ receipt)`: the leaf hash of an unsigned receipt.
pub fn leaf_hash(unsigned_receipt: &[u8]) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[0]);
    ctx.update(unsigned_receipt);
    to_hash(ctx.finish())
}

/// `SHA-256(0x01 ‖ left ‖ right)`: an inner node of the tree.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&[1]);
    ctx.update(left);
    ctx.update(right);
    to_hash(ctx.finish())
}

fn to_hash(d: digest::Digest) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The RFC 6962 Merkle tree hash of `leaves` (at least one) and every leaf's inclusion path,
/// from the leaf upwards.
pub fn tree(leaves: &[Hash]) -> (Hash, Vec<Vec<Hash>>) {
    match leaves.len() {
        0 => ([0; 32], Vec::new()),
        1 => (leaves[0], vec![Vec::new()]),
        n => {
            // The largest power of two strictly below n.
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let (left, mut left_paths) = tree(&leaves[..k]);
            let (right, mut right_paths) = tree(&leaves[k..]);
            for p in &mut left_paths {
                p.push(right);
            }
            for p in &mut right_paths {
                p.push(left);
            }
            left_paths.extend(right_paths);
            (node_hash(&left, &right), left_paths)
        }
    }
}

/// The root an inclusion path leads to (RFC 9162 §2.1.3.2), or `None` when the path cannot
/// belong to a tree of `size` leaves at `index`.
pub fn root_from_path(index: u64, size: u64, leaf: Hash, path: &[Hash]) -> Option<Hash> {
    if index >= size {
        return None;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        if s == 0 {
            return None;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    (s == 0).then_some(r)
}

/// What the hub signs for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// Receipts in the batch.
    pub size: u64,
    /// The Merkle tree hash of their leaf hashes.
    pub root: Hash,
    /// When the hub signed the batch (UTC).
    pub hub_time: OffsetDateTime,
}

impl TreeHead {
    /// The unsigned `ReceiptBatch` document.
    pub fn to_xml(&self) -> Vec<u8> {
        let time = self
            .hub_time
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .unwrap_or_default();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ReceiptBatch xmlns=\"{RECEIPT_NS}\" \
             version=\"1\">\n  <Size>{}</Size>\n  <Root>{}</Root>\n  <HubTime>{time}</HubTime>\n\
             </ReceiptBatch>\n",
            self.size,
            hex::encode(self.root),
        )
        .into_bytes()
    }

    /// Reads a (signed) tree head; the signature is skipped, and must be verified first.
    pub fn parse(xml: &[u8]) -> Result<TreeHead, BatchError> {
        let bad = |what: String| BatchError::Malformed(format!("tree head: {what}"));
        let mut r = quick_xml::NsReader::from_reader(xml);
        let (mut size, mut root, mut time) = (None, None, None);
        let mut depth = 0usize;
        let mut in_sig = 0usize;
        let mut current: Option<String> = None;
        let mut text = String::new();
        loop {
            let (res, ev) = r.read_resolved_event().map_err(|e| bad(e.to_string()))?;
            match ev {
                Event::DocType(_) => return Err(bad("a DOCTYPE is present".into())),
                Event::Start(e) => {
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let ns = match &res {
                        quick_xml::name::ResolveResult::Bound(ns) => ns.as_ref().to_vec(),
                        _ => Vec::new(),
                    };
                    if in_sig > 0 {
                        in_sig += 1;
                        continue;
                    }
                    depth += 1;
                    match depth {
                        1 if local == "ReceiptBatch" && ns == RECEIPT_NS.as_bytes() => {}
                        1 => return Err(bad(format!("the root is {local}, not ReceiptBatch"))),
                        2 if ns == DSIG_NS.as_bytes() && local == "Signature" => {
                            in_sig = 1;
                            depth -= 1;
                        }
                        2 if ns == RECEIPT_NS.as_bytes()
                            && matches!(local.as_str(), "Size" | "Root" | "HubTime") =>
                        {
                            current = Some(local);
                            text.clear();
                        }
                        _ => return Err(bad(format!("unexpected element {local}"))),
                    }
                }
                Event::Text(t) if in_sig == 0 => {
                    text.push_str(&t.decode().map_err(|e| bad(e.to_string()))?);
                }
                Event::End(_) => {
                    if in_sig > 0 {
                        in_sig -= 1;
                        continue;
                    }
                    depth = depth.saturating_sub(1);
                    let Some(name) = current.take() else {
                        continue;
                    };
                    let value = text.trim();
                    let dup = |name: &str| bad(format!("{name} appears twice"));
                    match name.as_str() {
                        "Size" => {
                            let n: u64 = value
                                .parse()
                                .ok()
                                .filter(|n| (1..=MAX_BATCH as u64).contains(n))
                                .ok_or_else(|| bad(format!("Size {value:?}")))?;
                            if size.replace(n).is_some() {
                                return Err(dup("Size"));
                            }
                        }
                        "Root" => {
                            let h =
                                parse_hash(value).ok_or_else(|| bad(format!("Root {value:?}")))?;
                            if root.replace(h).is_some() {
                                return Err(dup("Root"));
                            }
                        }
                        _ => {
                            let t = OffsetDateTime::parse(value, &Rfc3339)
                                .map_err(|_| bad(format!("HubTime {value:?}")))?;
                            if time.replace(t).is_some() {
                                return Err(dup("HubTime"));
                            }
                        }
                    }
                }
                Event::Empty(e) if in_sig == 0 => {
                    let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    return Err(bad(format!("empty element {local}")));
                }
                // The signature covers CDATA as text and entities resolved; the hub writes
                // neither, nor comments: refused rather than read differently.
                Event::CData(_) | Event::Comment(_) | Event::PI(_) | Event::GeneralRef(_)
                    if in_sig == 0 =>
                {
                    return Err(bad(
                        "a CDATA section, reference, comment or processing instruction".into(),
                    ));
                }
                Event::Eof => break,
                _ => {}
            }
        }
        Ok(TreeHead {
            size: size.ok_or_else(|| bad("no Size".into()))?,
            root: root.ok_or_else(|| bad("no Root".into()))?,
            hub_time: time.ok_or_else(|| bad("no HubTime".into()))?,
        })
    }
}

fn parse_hash(hex_text: &str) -> Option<Hash> {
    if hex_text.len() != 64
        || !hex_text
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).ok()?;
    Some(out)
}

/// Signs a batch of unsigned receipts (each as written by `HubReceipt::to_xml`) with one
/// signature; returns them, in order, each with its `<Batch>` proof.
pub fn sign_batch(
    unsigned: &[Vec<u8>],
    id: &SigningIdentity,
    hub_time: OffsetDateTime,
) -> Result<Vec<Vec<u8>>, SignError> {
    if unsigned.is_empty() {
        return Ok(Vec::new());
    }
    if unsigned.len() > MAX_BATCH {
        return Err(SignError::NotSignable {
            what: format!(
                "{} receipts in one batch; at most {MAX_BATCH}",
                unsigned.len()
            ),
        });
    }
    let mut closes = Vec::with_capacity(unsigned.len());
    for u in unsigned {
        let text = std::str::from_utf8(u).map_err(|_| SignError::NotSignable {
            what: "a receipt is not UTF-8".into(),
        })?;
        // `to_xml` escapes `<` in every field, so no field can hold this: a receipt that does
        // was not written by it. (Field text may well contain the XML-DSig namespace name.)
        if text.contains(BATCH_OPEN) {
            return Err(SignError::AlreadySigned);
        }
        closes.push(
            text.rfind(RECEIPT_CLOSE)
                .ok_or_else(|| SignError::NotSignable {
                    what: "a receipt has no </HubReceipt>".into(),
                })?,
        );
    }
    let leaves: Vec<Hash> = unsigned.iter().map(|u| leaf_hash(u)).collect();
    let (root, paths) = tree(&leaves);
    let head = TreeHead {
        size: unsigned.len() as u64,
        root,
        hub_time,
    };
    let signed_head = sign_root(&head.to_xml(), id)?;
    let head_b64 = base64::engine::general_purpose::STANDARD.encode(&signed_head);
    let mut out = Vec::with_capacity(unsigned.len());
    for (i, (u, path)) in unsigned.iter().zip(paths).enumerate() {
        // Just after the last field's end tag, so the receipt stays readable; the leaf rule
        // (delete `<Batch>`…`</Batch>`) does not depend on where it goes.
        let mut close = closes[i];
        if close > 0 && u[close - 1] == b'\n' {
            close -= 1;
        }
        let mut b = String::with_capacity(head_b64.len() + 100 * (path.len() + 2));
        b.push_str(BATCH_OPEN);
        b.push_str(&format!("\n    <Index>{i}</Index>"));
        for h in &path {
            b.push_str(&format!("\n    <Hash>{}</Hash>", hex::encode(h)));
        }
        b.push_str(&format!("\n    <Head>{head_b64}</Head>\n  {BATCH_CLOSE}"));
        let mut r = Vec::with_capacity(u.len() + b.len() + 4);
        r.extend_from_slice(&u[..close]);
        r.extend_from_slice(b.as_bytes());
        r.extend_from_slice(&u[close..]);
        out.push(r);
    }
    Ok(out)
}

/// A batched receipt taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batched {
    /// The receipt without its `<Batch>` element: the bytes the leaf hash covers.
    pub unsigned: Vec<u8>,
    /// Its leaf index in the batch.
    pub index: u64,
    /// Its inclusion path, from the leaf upwards.
    pub path: Vec<Hash>,
    /// The signed tree head (a `ReceiptBatch` document).
    pub head: Vec<u8>,
}

/// How a receipt is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// One enveloped `ds:Signature` of its own.
    Enveloped,
    /// A batch proof.
    Batched(Batched),
}

/// Tells how `xml` is signed and, for a batched receipt, takes it apart (strictly).
pub fn form(xml: &[u8]) -> Result<Form, BatchError> {
    let text = std::str::from_utf8(xml)
        .map_err(|_| BatchError::Malformed("the receipt is not UTF-8".into()))?;
    let opens = text.matches(BATCH_OPEN).count();
    let closes = text.matches(BATCH_CLOSE).count();
    if opens == 0 && closes == 0 {
        return Ok(Form::Enveloped);
    }
    if opens != 1 || closes != 1 {
        return Err(BatchError::Malformed(format!(
            "{opens} <Batch> and {closes} </Batch>; exactly one of each is allowed"
        )));
    }
    let start = text.find(BATCH_OPEN).unwrap_or_default();
    let end = text.find(BATCH_CLOSE).unwrap_or_default() + BATCH_CLOSE.len();
    if end <= start {
        return Err(BatchError::Malformed(
            "</Batch> comes before <Batch>".into(),
        ));
    }
    // Where the hub puts it: the last child of the root, so that it cannot change how the
    // rest of the receipt reads.
    let after = text[end..].trim_start();
    if !after.starts_with(RECEIPT_CLOSE) || !after[RECEIPT_CLOSE.len()..].trim().is_empty() {
        return Err(BatchError::Malformed(
            "<Batch> is not the last child of HubReceipt".into(),
        ));
    }
    let (index, path, head) = read_batch(&text[start..end])?;
    let mut unsigned = Vec::with_capacity(xml.len() - (end - start));
    unsigned.extend_from_slice(&xml[..start]);
    unsigned.extend_from_slice(&xml[end..]);
    let joined = String::from_utf8_lossy(&unsigned);
    if joined.contains(BATCH_OPEN) || joined.contains(BATCH_CLOSE) {
        return Err(BatchError::Malformed(
            "the receipt without its <Batch> element still holds one".into(),
        ));
    }
    Ok(Form::Batched(Batched {
        unsigned,
        index,
        path,
        head,
    }))
}

/// The XML-DSig-signed document behind a receipt: the receipt itself when it carries its own
/// signature, its batch's signed tree head when batch-signed (or the bytes as given, when
/// they are not a readable receipt).
pub fn signed_part(xml: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match form(xml) {
        Ok(Form::Batched(b)) => std::borrow::Cow::Owned(b.head),
        _ => std::borrow::Cow::Borrowed(xml),
    }
}

/// Reads `<Batch><Index/><Hash/>*<Head/></Batch>`, nothing else.
fn read_batch(fragment: &str) -> Result<(u64, Vec<Hash>, Vec<u8>), BatchError> {
    let bad = |what: String| BatchError::Malformed(what);
    let mut r = Reader::from_str(fragment);
    let mut index = None;
    let mut path = Vec::new();
    let mut head = None;
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    let mut text = String::new();
    loop {
        match r.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                if e.attributes().next().is_some() {
                    return Err(bad("attributes inside <Batch>".into()));
                }
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                depth += 1;
                match (depth, name.as_str()) {
                    (1, "Batch") => {}
                    (2, "Index" | "Hash" | "Head") => {
                        if head.is_some() {
                            return Err(bad(format!("{name} after Head")));
                        }
                        if name != "Index" && index.is_none() {
                            return Err(bad(format!("{name} before Index")));
                        }
                        current = Some(name);
                        text.clear();
                    }
                    _ => return Err(bad(format!("unexpected element {name} in <Batch>"))),
                }
            }
            Event::Text(t) => {
                let t = t.decode().map_err(|e| bad(e.to_string()))?;
                if current.is_none() && !t.trim().is_empty() {
                    return Err(bad("text between the elements of <Batch>".into()));
                }
                text.push_str(&t);
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                let Some(name) = current.take() else {
                    continue;
                };
                let value = text.trim();
                match name.as_str() {
                    "Index" => {
                        if index.is_some() {
                            return Err(bad("Index appears twice".into()));
                        }
                        index = Some(
                            value
                                .parse::<u64>()
                                .map_err(|_| bad(format!("Index {value:?}")))?,
                        );
                    }
                    "Hash" => {
                        if path.len() == MAX_PATH {
                            return Err(bad(format!("more than {MAX_PATH} hashes")));
                        }
                        path.push(parse_hash(value).ok_or_else(|| bad(format!("Hash {value:?}")))?);
                    }
                    _ => {
                        let compact: String =
                            value.chars().filter(|c| !c.is_whitespace()).collect();
                        if compact.len() > MAX_HEAD_BYTES * 4 / 3 + 4 {
                            return Err(bad("the tree head is too large".into()));
                        }
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(compact.as_bytes())
                            .map_err(|e| bad(format!("Head is not base64: {e}")))?;
                        head = Some(bytes);
                    }
                }
            }
            Event::Eof => break,
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                return Err(bad(format!("empty element {name} in <Batch>")));
            }
            other => return Err(bad(format!("unexpected content in <Batch>: {other:?}"))),
        }
    }
    Ok((
        index.ok_or_else(|| bad("no Index".into()))?,
        path,
        head.ok_or_else(|| bad("no Head".into()))?,
    ))
}

/// Tree heads whose signature this process has verified, by the SHA-256 of the head's bytes
/// and of the certificate it verified with, with what they say. Bounded; the oldest are
/// forgotten first. Receipts of one batch checked at the same time on several threads wait
/// for one verification of their head rather than each making its own.
pub struct HeadCache {
    inner: Mutex<Heads>,
    capacity: usize,
}

/// A head's verification: done once, by the first thread to need it.
type Verified = Arc<OnceLock<Option<TreeHead>>>;

#[derive(Default)]
struct Heads {
    by_key: HashMap<Hash, Verified>,
    order: VecDeque<Hash>,
}

impl std::fmt::Debug for HeadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadCache")
            .field("heads", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl Default for HeadCache {
    fn default() -> Self {
        HeadCache::new(4096)
    }
}

impl HeadCache {
    /// A cache remembering up to `capacity` tree heads.
    pub fn new(capacity: usize) -> HeadCache {
        HeadCache {
            inner: Mutex::new(Heads::default()),
            capacity: capacity.max(1),
        }
    }

    fn key(head: &[u8], cert_der: &[u8]) -> Hash {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&to_hash(digest::digest(&digest::SHA256, head)));
        ctx.update(&to_hash(digest::digest(&digest::SHA256, cert_der)));
        to_hash(ctx.finish())
    }

    /// The verification cell of `key`, made (and the oldest forgotten) when new.
    fn cell(&self, key: Hash) -> Verified {
        let Ok(mut g) = self.inner.lock() else {
            // A thread panicked holding the lock: verify without remembering.
            return Arc::new(OnceLock::new());
        };
        if let Some(cell) = g.by_key.get(&key) {
            return Arc::clone(cell);
        }
        let cell: Verified = Arc::new(OnceLock::new());
        g.by_key.insert(key, Arc::clone(&cell));
        g.order.push_back(key);
        if g.order.len() > self.capacity
            && let Some(old) = g.order.pop_front()
        {
            g.by_key.remove(&old);
        }
        cell
    }

    /// Forgets a head that did not verify (its cell holds `None`).
    fn forget(&self, key: &Hash) {
        if let Ok(mut g) = self.inner.lock()
            && g.by_key.remove(key).is_some()
        {
            g.order.retain(|k| k != key);
        }
    }

    /// Heads remembered now.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |g| g.by_key.len())
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks a hub receipt, signed one by one or in a batch, against the pinned hub certificate
/// and returns its fields. `cache` spares re-verifying a tree head already verified.
pub fn verify_receipt(
    xml: &[u8],
    hub_cert_der: &[u8],
    cache: &HeadCache,
) -> Result<HubReceipt, BatchError> {
    match form(xml)? {
        Form::Enveloped => {
            verify_root(xml, hub_cert_der)?;
            Ok(HubReceipt::parse(xml)?)
        }
        Form::Batched(b) => {
            let key = HeadCache::key(&b.head, hub_cert_der);
            let cell = cache.cell(key);
            let mut refused = None;
            let head = cell.get_or_init(|| {
                let checked = verify_root(&b.head, hub_cert_der)
                    .map_err(BatchError::from)
                    .and_then(|()| TreeHead::parse(&b.head));
                checked.map_err(|e| refused = Some(e)).ok()
            });
            match head {
                Some(head) => included(head, &b),
                None => {
                    cache.forget(&key);
                    // Another thread found it bad: find out why, for this caller's message.
                    Err(match refused {
                        Some(e) => e,
                        None => verify_root(&b.head, hub_cert_der)
                            .map_err(BatchError::from)
                            .and_then(|()| TreeHead::parse(&b.head).map(|_| ()))
                            .err()
                            .unwrap_or(BatchError::Malformed(
                                "its tree head could not be verified".into(),
                            )),
                    })
                }
            }
        }
    }
}

/// Checks a hub receipt whose signer must chain to an anchor of `trust` at `at` (records,
/// offline); returns its fields and the validated chain of the hub's certificate.
pub fn verify_receipt_trusted(
    xml: &[u8],
    trust: &TrustStore,
    at: OffsetDateTime,
) -> Result<(HubReceipt, ValidatedChain), BatchError> {
    match form(xml)? {
        Form::Enveloped => {
            let chain = verify_root_trusted(xml, trust, at)?;
            Ok((HubReceipt::parse(xml)?, chain))
        }
        Form::Batched(b) => {
            let chain = verify_root_trusted(&b.head, trust, at)?;
            let head = TreeHead::parse(&b.head)?;
            Ok((included(&head, &b)?, chain))
        }
    }
}

/// The fields of a batched receipt, once its inclusion path leads to the root of `head`, a
/// verified tree head. They are read from the hashed bytes; the `<Batch>` element, the last
/// child (see [`form`]), cannot change them.
fn included(head: &TreeHead, b: &Batched) -> Result<HubReceipt, BatchError> {
    let root = root_from_path(b.index, head.size, leaf_hash(&b.unsigned), &b.path)
        .ok_or(BatchError::NotIncluded)?;
    if root != head.root {
        return Err(BatchError::NotIncluded);
    }
    let (receipt, parts) = HubReceipt::parse_parts(&b.unsigned)?;
    if parts != Parts::default() {
        return Err(BatchError::Malformed(
            "the receipt carries a ds:Signature as well as its batch proof".into(),
        ));
    }
    Ok(receipt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::ReceiptKind;
    use crate::rootsig::tests::hub_identity as hub;

    fn receipt(i: usize) -> HubReceipt {
        HubReceipt {
            kind: ReceiptKind::Delivery,
            packet_id: format!("{i:064x}"),
            packet_kind: "document".into(),
            from: "000.00.00.G22".into(),
            document_id: format!("000.00.00.G22,2026/12/07,{i}/VPCP-TTĐT <&>"),
            hub_time: OffsetDateTime::from_unix_timestamp(1_796_000_000 + i as i64).unwrap(),
            accepted: Vec::new(),
            refused: Vec::new(),
            delivered_to: Some("000.00.00.H41".into()),
        }
    }

    fn h(i: u8) -> Hash {
        leaf_hash(&[i])
    }

    /// RFC 6962's definition, written the slow way: MTH over a list.
    fn mth(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let mut k = 1;
        while k * 2 < leaves.len() {
            k *= 2;
        }
        node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    #[test]
    fn every_path_of_every_tree_up_to_40_leads_to_the_root_and_nowhere_else() {
        for n in 1..=40usize {
            let leaves: Vec<Hash> = (0..n as u8).map(h).collect();
            let (root, paths) = tree(&leaves);
            assert_eq!(root, mth(&leaves), "size {n}");
            for (i, p) in paths.iter().enumerate() {
                let (i, size) = (i as u64, n as u64);
                assert_eq!(root_from_path(i, size, leaves[i as usize], p), Some(root));
                // Another leaf, index or path does not reach the root.
                assert_ne!(root_from_path(i, size, h(200), p), Some(root));
                if n > 1 {
                    let other = (i + 1) % size;
                    assert_ne!(
                        root_from_path(other, size, leaves[i as usize], p),
                        Some(root)
                    );
                    // (A path may fit a larger tree too: the size that counts is the signed
                    // one, read from the tree head, never from the receipt.)
                    let mut longer = p.clone();
                    longer.push(root);
                    assert_ne!(
                        root_from_path(i, size, leaves[i as usize], &longer),
                        Some(root)
                    );
                    let mut flipped = p.clone();
                    flipped[0][0] ^= 1;
                    assert_ne!(
                        root_from_path(i, size, leaves[i as usize], &flipped),
                        Some(root)
                    );
                }
                assert_eq!(root_from_path(size, size, leaves[i as usize], p), None);
            }
        }
    }

    #[test]
    fn a_batch_verifies_receipt_by_receipt_with_one_signature_check() {
        let (id, der) = hub();
        let unsigned: Vec<Vec<u8>> = (0..7).map(|i| receipt(i).to_xml()).collect();
        let signed = sign_batch(&unsigned, &id, OffsetDateTime::now_utc()).unwrap();
        let cache = HeadCache::default();
        for (i, s) in signed.iter().enumerate() {
            assert_eq!(verify_receipt(s, &der, &cache).unwrap(), receipt(i));
            // Removing the batch element gives back the unsigned receipt exactly.
            let Form::Batched(b) = form(s).unwrap() else {
                panic!("not batched")
            };
            assert_eq!(b.unsigned, unsigned[i]);
            assert_eq!(HubReceipt::parse(s).unwrap(), receipt(i));
        }
        assert_eq!(cache.len(), 1, "one tree head, verified once");
    }

    #[test]
    fn a_changed_field_a_moved_proof_or_a_foreign_signer_is_refused() {
        let (id, der) = hub();
        let unsigned: Vec<Vec<u8>> = (0..5).map(|i| receipt(i).to_xml()).collect();
        let signed = sign_batch(&unsigned, &id, OffsetDateTime::now_utc()).unwrap();
        let cache = HeadCache::default();
        let text = String::from_utf8(signed[2].clone()).unwrap();
        // A field changed after signing.
        let changed = text.replace("000.00.00.H41", "000.00.00.H14");
        assert_eq!(
            verify_receipt(changed.as_bytes(), &der, &cache),
            Err(BatchError::NotIncluded)
        );
        // Receipt 2's fields with receipt 3's proof.
        let other = String::from_utf8(signed[3].clone()).unwrap();
        let proof = &other[other.find(BATCH_OPEN).unwrap()..other.find(BATCH_CLOSE).unwrap()];
        let mine = &text[text.find(BATCH_OPEN).unwrap()..text.find(BATCH_CLOSE).unwrap()];
        let swapped = text.replace(mine, proof);
        assert_eq!(
            verify_receipt(swapped.as_bytes(), &der, &cache),
            Err(BatchError::NotIncluded)
        );
        // A second Batch, a signature besides the batch, an attribute: malformed.
        let twice = text.replace("</HubReceipt>", &format!("{mine}</Batch></HubReceipt>"));
        assert!(matches!(
            verify_receipt(twice.as_bytes(), &der, &cache),
            Err(BatchError::Malformed(_))
        ));
        // Moved up among the fields: not where the hub puts it.
        let whole = &text[text.find(BATCH_OPEN).unwrap()..text.find(BATCH_CLOSE).unwrap() + 8];
        let moved = text
            .replace(whole, "")
            .replace("<Kind>", &format!("{whole}<Kind>"));
        assert_eq!(
            verify_receipt(moved.as_bytes(), &der, &cache),
            Err(BatchError::Malformed(
                "<Batch> is not the last child of HubReceipt".into()
            ))
        );
        let attr = text.replace("<Index>", "<Index a=\"1\">");
        assert!(matches!(
            verify_receipt(attr.as_bytes(), &der, &cache),
            Err(BatchError::Malformed(_))
        ));
        // Signed by an agency, not the hub.
        let certs = concat!(env!("CARGO_MANIFEST_DIR"), "/../certs/agencies");
        let key = std::fs::read(format!("{certs}/000.00.00.G22.key.pem")).unwrap();
        let cert = std::fs::read(format!("{certs}/000.00.00.G22.pem")).unwrap();
        let agency = SigningIdentity::from_pem(&key, &cert).unwrap();
        let forged = sign_batch(&unsigned, &agency, OffsetDateTime::now_utc()).unwrap();
        let known = cache.len();
        for _ in 0..2 {
            assert!(matches!(
                verify_receipt(&forged[0], &der, &cache),
                Err(BatchError::Signature(_))
            ));
        }
        assert_eq!(
            cache.len(),
            known,
            "a head that did not verify is not remembered"
        );
    }

    #[test]
    fn field_text_naming_the_xmldsig_namespace_signs_and_verifies() {
        let (id, der) = hub();
        let mut r = receipt(1);
        r.document_id = format!("{DSIG_NS} <Batch></Batch> ]]> <!-- -->");
        let signed = sign_batch(&[r.to_xml()], &id, OffsetDateTime::now_utc()).unwrap();
        let cache = HeadCache::default();
        assert_eq!(verify_receipt(&signed[0], &der, &cache).unwrap(), r);
    }

    /// What the signature covers but a reader could see differently (a comment before the real
    /// fields of the head, CDATA splitting a field) is refused, in heads and receipts.
    #[test]
    fn comments_and_cdata_that_the_signature_ignores_are_refused() {
        let (id, der) = hub();
        let unsigned: Vec<Vec<u8>> = (0..3).map(|i| receipt(i).to_xml()).collect();
        let signed = sign_batch(&unsigned, &id, OffsetDateTime::now_utc()).unwrap();
        let text = String::from_utf8(signed[0].clone()).unwrap();
        let Form::Batched(b) = form(&signed[0]).unwrap() else {
            panic!("not batched")
        };
        let head = String::from_utf8(b.head.clone()).unwrap();
        let forged_head = head.replace(
            "<Size>",
            &format!(
                "<!--<Size>1</Size><Root>{}</Root>--><Size>",
                "ab".repeat(32)
            ),
        );
        // The comment is outside what exclusive C14N signs: the signature still verifies.
        verify_root(forged_head.as_bytes(), &der).unwrap();
        let b64 = |x: &str| base64::engine::general_purpose::STANDARD.encode(x);
        let swapped = text.replace(&b64(&head), &b64(&forged_head));
        assert!(matches!(
            verify_receipt(swapped.as_bytes(), &der, &HeadCache::default()),
            Err(BatchError::Malformed(m)) if m.contains("comment")
        ));
        // A receipt signed alone, one character of a field moved into CDATA: the signature
        // holds (C14N reads CDATA as text), the reader refuses it.
        let alone = String::from_utf8(sign_root(&receipt(5).to_xml(), &id).unwrap()).unwrap();
        let cdata = alone.replace("000.00.00.H41", "000.00.00.H<![CDATA[4]]>1");
        verify_root(cdata.as_bytes(), &der).unwrap();
        assert!(verify_receipt(cdata.as_bytes(), &der, &HeadCache::default()).is_err());
    }

    #[test]
    fn receipts_signed_one_by_one_still_verify() {
        let (id, der) = hub();
        let one = sign_root(&receipt(1).to_xml(), &id).unwrap();
        let cache = HeadCache::default();
        assert_eq!(verify_receipt(&one, &der, &cache).unwrap(), receipt(1));
        assert!(cache.is_empty());
    }

    #[test]
    fn the_head_cache_forgets_the_oldest_and_what_did_not_verify() {
        let c = HeadCache::new(2);
        for i in 0..3u8 {
            let _ = c.cell(h(i));
        }
        assert_eq!(c.len(), 2);
        let g = c.inner.lock().unwrap();
        assert!(!g.by_key.contains_key(&h(0)) && g.by_key.contains_key(&h(2)));
        drop(g);
        c.forget(&h(2));
        assert_eq!(c.len(), 1);
        assert_eq!(c.inner.lock().unwrap().order, vec![h(1)]);
    }
}
