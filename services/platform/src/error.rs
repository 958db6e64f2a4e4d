//! `ApiError`: the one error type every handler returns, rendered as problem+json.

use crate::storage::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use contracts::problem::PROBLEM_CONTENT_TYPE;
use contracts::{Problem, ProblemType};

#[derive(Clone, Debug)]
pub struct ApiError {
    pub problem: Problem,
    pub retry_after_s: Option<u32>,
    pub location: Option<String>,
}

impl ApiError {
    pub fn new(status: u16, kind: ProblemType, title: &str, detail: impl Into<String>) -> ApiError {
        ApiError { problem: Problem::new(status, kind, title, detail), retry_after_s: None, location: None }
    }

    pub fn bad_request(kind: ProblemType, detail: impl Into<String>) -> ApiError {
        ApiError::new(400, kind, "Bad request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(401, ProblemType::Unauthorized, "Unauthorized", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(404, ProblemType::NotFound, "Not found", detail)
    }

    pub fn conflict(kind: ProblemType, detail: impl Into<String>) -> ApiError {
        ApiError::new(409, kind, "Conflict", detail)
    }

    pub fn unprocessable(kind: ProblemType, detail: impl Into<String>) -> ApiError {
        ApiError::new(422, kind, "Unprocessable request", detail)
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_s: u32) -> ApiError {
        let mut error = ApiError::new(503, ProblemType::ServiceUnavailable, "Service unavailable", detail);
        error.retry_after_s = Some(retry_after_s);
        error
    }

    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(500, ProblemType::Internal, "Internal error", detail)
    }

    pub fn with_order(mut self, order: serde_json::Value) -> ApiError {
        self.problem.order = Some(order);
        self
    }

    pub fn with_retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }
}

/// `Retry-After` of a request turned away by a transient storage failure.
pub const STORAGE_RETRY_AFTER_S: u32 = 1;

/// A transient storage failure (busy, locked, I/O error: the transaction left no effect) is
/// 503 with `Retry-After`, logged as a warning; any other is a bug: 500, logged at ERROR.
impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        if error.is_transient() {
            tracing::warn!(%error, "storage unavailable; nothing was written");
            return ApiError::unavailable("storage is unavailable; nothing was written", STORAGE_RETRY_AFTER_S);
        }
        tracing::error!(%error, "storage failure");
        ApiError::internal("storage failure")
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(error: rusqlite::Error) -> ApiError {
        ApiError::from(StoreError::from(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(&self.problem, self.retry_after_s, self.location.as_deref())
    }
}

/// Renders a problem with its content type and the optional `Retry-After`/`Location`.
pub fn problem_response(problem: &Problem, retry_after_s: Option<u32>, location: Option<&str>) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
    if let Some(seconds) = retry_after_s {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(value) = location.and_then(|l| HeaderValue::from_str(l).ok()) {
        headers.insert(header::LOCATION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transient_storage_failure_is_503_and_any_other_500() {
        let busy = crate::storage_fault::StorageFailure::Busy.error();
        let answer = ApiError::from(busy);
        assert_eq!((answer.problem.status, answer.retry_after_s), (503, Some(STORAGE_RETRY_AFTER_S)));
        let io = crate::storage_fault::StorageFailure::IoError.error();
        assert_eq!(ApiError::from(io).problem.status, 503);
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_CHECK),
            Some("CHECK constraint failed".into()),
        );
        let answer = ApiError::from(constraint);
        assert_eq!((answer.problem.status, answer.retry_after_s), (500, None));
        let response = ApiError::from(crate::storage_fault::StorageFailure::Busy.error()).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
    }
}
