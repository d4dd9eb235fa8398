//! Middleware around the whole route tree.
//!
//! - [`ErrorEnvelope`] (outermost): gives every request a fresh UUID v4 request id (the `X-Request-Id` response
//!   header, and `requestId` in error bodies), turns every error that reaches it into the one error shape via
//!   [`crate::error`], and answers a panicking handler with `INTERNAL_ERROR`. From the route table it adds what
//!   HTTP asks of some errors: 405 with `Allow` for a known path with another method, and on every 401 a
//!   `WWW-Authenticate` challenge naming the scheme the route takes (`Bearer` for session and metrics routes,
//!   `X-Master-Password` for admin routes, `X-Owner-Signature` for the owner's).
//! - [`HostGuard`]: the DNS-rebinding defence. A request whose `Host` (and absolute-form authority, if any) does
//!   not name the loopback interface or a configured host is refused with 403 `HOST_NOT_ALLOWED`.

use std::time::Instant;

use poem::http::HeaderValue;
use poem::http::header::HOST;
use poem::middleware::CatchPanic;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use uuid::Uuid;
use waiaas_core::{Error, ErrorCode};

use crate::acl::RouteClasses;
use crate::error::{ApiError, RequestLine, classify, method_not_allowed, render};

/// Response header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The request id of the current request (in the request's extensions).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId(pub Uuid);

/// Marks the response the panic handler produced.
#[derive(Clone, Copy, Debug)]
struct Panicked;

/// Request ids, error rendering and panic handling; see the module docs.
#[derive(Clone, Debug, Default)]
pub struct ErrorEnvelope {
    routes: std::sync::Arc<RouteClasses>,
}

impl ErrorEnvelope {
    /// An envelope over the routes of `routes` (for `Allow` and `WWW-Authenticate`).
    pub fn new(routes: std::sync::Arc<RouteClasses>) -> Self {
        ErrorEnvelope { routes }
    }
}

/// The `WWW-Authenticate` challenge for a 401 on a route of `class`.
fn challenge(class: waiaas_core::acl::EndpointClass) -> &'static str {
    use waiaas_core::acl::EndpointClass;
    match class {
        EndpointClass::Session | EndpointClass::Metrics => r#"Bearer realm="waiaas""#,
        EndpointClass::Owner => r#"X-Owner-Signature realm="waiaas""#,
        EndpointClass::Admin | EndpointClass::Public => r#"X-Master-Password realm="waiaas""#,
    }
}

impl<E: Endpoint> Middleware<E> for ErrorEnvelope {
    type Output =
        ErrorEnvelopeEndpoint<poem::middleware::CatchPanicEndpoint<E, fn(Box<dyn std::any::Any + Send>) -> Response>>;

    fn transform(&self, ep: E) -> Self::Output {
        let on_panic: fn(Box<dyn std::any::Any + Send>) -> Response = panic_response;
        ErrorEnvelopeEndpoint {
            inner: CatchPanic::new().with_handler(on_panic).transform(ep),
            routes: std::sync::Arc::clone(&self.routes),
        }
    }
}

/// Reads the whole request body (at most [`crate::body::MAX_BODY_BYTES`]) before any handler or extractor runs, and
/// puts it back in memory. A response sent while the body is still unread (an authentication error answered
/// before the body is parsed, say) makes the HTTP server close the connection, and a client that reuses that
/// pooled connection for its next request sees it broken — a POST it cannot safely retry.
async fn buffer_body(req: &mut Request) -> std::result::Result<(), waiaas_core::Error> {
    use crate::body::MAX_BODY_BYTES;
    match req.take_body().into_bytes_limit(MAX_BODY_BYTES).await {
        Ok(bytes) => {
            req.set_body(bytes);
            Ok(())
        }
        Err(poem::error::ReadBodyError::PayloadTooLarge) => Err(crate::body::too_large()),
        Err(other) => Err(waiaas_core::Error::invalid_field("body", other.to_string())),
    }
}

fn panic_response(_payload: Box<dyn std::any::Any + Send>) -> Response {
    let mut resp = Response::default();
    resp.extensions_mut().insert(Panicked);
    resp
}

pub struct ErrorEnvelopeEndpoint<E> {
    inner: E,
    routes: std::sync::Arc<RouteClasses>,
}

impl<E> ErrorEnvelopeEndpoint<E> {
    /// The classified error, made a 405 when the path exists with other methods.
    fn refine(&self, error: Error, line: &RequestLine) -> Error {
        if !matches!(error.code, ErrorCode::NotFound | ErrorCode::MethodNotAllowed) {
            return error;
        }
        let allowed = self.routes.allowed_methods(&line.path);
        if allowed.is_empty() || allowed.iter().any(|m| m.as_str() == line.method) {
            return if error.code == ErrorCode::MethodNotAllowed { method_not_allowed(line, &[]) } else { error };
        }
        let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
        method_not_allowed(line, &names)
    }
}

impl<E: Endpoint> Endpoint for ErrorEnvelopeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let request_id = Uuid::new_v4();
        req.extensions_mut().insert(RequestId(request_id));
        let line = RequestLine { method: req.method().to_string(), path: req.uri().path().to_owned() };
        let outcome = match buffer_body(&mut req).await {
            Ok(()) => self.inner.call(req).await,
            Err(error) => Err(poem::Error::from(crate::error::ApiError(error))),
        };
        let mut resp = match outcome {
            Ok(resp) => {
                let resp = resp.into_response();
                if resp.extensions().get::<Panicked>().is_some() {
                    tracing::error!(request_id = %request_id, method = %line.method, path = %line.path, "handler panicked");
                    render(&Error::internal_msg("handler panicked"), request_id)
                } else {
                    resp
                }
            }
            Err(err) => render(&self.refine(classify(err, &line), &line), request_id),
        };
        if resp.status() == poem::http::StatusCode::UNAUTHORIZED {
            let method = poem::http::Method::from_bytes(line.method.as_bytes()).unwrap_or_default();
            let class = self.routes.classify(&method, &line.path);
            resp.headers_mut().insert(poem::http::header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge(class)));
        }
        if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
            resp.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        tracing::debug!(
            request_id = %request_id,
            method = %line.method,
            path = %line.path,
            status = resp.status().as_u16(),
            elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        Ok(resp)
    }
}

/// The DNS-rebinding guard; see the module docs.
#[derive(Clone, Debug)]
pub struct HostGuard {
    allowed: Vec<String>,
}

impl HostGuard {
    /// Loopback names are always allowed; `extra` adds configured host names (ports ignored).
    pub fn new(extra: &[String]) -> Self {
        let mut allowed: Vec<String> = ["localhost", "127.0.0.1", "::1"].iter().map(|s| (*s).to_owned()).collect();
        allowed.extend(extra.iter().filter_map(|h| host_name(h)));
        HostGuard { allowed }
    }

    /// Whether a request with this `Host` header value (and absolute-form URI authority) may be served.
    pub fn admits(&self, host_header: Option<&[u8]>, uri_authority: Option<&str>) -> bool {
        let mut seen = false;
        for candidate in [host_header.map(String::from_utf8_lossy), uri_authority.map(Into::into)].into_iter().flatten()
        {
            seen = true;
            match host_name(&candidate) {
                Some(name) if self.allowed.contains(&name) => {}
                _ => return false,
            }
        }
        seen
    }
}

/// The host name of a `Host` value: lowercased, port and IPv6 brackets removed, one trailing dot dropped.
/// `None` for anything malformed.
pub fn host_name(value: &str) -> Option<String> {
    let value = value.trim();
    let (name, port) = if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            other => Some(other.strip_prefix(':')?),
        };
        (inside, port)
    } else {
        match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.contains(['/', '@', ' ', '\\']) {
        return None;
    }
    Some(name.to_ascii_lowercase())
}

impl<E: Endpoint> Middleware<E> for HostGuard {
    type Output = HostGuardEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        HostGuardEndpoint { guard: self.clone(), inner: ep }
    }
}

pub struct HostGuardEndpoint<E> {
    guard: HostGuard,
    inner: E,
}

impl<E: Endpoint> Endpoint for HostGuardEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let host = req.headers().get(HOST).map(HeaderValue::as_bytes);
        let authority = req.uri().authority().map(|a| a.as_str());
        if !self.guard.admits(host, authority) {
            return Err(ApiError::new(
                ErrorCode::HostNotAllowed,
                "the Host header does not name this daemon (DNS-rebinding guard)",
            )
            .into());
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(extra: &[&str], host: Option<&str>, authority: Option<&str>, admitted: bool) {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let guard = HostGuard::new(&extra);
        assert_eq!(guard.admits(host.map(str::as_bytes), authority), admitted, "host {host:?} authority {authority:?}");
    }

    #[test]
    fn loopback_names_are_admitted() {
        for host in [
            "localhost",
            "localhost:3100",
            "LOCALHOST:3100",
            "127.0.0.1",
            "127.0.0.1:3100",
            "[::1]",
            "[::1]:3100",
            "localhost.",
        ] {
            check(&[], Some(host), None, true);
        }
    }

    #[test]
    fn other_names_are_refused() {
        for host in [
            "evil.example",
            "evil.example:3100",
            "127.0.0.2",
            "localhost.evil.example",
            "localhost:abc",
            "localhost:",
            "[::1",
            "::1",
            "",
            "user@localhost",
            "0.0.0.0",
        ] {
            check(&[], Some(host), None, false);
        }
        check(&[], None, None, false);
    }

    #[test]
    fn configured_hosts_are_admitted() {
        check(&["wallet.internal"], Some("wallet.internal:3100"), None, true);
        check(&["Wallet.Internal:8080"], Some("wallet.internal"), None, true);
        check(&["[fd00::1]"], Some("[fd00::1]:3100"), None, true);
        check(&["wallet.internal"], Some("other.internal"), None, false);
    }

    #[test]
    fn absolute_form_authority_must_also_be_allowed() {
        check(&[], Some("localhost"), Some("evil.example"), false);
        check(&[], Some("localhost"), Some("localhost:3100"), true);
        check(&[], None, Some("127.0.0.1:3100"), true);
    }

    #[tokio::test]
    async fn panics_and_plain_errors_become_the_error_shape() {
        use poem::EndpointExt;
        use poem::endpoint::make_sync;
        use poem::test::TestClient;

        fn boom(_: Request) -> &'static str {
            panic!("boom")
        }
        let app = poem::Route::new()
            .at("/boom", make_sync(boom))
            .at("/teapot", make_sync(|_| Err::<(), _>(poem::Error::from_status(poem::http::StatusCode::IM_A_TEAPOT))))
            .with(ErrorEnvelope::default());
        let cli = TestClient::new(app);
        for (path, status, code) in
            [("/boom", 500, "INTERNAL_ERROR"), ("/teapot", 500, "INTERNAL_ERROR"), ("/none", 404, "NOT_FOUND")]
        {
            let resp = cli.get(path).send().await;
            resp.assert_status(poem::http::StatusCode::from_u16(status).unwrap());
            let header = resp.0.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap().to_owned();
            let body: serde_json::Value =
                serde_json::from_slice(&resp.0.into_body().into_vec().await.unwrap()).unwrap();
            assert_eq!(body["code"], code, "{path}");
            assert_eq!(body["requestId"], header.as_str());
            if status == 500 {
                assert_eq!(body["message"], "internal error");
            }
        }
    }
}
