//! `/v1/teams/{team}/secrets`: names and dates only; values are write-only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Caller, team};
use crate::http::extract::{ApiPath, ApiResult, JsonBody, parse};
use crate::usecases::manage;

pub async fn list(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let list = s
        .engine
        .secrets
        .list_secrets(&t)
        .await
        .map_err(crate::usecases::Error::from)?;
    Ok(Json(json!({ "secrets": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretInput {
    value: String,
}

pub async fn put(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, name)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: SecretInput = parse(body)?;
    Ok(Json(json!(
        manage::put_secret(&s.engine, &caller.actor(), &t, &name, input.value).await?
    ))
    .into_response())
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, name)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::delete_secret(&s.engine, &caller.actor(), &t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
