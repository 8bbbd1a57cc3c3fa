//! The request batch (I/O threads -> JS) and the response header block (JS -> I/O threads):
//! the Rust side of `src-ts/server-request.ts` (`decodeRequests`) and `src-ts/server-response.ts`.

use http::HeaderMap;
use hypersock_core::server::{header_map, Request};
use napi_derive::napi;

use crate::error::{Fail, JsResult};

/// How the request body is held: none, whole (in the batch), or streaming (`takeBodyStream`).
pub(crate) const BODY_EMPTY: u8 = 0;
pub(crate) const BODY_FULL: u8 = 1;
pub(crate) const BODY_STREAM: u8 = 2;

/// Method codes of the batch format; 0 means the name follows.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// The methods of the request batch's method codes: code `n` is `requestMethods()[n - 1]`.
/// JS reads the table from here instead of keeping its own.
#[napi]
pub fn request_methods() -> Vec<&'static str> {
    METHODS.to_vec()
}

/// Appends one request to the batch, little-endian, read by `src-ts/server-request.ts`:
///
/// ```text
/// u32 record length (from this field to the end of the record)
/// u32 id
/// u8  method code (1 + index in METHODS; 0: u8 length and the name follow after the port)
/// u8  flags: body kind (bits 0-1), version (bits 2-3: 0 HTTP/1.1, 1 HTTP/1.0, 2 HTTP/2),
///     upgrade asked (bit 4), TLS (bit 5), remote address family (bits 6-7: 0 none, 1 v4, 2 v6)
/// u16 header count
/// u16 remote port
/// [4 or 16 bytes of remote IP] [u8 length + method name]
/// u32 target length, target
/// per header: u16 name length, name, u32 value length, value
/// [u32 TLS JSON length, JSON]   when TLS
/// [u32 body length, body]       when the body is whole
/// ```
pub(crate) fn encode_request(
    out: &mut Vec<u8>,
    id: u32,
    kind: u8,
    can_upgrade: bool,
    req: &Request,
    body: Option<&[u8]>,
) {
    let start = out.len();
    let method = req.method.as_str();
    let code = METHODS
        .iter()
        .position(|m| *m == method)
        .map_or(0, |i| i as u8 + 1);
    let version: u8 = if req.version == http::Version::HTTP_2 {
        2
    } else if req.version == http::Version::HTTP_10 {
        1
    } else {
        0
    };
    let family: u8 = match req.remote_addr {
        None => 0,
        Some(a) if a.is_ipv4() => 1,
        Some(_) => 2,
    };
    let flags = kind
        | (version << 2)
        | (u8::from(can_upgrade) << 4)
        | (u8::from(req.tls.is_some()) << 5)
        | (family << 6);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.push(code);
    out.push(flags);
    out.extend_from_slice(&(req.headers.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    out.extend_from_slice(&req.remote_addr.map_or(0, |a| a.port()).to_le_bytes());
    match req.remote_addr.map(|a| a.ip()) {
        Some(std::net::IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
        Some(std::net::IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
        None => {}
    }
    if code == 0 {
        let name = &method.as_bytes()[..method.len().min(255)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
    }
    put_u32_bytes(out, req.target.as_bytes());
    for (name, value) in req.headers.iter().take(usize::from(u16::MAX)) {
        let name = name.as_str().as_bytes();
        out.extend_from_slice(&(name.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
        out.extend_from_slice(&name[..name.len().min(usize::from(u16::MAX))]);
        put_u32_bytes(out, value.as_bytes());
    }
    if let Some(tls) = &req.tls {
        put_u32_bytes(out, tls.to_json().as_bytes());
    }
    if let Some(body) = body {
        put_u32_bytes(out, body);
    }
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_u32_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Parses the response header block JS sends: `count` name/value pairs joined by `\n`. A name or
/// value containing `\n` changes the number of parts and is refused, as is any invalid byte.
pub(crate) fn header_block(count: u32, block: &str) -> JsResult<HeaderMap> {
    let invalid = || {
        Fail::invalid_arg("invalid response header (names and values cannot contain line breaks)")
    };
    if count == 0 {
        return if block.is_empty() {
            Ok(HeaderMap::new())
        } else {
            Err(invalid())
        };
    }
    let mut parts = block.split('\n');
    let mut pairs = Vec::with_capacity(count as usize);
    for _ in 0..count {
        match (parts.next(), parts.next()) {
            (Some(name), Some(value)) => pairs.push((name, value)),
            _ => return Err(invalid()),
        }
    }
    if parts.next().is_some() {
        return Err(invalid());
    }
    header_map(pairs).map_err(Fail::from)
}
