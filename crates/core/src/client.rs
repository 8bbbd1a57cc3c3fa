//! The HTTP client (pooled keep-alive connections) and the WebSocket dialer.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use crate::error::{Error, Result};
use crate::ws::WsLimits;

/// Options of [`Client::new`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Time allowed to establish a TCP connection.
    pub connect_timeout: Option<Duration>,
    /// Time allowed for the whole request, body included.
    pub timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per origin.
    pub pool_max_idle_per_host: usize,
    /// Largest response body read into memory.
    pub max_response_size: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            timeout: None,
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 64,
            max_response_size: 256 << 20,
        }
    }
}

/// A request for [`Client::request`].
#[derive(Debug, Default)]
pub struct ClientRequest {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The absolute `http://` URL.
    pub url: String,
    /// Header fields in order.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Bytes>,
}

/// A response read in full.
#[derive(Debug)]
pub struct ClientResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in the order received, repeated names kept.
    pub headers: Vec<(String, Bytes)>,
    /// The whole body.
    pub body: Bytes,
    /// The URL that was requested.
    pub url: String,
}

/// A pooled HTTP/1.1 client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    opts: ClientOptions,
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

fn authority(url: &url::Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or(80)
    )
}

impl Client {
    /// Makes a client with its own connection pool.
    pub fn new(opts: ClientOptions) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(opts.connect_timeout);
        connector.set_nodelay(true);
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(opts.pool_idle_timeout)
            .pool_max_idle_per_host(opts.pool_max_idle_per_host)
            .build(connector);
        Client { inner, opts }
    }

    /// Sends one request and reads the whole response.
    pub async fn request(&self, req: ClientRequest) -> Result<ClientResponse> {
        let url = parse_url(&req.url, &["http"])?;
        let peer = authority(&url);
        let uri: Uri =
            url.as_str()
                .parse()
                .map_err(|e: http::uri::InvalidUri| Error::InvalidUrl {
                    url: req.url.clone(),
                    reason: e.to_string(),
                })?;
        let method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("invalid method {:?}", req.method)))?;
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::InvalidArgument(format!("invalid header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::InvalidArgument(format!("invalid value for header {name}")))?;
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(req.body.unwrap_or_default()))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let max = self.opts.max_response_size;
        let work = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| classify(e, &peer))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Error::BodyTooLarge { limit: max }
                } else {
                    Error::ConnectionReset(format!("{peer}: {e}"))
                }
            })?;
            let mut headers = Vec::with_capacity(parts.headers.len());
            for (name, value) in parts.headers.iter() {
                headers.push((
                    name.as_str().to_owned(),
                    Bytes::copy_from_slice(value.as_bytes()),
                ));
            }
            Ok(ClientResponse {
                status: parts.status.as_u16(),
                headers,
                body: body.to_bytes(),
                url: req.url.clone(),
            })
        };
        match self.opts.timeout {
            Some(t) => tokio::time::timeout(t, work)
                .await
                .map_err(|_| Error::Timeout("request"))?,
            None => work.await,
        }
    }
}

fn classify(err: hyper_util::client::legacy::Error, peer: &str) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Error::Timeout("connect");
            }
            if err.is_connect()
                && io.kind() != std::io::ErrorKind::ConnectionRefused
                && e.to_string().contains("lookup")
            {
                return Error::Dns(peer.to_string());
            }
            return Error::from_io(std::io::Error::new(io.kind(), io.to_string()), peer);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return Error::ConnectionReset(format!("{peer}: {h}"));
            }
            if h.is_parse() {
                return Error::Http(h.to_string());
            }
        }
        source = e.source();
    }
    if err.is_connect() {
        let text = format!("{err:?}");
        if text.contains("dns") {
            return Error::Dns(peer.to_string());
        }
        if text.contains("timed out") || text.contains("Timeout") {
            return Error::Timeout("connect");
        }
    }
    Error::Http(err.to_string())
}

/// The result of a successful WebSocket handshake, before the connection is driven.
pub struct DialedWebSocket {
    /// The framed stream; hand it to [`crate::ws::run`].
    pub stream: WebSocketStream<TcpStream>,
    /// Subprotocol chosen by the server, empty when none.
    pub protocol: String,
    /// Headers of the 101 response.
    pub headers: Vec<(String, Bytes)>,
}

/// Options of [`dial_websocket`].
#[derive(Debug, Clone, Default)]
pub struct DialOptions {
    /// Subprotocols offered, in order of preference.
    pub protocols: Vec<String>,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Time allowed for TCP connect plus handshake.
    pub handshake_timeout: Option<Duration>,
    /// Message limits.
    pub limits: WsLimits,
}

/// Connects to a `ws://` URL and performs the opening handshake.
pub async fn dial_websocket(url: &str, opts: &DialOptions) -> Result<DialedWebSocket> {
    let parsed = parse_url(url, &["ws"])?;
    let peer = authority(&parsed);
    let mut request = parsed
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    for (name, value) in &opts.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::InvalidArgument(format!("invalid value for header {name}")))?;
        request.headers_mut().append(name, value);
    }
    if !opts.protocols.is_empty() {
        let value = HeaderValue::from_str(&opts.protocols.join(", "))
            .map_err(|_| Error::InvalidArgument("invalid subprotocol".into()))?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    let work = async {
        let tcp = TcpStream::connect(&peer)
            .await
            .map_err(|e| Error::from_io(e, &peer))?;
        let _ = tcp.set_nodelay(true);
        let (stream, response) =
            tokio_tungstenite::client_async_with_config(request, tcp, Some(opts.limits.config()))
                .await
                .map_err(|e| match e {
                    WsError::Http(res) => {
                        Error::WsHandshake(format!("server answered {}", res.status()))
                    }
                    WsError::Io(io) => Error::from_io(io, &peer),
                    other => Error::WsHandshake(other.to_string()),
                })?;
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !protocol.is_empty() && !opts.protocols.contains(&protocol) {
            return Err(Error::WsHandshake(format!(
                "server chose subprotocol {protocol:?} that was not offered"
            )));
        }
        if protocol.is_empty() && !opts.protocols.is_empty() {
            return Err(Error::WsHandshake(
                "server chose none of the offered subprotocols".into(),
            ));
        }
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), Bytes::copy_from_slice(v.as_bytes())))
            .collect();
        Ok(DialedWebSocket {
            stream,
            protocol,
            headers,
        })
    };
    match opts.handshake_timeout {
        Some(t) => tokio::time::timeout(t, work)
            .await
            .map_err(|_| Error::Timeout("WebSocket handshake"))?,
        None => work.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_url_checks_scheme_and_host() {
        assert!(parse_url("http://127.0.0.1:1/x", &["http"]).is_ok());
        assert_eq!(
            parse_url("ftp://x/", &["http"]).unwrap_err().code(),
            "ERR_INVALID_URL"
        );
        assert_eq!(
            parse_url("not a url", &["http"]).unwrap_err().code(),
            "ERR_INVALID_URL"
        );
    }
}
