//! The values of one (run, metric) while a batch adds to them, with what the triggers read
//! kept up to date as each value is appended, so that checking a trigger costs the same
//! whatever its window; only a late value, which lands before the newest, rebuilds it.
//!
//! Each span of values a trigger reads (the last `window`, the `prior_window` before the
//! current one, the `window` before the newest) is a sliding window aggregated with two
//! stacks: values enter at the back, whose aggregate grows by one value at a time, and
//! leave from the front, which holds the aggregates of its suffixes, computed when the
//! front runs empty (each value is part of that once per pass, so O(1) amortised). A span's
//! aggregate only ever combines values inside it — nothing is subtracted — so a huge value
//! leaves no rounding behind once it is out of the span. Means and variances combine as in
//! Chan et al.'s parallel algorithm, which keeps a small variance of large values exact
//! enough. A prefix count says whether a span holds a non-finite value.

use super::{Agg, MetricTrigger, Rule};

/// A span of values: it ends `offset` values before the newest, and holds `len` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    offset: usize,
    len: usize,
}

/// The count, sum, mean, sum of squared deviations from the mean, minimum and maximum of
/// some finite values.
#[derive(Debug, Clone, Copy)]
struct Summary {
    n: u32,
    sum: f64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Summary {
    const EMPTY: Summary = Summary {
        n: 0,
        sum: 0.0,
        mean: 0.0,
        m2: 0.0,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
    };

    fn of(value: f64) -> Summary {
        if !value.is_finite() {
            return Summary::EMPTY;
        }
        Summary {
            n: 1,
            sum: value,
            mean: value,
            m2: 0.0,
            min: value,
            max: value,
        }
    }

    /// The summary of both parts' values.
    fn and(self, other: Summary) -> Summary {
        if self.n == 0 {
            return other;
        }
        if other.n == 0 {
            return self;
        }
        let n = self.n + other.n;
        let (a, b, total) = (f64::from(self.n), f64::from(other.n), f64::from(n));
        let delta = other.mean - self.mean;
        Summary {
            n,
            sum: self.sum + other.sum,
            mean: self.mean + delta * (b / total),
            m2: self.m2 + other.m2 + delta * delta * (a * b / total),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }
}

/// One span, slid along the series with two stacks over `values[start..end]`: the front
/// `values[start..middle]` with the summaries of its suffixes, the back
/// `values[middle..end]` with its summary.
#[derive(Debug)]
struct Sliding {
    span: Span,
    start: usize,
    middle: usize,
    end: usize,
    /// `suffixes[i - base]` summarises `values[i..middle]`.
    suffixes: Vec<Summary>,
    base: usize,
    back: Summary,
}

impl Sliding {
    fn new(span: Span) -> Self {
        Self {
            span,
            start: 0,
            middle: 0,
            end: 0,
            suffixes: Vec::new(),
            base: 0,
            back: Summary::EMPTY,
        }
    }

    fn clear(&mut self) {
        *self = Self::new(self.span);
    }

    /// Follows the span after `values` grew by one.
    fn advance(&mut self, values: &[f64]) {
        let Some(end) = values.len().checked_sub(self.span.offset) else {
            return;
        };
        while self.end < end {
            self.back = self.back.and(Summary::of(values[self.end]));
            self.end += 1;
        }
        while self.end - self.start > self.span.len {
            if self.start == self.middle {
                self.flip(values);
            }
            self.start += 1;
        }
    }

    /// Moves the back to the front, summarising its suffixes.
    fn flip(&mut self, values: &[f64]) {
        self.suffixes.clear();
        self.suffixes.resize(self.end - self.start, Summary::EMPTY);
        let mut acc = Summary::EMPTY;
        for i in (self.start..self.end).rev() {
            acc = Summary::of(values[i]).and(acc);
            self.suffixes[i - self.start] = acc;
        }
        self.base = self.start;
        self.middle = self.end;
        self.back = Summary::EMPTY;
    }

    fn summary(&self) -> Summary {
        if self.start == self.middle {
            self.back
        } else {
            self.suffixes[self.start - self.base].and(self.back)
        }
    }
}

/// The series, and the triggers checked against it (in the order they were given), each
/// with the sliding spans it reads.
#[derive(Debug)]
pub struct Series<'t> {
    triggers: Vec<(&'t MetricTrigger, [Option<usize>; 2])>,
    values: Vec<f64>,
    /// `bad[i]`: how many of `values[..i]` are not finite.
    bad: Vec<u32>,
    spans: Vec<Sliding>,
}

impl<'t> Series<'t> {
    /// An empty series for these triggers.
    pub fn new(triggers: impl IntoIterator<Item = &'t MetricTrigger>) -> Self {
        let mut spans: Vec<Sliding> = Vec::new();
        let mut track = |offset: usize, len: usize| -> Option<usize> {
            let span = Span { offset, len };
            if let Some(i) = spans.iter().position(|s| s.span == span) {
                return Some(i);
            }
            spans.push(Sliding::new(span));
            Some(spans.len() - 1)
        };
        let triggers = triggers
            .into_iter()
            .map(|t| {
                let reads = match t.rule {
                    Rule::Threshold { agg, window, .. } if agg != Agg::Latest => {
                        [track(0, window), None]
                    }
                    Rule::Change {
                        agg,
                        current_window,
                        prior_window,
                        ..
                    } if agg != Agg::Latest => [
                        track(0, current_window),
                        track(current_window, prior_window),
                    ],
                    Rule::Zscore { window, .. } => [track(1, window), None],
                    _ => [None, None],
                };
                (t, reads)
            })
            .collect();
        Self {
            triggers,
            values: Vec::new(),
            bad: vec![0],
            spans,
        }
    }

    /// Starts over from `values` (oldest first).
    pub fn reset(&mut self, values: &[f64]) {
        self.values.clear();
        self.bad.truncate(1);
        for s in &mut self.spans {
            s.clear();
        }
        for &v in values {
            self.push(v);
        }
    }

    /// Appends a value as the newest.
    pub fn push(&mut self, value: f64) {
        self.values.push(value);
        let bad = self.bad[self.bad.len() - 1] + u32::from(!value.is_finite());
        self.bad.push(bad);
        for s in &mut self.spans {
            s.advance(&self.values);
        }
    }

    /// `agg` of a span: `LATEST` is its newest value, the others read its summary.
    fn aggregate(&self, agg: Agg, offset: usize, sliding: Option<usize>) -> f64 {
        let summary = sliding.map(|i| self.spans[i].summary());
        match (agg, summary) {
            (Agg::Average, Some(s)) => s.sum / f64::from(s.n.max(1)),
            (Agg::Min, Some(s)) => s.min,
            (Agg::Max, Some(s)) => s.max,
            _ => self.values[self.values.len() - 1 - offset],
        }
    }

    /// Whether trigger `index` fires now that a value joined the series with `newer` values
    /// after it: the same answer as [`MetricTrigger::fires_after`] on the values, up to
    /// rounding.
    pub fn fires(&self, index: usize, newer: usize) -> Option<f64> {
        let (trigger, reads) = self.triggers.get(index)?;
        let n = self.values.len();
        let added = *self.values.get(n.checked_sub(newer + 1)?)?;
        if let Rule::Nan = trigger.rule {
            return (!added.is_finite()).then_some(added);
        }
        let needs = trigger.needs();
        if newer >= needs || n < needs || self.bad[n] - self.bad[n - needs] > 0 {
            return None;
        }
        let newest = self.values[n - 1];
        let fired = match trigger.rule {
            Rule::Nan => false,
            Rule::Threshold {
                agg, op, threshold, ..
            } => op.holds(self.aggregate(agg, 0, reads[0]), threshold),
            Rule::Change {
                agg,
                current_window,
                change_type,
                direction,
                amount,
                ..
            } => {
                let current = self.aggregate(agg, 0, reads[0]);
                let prior = self.aggregate(agg, current_window, reads[1]);
                super::change(current, prior, change_type)
                    .is_some_and(|c| direction.reached(c, amount))
            }
            Rule::Zscore {
                threshold,
                direction,
                ..
            } => reads[0]
                .map(|i| self.spans[i].summary())
                .and_then(|s| super::zscore(newest, s.min == s.max, s.mean, s.m2 / f64::from(s.n)))
                .is_some_and(|z| direction.reached(z, threshold)),
        };
        fired.then_some(newest)
    }
}
