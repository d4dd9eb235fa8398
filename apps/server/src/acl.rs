//! OPS-07 on the HTTP edge: the `ipAcl` middleware, ahead of authentication on every route (the API, `/metrics`,
//! `/docs`, `/openapi.json` and unmatched paths).
//!
//! For each request it resolves the client address ([`waiaas_core::acl::AclRules::client`]: the socket peer, or
//! the rightmost untrusted `X-Forwarded-For` hop when the peer is a trusted proxy), records it in the request
//! ([`ClientAddr`], which the authentication extractors hand to the core, so audit rows and the master-password
//! rate limit see the same address), classifies the route and asks the rules. A refusal is 403
//! `ACCESS_DENIED_IP`, counted and audited by the core (`Waiaas::record_access_denied`).
//!
//! Classes come from the route table ([`RouteClasses`]): an OpenAPI operation secured by `masterAuth` is `admin`,
//! by `sessionAuth` `session`, by `ownerAuth` `owner`; the unauthenticated operations are listed here by path
//! (`/health` and the kill switch's state public, `/v1/nonce` owner) and any other unauthenticated operation is `admin` (fail closed), so a new
//! route cannot end up unclassified. `/metrics` is `metrics`; `/docs`, `/openapi.json` and paths no route matches
//! are `public`. A path is percent-decoded before it is matched, so an encoded path cannot dodge its class.
//!
//! The rules are held in an [`AclHandle`]: a reload replaces them as one value, so a request sees the old rules
//! or the new ones, never a mix.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use poem::http::Method;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use poem_openapi::OpenApi;
use waiaas_core::ErrorCode;
use waiaas_core::acl::{AclRules, EndpointClass};
use waiaas_core::services::Waiaas;

use crate::api::Apis;
use crate::error::ApiError;

/// The client address the ACL resolved for this request (in the request's extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The `[acl]` rules in force, replaceable as a whole.
#[derive(Clone, Debug, Default)]
pub struct AclHandle(Arc<RwLock<Arc<AclRules>>>);

impl AclHandle {
    pub fn new(rules: AclRules) -> Self {
        AclHandle(Arc::new(RwLock::new(Arc::new(rules))))
    }

    /// The rules in force.
    pub fn load(&self) -> Arc<AclRules> {
        match self.0.read() {
            Ok(rules) => Arc::clone(&rules),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the rules; requests already past the check keep the ones they saw.
    pub fn replace(&self, rules: AclRules) {
        let rules = Arc::new(rules);
        match self.0.write() {
            Ok(mut slot) => *slot = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
    }
}

/// Unauthenticated OpenAPI operations and their class; see the module docs.
const UNAUTHENTICATED: &[(&str, EndpointClass)] = &[
    ("/health", EndpointClass::Public),
    ("/v1/admin/kill-switch", EndpointClass::Public),
    ("/v1/nonce", EndpointClass::Owner),
];

#[derive(Clone, Debug)]
struct RouteClass {
    segments: Vec<Segment>,
    method: Method,
    class: EndpointClass,
}

impl RouteClass {
    /// Whether the route's template matches the request path's segments.
    fn matches(&self, parts: &[&str]) -> bool {
        self.segments.len() == parts.len()
            && self.segments.iter().zip(parts).all(|(segment, part)| match segment {
                Segment::Literal(literal) => literal == part,
                Segment::Param => !part.is_empty(),
            })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

/// The class of every route, derived from the route table; see the module docs.
#[derive(Clone, Debug)]
pub struct RouteClasses {
    routes: Vec<RouteClass>,
}

impl Default for RouteClasses {
    fn default() -> Self {
        Self::from_route_table()
    }
}

/// The class of an OpenAPI operation from its security schemes (or, without any, its path).
pub fn operation_class(template: &str, schemes: &[&str]) -> EndpointClass {
    if schemes.contains(&"masterAuth") {
        EndpointClass::Admin
    } else if schemes.contains(&"ownerAuth") {
        EndpointClass::Owner
    } else if schemes.contains(&"sessionAuth") {
        EndpointClass::Session
    } else {
        UNAUTHENTICATED.iter().find(|(path, _)| *path == template).map_or(EndpointClass::Admin, |(_, class)| *class)
    }
}

impl RouteClasses {
    /// Every documented operation with its class.
    pub fn from_route_table() -> Self {
        let routes = <Apis as OpenApi>::meta()
            .into_iter()
            .flat_map(|api| api.paths)
            .flat_map(|path| {
                let template = path.path.clone();
                path.operations.into_iter().map(move |operation| {
                    let schemes: Vec<&str> = operation.security.iter().flat_map(|s| s.keys().copied()).collect();
                    RouteClass {
                        segments: template
                            .split('/')
                            .map(|s| if s.starts_with('{') { Segment::Param } else { Segment::Literal(s.to_owned()) })
                            .collect(),
                        method: operation.method,
                        class: operation_class(&template, &schemes),
                    }
                })
            })
            .collect();
        RouteClasses { routes }
    }

    /// The methods `path` (raw) takes, in the route table's order without repeats; empty for an unknown path.
    /// `/metrics`, `/openapi.json` and `/docs` are GET-only. Like the router, a template whose literal segment
    /// matches wins over one with a parameter there: `/v1/transactions/send` takes POST only, although
    /// `/v1/transactions/{id}` (GET) would match it too.
    pub fn allowed_methods(&self, path: &str) -> Vec<Method> {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let path = decoded.as_ref();
        if matches!(path, "/metrics" | "/openapi.json" | "/docs" | "/docs/") {
            return vec![Method::GET];
        }
        let parts: Vec<&str> = path.split('/').collect();
        let matching: Vec<&RouteClass> = self.routes.iter().filter(|route| route.matches(&parts)).collect();
        // Literal before parameter, segment by segment from the left: the template the router picks.
        let rank = |route: &RouteClass| -> Vec<bool> {
            route.segments.iter().map(|segment| matches!(segment, Segment::Param)).collect()
        };
        let Some(routed) = matching.iter().map(|route| rank(route)).min() else { return Vec::new() };
        let mut methods: Vec<Method> = Vec::new();
        for route in matching.into_iter().filter(|route| rank(route) == routed) {
            if !methods.contains(&route.method) {
                methods.push(route.method.clone());
            }
        }
        methods
    }

    /// The class of a request for `method` and (raw) `path`.
    pub fn classify(&self, method: &Method, path: &str) -> EndpointClass {
        let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
        let path = decoded.as_ref();
        if path == "/metrics" {
            return EndpointClass::Metrics;
        }
        let parts: Vec<&str> = path.split('/').collect();
        let matching = self.routes.iter().filter(|route| route.matches(&parts));
        let literals = |route: &RouteClass| route.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count();
        let mut same_method: Option<&RouteClass> = None;
        let mut strictest: Option<EndpointClass> = None;
        for route in matching {
            strictest = strictest.max(Some(route.class));
            if route.method == method && same_method.is_none_or(|best| literals(route) > literals(best)) {
                same_method = Some(route);
            }
        }
        match (same_method, strictest) {
            (Some(route), _) => route.class,
            // A known path with another method (405): the strictest class of that path.
            (None, Some(class)) => class,
            // `/docs`, `/openapi.json`, unmatched paths.
            (None, None) => EndpointClass::Public,
        }
    }
}

/// The `ipAcl` middleware; see the module docs.
#[derive(Clone)]
pub struct IpAcl {
    rules: AclHandle,
    classes: Arc<RouteClasses>,
    core: Arc<Waiaas>,
}

impl std::fmt::Debug for IpAcl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpAcl").field("rules", &self.rules).finish_non_exhaustive()
    }
}

impl IpAcl {
    /// Refusals are counted and audited through `core`.
    pub fn new(rules: AclHandle, core: Arc<Waiaas>) -> Self {
        IpAcl { rules, classes: Arc::new(RouteClasses::from_route_table()), core }
    }
}

impl<E: Endpoint> Middleware<E> for IpAcl {
    type Output = IpAclEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        IpAclEndpoint { acl: self.clone(), inner: ep }
    }
}

pub struct IpAclEndpoint<E> {
    acl: IpAcl,
    inner: E,
}

impl<E: Endpoint> Endpoint for IpAclEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        // A peer that is not an IP socket (a Unix socket, an in-process test client) is local: nothing to check.
        if let Some(peer) = req.remote_addr().as_socket_addr().map(|addr| addr.ip()) {
            let rules = self.acl.rules.load();
            let lines: Vec<&str> = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(|value| std::str::from_utf8(value.as_bytes()).unwrap_or("?"))
                .collect();
            let client = rules.client(peer, &lines);
            let class = self.acl.classes.classify(req.method(), req.uri().path());
            if !rules.admits(class, &client) {
                self.acl.core.record_access_denied(class, client.ip).await;
                tracing::debug!(client = %client.ip, class = class.as_str(), "refused by the IP access control");
                return Err(ApiError::new(
                    ErrorCode::AccessDeniedIp,
                    format!("this address may not use {} endpoints", class.as_str()),
                )
                .into());
            }
            req.extensions_mut().insert(ClientAddr(client.ip));
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(method: Method, path: &str, class: EndpointClass) {
        assert_eq!(RouteClasses::from_route_table().classify(&method, path), class, "{method} {path}");
    }

    #[test]
    fn routes_are_classified_from_the_route_table() {
        use EndpointClass::*;
        check(Method::GET, "/health", Public);
        check(Method::GET, "/docs", Public);
        check(Method::GET, "/openapi.json", Public);
        check(Method::GET, "/nowhere", Public);
        check(Method::GET, "/metrics", Metrics);
        check(Method::GET, "/v1/nonce", Owner);
        check(Method::POST, "/v1/transactions/0190c4d2-7f3a-7000-8000-000000000001/approve", Owner);
        check(Method::POST, "/v1/transactions/x/reject", Owner);
        check(Method::POST, "/v1/transactions/send", Session);
        check(Method::GET, "/v1/transactions/x", Session);
        check(Method::POST, "/v1/transactions/x/cancel", Session);
        check(Method::PUT, "/v1/sessions/x/renew", Session);
        check(Method::GET, "/v1/wallet/balance", Session);
        check(Method::POST, "/v1/sessions", Admin);
        check(Method::GET, "/v1/agents", Admin);
        check(Method::DELETE, "/v1/agents/x", Admin);
        check(Method::POST, "/v1/admin/transactions/x/cancel", Admin);
        check(Method::GET, "/v1/audit-logs", Admin);
        check(Method::GET, "/v1/admin/kill-switch", Public);
        check(Method::POST, "/v1/admin/kill-switch", Admin);
        // Encoded paths and other methods of a known path keep the path's class.
        check(Method::GET, "/v1/%61gents", Admin);
        check(Method::PATCH, "/v1/agents", Admin);
        check(Method::PATCH, "/v1/wallet/balance", Session);
    }

    #[test]
    fn every_operation_has_the_class_of_its_security_scheme() {
        for api in <Apis as OpenApi>::meta() {
            for path in api.paths {
                for operation in path.operations {
                    let schemes: Vec<&str> = operation.security.iter().flat_map(|s| s.keys().copied()).collect();
                    let class = operation_class(&path.path, &schemes);
                    if schemes.is_empty() {
                        assert!(
                            UNAUTHENTICATED.iter().any(|(p, _)| *p == path.path),
                            "{} {} has no security scheme: classify it in UNAUTHENTICATED",
                            operation.method,
                            path.path
                        );
                    }
                    if schemes.contains(&"masterAuth") {
                        assert_eq!(class, EndpointClass::Admin, "{}", path.path);
                    }
                    let concrete = path.path.replace("{id}", "x");
                    assert_eq!(
                        RouteClasses::from_route_table().classify(&operation.method, &concrete),
                        class,
                        "{} {}",
                        operation.method,
                        path.path
                    );
                }
            }
        }
    }
}
