//! WAIaaS REST server: the poem + poem-openapi front end of the core.
//!
//! [`app`] builds the whole route tree with its middleware (request ids and the one error shape, the IP access
//! control, the Host guard);
//! the CLI binds the listener and serves it. [`openapi_document`] renders the OpenAPI document, committed at
//! `openapi/waiaas.json`.
//!
//! Invariant: this crate holds no business rules. Every decision (authentication, validation of domain values,
//! state transitions, the kill switch) is the core's; the server parses wire shapes, calls the core, and renders
//! its answers and errors.

pub mod acl;
pub mod api;
pub mod auth;
pub mod body;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod wire;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use poem::endpoint::make_sync;
use poem::{Endpoint, EndpointExt, Response, Route, get};
use waiaas_core::services::Waiaas;

pub use error::{ApiError, ErrorBody};
pub use openapi::openapi_document;

/// What every request handler shares.
pub struct ServerState {
    pub core: Arc<Waiaas>,
    /// The database schema version reported by `GET /health`.
    pub schema_version: i64,
    /// When the daemon started (for `uptimeSeconds`).
    pub started_at: Instant,
    /// Host names accepted besides `localhost`, `127.0.0.1` and `[::1]` (ports ignored).
    pub allowed_hosts: Vec<String>,
    /// `GET /metrics` (OPS-05).
    pub metrics: metrics::MetricsExport,
    /// The `[acl]` rules (OPS-07), replaceable at runtime.
    pub acl: acl::AclHandle,
}

/// The full route tree: the API, `GET /openapi.json`, `GET /docs` (Swagger UI), wrapped in the Host guard, the IP
/// access control (ahead of the Host guard and every handler's authentication), the HTTP metrics and the error
/// envelope.
pub fn app(state: ServerState) -> impl Endpoint<Output = Response> {
    let guard = middleware::HostGuard::new(&state.allowed_hosts);
    let service = openapi::service();
    let document = openapi_document();
    let docs = service.swagger_ui();
    let http_metrics = metrics::HttpMetrics::new(Arc::clone(&state.core.ports().metrics));
    let ip_acl = acl::IpAcl::new(state.acl.clone(), Arc::clone(&state.core));
    let envelope = middleware::ErrorEnvelope::new(Arc::new(acl::RouteClasses::from_route_table()));
    Route::new()
        .at(
            "/openapi.json",
            get(make_sync(move |_| Response::builder().content_type("application/json").body(document.clone()))),
        )
        .at("/metrics", get(metrics::scrape))
        .nest("/docs", docs)
        .nest("/", service)
        .data(Arc::new(state))
        .with(guard)
        .with(ip_acl)
        .with(http_metrics)
        .with(envelope)
}
