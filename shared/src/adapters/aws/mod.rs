//! The AWS adapters: the DynamoDB store, SQS queues and Secrets Manager secrets. Clients come from one
//! `SdkConfig`; `AWS_ENDPOINT_URL` points them at another endpoint (tests use moto's server).

pub mod dynamodb;
mod secrets_manager;
mod sqs;

pub use dynamodb::{DynamoAccess, DynamoJobs, DynamoMetrics, DynamoStore};
pub use secrets_manager::SecretsManagerSecrets;
pub use sqs::SqsQueue;

/// The full text of an SDK error: its own `Display` says only "service error".
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
