//! An RFC 6265 cookie jar: `Set-Cookie` parsing (section 5.2), storage with domain and path
//! rules, host-only cookies, Max-Age/Expires, Secure, HttpOnly and SameSite (5.3), public-suffix
//! rejection (the `psl` list), and the `Cookie` header (5.4). Thread-safe; saved as JSON.
//!
//! Limits as browsers keep them: a cookie whose name and value together pass
//! [`MAX_COOKIE_SIZE`] bytes is ignored, an attribute value over [`MAX_ATTRIBUTE_SIZE`] bytes is
//! ignored, a site (registrable domain) keeps at most [`MAX_COOKIES_PER_SITE`] cookies and the
//! jar at most [`MAX_COOKIES`]; past a limit the least recently set cookie goes. The `Secure`
//! rules of RFC 6265bis section 5.7 apply: only a secure origin (https, wss, or a loopback host,
//! as browsers treat them) sets a `Secure` cookie, and an insecure one cannot overwrite or
//! shadow one.
//!
//! Cookies are kept by site, the only place a cookie for a host can live, so a store or a lookup
//! reads one site's cookies (at most [`MAX_COOKIES_PER_SITE`]), never the whole jar.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::client::CookieStore;
use crate::error::{Error, Result};

mod date;

pub use date::parse_cookie_date;

/// The `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None`.
    None,
}

/// One stored cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cookie {
    /// Name (may be empty only for cookies loaded from elsewhere).
    pub name: String,
    /// Value.
    pub value: String,
    /// Domain, lower case, without a leading dot.
    pub domain: String,
    /// Path.
    pub path: String,
    /// Sent only to exactly `domain` (no `Domain` attribute was given).
    pub host_only: bool,
    /// Sent only over https.
    pub secure: bool,
    /// Not visible to scripts (kept for completeness; this client is an HTTP API).
    pub http_only: bool,
    /// The `SameSite` attribute, when given.
    pub same_site: Option<SameSite>,
    /// Expiry, milliseconds since the Unix epoch; `None` for a session cookie.
    pub expires: Option<i64>,
    /// Creation time, milliseconds since the Unix epoch (orders cookies of equal path length).
    pub creation: i64,
    /// Creation order within the jar, to break ties of equal creation times.
    #[serde(default)]
    pub seq: u64,
}

impl Cookie {
    fn expired(&self, now: i64) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// Largest name plus value of a cookie, in bytes (RFC 6265bis section 5.6; browsers agree).
pub const MAX_COOKIE_SIZE: usize = 4096;
/// Largest value of one attribute, in bytes; a longer one is ignored (RFC 6265bis section 5.6).
pub const MAX_ATTRIBUTE_SIZE: usize = 1024;
/// Most cookies kept for one site (registrable domain), as Chromium keeps.
pub const MAX_COOKIES_PER_SITE: usize = 180;
/// Most cookies kept in one jar, as Chromium keeps.
pub const MAX_COOKIES: usize = 3000;

#[derive(Debug, Default)]
struct Inner {
    /// Cookies by site: every cookie that can match a host lives under the host's site.
    sites: HashMap<String, Vec<Cookie>>,
    /// The site of every stored cookie by `seq`: oldest first, for eviction.
    order: BTreeMap<u64, String>,
    seq: u64,
}

/// The registrable domain of a host or cookie domain (`a.b.example.co.uk` -> `example.co.uk`),
/// or the name itself for an IP address, a public suffix or a single label.
fn site_of(domain: &str) -> &str {
    if domain.parse::<IpAddr>().is_ok() {
        return domain;
    }
    psl::domain_str(domain).unwrap_or(domain)
}

impl Inner {
    fn len(&self) -> usize {
        self.order.len()
    }

    /// Removes the cookies of one site that `drop` selects.
    fn remove_in(&mut self, site: &str, mut drop: impl FnMut(&Cookie) -> bool) -> usize {
        let Some(bucket) = self.sites.get_mut(site) else {
            return 0;
        };
        let order = &mut self.order;
        let before = bucket.len();
        bucket.retain(|c| {
            let gone = drop(c);
            if gone {
                order.remove(&c.seq);
            }
            !gone
        });
        let removed = before - bucket.len();
        if bucket.is_empty() {
            self.sites.remove(site);
        }
        removed
    }

    /// Stores a cookie (replacing the one of the same name, domain and path), then evicts to
    /// the limits: the site's expired cookies first, then its least recently set, then the
    /// jar's least recently set.
    fn insert(&mut self, mut cookie: Cookie, now: i64) {
        let site = site_of(&cookie.domain).to_owned();
        self.remove_in(&site, |c| {
            c.name == cookie.name && c.domain == cookie.domain && c.path == cookie.path
        });
        self.seq += 1;
        cookie.seq = self.seq;
        self.order.insert(cookie.seq, site.clone());
        let bucket = self.sites.entry(site.clone()).or_default();
        bucket.push(cookie);
        if bucket.len() > MAX_COOKIES_PER_SITE {
            self.remove_in(&site, |c| c.expired(now));
        }
        while self.sites.get(&site).map_or(0, Vec::len) > MAX_COOKIES_PER_SITE {
            let oldest = self.sites[&site].iter().map(|c| c.seq).min();
            self.remove_in(&site, |c| Some(c.seq) == oldest);
        }
        while self.len() > MAX_COOKIES {
            let Some((seq, site)) = self.order.pop_first() else {
                break;
            };
            self.order.insert(seq, site.clone());
            self.remove_in(&site, |c| c.seq == seq);
        }
    }

    fn purge_expired(&mut self, now: i64) {
        let sites: Vec<String> = self.sites.keys().cloned().collect();
        for site in sites {
            self.remove_in(&site, |c| c.expired(now));
        }
    }
}

/// True for the origins RFC 6265bis lets set and read `Secure` cookies: https and wss, and
/// loopback hosts, which browsers treat as potentially trustworthy.
fn secure_origin(url: &url::Url, host: &str) -> bool {
    matches!(url.scheme(), "https" | "wss")
        || host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A thread-safe cookie jar.
#[derive(Debug, Default)]
pub struct CookieJar {
    inner: Mutex<Inner>,
}

/// Milliseconds since the Unix epoch now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn trim_ws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// The attributes of one `Set-Cookie` value, before the storage rules apply.
#[derive(Debug, Default)]
struct Parsed {
    name: String,
    value: String,
    expires: Option<i64>,
    max_age: Option<i64>,
    domain: Option<String>,
    path: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

/// RFC 6265 section 5.2: `None` when the whole string must be ignored.
fn parse_set_cookie(header: &str) -> Option<Parsed> {
    // A NUL, CR or LF ends the string (as browsers do): what follows is not part of the cookie.
    let header = match header.find(['\0', '\r', '\n']) {
        Some(i) => &header[..i],
        None => header,
    };
    let (pair, attrs) = match header.find(';') {
        Some(i) => (&header[..i], &header[i..]),
        None => (header, ""),
    };
    let eq = pair.find('=')?;
    let name = trim_ws(&pair[..eq]);
    let value = trim_ws(&pair[eq + 1..]);
    if name.is_empty() || name.len() + value.len() > MAX_COOKIE_SIZE {
        return None;
    }
    let mut out = Parsed {
        name: name.to_string(),
        value: value.to_string(),
        ..Parsed::default()
    };
    for attr in attrs.split(';').skip(1) {
        let (key, val) = match attr.find('=') {
            Some(i) => (trim_ws(&attr[..i]), trim_ws(&attr[i + 1..])),
            None => (trim_ws(attr), ""),
        };
        if val.len() > MAX_ATTRIBUTE_SIZE {
            continue;
        }
        match key.to_ascii_lowercase().as_str() {
            "expires" => {
                if let Some(t) = parse_cookie_date(val) {
                    out.expires = Some(t.saturating_mul(1000));
                }
            }
            "max-age" => {
                let ok = val
                    .bytes()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit() || c == b'-')
                    && val.bytes().skip(1).all(|c| c.is_ascii_digit());
                if ok {
                    out.max_age = Some(val.parse::<i64>().unwrap_or(if val.starts_with('-') {
                        i64::MIN
                    } else {
                        i64::MAX
                    }));
                }
            }
            "domain" if !val.is_empty() => {
                out.domain = Some(val.strip_prefix('.').unwrap_or(val).to_ascii_lowercase());
            }
            "path" => {
                out.path = if val.starts_with('/') {
                    Some(val.to_string())
                } else {
                    None
                };
            }
            "secure" => out.secure = true,
            "httponly" => out.http_only = true,
            "samesite" => {
                out.same_site = match val.to_ascii_lowercase().as_str() {
                    "strict" => Some(SameSite::Strict),
                    "lax" => Some(SameSite::Lax),
                    "none" => Some(SameSite::None),
                    _ => out.same_site,
                }
            }
            _ => {}
        }
    }
    Some(out)
}

/// RFC 6265 section 5.1.4.
fn default_path(path: &str) -> String {
    if !path.starts_with('/') {
        return "/".into();
    }
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_string(),
    }
}

/// RFC 6265 section 5.1.3.
fn domain_match(host: &str, domain: &str) -> bool {
    if host == domain {
        return true;
    }
    host.len() > domain.len()
        && host.ends_with(domain)
        && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
        && host.parse::<IpAddr>().is_err()
}

/// RFC 6265 section 5.1.4.
fn path_match(request: &str, cookie: &str) -> bool {
    if request == cookie {
        return true;
    }
    request.starts_with(cookie)
        && (cookie.ends_with('/') || request.as_bytes().get(cookie.len()) == Some(&b'/'))
}

/// Decodes percent-encoded unreserved characters (RFC 3986 section 6.2.2.2), so that `/f%6Fo`
/// matches a cookie for `/foo`.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(c) = hex.filter(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c)) {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_public_suffix(domain: &str) -> bool {
    match psl::suffix(domain.as_bytes()) {
        Some(suffix) => suffix.as_bytes() == domain.as_bytes(),
        None => false,
    }
}

fn canonical_host(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .trim_end_matches('.')
            .to_ascii_lowercase(),
    )
}

impl CookieJar {
    /// An empty jar.
    pub fn new() -> CookieJar {
        CookieJar::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while the lock was held cannot leave the list half-written (every change is a
        // single push/retain), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores one `Set-Cookie` value received from `url` at time `now` (ms). Returns the cookie
    /// stored, or `None` when the rules ignore it.
    pub fn set_cookie(&self, header: &str, url: &url::Url, now: i64) -> Option<Cookie> {
        let parsed = parse_set_cookie(header)?;
        let host = canonical_host(url)?;
        let expires = match parsed.max_age {
            Some(age) if age <= 0 => Some(i64::MIN),
            Some(age) => Some(now.saturating_add(age.saturating_mul(1000))),
            None => parsed.expires,
        };
        let (domain, host_only) = match parsed.domain {
            Some(d) if is_public_suffix(&d) && d != host => return None,
            Some(d) if d == host => (d, false),
            Some(d) => {
                if !domain_match(&host, &d) {
                    return None;
                }
                (d, false)
            }
            None => (host.clone(), true),
        };
        let host_only = host_only || (domain == host && is_public_suffix(&domain));
        let path = parsed.path.unwrap_or_else(|| default_path(url.path()));
        let secure_from = secure_origin(url, &host);
        if parsed.secure && !secure_from {
            return None;
        }
        let mut inner = self.lock();
        let site = site_of(&domain).to_owned();
        let bucket = inner
            .sites
            .get(&site)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // RFC 6265bis section 5.7 step 16: an insecure origin may not overwrite or shadow a
        // `Secure` cookie of the same name whose domain overlaps and whose path it covers.
        if !secure_from
            && bucket.iter().any(|c| {
                c.secure
                    && c.name == parsed.name
                    && (domain_match(&c.domain, &domain) || domain_match(&domain, &c.domain))
                    && path_match(&path, &c.path)
            })
        {
            return None;
        }
        let creation = bucket
            .iter()
            .find(|c| c.name == parsed.name && c.domain == domain && c.path == path)
            .map(|c| c.creation)
            .unwrap_or(now);
        let cookie = Cookie {
            name: parsed.name,
            value: parsed.value,
            domain,
            path,
            host_only,
            secure: parsed.secure,
            http_only: parsed.http_only,
            same_site: parsed.same_site,
            expires,
            creation,
            seq: 0,
        };
        if cookie.expired(now) {
            let Cookie {
                name, domain, path, ..
            } = cookie;
            inner.remove_in(&site, |c| {
                c.name == name && c.domain == domain && c.path == path
            });
            return None;
        }
        inner.insert(cookie, now);
        let seq = inner.seq;
        inner.sites[&site].iter().find(|c| c.seq == seq).cloned()
    }

    /// The cookies to send to `url` at time `now` (ms), in RFC 6265 order (longer paths first,
    /// then older first).
    pub fn cookies_for(&self, url: &url::Url, now: i64) -> Vec<Cookie> {
        let Some(host) = canonical_host(url) else {
            return Vec::new();
        };
        let secure = secure_origin(url, &host);
        let path = normalize_path(url.path());
        let path = path.as_str();
        let site = site_of(&host).to_owned();
        let mut inner = self.lock();
        inner.remove_in(&site, |c| c.expired(now));
        let Some(bucket) = inner.sites.get(&site) else {
            return Vec::new();
        };
        let mut out: Vec<Cookie> = bucket
            .iter()
            .filter(|c| {
                (if c.host_only {
                    c.domain == host
                } else {
                    domain_match(&host, &c.domain)
                }) && path_match(path, &c.path)
                    && (!c.secure || secure)
            })
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then(a.creation.cmp(&b.creation))
                .then(a.seq.cmp(&b.seq))
        });
        out
    }

    /// The `Cookie` header value for `url` at time `now`, or `None` when no cookie applies.
    pub fn header_for(&self, url: &url::Url, now: i64) -> Option<String> {
        let cookies = self.cookies_for(url, now);
        if cookies.is_empty() {
            return None;
        }
        let parts: Vec<String> = cookies
            .iter()
            .map(|c| {
                if c.name.is_empty() {
                    c.value.clone()
                } else {
                    format!("{}={}", c.name, c.value)
                }
            })
            .collect();
        Some(parts.join("; "))
    }

    /// Every cookie that has not expired at `now`.
    pub fn list(&self, now: i64) -> Vec<Cookie> {
        let mut inner = self.lock();
        inner.purge_expired(now);
        let inner = &*inner;
        inner
            .order
            .iter()
            .filter_map(|(seq, site)| inner.sites.get(site)?.iter().find(|c| c.seq == *seq))
            .cloned()
            .collect()
    }

    /// How many cookies the jar holds (expired ones included until they are next looked at).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when the jar holds no cookie.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes cookies: all of them, those of one domain (and its subdomains), or one by name too.
    pub fn remove(&self, domain: Option<&str>, name: Option<&str>) -> usize {
        let mut inner = self.lock();
        let domain = domain.map(|d| d.trim_start_matches('.').to_ascii_lowercase());
        let sites: Vec<String> = inner.sites.keys().cloned().collect();
        let mut removed = 0;
        for site in sites {
            removed += inner.remove_in(&site, |c| {
                let d = domain.as_deref().is_none_or(|d| domain_match(&c.domain, d));
                let n = name.is_none_or(|n| c.name == n);
                d && n
            });
        }
        removed
    }

    /// The jar as JSON: an array of cookies. Session cookies are kept only with
    /// `include_session`.
    pub fn to_json(&self, now: i64, include_session: bool) -> String {
        let cookies: Vec<Cookie> = self
            .list(now)
            .into_iter()
            .filter(|c| include_session || c.expires.is_some())
            .collect();
        serde_json::to_string_pretty(&cookies).unwrap_or_else(|_| "[]".into())
    }

    /// Adds the cookies of [`CookieJar::to_json`] output; returns how many were loaded.
    pub fn load_json(&self, json: &str, now: i64) -> Result<usize> {
        let cookies: Vec<Cookie> = serde_json::from_str(json)
            .map_err(|e| Error::InvalidArgument(format!("not a saved cookie jar: {e}")))?;
        let mut inner = self.lock();
        let mut n = 0;
        for c in cookies.into_iter().filter(|c| !c.expired(now)) {
            if c.name.len() + c.value.len() > MAX_COOKIE_SIZE {
                continue;
            }
            inner.insert(c, now);
            n += 1;
        }
        Ok(n)
    }
}

impl CookieStore for CookieJar {
    fn cookie_header(&self, url: &url::Url) -> Option<String> {
        self.header_for(url, now_ms())
    }

    fn store(&self, url: &url::Url, set_cookies: &[&str]) {
        let now = now_ms();
        for header in set_cookies {
            self.set_cookie(header, url, now);
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
    fn domain_path_host_only_and_order() {
        let jar = CookieJar::new();
        let now = 1_000_000;
        let from = u("http://a.example.com/docs/x");
        jar.set_cookie("host=1", &from, now);
        jar.set_cookie("wide=2; Domain=.example.com; Path=/", &from, now + 1);
        jar.set_cookie("deep=3; Path=/docs/x", &from, now + 2);
        jar.set_cookie("evil=4; Domain=com", &from, now);
        jar.set_cookie("other=5; Domain=b.example.com", &from, now);
        assert_eq!(
            jar.header_for(&u("http://a.example.com/docs/x/y"), now + 3)
                .as_deref(),
            Some("deep=3; host=1; wide=2")
        );
        assert_eq!(
            jar.header_for(&u("http://b.example.com/docs"), now + 3)
                .as_deref(),
            Some("wide=2")
        );
        assert_eq!(
            jar.header_for(&u("http://a.example.com/doc"), now + 3)
                .as_deref(),
            Some("wide=2")
        );
    }

    #[test]
    fn expiry_secure_and_persistence() {
        let jar = CookieJar::new();
        let from = u("https://example.com/");
        jar.set_cookie("a=1; Max-Age=10", &from, 0);
        jar.set_cookie("s=2; Secure; HttpOnly; SameSite=Lax", &from, 0);
        assert_eq!(jar.header_for(&from, 5_000).as_deref(), Some("a=1; s=2"));
        assert_eq!(
            jar.header_for(&u("http://example.com/"), 5_000).as_deref(),
            Some("a=1")
        );
        assert_eq!(jar.header_for(&from, 10_000).as_deref(), Some("s=2"));
        jar.set_cookie("s=gone; Max-Age=0", &from, 11_000);
        assert_eq!(jar.header_for(&from, 11_000), None);
        jar.set_cookie("p=1; Expires=Wed, 09 Jun 2100 10:18:14 GMT", &from, 0);
        jar.set_cookie("session=1", &from, 0);
        let saved = jar.to_json(0, false);
        let other = CookieJar::new();
        assert_eq!(other.load_json(&saved, 0).expect("load"), 1);
        assert_eq!(other.header_for(&from, 0).as_deref(), Some("p=1"));
    }

    #[test]
    fn size_limits() {
        let jar = CookieJar::new();
        let from = u("https://example.com/");
        let big = "v".repeat(MAX_COOKIE_SIZE - 1);
        assert!(jar.set_cookie(&format!("a={big}"), &from, 0).is_some());
        assert!(jar.set_cookie(&format!("ab={big}"), &from, 0).is_none());
        // An over-long attribute is ignored, the cookie kept.
        let long_path = format!("/{}", "p".repeat(MAX_ATTRIBUTE_SIZE));
        let c = jar
            .set_cookie(&format!("p=1; Path={long_path}"), &from, 0)
            .expect("kept");
        assert_eq!(c.path, "/");
        assert_eq!(jar.len(), 2);
    }

    #[test]
    fn per_site_and_total_limits_evict_the_least_recently_set() {
        let jar = CookieJar::new();
        // Host-only cookies of many subdomains all count against their one site.
        for i in 0..MAX_COOKIES_PER_SITE + 20 {
            let from = u(&format!("https://h{}.example.com/", i % 7));
            jar.set_cookie(&format!("c{i}=1; Domain=example.com"), &from, i as i64);
        }
        assert_eq!(jar.len(), MAX_COOKIES_PER_SITE);
        let header = jar
            .header_for(&u("https://example.com/"), 1000)
            .expect("cookies");
        let names: Vec<&str> = header.split("; ").collect();
        assert_eq!(names.len(), MAX_COOKIES_PER_SITE);
        assert!(!names.contains(&"c0=1") && !names.contains(&"c19=1"));
        assert!(names.contains(&"c20=1") && names.contains(&"c199=1"));
        // Re-setting a cookie makes it the most recent.
        jar.set_cookie(
            "c20=2; Domain=example.com",
            &u("https://example.com/"),
            2000,
        );
        jar.set_cookie(
            "new=1; Domain=example.com",
            &u("https://example.com/"),
            2001,
        );
        let header = jar
            .header_for(&u("https://example.com/"), 3000)
            .expect("cookies");
        let names: Vec<&str> = header.split("; ").collect();
        assert!(names.contains(&"c20=2") && !names.contains(&"c21=1") && names.contains(&"new=1"));
        // The jar as a whole.
        let jar = CookieJar::new();
        for site in 0..40 {
            for i in 0..100 {
                let from = u(&format!("https://www.site{site}.com/"));
                jar.set_cookie(&format!("k{i}=1"), &from, 0);
            }
        }
        assert_eq!(jar.len(), MAX_COOKIES);
        assert_eq!(jar.header_for(&u("https://www.site0.com/"), 0), None);
        assert!(jar.header_for(&u("https://www.site39.com/"), 0).is_some());
        assert_eq!(jar.list(0).len(), MAX_COOKIES);
    }

    #[test]
    fn secure_cookies_need_a_secure_origin() {
        let jar = CookieJar::new();
        // Not set over http, set over https and on loopback.
        assert!(jar
            .set_cookie("s=1; Secure", &u("http://example.com/"), 0)
            .is_none());
        assert!(jar
            .set_cookie("s=1; Secure; Path=/", &u("https://example.com/"), 0)
            .is_some());
        assert!(jar
            .set_cookie("l=1; Secure", &u("http://127.0.0.1:8080/"), 0)
            .is_some());
        assert!(jar
            .set_cookie("l=1; Secure", &u("http://localhost:8080/"), 0)
            .is_some());
        // http cannot overwrite it, shadow it on a deeper path or a parent domain, or delete it.
        let http = u("http://example.com/a/b");
        assert!(jar.set_cookie("s=evil; Path=/", &http, 1).is_none());
        assert!(jar.set_cookie("s=evil; Path=/a", &http, 1).is_none());
        assert!(jar
            .set_cookie("s=evil; Max-Age=0; Path=/", &http, 1)
            .is_none());
        assert!(jar
            .set_cookie("s=evil", &u("http://www.example.com/"), 1)
            .is_none());
        assert!(jar
            .set_cookie(
                "s=evil; Domain=example.com",
                &u("http://www.example.com/"),
                1
            )
            .is_none());
        assert_eq!(
            jar.header_for(&u("https://example.com/a/b"), 2).as_deref(),
            Some("s=1")
        );
        // Another name is fine.
        assert!(jar.set_cookie("t=1", &http, 1).is_some());
    }
}
