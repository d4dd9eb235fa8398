//! Authentication extractors: [`MasterAuth`] (`X-Master-Password`) and [`SessionAuth`]
//! (`Authorization: Bearer wai_sess_...`), documented as the `masterAuth` and `sessionAuth` security schemes.
//!
//! Refusals, decided before any other part of the request is looked at:
//! - master endpoints: no `X-Master-Password` but a bearer token → 403 `WRONG_AUTH`; neither → 401
//!   `UNAUTHORIZED`; otherwise the core decides (`INVALID_MASTER_PASSWORD`, audited and rate limited per client
//!   address: `RATE_LIMITED`).
//! - session endpoints: no bearer token but `X-Master-Password` → 403 `WRONG_AUTH`; neither → 401
//!   `UNAUTHORIZED`; otherwise the core decides (`INVALID_TOKEN`, `SESSION_REVOKED`, `TOKEN_EXPIRED`,
//!   `SYSTEM_LOCKED`, `AGENT_SUSPENDED`, `AGENT_TERMINATED`).
//!
//! The client address handed to the core is the socket peer, never a header.

use std::net::IpAddr;
use std::sync::Arc;

use poem::Request;
use poem::web::RequestBody;
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use waiaas_core::event::RequestContext;
use waiaas_core::services::SessionPrincipal;
use waiaas_core::{Error, ErrorCode};

use crate::ServerState;
use crate::error::ApiError;

/// Header carrying the master password.
pub const MASTER_PASSWORD_HEADER: &str = "x-master-password";

const MASTER_SCHEME: &str = "masterAuth";
const SESSION_SCHEME: &str = "sessionAuth";

/// The operator, authenticated by the master password.
#[derive(Clone, Debug)]
pub struct MasterAuth(pub RequestContext);

/// An agent, authenticated by a session token.
#[derive(Clone, Debug)]
pub struct SessionAuth(pub SessionPrincipal);

/// The socket peer's address (IPv4-mapped IPv6 addresses canonicalised to IPv4).
pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    req.remote_addr().as_socket_addr().map(|addr| addr.ip().to_canonical())
}

/// The shared state added to every request by [`crate::app`].
pub fn state(req: &Request) -> Result<&Arc<ServerState>, ApiError> {
    req.data::<Arc<ServerState>>().ok_or_else(|| ApiError(Error::internal_msg("server state missing from request")))
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(poem::http::header::AUTHORIZATION)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let (scheme, token) = text.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn master_password(req: &Request) -> Option<String> {
    req.headers().get(MASTER_PASSWORD_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Decides master authentication; see the module docs for the order of refusals.
pub async fn authenticate_master(req: &Request) -> Result<RequestContext, ApiError> {
    let Some(candidate) = master_password(req) else {
        if bearer(req).is_some() {
            return Err(ApiError::new(
                ErrorCode::WrongAuth,
                "this endpoint takes the master password (X-Master-Password), not a session token",
            ));
        }
        return Err(ApiError::new(ErrorCode::Unauthorized, "send the master password in the X-Master-Password header"));
    };
    let state = state(req)?;
    Ok(state.core.authenticate_master(&candidate, peer_ip(req)).await?)
}

/// Decides session authentication; see the module docs for the order of refusals.
pub async fn authenticate_session(req: &Request) -> Result<SessionPrincipal, ApiError> {
    let Some(token) = bearer(req) else {
        if master_password(req).is_some() {
            return Err(ApiError::new(
                ErrorCode::WrongAuth,
                "this endpoint takes a session token (Authorization: Bearer wai_sess_...), not the master password",
            ));
        }
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            "send a session token in the header `Authorization: Bearer wai_sess_...`",
        ));
    };
    let state = state(req)?;
    Ok(state.core.authenticate_session(&token, peer_ip(req)).await?)
}

impl<'a> ApiExtractor<'a> for MasterAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            MASTER_SCHEME,
            MetaSecurityScheme {
                ty: "apiKey",
                description: Some("The operator's master password. Wrong passwords are audited and rate limited."),
                name: Some("X-Master-Password"),
                key_in: Some("header"),
                scheme: None,
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![MASTER_SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(MasterAuth(authenticate_master(request).await?))
    }
}

impl<'a> ApiExtractor<'a> for SessionAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SESSION_SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some("A session token issued by POST /v1/sessions: `Authorization: Bearer wai_sess_...`."),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("wai_sess_<token>"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SESSION_SCHEME]
    }

    async fn from_request(
        request: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        Ok(SessionAuth(authenticate_session(request).await?))
    }
}
