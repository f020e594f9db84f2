#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End to end through the real binary: queues, the `queue_job` action, and an agent's
//! claim, heartbeat and completion over HTTP; leases that run out; bad input.

use std::time::Duration;

use automations_tests::{Api, Server, ServerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn alias_event(id: &str, version: &str) -> Value {
    json!({"id": id, "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
           "artifact": {"collection": "resnet", "version": version, "alias": "production"}})
}

/// Team acme with queue `gpu`, an automation enqueuing an evaluation on it when a model
/// gets an alias, and an agent key; returns the automation and the agent's client.
async fn evaluating(api: &Api, action: Value) -> (String, Api) {
    api.create_team("acme").await;
    api.expect(
        201,
        "POST",
        "/v1/teams/acme/queues",
        Some(json!({"name": "gpu"})),
    )
    .await;
    let mut full = json!({"type": "queue_job", "queue": "gpu", "job": "eval-resnet",
        "overrides": {"model": "${artifact_version_string}", "alias": "${alias}", "epochs": 3}});
    for (k, v) in action.as_object().unwrap() {
        full[k] = v.clone();
    }
    let automation = api
        .automation(
            "acme",
            json!({"name": "evaluate-production", "scope": {"type": "registry", "name": "model"},
                   "event": {"type": "ADD_ARTIFACT_ALIAS"}, "action": full}),
        )
        .await;
    let (_, key) = api.grant_key("acme", "gpu-box", "agent").await;
    (automation, api.with_key(&key))
}

/// Claims on queue gpu until a job comes (or `WAIT` passes).
async fn claim(agent: &Api, name: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, body) = agent
            .call(
                "POST",
                "/v1/teams/acme/queues/gpu/claim",
                Some(json!({"agent": name, "wait_seconds": 2})),
            )
            .await;
        match status {
            200 => return body["job"].clone(),
            204 if tokio::time::Instant::now() < deadline => continue,
            _ => panic!("claim answered {status}: {body}"),
        }
    }
}

async fn execution(api: &Api, automation: &str, done: &[&str]) -> Value {
    let list = api
        .wait_executions("acme", automation, WAIT, |l| {
            l.first()
                .is_some_and(|e| done.contains(&e["status"].as_str().unwrap()))
        })
        .await;
    list.into_iter().next().expect("an execution")
}

#[tokio::test]
async fn an_alias_event_enqueues_one_job_that_an_agent_claims_and_completes() {
    // GIVEN a queue_job automation and an agent key
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (automation, agent) = evaluating(&api, json!({})).await;

    // AND a preview shows the job it would enqueue, and enqueues nothing
    let preview = api
        .expect(
            200,
            "POST",
            "/v1/teams/acme/automations/preview",
            Some(json!({"automation_id": automation, "event": alias_event("p1", "v2")})),
        )
        .await;
    assert_eq!(preview["would_fire"], true, "{preview}");
    assert_eq!(preview["action"]["queue"], "gpu");
    assert_eq!(preview["job"]["job"], "eval-resnet");
    assert_eq!(
        preview["job"]["overrides"]["model"],
        "acme/model/resnet:production"
    );
    assert_eq!(preview["job"]["max_attempts"], 3);
    let listed = api
        .expect(200, "GET", "/v1/teams/acme/queues/gpu/jobs", None)
        .await;
    assert_eq!(listed["jobs"], json!([]), "a preview enqueues nothing");

    // WHEN the alias event comes, twice (a producer's retry under a new id would make a
    // second job; the same id is one event)
    api.events("acme", json!({"events": [alias_event("e1", "v3")]}))
        .await;
    api.events("acme", json!({"events": [alias_event("e1", "v3")]}))
        .await;

    // THEN an agent claims exactly one job, with the overrides rendered from the event
    let job = claim(&agent, "gpu-box").await;
    assert_eq!(job["queue"], "gpu");
    assert_eq!(job["job"], "eval-resnet");
    assert_eq!(
        job["overrides"],
        json!({"model": "acme/model/resnet:production", "alias": "production", "epochs": 3})
    );
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["event"]["alias"], "production");
    assert_eq!(job["event"]["event_id"], "e1");
    let id = job["id"].as_str().unwrap().to_string();
    let (status, _) = agent
        .call(
            "POST",
            "/v1/teams/acme/queues/gpu/claim",
            Some(json!({"agent": "gpu-box"})),
        )
        .await;
    assert_eq!(status, 204, "one event, one job");
    // AND the execution waits for the job, showing which
    let pending = execution(&api, &automation, &["PENDING"]).await;
    assert_eq!(pending["action"]["type"], "queue_job");
    assert_eq!(pending["action"]["queue"], "gpu");
    let running = api
        .expect(
            200,
            "GET",
            "/v1/teams/acme/queues/gpu/jobs?status=RUNNING",
            None,
        )
        .await;
    assert_eq!(running["jobs"][0]["id"], json!(id));
    assert_eq!(running["jobs"][0]["agent"], "gpu-box");

    // WHEN the agent heartbeats and completes it
    let beat = agent
        .expect(
            200,
            "POST",
            &format!("/v1/teams/acme/jobs/{id}/heartbeat"),
            Some(json!({"attempt": 1, "agent": "gpu-box"})),
        )
        .await;
    assert_eq!(beat["attempt"], 1);
    assert!(beat["lease_expires_at"].is_string());
    let done = json!({"status": "FINISHED", "exit_code": 0, "output": "auc=0.97\n",
                      "attempt": 1, "agent": "gpu-box"});
    let ended = agent
        .expect(
            200,
            "POST",
            &format!("/v1/teams/acme/jobs/{id}/complete"),
            Some(done.clone()),
        )
        .await;
    assert_eq!(ended["status"], "FINISHED");

    // THEN the execution ends FINISHED with the job's exit code and output
    let finished = execution(&api, &automation, &["FINISHED", "FAILED"]).await;
    assert_eq!(finished["status"], "FINISHED");
    assert_eq!(finished["action"]["job_id"], json!(id));
    assert_eq!(
        finished["result"],
        json!({"status_code": null, "body": null, "job_id": id, "status": "FINISHED",
               "exit_code": 0, "output": "auc=0.97\n"})
    );
    let outcomes: Vec<&str> = finished["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["queued", "finished"]);
    // AND a repeated completion answers the same; another one is refused
    agent
        .expect(
            200,
            "POST",
            &format!("/v1/teams/acme/jobs/{id}/complete"),
            Some(done),
        )
        .await;
    let (status, body) = agent
        .call(
            "POST",
            &format!("/v1/teams/acme/jobs/{id}/complete"),
            Some(json!({"status": "FAILED", "exit_code": 1, "attempt": 1})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("ended"),
        "{body}"
    );
    let listed = api
        .expect(200, "GET", "/v1/teams/acme/queues/gpu/jobs", None)
        .await;
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(listed["jobs"][0]["exit_code"], 0);

    // AND a failing job fails its execution, with the exit code
    api.events("acme", json!({"events": [alias_event("e2", "v4")]}))
        .await;
    let job = claim(&agent, "gpu-box").await;
    let path = format!(
        "/v1/teams/acme/jobs/{}/complete",
        job["id"].as_str().unwrap()
    );
    agent
        .expect(
            200,
            "POST",
            &path,
            Some(json!({"status": "FAILED", "exit_code": 2, "output": "Traceback…"})),
        )
        .await;
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.iter()
                .any(|e| e["event"]["id"] == "e2" && e["status"] == "FAILED")
        })
        .await;
    let failed = list.iter().find(|e| e["event"]["id"] == "e2").unwrap();
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(failed["result"]["exit_code"], 2);
    assert_eq!(failed["result"]["error"], "the job failed with exit code 2");

    // AND a manual retry enqueues a new job for the execution
    let retried = failed["id"].as_str().unwrap();
    api.expect(
        202,
        "POST",
        &format!("/v1/teams/acme/executions/{retried}/retry"),
        None,
    )
    .await;
    let again = claim(&agent, "gpu-box").await;
    assert_ne!(again["id"], job["id"], "a new job for the new round");
    assert_eq!(again["execution_id"], json!(retried));
}

#[tokio::test]
async fn a_waiting_claim_takes_the_job_that_arrives_meanwhile() {
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (_, agent) = evaluating(&api, json!({})).await;
    let waiting = tokio::spawn({
        let agent = agent.clone();
        async move {
            let started = tokio::time::Instant::now();
            let (status, body) = agent
                .call(
                    "POST",
                    "/v1/teams/acme/queues/gpu/claim",
                    Some(json!({"agent": "box", "wait_seconds": 15})),
                )
                .await;
            (status, body, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.events("acme", json!({"events": [alias_event("late", "v9")]}))
        .await;
    let (status, body, took) = waiting.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["job"]["event"]["event_id"], "late");
    assert!(
        took < Duration::from_secs(15),
        "answered when the job came: {took:?}"
    );
}

#[tokio::test]
async fn a_lease_that_runs_out_goes_to_the_next_agent_until_the_attempts_are_spent() {
    // GIVEN jobs of two attempts with 10 s leases
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (automation, agent) =
        evaluating(&api, json!({"max_attempts": 2, "lease_seconds": 10})).await;
    api.events("acme", json!({"events": [alias_event("e1", "v3")]}))
        .await;
    let first = claim(&agent, "box-1").await;
    let id = first["id"].as_str().unwrap().to_string();

    // WHEN box-1 goes quiet past its lease, box-2 gets attempt 2
    let second = claim(&agent, "box-2").await;
    assert_eq!(second["id"], json!(id));
    assert_eq!(second["attempt"], 2);
    // AND box-1's late heartbeat and completion are refused and change nothing
    for (route, body) in [
        ("heartbeat", json!({"attempt": 1, "agent": "box-1"})),
        (
            "complete",
            json!({"status": "FINISHED", "exit_code": 0, "attempt": 1, "agent": "box-1"}),
        ),
    ] {
        let (status, answer) = agent
            .call(
                "POST",
                &format!("/v1/teams/acme/jobs/{id}/{route}"),
                Some(body),
            )
            .await;
        assert_eq!(status, 409, "{route}: {answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("attempt 2"),
            "{answer}"
        );
    }
    let job = api
        .expect(200, "GET", &format!("/v1/teams/acme/jobs/{id}"), None)
        .await;
    assert_eq!(
        (job["status"].clone(), job["agent"].clone()),
        (json!("RUNNING"), json!("box-2"))
    );

    // WHEN box-2 goes quiet too, and no agent claims any more, a look at the queue fails
    // the job: no attempt is left (a claim would too, as the conformance suite shows)
    tokio::time::sleep(Duration::from_secs(11)).await;
    let failed_jobs = api
        .expect(
            200,
            "GET",
            "/v1/teams/acme/queues/gpu/jobs?status=FAILED",
            None,
        )
        .await;
    assert_eq!(failed_jobs["jobs"][0]["id"], json!(id), "{failed_jobs}");
    let job = api
        .expect(200, "GET", &format!("/v1/teams/acme/jobs/{id}"), None)
        .await;
    assert_eq!(job["status"], "FAILED");
    let failed = execution(&api, &automation, &["FAILED"]).await;
    assert!(
        failed["result"]["error"]
            .as_str()
            .unwrap()
            .starts_with("lease expired: attempt 2 of 2"),
        "{failed}"
    );
    // AND the queue, empty now, can be deleted; an execution after that fails, saying why
    api.expect(204, "DELETE", "/v1/teams/acme/queues/gpu", None)
        .await;
    api.events("acme", json!({"events": [alias_event("e2", "v4")]}))
        .await;
    let list = api
        .wait_executions("acme", &automation, WAIT, |l| {
            l.iter()
                .any(|e| e["event"]["id"] == "e2" && e["status"] == "FAILED")
        })
        .await;
    let orphan = list.iter().find(|e| e["event"]["id"] == "e2").unwrap();
    assert_eq!(
        orphan["result"]["error"], "queue gpu no longer exists in team acme",
        "{orphan}"
    );
}

#[tokio::test]
async fn queues_are_managed_by_admins_and_bad_job_requests_are_refused_with_the_problem() {
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (automation, agent) = evaluating(&api, json!({})).await;
    let (_, ingest) = api.grant_key("acme", "trainer", "ingest").await;
    let ingest = api.with_key(&ingest);
    let (_, member) = api.grant_key("acme", "bob", "member").await;
    let member = api.with_key(&member);

    // Queues: unique names, valid names, listed, audited
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/queues",
            Some(json!({"name": "gpu"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    for bad in [
        json!({"name": "a b"}),
        json!({"name": ""}),
        json!({"nme": "x"}),
        json!([]),
    ] {
        let (status, body) = api.call("POST", "/v1/teams/acme/queues", Some(bad)).await;
        assert_eq!(status, 400, "{body}");
    }
    let listed = member
        .expect(200, "GET", "/v1/teams/acme/queues", None)
        .await;
    assert_eq!(listed["queues"][0]["name"], "gpu");
    let (status, _) = member
        .call(
            "POST",
            "/v1/teams/acme/queues",
            Some(json!({"name": "cpu"})),
        )
        .await;
    assert_eq!(status, 403, "members do not create queues");
    let audit = api.expect(200, "GET", "/v1/teams/acme/audit", None).await;
    assert!(audit.to_string().contains("queue.create"));

    // queue_job actions are checked when saved, each answer naming the field
    let base = json!({"name": "x", "scope": {"type": "registry", "name": "model"},
                      "event": {"type": "ADD_ARTIFACT_ALIAS"}});
    for (action, field) in [
        (
            json!({"type": "queue_job", "queue": "nope", "job": "eval"}),
            "action.queue",
        ),
        (json!({"type": "queue_job", "job": "eval"}), "action.queue"),
        (json!({"type": "queue_job", "queue": "gpu"}), "action.job"),
        (
            json!({"type": "queue_job", "queue": "gpu", "job": "eval", "overrides": {"t": "${TOKEN}"}}),
            "action.overrides",
        ),
        (
            json!({"type": "queue_job", "queue": "gpu", "job": "eval", "overrides": ["a"]}),
            "action.overrides",
        ),
        (
            json!({"type": "queue_job", "queue": "gpu", "job": "eval", "overrides": {"a": "${nope}"}}),
            "action.overrides.a",
        ),
        (
            json!({"type": "queue_job", "queue": "gpu", "job": "eval", "max_attempts": 0}),
            "action.max_attempts",
        ),
        (
            json!({"type": "queue_job", "queue": "gpu", "job": "eval", "lease_seconds": 1}),
            "action.lease_seconds",
        ),
        (
            json!({"type": "queue_job", "queue": "gpu", "job": "eval", "payload": {}}),
            "action.payload",
        ),
        (
            json!({"type": "webhook", "integration": "i", "queue": "gpu"}),
            "action.queue",
        ),
    ] {
        let mut spec = base.clone();
        spec["action"] = action.clone();
        let (status, body) = api
            .call("POST", "/v1/teams/acme/automations", Some(spec))
            .await;
        assert_eq!(status, 400, "{action}: {body}");
        assert_eq!(body["error"]["field"], field, "{action}: {body}");
    }

    // Claims: who may, on what, with what
    let claim_path = "/v1/teams/acme/queues/gpu/claim";
    let (status, _) = ingest
        .call("POST", claim_path, Some(json!({"agent": "x"})))
        .await;
    assert_eq!(status, 403, "an ingest key cannot claim");
    let (status, _) = member
        .call("POST", claim_path, Some(json!({"agent": "x"})))
        .await;
    assert_eq!(status, 403, "a member key cannot claim");
    let (status, body) = agent
        .call(
            "POST",
            "/v1/teams/acme/queues/nope/claim",
            Some(json!({"agent": "x"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("queue nope")
    );
    for (bad, field) in [
        (json!({"agent": "x", "wait_seconds": 21}), "wait_seconds"),
        (json!({"agent": "x", "wait_seconds": -1}), "wait_seconds"),
        (json!({"agent": ""}), "agent"),
        (json!({"agent": "a\u{0}b"}), "agent"),
        (json!({"agent": "x".repeat(129)}), "agent"),
        (json!({}), "agent"),
        (json!({"agent": "x", "extra": 1}), ""),
    ] {
        let (status, body) = agent.call("POST", claim_path, Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let named = body["error"]["field"].as_str();
        assert!(named.is_some_and(|f| f.starts_with(field)), "{bad}: {body}");
    }
    let (status, body) = agent.call_raw("POST", claim_path, None).await;
    assert_eq!(status, 400, "{body}");

    // Heartbeats and completions: unknown jobs, bad statuses, oversized output
    let (status, body) = agent
        .call("POST", "/v1/teams/acme/jobs/nope/heartbeat", None)
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = agent
        .call(
            "POST",
            "/v1/teams/acme/jobs/nope/complete",
            Some(json!({"status": "FINISHED"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    api.events("acme", json!({"events": [alias_event("e1", "v3")]}))
        .await;
    let job = claim(&agent, "box").await;
    let complete = format!(
        "/v1/teams/acme/jobs/{}/complete",
        job["id"].as_str().unwrap()
    );
    for (bad, field) in [
        (json!({"status": "RUNNING"}), "status"),
        (json!({"status": "finished"}), "status"),
        (json!({"status": 1}), "status"),
        (json!({}), "status"),
        (json!({"status": "FINISHED", "exit_code": "0"}), "exit_code"),
        (
            json!({"status": "FINISHED", "output": "x".repeat(64 * 1024 + 1)}),
            "output",
        ),
        (json!({"status": "FINISHED", "agent": "\n"}), "agent"),
    ] {
        let (status, body) = agent.call("POST", &complete, Some(bad.clone())).await;
        assert_eq!(status, 400, "{}: {body}", bad["status"]);
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (status, body) = ingest
        .call("POST", &complete, Some(json!({"status": "FINISHED"})))
        .await;
    assert_eq!(status, 403, "{body}");
    // Nothing of it was stored: the job still runs, its execution still waits
    let stored = api
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/jobs/{}", job["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(stored["status"], "RUNNING");
    assert_eq!(stored["output"], Value::Null);
    assert_eq!(
        execution(&api, &automation, &["PENDING"]).await["status"],
        "PENDING"
    );
    // A queue holding a job is not deleted; listings check their status filter
    let (status, body) = api.call("DELETE", "/v1/teams/acme/queues/gpu", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 job is"),
        "{body}"
    );
    let (status, body) = api
        .call("GET", "/v1/teams/acme/queues/gpu/jobs?status=DONE", None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].clone()),
        (400, json!("status"))
    );
    let (status, _) = api
        .call("GET", "/v1/teams/acme/queues/nope/jobs", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = api.call("DELETE", "/v1/teams/acme/queues/nope", None).await;
    assert_eq!(status, 404);
}
