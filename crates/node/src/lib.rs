//! The napi-rs binding of hypersock-core. Thin by design: it converts values, owns the
//! threadsafe functions that call into JS, and maps engine errors to JS errors in one place
//! ([`error`]). Protocol logic lives in `hypersock-core`; the public API is the TS layer.

// napi registers exports only in real builds; the test build sees them as unused.
#![cfg_attr(test, allow(dead_code))]

mod client;
mod cookie;
mod engine;
mod error;
mod hub;
mod lent;
mod multipart;
mod routes;
mod server;
mod socket;
mod sse;
mod testing;
mod wake;
mod websocket;
mod wire;

// Requests, frames and buffers are allocated on one thread and freed on another all the time;
// mimalloc handles that pattern far better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Configures the tokio runtime once, when the addon loads. `HYPERSOCK_WORKER_THREADS` sets the
/// number of I/O threads; the default leaves one core to the JS thread (at least one worker).
#[napi_derive::module_init]
fn init() {
    let workers = std::env::var("HYPERSOCK_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get().saturating_sub(1).max(1))
                .unwrap_or(1)
        });
    if let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("hypersock-io")
        .enable_all()
        .build()
    {
        napi::bindgen_prelude::create_custom_tokio_runtime(rt);
    }
}
