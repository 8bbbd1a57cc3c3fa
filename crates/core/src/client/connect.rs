//! The client's transport: TCP (or a unix socket), optionally through an HTTP proxy, optionally
//! TLS, with a connect timeout, a per-origin connection limit and counters for pool stats.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};
use crate::net::proxy::Proxy;
use crate::net::{tcp_connect, NetStream};
use crate::tls::{classify_io, TlsInfo};

/// What the client knows about the connection a response came over. Set in the response
/// extensions by hyper-util.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// Serial number of the connection within its client, from 1.
    pub id: u64,
    /// The handshake, for TLS connections.
    pub tls: Option<Arc<TlsInfo>>,
    /// The connection speaks HTTP/2 (negotiated by ALPN).
    pub h2: bool,
    /// Requests go through a forwarding proxy in absolute form.
    pub forward_proxy: bool,
}

/// Counters behind [`super::PoolStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub open: AtomicUsize,
    pub opened: AtomicU64,
}

struct OpenGuard(Arc<Counters>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client connection, as hyper-util's pool holds it.
pub struct Conn {
    // Fields drop in order: the counters and the permit are released before the socket closes,
    // so a peer that sees the close also sees the pool's counts already updated.
    _open: OpenGuard,
    _permit: Option<OwnedSemaphorePermit>,
    io: TokioIo<NetStream>,
    info: ConnInfo,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        let connected = Connected::new()
            .extra(self.info.clone())
            .proxy(self.info.forward_proxy);
        if self.info.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Makes connections for hyper-util's pooled client.
#[derive(Clone)]
pub(crate) struct Connector {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub tls_server_name: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub unix_socket: Option<PathBuf>,
    pub proxy: Option<Arc<Proxy>>,
    pub max_per_origin: Option<usize>,
    pub limits: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    pub counters: Arc<Counters>,
}

/// A connect failure carried through hyper-util's boxed error, taken back out by `classify`.
#[derive(Debug)]
pub(crate) struct ConnectError(pub Mutex<Option<Error>>);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.lock() {
            Ok(e) => match e.as_ref() {
                Some(e) => write!(f, "{e}"),
                None => f.write_str("connect failed"),
            },
            Err(_) => f.write_str("connect failed"),
        }
    }
}

impl std::error::Error for ConnectError {}

fn host_of(uri: &Uri) -> Result<(String, u16, bool)> {
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        other => {
            return Err(Error::InvalidUrl {
                url: uri.to_string(),
                reason: format!("unsupported scheme {other:?}"),
            })
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| Error::InvalidUrl {
            url: uri.to_string(),
            reason: "no host".into(),
        })?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok((host, port, https))
}

impl Connector {
    async fn connect(self, uri: Uri) -> Result<Conn> {
        let (host, port, https) = host_of(&uri)?;
        let origin = format!("{}://{host}:{port}", if https { "https" } else { "http" });
        let permit = match self.max_per_origin {
            Some(max) => {
                let sem = {
                    let mut map = self
                        .limits
                        .lock()
                        .map_err(|_| Error::Http("pool lock poisoned".into()))?;
                    map.entry(origin)
                        .or_insert_with(|| Arc::new(Semaphore::new(max)))
                        .clone()
                };
                Some(
                    sem.acquire_owned()
                        .await
                        .map_err(|_| Error::Http("pool closed".into()))?,
                )
            }
            None => None,
        };
        let work = self.open(host, port, https);
        let (stream, tls, forward_proxy) = match self.connect_timeout {
            Some(t) => tokio::time::timeout(t, work)
                .await
                .map_err(|_| Error::Timeout("connect"))??,
            None => work.await?,
        };
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        let id = self.counters.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let h2 = tls
            .as_ref()
            .is_some_and(|t| t.alpn_protocol.as_deref() == Some("h2"));
        Ok(Conn {
            io: TokioIo::new(stream),
            info: ConnInfo {
                id,
                tls,
                h2,
                forward_proxy,
            },
            _permit: permit,
            _open: OpenGuard(self.counters.clone()),
        })
    }

    async fn open(
        &self,
        host: String,
        port: u16,
        https: bool,
    ) -> Result<(NetStream, Option<Arc<TlsInfo>>, bool)> {
        #[cfg(unix)]
        if let Some(path) = &self.unix_socket {
            let unix = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|e| Error::from_io(e, &path.display().to_string()))?;
            if !https {
                return Ok((NetStream::Unix(unix), None, false));
            }
            return Err(Error::InvalidArgument(
                "https over a unix socket is not supported".into(),
            ));
        }
        let endpoint = self
            .proxy
            .as_ref()
            .and_then(|p| p.endpoint_for(&host, port, https));
        let tcp = match endpoint {
            // Plain http goes to the proxy in absolute form; https goes through a tunnel.
            Some(p) if !https => {
                let tcp = tcp_connect(&p.host, p.port).await?;
                return Ok((NetStream::Tcp(tcp), None, true));
            }
            Some(p) => p.connect_tunnel(&host, port).await?,
            None => tcp_connect(&host, port).await?,
        };
        if !https {
            return Ok((NetStream::Tcp(tcp), None, false));
        }
        let config = self
            .tls
            .clone()
            .ok_or_else(|| Error::InvalidArgument("TLS is not configured".into()))?;
        let sni = self.tls_server_name.clone().unwrap_or(host);
        let name = ServerName::try_from(sni.clone())
            .map_err(|_| Error::InvalidArgument(format!("invalid TLS server name {sni:?}")))?;
        let tls = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| classify_io(e).unwrap_or_else(|e| Error::from_io(e, &sni)))?;
        let info = Arc::new(TlsInfo::from_connection(tls.get_ref().1));
        Ok((NetStream::Tls(Box::new(tls)), Some(info), false))
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::result::Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            this.connect(uri)
                .await
                .map_err(|e| ConnectError(Mutex::new(Some(e))))
        })
    }
}
