#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Run-metric automations through the evaluator, in both runtimes: SQLite files and
//! DynamoDB on moto's server. Several evaluators work one run at once: no value is lost,
//! an automation with a cooldown fires once, and one without fires on every match; a
//! redelivered batch creates nothing twice.

use std::time::Duration;

use automations_tests::lambda_stack::Stack;
use serde_json::{Value, json};
use shared::domain::access::Actor;
use shared::domain::event::Event;
use shared::domain::execution::Execution;
use shared::local::LocalRuntime;
use shared::usecases::evaluate::{Evaluation, Evaluator};
use shared::usecases::ingest::parse_events;
use shared::usecases::{Engine, Settings, manage};

const STEPS: u64 = 200;
const EVALUATORS: usize = 8;

async fn automation(engine: &Engine, name: &str, trigger: Value) -> String {
    let spec = json!({"name": name, "scope": {"type": "project", "name": "p"},
                      "event": trigger, "action": {"type": "no_op"}});
    manage::create_automation(
        engine,
        &Actor::operator(),
        "acme",
        serde_json::from_value(spec).unwrap(),
    )
    .await
    .unwrap()
    .id
}

async fn executions(engine: &Engine, automation: &str) -> Vec<Execution> {
    engine
        .store
        .list_executions("acme", automation, 100, None)
        .await
        .unwrap()
        .into_items("acme")
}

/// `loss` is the step, NaN at steps 50 and 150; `unwatched` no automation looks at.
fn training_run() -> Vec<Event> {
    let events: Vec<Value> = (0..STEPS)
        .map(|step| {
            let loss = if step == 50 || step == 150 {
                json!("NaN")
            } else {
                json!(step)
            };
            json!({"id": format!("r1-{step}"), "event_type": "RUN_METRICS", "project": "p",
                   "run": {"id": "r1", "name": "sunny-1"}, "step": step,
                   "metrics": {"loss": loss, "unwatched": 1}})
        })
        .collect();
    parse_events(
        "acme",
        json!({ "events": events }),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap()
}

/// Evaluates the chunks at once, each with its own evaluator, and what failed again (as
/// the queue would bring it back) until every event is evaluated.
async fn evaluate_concurrently(engine: &Engine, chunks: Vec<Vec<Event>>) -> Evaluation {
    let mut total = Evaluation::default();
    let mut pending = chunks;
    for _ in 0..20 {
        let mut tasks = tokio::task::JoinSet::new();
        for chunk in pending.drain(..) {
            let evaluator = Evaluator::new(engine.clone());
            tasks.spawn(async move {
                let outcomes = evaluator.evaluate(&chunk).await;
                (chunk, outcomes)
            });
        }
        while let Some(done) = tasks.join_next().await {
            let (chunk, outcomes) = done.unwrap();
            let mut failed = Vec::new();
            for (event, outcome) in chunk.into_iter().zip(outcomes) {
                match outcome {
                    Ok(e) => {
                        total.created += e.created;
                        total.existing += e.existing;
                    }
                    Err(_) => failed.push(event),
                }
            }
            if !failed.is_empty() {
                pending.push(failed);
            }
        }
        if pending.is_empty() {
            return total;
        }
    }
    panic!("events still failing after 20 deliveries: {pending:?}");
}

async fn several_evaluators_work_one_run(engine: Engine) {
    // GIVEN a team with three automations on the loss of project p's runs
    manage::create_team(&engine, &Actor::operator(), "acme")
        .await
        .unwrap();
    // (one that never fires but keeps the whole run in the window)
    let keep = automation(
        &engine,
        "keep",
        json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss",
        "agg": "MAX", "window": STEPS, "op": "$gt", "threshold": 1e12}),
    )
    .await;
    let once = automation(
        &engine,
        "once",
        json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss",
        "op": "$gte", "threshold": 100}),
    )
    .await;
    let every_nan = automation(
        &engine,
        "every-nan",
        json!({"type": "RUN_METRIC_NAN", "metric": "loss", "cooldown_seconds": 0}),
    )
    .await;

    // WHEN eight evaluators each get a part of the run's 200 steps, all at once
    let events = training_run();
    let chunks: Vec<Vec<Event>> = events
        .chunks(STEPS as usize / EVALUATORS)
        .map(<[Event]>::to_vec)
        .collect();
    let first = evaluate_concurrently(&engine, chunks).await;

    // THEN the window holds every step, in order, NaNs included
    let state = engine
        .metrics
        .get_metric_state("acme", "p/r1", "loss")
        .await
        .unwrap()
        .expect("the loss is watched");
    let steps: Vec<i64> = state.value.window.points.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, (0..STEPS as i64).collect::<Vec<_>>());
    assert!(state.value.window.points[50].1.is_nan());
    assert_eq!(state.value.window.points[199].1, 199.0);
    // AND the metric no automation watches has no state
    let unwatched = engine
        .metrics
        .get_metric_state("acme", "p/r1", "unwatched")
        .await
        .unwrap();
    assert!(unwatched.is_none());
    // AND the automation with the default cooldown fired once, on a loss of at least 100
    let fired = executions(&engine, &once).await;
    assert_eq!(fired.len(), 1, "{fired:?}");
    assert!(fired[0].vars["metric_value"].as_f64().unwrap() >= 100.0);
    assert_eq!(fired[0].vars["metric_name"], "loss");
    assert_eq!(fired[0].vars["run_name"], "sunny-1");
    // AND the one with a cooldown of 0 fired on each NaN
    let mut nan_events: Vec<String> = executions(&engine, &every_nan)
        .await
        .into_iter()
        .map(|e| {
            assert_eq!(e.vars["metric_value"], "NaN");
            e.event.id
        })
        .collect();
    nan_events.sort();
    assert_eq!(nan_events, ["r1-150", "r1-50"]);
    assert!(executions(&engine, &keep).await.is_empty());
    assert_eq!(first.created, 3);

    // WHEN the whole run is delivered again
    let again = evaluate_concurrently(&engine, vec![events]).await;
    // THEN the firings the state recorded are found again, and nothing is created twice
    assert_eq!(
        again,
        Evaluation {
            created: 0,
            existing: 3
        }
    );
    assert_eq!(executions(&engine, &once).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_evaluators_work_one_run_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = LocalRuntime::open(dir.path(), None, Settings::default()).unwrap();
    several_evaluators_work_one_run(runtime.engine.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_evaluators_work_one_run_on_dynamodb() {
    let stack = Stack::new(Settings::default()).await;
    tokio::time::timeout(
        Duration::from_secs(120),
        several_evaluators_work_one_run(stack.engine.clone()),
    )
    .await
    .unwrap();
}
