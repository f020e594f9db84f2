//! The Lambda functions' world on moto's server: a table, two queues with dead-letter
//! queues, an operator-key secret, the engine the functions build from them at cold start,
//! API Gateway requests as `lambda_http` hands them over, and `drive`, which plays Lambda's
//! SQS event source mapping.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::json;
use shared::adapters::aws::{DynamoStore, SqsQueue};
use shared::lambda::{LambdaConfig, engine, operator_key};
use shared::ports::Queue;
use shared::usecases::{Engine, Settings};

use crate::moto;

static N: AtomicUsize = AtomicUsize::new(0);

pub const OPERATOR_KEY: &str = "pipeline-operator-key-0123456789abcdef";

/// What the functions run against, and the queues as the event source mappings see them.
pub struct Stack {
    pub config: LambdaConfig,
    /// The functions' engine.
    pub engine: Engine,
    /// The operator key, as the functions read it.
    pub operator_key: String,
    /// The events queue, for playing its event source mapping.
    pub events: Arc<SqsQueue>,
    /// The actions queue, for playing its event source mapping.
    pub actions: Arc<SqsQueue>,
}

impl Stack {
    /// A stack of its own on moto, created and used through moto's endpoint.
    pub async fn new(settings: Settings) -> Stack {
        let sdk = moto::sdk_config().await;
        Self::with_functions_at(&sdk, &sdk, settings).await
    }

    /// Resources created (and the event source mappings played) through `setup`; the
    /// functions' engine talks to AWS through `functions`, which may be another endpoint
    /// in front of the same moto (a request counter, say).
    pub async fn with_functions_at(
        setup: &SdkConfig,
        functions: &SdkConfig,
        settings: Settings,
    ) -> Stack {
        let name = format!(
            "stack-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dynamodb = aws_sdk_dynamodb::Client::new(setup);
        DynamoStore::create_table(&dynamodb, &name)
            .await
            .expect("create the table");
        let sqs = aws_sdk_sqs::Client::new(setup);
        let visibility = Duration::from_secs(30);
        let (events_url, _) =
            moto::queue_with_dead_letters(&sqs, &format!("{name}-events"), visibility, 5).await;
        let (actions_url, _) =
            moto::queue_with_dead_letters(&sqs, &format!("{name}-actions"), visibility, 30).await;
        let config = LambdaConfig {
            table: name.clone(),
            events_queue_url: events_url.clone(),
            actions_queue_url: actions_url.clone(),
            secrets_prefix: format!("{name}/"),
            operator_key_secret: format!("{name}/operator-key"),
            settings,
        };
        aws_sdk_secretsmanager::Client::new(setup)
            .create_secret()
            .name(&config.operator_key_secret)
            .secret_string(OPERATOR_KEY)
            .send()
            .await
            .expect("create the operator-key secret");
        let operator_key = operator_key(&config, functions)
            .await
            .expect("read the operator key");
        let engine = engine(&config, functions).expect("the functions' engine");
        Stack {
            engine,
            operator_key,
            events: Arc::new(SqsQueue::new(sqs.clone(), events_url)),
            actions: Arc::new(SqsQueue::new(sqs, actions_url)),
            config,
        }
    }
}

/// An API Gateway HTTP API (payload 2.0) request, as the ingest and api functions receive it.
pub fn api_gateway_request(
    method: &str,
    path: &str,
    key: &str,
    body: &serde_json::Value,
) -> lambda_http::Request {
    let headers = [
        ("authorization", format!("Bearer {key}")),
        ("content-type", "application/json".to_string()),
    ];
    api_gateway_raw(method, path, &headers, &body.to_string())
}

/// An API Gateway (HTTP API, payload 2.0) request with these headers and this body, as
/// sent.
pub fn api_gateway_raw(
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> lambda_http::Request {
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), json!(value)))
        .collect();
    let event = json!({
        "version": "2.0", "routeKey": format!("{method} /v1/teams/{{team}}/events"), "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "api", "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1",
            "userAgent": "test"}, "requestId": "r1", "routeKey": "POST /v1/teams/{team}/events", "stage": "$default",
            "time": "23/Nov/2026:18:00:00 +0000", "timeEpoch": 1795460400000_i64},
        "body": body, "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("an API Gateway v2 request")
}

/// An SQS record as Lambda hands it to a function.
pub fn record(id: &str, receipt: &str, body: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_string());
    m.receipt_handle = Some(receipt.to_string());
    m.body = Some(body.to_string());
    m
}

/// Plays Lambda's event source mapping once: up to 10 records (waiting up to `wait` for
/// the first), plus `extra`, to `handler`; deletes the records it did not report as failed.
/// Returns how many records were received from the queue, and the handler's response.
pub async fn drive<F, Fut>(
    queue: &SqsQueue,
    wait: Duration,
    extra: Vec<SqsMessage>,
    handler: F,
) -> (usize, SqsBatchResponse)
where
    F: FnOnce(SqsEvent) -> Fut,
    Fut: std::future::Future<Output = SqsBatchResponse>,
{
    let received = queue.receive(10, wait).await.expect("receive");
    let mut event = SqsEvent::default();
    event.records = received
        .iter()
        .map(|m| record(&m.message_id, &m.receipt, &m.body))
        .collect();
    event.records.extend(extra);
    let response = handler(event).await;
    let failed: HashSet<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    let done: Vec<String> = received
        .iter()
        .filter(|m| !failed.contains(m.message_id.as_str()))
        .map(|m| m.receipt.clone())
        .collect();
    queue.delete_batch(&done).await.expect("delete");
    (received.len(), response)
}
