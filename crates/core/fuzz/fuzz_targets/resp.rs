//! The Redis RESP2 reply parser (`hub::resp::parse`, through `fuzz_api`), fed in two pieces as
//! replies arrive from a socket.
//!
//! Input: byte 0 says where to split the rest (scaled to its length).
//! Checks: no panic; parsing the first piece then (after appending the second) the rest gives
//! the same replies, and the same final outcome, as parsing the whole at once; a reply consumes
//! at least one byte; and no allocation is larger than a bound proportional to the input (a
//! huge declared bulk or array length must not allocate up front).
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::BytesMut;
use hypersock_core::fuzz_api::{resp_parse, RespValue};
use libfuzzer_sys::fuzz_target;

/// Records the largest single allocation.
struct Track;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Track {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Track = Track;

#[derive(Debug, PartialEq)]
enum Outcome {
    Incomplete,
    Error(String),
}

/// Parses replies from `buf` until it is incomplete or fails.
fn drain(buf: &mut BytesMut, out: &mut Vec<RespValue>) -> Outcome {
    loop {
        let before = buf.len();
        match resp_parse(buf) {
            Ok(Some(v)) => {
                assert!(buf.len() < before, "a reply consumed nothing");
                out.push(v);
            }
            Ok(None) => {
                assert_eq!(buf.len(), before, "an incomplete parse consumed input");
                return Outcome::Incomplete;
            }
            Err(e) => return Outcome::Error(e),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut) * input.len() / 255;

    // Room for every reply up front (each takes at least 3 bytes), so that only the parser's
    // own allocations are measured.
    let mut whole = Vec::with_capacity(input.len() / 3 + 1);
    let mut piecewise = Vec::with_capacity(input.len() / 3 + 1);
    LARGEST.store(0, Ordering::Relaxed);
    let whole_end = drain(&mut BytesMut::from(input), &mut whole);

    let mut buf = BytesMut::from(&input[..at]);
    let mut end = drain(&mut buf, &mut piecewise);
    if end == Outcome::Incomplete {
        buf.extend_from_slice(&input[at..]);
        end = drain(&mut buf, &mut piecewise);
    }
    assert_eq!(piecewise, whole, "piecewise replies differ");
    assert_eq!(end, whole_end, "piecewise outcome differs");

    // Copies of the input, strings (lossy UTF-8 at most triples them) and arrays of parsed
    // values, which grow by doubling: every reply takes at least 3 bytes of input, so an array
    // holds at most len / 3 values. Nothing sized by a declared length (up to 512 MiB).
    let largest = LARGEST.load(Ordering::Relaxed);
    let values = 2 * (input.len() / 3 + 16) * std::mem::size_of::<RespValue>();
    let bound = 4 * input.len() + values + 4096;
    assert!(
        largest <= bound,
        "allocated {largest} bytes for {} bytes of input (bound {bound})",
        input.len()
    );
});
