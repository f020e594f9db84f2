//! When to try a delivery again, and what a response means.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// The delays between attempts. Attempt `n + 1` follows attempt `n` after `delays[n - 1]`
/// (±20 % jitter); after the last delay's attempt the execution fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::from_secs(&[5, 30, 120, 600, 1800, 3600, 10_800, 21_600, 43_200])
    }
}

impl RetrySchedule {
    pub fn from_secs(secs: &[u64]) -> Self {
        Self {
            delays: secs.iter().map(|s| Duration::from_secs(*s)).collect(),
        }
    }

    /// Parses `AUTOMATIONS_RETRY_SCHEDULE`: comma-separated seconds, e.g. `5,30,120`
    /// (an empty value means no retries). Each delay is at most 12 hours.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut secs = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let s: u64 = part.parse().map_err(|_| {
                format!("AUTOMATIONS_RETRY_SCHEDULE: {part:?} is not a whole number of seconds")
            })?;
            if s > 43_200 {
                return Err(format!(
                    "AUTOMATIONS_RETRY_SCHEDULE: {s} s is longer than the 12 h maximum"
                ));
            }
            secs.push(s);
        }
        if secs.len() > 20 {
            return Err("AUTOMATIONS_RETRY_SCHEDULE: at most 20 retries".into());
        }
        Ok(Self::from_secs(&secs))
    }

    /// How many attempts an execution gets in all.
    pub fn max_attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The wait before the next attempt after `attempts` failed ones, or `None` when the
    /// schedule is spent. A `Retry-After` is honoured as a lower bound, capped at the
    /// schedule's longest delay so a receiver cannot park an execution forever.
    pub fn next_delay(
        &self,
        attempts: usize,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        let base = *self.delays.get(attempts.checked_sub(1)?)?;
        let jittered = base.mul_f64(rng.random_range(0.8..=1.2));
        let longest = self.delays.iter().max().copied().unwrap_or_default();
        Some(match retry_after {
            Some(wanted) => jittered.max(wanted.min(longest)),
            None => jittered,
        })
    }
}

/// What one attempt's outcome means for the execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Worth another attempt (timeouts, connection errors, 408, 429, 5xx).
    Retry,
    /// The destination is gone for good (a 410, an archived Slack channel, a revoked
    /// hook): the integration is disabled with this reason, and the execution fails.
    Disable(String),
    /// Will not get better by retrying: the reason is recorded.
    Fail(String),
}

/// Classifies a response status (`None` when no response arrived: timeout or connection error).
pub fn classify(status: Option<u16>) -> Verdict {
    match status {
        None => Verdict::Retry,
        Some(200..=299) => Verdict::Delivered,
        Some(408 | 429 | 500..=599) => Verdict::Retry,
        Some(410) => Verdict::Disable("the receiver answered 410 Gone".into()),
        Some(s @ 300..=399) => {
            Verdict::Fail(format!("receiver answered {s}; redirects are not followed"))
        }
        Some(s) => Verdict::Fail(format!("receiver answered {s}")),
    }
}

/// Parses a `Retry-After` header: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn default_schedule_has_ten_attempts_with_twenty_percent_jitter() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.max_attempts(), 10);
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let d = schedule.next_delay(1, None, &mut rng).unwrap();
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
                "{d:?}"
            );
        }
        let last = schedule.next_delay(9, None, &mut rng).unwrap();
        assert!(last >= Duration::from_secs(34_560) && last <= Duration::from_secs(51_840));
        assert_eq!(schedule.next_delay(10, None, &mut rng), None);
        assert_eq!(schedule.next_delay(0, None, &mut rng), None);
    }

    #[test]
    fn retry_after_is_a_lower_bound_capped_at_the_longest_delay() {
        let schedule = RetrySchedule::from_secs(&[1, 2]);
        let mut rng = StdRng::seed_from_u64(1);
        assert_eq!(
            schedule.next_delay(1, Some(Duration::from_secs(2)), &mut rng),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            schedule.next_delay(1, Some(Duration::from_secs(3600)), &mut rng),
            Some(Duration::from_secs(2))
        );
        let d = schedule
            .next_delay(2, Some(Duration::ZERO), &mut rng)
            .unwrap();
        assert!(d >= Duration::from_millis(1600));
    }

    #[test]
    fn parse_schedule() {
        assert_eq!(
            RetrySchedule::parse("5, 30,120").unwrap(),
            RetrySchedule::from_secs(&[5, 30, 120])
        );
        assert_eq!(RetrySchedule::parse("").unwrap().max_attempts(), 1);
        assert!(RetrySchedule::parse("5,x").unwrap_err().contains("\"x\""));
        assert!(RetrySchedule::parse("50000").is_err());
        assert!(RetrySchedule::parse("-1").is_err());
    }

    #[test]
    fn classify_statuses() {
        assert_eq!(classify(Some(200)), Verdict::Delivered);
        assert_eq!(classify(Some(204)), Verdict::Delivered);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(Some(s)), Verdict::Retry, "{s}");
        }
        assert_eq!(classify(None), Verdict::Retry);
        assert_eq!(
            classify(Some(410)),
            Verdict::Disable("the receiver answered 410 Gone".into())
        );
        assert!(matches!(classify(Some(301)), Verdict::Fail(r) if r.contains("redirects")));
        assert!(matches!(classify(Some(404)), Verdict::Fail(r) if r.contains("404")));
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("90", now), Some(Duration::from_secs(90)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:30:00 GMT", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
