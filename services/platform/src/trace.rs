//! Request context: `X-Request-Id` echoed or minted, W3C `traceparent` continued (the
//! incoming span is the parent of this request's; every downstream call names a new span of
//! the same trace), and one tracing span per request.

use crate::ids::Ids;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use std::future::Future;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const REQUEST_ID_LENGTH_MAX: usize = 128;

/// What a handler passes on to every downstream call it makes for this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The span id of a valid incoming `traceparent`: the parent of this request's span.
    pub parent_span_id: Option<String>,
}

impl RequestContext {
    /// A context for work that no request started (saga recovery, outbox relay).
    pub fn background(ids: &Ids) -> RequestContext {
        RequestContext { request_id: ids.uuid().to_string(), trace_id: ids.hex(16), parent_span_id: None }
    }

    /// The `traceparent` for one downstream call: same trace, a fresh parent span id.
    pub fn child_traceparent(&self, ids: &Ids) -> String {
        format!("00-{}-{}-01", self.trace_id, ids.hex(8))
    }
}

/// Parses a W3C `traceparent` (version 00) and returns its trace id and parent span id.
pub fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let valid = parts.len() == 4
        && hex(parts[0], 2)
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && hex(parts[3], 2)
        && parts[1] != "0".repeat(32)
        && parts[2] != "0".repeat(16);
    valid.then(|| (parts[1].to_string(), parts[2].to_string()))
}

/// Every 5xx a service sends is logged here, the one place every service shares: a 500 (or
/// any 5xx other than "unavailable") is a bug or a broken invariant and logs at ERROR; 502,
/// 503 and 504 say a peer or a dependency could not be reached, which faults explain, and log
/// at WARN.
fn log_server_error(status: u16, method: &axum::http::Method, uri: &axum::http::Uri, request_id: &str) {
    match status {
        502..=504 => tracing::warn!(status, %method, path = uri.path(), request_id, "answered unavailable"),
        500..=599 => tracing::error!(status, %method, path = uri.path(), request_id, "answered an internal error"),
        _ => {}
    }
}

fn valid_request_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= REQUEST_ID_LENGTH_MAX && value.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Builds the [`RequestContext`], runs `inner` with the request in its span, echoes the id
/// (part of the common layer, `server::common_layer`).
pub async fn in_request_context<F: Future<Output = Response>>(
    ids: &Ids,
    mut request: Request,
    inner: impl FnOnce(Request) -> F,
) -> Response {
    let headers = request.headers();
    let request_id = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(|| ids.uuid().to_string());
    let incoming = headers.get(&TRACEPARENT).and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
    let (trace_id, parent_span_id) = match incoming {
        Some((trace_id, parent)) => (trace_id, Some(parent)),
        None => (ids.hex(16), None),
    };
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        trace_id = %trace_id,
        parent_span_id = parent_span_id.as_deref().unwrap_or(""),
    );
    let context = RequestContext { request_id: request_id.clone(), trace_id, parent_span_id };
    let (method, uri) = (request.method().clone(), request.uri().clone());
    request.extensions_mut().insert(context);
    let mut response = inner(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    span.in_scope(|| {
        tracing::debug!(status, "answered");
        log_server_error(status, &method, &uri, &request_id);
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_validated() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parsed = parse_traceparent(good).unwrap();
        assert_eq!((parsed.0.as_str(), parsed.1.as_str()), ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"));
        assert_eq!(parse_traceparent("00-zz-00f067aa0ba902b7-01"), None);
        let zero = format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32));
        assert_eq!(parse_traceparent(&zero), None);
        let zero_parent = format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", "0".repeat(16));
        assert_eq!(parse_traceparent(&zero_parent), None);
    }
}
