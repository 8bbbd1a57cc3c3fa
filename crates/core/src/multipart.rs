//! A `multipart/form-data` parser (RFC 7578 on the syntax of RFC 2046 section 5.1.1) for a body
//! that is already in memory.
//!
//! Rules:
//! - The boundary is 1 to 70 characters of the RFC 2046 `bchars` set (digits, letters,
//!   `'()+_,-./:=?` and space), not ending in a space.
//! - A part ends only at a real delimiter, CRLF `--` boundary; the boundary text anywhere else in
//!   a content (without the CRLF `--` before it) is content. The first delimiter may start the
//!   body without its CRLF; whatever comes before the first delimiter (the preamble) and after
//!   the close delimiter (the epilogue) is ignored.
//! - After a delimiter come optional transport padding (spaces and tabs) and CRLF, then a part;
//!   or `--` right away, the close delimiter. Anything else after a delimiter is an error.
//! - Line breaks are CRLF only, as browsers, curl and undici send them: a body with LF-only line
//!   breaks is refused with an error that says so (reading LF alone would make a part's trailing
//!   CR, or a lone LF in binary content, ambiguous).
//! - A part's headers end at the first empty line (CRLF CRLF). Header names are
//!   case-insensitive; folded lines (starting with a space or tab) continue the header above.
//!   Each part needs `Content-Disposition: form-data` with a `name` parameter; `filename` (or the
//!   RFC 5987 `filename*=UTF-8''...` form, which wins when both are present) makes it a file.
//!   Quoted values end at the next `"` (no backslash escapes: a Windows path keeps its
//!   backslashes) and have the HTML form encoding's `%22`, `%0D` and `%0A` turned back into `"`,
//!   CR and LF. Names and filenames are read as UTF-8 (invalid bytes become U+FFFD), a
//!   `Content-Type` as ASCII (a non-ASCII one reads as empty, as WHATWG fetch does).
//!   `Content-Transfer-Encoding` (deprecated by RFC 7578 section 4.7) is not applied.
//! - Limits, so that a hostile body cannot make the parse expensive: [`Limits::max_parts`]
//!   parts and [`Limits::max_header_bytes`] bytes of headers per part. The parse is linear in
//!   the size of the body.
//!
//! The parts are returned as offsets into the body ([`Part::body`]), so callers slice the
//! contents out without copying them.

use std::ops::Range;

use memchr::memmem;

use crate::{Error, Result};

/// Default of [`Limits::max_parts`].
pub const DEFAULT_MAX_PARTS: usize = 10_000;
/// Default of [`Limits::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// The longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// What one body may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most parts in a body (a body with more is refused).
    pub max_parts: usize,
    /// Most bytes in the header block of one part, its final empty line not counted.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_parts: DEFAULT_MAX_PARTS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The `name` parameter of its `Content-Disposition` (may be empty).
    pub name: String,
    /// The `filename` (or `filename*`) parameter; a part with one is a file.
    pub filename: Option<String>,
    /// Its `Content-Type` header, trimmed; `None` without one (RFC 7578 says: `text/plain`).
    pub content_type: Option<String>,
    /// Where its content lies in the body.
    pub body: Range<usize>,
}

fn error(message: String) -> Error {
    Error::InvalidArgument(format!("multipart/form-data body: {message}"))
}

/// Checks that `boundary` is a valid RFC 2046 boundary: 1 to 70 characters of `bchars`, the last
/// not a space.
pub fn check_boundary(boundary: &str) -> Result<()> {
    let b = boundary.as_bytes();
    let valid = !b.is_empty()
        && b.len() <= MAX_BOUNDARY_LEN
        && b.iter().all(|&c| is_bchar(c))
        && b.last() != Some(&b' ');
    if valid {
        Ok(())
    } else {
        Err(error(format!(
            "bad boundary {boundary:?}: it must be 1 to {MAX_BOUNDARY_LEN} characters of digits, \
             letters, space and '()+_,-./:=? (RFC 2046), not ending in a space"
        )))
    }
}

fn is_bchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c)
}

/// Parses `body` with the default [`Limits`].
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>> {
    parse_with_limits(body, boundary, &Limits::default())
}

/// Parses a whole `multipart/form-data` body whose `Content-Type` gave `boundary` (see the rules
/// of this module). Errors are [`Error::InvalidArgument`] and say what is wrong.
pub fn parse_with_limits(body: &[u8], boundary: &str, limits: &Limits) -> Result<Vec<Part>> {
    check_boundary(boundary)?;
    let mut delimiter = Vec::with_capacity(boundary.len() + 4);
    delimiter.extend_from_slice(b"\r\n--");
    delimiter.extend_from_slice(boundary.as_bytes());
    let finder = memmem::Finder::new(&delimiter);
    let missing_close = || {
        error(format!(
            "missing the close delimiter \"--{boundary}--\" (truncated body?)"
        ))
    };

    // `at`: just past a delimiter's boundary text.
    let mut at = if body.starts_with(&delimiter[2..]) {
        delimiter.len() - 2
    } else {
        match finder.find(body) {
            Some(i) => i + delimiter.len(),
            None => {
                return Err(error(format!(
                    "no boundary delimiter \"--{boundary}\" in the body"
                )))
            }
        }
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let padding = rest
            .iter()
            .take_while(|&&c| c == b' ' || c == b'\t')
            .count();
        let after = &rest[padding..];
        if !after.starts_with(b"\r\n") {
            return Err(match after.first() {
                None | Some(b'-') if b"--".starts_with(after) => missing_close(),
                Some(b'\r') if after.len() == 1 => missing_close(),
                Some(b'\n') => error(
                    "a line break is LF without CR; multipart line breaks must be CRLF".into(),
                ),
                _ => error(format!(
                    "the boundary delimiter \"--{boundary}\" is followed by other bytes than CRLF \
                     or \"--\" (no line of a part's content may start with it)"
                )),
            });
        }
        let number = parts.len() + 1;
        if parts.len() >= limits.max_parts {
            return Err(error(format!(
                "more than {} parts (the limit)",
                limits.max_parts
            )));
        }
        let head = at + padding + 2;
        // `content`: where the content starts, after the empty line; `end_of_headers`: just
        // past the CRLF of the last header line, where a delimiter may start when the part has
        // no content and no empty line (RFC 2046: body-part := MIME-part-headers [CRLF *OCTET]).
        let (headers, end_of_headers, content) = if body[head..].starts_with(b"\r\n") {
            (&body[head..head], head, head + 2)
        } else {
            let limit = head
                .saturating_add(limits.max_header_bytes)
                .saturating_add(4);
            let window = &body[head..body.len().min(limit)];
            match memmem::find(window, b"\r\n\r\n") {
                Some(end) if end + 2 <= limits.max_header_bytes => {
                    (&body[head..head + end + 2], head + end + 2, head + end + 4)
                }
                Some(_) => return Err(headers_too_large(number, limits)),
                None if head + window.len() < body.len() => {
                    return Err(headers_too_large(number, limits))
                }
                None => {
                    return Err(error(format!(
                        "the headers of part {number} do not end with an empty line (CRLF CRLF): \
                         truncated body, or LF-only line breaks"
                    )))
                }
            }
        };
        let mut part = parse_headers(headers, number)?;
        let end = if body[end_of_headers..].starts_with(&delimiter) {
            end_of_headers
        } else {
            match finder.find(&body[content..]) {
                Some(i) => content + i,
                None => return Err(missing_close()),
            }
        };
        part.body = content.min(end)..end;
        parts.push(part);
        at = end + delimiter.len();
    }
}

fn headers_too_large(number: usize, limits: &Limits) -> Error {
    error(format!(
        "the headers of part {number} are larger than the limit of {} bytes",
        limits.max_header_bytes
    ))
}

#[derive(Clone, Copy)]
enum Current {
    None,
    Disposition,
    ContentType,
    Other,
}

/// Reads the header block of a part (header lines, each ended by CRLF).
fn parse_headers(block: &[u8], number: usize) -> Result<Part> {
    let mut disposition: Option<Vec<u8>> = None;
    let mut content_type: Option<Vec<u8>> = None;
    let mut current = Current::None;
    // The block is header lines, each ended by CRLF.
    let mut rest = block;
    while !rest.is_empty() {
        let newline = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
        let Some(line) = rest[..newline].strip_suffix(b"\r") else {
            return Err(error(format!(
                "a header line of part {number} holds an LF without CR"
            )));
        };
        rest = rest.get(newline + 1..).unwrap_or_default();
        if line.contains(&b'\r') {
            return Err(error(format!(
                "a header line of part {number} holds a CR without LF"
            )));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // A folded line continues the header above it.
            let value = trim(line);
            match current {
                Current::None => {
                    return Err(error(format!(
                        "the headers of part {number} start with a folded line"
                    )))
                }
                Current::Disposition => append(disposition.as_mut(), value),
                Current::ContentType => append(content_type.as_mut(), value),
                Current::Other => {}
            }
            continue;
        }
        let colon = line.iter().position(|&c| c == b':');
        let name = colon.map(|i| &line[..i]).unwrap_or_default();
        if name.is_empty() || !name.iter().all(|&c| is_token(c)) {
            return Err(error(format!(
                "part {number} has a malformed header line {:?}",
                String::from_utf8_lossy(&line[..line.len().min(100)])
            )));
        }
        let value = trim(&line[name.len() + 1..]).to_vec();
        let (slot, kind, label) = if name.eq_ignore_ascii_case(b"content-disposition") {
            (
                &mut disposition,
                Current::Disposition,
                "Content-Disposition",
            )
        } else if name.eq_ignore_ascii_case(b"content-type") {
            (&mut content_type, Current::ContentType, "Content-Type")
        } else {
            current = Current::Other;
            continue;
        };
        if slot.is_some() {
            return Err(error(format!("part {number} has two {label} headers")));
        }
        *slot = Some(value);
        current = kind;
    }
    let Some(disposition) = disposition else {
        return Err(error(format!(
            "part {number} has no Content-Disposition header (it needs form-data; name=\"...\")"
        )));
    };
    let (name, filename) = parse_disposition(&disposition, number)?;
    let content_type = content_type.map(|t| {
        if t.is_ascii() {
            String::from_utf8(t).unwrap_or_default()
        } else {
            String::new()
        }
    });
    Ok(Part {
        name,
        filename,
        content_type,
        body: 0..0,
    })
}

/// Joins a folded line to its header with one space; a blank folded line adds nothing (so the
/// value keeps no trailing whitespace, as if it had been trimmed whole).
fn append(value: Option<&mut Vec<u8>>, more: &[u8]) {
    if let Some(v) = value.filter(|_| !more.is_empty()) {
        if !v.is_empty() {
            v.push(b' ');
        }
        v.extend_from_slice(more);
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// RFC 7230 `tchar`.
fn is_token(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// `form-data; name="..."; filename="..."` to the name and the filename.
fn parse_disposition(value: &[u8], number: usize) -> Result<(String, Option<String>)> {
    let kind_end = value.iter().position(|&c| c == b';').unwrap_or(value.len());
    let kind = trim(&value[..kind_end]);
    if !kind.eq_ignore_ascii_case(b"form-data") {
        return Err(error(format!(
            "the Content-Disposition of part {number} is {:?}, not form-data",
            String::from_utf8_lossy(kind)
        )));
    }
    let mut name: Option<String> = None;
    let mut filename: Option<String> = None;
    let mut extended: Option<String> = None;
    let mut rest = &value[kind_end..];
    loop {
        rest = trim(rest);
        let Some(after) = rest.strip_prefix(b";") else {
            if rest.is_empty() {
                break;
            }
            return Err(bad_disposition(number, "a parameter without ';' before it"));
        };
        rest = trim(after);
        if rest.is_empty() {
            break;
        }
        let key_len = rest.iter().take_while(|&&c| is_token(c)).count();
        let key = &rest[..key_len];
        rest = trim(&rest[key_len..]);
        let Some(after) = rest.strip_prefix(b"=").filter(|_| !key.is_empty()) else {
            return Err(bad_disposition(number, "a parameter that is not key=value"));
        };
        rest = trim(after);
        let raw: &[u8];
        let quoted = rest.first() == Some(&b'"');
        if quoted {
            let Some(close) = rest[1..].iter().position(|&c| c == b'"') else {
                return Err(bad_disposition(
                    number,
                    "a quoted value without its closing '\"'",
                ));
            };
            raw = &rest[1..1 + close];
            rest = &rest[close + 2..];
        } else {
            let len = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
            raw = trim(&rest[..len]);
            rest = &rest[len..];
        }
        let (slot, extended_form) = if key.eq_ignore_ascii_case(b"name") {
            (&mut name, false)
        } else if key.eq_ignore_ascii_case(b"filename") {
            (&mut filename, false)
        } else if key.eq_ignore_ascii_case(b"filename*") {
            (&mut extended, true)
        } else {
            continue;
        };
        if slot.is_some() {
            return Err(error(format!(
                "the Content-Disposition of part {number} has two {} parameters",
                String::from_utf8_lossy(key).to_ascii_lowercase()
            )));
        }
        *slot = Some(if extended_form {
            decode_extended(raw).ok_or_else(|| {
                bad_disposition(
                    number,
                    "a filename* that is not UTF-8''... or ISO-8859-1''... (RFC 5987)",
                )
            })?
        } else if quoted {
            String::from_utf8_lossy(&unescape(raw)).into_owned()
        } else {
            String::from_utf8_lossy(raw).into_owned()
        });
    }
    let Some(name) = name else {
        return Err(error(format!(
            "part {number} has no name (its Content-Disposition needs name=\"...\")"
        )));
    };
    Ok((name, extended.or(filename)))
}

fn bad_disposition(number: usize, what: &str) -> Error {
    error(format!(
        "the Content-Disposition of part {number} has {what}"
    ))
}

/// Undoes the HTML form encoding of names and filenames: `%22`, `%0D`, `%0A` to `"`, CR, LF.
fn unescape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let decoded = match raw.get(i..i + 3) {
            Some(b"%22") => Some(b'"'),
            Some(b"%0D") => Some(b'\r'),
            Some(b"%0A") => Some(b'\n'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                i += 3;
            }
            None => {
                out.push(raw[i]);
                i += 1;
            }
        }
    }
    out
}

/// An RFC 5987 `ext-value`: `charset'language'percent-encoded`, UTF-8 or ISO-8859-1.
fn decode_extended(raw: &[u8]) -> Option<String> {
    let mut pieces = raw.splitn(3, |&c| c == b'\'');
    let charset = pieces.next()?;
    let _language = pieces.next()?;
    let encoded = pieces.next()?;
    let bytes: Vec<u8> = percent_encoding::percent_decode(encoded).collect();
    if charset.eq_ignore_ascii_case(b"utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1") {
        Some(bytes.iter().map(|&c| char::from(c)).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &[u8], boundary: &str) -> Vec<Part> {
        parse(body, boundary).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(body)))
    }

    fn err(body: &[u8], boundary: &str) -> String {
        match parse(body, boundary) {
            Ok(parts) => panic!("parsed {parts:?}"),
            Err(e) => {
                assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
                e.to_string()
            }
        }
    }

    fn field(name: &str, value: &[u8], boundary: &str) -> Vec<u8> {
        let mut out =
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                .into_bytes();
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn close(mut body: Vec<u8>, boundary: &str) -> Vec<u8> {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        body
    }

    /// The names and contents of the parts.
    fn contents<'a>(body: &'a [u8], parts: &'a [Part]) -> Vec<(&'a str, &'a [u8])> {
        parts
            .iter()
            .map(|p| (p.name.as_str(), &body[p.body.clone()]))
            .collect()
    }

    #[test]
    fn rfc7578_example() {
        // RFC 7578 section 4.6 (with CRLF line breaks).
        let body = b"--AaB03x\r\n\
            content-disposition: form-data; name=\"field1\"\r\n\
            content-type: text/plain;charset=UTF-8\r\n\
            content-transfer-encoding: quoted-printable\r\n\
            \r\n\
            Joe owes =E2=82=AC100.\r\n\
            --AaB03x--\r\n";
        let parts = ok(body, "AaB03x");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].name, "field1");
        assert_eq!(parts[0].filename, None);
        assert_eq!(
            parts[0].content_type.as_deref(),
            Some("text/plain;charset=UTF-8")
        );
        assert_eq!(&body[parts[0].body.clone()], b"Joe owes =E2=82=AC100.");
    }

    #[test]
    fn browser_form_with_a_file() {
        let b = "----WebKitFormBoundary7MA4YWxkTrZu0gW";
        let body = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nada\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"me.png\"\r\n\
             Content-Type: image/png\r\n\r\n\x01\x02\r\n\x03\r\n--{b}--\r\n"
        );
        let parts = ok(body.as_bytes(), b);
        assert_eq!(
            contents(body.as_bytes(), &parts),
            [("user", &b"ada"[..]), ("avatar", &b"\x01\x02\r\n\x03"[..])]
        );
        assert_eq!(parts[1].filename.as_deref(), Some("me.png"));
        assert_eq!(parts[1].content_type.as_deref(), Some("image/png"));
        assert_eq!(parts[0].content_type, None);
    }

    #[test]
    fn bare_boundary_text_in_contents_is_content() {
        // Boundary "0", a field "0".
        let body = close(field("a", b"0", "0"), "0");
        let parts = ok(&body, "0");
        assert_eq!(contents(&body, &parts), [("a", &b"0"[..])]);
        // Boundary "abc", a field "xabcy", a field "abc" and one "x--abc--\r\nabc" (no CRLF "--"
        // before the boundary text). At the very start of a content, "--abc" would be a
        // delimiter: the CRLF of the empty line after the headers comes before it.
        let mut body = field("f", b"xabcy", "abc");
        body.extend(field("g", b"abc", "abc"));
        body.extend(field("h", b"x--abc--\r\nabc", "abc"));
        let body = close(body, "abc");
        let parts = ok(&body, "abc");
        assert_eq!(
            contents(&body, &parts),
            [
                ("f", &b"xabcy"[..]),
                ("g", &b"abc"[..]),
                ("h", &b"x--abc--\r\nabc"[..])
            ]
        );
        // Boundary "-": its text is in the dashes of every delimiter.
        for content in [
            &b""[..],
            b"-",
            b"--",
            b"x---",
            b"a-b",
            b"\r\n-",
            b"\r\n--",
            b"-\r",
        ] {
            let body = close(field("x", content, "-"), "-");
            let parts = ok(&body, "-");
            assert_eq!(contents(&body, &parts), [("x", content)]);
        }
        // Boundary "M", a file "M".
        let body =
            b"--M\r\nContent-Disposition: form-data; name=\"f\"; filename=\"M\"\r\n\r\nM\r\n--M--";
        let parts = ok(body, "M");
        assert_eq!(&body[parts[0].body.clone()], b"M");
        assert_eq!(parts[0].filename.as_deref(), Some("M"));
    }

    #[test]
    fn binary_contents_holding_every_prefix_of_the_delimiter() {
        let b = "x-b0undary";
        let delimiter = format!("\r\n--{b}");
        let mut content: Vec<u8> = (0..=255u8).collect();
        for n in 1..delimiter.len() {
            content.extend_from_slice(&delimiter.as_bytes()[..n]);
            content.push(0);
            content.extend_from_slice(&delimiter.as_bytes()[..n]);
        }
        // Prefixes at the very start and end of the content too.
        let mut all = vec![(content.clone(), "mid")];
        for n in 1..delimiter.len() {
            let prefix = &delimiter.as_bytes()[..n];
            all.push(([prefix, &content[..]].concat(), "start"));
            all.push(([&content[..], prefix].concat(), "end"));
        }
        for (c, name) in all {
            let body = close(field(name, &c, b), b);
            let parts = ok(&body, b);
            assert_eq!(contents(&body, &parts), [(name, &c[..])]);
        }
    }

    #[test]
    fn empty_parts_and_no_parts() {
        let body = close([field("a", b"", "b"), field("", b"", "b")].concat(), "b");
        let parts = ok(&body, "b");
        assert_eq!(contents(&body, &parts), [("a", &b""[..]), ("", &b""[..])]);
        assert!(ok(b"--b--", "b").is_empty());
        assert!(ok(b"--b--\r\nepilogue --b\r\n", "b").is_empty());
        // A part without content nor empty line: the CRLF of its last header line is also the
        // delimiter's (RFC 2046: body-part := MIME-part-headers [CRLF *OCTET]).
        let body = b"--b\r\nContent-Disposition: form-data; name=a\r\n--b\r\n\
            Content-Disposition: form-data; name=c\r\n\r\n--b--";
        let e = err(body, "b");
        assert!(e.contains("malformed header line"), "{e}");
        let body = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n--b--";
        let parts = ok(body, "b");
        assert_eq!(contents(body, &parts), [("a", &b""[..])]);
        assert_eq!(parts[0].body, 45..45);
    }

    #[test]
    fn preamble_epilogue_and_padding() {
        let body = b"This is the preamble.\r\n--b \t\r\n\
            Content-Disposition: form-data; name=a\r\n\r\n1\r\n--b\r\n\
            Content-Disposition: form-data; name=b\r\n\r\n2\r\n--b--  \r\nthe epilogue\r\n--b\r\n";
        let parts = ok(body, "b");
        assert_eq!(contents(body, &parts), [("a", &b"1"[..]), ("b", &b"2"[..])]);
        // A preamble that is a single CRLF.
        let body = b"\r\n--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b--";
        assert_eq!(ok(body, "b").len(), 1);
    }

    #[test]
    fn header_syntax() {
        let body = b"--b\r\nX-Other: whatever: here\r\n\
            CONTENT-DISPOSITION:form-data ;NAME = \"n\" ; Filename=\"f.txt\";size=3\r\n\
            content-type:  text/plain  \r\n\r\nabc\r\n--b--";
        let parts = ok(body, "b");
        assert_eq!(parts[0].name, "n");
        assert_eq!(parts[0].filename.as_deref(), Some("f.txt"));
        assert_eq!(parts[0].content_type.as_deref(), Some("text/plain"));
        // A folded Content-Disposition.
        let body = b"--b\r\nContent-Disposition: form-data;\r\n name=\"n\"\r\n\r\n\r\n--b--";
        assert_eq!(ok(body, "b")[0].name, "n");
        // A non-ASCII Content-Type reads as empty.
        let body = "--b\r\nContent-Disposition: form-data; name=n; filename=x\r\n\
            Content-Type: t\u{e9}xt/plain\r\n\r\n\r\n--b--";
        assert_eq!(
            ok(body.as_bytes(), "b")[0].content_type.as_deref(),
            Some("")
        );
    }

    #[test]
    fn filename_escapes() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"a%22b%0D%0Ac\"; \
            filename=\"C:\\dir\\%22q%22 \u{e9}%41.txt\"\r\n\r\n\r\n--b--";
        let parts = ok(body.as_bytes(), "b");
        assert_eq!(parts[0].name, "a\"b\r\nc");
        // Backslashes stay, only %22 %0D %0A are decoded.
        assert_eq!(
            parts[0].filename.as_deref(),
            Some("C:\\dir\\\"q\" \u{e9}%41.txt")
        );
        // A ';' inside quotes is part of the value.
        let body =
            b"--b\r\nContent-Disposition: form-data; name=\"a;b\"; filename=\"\"\r\n\r\n\r\n--b--";
        let parts = ok(body, "b");
        assert_eq!(parts[0].name, "a;b");
        assert_eq!(parts[0].filename.as_deref(), Some(""));
        // RFC 5987 filename* wins over filename.
        let body = b"--b\r\nContent-Disposition: form-data; name=f; filename=\"fallback.txt\"; \
            filename*=UTF-8''%E2%82%AC%20rates.txt\r\n\r\n\r\n--b--";
        assert_eq!(
            ok(body, "b")[0].filename.as_deref(),
            Some("\u{20ac} rates.txt")
        );
        let body = b"--b\r\nContent-Disposition: form-data; name=f; filename*=iso-8859-1'en'%A3.txt\r\n\r\n\r\n--b--";
        assert_eq!(ok(body, "b")[0].filename.as_deref(), Some("\u{a3}.txt"));
        let body =
            b"--b\r\nContent-Disposition: form-data; name=f; filename*=koi8-r''x\r\n\r\n\r\n--b--";
        assert!(err(body, "b").contains("filename*"));
        // Invalid UTF-8 in a name becomes U+FFFD.
        let body = b"--b\r\nContent-Disposition: form-data; name=\"\xff\"\r\n\r\n\r\n--b--";
        assert_eq!(ok(body, "b")[0].name, "\u{fffd}");
    }

    #[test]
    fn strict_crlf() {
        let body = b"--b\nContent-Disposition: form-data; name=a\n\nv\n--b--\n";
        assert!(
            err(body, "b").contains("LF without CR"),
            "{}",
            err(body, "b")
        );
        let body = b"--b\r\nContent-Disposition: form-data; name=a\n\nv\n--b--\n";
        assert!(err(body, "b").contains("CRLF CRLF"));
        let body = b"--b\r\nX: 1\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--";
        assert!(err(body, "b").contains("LF without CR"));
        let body = b"--b\r\nX: 1\rContent-Disposition: form-data; name=a\r\n\r\nv\r\n--b--";
        assert!(err(body, "b").contains("CR without LF"));
        // A part ended by LF-only "--b" is content, so the close delimiter is missing.
        let body = b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\n--b--\n";
        assert!(err(body, "b").contains("missing the close delimiter"));
    }

    #[test]
    fn truncated_bodies() {
        let b = "x-boundary-7";
        let body = close([field("a", b"1", b), field("b", b"22", b)].concat(), b);
        let full = body.len() - 2; // "--x-boundary-7--" without the CRLF after it
        for n in 0..full {
            let e = err(&body[..n], b);
            assert!(
                e.contains("close delimiter")
                    || e.contains("no boundary delimiter")
                    || e.contains("CRLF CRLF"),
                "{n}: {e}"
            );
        }
        assert_eq!(ok(&body[..full], b).len(), 2);
        assert!(err(b"", b).contains("no boundary delimiter"));
    }

    #[test]
    fn malformed_parts() {
        assert!(err(b"--b\r\n\r\nv\r\n--b--", "b").contains("no Content-Disposition"));
        let e = err(
            b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--",
            "b",
        );
        assert!(e.contains("part 1 has no name"), "{e}");
        let e = err(
            b"--b\r\nContent-Disposition: form-data; filename=\"x\"\r\n\r\n\r\n--b--",
            "b",
        );
        assert!(e.contains("no name"), "{e}");
        let e = err(
            b"--b\r\nContent-Disposition: attachment; name=a\r\n\r\n\r\n--b--",
            "b",
        );
        assert!(e.contains("not form-data"), "{e}");
        let e = err(
            b"--b\r\nContent-Disposition: form-data; name=\"a\r\n\r\n\r\n--b--",
            "b",
        );
        assert!(e.contains("closing"), "{e}");
        let e = err(
            b"--b\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n\r\n--b--",
            "b",
        );
        assert!(e.contains("two name parameters"), "{e}");
        let e = err(
            b"--b\r\nContent-Disposition: form-data; name=a\r\ncontent-disposition: form-data; name=b\r\n\r\n\r\n--b--",
            "b",
        );
        assert!(e.contains("two Content-Disposition headers"), "{e}");
        let e = err(b"--b\r\nno colon here\r\n\r\n\r\n--b--", "b");
        assert!(e.contains("malformed header line"), "{e}");
        // Found by the fuzzer: a blank folded line left trailing spaces in the value, which a
        // second parse of the same part (trimmed) did not give.
        let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\nContent-Type: image/png\r\n   \r\n\r\nx\r\n--b--";
        let parts = parse(body, "b").expect("parse");
        assert_eq!(parts[0].content_type.as_deref(), Some("image/png"));
        let e = err(b"--b\r\n folded\r\n\r\n\r\n--b--", "b");
        assert!(e.contains("folded"), "{e}");
        // The boundary text right after a delimiter's CRLF "--" boundary, then other bytes.
        let e = err(
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--bb\r\n--b--",
            "b",
        );
        assert!(e.contains("followed by other bytes"), "{e}");
        let e = err(b"--b-\r\n", "b");
        assert!(e.contains("followed by other bytes"), "{e}");
        // Part numbers in messages count from 1.
        let body = close(
            [
                field("a", b"", "b"),
                b"--b\r\nContent-Disposition: form-data\r\n\r\n\r\n".to_vec(),
            ]
            .concat(),
            "b",
        );
        assert!(err(&body, "b").contains("part 2 has no name"));
    }

    #[test]
    fn boundaries() {
        for good in ["0", "-", "a b", "'()+_,-./:=?", &"z".repeat(70)] {
            let body = close(field("n", b"v", good), good);
            assert_eq!(ok(&body, good).len(), 1, "{good:?}");
        }
        for bad in ["", "a ", "a\"b", "a;b", "\u{e9}", "a\r\nb", &"z".repeat(71)] {
            let e = err(b"--x--", bad);
            assert!(e.contains("bad boundary"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn limits() {
        let b = "b";
        let many: Vec<u8> = (0..5).flat_map(|_| field("n", b"v", b)).collect();
        let body = close(many, b);
        let limits = |max_parts, max_header_bytes| Limits {
            max_parts,
            max_header_bytes,
        };
        assert_eq!(
            parse_with_limits(&body, b, &limits(5, 1024)).unwrap().len(),
            5
        );
        let e = parse_with_limits(&body, b, &limits(4, 1024))
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than 4 parts"), "{e}");
        assert!(parse_with_limits(b"--b--", b, &limits(0, 0))
            .unwrap()
            .is_empty());

        // The header block "Content-Disposition: form-data; name=\"n\"\r\n" is 42 bytes.
        assert_eq!(
            parse_with_limits(&body, b, &limits(5, 42)).unwrap().len(),
            5
        );
        let e = parse_with_limits(&body, b, &limits(5, 41))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("headers of part 1 are larger than the limit of 41"),
            "{e}"
        );
        // Endless headers: refused at the limit, not read to the end.
        let mut endless = b"--b\r\nContent-Disposition: form-data; name=n\r\n".to_vec();
        endless.extend(std::iter::repeat_n(b"X-A: 1\r\n".as_slice(), 10_000).flatten());
        let e = parse(&endless, b).unwrap_err().to_string();
        assert!(e.contains("larger than the limit of 16384"), "{e}");
        // Default limit of parts.
        let parts: Vec<u8> = (0..=DEFAULT_MAX_PARTS)
            .flat_map(|_| field("n", b"", b))
            .collect();
        let e = parse(&close(parts, b), b).unwrap_err().to_string();
        assert!(e.contains("more than 10000 parts"), "{e}");
    }

    #[test]
    fn a_large_adversarial_body_parses_in_linear_time() {
        // 4 MiB of delimiter prefixes in one part: a naive search would be quadratic.
        let b = "a".repeat(70);
        let prefix = format!("\r\n--{}", &b[..69]);
        let content = prefix.repeat(4 * 1024 * 1024 / prefix.len());
        let body = close(field("n", content.as_bytes(), &b), &b);
        let started = std::time::Instant::now();
        let parts = ok(&body, &b);
        assert_eq!(parts[0].body.len(), content.len());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
