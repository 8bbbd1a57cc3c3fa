use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hypersock_core::client::{
    BodyReader, Client, ClientOptions, ClientRequest, Http2Mode, Progress, Proxy, RedirectContext,
    RedirectHook, RedirectMode, RedirectPolicy, RequestBody, RequestError, ResponseHead,
    RetryContext, RetryHook, RetryPolicy,
};
use hypersock_core::tls::{ClientTlsOptions, TlsVersion};
use hypersock_core::Error;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use crate::cookie::BindingCookieJar;
use crate::error::{Fail, JsResult, OrThrow, Outcome};
use crate::wire::headers::{flat_headers, pair_headers};

/// TLS options of a client, defaulted by the TS layer.
#[napi(object)]
pub struct BindingTlsOptions {
    pub ca: Option<Vec<String>>,
    pub default_roots: Option<bool>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub reject_unauthorized: Option<bool>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub server_name: Option<String>,
}

/// Options of `new BindingClient`, validated by the TS layer; what it leaves out takes the
/// engine's default (`ClientOptions::default()`).
#[napi(object)]
pub struct BindingClientOptions {
    pub connect_timeout_ms: Option<u32>,
    pub headers_timeout_ms: Option<u32>,
    pub body_timeout_ms: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub pool_idle_timeout_ms: Option<u32>,
    pub pool_max_idle_per_host: Option<u32>,
    pub max_connections_per_host: Option<u32>,
    pub max_response_size: Option<f64>,
    pub http2: Option<String>,
    pub tls: Option<BindingTlsOptions>,
    pub redirect_mode: Option<String>,
    pub max_redirects: Option<u32>,
    pub allow_insecure_redirect: Option<bool>,
    pub retry_attempts: Option<u32>,
    pub retry_base_delay_ms: Option<u32>,
    pub retry_max_delay_ms: Option<u32>,
    pub retry_statuses: Option<Vec<u32>>,
    pub retry_methods: Option<Vec<String>>,
    pub max_retry_after_ms: Option<u32>,
    pub decompress: Option<bool>,
    pub max_decoded_size: Option<f64>,
    pub proxy: Option<String>,
    pub proxy_from_env: bool,
    pub no_proxy: Option<Vec<String>>,
    pub unix_socket: Option<String>,
}

/// What the retry hook is told about a failed attempt.
#[napi(object)]
pub struct BindingRetryContext {
    pub attempt: u32,
    pub method: String,
    pub url: String,
    pub status: Option<u32>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub will_retry: bool,
    pub delay_ms: f64,
}

/// Told the bytes of an in-memory request body sent so far (`ClientRequest::upload_progress`).
type UploadProgressFn = ThreadsafeFunction<f64, (), f64, Status, false, true>;

/// The user's retry hook; the TS layer makes it always return a promise.
type RetryHookFn = ThreadsafeFunction<
    BindingRetryContext,
    Promise<bool>,
    BindingRetryContext,
    Status,
    false,
    true,
>;

fn retry_hook(f: RetryHookFn) -> RetryHook {
    let f = Arc::new(f);
    RetryHook(Arc::new(move |ctx: RetryContext| {
        let f = f.clone();
        Box::pin(async move {
            let fallback = ctx.will_retry;
            let args = BindingRetryContext {
                attempt: ctx.attempt,
                method: ctx.method,
                url: ctx.url,
                status: ctx.status.map(u32::from),
                error_code: ctx.error_code.map(str::to_owned),
                error_message: ctx.error_message,
                will_retry: ctx.will_retry,
                delay_ms: ctx.delay.as_millis() as f64,
            };
            // A hook that throws or rejects leaves the policy's decision in place.
            match f.call_async_catch(args).await {
                Ok(promise) => promise.await.unwrap_or(fallback),
                Err(_) => fallback,
            }
        })
    }))
}

/// What the redirect hook is told (see `RedirectContext`).
#[napi(object)]
pub struct BindingRedirectContext {
    pub from: String,
    pub status: u32,
    pub to: String,
    pub method: String,
    /// Flat `[name, value, ...]`.
    pub headers: Vec<String>,
}

/// The user's redirect hooks; the TS layer makes it return a promise of the next request's
/// headers (flat), `null` to keep them, or a rejection to refuse the redirect.
type RedirectHookFn = ThreadsafeFunction<
    BindingRedirectContext,
    Promise<Option<Vec<String>>>,
    BindingRedirectContext,
    Status,
    false,
    true,
>;

fn redirect_hook(f: RedirectHookFn) -> RedirectHook {
    let f = Arc::new(f);
    RedirectHook(Arc::new(move |ctx: RedirectContext| {
        let f = f.clone();
        Box::pin(async move {
            let args = BindingRedirectContext {
                from: ctx.from,
                status: u32::from(ctx.status),
                to: ctx.to,
                method: ctx.method,
                headers: flat_headers(ctx.headers.iter().map(|(n, v)| (n.as_str(), v))),
            };
            let promise = f
                .call_async_catch(args)
                .await
                .map_err(|e| format!("the beforeRedirect hook failed: {e}"))?;
            let headers = promise
                .await
                .map_err(|e| format!("a beforeRedirect hook refused the redirect: {}", e.reason))?;
            headers.map(pair_headers).transpose().map_err(|e| {
                format!(
                    "a beforeRedirect hook changed the headers wrongly: {}",
                    e.message
                )
            })
        })
    }))
}

/// One redirect that was followed.
#[napi(object)]
pub struct BindingHop {
    pub url: String,
    pub status: u32,
    pub location: String,
}

/// A response head, with the body inline when it was small, or a reader for the rest.
#[napi(object, object_from_js = false)]
pub struct BindingResponse {
    pub status: u32,
    pub status_text: String,
    pub headers: Vec<String>,
    /// The body, or its first part when `rest` is set.
    pub body: Buffer,
    /// Reader of the rest of the body, when it did not fit inline.
    pub rest: Option<BindingBodyReader>,
    pub url: String,
    pub version: String,
    /// JSON of the TLS handshake (protocol, cipher, ALPN, certificate chain), for https.
    pub tls: Option<String>,
    pub redirects: Vec<BindingHop>,
    pub attempts: u32,
    pub connection_id: f64,
}

/// Pool counters.
#[napi(object)]
pub struct BindingPoolStats {
    pub open: u32,
    pub opened: f64,
}

/// Cancels one request and the reading of its body.
#[napi]
pub struct BindingCancel {
    token: CancellationToken,
}

#[napi]
impl BindingCancel {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        BindingCancel {
            token: CancellationToken::new(),
        }
    }

    /// Cancels the request.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }
}

/// The writing end of a streamed request body. Bounded: `write` waits while the request is
/// behind.
#[napi]
pub struct BindingBodyWriter {
    tx: std::sync::Mutex<Option<mpsc::Sender<std::result::Result<Bytes, String>>>>,
    rx: std::sync::Mutex<Option<mpsc::Receiver<std::result::Result<Bytes, String>>>>,
}

#[napi]
impl BindingBodyWriter {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(4);
        BindingBodyWriter {
            tx: std::sync::Mutex::new(Some(tx)),
            rx: std::sync::Mutex::new(Some(rx)),
        }
    }

    fn sender(&self) -> Option<mpsc::Sender<std::result::Result<Bytes, String>>> {
        self.tx.lock().ok().and_then(|t| t.clone())
    }

    /// Sends one chunk; resolves to false when the request no longer reads (it ended or failed).
    #[napi]
    pub async fn write(&self, chunk: Buffer) -> bool {
        let Some(tx) = self.sender() else {
            return false;
        };
        tx.send(Ok(Bytes::copy_from_slice(&chunk))).await.is_ok()
    }

    /// Ends the body.
    #[napi]
    pub fn end(&self) {
        if let Ok(mut t) = self.tx.lock() {
            t.take();
        }
    }

    /// Fails the request with `reason`.
    #[napi]
    pub fn abort(&self, reason: String) {
        if let Some(tx) = self.sender() {
            let _ = tx.try_send(Err(reason));
        }
        self.end();
    }
}

/// Reads the rest of a response body.
#[napi]
pub struct BindingBodyReader {
    /// `None` once closed: the body, and with it the connection, is released.
    inner: Arc<Mutex<Option<BodyReader>>>,
    closed: CancellationToken,
}

fn body_closed() -> Fail {
    Fail::from(Error::Aborted)
}

#[napi]
impl BindingBodyReader {
    /// The next chunk (up to about `max` bytes), or null at the end.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub async fn read(&self, max: u32) -> Outcome<Option<Buffer>> {
        self.read_inner(max).await.into()
    }

    async fn read_inner(&self, max: u32) -> JsResult<Option<Buffer>> {
        let mut guard = self.inner.lock().await;
        let Some(reader) = guard.as_mut() else {
            return Ok(None);
        };
        let (data, done) = tokio::select! {
            r = reader.read_up_to(max as usize) => r?,
            () = self.closed.cancelled() => {
                guard.take();
                return Ok(None);
            }
        };
        if data.is_empty() && done {
            return Ok(None);
        }
        Ok(Some(Buffer::from(Vec::from(data))))
    }

    /// The whole rest of the body, failing past `max` bytes.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub async fn read_all(&self, max: f64) -> Outcome<Buffer> {
        self.read_all_inner(max).await.into()
    }

    async fn read_all_inner(&self, max: f64) -> JsResult<Buffer> {
        let mut guard = self.inner.lock().await;
        let Some(reader) = guard.as_mut() else {
            return Err(body_closed());
        };
        let data = tokio::select! {
            r = reader.read_all(max as usize) => r?,
            () = self.closed.cancelled() => {
                guard.take();
                return Err(body_closed());
            }
        };
        Ok(Buffer::from(Vec::from(data)))
    }

    /// Stops reading: the rest of the body is discarded and the connection released now (an
    /// HTTP/1.1 connection with body left unread is closed; an HTTP/2 stream is reset), not
    /// when the reader is garbage-collected. A read in flight ends as if the body had ended.
    #[napi]
    pub fn close(&self) {
        self.closed.cancel();
        if let Ok(mut guard) = self.inner.try_lock() {
            guard.take();
        }
    }
}

/// A pooled HTTP client.
#[napi]
pub struct BindingClient {
    pub(crate) inner: Client,
}

fn ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn invalid(msg: String) -> Fail {
    Fail::invalid_arg(msg)
}

/// The core's client TLS options from the JS ones (the HTTP client and the Redis adapter).
pub(crate) fn tls_options(t: Option<BindingTlsOptions>) -> JsResult<ClientTlsOptions> {
    let Some(t) = t else {
        return Ok(ClientTlsOptions::default());
    };
    let d = ClientTlsOptions::default();
    Ok(ClientTlsOptions {
        webpki_roots: t.default_roots.unwrap_or(t.ca.is_none()),
        ca: t.ca.unwrap_or_default(),
        cert: t.cert,
        key: t.key,
        reject_unauthorized: t.reject_unauthorized.unwrap_or(true),
        min_version: match t.min_version {
            Some(v) => TlsVersion::parse(&v)?,
            None => d.min_version,
        },
        max_version: t.max_version.map(|v| TlsVersion::parse(&v)).transpose()?,
        server_name: t.server_name,
    })
}

/// The proxy settings of a client or a WebSocket dial: a URL for both schemes, or the
/// environment (`HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY`), with an optional bypass list.
pub(crate) fn proxy_options(
    url: Option<&str>,
    from_env: bool,
    no_proxy: Option<&[String]>,
) -> JsResult<Option<Proxy>> {
    let mut proxy = match (url, from_env) {
        (Some(url), _) => Some(Proxy::all(url)?),
        (None, true) => Proxy::from_env(|k| std::env::var(k).ok())?,
        (None, false) => None,
    };
    if let (Some(p), Some(list)) = (proxy.as_mut(), no_proxy) {
        p.no_proxy = list.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
    }
    Ok(proxy)
}

/// The JS error of a failed request, with the attempts it made.
fn request_error(env: &Env, e: RequestError) -> napi::Error {
    Fail::from(e.error).with_attempts(e.attempts).throw(env)
}

fn head_to_js(head: ResponseHead, body: Bytes, rest: Option<BodyReader>) -> BindingResponse {
    BindingResponse {
        status: u32::from(head.status),
        status_text: head.status_text,
        headers: flat_headers(head.headers.iter().map(|(n, v)| (n.as_str(), v))),
        body: Buffer::from(Vec::from(body)),
        rest: rest.map(|r| BindingBodyReader {
            inner: Arc::new(Mutex::new(Some(r))),
            closed: CancellationToken::new(),
        }),
        url: head.url,
        version: head.version.to_string(),
        tls: head.tls.map(|t| t.to_json().to_string()),
        redirects: head
            .redirects
            .into_iter()
            .map(|h| BindingHop {
                url: h.url,
                status: u32::from(h.status),
                location: h.location,
            })
            .collect(),
        attempts: head.attempts,
        connection_id: head.connection_id as f64,
    }
}

#[napi]
impl BindingClient {
    /// The largest response body this client reads, in bytes.
    #[napi(getter)]
    pub fn max_response_size(&self) -> f64 {
        self.inner.options().max_response_size as f64
    }

    #[napi(
        constructor,
        ts_args_type = "options: BindingClientOptions, retryHook?: ((ctx: BindingRetryContext) => Promise<boolean>) | undefined | null, cookieJar?: BindingCookieJar | undefined | null, redirectHook?: ((ctx: BindingRedirectContext) => Promise<string[] | null>) | undefined | null"
    )]
    pub fn new(
        env: &Env,
        options: BindingClientOptions,
        retry_hook_fn: Option<RetryHookFn>,
        cookie_jar: Option<&BindingCookieJar>,
        redirect_hook_fn: Option<RedirectHookFn>,
    ) -> Result<Self> {
        Self::build(options, retry_hook_fn, cookie_jar, redirect_hook_fn).or_throw(env)
    }

    fn build(
        options: BindingClientOptions,
        retry_hook_fn: Option<RetryHookFn>,
        cookie_jar: Option<&BindingCookieJar>,
        redirect_hook_fn: Option<RedirectHookFn>,
    ) -> JsResult<Self> {
        let d = ClientOptions::default();
        let http2 = match options.http2.as_deref() {
            None => d.http2,
            Some("auto") => Http2Mode::Auto,
            Some("always") => Http2Mode::Always,
            Some("never") => Http2Mode::Never,
            Some(other) => {
                return Err(invalid(format!(
                    "http2 must be auto, always or never, not {other:?}"
                )))
            }
        };
        let mode = match options.redirect_mode.as_deref() {
            None => d.redirect.mode,
            Some(mode) => redirect_mode(mode)?,
        };
        let r = RetryPolicy::default();
        let mut retry = RetryPolicy {
            attempts: options.retry_attempts.map_or(r.attempts, |n| n.max(1)),
            base_delay: options.retry_base_delay_ms.map_or(r.base_delay, ms),
            max_delay: options.retry_max_delay_ms.map_or(r.max_delay, ms),
            max_retry_after: options.max_retry_after_ms.map_or(r.max_retry_after, ms),
            hook: retry_hook_fn.map(retry_hook),
            ..r
        };
        if let Some(statuses) = &options.retry_statuses {
            retry.statuses = statuses.iter().map(|s| *s as u16).collect();
        }
        if let Some(methods) = &options.retry_methods {
            retry.methods = methods
                .iter()
                .map(|m| http::Method::from_bytes(m.to_ascii_uppercase().as_bytes()))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| invalid("retry.methods has an invalid method".into()))?;
        }
        let proxy = proxy_options(
            options.proxy.as_deref(),
            options.proxy_from_env,
            options.no_proxy.as_deref(),
        )?;
        let opts = ClientOptions {
            connect_timeout: options.connect_timeout_ms.map(ms).or(d.connect_timeout),
            headers_timeout: options.headers_timeout_ms.map(ms),
            body_timeout: options.body_timeout_ms.map(ms),
            timeout: options.timeout_ms.map(ms),
            pool_idle_timeout: options.pool_idle_timeout_ms.map_or(d.pool_idle_timeout, ms),
            pool_max_idle_per_host: options
                .pool_max_idle_per_host
                .map_or(d.pool_max_idle_per_host, |n| n as usize),
            max_connections_per_host: options.max_connections_per_host.map(|n| n as usize),
            max_response_size: options
                .max_response_size
                .map_or(d.max_response_size, |n| n as usize),
            http2,
            tls: tls_options(options.tls)?,
            redirect: RedirectPolicy {
                mode,
                max: options.max_redirects.map_or(d.redirect.max, |n| n as usize),
                allow_insecure: options
                    .allow_insecure_redirect
                    .unwrap_or(d.redirect.allow_insecure),
                hook: redirect_hook_fn.map(redirect_hook),
            },
            retry,
            decompress: options.decompress.unwrap_or(d.decompress),
            max_decoded_size: options
                .max_decoded_size
                .map_or(d.max_decoded_size, |n| n as u64),
            proxy,
            unix_socket: options.unix_socket.map(Into::into),
            cookies: cookie_jar.map(|j| j.store()),
        };
        Ok(BindingClient {
            inner: Client::new(opts)?,
        })
    }

    /// The handle `clientRequest` takes.
    #[napi]
    pub fn request_handle(&self) -> External<Client> {
        External::new(self.inner.clone())
    }

    /// Connection counters of the pool.
    #[napi]
    pub fn pool_stats(&self) -> BindingPoolStats {
        let s = self.inner.pool_stats();
        BindingPoolStats {
            open: s.open as u32,
            opened: s.opened as f64,
        }
    }
}

/// What one request sets instead of its client's options.
#[napi(object)]
pub struct BindingRequestOverrides {
    /// `follow`, `manual` or `error`.
    pub redirect: Option<String>,
    pub timeout_ms: Option<u32>,
    pub retry_attempts: Option<u32>,
}

fn redirect_mode(mode: &str) -> JsResult<RedirectMode> {
    match mode {
        "follow" => Ok(RedirectMode::Follow),
        "manual" => Ok(RedirectMode::Manual),
        "error" => Ok(RedirectMode::Error),
        other => Err(invalid(format!(
            "redirect must be follow, manual or error, not {other:?}"
        ))),
    }
}

/// Sends a request on the client of `client` (`BindingClient.requestHandle`). The body is inline
/// (`body`) or streamed through `stream`; `cancel` aborts it. Bodies up to `inline_max` bytes
/// come back inline, larger ones through `rest`. A function rather than a method: it is called
/// for every request, and skips napi-rs's bookkeeping of method calls on class instances.
/// `upload_progress` is told the bytes of an in-memory body sent so far.
#[napi(
    ts_return_type = "Promise<BindingResponse>",
    ts_args_type = "client: ExternalObject<Client>, method: string, url: string, headers: Array<string>, body: Uint8Array | null | undefined, stream: BindingBodyWriter | null | undefined, cancel: BindingCancel | null | undefined, inlineMax: number, overrides?: BindingRequestOverrides | undefined | null, uploadProgress?: ((sent: number) => void) | undefined | null"
)]
#[allow(clippy::too_many_arguments)]
pub fn client_request<'env>(
    env: &'env Env,
    client: &External<Client>,
    method: String,
    url: String,
    headers: Vec<String>,
    body: Option<Uint8Array>,
    stream: Option<&BindingBodyWriter>,
    cancel: Option<&BindingCancel>,
    inline_max: u32,
    overrides: Option<BindingRequestOverrides>,
    upload_progress: Option<UploadProgressFn>,
) -> Result<PromiseRaw<'env, BindingResponse>> {
    let o = overrides.unwrap_or(BindingRequestOverrides {
        redirect: None,
        timeout_ms: None,
        retry_attempts: None,
    });
    let redirect = match o.redirect.as_deref().map(redirect_mode).transpose() {
        Ok(mode) => mode,
        Err(e) => return Err(e.throw(env)),
    };
    let body = match (body, stream) {
        (_, Some(writer)) => match writer.rx.lock().ok().and_then(|mut r| r.take()) {
            Some(rx) => RequestBody::Stream(rx),
            None => {
                return Err(invalid("this request body stream was already used".into()).throw(env))
            }
        },
        (Some(b), None) => RequestBody::Bytes(Bytes::copy_from_slice(&b)),
        (None, None) => RequestBody::Empty,
    };
    let req = ClientRequest {
        method,
        url,
        headers: pair_headers(headers).or_throw(env)?,
        body,
        cancel: cancel.map(|c| c.token.clone()),
        redirect,
        timeout: o.timeout_ms.map(ms),
        retry_attempts: o.retry_attempts,
        upload_progress: upload_progress.map(|f| {
            let f = Arc::new(f);
            let progress: Progress = Arc::new(move |sent, _total| {
                f.call(sent as f64, ThreadsafeFunctionCallMode::NonBlocking);
            });
            progress
        }),
    };
    let client = (**client).clone();
    env.spawn_future_with_callback(
        async move {
            // Boxed: the request's state machine is large, and the future napi spawns is moved
            // (copied) on its way into the runtime; unboxed, that copy was 6% of the JS thread's
            // time per request (`perf`, client GET at concurrency 64).
            let sending = Box::pin(client.send_counted(req));
            let (head, mut reader) = match sending.await {
                Ok(sent) => sent,
                Err(e) => return Ok(Err(e)),
            };
            Ok(match reader.read_ready(inline_max as usize) {
                Ok((data, done)) => Ok(head_to_js(
                    head,
                    data,
                    if done { None } else { Some(reader) },
                )),
                Err(error) => Err(RequestError {
                    error,
                    attempts: head.attempts,
                }),
            })
        },
        |env, outcome| outcome.map_err(|e| request_error(env, e)),
    )
}
