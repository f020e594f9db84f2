//! The use cases, written once against the ports: ingest, evaluate, dispatch, manage.

pub mod access;
pub mod apply;
pub mod dispatch;
pub mod evaluate;
pub mod ingest;
pub mod jobs;
pub mod manage;
pub mod preview;
pub mod sources;

use std::sync::Arc;

use crate::delivery::guard::OutboundGuard;
use crate::delivery::retry::RetrySchedule;
use crate::domain::Invalid;
use crate::ports::{
    AccessStore, AutomationStore, Clock, JobStore, MetricStore, Queue, QueueError, SecretStore,
    SourceStore, StoreError, WebhookSender,
};

/// Everything the use cases need, wired by a runtime.
#[derive(Clone)]
pub struct Engine {
    pub store: Arc<dyn AutomationStore>,
    /// Team keys and the audit trail.
    pub access: Arc<dyn AccessStore>,
    /// The windows and cooldowns of run metrics.
    pub metrics: Arc<dyn MetricStore>,
    /// Job queues and their jobs.
    pub jobs: Arc<dyn JobStore>,
    /// Other systems whose webhooks become events.
    pub sources: Arc<dyn SourceStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub events: Arc<dyn Queue>,
    pub actions: Arc<dyn Queue>,
    pub sender: Arc<dyn WebhookSender>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
}

/// Behaviour the operator can tune.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub retry: RetrySchedule,
    pub guard: Arc<OutboundGuard>,
    /// Set (to this process's id) when this process is the only one using the store, as
    /// the local runtime is behind its data-directory lock: claims on executions made by
    /// earlier processes are then void, since those processes are gone.
    pub sole_instance: Option<String>,
    /// Requests a second (and burst) each key may send events with.
    pub ingest_limit: crate::domain::access::RateLimit,
    /// How often a waiting claim looks for a job again.
    pub claim_poll: ClaimPoll,
}

/// How often a waiting claim looks for a job again: on DynamoDB each look is two queries.
#[derive(Debug, Clone, Copy)]
pub struct ClaimPoll(pub std::time::Duration);

impl Default for ClaimPoll {
    fn default() -> Self {
        Self(std::time::Duration::from_secs(1))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0}")]
    NotFound(String),
    /// What a request names in `field` does not exist.
    #[error(transparent)]
    Missing(Invalid),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    /// A stored item this version cannot read: the request that needs it fails.
    #[error("{0}")]
    Unreadable(crate::ports::Unreadable),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::Stale => Error::Conflict(
                "it was changed at the same time by another request; try again".into(),
            ),
            StoreError::Unreadable(bad) => Error::Unreadable(bad),
            other => Error::Store(other),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A message on the actions queue: which execution to deliver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionMessage {
    pub team: String,
    pub execution_id: String,
}
