#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End to end: a simulated training run posts 1,000 steps through `automations serve`, and
//! each run-metric automation fires exactly once, at the step computed by hand below, with
//! the metric's value in its payload.

use std::collections::BTreeMap;
use std::time::Duration;

use automations_tests::{Receiver, Server, ServerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const STEPS: u64 = 1000;
const BATCH: u64 = 100;

/// The run's metrics at `step`:
/// - `acc` is step / 1000;
/// - `loss` is 1.0 before step 600 and 0.5 from there on, NaN at step 900;
/// - `grad_norm` alternates 1.0 (even steps) and 1.1 (odd), with a spike of 5.0 at 700;
/// - `lr` no automation watches.
fn metrics(step: u64) -> Value {
    let loss = match step {
        900 => json!("NaN"),
        s if s < 600 => json!(1.0),
        _ => json!(0.5),
    };
    let grad = match step {
        700 => 5.0,
        s if s % 2 == 0 => 1.0,
        _ => 1.1,
    };
    json!({"acc": step as f64 / 1000.0, "loss": loss, "grad_norm": grad, "lr": 0.001})
}

fn point(id: String, step: u64, metrics: Value) -> Value {
    json!({"id": id, "event_type": "RUN_METRICS", "project": "detector",
           "run": {"id": "3kx9", "name": "sunny-1", "user": "alice"},
           "step": step, "metrics": metrics})
}

/// Each automation, its trigger, and the step it fires at (`None`: never).
fn automations() -> Vec<(&'static str, Value, Option<u64>)> {
    vec![
        // The average of the last 10 values of acc, (s − 4.5) / 1000, first reaches 0.5 at
        // s = 505 (0.5005; at 504 it is 0.4995).
        (
            "acc-average",
            json!({"type": "RUN_METRIC_THRESHOLD", "metric": "acc", "agg": "AVERAGE",
                   "window": 10, "op": "$gte", "threshold": 0.5}),
            Some(505),
        ),
        // The newest acc reaches 0.9 at step 900, and the run is alice's.
        (
            "acc-alice",
            json!({"type": "RUN_METRIC_THRESHOLD", "metric": "acc", "op": "$gte",
                   "threshold": 0.9, "filter": {"run.user": "alice"}}),
            Some(900),
        ),
        // The same on runs named sweep-*: this one is not.
        (
            "acc-sweeps",
            json!({"type": "RUN_METRIC_THRESHOLD", "metric": "acc", "op": "$gte",
                   "threshold": 0.0, "filter": {"run.name": {"$regex": "^sweep-"}}}),
            None,
        ),
        // The average of the last 5 loss values against the 5 before: at 600 the last five
        // hold one 0.5 (0.9 against 1.0, −10 %), at 601 two (−20 %), at 602 three (0.7,
        // −30 %), the first at least 25 % down.
        (
            "loss-drop",
            json!({"type": "RUN_METRIC_CHANGE", "metric": "loss", "current_window": 5,
                   "prior_window": 5, "change_type": "RELATIVE", "direction": "DECREASE",
                   "amount": 0.25}),
            Some(602),
        ),
        // The 20 values before each grad_norm have mean 1.05 and deviation 0.05, so every
        // value is 1 deviation off (no fire) until the spike: (5.0 − 1.05) / 0.05 = 79.
        (
            "grad-spike",
            json!({"type": "RUN_METRIC_ZSCORE", "metric": "grad_norm", "window": 20,
                   "threshold": 3, "direction": "INCREASE"}),
            Some(700),
        ),
        // Every NaN fires (no cooldown): the only one kept is at 900. A repeat of step 950
        // and a late step 300, both NaN, come after and are ignored.
        (
            "loss-nan",
            json!({"type": "RUN_METRIC_NAN", "metric": "loss", "cooldown_seconds": 0}),
            Some(900),
        ),
    ]
}

#[tokio::test]
async fn a_training_run_fires_each_metric_automation_once_at_the_computed_step() {
    // GIVEN a server, a receiver, and the automations above, each posting what it saw
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    api.create_team("acme").await;
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "ci", "url": receiver.url}),
        )
        .await;
    let payload = json!({"automation": "${automation_name}", "metric": "${metric_name}",
        "value": "${metric_value}", "text": "${metric_name} = ${metric_value}",
        "run": "${run_name}", "user": "${run_user}", "id": "${run_id}"});
    let mut ids = BTreeMap::new();
    for (name, trigger, _) in automations() {
        let id = api
            .automation(
                "acme",
                json!({"name": name, "scope": {"type": "project", "name": "detector"},
                       "event": trigger,
                       "action": {"type": "webhook", "integration": hook, "payload": payload}}),
            )
            .await;
        ids.insert(name, id);
    }
    // (and one that tells when the run finishes: everything before it was evaluated)
    let finished = api
        .automation(
            "acme",
            json!({"name": "finished", "scope": {"type": "team"},
                   "event": {"type": "RUN_STATE", "states": ["FINISHED"]},
                   "action": {"type": "webhook", "integration": hook, "payload": {"automation": "finished"}}}),
        )
        .await;

    // WHEN the run posts its 1,000 steps in batches of 100, each batch in reverse order,
    // one batch twice
    for first in (0..STEPS).step_by(BATCH as usize) {
        let events: Vec<Value> = (first..first + BATCH)
            .rev()
            .map(|step| point(format!("sunny-1:{step}"), step, metrics(step)))
            .collect();
        let body = json!({ "events": events });
        let report = api.events("acme", body.clone()).await;
        assert_eq!(report["accepted"].as_array().unwrap().len(), BATCH as usize);
        if first == 500 {
            let again = api.events("acme", body).await;
            assert_eq!(again["accepted"], json!([]));
        }
    }
    // AND a repeated step and a late one older than any window, then the run finishes
    let nan = json!({"loss": "NaN"});
    api.events(
        "acme",
        json!({"events": [point("repeat-950".into(), 950, nan.clone()),
                          point("late-300".into(), 300, nan)]}),
    )
    .await;
    api.events(
        "acme",
        json!({"event_type": "RUN_STATE", "project": "detector",
               "run": {"id": "3kx9", "name": "sunny-1", "state": "FINISHED"}}),
    )
    .await;

    // THEN each automation fired once, at its step, and the run's end arrived last
    let expected = automations().iter().filter(|(_, _, s)| s.is_some()).count() + 1;
    let deliveries = receiver.wait_for(expected, WAIT).await;
    assert_eq!(deliveries.len(), expected);
    let done = api
        .wait_executions("acme", &finished, WAIT, |l| l.len() == 1)
        .await;
    assert_eq!(done.len(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), expected, "nothing fired twice");
    for (name, _, step) in automations() {
        let executions = api.executions("acme", &ids[name]).await;
        let steps: Vec<&str> = executions
            .iter()
            .map(|e| e["event"]["id"].as_str().unwrap())
            .collect();
        let want: Vec<String> = step.iter().map(|s| format!("sunny-1:{s}")).collect();
        assert_eq!(steps, want, "{name}");
    }

    // AND each payload shows the metric, its value typed, and the run
    let bodies: BTreeMap<String, Value> = receiver
        .deliveries()
        .iter()
        .map(|d| {
            let body = d.json();
            (body["automation"].as_str().unwrap().to_string(), body)
        })
        .collect();
    assert_eq!(
        bodies["acc-average"],
        json!({"automation": "acc-average", "metric": "acc", "value": 0.505,
               "text": "acc = 0.505", "run": "sunny-1", "user": "alice", "id": "3kx9"})
    );
    assert_eq!(bodies["acc-alice"]["value"], json!(0.9));
    assert_eq!(bodies["loss-drop"]["value"], json!(0.5));
    assert_eq!(bodies["grad-spike"]["value"], json!(5.0));
    assert_eq!(bodies["loss-nan"]["value"], json!("NaN"));
    assert_eq!(bodies["loss-nan"]["text"], json!("loss = NaN"));
}
