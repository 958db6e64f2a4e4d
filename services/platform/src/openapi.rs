//! What every service's OpenAPI document shares: the security schemes, and the
//! `application/problem+json` answers this crate's layers give on any route (`server.rs`,
//! `json.rs`, `auth.rs`, `error.rs`). Each service describes its own routes with
//! `#[utoipa::path]` on the handlers; `shop::openapi` composes the documents.

use contracts::Problem;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, RefOr, Response, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

pub const PROBLEM_CONTENT_TYPE: &str = contracts::problem::PROBLEM_CONTENT_TYPE;

/// A user's token, minted by the gateway for each call it proxies (`platform::auth::User`).
pub const USER_TOKEN: &str = "userToken";
/// A service's credential (`platform::auth::Service`): the saga's steps, the event intake.
pub const SERVICE_TOKEN: &str = "serviceToken";
/// The gateway's session cookie: every public `/api` route and the profile and logout.
pub const SESSION: &str = "session";

/// Adds the security schemes and the answers the platform gives on any route.
pub fn finish(doc: &mut OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(Problem::name().into_owned(), Problem::schema());
    let bearer = || SecurityScheme::Http(Http::builder().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build());
    components.security_schemes.insert(USER_TOKEN.to_string(), bearer());
    components.security_schemes.insert(SERVICE_TOKEN.to_string(), bearer());
    components
        .security_schemes
        .insert(SESSION.to_string(), SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("session"))));
    for item in doc.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            add_platform_problems(operation);
        }
    }
}

/// The problems a route can answer whatever its handler does.
fn add_platform_problems(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    let has_path_parameter = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Path));
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    if has_body {
        add_problem(operation, 400, "/problems/malformed-json: the body is not JSON; /problems/invalid-body: JSON of the wrong shape, type or with an unknown field");
        add_problem(operation, 408, "/problems/request-timeout: the body did not arrive within 10 s of the headers");
        add_problem(operation, 413, "/problems/body-too-large: the body is over 64 KiB");
    }
    if has_path_parameter {
        add_problem(operation, 400, "/problems/invalid-path: a path parameter is not a UUID");
    }
    if secured {
        add_problem(operation, 401, "/problems/unauthorized: no valid session or token");
    }
    add_problem(operation, 431, "/problems/headers-too-large: the request headers are over 16 KiB");
    add_problem(operation, 500, "/problems/internal: an error the service did not expect");
    add_problem(
        operation,
        503,
        "/problems/service-unavailable: storage busy or a service unreachable; `Retry-After` says when to try again",
    );
}

/// Documents `status` as a problem; a status the handler documents already keeps its
/// description, with `detail` added.
fn add_problem(operation: &mut Operation, status: u16, detail: &str) {
    let responses = &mut operation.responses.responses;
    match responses.get_mut(&status.to_string()) {
        Some(RefOr::T(response)) => {
            if !response.description.contains(detail) {
                response.description = format!("{}; {detail}", response.description);
            }
            response.content.entry(PROBLEM_CONTENT_TYPE.to_string()).or_insert_with(problem_content);
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert(status.to_string(), RefOr::T(problem_response(detail)));
        }
    }
}

fn problem_content() -> Content {
    Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(Problem::name()))))
}

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new().description(description).content(PROBLEM_CONTENT_TYPE, problem_content()).build()
}
