//! The local runtime: the four use cases in one process on one SQLite file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::adapters::sqlite::{Database, SecretsKey, SqliteQueue, SqliteSecrets, SqliteStore};
use crate::delivery::client::{DEFAULT_TIMEOUT, GuardedClient};
use crate::domain::event::Event;
use crate::ports::{Clock, Queue, Received, SystemClock};
use crate::usecases::dispatch::{Outcome, dispatch};
use crate::usecases::evaluate::Evaluator;
use crate::usecases::{ActionMessage, Engine, Settings};

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
        let lock = std::fs::File::create(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        lock.try_lock().map_err(|_| {
            format!(
                "{}: another automations process is using this data directory",
                data_dir.display()
            )
        })?;
        settings.sole_instance = Some(crate::domain::ids::new_id());
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
        workers.spawn(evaluate_worker(self.engine.clone(), shutdown.clone()));
        workers.spawn(checkpoint_worker(self.db.clone(), shutdown.clone()));
        workers.spawn(dispatch_worker(self.engine.clone(), shutdown));
        while workers.join_next().await.is_some() {}
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

async fn evaluate_worker(engine: Engine, mut shutdown: watch::Receiver<bool>) {
    let evaluator = Evaluator::new(engine.clone());
    while !*shutdown.borrow() {
        let received = tokio::select! {
            r = engine.events.receive(100, Duration::from_secs(1)) => r,
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
        let mut receipts = Vec::with_capacity(messages.len());
        for message in &messages {
            match serde_json::from_str::<Event>(&message.body) {
                Ok(event) => {
                    events.push(event);
                    receipts.push(message.receipt.clone());
                }
                // Left in the queue: it dead-letters after its receives run out.
                Err(e) => {
                    tracing::error!(message_id = %message.message_id, error = %e, "unreadable event message")
                }
            }
        }
        match evaluator.evaluate(&events).await {
            Ok(_) => {
                if let Err(e) = engine.events.delete_batch(&receipts).await {
                    tracing::error!(error = %e, "events queue delete failed; the events will be evaluated again");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, events = events.len(), "evaluation failed; the events come back after the visibility timeout")
            }
        }
    }
}

async fn dispatch_worker(engine: Engine, mut shutdown: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(DISPATCH_CONCURRENCY));
    let (done_tx, done_rx) = mpsc::unbounded_channel::<String>();
    let deleter = tokio::spawn(delete_done(engine.actions.clone(), done_rx));
    let mut tasks = JoinSet::new();
    while !*shutdown.borrow() {
        let free = permits.available_permits().clamp(1, 64);
        let received = tokio::select! {
            r = engine.actions.receive(free, Duration::from_secs(1)) => r,
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
            let (engine, done) = (engine.clone(), done_tx.clone());
            let span = tracing::info_span!("dispatch", message_id = %message.message_id);
            tasks.spawn(
                async move {
                    deliver(&engine, message, &done).await;
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

async fn deliver(engine: &Engine, message: Received, done: &mpsc::UnboundedSender<String>) {
    let action: ActionMessage = match serde_json::from_str(&message.body) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "unreadable action message");
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
            if let Err(e) = engine
                .actions
                .change_visibility(&message.receipt, delay)
                .await
            {
                tracing::error!(error = %e, "could not schedule the retry; it comes back after the visibility timeout");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, execution = %action.execution_id, "dispatch failed; the message comes back after the visibility timeout")
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
