//! Benchmarks of the engine on this machine.
//!
//! `bench e2e`: the real `automations` binary (built beside this one), events posted over
//! HTTP, webhooks received on loopback; throughput and latency at a steady rate.
//! `bench matching`: matching cost per event with 10, 1,000 and 100,000 automations.
//!
//! Run: `cargo build --release -p automations-local -p automations-tests && target/release/bench all`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automations_tests::{Receiver, Server, ServerOptions};
use serde_json::{Value, json};
use shared::domain::automation::{Automation, AutomationInput};
use shared::domain::event::{Event, EventInput};
use shared::local::LocalRuntime;
use shared::usecases::Settings;
use shared::usecases::evaluate::Evaluator;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let what = args.first().map_or("all", String::as_str);
    let number = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match what {
        "e2e" => {
            e2e(
                number("--events", 20_000),
                number("--rate", 200),
                number("--seconds", 10),
            )
            .await
        }
        "matching" => matching().await,
        "all" => {
            e2e(
                number("--events", 20_000),
                number("--rate", 200),
                number("--seconds", 10),
            )
            .await;
            matching().await;
        }
        other => {
            eprintln!(
                "usage: bench [e2e [--events N] [--rate R] [--seconds S] | matching | all] (not {other:?})"
            );
            std::process::exit(2);
        }
    }
}

fn event(i: usize) -> Value {
    json!({"id": format!("ev-{i}"), "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model", "author": "bench",
           "artifact": {"collection": "resnet", "version": format!("v{i}"), "alias": "production"}})
}

async fn e2e(events: usize, rate: usize, seconds: usize) {
    let options = ServerOptions {
        extra_env: vec![("RUST_LOG".into(), "warn,automations=info".into())],
        ..ServerOptions::default()
    };
    let server = Server::start(options);
    let receiver = Receiver::start().await;
    let api = server.api();
    api.create_team("acme").await;
    api.put_secret("acme", "SIGNING", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .await;
    let integration = api
        .webhook("acme", json!({"type": "webhook", "name": "sink", "url": receiver.url, "signing_secret": "SIGNING"}))
        .await;
    api.automation("acme", json!({"name": "deploy", "scope": {"type": "registry", "name": "model"},
        "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": {"$regex": "^prod"}}},
        "action": {"type": "webhook", "integration": integration, "payload": {"version": "${artifact_version}"}}}))
        .await;

    // Throughput: batches of 100 from 4 concurrent producers, until every webhook arrived.
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..4 {
        let api = api.clone();
        producers.push(tokio::spawn(async move {
            for start in (p * 100..events).step_by(400) {
                let batch: Vec<Value> = (start..(start + 100).min(events)).map(event).collect();
                api.events("acme", json!({ "events": batch })).await;
            }
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let ingested = started.elapsed();
    let arrived = receiver.wait_for(events, Duration::from_secs(600)).await;
    let delivered = arrived.last().map_or(started.elapsed(), |d| d.at - started);
    println!(
        "e2e throughput: {events} events ingested in {:.2} s ({:.0} events/s); {} webhooks received in {:.2} s ({:.0} deliveries/s)",
        ingested.as_secs_f64(),
        events as f64 / ingested.as_secs_f64(),
        arrived.len(),
        delivered.as_secs_f64(),
        arrived.len() as f64 / delivered.as_secs_f64()
    );

    // Latency at a steady rate: one event per request, posted on a fixed schedule.
    let total = rate * seconds;
    let offset = events;
    let mut sent_at = HashMap::new();
    let tick = Duration::from_secs_f64(1.0 / rate as f64);
    let begin = tokio::time::Instant::now();
    let mut posts = Vec::new();
    for k in 0..total {
        tokio::time::sleep_until(begin + tick * k as u32).await;
        let i = offset + k;
        sent_at.insert(format!("artifact://acme/model/resnet:v{i}"), Instant::now());
        let api = api.clone();
        posts.push(tokio::spawn(
            async move { api.events("acme", event(i)).await },
        ));
    }
    for p in posts {
        p.await.expect("post");
    }
    let arrived = receiver
        .wait_for(events + total, Duration::from_secs(120))
        .await;
    let mut latencies: Vec<Duration> = arrived[events.min(arrived.len())..]
        .iter()
        .filter_map(|d| {
            sent_at
                .get(d.json()["version"].as_str()?)
                .map(|sent| d.at - *sent)
        })
        .collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "e2e latency at {rate} events/s for {seconds} s: {} delivered; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

fn automation(team: &str, i: usize, scope: Value, event_type: &str) -> Automation {
    let spec: AutomationInput = serde_json::from_value(json!({"name": format!("a-{i}"), "scope": scope,
        "event": {"type": event_type, "filter": {"alias": {"$regex": "^prod"}}}, "action": {"type": "no_op"}}))
        .expect("automation");
    Automation {
        id: format!("a{i:07}"),
        team: team.into(),
        spec,
        created_at: String::new(),
        updated_at: String::new(),
    }
}

async fn matching() {
    let probe: EventInput = serde_json::from_value(event(0)).expect("event");
    let probe: Event = probe
        .validate("acme", "probe".into(), time::OffsetDateTime::now_utc())
        .expect("valid");
    for n in [10usize, 1_000, 100_000] {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = LocalRuntime::open(dir.path(), None, Settings::default()).expect("runtime");
        let store = runtime.engine.store.clone();
        // One automation matches; the rest watch other registries, collections and event types.
        store
            .put_automation(
                &automation(
                    "acme",
                    0,
                    json!({"type": "registry", "name": "model"}),
                    "ADD_ARTIFACT_ALIAS",
                ),
                true,
            )
            .await
            .expect("put");
        let types = [
            "ADD_ARTIFACT_ALIAS",
            "LINK_ARTIFACT",
            "CREATE_ARTIFACT",
            "ADD_ARTIFACT_TAG",
        ];
        let inserts: Vec<_> = (1..n)
            .map(|i| {
                let scope = json!({"type": "registry", "name": format!("model-{}", i % 997), "collection": format!("c{}", i % 13)});
                automation("acme", i, scope, types[i % types.len()])
            })
            .collect();
        let store2: Arc<_> = store.clone();
        for chunk in inserts.chunks(1000) {
            let futures: Vec<_> = chunk
                .iter()
                .map(|a| store2.put_automation(a, true))
                .collect();
            for f in futures {
                f.await.expect("put");
            }
        }
        let evaluator = Evaluator::new(runtime.engine.clone());
        let warm = evaluator.matches(&probe).await.expect("match");
        assert_eq!(warm.len(), 1, "exactly one automation matches");
        let rounds = 5_000;
        let started = Instant::now();
        for _ in 0..rounds {
            let found = evaluator.matches(&probe).await.expect("match");
            std::hint::black_box(found);
        }
        let per = started.elapsed() / rounds;
        println!(
            "matching with {n:>7} automations in the team: {:.1} µs per event",
            per.as_secs_f64() * 1e6
        );
    }
}
