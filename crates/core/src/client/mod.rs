//! The HTTP client: pooled keep-alive HTTP/1.1 and HTTP/2 connections over TCP, TLS, unix
//! sockets and proxies, with timeouts, cancellation, redirects, retry, cookies and decompression.
//!
//! [`Client::send`] returns the response head and a [`BodyReader`]; [`Client::request`] reads the
//! whole body too. The WebSocket dialer lives beside it ([`dial_websocket`]).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::tls::{client_config, ClientTlsOptions, TlsInfo};

mod body;
mod connect;
mod decode;
pub(crate) mod redirect;
mod retry;
mod ws_dial;
mod ws_h2;

pub use crate::net::proxy::{Proxy, ProxyEndpoint};
pub use body::{BodyReader, Progress, RequestBody, UPLOAD_CHUNK};
pub use connect::ConnInfo;
pub use decode::{Decoder, ACCEPT_ENCODING, DECODED_CHUNK};
pub use redirect::{
    Hop, RedirectContext, RedirectHook, RedirectMode, RedirectPolicy, RedirectVerdict,
};
pub use retry::{is_retryable_error, parse_retry_after, RetryContext, RetryHook, RetryPolicy};
pub use ws_dial::{dial_websocket, DialOptions, DialedWebSocket};
pub use ws_h2::WsHttp2;

use body::OutBody;
use connect::{ConnectError, Connector, Counters};

/// When to speak HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http2Mode {
    /// HTTP/2 when TLS ALPN picks it, HTTP/1.1 otherwise (the default).
    #[default]
    Auto,
    /// HTTP/2 always: by ALPN over TLS, by prior knowledge (h2c) over plain TCP.
    Always,
    /// HTTP/1.1 only.
    Never,
}

/// Sees every request and response of a client to send and store cookies.
pub trait CookieStore: Send + Sync {
    /// The `Cookie` header value for a request to `url`, if any cookie applies.
    fn cookie_header(&self, url: &url::Url) -> Option<String>;
    /// Stores the `Set-Cookie` values of a response from `url`.
    fn store(&self, url: &url::Url, set_cookies: &[&str]);
}

/// Options of [`Client::new`].
#[derive(Clone)]
pub struct ClientOptions {
    /// Time allowed to open a connection (TCP, proxy tunnel and TLS handshake).
    pub connect_timeout: Option<Duration>,
    /// Time allowed until the response head has come, per attempt.
    pub headers_timeout: Option<Duration>,
    /// Longest silence while reading the response body.
    pub body_timeout: Option<Duration>,
    /// Time allowed for the whole request (redirects, retries and body included).
    pub timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per origin.
    pub pool_max_idle_per_host: usize,
    /// Most connections open at once per origin; more requests wait. `None`: no limit.
    pub max_connections_per_host: Option<usize>,
    /// Largest response body read into memory by [`Client::request`] (after decoding).
    pub max_response_size: usize,
    /// When to use HTTP/2.
    pub http2: Http2Mode,
    /// TLS settings.
    pub tls: ClientTlsOptions,
    /// Redirect rules.
    pub redirect: RedirectPolicy,
    /// Retry rules.
    pub retry: RetryPolicy,
    /// Decode gzip, deflate, br and zstd bodies (and send `Accept-Encoding`).
    pub decompress: bool,
    /// Largest decoded body; a bigger one fails with `ERR_BODY_TOO_LARGE` (bomb guard).
    pub max_decoded_size: u64,
    /// Proxies.
    pub proxy: Option<Proxy>,
    /// Connect every request to this unix socket instead of the URL's host.
    pub unix_socket: Option<PathBuf>,
    /// Cookies sent and stored automatically, redirects included.
    pub cookies: Option<Arc<dyn CookieStore>>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("http2", &self.http2)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            headers_timeout: None,
            body_timeout: None,
            timeout: None,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 64,
            max_connections_per_host: None,
            max_response_size: 256 << 20,
            http2: Http2Mode::Auto,
            tls: ClientTlsOptions::default(),
            redirect: RedirectPolicy::default(),
            retry: RetryPolicy::default(),
            decompress: true,
            max_decoded_size: 1 << 30,
            proxy: None,
            unix_socket: None,
            cookies: None,
        }
    }
}

/// A request for [`Client::request`] / [`Client::send`].
#[derive(Default)]
pub struct ClientRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The absolute `http://` or `https://` URL.
    pub url: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: RequestBody,
    /// Cancels the request (and the reading of its body) when triggered.
    pub cancel: Option<CancellationToken>,
    /// This request's redirect mode instead of the client's (`redirect.mode`).
    pub redirect: Option<RedirectMode>,
    /// This request's time limit instead of the client's (`timeout`).
    pub timeout: Option<Duration>,
    /// This request's attempts instead of the client's (`retry.attempts`).
    pub retry_attempts: Option<u32>,
    /// Told `(sent, Some(total))` as an in-memory body goes out, every [`UPLOAD_CHUNK`] bytes and
    /// once at its end (again from 0 when a redirect or retry sends it anew). A streamed body's
    /// caller sees its own chunks go.
    pub upload_progress: Option<Progress>,
}

impl std::fmt::Debug for ClientRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &self.headers)
            .field("body", &self.body)
            .field("redirect", &self.redirect)
            .field("timeout", &self.timeout)
            .field("retry_attempts", &self.retry_attempts)
            .field("upload_progress", &self.upload_progress.is_some())
            .finish_non_exhaustive()
    }
}

/// The head of a response, with what it took to get it.
#[derive(Debug)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// The reason phrase the server sent (HTTP/1.x; empty over HTTP/2, which has none).
    pub status_text: String,
    /// Header fields in the order received, repeated names kept.
    pub headers: Vec<(String, Bytes)>,
    /// The final URL (after redirects).
    pub url: String,
    /// `HTTP/1.1` or `HTTP/2`.
    pub version: &'static str,
    /// The TLS handshake of the connection, for `https://`.
    pub tls: Option<Arc<TlsInfo>>,
    /// Redirects followed, in order.
    pub redirects: Vec<Hop>,
    /// Attempts made for the last hop (1 when it was not retried).
    pub attempts: u32,
    /// Serial number of the connection within the client.
    pub connection_id: u64,
}

/// A failed [`Client::send_counted`]: the error, and how many attempts were made.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct RequestError {
    /// The failure (after retries, the last attempt's).
    pub error: Error,
    /// Attempts made for the last hop, retries included (as [`ResponseHead::attempts`]); 0 when
    /// the request failed before its first attempt (a bad URL or method).
    pub attempts: u32,
}

/// A response read in full.
#[derive(Debug)]
pub struct ClientResponse {
    /// The head.
    pub head: ResponseHead,
    /// The whole (decoded) body.
    pub body: Bytes,
}

/// Connection counters of a client.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// Connections open now (busy or idle in the pool).
    pub open: usize,
    /// Connections opened since the client was made.
    pub opened: u64,
}

type Hyper = hyper_util::client::legacy::Client<Connector, OutBody>;

/// A pooled HTTP client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    auto: Hyper,
    h2only: Hyper,
    /// The ALPN pool's view of its HTTP/2 connections (for WebSockets over HTTP/2).
    h2_gate: Option<Arc<connect::H2Gate>>,
    counters: Arc<Counters>,
    opts: Arc<ClientOptions>,
}

/// Parses an absolute URL and checks its scheme against `schemes`.
pub fn parse_url(url: &str, schemes: &[&str]) -> Result<url::Url> {
    let parsed = url::Url::parse(url).map_err(|e| Error::InvalidUrl {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(Error::InvalidUrl {
            url: url.to_string(),
            reason: format!(
                "scheme {:?} is not supported here (use {})",
                parsed.scheme(),
                schemes.join(" or ")
            ),
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidUrl {
            url: url.to_string(),
            reason: "no host".into(),
        });
    }
    Ok(parsed)
}

pub(crate) fn authority(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    )
}

/// Idempotent methods (RFC 9110 section 9.2.2).
fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

struct Attempt {
    head: ResponseHead,
    body: BodyReader,
}

impl Client {
    /// Makes a client with its own connection pool. Fails when the TLS settings are not valid.
    pub fn new(opts: ClientOptions) -> Result<Client> {
        let alpn: &[&[u8]] = match opts.http2 {
            Http2Mode::Auto => &[b"h2", b"http/1.1"],
            Http2Mode::Always => &[b"h2"],
            Http2Mode::Never => &[b"http/1.1"],
        };
        let tls = client_config(&opts.tls, alpn)?;
        let counters = Arc::new(Counters::default());
        let connector = Connector {
            tls: Some(tls),
            tls_server_name: opts.tls.server_name.clone(),
            connect_timeout: opts.connect_timeout,
            unix_socket: opts.unix_socket.clone(),
            proxy: opts.proxy.clone().map(Arc::new),
            max_per_origin: opts.max_connections_per_host,
            limits: Arc::new(Mutex::new(Default::default())),
            counters: counters.clone(),
            h2_gate: None,
        };
        let h2_gate: Option<Arc<connect::H2Gate>> =
            (opts.http2 == Http2Mode::Auto).then(Arc::default);
        let build = |h2only: bool| {
            let mut connector = connector.clone();
            // hyper-util coalesces an HTTP/2-only pool itself; the ALPN pool needs the gate.
            if !h2only {
                connector.h2_gate = h2_gate.clone();
            }
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(opts.pool_idle_timeout)
                .pool_max_idle_per_host(opts.pool_max_idle_per_host)
                .http2_only(h2only)
                .http1_max_headers(MAX_RESPONSE_HEADERS)
                // hyper's adaptive window (BDP pings) dropped whole connections carrying many
                // busy WebSocket streams; its fixed windows (2 MiB per stream, 5 MiB per
                // connection) keep loopback and LAN transfers at full speed.
                .http2_adaptive_window(false)
                .retry_canceled_requests(true)
                .build(connector)
        };
        Ok(Client {
            auto: build(false),
            h2only: build(true),
            h2_gate,
            counters,
            opts: Arc::new(opts),
        })
    }

    /// The options this client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    /// Connection counters.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: self.counters.open.load(Ordering::Relaxed),
            opened: self.counters.opened.load(Ordering::Relaxed),
        }
    }

    /// Sends one request and reads the whole response body.
    pub async fn request(&self, req: ClientRequest) -> Result<ClientResponse> {
        let max = self.opts.max_response_size;
        let (head, mut body) = self.send(req).await?;
        let body = body.read_all(max).await?;
        Ok(ClientResponse { head, body })
    }

    /// Sends one request, following redirects and retrying as configured, and returns the head of
    /// the final response with a reader of its body.
    pub async fn send(&self, req: ClientRequest) -> Result<(ResponseHead, BodyReader)> {
        self.send_counted(req).await.map_err(|e| e.error)
    }

    /// [`Client::send`], telling on failure how many attempts were made (the response tells it
    /// in [`ResponseHead::attempts`]).
    pub async fn send_counted(
        &self,
        req: ClientRequest,
    ) -> std::result::Result<(ResponseHead, BodyReader), RequestError> {
        let attempts = AtomicU32::new(0);
        self.send_inner(req, &attempts)
            .await
            .map_err(|error| RequestError {
                error,
                attempts: attempts.load(Ordering::Relaxed),
            })
    }

    async fn send_inner(
        &self,
        req: ClientRequest,
        attempts: &AtomicU32,
    ) -> Result<(ResponseHead, BodyReader)> {
        let deadline = req
            .timeout
            .or(self.opts.timeout)
            .map(|t| Instant::now() + t);
        let cancel = req.cancel.clone();
        let work = self.follow(req, deadline, attempts);
        let work = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d, work)
                    .await
                    .map_err(|_| Error::Timeout("request"))?,
                None => work.await,
            }
        };
        match cancel {
            Some(token) => tokio::select! {
                biased;
                _ = token.cancelled() => Err(Error::Aborted),
                r = work => r,
            },
            None => work.await,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn attempt(
        &self,
        method: &Method,
        url: &url::Url,
        headers: &[(String, String)],
        body: OutBody,
        cookie: Option<&str>,
        deadline: Option<Instant>,
        cancel: Option<&CancellationToken>,
    ) -> Result<Attempt> {
        let uri: Uri =
            url.as_str()
                .parse()
                .map_err(|e: http::uri::InvalidUri| Error::InvalidUrl {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        let mut builder = http::Request::builder().method(method.clone()).uri(uri);
        let mut has_accept_encoding = false;
        let mut has_cookie = false;
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::InvalidArgument(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidArgument(format!("invalid value for header {name}")))?;
            has_accept_encoding |= name == http::header::ACCEPT_ENCODING;
            has_cookie |= name == http::header::COOKIE;
            builder = builder.header(name, value);
        }
        if let Some(cookie) = cookie.filter(|_| !has_cookie) {
            let value = HeaderValue::from_str(cookie).map_err(|_| {
                Error::InvalidArgument("cookie jar produced an invalid header".into())
            })?;
            builder = builder.header(http::header::COOKIE, value);
        }
        let decompress = self.opts.decompress && !has_accept_encoding;
        if decompress {
            builder = builder.header(
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_static(ACCEPT_ENCODING),
            );
        }
        if url.scheme() == "http" {
            if let Some(auth) = self
                .opts
                .proxy
                .as_ref()
                .and_then(|p| {
                    p.endpoint_for(
                        url.host_str().unwrap_or_default(),
                        url.port_or_known_default().unwrap_or(80),
                        false,
                    )
                })
                .and_then(|e| e.authorization.as_ref())
            {
                if self.opts.unix_socket.is_none() {
                    let value = HeaderValue::from_str(auth)
                        .map_err(|_| Error::InvalidArgument("invalid proxy credentials".into()))?;
                    builder = builder.header(http::header::PROXY_AUTHORIZATION, value);
                }
            }
        }
        let request = builder
            .body(body)
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let peer = authority(url);
        let client = match self.opts.http2 {
            Http2Mode::Always => &self.h2only,
            _ => &self.auto,
        };
        let pending = client.request(request);
        let response = match self.opts.headers_timeout {
            Some(t) => tokio::time::timeout(t, pending)
                .await
                .map_err(|_| Error::Timeout("headers"))?,
            None => pending.await,
        }
        .map_err(|e| classify(e, &peer))?;
        let (parts, incoming) = response.into_parts();
        let info = parts.extensions.get::<ConnInfo>().cloned();
        let mut out_headers = Vec::with_capacity(parts.headers.len());
        let mut decoder = None;
        let no_body = *method == Method::HEAD
            || parts.status == http::StatusCode::NO_CONTENT
            || parts.status == http::StatusCode::NOT_MODIFIED;
        for (name, value) in parts.headers.iter() {
            if decompress && !no_body && name == http::header::CONTENT_ENCODING && decoder.is_none()
            {
                if let Ok(enc) = value.to_str() {
                    // Only a single coding is decoded; a chain is passed on as it is.
                    if !enc.contains(',') {
                        decoder = Decoder::for_encoding(enc, self.opts.max_decoded_size);
                    }
                }
            }
            out_headers.push((
                name.as_str().to_owned(),
                Bytes::copy_from_slice(value.as_bytes()),
            ));
        }
        if decoder.is_some() {
            // The body handed on is decoded: its encoding and length no longer apply.
            out_headers.retain(|(n, _)| n != "content-encoding" && n != "content-length");
        }
        let version = match parts.version {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        // hyper keeps a reason phrase only when it is not the standard one for the status.
        let status_text = match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
            Some(reason) => String::from_utf8_lossy(reason.as_bytes()).into_owned(),
            None if parts.version == http::Version::HTTP_2 => String::new(),
            None => parts.status.canonical_reason().unwrap_or("").to_owned(),
        };
        let body = BodyReader::new(
            incoming,
            decoder,
            self.opts.body_timeout,
            deadline,
            cancel.cloned(),
            None,
        );
        Ok(Attempt {
            head: ResponseHead {
                status: parts.status.as_u16(),
                status_text,
                headers: out_headers,
                url: url.to_string(),
                version,
                tls: info.as_ref().and_then(|i| i.tls.clone()),
                redirects: Vec::new(),
                attempts: 1,
                connection_id: info.map(|i| i.id).unwrap_or(0),
            },
            body,
        })
    }
}

/// Most header fields in a response head (hyper's default of 100 is far below what browsers and
/// undici accept).
pub(crate) const MAX_RESPONSE_HEADERS: usize = 1024;

/// Why hyper refused a response head as too large.
pub(crate) const RESPONSE_HEAD_TOO_LARGE: &str =
    "the response head is too large: more than 1024 header fields, or over 400 KiB";

fn classify(err: hyper_util::client::legacy::Error, peer: &str) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(c) = e.downcast_ref::<ConnectError>() {
            if let Ok(mut slot) = c.0.lock() {
                if let Some(inner) = slot.take() {
                    return inner;
                }
            }
        }
        if let Some(b) = e.downcast_ref::<body::StreamBodyError>() {
            return Error::InvalidArgument(b.to_string());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return crate::tls::classify_rustls(tls);
            }
            if let Some(tls) = crate::tls::classify_alert_text(io) {
                return tls;
            }
            return Error::from_io(std::io::Error::new(io.kind(), io.to_string()), peer);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return Error::ConnectionReset(format!("{peer}: {h}"));
            }
            if h.is_parse_too_large() {
                return Error::Http(RESPONSE_HEAD_TOO_LARGE.into());
            }
            if h.is_parse() || h.is_parse_status() {
                return Error::Http(h.to_string());
            }
        }
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            if h2.is_go_away() || h2.is_io() || h2.is_remote() {
                return Error::ConnectionReset(format!("{peer}: {h2}"));
            }
            return Error::Http(h2.to_string());
        }
        source = e.source();
    }
    Error::Http(err.to_string())
}

#[cfg(test)]
mod tests;
