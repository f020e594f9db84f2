//! Run metrics: the values a run logs, the window of last values kept per (run, metric),
//! and the four metric triggers that look at it. No I/O: the store keeps windows, the
//! evaluator calls [`MetricTrigger::fires`] after each new value.
//!
//! - threshold: with at least `window` values, `agg` of the last `window` values `op`
//!   `threshold` fires (`LATEST` is the newest value).
//! - change: with at least `current_window + prior_window` values, `current` is `agg` of the
//!   last `current_window` values and `prior` `agg` of the `prior_window` values before them;
//!   the change is `current − prior` (ABSOLUTE) or `(current − prior) / |prior|` (RELATIVE,
//!   none when prior is 0); it fires when the change is at least `amount` in `direction`.
//! - z-score: the newest value against the `window` values before it (mean and population
//!   standard deviation; none when that is 0, as when those values are all equal, whatever
//!   the rounding of their mean); fires when `z ≥ threshold` (INCREASE),
//!   `z ≤ −threshold` (DECREASE) or `|z| ≥ threshold` (ANY).
//! - NaN: fires when the newest value is NaN or infinite.
//!
//! A window that holds a NaN or infinite value among the values a threshold, change or
//! z-score trigger looks at does not fire it: arithmetic on such values means nothing, and
//! the NaN trigger is the one that watches for them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Invalid, from_json};

/// Most values a trigger may look at: a window item never grows past this.
pub const MAX_WINDOW: usize = 1000;

/// Longest metric name.
pub const MAX_METRIC_NAME_BYTES: usize = 256;

/// A metric name: 1 to [`MAX_METRIC_NAME_BYTES`] bytes with no control characters (`/`,
/// `.` and spaces are common in metric names and allowed).
pub fn check_metric_name(field: &str, name: &str) -> Result<(), Invalid> {
    let problem = if name.is_empty() {
        "must not be empty".to_string()
    } else if name.len() > MAX_METRIC_NAME_BYTES {
        format!("is longer than {MAX_METRIC_NAME_BYTES} bytes")
    } else if name.chars().any(char::is_control) {
        "must not contain control characters".to_string()
    } else {
        return Ok(());
    };
    let shown: String = name.chars().take(64).collect();
    Err(Invalid::new(
        field,
        format!("metric name {shown:?} {problem}"),
    ))
}

/// A metric value as an event carries it: a JSON number, or `"NaN"`, `"Infinity"`,
/// `"-Infinity"` (JSON has no such numbers).
pub fn read_value(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// A metric value as a template renders it: a number when finite, else its name.
pub fn render_value(value: f64) -> Value {
    if value.is_nan() {
        Value::String("NaN".into())
    } else if value == f64::INFINITY {
        Value::String("Infinity".into())
    } else if value == f64::NEG_INFINITY {
        Value::String("-Infinity".into())
    } else {
        serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Agg {
    Latest,
    Average,
    Min,
    Max,
}

impl Agg {
    /// The aggregate of `values` (oldest first, none of them empty).
    fn of(self, values: &[f64]) -> f64 {
        match self {
            Agg::Latest => values[values.len() - 1],
            Agg::Average => values.iter().sum::<f64>() / values.len() as f64,
            Agg::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            Agg::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = "$gt")]
    Gt,
    #[serde(rename = "$gte")]
    Gte,
    #[serde(rename = "$lt")]
    Lt,
    #[serde(rename = "$lte")]
    Lte,
    #[serde(rename = "$eq")]
    Eq,
    #[serde(rename = "$ne")]
    Ne,
}

impl Op {
    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Op::Gt => left > right,
            Op::Gte => left >= right,
            Op::Lt => left < right,
            Op::Lte => left <= right,
            Op::Eq => left == right,
            Op::Ne => left != right,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeType {
    Absolute,
    Relative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Direction {
    Increase,
    Decrease,
    Any,
}

impl Direction {
    /// Whether a signed `change` is at least `amount` (> 0) this way.
    fn reached(self, change: f64, amount: f64) -> bool {
        match self {
            Direction::Increase => change >= amount,
            Direction::Decrease => change <= -amount,
            Direction::Any => change.abs() >= amount,
        }
    }
}

/// What a metric trigger watches and when it fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    Threshold {
        agg: Agg,
        window: usize,
        op: Op,
        threshold: f64,
    },
    Change {
        agg: Agg,
        current_window: usize,
        prior_window: usize,
        change_type: ChangeType,
        direction: Direction,
        amount: f64,
    },
    Zscore {
        window: usize,
        threshold: f64,
        direction: Direction,
    },
    Nan,
}

/// A run-metric trigger: the metric it watches, its rule, and how long a run that fired it
/// is left alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricTrigger {
    pub metric: String,
    pub rule: Rule,
    pub cooldown_seconds: u64,
}

/// A run fires an automation at most once a day unless its trigger says otherwise.
pub const DEFAULT_COOLDOWN_SECONDS: u64 = 24 * 3600;

/// The fields of a metric trigger as a client writes them, beside `type` and `filter`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields {
    metric: Option<String>,
    agg: Option<Agg>,
    window: Option<usize>,
    op: Option<Op>,
    threshold: Option<f64>,
    current_window: Option<usize>,
    prior_window: Option<usize>,
    change_type: Option<ChangeType>,
    direction: Option<Direction>,
    amount: Option<f64>,
    cooldown_seconds: Option<u64>,
}

fn required<T>(value: Option<T>, field: &str, what: &str) -> Result<T, Invalid> {
    value.ok_or_else(|| Invalid::new(field, format!("missing: {what}")))
}

fn window(value: Option<usize>, field: &str) -> Result<usize, Invalid> {
    let n = required(value, field, "how many of the last values to look at")?;
    if (1..=MAX_WINDOW).contains(&n) {
        Ok(n)
    } else {
        Err(Invalid::new(
            field,
            format!("must be 1 to {MAX_WINDOW} values, not {n}"),
        ))
    }
}

fn finite(value: Option<f64>, field: &str, what: &str) -> Result<f64, Invalid> {
    let x = required(value, field, what)?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(Invalid::new(field, "must be a finite number"))
    }
}

fn positive(value: Option<f64>, field: &str, what: &str) -> Result<f64, Invalid> {
    let x = finite(value, field, what)?;
    if x > 0.0 {
        Ok(x)
    } else {
        Err(Invalid::new(field, format!("must be more than 0, not {x}")))
    }
}

impl MetricTrigger {
    /// The trigger of type `event_type` (`RUN_METRIC_THRESHOLD`, `…_CHANGE`, `…_ZSCORE`,
    /// `…_NAN`) from its other `fields` (all but `type` and `filter`); errors name the field
    /// under `event.`.
    pub fn parse(event_type: &str, fields: Map<String, Value>) -> Result<Self, Invalid> {
        let f: Fields = from_json(Value::Object(fields)).map_err(|e| e.within("event"))?;
        let at = |field: &str| format!("event.{field}");
        let metric = required(
            f.metric.clone(),
            &at("metric"),
            "the name of the metric to watch",
        )?;
        check_metric_name(&at("metric"), &metric)?;
        let unused = |present: bool, field: &str| -> Result<(), Invalid> {
            if present {
                Err(Invalid::new(
                    at(field),
                    format!("{event_type} triggers do not take {field}"),
                ))
            } else {
                Ok(())
            }
        };
        let rule = match event_type {
            "RUN_METRIC_THRESHOLD" => {
                unused(f.current_window.is_some(), "current_window")?;
                unused(f.prior_window.is_some(), "prior_window")?;
                unused(f.change_type.is_some(), "change_type")?;
                unused(f.direction.is_some(), "direction")?;
                unused(f.amount.is_some(), "amount")?;
                Rule::Threshold {
                    agg: f.agg.unwrap_or(Agg::Latest),
                    window: window(f.window.or(Some(1)), &at("window"))?,
                    op: required(f.op, &at("op"), "$gt, $gte, $lt, $lte, $eq or $ne")?,
                    threshold: finite(f.threshold, &at("threshold"), "the value to compare with")?,
                }
            }
            "RUN_METRIC_CHANGE" => {
                unused(f.window.is_some(), "window")?;
                unused(f.op.is_some(), "op")?;
                unused(f.threshold.is_some(), "threshold")?;
                let current = window(f.current_window, &at("current_window"))?;
                let prior = window(f.prior_window, &at("prior_window"))?;
                if current + prior > MAX_WINDOW {
                    return Err(Invalid::new(
                        at("prior_window"),
                        format!("current_window + prior_window must be at most {MAX_WINDOW}"),
                    ));
                }
                Rule::Change {
                    agg: f.agg.unwrap_or(Agg::Average),
                    current_window: current,
                    prior_window: prior,
                    change_type: f.change_type.unwrap_or(ChangeType::Absolute),
                    direction: f.direction.unwrap_or(Direction::Any),
                    amount: positive(f.amount, &at("amount"), "how large a change fires")?,
                }
            }
            "RUN_METRIC_ZSCORE" => {
                unused(f.agg.is_some(), "agg")?;
                unused(f.op.is_some(), "op")?;
                unused(f.current_window.is_some(), "current_window")?;
                unused(f.prior_window.is_some(), "prior_window")?;
                unused(f.change_type.is_some(), "change_type")?;
                unused(f.amount.is_some(), "amount")?;
                let n = window(f.window, &at("window"))?;
                if n + 1 > MAX_WINDOW {
                    return Err(Invalid::new(
                        at("window"),
                        format!("must be at most {} values", MAX_WINDOW - 1),
                    ));
                }
                Rule::Zscore {
                    window: n,
                    threshold: positive(f.threshold, &at("threshold"), "the z-score that fires")?,
                    direction: f.direction.unwrap_or(Direction::Any),
                }
            }
            "RUN_METRIC_NAN" => {
                for (present, field) in [
                    (f.agg.is_some(), "agg"),
                    (f.window.is_some(), "window"),
                    (f.op.is_some(), "op"),
                    (f.threshold.is_some(), "threshold"),
                    (f.current_window.is_some(), "current_window"),
                    (f.prior_window.is_some(), "prior_window"),
                    (f.change_type.is_some(), "change_type"),
                    (f.direction.is_some(), "direction"),
                    (f.amount.is_some(), "amount"),
                ] {
                    unused(present, field)?;
                }
                Rule::Nan
            }
            other => {
                return Err(Invalid::new(
                    "event.type",
                    format!("{other} is not a run-metric trigger"),
                ));
            }
        };
        Ok(Self {
            metric,
            rule,
            cooldown_seconds: match f.cooldown_seconds {
                None => DEFAULT_COOLDOWN_SECONDS,
                Some(s) if s <= MAX_COOLDOWN_SECONDS => s,
                Some(s) => {
                    return Err(Invalid::new(
                        at("cooldown_seconds"),
                        format!("must be at most {MAX_COOLDOWN_SECONDS} (a year), not {s}"),
                    ));
                }
            },
        })
    }

    /// How many of the last values the trigger looks at: what a window must keep for it.
    pub fn needs(&self) -> usize {
        match self.rule {
            Rule::Threshold { window, .. } => window,
            Rule::Change {
                current_window,
                prior_window,
                ..
            } => current_window + prior_window,
            Rule::Zscore { window, .. } => window + 1,
            Rule::Nan => 1,
        }
    }

    /// Whether the trigger fires on `window` (values oldest first, the newest last); the
    /// answer is the newest value, which `${metric_value}` renders.
    pub fn fires(&self, window: &[f64]) -> Option<f64> {
        let newest = *window.last()?;
        let looked_at = window.get(window.len().checked_sub(self.needs())?..)?;
        let fired = match self.rule {
            Rule::Nan => !newest.is_finite(),
            _ if looked_at.iter().any(|v| !v.is_finite()) => false,
            Rule::Threshold {
                agg, op, threshold, ..
            } => op.holds(agg.of(looked_at), threshold),
            Rule::Change {
                agg,
                current_window,
                change_type,
                direction,
                amount,
                ..
            } => {
                let (prior, current) = looked_at.split_at(looked_at.len() - current_window);
                change(agg.of(current), agg.of(prior), change_type)
                    .is_some_and(|c| direction.reached(c, amount))
            }
            Rule::Zscore {
                threshold,
                direction,
                ..
            } => {
                let (before, _) = looked_at.split_at(looked_at.len() - 1);
                let mean = before.iter().sum::<f64>() / before.len() as f64;
                let variance =
                    before.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / before.len() as f64;
                let constant = before.iter().all(|v| *v == before[0]);
                zscore(newest, constant, mean, variance)
                    .is_some_and(|z| direction.reached(z, threshold))
            }
        };
        fired.then_some(newest)
    }
}

impl MetricTrigger {
    /// Whether the trigger fires once a value joined `window` with `newer` values after it
    /// (0: it is the newest). A late value fires only the triggers whose values it joins,
    /// so that a repeated evaluation of the same newest values cannot fire twice; the NaN
    /// trigger fires on the value added, wherever it lands, and answers that value.
    pub fn fires_after(&self, window: &[f64], newer: usize) -> Option<f64> {
        let added = *window
            .len()
            .checked_sub(newer + 1)
            .and_then(|i| window.get(i))?;
        match self.rule {
            Rule::Nan => (!added.is_finite()).then_some(added),
            _ if newer >= self.needs() => None,
            _ => self.fires(window),
        }
    }
}

/// The z-score of `value` against values of this mean and population variance: none when
/// those values are all equal (their deviation is 0, whatever the rounding of the mean
/// says) or their deviation is 0.
fn zscore(value: f64, constant: bool, mean: f64, variance: f64) -> Option<f64> {
    let deviation = variance.max(0.0).sqrt();
    (!constant && deviation > 0.0).then(|| (value - mean) / deviation)
}

/// The change from `prior` to `current`: none when relative to a prior of 0.
fn change(current: f64, prior: f64, change_type: ChangeType) -> Option<f64> {
    match change_type {
        ChangeType::Absolute => Some(current - prior),
        ChangeType::Relative => (prior != 0.0).then(|| (current - prior) / prior.abs()),
    }
}

/// The last values of one metric of one run, ordered by step, at most `capacity` of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// `(step, value)`, ascending by step. Stored as `[step, value]` pairs whose value is a
    /// number or `"NaN"`, `"Infinity"`, `"-Infinity"`.
    #[serde(with = "points")]
    pub points: Vec<(i64, f64)>,
}

/// Points as JSON can keep them: JSON has no NaN or infinities, so those are strings.
mod points {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(points: &[(i64, f64)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            points
                .iter()
                .map(|(step, v)| (step, super::render_value(*v))),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(i64, f64)>, D::Error> {
        let pairs: Vec<(i64, Value)> = Vec::deserialize(d)?;
        pairs
            .into_iter()
            .map(|(step, v)| {
                super::read_value(&v).map(|v| (step, v)).ok_or_else(|| {
                    D::Error::custom(format!("step {step}: {v} is not a metric value"))
                })
            })
            .collect()
    }
}

/// What the engine keeps per (run, metric): the window, for each automation watching the
/// metric until when (unix ms) this run leaves it alone after it fired, and the recent
/// firings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricState {
    pub window: Window,
    #[serde(default)]
    pub cooldowns: std::collections::BTreeMap<String, i64>,
    /// The firings of the last [`FIRINGS_KEPT_MS`], at most [`MAX_FIRINGS_KEPT`], oldest
    /// first. They are written with the window, so an event delivered again after its
    /// points were written but before its executions were still creates them: its points
    /// are repeats by then, and these say what they fired.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fired: Vec<Firing>,
}

/// One automation that fired on one event's point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    pub event: String,
    pub automation: String,
    /// What `${metric_value}` renders.
    #[serde(with = "one_value")]
    pub value: f64,
    pub at_ms: i64,
}

/// How long firings are remembered: as long as an event id is (a week).
pub const FIRINGS_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;
/// Most firings one state remembers, which bounds the item's size: each takes up to about
/// 240 bytes, so with a full window (about 45 KB) and a thousand cooldowns (50 KB) a state
/// stays near 330 KB, under DynamoDB's 400 KB.
pub const MAX_FIRINGS_KEPT: usize = 1000;

/// The longest cooldown a trigger may set.
pub const MAX_COOLDOWN_SECONDS: u64 = 365 * 24 * 3600;

mod one_value {
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        super::render_value(*value).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let v = Value::deserialize(d)?;
        super::read_value(&v).ok_or_else(|| D::Error::custom(format!("{v} is not a metric value")))
    }
}

impl MetricState {
    /// Whether the run leaves `automation` alone at `now_ms`.
    pub fn cooling(&self, automation: &str, now_ms: i64) -> bool {
        self.cooldowns
            .get(automation)
            .is_some_and(|until| *until > now_ms)
    }

    /// Records that `automation` fired on `event`'s point with `value` at `now_ms`: the run
    /// leaves it alone for `seconds` (none when 0). Forgets the cooldowns that are over and
    /// the firings past what is kept.
    pub fn record(&mut self, event: &str, automation: &str, value: f64, now_ms: i64, seconds: u64) {
        self.fired(automation, now_ms, seconds);
        let cutoff = now_ms.saturating_sub(FIRINGS_KEPT_MS);
        if self.fired.first().is_some_and(|f| f.at_ms <= cutoff) {
            self.fired.retain(|f| f.at_ms > cutoff);
        }
        if self.fired.len() >= MAX_FIRINGS_KEPT {
            let excess = self.fired.len() + 1 - MAX_FIRINGS_KEPT;
            self.fired.drain(..excess);
        }
        self.fired.push(Firing {
            event: event.to_string(),
            automation: automation.to_string(),
            value,
            at_ms: now_ms,
        });
    }

    /// Leaves `automation` alone for `seconds` from `now_ms` (none when 0), and forgets
    /// the cooldowns that are over.
    pub fn fired(&mut self, automation: &str, now_ms: i64, seconds: u64) {
        self.cooldowns.retain(|_, until| *until > now_ms);
        if seconds > 0 {
            let until = now_ms.saturating_add(
                i64::try_from(seconds)
                    .unwrap_or(i64::MAX)
                    .saturating_mul(1000),
            );
            self.cooldowns.insert(automation.to_string(), until);
        }
    }
}

/// What [`Window::insert`] did with a point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The window changed: evaluate the triggers. `newer` values are kept after this one
    /// (0: it is the newest).
    Added { newer: usize },
    /// A value of that step is kept already: the first one counts, this one is ignored.
    Repeated,
    /// Older than every value kept, with the window full: it would fall out at once.
    TooOld,
}

impl Window {
    /// Puts a point in its place by step, then drops the oldest past `capacity`.
    pub fn insert(&mut self, step: i64, value: f64, capacity: usize) -> Inserted {
        let inserted = self.add(step, value, capacity);
        self.trim(capacity);
        inserted
    }

    /// Puts a point in its place by step, unless `capacity` newer ones are kept already
    /// (it would fall out at once); the oldest past `capacity` stay until [`Window::trim`].
    pub fn add(&mut self, step: i64, value: f64, capacity: usize) -> Inserted {
        let at = match self.points.last() {
            // The common case: the next step of a run.
            Some((last, _)) if step > *last => self.points.len(),
            None => 0,
            _ => match self.points.binary_search_by_key(&step, |(s, _)| *s) {
                Ok(_) => return Inserted::Repeated,
                Err(at) => at,
            },
        };
        let newer = self.points.len() - at;
        if newer >= capacity {
            return Inserted::TooOld;
        }
        self.points.insert(at, (step, value));
        Inserted::Added { newer }
    }

    /// Drops the oldest points past `capacity`.
    pub fn trim(&mut self, capacity: usize) {
        let excess = self.points.len().saturating_sub(capacity);
        self.points.drain(..excess);
    }

    /// The values, oldest first.
    pub fn values(&self) -> Vec<f64> {
        self.points.iter().map(|(_, v)| *v).collect()
    }
}

/// An automation watching the metric: its id and its trigger.
#[derive(Debug, Clone, Copy)]
pub struct Watcher<'a> {
    pub automation: &'a str,
    pub trigger: &'a MetricTrigger,
}

/// A point a batch brings: the event it came in, its step and value, when it was received,
/// and which of the watchers its event may fire (their filters matched it).
#[derive(Debug, Clone, Copy)]
pub struct NewPoint<'a> {
    pub event: &'a str,
    pub step: i64,
    pub value: f64,
    pub at_ms: i64,
    pub watchers: &'a [usize],
}

/// Watcher `watcher` fired on point `point`; `${metric_value}` renders `value`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fire {
    pub point: usize,
    pub watcher: usize,
    pub value: f64,
}

impl MetricState {
    /// Adds a batch's `points` (in step order) to the window kept at `capacity` values.
    /// After each new value, fires the point's watchers that are not cooling down, and
    /// records each firing (cooldown and firing) in the state. `None` when no point was
    /// new: there is nothing to write.
    ///
    /// Each check costs the same whatever the trigger's window (see [`Series`]); the
    /// series is built once per batch from the values kept, and again only after a late
    /// value.
    pub fn advance(
        &mut self,
        capacity: usize,
        watchers: &[Watcher<'_>],
        points: &[NewPoint<'_>],
    ) -> Option<Vec<Fire>> {
        self.advance_noting(capacity, watchers, points, &mut Vec::new())
    }

    /// [`Self::advance`], also noting in `held` each (point, watcher) that the run's
    /// cooldown kept from being checked.
    pub fn advance_noting(
        &mut self,
        capacity: usize,
        watchers: &[Watcher<'_>],
        points: &[NewPoint<'_>],
        held: &mut Vec<(usize, usize)>,
    ) -> Option<Vec<Fire>> {
        let mut series: Option<Series<'_>> = None;
        let mut fires = Vec::new();
        for (index, point) in points.iter().enumerate() {
            let Inserted::Added { newer } = self.window.add(point.step, point.value, capacity)
            else {
                continue;
            };
            let series = match &mut series {
                Some(s) if newer == 0 => {
                    s.push(point.value);
                    s
                }
                Some(s) => {
                    s.reset(&self.window.values());
                    s
                }
                None => {
                    let mut s = Series::new(watchers.iter().map(|w| w.trigger));
                    s.reset(&self.window.values());
                    series.insert(s)
                }
            };
            for &w in point.watchers {
                let Some(watcher) = watchers.get(w) else {
                    continue;
                };
                if self.cooling(watcher.automation, point.at_ms) {
                    held.push((index, w));
                    continue;
                }
                if let Some(value) = series.fires(w, newer) {
                    self.record(
                        point.event,
                        watcher.automation,
                        value,
                        point.at_ms,
                        watcher.trigger.cooldown_seconds,
                    );
                    fires.push(Fire {
                        point: index,
                        watcher: w,
                        value,
                    });
                }
            }
        }
        self.window.trim(capacity);
        series.map(|_| fires)
    }
}

mod series;
pub use series::Series;

#[cfg(test)]
mod tests;
