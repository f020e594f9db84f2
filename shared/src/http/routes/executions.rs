//! Executions: the team's, an automation's, one by id, and sending one again.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;

use serde::Deserialize;

use super::{AppState, Caller, paged, team};
use crate::domain::Invalid;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::http::extract::{ApiPath, ApiResult, Page, page_limit};
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

/// `?status=&limit=&before=` of the team's executions.
#[derive(Deserialize)]
pub struct TeamPage {
    status: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

pub async fn list_team(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    page: Result<Query<TeamPage>, QueryRejection>,
) -> ApiResult {
    team(&s, &t).await?;
    let Query(page) = page.map_err(|e| Invalid::new("query", e.body_text()))?;
    let limit = page_limit(page.limit)?;
    let status = match page.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(ExecutionStatus::parse(text).ok_or_else(|| {
            Invalid::new(
                "status",
                format!("unknown execution status {text:?}; expected PENDING, FINISHED or FAILED"),
            )
        })?),
    };
    let listing = s
        .engine
        .store
        .list_team_executions(&t, status, limit, page.before.as_deref())
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
