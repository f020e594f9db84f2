//! The `AccessStore` conformance suite: keys found by their hash only while they live,
//! listed and revoked per team; audit trails per team, newest first, paged, expiring.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::access::{Actor, ApiKey, AuditEntry, KeyHash, Role, Target};
use crate::domain::event::format_time;
use crate::domain::ids::new_id;
use crate::ports::{AccessStore, Clock, KeyLookup, StoreError};

use super::ManualClock;

/// Runs the access contract against an EMPTY store built with `clock`.
pub async fn access_suite(store: Arc<dyn AccessStore>, clock: Arc<ManualClock>) {
    let store = &*store;
    keys_are_found_by_hash_and_listed_per_team(store).await;
    a_revoked_key_is_found_no_more(store).await;
    audit_trails_are_per_team_newest_first_and_paged(store, &clock).await;
    audit_entries_expire(store, &clock).await;
}

fn key(team: &str, user: &str, role: Role) -> ApiKey {
    ApiKey {
        id: new_id(),
        team: team.into(),
        user: user.into(),
        role,
        created_at: "2026-01-01T00:00:00Z".into(),
        created_by: "operator".into(),
    }
}

async fn create(store: &dyn AccessStore, key: &ApiKey, secret: &str) {
    store
        .create_key(key, &KeyHash::of(secret))
        .await
        .unwrap_or_else(|e| panic!("create_key {}: {e}", key.id));
}

async fn found(store: &dyn AccessStore, secret: &str) -> Option<ApiKey> {
    let hash = KeyHash::of(secret);
    let found = store
        .key_by_hash(&hash, KeyLookup::Fresh)
        .await
        .unwrap_or_else(|e| panic!("key_by_hash: {e}"));
    found.map(|stored| {
        assert!(
            stored.hash.matches(&hash),
            "a key came back under another hash"
        );
        stored.key
    })
}

async fn listed(store: &dyn AccessStore, team: &str) -> Vec<ApiKey> {
    let listing = store
        .list_keys(team)
        .await
        .unwrap_or_else(|e| panic!("list_keys {team}: {e}"));
    assert_eq!(listing.unreadable().count(), 0, "unreadable keys listed");
    listing.items().cloned().collect()
}

async fn keys_are_found_by_hash_and_listed_per_team(store: &dyn AccessStore) {
    // GIVEN two keys of acme and one of globex
    let alice = key("acme", "alice", Role::Admin);
    let ci = key("acme", "training-ci", Role::Ingest);
    let bob = key("globex", "bob", Role::Member);
    create(store, &alice, "atm_alice").await;
    create(store, &ci, "atm_ci").await;
    create(store, &bob, "atm_bob").await;

    // THEN each is found by its key's hash, and a key never issued finds nothing
    assert_eq!(found(store, "atm_alice").await, Some(alice.clone()));
    assert_eq!(found(store, "atm_ci").await, Some(ci.clone()));
    assert_eq!(found(store, "atm_bob").await, Some(bob.clone()));
    assert_eq!(found(store, "atm_mallory").await, None);

    // AND a second key with the same hash, or the same id, is refused and changes nothing
    let again = key("acme", "eve", Role::Admin);
    match store.create_key(&again, &KeyHash::of("atm_alice")).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a key with a taken hash: expected Conflict, got {other:?}"),
    }
    assert_eq!(found(store, "atm_alice").await, Some(alice.clone()));
    let same_id = ApiKey {
        user: "eve".into(),
        ..alice.clone()
    };
    match store.create_key(&same_id, &KeyHash::of("atm_eve")).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("a key with a taken id: expected Conflict, got {other:?}"),
    }
    assert_eq!(found(store, "atm_eve").await, None);

    // AND each team lists its own keys, oldest first, and gets only its own by id
    assert_eq!(listed(store, "acme").await, [alice.clone(), ci.clone()]);
    assert_eq!(listed(store, "globex").await, std::slice::from_ref(&bob));
    assert!(listed(store, "initech").await.is_empty());
    let get = |team: &'static str, id: String| async move {
        store
            .get_key(team, &id)
            .await
            .unwrap_or_else(|e| panic!("get_key: {e}"))
    };
    assert_eq!(get("acme", alice.id.clone()).await, Some(alice.clone()));
    assert_eq!(get("globex", alice.id.clone()).await, None);
}

async fn a_revoked_key_is_found_no_more(store: &dyn AccessStore) {
    // GIVEN a key of each team
    let carol = key("acme", "carol", Role::Member);
    let dave = key("globex", "dave", Role::Admin);
    create(store, &carol, "atm_carol").await;
    create(store, &dave, "atm_dave").await;
    let revoke = |team: &'static str, id: String| async move {
        store
            .revoke_key(team, &id)
            .await
            .unwrap_or_else(|e| panic!("revoke_key: {e}"))
    };

    // WHEN another team revokes it THEN nothing happens
    assert!(!revoke("globex", carol.id.clone()).await);
    assert_eq!(found(store, "atm_carol").await, Some(carol.clone()));

    // WHEN its team revokes it THEN its hash finds nothing, it is not listed, and a second
    // revoke finds nothing to revoke; the other team's key is untouched
    assert!(revoke("acme", carol.id.clone()).await);
    assert_eq!(found(store, "atm_carol").await, None);
    assert!(!listed(store, "acme").await.contains(&carol));
    assert!(!revoke("acme", carol.id.clone()).await);
    assert_eq!(found(store, "atm_dave").await, Some(dave.clone()));
    assert!(!revoke("acme", "no-such-key".into()).await);
}

fn entry(team: &str, at: &ManualClock, action: &str, n: usize) -> AuditEntry {
    AuditEntry {
        id: new_id(),
        team: team.into(),
        at: format_time(at.now()),
        actor: Actor {
            key_id: "k1".into(),
            user: "alice".into(),
            role: "admin".into(),
        },
        action: action.into(),
        target: Target::new("automation", &format!("a{n}"), Some(&format!("deploy-{n}"))),
    }
}

const KEPT: Duration = Duration::from_secs(3600);

async fn append(store: &dyn AccessStore, clock: &ManualClock, entry: &AuditEntry) {
    let expires = clock.now() + KEPT;
    store
        .append_audit(entry, expires)
        .await
        .unwrap_or_else(|e| panic!("append_audit {}: {e}", entry.id));
}

async fn trail(
    store: &dyn AccessStore,
    team: &str,
    limit: usize,
    before: Option<&str>,
) -> Vec<AuditEntry> {
    let listing = store
        .list_audit(team, limit, before)
        .await
        .unwrap_or_else(|e| panic!("list_audit {team}: {e}"));
    assert_eq!(listing.unreadable().count(), 0, "unreadable entries listed");
    listing.items().cloned().collect()
}

async fn audit_trails_are_per_team_newest_first_and_paged(
    store: &dyn AccessStore,
    clock: &ManualClock,
) {
    // GIVEN five entries of acme and one of globex, interleaved
    let mut acme = Vec::new();
    for n in 0..5 {
        let e = entry("acme", clock, "automation.create", n);
        append(store, clock, &e).await;
        acme.push(e);
        if n == 2 {
            append(store, clock, &entry("globex", clock, "secret.set", n)).await;
        }
        clock.advance(Duration::from_secs(1));
    }
    acme.reverse();

    // THEN acme's trail is its five, newest first, as written (team included)
    assert_eq!(trail(store, "acme", 50, None).await, acme);
    // AND pages of two follow each other without gaps or repeats
    let first = trail(store, "acme", 2, None).await;
    assert_eq!(first, acme[..2]);
    let second = trail(store, "acme", 2, Some(&first[1].id)).await;
    assert_eq!(second, acme[2..4]);
    let third = trail(store, "acme", 2, Some(&second[1].id)).await;
    assert_eq!(third, acme[4..]);
    assert!(trail(store, "acme", 2, Some(&third[0].id)).await.is_empty());
    // AND globex sees only its own; a team with none, nothing
    let globex = trail(store, "globex", 50, None).await;
    assert_eq!(globex.len(), 1);
    assert_eq!(globex[0].team, "globex");
    assert_eq!(globex[0].action, "secret.set");
    assert!(trail(store, "initech", 50, None).await.is_empty());
    // AND a cursor from another team pages acme's trail by time alone
    assert_eq!(
        trail(store, "acme", 50, Some(&globex[0].id)).await,
        acme[2..]
    );
}

async fn audit_entries_expire(store: &dyn AccessStore, clock: &ManualClock) {
    // GIVEN an entry of a new team WHEN its time is up THEN it is not listed
    let old = entry("hooli", clock, "integration.delete", 0);
    append(store, clock, &old).await;
    assert_eq!(trail(store, "hooli", 50, None).await, [old]);
    clock.advance(KEPT + Duration::from_secs(1));
    let fresh = entry("hooli", clock, "integration.create", 1);
    append(store, clock, &fresh).await;
    assert_eq!(trail(store, "hooli", 50, None).await, [fresh]);
}
