//! Response-body decompression: gzip, deflate (zlib or raw), br and zstd.
//!
//! Encoded input is queued with [`Decoder::push`] and decoded output is pulled with
//! [`Decoder::next_output`] in pieces of at most `DECODED_CHUNK` bytes, decoding only as much
//! as one piece needs. However far an input byte expands, a decoder holds at most one output
//! piece and the input not yet decoded, beside its codec's own state (window, tables). A cap on
//! the total decoded size, checked as each piece is decoded, guards against decompression bombs.

use std::collections::VecDeque;

use brotli::writer::StandardAlloc;
use brotli::{BrotliDecompressStream, BrotliResult, BrotliState};
use bytes::{Buf, Bytes};
use flate2::{Crc, Decompress, FlushDecompress, Status};
use zstd::stream::raw::{InBuffer, Operation, OutBuffer};

use crate::error::{Error, Result};

/// The `Accept-Encoding` value sent when decompression is on.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

/// The largest piece of decoded output handed out at once; also the size of a decoder's output
/// buffer.
pub const DECODED_CHUNK: usize = 64 * 1024;

/// What one call into a codec did.
#[derive(Clone, Copy)]
struct Step {
    /// Input bytes consumed.
    read: usize,
    /// Output bytes written.
    written: usize,
}

impl Step {
    const NONE: Step = Step {
        read: 0,
        written: 0,
    };
}

/// Why a decoder stopped for good.
enum Failure {
    TooLarge,
    Corrupt(String),
}

/// zlib or raw deflate.
struct Flate {
    inflate: Decompress,
    ended: bool,
}

impl Flate {
    fn new(zlib: bool) -> Flate {
        Flate {
            inflate: Decompress::new(zlib),
            ended: false,
        }
    }

    fn run(&mut self, input: &[u8], out: &mut [u8]) -> std::result::Result<Step, String> {
        if self.ended {
            return after_end(input);
        }
        let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
        let status = self
            .inflate
            .decompress(input, out, FlushDecompress::None)
            .map_err(|e| format!("corrupt deflate stream: {e}"))?;
        self.ended = status == Status::StreamEnd;
        Ok(Step {
            read: (self.inflate.total_in() - in0) as usize,
            written: (self.inflate.total_out() - out0) as usize,
        })
    }

    fn complete(&self) -> bool {
        // An empty body decodes to nothing.
        self.ended || self.inflate.total_in() == 0
    }
}

/// Input after a stream that must be alone in the body.
fn after_end(input: &[u8]) -> std::result::Result<Step, String> {
    if input.is_empty() {
        Ok(Step::NONE)
    } else {
        Err("data after the end of the stream".into())
    }
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;

/// Where a gzip decoder is in its stream (RFC 1952).
#[derive(Clone, Copy, PartialEq, Eq)]
enum GzPart {
    /// The fixed 10 bytes of a member header.
    Fixed,
    /// The length of the FEXTRA field.
    ExtraLen,
    /// The FEXTRA field: bytes left.
    Extra(usize),
    /// The NUL-ended FNAME field.
    Name,
    /// The NUL-ended FCOMMENT field.
    Comment,
    /// The FHCRC field.
    HeaderCrc,
    /// The deflate data.
    Body,
    /// CRC32 and ISIZE.
    Trailer,
    /// A member has ended; more input starts the next one.
    Between,
}

/// gzip, one member after another (like `MultiGzDecoder`). The header is skipped as it comes,
/// without keeping its variable-length fields.
struct Gzip {
    part: GzPart,
    /// The fixed-size field being gathered (header, XLEN, header CRC or trailer).
    field: [u8; 10],
    have: usize,
    flags: u8,
    /// CRC-32 of the member header so far, for FHCRC.
    header_crc: Crc,
    inflate: Decompress,
    /// CRC-32 and length of the member's output.
    crc: Crc,
}

impl Gzip {
    fn new() -> Gzip {
        Gzip {
            part: GzPart::Fixed,
            field: [0; 10],
            have: 0,
            flags: 0,
            header_crc: Crc::new(),
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }
    }

    /// Gathers up to `need` bytes of a fixed-size field; true once it is whole.
    fn gather(&mut self, rest: &[u8], need: usize, read: &mut usize) -> bool {
        let n = (need - self.have).min(rest.len());
        self.field[self.have..self.have + n].copy_from_slice(&rest[..n]);
        self.have += n;
        *read += n;
        if self.have == need {
            self.have = 0;
            true
        } else {
            false
        }
    }

    /// Skips a NUL-ended header field; true once its NUL is read.
    fn skip_to_nul(&mut self, rest: &[u8], read: &mut usize) -> bool {
        let (n, found) = match memchr::memchr(0, rest) {
            Some(i) => (i + 1, true),
            None => (rest.len(), false),
        };
        self.header_crc.update(&rest[..n]);
        *read += n;
        found
    }

    fn run(&mut self, input: &[u8], out: &mut [u8]) -> std::result::Result<Step, String> {
        let mut read = 0;
        let mut written = 0;
        loop {
            let rest = &input[read..];
            match self.part {
                GzPart::Body => {
                    if written == out.len() {
                        break;
                    }
                    let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
                    let status = self
                        .inflate
                        .decompress(rest, &mut out[written..], FlushDecompress::None)
                        .map_err(|e| format!("corrupt deflate stream: {e}"))?;
                    let w = (self.inflate.total_out() - out0) as usize;
                    self.crc.update(&out[written..written + w]);
                    read += (self.inflate.total_in() - in0) as usize;
                    written += w;
                    if status != Status::StreamEnd {
                        break;
                    }
                    self.part = GzPart::Trailer;
                }
                _ if rest.is_empty() => break,
                GzPart::Between => {
                    self.part = GzPart::Fixed;
                    self.inflate.reset(false);
                    self.crc.reset();
                }
                GzPart::Fixed => {
                    if self.gather(rest, 10, &mut read) {
                        let h = self.field;
                        if h[0] != 0x1f || h[1] != 0x8b || h[2] != 8 || h[3] & FRESERVED != 0 {
                            return Err("invalid gzip header".into());
                        }
                        self.flags = h[3];
                        self.header_crc.reset();
                        self.header_crc.update(&h);
                        self.part = GzPart::ExtraLen;
                    }
                }
                GzPart::ExtraLen => {
                    if self.flags & FEXTRA == 0 {
                        self.part = GzPart::Name;
                    } else if self.gather(rest, 2, &mut read) {
                        let xlen = [self.field[0], self.field[1]];
                        self.header_crc.update(&xlen);
                        self.part = GzPart::Extra(usize::from(u16::from_le_bytes(xlen)));
                    }
                }
                GzPart::Extra(left) => {
                    let n = left.min(rest.len());
                    self.header_crc.update(&rest[..n]);
                    read += n;
                    self.part = if n == left {
                        GzPart::Name
                    } else {
                        GzPart::Extra(left - n)
                    };
                }
                GzPart::Name => {
                    if self.flags & FNAME == 0 || self.skip_to_nul(rest, &mut read) {
                        self.part = GzPart::Comment;
                    }
                }
                GzPart::Comment => {
                    if self.flags & FCOMMENT == 0 || self.skip_to_nul(rest, &mut read) {
                        self.part = GzPart::HeaderCrc;
                    }
                }
                GzPart::HeaderCrc => {
                    if self.flags & FHCRC == 0 {
                        self.part = GzPart::Body;
                    } else if self.gather(rest, 2, &mut read) {
                        let stored = u16::from_le_bytes([self.field[0], self.field[1]]);
                        if stored != self.header_crc.sum() as u16 {
                            return Err("corrupt gzip header checksum".into());
                        }
                        self.part = GzPart::Body;
                    }
                }
                GzPart::Trailer => {
                    if self.gather(rest, 8, &mut read) {
                        let f = self.field;
                        let crc = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
                        let size = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                        if crc != self.crc.sum() || size != self.crc.amount() {
                            return Err(
                                "corrupt gzip stream does not have a matching checksum".into()
                            );
                        }
                        self.part = GzPart::Between;
                    }
                }
            }
        }
        Ok(Step { read, written })
    }

    fn complete(&self) -> bool {
        // As before, an empty gzip body is an error: a gzip stream has at least one member.
        self.part == GzPart::Between
    }
}

type BrotliDecoderState = BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>;

struct Brotli {
    state: Box<BrotliDecoderState>,
    total_out: usize,
    started: bool,
    ended: bool,
}

impl Brotli {
    fn new() -> Brotli {
        Brotli {
            // RFC 7932 streams only: the large-window extension (not valid as `br`) could ask
            // for a ring buffer of up to 1 GiB.
            state: Box::new(BrotliState::new_strict(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            )),
            total_out: 0,
            started: false,
            ended: false,
        }
    }

    fn run(&mut self, input: &[u8], out: &mut [u8]) -> std::result::Result<Step, String> {
        if self.ended {
            return after_end(input);
        }
        let mut avail_in = input.len();
        let mut read = 0;
        let mut avail_out = out.len();
        let mut written = 0;
        let result = BrotliDecompressStream(
            &mut avail_in,
            &mut read,
            input,
            &mut avail_out,
            &mut written,
            out,
            &mut self.total_out,
            &mut self.state,
        );
        self.started |= read > 0;
        match result {
            BrotliResult::ResultFailure => return Err("corrupt brotli stream".into()),
            BrotliResult::ResultSuccess => self.ended = true,
            BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
        }
        Ok(Step { read, written })
    }

    fn complete(&self) -> bool {
        self.ended || !self.started
    }
}

/// zstd, one frame after another.
struct Zstd {
    decoder: zstd::stream::raw::Decoder<'static>,
    /// A frame has begun and is not yet decoded and flushed whole.
    in_frame: bool,
}

impl Zstd {
    fn run(&mut self, input: &[u8], out: &mut [u8]) -> std::result::Result<Step, String> {
        let mut src = InBuffer::around(input);
        let mut dst = OutBuffer::around(out);
        let hint = self
            .decoder
            .run(&mut src, &mut dst)
            .map_err(|e| e.to_string())?;
        let step = Step {
            read: src.pos(),
            written: dst.pos(),
        };
        // 0 means a frame is decoded and flushed; a call that does nothing only gives a hint
        // for the next frame.
        if step.read > 0 || step.written > 0 {
            self.in_frame = hint != 0;
        }
        Ok(step)
    }
}

enum Codec {
    Gzip(Box<Gzip>),
    /// deflate before the first two bytes tell zlib from raw.
    DeflateUnknown,
    Deflate(Box<Flate>),
    Brotli(Brotli),
    Zstd(Zstd),
}

impl Codec {
    fn run(&mut self, input: &[u8], out: &mut [u8]) -> std::result::Result<Step, String> {
        match self {
            Codec::Gzip(c) => c.run(input, out),
            Codec::DeflateUnknown => Ok(Step::NONE),
            Codec::Deflate(c) => c.run(input, out),
            Codec::Brotli(c) => c.run(input, out),
            Codec::Zstd(c) => c.run(input, out),
        }
    }

    /// True when the input so far is a whole stream (or, but for gzip, nothing at all).
    fn complete(&self) -> bool {
        match self {
            Codec::Gzip(c) => c.complete(),
            Codec::DeflateUnknown => true,
            Codec::Deflate(c) => c.complete(),
            Codec::Brotli(c) => c.complete(),
            Codec::Zstd(c) => !c.in_frame,
        }
    }
}

/// A streaming decoder of one `Content-Encoding`.
///
/// [`push`](Decoder::push) the body's chunks as they arrive, taking
/// [`next_output`](Decoder::next_output) until it gives `None` after each; at the end of the
/// body take [`finish`](Decoder::finish) until it gives `None`. Every piece of output is at most
/// `DECODED_CHUNK` bytes.
pub struct Decoder {
    codec: Codec,
    name: &'static str,
    max: u64,
    /// Decoded bytes so far (including those in `out`).
    total: u64,
    /// Input not decoded yet; no piece is empty.
    input: VecDeque<Bytes>,
    /// Output buffer: `DECODED_CHUNK` bytes once in use, of which `filled` are decoded output.
    out: Vec<u8>,
    filled: usize,
    /// The end of the body has been seen.
    eof: bool,
    failed: Option<Failure>,
}

/// A zstd decoder whose window is capped at 8 MiB, as RFC 8878 section 3.1.1.1.2 asks of HTTP
/// decoders: a frame that wants more fails instead of making the decoder allocate it.
fn zstd_decoder() -> Option<zstd::stream::raw::Decoder<'static>> {
    use zstd::stream::raw::DParameter;
    let mut d = zstd::stream::raw::Decoder::new().ok()?;
    d.set_parameter(DParameter::WindowLogMax(23)).ok()?;
    Some(d)
}

impl Decoder {
    /// A decoder for `encoding` (`gzip`, `x-gzip`, `deflate`, `br`, `zstd`), or `None` for an
    /// encoding this client does not decode (the body is then passed on as it is). Decoding
    /// fails with `ERR_BODY_TOO_LARGE` once the output passes `max` bytes.
    pub fn for_encoding(encoding: &str, max: u64) -> Option<Decoder> {
        let (codec, name) = match encoding.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => (Codec::Gzip(Box::new(Gzip::new())), "gzip"),
            "deflate" => (Codec::DeflateUnknown, "deflate"),
            "br" => (Codec::Brotli(Brotli::new()), "br"),
            "zstd" => (
                Codec::Zstd(Zstd {
                    decoder: zstd_decoder()?,
                    in_frame: false,
                }),
                "zstd",
            ),
            _ => return None,
        };
        Some(Decoder {
            codec,
            name,
            max,
            total: 0,
            input: VecDeque::new(),
            out: Vec::new(),
            filled: 0,
            eof: false,
            failed: None,
        })
    }

    /// Queues a chunk of the encoded body. Nothing is decoded until output is asked for.
    /// Chunks pushed after [`finish`](Decoder::finish) are ignored.
    pub fn push(&mut self, data: Bytes) {
        if !data.is_empty() && !self.eof && self.failed.is_none() {
            self.input.push_back(data);
        }
    }

    /// The next piece of decoded output (at most `DECODED_CHUNK` bytes), or `None` when the
    /// input pushed so far is used up. Fails on a corrupt stream (`ERR_DECODE`) or once the
    /// output passes the limit (`ERR_BODY_TOO_LARGE`), and keeps failing after that.
    pub fn next_output(&mut self) -> Result<Option<Bytes>> {
        if self.failed.is_none() {
            match self.fill() {
                Ok(()) if self.filled > 0 => return Ok(Some(self.take())),
                Ok(()) if self.eof && !self.codec.complete() => {
                    self.failed = Some(Failure::Corrupt("truncated stream".into()));
                }
                Ok(()) => return Ok(None),
                Err(f) => self.failed = Some(f),
            }
            // What is left is of no use.
            self.input = VecDeque::new();
            self.out = Vec::new();
            self.filled = 0;
        }
        Err(match &self.failed {
            Some(Failure::TooLarge) => Error::BodyTooLarge {
                limit: usize::try_from(self.max).unwrap_or(usize::MAX),
            },
            Some(Failure::Corrupt(msg)) => Error::Decode(format!("{} ({msg})", self.name)),
            None => Error::Decode(self.name.into()),
        })
    }

    /// Marks the end of the body and returns the next piece of what is left, `None` once all
    /// of it has been returned. Fails if the stream was cut short.
    pub fn finish(&mut self) -> Result<Option<Bytes>> {
        self.eof = true;
        self.next_output()
    }

    /// Decodes queued input into `out` until it is full or the input is used up.
    fn fill(&mut self) -> std::result::Result<(), Failure> {
        while self.filled < DECODED_CHUNK {
            if let Codec::DeflateUnknown = self.codec {
                match self.sniff_zlib() {
                    Some(zlib) => self.codec = Codec::Deflate(Box::new(Flate::new(zlib))),
                    None => return Ok(()),
                }
            }
            // Never decode more than one byte past the limit, so a bomb stops within a chunk.
            let room = usize::try_from(self.max - self.total)
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let window = (DECODED_CHUNK - self.filled).min(room);
            if self.out.is_empty() {
                self.out = vec![0; DECODED_CHUNK];
            }
            let input = self.input.front().map_or(&[][..], |b| &b[..]);
            let step = self
                .codec
                .run(input, &mut self.out[self.filled..self.filled + window])
                .map_err(Failure::Corrupt)?;
            if step.read > 0 {
                if let Some(front) = self.input.front_mut() {
                    front.advance(step.read);
                    if front.is_empty() {
                        self.input.pop_front();
                    }
                }
            }
            self.filled += step.written;
            self.total += step.written as u64;
            if self.total > self.max {
                return Err(Failure::TooLarge);
            }
            if step.read == 0 && step.written == 0 {
                if self.input.is_empty() {
                    return Ok(());
                }
                // Every codec takes input or gives output while it has both.
                return Err(Failure::Corrupt("the decoder is stuck".into()));
            }
        }
        Ok(())
    }

    /// RFC 9110 says deflate is zlib; some servers send raw deflate. A zlib header has CMF 0x?8
    /// and (CMF*256 + FLG) divisible by 31. `None` until two bytes (or the end) have come.
    fn sniff_zlib(&self) -> Option<bool> {
        let mut bytes = self.input.iter().flat_map(|b| b.iter().copied());
        match (bytes.next(), bytes.next()) {
            (Some(cmf), Some(flg)) => {
                Some(cmf & 0x0f == 8 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0)
            }
            (Some(_), None) if self.eof => Some(false),
            _ => None,
        }
    }

    /// Hands out the decoded bytes in `out`: the buffer itself when mostly full, else a copy.
    fn take(&mut self) -> Bytes {
        let n = std::mem::take(&mut self.filled);
        if n * 2 >= DECODED_CHUNK {
            let mut buf = std::mem::take(&mut self.out);
            buf.truncate(n);
            Bytes::from(buf)
        } else {
            Bytes::copy_from_slice(&self.out[..n])
        }
    }

    /// Bytes held in buffers this decoder can see: the output buffer and queued input.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.out.capacity() + self.input.iter().map(Bytes::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::OnceLock;

    /// A small deterministic PRNG (xorshift64*), for piece sizes and test data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const ENCODINGS: [&str; 5] = ["gzip", "zlib", "raw", "br", "zstd"];

    /// The `Content-Encoding` a test encoding is sent as.
    fn header(encoding: &str) -> &str {
        match encoding {
            "zlib" | "raw" => "deflate",
            e => e,
        }
    }

    /// Compresses `chunks` (written one after another) with `encoding`.
    fn compress<'a>(encoding: &str, chunks: impl Iterator<Item = &'a [u8]>) -> Vec<u8> {
        let level = flate2::Compression::fast();
        match encoding {
            "gzip" => {
                let mut w = flate2::write::GzEncoder::new(Vec::new(), level);
                chunks.for_each(|c| w.write_all(c).expect("gzip"));
                w.finish().expect("gzip")
            }
            "zlib" => {
                let mut w = flate2::write::ZlibEncoder::new(Vec::new(), level);
                chunks.for_each(|c| w.write_all(c).expect("zlib"));
                w.finish().expect("zlib")
            }
            "raw" => {
                let mut w = flate2::write::DeflateEncoder::new(Vec::new(), level);
                chunks.for_each(|c| w.write_all(c).expect("raw"));
                w.finish().expect("raw")
            }
            "br" => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 1 << 16, 5, 22);
                    chunks.for_each(|c| w.write_all(c).expect("br"));
                }
                out
            }
            "zstd" => {
                let mut w = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
                chunks.for_each(|c| w.write_all(c).expect("zstd"));
                w.finish().expect("zstd")
            }
            _ => unreachable!("{encoding}"),
        }
    }

    /// What feeding a body to a decoder gave.
    struct Outcome {
        /// The decoded bytes, when kept.
        data: Vec<u8>,
        /// Decoded bytes returned.
        total: u64,
        /// The largest piece returned.
        largest: usize,
        /// The most bytes held at once: the decoder's buffers plus the piece just returned.
        peak: usize,
        result: Result<()>,
    }

    /// Feeds `body` to a decoder in pieces of `piece()` bytes, taking all output after each.
    fn feed(
        encoding: &str,
        body: &[u8],
        max: u64,
        keep: bool,
        mut piece: impl FnMut() -> usize,
    ) -> Outcome {
        let mut d = Decoder::for_encoding(header(encoding), max).expect("decoder");
        let mut o = Outcome {
            data: Vec::new(),
            total: 0,
            largest: 0,
            peak: 0,
            result: Ok(()),
        };
        /// Records one result; true when it was a piece of output.
        fn take(d: &Decoder, out: Result<Option<Bytes>>, keep: bool, o: &mut Outcome) -> bool {
            match out {
                Ok(Some(chunk)) => {
                    o.total += chunk.len() as u64;
                    o.largest = o.largest.max(chunk.len());
                    o.peak = o.peak.max(d.held() + chunk.len());
                    if keep {
                        o.data.extend_from_slice(&chunk);
                    }
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    o.result = Err(e);
                    false
                }
            }
        }
        let body = Bytes::copy_from_slice(body);
        let mut at = 0;
        while at < body.len() {
            let n = piece().clamp(1, body.len() - at);
            d.push(body.slice(at..at + n));
            at += n;
            o.peak = o.peak.max(d.held());
            loop {
                let out = d.next_output();
                if !take(&d, out, keep, &mut o) {
                    break;
                }
            }
            if o.result.is_err() {
                return o;
            }
        }
        loop {
            let out = d.finish();
            if !take(&d, out, keep, &mut o) {
                break;
            }
        }
        if o.result.is_ok() {
            // Finished: stays finished.
            assert!(matches!(d.finish(), Ok(None)), "{encoding}");
        }
        o
    }

    fn roundtrip(encoding: &str, compressed: &[u8], expected: &[u8]) {
        let o = feed(encoding, compressed, 1 << 30, true, || 7);
        o.result.expect(encoding);
        assert_eq!(o.data, expected, "{encoding}");
    }

    #[test]
    fn decodes_every_encoding() {
        let text = b"hello hello hello hypersock ".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).expect("gz");
        roundtrip("gzip", &gz.finish().expect("gz"), &text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).expect("zlib");
        roundtrip("zlib", &z.finish().expect("zlib"), &text);
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).expect("raw");
        roundtrip("raw", &raw.finish().expect("raw"), &text);
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(&text).expect("br");
        }
        roundtrip("br", &br, &text);
        roundtrip(
            "zstd",
            &zstd::encode_all(&text[..], 3).expect("zstd"),
            &text,
        );
        assert!(Decoder::for_encoding("compress", 10).is_none());
        assert!(Decoder::for_encoding(" X-GZIP ", 10).is_some());
    }

    #[test]
    fn bomb_limit_stops_decoding() {
        let zeros = vec![0u8; 10 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).expect("gz");
        let bomb = gz.finish().expect("gz");
        let mut d = Decoder::for_encoding("gzip", 1 << 20).expect("decoder");
        d.push(Bytes::from(bomb));
        let mut total = 0;
        let err = loop {
            match d.next_output() {
                Ok(Some(chunk)) => total += chunk.len(),
                Ok(None) => panic!("no limit after {total} bytes"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.code(), "ERR_BODY_TOO_LARGE");
        assert!(total <= 1 << 20);
        // It keeps failing, and has let go of its buffers.
        assert_eq!(
            d.next_output().expect_err("again").code(),
            "ERR_BODY_TOO_LARGE"
        );
        assert_eq!(d.finish().expect_err("again").code(), "ERR_BODY_TOO_LARGE");
        assert_eq!(d.held(), 0);
    }

    /// Raw deflate of `size` zeros (a multiple of 1 MiB), built fast: with the window full of
    /// zeros, the compressed form of 1 MiB more (sync-flushed, so byte-aligned) decodes to
    /// zeros wherever it is repeated; an empty final block ends the stream.
    fn deflate_zeros(size: usize) -> Vec<u8> {
        let zeros = vec![0u8; 1 << 20];
        let mut w = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        w.write_all(&zeros).expect("deflate");
        w.flush().expect("deflate");
        let first = w.get_ref().len();
        w.write_all(&zeros).expect("deflate");
        w.flush().expect("deflate");
        let mut out = w.get_ref()[..first].to_vec();
        let more = w.get_ref()[first..].to_vec();
        assert!(more.ends_with(&[0, 0, 0xff, 0xff]));
        for _ in 1..size >> 20 {
            out.extend_from_slice(&more);
        }
        out.extend_from_slice(&[0x03, 0x00]);
        out
    }

    /// Zeros of `size` bytes (a multiple of 1 MiB) compressed with `encoding`, made once per
    /// test binary.
    fn bomb(encoding: &str, size: usize) -> &'static [u8] {
        type Bombs = std::sync::Mutex<Vec<(String, usize, &'static [u8])>>;
        static BOMBS: OnceLock<Bombs> = OnceLock::new();
        let bombs = BOMBS.get_or_init(Default::default);
        let mut bombs = bombs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, b)) = bombs.iter().find(|(e, s, _)| e == encoding && *s == size) {
            return b;
        }
        let zeros = vec![0u8; 1 << 20];
        let data = match encoding {
            "raw" => deflate_zeros(size),
            "zlib" => {
                let mut out = vec![0x78, 0xda];
                out.extend(deflate_zeros(size));
                // Adler-32 of zeros: A stays 1, B adds it once a byte.
                let adler = ((size as u64 % 65521) << 16 | 1) as u32;
                out.extend_from_slice(&adler.to_be_bytes());
                out
            }
            "gzip" => {
                let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
                out.extend(deflate_zeros(size));
                let mut crc = Crc::new();
                (0..size >> 20).for_each(|_| crc.update(&zeros));
                out.extend_from_slice(&crc.sum().to_le_bytes());
                out.extend_from_slice(&(size as u32).to_le_bytes());
                out
            }
            _ => compress(encoding, (0..size >> 20).map(|_| &zeros[..])),
        };
        let data: &'static [u8] = Vec::leak(data);
        bombs.push((encoding.to_string(), size, data));
        data
    }

    /// The size of the bomb tests: 256 MiB decodes in a few seconds per encoding even
    /// unoptimised.
    const BOMB: usize = 256 << 20;

    #[test]
    fn bombs_come_out_in_bounded_chunks() {
        let mut rng = Rng(0x5eed);
        for encoding in ENCODINGS {
            let body = bomb(encoding, BOMB);
            let o = feed(encoding, body, 1 << 30, false, || 1 + rng.below(64 << 10));
            o.result.expect(encoding);
            assert_eq!(o.total, BOMB as u64, "{encoding}: all of it arrives");
            assert!(o.largest <= DECODED_CHUNK, "{encoding}: {}", o.largest);
            assert!(
                o.peak < 1 << 20,
                "{encoding}: {} bytes held from a {} byte body",
                o.peak,
                body.len()
            );
            eprintln!(
                "{encoding}: {} compressed bytes -> {} decoded in pieces of at most {}, peak {} bytes held",
                body.len(),
                o.total,
                o.largest,
                o.peak
            );
        }
    }

    #[test]
    fn every_encoding_stops_at_its_limit() {
        let max: u64 = 1 << 20;
        for encoding in ENCODINGS {
            let body = bomb(encoding, BOMB);
            // The whole bomb in one push: one input chunk that expands to 256 MiB.
            let o = feed(encoding, body, max, false, || usize::MAX);
            let err = o.result.expect_err(encoding);
            assert_eq!(err.code(), "ERR_BODY_TOO_LARGE", "{encoding}");
            assert!(o.total <= max, "{encoding}: {} bytes passed", o.total);
            assert!(
                o.total + DECODED_CHUNK as u64 > max,
                "{encoding}: {}",
                o.total
            );
            assert!(o.largest <= DECODED_CHUNK, "{encoding}");
            assert!(
                o.peak <= body.len() + 2 * DECODED_CHUNK,
                "{encoding}: {}",
                o.peak
            );
        }
    }

    #[test]
    fn limit_is_exact() {
        let data = b"0123456789abcdef".repeat(10_000);
        for encoding in ENCODINGS {
            let body = compress(encoding, std::iter::once(&data[..]));
            let len = data.len() as u64;
            let o = feed(encoding, &body, len, true, || 1000);
            o.result.expect(encoding);
            assert_eq!(o.data, data, "{encoding}");
            let o = feed(encoding, &body, len - 1, false, || 1000);
            let err = o.result.expect_err(encoding);
            assert_eq!(err.code(), "ERR_BODY_TOO_LARGE", "{encoding}");
            assert_eq!(
                err.to_string(),
                format!("body larger than the limit of {} bytes", len - 1)
            );
        }
    }

    /// Compressible but varied data: words from a small vocabulary and random bytes.
    fn sample(rng: &mut Rng, size: usize) -> Vec<u8> {
        const WORDS: [&[u8]; 8] = [
            b"hyper",
            b"sock ",
            b"stream ",
            b"\n",
            b"chunk",
            b"{\"id\":",
            b"42,",
            b"zzzz",
        ];
        let mut out = Vec::with_capacity(size + 16);
        while out.len() < size {
            if rng.below(8) == 0 {
                out.push(rng.next() as u8);
            } else {
                out.extend_from_slice(WORDS[rng.below(WORDS.len())]);
            }
        }
        out.truncate(size);
        out
    }

    #[test]
    fn round_trips_in_random_pieces() {
        let mut rng = Rng(42);
        for size in [0usize, 1, 100, 70_000, (1 << 20) + 3] {
            let data = sample(&mut rng, size);
            for encoding in ENCODINGS {
                let body = compress(encoding, std::iter::once(&data[..]));
                for round in 0..3 {
                    let big = [16usize, 4096, 64 << 10][round];
                    let o = feed(encoding, &body, 1 << 30, true, || 1 + rng.below(big));
                    o.result.expect(encoding);
                    assert!(
                        o.data == data,
                        "{encoding}, {size} bytes, pieces up to {big}"
                    );
                    assert!(o.largest <= DECODED_CHUNK);
                }
            }
        }
        // Byte by byte, which once made zlib look like raw deflate.
        let data = sample(&mut rng, 5000);
        for encoding in ENCODINGS {
            let body = compress(encoding, std::iter::once(&data[..]));
            let o = feed(encoding, &body, 1 << 30, true, || 1);
            o.result.expect(encoding);
            assert!(o.data == data, "{encoding} byte by byte");
        }
    }

    #[test]
    fn truncated_bodies_fail() {
        let mut rng = Rng(7);
        let data = sample(&mut rng, 200_000);
        for encoding in ENCODINGS {
            let body = compress(encoding, std::iter::once(&data[..]));
            let cuts = [1, 2, 5, 10, body.len() / 2, body.len() - 4, body.len() - 1];
            for cut in cuts {
                let o = feed(encoding, &body[..cut], 1 << 30, false, || 777);
                let err = o.result.expect_err(&format!("{encoding} cut at {cut}"));
                assert_eq!(err.code(), "ERR_DECODE", "{encoding} cut at {cut}");
                assert!(err.to_string().contains("truncated"), "{err}");
            }
            // An empty body is empty, except that gzip needs a member (as before).
            let o = feed(encoding, &[], 1 << 30, true, || 1);
            assert_eq!(o.result.is_err(), encoding == "gzip", "{encoding} empty");
        }
    }

    #[test]
    fn corrupt_bodies_fail() {
        let data = b"corrupt me ".repeat(1000);
        for encoding in ["gzip", "zlib", "raw", "br", "zstd"] {
            let body = compress(encoding, std::iter::once(&data[..]));
            // Data after a stream that must be alone (gzip and zstd read it as the next
            // member or frame, and fail on its header).
            let mut trailing = body.clone();
            trailing.extend_from_slice(b"garbage!");
            let o = feed(encoding, &trailing, 1 << 30, false, || 3);
            assert_eq!(
                o.result.expect_err(encoding).code(),
                "ERR_DECODE",
                "{encoding}"
            );
        }
        // gzip checks both CRCs and the length.
        let body = compress("gzip", std::iter::once(&data[..]));
        for at in [body.len() - 8, body.len() - 1] {
            let mut bad = body.clone();
            bad[at] ^= 1;
            let err = feed("gzip", &bad, 1 << 30, false, || 100)
                .result
                .expect_err("crc");
            assert!(err.to_string().contains("checksum"), "{err}");
        }
        let mut bad = body.clone();
        bad[3] = 0x20; // a reserved flag
        let err = feed("gzip", &bad, 1 << 30, false, || 100)
            .result
            .expect_err("flag");
        assert!(err.to_string().contains("invalid gzip header"), "{err}");
    }

    /// A gzip member with every optional header field, and a header CRC.
    fn gzip_member_with_header(data: &[u8], header_crc_ok: bool) -> Vec<u8> {
        let mut header = vec![
            0x1f,
            0x8b,
            8,
            FHCRC | FEXTRA | FNAME | FCOMMENT,
            1,
            2,
            3,
            4,
            0,
            3,
        ];
        header.extend_from_slice(&5u16.to_le_bytes());
        header.extend_from_slice(b"AB\x02\x00x");
        header.extend_from_slice(b"name.txt\0");
        header.extend_from_slice(b"a comment\0");
        let mut crc = Crc::new();
        crc.update(&header);
        let hcrc = crc.sum() as u16 ^ u16::from(!header_crc_ok);
        header.extend_from_slice(&hcrc.to_le_bytes());
        header.extend(compress("raw", std::iter::once(data)));
        let mut crc = Crc::new();
        crc.update(data);
        header.extend_from_slice(&crc.sum().to_le_bytes());
        header.extend_from_slice(&(data.len() as u32).to_le_bytes());
        header
    }

    #[test]
    fn decodes_gzip_members_and_zstd_frames() {
        let a = b"first member ".repeat(500);
        let b = b"second".repeat(20_000);
        let mut expected = a.clone();
        expected.extend_from_slice(&b);
        expected.extend_from_slice(&a);

        let mut gz = compress("gzip", std::iter::once(&a[..]));
        gz.extend(gzip_member_with_header(&b, true));
        gz.extend(compress("gzip", std::iter::once(&a[..])));
        let mut zs = compress("zstd", std::iter::once(&a[..]));
        // A skippable frame between the two.
        zs.extend_from_slice(&0x184d_2a50u32.to_le_bytes());
        zs.extend_from_slice(&3u32.to_le_bytes());
        zs.extend_from_slice(b"xyz");
        zs.extend(compress("zstd", std::iter::once(&b[..])));
        zs.extend(compress("zstd", std::iter::once(&a[..])));
        let mut rng = Rng(99);
        for (encoding, body) in [("gzip", &gz), ("zstd", &zs)] {
            for big in [1, 50, 5000, 1 << 20] {
                let o = feed(encoding, body, 1 << 30, true, || 1 + rng.below(big));
                o.result.expect(encoding);
                assert!(o.data == expected, "{encoding}, pieces up to {big}");
            }
            // Cut inside the second member or frame.
            let cut = &body[..body.len() / 2];
            let err = feed(encoding, cut, 1 << 30, false, || 64)
                .result
                .expect_err("cut");
            assert_eq!(err.code(), "ERR_DECODE");
        }
        let bad = gzip_member_with_header(&b, false);
        let err = feed("gzip", &bad, 1 << 30, false, || 10)
            .result
            .expect_err("hcrc");
        assert!(err.to_string().contains("header checksum"), "{err}");
    }
}
