//! A short-lived cache in front of a `SecretStore`: a warm Lambda container reads a secret
//! from Secrets Manager once per `ttl`, not once per delivery. Writes and deletes through the
//! cache take effect in it at once; changes made elsewhere show after at most `ttl`.
//! Concurrent reads of a secret that is not cached wait for one read of the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::ports::{SecretInfo, SecretStore, SecretValue, StoreResult};

/// How long the Lambda functions keep a secret value: a rotated secret is in use everywhere
/// within this time.
pub const SECRETS_CACHE_TTL: Duration = Duration::from_secs(60);

type Key = (String, String);

pub struct CachedSecrets<S> {
    inner: S,
    ttl: Duration,
    entries: Mutex<HashMap<Key, (Instant, SecretValue)>>,
    /// One gate per secret: a miss reads the store while holding it.
    loads: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl<S: SecretStore> CachedSecrets<S> {
    pub fn new(inner: S, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            entries: Mutex::new(HashMap::new()),
            loads: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &Key) -> Option<SecretValue> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (at, value) = entries.get(key)?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    fn forget(&self, team: &str, name: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(team.to_string(), name.to_string()));
    }
}

#[async_trait]
impl<S: SecretStore> SecretStore for CachedSecrets<S> {
    async fn put_secret(&self, team: &str, name: &str, value: &SecretValue) -> StoreResult<()> {
        self.inner.put_secret(team, name, value).await?;
        self.forget(team, name);
        Ok(())
    }

    async fn get_secret(&self, team: &str, name: &str) -> StoreResult<Option<SecretValue>> {
        let key = (team.to_string(), name.to_string());
        if let Some(value) = self.cached(&key) {
            return Ok(Some(value));
        }
        let gate = self
            .loads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _loading = gate.lock().await;
        // Whoever held the gate before may have just read it.
        if let Some(value) = self.cached(&key) {
            return Ok(Some(value));
        }
        let value = self.inner.get_secret(team, name).await?;
        // A miss is not kept: a secret created right after must be usable at once.
        if let Some(found) = &value {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.insert(key, (Instant::now(), found.clone()));
        }
        Ok(value)
    }

    async fn list_secrets(&self, team: &str) -> StoreResult<Vec<SecretInfo>> {
        self.inner.list_secrets(team).await
    }

    async fn delete_secret(&self, team: &str, name: &str) -> StoreResult<bool> {
        let deleted = self.inner.delete_secret(team, name).await?;
        self.forget(team, name);
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ports::SecretStore;

    /// Counts the reads that reach the store behind the cache.
    #[derive(Default)]
    struct Counting {
        values: Mutex<HashMap<Key, SecretValue>>,
        reads: AtomicUsize,
    }

    #[async_trait]
    impl SecretStore for Arc<Counting> {
        async fn put_secret(&self, team: &str, name: &str, value: &SecretValue) -> StoreResult<()> {
            self.values
                .lock()
                .unwrap()
                .insert((team.into(), name.into()), value.clone());
            Ok(())
        }
        async fn get_secret(&self, team: &str, name: &str) -> StoreResult<Option<SecretValue>> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            // As slow as a network call, so that concurrent readers overlap.
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(self
                .values
                .lock()
                .unwrap()
                .get(&(team.into(), name.into()))
                .cloned())
        }
        async fn list_secrets(&self, _team: &str) -> StoreResult<Vec<SecretInfo>> {
            Ok(Vec::new())
        }
        async fn delete_secret(&self, team: &str, name: &str) -> StoreResult<bool> {
            Ok(self
                .values
                .lock()
                .unwrap()
                .remove(&(team.into(), name.into()))
                .is_some())
        }
    }

    #[tokio::test]
    async fn reads_are_cached_for_the_ttl_and_writes_through_it_show_at_once() {
        let inner = Arc::new(Counting::default());
        let cache = CachedSecrets::new(inner.clone(), Duration::from_secs(3600));
        cache
            .put_secret("acme", "T", &SecretValue("one".into()))
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                cache.get_secret("acme", "T").await.unwrap(),
                Some(SecretValue("one".into()))
            );
        }
        assert_eq!(inner.reads.load(Ordering::Relaxed), 1);
        cache
            .put_secret("acme", "T", &SecretValue("two".into()))
            .await
            .unwrap();
        assert_eq!(
            cache.get_secret("acme", "T").await.unwrap(),
            Some(SecretValue("two".into()))
        );
        assert!(cache.delete_secret("acme", "T").await.unwrap());
        assert_eq!(cache.get_secret("acme", "T").await.unwrap(), None);
    }

    #[tokio::test]
    async fn an_expired_entry_is_read_again() {
        let inner = Arc::new(Counting::default());
        let cache = CachedSecrets::new(inner.clone(), Duration::ZERO);
        cache.get_secret("acme", "T").await.unwrap();
        cache.get_secret("acme", "T").await.unwrap();
        assert_eq!(inner.reads.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn concurrent_misses_read_the_store_once() {
        let inner = Arc::new(Counting::default());
        let cache = Arc::new(CachedSecrets::new(inner.clone(), Duration::from_secs(3600)));
        inner
            .put_secret("acme", "T", &SecretValue("one".into()))
            .await
            .unwrap();
        let readers: Vec<_> = (0..10)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get_secret("acme", "T").await.unwrap() })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.await.unwrap(), Some(SecretValue("one".into())));
        }
        assert_eq!(inner.reads.load(Ordering::Relaxed), 1);
    }
}
