//! The hub's agency directory as this node knows it: fetched from `GET /v1/directory`, kept
//! only when the hub's detached signature verifies against the pinned hub certificate and
//! names the SHA-256 of the body, refreshed in the background, and used for two things: the
//! names written for recipients, and refusing — before anything is signed — a document to an
//! agency the hub does not know or has suspended.
//!
//! Invariants:
//! - An unverified directory is never used: the signed statement must be a `DirectoryDigest`
//!   naming the body's SHA-256 and its issue time; a failed refresh keeps the last good one,
//!   and an older signed copy never replaces a newer one.
//! - Without a directory (the hub never reached since start) nothing is refused on its account:
//!   store-and-forward must work while the hub is away, and the hub's receipt will say which
//!   recipients it refused.
//! - A recipient missing from a directory triggers one fresh fetch before the refusal (the
//!   agency may have been registered since); when that fetch fails, nothing is refused on the
//!   stale copy's account.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use quick_xml::events::Event;
use tokio::sync::watch;

use dsig::verify_root;
use exchange::Timestamp;
use exchange::packet_id::PacketId;
use exchange::protocol::{Directory, DirectoryEntry};

use super::Shared;
use crate::hub_api::HubApi;

/// How often the directory is fetched again.
const REFRESH: Duration = Duration::from_secs(600);

/// Why a fetched directory is not used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DirectoryError {
    #[error("the hub sent no directory signature")]
    Unsigned,
    #[error("the directory signature is not base64")]
    NotBase64,
    #[error("the directory signature does not verify with the pinned hub certificate: {0}")]
    Signature(String),
    #[error("the signed statement is not a directory digest naming a SHA-256")]
    NoDigest,
    #[error("the directory's issue time differs from the signed one")]
    IssuedAt,
    #[error("the directory does not match its signed digest (signed {signed}, got {actual})")]
    Digest { signed: String, actual: String },
    #[error("the directory is not valid JSON: {0}")]
    Json(String),
}

/// Checks the hub's signature over the directory `body` and parses it. Blocking (crypto).
pub fn verify(
    body: &[u8],
    signature_b64: Option<&str>,
    hub_cert_der: &[u8],
) -> Result<Directory, DirectoryError> {
    let signature = signature_b64.ok_or(DirectoryError::Unsigned)?;
    let signed_xml = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| DirectoryError::NotBase64)?;
    verify_root(&signed_xml, hub_cert_der).map_err(|e| DirectoryError::Signature(e.to_string()))?;
    let said = statement(&signed_xml).ok_or(DirectoryError::NoDigest)?;
    let signed = said.sha256.ok_or(DirectoryError::NoDigest)?;
    let actual = PacketId::of(body).to_hex();
    if !signed.eq_ignore_ascii_case(&actual) {
        return Err(DirectoryError::Digest { signed, actual });
    }
    let directory: Directory =
        serde_json::from_slice(body).map_err(|e| DirectoryError::Json(e.to_string()))?;
    if said
        .issued_at
        .as_deref()
        .and_then(|s| Timestamp::parse(s).ok())
        != Some(directory.issued_at)
    {
        return Err(DirectoryError::IssuedAt);
    }
    Ok(directory)
}

/// What the hub's signed statement says: the body's digest and when it was issued.
#[derive(Debug, Default, PartialEq, Eq)]
struct Statement {
    sha256: Option<String>,
    issued_at: Option<String>,
}

/// Reads the signed statement: root `DirectoryDigest` in `urn:docaxis:directory:1` (so no
/// other XML the hub signs, a receipt say, can pass for one), children `Sha256`, `IssuedAt`.
fn statement(xml: &[u8]) -> Option<Statement> {
    let mut reader = quick_xml::NsReader::from_reader(xml);
    let mut depth = 0usize;
    let mut field: Option<&'static str> = None;
    let mut out = Statement::default();
    let mut buf = Vec::new();
    loop {
        let (ns, event) = reader.read_resolved_event_into(&mut buf).ok()?;
        let in_ns = matches!(
            ns,
            quick_xml::name::ResolveResult::Bound(n) if n.as_ref() == DIRECTORY_NS
        );
        match event {
            Event::Start(e) => {
                depth += 1;
                let local = e.local_name();
                if depth == 1 && !(in_ns && local.as_ref() == b"DirectoryDigest") {
                    return None;
                }
                field = match (depth, in_ns, local.as_ref()) {
                    (2, true, b"Sha256") => Some("sha256"),
                    (2, true, b"IssuedAt") => Some("issued_at"),
                    _ => None,
                };
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                field = None;
            }
            Event::Text(t) => {
                let text = std::str::from_utf8(t.as_ref()).ok()?.trim().to_string();
                match field {
                    Some("sha256") => out.sha256 = Some(text),
                    Some("issued_at") => out.issued_at = Some(text),
                    _ => {}
                }
            }
            Event::Eof => return Some(out),
            _ => {}
        }
        buf.clear();
    }
}

const DIRECTORY_NS: &[u8] = b"urn:docaxis:directory:1";

/// The last verified directory, if any.
#[derive(Debug, Default)]
pub struct KnownDirectory {
    inner: RwLock<Option<Directory>>,
}

/// What the directory says about a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Active,
    Suspended,
    Unknown,
}

impl KnownDirectory {
    /// Keeps `d` unless the directory known was issued later (an old signed copy replayed).
    fn set(&self, d: Directory) {
        if let Ok(mut g) = self.inner.write() {
            if g.as_ref()
                .is_some_and(|known| known.issued_at > d.issued_at)
            {
                return;
            }
            *g = Some(d);
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Directory) -> T) -> Option<T> {
        self.inner.read().ok()?.as_ref().map(f)
    }

    fn entry(&self, code: &str) -> Option<Option<DirectoryEntry>> {
        self.with(|d| d.agencies.iter().find(|a| a.code == code).cloned())
    }

    /// The agency's name in the directory.
    pub fn name(&self, code: &str) -> Option<String> {
        self.entry(code).flatten().map(|a| a.name)
    }

    /// `None` while no directory is known.
    pub fn standing(&self, code: &str) -> Option<Standing> {
        self.entry(code).map(|e| match e {
            Some(a) if a.active => Standing::Active,
            Some(_) => Standing::Suspended,
            None => Standing::Unknown,
        })
    }

    /// Every agency of the directory known: (code, name, active), in the directory's order.
    pub fn agencies(&self) -> Vec<(String, String, bool)> {
        self.with(|d| {
            d.agencies
                .iter()
                .map(|a| (a.code.clone(), a.name.clone(), a.active))
                .collect()
        })
        .unwrap_or_default()
    }

    /// How many agencies the directory known lists (0 when none is known).
    pub fn len(&self) -> usize {
        self.with(|d| d.agencies.len()).unwrap_or(0)
    }

    /// Whether no directory is known yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the hub issued the directory known.
    pub fn issued_at(&self) -> Option<Timestamp> {
        self.with(|d| d.issued_at)
    }
}

/// The directory as the sending services use it: the last verified copy, and the hub to fetch
/// a fresh one from (verified against the pinned hub certificate).
#[derive(Debug, Clone, Copy)]
pub struct DirectoryAccess<'a> {
    pub known: &'a KnownDirectory,
    pub hub: &'a HubApi,
    pub hub_cert_der: &'a Arc<Vec<u8>>,
}

/// Fetches, verifies and keeps the directory; returns how many agencies it lists.
pub async fn refresh(node: DirectoryAccess<'_>) -> Result<usize, String> {
    let (body, signature) = node.hub.directory().await.map_err(|e| e.to_string())?;
    let hub = node.hub_cert_der.clone();
    let directory = tokio::task::spawn_blocking(move || verify(&body, signature.as_deref(), &hub))
        .await
        .map_err(|e| format!("directory check task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let n = directory.agencies.len();
    node.known.set(directory);
    Ok(n)
}

/// Keeps the directory fresh until `shutdown` turns true: at start, every [`REFRESH`], and
/// sooner (with backoff) after a failure.
pub async fn run(node: Shared, mut shutdown: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        let pause = match refresh(node.directory_access()).await {
            Ok(n) => {
                if failures > 0 {
                    tracing::info!(agencies = n, "directory: refreshed again");
                } else {
                    tracing::debug!(agencies = n, "directory: refreshed");
                }
                failures = 0;
                REFRESH
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = node.backoff.delay(failures).min(REFRESH);
                tracing::warn!(error = %e, retry_in = ?delay, "directory: cannot refresh");
                delay
            }
        };
        tokio::select! {
            _ = shutdown.changed() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Refuses recipients the hub's directory does not list as active (after one fresh fetch when
/// one is missing); `Ok` when no directory is known. The message names each and why.
pub async fn check_recipients(node: DirectoryAccess<'_>, codes: &[String]) -> Result<(), String> {
    let bad = |node: DirectoryAccess<'_>| -> Vec<(String, Standing)> {
        codes
            .iter()
            .filter_map(|c| match node.known.standing(c) {
                Some(Standing::Active) | None => None,
                Some(s) => Some((c.clone(), s)),
            })
            .collect()
    };
    let mut problems = bad(node);
    if problems.iter().any(|(_, s)| *s == Standing::Unknown) {
        match refresh(node).await {
            Ok(_) => problems = bad(node),
            Err(e) => {
                // The directory may be stale and the hub is away: store and forward; the
                // hub's receipt will say which recipients it refused.
                tracing::warn!(error = %e, "directory: cannot refresh; recipients not checked");
                return Ok(());
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let as_of = node
        .known
        .issued_at()
        .map_or_else(|| "unknown date".to_string(), |t| t.to_string());
    let parts: Vec<String> = problems
        .iter()
        .map(|(c, s)| match s {
            Standing::Suspended => format!("{c} is suspended at the hub"),
            _ => format!("{c} is not registered at the hub"),
        })
        .collect();
    Err(format!(
        "{} (hub directory of {as_of}); the hub would refuse to route to it",
        parts.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsig::{SigningIdentity, sign_root};

    fn certs() -> std::path::PathBuf {
        std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../certs"))
    }

    fn hub() -> (SigningIdentity, Vec<u8>) {
        let id =
            SigningIdentity::from_pem_files(&certs().join("hub.key.pem"), &certs().join("hub.pem"))
                .unwrap();
        let pem = std::fs::read(certs().join("hub.pem")).unwrap();
        let der = x509_parser::pem::parse_x509_pem(&pem).unwrap().1.contents;
        (id, der)
    }

    fn signed(body: &[u8], id: &SigningIdentity) -> String {
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DirectoryDigest xmlns=\"urn:docaxis:directory:1\">\n  <Sha256>{}</Sha256>\n  <IssuedAt>2026-11-23T00:00:00Z</IssuedAt>\n</DirectoryDigest>\n",
            PacketId::of(body).to_hex()
        );
        base64::engine::general_purpose::STANDARD.encode(sign_root(xml.as_bytes(), id).unwrap())
    }

    #[test]
    fn only_a_directory_signed_by_the_pinned_hub_is_used() {
        let (id, der) = hub();
        let body = serde_json::to_vec(&Directory {
            issued_at: "2026-11-23T00:00:00Z".parse().unwrap(),
            agencies: vec![DirectoryEntry {
                code: "000.00.00.H41".into(),
                name: "UBND Tỉnh Nghệ An".into(),
                email: None,
                fingerprints: vec![],
                active: true,
            }],
        })
        .unwrap();
        let sig = signed(&body, &id);
        let d = verify(&body, Some(&sig), &der).unwrap();
        assert_eq!(d.agencies[0].name, "UBND Tỉnh Nghệ An");

        assert_eq!(verify(&body, None, &der), Err(DirectoryError::Unsigned));
        assert_eq!(
            verify(&body, Some("%%%"), &der),
            Err(DirectoryError::NotBase64)
        );
        // Another body under the same signature.
        let mut other = body.clone();
        other.extend_from_slice(b" ");
        assert!(matches!(
            verify(&other, Some(&sig), &der),
            Err(DirectoryError::Digest { .. })
        ));
        // A statement of another issue time than the body's.
        let other_time = serde_json::to_vec(&Directory {
            issued_at: "2026-11-24T00:00:00Z".parse().unwrap(),
            agencies: vec![],
        })
        .unwrap();
        assert_eq!(
            verify(&other_time, Some(&signed(&other_time, &id)), &der),
            Err(DirectoryError::IssuedAt)
        );
        // Other XML the hub signed (not a directory digest).
        let receipt = base64::engine::general_purpose::STANDARD.encode(
            sign_root(
                format!(
                    "<Receipt xmlns=\"urn:docaxis:receipt:1\"><Sha256>{}</Sha256></Receipt>",
                    PacketId::of(&body).to_hex()
                )
                .as_bytes(),
                &id,
            )
            .unwrap(),
        );
        assert_eq!(
            verify(&body, Some(&receipt), &der),
            Err(DirectoryError::NoDigest)
        );
        // Signed by someone else (an agency key).
        let agency = SigningIdentity::from_pem_files(
            &certs().join("agencies/000.00.00.G22.key.pem"),
            &certs().join("agencies/000.00.00.G22.pem"),
        )
        .unwrap();
        assert!(matches!(
            verify(&body, Some(&signed(&body, &agency)), &der),
            Err(DirectoryError::Signature(_))
        ));
    }

    #[test]
    fn standing_of_recipients() {
        let known = KnownDirectory::default();
        assert_eq!(known.standing("000.00.00.H41"), None);
        known.set(Directory {
            issued_at: "2026-01-01T00:00:00Z".parse().unwrap(),
            agencies: vec![
                DirectoryEntry {
                    code: "A".into(),
                    name: "Agency A".into(),
                    email: None,
                    fingerprints: vec![],
                    active: true,
                },
                DirectoryEntry {
                    code: "B".into(),
                    name: "Agency B".into(),
                    email: None,
                    fingerprints: vec![],
                    active: false,
                },
            ],
        });
        assert_eq!(known.standing("A"), Some(Standing::Active));
        assert_eq!(known.standing("B"), Some(Standing::Suspended));
        assert_eq!(known.standing("C"), Some(Standing::Unknown));
        assert_eq!(known.name("A").as_deref(), Some("Agency A"));
        assert_eq!(known.name("C"), None);
        // An older copy does not replace a newer one.
        let at = |t: &str| Directory {
            issued_at: t.parse().unwrap(),
            agencies: vec![],
        };
        let known = KnownDirectory::default();
        known.set(at("2026-11-23T10:00:00Z"));
        known.set(at("2026-11-23T09:00:00Z"));
        assert_eq!(
            known.issued_at().map(|t| t.to_string()).as_deref(),
            Some("2026-11-23T10:00:00Z")
        );
        known.set(at("2026-11-23T11:00:00Z"));
        assert_eq!(
            known.issued_at().map(|t| t.to_string()).as_deref(),
            Some("2026-11-23T11:00:00Z")
        );
    }
}
