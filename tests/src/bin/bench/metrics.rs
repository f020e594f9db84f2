//! Run-metric benchmarks.
//!
//! - `bench metrics-memory`: the window and trigger checks alone ([`MetricState::advance`],
//!   no store), on one core: 1,000 automations in a project, five of each kind per metric
//!   over 200 metrics, fed batches of consecutive steps; for windows of 10, 100 and 1,000
//!   (each batch starts from the values kept, as after a read of the state).
//! - `bench metrics-e2e`: through `automations serve`: 10 runs posting 5 metrics each, in
//!   requests of 1,000 points (200 events), with 100 automations watching the 5 metrics.
//! - `bench metrics-aws`: the DynamoDB requests evaluate makes for 1,000 points of 10 runs,
//!   with 5 and with 100 automations watching the 5 metrics, counted at moto.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared::domain::metric::{MetricState, MetricTrigger, NewPoint, Watcher};

/// The trigger of kind `k` (of 5) over `metric` with windows of `window` values.
fn trigger(k: usize, metric: &str, window: usize) -> Value {
    let half = (window / 2).max(1);
    match k % 5 {
        0 => json!({"type": "RUN_METRIC_THRESHOLD", "metric": metric, "agg": "AVERAGE",
                    "window": window, "op": "$gt", "threshold": 1e9}),
        1 => json!({"type": "RUN_METRIC_THRESHOLD", "metric": metric, "agg": "MAX",
                    "window": window, "op": "$lt", "threshold": -1e9}),
        2 => json!({"type": "RUN_METRIC_CHANGE", "metric": metric, "agg": "AVERAGE",
                    "current_window": half, "prior_window": half, "change_type": "RELATIVE",
                    "amount": 1e6}),
        3 => json!({"type": "RUN_METRIC_ZSCORE", "metric": metric, "window": window - 1,
                    "threshold": 1e6}),
        _ => json!({"type": "RUN_METRIC_NAN", "metric": metric}),
    }
}

fn parse(value: Value) -> MetricTrigger {
    let Value::Object(mut fields) = value else {
        unreachable!("a trigger is an object")
    };
    let Some(Value::String(kind)) = fields.remove("type") else {
        unreachable!("a trigger has a type")
    };
    MetricTrigger::parse(&kind, fields).expect("valid trigger")
}

/// A value that never fires the triggers above: a slow sawtooth.
fn value(step: i64) -> f64 {
    0.5 + (step % 97) as f64 / 1000.0
}

pub fn memory() {
    const METRICS: usize = 200;
    const PER_METRIC: usize = 5;
    for (window, batch) in [(10usize, 100i64), (100, 100), (1000, 100), (1000, 1000)] {
        let triggers: Vec<Vec<MetricTrigger>> = (0..METRICS)
            .map(|m| {
                (0..PER_METRIC)
                    .map(|k| parse(trigger(k, &format!("m{m}"), window)))
                    .collect()
            })
            .collect();
        let ids: Vec<String> = (0..PER_METRIC).map(|k| format!("a{k}")).collect();
        let all: Vec<usize> = (0..PER_METRIC).collect();
        let capacity = triggers[0]
            .iter()
            .map(MetricTrigger::needs)
            .max()
            .unwrap_or(1);
        let mut states: Vec<MetricState> = vec![MetricState::default(); METRICS];
        let batches = 2_000_000 / (METRICS * batch as usize);
        let mut points = 0usize;
        let mut fired = 0usize;
        let started = Instant::now();
        for b in 0..batches as i64 {
            for (m, state) in states.iter_mut().enumerate() {
                let watchers: Vec<Watcher<'_>> = triggers[m]
                    .iter()
                    .zip(&ids)
                    .map(|(trigger, automation)| Watcher {
                        automation,
                        trigger,
                    })
                    .collect();
                let new: Vec<NewPoint<'_>> = (b * batch..(b + 1) * batch)
                    .map(|step| NewPoint {
                        event: "e",
                        step,
                        value: value(step),
                        at_ms: 0,
                        watchers: &all,
                    })
                    .collect();
                fired += state
                    .advance(capacity, &watchers, &new)
                    .map_or(0, |f| f.len());
                points += new.len();
            }
        }
        let elapsed = started.elapsed();
        assert_eq!(fired, 0, "the bench's values fire nothing");
        println!(
            "metrics in memory, window {window:>4}, {batch:>4} points a batch per (run, metric): {points} points x {PER_METRIC} automations each ({} in the project) in {:.2} s: {:.0} points/s",
            METRICS * PER_METRIC,
            elapsed.as_secs_f64(),
            points as f64 / elapsed.as_secs_f64()
        );
    }
}

/// One request of `per_run` steps of each of `runs` runs, from `first_step`; 5 metrics a step.
fn request(runs: usize, first_step: usize, per_run: usize) -> Value {
    let mut events = Vec::with_capacity(runs * per_run);
    for run in 0..runs {
        for step in first_step..first_step + per_run {
            let v = value(step as i64);
            events.push(json!({"id": format!("r{run}-{step}"), "event_type": "RUN_METRICS",
                "project": "detector", "run": {"id": format!("r{run}"), "name": format!("sweep-{run}")},
                "step": step,
                "metrics": {"loss": v, "acc": v, "grad_norm": v, "lr": v, "tokens_per_s": v}}));
        }
    }
    json!({ "events": events })
}

pub async fn e2e(points: usize) {
    const RUNS: usize = 10;
    const PER_REQUEST: usize = 1000;
    const METRICS: [&str; 5] = ["loss", "acc", "grad_norm", "lr", "tokens_per_s"];
    let (_server, receiver, api, producer) = super::bench_team().await;
    for i in 0..100 {
        let metric = METRICS[i % METRICS.len()];
        let mut event = trigger(i / METRICS.len(), metric, 20);
        event["filter"] = json!({"run.name": {"$regex": "^sweep-"}});
        api.automation(
            "acme",
            json!({"name": format!("watch-{i}"), "scope": {"type": "project", "name": "detector"},
                   "event": event, "action": {"type": "no_op"}}),
        )
        .await;
    }
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "done", "url": receiver.url}),
        )
        .await;
    api.automation(
        "acme",
        json!({"name": "finished", "scope": {"type": "team"},
        "event": {"type": "RUN_STATE", "states": ["FINISHED"]},
        "action": {"type": "webhook", "integration": hook}}),
    )
    .await;

    // Requests of 1,000 points (20 steps of each run), two producers at a time; then a run
    // finishes, whose webhook arrives once everything before it was evaluated.
    let per_run = PER_REQUEST / METRICS.len() / RUNS;
    let requests = points / PER_REQUEST;
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..2 {
        let api = producer.clone();
        producers.push(tokio::spawn(async move {
            for r in (p..requests).step_by(2) {
                api.events("acme", request(RUNS, r * per_run, per_run))
                    .await;
            }
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let ingested = started.elapsed();
    producer
        .events(
            "acme",
            json!({"event_type": "RUN_STATE", "project": "detector",
                   "run": {"id": "r0", "state": "FINISHED"}}),
        )
        .await;
    let done = receiver.wait_for(1, Duration::from_secs(600)).await;
    assert_eq!(done.len(), 1, "the run's end arrived");
    let evaluated = done[0].at - started;
    let sent = requests * PER_REQUEST;
    println!(
        "metrics e2e: {sent} points ({RUNS} runs, 5 metrics, 100 automations) ingested in {:.2} s ({:.0} points/s), evaluated in {:.2} s ({:.0} points/s)",
        ingested.as_secs_f64(),
        sent as f64 / ingested.as_secs_f64(),
        evaluated.as_secs_f64(),
        sent as f64 / evaluated.as_secs_f64()
    );
}

pub async fn aws() {
    use automations_tests::lambda_stack::{Stack, api_gateway_request, drive};
    use automations_tests::moto;
    use automations_tests::request_counter::RequestCounter;
    use shared::domain::access::Actor;
    use shared::http::{AppState, Surface, router_for};
    use shared::lambda::evaluate_records;
    use shared::usecases::evaluate::Evaluator;
    use shared::usecases::{Settings, manage};
    use tower::ServiceExt;

    const RUNS: usize = 10;
    println!(
        "DynamoDB requests of evaluate for 1,000 points (200 events of {RUNS} runs, 5 metrics), in the event source mapping's batches of 10 records, counted at moto:"
    );
    for automations in [5usize, 100] {
        let counter = RequestCounter::start(&moto::endpoint()).await;
        let setup = moto::sdk_config().await;
        let functions = moto::sdk_config_at(&counter.url).await;
        let stack = Stack::with_functions_at(&setup, &functions, Settings::default()).await;
        let engine = stack.engine.clone();
        manage::create_team(&engine, &Actor::operator(), "acme")
            .await
            .expect("team");
        let metrics = ["loss", "acc", "grad_norm", "lr", "tokens_per_s"];
        for i in 0..automations {
            let spec = json!({"name": format!("watch-{i}"), "scope": {"type": "project", "name": "detector"},
                "event": trigger(i / metrics.len(), metrics[i % metrics.len()], 20),
                "action": {"type": "no_op"}});
            super::create_automation(&engine, spec).await;
        }
        let ingest = router_for(
            AppState::new(engine.clone(), &stack.operator_key),
            Surface::Ingest,
        );
        // As a training loop sends them: each run's steps in order, one run after another.
        let body = request(RUNS, 0, 20);
        let events = body["events"].as_array().expect("events").clone();
        for chunk in events.chunks(100) {
            let request = api_gateway_request(
                "POST",
                "/v1/teams/acme/events",
                &stack.operator_key,
                &json!({ "events": chunk }),
            );
            let response = ingest.clone().oneshot(request).await.expect("ingest");
            assert_eq!(response.status(), 202);
        }
        counter.take();
        let evaluator = Evaluator::new(engine.clone());
        let (mut handed, mut batches) = (0, 0);
        while handed < events.len() {
            let (got, response) = drive(&stack.events, Duration::from_secs(5), vec![], |e| {
                evaluate_records(&evaluator, e)
            })
            .await;
            assert!(got > 0 && response.batch_item_failures.is_empty());
            handed += got;
            batches += 1;
        }
        let counts = counter.take();
        let count = |op: &str| counts.get(op).copied().unwrap_or(0);
        let (gets, puts) = (count("DynamoDB.GetItem"), count("DynamoDB.PutItem"));
        println!(
            "  {automations:>3} automations: {batches} batches; state reads {gets} ({:.1} per batch), state writes {puts} ({:.1} per batch, {:.3} per point); all requests {counts:?}",
            gets as f64 / batches as f64,
            puts as f64 / batches as f64,
            puts as f64 / 1000.0
        );
    }
}
