//! Agent lifecycle (master password): create, list, read, terminate, suspend, resume, set the owner.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;
use waiaas_core::AgentId;
use waiaas_core::domain::{Address, Agent, AgentStatus, Chain};

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::wire::{AnyAddress, Nullable, PageLimit, Wire};

/// One agent's wallet.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AgentDto {
    pub id: Uuid,
    pub name: String,
    /// `ethereum`.
    pub chain: String,
    /// A network name from the `[rpc]` config section.
    pub network: String,
    /// EIP-55 checksummed address.
    pub address: String,
    pub status: Wire<AgentStatus>,
    /// The owner who approves APPROVAL-tier transfers; absent when none is set.
    #[oai(skip_serializing_if_is_none)]
    pub owner_address: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<Agent> for AgentDto {
    fn from(agent: Agent) -> Self {
        AgentDto {
            id: agent.id.as_uuid(),
            name: agent.name,
            chain: agent.chain.as_str().to_owned(),
            network: agent.network,
            address: agent.address.to_string(),
            status: Wire(agent.status),
            owner_address: agent.owner_address.map(|a| a.to_string()),
            created_at: agent.created_at.0,
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AgentPage {
    pub data: Vec<AgentDto>,
    /// Pass back as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// 1 to 100 characters, not all whitespace (leading and trailing whitespace is trimmed).
    #[oai(validator(min_length = 1, max_length = 100, pattern = r"\S"))]
    pub name: String,
    pub chain: Wire<Chain>,
    /// A configured network name (e.g. `anvil`, `sepolia`).
    pub network: String,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetOwnerRequest {
    /// The owner's address, of the agent's chain family (whose key signs the owner's decisions), or null to
    /// clear: on EVM `0x` + 40 hex digits (mixed case must be a valid EIP-55 checksum), on Solana base58 of 32
    /// bytes.
    #[oai(nullable)]
    pub owner_address: Nullable<AnyAddress>,
}

#[derive(ApiResponse)]
pub enum AgentCreated {
    /// The agent was created with a fresh key.
    #[oai(status = 201)]
    Created(Json<AgentDto>),
}

pub struct AgentsApi;

#[OpenApi(tag = "ApiTags::Agents")]
impl AgentsApi {
    /// Create an agent (generates its key).
    #[oai(path = "/v1/agents", method = "post", operation_id = "createAgent")]
    async fn create(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        body: JsonBody<CreateAgentRequest>,
    ) -> ApiResult<AgentCreated> {
        let req = body.0;
        let agent = state.core.create_agent(&auth.0, &req.name, req.chain.0.as_str(), &req.network).await?;
        Ok(AgentCreated::Created(Json(agent.into())))
    }

    /// List agents, newest first.
    #[oai(path = "/v1/agents", method = "get", operation_id = "listAgents")]
    async fn list(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<AgentPage>> {
        let result = state.core.list_agents(cursor.0.as_deref(), limit.0.map(|l| l.0)).await?;
        let (data, next_cursor, has_more) = page(result, AgentDto::from);
        Ok(Json(AgentPage { data, next_cursor, has_more }))
    }

    /// Read one agent.
    #[oai(path = "/v1/agents/:id", method = "get", operation_id = "getAgent")]
    async fn get(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<AgentDto>> {
        Ok(Json(state.core.agent(AgentId::from_uuid(id.0)).await?.into()))
    }

    /// Terminate an agent: its sessions are revoked; its key and audit rows are kept. Returns the agent.
    #[oai(path = "/v1/agents/:id", method = "delete", operation_id = "terminateAgent")]
    async fn terminate(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<AgentDto>> {
        Ok(Json(state.core.terminate_agent(&auth.0, AgentId::from_uuid(id.0)).await?.into()))
    }

    /// Suspend an ACTIVE agent.
    #[oai(path = "/v1/agents/:id/suspend", method = "post", operation_id = "suspendAgent")]
    async fn suspend(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<AgentDto>> {
        Ok(Json(state.core.suspend_agent(&auth.0, AgentId::from_uuid(id.0)).await?.into()))
    }

    /// Resume a SUSPENDED agent.
    #[oai(path = "/v1/agents/:id/resume", method = "post", operation_id = "resumeAgent")]
    async fn resume(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<AgentDto>> {
        Ok(Json(state.core.resume_agent(&auth.0, AgentId::from_uuid(id.0)).await?.into()))
    }

    /// Set (or clear, with null) the agent's owner.
    #[oai(path = "/v1/agents/:id/owner", method = "put", operation_id = "setAgentOwner")]
    async fn set_owner(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
        body: JsonBody<SetOwnerRequest>,
    ) -> ApiResult<Json<AgentDto>> {
        let owner = match body.0.owner_address.0 {
            None => None,
            Some(AnyAddress(text)) => {
                Some(Address::parse_any(&text).map_err(|message| ApiError::invalid_field("ownerAddress", message))?)
            }
        };
        Ok(Json(state.core.set_owner(&auth.0, AgentId::from_uuid(id.0), owner).await?.into()))
    }
}
