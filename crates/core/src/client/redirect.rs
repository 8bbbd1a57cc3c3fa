//! Redirect rules (RFC 9110 section 15.4, WHATWG fetch "HTTP-redirect fetch").

use super::*;
use http::Method;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{Error, Result};

/// What to do with 3xx responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedirectMode {
    /// Follow them (the default).
    #[default]
    Follow,
    /// Return the 3xx response as it is.
    Manual,
    /// Fail with `ERR_REDIRECT_REFUSED`.
    Error,
}

/// What a [`RedirectHook`] is told about a redirect about to be followed.
#[derive(Debug, Clone)]
pub struct RedirectContext {
    /// The URL that answered with the redirect.
    pub from: String,
    /// Its status.
    pub status: u16,
    /// The URL the next request goes to.
    pub to: String,
    /// The next request's method.
    pub method: String,
    /// The next request's headers, after the rules (body headers gone when it became a GET,
    /// credentials gone when it leaves the origin).
    pub headers: Vec<(String, String)>,
}

/// A [`RedirectHook`]'s answer: follow with these headers (`None`: as they are), or stop with
/// this reason (`ERR_REDIRECT_REFUSED`).
pub type RedirectVerdict = std::result::Result<Option<Vec<(String, String)>>, String>;

/// The future a [`RedirectHook`] returns.
pub type RedirectDecision = Pin<Box<dyn Future<Output = RedirectVerdict> + Send>>;

/// Called before each redirect is followed; may change the next request's headers or refuse it.
#[derive(Clone)]
pub struct RedirectHook(pub Arc<dyn Fn(RedirectContext) -> RedirectDecision + Send + Sync>);

impl std::fmt::Debug for RedirectHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedirectHook")
    }
}

/// Redirect options of a client.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    /// Follow, return or refuse redirects.
    pub mode: RedirectMode,
    /// Most redirects followed for one request (default 10); one more is `ERR_TOO_MANY_REDIRECTS`.
    pub max: usize,
    /// Allow an `https://` URL to redirect to `http://` (default false).
    pub allow_insecure: bool,
    /// Told of each redirect before it is followed, when set.
    pub hook: Option<RedirectHook>,
}

impl Default for RedirectPolicy {
    fn default() -> Self {
        RedirectPolicy {
            mode: RedirectMode::Follow,
            max: 10,
            allow_insecure: false,
            hook: None,
        }
    }
}

/// One redirect that was followed.
#[derive(Debug, Clone)]
pub struct Hop {
    /// The URL that answered with a redirect.
    pub url: String,
    /// Its status (301, 302, 303, 307 or 308).
    pub status: u16,
    /// The URL it pointed to, resolved.
    pub location: String,
}

/// True for the statuses that are followed.
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The next request of a redirect chain.
#[derive(Debug)]
pub struct NextRequest {
    /// The resolved target.
    pub url: url::Url,
    /// The method for it.
    pub method: Method,
    /// False when the body must be dropped (the method became GET).
    pub keep_body: bool,
    /// True when the target is another origin: credentials must be dropped.
    pub cross_origin: bool,
}

/// Works out the request that follows a `status` response with `location` to a `method` request of
/// `from`, or refuses it.
pub fn next_request(
    policy: &RedirectPolicy,
    from: &url::Url,
    method: &Method,
    status: u16,
    location: &str,
) -> Result<NextRequest> {
    let url = from.join(location).map_err(|e| {
        Error::RedirectRefused(format!(
            "the redirect Location {location:?} is not a valid URL ({e})"
        ))
    })?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(Error::RedirectRefused(format!(
                "refused a redirect to the {other}: scheme"
            )))
        }
    }
    if from.scheme() == "https" && url.scheme() == "http" && !policy.allow_insecure {
        return Err(Error::RedirectRefused(format!(
            "refused a redirect from https to {url} (set redirect.allowInsecure to allow it)"
        )));
    }
    let to_get = match status {
        303 => *method != Method::HEAD,
        301 | 302 => *method == Method::POST,
        _ => false,
    };
    let cross_origin = url.origin() != from.origin();
    Ok(NextRequest {
        url,
        method: if to_get { Method::GET } else { method.clone() },
        keep_body: !to_get,
        cross_origin,
    })
}

/// Request headers that describe a body; dropped with it.
pub const BODY_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "content-language",
    "content-location",
    "transfer-encoding",
];

/// Request headers that carry credentials; dropped when a redirect changes origin.
pub const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// Following redirects: the loop around [`Client::with_retry`] that applies the rules above.
impl Client {
    pub(super) async fn follow(
        &self,
        req: ClientRequest,
        deadline: Option<Instant>,
        attempts: &AtomicU32,
    ) -> Result<(ResponseHead, BodyReader)> {
        let mut url = parse_url(&req.url, &["http", "https"])?;
        let mut method = Method::from_bytes(req.method.as_bytes())
            .map_err(|_| Error::InvalidArgument(format!("invalid method {:?}", req.method)))?;
        let mut headers = req.headers;
        let mut body = req.body;
        let streamed = !body.is_replayable();
        let policy = &RedirectPolicy {
            mode: req.redirect.unwrap_or(self.opts.redirect.mode),
            ..self.opts.redirect.clone()
        };
        let mut hops: Vec<Hop> = Vec::new();
        let mut seen: HashSet<(String, String, Option<String>)> = HashSet::new();
        loop {
            let cookie = self
                .opts
                .cookies
                .as_ref()
                .and_then(|c| c.cookie_header(&url));
            let key = (method.to_string(), url.to_string(), cookie.clone());
            if !seen.insert(key) {
                return Err(Error::TooManyRedirects(format!(
                    "redirect loop: {url} was reached twice in the same state"
                )));
            }
            let mut attempt = self
                .with_retry(
                    &method,
                    &url,
                    &headers,
                    &mut body,
                    cookie.as_deref(),
                    deadline,
                    req.cancel.as_ref(),
                    attempts,
                    req.retry_attempts,
                    req.upload_progress.as_ref(),
                )
                .await?;
            if let Some(jar) = &self.opts.cookies {
                let set: Vec<&str> = attempt
                    .head
                    .headers
                    .iter()
                    .filter(|(n, _)| n == "set-cookie")
                    .filter_map(|(_, v)| std::str::from_utf8(v).ok())
                    .collect();
                if !set.is_empty() {
                    jar.store(&url, &set);
                }
            }
            let status = attempt.head.status;
            if !redirect::is_redirect(status) || policy.mode == RedirectMode::Manual {
                attempt.head.redirects = hops;
                return Ok((attempt.head, attempt.body));
            }
            let Some(location) = attempt
                .head
                .headers
                .iter()
                .find(|(n, _)| n == "location")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            else {
                attempt.head.redirects = hops;
                return Ok((attempt.head, attempt.body));
            };
            if policy.mode == RedirectMode::Error {
                return Err(Error::RedirectRefused(format!(
                    "{url} redirected ({status}) and redirect mode is \"error\""
                )));
            }
            if hops.len() >= policy.max {
                return Err(Error::TooManyRedirects(format!(
                    "more than {} redirects, the last from {url}",
                    policy.max
                )));
            }
            let next = redirect::next_request(policy, &url, &method, status, &location)?;
            // Drain a small redirect body so the connection goes back to the pool.
            drop(
                tokio::time::timeout(Duration::from_millis(50), attempt.body.read_all(64 * 1024))
                    .await,
            );
            if next.keep_body && streamed {
                return Err(Error::BodyNotReplayable(format!(
                    "{status} redirect to {} needs the request body again, but it was a stream; \
                     send a Buffer or string body, or set redirect: 'manual'",
                    next.url
                )));
            }
            // Fetch (4.4, HTTP-redirect fetch): the body and its headers go when the redirect
            // turns the request into a GET; a GET or HEAD redirected by 303 keeps its headers.
            if !next.keep_body && method != Method::GET && method != Method::HEAD {
                body = RequestBody::Empty;
                headers.retain(|(n, _)| {
                    !redirect::BODY_HEADERS
                        .iter()
                        .any(|h| n.eq_ignore_ascii_case(h))
                });
            }
            if next.cross_origin {
                headers.retain(|(n, _)| {
                    !redirect::CREDENTIAL_HEADERS
                        .iter()
                        .any(|h| n.eq_ignore_ascii_case(h))
                });
            }
            if let Some(hook) = &policy.hook {
                let verdict = (hook.0)(RedirectContext {
                    from: url.to_string(),
                    status,
                    to: next.url.to_string(),
                    method: next.method.to_string(),
                    headers: headers.clone(),
                })
                .await;
                match verdict {
                    Ok(Some(replaced)) => headers = replaced,
                    Ok(None) => {}
                    Err(reason) => return Err(Error::RedirectRefused(reason)),
                }
            }
            hops.push(Hop {
                url: url.to_string(),
                status,
                location: next.url.to_string(),
            });
            url = next.url;
            method = next.method;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[test]
    fn method_rules() {
        let p = RedirectPolicy::default();
        let from = u("http://a.test/x/y");
        let n = next_request(&p, &from, &Method::POST, 302, "z").expect("302");
        assert_eq!(n.url.as_str(), "http://a.test/x/z");
        assert_eq!(n.method, Method::GET);
        assert!(!n.keep_body);
        let n = next_request(&p, &from, &Method::PUT, 303, "/z").expect("303");
        assert_eq!(n.method, Method::GET);
        let n = next_request(&p, &from, &Method::HEAD, 303, "/z").expect("303 HEAD");
        assert_eq!(n.method, Method::HEAD);
        let n = next_request(&p, &from, &Method::PUT, 301, "/z").expect("301 PUT");
        assert_eq!(n.method, Method::PUT);
        for status in [307, 308] {
            let n = next_request(&p, &from, &Method::POST, status, "http://b.test/").expect("307");
            assert_eq!(n.method, Method::POST);
            assert!(n.keep_body);
            assert!(n.cross_origin);
        }
    }

    #[test]
    fn refuses_downgrade_and_other_schemes() {
        let p = RedirectPolicy::default();
        let from = u("https://a.test/");
        let e =
            next_request(&p, &from, &Method::GET, 302, "http://a.test/").expect_err("downgrade");
        assert_eq!(e.code(), "ERR_REDIRECT_REFUSED");
        let allow = RedirectPolicy {
            allow_insecure: true,
            ..RedirectPolicy::default()
        };
        assert!(next_request(&allow, &from, &Method::GET, 302, "http://a.test/").is_ok());
        let e = next_request(&p, &from, &Method::GET, 302, "file:///etc/passwd").expect_err("file");
        assert_eq!(e.code(), "ERR_REDIRECT_REFUSED");
        let same =
            next_request(&p, &from, &Method::GET, 302, "https://a.test:443/b").expect("same");
        assert!(!same.cross_origin);
    }
}
