//! `GET /v1/teams/{team}/audit`: who changed what in the team, newest first.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde_json::json;

use super::{AppState, paged, team};
use crate::http::extract::{ApiPath, ApiResult, Page};
use crate::usecases::access;

pub async fn list(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    team(&s, &t).await?;
    let (limit, before) = Page::read(page)?;
    let listing = access::list_audit(&s.engine, &t, limit, before.as_deref()).await?;
    let answer = paged(&t, "entries", &listing, limit, |e| &e.id, |e| json!(e));
    Ok(Json(answer).into_response())
}
