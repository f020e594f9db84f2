//! `POST /v1/teams/{team}/events`: producers send events. `GET` lists the recent ones with
//! what evaluation made of each.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::{AppState, paged, team};
use crate::domain::evaluation::EventRecord;
use crate::http::extract::{ApiPath, ApiResult, JsonBody, Page};
use crate::usecases::ingest::{ingest, parse_events};

pub async fn post(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let events = parse_events(&t, body, s.engine.clock.now())?;
    let report = ingest(&s.engine, &t, events).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(report))).into_response())
}

pub async fn list(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    team(&s, &t).await?;
    // A record holds its whole event (up to 64 KiB): 50 of them stay far below what an
    // answer through API Gateway and Lambda may hold (6 MB).
    let (limit, before) = Page::read_within(page, 25, 50)?;
    let listing = s
        .engine
        .store
        .list_events(&t, limit, before.as_deref())
        .await
        .map_err(crate::usecases::Error::from)?;
    let answer = paged(
        &t,
        "events",
        &listing,
        limit,
        EventRecord::id,
        EventRecord::public_view,
    );
    Ok(Json(answer).into_response())
}
