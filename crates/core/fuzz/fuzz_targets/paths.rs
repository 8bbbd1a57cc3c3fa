//! The server's path handling with arbitrary bytes: a file route's request tail
//! (`files::decode_tail`), a `Range` value (`files::parse_range`), and route tables built from
//! arbitrary patterns matched against arbitrary paths (`routes`, through matchit).
//!
//! Checks: no panic; no decoded segment is empty, `.` or `..`, or holds `/`, `\`, `:` or a
//! control character, and none starts with `.` unless dotfiles are allowed (so no tail can
//! leave a root or name a dotfile); a part of a range lies inside the file; a matched route's
//! id is one of the table's.
#![no_main]

use hypersock_core::fuzz_api::paths::{decode_tail, parse_range, route};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let dotfiles = sel & 1 != 0;
    if let Some(segments) = decode_tail(&text, dotfiles) {
        for s in &segments {
            assert!(!s.is_empty() && s != "." && s != "..", "segment {s:?}");
            assert!(
                !s.chars()
                    .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control()),
                "segment {s:?}"
            );
            assert!(dotfiles || !s.starts_with('.'), "dotfile {s:?}");
        }
    }
    let size = u64::from(sel >> 1) * 997;
    if let Some(Some((first, last))) = parse_range(rest, size) {
        assert!(first <= last && last < size, "{first}-{last} of {size}");
    }
    // Patterns and a path: lines of the input, the last one the path.
    let lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if let Some((path, patterns)) = lines.split_last() {
        if patterns.len() <= 16 {
            if let Ok(Some((id, _))) = route(patterns, path) {
                assert!((id as usize) < patterns.len());
            }
        }
    }
});
