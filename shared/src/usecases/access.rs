//! Access: finding the caller from its key, granting and revoking team keys, and the audit
//! trail every change writes.

use time::OffsetDateTime;

use super::{Engine, Error, Result};
use crate::domain::Invalid;
use crate::domain::access::{
    AUDIT_RETENTION, Actor, ApiKey, ApiKeyInput, AuditEntry, Caller, KEY_PREFIX, KeyHash, Target,
    is_team_key_form,
};
use crate::domain::event::format_time;
use crate::domain::ids::{new_api_key, new_id};
use crate::ports::{KeyLookup, Listing, StoreError};

/// Why a request is not authenticated: it gets a 401, whichever it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unauthenticated {
    #[error("no key was sent")]
    Missing,
    #[error("the key is not one this deployment issued, or it was revoked")]
    Unknown,
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
}

/// The caller whose key this is: the operator (whose key's hash is `operator`), or the
/// holder of a team key that exists. Hashes are compared in constant time: the operator
/// key's, and a team key's with the hash it is stored under, once found by it (whatever
/// the lookup's timing could reveal is about the hash, which tells nothing about a key).
/// Only well-formed team keys are looked up.
pub async fn authenticate(
    engine: &Engine,
    operator: &KeyHash,
    presented: Option<&str>,
    lookup: KeyLookup,
) -> Result<Caller, Unauthenticated> {
    let presented = presented.ok_or(Unauthenticated::Missing)?;
    let hash = KeyHash::of(presented);
    if hash.matches(operator) {
        return Ok(Caller::Operator);
    }
    if !is_team_key_form(presented) {
        return Err(Unauthenticated::Unknown);
    }
    match engine.access.key_by_hash(&hash, lookup).await {
        Ok(Some(stored)) if stored.hash.matches(&hash) => Ok(Caller::Key(stored.key)),
        Ok(_) => Err(Unauthenticated::Unknown),
        Err(e) => Err(Unauthenticated::Unavailable(e.to_string())),
    }
}

/// Most keys a team holds at once.
pub const MAX_KEYS_PER_TEAM: usize = 1000;

/// A new key of `team`, and the key itself: shown to the caller once, stored only hashed.
pub async fn grant_key(
    engine: &Engine,
    caller: &Caller,
    team: &str,
    input: ApiKeyInput,
) -> Result<(ApiKey, String)> {
    let (user, role) = input.validate()?;
    let held = engine.access.list_keys(team).await?.entries.len();
    if held >= MAX_KEYS_PER_TEAM {
        return Err(Error::Conflict(format!(
            "team {team} holds {held} API keys, the most a team keeps; revoke the ones no longer used"
        )));
    }
    let actor = caller.actor();
    let secret = new_api_key(KEY_PREFIX.trim_end_matches('_'));
    let key = ApiKey {
        id: new_id(),
        team: team.to_string(),
        user,
        role,
        created_at: now(engine),
        created_by: actor.key_id.clone(),
    };
    engine
        .access
        .create_key(&key, &KeyHash::of(&secret))
        .await?;
    let target = Target::new("api_key", &key.id, Some(&key.user));
    record(engine, &actor, team, "api_key.grant", target).await;
    Ok((key, secret))
}

/// Revokes a key of `team`; a key of another team is as unknown as one that never was.
pub async fn revoke_key(engine: &Engine, caller: &Caller, team: &str, id: &str) -> Result<()> {
    // Read first for the trail's name; a key that cannot be read can still be revoked.
    let user = match engine.access.get_key(team, id).await {
        Ok(found) => found.map(|k| k.user),
        Err(StoreError::Unreadable(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if !engine.access.revoke_key(team, id).await? {
        return Err(Error::Missing(Invalid::new(
            "id",
            format!(
                "team {team} has no API key {id}; list them with GET /v1/teams/{team}/api-keys"
            ),
        )));
    }
    let target = Target::new("api_key", id, user.as_deref());
    record(engine, &caller.actor(), team, "api_key.revoke", target).await;
    Ok(())
}

pub async fn list_keys(engine: &Engine, team: &str) -> Result<Listing<ApiKey>> {
    Ok(engine.access.list_keys(team).await?)
}

/// Writes an audit entry for a change that was made. The change stands whatever happens
/// here: an entry that cannot be written is logged in full instead (it holds no secret).
pub async fn record(engine: &Engine, actor: &Actor, team: &str, action: &str, target: Target) {
    let at = engine.clock.now();
    let entry = AuditEntry {
        id: new_id(),
        team: team.to_string(),
        at: format_time(at),
        actor: actor.clone(),
        action: action.to_string(),
        target,
    };
    if let Err(e) = engine.access.append_audit(&entry, expiry(at)).await {
        let kept = serde_json::to_string(&entry).unwrap_or_default();
        tracing::error!(team, error = %e, entry = %kept, "could not write the audit entry; it is here instead");
    }
}

fn expiry(at: OffsetDateTime) -> OffsetDateTime {
    at + AUDIT_RETENTION
}

pub async fn list_audit(
    engine: &Engine,
    team: &str,
    limit: usize,
    before: Option<&str>,
) -> Result<Listing<AuditEntry>> {
    Ok(engine.access.list_audit(team, limit, before).await?)
}

fn now(engine: &Engine) -> String {
    format_time(engine.clock.now())
}
