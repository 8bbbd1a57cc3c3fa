//! The HTTP/1.1 server with WebSocket upgrade on the same port.
//!
//! Each request is read in full (up to [`ServerOptions::max_body_size`]) and handed to an
//! [`HttpHandler`] together with a [`Responder`]; the handler answers whenever it likes, from any
//! thread. A dropped responder answers 500. Upgrades to WebSocket are validated here and the
//! connection is then driven by [`crate::ws::run`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::error::{Error, Result};
use crate::ws::{self, WsEvents, WsHandle, WsOptions};

mod upgrade;
pub use upgrade::{wants_websocket, Upgrade, UpgradeAccept, UpgradeReject};

/// Options of [`Server::bind`].
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Interface to listen on, e.g. `127.0.0.1` or `::1`.
    pub hostname: String,
    /// Port; 0 picks a free one (see [`Server::local_addr`]).
    pub port: u16,
    /// Largest request body accepted; bigger bodies get 413.
    pub max_body_size: usize,
    /// Time allowed for a client to send the request head (slowloris protection).
    pub header_read_timeout: Duration,
    /// Limits and handshake policy of upgraded WebSocket connections.
    pub ws: WsOptions,
    /// Value of the `Server` header, if any.
    pub server_name: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            hostname: "127.0.0.1".into(),
            port: 0,
            max_body_size: 16 << 20,
            header_read_timeout: Duration::from_secs(30),
            ws: WsOptions::default(),
            server_name: None,
        }
    }
}

/// A request as handed to an [`HttpHandler`].
#[derive(Debug)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: Method,
    /// The request target as sent (path and query, or absolute form).
    pub target: String,
    /// The protocol version.
    pub version: Version,
    /// All header fields, in order, with repeated names kept.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// The client's address.
    pub remote_addr: SocketAddr,
}

/// A response produced by a handler.
#[derive(Debug, Default)]
pub struct Response {
    /// Status code (100-999); an invalid one becomes 500.
    pub status: u16,
    /// Header fields in order; repeated names are sent as separate fields.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
}

/// The one-shot channel a handler answers through. Dropping it unanswered sends 500.
pub struct Responder(oneshot::Sender<Response>);

impl Responder {
    /// Sends the response. Returns false when the client is already gone.
    pub fn send(self, response: Response) -> bool {
        self.0.send(response).is_ok()
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
}

/// A running server. Dropping it does not stop it; call [`Server::stop`].
pub struct Server {
    local_addr: SocketAddr,
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
        let host = opts.hostname.trim_start_matches('[').trim_end_matches(']');
        let addr_text = if host.contains(':') {
            format!("[{host}]:{}", opts.port)
        } else {
            format!("{host}:{}", opts.port)
        };
        let listener = TcpListener::bind(&addr_text)
            .await
            .map_err(|source| Error::Listen {
                addr: addr_text.clone(),
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
            opts,
            server_name,
            next_ws_id: AtomicU64::new(1),
            sockets: Mutex::new(HashMap::new()),
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
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Number of open WebSocket connections.
    pub fn websocket_count(&self) -> usize {
        lock(&self.ctx.sockets).len()
    }

    /// Stops accepting, closes idle connections, lets in-flight requests finish, sends close 1001
    /// to WebSockets, and forces whatever remains after `deadline`. Idempotent.
    pub async fn stop(&self, deadline: Duration) {
        let _ = self.shutdown.send(Some(deadline));
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<Option<Duration>>,
) {
    let mut conns = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.opts.header_read_timeout)
        .keep_alive(true);
    let deadline = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(_) => {
                        // Out of descriptors or a connection reset before accept: back off a bit.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let ctx2 = ctx.clone();
                let svc = service_fn(move |req| handle(ctx2.clone(), peer, req));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).with_upgrades();
                let mut stop = shutdown.clone();
                conns.spawn(async move {
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = stop.changed() => {}
                    }
                    // Finish the in-flight request, then close instead of keeping alive.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            changed = shutdown.changed() => {
                let deadline = match changed {
                    Ok(()) => (*shutdown.borrow()).unwrap_or_default(),
                    Err(_) => Duration::ZERO,
                };
                break deadline;
            }
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

pub(crate) type HttpResponse = hyper::Response<Full<Bytes>>;

pub(crate) fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut res = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

async fn handle(
    ctx: Arc<Ctx>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> std::result::Result<HttpResponse, Infallible> {
    let mut res = if ctx.ws.is_some() && wants_websocket(req.headers()) {
        upgrade::upgrade_websocket(&ctx, peer, req).await
    } else {
        handle_http(&ctx, peer, req).await
    };
    if let Some(name) = &ctx.server_name {
        res.headers_mut().insert(header::SERVER, name.clone());
    }
    Ok(res)
}

async fn handle_http(
    ctx: &Arc<Ctx>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let limit = ctx.opts.max_body_size;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
        }
        Err(_) => return plain(StatusCode::BAD_REQUEST, "could not read request body\n"),
    };
    let (tx, rx) = oneshot::channel();
    let request = Request {
        method: parts.method,
        target: parts.uri.to_string(),
        version: parts.version,
        headers: parts.headers,
        body,
        remote_addr: peer,
    };
    ctx.http.handle(request, Responder(tx));
    match rx.await {
        Ok(response) => build_response(response),
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
    }
}

pub(crate) fn build_response(response: Response) -> HttpResponse {
    let Ok(status) = StatusCode::from_u16(response.status) else {
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "handler returned an invalid status\n",
        );
    };
    let mut res = hyper::Response::new(Full::new(response.body));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    for (name, value) in response.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            return plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "handler returned an invalid header\n",
            );
        };
        headers.append(name, value);
    }
    res
}
