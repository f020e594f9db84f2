//! A short-lived cache of key lookups in front of an `AccessStore`: a warm Lambda container
//! reads a key's item once per `ttl`, not once per request. A key revoked through this
//! cache fails in it at once; revoked elsewhere (another container), within `ttl`.
//! Lookups of unknown keys are kept too, so a flood of made-up keys costs no reads; the
//! cache holds at most [`MAX_ENTRIES`] lookups.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::access::{ApiKey, AuditEntry, KeyHash};
use crate::ports::{AccessStore, Listing, StoreResult};

/// How long a Lambda container trusts a key lookup: a revoked key fails everywhere within
/// this time.
pub const KEYS_CACHE_TTL: Duration = Duration::from_secs(60);

/// Lookups kept at most; past it, the expired go, then all.
pub const MAX_ENTRIES: usize = 10_000;

pub struct CachedKeys<S> {
    inner: S,
    ttl: Duration,
    entries: Mutex<HashMap<KeyHash, (Instant, Option<ApiKey>)>>,
}

impl<S: AccessStore> CachedKeys<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<KeyHash, (Instant, Option<ApiKey>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl<S: AccessStore> AccessStore for CachedKeys<S> {
    async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> StoreResult<()> {
        self.inner.create_key(key, hash).await?;
        self.entries().remove(hash);
        Ok(())
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> StoreResult<Option<ApiKey>> {
        if let Some((at, found)) = self.entries().get(hash)
            && at.elapsed() < self.ttl
        {
            return Ok(found.clone());
        }
        let found = self.inner.key_by_hash(hash).await?;
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash.clone(), (Instant::now(), found.clone()));
        Ok(found)
    }

    async fn list_keys(&self, team: &str) -> StoreResult<Listing<ApiKey>> {
        self.inner.list_keys(team).await
    }

    async fn get_key(&self, team: &str, id: &str) -> StoreResult<Option<ApiKey>> {
        self.inner.get_key(team, id).await
    }

    async fn revoke_key(&self, team: &str, id: &str) -> StoreResult<bool> {
        let revoked = self.inner.revoke_key(team, id).await?;
        self.entries().retain(|_, (_, found)| {
            !found
                .as_ref()
                .is_some_and(|key| key.team == team && key.id == id)
        });
        Ok(revoked)
    }

    async fn append_audit(
        &self,
        entry: &AuditEntry,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.inner.append_audit(entry, expires_at).await
    }

    async fn list_audit(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<AuditEntry>> {
        self.inner.list_audit(team, limit, before).await
    }
}

#[cfg(all(test, feature = "sqlite"))]
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::sqlite::{Database, SqliteAccess};
    use crate::domain::access::Role;
    use crate::ports::SystemClock;

    fn key(id: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            team: "acme".into(),
            user: "alice".into(),
            role: Role::Ingest,
            created_at: String::new(),
            created_by: "operator".into(),
        }
    }

    /// Two containers' caches over one store.
    fn two_caches(
        ttl: Duration,
    ) -> (
        tempfile::TempDir,
        CachedKeys<SqliteAccess>,
        CachedKeys<SqliteAccess>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("a.db")).unwrap();
        let make = || CachedKeys::new(SqliteAccess::new(db.clone(), Arc::new(SystemClock)), ttl);
        (dir, make(), make())
    }

    #[tokio::test]
    async fn a_revoke_shows_at_once_where_it_was_made_and_after_the_ttl_elsewhere() {
        let (_dir, here, there) = two_caches(Duration::from_secs(3600));
        let hash = KeyHash::of("atm_k1");
        here.create_key(&key("k1"), &hash).await.unwrap();
        assert_eq!(there.key_by_hash(&hash).await.unwrap(), Some(key("k1")));
        assert_eq!(here.key_by_hash(&hash).await.unwrap(), Some(key("k1")));
        assert!(here.revoke_key("acme", "k1").await.unwrap());
        assert_eq!(here.key_by_hash(&hash).await.unwrap(), None);
        // The other container trusts its lookup until it expires.
        assert_eq!(there.key_by_hash(&hash).await.unwrap(), Some(key("k1")));
    }

    #[tokio::test]
    async fn an_expired_lookup_is_made_again() {
        let (_dir, here, there) = two_caches(Duration::ZERO);
        let hash = KeyHash::of("atm_k1");
        here.create_key(&key("k1"), &hash).await.unwrap();
        assert_eq!(there.key_by_hash(&hash).await.unwrap(), Some(key("k1")));
        here.revoke_key("acme", "k1").await.unwrap();
        assert_eq!(there.key_by_hash(&hash).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let (_dir, cache, _) = two_caches(Duration::from_secs(3600));
        for i in 0..MAX_ENTRIES + 5 {
            cache
                .key_by_hash(&KeyHash::of(&format!("atm_{i}")))
                .await
                .unwrap();
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);
    }
}
