//! Events that producers send, validated into the form the engine queues.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::limits::{MAX_DEPTH, MAX_EVENT_BYTES, check_levels, depth, json_len};
use super::metric::{check_metric_name, read_value};
use super::{Invalid, check_collection, check_name};

/// Largest batch accepted in one request.
pub const MAX_BATCH: usize = 1000;

/// Most metrics one `RUN_METRICS` event may carry.
pub const MAX_METRICS_PER_EVENT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    CreateArtifact,
    LinkArtifact,
    UnlinkArtifact,
    AddArtifactAlias,
    AddArtifactTag,
    RemoveArtifactTag,
    RunState,
    RunMetrics,
}

impl EventType {
    pub const ALL: [EventType; 8] = [
        Self::CreateArtifact,
        Self::LinkArtifact,
        Self::UnlinkArtifact,
        Self::AddArtifactAlias,
        Self::AddArtifactTag,
        Self::RemoveArtifactTag,
        Self::RunState,
        Self::RunMetrics,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateArtifact => "CREATE_ARTIFACT",
            Self::LinkArtifact => "LINK_ARTIFACT",
            Self::UnlinkArtifact => "UNLINK_ARTIFACT",
            Self::AddArtifactAlias => "ADD_ARTIFACT_ALIAS",
            Self::AddArtifactTag => "ADD_ARTIFACT_TAG",
            Self::RemoveArtifactTag => "REMOVE_ARTIFACT_TAG",
            Self::RunState => "RUN_STATE",
            Self::RunMetrics => "RUN_METRICS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_artifact(self) -> bool {
        !matches!(self, Self::RunState | Self::RunMetrics)
    }
}

/// Where an event happened: a project or a registry of the team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    Project,
    Registry,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Registry => "registry",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum RunState {
    Running,
    Finished,
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
        }
    }

    /// Parses a run state; `CRASHED` is read as `FAILED`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RUNNING" => Some(Self::Running),
            "FINISHED" => Some(Self::Finished),
            "FAILED" | "CRASHED" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// The artifact part of an event, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub collection: String,
    pub version: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

/// The run part of an event, as sent (`state` is kept as text here and checked in validation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

/// One event as a producer sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    #[serde(default)]
    pub id: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub registry: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub artifact: Option<Artifact>,
    #[serde(default)]
    pub run: Option<Run>,
    #[serde(default)]
    pub metrics: Option<Map<String, Value>>,
    #[serde(default)]
    pub step: Option<u64>,
}

/// A validated event of one team, as queued for evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub team: String,
    pub event_type: EventType,
    pub scope: ScopeKind,
    /// The project's or registry's name.
    pub scope_name: String,
    pub author: Option<String>,
    pub timestamp: String,
    pub received_at_ms: i64,
    pub artifact: Option<Artifact>,
    pub run: Option<Run>,
    /// `RUN_METRICS` only: the step, and the metrics' values at it (numbers, or `"NaN"`,
    /// `"Infinity"`, `"-Infinity"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Map<String, Value>>,
}

impl EventInput {
    /// Validates the event. `id` is used when the producer sent none.
    pub fn validate(self, team: &str, id: String, now: OffsetDateTime) -> Result<Event, Invalid> {
        let event_type = EventType::parse(&self.event_type).ok_or_else(|| {
            let known: Vec<_> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            Invalid::new(
                "event_type",
                format!(
                    "unknown event type {:?}; expected one of {}",
                    self.event_type,
                    known.join(", ")
                ),
            )
        })?;
        if let Some(client_id) = &self.id {
            check_event_id(client_id)?;
        }
        let (scope, scope_name) = match (self.project, self.registry) {
            (Some(p), None) => (ScopeKind::Project, p),
            (None, Some(r)) => (ScopeKind::Registry, r),
            (Some(_), Some(_)) => {
                return Err(Invalid::new(
                    "project",
                    "give either project or registry, not both",
                ));
            }
            (None, None) => {
                return Err(Invalid::new(
                    "project",
                    "missing: every event needs a project or a registry",
                ));
            }
        };
        check_name(scope.as_str(), &scope_name)?;
        if let Some(author) = &self.author {
            check_text("author", author, 256)?;
        }
        let timestamp = match self.timestamp {
            Some(ts) => {
                let parsed = OffsetDateTime::parse(&ts, &Rfc3339).map_err(|e| {
                    Invalid::new(
                        "timestamp",
                        format!("must be an RFC 3339 date-time such as 2026-11-23T18:00:00Z ({e})"),
                    )
                })?;
                format_time(parsed)
            }
            None => format_time(now),
        };
        let (step, metrics) = check_points(event_type, self.step, self.metrics)?;
        let mut run = self.run;
        if event_type.is_artifact() {
            let artifact = self.artifact.as_ref().ok_or_else(|| {
                Invalid::new(
                    "artifact",
                    format!("missing: {} events need an artifact", event_type.as_str()),
                )
            })?;
            check_collection("artifact.collection", &artifact.collection)?;
            check_text("artifact.version", &artifact.version, 128)?;
            for (field, value) in [
                ("artifact.type", &artifact.kind),
                ("artifact.uri", &artifact.uri),
            ] {
                if let Some(v) = value {
                    check_text(field, v, 2048)?;
                }
            }
            let needs = match event_type {
                EventType::AddArtifactAlias => Some(("artifact.alias", &artifact.alias)),
                EventType::AddArtifactTag | EventType::RemoveArtifactTag => {
                    Some(("artifact.tag", &artifact.tag))
                }
                _ => None,
            };
            if let Some((field, None)) = needs {
                return Err(Invalid::new(
                    field,
                    format!("missing: {} events need it", event_type.as_str()),
                ));
            }
            for (field, value) in [
                ("artifact.alias", &artifact.alias),
                ("artifact.tag", &artifact.tag),
            ] {
                if let Some(v) = value {
                    check_text(field, v, 256)?;
                }
            }
            check_metadata(&artifact.metadata)?;
        } else {
            if self.artifact.is_some() {
                return Err(Invalid::new("artifact", "run events carry no artifact"));
            }
            let r = run.as_mut().ok_or_else(|| {
                Invalid::new(
                    "run",
                    format!("missing: {} events need a run", event_type.as_str()),
                )
            })?;
            check_text("run.id", &r.id, 128)?;
            for (field, value) in [("run.name", &r.name), ("run.user", &r.user)] {
                if let Some(v) = value {
                    check_text(field, v, 256)?;
                }
            }
            match r.state.as_deref() {
                None if event_type == EventType::RunState => {
                    return Err(Invalid::new(
                        "run.state",
                        "missing: RUN_STATE events need the state the run entered",
                    ));
                }
                None => {}
                Some(state) => {
                    let parsed = RunState::parse(state).ok_or_else(|| {
                        Invalid::new(
                            "run.state",
                            format!(
                                "unknown run state {state:?}; expected RUNNING, FINISHED, FAILED or CRASHED"
                            ),
                        )
                    })?;
                    r.state = Some(parsed.as_str().to_string());
                }
            }
        }
        let event = Event {
            id: self.id.unwrap_or(id),
            team: team.to_string(),
            event_type,
            scope,
            scope_name,
            author: self.author,
            timestamp,
            received_at_ms: (now.unix_timestamp_nanos() / 1_000_000) as i64,
            artifact: self.artifact,
            run,
            step,
            metrics,
        };
        // Every other field is bounded; only the metadata or the metrics can make an event
        // this large.
        let len = json_len(&event);
        if len > MAX_EVENT_BYTES {
            let field = if event.artifact.is_some() {
                "artifact.metadata"
            } else if event.metrics.is_some() {
                "metrics"
            } else {
                ""
            };
            return Err(Invalid::new(
                field,
                format!(
                    "the event is {len} bytes as JSON; an event may be at most {MAX_EVENT_BYTES} bytes"
                ),
            ));
        }
        Ok(event)
    }
}

/// `RUN_METRICS` events carry a step and 1 to [`MAX_METRICS_PER_EVENT`] metrics, each a
/// number or `"NaN"`, `"Infinity"`, `"-Infinity"` (kept as sent); other events neither.
type Points = (Option<u64>, Option<Map<String, Value>>);

fn check_points(
    event_type: EventType,
    step: Option<u64>,
    metrics: Option<Map<String, Value>>,
) -> Result<Points, Invalid> {
    if event_type != EventType::RunMetrics {
        if metrics.is_some() || step.is_some() {
            return Err(Invalid::new(
                if metrics.is_some() { "metrics" } else { "step" },
                "only RUN_METRICS events carry metrics and step",
            ));
        }
        return Ok((None, None));
    }
    let step = step.ok_or_else(|| {
        Invalid::new(
            "step",
            "missing: RUN_METRICS events need the step the metrics were logged at",
        )
    })?;
    if i64::try_from(step).is_err() {
        return Err(Invalid::new(
            "step",
            format!("must be at most {}", i64::MAX),
        ));
    }
    let metrics = metrics.ok_or_else(|| {
        Invalid::new(
            "metrics",
            "missing: RUN_METRICS events need the metrics, e.g. {\"loss\": 0.31}",
        )
    })?;
    if metrics.is_empty() || metrics.len() > MAX_METRICS_PER_EVENT {
        return Err(Invalid::new(
            "metrics",
            format!(
                "must hold 1 to {MAX_METRICS_PER_EVENT} metrics, got {}",
                metrics.len()
            ),
        ));
    }
    for (name, value) in &metrics {
        check_metric_name("metrics", name)?;
        if read_value(value).is_none() {
            return Err(Invalid::new(
                format!("metrics.{name}"),
                "must be a number, or \"NaN\", \"Infinity\" or \"-Infinity\"",
            ));
        }
    }
    Ok((Some(step), Some(metrics)))
}

/// Metadata nests at most [`MAX_DEPTH`] levels, the metadata object itself being the first.
fn check_metadata(metadata: &Map<String, Value>) -> Result<(), Invalid> {
    let levels = 1 + metadata.values().map(depth).max().unwrap_or(0);
    check_levels("artifact.metadata", levels, MAX_DEPTH)
}

fn check_event_id(id: &str) -> Result<(), Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "id",
            "must be 1 to 128 characters of letters, digits, '.', '_', '-' or ':'",
        ))
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), Invalid> {
    if value.is_empty() {
        Err(Invalid::new(field, "must not be empty"))
    } else if value.len() > max {
        Err(Invalid::new(field, format!("longer than {max} bytes")))
    } else if value.chars().any(char::is_control) {
        Err(Invalid::new(field, "must not contain control characters"))
    } else {
        Ok(())
    }
}

pub fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn format_millis(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map(format_time)
        .unwrap_or_else(|_| ms.to_string())
}

impl Event {
    /// The scope keys an automation can be filed under to see this event, most general first.
    pub fn scope_keys(&self) -> Vec<String> {
        let mut keys = vec![super::automation::TEAM_SCOPE_KEY.to_string()];
        let base = format!("{}/{}", self.scope.as_str(), self.scope_name);
        if let Some(a) = &self.artifact {
            keys.push(format!("{base}/{}", a.collection));
        }
        keys.push(base);
        keys
    }

    /// The document filters are evaluated against.
    pub fn filter_document(&self) -> Value {
        let artifact = self.artifact.as_ref();
        json!({
            "id": self.id,
            "event_type": self.event_type.as_str(),
            "author": self.author,
            "project": (self.scope == ScopeKind::Project).then_some(&self.scope_name),
            "registry": (self.scope == ScopeKind::Registry).then_some(&self.scope_name),
            "alias": artifact.and_then(|a| a.alias.as_ref()),
            "tag": artifact.and_then(|a| a.tag.as_ref()),
            "artifact": artifact,
            "run": self.run,
        })
    }

    /// `artifact://{team}/{project|registry}/{collection}:{version}` unless the producer gave a URI.
    pub fn artifact_version(&self) -> Option<String> {
        let a = self.artifact.as_ref()?;
        Some(a.uri.clone().unwrap_or_else(|| {
            format!(
                "artifact://{}/{}/{}:{}",
                self.team, self.scope_name, a.collection, a.version
            )
        }))
    }

    /// `{team}/{project|registry}/{collection}:{alias or version}`.
    pub fn artifact_version_string(&self) -> Option<String> {
        let a = self.artifact.as_ref()?;
        let label = a.alias.as_ref().unwrap_or(&a.version);
        Some(format!(
            "{}/{}/{}:{label}",
            self.team, self.scope_name, a.collection
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::from_value;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn validate(v: Value) -> Result<Event, Invalid> {
        let input: EventInput = from_value(v).map_err(|e| Invalid::new("", e.to_string()))?;
        input.validate("acme", "generated".into(), now())
    }

    fn alias_event() -> Value {
        json!({"event_type": "ADD_ARTIFACT_ALIAS", "registry": "model", "author": "alice",
               "artifact": {"collection": "resnet", "version": "v4", "alias": "production"}})
    }

    #[test]
    fn a_valid_alias_event_gets_the_generated_id_and_scope_keys() {
        let e = validate(alias_event()).unwrap();
        assert_eq!(e.id, "generated");
        assert_eq!(e.scope, ScopeKind::Registry);
        assert_eq!(
            e.scope_keys(),
            vec!["team", "registry/model/resnet", "registry/model"]
        );
        assert_eq!(
            e.artifact_version_string().unwrap(),
            "acme/model/resnet:production"
        );
        assert_eq!(
            e.artifact_version().unwrap(),
            "artifact://acme/model/resnet:v4"
        );
        assert_eq!(e.filter_document()["alias"], "production");
    }

    #[test]
    fn crashed_runs_are_read_as_failed() {
        let e = validate(json!({"event_type": "RUN_STATE", "project": "detector",
                                "run": {"id": "3kx9", "state": "CRASHED"}}))
        .unwrap();
        assert_eq!(e.run.unwrap().state.as_deref(), Some("FAILED"));
    }

    #[test]
    fn invalid_events_name_the_field() {
        let cases = [
            (json!({"event_type": "NOPE", "project": "p"}), "event_type"),
            (
                json!({"event_type": "ADD_ARTIFACT_ALIAS", "artifact": {"collection": "c", "version": "v", "alias": "a"}}),
                "project",
            ),
            (
                json!({"event_type": "ADD_ARTIFACT_ALIAS", "project": "p", "registry": "r",
                    "artifact": {"collection": "c", "version": "v", "alias": "a"}}),
                "project",
            ),
            (
                json!({"event_type": "ADD_ARTIFACT_ALIAS", "project": "p", "artifact": {"collection": "c", "version": "v"}}),
                "artifact.alias",
            ),
            (
                json!({"event_type": "LINK_ARTIFACT", "project": "p"}),
                "artifact",
            ),
            (
                json!({"event_type": "LINK_ARTIFACT", "project": "p/../x", "artifact": {"collection": "c", "version": "v"}}),
                "project",
            ),
            (
                json!({"event_type": "RUN_STATE", "project": "p", "run": {"id": "r", "state": "ASLEEP"}}),
                "run.state",
            ),
            (json!({"event_type": "RUN_STATE", "project": "p"}), "run"),
            (
                json!({"event_type": "RUN_STATE", "project": "p", "run": {"id": "r", "state": "FAILED"}, "timestamp": "yesterday"}),
                "timestamp",
            ),
            (
                json!({"event_type": "RUN_STATE", "project": "p", "id": "has space", "run": {"id": "r", "state": "FAILED"}}),
                "id",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "metrics": {"loss": 1}}),
                "step",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "step": 1}),
                "metrics",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "step": 1, "metrics": {}}),
                "metrics",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "step": 1,
                       "metrics": {"loss": "nan"}}),
                "metrics.loss",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "step": 1,
                       "metrics": {"loss": [1]}}),
                "metrics.loss",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "step": 1,
                       "metrics": {"": 1}}),
                "metrics",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "step": 1,
                       "metrics": {"a\nb": 1}}),
                "metrics",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r"}, "step": u64::MAX,
                       "metrics": {"loss": 1}}),
                "step",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "step": 1, "metrics": {"loss": 1}}),
                "run",
            ),
            (
                json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r", "state": "ASLEEP"},
                       "step": 1, "metrics": {"loss": 1}}),
                "run.state",
            ),
            (
                json!({"event_type": "RUN_STATE", "project": "p", "run": {"id": "r", "state": "FAILED"}, "step": 1}),
                "step",
            ),
            (
                json!({"event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v"},
                       "metrics": {"loss": 1}}),
                "metrics",
            ),
            (
                json!({"event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v\u{0}"}}),
                "artifact.version",
            ),
        ];
        for (input, field) in cases {
            let err = validate(input.clone()).unwrap_err();
            assert_eq!(err.field, field, "{input}: {err}");
        }
    }

    #[test]
    fn metric_events_keep_their_step_and_values_as_sent() {
        let e = validate(json!({"event_type": "RUN_METRICS", "project": "detector",
            "run": {"id": "3kx9", "name": "sunny-1"}, "step": 1200,
            "metrics": {"loss": 0.31, "grad/norm": "Infinity", "acc": 1}}))
        .unwrap();
        assert_eq!(e.step, Some(1200));
        let metrics = e.metrics.as_ref().unwrap();
        assert_eq!(metrics["grad/norm"], "Infinity");
        assert_eq!(metrics["loss"], 0.31);
        // A run's state is optional on metric events.
        assert_eq!(e.run.as_ref().unwrap().state, None);
        assert_eq!(e.scope_keys(), vec!["team", "project/detector"]);
        let many: Map<String, Value> = (0..=MAX_METRICS_PER_EVENT)
            .map(|i| (format!("m{i}"), json!(i)))
            .collect();
        let err = validate(json!({"event_type": "RUN_METRICS", "project": "p",
            "run": {"id": "r"}, "step": 1, "metrics": many}))
        .unwrap_err();
        assert_eq!(err.field, "metrics");
        assert!(err.message.contains("1 to 500"), "{err}");
        // Big but within the count: the event's size is the limit, and names the metrics.
        let long: Map<String, Value> = (0..MAX_METRICS_PER_EVENT)
            .map(|i| (format!("{i:0>250}"), json!(i)))
            .collect();
        let err = validate(json!({"event_type": "RUN_METRICS", "project": "p",
            "run": {"id": "r"}, "step": 1, "metrics": long}))
        .unwrap_err();
        assert_eq!(err.field, "metrics");
        assert!(err.message.contains("bytes"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = alias_event();
        v["registy"] = json!("model");
        assert!(validate(v).unwrap_err().message.contains("registy"));
    }
}
