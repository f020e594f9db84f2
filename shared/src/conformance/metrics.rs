//! The `MetricStore` conformance suite: one state per (team, run, metric), replaced only by
//! a write that names the version it read, so that concurrent evaluators lose no value;
//! states expire; non-finite values and the largest window read back.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::domain::metric::{MAX_COOLDOWN_SECONDS, MAX_FIRINGS_KEPT, MAX_WINDOW, MetricState};
use crate::ports::{Clock, MetricStore, StoreError, Versioned};

use super::ManualClock;

const KEPT: Duration = Duration::from_secs(3600);

/// Runs the metric-state contract against an EMPTY store built with `clock`.
pub async fn metrics_suite(store: Arc<dyn MetricStore>, clock: Arc<ManualClock>) {
    writes_name_the_version_they_read(&*store, &clock).await;
    keys_do_not_collide(&*store, &clock).await;
    the_largest_state_reads_back(&*store, &clock).await;
    states_expire(&*store, &clock).await;
    concurrent_writers_lose_no_value(store, &clock).await;
}

fn expiry(clock: &ManualClock) -> OffsetDateTime {
    clock.now() + KEPT
}

fn state(points: &[(i64, f64)]) -> MetricState {
    let mut state = MetricState::default();
    for &(step, value) in points {
        state.window.insert(step, value, MAX_WINDOW);
    }
    state
}

async fn get(
    store: &dyn MetricStore,
    team: &str,
    run: &str,
    metric: &str,
) -> Option<Versioned<MetricState>> {
    store
        .get_metric_state(team, run, metric)
        .await
        .unwrap_or_else(|e| panic!("get_metric_state {team}/{run}/{metric}: {e}"))
}

async fn put(
    store: &dyn MetricStore,
    clock: &ManualClock,
    key: (&str, &str, &str),
    value: &MetricState,
    version: u64,
) -> Result<u64, StoreError> {
    store
        .put_metric_state(key.0, key.1, key.2, value, version, expiry(clock))
        .await
}

async fn writes_name_the_version_they_read(store: &dyn MetricStore, clock: &ManualClock) {
    let key = ("acme", "run-1", "loss");
    // GIVEN nothing THEN nothing is read
    assert_eq!(get(store, key.0, key.1, key.2).await, None);
    // WHEN a first state is written THEN it reads back at version 1
    let first = state(&[(1, 0.5)]);
    assert_eq!(
        put(store, clock, key, &first, 0)
            .await
            .expect("first write"),
        1
    );
    let read = get(store, key.0, key.1, key.2).await.expect("a state");
    assert_eq!((read.value, read.version), (first.clone(), 1));
    // AND a second create, or a write naming another version, is stale and changes nothing
    let other = state(&[(9, 9.0)]);
    for version in [0, 2, 7] {
        match put(store, clock, key, &other, version).await {
            Err(StoreError::Stale) => {}
            got => panic!("a write naming version {version} over version 1: {got:?}"),
        }
    }
    assert_eq!(
        get(store, key.0, key.1, key.2)
            .await
            .expect("a state")
            .value,
        first
    );
    // AND one naming version 1 replaces it, once
    let mut second = first.clone();
    second.window.insert(2, 0.4, MAX_WINDOW);
    second.fired("auto-1", 0, 60);
    assert_eq!(
        put(store, clock, key, &second, 1)
            .await
            .expect("second write"),
        2
    );
    assert!(matches!(
        put(store, clock, key, &other, 1).await,
        Err(StoreError::Stale)
    ));
    let read = get(store, key.0, key.1, key.2).await.expect("a state");
    assert_eq!((read.value, read.version), (second, 2));
}

async fn keys_do_not_collide(store: &dyn MetricStore, clock: &ManualClock) {
    // Runs and metrics whose names hold the separators a store might use
    let keys = [
        ("acme", "a#b", "c"),
        ("acme", "a", "b#c"),
        ("acme", "a/b", "c"),
        ("acme", "a", "b/c"),
        ("globex", "a#b", "c"),
        ("acme", "run ✓ \"1\"", "val/loss.ema"),
    ];
    for (i, key) in keys.iter().enumerate() {
        let written = state(&[(i as i64, i as f64)]);
        put(store, clock, *key, &written, 0)
            .await
            .unwrap_or_else(|e| panic!("write {key:?}: {e}"));
    }
    for (i, key) in keys.iter().enumerate() {
        let read = get(store, key.0, key.1, key.2).await.expect("a state");
        assert_eq!(read.value, state(&[(i as i64, i as f64)]), "{key:?}");
    }
    assert_eq!(get(store, "acme", "a#b", "d").await, None);
    assert_eq!(get(store, "initech", "a#b", "c").await, None);
}

async fn the_largest_state_reads_back(store: &dyn MetricStore, clock: &ManualClock) {
    // The largest window a trigger may ask for, with every kind of value, cooldowns of a
    // thousand automations, and as many firings as a state records, each naming the
    // longest event id: it must fit every store (a DynamoDB item holds 400 KB).
    let mut largest = MetricState::default();
    for step in 0..MAX_WINDOW as i64 {
        let value = match step % 4 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -1.234_567_890_123_456_7e-300,
            _ => (step as f64) * 1e300,
        };
        largest
            .window
            .insert(i64::MAX - 2 * MAX_WINDOW as i64 + step, value, MAX_WINDOW);
    }
    for a in 0..1000 {
        largest.fired(&format!("01jautomation{a:013}"), 0, MAX_COOLDOWN_SECONDS);
    }
    for f in 0..MAX_FIRINGS_KEPT + 10 {
        let event = format!("{f:x>128}");
        largest.record(
            &event,
            "01jautomation0000000000000",
            -1.5e-300,
            i64::MAX / 2,
            0,
        );
    }
    assert_eq!(largest.fired.len(), MAX_FIRINGS_KEPT);
    let key = ("acme", "the-longest-run", "the-metric");
    put(store, clock, key, &largest, 0)
        .await
        .expect("the largest state");
    let read = get(store, key.0, key.1, key.2)
        .await
        .expect("a state")
        .value;
    assert_eq!(read.window.points.len(), MAX_WINDOW);
    for (kept, read) in largest.window.points.iter().zip(&read.window.points) {
        assert_eq!(kept.0, read.0);
        assert!(
            kept.1 == read.1 || (kept.1.is_nan() && read.1.is_nan()),
            "{kept:?} read as {read:?}"
        );
    }
    assert_eq!(read.cooldowns, largest.cooldowns);
    assert_eq!(read.fired, largest.fired);
}

async fn states_expire(store: &dyn MetricStore, clock: &ManualClock) {
    let key = ("hooli", "old-run", "loss");
    put(store, clock, key, &state(&[(1, 1.0)]), 0)
        .await
        .expect("a write");
    clock.advance(KEPT + Duration::from_secs(2));
    // THEN it reads as gone, a write naming its version is stale, and a first write wins
    assert_eq!(get(store, key.0, key.1, key.2).await, None);
    assert!(matches!(
        put(store, clock, key, &state(&[(5, 5.0)]), 1).await,
        Err(StoreError::Stale)
    ));
    let fresh = state(&[(2, 2.0)]);
    assert_eq!(
        put(store, clock, key, &fresh, 0)
            .await
            .expect("over the expired one"),
        1
    );
    assert_eq!(
        get(store, key.0, key.1, key.2)
            .await
            .expect("a state")
            .value,
        fresh
    );
}

async fn concurrent_writers_lose_no_value(store: Arc<dyn MetricStore>, clock: &ManualClock) {
    // GIVEN eight writers adding their own steps to one state, each reading, adding one
    // point and writing back, again when another write came first
    const WRITERS: i64 = 8;
    const EACH: i64 = 12;
    let expires = expiry(clock);
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            for k in 0..EACH {
                let step = k * WRITERS + w;
                loop {
                    let read = store
                        .get_metric_state("acme", "busy", "loss")
                        .await
                        .expect("a read");
                    let (mut value, version) =
                        read.map_or((MetricState::default(), 0), |r| (r.value, r.version));
                    value.window.insert(step, step as f64, MAX_WINDOW);
                    match store
                        .put_metric_state("acme", "busy", "loss", &value, version, expires)
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Stale) => tokio::task::yield_now().await,
                        Err(e) => panic!("write: {e}"),
                    }
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a writer");
    }
    // THEN every point is kept, in step order, and the version counts every write
    let read = get(&*store, "acme", "busy", "loss").await.expect("a state");
    let steps: Vec<i64> = read.value.window.points.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, (0..WRITERS * EACH).collect::<Vec<_>>());
    assert_eq!(read.version, (WRITERS * EACH) as u64);
}
