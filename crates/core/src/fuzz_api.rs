//! Thin public wrappers over crate-private parsers, for the cargo-fuzz targets in
//! `crates/core/fuzz`. Compiled only with `--cfg fuzzing` (which `cargo fuzz` passes); not an
//! API.
//!
//! `hub::resp` sits in a private module that this one cannot name, so its source file is
//! compiled a second time here (the same file, not a copy): what is fuzzed is exactly what the
//! crate runs. `client::redirect` is visible to the crate and re-exported.

use bytes::{Bytes, BytesMut};

#[allow(dead_code)]
#[path = "hub/resp.rs"]
mod resp;

/// Redirect resolution (`client/redirect.rs`): `next_request`, `RedirectPolicy`,
/// `CREDENTIAL_HEADERS`, ...
pub mod redirect {
    pub use crate::client::redirect::{
        is_redirect, next_request, NextRequest, RedirectMode, RedirectPolicy, BODY_HEADERS,
        CREDENTIAL_HEADERS,
    };
}

/// A RESP2 reply (mirror of the crate-private `hub::resp::Value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+...`
    Simple(String),
    /// `-...`
    Error(String),
    /// `:...`
    Int(i64),
    /// `$...` (`None`: `$-1`).
    Bulk(Option<Bytes>),
    /// `*...` (`None`: `*-1`).
    Array(Option<Vec<RespValue>>),
}

impl From<resp::Value> for RespValue {
    fn from(v: resp::Value) -> Self {
        match v {
            resp::Value::Simple(s) => RespValue::Simple(s),
            resp::Value::Error(s) => RespValue::Error(s),
            resp::Value::Int(n) => RespValue::Int(n),
            resp::Value::Bulk(b) => RespValue::Bulk(b),
            resp::Value::Array(a) => {
                RespValue::Array(a.map(|items| items.into_iter().map(Into::into).collect()))
            }
        }
    }
}

/// `hub::resp::parse`: one reply from the front of `buf`, consumed; `Ok(None)` when incomplete.
pub fn resp_parse(buf: &mut BytesMut) -> Result<Option<RespValue>, String> {
    resp::parse(buf).map(|v| v.map(Into::into))
}

/// A proxy's reply to `CONNECT` (mirror of the crate-private `net::proxy::ConnectReply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectReply {
    /// The status code.
    pub status: u16,
    /// Length of the head, blank line included.
    pub head_len: usize,
}

/// Longest proxy reply head accepted.
pub const MAX_CONNECT_REPLY_HEAD: usize = crate::client::ProxyEndpoint::MAX_CONNECT_REPLY_HEAD;

/// `ProxyEndpoint::parse_connect_reply`.
pub fn parse_connect_reply(buf: &[u8]) -> crate::Result<Option<ConnectReply>> {
    crate::client::ProxyEndpoint::parse_connect_reply(buf).map(|r| {
        r.map(|r| ConnectReply {
            status: r.status,
            head_len: r.head_len,
        })
    })
}
