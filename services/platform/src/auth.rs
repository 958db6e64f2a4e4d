//! Tokens: the gateway's short-lived user JWTs and the services' own credential, both
//! verified against the clock seam (the JWT library's system-time check is switched off).

use crate::clock::Clock;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use contracts::auth::{Claims, AUDIENCE_INTERNAL, AUDIENCE_USER, ISSUER_GATEWAY};
use contracts::ServiceName;
use contracts::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Lifetime of a token minted for one call.
pub const TOKEN_TTL_S: i64 = 60;

/// How far a verifier's clock may run ahead of the minter's and still accept a token past
/// its `exp`: clocks of different hosts disagree (a VM resumed, an NTP step), and a
/// participant minutes ahead of the orchestrator must not refuse every saga step. A token
/// is refused once the verifier's clock passes `exp + CLOCK_LEEWAY_S`. A verifier behind the
/// minter needs no leeway: `iat` in the future is not checked.
pub const CLOCK_LEEWAY_S: i64 = 300;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token expired")]
    Expired,
}

/// The two shared secrets. Users' tokens and services' credentials use different keys,
/// so a user token can never pass as a service credential.
#[derive(Clone)]
pub struct Secrets {
    pub user_token_secret: Vec<u8>,
    pub service_token_secret: Vec<u8>,
}

/// Mints and verifies tokens for one service instance.
#[derive(Clone)]
pub struct Auth {
    clock: Arc<dyn Clock>,
    service: ServiceName,
    keys: Arc<Keys>,
    /// The service credential last minted, with the second (on the clock seam) it was
    /// minted in: a token's claims hold whole seconds, so every credential minted in that
    /// second is this one, byte for byte, and is handed out again instead of signed again.
    service_token: Arc<Mutex<Option<(i64, String)>>>,
    /// The same for user tokens (the gateway's): the second they were minted in, and each
    /// user's token of that second (at most [`USER_TOKENS_MAX`]; a new second starts afresh).
    user_tokens: Arc<Mutex<(i64, BTreeMap<UserId, String>)>>,
    /// Tokens this instance accepted lately, newest last (at most [`VERIFIED_MAX`]).
    verified: Arc<Mutex<VecDeque<Verified>>>,
}

/// How many users' tokens of the current second the gateway keeps to hand out again.
const USER_TOKENS_MAX: usize = 1024;

/// How many accepted tokens an instance remembers.
const VERIFIED_MAX: usize = 32;

/// The keys and the validation rules, built once per instance.
struct Keys {
    user_encoding: EncodingKey,
    service_encoding: EncodingKey,
    user_decoding: DecodingKey,
    service_decoding: DecodingKey,
    user_validation: Validation,
    service_validation: Validation,
}

impl Keys {
    fn new(secrets: &Secrets) -> Keys {
        let validation = |audience: &str| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.validate_exp = false;
            validation.validate_nbf = false;
            validation.set_audience(&[audience]);
            validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
            validation
        };
        Keys {
            user_encoding: EncodingKey::from_secret(&secrets.user_token_secret),
            service_encoding: EncodingKey::from_secret(&secrets.service_token_secret),
            user_decoding: DecodingKey::from_secret(&secrets.user_token_secret),
            service_decoding: DecodingKey::from_secret(&secrets.service_token_secret),
            user_validation: validation(AUDIENCE_USER),
            service_validation: validation(AUDIENCE_INTERNAL),
        }
    }
}

/// A token whose signature and issuer were checked, with its claims. Its expiry is checked
/// again at every use.
struct Verified {
    audience: String,
    token: String,
    claims: Claims,
}

/// Equal bytes, compared in time that depends only on the length: a caller cannot learn
/// from the time of a refusal how much of a remembered token its own shares.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y))) == 0
}

impl Auth {
    pub fn new(clock: Arc<dyn Clock>, secrets: Secrets, service: ServiceName) -> Auth {
        Auth {
            clock,
            keys: Arc::new(Keys::new(&secrets)),
            service,
            service_token: Arc::default(),
            user_tokens: Arc::default(),
            verified: Arc::default(),
        }
    }

    /// The service whose credential this is.
    pub fn service(&self) -> ServiceName {
        self.service
    }

    fn mint_at(&self, now: i64, sub: String, iss: String, aud: &str, key: &EncodingKey) -> String {
        let claims = Claims { sub, iss, aud: aud.to_string(), iat: now, exp: now + TOKEN_TTL_S };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, key)
            .expect("HS256 encoding of plain claims cannot fail")
    }

    /// A user token for one proxied call (gateway only): within one second of the clock
    /// seam, the same bytes for the same user (see `user_tokens`).
    pub fn mint_user_token(&self, user_id: UserId) -> String {
        let now = self.clock.now_utc().timestamp();
        let mut tokens = self.user_tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.0 != now {
            *tokens = (now, BTreeMap::new());
        }
        if let Some(token) = tokens.1.get(&user_id) {
            return token.clone();
        }
        let token =
            self.mint_at(now, user_id.to_string(), ISSUER_GATEWAY.to_string(), AUDIENCE_USER, &self.keys.user_encoding);
        if tokens.1.len() < USER_TOKENS_MAX {
            tokens.1.insert(user_id, token.clone());
        }
        token
    }

    /// This service's credential for one internal call.
    pub fn mint_service_token(&self) -> String {
        let now = self.clock.now_utc().timestamp();
        let mut last = self.service_token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, token)) = last.as_ref().filter(|(minted_at, _)| *minted_at == now) {
            return token.clone();
        }
        let name = format!("service:{}", self.service.as_str());
        let token = self.mint_at(now, name.clone(), name, AUDIENCE_INTERNAL, &self.keys.service_encoding);
        *last = Some((now, token.clone()));
        token
    }

    /// Checks signature, audience, issuer and expiry (on the clock seam, with
    /// [`CLOCK_LEEWAY_S`]). A user token is issued by the gateway (`iss` =
    /// [`ISSUER_GATEWAY`]); a service credential by the service it names (`iss` = `sub` =
    /// `service:<name>`).
    /// A token accepted before (the same bytes, for the same audience) is not decoded again:
    /// only its expiry is checked.
    pub fn verify(&self, token: &str, audience: &str) -> Result<Claims, AuthError> {
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|v| v.audience == audience && same_bytes(v.token.as_bytes(), token.as_bytes()))
            .map(|v| v.claims.clone());
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims = self.decode(token, audience)?;
                let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
                if verified.len() == VERIFIED_MAX {
                    verified.pop_front();
                }
                verified.push_back(Verified {
                    audience: audience.to_string(),
                    token: token.to_string(),
                    claims: claims.clone(),
                });
                claims
            }
        };
        if claims.exp + CLOCK_LEEWAY_S <= self.clock.now_utc().timestamp() {
            return Err(AuthError::Expired);
        }
        Ok(claims)
    }

    /// Signature, audience and issuer.
    fn decode(&self, token: &str, audience: &str) -> Result<Claims, AuthError> {
        let internal = audience == AUDIENCE_INTERNAL;
        let (key, validation) = if internal {
            (&self.keys.service_decoding, &self.keys.service_validation)
        } else if audience == AUDIENCE_USER {
            (&self.keys.user_decoding, &self.keys.user_validation)
        } else {
            return Err(AuthError::Invalid(format!("unknown audience {audience:?}")));
        };
        let data =
            jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let issuer_ok = if internal {
            data.claims.iss == data.claims.sub
                && data.claims.iss.strip_prefix("service:").is_some_and(|n| !n.is_empty())
        } else {
            data.claims.iss == ISSUER_GATEWAY
        };
        if !issuer_ok {
            return Err(AuthError::Invalid(format!("unexpected issuer {:?}", data.claims.iss)));
        }
        Ok(data.claims)
    }
}

fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(AuthError::Missing)
}

fn auth_of(parts: &Parts) -> Result<Arc<Auth>, ApiError> {
    parts.extensions.get::<Arc<Auth>>().cloned().ok_or_else(|| ApiError::internal("authentication is not configured"))
}

/// A shopper, proven by a gateway-signed user token; the id comes only from `sub`.
#[derive(Clone, Copy, Debug)]
pub struct User(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<User, ApiError> {
        let auth = auth_of(parts)?;
        let claims = bearer(parts)
            .and_then(|token| auth.verify(token, AUDIENCE_USER))
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        let id = claims.sub.parse::<UserId>().map_err(|_| ApiError::unauthorized("token subject is not a user id"))?;
        Ok(User(id))
    }
}

/// Another service of the store, proven by the service credential.
#[derive(Clone, Debug)]
pub struct Service(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Service {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Service, ApiError> {
        let auth = auth_of(parts)?;
        let claims = bearer(parts)
            .and_then(|token| auth.verify(token, AUDIENCE_INTERNAL))
            .map_err(|e| ApiError::unauthorized(e.to_string()))?;
        Ok(Service(claims.sub))
    }
}

/// Either a shopper or a service (read-only public data such as the catalog).
#[derive(Clone, Debug)]
pub enum Caller {
    User(UserId),
    Service(String),
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, ApiError> {
        if let Ok(User(id)) = User::from_request_parts(parts, state).await {
            return Ok(Caller::User(id));
        }
        let Service(name) = Service::from_request_parts(parts, state).await?;
        Ok(Caller::Service(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(contracts::Timestamp::from_timestamp(1_000_000, 0).unwrap()))
    }

    fn auth(clock: Arc<ManualClock>, user_secret: &[u8]) -> Auth {
        let secrets = Secrets { user_token_secret: user_secret.to_vec(), service_token_secret: b"svc".to_vec() };
        Auth::new(clock, secrets, contracts::ServiceName::Order)
    }

    #[test]
    fn tokens_expire_on_the_clock_seam() {
        let clock = clock();
        let auth = auth(clock.clone(), b"user");
        let user = UserId::from_u128(7);
        let token = auth.mint_user_token(user);
        assert_eq!(auth.verify(&token, AUDIENCE_USER).unwrap().sub, user.to_string());
        // Within the leeway a clock ahead of the minter's still accepts it...
        clock.advance(Duration::from_secs((TOKEN_TTL_S + CLOCK_LEEWAY_S - 1) as u64));
        assert!(auth.verify(&token, AUDIENCE_USER).is_ok());
        // ...and past it refuses it.
        clock.advance(Duration::from_secs(1));
        assert_eq!(auth.verify(&token, AUDIENCE_USER), Err(AuthError::Expired));
    }

    #[test]
    fn audiences_and_keys_do_not_mix() {
        let clock = clock();
        let auth = auth(clock.clone(), b"user");
        let user_token = auth.mint_user_token(UserId::from_u128(1));
        assert!(auth.verify(&user_token, AUDIENCE_INTERNAL).is_err());
        let service_token = auth.mint_service_token();
        assert!(auth.verify(&service_token, AUDIENCE_USER).is_err());
        assert!(auth.verify(&service_token, AUDIENCE_INTERNAL).is_ok());
        let forged = super::tests::auth(clock, b"other").mint_user_token(UserId::from_u128(1));
        assert!(matches!(auth.verify(&forged, AUDIENCE_USER), Err(AuthError::Invalid(_))));
    }

    /// The credential is signed once per second of the clock seam and handed out again
    /// within it: the same bytes a fresh signature gives; a new second, a new token.
    #[test]
    fn the_service_credential_is_signed_once_per_second() {
        let clock = clock();
        let auth = auth(clock.clone(), b"user");
        let name = "service:order".to_string();
        let fresh = |auth: &Auth| {
            let now = auth.clock.now_utc().timestamp();
            auth.mint_at(now, name.clone(), name.clone(), AUDIENCE_INTERNAL, &EncodingKey::from_secret(b"svc"))
        };
        let first = auth.mint_service_token();
        assert_eq!(first, fresh(&auth));
        clock.advance(Duration::from_millis(999));
        assert_eq!(auth.mint_service_token(), first);
        clock.advance(Duration::from_millis(1));
        let next = auth.mint_service_token();
        assert_ne!(next, first);
        assert_eq!(next, fresh(&auth));
        let claims = auth.verify(&next, AUDIENCE_INTERNAL).unwrap();
        assert_eq!(claims.iat, auth.clock.now_utc().timestamp());
        // Another service instance (another clock) signs its own.
        let behind = super::tests::auth(
            Arc::new(ManualClock::new(contracts::Timestamp::from_timestamp(999_000, 0).unwrap())),
            b"user",
        );
        assert_eq!(behind.verify(&behind.mint_service_token(), AUDIENCE_INTERNAL).unwrap().iat, 999_000);
    }

    /// A token accepted once is remembered, but only byte for byte and only for its
    /// audience; it still expires on the clock seam.
    #[test]
    fn a_remembered_token_is_the_same_bytes_and_still_expires() {
        let clock = clock();
        let auth = auth(clock.clone(), b"user");
        let token = auth.mint_user_token(UserId::from_u128(3));
        assert!(auth.verify(&token, AUDIENCE_USER).is_ok());
        assert_eq!(auth.verified.lock().unwrap().len(), 1);
        // The last byte of the signature changed: not the remembered token, and not valid.
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(matches!(auth.verify(&tampered, AUDIENCE_USER), Err(AuthError::Invalid(_))));
        assert!(auth.verify(&token, AUDIENCE_INTERNAL).is_err(), "remembered for its audience only");
        assert!(auth.verify(&token, AUDIENCE_USER).is_ok());
        clock.advance(Duration::from_secs((TOKEN_TTL_S + CLOCK_LEEWAY_S) as u64));
        assert_eq!(auth.verify(&token, AUDIENCE_USER), Err(AuthError::Expired));
        // Bounded: the oldest is forgotten first.
        for user in 0..(VERIFIED_MAX as u128 + 5) {
            let token = auth.mint_user_token(UserId::from_u128(100 + user));
            assert!(auth.verify(&token, AUDIENCE_USER).is_ok());
        }
        assert_eq!(auth.verified.lock().unwrap().len(), VERIFIED_MAX);
        assert!(!auth.verified.lock().unwrap().iter().any(|v| v.token == token));
    }

    /// Within one second the gateway hands a user the same token a fresh signature gives;
    /// another user or another second, another token.
    #[test]
    fn a_user_token_is_signed_once_per_second() {
        let clock = clock();
        let auth = auth(clock.clone(), b"user");
        let (a, b) = (UserId::from_u128(1), UserId::from_u128(2));
        let fresh = |auth: &Auth, user: UserId| {
            let now = auth.clock.now_utc().timestamp();
            auth.mint_at(
                now,
                user.to_string(),
                ISSUER_GATEWAY.to_string(),
                AUDIENCE_USER,
                &EncodingKey::from_secret(b"user"),
            )
        };
        let first = auth.mint_user_token(a);
        assert_eq!(first, fresh(&auth, a));
        assert_eq!(auth.mint_user_token(b), fresh(&auth, b));
        assert_ne!(auth.mint_user_token(b), first);
        clock.advance(Duration::from_millis(999));
        assert_eq!(auth.mint_user_token(a), first);
        clock.advance(Duration::from_millis(1));
        let next = auth.mint_user_token(a);
        assert_ne!(next, first);
        assert_eq!(next, fresh(&auth, a));
        assert_eq!(auth.user_tokens.lock().unwrap().1.len(), 1, "a new second starts afresh");
    }

    #[test]
    fn same_bytes_compares_whole_slices() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"xbc", b"abc"));
        assert!(!same_bytes(b"ab", b"abc"));
        assert!(same_bytes(b"", b""));
    }

    /// A token signed with the right key but naming another issuer is refused.
    #[test]
    fn the_issuer_is_checked() {
        let auth = auth(clock(), b"user");
        let now = auth.clock.now_utc().timestamp();
        let signed = |iss: &str, sub: &str, aud: &str, secret: &[u8]| {
            let claims =
                Claims { sub: sub.to_string(), iss: iss.to_string(), aud: aud.to_string(), iat: now, exp: now + 60 };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
        };
        let user = UserId::from_u128(1).to_string();
        assert!(auth.verify(&signed(ISSUER_GATEWAY, &user, AUDIENCE_USER, b"user"), AUDIENCE_USER).is_ok());
        for iss in ["somebody-else", "", "service:order"] {
            let token = signed(iss, &user, AUDIENCE_USER, b"user");
            assert!(
                matches!(auth.verify(&token, AUDIENCE_USER), Err(AuthError::Invalid(_))),
                "user token from {iss:?}"
            );
        }
        assert!(auth
            .verify(&signed("service:order", "service:order", AUDIENCE_INTERNAL, b"svc"), AUDIENCE_INTERNAL)
            .is_ok());
        for (iss, sub) in
            [(ISSUER_GATEWAY, "service:order"), ("service:billing", "service:order"), ("service:", "service:")]
        {
            let token = signed(iss, sub, AUDIENCE_INTERNAL, b"svc");
            assert!(
                matches!(auth.verify(&token, AUDIENCE_INTERNAL), Err(AuthError::Invalid(_))),
                "service token {iss:?}/{sub:?}"
            );
        }
    }
}
