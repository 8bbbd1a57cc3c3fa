//! Byte streams and the ways to open them, shared by the HTTP client, the WebSocket dialer and
//! the Hub's Redis adapter: [`NetStream`], TCP connect, and HTTP proxy tunnels ([`proxy`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::error::{Error, Result};

pub mod proxy;
pub mod socket;

/// A connection's byte stream: plain TCP, TLS over TCP, or a unix socket. It is under the HTTP
/// client's pooled connections, a dialed WebSocket and the Hub's Redis adapter.
pub enum NetStream {
    /// `http://`, `ws://`, `redis://`
    Tcp(TcpStream),
    /// `https://`, `wss://`, `rediss://`
    Tls(Box<TlsStream<TcpStream>>),
    /// A unix socket (the HTTP client's `unixSocket`).
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
    /// A stream of an HTTP/2 connection (a WebSocket opened by extended CONNECT, RFC 8441).
    H2(Box<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>),
}

impl NetStream {
    /// The TCP socket underneath, if any.
    pub fn tcp(&self) -> Option<&TcpStream> {
        match self {
            NetStream::Tcp(s) => Some(s),
            NetStream::Tls(s) => Some(s.get_ref().0),
            #[cfg(unix)]
            NetStream::Unix(_) => None,
            NetStream::H2(_) => None,
        }
    }
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            NetStream::Tcp($s) => $e,
            NetStream::Tls($s) => $e,
            #[cfg(unix)]
            NetStream::Unix($s) => $e,
            NetStream::H2($s) => $e,
        }
    };
}

impl AsyncRead for NetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for NetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        each!(self, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            NetStream::Tcp(s) => s.is_write_vectored(),
            NetStream::Tls(s) => s.is_write_vectored(),
            #[cfg(unix)]
            NetStream::Unix(s) => s.is_write_vectored(),
            NetStream::H2(s) => s.is_write_vectored(),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        each!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Opens a TCP connection to `host:port`, trying each resolved address in turn.
pub(crate) async fn tcp_connect(host: &str, port: u16) -> Result<TcpStream> {
    let peer = format!("{host}:{port}");
    let addrs: Vec<std::net::SocketAddr> = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => vec![(ip, port).into()],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| Error::Dns(host.to_string()))?
            .collect(),
    };
    let mut last = Error::Dns(host.to_string());
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Error::from_io(e, &peer),
        }
    }
    Err(last)
}

/// Reads an HTTP/1.1 response head (up to `\r\n\r\n`, at most 16 KiB) from a raw stream.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(Error::Http("proxy response head too large".into()));
        }
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| Error::from_io(e, "proxy"))?;
        if n == 0 {
            return Err(Error::ConnectionReset("proxy closed the connection".into()));
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// Writes all of `data` to a raw stream.
pub(crate) async fn write_all<S: AsyncWrite + Unpin>(stream: &mut S, data: &[u8]) -> Result<()> {
    stream
        .write_all(data)
        .await
        .map_err(|e| Error::from_io(e, "proxy"))?;
    stream.flush().await.map_err(|e| Error::from_io(e, "proxy"))
}
