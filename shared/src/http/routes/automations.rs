//! `/v1/teams/{team}/automations`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::{AppState, Caller, created, listed, team};
use crate::domain::automation::{Automation, AutomationInput};
use crate::http::extract::{ApiPath, ApiResult, JsonBody, object, parse};
use crate::usecases::{manage, preview as dry_run};

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let automation =
        manage::create_automation(&s.engine, &caller.actor(), &t, parse(body)?).await?;
    Ok(created(automation.public_view()))
}

pub async fn list(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let listing = s
        .engine
        .store
        .list_automations(&t)
        .await
        .map_err(crate::usecases::Error::from)?;
    Ok(Json(listed(&t, "automations", &listing, Automation::public_view)).into_response())
}

pub async fn get(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    let automation = manage::get_automation(&s.engine, &t, &id).await?;
    Ok(Json(automation.public_view()).into_response())
}

pub async fn replace(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: AutomationInput = parse(body)?;
    let automation = manage::replace_automation(&s.engine, &caller.actor(), &t, &id, input).await?;
    Ok(Json(automation.public_view()).into_response())
}

pub async fn patch(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let patch = object(body)?;
    let automation = manage::patch_automation(&s.engine, &caller.actor(), &t, &id, patch).await?;
    Ok(Json(automation.public_view()).into_response())
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::delete_automation(&s.engine, &caller.actor(), &t, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST …/automations/preview`: would it fire on this event, and what would it send.
/// Nothing is sent or stored.
pub async fn preview(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let request: dry_run::PreviewRequest = parse(body)?;
    Ok(Json(dry_run::preview(&s.engine, &t, request).await?).into_response())
}
