use std::sync::Arc;

use hypersock_core::client::CookieStore;
use hypersock_core::cookie::{now_ms, parse_cookie_date, Cookie, CookieJar, SameSite};
use hypersock_core::Error;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::{Fail, OrThrow};

/// One cookie, as the TS layer sees it.
#[napi(object)]
pub struct BindingCookie {
    pub name: String,
    pub value: String,
    pub domain: String,
    pub path: String,
    pub host_only: bool,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<String>,
    /// Milliseconds since the Unix epoch; null for a session cookie.
    pub expires: Option<f64>,
    pub creation: f64,
}

fn to_js(c: Cookie) -> BindingCookie {
    BindingCookie {
        name: c.name,
        value: c.value,
        domain: c.domain,
        path: c.path,
        host_only: c.host_only,
        secure: c.secure,
        http_only: c.http_only,
        same_site: c.same_site.map(|s| {
            match s {
                SameSite::Strict => "strict",
                SameSite::Lax => "lax",
                SameSite::None => "none",
            }
            .to_string()
        }),
        expires: c.expires.map(|e| e.max(-8_640_000_000_000_000) as f64),
        creation: c.creation as f64,
    }
}

fn url(env: &Env, u: &str) -> Result<url::Url> {
    url::Url::parse(u)
        .map_err(|e| {
            Fail::from(Error::InvalidUrl {
                url: u.to_string(),
                reason: e.to_string(),
            })
        })
        .or_throw(env)
}

fn now(at: Option<f64>) -> i64 {
    at.map(|t| t as i64).unwrap_or_else(now_ms)
}

/// A thread-safe RFC 6265 cookie jar shared with the clients that use it.
#[napi]
pub struct BindingCookieJar {
    inner: Arc<CookieJar>,
}

impl BindingCookieJar {
    /// The jar as the client's cookie store.
    pub(crate) fn store(&self) -> Arc<dyn CookieStore> {
        self.inner.clone()
    }
}

#[napi]
impl BindingCookieJar {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        BindingCookieJar {
            inner: Arc::new(CookieJar::new()),
        }
    }

    /// Stores a `Set-Cookie` value as received from `url`; the cookie stored, or null when ignored.
    #[napi]
    pub fn set_cookie(
        &self,
        env: &Env,
        header: String,
        url_str: String,
        at: Option<f64>,
    ) -> Result<Option<BindingCookie>> {
        Ok(self
            .inner
            .set_cookie(&header, &url(env, &url_str)?, now(at))
            .map(to_js))
    }

    /// The cookies that a request to `url` would send, in order.
    #[napi]
    pub fn get_cookies(
        &self,
        env: &Env,
        url_str: String,
        at: Option<f64>,
    ) -> Result<Vec<BindingCookie>> {
        Ok(self
            .inner
            .cookies_for(&url(env, &url_str)?, now(at))
            .into_iter()
            .map(to_js)
            .collect())
    }

    /// The `Cookie` header for `url`, or null.
    #[napi]
    pub fn get_cookie_header(
        &self,
        env: &Env,
        url_str: String,
        at: Option<f64>,
    ) -> Result<Option<String>> {
        Ok(self.inner.header_for(&url(env, &url_str)?, now(at)))
    }

    /// Every live cookie.
    #[napi]
    pub fn list(&self, at: Option<f64>) -> Vec<BindingCookie> {
        self.inner.list(now(at)).into_iter().map(to_js).collect()
    }

    /// Removes cookies (all, of a domain, or of a domain and name); returns how many.
    #[napi]
    pub fn remove(&self, domain: Option<String>, name: Option<String>) -> u32 {
        self.inner.remove(domain.as_deref(), name.as_deref()) as u32
    }

    /// The jar as JSON.
    #[napi]
    pub fn to_json(&self, include_session: bool, at: Option<f64>) -> String {
        self.inner.to_json(now(at), include_session)
    }

    /// Adds the cookies of saved JSON; returns how many.
    #[napi]
    pub fn load_json(&self, env: &Env, json: String, at: Option<f64>) -> Result<u32> {
        Ok(self.inner.load_json(&json, now(at)).or_throw(env)? as u32)
    }
}

/// Parses a cookie date (RFC 6265 5.1.1); milliseconds since the Unix epoch, or null.
#[napi]
pub fn parse_cookie_date_native(value: String) -> Option<f64> {
    parse_cookie_date(&value).map(|s| (s * 1000) as f64)
}
