//! The one error body of the whole store: RFC 9457 `application/problem+json`, and the
//! problem types the store answers with (`ProblemType`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Declares `ProblemType` with each variant's URI, and `ProblemType::ALL`.
macro_rules! problem_types {
    ($($(#[$doc:meta])* $variant:ident = $uri:literal,)+) => {
        /// Every problem type the store answers with (docs/API.md names each one). On the
        /// wire it is the URI text, e.g. `/problems/not-found`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ProblemType {
            $($(#[$doc])* $variant,)+
        }

        impl ProblemType {
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant,)+];

            /// The `type` member on the wire.
            pub fn uri(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $uri,)+
                }
            }
        }
    };
}

problem_types! {
    // Any service: the layers, the extractors and the fallbacks (`platform`).
    /// An unknown route, or no such resource.
    NotFound = "/problems/not-found",
    MethodNotAllowed = "/problems/method-not-allowed",
    /// No valid session, token or credential.
    Unauthorized = "/problems/unauthorized",
    BodyTooLarge = "/problems/body-too-large",
    HeadersTooLarge = "/problems/headers-too-large",
    RequestTimeout = "/problems/request-timeout",
    MalformedJson = "/problems/malformed-json",
    InvalidBody = "/problems/invalid-body",
    InvalidPath = "/problems/invalid-path",
    /// Any other 4xx a layer gave without a problem body.
    BadRequest = "/problems/bad-request",
    /// Storage busy, or a service unreachable; with `Retry-After`.
    ServiceUnavailable = "/problems/service-unavailable",
    /// An error the service did not expect.
    Internal = "/problems/internal",
    // The gateway's accounts.
    InvalidEmail = "/problems/invalid-email",
    InvalidPassword = "/problems/invalid-password",
    InvalidName = "/problems/invalid-name",
    EmailTaken = "/problems/email-taken",
    InvalidCredentials = "/problems/invalid-credentials",
    // `Idempotency-Key` (orders, deposits).
    IdempotencyKeyMissing = "/problems/idempotency-key-missing",
    IdempotencyKeyInvalid = "/problems/idempotency-key-invalid",
    IdempotencyKeyReused = "/problems/idempotency-key-reused",
    IdempotencyRequestInProgress = "/problems/idempotency-request-in-progress",
    // Orders.
    InvalidOrder = "/problems/invalid-order",
    UnknownProduct = "/problems/unknown-product",
    /// With the similar order in `order`.
    DuplicateOrder = "/problems/duplicate-order",
    /// With the failed order in `order`.
    OrderRejected = "/problems/order-rejected",
    // Billing.
    InvalidAmount = "/problems/invalid-amount",
    // The participants' and the notification service's internal routes.
    InvalidItems = "/problems/invalid-items",
    InvalidAddress = "/problems/invalid-address",
    InvalidMessage = "/problems/invalid-message",
}

impl ProblemType {
    pub fn from_uri(uri: &str) -> Option<ProblemType> {
        ProblemType::ALL.iter().copied().find(|t| t.uri() == uri)
    }
}

impl std::fmt::Display for ProblemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.uri())
    }
}

/// A problem's `type` as read from the wire: one of the store's own, or a type this code
/// does not know (another server's answer), kept as it came.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProblemKind {
    Known(ProblemType),
    Unknown(String),
}

impl ProblemKind {
    pub fn parse(uri: &str) -> ProblemKind {
        ProblemType::from_uri(uri).map_or_else(|| ProblemKind::Unknown(uri.to_string()), ProblemKind::Known)
    }

    pub fn as_str(&self) -> &str {
        match self {
            ProblemKind::Known(known) => known.uri(),
            ProblemKind::Unknown(text) => text,
        }
    }

    pub fn known(&self) -> Option<ProblemType> {
        match self {
            ProblemKind::Known(known) => Some(*known),
            ProblemKind::Unknown(_) => None,
        }
    }
}

impl From<ProblemType> for ProblemKind {
    fn from(known: ProblemType) -> ProblemKind {
        ProblemKind::Known(known)
    }
}

impl PartialEq<ProblemType> for ProblemKind {
    fn eq(&self, other: &ProblemType) -> bool {
        self.known() == Some(*other)
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProblemKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProblemKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProblemKind, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(ProblemKind::parse(&text))
    }
}

/// `{"type", "title", "status", "detail"}` plus the named extra members.
#[derive(utoipa::ToSchema, Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: ProblemKind,
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// The `order` member of `/problems/duplicate-order` and `/problems/order-rejected`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schema(value_type = Option<crate::order::Order>)]
    pub order: Option<serde_json::Value>,
}

impl Problem {
    pub fn new(status: u16, kind: ProblemType, title: &str, detail: impl Into<String>) -> Problem {
        Problem { kind: kind.into(), title: title.to_string(), status, detail: detail.into(), order: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_from_its_uri_and_the_uris_differ() {
        for &known in ProblemType::ALL {
            assert_eq!(ProblemType::from_uri(known.uri()), Some(known));
            assert!(known.uri().starts_with("/problems/"), "{known:?}");
        }
        let uris: std::collections::BTreeSet<&str> = ProblemType::ALL.iter().map(|t| t.uri()).collect();
        assert_eq!(uris.len(), ProblemType::ALL.len());
    }

    #[test]
    fn a_type_this_code_does_not_know_is_kept_as_it_came() {
        let body = r#"{"type":"https://example.com/probs/out-of-credit","title":"t","status":403}"#;
        let problem: Problem = serde_json::from_str(body).expect("another server's problem reads");
        assert_eq!(problem.kind, ProblemKind::Unknown("https://example.com/probs/out-of-credit".into()));
        assert_eq!(problem.kind.known(), None);
        assert!(serde_json::to_string(&problem).expect("serializable").contains("out-of-credit"));

        let known: Problem =
            serde_json::from_str(r#"{"type":"/problems/order-rejected","title":"t","status":422}"#).expect("reads");
        assert_eq!(known.kind, ProblemType::OrderRejected);
        let written = serde_json::to_value(Problem::new(404, ProblemType::NotFound, "Not found", "d")).expect("json");
        assert_eq!(written["type"], "/problems/not-found");
    }
}
