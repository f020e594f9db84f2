//! Everything about sending a webhook: signatures, the retry schedule, the outbound guard
//! and the guarded HTTP client.

pub mod client;
pub mod guard;
pub mod retry;
pub mod signing;
