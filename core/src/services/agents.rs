//! Agent lifecycle: create (with a fresh key), read, suspend, resume, terminate, set the owner. Status changes
//! are compare-and-set, and suspending or terminating cancels the agent's unsigned transactions with them.

use super::sessions::next_page;
use super::{Waiaas, cursor, page_limit};
use crate::domain::{Address, Agent, AgentStatus, Chain};
use crate::error::{Error, ErrorCode, Issue, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::ports::{Page, StatusEffects};
use crate::{AgentId, Amount};

/// Longest agent name accepted.
pub const MAX_AGENT_NAME: usize = 100;

impl Waiaas {
    /// Creates an agent on a configured network: generates its key in the keystore and records it.
    pub async fn create_agent(&self, ctx: &RequestContext, name: &str, chain: &str, network: &str) -> Result<Agent> {
        self.ensure_not_locked()?;
        let mut issues = Vec::new();
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_AGENT_NAME {
            issues.push(Issue { path: "name".into(), message: format!("must be 1 to {MAX_AGENT_NAME} characters") });
        }
        let chain_parsed = Chain::parse(chain);
        if chain_parsed.is_none() {
            issues.push(Issue { path: "chain".into(), message: "supported chains: ethereum, solana".into() });
        }
        if !issues.is_empty() {
            return Err(Error::validation(issues));
        }
        let chain = chain_parsed.unwrap_or(Chain::Ethereum);
        let networks = self.ports.chain.networks();
        let Some(configured) = networks.iter().find(|n| n.name == network) else {
            let names: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
            return Err(Error::new(ErrorCode::NetworkNotConfigured, format!("network {network:?} is not configured"))
                .with_details(serde_json::json!({ "configured": names })));
        };
        if configured.family != chain.family() {
            return Err(Error::invalid_field(
                "network",
                format!(
                    "{network} is a {} network; a {} agent needs a {} one",
                    configured.family,
                    chain.as_str(),
                    chain.family()
                ),
            ));
        }
        let now = self.now();
        let id = AgentId::generate(self.ports.clock.as_ref(), self.ports.entropy.as_ref());
        let address = self.ports.keystore.create_key(id, chain.family()).await?;
        let agent = Agent {
            id,
            name: name.to_owned(),
            chain,
            network: network.to_owned(),
            address,
            status: AgentStatus::Active,
            owner_address: None,
            created_at: now,
            updated_at: now,
        };
        let event = Event::new(EventType::AgentCreated, ctx, now).agent(id).details(serde_json::json!({
            "name": agent.name, "chain": chain.as_str(), "network": network, "address": address.to_string(),
        }));
        self.ports.agents.insert(&agent, &event).await?;
        self.publish(&event);
        self.refresh_state_gauges_quietly().await;
        Ok(agent)
    }

    /// One agent by id (`AGENT_NOT_FOUND` when there is none).
    pub async fn agent(&self, id: AgentId) -> Result<Agent> {
        self.ports
            .agents
            .get(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::AgentNotFound, format!("agent {id} not found")))
    }

    /// A page of agents, oldest first, after `cursor`.
    pub async fn list_agents(&self, cursor: Option<&str>, limit: Option<u32>) -> Result<Page<Agent>> {
        let limit = page_limit(limit)?;
        let before = cursor.map(|c| cursor::decode_parsed::<AgentId>("agents", c)).transpose()?;
        let mut items = self.ports.agents.list(before, limit + 1).await?;
        let next_cursor = next_page(&mut items, limit, |a| cursor::encode("agents", &a.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    /// Compare-and-set from the status just read: a change racing another (a resume racing a terminate) loses
    /// with `INVALID_STATE_TRANSITION` instead of overwriting it. Leaving ACTIVE cancels the agent's unsigned
    /// transactions in the same write, one `TX_CANCELLED` each (`details.by`: `agent_suspended` or
    /// `agent_terminated`).
    async fn change_status(
        &self,
        ctx: &RequestContext,
        id: AgentId,
        step: fn(AgentStatus) -> Result<AgentStatus, crate::domain::TransitionError>,
        event_type: EventType,
    ) -> Result<Agent> {
        let agent = self.agent(id).await?;
        let (from, next) = (agent.status, step(agent.status)?);
        let now = self.now();
        let ctx = ctx.clone();
        let events = Box::new(move |effects: &StatusEffects| {
            let change = Event::new(event_type, &ctx, now).agent(id).details(serde_json::json!({
                "from": from.as_str(),
                "to": next.as_str(),
                "transactionsCancelled": effects.cancelled.len(),
            }));
            let by = match next {
                AgentStatus::Terminated => "agent_terminated",
                AgentStatus::Active | AgentStatus::Suspended => "agent_suspended",
            };
            let revocations = effects.revoked_sessions.iter().map(|session| {
                Event::new(EventType::SessionRevoked, &ctx, now)
                    .agent(id)
                    .session(*session)
                    .details(serde_json::json!({ "by": by }))
            });
            let cancellations = effects.cancelled.iter().map(|tx| {
                Event::new(EventType::TxCancelled, &ctx, now).agent(id).tx(*tx).details(serde_json::json!({ "by": by }))
            });
            std::iter::once(change).chain(revocations).chain(cancellations).collect()
        });
        let Some((effects, events)) = self.ports.agents.set_status(id, from, next, now, events).await? else {
            return Err(Error::new(ErrorCode::InvalidStateTransition, "the agent changed state meanwhile"));
        };
        for event in &events {
            self.publish(event);
        }
        for tx in &effects.cancelled {
            if let Ok(Some(row)) = self.ports.transactions.get(*tx).await {
                self.record_final_of(&row, crate::domain::TxStatus::Cancelled).await;
            }
        }
        self.refresh_state_gauges_quietly().await;
        self.agent(id).await
    }

    /// Suspends an ACTIVE agent and cancels its unsigned transactions in the same write.
    pub async fn suspend_agent(&self, ctx: &RequestContext, id: AgentId) -> Result<Agent> {
        self.change_status(ctx, id, AgentStatus::suspend, EventType::AgentSuspended).await
    }

    /// Resumes a SUSPENDED agent (refused while the kill switch is tripped).
    pub async fn resume_agent(&self, ctx: &RequestContext, id: AgentId) -> Result<Agent> {
        self.ensure_not_locked()?;
        self.change_status(ctx, id, AgentStatus::resume, EventType::AgentResumed).await
    }

    /// Terminates an agent: its sessions are revoked and its unsigned transactions cancelled; its row, key file
    /// and audit rows are kept (funds may remain at the address).
    pub async fn terminate_agent(&self, ctx: &RequestContext, id: AgentId) -> Result<Agent> {
        self.change_status(ctx, id, AgentStatus::terminate, EventType::AgentTerminated).await
    }

    /// Sets (or clears, with `None`) the owner who approves APPROVAL-tier transfers: an address of the agent's
    /// chain family, whose key signs the decisions (`VALIDATION_FAILED` on `ownerAddress` otherwise).
    pub async fn set_owner(&self, ctx: &RequestContext, id: AgentId, owner: Option<Address>) -> Result<Agent> {
        let agent = self.agent(id).await?;
        if agent.status == AgentStatus::Terminated {
            return Err(Error::new(ErrorCode::AgentTerminated, "the agent is terminated"));
        }
        let family = agent.chain.family();
        if let Some(owner) = owner.filter(|owner| owner.family() != family) {
            let message = format!(
                "{owner} is not an address of the agent's chain family ({family}): its owner signs with a {family} key"
            );
            return Err(Error::invalid_field("ownerAddress", message));
        }
        let now = self.now();
        let event = Event::new(EventType::OwnerSet, ctx, now).agent(id).details(serde_json::json!({
            "previous": agent.owner_address.map(|a| a.to_string()),
            "owner": owner.map(|a| a.to_string()),
        }));
        self.ports.agents.set_owner(id, owner, now, &event).await?;
        self.publish(&event);
        self.agent(id).await
    }

    /// The caller's balance of the token at `token` (an address in the form of its network's family) on its
    /// network, with the token's address as parsed.
    pub async fn wallet_token_balance(
        &self,
        principal: &super::SessionPrincipal,
        token: &str,
    ) -> Result<(Agent, Address, Amount)> {
        let agent = principal.agent.clone();
        let token = Address::parse(agent.chain.family(), token).map_err(|m| Error::invalid_field("token", m))?;
        let balance = self.ports.chain.token_balance(&agent.network, token, agent.address).await?;
        Ok((agent, token, balance))
    }

    /// The native balance of the caller's wallet on its network, with the network's native coin.
    pub async fn wallet_balance(
        &self,
        principal: &super::SessionPrincipal,
    ) -> Result<(Agent, Amount, crate::ports::NativeAsset)> {
        let agent = principal.agent.clone();
        let (balance, native) = futures_util::join!(
            self.ports.chain.native_balance(&agent.network, agent.address),
            self.native_asset(&agent.network)
        );
        Ok((agent, balance?, native?))
    }
}
