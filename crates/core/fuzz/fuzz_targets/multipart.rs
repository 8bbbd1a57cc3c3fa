//! The `multipart/form-data` parser: `multipart::parse_with_limits` on arbitrary bodies.
//!
//! Input: byte 0 picks the boundary from a fixed list (short ones, and ones whose text is in the
//! dashes of the delimiter, so that delimiters and their prefixes show up); byte 1 the limits
//! (0 to 15 parts, 32 bytes to 1 MiB of headers per part); the rest is the body.
//! Checks: an error says it is about a multipart body; on success there are at most `max_parts`
//! parts, their contents lie in the body in order without overlapping, none holds the delimiter,
//! a content type holds no CR or LF; and the parts encoded again the way browsers do (names and
//! filenames with `"`, CR and LF as `%22`, `%0D`, `%0A`) parse back to the same parts (names and
//! filenames holding `%` aside, as that encoding leaves them ambiguous).
#![no_main]

use hypersock_core::multipart::{parse_with_limits, Limits, Part};
use libfuzzer_sys::fuzz_target;

const BOUNDARIES: [&str; 8] = [
    "b",
    "-",
    "0",
    "abc",
    "a b",
    "AaB03x",
    "x-boundary-7",
    "----WebKitFormBoundary7MA4YWxkTrZu0gW",
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn escape(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The parts as a browser would send them.
fn encode(body: &[u8], parts: &[Part], boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        let mut head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
            escape(&p.name)
        );
        if let Some(f) = &p.filename {
            head += &format!("; filename=\"{}\"", escape(f));
        }
        head += "\r\n";
        if let Some(t) = &p.content_type {
            head += &format!("Content-Type: {t}\r\n");
        }
        head += "\r\n";
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&body[p.body.clone()]);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

fuzz_target!(|data: &[u8]| {
    let [pick, limit, body @ ..] = data else {
        return;
    };
    let boundary = BOUNDARIES[usize::from(*pick) % BOUNDARIES.len()];
    let limits = Limits {
        max_parts: usize::from(limit & 15),
        max_header_bytes: 32 << (limit >> 4),
    };
    let parts = match parse_with_limits(body, boundary, &limits) {
        Ok(parts) => parts,
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("multipart/form-data body: "), "{message}");
            return;
        }
    };
    assert!(parts.len() <= limits.max_parts);
    let delimiter = format!("\r\n--{boundary}");
    let mut previous_end = 0;
    for p in &parts {
        assert!(
            p.body.start <= p.body.end && p.body.end <= body.len(),
            "{p:?}"
        );
        assert!(
            previous_end <= p.body.start,
            "{p:?} overlaps the part before it"
        );
        previous_end = p.body.end;
        assert!(
            !contains(&body[p.body.clone()], delimiter.as_bytes()),
            "{p:?}"
        );
        if let Some(t) = &p.content_type {
            assert!(t.is_ascii() && !t.contains(['\r', '\n']), "{t:?}");
        }
    }

    let again = encode(body, &parts, boundary);
    let unlimited = Limits {
        max_parts: usize::MAX,
        max_header_bytes: usize::MAX,
    };
    let reparsed = parse_with_limits(&again, boundary, &unlimited)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&again)));
    assert_eq!(reparsed.len(), parts.len());
    for (a, b) in parts.iter().zip(&reparsed) {
        assert_eq!(body[a.body.clone()], again[b.body.clone()]);
        if !a.name.contains('%') {
            assert_eq!(a.name, b.name);
        }
        if !a.filename.as_deref().unwrap_or("").contains('%') {
            assert_eq!(a.filename, b.filename);
        }
        assert_eq!(a.content_type, b.content_type);
    }
});
