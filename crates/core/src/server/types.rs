//! The server's public types: options, requests and responses, and the handler traits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::ws::{WsEvents, WsHandle, WsOptions};

use super::*;

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
    /// Close a connection whose client has not taken any response bytes for this long while
    /// the server has some to send (a client that stopped reading).
    pub send_timeout: Option<Duration>,
    /// Largest request head in bytes (431 beyond; at least 8 KiB).
    pub max_header_size: usize,
    /// Most header fields in a request (431 beyond).
    pub max_headers: usize,
    /// Most streams open at once on one HTTP/2 connection: requests and WebSockets (RFC 8441)
    /// together. Further streams wait for one to end.
    pub max_concurrent_streams: u32,
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
    /// The route table matched before the handler is called (empty: every request goes to
    /// the handler). [`Server::set_routes`] replaces it.
    pub routes: Arc<Routes>,
    /// Report the requests the route table answers without the handler (static values, files,
    /// 405) to [`HttpHandler::on_answered`], for an access log. Default false.
    pub log_answered: bool,
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
            send_timeout: Some(Duration::from_secs(60)),
            max_header_size: 64 << 10,
            max_headers: 100,
            max_concurrent_streams: 256,
            max_connections: None,
            max_concurrent_requests: None,
            max_queued_requests: 1024,
            protocols: Protocols::Both,
            ws: WsOptions::default(),
            hub: crate::hub::Hub::default(),
            server_name: None,
            tls: None,
            routes: Arc::default(),
            log_answered: false,
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
    /// The route the request matched, when it matched one whose action is a handler.
    pub route: Option<RouteMatch>,
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
    /// A reason phrase other than the status code's usual one (HTTP/1.1 only; HTTP/2 has
    /// none). One with bytes a status line cannot carry (CR, LF, other controls) is not sent.
    pub reason: Option<Box<str>>,
}

impl Response {
    /// A response with a whole body.
    pub fn new(status: u16, headers: HeaderMap, body: Bytes) -> Self {
        Response {
            status,
            headers,
            body: ResBody::full(body),
            reason: None,
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
pub struct Responder(pub(super) oneshot::Sender<Response>);

impl Responder {
    /// Sends the response. Returns false when the client is already gone.
    pub fn send(self, response: Response) -> bool {
        self.0.send(response).is_ok()
    }

    /// True when the client is gone and a response would be dropped.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    /// Ready once the client is gone (the connection closed, the HTTP/2 stream was reset, or
    /// the server stopped); until then registers `cx`'s waker to be woken then.
    pub fn poll_closed(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.0.poll_closed(cx)
    }
}

/// Handles plain HTTP requests.
pub trait HttpHandler: Send + Sync + 'static {
    /// Called once per request on a tokio thread; must not block.
    fn handle(&self, request: Request, responder: Responder);
    /// A request the route table answered by itself, once its response head is ready (only with
    /// [`ServerOptions::log_answered`]). Must not block.
    fn on_answered(&self, _entry: Answered) {}
}

/// A request answered by the route table without the handler (see
/// [`HttpHandler::on_answered`]).
#[derive(Debug, Clone)]
pub struct Answered {
    /// The request method.
    pub method: Method,
    /// The request target (path and query).
    pub target: String,
    /// The response status.
    pub status: u16,
    /// The HTTP version of the request.
    pub version: Version,
    /// The client's address, when known.
    pub peer: Option<SocketAddr>,
    /// Time from the request's arrival to its response head.
    pub duration: Duration,
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

/// Request headers as a map (re-exported for handlers written in Rust).
pub type Headers = HeaderMap;
