#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The port conformance suites against the AWS adapters, on moto's server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use automations_tests::moto;
use shared::adapters::aws::{
    DynamoAccess, DynamoJobs, DynamoMetrics, DynamoStore, SecretsManagerSecrets, SqsQueue,
};
use shared::conformance::{self, ManualClock, QueueUnderTest};

static QUEUES: AtomicUsize = AtomicUsize::new(0);

/// A new queue with its dead-letter queue (redrive after `max_receives`).
async fn queue_pair(
    sqs: &aws_sdk_sqs::Client,
    visibility: Duration,
    max_receives: u32,
) -> QueueUnderTest {
    let name = format!(
        "conformance-{}-{}",
        std::process::id(),
        QUEUES.fetch_add(1, Ordering::Relaxed)
    );
    let (url, dlq_url) = moto::queue_with_dead_letters(sqs, &name, visibility, max_receives).await;
    QueueUnderTest {
        stale_receipts_delete: true,
        queue: Arc::new(SqsQueue::new(sqs.clone(), url)),
        dead_letter: Arc::new(SqsQueue::new(sqs.clone(), dlq_url)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_conforms() {
    let sqs = aws_sdk_sqs::Client::new(&moto::sdk_config().await);
    conformance::queue_suite(|_clock, visibility, max_receives| {
        let handle = tokio::runtime::Handle::current();
        tokio::task::block_in_place(|| handle.block_on(queue_pair(&sqs, visibility, max_receives)))
    })
    .await;
}

#[tokio::test]
async fn secrets_manager_conforms() {
    let client = aws_sdk_secretsmanager::Client::new(&moto::sdk_config().await);
    let prefix = format!("conformance-{}/", std::process::id());
    conformance::secrets_suite(Arc::new(SecretsManagerSecrets::new(client, prefix))).await;
}

#[tokio::test]
async fn dynamodb_store_conforms() {
    let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
    let table = format!("conformance-{}", std::process::id());
    DynamoStore::create_table(&client, &table).await.unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    let tamper = moto::DynamoTamper {
        client: client.clone(),
        table: table.clone(),
    };
    conformance::store_suite(
        Arc::new(DynamoStore::new(client, table, clock.clone())),
        clock,
        &tamper,
    )
    .await;
}

#[tokio::test]
async fn dynamodb_access_conforms() {
    let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
    let table = format!("conformance-access-{}", std::process::id());
    DynamoStore::create_table(&client, &table).await.unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    conformance::access_suite(
        Arc::new(DynamoAccess::new(client, table, clock.clone())),
        clock,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_metrics_conform() {
    let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
    let table = format!("conformance-metrics-{}", std::process::id());
    DynamoStore::create_table(&client, &table).await.unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    conformance::metrics_suite(
        Arc::new(DynamoMetrics::new(client, table, clock.clone())),
        clock,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_jobs_conform() {
    let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
    let table = format!("conformance-jobs-{}", std::process::id());
    DynamoStore::create_table(&client, &table).await.unwrap();
    conformance::jobs_suite(Arc::new(DynamoJobs::new(client, table))).await;
}

#[tokio::test]
async fn dynamodb_sources_conform() {
    let client = aws_sdk_dynamodb::Client::new(&moto::sdk_config().await);
    let table = format!("conformance-sources-{}", std::process::id());
    DynamoStore::create_table(&client, &table).await.unwrap();
    let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
    conformance::sources_suite(&DynamoStore::new(client, table, clock)).await;
}
