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
use crate::ports::{Clock, Queue, QueueError, Received};

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
                        "UPDATE queue_messages SET queue = ?2, visible_at = ?3, receive_count = 0, receipt = NULL, leased = 0
                         WHERE id = ?1",
                    )?;
                    let mut lease = tx.prepare_cached(
                        "UPDATE queue_messages SET visible_at = ?2, receive_count = ?3, receipt = ?4, leased = 1 WHERE id = ?1",
                    )?;
                    for (id, body, count) in rows {
                        if count >= max_receives {
                            tracing::warn!(queue = %queue, message_id = id, receives = count, "message moved to the dead-letter queue");
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
