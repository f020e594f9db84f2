//! `/v1/teams/{team}/queues`: the team's job queues, an agent's claim, and a queue's jobs.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Caller, created, listed, paged, team};
use crate::domain::Invalid;
use crate::domain::job::{ClaimInput, Job, JobQueue, JobStatus, QueueInput};
use crate::http::extract::{ApiPath, ApiResult, JsonBody, page_limit, parse};
use crate::usecases::jobs;

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: QueueInput = parse(body)?;
    let queue = jobs::create_queue(&s.engine, &caller.actor(), &t, input).await?;
    Ok(created(queue.public_view()))
}

pub async fn list(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let listing = jobs::list_queues(&s.engine, &t).await?;
    Ok(Json(listed(&t, "queues", &listing, JobQueue::public_view)).into_response())
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, name)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    jobs::delete_queue(&s.engine, &caller.actor(), &t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Leases the next job to the agent: 200 with the job, or 204 when none came within
/// `wait_seconds`.
pub async fn claim(
    State(s): State<AppState>,
    ApiPath((t, name)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: ClaimInput = parse(body)?;
    let wait = std::time::Duration::from_secs(input.validate()?);
    match jobs::claim(&s.engine, &t, &name, &input.agent, wait).await? {
        Some(job) => Ok(Json(json!({"job": job.claim_view()})).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `?status=&limit=&before=` of a queue's jobs.
#[derive(Deserialize)]
pub struct JobsPage {
    status: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

pub async fn jobs(
    State(s): State<AppState>,
    ApiPath((t, name)): ApiPath<(String, String)>,
    page: Result<Query<JobsPage>, QueryRejection>,
) -> ApiResult {
    team(&s, &t).await?;
    let Query(page) = page.map_err(|e| Invalid::new("query", e.body_text()))?;
    let limit = page_limit(page.limit)?;
    let status = match page.status.as_deref() {
        None | Some("") => None,
        Some(text) => Some(JobStatus::parse(text).ok_or_else(|| {
            Invalid::new(
                "status",
                format!(
                    "unknown job status {text:?}; expected PENDING, RUNNING, FINISHED or FAILED"
                ),
            )
        })?),
    };
    let listing =
        jobs::list_jobs(&s.engine, &t, &name, status, limit, page.before.as_deref()).await?;
    let answer = paged(&t, "jobs", &listing, limit, |j| &j.id, Job::public_view);
    Ok(Json(answer).into_response())
}
