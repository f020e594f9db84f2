//! The job kind: a `queue_job` action sends no request. Its execution puts one job on a
//! queue of the team, with the overrides rendered from the event's variables (typed
//! substitution, as a webhook's payload), and waits for an agent to run it. This module
//! builds that job; the dispatch use case enqueues it.

use serde_json::{Map, Value};

use crate::domain::automation::Action;
use crate::domain::execution::Execution;
use crate::domain::ids::job_id;
use crate::domain::job::{Job, JobSpec, job_event};
use crate::domain::limits::MAX_RECORDED_PAYLOAD_BYTES;
use crate::domain::template::{self, TooLarge, lookup};

/// What the execution of a `queue_job` action keeps to build its job from.
pub fn template(action: &Action) -> Value {
    action
        .job_spec()
        .and_then(|spec| serde_json::to_value(spec).ok())
        .unwrap_or(Value::Null)
}

/// The job's overrides, rendered with the event's variables. They hold no secret (refused
/// when the automation is saved), and are bounded like a recorded payload, which is what a
/// job is: every reader of the queue sees it.
pub fn overrides(spec: &JobSpec, vars: &Map<String, Value>) -> Result<Value, TooLarge> {
    template::render(&spec.overrides, MAX_RECORDED_PAYLOAD_BYTES, &mut |var| {
        lookup(vars, var)
    })
}

/// The job an execution enqueues in its current round, or why it cannot be built (a
/// template this version cannot read, or overrides that render too large).
pub fn build(execution: &Execution, now_ms: i64) -> Result<Job, String> {
    let spec: JobSpec = serde_json::from_value(execution.template.clone())
        .map_err(|e| format!("the job this execution enqueues cannot be read: {e}"))?;
    let overrides = overrides(&spec, &execution.vars).map_err(|e| format!("overrides: {e}"))?;
    Ok(Job::new(
        job_id(&execution.team, &execution.id, execution.round_start),
        &execution.team,
        &spec,
        overrides,
        job_event(&execution.event.id, &execution.vars),
        &execution.id,
        &execution.automation_id,
        now_ms,
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn overrides_take_the_values_own_types_and_stay_json() {
        let spec = JobSpec {
            queue: "gpu".into(),
            job: "eval".into(),
            overrides: json!({
                "version": "${artifact_version_string}",
                "alias": "${alias}",
                "note": "moved to ${alias} by ${event_author}",
                "missing": "${run_name}",
            }),
            max_attempts: 3,
            lease_seconds: 600,
        };
        let mut vars = Map::new();
        vars.insert(
            "artifact_version_string".into(),
            json!("acme/model/resnet:v3"),
        );
        vars.insert("alias".into(), json!("prod\",\"x\":\"y"));
        vars.insert("event_author".into(), json!("alice"));
        vars.insert("run_name".into(), Value::Null);
        let rendered = overrides(&spec, &vars).unwrap();
        assert_eq!(rendered["version"], "acme/model/resnet:v3");
        assert_eq!(rendered["alias"], "prod\",\"x\":\"y");
        assert_eq!(rendered["note"], "moved to prod\",\"x\":\"y by alice");
        assert_eq!(rendered["missing"], Value::Null);
        assert_eq!(rendered.as_object().unwrap().len(), 4);
    }
}
