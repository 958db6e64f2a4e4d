//! Registration, login, profile and logout, and the session extractor the proxy uses.

use crate::store::{
    delete_session, insert_session, live_session_count, session, touch_session, user_by_email, user_by_id,
};
use crate::Gateway;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::TimeDelta;
use contracts::auth::{LoginRequest, LoginResponse, Profile, RegisterRequest};
use contracts::ProblemType;
use contracts::UserId;
use platform::json::Json;
use platform::metrics::LoginResult;
use platform::sql::time_text;
use platform::storage::Cached;
use platform::ApiError;
use rusqlite::params;
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "session";
pub const PASSWORD_LENGTH_MIN: usize = 8;
pub const PASSWORD_LENGTH_MAX: usize = 1024;
pub const EMAIL_LENGTH_MAX: usize = 254;
pub const NAME_LENGTH_MAX: usize = 100;

type Shared = State<Arc<Gateway>>;

pub fn routes() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/", post(login_at_root))
        .route("/auth/profile/me", get(profile))
        .route("/auth/logout", post(logout))
}

/// Lower-cased, trimmed, one `@`, a dot in the domain, no spaces.
pub fn normalize_email(email: &str) -> Option<String> {
    let email = email.trim().to_ascii_lowercase();
    let (local, domain) = email.split_once('@')?;
    let plausible = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && email.len() <= EMAIL_LENGTH_MAX
        && email.chars().all(|c| c.is_ascii_graphic());
    plausible.then_some(email)
}

fn hasher(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// An Argon2id PHC string for `password` with the given salt bytes.
pub fn hash_password(params: &Params, password: &str, salt: &[u8; 16]) -> Result<String, ApiError> {
    let salt = SaltString::encode_b64(salt).map_err(|e| ApiError::internal(e.to_string()))?;
    let hash =
        hasher(params).hash_password(password.as_bytes(), &salt).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC string.
fn password_matches(params: &Params, password: &str, stored: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|hash| hasher(params).verify_password(password.as_bytes(), &hash).is_ok())
}

impl Gateway {
    /// Runs one Argon2id computation on the bounded pool: at most
    /// `password_hash_concurrency_max` at once (each holds `memory_kib`), off the async
    /// workers (`Spawner::run_blocking`). Over the cap: 503 with `Retry-After`, at once.
    /// The permit goes with the work, so a hash whose request was dropped still counts
    /// until it ends.
    async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Params) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(permit) = self.hash_slots.clone().try_acquire_owned() else {
            return Err(ApiError::unavailable("too many password checks at once; try again shortly", 1));
        };
        let params = self.argon2_params.clone();
        let value = self
            .env
            .spawner
            .run_blocking(move || {
                let _permit = permit;
                work(&params)
            })
            .await;
        Ok(value)
    }
}

#[utoipa::path(post, path = "/auth/register", operation_id = "register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered (not logged in)", body = Profile),
        (status = 400, description = "/problems/invalid-email; /problems/invalid-password: 8-1,024 characters; /problems/invalid-name: over 100 characters", body = contracts::Problem, content_type = "application/problem+json"),
        (status = 409, description = "/problems/email-taken", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn register(state: Shared, Json(request): Json<RegisterRequest>) -> Result<Response, ApiError> {
    let email = normalize_email(&request.email)
        .ok_or_else(|| ApiError::bad_request(ProblemType::InvalidEmail, "email is not a valid address"))?;
    let length = request.password.chars().count();
    if !(PASSWORD_LENGTH_MIN..=PASSWORD_LENGTH_MAX).contains(&length) {
        return Err(ApiError::bad_request(ProblemType::InvalidPassword, "password must be 8-1024 characters"));
    }
    let names = [&request.first_name, &request.last_name];
    if names.iter().any(|n| n.as_ref().is_some_and(|n| n.chars().count() > NAME_LENGTH_MAX)) {
        return Err(ApiError::bad_request(ProblemType::InvalidName, "names must be at most 100 characters"));
    }
    let mut salt = [0u8; 16];
    state.env.ids.fill(&mut salt);
    let password = request.password.clone();
    let password_hash = state.hashing(move |params| hash_password(params, &password, &salt)).await??;
    let user_id = state.env.ids.id::<UserId>();
    let now = time_text(state.env.clock.now_utc());
    state.db.write(|tx| {
        if user_by_email(tx, &email)?.is_some() {
            return Err(ApiError::conflict(ProblemType::EmailTaken, "an account with this email exists"));
        }
        tx.execute_cached(
            "INSERT INTO users (id, email, password_hash, first_name, last_name, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![user_id.to_string(), email, password_hash, request.first_name, request.last_name, now],
        )?;
        Ok(())
    })
    .await?;
    tracing::info!(%user_id, "registered");
    let profile = Profile { user_id, email, first_name: request.first_name, last_name: request.last_name };
    Ok((StatusCode::CREATED, axum::Json(profile)).into_response())
}

/// The seed's spelling of the login route: the same as `/auth/login`.
#[utoipa::path(post, path = "/auth/", operation_id = "loginAtAuthRoot", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in: the session cookie is set", body = LoginResponse, headers(("Set-Cookie" = String, description = "`session=<id>; HttpOnly; SameSite=Lax; Path=/; Max-Age=86400`"))),
        (status = 401, description = "/problems/invalid-credentials: the same answer for an unknown email and a wrong password", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn login_at_root(state: Shared, body: Json<LoginRequest>) -> Result<Response, ApiError> {
    login(state, body).await
}

fn invalid_credentials() -> ApiError {
    ApiError::new(401, ProblemType::InvalidCredentials, "Unauthorized", "wrong email or password")
}

#[utoipa::path(post, path = "/auth/login", operation_id = "login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in: the session cookie is set", body = LoginResponse, headers(("Set-Cookie" = String, description = "`session=<id>; HttpOnly; SameSite=Lax; Path=/; Max-Age=86400`"))),
        (status = 401, description = "/problems/invalid-credentials: the same answer for an unknown email and a wrong password", body = contracts::Problem, content_type = "application/problem+json"),
    ))]
async fn login(state: Shared, Json(request): Json<LoginRequest>) -> Result<Response, ApiError> {
    let email = normalize_email(&request.email);
    let user = match &email {
        Some(email) => state.db.read(|c| user_by_email(c, email))?,
        None => None,
    };
    let stored = user.as_ref().map_or_else(|| state.decoy_hash.clone(), |u| u.password_hash.clone());
    let password = request.password;
    let matches = state.hashing(move |params| password_matches(params, &password, &stored)).await?;
    let Some(user) = user.filter(|_| matches) else {
        if let Some(metrics) = state.env.metrics.gateway() {
            metrics.login(LoginResult::failure);
        }
        return Err(invalid_credentials());
    };
    let session_id = state.env.ids.secret_hex(32);
    let now = state.env.clock.now_utc();
    state.db.write(|tx| insert_session(tx, &session_id, user.id, now)).await?;
    if let Some(metrics) = state.env.metrics.gateway() {
        metrics.login(LoginResult::success);
    }
    state.count_live_sessions();
    let body = axum::Json(LoginResponse { user_id: user.id, email: user.email });
    Ok(([(header::SET_COOKIE, state.session_set_cookie(&session_id))], body).into_response())
}

/// The `session` cookie's value, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_string())
}

/// A shopper with a live session: the only way into `/auth/profile/me`, logout and `/api`.
pub struct SessionUser {
    pub user_id: UserId,
    pub session_id: String,
    /// This request moved the session's last use forward: the answer carries the cookie
    /// again, with a fresh `Max-Age`, so that the browser keeps it as long as the server.
    pub refreshed: bool,
}

impl SessionUser {
    /// Adds the refreshed cookie to an answer when this request refreshed the session.
    pub fn refresh_cookie(&self, gateway: &Gateway, response: &mut Response) {
        if self.refreshed {
            response.headers_mut().insert(header::SET_COOKIE, gateway.session_set_cookie(&self.session_id));
        }
    }
}

impl Gateway {
    /// The session cookie; its `Max-Age` is the idle timeout, counted from now as the
    /// server-side session's is.
    pub fn session_set_cookie(&self, session_id: &str) -> HeaderValue {
        let cookie = format!(
            "{SESSION_COOKIE}={session_id}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}",
            self.config.session_idle_timeout_s
        );
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("session=; Max-Age=0"))
    }

    /// Sets the active-sessions gauge from the sessions table: those used within the idle
    /// timeout on the clock seam. A failed read leaves the gauge as it was.
    pub fn count_live_sessions(&self) {
        let Some(metrics) = self.env.metrics.gateway() else { return };
        let cutoff = self.env.clock.now_utc() - TimeDelta::seconds(self.config.session_idle_timeout_s);
        if let Ok(count) = self.db.read(|c| live_session_count(c, cutoff)) {
            metrics.active_sessions.set(count);
        }
    }

    /// Resolves the cookie to a live session on the clock seam, refreshing its last use.
    pub async fn session_user(&self, headers: &HeaderMap) -> Result<Option<SessionUser>, ApiError> {
        let Some(session_id) = session_cookie(headers).filter(|id| id.len() <= 128) else {
            return Ok(None);
        };
        let Some((user_id, last_seen)) = self.db.read(|c| session(c, &session_id))? else {
            return Ok(None);
        };
        let now = self.env.clock.now_utc();
        let idle = now.signed_duration_since(last_seen);
        if idle >= TimeDelta::seconds(self.config.session_idle_timeout_s) {
            self.db.write(|tx| delete_session(tx, &session_id)).await?;
            return Ok(None);
        }
        let refreshed = idle >= TimeDelta::seconds(self.config.session_touch_interval_s);
        if refreshed {
            self.db.write(|tx| touch_session(tx, &session_id, now)).await?;
        }
        Ok(Some(SessionUser { user_id, session_id, refreshed }))
    }
}

impl FromRequestParts<Arc<Gateway>> for SessionUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Gateway>) -> Result<SessionUser, ApiError> {
        state
            .session_user(&parts.headers)
            .await?
            .ok_or_else(|| ApiError::unauthorized("log in first: no valid session"))
    }
}

#[utoipa::path(get, path = "/auth/profile/me", operation_id = "getProfile", tag = "auth", security(("session" = [])),
    responses((status = 200, description = "The logged-in user", body = Profile)))]
async fn profile(state: Shared, user: SessionUser) -> Result<Response, ApiError> {
    let row = state.db.read(|c| user_by_id(c, user.user_id))?.ok_or_else(|| ApiError::unauthorized("user is gone"))?;
    let profile = Profile { user_id: row.id, email: row.email, first_name: row.first_name, last_name: row.last_name };
    let mut response = axum::Json(profile).into_response();
    user.refresh_cookie(&state, &mut response);
    Ok(response)
}

#[utoipa::path(post, path = "/auth/logout", operation_id = "logout", tag = "auth", security(("session" = [])),
    responses((status = 204, description = "Logged out: the session is gone and the cookie expired",
        headers(("Set-Cookie" = String, description = "`session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0`")))))]
async fn logout(state: Shared, user: SessionUser) -> Result<Response, ApiError> {
    state.db.write(|tx| delete_session(tx, &user.session_id)).await?;
    state.count_live_sessions();
    let expired = HeaderValue::from_static("session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, expired)]).into_response())
}

/// The gateway's own routes (the public document adds the proxied ones: `shop::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(register, login, login_at_root, profile, logout, crate::openapi_document))]
pub struct Api;
