#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Redelivered queue messages, driven through the use cases on the local runtime's real
//! adapters: a redelivered event creates no second execution, a redelivered action never
//! sends a delivery that already succeeded, and a queue_job's message enqueues one job.

use std::sync::Arc;
use std::time::Duration;

use automations_tests::Receiver;
use serde_json::{Value, json};
use shared::delivery::guard::{OutboundGuard, parse_allow_networks};
use shared::domain::access::Actor;
use shared::domain::event::Event;
use shared::domain::execution::{Attempt, ExecutionStatus};
use shared::local::LocalRuntime;
use shared::ports::Queue;
use shared::usecases::dispatch::{MAX_ATTEMPTS, Outcome, dispatch};
use shared::usecases::evaluate::{Evaluation, Evaluator};
use shared::usecases::ingest::parse_events;
use shared::usecases::{ActionMessage, Engine, Error, Settings, manage};

/// The local runtime (no workers: the tests drive the use cases), a team with a webhook
/// to `receiver`, and an automation that fires on every link.
struct Fixture {
    _dir: tempfile::TempDir,
    runtime: LocalRuntime,
    engine: Engine,
    automation: String,
    event: Vec<Event>,
}

impl Fixture {
    async fn new(receiver: &Receiver) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let allow = parse_allow_networks("127.0.0.0/8").unwrap();
        let settings = Settings {
            guard: Arc::new(OutboundGuard::new(allow)),
            ..Settings::default()
        };
        let runtime = LocalRuntime::open(dir.path(), None, settings).unwrap();
        let engine = runtime.engine.clone();
        manage::create_team(&engine, &Actor::operator(), "acme")
            .await
            .unwrap();
        let hook = json!({"type": "webhook", "name": "ci", "url": receiver.url});
        let integration =
            manage::create_integration(&engine, &Actor::operator(), "acme", parse(hook))
                .await
                .unwrap();
        let spec = json!({"name": "links", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
                          "action": {"type": "webhook", "integration": integration.id}});
        let automation =
            manage::create_automation(&engine, &Actor::operator(), "acme", parse(spec))
                .await
                .unwrap()
                .id;
        let event = json!({"id": "e1", "event_type": "LINK_ARTIFACT", "project": "p",
                           "artifact": {"collection": "c", "version": "v1"}});
        let event = parse_events("acme", event, engine.clock.now()).unwrap();
        Self {
            _dir: dir,
            runtime,
            engine,
            automation,
            event,
        }
    }

    /// The action message of the automation's only execution.
    async fn message(&self) -> ActionMessage {
        let executions = self
            .engine
            .store
            .list_executions("acme", &self.automation, 10, None)
            .await
            .unwrap()
            .into_items("acme");
        assert_eq!(
            executions.len(),
            1,
            "one event, one automation: one execution"
        );
        ActionMessage {
            team: "acme".into(),
            execution_id: executions[0].id.clone(),
        }
    }
}

/// Evaluates the fixture's one event; panics unless it was evaluated.
async fn evaluate(evaluator: &Evaluator, events: &[Event]) -> Evaluation {
    let mut outcomes = evaluator.evaluate(events).await;
    assert_eq!(outcomes.len(), 1, "one event, one outcome");
    outcomes.remove(0).unwrap()
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn redelivered_messages_neither_duplicate_executions_nor_resend() {
    let receiver = Receiver::start().await;
    let f = Fixture::new(&receiver).await;

    // WHEN the event is evaluated twice, as after a redelivery
    let evaluator = Evaluator::new(f.engine.clone());
    let first = evaluate(&evaluator, &f.event).await;
    let second = evaluate(&evaluator, &f.event).await;

    // THEN there is one execution
    assert_eq!((first.created, first.existing), (1, 0));
    assert_eq!((second.created, second.existing), (0, 1));
    let message = f.message().await;

    // WHEN its action message is dispatched, and dispatched again
    assert_eq!(dispatch(&f.engine, &message).await.unwrap(), Outcome::Done);
    assert_eq!(dispatch(&f.engine, &message).await.unwrap(), Outcome::Done);

    // THEN exactly one delivery went out and the execution is finished with one attempt
    assert_eq!(receiver.count(), 1);
    let execution = f
        .engine
        .store
        .get_execution("acme", &message.execution_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execution.status.as_str(), "FINISHED");
    assert_eq!(execution.attempts.len(), 1);
    // (Both evaluations queued the pending execution; both messages are on the actions queue.)
    let queued = f.runtime.actions.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(queued.len(), 2);
}

#[tokio::test]
async fn two_workers_with_the_same_message_send_once() {
    // GIVEN an execution with two action messages (its event was delivered twice)
    let receiver = Receiver::start_slow(Duration::from_millis(200)).await;
    let f = Fixture::new(&receiver).await;
    let evaluator = Evaluator::new(f.engine.clone());
    evaluate(&evaluator, &f.event).await;
    evaluate(&evaluator, &f.event).await;
    let message = f.message().await;

    // WHEN two workers dispatch it at the same time
    let (a, b) = tokio::join!(dispatch(&f.engine, &message), dispatch(&f.engine, &message));

    // THEN one sends; the other finds it claimed and waits
    let mut outcomes = [a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| matches!(o, Outcome::Done));
    assert!(
        matches!(outcomes[0], Outcome::RetryAfter(_)) || outcomes == [Outcome::Done, Outcome::Done],
        "{outcomes:?}"
    );
    assert_eq!(receiver.count(), 1);
    let after = dispatch(&f.engine, &message).await.unwrap();
    assert_eq!(after, Outcome::Done, "finished: nothing more to send");
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn an_execution_with_as_many_attempts_as_it_keeps_is_not_retried_again() {
    // GIVEN a failed execution that has made MAX_ATTEMPTS attempts
    let receiver = Receiver::start().await;
    let f = Fixture::new(&receiver).await;
    evaluate(&Evaluator::new(f.engine.clone()), &f.event).await;
    let message = f.message().await;
    let store = &f.engine.store;
    let mut execution = store
        .get_execution("acme", &message.execution_id)
        .await
        .unwrap()
        .unwrap();
    execution.status = ExecutionStatus::Failed;
    execution.attempts = (0..MAX_ATTEMPTS)
        .map(|_| Attempt {
            at: "2026-11-23T18:00:00Z".into(),
            status_code: Some(503),
            error: None,
            duration_ms: 1,
            outcome: Some("retry".into()),
        })
        .collect();
    store.update_execution(&mut execution).await.unwrap();

    // WHEN it is retried THEN that is refused, saying why, and nothing is sent
    match manage::retry_execution(&f.engine, &Actor::operator(), "acme", &execution.id).await {
        Err(Error::Conflict(message)) => assert!(message.contains("100 attempts"), "{message}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(receiver.count(), 0);
    // AND one attempt fewer may still be retried
    execution.attempts.pop();
    store.update_execution(&mut execution).await.unwrap();
    let retried =
        manage::retry_execution(&f.engine, &Actor::operator(), "acme", &execution.id).await;
    assert_eq!(retried.unwrap().status, ExecutionStatus::Pending);
}

#[tokio::test]
async fn a_queue_job_message_delivered_again_enqueues_one_job() {
    // GIVEN a queue_job automation whose execution's first dispatch stopped after it put
    // the job on the queue, before it recorded that (the job is there, the record not)
    let receiver = Receiver::start().await;
    let f = Fixture::new(&receiver).await;
    shared::usecases::jobs::create_queue(
        &f.engine,
        &Actor::operator(),
        "acme",
        parse(json!({"name": "gpu"})),
    )
    .await
    .unwrap();
    let spec = json!({"name": "evaluate", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
                      "action": {"type": "queue_job", "queue": "gpu", "job": "eval"}});
    let automation = manage::create_automation(&f.engine, &Actor::operator(), "acme", parse(spec))
        .await
        .unwrap();
    evaluate(&Evaluator::new(f.engine.clone()), &f.event).await;
    let execution = f
        .engine
        .store
        .list_executions("acme", &automation.id, 10, None)
        .await
        .unwrap()
        .into_items("acme")
        .remove(0);
    let job = shared::actions::job::build(&execution, 0).unwrap();
    f.engine.jobs.enqueue(&job).await.unwrap();
    let message = ActionMessage {
        team: "acme".into(),
        execution_id: execution.id.clone(),
    };

    // WHEN its message is dispatched, twice at once, and once more
    let (a, b) = tokio::join!(dispatch(&f.engine, &message), dispatch(&f.engine, &message));
    a.unwrap();
    b.unwrap();
    assert_eq!(dispatch(&f.engine, &message).await.unwrap(), Outcome::Done);

    // THEN the queue holds one job, the execution's, recorded once and still pending
    let jobs = f
        .engine
        .jobs
        .list_jobs("acme", "gpu", None, 10, None)
        .await
        .unwrap()
        .into_items("acme");
    assert_eq!(jobs.len(), 1, "one job");
    assert_eq!(jobs[0].id, job.id);
    let execution = f
        .engine
        .store
        .get_execution("acme", &execution.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(execution.status, ExecutionStatus::Pending);
    assert_eq!(execution.action.job_id.as_deref(), Some(job.id.as_str()));
    let outcomes: Vec<_> = execution
        .attempts
        .iter()
        .map(|a| a.outcome.as_deref().unwrap())
        .collect();
    assert_eq!(outcomes, ["queued"]);
    // (nothing was sent to the webhook of the fixture's other automation's integration
    // by these dispatches: they were of the job's execution only)
    assert_eq!(receiver.count(), 0);
}
