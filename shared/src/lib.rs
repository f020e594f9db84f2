//! The automation engine: domain, use cases, ports, adapters and the HTTP router.
//!
//! The domain (`domain`, `actions`, `delivery::signing`, `delivery::retry`) is plain Rust
//! without I/O.
//! Use cases (`usecases`) are written once against the ports (`ports`); the runtimes wire
//! adapters (`adapters`) to them: SQLite for `automations serve`, AWS in the Lambdas.

pub mod actions;
pub mod adapters;
pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod delivery;
pub mod domain;
pub mod http;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod ports;
pub mod usecases;

#[cfg(feature = "sqlite")]
pub mod local;
