//! The embedded-storage adapters: one SQLite file (WAL) holds the store, the queues and the
//! encrypted secrets. Access paths mirror the DynamoDB design: key lookups, one index for
//! matching automations, conditional writes.

mod access;
mod history;
mod jobs;
mod metrics;
mod queue;
mod secrets;
mod sources;
mod store;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

pub use access::SqliteAccess;
pub use jobs::SqliteJobs;
pub use metrics::SqliteMetrics;
pub use queue::{LocalDeadLetters, SqliteQueue};
pub use secrets::{SecretsKey, SqliteSecrets};
pub use sources::SqliteSources;
pub use store::SqliteStore;

use crate::ports::{QueueError, StoreError};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS teams (
    name TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS automations (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    event_type TEXT NOT NULL,
    scope_key TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (team, id),
    UNIQUE (team, name)
);
CREATE INDEX IF NOT EXISTS automations_by_trigger ON automations (team, event_type, scope_key);
CREATE TABLE IF NOT EXISTS integrations (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (team, id),
    UNIQUE (team, name)
);
CREATE TABLE IF NOT EXISTS events_seen (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (team, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_seen_by_expiry ON events_seen (expires_at);
CREATE TABLE IF NOT EXISTS executions (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    automation_id TEXT NOT NULL,
    triggered_ms INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    status TEXT,
    PRIMARY KEY (team, id)
);
CREATE INDEX IF NOT EXISTS executions_by_automation ON executions (team, automation_id, triggered_ms, id);
CREATE TABLE IF NOT EXISTS secrets (
    team TEXT NOT NULL,
    name TEXT NOT NULL,
    nonce BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (team, name)
);
CREATE TABLE IF NOT EXISTS queue_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    -- 1 while a receiver holds the message; 0 once it only waits for a delay.
    leased INTEGER NOT NULL DEFAULT 0,
    sent_at INTEGER NOT NULL,
    -- What the last receiver that gave up on the message reported.
    last_error TEXT,
    -- When it moved to its dead-letter queue.
    dead_at INTEGER
);
CREATE TABLE IF NOT EXISTS api_keys (
    -- SHA-256 of the key, hex: the key itself is never stored.
    hash TEXT PRIMARY KEY,
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (team, id)
);
CREATE TABLE IF NOT EXISTS audit (
    team TEXT NOT NULL,
    id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (team, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_by_expiry ON audit (expires_at);
CREATE TABLE IF NOT EXISTS metric_state (
    team TEXT NOT NULL,
    run TEXT NOT NULL,
    metric TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (team, run, metric)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_state_by_expiry ON metric_state (expires_at);
CREATE INDEX IF NOT EXISTS queue_by_visibility ON queue_messages (queue, visible_at, id);
"#;

/// One SQLite database shared by the local adapters. Calls run on the blocking pool.
#[derive(Clone)]
pub struct Database {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DbError(String);

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError(e.to_string())
    }
}

impl From<serde_json::Error> for DbError {
    fn from(e: serde_json::Error) -> Self {
        DbError(format!("stored item is not readable: {e}"))
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        StoreError::Backend(e.0)
    }
}

impl From<DbError> for QueueError {
    fn from(e: DbError) -> Self {
        QueueError(e.0)
    }
}

impl Database {
    /// Opens (creating if needed, readable by its owner only) the database file and its
    /// schema. SQLite gives the write-ahead log and shared-memory files the database's mode.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        private_file(path).map_err(|e| DbError(format!("{}: {e}", path.display())))?;
        let conn = Connection::open(path)?;
        // WAL with synchronous=NORMAL survives a killed process (not a power cut) without
        // an fsync per commit.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Commits never checkpoint (that is where the fsyncs are): `checkpoint` does.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(jobs::SCHEMA)?;
        conn.execute_batch(sources::SCHEMA)?;
        migrate(&conn)?;
        conn.execute_batch(history::SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// Copies the write-ahead log into the database file, on a connection of its own so
    /// that statements go on meanwhile.
    pub async fn checkpoint(&self) -> Result<(), DbError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let conn = Connection::open(path)?;
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
        .map_err(|e| DbError(format!("database task failed: {e}")))?
    }

    /// Runs `f` with the connection: right here when the connection is free (statements
    /// take microseconds, and checkpoints, the slow part, run elsewhere), else on the
    /// blocking pool so that waiting for it never blocks the async workers.
    pub async fn call<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, DbError> + Send + 'static,
    {
        if let Ok(mut guard) = self.conn.try_lock() {
            return f(&mut guard);
        }
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(|e| DbError(format!("database task failed: {e}")))?
    }
}

impl Database {
    /// The item `kind` whose JSON body `sql` selects by `(team, key)` (`?1`, `?2`), decoded;
    /// one that cannot be decoded is `Unreadable`.
    pub(crate) async fn get_body<T: serde::de::DeserializeOwned>(
        &self,
        kind: &'static str,
        sql: &'static str,
        team: &str,
        key: &str,
    ) -> crate::ports::StoreResult<Option<T>> {
        use rusqlite::OptionalExtension;
        let (team, id) = (team.to_string(), key.to_string());
        let body: Option<String> = self
            .call(move |c| {
                Ok(c.prepare_cached(sql)?
                    .query_row([&team, &id], |r| r.get(0))
                    .optional()?)
            })
            .await?;
        body.map(|b| {
            crate::ports::Unreadable::decode(kind, key, &b).map_err(StoreError::Unreadable)
        })
        .transpose()
    }
}

/// Brings a database made by an earlier version up to the schema: columns added since.
fn migrate(conn: &Connection) -> Result<(), DbError> {
    let columns = conn
        .prepare("SELECT name FROM pragma_table_info('queue_messages')")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    for (column, kind) in [("last_error", "TEXT"), ("dead_at", "INTEGER")] {
        if !columns.iter().any(|c| c == column) {
            conn.execute_batch(&format!(
                "ALTER TABLE queue_messages ADD COLUMN {column} {kind}"
            ))?;
        }
    }
    // Executions keep their status in a column since the team-wide listing filters on it.
    let columns = conn
        .prepare("SELECT name FROM pragma_table_info('executions')")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    if !columns.iter().any(|c| c == "status") {
        conn.execute_batch("ALTER TABLE executions ADD COLUMN status TEXT")?;
    }
    // Rows without one get it from their body, in one transaction; a body that is not JSON
    // keeps none (it is listed as unreadable wherever it is read). Run at every open: rows
    // an earlier version wrote after a downgrade get theirs too.
    conn.execute_batch(
        "BEGIN;
         UPDATE executions SET status = json_extract(body, '$.status')
         WHERE status IS NULL AND json_valid(body);
         COMMIT;",
    )?;
    Ok(())
}

/// Opens `path` for appending, creating it with mode 0600 if missing; a file that exists
/// but is open to the group or others is narrowed to 0600, with a warning.
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "file was open to other users; narrowed to 0600");
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Writes around the store, for the conformance suite and tests (see
/// [`crate::conformance::Tamper`]).
#[cfg(any(test, feature = "conformance"))]
pub struct SqliteTamper(pub Database);

#[cfg(any(test, feature = "conformance"))]
#[async_trait::async_trait]
impl crate::conformance::Tamper for SqliteTamper {
    async fn overwrite_body(&self, kind: &str, team: &str, id: &str, body: &str) {
        let table = match kind {
            "automation" => "automations",
            "integration" => "integrations",
            "execution" => "executions",
            other => panic!("no table keeps {other} items"),
        };
        let sql = format!("UPDATE {table} SET body = ?1 WHERE team = ?2 AND id = ?3");
        let values = [body.to_string(), team.to_string(), id.to_string()];
        let changed = self
            .0
            .call(move |c| Ok(c.execute(&sql, values)?))
            .await
            .expect("overwrite failed");
        assert_eq!(changed, 1, "no {kind} {team}/{id} to overwrite");
    }
}

fn unix_ms(t: time::OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}
