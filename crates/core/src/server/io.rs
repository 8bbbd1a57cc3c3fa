//! Listening sockets and the per-connection I/O wrapper that counts bytes and tracks idleness.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

use super::stats::Stats;

/// Any bidirectional byte stream a connection can run on.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed connection stream.
pub type BoxIo = Box<dyn Io>;

/// Where the server listens.
#[derive(Debug, Clone)]
pub enum ListenTarget {
    /// A TCP address; `reuse_port` sets `SO_REUSEPORT` so several processes can share it.
    Tcp { addr: String, reuse_port: bool },
    /// A unix domain socket path (removed and re-created on bind).
    #[cfg(unix)]
    Unix(std::path::PathBuf),
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(tokio::net::UnixListener, std::path::PathBuf),
}

/// The address a server is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundAddr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(std::path::PathBuf),
}

impl Listener {
    pub(crate) async fn bind(target: &ListenTarget) -> io::Result<Listener> {
        match target {
            ListenTarget::Tcp { addr, reuse_port } => {
                let addrs: Vec<SocketAddr> =
                    tokio::net::lookup_host(addr.as_str()).await?.collect();
                let addr = addrs.first().copied().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")
                })?;
                let socket = socket2::Socket::new(
                    socket2::Domain::for_address(addr),
                    socket2::Type::STREAM,
                    Some(socket2::Protocol::TCP),
                )?;
                socket.set_reuse_address(true)?;
                #[cfg(all(unix, not(target_os = "solaris"), not(target_os = "illumos")))]
                if *reuse_port {
                    socket.set_reuse_port(true)?;
                }
                #[cfg(not(all(unix, not(target_os = "solaris"), not(target_os = "illumos"))))]
                let _ = reuse_port;
                if addr.is_ipv6() {
                    socket.set_only_v6(true)?;
                }
                socket.set_nonblocking(true)?;
                socket.bind(&addr.into())?;
                socket.listen(1024)?;
                Ok(Listener::Tcp(TcpListener::from_std(socket.into())?))
            }
            #[cfg(unix)]
            ListenTarget::Unix(path) => {
                match std::fs::remove_file(path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
                Ok(Listener::Unix(
                    tokio::net::UnixListener::bind(path)?,
                    path.clone(),
                ))
            }
        }
    }

    pub(crate) fn local_addr(&self) -> io::Result<BoundAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(BoundAddr::Tcp),
            #[cfg(unix)]
            Listener::Unix(_, path) => Ok(BoundAddr::Unix(path.clone())),
        }
    }

    /// A new connection, its peer, and its socket's descriptor (for [`unsent_bytes`]).
    pub(crate) async fn accept(&self) -> io::Result<(BoxIo, Option<SocketAddr>, Option<i32>)> {
        match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                let _ = stream.set_nodelay(true);
                let fd = raw_fd(&stream);
                Ok((Box::new(stream), Some(peer), fd))
            }
            #[cfg(unix)]
            Listener::Unix(l, _) => {
                let (stream, _) = l.accept().await?;
                let fd = raw_fd(&stream);
                Ok((Box::new(stream), None, fd))
            }
        }
    }
}

#[cfg(unix)]
fn raw_fd(socket: &impl std::os::fd::AsRawFd) -> Option<i32> {
    Some(socket.as_raw_fd())
}

#[cfg(not(unix))]
fn raw_fd<T>(_: &T) -> Option<i32> {
    None
}

/// Bytes written to the socket `fd` that the peer has not acknowledged yet (Linux `SIOCOUTQ`);
/// `None` where the system does not tell. The queue shrinking means the client is reading,
/// even while the socket is still too full to take more.
pub(crate) fn unsent_bytes(fd: Option<i32>) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let fd = fd?;
        let mut queued: libc::c_int = 0;
        // SAFETY: `fd` is the connection's socket, open while its connection is driven (the
        // only caller); TIOCOUTQ writes one int.
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
        (rc == 0).then_some(queued.max(0) as u64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = fd;
        None
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Per-connection activity: a count of reads and writes that moved bytes (the idle timer only
/// compares it between its ticks, which spares a clock read per I/O call), and how many
/// requests are in flight.
#[derive(Debug)]
pub(crate) struct Activity {
    pub(crate) ops: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    /// Set once the connection's first request head has been read.
    pub(crate) started: std::sync::atomic::AtomicBool,
    /// When the connection was accepted (the first request head is due a header-read timeout
    /// after it).
    pub(crate) accepted: tokio::time::Instant,
    /// Bumped by every write that moved bytes.
    pub(crate) written: AtomicU64,
    /// True while the last write found the socket full (the client is not reading).
    pub(crate) write_blocked: std::sync::atomic::AtomicBool,
    /// The socket's descriptor, to ask how much it still holds ([`unsent_bytes`]).
    pub(crate) fd: Option<i32>,
    /// HTTP/2 response bodies whose last chunk waits in the connection (for flow-control
    /// window from the client, or for the socket), since when ([`Activity::cancel_stalled`]).
    pub(crate) waiting: std::sync::Mutex<Waiting>,
}

/// See [`Activity::waiting`].
#[derive(Default, Debug)]
pub(crate) struct Waiting {
    next: u64,
    bodies: std::collections::HashMap<u64, (tokio::time::Instant, Option<Arc<StreamCtl>>)>,
    /// When the client last took a piece of any body (or the socket was found blocked, which
    /// the connection's own check covers).
    progress: Option<tokio::time::Instant>,
}

impl Activity {
    /// Notes that a body's chunk now waits in the connection; returns its key.
    pub(crate) fn wait(&self, ctl: Option<Arc<StreamCtl>>) -> u64 {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.next += 1;
        let key = w.next;
        w.bodies.insert(key, (tokio::time::Instant::now(), ctl));
        key
    }

    /// True while some body's piece waits in the connection.
    pub(crate) fn has_waiting(&self) -> bool {
        let w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        !w.bodies.is_empty()
    }

    /// Notes that the body of `key` no longer waits: `taken` when the client took its piece
    /// (the body was asked for more), not when it ended or was dropped.
    pub(crate) fn taken(&self, key: u64, taken: bool) {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        w.bodies.remove(&key);
        if taken {
            w.progress = Some(tokio::time::Instant::now());
        }
    }

    /// Cancels the streams whose body has waited `limit` or longer for the client to take its
    /// last piece while the client took no piece of any body for as long (one that reads, even
    /// slowly, over many streams sharing its window, is not cut), and returns how many.
    /// `socket_blocked`: the socket takes nothing, which the connection's own check covers, so
    /// nothing here counts as stalled. `Err` when a stalled stream cannot be cancelled alone
    /// (it runs outside [`StreamExec`]): the connection must close.
    pub(crate) fn cancel_stalled(
        &self,
        limit: std::time::Duration,
        socket_blocked: bool,
    ) -> std::result::Result<u64, ()> {
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if w.bodies.is_empty() {
            return Ok(0);
        }
        if socket_blocked {
            w.progress = Some(tokio::time::Instant::now());
            return Ok(0);
        }
        if w.progress.is_some_and(|p| p.elapsed() < limit) {
            return Ok(0);
        }
        let mut cancelled = 0;
        let mut alone = true;
        w.bodies.retain(|_, (since, ctl)| {
            if since.elapsed() < limit {
                return true;
            }
            match ctl {
                Some(ctl) => ctl.cancel(),
                None => alone = false,
            }
            cancelled += 1;
            false
        });
        if alone {
            Ok(cancelled)
        } else {
            Err(())
        }
    }
}

tokio::task_local! {
    /// The [`StreamCtl`] of the HTTP/2 stream whose task is running ([`StreamExec`]).
    static STREAM: Arc<StreamCtl>;
}

/// Lets the server cancel one HTTP/2 stream's task: dropping it resets the stream
/// (`RST_STREAM`) and leaves the connection's other streams alone.
#[derive(Default, Debug)]
pub(crate) struct StreamCtl {
    cancelled: std::sync::atomic::AtomicBool,
    waker: futures_util::task::AtomicWaker,
    /// The request body while no one reads it: it holds the stream open in h2, so a cancel
    /// drops it too (the server's request body stream parks it here between reads).
    parked: std::sync::Mutex<Option<hyper::body::Incoming>>,
}

impl StreamCtl {
    /// The control of the stream task this runs in, if it runs in one.
    pub(crate) fn current() -> Option<Arc<StreamCtl>> {
        STREAM.try_with(Arc::clone).ok()
    }

    /// Keeps the request body here between reads; drops it when the stream was cancelled.
    pub(crate) fn park(&self, body: hyper::body::Incoming) {
        let mut parked = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        if !self.cancelled.load(Relaxed) {
            *parked = Some(body);
        }
    }

    /// Takes the parked request body back; `None` once the stream was cancelled.
    pub(crate) fn unpark(&self) -> Option<hyper::body::Incoming> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn cancel(&self) {
        self.cancelled.store(true, Relaxed);
        self.waker.wake();
    }
}

/// hyper's executor for HTTP/2 connections: spawns each stream's task on tokio with a
/// [`StreamCtl`], so that a stream stalled by the client can be cancelled alone.
#[derive(Clone, Copy, Default)]
pub(crate) struct StreamExec;

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        // A task spawned from inside a stream's task is not a stream: it is hyper's bridge for a
        // stream upgraded by an extended CONNECT (a WebSocket over HTTP/2), which lives as long
        // as the WebSocket. It runs as it is: it has no response for the stall watch, and a
        // control and its wrapper would cost every such WebSocket a few hundred bytes.
        if STREAM.try_with(|_| ()).is_ok() {
            tokio::spawn(fut);
            return;
        }
        let ctl = Arc::new(StreamCtl::default());
        let task = Some(STREAM.scope(ctl.clone(), fut));
        tokio::spawn(StreamTask { ctl, task });
    }
}

pin_project_lite::pin_project! {
    /// One HTTP/2 stream's task: the stream's future, run with its [`StreamCtl`] in scope until it
    /// ends or is cancelled. A struct rather than an async block around `select!`, which would
    /// hold the stream's future twice (as captured, and as moved into the select): 4 KB per
    /// stream instead of 2.
    pub(crate) struct StreamTask<F> {
        ctl: Arc<StreamCtl>,
        #[pin]
        task: Option<tokio::task::futures::TaskLocalFuture<Arc<StreamCtl>, F>>,
    }
}

impl<F: std::future::Future> std::future::Future for StreamTask<F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut me = self.project();
        me.ctl.waker.register(cx.waker());
        if me.ctl.cancelled.load(Relaxed) {
            me.task.set(None);
            // With the task gone, a request body no one reads is the stream's last reference:
            // dropping it makes h2 reset the stream.
            drop(me.ctl.unpark());
            return std::task::Poll::Ready(());
        }
        match me.task.as_mut().as_pin_mut() {
            Some(task) => task.poll(cx).map(drop),
            None => std::task::Poll::Ready(()),
        }
    }
}

impl Activity {
    pub(crate) fn new(fd: Option<i32>) -> Activity {
        Activity {
            ops: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            started: std::sync::atomic::AtomicBool::new(false),
            accepted: tokio::time::Instant::now(),
            written: AtomicU64::new(0),
            write_blocked: std::sync::atomic::AtomicBool::new(false),
            fd,
            waiting: std::sync::Mutex::default(),
        }
    }
}

/// Wraps a connection's stream to count bytes into [`Stats`] and note activity.
///
/// When the server drops a connection whose peer has not closed its side, the socket is closed
/// with a lingering close: FIN first, then what the peer still sends is read and discarded for a
/// short while. Closing with unread bytes would make the kernel send RST, which can destroy a
/// response the peer has not read yet.
pub(crate) struct Counted {
    inner: BoxIo,
    stats: Arc<Stats>,
    activity: Arc<Activity>,
    peer_closed: bool,
    /// Bytes read to tell HTTP/1.1 from HTTP/2 ([`Counted::sniff_h2`]), read again first.
    /// Boxed: the stream outlives the handshake in every upgraded connection.
    rewind: Option<Box<bytes::Bytes>>,
}

/// What an HTTP/2 connection by prior knowledge starts with (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long, and how much, a lingering close reads before giving up.
const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

async fn linger(mut io: BoxIo) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tokio::time::timeout(LINGER_TIME, async {
        let _ = io.shutdown().await;
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

impl Drop for Counted {
    fn drop(&mut self) {
        // The stream outlives the HTTP connection when it is upgraded (a WebSocket, a hijack):
        // it counts as open until it is dropped.
        self.stats.connections_open.fetch_sub(1, Relaxed);
        if self.peer_closed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            // Swap in an inert stream so the real one can outlive this wrapper.
            let io = std::mem::replace(&mut self.inner, Box::new(tokio::io::duplex(1).0));
            rt.spawn(linger(io));
        }
    }
}

impl Counted {
    pub(crate) fn new(inner: BoxIo, stats: Arc<Stats>, activity: Arc<Activity>) -> Self {
        stats.connections_open.fetch_add(1, Relaxed);
        Counted {
            inner,
            stats,
            activity,
            peer_closed: false,
            rewind: None,
        }
    }

    /// Reads until the bytes stop matching the HTTP/2 preface (true when all 24 match), and keeps
    /// what it read to be read again. An HTTP/1.1 request is told by its first byte; the end of
    /// the stream or an error ends the sniff (the HTTP/1.1 parser then sees them).
    pub(crate) async fn sniff_h2(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut got = [0u8; H2_PREFACE.len()];
        let mut n = 0;
        while n < got.len() {
            match self.read(&mut got[n..]).await {
                Ok(0) | Err(_) => break,
                Ok(read) => n += read,
            }
            if got[..n] != H2_PREFACE[..n] {
                break;
            }
        }
        if n > 0 {
            self.rewind = Some(Box::new(bytes::Bytes::copy_from_slice(&got[..n])));
        }
        n == H2_PREFACE.len() && got == *H2_PREFACE
    }

    fn touch(&self) {
        // One task at a time drives the stream: a plain load and store is enough.
        let ops = &self.activity.ops;
        ops.store(ops.load(Relaxed).wrapping_add(1), Relaxed);
    }

    fn io(&mut self) -> Pin<&mut BoxIo> {
        Pin::new(&mut self.inner)
    }

    fn wrote(&self, res: &Poll<io::Result<usize>>) {
        match res {
            Poll::Ready(Ok(n)) => {
                self.stats.bytes_out.fetch_add(*n as u64, Relaxed);
                self.touch();
                let written = &self.activity.written;
                written.store(written.load(Relaxed).wrapping_add(1), Relaxed);
                self.activity.write_blocked.store(false, Relaxed);
            }
            Poll::Pending => self.activity.write_blocked.store(true, Relaxed),
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(rewind) = &mut self.rewind {
            let n = rewind.len().min(buf.remaining());
            buf.put_slice(&rewind[..n]);
            bytes::Buf::advance(&mut **rewind, n);
            if rewind.is_empty() {
                self.rewind = None;
                // What followed the sniffed bytes comes in the same read, when it is there: a
                // request head cut after its first bytes makes hyper grow its read buffer to
                // 16 KiB for the rest (8 KiB more per idle keep-alive connection).
                if buf.remaining() > 0 {
                    let before = buf.filled().len();
                    if let Poll::Ready(Ok(())) = self.io().poll_read(cx, buf) {
                        let more = buf.filled().len() - before;
                        if more > 0 {
                            self.stats.bytes_in.fetch_add(more as u64, Relaxed);
                            self.touch();
                        } else {
                            self.peer_closed = true;
                        }
                    }
                }
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let res = self.io().poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.stats.bytes_in.fetch_add(n as u64, Relaxed);
            self.touch();
        } else if matches!(res, Poll::Ready(Ok(()))) && buf.remaining() > 0 {
            self.peer_closed = true;
        }
        res
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = self.io().poll_write(cx, data);
        self.wrote(&res);
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = self.io().poll_write_vectored(cx, bufs);
        self.wrote(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_shutdown(cx)
    }
}
