use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hypersock_core::client::{dial_websocket, Client, DialOptions, DialedWebSocket, WsHttp2};
use hypersock_core::server::{header_map, Request, Response, Upgrade, UpgradeAccept, WsHandler};
use hypersock_core::tls::ClientTlsOptions;
use hypersock_core::ws::{
    self, Compress, DeflateOptions, FailGate, PartOptions, PreparedMessage, Role, SendStatus,
    WsEvents, WsHandle, WsLimits, WsMessage, WsOptions,
};
use hypersock_core::Error as CoreError;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::client::proxy_options;
use crate::error::{Fail, JsResult, OrThrow, Outcome};
use crate::lent;
use crate::wake::{JsWake, WakeCallback};
use crate::wire::headers::{pair_headers, store_headers, stored_to_flat};
use crate::wire::ws_events::{
    EventData, EventObject, WsEventQueue, WS_CLOSE, WS_DRAIN, WS_ERROR, WS_MESSAGE, WS_OPEN,
    WS_PING, WS_PONG, WS_UPGRADE, WS_WRITTEN,
};

/// `(kind, id, socket on open/upgrade, data or close reason or error text, close code)`.
pub(crate) type WsEventArgs = FnArgs<(
    u32,
    i64,
    Option<BindingWebSocket>,
    Option<Either3<String, Buffer, Fail>>,
    u32,
)>;
pub(crate) type WsEventCallback =
    ThreadsafeFunction<WsEventArgs, (), WsEventArgs, Status, false, true>;

/// One WebSocket connection, server side or client side. Every open connection keeps this
/// struct, so what most server connections never have is in [`Rare`].
#[napi]
pub struct BindingWebSocket {
    handle: WsHandle,
    url: Box<str>,
    /// Handshake headers as `name NUL value NUL ...`: one allocation per connection (names and
    /// values never hold NUL).
    headers: Box<[u8]>,
    /// The peer's address, formatted when asked.
    remote: Option<std::net::SocketAddr>,
    /// The connection is an HTTP/2 stream (RFC 8441).
    http2: bool,
    rare: Option<Box<Rare>>,
}

/// See [`BindingWebSocket::rare`]: a server connection has it during its upgrade hook, or when
/// it chose a subprotocol; a client connection always.
#[derive(Default)]
struct Rare {
    protocol: String,
    extensions: String,
    offered_protocols: Vec<String>,
    // Boxed: both are large, and a client connection keeps its `Rare`.
    upgrade: Option<Box<Upgrade>>,
    pending: Option<Box<(DialedWebSocket, ws::WsDriver, WsLimits)>>,
    /// Client side: whether the connection reads, as JS and the undelivered messages decide.
    gate: Option<Arc<ReadGate>>,
}

/// Messages handed to the JS thread but not yet taken by it, in bytes, past which a client
/// socket stops reading from the peer, and below which it reads again. The thread-safe
/// function's queue would otherwise grow with whatever the peer sends while JS is busy.
const UNDELIVERED_HIGH: usize = 4 << 20;
const UNDELIVERED_LOW: usize = 1 << 20;

/// Whether a client socket reads: not while JS holds it (an async iterator is behind), nor while
/// more than [`UNDELIVERED_HIGH`] bytes of messages wait for the JS thread.
pub(crate) struct ReadGate {
    handle: WsHandle,
    /// (JS holds, too much undelivered, reading as last told to the connection)
    state: std::sync::Mutex<(bool, bool, bool)>,
    undelivered: std::sync::atomic::AtomicUsize,
}

impl ReadGate {
    fn new(handle: WsHandle) -> ReadGate {
        ReadGate {
            handle,
            state: std::sync::Mutex::new((false, false, true)),
            undelivered: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Tells the connection, under the lock so that changes arrive in order.
    fn update(&self, change: impl FnOnce(&mut (bool, bool, bool))) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut s);
        let reading = !(s.0 || s.1);
        if reading != s.2 {
            s.2 = reading;
            self.handle.set_reading(reading);
        }
    }

    fn hold(&self, on: bool) {
        self.update(|s| s.0 = on);
    }

    /// A message of `n` bytes is on its way to JS.
    fn queued(&self, n: usize) {
        use std::sync::atomic::Ordering;
        if self.undelivered.fetch_add(n, Ordering::AcqRel) + n > UNDELIVERED_HIGH {
            self.update(|s| s.1 = true);
        }
    }

    /// JS took a message of `n` bytes.
    fn delivered(&self, n: usize) {
        use std::sync::atomic::Ordering;
        let left = self.undelivered.fetch_sub(n, Ordering::AcqRel) - n;
        if left <= UNDELIVERED_LOW {
            self.update(|s| s.1 = false);
        }
    }
}

impl BindingWebSocket {
    pub(crate) fn server_side(handle: WsHandle, request: &Request) -> Self {
        BindingWebSocket {
            handle,
            url: request.target.as_str().into(),
            headers: store_headers(
                request
                    .headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_bytes())),
            ),
            remote: request.remote_addr,
            http2: request.version == http::Version::HTTP_2,
            rare: None,
        }
    }

    fn rare(&self) -> Option<&Rare> {
        self.rare.as_deref()
    }

    fn rare_mut(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }
}

fn status_code(env: &Env, status: std::result::Result<SendStatus, CoreError>) -> Result<i32> {
    match status.or_throw(env)? {
        SendStatus::Queued => Ok(1),
        SendStatus::Backpressure => Ok(-1),
        SendStatus::Dropped => Ok(0),
    }
}

/// Queues a text message on the connection of `handle` (see `BindingWebSocket.sendHandle`);
/// same results as `BindingWebSocket.sendText`. A function rather than a method: the hot path
/// of an echo or chat server, it skips the bookkeeping napi-rs does for every method call on a
/// class instance.
#[napi]
pub fn ws_send_text(
    env: &Env,
    #[napi(ts_arg_type = "ExternalObject<'WsHandle'>")] handle: &External<WsHandle>,
    text: String,
) -> Result<i32> {
    status_code(env, handle.send_text(text))
}

/// Queues a binary message on the connection of `handle`; see `wsSendText`.
#[napi]
pub fn ws_send_binary(
    env: &Env,
    #[napi(ts_arg_type = "ExternalObject<'WsHandle'>")] handle: &External<WsHandle>,
    data: &[u8],
) -> Result<i32> {
    status_code(env, handle.send_binary(lent::to_bytes(data)))
}

/// Queues one part of a message sent in parts (see `WsHandle::send_part`): `text` says which
/// kind of message the first part starts; `flags` 1: `fin` ends the message, 2: a whole
/// message of its own (waits for an open one); `compress` is 0 (by threshold), 1 (always,
/// when negotiated) or 2 (never); `notify` a write marker token passed once the frame is
/// written (0: none). Same results as `wsSendText`.
#[napi]
pub fn ws_send_part(
    env: &Env,
    #[napi(ts_arg_type = "ExternalObject<'WsHandle'>")] handle: &External<WsHandle>,
    data: Either<String, &[u8]>,
    text: bool,
    flags: u32,
    compress: u32,
    notify: u32,
) -> Result<i32> {
    let compress = match compress {
        1 => Compress::Always,
        2 => Compress::Never,
        _ => Compress::Auto,
    };
    let bytes = match data {
        Either::A(text) => Bytes::from(text),
        Either::B(data) => lent::to_bytes(data),
    };
    let options = PartOptions {
        fin: flags & 1 != 0,
        whole: flags & 2 != 0,
        compress,
        notify,
    };
    status_code(env, handle.send_part(text, bytes, options))
}

/// Queues write marker `token` (not 0): a `Written` event with the token (4 bytes,
/// little-endian) follows once everything queued before it is on the socket.
#[napi]
pub fn ws_mark_written(
    env: &Env,
    #[napi(ts_arg_type = "ExternalObject<'WsHandle'>")] handle: &External<WsHandle>,
    token: u32,
) -> Result<()> {
    handle.mark_written(token).or_throw(env)
}

/// Heartbeat times of the connection, in milliseconds: `[lastPingAt, lastPongAt, rtt]` (the
/// first two since the Unix epoch, 0 when never; rtt 0 before the first answered ping).
#[napi]
pub fn ws_heartbeat(
    #[napi(ts_arg_type = "ExternalObject<'WsHandle'>")] handle: &External<WsHandle>,
) -> Vec<f64> {
    heartbeat_ms(handle)
}

fn heartbeat_ms(handle: &WsHandle) -> Vec<f64> {
    let h = handle.heartbeat();
    let ms = |us: u64| us as f64 / 1000.0;
    vec![ms(h.last_ping_us), ms(h.last_pong_us), ms(h.rtt_us)]
}

#[napi]
impl BindingWebSocket {
    /// Heartbeat times, as `wsHeartbeat` gives them, without making a send handle.
    #[napi]
    pub fn heartbeat(&self) -> Vec<f64> {
        heartbeat_ms(&self.handle)
    }

    /// The connection's send handle, for `wsSendText` and `wsSendBinary`.
    #[napi(ts_return_type = "ExternalObject<'WsHandle'>")]
    pub fn send_handle(&self) -> External<WsHandle> {
        External::new(self.handle.clone())
    }

    /// Connection id, unique per server (or per process for clients).
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        self.handle.id() as i64
    }

    /// Request target of the upgrade (server side) or the dialed URL (client side).
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// Handshake headers: the upgrade request's (server) or the 101 response's (client).
    #[napi(getter)]
    pub fn headers(&self) -> Vec<String> {
        stored_to_flat(&self.headers)
    }

    /// The negotiated subprotocol, empty when none.
    #[napi(getter)]
    pub fn protocol(&self) -> String {
        self.rare().map_or_else(String::new, |r| r.protocol.clone())
    }

    /// The negotiated extensions (`Sec-WebSocket-Extensions` of the 101), empty when none.
    #[napi(getter)]
    pub fn extensions(&self) -> String {
        self.rare()
            .map_or_else(String::new, |r| r.extensions.clone())
    }

    /// Subprotocols the client offered (server side, during the upgrade hook).
    #[napi(getter)]
    pub fn offered_protocols(&self) -> Vec<String> {
        self.rare()
            .map_or_else(Vec::new, |r| r.offered_protocols.clone())
    }

    /// The peer's IP address.
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.remote.map(|a| a.ip().to_string()).unwrap_or_default()
    }

    /// The peer's port.
    #[napi(getter)]
    pub fn remote_port(&self) -> u32 {
        self.remote.map_or(0, |a| u32::from(a.port()))
    }

    /// `"2"` for a WebSocket on an HTTP/2 stream (RFC 8441), `"1.1"` otherwise.
    #[napi(getter)]
    pub fn http_version(&self) -> String {
        if self.http2 { "2" } else { "1.1" }.to_owned()
    }

    /// Bytes queued and not yet written.
    #[napi(getter)]
    pub fn buffered_amount(&self) -> f64 {
        self.handle.buffered_amount() as f64
    }

    /// Queues a text message: 1 queued, -1 queued over the high-water mark (wait for drain),
    /// 0 dropped (backpressure limit exceeded, the connection is being closed).
    #[napi]
    pub fn send_text(&self, env: &Env, text: String) -> Result<i32> {
        status_code(env, self.handle.send_text(text))
    }

    /// Queues a binary message; same results as `sendText`.
    #[napi]
    pub fn send_binary(&self, env: &Env, data: &[u8]) -> Result<i32> {
        status_code(env, self.handle.send_binary(lent::to_bytes(data)))
    }

    /// Queues a pre-framed message; same results as `sendText`.
    #[napi]
    pub fn send_prepared(&self, env: &Env, msg: &BindingPreparedMessage) -> Result<i32> {
        status_code(env, self.handle.send_prepared(&msg.inner))
    }

    /// Queues a ping.
    #[napi]
    pub fn ping(&self, env: &Env, data: &[u8]) -> Result<()> {
        self.handle.ping(Bytes::copy_from_slice(data)).or_throw(env)
    }

    /// Queues an unsolicited pong.
    #[napi]
    pub fn pong(&self, env: &Env, data: &[u8]) -> Result<()> {
        self.handle.pong(Bytes::copy_from_slice(data)).or_throw(env)
    }

    /// Starts the close handshake.
    #[napi]
    pub fn close(&self, env: &Env, code: u32, reason: String) -> Result<()> {
        let code = u16::try_from(code).unwrap_or(0);
        self.handle.close(code, reason).or_throw(env)
    }

    /// Stops (false) or resumes (true) reading from the peer (backpressure on incoming
    /// messages).
    #[napi]
    pub fn set_reading(&self, on: bool) {
        match self.rare().and_then(|r| r.gate.as_ref()) {
            Some(gate) => gate.hold(!on),
            None => self.handle.set_reading(on),
        }
    }

    /// Drops the connection without a close handshake.
    #[napi]
    pub fn terminate(&self) {
        self.handle.terminate();
    }

    /// Server side, in the upgrade hook: accepts with an optional subprotocol and extra headers.
    #[napi]
    pub fn accept(
        &mut self,
        env: &Env,
        protocol: Option<String>,
        headers: Vec<String>,
    ) -> Result<()> {
        let headers = pair_headers(headers).or_throw(env)?;
        let Some(upgrade) = self.rare.as_mut().and_then(|r| r.upgrade.take()) else {
            return Err(Fail::invalid_state("upgrade already answered").throw(env));
        };
        // What the hook needed is dropped; a chosen subprotocol stays.
        self.rare = protocol.clone().map(|protocol| {
            Box::new(Rare {
                protocol,
                ..Rare::default()
            })
        });
        upgrade.accept(UpgradeAccept { protocol, headers });
        Ok(())
    }

    /// Server side, in the upgrade hook: refuses with a status, headers and body.
    #[napi]
    pub fn reject(
        &mut self,
        env: &Env,
        status: u32,
        headers: Vec<String>,
        body: Option<Either<String, Buffer>>,
    ) -> Result<()> {
        let headers = pair_headers(headers).or_throw(env)?;
        let Some(upgrade) = self.rare.as_mut().and_then(|r| r.upgrade.take()) else {
            return Err(Fail::invalid_state("upgrade already answered").throw(env));
        };
        let body = match body {
            None => Bytes::new(),
            Some(Either::A(text)) => Bytes::from(text),
            Some(Either::B(buf)) => Bytes::copy_from_slice(&buf),
        };
        upgrade.reject(Response::new(
            status.min(u32::from(u16::MAX)) as u16,
            header_map(headers).or_throw(env)?,
            body,
        ));
        Ok(())
    }

    /// Client side: starts reading after the JS object is set up, so no event is lost.
    #[napi]
    pub fn start(
        &mut self,
        env: &Env,
        #[napi(
            ts_arg_type = "(kind: number, id: number, socket: BindingWebSocket | null, data: string | Buffer | Error | null, code: number) => void"
        )]
        on_event: WsEventCallback,
    ) -> Result<()> {
        let Some((dialed, driver, limits)) = self
            .rare
            .as_mut()
            .and_then(|r| r.pending.take())
            .map(|p| *p)
        else {
            return Err(Fail::invalid_state("already started").throw(env));
        };
        let gate = Arc::new(ReadGate::new(self.handle.clone()));
        self.rare_mut().gate = Some(gate.clone());
        let events: Arc<dyn WsEvents> = Arc::new(JsEvents {
            sink: Sink::Callback(on_event, gate),
            hook: false,
            control_events: ControlEvents::ALL,
        });
        napi::bindgen_prelude::spawn(ws::run(
            dialed.stream,
            dialed.leftover,
            Role::Client,
            driver,
            events,
            limits,
            dialed.deflate,
        ));
        Ok(())
    }
}

/// A message framed (and compressed) once, sendable on many sockets.
#[napi]
pub struct BindingPreparedMessage {
    pub(crate) inner: PreparedMessage,
}

#[napi]
impl BindingPreparedMessage {
    /// Frames `data`: a string makes a text message, a Buffer a binary one.
    #[napi(constructor)]
    pub fn new(data: Either<String, &[u8]>) -> Self {
        let inner = match data {
            Either::A(text) => PreparedMessage::text(&text),
            Either::B(bytes) => PreparedMessage::binary(bytes),
        };
        BindingPreparedMessage { inner }
    }

    /// Payload length in bytes.
    #[napi(getter)]
    pub fn length(&self) -> f64 {
        self.inner.len() as f64
    }

    /// True for a text message.
    #[napi(getter)]
    pub fn is_text(&self) -> bool {
        self.inner.is_text()
    }
}

/// Where WebSocket events go: a JS callback per event (client sockets), or the server's queue,
/// which JS drains in batches (`BindingServer.takeWsEvents`).
enum Sink {
    Callback(WsEventCallback, Arc<ReadGate>),
    Queue(Arc<WsEventQueue<BindingWebSocket>>),
}

/// Sends WebSocket events to JS.
pub(crate) struct JsEvents {
    sink: Sink,
    /// The server has an upgrade hook: sockets go to JS at upgrade time, not at open.
    hook: bool,
    /// Which control frames JS hears about: a server without a `ping` or `pong` handler is not
    /// woken for them (with a heartbeat, that is one crossing per connection and interval).
    control_events: ControlEvents,
}

/// Ping and pong events wanted by JS.
#[derive(Clone, Copy)]
struct ControlEvents {
    ping: bool,
    pong: bool,
}

impl ControlEvents {
    const ALL: ControlEvents = ControlEvents {
        ping: true,
        pong: true,
    };
}

impl JsEvents {
    fn emit(
        &self,
        kind: u32,
        id: u64,
        socket: Option<BindingWebSocket>,
        data: EventData,
        code: u32,
    ) {
        match &self.sink {
            Sink::Queue(queue) => queue.push(
                kind,
                id,
                socket.map(|s| EventObject::Socket(Box::new(s))),
                data,
                code,
            ),
            Sink::Callback(callback, gate) => {
                let size = match &data {
                    EventData::Text(text) if kind == WS_MESSAGE => text.len(),
                    EventData::Binary(bytes) if kind == WS_MESSAGE => bytes.len(),
                    _ => 0,
                };
                let data = match data {
                    EventData::None => None,
                    EventData::Text(text) => Some(Either3::A(text)),
                    EventData::Binary(bytes) => Some(Either3::B(buffer(bytes))),
                    EventData::Error(fail) => Some(Either3::C(fail)),
                };
                let args: WsEventArgs = (kind, id as i64, socket, data, code).into();
                if size == 0 {
                    callback.call(args, ThreadsafeFunctionCallMode::NonBlocking);
                    return;
                }
                gate.queued(size);
                let gate = gate.clone();
                callback.call_with_return_value(
                    args,
                    ThreadsafeFunctionCallMode::NonBlocking,
                    move |_, _| {
                        gate.delivered(size);
                        Ok(())
                    },
                );
            }
        }
    }
}

fn buffer(bytes: Bytes) -> Buffer {
    Buffer::from(Vec::from(bytes))
}

impl WsEvents for JsEvents {
    fn on_message(&self, id: u64, msg: WsMessage) {
        let data = match msg {
            WsMessage::Text(text) => EventData::Text(text),
            WsMessage::Binary(bin) => EventData::Binary(bin),
        };
        self.emit(WS_MESSAGE, id, None, data, 0);
    }

    fn on_binary_batch(&self, id: u64, region: Bytes, ranges: &[std::ops::Range<usize>]) {
        match &self.sink {
            // One ArrayBuffer for them all when it is worth lending (see `lent`).
            Sink::Queue(queue)
                if region.len() >= lent::LEND_MIN && region.len() <= u32::MAX as usize =>
            {
                queue.push_region(id, region, ranges)
            }
            _ => {
                for msg in ws::batch_messages(&region, ranges) {
                    self.on_message(id, msg);
                }
            }
        }
    }

    fn on_close(&self, id: u64, code: u16, reason: String) {
        self.emit(WS_CLOSE, id, None, EventData::Text(reason), u32::from(code));
    }

    fn on_ping(&self, id: u64, data: Bytes) {
        if self.control_events.ping {
            self.emit(WS_PING, id, None, EventData::Binary(data), 0);
        }
    }

    fn on_pong(&self, id: u64, data: Bytes) {
        if self.control_events.pong {
            self.emit(WS_PONG, id, None, EventData::Binary(data), 0);
        }
    }

    fn on_drain(&self, id: u64) {
        self.emit(WS_DRAIN, id, None, EventData::None, 0);
    }

    fn on_written(&self, id: u64, token: u32) {
        // The token travels as 4 bytes of data (little-endian): the code has only 16 bits.
        let data = EventData::Binary(Bytes::copy_from_slice(&token.to_le_bytes()));
        self.emit(WS_WRITTEN, id, None, data, 0);
    }

    fn on_error(&self, id: u64, error: CoreError, gate: FailGate) {
        let fail = Fail::from(error);
        match &self.sink {
            Sink::Queue(queue) => queue.push(
                WS_ERROR,
                id,
                Some(EventObject::Gate(gate)),
                EventData::Error(fail),
                0,
            ),
            Sink::Callback(callback, _) => {
                let args: WsEventArgs =
                    (WS_ERROR, id as i64, None, Some(Either3::C(fail)), 0).into();
                // The close frame waits until JS has handled every earlier event (and sent
                // replies).
                callback.call_with_return_value(
                    args,
                    ThreadsafeFunctionCallMode::NonBlocking,
                    move |_, _| {
                        drop(gate);
                        Ok(())
                    },
                );
            }
        }
    }
}

impl WsHandler for JsEvents {
    fn on_upgrade(&self, upgrade: Upgrade) {
        if !self.hook {
            upgrade.accept(UpgradeAccept::default());
            return;
        }
        let id = upgrade.handle.id();
        let mut ws = BindingWebSocket::server_side(upgrade.handle.clone(), &upgrade.request);
        ws.rare = Some(Box::new(Rare {
            offered_protocols: upgrade.protocols.clone(),
            upgrade: Some(Box::new(upgrade)),
            ..Rare::default()
        }));
        self.emit(WS_UPGRADE, id, Some(ws), EventData::None, 0);
    }

    fn on_open(&self, handle: WsHandle, request: Request) {
        let id = handle.id();
        let ws = (!self.hook).then(|| BindingWebSocket::server_side(handle, &request));
        self.emit(WS_OPEN, id, ws, EventData::None, 0);
    }
}

/// permessage-deflate settings, defaulted by the TS layer.
#[napi(object)]
pub struct BindingDeflateOptions {
    pub server_no_context_takeover: Option<bool>,
    pub client_no_context_takeover: Option<bool>,
    pub server_max_window_bits: Option<u32>,
    pub client_max_window_bits: Option<u32>,
    pub threshold: Option<f64>,
    pub level: Option<i32>,
    pub mem_level: Option<i32>,
}

/// permessage-deflate as JS gives it: `false` off, `true` the defaults, or settings (what they
/// leave out takes `DeflateOptions::default()`); `None` keeps the role's default.
fn deflate_options(
    o: Option<&Either<bool, BindingDeflateOptions>>,
    role_default: Option<DeflateOptions>,
) -> Option<DeflateOptions> {
    let d = DeflateOptions::default();
    match o {
        None => role_default,
        Some(Either::A(false)) => None,
        Some(Either::A(true)) => Some(d),
        Some(Either::B(o)) => Some(DeflateOptions {
            server_no_context_takeover: o
                .server_no_context_takeover
                .unwrap_or(d.server_no_context_takeover),
            client_no_context_takeover: o
                .client_no_context_takeover
                .unwrap_or(d.client_no_context_takeover),
            server_max_window_bits: o
                .server_max_window_bits
                .map_or(d.server_max_window_bits, |b| b.clamp(8, 15) as u8),
            client_max_window_bits: o
                .client_max_window_bits
                .map_or(d.client_max_window_bits, |b| b.clamp(8, 15) as u8),
            threshold: o.threshold.map_or(d.threshold, |n| n as usize),
            level: o.level.unwrap_or(d.level),
            mem_level: o.mem_level.unwrap_or(d.mem_level),
        }),
    }
}

/// Limits shared by the server and the client, validated by the TS layer; what it leaves out
/// takes the role's default (`WsOptions::default()`, `DialOptions::default()`). Times in ms
/// (0 disables idle timeout and heartbeat). The frame limit defaults to the message limit.
#[napi(object)]
pub struct BindingWsLimits {
    pub max_message_size: Option<f64>,
    pub max_frame_size: Option<f64>,
    pub close_timeout_ms: Option<u32>,
    pub idle_timeout_ms: Option<u32>,
    pub ping_interval_ms: Option<u32>,
    pub pong_timeout_ms: Option<u32>,
    pub high_water_mark: Option<f64>,
    pub max_backpressure: Option<f64>,
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn limits(o: &BindingWsLimits, d: WsLimits) -> WsLimits {
    let size = |v: Option<f64>, d: usize| v.map_or(d, |n| n as usize);
    let timer = |v: Option<u32>, d: Option<Duration>| v.map_or(d, |n| (n > 0).then(|| ms(n)));
    let max_message_size = size(o.max_message_size, d.max_message_size);
    WsLimits {
        max_message_size,
        max_frame_size: size(
            o.max_frame_size,
            if o.max_message_size.is_some() {
                max_message_size
            } else {
                d.max_frame_size
            },
        ),
        close_timeout: o.close_timeout_ms.map_or(d.close_timeout, ms),
        idle_timeout: timer(o.idle_timeout_ms, d.idle_timeout),
        ping_interval: timer(o.ping_interval_ms, d.ping_interval),
        pong_timeout: o.pong_timeout_ms.map_or(d.pong_timeout, ms),
        high_water_mark: size(o.high_water_mark, d.high_water_mark),
        max_backpressure: size(o.max_backpressure, d.max_backpressure),
    }
}

/// WebSocket options of a server, validated by the TS layer; defaults from `WsOptions`.
#[napi(object)]
pub struct BindingWsOptions {
    pub limits: BindingWsLimits,
    pub compression: Option<Either<bool, BindingDeflateOptions>>,
    pub allowed_origins: Option<Vec<String>>,
    pub max_connections: Option<u32>,
    pub handshake_timeout_ms: Option<u32>,
    /// The TS layer has an `upgrade` hook: sockets are handed over before the 101.
    pub upgrade_hook: bool,
    /// The TS layer has a `ping` handler (without one, pings are not sent to JS).
    pub ping_handler: bool,
    /// The TS layer has a `pong` handler (without one, pongs are not sent to JS).
    pub pong_handler: bool,
}

/// Converts the server's WebSocket options and builds the handler for its events.
/// The WebSocket side of a server: options, the handler, and the event queue JS drains after
/// `wake` is called.
pub(crate) fn server_websocket(
    o: &BindingWsOptions,
    wake: WakeCallback,
) -> (
    WsOptions,
    Arc<dyn WsHandler>,
    Arc<WsEventQueue<BindingWebSocket>>,
) {
    let d = WsOptions::default();
    let opts = WsOptions {
        limits: limits(&o.limits, d.limits),
        deflate: deflate_options(o.compression.as_ref(), d.deflate),
        allowed_origins: o.allowed_origins.clone(),
        max_connections: o.max_connections.map_or(d.max_connections, |n| n as usize),
        handshake_timeout: o.handshake_timeout_ms.map_or(d.handshake_timeout, ms),
    };
    let queue = Arc::new(WsEventQueue::new(JsWake::new(wake)));
    let handler = Arc::new(JsEvents {
        sink: Sink::Queue(queue.clone()),
        hook: o.upgrade_hook,
        control_events: ControlEvents {
            ping: o.ping_handler,
            pong: o.pong_handler,
        },
    });
    (opts, handler, queue)
}

/// Options of `dialWebSocket`, validated by the TS layer; defaults from `DialOptions`.
#[napi(object)]
pub struct BindingDialOptions {
    pub protocols: Vec<String>,
    pub headers: Vec<String>,
    pub handshake_timeout_ms: Option<u32>,
    pub limits: BindingWsLimits,
    pub compression: Option<Either<bool, BindingDeflateOptions>>,
    /// Extra trusted CA certificates (PEM) for `wss://`.
    pub ca: Option<String>,
    /// Verify the server certificate (default true).
    pub reject_unauthorized: Option<bool>,
    /// TLS server name instead of the URL's host.
    pub servername: Option<String>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub cert: Option<String>,
    /// Private key (PEM) of `cert`.
    pub key: Option<String>,
    /// HTTP proxy URL (`http://user:pass@host:port`) for `ws://` and `wss://`.
    pub proxy: Option<String>,
    /// Read `HTTP_PROXY` (ws://), `HTTPS_PROXY` (wss://) and `NO_PROXY` when `proxy` is not given.
    pub proxy_from_env: bool,
    /// Hosts reached directly, replacing `NO_PROXY`.
    pub no_proxy: Option<Vec<String>>,
    /// Follow redirects of the handshake (default false).
    pub follow_redirects: Option<bool>,
    /// Most redirects followed (default 10).
    pub max_redirects: Option<u32>,
    /// `'auto'`, `'always'` or `'never'` (default): open the WebSocket over HTTP/2 (RFC 8441) on
    /// a connection of the given client.
    pub http2: Option<String>,
}

static NEXT_CLIENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Connects to a `ws://` or `wss://` URL. Call `start` on the result to begin receiving.
///
/// Not an `async fn`: the client is cloned out of its JS object before the future starts, since
/// a borrowed JS value is not kept alive across the await (the garbage collector may free it).
#[napi(ts_return_type = "Promise<BindingWebSocket>")]
pub fn dial_web_socket<'env>(
    env: &'env Env,
    url: String,
    options: BindingDialOptions,
    client: Option<&External<Client>>,
) -> Result<PromiseRaw<'env, Outcome<BindingWebSocket>>> {
    let client = client.map(|c| (**c).clone());
    env.spawn_future(async move { Ok(dial(url, options, client).await.into()) })
}

async fn dial(
    url: String,
    options: BindingDialOptions,
    client: Option<Client>,
) -> JsResult<BindingWebSocket> {
    let d = DialOptions::default();
    let http2 = match options.http2.as_deref() {
        None | Some("never") => WsHttp2::Never,
        Some("auto") => WsHttp2::Auto,
        Some("always") => WsHttp2::Always,
        Some(other) => {
            return Err(CoreError::InvalidArgument(format!(
                "http2 must be 'auto', 'always' or 'never', not {other:?}"
            ))
            .into())
        }
    };
    let opts = DialOptions {
        protocols: options.protocols,
        headers: pair_headers(options.headers)?,
        handshake_timeout: options
            .handshake_timeout_ms
            .map_or(d.handshake_timeout, |v| Some(ms(v))),
        limits: limits(&options.limits, d.limits),
        deflate: deflate_options(options.compression.as_ref(), d.deflate),
        tls: ClientTlsOptions {
            ca: options.ca.into_iter().collect(),
            reject_unauthorized: options
                .reject_unauthorized
                .unwrap_or(d.tls.reject_unauthorized),
            server_name: options.servername,
            cert: options.cert,
            key: options.key,
            ..ClientTlsOptions::default()
        },
        proxy: proxy_options(
            options.proxy.as_deref(),
            options.proxy_from_env,
            options.no_proxy.as_deref(),
        )?,
        follow_redirects: options.follow_redirects.unwrap_or(d.follow_redirects),
        max_redirects: options
            .max_redirects
            .map_or(d.max_redirects, |n| n as usize),
    };
    let over_h2 = match (&client, http2) {
        (Some(client), mode) if mode != WsHttp2::Never => {
            client.dial_websocket_h2(&url, &opts, mode).await?
        }
        _ => None,
    };
    let dialed = match over_h2 {
        Some(dialed) => dialed,
        None => dial_websocket(&url, &opts).await?,
    };
    let http2 = matches!(dialed.stream, hypersock_core::net::NetStream::H2(_));
    let id = NEXT_CLIENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (handle, driver) = ws::channel(id, &opts.limits);
    let peer = dialed.stream.tcp().and_then(|t| t.peer_addr().ok());
    Ok(BindingWebSocket {
        handle,
        headers: store_headers(dialed.headers.iter().map(|(n, v)| (n.as_str(), &v[..]))),
        url: dialed.url.as_str().into(),
        remote: peer,
        http2,
        rare: Some(Box::new(Rare {
            protocol: dialed.protocol.clone(),
            extensions: dialed.extensions.clone(),
            pending: Some(Box::new((dialed, driver, opts.limits))),
            ..Rare::default()
        })),
    })
}
