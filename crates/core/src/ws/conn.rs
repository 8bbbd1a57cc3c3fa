//! The connection driver: one task per connection that reads and writes at the same time.
//!
//! Reading: bytes land in a per-thread scratch buffer and are appended to the connection's
//! buffer, so an idle connection holds no read buffer. Frames are parsed incrementally; data
//! payloads are unmasked in place, validated (UTF-8 as they arrive, so invalid text fails
//! fast even mid-frame) and, for a single-frame message, handed on without a copy.
//!
//! Writing: queued messages are framed into a small coalescing buffer; large payloads and
//! pre-framed messages are queued as their own `Bytes` and written with vectored writes, so
//! they are never copied on the server side.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use super::deflate::{DeflateState, InflateFailure, Negotiated};
use super::frame::{apply_mask, parse_header, write_header, FrameError, Header, OpCode};
use super::{
    Outgoing, Role, WsDriver, WsEvents, WsLimits, WsMessage, CLOSE_ABNORMAL, CLOSE_GOING_AWAY,
    CLOSE_NO_STATUS, CLOSE_POLICY,
};
use crate::error::Error;

/// Payloads at least this long are queued as their own buffer instead of being copied.
const ZERO_COPY_MIN: usize = 16 << 10;
/// Stop taking commands once this much is waiting to be written.
const BATCH_LIMIT: usize = 256 << 10;
/// Stop reading while this much of our own output (pongs, echoes) is stuck.
const READ_PAUSE: usize = 4 << 20;
/// Scratch read size per worker thread ([`crate::tuning::read_buffer_size`]).
fn read_chunk() -> usize {
    crate::tuning::read_buffer_size()
}
/// With this much of an unfinished frame buffered, reads go straight into the connection's
/// buffer (small leftovers are common and not worth a buffer of their own).
const DIRECT_READ_MIN: usize = 4 << 10;
/// A read at least this long means the peer is streaming: the next read goes straight into the
/// connection's buffer, sparing a copy of every byte out of the scratch space.
fn streaming_read() -> usize {
    read_chunk() / 2
}
/// A single-frame binary message up to this long waits in the read buffer until all of it is
/// here, so that it can be handed on without a copy (a longer one is assembled as it arrives).
const WAIT_MAX: usize = 1 << 20;

thread_local! {
    static READ_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Drives connection `driver.id` over `io` until it ends, then reports the close exactly once.
///
/// `leftover` holds bytes read past the handshake. `deflate` holds the negotiated
/// permessage-deflate parameters, if any.
///
/// The setup runs before the future is returned, so the future holds the connection's state
/// once (an `async fn` would also keep its arguments, moved or not, for its whole life: about
/// 500 bytes more per connection).
pub fn run<S>(
    io: S,
    leftover: BytesMut,
    role: Role,
    driver: WsDriver,
    events: Arc<dyn WsEvents>,
    limits: impl Into<Arc<WsLimits>>,
    deflate: Option<Negotiated>,
) -> impl std::future::Future<Output = ()> + Send + 'static
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let c = Conn {
        id: driver.id,
        role,
        events,
        limits: limits.into(),
        rbuf: leftover,
        cur: None,
        msg: None,
        deflate: deflate.map(|n| Box::new((DeflateState::new(n), BytesMut::new()))),
        out: VecDeque::new(),
        out_bytes: 0,
        scratch: BytesMut::new(),
        scratch_credit: 0,
        close_sent: false,
        failing: None,
        gate_tx: driver.shared,
        received: None,
        failed: None,
        read_closed: false,
        streaming: false,
        need: 0,
        region: None,
        finishing: false,
        last_read: Instant::now(),
        pong_deadline: None,
        paused: false,
        done: false,
        extra: None,
    };
    let main = Main {
        state: State {
            close_deadline: None,
            gate_deadline: None,
            next_ping: c.limits.ping_interval.map(|i| Instant::now() + i),
            queue_open: true,
            armed: false,
            turn: 0,
        },
        parts: Some((c, io)),
        timer: None,
    };
    // The closing phase takes the connection from the main phase: the two never hold it at once.
    futures_util::FutureExt::then(main, |(end, c, io)| close(end, c, io))
}

/// The closing phase: flushes, shuts the socket down, lingers as RFC 6455 asks, and sets the
/// close to report. Not an `async fn`, which would hold its arguments twice, and its timeouts
/// are boxed: this future shares its room with the main phase's, in every connection's task
/// (the test `connection_future_stays_small` measures it).
#[allow(clippy::manual_async_fn)]
fn close<S: AsyncRead + AsyncWrite + Unpin>(
    end: Option<(u16, String)>,
    mut c: Conn,
    mut io: S,
) -> impl Future<Output = ()> {
    async move {
        // Flush what is pending (a close frame) briefly, then shut down the write side.
        if end.is_none() && !c.out.is_empty() {
            let _ = Box::pin(tokio::time::timeout(c.limits.close_timeout, async {
                while !c.out.is_empty() {
                    match write_some(&mut io, &mut c.out).await {
                        Ok((n, _)) => {
                            c.out_bytes -= n;
                            c.wrote(n);
                        }
                        Err(_) => break,
                    }
                }
            }))
            .await;
        }
        let _ = Box::pin(tokio::time::timeout(c.limits.close_timeout, io.shutdown())).await;
        // RFC 6455 7.1.1: the client waits for the server to close TCP first. A side that failed
        // the connection (a message over the limit, a protocol error) reads on and drops what
        // the peer still sends, until the peer closes or `close_timeout`: closing a socket with
        // unread data resets it, and the reset would destroy the close frame (the peer would
        // see 1006 instead of 1009 or 1002).
        let waits_for_peer = c.role == Role::Client && c.received.is_some();
        let lingers = c.failed.is_some() && c.received.is_none();
        if (waits_for_peer || lingers) && !c.read_closed {
            let _ = Box::pin(tokio::time::timeout(c.limits.close_timeout, async {
                loop {
                    c.rbuf.clear();
                    match read_some(&mut io, &mut c.rbuf, None).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }))
            .await;
        }
        let outcome = match (end, c.received.take(), c.failed.take()) {
            (Some(end), _, _) => end,
            (None, Some(r), _) => *r,
            (None, None, Some(f)) => *f,
            (None, None, None) => (CLOSE_ABNORMAL, String::new()),
        };
        c.finish(outcome);
        c.gate_tx.tx.close();
    }
}

/// The main phase's state besides the connection (see [`Main`]).
struct State {
    close_deadline: Option<Instant>,
    gate_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    queue_open: bool,
    /// The timer is armed (for its `deadline()`).
    armed: bool,
    /// Which source is polled first on the next pass.
    turn: u8,
}

pin_project_lite::pin_project! {
/// The connection's main phase, until it ends with the close to report (`None`: see the
/// close handshake's outcome). A future of its own that polls the socket, the queue and
/// the timer itself, starting from a different source each pass (as `select!` does): no
/// future per source and no split of the socket into halves.
struct Main<S> {
    parts: Option<(Conn, S)>,
    state: State,
    // Made on the first poll (it needs the runtime); armed only while some deadline is set
    // (`State::armed`).
    #[pin]
    timer: Option<tokio::time::Sleep>,
}
}

impl<S: AsyncRead + AsyncWrite + Unpin> Future for Main<S> {
    type Output = (Option<(u16, String)>, Conn, S);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some((c, io)) = this.parts.as_mut() else {
            panic!("the connection's main phase was polled after it ended");
        };
        let mut timer = this.timer;
        if timer.is_none() {
            timer.set(Some(tokio::time::sleep_until(Instant::now())));
        }
        let timer = timer.as_pin_mut().expect("set above");
        let end = ready!(step(this.state, c, io, timer, cx));
        let (c, io) = this.parts.take().expect("taken once");
        Poll::Ready((end, c, io))
    }
}

/// One poll of the main phase: handles the sources that are ready, one at a time, until none
/// is or the connection ends.
fn step<S: AsyncRead + AsyncWrite + Unpin>(
    st: &mut State,
    c: &mut Conn,
    io: &mut S,
    mut timer: Pin<&mut tokio::time::Sleep>,
    cx: &mut Context<'_>,
) -> Poll<Option<(u16, String)>> {
    loop {
        c.process_input();
        if c.finishing && c.failing.is_none() && c.out.is_empty() && c.scratch.is_empty() {
            return Poll::Ready(None);
        }
        if c.failing.is_some() && st.gate_deadline.is_none() {
            st.gate_deadline = Some(Instant::now() + c.limits.close_timeout);
        }
        if c.close_sent && st.close_deadline.is_none() {
            st.close_deadline = Some(Instant::now() + c.limits.close_timeout);
        }
        // The earliest timer.
        let mut at: Option<Instant> = None;
        let mut soonest = |d: Instant| at = Some(at.map_or(d, |a| a.min(d)));
        if let Some(d) = st.close_deadline {
            soonest(d);
        }
        if let (Some(d), Some(_)) = (st.gate_deadline, &c.failing) {
            soonest(d);
        }
        // While the application holds reading, silence is ours: no idle or pong deadline.
        let reading = !c.paused || c.close_sent;
        if let Some(i) = c.limits.idle_timeout {
            if !c.close_sent && reading {
                soonest(c.last_read + i);
            }
        }
        if let Some(p) = st.next_ping {
            soonest(p);
        }
        if let Some(p) = c.pong_deadline.filter(|_| reading) {
            soonest(p);
        }
        if at != st.armed.then(|| timer.deadline()) {
            if let Some(at) = at {
                timer.as_mut().reset(at);
            }
            st.armed = at.is_some();
        }
        let want_read = !c.read_closed && !c.finishing && c.out_bytes < READ_PAUSE && reading;
        let want_write = !c.out.is_empty();
        let want_cmd = st.queue_open && !c.close_sent && c.out_bytes < BATCH_LIMIT;
        // The first source that is ready, polling each one that is wanted.
        st.turn = (st.turn + 1) % 5;
        let mut event = Poll::Pending;
        for k in 0..5 {
            event = match (usize::from(st.turn) + k) % 5 {
                0 if want_read => {
                    let direct = c.direct_read();
                    poll_read_some(io, &mut c.rbuf, direct, cx).map(Event::Read)
                }
                1 if want_write => poll_write_some(io, &mut c.out, cx).map(Event::Wrote),
                2 if want_cmd => c.gate_tx.tx.poll_recv(cx).map(Event::Command),
                3 => c.gate_tx.tx.poll_nudge(cx).map(|()| Event::Nudge),
                4 if st.armed => timer.as_mut().poll(cx).map(|()| Event::Timer),
                _ => Poll::Pending,
            };
            if event.is_ready() {
                break;
            }
        }
        let Poll::Ready(event) = event else {
            return Poll::Pending;
        };
        match event {
            Event::Read(Ok(0)) => {
                c.read_closed = true;
                // Dropped without (or while waiting for) a close frame, or after the
                // closing handshake.
                if c.received.is_none() || c.close_sent {
                    return Poll::Ready(None);
                }
            }
            Event::Read(Ok(n)) => {
                c.last_read = Instant::now();
                c.streaming = n >= streaming_read();
            }
            Event::Read(Err(_)) | Event::Wrote(Err(_)) => return Poll::Ready(None),
            Event::Wrote(Ok((n, credit))) => {
                c.out_bytes -= n;
                c.wrote(n);
                if credit > 0 {
                    c.gate_tx.buffered.fetch_sub(credit, Ordering::Relaxed);
                }
                if c.out.is_empty()
                    && c.gate_tx.buffered.load(Ordering::Acquire) == 0
                    && c.gate_tx.want_drain.swap(false, Ordering::AcqRel)
                {
                    c.events.on_drain(c.id);
                }
            }
            Event::Command(None) => st.queue_open = false,
            Event::Command(Some(cmd)) => {
                c.command(cmd);
                // Batch whatever else is queued.
                while !c.close_sent && c.out_bytes + c.scratch.len() < BATCH_LIMIT {
                    match c.gate_tx.tx.try_recv() {
                        Ok(cmd) => c.command(cmd),
                        Err(_) => break,
                    }
                }
                c.seal();
            }
            Event::Nudge => {
                let code = c.gate_tx.kill_code.load(Ordering::Relaxed) as u16;
                if code != 0 {
                    let reason = if code == CLOSE_POLICY {
                        "backpressure limit exceeded"
                    } else {
                        "terminated"
                    };
                    return Poll::Ready(Some((code, reason.to_string())));
                }
                // A close was asked for (see `WsHandle::close`): its timeout runs now.
                if st.close_deadline.is_none() {
                    st.close_deadline = Some(Instant::now() + c.limits.close_timeout);
                }
            }
            Event::Timer => {
                let now = Instant::now();
                if st.gate_deadline.is_some_and(|d| d <= now) {
                    c.resume();
                }
                if st.close_deadline.is_some_and(|d| d <= now) {
                    return Poll::Ready(None);
                }
                if reading && c.pong_deadline.is_some_and(|d| d <= now) {
                    let gate = super::FailGate::new(c.gate_tx.clone());
                    c.events
                        .on_error(c.id, Error::Timeout("WebSocket pong"), gate);
                    return Poll::Ready(Some((CLOSE_ABNORMAL, "heartbeat timeout".into())));
                }
                if let Some(p) = st.next_ping.filter(|p| *p <= now) {
                    if !c.close_sent {
                        c.queue_control(OpCode::Ping, &[]);
                        c.seal();
                        c.gate_tx
                            .last_ping_us
                            .store(super::now_us(), Ordering::Relaxed);
                        if c.pong_deadline.is_none() {
                            c.pong_deadline = Some(now + c.limits.pong_timeout);
                        }
                    }
                    st.next_ping = c.limits.ping_interval.map(|i| p.max(now) + i);
                }
                if let Some(i) = c.limits.idle_timeout {
                    if !c.close_sent && reading && c.last_read + i <= now {
                        let gate = super::FailGate::new(c.gate_tx.clone());
                        c.events
                            .on_error(c.id, Error::Timeout("WebSocket idle"), gate);
                        c.start_close(CLOSE_GOING_AWAY, "idle timeout");
                        c.failed = Some(Box::new((CLOSE_GOING_AWAY, "idle timeout".into())));
                    }
                }
            }
        }
    }
}

/// Reports the close once, also when the driving task is aborted.
impl Drop for Conn {
    fn drop(&mut self) {
        self.gate_tx.closing.store(true, Ordering::Relaxed);
        let (code, reason) = match (self.done, self.received.take()) {
            (true, Some(outcome)) => *outcome,
            _ => (CLOSE_ABNORMAL, String::new()),
        };
        self.events.on_close(self.id, code, reason);
    }
}

/// What the connection's main phase handles on one pass.
enum Event {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<(usize, usize)>),
    Command(Option<Outgoing>),
    Nudge,
    Timer,
}

/// Reads into `buf`: straight into it with room for at least `direct` more bytes, or through
/// the worker's scratch space when `direct` is `None` (a connection that is not receiving much
/// then holds no read buffer of its own).
fn poll_read_some<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    direct: Option<usize>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<usize>> {
    if let Some(room) = direct {
        buf.reserve(room);
        return tokio_util::io::poll_read_buf(Pin::new(rd), cx, buf);
    }
    READ_SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let size = read_chunk();
        if scratch.len() != size {
            // First use on this thread, or the size was changed.
            *scratch = vec![0u8; size];
        }
        let mut rb = ReadBuf::new(&mut scratch[..]);
        ready!(Pin::new(&mut *rd).poll_read(cx, &mut rb))?;
        let n = rb.filled().len();
        buf.extend_from_slice(rb.filled());
        Poll::Ready(Ok(n))
    })
}

/// [`poll_read_some`] as a future, for the closing phase.
async fn read_some<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    direct: Option<usize>,
) -> std::io::Result<usize> {
    poll_fn(|cx| poll_read_some(rd, buf, direct, cx)).await
}

/// Writes some of `out` (vectored). Returns the bytes written and the message bytes
/// (`bufferedAmount` credit) of the chunks that were finished.
fn poll_write_some<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut VecDeque<(Bytes, usize)>,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<(usize, usize)>> {
    let n = {
        let mut slices = [IoSlice::new(&[]); 32];
        let mut count = 0;
        for (chunk, _) in out.iter().take(32) {
            slices[count] = IoSlice::new(chunk);
            count += 1;
        }
        ready!(Pin::new(&mut *wr).poll_write_vectored(cx, &slices[..count]))?
    };
    if n == 0 {
        return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
    }
    let mut left = n;
    let mut credit = 0;
    while left > 0 {
        let Some((front, c)) = out.front_mut() else {
            break;
        };
        if front.len() <= left {
            left -= front.len();
            credit += *c;
            out.pop_front();
        } else {
            front.advance(left);
            left = 0;
        }
    }
    Poll::Ready(Ok((n, credit)))
}

/// [`poll_write_some`] as a future, for the closing phase.
async fn write_some<W: AsyncWrite + Unpin>(
    wr: &mut W,
    out: &mut VecDeque<(Bytes, usize)>,
) -> std::io::Result<(usize, usize)> {
    poll_fn(|cx| poll_write_some(wr, out, cx)).await
}

struct FrameState {
    header: Header,
    remaining: u64,
    offset: usize,
}

struct MsgState {
    text: bool,
    compressed: bool,
    buf: BytesMut,
    checked: usize,
}

struct Conn {
    id: u64,
    role: Role,
    events: Arc<dyn WsEvents>,
    /// Shared by the connections of a server.
    limits: Arc<WsLimits>,
    rbuf: BytesMut,
    cur: Option<FrameState>,
    /// A message assembled from several reads or frames, or inflated; boxed, as an idle
    /// connection has none.
    msg: Option<Box<MsgState>>,
    /// The permessage-deflate state and its output buffer; boxed, as most connections never
    /// negotiate it.
    deflate: Option<Box<(DeflateState, BytesMut)>>,
    /// Chunks to write, with the message bytes each one completes.
    out: VecDeque<(Bytes, usize)>,
    out_bytes: usize,
    scratch: BytesMut,
    scratch_credit: usize,
    close_sent: bool,
    /// A failure whose close frame waits for the application's [`super::FailGate`].
    failing: Option<Box<(u16, String)>>,
    gate_tx: Arc<super::Shared>,
    received: Option<Box<(u16, String)>>,
    failed: Option<Box<(u16, String)>>,
    read_closed: bool,
    /// The last read was long (see [`streaming_read`]).
    streaming: bool,
    /// The length of the whole frame at the start of `rbuf` while it waits there to be
    /// complete (see [`WAIT_MAX`]); 0 otherwise.
    need: usize,
    /// Whole binary messages of this pass over `rbuf`, with their frame headers, split off
    /// `rbuf` one after the other (so still one contiguous buffer); see [`Conn::flush_region`].
    /// Boxed, and dropped once handed on: most passes have none.
    region: Option<Box<Region>>,
    finishing: bool,
    last_read: Instant,
    pong_deadline: Option<Instant>,
    /// The application stopped reading ([`super::WsHandle::set_reading`]).
    paused: bool,
    /// The driver ended; `received` holds the code and reason to report (see the `Drop`).
    done: bool,
    /// A message being sent in parts and write markers; boxed, as most connections never
    /// have either.
    extra: Option<Box<Extra>>,
}

/// See [`Conn::region`].
#[derive(Default)]
struct Region {
    buf: BytesMut,
    /// The message payloads within `buf`.
    msgs: Vec<std::ops::Range<usize>>,
}

/// See [`Conn::extra`].
#[derive(Default)]
struct Extra {
    /// A message sent in parts is open; whether it is compressed.
    open: Option<bool>,
    /// Messages queued while a message in parts is open; they follow it.
    held: VecDeque<Outgoing>,
    /// Write markers: the value of `written` at which each passes, and its token.
    markers: VecDeque<(u64, u32)>,
    /// Bytes written since this state was made.
    written: u64,
}

/// Incremental UTF-8 check of `buf[*checked..]`: false when invalid; an incomplete sequence at
/// the end is left for the next call (or refused at the end of the message).
fn check_utf8(buf: &[u8], checked: &mut usize) -> bool {
    match std::str::from_utf8(&buf[*checked..]) {
        Ok(_) => {
            *checked = buf.len();
            true
        }
        Err(e) => {
            if e.error_len().is_some() {
                return false;
            }
            *checked += e.valid_up_to();
            true
        }
    }
}

impl Conn {
    /// The driver ended with `outcome`, which the close reports (see the `Drop`).
    fn finish(&mut self, outcome: (u16, String)) {
        self.received = Some(Box::new(outcome));
        self.done = true;
    }

    /// Room to reserve for a read straight into `rbuf`, or `None` to read through the scratch
    /// space: reads go straight in while the peer streams, or when a large part of a frame is
    /// here or still to come.
    fn direct_read(&self) -> Option<usize> {
        let have = self.rbuf.len();
        let direct =
            self.streaming || have >= DIRECT_READ_MIN || self.need >= have + DIRECT_READ_MIN;
        direct.then(|| read_chunk().max(self.need.saturating_sub(have)))
    }

    fn mask(&self) -> Option<[u8; 4]> {
        (self.role == Role::Client).then(rand::random::<[u8; 4]>)
    }

    /// Moves the coalescing buffer into the write queue.
    fn seal(&mut self) {
        if !self.scratch.is_empty() {
            let chunk = self.scratch.split().freeze();
            self.out_bytes += chunk.len();
            self.out
                .push_back((chunk, std::mem::take(&mut self.scratch_credit)));
        }
        if self.scratch.capacity() > 256 << 10 {
            self.scratch = BytesMut::new();
        }
    }

    fn push_chunk(&mut self, chunk: Bytes, credit: usize) {
        self.seal();
        self.out_bytes += chunk.len();
        self.out.push_back((chunk, credit));
    }

    /// Frames one data frame with payload `data` (already compressed when `rsv1`).
    fn queue_frame(&mut self, opcode: OpCode, fin: bool, rsv1: bool, data: Bytes, credit: usize) {
        let mask = self.mask();
        write_header(&mut self.scratch, fin, rsv1, opcode, mask, data.len());
        match mask {
            Some(m) => {
                let start = self.scratch.len();
                self.scratch.extend_from_slice(&data);
                apply_mask(&mut self.scratch[start..], m, 0);
                self.scratch_credit += credit;
            }
            None if data.len() >= ZERO_COPY_MIN => self.push_chunk(data, credit),
            None => {
                self.scratch.extend_from_slice(&data);
                self.scratch_credit += credit;
            }
        }
    }

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask();
        write_header(&mut self.scratch, true, false, opcode, mask, payload.len());
        let start = self.scratch.len();
        self.scratch.extend_from_slice(payload);
        if let Some(m) = mask {
            apply_mask(&mut self.scratch[start..], m, 0);
        }
    }

    fn queue_data(&mut self, opcode: OpCode, data: Bytes) {
        let credit = data.len();
        if let Some((z, zbuf)) = self.deflate.as_deref_mut() {
            if z.should_compress(data.len()) {
                zbuf.clear();
                z.compress(&data, zbuf);
                let body = zbuf.split().freeze();
                self.queue_frame(opcode, true, true, body, credit);
                return;
            }
        }
        self.queue_frame(opcode, true, false, data, credit);
    }

    /// Frames one part of a message sent in parts (see [`super::WsHandle::send_part`]).
    fn queue_part(&mut self, part: super::Part) {
        let credit = part.data.len();
        // A whole part only gets here while no message is open (it waits otherwise).
        let open = self.extra.as_ref().and_then(|e| e.open);
        let compressed = match (open, self.deflate.as_deref().map(|d| &d.0)) {
            (Some(open), _) => open,
            (None, None) => false,
            (None, Some(z)) => part
                .compress
                .unwrap_or_else(|| z.should_compress(part.data.len())),
        };
        let opcode = match (open, part.text) {
            (Some(_), _) => OpCode::Continuation,
            (None, true) => OpCode::Text,
            (None, false) => OpCode::Binary,
        };
        let rsv1 = compressed && open.is_none();
        match self.deflate.as_deref_mut().filter(|_| compressed) {
            Some((z, zbuf)) => {
                zbuf.clear();
                z.compress_part(&part.data, part.fin, zbuf);
                let body = zbuf.split().freeze();
                self.queue_frame(opcode, part.fin, rsv1, body, credit);
            }
            None => self.queue_frame(opcode, part.fin, rsv1, part.data, credit),
        }
        if part.notify != 0 {
            self.mark_written(part.notify);
        }
        if part.fin {
            if let Some(e) = self.extra.as_mut() {
                e.open = None;
            }
            // What waited for the message follows it, in order (a held message is whole, so it
            // cannot open another one).
            while let Some(held) = self.extra.as_mut().and_then(|e| e.held.pop_front()) {
                self.command(held);
            }
            self.tidy_extra();
        } else {
            self.extra.get_or_insert_with(Default::default).open = Some(compressed);
        }
    }

    /// Queues write marker `token` behind everything queued so far.
    fn mark_written(&mut self, token: u32) {
        self.seal();
        if self.out_bytes == 0 {
            return self.events.on_written(self.id, token);
        }
        let e = self.extra.get_or_insert_with(Default::default);
        let at = e.written + self.out_bytes as u64;
        e.markers.push_back((at, token));
    }

    /// `n` bytes were written: reports the markers they passed.
    fn wrote(&mut self, n: usize) {
        let Some(e) = self.extra.as_mut() else { return };
        e.written += n as u64;
        let mut passed = false;
        while let Some(&(at, token)) = e.markers.front() {
            if at > e.written {
                break;
            }
            e.markers.pop_front();
            self.events.on_written(self.id, token);
            passed = true;
        }
        if passed {
            self.tidy_extra();
        }
    }

    /// Drops [`Conn::extra`] once nothing is in it.
    fn tidy_extra(&mut self) {
        if self
            .extra
            .as_ref()
            .is_some_and(|e| e.open.is_none() && e.held.is_empty() && e.markers.is_empty())
        {
            self.extra = None;
        }
    }

    fn start_close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        let mut p = Vec::with_capacity(2 + reason.len());
        if code != CLOSE_NO_STATUS {
            p.extend_from_slice(&code.to_be_bytes());
            p.extend_from_slice(reason.as_bytes());
        }
        self.queue_control(OpCode::Close, &p);
        self.seal();
        self.close_sent = true;
    }

    /// Handles one command from the handle.
    fn command(&mut self, cmd: Outgoing) {
        if let Some(e) = self.extra.as_mut().filter(|e| e.open.is_some()) {
            // Another message, or a marker behind one, waits for the open message to end; a
            // marker with nothing held passes as usual (it may follow a part of the message).
            let waits = match cmd {
                Outgoing::Text(_) | Outgoing::Binary(_) | Outgoing::Prepared(_) => true,
                Outgoing::Part(ref p) => p.whole,
                Outgoing::Written(_) => !e.held.is_empty(),
                _ => false,
            };
            if waits {
                e.held.push_back(cmd);
                return;
            }
        }
        match cmd {
            Outgoing::Part(part) => self.queue_part(*part),
            Outgoing::Written(token) => self.mark_written(token),
            Outgoing::Text(b) => self.queue_data(OpCode::Text, b),
            Outgoing::Binary(b) => self.queue_data(OpCode::Binary, b),
            Outgoing::Prepared(p) => {
                let credit = p.len();
                match (self.role, self.deflate.as_deref_mut().map(|d| &mut d.0)) {
                    (Role::Server, Some(z)) if z.should_compress(p.len()) => {
                        let n = *z.params();
                        let frame = p.compressed_frame(n.send_window_bits, n.level, n.mem_level);
                        // The peer's window now holds bytes our compressor never saw.
                        z.reset_compressor();
                        self.push_chunk(frame, credit);
                    }
                    (Role::Server, _) => {
                        let frame = p.frame();
                        if frame.len() >= ZERO_COPY_MIN {
                            self.push_chunk(frame, credit);
                        } else {
                            self.scratch.extend_from_slice(&frame);
                            self.scratch_credit += credit;
                        }
                    }
                    (Role::Client, _) => self.queue_data(p.opcode(), p.payload()),
                }
            }
            Outgoing::Ping(b) => {
                self.queue_control(OpCode::Ping, &b);
                self.gate_tx
                    .last_ping_us
                    .store(super::now_us(), Ordering::Relaxed);
            }
            Outgoing::Pong(b) => self.queue_control(OpCode::Pong, &b),
            Outgoing::Close(code, reason) => {
                if self.received.is_none() && self.failing.is_none() {
                    self.start_close(code, &reason);
                }
            }
            Outgoing::Resume => self.resume(),
            Outgoing::Reading(on) => {
                self.paused = !on;
                if on {
                    // The peer was not silent, we were not listening.
                    self.last_read = Instant::now();
                    if self.pong_deadline.is_some() {
                        self.pong_deadline = Some(self.last_read + self.limits.pong_timeout);
                    }
                }
            }
        }
    }

    /// Sends the close frame of a failure once the application let it through.
    fn resume(&mut self) {
        if let Some((code, reason)) = self.failing.take().map(|f| *f) {
            self.start_close(code, &reason);
        }
    }

    /// Fails the connection: stops reading and sends a close frame with `code` once the
    /// application has handled the events before this one (see [`super::FailGate`]).
    fn fail(&mut self, code: u16, reason: &str) {
        self.flush_region();
        let err = match code {
            1009 => Error::WsMessageTooBig(reason.to_string()),
            1007 => Error::WsInvalidUtf8,
            _ => Error::WsProtocol(reason.to_string()),
        };
        if self.failed.is_none() && self.received.is_none() {
            self.failed = Some(Box::new((code, reason.to_string())));
        }
        if !self.close_sent && self.failing.is_none() {
            self.failing = Some(Box::new((code, reason.to_string())));
            let gate = super::FailGate::new(self.gate_tx.clone());
            self.events.on_error(self.id, err, gate);
        }
        self.finishing = true;
        self.rbuf = BytesMut::new();
        self.cur = None;
        self.msg = None;
    }

    fn frame_error(&mut self, e: FrameError) {
        self.fail(e.close_code(), e.reason());
    }

    /// Parses and handles every complete frame (and partial data payload) in the buffer.
    fn process_input(&mut self) {
        while !self.finishing && !self.rbuf.is_empty() {
            if self.cur.is_none() {
                let h = match parse_header(
                    &self.rbuf,
                    self.role == Role::Server,
                    self.deflate.is_some(),
                    self.limits.max_frame_size as u64,
                ) {
                    Err(e) => return self.frame_error(e),
                    Ok(None) => break,
                    Ok(Some(h)) => h,
                };
                if h.opcode.is_control() {
                    let total = h.header_len + h.len as usize;
                    if self.rbuf.len() < total {
                        break;
                    }
                    self.flush_region();
                    self.rbuf.advance(h.header_len);
                    let mut payload = self.rbuf.split_to(h.len as usize);
                    if let Some(m) = h.mask {
                        apply_mask(&mut payload, m, 0);
                    }
                    self.control(h.opcode, payload.freeze());
                    continue;
                }
                match (h.opcode, &self.msg) {
                    (OpCode::Continuation, None) => {
                        return self.fail(1002, "continuation without a message");
                    }
                    (OpCode::Continuation, Some(_)) if h.rsv1 => {
                        return self.frame_error(FrameError::ReservedBits);
                    }
                    (OpCode::Text | OpCode::Binary, Some(_)) => {
                        return self.fail(1002, "new message before the last one ended");
                    }
                    _ => {}
                }
                let so_far = self.msg.as_ref().map_or(0, |m| m.buf.len());
                let compressed = self.msg.as_ref().map_or(h.rsv1, |m| m.compressed);
                if !compressed && so_far as u64 + h.len > self.limits.max_message_size as u64 {
                    return self.fail(1009, "message too big");
                }
                let whole = self.msg.is_none() && h.fin && !h.rsv1;
                self.need = 0;
                // Text keeps being checked as it arrives, to fail invalid UTF-8 early.
                if whole && h.opcode == OpCode::Binary {
                    let total = h.header_len + h.len as usize;
                    if self.rbuf.len() >= total {
                        let header = self.rbuf.split_to(h.header_len);
                        let mut payload = self.rbuf.split_to(h.len as usize);
                        if let Some(m) = h.mask {
                            apply_mask(&mut payload, m, 0);
                        }
                        self.gather(header, payload);
                        continue;
                    }
                    if h.len as usize <= WAIT_MAX {
                        // Wait for the rest, so the payload is handed on without a copy.
                        self.need = total;
                        break;
                    }
                }
                self.flush_region();
                self.rbuf.advance(h.header_len);
                if self.msg.is_none() {
                    // Zero-copy: a whole uncompressed single-frame text message already here.
                    if whole && self.rbuf.len() as u64 >= h.len {
                        let mut payload = self.rbuf.split_to(h.len as usize);
                        if let Some(m) = h.mask {
                            apply_mask(&mut payload, m, 0);
                        }
                        self.deliver(h.opcode == OpCode::Text, payload);
                        continue;
                    }
                    self.msg = Some(Box::new(MsgState {
                        text: h.opcode == OpCode::Text,
                        compressed: h.rsv1,
                        buf: BytesMut::new(),
                        checked: 0,
                    }));
                }
                self.cur = Some(FrameState {
                    header: h,
                    remaining: h.len,
                    offset: 0,
                });
            }
            // Payload of the current data frame, as much as is here.
            let Some(f) = self.cur.as_mut() else { break };
            let n = (f.remaining.min(self.rbuf.len() as u64)) as usize;
            if n == 0 && f.remaining > 0 {
                break;
            }
            let mut chunk = self.rbuf.split_to(n);
            if let Some(m) = f.header.mask {
                f.offset = apply_mask(&mut chunk, m, f.offset);
            }
            f.remaining -= n as u64;
            let frame_done = f.remaining == 0;
            let last = frame_done && f.header.fin;
            if frame_done {
                self.cur = None;
            }
            let limit = self.limits.max_message_size;
            let Some(msg) = self.msg.as_mut() else { break };
            if msg.compressed {
                let Some((z, _)) = self.deflate.as_deref_mut() else {
                    return self.frame_error(FrameError::ReservedBits);
                };
                match z.decompress(&chunk, last, &mut msg.buf, limit) {
                    Ok(()) => {}
                    Err(InflateFailure::TooBig) => return self.fail(1009, "message too big"),
                    Err(InflateFailure::Corrupt) => {
                        return self.fail(1002, "invalid compressed data")
                    }
                }
            } else if msg.buf.is_empty() {
                msg.buf = chunk;
            } else {
                msg.buf.extend_from_slice(&chunk);
            }
            if msg.text && !check_utf8(&msg.buf, &mut msg.checked) {
                return self.fail(1007, "invalid UTF-8 in text message");
            }
            if last {
                if let Some(msg) = self.msg.take().map(|m| *m) {
                    if msg.text && msg.checked != msg.buf.len() {
                        return self.fail(1007, "invalid UTF-8 in text message");
                    }
                    self.events
                        .on_message(self.id, to_message(msg.text, msg.buf));
                }
            }
        }
        self.flush_region();
        // Do not hold a large, empty read buffer on an idle connection.
        if self.rbuf.is_empty() && self.rbuf.capacity() > 64 << 10 {
            self.rbuf = BytesMut::new();
        }
    }

    /// Adds a whole binary message (its frame header, then its payload) to the region.
    fn gather(&mut self, header: BytesMut, payload: BytesMut) {
        // Both were split off `rbuf` right after the region, so joining them moves no bytes.
        let region = self.region.get_or_insert_with(Box::default);
        region.buf.unsplit(header);
        let start = region.buf.len();
        region.buf.unsplit(payload);
        region.msgs.push(start..region.buf.len());
    }

    /// Hands the gathered binary messages on, before any other event of the connection.
    fn flush_region(&mut self) {
        let Some(region) = self.region.take() else {
            return;
        };
        let Region { buf, msgs } = *region;
        self.events.on_binary_batch(self.id, buf.freeze(), &msgs);
    }

    fn deliver(&mut self, text: bool, payload: BytesMut) {
        if text && std::str::from_utf8(&payload).is_err() {
            return self.fail(1007, "invalid UTF-8 in text message");
        }
        self.events.on_message(self.id, to_message(text, payload));
    }

    fn control(&mut self, opcode: OpCode, payload: Bytes) {
        match opcode {
            OpCode::Ping => {
                if !self.close_sent {
                    self.queue_control(OpCode::Pong, &payload);
                    self.seal();
                }
                self.events.on_ping(self.id, payload);
            }
            OpCode::Pong => {
                self.pong_deadline = None;
                let now = super::now_us();
                let hb = &self.gate_tx;
                let ping = hb.last_ping_us.load(Ordering::Relaxed);
                if ping != 0 && ping >= hb.last_pong_us.load(Ordering::Relaxed) {
                    hb.rtt_us.store(now.saturating_sub(ping), Ordering::Relaxed);
                }
                hb.last_pong_us.store(now, Ordering::Relaxed);
                self.events.on_pong(self.id, payload);
            }
            OpCode::Close => {
                let (code, reason) = match payload.len() {
                    0 => (CLOSE_NO_STATUS, String::new()),
                    1 => return self.fail(1002, "close frame with a 1-byte payload"),
                    _ => {
                        let code = u16::from_be_bytes([payload[0], payload[1]]);
                        if !received_close_code_ok(code) {
                            return self.fail(1002, "invalid close code");
                        }
                        match std::str::from_utf8(&payload[2..]) {
                            Ok(r) => (code, r.to_string()),
                            Err(_) => return self.fail(1007, "invalid UTF-8 in close reason"),
                        }
                    }
                };
                if !self.close_sent {
                    // Echo the code and reason (RFC 6455 5.5.1).
                    self.start_close(code, &reason);
                }
                self.received = Some(Box::new((code, reason)));
                self.finishing = true;
                self.cur = None;
                self.msg = None;
            }
            _ => {}
        }
    }
}

fn received_close_code_ok(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn to_message(text: bool, buf: BytesMut) -> WsMessage {
    if text {
        // Validated above; the conversion only fails on a logic error, then nothing is lost.
        match String::from_utf8(Vec::from(buf)) {
            Ok(s) => WsMessage::Text(s),
            Err(e) => WsMessage::Binary(Bytes::from(e.into_bytes())),
        }
    } else {
        WsMessage::Binary(buf.freeze())
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// An idle connection's memory is mostly its task: the server's task is this future plus
    /// the upgrade's few words and tokio's task header, about 752 bytes (the allocator's
    /// 768-byte class). Fields that most connections never use are boxed for this (see
    /// `Conn`), the main phase polls its sources itself instead of a future per source
    /// (`Main`), and the closing phase takes the connection from it (`close`).
    #[test]
    fn connection_future_stays_small() {
        struct Quiet;
        impl WsEvents for Quiet {
            fn on_message(&self, _: u64, _: WsMessage) {}
            fn on_close(&self, _: u64, _: u16, _: String) {}
        }
        let (io, _peer) = tokio::io::duplex(64);
        let (_handle, driver) = super::super::channel(1, &WsLimits::default());
        let run = run(
            io,
            BytesMut::new(),
            Role::Server,
            driver,
            Arc::new(Quiet),
            WsLimits::default(),
            None,
        );
        let size = std::mem::size_of_val(&run);
        assert!(size <= 512, "the connection future grew to {size} bytes");
        assert!(
            std::mem::size_of::<Conn>() <= 304,
            "Conn grew to {} bytes",
            std::mem::size_of::<Conn>()
        );
    }
}
