//! `/v1/dead-letters` (operator): the messages that ran out of receives, why, and sending
//! them again. Served where the runtime keeps its queues itself (`automations serve`); on
//! AWS the dead-letter queues are SQS queues, redriven with SQS.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::domain::Invalid;
use crate::http::ApiError;
use crate::http::extract::{ApiResult, JsonBody, Page, parse};
use crate::ports::{DeadLetter, DeadLetters};
use crate::usecases::Error;

/// Most ids one redrive names.
const MAX_REDRIVE_IDS: usize = 1000;

fn dead_letters(state: &AppState) -> ApiResult<&Arc<dyn DeadLetters>> {
    state.dead_letters.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_available",
            "this runtime keeps its dead letters in the SQS dead-letter queues of its stack; \
             inspect and redrive them with SQS (see the README, Dead letters on AWS)",
        )
    })
}

/// The queue named, if one is: it must be one of the runtime's.
fn queue(dead: &dyn DeadLetters, queue: Option<String>) -> ApiResult<Option<String>> {
    match queue {
        Some(q) if !dead.queues().contains(&q) => Err(Invalid::new(
            "queue",
            format!(
                "unknown queue {q:?}; expected one of {}",
                dead.queues().join(", ")
            ),
        )
        .into()),
        other => Ok(other),
    }
}

#[derive(Deserialize)]
pub struct QueueQuery {
    queue: Option<String>,
}

fn view(letter: &DeadLetter) -> Value {
    // Bodies are shown as the JSON they are; one that is not JSON as text.
    let body = serde_json::from_str::<Value>(&letter.body)
        .unwrap_or_else(|_| Value::String(letter.body.clone()));
    let mut view = json!(letter);
    view["body"] = body;
    view["reason"] = Value::String(letter.reason());
    view
}

pub async fn list(
    State(s): State<AppState>,
    filter: Result<Query<QueueQuery>, QueryRejection>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    let dead = dead_letters(&s)?;
    let Query(filter) = filter.map_err(|e| ApiError::from(Invalid::new("query", e.body_text())))?;
    let queue = queue(&**dead, filter.queue)?;
    let (limit, before) = Page::read(page)?;
    let letters = dead
        .list_dead_letters(queue.as_deref(), limit, before.as_deref())
        .await
        .map_err(Error::from)?;
    let next = (letters.len() == limit)
        .then(|| letters.last().map(|l| l.id.clone()))
        .flatten();
    let views: Vec<Value> = letters.iter().map(view).collect();
    Ok(Json(json!({"dead_letters": views, "next_before": next})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Redrive {
    queue: Option<String>,
    ids: Option<Vec<String>>,
}

pub async fn redrive(State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult {
    let dead = dead_letters(&s)?;
    let request: Redrive = if body.is_null() {
        Redrive::default()
    } else {
        parse(body)?
    };
    let queue = queue(&**dead, request.queue)?;
    if let Some(ids) = &request.ids
        && !(1..=MAX_REDRIVE_IDS).contains(&ids.len())
    {
        return Err(Invalid::new(
            "ids",
            format!(
                "must list 1 to {MAX_REDRIVE_IDS} dead letters; leave it out to redrive them all"
            ),
        )
        .into());
    }
    let redriven = dead
        .redrive(queue.as_deref(), request.ids.as_deref())
        .await
        .map_err(Error::from)?;
    let mut answer = json!({ "redriven": redriven });
    if let Some(ids) = &request.ids {
        let missing: Vec<&String> = ids.iter().filter(|id| !redriven.contains(id)).collect();
        answer["not_found"] = json!(missing);
    }
    Ok(Json(answer).into_response())
}
