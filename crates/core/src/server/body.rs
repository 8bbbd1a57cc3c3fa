//! Request and response bodies of the server.
//!
//! Small request bodies are read in full before the handler runs (one hand-off, no per-chunk
//! calls); larger or unknown-length ones are handed over as a [`BodyStream`] that the handler
//! pulls from, so a slow handler pushes back on the client through TCP flow control. Response
//! bodies are either whole ([`ResBody::full`]) or fed through a bounded channel
//! ([`ResBody::channel`]) and flushed as produced.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// Bodies with a declared `Content-Length` up to this size are read in full before the handler
/// is called; longer ones and chunked ones are streamed to it.
pub const INLINE_BODY_LIMIT: usize = 64 * 1024;

/// A request body being received.
pub struct BodyStream {
    incoming: Option<Incoming>,
    received: usize,
    limit: usize,
    deadline: Option<Instant>,
}

impl BodyStream {
    pub(crate) fn new(incoming: Incoming, limit: usize, deadline: Option<Instant>) -> Self {
        BodyStream {
            incoming: Some(incoming),
            received: 0,
            limit,
            deadline,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// The next chunk, `None` at the end. Fails with [`Error::BodyTooLarge`] past the limit,
    /// [`Error::Timeout`] past the request deadline, and [`Error::ConnectionReset`] when the
    /// client goes away mid-body.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
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
}

enum Kind {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<std::io::Result<Bytes>>),
}

/// The sending side of a streamed response body. Dropping it ends the body normally;
/// [`BodySender::abort`] cuts it so the client sees an incomplete response.
pub struct BodySender {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
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
}

impl ResBody {
    /// A whole body.
    pub fn full(bytes: Bytes) -> Self {
        ResBody {
            kind: Kind::Full(if bytes.is_empty() { None } else { Some(bytes) }),
        }
    }

    /// No body.
    pub fn empty() -> Self {
        ResBody {
            kind: Kind::Full(None),
        }
    }

    /// The length of a whole body; `None` for a streamed one.
    pub fn exact_len(&self) -> Option<u64> {
        match &self.kind {
            Kind::Full(Some(b)) => Some(b.len() as u64),
            Kind::Full(None) => Some(0),
            Kind::Channel(_) => None,
        }
    }

    /// A body fed chunk by chunk through the returned sender; at most `depth` chunks wait.
    pub fn channel(depth: usize) -> (ResBody, BodySender) {
        let (tx, rx) = mpsc::channel(depth.max(1));
        (
            ResBody {
                kind: Kind::Channel(rx),
            },
            BodySender { tx },
        )
    }
}

impl Body for ResBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        match &mut self.kind {
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Channel(rx) => rx.poll_recv(cx).map(|c| c.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(&self.kind, Kind::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Kind::Full(None) => SizeHint::with_exact(0),
            Kind::Channel(_) => SizeHint::default(),
        }
    }
}
