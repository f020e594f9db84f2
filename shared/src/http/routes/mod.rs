//! Routes of the API. Every route but `/healthz` needs the Bearer key.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{ApiError, MAX_BODY_BYTES};
use crate::domain::Invalid;
use crate::domain::automation::AutomationInput;
use crate::domain::from_json;
use crate::domain::integration::IntegrationInput;
use crate::usecases::ingest::{ingest, parse_events};
use crate::usecases::{Engine, manage};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    operator_key_sha256: Arc<[u8; 32]>,
}

impl AppState {
    /// Keeps only the operator key's hash.
    pub fn new(engine: Engine, operator_key: &str) -> Self {
        Self {
            engine,
            operator_key_sha256: Arc::new(Sha256::digest(operator_key.as_bytes()).into()),
        }
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

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
        team_routes = team_routes.route("/events", post(post_events));
    }
    if surface != Surface::Ingest {
        team_routes = team_routes
            .route("/", get(get_team))
            .route(
                "/automations",
                get(list_automations).post(create_automation),
            )
            .route(
                "/automations/{id}",
                get(get_automation)
                    .put(replace_automation)
                    .patch(patch_automation)
                    .delete(delete_automation),
            )
            .route("/automations/{id}/executions", get(list_executions))
            .route(
                "/integrations",
                get(list_integrations).post(create_integration),
            )
            .route(
                "/integrations/{id}",
                get(get_integration)
                    .put(replace_integration)
                    .delete(delete_integration),
            )
            .route("/integrations/{id}/test", post(test_integration))
            .route("/secrets", get(list_secrets))
            .route("/secrets/{name}", put(put_secret).delete(delete_secret))
            .route("/executions/{id}", get(get_execution))
            .route("/executions/{id}/retry", post(retry_execution));
    }
    let mut api = Router::new().nest("/teams/{team}", team_routes);
    if surface != Surface::Ingest {
        api = api.route("/teams", get(list_teams).post(create_team));
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

/// Path parameters; a rejection (e.g. invalid percent-encoding) is a JSON error too.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

/// A JSON request body of at most 1 MiB; errors are JSON too.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            if !ct.starts_with("application/json") {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send Content-Type: application/json, not {ct:?}"),
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("the body could not be read: {e}"),
                )
            }
        })?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            ));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::from(Invalid::new("", format!("the body is not valid JSON: {e}")))
        })
    }
}

fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(Invalid::new("", "the body must be a JSON object").into()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: Value) -> ApiResult<T> {
    if body.is_null() {
        return Err(Invalid::new("", "a JSON body is required").into());
    }
    Ok(from_json(body)?)
}

async fn team(state: &AppState, name: &str) -> ApiResult<()> {
    manage::team(&state.engine, name).await?;
    Ok(())
}

fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    name: String,
}

async fn create_team(State(s): State<AppState>, JsonBody(body): JsonBody) -> ApiResult {
    let input: NewTeam = parse(body)?;
    let team = manage::create_team(&s.engine, &input.name).await?;
    Ok(created(json!(team)))
}

async fn list_teams(State(s): State<AppState>) -> ApiResult {
    let teams = s
        .engine
        .store
        .list_teams()
        .await
        .map_err(crate::usecases::Error::from)?;
    Ok(Json(json!({ "teams": teams })).into_response())
}

async fn get_team(State(s): State<AppState>, ApiPath(name): ApiPath<String>) -> ApiResult {
    Ok(Json(json!(manage::team(&s.engine, &name).await?)).into_response())
}

async fn post_events(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let events = parse_events(&s.engine, &t, body)?;
    let report = ingest(&s.engine, &t, events).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(report))).into_response())
}

async fn create_automation(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let automation = manage::create_automation(&s.engine, &t, parse(body)?).await?;
    Ok(created(automation.public_view()))
}

async fn list_automations(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let list = s
        .engine
        .store
        .list_automations(&t)
        .await
        .map_err(crate::usecases::Error::from)?;
    let views: Vec<Value> = list.iter().map(|a| a.public_view()).collect();
    Ok(Json(json!({ "automations": views })).into_response())
}

async fn get_automation(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    Ok(Json(
        manage::get_automation(&s.engine, &t, &id)
            .await?
            .public_view(),
    )
    .into_response())
}

async fn replace_automation(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: AutomationInput = parse(body)?;
    Ok(Json(
        manage::replace_automation(&s.engine, &t, &id, input)
            .await?
            .public_view(),
    )
    .into_response())
}

async fn patch_automation(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let patch = object(body)?;
    Ok(Json(
        manage::patch_automation(&s.engine, &t, &id, patch)
            .await?
            .public_view(),
    )
    .into_response())
}

async fn delete_automation(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::delete_automation(&s.engine, &t, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    before: Option<String>,
}

async fn list_executions(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    page: Result<Query<Page>, QueryRejection>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::get_automation(&s.engine, &t, &id).await?;
    let Query(page) = page.map_err(|e| ApiError::from(Invalid::new("query", e.body_text())))?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Invalid::new("limit", "must be a whole number from 1 to 200").into());
    }
    let list = s
        .engine
        .store
        .list_executions(&t, &id, limit, page.before.as_deref())
        .await
        .map_err(crate::usecases::Error::from)?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|e| e.id.clone()))
        .flatten();
    let views: Vec<Value> = list.iter().map(|e| e.public_view()).collect();
    Ok(Json(json!({ "executions": views, "next_before": next })).into_response())
}

async fn create_integration(
    State(s): State<AppState>,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: IntegrationInput = parse(body)?;
    Ok(created(json!(
        manage::create_integration(&s.engine, &t, input).await?
    )))
}

async fn list_integrations(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let list = s
        .engine
        .store
        .list_integrations(&t)
        .await
        .map_err(crate::usecases::Error::from)?;
    Ok(Json(json!({ "integrations": list })).into_response())
}

async fn get_integration(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    Ok(Json(json!(manage::get_integration(&s.engine, &t, &id).await?)).into_response())
}

async fn replace_integration(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: IntegrationInput = parse(body)?;
    Ok(Json(json!(
        manage::replace_integration(&s.engine, &t, &id, input).await?
    ))
    .into_response())
}

async fn delete_integration(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::delete_integration(&s.engine, &t, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestRequest {
    payload: Option<Value>,
}

async fn test_integration(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let request: TestRequest = if body.is_null() {
        TestRequest { payload: None }
    } else {
        parse(body)?
    };
    Ok(Json(manage::test_integration(&s.engine, &t, &id, request.payload).await?).into_response())
}

async fn list_secrets(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let list = s
        .engine
        .secrets
        .list_secrets(&t)
        .await
        .map_err(crate::usecases::Error::from)?;
    Ok(Json(json!({ "secrets": list })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretInput {
    value: String,
}

async fn put_secret(
    State(s): State<AppState>,
    ApiPath((t, name)): ApiPath<(String, String)>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: SecretInput = parse(body)?;
    Ok(Json(json!(
        manage::put_secret(&s.engine, &t, &name, input.value).await?
    ))
    .into_response())
}

async fn delete_secret(
    State(s): State<AppState>,
    ApiPath((t, name)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    manage::delete_secret(&s.engine, &t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn get_execution(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    Ok(Json(
        manage::get_execution(&s.engine, &t, &id)
            .await?
            .public_view(),
    )
    .into_response())
}

async fn retry_execution(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    let execution = manage::retry_execution(&s.engine, &t, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(execution.public_view())).into_response())
}
