//! `Queue` on SQS. Batches respect SQS's limits (10 messages, 256 KiB per request); the
//! dead-letter queue is the queue's redrive policy, set by the infrastructure.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};

use super::describe;
use crate::ports::{Queue, QueueError, Received};

/// SQS takes at most this many messages per batch call.
const MAX_BATCH_MESSAGES: usize = 10;
/// SQS takes at most this many bytes of message bodies per batch call.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// A message's visibility can reach at most 12 hours after it was received; the margin
/// covers the time the handler spent on it before asking.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600 - 600);
/// Long polling waits at most 20 s per call.
const MAX_WAIT: Duration = Duration::from_secs(20);

pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }
}

/// Splits bodies into batches SQS accepts: at most 10 messages and 256 KiB each.
fn batches(bodies: &[String]) -> Result<Vec<&[String]>, QueueError> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, body) in bodies.iter().enumerate() {
        if body.len() > MAX_BATCH_BYTES {
            return Err(QueueError(format!(
                "a message of {} bytes is over SQS's 256 KiB limit",
                body.len()
            )));
        }
        if i - start == MAX_BATCH_MESSAGES || bytes + body.len() > MAX_BATCH_BYTES {
            out.push(&bodies[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += body.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    Ok(out)
}

fn failed(what: &str, e: impl std::error::Error + 'static) -> QueueError {
    QueueError(format!("SQS {what}: {}", describe(&e)))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send_batch(&self, bodies: &[String]) -> Result<(), QueueError> {
        for batch in batches(bodies)? {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| failed("SendMessageBatch", e))?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| failed("SendMessageBatch", e))?;
            if let Some(first) = out.failed().first() {
                return Err(QueueError(format!(
                    "SQS SendMessageBatch refused {} of {} messages: {}",
                    out.failed().len(),
                    batch.len(),
                    first.message().unwrap_or(first.code())
                )));
            }
        }
        Ok(())
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>, QueueError> {
        let out = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, MAX_BATCH_MESSAGES) as i32)
            .wait_time_seconds(wait.min(MAX_WAIT).as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| failed("ReceiveMessage", e))?;
        Ok(out
            .messages()
            .iter()
            .map(|m| Received {
                message_id: m.message_id().unwrap_or_default().to_string(),
                receipt: m.receipt_handle().unwrap_or_default().to_string(),
                body: m.body().unwrap_or_default().to_string(),
                receive_count: m
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1),
            })
            .collect())
    }

    async fn delete_batch(&self, receipts: &[String]) -> Result<(), QueueError> {
        for chunk in receipts.chunks(MAX_BATCH_MESSAGES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| failed("DeleteMessageBatch", e))?;
            let out = self
                .client
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| failed("DeleteMessageBatch", e))?;
            // A stale receipt (the message was received again meanwhile) is refused: that
            // message is someone else's now, which is what the caller needs to know only in logs.
            for refused in out.failed() {
                tracing::warn!(code = refused.code(), "SQS refused to delete a message");
            }
        }
        Ok(())
    }

    async fn change_visibility(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        // Whole seconds, rounded up: a message must not come back before it is due. Longer
        // waits come back early; dispatch sees the execution is not due and waits again.
        let seconds = delay.min(MAX_VISIBILITY).as_secs_f64().ceil() as i32;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| failed("ChangeMessageVisibility", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_count_and_size_limits() {
        let small: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
        let sizes: Vec<usize> = batches(&small).unwrap().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let big: Vec<String> = (0..5).map(|_| "x".repeat(100 * 1024)).collect();
        let sizes: Vec<usize> = batches(&big).unwrap().iter().map(|b| b.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(batches(&["x".repeat(MAX_BATCH_BYTES + 1)]).is_err());
        assert!(batches(&[]).unwrap().is_empty());
    }
}
