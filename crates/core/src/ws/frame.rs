//! RFC 6455 section 5: frame headers, opcodes and masking.
//!
//! Parsing is incremental: [`parse_header`] looks at the front of a read buffer and either
//! returns a complete, validated header or asks for more bytes. Payloads are handled by the
//! connection driver so that they can be unmasked in place and moved, not copied.

use bytes::{BufMut, BytesMut};

/// Frame opcodes (RFC 6455 section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// A continuation frame of a fragmented message.
    Continuation,
    /// The first frame of a text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// A close frame.
    Close,
    /// A ping.
    Ping,
    /// A pong.
    Pong,
}

impl OpCode {
    /// The opcode for a wire value, or `None` for a reserved one.
    pub fn from_u8(v: u8) -> Option<OpCode> {
        Some(match v {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// True for close, ping and pong.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Final fragment of a message.
    pub fin: bool,
    /// RSV1 ("per-message compressed" when permessage-deflate is in use).
    pub rsv1: bool,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
    /// Header length in bytes (2 to 14).
    pub header_len: usize,
}

/// Why a frame header was refused. Each maps to a close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// RSV2/RSV3 set, or RSV1 without a negotiated extension (1002).
    ReservedBits,
    /// A reserved opcode (1002).
    BadOpcode,
    /// A control frame that is fragmented or longer than 125 bytes (1002).
    BadControl,
    /// A client frame that is not masked, or a server frame that is (1002).
    BadMask,
    /// A 64-bit length with the top bit set, or a non-minimal length encoding is tolerated,
    /// but this one is not representable (1002).
    BadLength,
    /// A frame longer than the configured maximum (1009).
    TooBig,
}

impl FrameError {
    /// The close code to fail the connection with.
    pub fn close_code(self) -> u16 {
        match self {
            FrameError::TooBig => 1009,
            _ => 1002,
        }
    }

    /// Text for the close reason and error events.
    pub fn reason(self) -> &'static str {
        match self {
            FrameError::ReservedBits => "reserved bits set",
            FrameError::BadOpcode => "reserved opcode",
            FrameError::BadControl => "fragmented or oversized control frame",
            FrameError::BadMask => "wrong masking for this side",
            FrameError::BadLength => "invalid payload length",
            FrameError::TooBig => "frame too big",
        }
    }
}

/// Parses the header at the front of `buf`. `Ok(None)` means more bytes are needed.
///
/// `expect_masked` is true on the server (client frames must be masked) and false on the
/// client; `allow_rsv1` is true when permessage-deflate was negotiated. The RSV1-on-continuation
/// and message-sequence rules are checked by the driver, which knows the message state.
pub fn parse_header(
    buf: &[u8],
    expect_masked: bool,
    allow_rsv1: bool,
    max_frame: u64,
) -> Result<Option<Header>, FrameError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let b0 = buf[0];
    let b1 = buf[1];
    let fin = b0 & 0x80 != 0;
    let rsv1 = b0 & 0x40 != 0;
    if b0 & 0x30 != 0 || (rsv1 && !allow_rsv1) {
        return Err(FrameError::ReservedBits);
    }
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(FrameError::BadOpcode)?;
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    if opcode.is_control() && (!fin || len7 > 125) {
        return Err(FrameError::BadControl);
    }
    if opcode.is_control() && rsv1 {
        return Err(FrameError::ReservedBits);
    }
    if masked != expect_masked {
        return Err(FrameError::BadMask);
    }
    let (len, mut pos) = match len7 {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(FrameError::BadLength);
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    if len > max_frame {
        return Err(FrameError::TooBig);
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let mut m = [0u8; 4];
        m.copy_from_slice(&buf[pos..pos + 4]);
        pos += 4;
        Some(m)
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        rsv1,
        opcode,
        mask,
        len,
        header_len: pos,
    }))
}

/// Writes a frame header into `out`.
pub fn write_header(
    out: &mut BytesMut,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    let b0 = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode.as_u8();
    let mbit = if mask.is_some() { 0x80 } else { 0 };
    out.put_u8(b0);
    if len < 126 {
        out.put_u8(mbit | len as u8);
    } else if len <= 0xFFFF {
        out.put_u8(mbit | 126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(mbit | 127);
        out.put_u64(len as u64);
    }
    if let Some(m) = mask {
        out.put_slice(&m);
    }
}

/// Length of a header for a payload of `len` bytes.
pub fn header_len(len: usize, masked: bool) -> usize {
    let base = if len < 126 {
        2
    } else if len <= 0xFFFF {
        4
    } else {
        10
    };
    base + if masked { 4 } else { 0 }
}

/// XORs `data` with `mask`, where `data` starts at byte `offset` of the frame payload.
/// Returns the offset after `data`. Works a word at a time.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) -> usize {
    let mut m = mask;
    m.rotate_left(offset % 4);
    let (head, words, tail) = {
        // Align to 8 bytes for the word loop.
        let align = data.as_ptr().align_offset(8).min(data.len());
        let (head, rest) = data.split_at_mut(align);
        let whole = rest.len() / 8 * 8;
        let (words, tail) = rest.split_at_mut(whole);
        (head, words, tail)
    };
    for (i, b) in head.iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
    let mut m2 = m;
    m2.rotate_left(head.len() % 4);
    let word = u64::from_ne_bytes([m2[0], m2[1], m2[2], m2[3], m2[0], m2[1], m2[2], m2[3]]);
    for chunk in words.chunks_exact_mut(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(b) ^ word).to_ne_bytes());
    }
    for (i, b) in tail.iter_mut().enumerate() {
        *b ^= m2[i % 4];
    }
    offset + data.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in data.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn masking_matches_the_definition_at_any_offset_and_alignment() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in [0, 1, 3, 7, 8, 9, 31, 100] {
            for start in 0..8 {
                for offset in 0..5 {
                    let mut a: Vec<u8> = (0..len + start).map(|i| i as u8).collect();
                    let mut b = a.clone();
                    apply_mask(&mut a[start..], mask, offset);
                    naive(&mut b[start..], mask, offset);
                    assert_eq!(a, b, "len {len} start {start} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn headers_round_trip() {
        for len in [0usize, 125, 126, 65535, 65536, 1 << 20] {
            let mut out = BytesMut::new();
            write_header(
                &mut out,
                true,
                false,
                OpCode::Binary,
                Some([1, 2, 3, 4]),
                len,
            );
            assert_eq!(out.len(), header_len(len, true));
            let h = parse_header(&out, true, false, u64::MAX).unwrap().unwrap();
            assert_eq!(h.len, len as u64);
            assert_eq!(h.mask, Some([1, 2, 3, 4]));
            assert_eq!(h.header_len, out.len());
            // Every shorter prefix asks for more bytes.
            for cut in 0..out.len() {
                assert_eq!(parse_header(&out[..cut], true, false, u64::MAX), Ok(None));
            }
        }
    }

    #[test]
    fn refuses_bad_headers() {
        let e = |b: &[u8], masked| parse_header(b, masked, false, 1 << 20).unwrap_err();
        assert_eq!(e(&[0x81 | 0x20, 0x80], true), FrameError::ReservedBits);
        assert_eq!(e(&[0x81 | 0x40, 0x80], true), FrameError::ReservedBits);
        assert_eq!(e(&[0x83, 0x80], true), FrameError::BadOpcode);
        assert_eq!(e(&[0x0B, 0x80], true), FrameError::BadOpcode);
        assert_eq!(e(&[0x09, 0x80], true), FrameError::BadControl);
        assert_eq!(e(&[0x89, 0xFE], true), FrameError::BadControl);
        assert_eq!(e(&[0x81, 0x00], true), FrameError::BadMask);
        assert_eq!(e(&[0x81, 0x80], false), FrameError::BadMask);
        assert_eq!(
            e(&[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0], true),
            FrameError::BadLength
        );
        assert_eq!(
            e(&[0x82, 0xFF, 0, 0, 0, 0, 0x10, 0, 0, 0], true),
            FrameError::TooBig
        );
        // RSV1 on a control frame is refused even with compression.
        assert_eq!(
            parse_header(&[0xC9, 0x80], true, true, 100).unwrap_err(),
            FrameError::ReservedBits
        );
    }
}
