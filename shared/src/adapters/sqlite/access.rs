//! `AccessStore` on SQLite: keys by hash (the primary key, as DynamoDB's `GetItem`) and per
//! team; the audit trail per team in id order.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{Database, unix_ms};
use crate::domain::access::{ApiKey, AuditEntry, KeyHash, StoredKey};
use crate::ports::{AccessStore, Clock, KeyLookup, Listing, StoreError, StoreResult, Unreadable};

pub struct SqliteAccess {
    db: Database,
    clock: Arc<dyn Clock>,
}

impl SqliteAccess {
    pub fn new(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

#[async_trait]
impl AccessStore for SqliteAccess {
    async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> StoreResult<()> {
        let values = [
            hash.to_hex(),
            key.team.clone(),
            key.id.clone(),
            to_json(key)?,
        ];
        let inserted = self
            .db
            .call(move |c| {
                Ok(c.execute(
                    "INSERT INTO api_keys (hash, team, id, body) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    values,
                )?)
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict("this key or key id exists".into()));
        }
        Ok(())
    }

    async fn key_by_hash(
        &self,
        hash: &KeyHash,
        _lookup: KeyLookup,
    ) -> StoreResult<Option<StoredKey>> {
        let hex = hash.to_hex();
        let found: Option<(String, String, String)> = self
            .db
            .call(move |c| {
                Ok(
                    c.prepare_cached("SELECT hash, id, body FROM api_keys WHERE hash = ?1")?
                        .query_row([hex], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?,
                )
            })
            .await?;
        let Some((stored, id, body)) = found else {
            return Ok(None);
        };
        let key = Unreadable::decode("api key", &id, &body).map_err(StoreError::Unreadable)?;
        let hash = KeyHash::from_hex(&stored).ok_or_else(|| {
            StoreError::Unreadable(Unreadable {
                kind: "api key",
                id,
                error: "its hash is not 64 hex digits".into(),
            })
        })?;
        Ok(Some(StoredKey { key, hash }))
    }

    async fn list_keys(&self, team: &str) -> StoreResult<Listing<ApiKey>> {
        let team = team.to_string();
        Ok(self
            .db
            .call(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT id, body FROM api_keys WHERE team = ?1 ORDER BY id")?;
                let rows = stmt.query_map([team], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                rows.map(|row| {
                    let (id, body) = row?;
                    Ok(Unreadable::decode("api key", &id, &body))
                })
                .collect()
            })
            .await?)
    }

    async fn get_key(&self, team: &str, id: &str) -> StoreResult<Option<ApiKey>> {
        let (team, id) = (team.to_string(), id.to_string());
        let key = id.clone();
        let body: Option<String> = self
            .db
            .call(move |c| {
                Ok(
                    c.prepare_cached("SELECT body FROM api_keys WHERE team = ?1 AND id = ?2")?
                        .query_row([team, id], |r| r.get(0))
                        .optional()?,
                )
            })
            .await?;
        body.map(|body| Unreadable::decode("api key", &key, &body))
            .transpose()
            .map_err(StoreError::Unreadable)
    }

    async fn revoke_key(&self, team: &str, id: &str) -> StoreResult<bool> {
        let (team, id) = (team.to_string(), id.to_string());
        Ok(self
            .db
            .call(move |c| {
                Ok(c.execute(
                    "DELETE FROM api_keys WHERE team = ?1 AND id = ?2",
                    [team, id],
                )? > 0)
            })
            .await?)
    }

    async fn append_audit(
        &self,
        entry: &AuditEntry,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let values: Vec<rusqlite::types::Value> = vec![
            entry.team.clone().into(),
            entry.id.clone().into(),
            unix_ms(expires_at).into(),
            to_json(entry)?.into(),
        ];
        let now = unix_ms(self.clock.now());
        Ok(self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                tx.prepare_cached(
                    "INSERT INTO audit (team, id, expires_at, body) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(rusqlite::params_from_iter(values.iter()))?;
                // Expired entries go a few at a time, as DynamoDB's TTL would remove them.
                tx.execute(
                    "DELETE FROM audit WHERE (team, id) IN
                     (SELECT team, id FROM audit WHERE expires_at <= ?1 LIMIT 100)",
                    [now],
                )?;
                tx.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn list_audit(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<AuditEntry>> {
        let owner = team.to_string();
        let (team, before) = (team.to_string(), before.map(str::to_string));
        let now = unix_ms(self.clock.now());
        let listing: Listing<AuditEntry> = self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, body FROM audit WHERE team = ?1 AND (?2 IS NULL OR id < ?2)
                     AND expires_at > ?3 ORDER BY id DESC LIMIT ?4",
                )?;
                let rows = stmt.query_map(params![team, before, now, limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?;
                rows.map(|row| {
                    let (id, body) = row?;
                    Ok(Unreadable::decode("audit entry", &id, &body))
                })
                .collect()
            })
            .await?;
        Ok(listing
            .entries
            .into_iter()
            .map(|entry| {
                entry.map(|mut e: AuditEntry| {
                    e.team = owner.clone();
                    e
                })
            })
            .collect())
    }
}
