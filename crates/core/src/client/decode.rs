//! Response-body decompression: gzip, deflate (zlib or raw), br and zstd, pushed chunk by chunk,
//! with a cap on the decoded size against decompression bombs.

use std::io::Write;

use bytes::Bytes;

use crate::error::{Error, Result};

/// The `Accept-Encoding` value sent when decompression is on.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

enum Inner {
    Gzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Zlib(flate2::write::ZlibDecoder<Vec<u8>>),
    RawDeflate(flate2::write::DeflateDecoder<Vec<u8>>),
    /// deflate before the first bytes tell zlib from raw.
    DeflateUnknown,
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

/// A streaming decoder of one `Content-Encoding`.
pub struct Decoder {
    inner: Inner,
    name: &'static str,
    out: u64,
    max: u64,
}

impl Decoder {
    /// A decoder for `encoding` (`gzip`, `x-gzip`, `deflate`, `br`, `zstd`), or `None` for an
    /// encoding this client does not decode (the body is then passed on as it is).
    pub fn for_encoding(encoding: &str, max: u64) -> Option<Decoder> {
        let (inner, name) = match encoding.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => (
                Inner::Gzip(flate2::write::MultiGzDecoder::new(Vec::new())),
                "gzip",
            ),
            "deflate" => (Inner::DeflateUnknown, "deflate"),
            "br" => (
                Inner::Brotli(Box::new(brotli::DecompressorWriter::new(
                    Vec::new(),
                    16 * 1024,
                ))),
                "br",
            ),
            "zstd" => (
                Inner::Zstd(zstd::stream::write::Decoder::new(Vec::new()).ok()?),
                "zstd",
            ),
            _ => return None,
        };
        Some(Decoder {
            inner,
            name,
            out: 0,
            max,
        })
    }

    fn err(&self, e: std::io::Error) -> Error {
        Error::Decode(format!("{} ({e})", self.name))
    }

    fn take(&mut self) -> Result<Bytes> {
        let buf = match &mut self.inner {
            Inner::Gzip(d) => d.get_mut(),
            Inner::Zlib(d) => d.get_mut(),
            Inner::RawDeflate(d) => d.get_mut(),
            Inner::DeflateUnknown => return Ok(Bytes::new()),
            Inner::Brotli(d) => d.get_mut(),
            Inner::Zstd(d) => d.get_mut(),
        };
        let out = std::mem::take(buf);
        self.out += out.len() as u64;
        if self.out > self.max {
            return Err(Error::BodyTooLarge {
                limit: usize::try_from(self.max).unwrap_or(usize::MAX),
            });
        }
        Ok(Bytes::from(out))
    }

    /// Decodes one chunk; returns what it produced (possibly nothing yet).
    pub fn push(&mut self, data: &[u8]) -> Result<Bytes> {
        if let Inner::DeflateUnknown = self.inner {
            // RFC 9110 says zlib; some servers send raw deflate. A zlib header has CMF 0x?8 and
            // (CMF*256 + FLG) divisible by 31.
            let zlib = data.len() >= 2
                && data[0] & 0x0f == 8
                && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
            self.inner = if zlib {
                Inner::Zlib(flate2::write::ZlibDecoder::new(Vec::new()))
            } else {
                Inner::RawDeflate(flate2::write::DeflateDecoder::new(Vec::new()))
            };
        }
        // Feed in slices so that one chunk cannot expand without bound before the check.
        let mut produced = Vec::new();
        for piece in data.chunks(8 * 1024) {
            let r = match &mut self.inner {
                Inner::Gzip(d) => d.write_all(piece),
                Inner::Zlib(d) => d.write_all(piece),
                Inner::RawDeflate(d) => d.write_all(piece),
                Inner::DeflateUnknown => Ok(()),
                Inner::Brotli(d) => d.write_all(piece),
                Inner::Zstd(d) => d.write_all(piece),
            };
            r.map_err(|e| self.err(e))?;
            let out = self.take()?;
            if !out.is_empty() {
                produced.push(out);
            }
        }
        Ok(match produced.len() {
            0 => Bytes::new(),
            1 => produced.pop().unwrap_or_default(),
            _ => Bytes::from(produced.concat()),
        })
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
        self.take()
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
}
