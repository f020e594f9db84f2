//! The `AutomationStore` conformance suite.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, json};
use time::OffsetDateTime;

use crate::domain::automation::{Action, Automation, AutomationInput, Scope, Trigger};
use crate::domain::event::{EventType, format_millis};
use crate::domain::execution::{ActionRecord, Attempt, EventRef, Execution, ExecutionStatus};
use crate::domain::ids::execution_id;
use crate::domain::integration::{Destination, Integration};
use crate::ports::{
    AutomationStore, Clock, Listing, Lookup, StoreError, StoreResult, Team, Unreadable,
};

use super::ManualClock;

/// Overwrites what a store keeps of an item, around the port: how the suite makes an item
/// that cannot be read back (as a write of another version, or damage, could leave one).
#[async_trait::async_trait]
pub trait Tamper: Send + Sync {
    /// Replaces the stored JSON of the `kind` (`automation`, `integration`, `execution`)
    /// `team`/`id` with `body`.
    async fn overwrite_body(&self, kind: &str, team: &str, id: &str, body: &str);
}

/// JSON that no reader takes: nested deeper than serde_json's recursion limit.
pub fn unreadable_json() -> String {
    format!("{}{}", "[".repeat(200), "]".repeat(200))
}

/// Runs the store contract against an EMPTY store built with `clock`; `tamper` writes
/// around the store.
pub async fn store_suite(
    store: Arc<dyn AutomationStore>,
    clock: Arc<ManualClock>,
    tamper: &dyn Tamper,
) {
    let store = &*store;
    teams(store).await;
    named_items::<Automation>(store).await;
    matching_automations(store).await;
    named_items::<Integration>(store).await;
    event_deduplication(store, &clock).await;
    executions_are_created_once_and_updated_conditionally(store).await;
    executions_are_listed_newest_first(store).await;
    super::history::history_suite(store, &clock).await;
    unreadable_items_fail_alone(store, tamper).await;
    the_largest_execution_accepted_is_stored_and_read_back(store).await;
}

/// The largest execution the limits let through: an event whose metadata fills it, a
/// template at its size limit whose rendering is shown (and one whose rendering is too
/// large to show), and as many attempts as an execution keeps, each with the longest error.
/// It must fit every store (a DynamoDB item holds 400 KB).
async fn the_largest_execution_accepted_is_stored_and_read_back(store: &dyn AutomationStore) {
    use crate::domain::limits::{MAX_EVENT_BYTES, MAX_TEMPLATE_BYTES, json_len};
    use crate::usecases::dispatch::{MAX_ATTEMPTS, RECORDED_BODY_BYTES, RECORDED_ERROR_BYTES};
    use crate::usecases::{evaluate::new_execution, ingest::parse_events};

    let event_with = |blob: String| {
        json!({"id": "largest", "event_type": "LINK_ARTIFACT", "registry": "model",
               "artifact": {"collection": "c", "version": "v1", "metadata": {"k": blob}}})
    };
    let now = OffsetDateTime::from_unix_timestamp(BASE_MS / 1000).expect("a time");
    let base =
        json_len(&parse_events("large", event_with(String::new()), now).expect("an event")[0]);
    let mut events = parse_events("large", event_with("x".repeat(MAX_EVENT_BYTES - base)), now)
        .expect("an event of exactly the largest size is accepted");
    let event = events.remove(0);
    assert_eq!(json_len(&event), MAX_EVENT_BYTES);
    let copies = (MAX_TEMPLATE_BYTES - 16) / json_len("${artifact_metadata.k},");
    let templates = [
        json!({"pad": "y".repeat(MAX_TEMPLATE_BYTES - 16)}),
        json!({"copies": vec!["${artifact_metadata.k}"; copies]}),
    ];
    for (i, template) in templates.into_iter().enumerate() {
        assert!(json_len(&template) <= MAX_TEMPLATE_BYTES);
        let spec: AutomationInput = serde_json::from_value(json!({
            "name": format!("large-{i}"), "scope": {"type": "team"}, "event": {"type": "LINK_ARTIFACT"},
            "action": {"type": "webhook", "integration": "hook", "payload": template}}))
        .expect("a spec");
        spec.validate()
            .expect("a template at its limit is accepted");
        let automation = Automation {
            id: format!("large-{i}"),
            team: "large".into(),
            spec,
            created_at: at(BASE_MS),
            updated_at: at(BASE_MS),
        };
        let mut execution = new_execution(&event, &automation);
        assert_eq!(
            execution.action.payload.is_some(),
            i == 0,
            "shown only when it fits"
        );
        let created = store
            .create_executions(std::slice::from_ref(&execution))
            .await;
        assert_eq!(
            all_written(created).expect("the largest execution could not be created"),
            [true]
        );
        // AND it takes every attempt it may keep (a manual retry is refused past MAX_ATTEMPTS,
        // and a round makes at most 21)
        for n in 0..MAX_ATTEMPTS - 1 + 21 {
            execution.attempts.push(Attempt {
                at: at(BASE_MS + n as i64),
                status_code: Some(503),
                error: Some("e".repeat(RECORDED_ERROR_BYTES)),
                duration_ms: 15_000,
                outcome: Some("disabled".into()),
            });
        }
        execution.status = ExecutionStatus::Failed;
        execution.result = Some(crate::domain::execution::ExecutionResult {
            status_code: Some(503),
            body: Some("b".repeat(RECORDED_BODY_BYTES)),
            body_withheld: None,
            error: Some("e".repeat(RECORDED_ERROR_BYTES)),
            // A job's end, as large as a record keeps it (an execution has one or the
            // other, but both must fit).
            job_id: Some("j".repeat(26)),
            status: Some("FAILED".into()),
            exit_code: Some(i64::MIN),
            output: Some("\u{7}".repeat(crate::domain::job::RECORDED_OUTPUT_BYTES / 6)),
        });
        let updated = store.update_execution(&mut execution).await;
        updated.expect("the largest execution could not be updated");
        assert_eq!(
            get_execution(store, "large", &execution.id).await,
            Some(execution)
        );
    }
}

fn expect_unreadable<T: fmt::Debug>(what: &str, id: &str, result: StoreResult<Option<T>>) {
    match result {
        Err(StoreError::Unreadable(bad)) => assert_eq!(bad.id, id, "{what}: {bad}"),
        other => panic!("{what}: expected Unreadable naming {id}, got {other:?}"),
    }
}

fn split<T>(listing: Listing<T>) -> (Vec<T>, Vec<Unreadable>) {
    let (mut items, mut bad) = (Vec::new(), Vec::new());
    for entry in listing.entries {
        match entry {
            Ok(item) => items.push(item),
            Err(unreadable) => bad.push(unreadable),
        }
    }
    (items, bad)
}

async fn unreadable_items_fail_alone(store: &dyn AutomationStore, tamper: &dyn Tamper) {
    let (team, model) = ("broken", registry("model", None));
    // GIVEN two automations of one trigger partition, two integrations and two executions,
    // one of each then damaged so that it cannot be read
    let good = automation(
        team,
        "a-good",
        "good",
        model.clone(),
        EventType::AddArtifactAlias,
    );
    let bad = automation(
        team,
        "a-bad",
        "bad",
        model.clone(),
        EventType::AddArtifactAlias,
    );
    for a in [&good, &bad] {
        put_ok(store, a, true).await;
    }
    let (hook, broken_hook) = (
        integration(team, "i-good", "good"),
        integration(team, "i-bad", "bad"),
    );
    for i in [&hook, &broken_hook] {
        put_ok(store, i, true).await;
    }
    let runs = [
        execution(team, "a-good", "e-1", BASE_MS),
        execution(team, "a-good", "e-2", BASE_MS + 1),
        execution(team, "a-good", "e-3", BASE_MS + 2),
    ];
    all_written(store.create_executions(&runs).await).expect("create_executions failed");
    let damaged = unreadable_json();
    tamper
        .overwrite_body("automation", team, "a-bad", &damaged)
        .await;
    tamper
        .overwrite_body("integration", team, "i-bad", &damaged)
        .await;
    tamper
        .overwrite_body("execution", team, &runs[1].id, &damaged)
        .await;

    // THEN reading a damaged item fails, naming it
    expect_unreadable(
        "get_automation",
        "a-bad",
        store.get_automation(team, "a-bad").await,
    );
    expect_unreadable(
        "get_integration",
        "i-bad",
        store.get_integration(team, "i-bad").await,
    );
    expect_unreadable(
        "get_execution",
        &runs[1].id,
        store.get_execution(team, &runs[1].id).await,
    );
    // AND listings hold the readable items and name the others
    let (items, unreadable) = split(
        store
            .list_automations(team)
            .await
            .expect("list_automations failed"),
    );
    assert_eq!(
        items.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a-good"]
    );
    assert_eq!(
        unreadable.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["a-bad"]
    );
    let (items, unreadable) = split(
        store
            .list_integrations(team)
            .await
            .expect("list_integrations failed"),
    );
    assert_eq!(items, [hook]);
    assert_eq!(
        unreadable.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        ["i-bad"]
    );
    let newest_first = [runs[2].id.clone(), runs[1].id.clone(), runs[0].id.clone()];
    assert_eq!(
        listed_ids(store, team, "a-good", 10, None).await,
        newest_first
    );
    let (items, unreadable) = split(
        store
            .list_executions(team, "a-good", 10, None)
            .await
            .expect("list_executions failed"),
    );
    assert_eq!(items, [runs[2].clone(), runs[0].clone()]);
    assert_eq!(unreadable[0].id, runs[1].id);
    // AND a damaged execution still pages, as a cursor too
    assert_eq!(
        listed_ids(store, team, "a-good", 10, Some(&runs[1].id)).await,
        [runs[0].id.clone()]
    );
    // AND the other automations of its partition still match
    let found = matching_ids(
        store,
        team,
        EventType::AddArtifactAlias,
        std::slice::from_ref(&model),
    )
    .await;
    assert_eq!(found, ["a-good"]);
    // AND a damaged item can be deleted
    assert!(
        store
            .delete_automation(team, "a-bad")
            .await
            .expect("delete_automation failed")
    );
    assert!(
        store
            .delete_integration(team, "i-bad")
            .await
            .expect("delete_integration failed")
    );
    let (_, unreadable) = split(
        store
            .list_automations(team)
            .await
            .expect("list_automations failed"),
    );
    assert!(unreadable.is_empty(), "deleted, yet listed: {unreadable:?}");
}

fn at(ms: i64) -> String {
    format_millis(ms)
}

pub const BASE_MS: i64 = 1_700_000_000_000;

fn assert_conflict<T: fmt::Debug>(what: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

async fn teams(store: &dyn AutomationStore) {
    let team = |name: &str| Team {
        name: name.to_string(),
        created_at: at(BASE_MS),
    };
    // GIVEN two teams
    for name in ["acme", "globex"] {
        store
            .create_team(&team(name))
            .await
            .expect("create_team failed");
    }
    // THEN a second create of one conflicts
    assert_conflict("duplicate team", store.create_team(&team("acme")).await);
    // AND they read back, one by one and listed
    let got = store.get_team("acme").await.expect("get_team failed");
    assert_eq!(got, Some(team("acme")));
    assert_eq!(
        store.get_team("initech").await.expect("get_team failed"),
        None
    );
    let mut names: Vec<String> = store
        .list_teams()
        .await
        .expect("list_teams failed")
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["acme", "globex"]);
}

/// Automations and integrations share one contract: ids per team, names unique per team.
trait Named: Sized + fmt::Debug {
    const KIND: &'static str;
    fn make(team: &str, id: &str, name: &str) -> Self;
    fn id(&self) -> &str;
    fn name(&self) -> &str;
    /// A changed copy under a new name, as a replace writes it.
    fn renamed(&self, name: &str) -> Self;
    fn same(&self, other: &Self) -> bool;
    async fn put(&self, store: &dyn AutomationStore, create: bool) -> StoreResult<()>;
    async fn get(store: &dyn AutomationStore, team: &str, id: &str) -> StoreResult<Option<Self>>;
    async fn list(store: &dyn AutomationStore, team: &str) -> StoreResult<Vec<Self>>;
    async fn delete(store: &dyn AutomationStore, team: &str, id: &str) -> StoreResult<bool>;
}

impl Named for Automation {
    const KIND: &'static str = "automation";
    fn make(team: &str, id: &str, name: &str) -> Self {
        automation(team, id, name, Scope::Team, EventType::AddArtifactAlias)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.spec.name
    }
    fn renamed(&self, name: &str) -> Self {
        let mut next = self.clone();
        next.spec.name = name.to_string();
        next.spec.description = Some("replaced".into());
        next.updated_at = at(BASE_MS + 1);
        next
    }
    fn same(&self, other: &Self) -> bool {
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
    async fn put(&self, store: &dyn AutomationStore, create: bool) -> StoreResult<()> {
        store.put_automation(self, create).await
    }
    async fn get(store: &dyn AutomationStore, team: &str, id: &str) -> StoreResult<Option<Self>> {
        store.get_automation(team, id).await
    }
    async fn list(store: &dyn AutomationStore, team: &str) -> StoreResult<Vec<Self>> {
        all_readable(store.list_automations(team).await?)
    }
    async fn delete(store: &dyn AutomationStore, team: &str, id: &str) -> StoreResult<bool> {
        store.delete_automation(team, id).await
    }
}

impl Named for Integration {
    const KIND: &'static str = "integration";
    fn make(team: &str, id: &str, name: &str) -> Self {
        integration(team, id, name)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn renamed(&self, name: &str) -> Self {
        let mut next = self.clone();
        next.name = name.to_string();
        next.destination = Destination::Slack {
            webhook_url_secret: "SLACK_URL".into(),
            channel: Some(format!("#{name}")),
        };
        next.updated_at = at(BASE_MS + 1);
        next
    }
    fn same(&self, other: &Self) -> bool {
        self == other
    }
    async fn put(&self, store: &dyn AutomationStore, create: bool) -> StoreResult<()> {
        store.put_integration(self, create).await
    }
    async fn get(store: &dyn AutomationStore, team: &str, id: &str) -> StoreResult<Option<Self>> {
        store.get_integration(team, id).await
    }
    async fn list(store: &dyn AutomationStore, team: &str) -> StoreResult<Vec<Self>> {
        all_readable(store.list_integrations(team).await?)
    }
    async fn delete(store: &dyn AutomationStore, team: &str, id: &str) -> StoreResult<bool> {
        store.delete_integration(team, id).await
    }
}

/// The items of a listing that must hold no unreadable one.
fn all_readable<T>(listing: Listing<T>) -> StoreResult<Vec<T>> {
    listing
        .entries
        .into_iter()
        .map(|e| e.map_err(StoreError::Unreadable))
        .collect()
}

/// Every answer of a `create_executions` call, or the first failure.
fn all_written(created: Vec<StoreResult<bool>>) -> StoreResult<Vec<bool>> {
    created.into_iter().collect()
}

async fn put_ok<T: Named>(store: &dyn AutomationStore, item: &T, create: bool) {
    let verb = if create { "create" } else { "replace" };
    if let Err(e) = item.put(store, create).await {
        panic!("{verb} {} {}: {e}", T::KIND, item.id());
    }
}

async fn get_item<T: Named>(store: &dyn AutomationStore, team: &str, id: &str) -> Option<T> {
    T::get(store, team, id)
        .await
        .unwrap_or_else(|e| panic!("get {} {team}/{id}: {e}", T::KIND))
}

async fn assert_stored<T: Named>(store: &dyn AutomationStore, team: &str, expected: &T) {
    let got = get_item::<T>(store, team, expected.id()).await;
    assert!(
        got.as_ref().is_some_and(|g| g.same(expected)),
        "{} {team}/{} reads back as {got:?}, expected {expected:?}",
        T::KIND,
        expected.id()
    );
}

async fn listed<T: Named>(store: &dyn AutomationStore, team: &str) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = T::list(store, team)
        .await
        .unwrap_or_else(|e| panic!("list {}s of {team}: {e}", T::KIND))
        .iter()
        .map(|i| (i.id().to_string(), i.name().to_string()))
        .collect();
    items.sort_unstable();
    items
}

fn pairs<const N: usize>(items: [(&str, &str); N]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(id, name)| (id.to_string(), name.to_string()))
        .collect()
}

async fn named_items<T: Named>(store: &dyn AutomationStore) {
    let kind = T::KIND;
    // GIVEN "deploy" in acme
    let deploy = T::make("acme", "id-1", "deploy");
    put_ok(store, &deploy, true).await;
    assert_stored(store, "acme", &deploy).await;
    // THEN the id and the name are taken in acme, but not in globex
    let again = deploy.put(store, true).await;
    assert_conflict(&format!("{kind} created twice"), again);
    let same_name = T::make("acme", "id-2", "deploy").put(store, true).await;
    assert_conflict(&format!("{kind} name taken in the team"), same_name);
    put_ok(store, &T::make("globex", "id-1", "deploy"), true).await;
    assert!(get_item::<T>(store, "acme", "id-2").await.is_none());
    // AND each team lists its own
    put_ok(store, &T::make("acme", "id-2", "notify"), true).await;
    let acme = pairs([("id-1", "deploy"), ("id-2", "notify")]);
    assert_eq!(listed::<T>(store, "acme").await, acme, "{kind}s of acme");
    let globex = pairs([("id-1", "deploy")]);
    assert_eq!(
        listed::<T>(store, "globex").await,
        globex,
        "{kind}s of globex"
    );

    // WHEN deploy is replaced under a new name
    let replaced = deploy.renamed("deploy-v2");
    put_ok(store, &replaced, false).await;
    // THEN it reads back replaced, its old name is free and its new one taken
    assert_stored(store, "acme", &replaced).await;
    put_ok(store, &T::make("acme", "id-3", "deploy"), true).await;
    let onto_taken = T::make("acme", "id-2", "notify")
        .renamed("deploy-v2")
        .put(store, false)
        .await;
    assert_conflict(&format!("{kind} renamed onto a taken name"), onto_taken);
    assert_stored(store, "acme", &T::make("acme", "id-2", "notify")).await;
    // AND replacing a missing one conflicts and creates nothing
    let missing = T::make("acme", "missing", "ghost").put(store, false).await;
    assert_conflict(&format!("{kind} replaced but missing"), missing);
    assert!(get_item::<T>(store, "acme", "missing").await.is_none());

    // WHEN it is deleted THEN it is gone (once) and its name is free
    let delete = |id| T::delete(store, "acme", id);
    assert!(
        delete("id-1").await.expect("delete failed"),
        "{kind} delete"
    );
    assert!(
        !delete("id-1").await.expect("delete failed"),
        "{kind} deleted twice"
    );
    assert!(get_item::<T>(store, "acme", "id-1").await.is_none());
    put_ok(store, &T::make("acme", "id-4", "deploy-v2"), true).await;
    // AND the same id in globex is untouched
    assert_eq!(
        listed::<T>(store, "globex").await,
        globex,
        "{kind}s of globex"
    );
}

async fn matching_ids(
    store: &dyn AutomationStore,
    team: &str,
    event_type: EventType,
    scopes: &[Scope],
) -> Vec<String> {
    let mut found = matching_batch(store, &[(team, event_type, scopes)]).await;
    found.pop().expect("one lookup, one answer")
}

/// For each (team, type, scopes) lookup, the sorted ids it finds, all in one call.
async fn matching_batch(
    store: &dyn AutomationStore,
    lookups: &[(&str, EventType, &[Scope])],
) -> Vec<Vec<String>> {
    let lookups: Vec<Lookup> = lookups
        .iter()
        .map(|(team, event_type, scopes)| Lookup {
            team: team.to_string(),
            event_type: *event_type,
            scope_keys: scopes.iter().map(Scope::key).collect(),
        })
        .collect();
    let found = store
        .matching_automations(&lookups)
        .await
        .expect("matching_automations failed");
    assert_eq!(found.len(), lookups.len(), "one answer per lookup");
    found
        .into_iter()
        .map(|automations| {
            let mut ids: Vec<String> = automations.into_iter().map(|a| a.id).collect();
            ids.sort_unstable();
            ids
        })
        .collect()
}

async fn matching_automations(store: &dyn AutomationStore) {
    use EventType::{AddArtifactAlias as Alias, AddArtifactTag as Tag};
    let (team, model, resnet) = (
        Scope::Team,
        registry("model", None),
        registry("model", Some("resnet")),
    );
    // GIVEN automations filed under many triggers
    let filed = [
        automation("match", "m-team", "team-wide", team.clone(), Alias),
        automation("match", "m-model", "model", model.clone(), Alias),
        automation("match", "m-resnet", "resnet", resnet.clone(), Alias),
        automation(
            "match",
            "m-vgg",
            "vgg",
            registry("model", Some("vgg")),
            Alias,
        ),
        automation(
            "match",
            "m-dataset",
            "dataset",
            registry("dataset", None),
            Alias,
        ),
        automation("match", "m-project", "project", project("model"), Alias),
        automation("match", "m-tag", "tagged", model.clone(), Tag),
        automation("match-other", "m-model", "model", model.clone(), Alias),
    ];
    for a in &filed {
        put_ok(store, a, true).await;
    }
    // WHEN an alias is added to a resnet version of the model registry
    let event_scopes = [team, resnet.clone(), model.clone()];
    // THEN exactly the automations filed under its scope keys and type match
    let got = matching_ids(store, "match", Alias, &event_scopes).await;
    assert_eq!(got, ["m-model", "m-resnet", "m-team"]);
    assert_eq!(
        matching_ids(store, "match", Alias, std::slice::from_ref(&model)).await,
        ["m-model"]
    );
    assert_eq!(
        matching_ids(store, "match", Tag, &event_scopes).await,
        ["m-tag"]
    );
    assert!(
        matching_ids(store, "match", EventType::RunState, &event_scopes)
            .await
            .is_empty()
    );
    assert!(matching_ids(store, "match", Alias, &[]).await.is_empty());
    assert!(
        matching_ids(store, "nobody", Alias, &event_scopes)
            .await
            .is_empty()
    );
    // WHEN a batch of lookups shares partitions, repeats one, and has an empty one
    let resnet_only = [resnet.clone()];
    let got = matching_batch(
        store,
        &[
            ("match", Alias, &event_scopes),
            ("match", Alias, &resnet_only),
            ("match-other", Alias, &event_scopes),
            ("match", Alias, &[]),
            ("match", Tag, &event_scopes),
            ("match", Alias, &event_scopes),
        ],
    )
    .await;
    // THEN each lookup gets its own answer, in order
    assert_eq!(
        got,
        [
            strings(&["m-model", "m-resnet", "m-team"]),
            strings(&["m-resnet"]),
            strings(&["m-model"]),
            strings(&[]),
            strings(&["m-tag"]),
            strings(&["m-model", "m-resnet", "m-team"]),
        ]
    );
    assert!(matching_batch(store, &[]).await.is_empty());

    // WHEN one is refiled under another scope and another deleted
    let refiled = automation("match", "m-dataset", "dataset", model.clone(), Alias);
    put_ok(store, &refiled, false).await;
    let deleted = store.delete_automation("match", "m-model").await;
    assert!(deleted.expect("delete_automation failed"));
    // THEN the lookup follows
    let got = matching_ids(store, "match", Alias, std::slice::from_ref(&model)).await;
    assert_eq!(got, ["m-dataset"]);
    let dataset = [registry("dataset", None)];
    assert!(
        matching_ids(store, "match", Alias, &dataset)
            .await
            .is_empty()
    );
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn seen(store: &dyn AutomationStore, team: &str, ids: &[&str]) -> Vec<String> {
    let mut seen: Vec<String> = store
        .seen_events(team, &strings(ids))
        .await
        .expect("seen_events failed")
        .into_iter()
        .collect();
    seen.sort_unstable();
    seen
}

async fn record(store: &dyn AutomationStore, team: &str, ids: &[&str], until: OffsetDateTime) {
    let recorded = store.record_events(team, &strings(ids), until).await;
    recorded.expect("record_events failed");
}

async fn event_deduplication(store: &dyn AutomationStore, clock: &ManualClock) {
    let all = ["e1", "e2", "e3", "e4"];
    // GIVEN e1, e2 remembered for a minute and e3 for ten seconds
    let now = clock.now();
    let minute = Duration::from_secs(60);
    record(store, "dedup", &["e1", "e2"], now + minute).await;
    record(store, "dedup", &["e3"], now + minute / 6).await;
    // THEN the team has seen them, and no other team has
    assert_eq!(seen(store, "dedup", &all).await, ["e1", "e2", "e3"]);
    assert!(seen(store, "dedup-other", &all).await.is_empty());
    assert!(seen(store, "dedup", &[]).await.is_empty());
    // WHEN their windows run out THEN they are forgotten
    clock.advance(Duration::from_secs(30));
    assert_eq!(seen(store, "dedup", &all).await, ["e1", "e2"]);
    clock.advance(Duration::from_secs(31));
    assert!(seen(store, "dedup", &all).await.is_empty());
}

async fn get_execution(store: &dyn AutomationStore, team: &str, id: &str) -> Option<Execution> {
    store
        .get_execution(team, id)
        .await
        .expect("get_execution failed")
}

async fn executions_are_created_once_and_updated_conditionally(store: &dyn AutomationStore) {
    // GIVEN an execution
    let first = execution("runs", "auto-1", "ev-1", BASE_MS);
    let created = store.create_executions(std::slice::from_ref(&first)).await;
    assert_eq!(
        all_written(created).expect("create_executions failed"),
        [true]
    );
    // WHEN a batch holds a new one and another write of the first
    let second = execution("runs", "auto-1", "ev-2", BASE_MS + 1);
    let mut rewrite = first.clone();
    rewrite.automation_name = "rewritten".into();
    let created = store.create_executions(&[second.clone(), rewrite]).await;
    // THEN only the new one is created, and the first is not overwritten
    assert_eq!(
        all_written(created).expect("create_executions failed"),
        [true, false]
    );
    assert_eq!(
        get_execution(store, "runs", &first.id).await,
        Some(first.clone())
    );
    assert_eq!(get_execution(store, "runs", &second.id).await, Some(second));
    assert_eq!(get_execution(store, "runs-other", &first.id).await, None);
    assert_eq!(get_execution(store, "runs", "missing").await, None);

    // WHEN it is updated
    let read = get_execution(store, "runs", &first.id)
        .await
        .expect("stored");
    let mut current = read.clone();
    current.status = ExecutionStatus::Finished;
    current.attempts.push(Attempt {
        at: at(BASE_MS + 10),
        status_code: Some(200),
        error: None,
        duration_ms: 12,
        outcome: Some("delivered".into()),
    });
    let updated = store.update_execution(&mut current).await;
    updated.expect("update_execution failed");
    // THEN its version is bumped and the update stored
    assert_eq!(current.version, read.version + 1);
    assert_eq!(
        get_execution(store, "runs", &first.id).await,
        Some(current.clone())
    );
    // AND an update from the old version is refused and changes nothing
    let mut stale = read;
    stale.status = ExecutionStatus::Failed;
    match store.update_execution(&mut stale).await {
        Err(StoreError::Stale) => {}
        other => panic!("update from an old version: expected Stale, got {other:?}"),
    }
    assert_eq!(
        get_execution(store, "runs", &first.id).await,
        Some(current.clone())
    );
    // AND an update from the new version goes through
    let updated = store.update_execution(&mut current).await;
    updated.expect("second update_execution failed");
    assert_eq!(get_execution(store, "runs", &first.id).await, Some(current));
}

async fn listed_ids(
    store: &dyn AutomationStore,
    team: &str,
    automation_id: &str,
    limit: usize,
    before: Option<&str>,
) -> Vec<String> {
    store
        .list_executions(team, automation_id, limit, before)
        .await
        .expect("list_executions failed")
        .entries
        .into_iter()
        .map(|e| e.map_or_else(|bad| bad.id, |e| e.id))
        .collect()
}

async fn executions_are_listed_newest_first(store: &dyn AutomationStore) {
    // GIVEN five executions of auto-1, created out of order, beside others' executions
    let mine: Vec<Execution> = (0..5)
        .map(|i| execution("history", "auto-1", &format!("ev-{i}"), BASE_MS + i * 1000))
        .collect();
    let neighbour = execution("history", "auto-2", "ev-x", BASE_MS + 500);
    let other_team = execution("history-other", "auto-1", "ev-y", BASE_MS + 1500);
    let batch = [
        mine[2].clone(),
        neighbour.clone(),
        mine[0].clone(),
        mine[4].clone(),
        other_team,
        mine[1].clone(),
        mine[3].clone(),
    ];
    let created = store.create_executions(&batch).await;
    assert!(
        all_written(created)
            .expect("create_executions failed")
            .iter()
            .all(|c| *c)
    );
    let newest_first: Vec<String> = mine.iter().rev().map(|e| e.id.clone()).collect();

    // THEN all of auto-1's come newest first, and only those
    let list = |limit, before| listed_ids(store, "history", "auto-1", limit, before);
    assert_eq!(list(10, None).await, newest_first);
    let full = store.list_executions("history", "auto-1", 1, None).await;
    let full = all_readable(full.expect("list_executions failed"));
    assert_eq!(full.expect("unreadable execution"), [mine[4].clone()]);
    // AND they page with limit and before
    let page1 = list(2, None).await;
    assert_eq!(page1, newest_first[..2]);
    let page2 = list(2, page1.last().map(String::as_str)).await;
    assert_eq!(page2, newest_first[2..4]);
    let page3 = list(2, page2.last().map(String::as_str)).await;
    assert_eq!(page3, newest_first[4..]);
    assert!(list(2, page3.last().map(String::as_str)).await.is_empty());
    // AND other automations keep their own
    let theirs = listed_ids(store, "history", "auto-2", 10, None).await;
    assert_eq!(theirs, [neighbour.id]);
    assert!(
        listed_ids(store, "history", "missing", 10, None)
            .await
            .is_empty()
    );
}

fn registry(name: &str, collection: Option<&str>) -> Scope {
    Scope::Registry {
        name: name.to_string(),
        collection: collection.map(str::to_string),
    }
}

fn project(name: &str) -> Scope {
    Scope::Project {
        name: name.to_string(),
        collection: None,
    }
}

/// A no-op automation of `team` for `event_type` in `scope`.
fn automation(team: &str, id: &str, name: &str, scope: Scope, event_type: EventType) -> Automation {
    Automation {
        id: id.to_string(),
        team: team.to_string(),
        spec: AutomationInput {
            name: name.to_string(),
            description: None,
            enabled: true,
            scope,
            event: Trigger {
                event_type: event_type.as_str().to_string(),
                filter: None,
                states: None,
                rule: Default::default(),
            },
            action: Action {
                kind: "no_op".into(),
                ..Action::default()
            },
        },
        created_at: at(BASE_MS),
        updated_at: at(BASE_MS),
    }
}

fn integration(team: &str, id: &str, name: &str) -> Integration {
    Integration {
        id: id.to_string(),
        team: team.to_string(),
        name: name.to_string(),
        destination: Destination::Webhook {
            url: format!("https://hooks.example.com/{name}"),
            access_token_secret: Some("HOOK_TOKEN".into()),
            signing_secret: None,
        },
        enabled: true,
        disabled_reason: None,
        created_at: at(BASE_MS),
        updated_at: at(BASE_MS),
    }
}

/// A pending execution of `automation_id` on `event_id`, received at `received_ms`.
pub fn execution(team: &str, automation_id: &str, event_id: &str, received_ms: i64) -> Execution {
    Execution {
        id: execution_id(team, event_id, automation_id),
        team: team.to_string(),
        automation_id: automation_id.to_string(),
        automation_name: format!("{automation_id} name"),
        triggered_at: at(received_ms),
        triggered_at_ms: received_ms,
        status: ExecutionStatus::Pending,
        event: EventRef {
            event_type: EventType::AddArtifactAlias,
            id: event_id.to_string(),
        },
        action: ActionRecord {
            kind: "webhook".into(),
            integration: Some("hook".into()),
            url: Some("https://hooks.example.com/deploy".into()),
            payload: Some(json!({"version": "model:v3", "token": "***"})),
            ..ActionRecord::default()
        },
        attempts: Vec::new(),
        result: None,
        template: json!({"version": "${artifact_version_string}", "token": "${HOOK_TOKEN}"}),
        vars: Map::from_iter([("artifact_version_string".to_string(), json!("model:v3"))]),
        version: 0,
        next_attempt_at_ms: None,
        claimed_by: None,
        round_start: 0,
    }
}
