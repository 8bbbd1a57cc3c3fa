//! WebSocket connections (RFC 6455) shared by the server and the client.
//!
//! A connection is driven by one task ([`run`]) that reads frames and writes what the
//! [`WsHandle`] queued. Handles can be cloned and used from any thread; sends never block.
//! Incoming messages and the one close event go to a [`WsEvents`] implementation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::error::{Error, Result};

/// Close code sent when the connection went away without a close frame (never on the wire).
pub const CLOSE_ABNORMAL: u16 = 1006;
/// Close code reported when the peer's close frame carried no code (never on the wire).
pub const CLOSE_NO_STATUS: u16 = 1005;
/// Close code for a server going away (shutdown).
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// A received WebSocket data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message, already validated as UTF-8.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// Receives the events of WebSocket connections. Called on tokio threads, in order per connection.
pub trait WsEvents: Send + Sync + 'static {
    /// A complete data message arrived on connection `id`.
    fn on_message(&self, id: u64, msg: WsMessage);
    /// Connection `id` closed. Called exactly once per connection, with the peer's close code
    /// (1005 when its close frame had none, 1006 when the connection dropped without one) or,
    /// when this side failed the connection for a protocol error, the code it sent.
    fn on_close(&self, id: u64, code: u16, reason: String);
}

/// Limits of a WebSocket connection.
#[derive(Debug, Clone)]
pub struct WsLimits {
    /// Largest message accepted; a bigger one closes the connection with 1009.
    pub max_message_size: usize,
    /// Largest single frame accepted.
    pub max_frame_size: usize,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl WsLimits {
    /// The tungstenite configuration for these limits.
    pub fn config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}

enum Outgoing {
    Msg(Message, usize),
    Close(u16, String),
}

struct Shared {
    tx: mpsc::UnboundedSender<Outgoing>,
    buffered: AtomicUsize,
    closing: AtomicBool,
}

/// A cheap, cloneable handle to send on a WebSocket connection from any thread.
#[derive(Clone)]
pub struct WsHandle {
    id: u64,
    shared: Arc<Shared>,
}

/// The receiving end of a handle's queue, consumed by [`run`].
pub struct WsDriver {
    id: u64,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    shared: Arc<Shared>,
}

/// Makes a handle and the driver that [`run`] needs for connection `id`.
pub fn channel(id: u64) -> (WsHandle, WsDriver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        tx,
        buffered: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
    });
    (
        WsHandle {
            id,
            shared: shared.clone(),
        },
        WsDriver { id, rx, shared },
    )
}

/// Checks a close code that an application may send (RFC 6455 section 7.4).
pub fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

impl WsHandle {
    /// The connection id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Bytes queued but not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.shared.buffered.load(Ordering::Relaxed)
    }

    /// True once a close was requested or the connection ended.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Relaxed) || self.shared.tx.is_closed()
    }

    fn push(&self, msg: Message, len: usize) -> Result<()> {
        if self.is_closing() {
            return Err(Error::WsClosed);
        }
        self.shared.buffered.fetch_add(len, Ordering::Relaxed);
        self.shared.tx.send(Outgoing::Msg(msg, len)).map_err(|_| {
            self.shared.buffered.fetch_sub(len, Ordering::Relaxed);
            Error::WsClosed
        })
    }

    /// Queues a text message.
    pub fn send_text(&self, text: String) -> Result<()> {
        let len = text.len();
        self.push(Message::text(text), len)
    }

    /// Queues a binary message.
    pub fn send_binary(&self, data: Bytes) -> Result<()> {
        let len = data.len();
        self.push(Message::binary(data), len)
    }

    /// Queues a ping with an application payload of at most 125 bytes.
    pub fn ping(&self, data: Bytes) -> Result<()> {
        if data.len() > 125 {
            return Err(Error::InvalidArgument(
                "ping payload longer than 125 bytes".into(),
            ));
        }
        self.push(Message::Ping(data), 0)
    }

    /// Starts the close handshake with `code` and `reason` (at most 123 bytes of UTF-8).
    /// Closing twice is a no-op.
    pub fn close(&self, code: u16, reason: String) -> Result<()> {
        if !valid_close_code(code) {
            return Err(Error::InvalidArgument(format!(
                "close code {code} may not be sent"
            )));
        }
        if reason.len() > 123 {
            return Err(Error::InvalidArgument(
                "close reason longer than 123 bytes".into(),
            ));
        }
        if self.shared.closing.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        let _ = self.shared.tx.send(Outgoing::Close(code, reason));
        Ok(())
    }
}

fn close_code_for(err: &WsError) -> Option<u16> {
    match err {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => Some(1009),
        WsError::Capacity(_) => Some(1009),
        WsError::Utf8(_) => Some(1007),
        // The peer went away without a close frame: nothing to answer, the close is abnormal.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(1002),
        _ => None,
    }
}

/// Drives one connection until it ends, then reports the close once to `events`.
pub async fn run<S>(
    mut ws: WebSocketStream<S>,
    mut driver: WsDriver,
    events: Arc<dyn WsEvents>,
    limits: WsLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = driver.id;
    let mut close_sent: Option<(u16, String)> = None;
    let mut received: Option<(u16, String)> = None;
    let mut failed: Option<u16> = None;
    let mut queue_open = true;
    let close_deadline = tokio::time::sleep(Duration::from_secs(u64::MAX >> 2));
    tokio::pin!(close_deadline);

    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    events.on_message(id, WsMessage::Text(text.as_str().to_owned()));
                }
                Some(Ok(Message::Binary(data))) => events.on_message(id, WsMessage::Binary(data)),
                Some(Ok(Message::Ping(_))) => {
                    // tungstenite queued the pong; push it out now.
                    if ws.flush().await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Pong(_))) | Some(Ok(Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    received = Some(match frame {
                        Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                        None => (CLOSE_NO_STATUS, String::new()),
                    });
                    driver.shared.closing.store(true, Ordering::Relaxed);
                    // tungstenite queued the echo of the close frame; flush it, then the
                    // stream ends (for a client, when the server closes TCP).
                    let _ = ws.flush().await;
                }
                Some(Err(err)) => {
                    if let (Some(code), None) = (close_code_for(&err), &close_sent) {
                        failed = Some(code);
                        let frame = CloseFrame { code: CloseCode::from(code), reason: "".into() };
                        let _ = tokio::time::timeout(limits.close_timeout, ws.close(Some(frame))).await;
                    }
                    break;
                }
                None => break,
            },
            out = driver.rx.recv(), if queue_open && close_sent.is_none() => match out {
                Some(Outgoing::Msg(msg, len)) => {
                    let mut written = len;
                    let mut ok = ws.feed(msg).await.is_ok();
                    // Batch whatever else is queued into one flush.
                    while ok {
                        match driver.rx.try_recv() {
                            Ok(Outgoing::Msg(msg, len)) => {
                                written += len;
                                ok = ws.feed(msg).await.is_ok();
                            }
                            Ok(Outgoing::Close(code, reason)) => {
                                ok = ws.flush().await.is_ok();
                                if ok {
                                    ok = send_close(&mut ws, code, &reason).await;
                                    close_sent = Some((code, reason));
                                    close_deadline.as_mut().reset(tokio::time::Instant::now() + limits.close_timeout);
                                }
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    if ok && close_sent.is_none() {
                        ok = ws.flush().await.is_ok();
                    }
                    driver.shared.buffered.fetch_sub(written, Ordering::Relaxed);
                    if !ok {
                        break;
                    }
                }
                Some(Outgoing::Close(code, reason)) => {
                    if received.is_some() {
                        continue;
                    }
                    if !send_close(&mut ws, code, &reason).await {
                        break;
                    }
                    close_sent = Some((code, reason));
                    close_deadline.as_mut().reset(tokio::time::Instant::now() + limits.close_timeout);
                }
                None => queue_open = false,
            },
            _ = &mut close_deadline, if close_sent.is_some() => break,
        }
    }
    driver.shared.closing.store(true, Ordering::Relaxed);
    driver.rx.close();
    let (code, reason) = match (received, failed) {
        (Some(r), _) => r,
        (None, Some(code)) => (code, String::new()),
        (None, None) => (CLOSE_ABNORMAL, String::new()),
    };
    events.on_close(id, code, reason);
}

async fn send_close<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &str) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    };
    ws.close(Some(frame)).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_rfc6455() {
        assert!(valid_close_code(1000));
        assert!(valid_close_code(4999));
        assert!(!valid_close_code(1005));
        assert!(!valid_close_code(1006));
        assert!(!valid_close_code(999));
        assert!(!valid_close_code(2000));
    }

    #[test]
    fn close_rejects_long_reason_and_closes_once() {
        let (h, mut d) = channel(1);
        assert!(h.close(1000, "x".repeat(124)).is_err());
        h.close(1000, "bye".into()).unwrap();
        h.close(1000, "again".into()).unwrap();
        assert!(matches!(d.rx.try_recv(), Ok(Outgoing::Close(1000, _))));
        assert!(d.rx.try_recv().is_err());
        assert!(matches!(h.send_text("late".into()), Err(Error::WsClosed)));
    }

    #[test]
    fn buffered_amount_counts_queued_bytes() {
        let (h, _d) = channel(2);
        h.send_text("hello".into()).unwrap();
        h.send_binary(Bytes::from_static(&[1, 2, 3])).unwrap();
        assert_eq!(h.buffered_amount(), 8);
    }
}
