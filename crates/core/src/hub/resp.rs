//! The little of RESP2 (the Redis protocol) that the Redis adapter needs: commands as arrays of
//! bulk strings, and an incremental reply parser.

use bytes::{Buf, Bytes, BytesMut};

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Bytes>),
    Array(Option<Vec<Value>>),
}

/// Largest bulk string or array accepted from the server (a corrupt length must not allocate).
const MAX_LEN: i64 = 512 << 20;

/// Appends a command to `out`.
pub(crate) fn command(out: &mut BytesMut, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Parses one reply from the front of `buf`, consuming it. `Ok(None)`: incomplete.
pub(crate) fn parse(buf: &mut BytesMut) -> Result<Option<Value>, String> {
    match parse_at(buf, 0, 0)? {
        Some((v, used)) => {
            buf.advance(used);
            Ok(Some(v))
        }
        None => Ok(None),
    }
}

fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(at..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..end], at + end + 2))
}

fn int(s: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "bad integer in reply".to_string())
}

/// Deepest nesting of arrays accepted in a reply (the hub's replies nest at most 2 deep); a
/// deeper one is an error rather than a recursion that could exhaust the stack.
const MAX_DEPTH: usize = 32;

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, String> {
    if depth > MAX_DEPTH {
        return Err("reply nested too deeply".into());
    }
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let Some((l, next)) = line(buf, at + 1) else {
        return Ok(None);
    };
    match kind {
        b'+' => Ok(Some((
            Value::Simple(String::from_utf8_lossy(l).into_owned()),
            next,
        ))),
        b'-' => Ok(Some((
            Value::Error(String::from_utf8_lossy(l).into_owned()),
            next,
        ))),
        b':' => Ok(Some((Value::Int(int(l)?), next))),
        b'$' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some((Value::Bulk(None), next)));
            }
            if n > MAX_LEN {
                return Err("bulk string too long".into());
            }
            let end = next + n as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err("bulk string not terminated".into());
            }
            Ok(Some((
                Value::Bulk(Some(Bytes::copy_from_slice(&buf[next..end]))),
                end + 2,
            )))
        }
        b'*' => {
            let n = int(l)?;
            if n < 0 {
                return Ok(Some((Value::Array(None), next)));
            }
            if n > MAX_LEN {
                return Err("array too long".into());
            }
            let mut items = Vec::with_capacity((n as usize).min(16));
            let mut at = next;
            for _ in 0..n {
                match parse_at(buf, at, depth + 1)? {
                    Some((v, used)) => {
                        items.push(v);
                        at = used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(items)), at)))
        }
        other => Err(format!("unexpected reply type byte {other:#04x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = BytesMut::new();
        command(&mut out, &[b"PUBLISH", b"ch", b"a\r\nb"]);
        assert_eq!(
            &out[..],
            b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n"
        );
    }

    #[test]
    fn parses_replies_incrementally() {
        let whole =
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nx\r\n\r\n:2\r\n-ERR no\r\n+OK\r\n$-1\r\n";
        // Every prefix is either incomplete or parses the first reply.
        for cut in 0..34 {
            let mut b = BytesMut::from(&whole[..cut]);
            assert_eq!(parse(&mut b).unwrap(), None, "prefix {cut}");
        }
        let mut b = BytesMut::from(&whole[..]);
        assert_eq!(
            parse(&mut b).unwrap(),
            Some(Value::Array(Some(vec![
                Value::Bulk(Some(Bytes::from_static(b"message"))),
                Value::Bulk(Some(Bytes::from_static(b"ch"))),
                Value::Bulk(Some(Bytes::from_static(b"x\r\n"))),
            ])))
        );
        assert_eq!(parse(&mut b).unwrap(), Some(Value::Int(2)));
        assert_eq!(parse(&mut b).unwrap(), Some(Value::Error("ERR no".into())));
        assert_eq!(parse(&mut b).unwrap(), Some(Value::Simple("OK".into())));
        assert_eq!(parse(&mut b).unwrap(), Some(Value::Bulk(None)));
        assert!(b.is_empty());
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse(&mut BytesMut::from(&b"?x\r\n"[..])).is_err());
        assert!(parse(&mut BytesMut::from(&b":abc\r\n"[..])).is_err());
        assert!(parse(&mut BytesMut::from(&b"$99999999999\r\n"[..])).is_err());
        assert!(parse(&mut BytesMut::from(&b"$1\r\nabc"[..])).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut deep = b"*1\r\n".repeat(20_000);
        deep.extend_from_slice(b":1\r\n");
        let mut buf = BytesMut::from(&deep[..]);
        assert!(parse(&mut buf).is_err());
    }
}
