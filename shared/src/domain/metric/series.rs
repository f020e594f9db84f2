//! The values of one (run, metric) while a batch adds to them, with what the triggers read
//! kept up to date as each value is appended: prefix sums of the values (less a reference
//! value, which keeps the variance's cancellation small), a prefix count of the non-finite
//! ones, and the minimum and maximum of every span a `MIN`, `MAX` or z-score trigger looks
//! at. Checking a trigger after an append then costs the same whatever its window; only a
//! late value, which lands before the newest, rebuilds the series.

use std::collections::VecDeque;

use super::{Agg, MetricTrigger, Rule};

/// A span of values: it ends `offset` values before the newest, and holds `len` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    offset: usize,
    len: usize,
}

/// The minimum and maximum of a span as the series grows: the indexes of the values that
/// can still become the extreme, in monotonic deques. Non-finite values are left out (a
/// span with one does not fire, the prefix count says so).
#[derive(Debug)]
struct Extremes {
    span: Span,
    min: VecDeque<usize>,
    max: VecDeque<usize>,
}

impl Extremes {
    /// Follows the span after `values` grew by one.
    fn advance(&mut self, values: &[f64]) {
        let Some(end) = values.len().checked_sub(self.span.offset) else {
            return;
        };
        let Some(entering) = end.checked_sub(1) else {
            return;
        };
        let v = values[entering];
        if v.is_finite() {
            while self.min.back().is_some_and(|&i| values[i] >= v) {
                self.min.pop_back();
            }
            self.min.push_back(entering);
            while self.max.back().is_some_and(|&i| values[i] <= v) {
                self.max.pop_back();
            }
            self.max.push_back(entering);
        }
        let start = end.saturating_sub(self.span.len);
        while self.min.front().is_some_and(|&i| i < start) {
            self.min.pop_front();
        }
        while self.max.front().is_some_and(|&i| i < start) {
            self.max.pop_front();
        }
    }
}

/// The series, and the triggers checked against it (in the order they were given).
#[derive(Debug)]
pub struct Series<'t> {
    triggers: Vec<(&'t MetricTrigger, [Option<usize>; 2])>,
    values: Vec<f64>,
    /// The first finite value: sums are of `value − reference`.
    reference: Option<f64>,
    /// `sum[i]`: the sum of the finite `values[..i]` less the reference; `squares` likewise
    /// of their squares; `bad[i]`: how many of `values[..i]` are not finite.
    sum: Vec<f64>,
    squares: Vec<f64>,
    bad: Vec<u32>,
    extremes: Vec<Extremes>,
}

impl<'t> Series<'t> {
    /// An empty series for these triggers.
    pub fn new(triggers: impl IntoIterator<Item = &'t MetricTrigger>) -> Self {
        let mut extremes: Vec<Extremes> = Vec::new();
        let mut track = |span: Span| -> usize {
            if let Some(i) = extremes.iter().position(|e| e.span == span) {
                return i;
            }
            extremes.push(Extremes {
                span,
                min: VecDeque::new(),
                max: VecDeque::new(),
            });
            extremes.len() - 1
        };
        let extreme = |agg: Agg| matches!(agg, Agg::Min | Agg::Max);
        let triggers = triggers
            .into_iter()
            .map(|t| {
                let spans = match t.rule {
                    Rule::Threshold { agg, window, .. } if extreme(agg) => [
                        Some(track(Span {
                            offset: 0,
                            len: window,
                        })),
                        None,
                    ],
                    Rule::Change {
                        agg,
                        current_window,
                        prior_window,
                        ..
                    } if extreme(agg) => [
                        Some(track(Span {
                            offset: 0,
                            len: current_window,
                        })),
                        Some(track(Span {
                            offset: current_window,
                            len: prior_window,
                        })),
                    ],
                    Rule::Zscore { window, .. } => [
                        Some(track(Span {
                            offset: 1,
                            len: window,
                        })),
                        None,
                    ],
                    _ => [None, None],
                };
                (t, spans)
            })
            .collect();
        Self {
            triggers,
            values: Vec::new(),
            reference: None,
            sum: vec![0.0],
            squares: vec![0.0],
            bad: vec![0],
            extremes,
        }
    }

    /// Starts over from `values` (oldest first).
    pub fn reset(&mut self, values: &[f64]) {
        self.values.clear();
        self.reference = None;
        self.sum.truncate(1);
        self.squares.truncate(1);
        self.bad.truncate(1);
        for e in &mut self.extremes {
            e.min.clear();
            e.max.clear();
        }
        for &v in values {
            self.push(v);
        }
    }

    /// Appends a value as the newest.
    pub fn push(&mut self, value: f64) {
        self.values.push(value);
        let (sum, squares, bad) = (
            self.sum[self.sum.len() - 1],
            self.squares[self.squares.len() - 1],
            self.bad[self.bad.len() - 1],
        );
        if value.is_finite() {
            let d = value - *self.reference.get_or_insert(value);
            self.sum.push(sum + d);
            self.squares.push(squares + d * d);
            self.bad.push(bad);
        } else {
            self.sum.push(sum);
            self.squares.push(squares);
            self.bad.push(bad + 1);
        }
        for e in &mut self.extremes {
            e.advance(&self.values);
        }
    }

    /// The sum, the sum of squares (less the reference) and the count of non-finite values
    /// of a span that the series holds.
    fn totals(&self, span: Span) -> (f64, f64, u32) {
        let end = self.values.len() - span.offset;
        let start = end - span.len;
        (
            self.sum[end] - self.sum[start],
            self.squares[end] - self.squares[start],
            self.bad[end] - self.bad[start],
        )
    }

    fn aggregate(&self, agg: Agg, span: Span, extremes: Option<usize>) -> f64 {
        let n = self.values.len();
        match (agg, extremes.map(|i| &self.extremes[i])) {
            (Agg::Latest, _) => self.values[n - 1 - span.offset],
            (Agg::Min, Some(e)) => e.min.front().map_or(f64::NAN, |&i| self.values[i]),
            (Agg::Max, Some(e)) => e.max.front().map_or(f64::NAN, |&i| self.values[i]),
            _ => {
                let (sum, _, _) = self.totals(span);
                sum / span.len as f64 + self.reference.unwrap_or(0.0)
            }
        }
    }

    /// Whether trigger `index` fires now that a value joined the series with `newer` values
    /// after it: the same answer as [`MetricTrigger::fires_after`] on the values.
    pub fn fires(&self, index: usize, newer: usize) -> Option<f64> {
        let (trigger, extremes) = self.triggers.get(index)?;
        let n = self.values.len();
        let added = *self.values.get(n.checked_sub(newer + 1)?)?;
        let needs = trigger.needs();
        if let Rule::Nan = trigger.rule {
            return (!added.is_finite()).then_some(added);
        }
        if newer >= needs || n < needs {
            return None;
        }
        if self
            .totals(Span {
                offset: 0,
                len: needs,
            })
            .2
            > 0
        {
            return None;
        }
        let newest = self.values[n - 1];
        let fired = match trigger.rule {
            Rule::Nan => false,
            Rule::Threshold {
                agg,
                window,
                op,
                threshold,
            } => {
                let span = Span {
                    offset: 0,
                    len: window,
                };
                op.holds(self.aggregate(agg, span, extremes[0]), threshold)
            }
            Rule::Change {
                agg,
                current_window,
                prior_window,
                change_type,
                direction,
                amount,
            } => {
                let current = self.aggregate(
                    agg,
                    Span {
                        offset: 0,
                        len: current_window,
                    },
                    extremes[0],
                );
                let prior = self.aggregate(
                    agg,
                    Span {
                        offset: current_window,
                        len: prior_window,
                    },
                    extremes[1],
                );
                super::change(current, prior, change_type)
                    .is_some_and(|c| direction.reached(c, amount))
            }
            Rule::Zscore {
                window,
                threshold,
                direction,
            } => {
                let span = Span {
                    offset: 1,
                    len: window,
                };
                let e = extremes[0].map(|i| &self.extremes[i]);
                let constant = e.is_none_or(|e| {
                    e.min.front().map(|&i| self.values[i]) == e.max.front().map(|&i| self.values[i])
                });
                if constant {
                    false
                } else {
                    let (sum, squares, _) = self.totals(span);
                    let mean = sum / window as f64;
                    let variance = (squares / window as f64 - mean * mean).max(0.0);
                    let deviation = variance.sqrt();
                    let z = (newest - self.reference.unwrap_or(0.0) - mean) / deviation;
                    deviation > 0.0 && direction.reached(z, threshold)
                }
            }
        };
        fired.then_some(newest)
    }
}
