//! Header lists. They cross between JS and the binding in one encoding: a flat
//! `[name, value, name, value, ...]` list of strings (requests and responses of the client,
//! WebSocket handshakes, SSE), except on the server's hot paths, which have their own formats in
//! `request.rs` (the request batch and the response header block). A WebSocket keeps its
//! handshake headers stored compactly (NUL-separated) until JS asks for them.

use crate::error::Fail;

/// Flattens header pairs into `[name, value, name, value, ...]`.
pub(crate) fn flat_headers<'a, I, V>(pairs: I) -> Vec<String>
where
    I: IntoIterator<Item = (&'a str, V)>,
    V: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for (name, value) in pairs {
        out.push(name.to_owned());
        out.push(String::from_utf8_lossy(value.as_ref()).into_owned());
    }
    out
}

/// Pairs up a flat `[name, value, ...]` list coming from JS.
pub(crate) fn pair_headers(flat: Vec<String>) -> Result<Vec<(String, String)>, Fail> {
    if !flat.len().is_multiple_of(2) {
        return Err(Fail::invalid_arg(
            "headers must be a flat list of name/value pairs",
        ));
    }
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        out.push((name, value));
    }
    Ok(out)
}

/// Stores header pairs compactly: `name NUL value NUL ...`.
pub(crate) fn store_headers<'a>(pairs: impl Iterator<Item = (&'a str, &'a [u8])>) -> Box<[u8]> {
    let mut out = Vec::new();
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out.into_boxed_slice()
}

/// The flat list of headers stored by [`store_headers`].
pub(crate) fn stored_to_flat(stored: &[u8]) -> Vec<String> {
    let mut parts = stored.split(|b| *b == 0);
    let mut pairs = Vec::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        pairs.push((std::str::from_utf8(name).unwrap_or_default(), value));
    }
    flat_headers(pairs)
}
