//! Adapters behind the ports. `sqlite` serves the local runtime (`automations serve`).

#[cfg(feature = "sqlite")]
pub mod sqlite;
