//! The port conformance suites against the SQLite adapters on a real database file, and
//! what only SQLite promises: durability across reopening and secrets sealed at rest.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use time::OffsetDateTime;

use super::{Database, SecretsKey, SqliteQueue, SqliteSecrets, SqliteStore};
use crate::conformance::{self, ManualClock, QueueUnderTest};
use crate::ports::{Clock, Queue, SecretStore, SecretValue, SystemClock};

/// A database file in a directory that lives as long as the fixture.
struct DbFile {
    dir: TempDir,
    db: Database,
}

impl DbFile {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(&dir.path().join("automations.db")).unwrap();
        Self { dir, db }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("automations.db")
    }
}

fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(OffsetDateTime::now_utc()))
}

fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

#[tokio::test]
async fn queue_conforms() {
    let file = DbFile::new();
    // Every queue of the suite is new, and all share the one database file.
    let made = AtomicUsize::new(0);
    conformance::queue_suite(|clock, visibility, max_receives| {
        let name = format!("events-{}", made.fetch_add(1, Ordering::Relaxed));
        let queue = SqliteQueue::new(file.db.clone(), clock, &name, visibility, max_receives);
        QueueUnderTest {
            stale_receipts_delete: false,
            dead_letter: Arc::new(queue.dead_letter_queue()),
            queue: Arc::new(queue),
        }
    })
    .await;
}

#[tokio::test]
async fn store_conforms() {
    let file = DbFile::new();
    let clock = manual_clock();
    let store = SqliteStore::new(file.db.clone(), clock.clone());
    conformance::store_suite(Arc::new(store), clock).await;
}

#[tokio::test]
async fn secrets_conform() {
    let file = DbFile::new();
    let secrets = SqliteSecrets::new(file.db.clone(), &SecretsKey::ephemeral(), system_clock());
    conformance::secrets_suite(Arc::new(secrets)).await;
}

#[tokio::test]
async fn queued_messages_survive_reopening_the_database() {
    // GIVEN three messages sent, one of them received and deleted
    let file = DbFile::new();
    let clock = manual_clock();
    let open_queue =
        |db: Database| SqliteQueue::new(db, clock.clone(), "events", Duration::from_secs(30), 5);
    let queue = open_queue(file.db.clone());
    let bodies = ["done", "kept-1", "kept-2"].map(String::from);
    queue.send_batch(&bodies).await.unwrap();
    let done = queue.receive(1, Duration::ZERO).await.unwrap();
    queue
        .delete_batch(&[done[0].receipt.clone()])
        .await
        .unwrap();
    // WHEN everything is dropped and the file opened again
    drop(queue);
    let DbFile { dir, db } = file;
    drop(db);
    let reopened = open_queue(Database::open(&dir.path().join("automations.db")).unwrap());
    // THEN the other two are still there, and the deleted one is not
    let got = reopened.receive(10, Duration::ZERO).await.unwrap();
    let got: Vec<&str> = got.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(got, ["kept-1", "kept-2"]);
}

/// Every value in the `secrets` table, as raw bytes, read past the adapter.
fn raw_secret_rows(path: &Path) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT CAST(team AS BLOB), CAST(name AS BLOB), nonce, ciphertext, CAST(updated_at AS BLOB) FROM secrets")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            (0..5)
                .map(|i| r.get::<_, Vec<u8>>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    rows.flat_map(Result::unwrap).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    // GIVEN a secret written through the adapter
    let file = DbFile::new();
    let key = SecretsKey::ephemeral();
    let secrets = SqliteSecrets::new(file.db.clone(), &key, system_clock());
    let value = "correct horse battery staple";
    secrets
        .put_secret("acme", "API_TOKEN", &SecretValue(value.into()))
        .await
        .unwrap();
    // THEN its value occurs neither in the table nor anywhere in the database files
    let rows = raw_secret_rows(&file.path());
    assert_eq!(rows.len(), 5, "one row of five columns");
    assert!(!rows.iter().any(|column| contains(column, value.as_bytes())));
    for entry in std::fs::read_dir(file.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !contains(&bytes, value.as_bytes()),
            "plaintext in {}",
            path.display()
        );
    }
    // AND another key cannot open it, while the same key can
    let other = SqliteSecrets::new(file.db.clone(), &SecretsKey::ephemeral(), system_clock());
    assert!(other.get_secret("acme", "API_TOKEN").await.is_err());
    let same = SqliteSecrets::new(file.db.clone(), &key, system_clock());
    let read = same.get_secret("acme", "API_TOKEN").await.unwrap();
    assert_eq!(read.map(|v| v.0).as_deref(), Some(value));
}

#[tokio::test]
async fn secrets_key_file_is_created_private_and_read_back() {
    // GIVEN no key file
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.key");
    // WHEN the key is loaded twice
    let created = SecretsKey::load_or_create(&path).unwrap();
    let loaded = SecretsKey::load_or_create(&path).unwrap();
    // THEN the file holds 32 bytes that only the owner can read or write
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    // AND both loads are the same key: what one seals, the other opens
    let file = DbFile::new();
    let db = file.db.clone();
    let sealer = SqliteSecrets::new(db.clone(), &created, system_clock());
    sealer
        .put_secret("acme", "K", &SecretValue("v".into()))
        .await
        .unwrap();
    let opener = SqliteSecrets::new(db, &loaded, system_clock());
    let read = opener.get_secret("acme", "K").await.unwrap();
    assert_eq!(read.map(|v| v.0).as_deref(), Some("v"));
}

#[test]
fn secrets_key_file_readable_by_others_is_refused() {
    for mode in [0o640, 0o604, 0o644, 0o660] {
        // GIVEN a key file that group or world can read or write
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        SecretsKey::load_or_create(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        // THEN it is not used
        let loaded = SecretsKey::load_or_create(&path);
        assert!(
            loaded.is_err(),
            "a key file with mode {mode:o} was accepted"
        );
    }
}

#[tokio::test]
async fn a_restart_releases_held_messages_but_keeps_retry_delays() {
    // GIVEN one message held by a receiver and one waiting an hour for its retry
    let file = DbFile::new();
    let clock = manual_clock();
    let queue = SqliteQueue::new(
        file.db.clone(),
        clock.clone(),
        "actions",
        Duration::from_secs(60),
        10,
    );
    queue
        .send_batch(&["held".into(), "delayed".into()])
        .await
        .unwrap();
    let got = queue.receive(2, Duration::ZERO).await.unwrap();
    let delayed = got.iter().find(|m| m.body == "delayed").unwrap();
    queue
        .change_visibility(&delayed.receipt, Duration::from_secs(3600))
        .await
        .unwrap();

    // WHEN the process that held them is gone and a new one recovers
    let released = queue.release_abandoned().await.unwrap();

    // THEN the held message is visible at once and the delayed one still waits
    assert_eq!(released, 1);
    let again = queue.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(
        again.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["held"]
    );
    assert_eq!(again[0].receive_count, 2);
    queue
        .delete_batch(&[again[0].receipt.clone()])
        .await
        .unwrap();
    clock.advance(Duration::from_secs(3601));
    let later = queue.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(
        later.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        vec!["delayed"]
    );
}
