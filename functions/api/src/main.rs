//! Lambda: API Gateway management routes: the same axum router as `automations serve`, limited to its surface.

use lambda_http::{Error, run};
use shared::http::{AppState, Surface, router_for};
use shared::lambda::{LambdaConfig, engine, init_logs, operator_key};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_logs();
    let config = LambdaConfig::from_env()?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let key = operator_key(&config, &sdk).await?;
    let state = AppState::new(engine(&config, &sdk)?, &key);
    run(router_for(state, Surface::Management)).await
}
