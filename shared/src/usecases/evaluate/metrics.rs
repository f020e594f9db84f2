//! Run metrics in evaluation. The points of a batch's `RUN_METRICS` events are grouped by
//! (run, metric); each group reads its state once, adds its points in step order, checks
//! the automations watching the metric after each new value, and writes the state back
//! once, conditionally: one read and one write per watched metric of a run, however many
//! automations watch it. Metrics no automation watches are dropped before any read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::StreamExt;
use time::Duration;

use crate::domain::automation::Compiled;
use crate::domain::event::Event;
use crate::domain::metric::{MetricState, MetricTrigger, NewPoint, Watcher, read_value};
use crate::ports::{StoreError, StoreResult};
use crate::usecases::Engine;

/// How long a run's metric state is kept after its last point (longer when a cooldown
/// lasts longer).
pub const STATE_TTL: Duration = Duration::days(30);

/// How many times a group reads and writes again when another evaluator wrote first.
const MAX_ROUNDS: usize = 8;

/// How many groups are read and written at once.
const CONCURRENT_GROUPS: usize = 16;

/// An automation that fired on the point of one event.
pub struct Fired {
    /// The index of the event in the batch.
    pub event: usize,
    pub automation: Arc<Compiled>,
    pub metric: String,
    pub value: f64,
}

/// What a group ended with: its firings, or the failure that sends its events back.
pub struct GroupOutcome {
    /// The indexes of the group's events.
    pub events: Vec<usize>,
    pub result: StoreResult<Vec<Fired>>,
    /// The (event index, automation id) pairs whose rule the run's cooldown held back:
    /// the automation's filter matched the event, and its rule was not checked.
    pub cooling: Vec<(usize, String)>,
}

/// The points of one metric of one run in a batch.
struct Group {
    team: String,
    /// `{project}/{run id}`: run ids are unique in a project.
    run: String,
    metric: String,
    /// The enabled automations watching the metric in the run's scopes, with their
    /// triggers.
    watchers: Vec<(Arc<Compiled>, MetricTrigger)>,
    /// Each watcher's index, by automation id.
    slots: HashMap<String, usize>,
    /// As many values as the largest need of the watchers.
    capacity: usize,
    points: Vec<Point>,
}

struct Point {
    event: usize,
    step: i64,
    value: f64,
    at_ms: i64,
    /// The watchers (indexes) this point's event may fire: their filters match it.
    watchers: Vec<usize>,
}

/// Evaluates the metric events `watched` names, each with the automations filed under its
/// scope and `RUN_METRICS` (before their filters).
pub async fn evaluate(
    engine: &Engine,
    events: &[Event],
    watched: Vec<(usize, Vec<Arc<Compiled>>)>,
) -> Vec<GroupOutcome> {
    let groups = group(events, watched);
    futures_util::stream::iter(groups)
        .map(|group| async move {
            let indexes = group.points.iter().map(|p| p.event).collect();
            let (result, cooling) = match run_group(engine, events, &group).await {
                Ok((fired, cooling)) => (Ok(fired), cooling),
                Err(e) => (Err(e), Vec::new()),
            };
            GroupOutcome {
                events: indexes,
                result,
                cooling,
            }
        })
        .buffer_unordered(CONCURRENT_GROUPS)
        .collect()
        .await
}

/// Sorts the points of the batch into (run, metric) groups, dropping the metrics no
/// automation watches.
fn group(events: &[Event], watched: Vec<(usize, Vec<Arc<Compiled>>)>) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: HashMap<(&str, String, &str), usize> = HashMap::new();
    for (i, candidates) in &watched {
        let event = &events[*i];
        let (Some(run), Some(step), Some(metrics)) = (&event.run, event.step, &event.metrics)
        else {
            continue;
        };
        let mut by_metric: HashMap<&str, Vec<(&Arc<Compiled>, &MetricTrigger)>> = HashMap::new();
        for c in candidates {
            if let (true, Some(trigger)) = (c.automation.spec.enabled, &c.metric) {
                by_metric
                    .entry(trigger.metric.as_str())
                    .or_default()
                    .push((c, trigger));
            }
        }
        if by_metric.is_empty() {
            continue;
        }
        let document = event.filter_document();
        let firing: HashSet<&str> = candidates
            .iter()
            .filter(|c| c.matches(event, &document))
            .map(|c| c.automation.id.as_str())
            .collect();
        let run_key = format!("{}/{}", event.scope_name, run.id);
        for (name, value) in metrics {
            let (Some(watching), Some(value)) = (by_metric.get(name.as_str()), read_value(value))
            else {
                continue;
            };
            let at = *index
                .entry((event.team.as_str(), run_key.clone(), name.as_str()))
                .or_insert_with(|| {
                    groups.push(Group {
                        team: event.team.clone(),
                        run: run_key.clone(),
                        metric: name.clone(),
                        watchers: Vec::new(),
                        slots: HashMap::new(),
                        capacity: 1,
                        points: Vec::new(),
                    });
                    groups.len() - 1
                });
            let group = &mut groups[at];
            let mut fires = Vec::new();
            for (c, trigger) in watching {
                let w = match group.slots.get(&c.automation.id) {
                    Some(w) => *w,
                    None => {
                        group
                            .slots
                            .insert(c.automation.id.clone(), group.watchers.len());
                        group.capacity = group.capacity.max(trigger.needs());
                        group.watchers.push((Arc::clone(c), (*trigger).clone()));
                        group.watchers.len() - 1
                    }
                };
                if firing.contains(c.automation.id.as_str()) {
                    fires.push(w);
                }
            }
            group.points.push(Point {
                event: *i,
                step: step as i64,
                value,
                at_ms: event.received_at_ms,
                watchers: fires,
            });
        }
    }
    for group in &mut groups {
        // In step order; points of one step in the order they came (the first one counts).
        group.points.sort_by_key(|p| p.step);
    }
    groups
}

/// Reads the group's state, adds its points and writes it back, again from the read when
/// another evaluator wrote first. Answers the firings, those an earlier delivery of the
/// same events recorded included, and the (event index, automation id) pairs the run's
/// cooldown held back in the round that was written.
async fn run_group(
    engine: &Engine,
    events: &[Event],
    group: &Group,
) -> StoreResult<(Vec<Fired>, Vec<(usize, String)>)> {
    for round in 0..MAX_ROUNDS {
        if round > 0 {
            // Evaluators that collided try again at different times.
            let ms = rand::Rng::random_range(&mut rand::rng(), 0..(5u64 << round.min(5)));
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let stored = engine
            .metrics
            .get_metric_state(&group.team, &group.run, &group.metric)
            .await?;
        let (mut state, version) =
            stored.map_or((MetricState::default(), 0), |s| (s.value, s.version));
        let mut fired = recorded_firings(events, group, &state);
        let mut held = Vec::new();
        if !add_points(events, group, &mut state, &mut fired, &mut held) {
            return Ok((fired, held));
        }
        let now = engine.clock.now();
        let kept_until = state
            .cooldowns
            .values()
            .max()
            .and_then(|ms| {
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000).ok()
            })
            .map_or(now + STATE_TTL, |until| until.max(now + STATE_TTL));
        match engine
            .metrics
            .put_metric_state(
                &group.team,
                &group.run,
                &group.metric,
                &state,
                version,
                kept_until,
            )
            .await
        {
            Ok(_) => return Ok((fired, held)),
            Err(StoreError::Stale) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Backend(format!(
        "the state of metric {:?} of run {} kept changing under {MAX_ROUNDS} attempts; the events come back",
        group.metric, group.run
    )))
}

/// The firings the state recorded for this group's events: a delivery before this one
/// wrote them with the points, and its executions may not have been written.
fn recorded_firings(events: &[Event], group: &Group, state: &MetricState) -> Vec<Fired> {
    if state.fired.is_empty() {
        return Vec::new();
    }
    let points: HashMap<&str, &Point> = group
        .points
        .iter()
        .map(|p| (events[p.event].id.as_str(), p))
        .collect();
    state
        .fired
        .iter()
        .filter_map(|f| {
            let point = points.get(f.event.as_str())?;
            // An automation deleted, disabled or no longer matching fires no more.
            let automation = point
                .watchers
                .iter()
                .map(|&w| &group.watchers[w].0)
                .find(|w| w.automation.id == f.automation)?;
            Some(Fired {
                event: point.event,
                automation: Arc::clone(automation),
                metric: group.metric.clone(),
                value: f.value,
            })
        })
        .collect()
}

/// Adds the group's points to the state (see [`MetricState::advance`]) and appends the
/// firings, and the (event index, automation id) pairs the run's cooldown held back;
/// answers whether the state changed.
fn add_points(
    events: &[Event],
    group: &Group,
    state: &mut MetricState,
    fired: &mut Vec<Fired>,
    held: &mut Vec<(usize, String)>,
) -> bool {
    let watchers: Vec<Watcher<'_>> = group
        .watchers
        .iter()
        .map(|(c, trigger)| Watcher {
            automation: &c.automation.id,
            trigger,
        })
        .collect();
    let points: Vec<NewPoint<'_>> = group
        .points
        .iter()
        .map(|p| NewPoint {
            event: &events[p.event].id,
            step: p.step,
            value: p.value,
            at_ms: p.at_ms,
            watchers: &p.watchers,
        })
        .collect();
    let mut cooling = Vec::new();
    let Some(fires) = state.advance_noting(group.capacity, &watchers, &points, &mut cooling) else {
        return false;
    };
    held.extend(cooling.into_iter().map(|(point, watcher)| {
        let automation = &group.watchers[watcher].0.automation.id;
        (group.points[point].event, automation.clone())
    }));
    fired.extend(fires.into_iter().map(|f| Fired {
        event: group.points[f.point].event,
        automation: Arc::clone(&group.watchers[f.watcher].0),
        metric: group.metric.clone(),
        value: f.value,
    }));
    true
}
