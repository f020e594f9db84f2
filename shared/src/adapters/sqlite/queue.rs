//! `Queue` on SQLite with SQS semantics: a received message is invisible for the queue's
//! visibility timeout, comes back with a higher receive count if not deleted, and moves to
//! the dead-letter queue when it would be received more than `max_receives` times.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use rusqlite::params;
use tokio::sync::Notify;

use super::{Database, DbError, unix_ms};
use crate::domain::event::format_millis;
use crate::domain::limits::truncate;
use crate::ports::{Clock, DeadLetter, DeadLetters, Queue, QueueError, Received};

/// How much of a receiver's error a message keeps.
const MAX_ERROR_BYTES: usize = 2048;

/// How often an idle receiver looks again when nothing wakes it (delayed messages, other processes).
const IDLE_POLL: Duration = Duration::from_millis(250);

pub struct SqliteQueue {
    db: Database,
    clock: Arc<dyn Clock>,
    name: String,
    dead_letter: String,
    visibility: Duration,
    max_receives: u32,
    notify: Arc<Notify>,
}

impl SqliteQueue {
    /// A queue named `name`, with `{name}-dlq` as its dead-letter queue.
    pub fn new(
        db: Database,
        clock: Arc<dyn Clock>,
        name: &str,
        visibility: Duration,
        max_receives: u32,
    ) -> Self {
        Self {
            db,
            clock,
            name: name.to_string(),
            dead_letter: format!("{name}-dlq"),
            visibility,
            max_receives,
            notify: Arc::new(Notify::new()),
        }
    }

    /// The dead-letter queue of this queue (never dead-letters itself).
    pub fn dead_letter_queue(&self) -> SqliteQueue {
        Self {
            db: self.db.clone(),
            clock: self.clock.clone(),
            name: self.dead_letter.clone(),
            dead_letter: self.dead_letter.clone(),
            visibility: self.visibility,
            max_receives: u32::MAX,
            notify: Arc::new(Notify::new()),
        }
    }

    /// Makes the messages that a receiver held when its process died visible again now,
    /// keeping the ones that wait for a retry delay. Only for a process that owns the
    /// database alone (the local runtime holds a lock on its data directory).
    pub async fn release_abandoned(&self) -> Result<u64, QueueError> {
        let (name, now) = (self.name.clone(), unix_ms(self.clock.now()));
        Ok(self
            .db
            .call(move |c| {
                Ok(c.execute(
                    "UPDATE queue_messages SET visible_at = MIN(visible_at, ?2), leased = 0 WHERE queue = ?1 AND leased = 1",
                    params![name, now],
                )? as u64)
            })
            .await?)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The consumer could not process a received message: it comes back after `retry_in`,
    /// with `error` kept as its last error (shown if it ends in the dead-letter queue).
    pub async fn fail(
        &self,
        receipt: &str,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), QueueError> {
        let id = message_id(receipt)?;
        let (receipt, queue) = (receipt.to_string(), self.name.clone());
        let error = truncate(error, MAX_ERROR_BYTES).to_string();
        let visible_at = unix_ms(self.clock.now()) + retry_in.as_millis() as i64;
        self.db
            .call(move |c| {
                Ok(c.execute(
                    "UPDATE queue_messages SET visible_at = ?3, leased = 0, last_error = ?5
                     WHERE id = ?1 AND receipt = ?2 AND queue = ?4",
                    params![id, receipt, visible_at, queue, error],
                )?)
            })
            .await?;
        Ok(())
    }

    /// Sets a received message aside in the dead-letter queue at once, with why: for one
    /// that can never be processed (it cannot even be read), so that it waits for the
    /// operator instead of coming back.
    pub async fn dead_letter_now(&self, receipt: &str, error: &str) -> Result<(), QueueError> {
        let id = message_id(receipt)?;
        let (receipt, queue, dlq) = (
            receipt.to_string(),
            self.name.clone(),
            self.dead_letter.clone(),
        );
        let error = truncate(error, MAX_ERROR_BYTES).to_string();
        let now = unix_ms(self.clock.now());
        self.db
            .call(move |c| {
                Ok(c.execute(
                    "UPDATE queue_messages SET queue = ?4, visible_at = ?5, receipt = NULL, leased = 0,
                     last_error = ?6, dead_at = ?5 WHERE id = ?1 AND receipt = ?2 AND queue = ?3",
                    params![id, receipt, queue, dlq, now, error],
                )?)
            })
            .await?;
        tracing::warn!(queue = %self.name, message_id = id, "message set aside in the dead-letter queue; see GET /v1/dead-letters");
        Ok(())
    }

    /// This queue's dead letters, newest first, older than the message `before`.
    pub async fn dead_letters(
        &self,
        limit: usize,
        before: Option<i64>,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        let (dlq, source) = (self.dead_letter.clone(), self.name.clone());
        Ok(self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, body, receive_count, last_error, sent_at, dead_at FROM queue_messages
                     WHERE queue = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![dlq, before, limit as i64], |r| {
                    Ok(DeadLetter {
                        id: r.get::<_, i64>(0)?.to_string(),
                        queue: source.clone(),
                        body: r.get(1)?,
                        receive_count: r.get(2)?,
                        last_error: r.get(3)?,
                        sent_at: format_millis(r.get(4)?),
                        dead_lettered_at: format_millis(r.get::<_, Option<i64>>(5)?.unwrap_or_default()),
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?)
    }

    /// Puts this queue's dead letters (those of `ids`, or all) back on it as new messages.
    pub async fn redrive(&self, ids: Option<Vec<i64>>) -> Result<Vec<String>, QueueError> {
        let (dlq, queue) = (self.dead_letter.clone(), self.name.clone());
        let now = unix_ms(self.clock.now());
        let moved = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let ids: Vec<i64> = match ids {
                    Some(ids) => ids,
                    None => tx
                        .prepare_cached("SELECT id FROM queue_messages WHERE queue = ?1 ORDER BY id")?
                        .query_map([&dlq], |r| r.get(0))?
                        .collect::<Result<_, _>>()?,
                };
                let mut moved = Vec::new();
                {
                    let mut back = tx.prepare_cached(
                        "UPDATE queue_messages SET queue = ?2, visible_at = ?3, receive_count = 0, receipt = NULL,
                         leased = 0, last_error = NULL, dead_at = NULL WHERE id = ?1 AND queue = ?4",
                    )?;
                    for id in ids {
                        if back.execute(params![id, queue, now, dlq])? > 0 {
                            moved.push(id.to_string());
                        }
                    }
                }
                tx.commit()?;
                Ok(moved)
            })
            .await?;
        if !moved.is_empty() {
            tracing::info!(queue = %self.name, count = moved.len(), "dead letters put back on their queue");
            self.notify.notify_waiters();
        }
        Ok(moved)
    }

    async fn take(&self, max: usize) -> Result<Vec<Received>, DbError> {
        let now = unix_ms(self.clock.now());
        let (queue, dlq) = (self.name.clone(), self.dead_letter.clone());
        let invisible_until = now + self.visibility.as_millis() as i64;
        let max_receives = i64::from(self.max_receives);
        let salt: u64 = rand::rng().random();
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                let mut out = Vec::new();
                {
                    let mut select = tx.prepare_cached(
                        "SELECT id, body, receive_count FROM queue_messages
                         WHERE queue = ?1 AND visible_at <= ?2 ORDER BY visible_at, id LIMIT ?3",
                    )?;
                    let rows = select
                        .query_map(params![queue, now, max as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?)))?
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut to_dlq = tx.prepare_cached(
                        "UPDATE queue_messages SET queue = ?2, visible_at = ?3, receipt = NULL, leased = 0, dead_at = ?3
                         WHERE id = ?1",
                    )?;
                    let mut lease = tx.prepare_cached(
                        "UPDATE queue_messages SET visible_at = ?2, receive_count = ?3, receipt = ?4, leased = 1 WHERE id = ?1",
                    )?;
                    for (id, body, count) in rows {
                        if count >= max_receives {
                            tracing::warn!(queue = %queue, message_id = id, receives = count, "message moved to the dead-letter queue; see GET /v1/dead-letters");
                            to_dlq.execute(params![id, dlq, now])?;
                            continue;
                        }
                        let receipt = format!("{id}:{salt:x}{count}");
                        lease.execute(params![id, invisible_until, count + 1, receipt])?;
                        out.push(Received {
                            message_id: id.to_string(),
                            receipt,
                            body,
                            receive_count: (count + 1) as u32,
                        });
                    }
                }
                tx.commit()?;
                Ok(out)
            })
            .await
    }
}

fn message_id(receipt: &str) -> Result<i64, QueueError> {
    receipt
        .split_once(':')
        .and_then(|(id, _)| id.parse().ok())
        .ok_or_else(|| QueueError(format!("not a receipt of this queue: {receipt:?}")))
}

#[async_trait]
impl Queue for SqliteQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let now = unix_ms(self.clock.now());
        let queue = self.name.clone();
        let bodies = bodies.to_vec();
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                {
                    let mut insert = tx.prepare_cached(
                        "INSERT INTO queue_messages (queue, body, visible_at, sent_at) VALUES (?1, ?2, ?3, ?3)",
                    )?;
                    for body in &bodies {
                        insert.execute(params![queue, body, now])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.take(max.max(1)).await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let nap = (deadline - now).min(IDLE_POLL);
            // Woken by a send in this process, or by the poll for delayed messages.
            let _woken = tokio::time::timeout(nap, notified).await;
        }
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<(), QueueError> {
        let pairs = receipts
            .iter()
            .map(|r| message_id(r).map(|id| (id, r.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        // Scoped to this queue: a receipt of another queue (or of the dead-letter queue) is
        // not one of ours.
        let queue = self.name.clone();
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                {
                    let mut delete = tx.prepare_cached(
                        "DELETE FROM queue_messages WHERE id = ?1 AND receipt = ?2 AND queue = ?3",
                    )?;
                    for (id, receipt) in &pairs {
                        delete.execute(params![id, receipt, queue])?;
                    }
                }
                tx.commit()?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        let id = message_id(receipt)?;
        let receipt = receipt.to_string();
        let visible_at = unix_ms(self.clock.now()) + delay.as_millis() as i64;
        let queue = self.name.clone();
        self.db
            .call(move |c| {
                Ok(c.execute(
                    "UPDATE queue_messages SET visible_at = ?3, leased = 0 WHERE id = ?1 AND receipt = ?2 AND queue = ?4",
                    params![id, receipt, visible_at, queue],
                )?)
            })
            .await?;
        Ok(())
    }
}

/// The dead letters of the local runtime's queues, behind the [`DeadLetters`] port.
pub struct LocalDeadLetters {
    queues: Vec<Arc<SqliteQueue>>,
}

impl LocalDeadLetters {
    /// Serves the dead letters of `queues` (the ones the workers receive from, so that a
    /// redrive wakes them).
    pub fn new(queues: Vec<Arc<SqliteQueue>>) -> Self {
        Self { queues }
    }

    fn chosen(&self, queue: Option<&str>) -> impl Iterator<Item = &Arc<SqliteQueue>> {
        self.queues
            .iter()
            .filter(move |q| queue.is_none_or(|name| q.name() == name))
    }
}

#[async_trait]
impl DeadLetters for LocalDeadLetters {
    fn queues(&self) -> Vec<String> {
        self.queues.iter().map(|q| q.name().to_string()).collect()
    }

    async fn list_dead_letters(
        &self,
        queue: Option<&str>,
        limit: usize,
        before: Option<&str>,
    ) -> Result<Vec<DeadLetter>, QueueError> {
        // Ids are message ids, one sequence for all queues: pages can span them.
        let before = match before.map(str::parse::<i64>) {
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return Ok(Vec::new()),
            None => None,
        };
        let mut letters = Vec::new();
        for q in self.chosen(queue) {
            letters.extend(q.dead_letters(limit, before).await?);
        }
        letters.sort_by_key(|l| std::cmp::Reverse(l.id.parse::<i64>().unwrap_or_default()));
        letters.truncate(limit);
        Ok(letters)
    }

    async fn redrive(
        &self,
        queue: Option<&str>,
        ids: Option<&[String]>,
    ) -> Result<Vec<String>, QueueError> {
        let ids: Option<Vec<i64>> =
            ids.map(|ids| ids.iter().filter_map(|id| id.parse().ok()).collect());
        let mut moved = Vec::new();
        for q in self.chosen(queue) {
            moved.extend(q.redrive(ids.clone()).await?);
        }
        Ok(moved)
    }
}
