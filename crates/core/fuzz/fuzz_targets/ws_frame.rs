//! WebSocket frame headers (`ws::frame::parse_header`) over arbitrary bytes, and masking.
//!
//! Input: byte 0 picks the side, RSV1 permission and frame limit; the rest is the buffer.
//! Checks: a header is only returned when all of it is in the buffer, within the limits and
//! rules of RFC 6455; every shorter prefix asks for more bytes; re-encoding it parses back to
//! the same header. `apply_mask` matches the definition at any offset and alignment, applied
//! in one go or in two pieces, and masking twice restores the data.
#![no_main]

use bytes::BytesMut;
use hypersock_core::ws::frame::{apply_mask, header_len, parse_header, write_header, OpCode};
use libfuzzer_sys::fuzz_target;

const LIMITS: [u64; 4] = [0, 125, 64 << 10, u64::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, buf)) = data.split_first() else {
        return;
    };
    let expect_masked = cfg & 1 != 0;
    let allow_rsv1 = cfg & 2 != 0;
    let max_frame = LIMITS[usize::from((cfg >> 2) & 3)];
    headers(buf, expect_masked, allow_rsv1, max_frame);
    masking(cfg, buf);
});

fn headers(buf: &[u8], expect_masked: bool, allow_rsv1: bool, max_frame: u64) {
    match parse_header(buf, expect_masked, allow_rsv1, max_frame) {
        Ok(None) => assert!(buf.len() < 14, "asked for more with {} bytes", buf.len()),
        Err(_) => {
            // An error is final: more bytes do not change it.
            let mut more = buf.to_vec();
            more.extend_from_slice(&[0; 14]);
            assert!(parse_header(&more, expect_masked, allow_rsv1, max_frame).is_err());
        }
        Ok(Some(h)) => {
            assert!(h.header_len <= buf.len());
            assert!(matches!(h.header_len, 2 | 4 | 6 | 8 | 10 | 14));
            assert!(h.len <= max_frame);
            assert!(h.len >> 63 == 0);
            assert_eq!(h.mask.is_some(), expect_masked);
            assert!(!h.rsv1 || allow_rsv1);
            if h.opcode.is_control() {
                assert!(h.fin && h.len <= 125 && !h.rsv1);
            }
            assert_eq!(OpCode::from_u8(h.opcode.as_u8()), Some(h.opcode));
            // Exactly the header is needed: every shorter prefix asks for more.
            for cut in 0..h.header_len {
                assert_eq!(
                    parse_header(&buf[..cut], expect_masked, allow_rsv1, max_frame),
                    Ok(None),
                    "prefix {cut}"
                );
            }
            assert_eq!(
                parse_header(&buf[..h.header_len], expect_masked, allow_rsv1, max_frame),
                Ok(Some(h))
            );
            // Re-encoded (with the minimal length encoding) it parses back the same.
            if let Ok(len) = usize::try_from(h.len) {
                let mut out = BytesMut::new();
                write_header(&mut out, h.fin, h.rsv1, h.opcode, h.mask, len);
                assert_eq!(out.len(), header_len(len, h.mask.is_some()));
                assert!(out.len() <= h.header_len);
                let back = parse_header(&out, expect_masked, allow_rsv1, max_frame)
                    .expect("re-encoded header")
                    .expect("complete");
                assert_eq!(
                    (back.fin, back.rsv1, back.opcode),
                    (h.fin, h.rsv1, h.opcode)
                );
                assert_eq!((back.mask, back.len), (h.mask, h.len));
                assert_eq!(back.header_len, out.len());
            }
        }
    }
}

fn masking(cfg: u8, buf: &[u8]) {
    if buf.len() < 6 {
        return;
    }
    let mask = [buf[0], buf[1], buf[2], buf[3]];
    let offset = usize::from(buf[4]);
    // Start at varying alignments (up to 7 bytes in) to reach every path of the word loop.
    let start = usize::from(cfg >> 5).min(buf.len() - 5);
    let payload = &buf[5 + start..];

    let mut storage = vec![0u8; start + payload.len()];
    storage[start..].copy_from_slice(payload);
    let region = &mut storage[start..];
    assert_eq!(apply_mask(region, mask, offset), offset + payload.len());
    for (i, (got, orig)) in region.iter().zip(payload).enumerate() {
        assert_eq!(*got, orig ^ mask[(offset + i) % 4], "byte {i}");
    }
    // Unmasking restores the payload.
    apply_mask(region, mask, offset);
    assert_eq!(region, payload);

    // In two pieces, chaining the returned offset, as the connection driver does.
    let split = usize::from(buf[5]) % (payload.len() + 1);
    let (a, b) = region.split_at_mut(split);
    let next = apply_mask(a, mask, offset);
    assert_eq!(next, offset + split);
    apply_mask(b, mask, next);
    for (i, (got, orig)) in region.iter().zip(payload).enumerate() {
        assert_eq!(
            *got,
            orig ^ mask[(offset + i) % 4],
            "split {split} byte {i}"
        );
    }
}
