#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Automations as code, end to end: the real `automations` binary as the client of a real
//! `automations serve`: apply (plan, re-apply, edit, rename, prune, dry run, invalid
//! files), export round trips, events send, executions, integrations and secrets.

use std::path::Path;
use std::time::Duration;

use automations_tests::server::{OPERATOR_KEY, binary};
use automations_tests::{Receiver, Server, ServerOptions};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// What a run of the client printed, and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "exit {}: {}{}",
            self.code, self.stdout, self.stderr
        );
        &self.stdout
    }
}

/// Runs `automations <args>` against `server` as the operator in team acme, with `stdin`.
async fn cli(server: &Server, args: &[&str], stdin: Option<&str>) -> Run {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(binary())
        .args(args)
        .env("AUTOMATIONS_URL", &server.base)
        .env("AUTOMATIONS_KEY", OPERATOR_KEY)
        .env("AUTOMATIONS_TEAM", "acme")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .await
        .unwrap();
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn team(server: &Server) {
    server.api().create_team("acme").await;
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

const INTEGRATIONS: &str = "
queues:
  - name: gpu
integrations:
  - name: ci
    type: webhook
    url: http://127.0.0.1:9/hook
";

const AUTOMATIONS: &str = r#"
automations:
  - name: deploy
    description: deploy what becomes production
    scope: {type: registry, name: model}
    event:
      type: ADD_ARTIFACT_ALIAS
      filter: {alias: {$regex: "^prod"}}
    action:
      type: webhook
      integration: ci
      payload: {event_type: DEPLOY, client_payload: {version: "${artifact_version_string}"}}
  - name: eval
    scope: {type: project, name: detector}
    event: {type: LINK_ARTIFACT}
    action: {type: queue_job, queue: gpu, job: eval-resnet}
"#;

async fn automations(server: &Server) -> Vec<Value> {
    let listed = server
        .api()
        .expect(200, "GET", "/v1/teams/acme/automations", None)
        .await;
    let mut list = listed["automations"].as_array().unwrap().clone();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    list
}

#[tokio::test]
async fn apply_plans_creates_then_finds_nothing_to_do_then_updates_renames_and_prunes() {
    // GIVEN a team, and a directory with a file of a queue and an integration and a file
    // of two automations that name them
    let server = Server::start(ServerOptions::default());
    team(&server).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "integrations.yaml", INTEGRATIONS);
    write(dir.path(), "automations.yml", AUTOMATIONS);
    let path = dir.path().to_str().unwrap();

    // WHEN it is applied as a dry run
    let run = cli(&server, &["apply", "-f", path, "--dry-run"], None).await;
    // THEN the plan creates all four, dependencies first, each with its file, and nothing
    // is made
    let plan = run.ok();
    let lines: Vec<&str> = plan.lines().collect();
    assert!(lines[0].starts_with("+ create queue gpu"), "{plan}");
    assert!(lines[1].starts_with("+ create integration ci"), "{plan}");
    assert!(lines[1].ends_with("integrations.yaml)"), "{plan}");
    assert!(lines[2].starts_with("+ create automation deploy"), "{plan}");
    assert!(lines[3].starts_with("+ create automation eval"), "{plan}");
    assert!(plan.contains("0 unchanged"), "{plan}");
    assert!(
        plan.contains("Dry run: 4 changes planned, none made."),
        "{plan}"
    );
    assert!(automations(&server).await.is_empty());

    // WHEN it is applied
    let plan = cli(&server, &["apply", "-f", path], None).await;
    assert!(plan.ok().contains("Applied 4 changes."), "{}", plan.stdout);
    // THEN the team has both automations, deploy delivering through ci by its id
    let listed = automations(&server).await;
    assert_eq!(listed.len(), 2);
    let integrations = server
        .api()
        .expect(200, "GET", "/v1/teams/acme/integrations", None)
        .await;
    assert_eq!(
        listed[0]["action"]["integration"],
        integrations["integrations"][0]["id"]
    );
    assert_eq!(listed[0]["description"], "deploy what becomes production");

    // WHEN it is applied again
    let again = cli(&server, &["apply", "-f", path], None).await;
    // THEN nothing changes, and it says so
    assert!(again.ok().contains("4 unchanged"), "{}", again.stdout);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);

    // WHEN the filter is edited and deploy disabled
    let edited = AUTOMATIONS
        .replace("^prod", "^production$")
        .replace("    description:", "    enabled: false\n    description:");
    write(dir.path(), "automations.yml", &edited);
    let update = cli(&server, &["apply", "-f", path], None).await;
    // THEN the plan updates deploy, naming each changed field with its old and new value
    let update = update.ok();
    assert!(update.contains("~ update automation deploy"), "{update}");
    assert!(update.contains("    enabled: true → false"), "{update}");
    assert!(
        update.contains(r#"    event.filter: {"alias":{"$regex":"^prod"}} → {"alias":{"$regex":"^production$"}}"#),
        "{update}"
    );
    assert!(update.contains("3 unchanged"), "{update}");
    assert_eq!(automations(&server).await[0]["enabled"], false);

    // WHEN eval is renamed in its file
    write(
        dir.path(),
        "automations.yml",
        &edited.replace("name: eval", "name: evaluate"),
    );
    let rename = cli(&server, &["apply", "-f", path], None).await;
    // THEN without --prune the new name is created and the old one kept, and the plan says so
    let rename = rename.ok();
    assert!(rename.contains("+ create automation evaluate"), "{rename}");
    assert!(
        rename.contains("not in the files, kept (--prune deletes them): automation eval"),
        "{rename}"
    );
    assert_eq!(automations(&server).await.len(), 3);

    // WHEN it is pruned as a dry run, then pruned
    let dry = cli(
        &server,
        &["apply", "-f", path, "--prune", "--dry-run"],
        None,
    )
    .await;
    assert!(
        dry.ok().contains("- delete automation eval"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        automations(&server).await.len(),
        3,
        "a dry run deletes nothing"
    );
    let pruned = cli(&server, &["apply", "-f", path, "--prune"], None).await;
    assert!(
        pruned.ok().contains("- delete automation eval"),
        "{}",
        pruned.stdout
    );
    // THEN only the files' automations are left
    let names: Vec<Value> = automations(&server)
        .await
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("deploy"), json!("evaluate")]);

    // AND --output json prints the server's plan
    let json_plan = cli(&server, &["apply", "-f", path, "--output", "json"], None).await;
    let plan: Value = serde_json::from_str(json_plan.ok()).unwrap();
    assert_eq!(plan["changes"], json!([]));
    assert_eq!(plan["unchanged"], 4);
}

#[tokio::test]
async fn an_invalid_file_changes_nothing_and_the_error_names_file_object_and_field() {
    // GIVEN a team, a valid file, and a file whose first automation has a bad regex
    let server = Server::start(ServerOptions::default());
    team(&server).await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a-integrations.yaml", INTEGRATIONS);
    let bad = AUTOMATIONS.replace("^prod", "((");
    write(dir.path(), "b-automations.yaml", &bad);

    // WHEN the directory is applied
    let run = cli(
        &server,
        &["apply", "-f", dir.path().to_str().unwrap()],
        None,
    )
    .await;
    // THEN the server refused (exit 1), naming the file, the object and the field
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("b-automations.yaml"))
        .unwrap_or_else(|| panic!("no line names the file: {}", run.stderr));
    assert!(line.contains("automations[0]"), "{line}");
    assert!(line.contains("automation \"deploy\""), "{line}");
    assert!(line.contains("event.filter.alias.$regex"), "{line}");
    // AND nothing was applied, not even the valid file's objects
    assert!(automations(&server).await.is_empty());
    let integrations = server
        .api()
        .expect(200, "GET", "/v1/teams/acme/integrations", None)
        .await;
    assert_eq!(integrations["integrations"], json!([]));

    // WHEN a file is not YAML, or names an integration that is nowhere
    write(dir.path(), "b-automations.yaml", "automations: [ {name: x");
    let broken = cli(
        &server,
        &["apply", "-f", dir.path().to_str().unwrap()],
        None,
    )
    .await;
    // THEN that is a usage error naming the file
    assert_eq!(broken.code, 2, "{}", broken.stderr);
    assert!(
        broken.stderr.contains("b-automations.yaml"),
        "{}",
        broken.stderr
    );
    write(
        dir.path(),
        "b-automations.yaml",
        &AUTOMATIONS.replace("integration: ci", "integration: nowhere"),
    );
    let dangling = cli(
        &server,
        &["apply", "-f", dir.path().to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(dangling.code, 1);
    assert!(
        dangling.stderr.contains(
            "action.integration: integration nowhere is neither in the document nor in team acme"
        ),
        "{}",
        dangling.stderr
    );

    // AND two objects of one name, across files, are refused too
    write(dir.path(), "b-automations.yaml", AUTOMATIONS);
    write(dir.path(), "c-again.yaml", "queues:\n  - name: gpu\n");
    let twice = cli(
        &server,
        &["apply", "-f", dir.path().to_str().unwrap()],
        None,
    )
    .await;
    assert_eq!(twice.code, 1);
    assert!(
        twice.stderr.contains("c-again.yaml: queues[0] queue \"gpu\": name: another queue of the document has this name"),
        "{}",
        twice.stderr
    );
}

#[tokio::test]
async fn an_export_applies_back_with_no_changes() {
    // GIVEN a team with a secret, a signed integration, a queue and automations of every
    // action kind, made through the API
    let server = Server::start(ServerOptions::default());
    team(&server).await;
    let api = server.api();
    api.put_secret("acme", "SIGNING", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "setup.yaml", INTEGRATIONS);
    write(dir.path(), "more.yaml", AUTOMATIONS);
    cli(
        &server,
        &["apply", "-f", dir.path().to_str().unwrap()],
        None,
    )
    .await
    .ok();
    let hook = api
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "signed", "url": "http://127.0.0.1:9/signed",
                   "signing_secret": "SIGNING"}),
        )
        .await;
    api.automation(
        "acme",
        json!({"name": "on-failure", "scope": {"type": "project", "name": "train"},
               "event": {"type": "RUN_STATE", "states": ["FAILED"]},
               "action": {"type": "webhook", "integration": hook, "payload": {"run": "${run_name}"}}}),
    )
    .await;

    // WHEN the team is exported to a file
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("team.yaml");
    cli(&server, &["export", "-o", file.to_str().unwrap()], None)
        .await
        .ok();
    let text = std::fs::read_to_string(&file).unwrap();
    // THEN it names integrations and secrets by name, never an id or a value
    assert!(text.contains("integration: signed"), "{text}");
    assert!(text.contains("signing_secret: SIGNING"), "{text}");
    assert!(!text.contains(&hook), "{text}");
    assert!(!text.contains("whsec_"), "{text}");

    // AND applying it, even with --prune, changes nothing
    let run = cli(
        &server,
        &["apply", "-f", file.to_str().unwrap(), "--prune"],
        None,
    )
    .await;
    let run = run.ok();
    assert!(run.contains("No changes"), "{run}");
    assert!(run.contains("6 unchanged"), "{run}");
}

#[tokio::test]
async fn events_send_takes_five_thousand_ndjson_events_in_batches() {
    // GIVEN a team and 5,000 events as NDJSON, each with its own id
    let server = Server::start(ServerOptions::default());
    team(&server).await;
    let lines: Vec<String> = (0..5000)
        .map(|i| {
            json!({"id": format!("evt-{i}"), "event_type": "LINK_ARTIFACT", "project": "detector",
                   "artifact": {"collection": "resnet", "version": format!("v{i}")}})
            .to_string()
        })
        .collect();
    let ndjson = lines.join("\n") + "\n";

    // WHEN they are sent on stdin
    let run = cli(&server, &["events", "send"], Some(&ndjson)).await;
    // THEN all are accepted
    assert!(
        run.ok().contains("5000 accepted, 0 duplicate, 0 refused"),
        "{}",
        run.stdout
    );

    // WHEN the same file is sent again, as a file, with one bad event among them
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    let with_bad = format!(
        "{ndjson}{}\n",
        json!({"event_type": "LINK_ARTIFACT", "project": "detector"})
    );
    std::fs::write(&file, with_bad).unwrap();
    let again = cli(
        &server,
        &["events", "send", file.to_str().unwrap(), "--output", "json"],
        None,
    )
    .await;
    // THEN each is a duplicate, and the bad one is refused with its reason and position
    assert_eq!(again.code, 1, "{}", again.stderr);
    let summary: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(summary["accepted"], 0);
    assert_eq!(summary["duplicates"], 5000);
    assert_eq!(summary["refused"][0]["position"], 5001);
    let reason = summary["refused"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("artifact"), "{reason}");

    // AND input that is not JSON is a usage error naming the line
    let broken = cli(&server, &["events", "send"], Some("{\"a\": 1}\n{oops\n")).await;
    assert_eq!(broken.code, 2);
    assert!(broken.stderr.contains("line 2"), "{}", broken.stderr);
}

#[tokio::test]
async fn executions_integrations_and_secrets_from_the_command_line() {
    // GIVEN a team whose automation delivers to a real receiver
    let receiver = Receiver::start().await;
    let server = Server::start(ServerOptions::default());
    team(&server).await;
    // WHEN a secret is set from stdin
    let set = cli(
        &server,
        &["secrets", "set", "SIGNING"],
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"),
    )
    .await;
    assert!(set.ok().contains("secret SIGNING set"));
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "team.yaml",
        &format!(
            "{}\n{AUTOMATIONS}",
            INTEGRATIONS.replace("http://127.0.0.1:9/hook", &receiver.url)
                + "    signing_secret: SIGNING"
        ),
    );
    cli(
        &server,
        &["apply", "-f", dir.path().to_str().unwrap()],
        None,
    )
    .await
    .ok();

    // AND the integration is tested
    let test = cli(&server, &["integrations", "test", "ci"], None).await;
    assert!(test.ok().contains("ci: ok, status 200"), "{}", test.stdout);
    receiver.wait_for(1, WAIT).await;

    // AND an event fires deploy
    let event = json!({"event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
        "artifact": {"collection": "resnet", "version": "v4", "alias": "production"}});
    cli(&server, &["events", "send"], Some(&event.to_string()))
        .await
        .ok();
    receiver.wait_for(2, WAIT).await;

    // THEN its execution is listed, with the automation's name, and shown
    let mut listed = Value::Null;
    for _ in 0..100 {
        let run = cli(
            &server,
            &[
                "executions",
                "list",
                "--automation",
                "deploy",
                "--output",
                "json",
            ],
            None,
        )
        .await;
        listed = serde_json::from_str(run.ok()).unwrap();
        if listed["executions"][0]["status"] == "FINISHED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(listed["executions"][0]["status"], "FINISHED", "{listed}");
    let id = listed["executions"][0]["id"].as_str().unwrap().to_string();
    let table = cli(
        &server,
        &["executions", "list", "--status", "finished"],
        None,
    )
    .await;
    let table = table.ok();
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id) && table.contains("deploy"), "{table}");
    let shown = cli(&server, &["executions", "show", &id], None).await;
    let shown = shown.ok();
    assert!(
        shown.contains("FINISHED") && shown.contains("ADD_ARTIFACT_ALIAS"),
        "{shown}"
    );

    // AND it is retried: the receiver gets it once more
    let retry = cli(&server, &["executions", "retry", &id], None).await;
    assert!(retry.ok().contains("is sent again"), "{}", retry.stdout);
    receiver.wait_for(3, WAIT).await;

    // AND what does not exist is refused (exit 1), and a bad flag is a usage error (exit 2)
    assert_eq!(
        cli(&server, &["executions", "show", "nope"], None)
            .await
            .code,
        1
    );
    assert_eq!(
        cli(&server, &["integrations", "test", "nope"], None)
            .await
            .code,
        1
    );
    assert_eq!(
        cli(&server, &["executions", "list", "--status", "DONE"], None)
            .await
            .code,
        2
    );
    assert_eq!(cli(&server, &["apply"], None).await.code, 2);
}

#[tokio::test]
async fn every_command_has_help_with_an_example_and_the_shells_get_completions() {
    let server = Server::start(ServerOptions::default());
    for command in [
        vec!["serve"],
        vec!["agent"],
        vec!["apply"],
        vec!["export"],
        vec![],
        vec!["events"],
        vec!["executions"],
        vec!["integrations"],
        vec!["secrets"],
        vec!["events", "send"],
        vec!["executions", "list"],
        vec!["executions", "show"],
        vec!["executions", "retry"],
        vec!["integrations", "test"],
        vec!["secrets", "set"],
        vec!["completions"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let run = cli(&server, &args, None).await;
        let help = run.ok();
        assert!(
            help.contains("Example"),
            "{command:?} --help has no example:\n{help}"
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let run = cli(&server, &["completions", shell], None).await;
        assert!(run.ok().contains("apply"), "{shell}");
    }
}

#[tokio::test]
async fn the_apply_route_refuses_hostile_documents_and_stores_nothing() {
    let server = Server::start(ServerOptions::default());
    team(&server).await;
    let api = server.api();
    let mut nested = json!("deep");
    for _ in 0..40 {
        nested = json!({ "n": nested });
    }
    let cases = [
        ("/v1/teams/acme/apply", json!({"widgets": []}), "widgets"),
        (
            "/v1/teams/acme/apply",
            json!({"automations": "all"}),
            "automations",
        ),
        (
            "/v1/teams/acme/apply",
            json!({"automations": [1]}),
            "automations[0]",
        ),
        (
            "/v1/teams/acme/apply",
            json!({"queues": [{"name": "a b"}]}),
            "queues[0].name",
        ),
        (
            "/v1/teams/acme/apply",
            json!({"automations": [{"name": "x", "scope": {"type": "team"},
                "event": {"type": "LINK_ARTIFACT"},
                "action": {"type": "webhook", "integration": "ci", "payload": nested}}]}),
            "automations[0].action.payload",
        ),
        ("/v1/teams/acme/apply?dry_run=maybe", json!({}), "query"),
    ];
    for (path, body, field) in cases {
        let (status, answer) = api.call("POST", path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let named = answer["error"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{body}: {answer}");
    }
    assert!(automations(&server).await.is_empty());
    let queues = api.expect(200, "GET", "/v1/teams/acme/queues", None).await;
    assert_eq!(queues["queues"], json!([]));
}
