//! Evaluate: find the automations of an event's scope and type (an index lookup), apply
//! their filters, and create one execution per match — idempotently — then queue it.
//! Run metrics go through their windows first ([`metrics`]).

pub mod metrics;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::{ActionMessage, Engine, Error, Result};
use crate::domain::automation::{Automation, Compiled, Mismatch};
use crate::domain::evaluation::{EventRecord, Fired, NotFired};
use crate::domain::event::{Event, EventType, format_millis};
use crate::domain::execution::{ActionRecord, EventRef, Execution, ExecutionStatus};
use crate::domain::ids::execution_id;
use crate::domain::limits::MAX_RECORDED_PAYLOAD_BYTES;
use crate::domain::metric::render_value;
use crate::domain::template::{self, Var};
use crate::ports::{Lookup, QueueError, StoreError};

/// Events matched together: they share their index lookups. Measured on the local runtime
/// (`bench e2e`), groups of 10 deliver 3,200–3,300/s where one group of a whole batch of
/// 100 delivered 2,050–2,200/s and one event at a time 2,400–2,540/s; on DynamoDB a group
/// of 10 events in one registry costs 2 queries.
const MATCH_GROUP: usize = 10;

/// Compiled automations are cached by id and revision; past this many the cache starts over.
const CACHE_LIMIT: usize = 50_000;

/// Evaluates events; keeps compiled filters between calls.
pub struct Evaluator {
    engine: Engine,
    compiled: Mutex<HashMap<String, Arc<Compiled>>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Executions created now.
    pub created: usize,
    /// Executions that already existed (a redelivered event).
    pub existing: usize,
}

impl Evaluator {
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The automations that fire on `event`.
    pub async fn matches(&self, event: &Event) -> Result<Vec<Arc<Compiled>>> {
        let mut matches = self.matches_batch(std::slice::from_ref(event)).await?;
        Ok(matches.pop().unwrap_or_default())
    }

    /// For each event, in order, the automations that fire on it (for a metric event, the
    /// ones that may: their metric's window decides). The events share their index
    /// lookups: a batch reads each (team, event type, scope) partition once.
    pub async fn matches_batch(&self, events: &[Event]) -> Result<Vec<Vec<Arc<Compiled>>>> {
        let all: Vec<&Event> = events.iter().collect();
        let candidates = self.candidates_batch(&all).await?;
        Ok(events
            .iter()
            .zip(candidates)
            .map(|(event, candidates)| {
                let document = event.filter_document();
                candidates
                    .into_iter()
                    .filter(|c| c.matches(event, &document))
                    .collect()
            })
            .collect())
    }

    /// For each event, in order, the automations filed under its scope and type, compiled,
    /// before their filters.
    async fn candidates_batch(&self, events: &[&Event]) -> Result<Vec<Vec<Arc<Compiled>>>> {
        // Events of one team, type and scope ask the same: each distinct lookup is made,
        // and its automations compiled, once.
        let mut lookups: Vec<Lookup> = Vec::new();
        let mut distinct: HashMap<(&str, EventType, Vec<String>), usize> = HashMap::new();
        let asks: Vec<usize> = events
            .iter()
            .map(|event| {
                let key = (event.team.as_str(), event.event_type, event.scope_keys());
                *distinct
                    .entry(key)
                    .or_insert_with_key(|(team, event_type, keys)| {
                        lookups.push(Lookup {
                            team: team.to_string(),
                            event_type: *event_type,
                            scope_keys: keys.clone(),
                        });
                        lookups.len() - 1
                    })
            })
            .collect();
        let found = self.engine.store.matching_automations(&lookups).await?;
        let compiled: Vec<Vec<Arc<Compiled>>> = found
            .into_iter()
            .map(|found| found.into_iter().filter_map(|a| self.compile(a)).collect())
            .collect();
        Ok(asks.into_iter().map(|i| compiled[i].clone()).collect())
    }

    fn compile(&self, automation: Automation) -> Option<Arc<Compiled>> {
        let key = format!("{}@{}", automation.id, automation.updated_at);
        let mut cache = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = cache.get(&key) {
            return Some(hit.clone());
        }
        let id = automation.id.clone();
        match Compiled::new(automation) {
            Ok(compiled) => {
                if cache.len() >= CACHE_LIMIT {
                    cache.clear();
                }
                let compiled = Arc::new(compiled);
                cache.insert(key, compiled.clone());
                Some(compiled)
            }
            Err(e) => {
                tracing::error!(automation = %id, error = %e, "stored automation no longer compiles; skipped");
                None
            }
        }
    }

    /// Creates the executions of a batch of events and queues the ones to deliver, then
    /// records what evaluation made of each event. Answers for each event, in order: one
    /// event that cannot be evaluated (its executions not written or not queued) fails
    /// alone, and the others of the batch go on.
    pub async fn evaluate(&self, events: &[Event]) -> Vec<Result<Evaluation>> {
        let mut outcomes: Vec<Result<Evaluation>> =
            events.iter().map(|_| Ok(Evaluation::default())).collect();
        let mut fired = Fire::new(events.len());
        self.fire_plain(events, &mut fired, &mut outcomes).await;
        self.fire_metrics(events, &mut fired, &mut outcomes).await;
        let messages = self
            .record(events, &fired.owners, &fired.executions, &mut outcomes)
            .await;
        self.queue(&messages, &mut outcomes).await;
        self.keep_verdicts(events, fired.verdicts, &outcomes).await;
        outcomes
    }

    /// The executions the events other than run metrics fire, and why the others of their
    /// scope and type do not. A group whose lookups fail fails its events.
    async fn fire_plain(
        &self,
        events: &[Event],
        fire: &mut Fire,
        outcomes: &mut [Result<Evaluation>],
    ) {
        let plain: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].event_type != EventType::RunMetrics)
            .collect();
        for chunk in plain.chunks(MATCH_GROUP) {
            let group: Vec<&Event> = chunk.iter().map(|&i| &events[i]).collect();
            match self.candidates_batch(&group).await {
                Ok(candidates) => {
                    for (&i, candidates) in chunk.iter().zip(candidates) {
                        let event = &events[i];
                        let document = event.filter_document();
                        for compiled in candidates {
                            if compiled.matches(event, &document) {
                                fire.push(i, new_execution(event, &compiled.automation));
                            } else {
                                fire.not_fired(i, &compiled, why_not(&compiled, event, &document));
                            }
                        }
                    }
                }
                Err(e) => {
                    for &i in chunk {
                        outcomes[i] = Err(copy(&e));
                    }
                }
            }
        }
    }

    /// The executions the run-metric events fire through their windows, and why the other
    /// automations watching their scope do not. A group whose state cannot be written fails
    /// its events.
    async fn fire_metrics(
        &self,
        events: &[Event],
        fire: &mut Fire,
        outcomes: &mut [Result<Evaluation>],
    ) {
        let metric: Vec<usize> = (0..events.len())
            .filter(|&i| events[i].event_type == EventType::RunMetrics)
            .collect();
        if metric.is_empty() {
            return;
        }
        // The metric events of a batch are mostly the points of a few runs: one lookup for
        // all of them reads each (scope, RUN_METRICS) partition once.
        let group: Vec<&Event> = metric.iter().map(|&i| &events[i]).collect();
        let watched: Vec<(usize, Vec<Arc<Compiled>>)> = match self.candidates_batch(&group).await {
            Ok(candidates) => metric.iter().copied().zip(candidates).collect(),
            Err(e) => {
                for &i in &metric {
                    outcomes[i] = Err(copy(&e));
                }
                return;
            }
        };
        // Automations that cannot fire on an event say why now; the others wait for their
        // metric's window.
        let mut eligible: Vec<(usize, Arc<Compiled>)> = Vec::new();
        for (i, candidates) in &watched {
            let document = events[*i].filter_document();
            for compiled in candidates {
                match compiled.why_not(&events[*i], &document) {
                    Some(why) => fire.not_fired(*i, compiled, why),
                    None => eligible.push((*i, Arc::clone(compiled))),
                }
            }
        }
        let mut fired_now: HashSet<(usize, String)> = HashSet::new();
        let mut cooling: HashSet<(usize, String)> = HashSet::new();
        for group in metrics::evaluate(&self.engine, events, watched).await {
            match group.result {
                Ok(fired) => {
                    for f in fired {
                        fired_now.insert((f.event, f.automation.automation.id.clone()));
                        let execution = metric_execution(
                            &events[f.event],
                            &f.automation.automation,
                            &f.metric,
                            f.value,
                        );
                        fire.push(f.event, execution);
                    }
                    cooling.extend(group.cooling);
                }
                Err(e) => {
                    tracing::error!(error = %e, "metric state could not be updated; its events come back");
                    let e = Error::from(e);
                    for i in group.events {
                        outcomes[i] = Err(copy(&e));
                    }
                }
            }
        }
        for (i, compiled) in eligible {
            let key = (i, compiled.automation.id.clone());
            if fired_now.contains(&key) {
                continue;
            }
            let why = metric_mismatch(&compiled, cooling.contains(&key));
            fire.not_fired(i, &compiled, why);
        }
    }

    /// Keeps what evaluation made of each event it finished (the failed ones come back and
    /// are recorded then). A record that cannot be written is logged: the event's
    /// executions stand, and only its explanation is missing.
    async fn keep_verdicts(
        &self,
        events: &[Event],
        verdicts: Vec<Verdict>,
        outcomes: &[Result<Evaluation>],
    ) {
        let now = self.engine.clock.now();
        let at_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
        // One record per event: a batch may hold two copies of an event (sent twice before
        // its first copy was remembered); the copy that fired the most is kept.
        let mut kept: HashMap<(&str, &str), EventRecord> = HashMap::new();
        let mut order = Vec::new();
        for ((event, verdict), _) in events
            .iter()
            .zip(verdicts)
            .zip(outcomes)
            .filter(|(_, outcome)| outcome.is_ok())
        {
            let record = EventRecord::new(event.clone(), at_ms, verdict.fired, verdict.not_fired);
            let key = (event.team.as_str(), event.id.as_str());
            match kept.get(&key) {
                Some(seen) if seen.fired.len() >= record.fired.len() => {}
                Some(_) => {
                    kept.insert(key, record);
                }
                None => {
                    order.push(key);
                    kept.insert(key, record);
                }
            }
        }
        let records: Vec<EventRecord> = order.iter().filter_map(|k| kept.remove(k)).collect();
        for r in records.iter().filter(|r| r.fired.is_empty()) {
            let why: Vec<String> = r
                .not_fired
                .iter()
                .map(|n| format!("{}: {}", n.automation_name, n.reason))
                .collect();
            tracing::debug!(team = %r.event.team, event = %r.event.id, not_fired = ?why, "the event fired no automation");
        }
        if records.is_empty() {
            return;
        }
        let expires = now + super::ingest::DEDUP_WINDOW;
        if let Err(e) = self
            .engine
            .store
            .record_evaluations(&records, expires)
            .await
        {
            tracing::error!(events = records.len(), error = %e, "what evaluation made of these events could not be recorded; their executions stand");
        }
    }

    /// Writes the executions (each once, whatever the redeliveries); returns the action
    /// messages of the pending ones, each with the index of its event.
    async fn record(
        &self,
        events: &[Event],
        owners: &[usize],
        executions: &[Execution],
        outcomes: &mut [Result<Evaluation>],
    ) -> Vec<(usize, String)> {
        if executions.is_empty() {
            return Vec::new();
        }
        let written = self.engine.store.create_executions(executions).await;
        let mut messages = Vec::new();
        for ((owner, execution), written) in owners.iter().zip(executions).zip(written) {
            let outcome = &mut outcomes[*owner];
            match (written, outcome.as_mut()) {
                (Err(e), Ok(_)) => {
                    tracing::error!(event = %events[*owner].id, execution = %execution.id, error = %e, "execution could not be written; the event comes back");
                    *outcome = Err(e.into());
                }
                (Ok(was_created), Ok(report)) => {
                    if was_created {
                        report.created += 1;
                    } else {
                        report.existing += 1;
                    }
                    // A redelivered event queues its webhook executions again, created
                    // now or not: the first evaluation may have stopped between creating
                    // and queueing them. Dispatch skips the ones that are no longer pending.
                    if execution.status == ExecutionStatus::Pending {
                        messages.push((*owner, action_message(execution)));
                    }
                }
                // The event failed already; its messages so far are harmless (dispatch
                // claims before it sends) and it comes back whole.
                (_, Err(_)) => {}
            }
        }
        messages
    }

    /// Queues the action messages; a batch that cannot be sent fails its events.
    async fn queue(&self, messages: &[(usize, String)], outcomes: &mut [Result<Evaluation>]) {
        for chunk in messages.chunks(100) {
            let bodies: Vec<String> = chunk.iter().map(|(_, body)| body.clone()).collect();
            if let Err(e) = self.engine.actions.send_batch(&bodies).await {
                for (owner, _) in chunk {
                    outcomes[*owner] = Err(Error::Queue(QueueError(e.0.clone())));
                }
            }
        }
    }
}

fn action_message(execution: &Execution) -> String {
    let message = ActionMessage {
        team: execution.team.clone(),
        execution_id: execution.id.clone(),
    };
    // A struct of two strings always serializes.
    serde_json::to_string(&message).unwrap_or_default()
}

/// The same failure, for each of the events it failed.
fn copy(e: &Error) -> Error {
    match e {
        Error::Queue(q) => Error::Queue(QueueError(q.0.clone())),
        other => Error::Store(StoreError::Backend(other.to_string())),
    }
}

/// What the automations of one event's scope and type did with it.
#[derive(Default)]
struct Verdict {
    fired: Vec<Fired>,
    not_fired: Vec<NotFired>,
}

/// The executions a batch fires, each with the index of its event, and every event's
/// verdicts.
struct Fire {
    owners: Vec<usize>,
    executions: Vec<Execution>,
    verdicts: Vec<Verdict>,
}

impl Fire {
    fn new(events: usize) -> Self {
        Self {
            owners: Vec::new(),
            executions: Vec::new(),
            verdicts: (0..events).map(|_| Verdict::default()).collect(),
        }
    }

    fn push(&mut self, event: usize, execution: Execution) {
        self.verdicts[event].fired.push(Fired {
            automation_id: execution.automation_id.clone(),
            automation_name: execution.automation_name.clone(),
            execution_id: execution.id.clone(),
        });
        self.owners.push(event);
        self.executions.push(execution);
    }

    fn not_fired(&mut self, event: usize, compiled: &Compiled, why: Mismatch) {
        let a = &compiled.automation;
        self.verdicts[event]
            .not_fired
            .push(NotFired::new(&a.id, &a.spec.name, why));
    }
}

/// Why `compiled` did not fire on `event`, which [`Compiled::matches`] refused.
fn why_not(compiled: &Compiled, event: &Event, document: &Value) -> Mismatch {
    compiled.why_not(event, document).unwrap_or_else(|| {
        // `matches` checks being enabled first, `why_not` last: they agree otherwise.
        Mismatch::new("disabled", None, "the automation is disabled")
    })
}

/// Why a run-metric automation whose filter matched did not fire on the event's value.
fn metric_mismatch(compiled: &Compiled, cooling: bool) -> Mismatch {
    let metric = compiled
        .metric
        .as_ref()
        .map(|m| m.metric.as_str())
        .unwrap_or_default();
    if cooling {
        return Mismatch::new(
            "cooldown",
            Some(format!("metrics.{metric}")),
            "held back by its cooldown: the automation fired on this run within its cooldown_seconds, so its rule was not checked",
        );
    }
    Mismatch::new(
        "metric",
        Some(format!("metrics.{metric}")),
        format!(
            "the trigger's rule on {metric} did not fire on this value and the run's earlier ones"
        ),
    )
}

/// The execution of `automation` firing on `event`.
pub fn new_execution(event: &Event, automation: &Automation) -> Execution {
    let id = execution_id(&event.team, &event.id, &automation.id);
    let vars = variables(event, &automation.spec.name, &id);
    execution_with(event, automation, id, vars)
}

/// The execution of `automation` firing on `event`'s value of `metric`: `${metric_name}`
/// and `${metric_value}` render them.
pub fn metric_execution(
    event: &Event,
    automation: &Automation,
    metric: &str,
    value: f64,
) -> Execution {
    let id = execution_id(&event.team, &event.id, &automation.id);
    let mut vars = variables(event, &automation.spec.name, &id);
    vars.insert("metric_name".into(), Value::String(metric.to_string()));
    vars.insert("metric_value".into(), render_value(value));
    execution_with(event, automation, id, vars)
}

fn execution_with(
    event: &Event,
    automation: &Automation,
    id: String,
    vars: Map<String, Value>,
) -> Execution {
    let action = &automation.spec.action;
    let (status, template, record) = match action.kind.as_str() {
        "webhook" => {
            let template = action.payload.clone().unwrap_or_else(|| json!({}));
            let masked =
                template::render(
                    &template,
                    MAX_RECORDED_PAYLOAD_BYTES,
                    &mut |var| match var {
                        Var::Secret(_) => Some(Value::String("***".into())),
                        other => lookup(&vars, other),
                    },
                );
            let record = ActionRecord {
                kind: "webhook".into(),
                integration: action.integration.clone(),
                url: None,
                ..ActionRecord::showing(masked)
            };
            (ExecutionStatus::Pending, template, record)
        }
        "notification" => {
            let scope = format!("{} {}", event.scope.as_str(), event.scope_name);
            let template = crate::actions::notification::template(action, &scope);
            // The body is rendered at delivery, for the integration's destination.
            let record = ActionRecord {
                kind: "notification".into(),
                integration: action.integration.clone(),
                ..ActionRecord::default()
            };
            (ExecutionStatus::Pending, template, record)
        }
        "queue_job" => {
            let template = crate::actions::job::template(action);
            // The job's overrides are rendered when it is enqueued, and shown then.
            let record = ActionRecord {
                kind: "queue_job".into(),
                queue: action.queue.clone(),
                ..ActionRecord::default()
            };
            (ExecutionStatus::Pending, template, record)
        }
        kind => {
            let record = ActionRecord {
                kind: kind.to_string(),
                ..ActionRecord::default()
            };
            (ExecutionStatus::Finished, Value::Null, record)
        }
    };
    Execution {
        id,
        team: event.team.clone(),
        automation_id: automation.id.clone(),
        automation_name: automation.spec.name.clone(),
        triggered_at: format_millis(event.received_at_ms),
        triggered_at_ms: event.received_at_ms,
        status,
        event: EventRef {
            event_type: event.event_type,
            id: event.id.clone(),
        },
        action: record,
        attempts: Vec::new(),
        result: None,
        template,
        vars,
        version: 0,
        next_attempt_at_ms: None,
        claimed_by: None,
        round_start: 0,
    }
}

/// The template variables of an event (secrets are resolved at delivery).
pub fn variables(event: &Event, automation_name: &str, execution_id: &str) -> Map<String, Value> {
    let artifact = event.artifact.as_ref();
    let run = event.run.as_ref();
    let mut vars = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        vars.insert(k.to_string(), v.map_or(Value::Null, Value::String));
    };
    put("event_type", Some(event.event_type.as_str().to_string()));
    put("event_author", event.author.clone());
    put("entity_name", Some(event.team.clone()));
    put("project_name", Some(event.scope_name.clone()));
    put("artifact_version", event.artifact_version());
    put("artifact_version_string", event.artifact_version_string());
    put(
        "artifact_collection_name",
        artifact.map(|a| a.collection.clone()),
    );
    put("alias", artifact.and_then(|a| a.alias.clone()));
    put("tag", artifact.and_then(|a| a.tag.clone()));
    put("run_id", run.map(|r| r.id.clone()));
    put("run_name", run.and_then(|r| r.name.clone()));
    put("run_user", run.and_then(|r| r.user.clone()));
    put("run_state", run.and_then(|r| r.state.clone()));
    put("metric_name", None);
    put("metric_value", None);
    put("automation_name", Some(automation_name.to_string()));
    put("execution_id", Some(execution_id.to_string()));
    vars.insert(
        "artifact_metadata".into(),
        Value::Object(artifact.map(|a| a.metadata.clone()).unwrap_or_default()),
    );
    vars
}

pub use crate::domain::template::lookup;
