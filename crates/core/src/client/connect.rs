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
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
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
    _probe: Option<Probe>,
    io: TokioIo<NetStream>,
    info: ConnInfo,
}

/// Where the first connection to an origin that may answer ALPN with `h2` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Being opened; other connects to the origin wait for the outcome.
    Connecting,
    /// Open and speaking HTTP/2: hyper-util's pool shares it, so the connects that waited stand
    /// down (their requests take it from the pool).
    H2,
    /// The origin answered HTTP/1.1: connections are opened side by side.
    H1,
    /// Failed: the connects that waited open their own (each then fails or not on its own).
    Failed,
    /// The HTTP/2 connection closed: the next connect opens a new one.
    Closed,
}

/// HTTP/2 connection coalescing for the pool that negotiates the protocol by ALPN. hyper-util's
/// pool learns that a connection speaks HTTP/2 only once it is open, so concurrent first requests
/// to an origin would each open TCP + TLS and all but one would be dropped. Here the first
/// connect to an origin goes ahead while the others wait: if it comes up as HTTP/2 they stand
/// down and their requests share it; if HTTP/1.1, they open their own.
#[derive(Default)]
pub(crate) struct H2Gate {
    origins: Mutex<HashMap<String, watch::Sender<Phase>>>,
}

/// How long a connect that waited for an HTTP/2 connection gives hyper-util's pool to hand that
/// connection to its request before it fails. The pool does so as soon as the HTTP/2 handshake
/// is done, microseconds after the TLS handshake; once it has, this connect runs in the
/// background and its failure is dropped.
const STAND_DOWN: Duration = Duration::from_secs(2);

/// The first connect to an origin, telling the ones that wait how it went. Lives in the
/// connection when that speaks HTTP/2, so its close lets the next connect through.
struct Probe {
    gate: Arc<H2Gate>,
    origin: String,
    tx: watch::Sender<Phase>,
}

impl Probe {
    fn set(&self, phase: Phase) {
        self.tx.send_replace(phase);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let end = match *self.tx.borrow() {
            Phase::H1 => return,
            Phase::Connecting => Phase::Failed,
            _ => Phase::Closed,
        };
        self.tx.send_replace(end);
        if let Ok(mut map) = self.gate.origins.lock() {
            if map
                .get(&self.origin)
                .is_some_and(|tx| tx.same_channel(&self.tx))
            {
                map.remove(&self.origin);
            }
        }
    }
}

impl H2Gate {
    /// True when an HTTP/2 connection to `origin` (`https://host:port`) is open in the pool.
    pub(crate) fn has_h2(&self, origin: &str) -> bool {
        self.origins
            .lock()
            .is_ok_and(|map| map.get(origin).is_some_and(|tx| *tx.borrow() == Phase::H2))
    }

    /// Waits while another connect to `origin` is deciding the protocol. `Ok(Some(probe))`: this
    /// connect goes first; `Ok(None)`: connect without waiting (the origin speaks HTTP/1.1);
    /// `Err`: an HTTP/2 connection came up meanwhile and this connect stands down.
    async fn enter(self: &Arc<Self>, origin: &str) -> Result<Option<Probe>> {
        let mut waited_for_h2 = false;
        loop {
            let mut rx = {
                let mut map = self
                    .origins
                    .lock()
                    .map_err(|_| Error::Http("pool lock poisoned".into()))?;
                match map.get(origin) {
                    Some(tx) if !matches!(*tx.borrow(), Phase::Closed | Phase::Failed) => {
                        tx.subscribe()
                    }
                    _ => {
                        let (tx, _) = watch::channel(Phase::Connecting);
                        map.insert(origin.to_owned(), tx.clone());
                        return Ok(Some(Probe {
                            gate: self.clone(),
                            origin: origin.to_owned(),
                            tx,
                        }));
                    }
                }
            };
            let phase = *rx.borrow_and_update();
            match phase {
                Phase::H1 | Phase::Failed => return Ok(None),
                // A live HTTP/2 connection and still a connect: the pool has not taken it yet
                // (this connect raced its handshake) or it is draining after GOAWAY. Only a
                // connect that waited for it stands down; any other opens a connection.
                Phase::H2 if !waited_for_h2 => return Ok(None),
                Phase::H2 => {
                    let closed =
                        tokio::time::timeout(STAND_DOWN, rx.wait_for(|p| *p == Phase::Closed));
                    if closed.await.is_err() {
                        return Err(Error::ConnectionReset(format!(
                            "{origin}: stood down for a shared HTTP/2 connection"
                        )));
                    }
                    // The connection closed before the pool could share it: start over.
                    waited_for_h2 = false;
                }
                Phase::Connecting | Phase::Closed => {
                    let _ = rx.changed().await;
                    match *rx.borrow() {
                        Phase::H2 => waited_for_h2 = true,
                        Phase::Failed => return Ok(None),
                        _ => {}
                    }
                }
            }
        }
    }
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
    /// Set on the connector of the pool that negotiates HTTP/2 by ALPN.
    pub h2_gate: Option<Arc<H2Gate>>,
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
        let probe = match &self.h2_gate {
            Some(gate) if https && self.unix_socket.is_none() => gate.enter(&origin).await?,
            _ => None,
        };
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
        let probe = probe.and_then(|p| {
            p.set(if h2 { Phase::H2 } else { Phase::H1 });
            h2.then_some(p)
        });
        Ok(Conn {
            _probe: probe,
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
