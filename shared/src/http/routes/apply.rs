//! Automations as code: `POST /v1/teams/{team}/apply` makes the team match a document
//! (or, with `dry_run`, only says what it would change); `GET …/export` writes the team
//! as such a document.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Caller, team};
use crate::domain::Invalid;
use crate::http::ApiError;
use crate::http::extract::{ApiPath, ApiResult, JsonBody, parse};
use crate::usecases::apply::{self, ApplyError, Document, Options};

/// `?dry_run=&prune=`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    prune: bool,
}

pub async fn apply(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    query: Result<Query<ApplyQuery>, QueryRejection>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let Query(query) = query.map_err(|e| ApiError::from(Invalid::new("query", e.body_text())))?;
    let document: Document = parse(body)?;
    let options = Options {
        prune: query.prune,
        dry_run: query.dry_run,
    };
    match apply::apply(&s.engine, &caller.actor(), &t, document, options).await {
        Ok(plan) => Ok(Json(plan).into_response()),
        Err(ApplyError::Invalid(problems)) => Ok(invalid(problems)),
        Err(ApplyError::Refused(e)) => Err(e.into()),
        Err(ApplyError::Failed { done, total, error }) => {
            let mut e = ApiError::from(error);
            e.message = format!(
                "{}; {done} of {total} changes were made before this one; apply again once it is fixed",
                e.message
            );
            Err(e)
        }
    }
}

/// A 400 that names every invalid object: the first in `error`, as every route answers,
/// and all of them in `problems`.
fn invalid(problems: Vec<apply::Problem>) -> Response {
    let first = problems.first().map(|p| {
        let field = if p.field.is_empty() {
            format!("{}[{}]", p.kind.list(), p.index)
        } else {
            format!("{}[{}].{}", p.kind.list(), p.index, p.field)
        };
        (field, p.message.clone())
    });
    let (field, message) = first.unwrap_or_default();
    let count = problems.len();
    let body = json!({
        "error": {
            "code": "invalid_request",
            "field": field,
            "message": format!("{field}: {message} ({count} invalid object{}; nothing was changed)", if count == 1 { "" } else { "s" }),
        },
        "problems": problems,
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

pub async fn export(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    Ok(Json(apply::export(&s.engine, &t).await?).into_response())
}
