//! `MetricStore` on SQLite: one row per (team, run, metric), replaced only where its version
//! is the one read.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{Database, unix_ms};
use crate::domain::metric::MetricState;
use crate::ports::{Clock, MetricStore, StoreError, StoreResult, Unreadable, Versioned};

pub struct SqliteMetrics {
    db: Database,
    clock: Arc<dyn Clock>,
}

impl SqliteMetrics {
    pub fn new(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }
}

#[async_trait]
impl MetricStore for SqliteMetrics {
    async fn get_metric_state(
        &self,
        team: &str,
        run: &str,
        metric: &str,
    ) -> StoreResult<Option<Versioned<MetricState>>> {
        let key = [team.to_string(), run.to_string(), metric.to_string()];
        let now = unix_ms(self.clock.now());
        let row: Option<(i64, String)> = self
            .db
            .call(move |c| {
                Ok(c.prepare_cached(
                    "SELECT version, body FROM metric_state
                     WHERE team = ?1 AND run = ?2 AND metric = ?3 AND expires_at > ?4",
                )?
                .query_row(params![key[0], key[1], key[2], now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?)
            })
            .await?;
        let Some((version, body)) = row else {
            return Ok(None);
        };
        let id = format!("{run}/{metric}");
        let value =
            Unreadable::decode("metric state", &id, &body).map_err(StoreError::Unreadable)?;
        Ok(Some(Versioned {
            value,
            version: version as u64,
        }))
    }

    async fn put_metric_state(
        &self,
        team: &str,
        run: &str,
        metric: &str,
        state: &MetricState,
        version: u64,
        expires_at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let body = serde_json::to_string(state).map_err(|e| StoreError::Backend(e.to_string()))?;
        let key = [team.to_string(), run.to_string(), metric.to_string()];
        let (now, expires) = (unix_ms(self.clock.now()), unix_ms(expires_at));
        let next = version as i64 + 1;
        let written = self
            .db
            .call(move |c| {
                // Creates over nothing or an expired state; else replaces the version read.
                let sql = if version == 0 {
                    "INSERT INTO metric_state (team, run, metric, version, expires_at, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (team, run, metric) DO UPDATE
                     SET version = excluded.version, expires_at = excluded.expires_at, body = excluded.body
                     WHERE metric_state.expires_at <= ?7"
                } else {
                    "UPDATE metric_state SET version = ?4, expires_at = ?5, body = ?6
                     WHERE team = ?1 AND run = ?2 AND metric = ?3 AND version = ?8 AND expires_at > ?7"
                };
                let mut stmt = c.prepare_cached(sql)?;
                let changed = if version == 0 {
                    stmt.execute(params![key[0], key[1], key[2], next, expires, body, now])?
                } else {
                    stmt.execute(params![
                        key[0], key[1], key[2], next, expires, body, now, version as i64
                    ])?
                };
                Ok(changed)
            })
            .await?;
        if written == 0 {
            return Err(StoreError::Stale);
        }
        Ok(next as u64)
    }
}
