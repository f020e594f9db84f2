//! Manage: teams, automations, integrations, secrets and executions.

use serde_json::{Map, Value, json};

use super::access::record;
use super::dispatch::{MAX_ATTEMPTS, check_header_value, kept_body, prepare};
use super::{ActionMessage, Engine, Error, Result};
use crate::delivery::client::MAX_RESPONSE_BYTES;
use crate::domain::access::{Actor, Target};
use crate::domain::automation::{Automation, AutomationInput};
use crate::domain::event::format_time;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::domain::ids::new_id;
use crate::domain::integration::{Integration, IntegrationInput};
use crate::domain::limits::{MAX_TEMPLATE_BYTES, check_json};
use crate::domain::template::is_secret_name;
use crate::domain::{Invalid, from_json};
use crate::ports::{QueueError, SecretInfo, SecretValue, Team};

/// Largest secret value.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

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

async fn check_references(engine: &Engine, team: &str, input: &AutomationInput) -> Result<()> {
    let refs = input.validate()?;
    if let Some(id) = &refs.integration
        && engine.store.get_integration(team, id).await?.is_none()
    {
        return Err(Invalid::new(
            "action.integration",
            format!("integration {id} does not exist in team {team}"),
        )
        .into());
    }
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
    let mut integration = Integration {
        id: new_id(),
        team: team.to_string(),
        kind: crate::domain::integration::IntegrationKind::Webhook,
        name: String::new(),
        url: String::new(),
        access_token_secret: None,
        signing_secret: None,
        enabled: true,
        disabled_reason: None,
        created_at: at.clone(),
        updated_at: at,
    };
    apply_integration(engine, &mut integration, input).await?;
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
    apply_integration(engine, &mut integration, input).await?;
    integration.updated_at = now(engine);
    engine.store.put_integration(&integration, false).await?;
    audit_integration(engine, actor, &integration, "integration.update").await;
    Ok(integration)
}

async fn apply_integration(
    engine: &Engine,
    integration: &mut Integration,
    input: IntegrationInput,
) -> Result<()> {
    let valid = input.validate(&engine.settings.guard)?;
    for (field, secret) in [
        ("access_token_secret", &valid.access_token_secret),
        ("signing_secret", &valid.signing_secret),
    ] {
        let Some(name) = secret else { continue };
        let Some(value) = engine.secrets.get_secret(&integration.team, name).await? else {
            return Err(Invalid::new(
                field,
                format!("secret {name} does not exist; create it first"),
            )
            .into());
        };
        // A token travels in a header; one that cannot is refused now rather than at delivery.
        if field == "access_token_secret" {
            check_header_value(name, &value.0).map_err(|m| Invalid::new(field, m))?;
        }
    }
    integration.kind = valid.kind;
    integration.name = valid.name;
    integration.url = valid.url;
    integration.access_token_secret = valid.access_token_secret;
    integration.signing_secret = valid.signing_secret;
    if valid.enabled {
        integration.disabled_reason = None;
    }
    integration.enabled = valid.enabled;
    Ok(())
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

/// Sends one real request through an integration and reports what came back.
pub async fn test_integration(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    id: &str,
    payload: Option<Value>,
) -> Result<Value> {
    let integration = get_integration(engine, team, id).await?;
    let template = payload
        .unwrap_or_else(|| json!({"event_type": "TEST", "message": "a test from automations"}));
    check_json("payload", &template, MAX_TEMPLATE_BYTES)?;
    crate::domain::template::check(&template).map_err(|e| e.within("payload"))?;
    audit_integration(engine, actor, &integration, "integration.test").await;
    let mut vars = Map::new();
    vars.insert("entity_name".into(), Value::String(team.to_string()));
    vars.insert("event_type".into(), Value::String("TEST".into()));
    let prepared = match prepare(
        engine,
        &integration,
        &template,
        &vars,
        &format!("test_{}", new_id()),
    )
    .await
    {
        Ok(p) => p,
        Err(reason) => {
            return Ok(json!({"ok": false, "status": null, "body": null, "error": reason}));
        }
    };
    let carries_secrets = prepared.carries_secrets;
    let response = engine.sender.send(prepared.request).await;
    let ok = response.status.is_some_and(|s| (200..300).contains(&s));
    let kept = kept_body(carries_secrets, &response, MAX_RESPONSE_BYTES);
    let mut answer =
        json!({"ok": ok, "status": response.status, "body": kept.body, "error": response.error});
    if let Some(reason) = kept.withheld {
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
        .filter(|i| i.secrets().any(|s| s == name))
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
    if execution.action.kind != "webhook" {
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
