//! Routes of the API, one file per resource. Every route but `/healthz` needs the Bearer key.

mod automations;
mod dead_letters;
mod events;
mod executions;
mod integrations;
mod secrets;
mod teams;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::extract::ApiResult;
use super::{ApiError, MAX_BODY_BYTES};
use crate::ports::{DeadLetters, Listing, Unreadable};
use crate::usecases::{Engine, manage};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    operator_key_sha256: Arc<[u8; 32]>,
    /// The runtime's dead-letter queues, where it keeps them itself (the local runtime);
    /// on AWS they are SQS queues, redriven with SQS.
    dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl AppState {
    /// Keeps only the operator key's hash.
    pub fn new(engine: Engine, operator_key: &str) -> Self {
        Self {
            engine,
            operator_key_sha256: Arc::new(Sha256::digest(operator_key.as_bytes()).into()),
            dead_letters: None,
        }
    }

    /// Serves `/v1/dead-letters` from `dead_letters`.
    pub fn with_dead_letters(mut self, dead_letters: Arc<dyn DeadLetters>) -> Self {
        self.dead_letters = Some(dead_letters);
        self
    }
}

/// Which routes a deployment serves: everything (`automations serve`), or the split the
/// Lambda functions share (`ingest` takes the events route, `api` the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    All,
    Ingest,
    Management,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    router_for(state, Surface::All)
}

/// The routes of one surface; the others answer 404.
pub fn router_for(state: AppState, surface: Surface) -> Router {
    let mut team_routes = Router::new();
    if surface != Surface::Management {
        team_routes = team_routes.route("/events", post(events::post));
    }
    if surface != Surface::Ingest {
        team_routes = team_routes
            .route("/", get(teams::get))
            .route(
                "/automations",
                get(automations::list).post(automations::create),
            )
            .route(
                "/automations/{id}",
                get(automations::get)
                    .put(automations::replace)
                    .patch(automations::patch)
                    .delete(automations::delete),
            )
            .route("/automations/{id}/executions", get(executions::list))
            .route(
                "/integrations",
                get(integrations::list).post(integrations::create),
            )
            .route(
                "/integrations/{id}",
                get(integrations::get)
                    .put(integrations::replace)
                    .delete(integrations::delete),
            )
            .route("/integrations/{id}/test", post(integrations::test))
            .route("/secrets", get(secrets::list))
            .route("/secrets/{name}", put(secrets::put).delete(secrets::delete))
            .route("/executions/{id}", get(executions::get))
            .route("/executions/{id}/retry", post(executions::retry));
    }
    let mut api = Router::new().nest("/teams/{team}", team_routes);
    if surface != Surface::Ingest {
        api = api
            .route("/teams", get(teams::list).post(teams::create))
            .route("/dead-letters", get(dead_letters::list))
            .route("/dead-letters/redrive", post(dead_letters::redrive));
    }
    let api = api.route_layer(middleware::from_fn_with_state(state.clone(), require_key));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .nest("/v1", api)
        .fallback(|| async {
            ApiError::not_found("no such route; see the API routes in the README")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let digest: Option<[u8; 32]> = presented.map(|key| Sha256::digest(key.as_bytes()).into());
    if digest.is_some_and(|d| constant_time_eq(&d, &state.operator_key_sha256)) {
        next.run(request).await
    } else {
        ApiError::unauthorized().into_response()
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The team must exist.
async fn team(state: &AppState, name: &str) -> ApiResult<()> {
    manage::team(&state.engine, name).await?;
    Ok(())
}

fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// A listing as the API answers it: `{"<key>": [...], "unreadable": [{"id", "error"}]}`.
/// Items that cannot be read are skipped, logged with their id, and named here.
fn listed<T>(team: &str, key: &str, listing: &Listing<T>, view: impl Fn(&T) -> Value) -> Value {
    let unreadable: Vec<&Unreadable> = listing.unreadable().collect();
    for bad in &unreadable {
        bad.log_skipped(team);
    }
    let items: Vec<Value> = listing.items().map(view).collect();
    json!({ key: items, "unreadable": unreadable })
}
