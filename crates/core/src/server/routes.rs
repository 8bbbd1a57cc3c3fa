//! The route table: request paths matched on the I/O threads, before any handler runs.
//!
//! A route's pattern is written as users of Bun.serve, Hono or Express write it: exact segments,
//! `:name` segments that capture one segment, and a final `*` that captures the rest of the path.
//! Each route answers any method or only the methods it lists (others get 405 with `Allow`).
//! What a route does is a [`RouteAction`]: a fixed response sent from here, a file or a
//! directory served from disk here, or a handler id given to the [`HttpHandler`] with the
//! request's decoded parameters. Paths no route matches go to the handler without a route.
//!
//! The table is built once and swapped whole ([`Server::set_routes`]): a request is matched
//! against one table from start to end.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use crate::error::{Error, Result};

use super::files::{StaticDir, StaticFile};
use super::*;

/// What a route does with a request.
#[derive(Clone)]
pub enum RouteAction {
    /// Send this response from the I/O thread; the handler never sees the request.
    Static(Arc<StaticResponse>),
    /// Serve this file from disk (GET and HEAD).
    File(Arc<StaticFile>),
    /// Serve files under this directory; the pattern's final `*` names the file.
    Dir(Arc<StaticDir>),
    /// Hand the request to the handler with this route id (see [`Request::route`]).
    Handler(u32),
}

/// A response fixed when the route table is built.
pub struct StaticResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl StaticResponse {
    /// Checks the status (200-999) and frames the response once, as [`build_response`] frames
    /// a handler's (the handler's `Transfer-Encoding` and `Content-Length` give way to the
    /// body's real length; 204 and 304 lose the body), so that each request only copies it.
    pub fn new(status: u16, headers: HeaderMap, body: Bytes) -> Result<Self> {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| !s.is_informational())
            .ok_or_else(|| Error::InvalidArgument(format!("invalid route status {status}")))?;
        let mut headers = headers;
        headers.remove(header::CONTENT_LENGTH);
        let framed = build_response(
            Response {
                status: status.as_u16(),
                headers,
                body: ResBody::full(body.clone()),
                reason: None,
            },
            false,
        );
        let body = if framed.body().exact_len() == Some(0) {
            Bytes::new()
        } else {
            body
        };
        Ok(StaticResponse {
            status,
            headers: framed.headers().clone(),
            body,
        })
    }

    /// The response to one request (`HEAD`: the same head, no body).
    fn response(&self, head: bool) -> HttpResponse {
        let body = if head {
            ResBody::empty()
        } else {
            ResBody::full(self.body.clone())
        };
        let mut res = hyper::Response::new(body);
        *res.status_mut() = self.status;
        *res.headers_mut() = self.headers.clone();
        res
    }
}

/// One route of a table: a pattern, the method it answers (`None`: any), and its action.
pub struct RouteSpec {
    /// E.g. `/`, `/users/:id`, `/assets/*`.
    pub pattern: String,
    /// The method answered; `None` answers every method the pattern has no own entry for.
    pub method: Option<Method>,
    /// What is done.
    pub action: RouteAction,
}

/// The route a request matched, handed to the handler with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The handler id of the route's action.
    pub id: u32,
    /// The captured segments, percent-decoded, in pattern order; the final `*` is named `*`.
    pub params: Vec<(String, String)>,
}

struct Entry {
    /// Names of the captures in matchit's order, as the user wrote them (`*` for the rest).
    names: Vec<String>,
    methods: Vec<(Method, RouteAction)>,
    any: Option<RouteAction>,
    /// The `Allow` value when a method has no action.
    allow: HeaderValue,
}

/// A route table, built once and matched per request.
#[derive(Default)]
pub struct Routes {
    router: matchit::Router<usize>,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Routes({} patterns)", self.entries.len())
    }
}

/// The outcome of matching one request.
pub(crate) enum Matched<'a> {
    /// A route and its action; `params` are raw (still percent-encoded).
    Action {
        action: &'a RouteAction,
        names: &'a [String],
        params: Vec<&'a str>,
    },
    /// The path has routes, none for this method.
    MethodNotAllowed(&'a HeaderValue),
    /// No route: the handler answers.
    None,
}

/// Translates a route pattern to matchit's syntax, checking it.
fn translate(pattern: &str) -> Result<(String, Vec<String>)> {
    let bad = |why: &str| Err(Error::InvalidArgument(format!("route {pattern:?}: {why}")));
    if !pattern.starts_with('/') {
        return bad("a pattern starts with '/'");
    }
    if pattern.contains(['?', '#']) || pattern.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return bad("a pattern is a path without query, fragment, spaces or control characters");
    }
    let segments: Vec<&str> = pattern[1..].split('/').collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut names = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        out.push('/');
        if *segment == "*" {
            if i + 1 != segments.len() {
                return bad("'*' can only be the last segment");
            }
            out.push_str("{*rest}");
            names.push("*".to_owned());
        } else if let Some(name) = segment.strip_prefix(':') {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
            {
                return bad("a ':' segment is ':' and a name of letters, digits and '_'");
            }
            if names.iter().any(|n| n == name) {
                return bad("a parameter name is used twice");
            }
            out.push_str(&format!("{{p{}}}", names.len()));
            names.push(name.to_owned());
        } else if segment.contains('*') {
            return bad("'*' stands alone as the last segment");
        } else {
            // Matched against the path as sent, where clients percent-encode what is not
            // ASCII (in upper-case hex, as WHATWG URL serialises it): a literal `é` in a
            // pattern matches `%C3%A9`.
            for c in segment.chars() {
                match c {
                    '{' => out.push_str("{{"),
                    '}' => out.push_str("}}"),
                    c if c.is_ascii() => out.push(c),
                    c => {
                        let mut utf8 = [0u8; 4];
                        for b in c.encode_utf8(&mut utf8).bytes() {
                            out.push_str(&format!("%{b:02X}"));
                        }
                    }
                }
            }
        }
    }
    Ok((out, names))
}

impl Routes {
    /// Builds a table. Fails on a malformed pattern, on two patterns that match the same paths,
    /// on one method given twice for a pattern, or on a directory route whose pattern does not
    /// end in `*`.
    pub fn new(specs: Vec<RouteSpec>) -> Result<Routes> {
        let mut routes = Routes::default();
        let mut by_pattern: Vec<(String, usize)> = Vec::new();
        let mut bases = Vec::new();
        for spec in specs {
            let at = match by_pattern.iter().find(|(p, _)| *p == spec.pattern) {
                Some((_, at)) => *at,
                None => {
                    let (path, names) = translate(&spec.pattern)?;
                    let at = routes.entries.len();
                    routes.router.insert(path.clone(), at).map_err(|e| {
                        Error::InvalidArgument(format!("route {:?}: {e}", spec.pattern))
                    })?;
                    if let Some(base) = path.strip_suffix("{*rest}") {
                        bases.push((base.to_owned(), at));
                    }
                    routes.entries.push(Entry {
                        names,
                        methods: Vec::new(),
                        any: None,
                        allow: HeaderValue::from_static(""),
                    });
                    by_pattern.push((spec.pattern.clone(), at));
                    at
                }
            };
            let entry = &mut routes.entries[at];
            if matches!(spec.action, RouteAction::Dir(_))
                && entry.names.last().map(String::as_str) != Some("*")
            {
                return Err(Error::InvalidArgument(format!(
                    "route {:?}: a directory is served under a pattern ending in '/*'",
                    spec.pattern
                )));
            }
            let twice = match spec.method {
                Some(method) => {
                    let dup = entry.methods.iter().any(|(m, _)| *m == method);
                    entry.methods.push((method, spec.action));
                    dup
                }
                None => entry.any.replace(spec.action).is_some(),
            };
            if twice {
                return Err(Error::InvalidArgument(format!(
                    "route {:?}: a method is given twice",
                    spec.pattern
                )));
            }
        }
        // `/assets/*` answers `/assets/` too (an empty rest), unless another route has it.
        for (base, at) in bases {
            if routes.router.at(&base).is_err() {
                let _ = routes.router.insert(base, at);
            }
        }
        for entry in &mut routes.entries {
            let mut allow: Vec<&str> = entry.methods.iter().map(|(m, _)| m.as_str()).collect();
            if allow.contains(&"GET") && !allow.contains(&"HEAD") {
                allow.push("HEAD");
            }
            entry.allow = HeaderValue::from_str(&allow.join(", "))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
        }
        Ok(routes)
    }

    /// True when the table has no routes.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn find<'a>(&'a self, method: &Method, path: &'a str) -> Matched<'a> {
        if self.entries.is_empty() {
            return Matched::None;
        }
        let Ok(found) = self.router.at(path) else {
            return Matched::None;
        };
        let entry = &self.entries[*found.value];
        let own = |m: &Method| entry.methods.iter().find(|(em, _)| em == m).map(|(_, a)| a);
        let action = own(method)
            .or_else(|| {
                (*method == Method::HEAD)
                    .then(|| own(&Method::GET))
                    .flatten()
            })
            .or(entry.any.as_ref());
        let Some(action) = action else {
            return Matched::MethodNotAllowed(&entry.allow);
        };
        // matchit yields the captures in pattern order; an `/assets/` match has no rest.
        let params = found.params.iter().map(|(_, v)| v).collect();
        Matched::Action {
            action,
            names: &entry.names,
            params,
        }
    }
}

/// Percent-decodes a captured segment (invalid UTF-8 becomes U+FFFD).
fn decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// What matching did with a request: answered it, or hands it on (with its route, if any).
pub(crate) enum Routed {
    Answered(HttpResponse),
    Handler(Option<RouteMatch>),
}

/// Matches `req` against the server's table and answers it when its route needs no handler.
pub(crate) async fn route(ctx: &Ctx, req: &hyper::Request<hyper::body::Incoming>) -> Routed {
    let routes = ctx.routes();
    let path = req.uri().path();
    match routes.find(req.method(), path) {
        Matched::None => Routed::Handler(None),
        Matched::MethodNotAllowed(allow) => {
            let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            res.headers_mut().insert(header::ALLOW, allow.clone());
            Routed::Answered(res)
        }
        Matched::Action {
            action,
            names,
            params,
        } => match action {
            RouteAction::Static(res) => {
                Routed::Answered(res.response(req.method() == Method::HEAD))
            }
            RouteAction::File(file) => {
                Routed::Answered(super::files::serve_file(file, req.method(), req.headers()).await)
            }
            RouteAction::Dir(dir) => {
                let tail = match names.last().map(String::as_str) {
                    Some("*") if params.len() == names.len() => params.last().copied(),
                    _ => None,
                };
                Routed::Answered(
                    super::files::serve_dir(dir, tail.unwrap_or(""), req.method(), req.headers())
                        .await,
                )
            }
            RouteAction::Handler(id) => {
                let params = names
                    .iter()
                    .zip(
                        params
                            .iter()
                            .map(|p| decode(p))
                            .chain(std::iter::repeat(String::new())),
                    )
                    .map(|(n, v)| (n.clone(), v))
                    .collect();
                Routed::Handler(Some(RouteMatch { id: *id, params }))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler(pattern: &str, method: Option<Method>, id: u32) -> RouteSpec {
        RouteSpec {
            pattern: pattern.into(),
            method,
            action: RouteAction::Handler(id),
        }
    }

    fn id_of(routes: &Routes, method: &Method, path: &str) -> Option<(u32, Vec<String>)> {
        match routes.find(method, path) {
            Matched::Action {
                action: RouteAction::Handler(id),
                params,
                ..
            } => Some((*id, params.iter().map(|p| decode(p)).collect())),
            _ => None,
        }
    }

    #[test]
    fn patterns_params_and_methods() {
        let routes = Routes::new(vec![
            handler("/", None, 1),
            handler("/users/:id", Some(Method::GET), 2),
            handler("/users/:id", Some(Method::POST), 3),
            handler("/users/new", None, 4),
            handler("/files/*", None, 5),
            handler("/a/:x/b/:y", None, 6),
            handler("/lit{eral}", None, 7),
            handler("/caf\u{e9}/:x", None, 8),
        ])
        .unwrap();
        assert_eq!(id_of(&routes, &Method::GET, "/"), Some((1, vec![])));
        assert_eq!(
            id_of(&routes, &Method::GET, "/users/a%20b"),
            Some((2, vec!["a b".into()]))
        );
        assert_eq!(
            id_of(&routes, &Method::HEAD, "/users/7"),
            Some((2, vec!["7".into()]))
        );
        assert_eq!(
            id_of(&routes, &Method::POST, "/users/7"),
            Some((3, vec!["7".into()]))
        );
        assert_eq!(
            id_of(&routes, &Method::GET, "/users/new"),
            Some((4, vec![]))
        );
        assert_eq!(
            id_of(&routes, &Method::GET, "/files/x/y.txt"),
            Some((5, vec!["x/y.txt".into()]))
        );
        assert_eq!(id_of(&routes, &Method::GET, "/files/"), Some((5, vec![])));
        assert_eq!(
            id_of(&routes, &Method::GET, "/a/1/b/2"),
            Some((6, vec!["1".into(), "2".into()]))
        );
        assert_eq!(
            id_of(&routes, &Method::GET, "/lit{eral}"),
            Some((7, vec![]))
        );
        assert_eq!(
            id_of(&routes, &Method::GET, "/caf%C3%A9/%C3%A9"),
            Some((8, vec!["\u{e9}".into()]))
        );
        assert!(matches!(routes.find(&Method::GET, "/nope"), Matched::None));
        assert!(matches!(routes.find(&Method::GET, "/users"), Matched::None));
        match routes.find(&Method::DELETE, "/users/7") {
            Matched::MethodNotAllowed(allow) => assert_eq!(allow, "GET, POST, HEAD"),
            _ => panic!("expected 405"),
        }
    }

    #[test]
    fn bad_tables_are_refused() {
        for (specs, why) in [
            (vec![handler("users", None, 1)], "starts with '/'"),
            (vec![handler("/a/*/b", None, 1)], "last segment"),
            (vec![handler("/a*", None, 1)], "stands alone"),
            (vec![handler("/:", None, 1)], "name"),
            (vec![handler("/:a/:a", None, 1)], "twice"),
            (vec![handler("/a?b", None, 1)], "query"),
            (
                vec![
                    handler("/x", Some(Method::GET), 1),
                    handler("/x", Some(Method::GET), 2),
                ],
                "method is given twice",
            ),
            (
                vec![handler("/:a", None, 1), handler("/:b", None, 2)],
                "conflict",
            ),
        ] {
            let err = Routes::new(specs).expect_err(why).to_string();
            assert!(err.contains(why), "{err} should mention {why}");
        }
    }
}
