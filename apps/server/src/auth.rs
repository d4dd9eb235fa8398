//! Authentication extractors: [`MasterAuth`] (`X-Master-Password`), [`SessionAuth`]
//! (`Authorization: Bearer wai_sess_...`) and [`OwnerAuth`] (`X-Owner-Address`, `X-Owner-Message`,
//! `X-Owner-Signature`), documented as the `masterAuth`, `sessionAuth` and `ownerAuth` security schemes.
//!
//! Refusals, decided before any other part of the request is looked at:
//! - master endpoints: no `X-Master-Password` but a bearer token → 403 `WRONG_AUTH`; neither → 401
//!   `UNAUTHORIZED`; otherwise the core decides (`INVALID_MASTER_PASSWORD`, audited and rate limited per client
//!   address: `RATE_LIMITED`).
//! - session endpoints: no bearer token but `X-Master-Password` → 403 `WRONG_AUTH`; neither → 401
//!   `UNAUTHORIZED`; otherwise the core decides (`INVALID_TOKEN`, `SESSION_REVOKED`, `TOKEN_EXPIRED`,
//!   `SYSTEM_LOCKED`, `AGENT_SUSPENDED`, `AGENT_TERMINATED`).
//! - owner endpoints: none of the three owner headers but a bearer token or `X-Master-Password` → 403
//!   `WRONG_AUTH`; none at all, only some of them, or an `X-Owner-Message` that is not base64 (standard
//!   alphabet, padding optional) of UTF-8 text → 401 `UNAUTHORIZED`. The extractor only collects the
//!   credentials: the signed message names the transaction and the decision, so the handler has the core verify
//!   the signature against the path's transaction id (`Waiaas::verify_owner_signature`, which consumes the nonce).
//!
//! The client address handed to the core is the one the IP access control resolved ([`crate::acl::ClientAddr`]:
//! the socket peer, or the rightmost untrusted `X-Forwarded-For` hop behind a trusted proxy), never a header the
//! peer chose.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
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

/// Headers of owner authentication.
pub const OWNER_ADDRESS_HEADER: &str = "x-owner-address";
pub const OWNER_MESSAGE_HEADER: &str = "x-owner-message";
pub const OWNER_SIGNATURE_HEADER: &str = "x-owner-signature";

const MASTER_SCHEME: &str = "masterAuth";
const SESSION_SCHEME: &str = "sessionAuth";
const OWNER_SCHEME: &str = "ownerAuth";

/// Standard alphabet; accepts the message with or without `=` padding.
const MESSAGE_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The operator, authenticated by the master password.
#[derive(Clone, Debug)]
pub struct MasterAuth(pub RequestContext);

/// An agent, authenticated by a session token.
#[derive(Clone, Debug)]
pub struct SessionAuth(pub SessionPrincipal);

/// An owner's signed decision as sent, not yet verified (see the module docs).
#[derive(Clone, Debug)]
pub struct OwnerAuth {
    /// `X-Owner-Address` as sent.
    pub address: String,
    /// The signed text (`X-Owner-Message`, base64-decoded).
    pub message: String,
    /// `X-Owner-Signature` as sent (`0x` + 65 bytes hex).
    pub signature: String,
    /// The client address (see [`peer_ip`]).
    pub ip: Option<IpAddr>,
}

/// The client address: the one the IP access control resolved, else the socket peer's (IPv4-mapped IPv6
/// addresses canonicalised to IPv4).
pub fn peer_ip(req: &Request) -> Option<IpAddr> {
    if let Some(crate::acl::ClientAddr(ip)) = req.extensions().get::<crate::acl::ClientAddr>() {
        return Some(*ip);
    }
    req.remote_addr().as_socket_addr().map(|addr| addr.ip().to_canonical())
}

/// The shared state added to every request by [`crate::app`].
pub fn state(req: &Request) -> Result<&Arc<ServerState>, ApiError> {
    req.data::<Arc<ServerState>>().ok_or_else(|| ApiError(Error::internal_msg("server state missing from request")))
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer(req: &Request) -> Option<String> {
    let value = req.headers().get(poem::http::header::AUTHORIZATION)?;
    let text = String::from_utf8_lossy(value.as_bytes());
    let (scheme, token) = text.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn master_password(req: &Request) -> Option<String> {
    header(req, MASTER_PASSWORD_HEADER)
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

/// Collects the owner's credentials; see the module docs for the order of refusals.
pub fn owner_credentials(req: &Request) -> Result<OwnerAuth, ApiError> {
    let address = header(req, OWNER_ADDRESS_HEADER);
    let message = header(req, OWNER_MESSAGE_HEADER);
    let signature = header(req, OWNER_SIGNATURE_HEADER);
    let (Some(address), Some(message), Some(signature)) = (&address, &message, &signature) else {
        if address.is_none() && message.is_none() && signature.is_none() {
            if bearer(req).is_some() || master_password(req).is_some() {
                return Err(ApiError::new(
                    ErrorCode::WrongAuth,
                    "this endpoint takes the owner's signature (X-Owner-Address, X-Owner-Message, \
                     X-Owner-Signature), not a session token or the master password",
                ));
            }
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "send the owner's signature in the X-Owner-Address, X-Owner-Message (base64 of the signed text) \
                 and X-Owner-Signature headers",
            ));
        }
        let missing: Vec<&str> =
            [("X-Owner-Address", &address), ("X-Owner-Message", &message), ("X-Owner-Signature", &signature)]
                .into_iter()
                .filter(|(_, value)| value.is_none())
                .map(|(name, _)| name)
                .collect();
        return Err(ApiError::new(ErrorCode::Unauthorized, format!("missing {}", missing.join(", "))));
    };
    let not_text =
        || ApiError::new(ErrorCode::Unauthorized, "X-Owner-Message must be base64 (standard alphabet) of UTF-8 text");
    let decoded = MESSAGE_BASE64.decode(message.trim()).map_err(|_| not_text())?;
    let message = String::from_utf8(decoded).map_err(|_| not_text())?;
    Ok(OwnerAuth {
        address: address.trim().to_owned(),
        message,
        signature: signature.trim().to_owned(),
        ip: peer_ip(req),
    })
}

/// Implements `ApiExtractor` for a security-scheme extractor: registers `$scheme` as `$meta` and builds `Self`
/// from the request with `$extract` (an expression over `$request` that may `.await` and `?`).
macro_rules! security_scheme_extractor {
    ($ty:ty, $scheme:expr, $meta:expr, |$request:ident| $extract:expr) => {
        impl<'a> ApiExtractor<'a> for $ty {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                registry.create_security_scheme($scheme, $meta);
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![$scheme]
            }

            async fn from_request(
                $request: &'a Request,
                _body: &mut RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                Ok($extract)
            }
        }
    };
}

security_scheme_extractor!(
    MasterAuth,
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
    |request| MasterAuth(authenticate_master(request).await?)
);

security_scheme_extractor!(
    SessionAuth,
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
    |request| SessionAuth(authenticate_session(request).await?)
);

security_scheme_extractor!(
    OwnerAuth,
    OWNER_SCHEME,
    MetaSecurityScheme {
        ty: "apiKey",
        description: Some(
            "The owner's signature, sent with two more headers: `X-Owner-Address` (the agent's owner) and \
             `X-Owner-Message` (base64, standard alphabet, of the signed text \
             `WAIaaS: <approve|reject> transaction <id>\\nNonce: <nonce>`, the nonce from `GET /v1/nonce`, single \
             use). An EVM owner signs the EIP-191 (`personal_sign`) way: `X-Owner-Signature` is `0x` + 65 bytes \
             hex. A Solana owner signs the text's bytes with ed25519 (a wallet's `signMessage`): \
             `X-Owner-Signature` is base58 of the 64 bytes.",
        ),
        name: Some("X-Owner-Signature"),
        key_in: Some("header"),
        scheme: None,
        bearer_format: None,
        flows: None,
        openid_connect_url: None,
    },
    |request| owner_credentials(request)?
);
