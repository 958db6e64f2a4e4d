//! Extractors whose rejections are problem+json: `Json<T>` (any content type, 64 KiB),
//! `Path<T>`, the `Idempotency-Key` header, and the fallback that turns any other error
//! response into a problem.

use crate::error::{problem_response, ApiError};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use contracts::order::IdempotencyKey;
use contracts::problem::PROBLEM_CONTENT_TYPE;
use contracts::{Problem, ProblemType};
use serde::de::DeserializeOwned;

/// Largest request body any service accepts.
pub const BODY_SIZE_MAX_BYTES: usize = 64 * 1024;

pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Json<T>, ApiError> {
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(413, ProblemType::BodyTooLarge, "Payload too large", "request body is over 64 KiB")
            } else {
                ApiError::bad_request(ProblemType::InvalidBody, rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON body, naming the problem precisely: syntax, or shape and types.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        use serde_json::error::Category;
        match error.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::bad_request(ProblemType::MalformedJson, format!("malformed JSON: {error}"))
            }
            Category::Data => ApiError::bad_request(ProblemType::InvalidBody, format!("invalid body: {error}")),
        }
    })
}

pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Path<T>, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::bad_request(ProblemType::InvalidPath, rejection.body_text()))
    }
}

/// The `Idempotency-Key` header, where a request may carry one: `None` without it;
/// 400 `/problems/idempotency-key-invalid` unless it is 1-255 printable ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else { return Ok(None) };
    value.to_str().ok().and_then(IdempotencyKey::parse).map(Some).ok_or_else(|| {
        ApiError::bad_request(
            ProblemType::IdempotencyKeyInvalid,
            "Idempotency-Key must be 1-255 printable ASCII characters",
        )
    })
}

/// The `Idempotency-Key` header, where a request must carry one: as [`idempotency_key`],
/// and 400 `/problems/idempotency-key-missing` without it.
pub fn required_idempotency_key(headers: &HeaderMap) -> Result<IdempotencyKey, ApiError> {
    idempotency_key(headers)?.ok_or_else(|| {
        ApiError::bad_request(ProblemType::IdempotencyKeyMissing, "the Idempotency-Key header is required")
    })
}

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Any error response that is not problem+json yet (405, a layer's 413, …) becomes one, so
/// that every error everywhere has the same shape (part of the common layer,
/// `server::common_layer`).
pub fn as_problem(response: Response) -> Response {
    let status = response.status();
    let is_problem =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (kind, title) = match status.as_u16() {
        404 => (ProblemType::NotFound, "Not found"),
        405 => (ProblemType::MethodNotAllowed, "Method not allowed"),
        413 => (ProblemType::BodyTooLarge, "Payload too large"),
        431 => (ProblemType::HeadersTooLarge, "Request header fields too large"),
        code if code < 500 => (ProblemType::BadRequest, "Bad request"),
        _ => (ProblemType::Internal, "Internal error"),
    };
    let problem = Problem::new(status.as_u16(), kind, title, status.canonical_reason().unwrap_or(""));
    let mut rendered = problem_response(&problem, None, None);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rendered
}

/// The router fallback: unknown routes are a 404 problem.
pub async fn unknown_route() -> ApiError {
    ApiError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(key: Option<&[u8]>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_bytes(key).expect("a header value"));
        }
        headers
    }

    fn refusal<T: std::fmt::Debug>(answer: Result<T, ApiError>) -> (u16, Option<ProblemType>) {
        let problem = answer.expect_err("refused").problem;
        (problem.status, problem.kind.known())
    }

    #[test]
    fn an_idempotency_key_is_optional_or_required_and_checked_either_way() {
        assert_eq!(idempotency_key(&headers(None)).expect("optional"), None);
        let key = idempotency_key(&headers(Some(b"k-1"))).expect("valid").expect("present");
        assert_eq!(key.as_str(), "k-1");
        assert_eq!(required_idempotency_key(&headers(Some(b"k-1"))).expect("valid"), key);
        let missing = (400, Some(ProblemType::IdempotencyKeyMissing));
        assert_eq!(refusal(required_idempotency_key(&headers(None))), missing);
        let invalid = (400, Some(ProblemType::IdempotencyKeyInvalid));
        for bad in [&b""[..], b"tab\there", &[b'k'; 256], "caf\u{e9}".as_bytes()] {
            assert_eq!(refusal(idempotency_key(&headers(Some(bad)))), invalid, "{bad:?}");
            assert_eq!(refusal(required_idempotency_key(&headers(Some(bad)))), invalid, "{bad:?}");
        }
    }
}
