#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End to end: an MLflow source on the real binary. Deliveries signed as MLflow signs them
//! (`shared::domain::source::mlflow::signature`, itself checked against a delivery a real
//! MLflow server signed) become events and fire signed webhooks; unsigned, stale or
//! tampered ones get 401 and store nothing; a delivery sent again is accepted once.

use std::time::Duration;

use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};
use shared::domain::source::mlflow::signature;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "mlflow-webhook-secret-Ü";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Posts `body` to `path` as MLflow does: the delivery id, the timestamp and the signature
/// `secret` makes (no signature header for `None`); no API key.
async fn deliver(
    api: &Api,
    path: &str,
    id: &str,
    ts: i64,
    secret: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let mut request = api
        .http
        .post(format!("{}{path}", api.base))
        .header("content-type", "application/json")
        .header("x-mlflow-delivery-id", id)
        .header("x-mlflow-timestamp", ts.to_string())
        .body(body.to_string());
    if let Some(secret) = secret {
        let sig = signature(secret, id, &ts.to_string(), body.as_bytes());
        request = request.header("x-mlflow-signature", sig);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn version_created(name: &str, version: &str) -> String {
    json!({"entity": "model_version", "action": "created",
           "timestamp": "2026-12-02T12:39:58.642076+00:00",
           "data": {"name": name, "version": version, "source": "s3://models/x", "run_id": "r-7",
                    "tags": {"k": "v"}, "description": null}})
    .to_string()
}

/// acme with the secret, an MLflow source into registry `mlflow`, a receiver, and an
/// automation on new versions of `collection`.
async fn setup(api: &Api, receiver: &Receiver, collection: &str) -> (String, String) {
    api.create_team("acme").await;
    api.put_secret("acme", "MLFLOW_SIGNING", SECRET).await;
    let source = api
        .expect(
            201,
            "POST",
            "/v1/teams/acme/sources",
            Some(json!({"type": "mlflow", "name": "mlflow-prod",
                        "signing_secret": "MLFLOW_SIGNING", "registry": "mlflow"})),
        )
        .await;
    let path = source["receive_path"].as_str().unwrap().to_string();
    assert_eq!(
        path,
        format!(
            "/v1/teams/acme/sources/{}/receive",
            source["id"].as_str().unwrap()
        )
    );
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "deployer", "url": receiver.url}),
        )
        .await;
    let automation = api
        .automation(
            "acme",
            json!({"name": "on-new-version", "scope": {"type": "registry", "name": "mlflow"},
                   "event": {"type": "LINK_ARTIFACT", "filter": {"artifact.collection": collection}},
                   "action": {"type": "webhook", "integration": hook, "payload": {
                       "model": "${artifact_collection_name}", "version": "${artifact_version}",
                       "run": "${artifact_metadata.run_id}", "which": "${artifact_version_string}"}}}),
        )
        .await;
    (path, automation)
}

#[tokio::test]
async fn a_signed_delivery_fires_once_and_a_bad_one_stores_nothing() {
    // GIVEN an MLflow source and an automation on the model "My Model v2"
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let receiver = Receiver::start().await;
    let (path, automation) = setup(&api, &receiver, "My Model v2").await;
    let body = version_created("My Model v2", "3");

    // WHEN deliveries come unsigned, signed with another secret, stale, or tampered
    let ts = now();
    let refused = [
        deliver(&api, &path, "d-1", ts, None, &body).await,
        deliver(&api, &path, "d-1", ts, Some("not-the-secret"), &body).await,
        deliver(&api, &path, "d-1", ts - 301, Some(SECRET), &body).await,
        deliver(&api, &path, "d-1", ts + 301, Some(SECRET), &body).await,
    ];
    // THEN each is a 401 that says why
    for ((status, answer), header) in refused.iter().zip([
        "X-MLflow-Signature",
        "X-MLflow-Signature",
        "X-MLflow-Timestamp",
        "X-MLflow-Timestamp",
    ]) {
        assert_eq!(*status, 401, "{answer}");
        assert_eq!(answer["error"]["field"], header, "{answer}");
    }
    assert!(
        refused[0].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-MLflow-Signature")
    );
    assert!(
        refused[1].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not verify")
    );
    assert!(
        refused[2].1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("300 s")
    );
    let sig = signature(SECRET, "d-1", &ts.to_string(), body.as_bytes());
    let tampered = api
        .http
        .post(format!("{}{path}", api.base))
        .header("x-mlflow-delivery-id", "d-1")
        .header("x-mlflow-timestamp", ts.to_string())
        .header("x-mlflow-signature", sig)
        .body(body.replace("\"3\"", "\"4\""))
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status().as_u16(), 401);

    // WHEN the delivery comes signed, then again (MLflow's retry of the same delivery)
    let (status, answer) = deliver(&api, &path, "d-1", ts, Some(SECRET), &body).await;
    // THEN it is accepted: nothing of the refused ones was stored, not even its id
    assert_eq!(
        (status, answer),
        (202, json!({"accepted": ["d-1"], "duplicates": []}))
    );
    let (status, answer) = deliver(&api, &path, "d-1", ts + 5, Some(SECRET), &body).await;
    assert_eq!(
        (status, answer),
        (202, json!({"accepted": [], "duplicates": ["d-1"]}))
    );

    // AND one signed webhook carries the model's variables
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(
        got[0].json(),
        json!({"model": "My Model v2", "version": "models:/My Model v2/3", "run": "r-7",
               "which": "acme/mlflow/My Model v2:v3"})
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.count(),
        1,
        "the retried delivery fired nothing more"
    );
    assert_eq!(api.executions("acme", &automation).await.len(), 1);
}

#[tokio::test]
async fn every_model_name_mlflow_accepts_is_a_collection_a_filter_matches() {
    // GIVEN a source and an automation on a model name with spaces, %, ?, #, a script
    // other than Latin, a tab and a newline (all of which MLflow takes)
    let name = "ünïcødé 模型 100% ?q=1&x#f\ttab\nline ";
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let receiver = Receiver::start().await;
    let (path, _) = setup(&api, &receiver, name).await;
    // WHEN MLflow reports a version of it
    let (status, _) = deliver(
        &api,
        &path,
        "d-2",
        now(),
        Some(SECRET),
        &version_created(name, " 01"),
    )
    .await;
    assert_eq!(status, 202);
    // THEN the automation fires with the name as MLflow spells it
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].json()["model"], name);
    assert_eq!(
        got[0].json()["version"],
        "models:/ünïcødé 模型 100% ?q=1&x#f%09tab%0Aline /1",
        "a URI holds the control characters percent-encoded"
    );
}

#[tokio::test]
async fn other_events_are_ignored_and_bad_deliveries_name_the_problem() {
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let receiver = Receiver::start().await;
    let (path, automation) = setup(&api, &receiver, "m").await;
    let ts = now();

    // An MLflow event with no counterpart: 200, ignored, by name
    let created = r#"{"entity": "registered_model", "action": "created", "data": {"name": "m", "tags": {}, "description": ""}}"#;
    let (status, answer) = deliver(&api, &path, "d-3", ts, Some(SECRET), created).await;
    assert_eq!(
        (status, answer),
        (200, json!({"ignored": "registered_model.created"}))
    );

    // Signed but malformed: a 400 naming the field, and nothing stored
    let cases = [
        ("not json", "body"),
        (
            r#"{"entity": "model_version", "action": "created", "data": {"version": "1"}}"#,
            "data.name",
        ),
        (
            r#"{"entity": "model_version", "action": "created", "data": {"name": "m", "version": "one"}}"#,
            "data.version",
        ),
        (
            r#"{"entity": "model_version_tag", "action": "set", "data": {"name": "m", "version": "1", "value": "x"}}"#,
            "data.key",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = deliver(&api, &path, "d-4", ts, Some(SECRET), body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}");
    }
    let long = "m".repeat(1025);
    let (status, answer) = deliver(
        &api,
        &path,
        "d-4",
        ts,
        Some(SECRET),
        &version_created(&long, "1"),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (400, json!("artifact.collection"))
    );
    let (status, answer) = deliver(
        &api,
        &path,
        "has space",
        ts,
        Some(SECRET),
        &version_created("m", "1"),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (400, json!("X-MLflow-Delivery-Id"))
    );
    let huge = format!(r#"{{"pad": "{}"}}"#, "x".repeat(1 << 20));
    let (status, _) = deliver(&api, &path, "d-5", ts, Some(SECRET), &huge).await;
    assert_eq!(status, 413);

    // A path naming no source: 404, in any team
    let (status, _) = deliver(
        &api,
        "/v1/teams/acme/sources/01NOSUCH/receive",
        "d-6",
        ts,
        Some(SECRET),
        created,
    )
    .await;
    assert_eq!(status, 404);
    let odd = format!(
        "/v1/teams/{}/sources/{}/receive",
        "t".repeat(3000),
        "%20x".repeat(500)
    );
    let (status, _) = deliver(&api, &odd, "d-6", ts, Some(SECRET), created).await;
    assert_eq!(status, 404, "a path no source could have is a 404 too");

    // AND the delivery id the bad ones used is still free
    let (status, answer) = deliver(
        &api,
        &path,
        "d-4",
        ts,
        Some(SECRET),
        &version_created("m", "1"),
    )
    .await;
    assert_eq!((status, answer["accepted"].clone()), (202, json!(["d-4"])));
    receiver.wait_for(1, WAIT).await;
    assert_eq!(api.executions("acme", &automation).await.len(), 1);
}

#[tokio::test]
async fn sources_are_managed_by_admins_and_their_secret_is_kept() {
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let receiver = Receiver::start().await;
    let (path, _) = setup(&api, &receiver, "m").await;
    let id = path.split('/').nth(5).unwrap().to_string();
    // A source needs its secret to exist, and a valid shape
    let bad = [
        (
            json!({"type": "mlflow", "name": "x", "signing_secret": "NOPE", "registry": "mlflow"}),
            "signing_secret",
        ),
        (
            json!({"type": "github", "name": "x", "signing_secret": "MLFLOW_SIGNING", "registry": "mlflow"}),
            "type",
        ),
        (
            json!({"type": "mlflow", "name": "x y", "signing_secret": "MLFLOW_SIGNING", "registry": "mlflow"}),
            "name",
        ),
        (
            json!({"type": "mlflow", "name": "x", "signing_secret": "MLFLOW_SIGNING"}),
            "registry",
        ),
    ];
    for (body, field) in bad {
        let answer = api
            .expect(400, "POST", "/v1/teams/acme/sources", Some(body))
            .await;
        assert_eq!(answer["error"]["field"], field);
    }
    api.expect(
        409,
        "POST",
        "/v1/teams/acme/sources",
        Some(json!({"type": "mlflow", "name": "mlflow-prod", "signing_secret": "MLFLOW_SIGNING", "registry": "r"})),
    )
    .await;
    let listed = api.expect(200, "GET", "/v1/teams/acme/sources", None).await;
    assert_eq!(listed["sources"].as_array().unwrap().len(), 1);
    assert_eq!(listed["sources"][0]["signing_secret"], "MLFLOW_SIGNING");
    assert!(
        !listed.to_string().contains(SECRET),
        "no secret value is shown"
    );
    // The secret cannot be deleted while the source uses it
    api.expect(409, "DELETE", "/v1/teams/acme/secrets/MLFLOW_SIGNING", None)
        .await;
    // A member reads sources but cannot change them
    let (_, member) = api.grant_key("acme", "bob", "member").await;
    let member = api.with_key(&member);
    member
        .expect(200, "GET", &format!("/v1/teams/acme/sources/{id}"), None)
        .await;
    member
        .expect(403, "DELETE", &format!("/v1/teams/acme/sources/{id}"), None)
        .await;
    // An admin deletes it, and its path then takes nothing
    api.expect(204, "DELETE", &format!("/v1/teams/acme/sources/{id}"), None)
        .await;
    let (status, _) = deliver(
        &api,
        &path,
        "d-7",
        now(),
        Some(SECRET),
        &version_created("m", "1"),
    )
    .await;
    assert_eq!(status, 404);
    let audit = api
        .expect(200, "GET", "/v1/teams/acme/audit", None)
        .await
        .to_string();
    assert!(audit.contains("source.create") && audit.contains("source.delete"));
}
