//! Lambda `dispatch`: SQS actions → signed webhook deliveries, retried on schedule.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::lambda::{LambdaConfig, dispatch_records, engine, init_logs};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logs();
    let config = LambdaConfig::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let engine = engine(&config, &sdk)?;
    let actions = engine.actions.clone();
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<SqsBatchResponse, Error>(
            dispatch_records(&engine, actions.clone(), event.payload).await,
        )
    }))
    .await
}
