//! The clerk commands' client of a running node's local API (`docaxis send`, `outbox`,
//! `inbox`, `track`), and the building of a send request from a document description or
//! from flags.
//!
//! Invariants:
//! - The API address and token come from the node's own configuration (`api_listen`, or the
//!   `api.addr` the node wrote when it listens on port 0; `data_dir/api.token`), so the clerk
//!   tools need nothing else.
//! - Plain HTTP to a loopback address only; no proxy is ever used.
//! - Errors say what to do: "is the node running?", the API's own message, …

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use edxml::compose::{AttachmentSpec, ComposeError, load_attachment};

use super::config::NodeConfig;
use super::views::{
    ApiErrorBody, Health, InboxDetail, InboxList, OutboxList, Sent, StatusRequest, StatusSent,
    TrackView,
};
use net::token::{self, TokenError};

/// Why a clerk command could not get its answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Token(#[from] TokenError),
    #[error("cannot read {path}: {message}")]
    Addr { path: PathBuf, message: String },
    #[error(
        "cannot reach the node's clerk API at http://{addr}: {message} (is the node running? \
         start it with `docaxis node --config FILE`)"
    )]
    Connect { addr: SocketAddr, message: String },
    #[error("the node refused: {message} ({status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the node's answer is not understood: {0}")]
    BadAnswer(String),
    #[error("{0}")]
    Spec(String),
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// A client of one node's clerk API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    addr: SocketAddr,
    token: String,
}

/// Filters of `GET /api/v1/inbox` (all optional).
#[derive(Debug, Clone, Copy, Default)]
pub struct InboxParams<'a> {
    pub state: Option<&'a str>,
    pub from: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub priority: Option<u8>,
    /// `YYYY-MM-DD` (a day in Vietnam) or RFC 3339.
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub limit: Option<usize>,
}

impl ApiClient {
    /// A client for the node described by `config`.
    pub fn from_config(config: &NodeConfig) -> Result<ApiClient, ClientError> {
        let token = token::read(&config.token_path())?;
        let addr = if config.api_listen.port() == 0 {
            let path = config.api_addr_path();
            let text = std::fs::read_to_string(&path).map_err(|e| ClientError::Addr {
                path: path.clone(),
                message: format!("{e} (the node writes it when it starts)"),
            })?;
            text.trim().parse().map_err(|e| ClientError::Addr {
                path,
                message: format!("not an address: {e}"),
            })?
        } else {
            config.api_listen
        };
        ApiClient::new(addr, token)
    }

    /// A client for the API at `addr` with `token`.
    pub fn new(addr: SocketAddr, token: String) -> Result<ApiClient, ClientError> {
        // reqwest is built with rustls and no default crypto provider: give it a configuration
        // (never used, the API is plain HTTP) so that building the client cannot panic.
        let tls = rustls::ClientConfig::builder_with_provider(net::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientError::Http(e.to_string()))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| ClientError::Http(e.to_string()))?;
        Ok(ApiClient { http, addr, token })
    }

    /// The API address this client calls.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends `req` with the token; the answer's status and bytes, whatever the status.
    async fn exchange(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ClientError> {
        let (status, _, bytes) = self.exchange_with_headers(req).await?;
        Ok((status, bytes))
    }

    /// [`Self::exchange`], with the answer's headers.
    async fn exchange_with_headers(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| ClientError::Connect {
                addr: self.addr,
                message: e.to_string(),
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok((status, headers, bytes.to_vec()))
    }

    /// Sends `req` with the token; the answer's bytes on success, the API's error otherwise.
    async fn fetch(&self, req: reqwest::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let (status, bytes) = self.exchange(req).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, &bytes))
    }

    /// [`Self::fetch`], the answer parsed as JSON.
    async fn call<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let bytes = self.fetch(req).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `POST /api/v1/documents`.
    pub async fn send(&self, request: &Value) -> Result<Sent, ClientError> {
        self.call(self.http.post(self.url("/api/v1/documents")).json(request))
            .await
    }

    /// `POST /api/v1/documents` with a request already serialised as JSON: the bytes are
    /// handed to the connection without another copy (the benchmark's big documents).
    pub async fn send_body(&self, json: Vec<u8>) -> Result<Sent, ClientError> {
        self.call(
            self.http
                .post(self.url("/api/v1/documents"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json),
        )
        .await
    }

    /// `GET /api/v1/outbox`.
    pub async fn outbox(
        &self,
        kind: Option<&str>,
        limit: Option<usize>,
    ) -> Result<OutboxList, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        if let Some(k) = kind {
            q.push(("kind", k.to_string()));
        }
        if let Some(l) = limit {
            q.push(("limit", l.to_string()));
        }
        self.call(self.http.get(self.url("/api/v1/outbox")).query(&q))
            .await
    }

    /// `GET /api/v1/inbox`.
    pub async fn inbox(&self, p: &InboxParams<'_>) -> Result<InboxList, ClientError> {
        let mut q: Vec<(&str, String)> = Vec::new();
        for (name, value) in [
            ("state", p.state),
            ("from", p.from),
            ("kind", p.kind),
            ("since", p.since),
            ("until", p.until),
        ] {
            if let Some(v) = value {
                q.push((name, v.to_string()));
            }
        }
        if let Some(pr) = p.priority {
            q.push(("priority", pr.to_string()));
        }
        if let Some(l) = p.limit {
            q.push(("limit", l.to_string()));
        }
        self.call(self.http.get(self.url("/api/v1/inbox")).query(&q))
            .await
    }

    /// `POST /api/v1/documents/{document_id}/{revoke|update|replace}`.
    pub async fn send_action(
        &self,
        kind: &str,
        document_id: &str,
        request: &Value,
    ) -> Result<Sent, ClientError> {
        let path = format!("/api/v1/documents/{}/{kind}", encode_segment(document_id));
        self.call(self.http.post(self.url(&path)).json(request))
            .await
    }

    /// `GET /api/v1/inbox/{packet_id}`.
    pub async fn inbox_item(&self, packet_id: &str) -> Result<InboxDetail, ClientError> {
        let path = format!("/api/v1/inbox/{}", encode_segment(packet_id));
        self.call(self.http.get(self.url(&path))).await
    }

    /// `GET /api/v1/documents/{document_id}/track`.
    pub async fn track(&self, document_id: &str) -> Result<TrackView, ClientError> {
        let path = format!("/api/v1/documents/{}/track", encode_segment(document_id));
        self.call(self.http.get(self.url(&path))).await
    }

    /// A clerk's status about `target`: a received packet id (64 hex digits) goes to
    /// `POST /api/v1/inbox/{packet_id}/status`, anything else is a document id for
    /// `POST /api/v1/documents/{document_id}/status`.
    pub async fn send_status(
        &self,
        target: &str,
        request: &StatusRequest,
    ) -> Result<StatusSent, ClientError> {
        let path = if is_packet_id(target) {
            format!("/api/v1/inbox/{}/status", encode_segment(target))
        } else {
            format!("/api/v1/documents/{}/status", encode_segment(target))
        };
        self.call(self.http.post(self.url(&path)).json(request))
            .await
    }

    /// `GET /api/v1/users`.
    pub async fn users(&self) -> Result<crate::api::UserList, ClientError> {
        self.call(self.http.get(self.url("/api/v1/users"))).await
    }

    /// `POST /api/v1/users`.
    pub async fn add_user(
        &self,
        user: &crate::accounts::NewUser,
    ) -> Result<crate::accounts::UserView, ClientError> {
        self.call(self.http.post(self.url("/api/v1/users")).json(user))
            .await
    }

    /// `POST /api/v1/users/{name}`.
    pub async fn change_user(
        &self,
        name: &str,
        change: &crate::accounts::ChangeUser,
    ) -> Result<crate::accounts::UserView, ClientError> {
        let path = format!("/api/v1/users/{}", encode_segment(name));
        self.call(self.http.post(self.url(&path)).json(change))
            .await
    }

    /// `GET /api/v1/inbox/{packet_id}/packet`: the stored bytes.
    pub async fn inbox_packet(&self, packet_id: &str) -> Result<Vec<u8>, ClientError> {
        let path = format!("/api/v1/inbox/{}/packet", encode_segment(packet_id));
        self.fetch(self.http.get(self.url(&path))).await
    }

    /// `GET /api/v1/archive/documents/{key}`: the container and its file name.
    pub async fn archive_container(&self, key: &str) -> Result<(String, Vec<u8>), ClientError> {
        let path = format!("/api/v1/archive/documents/{}", encode_segment(key));
        let (status, headers, bytes) = self
            .exchange_with_headers(self.http.get(self.url(&path)))
            .await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let name = headers
            .get(reqwest::header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(disposition_name)
            .unwrap_or_else(|| crate::archive::file_name(key));
        Ok((name, bytes))
    }

    /// `GET /api/v1/archive/documents?since&until`.
    pub async fn archive_candidates(
        &self,
        since_ms: Option<u64>,
        until_ms: Option<u64>,
    ) -> Result<crate::archive::Candidates, ClientError> {
        let mut q: Vec<(&str, u64)> = Vec::new();
        if let Some(s) = since_ms {
            q.push(("since", s));
        }
        if let Some(u) = until_ms {
            q.push(("until", u));
        }
        self.call(
            self.http
                .get(self.url("/api/v1/archive/documents"))
                .query(&q),
        )
        .await
    }

    /// `GET /api/v1/archive?after&limit`.
    pub async fn archive_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<crate::archive::FeedBatch, ClientError> {
        self.call(
            self.http
                .get(self.url("/api/v1/archive"))
                .query(&[("after", after), ("limit", limit as u64)]),
        )
        .await
    }

    /// `GET /api/v1/health`. A node whose database is failing answers 503 with its health
    /// (saying why); that is returned as `Ok` with `store.ok == false`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        let (status, bytes) = self
            .exchange(self.http.get(self.url("/api/v1/health")))
            .await?;
        let readable = status.is_success() || status == reqwest::StatusCode::SERVICE_UNAVAILABLE;
        match serde_json::from_slice::<Health>(&bytes) {
            Ok(health) if readable => Ok(health),
            Err(e) if status.is_success() => Err(ClientError::BadAnswer(e.to_string())),
            _ => Err(api_error(status, &bytes)),
        }
    }
}

/// The API's error from a failed answer's status and body.
fn api_error(status: reqwest::StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ApiErrorBody>(bytes) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.code,
            message: body.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "unknown".into(),
            message: String::from_utf8_lossy(bytes).chars().take(300).collect(),
        },
    }
}

/// The file name of a `Content-Disposition` header: `filename*=UTF-8''…` (percent-decoded)
/// or else `filename="…"`; `None` when it holds a path separator.
fn disposition_name(v: &str) -> Option<String> {
    let name = if let Some(i) = v.find("filename*=UTF-8''") {
        let raw = v[i + "filename*=UTF-8''".len()..].split(';').next()?.trim();
        let mut bytes = Vec::new();
        let mut it = raw.bytes();
        while let Some(b) = it.next() {
            if b == b'%' {
                let hex = [it.next()?, it.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            } else {
                bytes.push(b);
            }
        }
        String::from_utf8(bytes).ok()?
    } else {
        let i = v.find("filename=\"")?;
        v[i + 10..].split('"').next()?.to_string()
    };
    (!name.is_empty() && !name.contains('/') && !name.contains('\\') && !name.starts_with('.'))
        .then_some(name)
}

/// Whether `s` is a packet id (64 hexadecimal digits) rather than a document id.
pub fn is_packet_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Percent-encodes one path segment (everything but unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A send request from a document description file (`examples/*.toml`): the description's
/// fields as JSON, attachment files read (relative to the file's folder) and inlined.
pub fn request_from_spec_file(path: &Path) -> Result<Value, ClientError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ClientError::Spec(format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| ClientError::Spec(format!("{} is not valid TOML: {e}", path.display())))?;
    let mut request = serde_json::to_value(&table)
        .map_err(|e| ClientError::Spec(format!("{}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    if let Some(obj) = request.as_object_mut()
        && let Some(attachments) = obj.remove("attachments")
    {
        let specs: Vec<AttachmentSpec> = serde_json::from_value(attachments)
            .map_err(|e| ClientError::Spec(format!("{}: attachments: {e}", path.display())))?;
        let inline = inline_attachments(base, &specs)?;
        obj.insert("attachments".into(), Value::Array(inline));
    }
    Ok(request)
}

/// A send request from command-line values.
pub fn request_from_flags(
    to: &[String],
    subject: &str,
    number: &str,
    notation: &str,
    priority: u8,
    attach: &[PathBuf],
) -> Result<Value, ClientError> {
    let to: Vec<Value> = to
        .iter()
        .map(|t| match t.split_once('=') {
            Some((code, name)) => json!({"id": code.trim(), "name": name.trim()}),
            None => Value::String(t.trim().to_string()),
        })
        .collect();
    let specs: Vec<AttachmentSpec> = attach
        .iter()
        .map(|file| AttachmentSpec {
            file: file.clone(),
            name: None,
            content_type: None,
            description: None,
        })
        .collect();
    Ok(json!({
        "to": to,
        "subject": subject,
        "code": {"number": number, "notation": notation},
        "priority": priority,
        "attachments": inline_attachments(Path::new("."), &specs)?,
    }))
}

fn inline_attachments(base: &Path, specs: &[AttachmentSpec]) -> Result<Vec<Value>, ClientError> {
    check_attachment_sizes(base, specs, crate::api::MAX_BODY)?;
    specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let a = load_attachment(base, i + 1, spec)?;
            Ok(json!({
                "name": a.name,
                "content_type": a.content_type,
                "description": a.description,
                "data": a.payload.as_base64(),
            }))
        })
        .collect()
}

/// Refuses, before reading anything, attachments whose base64 would not fit in a request of
/// `max_body` bytes (the clerk API's limit): a 200 MB file is named and refused at once
/// instead of being read, encoded and sent to meet a 413.
fn check_attachment_sizes(
    base: &Path,
    specs: &[AttachmentSpec],
    max_body: usize,
) -> Result<(), ClientError> {
    let mut total: u64 = 0;
    for spec in specs {
        let path = base.join(&spec.file);
        let size = std::fs::metadata(&path)
            .map_err(|source| ComposeError::Io {
                path: path.clone(),
                source,
            })?
            .len();
        total = total.saturating_add(size.div_ceil(3).saturating_mul(4));
        if total > max_body as u64 {
            return Err(ClientError::Spec(format!(
                "{} ({} bytes) brings the attachments to more than the node accepts in one \
                 document ({} MiB in base64, about {} MiB of files)",
                path.display(),
                size,
                max_body >> 20,
                (max_body / 4 * 3) >> 20
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_attachments_are_refused_before_they_are_read() {
        let tmp = tempfile::tempdir().unwrap();
        let big = tmp.path().join("lon.pdf");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(200 * 1024 * 1024)
            .unwrap();
        let spec = AttachmentSpec {
            file: big.clone(),
            name: None,
            content_type: None,
            description: None,
        };
        let e = check_attachment_sizes(
            Path::new("."),
            std::slice::from_ref(&spec),
            crate::api::MAX_BODY,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("lon.pdf") && e.contains("100 MiB"), "{e}");
        assert!(check_attachment_sizes(Path::new("."), &[spec], 300 << 20).is_ok());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            encode_segment("000.00.00.G22,2026/11/23,7816/VPCP-TTĐT"),
            "000.00.00.G22%2C2026%2F11%2F23%2C7816%2FVPCP-TT%C4%90T"
        );
    }

    #[test]
    fn example_description_becomes_a_request_the_node_accepts() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/cong-van-ket-noi.toml"
        ));
        let request = request_from_spec_file(path).unwrap();
        let attachments = request["attachments"].as_array().unwrap();
        assert_eq!(attachments.len(), 1);
        assert!(attachments[0]["data"].as_str().unwrap().len() > 100);
        let parsed: crate::outgoing::SendDocument = serde_json::from_value(request).unwrap();
        assert_eq!(parsed.to.len(), 2);
        assert_eq!(parsed.code.number, "7816");

        let flags = request_from_flags(
            &["000.00.00.H41".into(), "000.00.00.X01=Sở Thử".into()],
            "S",
            "1",
            "X",
            2,
            &[],
        )
        .unwrap();
        let parsed: crate::outgoing::SendDocument = serde_json::from_value(flags).unwrap();
        assert_eq!(parsed.priority, Some(2));
        assert_eq!(parsed.to.len(), 2);

        let err = request_from_flags(&[], "S", "1", "X", 0, &["/nonexistent/file.pdf".into()])
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/file.pdf"), "{err}");
    }
}
