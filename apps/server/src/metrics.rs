//! OPS-05 on the HTTP edge: the `GET /metrics` endpoint and the middleware that counts every request.
//!
//! - [`HttpMetrics`] records `waiaas_http_requests_total{route,method,status}` and
//!   `waiaas_http_request_duration_seconds{route}` by **route template**, never the raw path: poem's matched
//!   `PathPattern` (`/v1/agents/:param0` for the OpenAPI routes) mapped back to the document's template
//!   (`/v1/agents/{id}`). A request no route matched is `route="unmatched"`, and a method outside the standard
//!   set is `OTHER`, so every label is bounded. Every documented operation's series (its template, method and
//!   documented status; `GET /metrics` 200) are exported at zero when the middleware is built, so the families are
//!   on the first scrape.
//! - `GET /metrics` renders the registry in the Prometheus text format (`text/plain; version=0.0.4`). It is a
//!   plain route outside the OpenAPI service (it is not a JSON API). Access follows `[metrics] auth`: `none`,
//!   `master` (the `X-Master-Password` header, checked, rate limited and audited by the core like any master
//!   endpoint; a session token is 403 `WRONG_AUTH`) or `bearer` (`Authorization: Bearer <metrics token>`,
//!   compared in constant time). Disabled → 404 `NOT_FOUND`. Like health, it stays reachable while the kill
//!   switch is tripped (the endpoint never asks the kill switch).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use poem::PathPattern;
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use subtle::ConstantTimeEq;
use waiaas_core::ErrorCode;
use waiaas_core::metrics as m;
use waiaas_core::ports::MetricsRegistry;

use crate::auth::{authenticate_master, state};
use crate::error::ApiError;

/// Who may read `GET /metrics`.
#[derive(Clone, PartialEq, Eq)]
pub enum MetricsAuth {
    None,
    Master,
    /// `Authorization: Bearer <token>` with this token.
    Bearer(String),
}

impl std::fmt::Debug for MetricsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsAuth::None => f.write_str("None"),
            MetricsAuth::Master => f.write_str("Master"),
            MetricsAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// Renders the exposition (the metrics adapter's `render`).
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The `GET /metrics` endpoint's configuration.
#[derive(Clone)]
pub struct MetricsExport {
    pub enabled: bool,
    pub auth: MetricsAuth,
    pub render: Render,
    /// The content type of what `render` returns (the metrics adapter's format).
    pub content_type: &'static str,
    /// The configured oracle symbols whose quote age is refreshed at each scrape.
    pub oracle_symbols: Vec<String>,
}

impl MetricsExport {
    /// `GET /metrics` answers 404.
    pub fn disabled() -> Self {
        MetricsExport {
            enabled: false,
            auth: MetricsAuth::None,
            render: Arc::new(String::new),
            content_type: "text/plain",
            oracle_symbols: vec![],
        }
    }
}

impl std::fmt::Debug for MetricsExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsExport").field("enabled", &self.enabled).field("auth", &self.auth).finish()
    }
}

/// `GET /metrics`.
#[poem::handler]
pub async fn scrape(req: &Request) -> Result<Response> {
    let state = state(req)?;
    let export = &state.metrics;
    if !export.enabled {
        return Err(ApiError::new(ErrorCode::NotFound, "metrics export is disabled").into());
    }
    match &export.auth {
        MetricsAuth::None => {}
        MetricsAuth::Master => {
            authenticate_master(req).await?;
        }
        MetricsAuth::Bearer(expected) => {
            let presented = crate::auth::bearer(req).unwrap_or_default();
            if !bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
                return Err(ApiError::new(ErrorCode::Unauthorized, "send the metrics bearer token").into());
            }
        }
    }
    state.core.refresh_oracle_ages(&export.oracle_symbols);
    state.core.record_master_password_verifications();
    Ok(Response::builder().content_type(export.content_type).body((export.render)()))
}

/// Counts and times every request by route template; see the module docs.
pub struct HttpMetrics {
    registry: Arc<dyn MetricsRegistry>,
    templates: Arc<HashMap<String, String>>,
}

/// Poem's pattern of each documented path (`/v1/agents/:param0`) → its template (`/v1/agents/{id}`).
fn templates() -> HashMap<String, String> {
    crate::openapi::path_templates()
        .into_iter()
        .map(|template| (crate::openapi::routed_pattern(&template), template))
        .collect()
}

impl HttpMetrics {
    /// Routes are named by the API's documented path templates; their series are exported at zero.
    pub fn new(registry: Arc<dyn MetricsRegistry>) -> Self {
        let mut operations = crate::openapi::documented_operations();
        operations.push(("/metrics".to_owned(), Method::GET, vec![200]));
        for (route, method, statuses) in &operations {
            for status in statuses {
                let labels =
                    [("route", route.as_str()), ("method", method_label(method)), ("status", &status.to_string())];
                registry.register(m::HTTP_REQUESTS_TOTAL, m::MetricKind::Counter, &labels);
            }
            registry.register(m::HTTP_REQUEST_DURATION_SECONDS, m::MetricKind::Histogram, &[("route", route)]);
        }
        HttpMetrics { registry, templates: Arc::new(templates()) }
    }
}

impl<E: Endpoint> Middleware<E> for HttpMetrics {
    type Output = HttpMetricsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HttpMetricsEndpoint { inner: ep, registry: Arc::clone(&self.registry), templates: Arc::clone(&self.templates) }
    }
}

pub struct HttpMetricsEndpoint<E> {
    inner: E,
    registry: Arc<dyn MetricsRegistry>,
    templates: Arc<HashMap<String, String>>,
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl<E: Endpoint> Endpoint for HttpMetricsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let method = method_label(req.method());
        let outcome = self.inner.call(req).await.map(IntoResponse::into_response);
        let (pattern, status) = match &outcome {
            Ok(resp) => (resp.data::<PathPattern>().map(|p| Arc::clone(&p.0)), resp.status()),
            Err(err) => (err.data::<PathPattern>().map(|p| Arc::clone(&p.0)), err.status()),
        };
        let route = match pattern.as_deref() {
            None | Some("") => "unmatched",
            Some(pattern) => self.templates.get(pattern).map_or(pattern, String::as_str),
        };
        let code = status.as_str();
        self.registry.increment_counter(
            m::HTTP_REQUESTS_TOTAL,
            &[("route", route), ("method", method), ("status", code)],
            1,
        );
        self.registry.observe_histogram(
            m::HTTP_REQUEST_DURATION_SECONDS,
            &[("route", route)],
            started.elapsed().as_secs_f64(),
        );
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use waiaas_core::metrics as m;
    use waiaas_core::ports::testing::RecordingMetrics;

    #[test]
    fn every_documented_operation_is_exported_at_zero() {
        let registry = Arc::new(RecordingMetrics::default());
        super::HttpMetrics::new(registry.clone());
        let send = [("route", "/v1/transactions/send"), ("method", "POST"), ("status", "201")];
        assert!(registry.has(m::HTTP_REQUESTS_TOTAL, &send));
        assert_eq!(registry.counter(m::HTTP_REQUESTS_TOTAL, &send), 0);
        assert!(registry.has(m::HTTP_REQUESTS_TOTAL, &[("route", "/metrics"), ("method", "GET"), ("status", "200")]));
        assert!(registry.has(m::HTTP_REQUEST_DURATION_SECONDS, &[("route", "/v1/agents/{id}")]));
        assert!(registry.observations(m::HTTP_REQUEST_DURATION_SECONDS, &[("route", "/health")]).is_empty());
        assert!(
            !registry.has(m::HTTP_REQUESTS_TOTAL, &[("route", "/v1/agents"), ("method", "GET"), ("status", "201")])
        );
    }

    #[test]
    fn poem_patterns_map_to_document_templates() {
        let map = super::templates();
        assert_eq!(map["/v1/agents/:param0"], "/v1/agents/{id}");
        assert_eq!(map["/v1/agents"], "/v1/agents");
        assert_eq!(map["/v1/transactions/:param0/cancel"], "/v1/transactions/{id}/cancel");
    }
}
