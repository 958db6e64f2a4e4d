//! Gateway bodies and the claims of the tokens the gateway and the services mint.

use crate::ids::UserId;
use serde::{Deserialize, Serialize};

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    /// Trimmed and lower-cased; one `@`, a dot in the domain, no spaces.
    #[schema(format = Email, max_length = 254)]
    pub email: String,
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub first_name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 100)]
    pub last_name: Option<String>,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    pub email: String,
}

/// JWT claims. `sub` is a user id for user tokens, `service:<name>` for service credentials.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
}

/// Audience of the tokens the gateway mints for a shopper's call.
pub const AUDIENCE_USER: &str = "store-api";
/// Audience of service credentials; user tokens never carry it.
pub const AUDIENCE_INTERNAL: &str = "store-internal";
pub const ISSUER_GATEWAY: &str = "store-gateway";
