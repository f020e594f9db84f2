//! The team-wide listings of the `AutomationStore` contract: a team's executions across
//! its automations (all, or of one status) and its evaluated events, newest first, paged.

use std::time::Duration;

use serde_json::json;

use super::ManualClock;
use super::store::{BASE_MS, execution};
use crate::domain::automation::Mismatch;
use crate::domain::evaluation::{EventRecord, Fired, NotFired};
use crate::domain::event::{Event, EventInput};
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::ports::{AutomationStore, Clock};

pub(super) async fn history_suite(store: &dyn AutomationStore, clock: &ManualClock) {
    team_executions_page_newest_first_by_status(store).await;
    evaluated_events_page_newest_first_and_expire(store, clock).await;
}

async fn team_ids(
    store: &dyn AutomationStore,
    team: &str,
    status: Option<ExecutionStatus>,
    limit: usize,
    before: Option<&str>,
) -> Vec<String> {
    store
        .list_team_executions(team, status, limit, before)
        .await
        .expect("list_team_executions failed")
        .entries
        .into_iter()
        .map(|e| e.map_or_else(|bad| bad.id, |e| e.id))
        .collect()
}

/// Pages through a listing `limit` at a time, checking each page is full but the last.
async fn all_pages<F, Fut>(limit: usize, page: F) -> Vec<String>
where
    F: Fn(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let (mut all, mut before) = (Vec::new(), None);
    loop {
        let got = page(before.clone()).await;
        assert!(got.len() <= limit, "a page holds at most its limit");
        let full = got.len() == limit;
        before = got.last().cloned();
        all.extend(got);
        if !full {
            return all;
        }
    }
}

async fn team_executions_page_newest_first_by_status(store: &dyn AutomationStore) {
    // GIVEN 7 executions of three automations of one team, created out of order, some of
    // them then finished or failed, and another team's
    let team = "wide";
    let mut mine: Vec<Execution> = (0..7)
        .map(|i| {
            let automation = format!("auto-{}", i % 3);
            execution(team, &automation, &format!("ev-{i}"), BASE_MS + i * 1000)
        })
        .collect();
    let mut batch = mine.clone();
    batch.reverse();
    batch.push(execution("wide-other", "auto-0", "ev-0", BASE_MS + 500));
    let created = store.create_executions(&batch).await;
    assert!(created.iter().all(|c| matches!(c, Ok(true))), "{created:?}");
    for (i, e) in mine.iter_mut().enumerate() {
        let status = match i % 3 {
            0 => ExecutionStatus::Failed,
            1 => ExecutionStatus::Finished,
            _ => continue,
        };
        e.status = status;
        store
            .update_execution(e)
            .await
            .expect("update_execution failed");
    }
    let newest_first = |filter: Option<ExecutionStatus>| -> Vec<String> {
        mine.iter()
            .rev()
            .filter(|e| filter.is_none_or(|s| e.status == s))
            .map(|e| e.id.clone())
            .collect()
    };

    // THEN the team's executions come newest first across its automations, and only its own
    assert_eq!(
        team_ids(store, team, None, 50, None).await,
        newest_first(None)
    );
    // AND they page by 3 with `before`
    let paged = all_pages(3, |before| async move {
        team_ids(store, team, None, 3, before.as_deref()).await
    })
    .await;
    assert_eq!(paged, newest_first(None));
    // AND a status filter lists the executions now of that status, paged too: an update
    // moves an execution between statuses
    for status in [
        ExecutionStatus::Pending,
        ExecutionStatus::Finished,
        ExecutionStatus::Failed,
    ] {
        let paged = all_pages(2, |before| async move {
            team_ids(store, team, Some(status), 2, before.as_deref()).await
        })
        .await;
        assert_eq!(paged, newest_first(Some(status)), "{status:?}");
    }
    // AND the records read back whole
    let listed = store
        .list_team_executions(team, Some(ExecutionStatus::Failed), 1, None)
        .await
        .expect("list_team_executions failed");
    let newest_failed = mine
        .iter()
        .rev()
        .find(|e| e.status == ExecutionStatus::Failed);
    let first = listed
        .entries
        .into_iter()
        .next()
        .map(|e| e.expect("unreadable"));
    assert_eq!(first.as_ref(), newest_failed);
    // AND a cursor that names no execution, or another team, gives nothing
    assert!(
        team_ids(store, team, None, 5, Some("nope"))
            .await
            .is_empty()
    );
    assert!(team_ids(store, "wide-none", None, 5, None).await.is_empty());
    assert_eq!(team_ids(store, "wide-other", None, 5, None).await.len(), 1);
}

fn event(team: &str, id: &str, received_ms: i64, alias: &str) -> Event {
    let input: EventInput = serde_json::from_value(json!({
        "id": id, "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model", "author": "alice",
        "artifact": {"collection": "resnet", "version": "v4", "alias": alias,
                     "metadata": {"note": "<img src=x onerror=alert(1)>"}}
    }))
    .expect("a valid event");
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(received_ms) * 1_000_000)
        .expect("a valid time");
    input
        .validate(team, id.to_string(), at)
        .expect("a valid event")
}

fn record(team: &str, id: &str, received_ms: i64) -> EventRecord {
    let fired = vec![Fired {
        automation_id: "a-1".into(),
        automation_name: "deploy".into(),
        execution_id: format!("x-{id}"),
    }];
    let not_fired = vec![NotFired::new(
        "a-2",
        "notify",
        Mismatch::new(
            "filter",
            Some("alias".into()),
            "the alias is not production",
        ),
    )];
    EventRecord::new(
        event(team, id, received_ms, "staging"),
        received_ms + 5,
        fired,
        not_fired,
    )
}

async fn event_ids(
    store: &dyn AutomationStore,
    team: &str,
    limit: usize,
    before: Option<&str>,
) -> Vec<String> {
    store
        .list_events(team, limit, before)
        .await
        .expect("list_events failed")
        .entries
        .into_iter()
        .map(|e| e.map_or_else(|bad| bad.id, |e| e.event.id))
        .collect()
}

async fn evaluated_events_page_newest_first_and_expire(
    store: &dyn AutomationStore,
    clock: &ManualClock,
) {
    // GIVEN 6 evaluated events of a team recorded out of order in two calls (one of them
    // twice), kept for a minute, and another team's kept for an hour
    let team = "recent";
    let records: Vec<EventRecord> = (0..6)
        .map(|i| record(team, &format!("ev-{i}"), BASE_MS + i * 1000))
        .collect();
    let minute = clock.now() + Duration::from_secs(60);
    let hour = clock.now() + Duration::from_secs(3600);
    let first = [records[3].clone(), records[0].clone(), records[5].clone()];
    store
        .record_evaluations(&first, minute)
        .await
        .expect("record_evaluations failed");
    // A redelivered event is evaluated again: its record is replaced, not doubled.
    let mut again = records[0].clone();
    again.evaluated_at_ms += 1000;
    let second = [
        records[1].clone(),
        again.clone(),
        records[4].clone(),
        records[2].clone(),
        record("recent-other", "ev-0", BASE_MS),
    ];
    store
        .record_evaluations(&second, minute)
        .await
        .expect("record_evaluations failed");
    store
        .record_evaluations(&[record("recent-later", "ev-9", BASE_MS)], hour)
        .await
        .expect("record_evaluations failed");
    let newest_first: Vec<String> = (0..6).rev().map(|i| format!("ev-{i}")).collect();

    // THEN they come newest first, once each, paged by 4 with `before`
    assert_eq!(event_ids(store, team, 50, None).await, newest_first);
    let paged = all_pages(4, |before| async move {
        event_ids(store, team, 4, before.as_deref()).await
    })
    .await;
    assert_eq!(paged, newest_first);
    // AND each reads back whole, the replaced one as written last
    let listed = store
        .list_events(team, 50, None)
        .await
        .expect("list_events failed");
    let oldest = listed
        .entries
        .last()
        .cloned()
        .map(|e| e.expect("unreadable"));
    assert_eq!(oldest, Some(again));
    let newest = listed
        .entries
        .first()
        .cloned()
        .map(|e| e.expect("unreadable"));
    assert_eq!(newest.as_ref(), records.last());
    // AND teams keep their own; a cursor naming no event gives nothing
    assert_eq!(event_ids(store, "recent-other", 50, None).await, ["ev-0"]);
    assert!(event_ids(store, team, 5, Some("nope")).await.is_empty());
    // WHEN their minute is over THEN they are no longer listed, and the others still are
    clock.advance(Duration::from_secs(61));
    assert!(event_ids(store, team, 50, None).await.is_empty());
    assert_eq!(event_ids(store, "recent-later", 50, None).await, ["ev-9"]);
}
