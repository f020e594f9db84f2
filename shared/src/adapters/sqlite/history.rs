//! What happened in a team, newest first: its executions across automations, and its
//! evaluated events. Both are index reads, like the DynamoDB design's `by_time` and
//! `by_status` indexes.

use rusqlite::params;
use time::OffsetDateTime;

use super::store::{SqliteStore, id_and_body, listing};
use super::unix_ms;
use crate::domain::evaluation::EventRecord;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::ports::{Listing, StoreResult};

/// Run after the migrations: the executions' `status` column may be new.
pub const SCHEMA: &str = r#"
CREATE INDEX IF NOT EXISTS executions_by_team ON executions (team, triggered_ms, id);
CREATE INDEX IF NOT EXISTS executions_by_status ON executions (team, status, triggered_ms, id);
CREATE TABLE IF NOT EXISTS events_evaluated (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (team, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_evaluated_by_time ON events_evaluated (team, received_ms, id);
CREATE INDEX IF NOT EXISTS events_evaluated_by_expiry ON events_evaluated (expires_at);
"#;

impl SqliteStore {
    pub(super) async fn team_executions(
        &self,
        team: &str,
        status: Option<ExecutionStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>> {
        let team = team.to_string();
        let status = status.map(ExecutionStatus::as_str);
        let before = before.map(str::to_string);
        Ok(self
            .db
            .call(move |c| {
                // Two statements, so that each reads its own index.
                let sql = if status.is_some() {
                    "SELECT id, body FROM executions WHERE team = ?1 AND status = ?2
                     AND (?3 IS NULL OR (triggered_ms, id) <
                          (SELECT triggered_ms, id FROM executions WHERE team = ?1 AND id = ?3))
                     ORDER BY triggered_ms DESC, id DESC LIMIT ?4"
                } else {
                    "SELECT id, body FROM executions WHERE team = ?1 AND ?2 IS NULL
                     AND (?3 IS NULL OR (triggered_ms, id) <
                          (SELECT triggered_ms, id FROM executions WHERE team = ?1 AND id = ?3))
                     ORDER BY triggered_ms DESC, id DESC LIMIT ?4"
                };
                let mut stmt = c.prepare_cached(sql)?;
                let rows =
                    stmt.query_map(params![team, status, before, limit as i64], id_and_body)?;
                listing("execution", rows)
            })
            .await?)
    }

    pub(super) async fn put_event_records(
        &self,
        records: &[EventRecord],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let rows = records
            .iter()
            .map(|r| {
                let body = serde_json::to_string(r)?;
                Ok((
                    r.event.team.clone(),
                    r.id().to_string(),
                    r.event.received_at_ms,
                    body,
                ))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(|e| crate::ports::StoreError::Backend(e.to_string()))?;
        let expires = unix_ms(expires_at);
        let now = unix_ms(self.clock.now());
        Ok(self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO events_evaluated (team, id, received_ms, expires_at, body)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (team, id) DO UPDATE SET received_ms = excluded.received_ms,
                         expires_at = excluded.expires_at, body = excluded.body",
                    )?;
                    for (team, id, received, body) in &rows {
                        stmt.execute(params![team, id, received, expires, body])?;
                    }
                    // Expired records go a few at a time, as DynamoDB's TTL would remove them.
                    tx.execute(
                        "DELETE FROM events_evaluated WHERE (team, id) IN
                         (SELECT team, id FROM events_evaluated WHERE expires_at <= ?1 LIMIT 100)",
                        [now],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await?)
    }

    pub(super) async fn event_records(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<EventRecord>> {
        let team = team.to_string();
        let before = before.map(str::to_string);
        let now = unix_ms(self.clock.now());
        Ok(self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, body FROM events_evaluated WHERE team = ?1 AND expires_at > ?4
                     AND (?2 IS NULL OR (received_ms, id) <
                          (SELECT received_ms, id FROM events_evaluated WHERE team = ?1 AND id = ?2))
                     ORDER BY received_ms DESC, id DESC LIMIT ?3",
                )?;
                let rows = stmt.query_map(params![team, before, limit as i64, now], id_and_body)?;
                listing("event", rows)
            })
            .await?)
    }
}
