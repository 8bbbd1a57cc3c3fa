//! The WebSocket client handshake (RFC 6455 section 4.1).

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use super::{authority, parse_url};
use crate::error::{Error, Result};
use crate::ws::WsLimits;

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
