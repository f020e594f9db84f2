//! Lambda `evaluate`: SQS events → executions → the actions queue.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::lambda::{LambdaConfig, engine, evaluate_records, init_logs};
use shared::usecases::evaluate::Evaluator;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logs();
    let config = LambdaConfig::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let evaluator = Evaluator::new(engine(&config, &sdk)?);
    run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<SqsBatchResponse, Error>(evaluate_records(&evaluator, event.payload).await)
    }))
    .await
}
