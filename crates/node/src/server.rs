use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use hypersock_core::server::{
    Answered, BodySender, BoundAddr, HttpHandler, ListenTarget, OnUpgrade, Protocols,
    RawConnection, Request, RequestBody, ResBody, Responder, Response, Server, ServerOptions,
};
use hypersock_core::tls::{server_config_sni, ServerTlsOptions, SniCertificate, TlsVersion};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::sync::Mutex;

use crate::error::{Fail, JsResult, OrThrow, Outcome};
use crate::hub::{hub_from, BindingHub, BindingHubOptions};
use crate::wake::{JsWake, WakeCallback};
use crate::websocket::{server_websocket, BindingWebSocket, BindingWsOptions};
use crate::wire::headers::flat_to_header_map;
use crate::wire::request::{encode_request, BODY_EMPTY, BODY_FULL, BODY_STREAM};
use crate::wire::ws_events::WsEventQueue;

/// Options of `startServer`, validated by the TS layer. What JS leaves out takes the engine's
/// default (`ServerOptions::default()`). Times in ms; 0 = none.
#[napi(object)]
pub struct BindingServerOptions {
    pub hostname: Option<String>,
    pub port: u32,
    pub unix: Option<String>,
    pub reuse_port: Option<bool>,
    /// 0: HTTP/1.1 only, 1: HTTP/1.1 and h2c, 2: HTTP/2 only.
    pub protocols: u32,
    pub max_body_size: Option<f64>,
    pub header_read_timeout_ms: Option<u32>,
    pub idle_timeout_ms: Option<u32>,
    pub request_timeout_ms: Option<u32>,
    pub send_timeout_ms: Option<u32>,
    pub max_header_size: Option<u32>,
    pub max_headers: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_concurrent_requests: Option<u32>,
    pub max_queued_requests: Option<u32>,
    pub server_name: Option<String>,
    /// Serve HTTPS with these certificates.
    pub tls: Option<BindingServerTls>,
    /// WebSocket options; required when `onWebSocket` is given.
    pub websocket: Option<BindingWsOptions>,
    /// Settings of the server's hub (defaults when absent).
    pub hub: Option<BindingHubOptions>,
    /// The route table; absent: every request goes to `onRequest`.
    pub routes: Option<Vec<crate::routes::BindingRoute>>,
}

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

fn tls_config(tls: &BindingServerTls, protocols: Protocols) -> JsResult<Arc<rustls::ServerConfig>> {
    let alpn: Vec<Vec<u8>> = match protocols {
        Protocols::Http1 => vec![b"http/1.1".to_vec()],
        Protocols::Http2 => vec![b"h2".to_vec()],
        Protocols::Both => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
    };
    let min_version = match &tls.min_version {
        Some(v) => TlsVersion::parse(v)?,
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
    .map_err(Fail::from)
}

/// Requests on their way to JS and waiting for an answer from it.
///
/// The I/O threads encode each request into one shared batch buffer (see [`encode_request`]) and
/// park what cannot be encoded (the responder, a streamed body, the upgrade) in a slab under a
/// request id. One wake-up of the JS thread takes the whole batch as a single `Buffer`, so a busy
/// server makes one cross-thread call and allocates one JS object per batch, not several per
/// request; JS answers with the id.
pub struct Inbox {
    state: std::sync::Mutex<InboxState>,
    wake: Arc<JsWake>,
}

#[derive(Default)]
struct InboxState {
    batch: Vec<u8>,
    slots: slab::Slab<Slot>,
    /// Bumped per request; the top byte of an id, so that a stale id misses a reused slot.
    serial: u8,
    /// Slab size at which slots of requests whose client left are swept.
    sweep_at: usize,
}

/// What a request id stands for until it is answered.
struct Slot {
    id: u32,
    responder: Responder,
    stream: Option<hypersock_core::server::BodyStream>,
    upgrade: Option<OnUpgrade>,
    /// Woken when the slot goes (answered, swept or the server stopped): `clientGone` calls.
    watchers: Watchers,
}

/// The `clientGone` calls waiting for a slot to go, each with the flag it reads then: set when
/// the slot went because its client left or the server stopped, clear when it was answered.
#[derive(Default)]
struct Watchers(Vec<(std::task::Waker, Arc<std::sync::atomic::AtomicBool>)>);

impl Watchers {
    /// Tells every waiting call that the client is gone.
    fn gone(&mut self) {
        for (waker, flag) in self.0.drain(..) {
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
            waker.wake();
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for (waker, _) in self.0.drain(..) {
            waker.wake();
        }
    }
}

const SLOT_BITS: u32 = 24;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
const MIN_SWEEP: usize = 1024;

impl Inbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, mut request: Request, responder: Responder) {
        let body = std::mem::replace(&mut request.body, RequestBody::empty());
        let (full, stream, kind) = match body {
            RequestBody::Full(b) if b.is_empty() => (None, None, BODY_EMPTY),
            RequestBody::Full(b) => (Some(b), None, BODY_FULL),
            RequestBody::Stream(s) => (None, Some(s), BODY_STREAM),
        };
        let upgrade = request.upgrade.take();
        {
            let mut st = self.lock();
            if st.slots.len() >= st.sweep_at.max(MIN_SWEEP) {
                // Requests whose handler never answered and whose client has left.
                st.slots.retain(|_, slot| {
                    let open = !slot.responder.is_closed();
                    if !open {
                        slot.watchers.gone();
                    }
                    open
                });
                st.sweep_at = st.slots.len() * 2;
            }
            let entry = st.slots.vacant_entry();
            let index = entry.key() as u32;
            if index > SLOT_MASK {
                return; // the responder is dropped: 500
            }
            st.serial = st.serial.wrapping_add(1);
            let id = index | (u32::from(st.serial) << SLOT_BITS);
            let can_upgrade = upgrade.is_some();
            st.slots.insert(Slot {
                id,
                responder,
                stream,
                upgrade,
                watchers: Watchers::default(),
            });
            encode_request(
                &mut st.batch,
                id,
                kind,
                can_upgrade,
                &request,
                full.as_deref(),
            );
        }
        self.wake.schedule();
    }

    fn take(&self) -> Vec<u8> {
        // Clear the flag first: a request pushed after the swap below schedules a new wake-up.
        self.wake.taking();
        let mut st = self.lock();
        // The next batch starts as large as this one, so a busy server does not grow it anew
        // (copying as it doubles) every time.
        let capacity = st.batch.len();
        std::mem::replace(&mut st.batch, Vec::with_capacity(capacity))
    }

    /// Removes the slot of `id`; `None` when it was answered already (or its client left and
    /// it was swept).
    fn remove(&self, id: u32) -> Option<Slot> {
        let mut st = self.lock();
        let index = (id & SLOT_MASK) as usize;
        match st.slots.get(index) {
            Some(slot) if slot.id == id => Some(st.slots.remove(index)),
            _ => None,
        }
    }

    fn with_slot<T>(&self, id: u32, f: impl FnOnce(&mut Slot) -> T) -> Option<T> {
        let mut st = self.lock();
        match st.slots.get_mut((id & SLOT_MASK) as usize) {
            Some(slot) if slot.id == id => Some(f(slot)),
            _ => None,
        }
    }
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

/// Sends a whole response to request `id` of the server of `inbox` (`replyHandle`), with the
/// flat header list `headers`. Returns false if it was answered already or the
/// client is gone.
#[napi]
pub fn respond(
    env: &Env,
    #[napi(ts_arg_type = "ExternalObject<'ServerInbox'>")] inbox: &External<Arc<Inbox>>,
    id: u32,
    status: u32,
    headers: Vec<String>,
    body: Option<Either<String, &[u8]>>,
    reason: Option<String>,
) -> Result<bool> {
    let headers = flat_to_header_map(headers).or_throw(env)?;
    let Some(slot) = inbox.remove(id) else {
        return Ok(false);
    };
    let status = status.min(u32::from(u16::MAX)) as u16;
    let mut response = Response::new(status, headers, body_bytes(body));
    response.reason = reason.map(String::into_boxed_str);
    Ok(slot.responder.send(response))
}

/// A streamed request body (one that did not arrive whole), taken once from its request.
#[napi]
pub struct BindingBodyStream {
    stream: Arc<Mutex<Option<hypersock_core::server::BodyStream>>>,
}

#[napi]
impl BindingBodyStream {
    /// The next chunk; `null` at the end.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub async fn read_chunk(&self) -> Outcome<Option<Buffer>> {
        let mut guard = self.stream.lock().await;
        let Some(stream) = guard.as_mut() else {
            return Outcome(Ok(None));
        };
        let chunk = stream.next_chunk().await;
        if !matches!(chunk, Ok(Some(_))) {
            guard.take();
        }
        chunk.map(|c| c.map(|c| Buffer::from(Vec::from(c)))).into()
    }

    /// The rest of the body as one buffer.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub async fn read_all(&self) -> Outcome<Buffer> {
        let mut guard = self.stream.lock().await;
        let Some(mut stream) = guard.take() else {
            return Outcome(Ok(Buffer::from(Vec::new())));
        };
        stream
            .collect()
            .await
            .map(|b| Buffer::from(Vec::from(b)))
            .into()
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
    pub async fn write(&self, chunk: Uint8Array) -> bool {
        match &self.sender {
            Some(sender) => sender.send(Bytes::copy_from_slice(&chunk)).await,
            None => false,
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

    /// Resolves once the connection dropped the body: the client went away, or the whole
    /// body was sent after `end()`.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn wait_closed<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let closed = self.sender.as_ref().map(BodySender::closed);
        env.spawn_future(async move {
            if let Some(closed) = closed {
                closed.await;
            }
            Ok(())
        })
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
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub async fn read(&self) -> Outcome<Option<Buffer>> {
        let inner = self.inner.clone();
        let read = inner.read(64 * 1024).await;
        read.map(|b| b.map(|b| Buffer::from(Vec::from(b)))).into()
    }

    /// Writes bytes to the peer.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn write(&self, data: Uint8Array) -> Outcome<()> {
        let inner = self.inner.clone();
        inner.write(&data).await.into()
    }

    /// Closes the write side.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn end(&self) -> Outcome<()> {
        let inner = self.inner.clone();
        inner.shutdown().await.into()
    }

    /// Closes the connection.
    #[napi]
    pub async fn destroy(&self) {
        self.inner.destroy().await;
    }
}

/// `(method, target, status, httpVersion, remoteAddress, durationMs)` of a request the route
/// table answered (see `startServer`'s `onAnswered`).
type AnsweredArgs = FnArgs<(String, String, u32, String, String, f64)>;
type AnsweredCallback = ThreadsafeFunction<AnsweredArgs, (), AnsweredArgs, Status, false, true>;

struct JsHttp {
    inbox: Arc<Inbox>,
    answered: Option<AnsweredCallback>,
}

impl HttpHandler for JsHttp {
    fn handle(&self, request: Request, responder: Responder) {
        self.inbox.push(request, responder);
    }

    fn on_answered(&self, entry: Answered) {
        let Some(callback) = &self.answered else {
            return;
        };
        let version = match entry.version {
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_10 => "1.0",
            _ => "1.1",
        };
        let args: AnsweredArgs = (
            entry.method.to_string(),
            entry.target,
            u32::from(entry.status),
            version.to_string(),
            entry.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            entry.duration.as_secs_f64() * 1000.0,
        )
            .into();
        callback.call(args, ThreadsafeFunctionCallMode::NonBlocking);
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
    pub websockets_h2_total: f64,
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
    ws_events: Option<Arc<WsEventQueue<BindingWebSocket>>>,
}

/// Binds and starts a server. `onRequest` is called when requests wait in `takeRequests`;
/// `onWebSocket`, when given, enables WebSocket upgrades and is called when events wait in
/// `takeWsEvents`; `onAnswered`, when given, is called for each request the route table answers
/// by itself (an access log).
#[napi(ts_return_type = "Promise<BindingServer>")]
pub async fn start_server(
    options: BindingServerOptions,
    on_request: WakeCallback,
    on_web_socket: Option<WakeCallback>,
    #[napi(
        ts_arg_type = "(method: string, target: string, status: number, httpVersion: string, remoteAddress: string, durationMs: number) => void"
    )]
    on_answered: Option<AnsweredCallback>,
) -> Outcome<BindingServer> {
    start(options, on_request, on_web_socket, on_answered)
        .await
        .into()
}

async fn start(
    options: BindingServerOptions,
    on_request: WakeCallback,
    on_web_socket: Option<WakeCallback>,
    on_answered: Option<AnsweredCallback>,
) -> JsResult<BindingServer> {
    let d = ServerOptions::default();
    let listen = match options.unix {
        #[cfg(unix)]
        Some(path) => ListenTarget::Unix(path.into()),
        #[cfg(not(unix))]
        Some(_) => return Err(Fail::invalid_arg("unix sockets need a unix OS")),
        None => {
            let (default_addr, default_reuse) = match &d.listen {
                ListenTarget::Tcp { addr, reuse_port } => (addr.as_str(), *reuse_port),
                #[cfg(unix)]
                ListenTarget::Unix(_) => ("127.0.0.1:0", false),
            };
            let default_host = default_addr
                .rsplit_once(':')
                .map_or(default_addr, |(h, _)| h);
            let hostname = options.hostname.as_deref().unwrap_or(default_host);
            let host = hostname.trim_start_matches('[').trim_end_matches(']');
            let addr = if host.contains(':') {
                format!("[{host}]:{}", options.port)
            } else {
                format!("{host}:{}", options.port)
            };
            ListenTarget::Tcp {
                addr,
                reuse_port: options.reuse_port.unwrap_or(default_reuse),
            }
        }
    };
    let or = |v: Option<u32>, d: usize| v.map_or(d, |n| n as usize);
    let limit = |v: Option<u32>, d: Option<usize>| v.map_or(d, |n| (n > 0).then_some(n as usize));
    let mut opts = ServerOptions {
        listen,
        protocols: match options.protocols {
            0 => Protocols::Http1,
            2 => Protocols::Http2,
            _ => Protocols::Both,
        },
        max_body_size: options
            .max_body_size
            .map_or(d.max_body_size, |n| n as usize),
        header_read_timeout: options
            .header_read_timeout_ms
            .map_or(d.header_read_timeout, |v| {
                Duration::from_millis(u64::from(v))
            }),
        idle_timeout: options.idle_timeout_ms.map_or(d.idle_timeout, ms),
        request_timeout: options.request_timeout_ms.map_or(d.request_timeout, ms),
        send_timeout: options.send_timeout_ms.map_or(d.send_timeout, ms),
        max_header_size: or(options.max_header_size, d.max_header_size),
        max_headers: or(options.max_headers, d.max_headers),
        max_concurrent_streams: options
            .max_concurrent_streams
            .unwrap_or(d.max_concurrent_streams),
        max_connections: limit(options.max_connections, d.max_connections),
        max_concurrent_requests: limit(options.max_concurrent_requests, d.max_concurrent_requests),
        max_queued_requests: or(options.max_queued_requests, d.max_queued_requests),
        server_name: options.server_name,
        hub: hub_from(options.hub.as_ref()),
        log_answered: on_answered.is_some(),
        ..ServerOptions::default()
    };
    let inbox = Arc::new(Inbox {
        state: std::sync::Mutex::new(InboxState::default()),
        wake: JsWake::new(on_request),
    });
    if let Some(tls) = &options.tls {
        opts.tls = Some(tls_config(tls, opts.protocols)?);
    }
    if let Some(routes) = &options.routes {
        opts.routes = Arc::new(crate::routes::routes_from(routes)?);
    }
    let http: Arc<dyn HttpHandler> = Arc::new(JsHttp {
        inbox: inbox.clone(),
        answered: on_answered,
    });
    let (ws, ws_events) = match (on_web_socket, &options.websocket) {
        (Some(callback), Some(o)) => {
            let (ws_opts, handler, queue) = server_websocket(o, callback);
            opts.ws = ws_opts;
            (Some(handler), Some(queue))
        }
        _ => (None, None),
    };
    let server = Server::bind(opts, http, ws).await?;
    Ok(BindingServer {
        inner: Arc::new(server),
        inbox,
        ws_events,
    })
}

#[napi]
impl BindingServer {
    /// Swaps in new certificates for new connections (open ones keep theirs).
    #[napi]
    pub fn reload_tls(&self, env: &Env, tls: BindingServerTls, protocols: u32) -> Result<()> {
        let protocols = match protocols {
            0 => Protocols::Http1,
            2 => Protocols::Http2,
            _ => Protocols::Both,
        };
        let config = tls_config(&tls, protocols).or_throw(env)?;
        self.inner.reload_tls(config).or_throw(env)
    }

    /// Replaces the route table; requests already matched keep their route.
    #[napi]
    pub fn set_routes(&self, env: &Env, routes: Vec<crate::routes::BindingRoute>) -> Result<()> {
        let routes = crate::routes::routes_from(&routes).or_throw(env)?;
        self.inner.set_routes(routes);
        Ok(())
    }

    /// Takes every request waiting for JS, in arrival order, encoded as described at
    /// `encode_request`; `null` when none waits.
    #[napi]
    pub fn take_requests(&self) -> Option<Buffer> {
        let batch = self.inbox.take();
        (!batch.is_empty()).then(|| Buffer::from(batch))
    }

    /// The handle `respond` takes (one per server; the hot path skips napi-rs's bookkeeping of
    /// method calls on class instances).
    #[napi(ts_return_type = "ExternalObject<'ServerInbox'>")]
    pub fn reply_handle(&self) -> External<Arc<Inbox>> {
        External::new(self.inbox.clone())
    }

    /// Sends the response head of request `id` now and returns a sink for the body chunks.
    #[napi]
    pub fn respond_stream(
        &self,
        env: &Env,
        id: u32,
        status: u32,
        headers: Vec<String>,
        reason: Option<String>,
    ) -> Result<BindingBodySink> {
        let headers = flat_to_header_map(headers).or_throw(env)?;
        let Some(slot) = self.inbox.remove(id) else {
            return Err(Fail::invalid_state("response already sent").throw(env));
        };
        let (body, sender) = ResBody::channel(16);
        let status = status.min(u32::from(u16::MAX)) as u16;
        let delivered = slot.responder.send(Response {
            status,
            headers,
            body,
            reason: reason.map(String::into_boxed_str),
        });
        Ok(BindingBodySink {
            sender: delivered.then_some(sender),
        })
    }

    /// Answers request `id` with 101 and `headers` and returns the raw connection.
    #[napi]
    pub fn respond_upgrade(
        &self,
        env: &Env,
        id: u32,
        headers: Vec<String>,
    ) -> Result<BindingRawSocket> {
        let headers = flat_to_header_map(headers).or_throw(env)?;
        let upgrade = self.inbox.with_slot(id, |slot| slot.upgrade.take());
        let Some(on_upgrade) = upgrade.flatten() else {
            return Err(Fail::invalid_arg(
                "the request did not ask for an upgrade (or was answered already)",
            )
            .throw(env));
        };
        let Some(slot) = self.inbox.remove(id) else {
            return Err(Fail::invalid_state("response already sent").throw(env));
        };
        slot.responder.send(Response {
            status: 101,
            headers,
            body: ResBody::empty(),
            reason: None,
        });
        Ok(BindingRawSocket {
            inner: Arc::new(self.inner.raw_connection(on_upgrade)),
        })
    }

    /// Resolves true when the client of request `id` goes away before the request is answered,
    /// false once it is answered (or was already).
    #[napi]
    pub async fn client_gone(&self, id: u32) -> bool {
        let inbox = self.inbox.clone();
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
        std::future::poll_fn(|cx| {
            let mut st = inbox.lock();
            match st.slots.get_mut((id & SLOT_MASK) as usize) {
                Some(slot) if slot.id == id => {
                    if slot.responder.poll_closed(cx).is_ready() {
                        return std::task::Poll::Ready(true);
                    }
                    match slot
                        .watchers
                        .0
                        .iter_mut()
                        .find(|(_, f)| Arc::ptr_eq(f, &flag))
                    {
                        Some((waker, _)) => waker.clone_from(cx.waker()),
                        None => slot.watchers.0.push((cx.waker().clone(), flag.clone())),
                    }
                    std::task::Poll::Pending
                }
                _ => std::task::Poll::Ready(flag.load(std::sync::atomic::Ordering::Relaxed)),
            }
        })
        .await
    }

    /// The streamed body of request `id`; `null` once taken or answered.
    #[napi]
    pub fn take_body_stream(&self, id: u32) -> Option<BindingBodyStream> {
        let stream = self.inbox.with_slot(id, |slot| slot.stream.take())??;
        Some(BindingBodyStream {
            stream: Arc::new(Mutex::new(Some(stream))),
        })
    }

    /// Takes every waiting WebSocket event, in order: `[encoded events, ...objects]` (see
    /// `WsEventQueue::push`), or `null` when none waits.
    #[napi]
    pub fn take_ws_events<'env>(&self, env: &'env Env) -> Result<Option<Array<'env>>> {
        match &self.ws_events {
            Some(queue) => queue.take(env),
            None => Ok(None),
        }
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
            websockets_h2_total: s.websockets_h2_total as f64,
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

    /// The hub of the server's WebSocket connections.
    #[napi]
    pub fn hub(&self) -> BindingHub {
        BindingHub::new(self.inner.hub().clone())
    }

    /// Stops the server; waits up to `deadlineMs` for in-flight work, then forces the rest.
    #[napi]
    pub async fn stop(&self, deadline_ms: u32) {
        let server = self.inner.clone();
        server
            .stop(Duration::from_millis(u64::from(deadline_ms)))
            .await;
        // Requests still unanswered lost their connections with the stop.
        let mut st = self.inbox.lock();
        for (_, slot) in st.slots.iter_mut() {
            slot.watchers.gone();
        }
        st.slots.clear();
    }
}
