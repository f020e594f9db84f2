//! `/v1/teams/{team}/api-keys`: a team admin grants, lists and revokes the team's keys. A
//! key is shown once, in the answer that grants it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::{AppState, Caller, created, listed, team};
use crate::domain::access::{ApiKey, ApiKeyInput};
use crate::http::extract::{ApiPath, ApiResult, JsonBody, parse};
use crate::usecases::access;

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: ApiKeyInput = parse(body)?;
    let (key, secret) = access::grant_key(&s.engine, &caller.0, &t, input).await?;
    let mut view = view(&key);
    view["key"] = json!(secret);
    Ok(created(view))
}

pub async fn list(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let listing = access::list_keys(&s.engine, &t).await?;
    Ok(Json(listed(&t, "api_keys", &listing, view)).into_response())
}

pub async fn revoke(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    access::revoke_key(&s.engine, &caller.0, &t, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn view(key: &ApiKey) -> serde_json::Value {
    json!({"id": key.id, "user": key.user, "role": key.role, "created_at": key.created_at,
           "created_by": key.created_by})
}
