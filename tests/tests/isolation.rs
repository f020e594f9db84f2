#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! One bad record fails only its own work: an automation, integration or execution that
//! cannot be read back is skipped where it would be listed or matched (and said so), the
//! other events of a batch, other teams' among them, are delivered. Messages that ran out of
//! receives can be seen, with why, and sent again.

use std::time::Duration;

use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};
use shared::adapters::sqlite::{Database, SqliteTamper};
use shared::conformance::{Tamper, unreadable_json};
use shared::domain::event::EventInput;

const WAIT: Duration = Duration::from_secs(20);

/// The running server's database, opened beside it (SQLite's WAL takes a second writer).
fn database(server: &Server) -> Database {
    Database::open(&server.data_dir.join("automations.db")).unwrap()
}

fn link(id: &str) -> Value {
    json!({"id": id, "event_type": "LINK_ARTIFACT", "registry": "model",
           "artifact": {"collection": "resnet", "version": "v1"}})
}

async fn linking(api: &Api, team: &str, name: &str, hook: &str) -> String {
    api.automation(
        team,
        json!({"name": name, "scope": {"type": "registry", "name": "model"}, "event": {"type": "LINK_ARTIFACT"},
               "action": {"type": "webhook", "integration": hook, "payload": {"by": name}}}),
    )
    .await
}

async fn hook(api: &Api, team: &str, name: &str, receiver: &Receiver) -> String {
    api.webhook(
        team,
        json!({"type": "webhook", "name": name, "url": receiver.url}),
    )
    .await
}

#[tokio::test]
async fn an_unreadable_record_fails_alone_in_the_local_runtime() {
    // GIVEN two teams; in acme, a good and a damaged automation of one trigger partition
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    for team in ["acme", "beta"] {
        api.create_team(team).await;
    }
    let acme_hook = hook(&api, "acme", "hook", &receiver).await;
    let beta_hook = hook(&api, "beta", "hook", &receiver).await;
    let good = linking(&api, "acme", "good", &acme_hook).await;
    let bad = linking(&api, "acme", "bad", &acme_hook).await;
    let theirs = linking(&api, "beta", "theirs", &beta_hook).await;
    let spare = hook(&api, "acme", "spare", &receiver).await;
    let tamper = SqliteTamper(database(&server));
    let damaged = unreadable_json();
    tamper
        .overwrite_body("automation", "acme", &bad, &damaged)
        .await;
    tamper
        .overwrite_body("integration", "acme", &spare, &damaged)
        .await;

    // WHEN events of both teams arrive together
    api.events("acme", json!({"events": [link("a-1"), link("a-2")]}))
        .await;
    api.events("beta", link("b-1")).await;

    // THEN every readable automation fires: acme's good one on both events, beta's on its own
    let arrived = receiver.wait_for(3, WAIT).await;
    let mut by: Vec<String> = arrived
        .iter()
        .map(|d| d.json()["by"].as_str().unwrap().to_string())
        .collect();
    by.sort();
    assert_eq!(by, ["good", "good", "theirs"]);
    assert_eq!(api.executions("beta", &theirs).await.len(), 1);

    // AND listings skip the damaged items and name them; reading one fails, naming it
    assert_eq!(api.automation_names("acme").await, ["good"]);
    let listed = api
        .expect(200, "GET", "/v1/teams/acme/automations", None)
        .await;
    assert_eq!(listed["unreadable"][0]["id"], bad.as_str());
    let why = listed["unreadable"][0]["error"].as_str().unwrap();
    assert!(why.contains("line 1"), "the reader's own words: {why}");
    let listed = api
        .expect(200, "GET", "/v1/teams/acme/integrations", None)
        .await;
    assert_eq!(listed["integrations"].as_array().unwrap().len(), 1);
    assert_eq!(listed["unreadable"][0]["id"], spare.as_str());
    let (status, body) = api
        .call("GET", &format!("/v1/teams/acme/automations/{bad}"), None)
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "unreadable");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&bad),
        "{body}"
    );

    // AND a damaged execution is skipped in its listing, which still pages past it
    let runs = api
        .wait_executions("acme", &good, WAIT, |l| {
            l.len() == 2 && l.iter().all(|e| e["status"] == "FINISHED")
        })
        .await;
    let broken = runs[0]["id"].as_str().unwrap().to_string();
    tamper
        .overwrite_body("execution", "acme", &broken, &damaged)
        .await;
    let page = api
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/automations/{good}/executions?limit=1"),
            None,
        )
        .await;
    assert_eq!(page["executions"], json!([]));
    assert_eq!(page["unreadable"][0]["id"], broken.as_str());
    assert_eq!(page["next_before"], broken.as_str());
    let next = api
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/automations/{good}/executions?limit=1&before={broken}"),
            None,
        )
        .await;
    assert_eq!(next["executions"][0]["id"], runs[1]["id"]);
    let (status, _) = api
        .call("GET", &format!("/v1/teams/acme/executions/{broken}"), None)
        .await;
    assert_eq!(status, 500);
    // (and an action message for it, as a retry would queue, is set aside at once, saying why)
    let message = json!({"team": "acme", "execution_id": broken}).to_string();
    let id = enqueue(&tamper.0, "actions", &message, false).await;
    let letter = wait_for_dead_letter(&api, &id).await;
    assert_eq!(letter["queue"], "actions");
    let reason = letter["reason"].as_str().unwrap();
    assert!(
        reason.contains(&broken) && reason.contains("cannot read"),
        "{reason}"
    );

    // AND a damaged automation can still be deleted
    api.expect(
        204,
        "DELETE",
        &format!("/v1/teams/acme/automations/{bad}"),
        None,
    )
    .await;
    let listed = api
        .expect(200, "GET", "/v1/teams/acme/automations", None)
        .await;
    assert_eq!(listed["unreadable"], json!([]));
}

/// Waits until the dead letter `id` is listed, and returns it.
async fn wait_for_dead_letter(api: &Api, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = api.expect(200, "GET", "/v1/dead-letters", None).await;
        let found = listed["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == id)
            .cloned();
        match found {
            Some(letter) => return letter,
            None if tokio::time::Instant::now() > deadline => {
                panic!("no dead letter {id}: {listed}")
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Puts a message on a queue of the running server, around the API.
async fn enqueue(db: &Database, queue: &str, body: &str, dead: bool) -> String {
    let (queue, body) = (queue.to_string(), body.to_string());
    db.call(move |c| {
        // A dead letter as the queue leaves one: its receives spent, with the last error.
        let (receives, error, dead_at) = if dead {
            ("5", "'the store was unavailable'", "0")
        } else {
            ("0", "NULL", "NULL")
        };
        c.execute(
            &format!(
                "INSERT INTO queue_messages (queue, body, visible_at, sent_at, receive_count, last_error, dead_at)
                 VALUES (?1, ?2, 0, 0, {receives}, {error}, {dead_at})"
            ),
            [&queue, &body],
        )?;
        Ok(c.last_insert_rowid().to_string())
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn dead_letters_are_listed_with_why_and_redriven() {
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    api.create_team("acme").await;
    let acme_hook = hook(&api, "acme", "hook", &receiver).await;
    let automation = linking(&api, "acme", "good", &acme_hook).await;
    let db = database(&server);

    // GIVEN a message no version can read, put on the events queue
    let garbage = enqueue(&db, "events", "{not an event", false).await;
    // AND an event that ran out of receives while the store was down (as if dead-lettered)
    let input: EventInput = serde_json::from_value(link("late")).unwrap();
    let event = input
        .validate("acme", "late".into(), time::OffsetDateTime::now_utc())
        .unwrap();
    let late = enqueue(
        &db,
        "events-dlq",
        &serde_json::to_string(&event).unwrap(),
        true,
    )
    .await;

    // THEN the unreadable one is set aside at once, and both are listed with why
    wait_for_dead_letter(&api, &garbage).await;
    let listed = api.expect(200, "GET", "/v1/dead-letters", None).await;
    let letters = listed["dead_letters"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let find = |id: &str| letters.iter().find(|l| l["id"] == id).cloned().unwrap();
    let unreadable = find(&garbage);
    assert_eq!(unreadable["queue"], "events");
    assert_eq!(unreadable["body"], "{not an event");
    assert!(
        unreadable["reason"]
            .as_str()
            .unwrap()
            .contains("not an event this version can read"),
        "{unreadable}"
    );
    let waiting = find(&late);
    assert_eq!(waiting["body"]["id"], "late");
    assert!(
        waiting["reason"]
            .as_str()
            .unwrap()
            .contains("the store was unavailable")
    );
    let only_actions = api
        .expect(200, "GET", "/v1/dead-letters?queue=actions", None)
        .await;
    assert_eq!(only_actions["dead_letters"], json!([]));
    let (status, body) = api.call("GET", "/v1/dead-letters?queue=nope", None).await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("queue")),
        "{body}"
    );
    let (status, body) = api
        .call("POST", "/v1/dead-letters/redrive", Some(json!({"ids": []})))
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("ids")),
        "{body}"
    );

    // WHEN the waiting event is redriven by id
    let answer = api
        .expect(
            200,
            "POST",
            "/v1/dead-letters/redrive",
            Some(json!({"queue": "events", "ids": [late, "404"]})),
        )
        .await;
    assert_eq!(answer, json!({"redriven": [late], "not_found": ["404"]}));

    // THEN it is evaluated and delivered, and only the unreadable one is left
    let arrived = receiver.wait_for(1, WAIT).await;
    assert_eq!(arrived[0].json(), json!({"by": "good"}));
    let runs = api.executions("acme", &automation).await;
    assert_eq!(runs[0]["event"]["id"], "late");
    let listed = api.expect(200, "GET", "/v1/dead-letters", None).await;
    let ids: Vec<&str> = listed["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [garbage.as_str()]);
    // AND the dead-letter routes, like all but /healthz, need the key
    let (status, _) = Api::new(&server.base, "wrong")
        .call("GET", "/v1/dead-letters", None)
        .await;
    assert_eq!(status, 401);
}
