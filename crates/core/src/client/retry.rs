//! Retry rules: which failures are retried, and how long to wait (exponential backoff with jitter,
//! `Retry-After`).

use super::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Method;

use crate::error::Error;

/// What a [`RetryHook`] is told about a failed attempt.
#[derive(Debug, Clone)]
pub struct RetryContext {
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// The request method.
    pub method: String,
    /// The URL of the attempt.
    pub url: String,
    /// The status, when a response came.
    pub status: Option<u16>,
    /// The error code, when no response came.
    pub error_code: Option<&'static str>,
    /// The error text, when no response came.
    pub error_message: Option<String>,
    /// What the policy alone would do.
    pub will_retry: bool,
    /// The wait before the next attempt if it is made.
    pub delay: Duration,
}

/// The future a [`RetryHook`] returns: true to retry.
pub type RetryDecision = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Decides whether a failed attempt is retried. Called for every error and every status >= 400
/// while attempts are left and the body can be sent again; its answer replaces the policy's.
#[derive(Clone)]
pub struct RetryHook(pub Arc<dyn Fn(RetryContext) -> RetryDecision + Send + Sync>);

impl std::fmt::Debug for RetryHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryHook")
    }
}

/// Retry options of a client. `attempts: 1` (the default) never retries.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Most attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubled for each next one.
    pub base_delay: Duration,
    /// Longest wait between attempts (jitter included).
    pub max_delay: Duration,
    /// Statuses that are retried.
    pub statuses: Vec<u16>,
    /// Methods that are retried (default: the idempotent ones).
    pub methods: Vec<Method>,
    /// Longest `Retry-After` honoured; a longer one ends the retries and returns the response.
    pub max_retry_after: Duration,
    /// Decides instead of the policy, when set.
    pub hook: Option<RetryHook>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 1,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            statuses: vec![408, 429, 500, 502, 503, 504],
            methods: vec![
                Method::GET,
                Method::HEAD,
                Method::OPTIONS,
                Method::PUT,
                Method::DELETE,
                Method::TRACE,
            ],
            max_retry_after: Duration::from_secs(60),
            hook: None,
        }
    }
}

/// True for the failures worth another attempt: the connection could not be made or was lost, or
/// the connect timed out.
pub fn is_retryable_error(e: &Error) -> bool {
    match e {
        Error::ConnectionRefused(_) | Error::ConnectionReset(_) => true,
        Error::Timeout(stage) => *stage == "connect",
        Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionAborted
        ),
        _ => false,
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A small xorshift generator for jitter, seeded from the clock.
fn random_unit() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9e37_79b9_7f4a_7c15)
                | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (`attempt` counts from 1), with "equal jitter":
    /// half the exponential delay plus a random part of the other half, capped at `max_delay`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.backoff_with(attempt, random_unit())
    }

    /// [`RetryPolicy::backoff`] with the random part given, in `[0, 1)`.
    pub fn backoff_with(&self, attempt: u32, unit: f64) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max_delay);
        let half = exp / 2;
        half + half.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// True when `method` may be retried.
    pub fn allows_method(&self, method: &Method) -> bool {
        self.methods.contains(method)
    }
}

/// Retrying: the loop around one attempt that applies the rules above.
impl Client {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn with_retry(
        &self,
        method: &Method,
        url: &url::Url,
        headers: &[(String, String)],
        body: &mut RequestBody,
        cookie: Option<&str>,
        deadline: Option<Instant>,
        cancel: Option<&CancellationToken>,
        attempts: &AtomicU32,
        max_attempts: Option<u32>,
        progress: Option<&Progress>,
    ) -> Result<Attempt> {
        let policy = &self.opts.retry;
        let max_attempts = max_attempts.unwrap_or(policy.attempts).max(1);
        let mut attempt = 1u32;
        let mut stale_retry_used = false;
        loop {
            attempts.store(attempt, Ordering::Relaxed);
            let replayable = body.is_replayable();
            let outgoing = match body {
                RequestBody::Empty => OutBody::Full(None),
                RequestBody::Bytes(b) => match progress {
                    Some(p) if !b.is_empty() => OutBody::Counted {
                        rest: b.clone(),
                        sent: 0,
                        total: b.len() as u64,
                        progress: p.clone(),
                    },
                    _ => OutBody::Full(Some(b.clone())),
                },
                RequestBody::Stream(_) => match std::mem::take(body) {
                    RequestBody::Stream(rx) => OutBody::Stream {
                        rx,
                        sent: 0,
                        progress: None,
                    },
                    _ => OutBody::Full(None),
                },
            };
            let attempts_left = replayable && attempt < max_attempts;
            let may_retry = attempts_left && policy.allows_method(method);
            let result = self
                .attempt(method, url, headers, outgoing, cookie, deadline, cancel)
                .await;
            let (mut wait, status, failure) = match &result {
                Ok(a) if a.head.status >= 400 => {
                    let after = a
                        .head
                        .headers
                        .iter()
                        .find(|(n, _)| n == "retry-after")
                        .and_then(|(_, v)| std::str::from_utf8(v).ok())
                        .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                    let wait = match after {
                        Some(d) if d > policy.max_retry_after => None,
                        Some(d) => Some(d),
                        None => Some(policy.backoff(attempt)),
                    };
                    let wanted = may_retry && policy.statuses.contains(&a.head.status);
                    (
                        wait.filter(|_| wanted)
                            .or(if policy.hook.is_some() { wait } else { None }),
                        Some(a.head.status),
                        None,
                    )
                }
                Ok(_) => (None, None, None),
                Err(e) => {
                    let stale = !stale_retry_used
                        && replayable
                        && is_idempotent(method)
                        && matches!(e, Error::ConnectionReset(_));
                    if stale {
                        // A pooled keep-alive connection that the server had closed: once, at once.
                        stale_retry_used = true;
                        continue;
                    }
                    let wanted = may_retry && is_retryable_error(e);
                    let wait = if wanted || policy.hook.is_some() {
                        Some(policy.backoff(attempt))
                    } else {
                        None
                    };
                    (wait, None, Some((e.code(), e.to_string())))
                }
            };
            if let (Some(hook), true, Some(delay)) = (&policy.hook, attempts_left, wait) {
                let will_retry = match (&result, &failure) {
                    (Ok(a), _) => may_retry && policy.statuses.contains(&a.head.status),
                    (Err(e), _) => may_retry && is_retryable_error(e),
                };
                if !matches!(result, Err(Error::Aborted) | Err(Error::InvalidArgument(_))) {
                    let ctx = retry::RetryContext {
                        attempt,
                        method: method.to_string(),
                        url: url.to_string(),
                        status,
                        error_code: failure.as_ref().map(|f| f.0),
                        error_message: failure.map(|f| f.1),
                        will_retry,
                        delay,
                    };
                    if !(hook.0)(ctx).await {
                        wait = None;
                    }
                } else {
                    wait = None;
                }
            } else if !attempts_left {
                wait = None;
            }
            match (result, wait) {
                (Ok(mut a), Some(wait)) => {
                    drop(
                        tokio::time::timeout(Duration::from_millis(50), a.body.read_all(64 * 1024))
                            .await,
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                (Err(_), Some(wait)) => {
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                (Ok(mut a), None) => {
                    a.head.attempts = attempt;
                    return Ok(a);
                }
                (Err(e), None) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff_with(1, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff_with(1, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff_with(3, 1.0), Duration::from_millis(400));
        assert_eq!(p.backoff_with(30, 1.0), Duration::from_millis(1000));
        for n in 1..10 {
            let d = p.backoff(n);
            assert!(d <= Duration::from_millis(1000), "{d:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_connection_failures_are_retried() {
        assert!(is_retryable_error(&Error::ConnectionRefused("x".into())));
        assert!(is_retryable_error(&Error::Timeout("connect")));
        assert!(!is_retryable_error(&Error::Timeout("headers")));
        assert!(!is_retryable_error(&Error::Http("bad".into())));
    }
}
