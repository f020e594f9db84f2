#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! Access, through the real binary over HTTP: every route of the router answers each kind of
//! caller as its role allows; team keys are granted, shown once, listed without the key and
//! revoked at once; teams cannot reach each other; events are rate-limited per key; and
//! every change is in the team's audit trail.

use std::collections::BTreeMap;
use std::time::Duration;

use automations_tests::server::OPERATOR_KEY;
use automations_tests::{Api, Receiver, Server, ServerOptions};
use serde_json::{Value, json};
use shared::domain::access::Access;
use shared::http::routes;

/// An id no item has: routes that take one answer as for a missing item.
const NO_ID: &str = "01jzzzzzzzzzzzzzzzzzzzzzzz";

/// The callers of the matrix, in order.
const CALLERS: [&str; 9] = [
    "no key",
    "malformed key",
    "revoked key",
    "other team's admin",
    "ingest",
    "agent",
    "member",
    "admin",
    "operator",
];

/// What a caller gets on a route that needs `access` (`None`: anyone may call it).
/// `Pass` means: what the operator gets, which is never 401 or 403.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Expect {
    Status(u16),
    Pass,
}

fn expected(caller: &str, access: Option<Access>) -> Expect {
    let Some(access) = access else {
        return Expect::Pass;
    };
    let allowed = match caller {
        "no key" | "malformed key" | "revoked key" => return Expect::Status(401),
        "other team's admin" => false,
        "agent" => access == Access::Work,
        "ingest" => access == Access::Send,
        "member" => matches!(access, Access::Read | Access::Send),
        "admin" => access != Access::Operator,
        "operator" => true,
        other => panic!("unknown caller {other}"),
    };
    if allowed {
        Expect::Pass
    } else {
        Expect::Status(403)
    }
}

fn concrete(path: &str, team: &str) -> String {
    path.replace("{team}", team)
        .replace("{id}", NO_ID)
        .replace("{name}", "NO_SUCH_SECRET")
        .replace("{queue}", "no-such-queue")
}

/// Sends `method path` with `key` (none for `None`), with no body.
async fn call(server: &Server, key: Option<&str>, method: &str, path: &str) -> (u16, String) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, format!("{}{path}", server.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The team `acme` with a key of every role (and a revoked one), and `beta` with an admin.
async fn keys(api: &Api) -> BTreeMap<&'static str, Option<String>> {
    api.create_team("acme").await;
    api.create_team("beta").await;
    let mut keys = BTreeMap::new();
    keys.insert("no key", None);
    keys.insert("malformed key", Some("atm_not-a-key".to_string()));
    let (revoked_id, revoked) = api.grant_key("acme", "gone", "admin").await;
    api.expect(
        204,
        "DELETE",
        &format!("/v1/teams/acme/api-keys/{revoked_id}"),
        None,
    )
    .await;
    keys.insert("revoked key", Some(revoked));
    keys.insert(
        "other team's admin",
        Some(api.grant_key("beta", "bea", "admin").await.1),
    );
    for role in ["ingest", "agent", "member", "admin"] {
        keys.insert(role, Some(api.grant_key("acme", role, role).await.1));
    }
    keys.insert("operator", Some(OPERATOR_KEY.to_string()));
    keys
}

#[tokio::test]
async fn every_route_answers_every_caller_as_its_role_allows() {
    // GIVEN a key of each kind
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let keys = keys(&api).await;
    let table = routes();
    assert!(table.len() >= 29, "the router has {} routes", table.len());

    // WHEN each caller calls each route of the router (with ids no item has, no body)
    let mut failures = Vec::new();
    for route in &table {
        let method = route.method.as_str();
        let path = concrete(route.path, "acme");
        let (operator_status, operator_body) =
            call(&server, keys["operator"].as_deref(), method, &path).await;
        // (the table is what the router serves: no entry falls through to "no such route")
        assert!(
            !operator_body.contains("no such route"),
            "{method} {path} is in the table but not served: {operator_body}"
        );
        for caller in CALLERS {
            let (status, body) = call(&server, keys[caller].as_deref(), method, &path).await;
            let ok = match expected(caller, route.access) {
                Expect::Status(want) => status == want,
                Expect::Pass => status == operator_status && status != 401 && status != 403,
            };
            if !ok {
                failures.push(format!(
                    "{caller} on {method} {}: {status} {body} (expected {:?}; the operator got {operator_status})",
                    route.path,
                    expected(caller, route.access)
                ));
            }
        }
    }

    // THEN every answer is as the role allows
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_key_learns_nothing_about_other_teams() {
    // GIVEN acme's admin, and teams beta (which exists) and ghost (which does not)
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let keys = keys(&api).await;
    let admin = keys["admin"].as_deref();
    // THEN on every team route, beta and ghost answer alike: 403, the same words
    for route in routes().iter().filter(|r| r.path.contains("{team}")) {
        let method = route.method.as_str();
        let beta = call(&server, admin, method, &concrete(route.path, "beta")).await;
        let ghost = call(&server, admin, method, &concrete(route.path, "ghost")).await;
        if route.access.is_some() {
            assert_eq!(beta.0, 403, "{method} {}: {}", route.path, beta.1);
        }
        // (a source's receive path takes no key: it finds no source in either team)
        assert_eq!(beta, ghost, "{method} {}", route.path);
    }
    // AND the operator, who may know, is told the team does not exist
    let (status, _) = call(
        &server,
        Some(OPERATOR_KEY),
        "GET",
        "/v1/teams/ghost/automations",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_team_admin_grants_lists_and_revokes_keys() {
    // GIVEN a team whose admin key the operator granted
    let server = Server::start(ServerOptions::default());
    let operator = server.api();
    operator.create_team("acme").await;
    let (admin_id, admin_key) = operator.grant_key("acme", "alice", "admin").await;
    let admin = operator.with_key(&admin_key);

    // WHEN the admin grants a key for a training job
    let granted = admin
        .expect(
            201,
            "POST",
            "/v1/teams/acme/api-keys",
            Some(json!({"user": "training-job", "role": "ingest"})),
        )
        .await;
    // THEN it is shown once: a long random string with the prefix
    let key = granted["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("atm_") && key.len() == 47, "{key}");
    assert_eq!(granted["user"], "training-job");
    assert_eq!(granted["role"], "ingest");
    assert_eq!(granted["created_by"], admin_id.as_str());
    let job_id = granted["id"].as_str().unwrap().to_string();

    // AND the listing shows both keys, neither key itself nor anything derived from it
    let (_, listed) = admin.call_raw("GET", "/v1/teams/acme/api-keys", None).await;
    assert!(
        !listed.contains(&key) && !listed.contains(&admin_key),
        "{listed}"
    );
    assert!(!listed.contains(&key[4..12]), "{listed}");
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let users: Vec<&str> = listed["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["alice", "training-job"]);
    for entry in listed["api_keys"].as_array().unwrap() {
        let fields: Vec<&String> = entry.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["created_at", "created_by", "id", "role", "user"]);
    }

    // AND the job sends events with it
    let job = operator.with_key(&key);
    job.events(
        "acme",
        json!({"event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v1"}}),
    )
    .await;

    // WHEN the admin revokes it THEN it fails at once, and a second revoke finds nothing
    admin
        .expect(
            204,
            "DELETE",
            &format!("/v1/teams/acme/api-keys/{job_id}"),
            None,
        )
        .await;
    let (status, body) = job
        .call(
            "POST",
            "/v1/teams/acme/events",
            Some(json!({"event_type": "LINK_ARTIFACT", "project": "p", "artifact": {"collection": "c", "version": "v2"}})),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let again = admin
        .expect(
            404,
            "DELETE",
            &format!("/v1/teams/acme/api-keys/{job_id}"),
            None,
        )
        .await;
    assert_eq!(again["error"]["field"], "id");
}

#[tokio::test]
async fn bad_key_requests_name_the_field_and_grant_nothing() {
    let server = Server::start(ServerOptions::default());
    let operator = server.api();
    operator.create_team("acme").await;
    operator.create_team("beta").await;
    let (beta_key_id, _) = operator.grant_key("beta", "bea", "member").await;
    let path = "/v1/teams/acme/api-keys";
    let deep = (0..40).fold(json!("x"), |inner, _| json!([inner]));
    for (body, status, field) in [
        (json!({"user": "alice", "role": "root"}), 400, "role"),
        (json!({"user": "alice", "role": "Admin"}), 400, "role"),
        (json!({"user": "", "role": "admin"}), 400, "user"),
        (json!({"user": "   ", "role": "admin"}), 400, "user"),
        (json!({"user": "a\u{0}b", "role": "admin"}), 400, "user"),
        (
            json!({"user": "u".repeat(129), "role": "admin"}),
            400,
            "user",
        ),
        (json!({"user": "alice"}), 400, ""),
        (
            json!({"user": "alice", "role": "admin", "key": "atm_mine"}),
            400,
            "",
        ),
        (json!({"user": ["alice"], "role": "admin"}), 400, "user"),
        (json!({"user": deep, "role": "admin"}), 400, "user"),
        (json!(["alice", "admin"]), 400, ""),
    ] {
        let (got, answer) = operator.call("POST", path, Some(body.clone())).await;
        assert_eq!(got, status, "{body}: {answer}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        }
    }
    // A key id of another team, or one that never was: 404 naming the id
    for id in [beta_key_id.as_str(), NO_ID] {
        let answer = operator
            .expect(404, "DELETE", &format!("{path}/{id}"), None)
            .await;
        assert_eq!(answer["error"]["field"], "id", "{answer}");
    }
    // Nothing was granted in acme, and beta's key is untouched
    let acme = operator.expect(200, "GET", path, None).await;
    assert_eq!(acme["api_keys"], json!([]));
    let beta = operator
        .expect(200, "GET", "/v1/teams/beta/api-keys", None)
        .await;
    assert_eq!(beta["api_keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_automation_cannot_use_another_teams_integration_or_secret() {
    // GIVEN beta's integration and secret
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let operator = server.api();
    for team in ["acme", "beta"] {
        operator.create_team(team).await;
    }
    operator.put_secret("beta", "BETA_TOKEN", "beta-only").await;
    let beta_hook = operator
        .webhook(
            "beta",
            json!({"type": "webhook", "name": "hook", "url": receiver.url, "access_token_secret": "BETA_TOKEN"}),
        )
        .await;
    let acme_admin = operator.with_key(&operator.grant_key("acme", "alice", "admin").await.1);

    // WHEN acme's admin names them THEN the automation or integration is refused, naming the field
    let automation = |integration: &str, payload: Value| {
        json!({"name": "steal", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
               "action": {"type": "webhook", "integration": integration, "payload": payload}})
    };
    let (status, body) = acme_admin
        .call(
            "POST",
            "/v1/teams/acme/automations",
            Some(automation(&beta_hook, json!({}))),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "action.integration");
    let acme_hook = acme_admin
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "hook", "url": receiver.url}),
        )
        .await;
    let (status, body) = acme_admin
        .call(
            "POST",
            "/v1/teams/acme/automations",
            Some(automation(&acme_hook, json!({"t": "${BETA_TOKEN}"}))),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "action.payload");
    let (status, body) = acme_admin
        .call(
            "POST",
            "/v1/teams/acme/integrations",
            Some(json!({"type": "webhook", "name": "h2", "url": receiver.url, "access_token_secret": "BETA_TOKEN"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "access_token_secret");
    // AND acme has no automation; beta's integration cannot even be read from acme
    assert!(acme_admin.automation_names("acme").await.is_empty());
    acme_admin
        .expect(
            404,
            "GET",
            &format!("/v1/teams/acme/integrations/{beta_hook}"),
            None,
        )
        .await;
}

#[tokio::test]
async fn events_over_a_keys_rate_get_429_and_nothing_of_them_is_accepted() {
    // GIVEN a limit of one request a second with a burst of two
    let server = Server::start(ServerOptions {
        extra_env: vec![
            ("AUTOMATIONS_INGEST_RATE".into(), "1".into()),
            ("AUTOMATIONS_INGEST_BURST".into(), "2".into()),
        ],
        ..ServerOptions::default()
    });
    let operator = server.api();
    operator.create_team("acme").await;
    let job = operator.with_key(&operator.grant_key("acme", "job", "ingest").await.1);
    let other = operator.with_key(&operator.grant_key("acme", "job-2", "ingest").await.1);
    let event = |id: &str| {
        json!({"id": id, "event_type": "LINK_ARTIFACT", "project": "p",
               "artifact": {"collection": "c", "version": "v1"}})
    };

    // WHEN the key sends requests as fast as it can (the burst, then more)
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut refused = None;
    for n in 0..10 {
        let batch = json!({"events": [event(&format!("e-{n}-a")), event(&format!("e-{n}-b"))]});
        let response = http
            .post(format!("{}/v1/teams/acme/events", server.base))
            .bearer_auth(&job.key)
            .json(&batch)
            .send()
            .await
            .unwrap();
        match response.status().as_u16() {
            202 => continue,
            429 => {
                refused = Some((n, response));
                break;
            }
            other => panic!("request {n}: {other}"),
        }
    }

    // THEN one past the burst gets 429 with Retry-After, saying nothing was accepted
    let (n, response) = refused.expect("no request was refused");
    assert!(n >= 2, "refused within the burst, at request {n}");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    // AND another key has its own bucket
    other.events("acme", event("e-5")).await;
    // AND after the wait, the refused events are new: none of them was accepted before
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (a, b) = (format!("e-{n}-a"), format!("e-{n}-b"));
    let report = job
        .events("acme", json!({"events": [event(&a), event(&b)]}))
        .await;
    assert_eq!(report["accepted"], json!([a, b]), "{report}");
    assert_eq!(report["duplicates"], json!([]), "{report}");
}

#[tokio::test]
async fn every_change_is_in_the_audit_trail_newest_first_for_admins_only() {
    // GIVEN a team run by its admin
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let operator = server.api();
    operator.create_team("acme").await;
    let (admin_id, admin_key) = operator.grant_key("acme", "alice", "admin").await;
    let admin = operator.with_key(&admin_key);
    let (member_id, member_key) = admin.grant_key("acme", "bob", "member").await;
    let member = operator.with_key(&member_key);

    // WHEN the admin does the team's work
    admin
        .put_secret("acme", "TOKEN", "audit-secret-value")
        .await;
    let hook = admin
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "ci", "url": receiver.url, "access_token_secret": "TOKEN"}),
        )
        .await;
    admin
        .expect(
            200,
            "POST",
            &format!("/v1/teams/acme/integrations/{hook}/test"),
            None,
        )
        .await;
    let automation = admin
        .automation(
            "acme",
            json!({"name": "deploy", "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
                   "action": {"type": "webhook", "integration": hook}}),
        )
        .await;
    admin
        .expect(
            200,
            "PATCH",
            &format!("/v1/teams/acme/automations/{automation}"),
            Some(json!({"enabled": false})),
        )
        .await;
    admin
        .expect(
            204,
            "DELETE",
            &format!("/v1/teams/acme/api-keys/{member_id}"),
            None,
        )
        .await;
    // (and a second integration changed and deleted, an automation deleted, a secret deleted)
    let spare = admin
        .webhook(
            "acme",
            json!({"type": "webhook", "name": "spare", "url": receiver.url}),
        )
        .await;
    admin
        .expect(
            200,
            "PUT",
            &format!("/v1/teams/acme/integrations/{spare}"),
            Some(json!({"type": "webhook", "name": "spare-2", "url": receiver.url})),
        )
        .await;
    admin
        .expect(
            204,
            "DELETE",
            &format!("/v1/teams/acme/automations/{automation}"),
            None,
        )
        .await;
    admin
        .expect(
            204,
            "DELETE",
            &format!("/v1/teams/acme/integrations/{spare}"),
            None,
        )
        .await;
    admin.put_secret("acme", "OLD", "old-secret-value").await;
    admin
        .expect(204, "DELETE", "/v1/teams/acme/secrets/OLD", None)
        .await;

    // THEN the trail has every change, newest first, with who did it
    let trail = admin.expect(200, "GET", "/v1/teams/acme/audit", None).await;
    let entries = trail["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "secret.delete",
            "secret.set",
            "integration.delete",
            "automation.delete",
            "integration.update",
            "integration.create",
            "api_key.revoke",
            "automation.update",
            "automation.create",
            "integration.test",
            "integration.create",
            "secret.set",
            "api_key.grant",
            "api_key.grant",
            "team.create",
        ]
    );
    assert_eq!(
        entries[0]["actor"],
        json!({"key_id": admin_id, "user": "alice", "role": "admin"})
    );
    assert_eq!(
        entries[0]["target"],
        json!({"type": "secret", "id": "OLD", "name": "OLD"})
    );
    assert_eq!(
        entries[3]["target"],
        json!({"type": "automation", "id": automation, "name": "deploy"})
    );
    assert_eq!(entries[4]["target"]["name"], "spare-2");
    assert_eq!(
        entries[6]["target"],
        json!({"type": "api_key", "id": member_id, "name": "bob"})
    );
    assert_eq!(entries[13]["actor"]["role"], "operator");
    assert!(
        entries
            .iter()
            .all(|e| e["at"].is_string() && e["id"].is_string())
    );
    // AND it pages: two at a time, then on from the cursor
    let page = admin
        .expect(200, "GET", "/v1/teams/acme/audit?limit=2", None)
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let cursor = page["next_before"].as_str().unwrap();
    let rest = admin
        .expect(
            200,
            "GET",
            &format!("/v1/teams/acme/audit?limit=200&before={cursor}"),
            None,
        )
        .await;
    assert_eq!(rest["entries"].as_array().unwrap()[..], entries[2..]);
    // AND it holds no secret value, and only admins read it
    assert!(!trail.to_string().contains("audit-secret-value"));
    assert!(!trail.to_string().contains("old-secret-value"));
    let (status, _) = member.call("GET", "/v1/teams/acme/audit", None).await;
    assert_eq!(status, 401, "the member's key was revoked");
    let reader = operator.with_key(&admin.grant_key("acme", "carol", "member").await.1);
    let (status, _) = reader.call("GET", "/v1/teams/acme/audit", None).await;
    assert_eq!(status, 403);
    for bad in ["limit=0", "limit=201", "limit=x"] {
        let (status, body) = admin
            .call("GET", &format!("/v1/teams/acme/audit?{bad}"), None)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn spellings_of_a_team_in_the_path_reach_no_other_team() {
    // GIVEN acme's admin, and beta with an automation
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    let keys = keys(&api).await;
    let admin = keys["admin"].as_deref();
    let other = call(&server, admin, "GET", "/v1/teams/beta/automations").await;
    assert_eq!(other.0, 403);
    // THEN its own team, however spelled, is its own; any other spelling is another team
    let own = call(&server, admin, "GET", "/v1/teams/%61cme/automations").await;
    assert_eq!(own.0, 200, "{}", own.1);
    for path in [
        "/v1/teams/%62eta/automations",
        "/v1/teams/ACME/automations",
        "/v1/teams/Acme/automations",
        "/v1/teams/acme%00/automations",
        "/v1/teams/acme%20/automations",
        "/v1/teams/acme%2Fbeta/automations",
        "/v1/teams/..%2Fbeta/automations",
        "/v1/teams//automations",
    ] {
        let got = call(&server, admin, "GET", path).await;
        assert_eq!(got, other, "{path}");
    }
    // AND paths the router does not serve answer 404 whatever the key
    for path in [
        "/v1/teams/acme/automations/",
        "/v1/teams/acme/automations/x/y/z",
    ] {
        let (status, _) = call(&server, admin, "GET", path).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn a_team_holds_at_most_a_thousand_keys() {
    let server = Server::start(ServerOptions::default());
    let api = server.api();
    api.create_team("acme").await;
    let mut last = String::new();
    for n in 0..1000 {
        last = api.grant_key("acme", &format!("job-{n}"), "ingest").await.0;
    }
    let (status, body) = api
        .call(
            "POST",
            "/v1/teams/acme/api-keys",
            Some(json!({"user": "one-too-many", "role": "ingest"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoke"),
        "{body}"
    );
    // Once one is revoked, there is room again
    api.expect(
        204,
        "DELETE",
        &format!("/v1/teams/acme/api-keys/{last}"),
        None,
    )
    .await;
    api.grant_key("acme", "one-more", "ingest").await;
}
