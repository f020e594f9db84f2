//! The port conformance suites against the SQLite adapters on a real database file, and
//! what only SQLite promises: durability across reopening and secrets sealed at rest.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use time::OffsetDateTime;

use super::{
    Database, LocalDeadLetters, SecretsKey, SqliteAccess, SqliteJobs, SqliteMetrics, SqliteQueue,
    SqliteSecrets, SqliteSources, SqliteStore, SqliteTamper,
};
use crate::conformance::{self, ManualClock, QueueUnderTest};
use crate::ports::{Clock, DeadLetters, Queue, SecretStore, SecretValue, SystemClock};

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
    conformance::store_suite(Arc::new(store), clock, &SqliteTamper(file.db.clone())).await;
}

#[tokio::test]
async fn access_conforms() {
    let file = DbFile::new();
    let clock = manual_clock();
    let access = SqliteAccess::new(file.db.clone(), clock.clone());
    conformance::access_suite(Arc::new(access), clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_conform() {
    let file = DbFile::new();
    let clock = manual_clock();
    let metrics = SqliteMetrics::new(file.db.clone(), clock.clone());
    conformance::metrics_suite(Arc::new(metrics), clock).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_conform() {
    let file = DbFile::new();
    conformance::jobs_suite(Arc::new(SqliteJobs::new(file.db.clone()))).await;
}

#[tokio::test]
async fn sources_conform() {
    let file = DbFile::new();
    conformance::sources_suite(&SqliteSources::new(file.db.clone())).await;
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

fn events_queue(file: &DbFile, clock: &Arc<ManualClock>, name: &str) -> Arc<SqliteQueue> {
    Arc::new(SqliteQueue::new(
        file.db.clone(),
        clock.clone(),
        name,
        Duration::from_secs(30),
        2,
    ))
}

async fn dead_ids(
    dead: &LocalDeadLetters,
    queue: Option<&str>,
    before: Option<&str>,
) -> Vec<String> {
    let letters = dead.list_dead_letters(queue, 10, before).await.unwrap();
    letters.into_iter().map(|l| l.id).collect()
}

#[tokio::test]
async fn failed_messages_come_back_then_dead_letter_with_their_last_error() {
    // GIVEN a queue that dead-letters after 2 receives, and a message its receiver fails on
    let (file, clock) = (DbFile::new(), manual_clock());
    let queue = events_queue(&file, &clock, "events");
    queue.send_batch(&["poison".into()]).await.unwrap();
    for attempt in 1..=2 {
        let got = queue.receive(1, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 1, "receive {attempt}");
        // WHEN the receiver reports each failure
        let error = format!("store unavailable ({attempt})");
        queue
            .fail(&got[0].receipt, &error, Duration::from_secs(1))
            .await
            .unwrap();
        // THEN the message comes back after the backoff, not before
        assert!(queue.receive(1, Duration::ZERO).await.unwrap().is_empty());
        clock.advance(Duration::from_secs(1));
    }
    // AND once its receives are spent it is a dead letter that says why
    assert!(queue.receive(1, Duration::ZERO).await.unwrap().is_empty());
    let dead = LocalDeadLetters::new(vec![queue.clone()]);
    let letters = dead.list_dead_letters(None, 10, None).await.unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(
        (letter.queue.as_str(), letter.body.as_str()),
        ("events", "poison")
    );
    assert_eq!(letter.receive_count, 2);
    assert_eq!(letter.last_error.as_deref(), Some("store unavailable (2)"));
    assert!(
        letter.reason().contains("received 2 times"),
        "{}",
        letter.reason()
    );

    // WHEN it is redriven
    let redriven = dead.redrive(None, None).await.unwrap();
    // THEN it is back on its queue as new, and no longer a dead letter
    assert_eq!(redriven, std::slice::from_ref(&letter.id));
    assert!(dead_ids(&dead, None, None).await.is_empty());
    let back = queue.receive(1, Duration::ZERO).await.unwrap();
    assert_eq!(
        (back[0].body.as_str(), back[0].receive_count),
        ("poison", 1)
    );
}

#[tokio::test]
async fn a_message_that_cannot_be_read_is_set_aside_at_once() {
    let (file, clock) = (DbFile::new(), manual_clock());
    let queue = events_queue(&file, &clock, "events");
    queue.send_batch(&["not json".into()]).await.unwrap();
    let got = queue.receive(1, Duration::ZERO).await.unwrap();
    queue
        .dead_letter_now(&got[0].receipt, "not an event this version can read")
        .await
        .unwrap();
    clock.advance(Duration::from_secs(60));
    assert!(queue.receive(1, Duration::ZERO).await.unwrap().is_empty());
    let dead = LocalDeadLetters::new(vec![queue]);
    let letters = dead
        .list_dead_letters(Some("events"), 10, None)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].receive_count, 1);
    assert!(
        letters[0]
            .reason()
            .contains("received once; the last receiver failed on it: not an event"),
        "{}",
        letters[0].reason()
    );
}

#[tokio::test]
async fn dead_letters_of_two_queues_list_newest_first_page_and_redrive_by_id() {
    // GIVEN three dead letters on the events queue and one on the actions queue
    let (file, clock) = (DbFile::new(), manual_clock());
    let (events, actions) = (
        events_queue(&file, &clock, "events"),
        events_queue(&file, &clock, "actions"),
    );
    for (queue, body) in [
        (&events, "e1"),
        (&actions, "a1"),
        (&events, "e2"),
        (&events, "e3"),
    ] {
        queue.send_batch(&[body.to_string()]).await.unwrap();
        let got = queue.receive(1, Duration::ZERO).await.unwrap();
        queue
            .dead_letter_now(&got[0].receipt, "unreadable")
            .await
            .unwrap();
    }
    let dead = LocalDeadLetters::new(vec![events.clone(), actions.clone()]);
    assert_eq!(dead.queues(), ["events", "actions"]);
    let all = dead.list_dead_letters(None, 10, None).await.unwrap();
    let bodies: Vec<&str> = all.iter().map(|l| l.body.as_str()).collect();
    // THEN they list newest first, per queue or all, and page by id
    assert_eq!(bodies, ["e3", "e2", "a1", "e1"]);
    let ids: Vec<String> = all.iter().map(|l| l.id.clone()).collect();
    assert_eq!(
        dead_ids(&dead, Some("actions"), None).await,
        [ids[2].clone()]
    );
    let page = dead.list_dead_letters(None, 2, None).await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(dead_ids(&dead, None, Some(&page[1].id)).await, ids[2..]);
    assert!(dead_ids(&dead, None, Some("not-an-id")).await.is_empty());
    // AND a redrive by id moves just those, ignoring ids that are not dead letters
    let wanted = [ids[1].clone(), "999999".into(), "x".into()];
    let moved = dead.redrive(Some("events"), Some(&wanted)).await.unwrap();
    assert_eq!(moved, [ids[1].clone()]);
    assert_eq!(
        dead.redrive(Some("actions"), Some(&[ids[0].clone()]))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    let back = events.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(
        back.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(),
        ["e2"]
    );
    assert_eq!(
        dead_ids(&dead, None, None).await,
        [ids[0].clone(), ids[2].clone(), ids[3].clone()]
    );
}

#[tokio::test]
async fn database_files_are_private_and_an_older_schema_is_brought_up_to_date() {
    // GIVEN a database an earlier version made: world-readable, queue without error columns
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("automations.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE queue_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL,
             body TEXT NOT NULL, visible_at INTEGER NOT NULL, receive_count INTEGER NOT NULL DEFAULT 0,
             receipt TEXT, leased INTEGER NOT NULL DEFAULT 0, sent_at INTEGER NOT NULL);
             INSERT INTO queue_messages (queue, body, visible_at, sent_at) VALUES ('events', 'old', 0, 0);",
        )
        .unwrap();
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    // WHEN this version opens it
    let db = Database::open(&path).unwrap();
    let clock = manual_clock();
    let queue = Arc::new(SqliteQueue::new(
        db.clone(),
        clock.clone(),
        "events",
        Duration::from_secs(30),
        1,
    ));
    // THEN its message is still there and can fail, dead-letter and be listed
    let got = queue.receive(1, Duration::ZERO).await.unwrap();
    assert_eq!(got[0].body, "old");
    queue
        .fail(&got[0].receipt, "boom", Duration::ZERO)
        .await
        .unwrap();
    assert!(queue.receive(1, Duration::ZERO).await.unwrap().is_empty());
    let dead = LocalDeadLetters::new(vec![queue]);
    let letters = dead.list_dead_letters(None, 10, None).await.unwrap();
    assert_eq!(letters[0].last_error.as_deref(), Some("boom"));
    // AND every database file is readable by its owner only
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let file = entry.unwrap().path();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    // AND a new database is created private too
    let fresh = DbFile::new();
    let mode = std::fs::metadata(fresh.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[tokio::test]
async fn a_database_of_an_earlier_version_gets_its_executions_statuses() {
    use crate::domain::execution::ExecutionStatus;
    use crate::ports::AutomationStore;
    // GIVEN a database whose executions table has no status column, holding a failed
    // execution and a row whose body is not JSON
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("automations.db");
    let mut failed = conformance::execution("old", "auto-1", "ev-1", conformance::BASE_MS);
    failed.status = ExecutionStatus::Failed;
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE executions (team TEXT NOT NULL, id TEXT NOT NULL,
             automation_id TEXT NOT NULL, triggered_ms INTEGER NOT NULL,
             version INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (team, id))",
        )
        .unwrap();
        let insert = "INSERT INTO executions VALUES (?1, ?2, ?3, ?4, 0, ?5)";
        let body = serde_json::to_string(&failed).unwrap();
        let row = ("old", &failed.id, "auto-1", failed.triggered_at_ms, body);
        conn.execute(insert, rusqlite::params![row.0, row.1, row.2, row.3, row.4])
            .unwrap();
        let broken = (
            "old",
            "broken",
            "auto-1",
            failed.triggered_at_ms + 1,
            "not json",
        );
        conn.execute(
            insert,
            rusqlite::params![broken.0, broken.1, broken.2, broken.3, broken.4],
        )
        .unwrap();
    }

    // WHEN this version opens it
    let db = Database::open(&path).expect("an earlier database opens");
    let store = SqliteStore::new(db, system_clock());

    // THEN the failed execution is listed under its status, and the broken row as unreadable
    let listed = store
        .list_team_executions("old", Some(ExecutionStatus::Failed), 10, None)
        .await
        .unwrap();
    let ids: Vec<String> = listed.items().map(|e| e.id.clone()).collect();
    assert_eq!(ids, [failed.id.clone()]);
    let all = store
        .list_team_executions("old", None, 10, None)
        .await
        .unwrap();
    let unreadable: Vec<&str> = all.unreadable().map(|u| u.id.as_str()).collect();
    assert_eq!(unreadable, ["broken"]);
    assert_eq!(all.items().count(), 1);
}
