//! hypersock-core: the engine behind the hypersock npm package.
//!
//! It has no Node.js dependency and can be used from Rust directly. Everything here runs on the
//! tokio runtime of the caller: the HTTP server ([`server`]), the HTTP client ([`client`]) and
//! WebSocket connections ([`ws`]). Errors carry a stable code ([`Error::code`]).

pub mod client;
pub mod error;
pub mod server;
pub mod tls;
pub mod ws;

pub use error::{Error, Result};
