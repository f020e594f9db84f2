//! Dispatch: build the action's request (secrets resolved here, the rest in
//! [`crate::actions`]), deliver it through the guarded client, record the attempt and what
//! the answer meant, and either finish the execution or schedule the next attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{ActionMessage, Engine, Result};
use crate::actions::{self, Action, Built, Context, Reading};
use crate::delivery::retry::Verdict;
use crate::domain::event::format_time;
use crate::domain::execution::{Attempt, Execution, ExecutionResult, ExecutionStatus};
use crate::domain::integration::{Destination, Integration};
use crate::domain::limits::{MAX_RECORDED_PAYLOAD_BYTES, json_len, truncate};
use crate::ports::{Enqueued, Response, SecretValue, StoreError};

pub use crate::actions::webhook::check_header_value;
pub use crate::actions::{BODY_WITHHELD, KeptBody, kept_body};

/// How long a claim on an attempt lasts: longer than one attempt can take.
pub const CLAIM: Duration = Duration::from_secs(60);

/// How much of a response body an execution record keeps.
pub const RECORDED_BODY_BYTES: usize = 1024;

/// What to do with the queue message after a dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delete the message: the execution is finished, failed, gone, or handled elsewhere.
    Done,
    /// Make the message visible again after this delay.
    RetryAfter(Duration),
}

/// How much of an attempt's error an execution record keeps.
pub const RECORDED_ERROR_BYTES: usize = 512;

/// Attempts an execution keeps; a manual retry is refused past them, so that a record
/// stays within what every store can hold.
pub const MAX_ATTEMPTS: usize = 100;

/// A request built for an execution, with the action that reads its answer.
pub struct Prepared {
    pub action: &'static dyn Action,
    pub built: Built,
}

/// Delivers the execution an action message names.
pub async fn dispatch(engine: &Engine, message: &ActionMessage) -> Result<Outcome> {
    let Some(mut execution) = engine
        .store
        .get_execution(&message.team, &message.execution_id)
        .await?
    else {
        tracing::warn!(execution = %message.execution_id, "action message for an unknown execution; dropped");
        return Ok(Outcome::Done);
    };
    if execution.status != ExecutionStatus::Pending {
        return Ok(Outcome::Done);
    }
    // A job's execution waits for its job once it is enqueued: the job's end finishes it.
    if execution.action.kind == "queue_job" && execution.action.job_id.is_some() {
        return Ok(Outcome::Done);
    }
    let now_ms = millis(engine);
    if let Some(not_now) = claim(engine, &mut execution, now_ms).await? {
        return Ok(not_now);
    }
    if execution.action.kind == "queue_job" {
        return enqueue(engine, execution).await;
    }
    let integration = match usable_integration(engine, &execution).await? {
        Ok(integration) => integration,
        Err(reason) => return finish_without_attempt(engine, execution, reason).await,
    };
    // A webhook's URL is shown even when its request cannot be built; a Slack or Teams URL
    // is a secret, shown masked once built.
    if let Destination::Webhook { url, .. } = &integration.destination {
        execution.action.url = Some(url.clone());
    }
    let prepared = match prepare(
        engine,
        &integration,
        &execution.action.kind,
        &execution.template,
        &execution.vars,
        &execution.id,
    )
    .await
    {
        Ok(p) => p,
        Err(reason) => return finish_without_attempt(engine, execution, reason).await,
    };
    record_request(&mut execution, &prepared.built);
    let started = engine.clock.now();
    let response = engine.sender.send(prepared.built.request).await;
    let reading = prepared.action.read(
        &integration,
        &response,
        prepared.built.carries_secrets,
        RECORDED_BODY_BYTES,
    );
    let outcome = conclude(
        engine,
        &mut execution,
        Sent {
            started,
            now_ms,
            response: &response,
            reading,
        },
        integration,
    )
    .await?;
    log_attempt(&execution, &response);
    match engine.store.update_execution(&mut execution).await {
        Ok(()) => Ok(outcome),
        Err(StoreError::Stale) => {
            tracing::warn!(execution = %execution.id, "execution changed during delivery; another worker owns it");
            Ok(Outcome::Done)
        }
        Err(e) => Err(e.into()),
    }
}

/// Claims the attempt before it is made, so that a duplicate message for this execution (a
/// redelivered event queues one) waits for the claim instead of sending twice. `Some` when
/// this attempt is not to be made now: its retry is not due, or another worker has it.
async fn claim(engine: &Engine, execution: &mut Execution, now_ms: i64) -> Result<Option<Outcome>> {
    let settings = &engine.settings;
    let void_claim = settings.sole_instance.is_some()
        && execution.claimed_by.is_some()
        && execution.claimed_by != settings.sole_instance;
    if let Some(due) = execution
        .next_attempt_at_ms
        .filter(|due| *due > now_ms + 50)
        && !void_claim
    {
        return Ok(Some(Outcome::RetryAfter(Duration::from_millis(
            (due - now_ms) as u64,
        ))));
    }
    execution.next_attempt_at_ms = Some(now_ms + CLAIM.as_millis() as i64);
    execution.claimed_by = Some(
        settings
            .sole_instance
            .clone()
            .unwrap_or_else(|| "dispatch".into()),
    );
    match engine.store.update_execution(execution).await {
        Ok(()) => {
            execution.claimed_by = None;
            Ok(None)
        }
        Err(StoreError::Stale) => Ok(Some(Outcome::Done)),
        Err(e) => Err(e.into()),
    }
}

/// The integration the execution delivers through, or why it cannot: gone, disabled, or
/// stored in a form this version cannot read (which waiting does not mend).
async fn usable_integration(
    engine: &Engine,
    execution: &Execution,
) -> Result<Result<Integration, String>> {
    let id = execution.action.integration.clone().unwrap_or_default();
    let found = match engine.store.get_integration(&execution.team, &id).await {
        Err(StoreError::Unreadable(bad)) => return Ok(Err(bad.to_string())),
        other => other?,
    };
    Ok(match found {
        Some(i) if i.enabled => Ok(i),
        Some(i) => {
            let reason = i
                .disabled_reason
                .unwrap_or_else(|| "it was disabled".into());
            Err(format!("integration {} is disabled: {reason}", i.name))
        }
        None => Err(format!("integration {id} no longer exists")),
    })
}

/// The request as the record shows it: its URL (masked when it is a secret) and, when
/// the execution shows none yet (a notification's is rendered here), its body.
fn record_request(execution: &mut Execution, built: &Built) {
    execution.action.url = Some(built.shown.url.clone());
    if execution.action.payload.is_none() && execution.action.payload_omitted.is_none() {
        let len = json_len(&built.shown.body);
        if len <= MAX_RECORDED_PAYLOAD_BYTES {
            execution.action.payload = Some(built.shown.body.clone());
        } else {
            execution.action.payload_omitted = Some(format!(
                "not shown: the body is {len} bytes; a record keeps bodies of up to {MAX_RECORDED_PAYLOAD_BYTES} bytes"
            ));
        }
    }
}

/// One attempt as it went out and came back, and what the answer meant.
struct Sent<'a> {
    started: time::OffsetDateTime,
    now_ms: i64,
    response: &'a Response,
    reading: Reading,
}

/// Records the attempt and what it means: finished, failed, or the next attempt scheduled.
async fn conclude(
    engine: &Engine,
    execution: &mut Execution,
    sent: Sent<'_>,
    integration: Integration,
) -> Result<Outcome> {
    let response = sent.response;
    // Errors are the client's own words (never a response's content).
    let error = response
        .error
        .as_deref()
        .map(|e| truncate(e, RECORDED_ERROR_BYTES).to_string());
    execution.attempts.push(Attempt {
        at: format_time(sent.started),
        status_code: response.status,
        error: error.clone(),
        duration_ms: response.duration.as_millis() as u64,
        outcome: Some(sent.reading.outcome().to_string()),
    });
    let mut error = error;
    let outcome = match sent.reading.verdict {
        Verdict::Delivered => {
            execution.status = ExecutionStatus::Finished;
            Outcome::Done
        }
        Verdict::Retry => {
            let attempts = execution.attempts.len() - execution.round_start;
            let delay =
                engine
                    .settings
                    .retry
                    .next_delay(attempts, response.retry_after, &mut rand::rng());
            match delay {
                Some(delay) => {
                    execution.next_attempt_at_ms = Some(sent.now_ms + delay.as_millis() as i64);
                    Outcome::RetryAfter(delay)
                }
                None => {
                    execution.status = ExecutionStatus::Failed;
                    Outcome::Done
                }
            }
        }
        Verdict::Disable(reason) => {
            let reason = truncate(&reason, RECORDED_ERROR_BYTES).to_string();
            disable(engine, integration, &reason, sent.started).await?;
            execution.status = ExecutionStatus::Failed;
            let said = format!("{reason}; the integration is disabled");
            if let Some(attempt) = execution.attempts.last_mut() {
                attempt.error.get_or_insert(said.clone());
            }
            error.get_or_insert(said);
            Outcome::Done
        }
        Verdict::Fail(reason) => {
            execution.status = ExecutionStatus::Failed;
            let reason = truncate(&reason, RECORDED_ERROR_BYTES).to_string();
            if let Some(attempt) = execution.attempts.last_mut() {
                attempt.error.get_or_insert(reason.clone());
            }
            error.get_or_insert(reason);
            Outcome::Done
        }
    };
    if execution.status != ExecutionStatus::Pending {
        let kept = sent.reading.body;
        execution.next_attempt_at_ms = None;
        execution.result = Some(ExecutionResult {
            status_code: response.status,
            body: kept.body,
            body_withheld: kept.withheld,
            error,
            ..ExecutionResult::default()
        });
    }
    Ok(outcome)
}

fn log_attempt(execution: &Execution, response: &Response) {
    tracing::info!(
        execution = %execution.id,
        automation = %execution.automation_id,
        attempt = execution.attempts.len(),
        status_code = response.status,
        duration_ms = response.duration.as_millis() as u64,
        outcome = execution.status.as_str(),
        action = %execution.action.kind,
        "delivery attempt"
    );
}

/// Builds the request of an execution's action through `integration`: the secrets it
/// needs are read here, the rest is the action's ([`crate::actions`]). Delivery, the
/// integration test and the preview all build their requests with it.
pub async fn prepare(
    engine: &Engine,
    integration: &Integration,
    kind: &str,
    template: &Value,
    vars: &serde_json::Map<String, Value>,
    message_id: &str,
) -> Result<Prepared, String> {
    let action = actions::of(kind, integration)?;
    let mut secrets = BTreeMap::new();
    for name in action.secrets(integration, template)? {
        if secrets.contains_key(&name) {
            continue;
        }
        match engine.secrets.get_secret(&integration.team, &name).await {
            Ok(Some(SecretValue(value))) => {
                secrets.insert(name, value);
            }
            Ok(None) => {
                return Err(format!(
                    "secret {name} does not exist in team {}",
                    integration.team
                ));
            }
            Err(e) => return Err(format!("secret {name} could not be read: {e}")),
        }
    }
    let built = action.build(&Context {
        integration,
        template,
        vars,
        secrets: &secrets,
        message_id,
        timestamp: engine.clock.now().unix_timestamp(),
    })?;
    Ok(Prepared { action, built })
}

/// Puts the execution's job on its queue (once per round, however often the message comes)
/// and leaves the execution pending until the job ends
/// ([`crate::usecases::jobs::finish_execution`]).
async fn enqueue(engine: &Engine, mut execution: Execution) -> Result<Outcome> {
    // The claim was made on a version without a job: no other dispatch enqueued it since.
    let now_ms = millis(engine);
    let job = match actions::job::build(&execution, now_ms) {
        Ok(job) => job,
        Err(reason) => return finish_without_attempt(engine, execution, reason).await,
    };
    match engine.jobs.enqueue(&job).await? {
        Enqueued::Created | Enqueued::Existed => {}
        Enqueued::NoQueue => {
            let reason = format!(
                "queue {} no longer exists in team {}",
                job.queue, execution.team
            );
            return finish_without_attempt(engine, execution, reason).await;
        }
    }
    tracing::info!(execution = %execution.id, job = %job.id, queue = %job.queue, "job enqueued");
    for _ in 0..8 {
        execution.action.job_id = Some(job.id.clone());
        execution.action.queue = Some(job.queue.clone());
        execution.action.payload = Some(job.overrides.clone());
        execution.attempts.push(Attempt {
            at: format_time(engine.clock.now()),
            status_code: None,
            error: None,
            duration_ms: 0,
            outcome: Some("queued".into()),
        });
        execution.next_attempt_at_ms = None;
        execution.claimed_by = None;
        match engine.store.update_execution(&mut execution).await {
            Ok(()) => return Ok(Outcome::Done),
            // The job may have ended already (an agent was quick): read it again.
            Err(StoreError::Stale) => {
                match engine
                    .store
                    .get_execution(&execution.team, &execution.id)
                    .await?
                {
                    Some(fresh)
                        if fresh.status == ExecutionStatus::Pending
                            && fresh.round_start == execution.round_start
                            && fresh.action.job_id.is_none() =>
                    {
                        execution = fresh;
                    }
                    _ => return Ok(Outcome::Done),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Stale.into())
}

async fn finish_without_attempt(
    engine: &Engine,
    mut execution: Execution,
    reason: String,
) -> Result<Outcome> {
    tracing::warn!(execution = %execution.id, reason = %reason, "execution failed before delivery");
    execution.status = ExecutionStatus::Failed;
    execution.next_attempt_at_ms = None;
    execution.result = Some(ExecutionResult {
        error: Some(reason),
        ..ExecutionResult::default()
    });
    match engine.store.update_execution(&mut execution).await {
        Ok(()) | Err(StoreError::Stale) => Ok(Outcome::Done),
        Err(e) => Err(e.into()),
    }
}

/// Disables the integration after its destination said it is gone, unless it was changed
/// since the attempt started (the read is fresh: a delivery can take seconds, and a user
/// may have fixed and re-enabled it, or pointed it elsewhere, meanwhile).
async fn disable(
    engine: &Engine,
    sent: Integration,
    reason: &str,
    started: time::OffsetDateTime,
) -> Result<()> {
    let Some(mut integration) = engine.store.get_integration(&sent.team, &sent.id).await? else {
        return Ok(());
    };
    let changed_since = time::OffsetDateTime::parse(
        &integration.updated_at,
        &time::format_description::well_known::Rfc3339,
    )
    .is_ok_and(|updated| updated >= started);
    if integration.destination != sent.destination || changed_since {
        tracing::info!(integration = %integration.id, "destination gone, but the integration changed during the attempt; left as it is");
        return Ok(());
    }
    tracing::warn!(integration = %integration.id, reason, "destination is gone; integration disabled");
    integration.enabled = false;
    integration.disabled_reason = Some(reason.to_string());
    integration.updated_at = format_time(engine.clock.now());
    engine.store.put_integration(&integration, false).await?;
    Ok(())
}

fn millis(engine: &Engine) -> i64 {
    (engine.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
}
