//! Sessions: issue and list (master password), revoke (master password), renew (the session itself).
//! Tokens are shown once, at issue and renewal; lists never carry a token or its hash.

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;
use waiaas_core::domain::Session;
use waiaas_core::services::IssuedSession;
use waiaas_core::{AgentId, ErrorCode, SessionId, UnixSeconds};

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::{MasterAuth, SessionAuth};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::wire::{AnyAddress, PageLimit};

/// A session as listed (no token, no hash).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SessionDto {
    pub id: Uuid,
    pub agent_id: Uuid,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds; absent while not revoked.
    #[oai(skip_serializing_if_is_none)]
    pub revoked_at: Option<i64>,
    pub renewal_count: u32,
    /// Not revoked and not expired.
    pub active: bool,
}

impl SessionDto {
    fn new(session: Session, now: UnixSeconds) -> Self {
        SessionDto {
            id: session.id.as_uuid(),
            agent_id: session.agent_id.as_uuid(),
            created_at: session.created_at.0,
            expires_at: session.expires_at.0,
            revoked_at: session.revoked_at.map(|t| t.0),
            renewal_count: session.renewal_count,
            active: session.is_active(now),
        }
    }
}

/// A freshly issued token. It is shown only here.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct IssuedSessionDto {
    pub id: Uuid,
    /// `wai_sess_...`: send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl From<IssuedSession> for IssuedSessionDto {
    fn from(issued: IssuedSession) -> Self {
        IssuedSessionDto {
            id: issued.session.id.as_uuid(),
            token: issued.token,
            expires_at: issued.session.expires_at.0,
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct SessionPage {
    pub data: Vec<SessionDto>,
    /// Pass back as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSessionRequest {
    /// An ACTIVE agent.
    pub agent_id: Uuid,
    /// Lifetime in seconds (null or absent: `[security] session_ttl_seconds`); at least 60, at most
    /// `[security] session_max_ttl_seconds` and never more than 10 years.
    #[oai(nullable, validator(minimum(value = "60"), maximum(value = "315360000")))]
    pub ttl_seconds: Option<u64>,
    /// Limits attached to the session, enforced by the policy engine on every request (send and simulate).
    #[oai(nullable)]
    pub constraints: Option<SessionConstraintsDto>,
}

/// Session constraints. Each field narrows what the session may do, judged by what a transaction does on chain
/// (a CONTRACT_CALL with empty calldata is a TRANSFER; ERC-20 calldata is also a TOKEN_TRANSFER or APPROVE).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionConstraintsDto {
    /// Allowed kinds of effect.
    #[oai(nullable)]
    pub allowed_types: Option<Vec<EffectKindName>>,
    /// Most one request may move or approve, per asset (`native` or a token address), in the smallest unit (a
    /// decimal string).
    #[oai(nullable, validator(pattern = "^[0-9]+$"))]
    pub max_amount_per_tx: Option<BTreeMap<String, String>>,
    /// Allowed recipients, spenders and called contracts (EVM or Solana addresses).
    #[oai(nullable)]
    pub allowed_recipients: Option<Vec<AnyAddress>>,
    /// Allowed networks (names, not empty).
    #[oai(nullable, validator(min_length = 1))]
    pub allowed_networks: Option<Vec<String>>,
    /// Client addresses (CIDRs, or single addresses) the token may be used from; elsewhere it is refused with
    /// 403 `ACCESS_DENIED_IP`. At least one when present. Each an IPv4 or IPv6 address in its text form (RFC 4291
    /// for IPv6, IPv4 without leading zeros), optionally followed by `/` and a prefix length (at most 32 or 128).
    #[oai(nullable, validator(min_items = 1, pattern = r"^[0-9A-Fa-f:.]+(/[0-9]+)?$"))]
    pub allowed_cidrs: Option<Vec<String>>,
}

/// A kind of on-chain effect a session may be limited to.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EffectKindName {
    Transfer,
    TokenTransfer,
    Approve,
    ContractCall,
}

impl EffectKindName {
    fn as_str(self) -> &'static str {
        match self {
            EffectKindName::Transfer => "TRANSFER",
            EffectKindName::TokenTransfer => "TOKEN_TRANSFER",
            EffectKindName::Approve => "APPROVE",
            EffectKindName::ContractCall => "CONTRACT_CALL",
        }
    }
}

impl SessionConstraintsDto {
    /// The JSON the core parses (it validates every field and names the bad one).
    fn into_json(self) -> Value {
        let mut map = serde_json::Map::new();
        let mut put = |key: &str, value: Option<Value>| {
            if let Some(value) = value {
                map.insert(key.to_owned(), value);
            }
        };
        put("allowedTypes", self.allowed_types.map(|v| v.into_iter().map(|k| Value::from(k.as_str())).collect()));
        put(
            "maxAmountPerTx",
            self.max_amount_per_tx.map(|m| Value::Object(m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())),
        );
        put("allowedRecipients", self.allowed_recipients.map(|v| v.into_iter().map(|a| Value::String(a.0)).collect()));
        put("allowedNetworks", self.allowed_networks.map(|v| v.into_iter().map(Value::String).collect()));
        put("allowedCidrs", self.allowed_cidrs.map(|v| v.into_iter().map(Value::String).collect()));
        Value::Object(map)
    }
}

#[derive(ApiResponse)]
pub enum SessionCreated {
    /// The session was issued; the token is shown only in this response.
    #[oai(status = 201)]
    Created(Json<IssuedSessionDto>),
}

pub struct SessionsApi;

fn now(state: &ServerState) -> UnixSeconds {
    state.core.ports().clock.now()
}

#[OpenApi(tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// Issue a session token for an agent.
    #[oai(path = "/v1/sessions", method = "post", operation_id = "createSession")]
    async fn create(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        body: JsonBody<CreateSessionRequest>,
    ) -> ApiResult<SessionCreated> {
        let req = body.0;
        let constraints = req.constraints.map(SessionConstraintsDto::into_json);
        let issued =
            state.core.create_session(&auth.0, AgentId::from_uuid(req.agent_id), req.ttl_seconds, constraints).await?;
        Ok(SessionCreated::Created(Json(issued.into())))
    }

    /// List sessions, newest first.
    #[oai(path = "/v1/sessions", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// Only this agent's sessions.
        agent_id: Query<Option<Uuid>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<SessionPage>> {
        let result = state
            .core
            .list_sessions(agent_id.0.map(AgentId::from_uuid), cursor.0.as_deref(), limit.0.map(|l| l.0))
            .await?;
        let now = now(&state);
        let (data, next_cursor, has_more) = page(result, |s| SessionDto::new(s, now));
        Ok(Json(SessionPage { data, next_cursor, has_more }))
    }

    /// Revoke a session; its token stops working at once. Revoking a revoked session changes nothing.
    #[oai(path = "/v1/sessions/:id", method = "delete", operation_id = "revokeSession")]
    async fn revoke(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<SessionDto>> {
        let session = state.core.revoke_session(&auth.0, SessionId::from_uuid(id.0)).await?;
        Ok(Json(SessionDto::new(session, now(&state))))
    }

    /// Renew the calling session: a new token replaces the old one, which stops working.
    #[oai(path = "/v1/sessions/:id/renew", method = "put", operation_id = "renewSession")]
    async fn renew(
        &self,
        auth: SessionAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<IssuedSessionDto>> {
        let principal = auth.0;
        if principal.session_id.as_uuid() != id.0 {
            return Err(ApiError::new(ErrorCode::Forbidden, "a session token can renew only its own session"));
        }
        Ok(Json(state.core.renew_session(&principal).await?.into()))
    }
}
