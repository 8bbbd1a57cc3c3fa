use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hypersock_core::server::{
    BodySender, BoundAddr, HttpHandler, ListenTarget, Protocols, RawConnection, Request,
    RequestBody, ResBody, Responder, Response, Server, ServerOptions,
};
use hypersock_core::tls::{server_config_sni, ServerTlsOptions, SniCertificate, TlsVersion};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::sync::Mutex;

use crate::websocket::{server_websocket, BindingWsOptions, WsEventCallback};
use crate::{flat_headers, pair_headers, to_js_error};

/// Options of `startServer`, validated and defaulted by the TS layer. Times in ms; 0 = none.
#[napi(object)]
pub struct BindingServerOptions {
    pub hostname: String,
    pub port: u32,
    pub unix: Option<String>,
    pub reuse_port: bool,
    /// 0: HTTP/1.1 only, 1: HTTP/1.1 and h2c, 2: HTTP/2 only.
    pub protocols: u32,
    pub max_body_size: f64,
    pub header_read_timeout_ms: u32,
    pub idle_timeout_ms: u32,
    pub request_timeout_ms: u32,
    pub max_header_size: u32,
    pub max_headers: u32,
    pub max_connections: u32,
    pub max_concurrent_requests: u32,
    pub max_queued_requests: u32,
    pub server_name: Option<String>,
    /// Serve HTTPS with these certificates.
    pub tls: Option<BindingServerTls>,
    /// WebSocket options; required when `onWebSocket` is given.
    pub websocket: Option<BindingWsOptions>,
}

/// Called (with no arguments) when requests are waiting; JS then takes them all with
/// `BindingServer.takeRequests`. One wake-up serves a whole batch, so a busy server makes one
/// cross-thread call per batch instead of one per request.
type RequestCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

/// One certificate of an HTTPS server and the SNI names it answers for (empty: the default).
#[napi(object)]
pub struct BindingSniCertificate {
    pub server_names: Vec<String>,
    pub cert: String,
    pub key: String,
}

/// TLS settings of a server, validated by the TS layer.
#[napi(object)]
pub struct BindingServerTls {
    /// The first one is the default for clients without SNI or with an unknown name.
    pub certificates: Vec<BindingSniCertificate>,
    /// CA certificates (PEM) that client certificates must chain to; empty: no client auth.
    pub client_ca: Vec<String>,
    pub require_client_cert: bool,
    pub min_version: Option<String>,
}

fn tls_config(tls: &BindingServerTls, protocols: Protocols) -> Result<Arc<rustls::ServerConfig>> {
    let alpn: Vec<Vec<u8>> = match protocols {
        Protocols::Http1 => vec![b"http/1.1".to_vec()],
        Protocols::Http2 => vec![b"h2".to_vec()],
        Protocols::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    let min_version = match &tls.min_version {
        Some(v) => TlsVersion::parse(v).map_err(to_js_error)?,
        None => TlsVersion::default(),
    };
    server_config_sni(&ServerTlsOptions {
        certificates: tls
            .certificates
            .iter()
            .map(|c| SniCertificate {
                server_names: c.server_names.clone(),
                cert: c.cert.clone(),
                key: c.key.clone(),
            })
            .collect(),
        alpn,
        client_ca: tls.client_ca.clone(),
        require_client_cert: tls.require_client_cert,
        min_version,
    })
    .map_err(to_js_error)
}

/// Requests waiting for the JS thread.
struct Inbox {
    queue: std::sync::Mutex<Vec<BindingRequest>>,
    scheduled: std::sync::atomic::AtomicBool,
    wake: RequestCallback,
}

impl Inbox {
    fn push(&self, req: BindingRequest) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req);
        if !self
            .scheduled
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            self.wake.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn take(&self) -> Vec<BindingRequest> {
        // Clear the flag first: a request pushed after the swap below schedules a new wake-up.
        self.scheduled
            .store(false, std::sync::atomic::Ordering::Release);
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How the request body is held: none, whole (`takeBody`), or streaming (`readChunk`).
const BODY_EMPTY: u32 = 0;
const BODY_FULL: u32 = 1;
const BODY_STREAM: u32 = 2;

/// One HTTP request handed to JS; answered once with `respond`, `respondStream` or
/// `respondUpgrade`.
#[napi]
pub struct BindingRequest {
    request: Request,
    full: Option<Bytes>,
    stream: Arc<Mutex<Option<hypersock_core::server::BodyStream>>>,
    body_kind: u32,
    responder: Option<Responder>,
}

fn ms(v: u32) -> Option<Duration> {
    (v > 0).then(|| Duration::from_millis(u64::from(v)))
}

fn body_bytes(body: Option<Either<String, &[u8]>>) -> Bytes {
    match body {
        None => Bytes::new(),
        Some(Either::A(text)) => Bytes::from(text),
        Some(Either::B(buf)) => Bytes::copy_from_slice(buf),
    }
}

#[napi]
impl BindingRequest {
    /// The request method.
    #[napi(getter)]
    pub fn method(&self) -> &str {
        self.request.method.as_str()
    }

    /// The request target (path and query).
    #[napi(getter)]
    pub fn target(&self) -> String {
        self.request.target.clone()
    }

    /// Header fields as `[name, value, ...]`, in order.
    #[napi(getter)]
    pub fn headers(&self) -> Vec<String> {
        flat_headers(
            self.request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        )
    }

    /// The HTTP version: `1.0`, `1.1` or `2`.
    #[napi(getter)]
    pub fn http_version(&self) -> &'static str {
        let v = self.request.version;
        if v == http::Version::HTTP_2 {
            "2"
        } else if v == http::Version::HTTP_10 {
            "1.0"
        } else {
            "1.1"
        }
    }

    /// The client's IP address, empty on a unix socket.
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.request
            .remote_addr
            .map(|a| a.ip().to_string())
            .unwrap_or_default()
    }

    /// The client's port, 0 on a unix socket.
    #[napi(getter)]
    pub fn remote_port(&self) -> u32 {
        self.request
            .remote_addr
            .map(|a| u32::from(a.port()))
            .unwrap_or(0)
    }

    /// 0: no body, 1: whole body (`takeBody`), 2: streamed body (`readChunk`/`readAll`).
    #[napi(getter)]
    pub fn body_kind(&self) -> u32 {
        self.body_kind
    }

    /// What TLS negotiated, as JSON (`protocol`, `cipher`, `alpnProtocol`, `chain` of the
    /// client's certificates, `serverName`); `null` on a plain connection.
    #[napi(getter)]
    pub fn tls_json(&self) -> Option<String> {
        self.request.tls.as_ref().map(|t| {
            let sni = serde_json::to_string(&t.server_name).unwrap_or_else(|_| "null".into());
            let info = t.info.to_json();
            // `info` is a JSON object: append the SNI name as one more field.
            match info.strip_suffix('}') {
                Some(head) if head.len() > 1 => format!("{head},\"serverName\":{sni}}}"),
                _ => format!("{{\"serverName\":{sni}}}"),
            }
        })
    }

    /// True when the client asked for a protocol upgrade that `respondUpgrade` can accept.
    #[napi(getter)]
    pub fn can_upgrade(&self) -> bool {
        self.request.upgrade.is_some()
    }

    /// The whole body when it arrived whole; `null` otherwise. Can be taken once.
    #[napi]
    pub fn take_body(&mut self) -> Option<Buffer> {
        self.full
            .take()
            .filter(|b| !b.is_empty())
            .map(|b| Buffer::from(Vec::from(b)))
    }

    /// The next chunk of a streamed body; `null` at the end.
    #[napi]
    pub async fn read_chunk(&self) -> Result<Option<Buffer>> {
        let mut guard = self.stream.lock().await;
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        match stream.next_chunk().await {
            Ok(Some(chunk)) => Ok(Some(Buffer::from(Vec::from(chunk)))),
            Ok(None) => {
                guard.take();
                Ok(None)
            }
            Err(e) => {
                guard.take();
                Err(to_js_error(e))
            }
        }
    }

    /// The rest of a streamed body as one buffer.
    #[napi]
    pub async fn read_all(&self) -> Result<Buffer> {
        let mut guard = self.stream.lock().await;
        let Some(mut stream) = guard.take() else {
            return Ok(Buffer::from(Vec::new()));
        };
        let bytes = stream.collect().await.map_err(to_js_error)?;
        Ok(Buffer::from(Vec::from(bytes)))
    }

    /// Sends a whole response. Returns false if it was already sent or the client is gone.
    #[napi]
    pub fn respond(
        &mut self,
        status: u32,
        headers: Vec<String>,
        body: Option<Either<String, &[u8]>>,
    ) -> Result<bool> {
        let headers = pair_headers(headers)?;
        let Some(responder) = self.responder.take() else {
            return Ok(false);
        };
        let status = status.min(u32::from(u16::MAX)) as u16;
        Ok(responder.send(Response::new(status, headers, body_bytes(body))))
    }

    /// Sends the response head now and returns a sink for the body chunks.
    #[napi]
    pub fn respond_stream(&mut self, status: u32, headers: Vec<String>) -> Result<BindingBodySink> {
        let headers = pair_headers(headers)?;
        let Some(responder) = self.responder.take() else {
            return Err(Error::from_reason(
                "ERR_INVALID_STATE: response already sent",
            ));
        };
        let (body, sender) = ResBody::channel(16);
        let status = status.min(u32::from(u16::MAX)) as u16;
        let delivered = responder.send(Response {
            status,
            headers,
            body,
        });
        Ok(BindingBodySink {
            sender: delivered.then_some(sender),
        })
    }

    /// Answers 101 with `headers` and returns the raw connection.
    #[napi]
    pub fn respond_upgrade(&mut self, headers: Vec<String>) -> Result<BindingRawSocket> {
        let headers = pair_headers(headers)?;
        let Some(on_upgrade) = self.request.upgrade.take() else {
            return Err(to_js_error(hypersock_core::Error::InvalidArgument(
                "the request did not ask for an upgrade".into(),
            )));
        };
        let Some(responder) = self.responder.take() else {
            return Err(Error::from_reason(
                "ERR_INVALID_STATE: response already sent",
            ));
        };
        responder.send(Response {
            status: 101,
            headers,
            body: ResBody::empty(),
        });
        Ok(BindingRawSocket {
            inner: Arc::new(RawConnection::new(on_upgrade)),
        })
    }
}

/// The body of a streamed response.
#[napi]
pub struct BindingBodySink {
    sender: Option<BodySender>,
}

#[napi]
impl BindingBodySink {
    /// Queues a chunk, resolving once there is room. Resolves false when the client is gone.
    #[napi]
    pub async fn write(&self, chunk: Uint8Array) -> Result<bool> {
        match &self.sender {
            Some(sender) => Ok(sender.send(Bytes::copy_from_slice(&chunk)).await),
            None => Ok(false),
        }
    }

    /// Ends the body.
    #[napi]
    pub fn end(&mut self) {
        self.sender = None;
    }

    /// Cuts the body: the client sees an incomplete response.
    #[napi]
    pub fn abort(&mut self) {
        if let Some(sender) = self.sender.take() {
            sender.abort();
        }
    }

    /// True once the client is gone.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.sender.as_ref().is_none_or(BodySender::is_closed)
    }
}

/// A connection taken over after a 101 response.
#[napi]
pub struct BindingRawSocket {
    inner: Arc<RawConnection>,
}

#[napi]
impl BindingRawSocket {
    /// The next bytes from the peer; `null` once it closed its side.
    #[napi]
    pub async fn read(&self) -> Result<Option<Buffer>> {
        let inner = self.inner.clone();
        match inner.read(64 * 1024).await.map_err(to_js_error)? {
            Some(bytes) => Ok(Some(Buffer::from(Vec::from(bytes)))),
            None => Ok(None),
        }
    }

    /// Writes bytes to the peer.
    #[napi]
    pub async fn write(&self, data: Uint8Array) -> Result<()> {
        let inner = self.inner.clone();
        inner.write(&data).await.map_err(to_js_error)
    }

    /// Closes the write side.
    #[napi]
    pub async fn end(&self) -> Result<()> {
        let inner = self.inner.clone();
        inner.shutdown().await.map_err(to_js_error)
    }

    /// Closes the connection.
    #[napi]
    pub async fn destroy(&self) {
        self.inner.destroy().await;
    }
}

struct JsHttp {
    inbox: Arc<Inbox>,
}

impl HttpHandler for JsHttp {
    fn handle(&self, mut request: Request, responder: Responder) {
        let body = std::mem::replace(&mut request.body, RequestBody::empty());
        let (full, stream, body_kind) = match body {
            RequestBody::Full(b) if b.is_empty() => (None, None, BODY_EMPTY),
            RequestBody::Full(b) => (Some(b), None, BODY_FULL),
            RequestBody::Stream(s) => (None, Some(s), BODY_STREAM),
        };
        let req = BindingRequest {
            request,
            full,
            stream: Arc::new(Mutex::new(stream)),
            body_kind,
            responder: Some(responder),
        };
        self.inbox.push(req);
    }
}

/// Counters of a server.
#[napi(object)]
pub struct BindingStats {
    pub connections_open: f64,
    pub connections_total: f64,
    pub requests_total: f64,
    pub requests_in_flight: f64,
    pub bytes_in: f64,
    pub bytes_out: f64,
    pub websockets_open: f64,
    pub websockets_total: f64,
    pub responses: Vec<f64>,
    pub rejected_overload: f64,
    pub timeouts: f64,
    pub tls_failures: f64,
}

/// A running server.
#[napi]
pub struct BindingServer {
    inner: Arc<Server>,
    inbox: Arc<Inbox>,
}

/// Binds and starts a server. `onRequest` is called when requests wait in `takeRequests`; `onWebSocket`, when given,
/// enables WebSocket upgrades and gets their events.
#[napi]
pub async fn start_server(
    options: BindingServerOptions,
    on_request: RequestCallback,
    on_web_socket: Option<WsEventCallback>,
) -> Result<BindingServer> {
    let listen = match options.unix {
        #[cfg(unix)]
        Some(path) => ListenTarget::Unix(path.into()),
        #[cfg(not(unix))]
        Some(_) => {
            return Err(Error::from_reason(
                "ERR_INVALID_ARG_VALUE: unix sockets need a unix OS",
            ))
        }
        None => {
            let host = options
                .hostname
                .trim_start_matches('[')
                .trim_end_matches(']');
            let addr = if host.contains(':') {
                format!("[{host}]:{}", options.port)
            } else {
                format!("{host}:{}", options.port)
            };
            ListenTarget::Tcp {
                addr,
                reuse_port: options.reuse_port,
            }
        }
    };
    let mut opts = ServerOptions {
        listen,
        protocols: match options.protocols {
            0 => Protocols::Http1,
            2 => Protocols::Http2,
            _ => Protocols::Both,
        },
        max_body_size: options.max_body_size as usize,
        header_read_timeout: Duration::from_millis(u64::from(options.header_read_timeout_ms)),
        idle_timeout: ms(options.idle_timeout_ms),
        request_timeout: ms(options.request_timeout_ms),
        max_header_size: options.max_header_size as usize,
        max_headers: options.max_headers as usize,
        max_connections: (options.max_connections > 0).then_some(options.max_connections as usize),
        max_concurrent_requests: (options.max_concurrent_requests > 0)
            .then_some(options.max_concurrent_requests as usize),
        max_queued_requests: options.max_queued_requests as usize,
        server_name: options.server_name,
        ..ServerOptions::default()
    };
    let inbox = Arc::new(Inbox {
        queue: std::sync::Mutex::new(Vec::new()),
        scheduled: std::sync::atomic::AtomicBool::new(false),
        wake: on_request,
    });
    if let Some(tls) = &options.tls {
        opts.tls = Some(tls_config(tls, opts.protocols)?);
    }
    let http: Arc<dyn HttpHandler> = Arc::new(JsHttp {
        inbox: inbox.clone(),
    });
    let ws = match (on_web_socket, &options.websocket) {
        (Some(callback), Some(o)) => {
            let (ws_opts, handler) = server_websocket(o, callback);
            opts.ws = ws_opts;
            Some(handler)
        }
        _ => None,
    };
    let server = Server::bind(opts, http, ws).await.map_err(to_js_error)?;
    Ok(BindingServer {
        inner: Arc::new(server),
        inbox,
    })
}

#[napi]
impl BindingServer {
    /// Swaps in new certificates for new connections (open ones keep theirs).
    #[napi]
    pub fn reload_tls(&self, tls: BindingServerTls, protocols: u32) -> Result<()> {
        let protocols = match protocols {
            0 => Protocols::Http1,
            2 => Protocols::Http2,
            _ => Protocols::Both,
        };
        let config = tls_config(&tls, protocols)?;
        self.inner.reload_tls(config).map_err(to_js_error)
    }

    /// Takes every request waiting for JS, in arrival order.
    #[napi]
    pub fn take_requests(&self) -> Vec<BindingRequest> {
        self.inbox.take()
    }

    /// The port the server listens on (0 on a unix socket).
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        match self.inner.local_addr() {
            BoundAddr::Tcp(a) => u32::from(a.port()),
            BoundAddr::Unix(_) => 0,
        }
    }

    /// The IP address, or the unix socket path, the server listens on.
    #[napi(getter)]
    pub fn address(&self) -> String {
        match self.inner.local_addr() {
            BoundAddr::Tcp(a) => a.ip().to_string(),
            BoundAddr::Unix(p) => p.display().to_string(),
        }
    }

    /// True when listening on a unix socket.
    #[napi(getter)]
    pub fn is_unix(&self) -> bool {
        matches!(self.inner.local_addr(), BoundAddr::Unix(_))
    }

    /// Open WebSocket connections.
    #[napi(getter)]
    pub fn websocket_count(&self) -> u32 {
        self.inner.websocket_count() as u32
    }

    /// The server's counters.
    #[napi]
    pub fn stats(&self) -> BindingStats {
        let s = self.inner.stats();
        BindingStats {
            connections_open: s.connections_open as f64,
            connections_total: s.connections_total as f64,
            requests_total: s.requests_total as f64,
            requests_in_flight: s.requests_in_flight as f64,
            bytes_in: s.bytes_in as f64,
            bytes_out: s.bytes_out as f64,
            websockets_open: s.websockets_open as f64,
            websockets_total: s.websockets_total as f64,
            responses: s.responses.iter().map(|n| *n as f64).collect(),
            rejected_overload: s.rejected_overload as f64,
            timeouts: s.timeouts as f64,
            tls_failures: s.tls_failures as f64,
        }
    }

    /// The counters in the Prometheus text format, names prefixed with `prefix`.
    #[napi]
    pub fn metrics(&self, prefix: String) -> String {
        self.inner.stats().prometheus(&prefix)
    }

    /// Stops the server; waits up to `deadlineMs` for in-flight work, then forces the rest.
    #[napi]
    pub async fn stop(&self, deadline_ms: u32) -> Result<()> {
        let server = self.inner.clone();
        server
            .stop(Duration::from_millis(u64::from(deadline_ms)))
            .await;
        Ok(())
    }
}
