//! The HTTP API: one axum `Router` served by `automations serve` and, later, by the Lambdas.

mod error;
mod extract;
mod routes;

pub use crate::domain::limits::MAX_BODY_BYTES;
pub use error::ApiError;
pub use routes::{AppState, Surface, router, router_for};
