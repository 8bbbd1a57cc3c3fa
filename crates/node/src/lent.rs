//! Large received payloads reach JS without a copy, and are sent on without one.
//!
//! A payload of at least [`LEND_MIN`] bytes becomes an external `ArrayBuffer` over the Rust
//! bytes. The JS thread keeps those bytes in a registry keyed by address until V8 finalizes the
//! `ArrayBuffer`. When JS sends a `Buffer` (or a part of one) that the registry holds, the send
//! queues a reference to the same bytes instead of copying them: an echo or a relay of large
//! messages then copies nothing on the JS thread.
//!
//! The registry owns the bytes, so they stay valid for as long as either JS or a queued send
//! needs them, whatever JS does with the `Buffer` (a detached or collected `Buffer` only drops
//! one reference). As with `socket.write` in Node.js and `ws`, changing a `Buffer` after
//! sending it may change what goes out; the frame length never changes.

use std::cell::RefCell;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use bytes::Bytes;
use napi::bindgen_prelude::*;

/// Smaller payloads are copied: lending costs about as much as copying this many bytes.
pub(crate) const LEND_MIN: usize = 8 << 10;
/// Sends at least this long look for lent bytes first (a lookup is cheaper than the copy).
const REUSE_MIN: usize = 1 << 10;

thread_local! {
    /// Bytes lent to JS on this thread, by start address.
    static LENT: RefCell<BTreeMap<usize, Bytes>> = const { RefCell::new(BTreeMap::new()) };
}

/// An `ArrayBuffer` over `bytes` (JS makes the `Buffer` view): external when the payload is
/// large and not already lent, else a copy. Node.js reports the external memory to V8, so
/// collection keeps pace with it.
pub(crate) fn to_array_buffer<'env>(env: &'env Env, bytes: Bytes) -> Result<ArrayBuffer<'env>> {
    let key = bytes.as_ptr() as usize;
    let len = bytes.len();
    let fresh = len >= LEND_MIN
        && LENT.with(|lent| {
            // Two external buffers must never share an address (V8 keeps one backing store per
            // address); distinct live payloads never do, but stay safe.
            match lent.borrow_mut().entry(key) {
                Entry::Occupied(_) => false,
                Entry::Vacant(slot) => {
                    slot.insert(bytes.clone());
                    true
                }
            }
        });
    if !fresh {
        return ArrayBuffer::copy_from(env, &bytes);
    }
    // SAFETY: the registry keeps `bytes` (and so `key..key + len`) alive until the finalizer
    // below removes it, which V8 runs only once the `ArrayBuffer` is unreachable.
    let made = unsafe {
        ArrayBuffer::from_external(env, key as *mut u8, len, key, |_, key: usize| {
            // `try_with`: at thread exit the registry may already be gone (its bytes with it).
            let _ = LENT.try_with(|lent| lent.borrow_mut().remove(&key));
        })
    };
    if made.is_err() {
        LENT.with(|lent| lent.borrow_mut().remove(&key));
    }
    made
}

/// The bytes to send for `data`: a reference to lent bytes when `data` lies inside them, else
/// a copy.
pub(crate) fn to_bytes(data: &[u8]) -> Bytes {
    if data.len() >= REUSE_MIN {
        let at = data.as_ptr() as usize;
        let found = LENT.with(|lent| {
            let lent = lent.borrow();
            let (base, bytes) = lent.range(..=at).next_back()?;
            let start = at - base;
            (start + data.len() <= bytes.len()).then(|| bytes.slice(start..start + data.len()))
        });
        if let Some(bytes) = found {
            return bytes;
        }
    }
    Bytes::copy_from_slice(data)
}
