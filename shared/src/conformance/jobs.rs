//! The `JobStore` conformance suite: queues are unique and count their open jobs; a job is
//! enqueued once; claims take pending jobs in enqueue order, each job once however many
//! claim at a time; a lease that runs out goes to the next claim with the next attempt,
//! and on the last attempt fails the job; a completion on a lost lease changes nothing;
//! listings by status, newest first, page.
//!
//! The claims, heartbeats and completions go through the functions the jobs use case
//! serves them with ([`take_next`], [`heartbeat_job`], [`complete_job`]), so what is proven
//! here is what the API does on that adapter.

use std::sync::Arc;

use serde_json::json;

use crate::domain::job::{Completion, Job, JobQueue, JobSpec, JobStatus, LeaseRef};
use crate::ports::{Enqueued, JobStore, StoreError};
use crate::usecases::jobs::{LeaseError, complete_job, heartbeat_job, take_next};

const T0: i64 = 1_800_000_000_000;
const LEASE_MS: i64 = 60_000;

/// Runs the job-store contract against an EMPTY store.
pub async fn jobs_suite(store: Arc<dyn JobStore>) {
    queues_are_unique_and_listed(&*store).await;
    a_job_is_enqueued_once_and_only_on_a_queue(&*store).await;
    claims_take_pending_jobs_in_enqueue_order(&*store).await;
    concurrent_claims_lease_each_job_once(store.clone()).await;
    an_expired_lease_goes_to_the_next_claim(&*store).await;
    a_completion_on_a_lost_lease_changes_nothing(&*store).await;
    the_last_expired_lease_fails_the_job(&*store).await;
    listings_by_status_are_newest_first_and_page(&*store).await;
    a_queue_is_deleted_only_once_its_jobs_ended(&*store).await;
    the_largest_job_reads_back(&*store).await;
}

async fn queue(store: &dyn JobStore, team: &str, name: &str) {
    store
        .create_queue(&JobQueue {
            team: team.into(),
            name: name.into(),
            created_at: "2027-01-15T08:00:00Z".into(),
        })
        .await
        .unwrap_or_else(|e| panic!("create_queue {team}/{name}: {e}"));
}

fn job(team: &str, queue: &str, id: &str, enqueued_ms: i64, max_attempts: u64) -> Job {
    let spec = JobSpec {
        queue: queue.into(),
        job: "eval".into(),
        overrides: json!({}),
        max_attempts,
        lease_seconds: (LEASE_MS / 1000) as u64,
    };
    Job::new(
        id.into(),
        team,
        &spec,
        json!({"model": "resnet", "quote": "\"'\\<>"}),
        json!({"event_id": "e1", "alias": "production"}),
        &format!("exec-{id}"),
        "auto-1",
        enqueued_ms,
    )
}

async fn enqueue(store: &dyn JobStore, job: &Job) -> Enqueued {
    store
        .enqueue(job)
        .await
        .unwrap_or_else(|e| panic!("enqueue {}: {e}", job.id))
}

async fn get(store: &dyn JobStore, team: &str, id: &str) -> Job {
    store
        .get_job(team, id)
        .await
        .unwrap_or_else(|e| panic!("get_job {id}: {e}"))
        .unwrap_or_else(|| panic!("job {id} is stored"))
}

async fn claim(
    store: &dyn JobStore,
    team: &str,
    queue: &str,
    agent: &str,
    now: i64,
) -> Option<Job> {
    let taken = take_next(store, team, queue, Some(agent), now).await;
    if let Some(e) = taken.error {
        panic!("claim on {team}/{queue}: {e}");
    }
    taken.claimed
}

fn done(status: &str, attempt: Option<u64>, agent: &str) -> Completion {
    Completion {
        status: status.into(),
        exit_code: Some(0),
        output: Some("ok\n".into()),
        attempt,
        agent: Some(agent.into()),
    }
}

async fn queues_are_unique_and_listed(store: &dyn JobStore) {
    queue(store, "q-names", "gpu-b").await;
    queue(store, "q-names", "gpu-a").await;
    queue(store, "q-other", "gpu-a").await;
    let again = store
        .create_queue(&JobQueue {
            team: "q-names".into(),
            name: "gpu-a".into(),
            created_at: String::new(),
        })
        .await;
    assert!(
        matches!(again, Err(StoreError::Conflict(_))),
        "a second queue of one name in a team must be a conflict, got {again:?}"
    );
    let names: Vec<String> = store
        .list_queues("q-names")
        .await
        .expect("list_queues")
        .items()
        .map(|q| q.name.clone())
        .collect();
    assert_eq!(
        names,
        ["gpu-a", "gpu-b"],
        "a team's queues, by name, its own only"
    );
    let found = store
        .get_queue("q-names", "gpu-a")
        .await
        .expect("get_queue");
    assert_eq!(
        found.map(|q| q.created_at),
        Some("2027-01-15T08:00:00Z".into())
    );
    assert!(
        store
            .get_queue("q-names", "gpu-c")
            .await
            .expect("get_queue")
            .is_none()
    );
}

async fn a_job_is_enqueued_once_and_only_on_a_queue(store: &dyn JobStore) {
    queue(store, "q-once", "gpu").await;
    let first = job("q-once", "gpu", "j1", T0, 3);
    assert_eq!(enqueue(store, &first).await, Enqueued::Created);
    assert_eq!(
        enqueue(store, &first).await,
        Enqueued::Existed,
        "a second enqueue of one job id must not add a job"
    );
    let stored = get(store, "q-once", "j1").await;
    assert_eq!((stored.status, stored.attempt), (JobStatus::Pending, 0));
    assert_eq!(
        stored.overrides, first.overrides,
        "overrides read back exactly"
    );
    assert_eq!(stored.event, first.event);
    let listed = store
        .list_jobs("q-once", "gpu", None, 10, None)
        .await
        .expect("list_jobs");
    assert_eq!(listed.items().count(), 1, "one job, however often enqueued");
    assert_eq!(
        enqueue(store, &job("q-once", "nope", "j2", T0, 3)).await,
        Enqueued::NoQueue,
        "a job is only enqueued on a queue that exists"
    );
    assert!(
        store
            .get_job("q-once", "j2")
            .await
            .expect("get_job")
            .is_none()
    );
    assert!(
        store
            .get_job("q-other", "j1")
            .await
            .expect("get_job")
            .is_none(),
        "jobs are kept per team"
    );
}

async fn claims_take_pending_jobs_in_enqueue_order(store: &dyn JobStore) {
    queue(store, "q-order", "gpu").await;
    queue(store, "q-order", "cpu").await;
    // Enqueued out of id order: the enqueue time decides.
    for (id, at) in [("c", T0 + 1), ("a", T0 + 3), ("b", T0 + 2)] {
        enqueue(store, &job("q-order", "gpu", id, at, 3)).await;
    }
    enqueue(store, &job("q-order", "cpu", "other", T0, 3)).await;
    let mut order = Vec::new();
    while let Some(job) = claim(store, "q-order", "gpu", "box-1", T0 + 10).await {
        assert_eq!((job.status, job.attempt), (JobStatus::Running, 1));
        assert_eq!(job.agent.as_deref(), Some("box-1"));
        assert_eq!(job.lease_expires_at_ms, Some(T0 + 10 + LEASE_MS));
        order.push(job.id);
    }
    assert_eq!(
        order,
        ["c", "b", "a"],
        "pending jobs go out in enqueue order"
    );
    let stored = get(store, "q-order", "c").await;
    assert_eq!(stored.status, JobStatus::Running, "a claim is stored");
    let other = claim(store, "q-order", "cpu", "box-1", T0 + 10).await;
    assert_eq!(
        other.map(|j| j.id).as_deref(),
        Some("other"),
        "queues are apart"
    );
}

async fn concurrent_claims_lease_each_job_once(store: Arc<dyn JobStore>) {
    queue(&*store, "q-race", "gpu").await;
    for i in 0..3 {
        enqueue(&*store, &job("q-race", "gpu", &format!("r{i}"), T0 + i, 3)).await;
    }
    // Eight agents claim at once, over and over, until no job is left.
    let mut agents = tokio::task::JoinSet::new();
    for a in 0..8 {
        let store = store.clone();
        agents.spawn(async move {
            let agent = format!("box-{a}");
            let mut got = Vec::new();
            while let Some(job) = claim(&*store, "q-race", "gpu", &agent, T0 + 10).await {
                got.push((job.id, agent.clone()));
            }
            got
        });
    }
    let mut claimed = Vec::new();
    while let Some(got) = agents.join_next().await {
        claimed.extend(got.expect("an agent"));
    }
    claimed.sort();
    let ids: Vec<&str> = claimed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["r0", "r1", "r2"],
        "each job is leased to exactly one agent"
    );
    for (id, agent) in &claimed {
        let stored = get(&*store, "q-race", id).await;
        assert_eq!(
            stored.agent.as_ref(),
            Some(agent),
            "the stored lease is the winner's"
        );
        assert_eq!(stored.attempt, 1);
    }
}

async fn an_expired_lease_goes_to_the_next_claim(store: &dyn JobStore) {
    queue(store, "q-lease", "gpu").await;
    enqueue(store, &job("q-lease", "gpu", "l1", T0, 3)).await;
    let first = claim(store, "q-lease", "gpu", "box-1", T0)
        .await
        .expect("a job");
    assert!(
        claim(store, "q-lease", "gpu", "box-2", T0 + LEASE_MS - 1)
            .await
            .is_none(),
        "a leased job is not handed out again before its lease ends"
    );
    // A heartbeat extends the lease from when it is made.
    let lease = LeaseRef {
        attempt: Some(1),
        agent: Some("box-1".into()),
    };
    let beat = heartbeat_job(store, "q-lease", "l1", &lease, T0 + 30_000)
        .await
        .expect("a heartbeat on the current lease");
    assert_eq!(beat.lease_expires_at_ms, Some(T0 + 30_000 + LEASE_MS));
    assert!(
        claim(store, "q-lease", "gpu", "box-2", T0 + LEASE_MS)
            .await
            .is_none()
    );
    let second = claim(store, "q-lease", "gpu", "box-2", T0 + 30_000 + LEASE_MS)
        .await
        .expect("the job, once its lease ran out");
    assert_eq!(
        (second.id.as_str(), second.attempt),
        ("l1", first.attempt + 1)
    );
    assert_eq!(second.agent.as_deref(), Some("box-2"));
    let lost = heartbeat_job(store, "q-lease", "l1", &lease, T0 + 100_000).await;
    assert!(
        matches!(lost, Err(LeaseError::Lost(_))),
        "a heartbeat on a lost lease must be refused, got {lost:?}"
    );
    let stored = get(store, "q-lease", "l1").await;
    assert_eq!(
        stored.agent.as_deref(),
        Some("box-2"),
        "and changes nothing"
    );
    assert!(matches!(
        heartbeat_job(store, "q-lease", "nope", &lease, T0).await,
        Err(LeaseError::NotFound(_))
    ));
}

async fn a_completion_on_a_lost_lease_changes_nothing(store: &dyn JobStore) {
    queue(store, "q-stale", "gpu").await;
    enqueue(store, &job("q-stale", "gpu", "s1", T0, 3)).await;
    claim(store, "q-stale", "gpu", "box-1", T0)
        .await
        .expect("a job");
    claim(store, "q-stale", "gpu", "box-2", T0 + LEASE_MS)
        .await
        .expect("the job again, after the lease");
    // box-1 comes back from a long pause and reports.
    let stale = done("FINISHED", Some(1), "box-1");
    let refused = complete_job(
        store,
        "q-stale",
        "s1",
        JobStatus::Finished,
        &stale,
        T0 + 70_000,
    )
    .await;
    assert!(
        matches!(refused, Err(LeaseError::Lost(_))),
        "a completion on a lost lease must be refused, got {refused:?}"
    );
    let stored = get(store, "q-stale", "s1").await;
    assert_eq!((stored.status, stored.attempt), (JobStatus::Running, 2));
    assert_eq!(stored.output, None, "the stale completion changed nothing");
    // The holder completes; repeating its completion answers the same.
    let current = done("FINISHED", Some(2), "box-2");
    let ended = complete_job(
        store,
        "q-stale",
        "s1",
        JobStatus::Finished,
        &current,
        T0 + 80_000,
    )
    .await
    .expect("the holder's completion");
    assert_eq!(ended.status, JobStatus::Finished);
    assert_eq!(
        (ended.exit_code, ended.output.as_deref()),
        (Some(0), Some("ok\n"))
    );
    let again = complete_job(
        store,
        "q-stale",
        "s1",
        JobStatus::Finished,
        &current,
        T0 + 90_000,
    )
    .await
    .expect("a repeated completion answers the same");
    assert_eq!(again.ended_at_ms, Some(T0 + 80_000), "and changes nothing");
    let other = done("FAILED", Some(2), "box-2");
    assert!(matches!(
        complete_job(
            store,
            "q-stale",
            "s1",
            JobStatus::Failed,
            &other,
            T0 + 90_000
        )
        .await,
        Err(LeaseError::Lost(_))
    ));
    assert!(
        claim(store, "q-stale", "gpu", "box-3", T0 + 10 * LEASE_MS)
            .await
            .is_none(),
        "an ended job is never handed out again"
    );
}

async fn the_last_expired_lease_fails_the_job(store: &dyn JobStore) {
    queue(store, "q-max", "gpu").await;
    enqueue(store, &job("q-max", "gpu", "m1", T0, 2)).await;
    claim(store, "q-max", "gpu", "box-1", T0)
        .await
        .expect("attempt 1");
    let second = claim(store, "q-max", "gpu", "box-2", T0 + LEASE_MS)
        .await
        .expect("attempt 2");
    assert_eq!(second.attempt, 2);
    let taken = take_next(store, "q-max", "gpu", Some("box-3"), T0 + 2 * LEASE_MS).await;
    assert!(taken.error.is_none(), "{:?}", taken.error);
    assert!(taken.claimed.is_none(), "no attempt is left");
    let failed: Vec<&str> = taken.expired.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(
        failed,
        ["m1"],
        "the claim fails the job whose last lease ran out"
    );
    let stored = get(store, "q-max", "m1").await;
    assert_eq!(stored.status, JobStatus::Failed);
    assert!(
        stored
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("lease expired")),
        "{:?}",
        stored.error
    );
    let late = done("FINISHED", Some(2), "box-2");
    assert!(matches!(
        complete_job(
            store,
            "q-max",
            "m1",
            JobStatus::Finished,
            &late,
            T0 + 3 * LEASE_MS
        )
        .await,
        Err(LeaseError::Lost(_))
    ));
    let taken = take_next(store, "q-max", "gpu", Some("box-3"), T0 + 3 * LEASE_MS).await;
    assert!(taken.error.is_none(), "{:?}", taken.error);
    assert!(
        taken.claimed.is_none() && taken.expired.is_empty(),
        "failed once"
    );
}

async fn listings_by_status_are_newest_first_and_page(store: &dyn JobStore) {
    queue(store, "q-list", "gpu").await;
    for i in 0..5 {
        enqueue(store, &job("q-list", "gpu", &format!("p{i}"), T0 + i, 3)).await;
    }
    // p0 and p1 run; p0 ends.
    claim(store, "q-list", "gpu", "box", T0 + 10)
        .await
        .expect("p0");
    claim(store, "q-list", "gpu", "box", T0 + 10)
        .await
        .expect("p1");
    complete_job(
        store,
        "q-list",
        "p0",
        JobStatus::Finished,
        &done("FINISHED", None, "box"),
        T0 + 20,
    )
    .await
    .expect("p0 ends");
    let ids = |status: Option<JobStatus>, limit: usize, before: Option<&'static str>| async move {
        store
            .list_jobs("q-list", "gpu", status, limit, before)
            .await
            .expect("list_jobs")
            .items()
            .map(|j| j.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(None, 10, None).await, ["p4", "p3", "p2", "p1", "p0"]);
    assert_eq!(
        ids(Some(JobStatus::Pending), 10, None).await,
        ["p4", "p3", "p2"]
    );
    assert_eq!(ids(Some(JobStatus::Running), 10, None).await, ["p1"]);
    assert_eq!(ids(Some(JobStatus::Finished), 10, None).await, ["p0"]);
    assert!(ids(Some(JobStatus::Failed), 10, None).await.is_empty());
    assert_eq!(ids(None, 2, None).await, ["p4", "p3"]);
    assert_eq!(ids(None, 2, Some("p3")).await, ["p2", "p1"]);
    assert_eq!(ids(None, 2, Some("p1")).await, ["p0"]);
    assert_eq!(ids(Some(JobStatus::Pending), 2, Some("p3")).await, ["p2"]);
}

async fn a_queue_is_deleted_only_once_its_jobs_ended(store: &dyn JobStore) {
    queue(store, "q-delete", "gpu").await;
    enqueue(store, &job("q-delete", "gpu", "d1", T0, 3)).await;
    enqueue(store, &job("q-delete", "gpu", "d2", T0 + 1, 3)).await;
    let refused = store.delete_queue("q-delete", "gpu").await;
    match &refused {
        Err(StoreError::Conflict(m)) => assert!(m.contains("2 jobs"), "{m}"),
        other => panic!("a queue with open jobs must not be deleted, got {other:?}"),
    }
    claim(store, "q-delete", "gpu", "box", T0)
        .await
        .expect("d1");
    complete_job(
        store,
        "q-delete",
        "d1",
        JobStatus::Failed,
        &done("FAILED", None, "box"),
        T0 + 5,
    )
    .await
    .expect("d1 ends");
    assert!(matches!(
        store.delete_queue("q-delete", "gpu").await,
        Err(StoreError::Conflict(_))
    ));
    claim(store, "q-delete", "gpu", "box", T0)
        .await
        .expect("d2");
    complete_job(
        store,
        "q-delete",
        "d2",
        JobStatus::Finished,
        &done("FINISHED", None, "box"),
        T0 + 6,
    )
    .await
    .expect("d2 ends");
    assert!(store.delete_queue("q-delete", "gpu").await.expect("delete"));
    assert!(
        store
            .get_queue("q-delete", "gpu")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        !store
            .delete_queue("q-delete", "gpu")
            .await
            .expect("delete again")
    );
    assert_eq!(
        enqueue(store, &job("q-delete", "gpu", "d3", T0, 3)).await,
        Enqueued::NoQueue
    );
}

async fn the_largest_job_reads_back(store: &dyn JobStore) {
    use crate::domain::job::MAX_OUTPUT_BYTES;
    use crate::domain::limits::{MAX_EVENT_BYTES, MAX_RECORDED_PAYLOAD_BYTES};
    // The largest overrides a rendering keeps, an event's variables as large as an event
    // may be (its metadata), and the largest output a completion may report; escapes
    // double some characters' size in JSON.
    queue(store, "q-large", "gpu").await;
    let mut big = job("q-large", "gpu", "big", T0, 3);
    big.overrides = json!({"o": "\"".repeat(MAX_RECORDED_PAYLOAD_BYTES / 2 - 16)});
    big.event = json!({"event_id": "e", "artifact_metadata": {"m": "x".repeat(MAX_EVENT_BYTES)}});
    assert_eq!(enqueue(store, &big).await, Enqueued::Created);
    claim(store, "q-large", "gpu", &"a".repeat(128), T0)
        .await
        .expect("the big job");
    // Control characters take 6 bytes each in JSON, which the limit counts.
    let output = "\u{7}".repeat(MAX_OUTPUT_BYTES / 6);
    let completion = Completion {
        output: Some(output.clone()),
        ..done("FINISHED", Some(1), &"a".repeat(128))
    };
    let ended = complete_job(
        store,
        "q-large",
        "big",
        JobStatus::Finished,
        &completion,
        T0 + 1,
    )
    .await
    .expect("the largest completion is stored");
    assert_eq!(ended.output.as_deref(), Some(output.as_str()));
    let stored = get(store, "q-large", "big").await;
    assert_eq!(stored, ended, "the largest job reads back as written");
}
