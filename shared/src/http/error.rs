//! API errors: a status and a JSON body that says what was wrong and where.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::Invalid;
use crate::usecases::Error;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            field: None,
            message: message.into(),
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API key as Authorization: Bearer <key>",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        let message = if e.field.is_empty() {
            e.message.clone()
        } else {
            e.to_string()
        };
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            field: Some(e.field),
            message,
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(invalid) => invalid.into(),
            Error::NotFound(m) => Self::not_found(m),
            Error::Missing(invalid) => Self {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: invalid.to_string(),
                field: Some(invalid.field),
            },
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Error::Store(e) => {
                tracing::error!(error = %e, "store failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "storage is unavailable; try again",
                )
            }
            Error::Unreadable(bad) => {
                tracing::error!(kind = bad.kind, id = %bad.id, error = %bad.error, "stored item cannot be read");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "unreadable",
                    format!("{bad}; delete it, or restore it from a backup"),
                )
            }
            Error::Queue(e) => {
                tracing::error!(error = %e, "queue failed");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the queue is unavailable; try again",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(field) = self.field.filter(|f| !f.is_empty()) {
            error["field"] = json!(field);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
