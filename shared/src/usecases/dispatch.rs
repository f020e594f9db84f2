//! Dispatch: render the payload, resolve secrets, sign, deliver through the guarded client,
//! record the attempt, and either finish the execution or schedule the next attempt.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::evaluate::lookup;
use super::{ActionMessage, Engine, Result};
use crate::delivery::retry::{Verdict, classify};
use crate::delivery::signing::{
    standard_webhooks_key, standard_webhooks_signature, wandb_signature,
};
use crate::domain::event::format_time;
use crate::domain::execution::{Attempt, Execution, ExecutionResult, ExecutionStatus};
use crate::domain::integration::Integration;
use crate::domain::limits::{MAX_RENDERED_PAYLOAD_BYTES, truncate};
use crate::domain::template::{self, Var};
use crate::ports::{Outbound, Response, SecretValue, StoreError};

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

/// Why a response body is not kept.
pub const BODY_WITHHELD: &str =
    "not kept: the request carried team secrets, and a receiver may echo them back in any encoding";

/// A request built for an integration.
pub struct Prepared {
    pub request: Outbound,
    /// Whether a secret's value is in the request (a token header, a secret in the body).
    ///
    /// The response to such a request is never kept or shown. Redacting the values from
    /// it cannot be made safe: a receiver may echo them JSON-escaped, `\u`-escaped,
    /// URL-encoded, base64'd or re-decoded as Latin-1, and redacting whatever matches a
    /// secret tells the reader of the record which value they planted (an alias, say)
    /// equals it. Keeping nothing of what comes back depends on no secret at all. A
    /// signing secret is never sent, only the signatures made with it.
    pub carries_secrets: bool,
}

/// What is kept of a response body: nothing when no response came, nothing (saying why)
/// when the request carried secrets (see [`Prepared::carries_secrets`]), else its first
/// `max` bytes.
pub fn kept_body(carries_secrets: bool, response: &Response, max: usize) -> KeptBody {
    match (response.status, carries_secrets) {
        (None, _) => KeptBody {
            body: None,
            withheld: None,
        },
        (Some(_), true) => KeptBody {
            body: None,
            withheld: Some(BODY_WITHHELD.to_string()),
        },
        (Some(_), false) => KeptBody {
            body: Some(truncate(&response.body, max).to_string()),
            withheld: None,
        },
    }
}

/// A response body as an execution record or a test answer keeps it.
pub struct KeptBody {
    pub body: Option<String>,
    pub withheld: Option<String>,
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
    let now_ms = millis(engine);
    if let Some(not_now) = claim(engine, &mut execution, now_ms).await? {
        return Ok(not_now);
    }
    let integration = match usable_integration(engine, &execution).await? {
        Ok(integration) => integration,
        Err(reason) => return finish_without_attempt(engine, execution, reason).await,
    };
    execution.action.url = Some(integration.url.clone());
    let prepared = match prepare(
        engine,
        &integration,
        &execution.template,
        &execution.vars,
        &execution.id,
    )
    .await
    {
        Ok(p) => p,
        Err(reason) => return finish_without_attempt(engine, execution, reason).await,
    };
    let started = engine.clock.now();
    let carries_secrets = prepared.carries_secrets;
    let response = engine.sender.send(prepared.request).await;
    let outcome = conclude(
        engine,
        &mut execution,
        Sent {
            started,
            now_ms,
            carries_secrets,
            response: &response,
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

/// One attempt as it went out and came back.
struct Sent<'a> {
    started: time::OffsetDateTime,
    now_ms: i64,
    carries_secrets: bool,
    response: &'a Response,
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
    });
    let verdict = if response.refused {
        Verdict::Fail(error.clone().unwrap_or_default())
    } else {
        classify(response.status)
    };
    let outcome = match verdict {
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
        Verdict::Gone => {
            disable(engine, integration).await?;
            execution.status = ExecutionStatus::Failed;
            Outcome::Done
        }
        Verdict::Fail(reason) => {
            execution.status = ExecutionStatus::Failed;
            if let Some(attempt) = execution.attempts.last_mut() {
                attempt.error.get_or_insert(reason);
            }
            Outcome::Done
        }
    };
    if execution.status != ExecutionStatus::Pending {
        let kept = kept_body(sent.carries_secrets, response, RECORDED_BODY_BYTES);
        execution.next_attempt_at_ms = None;
        execution.result = Some(ExecutionResult {
            status_code: response.status,
            body: kept.body,
            body_withheld: kept.withheld,
            error,
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
        "webhook attempt"
    );
}

/// Renders, signs and addresses the request of a webhook integration.
pub async fn prepare(
    engine: &Engine,
    integration: &Integration,
    template: &Value,
    vars: &serde_json::Map<String, Value>,
    message_id: &str,
) -> Result<Prepared, String> {
    let in_payload = template::check(template).map_err(|e| e.to_string())?;
    let mut needed: Vec<String> = in_payload.iter().cloned().collect();
    needed.extend(integration.secrets().map(String::from));
    let mut secrets = BTreeMap::new();
    for name in needed {
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
    let payload = template::render(template, MAX_RENDERED_PAYLOAD_BYTES, &mut |var| match var {
        Var::Secret(name) => secrets.get(name).cloned().map(Value::String),
        other => lookup(vars, other),
    })
    .map_err(|e| e.to_string())?;
    let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    let mut sent_secrets = !in_payload.is_empty();
    if let Some(name) = &integration.access_token_secret
        && let Some(token) = secrets.get(name)
    {
        check_header_value(name, token)?;
        headers.push(("authorization".into(), format!("Bearer {token}")));
        sent_secrets = true;
    }
    let timestamp = engine.clock.now().unix_timestamp();
    headers.push(("webhook-id".into(), message_id.to_string()));
    headers.push(("webhook-timestamp".into(), timestamp.to_string()));
    if let Some(secret) = integration
        .signing_secret
        .as_ref()
        .and_then(|n| secrets.get(n))
    {
        headers.push(("x-wandb-signature".into(), wandb_signature(secret, &body)));
        let key = standard_webhooks_key(secret);
        headers.push((
            "webhook-signature".into(),
            standard_webhooks_signature(&key, message_id, timestamp, &body),
        ));
    }
    Ok(Prepared {
        request: Outbound {
            url: integration.url.clone(),
            headers,
            body,
        },
        carries_secrets: sent_secrets,
    })
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
        status_code: None,
        body: None,
        body_withheld: None,
        error: Some(reason),
    });
    match engine.store.update_execution(&mut execution).await {
        Ok(()) | Err(StoreError::Stale) => Ok(Outcome::Done),
        Err(e) => Err(e.into()),
    }
}

/// Disables the integration after a 410, unless it was changed to another URL meanwhile
/// (the read is fresh: a delivery can take seconds, and a user may have edited it).
async fn disable(engine: &Engine, sent: Integration) -> Result<()> {
    let Some(mut integration) = engine.store.get_integration(&sent.team, &sent.id).await? else {
        return Ok(());
    };
    if integration.url != sent.url {
        return Ok(());
    }
    tracing::warn!(integration = %integration.id, "receiver answered 410 Gone; integration disabled");
    integration.enabled = false;
    integration.disabled_reason = Some("the receiver answered 410 Gone".into());
    integration.updated_at = format_time(engine.clock.now());
    engine.store.put_integration(&integration, false).await?;
    Ok(())
}

fn millis(engine: &Engine) -> i64 {
    (engine.clock.now().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A token goes into a header: a line break or another control character there can never
/// be sent, so it fails the execution at once, naming the secret (never its value).
pub fn check_header_value(secret: &str, value: &str) -> Result<(), String> {
    if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "secret {secret} holds a line break or another control character, which an HTTP header cannot carry; set it again without one"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_with_control_characters_are_refused_by_name() {
        for bad in ["ghp_x\r\nX-Injected: 1", "tok\n", "a\u{0}b", "del\u{7f}"] {
            let err = check_header_value("GH_TOKEN", bad).unwrap_err();
            assert!(err.contains("GH_TOKEN"), "{err}");
            assert!(!err.contains(bad), "the value is never named: {err}");
        }
        check_header_value("GH_TOKEN", "ghp_abc def\tok é").unwrap();
    }
}
