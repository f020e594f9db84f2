//! The HTTP API: one axum `Router` served by `automations serve` and, later, by the Lambdas.

mod error;
mod routes;

pub use error::ApiError;
pub use routes::{AppState, Surface, router, router_for};

/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
