#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End to end: the real binary over HTTP, webhooks received on loopback.

use std::collections::HashSet;
use std::time::Duration;

use automations_tests::{Receiver, Server, ServerOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(20);
const SIGNING_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "ghp_not_a_real_token_42";

fn hmac_b64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

fn alias_event(id: &str, alias: &str) -> Value {
    json!({"id": id, "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model", "author": "alice",
           "artifact": {"collection": "resnet", "version": "v4", "alias": alias, "metadata": {"params": 25}}})
}

/// A team with both secrets, a signed webhook integration to `receiver`, and a deploy automation.
async fn setup(server: &Server, receiver: &Receiver) -> (String, String) {
    let api = server.api();
    api.create_team("acme").await;
    api.put_secret("acme", "GH_TOKEN", TOKEN).await;
    api.put_secret("acme", "SIGNING", SIGNING_SECRET).await;
    let integration = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "ci", "url": receiver.url,
                                "access_token_secret": "GH_TOKEN", "signing_secret": "SIGNING"}),
        )
        .await;
    let automation = api
        .automation("acme", json!({
            "name": "deploy-on-production",
            "scope": {"type": "registry", "name": "model", "collection": "resnet"},
            "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": {"$regex": "^prod"}}},
            "action": {"type": "webhook", "integration": integration, "payload": {
                "event_type": "DEPLOY",
                "client_payload": {"version": "${artifact_version_string}", "author": "${event_author}",
                                   "params": "${artifact_metadata.params}", "token": "${GH_TOKEN}"}}}}))
        .await;
    (integration, automation)
}

#[tokio::test]
async fn a_matching_event_arrives_signed_and_is_recorded() {
    // GIVEN a server, a receiver, and an automation that deploys on "prod*" aliases
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let (_, automation) = setup(&server, &receiver).await;

    // WHEN a matching and a non-matching event are posted, the matching one twice
    let report = api
        .events(
            "acme",
            json!({"events": [alias_event("e-1", "production"), alias_event("e-2", "staging")]}),
        )
        .await;
    assert_eq!(report["accepted"], json!(["e-1", "e-2"]));
    let again = api.events("acme", alias_event("e-1", "production")).await;
    assert_eq!(again, json!({"accepted": [], "duplicates": ["e-1"]}));

    // THEN exactly one webhook arrives, with the rendered body, the token and both signatures
    let deliveries = receiver.wait_for(1, WAIT).await;
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(
        d.json(),
        json!({"event_type": "DEPLOY", "client_payload": {
        "version": "acme/model/resnet:production", "author": "alice", "params": 25, "token": TOKEN}})
    );
    assert_eq!(d.header("content-type"), Some("application/json"));
    assert_eq!(
        d.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(
        d.header("x-wandb-signature").unwrap(),
        hmac_b64(SIGNING_SECRET.as_bytes(), &d.body)
    );
    let id = d.header("webhook-id").unwrap();
    let ts = d.header("webhook-timestamp").unwrap();
    let key = STANDARD
        .decode(SIGNING_SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let signed = [id.as_bytes(), b".", ts.as_bytes(), b".", &d.body].concat();
    assert_eq!(
        d.header("webhook-signature").unwrap(),
        format!("v1,{}", hmac_b64(&key, &signed))
    );

    // AND the execution is FINISHED, secrets shown as ***
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.iter().all(|e| e["status"] == "FINISHED") && !l.is_empty()
        })
        .await;
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(e["id"], id);
    assert_eq!(e["status"], "FINISHED");
    assert_eq!(
        e["event"],
        json!({"event_type": "ADD_ARTIFACT_ALIAS", "id": "e-1"})
    );
    assert_eq!(e["action"]["payload"]["client_payload"]["token"], "***");
    assert_eq!(e["action"]["url"], receiver.url);
    assert_eq!(e["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(e["result"]["status_code"], 200);
    let full = api
        .expect(200, "GET", &format!("/v1/teams/acme/executions/{id}"), None)
        .await;
    assert_eq!(&full, e);
    assert!(
        !full.to_string().contains(TOKEN),
        "no secret in the execution record"
    );

    // AND no further delivery shows up for the duplicate or the staging event
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_third_attempt() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    receiver.script(&[(503, "busy"), (500, &format!("echo {TOKEN}"))]);
    let api = server.api();
    let (_, automation) = setup(&server, &receiver).await;

    api.events("acme", alias_event("e-1", "production")).await;

    let deliveries = receiver.wait_for(3, WAIT).await;
    assert_eq!(deliveries.len(), 3);
    let ids: HashSet<_> = deliveries
        .iter()
        .map(|d| d.header("webhook-id").unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "webhook-id is stable across retries");
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FINISHED")
        })
        .await;
    let attempts: Vec<_> = list[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(attempts, vec![json!(503), json!(500), json!(200)]);
    assert!(
        !list[0].to_string().contains(TOKEN),
        "echoed secrets are redacted: {}",
        list[0]
    );
}

#[tokio::test]
async fn client_errors_fail_at_once_and_410_disables_the_integration() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    receiver.script(&[(404, "no such hook"), (410, "gone")]);
    let api = server.api();
    let (integration, automation) = setup(&server, &receiver).await;

    api.events("acme", alias_event("e-1", "production")).await;
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FAILED")
        })
        .await;
    assert_eq!(list[0]["status"], "FAILED");
    assert_eq!(
        list[0]["attempts"].as_array().unwrap().len(),
        1,
        "a 404 is not retried"
    );
    assert!(
        list[0]["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("404")
    );

    api.events("acme", alias_event("e-2", "production")).await;
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.len() == 2 && l[0]["status"] == "FAILED"
        })
        .await;
    assert_eq!(list[0]["result"]["status_code"], 410);
    let i = api
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/integrations/{integration}"),
            None,
        )
        .await;
    assert_eq!(i["enabled"], false);
    assert!(i["disabled_reason"].as_str().unwrap().contains("410"));

    // A later event fails without a request, and a retry after re-enabling delivers it.
    api.events("acme", alias_event("e-3", "production")).await;
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.len() == 3 && l[0]["status"] == "FAILED"
        })
        .await;
    assert!(list[0]["attempts"].as_array().unwrap().is_empty());
    assert!(
        list[0]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    assert_eq!(receiver.count(), 2);
    api.expect(200, "PUT", &format!("/v1/teams/acme/integrations/{integration}"),
        Some(json!({"type": "webhook", "name": "ci", "url": receiver.url, "access_token_secret": "GH_TOKEN", "signing_secret": "SIGNING"}))).await;
    let id = list[0]["id"].as_str().unwrap();
    api.expect(
        202,
        "POST",
        &format!("/v1/teams/acme/executions/{id}/retry"),
        None,
    )
    .await;
    receiver.wait_for(3, WAIT).await;
    let e = api
        .expect(200, "GET", &format!("/v1/teams/acme/executions/{id}"), None)
        .await;
    let e = if e["status"] == "FINISHED" {
        e
    } else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        api.expect(200, "GET", &format!("/v1/teams/acme/executions/{id}"), None)
            .await
    };
    assert_eq!(e["status"], "FINISHED");
}

#[tokio::test]
async fn run_state_and_team_scope_automations_fire_on_their_events_only() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    api.create_team("acme").await;
    let integration = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "pager", "url": receiver.url}),
        )
        .await;
    api.automation("acme", json!({
        "name": "page-on-failure", "scope": {"type": "team"},
        "event": {"type": "RUN_STATE", "states": ["FAILED"], "filter": {"run.user": {"$in": ["alice", "bob"]}}},
        "action": {"type": "webhook", "integration": integration,
                   "payload": {"text": "run ${run_name} of ${run_user} is ${run_state} in ${project_name}"}}})).await;
    let noop = api
        .automation(
            "acme",
            json!({"name": "count-links", "scope": {"type": "project", "name": "detector"},
        "event": {"type": "LINK_ARTIFACT"}, "action": {"type": "no_op"}}),
        )
        .await;

    let run = |id: &str, state: &str, user: &str| {
        json!({"id": id, "event_type": "RUN_STATE", "project": "detector",
        "run": {"id": "r1", "name": "sunny-1", "user": user, "state": state}})
    };
    api.events("acme", json!({"events": [run("a", "CRASHED", "alice"), run("b", "FINISHED", "alice"), run("c", "FAILED", "carol"),
        {"id": "d", "event_type": "LINK_ARTIFACT", "project": "detector", "artifact": {"collection": "ds", "version": "v1"}}]})).await;

    let deliveries = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        deliveries[0].json(),
        json!({"text": "run sunny-1 of alice is FAILED in detector"})
    );
    let list = api
        .wait_executions("acme", &noop, WAIT, |l| !l.is_empty())
        .await;
    assert_eq!(list[0]["status"], "FINISHED");
    assert_eq!(list[0]["action"]["type"], "no_op");

    // A disabled automation does not fire; enabled again, it does. The paging webhook,
    // queued in the same batch, tells when the batch was evaluated.
    let path = format!("/v1/teams/acme/automations/{noop}");
    let link = |id: &str| json!({"id": id, "event_type": "LINK_ARTIFACT", "project": "detector", "artifact": {"collection": "ds", "version": id}});
    api.expect(200, "PATCH", &path, Some(json!({"enabled": false})))
        .await;
    api.events(
        "acme",
        json!({"events": [link("e"), run("g", "FAILED", "bob")]}),
    )
    .await;
    assert_eq!(receiver.wait_for(2, WAIT).await.len(), 2);
    api.expect(200, "PATCH", &path, Some(json!({"enabled": true})))
        .await;
    api.events("acme", link("f")).await;
    let list = api
        .wait_executions("acme", &noop, WAIT, |l| l.len() >= 2)
        .await;
    let fired: Vec<_> = list.iter().map(|e| e["event"]["id"].clone()).collect();
    assert_eq!(fired, vec![json!("f"), json!("d")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 2);
}

#[tokio::test]
async fn integration_test_sends_one_real_request() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let (integration, _) = setup(&server, &receiver).await;
    let answer = api
        .expect(
            200,
            "POST",
            &format!("/v1/teams/acme/integrations/{integration}/test"),
            Some(json!({"payload": {"hello": "${entity_name}"}})),
        )
        .await;
    // (the request carried the team's token: what came back is not kept)
    assert_eq!(
        answer,
        json!({"ok": true, "status": 200, "body": null, "error": null, "outcome": "delivered",
               "body_withheld": "not kept: the request carried team secrets, and a receiver may echo them back in any encoding"})
    );
    let d = &receiver.deliveries()[0];
    assert_eq!(d.json(), json!({"hello": "acme"}));
    assert_eq!(
        d.header("x-wandb-signature").unwrap(),
        hmac_b64(SIGNING_SECRET.as_bytes(), &d.body)
    );

    // AND an integration that sends no secret (a signing secret is never sent) shows the body
    let signed_only = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "signed-only", "url": receiver.url, "signing_secret": "SIGNING"}),
        )
        .await;
    let answer = api
        .expect(
            200,
            "POST",
            &format!("/v1/teams/acme/integrations/{signed_only}/test"),
            None,
        )
        .await;
    assert_eq!(
        answer,
        json!({"ok": true, "status": 200, "body": "ok", "error": null, "outcome": "delivered"})
    );
}

#[tokio::test]
async fn sigkill_under_load_loses_no_accepted_event() {
    // GIVEN a server and an automation matching every event, delivering to a slow receiver
    let mut server = Server::start(ServerOptions::default());
    let receiver = Receiver::start_slow(Duration::from_millis(10)).await;
    let api = server.api();
    setup(&server, &receiver).await;

    // WHEN events are accepted in batches and the server is killed while it works on them
    let mut accepted = Vec::new();
    for batch in 0..10 {
        let events: Vec<Value> = (0..50)
            .map(|i| alias_event(&format!("e-{batch}-{i}"), "production"))
            .collect();
        let report = api.events("acme", json!({ "events": events })).await;
        accepted.extend(report["accepted"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(accepted.len(), 500);
    server.kill();
    let before_restart = receiver.count();
    assert!(
        before_restart < 500,
        "the kill must interrupt deliveries; all {before_restart} had arrived"
    );
    server.restart();

    // THEN after the restart every accepted event is delivered (a delivery in flight at
    // the kill may arrive twice, with the same webhook-id: at-least-once), within less than
    // a claim's 60 s, since the dead process's claims are void after the restart
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (ids, deliveries) = loop {
        let deliveries = receiver.deliveries();
        let ids: HashSet<String> = deliveries
            .iter()
            .map(|d| d.header("webhook-id").unwrap().to_string())
            .collect();
        if ids.len() >= 500 || tokio::time::Instant::now() > deadline {
            break (ids, deliveries);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        ids.len(),
        500,
        "{before_restart} arrived before the kill; {} deliveries in all",
        deliveries.len()
    );
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly_and_state_survives() {
    let mut server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let (_, automation) = setup(&server, &receiver).await;
    assert!(server.terminate(), "exit status 0 after SIGTERM");
    server.restart();
    let api = server.api();
    api.expect(
        200,
        "GET",
        &format!("/v1/teams/acme/automations/{automation}"),
        None,
    )
    .await;
    api.events("acme", alias_event("after-restart", "production"))
        .await;
    assert_eq!(receiver.wait_for(1, WAIT).await.len(), 1);
}
