//! Serving an axum router over HTTPS (HTTP/2 and HTTP/1.1) with mandatory client certificates.
//!
//! [`serve_tls`] binds the address (port 0 picks a free port; [`HttpServer::local_addr`] tells
//! which), starts the accept loop on the tokio runtime and returns at once. The server then
//! runs until [`HttpServer::run_until`]'s signal fires, a [`ShutdownHandle`] is used, or the
//! [`HttpServer`] is dropped.
//!
//! Invariants:
//! - A connection must finish its TLS handshake within [`ServeOptions::handshake_timeout`] and
//!   send its first request within [`ServeOptions::first_request_timeout`]; HTTP/1 headers must
//!   arrive within [`ServeOptions::header_read_timeout`]; idle HTTP/2 peers are pinged and
//!   dropped when they stop answering. A slow or silent client cannot hold a connection open.
//! - Every request reaching the router carries a [`ConnectionPeer`] extension computed once
//!   from the verified client certificate (see [`crate::peer`]) and axum's
//!   `ConnectInfo<SocketAddr>` with the remote address.
//! - Graceful shutdown stops accepting at once, lets requests in flight finish for
//!   [`ServeOptions::shutdown_grace`], then closes whatever remains.
//! - A refused handshake (no certificate, unknown CA, expired, revoked) is logged with the
//!   remote address and rustls' reason; it never reaches the router.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::http::Request;
use axum_server::Handle;
use axum_server::accept::{Accept, NoDelayAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use rustls::ServerConfig;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tower_service::Service;

use super::limits::LimitAcceptor;
use super::peer::ConnectionPeer;

/// Limits and timers of the HTTPS server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Longest time a client may take to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Longest time between the end of the handshake and the first request.
    pub first_request_timeout: Duration,
    /// Longest time an HTTP/1.1 client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// Interval of HTTP/2 PING frames sent to check that the peer is alive.
    pub http2_keep_alive_interval: Duration,
    /// How long to wait for a PING answer before closing the connection.
    pub http2_keep_alive_timeout: Duration,
    /// Most requests one HTTP/2 connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// Most connections open at once (handshakes included); more are closed at accept.
    pub max_connections: usize,
    /// How long a graceful shutdown waits for requests in flight before closing connections.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// For a local API (the clerk API, the hub's admin API): its clients are scripts and
    /// clerks' tools on the same machine, so anything slow is a fault: 10 s to send the first
    /// request and each request's headers, at most `max_connections` open.
    pub fn local(max_connections: usize) -> Self {
        ServeOptions {
            first_request_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_connections,
            ..ServeOptions::default()
        }
    }
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            http2_keep_alive_interval: Duration::from_secs(30),
            http2_keep_alive_timeout: Duration::from_secs(20),
            http2_max_concurrent_streams: 256,
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Why the server could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the listening socket on {addr} cannot be used: {source}")]
    Listener {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the HTTPS server on {addr} failed: {source}")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the HTTPS server task on {addr} ended abnormally: {detail}")]
    Crashed { addr: SocketAddr, detail: String },
}

/// A running HTTPS server. Dropping it stops the server immediately; use
/// [`HttpServer::run_until`] or [`HttpServer::shutdown`] for a graceful stop.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    shutdown: ShutdownHandle,
    tls: Option<RustlsConfig>,
    task: JoinHandle<io::Result<()>>,
}

/// Requests a graceful shutdown of a [`HttpServer`] from anywhere (cloneable).
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    handle: Handle<SocketAddr>,
    grace: Duration,
}

impl ShutdownHandle {
    /// Stops accepting connections and lets requests in flight finish within the grace period.
    pub fn shutdown(&self) {
        self.handle.graceful_shutdown(Some(self.grace));
    }
}

/// Replaces a running server's TLS configuration (see [`HttpServer::reload_tls`]).
#[derive(Clone)]
pub struct TlsReloader(RustlsConfig);

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsReloader")
    }
}

impl TlsReloader {
    /// New handshakes use `config` from now on.
    pub fn reload(&self, config: Arc<ServerConfig>) {
        self.0.reload_from_config(config);
    }
}

/// Binds, configures and spawns an axum-server with `$acceptor` (the TLS and plain servers
/// differ only in it). A macro: axum-server's acceptor bounds do not name well in a signature.
macro_rules! start {
    ($addr:expr, $acceptor:expr, $router:expr, $options:expr, $what:expr) => {{
        let (addr, options): (SocketAddr, &ServeOptions) = ($addr, $options);
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ServeError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServeError::Listener { addr, source })?;
        let handle = Handle::new();
        let mut server = axum_server::from_tcp(listener)
            .map_err(|source| ServeError::Listener {
                addr: local_addr,
                source,
            })?
            .acceptor($acceptor)
            .handle(handle.clone())
            .first_request_timeout(options.first_request_timeout)
            .accept_error_handler(log_refused_connection);
        server
            .http_builder()
            .http1()
            .header_read_timeout(options.header_read_timeout);
        server
            .http_builder()
            .http2()
            .keep_alive_interval(options.http2_keep_alive_interval)
            .keep_alive_timeout(options.http2_keep_alive_timeout)
            .max_concurrent_streams(options.http2_max_concurrent_streams);
        let task = tokio::spawn(
            server.serve($router.into_make_service_with_connect_info::<SocketAddr>()),
        );
        tracing::info!(addr = %local_addr, max_connections = options.max_connections,
            "{} server listening", $what);
        HttpServer {
            local_addr,
            shutdown: ShutdownHandle {
                handle,
                grace: options.shutdown_grace,
            },
            tls: None,
            task,
        }
    }};
}

/// Binds `addr` and starts serving `router` over TLS with `config` (from
/// [`crate::tls::server_config`]). Must be called within a tokio runtime.
pub async fn serve_tls(
    addr: SocketAddr,
    config: Arc<ServerConfig>,
    router: Router,
    options: ServeOptions,
) -> Result<HttpServer, ServeError> {
    let tls = RustlsConfig::from_config(config);
    let acceptor = LimitAcceptor::new(
        PeerAcceptor {
            inner: RustlsAcceptor::new(tls.clone())
                .handshake_timeout(options.handshake_timeout)
                .acceptor(NoDelayAcceptor::new()),
        },
        options.max_connections,
    );
    let mut server = start!(
        addr,
        acceptor,
        router,
        &options,
        "HTTPS (mutual TLS, h2 and http/1.1)"
    );
    server.tls = Some(tls);
    Ok(server)
}

/// Binds `addr` and starts serving `router` over plain HTTP (the loopback clerk and admin
/// APIs), with the same timeouts and connection limit as [`serve_tls`].
pub async fn serve_http(
    addr: SocketAddr,
    router: Router,
    options: ServeOptions,
) -> Result<HttpServer, ServeError> {
    let acceptor = LimitAcceptor::new(NoDelayAcceptor::new(), options.max_connections);
    Ok(start!(addr, acceptor, router, &options, "HTTP"))
}

fn log_refused_connection(remote: Option<&SocketAddr>, error: &io::Error) {
    match remote {
        Some(remote) => tracing::info!(%remote, %error, "connection refused"),
        None => tracing::warn!(%error, "accepting a connection failed"),
    }
}

impl HttpServer {
    /// The address actually bound (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that triggers a graceful shutdown.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Number of open connections (including those still in their handshake).
    pub fn connection_count(&self) -> usize {
        self.shutdown.handle.connection_count()
    }

    /// Replaces the TLS configuration for handshakes from now on (new CRL, renewed certificate).
    /// Connections already established keep the configuration they were accepted with.
    /// A plain HTTP server has no TLS configuration: nothing happens.
    pub fn reload_tls(&self, config: Arc<ServerConfig>) {
        if let Some(tls) = &self.tls {
            tls.reload_from_config(config);
        }
    }

    /// A handle that replaces the TLS configuration, for a task that outlives this borrow
    /// (`None` for a plain HTTP server).
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        self.tls.clone().map(TlsReloader)
    }

    /// Serves until `signal` completes, then shuts down gracefully and waits for the end.
    pub async fn run_until(mut self, signal: impl Future<Output = ()>) -> Result<(), ServeError> {
        tokio::select! {
            ended = &mut self.task => return self.outcome(ended),
            () = signal => {}
        }
        self.shutdown.shutdown();
        let ended = (&mut self.task).await;
        self.outcome(ended)
    }

    /// Shuts down gracefully and waits until every connection is closed.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        self.run_until(std::future::ready(())).await
    }

    /// Waits until the server stops (after a [`ShutdownHandle::shutdown`]).
    pub async fn wait(mut self) -> Result<(), ServeError> {
        let ended = (&mut self.task).await;
        self.outcome(ended)
    }

    fn outcome(
        &self,
        ended: Result<io::Result<()>, tokio::task::JoinError>,
    ) -> Result<(), ServeError> {
        let addr = self.local_addr;
        match ended {
            Ok(Ok(())) => {
                tracing::info!(%addr, "server stopped");
                Ok(())
            }
            Ok(Err(source)) => Err(ServeError::Serve { addr, source }),
            Err(e) => Err(ServeError::Crashed {
                addr,
                detail: e.to_string(),
            }),
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown.handle.shutdown();
    }
}

/// Wraps axum-server's rustls acceptor: after the handshake, derives the peer identity once
/// from the client certificate and attaches it to the connection's service.
#[derive(Clone)]
struct PeerAcceptor {
    inner: RustlsAcceptor<NoDelayAcceptor>,
}

type InnerAcceptor = RustlsAcceptor<NoDelayAcceptor>;
type InnerStream<S> = <InnerAcceptor as Accept<TcpStream, S>>::Stream;
type InnerService<S> = <InnerAcceptor as Accept<TcpStream, S>>::Service;

impl<S> Accept<TcpStream, S> for PeerAcceptor
where
    S: Send + 'static,
{
    type Stream = InnerStream<S>;
    type Service = PeerService<InnerService<S>>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let handshake = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = handshake.await?;
            let (_, connection) = stream.get_ref();
            let peer = connection
                .peer_certificates()
                .and_then(ConnectionPeer::from_chain);
            if let Some(ConnectionPeer(identity)) = &peer {
                match identity.as_ref() {
                    Ok(id) => tracing::debug!(
                        agency = id.agency_code.as_deref().unwrap_or("-"),
                        fingerprint = %id.fingerprint_sha256,
                        "client authenticated"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "client certificate carries no usable identity")
                    }
                }
            }
            Ok((
                stream,
                PeerService {
                    inner: service,
                    peer,
                },
            ))
        })
    }
}

/// Inserts the connection's [`ConnectionPeer`] into every request.
#[derive(Clone)]
struct PeerService<S> {
    inner: S,
    peer: Option<ConnectionPeer>,
}

impl<S, B> Service<Request<B>> for PeerService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Some(peer) = &self.peer {
            req.extensions_mut().insert(peer.clone());
        }
        self.inner.call(req)
    }
}
