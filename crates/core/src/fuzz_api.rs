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

/// The server's path handling: the route table (`server/routes.rs`) and the request-path
/// decoding and `Range` parsing of file routes (`server/files.rs`).
pub mod paths {
    use crate::server::files::{decode_tail as tail, parse_range as range, RangeAnswer};
    use crate::server::routes::Matched;
    use crate::server::{RouteAction, RouteSpec, Routes};

    /// The decoded segments of a file route's request tail; `None` when refused.
    pub fn decode_tail(raw: &str, dotfiles: bool) -> Option<Vec<String>> {
        tail(raw, dotfiles)
    }

    /// A `Range` value against `size` bytes: `None` for the whole file, `Some(None)` for 416,
    /// `Some(Some((first, last)))` for a part.
    pub fn parse_range(value: &[u8], size: u64) -> Option<Option<(u64, u64)>> {
        match range(value, size) {
            RangeAnswer::Whole => None,
            RangeAnswer::Unsatisfiable => Some(None),
            RangeAnswer::Part(first, last) => Some(Some((first, last))),
        }
    }

    /// Builds a table from `patterns` (handler ids in order, any method) and matches `path`:
    /// `Err` when the table is refused, `Ok(None)` without a match, else the id and raw params.
    pub fn route(patterns: &[String], path: &str) -> Result<Option<(u32, Vec<String>)>, String> {
        let specs = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| RouteSpec {
                pattern: p.clone(),
                method: None,
                action: RouteAction::Handler(i as u32),
            })
            .collect();
        let routes = Routes::new(specs).map_err(|e| e.to_string())?;
        Ok(match routes.find(&http::Method::GET, path) {
            Matched::Action {
                action: RouteAction::Handler(id),
                params,
                ..
            } => Some((*id, params.iter().map(|p| (*p).to_owned()).collect())),
            _ => None,
        })
    }
}
