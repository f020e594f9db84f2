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

/// A request built for an integration, with the secret values it used (to redact them).
pub struct Prepared {
    pub request: Outbound,
    pub secret_values: Vec<String>,
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
    let settings = &engine.settings;
    let void_claim = settings.sole_instance.is_some()
        && execution.claimed_by.is_some()
        && execution.claimed_by != settings.sole_instance;
    if let Some(due) = execution
        .next_attempt_at_ms
        .filter(|due| *due > now_ms + 50)
        && !void_claim
    {
        return Ok(Outcome::RetryAfter(Duration::from_millis(
            (due - now_ms) as u64,
        )));
    }
    // Claim the attempt before making it: a duplicate message for this execution (a
    // redelivered event queues one) now waits for the claim instead of sending twice.
    execution.next_attempt_at_ms = Some(now_ms + CLAIM.as_millis() as i64);
    execution.claimed_by = Some(
        settings
            .sole_instance
            .clone()
            .unwrap_or_else(|| "dispatch".into()),
    );
    match engine.store.update_execution(&mut execution).await {
        Ok(()) => execution.claimed_by = None,
        Err(StoreError::Stale) => return Ok(Outcome::Done),
        Err(e) => return Err(e.into()),
    }
    let integration_id = execution.action.integration.clone().unwrap_or_default();
    let integration = match engine
        .store
        .get_integration(&execution.team, &integration_id)
        .await?
    {
        Some(i) if i.enabled => i,
        Some(i) => {
            let reason = i
                .disabled_reason
                .unwrap_or_else(|| "it was disabled".into());
            return finish_without_attempt(
                engine,
                execution,
                format!("integration {} is disabled: {reason}", i.name),
            )
            .await;
        }
        None => {
            return finish_without_attempt(
                engine,
                execution,
                format!("integration {integration_id} no longer exists"),
            )
            .await;
        }
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
    let response = engine.sender.send(prepared.request).await;
    let secrets = &prepared.secret_values;
    let error = response.error.as_deref().map(|e| redact(e, secrets, false));
    execution.attempts.push(Attempt {
        at: format_time(started),
        status_code: response.status,
        error: error.clone(),
        duration_ms: response.duration.as_millis() as u64,
    });
    let verdict = if response.refused {
        Verdict::Fail(error.clone().unwrap_or_default())
    } else {
        classify(response.status)
    };
    let result = ExecutionResult {
        status_code: response.status,
        body: response.status.map(|_| {
            let body = redact(&response.body, secrets, response.truncated);
            truncate(&body, RECORDED_BODY_BYTES).to_string()
        }),
        error: error.clone(),
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
                    execution.next_attempt_at_ms = Some(now_ms + delay.as_millis() as i64);
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
        execution.next_attempt_at_ms = None;
        execution.result = Some(result);
    }
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
    let mut needed: Vec<String> = template::check(template)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
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
    let payload = template::render(template, &mut |var| match var {
        Var::Secret(name) => secrets.get(name).cloned().map(Value::String),
        other => lookup(vars, other),
    });
    let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    if let Some(token) = integration
        .access_token_secret
        .as_ref()
        .and_then(|n| secrets.get(n))
    {
        headers.push(("authorization".into(), format!("Bearer {token}")));
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
        secret_values: secrets.into_values().filter(|v| !v.is_empty()).collect(),
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

/// Replaces every secret value in `text` with `***`, longest first so that a secret inside
/// another leaves nothing behind. When `cut` (the text was read up to a limit and may end
/// inside a secret), a tail that begins a secret is masked too.
pub fn redact(text: &str, secrets: &[String], cut: bool) -> String {
    let mut secrets: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = secrets
        .iter()
        .fold(text.to_string(), |acc, s| acc.replace(s, "***"));
    if cut && let Some(start) = secrets.iter().filter_map(|s| partial_tail(&out, s)).min() {
        out.truncate(start);
        out.push_str("***");
    }
    out
}

/// Where the longest tail of `text` that is a proper prefix of `secret` starts.
fn partial_tail(text: &str, secret: &str) -> Option<usize> {
    (1..secret.len()).rev().find_map(|k| {
        let start = text.len().checked_sub(k)?;
        let matches = text.is_char_boundary(start)
            && secret.is_char_boundary(k)
            && text[start..] == secret[..k];
        matches.then_some(start)
    })
}

pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_every_secret_occurrence() {
        let secrets = ["abc123".to_string(), "xyz".to_string()];
        let out = redact("token=abc123 again abc123 and xyz", &secrets, false);
        assert_eq!(out, "token=*** again *** and ***");
    }

    #[test]
    fn redact_replaces_longer_secrets_first() {
        let secrets = ["tok".to_string(), "tok-and-more".to_string()];
        assert_eq!(redact("x tok-and-more y", &secrets, false), "x *** y");
    }

    #[test]
    fn redact_masks_a_secret_cut_at_the_end_of_a_truncated_body() {
        let secrets = ["ghp_0123456789".to_string()];
        assert_eq!(
            redact("echo: Bearer ghp_0123", &secrets, true),
            "echo: Bearer ***"
        );
        assert_eq!(
            redact("echo: Bearer ghp_0123", &secrets, false),
            "echo: Bearer ghp_0123"
        );
        assert_eq!(redact("nothing to hide", &secrets, true), "nothing to hide");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
