//! WebSocket upgrade of HTTP/1.1 requests (RFC 6455 section 4.2).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::{lock, plain, Ctx, HttpResponse, Request, RequestBody, ResBody};
use crate::ws::{self, WsEvents};

/// True when the request asks to upgrade to WebSocket.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    has_token(header::UPGRADE, "websocket") && has_token(header::CONNECTION, "upgrade")
}

/// True when `key` is a valid `Sec-WebSocket-Key`: base64 of 16 bytes.
pub fn valid_ws_key(key: &[u8]) -> bool {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    key.len() == 24
        && key[22..] == *b"=="
        && key[..22].iter().all(|c| B64.contains(c))
        // The last character carries 2 data bits; the remaining 4 must be zero.
        && b"AQgw".contains(&key[21])
}

pub(crate) fn upgrade_websocket(
    ctx: &Arc<Ctx>,
    peer: Option<SocketAddr>,
    mut req: hyper::Request<Incoming>,
) -> HttpResponse {
    if req.method() != Method::GET || req.version() != Version::HTTP_11 {
        return plain(
            StatusCode::BAD_REQUEST,
            "WebSocket upgrade needs GET over HTTP/1.1\n",
        );
    }
    let headers = req.headers();
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
    let Some(key) = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|k| valid_ws_key(k.as_bytes()))
    else {
        return plain(
            StatusCode::BAD_REQUEST,
            "missing or invalid Sec-WebSocket-Key\n",
        );
    };
    let accept = derive_accept_key(key.as_bytes());
    let Some(ws_handler) = ctx.ws.clone() else {
        return plain(StatusCode::NOT_FOUND, "no WebSocket here\n");
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _) = req.into_parts();
    let request = Request {
        method: parts.method,
        target: parts.uri.to_string(),
        version: parts.version,
        headers: parts.headers,
        body: RequestBody::empty(),
        remote_addr: peer,
        upgrade: None,
    };
    let id = ctx.next_ws_id.fetch_add(1, Ordering::Relaxed);
    let ctx2 = ctx.clone();
    let limits = ctx.opts.ws.clone();
    let (handle, driver) = ws::channel(id);
    let registered = handle.clone();
    // Hold the registry lock while spawning so that the task's removal comes after the insert.
    let mut sockets = lock(&ctx.sockets);
    let task = tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            lock(&ctx2.sockets).remove(&id);
            return;
        };
        let stream = WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            Role::Server,
            Some(limits.config()),
        )
        .await;
        ws_handler.on_open(handle, request);
        let events: Arc<dyn WsEvents> = ws_handler;
        ws::run(stream, driver, events, limits).await;
        lock(&ctx2.sockets).remove(&id);
    });
    sockets.insert(id, (registered, task.abort_handle()));
    drop(sockets);
    let mut res = hyper::Response::new(ResBody::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}
