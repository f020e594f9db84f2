//! The local runtime: the four use cases in one process on one SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::adapters::cached_keys::{CachedKeys, KEYS_CACHE_TTL};
use crate::adapters::sqlite::{
    Database, LocalDeadLetters, SecretsKey, SqliteAccess, SqliteJobs, SqliteMetrics, SqliteQueue,
    SqliteSecrets, SqliteSources, SqliteStore, private_file,
};
use crate::delivery::client::{DEFAULT_TIMEOUT, GuardedClient};
use crate::domain::event::Event;
use crate::ports::{Clock, Queue, Received, SystemClock};
use crate::usecases::dispatch::{Outcome, dispatch};
use crate::usecases::evaluate::Evaluator;
use crate::usecases::{ActionMessage, Engine, Error, Settings};

/// Visibility timeout of the events queue: evaluation of a batch takes milliseconds.
pub const EVENTS_VISIBILITY: Duration = Duration::from_secs(30);
/// Visibility timeout of the actions queue: longer than one delivery's timeout.
pub const ACTIONS_VISIBILITY: Duration = Duration::from_secs(60);
/// Receives of an event message before it goes to the dead-letter queue.
pub const EVENTS_MAX_RECEIVES: u32 = 5;
/// Deliveries in flight at once.
pub const DISPATCH_CONCURRENCY: usize = 256;

/// The wired local runtime.
pub struct LocalRuntime {
    pub engine: Engine,
    pub events: Arc<SqliteQueue>,
    pub actions: Arc<SqliteQueue>,
    db: Database,
    /// Held while the runtime lives: one process per data directory.
    _lock: std::fs::File,
}

impl LocalRuntime {
    /// Opens `<data_dir>/automations.db` and the secrets key (`<data_dir>/secrets.key` unless given).
    pub fn open(
        data_dir: &Path,
        secrets_key: Option<PathBuf>,
        mut settings: Settings,
    ) -> Result<Self, String> {
        let lock_path = data_dir.join("lock");
        let lock = private_file(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            format!(
                "{}: another automations process is using this data directory",
                data_dir.display()
            )
        })?;
        settings.sole_instance = Some(crate::domain::ids::new_id());
        // One process on one file: a waiting claim may look often.
        settings.claim_poll = crate::usecases::ClaimPoll(Duration::from_millis(200));
        let db = Database::open(&data_dir.join("automations.db"))
            .map_err(|e| format!("{}: {e}", data_dir.display()))?;
        let key_path = secrets_key.unwrap_or_else(|| data_dir.join("secrets.key"));
        let key = SecretsKey::load_or_create(&key_path)?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // Retries come back through the actions queue, each one a receive: leave room for them.
        let action_receives = settings.retry.max_attempts() as u32 + EVENTS_MAX_RECEIVES;
        let events = Arc::new(SqliteQueue::new(
            db.clone(),
            clock.clone(),
            "events",
            EVENTS_VISIBILITY,
            EVENTS_MAX_RECEIVES,
        ));
        let actions = Arc::new(SqliteQueue::new(
            db.clone(),
            clock.clone(),
            "actions",
            ACTIONS_VISIBILITY,
            action_receives,
        ));
        let sender = GuardedClient::new(settings.guard.clone(), DEFAULT_TIMEOUT)
            .map_err(|e| format!("HTTP client: {e}"))?;
        let engine = Engine {
            store: Arc::new(SqliteStore::new(db.clone(), clock.clone())),
            // One process: every grant and revoke goes through this cache, so a revoked key
            // fails at once, and the events route finds keys without a database call.
            access: Arc::new(CachedKeys::new(
                SqliteAccess::new(db.clone(), clock.clone()),
                KEYS_CACHE_TTL,
            )),
            metrics: Arc::new(SqliteMetrics::new(db.clone(), clock.clone())),
            jobs: Arc::new(SqliteJobs::new(db.clone())),
            sources: Arc::new(SqliteSources::new(db.clone())),
            secrets: Arc::new(SqliteSecrets::new(db.clone(), &key, clock.clone())),
            events: events.clone(),
            actions: actions.clone(),
            sender: Arc::new(sender),
            clock,
            settings: Arc::new(settings),
        };
        Ok(Self {
            engine,
            events,
            actions,
            db,
            _lock: lock,
        })
    }

    /// Hands the messages that a killed predecessor was working on to this process's
    /// workers at once, instead of after their visibility timeout.
    pub async fn recover(&self) -> Result<(), String> {
        for queue in [&self.events, &self.actions] {
            let released = queue.release_abandoned().await.map_err(|e| e.to_string())?;
            if released > 0 {
                tracing::info!(
                    queue = queue.name(),
                    released,
                    "picked up messages of a stopped process"
                );
            }
        }
        Ok(())
    }

    /// Runs the evaluate and dispatch workers until `shutdown` turns true, then lets
    /// in-flight deliveries finish (up to 20 s).
    pub async fn run_workers(&self, shutdown: watch::Receiver<bool>) {
        let mut workers = JoinSet::new();
        workers.spawn(evaluate_worker(
            self.engine.clone(),
            self.events.clone(),
            shutdown.clone(),
        ));
        workers.spawn(checkpoint_worker(self.db.clone(), shutdown.clone()));
        workers.spawn(dispatch_worker(
            self.engine.clone(),
            self.actions.clone(),
            shutdown,
        ));
        while workers.join_next().await.is_some() {}
    }

    /// The dead letters of both queues, for `/v1/dead-letters`.
    pub fn dead_letters(&self) -> LocalDeadLetters {
        LocalDeadLetters::new(vec![self.events.clone(), self.actions.clone()])
    }
}

/// Sets a message that can never be processed aside in the dead-letter queue, with why.
async fn set_aside(queue: &SqliteQueue, message: &Received, error: &str) {
    if let Err(e) = queue.dead_letter_now(&message.receipt, error).await {
        tracing::error!(message_id = %message.message_id, error = %e, "could not set the message aside; it comes back after the visibility timeout");
    }
}

/// When a message whose processing failed comes back: soon at first, then less often, never
/// later than the queue's visibility timeout.
fn backoff(message: &Received, visibility: Duration) -> Duration {
    Duration::from_secs(1u64 << message.receive_count.min(10)).min(visibility)
}

/// Reports a message that could not be processed; it comes back after a backoff, and ends
/// in the dead-letter queue with this error once its receives run out.
async fn give_back(queue: &SqliteQueue, message: &Received, error: &str, visibility: Duration) {
    if let Err(e) = queue
        .fail(&message.receipt, error, backoff(message, visibility))
        .await
    {
        tracing::error!(message_id = %message.message_id, error = %e, "could not report the failure; the message comes back after the visibility timeout");
    }
}

/// Checkpoints the write-ahead log every second, and once more at shutdown.
async fn checkpoint_worker(db: Database, mut shutdown: watch::Receiver<bool>) {
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => false,
            _ = shutdown.changed() => true,
        };
        if let Err(e) = db.checkpoint().await {
            tracing::warn!(error = %e, "checkpoint failed; the write-ahead log keeps growing until one succeeds");
        }
        if stopping || *shutdown.borrow() {
            return;
        }
    }
}

async fn evaluate_worker(
    engine: Engine,
    queue: Arc<SqliteQueue>,
    mut shutdown: watch::Receiver<bool>,
) {
    let evaluator = Evaluator::new(engine.clone());
    while !*shutdown.borrow() {
        let received = tokio::select! {
            r = queue.receive(100, Duration::from_secs(1)) => r,
            _ = shutdown.changed() => break,
        };
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "events queue receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        let mut events = Vec::with_capacity(messages.len());
        let mut readable = Vec::with_capacity(messages.len());
        for message in messages {
            match serde_json::from_str::<Event>(&message.body) {
                Ok(event) => {
                    events.push(event);
                    readable.push(message);
                }
                Err(e) => {
                    let error = format!("not an event this version can read: {e}");
                    tracing::error!(message_id = %message.message_id, error = %error, "unreadable event message");
                    set_aside(&queue, &message, &error).await;
                }
            }
        }
        // Each event stands alone: the ones evaluated are deleted, the others come back.
        let mut done = Vec::with_capacity(readable.len());
        for ((message, event), outcome) in readable
            .iter()
            .zip(&events)
            .zip(evaluator.evaluate(&events).await)
        {
            match outcome {
                Ok(_) => done.push(message.receipt.clone()),
                Err(e) => {
                    tracing::error!(message_id = %message.message_id, event = %event.id, team = %event.team, error = %e, "evaluation failed; the event comes back");
                    give_back(&queue, message, &e.to_string(), EVENTS_VISIBILITY).await;
                }
            }
        }
        if let Err(e) = queue.delete_batch(&done).await {
            tracing::error!(error = %e, "events queue delete failed; the events will be evaluated again");
        }
    }
}

async fn dispatch_worker(
    engine: Engine,
    queue: Arc<SqliteQueue>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(DISPATCH_CONCURRENCY));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<String>();
    let deleter = tokio::spawn(delete_done(queue.clone(), done_rx));
    let mut tasks = JoinSet::new();
    while !*shutdown.borrow() {
        let free = permits.available_permits().clamp(1, 64);
        let received = tokio::select! {
            r = queue.receive(free, Duration::from_secs(1)) => r,
            _ = shutdown.changed() => break,
        };
        let messages = match received {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "actions queue receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        for message in messages {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (engine, queue, done) = (engine.clone(), queue.clone(), done_tx.clone());
            let span = tracing::info_span!("dispatch", message_id = %message.message_id);
            tasks.spawn(
                async move {
                    deliver(&engine, &queue, message, &done).await;
                    drop(permit);
                }
                .instrument(span),
            );
        }
        while tasks.try_join_next().is_some() {}
    }
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "deliveries still running at shutdown; their messages come back after the visibility timeout"
        );
    }
    drop(done_tx);
    if let Err(e) = deleter.await {
        tracing::error!(error = %e, "delete task failed");
    }
}

async fn deliver(
    engine: &Engine,
    queue: &SqliteQueue,
    message: Received,
    done: &mpsc::UnboundedSender<String>,
) {
    let action: ActionMessage = match serde_json::from_str(&message.body) {
        Ok(a) => a,
        Err(e) => {
            let error = format!("not an action message this version can read: {e}");
            tracing::error!(error = %error, "unreadable action message");
            set_aside(queue, &message, &error).await;
            return;
        }
    };
    match dispatch(engine, &action).await {
        Ok(Outcome::Done) => {
            if done.send(message.receipt).is_err() {
                tracing::warn!(
                    "delete task gone; the message comes back and is skipped as finished"
                );
            }
        }
        Ok(Outcome::RetryAfter(delay)) => {
            if let Err(e) = queue.change_visibility(&message.receipt, delay).await {
                tracing::error!(error = %e, "could not schedule the retry; it comes back after the visibility timeout");
            }
        }
        // An execution this version cannot read will not become readable by waiting.
        Err(e @ Error::Unreadable(_)) => {
            tracing::error!(error = %e, execution = %action.execution_id, "dispatch cannot read the execution");
            set_aside(queue, &message, &e.to_string()).await;
        }
        Err(e) => {
            tracing::error!(error = %e, execution = %action.execution_id, "dispatch failed; the message comes back");
            give_back(queue, &message, &e.to_string(), ACTIONS_VISIBILITY).await;
        }
    }
}

/// Deletes finished messages in batches.
async fn delete_done(queue: Arc<dyn Queue>, mut done: mpsc::UnboundedReceiver<String>) {
    let mut batch = Vec::new();
    while done.recv_many(&mut batch, 256).await > 0 {
        if let Err(e) = queue.delete_batch(&batch).await {
            tracing::error!(error = %e, "actions queue delete failed; the messages come back and are skipped as finished");
        }
        batch.clear();
    }
}
