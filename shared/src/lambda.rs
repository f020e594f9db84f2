//! The Lambda runtime: configuration read once at cold start, the AWS adapters wired to the
//! use cases, and the SQS handlers of the evaluate and dispatch functions.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::adapters::aws::{
    DynamoAccess, DynamoJobs, DynamoMetrics, DynamoStore, SecretsManagerSecrets, SqsQueue,
};
use crate::adapters::cached_keys::{CachedKeys, KEYS_CACHE_TTL};
use crate::adapters::cached_secrets::{CachedSecrets, SECRETS_CACHE_TTL};
use crate::config::settings_from;
use crate::delivery::client::{DEFAULT_TIMEOUT, GuardedClient};
use crate::domain::event::Event;
use crate::ports::{Clock, Queue, SystemClock};
use crate::usecases::dispatch::{Outcome, dispatch};
use crate::usecases::evaluate::Evaluator;
use crate::usecases::{ActionMessage, Engine, Settings};

/// Everything a function reads from its environment, once, at cold start.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    pub table: String,
    pub events_queue_url: String,
    pub actions_queue_url: String,
    pub secrets_prefix: String,
    pub operator_key_secret: String,
    pub settings: Settings,
}

impl LambdaConfig {
    /// Reads the configuration; an error names the missing or invalid variable.
    pub fn from_env() -> Result<Self, String> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    /// The configuration from the variables `var` looks up (the environment, or the
    /// variables a template gives a function).
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let required = |name: &str| var(name).ok_or_else(|| format!("{name} is not set"));
        Ok(Self {
            table: required("AUTOMATIONS_TABLE")?,
            events_queue_url: required("AUTOMATIONS_EVENTS_QUEUE_URL")?,
            actions_queue_url: required("AUTOMATIONS_ACTIONS_QUEUE_URL")?,
            secrets_prefix: var("AUTOMATIONS_SECRETS_PREFIX")
                .unwrap_or_else(|| "automations/".into()),
            operator_key_secret: required("AUTOMATIONS_OPERATOR_KEY_SECRET")?,
            settings: settings_from(var)?,
        })
    }
}

/// The use cases wired to DynamoDB, SQS and Secrets Manager.
pub fn engine(config: &LambdaConfig, sdk: &aws_config::SdkConfig) -> Result<Engine, String> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    let sender = GuardedClient::new(config.settings.guard.clone(), DEFAULT_TIMEOUT)
        .map_err(|e| format!("HTTP client: {e}"))?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let store = Arc::new(DynamoStore::new(
        dynamodb.clone(),
        &config.table,
        clock.clone(),
    ));
    Ok(Engine {
        store: store.clone(),
        sources: store,
        access: Arc::new(CachedKeys::new(
            DynamoAccess::new(dynamodb.clone(), &config.table, clock.clone()),
            KEYS_CACHE_TTL,
        )),
        metrics: Arc::new(DynamoMetrics::new(
            dynamodb.clone(),
            &config.table,
            clock.clone(),
        )),
        jobs: Arc::new(DynamoJobs::new(dynamodb, &config.table)),
        secrets: Arc::new(CachedSecrets::new(
            SecretsManagerSecrets::new(
                aws_sdk_secretsmanager::Client::new(sdk),
                &config.secrets_prefix,
            ),
            SECRETS_CACHE_TTL,
        )),
        events: Arc::new(SqsQueue::new(sqs.clone(), &config.events_queue_url)),
        actions: Arc::new(SqsQueue::new(sqs, &config.actions_queue_url)),
        sender: Arc::new(sender),
        clock,
        settings: Arc::new(config.settings.clone()),
    })
}

/// The operator key, from the Secrets Manager secret `AUTOMATIONS_OPERATOR_KEY_SECRET` names.
pub async fn operator_key(
    config: &LambdaConfig,
    sdk: &aws_config::SdkConfig,
) -> Result<String, String> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(&config.operator_key_secret)
        .send()
        .await
        .map_err(|e| {
            format!(
                "AUTOMATIONS_OPERATOR_KEY_SECRET {}: {}",
                config.operator_key_secret,
                aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
            )
        })?;
    let key = out.secret_string().unwrap_or_default().trim().to_string();
    if key.len() < 32 {
        return Err(format!(
            "AUTOMATIONS_OPERATOR_KEY_SECRET {}: the key must be at least 32 characters",
            config.operator_key_secret
        ));
    }
    Ok(key)
}

fn failure(message: &SqsMessage) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message.message_id.clone().unwrap_or_default();
    failure
}

fn response(failures: Vec<BatchItemFailure>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures;
    response
}

/// The evaluate function: the batch's events are evaluated together, and each record
/// stands alone. An unreadable record, or an event whose executions could not be written
/// or queued, fails by itself and comes back (reaching the dead-letter queue after its
/// receives); the others of the batch are done.
pub async fn evaluate_records(evaluator: &Evaluator, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    let mut events = Vec::new();
    let mut readable = Vec::new();
    for record in event.records {
        match serde_json::from_str::<Event>(record.body.as_deref().unwrap_or_default()) {
            Ok(e) => {
                events.push(e);
                readable.push(record);
            }
            Err(e) => {
                tracing::error!(message_id = record.message_id.as_deref().unwrap_or_default(), error = %e, "unreadable event message");
                failures.push(failure(&record));
            }
        }
    }
    let outcomes = evaluator.evaluate(&events).await;
    for ((record, event), outcome) in readable.iter().zip(&events).zip(outcomes) {
        if let Err(e) = outcome {
            tracing::error!(message_id = record.message_id.as_deref().unwrap_or_default(), event = %event.id, team = %event.team, error = %e, "evaluation failed; the event comes back");
            failures.push(failure(record));
        }
    }
    response(failures)
}

/// The dispatch function: records are delivered concurrently, each in a span with its
/// message id. A retry makes its message visible again after the schedule's delay (by the
/// message's visibility) and reports it failed, so that SQS keeps it.
pub async fn dispatch_records(
    engine: &Engine,
    actions: Arc<dyn Queue>,
    event: SqsEvent,
) -> SqsBatchResponse {
    let mut tasks = JoinSet::new();
    // A task that panics must still report its record failed, or SQS would delete it.
    let mut records = std::collections::HashMap::new();
    for record in event.records {
        let failed_if_lost = failure(&record);
        let (engine, actions) = (engine.clone(), actions.clone());
        let span = tracing::info_span!(
            "dispatch",
            message_id = record.message_id.as_deref().unwrap_or_default()
        );
        let task = tasks.spawn(
            async move {
                let keep = match serde_json::from_str::<ActionMessage>(record.body.as_deref().unwrap_or_default()) {
                    Err(e) => {
                        tracing::error!(error = %e, "unreadable action message");
                        true
                    }
                    Ok(message) => match dispatch(&engine, &message).await {
                        Ok(Outcome::Done) => false,
                        Ok(Outcome::RetryAfter(delay)) => {
                            let receipt = record.receipt_handle.clone().unwrap_or_default();
                            if let Err(e) = actions.change_visibility(&receipt, delay).await {
                                tracing::error!(error = %e, "could not delay the retry; it comes back after the visibility timeout");
                            }
                            true
                        }
                        Err(e) => {
                            tracing::error!(error = %e, execution = %message.execution_id, "dispatch failed; the message comes back");
                            true
                        }
                    },
                };
                keep.then(|| failure(&record))
            }
            .instrument(span),
        );
        records.insert(task.id(), failed_if_lost);
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Some(f)) => failures.push(f),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "a dispatch task failed; its message comes back");
                failures.extend(records.remove(&e.id()));
            }
        }
    }
    response(failures)
}

/// JSON logs on stdout (CloudWatch), level from `RUST_LOG` (default info).
pub fn init_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            crate::config::QUIET_LOG_DIRECTIVES.iter().fold(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                |filter, directive| match directive.parse() {
                    Ok(directive) => filter.add_directive(directive),
                    Err(_) => filter,
                },
            ),
        )
        .with_current_span(true)
        .without_time()
        .init();
}
