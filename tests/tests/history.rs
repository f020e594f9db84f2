#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! What happened in a team, over HTTP against the real binary: its executions across
//! automations (`GET /v1/teams/{team}/executions`) and its recent events with why each
//! automation did or did not fire (`GET /v1/teams/{team}/events`).

use std::time::Duration;

use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn alias_event(id: &str, alias: &str) -> Value {
    json!({"id": id, "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model", "author": "alice",
           "artifact": {"collection": "resnet", "version": "v4", "alias": alias}})
}

/// Polls `path` until `done` holds for its JSON answer (up to [`WAIT`]).
async fn wait_for(api: &Api, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = api.expect(200, "GET", path, None).await;
        if done(&answer) || tokio::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(answer: &Value, key: &str) -> Vec<String> {
    answer[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

/// A team with a receiver behind two automations on aliases (one for `prod*`, one for
/// `staging`), a disabled one, and one for another collection.
async fn setup(api: &Api, receiver: &Receiver) -> (String, String, String) {
    api.create_team("acme").await;
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "ci", "url": receiver.url}),
        )
        .await;
    let automation = |name: &str, collection: &str, filter: Value, enabled: bool| {
        json!({"name": name, "enabled": enabled,
               "scope": {"type": "registry", "name": "model", "collection": collection},
               "event": {"type": "ADD_ARTIFACT_ALIAS", "filter": filter},
               "action": {"type": "webhook", "integration": hook, "payload": {"v": "${alias}"}}})
    };
    let deploy = api
        .automation(
            "acme",
            automation(
                "deploy",
                "resnet",
                json!({"alias": {"$regex": "^prod"}}),
                true,
            ),
        )
        .await;
    let stage = api
        .automation(
            "acme",
            automation("stage", "resnet", json!({"alias": "staging"}), true),
        )
        .await;
    let paused = api
        .automation("acme", automation("paused", "resnet", json!({}), false))
        .await;
    api.automation("acme", automation("other", "bert", json!({}), true))
        .await;
    (deploy, stage, paused)
}

#[tokio::test]
async fn recent_events_say_why_each_automation_did_or_did_not_fire() {
    // GIVEN a team whose automations each see an alias event differently
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    let (deploy, stage, paused) = setup(&api, &receiver).await;

    // WHEN an event that matches nothing is sent, then one that fires "deploy"
    api.events("acme", alias_event("miss", "candidate")).await;
    api.events("acme", alias_event("hit", "production")).await;

    // THEN both are listed, newest first, once evaluated
    let listed = wait_for(&api, "/v1/teams/acme/events", |a| {
        a["events"].as_array().is_some_and(|e| e.len() == 2)
    })
    .await;
    assert_eq!(ids(&listed, "events"), ["hit", "miss"], "{listed}");
    // AND the event that matched nothing names each automation of its scope and type, and why
    let miss = &listed["events"][1];
    assert_eq!(miss["event"]["artifact"]["alias"], "candidate");
    assert_eq!(miss["event"]["registry"], "model");
    assert_eq!(miss["evaluation"]["fired"], json!([]));
    let reasons: Vec<(String, String, Value)> = miss["evaluation"]["not_fired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["automation_id"].as_str().unwrap().to_string(),
                n["reason"].as_str().unwrap().to_string(),
                n["field"].clone(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            (deploy.clone(), "filter".into(), json!("alias")),
            (paused.clone(), "disabled".into(), Value::Null),
            (stage.clone(), "filter".into(), json!("alias")),
        ],
        "{miss}"
    );
    // (the automation of another collection is not of the event's scope: it is not listed)
    // AND the one that fired names its execution
    let hit = &listed["events"][0];
    let fired = &hit["evaluation"]["fired"];
    assert_eq!(fired[0]["automation_id"], json!(deploy), "{hit}");
    let execution = fired[0]["execution_id"].as_str().unwrap();
    api.expect(
        200,
        "GET",
        &format!("/v1/teams/acme/executions/{execution}"),
        None,
    )
    .await;
    // AND the events page by one
    let first = api
        .expect(200, "GET", "/v1/teams/acme/events?limit=1", None)
        .await;
    assert_eq!(ids(&first, "events"), ["hit"]);
    assert_eq!(first["next_before"], "hit");
    let second = api
        .expect(200, "GET", "/v1/teams/acme/events?limit=1&before=hit", None)
        .await;
    assert_eq!(ids(&second, "events"), ["miss"]);
}

#[tokio::test]
async fn the_team_executions_list_newest_first_by_status_and_page() {
    // GIVEN a receiver that fails the first delivery for good and takes the others
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    receiver.script(&[(400, "no")]);
    let api = server.api();
    let (deploy, stage, _) = setup(&api, &receiver).await;

    // WHEN four events fire the two automations in turn
    for (i, alias) in ["production", "staging", "prod-eu", "staging"]
        .iter()
        .enumerate()
    {
        api.events("acme", alias_event(&format!("e{i}"), alias))
            .await;
        receiver.wait_for(i + 1, WAIT).await;
    }

    // THEN the team's executions list both automations' newest first
    let all = wait_for(&api, "/v1/teams/acme/executions", |a| {
        a["executions"]
            .as_array()
            .is_some_and(|e| e.len() == 4 && e.iter().all(|x| x["status"] != "PENDING"))
    })
    .await;
    let automations: Vec<&str> = all["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["automation_id"].as_str().unwrap())
        .collect();
    assert_eq!(automations, [&stage, &deploy, &stage, &deploy], "{all}");
    let events: Vec<&str> = all["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["e3", "e2", "e1", "e0"]);
    // AND a status filter keeps only those of that status
    let failed = api
        .expect(200, "GET", "/v1/teams/acme/executions?status=FAILED", None)
        .await;
    let failed_events: Vec<&str> = failed["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed_events, ["e0"], "{failed}");
    let finished = api
        .expect(
            200,
            "GET",
            "/v1/teams/acme/executions?status=FINISHED&limit=2",
            None,
        )
        .await;
    assert_eq!(finished["executions"].as_array().unwrap().len(), 2);
    let cursor = finished["next_before"].as_str().unwrap();
    let rest = api
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/executions?status=FINISHED&limit=2&before={cursor}"),
            None,
        )
        .await;
    let rest_events: Vec<&str> = rest["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest_events, ["e1"], "{rest}");
    assert_eq!(rest["next_before"], Value::Null);
}

#[tokio::test]
async fn bad_listing_queries_name_the_problem_and_roles_are_checked() {
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    api.create_team("acme").await;
    api.create_team("other").await;
    for (path, field) in [
        ("/v1/teams/acme/executions?status=DONE", "status"),
        ("/v1/teams/acme/executions?status=pending", "status"),
        ("/v1/teams/acme/executions?limit=0", "limit"),
        ("/v1/teams/acme/executions?limit=201", "limit"),
        ("/v1/teams/acme/executions?limit=-1", "query"),
        ("/v1/teams/acme/executions?limit=x", "query"),
        ("/v1/teams/acme/events?limit=1000000", "limit"),
        ("/v1/teams/acme/events?limit=51", "limit"),
        ("/v1/teams/acme/events?limit=%00", "query"),
    ] {
        let (status, answer) = api.call("GET", path, None).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{path}: {answer}");
    }
    // A cursor that names nothing is an empty page, whatever it holds.
    let long = "x".repeat(5000);
    for before in ["nope", "%3Cscript%3E", "..%2F..%2Fetc", long.as_str()] {
        for path in ["executions", "events"] {
            let answer = api
                .expect(
                    200,
                    "GET",
                    &format!("/v1/teams/acme/{path}?before={before}"),
                    None,
                )
                .await;
            assert_eq!(answer[path], json!([]), "{path} {before}");
        }
    }
    // Members read both; an ingest key reads neither; another team's key is refused.
    let (_, member) = api.grant_key("acme", "bob", "member").await;
    let (_, ingest) = api.grant_key("acme", "ci", "ingest").await;
    let (_, stranger) = api.grant_key("other", "eve", "admin").await;
    for path in ["/v1/teams/acme/executions", "/v1/teams/acme/events"] {
        api.with_key(&member).expect(200, "GET", path, None).await;
        api.with_key(&ingest).expect(403, "GET", path, None).await;
        api.with_key(&stranger).expect(403, "GET", path, None).await;
        api.with_key("atm_wrong")
            .expect(401, "GET", path, None)
            .await;
    }
    api.expect(404, "GET", "/v1/teams/none/events", None).await;
}

#[tokio::test]
async fn run_metric_events_say_when_a_cooldown_or_the_rule_held_an_automation_back() {
    // GIVEN a NaN-loss automation (24 h cooldown) and a loss threshold one
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    api.create_team("acme").await;
    let automation = |name: &str, event: Value| {
        json!({"name": name, "scope": {"type": "project", "name": "train"}, "event": event,
               "action": {"type": "no_op"}})
    };
    let nan = api
        .automation(
            "acme",
            automation(
                "nan-loss",
                json!({"type": "RUN_METRIC_NAN", "metric": "loss"}),
            ),
        )
        .await;
    let high = api
        .automation(
            "acme",
            automation(
                "high-loss",
                json!({"type": "RUN_METRIC_THRESHOLD", "metric": "loss", "op": "$gt", "threshold": 5}),
            ),
        )
        .await;

    // WHEN a run logs NaN twice, one step after the other
    for step in [1, 2] {
        api.events(
            "acme",
            json!({"id": format!("p{step}"), "event_type": "RUN_METRICS", "project": "train",
                   "run": {"id": "r1"}, "step": step, "metrics": {"loss": "NaN"}}),
        )
        .await;
        wait_for(&api, "/v1/teams/acme/events", |a| {
            a["events"].as_array().is_some_and(|e| e.len() == step)
        })
        .await;
    }

    // THEN the first fired the NaN automation, the second was held back by its cooldown, and
    // the threshold's rule fired on neither
    let listed = api.expect(200, "GET", "/v1/teams/acme/events", None).await;
    let verdicts = |id: &str| -> (Vec<String>, Vec<(String, String)>) {
        let record = listed["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {listed}"));
        let fired = record["evaluation"]["fired"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["automation_id"].as_str().unwrap().to_string())
            .collect();
        let not_fired = record["evaluation"]["not_fired"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let id = n["automation_id"].as_str().unwrap().to_string();
                (id, n["reason"].as_str().unwrap().to_string())
            })
            .collect();
        (fired, not_fired)
    };
    assert_eq!(
        verdicts("p1"),
        (vec![nan.clone()], vec![(high.clone(), "metric".into())])
    );
    let (fired, mut not_fired) = verdicts("p2");
    not_fired.sort();
    let mut expected = vec![(nan, "cooldown".to_string()), (high, "metric".into())];
    expected.sort();
    assert_eq!((fired, not_fired), (vec![], expected), "{listed}");
}
