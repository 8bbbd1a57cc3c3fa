//! Pre-framed messages: framed (and compressed) once, written to many connections.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};

use super::deflate::{compress_into, new_deflate};
use super::frame::{header_len, write_header, OpCode};

/// A message framed once and sendable on any number of connections with
/// [`super::WsHandle::send_prepared`] without re-framing or re-compressing.
///
/// The uncompressed server frame is built on creation. The compressed frame for a given window
/// size is built the first time a connection that negotiated permessage-deflate sends it, then
/// shared by all such connections. Compression starts from an empty window, so the frame is
/// valid whatever the receiver's context. Client connections mask, so they copy the payload.
/// Cloning is cheap (one reference count).
#[derive(Clone)]
pub struct PreparedMessage(Arc<Inner>);

struct Inner {
    opcode: OpCode,
    /// Header plus payload, unmasked, uncompressed.
    frame: Bytes,
    header_len: usize,
    /// Compressed frames by window bits (index `bits - 8`).
    compressed: [OnceLock<Bytes>; 8],
}

impl std::fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("opcode", &self.0.opcode)
            .field("len", &self.len())
            .finish()
    }
}

impl PreparedMessage {
    fn new(opcode: OpCode, payload: &[u8]) -> Self {
        let hl = header_len(payload.len(), false);
        let mut buf = BytesMut::with_capacity(hl + payload.len());
        write_header(&mut buf, true, false, opcode, None, payload.len());
        buf.extend_from_slice(payload);
        PreparedMessage(Arc::new(Inner {
            opcode,
            frame: buf.freeze(),
            header_len: hl,
            compressed: Default::default(),
        }))
    }

    /// A text message.
    pub fn text(text: &str) -> Self {
        Self::new(OpCode::Text, text.as_bytes())
    }

    /// A binary message.
    pub fn binary(data: &[u8]) -> Self {
        Self::new(OpCode::Binary, data)
    }

    /// Payload length in bytes (what `bufferedAmount` counts).
    pub fn len(&self) -> usize {
        self.0.frame.len() - self.0.header_len
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True for a text message.
    pub fn is_text(&self) -> bool {
        self.0.opcode == OpCode::Text
    }

    pub(crate) fn opcode(&self) -> OpCode {
        self.0.opcode
    }

    /// The payload alone.
    pub fn payload(&self) -> Bytes {
        self.0.frame.slice(self.0.header_len..)
    }

    /// The whole uncompressed, unmasked frame.
    pub(crate) fn frame(&self) -> Bytes {
        self.0.frame.clone()
    }

    /// The compressed frame (RSV1 set) for a receiver window of `bits`, built once.
    pub(crate) fn compressed_frame(&self, bits: u8, level: i32, mem_level: i32) -> Bytes {
        let bits = bits.clamp(8, 15);
        self.0.compressed[usize::from(bits - 8)]
            .get_or_init(|| {
                let mut d = new_deflate(level, bits, mem_level);
                let mut body = BytesMut::new();
                compress_into(&mut d, &self.0.frame[self.0.header_len..], &mut body);
                let mut out = BytesMut::with_capacity(header_len(body.len(), false) + body.len());
                write_header(&mut out, true, true, self.0.opcode, None, body.len());
                out.extend_from_slice(&body);
                out.freeze()
            })
            .clone()
    }
}
