//! The permessage-deflate inflater (`ws::deflate::DeflateState::decompress`) alone.
//!
//! Input: byte 0 picks the window bits, context takeover and the output limit; byte 1 where the
//! data is split into two frames of one message; the rest is the compressed payload, inflated
//! twice as two messages (the second with whatever window the first left).
//! Checks: no panic; the output never passes the limit (one byte over at most, to prove a
//! message too big, and only with the `TooBig` error). Then the same bytes as a message are
//! compressed and inflated back, which must round-trip.
#![no_main]

use bytes::BytesMut;
use hypersock_core::ws::deflate::{DeflateState, InflateFailure, Negotiated};
use libfuzzer_sys::fuzz_target;

const LIMITS: [usize; 4] = [0, 100, 4096, 64 << 10];

fn negotiated(cfg: u8) -> Negotiated {
    let bits = 8 + (cfg & 7);
    let nct = cfg & 8 != 0;
    Negotiated {
        send_no_context_takeover: nct,
        recv_no_context_takeover: nct,
        send_window_bits: bits,
        recv_window_bits: bits,
        threshold: 0,
        level: i32::from(cfg >> 4) % 10,
        mem_level: 1 + i32::from(cfg >> 4) % 9,
    }
}

fuzz_target!(|data: &[u8]| {
    let [cfg, split, payload @ ..] = data else {
        return;
    };
    let limit = LIMITS[usize::from(cfg >> 6)];
    let mut z = DeflateState::new(negotiated(*cfg));
    let split = usize::from(*split) % (payload.len() + 1);
    for _ in 0..2 {
        let mut out = BytesMut::new();
        let first = z.decompress(&payload[..split], false, &mut out, limit);
        let res = first.and_then(|()| z.decompress(&payload[split..], true, &mut out, limit));
        match res {
            Ok(()) => assert!(out.len() <= limit, "{} > {limit}", out.len()),
            Err(InflateFailure::TooBig) => assert!(out.len() <= limit + 1),
            Err(InflateFailure::Corrupt) => assert!(out.len() <= limit),
        }
        if res.is_err() {
            // A failed connection is closed; start over as a new one would.
            z = DeflateState::new(negotiated(*cfg));
        }
    }

    // Round trip: what we compress, the peer's inflater (same parameters) gives back.
    let mut a = DeflateState::new(negotiated(*cfg));
    let mut b = DeflateState::new(negotiated(*cfg));
    for _ in 0..2 {
        let mut wire = BytesMut::new();
        a.compress(payload, &mut wire);
        let cut = split.min(wire.len());
        let mut out = BytesMut::new();
        b.decompress(&wire[..cut], false, &mut out, payload.len())
            .expect("inflate our own output");
        b.decompress(&wire[cut..], true, &mut out, payload.len())
            .expect("inflate our own output");
        assert_eq!(&out[..], payload);
    }
});
