//! Settings read once from the environment, shared by every runtime.

use std::sync::Arc;

use crate::delivery::guard::{ALLOW_NETWORKS_ENV, OutboundGuard, parse_allow_networks};
use crate::delivery::retry::RetrySchedule;
use crate::domain::access::RateLimit;
use crate::usecases::Settings;

/// Log directives every runtime adds after `RUST_LOG`'s: the HTTP client's libraries log
/// the host and address of each connection at debug level, and a Slack or Teams URL is a
/// team secret, host included. Whatever `RUST_LOG` asks, they log at info at most.
pub const QUIET_LOG_DIRECTIVES: [&str; 5] = [
    "reqwest=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "rustls=info",
];

/// Reads `AUTOMATIONS_RETRY_SCHEDULE`, `AUTOMATIONS_ALLOW_NETWORKS`, `AUTOMATIONS_INGEST_RATE`
/// and `AUTOMATIONS_INGEST_BURST`; errors name the variable.
pub fn settings_from_env() -> Result<Settings, String> {
    settings_from(&|name| std::env::var(name).ok())
}

/// The settings from the variables `var` looks up.
pub fn settings_from(var: &dyn Fn(&str) -> Option<String>) -> Result<Settings, String> {
    let retry = match var("AUTOMATIONS_RETRY_SCHEDULE") {
        Some(spec) => RetrySchedule::parse(&spec)?,
        None => RetrySchedule::default(),
    };
    let allow = match var(ALLOW_NETWORKS_ENV) {
        Some(spec) => {
            parse_allow_networks(&spec).map_err(|e| format!("{ALLOW_NETWORKS_ENV}: {e}"))?
        }
        None => Vec::new(),
    };
    let ingest_limit = RateLimit {
        rate: number(var, INGEST_RATE_ENV, RateLimit::default().rate)?,
        burst: number(var, INGEST_BURST_ENV, RateLimit::default().burst)?,
    };
    Ok(Settings {
        retry,
        guard: Arc::new(OutboundGuard::new(allow)),
        sole_instance: None,
        ingest_limit,
        claim_poll: Default::default(),
    })
}

/// Requests a second each key may send events with.
pub const INGEST_RATE_ENV: &str = "AUTOMATIONS_INGEST_RATE";
/// Requests each key may send events with at once.
pub const INGEST_BURST_ENV: &str = "AUTOMATIONS_INGEST_BURST";

/// A whole number of 1 to 1,000,000 from `name`, or `default` when it is not set.
fn number(var: &dyn Fn(&str) -> Option<String>, name: &str, default: f64) -> Result<f64, String> {
    let Some(text) = var(name) else {
        return Ok(default);
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=1_000_000).contains(&n) => Ok(f64::from(n)),
        _ => Err(format!(
            "{name} must be a whole number from 1 to 1000000, not {text:?}"
        )),
    }
}
