//! `AutomationStore` on SQLite.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{Database, DbError, unix_ms};
use crate::domain::automation::Automation;
use crate::domain::evaluation::EventRecord;
use crate::domain::event::EventType;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::domain::integration::Integration;
use crate::ports::{
    AutomationStore, Clock, Listing, Lookup, StoreError, StoreResult, Team, Unreadable,
};

pub struct SqliteStore {
    pub(super) db: Database,
    pub(super) clock: Arc<dyn Clock>,
}

impl SqliteStore {
    pub fn new(db: Database, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Decodes one stored row; an unreadable one fails only the call that needs it.
fn decode<T: DeserializeOwned>(kind: &'static str, id: &str, body: &str) -> StoreResult<T> {
    Unreadable::decode(kind, id, body).map_err(StoreError::Unreadable)
}

/// Reads `(id, body)` rows into a listing that keeps unreadable rows as such.
pub(super) fn listing<T: DeserializeOwned>(
    kind: &'static str,
    rows: impl Iterator<Item = rusqlite::Result<(String, String)>>,
) -> Result<Listing<T>, DbError> {
    rows.map(|row| {
        let (id, body) = row?;
        Ok(Unreadable::decode(kind, &id, &body))
    })
    .collect()
}

pub(super) fn id_and_body(row: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String)> {
    Ok((row.get(0)?, row.get(1)?))
}

/// Tables whose rows are JSON bodies keyed by (team, id) with a name unique in the team.
#[derive(Clone, Copy)]
enum Table {
    Automations,
    Integrations,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Automations => "automations",
            Table::Integrations => "integrations",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Table::Automations => "automation",
            Table::Integrations => "integration",
        }
    }
}

impl SqliteStore {
    async fn get_item<T: DeserializeOwned + Send + 'static>(
        &self,
        table: Table,
        team: &str,
        id: &str,
    ) -> StoreResult<Option<T>> {
        let (team, id) = (team.to_string(), id.to_string());
        let sql = format!(
            "SELECT body FROM {} WHERE team = ?1 AND id = ?2",
            table.name()
        );
        let key = id.clone();
        let body: Option<String> = self
            .db
            .call(move |c| {
                Ok(c.prepare_cached(&sql)?
                    .query_row([&team, &id], |r| r.get(0))
                    .optional()?)
            })
            .await?;
        body.map(|b| decode(table.noun(), &key, &b)).transpose()
    }

    async fn list_items<T: DeserializeOwned + Send + 'static>(
        &self,
        table: Table,
        team: &str,
    ) -> StoreResult<Listing<T>> {
        let team = team.to_string();
        let sql = format!(
            "SELECT id, body FROM {} WHERE team = ?1 ORDER BY id",
            table.name()
        );
        Ok(self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(&sql)?;
                listing(table.noun(), stmt.query_map([team], id_and_body)?)
            })
            .await?)
    }

    async fn delete_item(&self, table: Table, team: &str, id: &str) -> StoreResult<bool> {
        let (team, id) = (team.to_string(), id.to_string());
        let sql = format!("DELETE FROM {} WHERE team = ?1 AND id = ?2", table.name());
        Ok(self
            .db
            .call(move |c| Ok(c.execute(&sql, [team, id])? > 0))
            .await?)
    }

    /// Inserts (`create`) or updates a row; `columns` are the table's extra key columns
    /// after team, id and name, with their values.
    async fn put_item<T: Serialize>(
        &self,
        table: Table,
        item: &T,
        key: (&str, &str, &str),
        columns: &[(&'static str, String)],
        create: bool,
    ) -> StoreResult<()> {
        let body = serde_json::to_string(item).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (team, id, name) = (key.0.to_string(), key.1.to_string(), key.2.to_string());
        let names: Vec<&str> = columns.iter().map(|(c, _)| *c).collect();
        let sql = if create {
            let marks: Vec<String> = (4..=names.len() + 4).map(|i| format!("?{i}")).collect();
            format!(
                "INSERT INTO {} (team, id, name, {}body) VALUES (?1, ?2, ?3, {})",
                table.name(),
                names.iter().map(|n| format!("{n}, ")).collect::<String>(),
                marks.join(", ")
            )
        } else {
            let sets: String = names
                .iter()
                .enumerate()
                .map(|(i, n)| format!("{n} = ?{}, ", i + 4))
                .collect();
            format!(
                "UPDATE {} SET name = ?3, {sets}body = ?{} WHERE team = ?1 AND id = ?2",
                table.name(),
                names.len() + 4
            )
        };
        let mut values = vec![team, id, name];
        values.extend(columns.iter().map(|(_, v)| v.clone()));
        values.push(body);
        self.db
            .call(move |c| {
                let noun = table.noun();
                match c.execute(&sql, rusqlite::params_from_iter(values.iter())) {
                    Ok(0) => Ok(Err(StoreError::Conflict(format!(
                        "{noun} {} does not exist",
                        values[1]
                    )))),
                    Ok(_) => Ok(Ok(())),
                    Err(e) if is_unique_violation(&e) => Ok(Err(StoreError::Conflict(format!(
                        "an {noun} named {} exists in this team",
                        values[2]
                    )))),
                    Err(e) => Err(e.into()),
                }
            })
            .await?
    }
}

#[async_trait]
impl AutomationStore for SqliteStore {
    async fn create_team(&self, team: &Team) -> StoreResult<()> {
        let team = team.clone();
        let inserted = self
            .db
            .call(move |c| {
                Ok(c.execute(
                    "INSERT INTO teams (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![team.name, team.created_at],
                )?)
            })
            .await?;
        if inserted == 0 {
            return Err(StoreError::Conflict("a team with this name exists".into()));
        }
        Ok(())
    }

    async fn get_team(&self, name: &str) -> StoreResult<Option<Team>> {
        let name = name.to_string();
        Ok(self
            .db
            .call(move |c| {
                Ok(c.query_row(
                    "SELECT name, created_at FROM teams WHERE name = ?1",
                    [name],
                    |r| {
                        Ok(Team {
                            name: r.get(0)?,
                            created_at: r.get(1)?,
                        })
                    },
                )
                .optional()?)
            })
            .await?)
    }

    async fn list_teams(&self) -> StoreResult<Vec<Team>> {
        Ok(self
            .db
            .call(|c| {
                let mut stmt = c.prepare("SELECT name, created_at FROM teams ORDER BY name")?;
                let rows = stmt.query_map([], |r| {
                    Ok(Team {
                        name: r.get(0)?,
                        created_at: r.get(1)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?)
    }

    async fn put_automation(&self, automation: &Automation, create: bool) -> StoreResult<()> {
        let a = automation;
        let columns = [
            ("event_type", a.spec.index_type().to_string()),
            ("scope_key", a.spec.scope.key()),
        ];
        self.put_item(
            Table::Automations,
            a,
            (&a.team, &a.id, &a.spec.name),
            &columns,
            create,
        )
        .await
    }

    async fn get_automation(&self, team: &str, id: &str) -> StoreResult<Option<Automation>> {
        self.get_item(Table::Automations, team, id).await
    }

    async fn list_automations(&self, team: &str) -> StoreResult<Listing<Automation>> {
        self.list_items(Table::Automations, team).await
    }

    async fn delete_automation(&self, team: &str, id: &str) -> StoreResult<bool> {
        self.delete_item(Table::Automations, team, id).await
    }

    async fn matching_automations(&self, lookups: &[Lookup]) -> StoreResult<Vec<Vec<Automation>>> {
        let lookups = lookups.to_vec();
        Ok(self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, body FROM automations WHERE team = ?1 AND event_type = ?2 AND scope_key = ?3",
                )?;
                // Lookups of one call read each (team, type, scope key) once.
                let mut filed: HashMap<(&str, EventType, &str), Vec<Automation>> = HashMap::new();
                let mut out = Vec::with_capacity(lookups.len());
                for lookup in &lookups {
                    let mut found = Vec::new();
                    for key in &lookup.scope_keys {
                        let index = (lookup.team.as_str(), lookup.event_type, key.as_str());
                        if let std::collections::hash_map::Entry::Vacant(slot) = filed.entry(index) {
                            let rows = stmt.query_map(
                                params![lookup.team, lookup.event_type.as_str(), key],
                                id_and_body,
                            )?;
                            let found: Listing<Automation> = listing("automation", rows)?;
                            slot.insert(found.into_items(&lookup.team));
                        }
                        found.extend(filed[&index].iter().cloned());
                    }
                    out.push(found);
                }
                Ok(out)
            })
            .await?)
    }

    async fn put_integration(&self, integration: &Integration, create: bool) -> StoreResult<()> {
        let i = integration;
        self.put_item(
            Table::Integrations,
            i,
            (&i.team, &i.id, &i.name),
            &[],
            create,
        )
        .await
    }

    async fn get_integration(&self, team: &str, id: &str) -> StoreResult<Option<Integration>> {
        self.get_item(Table::Integrations, team, id).await
    }

    async fn list_integrations(&self, team: &str) -> StoreResult<Listing<Integration>> {
        self.list_items(Table::Integrations, team).await
    }

    async fn delete_integration(&self, team: &str, id: &str) -> StoreResult<bool> {
        self.delete_item(Table::Integrations, team, id).await
    }

    async fn seen_events(&self, team: &str, ids: &[String]) -> StoreResult<HashSet<String>> {
        let team = team.to_string();
        let ids = ids.to_vec();
        let now = unix_ms(self.clock.now());
        Ok(self
            .db
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT 1 FROM events_seen WHERE team = ?1 AND id = ?2 AND expires_at > ?3",
                )?;
                let mut seen = HashSet::new();
                for id in ids {
                    if stmt.exists(params![team, id, now])? {
                        seen.insert(id);
                    }
                }
                Ok(seen)
            })
            .await?)
    }

    async fn record_events(
        &self,
        team: &str,
        ids: &[String],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let team = team.to_string();
        let ids = ids.to_vec();
        let expires = unix_ms(expires_at);
        let now = unix_ms(self.clock.now());
        Ok(self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO events_seen (team, id, expires_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (team, id) DO UPDATE SET expires_at = excluded.expires_at",
                    )?;
                    for id in &ids {
                        stmt.execute(params![team, id, expires])?;
                    }
                    // Expired ids go a few at a time, as DynamoDB's TTL would remove them.
                    tx.execute(
                        "DELETE FROM events_seen WHERE (team, id) IN
                         (SELECT team, id FROM events_seen WHERE expires_at <= ?1 LIMIT 100)",
                        [now],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .await?)
    }

    async fn record_evaluations(
        &self,
        records: &[EventRecord],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.put_event_records(records, expires_at).await
    }

    async fn list_events(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<EventRecord>> {
        self.event_records(team, limit, before).await
    }

    async fn create_executions(&self, executions: &[Execution]) -> Vec<StoreResult<bool>> {
        let rows: Vec<_> = executions
            .iter()
            .map(|e| {
                (
                    e.team.clone(),
                    e.id.clone(),
                    e.automation_id.clone(),
                    e.triggered_at_ms,
                    e.version,
                    serde_json::to_string(e).map_err(|e| e.to_string()),
                    e.status.as_str(),
                )
            })
            .collect();
        let count = rows.len();
        let written = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let mut created = Vec::with_capacity(rows.len());
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT INTO executions (team, id, automation_id, triggered_ms, version, body, status)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                    )?;
                    for (team, id, automation, triggered, version, body, status) in &rows {
                        // A row that cannot be written fails alone; the others commit.
                        created.push(body.clone().and_then(|body| {
                            let version = *version as i64;
                            let values =
                                params![team, id, automation, triggered, version, body, status];
                            stmt.execute(values).map(|n| n > 0).map_err(|e| e.to_string())
                        }));
                    }
                }
                tx.commit()?;
                Ok(created)
            })
            .await;
        match written {
            Ok(created) => created
                .into_iter()
                .map(|r| r.map_err(StoreError::Backend))
                .collect(),
            Err(e) => (0..count)
                .map(|_| Err(StoreError::Backend(e.to_string())))
                .collect(),
        }
    }

    async fn get_execution(&self, team: &str, id: &str) -> StoreResult<Option<Execution>> {
        let sql = "SELECT body FROM executions WHERE team = ?1 AND id = ?2";
        self.db.get_body("execution", sql, team, id).await
    }

    async fn update_execution(&self, execution: &mut Execution) -> StoreResult<()> {
        let expected = execution.version;
        let mut next = execution.clone();
        next.version = expected + 1;
        let body = serde_json::to_string(&next).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (team, id, status) = (next.team.clone(), next.id.clone(), next.status.as_str());
        let updated = self
            .db
            .call(move |c| {
                Ok(c.prepare_cached(
                    "UPDATE executions SET version = ?3, body = ?4, status = ?6
                     WHERE team = ?1 AND id = ?2 AND version = ?5",
                )?
                .execute(params![
                    team,
                    id,
                    (expected + 1) as i64,
                    body,
                    expected as i64,
                    status
                ])?)
            })
            .await?;
        if updated == 0 {
            return Err(StoreError::Stale);
        }
        execution.version = expected + 1;
        Ok(())
    }

    async fn list_executions(
        &self,
        team: &str,
        automation_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>> {
        let (team, automation) = (team.to_string(), automation_id.to_string());
        let before = before.map(str::to_string);
        Ok(self
            .db
            .call(move |c| {
                // Newest first; a page starts after the execution named by `before`.
                let mut stmt = c.prepare_cached(
                    "SELECT id, body FROM executions WHERE team = ?1 AND automation_id = ?2
                     AND (?3 IS NULL OR (triggered_ms, id) <
                          (SELECT triggered_ms, id FROM executions WHERE team = ?1 AND id = ?3))
                     ORDER BY triggered_ms DESC, id DESC LIMIT ?4",
                )?;
                let rows =
                    stmt.query_map(params![team, automation, before, limit as i64], id_and_body)?;
                listing("execution", rows)
            })
            .await?)
    }

    async fn list_team_executions(
        &self,
        team: &str,
        status: Option<ExecutionStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>> {
        self.team_executions(team, status, limit, before).await
    }
}
