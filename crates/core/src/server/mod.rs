//! The HTTP server: HTTP/1.1 and HTTP/2 (h2c by prior knowledge) on one port, with WebSocket
//! upgrade and generic connection hijack.
//!
//! Each request goes to an [`HttpHandler`] together with a [`Responder`]; the handler answers
//! whenever it likes, from any thread. A dropped responder answers 500. Small bodies arrive whole
//! and larger ones as a [`BodyStream`]; responses are whole or streamed through a [`BodySender`].
//! Limits (header size and count, body size, idle and header timeouts, connections, concurrent
//! handlers) are enforced here, before any JS runs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{oneshot, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

use crate::error::{Error, Result};
use crate::ws::{self, WsEvents, WsHandle, WsOptions};

mod body;
mod hijack;
mod io;
mod stats;
mod upgrade;

pub use body::{BodySender, BodyStream, RequestBody, ResBody, INLINE_BODY_LIMIT};
pub use hijack::RawConnection;
pub use hyper::upgrade::OnUpgrade;
pub use io::{BoundAddr, ListenTarget};
pub use stats::StatsSnapshot;
pub use upgrade::{wants_websocket, Upgrade, UpgradeAccept, UpgradeReject};

use io::{Activity, Counted, Listener};
use stats::Stats;

/// Options of [`Server::bind`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where to listen.
    pub listen: ListenTarget,
    /// Largest request body accepted; bigger bodies get 413.
    pub max_body_size: usize,
    /// Time allowed for a client to send a request head, counted from when the connection is
    /// ready for one (slowloris protection; also bounds idle HTTP/1.1 keep-alive).
    pub header_read_timeout: Duration,
    /// Close a connection after this long without traffic and with no request in flight.
    pub idle_timeout: Option<Duration>,
    /// Time allowed to receive a whole request body; past it the request gets 408.
    pub request_timeout: Option<Duration>,
    /// Largest request head in bytes (431 beyond; at least 8 KiB).
    pub max_header_size: usize,
    /// Most header fields in a request (431 beyond).
    pub max_headers: usize,
    /// Most connections open at once; further clients wait in the listen backlog.
    pub max_connections: Option<usize>,
    /// Most requests handed to handlers at once; further ones wait in a queue.
    pub max_concurrent_requests: Option<usize>,
    /// Most requests waiting for a handler slot; further ones get 503 at once.
    pub max_queued_requests: usize,
    /// Which HTTP versions to serve.
    pub protocols: Protocols,
    /// Limits and handshake policy of upgraded WebSocket connections.
    pub ws: WsOptions,
    /// The hub every WebSocket connection is registered with while open.
    pub hub: crate::hub::Hub,
    /// Value of the `Server` header, if any.
    pub server_name: Option<String>,
    /// Serve HTTPS with this configuration (its ALPN list should match `protocols`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            listen: ListenTarget::Tcp {
                addr: "127.0.0.1:0".into(),
                reuse_port: false,
            },
            max_body_size: 16 << 20,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(60)),
            request_timeout: Some(Duration::from_secs(300)),
            max_header_size: 64 << 10,
            max_headers: 100,
            max_connections: None,
            max_concurrent_requests: None,
            max_queued_requests: 1024,
            protocols: Protocols::Both,
            ws: WsOptions::default(),
            hub: crate::hub::Hub::default(),
            server_name: None,
            tls: None,
        }
    }
}

/// The HTTP versions a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/1.1, and HTTP/2 when a connection starts with its preface (h2c by prior knowledge).
    Both,
    /// HTTP/2 only (h2c by prior knowledge); anything else is a connection error.
    Http2,
}

/// A request as handed to an [`HttpHandler`].
#[derive(Debug)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: Method,
    /// The request target: path and query (HTTP/1.1 origin form), or the full URI.
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// All header fields, in order, with repeated names kept. For HTTP/2 the `:authority`
    /// pseudo-header is added as `host` when the request has none.
    pub headers: HeaderMap,
    /// The body.
    pub body: RequestBody,
    /// The client's address; `None` on a unix socket.
    pub remote_addr: Option<SocketAddr>,
    /// Present when the request asked for a protocol upgrade that the handler may take over
    /// by answering 101 (see [`RawConnection`]).
    pub upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// What the TLS handshake negotiated, on an HTTPS connection.
    pub tls: Option<Arc<ConnTls>>,
}

/// The TLS side of an HTTPS connection, shared by its requests.
#[derive(Debug)]
pub struct ConnTls {
    /// Protocol, cipher, ALPN and the client's certificate chain (when it sent one).
    pub info: crate::tls::TlsInfo,
    /// The host name the client asked for with SNI.
    pub server_name: Option<String>,
    json: std::sync::OnceLock<String>,
}

impl ConnTls {
    /// What the handshake negotiated and the SNI name.
    pub fn new(info: crate::tls::TlsInfo, server_name: Option<String>) -> Self {
        ConnTls {
            info,
            server_name,
            json: std::sync::OnceLock::new(),
        }
    }

    /// [`crate::tls::TlsInfo::to_json`] with one more field, `serverName`; made once per
    /// connection, so every request on it costs a copy at most.
    pub fn to_json(&self) -> &str {
        self.json.get_or_init(|| {
            let sni = serde_json::to_string(&self.server_name).unwrap_or_else(|_| "null".into());
            match self.info.to_json().strip_suffix('}') {
                Some(head) if head.len() > 1 => format!("{head},\"serverName\":{sni}}}"),
                _ => format!("{{\"serverName\":{sni}}}"),
            }
        })
    }
}

/// A response produced by a handler.
pub struct Response {
    /// Status code (100-999); an invalid one becomes 500.
    pub status: u16,
    /// Header fields; repeated names are sent as separate fields. See [`header_map`].
    pub headers: HeaderMap,
    /// The body.
    pub body: ResBody,
}

impl Response {
    /// A response with a whole body.
    pub fn new(status: u16, headers: HeaderMap, body: Bytes) -> Self {
        Response {
            status,
            headers,
            body: ResBody::full(body),
        }
    }
}

/// Builds a header map from name/value pairs, in order, checking every name and value (the
/// handler's side of header injection: no CR, LF or other control bytes get through).
pub fn header_map<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Result<HeaderMap, Error>
where
    N: AsRef<str>,
    V: AsRef<str>,
{
    let pairs = pairs.into_iter();
    let mut map = HeaderMap::with_capacity(pairs.size_hint().0);
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::InvalidArgument(format!("invalid value for header {:?}", name.as_str()))
        })?;
        map.append(name, value);
    }
    Ok(map)
}

/// The one-shot channel a handler answers through. Dropping it unanswered sends 500.
pub struct Responder(oneshot::Sender<Response>);

impl Responder {
    /// Sends the response. Returns false when the client is already gone.
    pub fn send(self, response: Response) -> bool {
        self.0.send(response).is_ok()
    }

    /// True when the client is gone and a response would be dropped.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// Handles plain HTTP requests.
pub trait HttpHandler: Send + Sync + 'static {
    /// Called once per request on a tokio thread; must not block.
    fn handle(&self, request: Request, responder: Responder);
}

/// Handles WebSocket connections upgraded from HTTP.
pub trait WsHandler: WsEvents {
    /// A valid upgrade request arrived; answer through [`Upgrade::accept`] or
    /// [`Upgrade::reject`] (dropping it unanswered rejects with 500). The default accepts.
    fn on_upgrade(&self, upgrade: Upgrade) {
        upgrade.accept(UpgradeAccept::default());
    }
    /// A connection opened after a successful handshake. `request` has an empty body.
    fn on_open(&self, handle: WsHandle, request: Request);
}

pub(crate) struct Ctx {
    pub(crate) http: Arc<dyn HttpHandler>,
    pub(crate) ws: Option<Arc<dyn WsHandler>>,
    pub(crate) opts: ServerOptions,
    pub(crate) server_name: Option<HeaderValue>,
    pub(crate) next_ws_id: AtomicU64,
    pub(crate) sockets: Mutex<HashMap<u64, (WsHandle, AbortHandle)>>,
    pub(crate) stats: Arc<Stats>,
    handler_slots: Option<Arc<Semaphore>>,
    tls: Option<std::sync::RwLock<Arc<rustls::ServerConfig>>>,
    queued: AtomicUsize,
}

/// A running server. Dropping it does not stop it; call [`Server::stop`].
pub struct Server {
    local_addr: BoundAddr,
    ctx: Arc<Ctx>,
    shutdown: watch::Sender<Option<Duration>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Server {
    /// Binds the listening socket and starts accepting connections on the current runtime.
    pub async fn bind(
        opts: ServerOptions,
        http: Arc<dyn HttpHandler>,
        ws: Option<Arc<dyn WsHandler>>,
    ) -> Result<Server> {
        let listener = Listener::bind(&opts.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: match &opts.listen {
                    ListenTarget::Tcp { addr, .. } => addr.clone(),
                    #[cfg(unix)]
                    ListenTarget::Unix(path) => path.display().to_string(),
                },
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let server_name = match &opts.server_name {
            Some(name) => Some(
                HeaderValue::from_str(name)
                    .map_err(|_| Error::InvalidArgument("invalid server name".into()))?,
            ),
            None => None,
        };
        let ctx = Arc::new(Ctx {
            http,
            ws,
            server_name,
            next_ws_id: AtomicU64::new(1),
            sockets: Mutex::new(HashMap::new()),
            stats: Arc::new(Stats::default()),
            handler_slots: opts
                .max_concurrent_requests
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            queued: AtomicUsize::new(0),
            tls: opts.tls.clone().map(std::sync::RwLock::new),
            opts,
        });
        let (shutdown, rx) = watch::channel(None);
        let task = tokio::spawn(accept_loop(listener, ctx.clone(), rx));
        Ok(Server {
            local_addr,
            ctx,
            shutdown,
            task: Mutex::new(Some(task)),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> &BoundAddr {
        &self.local_addr
    }

    /// Number of open WebSocket connections.
    pub fn websocket_count(&self) -> usize {
        lock(&self.ctx.sockets).len()
    }

    /// The hub of the server's WebSocket connections.
    pub fn hub(&self) -> &crate::hub::Hub {
        &self.ctx.opts.hub
    }

    /// Replaces the TLS configuration (e.g. renewed certificates) for new connections; open
    /// ones keep theirs. Fails when the server was started without TLS.
    pub fn reload_tls(&self, config: Arc<rustls::ServerConfig>) -> Result<()> {
        let Some(tls) = &self.ctx.tls else {
            return Err(Error::InvalidArgument(
                "the server was started without TLS".into(),
            ));
        };
        *tls.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// The server's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.ctx.stats.snapshot(self.websocket_count() as u64)
    }

    /// Stops accepting, closes idle connections, lets in-flight requests finish, sends close 1001
    /// to WebSockets, and forces whatever remains after `deadline`. Idempotent.
    pub async fn stop(&self, deadline: Duration) {
        let _ = self.shutdown.send(Some(deadline));
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.ctx.opts.hub.shutdown();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The connection builders of a server: HTTP/1.1 with HTTP/2 detected by its preface, or one of
/// them alone (chosen by `protocols`, or by ALPN on a TLS connection).
struct ConnBuilder {
    auto: auto::Builder<TokioExecutor>,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    protocols: Protocols,
}

/// hyper's default limit of header fields in a request.
const HYPER_MAX_HEADERS: usize = 100;

fn connection_builder(opts: &ServerOptions) -> ConnBuilder {
    // 0 turns the limit off (hyper would take it as "at once").
    let head_timeout = (!opts.header_read_timeout.is_zero()).then_some(opts.header_read_timeout);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(opts.max_header_size.max(8192))
        .keep_alive(true);
    let mut auto = auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(opts.max_header_size.max(8192))
        .keep_alive(true);
    // hyper parses into a header array on the stack unless a limit is set, which makes it
    // allocate one per request: set only a limit other than hyper's own (100).
    if opts.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(opts.max_headers);
        auto.http1().max_headers(opts.max_headers);
    }
    auto.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    ConnBuilder {
        auto,
        http1,
        http2,
        protocols: opts.protocols,
    }
}

async fn accept_loop(
    listener: Listener,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<Option<Duration>>,
) {
    let mut conns = JoinSet::new();
    let builder = Arc::new(connection_builder(&ctx.opts));
    let slots = ctx
        .opts
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n.max(1))));
    let deadline = loop {
        let permit: Option<OwnedSemaphorePermit> = match &slots {
            Some(slots) => tokio::select! {
                p = slots.clone().acquire_owned() => p.ok(),
                changed = shutdown.changed() => break stop_deadline(&shutdown, changed),
            },
            None => None,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (io, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(_) => {
                        // Out of descriptors or a connection reset before accept: back off a bit.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                conns.spawn(serve_connection(ctx.clone(), builder.clone(), io, peer, shutdown.clone(), permit));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            changed = shutdown.changed() => break stop_deadline(&shutdown, changed),
        }
    };
    drop(listener);
    let sockets: Vec<(WsHandle, AbortHandle)> = lock(&ctx.sockets).values().cloned().collect();
    for (handle, _) in &sockets {
        let _ = handle.close(ws::CLOSE_GOING_AWAY, "server shutting down".into());
    }
    let drain = async {
        while conns.join_next().await.is_some() {}
        while !lock(&ctx.sockets).is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(deadline, drain).await.is_err() {
        conns.abort_all();
        let rest: Vec<(WsHandle, AbortHandle)> =
            lock(&ctx.sockets).drain().map(|(_, v)| v).collect();
        for (_, abort) in rest {
            abort.abort();
        }
    }
}

fn stop_deadline(
    shutdown: &watch::Receiver<Option<Duration>>,
    changed: std::result::Result<(), watch::error::RecvError>,
) -> Duration {
    match changed {
        Ok(()) => (*shutdown.borrow()).unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

/// Serves HTTP on an established (plain or TLS) stream.
async fn serve_io<I: io::Io>(
    ctx: &Arc<Ctx>,
    builder: &ConnBuilder,
    io: I,
    peer: Option<SocketAddr>,
    tls: Option<Arc<ConnTls>>,
    activity: &Arc<Activity>,
    stop: &mut watch::Receiver<Option<Duration>>,
) {
    let alpn: Option<&[u8]> = match tls.as_ref().and_then(|t| t.info.alpn_protocol.as_deref()) {
        Some("h2") => Some(b"h2"),
        Some("http/1.1") => Some(b"http/1.1"),
        _ => None,
    };
    // What every request of the connection needs, shared: one reference count per request.
    let conn = Arc::new(ConnShared {
        ctx: ctx.clone(),
        activity: activity.clone(),
        tls,
        peer,
    });
    let svc = service_fn(move |req| {
        let conn = conn.clone();
        async move {
            let _busy = Gauge::up(&conn.activity.in_flight);
            conn.activity.started.store(true, Relaxed);
            Ok::<_, Infallible>(handle(&conn.ctx, conn.peer, conn.tls.clone(), req).await)
        }
    });
    let io = TokioIo::new(io);
    // ALPN, when TLS negotiated it, decides; otherwise the configured protocols do.
    let protocols = match alpn {
        Some(b"h2") => Protocols::Http2,
        Some(b"http/1.1") => Protocols::Http1,
        _ => builder.protocols,
    };
    match protocols {
        Protocols::Both => {
            let conn = std::pin::pin!(builder.auto.serve_connection_with_upgrades(io, svc));
            drive(conn, |c| c.graceful_shutdown(), ctx, activity, stop).await;
        }
        Protocols::Http1 => {
            let conn = std::pin::pin!(builder.http1.serve_connection(io, svc).with_upgrades());
            drive(conn, |c| c.graceful_shutdown(), ctx, activity, stop).await;
        }
        Protocols::Http2 => {
            let conn = std::pin::pin!(builder.http2.serve_connection(io, svc));
            drive(conn, |c| c.graceful_shutdown(), ctx, activity, stop).await;
        }
    }
}

struct ConnShared {
    ctx: Arc<Ctx>,
    activity: Arc<Activity>,
    tls: Option<Arc<ConnTls>>,
    peer: Option<SocketAddr>,
}

/// Runs a connection until it ends, shutting it down gracefully on server stop or when it has
/// been idle (no bytes, no request in flight) for the idle timeout.
///
/// A connection whose first request head has not arrived within the header-read timeout of its
/// accept is dropped, whatever the protocol: hyper's own timer covers HTTP/1.1 only, and only
/// once it owns the socket, so a silent socket, or one that sends part of the HTTP/2 preface,
/// would otherwise be kept until the idle timeout (or forever without one).
async fn drive<C: std::future::Future>(
    mut conn: std::pin::Pin<&mut C>,
    shutdown: fn(std::pin::Pin<&mut C>),
    ctx: &Ctx,
    activity: &Activity,
    stop: &mut watch::Receiver<Option<Duration>>,
) {
    let idle = ctx.opts.idle_timeout;
    let head_by = (!ctx.opts.header_read_timeout.is_zero())
        .then(|| activity.accepted + ctx.opts.header_read_timeout);
    // The timer ticks at a quarter of the idle timeout; a connection is closed once no byte
    // moved (and no request was in flight) for the whole timeout, give or take a tick.
    let tick = idle.map(|d| (d / 4).max(Duration::from_millis(1)));
    let mut seen = activity.ops.load(Relaxed);
    let mut quiet_from = tokio::time::Instant::now();
    loop {
        let mut wait = match (idle, tick) {
            (Some(idle), Some(tick)) => idle
                .saturating_sub(quiet_from.elapsed())
                .min(tick)
                .max(Duration::from_millis(1)),
            _ => Duration::from_secs(3600),
        };
        let waiting_for_head = head_by.filter(|_| !activity.started.load(Relaxed));
        if let Some(by) = waiting_for_head {
            let left = by.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                ctx.stats.timeouts.fetch_add(1, Relaxed);
                return;
            }
            wait = wait.min(left);
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed() => {
                // Finish the in-flight requests, then close instead of keeping alive.
                shutdown(conn.as_mut());
                conn.as_mut().await;
                return;
            }
            _ = tokio::time::sleep(wait) => {
                let Some(idle) = idle else { continue };
                let ops = activity.ops.load(Relaxed);
                if ops != seen || activity.in_flight.load(Relaxed) > 0 {
                    seen = ops;
                    quiet_from = tokio::time::Instant::now();
                    continue;
                }
                if quiet_from.elapsed() >= idle {
                    ctx.stats.timeouts.fetch_add(1, Relaxed);
                    shutdown(conn.as_mut());
                    conn.as_mut().await;
                    return;
                }
            }
        }
    }
}

async fn serve_connection(
    ctx: Arc<Ctx>,
    builder: Arc<ConnBuilder>,
    io: io::BoxIo,
    peer: Option<SocketAddr>,
    mut stop: watch::Receiver<Option<Duration>>,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let stats = ctx.stats.clone();
    stats.connections_total.fetch_add(1, Relaxed);
    let activity = Arc::new(Activity::new());
    let io = Counted::new(io, stats.clone(), activity.clone());
    match &ctx.tls {
        None => serve_io(&ctx, &builder, io, peer, None, &activity, &mut stop).await,
        Some(config) => {
            let config = config.read().unwrap_or_else(|e| e.into_inner()).clone();
            let handshake = tokio_rustls::TlsAcceptor::from(config).accept(io);
            let limit = ctx.opts.header_read_timeout;
            let handshake = async {
                if limit.is_zero() {
                    Ok(handshake.await)
                } else {
                    tokio::time::timeout(limit, handshake).await
                }
            };
            match handshake.await {
                Ok(Ok(stream)) => {
                    let conn = stream.get_ref().1;
                    let tls = Arc::new(ConnTls::new(
                        crate::tls::TlsInfo::from_connection(conn),
                        conn.server_name().map(str::to_owned),
                    ));
                    serve_io(
                        &ctx,
                        &builder,
                        stream,
                        peer,
                        Some(tls),
                        &activity,
                        &mut stop,
                    )
                    .await;
                }
                Ok(Err(_)) => {
                    stats.tls_failures.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    stats.tls_failures.fetch_add(1, Relaxed);
                    stats.timeouts.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// Raises a gauge for as long as it lives, so that a dropped request future (client gone, HTTP/2
/// stream reset) still lowers it.
struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

pub(crate) type HttpResponse = hyper::Response<ResBody>;

pub(crate) fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut res = hyper::Response::new(ResBody::full(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

async fn handle(
    ctx: &Arc<Ctx>,
    peer: Option<SocketAddr>,
    tls: Option<Arc<ConnTls>>,
    req: hyper::Request<Incoming>,
) -> HttpResponse {
    ctx.stats.requests_total.fetch_add(1, Relaxed);
    let mut res = if let Some(rejected) = reject_framing(&req) {
        rejected
    } else if ctx.ws.is_some() && wants_websocket(req.headers()) {
        upgrade::upgrade_websocket(ctx, peer, req).await
    } else {
        let _in_flight = Gauge::up(&ctx.stats.requests_in_flight);
        handle_http(ctx, peer, tls, req).await
    };
    if let Some(name) = &ctx.server_name {
        res.headers_mut().insert(header::SERVER, name.clone());
    }
    ctx.stats.count_response(res.status().as_u16());
    res
}

/// Refuses HTTP/1 requests that request smugglers use: a transfer coding other than `chunked`,
/// and a missing or repeated `Host` (RFC 9112 sections 3.2 and 6.1). The connection is closed.
/// (hyper itself rejects conflicting `Content-Length` values, and for `Content-Length` together
/// with `Transfer-Encoding` it reads the body as chunked and closes the connection afterwards.)
fn reject_framing(req: &hyper::Request<Incoming>) -> Option<HttpResponse> {
    let version = req.version();
    if version != Version::HTTP_11 && version != Version::HTTP_10 {
        return None;
    }
    let headers = req.headers();
    let mut te = headers.get_all(header::TRANSFER_ENCODING).iter().peekable();
    let (status, text) =
        if te.peek().is_some() && !te.all(|v| v.as_bytes().eq_ignore_ascii_case(b"chunked")) {
            (
                StatusCode::NOT_IMPLEMENTED,
                "only the chunked transfer coding is supported\n",
            )
        } else if version == Version::HTTP_11 && headers.get_all(header::HOST).iter().count() != 1 {
            (
                StatusCode::BAD_REQUEST,
                "HTTP/1.1 needs exactly one Host header\n",
            )
        } else if headers
            .get(header::HOST)
            .is_some_and(|h| !valid_host(h.as_bytes()))
        {
            (StatusCode::BAD_REQUEST, "invalid Host header\n")
        } else {
            return None;
        };
    let mut res = plain(status, text);
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(res)
}

/// True for a `Host` value of RFC 9110 section 7.2: `uri-host [ ":" port ]`, where the host is a
/// reg-name (unreserved, percent-encoded and sub-delims characters), an IPv4 address or an IP
/// literal in brackets. An empty value is allowed (RFC 9112 section 3.2).
fn valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|&b| b == b':') {
        Some(i) if !value[i..].contains(&b']') => (&value[..i], &value[i + 1..]),
        _ => (value, &b""[..]),
    };
    let port_ok = port.iter().all(u8::is_ascii_digit) && port.len() <= 5;
    let host_ok = if let Some(inner) = host.strip_prefix(b"[") {
        inner.strip_suffix(b"]").is_some_and(|ip| {
            !ip.is_empty()
                && ip.iter().all(|&b| {
                    b.is_ascii_hexdigit() || b":.vV%-_~".contains(&b) || b.is_ascii_alphanumeric()
                })
        })
    } else {
        host.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=".contains(&b))
    };
    port_ok && host_ok
}

/// Waits for a handler slot when concurrency is limited; `None` means the queue is full.
async fn handler_slot(ctx: &Ctx) -> Option<Option<OwnedSemaphorePermit>> {
    let Some(slots) = &ctx.handler_slots else {
        return Some(None);
    };
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(Some(permit));
    }
    if ctx.queued.fetch_add(1, Relaxed) >= ctx.opts.max_queued_requests {
        ctx.queued.fetch_sub(1, Relaxed);
        return None;
    }
    let permit = slots.clone().acquire_owned().await.ok();
    ctx.queued.fetch_sub(1, Relaxed);
    Some(permit)
}

async fn handle_http(
    ctx: &Arc<Ctx>,
    peer: Option<SocketAddr>,
    tls: Option<Arc<ConnTls>>,
    mut req: hyper::Request<Incoming>,
) -> HttpResponse {
    let Some(_slot) = handler_slot(ctx).await else {
        ctx.stats.rejected_overload.fetch_add(1, Relaxed);
        let mut res = plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "server busy, retry later\n",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return res;
    };
    let upgrade =
        if req.headers().contains_key(header::UPGRADE) && req.version() == Version::HTTP_11 {
            Some(hyper::upgrade::on(&mut req))
        } else {
            None
        };
    let (mut parts, incoming) = req.into_parts();
    let limit = ctx.opts.max_body_size;
    let declared = if incoming.is_end_stream() {
        Some(0)
    } else {
        parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    // An empty body's stream is still held until the response, as hyper expects of a body it
    // has handed over (dropping it early can reset an HTTP/2 stream).
    let (body, _held) = if declared == Some(0) {
        (RequestBody::empty(), Some(incoming))
    } else {
        let deadline = ctx
            .opts
            .request_timeout
            .map(|t| tokio::time::Instant::now() + t);
        let mut stream = BodyStream::new(incoming, limit, deadline);
        let body = match declared {
            Some(n) if n as usize <= INLINE_BODY_LIMIT => match stream.collect().await {
                Ok(bytes) => RequestBody::Full(bytes),
                Err(e) => return body_error(ctx, &e),
            },
            _ => RequestBody::Stream(stream),
        };
        (body, None)
    };
    if parts.version == Version::HTTP_2 && !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(header::HOST, authority);
        }
    }
    let target = match parts.uri.path_and_query() {
        // Origin form (and HTTP/2's :path): copy it as is, without formatting the URI.
        Some(pq) if parts.version == Version::HTTP_2 || parts.uri.scheme().is_none() => {
            pq.as_str().to_owned()
        }
        _ => parts.uri.to_string(),
    };
    let (tx, rx) = oneshot::channel();
    let request = Request {
        method: parts.method,
        target,
        version: parts.version,
        headers: parts.headers,
        body,
        remote_addr: peer,
        upgrade,
        tls,
    };
    let head = request.method == Method::HEAD;
    ctx.http.handle(request, Responder(tx));
    match rx.await {
        Ok(response) => build_response(response, head),
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
    }
}

fn body_error(ctx: &Ctx, e: &Error) -> HttpResponse {
    match e {
        Error::BodyTooLarge { .. } => {
            plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        }
        Error::Timeout(_) => {
            ctx.stats.timeouts.fetch_add(1, Relaxed);
            let mut res = plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time\n",
            );
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
        _ => plain(StatusCode::BAD_REQUEST, "could not read request body\n"),
    }
}

/// Turns a handler's response into hyper's. The handler never frames the body: its
/// `Transfer-Encoding` is dropped (hyper chunks a streamed HTTP/1.1 body itself; HTTP/2 has no
/// transfer codings), a `Content-Length` that is not one decimal number makes the response a
/// 500, and for a whole body the header is set to the body's real length (a wrong value would
/// let the bytes after it pass for the next response on a keep-alive connection). Responses that
/// have no content get none, whatever the handler returned: 1xx, 204 and 304 lose the body and
/// their `Content-Length` (RFC 9110 section 8.6), and a response to `HEAD` loses the body but
/// keeps the length a `GET` would get (the body's, or the handler's own number when it returned
/// no body).
pub(crate) fn build_response(response: Response, head: bool) -> HttpResponse {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handler returned an invalid status\n",
        );
    };
    let mut headers = response.headers;
    headers.remove(header::TRANSFER_ENCODING);
    let Ok(declared) = content_length(&headers) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handler set an invalid Content-Length\n",
        );
    };
    let mut body = response.body;
    let real = body.exact_len();
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        body = ResBody::empty();
        headers.remove(header::CONTENT_LENGTH);
    } else if head {
        body = ResBody::empty();
        if let Some(n) = real.filter(|&n| n > 0 || declared.is_none()) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    } else if let Some(n) = real {
        if declared != Some(n) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    let mut res = hyper::Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// The one `Content-Length` of a header map: `Ok(None)` without one, `Err` for anything but a
/// single decimal number (repeats that agree count as one, as RFC 9110 section 8.6 allows).
fn content_length(headers: &HeaderMap) -> std::result::Result<Option<u64>, ()> {
    let mut found = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let bytes = value.as_bytes();
        if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        let n: u64 = std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(())?;
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        found = Some(n);
    }
    Ok(found)
}

/// Request headers as a map (re-exported for handlers written in Rust).
pub type Headers = HeaderMap;

#[cfg(test)]
mod host_tests {
    use super::valid_host;

    #[test]
    fn host_values() {
        for ok in [
            &b"example.com"[..],
            b"example.com:8080",
            b"127.0.0.1:1",
            b"[::1]",
            b"[::1]:443",
            b"",
            b"xn--bcher-kva.example",
            b"a_b.local",
        ] {
            assert!(valid_host(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"exa mple"[..],
            b"a/b",
            b"a?b",
            b"a#b",
            b"a@b",
            b"[::1",
            b"example.com:80a",
            b"example.com:123456",
            b"caf\xc3\xa9",
            b"a\\b",
        ] {
            assert!(!valid_host(bad), "{}", String::from_utf8_lossy(bad));
        }
    }
}
