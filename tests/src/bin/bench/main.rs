//! Benchmarks of the engine on this machine.
//!
//! `bench e2e`: the real `automations` binary (built beside this one), events posted over
//! HTTP, webhooks received on loopback; throughput and latency at a steady rate.
//! `bench matching`: matching cost per event with 10, 1,000 and 100,000 automations.
//! `bench aws`: AWS requests per event and per execution made by the Lambda functions'
//! code (ingest, evaluate, dispatch) for a batch of events, counted at a proxy in front of
//! moto's server. `--scopes N` spreads the events over N registries.
//! `bench coldstart`: each Lambda binary's cold start, from process start until it asks a
//! runtime-API emulator for its first event (`--bin-dir`, default `target/bundle`; `--runs`).
//!
//! `bench metrics-memory | metrics-e2e [--points N] | metrics-aws`: run metrics (see
//! `metrics.rs`).
//!
//! Run: `cargo build --release -p automations-local -p automations-tests && target/release/bench all`

mod metrics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};
use shared::domain::access::Actor;
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
        "metrics-memory" => metrics::memory(),
        "metrics-e2e" => metrics::e2e(number("--points", 200_000)).await,
        "metrics-aws" => metrics::aws().await,
        "aws" => aws(number("--events", 1_000), number("--scopes", 1)).await,
        "coldstart" => {
            let dir = args
                .iter()
                .position(|a| a == "--bin-dir")
                .and_then(|i| args.get(i + 1))
                .map_or_else(
                    || {
                        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                            .join("../target/bundle")
                    },
                    std::path::PathBuf::from,
                );
            coldstart(&dir, number("--runs", 20)).await
        }
        "all" => {
            e2e(
                number("--events", 20_000),
                number("--rate", 200),
                number("--seconds", 10),
            )
            .await;
            matching().await;
            metrics::memory();
            metrics::e2e(number("--points", 200_000)).await;
        }
        other => {
            eprintln!(
                "usage: bench [e2e [--events N] [--rate R] [--seconds S] | matching | aws [--events N] [--scopes N] | metrics-memory | metrics-e2e [--points N] | metrics-aws | coldstart [--bin-dir D] [--runs N] | all] (not {other:?})"
            );
            std::process::exit(2);
        }
    }
}

fn event(i: usize) -> Value {
    json!({"id": format!("ev-{i}"), "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model", "author": "bench",
           "artifact": {"collection": "resnet", "version": format!("v{i}"), "alias": "production"}})
}

/// A server to measure (the per-key rate limit lifted: the engine is measured, not it), a
/// receiver, and team `acme`'s admin and the key its events come with (`ingest`, as a
/// training job's).
async fn bench_team() -> (Server, Receiver, Api, Api) {
    let options = ServerOptions {
        extra_env: vec![
            ("RUST_LOG".into(), "warn,automations=info".into()),
            ("AUTOMATIONS_INGEST_RATE".into(), "1000000".into()),
            ("AUTOMATIONS_INGEST_BURST".into(), "1000000".into()),
        ],
        ..ServerOptions::default()
    };
    let server = Server::start(options);
    let receiver = Receiver::start().await;
    let operator = server.api();
    operator.create_team("acme").await;
    let api = operator.with_key(&operator.grant_key("acme", "bench", "admin").await.1);
    let producer = api.with_key(&api.grant_key("acme", "producer", "ingest").await.1);
    (server, receiver, api, producer)
}

async fn e2e(events: usize, rate: usize, seconds: usize) {
    let (_server, receiver, api, producer) = bench_team().await;
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
        let api = producer.clone();
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
        let api = producer.clone();
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

/// Creates an automation in team `acme` as the operator, through the use case.
async fn create_automation(engine: &shared::usecases::Engine, spec: Value) {
    shared::usecases::manage::create_automation(
        engine,
        &Actor::operator(),
        "acme",
        serde_json::from_value(spec).expect("spec"),
    )
    .await
    .expect("automation");
}

/// Requests the functions' code makes per event and per execution, by phase.
async fn aws(events: usize, scopes: usize) {
    use automations_tests::lambda_stack::{Stack, api_gateway_request, drive};
    use automations_tests::moto;
    use automations_tests::request_counter::RequestCounter;
    use shared::delivery::guard::{OutboundGuard, parse_allow_networks};
    use shared::http::{AppState, Surface, router_for};
    use shared::lambda::{dispatch_records, evaluate_records};
    use shared::usecases::manage;
    use tower::ServiceExt;

    let counter = RequestCounter::start(&moto::endpoint()).await;
    let setup = moto::sdk_config().await;
    let functions = moto::sdk_config_at(&counter.url).await;
    let settings = Settings {
        guard: Arc::new(OutboundGuard::new(
            parse_allow_networks("127.0.0.0/8").expect("networks"),
        )),
        ..Settings::default()
    };
    let stack = Stack::with_functions_at(&setup, &functions, settings).await;
    let engine = stack.engine.clone();
    let receiver = Receiver::start().await;
    manage::create_team(&engine, &Actor::operator(), "acme")
        .await
        .expect("team");
    manage::put_secret(
        &engine,
        &Actor::operator(),
        "acme",
        "SIGNING",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    )
    .await
    .expect("secret");
    let hook = json!({"type": "webhook", "name": "sink", "url": receiver.url, "signing_secret": "SIGNING"});
    let integration = manage::create_integration(
        &engine,
        &Actor::operator(),
        "acme",
        serde_json::from_value(hook).expect("hook"),
    )
    .await
    .expect("integration");
    // Each event matches one automation of its registry; a team-wide one is looked at too.
    for r in 0..scopes {
        let spec = json!({"name": format!("deploy-{r}"), "scope": {"type": "registry", "name": format!("model-{r}")},
            "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": "production"}},
            "action": {"type": "webhook", "integration": integration.id, "payload": {"v": "${artifact_version_string}"}}});
        create_automation(&engine, spec).await;
    }
    let spec = json!({"name": "audit", "scope": {"type": "team"},
        "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": "staging"}}, "action": {"type": "no_op"}});
    create_automation(&engine, spec).await;
    counter.take();

    // Ingest: batches of 100 through the ingest function's router.
    let ingest = router_for(
        AppState::new(engine.clone(), &stack.operator_key),
        Surface::Ingest,
    );
    let all: Vec<Value> = (0..events)
        .map(|i| json!({"id": format!("ev-{i}"), "event_type": "ADD_ARTIFACT_ALIAS", "registry": format!("model-{}", i % scopes),
            "artifact": {"collection": "resnet", "version": format!("v{i}"), "alias": "production"}}))
        .collect();
    for batch in all.chunks(100) {
        let request = api_gateway_request(
            "POST",
            "/v1/teams/acme/events",
            &stack.operator_key,
            &json!({"events": batch}),
        );
        let response = ingest.clone().oneshot(request).await.expect("ingest");
        assert_eq!(response.status(), 202, "ingest accepted the batch");
    }
    let ingested = counter.take();

    // Evaluate and dispatch: records in batches of 10 (the event source mapping's default).
    let evaluator = Evaluator::new(engine.clone());
    let (mut handed, mut batches) = (0, 0);
    while handed < events {
        let (got, response) = drive(&stack.events, Duration::from_secs(5), vec![], |e| {
            evaluate_records(&evaluator, e)
        })
        .await;
        assert!(
            got > 0 && response.batch_item_failures.is_empty(),
            "evaluate keeps up"
        );
        handed += got;
        batches += 1;
    }
    let evaluated = counter.take();
    let evaluate_batches = batches;
    let (mut handed, mut batches) = (0, 0);
    while handed < events {
        let (got, response) = drive(&stack.actions, Duration::from_secs(5), vec![], |e| {
            dispatch_records(&engine, stack.actions.clone(), e)
        })
        .await;
        assert!(
            got > 0 && response.batch_item_failures.is_empty(),
            "dispatch delivers"
        );
        handed += got;
        batches += 1;
    }
    let dispatched = counter.take();
    assert_eq!(receiver.count(), events, "one webhook per event");

    println!(
        "AWS requests by the functions for {events} events over {scopes} registries (one execution each), counted at moto:"
    );
    let show = |phase: &str, per: &str, counts: &std::collections::BTreeMap<String, u64>| {
        let total: u64 = counts.values().sum();
        println!(
            "  {phase}: {total} requests, {:.3} per {per}",
            total as f64 / events as f64
        );
        for (op, n) in counts {
            println!(
                "    {op:<32} {n:>6}  {:.3} per {per}",
                *n as f64 / events as f64
            );
        }
    };
    show("ingest (batches of 100)", "event", &ingested);
    show(
        &format!("evaluate ({evaluate_batches} batches)"),
        "event",
        &evaluated,
    );
    show(
        &format!("dispatch ({batches} batches)"),
        "execution",
        &dispatched,
    );

    // Write units follow item sizes (1 KB each, and again for each index the item is in).
    let items = aws_sdk_dynamodb::Client::new(&setup)
        .scan()
        .table_name(&stack.config.table)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("scan");
    let mut sizes: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for item in &items {
        let kind = match item.get("sk") {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(sk)) => {
                sk.split('#').next().unwrap_or_default().to_string()
            }
            _ => "?".into(),
        };
        let size: usize = item
            .iter()
            .map(|(name, value)| {
                name.len()
                    + match value {
                        aws_sdk_dynamodb::types::AttributeValue::S(s) => s.len(),
                        aws_sdk_dynamodb::types::AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                        _ => 8,
                    }
            })
            .sum();
        let entry = sizes.entry(kind).or_default();
        entry.0 += 1;
        entry.1 += size;
    }
    println!("  item sizes in the table (DynamoDB's measure: attribute names and values):");
    for (kind, (count, total)) in sizes {
        println!(
            "    {kind:<16} {count:>6} items, {:>5} bytes on average",
            total / count
        );
    }
}

/// Cold start of each Lambda binary against a runtime-API emulator on loopback: the time
/// from spawning the process until its first `GET /2018-06-01/runtime/invocation/next`.
/// The functions' AWS calls at init (the operator key, for ingest and api) go to moto.
async fn coldstart(dir: &std::path::Path, runs: usize) {
    use automations_tests::lambda_stack::Stack;
    use automations_tests::moto;
    use tokio::io::AsyncReadExt;

    let stack = Stack::new(Settings::default()).await;
    let config = &stack.config;
    let mut env: Vec<(&str, String)> = vec![
        ("AUTOMATIONS_TABLE", config.table.clone()),
        (
            "AUTOMATIONS_EVENTS_QUEUE_URL",
            config.events_queue_url.clone(),
        ),
        (
            "AUTOMATIONS_ACTIONS_QUEUE_URL",
            config.actions_queue_url.clone(),
        ),
        ("AUTOMATIONS_SECRETS_PREFIX", config.secrets_prefix.clone()),
        (
            "AUTOMATIONS_OPERATOR_KEY_SECRET",
            config.operator_key_secret.clone(),
        ),
        ("AWS_ENDPOINT_URL", moto::endpoint()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
        ("RUST_LOG", "warn".into()),
    ];
    println!(
        "cold start, process start → first request for an event ({runs} runs each, {}):",
        dir.display()
    );
    for name in ["ingest", "api", "evaluate", "dispatch"] {
        let binary = dir.join(name);
        assert!(
            binary.exists(),
            "{} is missing; build it with: cargo build --profile bundle -p automations-{name}",
            binary.display()
        );
        env.retain(|(k, _)| *k != "AWS_LAMBDA_FUNCTION_NAME");
        env.push(("AWS_LAMBDA_FUNCTION_NAME", name.into()));
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let emulator = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind emulator");
            let address = emulator.local_addr().expect("addr").to_string();
            let started = Instant::now();
            let mut child = tokio::process::Command::new(&binary)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .env("AWS_LAMBDA_RUNTIME_API", &address)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("spawn the function");
            let (mut socket, _) = tokio::time::timeout(Duration::from_secs(30), emulator.accept())
                .await
                .expect("the function called the runtime API within 30 s")
                .expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.expect("read the request");
                assert!(n > 0, "the function closed the connection");
                request.extend_from_slice(&buf[..n]);
            }
            let elapsed = started.elapsed();
            let line = String::from_utf8_lossy(&request);
            let line = line.lines().next().unwrap_or_default();
            assert!(
                line.starts_with("GET /2018-06-01/runtime/invocation/next"),
                "{name}: first request was {line:?}"
            );
            times.push(elapsed);
            child.kill().await.expect("kill");
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
        println!(
            "  {name:<9} median {:.1} ms, p90 {:.1} ms, max {:.1} ms  (binary {:.1} MB)",
            ms(times[runs / 2]),
            ms(times[(runs * 9 / 10).min(runs - 1)]),
            ms(times[runs - 1]),
            size as f64 / 1e6
        );
    }
}
