#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Malformed, oversized and hostile input: a 4xx that names the problem, and nothing stored.

use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};

/// Sends raw bytes with a content type; returns status and JSON body.
async fn raw(
    api: &Api,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let response = api
        .http
        .request(method, format!("{}{path}", api.base))
        .bearer_auth(&api.key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn assert_error(
    status: u16,
    body: &Value,
    expected_status: u16,
    field: Option<&str>,
    needle: &str,
) {
    assert_eq!(status, expected_status, "{body}");
    let error = &body["error"];
    assert!(
        error["message"].as_str().unwrap().contains(needle),
        "{needle:?} not in {body}"
    );
    if let Some(field) = field {
        assert_eq!(error["field"], field, "{body}");
    }
}

async fn team_with_webhook(server: &Server, receiver: &Receiver) -> String {
    let api = server.api();
    api.create_team("acme").await;
    api.webhook(
        "acme",
        json!({"type": "webhook", "name": "ci", "url": receiver.url}),
    )
    .await
}

#[tokio::test]
async fn keys_are_required_and_checked() {
    let server = Server::start(ServerOptions::default());
    let health = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    for key in ["", "wrong-key", &format!("{} ", server.api().key)[..8]] {
        let (status, body) = Api::new(&server.base, key)
            .call("GET", "/v1/teams", None)
            .await;
        assert_error(status, &body, 401, None, "Bearer");
    }
    let no_header = reqwest::Client::new()
        .get(format!("{}/v1/teams", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.status(), 401);
    let (status, body) = server
        .api()
        .call("GET", "/v1/teams/nobody/automations", None)
        .await;
    assert_error(status, &body, 404, None, "team nobody does not exist");
    let (status, body) = server.api().call("DELETE", "/v1/teams", None).await;
    assert_error(status, &body, 405, None, "method");
    let (status, body) = server
        .api()
        .call("GET", "/v1/teams/%FF%FE/automations", None)
        .await;
    assert_error(status, &body, 400, None, "UTF-8");
    let (status, body) = server.api().call("GET", "/v2/nothing", None).await;
    assert_error(status, &body, 404, None, "route");
}

fn points(step: Value, metrics: Value) -> Value {
    json!({"event_type": "RUN_METRICS", "project": "p", "run": {"id": "r1"},
           "step": step, "metrics": metrics})
}

#[tokio::test]
async fn bad_events_are_refused_and_nothing_is_queued() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let integration = team_with_webhook(&server, &receiver).await;
    let automation = api
        .automation("acme", json!({"name": "all-links", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
                                   "action": {"type": "webhook", "integration": integration}}))
        .await;
    let good = json!({"event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v1"}});
    let with = |key: &str, value: Value| {
        let mut e = good.clone();
        e[key] = value;
        e
    };
    let cases: Vec<(Value, u16, Option<&str>, &str)> = vec![
        (
            with("event_type", json!("LINK")),
            400,
            Some("event_type"),
            "unknown event type",
        ),
        (
            with("event_type", json!(7)),
            400,
            Some("event_type"),
            "invalid type",
        ),
        (
            with("registry", json!("r")),
            400,
            Some("project"),
            "not both",
        ),
        (
            json!({"event_type": "LINK_ARTIFACT", "artifact": {"collection": "c", "version": "v1"}}),
            400,
            Some("project"),
            "missing",
        ),
        (
            with("artifact", json!({"collection": "c"})),
            400,
            Some("artifact.version"),
            "version",
        ),
        (
            with("artifact", json!("c:v1")),
            400,
            Some("artifact"),
            "invalid type",
        ),
        (
            with("timestamp", json!("last tuesday")),
            400,
            Some("timestamp"),
            "RFC 3339",
        ),
        (with("id", json!("../../etc")), 400, Some("id"), "letters"),
        (
            with("surprise", json!(1)),
            400,
            None,
            "unknown field `surprise`",
        ),
        (json!([good.clone()]), 400, None, "event object"),
        (json!({"events": []}), 400, Some("events"), "1 to 1000"),
        (
            json!({"events": vec![good.clone(); 1001]}),
            400,
            Some("events"),
            "1 to 1000",
        ),
        (
            json!({"events": [good.clone(), with("project", json!("a b"))]}),
            400,
            Some("events[1].project"),
            "letters",
        ),
        (
            json!({"events": [good.clone()], "extra": 1}),
            400,
            None,
            "no other fields",
        ),
        (
            points(json!(1), json!({"loss": {"a": {"b": [1]}}})),
            400,
            Some("metrics.loss"),
            "must be a number",
        ),
        (
            points(json!(1), json!({"loss": "1e400"})),
            400,
            Some("metrics.loss"),
            "must be a number",
        ),
        (
            points(json!(1), json!({"loss": null})),
            400,
            Some("metrics.loss"),
            "must be a number",
        ),
        (
            points(json!(-1), json!({"loss": 1})),
            400,
            Some("step"),
            "invalid value",
        ),
        (
            points(json!(1.5), json!({"loss": 1})),
            400,
            Some("step"),
            "invalid type",
        ),
        (
            points(json!(1), json!({"x".repeat(300): 1})),
            400,
            Some("metrics"),
            "longer than 256",
        ),
        (
            points(
                json!(1),
                Value::Object((0..501).map(|i| (format!("m{i}"), json!(i))).collect()),
            ),
            400,
            Some("metrics"),
            "1 to 500",
        ),
        (
            points(json!(1), json!([1, 2])),
            400,
            Some("metrics"),
            "invalid type",
        ),
        (
            json!({"events": [points(json!(1), json!({"loss": 1})), points(json!(2), json!({"loss": "x"}))]}),
            400,
            Some("events[1].metrics.loss"),
            "must be a number",
        ),
    ];
    for (body, status, field, needle) in cases {
        let (got, answer) = api
            .call("POST", "/v1/teams/acme/events", Some(body.clone()))
            .await;
        assert_error(got, &answer, status, field, needle);
    }
    let (status, body) = raw(
        &api,
        "POST",
        "/v1/teams/acme/events",
        "application/json",
        b"{\"event_type\": ".to_vec(),
    )
    .await;
    assert_error(status, &body, 400, None, "not valid JSON");
    let (status, body) = raw(
        &api,
        "POST",
        "/v1/teams/acme/events",
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_error(status, &body, 415, None, "application/json");
    let mut huge = br#"{"event_type": "LINK_ARTIFACT", "project": "p", "author": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    huge.extend(br#""}"#);
    let (status, body) = raw(
        &api,
        "POST",
        "/v1/teams/acme/events",
        "application/json",
        huge,
    )
    .await;
    assert_error(status, &body, 413, None, "larger than");

    // Nothing of the rejected requests was queued: a good event is the only one evaluated.
    api.events("acme", good).await;
    receiver
        .wait_for(1, std::time::Duration::from_secs(10))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(api.executions("acme", &automation).await.len(), 1);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn bad_automations_are_refused_and_nothing_is_stored() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let integration = team_with_webhook(&server, &receiver).await;
    let good = json!({"name": "deploy", "scope": {"type": "registry", "name": "model"},
                      "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"alias": {"$regex": "^prod"}}},
                      "action": {"type": "webhook", "integration": integration, "payload": {"v": "${artifact_version}"}}});
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        v
    };
    let metric = |trigger: Value| {
        json!({"name": "watch", "scope": {"type": "project", "name": "p"}, "event": trigger,
               "action": {"type": "webhook", "integration": integration}})
    };
    let cases: Vec<(Value, Option<&str>, &str)> = vec![
        (
            edit(&|v| v["event"]["filter"] = json!({"alias": {"$regex": "(unclosed"}})),
            Some("event.filter.alias.$regex"),
            "regex",
        ),
        (
            edit(&|v| v["event"]["filter"] = json!({"alias": {"$regx": "^p"}})),
            Some("event.filter.alias.$regx"),
            "did you mean $regex",
        ),
        (
            edit(&|v| v["event"]["filter"] = json!({"alias": {"$regex": "(a{1000}){1000}"}})),
            Some("event.filter.alias.$regex"),
            "too large",
        ),
        (
            edit(&|v| v["action"]["payload"] = json!({"v": "${artifact_versoin}"})),
            Some("action.payload.v"),
            "unknown variable",
        ),
        (
            edit(&|v| v["action"]["payload"] = json!({"v": "${NO_SUCH_SECRET}"})),
            Some("action.payload"),
            "does not exist",
        ),
        (
            edit(&|v| v["action"]["integration"] = json!("nope")),
            Some("action.integration"),
            "does not exist",
        ),
        (
            edit(&|v| v["scope"] = json!({"type": "registry"})),
            Some("scope.name"),
            "missing field `name`",
        ),
        (
            edit(&|v| v["scope"] = json!({"type": "galaxy", "name": "x"})),
            Some("scope.type"),
            "unknown variant `galaxy`",
        ),
        (
            edit(&|v| v["event"]["type"] = json!("ADD_ALIAS")),
            Some("event.type"),
            "unknown trigger type",
        ),
        (
            edit(&|v| v["enabled"] = json!("yes")),
            Some("enabled"),
            "invalid type",
        ),
        (edit(&|v| v["name"] = json!("")), Some("name"), "1 to 128"),
        (
            edit(&|v| v["action"] = json!({"type": "email"})),
            Some("action.type"),
            "unknown action type",
        ),
        (json!("deploy"), None, "must be a JSON object"),
        (json!(["deploy"]), None, "must be a JSON object"),
        (
            metric(
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "window": 0,
                          "op": "$gt", "threshold": 1}),
            ),
            Some("event.window"),
            "1 to 1000",
        ),
        (
            metric(
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "window": 1001,
                          "op": "$gt", "threshold": 1}),
            ),
            Some("event.window"),
            "1 to 1000",
        ),
        (
            metric(
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "agg": "MEDIAN",
                          "op": "$gt", "threshold": 1}),
            ),
            Some("event.agg"),
            "unknown variant",
        ),
        (
            metric(
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "op": "gt",
                          "threshold": 1}),
            ),
            Some("event.op"),
            "unknown variant",
        ),
        (
            metric(
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "op": "$gt",
                          "threshold": "high"}),
            ),
            Some("event.threshold"),
            "invalid type",
        ),
        (
            metric(
                json!({"type": "RUN_METRIC_CHANGE", "metric": "loss", "current_window": 5,
                          "prior_window": 5, "amount": -0.1}),
            ),
            Some("event.amount"),
            "more than 0",
        ),
        (
            metric(
                json!({"type": "RUN_METRIC_CHANGE", "metric": "loss", "current_window": 600,
                          "prior_window": 600, "amount": 1}),
            ),
            Some("event.prior_window"),
            "at most 1000",
        ),
        (
            metric(
                json!({"type": "RUN_METRIC_ZSCORE", "metric": "loss", "window": 10,
                          "threshold": 0}),
            ),
            Some("event.threshold"),
            "more than 0",
        ),
        (
            metric(json!({"type": "RUN_METRIC_NAN", "metric": "loss", "cooldown_seconds": -5})),
            Some("event.cooldown_seconds"),
            "invalid value",
        ),
        (
            metric(json!({"type": "RUN_METRIC_NAN", "metric": {"name": {"deep": [[[1]]]}}})),
            Some("event.metric"),
            "invalid type",
        ),
        (
            metric(json!({"type": "RUN_METRIC_NAN", "metric": "l\u{7}oss"})),
            Some("event.metric"),
            "control characters",
        ),
        (
            metric(json!({"type": "RUN_METRIC_NAN", "metric": "loss", "op": "$gt"})),
            Some("event.op"),
            "do not take op",
        ),
        (
            edit(&|v| v["event"]["metric"] = json!("loss")),
            Some("event.metric"),
            "unknown field",
        ),
    ];
    for (body, field, needle) in cases {
        let (status, answer) = api
            .call("POST", "/v1/teams/acme/automations", Some(body.clone()))
            .await;
        assert_error(status, &answer, 400, field, needle);
    }
    let list = api
        .expect(200, "GET", "/v1/teams/acme/automations", None)
        .await;
    assert_eq!(list["automations"], json!([]));

    // A name is unique in its team; PATCH re-validates the whole automation.
    let id = api.automation("acme", good.clone()).await;
    let (status, body) = api
        .call("POST", "/v1/teams/acme/automations", Some(good.clone()))
        .await;
    assert_error(status, &body, 409, None, "deploy");
    let (status, body) = api
        .call(
            "PATCH",
            &format!("/v1/teams/acme/automations/{id}"),
            Some(json!({"event": {"type": "ADD_ARTIFACT_ALIAS", "filter": {"$nope": 1}}})),
        )
        .await;
    assert_error(status, &body, 400, Some("event.filter.$nope"), "unknown");
    let patched = api
        .expect(
            200,
            "PATCH",
            &format!("/v1/teams/acme/automations/{id}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(patched["enabled"], false);
    assert_eq!(
        patched["event"]["filter"],
        json!({"alias": {"$regex": "^prod"}})
    );
}

#[tokio::test]
async fn hostile_integration_urls_and_secrets_are_refused() {
    // The default options allow 127.0.0.0/8 (the test receiver); everything else stays refused.
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    api.create_team("acme").await;
    let hook = |url: &str| json!({"type": "webhook", "name": "x", "url": url});
    for (url, needle) in [
        ("http://localhost:9000/hook", "localhost"),
        ("http://LOCALHOST./hook", "localhost"),
        ("http://10.0.0.1/hook", "private"),
        ("http://8.8.8.8/hook", "8.8.8.8"),
        ("http://167772161/", "10.0.0.1"),
        ("http://169.254.169.254/latest/meta-data", "169.254"),
        ("http://[::ffff:a9fe:a9fe]/", "169.254"),
        ("http://0x0a000001/", "10.0.0.1"),
        ("http://user:pw@example.com/", "user name or password"),
        ("ftp://example.com/", "ftp"),
        ("file:///etc/passwd", "file"),
        ("not a url", "url"),
    ] {
        let (status, body) = api
            .call("POST", "/v1/teams/acme/integrations", Some(hook(url)))
            .await;
        assert_error(status, &body, 400, Some("url"), needle);
        assert!(!body.to_string().contains("pw@"), "userinfo echoed: {body}");
    }
    let (status, body) = api
        .call("POST", "/v1/teams/acme/integrations", Some(json!({"type": "webhook", "name": "x", "url": "https://example.com", "signing_secret": "MISSING"})))
        .await;
    assert_error(status, &body, 400, Some("signing_secret"), "does not exist");
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/integrations",
            Some(json!({"type": "carrier-pigeon", "name": "x", "url": "https://example.com"})),
        )
        .await;
    assert_error(status, &body, 400, Some("type"), "unknown integration type");
    assert_eq!(
        api.expect(200, "GET", "/v1/teams/acme/integrations", None)
            .await["integrations"],
        json!([])
    );

    for (name, body, field, needle) in [
        ("lower_case", json!({"value": "x"}), Some("name"), "A-Z"),
        ("TOKEN", json!({"value": ""}), Some("value"), "1 to"),
        ("TOKEN", json!({"value": 5}), Some("value"), "invalid type"),
        (
            "TOKEN",
            json!({"value": "x".repeat(20_000)}),
            Some("value"),
            "1 to",
        ),
    ] {
        let (status, answer) = api
            .call("PUT", &format!("/v1/teams/acme/secrets/{name}"), Some(body))
            .await;
        assert_error(status, &answer, 400, field, needle);
    }
    api.put_secret("acme", "TOKEN", "s3cr3t-value").await;
    let list = api.expect(200, "GET", "/v1/teams/acme/secrets", None).await;
    assert_eq!(list["secrets"].as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains("s3cr3t-value"),
        "secret values are write-only"
    );

    let (status, body) = api
        .call("POST", "/v1/teams", Some(json!({"name": "Bad Team"})))
        .await;
    assert_error(status, &body, 400, Some("name"), "lowercase");
    let (status, body) = api
        .call("POST", "/v1/teams", Some(json!({"name": "acme"})))
        .await;
    assert_error(status, &body, 409, None, "exists");
}

#[tokio::test]
async fn bad_previews_and_notifications_are_refused_and_nothing_is_sent() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let integration = team_with_webhook(&server, &receiver).await;
    api.put_secret("acme", "SLACK_URL", &receiver.url).await;
    let slack = api
        .webhook(
            "acme",
            json!({"type": "slack", "name": "alerts", "webhook_url_secret": "SLACK_URL"}),
        )
        .await;
    let draft = json!({"name": "deploy", "scope": {"type": "registry", "name": "model"},
                       "event": {"type": "ADD_ARTIFACT_ALIAS"},
                       "action": {"type": "webhook", "integration": integration}});
    let event = json!({"event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
                       "artifact": {"collection": "resnet", "version": "v1", "alias": "prod"}});
    let path = "/v1/teams/acme/automations/preview";

    // Malformed, not an object, and an unknown field.
    let (status, body) = raw(
        &api,
        "POST",
        path,
        "application/json",
        b"{\"automation\":".to_vec(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw(&api, "POST", path, "application/json", b"[1, 2]".to_vec()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = api
        .call(
            "POST",
            path,
            Some(json!({"automation": draft, "event": event, "send": true})),
        )
        .await;
    assert_error(status, &body, 400, None, "send");
    // Deeply nested and oversized events, named inside the event.
    let mut deep = json!("leaf");
    for _ in 0..40 {
        deep = json!({"a": deep});
    }
    let mut nested = event.clone();
    nested["artifact"]["metadata"] = json!({"x": deep});
    let (status, body) = api
        .call(
            "POST",
            path,
            Some(json!({"automation": draft, "event": nested})),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        Some("event.artifact.metadata"),
        "levels",
    );
    let mut large = event.clone();
    large["artifact"]["metadata"] = json!({"blob": "x".repeat(100_000)});
    let (status, body) = api
        .call(
            "POST",
            path,
            Some(json!({"automation": draft, "event": large})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["field"]
            .as_str()
            .unwrap()
            .starts_with("event"),
        "{body}"
    );
    let huge = json!({"automation": draft, "event": event, "x": "y".repeat(1 << 20)});
    // (on a client of its own: the server closes the connection of a body it refuses
    // unread, and the next request must not find that connection in the pool)
    let once = Api::new(&server.base, &api.key);
    let (status, _) = raw(
        &once,
        "POST",
        path,
        "application/json",
        huge.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 413);
    // A draft is checked as creating it would be; its errors are named inside it.
    let mut bad = draft.clone();
    bad["action"]["integration"] = json!("nope");
    let (status, body) = api
        .call(
            "POST",
            path,
            Some(json!({"automation": bad, "event": event})),
        )
        .await;
    assert_error(
        status,
        &body,
        400,
        Some("automation.action.integration"),
        "does not exist",
    );
    // Notification texts over their limits, or empty.
    let notice = |title: Value, message: Value| {
        json!({"name": "n", "scope": {"type": "project", "name": "p"},
               "event": {"type": "RUN_STATE", "states": ["FAILED"]},
               "action": {"type": "notification", "integration": slack, "title": title, "message": message}})
    };
    for (spec, field, needle) in [
        (
            notice(json!("t".repeat(1025)), json!("m")),
            "action.title",
            "1024",
        ),
        (
            notice(json!("t"), json!("m".repeat(16 * 1024 + 1))),
            "action.message",
            "16384",
        ),
        (notice(json!("  "), json!("m")), "action.title", "empty"),
        (notice(json!(["t"]), json!("m")), "action.title", "string"),
    ] {
        let (status, body) = api
            .call("POST", "/v1/teams/acme/automations", Some(spec))
            .await;
        assert_error(status, &body, 400, Some(field), needle);
    }
    assert_eq!(
        api.automation_names("acme").await,
        Vec::<String>::new(),
        "nothing stored"
    );
    assert_eq!(receiver.count(), 0, "nothing sent");
}
