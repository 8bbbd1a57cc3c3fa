use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hypersock_core::server::{HttpHandler, Request, Responder, Response, Server, ServerOptions};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::websocket::{server_websocket, BindingWsOptions, WsEventCallback};
use crate::{flat_headers, pair_headers, to_js_error};

/// Options of `startServer`, validated and defaulted by the TS layer.
#[napi(object)]
pub struct BindingServerOptions {
    pub hostname: String,
    pub port: u32,
    pub max_body_size: f64,
    pub header_read_timeout_ms: u32,
    pub server_name: Option<String>,
    /// WebSocket options; required when `onWebSocket` is given.
    pub websocket: Option<BindingWsOptions>,
}

type RequestCallback = ThreadsafeFunction<BindingRequest, (), BindingRequest, Status, false, true>;

/// One HTTP request handed to JS; answered once with `respond`.
#[napi]
pub struct BindingRequest {
    request: Request,
    responder: Option<Responder>,
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

    /// The client's IP address.
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.request.remote_addr.ip().to_string()
    }

    /// The client's port.
    #[napi(getter)]
    pub fn remote_port(&self) -> u32 {
        u32::from(self.request.remote_addr.port())
    }

    /// The whole body; an empty body gives `null`. Can be taken once.
    #[napi]
    pub fn take_body(&mut self) -> Option<Buffer> {
        let body = std::mem::take(&mut self.request.body);
        if body.is_empty() {
            None
        } else {
            Some(Buffer::from(Vec::from(body)))
        }
    }

    /// Sends the response. Returns false if it was already sent or the client is gone.
    #[napi]
    pub fn respond(
        &mut self,
        status: u32,
        headers: Vec<String>,
        body: Option<Either<String, Buffer>>,
    ) -> Result<bool> {
        let headers = pair_headers(headers)?;
        let Some(responder) = self.responder.take() else {
            return Ok(false);
        };
        let body = match body {
            None => Bytes::new(),
            Some(Either::A(text)) => Bytes::from(text),
            Some(Either::B(buf)) => Bytes::copy_from_slice(&buf),
        };
        Ok(responder.send(Response {
            status: status.min(u32::from(u16::MAX)) as u16,
            headers,
            body,
        }))
    }
}

struct JsHttp {
    callback: RequestCallback,
}

impl HttpHandler for JsHttp {
    fn handle(&self, request: Request, responder: Responder) {
        let req = BindingRequest {
            request,
            responder: Some(responder),
        };
        self.callback
            .call(req, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

/// A running server.
#[napi]
pub struct BindingServer {
    inner: Arc<Server>,
}

/// Binds and starts a server. `onRequest` gets every HTTP request; `onWebSocket`, when given,
/// enables WebSocket upgrades and gets their events.
#[napi]
pub async fn start_server(
    options: BindingServerOptions,
    on_request: RequestCallback,
    on_web_socket: Option<WsEventCallback>,
) -> Result<BindingServer> {
    let mut opts = ServerOptions {
        hostname: options.hostname,
        port: u16::try_from(options.port).map_err(|_| Error::from_reason("port out of range"))?,
        max_body_size: options.max_body_size as usize,
        header_read_timeout: Duration::from_millis(u64::from(options.header_read_timeout_ms)),
        server_name: options.server_name,
        ..ServerOptions::default()
    };
    let http: Arc<dyn HttpHandler> = Arc::new(JsHttp {
        callback: on_request,
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
    })
}

#[napi]
impl BindingServer {
    /// The port the server listens on.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        u32::from(self.inner.local_addr().port())
    }

    /// The IP address the server listens on.
    #[napi(getter)]
    pub fn address(&self) -> String {
        self.inner.local_addr().ip().to_string()
    }

    /// Open WebSocket connections.
    #[napi(getter)]
    pub fn websocket_count(&self) -> u32 {
        self.inner.websocket_count() as u32
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
