//! OPS-06 operator endpoints (master password, loopback only like every admin route): the anomaly findings of an
//! agent or of all agents, newest first with a keyset cursor, the agent's tier floor in force, and clearing it
//! (audited `ANOMALY_CLEARED`).

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use waiaas_core::AgentId;
use waiaas_core::anomaly::{FindingRecord, TierFloor};
use waiaas_core::domain::Tier;

use super::{ApiTags, page};
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::error::ApiResult;
use crate::wire::{PageLimit, StrictInt, Wire};

/// One finding of an anomaly rule.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AnomalyDto {
    /// Finding id (increasing).
    pub id: i64,
    pub agent_id: Uuid,
    /// The final transaction whose observation set it off.
    #[oai(nullable)]
    pub tx_id: Option<Uuid>,
    /// The rule (`A-01` spend spike, `A-02` frequency spike, `A-03` unusual hour, `A-04` new recipients, `A-05`
    /// balance drop, or a host's own rule).
    pub rule: String,
    /// The value the rule observed.
    pub observed: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The window the value is measured over, in seconds.
    pub window_seconds: u64,
    /// What the values count (`USD`, `native@<network>` base units, `transactions`, a share).
    pub unit: String,
    /// Found in shadow mode: reported, no tier raised.
    pub shadow: bool,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<FindingRecord> for AnomalyDto {
    fn from(record: FindingRecord) -> Self {
        AnomalyDto {
            id: record.id,
            agent_id: record.agent_id.as_uuid(),
            tx_id: record.tx_id.map(|id| id.as_uuid()),
            rule: record.finding.rule,
            observed: record.finding.observed,
            threshold: record.finding.threshold,
            window_seconds: record.finding.window_seconds,
            unit: record.finding.unit,
            shadow: record.shadow,
            created_at: record.created_at.0,
        }
    }
}

/// A minimum tier imposed on an agent after a finding.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct TierFloorDto {
    pub agent_id: Uuid,
    /// No transaction of the agent is admitted below this tier.
    pub tier: Wire<Tier>,
    /// Unix seconds when it stops applying.
    pub expires_at: i64,
    /// The rule whose finding set or last extended it.
    pub rule: String,
    /// Unix seconds when it was set or last extended.
    pub updated_at: i64,
}

impl From<TierFloor> for TierFloorDto {
    fn from(floor: TierFloor) -> Self {
        TierFloorDto {
            agent_id: floor.agent_id.as_uuid(),
            tier: Wire(floor.tier),
            expires_at: floor.expires_at.0,
            rule: floor.rule,
            updated_at: floor.updated_at.0,
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AnomalyPage {
    pub data: Vec<AnomalyDto>,
    /// Pass back as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// One agent's findings and the tier floor in force.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct AgentAnomalyPage {
    pub data: Vec<AnomalyDto>,
    /// Pass back as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
    /// The agent's tier floor in force now; null when none.
    #[oai(nullable)]
    pub tier_floor: Option<TierFloorDto>,
}

pub struct AnomalyApi;

#[OpenApi(tag = "ApiTags::Anomalies")]
impl AnomalyApi {
    /// An agent's anomaly findings, newest first, with its tier floor in force.
    #[oai(path = "/v1/agents/:id/anomalies", method = "get", operation_id = "listAgentAnomalies")]
    async fn agent_anomalies(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<AgentAnomalyPage>> {
        let agent = AgentId::from_uuid(id.0);
        let result = state.core.anomalies(Some(agent), None, cursor.0.as_deref(), limit.0.map(|v| v.0)).await?;
        let tier_floor = state.core.tier_floor(agent).await?.map(TierFloorDto::from);
        let (data, next_cursor, has_more) = page(result, AnomalyDto::from);
        Ok(Json(AgentAnomalyPage { data, next_cursor, has_more, tier_floor }))
    }

    /// Every agent's anomaly findings, newest first.
    #[oai(path = "/v1/anomalies", method = "get", operation_id = "listAnomalies")]
    async fn anomalies(
        &self,
        _auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        /// Only findings made at or after this time, Unix seconds.
        since: Query<Option<StrictInt<i64>>>,
        /// `nextCursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Page size, 1 to 200 (default 50).
        limit: Query<Option<PageLimit>>,
    ) -> ApiResult<Json<AnomalyPage>> {
        let result =
            state.core.anomalies(None, since.0.map(|v| v.0), cursor.0.as_deref(), limit.0.map(|v| v.0)).await?;
        let (data, next_cursor, has_more) = page(result, AnomalyDto::from);
        Ok(Json(AnomalyPage { data, next_cursor, has_more }))
    }

    /// Clear the agent's tier floor (audited `ANOMALY_CLEARED`); 409 `INVALID_STATE_TRANSITION` when none is in
    /// force. Returns the floor it removed.
    #[oai(path = "/v1/agents/:id/tier-floor", method = "delete", operation_id = "clearTierFloor")]
    async fn clear(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TierFloorDto>> {
        Ok(Json(state.core.clear_tier_floor(&auth.0, AgentId::from_uuid(id.0)).await?.into()))
    }
}
