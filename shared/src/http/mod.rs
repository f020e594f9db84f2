//! The HTTP API: one axum `Router` served by `automations serve` and, later, by the Lambdas.

mod error;
mod routes;

pub use error::ApiError;
pub use routes::{AppState, router};

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::domain::Invalid;

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Deserializes a request value; the error names the field that did not fit.
pub fn parse_json<T: DeserializeOwned>(value: Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        Invalid::new(path, e.into_inner().to_string())
    })
}
