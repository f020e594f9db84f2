//! Token buckets per key: a key may send `rate` requests a second on average, and `burst`
//! at once. Buckets live in the process (in each Lambda container on AWS, where the API
//! Gateway throttle is the global limit).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use crate::domain::access::RateLimit;

/// Buckets kept before full ones (the same as none) are dropped.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of one process.
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    by_key: HashMap<String, Bucket>,
    /// When full buckets were last dropped: at most once a second.
    pruned: Option<Instant>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(Buckets {
                by_key: HashMap::new(),
                pruned: None,
            }),
        }
    }

    /// Takes a token from `key`'s bucket now: `Ok`, or how long until one is there.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        self.take_at(key, Instant::now())
    }

    /// Takes a token from `key`'s bucket at `now`.
    pub fn take_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let RateLimit { rate, burst } = self.limit;
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = &mut *guard;
        let due = buckets
            .pruned
            .is_none_or(|at| now.saturating_duration_since(at) >= Duration::from_secs(1));
        if buckets.by_key.len() > PRUNE_ABOVE && due {
            buckets.pruned = Some(now);
            buckets.by_key.retain(|_, b| {
                b.tokens + rate * now.saturating_duration_since(b.at).as_secs_f64() < burst
            });
        }
        let bucket = buckets.by_key.entry(key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refilled = rate * now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now.max(bucket.at);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

/// `Retry-After` for a wait: whole seconds, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter::new(RateLimit { rate, burst })
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let limiter = limiter(10.0, 20.0);
        let start = Instant::now();
        for i in 0..20 {
            assert!(
                limiter.take_at("k", start).is_ok(),
                "request {i} of the burst"
            );
        }
        let wait = limiter.take_at("k", start).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // A second later, ten more (the rate), and not an eleventh.
        let later = start + Duration::from_secs(1);
        for i in 0..10 {
            assert!(
                limiter.take_at("k", later).is_ok(),
                "request {i} after a second"
            );
        }
        assert!(limiter.take_at("k", later).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let limiter = limiter(1.0, 1.0);
        let now = Instant::now();
        assert!(limiter.take_at("a", now).is_ok());
        assert!(limiter.take_at("a", now).is_err());
        assert!(limiter.take_at("b", now).is_ok());
    }

    #[test]
    fn a_quiet_key_never_holds_more_than_its_burst() {
        let limiter = limiter(100.0, 3.0);
        let start = Instant::now();
        assert!(limiter.take_at("k", start).is_ok());
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(limiter.take_at("k", much_later).is_ok());
        }
        assert!(limiter.take_at("k", much_later).is_err());
    }

    #[test]
    fn full_buckets_are_dropped_when_there_are_many() {
        let limiter = limiter(1000.0, 2.0);
        let start = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            assert!(limiter.take_at(&format!("k{i}"), start).is_ok());
        }
        // Once refilled, they are full again: the next take prunes them all.
        assert!(
            limiter
                .take_at("new", start + Duration::from_secs(1))
                .is_ok()
        );
        let kept = limiter.buckets.lock().unwrap().by_key.len();
        assert_eq!(kept, 1);
    }

    #[test]
    fn retry_after_is_whole_seconds_and_at_least_one() {
        assert_eq!(retry_after_seconds(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(3)), 3);
    }
}
