//! Sessions: issuing, authenticating, renewing and revoking agent tokens.
//!
//! A token is `wai_sess_` + an HS256 JWT naming the session and agent. Only its SHA-256 hash is stored, so a
//! token is valid only while its session row exists, is unrevoked, unexpired and still holds that hash (a
//! renewal replaces it). Expiry is checked against the [`crate::ports::Clock`], never the system time.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Waiaas, cursor, page_limit};
use crate::domain::{Agent, AgentStatus, Session, SessionConstraints};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Actor, Event, EventType, RequestContext};
use crate::ports::{Entropy, Page, SettingsRepo};
use crate::{AgentId, SessionId};

pub const TOKEN_PREFIX: &str = "wai_sess_";
const SIGNING_KEY_SETTING: &str = "session_signing_key";

/// The HMAC key tokens are signed with, kept in the settings table.
pub(super) struct TokenKey(Zeroizing<Vec<u8>>);

impl TokenKey {
    pub(super) async fn load_or_create(settings: &dyn SettingsRepo, entropy: &dyn Entropy) -> Result<TokenKey> {
        if let Some(hex_key) = settings.get(SIGNING_KEY_SETTING).await? {
            let bytes =
                hex::decode(hex_key).map_err(|e| Error::internal_msg(format!("signing key unreadable: {e}")))?;
            return Ok(TokenKey(Zeroizing::new(bytes)));
        }
        let mut bytes = Zeroizing::new(vec![0u8; 32]);
        entropy.fill(&mut bytes);
        settings.put(SIGNING_KEY_SETTING, &hex::encode(bytes.as_slice())).await?;
        Ok(TokenKey(bytes))
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    /// Session id.
    sid: String,
    /// Agent id.
    agt: String,
    iat: i64,
    exp: i64,
    /// Random per-issue value so a renewal never reproduces an earlier token.
    nce: String,
}

/// A freshly issued token (shown once).
#[derive(Clone, Debug)]
pub struct IssuedSession {
    /// The stored session (its `token_hash` only, never the token).
    pub session: Session,
    /// The bearer token (`wai_sess_` + JWT), returned once.
    pub token: String,
}

/// An authenticated agent request.
#[derive(Clone, Debug)]
pub struct SessionPrincipal {
    /// The session the token belongs to.
    pub session_id: SessionId,
    /// The session's agent as read when the token was checked (ACTIVE then).
    pub agent: Agent,
    /// The session's constraints, enforced by the policy engine on every request.
    pub constraints: Option<SessionConstraints>,
    /// The request's context (actor = this session, the peer's IP) for events and audit rows.
    pub context: RequestContext,
}

pub(crate) fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Waiaas {
    fn sign_token(&self, session: &Session) -> Result<String> {
        let mut nonce = [0u8; 16];
        self.ports.entropy.fill(&mut nonce);
        let claims = Claims {
            sid: session.id.to_string(),
            agt: session.agent_id.to_string(),
            iat: self.now().0,
            exp: session.expires_at.0,
            nce: hex::encode(nonce),
        };
        let jwt =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&self.token_key.0))
                .map_err(Error::internal)?;
        Ok(format!("{TOKEN_PREFIX}{jwt}"))
    }

    fn ttl(&self, requested: Option<u64>) -> Result<i64> {
        let ttl = requested.unwrap_or(self.config.session_ttl_seconds);
        if ttl < 60 || ttl > self.config.session_max_ttl_seconds {
            return Err(Error::invalid_field(
                "ttlSeconds",
                format!("must be between 60 and {}", self.config.session_max_ttl_seconds),
            ));
        }
        i64::try_from(ttl).map_err(|_| Error::invalid_field("ttlSeconds", "too large"))
    }

    /// Issues a session for an ACTIVE agent. The token is returned once and never stored.
    pub async fn create_session(
        &self,
        ctx: &RequestContext,
        agent_id: AgentId,
        ttl_seconds: Option<u64>,
        constraints: Option<serde_json::Value>,
    ) -> Result<IssuedSession> {
        self.ensure_not_locked()?;
        let ttl = self.ttl(ttl_seconds)?;
        let constraints = constraints.as_ref().map(SessionConstraints::parse).transpose()?;
        let agent = self.agent(agent_id).await?;
        ensure_agent_usable(agent.status)?;
        let now = self.now();
        let mut session = Session {
            id: SessionId::generate(self.ports.clock.as_ref(), self.ports.entropy.as_ref()),
            agent_id,
            token_hash: String::new(),
            constraints,
            created_at: now,
            expires_at: now.plus_seconds(ttl),
            revoked_at: None,
            renewal_count: 0,
        };
        let token = self.sign_token(&session)?;
        session.token_hash = token_hash(&token);
        let event = Event::new(EventType::SessionCreated, ctx, now).agent(agent_id).session(session.id).details(
            serde_json::json!({
                "expiresAt": session.expires_at.0,
                "ttlSeconds": ttl,
                "constraints": session.constraints.as_ref().map(SessionConstraints::to_json),
            }),
        );
        self.ports.sessions.insert(&session, &event).await?;
        self.publish(&event);
        self.refresh_state_gauges_quietly().await;
        Ok(IssuedSession { session, token })
    }

    /// One session by id (`SESSION_NOT_FOUND` when there is none).
    pub async fn session(&self, id: SessionId) -> Result<Session> {
        self.ports
            .sessions
            .get(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::SessionNotFound, format!("session {id} not found")))
    }

    /// A page of sessions, optionally only one agent's, oldest first.
    pub async fn list_sessions(
        &self,
        agent_id: Option<AgentId>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Session>> {
        let limit = page_limit(limit)?;
        let before = cursor.map(|c| cursor::decode_parsed::<SessionId>("sessions", c)).transpose()?;
        let mut items = self.ports.sessions.list(agent_id, before, limit + 1).await?;
        let next_cursor = next_page(&mut items, limit, |s| cursor::encode("sessions", &s.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    /// Revokes a session; its token stops working at once. Revoking a revoked session changes nothing.
    pub async fn revoke_session(&self, ctx: &RequestContext, id: SessionId) -> Result<Session> {
        let session = self.session(id).await?;
        if session.revoked_at.is_some() {
            return Ok(session);
        }
        let now = self.now();
        let event = Event::new(EventType::SessionRevoked, ctx, now).agent(session.agent_id).session(id);
        self.ports.sessions.revoke(id, now, &event).await?;
        self.publish(&event);
        self.refresh_state_gauges_quietly().await;
        self.session(id).await
    }

    /// Replaces the caller's token with a new one (the old one stops working), extending the expiry by the
    /// configured TTL up to the session's absolute lifetime.
    pub async fn renew_session(&self, principal: &SessionPrincipal) -> Result<IssuedSession> {
        let mut session = self.session(principal.session_id).await?;
        let now = self.now();
        let cap = session
            .created_at
            .plus_seconds(i64::try_from(self.config.session_absolute_lifetime_seconds).unwrap_or(i64::MAX));
        let expires_at = now.plus_seconds(self.ttl(None)?).min(cap);
        if expires_at <= now {
            return Err(Error::new(ErrorCode::TokenExpired, "the session reached its maximum lifetime"));
        }
        session.expires_at = expires_at;
        let token = self.sign_token(&session)?;
        session.token_hash = token_hash(&token);
        session.renewal_count += 1;
        let event = Event::new(EventType::SessionRenewed, &principal.context, now)
            .agent(session.agent_id)
            .details(serde_json::json!({ "expiresAt": expires_at.0, "renewalCount": session.renewal_count }));
        self.ports.sessions.renew(session.id, &session.token_hash, expires_at, &event).await?;
        self.publish(&event);
        Ok(IssuedSession { session, token })
    }

    /// Authenticates a bearer token for the agent API. Order of refusals: kill switch (`SYSTEM_LOCKED`), malformed
    /// or forged token (`INVALID_TOKEN`), revoked (`SESSION_REVOKED`), expired (`TOKEN_EXPIRED`), agent not ACTIVE.
    pub async fn authenticate_session(&self, bearer: &str, ip: Option<std::net::IpAddr>) -> Result<SessionPrincipal> {
        self.ensure_not_locked()?;
        let invalid = || Error::new(ErrorCode::InvalidToken, "invalid session token");
        let jwt = bearer.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<Claims>(jwt, &DecodingKey::from_secret(&self.token_key.0), &validation)
            .map_err(|_| invalid())?
            .claims;
        let session_id: SessionId = claims.sid.parse().map_err(|_| invalid())?;
        let session = self.ports.sessions.get(session_id).await?.ok_or_else(invalid)?;
        if !bool::from(subtle::ConstantTimeEq::ct_eq(session.token_hash.as_bytes(), token_hash(bearer).as_bytes())) {
            return Err(invalid());
        }
        if session.revoked_at.is_some() {
            return Err(Error::new(ErrorCode::SessionRevoked, "this session was revoked"));
        }
        if self.now() >= session.expires_at {
            return Err(Error::new(ErrorCode::TokenExpired, "this session expired"));
        }
        if let Some(cidrs) = session.constraints.as_ref().and_then(|c| c.allowed_cidrs.as_ref())
            && !ip.is_some_and(|ip| crate::acl::contains(cidrs, ip))
        {
            if let Some(ip) = ip {
                self.record_access_denied(crate::acl::EndpointClass::Session, ip).await;
            }
            return Err(Error::new(
                ErrorCode::AccessDeniedIp,
                "this session token may not be used from this address (constraints.allowedCidrs)",
            ));
        }
        let agent = self.agent(session.agent_id).await?;
        ensure_agent_usable(agent.status)?;
        Ok(SessionPrincipal {
            session_id,
            agent,
            constraints: session.constraints,
            context: RequestContext { actor: Actor::Session(session_id), ip },
        })
    }
}

pub(super) fn ensure_agent_usable(status: AgentStatus) -> Result<()> {
    match status {
        AgentStatus::Active => Ok(()),
        AgentStatus::Suspended => Err(Error::new(ErrorCode::AgentSuspended, "the agent is suspended")),
        AgentStatus::Terminated => Err(Error::new(ErrorCode::AgentTerminated, "the agent is terminated")),
    }
}

/// Trims a `limit + 1` fetch to `limit` and returns the cursor of the next page when there is one.
pub(super) fn next_page<T>(items: &mut Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> String) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    }
}
