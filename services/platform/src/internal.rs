//! Calls from one service to another: the service credential, the request id and a child
//! `traceparent` on every call, over the retrying [`HttpClient`] with its keep-alive pool.

use crate::auth::Auth;
use crate::client::{CallError, HttpClient, OutboundRequest, Reply, RetryPolicy, SERVICE_POOL};
use crate::trace::{RequestContext, REQUEST_ID, TRACEPARENT};
use crate::Env;
use contracts::ServiceName;
use http::header::AUTHORIZATION;
use std::sync::Arc;

/// Where each service listens (`host:port`), by [`ServiceName`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peers {
    addresses: [String; 6],
}

impl Peers {
    /// Every service's address, as `address` gives it.
    pub fn new(address: impl Fn(ServiceName) -> String) -> Peers {
        Peers { addresses: ServiceName::ALL.map(address) }
    }

    pub fn address(&self, service: ServiceName) -> &str {
        &self.addresses[service.index()]
    }

    pub fn set(&mut self, service: ServiceName, address: String) {
        self.addresses[service.index()] = address;
    }
}

#[derive(Clone)]
pub struct InternalClient {
    env: Env,
    http: HttpClient,
    auth: Arc<Auth>,
}

impl InternalClient {
    pub fn new(env: Env, auth: Arc<Auth>) -> InternalClient {
        InternalClient { http: HttpClient::keep_alive(env.clone(), SERVICE_POOL), env, auth }
    }

    /// The service this client calls as.
    pub fn service(&self) -> ServiceName {
        self.auth.service()
    }

    /// Sends `request` with this service's credential; any answer status is returned.
    pub async fn send(
        &self,
        addr: &str,
        request: OutboundRequest,
        context: &RequestContext,
        policy: RetryPolicy,
    ) -> Result<Reply, CallError> {
        let token = format!("Bearer {}", self.auth.mint_service_token());
        let request = request
            .header(AUTHORIZATION, &token)
            .header(REQUEST_ID, &context.request_id)
            .header(TRACEPARENT, &context.child_traceparent(&self.env.ids));
        self.http.send(addr, &request, policy).await
    }
}
