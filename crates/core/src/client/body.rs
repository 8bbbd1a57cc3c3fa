//! Request bodies (bytes or a bounded stream) and the response body reader (idle timeout,
//! deadline, cancellation, decompression).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::decode::Decoder;
use crate::error::{Error, Result};

/// A request body.
#[derive(Debug, Default)]
pub enum RequestBody {
    /// No body.
    #[default]
    Empty,
    /// Bytes in memory; can be sent again on a redirect or retry.
    Bytes(Bytes),
    /// Chunks pushed by the caller through a bounded channel (backpressure); sent once only.
    /// `Err` chunks abort the request.
    Stream(mpsc::Receiver<std::result::Result<Bytes, String>>),
}

impl RequestBody {
    /// True when the body can be sent again.
    pub fn is_replayable(&self) -> bool {
        !matches!(self, RequestBody::Stream(_))
    }
}

/// The hyper body type of outgoing requests.
pub(crate) enum OutBody {
    Full(Option<Bytes>),
    Stream {
        rx: mpsc::Receiver<std::result::Result<Bytes, String>>,
        sent: u64,
        progress: Option<Progress>,
    },
}

/// A callback told how many bytes have gone so far (`(done, total)`).
pub type Progress = std::sync::Arc<dyn Fn(u64, Option<u64>) + Send + Sync>;

/// An error of a streamed request body, surfaced by hyper.
#[derive(Debug)]
pub(crate) struct StreamBodyError(pub String);

impl std::fmt::Display for StreamBodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body stream failed: {}", self.0)
    }
}

impl std::error::Error for StreamBodyError {}

impl Body for OutBody {
    type Data = Bytes;
    type Error = StreamBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, StreamBodyError>>> {
        match self.get_mut() {
            OutBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            OutBody::Stream { rx, sent, progress } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    *sent += chunk.len() as u64;
                    if let Some(p) = progress {
                        p(*sent, None);
                    }
                    Poll::Ready(Some(Ok(Frame::data(chunk))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(StreamBodyError(e)))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, OutBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            OutBody::Full(None) => SizeHint::with_exact(0),
            OutBody::Stream { .. } => SizeHint::default(),
        }
    }
}

/// Reads a response body chunk by chunk, under the limits of its request.
pub struct BodyReader {
    body: Option<Incoming>,
    decoder: Option<Decoder>,
    idle: Option<Duration>,
    deadline: Option<Instant>,
    cancel: Option<CancellationToken>,
    received: u64,
    total: Option<u64>,
    progress: Option<Progress>,
    pending: Option<Bytes>,
}

impl std::fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyReader")
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl BodyReader {
    pub(crate) fn new(
        body: Incoming,
        decoder: Option<Decoder>,
        idle: Option<Duration>,
        deadline: Option<Instant>,
        cancel: Option<CancellationToken>,
        progress: Option<Progress>,
    ) -> BodyReader {
        let total = body.size_hint().exact();
        BodyReader {
            body: Some(body),
            decoder,
            idle,
            deadline,
            cancel,
            received: 0,
            total,
            progress,
            pending: None,
        }
    }

    /// An already finished body.
    pub fn empty() -> BodyReader {
        BodyReader {
            body: None,
            decoder: None,
            idle: None,
            deadline: None,
            cancel: None,
            received: 0,
            total: Some(0),
            progress: None,
            pending: None,
        }
    }

    /// Bytes of the (encoded) body received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    async fn raw_frame(&mut self) -> Result<Option<Bytes>> {
        loop {
            let Some(body) = self.body.as_mut() else {
                return Ok(None);
            };
            let frame = body.frame();
            let frame = async {
                match self.idle {
                    Some(t) => tokio::time::timeout(t, frame)
                        .await
                        .map_err(|_| Error::Timeout("body"))?,
                    None => frame.await,
                }
                .transpose()
                .map_err(|e| Error::ConnectionReset(format!("while reading the body: {e}")))
            };
            let deadline = self.deadline;
            let frame = async move {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, frame)
                        .await
                        .map_err(|_| Error::Timeout("request"))?,
                    None => frame.await,
                }
            };
            let frame = match &self.cancel {
                Some(token) => tokio::select! {
                    biased;
                    _ = token.cancelled() => Err(Error::Aborted),
                    f = frame => f,
                },
                None => frame.await,
            };
            match frame {
                Err(e) => {
                    self.body = None;
                    return Err(e);
                }
                Ok(None) => {
                    self.body = None;
                    return Ok(None);
                }
                Ok(Some(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if data.is_empty() {
                            continue;
                        }
                        self.received += data.len() as u64;
                        if let Some(p) = &self.progress {
                            p(self.received, self.total);
                        }
                        return Ok(Some(data));
                    }
                }
            }
        }
    }

    /// The next chunk of the (decoded) body, `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        loop {
            let raw = self.raw_frame().await?;
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(raw);
            };
            match raw {
                Some(data) => {
                    let out = decoder.push(&data)?;
                    if !out.is_empty() {
                        return Ok(Some(out));
                    }
                }
                None => {
                    let out = decoder.finish()?;
                    self.decoder = None;
                    return Ok(if out.is_empty() { None } else { Some(out) });
                }
            }
        }
    }

    /// Takes the body chunks that have already arrived (without waiting), up to about `limit`
    /// bytes. Returns them and whether the body is finished. Small responses usually arrive with
    /// their head, so this gives them whole without a second call.
    pub fn read_ready(&mut self, limit: usize) -> Result<(Bytes, bool)> {
        use futures_util::FutureExt;
        let mut parts: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        while size < limit {
            match self.next_chunk().now_or_never() {
                Some(Ok(Some(chunk))) => {
                    size += chunk.len();
                    parts.push(chunk);
                }
                Some(Ok(None)) => return Ok((concat(parts, size), true)),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok((concat(parts, size), false))
    }

    /// Reads up to about `limit` bytes. Returns them and whether the body is finished.
    pub async fn read_up_to(&mut self, limit: usize) -> Result<(Bytes, bool)> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        while size < limit {
            match self.next_chunk().await? {
                Some(chunk) => {
                    size += chunk.len();
                    parts.push(chunk);
                }
                None => return Ok((concat(parts, size), true)),
            }
        }
        // The next read may be the end: peek without blocking forever on a stalled peer is not
        // possible, so a body of exactly `limit` bytes is reported as unfinished.
        Ok((concat(parts, size), false))
    }

    /// Reads the whole rest of the body, failing once it passes `max` bytes.
    pub async fn read_all(&mut self, max: usize) -> Result<Bytes> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        while let Some(chunk) = self.next_chunk().await? {
            size += chunk.len();
            if size > max {
                return Err(Error::BodyTooLarge { limit: max });
            }
            parts.push(chunk);
        }
        Ok(concat(parts, size))
    }
}

fn concat(mut parts: Vec<Bytes>, size: usize) -> Bytes {
    match parts.len() {
        0 => Bytes::new(),
        1 => parts.pop().unwrap_or_default(),
        _ => {
            let mut out = Vec::with_capacity(size);
            for p in parts {
                out.extend_from_slice(&p);
            }
            Bytes::from(out)
        }
    }
}
