#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End to end: Slack and Teams notifications through the real binary, to loopback
//! receivers that answer as Slack and Teams do; the integration test; and the preview.

use std::time::Duration;

use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const HOSTILE: &str = "<!channel> <https://evil.example|click> *bold*";

fn failed_run(id: &str, name: &str) -> Value {
    json!({"id": id, "event_type": "RUN_STATE", "project": "mnist",
           "run": {"id": format!("run-{id}"), "name": name, "user": "alice", "state": "FAILED"}})
}

/// A team whose secret `URL_SECRET` holds `receiver`'s URL, an integration of `kind` to
/// it, and an automation notifying it when a run in project mnist fails.
async fn notifying(api: &Api, kind: &str, receiver: &Receiver) -> (String, String) {
    api.create_team("acme").await;
    api.put_secret("acme", "URL_SECRET", &receiver.url).await;
    let integration = api
        .webhook(
            "acme",
            json!({"type": kind, "name": format!("{kind}-alerts"), "webhook_url_secret": "URL_SECRET"}),
        )
        .await;
    let automation = api
        .automation(
            "acme",
            json!({"name": "notify-on-failure", "scope": {"type": "project", "name": "mnist"},
               "event": {"type": "RUN_STATE", "states": ["FAILED"]},
               "action": {"type": "notification", "integration": integration,
                          "title": "Run ${run_name} failed",
                          "message": "*${run_name}* by ${run_user} failed.", "severity": "ERROR"}}),
        )
        .await;
    (integration, automation)
}

async fn integration_of(api: &Api, id: &str) -> Value {
    api.expect(
        200,
        "GET",
        &format!("/v1/teams/acme/integrations/{id}"),
        None,
    )
    .await
}

async fn execution_of(api: &Api, automation: &str, event: &str, done: &[&str]) -> Value {
    let list = api
        .wait_executions("acme", automation, WAIT, |l| {
            l.iter()
                .any(|e| e["event"]["id"] == event && done.contains(&e["status"].as_str().unwrap()))
        })
        .await;
    list.into_iter()
        .find(|e| e["event"]["id"] == event)
        .unwrap_or_else(|| panic!("no execution of {event}"))
}

#[tokio::test]
async fn slack_answers_retry_disable_or_fail_the_execution_as_slack_means_them() {
    // GIVEN a Slack integration to a receiver that answers ok, 429 (Retry-After: 1),
    // 410 channel_is_archived, then (once re-enabled) 400 invalid_payload
    let server = Server::start(ServerOptions {
        retry_schedule: "1,1".into(),
        ..ServerOptions::default()
    });
    let slack = Receiver::start().await;
    let api = server.api();
    let (integration, automation) = notifying(&api, "slack", &slack).await;
    slack.script_with_headers(&[
        (200, "ok", &[]),
        (429, "rate_limited", &[("retry-after", "1")]),
        (410, "channel_is_archived", &[]),
    ]);

    // WHEN a run with a hostile name fails
    api.events("acme", failed_run("e-1", HOSTILE)).await;
    // THEN Slack gets Block Kit, the name escaped, and the execution is FINISHED
    let first = execution_of(&api, &automation, "e-1", &["FINISHED"]).await;
    assert_eq!(first["attempts"][0]["outcome"], "delivered");
    assert_eq!(first["result"]["body"], "ok");
    assert_eq!(first["action"]["url"], "***", "the webhook URL is a secret");
    let body = slack.deliveries()[0].json();
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        format!("Run {HOSTILE} failed")
    );
    let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.starts_with("*&lt;!channel&gt; &lt;https://evil.example|click&gt; <!date^00000000^{_}|*>bold<!date^00000000^{_}|*>* by alice"),
        "{section}"
    );
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .starts_with("[ERROR] Run &lt;!channel&gt;")
    );
    assert_eq!(
        first["action"]["payload"], body,
        "the record shows the body as sent"
    );

    // WHEN a second run fails: 429, then channel_is_archived
    api.events("acme", failed_run("e-2", "second")).await;
    let second = execution_of(&api, &automation, "e-2", &["FAILED"]).await;
    // THEN it was retried no sooner than Retry-After, then failed, disabling the integration
    let attempts = second["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{second}");
    assert_eq!(
        (
            attempts[0]["status_code"].as_u64(),
            attempts[0]["outcome"].as_str()
        ),
        (Some(429), Some("retry"))
    );
    assert_eq!(
        (
            attempts[1]["status_code"].as_u64(),
            attempts[1]["outcome"].as_str()
        ),
        (Some(410), Some("disabled"))
    );
    let deliveries = slack.deliveries();
    let gap = deliveries[2].at - deliveries[1].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert_eq!(second["result"]["body"], "channel_is_archived");
    assert!(
        second["result"]["error"]
            .as_str()
            .unwrap()
            .contains("channel_is_archived"),
        "{second}"
    );
    let shown = integration_of(&api, &integration).await;
    assert_eq!(shown["enabled"], false);
    assert_eq!(
        shown["disabled_reason"],
        "Slack answered 410 channel_is_archived"
    );

    // WHEN a third run fails THEN nothing is sent: the execution fails without an attempt
    api.events("acme", failed_run("e-3", "third")).await;
    let third = execution_of(&api, &automation, "e-3", &["FAILED"]).await;
    assert_eq!(third["attempts"], json!([]));
    assert!(
        third["result"]["error"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    assert_eq!(slack.count(), 3, "nothing is sent after the disable");

    // WHEN the integration is enabled again and Slack refuses one payload
    api.expect(
        200,
        "PUT",
        &format!("/v1/teams/acme/integrations/{integration}"),
        Some(json!({"type": "slack", "name": "slack-alerts", "webhook_url_secret": "URL_SECRET"})),
    )
    .await;
    slack.script(&[(400, "invalid_payload")]);
    api.events("acme", failed_run("e-4", "fourth")).await;
    // THEN only that execution fails, once, and the integration stays enabled
    let fourth = execution_of(&api, &automation, "e-4", &["FAILED"]).await;
    assert_eq!(fourth["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(fourth["attempts"][0]["outcome"], "failed");
    assert_eq!(fourth["result"]["body"], "invalid_payload");
    api.events("acme", failed_run("e-5", "fifth")).await;
    execution_of(&api, &automation, "e-5", &["FINISHED"]).await;
    let shown = integration_of(&api, &integration).await;
    assert_eq!(shown["enabled"], true);
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_and_a_404_disables_the_integration() {
    let server = Server::start(ServerOptions::default());
    let teams = Receiver::start().await;
    let api = server.api();
    let (integration, automation) = notifying(&api, "teams", &teams).await;
    teams.script(&[(202, ""), (404, "workflow not found")]);

    api.events("acme", failed_run("e-1", "[click](https://evil.example)"))
        .await;
    let first = execution_of(&api, &automation, "e-1", &["FINISHED"]).await;
    assert!(
        first["result"]["body"].is_null(),
        "a Teams answer is never kept"
    );
    let card = teams.deliveries()[0].json();
    assert_eq!(card["type"], "message");
    let content = &card["attachments"][0]["content"];
    assert_eq!(content["version"], "1.4");
    assert_eq!(
        content["body"][0]["text"],
        "Run \\[click\\]\\(https://evil.example\\) failed"
    );
    assert_eq!(
        content["body"][2]["facts"][1],
        json!({"title": "Event", "value": "RUN\\_STATE"})
    );

    api.events("acme", failed_run("e-2", "second")).await;
    let second = execution_of(&api, &automation, "e-2", &["FAILED"]).await;
    assert_eq!(second["attempts"][0]["outcome"], "disabled");
    let shown = integration_of(&api, &integration).await;
    assert_eq!(shown["disabled_reason"], "Teams answered 404");
}

#[tokio::test]
async fn integrations_take_their_url_from_a_secret_and_their_test_posts_a_confirmation() {
    let server = Server::start(ServerOptions::default());
    let slack = Receiver::start().await;
    let api = server.api();
    let (integration, _) = notifying(&api, "slack", &slack).await;

    // The test posts a short confirmation and answers with Slack's answer.
    let answer = api
        .expect(
            200,
            "POST",
            &format!("/v1/teams/acme/integrations/{integration}/test"),
            None,
        )
        .await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["body"], "ok");
    let posted = slack.wait_for(1, WAIT).await[0].json();
    assert_eq!(posted["blocks"][0]["text"]["text"], "Test from automations");
    assert!(
        posted["text"]
            .as_str()
            .unwrap()
            .starts_with("[INFO] Test from automations")
    );

    // A URL the guard refuses, or no URL at all, is refused by the secret's name only.
    for (value, field) in [
        ("not a url", "webhook_url_secret"),
        ("http://localhost:9/x", "webhook_url_secret"),
    ] {
        api.put_secret("acme", "BAD_URL", value).await;
        let (status, body) = api
            .call(
                "POST",
                "/v1/teams/acme/integrations",
                Some(json!({"type": "slack", "name": "bad", "webhook_url_secret": "BAD_URL"})),
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("BAD_URL"),
            "{body}"
        );
        assert!(
            !body.to_string().contains(value),
            "the value is never shown: {body}"
        );
    }
    let cases = [
        (
            json!({"type": "slack", "name": "x", "webhook_url_secret": "NOPE"}),
            "webhook_url_secret",
        ),
        (
            json!({"type": "slack", "name": "x", "url": slack.url}),
            "url",
        ),
        (
            json!({"type": "teams", "name": "x", "webhook_url_secret": "URL_SECRET", "channel": "#a"}),
            "channel",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = api
            .call("POST", "/v1/teams/acme/integrations", Some(body))
            .await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }
    // A type cannot change.
    let (status, answer) = api
        .call(
            "PUT",
            &format!("/v1/teams/acme/integrations/{integration}"),
            Some(json!({"type": "teams", "name": "slack-alerts", "webhook_url_secret": "URL_SECRET"})),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].as_str()),
        (400, Some("type")),
        "{answer}"
    );

    // Secrets are refused in notification text; actions go to integrations of their kind.
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "ci", "url": slack.url}),
        )
        .await;
    let refused = [
        (
            json!({"type": "notification", "integration": integration, "title": "t", "message": "key ${URL_SECRET}"}),
            "action.message",
        ),
        (
            json!({"type": "notification", "integration": integration, "title": "${nope}", "message": "m"}),
            "action.title",
        ),
        (
            json!({"type": "notification", "integration": integration, "title": "t", "message": "m", "severity": "LOUD"}),
            "action.severity",
        ),
        (
            json!({"type": "notification", "integration": integration, "message": "m"}),
            "action.title",
        ),
        (
            json!({"type": "notification", "integration": hook, "title": "t", "message": "m"}),
            "action.integration",
        ),
        (
            json!({"type": "webhook", "integration": integration}),
            "action.integration",
        ),
        (
            json!({"type": "webhook", "integration": hook, "title": "t"}),
            "action.title",
        ),
    ];
    for (action, field) in refused {
        let (status, answer) = api
            .call(
                "POST",
                "/v1/teams/acme/automations",
                Some(json!({"name": "bad", "scope": {"type": "project", "name": "mnist"},
                            "event": {"type": "RUN_STATE", "states": ["FAILED"]}, "action": action})),
            )
            .await;
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (400, Some(field)),
            "{answer}"
        );
    }
    assert_eq!(
        api.automation_names("acme").await,
        vec!["notify-on-failure"],
        "nothing stored"
    );
}

#[tokio::test]
async fn a_preview_says_whether_and_what_it_would_send_and_sends_nothing() {
    const TOKEN: &str = "ghp_preview_token_never_shown";
    const SIGNING: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let (_, notify) = notifying(&api, "slack", &receiver).await;
    api.put_secret("acme", "GH_TOKEN", TOKEN).await;
    api.put_secret("acme", "SIGNING", SIGNING).await;
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "ci", "url": receiver.url,
                   "access_token_secret": "GH_TOKEN", "signing_secret": "SIGNING"}),
        )
        .await;
    let deploy = json!({"name": "deploy", "enabled": false,
        "scope": {"type": "registry", "name": "model", "collection": "resnet"},
        "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": {"$regex": "^prod"}}},
        "action": {"type": "webhook", "integration": hook,
                   "payload": {"version": "${artifact_version_string}", "token": "${GH_TOKEN}"}}});
    let alias = |alias: &str| {
        json!({"event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
               "artifact": {"collection": "resnet", "version": "v4", "alias": alias}})
    };
    let preview = |body: Value| {
        let api = api.clone();
        async move {
            api.expect(
                200,
                "POST",
                "/v1/teams/acme/automations/preview",
                Some(body),
            )
            .await
        }
    };

    // A draft that matches: disabled, so it would not fire, but the request is shown,
    // secrets masked.
    let answer = preview(json!({"automation": deploy, "event": alias("production")})).await;
    assert_eq!(answer["would_fire"], false, "{answer}");
    assert_eq!(answer["reason"]["reason"], "disabled");
    let request = &answer["request"];
    assert_eq!(request["url"], json!(receiver.url));
    assert_eq!(
        request["body"],
        json!({"version": "acme/model/resnet:production", "token": "***"})
    );
    assert_eq!(request["headers"]["authorization"], "Bearer ***");
    assert_eq!(request["headers"]["webhook-signature"], "v1,***");
    assert_eq!(request["secrets"], json!(["GH_TOKEN", "SIGNING"]));
    let text = answer.to_string();
    assert!(
        !text.contains(TOKEN) && !text.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        "{text}"
    );

    // Enabled: it would fire. Not matching: why, at which field.
    let mut enabled = deploy.clone();
    enabled["enabled"] = json!(true);
    let answer = preview(json!({"automation": enabled, "event": alias("production")})).await;
    assert_eq!(
        (answer["would_fire"].as_bool(), &answer["reason"]),
        (Some(true), &Value::Null)
    );
    let answer = preview(json!({"automation": enabled, "event": alias("staging")})).await;
    assert_eq!(answer["would_fire"], false);
    assert_eq!(answer["reason"]["reason"], "filter");
    assert_eq!(answer["reason"]["field"], "alias");
    assert!(answer["request"].is_null());
    let mut elsewhere = alias("production");
    elsewhere["artifact"]["collection"] = json!("bert");
    let answer = preview(json!({"automation": enabled, "event": elsewhere})).await;
    assert_eq!(answer["reason"]["reason"], "scope");
    let answer = preview(json!({"automation": enabled,
        "event": {"event_type": "LINK_ARTIFACT", "registry": "model", "artifact": {"collection": "resnet", "version": "v4"}}})).await;
    assert_eq!(answer["reason"]["reason"], "event_type");

    // A saved notification: the Slack body as it would be posted, its URL masked.
    let answer =
        preview(json!({"automation_id": notify, "event": failed_run("p-1", HOSTILE)})).await;
    assert_eq!(answer["would_fire"], true, "{answer}");
    assert_eq!(answer["request"]["url"], "***");
    assert_eq!(answer["request"]["secrets"], json!(["URL_SECRET"]));
    assert_eq!(
        answer["request"]["body"]["blocks"][0]["text"]["text"],
        format!("Run {HOSTILE} failed")
    );
    assert!(!answer.to_string().contains(&receiver.url));
    let mut running = failed_run("p-2", "r");
    running["run"]["state"] = json!("RUNNING");
    let answer = preview(json!({"automation_id": notify, "event": running})).await;
    assert_eq!(
        (
            answer["reason"]["reason"].as_str(),
            answer["reason"]["field"].as_str()
        ),
        (Some("states"), Some("run.state"))
    );

    // Bad requests name the field.
    for (body, status, field) in [
        (
            json!({"automation_id": notify, "automation": deploy, "event": alias("p")}),
            400,
            "automation_id",
        ),
        (json!({"event": alias("p")}), 400, "automation_id"),
        (
            json!({"automation_id": "nope", "event": alias("p")}),
            404,
            "automation_id",
        ),
        (
            json!({"automation": {"name": "x"}, "event": alias("p")}),
            400,
            "automation",
        ),
        (
            json!({"automation_id": notify, "event": {"event_type": "NOPE"}}),
            400,
            "event.event_type",
        ),
        (json!({"automation_id": notify}), 400, "event"),
    ] {
        let (got, answer) = api
            .call(
                "POST",
                "/v1/teams/acme/automations/preview",
                Some(body.clone()),
            )
            .await;
        assert_eq!(got, status, "{body}: {answer}");
        assert!(
            answer["error"]["field"]
                .as_str()
                .unwrap_or_default()
                .starts_with(field),
            "{body}: {answer}"
        );
    }

    // Nothing was sent or stored.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 0);
    assert!(api.executions("acme", &notify).await.is_empty());
    assert_eq!(
        api.automation_names("acme").await,
        vec!["notify-on-failure"]
    );
}
