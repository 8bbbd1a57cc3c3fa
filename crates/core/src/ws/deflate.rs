//! permessage-deflate (RFC 7692): negotiation and the per-connection compressor state.
//!
//! Compression uses zlib-rs (pure Rust) in raw-deflate mode so that window bits and memory
//! level can be set. Memory per connection is bounded: the compressor and decompressor are
//! created on first use, have a fixed size set by the negotiated window bits and
//! [`DeflateOptions::mem_level`], and are dropped after each message when context takeover is
//! off (the next message builds a fresh one), so idle connections hold no zlib state.

use bytes::{BufMut, BytesMut};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Status, Strategy};

/// The four bytes that end every compressed message and are stripped on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// What a side is willing to negotiate (server) or offers (client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateOptions {
    /// Server: force `server_no_context_takeover`. Client: ask for it.
    pub server_no_context_takeover: bool,
    /// Server: ask the client for `client_no_context_takeover`. Client: offer it.
    pub client_no_context_takeover: bool,
    /// Largest LZ77 window (9-15) for what the server sends.
    pub server_max_window_bits: u8,
    /// Largest LZ77 window (9-15) for what the client sends.
    pub client_max_window_bits: u8,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
    /// zlib compression level, 0-9.
    pub level: i32,
    /// zlib memory level, 1-9 (8 is zlib's default; lower uses less memory per compressor).
    pub mem_level: i32,
}

impl Default for DeflateOptions {
    fn default() -> Self {
        DeflateOptions {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            threshold: 1024,
            level: 1,
            mem_level: 8,
        }
    }
}

/// Parameters agreed in the handshake, seen from the side that uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// This side resets its compressor after every message.
    pub send_no_context_takeover: bool,
    /// The peer resets its compressor after every message.
    pub recv_no_context_takeover: bool,
    /// Window bits this side compresses with (8-15; 8 is sent as stored blocks).
    pub send_window_bits: u8,
    /// Window bits the peer compresses with.
    pub recv_window_bits: u8,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
    /// Compression level.
    pub level: i32,
    /// Memory level.
    pub mem_level: i32,
}

/// One extension offer or response: a name and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionItem {
    /// The extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order, values unquoted.
    pub params: Vec<(String, Option<String>)>,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

/// Parses a `Sec-WebSocket-Extensions` value (RFC 6455 section 9.1). `None` when malformed.
pub fn parse_extensions(value: &str) -> Option<Vec<ExtensionItem>> {
    let mut out = Vec::new();
    for item in split_outside_quotes(value, ',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let mut parts = split_outside_quotes(item, ';').into_iter();
        let name = parts.next()?.trim().to_string();
        if !is_token(&name) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            let (k, v) = match p.split_once('=') {
                Some((k, v)) => {
                    let v = v.trim();
                    let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                        v[1..v.len() - 1].to_string()
                    } else {
                        v.to_string()
                    };
                    if !is_token(&v) {
                        return None;
                    }
                    (k.trim(), Some(v))
                }
                None => (p, None),
            };
            if !is_token(k) {
                return None;
            }
            params.push((k.to_ascii_lowercase(), v));
        }
        out.push(ExtensionItem { name, params });
    }
    Some(out)
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn window_bits(v: &Option<String>) -> Option<u8> {
    let v = v.as_deref()?;
    if v.len() > 2 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: u8 = v.parse().ok()?;
    (8..=15).contains(&n).then_some(n)
}

/// Server side: picks the first acceptable permessage-deflate offer among `offers`, returning
/// the response header value and the parameters as the server uses them.
pub fn accept_offer(
    offers: &[ExtensionItem],
    opts: &DeflateOptions,
) -> Option<(String, Negotiated)> {
    'offers: for offer in offers {
        if !offer.name.eq_ignore_ascii_case("permessage-deflate") {
            continue;
        }
        let mut seen = Vec::new();
        let mut snct = false;
        let mut cnct = false;
        let mut smwb: Option<u8> = None;
        let mut cmwb: Option<Option<u8>> = None;
        for (k, v) in &offer.params {
            if seen.contains(k) {
                continue 'offers;
            }
            seen.push(k.clone());
            match k.as_str() {
                "server_no_context_takeover" if v.is_none() => snct = true,
                "client_no_context_takeover" if v.is_none() => cnct = true,
                "server_max_window_bits" => match window_bits(v) {
                    Some(n) => smwb = Some(n),
                    None => continue 'offers,
                },
                "client_max_window_bits" => match v {
                    None => cmwb = Some(None),
                    Some(_) => match window_bits(v) {
                        Some(n) => cmwb = Some(Some(n)),
                        None => continue 'offers,
                    },
                },
                _ => continue 'offers,
            }
        }
        let mut resp = String::from("permessage-deflate");
        let send_nct = snct || opts.server_no_context_takeover;
        if send_nct {
            resp.push_str("; server_no_context_takeover");
        }
        let recv_nct = cnct || opts.client_no_context_takeover;
        if recv_nct {
            resp.push_str("; client_no_context_takeover");
        }
        let ours = opts.server_max_window_bits.clamp(8, 15);
        let send_bits = smwb.map_or(ours, |n| n.min(ours));
        if smwb.is_some() || send_bits < 15 {
            resp.push_str(&format!("; server_max_window_bits={send_bits}"));
        }
        let mut recv_bits = 15;
        if let Some(offered) = cmwb {
            let want = opts.client_max_window_bits.clamp(8, 15);
            recv_bits = offered.map_or(want, |n| n.min(want));
            if recv_bits < 15 {
                resp.push_str(&format!("; client_max_window_bits={recv_bits}"));
            }
        } else if opts.client_max_window_bits < 15 {
            // The client cannot limit its window: take the offer anyway, inflating with 15.
        }
        return Some((
            resp,
            Negotiated {
                send_no_context_takeover: send_nct,
                recv_no_context_takeover: recv_nct,
                send_window_bits: send_bits,
                recv_window_bits: recv_bits.max(if cmwb.is_some() { 8 } else { 15 }),
                threshold: opts.threshold,
                level: opts.level,
                mem_level: opts.mem_level,
            },
        ));
    }
    None
}

/// Client side: the offer to send.
pub fn client_offer(opts: &DeflateOptions) -> String {
    let mut s = String::from("permessage-deflate");
    if opts.server_no_context_takeover {
        s.push_str("; server_no_context_takeover");
    }
    if opts.client_no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    if opts.server_max_window_bits < 15 {
        s.push_str(&format!(
            "; server_max_window_bits={}",
            opts.server_max_window_bits.clamp(8, 15)
        ));
    }
    s.push_str("; client_max_window_bits");
    if opts.client_max_window_bits < 15 {
        s.push_str(&format!("={}", opts.client_max_window_bits.clamp(8, 15)));
    }
    s
}

/// Client side: checks the server's response against what was offered.
pub fn accept_response(
    items: &[ExtensionItem],
    opts: &DeflateOptions,
) -> Result<Option<Negotiated>, String> {
    let mut found = None;
    for item in items {
        if !item.name.eq_ignore_ascii_case("permessage-deflate") {
            return Err(format!(
                "server accepted extension {:?} that was not offered",
                item.name
            ));
        }
        if found.is_some() {
            return Err("server accepted permessage-deflate twice".into());
        }
        let mut seen = Vec::new();
        let mut n = Negotiated {
            send_no_context_takeover: opts.client_no_context_takeover,
            recv_no_context_takeover: false,
            send_window_bits: opts.client_max_window_bits.clamp(8, 15),
            recv_window_bits: 15,
            threshold: opts.threshold,
            level: opts.level,
            mem_level: opts.mem_level,
        };
        for (k, v) in &item.params {
            if seen.contains(k) {
                return Err(format!("duplicate extension parameter {k}"));
            }
            seen.push(k.clone());
            match k.as_str() {
                "server_no_context_takeover" if v.is_none() => n.recv_no_context_takeover = true,
                "client_no_context_takeover" if v.is_none() => n.send_no_context_takeover = true,
                "server_max_window_bits" => {
                    let bits = window_bits(v).ok_or("invalid server_max_window_bits")?;
                    if opts.server_max_window_bits < 15 && bits > opts.server_max_window_bits {
                        return Err("server_max_window_bits larger than offered".into());
                    }
                    n.recv_window_bits = bits;
                }
                "client_max_window_bits" => {
                    let bits = window_bits(v).ok_or("invalid client_max_window_bits")?;
                    n.send_window_bits = n.send_window_bits.min(bits);
                }
                _ => return Err(format!("unexpected extension parameter {k}")),
            }
        }
        if opts.server_no_context_takeover && !n.recv_no_context_takeover {
            // RFC 7692 7.1.1.1: the server may not ignore this request... but accepting is
            // harmless for us; keep going with what it answered.
        }
        found = Some(n);
    }
    Ok(found)
}

/// Why decompression failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateFailure {
    /// The data is not valid deflate (1007 is not right here; RFC 7692 says fail: 1002).
    Corrupt,
    /// The message grew over the size limit (1009).
    TooBig,
}

/// The compressor and decompressor state of one connection.
pub struct DeflateState {
    params: Negotiated,
    deflate: Option<Box<Deflate>>,
    inflate: Option<Box<Inflate>>,
}

impl DeflateState {
    /// State for negotiated parameters; allocates nothing until first use.
    pub fn new(params: Negotiated) -> Self {
        DeflateState {
            params,
            deflate: None,
            inflate: None,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &Negotiated {
        &self.params
    }

    /// True when a message of `len` bytes should be compressed.
    pub fn should_compress(&self, len: usize) -> bool {
        len >= self.params.threshold
    }

    /// Forgets the compression context: the next message is compressed from scratch. Needed
    /// after a pre-compressed message went out, since the peer's window now holds its bytes.
    pub fn reset_compressor(&mut self) {
        if let Some(d) = self.deflate.as_mut() {
            d.reset();
        }
    }

    /// Compresses one whole message, appending the wire payload (without the 4-byte tail)
    /// to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut BytesMut) {
        self.compress_part(input, true, out);
    }

    /// Compresses one fragment of a message; `last` marks the message's final fragment. Every
    /// fragment ends on a sync flush so it can be sent at once; only the final one drops the
    /// flush's empty-block tail (RFC 7692 7.2.1), and only after it may the context be reset.
    pub fn compress_part(&mut self, input: &[u8], last: bool, out: &mut BytesMut) {
        let p = self.params;
        let d = self
            .deflate
            .get_or_insert_with(|| Box::new(new_deflate(p.level, p.send_window_bits, p.mem_level)));
        let start = out.len();
        flush_into(d, input, out);
        if last {
            strip_tail(out, start);
            if out.len() == start {
                // Nothing new since the last flush (an empty message or last part): zlib writes
                // nothing, but the receiver appends `00 00 ff ff` to whatever comes, so send the
                // one byte that makes that an empty stored block (RFC 7692 7.2.3.6).
                out.extend_from_slice(&[0]);
            }
            if p.send_no_context_takeover {
                self.deflate = None;
            }
        }
    }

    /// Decompresses part of a message. `last` marks the end of the message (its tail is
    /// appended internally). Output is appended to `out`, which may not grow beyond `limit`.
    pub fn decompress(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut BytesMut,
        limit: usize,
    ) -> Result<(), InflateFailure> {
        let bits = self.params.recv_window_bits.max(9);
        let inf = self
            .inflate
            .get_or_insert_with(|| Box::new(Inflate::new(false, bits)));
        inflate_into(inf, input, out, limit)?;
        if last {
            inflate_into(inf, &TAIL, out, limit)?;
            if self.params.recv_no_context_takeover {
                self.inflate = None;
            }
        }
        Ok(())
    }
}

/// A raw-deflate compressor. Window 8 is not supported by zlib for raw streams, so it is met
/// by sending stored blocks from a window-9 compressor: they never reference earlier bytes.
pub fn new_deflate(level: i32, window_bits: u8, mem_level: i32) -> Deflate {
    let (level, bits) = if window_bits <= 8 {
        (0, 9)
    } else {
        (level.clamp(0, 9), window_bits.min(15))
    };
    Deflate::new_with_config(DeflateConfig {
        level,
        window_bits: -i32::from(bits),
        mem_level: mem_level.clamp(1, 9),
        strategy: Strategy::Default,
        ..DeflateConfig::default()
    })
}

/// Compresses `input` with a sync flush and appends it to `out` minus the trailing
/// `00 00 FF FF`.
pub fn compress_into(d: &mut Deflate, input: &[u8], out: &mut BytesMut) {
    let start = out.len();
    flush_into(d, input, out);
    strip_tail(out, start);
}

/// Removes the `00 00 ff ff` that a sync flush ends with from what was written after `start`.
fn strip_tail(out: &mut BytesMut, start: usize) {
    if out.len() - start >= 4 && out[out.len() - 4..] == TAIL {
        out.truncate(out.len() - 4);
    }
}

/// Compresses `input` onto `out`, ending with a sync flush.
fn flush_into(d: &mut Deflate, input: &[u8], out: &mut BytesMut) {
    let mut consumed = 0usize;
    loop {
        out.reserve(((input.len() - consumed) / 2).max(256));
        let spare_len = out.capacity() - out.len();
        let before_in = d.total_in();
        let before_out = d.total_out();
        let res = d.compress_uninit(
            &input[consumed..],
            out.spare_capacity_mut(),
            DeflateFlush::SyncFlush,
        );
        let wrote = (d.total_out() - before_out) as usize;
        // SAFETY: zlib-rs initialized `wrote` bytes of the spare capacity.
        unsafe { out.advance_mut(wrote) };
        consumed += (d.total_in() - before_in) as usize;
        if res.is_err() || (consumed == input.len() && wrote < spare_len) {
            break;
        }
    }
}

fn inflate_into(
    inf: &mut Inflate,
    mut input: &[u8],
    out: &mut BytesMut,
    limit: usize,
) -> Result<(), InflateFailure> {
    loop {
        // Room for one byte over the limit, which proves the message too big.
        let room = limit + 1 - out.len();
        out.reserve(room.min((input.len() * 4).max(4096)));
        let spare_len = (out.capacity() - out.len()).min(room);
        let before_in = inf.total_in();
        let before_out = inf.total_out();
        let res = inf.decompress_uninit(
            input,
            &mut out.spare_capacity_mut()[..spare_len],
            InflateFlush::SyncFlush,
        );
        let wrote = (inf.total_out() - before_out) as usize;
        // SAFETY: zlib-rs initialized `wrote` bytes of the spare capacity.
        unsafe { out.advance_mut(wrote) };
        if out.len() > limit {
            return Err(InflateFailure::TooBig);
        }
        let used = (inf.total_in() - before_in) as usize;
        input = &input[used..];
        match res {
            Err(_) => return Err(InflateFailure::Corrupt),
            // A block with BFINAL set (RFC 7692 7.2.3.3): what follows starts a new stream.
            Ok(Status::StreamEnd) => inf.reset(false),
            Ok(_) => {}
        }
        if input.is_empty() && wrote < spare_len {
            return Ok(());
        }
        if used == 0 && wrote == 0 && !matches!(res, Ok(Status::StreamEnd)) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiated(bits: u8, nct: bool) -> Negotiated {
        Negotiated {
            send_no_context_takeover: nct,
            recv_no_context_takeover: nct,
            send_window_bits: bits,
            recv_window_bits: bits,
            threshold: 0,
            level: 6,
            mem_level: 8,
        }
    }

    #[test]
    fn round_trips_with_and_without_context_takeover() {
        for bits in [8, 9, 12, 15] {
            for nct in [false, true] {
                let mut a = DeflateState::new(negotiated(bits, nct));
                let mut b = DeflateState::new(negotiated(bits, nct));
                for i in 0..5 {
                    let msg: Vec<u8> = format!("hello hello hello {i} ")
                        .repeat(200 * (i + 1))
                        .into_bytes();
                    let mut wire = BytesMut::new();
                    a.compress(&msg, &mut wire);
                    assert!(bits == 8 || wire.len() < msg.len() / 4);
                    let mut out = BytesMut::new();
                    // Split the wire payload as if it came in frames.
                    let half = wire.len() / 2;
                    b.decompress(&wire[..half], false, &mut out, 1 << 20)
                        .unwrap();
                    b.decompress(&wire[half..], true, &mut out, 1 << 20)
                        .unwrap();
                    assert_eq!(&out[..], &msg[..], "bits {bits} nct {nct}");
                }
            }
        }
    }

    #[test]
    fn a_message_compressed_in_parts_is_one_stream() {
        for bits in [8, 15] {
            for nct in [false, true] {
                let mut a = DeflateState::new(negotiated(bits, nct));
                let mut b = DeflateState::new(negotiated(bits, nct));
                for round in 0..3 {
                    let parts: Vec<Vec<u8>> = (0..4)
                        .map(|i| format!("part {i} of {round} ").repeat(50).into_bytes())
                        .chain([Vec::new()])
                        .collect();
                    let mut out = BytesMut::new();
                    for (i, part) in parts.iter().enumerate() {
                        let last = i == parts.len() - 1;
                        let mut wire = BytesMut::new();
                        a.compress_part(part, last, &mut wire);
                        // Each part ends on a flush: what came so far decompresses at once.
                        b.decompress(&wire, last, &mut out, 1 << 20).unwrap();
                    }
                    assert_eq!(&out[..], &parts.concat()[..], "bits {bits} nct {nct}");
                    // An empty whole message right after keeps the stream in step.
                    let mut wire = BytesMut::new();
                    a.compress(&[], &mut wire);
                    let mut empty = BytesMut::new();
                    b.decompress(&wire, true, &mut empty, 1 << 20).unwrap();
                    assert!(empty.is_empty());
                }
            }
        }
    }

    #[test]
    fn decompression_stops_at_the_limit() {
        let mut a = DeflateState::new(negotiated(15, false));
        let mut b = DeflateState::new(negotiated(15, false));
        let msg = vec![b'a'; 100_000];
        let mut wire = BytesMut::new();
        a.compress(&msg, &mut wire);
        let mut out = BytesMut::new();
        assert_eq!(
            b.decompress(&wire, true, &mut out, 50_000),
            Err(InflateFailure::TooBig)
        );
        assert!(out.len() <= 50_001);
        let mut exact = DeflateState::new(negotiated(15, false));
        let mut out = BytesMut::new();
        exact.decompress(&wire, true, &mut out, 100_000).unwrap();
        assert_eq!(out.len(), 100_000);
    }

    #[test]
    fn corrupt_data_is_refused() {
        let mut b = DeflateState::new(negotiated(15, false));
        let mut out = BytesMut::new();
        assert_eq!(
            b.decompress(&[0xFF, 0xFF, 0xFF, 0xFF], true, &mut out, 1000),
            Err(InflateFailure::Corrupt)
        );
    }

    #[test]
    fn server_negotiation_follows_rfc7692() {
        let opts = DeflateOptions::default();
        let offers = parse_extensions(
            "permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits; server_no_context_takeover, x-other",
        )
        .unwrap();
        let (resp, n) = accept_offer(&offers, &opts).unwrap();
        assert_eq!(resp, "permessage-deflate; server_no_context_takeover");
        assert!(n.send_no_context_takeover);
        assert_eq!(n.send_window_bits, 15);

        let offers = parse_extensions(
            "permessage-deflate; server_max_window_bits=\"9\"; client_max_window_bits=10",
        )
        .unwrap();
        let (resp, n) = accept_offer(&offers, &opts).unwrap();
        assert_eq!(
            resp,
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=10"
        );
        assert_eq!((n.send_window_bits, n.recv_window_bits), (9, 10));

        let none = parse_extensions(
            "permessage-deflate; unknown=1, permessage-deflate; client_no_context_takeover=1",
        )
        .unwrap();
        assert!(accept_offer(&none, &opts).is_none());
        assert!(parse_extensions("permessage-deflate; a=\"b c\"").is_none());
    }

    #[test]
    fn client_checks_the_response() {
        let opts = DeflateOptions::default();
        assert_eq!(
            client_offer(&opts),
            "permessage-deflate; client_max_window_bits"
        );
        let ok = parse_extensions(
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
        )
        .unwrap();
        let n = accept_response(&ok, &opts).unwrap().unwrap();
        assert!(n.recv_no_context_takeover);
        assert_eq!(n.send_window_bits, 9);
        let bad = parse_extensions("permessage-deflate; foo").unwrap();
        assert!(accept_response(&bad, &opts).is_err());
        let other = parse_extensions("x-webkit-deflate-frame").unwrap();
        assert!(accept_response(&other, &opts).is_err());
        assert_eq!(accept_response(&[], &opts), Ok(None));
    }
}
