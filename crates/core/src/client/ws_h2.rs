//! WebSockets over HTTP/2 (RFC 8441): an extended CONNECT stream on a connection of the client's
//! pool, instead of a TCP connection of its own.

use bytes::BytesMut;
use http::{Method, StatusCode, Version};
use hyper_util::rt::TokioIo;

use super::body::OutBody;
use super::ws_dial::{handshake_error, negotiated, offer, within_timeout};
use super::{authority, parse_url, Client, DialOptions, DialedWebSocket, Http2Mode};
use crate::error::{Error, Result};
use crate::net::NetStream;

/// When a WebSocket is opened over HTTP/2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WsHttp2 {
    /// On an HTTP/2 connection the client already holds to the origin, if there is one and its
    /// server takes extended CONNECT; otherwise over HTTP/1.1 (`wss://` only).
    Auto,
    /// Always over HTTP/2: by ALPN for `wss://`, by prior knowledge for `ws://`; fails when the
    /// server does not take extended CONNECT.
    Always,
    /// Never (the default).
    #[default]
    Never,
}

impl Client {
    /// Opens a WebSocket to `url` as an extended CONNECT stream on one of this client's HTTP/2
    /// connections (its TLS settings, not `opts.tls`/`opts.proxy`, apply). With
    /// [`WsHttp2::Auto`], `Ok(None)` means "dial over HTTP/1.1 instead": no HTTP/2 connection to
    /// the origin is open, or its server does not take extended CONNECT.
    pub async fn dial_websocket_h2(
        &self,
        url: &str,
        opts: &DialOptions,
        mode: WsHttp2,
    ) -> Result<Option<DialedWebSocket>> {
        let parsed = parse_url(url, &["ws", "wss"])?;
        let secure = parsed.scheme() == "wss";
        let target = format!(
            "{}://{}{}",
            if secure { "https" } else { "http" },
            authority(&parsed),
            &parsed[url::Position::BeforePath..url::Position::AfterQuery]
        );
        // Which pool, and whether a failure means "HTTP/1.1 instead".
        let (client, fallback) = match mode {
            WsHttp2::Never => return Ok(None),
            WsHttp2::Always => (&self.h2only, false),
            // Every connection of an HTTP/2-only client is one.
            WsHttp2::Auto if self.opts.http2 == Http2Mode::Always => (&self.h2only, true),
            WsHttp2::Auto => {
                let origin = format!("https://{}", authority(&parsed));
                let open = self.h2_gate.as_ref().is_some_and(|g| g.has_h2(&origin));
                if !secure || !open {
                    return Ok(None);
                }
                (&self.auto, true)
            }
        };
        let mut request = http::Request::builder()
            .method(Method::CONNECT)
            .uri(&target)
            .version(Version::HTTP_2)
            .body(OutBody::Full(None))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        offer(request.headers_mut(), opts, &opts.headers)?;
        request
            .extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        let work = async {
            let response = match client.request(request).await {
                Ok(r) => r,
                // The connection does not take extended CONNECT (its server did not send
                // SETTINGS_ENABLE_CONNECT_PROTOCOL): HTTP/1.1 instead, or the reason.
                Err(_) if fallback => return Ok(None),
                Err(e) => {
                    return Err(handshake_error(format!(
                        "the server does not take WebSockets over HTTP/2: {}",
                        super::classify(e, &authority(&parsed))
                    )))
                }
            };
            if response.version() != Version::HTTP_2 {
                return Err(handshake_error("the server did not answer over HTTP/2"));
            }
            if response.status() != StatusCode::OK {
                return Err(Error::WsHandshake(format!(
                    "server answered {}",
                    response.status()
                )));
            }
            let (protocol, extensions, deflate, headers) = negotiated(response.headers(), opts)?;
            let upgraded = hyper::upgrade::on(response)
                .await
                .map_err(handshake_error)?;
            Ok(Some(DialedWebSocket {
                stream: NetStream::H2(Box::new(TokioIo::new(upgraded))),
                leftover: BytesMut::new(),
                protocol,
                extensions,
                deflate,
                headers,
                url: parsed.to_string(),
            }))
        };
        within_timeout(opts, work).await
    }
}
