//! Preview: whether an automation (saved, or a draft) would fire on an event, why not if
//! not, and the exact request it would send, with every secret masked (for a `queue_job`
//! action, the job it would enqueue). The request is built by [`prepare`], as delivery
//! builds it, and the job by [`crate::actions::job::build`], as dispatch builds it; nothing
//! is sent or stored.

use serde::Deserialize;
use serde_json::{Value, json};

use super::dispatch::prepare;
use super::evaluate::{metric_execution, new_execution};
use super::manage::{check_references, get_automation, get_integration};
use super::{Engine, Error, Result};
use crate::domain::automation::{Automation, AutomationInput, Compiled, Mismatch};
use crate::domain::event::{Event, EventInput};
use crate::domain::execution::Execution;
use crate::domain::ids::new_id;
use crate::domain::metric::{MetricState, NewPoint, Watcher, read_value};
use crate::domain::{Invalid, from_json};

/// The id a draft automation is previewed under.
pub const DRAFT_ID: &str = "draft";

/// What a preview takes: a saved automation's id or a draft, and an event as producers
/// send it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    #[serde(default)]
    pub automation_id: Option<String>,
    #[serde(default)]
    pub automation: Option<Value>,
    #[serde(default)]
    pub event: Option<Value>,
}

/// Previews `request` in `team`.
pub async fn preview(engine: &Engine, team: &str, request: PreviewRequest) -> Result<Value> {
    let automation = automation(engine, team, request.automation_id, request.automation).await?;
    let event = event(team, request.event, engine)?;
    let compiled = Compiled::new(automation).map_err(|e| e.within("automation"))?;
    let document = event.filter_document();
    let mut mismatch = compiled.why_not(&event, &document);
    // A run-metric trigger is checked against a run with no earlier points: the preview
    // reads no window and no cooldown.
    let mut metric_value = None;
    let mut note = None;
    if let Some(trigger) = &compiled.metric
        && mismatch.as_ref().is_none_or(|m| m.reason == "disabled")
    {
        note = Some(format!(
            "checked as the run's first point of {}: a delivery also counts the run's earlier points and the trigger's cooldown, which a preview does not read",
            trigger.metric
        ));
        let value = event
            .metrics
            .as_ref()
            .and_then(|m| m.get(&trigger.metric))
            .and_then(read_value)
            .unwrap_or(f64::NAN);
        let watcher = [Watcher {
            automation: &compiled.automation.id,
            trigger,
        }];
        let point = [NewPoint {
            event: &event.id,
            step: event.step.unwrap_or_default() as i64,
            value,
            at_ms: event.received_at_ms,
            watchers: &[0],
        }];
        let fires = MetricState::default()
            .advance(trigger.needs(), &watcher, &point)
            .unwrap_or_default();
        match fires.first() {
            Some(fire) => metric_value = Some(fire.value),
            None => {
                mismatch = Some(Mismatch::new(
                    "metric",
                    Some(format!("metrics.{}", trigger.metric)),
                    format!(
                        "{} = {} does not meet the trigger on a run with no earlier points",
                        trigger.metric,
                        crate::domain::metric::render_value(value)
                    ),
                ))
            }
        }
    }
    let spec = &compiled.automation.spec;
    let mut answer = json!({
        "would_fire": mismatch.is_none(),
        "reason": mismatch,
        "automation": {"id": compiled.automation.id, "name": spec.name},
        "event": {"id": event.id, "event_type": event.event_type},
        "action": {"type": spec.action.kind, "integration": spec.action.integration},
        "request": null,
    });
    if let Some(note) = note {
        answer["note"] = json!(note);
    }
    // What it would send: when it fires, and when only its being disabled stops it.
    if mismatch.as_ref().is_some_and(|m| m.reason != "disabled") {
        return Ok(answer);
    }
    let execution = match (&compiled.metric, metric_value) {
        (Some(trigger), Some(value)) => {
            metric_execution(&event, &compiled.automation, &trigger.metric, value)
        }
        _ => new_execution(&event, &compiled.automation),
    };
    answer["execution_id"] = json!(execution.id);
    if spec.action.kind == "queue_job" {
        preview_job(engine, team, &execution, &mut answer).await?;
        return Ok(answer);
    }
    let Some(id) = &spec.action.integration else {
        answer["note"] = json!(format!("a {} action sends nothing", spec.action.kind));
        return Ok(answer);
    };
    let integration = match get_integration(engine, team, id).await {
        Ok(integration) => integration,
        Err(Error::NotFound(_)) => {
            answer["error"] = json!(format!(
                "integration {id} no longer exists: a delivery now would fail without an attempt"
            ));
            return Ok(answer);
        }
        Err(e) => return Err(e),
    };
    match prepare(
        engine,
        &integration,
        &execution.action.kind,
        &execution.template,
        &execution.vars,
        &execution.id,
    )
    .await
    {
        Ok(prepared) => answer["request"] = json!(prepared.built.shown),
        Err(reason) => answer["error"] = json!(reason),
    }
    if !integration.enabled {
        let disabled = format!(
            "integration {} is disabled ({}): a delivery now would fail without an attempt",
            integration.name,
            integration
                .disabled_reason
                .as_deref()
                .unwrap_or("by a user")
        );
        answer["error"] = match answer["error"].as_str() {
            Some(build) => json!(format!("{disabled}; and {build}")),
            None => json!(disabled),
        };
    }
    Ok(answer)
}

/// The job a `queue_job` execution would put on its queue, built as dispatch builds it.
async fn preview_job(
    engine: &Engine,
    team: &str,
    execution: &Execution,
    answer: &mut Value,
) -> Result<()> {
    let now_ms = (engine.clock.now().unix_timestamp_nanos() / 1_000_000) as i64;
    let job = match crate::actions::job::build(execution, now_ms) {
        Ok(job) => job,
        Err(reason) => {
            answer["error"] = json!(reason);
            return Ok(());
        }
    };
    answer["action"]["queue"] = json!(job.queue);
    answer["job"] = json!({
        "id": job.id,
        "queue": job.queue,
        "job": job.job,
        "overrides": job.overrides,
        "event": job.event,
        "execution_id": job.execution_id,
        "max_attempts": job.max_attempts,
        "lease_seconds": job.lease_seconds,
    });
    if engine.jobs.get_queue(team, &job.queue).await?.is_none() {
        answer["error"] = json!(format!(
            "queue {} no longer exists: an execution now would fail without a job",
            job.queue
        ));
    }
    Ok(())
}

/// The saved automation `id`, or the draft, checked as creating it would check it.
async fn automation(
    engine: &Engine,
    team: &str,
    id: Option<String>,
    draft: Option<Value>,
) -> Result<Automation> {
    match (id, draft) {
        (Some(id), None) => match get_automation(engine, team, &id).await {
            Err(Error::NotFound(m)) => Err(Error::Missing(Invalid::new("automation_id", m))),
            other => other,
        },
        (None, Some(draft)) => {
            let input: AutomationInput = from_json(draft).map_err(|e| e.within("automation"))?;
            check_references(engine, team, &input)
                .await
                .map_err(|e| match e {
                    Error::Invalid(invalid) => Error::Invalid(invalid.within("automation")),
                    other => other,
                })?;
            Ok(Automation {
                id: DRAFT_ID.into(),
                team: team.to_string(),
                spec: input,
                created_at: String::new(),
                updated_at: String::new(),
            })
        }
        _ => Err(Invalid::new(
            "automation_id",
            "give either automation_id (a saved automation) or automation (a draft), not both",
        )
        .into()),
    }
}

/// The event, validated as the events route validates it.
fn event(team: &str, event: Option<Value>, engine: &Engine) -> Result<Event> {
    let event = event.ok_or_else(|| {
        Invalid::new(
            "event",
            "missing: the event to preview, as producers send it to the events route",
        )
    })?;
    let input: EventInput = from_json(event).map_err(|e| e.within("event"))?;
    let id = format!("preview_{}", new_id());
    Ok(input
        .validate(team, id, engine.clock.now())
        .map_err(|e| e.within("event"))?)
}
