#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! One depth and size limit at every door, at the boundary: a value at the limit is
//! accepted and reads back; one level or byte beyond gets a 400 naming the field, and
//! nothing is stored.

use std::time::Duration;

use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};
use shared::domain::limits::{
    MAX_DEPTH, MAX_EVENT_BYTES, MAX_FILTER_DEPTH, MAX_TEMPLATE_BYTES, nested,
};

const WAIT: Duration = Duration::from_secs(20);

fn assert_refused(status: u16, body: &Value, field: &str, needle: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{needle:?} not in {message:?}");
}

/// A value nested `levels` deep whose innermost object holds `leaf`.
fn nested_around(levels: usize, leaf: Value) -> Value {
    let mut value = json!({ "leaf": leaf });
    for _ in 1..levels {
        value = json!({ "a": value });
    }
    value
}

async fn team_with_hook(api: &Api, receiver: &Receiver) -> String {
    api.create_team("acme").await;
    api.webhook(
        "acme",
        json!({"type": "webhook", "name": "hook", "url": receiver.url}),
    )
    .await
}

fn automation(name: &str, integration: &str, payload: Value) -> Value {
    json!({"name": name, "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
           "action": {"type": "webhook", "integration": integration, "payload": payload}})
}

fn link(id: &str, metadata: Value) -> Value {
    json!({"id": id, "event_type": "LINK_ARTIFACT", "project": "p",
           "artifact": {"collection": "c", "version": "v1", "metadata": metadata}})
}

#[tokio::test]
async fn payloads_and_filters_at_the_limit_are_stored_and_read_back_and_one_deeper_is_refused() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let hook = team_with_hook(&api, &receiver).await;

    // A payload nested exactly MAX_DEPTH levels is stored and reads back equal, alone and listed
    let deepest = nested(MAX_DEPTH);
    let id = api
        .automation("acme", automation("deep", &hook, deepest.clone()))
        .await;
    let read = api
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/automations/{id}"),
            None,
        )
        .await;
    assert_eq!(read["action"]["payload"], deepest);
    let listed = api
        .expect(200, "GET", "/v1/teams/acme/automations", None)
        .await;
    assert_eq!(listed["automations"][0]["action"]["payload"], deepest);
    assert_eq!(listed["unreadable"], json!([]));

    // One level deeper is refused at create, replace and patch, naming the field
    let too_deep = nested(MAX_DEPTH + 1);
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/automations",
            Some(automation("deeper", &hook, too_deep.clone())),
        )
        .await;
    assert_refused(status, &body, "action.payload", "33 levels");
    let path = format!("/v1/teams/acme/automations/{id}");
    let (status, body) = api
        .call(
            "PUT",
            &path,
            Some(automation("deep", &hook, too_deep.clone())),
        )
        .await;
    assert_refused(status, &body, "action.payload", "at most 32");
    let patch = json!({"action": {"type": "webhook", "integration": hook, "payload": too_deep}});
    let (status, body) = api.call("PATCH", &path, Some(patch)).await;
    assert_refused(status, &body, "action.payload", "at most 32");

    // A filter holds at most MAX_FILTER_DEPTH levels
    let filter_at = |levels: usize| {
        // {"artifact.metadata.x": {"$eq": <levels - 2 deep>}} is `levels` deep
        json!({"artifact.metadata.x": {"$eq": nested(levels - 2)}})
    };
    let mut spec = automation("filtered", &hook, json!({}));
    spec["event"]["filter"] = filter_at(MAX_FILTER_DEPTH);
    api.automation("acme", spec.clone()).await;
    spec["name"] = json!("filtered-deeper");
    spec["event"]["filter"] = filter_at(MAX_FILTER_DEPTH + 1);
    let (status, body) = api
        .call("POST", "/v1/teams/acme/automations", Some(spec))
        .await;
    assert_refused(status, &body, "event.filter", "at most 16");

    // A payload over the size limit is refused
    let big = json!({"blob": "x".repeat(MAX_TEMPLATE_BYTES)});
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/automations",
            Some(automation("big", &hook, big)),
        )
        .await;
    assert_refused(status, &body, "action.payload", "bytes");

    // The integration test's payload has the same limits
    let test = format!("/v1/teams/acme/integrations/{hook}/test");
    let answer = api
        .expect(
            200,
            "POST",
            &test,
            Some(json!({"payload": nested(MAX_DEPTH)})),
        )
        .await;
    assert_eq!(answer["status"], 200);
    assert_eq!(receiver.deliveries()[0].json(), nested(MAX_DEPTH));
    let (status, body) = api
        .call(
            "POST",
            &test,
            Some(json!({"payload": nested(MAX_DEPTH + 1)})),
        )
        .await;
    assert_refused(status, &body, "payload", "at most 32");

    // A body deeper than any reader takes is refused before it is read
    let (status, body) = api
        .call("POST", "/v1/teams/acme/automations", Some(nested(200)))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("levels deep"),
        "{body}"
    );

    // AND nothing refused was stored
    let mut names = api.automation_names("acme").await;
    names.sort();
    assert_eq!(names, ["deep", "filtered"]);
}

#[tokio::test]
async fn event_metadata_at_the_limit_is_delivered_and_its_execution_reads_back() {
    // GIVEN an automation that copies the event's metadata into its payload
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let hook = team_with_hook(&api, &receiver).await;
    let automation = api
        .automation(
            "acme",
            automation("copy", &hook, json!({"m": "${artifact_metadata.deep}"})),
        )
        .await;

    // WHEN an event's metadata nests exactly MAX_DEPTH levels (the metadata object is the first)
    let deep = nested_around(MAX_DEPTH - 1, json!("bottom"));
    api.events("acme", link("at-limit", json!({ "deep": deep })))
        .await;

    // THEN it is delivered, and its execution reads back, alone and listed
    let arrived = receiver.wait_for(1, WAIT).await;
    assert_eq!(arrived[0].json(), json!({ "m": deep }));
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FINISHED")
        })
        .await;
    assert_eq!(list[0]["action"]["payload"]["m"], deep);
    let id = list[0]["id"].as_str().unwrap();
    let one = api
        .expect(200, "GET", &format!("/v1/teams/acme/executions/{id}"), None)
        .await;
    assert_eq!(one["status"], "FINISHED");

    // AND one level deeper, or a larger event, is refused naming the field, alone or in a batch
    let deeper = json!({ "deep": nested_around(MAX_DEPTH, json!("bottom")) });
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/events",
            Some(link("too-deep", deeper.clone())),
        )
        .await;
    assert_refused(status, &body, "artifact.metadata", "at most 32");
    let batch = json!({"events": [link("fine", json!({})), link("too-deep", deeper)]});
    let (status, body) = api.call("POST", "/v1/teams/acme/events", Some(batch)).await;
    assert_refused(status, &body, "events[1].artifact.metadata", "at most 32");
    let large = json!({ "blob": "x".repeat(MAX_EVENT_BYTES) });
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/events",
            Some(link("too-large", large)),
        )
        .await;
    assert_refused(status, &body, "artifact.metadata", "at most 65536 bytes");

    // AND nothing of them was queued: only the first event was ever delivered
    let ok = api.events("acme", link("after", json!({}))).await;
    assert_eq!(ok["accepted"], json!(["after"]));
    receiver.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 2);
}
