//! The cookie jar: `cookie::CookieJar::set_cookie` with arbitrary `Set-Cookie` values from a
//! few fixed URLs (http and https, subdomains, a public suffix, IPs, localhost), interleaved
//! with `header_for` and `list` at advancing times; and `cookie::parse_cookie_date`.
//!
//! Input: records separated by 0xFF (a byte UTF-8 never uses). A record's first byte picks the
//! URL (low 4 bits) and the operation (bits 4-6: 0-3 store the rest of the record, lossy UTF-8,
//! as a `Set-Cookie` value; 4 `header_for`; 5 `list`; 6 let 4^(low 4 bits) seconds pass; 7
//! parse the rest as a cookie date).
//!
//! Checks: a stored cookie has a non-empty name, name plus value within `MAX_COOKIE_SIZE`, a
//! lower-case domain without a leading dot, a path starting with `/`, no CR/LF/NUL, and is not
//! `Secure` when set from an insecure origin; the jar never holds more than `MAX_COOKIES`
//! (nor a site more than `MAX_COOKIES_PER_SITE`); `list` holds no expired cookie; a `Cookie`
//! header is never empty and never contains CR, LF or NUL, and is only sent over https when a
//! `Secure` cookie is in it; a parsed cookie date lies within years 1601-9999.
#![no_main]

use hypersock_core::cookie::{
    parse_cookie_date, CookieJar, MAX_COOKIES, MAX_COOKIES_PER_SITE, MAX_COOKIE_SIZE,
};
use libfuzzer_sys::fuzz_target;

const URLS: [&str; 12] = [
    "http://example.com/",
    "https://example.com/a/b/c",
    "https://www.example.com/a/",
    "http://sub.www.example.com/x?y=1",
    "https://shop.example.co.uk/cart/item",
    "http://co.uk/",
    "http://127.0.0.1:8080/p/q",
    "http://[::1]/",
    "http://localhost:3000/api/v1/",
    "http://192.168.1.20/",
    "https://user.github.io/repo/",
    "http://EXAMPLE.com./Caps/%7Euser/",
];

/// Base time: 2025-01-01 in ms.
const T0: i64 = 1_735_689_600_000;

/// https, or a loopback host (as browsers, and the jar, treat them).
fn secure_origin(url: &url::Url) -> bool {
    url.scheme() == "https" || matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
}

fuzz_target!(|data: &[u8]| {
    let urls: Vec<url::Url> = URLS.iter().map(|u| url::Url::parse(u).unwrap()).collect();
    let jar = CookieJar::new();
    let mut now = T0;
    for record in data.split(|&b| b == 0xFF) {
        let Some((&op, rest)) = record.split_first() else {
            continue;
        };
        let url = &urls[usize::from(op & 15) % urls.len()];
        let text = String::from_utf8_lossy(rest);
        match (op >> 4) & 7 {
            0..=3 => {
                let header = &text;
                if let Some(c) = jar.set_cookie(header, url, now) {
                    assert!(!c.name.is_empty());
                    assert!(c.name.len() + c.value.len() <= MAX_COOKIE_SIZE);
                    assert!(
                        !c.domain.starts_with('.') && c.domain == c.domain.to_ascii_lowercase()
                    );
                    assert!(c.path.starts_with('/'), "{c:?}");
                    assert!(c.expires.is_none_or(|e| e > now), "stored expired {c:?}");
                    for s in [&c.name, &c.value, &c.domain, &c.path] {
                        assert!(!s.contains(['\r', '\n', '\0']), "{c:?}");
                    }
                    if c.secure {
                        assert!(secure_origin(url), "Secure cookie from {url}");
                    }
                }
                assert!(jar.len() <= MAX_COOKIES);
            }
            4 => {
                if let Some(h) = jar.header_for(url, now) {
                    assert!(!h.is_empty());
                    assert!(!h.contains(['\r', '\n', '\0']), "{h:?}");
                }
                for c in jar.cookies_for(url, now) {
                    assert!(c.expires.is_none_or(|e| e > now));
                    if c.secure {
                        assert!(secure_origin(url), "Secure cookie sent to {url}");
                    }
                }
            }
            5 => {
                let all = jar.list(now);
                assert!(all.len() <= MAX_COOKIES);
                assert!(all.len() <= jar.len());
                let mut per_domain = std::collections::HashMap::<&str, usize>::new();
                for c in &all {
                    assert!(c.name.len() + c.value.len() <= MAX_COOKIE_SIZE);
                    assert!(c.expires.is_none_or(|e| e > now), "listed expired {c:?}");
                    *per_domain.entry(c.domain.as_str()).or_default() += 1;
                }
                assert!(per_domain.values().all(|&n| n <= MAX_COOKIES_PER_SITE));
            }
            6 => now = now.saturating_add(1000 << (2 * (op & 15))),
            _ => {
                let s = &text;
                if let Some(t) = parse_cookie_date(s) {
                    // 1601-01-01 to 9999-12-31T23:59:59.
                    assert!(
                        (-11_644_473_600..=253_402_300_799).contains(&t),
                        "{s:?} -> {t}"
                    );
                }
            }
        }
    }
});
