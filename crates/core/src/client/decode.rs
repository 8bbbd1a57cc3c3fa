//! Response-body decompression: gzip, deflate (zlib or raw), br and zstd, pushed chunk by chunk,
//! with a cap on the decoded size against decompression bombs.

use std::io::Write;

use bytes::Bytes;

use crate::error::{Error, Result};

/// The `Accept-Encoding` value sent when decompression is on.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

enum Inner {
    Gzip(flate2::write::MultiGzDecoder<Capped>),
    Zlib(flate2::write::ZlibDecoder<Capped>),
    RawDeflate(flate2::write::DeflateDecoder<Capped>),
    /// deflate before the first bytes tell zlib from raw.
    DeflateUnknown,
    Brotli(Box<brotli::DecompressorWriter<Capped>>),
    Zstd(zstd::stream::write::Decoder<'static, Capped>),
}

/// The decoders' output: refuses a write that would take the body past its limit, so that a
/// decoder stops inside its write loop, with at most one of its own output buffers (16 KiB to
/// 128 KiB) beyond what was allowed, however far a single input byte would expand.
struct Capped {
    buf: Vec<u8>,
    /// Bytes that may still be written over the body's life.
    room: u64,
}

/// The error a [`Capped`] writer fails with.
#[derive(Debug)]
struct OverLimit;

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("decoded body over its limit")
    }
}

impl std::error::Error for OverLimit {}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() as u64 > self.room {
            return Err(std::io::Error::other(OverLimit));
        }
        self.room -= data.len() as u64;
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A streaming decoder of one `Content-Encoding`.
pub struct Decoder {
    inner: Inner,
    name: &'static str,
    max: u64,
}

impl Decoder {
    /// A decoder for `encoding` (`gzip`, `x-gzip`, `deflate`, `br`, `zstd`), or `None` for an
    /// encoding this client does not decode (the body is then passed on as it is).
    pub fn for_encoding(encoding: &str, max: u64) -> Option<Decoder> {
        let sink = || Capped {
            buf: Vec::new(),
            room: max,
        };
        let (inner, name) = match encoding.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => (
                Inner::Gzip(flate2::write::MultiGzDecoder::new(sink())),
                "gzip",
            ),
            "deflate" => (Inner::DeflateUnknown, "deflate"),
            "br" => (
                Inner::Brotli(Box::new(brotli::DecompressorWriter::new(sink(), 16 * 1024))),
                "br",
            ),
            "zstd" => (
                Inner::Zstd(zstd::stream::write::Decoder::new(sink()).ok()?),
                "zstd",
            ),
            _ => return None,
        };
        Some(Decoder { inner, name, max })
    }

    fn err(&self, e: std::io::Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<OverLimit>()) {
            return Error::BodyTooLarge {
                limit: usize::try_from(self.max).unwrap_or(usize::MAX),
            };
        }
        Error::Decode(format!("{} ({e})", self.name))
    }

    fn sink(&mut self) -> Option<&mut Capped> {
        Some(match &mut self.inner {
            Inner::Gzip(d) => d.get_mut(),
            Inner::Zlib(d) => d.get_mut(),
            Inner::RawDeflate(d) => d.get_mut(),
            Inner::DeflateUnknown => return None,
            Inner::Brotli(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut(),
        })
    }

    fn take(&mut self) -> Bytes {
        self.sink()
            .map(|s| Bytes::from(std::mem::take(&mut s.buf)))
            .unwrap_or_default()
    }

    /// Decodes one chunk; returns what it produced (possibly nothing yet).
    pub fn push(&mut self, data: &[u8]) -> Result<Bytes> {
        if let Inner::DeflateUnknown = self.inner {
            // RFC 9110 says zlib; some servers send raw deflate. A zlib header has CMF 0x?8 and
            // (CMF*256 + FLG) divisible by 31.
            let zlib = data.len() >= 2
                && data[0] & 0x0f == 8
                && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
            let sink = Capped {
                buf: Vec::new(),
                room: self.max,
            };
            self.inner = if zlib {
                Inner::Zlib(flate2::write::ZlibDecoder::new(sink))
            } else {
                Inner::RawDeflate(flate2::write::DeflateDecoder::new(sink))
            };
        }
        // The output sink enforces the limit as the decoder writes.
        let r = match &mut self.inner {
            Inner::Gzip(d) => d.write_all(data),
            Inner::Zlib(d) => d.write_all(data),
            Inner::RawDeflate(d) => d.write_all(data),
            Inner::DeflateUnknown => Ok(()),
            Inner::Brotli(d) => d.write_all(data),
            Inner::Zstd(d) => d.write_all(data),
        };
        r.map_err(|e| self.err(e))?;
        Ok(self.take())
    }

    /// Flushes the decoder at the end of the body.
    pub fn finish(&mut self) -> Result<Bytes> {
        let r = match &mut self.inner {
            Inner::Gzip(d) => d.try_finish(),
            Inner::Zlib(d) => d.try_finish(),
            Inner::RawDeflate(d) => d.try_finish(),
            Inner::DeflateUnknown => Ok(()),
            Inner::Brotli(d) => d.flush(),
            Inner::Zstd(d) => d.flush(),
        };
        r.map_err(|e| self.err(e))?;
        Ok(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(encoding: &str, compressed: &[u8], expected: &[u8]) {
        let mut d = Decoder::for_encoding(encoding, 1 << 30).expect("decoder");
        let mut out = Vec::new();
        for chunk in compressed.chunks(7) {
            out.extend_from_slice(&d.push(chunk).expect("push"));
        }
        out.extend_from_slice(&d.finish().expect("finish"));
        assert_eq!(out, expected, "{encoding}");
    }

    #[test]
    fn decodes_every_encoding() {
        let text = b"hello hello hello hypersock ".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).expect("gz");
        roundtrip("gzip", &gz.finish().expect("gz"), &text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&text).expect("zlib");
        roundtrip("deflate", &z.finish().expect("zlib"), &text);
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).expect("raw");
        roundtrip("deflate", &raw.finish().expect("raw"), &text);
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
    }

    #[test]
    fn bomb_limit_stops_decoding() {
        let zeros = vec![0u8; 10 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).expect("gz");
        let bomb = gz.finish().expect("gz");
        let mut d = Decoder::for_encoding("gzip", 1 << 20).expect("decoder");
        let err = d.push(&bomb).expect_err("limit");
        assert_eq!(err.code(), "ERR_BODY_TOO_LARGE");
    }

    /// Counts the bytes a decoder holds at its peak: the sink's buffer is the only place output
    /// accumulates, so its capacity bounds what one bomb costs.
    fn peak_output(encoding: &str, bomb: &[u8], max: u64) -> (Error, usize) {
        let mut d = Decoder::for_encoding(encoding, max).expect("decoder");
        let mut peak = 0;
        for chunk in bomb.chunks(64 * 1024) {
            match d.push(chunk) {
                Ok(out) => peak = peak.max(out.len()),
                Err(e) => {
                    peak = peak.max(d.sink().map_or(0, |s| s.buf.capacity()));
                    return (e, peak);
                }
            }
        }
        (d.finish().expect_err("limit"), peak)
    }

    #[test]
    fn every_encoding_stops_inside_its_limit() {
        // 64 MiB of zeros; each encoding shrinks it to well under one input chunk, so before
        // the limit moved into the write loop one push could expand to all of it.
        let size = 64usize << 20;
        let zeros = vec![0u8; 1 << 20];
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 1 << 16, 9, 24);
            for _ in 0..size >> 20 {
                w.write_all(&zeros).expect("br");
            }
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut zs = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
        for _ in 0..size >> 20 {
            gz.write_all(&zeros).expect("gz");
            zs.write_all(&zeros).expect("zstd");
        }
        let gz = gz.finish().expect("gz");
        let zs = zs.finish().expect("zstd");
        let max = 1 << 20;
        for (encoding, bomb) in [("br", &br), ("gzip", &gz), ("zstd", &zs)] {
            let (err, peak) = peak_output(encoding, bomb, max);
            assert_eq!(err.code(), "ERR_BODY_TOO_LARGE", "{encoding}");
            assert!(
                peak <= (max as usize) + (256 << 10),
                "{encoding}: held {peak} bytes with a limit of {max}"
            );
        }
    }
}
