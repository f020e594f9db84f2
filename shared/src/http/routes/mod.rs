//! Routes of the API, one file per resource, and who may use each. Every route but
//! `/healthz` and a source's receive path (whose deliveries are signed) needs a Bearer
//! key: the operator's, or a team key whose role allows it.

mod api_keys;
mod apply;
mod audit;
mod automations;
mod dead_letters;
mod events;
mod executions;
mod integrations;
mod jobs;
mod queues;
mod secrets;
mod sources;
mod teams;

use std::sync::Arc;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::ApiResult;
use super::rate_limit::{RateLimiter, retry_after_seconds};
use super::{ApiError, MAX_BODY_BYTES};
use crate::domain::access::{Access, Actor, KeyHash};
use crate::ports::{DeadLetters, KeyLookup, Listing, Unreadable};
use crate::usecases::access::{Unauthenticated, authenticate};
use crate::usecases::{Engine, manage};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    operator_key: Arc<KeyHash>,
    /// The runtime's dead-letter queues, where it keeps them itself (the local runtime);
    /// on AWS they are SQS queues, redriven with SQS.
    dead_letters: Option<Arc<dyn DeadLetters>>,
    /// The events route's buckets, per key.
    ingest_limiter: Arc<RateLimiter>,
}

impl AppState {
    /// Keeps only the operator key's hash.
    pub fn new(engine: Engine, operator_key: &str) -> Self {
        let ingest_limiter = Arc::new(RateLimiter::new(engine.settings.ingest_limit));
        Self {
            engine,
            operator_key: Arc::new(KeyHash::of(operator_key)),
            dead_letters: None,
            ingest_limiter,
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

/// One route of the API: what it is and who may use it. The router is built from the
/// table [`routes`] returns, so every route served has an entry there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub method: Method,
    /// The path as the router matches it, e.g. `/v1/teams/{team}/automations/{id}`.
    pub path: &'static str,
    /// What the caller needs; `None` for the routes anyone may call.
    pub access: Option<Access>,
}

impl RouteSpec {
    /// Whether `surface` serves this route: the ingest function the events route, the api
    /// function the others.
    pub fn served_by(&self, surface: Surface) -> bool {
        // Both take what producers send: events, and other systems' webhooks. Listing the
        // recent events is management.
        let events =
            self.method == Method::POST && (self.path == EVENTS_PATH || self.path == RECEIVE_PATH);
        match surface {
            Surface::All => true,
            Surface::Ingest => events,
            Surface::Management => !events,
        }
    }
}

const EVENTS_PATH: &str = "/v1/teams/{team}/events";
/// Where a source's system sends its webhooks: no key, a signature.
const RECEIVE_PATH: &str = "/v1/teams/{team}/sources/{id}/receive";

/// Every route, with its handler.
fn table() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Access::{Admin, Operator, Read, Send, Work};
    let route = |method: Method, path: &'static str, access: Option<Access>, handler| {
        let spec = RouteSpec {
            method,
            path,
            access,
        };
        (spec, handler)
    };
    vec![
        route(Method::GET, "/healthz", None, get(health)),
        route(Method::GET, "/openapi.json", None, get(openapi)),
        route(Method::GET, "/v1/teams", Some(Operator), get(teams::list)),
        route(
            Method::POST,
            "/v1/teams",
            Some(Operator),
            post(teams::create),
        ),
        route(Method::GET, "/v1/teams/{team}", Some(Read), get(teams::get)),
        route(Method::POST, EVENTS_PATH, Some(Send), post(events::post)),
        route(Method::GET, EVENTS_PATH, Some(Read), get(events::list)),
        route(
            Method::POST,
            "/v1/teams/{team}/apply",
            Some(Admin),
            post(apply::apply),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/export",
            Some(Read),
            get(apply::export),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/automations",
            Some(Read),
            get(automations::list),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/automations",
            Some(Admin),
            post(automations::create),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/automations/preview",
            Some(Admin),
            post(automations::preview),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/automations/{id}",
            Some(Read),
            get(automations::get),
        ),
        route(
            Method::PUT,
            "/v1/teams/{team}/automations/{id}",
            Some(Admin),
            put(automations::replace),
        ),
        route(
            Method::PATCH,
            "/v1/teams/{team}/automations/{id}",
            Some(Admin),
            patch(automations::patch),
        ),
        route(
            Method::DELETE,
            "/v1/teams/{team}/automations/{id}",
            Some(Admin),
            delete(automations::delete),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/automations/{id}/executions",
            Some(Read),
            get(executions::list),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/integrations",
            Some(Read),
            get(integrations::list),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/integrations",
            Some(Admin),
            post(integrations::create),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/integrations/{id}",
            Some(Read),
            get(integrations::get),
        ),
        route(
            Method::PUT,
            "/v1/teams/{team}/integrations/{id}",
            Some(Admin),
            put(integrations::replace),
        ),
        route(
            Method::DELETE,
            "/v1/teams/{team}/integrations/{id}",
            Some(Admin),
            delete(integrations::delete),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/integrations/{id}/test",
            Some(Admin),
            post(integrations::test),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/secrets",
            Some(Read),
            get(secrets::list),
        ),
        route(
            Method::PUT,
            "/v1/teams/{team}/secrets/{name}",
            Some(Admin),
            put(secrets::put),
        ),
        route(
            Method::DELETE,
            "/v1/teams/{team}/secrets/{name}",
            Some(Admin),
            delete(secrets::delete),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/executions",
            Some(Read),
            get(executions::list_team),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/executions/{id}",
            Some(Read),
            get(executions::get),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/executions/{id}/retry",
            Some(Admin),
            post(executions::retry),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/queues",
            Some(Read),
            get(queues::list),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/queues",
            Some(Admin),
            post(queues::create),
        ),
        route(
            Method::DELETE,
            "/v1/teams/{team}/queues/{queue}",
            Some(Admin),
            delete(queues::delete),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/queues/{queue}/claim",
            Some(Work),
            post(queues::claim),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/queues/{queue}/jobs",
            Some(Read),
            get(queues::jobs),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/jobs/{id}",
            Some(Read),
            get(jobs::get),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/jobs/{id}/heartbeat",
            Some(Work),
            post(jobs::heartbeat),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/jobs/{id}/complete",
            Some(Work),
            post(jobs::complete),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/sources",
            Some(Read),
            get(sources::list),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/sources",
            Some(Admin),
            post(sources::create),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/sources/{id}",
            Some(Read),
            get(sources::get),
        ),
        route(
            Method::DELETE,
            "/v1/teams/{team}/sources/{id}",
            Some(Admin),
            delete(sources::delete),
        ),
        route(Method::POST, RECEIVE_PATH, None, post(sources::receive)),
        route(
            Method::GET,
            "/v1/teams/{team}/api-keys",
            Some(Admin),
            get(api_keys::list),
        ),
        route(
            Method::POST,
            "/v1/teams/{team}/api-keys",
            Some(Admin),
            post(api_keys::create),
        ),
        route(
            Method::DELETE,
            "/v1/teams/{team}/api-keys/{id}",
            Some(Admin),
            delete(api_keys::revoke),
        ),
        route(
            Method::GET,
            "/v1/teams/{team}/audit",
            Some(Admin),
            get(audit::list),
        ),
        route(
            Method::GET,
            "/v1/dead-letters",
            Some(Operator),
            get(dead_letters::list),
        ),
        route(
            Method::POST,
            "/v1/dead-letters/redrive",
            Some(Operator),
            post(dead_letters::redrive),
        ),
    ]
}

/// Every route of the API and what it needs.
pub fn routes() -> Vec<RouteSpec> {
    table().into_iter().map(|(spec, _)| spec).collect()
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    router_for(state, Surface::All)
}

/// The routes of one surface; the others answer 404.
pub fn router_for(state: AppState, surface: Surface) -> Router {
    let mut router = Router::new();
    for (spec, handler) in table() {
        if !spec.served_by(surface) {
            continue;
        }
        let handler = match spec.access {
            None => handler,
            Some(access) => handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), access),
                authorize,
            )),
        };
        router = router.route(spec.path, handler);
    }
    // The console is served with the management routes it calls.
    if surface != Surface::Ingest {
        router = router.merge(super::console::router());
    }
    router
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

/// The OpenAPI document of every route.
async fn openapi() -> Json<&'static Value> {
    Json(super::openapi::document())
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Finds the caller from its key, checks what the route needs, counts the events route's
/// requests against the key's bucket, and hands the caller to the handler.
async fn authorize(
    State((state, access)): State<(AppState, Access)>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    // Only the events route, the hot path, may trust a cached key lookup: everything else
    // sees a revocation at once, wherever it was made.
    let lookup = if access == Access::Send {
        KeyLookup::MayBeCached
    } else {
        KeyLookup::Fresh
    };
    let caller = match authenticate(&state.engine, &state.operator_key, presented, lookup).await {
        Ok(caller) => caller,
        Err(Unauthenticated::Unavailable(e)) => {
            tracing::error!(error = %e, "key lookup failed");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the keys cannot be checked now; try again",
            )
            .into_response();
        }
        Err(_) => return ApiError::unauthorized().into_response(),
    };
    let team = params.ok().and_then(|params| {
        params
            .iter()
            .find(|(name, _)| *name == "team")
            .map(|(_, value)| value.to_string())
    });
    if let Err(denied) = caller.authorize(access, team.as_deref()) {
        return ApiError::new(StatusCode::FORBIDDEN, "forbidden", denied.to_string())
            .into_response();
    }
    if access == Access::Send
        && let Err(wait) = state.ingest_limiter.take(&caller.bucket())
    {
        return rate_limited(
            wait,
            "this key sent events faster than its limit; nothing of this request was accepted",
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A 429 saying what went over its limit, with `Retry-After`.
fn rate_limited(wait: std::time::Duration, what: &str) -> Response {
    let seconds = retry_after_seconds(wait);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("{what}; send it again in {seconds} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The caller, as [`authorize`] found it.
pub struct Caller(pub crate::domain::access::Caller);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<crate::domain::access::Caller>()
            .cloned()
            .map(Caller)
            .ok_or_else(ApiError::unauthorized)
    }
}

impl Caller {
    pub fn actor(&self) -> Actor {
        self.0.actor()
    }
}

/// The team must exist.
async fn team(state: &AppState, name: &str) -> ApiResult<()> {
    manage::team(&state.engine, name).await?;
    Ok(())
}

fn created(value: Value) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// A page of a listing as the API answers it: [`listed`], and `next_before`, the cursor of
/// the next page (the page's oldest entry, readable or not) when the page is full.
fn paged<T>(
    team: &str,
    key: &str,
    listing: &Listing<T>,
    limit: usize,
    id: impl Fn(&T) -> &str,
    view: impl Fn(&T) -> Value,
) -> Value {
    let next = (listing.entries.len() == limit)
        .then(|| listing.entries.last())
        .flatten()
        .map(|last| match last {
            Ok(item) => id(item).to_string(),
            Err(bad) => bad.id.clone(),
        });
    let mut answer = listed(team, key, listing, view);
    answer["next_before"] = next.map_or(Value::Null, Value::String);
    answer
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer_token("Bearer atm_x"), Some("atm_x"));
        assert_eq!(bearer_token("bearer  atm_x "), Some("atm_x"));
        assert_eq!(bearer_token("BEARER atm_x"), Some("atm_x"));
        assert_eq!(bearer_token("Basic atm_x"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("atm_x"), None);
    }

    #[test]
    fn every_route_is_served_by_one_lambda_surface() {
        for route in routes() {
            let served = [Surface::Ingest, Surface::Management]
                .iter()
                .filter(|s| route.served_by(**s))
                .count();
            assert_eq!(served, 1, "{} {}", route.method, route.path);
            assert!(route.served_by(Surface::All));
        }
    }
}
