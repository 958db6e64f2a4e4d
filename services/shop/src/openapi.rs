//! The store's OpenAPI 3.1 documents, composed from the services' own (each generated from
//! its handlers' `#[utoipa::path]` and the `contracts` types): the public API as the gateway
//! serves it, and each service's internal API. Checked in under `docs/openapi/` (written by
//! `shop openapi`); `tests/openapi.rs` keeps the files equal to what this module generates.

use contracts::ServiceName;
use platform::openapi::{SERVICE_TOKEN, SESSION, USER_TOKEN};
use std::collections::BTreeMap;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{InfoBuilder, OpenApi, RefOr};

/// One document: its file name under `docs/openapi/`, the service whose port serves what
/// it describes (the gateway's for the public API), and its content.
pub struct Document {
    pub file: String,
    pub service: ServiceName,
    pub openapi: OpenApi,
}

/// Every document: the public one, then each service's but the gateway's (whose routes are
/// the public ones).
pub fn documents() -> Vec<Document> {
    let public = Document { file: "public.json".to_string(), service: ServiceName::Gateway, openapi: public() };
    let services = ServiceName::ALL.into_iter().filter(|s| *s != ServiceName::Gateway).map(|service| Document {
        file: format!("{}.json", service.as_str()),
        service,
        openapi: internal(service),
    });
    std::iter::once(public).chain(services).collect()
}

/// A document as written to its file: pretty JSON with a final newline.
pub fn to_text(openapi: &OpenApi) -> String {
    let mut value = serde_json::to_value(openapi).expect("an OpenAPI document serializes");
    spell_links_as_openapi_does(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("JSON serializes");
    text.push('\n');
    text
}

/// utoipa 5 writes a response link's fields in snake case (`operation_id`); OpenAPI spells
/// them in camel case (`operationId`), and tools ignore a link without it.
fn spell_links_as_openapi_does(document: &mut serde_json::Value) {
    let Some(paths) = document.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    let operations = paths.values_mut().filter_map(|item| item.as_object_mut()).flat_map(|item| item.values_mut());
    let responses = operations.filter_map(|o| o.get_mut("responses")?.as_object_mut()).flat_map(|r| r.values_mut());
    let links = responses.filter_map(|r| r.get_mut("links")?.as_object_mut()).flat_map(|l| l.values_mut());
    for link in links.filter_map(|link| link.as_object_mut()) {
        for (snake, camel) in
            [("operation_id", "operationId"), ("operation_ref", "operationRef"), ("request_body", "requestBody")]
        {
            if let Some(value) = link.remove(snake) {
                link.insert(camel.to_string(), value);
            }
        }
    }
}

/// The public API: the gateway's own routes and the services' routes it proxies
/// (`gateway::PUBLIC_ROUTES`), each behind the session cookie instead of a token.
pub fn public() -> OpenApi {
    let mut doc = gateway::openapi();
    doc.info = InfoBuilder::new()
        .title("Online store: public API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The store as its users call it, through the gateway. Log in (POST /auth/login) for a \
             `session` cookie; every /api/v1 route needs it. Every error is application/problem+json \
             (RFC 9457) with a stable `type` under /problems/.",
        ))
        .build();
    let mut services: BTreeMap<&'static str, OpenApi> = BTreeMap::new();
    for (method, path, service) in gateway::PUBLIC_ROUTES {
        let service_doc = services.entry(service.as_str()).or_insert_with(|| service_openapi(service));
        let mut operation = operation(service_doc, path, method)
            .unwrap_or_else(|| panic!("{service:?} documents no {method} {path}, which the gateway proxies"));
        operation.security = Some(vec![SecurityRequirement::new::<_, _, String>(SESSION, [])]);
        let method = http_method(method);
        let item = PathItem::new(method.clone(), operation);
        match doc.paths.paths.get_mut(path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                doc.paths.paths.insert(path.to_string(), item);
            }
        }
        // The schemas the operation refers to.
        let schemas = service_doc.components.as_ref().map(|c| c.schemas.clone()).unwrap_or_default();
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, schema) in schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    link_the_catalog_to_an_order(&mut doc);
    // The public document names the session only, and only the schemas its routes use.
    let used = referenced_schemas(&doc);
    if let Some(components) = doc.components.as_mut() {
        components.security_schemes.retain(|name, _| name == SESSION);
        components.schemas.retain(|name, _| used.contains(name));
    }
    doc
}

/// The catalog leads to an order of its first product (for tools that follow links, such as
/// schemathesis's stateful runs); the order's answers lead on to reading it.
fn link_the_catalog_to_an_order(doc: &mut OpenApi) {
    use utoipa::openapi::link::Link;
    let body = serde_json::json!({
        "items": [{"productId": "$response.body#/0/productId", "quantity": 1}],
        "deliveryInfo": {"address": "1 Link Street", "preferredTimeSlot": "2030-01-01T10:00:00Z"},
    });
    let link = Link::builder()
        .operation_id("createOrder")
        .parameter("header.Idempotency-Key", "from-the-catalog")
        .request_body(Some(body))
        .description("An order of the catalog's first product (its slot may not exist: the order then fails)")
        .build();
    let catalog = doc.paths.paths.get_mut("/api/v1/warehouse/products").and_then(|item| item.get.as_mut());
    let Some(RefOr::T(listed)) = catalog.and_then(|o| o.responses.responses.get_mut("200")) else {
        panic!("the public document lists the catalog")
    };
    listed.links.insert("createOrder".to_string(), RefOr::T(link));
}

/// The names of the schemas a document's paths refer to, directly or through other schemas.
fn referenced_schemas(doc: &OpenApi) -> std::collections::BTreeSet<String> {
    fn refs(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value.as_str()) {
                        ("$ref", Some(target)) => {
                            found.extend(target.strip_prefix("#/components/schemas/").map(str::to_string))
                        }
                        _ => refs(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
            _ => {}
        }
    }
    let schemas = serde_json::to_value(doc.components.as_ref().map(|c| &c.schemas)).expect("schemas serialize");
    let mut pending = Vec::new();
    refs(&serde_json::to_value(&doc.paths).expect("paths serialize"), &mut pending);
    let mut used = std::collections::BTreeSet::new();
    while let Some(name) = pending.pop() {
        if used.insert(name.clone()) {
            refs(&schemas[&name], &mut pending);
        }
    }
    used
}

/// One service's own API as served on its port: public routes (with a user token), internal
/// ones (with a service credential), and the operator's (health, metrics; no credential).
pub fn internal(service: ServiceName) -> OpenApi {
    let mut doc = service_openapi(service);
    let mut operator = <platform::server::OperatorApi as utoipa::OpenApi>::openapi();
    platform::openapi::finish(&mut operator);
    doc.merge(operator);
    doc.info = InfoBuilder::new()
        .title(format!("Online store: {} service (internal)", service.as_str()))
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The service's own port, behind the gateway: never reachable through it. Every call \
             carries a token minted for it: a user's (the gateway's, for the routes it proxies) \
             or a service's credential (the saga's steps, the outboxes' events).",
        ))
        .build();
    if let Some(components) = doc.components.as_mut() {
        components.security_schemes.retain(|name, _| name == USER_TOKEN || name == SERVICE_TOKEN);
    }
    doc
}

fn service_openapi(service: ServiceName) -> OpenApi {
    match service {
        ServiceName::Gateway => gateway::openapi(),
        ServiceName::Order => order::openapi(),
        ServiceName::Billing => billing::openapi(),
        ServiceName::Warehouse => warehouse::openapi(),
        ServiceName::Delivery => delivery::openapi(),
        ServiceName::Notification => notification::openapi(),
    }
}

fn http_method(method: &str) -> HttpMethod {
    match method {
        "GET" => HttpMethod::Get,
        "POST" => HttpMethod::Post,
        other => panic!("the gateway proxies no {other} route"),
    }
}

/// The operation `method path` of a document, if it has one.
fn operation(doc: &OpenApi, path: &str, method: &str) -> Option<Operation> {
    let item = doc.paths.paths.get(path)?;
    match method {
        "GET" => item.get.clone(),
        "POST" => item.post.clone(),
        _ => None,
    }
}

/// Every `(METHOD, path)` a document describes, sorted.
pub fn routes(doc: &OpenApi) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, operation) in [("GET", &item.get), ("POST", &item.post)] {
            if operation.is_some() {
                routes.push((method.to_string(), path.clone()));
            }
        }
    }
    routes.sort();
    routes
}
