//! `/v1/teams`: the operator's teams, and a team as its members see it.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::{AppState, Caller, created};
use crate::http::extract::{ApiPath, ApiResult, JsonBody, parse};
use crate::usecases::manage;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    name: String,
}

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> ApiResult {
    let input: NewTeam = parse(body)?;
    let team = manage::create_team(&s.engine, &caller.actor(), &input.name).await?;
    Ok(created(json!(team)))
}

pub async fn list(State(s): State<AppState>) -> ApiResult {
    let teams = s
        .engine
        .store
        .list_teams()
        .await
        .map_err(crate::usecases::Error::from)?;
    Ok(Json(json!({ "teams": teams })).into_response())
}

/// The team, and who the caller is in it (`caller`: the key's user and role, or the
/// operator): what the console shows and hides.
pub async fn get(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> ApiResult {
    let mut team = json!(manage::team(&s.engine, &name).await?);
    let actor = caller.actor();
    team["caller"] = json!({"user": actor.user, "role": actor.role});
    Ok(Json(team).into_response())
}
