//! The ports the use cases are written against. Every call is shaped so that DynamoDB can
//! serve it with a `GetItem`, a `Query` on a key or index, or a conditional write.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::automation::Automation;
use crate::domain::event::EventType;
use crate::domain::execution::Execution;
use crate::domain::integration::Integration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional create found the item, or a unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// A conditional update found another version than the one read.
    #[error("the item was changed by someone else; read it again")]
    Stale,
    #[error("storage failed: {0}")]
    Backend(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Team {
    pub name: String,
    pub created_at: String,
}

/// What an event looks automations up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lookup {
    pub team: String,
    pub event_type: EventType,
    /// The scope keys an automation may be filed under (`Scope::key`).
    pub scope_keys: Vec<String>,
}

/// Teams, automations, integrations, event de-duplication and executions.
#[async_trait]
pub trait AutomationStore: Send + Sync {
    /// Fails with `Conflict` when the team exists.
    async fn create_team(&self, team: &Team) -> StoreResult<()>;
    async fn get_team(&self, name: &str) -> StoreResult<Option<Team>>;
    async fn list_teams(&self) -> StoreResult<Vec<Team>>;

    /// Creates (`create`) or replaces an automation; its name is unique in the team.
    async fn put_automation(&self, automation: &Automation, create: bool) -> StoreResult<()>;
    async fn get_automation(&self, team: &str, id: &str) -> StoreResult<Option<Automation>>;
    async fn list_automations(&self, team: &str) -> StoreResult<Vec<Automation>>;
    async fn delete_automation(&self, team: &str, id: &str) -> StoreResult<bool>;
    /// For each lookup, in order, the automations of its team and event type filed under
    /// any of its scope keys. Index lookups whose cost does not grow with the team's other
    /// automations; lookups of one call share them, so a batch of events reads each index
    /// partition once.
    async fn matching_automations(&self, lookups: &[Lookup]) -> StoreResult<Vec<Vec<Automation>>>;

    /// Creates (`create`) or replaces an integration; its name is unique in the team.
    async fn put_integration(&self, integration: &Integration, create: bool) -> StoreResult<()>;
    async fn get_integration(&self, team: &str, id: &str) -> StoreResult<Option<Integration>>;
    async fn list_integrations(&self, team: &str) -> StoreResult<Vec<Integration>>;
    async fn delete_integration(&self, team: &str, id: &str) -> StoreResult<bool>;

    /// Which of these event ids the team already sent (within the de-duplication window).
    async fn seen_events(&self, team: &str, ids: &[String]) -> StoreResult<HashSet<String>>;
    /// Remembers event ids until `expires_at`.
    async fn record_events(
        &self,
        team: &str,
        ids: &[String],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;

    /// Creates each execution unless one with its id exists; `true` where it was created.
    async fn create_executions(&self, executions: &[Execution]) -> StoreResult<Vec<bool>>;
    async fn get_execution(&self, team: &str, id: &str) -> StoreResult<Option<Execution>>;
    /// Writes `execution` if the stored version is still `execution.version`, then bumps it.
    async fn update_execution(&self, execution: &mut Execution) -> StoreResult<()>;
    /// An automation's executions, newest first, older than `before` (an execution id) if given.
    async fn list_executions(
        &self,
        team: &str,
        automation_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Vec<Execution>>;
}

/// A secret's value. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub String);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecretInfo {
    pub name: String,
    pub updated_at: String,
}

/// Team secrets: written and used, never read back out through the API.
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn put_secret(&self, team: &str, name: &str, value: &SecretValue) -> StoreResult<()>;
    async fn get_secret(&self, team: &str, name: &str) -> StoreResult<Option<SecretValue>>;
    async fn list_secrets(&self, team: &str) -> StoreResult<Vec<SecretInfo>>;
    async fn delete_secret(&self, team: &str, name: &str) -> StoreResult<bool>;
}

#[derive(Debug, thiserror::Error)]
#[error("queue failed: {0}")]
pub struct QueueError(pub String);

/// A message handed out by [`Queue::receive`]; invisible to others until its visibility
/// timeout passes, then handed out again with a higher `receive_count`.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub receipt: String,
    pub body: String,
    pub receive_count: u32,
}

/// A durable queue with SQS semantics: at-least-once delivery, visibility timeout, and a
/// dead-letter queue after too many receives.
#[async_trait]
pub trait Queue: Send + Sync {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError>;
    /// Up to `max` messages, waiting up to `wait` for the first one.
    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError>;
    async fn delete_batch(&self, receipts: &[String]) -> Result<(), QueueError>;
    /// Makes a received message visible again after `delay`.
    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), QueueError>;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// One webhook request, ready to send.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What came back from one attempt.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// `None` when no response arrived (timeout, refused by the guard, connection error).
    pub status: Option<u16>,
    pub body: String,
    /// The body was longer than what was read.
    pub truncated: bool,
    pub retry_after: Option<Duration>,
    pub error: Option<String>,
    /// The outbound guard refused the destination: retrying will not help.
    pub refused: bool,
    pub duration: Duration,
}

/// Sends webhooks through the outbound guard.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    async fn send(&self, request: Outbound) -> Response;
}
