//! Process-wide engine settings (`configure` in the TS layer): the number of I/O threads and the
//! socket read size.

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::Fail;

/// Settings to change; what is left out stays.
#[napi(object)]
pub struct BindingEngineConfig {
    pub worker_threads: Option<u32>,
    pub read_buffer_size: Option<u32>,
}

/// The settings in effect.
#[napi(object)]
pub struct BindingEngineState {
    pub worker_threads: u32,
    pub read_buffer_size: u32,
}

fn metrics() -> tokio::runtime::RuntimeMetrics {
    within_runtime_if_available(|| tokio::runtime::Handle::current().metrics())
}

fn state() -> BindingEngineState {
    BindingEngineState {
        worker_threads: metrics().num_workers() as u32,
        read_buffer_size: hypersock_core::tuning::read_buffer_size() as u32,
    }
}

/// The settings in effect.
#[napi]
pub fn engine_state() -> BindingEngineState {
    state()
}

/// Applies `config`. A new number of I/O threads replaces the runtime, which is only possible
/// while nothing runs on it (no server, connection, request or timer): otherwise
/// `ERR_INVALID_STATE`.
#[napi]
pub fn configure_engine(env: &Env, config: BindingEngineConfig) -> Result<BindingEngineState> {
    if let Some(n) = config.worker_threads {
        if !(1..=1024).contains(&n) {
            return Err(
                Fail::invalid_arg("workerThreads must be an integer from 1 to 1024").throw(env),
            );
        }
        let m = metrics();
        if m.num_workers() != n as usize {
            if m.num_alive_tasks() > 0 {
                return Err(Fail::invalid_state(
                    "workerThreads can only change before the first server, client request, \
                     WebSocket or socket starts (the engine is running)",
                )
                .throw(env));
            }
            // The runtime napi-rs restarts after a shutdown is tokio's default one, which takes
            // its size from TOKIO_WORKER_THREADS; nothing else runs meanwhile (no task is alive).
            let before = std::env::var_os("TOKIO_WORKER_THREADS");
            std::env::set_var("TOKIO_WORKER_THREADS", n.to_string());
            shutdown_async_runtime();
            start_async_runtime();
            match before {
                Some(v) => std::env::set_var("TOKIO_WORKER_THREADS", v),
                None => std::env::remove_var("TOKIO_WORKER_THREADS"),
            }
        }
    }
    if let Some(n) = config.read_buffer_size {
        hypersock_core::tuning::set_read_buffer_size(n as usize);
    }
    Ok(state())
}
