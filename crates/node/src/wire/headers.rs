//! Header lists, the Rust side of `src-ts/wire/headers.ts`. They cross between JS and the
//! binding in one encoding, both ways: a flat `[name, value, name, value, ...]` list of strings
//! (requests and responses of the client and the server, WebSocket handshakes, SSE). Only the
//! server's incoming requests carry theirs inside the request batch (`request.rs`). A WebSocket
//! keeps its handshake headers stored compactly (NUL-separated, never crossing) until JS asks.

use http::HeaderMap;
use hypersock_core::server::header_map;

use crate::error::Fail;

/// Flattens header pairs into `[name, value, name, value, ...]`. A value that is not UTF-8 is
/// read as Latin-1 (one character per byte, as Node's `http` and WHATWG's byte strings read
/// it), so that no byte is lost: `Buffer.from(value, 'latin1')` gives the bytes back.
pub(crate) fn flat_headers<'a, I, V>(pairs: I) -> Vec<String>
where
    I: IntoIterator<Item = (&'a str, V)>,
    V: AsRef<[u8]>,
{
    let mut out = Vec::new();
    for (name, value) in pairs {
        out.push(name.to_owned());
        out.push(header_text(value.as_ref()));
    }
    out
}

/// A header value as text: UTF-8 when it is, Latin-1 otherwise.
fn header_text(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) => text.to_owned(),
        Err(_) => value.iter().map(|&b| char::from(b)).collect(),
    }
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

/// A flat list coming from JS as a header map; an odd length, an invalid name or a value with
/// a control character (CR, LF, NUL, ...) is refused.
pub(crate) fn flat_to_header_map(flat: Vec<String>) -> Result<HeaderMap, Fail> {
    header_map(pair_headers(flat)?).map_err(Fail::from)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A header name as the `http` crate keeps it: a lower-case token.
    fn name() -> impl Strategy<Value = String> {
        "[a-z0-9!#$%&'*+.^_`|~-]{1,12}"
    }

    /// A field value JS can send: no control characters but HTAB, any other text.
    fn value() -> impl Strategy<Value = String> {
        "[\\t\\x20-\\x7e\\u{80}-\\u{10FFFF}]{0,16}"
            .prop_map(|v| v.trim_matches([' ', '\t']).to_owned())
    }

    proptest! {
        #[test]
        fn flat_then_pairs_is_the_same_list(pairs in prop::collection::vec((name(), value()), 0..8)) {
            let flat = flat_headers(pairs.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
            prop_assert_eq!(flat.len(), 2 * pairs.len());
            prop_assert_eq!(pair_headers(flat).unwrap(), pairs);
        }

        #[test]
        fn an_odd_flat_list_is_refused(mut flat in prop::collection::vec(value(), 0..9)) {
            if flat.len() % 2 == 0 {
                flat.push(String::new());
            }
            prop_assert!(pair_headers(flat.clone()).is_err());
            prop_assert!(flat_to_header_map(flat).is_err());
        }

        #[test]
        fn the_header_map_keeps_order_and_repeats(pairs in prop::collection::vec((name(), value()), 0..8)) {
            let flat: Vec<String> = pairs.iter().flat_map(|(n, v)| [n.clone(), v.clone()]).collect();
            let map = flat_to_header_map(flat).unwrap();
            for (n, _) in &pairs {
                let expected: Vec<&[u8]> =
                    pairs.iter().filter(|(m, _)| m == n).map(|(_, v)| v.as_bytes()).collect();
                let got: Vec<&[u8]> = map.get_all(n.as_str()).iter().map(|v| v.as_bytes()).collect();
                prop_assert_eq!(got, expected);
            }
            prop_assert_eq!(map.len(), pairs.len());
        }

        #[test]
        fn a_control_character_in_a_value_is_refused(
            pairs in prop::collection::vec((name(), value()), 1..4),
            at in 0usize..4,
            bad in prop::sample::select(vec!['\r', '\n', '\0', '\x7f', '\x01']),
        ) {
            let mut flat: Vec<String> = pairs.iter().flat_map(|(n, v)| [n.clone(), v.clone()]).collect();
            let i = 2 * (at % pairs.len()) + 1;
            flat[i].push(bad);
            prop_assert!(flat_to_header_map(flat).is_err());
        }

        #[test]
        fn stored_headers_come_back_as_the_flat_list(pairs in prop::collection::vec((name(), value()), 0..8)) {
            let stored = store_headers(pairs.iter().map(|(n, v)| (n.as_str(), v.as_bytes())));
            let flat: Vec<String> = pairs.iter().flat_map(|(n, v)| [n.clone(), v.clone()]).collect();
            prop_assert_eq!(stored_to_flat(&stored), flat);
        }
    }

    #[test]
    fn a_peers_non_utf8_bytes_cross_as_latin1_and_utf8_as_text() {
        let flat = flat_headers([("x", &b"caf\xe9 \xff"[..]), ("y", "caf\u{e9}".as_bytes())]);
        assert_eq!(flat, vec!["x", "caf\u{e9} \u{ff}", "y", "caf\u{e9}"]);
        // Every byte comes back from the Latin-1 reading.
        let back: Vec<u8> = flat[1].chars().map(|c| c as u8).collect();
        assert_eq!(back, b"caf\xe9 \xff");
    }
}
