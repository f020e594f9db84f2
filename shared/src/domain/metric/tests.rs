//! The metric triggers and windows against hand-computed expectations.

use serde_json::json;

use super::*;

fn trigger(event_type: &str, fields: Value) -> MetricTrigger {
    let Value::Object(map) = fields else {
        panic!("fields are an object")
    };
    MetricTrigger::parse(event_type, map).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(event_type: &str, fields: Value) -> Invalid {
    let Value::Object(map) = fields else {
        panic!("fields are an object")
    };
    MetricTrigger::parse(event_type, map).expect_err("refused")
}

#[test]
fn thresholds_compare_the_aggregate_of_the_last_values() {
    let above = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "loss", "agg": "AVERAGE", "window": 3, "op": "$gt", "threshold": 2.0}),
    );
    // Fewer values than the window: nothing yet.
    assert_eq!(above.fires(&[9.0, 9.0]), None);
    // (1 + 2 + 3) / 3 = 2: exactly at the threshold is not above it.
    assert_eq!(above.fires(&[100.0, 1.0, 2.0, 3.0]), None);
    // (2 + 3 + 4) / 3 = 3 > 2, and the answer is the newest value.
    assert_eq!(above.fires(&[1.0, 2.0, 3.0, 4.0]), Some(4.0));
    let at_least = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "loss", "agg": "AVERAGE", "window": 3, "op": "$gte", "threshold": 2.0}),
    );
    assert_eq!(at_least.fires(&[1.0, 2.0, 3.0]), Some(3.0));
    let latest = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "acc", "op": "$lt", "threshold": 0.5}),
    );
    assert_eq!(latest.fires(&[0.1, 0.9]), None);
    assert_eq!(latest.fires(&[0.9, 0.4]), Some(0.4));
    let min = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "m", "agg": "MIN", "window": 2, "op": "$lte", "threshold": 1.0}),
    );
    assert_eq!(min.fires(&[0.5, 3.0, 2.0]), None);
    assert_eq!(min.fires(&[3.0, 1.0, 2.0]), Some(2.0));
    let max = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "m", "agg": "MAX", "window": 2, "op": "$eq", "threshold": 3.0}),
    );
    assert_eq!(max.fires(&[3.0, 1.0, 2.0]), None);
    assert_eq!(max.fires(&[1.0, 3.0, 2.0]), Some(2.0));
}

#[test]
fn changes_compare_the_current_window_with_the_one_before_it() {
    let drop = trigger(
        "RUN_METRIC_CHANGE",
        json!({"metric": "acc", "agg": "AVERAGE", "current_window": 2, "prior_window": 2,
               "change_type": "ABSOLUTE", "direction": "DECREASE", "amount": 0.1}),
    );
    assert_eq!(drop.fires(&[0.9, 0.9, 0.8]), None, "too few values");
    // prior (0.9 + 0.9) / 2 = 0.9, current (0.85 + 0.85) / 2 = 0.85: 0.05 only.
    assert_eq!(drop.fires(&[0.5, 0.9, 0.9, 0.85, 0.85]), None);
    // prior 0.9, current 0.5: a drop of 0.4.
    assert_eq!(drop.fires(&[0.9, 0.9, 0.5, 0.5]), Some(0.5));
    // Exactly at the amount, with values exact in binary (0.9 − 0.8 is 0.0999… in f64).
    let drop = trigger(
        "RUN_METRIC_CHANGE",
        json!({"metric": "acc", "current_window": 2, "prior_window": 2,
               "direction": "DECREASE", "amount": 0.25}),
    );
    assert_eq!(
        drop.fires(&[1.0, 1.0, 0.75, 0.75]),
        Some(0.75),
        "exactly 0.25"
    );
    assert_eq!(drop.fires(&[1.0, 1.0, 0.875, 0.875]), None, "0.125");
    assert_eq!(drop.fires(&[0.75, 0.75, 1.0, 1.0]), None, "a rise");
    let relative = trigger(
        "RUN_METRIC_CHANGE",
        json!({"metric": "loss", "agg": "MAX", "current_window": 1, "prior_window": 2,
               "change_type": "RELATIVE", "direction": "INCREASE", "amount": 0.5}),
    );
    // prior max(2, 4) = 4, current 6: (6 − 4) / 4 = 0.5.
    assert_eq!(relative.fires(&[2.0, 4.0, 6.0]), Some(6.0));
    assert_eq!(relative.fires(&[2.0, 4.0, 5.0]), None);
    // A negative prior: (−1 − (−2)) / |−2| = 0.5, an increase.
    assert_eq!(relative.fires(&[-3.0, -2.0, -1.0]), Some(-1.0));
    // A prior of 0: no relative change at all.
    assert_eq!(relative.fires(&[0.0, 0.0, 100.0]), None);
}

#[test]
fn zscores_measure_the_newest_value_against_the_ones_before() {
    let spike = trigger(
        "RUN_METRIC_ZSCORE",
        json!({"metric": "grad_norm", "window": 4, "threshold": 2.0, "direction": "INCREASE"}),
    );
    // Before: 1, 3, 1, 3: mean 2, population deviation 1. Newest 4: z = 2, exactly.
    assert_eq!(spike.fires(&[1.0, 3.0, 1.0, 3.0]), None, "too few values");
    assert_eq!(spike.fires(&[1.0, 3.0, 1.0, 3.0, 4.0]), Some(4.0));
    assert_eq!(spike.fires(&[1.0, 3.0, 1.0, 3.0, 3.5]), None, "z = 1.5");
    assert_eq!(
        spike.fires(&[1.0, 3.0, 1.0, 3.0, 0.0]),
        None,
        "z = −2, a drop"
    );
    let any = trigger(
        "RUN_METRIC_ZSCORE",
        json!({"metric": "grad_norm", "window": 4, "threshold": 2.0}),
    );
    assert_eq!(any.fires(&[1.0, 3.0, 1.0, 3.0, 0.0]), Some(0.0));
    // Zero variance before it: no z-score, however far the newest value is.
    assert_eq!(any.fires(&[5.0, 5.0, 5.0, 5.0, 500.0]), None);
}

#[test]
fn nan_fires_on_a_non_finite_newest_value_and_stops_the_others() {
    let nan = trigger("RUN_METRIC_NAN", json!({"metric": "loss"}));
    assert!(nan.fires(&[1.0, f64::NAN]).is_some_and(f64::is_nan));
    assert_eq!(nan.fires(&[1.0, f64::INFINITY]), Some(f64::INFINITY));
    assert_eq!(nan.fires(&[f64::NAN, 1.0]), None);
    // A NaN among the values another trigger looks at: it does not fire…
    let above = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "loss", "agg": "MAX", "window": 2, "op": "$ne", "threshold": 0.0}),
    );
    assert_eq!(above.fires(&[1.0, f64::NAN]), None);
    let spike = trigger(
        "RUN_METRIC_ZSCORE",
        json!({"metric": "g", "window": 2, "threshold": 1.0}),
    );
    assert_eq!(spike.fires(&[1.0, f64::NAN, 9.0]), None);
    // …until the NaN has left the values it looks at.
    assert_eq!(above.fires(&[f64::NAN, 1.0, 2.0]), Some(2.0));
}

#[test]
fn windows_keep_the_last_values_by_step_and_ignore_repeats() {
    let mut w = Window::default();
    assert_eq!(w.insert(10, 1.0, 3), Inserted::Added { newer: 0 });
    assert_eq!(w.insert(30, 3.0, 3), Inserted::Added { newer: 0 });
    // Late: in its place by step, with one value after it.
    assert_eq!(w.insert(20, 2.0, 3), Inserted::Added { newer: 1 });
    assert_eq!(w.values(), [1.0, 2.0, 3.0]);
    // A repeated step: the first value counts.
    assert_eq!(w.insert(20, 99.0, 3), Inserted::Repeated);
    assert_eq!(w.values(), [1.0, 2.0, 3.0]);
    // Full: the oldest goes; one older than all kept would fall out at once.
    assert_eq!(w.insert(40, 4.0, 3), Inserted::Added { newer: 0 });
    assert_eq!(w.points, [(20, 2.0), (30, 3.0), (40, 4.0)]);
    assert_eq!(w.insert(5, 0.5, 3), Inserted::TooOld);
    assert_eq!(w.insert(25, 2.5, 3), Inserted::Added { newer: 2 });
    assert_eq!(w.points, [(25, 2.5), (30, 3.0), (40, 4.0)]);
}

#[test]
fn values_read_and_render_as_json_can_carry_them() {
    assert_eq!(read_value(&json!(0.5)), Some(0.5));
    assert!(read_value(&json!("NaN")).is_some_and(f64::is_nan));
    assert_eq!(read_value(&json!("Infinity")), Some(f64::INFINITY));
    assert_eq!(read_value(&json!("-Infinity")), Some(f64::NEG_INFINITY));
    assert_eq!(read_value(&json!("nan")), None);
    assert_eq!(read_value(&json!(null)), None);
    assert_eq!(render_value(0.25), json!(0.25));
    assert_eq!(render_value(f64::NAN), json!("NaN"));
    assert_eq!(render_value(f64::INFINITY), json!("Infinity"));
    assert_eq!(render_value(f64::NEG_INFINITY), json!("-Infinity"));
}

#[test]
fn bad_triggers_name_the_field() {
    let cases = [
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "l", "window": 0, "op": "$gt", "threshold": 1}),
            "event.window",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "l", "window": 1001, "op": "$gt", "threshold": 1}),
            "event.window",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "l", "op": "$between", "threshold": 1}),
            "event.op",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "l", "agg": "MEDIAN", "op": "$gt", "threshold": 1}),
            "event.agg",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "l", "threshold": 1}),
            "event.op",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "l", "op": "$gt"}),
            "event.threshold",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "l", "op": "$gt", "threshold": 1, "amount": 1}),
            "event.amount",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"metric": "", "op": "$gt", "threshold": 1}),
            "event.metric",
        ),
        (
            "RUN_METRIC_THRESHOLD",
            json!({"op": "$gt", "threshold": 1}),
            "event.metric",
        ),
        (
            "RUN_METRIC_CHANGE",
            json!({"metric": "l", "current_window": 1, "prior_window": 1, "amount": -1}),
            "event.amount",
        ),
        (
            "RUN_METRIC_CHANGE",
            json!({"metric": "l", "current_window": 1, "prior_window": 1, "amount": 0}),
            "event.amount",
        ),
        (
            "RUN_METRIC_CHANGE",
            json!({"metric": "l", "current_window": 0, "prior_window": 1, "amount": 1}),
            "event.current_window",
        ),
        (
            "RUN_METRIC_CHANGE",
            json!({"metric": "l", "current_window": 600, "prior_window": 500, "amount": 1}),
            "event.prior_window",
        ),
        (
            "RUN_METRIC_CHANGE",
            json!({"metric": "l", "current_window": 1, "prior_window": 1, "amount": 1, "direction": "UP"}),
            "event.direction",
        ),
        (
            "RUN_METRIC_CHANGE",
            json!({"metric": "l", "current_window": 1, "prior_window": 1, "amount": 1, "change_type": "LOG"}),
            "event.change_type",
        ),
        (
            "RUN_METRIC_ZSCORE",
            json!({"metric": "l", "window": 3, "threshold": 0}),
            "event.threshold",
        ),
        (
            "RUN_METRIC_ZSCORE",
            json!({"metric": "l", "window": 1000, "threshold": 1}),
            "event.window",
        ),
        (
            "RUN_METRIC_NAN",
            json!({"metric": "l", "window": 3}),
            "event.window",
        ),
        (
            "RUN_METRIC_NAN",
            json!({"metric": "l", "cooldown_seconds": -1}),
            "event.cooldown_seconds",
        ),
        (
            "RUN_METRIC_NAN",
            json!({"metric": "l", "colour": "red"}),
            "event.colour",
        ),
    ];
    for (event_type, fields, field) in cases {
        let e = refused(event_type, fields.clone());
        assert_eq!(e.field, field, "{event_type} {fields}: {e}");
    }
}

#[test]
fn defaults_and_what_a_window_must_keep() {
    let t = trigger("RUN_METRIC_NAN", json!({"metric": "loss"}));
    assert_eq!(t.cooldown_seconds, DEFAULT_COOLDOWN_SECONDS);
    assert_eq!(t.needs(), 1);
    let t = trigger(
        "RUN_METRIC_CHANGE",
        json!({"metric": "l", "current_window": 3, "prior_window": 7, "amount": 1, "cooldown_seconds": 0}),
    );
    assert_eq!((t.needs(), t.cooldown_seconds), (10, 0));
    let t = trigger(
        "RUN_METRIC_ZSCORE",
        json!({"metric": "l", "window": 999, "threshold": 3}),
    );
    assert_eq!(t.needs(), 1000);
    let t = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "l", "op": "$gt", "threshold": 1}),
    );
    assert_eq!(t.needs(), 1);
}

#[test]
fn states_read_back_with_their_non_finite_values_and_cooldowns() {
    let mut state = MetricState::default();
    for (step, v) in [
        (1, 0.5),
        (2, f64::NAN),
        (3, f64::INFINITY),
        (4, f64::NEG_INFINITY),
    ] {
        state.window.insert(step, v, 10);
    }
    state.fired("a1", 1_000, 60);
    state.fired("a2", 1_000, 0);
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(
        json,
        r#"{"window":{"points":[[1,0.5],[2,"NaN"],[3,"Infinity"],[4,"-Infinity"]]},"cooldowns":{"a1":61000}}"#
    );
    let back: MetricState = serde_json::from_str(&json).unwrap();
    assert_eq!(back.window.points[0], (1, 0.5));
    assert!(back.window.points[1].1.is_nan());
    assert_eq!(back.cooldowns, state.cooldowns);
    assert!(back.cooling("a1", 60_999));
    assert!(!back.cooling("a1", 61_000));
    assert!(!back.cooling("a2", 1_000), "0 seconds: no cooldown");
    assert!(serde_json::from_str::<MetricState>(r#"{"window":{"points":[[1,null]]}}"#).is_err());
}

#[test]
fn a_firing_forgets_cooldowns_that_are_over() {
    let mut state = MetricState::default();
    state.fired("old", 0, 10);
    state.fired("new", 20_000, 10);
    assert_eq!(state.cooldowns.keys().collect::<Vec<_>>(), ["new"]);
}

#[test]
fn late_values_fire_only_the_triggers_whose_values_they_join() {
    let last_two = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "loss", "agg": "MAX", "window": 2, "op": "$gt", "threshold": 5.0}),
    );
    // [1, 9, 2]: the 9 came late, one value before the newest: inside the last two.
    assert_eq!(last_two.fires_after(&[1.0, 9.0, 2.0], 1), Some(2.0));
    // [9, 7, 8]: the 9 came late with two values after it, outside the last two: nothing
    // changed for the trigger.
    assert_eq!(last_two.fires_after(&[9.0, 7.0, 8.0], 2), None);
    // The same window with the newest just added fires.
    assert_eq!(last_two.fires_after(&[9.0, 7.0, 8.0], 0), Some(8.0));
    // A late NaN is still a value of the metric that became NaN, and is the one answered.
    let nan = trigger("RUN_METRIC_NAN", json!({"metric": "loss"}));
    assert!(
        nan.fires_after(&[1.0, f64::NAN, 2.0], 1)
            .is_some_and(f64::is_nan)
    );
    assert_eq!(
        nan.fires_after(&[f64::INFINITY, 1.0, 2.0], 1),
        None,
        "the value added was 1"
    );
    assert_eq!(nan.fires_after(&[1.0], 1), None, "no such value");
}

#[test]
fn firings_are_remembered_for_a_week_and_at_most_a_thousand() {
    let mut state = MetricState::default();
    let day = 24 * 3600 * 1000;
    state.record("e0", "a", f64::NAN, 0, 0);
    state.record("e1", "a", 1.0, 6 * day, 0);
    assert_eq!(state.fired.len(), 2);
    // A week after the first, it is forgotten.
    state.record("e2", "b", 2.0, 7 * day, 60);
    let events: Vec<_> = state.fired.iter().map(|f| f.event.as_str()).collect();
    assert_eq!(events, ["e1", "e2"]);
    assert!(state.cooling("b", 7 * day + 59_000));
    assert!(
        !state.cooling("a", 7 * day),
        "a cooldown of 0 leaves nothing"
    );
    for i in 0..MAX_FIRINGS_KEPT + 5 {
        state.record(&format!("n{i}"), "c", 0.0, 7 * day + i as i64, 0);
    }
    assert_eq!(state.fired.len(), MAX_FIRINGS_KEPT);
    assert_eq!(state.fired[0].event, "n5");
    // NaN values read back.
    let mut nan = MetricState::default();
    nan.record("e", "a", f64::NEG_INFINITY, 1, 0);
    let back: MetricState = serde_json::from_str(&serde_json::to_string(&nan).unwrap()).unwrap();
    assert_eq!(back.fired[0].value, f64::NEG_INFINITY);
}

/// `points` through [`MetricState::advance`] for `triggers`, each watched by automation
/// `a{index}`; the firings as (step, automation index, value).
fn advance(
    state: &mut MetricState,
    triggers: &[MetricTrigger],
    points: &[(i64, f64)],
) -> Vec<(i64, usize, f64)> {
    let ids: Vec<String> = (0..triggers.len()).map(|i| format!("a{i}")).collect();
    let watchers: Vec<Watcher<'_>> = triggers
        .iter()
        .zip(&ids)
        .map(|(trigger, automation)| Watcher {
            automation,
            trigger,
        })
        .collect();
    let all: Vec<usize> = (0..triggers.len()).collect();
    let capacity = triggers.iter().map(MetricTrigger::needs).max().unwrap();
    let new: Vec<NewPoint<'_>> = points
        .iter()
        .map(|&(step, value)| NewPoint {
            event: "e",
            step,
            value,
            at_ms: 1_000,
            watchers: &all,
        })
        .collect();
    state
        .advance(capacity, &watchers, &new)
        .unwrap_or_default()
        .into_iter()
        .map(|f| (points[f.point].0, f.watcher, f.value))
        .collect()
}

#[test]
fn advancing_checks_each_new_value_and_keeps_the_cooldown() {
    let above = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "loss", "agg": "AVERAGE", "window": 2, "op": "$gt", "threshold": 5}),
    );
    let every = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "loss", "op": "$gt", "threshold": 5, "cooldown_seconds": 0}),
    );
    let triggers = [above, every];
    let mut state = MetricState::default();
    // Averages of the last two: (4+6)/2 = 5 (not above), (6+8)/2 = 7 fires at step 3; the
    // newest above 5 fires at 2, 3 and 4 with no cooldown.
    let fired = advance(
        &mut state,
        &triggers,
        &[(1, 4.0), (2, 6.0), (3, 8.0), (4, 9.0)],
    );
    assert_eq!(fired, [(2, 1, 6.0), (3, 0, 8.0), (3, 1, 8.0), (4, 1, 9.0)]);
    assert!(state.cooling("a0", 1_000));
    assert_eq!(state.window.points, [(3, 8.0), (4, 9.0)]);
    // A repeated step, and one too old for the window: nothing new, nothing to write.
    assert_eq!(
        state.advance(
            2,
            &[],
            &[NewPoint {
                event: "e2",
                step: 4,
                value: 100.0,
                at_ms: 1_000,
                watchers: &[],
            }]
        ),
        None
    );
    // The next batch: a0 is cooling down, a1 fires again.
    assert_eq!(advance(&mut state, &triggers, &[(5, 7.0)]), [(5, 1, 7.0)]);
    assert_eq!(state.fired.len(), 5);
}

#[test]
fn zscores_on_large_values_keep_their_precision_and_constant_windows_never_fire() {
    let spike = trigger(
        "RUN_METRIC_ZSCORE",
        json!({"metric": "tokens", "window": 4, "threshold": 3, "direction": "INCREASE"}),
    );
    let triggers = [spike];
    // 1e9 + (0, 1, 0, 1): mean 1e9 + 0.5, deviation 0.5; 1e9 + 10 is (10 − 0.5) / 0.5 = 19.
    let mut state = MetricState::default();
    let base = 1e9;
    let points: Vec<(i64, f64)> = [0.0, 1.0, 0.0, 1.0, 10.0]
        .iter()
        .enumerate()
        .map(|(i, d)| (i as i64, base + d))
        .collect();
    assert_eq!(
        advance(&mut state, &triggers, &points),
        [(4, 0, base + 10.0)]
    );
    // Four equal values: the deviation is 0 and nothing fires, however far the newest is.
    let mut constant = MetricState::default();
    let points: Vec<(i64, f64)> = [0.1, 0.1, 0.1, 0.1, 50.0]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as i64, base * v))
        .collect();
    assert_eq!(advance(&mut constant, &triggers, &points), []);
}

#[test]
fn a_late_value_inside_the_window_is_checked_and_a_nan_among_them_stops_the_others() {
    let max = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "m", "agg": "MAX", "window": 3, "op": "$gte", "threshold": 9,
               "cooldown_seconds": 0}),
    );
    let nan = trigger(
        "RUN_METRIC_NAN",
        json!({"metric": "m", "cooldown_seconds": 0}),
    );
    let triggers = [max, nan];
    let mut state = MetricState::default();
    assert_eq!(
        advance(&mut state, &triggers, &[(10, 1.0), (12, 2.0), (13, 3.0)]),
        []
    );
    // Step 11 lands before 12 and 13, inside the last three: MAX is 9, the answer the newest.
    assert_eq!(advance(&mut state, &triggers, &[(11, 9.0)]), [(11, 0, 3.0)]);
    // A NaN at 14: the NaN trigger fires; MAX, whose last three values now hold it, does
    // not, even with a 9.5 after it.
    let fired = advance(&mut state, &triggers, &[(14, f64::NAN), (15, 9.5)]);
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].0, fired[0].1), (14, 1));
    assert!(fired[0].2.is_nan());
}

#[test]
fn a_huge_value_leaves_no_rounding_behind_once_it_is_out_of_the_values_looked_at() {
    // Averages of the last two: after a spike of 1e20 leaves, (1 + 2) / 2 = 1.5 exactly.
    let average = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "g", "agg": "AVERAGE", "window": 2, "op": "$gte", "threshold": 1.5,
               "cooldown_seconds": 0}),
    );
    let points = [(0, 1.0), (1, 1e20), (2, 1.0), (3, 2.0)];
    let fired = advance(&mut MetricState::default(), &[average], &points);
    // (1 + 1e20) / 2 and (1e20 + 1) / 2 are above too; then 1.5 at step 3.
    assert_eq!(fired, [(1, 0, 1e20), (2, 0, 1.0), (3, 0, 2.0)]);
    // Values near f64::MAX in the window before: no overflow once they are out of it.
    let below = trigger(
        "RUN_METRIC_THRESHOLD",
        json!({"metric": "g", "agg": "AVERAGE", "window": 2, "op": "$lt", "threshold": 0,
               "cooldown_seconds": 0}),
    );
    let points = [(0, 1e308), (1, 1e308), (2, 1.0), (3, 2.0)];
    assert_eq!(advance(&mut MetricState::default(), &[below], &points), []);
}

#[test]
fn a_small_spread_of_large_values_after_a_far_one_still_gives_its_zscore() {
    // The two values before the newest are 1e9 and 1e9 + 1: mean 1e9 + 0.5, deviation 0.5,
    // so 1e9 + 1000 is (1000 − 0.5) / 0.5 = 1999 deviations up. The 0 before them is out.
    let spike = trigger(
        "RUN_METRIC_ZSCORE",
        json!({"metric": "t", "window": 2, "threshold": 1000, "direction": "INCREASE"}),
    );
    let points = [(0, 0.0), (1, 1e9), (2, 1e9 + 1.0), (3, 1e9 + 1000.0)];
    assert_eq!(
        advance(
            &mut MetricState::default(),
            std::slice::from_ref(&spike),
            &points
        ),
        [(3, 0, 1e9 + 1000.0)]
    );
    assert_eq!(
        spike.fires(&[0.0, 1e9, 1e9 + 1.0, 1e9 + 1000.0]),
        Some(1e9 + 1000.0)
    );
}

#[test]
fn equal_values_have_no_deviation_whatever_the_rounding_of_their_mean() {
    // The mean of three 0.1s rounds to 0.1 + 1.4e-17: the deviation is still 0.
    let spike = trigger(
        "RUN_METRIC_ZSCORE",
        json!({"metric": "t", "window": 3, "threshold": 1}),
    );
    assert_eq!(spike.fires(&[0.1, 0.1, 0.1, 5.0]), None);
    assert_eq!(spike.fires(&[0.1, 0.1, 0.1, 0.1]), None);
    let points = [(0, 0.1), (1, 0.1), (2, 0.1), (3, 5.0)];
    assert_eq!(advance(&mut MetricState::default(), &[spike], &points), []);
}
