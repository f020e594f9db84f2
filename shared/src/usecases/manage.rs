//! Manage: teams, automations, integrations, secrets and executions.

use serde_json::{Map, Value, json};

use super::access::record;
use super::dispatch::{MAX_ATTEMPTS, check_header_value, prepare};
use super::{ActionMessage, Engine, Error, Result};
use crate::delivery::client::MAX_RESPONSE_BYTES;
use crate::domain::access::{Actor, Target};
use crate::domain::automation::{Automation, AutomationInput, References};
use crate::domain::event::format_time;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::domain::ids::new_id;
use crate::domain::integration::{Destination, Integration, IntegrationInput, ValidIntegration};
use crate::domain::limits::{MAX_TEMPLATE_BYTES, check_json};
use crate::domain::template::is_secret_name;
use crate::domain::{Invalid, from_json};
use crate::ports::{QueueError, SecretInfo, SecretValue, Team};

pub use crate::domain::limits::MAX_SECRET_BYTES;

pub async fn create_team(engine: &Engine, actor: &Actor, name: &str) -> Result<Team> {
    check_team_name(name)?;
    let team = Team {
        name: name.to_string(),
        created_at: now(engine),
    };
    engine.store.create_team(&team).await?;
    let target = Target::new("team", name, Some(name));
    record(engine, actor, name, "team.create", target).await;
    Ok(team)
}

pub fn check_team_name(name: &str) -> Result<(), Invalid> {
    let ok = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "name",
            "a team name is 1 to 63 lowercase letters, digits or '-', not starting with '-'",
        ))
    }
}

/// The team, or `NotFound`.
pub async fn team(engine: &Engine, name: &str) -> Result<Team> {
    engine
        .store
        .get_team(name)
        .await?
        .ok_or_else(|| Error::NotFound(format!("team {name} does not exist")))
}

// Automations

pub async fn create_automation(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    input: AutomationInput,
) -> Result<Automation> {
    check_references(engine, team, &input).await?;
    let at = now(engine);
    let automation = Automation {
        id: new_id(),
        team: team.to_string(),
        spec: input,
        created_at: at.clone(),
        updated_at: at,
    };
    engine.store.put_automation(&automation, true).await?;
    audit_automation(engine, actor, &automation, "automation.create").await;
    Ok(automation)
}

pub async fn get_automation(engine: &Engine, team: &str, id: &str) -> Result<Automation> {
    engine
        .store
        .get_automation(team, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("automation {id} does not exist")))
}

/// Replaces an automation's spec (PUT).
pub async fn replace_automation(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    id: &str,
    input: AutomationInput,
) -> Result<Automation> {
    let mut automation = get_automation(engine, team, id).await?;
    check_references(engine, team, &input).await?;
    automation.spec = input;
    automation.updated_at = now(engine);
    engine.store.put_automation(&automation, false).await?;
    audit_automation(engine, actor, &automation, "automation.update").await;
    Ok(automation)
}

/// Merges top-level fields into the stored spec (PATCH), then validates the result whole.
pub async fn patch_automation(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    id: &str,
    patch: Map<String, Value>,
) -> Result<Automation> {
    let automation = get_automation(engine, team, id).await?;
    let mut merged = match serde_json::to_value(&automation.spec) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    merged.extend(patch);
    let input: AutomationInput = from_json(Value::Object(merged))?;
    replace_automation(engine, actor, team, id, input).await
}

pub async fn delete_automation(engine: &Engine, actor: &Actor, team: &str, id: &str) -> Result<()> {
    // Read first for the trail's name; one that cannot be read can still be deleted.
    let name = match engine.store.get_automation(team, id).await {
        Ok(found) => found.map(|a| a.spec.name),
        Err(crate::ports::StoreError::Unreadable(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if !engine.store.delete_automation(team, id).await? {
        return Err(Error::NotFound(format!("automation {id} does not exist")));
    }
    let target = Target::new("automation", id, name.as_deref());
    record(engine, actor, team, "automation.delete", target).await;
    Ok(())
}

async fn audit_automation(engine: &Engine, actor: &Actor, automation: &Automation, action: &str) {
    let target = Target::new("automation", &automation.id, Some(&automation.spec.name));
    record(engine, actor, &automation.team, action, target).await;
}

async fn audit_integration(
    engine: &Engine,
    actor: &Actor,
    integration: &Integration,
    action: &str,
) {
    let target = Target::new("integration", &integration.id, Some(&integration.name));
    record(engine, actor, &integration.team, action, target).await;
}

/// Validates an automation and checks what it refers to: its integration exists and can
/// carry its action, its queue and its secrets exist.
pub async fn check_references(engine: &Engine, team: &str, input: &AutomationInput) -> Result<()> {
    let refs = input.validate()?;
    if let Some(id) = &refs.integration {
        let Some(integration) = engine.store.get_integration(team, id).await? else {
            return Err(Invalid::new(
                "action.integration",
                format!("integration {id} does not exist in team {team}"),
            )
            .into());
        };
        check_integration_fits(&refs, &integration.name, &integration.destination)?;
    }
    if let Some(queue) = &refs.queue {
        super::jobs::check_queue(engine, team, queue).await?;
    }
    check_secrets_exist(engine, team, &refs).await
}

/// The automation's action can deliver through this integration: a notification through a
/// Slack or Teams one, a webhook action through a webhook one.
pub fn check_integration_fits(
    refs: &References,
    name: &str,
    destination: &Destination,
) -> Result<(), Invalid> {
    if refs.notifies == destination.takes_notifications() {
        return Ok(());
    }
    let wanted = if refs.notifies {
        "a notification goes to a slack or teams integration"
    } else {
        "a webhook action delivers through a webhook integration"
    };
    Err(Invalid::new(
        "action.integration",
        format!(
            "integration {name} is a {} integration; {wanted}",
            destination.kind()
        ),
    ))
}

/// The secrets the automation's templates use exist in the team.
pub async fn check_secrets_exist(engine: &Engine, team: &str, refs: &References) -> Result<()> {
    for name in &refs.secrets {
        if engine.secrets.get_secret(team, name).await?.is_none() {
            return Err(Invalid::new(
                "action.payload",
                format!("uses secret ${{{name}}}, which does not exist; create it with PUT /v1/teams/{team}/secrets/{name}"),
            )
            .into());
        }
    }
    Ok(())
}

// Integrations

pub async fn create_integration(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    input: IntegrationInput,
) -> Result<Integration> {
    let at = now(engine);
    let valid = input.validate(&engine.settings.guard)?;
    let mut integration = Integration {
        id: new_id(),
        team: team.to_string(),
        name: valid.name.clone(),
        destination: valid.destination.clone(),
        enabled: true,
        disabled_reason: None,
        created_at: at.clone(),
        updated_at: at,
    };
    apply_integration(engine, &mut integration, valid).await?;
    engine.store.put_integration(&integration, true).await?;
    audit_integration(engine, actor, &integration, "integration.create").await;
    Ok(integration)
}

/// Replaces an integration's settings (PUT); re-enables it when `enabled` is true.
pub async fn replace_integration(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    id: &str,
    input: IntegrationInput,
) -> Result<Integration> {
    let mut integration = get_integration(engine, team, id).await?;
    let valid = input.validate(&engine.settings.guard)?;
    if valid.destination.kind() != integration.destination.kind() {
        return Err(Invalid::new(
            "type",
            format!(
                "integration {} is a {} integration; a type cannot change: create a new integration",
                integration.name,
                integration.destination.kind()
            ),
        )
        .into());
    }
    apply_integration(engine, &mut integration, valid).await?;
    integration.updated_at = now(engine);
    engine.store.put_integration(&integration, false).await?;
    audit_integration(engine, actor, &integration, "integration.update").await;
    Ok(integration)
}

async fn apply_integration(
    engine: &Engine,
    integration: &mut Integration,
    valid: ValidIntegration,
) -> Result<()> {
    check_integration_secrets(engine, &integration.team, &valid.destination).await?;
    integration.name = valid.name;
    integration.destination = valid.destination;
    if valid.enabled {
        integration.disabled_reason = None;
    }
    integration.enabled = valid.enabled;
    Ok(())
}

/// The secrets an integration names exist and hold what it needs: a token that can travel
/// in a header, a Slack or Teams URL that the outbound guard accepts.
pub async fn check_integration_secrets(
    engine: &Engine,
    team: &str,
    destination: &Destination,
) -> Result<()> {
    let read = |field: &'static str, name: String| async move {
        match engine.secrets.get_secret(team, &name).await? {
            Some(value) => Ok::<_, Error>(value),
            None => Err(Invalid::new(
                field,
                format!("secret {name} does not exist; create it first with PUT /v1/teams/{team}/secrets/{name}"),
            )
            .into()),
        }
    };
    match destination {
        Destination::Webhook {
            access_token_secret,
            signing_secret,
            ..
        } => {
            if let Some(name) = access_token_secret {
                let value = read("access_token_secret", name.clone()).await?;
                // A token travels in a header; one that cannot is refused now rather than
                // at delivery.
                check_header_value(name, &value.0)
                    .map_err(|m| Invalid::new("access_token_secret", m))?;
            }
            if let Some(name) = signing_secret {
                read("signing_secret", name.clone()).await?;
            }
        }
        Destination::Slack {
            webhook_url_secret, ..
        }
        | Destination::Teams { webhook_url_secret } => {
            let value = read("webhook_url_secret", webhook_url_secret.clone()).await?;
            check_secret_url(engine, webhook_url_secret, &value.0)?;
        }
    }
    Ok(())
}

/// The URL a Slack or Teams secret holds passes the outbound guard. The answer is the same
/// whatever the reason, so that naming another secret here tells nothing about its value.
fn check_secret_url(engine: &Engine, name: &str, url: &str) -> Result<(), Invalid> {
    match engine.settings.guard.check_url(url.trim()) {
        Ok(_) => Ok(()),
        Err(_) => Err(Invalid::new(
            "webhook_url_secret",
            format!(
                "secret {name} does not hold a URL the outbound guard accepts (an http or https URL of a public host, the one the destination gave you); set it again"
            ),
        )),
    }
}

pub async fn get_integration(engine: &Engine, team: &str, id: &str) -> Result<Integration> {
    engine
        .store
        .get_integration(team, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("integration {id} does not exist")))
}

pub async fn delete_integration(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    id: &str,
) -> Result<()> {
    let users: Vec<String> = engine
        .store
        .list_automations(team)
        .await?
        .into_items(team)
        .into_iter()
        .filter(|a| a.spec.action.integration.as_deref() == Some(id))
        .map(|a| a.spec.name)
        .collect();
    if !users.is_empty() {
        return Err(Error::Conflict(format!(
            "integration {id} is used by automations {}; change or delete them first",
            users.join(", ")
        )));
    }
    let name = match engine.store.get_integration(team, id).await {
        Ok(found) => found.map(|i| i.name),
        Err(crate::ports::StoreError::Unreadable(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if !engine.store.delete_integration(team, id).await? {
        return Err(Error::NotFound(format!("integration {id} does not exist")));
    }
    let target = Target::new("integration", id, name.as_deref());
    record(engine, actor, team, "integration.delete", target).await;
    Ok(())
}

/// Sends one real request through an integration and reports what came back: the
/// payload given (or a small test one) to a webhook, a short confirmation message to a
/// Slack or Teams channel.
pub async fn test_integration(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    id: &str,
    payload: Option<Value>,
) -> Result<Value> {
    let integration = get_integration(engine, team, id).await?;
    let (kind, template, vars) = if integration.destination.takes_notifications() {
        if payload.is_some() {
            return Err(Invalid::new(
                "payload",
                format!(
                    "a {} integration's test posts a confirmation message and takes no payload",
                    integration.destination.kind()
                ),
            )
            .into());
        }
        let (template, vars) = crate::actions::notification::test_template(team);
        ("notification", template, vars)
    } else {
        let template = payload
            .unwrap_or_else(|| json!({"event_type": "TEST", "message": "a test from automations"}));
        check_json("payload", &template, MAX_TEMPLATE_BYTES)?;
        crate::domain::template::check(&template).map_err(|e| e.within("payload"))?;
        let mut vars = Map::new();
        vars.insert("entity_name".into(), Value::String(team.to_string()));
        vars.insert("event_type".into(), Value::String("TEST".into()));
        ("webhook", template, vars)
    };
    audit_integration(engine, actor, &integration, "integration.test").await;
    let prepared = match prepare(
        engine,
        &integration,
        kind,
        &template,
        &vars,
        &format!("test_{}", new_id()),
    )
    .await
    {
        Ok(p) => p,
        Err(reason) => {
            return Ok(
                json!({"ok": false, "status": null, "body": null, "error": reason, "outcome": "failed"}),
            );
        }
    };
    let carries_secrets = prepared.built.carries_secrets;
    let response = engine.sender.send(prepared.built.request).await;
    let reading =
        prepared
            .action
            .read(&integration, &response, carries_secrets, MAX_RESPONSE_BYTES);
    let ok = response.status.is_some_and(|s| (200..300).contains(&s))
        && reading.verdict == crate::delivery::retry::Verdict::Delivered;
    let mut answer = json!({"ok": ok, "status": response.status, "body": reading.body.body,
        "error": response.error, "outcome": reading.outcome()});
    if let Some(reason) = reading.body.withheld {
        answer["body_withheld"] = Value::String(reason);
    }
    Ok(answer)
}

// Secrets

pub async fn put_secret(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    name: &str,
    value: String,
) -> Result<SecretInfo> {
    if !is_secret_name(name) {
        return Err(Invalid::new("name", "a secret name is 1 to 128 of A-Z, 0-9 and _").into());
    }
    if value.is_empty() || value.len() > MAX_SECRET_BYTES {
        return Err(Invalid::new("value", format!("must be 1 to {MAX_SECRET_BYTES} bytes")).into());
    }
    engine
        .secrets
        .put_secret(team, name, &SecretValue(value))
        .await?;
    let target = Target::new("secret", name, Some(name));
    record(engine, actor, team, "secret.set", target).await;
    Ok(SecretInfo {
        name: name.to_string(),
        updated_at: now(engine),
    })
}

pub async fn delete_secret(engine: &Engine, actor: &Actor, team: &str, name: &str) -> Result<()> {
    let mut users: Vec<String> = engine
        .store
        .list_integrations(team)
        .await?
        .into_items(team)
        .into_iter()
        .filter(|i| i.secrets().contains(&name))
        .map(|i| format!("integration {}", i.name))
        .collect();
    users.extend(
        engine
            .store
            .list_automations(team)
            .await?
            .into_items(team)
            .into_iter()
            .filter(|a| {
                a.spec
                    .validate()
                    .is_ok_and(|refs| refs.secrets.contains(name))
            })
            .map(|a| format!("automation {}", a.spec.name)),
    );
    users.extend(
        engine
            .sources
            .list_sources(team)
            .await?
            .into_items(team)
            .into_iter()
            .filter(|s| s.kind.signing_secret() == name)
            .map(|s| format!("source {}", s.name)),
    );
    if !users.is_empty() {
        return Err(Error::Conflict(format!(
            "secret {name} is used by {}; change them first",
            users.join(", ")
        )));
    }
    if !engine.secrets.delete_secret(team, name).await? {
        return Err(Error::NotFound(format!("secret {name} does not exist")));
    }
    let target = Target::new("secret", name, Some(name));
    record(engine, actor, team, "secret.delete", target).await;
    Ok(())
}

// Executions

pub async fn get_execution(engine: &Engine, team: &str, id: &str) -> Result<Execution> {
    engine
        .store
        .get_execution(team, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("execution {id} does not exist")))
}

/// Sends a finished or failed execution again: a new round of attempts on the schedule.
pub async fn retry_execution(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    id: &str,
) -> Result<Execution> {
    let mut execution = get_execution(engine, team, id).await?;
    if execution.status == ExecutionStatus::Pending {
        return Err(Error::Conflict(format!(
            "execution {id} is still pending; it is retried on its schedule"
        )));
    }
    if execution.attempts.len() >= MAX_ATTEMPTS {
        return Err(Error::Conflict(format!(
            "execution {id} has made {} attempts, the most one execution keeps; the event can be sent again under a new id",
            execution.attempts.len()
        )));
    }
    if !matches!(
        execution.action.kind.as_str(),
        "webhook" | "notification" | "queue_job"
    ) {
        return Err(Error::Conflict(format!(
            "execution {id} has a {} action; there is nothing to send",
            execution.action.kind
        )));
    }
    let before = execution.clone();
    execution.status = ExecutionStatus::Pending;
    execution.result = None;
    execution.next_attempt_at_ms = None;
    execution.claimed_by = None;
    execution.round_start = execution.attempts.len();
    // A job's execution enqueues a new job in the new round.
    execution.action.job_id = None;
    engine.store.update_execution(&mut execution).await?;
    let message = ActionMessage {
        team: team.to_string(),
        execution_id: id.to_string(),
    };
    let body =
        serde_json::to_string(&message).map_err(|e| Error::Queue(QueueError(e.to_string())))?;
    if let Err(e) = engine.actions.send_batch(&[body]).await {
        // Not queued: put the execution back as it was, so that it can be retried again.
        let mut restore = Execution {
            version: execution.version,
            ..before
        };
        if let Err(restore_error) = engine.store.update_execution(&mut restore).await {
            tracing::error!(execution = %id, error = %restore_error, "could not restore an execution whose retry was not queued");
        }
        return Err(e.into());
    }
    let target = Target::new("execution", id, Some(&execution.automation_name));
    record(engine, actor, team, "execution.retry", target).await;
    Ok(execution)
}

fn now(engine: &Engine) -> String {
    format_time(engine.clock.now())
}
