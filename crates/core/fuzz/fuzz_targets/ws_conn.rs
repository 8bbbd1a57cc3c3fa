//! The whole WebSocket read path: `ws::run` as a server over an in-memory duplex whose peer
//! writes the input, then closes its side.
//!
//! Input: byte 0 picks the permessage-deflate parameters (or none) and the size of the peer's
//! writes; byte 1 how many bytes arrive with the handshake (`leftover`); the rest is what the
//! peer sends. The server echoes every message, so the write path (and the compressor) runs too.
//! Limits are small (64 KiB messages and frames); the runtime is a current-thread one on a
//! paused clock (timers fire as soon as everything waits, so close timeouts cost no real time),
//! and a run that has not ended an hour (of that clock) after the peer closed is a hang.
//!
//! Checks: every delivered message, ping and pong is within its limit; the close is reported
//! exactly once with a code that may be reported; what the server wrote is well-formed
//! unmasked frames whose data messages are the echoes of the delivered ones, in order.
#![no_main]

use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hypersock_core::ws::deflate::DeflateState;
use hypersock_core::ws::frame::{parse_header, OpCode};
use hypersock_core::ws::{
    self, batch_messages, FailGate, Negotiated, Role, WsEvents, WsHandle, WsLimits, WsMessage,
};
use hypersock_core::Error;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_MESSAGE: usize = 64 << 10;
const CHUNKS: [usize; 8] = [usize::MAX, 1, 2, 7, 64, 1000, 4096, 3];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    })
}

#[derive(Default)]
struct Seen {
    messages: Vec<WsMessage>,
    closes: Vec<(u16, String)>,
}

struct Events {
    handle: WsHandle,
    seen: Mutex<Seen>,
}

impl Events {
    fn message(&self, msg: WsMessage) {
        let len = match &msg {
            WsMessage::Text(s) => s.len(),
            WsMessage::Binary(b) => b.len(),
        };
        assert!(len <= MAX_MESSAGE, "message of {len} bytes");
        // Echo: exercises the write path and the compressor.
        let _ = match &msg {
            WsMessage::Text(s) => self.handle.send_text(s.clone()),
            WsMessage::Binary(b) => self.handle.send_binary(b.clone()),
        };
        self.seen.lock().unwrap().messages.push(msg);
    }
}

impl WsEvents for Events {
    fn on_message(&self, _id: u64, msg: WsMessage) {
        self.message(msg);
    }

    fn on_binary_batch(&self, _id: u64, region: Bytes, ranges: &[Range<usize>]) {
        let mut end = 0;
        for r in ranges {
            assert!(r.start >= end && r.start <= r.end && r.end <= region.len());
            end = r.end;
        }
        for msg in batch_messages(&region, ranges) {
            self.message(msg);
        }
    }

    fn on_close(&self, _id: u64, code: u16, reason: String) {
        assert!(
            matches!(code, 1000..=1003 | 1005..=1014 | 3000..=4999),
            "close code {code}"
        );
        assert!(
            reason.len() <= 123,
            "close reason of {} bytes",
            reason.len()
        );
        self.seen.lock().unwrap().closes.push((code, reason));
    }

    fn on_ping(&self, _id: u64, data: Bytes) {
        assert!(data.len() <= 125);
    }

    fn on_pong(&self, _id: u64, data: Bytes) {
        assert!(data.len() <= 125);
    }

    fn on_error(&self, _id: u64, _error: Error, gate: FailGate) {
        drop(gate);
    }
}

fn negotiated(cfg: u8) -> Option<Negotiated> {
    if cfg & 0x80 != 0 {
        return None;
    }
    let bits = 8 + (cfg & 7);
    let nct = cfg & 8 != 0;
    Some(Negotiated {
        send_no_context_takeover: nct,
        recv_no_context_takeover: nct,
        send_window_bits: bits,
        recv_window_bits: bits,
        threshold: 16,
        level: 1,
        mem_level: 8,
    })
}

fuzz_target!(|data: &[u8]| {
    let [cfg, lead, stream @ ..] = data else {
        return;
    };
    let deflate = negotiated(*cfg);
    let chunk = CHUNKS[usize::from((cfg >> 4) & 7)];
    let lead = usize::from(*lead).min(stream.len());
    let leftover = BytesMut::from(&stream[..lead]);
    let rest = stream[lead..].to_vec();

    let limits = WsLimits {
        max_message_size: MAX_MESSAGE,
        max_frame_size: MAX_MESSAGE,
        close_timeout: Duration::from_secs(1),
        idle_timeout: None,
        ping_interval: None,
        pong_timeout: Duration::from_secs(10),
        high_water_mark: 1 << 20,
        max_backpressure: 64 << 20,
    };
    let (handle, driver) = ws::channel(1, &limits);
    let events = Arc::new(Events {
        handle,
        seen: Mutex::default(),
    });

    let wrote = runtime().block_on(async {
        let (server, peer) = tokio::io::duplex(1 << 20);
        let (mut peer_rd, mut peer_wr) = tokio::io::split(peer);
        let conn = ws::run(
            server,
            leftover,
            Role::Server,
            driver,
            events.clone(),
            limits,
            deflate,
        );
        let write = async move {
            for piece in rest.chunks(chunk.min(rest.len()).max(1)) {
                if peer_wr.write_all(piece).await.is_err() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = peer_wr.shutdown().await;
            peer_wr
        };
        let read = async move {
            let mut wrote = Vec::new();
            let _ = peer_rd.read_to_end(&mut wrote).await;
            wrote
        };
        let all = async { tokio::join!(conn, write, read) };
        match tokio::time::timeout(Duration::from_secs(3600), all).await {
            Ok(((), _wr, wrote)) => wrote,
            Err(_) => panic!("the connection did not end after the peer closed"),
        }
    });

    let seen = std::mem::take(&mut *events.seen.lock().unwrap());
    assert_eq!(seen.closes.len(), 1, "close reported {:?}", seen.closes);
    check_output(&wrote, &seen.messages, deflate);
});

/// What the server wrote: unmasked frames; its data messages are echoes of the delivered
/// messages, in order (a prefix: echoes queued after the close went out are not sent).
fn check_output(mut wire: &[u8], delivered: &[WsMessage], deflate: Option<Negotiated>) {
    // The peer's view of the parameters: it inflates what the server compressed.
    let mut inflater = deflate.map(|n| {
        DeflateState::new(Negotiated {
            recv_no_context_takeover: n.send_no_context_takeover,
            recv_window_bits: n.send_window_bits,
            ..n
        })
    });
    let mut echoes = delivered.iter();
    let mut closed = false;
    while !wire.is_empty() {
        let h = parse_header(wire, false, deflate.is_some(), u64::MAX)
            .expect("server wrote a bad frame header")
            .expect("server wrote a truncated frame header");
        assert!(h.fin, "server frames are not fragmented");
        let len = usize::try_from(h.len).expect("length");
        let payload = &wire[h.header_len..h.header_len + len];
        wire = &wire[h.header_len + len..];
        assert!(!closed, "server wrote a frame after its close frame");
        match h.opcode {
            OpCode::Text | OpCode::Binary => {
                let body = if h.rsv1 {
                    let mut out = BytesMut::new();
                    inflater
                        .as_mut()
                        .expect("rsv1 without deflate")
                        .decompress(payload, true, &mut out, MAX_MESSAGE)
                        .expect("server wrote bad compressed data");
                    out.freeze()
                } else {
                    Bytes::copy_from_slice(payload)
                };
                let echo = match h.opcode {
                    OpCode::Text => {
                        WsMessage::Text(String::from_utf8(body.to_vec()).expect("utf8"))
                    }
                    _ => WsMessage::Binary(body),
                };
                assert_eq!(Some(&echo), echoes.next(), "echo out of order");
            }
            OpCode::Close => {
                if len >= 2 {
                    let code = u16::from_be_bytes([payload[0], payload[1]]);
                    assert!(ws::valid_close_code(code), "sent code {code}");
                    assert!(std::str::from_utf8(&payload[2..]).is_ok());
                } else {
                    assert_eq!(len, 0);
                }
                closed = true;
            }
            OpCode::Pong | OpCode::Ping => assert!(len <= 125),
            OpCode::Continuation => panic!("server wrote a continuation frame"),
        }
    }
}
