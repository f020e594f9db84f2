//! Adapters behind the ports. `sqlite` serves the local runtime (`automations serve`);
//! `aws` the Lambda runtime.

pub mod cached_keys;
pub mod cached_secrets;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "aws")]
pub mod aws;
