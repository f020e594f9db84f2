//! Request extractors whose rejections are JSON errors too, and the helpers that turn a body
//! into a request type.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde_json::{Map, Value};

use super::{ApiError, MAX_BODY_BYTES};
use crate::domain::limits::{MAX_DEPTH, READER_DEPTH};
use crate::domain::{Invalid, from_json};

pub type ApiResult<T = axum::response::Response> = Result<T, ApiError>;

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

/// A JSON request body of at most [`MAX_BODY_BYTES`]; errors are JSON too.
pub struct JsonBody(pub Value);

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// The body's bytes, at most [`MAX_BODY_BYTES`] of them.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("the body could not be read: {e}"),
            )
        }
    })?;
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

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
        let bytes = read_body(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            let message = if e.to_string().starts_with("recursion limit exceeded") {
                format!(
                    "the body nests more than {READER_DEPTH} levels deep; values may nest at most {MAX_DEPTH} levels"
                )
            } else {
                format!("the body is not valid JSON: {e}")
            };
            ApiError::from(Invalid::new("", message))
        })
    }
}

/// A body as its bytes, of at most [`MAX_BODY_BYTES`], for a route that checks a signature
/// over exactly what was sent.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        Ok(RawBody(bytes))
    }
}

/// The body as a JSON object.
pub fn object(body: Value) -> ApiResult<Map<String, Value>> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(Invalid::new("", "the body must be a JSON object").into()),
    }
}

/// The body (a JSON object) as a request type; the error names the field that did not fit.
/// An array is refused too, though serde would read one as the type's fields in order.
pub fn parse<T: serde::de::DeserializeOwned>(body: Value) -> ApiResult<T> {
    if body.is_null() {
        return Err(Invalid::new("", "a JSON body is required").into());
    }
    Ok(from_json(Value::Object(object(body)?))?)
}

/// `?limit=&before=` of a listing, newest first.
#[derive(serde::Deserialize)]
pub struct Page {
    limit: Option<usize>,
    before: Option<String>,
}

impl Page {
    /// The page asked for: `limit` 1 to 200 (default 50) and an optional cursor.
    pub fn read(page: Result<Query<Page>, QueryRejection>) -> ApiResult<(usize, Option<String>)> {
        Self::read_within(page, 50, 200)
    }

    /// The page asked for, with `limit` 1 to `max` (default `default`).
    pub fn read_within(
        page: Result<Query<Page>, QueryRejection>,
        default: usize,
        max: usize,
    ) -> ApiResult<(usize, Option<String>)> {
        let Query(page) = page.map_err(|e| ApiError::from(Invalid::new("query", e.body_text())))?;
        Ok((limit_within(page.limit, default, max)?, page.before))
    }
}

/// A listing's `limit`: 1 to 200, 50 when not given.
pub fn page_limit(limit: Option<usize>) -> ApiResult<usize> {
    limit_within(limit, 50, 200)
}

/// A `limit` from 1 to `max`, `default` when not given.
pub fn limit_within(limit: Option<usize>, default: usize, max: usize) -> ApiResult<usize> {
    let limit = limit.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(
            Invalid::new("limit", format!("must be a whole number from 1 to {max}")).into(),
        );
    }
    Ok(limit)
}
