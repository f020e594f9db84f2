//! `/v1/teams/{team}/sources`: the team's sources, and the path each one receives its
//! system's webhooks on (authenticated by their signature, not by a key).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::json;

use super::{AppState, Caller, created, listed, rate_limited, team};
use crate::domain::source::mlflow::{
    DELIVERY_ID_HEADER, SIGNATURE_HEADER, Signed, TIMESTAMP_HEADER,
};
use crate::domain::source::{Source, SourceInput};
use crate::http::ApiError;
use crate::http::extract::{ApiPath, ApiResult, JsonBody, RawBody, parse};
use crate::usecases::sources::{self, ReceiveError, Received};

pub async fn create(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(t): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> ApiResult {
    team(&s, &t).await?;
    let input: SourceInput = parse(body)?;
    let source = sources::create_source(&s.engine, &caller.actor(), &t, input).await?;
    Ok(created(source.public_view()))
}

pub async fn list(State(s): State<AppState>, ApiPath(t): ApiPath<String>) -> ApiResult {
    team(&s, &t).await?;
    let listing = sources::list_sources(&s.engine, &t).await?;
    Ok(Json(listed(&t, "sources", &listing, Source::public_view)).into_response())
}

pub async fn get(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    Ok(Json(sources::get_source(&s.engine, &t, &id).await?.public_view()).into_response())
}

pub async fn delete(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath((t, id)): ApiPath<(String, String)>,
) -> ApiResult {
    team(&s, &t).await?;
    sources::delete_source(&s.engine, &caller.actor(), &t, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One delivery: 202 `{"accepted", "duplicates"}` once its event is queued, 200
/// `{"ignored": "<entity.action>"}` for an event with no counterpart, 401 when its
/// signature or timestamp does not hold (nothing is stored).
pub async fn receive(
    State(s): State<AppState>,
    ApiPath((t, id)): ApiPath<(String, String)>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        delivery_id: text(DELIVERY_ID_HEADER),
        timestamp: text(TIMESTAMP_HEADER),
        signature: text(SIGNATURE_HEADER),
    };
    let verified = sources::receive(&s.engine, &t, &id, &signed, &body, || {
        s.ingest_limiter.take(&format!("source:{t}/{id}"))
    })
    .await;
    match verified {
        Ok(Received::Ingested(report)) => {
            Ok((StatusCode::ACCEPTED, Json(json!(report))).into_response())
        }
        Ok(Received::Ignored(what)) => Ok(Json(json!({"ignored": what})).into_response()),
        Err(ReceiveError::NoSource(id)) => Err(ApiError::not_found(format!(
            "no source {id} in this team; the MLflow webhook's URL must be a source's receive_path"
        ))),
        Err(ReceiveError::Unsigned(why)) => Err(ApiError {
            field: Some(why.header().to_string()),
            ..ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", why.to_string())
        }),
        Err(e @ ReceiveError::NoSecret) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            e.to_string(),
        )),
        Err(ReceiveError::RateLimited(wait)) => Ok(rate_limited(
            wait,
            "this source sent deliveries faster than its limit; nothing of this one was accepted",
        )),
        Err(ReceiveError::Engine(e)) => Err(e.into()),
    }
}
