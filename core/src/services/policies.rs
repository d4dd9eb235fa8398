//! Policy administration: create, read, update, delete, with typed rule validation.

use super::sessions::next_page;
use super::{Waiaas, cursor, page_limit};
use crate::domain::{Policy, PolicyRules, PolicyType};
use crate::error::{Error, ErrorCode, Result};
use crate::event::{Event, EventType, RequestContext};
use crate::ports::Page;
use crate::{AgentId, PolicyId};

fn parse_type(policy_type: &str) -> Result<PolicyType> {
    PolicyType::parse(policy_type).ok_or_else(|| {
        let known: Vec<&str> = PolicyType::ALL.iter().map(|t| t.as_str()).collect();
        Error::invalid_field("type", format!("unknown policy type; one of {}", known.join(", ")))
    })
}

fn policy_details(policy: &Policy) -> serde_json::Value {
    serde_json::json!({
        "policyId": policy.id.to_string(),
        "type": policy.rules.policy_type().as_str(),
        "rules": policy.rules.to_json(),
        "enabled": policy.enabled,
    })
}

impl Waiaas {
    /// Creates a policy, global (`agent_id` = None) or for one agent.
    pub async fn create_policy(
        &self,
        ctx: &RequestContext,
        agent_id: Option<AgentId>,
        policy_type: &str,
        rules: &serde_json::Value,
        enabled: Option<bool>,
    ) -> Result<Policy> {
        let rules = PolicyRules::parse(parse_type(policy_type)?, rules)?;
        if let Some(agent_id) = agent_id {
            self.agent(agent_id).await?;
        }
        let now = self.now();
        let policy = Policy {
            id: PolicyId::generate(self.ports.clock.as_ref(), self.ports.entropy.as_ref()),
            agent_id,
            rules,
            enabled: enabled.unwrap_or(true),
            created_at: now,
            updated_at: now,
        };
        let mut event = Event::new(EventType::PolicyCreated, ctx, now).details(policy_details(&policy));
        event.agent_id = agent_id;
        self.ports.policies.insert(&policy, &event).await?;
        self.publish(&event);
        Ok(policy)
    }

    /// One policy by id (`POLICY_NOT_FOUND` when there is none).
    pub async fn policy(&self, id: PolicyId) -> Result<Policy> {
        self.ports
            .policies
            .get(id)
            .await?
            .ok_or_else(|| Error::new(ErrorCode::PolicyNotFound, format!("policy {id} not found")))
    }

    /// A page of policies, optionally only one agent's, oldest first.
    pub async fn list_policies(
        &self,
        agent_id: Option<AgentId>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<Policy>> {
        let limit = page_limit(limit)?;
        let before = cursor.map(|c| cursor::decode_parsed::<PolicyId>("policies", c)).transpose()?;
        let mut items = self.ports.policies.list(agent_id, before, limit + 1).await?;
        let next_cursor = next_page(&mut items, limit, |p| cursor::encode("policies", &p.id.to_string()));
        Ok(Page { items, next_cursor })
    }

    /// Replaces the rules and/or the enabled flag; the type cannot change.
    pub async fn update_policy(
        &self,
        ctx: &RequestContext,
        id: PolicyId,
        rules: Option<&serde_json::Value>,
        enabled: Option<bool>,
    ) -> Result<Policy> {
        let mut policy = self.policy(id).await?;
        if let Some(rules) = rules {
            policy.rules = PolicyRules::parse(policy.rules.policy_type(), rules)?;
        }
        if let Some(enabled) = enabled {
            policy.enabled = enabled;
        }
        let now = self.now();
        policy.updated_at = now;
        let mut event = Event::new(EventType::PolicyUpdated, ctx, now).details(policy_details(&policy));
        event.agent_id = policy.agent_id;
        self.ports.policies.update(&policy, &event).await?;
        self.publish(&event);
        Ok(policy)
    }

    /// Deletes a policy (audited `POLICY_DELETED`).
    pub async fn delete_policy(&self, ctx: &RequestContext, id: PolicyId) -> Result<()> {
        let policy = self.policy(id).await?;
        let mut event = Event::new(EventType::PolicyDeleted, ctx, self.now()).details(policy_details(&policy));
        event.agent_id = policy.agent_id;
        self.ports.policies.delete(id, &event).await?;
        self.publish(&event);
        Ok(())
    }
}
