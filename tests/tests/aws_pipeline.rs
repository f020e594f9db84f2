#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The Lambda pipeline through its real handlers, on moto's server: an event ingested into
//! the events queue, `evaluate` driven with the received SQS records, the actions queue,
//! `dispatch`, a signed webhook at a loopback receiver, the execution FINISHED in DynamoDB.
//! Lambda's event source mapping is played by `drive`: receive, call the handler, delete
//! the records it did not report as failed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use automations_tests::lambda_stack::{Stack, api_gateway_request, drive, record};
use automations_tests::{Receiver, moto};
use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::{Value, json};
use shared::adapters::aws::SqsQueue;
use shared::conformance::Tamper;
use shared::delivery::guard::{OutboundGuard, parse_allow_networks};
use shared::delivery::retry::RetrySchedule;
use shared::delivery::signing::{standard_webhooks_key, standard_webhooks_signature};
use shared::domain::access::Actor;
use shared::http::{AppState, Surface, router_for};
use shared::lambda::{dispatch_records, evaluate_records};
use shared::ports::Queue;
use shared::usecases::evaluate::Evaluator;
use shared::usecases::{Engine, Settings, manage};
use tower::ServiceExt;

fn settings() -> Settings {
    Settings {
        retry: RetrySchedule::from_secs(&[1, 1]),
        guard: Arc::new(OutboundGuard::new(
            parse_allow_networks("127.0.0.0/8").unwrap(),
        )),
        sole_instance: None,
        ..Settings::default()
    }
}

/// A stack of its own on moto: the functions' engine, the queues, the operator key.
async fn stack() -> (Engine, Arc<SqsQueue>, Arc<SqsQueue>, String) {
    let stack = Stack::new(settings()).await;
    (
        stack.engine,
        stack.events,
        stack.actions,
        stack.operator_key,
    )
}

#[tokio::test]
async fn an_event_travels_through_evaluate_and_dispatch_to_a_signed_webhook() {
    // GIVEN the functions' engine on moto, a team with a signed webhook and an automation
    let (engine, events, actions, key) = stack().await;
    let receiver = Receiver::start().await;
    receiver.script(&[(503, "busy")]);
    manage::create_team(&engine, &Actor::operator(), "acme")
        .await
        .unwrap();
    manage::put_secret(
        &engine,
        &Actor::operator(),
        "acme",
        "SIGNING",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
    )
    .await
    .unwrap();
    let hook =
        json!({"type": "webhook", "name": "ci", "url": receiver.url, "signing_secret": "SIGNING"});
    let integration = manage::create_integration(
        &engine,
        &Actor::operator(),
        "acme",
        serde_json::from_value(hook).unwrap(),
    )
    .await
    .unwrap();
    let spec = json!({"name": "deploy", "scope": {"type": "registry", "name": "model"},
        "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": "production"}},
        "action": {"type": "webhook", "integration": integration.id, "payload": {"v": "${artifact_version_string}"}}});
    let automation = manage::create_automation(
        &engine,
        &Actor::operator(),
        "acme",
        serde_json::from_value(spec).unwrap(),
    )
    .await
    .unwrap();

    // WHEN an API Gateway request carries an event into the ingest function's router
    let ingest = router_for(AppState::new(engine.clone(), &key), Surface::Ingest);
    let event = json!({"id": "e1", "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
        "artifact": {"collection": "resnet", "version": "v4", "alias": "production"}});
    let request = api_gateway_request("POST", "/v1/teams/acme/events", &key, &event);
    let response = ingest.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 202);
    // (management routes are the api function's; the ingest function does not serve them)
    let request = api_gateway_request("GET", "/v1/teams/acme/automations", &key, &json!({}));
    assert_eq!(ingest.oneshot(request).await.unwrap().status(), 404);

    // AND evaluate gets its record, beside an unreadable one that alone is reported failed
    let evaluator = Evaluator::new(engine.clone());
    let poison = record("poison-1", "no-receipt", "not json");
    let (got, response) = drive(&events, Duration::from_secs(5), vec![poison], |e| {
        evaluate_records(&evaluator, e)
    })
    .await;
    assert_eq!(got, 1);
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec!["poison-1"]);

    // AND dispatch gets two messages of the execution in one batch (a redelivered event
    // queues a second one): one request is made (the receiver answers 503); what is kept
    // comes back after the schedule's delay (its visibility) and is delivered once
    let first = actions.receive(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.len(), 1);
    actions.send_batch(&[first[0].body.clone()]).await.unwrap();
    let second = actions.receive(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(second.len(), 1);
    let both = [&first[0], &second[0]];
    let mut batch = SqsEvent::default();
    batch.records = both
        .iter()
        .map(|m| record(&m.message_id, &m.receipt, &m.body))
        .collect();
    let response = dispatch_records(&engine, actions.clone(), batch).await;
    assert_eq!(
        receiver.count(),
        1,
        "one send for two messages of one execution"
    );
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    // (the one that made the attempt is kept; the other is kept too if it saw the claim,
    // or done if it lost the race to make it)
    assert!(
        !failed.is_empty(),
        "the message that made the attempt is kept"
    );
    let done: Vec<String> = both
        .iter()
        .filter(|m| !failed.contains(m.message_id.as_str()))
        .map(|m| m.receipt.clone())
        .collect();
    actions.delete_batch(&done).await.unwrap();
    let (got, response) = drive(&actions, Duration::from_secs(10), vec![], |e| {
        dispatch_records(&engine, actions.clone(), e)
    })
    .await;
    assert!(got >= 1);
    assert!(
        response.batch_item_failures.is_empty(),
        "delivered, or found finished"
    );

    // THEN the webhook arrived signed, and the execution is FINISHED in DynamoDB
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 2);
    assert_eq!(
        deliveries[1].json(),
        json!({"v": "acme/model/resnet:production"})
    );
    let d = &deliveries[1];
    let key = standard_webhooks_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let timestamp: i64 = d.header("webhook-timestamp").unwrap().parse().unwrap();
    let expected =
        standard_webhooks_signature(&key, d.header("webhook-id").unwrap(), timestamp, &d.body);
    assert_eq!(d.header("webhook-signature"), Some(expected.as_str()));
    let executions: Vec<_> = engine
        .store
        .list_executions("acme", &automation.id, 10, None)
        .await
        .unwrap()
        .into_items("acme");
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].status.as_str(), "FINISHED");
    assert_eq!(
        executions[0]
            .attempts
            .iter()
            .map(|a| a.status_code)
            .collect::<Vec<_>>(),
        vec![Some(503), Some(200)]
    );

    // AND a redelivered action record does not send again
    let message = json!({"team": "acme", "execution_id": executions[0].id}).to_string();
    let mut again = SqsEvent::default();
    again.records = vec![record("again-1", "stale-receipt", &message)];
    let response = dispatch_records(&engine, actions.clone(), again).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn a_poison_event_message_ends_in_the_dead_letter_queue() {
    // GIVEN an events queue that dead-letters after 2 receives, holding an unreadable message
    let (engine, _, _, _) = stack().await;
    let sdk = moto::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!("poison-{}", std::process::id());
    let (url, dlq_url) =
        moto::queue_with_dead_letters(&sqs, &name, Duration::from_secs(1), 2).await;
    let (events, dead_letters) = (SqsQueue::new(sqs.clone(), url), SqsQueue::new(sqs, dlq_url));
    events
        .send_batch(&["not an event".to_string()])
        .await
        .unwrap();
    let evaluator = Evaluator::new(engine);

    // WHEN evaluate is driven until the queue is empty
    let mut handed_out = 0;
    for _ in 0..3 {
        let (got, response) = drive(&events, Duration::from_secs(3), vec![], |e| {
            evaluate_records(&evaluator, e)
        })
        .await;
        assert_eq!(
            response.batch_item_failures.len(),
            got,
            "an unreadable record is always reported failed"
        );
        handed_out += got;
    }

    // THEN it was handed out twice and now waits in the dead-letter queue
    assert_eq!(handed_out, 2);
    let dead = dead_letters
        .receive(10, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(
        dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["not an event"]
    );
}

#[tokio::test]
async fn a_batch_of_events_shares_its_index_lookups_and_each_event_gets_its_own_matches() {
    // GIVEN automations of two teams, filed under registries, a collection and a team scope
    let (engine, _, _, _) = stack().await;
    for team in ["acme", "beta"] {
        manage::create_team(&engine, &Actor::operator(), team)
            .await
            .unwrap();
    }
    let filed = [
        (
            "acme",
            "a-model",
            json!({"type": "registry", "name": "model"}),
            "ADD_ARTIFACT_ALIAS",
        ),
        (
            "acme",
            "a-resnet",
            json!({"type": "registry", "name": "model", "collection": "resnet"}),
            "ADD_ARTIFACT_ALIAS",
        ),
        (
            "acme",
            "a-data",
            json!({"type": "registry", "name": "data"}),
            "ADD_ARTIFACT_ALIAS",
        ),
        ("acme", "a-links", json!({"type": "team"}), "LINK_ARTIFACT"),
        (
            "beta",
            "b-model",
            json!({"type": "registry", "name": "model"}),
            "ADD_ARTIFACT_ALIAS",
        ),
    ];
    for (team, name, scope, event_type) in filed {
        let spec = json!({"name": name, "scope": scope, "event": {"type": event_type, "filter": {"alias": {"$ne": "staging"}}},
            "action": {"type": "no_op"}});
        manage::create_automation(
            &engine,
            &Actor::operator(),
            team,
            serde_json::from_value(spec).unwrap(),
        )
        .await
        .unwrap();
    }
    let event =
        |team: &str, id: &str, event_type: &str, registry: &str, collection: &str, alias: &str| {
            let input = json!({"id": id, "event_type": event_type, "registry": registry,
            "artifact": {"collection": collection, "version": "v1", "alias": alias}});
            shared::usecases::ingest::parse_events(team, input, engine.clock.now())
                .unwrap()
                .remove(0)
        };
    let batch = vec![
        event(
            "acme",
            "e1",
            "ADD_ARTIFACT_ALIAS",
            "model",
            "resnet",
            "production",
        ),
        event(
            "acme",
            "e2",
            "ADD_ARTIFACT_ALIAS",
            "model",
            "vgg",
            "production",
        ),
        event(
            "acme",
            "e3",
            "ADD_ARTIFACT_ALIAS",
            "data",
            "resnet",
            "production",
        ),
        event(
            "beta",
            "e4",
            "ADD_ARTIFACT_ALIAS",
            "model",
            "resnet",
            "production",
        ),
        event(
            "acme",
            "e5",
            "LINK_ARTIFACT",
            "model",
            "resnet",
            "production",
        ),
        event(
            "acme",
            "e6",
            "ADD_ARTIFACT_ALIAS",
            "model",
            "resnet",
            "staging",
        ),
        event(
            "acme",
            "e7",
            "ADD_ARTIFACT_ALIAS",
            "model",
            "resnet",
            "production",
        ),
    ];

    // WHEN the batch is matched in one go
    let matches = Evaluator::new(engine).matches_batch(&batch).await.unwrap();

    // THEN every event has exactly the automations of its team, type, scope and filter
    let names: Vec<Vec<String>> = matches
        .iter()
        .map(|found| {
            let mut names: Vec<String> = found
                .iter()
                .map(|c| c.automation.spec.name.clone())
                .collect();
            names.sort();
            names
        })
        .collect();
    let expected: Vec<Vec<&str>> = vec![
        vec!["a-model", "a-resnet"],
        vec!["a-model"],
        vec!["a-data"],
        vec!["b-model"],
        vec!["a-links"],
        vec![],
        vec!["a-model", "a-resnet"],
    ];
    assert_eq!(names, expected);
}

#[tokio::test]
async fn an_unreadable_record_fails_alone_in_the_lambda_functions() {
    // GIVEN two teams on the functions' stack; in acme, a good and a damaged automation of
    // one trigger partition, and a damaged integration
    let stack = Stack::new(settings()).await;
    let engine = stack.engine.clone();
    let receiver = Receiver::start().await;
    let tamper = moto::DynamoTamper {
        client: aws_sdk_dynamodb::Client::new(&moto::sdk_config().await),
        table: stack.config.table.clone(),
    };
    let mut hooks = Vec::new();
    for team in ["acme", "beta"] {
        manage::create_team(&engine, &Actor::operator(), team)
            .await
            .unwrap();
        for name in ["hook", "spare"] {
            let hook = json!({"type": "webhook", "name": name, "url": receiver.url});
            let made = manage::create_integration(
                &engine,
                &Actor::operator(),
                team,
                serde_json::from_value(hook).unwrap(),
            )
            .await
            .unwrap();
            hooks.push((team, name, made.id));
        }
    }
    let hook = |team: &str, name: &str| {
        hooks
            .iter()
            .find(|(t, n, _)| *t == team && *n == name)
            .map(|h| h.2.clone())
            .unwrap()
    };
    let mut automations = Vec::new();
    for (team, name, integration) in [
        ("acme", "good", hook("acme", "hook")),
        ("acme", "bad", hook("acme", "hook")),
        ("acme", "stranded", hook("acme", "spare")),
        ("beta", "theirs", hook("beta", "hook")),
    ] {
        let spec = json!({"name": name, "scope": {"type": "registry", "name": "model"}, "event": {"type": "LINK_ARTIFACT"},
            "action": {"type": "webhook", "integration": integration, "payload": {"by": name}}});
        let made = manage::create_automation(
            &engine,
            &Actor::operator(),
            team,
            serde_json::from_value(spec).unwrap(),
        )
        .await
        .unwrap();
        automations.push(made);
    }
    let damaged = shared::conformance::unreadable_json();
    tamper
        .overwrite_body("automation", "acme", &automations[1].id, &damaged)
        .await;
    tamper
        .overwrite_body("integration", "acme", &hook("acme", "spare"), &damaged)
        .await;

    // WHEN one batch holds events of both teams
    let event = |team: &str, id: &str| {
        let input = json!({"id": id, "event_type": "LINK_ARTIFACT", "registry": "model",
            "artifact": {"collection": "resnet", "version": "v1"}});
        let event = shared::usecases::ingest::parse_events(team, input, engine.clock.now())
            .unwrap()
            .remove(0);
        record(id, "receipt", &serde_json::to_string(&event).unwrap())
    };
    let mut batch = SqsEvent::default();
    batch.records = vec![
        event("acme", "a-1"),
        event("beta", "b-1"),
        event("acme", "a-2"),
    ];
    let evaluator = Evaluator::new(engine.clone());
    let response = evaluate_records(&evaluator, batch).await;

    // THEN no record fails: the damaged automation is left out, the others match
    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    let executions = |index: usize| {
        let (engine, a) = (engine.clone(), automations[index].clone());
        async move {
            engine
                .store
                .list_executions(&a.team, &a.id, 10, None)
                .await
                .unwrap()
                .into_items(&a.team)
        }
    };
    assert_eq!(executions(0).await.len(), 2);
    assert_eq!(executions(2).await.len(), 2);
    assert_eq!(executions(3).await.len(), 1);

    // WHEN dispatch gets the actions, one execution of which is then damaged too
    let mut messages = Vec::new();
    while let Ok(got) = stack.actions.receive(10, Duration::from_secs(2)).await {
        if got.is_empty() {
            break;
        }
        messages.extend(got);
    }
    assert_eq!(messages.len(), 5);
    let broken = executions(0).await[0].id.clone();
    tamper
        .overwrite_body("execution", "acme", &broken, &damaged)
        .await;
    let mut batch = SqsEvent::default();
    batch.records = messages
        .iter()
        .map(|m| record(&m.message_id, &m.receipt, &m.body))
        .collect();
    let response = dispatch_records(&engine, stack.actions.clone(), batch).await;

    // THEN only the damaged execution's record fails; the ones whose integration cannot be
    // read fail their executions, saying why; the others are delivered
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let broken_message = messages
        .iter()
        .find(|m| m.body.contains(&broken))
        .map(|m| m.message_id.as_str())
        .unwrap();
    assert_eq!(failed, [broken_message]);
    let mut by: Vec<String> = receiver
        .deliveries()
        .iter()
        .map(|d| d.json()["by"].as_str().unwrap().to_string())
        .collect();
    by.sort();
    assert_eq!(by, ["good", "theirs"]);
    for stranded in executions(2).await {
        assert_eq!(stranded.status.as_str(), "FAILED");
        let error = stranded.result.unwrap().error.unwrap();
        assert!(error.contains("cannot read"), "{error}");
    }
    // AND the management listings skip the damaged items and name them
    let listed = engine.store.list_automations("acme").await.unwrap();
    let unreadable: Vec<&str> = listed.unreadable().map(|u| u.id.as_str()).collect();
    assert_eq!(unreadable, [automations[1].id.as_str()]);
}

#[tokio::test]
async fn automations_as_code_apply_and_export_through_the_api_function() {
    // GIVEN the api function's router on moto, and a team
    let (engine, _events, _actions, key) = stack().await;
    let api = router_for(AppState::new(engine.clone(), &key), Surface::Management);
    let call = |method: &str, path: &str, body: Value| {
        let api = api.clone();
        let request = api_gateway_request(method, path, &key, &body);
        async move {
            let response = api.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (
                status,
                serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null),
            )
        }
    };
    assert_eq!(
        call("POST", "/v1/teams", json!({"name": "acme"})).await.0,
        201
    );
    let document = json!({
        "queues": [{"name": "gpu"}],
        "integrations": [{"name": "ci", "type": "webhook", "url": "http://127.0.0.1:9/hook"}],
        "automations": [
            {"name": "deploy", "scope": {"type": "registry", "name": "model"},
             "event": {"type": "ADD_ARTIFACT_ALIAS"},
             "action": {"type": "webhook", "integration": "ci", "payload": {"v": "${alias}"}}},
            {"name": "eval", "scope": {"type": "project", "name": "detector"},
             "event": {"type": "LINK_ARTIFACT"},
             "action": {"type": "queue_job", "queue": "gpu", "job": "eval"}}]});

    // WHEN the document is applied on DynamoDB
    let (status, plan) = call("POST", "/v1/teams/acme/apply", document.clone()).await;
    // THEN its four objects are made, dependencies first
    assert_eq!(status, 200, "{plan}");
    let made: Vec<(&str, &str)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["kind"].as_str().unwrap(), c["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        made,
        [
            ("queue", "gpu"),
            ("integration", "ci"),
            ("automation", "deploy"),
            ("automation", "eval")
        ]
    );
    assert_eq!(plan["applied"], true);

    // AND applied again, and applied as exported, nothing changes
    let (_, again) = call("POST", "/v1/teams/acme/apply", document).await;
    assert_eq!(
        (again["changes"].clone(), again["unchanged"].clone()),
        (json!([]), json!(4))
    );
    let (status, exported) = call("GET", "/v1/teams/acme/export", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(exported["automations"][0]["action"]["integration"], "ci");
    let (_, round) = call("POST", "/v1/teams/acme/apply", exported).await;
    assert_eq!(round["changes"], json!([]), "{round}");

    // AND an invalid document changes nothing and names the object and field
    let bad = json!({"automations": [{"name": "x", "scope": {"type": "team"},
        "event": {"type": "LINK_ARTIFACT"}, "action": {"type": "webhook", "integration": "nowhere"}}],
        "queues": [{"name": "more"}]});
    let (status, refused) = call("POST", "/v1/teams/acme/apply", bad).await;
    assert_eq!(status, 400);
    assert_eq!(
        refused["error"]["field"],
        "automations[0].action.integration"
    );
    let (_, queues) = call("GET", "/v1/teams/acme/queues", json!({})).await;
    assert_eq!(queues["queues"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_event_that_matched_nothing_shows_its_reasons_through_the_api_function() {
    // GIVEN the functions' engine on moto and a team with an automation on `production`
    // aliases, and a disabled one
    let (engine, events, _actions, key) = stack().await;
    manage::create_team(&engine, &Actor::operator(), "acme")
        .await
        .unwrap();
    let hook = json!({"type": "webhook", "name": "ci", "url": "http://127.0.0.1:9/hook"});
    let integration = manage::create_integration(
        &engine,
        &Actor::operator(),
        "acme",
        serde_json::from_value(hook).unwrap(),
    )
    .await
    .unwrap();
    for (name, enabled) in [("deploy", true), ("paused", false)] {
        let spec = json!({"name": name, "enabled": enabled,
            "scope": {"type": "registry", "name": "model"},
            "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": "production"}},
            "action": {"type": "webhook", "integration": integration.id}});
        manage::create_automation(
            &engine,
            &Actor::operator(),
            "acme",
            serde_json::from_value(spec).unwrap(),
        )
        .await
        .unwrap();
    }

    // WHEN an event with another alias goes through ingest and evaluate
    let ingest = router_for(AppState::new(engine.clone(), &key), Surface::Ingest);
    let event = json!({"id": "miss", "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
        "artifact": {"collection": "resnet", "version": "v4", "alias": "candidate"}});
    let request = api_gateway_request("POST", "/v1/teams/acme/events", &key, &event);
    assert_eq!(ingest.oneshot(request).await.unwrap().status(), 202);
    let evaluator = Evaluator::new(engine.clone());
    let (got, response) = drive(&events, Duration::from_secs(5), vec![], |e| {
        evaluate_records(&evaluator, e)
    })
    .await;
    assert_eq!((got, response.batch_item_failures.len()), (1, 0));

    // THEN the api function lists it with why each automation did not fire, and no execution
    let api = router_for(AppState::new(engine.clone(), &key), Surface::Management);
    let request = api_gateway_request("GET", "/v1/teams/acme/events", &key, &json!(null));
    let answer = api.clone().oneshot(request).await.unwrap();
    assert_eq!(answer.status(), 200);
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    let listed: Value = serde_json::from_slice(&bytes).unwrap();
    let evaluation = &listed["events"][0]["evaluation"];
    assert_eq!(listed["events"][0]["id"], "miss", "{listed}");
    assert_eq!(evaluation["fired"], json!([]));
    let reasons: Vec<(&str, &str)> = evaluation["not_fired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["automation_name"].as_str().unwrap(),
                n["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [("deploy", "filter"), ("paused", "filter")],
        "{listed}"
    );
    let request = api_gateway_request("GET", "/v1/teams/acme/executions", &key, &json!(null));
    let answer = api.oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(answer.into_body(), 1 << 20)
        .await
        .unwrap();
    let executions: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(executions["executions"], json!([]));
}
