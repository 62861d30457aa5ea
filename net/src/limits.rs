//! What every listener of DocAxis bounds, whoever connects: connections, request bodies, and
//! the shape of error answers.
//!
//! - [`LimitAcceptor`] caps the connections open at once (handshakes included); one more is
//!   closed at accept, before it costs a TLS handshake or a task.
//! - [`buffer_body`] reads a request body before the handler sees it: at most
//!   [`BodyLimits::max_bytes`] (413 at once when `Content-Length` says more), no pause longer
//!   than [`BodyLimits::idle`], and at least [`BodyLimits::min_bytes_per_sec`] on average once
//!   [`BodyLimits::grace`] has passed (408 otherwise). A slow body cannot hold a connection for
//!   long, a large legitimate upload on a normal line is not cut.
//! - [`json_errors`] turns the framework's plain-text refusals (bad JSON or query, wrong
//!   content type, a body too large) into the JSON error body every DocAxis API promises:
//!   `{"code": "...", "message": "..."}`, with codes from `exchange::protocol::ErrorCode`.
//!
//! Header and idle timeouts are set on the server itself ([`crate::serve::ServeOptions`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::Accept;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bounds on one request body.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: usize,
    /// Longest pause between two pieces of the body.
    pub idle: Duration,
    /// Time allowed before the average rate is checked.
    pub grace: Duration,
    /// Slowest average rate accepted after the grace time.
    pub min_bytes_per_sec: u64,
}

impl BodyLimits {
    /// `max_bytes`, 10 s idle, 10 s grace, then 16 KiB/s.
    pub fn new(max_bytes: usize) -> BodyLimits {
        BodyLimits {
            max_bytes,
            idle: Duration::from_secs(10),
            grace: Duration::from_secs(10),
            min_bytes_per_sec: 16 * 1024,
        }
    }

    /// When the body must be complete, having received `received` bytes since `start`.
    fn deadline(&self, start: Instant, received: usize) -> Instant {
        let earned = Duration::from_secs_f64(received as f64 / self.min_bytes_per_sec as f64);
        start + self.grace + earned
    }
}

/// A JSON error answer, shaped like `exchange::protocol::ErrorBody`.
pub fn json_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "code": code, "message": message.into() });
    (status, axum::Json(body)).into_response()
}

/// Middleware: reads the body within `limits` (see the module doc), then hands the request on
/// with the body in memory.
pub async fn buffer_body(State(limits): State<BodyLimits>, req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared
        && n > limits.max_bytes as u64
    {
        return too_large(n, limits.max_bytes);
    }
    let (parts, body) = req.into_parts();
    let mut stream = body.into_data_stream();
    let start = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let now = Instant::now();
        let deadline = limits.deadline(start, buf.len()).min(now + limits.idle);
        let wait = deadline.saturating_duration_since(now);
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) => {
                if buf.len() + chunk.len() > limits.max_bytes {
                    return too_large((buf.len() + chunk.len()) as u64, limits.max_bytes);
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Some(Err(e))) => {
                return json_error(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("the request body could not be read: {e}"),
                );
            }
            Err(_) => {
                let elapsed = start.elapsed().as_secs_f64();
                return json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body arrived too slowly ({} bytes in {elapsed:.0} s): a \
                         pause may last at most {} s, and after {} s at least {} bytes/s are \
                         needed",
                        buf.len(),
                        limits.idle.as_secs(),
                        limits.grace.as_secs(),
                        limits.min_bytes_per_sec
                    ),
                );
            }
        }
    }
    next.run(Request::from_parts(parts, Body::from(Bytes::from(buf))))
        .await
}

fn too_large(size: u64, max: usize) -> Response {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the request body is {size} bytes or more; at most {max} are accepted"),
    )
}

/// Longest framework message carried over into a JSON error.
const MAX_MESSAGE: usize = 4096;

/// Middleware: an error answer that is not JSON (the framework's own refusals) becomes one.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_MESSAGE).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_string(),
    };
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let mut out = json_error(status, code, text);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    out
}

/// Caps the connections open at once: each holds a permit from accept to close.
#[derive(Clone, Debug)]
pub struct LimitAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    max: usize,
}

impl<A> LimitAcceptor<A> {
    pub fn new(inner: A, max_connections: usize) -> Self {
        let max = max_connections.max(1);
        LimitAcceptor {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }
}

impl<I, S, A> Accept<I, S> for LimitAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Limited<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            let max = self.max;
            drop(stream);
            return Box::pin(async move {
                Err(io::Error::other(format!(
                    "{max} connections are open already; this one is closed"
                )))
            });
        };
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                Limited {
                    inner: stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A connection holding its permit.
#[derive(Debug)]
pub struct Limited<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Limited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Limited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
