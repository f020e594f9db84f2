#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Redelivered queue messages, driven through the use cases on the local runtime's real
//! adapters: a redelivered event creates no second execution, and a redelivered action
//! never sends a delivery that already succeeded.

use std::sync::Arc;

use automations_tests::Receiver;
use serde_json::json;
use shared::delivery::guard::{OutboundGuard, parse_allow_networks};
use shared::domain::automation::AutomationInput;
use shared::domain::integration::IntegrationInput;
use shared::local::LocalRuntime;
use shared::ports::Queue;
use shared::usecases::dispatch::{Outcome, dispatch};
use shared::usecases::evaluate::Evaluator;
use shared::usecases::ingest::parse_events;
use shared::usecases::{ActionMessage, Settings, manage};

#[tokio::test]
async fn redelivered_messages_neither_duplicate_executions_nor_resend() {
    // GIVEN the local runtime (no workers: the test drives the use cases) and one automation
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        guard: Arc::new(OutboundGuard::new(
            parse_allow_networks("127.0.0.0/8").unwrap(),
        )),
        ..Settings::default()
    };
    let runtime = LocalRuntime::open(dir.path(), None, settings).unwrap();
    let engine = runtime.engine.clone();
    let receiver = Receiver::start().await;
    manage::create_team(&engine, "acme").await.unwrap();
    let input: IntegrationInput =
        serde_json::from_value(json!({"type": "webhook", "name": "ci", "url": receiver.url}))
            .unwrap();
    let integration = manage::create_integration(&engine, "acme", input)
        .await
        .unwrap();
    let spec: AutomationInput = serde_json::from_value(json!({"name": "links", "scope": {"type": "team"},
        "event": {"type": "LINK_ARTIFACT"}, "action": {"type": "webhook", "integration": integration.id}}))
    .unwrap();
    let automation = manage::create_automation(&engine, "acme", spec)
        .await
        .unwrap();
    let events = parse_events(&engine, "acme",
        json!({"id": "e1", "event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v1"}}))
    .unwrap();

    // WHEN the event is evaluated twice, as after a redelivery
    let evaluator = Evaluator::new(engine.clone());
    let first = evaluator.evaluate(&events).await.unwrap();
    let second = evaluator.evaluate(&events).await.unwrap();

    // THEN there is one execution
    assert_eq!((first.created, first.existing), (1, 0));
    assert_eq!((second.created, second.existing), (0, 1));
    let executions = engine
        .store
        .list_executions("acme", &automation.id, 10, None)
        .await
        .unwrap();
    assert_eq!(executions.len(), 1);

    // WHEN its action message is dispatched, and dispatched again
    let message = ActionMessage {
        team: "acme".into(),
        execution_id: executions[0].id.clone(),
    };
    assert_eq!(dispatch(&engine, &message).await.unwrap(), Outcome::Done);
    assert_eq!(dispatch(&engine, &message).await.unwrap(), Outcome::Done);

    // THEN exactly one delivery went out and the execution is finished with one attempt
    assert_eq!(receiver.count(), 1);
    let execution = engine
        .store
        .get_execution("acme", &message.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execution.status.as_str(), "FINISHED");
    assert_eq!(execution.attempts.len(), 1);
    // (Both evaluations queued the pending execution; both messages are on the actions queue.)
    let queued = runtime
        .actions
        .receive(10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(queued.len(), 2);
}

#[tokio::test]
async fn two_workers_with_the_same_message_send_once() {
    // GIVEN an execution with two action messages (its event was delivered twice)
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        guard: Arc::new(OutboundGuard::new(
            parse_allow_networks("127.0.0.0/8").unwrap(),
        )),
        ..Settings::default()
    };
    let runtime = LocalRuntime::open(dir.path(), None, settings).unwrap();
    let engine = runtime.engine.clone();
    let receiver = Receiver::start_slow(std::time::Duration::from_millis(200)).await;
    manage::create_team(&engine, "acme").await.unwrap();
    let input: IntegrationInput =
        serde_json::from_value(json!({"type": "webhook", "name": "ci", "url": receiver.url}))
            .unwrap();
    let integration = manage::create_integration(&engine, "acme", input)
        .await
        .unwrap();
    let spec: AutomationInput = serde_json::from_value(json!({"name": "links", "scope": {"type": "team"},
        "event": {"type": "LINK_ARTIFACT"}, "action": {"type": "webhook", "integration": integration.id}}))
    .unwrap();
    let automation = manage::create_automation(&engine, "acme", spec)
        .await
        .unwrap();
    let event = json!({"id": "e1", "event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v1"}});
    let evaluator = Evaluator::new(engine.clone());
    evaluator
        .evaluate(&parse_events(&engine, "acme", event.clone()).unwrap())
        .await
        .unwrap();
    evaluator
        .evaluate(&parse_events(&engine, "acme", event).unwrap())
        .await
        .unwrap();
    let executions = engine
        .store
        .list_executions("acme", &automation.id, 10, None)
        .await
        .unwrap();
    assert_eq!(
        executions.len(),
        1,
        "the same event id names the same execution"
    );
    let message = ActionMessage {
        team: "acme".into(),
        execution_id: executions[0].id.clone(),
    };

    // WHEN two workers dispatch it at the same time
    let (a, b) = tokio::join!(dispatch(&engine, &message), dispatch(&engine, &message));

    // THEN one sends; the other finds it claimed and waits
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Outcome::Done));
    assert!(
        matches!(outcomes[0], Outcome::RetryAfter(_)) || outcomes == [Outcome::Done, Outcome::Done],
        "{outcomes:?}"
    );
    assert_eq!(receiver.count(), 1);
    let after = dispatch(&engine, &message).await.unwrap();
    assert_eq!(after, Outcome::Done, "finished: nothing more to send");
    assert_eq!(receiver.count(), 1);
}
