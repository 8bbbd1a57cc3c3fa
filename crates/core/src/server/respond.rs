//! One HTTP request: framing checks, the handler slot, the call to the handler, and the response
//! as it goes out (`build_response`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Version};
use hyper::body::{Body as _, Incoming};
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use crate::error::Error;

use super::*;

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

/// One request, from framing checks to the response. Not an `async fn`, nor are
/// [`handle_http`] and `upgrade_websocket`: an `async fn` keeps its arguments twice in its state
/// (as captured and as moved into the body), and this future's size is that of every HTTP/2
/// stream's task and of every HTTP/1.1 connection's in-flight slot (hyper keeps that box for the
/// connection's life).
#[allow(clippy::manual_async_fn)]
pub(super) fn handle(
    ctx: Arc<Ctx>,
    peer: Option<SocketAddr>,
    tls: Option<Arc<ConnTls>>,
    req: hyper::Request<Incoming>,
) -> impl std::future::Future<Output = HttpResponse> {
    async move {
        let ctx = &ctx;
        ctx.stats.requests_total.fetch_add(1, Relaxed);
        let started = ctx.opts.log_answered.then(std::time::Instant::now);
        let mut answered = None;
        let mut res = if let Some(rejected) = reject_framing(&req) {
            rejected
        } else if ctx.ws.is_some() && (wants_websocket(req.headers()) || is_extended_connect(&req))
        {
            upgrade::upgrade_websocket(ctx, peer, req).await
        } else {
            match routes::route(ctx, &req).await {
                routes::Routed::Answered(res) => {
                    if let Some(started) = started {
                        answered = Some((
                            req.method().clone(),
                            req.uri().clone(),
                            req.version(),
                            started,
                        ));
                    }
                    res
                }
                routes::Routed::Handler(route) => {
                    let _in_flight = Gauge::up(&ctx.stats.requests_in_flight);
                    handle_http(ctx, peer, tls, req, route).await
                }
            }
        };
        if let Some(name) = &ctx.server_name {
            res.headers_mut().insert(header::SERVER, name.clone());
        }
        ctx.stats.count_response(res.status().as_u16());
        if let Some((method, uri, version, started)) = answered {
            ctx.http.on_answered(Answered {
                method,
                target: uri
                    .path_and_query()
                    .map_or_else(|| uri.path().to_string(), |pq| pq.as_str().to_string()),
                status: res.status().as_u16(),
                version,
                peer,
                duration: started.elapsed(),
            });
        }
        res
    }
}

/// Refuses HTTP/1 requests that request smugglers use: a transfer coding other than `chunked`,
/// and a missing or repeated `Host` (RFC 9112 sections 3.2 and 6.1). The connection is closed.
/// (hyper itself rejects conflicting `Content-Length` values, and for `Content-Length` together
/// with `Transfer-Encoding` it reads the body as chunked and closes the connection afterwards.)
pub(super) fn reject_framing(req: &hyper::Request<Incoming>) -> Option<HttpResponse> {
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
pub(super) fn valid_host(value: &[u8]) -> bool {
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
pub(super) async fn handler_slot(ctx: &Ctx) -> Option<Option<OwnedSemaphorePermit>> {
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

/// A request for the JS handler: its slot, its body, the call and the response. Not an
/// `async fn` (see [`handle`]).
#[allow(clippy::manual_async_fn)]
pub(super) fn handle_http<'a>(
    ctx: &'a Arc<Ctx>,
    peer: Option<SocketAddr>,
    tls: Option<Arc<ConnTls>>,
    mut req: hyper::Request<Incoming>,
    route: Option<RouteMatch>,
) -> impl std::future::Future<Output = HttpResponse> + 'a {
    async move {
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
            route,
        };
        let head = request.method == Method::HEAD;
        ctx.http.handle(request, Responder(tx));
        match rx.await {
            Ok(response) => build_response(response, head),
            Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
        }
    }
}

pub(super) fn body_error(ctx: &Ctx, e: &Error) -> HttpResponse {
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
    if let Some(reason) = response.reason {
        if let Ok(r) = hyper::ext::ReasonPhrase::try_from(reason.as_bytes()) {
            res.extensions_mut().insert(r);
        }
    }
    res
}

/// The one `Content-Length` of a header map: `Ok(None)` without one, `Err` for anything but a
/// single decimal number (repeats that agree count as one, as RFC 9110 section 8.6 allows).
pub(super) fn content_length(headers: &HeaderMap) -> std::result::Result<Option<u64>, ()> {
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
