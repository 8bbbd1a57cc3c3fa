//! WebSocket connections (RFC 6455, RFC 7692 permessage-deflate) shared by the server and the
//! client.
//!
//! hypersock has its own codec ([`frame`], [`deflate`]): frames are parsed incrementally with
//! limits, unmasked in place and moved to the application without copies where possible;
//! pre-framed messages ([`PreparedMessage`]) are written to many connections as the same bytes.
//!
//! A connection is driven by one task ([`run`]) that reads frames and writes what the
//! [`WsHandle`] queued, both directions at once. Handles can be cloned and used from any thread;
//! sends never block. Events go to a [`WsEvents`] implementation, in order per connection, and
//! the close event is reported exactly once, whatever ends the connection (even an aborted task).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};

mod conn;
pub mod deflate;
pub mod frame;
pub mod handshake;
mod prepared;
mod queue;

pub use conn::run;
pub use deflate::{DeflateOptions, Negotiated};
pub use prepared::PreparedMessage;

/// Close code sent when the connection went away without a close frame (never on the wire).
pub const CLOSE_ABNORMAL: u16 = 1006;
/// Close code reported when the peer's close frame carried no code (never on the wire).
pub const CLOSE_NO_STATUS: u16 = 1005;
/// Close code for a server going away (shutdown), or an idle connection.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code for a policy violation, used when a consumer exceeds the backpressure limit.
pub const CLOSE_POLICY: u16 = 1008;

/// A received WebSocket data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsMessage {
    /// A text message, already validated as UTF-8.
    Text(String),
    /// A binary message.
    Binary(Bytes),
}

/// Which end of the connection this is: servers expect masked frames, clients send them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The accepting side.
    Server,
    /// The dialing side.
    Client,
}

/// Receives the events of WebSocket connections. Called on tokio threads, in order per
/// connection; implementations must not block.
pub trait WsEvents: Send + Sync + 'static {
    /// A complete data message arrived on connection `id`.
    fn on_message(&self, id: u64, msg: WsMessage);
    /// Whole binary messages that arrived together on connection `id`, in order: one message
    /// per range of `region` (which also holds their frame headers). The default passes each
    /// to [`WsEvents::on_message`]; an implementation can hand the region on as one buffer.
    fn on_binary_batch(&self, id: u64, region: Bytes, ranges: &[Range<usize>]) {
        for msg in batch_messages(&region, ranges) {
            self.on_message(id, msg);
        }
    }
    /// Connection `id` closed. Called exactly once per connection, with the peer's close code
    /// (1005 when its close frame had none, 1006 when the connection dropped without one) or,
    /// when this side failed the connection, the code it sent (1002, 1007, 1009, ...), or 1008
    /// when it exceeded the backpressure limit.
    fn on_close(&self, id: u64, code: u16, reason: String);
    /// A ping arrived (the pong is sent automatically).
    fn on_ping(&self, _id: u64, _data: Bytes) {}
    /// A pong arrived.
    fn on_pong(&self, _id: u64, _data: Bytes) {}
    /// Everything queued was written after a send reported backpressure.
    fn on_drain(&self, _id: u64) {}
    /// The write marker `token` ([`WsHandle::mark_written`], or a part's `notify`) was passed:
    /// what it stands behind has been written to the socket. A marker behind a message that
    /// waits for an open message in parts passes after that message, so markers may pass out
    /// of the order they were queued in; the ones still waiting when the connection ends never
    /// pass (`on_close` says so).
    fn on_written(&self, _id: u64, _token: u32) {}
    /// The peer broke the protocol (or timed out); `on_close` follows. When this side fails
    /// the connection, its close frame waits until `gate` is dropped (or the close timeout
    /// passes), so that replies the application queued for messages delivered before the
    /// error still go out first, in order. Drop it once earlier events are handled.
    fn on_error(&self, _id: u64, _error: Error, _gate: FailGate) {}
}

/// The messages of a [`WsEvents::on_binary_batch`], one by one (each shares `region`'s memory).
pub fn batch_messages<'a>(
    region: &'a Bytes,
    ranges: &'a [Range<usize>],
) -> impl Iterator<Item = WsMessage> + 'a {
    ranges
        .iter()
        .map(|range| WsMessage::Binary(region.slice(range.clone())))
}

/// Holds back the close frame of a failed connection until dropped (see
/// [`WsEvents::on_error`]).
pub struct FailGate(Option<Arc<Shared>>);

impl FailGate {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        FailGate(Some(shared))
    }
}

impl Drop for FailGate {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            let _ = shared.tx.send(Outgoing::Resume);
        }
    }
}

/// Limits and timers of a WebSocket connection.
#[derive(Debug, Clone)]
pub struct WsLimits {
    /// Largest message accepted (after decompression); a bigger one closes with 1009.
    pub max_message_size: usize,
    /// Largest single frame accepted; a bigger one closes with 1009.
    pub max_frame_size: usize,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
    /// Close with 1001 when nothing at all arrives for this long.
    pub idle_timeout: Option<Duration>,
    /// Send a ping this often.
    pub ping_interval: Option<Duration>,
    /// Drop the connection (1006) when no pong comes this long after a heartbeat ping.
    pub pong_timeout: Duration,
    /// Above this many queued bytes, sends report backpressure and `drain` follows.
    pub high_water_mark: usize,
    /// Above this many queued bytes the connection is dropped (a consumer that never reads).
    pub max_backpressure: usize,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            close_timeout: Duration::from_secs(5),
            idle_timeout: None,
            ping_interval: None,
            pong_timeout: Duration::from_secs(10),
            high_water_mark: 1 << 20,
            max_backpressure: 64 << 20,
        }
    }
}

/// WebSocket options of a server: connection limits plus handshake policy.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Per-connection limits and timers.
    pub limits: WsLimits,
    /// permessage-deflate, when enabled.
    pub deflate: Option<DeflateOptions>,
    /// When set, only these `Origin` values may connect (others get 403). Compared
    /// case-insensitively; a request without `Origin` (not a browser) is allowed.
    pub allowed_origins: Option<Vec<String>>,
    /// Most concurrent WebSocket connections; more get 503. 0 means no limit.
    pub max_connections: usize,
    /// Time the application's upgrade decision may take; then 503.
    pub handshake_timeout: Duration,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            limits: WsLimits::default(),
            deflate: None,
            allowed_origins: None,
            max_connections: 0,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What a send did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; the queue is below the high-water mark.
    Queued,
    /// Queued, but the queue is above the high-water mark: wait for `on_drain`.
    Backpressure,
    /// Not queued: the backpressure limit was exceeded and the connection is being dropped.
    Dropped,
}

pub(crate) enum Outgoing {
    Text(Bytes),
    Binary(Bytes),
    /// One frame of a message sent in parts (or a whole message with its own compression
    /// choice), see [`WsHandle::send_part`].
    Part(Box<Part>),
    /// See [`WsHandle::mark_written`].
    Written(u32),
    Prepared(PreparedMessage),
    Ping(Bytes),
    Pong(Bytes),
    Close(u16, String),
    /// A [`FailGate`] was dropped.
    Resume,
    /// Reading from the peer stops (false) or goes on (true); see [`WsHandle::set_reading`].
    Reading(bool),
}

/// A frame of [`Outgoing::Part`].
pub(crate) struct Part {
    pub(crate) text: bool,
    pub(crate) data: Bytes,
    pub(crate) fin: bool,
    pub(crate) compress: Option<bool>,
    /// A whole message of its own: it waits for an open message instead of continuing it.
    pub(crate) whole: bool,
    /// A write marker token to pass once this frame is written (0: none).
    pub(crate) notify: u32,
}

/// Options of [`WsHandle::send_part`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartOptions {
    /// The message ends with this part.
    pub fin: bool,
    /// Compression of the message (the first part decides).
    pub compress: Compress,
    /// A whole message of its own (`fin` is then implied): while a message in parts is open it
    /// waits and follows it, like a plain send, instead of continuing it.
    pub whole: bool,
    /// A write marker token (not 0) reported by [`WsEvents::on_written`] once this frame is
    /// written; it travels with the frame, so it never waits behind other messages.
    pub notify: u32,
}

/// Per-message compression choice of [`WsHandle::send_part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compress {
    /// Compress when negotiated and the message reaches the threshold.
    #[default]
    Auto,
    /// Compress when negotiated, whatever the size.
    Always,
    /// Do not compress.
    Never,
}

/// Heartbeat times of a connection, readable from any thread (see [`WsHandle::heartbeat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// When this side last sent a ping (heartbeat or application), in microseconds since the
    /// Unix epoch; 0 when never.
    pub last_ping_us: u64,
    /// When the last pong arrived, in microseconds since the Unix epoch; 0 when never.
    pub last_pong_us: u64,
    /// Microseconds from the last ping to the pong that answered it; 0 before the first.
    pub rtt_us: u64,
}

pub(crate) fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

pub(crate) struct Shared {
    pub(crate) tx: queue::Queue,
    pub(crate) last_ping_us: AtomicU64,
    pub(crate) last_pong_us: AtomicU64,
    pub(crate) rtt_us: AtomicU64,
    pub(crate) buffered: AtomicUsize,
    pub(crate) closing: AtomicBool,
    pub(crate) want_drain: AtomicBool,
    /// Set to a close code to drop the connection at once (see [`WsHandle::terminate`]).
    pub(crate) kill_code: AtomicU32,
    high_water_mark: usize,
    max_backpressure: usize,
}

/// A cheap, cloneable handle to send on a WebSocket connection from any thread.
#[derive(Clone)]
pub struct WsHandle {
    id: u64,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsHandle").field("id", &self.id).finish()
    }
}

/// The receiving end of a handle's queue, consumed by [`run`].
pub struct WsDriver {
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
}

/// Makes a handle and the driver that [`run`] needs for connection `id`.
pub fn channel(id: u64, limits: &WsLimits) -> (WsHandle, WsDriver) {
    let shared = Arc::new(Shared {
        tx: queue::Queue::default(),
        last_ping_us: AtomicU64::new(0),
        last_pong_us: AtomicU64::new(0),
        rtt_us: AtomicU64::new(0),
        buffered: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
        want_drain: AtomicBool::new(false),
        kill_code: AtomicU32::new(0),
        high_water_mark: limits.high_water_mark,
        max_backpressure: limits.max_backpressure,
    });
    (
        WsHandle {
            id,
            shared: shared.clone(),
        },
        WsDriver { id, shared },
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

    /// Asks the CPU to load this connection's shared state into its cache (a hint: nothing
    /// happens where it is not supported). A fan-out calls it a few receivers ahead.
    #[inline]
    pub fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = Arc::as_ptr(&self.shared).cast::<i8>();
            // The state spans up to three cache lines; a prefetch never faults, even past the
            // end of an allocation, so this is sound for any address.
            for offset in [0, 64, 128] {
                // SAFETY: prefetching is a hint that reads nothing and cannot fault.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(offset)) };
            }
        }
    }

    /// Bytes of messages queued but not yet written to the socket.
    pub fn buffered_amount(&self) -> usize {
        self.shared.buffered.load(Ordering::Relaxed)
    }

    /// True once a close was requested or the connection ended.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Relaxed) || self.shared.tx.is_closed()
    }

    fn push(&self, msg: Outgoing, len: usize) -> Result<SendStatus> {
        let (status, waker) = self.push_deferred(msg, len)?;
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(status)
    }

    /// [`WsHandle::push`], leaving the wake-up of the connection's task to the caller.
    fn push_deferred(&self, msg: Outgoing, len: usize) -> Result<(SendStatus, Option<Waker>)> {
        // A queue the connection has closed refuses the message below.
        if self.shared.closing.load(Ordering::Relaxed) {
            return Err(Error::WsClosed);
        }
        let now = self.shared.buffered.fetch_add(len, Ordering::Relaxed) + len;
        if len > 0 && now > self.shared.max_backpressure {
            self.shared.buffered.fetch_sub(len, Ordering::Relaxed);
            self.kill(CLOSE_POLICY);
            return Ok((SendStatus::Dropped, None));
        }
        // Ask for `drain` before queueing, so that the driver cannot empty the queue unseen.
        let over = now > self.shared.high_water_mark;
        if over {
            self.shared.want_drain.store(true, Ordering::Release);
        }
        let Ok(waker) = self.shared.tx.send_no_wake(msg) else {
            self.shared.buffered.fetch_sub(len, Ordering::Relaxed);
            return Err(Error::WsClosed);
        };
        let status = if over {
            SendStatus::Backpressure
        } else {
            SendStatus::Queued
        };
        Ok((status, waker))
    }

    /// Queues a text message.
    pub fn send_text(&self, text: String) -> Result<SendStatus> {
        let len = text.len();
        self.push(Outgoing::Text(Bytes::from(text)), len)
    }

    /// Queues a binary message. The bytes are moved, not copied (unless masking needs to).
    pub fn send_binary(&self, data: Bytes) -> Result<SendStatus> {
        let len = data.len();
        self.push(Outgoing::Binary(data), len)
    }

    /// Queues one frame of a message sent in parts: the first part (`text` says which kind of
    /// message) starts it, parts with `fin` false leave it open and the part with `fin` ends it.
    /// A single part with `fin` is a whole message with its own compression choice. While a
    /// message is open, other messages queued on the connection (a Hub broadcast, another
    /// send) wait and follow it; pings, pongs and a close go out between its frames. With
    /// compression the whole message is compressed or not, as its first part decides.
    pub fn send_part(&self, text: bool, data: Bytes, options: PartOptions) -> Result<SendStatus> {
        let len = data.len();
        let compress = match options.compress {
            Compress::Auto => None,
            Compress::Always => Some(true),
            Compress::Never => Some(false),
        };
        let part = Part {
            text,
            data,
            fin: options.fin || options.whole,
            compress,
            whole: options.whole,
            notify: options.notify,
        };
        self.push(Outgoing::Part(Box::new(part)), len)
    }

    /// Queues write marker `token`: [`WsEvents::on_written`] reports it once everything queued
    /// before it has been written to the socket.
    pub fn mark_written(&self, token: u32) -> Result<()> {
        self.push(Outgoing::Written(token), 0).map(|_| ())
    }

    /// The connection's heartbeat times.
    pub fn heartbeat(&self) -> Heartbeat {
        Heartbeat {
            last_ping_us: self.shared.last_ping_us.load(Ordering::Relaxed),
            last_pong_us: self.shared.last_pong_us.load(Ordering::Relaxed),
            rtt_us: self.shared.rtt_us.load(Ordering::Relaxed),
        }
    }

    /// Queues a pre-framed message (see [`PreparedMessage`]).
    pub fn send_prepared(&self, msg: &PreparedMessage) -> Result<SendStatus> {
        self.push(Outgoing::Prepared(msg.clone()), msg.len())
    }

    /// Queues a pre-framed message now, in order with every other send, but leaves waking the
    /// connection's task to the caller (the returned waker, when the task was waiting): a
    /// fan-out queues on every receiver from the JS thread and wakes them all from an I/O
    /// thread, where a wake-up costs a fraction of one from outside the runtime.
    pub(crate) fn send_prepared_deferred(
        &self,
        msg: &PreparedMessage,
    ) -> Result<(SendStatus, Option<Waker>)> {
        self.push_deferred(Outgoing::Prepared(msg.clone()), msg.len())
    }

    /// Queues a ping with an application payload of at most 125 bytes.
    pub fn ping(&self, data: Bytes) -> Result<()> {
        if data.len() > 125 {
            return Err(Error::InvalidArgument(
                "ping payload longer than 125 bytes".into(),
            ));
        }
        self.push(Outgoing::Ping(data), 0).map(|_| ())
    }

    /// Queues an unsolicited pong (a one-way heartbeat, RFC 6455 5.5.3). Pings are answered
    /// without this.
    pub fn pong(&self, data: Bytes) -> Result<()> {
        if data.len() > 125 {
            return Err(Error::InvalidArgument(
                "pong payload longer than 125 bytes".into(),
            ));
        }
        self.push(Outgoing::Pong(data), 0).map(|_| ())
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
        // The close timeout runs from now, even while the close frame waits behind output the
        // peer does not read (the connection stops taking commands above a batch of output).
        self.shared.tx.nudge();
        Ok(())
    }

    /// The queued-bytes limit past which this connection is dropped (`max_backpressure`).
    pub fn max_backpressure(&self) -> usize {
        self.shared.max_backpressure
    }

    /// Drops the connection at once as a consumer too slow to keep up; `on_close` reports
    /// 1008 (the code used when the backpressure limit is exceeded).
    pub fn drop_slow(&self) {
        self.kill(CLOSE_POLICY);
    }

    /// Stops (`false`) or resumes (`true`) reading from the peer. While stopped, nothing more is
    /// read, so TCP flow control pushes back on the sender: the application's backpressure on
    /// incoming messages. The idle timeout and the heartbeat's pong deadline are suspended
    /// meanwhile, and reading resumes by itself once a close handshake starts.
    pub fn set_reading(&self, on: bool) {
        if let Ok(Some(waker)) = self.shared.tx.send_no_wake(Outgoing::Reading(on)) {
            waker.wake();
        }
    }

    /// Drops the connection at once without a close handshake; `on_close` reports 1006.
    pub fn terminate(&self) {
        self.kill(CLOSE_ABNORMAL);
    }

    fn kill(&self, code: u16) {
        self.shared.closing.store(true, Ordering::Relaxed);
        if self
            .shared
            .kill_code
            .compare_exchange(0, u32::from(code), Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.shared.tx.nudge();
        }
    }
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
        let (h, d) = channel(1, &WsLimits::default());
        assert!(h.close(1000, "x".repeat(124)).is_err());
        h.close(1000, "bye".into()).unwrap();
        h.close(1000, "again".into()).unwrap();
        assert!(matches!(
            d.shared.tx.try_recv(),
            Ok(Outgoing::Close(1000, _))
        ));
        assert!(d.shared.tx.try_recv().is_err());
        assert!(matches!(h.send_text("late".into()), Err(Error::WsClosed)));
    }

    #[test]
    fn set_reading_reaches_the_connection_even_while_closing() {
        let (h, d) = channel(3, &WsLimits::default());
        h.set_reading(false);
        h.close(1000, "bye".into()).unwrap();
        // The close handshake needs the peer's close frame: resuming must still get through.
        h.set_reading(true);
        assert!(matches!(
            d.shared.tx.try_recv(),
            Ok(Outgoing::Reading(false))
        ));
        assert!(matches!(
            d.shared.tx.try_recv(),
            Ok(Outgoing::Close(1000, _))
        ));
        assert!(matches!(
            d.shared.tx.try_recv(),
            Ok(Outgoing::Reading(true))
        ));
    }

    #[test]
    fn buffered_amount_counts_queued_bytes_and_reports_backpressure() {
        let limits = WsLimits {
            high_water_mark: 6,
            max_backpressure: 10,
            ..WsLimits::default()
        };
        let (h, d) = channel(2, &limits);
        assert_eq!(h.send_text("hello".into()).unwrap(), SendStatus::Queued);
        assert_eq!(
            h.send_binary(Bytes::from_static(&[1, 2, 3])).unwrap(),
            SendStatus::Backpressure
        );
        assert_eq!(h.buffered_amount(), 8);
        // Over the limit: not queued, and the connection is dropped.
        assert_eq!(h.send_text("abc".into()).unwrap(), SendStatus::Dropped);
        assert_eq!(h.buffered_amount(), 8);
        assert!(h.is_closing());
        assert_eq!(
            d.shared.kill_code.load(Ordering::Relaxed),
            u32::from(CLOSE_POLICY)
        );
        assert!(matches!(d.shared.tx.try_recv(), Ok(Outgoing::Text(_))));
    }
}
