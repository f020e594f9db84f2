//! Executions: an automation's, one by id, and sending one again.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use super::{AppState, Caller, paged, team};
use crate::domain::execution::Execution;
use crate::http::extract::{ApiPath, ApiResult, Page};
use crate::usecases::manage;

pub async fn list(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::get_automation(&s.engine, &t, &id).await?;
    let (limit, before) = Page::read(page)?;
    let listing = s
        .engine
        .store
        .list_executions(&t, &id, limit, before.as_deref())
        .await
        .map_err(crate::usecases::Error::from)?;
    let answer = paged(
        &t,
        "executions",
        &listing,
        limit,
        |e| &e.id,
        Execution::public_view,
    );
    Ok(Json(answer).into_response())
}

pub async fn get(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    let execution = manage::get_execution(&s.engine, &t, &id).await?;
    Ok(Json(execution.public_view()).into_response())
}

pub async fn retry(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    let execution = manage::retry_execution(&s.engine, &caller.actor(), &t, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(execution.public_view())).into_response())
}
