#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End to end against a real MLflow server (`mlflow server`, SQLite backend, loopback),
//! driven with `MlflowClient` (`tests/mlflow_registry.py`): its registry events reach the
//! real `automations serve` through an MLflow source and fire signed webhooks with the
//! model's variables; a webhook MLflow signs with another secret is refused and stores
//! nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use automations_tests::mlflow::Mlflow;
use automations_tests::{Api, Receiver, Server, ServerOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(60);
const MLFLOW_SECRET: &str = "mlflow-signing-secret-Ünïcødé";
const WEBHOOK_SECRET: &str = "deployer-signing-secret";
/// A model name our collections once refused: spaces, and more than letters.
const MODEL: &str = "Fraud Detector v2 (EU)";

/// An automation on the `mlflow` registry: `event` filtered by `filter`, a webhook to
/// `hook` with `payload`.
async fn automation(api: &Api, hook: &str, name: &str, event: Value, payload: Value) -> String {
    let mut trigger = event;
    trigger["filter"]
        .as_object_mut()
        .unwrap()
        .insert("artifact.collection".into(), json!(MODEL));
    api.automation(
        "acme",
        json!({"name": name, "scope": {"type": "registry", "name": "mlflow"}, "event": trigger,
               "action": {"type": "webhook", "integration": hook, "payload": payload}}),
    )
    .await
}

#[tokio::test]
async fn a_real_mlflow_registry_fires_signed_webhooks_and_a_wrong_secret_stores_nothing() {
    // GIVEN a real MLflow server, and automations serve with an MLflow source into the
    // registry `mlflow`, a signed webhook integration to a receiver, and an automation for
    // each registry event of MODEL, plus one for MLflow's example model
    let mlflow = tokio::task::spawn_blocking(Mlflow::start).await.unwrap();
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let receiver = Receiver::start().await;
    api.create_team("acme").await;
    api.put_secret("acme", "MLFLOW_SIGNING", MLFLOW_SECRET)
        .await;
    api.put_secret("acme", "DEPLOYER_SIGNING", WEBHOOK_SECRET)
        .await;
    let source = api
        .expect(
            201,
            "POST",
            "/v1/teams/acme/sources",
            Some(json!({"type": "mlflow", "name": "mlflow-local",
                        "signing_secret": "MLFLOW_SIGNING", "registry": "mlflow"})),
        )
        .await;
    let receive_url = format!(
        "{}{}",
        server.base,
        source["receive_path"].as_str().unwrap()
    );
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "deployer", "url": receiver.url,
                   "signing_secret": "DEPLOYER_SIGNING"}),
        )
        .await;
    let version_fields = json!({"event": "${event_type}", "model": "${artifact_collection_name}",
        "uri": "${artifact_version}", "version": "${artifact_version_string}"});
    let with = |extra: Value| {
        let mut payload = version_fields.clone();
        payload
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        payload
    };
    let automations = [
        automation(
            &api,
            &hook,
            "on-new-version",
            json!({"type": "LINK_ARTIFACT", "filter": {}}),
            with(json!({"source": "${artifact_metadata.source}",
                        "description": "${artifact_metadata.description}",
                        "tags": "${artifact_metadata.tags}"})),
        )
        .await,
        automation(
            &api,
            &hook,
            "deploy-production",
            json!({"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": "production"}}),
            with(json!({"alias": "${alias}"})),
        )
        .await,
        automation(
            &api,
            &hook,
            "on-tag-set",
            json!({"type": "ADD_ARTIFACT_TAG", "filter": {}}),
            with(json!({"tag": "${tag}", "value": "${artifact_metadata.tag_value}"})),
        )
        .await,
        automation(
            &api,
            &hook,
            "on-tag-deleted",
            json!({"type": "REMOVE_ARTIFACT_TAG", "filter": {}}),
            with(json!({"tag": "${tag}"})),
        )
        .await,
    ];
    let example = api
        .automation(
            "acme",
            json!({"name": "mlflow-test-deliveries", "scope": {"type": "registry", "name": "mlflow"},
                   "event": {"type": "LINK_ARTIFACT", "filter": {"artifact.collection": "example_model"}},
                   "action": {"type": "webhook", "integration": hook, "payload": with(json!({}))}}),
        )
        .await;

    // WHEN MlflowClient registers a webhook with our secret and one with another, tests
    // both, then creates MODEL and a version, sets the alias `production`, and sets and
    // deletes a tag
    let report = tokio::task::spawn_blocking(move || {
        let report = mlflow.drive(&[&receive_url, MLFLOW_SECRET, "not-the-signing-secret", MODEL]);
        (report, mlflow)
    })
    .await
    .unwrap();
    let (report, mlflow) = report;

    // THEN MLflow's test delivery signed with our secret is accepted, the other refused
    assert_eq!(report["version"], "1");
    assert_eq!(report["test_good"]["response_status"], 202, "{report}");
    let accepted: Value =
        serde_json::from_str(report["test_good"]["response_body"].as_str().unwrap()).unwrap();
    assert_eq!(
        accepted["accepted"].as_array().unwrap().len(),
        1,
        "{accepted}"
    );
    assert_eq!(report["test_wrong"]["response_status"], 401, "{report}");
    let refused: Value =
        serde_json::from_str(report["test_wrong"]["response_body"].as_str().unwrap()).unwrap();
    assert_eq!(refused["error"]["field"], "X-MLflow-Signature", "{refused}");

    // AND each registry event fires its automation once, as a signed webhook with the
    // model's variables (MLflow delivers them concurrently, so in any order)
    let got = receiver.wait_for(5, WAIT).await;
    assert_eq!(
        got.len(),
        5,
        "deliveries: {got:?}\nmlflow log:\n{}",
        mlflow.log()
    );
    let mut by_event = BTreeMap::new();
    for d in &got {
        let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
        mac.update(&d.body);
        assert_eq!(
            d.header("x-wandb-signature").unwrap(),
            STANDARD.encode(mac.finalize().into_bytes())
        );
        assert!(d.header("webhook-signature").unwrap().starts_with("v1,"));
        let body = d.json();
        by_event.insert(
            (
                body["event"].as_str().unwrap().to_string(),
                body["model"].as_str().unwrap().to_string(),
            ),
            body,
        );
    }
    let uri = format!("models:/{MODEL}/1");
    let version = format!("acme/mlflow/{MODEL}:v1");
    let of = |event: &str, model: &str| by_event[&(event.to_string(), model.to_string())].clone();
    assert_eq!(
        of("LINK_ARTIFACT", MODEL),
        json!({"event": "LINK_ARTIFACT", "model": MODEL, "uri": uri, "version": version,
               "source": "s3://models/fraud/7", "description": "first cut", "tags": {"team": "risk"}})
    );
    assert_eq!(
        of("ADD_ARTIFACT_ALIAS", MODEL),
        json!({"event": "ADD_ARTIFACT_ALIAS", "model": MODEL, "uri": uri,
               "version": format!("acme/mlflow/{MODEL}:production"), "alias": "production"})
    );
    assert_eq!(
        of("ADD_ARTIFACT_TAG", MODEL),
        json!({"event": "ADD_ARTIFACT_TAG", "model": MODEL, "uri": uri, "version": version,
               "tag": "stage", "value": "canary"})
    );
    assert_eq!(
        of("REMOVE_ARTIFACT_TAG", MODEL),
        json!({"event": "REMOVE_ARTIFACT_TAG", "model": MODEL, "uri": uri, "version": version,
               "tag": "stage"})
    );
    assert_eq!(
        of("LINK_ARTIFACT", "example_model")["uri"],
        "models:/example_model/1"
    );

    // AND the deliveries signed with the wrong secret (the test, and one for each of the
    // four events) stored nothing: every automation has exactly one execution, FINISHED
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.count(), 5);
    for id in automations.iter().chain([&example]) {
        let list = api
            .wait_executions("acme", id, WAIT, |l| {
                !l.is_empty() && l.iter().all(|e| e["status"] == "FINISHED")
            })
            .await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["status"], "FINISHED");
    }
}
