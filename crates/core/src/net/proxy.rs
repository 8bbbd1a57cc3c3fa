//! HTTP proxies: `CONNECT` tunnels for `https://` targets, absolute-form forwarding for `http://`,
//! basic auth, and `NO_PROXY` matching.

use tokio::net::TcpStream;

use super::{read_head, tcp_connect, write_all};
use crate::error::{Error, Result};
use crate::tls::info::base64;

/// One proxy server.
#[derive(Debug, Clone)]
pub struct ProxyEndpoint {
    /// Host name or IP of the proxy.
    pub host: String,
    /// Port of the proxy.
    pub port: u16,
    /// `Proxy-Authorization` value (`Basic ...`) from the proxy URL's user info.
    pub authorization: Option<String>,
}

impl ProxyEndpoint {
    /// Parses `http://user:pass@host:port`.
    pub fn parse(url: &str) -> Result<ProxyEndpoint> {
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let parsed = url::Url::parse(&with_scheme).map_err(|e| Error::InvalidUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        if parsed.scheme() != "http" {
            return Err(Error::InvalidUrl {
                url: url.to_string(),
                reason: "only http:// proxies are supported".into(),
            });
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::InvalidUrl {
                url: url.to_string(),
                reason: "no host".into(),
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let authorization = if parsed.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(parsed.username());
            let pass = decode(parsed.password().unwrap_or(""));
            Some(format!(
                "Basic {}",
                base64(format!("{user}:{pass}").as_bytes())
            ))
        };
        Ok(ProxyEndpoint {
            host,
            port: parsed.port().unwrap_or(80),
            authorization,
        })
    }

    /// Connects to this proxy and opens a `CONNECT` tunnel to `host:port` through it. Used by the
    /// HTTP client for `https://` and by the WebSocket dialer for `ws://` and `wss://`.
    pub async fn connect_tunnel(&self, host: &str, port: u16) -> Result<TcpStream> {
        let mut tcp = tcp_connect(&self.host, self.port).await?;
        self.tunnel(&mut tcp, host, port).await?;
        Ok(tcp)
    }

    /// Opens a `CONNECT` tunnel to `host:port` over `tcp`, already connected to this proxy.
    async fn tunnel(&self, tcp: &mut TcpStream, host: &str, port: u16) -> Result<()> {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(auth) = &self.authorization {
            req.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
        }
        req.push_str("\r\n");
        write_all(tcp, req.as_bytes()).await?;
        let head = read_head(tcp).await?;
        // `read_head` stops at the blank line, so the head is complete or malformed.
        let reply = Self::parse_connect_reply(&head)?
            .ok_or_else(|| Error::Http("the proxy sent a malformed response to CONNECT".into()))?;
        match reply.status {
            200..=299 => Ok(()),
            407 => Err(Error::ProxyRefused {
                status: 407,
                message: "proxy authentication required (give user:password in the proxy URL)"
                    .into(),
            }),
            status => Err(Error::ProxyRefused {
                status,
                message: format!("the proxy refused CONNECT {target}"),
            }),
        }
    }

    /// Longest reply head accepted from a proxy, blank line included.
    pub(crate) const MAX_CONNECT_REPLY_HEAD: usize = 16 * 1024;

    /// Parses the proxy's reply to `CONNECT` at the front of `buf`: `Ok(None)` while the head
    /// is incomplete, an error when it is malformed or longer than
    /// [`Self::MAX_CONNECT_REPLY_HEAD`] bytes. Bytes after the head (`head_len`) belong to the
    /// tunnel.
    pub(crate) fn parse_connect_reply(buf: &[u8]) -> Result<Option<ConnectReply>> {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut res = httparse::Response::new(&mut headers);
        let too_large = || Error::Http("proxy response head too large".into());
        match res.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                if head_len > Self::MAX_CONNECT_REPLY_HEAD {
                    return Err(too_large());
                }
                // httparse takes any 3 digits; a status starts with its class, 1 to 9.
                match res.code {
                    Some(status @ 100..) => Ok(Some(ConnectReply { status, head_len })),
                    _ => Err(Error::Http(
                        "the proxy sent an invalid status to CONNECT".into(),
                    )),
                }
            }
            // The head cannot end within the limit any more.
            Ok(httparse::Status::Partial) if buf.len() >= Self::MAX_CONNECT_REPLY_HEAD => {
                Err(too_large())
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(Error::Http(
                "the proxy sent a malformed response to CONNECT".into(),
            )),
        }
    }
}

/// A proxy's reply to `CONNECT` (see [`ProxyEndpoint::parse_connect_reply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnectReply {
    /// The status code (2xx: the tunnel is open).
    pub(crate) status: u16,
    /// Length of the head, blank line included.
    pub(crate) head_len: usize,
}

/// Proxy settings of a client.
#[derive(Debug, Clone, Default)]
pub struct Proxy {
    /// Proxy for `http://` targets (forwarding).
    pub http: Option<ProxyEndpoint>,
    /// Proxy for `https://` targets (`CONNECT` tunnel).
    pub https: Option<ProxyEndpoint>,
    /// Hosts reached directly: exact names, domain suffixes (`.example.com` or `example.com`
    /// matching subdomains too), IPs, `host:port`, or `*` for all.
    pub no_proxy: Vec<String>,
}

impl Proxy {
    /// One proxy for both schemes.
    pub fn all(url: &str) -> Result<Proxy> {
        let endpoint = ProxyEndpoint::parse(url)?;
        Ok(Proxy {
            http: Some(endpoint.clone()),
            https: Some(endpoint),
            no_proxy: Vec::new(),
        })
    }

    /// Reads `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` (either case) from `env`.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Option<Proxy>> {
        let get = |name: &str| {
            env(&name.to_ascii_lowercase())
                .or_else(|| env(name))
                .filter(|v| !v.trim().is_empty())
        };
        let http = get("HTTP_PROXY")
            .map(|u| ProxyEndpoint::parse(&u))
            .transpose()?;
        let https = get("HTTPS_PROXY")
            .map(|u| ProxyEndpoint::parse(&u))
            .transpose()?;
        if http.is_none() && https.is_none() {
            return Ok(None);
        }
        let no_proxy = get("NO_PROXY")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Proxy {
            http,
            https,
            no_proxy,
        }))
    }

    /// The proxy to use for `host:port`, or `None` to connect directly.
    pub fn endpoint_for(&self, host: &str, port: u16, https: bool) -> Option<&ProxyEndpoint> {
        let endpoint = if https {
            self.https.as_ref()
        } else {
            self.http.as_ref()
        }?;
        let host = host.to_ascii_lowercase();
        let with_port = format!("{host}:{port}");
        for rule in &self.no_proxy {
            if rule == "*" || *rule == host || *rule == with_port {
                return None;
            }
            let suffix = rule.trim_start_matches('*').trim_start_matches('.');
            if !suffix.is_empty() && host.ends_with(&format!(".{suffix}")) {
                return None;
            }
        }
        Some(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_auth_and_matches_no_proxy() {
        let p = ProxyEndpoint::parse("http://us%40r:p%3Ass@127.0.0.1:3128").expect("parse");
        assert_eq!(p.host, "127.0.0.1");
        assert_eq!(p.port, 3128);
        assert_eq!(p.authorization.as_deref(), Some("Basic dXNAcjpwOnNz"));
        let env = |k: &str| match k {
            "http_proxy" => Some("http://proxy:8080".to_string()),
            "NO_PROXY" => Some("localhost, .internal.test,10.0.0.1:81".to_string()),
            _ => None,
        };
        let proxy = Proxy::from_env(env).expect("env").expect("some");
        assert!(proxy.https.is_none());
        assert!(proxy.endpoint_for("example.com", 80, false).is_some());
        assert!(proxy.endpoint_for("example.com", 443, true).is_none());
        assert!(proxy.endpoint_for("localhost", 80, false).is_none());
        assert!(proxy.endpoint_for("a.internal.test", 80, false).is_none());
        assert!(proxy.endpoint_for("10.0.0.1", 81, false).is_none());
        assert!(proxy.endpoint_for("10.0.0.1", 80, false).is_some());
        assert!(ProxyEndpoint::parse("socks5://x:1").is_err());
    }

    fn reply(buf: &[u8]) -> Result<Option<ConnectReply>> {
        ProxyEndpoint::parse_connect_reply(buf)
    }

    #[test]
    fn connect_reply_complete() {
        let head = b"HTTP/1.1 200 Connection established\r\nProxy-Agent: x\r\n\r\n";
        let want = ConnectReply {
            status: 200,
            head_len: head.len(),
        };
        assert_eq!(reply(head).expect("ok"), Some(want));
        // Bytes after the blank line belong to the tunnel (a TLS ClientHello reply, say).
        let mut more = head.to_vec();
        more.extend_from_slice(&[0x16, 0x03, 0x01, 0x00]);
        assert_eq!(reply(&more).expect("ok"), Some(want));
        let refused = reply(b"HTTP/1.0 407 Proxy Authentication Required\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(refused.status, 407);
    }

    #[test]
    fn connect_reply_partial() {
        let head = b"HTTP/1.1 200 OK\r\nVia: proxy\r\n\r\n";
        for cut in 0..head.len() {
            assert_eq!(reply(&head[..cut]).expect("ok"), None, "prefix {cut}");
        }
    }

    #[test]
    fn connect_reply_oversize() {
        let limit = ProxyEndpoint::MAX_CONNECT_REPLY_HEAD;
        // An unfinished head at the limit can only end past it.
        let mut head = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        head.resize(limit - 1, b'a');
        assert_eq!(reply(&head).expect("under the limit"), None);
        head.push(b'a');
        let e = reply(&head).expect_err("at the limit");
        assert!(e.to_string().contains("too large"), "{e}");
        // A complete head one byte over the limit.
        let mut head = b"HTTP/1.1 200 OK\r\nX-Pad: ".to_vec();
        head.resize(limit - 3, b'a');
        head.extend_from_slice(b"\r\n\r\n");
        assert_eq!(head.len(), limit + 1);
        assert!(reply(&head).is_err());
        head.remove(30);
        assert_eq!(
            reply(&head)
                .expect("at the limit")
                .expect("complete")
                .head_len,
            limit
        );
    }

    #[test]
    fn connect_reply_malformed() {
        for bad in [
            &b"HTTP/1.1 2000 OK\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
            b"\x16\x03\x01\x00\x05hello",
        ] {
            let e = reply(bad).expect_err("malformed");
            assert_eq!(e.code(), "ERR_HTTP_PROTOCOL", "{bad:?}");
        }
    }

    /// Found by the `proxy_reply` fuzz target: httparse takes any 3 digits as a status, and a
    /// proxy answering `007` was reported as a refusal with status 7.
    #[test]
    fn connect_reply_status_below_100_is_malformed() {
        for bad in [
            &b"HTTP/1.1 007\n\n"[..],
            b"HTTP/1.1 000 OK\r\n\r\n",
            b"HTTP/1.1 099 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"proxy\"\r\n\r\n",
        ] {
            let e = reply(bad).expect_err("status below 100");
            assert_eq!(e.code(), "ERR_HTTP_PROTOCOL", "{bad:?}");
        }
        let r = reply(b"HTTP/1.1 100 Continue\r\n\r\n").expect("ok");
        assert_eq!(r.map(|r| r.status), Some(100));
    }
}
