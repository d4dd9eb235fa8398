//! Policies (master password): create, list, read, update, delete. Rules are validated by the core per type
//! (snake_case keys; unknown keys refused); [`rules`] describes them per type for the document.

pub mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;
use waiaas_core::domain::{Policy, PolicyType};
use waiaas_core::{AgentId, PolicyId};

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::wire::{PageLimit, Wire};

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct PolicyDto {
    pub id: Uuid,
    /// Null for a global policy.
    #[oai(nullable)]
    pub agent_id: Option<Uuid>,
    #[oai(rename = "type")]
    pub policy_type: Wire<PolicyType>,
    /// The rules in canonical form (snake_case keys).
    pub rules: Value,
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<Policy> for PolicyDto {
    fn from(policy: Policy) -> Self {
        PolicyDto {
            id: policy.id.as_uuid(),
            agent_id: policy.agent_id.map(|a| a.as_uuid()),
            policy_type: Wire(policy.rules.policy_type()),
            rules: policy.rules.to_json(),
            enabled: policy.enabled,
            created_at: policy.created_at.0,
            updated_at: policy.updated_at.0,
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct PolicyPage {
    pub data: Vec<PolicyDto>,
    /// Pass back as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePolicyRequest {
    /// The agent the policy applies to; null or absent for a global policy.
    #[oai(nullable)]
    pub agent_id: Option<Uuid>,
    #[oai(rename = "type")]
    pub policy_type: Wire<PolicyType>,
    /// Type-specific rules, e.g. SPENDING_LIMIT `{"instant_max": "...", "notify_max": "...", "delay_max": "...",
    /// "delay_seconds": 300}` (amounts in wei as decimal strings).
    pub rules: BTreeMap<String, Value>,
    /// Default true (also when null).
    #[oai(nullable)]
    pub enabled: Option<bool>,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePolicyRequest {
    /// Replaces the rules (the type cannot change); null or absent keeps them.
    #[oai(nullable)]
    pub rules: Option<BTreeMap<String, Value>>,
    /// Null or absent keeps the state.
    #[oai(nullable)]
    pub enabled: Option<bool>,
}

#[derive(ApiResponse)]
pub enum PolicyCreated {
    /// The policy was created.
    #[oai(status = 201)]
    Created(Json<PolicyDto>),
}

fn rules_value(rules: BTreeMap<String, Value>) -> Value {
    Value::Object(rules.into_iter().collect())
}

pub struct PoliciesApi;

#[OpenApi(tag = "ApiTags::Policies")]
impl PoliciesApi {
    /// Create a policy, global or for one agent.
    #[oai(path = "/v1/policies", method = "post", operation_id = "createPolicy")]
    async fn create(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        body: JsonBody<CreatePolicyRequest>,
    ) -> ApiResult<PolicyCreated> {
        let req = body.0;
        let policy = state
            .core
            .create_policy(
                &auth.0,
                req.agent_id.map(AgentId::from_uuid),
                req.policy_type.0.as_str(),
                &rules_value(req.rules),
                req.enabled,
            )
            .await?;
        Ok(PolicyCreated::Created(Json(policy.into())))
    }

    /// List policies, newest first.
    #[oai(path = "/v1/policies", method = "get", operation_id = "listPolicies")]
    async fn list(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// Only this agent's own policies.
        agent_id: Query<Option<Uuid>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<PolicyPage>> {
        let result = state
            .core
            .list_policies(agent_id.0.map(AgentId::from_uuid), cursor.0.as_deref(), limit.0.map(|l| l.0))
            .await?;
        let (data, next_cursor, has_more) = page(result, PolicyDto::from);
        Ok(Json(PolicyPage { data, next_cursor, has_more }))
    }

    /// Read one policy.
    #[oai(path = "/v1/policies/:id", method = "get", operation_id = "getPolicy")]
    async fn get(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<PolicyDto>> {
        Ok(Json(state.core.policy(PolicyId::from_uuid(id.0)).await?.into()))
    }

    /// Replace a policy's rules and/or enable or disable it.
    #[oai(path = "/v1/policies/:id", method = "put", operation_id = "updatePolicy")]
    async fn update(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
        body: JsonBody<UpdatePolicyRequest>,
    ) -> ApiResult<Json<PolicyDto>> {
        let req = body.0;
        let rules = req.rules.map(rules_value);
        let policy = state.core.update_policy(&auth.0, PolicyId::from_uuid(id.0), rules.as_ref(), req.enabled).await?;
        Ok(Json(policy.into()))
    }

    /// Delete a policy. Returns the policy as it was.
    #[oai(path = "/v1/policies/:id", method = "delete", operation_id = "deletePolicy")]
    async fn delete(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<PolicyDto>> {
        let id = PolicyId::from_uuid(id.0);
        let policy = state.core.policy(id).await?;
        state.core.delete_policy(&auth.0, id).await?;
        Ok(Json(policy.into()))
    }
}
