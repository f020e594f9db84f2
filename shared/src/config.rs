//! Settings read once from the environment, shared by every runtime.

use std::sync::Arc;

use crate::delivery::guard::{ALLOW_NETWORKS_ENV, OutboundGuard, parse_allow_networks};
use crate::delivery::retry::RetrySchedule;
use crate::usecases::Settings;

/// Reads `AUTOMATIONS_RETRY_SCHEDULE` and `AUTOMATIONS_ALLOW_NETWORKS`; errors name the variable.
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
    Ok(Settings {
        retry,
        guard: Arc::new(OutboundGuard::new(allow)),
        sole_instance: None,
    })
}
