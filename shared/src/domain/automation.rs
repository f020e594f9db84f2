//! Automations: when an event of a type happens in a scope and the filter matches, run an action.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::event::{Event, EventType, RunState};
use super::filter::Filter;
use super::job::{DEFAULT_LEASE_SECONDS, DEFAULT_MAX_ATTEMPTS, JobSpec, check_spec};
use super::limits::{
    MAX_FILTER_BYTES, MAX_FILTER_DEPTH, MAX_TEMPLATE_BYTES, check_depth, check_json, check_size,
};
use super::metric::MetricTrigger;
use super::template;
use super::{Invalid, check_collection, check_name};

/// The scope key of automations that see every project and registry of their team.
pub const TEAM_SCOPE_KEY: &str = "team";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Scope {
    Project {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collection: Option<String>,
    },
    Registry {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        collection: Option<String>,
    },
    Team,
}

impl Scope {
    /// The key evaluation looks automations up by (see [`Event::scope_keys`]).
    pub fn key(&self) -> String {
        match self {
            Scope::Team => TEAM_SCOPE_KEY.to_string(),
            Scope::Project { name, collection } | Scope::Registry { name, collection } => {
                let kind = if matches!(self, Scope::Project { .. }) {
                    "project"
                } else {
                    "registry"
                };
                match collection {
                    Some(c) => format!("{kind}/{name}/{c}"),
                    None => format!("{kind}/{name}"),
                }
            }
        }
    }

    fn validate(&self) -> Result<(), Invalid> {
        if let Scope::Project { name, collection } | Scope::Registry { name, collection } = self {
            check_name("scope.name", name)?;
            if let Some(c) = collection {
                check_collection("scope.collection", c)?;
            }
        }
        Ok(())
    }
}

/// The trigger: which event type, an optional filter, for run states the states that
/// count, and for run metrics the metric and its rule (`metric`, `agg`, `window`, …, kept
/// in `rule` as written and read by [`MetricTrigger::parse`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub states: Option<Vec<String>>,
    /// Every other field. Only run-metric triggers take any; validation refuses the rest.
    #[serde(flatten)]
    pub rule: Map<String, Value>,
}

impl Trigger {
    /// The run-metric trigger this is, if its type is one.
    pub fn metric(&self) -> Option<Result<MetricTrigger, Invalid>> {
        RUN_METRIC_TRIGGERS
            .contains(&self.event_type.as_str())
            .then(|| MetricTrigger::parse(&self.event_type, self.rule.clone()))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// `notification`: text templates of the title, the message and the severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// `queue_job`: the queue, the job's name, its overrides template, and how often and
    /// how long it may be tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_seconds: Option<u64>,
}

impl Action {
    /// The fields set beside `type`, each with the action kinds that take it.
    fn fields(&self) -> [(&'static str, bool, &'static [&'static str]); 9] {
        const SENDS: &[&str] = &["webhook", "notification"];
        const NOTIFIES: &[&str] = &["notification"];
        const JOBS: &[&str] = &["queue_job"];
        [
            ("integration", self.integration.is_some(), SENDS),
            ("payload", self.payload.is_some(), &["webhook"]),
            ("title", self.title.is_some(), NOTIFIES),
            ("message", self.message.is_some(), NOTIFIES),
            ("severity", self.severity.is_some(), NOTIFIES),
            ("queue", self.queue.is_some(), JOBS),
            ("job", self.job.is_some(), JOBS),
            ("overrides", self.overrides.is_some(), JOBS),
            (
                "max_attempts",
                self.max_attempts.is_some() || self.lease_seconds.is_some(),
                JOBS,
            ),
        ]
    }

    /// What a `queue_job` action asks for, defaults filled in (`None` for other kinds).
    pub fn job_spec(&self) -> Option<JobSpec> {
        (self.kind == "queue_job").then(|| JobSpec {
            queue: self.queue.clone().unwrap_or_default(),
            job: self.job.clone().unwrap_or_default(),
            overrides: self
                .overrides
                .clone()
                .unwrap_or_else(|| Value::Object(Map::new())),
            max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS),
            lease_seconds: self.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS),
        })
    }
}

/// The severities of a notification.
pub const SEVERITIES: [&str; 3] = ["INFO", "WARN", "ERROR"];

/// Largest notification title template.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Largest notification message template.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// An automation as a client writes it (POST, PUT; PATCH merges into the stored one first).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationInput {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    pub scope: Scope,
    pub event: Trigger,
    pub action: Action,
}

fn enabled_by_default() -> bool {
    true
}

/// A stored automation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Automation {
    pub id: String,
    pub team: String,
    pub spec: AutomationInput,
    pub created_at: String,
    pub updated_at: String,
}

impl Automation {
    /// The automation as the API shows it: the spec's fields beside id and times.
    pub fn public_view(&self) -> Value {
        let mut view = serde_json::to_value(&self.spec).unwrap_or_default();
        if let Value::Object(map) = &mut view {
            map.insert("id".into(), Value::String(self.id.clone()));
            map.insert("created_at".into(), Value::String(self.created_at.clone()));
            map.insert("updated_at".into(), Value::String(self.updated_at.clone()));
        }
        view
    }
}

/// What a valid automation refers to outside itself; the use case checks these exist.
#[derive(Debug, Default)]
pub struct References {
    pub integration: Option<String>,
    pub secrets: BTreeSet<String>,
    /// The action is a notification: its integration must be a Slack or Teams one (else a
    /// webhook integration).
    pub notifies: bool,
    /// The queue a `queue_job` action puts its jobs on.
    pub queue: Option<String>,
}

/// The trigger types that watch a metric of `RUN_METRICS` events.
pub const RUN_METRIC_TRIGGERS: [&str; 4] = [
    "RUN_METRIC_THRESHOLD",
    "RUN_METRIC_CHANGE",
    "RUN_METRIC_ZSCORE",
    "RUN_METRIC_NAN",
];

impl AutomationInput {
    /// Checks everything that can be checked without the store.
    pub fn validate(&self) -> Result<References, Invalid> {
        check_name("name", &self.name)?;
        if self.description.as_ref().is_some_and(|d| d.len() > 2000) {
            return Err(Invalid::new("description", "longer than 2000 bytes"));
        }
        self.scope.validate()?;
        let event_type = self.event_type()?;
        if !event_type.is_artifact() {
            match &self.scope {
                Scope::Registry { .. } => {
                    return Err(Invalid::new(
                        "event.type",
                        "run events happen in projects: use a project or team scope",
                    ));
                }
                Scope::Project {
                    collection: Some(_),
                    ..
                } => {
                    return Err(Invalid::new(
                        "scope.collection",
                        "run triggers cannot be limited to an artifact collection",
                    ));
                }
                _ => {}
            }
        }
        match self.event.metric() {
            Some(metric) => {
                metric?;
            }
            None => {
                if let Some(field) = self.event.rule.keys().next() {
                    return Err(Invalid::new(
                        format!("event.{field}"),
                        format!(
                            "unknown field; {} triggers take type, filter{}",
                            self.event.event_type,
                            if event_type == EventType::RunState {
                                " and states"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
            }
        }
        if let Some(filter) = &self.event.filter {
            check_depth("event.filter", filter, MAX_FILTER_DEPTH)?;
            check_size("event.filter", filter, MAX_FILTER_BYTES)?;
            Filter::compile(filter)
                .map_err(|e| Invalid::new(e.path, e.message).within("event.filter"))?;
        }
        match (event_type, &self.event.states) {
            (EventType::RunState, None) => {
                return Err(Invalid::new(
                    "event.states",
                    "missing: list the run states that fire, e.g. [\"FAILED\"]",
                ));
            }
            (EventType::RunState, Some(states)) => {
                if states.is_empty() {
                    return Err(Invalid::new(
                        "event.states",
                        "must list at least one of RUNNING, FINISHED, FAILED",
                    ));
                }
                for (i, s) in states.iter().enumerate() {
                    if RunState::parse(s).is_none() {
                        return Err(Invalid::new(
                            format!("event.states[{i}]"),
                            format!(
                                "unknown run state {s:?}; expected RUNNING, FINISHED or FAILED"
                            ),
                        ));
                    }
                }
            }
            (_, Some(_)) => {
                return Err(Invalid::new(
                    "event.states",
                    "only RUN_STATE triggers take states",
                ));
            }
            (_, None) => {}
        }
        self.validate_action()
    }

    /// The event type the trigger watches: run-metric triggers watch `RUN_METRICS`.
    pub fn event_type(&self) -> Result<EventType, Invalid> {
        let t = self.event.event_type.as_str();
        if RUN_METRIC_TRIGGERS.contains(&t) {
            return Ok(EventType::RunMetrics);
        }
        match EventType::parse(t) {
            Some(EventType::RunMetrics) | None => {
                let known: Vec<_> = EventType::ALL[..7]
                    .iter()
                    .map(|t| t.as_str())
                    .chain(RUN_METRIC_TRIGGERS)
                    .collect();
                Err(Invalid::new(
                    "event.type",
                    format!(
                        "unknown trigger type {t:?}; expected one of {}",
                        known.join(", ")
                    ),
                ))
            }
            Some(t) => Ok(t),
        }
    }

    /// The event type the stores file the automation under, for evaluation to find it by
    /// (every run-metric trigger under `RUN_METRICS`).
    pub fn index_type(&self) -> &str {
        match self.event_type() {
            Ok(t) => t.as_str(),
            Err(_) => &self.event.event_type,
        }
    }

    fn validate_action(&self) -> Result<References, Invalid> {
        let a = &self.action;
        const KINDS: [&str; 4] = ["webhook", "notification", "queue_job", "no_op"];
        if KINDS.contains(&a.kind.as_str()) {
            for (field, set, kinds) in a.fields() {
                if set && !kinds.contains(&a.kind.as_str()) {
                    return Err(Invalid::new(
                        format!("action.{field}"),
                        format!(
                            "{} actions do not take {field}; it belongs to {} actions",
                            a.kind,
                            kinds.join(" and ")
                        ),
                    ));
                }
            }
        }
        match a.kind.as_str() {
            "notification" => validate_notification(a),
            "webhook" => {
                let integration = a.integration.clone().ok_or_else(|| {
                    Invalid::new(
                        "action.integration",
                        "missing: the id of a webhook integration",
                    )
                })?;
                let payload = a.payload.clone().unwrap_or(Value::Object(Map::new()));
                if !payload.is_object() && !payload.is_array() {
                    return Err(Invalid::new(
                        "action.payload",
                        "must be a JSON object or array",
                    ));
                }
                check_json("action.payload", &payload, MAX_TEMPLATE_BYTES)?;
                let secrets = template::check(&payload).map_err(|e| e.within("action.payload"))?;
                Ok(References {
                    integration: Some(integration),
                    secrets,
                    ..References::default()
                })
            }
            "no_op" => Ok(References::default()),
            "queue_job" => validate_queue_job(a),
            "slack" | "teams" => Err(Invalid::new(
                "action.type",
                format!(
                    "a {} message is a notification action: {{\"type\": \"notification\", \"integration\": \"<id of a {} integration>\", \"title\": …, \"message\": …}}",
                    a.kind, a.kind
                ),
            )),
            other => Err(Invalid::new(
                "action.type",
                format!(
                    "unknown action type {other:?}; expected \"webhook\", \"notification\", \"queue_job\" or \"no_op\""
                ),
            )),
        }
    }
}

/// A job's queue and name, its limits, and its overrides: a JSON object template of known
/// variables without team secrets (a job's overrides are shown to whoever reads the queue).
fn validate_queue_job(a: &Action) -> Result<References, Invalid> {
    check_spec(
        a.queue.as_deref(),
        a.job.as_deref(),
        a.max_attempts,
        a.lease_seconds,
    )?;
    let overrides = a.overrides.clone().unwrap_or(Value::Object(Map::new()));
    if !overrides.is_object() {
        return Err(Invalid::new("action.overrides", "must be a JSON object"));
    }
    check_json("action.overrides", &overrides, MAX_TEMPLATE_BYTES)?;
    let secrets = template::check(&overrides).map_err(|e| e.within("action.overrides"))?;
    if let Some(secret) = secrets.first() {
        return Err(Invalid::new(
            "action.overrides",
            format!(
                "uses ${{{secret}}}, a team secret: secrets cannot be put in a job, which the queue's agents and readers see; give the agent's machine its own credentials"
            ),
        ));
    }
    Ok(References {
        queue: a.queue.clone(),
        ..References::default()
    })
}

/// A notification's integration, and its text templates: known variables only, and no
/// team secret (a channel is not a secret store).
fn validate_notification(a: &Action) -> Result<References, Invalid> {
    let integration = a.integration.clone().ok_or_else(|| {
        Invalid::new(
            "action.integration",
            "missing: the id of a slack or teams integration",
        )
    })?;
    let texts = [
        ("title", a.title.as_deref(), MAX_TITLE_BYTES, true),
        ("message", a.message.as_deref(), MAX_MESSAGE_BYTES, true),
        ("severity", a.severity.as_deref(), 128, false),
    ];
    for (field, text, max, required) in texts {
        let path = format!("action.{field}");
        let Some(text) = text else {
            if required {
                return Err(Invalid::new(
                    path,
                    "missing: a text template, e.g. \"Run ${run_name} failed\"",
                ));
            }
            continue;
        };
        if required && text.trim().is_empty() {
            return Err(Invalid::new(path, "must not be empty"));
        }
        if text.len() > max {
            return Err(Invalid::new(
                path,
                format!("is {} bytes; at most {max} bytes are accepted", text.len()),
            ));
        }
        let secrets = template::check_text(text).map_err(|e| e.within(&path))?;
        if let Some(secret) = secrets.first() {
            return Err(Invalid::new(
                path,
                format!(
                    "uses ${{{secret}}}, a team secret: secrets cannot be sent in notification text, which everyone in the channel reads"
                ),
            ));
        }
    }
    if let Some(severity) = &a.severity
        && !severity.contains("${")
        && !SEVERITIES.contains(&severity.as_str())
    {
        return Err(Invalid::new(
            "action.severity",
            format!(
                "unknown severity {severity:?}; expected one of {}",
                SEVERITIES.join(", ")
            ),
        ));
    }
    Ok(References {
        integration: Some(integration),
        notifies: true,
        ..References::default()
    })
}

/// Why an automation does not fire on an event: `reason` is `scope`, `event_type`,
/// `states`, `metric`, `filter` or `disabled`; `field` the event's field that decided,
/// where one did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Mismatch {
    pub fn new(reason: &'static str, field: Option<String>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field,
            message: message.into(),
        }
    }
}

/// An automation ready to evaluate events: the filter compiled once.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub automation: Automation,
    pub event_type: EventType,
    filter: Option<Filter>,
    states: Vec<RunState>,
    /// For run-metric triggers: the metric and the rule.
    pub metric: Option<MetricTrigger>,
}

impl Compiled {
    pub fn new(automation: Automation) -> Result<Self, Invalid> {
        let event_type = automation.spec.event_type()?;
        let filter = match &automation.spec.event.filter {
            Some(f) => Some(
                Filter::compile(f)
                    .map_err(|e| Invalid::new(e.path, e.message).within("event.filter"))?,
            ),
            None => None,
        };
        let states = automation
            .spec
            .event
            .states
            .iter()
            .flatten()
            .filter_map(|s| RunState::parse(s))
            .collect();
        let metric = automation.spec.event.metric().transpose()?;
        Ok(Self {
            automation,
            event_type,
            filter,
            states,
            metric,
        })
    }

    /// Why this automation does not fire on `event`, or `None` when it does (for a
    /// run-metric trigger, when the event carries its metric: its window decides). The
    /// checks go in the order evaluation makes them: scope, event type, run states, the
    /// metric, the filter; being disabled comes last, so that a preview of a disabled
    /// automation still says whether it would fire once enabled.
    pub fn why_not(&self, event: &Event, document: &Value) -> Option<Mismatch> {
        let spec = &self.automation.spec;
        let scope = spec.scope.key();
        if !event.scope_keys().contains(&scope) {
            return Some(Mismatch::new(
                "scope",
                None,
                format!(
                    "the event happened in {} {}, outside the automation's scope ({scope})",
                    event.scope.as_str(),
                    event.scope_name
                ),
            ));
        }
        if self.event_type != event.event_type {
            return Some(Mismatch::new(
                "event_type",
                None,
                format!(
                    "the automation's trigger {} watches {} events, and this is {}",
                    spec.event.event_type,
                    self.event_type.as_str(),
                    event.event_type.as_str()
                ),
            ));
        }
        if event.event_type == EventType::RunState {
            let state = event.run.as_ref().and_then(|r| r.state.as_deref());
            if !state
                .and_then(RunState::parse)
                .is_some_and(|s| self.states.contains(&s))
            {
                return Some(Mismatch::new(
                    "states",
                    Some("run.state".into()),
                    format!(
                        "the run's state {:?} is not one of the trigger's states",
                        state.unwrap_or_default()
                    ),
                ));
            }
        }
        if let Some(metric) = &self.metric
            && !event
                .metrics
                .as_ref()
                .is_some_and(|m| m.contains_key(&metric.metric))
        {
            return Some(Mismatch::new(
                "metric",
                Some(format!("metrics.{}", metric.metric)),
                format!("the event carries no value of {}", metric.metric),
            ));
        }
        if let Some(field) = self.filter.as_ref().and_then(|f| f.mismatch(document)) {
            return Some(Mismatch::new(
                "filter",
                Some(field.clone()),
                format!("the filter's condition on {field} does not match the event"),
            ));
        }
        if !spec.enabled {
            return Some(Mismatch::new(
                "disabled",
                None,
                "the automation is disabled; enabled, it would fire",
            ));
        }
        None
    }

    /// Whether this automation fires on `event` (whose scope the lookup already matched).
    pub fn matches(&self, event: &Event, document: &Value) -> bool {
        if !self.automation.spec.enabled || self.event_type != event.event_type {
            return false;
        }
        if event.event_type == EventType::RunState {
            let state = event
                .run
                .as_ref()
                .and_then(|r| r.state.as_deref())
                .and_then(RunState::parse);
            if !state.is_some_and(|s| self.states.contains(&s)) {
                return false;
            }
        }
        self.filter.as_ref().is_none_or(|f| f.matches(document))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> AutomationInput {
        serde_json::from_value(v).unwrap()
    }

    fn webhook() -> Value {
        json!({"name": "deploy", "scope": {"type": "registry", "name": "model", "collection": "resnet"},
               "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": {"$regex": "^prod"}}},
               "action": {"type": "webhook", "integration": "i1",
                          "payload": {"v": "${artifact_version_string}", "auth": "${GH_TOKEN}"}}})
    }

    #[test]
    fn valid_automation_reports_its_references() {
        let refs = input(webhook()).validate().unwrap();
        assert_eq!(refs.integration.as_deref(), Some("i1"));
        assert_eq!(
            refs.secrets.into_iter().collect::<Vec<_>>(),
            vec!["GH_TOKEN"]
        );
        assert_eq!(input(webhook()).scope.key(), "registry/model/resnet");
    }

    #[test]
    fn invalid_automations_name_the_field() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|v| v["event"]["filter"] = json!({"alias": {"$regx": "^p"}})),
                "event.filter.alias.$regx",
            ),
            (
                Box::new(|v| v["event"]["filter"] = json!({"alias": {"$regex": "(unclosed"}})),
                "event.filter.alias.$regex",
            ),
            (
                Box::new(|v| v["event"]["type"] = json!("ADD_ALIAS")),
                "event.type",
            ),
            (
                Box::new(|v| v["event"]["type"] = json!("RUN_METRIC_THRESHOLD")),
                "event.type",
            ),
            (
                Box::new(|v| v["event"]["labels"] = json!(["x"])),
                "event.labels",
            ),
            (
                Box::new(|v| v["action"]["payload"] = json!({"x": ["${nope}"]})),
                "action.payload.x[0]",
            ),
            (
                Box::new(|v| v["action"]["type"] = json!("email")),
                "action.type",
            ),
            (
                Box::new(|v| v["action"]["integration"] = Value::Null),
                "action.integration",
            ),
            (Box::new(|v| v["name"] = json!("")), "name"),
            (
                Box::new(|v| v["scope"] = json!({"type": "registry", "name": "a b"})),
                "scope.name",
            ),
            (
                Box::new(|v| v["event"] = json!({"type": "RUN_STATE"})),
                "event.type",
            ),
            (
                Box::new(|v| {
                    v["scope"] = json!({"type": "project", "name": "p"});
                    v["event"] = json!({"type": "RUN_STATE"});
                }),
                "event.states",
            ),
            (
                Box::new(|v| {
                    v["scope"] = json!({"type": "project", "name": "p"});
                    v["event"] = json!({"type": "RUN_STATE", "states": ["ASLEEP"]});
                }),
                "event.states[0]",
            ),
            (
                Box::new(|v| v["event"]["states"] = json!(["FAILED"])),
                "event.states",
            ),
        ];
        for (change, field) in cases {
            let mut v = webhook();
            change(&mut v);
            let err = input(v.clone()).validate().unwrap_err();
            assert_eq!(err.field, field, "{v}: {err}");
        }
    }

    fn metric(trigger: Value) -> Result<References, Invalid> {
        input(
            json!({"name": "watch", "scope": {"type": "project", "name": "p"},
                     "event": trigger, "action": {"type": "no_op"}}),
        )
        .validate()
    }

    #[test]
    fn metric_triggers_are_checked_when_saved_and_filed_under_run_metrics() {
        let ok = json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "agg": "AVERAGE",
                        "window": 5, "op": "$gt", "threshold": 2.5,
                        "filter": {"run.name": {"$regex": "^sweep"}}});
        metric(ok.clone()).unwrap();
        let spec = input(
            json!({"name": "watch", "scope": {"type": "team"}, "event": ok,
                                "action": {"type": "no_op"}}),
        );
        assert_eq!(spec.index_type(), "RUN_METRICS");
        assert_eq!(spec.event_type().unwrap(), EventType::RunMetrics);
        // The rule's fields read back as written.
        let back: AutomationInput =
            serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back.event, spec.event);
        let compiled = Compiled::new(Automation {
            id: "a".into(),
            team: "acme".into(),
            spec,
            created_at: String::new(),
            updated_at: String::new(),
        })
        .unwrap();
        assert_eq!(compiled.metric.as_ref().unwrap().needs(), 5);
        let refused = [
            (
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "window": 0, "op": "$gt", "threshold": 1}),
                "event.window",
            ),
            (
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "agg": "MEDIAN", "op": "$gt", "threshold": 1}),
                "event.agg",
            ),
            (
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "op": "$between", "threshold": 1}),
                "event.op",
            ),
            (
                json!({"type": "RUN_METRIC_CHANGE", "metric": "loss", "current_window": 2, "prior_window": 2, "amount": -1}),
                "event.amount",
            ),
            (
                json!({"type": "RUN_METRIC_ZSCORE", "metric": "loss", "window": 1001, "threshold": 3}),
                "event.window",
            ),
            (
                json!({"type": "RUN_METRIC_NAN", "metric": "loss", "cooldown_seconds": 400_000_000}),
                "event.cooldown_seconds",
            ),
            (
                json!({"type": "RUN_METRIC_NAN", "metric": "loss", "wndow": 3}),
                "event.wndow",
            ),
            (json!({"type": "RUN_METRIC_NAN"}), "event.metric"),
            (
                json!({"type": "RUN_METRIC_NAN", "metric": "loss", "states": ["FAILED"]}),
                "event.states",
            ),
            (
                json!({"type": "RUN_STATE", "states": ["FAILED"], "metric": "loss"}),
                "event.metric",
            ),
            (
                json!({"type": "RUN_METRICS", "metric": "loss"}),
                "event.type",
            ),
        ];
        for (trigger, field) in refused {
            let err = metric(trigger.clone()).unwrap_err();
            assert_eq!(err.field, field, "{trigger}: {err}");
        }
        // Run triggers belong to projects, whole ones.
        let nan = json!({"type": "RUN_METRIC_NAN", "metric": "loss"});
        let in_registry = input(
            json!({"name": "w", "scope": {"type": "registry", "name": "m"},
                                       "event": nan, "action": {"type": "no_op"}}),
        );
        assert_eq!(in_registry.validate().unwrap_err().field, "event.type");
        let in_collection = input(json!({"name": "w",
            "scope": {"type": "project", "name": "p", "collection": "c"},
            "event": nan, "action": {"type": "no_op"}}));
        assert_eq!(
            in_collection.validate().unwrap_err().field,
            "scope.collection"
        );
    }

    #[test]
    fn run_state_automation_matches_only_its_states() {
        let mut spec = input(json!({"name": "failed", "scope": {"type": "team"},
            "event": {"type": "RUN_STATE", "states": ["FAILED"], "filter": {"run.name": {"$contains": "sweep"}}},
            "action": {"type": "no_op"}}));
        spec.validate().unwrap();
        let automation = Automation {
            id: "a".into(),
            team: "acme".into(),
            spec: spec.clone(),
            created_at: String::new(),
            updated_at: String::new(),
        };
        let compiled = Compiled::new(automation).unwrap();
        let event = |state: &str, name: &str| {
            let e: crate::domain::event::EventInput =
                serde_json::from_value(json!({"event_type": "RUN_STATE", "project": "p",
                "run": {"id": "r", "name": name, "state": state}}))
                .unwrap();
            e.validate("acme", "e".into(), time::OffsetDateTime::UNIX_EPOCH)
                .unwrap()
        };
        for (state, name, expected) in [
            ("CRASHED", "sweep-1", true),
            ("FINISHED", "sweep-1", false),
            ("FAILED", "solo", false),
        ] {
            let e = event(state, name);
            assert_eq!(
                compiled.matches(&e, &e.filter_document()),
                expected,
                "{state} {name}"
            );
        }
        spec.enabled = false;
        let disabled = Compiled::new(Automation {
            id: "a".into(),
            team: "acme".into(),
            spec,
            created_at: String::new(),
            updated_at: String::new(),
        })
        .unwrap();
        let e = event("FAILED", "sweep-2");
        assert!(!disabled.matches(&e, &e.filter_document()));
    }
}
