//! Jobs: the team's queues, and the jobs that `queue_job` executions put on them for the
//! team's agents. An agent claims a job (a lease, a conditional write), heartbeats while it
//! runs, and completes it; the job's execution then ends with the job's status, exit code
//! and the end of its output. A lease that runs out hands the job to the next claim with
//! `attempt + 1`, until its attempts are spent: then the job fails with "lease expired".
//!
//! The lease rules are [`crate::domain::job`]'s; the functions over a bare [`JobStore`]
//! ([`take_next`], [`heartbeat_job`], [`complete_job`]) are what the conformance suite
//! drives on every adapter.

use std::time::Duration;

use super::access::record;
use super::{Engine, Error, Result};
use crate::domain::Invalid;
use crate::domain::access::{Actor, Target};
use crate::domain::event::{format_millis, format_time};
use crate::domain::execution::{Attempt, ExecutionResult, ExecutionStatus};
use crate::domain::ids::job_id;
use crate::domain::job::{
    Claimable, Completion, Job, JobQueue, JobStatus, LeaseLost, LeaseRef, QueueInput,
};
use crate::ports::{JobStore, Listing, StoreError};

/// Open jobs a claim looks at in one pass.
const CLAIM_CANDIDATES: usize = 10;

/// Tries of a write that another writer raced.
const RACES: usize = 8;

/// Why a heartbeat or completion was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("job {0} does not exist")]
    NotFound(String),
    #[error(transparent)]
    Lost(#[from] LeaseLost),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<LeaseError> for Error {
    fn from(e: LeaseError) -> Self {
        match e {
            LeaseError::NotFound(id) => Error::NotFound(format!("job {id} does not exist")),
            LeaseError::Lost(lost) => Error::Conflict(lost.0),
            // Raced past every retry: try again (a 409 would read as a lost lease).
            LeaseError::Store(StoreError::Stale) => Error::Store(StoreError::Backend(
                "the job was changed by many writers at once; try again".into(),
            )),
            LeaseError::Store(e) => e.into(),
        }
    }
}

/// What one pass of a claim did: the job it leased, and the jobs whose last lease ran out,
/// which it failed (their executions are to be finished), and the store's error if one
/// ended the pass early (what it did before stands).
#[derive(Debug, Default)]
pub struct Taken {
    pub claimed: Option<Job>,
    pub expired: Vec<Job>,
    pub error: Option<StoreError>,
}

// Queues

pub async fn create_queue(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    input: QueueInput,
) -> Result<JobQueue> {
    input.validate()?;
    let queue = JobQueue {
        team: team.to_string(),
        name: input.name,
        created_at: format_time(engine.clock.now()),
    };
    engine.jobs.create_queue(&queue).await?;
    let target = Target::new("queue", &queue.name, Some(&queue.name));
    record(engine, actor, team, "queue.create", target).await;
    Ok(queue)
}

pub async fn list_queues(engine: &Engine, team: &str) -> Result<Listing<JobQueue>> {
    Ok(engine.jobs.list_queues(team).await?)
}

/// The queue, or `NotFound`.
pub async fn queue(engine: &Engine, team: &str, name: &str) -> Result<JobQueue> {
    engine
        .jobs
        .get_queue(team, name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("queue {name} does not exist in team {team}")))
}

/// Deletes an empty queue; 409 while it holds pending or running jobs.
pub async fn delete_queue(engine: &Engine, actor: &Actor, team: &str, name: &str) -> Result<()> {
    if engine.jobs.get_queue(team, name).await?.is_some() {
        expire_exhausted(engine, team, name).await?;
    }
    if !engine.jobs.delete_queue(team, name).await? {
        return Err(Error::NotFound(format!(
            "queue {name} does not exist in team {team}"
        )));
    }
    let target = Target::new("queue", name, Some(name));
    record(engine, actor, team, "queue.delete", target).await;
    Ok(())
}

pub async fn list_jobs(
    engine: &Engine,
    team: &str,
    queue_name: &str,
    status: Option<JobStatus>,
    limit: usize,
    before: Option<&str>,
) -> Result<Listing<Job>> {
    queue(engine, team, queue_name).await?;
    expire_exhausted(engine, team, queue_name).await?;
    Ok(engine
        .jobs
        .list_jobs(team, queue_name, status, limit, before)
        .await?)
}

pub async fn job(engine: &Engine, team: &str, id: &str) -> Result<Job> {
    engine
        .jobs
        .get_job(team, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("job {id} does not exist")))
}

// Claims, heartbeats, completions

/// Claims the next job of a queue for `agent`, waiting up to `wait` for one to arrive;
/// `None` when none did. Jobs found with their last lease run out are failed on the way,
/// and their executions finished.
pub async fn claim(
    engine: &Engine,
    team: &str,
    queue_name: &str,
    agent: &str,
    wait: Duration,
) -> Result<Option<Job>> {
    queue(engine, team, queue_name).await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let now_ms = now_ms(engine);
        let taken = take_next(&*engine.jobs, team, queue_name, Some(agent), now_ms).await;
        finish_expired(engine, &taken.expired).await;
        if let Some(e) = taken.error {
            return Err(e.into());
        }
        if let Some(job) = taken.claimed {
            tracing::info!(job = %job.id, queue = queue_name, agent, attempt = job.attempt, "job claimed");
            return Ok(Some(job));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        tokio::time::sleep(left.min(engine.settings.claim_poll.0)).await;
    }
}

/// One pass of a claim at `now_ms`: leases the first open job that can be taken (a job
/// another claim took first is passed over), failing on the way the ones whose last lease
/// ran out. With no `agent`, it only fails those.
pub async fn take_next(
    store: &dyn JobStore,
    team: &str,
    queue: &str,
    agent: Option<&str>,
    now_ms: i64,
) -> Taken {
    let mut taken = Taken::default();
    let candidates = match store
        .claimable_jobs(team, queue, now_ms, CLAIM_CANDIDATES)
        .await
    {
        Ok(candidates) => candidates,
        Err(e) => {
            taken.error = Some(e);
            return taken;
        }
    };
    for mut job in candidates {
        let written = match (job.claimable(now_ms), agent) {
            (Claimable::Yes, Some(agent)) => {
                job.claim(agent, now_ms);
                store.update_job(&mut job).await.map(|()| {
                    taken.claimed = Some(job);
                })
            }
            (Claimable::Exhausted, _) => {
                job.expire(now_ms);
                store.update_job(&mut job).await.map(|()| {
                    taken.expired.push(job);
                })
            }
            // Seen through an index that lags (it is leased or ended now), or not to be
            // claimed by this pass.
            _ => continue,
        };
        match written {
            Ok(()) if taken.claimed.is_some() => return taken,
            // Another writer came first: the next candidate.
            Ok(()) | Err(StoreError::Stale) => continue,
            Err(e) => {
                taken.error = Some(e);
                return taken;
            }
        }
    }
    taken
}

/// Finishes the executions of jobs whose last lease ran out. One that cannot be written
/// now is logged, and finished by a later look at the queue (a claim, a listing, a delete)
/// only if its job is still open then: the job's end is kept, and says why.
async fn finish_expired(engine: &Engine, expired: &[Job]) {
    for job in expired {
        tracing::warn!(job = %job.id, queue = %job.queue, attempts = job.attempt, "job failed: its last lease expired");
        if let Err(e) = finish_execution(engine, job).await {
            tracing::error!(job = %job.id, execution = %job.execution_id, error = %e, "the execution of a failed job could not be finished now");
        }
    }
}

/// Fails the queue's jobs whose last lease ran out, and finishes their executions: a queue
/// no agent claims from any more still ends them (a listing and a delete look too).
pub async fn expire_exhausted(engine: &Engine, team: &str, queue: &str) -> Result<()> {
    let taken = take_next(&*engine.jobs, team, queue, None, now_ms(engine)).await;
    finish_expired(engine, &taken.expired).await;
    match taken.error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Extends the job's lease, if `lease` still holds it.
pub async fn heartbeat(engine: &Engine, team: &str, id: &str, lease: &LeaseRef) -> Result<Job> {
    Ok(heartbeat_job(&*engine.jobs, team, id, lease, now_ms(engine)).await?)
}

pub async fn heartbeat_job(
    store: &dyn JobStore,
    team: &str,
    id: &str,
    lease: &LeaseRef,
    now_ms: i64,
) -> Result<Job, LeaseError> {
    for _ in 0..RACES {
        let mut job = store
            .get_job(team, id)
            .await?
            .ok_or_else(|| LeaseError::NotFound(id.to_string()))?;
        job.check_lease(lease)?;
        job.heartbeat(now_ms);
        match store.update_job(&mut job).await {
            Ok(()) => return Ok(job),
            // Changed meanwhile (another heartbeat, or a claim): look again.
            Err(StoreError::Stale) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Stale.into())
}

/// Ends the job as its agent reports, if `completion` speaks for its lease, and ends its
/// execution. A completion repeated (the agent did not hear the answer) answers the same
/// and changes nothing.
pub async fn complete(
    engine: &Engine,
    team: &str,
    id: &str,
    completion: Completion,
) -> Result<Job> {
    let status = completion.validate()?;
    let job = complete_job(&*engine.jobs, team, id, status, &completion, now_ms(engine)).await?;
    // The job's end is kept; its execution is finished now, or by the agent's next try of
    // this completion (a repeat answers as the first did, and finishes it then).
    if let Err(e) = finish_execution(engine, &job).await {
        tracing::error!(job = %job.id, execution = %job.execution_id, error = %e, "the execution of a completed job could not be finished now");
        return Err(Error::Store(StoreError::Backend(
            "the job ended, but its execution could not be updated now; send the completion again"
                .into(),
        )));
    }
    tracing::info!(job = %job.id, status = job.status.as_str(), exit_code = job.exit_code, "job completed");
    Ok(job)
}

pub async fn complete_job(
    store: &dyn JobStore,
    team: &str,
    id: &str,
    status: JobStatus,
    completion: &Completion,
    now_ms: i64,
) -> Result<Job, LeaseError> {
    let lease = completion.lease();
    for _ in 0..RACES {
        let mut job = store
            .get_job(team, id)
            .await?
            .ok_or_else(|| LeaseError::NotFound(id.to_string()))?;
        if !job.status.is_open() && job.ended_by(status, &lease) && job.error.is_none() {
            return Ok(job);
        }
        job.check_lease(&lease)?;
        job.complete(
            status,
            completion.exit_code,
            completion.output.clone(),
            now_ms,
        );
        match store.update_job(&mut job).await {
            Ok(()) => return Ok(job),
            Err(StoreError::Stale) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Stale.into())
}

/// Ends the execution of an ended job with the job's status, exit code and the end of its
/// output (once: an execution that ended already is left as it is).
pub async fn finish_execution(engine: &Engine, job: &Job) -> Result<()> {
    for _ in 0..RACES {
        let Some(mut execution) = engine
            .store
            .get_execution(&job.team, &job.execution_id)
            .await?
        else {
            tracing::warn!(job = %job.id, execution = %job.execution_id, "the execution of an ended job is gone");
            return Ok(());
        };
        // A job of an earlier round (before a manual retry) no longer speaks for it.
        let round_job = job_id(&execution.team, &execution.id, execution.round_start);
        if execution.status != ExecutionStatus::Pending || round_job != job.id {
            return Ok(());
        }
        let finished = job.status == JobStatus::Finished;
        let error = match (&job.error, job.exit_code) {
            (Some(e), _) => Some(e.clone()),
            (None, _) if finished => None,
            (None, Some(code)) => Some(format!("the job failed with exit code {code}")),
            (None, None) => Some("the job failed".to_string()),
        };
        let ended_ms = job.ended_at_ms.unwrap_or_else(|| now_ms(engine));
        execution.status = if finished {
            ExecutionStatus::Finished
        } else {
            ExecutionStatus::Failed
        };
        execution.action.job_id = Some(job.id.clone());
        execution.attempts.push(Attempt {
            at: format_millis(ended_ms),
            status_code: None,
            error: error.clone(),
            duration_ms: (ended_ms - job.enqueued_at_ms).max(0) as u64,
            outcome: Some(if finished { "finished" } else { "failed" }.to_string()),
        });
        execution.next_attempt_at_ms = None;
        execution.result = Some(ExecutionResult {
            error,
            job_id: Some(job.id.clone()),
            status: Some(job.status.as_str().to_string()),
            exit_code: job.exit_code,
            output: job.output_tail(),
            ..ExecutionResult::default()
        });
        match engine.store.update_execution(&mut execution).await {
            Ok(()) => return Ok(()),
            Err(StoreError::Stale) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Stale.into())
}

/// The queue named by an automation's `queue_job` action must exist in its team.
pub async fn check_queue(engine: &Engine, team: &str, name: &str) -> Result<()> {
    if engine.jobs.get_queue(team, name).await?.is_none() {
        return Err(Invalid::new(
            "action.queue",
            format!(
                "queue {name} does not exist in team {team}; create it with POST /v1/teams/{team}/queues"
            ),
        )
        .into());
    }
    Ok(())
}

fn now_ms(engine: &Engine) -> i64 {
    (engine.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
}
