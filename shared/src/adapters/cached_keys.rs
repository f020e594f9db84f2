//! A short-lived cache of key lookups in front of an `AccessStore`: a warm Lambda container
//! reads a key's item once per `ttl` for the lookups that may be cached (the events route),
//! not once per request. A key revoked through this cache fails in it at once; revoked
//! elsewhere (another container), within `ttl`. Fresh lookups always read the store.
//! Lookups of unknown keys are kept too, so a flood of made-up keys costs no reads; the
//! cache holds at most [`MAX_ENTRIES`] lookups.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::access::{ApiKey, AuditEntry, KeyHash, StoredKey};
use crate::ports::{AccessStore, KeyLookup, Listing, StoreResult};

/// How long a Lambda container trusts a key lookup: a revoked key fails everywhere within
/// this time.
pub const KEYS_CACHE_TTL: Duration = Duration::from_secs(60);

/// Lookups kept at most; past it, the expired go, then all.
pub const MAX_ENTRIES: usize = 10_000;

pub struct CachedKeys<S> {
    inner: S,
    ttl: Duration,
    entries: Mutex<HashMap<KeyHash, (Instant, Option<StoredKey>)>>,
    /// Revokes through this cache so far: a lookup that overlapped one keeps nothing, since
    /// it may have read the key before it was revoked.
    revokes: AtomicU64,
}

type Entries = HashMap<KeyHash, (Instant, Option<StoredKey>)>;

impl<S: AccessStore> CachedKeys<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
            revokes: AtomicU64::new(0),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn keep(&self, hash: &KeyHash, found: &Option<StoredKey>) {
        let mut entries = self.entries();
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(hash.clone(), (Instant::now(), found.clone()));
    }
}

#[async_trait]
impl<S: AccessStore> AccessStore for CachedKeys<S> {
    async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> StoreResult<()> {
        self.inner.create_key(key, hash).await?;
        self.entries().remove(hash);
        Ok(())
    }

    async fn key_by_hash(
        &self,
        hash: &KeyHash,
        lookup: KeyLookup,
    ) -> StoreResult<Option<StoredKey>> {
        if lookup == KeyLookup::MayBeCached
            && let Some((at, found)) = self.entries().get(hash)
            && at.elapsed() < self.ttl
        {
            return Ok(found.clone());
        }
        let revokes = self.revokes.load(Ordering::SeqCst);
        let found = self.inner.key_by_hash(hash, KeyLookup::Fresh).await?;
        if self.revokes.load(Ordering::SeqCst) != revokes {
            // A revoke ran meanwhile: what was read may be gone. Read again, keep nothing.
            return self.inner.key_by_hash(hash, KeyLookup::Fresh).await;
        }
        self.keep(hash, &found);
        Ok(found)
    }

    async fn list_keys(&self, team: &str) -> StoreResult<Listing<ApiKey>> {
        self.inner.list_keys(team).await
    }

    async fn get_key(&self, team: &str, id: &str) -> StoreResult<Option<ApiKey>> {
        self.inner.get_key(team, id).await
    }

    async fn revoke_key(&self, team: &str, id: &str) -> StoreResult<bool> {
        // Counted before the store changes, so that a lookup overlapping it keeps nothing.
        self.revokes.fetch_add(1, Ordering::SeqCst);
        let revoked = self.inner.revoke_key(team, id).await?;
        self.entries().retain(|_, (_, found)| {
            !found
                .as_ref()
                .is_some_and(|stored| stored.key.team == team && stored.key.id == id)
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

    use tokio::sync::Notify;

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

    fn store(dir: &tempfile::TempDir) -> SqliteAccess {
        let db = Database::open(&dir.path().join("a.db")).unwrap();
        SqliteAccess::new(db, Arc::new(SystemClock))
    }

    async fn find<S: AccessStore>(cache: &S, secret: &str, lookup: KeyLookup) -> Option<ApiKey> {
        let found = cache
            .key_by_hash(&KeyHash::of(secret), lookup)
            .await
            .unwrap();
        found.map(|stored| stored.key)
    }

    use KeyLookup::{Fresh, MayBeCached};

    #[tokio::test]
    async fn a_revoke_shows_at_once_where_it_was_made_and_to_fresh_lookups_elsewhere() {
        // GIVEN two containers' caches over one store, and a key both have looked up
        let dir = tempfile::tempdir().unwrap();
        let ttl = Duration::from_secs(3600);
        let (here, there) = (
            CachedKeys::new(store(&dir), ttl),
            CachedKeys::new(store(&dir), ttl),
        );
        here.create_key(&key("k1"), &KeyHash::of("atm_k1"))
            .await
            .unwrap();
        assert_eq!(find(&there, "atm_k1", MayBeCached).await, Some(key("k1")));
        assert_eq!(find(&here, "atm_k1", MayBeCached).await, Some(key("k1")));
        // WHEN one revokes it
        assert!(here.revoke_key("acme", "k1").await.unwrap());
        // THEN it fails there at once; the other's cached lookups trust what they read
        // until it expires, and a fresh lookup sees the revoke (and refreshes the cache)
        assert_eq!(find(&here, "atm_k1", MayBeCached).await, None);
        assert_eq!(find(&there, "atm_k1", MayBeCached).await, Some(key("k1")));
        assert_eq!(find(&there, "atm_k1", Fresh).await, None);
        assert_eq!(find(&there, "atm_k1", MayBeCached).await, None);
    }

    #[tokio::test]
    async fn an_expired_lookup_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let here = CachedKeys::new(store(&dir), Duration::ZERO);
        let there = CachedKeys::new(store(&dir), Duration::ZERO);
        here.create_key(&key("k1"), &KeyHash::of("atm_k1"))
            .await
            .unwrap();
        assert_eq!(find(&there, "atm_k1", MayBeCached).await, Some(key("k1")));
        here.revoke_key("acme", "k1").await.unwrap();
        assert_eq!(find(&there, "atm_k1", MayBeCached).await, None);
    }

    /// A store whose key lookups, once `hold` is set, wait after reading until released.
    struct Held {
        inner: SqliteAccess,
        hold: std::sync::atomic::AtomicBool,
        read: Notify,
        release: Notify,
    }

    #[async_trait]
    impl AccessStore for Arc<Held> {
        async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> StoreResult<()> {
            self.inner.create_key(key, hash).await
        }
        async fn key_by_hash(
            &self,
            hash: &KeyHash,
            lookup: KeyLookup,
        ) -> StoreResult<Option<StoredKey>> {
            let found = self.inner.key_by_hash(hash, lookup).await;
            if self.hold.swap(false, Ordering::SeqCst) {
                self.read.notify_one();
                self.release.notified().await;
            }
            found
        }
        async fn list_keys(&self, team: &str) -> StoreResult<Listing<ApiKey>> {
            self.inner.list_keys(team).await
        }
        async fn get_key(&self, team: &str, id: &str) -> StoreResult<Option<ApiKey>> {
            self.inner.get_key(team, id).await
        }
        async fn revoke_key(&self, team: &str, id: &str) -> StoreResult<bool> {
            self.inner.revoke_key(team, id).await
        }
        async fn append_audit(&self, e: &AuditEntry, at: OffsetDateTime) -> StoreResult<()> {
            self.inner.append_audit(e, at).await
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

    #[tokio::test]
    async fn a_lookup_that_read_a_key_before_its_revoke_does_not_keep_it() {
        // GIVEN a lookup that has read a key and is held before it returns
        let dir = tempfile::tempdir().unwrap();
        let held = Arc::new(Held {
            inner: store(&dir),
            hold: false.into(),
            read: Notify::new(),
            release: Notify::new(),
        });
        let cache = Arc::new(CachedKeys::new(held.clone(), Duration::from_secs(3600)));
        cache
            .create_key(&key("k1"), &KeyHash::of("atm_k1"))
            .await
            .unwrap();
        held.hold.store(true, Ordering::SeqCst);
        let lookup = tokio::spawn({
            let cache = cache.clone();
            async move { find(&*cache, "atm_k1", MayBeCached).await }
        });
        held.read.notified().await;
        // WHEN the key is revoked through the cache meanwhile, then the lookup returns
        assert!(cache.revoke_key("acme", "k1").await.unwrap());
        held.release.notify_one();
        // THEN the lookup answers what the store holds now, and the cache keeps nothing
        assert_eq!(lookup.await.unwrap(), None);
        assert_eq!(find(&*cache, "atm_k1", MayBeCached).await, None);
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CachedKeys::new(store(&dir), Duration::from_secs(3600));
        for i in 0..MAX_ENTRIES + 5 {
            find(&cache, &format!("atm_{i}"), MayBeCached).await;
        }
        assert!(cache.entries().len() <= MAX_ENTRIES);
    }
}
