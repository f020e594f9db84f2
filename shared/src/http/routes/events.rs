//! `POST /v1/teams/{team}/events`: producers send events.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::{AppState, team};
use crate::http::extract::{ApiPath, ApiResult, JsonBody};
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
