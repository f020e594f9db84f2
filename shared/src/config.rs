//! Settings read once from the environment, shared by every runtime.

use std::sync::Arc;

use crate::delivery::guard::{ALLOW_NETWORKS_ENV, OutboundGuard, parse_allow_networks};
use crate::delivery::retry::RetrySchedule;
use crate::usecases::Settings;

/// Reads `AUTOMATIONS_RETRY_SCHEDULE` and `AUTOMATIONS_ALLOW_NETWORKS`; errors name the variable.
pub fn settings_from_env() -> Result<Settings, String> {
    let retry = match std::env::var("AUTOMATIONS_RETRY_SCHEDULE") {
        Ok(spec) => RetrySchedule::parse(&spec)?,
        Err(_) => RetrySchedule::default(),
    };
    let allow = match std::env::var(ALLOW_NETWORKS_ENV) {
        Ok(spec) => {
            parse_allow_networks(&spec).map_err(|e| format!("{ALLOW_NETWORKS_ENV}: {e}"))?
        }
        Err(_) => Vec::new(),
    };
    Ok(Settings {
        retry,
        guard: Arc::new(OutboundGuard::new(allow)),
        sole_instance: None,
    })
}
