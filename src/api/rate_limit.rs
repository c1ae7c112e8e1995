//! Each token's rate limit: a token bucket per token, in this process's
//! memory. Several processes each allow the limit (the operator sizes it
//! with that in mind); a shared counter would cost a database write on
//! every call, the very thing the limit protects.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::ApiTokenId;

pub struct RateLimiter {
    /// Calls per minute per token; 0: no limit.
    per_minute: u32,
    buckets: Mutex<HashMap<ApiTokenId, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> RateLimiter {
        RateLimiter { per_minute, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Admits one call of `token` now, or says how long until one would be.
    /// A full minute's worth may come at once; then calls come at the rate.
    pub fn admit(&self, token: ApiTokenId, now: Instant) -> Result<(), Duration> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        // A poisoned lock only means another call panicked mid-update; the
        // counts are still counts.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(token).or_insert(Bucket { tokens: capacity, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minutes_worth_then_the_rate() {
        let limiter = RateLimiter::new(60);
        let start = Instant::now();
        let id = ApiTokenId(1);
        for _ in 0..60 {
            assert!(limiter.admit(id, start).is_ok());
        }
        let wait = limiter.admit(id, start).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(900), "{wait:?}");
        assert!(limiter.admit(id, start + Duration::from_secs(1)).is_ok(), "one more a second later");
        assert!(limiter.admit(ApiTokenId(2), start).is_ok(), "each token has its own bucket");
    }

    #[test]
    fn zero_means_no_limit() {
        let limiter = RateLimiter::new(0);
        let now = Instant::now();
        assert!((0..10_000).all(|_| limiter.admit(ApiTokenId(1), now).is_ok()));
    }
}
