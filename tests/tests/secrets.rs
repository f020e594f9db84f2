#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! No secret value leaves the engine, in any form a receiver may echo it in: not in an
//! answer, an execution record, a log line or the database files. And no reader of
//! executions can tell whether a value they chose equals a secret.

use std::time::Duration;

use automations_tests::receiver::encodings;
use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const WITHHELD: &str =
    "not kept: the request carried team secrets, and a receiver may echo them back in any encoding";

/// Secrets that JSON, URL and header encodings all change: quotes, backslashes, line
/// breaks (a PEM key), non-ASCII, and a single character.
const SECRETS: [(&str, &str); 5] = [
    ("TOKEN", "tök\"en\\✓-0042"),
    (
        "PEM",
        "-----BEGIN TEST KEY-----\nMIIBOgIBAAJBAK+/=\n-----END TEST KEY-----\n",
    ),
    ("QUOTES", r#"q"u\o'te"s<&>"#),
    ("UNICODE", "pässwörd-✓€-日本"),
    ("ONE", "Z"),
];

fn options() -> ServerOptions {
    ServerOptions {
        // Payloads are logged at DEBUG at most: check that level too.
        extra_env: vec![("RUST_LOG".into(), "debug".into())],
        ..ServerOptions::default()
    }
}

/// A body as it came over the wire, not re-serialized.
async fn raw(api: &Api, method: &str, path: &str, body: Option<Value>) -> String {
    api.call_raw(method, path, body).await.1
}

/// Every file the server keeps, and its log.
fn stored_bytes(server: &Server) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&server.data_dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    let log = server.log_path();
    files.push((log.display().to_string(), std::fs::read(&log).unwrap()));
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Panics where a secret of more than one character shows in any of its encodings.
fn assert_no_secret_in(surfaces: &[(String, Vec<u8>)]) {
    for (name, value) in SECRETS.iter().filter(|(_, v)| v.len() > 1) {
        for form in encodings(value.as_bytes()) {
            for (surface, bytes) in surfaces {
                assert!(
                    !contains(bytes, form.as_bytes()),
                    "secret {name} shows in {surface} as {form:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_echoing_receiver_gets_no_secret_back_into_the_engine() {
    // GIVEN secrets that every encoding changes, a receiver that echoes each request back
    // in all of them, a webhook that sends the token, and a payload with the other secrets
    let server = Server::start(options());
    let receiver = Receiver::start_echo().await;
    let api = server.api();
    api.create_team("acme").await;
    for (name, value) in SECRETS {
        api.put_secret("acme", name, value).await;
    }
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "echo", "url": receiver.url, "access_token_secret": "TOKEN"}),
        )
        .await;
    let automation = api
        .automation(
            "acme",
            json!({"name": "leaky", "scope": {"type": "team"}, "event": {"type": "ADD_ARTIFACT_ALIAS"},
                   "action": {"type": "webhook", "integration": hook, "payload": {
                       "pem": "${PEM}", "quotes": "Q=${QUOTES}", "unicode": "${UNICODE}", "one": "${ONE}",
                       "alias": "${alias}"}}}),
        )
        .await;

    // WHEN an event fires it, and the integration is tested with and without a payload
    api.events(
        "acme",
        json!({"id": "e-1", "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
               "artifact": {"collection": "resnet", "version": "v1", "alias": "production"}}),
    )
    .await;
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FINISHED")
        })
        .await;
    let execution = list[0]["id"].as_str().unwrap().to_string();
    let test_path = format!("/v1/teams/acme/integrations/{hook}/test");
    let tests = [
        raw(&api, "POST", &test_path, None).await,
        raw(
            &api,
            "POST",
            &test_path,
            Some(json!({"payload": {"k": "${PEM} ${UNICODE} ${ONE}"}})),
        )
        .await,
    ];

    // THEN the receiver did get every secret (so its echo held each in every encoding)
    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 3);
    let sent = deliveries[0].json();
    assert_eq!(sent["pem"], SECRETS[1].1);
    assert_eq!(sent["one"], "Z");
    assert_eq!(
        deliveries[0].headers["authorization"].as_bytes(),
        format!("Bearer {}", SECRETS[0].1).as_bytes()
    );
    // AND what came back was kept nowhere: not in the record, nor in the test answers
    let record: Value = api
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/executions/{execution}"),
            None,
        )
        .await;
    assert_eq!(record["result"]["status_code"], 200);
    assert_eq!(record["result"]["body"], Value::Null);
    assert_eq!(record["result"]["body_withheld"], WITHHELD);
    assert_eq!(record["action"]["payload"]["one"], "***");
    assert_eq!(record["action"]["payload"]["quotes"], "Q=***");
    for answer in &tests {
        let answer: Value = serde_json::from_str(answer).unwrap();
        assert_eq!(answer["status"], 200);
        assert_eq!(answer["body"], Value::Null, "{answer}");
        assert_eq!(answer["body_withheld"], WITHHELD);
    }
    // AND no form of any secret is in an answer, a log line or a database file
    let mut surfaces = vec![
        (
            "the execution".to_string(),
            raw(
                &api,
                "GET",
                &format!("/v1/teams/acme/executions/{execution}"),
                None,
            )
            .await
            .into_bytes(),
        ),
        (
            "the executions list".to_string(),
            raw(
                &api,
                "GET",
                &format!("/v1/teams/acme/automations/{automation}/executions"),
                None,
            )
            .await
            .into_bytes(),
        ),
        (
            "the secrets list".to_string(),
            raw(&api, "GET", "/v1/teams/acme/secrets", None)
                .await
                .into_bytes(),
        ),
    ];
    surfaces.extend(
        tests
            .iter()
            .map(|t| ("a test answer".to_string(), t.clone().into_bytes())),
    );
    surfaces.extend(stored_bytes(&server));
    assert_no_secret_in(&surfaces);
}

#[tokio::test]
async fn a_reader_of_executions_cannot_test_a_guess_against_a_secret() {
    // GIVEN a secret PIN sent in the payload beside the event's alias, to an echoing receiver
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start_echo().await;
    let api = server.api();
    api.create_team("acme").await;
    api.put_secret("acme", "PIN", "4821").await;
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "echo", "url": receiver.url}),
        )
        .await;
    let automation = api
        .automation(
            "acme",
            json!({"name": "pin", "scope": {"type": "team"}, "event": {"type": "ADD_ARTIFACT_ALIAS"},
                   "action": {"type": "webhook", "integration": hook,
                              "payload": {"pin": "${PIN}", "alias": "${alias}"}}}),
        )
        .await;

    // WHEN someone who can send events and read executions tries twelve candidates
    let candidates = [
        "0000", "1111", "1234", "2580", "4321", "4820", "4821", "4822", "5555", "6969", "7777",
        "9999",
    ];
    let events: Vec<Value> = candidates
        .iter()
        .map(|pin| {
            json!({"id": format!("guess-{pin}"), "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
                   "artifact": {"collection": "c", "version": "v1", "alias": pin}})
        })
        .collect();
    api.events("acme", json!({ "events": events })).await;
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.len() == candidates.len() && l.iter().all(|e| e["status"] == "FINISHED")
        })
        .await;
    assert_eq!(list.len(), candidates.len());
    assert_eq!(receiver.count(), candidates.len());

    // THEN every record is the same but for the guess itself, its ids and its times: none
    // keeps anything of the echo, so the right guess looks like every wrong one
    let shape = |e: &Value| {
        let mut e = e.clone();
        let alias = e["action"]["payload"]["alias"]
            .as_str()
            .unwrap()
            .to_string();
        for field in ["id", "triggered_at"] {
            e[field] = Value::Null;
        }
        e["event"]["id"] = Value::Null;
        e["action"]["payload"]["alias"] = Value::Null;
        for attempt in e["attempts"].as_array_mut().unwrap() {
            attempt["at"] = Value::Null;
            attempt["duration_ms"] = Value::Null;
        }
        (alias, e)
    };
    let shapes: Vec<(String, Value)> = list.iter().map(shape).collect();
    for (alias, record) in &shapes {
        assert_eq!(
            record, &shapes[0].1,
            "the record of guess {alias} stands out"
        );
        assert_eq!(record["action"]["payload"]["pin"], "***");
        assert_eq!(record["result"]["body"], Value::Null);
    }
    let mut guessed: Vec<&str> = shapes.iter().map(|(alias, _)| alias.as_str()).collect();
    guessed.sort_unstable();
    assert_eq!(guessed, candidates);
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_fails_at_once_naming_the_secret() {
    // GIVEN a webhook whose token is fine when the integration is saved
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    api.create_team("acme").await;
    let injected = "ghp_abc\r\nX-Injected: 1";
    api.put_secret("acme", "GH_TOKEN", injected).await;
    // (saving an integration with such a token is refused, naming the secret)
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/integrations",
            Some(json!({"type": "webhook", "name": "ci", "url": receiver.url, "access_token_secret": "GH_TOKEN"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "access_token_secret");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GH_TOKEN"),
        "{body}"
    );
    api.put_secret("acme", "GH_TOKEN", "ghp_abc").await;
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "ci", "url": receiver.url, "access_token_secret": "GH_TOKEN"}),
        )
        .await;
    let automation = api
        .automation(
            "acme",
            json!({"name": "deploy", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
                   "action": {"type": "webhook", "integration": hook}}),
        )
        .await;

    // WHEN the token is later set to one with a line break, and an event fires
    api.put_secret("acme", "GH_TOKEN", injected).await;
    api.events(
        "acme",
        json!({"event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v1"}}),
    )
    .await;

    // THEN the execution fails without a request or a retry, naming the secret, not its value
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FAILED")
        })
        .await;
    let e = &list[0];
    assert_eq!(e["status"], "FAILED", "{e}");
    assert_eq!(e["attempts"], json!([]));
    let error = e["result"]["error"].as_str().unwrap();
    assert!(
        error.contains("GH_TOKEN") && error.contains("line break"),
        "{error}"
    );
    assert!(!e.to_string().contains("ghp_abc"), "{e}");
    assert_eq!(receiver.count(), 0);
}

/// Every route of the router, with the ids of real items put in.
fn concrete(path: &str, ids: &[(&str, &str)]) -> String {
    ids.iter()
        .fold(path.to_string(), |p, (name, value)| p.replace(name, value))
}

/// The part of a Slack webhook URL that is the credential.
const SLACK_PATH_SECRET: &str = "slack-url-secret-9c2e71";

#[tokio::test]
async fn no_secret_value_or_api_key_shows_in_any_answer_record_trail_log_or_file() {
    // GIVEN a team with a key of every role, secrets of unique values, and a receiver that
    // echoes what it gets, failing the first time
    let server = Server::start(options());
    let receiver = Receiver::start_echo().await;
    receiver.script(&[(503, "")]);
    let operator = server.api();
    operator.create_team("acme").await;
    let mut keys = vec![automations_tests::server::OPERATOR_KEY.to_string()];
    let (_, admin_key) = operator.grant_key("acme", "alice", "admin").await;
    let admin = operator.with_key(&admin_key);
    keys.push(admin_key.clone());
    let mut role_keys = Vec::new();
    for role in ["member", "ingest", "agent"] {
        let (id, key) = admin.grant_key("acme", role, role).await;
        keys.push(key.clone());
        role_keys.push((id, key));
    }
    let unique = [
        ("LEAK_TOKEN", "tok-8f3a2c91-unique"),
        ("LEAK_SIGNING", "whsec_bGVhay1zaWduaW5nLXVuaXF1ZS0wMDAx"),
        ("LEAK_PAYLOAD", "payload-secret-5e1d-unique"),
    ];
    for (name, value) in unique {
        admin.put_secret("acme", name, value).await;
    }

    // WHEN the team's work is done: an integration that sends the token and signs, its
    // test, an automation whose payload has a secret, an event (sent with the ingest key),
    // a failed attempt, its retry, a manual retry
    let hook = admin
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "echo", "url": receiver.url,
                   "access_token_secret": "LEAK_TOKEN", "signing_secret": "LEAK_SIGNING"}),
        )
        .await;
    let automation = admin
        .automation(
            "acme",
            json!({"name": "leaky", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
                   "action": {"type": "webhook", "integration": hook,
                              "payload": {"s": "${LEAK_PAYLOAD}", "v": "${artifact_version}"}}}),
        )
        .await;
    // (and a Slack integration, to another echoing receiver, whose URL is a secret)
    let slack = Receiver::start_echo().await;
    let slack_url = format!("{}/T0LEAK/B0LEAK/{SLACK_PATH_SECRET}", slack.url);
    admin.put_secret("acme", "LEAK_SLACK_URL", &slack_url).await;
    let slack_hook = admin
        .webhook(
            "acme",
            json!({"type": "slack", "name": "echo-slack", "webhook_url_secret": "LEAK_SLACK_URL"}),
        )
        .await;
    let notify = admin
        .automation(
            "acme",
            json!({"name": "leaky-notice", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
                   "action": {"type": "notification", "integration": slack_hook,
                              "title": "linked ${artifact_version}", "message": "by ${event_author}"}}),
        )
        .await;
    let ingest = operator.with_key(&role_keys[1].1);
    ingest
        .events(
            "acme",
            json!({"id": "leak-1", "event_type": "LINK_ARTIFACT", "project": "p",
                   "artifact": {"collection": "c", "version": "v1"}}),
        )
        .await;
    let list = admin
        .wait_executions("acme", &automation, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FINISHED")
        })
        .await;
    let execution = list[0]["id"].as_str().unwrap().to_string();
    let notices = admin
        .wait_executions("acme", &notify, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FINISHED")
        })
        .await;
    let notice = notices[0]["id"].as_str().unwrap().to_string();
    assert_eq!(slack.count(), 1, "the notification went out");
    // The previews and the Slack integration's test, which build the same requests.
    let mut extra_answers = Vec::new();
    for automation in [&automation, &notify] {
        let body = json!({"automation_id": automation, "event": {"event_type": "LINK_ARTIFACT",
            "project": "p", "artifact": {"collection": "c", "version": "v2"}}});
        let answer = raw(
            &admin,
            "POST",
            "/v1/teams/acme/automations/preview",
            Some(body),
        )
        .await;
        assert!(answer.contains("\"would_fire\":true"), "{answer}");
        extra_answers.push((format!("the preview of {automation}"), answer.into_bytes()));
    }
    let tested = raw(
        &admin,
        "POST",
        &format!("/v1/teams/acme/integrations/{slack_hook}/test"),
        None,
    )
    .await;
    assert!(tested.contains("\"ok\":true"), "{tested}");
    extra_answers.push(("the Slack test".into(), tested.into_bytes()));
    assert_eq!(
        list[0]["attempts"].as_array().unwrap().len(),
        2,
        "a failure, then its retry"
    );
    admin
        .expect(
            202,
            "POST",
            &format!("/v1/teams/acme/executions/{execution}/retry"),
            None,
        )
        .await;
    admin
        .wait_executions("acme", &automation, WAIT, |l| {
            l.first().is_some_and(|e| e["status"] == "FINISHED")
        })
        .await;

    // AND every route is called by every key, with the ids of real items; the deletes and
    // revokes last
    let ids = [("{team}", "acme"), ("{name}", "LEAK_TOKEN"), ("{id}", "")];
    let mut answers: Vec<(String, Vec<u8>)> = Vec::new();
    let mut table = shared::http::routes();
    table.sort_by_key(|r| r.method == reqwest::Method::DELETE);
    for route in &table {
        let id = if route.path.contains("/automations/") {
            automation.as_str()
        } else if route.path.contains("/integrations/") {
            hook.as_str()
        } else if route.path.contains("/executions/") {
            execution.as_str()
        } else {
            role_keys[2].0.as_str() // the agent's key, revoked by the admin's DELETE
        };
        let mut ids = ids;
        ids[2].1 = id;
        let path = concrete(route.path, &ids);
        for key in &keys {
            let caller = operator.with_key(key);
            let (status, body) = caller.call_raw(route.method.as_str(), &path, None).await;
            answers.push((
                format!("{} {path} ({status})", route.method),
                body.into_bytes(),
            ));
        }
    }

    // THEN the receiver got the secrets (so the echoes held them in every encoding)
    let deliveries = receiver.deliveries();
    assert!(deliveries.len() >= 4, "{} deliveries", deliveries.len());
    assert_eq!(deliveries[0].json()["s"], unique[2].1);

    // AND no answer, execution record, audit entry, log line or file holds any of them,
    // nor any API key, in any encoding
    let record = raw(
        &admin,
        "GET",
        &format!("/v1/teams/acme/executions/{execution}"),
        None,
    )
    .await;
    let trail = raw(&admin, "GET", "/v1/teams/acme/audit?limit=200", None).await;
    assert!(
        trail.contains("execution.retry") && trail.contains("api_key.revoke"),
        "{trail}"
    );
    let notice_record = raw(
        &admin,
        "GET",
        &format!("/v1/teams/acme/executions/{notice}"),
        None,
    )
    .await;
    let mut surfaces = answers;
    surfaces.extend(extra_answers);
    surfaces.push(("the execution".into(), record.into_bytes()));
    surfaces.push((
        "the notification's execution".into(),
        notice_record.into_bytes(),
    ));
    surfaces.push(("the audit trail".into(), trail.into_bytes()));
    surfaces.extend(stored_bytes(&server));
    let mut needles: Vec<(String, String)> = unique
        .iter()
        .map(|(name, value)| (format!("secret {name}"), value.to_string()))
        .collect();
    needles.push(("secret LEAK_SLACK_URL".into(), slack_url.clone()));
    needles.push((
        "the path of LEAK_SLACK_URL".into(),
        SLACK_PATH_SECRET.into(),
    ));
    needles.extend(
        keys.iter()
            .enumerate()
            .map(|(i, key)| (format!("API key {i}"), key.clone())),
    );
    // (the HTTP client's libraries, which log every connection's host and address at
    // debug, log nothing here: a Slack URL's host is part of the secret)
    // (without the caps of shared::config::QUIET_LOG_DIRECTIVES, hyper_util's lines show here)
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    for quiet in [
        "hyper_util",
        "reqwest::connect",
        "starting new connection",
        "connecting to",
    ] {
        assert!(!log.contains(quiet), "the log has {quiet:?}");
    }
    for (what, value) in &needles {
        for form in encodings(value.as_bytes()) {
            for (surface, bytes) in &surfaces {
                assert!(
                    !contains(bytes, form.as_bytes()),
                    "{what} shows in {surface} as {form:?}"
                );
            }
        }
    }
}
