//! The server's WebSocket event batch (I/O threads -> JS) and the event kinds and flags, which JS
//! reads from here: the Rust side of `src-ts/server-websocket-dispatcher.ts` (`drain`).

use std::sync::Arc;

use bytes::Bytes;
use hypersock_core::ws::FailGate;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::Fail;
use crate::lent;
use crate::wake::JsWake;

/// Kinds of WebSocket events: the `kind` of `onEvent` calls and of the server's event batch.
/// Exported to JS, which reads these values instead of keeping its own.
#[napi]
pub enum WsEventKind {
    Open = 0,
    Message = 1,
    Close = 2,
    Upgrade = 3,
    Ping = 4,
    Pong = 5,
    Drain = 6,
    Error = 7,
    /// A write marker passed (`wsMarkWritten`, or a part's `notify`); the data is its token.
    Written = 8,
}

pub(crate) const WS_OPEN: u32 = WsEventKind::Open as u32;
pub(crate) const WS_MESSAGE: u32 = WsEventKind::Message as u32;
pub(crate) const WS_CLOSE: u32 = WsEventKind::Close as u32;
pub(crate) const WS_UPGRADE: u32 = WsEventKind::Upgrade as u32;
pub(crate) const WS_PING: u32 = WsEventKind::Ping as u32;
pub(crate) const WS_PONG: u32 = WsEventKind::Pong as u32;
pub(crate) const WS_DRAIN: u32 = WsEventKind::Drain as u32;
pub(crate) const WS_ERROR: u32 = WsEventKind::Error as u32;
pub(crate) const WS_WRITTEN: u32 = WsEventKind::Written as u32;

/// The payload of a queued event.
pub(crate) enum EventData {
    None,
    Text(String),
    Binary(Bytes),
    /// An error event's error; always travels as an object.
    Error(Fail),
}

/// A JS object that goes with a queued event: the socket (open, upgrade) or the fail gate
/// (error).
pub(crate) enum EventObject<S> {
    Socket(Box<S>),
    Gate(FailGate),
    /// A payload too large to copy into the batch (see [`INLINE_MAX`]).
    Text(String),
    /// The error of an error event.
    Error(Fail),
    Binary(Bytes),
    /// Binary messages that arrived together; the events that follow carry their ranges.
    Region(Bytes),
}

/// Payloads up to this size travel inside the batch buffer; larger ones as values of their own
/// (one copy instead of two, and the batch buffer stays small, so it does not need fresh
/// memory from the OS every time).
const INLINE_MAX: usize = 1024;

struct QueuedEvents<S> {
    /// The encoded events, see [`WsEventQueue::push`].
    bytes: Vec<u8>,
    objects: Vec<EventObject<S>>,
}

impl<S> Default for QueuedEvents<S> {
    fn default() -> Self {
        QueuedEvents {
            bytes: Vec::new(),
            objects: Vec::new(),
        }
    }
}

/// WebSocket events of a server's connections, in order, waiting for the JS thread.
pub(crate) struct WsEventQueue<S> {
    events: std::sync::Mutex<QueuedEvents<S>>,
    wake: Arc<JsWake>,
}

/// Flags of an encoded event (see [`WsEventQueue::push`]); exported to JS.
#[napi]
pub enum WsEventFlag {
    /// The data is binary.
    Binary = 1,
    /// The event has data.
    Data = 2,
    /// An object (socket or fail gate) goes with the event.
    Object = 4,
    /// The data is an object of the list (a large payload, a region, an error).
    DataObject = 8,
    /// The data is a range of the last region.
    Region = 16,
}

const EVENT_BINARY: u8 = WsEventFlag::Binary as u8;
const EVENT_DATA: u8 = WsEventFlag::Data as u8;
const EVENT_OBJECT: u8 = WsEventFlag::Object as u8;
const EVENT_DATA_OBJECT: u8 = WsEventFlag::DataObject as u8;
const EVENT_REGION: u8 = WsEventFlag::Region as u8;

/// Appends one encoded event (the layout is described at [`WsEventQueue::push`]).
fn encode_event(out: &mut Vec<u8>, kind: u32, flags: u8, code: u32, id: u64, inline: &[u8]) {
    out.reserve(16 + inline.len());
    out.push(kind as u8);
    out.push(flags);
    out.extend_from_slice(&(code.min(u32::from(u16::MAX)) as u16).to_le_bytes());
    out.extend_from_slice(&(id as u32).to_le_bytes());
    out.extend_from_slice(&((id >> 32) as u32).to_le_bytes());
    out.extend_from_slice(&(inline.len() as u32).to_le_bytes());
    out.extend_from_slice(inline);
}

impl<S: ToNapiValue> WsEventQueue<S> {
    /// An empty queue that wakes JS through `wake`.
    pub(crate) fn new(wake: Arc<JsWake>) -> WsEventQueue<S> {
        WsEventQueue {
            events: std::sync::Mutex::new(QueuedEvents::default()),
            wake,
        }
    }

    /// Appends one event, little-endian, read by `src-ts/server-websocket-dispatcher.ts`:
    /// `u8 kind, u8 flags (1 binary, 2 has data, 4 has an object, 8 the data is an object),
    /// u16 close code, u32 id low, u32 id high, u32 inline data length, inline data`. The
    /// objects go to a list of their own, in event order (a payload before a socket or gate).
    pub(crate) fn push(
        &self,
        kind: u32,
        id: u64,
        object: Option<EventObject<S>>,
        data: EventData,
        code: u32,
    ) {
        let (mut flags, payload): (u8, &[u8]) = match &data {
            EventData::None => (0, &[]),
            EventData::Text(text) => (EVENT_DATA, text.as_bytes()),
            EventData::Binary(bytes) => (EVENT_DATA | EVENT_BINARY, bytes),
            EventData::Error(_) => (EVENT_DATA, &[]),
        };
        let large = payload.len() > INLINE_MAX || matches!(data, EventData::Error(_));
        if large {
            flags |= EVENT_DATA_OBJECT;
        }
        if object.is_some() {
            flags |= EVENT_OBJECT;
        }
        {
            let mut q = self.events.lock().unwrap_or_else(|e| e.into_inner());
            let inline: &[u8] = if large { &[] } else { payload };
            encode_event(&mut q.bytes, kind, flags, code, id, inline);
            // The payload object comes before the socket or gate object.
            if large {
                q.objects.push(match data {
                    EventData::Text(text) => EventObject::Text(text),
                    EventData::Binary(bytes) => EventObject::Binary(bytes),
                    EventData::Error(fail) => EventObject::Error(fail),
                    EventData::None => unreachable!("a large payload has data"),
                });
            }
            if let Some(object) = object {
                q.objects.push(object);
            }
        }
        self.wake.schedule();
    }

    /// Appends one message event per range of `region`, all at once: the first takes the
    /// region as its object (flags 8 | 16), each carries `u32 offset, u32 length` as inline
    /// data (flag 16).
    pub(crate) fn push_region(&self, id: u64, region: Bytes, ranges: &[std::ops::Range<usize>]) {
        {
            let mut q = self.events.lock().unwrap_or_else(|e| e.into_inner());
            q.bytes.reserve(24 * ranges.len());
            for (i, range) in ranges.iter().enumerate() {
                let mut flags = EVENT_DATA | EVENT_BINARY | EVENT_REGION;
                if i == 0 {
                    flags |= EVENT_DATA_OBJECT;
                }
                let mut slice = [0u8; 8];
                slice[..4].copy_from_slice(&(range.start as u32).to_le_bytes());
                slice[4..].copy_from_slice(&(range.len() as u32).to_le_bytes());
                encode_event(&mut q.bytes, WS_MESSAGE, flags, 0, id, &slice);
            }
            q.objects.push(EventObject::Region(region));
        }
        self.wake.schedule();
    }

    /// Every waiting event: `[buffer of encoded events, ...objects]`, or `null` when none waits.
    pub(crate) fn take<'env>(&self, env: &'env Env) -> Result<Option<Array<'env>>> {
        self.wake.taking();
        let taken = {
            let mut q = self.events.lock().unwrap_or_else(|e| e.into_inner());
            let capacity = q.bytes.len();
            QueuedEvents {
                bytes: std::mem::replace(&mut q.bytes, Vec::with_capacity(capacity)),
                objects: std::mem::take(&mut q.objects),
            }
        };
        if taken.bytes.is_empty() {
            return Ok(None);
        }
        let mut out = env.create_array(1 + taken.objects.len() as u32)?;
        out.set(0, Buffer::from(taken.bytes))?;
        for (i, object) in taken.objects.into_iter().enumerate() {
            let at = 1 + i as u32;
            match object {
                EventObject::Socket(socket) => out.set(at, *socket)?,
                EventObject::Gate(gate) => out.set(at, BindingFailGate { gate: Some(gate) })?,
                EventObject::Text(text) => out.set(at, text)?,
                EventObject::Error(fail) => out.set(at, fail)?,
                EventObject::Binary(bytes) | EventObject::Region(bytes) => {
                    out.set(at, lent::to_array_buffer(env, bytes)?)?
                }
            }
        }
        Ok(Some(out))
    }
}

/// Holds back the close frame of a connection this side failed until JS has handled the events
/// before the error (see `WsEvents::on_error`); JS releases it right after the error event.
#[napi]
pub struct BindingFailGate {
    gate: Option<FailGate>,
}

#[napi]
impl BindingFailGate {
    /// Lets the close frame go.
    #[napi]
    pub fn release(&mut self) {
        self.gate = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One decoded event head and its inline data, read the way `src-ts/wire/ws-events.ts` does.
    fn decode(buf: &[u8]) -> Vec<(u8, u8, u16, u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut o = 0;
        while o + 16 <= buf.len() {
            let u32_at = |o: usize| u32::from_le_bytes(buf[o..o + 4].try_into().unwrap());
            let id = u64::from(u32_at(o + 4)) | (u64::from(u32_at(o + 8)) << 32);
            let len = u32_at(o + 12) as usize;
            let code = u16::from_le_bytes([buf[o + 2], buf[o + 3]]);
            out.push((
                buf[o],
                buf[o + 1],
                code,
                id,
                buf[o + 16..o + 16 + len].to_vec(),
            ));
            o += 16 + len;
        }
        assert_eq!(o, buf.len(), "the batch ends on an event boundary");
        out
    }

    /// The events of `__test__/fixtures/wire/ws-events.hex`, which the TS test decodes too.
    fn golden_events() -> Vec<u8> {
        let mut out = Vec::new();
        encode_event(&mut out, WS_OPEN, EVENT_OBJECT, 0, 1, &[]);
        encode_event(
            &mut out,
            WS_MESSAGE,
            EVENT_DATA,
            0,
            1,
            "h\u{e9}llo".as_bytes(),
        );
        encode_event(
            &mut out,
            WS_MESSAGE,
            EVENT_DATA | EVENT_BINARY,
            0,
            (1 << 40) + 7,
            &[0, 1, 255],
        );
        encode_event(&mut out, WS_PING, EVENT_DATA | EVENT_BINARY, 0, 1, b"p");
        encode_event(&mut out, WS_CLOSE, EVENT_DATA, 4000, 1, b"bye");
        out
    }

    #[test]
    fn the_golden_events_are_the_committed_ones() {
        crate::wire::assert_fixture(
            "ws-events.hex",
            &golden_events(),
            "src-ts/wire/ws-events.ts",
        );
    }

    proptest! {
        #[test]
        fn every_event_comes_back_out_of_the_batch(
            events in prop::collection::vec(
                (0u32..8, any::<u8>(), any::<u32>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..64)),
                0..12,
            )
        ) {
            let mut buf = Vec::new();
            for (kind, flags, code, id, data) in &events {
                encode_event(&mut buf, *kind, *flags, *code, *id, data);
            }
            let decoded = decode(&buf);
            prop_assert_eq!(decoded.len(), events.len());
            for (d, (kind, flags, code, id, data)) in decoded.iter().zip(&events) {
                prop_assert_eq!(u32::from(d.0), *kind);
                prop_assert_eq!(d.1, *flags);
                // Close codes above u16 are clamped, never wrapped.
                prop_assert_eq!(u32::from(d.2), (*code).min(u32::from(u16::MAX)));
                prop_assert_eq!(d.3, *id);
                prop_assert_eq!(&d.4, data);
            }
        }
    }
}
