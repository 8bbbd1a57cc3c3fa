//! Redirect resolution: `client::redirect::next_request` (through `fuzz_api`, which compiles
//! that file) with arbitrary `Location` bytes (decoded as the client does, lossily) against a
//! few base URLs, methods, statuses and policies.
//!
//! Checks: no panic; the next URL is http or https, never a downgrade from https unless the
//! policy allows it; `cross_origin` is exactly "scheme, host or port changed"; applied as the
//! client applies it, no credential header survives a cross-origin hop and no body header
//! survives a dropped body; the method changes only to GET, only for 301/302 POST and 303.
#![no_main]

use http::Method;
use hypersock_core::fuzz_api::redirect::{
    next_request, RedirectMode, RedirectPolicy, BODY_HEADERS, CREDENTIAL_HEADERS,
};
use libfuzzer_sys::fuzz_target;

const BASES: [&str; 8] = [
    "http://a.test/x/y?q=1",
    "https://a.test/",
    "https://a.test:8443/deep/path/",
    "http://user:pw@a.test/",
    "http://127.0.0.1:8080/",
    "https://[::1]/v6/",
    "http://xn--bcher-kva.test/b",
    "https://a.test/#frag",
];
const METHODS: [Method; 6] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::OPTIONS,
];
const STATUSES: [u16; 8] = [301, 302, 303, 307, 308, 300, 304, 399];

fuzz_target!(|data: &[u8]| {
    let [cfg, sel, location @ ..] = data else {
        return;
    };
    let from = url::Url::parse(BASES[usize::from(cfg & 7)]).expect("base");
    let method = &METHODS[usize::from(cfg >> 3) % METHODS.len()];
    let status = STATUSES[usize::from(sel & 7)];
    let policy = RedirectPolicy {
        mode: [
            RedirectMode::Follow,
            RedirectMode::Manual,
            RedirectMode::Error,
        ][usize::from(sel >> 3) % 3],
        max: 10,
        allow_insecure: sel & 0x80 != 0,
        hook: None,
    };
    // As the client reads the header.
    let location = String::from_utf8_lossy(location);
    let Ok(next) = next_request(&policy, &from, method, status, &location) else {
        return;
    };
    let url = &next.url;
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(url.has_host(), "{url}");
    if from.scheme() == "https" && !policy.allow_insecure {
        assert_eq!(url.scheme(), "https", "downgrade to {url}");
    }
    let same = url.scheme() == from.scheme()
        && url.host() == from.host()
        && url.port_or_known_default() == from.port_or_known_default();
    assert_eq!(next.cross_origin, !same, "{from} -> {url}");

    // The method rules.
    let to_get = match status {
        303 => *method != Method::HEAD,
        301 | 302 => *method == Method::POST,
        _ => false,
    };
    let want = if to_get { Method::GET } else { method.clone() };
    assert_eq!(next.method, want);
    assert_eq!(next.keep_body, !to_get);

    // The header rules, as `Client` applies them.
    let mut headers: Vec<(String, String)> = [
        "Authorization",
        "cookie",
        "Proxy-Authorization",
        "Content-Type",
        "content-length",
        "Transfer-Encoding",
        "accept",
    ]
    .iter()
    .map(|h| (h.to_string(), "x".to_string()))
    .collect();
    if !next.keep_body {
        headers.retain(|(n, _)| !BODY_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
    }
    if next.cross_origin {
        headers.retain(|(n, _)| !CREDENTIAL_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
        for (n, _) in &headers {
            let n = n.to_ascii_lowercase();
            assert!(!["authorization", "cookie", "proxy-authorization"].contains(&n.as_str()));
        }
    }
    assert!(headers.iter().any(|(n, _)| n == "accept"));
});
