use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hypersock_core::client::{dial_websocket, DialOptions, DialedWebSocket};
use hypersock_core::server::Request;
use hypersock_core::ws::{self, WsEvents, WsHandle, WsMessage};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::{flat_headers, pair_headers, to_js_error};

pub(crate) const WS_OPEN: u32 = 0;
pub(crate) const WS_MESSAGE: u32 = 1;
pub(crate) const WS_CLOSE: u32 = 2;

/// `(kind, id, socket on open, data or close reason, close code)`.
pub(crate) type WsEventArgs = FnArgs<(
    u32,
    i64,
    Option<BindingWebSocket>,
    Option<Either<String, Buffer>>,
    u32,
)>;
pub(crate) type WsEventCallback =
    ThreadsafeFunction<WsEventArgs, (), WsEventArgs, Status, false, true>;

/// One WebSocket connection, server side or client side.
#[napi]
pub struct BindingWebSocket {
    handle: WsHandle,
    url: String,
    headers: Vec<String>,
    protocol: String,
    remote_address: String,
    pending: Option<(DialedWebSocket, ws::WsDriver, ws::WsLimits)>,
}

impl BindingWebSocket {
    pub(crate) fn server_side(handle: WsHandle, request: Request) -> Self {
        let headers = flat_headers(
            request
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes())),
        );
        BindingWebSocket {
            handle,
            url: request.target,
            headers,
            protocol: String::new(),
            remote_address: request
                .remote_addr
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            pending: None,
        }
    }
}

#[napi]
impl BindingWebSocket {
    /// Connection id, unique per server (or per process for clients).
    #[napi(getter)]
    pub fn id(&self) -> i64 {
        self.handle.id() as i64
    }

    /// Request target of the upgrade (server side) or the dialed URL (client side).
    #[napi(getter)]
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Handshake headers: the upgrade request's (server) or the 101 response's (client).
    #[napi(getter)]
    pub fn headers(&self) -> Vec<String> {
        self.headers.clone()
    }

    /// The negotiated subprotocol, empty when none.
    #[napi(getter)]
    pub fn protocol(&self) -> String {
        self.protocol.clone()
    }

    /// The peer's IP address.
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.remote_address.clone()
    }

    /// Bytes queued and not yet written.
    #[napi(getter)]
    pub fn buffered_amount(&self) -> f64 {
        self.handle.buffered_amount() as f64
    }

    /// Queues a text message.
    #[napi]
    pub fn send_text(&self, text: String) -> Result<()> {
        self.handle.send_text(text).map_err(to_js_error)
    }

    /// Queues a binary message.
    #[napi]
    pub fn send_binary(&self, data: &[u8]) -> Result<()> {
        self.handle
            .send_binary(Bytes::copy_from_slice(data))
            .map_err(to_js_error)
    }

    /// Queues a ping.
    #[napi]
    pub fn ping(&self, data: &[u8]) -> Result<()> {
        self.handle
            .ping(Bytes::copy_from_slice(data))
            .map_err(to_js_error)
    }

    /// Starts the close handshake.
    #[napi]
    pub fn close(&self, code: u32, reason: String) -> Result<()> {
        let code = u16::try_from(code).unwrap_or(0);
        self.handle.close(code, reason).map_err(to_js_error)
    }

    /// Client side: starts reading after the JS object is set up, so no event is lost.
    #[napi]
    pub fn start(&mut self, on_event: WsEventCallback) -> Result<()> {
        let Some((dialed, driver, limits)) = self.pending.take() else {
            return Err(Error::from_reason("ERR_INVALID_STATE: already started"));
        };
        let events: Arc<dyn WsEvents> = Arc::new(ClientEvents { callback: on_event });
        napi::bindgen_prelude::spawn(ws::run(dialed.stream, driver, events, limits));
        Ok(())
    }
}

struct ClientEvents {
    callback: WsEventCallback,
}

impl WsEvents for ClientEvents {
    fn on_message(&self, id: u64, msg: WsMessage) {
        let data = match msg {
            WsMessage::Text(text) => Either::A(text),
            WsMessage::Binary(bin) => Either::B(Buffer::from(Vec::from(bin))),
        };
        let args: WsEventArgs = (WS_MESSAGE, id as i64, None, Some(data), 0).into();
        self.callback
            .call(args, ThreadsafeFunctionCallMode::NonBlocking);
    }

    fn on_close(&self, id: u64, code: u16, reason: String) {
        let args: WsEventArgs = (
            WS_CLOSE,
            id as i64,
            None,
            Some(Either::A(reason)),
            u32::from(code),
        )
            .into();
        self.callback
            .call(args, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// Options of `dialWebSocket`, defaulted by the TS layer.
#[napi(object)]
pub struct BindingDialOptions {
    pub protocols: Vec<String>,
    pub headers: Vec<String>,
    pub handshake_timeout_ms: u32,
    pub max_message_size: f64,
    pub close_timeout_ms: u32,
}

static NEXT_CLIENT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Connects to a `ws://` URL. Call `start` on the result to begin receiving.
#[napi]
pub async fn dial_web_socket(url: String, options: BindingDialOptions) -> Result<BindingWebSocket> {
    let mut opts = DialOptions {
        protocols: options.protocols,
        headers: pair_headers(options.headers)?,
        handshake_timeout: Some(Duration::from_millis(u64::from(
            options.handshake_timeout_ms,
        ))),
        ..DialOptions::default()
    };
    opts.limits.max_message_size = options.max_message_size as usize;
    opts.limits.max_frame_size = options.max_message_size as usize;
    opts.limits.close_timeout = Duration::from_millis(u64::from(options.close_timeout_ms));
    let dialed = dial_websocket(&url, &opts).await.map_err(to_js_error)?;
    let id = NEXT_CLIENT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (handle, driver) = ws::channel(id);
    let remote_address = dialed
        .stream
        .get_ref()
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    Ok(BindingWebSocket {
        handle,
        headers: flat_headers(dialed.headers.iter().map(|(n, v)| (n.as_str(), v))),
        protocol: dialed.protocol.clone(),
        url,
        remote_address,
        pending: Some((dialed, driver, opts.limits)),
    })
}
