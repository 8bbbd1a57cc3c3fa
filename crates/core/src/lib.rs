//! hypersock-core: the engine behind the hypersock npm package.
//!
//! It has no Node.js dependency and can be used from Rust directly. Everything here runs on the
//! tokio runtime of the caller: the HTTP server ([`server`]), the HTTP client ([`client`]) and
//! WebSocket connections ([`ws`]) and the
//! [`hub`] of rooms that fans messages out to them. Errors carry a stable code ([`Error::code`]).

pub mod client;
pub mod cookie;
pub mod error;
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz_api;
pub mod hub;
pub mod multipart;
pub mod net;
pub mod server;
pub mod sse;
pub mod tls;
pub mod tuning;
pub mod ws;

pub use error::{Error, Result};
