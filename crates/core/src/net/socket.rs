//! Raw connections through the engine's own TCP and rustls: [`connect`] opens one (plain or
//! TLS), [`spawn`] drives it (reads and writes at once, with read backpressure) and
//! [`SocketHandle::start_tls`] upgrades a plain one in place, for STARTTLS-style protocols and
//! protocols of the application's own.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;

use super::{tcp_connect, NetStream};
use crate::error::{Error, Result};
use crate::tls::{classify_io, client_config, ClientTlsOptions, TlsInfo};

/// How to open a raw connection.
#[derive(Debug, Clone, Default)]
pub struct SocketOptions {
    /// TLS from the start, with these options.
    pub tls: Option<ClientTlsOptions>,
    /// Protocols offered by ALPN when TLS is used (most preferred first).
    pub alpn: Vec<String>,
    /// Time the TCP connect and the TLS handshake may take together.
    pub timeout: Option<Duration>,
}

/// An open raw connection, before it is driven.
pub struct Connected {
    /// The stream.
    pub stream: NetStream,
    /// The host the connection was made to (the TLS server name unless options name another).
    pub host: String,
    /// Peer and local addresses.
    pub peer: Option<std::net::SocketAddr>,
    /// This side's address.
    pub local: Option<std::net::SocketAddr>,
    /// The TLS handshake, when TLS is on.
    pub tls: Option<TlsInfo>,
}

/// Opens a connection to `host:port`, with TLS when `opts.tls` is set.
pub async fn connect(host: &str, port: u16, opts: &SocketOptions) -> Result<Connected> {
    let open = async {
        let tcp = tcp_connect(host, port).await?;
        let peer = tcp.peer_addr().ok();
        let local = tcp.local_addr().ok();
        let (stream, tls) = match &opts.tls {
            Some(tls) => {
                let (stream, info) = handshake(tcp, host, tls, &opts.alpn).await?;
                (NetStream::Tls(Box::new(stream)), Some(info))
            }
            None => (NetStream::Tcp(tcp), None),
        };
        Ok(Connected {
            stream,
            host: host.to_string(),
            peer,
            local,
            tls,
        })
    };
    match opts.timeout {
        Some(t) => tokio::time::timeout(t, open)
            .await
            .map_err(|_| Error::Timeout("connect"))?,
        None => open.await,
    }
}

async fn handshake(
    tcp: tokio::net::TcpStream,
    host: &str,
    opts: &ClientTlsOptions,
    alpn: &[String],
) -> Result<(
    tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    TlsInfo,
)> {
    let alpn: Vec<&[u8]> = alpn.iter().map(|p| p.as_bytes()).collect();
    let config = client_config(opts, &alpn)?;
    let sni = opts.server_name.clone().unwrap_or_else(|| host.to_string());
    let name = ServerName::try_from(sni)
        .map_err(|e| Error::InvalidArgument(format!("invalid TLS server name: {e}")))?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| classify_io(e).unwrap_or_else(|e| Error::from_io(e, host)))?;
    let info = TlsInfo::from_connection(tls.get_ref().1);
    Ok((tls, info))
}

/// Receives what happens on a driven connection, on tokio threads, in order.
pub trait SocketEvents: Send + Sync + 'static {
    /// Bytes arrived.
    fn on_data(&self, data: Bytes);
    /// The peer ended its side (EOF); writing may go on.
    fn on_end(&self);
    /// Reading or writing failed; `on_close` follows.
    fn on_error(&self, error: Error);
    /// The connection is gone. Called exactly once.
    fn on_close(&self);
}

/// A `startTls` request: the options, the ALPN protocols, and where its outcome goes.
type Upgrade = (
    Box<(ClientTlsOptions, Vec<String>, Option<Duration>)>,
    oneshot::Sender<Result<TlsInfo>>,
);

enum Command {
    Write(Bytes, oneshot::Sender<Result<()>>),
    End(oneshot::Sender<Result<()>>),
    StartTls(
        Box<(ClientTlsOptions, Vec<String>, Option<Duration>)>,
        oneshot::Sender<Result<TlsInfo>>,
    ),
    Reading(bool),
}

/// Sends commands to a driven connection; dropping every handle closes it.
#[derive(Clone)]
pub struct SocketHandle {
    tx: mpsc::UnboundedSender<Command>,
    kill: Arc<tokio::sync::Notify>,
}

impl SocketHandle {
    /// Queues `data`; resolves once it is written to the socket.
    pub async fn write(&self, data: Bytes) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Write(data, done))
            .map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }

    /// Ends this side (a FIN, or TLS close_notify then FIN) after what is queued; reading goes on.
    pub async fn end(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::End(done)).map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }

    /// Upgrades a plain connection to TLS in place, once what is queued is written. Reading
    /// stops during the handshake; bytes the peer sends after it are read through TLS. A
    /// handshake that takes longer than `timeout` fails with [`Error::Timeout`] and closes the
    /// connection.
    pub async fn start_tls(
        &self,
        opts: ClientTlsOptions,
        alpn: Vec<String>,
        timeout: Option<Duration>,
    ) -> Result<TlsInfo> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::StartTls(Box::new((opts, alpn, timeout)), done))
            .map_err(|_| closed())?;
        wait.await.map_err(|_| closed())?
    }

    /// Stops (`false`) or resumes (`true`) reading: the application's backpressure.
    pub fn set_reading(&self, on: bool) {
        let _ = self.tx.send(Command::Reading(on));
    }

    /// Drops the connection at once.
    pub fn destroy(&self) {
        self.kill.notify_one();
    }
}

fn closed() -> Error {
    Error::ConnectionReset("the socket is closed".into())
}

/// The handle of `conn` and the future that drives it until it ends (spawn it on a tokio
/// runtime); events go to `events`.
pub fn drive_socket(
    conn: Connected,
    events: Arc<dyn SocketEvents>,
) -> (
    SocketHandle,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let kill = Arc::new(tokio::sync::Notify::new());
    let host = conn.host.clone();
    let task = drive(conn.stream, host, rx, kill.clone(), events);
    (SocketHandle { tx, kill }, task)
}

struct Pending {
    data: Bytes,
    done: Option<oneshot::Sender<Result<()>>>,
}

async fn drive(
    mut stream: NetStream,
    host: String,
    mut rx: mpsc::UnboundedReceiver<Command>,
    kill: Arc<tokio::sync::Notify>,
    events: Arc<dyn SocketEvents>,
) {
    let mut out: VecDeque<Pending> = VecDeque::new();
    let mut ending: Option<oneshot::Sender<Result<()>>> = None;
    let mut upgrading: Option<Upgrade> = None;
    let mut reading = true;
    let mut eof = false;
    let mut ended = false;
    let mut commands_open = true;
    let mut buf = BytesMut::new();
    let mut need_flush = false;
    let failure: Option<Error> = loop {
        // A queued end or upgrade happens once everything before it is written.
        if out.is_empty() {
            if let Some(done) = ending.take() {
                let r = stream
                    .shutdown()
                    .await
                    .map_err(|e| Error::from_io(e, &host));
                ended = r.is_ok();
                let _ = done.send(r);
            }
            if let Some((opts, done)) = upgrading.take() {
                let tcp = match stream {
                    NetStream::Tcp(tcp) => tcp,
                    other => {
                        stream = other;
                        let _ = done.send(Err(Error::InvalidArgument(
                            "startTls needs a plain TCP connection (this one already uses TLS)"
                                .into(),
                        )));
                        continue;
                    }
                };
                let (tls_opts, alpn, timeout) = *opts;
                let limited = async {
                    match timeout {
                        Some(t) => tokio::time::timeout(t, handshake(tcp, &host, &tls_opts, &alpn))
                            .await
                            .unwrap_or(Err(Error::Timeout("TLS handshake"))),
                        None => handshake(tcp, &host, &tls_opts, &alpn).await,
                    }
                };
                tokio::select! {
                    r = limited => match r {
                        Ok((tls, info)) => {
                            stream = NetStream::Tls(Box::new(tls));
                            let _ = done.send(Ok(info));
                        }
                        Err(e) => {
                            // The caller of startTls gets the error; the connection is gone.
                            let _ = done.send(Err(e));
                            break None;
                        }
                    },
                    () = kill.notified() => {
                        let _ = done.send(Err(closed()));
                        break None;
                    }
                }
            }
        }
        if !commands_open && out.is_empty() && (eof || ended) {
            break None;
        }
        let want_read = reading && !eof && upgrading.is_none();
        let want_write = !out.is_empty() || need_flush;
        let want_cmd = commands_open && ending.is_none() && upgrading.is_none();
        tokio::select! {
            step = io_step(&mut stream, &mut buf, &mut out, &mut need_flush, want_read, want_write), if want_read || want_write => match step {
                Step::Read(Ok(0)) => {
                    eof = true;
                    events.on_end();
                    if ended {
                        break None;
                    }
                }
                Step::Read(Ok(_)) => events.on_data(buf.split().freeze()),
                Step::Read(Err(e)) | Step::Wrote(Err(e)) => {
                    break Some(classify_io(e).unwrap_or_else(|e| Error::from_io(e, &host)))
                }
                Step::Wrote(Ok(())) => {}
            },
            cmd = rx.recv(), if want_cmd => match cmd {
                None => {
                    // Every handle is gone: finish what is queued, then end.
                    commands_open = false;
                    if !ended {
                        let (done, _) = oneshot::channel();
                        ending = Some(done);
                    }
                }
                Some(Command::Write(data, done)) => {
                    if ended {
                        let _ = done.send(Err(closed()));
                    } else if data.is_empty() {
                        let _ = done.send(Ok(()));
                    } else {
                        out.push_back(Pending { data, done: Some(done) });
                    }
                }
                Some(Command::End(done)) => {
                    if ended {
                        let _ = done.send(Ok(()));
                    } else {
                        ending = Some(done);
                    }
                }
                Some(Command::StartTls(opts, done)) => upgrading = Some((opts, done)),
                Some(Command::Reading(on)) => reading = on,
            },
            () = kill.notified() => break None,
        }
    };
    let err = || closed();
    for p in out.drain(..) {
        if let Some(done) = p.done {
            let _ = done.send(Err(err()));
        }
    }
    if let Some(done) = ending.take() {
        let _ = done.send(Err(err()));
    }
    if let Some((_, done)) = upgrading.take() {
        let _ = done.send(Err(err()));
    }
    if let Some(e) = failure {
        events.on_error(e);
    }
    events.on_close();
}

enum Step {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<()>),
}

/// Reads some or writes some, whichever the stream is ready for first (one stream, both ways,
/// without splitting it, so that `startTls` can take it whole).
async fn io_step(
    stream: &mut NetStream,
    buf: &mut BytesMut,
    out: &mut VecDeque<Pending>,
    need_flush: &mut bool,
    want_read: bool,
    want_write: bool,
) -> Step {
    let chunk = crate::tuning::read_buffer_size();
    if want_read {
        buf.reserve(chunk);
    }
    poll_fn(|cx| {
        if want_write {
            if let Poll::Ready(r) = poll_write_step(stream, out, need_flush, cx) {
                return Poll::Ready(Step::Wrote(r));
            }
        }
        if want_read {
            let spare = buf.spare_capacity_mut();
            let room = chunk.min(spare.len());
            let mut rb = ReadBuf::uninit(&mut spare[..room]);
            if let Poll::Ready(r) = Pin::new(&mut *stream).poll_read(cx, &mut rb) {
                let n = rb.filled().len();
                if r.is_ok() {
                    // SAFETY: `n` bytes of the spare capacity were initialized by the read.
                    unsafe { bytes::BufMut::advance_mut(buf, n) };
                }
                return Poll::Ready(Step::Read(r.map(|()| n)));
            }
        }
        Poll::Pending
    })
    .await
}

/// Writes some of `out` (vectored), settling the writes it finishes; then flushes (TLS keeps
/// records until flushed).
fn poll_write_step(
    stream: &mut NetStream,
    out: &mut VecDeque<Pending>,
    need_flush: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<()>> {
    if out.is_empty() {
        std::task::ready!(Pin::new(&mut *stream).poll_flush(cx))?;
        *need_flush = false;
        return Poll::Ready(Ok(()));
    }
    let mut slices = [std::io::IoSlice::new(&[]); 16];
    let mut count = 0;
    for p in out.iter().take(16) {
        slices[count] = std::io::IoSlice::new(&p.data);
        count += 1;
    }
    let n = std::task::ready!(Pin::new(&mut *stream).poll_write_vectored(cx, &slices[..count]))?;
    if n == 0 {
        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
    }
    *need_flush = true;
    let mut left = n;
    while left > 0 {
        let Some(front) = out.front_mut() else { break };
        if front.data.len() <= left {
            left -= front.data.len();
            if let Some(done) = out.pop_front().and_then(|p| p.done) {
                let _ = done.send(Ok(()));
            }
        } else {
            front.data.advance(left);
            left = 0;
        }
    }
    Poll::Ready(Ok(()))
}
