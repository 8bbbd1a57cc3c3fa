//! An HTTP proxy's reply to `CONNECT`: `ProxyEndpoint::parse_connect_reply` (through
//! `fuzz_api`) over arbitrary bytes.
//!
//! Checks: a complete reply has a 3-digit status and a head within the buffer and the size
//! limit, parses the same from exactly its head, and every prefix of it that ends a line is
//! still incomplete (so reading up to each line end, as a client does, stops at the same head);
//! an incomplete buffer is shorter than the limit; an error is final (more bytes do not undo
//! it).
#![no_main]

use hypersock_core::fuzz_api::{parse_connect_reply, MAX_CONNECT_REPLY_HEAD};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_connect_reply(data) {
        Ok(Some(r)) => {
            assert!((100..=999).contains(&r.status), "status {}", r.status);
            assert!(r.head_len <= data.len() && r.head_len <= MAX_CONNECT_REPLY_HEAD);
            assert!(data[..r.head_len].ends_with(b"\n"));
            let head = &data[..r.head_len];
            assert_eq!(parse_connect_reply(head).expect("head alone"), Some(r));
            for (i, _) in head[..r.head_len - 1]
                .iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
            {
                let prefix = &head[..=i];
                assert_eq!(
                    parse_connect_reply(prefix).expect("a prefix of a good head"),
                    None,
                    "prefix of {} bytes",
                    prefix.len()
                );
            }
        }
        Ok(None) => assert!(data.len() < MAX_CONNECT_REPLY_HEAD),
        Err(_) => {
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n\r\n");
            assert!(parse_connect_reply(&more).is_err(), "an error went away");
        }
    }
});
