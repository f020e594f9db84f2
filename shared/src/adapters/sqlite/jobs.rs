//! `JobStore` on SQLite: a row per queue, counting its open jobs, and a row per job, found
//! by (team, queue, status, enqueue time) for claims and listings. Adding and ending a job
//! move the count in the same transaction.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Database, DbError};
use crate::domain::job::{Job, JobQueue, JobStatus, open_jobs_conflict};
use crate::ports::{Enqueued, JobStore, Listing, StoreError, StoreResult, Unreadable};

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS job_queues (
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    open_jobs INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    PRIMARY KEY (team, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS jobs (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    status TEXT NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    lease_ms INTEGER,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (team, id)
);
CREATE INDEX IF NOT EXISTS jobs_by_queue ON jobs (team, queue, status, enqueued_ms, id);
"#;

pub struct SqliteJobs {
    db: Database,
}

impl SqliteJobs {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

fn jobs_of(rows: Vec<(String, String)>) -> Listing<Job> {
    rows.into_iter()
        .map(|(id, body)| Unreadable::decode("job", &id, &body))
        .collect()
}

/// Adds `delta` to a queue's open count; whether the queue exists.
fn count(tx: &Transaction<'_>, team: &str, queue: &str, delta: i64) -> Result<bool, DbError> {
    let changed = tx
        .prepare_cached(
            "UPDATE job_queues SET open_jobs = open_jobs + ?3 WHERE team = ?1 AND name = ?2",
        )?
        .execute(params![team, queue, delta])?;
    Ok(changed == 1)
}

#[async_trait]
impl JobStore for SqliteJobs {
    async fn create_queue(&self, queue: &JobQueue) -> StoreResult<()> {
        let body = to_json(queue)?;
        let (team, name) = (queue.team.clone(), queue.name.clone());
        let created = self
            .db
            .call(move |c| {
                Ok(c.prepare_cached(
                    "INSERT INTO job_queues (team, name, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![team, name, body])?)
            })
            .await?;
        if created == 0 {
            return Err(StoreError::Conflict(format!(
                "a queue named {} exists in this team",
                queue.name
            )));
        }
        Ok(())
    }

    async fn get_queue(&self, team: &str, name: &str) -> StoreResult<Option<JobQueue>> {
        let sql = "SELECT body FROM job_queues WHERE team = ?1 AND name = ?2";
        self.db.get_body("queue", sql, team, name).await
    }

    async fn list_queues(&self, team: &str) -> StoreResult<Listing<JobQueue>> {
        let team = team.to_string();
        let rows: Vec<(String, String)> = self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT name, body FROM job_queues WHERE team = ?1 ORDER BY name",
                )?;
                let rows = stmt.query_map([&team], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, body)| Unreadable::decode("queue", &name, &body))
            .collect())
    }

    async fn delete_queue(&self, team: &str, name: &str) -> StoreResult<bool> {
        let (team, name) = (team.to_string(), name.to_string());
        let found: Option<i64> = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let open: Option<i64> = tx
                    .prepare_cached(
                        "SELECT open_jobs FROM job_queues WHERE team = ?1 AND name = ?2",
                    )?
                    .query_row([&team, &name], |r| r.get(0))
                    .optional()?;
                if open == Some(0) {
                    tx.execute(
                        "DELETE FROM job_queues WHERE team = ?1 AND name = ?2",
                        [&team, &name],
                    )?;
                }
                tx.commit()?;
                Ok(open)
            })
            .await?;
        match found {
            None => Ok(false),
            Some(0) => Ok(true),
            Some(open) => Err(StoreError::Conflict(open_jobs_conflict(open))),
        }
    }

    async fn enqueue(&self, job: &Job) -> StoreResult<Enqueued> {
        let mut stored = job.clone();
        stored.version = 1;
        let body = to_json(&stored)?;
        let job = job.clone();
        Ok(self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO jobs (team, id, queue, status, enqueued_ms, lease_ms, version, body)
                         SELECT ?1, ?2, ?3, ?4, ?5, NULL, 1, ?6
                         WHERE EXISTS (SELECT 1 FROM job_queues WHERE team = ?1 AND name = ?3)
                         ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![
                        job.team,
                        job.id,
                        job.queue,
                        job.status.as_str(),
                        job.enqueued_at_ms,
                        body
                    ])?;
                let outcome = if inserted == 1 {
                    count(&tx, &job.team, &job.queue, 1)?;
                    Enqueued::Created
                } else {
                    let exists: Option<i64> = tx
                        .prepare_cached("SELECT 1 FROM jobs WHERE team = ?1 AND id = ?2")?
                        .query_row([&job.team, &job.id], |r| r.get(0))
                        .optional()?;
                    if exists.is_some() {
                        Enqueued::Existed
                    } else {
                        Enqueued::NoQueue
                    }
                };
                tx.commit()?;
                Ok(outcome)
            })
            .await?)
    }

    async fn get_job(&self, team: &str, id: &str) -> StoreResult<Option<Job>> {
        let sql = "SELECT body FROM jobs WHERE team = ?1 AND id = ?2";
        self.db.get_body("job", sql, team, id).await
    }

    async fn claimable_jobs(
        &self,
        team: &str,
        queue: &str,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        let (team_name, queue) = (team.to_string(), queue.to_string());
        let rows: Vec<(String, String)> = self
            .db
            .call(move |c| {
                let mut rows = Vec::new();
                let mut expired = c.prepare_cached(
                    "SELECT id, body FROM jobs WHERE team = ?1 AND queue = ?2 AND status = 'RUNNING'
                     AND lease_ms <= ?3 ORDER BY lease_ms, id LIMIT ?4",
                )?;
                for row in expired
                    .query_map(params![team_name, queue, now_ms, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?
                {
                    rows.push(row?);
                }
                let left = limit.saturating_sub(rows.len()) as i64;
                let mut pending = c.prepare_cached(
                    "SELECT id, body FROM jobs WHERE team = ?1 AND queue = ?2 AND status = 'PENDING'
                     ORDER BY enqueued_ms, id LIMIT ?3",
                )?;
                for row in pending.query_map(params![team_name, queue, left], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })? {
                    rows.push(row?);
                }
                Ok(rows)
            })
            .await?;
        Ok(jobs_of(rows).into_items(team))
    }

    async fn update_job(&self, job: &mut Job) -> StoreResult<()> {
        let expected = job.version;
        let mut next = job.clone();
        next.version = expected + 1;
        let body = to_json(&next)?;
        let updated = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let changed = tx
                    .prepare_cached(
                        "UPDATE jobs SET status = ?3, lease_ms = ?4, version = ?5, body = ?6
                         WHERE team = ?1 AND id = ?2 AND version = ?7
                         AND status IN ('PENDING', 'RUNNING')",
                    )?
                    .execute(params![
                        next.team,
                        next.id,
                        next.status.as_str(),
                        next.lease_expires_at_ms,
                        next.version as i64,
                        body,
                        expected as i64
                    ])?;
                if changed == 1 && !next.status.is_open() {
                    count(&tx, &next.team, &next.queue, -1)?;
                }
                tx.commit()?;
                Ok(changed)
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::Stale);
        }
        job.version = expected + 1;
        Ok(())
    }

    async fn list_jobs(
        &self,
        team: &str,
        queue: &str,
        status: Option<JobStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Job>> {
        let (team, queue) = (team.to_string(), queue.to_string());
        let status = status.map(JobStatus::as_str);
        let before = before.map(str::to_string);
        let rows: Vec<(String, String)> = self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, body FROM jobs WHERE team = ?1 AND queue = ?2
                     AND (?3 IS NULL OR status = ?3)
                     AND (?4 IS NULL OR (enqueued_ms, id) <
                          (SELECT enqueued_ms, id FROM jobs WHERE team = ?1 AND id = ?4))
                     ORDER BY enqueued_ms DESC, id DESC LIMIT ?5",
                )?;
                let rows = stmt
                    .query_map(params![team, queue, status, before, limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?))
                    })?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        Ok(jobs_of(rows))
    }
}
