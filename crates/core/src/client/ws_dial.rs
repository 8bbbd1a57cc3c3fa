//! The WebSocket client handshake (RFC 6455 section 4.1) over hyper's HTTP/1.1 client
//! connection, with permessage-deflate negotiation (RFC 7692).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::StatusCode;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::parse_url;
use super::redirect::{is_redirect, CREDENTIAL_HEADERS};
use crate::error::{Error, Result};
use crate::net::proxy::Proxy;
use crate::net::{tcp_connect, NetStream};
use crate::tls::{classify_io, client_config, ClientTlsOptions};
use crate::ws::deflate::{accept_response, client_offer, parse_extensions};
use crate::ws::handshake::{accept_key, generate_key, has_token};
use crate::ws::{DeflateOptions, Negotiated, WsLimits};

/// The result of a successful WebSocket handshake, before the connection is driven.
pub struct DialedWebSocket {
    /// The connected socket; hand it to [`crate::ws::run`] with `leftover`.
    pub stream: NetStream,
    /// Bytes the server sent right after its 101 response.
    pub leftover: BytesMut,
    /// Subprotocol chosen by the server, empty when none.
    pub protocol: String,
    /// The `Sec-WebSocket-Extensions` the server accepted, empty when none.
    pub extensions: String,
    /// permessage-deflate parameters in use, if negotiated.
    pub deflate: Option<Negotiated>,
    /// Headers of the 101 response.
    pub headers: Vec<(String, Bytes)>,
    /// The URL that answered 101: the one dialed, or where its redirects led.
    pub url: String,
}

/// Options of [`dial_websocket`].
#[derive(Debug, Clone)]
pub struct DialOptions {
    /// Subprotocols offered, in order of preference.
    pub protocols: Vec<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Time allowed for TCP connect plus handshake.
    pub handshake_timeout: Option<Duration>,
    /// Message limits.
    pub limits: WsLimits,
    /// Offer permessage-deflate with these parameters.
    pub deflate: Option<DeflateOptions>,
    /// TLS settings for `wss://` (the shared client TLS options; ALPN is `http/1.1`).
    pub tls: ClientTlsOptions,
    /// HTTP proxy: both `ws://` (its `http` endpoint) and `wss://` (its `https` endpoint) go
    /// through a `CONNECT` tunnel, with `Proxy-Authorization` from the proxy URL's user info.
    pub proxy: Option<Proxy>,
    /// Follow a 301, 302, 303, 307 or 308 answer to the handshake to its `Location` (`http:` and
    /// `https:` targets become `ws:` and `wss:`). Off by default, as in `ws`. A redirect to
    /// another origin drops `Authorization` and `Cookie`; `wss:` to `ws:` is refused.
    pub follow_redirects: bool,
    /// Most redirects followed (default 10); one more fails with `ERR_TOO_MANY_REDIRECTS`.
    pub max_redirects: usize,
}

impl Default for DialOptions {
    /// A client's defaults: 10 s to connect and shake hands, messages up to 64 MiB (a client
    /// talks to servers it chose), permessage-deflate offered, as browsers do.
    fn default() -> Self {
        DialOptions {
            protocols: Vec::new(),
            headers: Vec::new(),
            handshake_timeout: Some(Duration::from_secs(10)),
            limits: WsLimits {
                max_message_size: 64 << 20,
                max_frame_size: 64 << 20,
                ..WsLimits::default()
            },
            deflate: Some(DeflateOptions::default()),
            tls: ClientTlsOptions::default(),
            proxy: None,
            follow_redirects: false,
            max_redirects: 10,
        }
    }
}

/// How one handshake ended.
enum Step {
    Open(DialedWebSocket),
    /// A redirect to follow, with its `Location`.
    Redirect(String),
}

/// The URL a handshake redirect leads to, or why it is refused.
fn redirect_target(from: &url::Url, location: &str) -> Result<url::Url> {
    let mut url = from.join(location).map_err(|e| {
        Error::RedirectRefused(format!(
            "the redirect Location {location:?} is not a valid URL ({e})"
        ))
    })?;
    let scheme = match url.scheme() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(Error::RedirectRefused(format!(
                "refused a redirect to the {other}: scheme"
            )))
        }
    };
    if url.scheme() != scheme {
        // Both are special schemes, so the change cannot fail.
        let _ = url.set_scheme(scheme);
    }
    if from.scheme() == "wss" && scheme == "ws" {
        return Err(Error::RedirectRefused(format!(
            "refused a redirect from wss to {url}"
        )));
    }
    url.set_fragment(None);
    Ok(url)
}

pub(super) fn handshake_error(e: impl std::fmt::Display) -> Error {
    Error::WsHandshake(e.to_string())
}

/// Connects to a `ws://` or `wss://` URL (IPv4, IPv6 or a DNS name), through the proxy of
/// [`DialOptions::proxy`] when one applies, and performs the opening handshake.
pub async fn dial_websocket(url: &str, opts: &DialOptions) -> Result<DialedWebSocket> {
    let mut current = parse_url(url, &["ws", "wss"])?;
    let work = async {
        let mut headers = opts.headers.clone();
        let mut followed = 0;
        loop {
            match dial_once(&current, opts, &headers).await? {
                Step::Open(mut dialed) => {
                    dialed.url = current.to_string();
                    return Ok(dialed);
                }
                Step::Redirect(location) => {
                    followed += 1;
                    if followed > opts.max_redirects {
                        return Err(Error::TooManyRedirects(format!(
                            "the WebSocket handshake was redirected more than {} times",
                            opts.max_redirects
                        )));
                    }
                    let next = redirect_target(&current, &location)?;
                    if next.origin() != current.origin() {
                        headers.retain(|(n, _)| {
                            !CREDENTIAL_HEADERS.iter().any(|c| n.eq_ignore_ascii_case(c))
                        });
                    }
                    current = next;
                }
            }
        }
    };
    within_timeout(opts, work).await
}

/// Connects to `parsed` and performs one opening handshake.
async fn dial_once(
    parsed: &url::Url,
    opts: &DialOptions,
    headers: &[(String, String)],
) -> Result<Step> {
    let secure = parsed.scheme() == "wss";
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = parsed
        .port_or_known_default()
        .unwrap_or(if secure { 443 } else { 80 });
    let proxy = opts
        .proxy
        .as_ref()
        .and_then(|p| p.endpoint_for(&host, port, secure));
    let tcp = match proxy {
        Some(p) => p.connect_tunnel(&host, port).await?,
        None => tcp_connect(&host, port).await?,
    };
    let stream = if secure {
        let cfg = client_config(&opts.tls, &[b"http/1.1"])?;
        let sni = opts.tls.server_name.clone().unwrap_or_else(|| host.clone());
        let name = ServerName::try_from(sni)
            .map_err(|e| Error::InvalidArgument(format!("invalid TLS server name: {e}")))?;
        let tls = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| classify_io(e).unwrap_or_else(|e| Error::from_io(e, &host)))?;
        NetStream::Tls(Box::new(tls))
    } else {
        NetStream::Tcp(tcp)
    };
    handshake(stream, parsed, opts, headers).await
}

async fn handshake(
    tcp: NetStream,
    url: &url::Url,
    opts: &DialOptions,
    headers: &[(String, String)],
) -> Result<Step> {
    let key = generate_key();
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    };
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut request = http::Request::get(target)
        .header(header::HOST, host)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_KEY, key.as_str())
        .body(Empty::<Bytes>::new())
        .map_err(|e| Error::InvalidArgument(e.to_string()))?;
    offer(request.headers_mut(), opts, headers)?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(super::MAX_RESPONSE_HEADERS)
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(handshake_error)?;
    let conn = tokio::spawn(conn.with_upgrades());
    let response = sender.send_request(request).await.map_err(|e| {
        conn.abort();
        if e.is_parse_too_large() {
            return handshake_error(super::RESPONSE_HEAD_TOO_LARGE);
        }
        handshake_error(e)
    })?;
    if opts.follow_redirects && is_redirect(response.status().as_u16()) {
        conn.abort();
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::WsHandshake(format!(
                    "server answered {} without a usable Location",
                    response.status()
                ))
            })?;
        return Ok(Step::Redirect(location.to_owned()));
    }
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        conn.abort();
        return Err(Error::WsHandshake(format!(
            "server answered {}",
            response.status()
        )));
    }
    let h = response.headers();
    let upgrade_ok = h
        .get(header::UPGRADE)
        .is_some_and(|v| has_token(v.as_bytes(), "websocket"));
    let connection_ok = h
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), "upgrade"));
    if !upgrade_ok || !connection_ok {
        conn.abort();
        return Err(handshake_error("101 response without Upgrade: websocket"));
    }
    if h.get(header::SEC_WEBSOCKET_ACCEPT).map(|v| v.as_bytes())
        != Some(accept_key(key.as_bytes()).as_bytes())
    {
        conn.abort();
        return Err(handshake_error("wrong Sec-WebSocket-Accept"));
    }
    let (protocol, extensions, deflate, headers) = match negotiated(h, opts) {
        Ok(n) => n,
        Err(e) => {
            conn.abort();
            return Err(e);
        }
    };
    let upgraded = hyper::upgrade::on(response)
        .await
        .map_err(handshake_error)?;
    let parts = upgraded
        .downcast::<TokioIo<NetStream>>()
        .map_err(|_| handshake_error("unexpected connection type after upgrade"))?;
    Ok(Step::Open(DialedWebSocket {
        stream: parts.io.into_inner(),
        leftover: BytesMut::from(&parts.read_buf[..]),
        protocol,
        extensions,
        deflate,
        headers,
        url: String::new(),
    }))
}

/// The header fields of an opening handshake besides those of its transport: the version, the
/// subprotocols and permessage-deflate offered, and the caller's own.
pub(super) fn offer(
    map: &mut http::HeaderMap,
    opts: &DialOptions,
    headers: &[(String, String)],
) -> Result<()> {
    map.insert(
        header::SEC_WEBSOCKET_VERSION,
        HeaderValue::from_static("13"),
    );
    if !opts.protocols.is_empty() {
        let value = HeaderValue::from_str(&opts.protocols.join(", "))
            .map_err(|_| Error::InvalidArgument("invalid subprotocol".into()))?;
        map.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    if let Some(d) = &opts.deflate {
        if let Ok(value) = HeaderValue::from_str(&client_offer(d)) {
            map.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
    }
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::InvalidArgument(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    Ok(())
}

/// `work` within the handshake timeout of `opts`.
pub(super) async fn within_timeout<T>(
    opts: &DialOptions,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match opts.handshake_timeout {
        Some(t) => tokio::time::timeout(t, work)
            .await
            .map_err(|_| Error::Timeout("WebSocket handshake"))?,
        None => work.await,
    }
}

/// What a handshake answer settles: the subprotocol, the extensions, the permessage-deflate
/// parameters and the answer's header fields.
type Settled = (String, String, Option<Negotiated>, Vec<(String, Bytes)>);

/// What a handshake answer settles, or why the answer is refused (a subprotocol or an extension
/// that was not offered).
pub(super) fn negotiated(h: &http::HeaderMap, opts: &DialOptions) -> Result<Settled> {
    let protocol = h
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !protocol.is_empty() && !opts.protocols.contains(&protocol) {
        return Err(Error::WsHandshake(format!(
            "server chose subprotocol {protocol:?} that was not offered"
        )));
    }
    if protocol.is_empty() && !opts.protocols.is_empty() {
        return Err(handshake_error(
            "server chose none of the offered subprotocols",
        ));
    }
    let ext_values: Vec<&str> = h
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let extensions = ext_values.join(", ");
    let items = parse_extensions(&extensions)
        .ok_or_else(|| handshake_error("malformed Sec-WebSocket-Extensions"))?;
    let deflate = match &opts.deflate {
        Some(d) => accept_response(&items, d).map_err(handshake_error)?,
        None if items.is_empty() => None,
        None => {
            return Err(handshake_error(
                "server accepted an extension that was not offered",
            ))
        }
    };
    let headers = h
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
        .collect();
    Ok((protocol, extensions, deflate, headers))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A proxy that answers every `CONNECT` with `status` and hands back the request heads.
    async fn refusing_proxy(status: &'static str) -> (String, tokio::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = tcp.read(&mut buf).await.unwrap_or(0);
                let _ = tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .await;
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = tcp.write_all(reply.as_bytes()).await;
            }
        });
        (format!("http://u%40x:p@127.0.0.1:{port}"), rx)
    }

    #[tokio::test]
    async fn dials_through_the_proxy_and_reports_refusals() {
        for (status, code) in [
            (
                "407 Proxy Authentication Required",
                "ERR_PROXY_AUTH_REQUIRED",
            ),
            ("502 Bad Gateway", "ERR_PROXY_TUNNEL"),
        ] {
            let (url, mut heads) = refusing_proxy(status).await;
            for target in ["ws://origin.test/chat", "wss://origin.test:8443/"] {
                let opts = DialOptions {
                    proxy: Some(Proxy::all(&url).expect("proxy")),
                    ..DialOptions::default()
                };
                let e = dial_websocket(target, &opts).await.err().expect("refused");
                assert_eq!(e.code(), code);
                let head = heads.recv().await.expect("CONNECT");
                let authority = if target.starts_with("wss") {
                    "origin.test:8443"
                } else {
                    "origin.test:80"
                };
                assert!(head.starts_with(&format!("CONNECT {authority} HTTP/1.1\r\n")));
                assert!(head.contains("Proxy-Authorization: Basic dUB4OnA=\r\n"));
            }
        }
    }

    #[test]
    fn redirect_targets_map_http_schemes_and_refuse_downgrades() {
        let from = url::Url::parse("wss://a.test/chat?x=1").expect("url");
        let to = |loc: &str| redirect_target(&from, loc).map(|u| u.to_string());
        assert_eq!(to("/next").expect("relative"), "wss://a.test/next");
        assert_eq!(
            to("https://b.test:8443/w#frag").expect("https"),
            "wss://b.test:8443/w"
        );
        assert_eq!(to("wss://b.test/").expect("wss"), "wss://b.test/");
        for refused in [
            "ws://b.test/",
            "http://b.test/",
            "ftp://b.test/",
            "http://[::1",
        ] {
            let e = to(refused).expect_err(refused);
            assert_eq!(e.code(), "ERR_REDIRECT_REFUSED", "{refused}");
        }
        let plain = url::Url::parse("ws://a.test/").expect("url");
        assert_eq!(
            redirect_target(&plain, "http://b.test/x")
                .expect("http")
                .as_str(),
            "ws://b.test/x"
        );
        assert_eq!(
            redirect_target(&plain, "https://b.test/")
                .expect("upgrade")
                .as_str(),
            "wss://b.test/"
        );
    }
}
