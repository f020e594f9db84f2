//! The HTTP API: one axum `Router` served by `automations serve` and by the Lambdas.

pub mod console;
mod error;
mod extract;
pub mod openapi;
pub mod rate_limit;
mod routes;

pub use crate::domain::limits::MAX_BODY_BYTES;
pub use error::ApiError;
pub use routes::{AppState, RouteSpec, Surface, router, router_for, routes};
