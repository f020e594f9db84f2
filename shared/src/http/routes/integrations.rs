//! `/v1/teams/{team}/integrations`, and the route that tries one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, Caller, created, listed, team};
use crate::domain::integration::IntegrationInput;
use crate::http::extract::{ApiPath, ApiResult, JsonBody, parse};
use crate::usecases::manage;

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: IntegrationInput = parse(body)?;
    Ok(created(json!(
        manage::create_integration(&s.engine, &caller.actor(), &t, input).await?
    )))
}

pub async fn list(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let listing = s
        .engine
        .store
        .list_integrations(&t)
        .await
        .map_err(crate::usecases::Error::from)?;
    Ok(Json(listed(&t, "integrations", &listing, |i| json!(i))).into_response())
}

pub async fn get(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    Ok(Json(json!(manage::get_integration(&s.engine, &t, &id).await?)).into_response())
}

pub async fn replace(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: IntegrationInput = parse(body)?;
    Ok(Json(json!(
        manage::replace_integration(&s.engine, &caller.actor(), &t, &id, input).await?
    ))
    .into_response())
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::delete_integration(&s.engine, &caller.actor(), &t, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    payload: Option<Value>,
}

pub async fn test(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let request: TestRequest = if body.is_null() {
        TestRequest { payload: None }
    } else {
        parse(body)?
    };
    Ok(
        Json(manage::test_integration(&s.engine, &caller.actor(), &t, &id, request.payload).await?)
            .into_response(),
    )
}
