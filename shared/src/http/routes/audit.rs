//! `GET /v1/teams/{team}/audit`: who changed what in the team, newest first.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{AppState, listed, team};
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
    let next = (listing.entries.len() == limit)
        .then(|| listing.entries.last())
        .flatten()
        .map(|last| match last {
            Ok(e) => e.id.clone(),
            Err(bad) => bad.id.clone(),
        });
    let mut answer = listed(&t, "entries", &listing, |e| json!(e));
    answer["next_before"] = next.map_or(Value::Null, Value::String);
    Ok(Json(answer).into_response())
}
