//! Process-wide tuning of the engine, settable at any time (what is read later sees the new
//! value).

use std::sync::atomic::{AtomicUsize, Ordering};

/// The default size of one socket read: WebSocket connections and raw sockets.
pub const DEFAULT_READ_BUFFER: usize = 64 << 10;
/// The smallest read buffer accepted.
pub const MIN_READ_BUFFER: usize = 4 << 10;
/// The largest read buffer accepted.
pub const MAX_READ_BUFFER: usize = 16 << 20;

static READ_BUFFER: AtomicUsize = AtomicUsize::new(DEFAULT_READ_BUFFER);

/// The size of one socket read of a WebSocket connection or a raw socket. WebSocket connections
/// read into a scratch buffer of this size per I/O thread (so an idle connection holds none)
/// and switch to reading straight into their own buffer while a peer streams.
pub fn read_buffer_size() -> usize {
    READ_BUFFER.load(Ordering::Relaxed)
}

/// Sets [`read_buffer_size`], clamped to [`MIN_READ_BUFFER`]..=[`MAX_READ_BUFFER`]; returns the
/// value in effect.
pub fn set_read_buffer_size(n: usize) -> usize {
    let n = n.clamp(MIN_READ_BUFFER, MAX_READ_BUFFER);
    READ_BUFFER.store(n, Ordering::Relaxed);
    n
}
