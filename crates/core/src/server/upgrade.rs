//! WebSocket upgrade of HTTP/1.1 requests (RFC 6455 section 4.2) and extended CONNECT streams of
//! HTTP/2 (RFC 8441), with RFC 7692 negotiation.
//!
//! Order of checks: method and version (400), over HTTP/2 the `:protocol` (400),
//! `Sec-WebSocket-Version` (426), over HTTP/1.1 the key (400), handshake size (431), `Origin`
//! allow-list (403), connection limit (503); then the application's
//! [`super::WsHandler::on_upgrade`] decides (any status, or accept with a subprotocol, extra
//! headers); then the 101 (HTTP/1.1) or 200 (HTTP/2, the stream stays open) goes out and the
//! connection or stream is driven by [`ws::run`]. Over HTTP/2 the stream's flow control is the
//! backpressure; the close ends the stream (END_STREAM), an abort resets it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::BytesMut;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use super::{
    build_response, lock, plain, Ctx, HttpResponse, Request, RequestBody, ResBody, Response,
};
use crate::ws::deflate::{accept_offer, parse_extensions};
use crate::ws::handshake::{accept_key, has_token, valid_key};
use crate::ws::{self, Role, WsEvents, WsHandle};

/// Largest total size of the upgrade request's header fields.
const MAX_HANDSHAKE_SIZE: usize = 16 << 10;

/// True when the request asks to upgrade to WebSocket.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let any = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| has_token(v.as_bytes(), token))
    };
    any(header::UPGRADE, "websocket") && any(header::CONNECTION, "upgrade")
}

/// True for an HTTP/2 extended CONNECT (RFC 8441): a `CONNECT` with a `:protocol`.
pub fn is_extended_connect<B>(req: &hyper::Request<B>) -> bool {
    req.method() == Method::CONNECT && req.extensions().get::<hyper::ext::Protocol>().is_some()
}

/// How an accepted upgrade answers.
#[derive(Debug, Default, Clone)]
pub struct UpgradeAccept {
    /// The subprotocol to select; must be one the client offered.
    pub protocol: Option<String>,
    /// Extra headers for the 101 response.
    pub headers: Vec<(String, String)>,
}

/// How a refused upgrade answers: any status, headers and body.
pub type UpgradeReject = Response;

enum Decision {
    Accept(UpgradeAccept),
    Reject(UpgradeReject),
}

/// A WebSocket upgrade waiting for the application's decision.
pub struct Upgrade {
    /// The handle the connection will have once accepted (sends are queued until open).
    pub handle: WsHandle,
    /// The upgrade request (method, target, headers, remote address; empty body).
    pub request: Request,
    /// Subprotocols the client offered, in order.
    pub protocols: Vec<String>,
    decide: oneshot::Sender<Decision>,
}

impl Upgrade {
    /// Accepts: the 101 is sent and `on_open` follows.
    pub fn accept(self, accept: UpgradeAccept) {
        let _ = self.decide.send(Decision::Accept(accept));
    }

    /// Refuses with `response`; the connection stays plain HTTP.
    pub fn reject(self, response: UpgradeReject) {
        let _ = self.decide.send(Decision::Reject(response));
    }
}

fn copy_request(parts: &http::request::Parts, peer: Option<SocketAddr>) -> Request {
    Request {
        method: parts.method.clone(),
        target: parts.uri.to_string(),
        version: parts.version,
        headers: parts.headers.clone(),
        body: RequestBody::empty(),
        remote_addr: peer,
        upgrade: None,
        tls: None,
        route: None,
    }
}

fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Checks a WebSocket handshake (HTTP/1.1 upgrade or HTTP/2 extended CONNECT), runs the upgrade
/// hook, answers it and spawns the connection's task for when hyper hands the stream over. Not an
/// `async fn` (see `respond::handle`).
#[allow(clippy::manual_async_fn)]
pub(crate) fn upgrade_websocket<'a>(
    ctx: &'a Arc<Ctx>,
    peer: Option<SocketAddr>,
    mut req: hyper::Request<Incoming>,
) -> impl std::future::Future<Output = HttpResponse> + 'a {
    async move {
        let h2 = req.version() == Version::HTTP_2;
        if h2 {
            // RFC 8441 section 4: CONNECT with `:protocol = websocket`; no Sec-WebSocket-Key.
            let protocol = req.extensions().get::<hyper::ext::Protocol>();
            if req.method() != Method::CONNECT || protocol.is_none() {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "a WebSocket over HTTP/2 needs CONNECT with :protocol websocket\n",
                );
            }
            if !protocol.is_some_and(|p| p.as_str().eq_ignore_ascii_case("websocket")) {
                return plain(StatusCode::BAD_REQUEST, "unsupported :protocol\n");
            }
        } else if req.method() != Method::GET || req.version() != Version::HTTP_11 {
            return plain(
                StatusCode::BAD_REQUEST,
                "WebSocket upgrade needs GET over HTTP/1.1\n",
            );
        }
        let headers = req.headers();
        // RFC 6455 section 11.3.1 and 11.3.5: neither may appear more than once.
        let repeated = |name| headers.get_all(name).iter().nth(1).is_some();
        if repeated(header::SEC_WEBSOCKET_KEY) || repeated(header::SEC_WEBSOCKET_VERSION) {
            return plain(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key and Sec-WebSocket-Version must appear once\n",
            );
        }
        if headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            != Some(b"13")
        {
            let mut res = plain(
                StatusCode::UPGRADE_REQUIRED,
                "unsupported WebSocket version\n",
            );
            res.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return res;
        }
        let accept = if h2 {
            None
        } else {
            let Some(key) = headers
                .get(header::SEC_WEBSOCKET_KEY)
                .filter(|k| valid_key(k.as_bytes()))
            else {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "missing or invalid Sec-WebSocket-Key\n",
                );
            };
            Some(accept_key(key.as_bytes()))
        };
        let Some(ws_handler) = ctx.ws.clone() else {
            return plain(StatusCode::NOT_FOUND, "no WebSocket here\n");
        };
        let opts = &ctx.opts.ws;
        let size: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        if size > MAX_HANDSHAKE_SIZE {
            return plain(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "WebSocket handshake too large\n",
            );
        }
        if let (Some(allowed), Some(origin)) = (&opts.allowed_origins, headers.get(header::ORIGIN))
        {
            let origin = origin.to_str().unwrap_or("");
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
                return plain(StatusCode::FORBIDDEN, "origin not allowed\n");
            }
        }
        if opts.max_connections > 0 && lock(&ctx.sockets).len() >= opts.max_connections {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many WebSocket connections\n",
            );
        }
        let negotiated = match &opts.deflate {
            Some(d) => headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(parse_extensions)
                .find_map(|offers| accept_offer(&offers, d)),
            None => None,
        };
        let protocols = offered_protocols(headers);

        let id = ctx.next_ws_id.fetch_add(1, Ordering::Relaxed);
        let limits = ctx.ws_limits.clone();
        let (handle, driver) = ws::channel(id, &limits);
        let on_upgrade = hyper::upgrade::on(&mut req);
        let (parts, _) = req.into_parts();
        let (tx, rx) = oneshot::channel();
        ws_handler.on_upgrade(Upgrade {
            handle: handle.clone(),
            request: copy_request(&parts, peer),
            protocols: protocols.clone(),
            decide: tx,
        });
        let decision = match tokio::time::timeout(opts.handshake_timeout, rx).await {
            Ok(Ok(d)) => d,
            Ok(Err(_)) => {
                handle.terminate();
                return plain(StatusCode::INTERNAL_SERVER_ERROR, "upgrade refused\n");
            }
            Err(_) => {
                handle.terminate();
                return plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upgrade decision timed out\n",
                );
            }
        };
        let accepted = match decision {
            Decision::Reject(r) => {
                handle.terminate();
                return build_response(r, false);
            }
            Decision::Accept(a) => a,
        };
        let mut res = hyper::Response::new(ResBody::empty());
        *res.status_mut() = if h2 {
            StatusCode::OK
        } else {
            StatusCode::SWITCHING_PROTOCOLS
        };
        let h = res.headers_mut();
        for (name, value) in &accepted.headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                handle.terminate();
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "upgrade hook returned an invalid header\n",
                );
            };
            h.append(name, value);
        }
        if let Some(accept) = accept {
            h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            if let Ok(v) = HeaderValue::from_str(&accept) {
                h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
            }
        }
        if let Some(p) = accepted.protocol.filter(|p| !p.is_empty()) {
            if !protocols.contains(&p) {
                handle.terminate();
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "upgrade hook chose a subprotocol the client did not offer\n",
                );
            }
            if let Ok(v) = HeaderValue::from_str(&p) {
                h.insert(header::SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        if let Some((resp, _)) = &negotiated {
            if let Ok(v) = HeaderValue::from_str(resp) {
                h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v);
            }
        }
        let deflate = negotiated.map(|(_, n)| n);
        let request = Request {
            method: parts.method,
            target: parts.uri.to_string(),
            version: parts.version,
            headers: parts.headers,
            body: RequestBody::empty(),
            remote_addr: peer,
            upgrade: None,
            tls: None,
            route: None,
        };
        let registered = handle.clone();
        // Everything the connection needs once upgraded, in one box that is emptied then: a value
        // captured by the task's future would keep its room there for the connection's whole life.
        let setup = Box::new(Opened {
            ctx: ctx.clone(),
            h2,
            handle,
            driver,
            request,
            ws_handler,
            limits,
            deflate,
        });
        // Hold the registry lock while spawning so that the task's removal comes after the insert.
        let mut sockets = lock(&ctx.sockets);
        let task = tokio::spawn(async move {
            match on_upgrade.await {
                // The close unregisters the connection (see `Registered`).
                Ok(upgraded) => start(upgraded, setup).await,
                Err(_) => {
                    lock(&setup.ctx.sockets).remove(&id);
                }
            }
        });
        sockets.insert(id, (registered, task.abort_handle()));
        drop(sockets);
        res
    }
}

/// What an accepted upgrade hands to its connection's task.
struct Opened {
    ctx: Arc<Ctx>,
    h2: bool,
    handle: WsHandle,
    driver: ws::WsDriver,
    request: Request,
    ws_handler: Arc<dyn super::WsHandler>,
    limits: Arc<ws::WsLimits>,
    deflate: Option<ws::Negotiated>,
}

/// Opens the upgraded connection (stats, hub, `on_open`) and returns the future that drives it.
/// A plain function, so the future holds only the driver's state, not `setup`.
fn start(
    upgraded: hyper::upgrade::Upgraded,
    setup: Box<Opened>,
) -> impl std::future::Future<Output = ()> + Send {
    use futures_util::future::Either;
    let Opened {
        ctx,
        h2,
        handle,
        driver,
        request,
        ws_handler,
        limits,
        deflate,
    } = *setup;
    ctx.stats.websockets_total.fetch_add(1, Ordering::Relaxed);
    if h2 {
        ctx.stats
            .websockets_h2_total
            .fetch_add(1, Ordering::Relaxed);
    }
    ctx.opts.hub.add(handle.clone());
    ws_handler.on_open(handle, request);
    let events: Arc<dyn WsEvents> = Arc::new(Registered {
        ctx,
        inner: ws_handler,
    });
    // The usual case runs on the connection's own stream, without hyper's boxed I/O.
    match upgraded.downcast::<TokioIo<super::io::Counted>>() {
        Ok(parts) => {
            let leftover = BytesMut::from(&parts.read_buf[..]);
            let io = parts.io.into_inner();
            Either::Left(ws::run(
                io,
                leftover,
                Role::Server,
                driver,
                events,
                limits,
                deflate,
            ))
        }
        Err(upgraded) => Either::Right(ws::run(
            TokioIo::new(upgraded),
            BytesMut::new(),
            Role::Server,
            driver,
            events,
            limits,
            deflate,
        )),
    }
}

/// Passes events on, unregistering the connection from the hub before its close is reported (so
/// a `close` handler already sees it out of every room) and from the server after.
struct Registered {
    ctx: Arc<Ctx>,
    inner: Arc<dyn super::WsHandler>,
}

impl WsEvents for Registered {
    fn on_message(&self, id: u64, msg: ws::WsMessage) {
        self.inner.on_message(id, msg);
    }
    fn on_binary_batch(&self, id: u64, region: bytes::Bytes, ranges: &[std::ops::Range<usize>]) {
        self.inner.on_binary_batch(id, region, ranges);
    }
    fn on_close(&self, id: u64, code: u16, reason: String) {
        self.ctx.opts.hub.remove(id);
        self.inner.on_close(id, code, reason);
        // After the close is on its way to the handler: a graceful stop waits for the registry
        // to empty, and then no close event is still to come.
        lock(&self.ctx.sockets).remove(&id);
    }
    fn on_ping(&self, id: u64, data: bytes::Bytes) {
        self.inner.on_ping(id, data);
    }
    fn on_pong(&self, id: u64, data: bytes::Bytes) {
        self.inner.on_pong(id, data);
    }
    fn on_drain(&self, id: u64) {
        self.inner.on_drain(id);
    }
    fn on_written(&self, id: u64, token: u32) {
        self.inner.on_written(id, token);
    }
    fn on_error(&self, id: u64, error: crate::error::Error, gate: ws::FailGate) {
        self.inner.on_error(id, error, gate);
    }
}
