//! The client's `Content-Encoding` decoders (`client::Decoder`): byte 0 picks the encoding
//! (gzip, deflate, br, zstd) and byte 1 how the body is cut into pieces; the rest is the body.
//!
//! Checks: no piece handed out is larger than `DECODED_CHUNK`, the total never passes the limit
//! (64 KiB here), and after an error every later call fails too.
#![no_main]

use bytes::Bytes;
use hypersock_core::client::{Decoder, DECODED_CHUNK};
use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 64 * 1024;
const ENCODINGS: [&str; 4] = ["gzip", "deflate", "br", "zstd"];

fuzz_target!(|data: &[u8]| {
    let [pick, cut, body @ ..] = data else {
        return;
    };
    let mut d = Decoder::for_encoding(ENCODINGS[usize::from(*pick) % 4], LIMIT).expect("decoder");
    let piece = usize::from(*cut).max(1);
    let mut total = 0u64;
    let mut check = |out: Option<Bytes>| -> bool {
        match out {
            Some(b) => {
                assert!(b.len() <= DECODED_CHUNK, "a piece of {} bytes", b.len());
                total += b.len() as u64;
                assert!(total <= LIMIT, "{total} bytes past the limit");
                true
            }
            None => false,
        }
    };
    for chunk in body.chunks(piece) {
        d.push(Bytes::copy_from_slice(chunk));
        loop {
            match d.next_output() {
                Ok(out) => {
                    if !check(out) {
                        break;
                    }
                }
                Err(_) => {
                    assert!(d.next_output().is_err() && d.finish().is_err());
                    return;
                }
            }
        }
    }
    loop {
        match d.finish() {
            Ok(out) => {
                if !check(out) {
                    break;
                }
            }
            Err(_) => {
                assert!(d.finish().is_err());
                return;
            }
        }
    }
});
