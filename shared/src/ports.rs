//! The ports the use cases are written against. Every call is shaped so that DynamoDB can
//! serve it with a `GetItem`, a `Query` on a key or index, or a conditional write.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::access::{ApiKey, AuditEntry, KeyHash, StoredKey};
use crate::domain::automation::Automation;
use crate::domain::evaluation::EventRecord;
use crate::domain::event::EventType;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::domain::integration::Integration;
use crate::domain::job::{Job, JobQueue, JobStatus};
use crate::domain::metric::MetricState;
use crate::domain::source::Source;

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
    /// The item is stored in a form this version cannot read.
    #[error("{0}")]
    Unreadable(Unreadable),
}

/// A stored item that could not be decoded. It fails only the work that needs it: a
/// listing skips it and says so, matching goes on without it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Unreadable {
    #[serde(skip)]
    pub kind: &'static str,
    pub id: String,
    pub error: String,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is stored in a form this version cannot read ({})",
            self.kind, self.id, self.error
        )
    }
}

impl Unreadable {
    /// Decodes a stored JSON body of the item `kind` `id`.
    pub fn decode<T: serde::de::DeserializeOwned>(
        kind: &'static str,
        id: &str,
        json: &str,
    ) -> Result<T, Unreadable> {
        serde_json::from_str(json).map_err(|e| Unreadable {
            kind,
            id: id.to_string(),
            error: e.to_string(),
        })
    }

    /// Logs the item as skipped, with its team and id.
    pub fn log_skipped(&self, team: &str) {
        tracing::error!(team, kind = self.kind, id = %self.id, error = %self.error, "stored item cannot be read; skipped");
    }
}

/// The items of a listing in their order, each decoded or unreadable: a listing skips
/// what it cannot read, and says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Listing<T> {
    pub entries: Vec<Result<T, Unreadable>>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T> Listing<T> {
    pub fn items(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().filter_map(|e| e.as_ref().ok())
    }

    pub fn unreadable(&self) -> impl Iterator<Item = &Unreadable> {
        self.entries.iter().filter_map(|e| e.as_ref().err())
    }

    /// The readable items; the others are logged as skipped.
    pub fn into_items(self, team: &str) -> Vec<T> {
        self.entries
            .into_iter()
            .filter_map(|entry| entry.inspect_err(|bad| bad.log_skipped(team)).ok())
            .collect()
    }
}

impl<T> FromIterator<Result<T, Unreadable>> for Listing<T> {
    fn from_iter<I: IntoIterator<Item = Result<T, Unreadable>>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().collect(),
        }
    }
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
    async fn list_automations(&self, team: &str) -> StoreResult<Listing<Automation>>;
    async fn delete_automation(&self, team: &str, id: &str) -> StoreResult<bool>;
    /// For each lookup, in order, the automations of its team and event type filed under
    /// any of its scope keys. Index lookups whose cost does not grow with the team's other
    /// automations; lookups of one call share them, so a batch of events reads each index
    /// partition once. An automation that cannot be read is logged and left out; the
    /// others of its partition still match.
    async fn matching_automations(&self, lookups: &[Lookup]) -> StoreResult<Vec<Vec<Automation>>>;

    /// Creates (`create`) or replaces an integration; its name is unique in the team.
    async fn put_integration(&self, integration: &Integration, create: bool) -> StoreResult<()>;
    async fn get_integration(&self, team: &str, id: &str) -> StoreResult<Option<Integration>>;
    async fn list_integrations(&self, team: &str) -> StoreResult<Listing<Integration>>;
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

    /// Keeps what evaluation made of each event (replacing an earlier record of the same
    /// event) until `expires_at`, in the fewest writes the backend allows.
    async fn record_evaluations(
        &self,
        records: &[EventRecord],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()>;
    /// A team's evaluated events, newest received first, older than the event `before` if
    /// given.
    async fn list_events(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<EventRecord>>;

    /// Creates each execution unless one with its id exists: for each, in order, `true`
    /// where it was created, `false` where it existed, or why it could not be written (one
    /// failed write fails only its own execution).
    async fn create_executions(&self, executions: &[Execution]) -> Vec<StoreResult<bool>>;
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
    ) -> StoreResult<Listing<Execution>>;
    /// The team's executions (of one status, or all), newest first, older than the
    /// execution `before` if given: an index read, whatever the team's size.
    async fn list_team_executions(
        &self,
        team: &str,
        status: Option<ExecutionStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>>;
}

/// Team keys and the audit trail.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a key under its hash (a `GetItem` finds it) and in its team's listing, both
    /// at once; `Conflict` when the hash or the id is taken.
    async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> StoreResult<()>;
    /// The key whose hash this is, with the hash it is stored under, if it exists and is
    /// not revoked. A cache in front of a store may answer `MayBeCached` lookups from what
    /// it read within its time to live; `Fresh` ones always read the store.
    async fn key_by_hash(
        &self,
        hash: &KeyHash,
        lookup: KeyLookup,
    ) -> StoreResult<Option<StoredKey>>;
    /// A team's keys, oldest first.
    async fn list_keys(&self, team: &str) -> StoreResult<Listing<ApiKey>>;
    /// A team's key by its id.
    async fn get_key(&self, team: &str, id: &str) -> StoreResult<Option<ApiKey>>;
    /// Revokes a team's key: from now on its hash finds nothing. `false` when the team has
    /// no such key.
    async fn revoke_key(&self, team: &str, id: &str) -> StoreResult<bool>;

    /// Appends an entry to its team's trail, kept until `expires_at`.
    async fn append_audit(&self, entry: &AuditEntry, expires_at: OffsetDateTime)
    -> StoreResult<()>;
    /// A team's trail, newest first, older than `before` (an entry id) if given.
    async fn list_audit(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<AuditEntry>>;
}

/// A stored value and the version a conditional write must name to replace it.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    /// 1 for the first write; a write naming 0 creates.
    pub version: u64,
}

/// The metric windows and cooldowns of runs: one item per (team, run, metric), replaced by
/// conditional writes only, so that concurrent evaluators lose no value.
#[async_trait]
pub trait MetricStore: Send + Sync {
    /// The state of `metric` in `run`, if one is kept and has not expired.
    async fn get_metric_state(
        &self,
        team: &str,
        run: &str,
        metric: &str,
    ) -> StoreResult<Option<Versioned<MetricState>>>;
    /// Writes the state if what is stored is still `version` (0: nothing, or only an
    /// expired state, is stored), kept until `expires_at`; returns the new version, or
    /// `Stale` when another write came first.
    async fn put_metric_state(
        &self,
        team: &str,
        run: &str,
        metric: &str,
        state: &MetricState,
        version: u64,
        expires_at: OffsetDateTime,
    ) -> StoreResult<u64>;
}

/// What [`JobStore::enqueue`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Created,
    /// A job with its id exists already (the execution enqueued it before).
    Existed,
    /// The team has no such queue.
    NoQueue,
}

/// The teams' job queues and their jobs. A queue counts its open (pending or running)
/// jobs in the same writes that add and end them, so that it is deleted only when empty.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Fails with `Conflict` when the team has a queue of that name.
    async fn create_queue(&self, queue: &JobQueue) -> StoreResult<()>;
    async fn get_queue(&self, team: &str, name: &str) -> StoreResult<Option<JobQueue>>;
    /// A team's queues, by name.
    async fn list_queues(&self, team: &str) -> StoreResult<Listing<JobQueue>>;
    /// Deletes an empty queue: `false` when there is none, `Conflict` (saying how many)
    /// while it holds open jobs.
    async fn delete_queue(&self, team: &str, name: &str) -> StoreResult<bool>;

    /// Adds a pending job to its queue, unless a job with its id exists.
    async fn enqueue(&self, job: &Job) -> StoreResult<Enqueued>;
    async fn get_job(&self, team: &str, id: &str) -> StoreResult<Option<Job>>;
    /// Up to `limit` open jobs of a queue a claim at `now_ms` may take or must fail: the
    /// running ones whose lease expired, then the pending ones in the order they were
    /// enqueued. Unreadable ones are logged and left out.
    async fn claimable_jobs(
        &self,
        team: &str,
        queue: &str,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<Job>>;
    /// Writes an open job if the stored version is still `job.version` (and it has not
    /// ended), then bumps it; `Stale` otherwise. A job written as ended leaves its
    /// queue's open count in the same write.
    async fn update_job(&self, job: &mut Job) -> StoreResult<()>;
    /// A queue's jobs (of one status, or all), newest enqueued first, older than the job
    /// `before` if given.
    async fn list_jobs(
        &self,
        team: &str,
        queue: &str,
        status: Option<JobStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Job>>;
}

/// The teams' sources: other systems whose webhooks become events.
#[async_trait]
pub trait SourceStore: Send + Sync {
    /// Fails with `Conflict` when the team has a source of that name.
    async fn create_source(&self, source: &Source) -> StoreResult<()>;
    async fn get_source(&self, team: &str, id: &str) -> StoreResult<Option<Source>>;
    /// A team's sources, by id (oldest first).
    async fn list_sources(&self, team: &str) -> StoreResult<Listing<Source>>;
    /// `false` when the team has no such source.
    async fn delete_source(&self, team: &str, id: &str) -> StoreResult<bool>;
}

/// How fresh a key lookup must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLookup {
    /// What a cache read within its time to live will do (the events route).
    MayBeCached,
    /// Read from the store: a key revoked anywhere fails at once.
    Fresh,
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

/// A message that ran out of receives, with why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub id: String,
    /// The queue it came from (`events`, `actions`).
    pub queue: String,
    pub body: String,
    /// Receives before it was set aside.
    pub receive_count: u32,
    /// What the last receiver that gave up on it reported, if one did.
    pub last_error: Option<String>,
    pub sent_at: String,
    pub dead_lettered_at: String,
}

impl DeadLetter {
    /// Why the message ended here, in words.
    pub fn reason(&self) -> String {
        let received = match self.receive_count {
            1 => "received once".to_string(),
            n => format!("received {n} times"),
        };
        match &self.last_error {
            Some(error) => format!("{received}; the last receiver failed on it: {error}"),
            None => format!(
                "{received} and never deleted: the worker stopped or ran out of time each time"
            ),
        }
    }
}

/// The dead-letter queues of a runtime that keeps its queues itself: list what they hold,
/// and send it back. (SQS's own dead-letter queues and redrive serve the AWS runtime.)
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// The queues whose dead letters are kept here.
    fn queues(&self) -> Vec<String>;
    /// The dead letters of `queue` (or of all), newest first, older than `before` (an id).
    async fn list_dead_letters(
        &self,
        queue: Option<&str>,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<DeadLetter>, QueueError>;
    /// Puts the dead letters named by `ids` (or all of them) of `queue` (or of all) back
    /// on their queue, as if sent now; returns the ids put back.
    async fn redrive(
        &self,
        queue: Option<&str>,
        ids: Option<&[String]>,
    ) -> Result<Vec<String>, QueueError>;
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
    /// The URL is a team secret (a Slack or Teams webhook URL): errors about the request
    /// name no part of it, not even its host.
    pub secret_url: bool,
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
