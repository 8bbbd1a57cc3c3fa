//! Request and response bodies of the server.
//!
//! Small request bodies are read in full before the handler runs (one hand-off, no per-chunk
//! calls); larger or unknown-length ones are handed over as a [`BodyStream`] that the handler
//! pulls from, so a slow handler pushes back on the client through TCP flow control. Response
//! bodies are either whole ([`ResBody::full`]), fed through a bounded channel
//! ([`ResBody::channel`]) and flushed as produced, or read from an open file ([`ResBody::file`])
//! one chunk at a time as the connection takes them.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Bodies with a declared `Content-Length` up to this size are read in full before the handler
/// is called; longer ones and chunked ones are streamed to it.
pub const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// The most a file body reads per chunk.
const FILE_CHUNK: usize = 64 * 1024;

/// A request body being received.
pub struct BodyStream {
    incoming: Option<Incoming>,
    /// On HTTP/2, the stream's control, where the body waits between reads so that a stream
    /// reset for a stalled response drops it too (see [`super::io::StreamCtl::park`]).
    stream: Option<std::sync::Arc<super::io::StreamCtl>>,
    received: usize,
    limit: usize,
    deadline: Option<Instant>,
}

impl BodyStream {
    pub(crate) fn new(incoming: Incoming, limit: usize, deadline: Option<Instant>) -> Self {
        let stream = super::io::StreamCtl::current();
        let incoming = match &stream {
            Some(ctl) => {
                ctl.park(incoming);
                None
            }
            None => Some(incoming),
        };
        BodyStream {
            incoming,
            stream,
            received: 0,
            limit,
            deadline,
        }
    }

    /// The next chunk (see [`BodyStream::next_chunk`]), with the body parked in between.
    async fn next_chunk_parked(
        &mut self,
        ctl: std::sync::Arc<super::io::StreamCtl>,
    ) -> Result<Option<Bytes>> {
        if self.incoming.is_none() {
            match ctl.unpark() {
                Some(incoming) => self.incoming = Some(incoming),
                // Ended, failed or cut short before: nothing was parked again.
                None => return Ok(None),
            }
        }
        let chunk = self.read_chunk().await;
        if let (Ok(Some(_)), Some(incoming)) = (&chunk, self.incoming.take()) {
            ctl.park(incoming);
        }
        chunk
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The next chunk, `None` at the end. Fails with [`Error::BodyTooLarge`] past the limit,
    /// [`Error::Timeout`] past the request deadline, and [`Error::ConnectionReset`] when the
    /// client goes away mid-body.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.stream.clone() {
            Some(ctl) => self.next_chunk_parked(ctl).await,
            None => self.read_chunk().await,
        }
    }

    async fn read_chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            let Some(incoming) = self.incoming.as_mut() else {
                return Ok(None);
            };
            let frame = match self.deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, incoming.frame())
                    .await
                    .map_err(|_| Error::Timeout("request body"))?,
                None => incoming.frame().await,
            };
            match frame {
                None => {
                    self.incoming = None;
                    return Ok(None);
                }
                Some(Err(e)) => {
                    self.incoming = None;
                    return Err(Error::ConnectionReset(format!("request body: {e}")));
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    self.received += data.len();
                    if self.received > self.limit {
                        self.incoming = None;
                        return Err(Error::BodyTooLarge { limit: self.limit });
                    }
                    return Ok(Some(data));
                }
            }
        }
    }

    /// Reads the rest of the body into one buffer.
    pub async fn collect(&mut self) -> Result<Bytes> {
        let mut first: Option<Bytes> = None;
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            match (&first, buf.is_empty()) {
                (None, true) => first = Some(chunk),
                _ => {
                    if let Some(f) = first.take() {
                        buf.extend_from_slice(&f);
                    }
                    buf.extend_from_slice(&chunk);
                }
            }
        }
        Ok(match first {
            Some(f) => f,
            None => buf.freeze(),
        })
    }
}

/// What the handler gets as the request body.
pub enum RequestBody {
    /// The whole body (possibly empty).
    Full(Bytes),
    /// A body still arriving.
    Stream(BodyStream),
}

impl RequestBody {
    /// An empty body.
    pub fn empty() -> Self {
        RequestBody::Full(Bytes::new())
    }
}

impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestBody::Full(b) => write!(f, "Full({} bytes)", b.len()),
            RequestBody::Stream(s) => write!(f, "Stream({} bytes so far)", s.received),
        }
    }
}

/// The body of a response sent by the server.
pub struct ResBody {
    kind: Kind,
    /// Set on an HTTP/2 response when the server has a send timeout ([`ResBody::watch`]).
    watch: Option<Box<Watch>>,
}

/// A watched body's link to its connection and stream.
struct Watch {
    activity: std::sync::Arc<super::io::Activity>,
    /// The stream's task control, taken on the first poll (which runs in that task).
    ctl: Option<std::sync::Arc<super::io::StreamCtl>>,
    /// While the chunk handed over last waits in the connection: its key in
    /// [`super::io::Activity::waiting`].
    key: Option<u64>,
    /// What is left of the chunk the body gave, handed over in pieces.
    held: Option<Bytes>,
}

/// The largest piece a watched body hands over at once (HTTP/2's default largest frame). HTTP/2
/// asks for the next piece only once the window covers the last one, so this bounds what a
/// stalled stream holds in the connection, and a client must take at least this much per send
/// timeout.
const WATCHED_CHUNK: usize = 16 << 10;
/// The last piece of a watched body of known length: HTTP/2 lets the body go once it has its
/// last piece, whether or not that piece was sent, so the last piece is kept small.
const WATCHED_TAIL: usize = 1 << 10;

enum Kind {
    Full(Option<Bytes>),
    /// The chunks, and a watch whose end tells the sender the body was dropped.
    Channel {
        rx: mpsc::Receiver<std::io::Result<Bytes>>,
        _alive: tokio::sync::watch::Sender<()>,
    },
    File(Box<FileBody>),
}

/// The rest of a file to send: read in chunks of up to [`FILE_CHUNK`] bytes (tokio runs each read
/// on its blocking pool), into one buffer whose memory comes back once the connection has
/// written the previous chunk.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl FileBody {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = self.remaining.min(FILE_CHUNK as u64) as usize;
        self.buf.reserve(want);
        let read = tokio_util::io::poll_read_buf(
            Pin::new(&mut self.file),
            cx,
            &mut (&mut self.buf).limit(want),
        );
        let result = match read {
            Poll::Pending => return Poll::Pending,
            // The file is shorter than the length promised in the response head: fail rather
            // than end early, so the client sees an incomplete response instead of a short one.
            Poll::Ready(Ok(0)) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file ended before the announced length (truncated while being sent?)",
            )),
            Poll::Ready(Ok(n)) => {
                self.remaining -= n as u64;
                return Poll::Ready(Some(Ok(self.buf.split().freeze())));
            }
            Poll::Ready(Err(e)) => Err(e),
        };
        self.remaining = 0;
        Poll::Ready(Some(result))
    }
}

/// The sending side of a streamed response body. Dropping it ends the body normally;
/// [`BodySender::abort`] cuts it so the client sees an incomplete response.
pub struct BodySender {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    body_alive: tokio::sync::watch::Receiver<()>,
}

impl BodySender {
    /// Queues a chunk, waiting while the channel is full. Returns false when the client is gone.
    pub async fn send(&self, chunk: Bytes) -> bool {
        if chunk.is_empty() {
            return !self.tx.is_closed();
        }
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    /// Ends the body with an error: HTTP/1.1 closes the connection without the final chunk,
    /// HTTP/2 resets the stream.
    pub fn abort(self) {
        let _ = self
            .tx
            .try_send(Err(std::io::Error::other("response body aborted")));
    }

    /// True once the response can no longer be delivered.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Resolves once the connection dropped the body: the client went away, or the body was
    /// sent in full (and the sender dropped or ended). Holds no part of the channel open.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut alive = self.body_alive.clone();
        async move { while alive.changed().await.is_ok() {} }
    }
}

impl ResBody {
    /// A whole body.
    pub fn full(bytes: Bytes) -> Self {
        ResBody {
            kind: Kind::Full(if bytes.is_empty() { None } else { Some(bytes) }),
            watch: None,
        }
    }

    /// No body.
    pub fn empty() -> Self {
        ResBody {
            kind: Kind::Full(None),
            watch: None,
        }
    }

    /// A body read from `file`, which is already positioned at the first byte to send: the next
    /// `len` bytes, in chunks of up to 64 KiB. Its length is known, like a whole body's. A read
    /// error ends the body with that error, and so does a file that ends before `len` bytes
    /// (cut short while being sent): the client never gets fewer bytes than announced without
    /// seeing the response fail.
    pub fn file(file: tokio::fs::File, len: u64) -> Self {
        ResBody {
            kind: Kind::File(Box::new(FileBody {
                file,
                remaining: len,
                buf: BytesMut::new(),
            })),
            watch: None,
        }
    }

    /// The length of a whole body, or what is left of a file body; `None` for a streamed one.
    pub fn exact_len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Full(Some(b)) => Some(b.len() as u64),
            Kind::Full(None) => Some(0),
            Kind::Channel { .. } => None,
            Kind::File(f) => Some(f.remaining),
        }
    }

    /// A body fed chunk by chunk through the returned sender; at most `depth` chunks wait.
    pub fn channel(depth: usize) -> (ResBody, BodySender) {
        let (tx, rx) = mpsc::channel(depth.max(1));
        let (alive, body_alive) = tokio::sync::watch::channel(());
        (
            ResBody {
                kind: Kind::Channel { rx, _alive: alive },
                watch: None,
            },
            BodySender { tx, body_alive },
        )
    }
}

impl ResBody {
    /// Makes the body report to `activity` while a piece it handed over waits in the connection
    /// (see [`super::io::Activity::cancel_stalled`]), and hand its data over in pieces of at
    /// most [`WATCHED_CHUNK`]. For HTTP/2 responses: there a client that grants no flow-control
    /// window stalls a stream without blocking a write.
    pub(crate) fn watch(&mut self, activity: std::sync::Arc<super::io::Activity>) {
        // A body of at most [`WATCHED_TAIL`] goes over in one piece, which may stay queued
        // anyway: watching it would cost every small response for nothing.
        let small = self.exact_len().is_some_and(|n| n <= WATCHED_TAIL as u64);
        if small || self.watch.is_some() {
            return;
        }
        self.watch = Some(Box::new(Watch {
            activity,
            ctl: None,
            key: None,
            held: None,
        }));
    }
}

impl Drop for ResBody {
    fn drop(&mut self) {
        if let Some(w) = &mut self.watch {
            if let Some(key) = w.key.take() {
                w.activity.taken(key, false);
            }
        }
    }
}

impl Kind {
    fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, std::io::Error>>> {
        match self {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Channel { rx, .. } => rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data))),
            Kind::File(f) => f.poll_chunk(cx).map(|c| c.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Kind::Full(b) => b.is_none(),
            Kind::Channel { .. } => false,
            Kind::File(f) => f.remaining == 0,
        }
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let ResBody { kind, watch } = &mut *self;
        let Some(w) = watch else {
            return kind.poll_frame(cx);
        };
        // Asked for more: the piece handed over last has gone on.
        if let Some(key) = w.key.take() {
            w.activity.taken(key, true);
        }
        if w.ctl.is_none() {
            w.ctl = super::io::StreamCtl::current();
        }
        let held = match w.held.take() {
            Some(held) => held,
            None => match ready!(kind.poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    // An empty piece needs no window.
                    Ok(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                other => return Poll::Ready(other),
            },
        };
        let n = if kind.is_end_stream() && held.len() > WATCHED_TAIL {
            (held.len() - WATCHED_TAIL).min(WATCHED_CHUNK)
        } else {
            held.len().min(WATCHED_CHUNK)
        };
        let mut piece = held;
        if n < piece.len() {
            w.held = Some(piece.split_off(n));
        }
        w.key = Some(w.activity.wait(w.ctl.clone()));
        Poll::Ready(Some(Ok(Frame::data(piece))))
    }

    fn is_end_stream(&self) -> bool {
        self.kind.is_end_stream() && self.watch.as_ref().is_none_or(|w| w.held.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        let held = self
            .watch
            .as_ref()
            .and_then(|w| w.held.as_ref())
            .map_or(0, |h| h.len() as u64);
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64 + held),
            Kind::Full(None) => SizeHint::with_exact(held),
            Kind::Channel { .. } => SizeHint::default(),
            Kind::File(f) => SizeHint::with_exact(f.remaining + held),
        }
    }
}
