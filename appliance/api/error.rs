//! The one place where failures become HTTP: Prometheus' error envelope
//! `{"status":"error","errorType":"...","error":"..."}` with the status codes of
//! `web/api/v1/api.go` (`bad_data` 400, `execution` 422, `timeout` 503, `internal` 500).

use crate::query::promql::eval::EvalError;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    NotFound,
    Unavailable,
}

impl ErrorType {
    fn name(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::NotFound => "not_found",
            ErrorType::Unavailable => "unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // 499 is nginx' "client closed request", which Prometheus also uses.
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An API failure: rendered as Prometheus' JSON error envelope.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::BadData, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorType::Internal, message)
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> ApiError {
        let kind = match e {
            EvalError::BadData(_) => ErrorType::BadData,
            EvalError::Timeout(_) => ErrorType::Timeout,
            EvalError::Execution(_) | EvalError::TooManySamples(_) => ErrorType::Execution,
        };
        ApiError::new(kind, e.to_string())
    }
}

impl From<crate::query::ReadError> for ApiError {
    fn from(e: crate::query::ReadError) -> ApiError {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(64 + self.message.len());
        body.push_str(r#"{"status":"error","errorType":""#);
        body.push_str(self.kind.name());
        body.push_str(r#"","error":"#);
        super::json::push_str(&mut body, &self.message);
        body.push('}');
        (
            self.kind.status(),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}
