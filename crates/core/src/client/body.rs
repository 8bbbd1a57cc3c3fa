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

/// Largest frame an in-memory body with an upload progress callback is cut into.
pub const UPLOAD_CHUNK: usize = 64 << 10;

/// The hyper body type of outgoing requests.
pub(crate) enum OutBody {
    Full(Option<Bytes>),
    /// An in-memory body handed over in [`UPLOAD_CHUNK`] frames, telling `progress` of each.
    Counted {
        rest: Bytes,
        sent: u64,
        total: u64,
        progress: Progress,
    },
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
            OutBody::Counted {
                rest,
                sent,
                total,
                progress,
            } => {
                if rest.is_empty() {
                    return Poll::Ready(None);
                }
                let chunk = rest.split_to(rest.len().min(UPLOAD_CHUNK));
                *sent += chunk.len() as u64;
                progress(*sent, Some(*total));
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
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
        match self {
            OutBody::Full(data) => data.is_none(),
            OutBody::Counted { rest, .. } => rest.is_empty(),
            OutBody::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            OutBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            OutBody::Full(None) => SizeHint::with_exact(0),
            OutBody::Counted { rest, .. } => SizeHint::with_exact(rest.len() as u64),
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

    /// The next chunk of the (decoded) body, `None` at the end. A decoded body comes in pieces
    /// of at most 64 KiB (`DECODED_CHUNK`): what the decoder can give from the input it has is
    /// returned before more of the body is read.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        loop {
            if let Some(decoder) = self.decoder.as_mut() {
                if let Some(out) = decoder.next_output()? {
                    return Ok(Some(out));
                }
            }
            let raw = self.raw_frame().await?;
            let Some(decoder) = self.decoder.as_mut() else {
                return Ok(raw);
            };
            match raw {
                Some(data) => decoder.push(data),
                None => {
                    let out = decoder.finish()?;
                    if out.is_none() {
                        self.decoder = None;
                    }
                    return Ok(out);
                }
            }
        }
    }

    /// Takes the body chunks that have already arrived (without waiting), up to about `limit`
    /// bytes. Returns them and whether the body is finished. Small responses usually arrive with
    /// their head, so this gives them whole without a second call.
    pub fn read_ready(&mut self, limit: usize) -> Result<(Bytes, bool)> {
        let mut parts: Vec<Bytes> = Vec::new();
        let mut size = 0usize;
        let done = self.take_ready(&mut parts, &mut size, limit)?;
        Ok((concat(parts, size), done))
    }

    /// Adds to `parts` the chunks that are ready now, while `size` is under `limit`. Returns
    /// whether the body is finished.
    fn take_ready(
        &mut self,
        parts: &mut Vec<Bytes>,
        size: &mut usize,
        limit: usize,
    ) -> Result<bool> {
        use futures_util::FutureExt;
        while *size < limit {
            match self.next_chunk().now_or_never() {
                Some(Ok(Some(chunk))) => {
                    *size += chunk.len();
                    parts.push(chunk);
                }
                Some(Ok(None)) => return Ok(true),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(false)
    }

    /// Waits for the next chunk of the body, then adds what else is ready without waiting, up to
    /// about `limit` bytes (a decoded body goes at most `DECODED_CHUNK` past it). Returns the
    /// bytes and whether the body is finished; like a stream read, it does not wait for `limit`
    /// bytes to gather, so a body the server sends bit by bit is passed on as it comes.
    pub async fn read_up_to(&mut self, limit: usize) -> Result<(Bytes, bool)> {
        let Some(first) = self.next_chunk().await? else {
            return Ok((Bytes::new(), true));
        };
        let mut size = first.len();
        let mut parts = vec![first];
        // The end may be ready too; a body of exactly `limit` bytes may still be reported as
        // unfinished (the next read then gives the end).
        let done = self.take_ready(&mut parts, &mut size, limit)?;
        Ok((concat(parts, size), done))
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use crate::client::decode::DECODED_CHUNK;
    use crate::client::{Client, ClientOptions, ClientRequest};

    use super::*;

    /// Serves one request: writes `head` and `parts[0]`, then each further part when the test
    /// sends on the returned channel. Returns the URL.
    async fn stepped_server(head: String, parts: Vec<Vec<u8>>) -> (String, mpsc::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (go, mut next) = mpsc::channel::<()>(1);
        tokio::spawn(async move {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let mut parts = parts.into_iter();
            let mut out = head.into_bytes();
            out.extend(parts.next().unwrap_or_default());
            if tcp.write_all(&out).await.is_err() {
                return;
            }
            for part in parts {
                if next.recv().await.is_none() || tcp.write_all(&part).await.is_err() {
                    return;
                }
            }
            // Hold the connection until the client is done with it.
            let _ = tcp.read(&mut buf).await;
        });
        (format!("http://127.0.0.1:{port}/"), go)
    }

    /// One chunk of a chunked body.
    fn chunk(data: &[u8]) -> Vec<u8> {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        out
    }

    async fn open(url: &str) -> BodyReader {
        let client = Client::new(ClientOptions::default()).expect("client");
        let (head, body) = client
            .send(ClientRequest {
                method: "GET".into(),
                url: url.into(),
                ..Default::default()
            })
            .await
            .expect("send");
        assert_eq!(head.status, 200);
        body
    }

    /// `read_up_to` with a limit the body has not reached; fails rather than hang if it waits
    /// for more than has been sent.
    async fn read_some(body: &mut BodyReader) -> (Bytes, bool) {
        tokio::time::timeout(Duration::from_secs(20), body.read_up_to(1 << 20))
            .await
            .expect("read_up_to waited for data the server had not sent")
            .expect("read")
    }

    async fn read_rest(body: &mut BodyReader) -> Vec<u8> {
        let mut rest = Vec::new();
        loop {
            let (data, done) = read_some(body).await;
            rest.extend_from_slice(&data);
            if done {
                return rest;
            }
        }
    }

    #[tokio::test]
    async fn read_up_to_returns_what_has_arrived() {
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_string();
        let mut last = chunk(b"line 2\n");
        last.extend_from_slice(b"0\r\n\r\n");
        first_line_then_rest(head, chunk(b"line 1\n"), last).await;
    }

    /// The server sends `first`, then `last` only once the first read has returned: that read
    /// must give line 1 alone, and the rest line 2.
    async fn first_line_then_rest(head: String, first: Vec<u8>, last: Vec<u8>) {
        let (url, go) = stepped_server(head, vec![first, last]).await;
        let mut body = open(&url).await;
        let (data, done) = read_some(&mut body).await;
        assert_eq!((&data[..], done), (&b"line 1\n"[..], false));
        go.send(()).await.expect("server");
        assert_eq!(read_rest(&mut body).await, b"line 2\n");
    }

    #[tokio::test]
    async fn read_up_to_returns_what_has_been_decoded() {
        // A gzip stream flushed after each line, as a streaming server sends it.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(b"line 1\n").expect("gz");
        gz.flush().expect("gz");
        let first = std::mem::take(gz.get_mut());
        gz.write_all(b"line 2\n").expect("gz");
        let mut last = chunk(&gz.finish().expect("gz"));
        last.extend_from_slice(b"0\r\n\r\n");
        let head =
            "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n";
        first_line_then_rest(head.to_string(), chunk(&first), last).await;
    }

    #[tokio::test]
    async fn decoded_bodies_come_in_bounded_chunks() {
        let size = 16usize << 20;
        let zeros = vec![0u8; 1 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for _ in 0..size >> 20 {
            gz.write_all(&zeros).expect("gz");
        }
        let bomb = gz.finish().expect("gz");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
            bomb.len()
        );
        let (url, _go) = stepped_server(head.clone(), vec![bomb.clone()]).await;
        let mut body = open(&url).await;
        let mut total = 0;
        while let Some(chunk) = body.next_chunk().await.expect("chunk") {
            assert!(chunk.len() <= DECODED_CHUNK, "{}", chunk.len());
            assert!(chunk.iter().all(|&b| b == 0));
            total += chunk.len();
        }
        assert_eq!(total, size);
        // A read takes what is ready up to its limit, not the whole decoded body.
        let (url, _go) = stepped_server(head, vec![bomb]).await;
        let mut body = open(&url).await;
        let mut total = 0;
        loop {
            let (data, done) = body.read_up_to(1 << 20).await.expect("read");
            assert!(data.len() <= (1 << 20) + DECODED_CHUNK, "{}", data.len());
            total += data.len();
            if done {
                break;
            }
        }
        assert_eq!(total, size);
    }
}
