//! The JSON Schemas of the API's bodies and answers (`components.schemas`).
//!
//! Request schemas say what the API takes (unknown fields are refused where the API
//! refuses them). Answer schemas name every field the API writes and require the ones it
//! always writes; a field that may be absent or null says so.

use serde_json::{Map, Value, json};

fn string() -> Value {
    json!({"type": "string"})
}

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn array_of(name: &str) -> Value {
    json!({"type": "array", "items": reference(name)})
}

/// Any JSON value.
fn any() -> Value {
    json!({})
}

/// A listing: `{"<key>": [<item>], "unreadable": [...]}`, with `next_before` when paged.
fn listing(key: &str, item: &str, paged: bool) -> Value {
    let mut properties = Map::new();
    properties.insert(key.into(), array_of(item));
    properties.insert("unreadable".into(), array_of("Unreadable"));
    let mut required = vec![json!(key)];
    if paged {
        properties.insert(
            "next_before".into(),
            json!({"type": ["string", "null"], "description": "The cursor of the next page (pass it as `before`); null on the last page."}),
        );
        required.push(json!("next_before"));
    }
    json!({"type": "object", "properties": properties, "required": required})
}

/// Every schema, by name.
pub fn all() -> Map<String, Value> {
    let mut s = Map::new();
    let mut add = |name: &str, schema: Value| {
        s.insert(name.to_string(), schema);
    };
    add(
        "Error",
        json!({
            "type": "object",
            "description": "Every refusal: a code, a message that says what to do, and the field at fault when there is one.",
            "properties": {"error": {"type": "object", "properties": {
                "code": string(), "message": string(), "field": string()},
                "required": ["code", "message"]},
                "problems": {"type": "array", "items": reference("Problem"),
                    "description": "apply only: every invalid object of the document."}},
            "required": ["error"]
        }),
    );
    add(
        "Unreadable",
        json!({"type": "object", "description": "An item stored in a form this version cannot read: skipped, and named here.",
            "properties": {"id": string(), "error": string()}, "required": ["id", "error"]}),
    );
    add(
        "OpenApi",
        json!({"type": "object", "required": ["openapi", "paths"]}),
    );
    add(
        "Health",
        json!({"type": "object", "properties": {"status": {"const": "ok"}}, "required": ["status"]}),
    );
    add(
        "NewTeam",
        json!({"type": "object", "additionalProperties": false,
            "properties": {"name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{0,62}$"}},
            "required": ["name"]}),
    );
    add(
        "Team",
        json!({"type": "object", "properties": {"name": string(), "created_at": string()},
            "required": ["name", "created_at"]}),
    );
    add(
        "TeamView",
        json!({"type": "object", "properties": {"name": string(), "created_at": string(),
            "caller": {"type": "object", "description": "Who the key is: its user and role (operator for the operator key).",
                "properties": {"user": string(), "role": {"enum": ["admin", "member", "ingest", "agent", "operator"]}},
                "required": ["user", "role"]}},
            "required": ["name", "created_at", "caller"]}),
    );
    add(
        "TeamList",
        json!({"type": "object", "properties": {"teams": array_of("Team")}, "required": ["teams"]}),
    );
    add(
        "ApiKeyInput",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "user": string(),
            "role": {"enum": ["admin", "member", "ingest", "agent"]}},
            "required": ["user", "role"]}),
    );
    add(
        "ApiKey",
        json!({"type": "object", "properties": {"id": string(), "user": string(),
            "role": string(), "created_at": string(), "created_by": any(),
            "key": {"type": "string", "description": "The key itself: only in the answer that grants it."}},
            "required": ["id", "user", "role"]}),
    );
    add("ApiKeyList", listing("api_keys", "ApiKey", false));
    add(
        "Scope",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "type": {"enum": ["project", "registry", "team"]},
            "name": string(), "collection": string()}, "required": ["type"]}),
    );
    add(
        "Trigger",
        json!({"type": "object", "description": "The event type, an optional filter (Mongo-style), the run states of RUN_STATE, and the rule of a run-metric trigger (metric, agg, window, op, threshold, …).",
            "properties": {"type": string(), "filter": {"type": "object"},
                "states": {"type": "array", "items": string()}},
            "required": ["type"]}),
    );
    add(
        "Action",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "type": {"enum": ["webhook", "notification", "queue_job", "no_op"]},
            "integration": {"type": "string", "description": "The integration's id (its name in an apply document)."},
            "payload": any(), "title": string(), "message": string(),
            "severity": {"enum": ["INFO", "WARN", "ERROR"]},
            "queue": string(), "job": string(), "overrides": any(),
            "max_attempts": {"type": "integer", "minimum": 0},
            "lease_seconds": {"type": "integer", "minimum": 0}},
            "required": ["type"]}),
    );
    let automation_fields = json!({
        "name": string(), "description": string(), "enabled": {"type": "boolean"},
        "scope": reference("Scope"), "event": reference("Trigger"), "action": reference("Action")});
    add(
        "AutomationInput",
        json!({"type": "object", "additionalProperties": false, "properties": automation_fields,
            "required": ["name", "scope", "event", "action"]}),
    );
    add(
        "AutomationPatch",
        json!({"type": "object", "additionalProperties": false, "properties": automation_fields,
            "description": "Top-level fields to replace; the result is validated whole."}),
    );
    let mut automation = automation_fields.as_object().cloned().unwrap_or_default();
    for field in ["id", "created_at", "updated_at"] {
        automation.insert(field.into(), string());
    }
    add(
        "Automation",
        json!({"type": "object", "properties": automation,
            "required": ["id", "name", "enabled", "scope", "event", "action", "created_at", "updated_at"]}),
    );
    add(
        "AutomationList",
        listing("automations", "Automation", false),
    );
    add(
        "PreviewRequest",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "automation_id": string(), "automation": {"type": "object"}, "event": {"type": "object"}}}),
    );
    add(
        "Preview",
        json!({"type": "object", "description": "Whether the automation would fire on the event, why not, and what it would send."}),
    );
    add(
        "IntegrationInput",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "type": {"enum": ["webhook", "slack", "teams"]}, "name": string(),
            "url": string(), "access_token_secret": string(), "signing_secret": string(),
            "webhook_url_secret": string(), "channel": string(), "enabled": {"type": "boolean"}},
            "required": ["type", "name"]}),
    );
    add(
        "Integration",
        json!({"type": "object", "properties": {
            "id": string(), "team": string(), "name": string(), "type": string(),
            "url": string(), "access_token_secret": nullable("string"),
            "signing_secret": nullable("string"), "webhook_url_secret": string(),
            "channel": string(), "enabled": {"type": "boolean"},
            "disabled_reason": nullable("string"), "created_at": string(), "updated_at": string()},
            "required": ["id", "name", "type", "enabled", "created_at", "updated_at"]}),
    );
    add(
        "IntegrationList",
        listing("integrations", "Integration", false),
    );
    add(
        "IntegrationTest",
        json!({"type": "object", "additionalProperties": false,
            "properties": {"payload": any()}}),
    );
    add(
        "IntegrationTestResult",
        json!({"type": "object", "properties": {"ok": {"type": "boolean"},
            "status": nullable("integer"), "body": nullable("string"), "error": nullable("string")},
            "required": ["ok"]}),
    );
    add(
        "SecretInput",
        json!({"type": "object", "additionalProperties": false,
            "properties": {"value": {"type": "string", "writeOnly": true}}, "required": ["value"]}),
    );
    add(
        "Secret",
        json!({"type": "object", "description": "A secret's name and date: never its value.",
            "properties": {"name": string(), "updated_at": string()}, "required": ["name"]}),
    );
    add(
        "SecretList",
        json!({"type": "object", "properties": {"secrets": array_of("Secret")}, "required": ["secrets"]}),
    );
    add(
        "Execution",
        json!({"type": "object", "properties": {
            "id": string(), "automation_id": string(), "automation_name": string(),
            "triggered_at": string(), "status": {"enum": ["PENDING", "FINISHED", "FAILED"]},
            "event": {"type": "object"}, "action": {"type": "object",
                "description": "What was sent; secrets shown as ***."},
            "attempts": {"type": "array", "items": {"type": "object"}},
            "result": any()},
            "required": ["id", "automation_id", "status", "triggered_at"]}),
    );
    add("ExecutionPage", listing("executions", "Execution", true));
    add(
        "EventRecord",
        json!({"type": "object", "properties": {
            "id": string(),
            "event": {"type": "object", "description": "The event as its producer sent it, with received_at."},
            "evaluation": {"type": "object", "properties": {
                "evaluated_at": string(),
                "fired": {"type": "array", "items": {"type": "object", "properties": {
                    "automation_id": string(), "automation_name": string(), "execution_id": string()},
                    "required": ["automation_id", "execution_id"]}},
                "not_fired": {"type": "array", "items": {"type": "object", "properties": {
                    "automation_id": string(), "automation_name": string(),
                    "reason": {"enum": ["disabled", "filter", "states", "metric", "cooldown", "scope", "event_type"]},
                    "field": string(), "message": string()},
                    "required": ["automation_id", "reason", "message"]}},
                "omitted": {"type": "integer", "minimum": 0}},
                "required": ["fired", "not_fired"]}},
            "required": ["id", "event", "evaluation"]}),
    );
    add("EventPage", listing("events", "EventRecord", true));
    add(
        "QueueInput",
        json!({"type": "object", "additionalProperties": false, "properties": {"name": string()},
            "required": ["name"]}),
    );
    add(
        "Queue",
        json!({"type": "object", "properties": {"name": string(), "created_at": string()},
            "required": ["name"]}),
    );
    add("QueueList", listing("queues", "Queue", false));
    add(
        "Claim",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "agent": string(), "wait_seconds": {"type": "integer", "minimum": 0, "maximum": 20}},
            "required": ["agent"]}),
    );
    add(
        "ClaimedJob",
        json!({"type": "object", "properties": {"job": {"type": "object"}}, "required": ["job"]}),
    );
    add(
        "Job",
        json!({"type": "object", "properties": {
            "id": string(), "queue": string(), "job": string(),
            "status": {"enum": ["PENDING", "RUNNING", "FINISHED", "FAILED"]},
            "overrides": any(), "event": any(), "execution_id": string(), "attempt": {"type": "integer"},
            "lease_expires_at": nullable("string"), "ended_at": nullable("string")},
            "required": ["id", "queue", "status"]}),
    );
    add("JobPage", listing("jobs", "Job", true));
    add(
        "Lease",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "attempt": {"type": "integer", "minimum": 0}, "agent": string()}}),
    );
    add(
        "Heartbeat",
        json!({"type": "object", "properties": {"id": string(), "attempt": {"type": "integer"},
            "lease_expires_at": nullable("string")}, "required": ["id"]}),
    );
    add(
        "Completion",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "status": {"enum": ["FINISHED", "FAILED"]}, "exit_code": {"type": "integer"},
            "output": string(), "attempt": {"type": "integer", "minimum": 0}, "agent": string()},
            "required": ["status"]}),
    );
    add(
        "SourceInput",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "type": {"enum": ["mlflow"]}, "name": string(), "signing_secret": string(),
            "registry": string()}, "required": ["type", "name", "signing_secret", "registry"]}),
    );
    add(
        "Source",
        json!({"type": "object", "properties": {"id": string(), "name": string(), "type": string(),
            "receive_path": string()}, "required": ["id", "name"]}),
    );
    add("SourceList", listing("sources", "Source", false));
    add(
        "Received",
        json!({"type": "object", "description": "The events a delivery became (202), or the kind of delivery ignored (200).",
            "properties": {"accepted": {"type": "array", "items": string()},
                "duplicates": {"type": "array", "items": string()}, "ignored": string()}}),
    );
    add(
        "AuditEntry",
        json!({"type": "object", "properties": {"id": string(), "at": string(),
            "actor": {"type": "object"}, "action": string(), "target": {"type": "object"}},
            "required": ["id", "at", "action"]}),
    );
    add("AuditPage", listing("entries", "AuditEntry", true));
    add(
        "DeadLetterPage",
        json!({"type": "object", "properties": {
            "dead_letters": {"type": "array", "items": {"type": "object"}},
            "next_before": nullable("string")}, "required": ["dead_letters"]}),
    );
    add(
        "Redrive",
        json!({"type": "object", "additionalProperties": false, "properties": {
            "queue": {"enum": ["events", "actions"]},
            "ids": {"type": "array", "items": string(), "minItems": 1}}}),
    );
    add(
        "Redriven",
        json!({"type": "object", "description": "How many dead letters were put back, and which."}),
    );
    add(
        "Event",
        json!({"type": "object", "description": "One event: an artifact event (project or registry, artifact), RUN_STATE (run with state) or RUN_METRICS (run, metrics, step).",
            "properties": {
                "id": string(),
                "event_type": {"enum": ["CREATE_ARTIFACT", "LINK_ARTIFACT", "UNLINK_ARTIFACT",
                    "ADD_ARTIFACT_ALIAS", "ADD_ARTIFACT_TAG", "REMOVE_ARTIFACT_TAG",
                    "RUN_STATE", "RUN_METRICS"]},
                "project": string(), "registry": string(), "author": string(),
                "timestamp": string(), "artifact": {"type": "object"}, "run": {"type": "object"},
                "metrics": {"type": "object"}, "step": {"type": "integer"}},
            "required": ["event_type"]}),
    );
    add(
        "Events",
        json!({"oneOf": [reference("Event"), {"type": "object", "additionalProperties": false,
            "properties": {"events": {"type": "array", "items": reference("Event"),
                "minItems": 1, "maxItems": 1000}}, "required": ["events"]}]}),
    );
    add(
        "IngestReport",
        json!({"type": "object", "properties": {
            "accepted": {"type": "array", "items": string(), "description": "Ids of the events queued now."},
            "duplicates": {"type": "array", "items": string(), "description": "Ids sent before: accepted once, not queued again."}},
            "required": ["accepted", "duplicates"]}),
    );
    add(
        "Document",
        json!({"type": "object", "additionalProperties": false,
            "description": "A team's queues, integrations and automations, in the API's own form; an automation names its integration by name.",
            "properties": {
                "queues": {"type": "array", "items": reference("QueueInput")},
                "integrations": {"type": "array", "items": reference("IntegrationInput")},
                "automations": {"type": "array", "items": reference("AutomationInput")}}}),
    );
    add(
        "Plan",
        json!({"type": "object", "properties": {
            "changes": {"type": "array", "items": {"type": "object", "properties": {
                "op": {"enum": ["create", "update", "delete"]},
                "kind": {"enum": ["queue", "integration", "automation"]},
                "name": string(), "index": {"type": "integer"},
                "fields": {"type": "array", "items": {"type": "object", "properties": {
                    "field": string(), "from": any(), "to": any()}, "required": ["field"]}}},
                "required": ["op", "kind", "name"]}},
            "unchanged": {"type": "integer"},
            "kept": {"type": "array", "items": {"type": "object"}},
            "applied": {"type": "boolean"}},
            "required": ["changes", "unchanged", "kept", "applied"]}),
    );
    add(
        "Problem",
        json!({"type": "object", "properties": {
            "kind": {"enum": ["queue", "integration", "automation"]}, "index": {"type": "integer"},
            "name": string(), "field": string(), "message": string()},
            "required": ["kind", "index", "field", "message"]}),
    );
    s
}
