#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! End to end: `automations agent` runs the jobs that events enqueue, through the real
//! binary on both sides; a killed agent's job goes to the next agent after its lease; a
//! stopped agent finishes its job and takes no other; an unreachable server is retried.

use std::time::Duration;

use automations_tests::{Agent, Api, Server, ServerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(40);

fn alias_event(id: &str) -> Value {
    json!({"events": [{"id": id, "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
           "artifact": {"collection": "resnet", "version": "v3", "alias": "production"}}]})
}

/// Team acme with queue gpu, an automation enqueuing `eval-resnet` on it for every alias
/// (`lease_seconds` as given), and an agent key; returns the automation and the key.
async fn queue_with_agent_key(api: &Api, lease_seconds: u64) -> (String, String) {
    api.create_team("acme").await;
    api.expect(
        201,
        "POST",
        "/v1/teams/acme/queues",
        Some(json!({"name": "gpu"})),
    )
    .await;
    let automation = api
        .automation(
            "acme",
            json!({"name": "evaluate", "scope": {"type": "registry", "name": "model"},
                   "event": {"type": "ADD_ARTIFACT_ALIAS"},
                   "action": {"type": "queue_job", "queue": "gpu", "job": "eval-resnet",
                              "overrides": {"model": "${artifact_version_string}"},
                              "lease_seconds": lease_seconds}}),
        )
        .await;
    let (_, key) = api.grant_key("acme", "gpu-box", "agent").await;
    (automation, key)
}

async fn ended(api: &Api, automation: &str, event: &str) -> Value {
    let list = api
        .wait_executions("acme", automation, WAIT, |l| {
            l.iter()
                .any(|e| e["event"]["id"] == event && e["status"] != "PENDING")
        })
        .await;
    list.into_iter()
        .find(|e| e["event"]["id"] == event && e["status"] != "PENDING")
        .unwrap_or_else(|| panic!("the execution of {event} did not end"))
}

async fn job_of(api: &Api, execution: &Value) -> Value {
    let id = execution["result"]["job_id"].as_str().unwrap();
    api.expect(200, "GET", &format!("/v1/teams/acme/jobs/{id}"), None)
        .await
}

#[tokio::test]
async fn an_agent_runs_the_job_an_event_enqueued_and_its_execution_ends_with_the_exit_code() {
    // GIVEN an agent whose command prints what it was given
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (automation, key) = queue_with_agent_key(&api, 600).await;
    let script = r#"read -r job; echo "stdin:$job" | cut -c1-7
echo "job=$AUTOMATIONS_JOB_ID execution=$AUTOMATIONS_EXECUTION_ID"
grep -o eval-resnet "$AUTOMATIONS_JOB_FILE"
echo "to stderr" >&2
echo "key=${AUTOMATIONS_KEY:-none}""#;
    let mut agent = Agent::start(&server.base, &key, "gpu", &[], &["sh", "-c", script]);

    // WHEN an alias event comes
    api.events("acme", alias_event("e1")).await;

    // THEN the execution ends FINISHED with exit code 0 and the command's output
    let execution = ended(&api, &automation, "e1").await;
    assert_eq!(
        execution["status"],
        "FINISHED",
        "{execution}\n{}",
        agent.log()
    );
    let result = &execution["result"];
    assert_eq!(result["exit_code"], 0);
    let job = job_of(&api, &execution).await;
    let output = result["output"].as_str().unwrap();
    assert!(output.contains("stdin:{"), "the job on stdin: {output}");
    assert!(
        output.contains(&format!(
            "job={} execution={}",
            job["id"].as_str().unwrap(),
            execution["id"].as_str().unwrap()
        )),
        "{output}"
    );
    assert!(output.contains("eval-resnet"), "the job file: {output}");
    assert!(output.contains("to stderr"), "{output}");
    assert!(
        output.contains("key=none"),
        "the agent's key is not the job's: {output}"
    );
    assert_eq!(job["status"], "FINISHED");
    assert_eq!(job["attempt"], 1);
    assert_eq!(
        job["overrides"],
        json!({"model": "acme/model/resnet:production"})
    );
    // AND the agent says what it did, and stops on SIGTERM with 0
    assert!(
        agent.log().contains("FINISHED (exit code 0)"),
        "{}",
        agent.log()
    );
    agent.signal_term();
    let status = agent.wait_exit(Duration::from_secs(10)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        agent.log()
    );
}

#[tokio::test]
async fn a_killed_agent_s_job_goes_to_the_next_agent_after_its_lease_and_ends_once() {
    // GIVEN jobs with a 10 s lease, and an agent whose command hangs
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (automation, key) = queue_with_agent_key(&api, 10).await;
    let mut first = Agent::start(
        &server.base,
        &key,
        "gpu",
        &["--name", "box-1"],
        &["sh", "-c", "echo hanging; exec sleep 60"],
    );
    api.events("acme", alias_event("e1")).await;
    assert!(
        first.wait_for_log("hanging", WAIT).await,
        "the first agent ran the job: {}",
        first.log()
    );

    // WHEN that agent is killed mid-job, and another one is started
    first.kill();
    let _second = Agent::start(
        &server.base,
        &key,
        "gpu",
        &["--name", "box-2", "--poll-interval", "1"],
        &[
            "sh",
            "-c",
            "echo attempt $(grep -o '\"attempt\":[0-9]*' \"$AUTOMATIONS_JOB_FILE\")",
        ],
    );

    // THEN once the lease ran out the second agent gets attempt 2, and the execution ends
    // once, FINISHED
    let execution = ended(&api, &automation, "e1").await;
    assert_eq!(execution["status"], "FINISHED", "{execution}");
    assert!(
        execution["result"]["output"]
            .as_str()
            .unwrap()
            .contains("attempt \"attempt\":2"),
        "{execution}"
    );
    let job = job_of(&api, &execution).await;
    assert_eq!(
        (job["attempt"].clone(), job["agent"].clone()),
        (json!(2), json!("box-2"))
    );
    let executions = api.executions("acme", &automation).await;
    assert_eq!(executions.len(), 1, "one execution");
    let outcomes: Vec<&str> = executions[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["queued", "finished"], "ended once");
}

#[tokio::test]
async fn an_agent_that_lost_its_lease_stops_its_command_and_reports_nothing() {
    // GIVEN an agent running a job with a 10 s lease, frozen (SIGSTOP) past its lease while
    // another agent takes the job
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (automation, key) = queue_with_agent_key(&api, 10).await;
    let frozen = Agent::start(
        &server.base,
        &key,
        "gpu",
        &["--name", "box-1"],
        &["sh", "-c", "echo first; sleep 60 & wait"],
    );
    api.events("acme", alias_event("e1")).await;
    assert!(frozen.wait_for_log("first", WAIT).await, "{}", frozen.log());
    frozen.signal("STOP");
    let _other = Agent::start(
        &server.base,
        &key,
        "gpu",
        &["--name", "box-2", "--poll-interval", "1"],
        &["sh", "-c", "echo second"],
    );
    let execution = ended(&api, &automation, "e1").await;
    assert_eq!(execution["status"], "FINISHED");
    assert!(
        execution["result"]["output"]
            .as_str()
            .unwrap()
            .contains("second")
    );

    // WHEN the first agent wakes up
    frozen.signal("CONT");

    // THEN its next heartbeat learns the lease is lost: it stops its command (and what the
    // command started) and reports nothing; the execution stays as the second agent left it
    assert!(
        frozen.wait_for_log("the lease was lost", WAIT).await,
        "{}",
        frozen.log()
    );
    let after = api.executions("acme", &automation).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["result"], execution["result"]);
    let job = job_of(&api, &execution).await;
    assert_eq!(
        (job["attempt"].clone(), job["agent"].clone()),
        (json!(2), json!("box-2"))
    );
}

#[tokio::test]
async fn a_stopped_agent_finishes_its_job_heartbeating_takes_no_other_and_exits_0() {
    // GIVEN a 10 s lease, an agent whose job runs 12 s, and a second agent that would take
    // the job if the first one stopped heartbeating
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let (automation, key) = queue_with_agent_key(&api, 10).await;
    let mut busy = Agent::start(
        &server.base,
        &key,
        "gpu",
        &["--name", "box-a"],
        &["sh", "-c", "echo working; sleep 12; echo done"],
    );
    api.events("acme", alias_event("e1")).await;
    assert!(busy.wait_for_log("working", WAIT).await, "{}", busy.log());

    // WHEN it gets SIGTERM mid-job, and a second job comes
    busy.signal_term();
    let idle = Agent::start(
        &server.base,
        &key,
        "gpu",
        &["--name", "box-b"],
        &["sh", "-c", "echo box-b ran it"],
    );
    api.events("acme", alias_event("e2")).await;

    // THEN the first agent finishes its job, reports it, and exits 0
    let status = busy.wait_exit(WAIT).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}: {}",
        busy.log()
    );
    assert!(
        busy.log().contains("waiting for 1 running job"),
        "{}",
        busy.log()
    );
    let first = ended(&api, &automation, "e1").await;
    assert_eq!(first["status"], "FINISHED");
    assert!(first["result"]["output"].as_str().unwrap().contains("done"));
    let job = job_of(&api, &first).await;
    assert_eq!(
        (job["attempt"].clone(), job["agent"].clone()),
        (json!(1), json!("box-a")),
        "its heartbeats kept the lease past 10 s"
    );
    // AND the job that came after the signal went to the other agent
    let second = ended(&api, &automation, "e2").await;
    assert_eq!(
        job_of(&api, &second).await["agent"],
        "box-b",
        "{}",
        idle.log()
    );
}

#[tokio::test]
async fn an_agent_retries_an_unreachable_server_and_stops_on_a_refused_key() {
    // GIVEN no server on a port
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut agent = Agent::start(
        &format!("http://127.0.0.1:{port}"),
        "atm_whatever",
        "gpu",
        &[],
        &["true"],
    );
    // THEN it says so and keeps trying, until told to stop
    assert!(
        agent.wait_for_log("trying again in 2 s", WAIT).await,
        "{}",
        agent.log()
    );
    assert!(agent.log().contains("cannot reach"), "{}", agent.log());
    agent.signal_term();
    let status = agent.wait_exit(Duration::from_secs(10)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");

    // AND a key the server refuses stops it with exit code 1, saying why
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    queue_with_agent_key(&api, 600).await;
    let (_, ingest) = api.grant_key("acme", "trainer", "ingest").await;
    let mut refused = Agent::start(&server.base, &ingest, "gpu", &[], &["true"]);
    let status = refused.wait_exit(WAIT).await;
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", refused.log());
    assert!(refused.log().contains("403"), "{}", refused.log());
    let mut unknown = Agent::start(&server.base, &ingest, "nope", &[], &["true"]);
    let status = unknown.wait_exit(WAIT).await;
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", unknown.log());
}
