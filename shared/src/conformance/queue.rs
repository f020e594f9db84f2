//! The `Queue` conformance suite.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::ports::{Queue, Received};

use super::ManualClock;

/// A queue and its dead-letter queue, as a [`queue_suite`] factory returns them.
pub struct QueueUnderTest {
    pub queue: Arc<dyn Queue>,
    pub dead_letter: Arc<dyn Queue>,
    /// Whether a stale receipt (from before a redelivery) still deletes the message. SQS
    /// documents that it does not, but moto's server deletes anyway; the engine is correct
    /// either way, since dispatch checks the execution before it sends.
    pub stale_receipts_delete: bool,
}

/// The visibility timeout the suite asks for (whole seconds, as SQS takes it).
const VISIBILITY: Duration = Duration::from_secs(2);
/// Receives before a message goes to the dead-letter queue.
const MAX_RECEIVES: u32 = 3;
/// How long a receive that expects nothing waits.
const SHORT: Duration = Duration::from_millis(50);
/// Extra real time a receive that expects a message allows beyond the timeout that hides it.
const MARGIN: Duration = Duration::from_secs(2);

/// A queue, its dead-letter queue and the clock they were made with.
struct Fixture {
    queue: Arc<dyn Queue>,
    dead_letter: Arc<dyn Queue>,
    clock: Arc<ManualClock>,
    stale_receipts_delete: bool,
}

/// Runs the queue contract. `make(clock, visibility, max_receives)` must return a NEW, empty
/// queue (and its own dead-letter queue) on every call; successive queues may share a
/// database, which the suite uses to check that queues do not mix.
pub async fn queue_suite<F>(make: F)
where
    F: Fn(Arc<ManualClock>, Duration, u32) -> QueueUnderTest,
{
    let fresh = || {
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let made = make(clock.clone(), VISIBILITY, MAX_RECEIVES);
        Fixture {
            queue: made.queue,
            dead_letter: made.dead_letter,
            stale_receipts_delete: made.stale_receipts_delete,
            clock,
        }
    };
    delivers_in_send_order(fresh()).await;
    hides_a_received_message_until_its_visibility_timeout(fresh()).await;
    delete_removes_for_good(fresh()).await;
    stale_receipt_does_not_delete_a_redelivered_message(fresh()).await;
    change_visibility_hides_or_shows(fresh()).await;
    dead_letters_after_max_receives(fresh()).await;
    receive_returns_at_most_max(fresh()).await;
    empty_queue_returns_nothing_after_the_wait(fresh()).await;
    queues_do_not_mix(fresh(), fresh()).await;
}

async fn send(queue: &dyn Queue, bodies: &[&str]) {
    let bodies: Vec<String> = bodies.iter().map(|b| b.to_string()).collect();
    queue.send_batch(&bodies).await.expect("send_batch failed");
}

async fn receive(queue: &dyn Queue, max: usize, wait: Duration) -> Vec<Received> {
    queue.receive(max, wait).await.expect("receive failed")
}

/// Receives the one message the queue should hand out within `hidden_for` (plus a margin).
async fn receive_one(queue: &dyn Queue, hidden_for: Duration) -> Received {
    let mut got = receive(queue, 10, hidden_for + MARGIN).await;
    assert_eq!(got.len(), 1, "expected exactly one message, got {got:?}");
    got.remove(0)
}

async fn assert_nothing_visible(queue: &dyn Queue, why: &str) {
    let got = receive(queue, 10, Duration::ZERO).await;
    assert!(got.is_empty(), "{why}, but the queue handed out {got:?}");
}

async fn delete(queue: &dyn Queue, message: &Received) {
    queue
        .delete_batch(std::slice::from_ref(&message.receipt))
        .await
        .expect("delete_batch failed");
}

fn bodies(messages: &[Received]) -> Vec<&str> {
    messages.iter().map(|m| m.body.as_str()).collect()
}

async fn delivers_in_send_order(f: Fixture) {
    // GIVEN three messages sent in one batch
    send(&*f.queue, &["m1", "m2", "m3"]).await;
    // WHEN they are received
    let got = receive(&*f.queue, 10, MARGIN).await;
    // THEN all come, in send order, each for the first time, with distinct ids and receipts
    assert_eq!(bodies(&got), ["m1", "m2", "m3"]);
    assert!(got.iter().all(|m| m.receive_count == 1), "{got:?}");
    let ids: HashSet<_> = got.iter().map(|m| &m.message_id).collect();
    let receipts: HashSet<_> = got.iter().map(|m| &m.receipt).collect();
    assert_eq!((ids.len(), receipts.len()), (3, 3), "{got:?}");
}

async fn hides_a_received_message_until_its_visibility_timeout(f: Fixture) {
    // GIVEN a received message that was not deleted
    send(&*f.queue, &["m"]).await;
    let first = receive_one(&*f.queue, Duration::ZERO).await;
    // THEN nobody gets it while its visibility timeout runs
    assert_nothing_visible(&*f.queue, "right after a receive").await;
    f.clock.advance(VISIBILITY / 2);
    assert_nothing_visible(&*f.queue, "half way through the visibility timeout").await;
    // WHEN the timeout passes
    f.clock.advance(VISIBILITY / 2 + Duration::from_millis(1));
    // THEN it is handed out again, counted, with a new receipt
    let again = receive_one(&*f.queue, VISIBILITY).await;
    assert_eq!(
        (again.message_id.as_str(), again.body.as_str()),
        (first.message_id.as_str(), "m")
    );
    assert_eq!(again.receive_count, 2);
    assert_ne!(
        again.receipt, first.receipt,
        "a redelivery needs a new receipt"
    );
}

async fn delete_removes_for_good(f: Fixture) {
    // GIVEN two received messages
    send(&*f.queue, &["a", "b"]).await;
    let got = receive(&*f.queue, 10, MARGIN).await;
    assert_eq!(bodies(&got), ["a", "b"]);
    // WHEN both are deleted in one batch
    let receipts: Vec<String> = got.iter().map(|m| m.receipt.clone()).collect();
    f.queue
        .delete_batch(&receipts)
        .await
        .expect("delete_batch failed");
    // THEN they never come back, even after their visibility timeout
    f.clock.advance(VISIBILITY * 2);
    let later = receive(&*f.queue, 10, SHORT).await;
    assert!(later.is_empty(), "deleted messages came back: {later:?}");
}

async fn stale_receipt_does_not_delete_a_redelivered_message(f: Fixture) {
    // GIVEN a message received twice: the first receipt is stale
    send(&*f.queue, &["m"]).await;
    let first = receive_one(&*f.queue, Duration::ZERO).await;
    f.clock.advance(VISIBILITY + Duration::from_millis(1));
    let second = receive_one(&*f.queue, VISIBILITY).await;
    // WHEN the stale receipt is used to delete it (an adapter may accept or refuse the call)
    let _accepted_or_refused = f
        .queue
        .delete_batch(std::slice::from_ref(&first.receipt))
        .await;
    if f.stale_receipts_delete {
        // THEN (moto) it is gone
        f.clock.advance(VISIBILITY + Duration::from_millis(1));
        assert!(receive(&*f.queue, 10, VISIBILITY + MARGIN).await.is_empty());
        return;
    }
    // THEN the message is still there, and the current receipt deletes it
    f.clock.advance(VISIBILITY + Duration::from_millis(1));
    let third = receive_one(&*f.queue, VISIBILITY).await;
    assert_eq!(third.message_id, second.message_id);
    assert_eq!(third.receive_count, 3);
    delete(&*f.queue, &third).await;
    f.clock.advance(VISIBILITY + Duration::from_millis(1));
    assert!(receive(&*f.queue, 10, SHORT).await.is_empty());
}

async fn change_visibility_hides_or_shows(f: Fixture) {
    // GIVEN a received message
    send(&*f.queue, &["m"]).await;
    let first = receive_one(&*f.queue, Duration::ZERO).await;
    // WHEN its visibility is changed to zero THEN it is handed out again at once
    f.queue
        .change_visibility(&first.receipt, Duration::ZERO)
        .await
        .expect("change_visibility failed");
    let second = receive_one(&*f.queue, Duration::ZERO).await;
    assert_eq!(second.receive_count, 2);
    // WHEN it is hidden for three visibility timeouts
    let hidden_for = VISIBILITY * 3;
    f.queue
        .change_visibility(&second.receipt, hidden_for)
        .await
        .expect("change_visibility failed");
    // THEN it stays hidden past the queue's own timeout, and comes back after the delay
    f.clock.advance(VISIBILITY * 2);
    assert_nothing_visible(&*f.queue, "before the changed visibility ran out").await;
    f.clock.advance(VISIBILITY + Duration::from_millis(1));
    let third = receive_one(&*f.queue, hidden_for).await;
    assert_eq!(
        (third.message_id.as_str(), third.receive_count),
        (first.message_id.as_str(), 3)
    );
}

async fn dead_letters_after_max_receives(f: Fixture) {
    // GIVEN a message received max_receives times and never deleted
    send(&*f.queue, &["poison"]).await;
    for count in 1..=MAX_RECEIVES {
        let got = receive_one(&*f.queue, VISIBILITY).await;
        assert_eq!(got.receive_count, count);
        f.clock.advance(VISIBILITY + Duration::from_millis(1));
    }
    // WHEN the queues are received from again
    // THEN the dead-letter queue hands it out and the main queue never does again
    let dead = receive_from_dead_letter(&f, VISIBILITY + MARGIN).await;
    assert_eq!(dead.body, "poison");
    f.clock.advance(VISIBILITY * 2);
    let main = receive(&*f.queue, 10, SHORT).await;
    assert!(
        main.is_empty(),
        "the dead-lettered message is still in the main queue: {main:?}"
    );
}

/// Receives from the main queue, which must hand out nothing, and the dead-letter queue until
/// the dead-letter queue hands out a message (the move happens on a receive of the main queue).
async fn receive_from_dead_letter(f: &Fixture, within: Duration) -> Received {
    let deadline = Instant::now() + within;
    loop {
        let main = receive(&*f.queue, 10, SHORT).await;
        assert!(
            main.is_empty(),
            "the main queue handed out a message past max_receives: {main:?}"
        );
        if let Some(dead) = receive(&*f.dead_letter, 10, SHORT).await.pop() {
            return dead;
        }
        assert!(
            Instant::now() < deadline,
            "the message never reached the dead-letter queue"
        );
    }
}

async fn receive_returns_at_most_max(f: Fixture) {
    // GIVEN five messages
    let sent = ["m1", "m2", "m3", "m4", "m5"];
    send(&*f.queue, &sent).await;
    // WHEN two at most are asked for THEN no more come
    let first = receive(&*f.queue, 2, MARGIN).await;
    assert!(
        (1..=2).contains(&first.len()),
        "receive(2) gave {}",
        first.len()
    );
    // AND the rest are still there
    let rest = receive(&*f.queue, 10, MARGIN).await;
    let mut all: Vec<&str> = bodies(&first).into_iter().chain(bodies(&rest)).collect();
    all.sort_unstable();
    assert_eq!(all, sent);
}

async fn empty_queue_returns_nothing_after_the_wait(f: Fixture) {
    // GIVEN an empty queue (an empty batch sends nothing)
    send(&*f.queue, &[]).await;
    // WHEN it is received from with a short wait
    let started = Instant::now();
    let got = receive(&*f.queue, 10, SHORT).await;
    // THEN nothing comes, and the call returns after about the wait
    assert!(got.is_empty(), "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a receive with a 50 ms wait took {:?}",
        started.elapsed()
    );
}

async fn queues_do_not_mix(a: Fixture, b: Fixture) {
    // GIVEN a message in queue A
    send(&*a.queue, &["for-a"]).await;
    // THEN queue B and A's dead-letter queue do not see it
    assert!(receive(&*b.queue, 10, SHORT).await.is_empty());
    assert!(receive(&*a.dead_letter, 10, SHORT).await.is_empty());
    // AND A hands it out
    let got = receive_one(&*a.queue, Duration::ZERO).await;
    assert_eq!(got.body, "for-a");
    // WHEN B is told to show it and to delete it with A's receipt (B may accept or refuse)
    let _accepted_or_refused = b
        .queue
        .change_visibility(&got.receipt, Duration::ZERO)
        .await;
    let _accepted_or_refused = b
        .queue
        .delete_batch(std::slice::from_ref(&got.receipt))
        .await;
    // THEN it is still in A, hidden until its own visibility timeout
    assert_nothing_visible(&*a.queue, "another queue was told to show it").await;
    a.clock.advance(VISIBILITY + Duration::from_millis(1));
    let again = receive_one(&*a.queue, VISIBILITY).await;
    assert_eq!(again.message_id, got.message_id);
}
