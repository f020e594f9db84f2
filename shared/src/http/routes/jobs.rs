//! `/v1/teams/{team}/jobs/{id}`: a job, and what its agent reports while it runs it.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{AppState, team};
use crate::domain::event::format_millis;
use crate::domain::job::{Completion, LeaseRef};
use crate::http::extract::{ApiPath, ApiResult, JsonBody, parse};
use crate::usecases::jobs;

pub async fn get(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    Ok(Json(jobs::job(&s.engine, &t, &id).await?.public_view()).into_response())
}

/// Extends the lease; the body (`{"attempt", "agent"}`, both optional) names the lease.
pub async fn heartbeat(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let lease: LeaseRef = match body {
        Value::Null => LeaseRef::default(),
        body => parse(body)?,
    };
    lease.validate()?;
    let job = jobs::heartbeat(&s.engine, &t, &id, &lease).await?;
    Ok(Json(json!({
        "id": job.id,
        "attempt": job.attempt,
        "lease_expires_at": job.lease_expires_at_ms.map(format_millis),
    }))
    .into_response())
}

pub async fn complete(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let completion: Completion = parse(body)?;
    let job = jobs::complete(&s.engine, &t, &id, completion).await?;
    Ok(Json(job.public_view()).into_response())
}
