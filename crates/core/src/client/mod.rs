//! The HTTP client (pooled keep-alive connections) and the WebSocket dialer.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::{Error, Result};

mod ws_dial;
pub use ws_dial::{dial_websocket, ClientStream, DialOptions, DialedWebSocket, WsTlsOptions};

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

pub(crate) fn authority(url: &url::Url) -> String {
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
