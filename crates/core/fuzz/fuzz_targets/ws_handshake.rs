//! Opening-handshake helpers on arbitrary strings: `ws::handshake::{valid_key, has_token,
//! accept_key, base64}` and `ws::deflate::{parse_extensions, accept_offer, accept_response}`.
//!
//! Input: byte 0 picks the server's and client's permessage-deflate options; the rest is the
//! header value (as bytes for the key helpers, as lossy UTF-8 for the extension parser).
//! Checks: a valid key is canonical base64 of 16 bytes; `accept_key` is base64 of 20 bytes;
//! `base64` round-trips; `has_token` finds a token appended to any value; a parsed extension
//! list is made of tokens and re-parses the same from its canonical form; a server response
//! parses back as one permessage-deflate item that a client accepts, with parameters the two
//! sides agree on; negotiated window bits are within 8-15.
#![no_main]

use hypersock_core::ws::deflate::{
    accept_offer, accept_response, parse_extensions, DeflateOptions, ExtensionItem, Negotiated,
};
use hypersock_core::ws::handshake::{accept_key, base64, has_token, valid_key};
use libfuzzer_sys::fuzz_target;

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Strict standard base64 with padding; `None` when not canonical.
fn unbase64(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::new();
    for (i, q) in s.chunks(4).enumerate() {
        let last = i == s.len() / 4 - 1;
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | B64.iter().position(|&b| b == c)? as u32;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    (base64(&out).as_bytes() == s).then_some(out)
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn serialize(items: &[ExtensionItem]) -> String {
    items
        .iter()
        .map(|it| {
            let mut s = it.name.clone();
            for (k, v) in &it.params {
                s.push_str("; ");
                s.push_str(k);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(v);
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn bits_ok(n: &Negotiated) {
    assert!((8..=15).contains(&n.send_window_bits), "{n:?}");
    assert!((8..=15).contains(&n.recv_window_bits), "{n:?}");
}

fn options(cfg: u8) -> DeflateOptions {
    DeflateOptions {
        server_no_context_takeover: cfg & 1 != 0,
        client_no_context_takeover: cfg & 2 != 0,
        server_max_window_bits: if cfg & 4 != 0 {
            15
        } else {
            8 + ((cfg >> 4) & 7)
        },
        client_max_window_bits: if cfg & 8 != 0 { 15 } else { 8 + (cfg >> 5) },
        ..DeflateOptions::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, value)) = data.split_first() else {
        return;
    };

    // Sec-WebSocket-Key / Accept.
    if valid_key(value) {
        let raw = unbase64(value).expect("a valid key is canonical base64");
        assert_eq!(raw.len(), 16);
    }
    let accept = accept_key(value);
    assert_eq!(accept.len(), 28);
    assert_eq!(unbase64(accept.as_bytes()).map(|r| r.len()), Some(20));
    let encoded = base64(value);
    assert_eq!(unbase64(encoded.as_bytes()).as_deref(), Some(value));
    if value.len() >= 16 {
        assert!(valid_key(base64(&value[..16]).as_bytes()));
    }

    // Connection / Upgrade tokens.
    if let Ok(s) = std::str::from_utf8(value) {
        assert!(has_token(format!("{s}, websocket").as_bytes(), "websocket"));
        assert!(has_token(format!(" UpGrade ,{s}").as_bytes(), "upgrade"));
        if has_token(value, "websocket") {
            assert!(s.to_ascii_lowercase().contains("websocket"));
        }
    } else {
        assert!(!has_token(value, "websocket"));
    }

    // Sec-WebSocket-Extensions.
    let text = String::from_utf8_lossy(value);
    let server = options(cfg);
    let client = DeflateOptions::default();
    let Some(items) = parse_extensions(&text) else {
        return;
    };
    for it in &items {
        assert!(is_token(&it.name), "{it:?}");
        for (k, v) in &it.params {
            assert!(is_token(k) && *k == k.to_ascii_lowercase(), "{it:?}");
            assert!(v.as_deref().is_none_or(is_token), "{it:?}");
        }
    }
    assert_eq!(
        parse_extensions(&serialize(&items)).as_ref(),
        Some(&items),
        "canonical form re-parses"
    );
    if let Ok(Some(n)) = accept_response(&items, &options(cfg.rotate_left(3))) {
        bits_ok(&n);
    }
    if let Some((resp, n)) = accept_offer(&items, &server) {
        bits_ok(&n);
        let back = parse_extensions(&resp).expect("our response parses");
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].name, "permessage-deflate");
        let c = accept_response(&back, &client)
            .expect("a client accepts our response")
            .expect("deflate");
        bits_ok(&c);
        // What one side compresses, the other can inflate.
        assert!(
            c.send_window_bits <= n.recv_window_bits.max(9),
            "{c:?} {n:?}"
        );
        assert!(
            n.send_window_bits <= c.recv_window_bits.max(9),
            "{c:?} {n:?}"
        );
        // Whoever inflates without context gets messages compressed without context.
        assert!(!n.recv_no_context_takeover || c.send_no_context_takeover);
        assert!(!c.recv_no_context_takeover || n.send_no_context_takeover);
    }
});
