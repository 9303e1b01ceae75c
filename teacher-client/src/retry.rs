//! When and how long to wait before resending a request. Resending is safe because the server
//! is idempotent by row id: a batch stored twice is stored once.

use std::time::Duration;

/// How a failed request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 = never retry).
    pub retries: u32,
    /// Wait before the first retry; doubled each retry.
    pub base_delay: Duration,
    /// Longest wait between two attempts, also the cap on a server's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// What to do with the answer to one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Success: stop.
    Done,
    /// Transient failure: wait (the server's `Retry-After` if it gave one) and resend.
    Retry {
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Permanent failure (a 4xx other than 408/429): report it, do not resend.
    Fail,
}

/// Classifies an HTTP status: 2xx done; 408, 429 and every 5xx transient; other statuses final.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Verdict {
    match status {
        200..=299 => Verdict::Done,
        408 | 429 | 500..=599 => Verdict::Retry { retry_after },
        _ => Verdict::Fail,
    }
}

impl RetryPolicy {
    /// Wait before retry number `attempt` (1-based): the server's `Retry-After` when given
    /// (capped at `max_delay`), else `base_delay * 2^(attempt-1)` capped at `max_delay`,
    /// with up to 25% jitter so concurrent workers do not resend in lockstep.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(self.max_delay);
        }
        let exp = attempt.saturating_sub(1).min(30);
        let base = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let jitter = base.mul_f64(jitter_fraction() * 0.25);
        (base + jitter).min(self.max_delay)
    }
}

/// A pseudo-random number in [0, 1) from the std hasher's per-process random keys (good
/// enough to spread retries; no RNG dependency needed).
fn jitter_fraction() -> f64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Parses a `Retry-After` header given in seconds (`"3"`, `"0.5"`); HTTP dates are not
/// used by the server and yield `None` (the exponential backoff applies instead).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if secs.is_finite() && secs >= 0.0 {
        Some(Duration::from_secs_f64(secs.min(86_400.0)))
    } else {
        None
    }
}

/// A `Retry-After` value as a wait from `now`: delay-seconds, or an HTTP-date (RFC 9110
/// section 10.2.3; a date already past means "now"). `None` when it is neither.
pub fn retry_after_at(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    if let Some(d) = parse_retry_after(value) {
        return Some(d);
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(86_400)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(200, None), Verdict::Done);
        assert_eq!(
            classify(429, Some(Duration::from_secs(1))),
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(1))
            }
        );
        assert_eq!(classify(503, None), Verdict::Retry { retry_after: None });
        assert_eq!(classify(500, None), Verdict::Retry { retry_after: None });
        assert_eq!(classify(400, None), Verdict::Fail);
        assert_eq!(classify(413, None), Verdict::Fail);
        assert_eq!(classify(422, None), Verdict::Fail);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy {
            retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let d1 = p.delay(1, None);
        let d3 = p.delay(3, None);
        assert!(
            d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(125),
            "{d1:?}"
        );
        assert!(
            d3 >= Duration::from_millis(400) && d3 <= Duration::from_millis(500),
            "{d3:?}"
        );
        assert_eq!(p.delay(20, None), Duration::from_secs(1));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(5))),
            Duration::from_secs(1),
            "Retry-After is capped"
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(50))),
            Duration::from_millis(50)
        );
    }

    #[test]
    fn retry_after_takes_http_dates() {
        use std::time::{Duration, UNIX_EPOCH};
        // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 s after the epoch.
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        let before = UNIX_EPOCH + Duration::from_secs(1_445_412_480 - 7);
        assert_eq!(retry_after_at(date, before), Some(Duration::from_secs(7)));
        let after = UNIX_EPOCH + Duration::from_secs(1_445_412_480 + 60);
        assert_eq!(retry_after_at(date, after), Some(Duration::ZERO));
        assert_eq!(retry_after_at("3", after), Some(Duration::from_secs(3)));
        assert_eq!(retry_after_at("soon", after), None);
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
