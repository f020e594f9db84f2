//! Conformance suites for the ports: one async function per port ([`queue_suite`],
//! [`store_suite`], [`secrets_suite`]) that drives an adapter through the port trait only and
//! panics, naming the broken property, where it differs from the contract the use cases rely
//! on. The SQLite adapters run them in their tests; the AWS adapters (SQS, DynamoDB, Secrets
//! Manager against moto) must pass the same suites.
//!
//! Time is a [`ManualClock`]: adapters that read the `Clock` port see visibility timeouts and
//! de-duplication windows pass without sleeping. Receives that expect a message to come back
//! also wait up to the visibility timeout (plus a margin) in real time, so a queue whose timer
//! is not the clock (SQS) passes too, only more slowly; receives that expect nothing use no
//! or a short wait, so they cost nothing when the adapter is right.

mod access;
mod history;
mod jobs;
mod metrics;
mod queue;
mod secrets;
mod sources;
mod store;

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use time::OffsetDateTime;

use crate::ports::Clock;

pub use access::access_suite;
pub use jobs::jobs_suite;
pub use metrics::metrics_suite;
pub use queue::{QueueUnderTest, queue_suite};
pub use secrets::secrets_suite;
pub use sources::sources_suite;
pub use store::{BASE_MS, Tamper, execution, store_suite, unreadable_json};

/// A clock that moves only when told to.
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }

    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
