//! `SourceStore` on SQLite: a row per source, its name unique in its team.

use async_trait::async_trait;
use rusqlite::params;

use super::Database;
use crate::domain::source::Source;
use crate::ports::{Listing, SourceStore, StoreError, StoreResult, Unreadable};

pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sources (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (team, id),
    UNIQUE (team, name)
);
"#;

pub struct SqliteSources {
    db: Database,
}

impl SqliteSources {
    pub fn new(db: Database) -> Self {
        Self { db }
    }
}

#[async_trait]
impl SourceStore for SqliteSources {
    async fn create_source(&self, source: &Source) -> StoreResult<()> {
        let body = serde_json::to_string(source).map_err(|e| StoreError::Backend(e.to_string()))?;
        let (team, id, name) = (source.team.clone(), source.id.clone(), source.name.clone());
        let created = self
            .db
            .call(move |c| {
                Ok(c.prepare_cached(
                    "INSERT INTO sources (team, id, name, body) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![team, id, name, body])?)
            })
            .await?;
        if created == 0 {
            return Err(StoreError::Conflict(format!(
                "a source named {} exists in this team",
                source.name
            )));
        }
        Ok(())
    }

    async fn get_source(&self, team: &str, id: &str) -> StoreResult<Option<Source>> {
        let sql = "SELECT body FROM sources WHERE team = ?1 AND id = ?2";
        self.db.get_body("source", sql, team, id).await
    }

    async fn list_sources(&self, team: &str) -> StoreResult<Listing<Source>> {
        let team = team.to_string();
        let rows: Vec<(String, String)> = self
            .db
            .call(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT id, body FROM sources WHERE team = ?1 ORDER BY id")?;
                let rows = stmt.query_map([&team], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, body)| Unreadable::decode("source", &id, &body))
            .collect())
    }

    async fn delete_source(&self, team: &str, id: &str) -> StoreResult<bool> {
        let (team, id) = (team.to_string(), id.to_string());
        Ok(self
            .db
            .call(move |c| {
                Ok(
                    c.prepare_cached("DELETE FROM sources WHERE team = ?1 AND id = ?2")?
                        .execute(params![team, id])?
                        > 0,
                )
            })
            .await?)
    }
}
