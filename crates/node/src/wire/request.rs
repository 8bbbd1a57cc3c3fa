//! The request batch (I/O threads -> JS): the Rust side of `src-ts/wire/request.ts`
//! (`decodeRequests`).

use hypersock_core::server::Request;
use napi_derive::napi;

/// How the request body is held: none, whole (in the batch), or streaming (`takeBodyStream`).
pub(crate) const BODY_EMPTY: u8 = 0;
pub(crate) const BODY_FULL: u8 = 1;
pub(crate) const BODY_STREAM: u8 = 2;

/// Bit of the method code byte that says a route section follows the target.
const ROUTED: u8 = 0x80;

/// Method codes of the batch format; 0 means the name follows.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// The methods of the request batch's method codes: code `n` is `requestMethods()[n - 1]`.
/// JS reads the table from here instead of keeping its own.
#[napi]
pub fn request_methods() -> Vec<&'static str> {
    METHODS.to_vec()
}

/// Appends one request to the batch, little-endian, read by `src-ts/server-request.ts`:
///
/// ```text
/// u32 record length (from this field to the end of the record)
/// u32 id
/// u8  method code (1 + index in METHODS; 0: u8 length and the name follow after the port);
///     bit 7 set: the request matched a route, whose section follows the target
/// u8  flags: body kind (bits 0-1), version (bits 2-3: 0 HTTP/1.1, 1 HTTP/1.0, 2 HTTP/2),
///     upgrade asked (bit 4), TLS (bit 5), remote address family (bits 6-7: 0 none, 1 v4, 2 v6)
/// u16 header count
/// u16 remote port
/// [4 or 16 bytes of remote IP] [u8 length + method name]
/// u32 target length, target
/// [u32 route id, u16 parameter count,              when routed
///  per parameter: u16 name length, name, u32 value length, value]
/// per header: u16 name length, name, u32 value length, value
/// [u32 TLS JSON length, JSON]   when TLS
/// [u32 body length, body]       when the body is whole
/// ```
pub(crate) fn encode_request(
    out: &mut Vec<u8>,
    id: u32,
    kind: u8,
    can_upgrade: bool,
    req: &Request,
    body: Option<&[u8]>,
) {
    let start = out.len();
    let method = req.method.as_str();
    let code = METHODS
        .iter()
        .position(|m| *m == method)
        .map_or(0, |i| i as u8 + 1);
    let version: u8 = if req.version == http::Version::HTTP_2 {
        2
    } else if req.version == http::Version::HTTP_10 {
        1
    } else {
        0
    };
    let family: u8 = match req.remote_addr {
        None => 0,
        Some(a) if a.is_ipv4() => 1,
        Some(_) => 2,
    };
    let flags = kind
        | (version << 2)
        | (u8::from(can_upgrade) << 4)
        | (u8::from(req.tls.is_some()) << 5)
        | (family << 6);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.push(code | if req.route.is_some() { ROUTED } else { 0 });
    out.push(flags);
    out.extend_from_slice(&(req.headers.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    out.extend_from_slice(&req.remote_addr.map_or(0, |a| a.port()).to_le_bytes());
    match req.remote_addr.map(|a| a.ip()) {
        Some(std::net::IpAddr::V4(ip)) => out.extend_from_slice(&ip.octets()),
        Some(std::net::IpAddr::V6(ip)) => out.extend_from_slice(&ip.octets()),
        None => {}
    }
    if code == 0 {
        let name = &method.as_bytes()[..method.len().min(255)];
        out.push(name.len() as u8);
        out.extend_from_slice(name);
    }
    put_u32_bytes(out, req.target.as_bytes());
    if let Some(route) = &req.route {
        out.extend_from_slice(&route.id.to_le_bytes());
        let params = &route.params[..route.params.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(params.len() as u16).to_le_bytes());
        for (name, value) in params {
            let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
            put_u32_bytes(out, value.as_bytes());
        }
    }
    for (name, value) in req.headers.iter().take(usize::from(u16::MAX)) {
        let name = name.as_str().as_bytes();
        out.extend_from_slice(&(name.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
        out.extend_from_slice(&name[..name.len().min(usize::from(u16::MAX))]);
        put_u32_bytes(out, value.as_bytes());
    }
    if let Some(tls) = &req.tls {
        put_u32_bytes(out, tls.to_json().as_bytes());
    }
    if let Some(body) = body {
        put_u32_bytes(out, body);
    }
    let len = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

fn put_u32_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderName, HeaderValue, Method, Version};
    use hypersock_core::server::RequestBody;
    use proptest::prelude::*;
    use std::net::SocketAddr;

    /// The fields of one decoded record, read the way `src-ts/wire/request.ts` reads them.
    #[derive(Debug, PartialEq)]
    struct Decoded {
        id: u32,
        method: String,
        kind: u8,
        version: u8,
        upgrade: bool,
        remote: Option<SocketAddr>,
        target: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Option<Vec<u8>>,
        route: Option<(u32, Vec<(String, String)>)>,
    }

    fn u16_at(b: &[u8], o: usize) -> usize {
        usize::from(u16::from_le_bytes([b[o], b[o + 1]]))
    }
    fn u32_at(b: &[u8], o: usize) -> usize {
        u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize
    }

    fn decode(batch: &[u8]) -> Vec<Decoded> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < batch.len() {
            let len = u32_at(batch, at);
            assert!(
                len >= 14 && at + len <= batch.len(),
                "record of {len} at {at}"
            );
            let rec = &batch[at..at + len];
            let (code, flags) = (rec[8], rec[9]);
            let count = u16_at(rec, 10);
            let port = u16_at(rec, 12) as u16;
            let mut o = 14;
            let remote = match flags >> 6 {
                1 => {
                    let ip: [u8; 4] = rec[o..o + 4].try_into().unwrap();
                    o += 4;
                    Some(SocketAddr::from((ip, port)))
                }
                2 => {
                    let ip: [u8; 16] = rec[o..o + 16].try_into().unwrap();
                    o += 16;
                    Some(SocketAddr::from((ip, port)))
                }
                _ => None,
            };
            let (routed, code) = (code & ROUTED != 0, code & !ROUTED);
            let method = if code == 0 {
                let n = usize::from(rec[o]);
                o += 1 + n;
                String::from_utf8(rec[o - n..o].to_vec()).unwrap()
            } else {
                METHODS[usize::from(code) - 1].to_owned()
            };
            let n = u32_at(rec, o);
            let target = String::from_utf8(rec[o + 4..o + 4 + n].to_vec()).unwrap();
            o += 4 + n;
            let route = routed.then(|| {
                let id = u32_at(rec, o) as u32;
                let count = u16_at(rec, o + 4);
                o += 6;
                let mut params = Vec::new();
                for _ in 0..count {
                    let n = u16_at(rec, o);
                    let name = String::from_utf8(rec[o + 2..o + 2 + n].to_vec()).unwrap();
                    o += 2 + n;
                    let v = u32_at(rec, o);
                    let value = String::from_utf8(rec[o + 4..o + 4 + v].to_vec()).unwrap();
                    o += 4 + v;
                    params.push((name, value));
                }
                (id, params)
            });
            let mut headers = Vec::new();
            for _ in 0..count {
                let n = u16_at(rec, o);
                let name = String::from_utf8(rec[o + 2..o + 2 + n].to_vec()).unwrap();
                o += 2 + n;
                let v = u32_at(rec, o);
                headers.push((name, rec[o + 4..o + 4 + v].to_vec()));
                o += 4 + v;
            }
            assert_eq!(flags & 0x20, 0, "no TLS in these tests");
            let kind = flags & 3;
            let body = (kind == BODY_FULL).then(|| {
                let n = u32_at(rec, o);
                o += 4 + n;
                rec[o - n..o].to_vec()
            });
            assert_eq!(o, len, "the record ends where its length says");
            out.push(Decoded {
                id: u32_at(rec, 4) as u32,
                method,
                kind,
                version: (flags >> 2) & 3,
                upgrade: flags & 0x10 != 0,
                remote,
                target,
                headers,
                body,
                route,
            });
            at += len;
        }
        out
    }

    fn request(
        method: &str,
        target: &str,
        version: Version,
        headers: &[(String, Vec<u8>)],
        remote: Option<SocketAddr>,
    ) -> Request {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        Request {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            target: target.to_owned(),
            version,
            headers: map,
            body: RequestBody::empty(),
            remote_addr: remote,
            upgrade: None,
            tls: None,
            route: None,
        }
    }

    /// The batch of `__test__/fixtures/wire/request-batch.hex`, which the TS test decodes too.
    fn golden_batch() -> Vec<u8> {
        let mut out = Vec::new();
        let h = |n: &str, v: &[u8]| (n.to_owned(), v.to_vec());
        let get = request(
            "GET",
            "/a?b=c",
            Version::HTTP_11,
            &[h("host", b"example.test"), h("accept", b"*/*")],
            Some("127.0.0.1:5000".parse().unwrap()),
        );
        encode_request(&mut out, 1, BODY_EMPTY, false, &get, None);
        let post = request(
            "POST",
            "/upload",
            Version::HTTP_2,
            &[
                h("content-type", b"text/plain"),
                h("x-a", b"1"),
                h("x-a", b"2"),
            ],
            Some("[2001:db8::1]:443".parse().unwrap()),
        );
        encode_request(&mut out, 2, BODY_FULL, false, &post, Some(b"hello"));
        let custom = request(
            "PROPFIND",
            "/caf\u{e9}",
            Version::HTTP_10,
            &[h("x-latin", b"caf\xe9")],
            None,
        );
        encode_request(&mut out, u32::MAX, BODY_STREAM, true, &custom, None);
        let mut routed = request(
            "DELETE",
            "/users/7/files/a%20b?x=1",
            Version::HTTP_11,
            &[h("host", b"example.test")],
            Some("127.0.0.1:5001".parse().unwrap()),
        );
        routed.route = Some(hypersock_core::server::RouteMatch {
            id: 3,
            params: vec![("id".into(), "7".into()), ("*".into(), "a b".into())],
        });
        encode_request(&mut out, 4, BODY_EMPTY, false, &routed, None);
        out
    }

    #[test]
    fn the_golden_batch_is_the_committed_one() {
        crate::wire::assert_fixture(
            "request-batch.hex",
            &golden_batch(),
            "src-ts/wire/request.ts",
        );
    }

    #[test]
    fn the_golden_batch_decodes_to_its_requests() {
        let decoded = decode(&golden_batch());
        assert_eq!(decoded.len(), 4);
        assert_eq!(
            (
                decoded[0].id,
                decoded[0].method.as_str(),
                decoded[0].target.as_str()
            ),
            (1, "GET", "/a?b=c")
        );
        assert_eq!(decoded[1].body.as_deref(), Some(&b"hello"[..]));
        assert_eq!(decoded[1].headers.len(), 3);
        assert_eq!(
            (
                decoded[2].method.as_str(),
                decoded[2].kind,
                decoded[2].upgrade,
                decoded[2].remote
            ),
            ("PROPFIND", BODY_STREAM, true, None)
        );
        assert_eq!(decoded[2].headers[0].1, b"caf\xe9");
        assert_eq!(decoded[2].route, None);
        assert_eq!(
            (decoded[3].method.as_str(), decoded[3].headers.len()),
            ("DELETE", 1)
        );
        assert_eq!(
            decoded[3].route,
            Some((
                3,
                vec![("id".into(), "7".into()), ("*".into(), "a b".into())]
            ))
        );
    }

    fn method() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(METHODS.to_vec()).prop_map(str::to_owned),
            "[A-Z][A-Z_-]{0,20}",
        ]
    }

    fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
        (
            "[a-z0-9!#$%&'*+.^_`|~-]{1,16}",
            prop::collection::vec(prop_oneof![Just(9u8), 0x20u8..0x7f, 0x80u8..=0xff], 0..24),
        )
    }

    fn remote() -> impl Strategy<Value = Option<SocketAddr>> {
        prop_oneof![
            Just(None),
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, p)| Some(SocketAddr::from((ip, p)))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, p)| Some(SocketAddr::from((ip, p)))),
        ]
    }

    proptest! {
        #[test]
        fn every_request_comes_back_out_of_the_batch(
            reqs in prop::collection::vec((
                any::<u32>(),
                method(),
                "/[\\x21-\\x7e]{0,40}",
                prop::sample::select(vec![Version::HTTP_10, Version::HTTP_11, Version::HTTP_2]),
                prop::collection::vec(header(), 0..6),
                remote(),
                prop::option::of(prop::collection::vec(any::<u8>(), 0..64)),
                any::<bool>(),
                prop::option::of((any::<u32>(), prop::collection::vec(("[a-z*]{1,8}", "\\PC{0,12}"), 0..4))),
            ), 1..5)
        ) {
            let mut batch = Vec::new();
            for (id, m, target, version, headers, remote, body, upgrade, route) in &reqs {
                let mut r = request(m, target, *version, headers, *remote);
                r.route = route.clone().map(|(id, params)| hypersock_core::server::RouteMatch { id, params });
                let kind = if body.is_some() { BODY_FULL } else { BODY_EMPTY };
                encode_request(&mut batch, *id, kind, *upgrade, &r, body.as_deref());
            }
            let decoded = decode(&batch);
            prop_assert_eq!(decoded.len(), reqs.len());
            for (d, (id, m, target, version, headers, remote, body, upgrade, route)) in decoded.iter().zip(&reqs) {
                prop_assert_eq!(&d.route, route);
                let v = if *version == Version::HTTP_2 { 2 } else if *version == Version::HTTP_10 { 1 } else { 0 };
                prop_assert_eq!(d.id, *id);
                prop_assert_eq!(&d.method, m);
                prop_assert_eq!(&d.target, target);
                prop_assert_eq!(d.version, v);
                prop_assert_eq!(d.upgrade, *upgrade);
                prop_assert_eq!(d.remote, *remote);
                prop_assert_eq!(&d.body, body);
                // The batch keeps each name's fields in order, grouped by name as HeaderMap does.
                let mut sent: Vec<_> = headers.clone();
                let mut got = d.headers.clone();
                sent.sort_by(|a, b| a.0.cmp(&b.0));
                got.sort_by(|a, b| a.0.cmp(&b.0));
                prop_assert_eq!(got, sent);
            }
        }
    }
}
