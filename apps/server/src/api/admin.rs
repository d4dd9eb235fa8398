//! Operator controls: the kill switch (read public; activate and recover with the master password) and the
//! cancellation of any unsigned transaction (master password). Reachable while the kill switch is tripped.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use waiaas_core::TxId;
use waiaas_core::domain::{KillSwitch, KillSwitchState};
use waiaas_core::ports::ActivationEffects;
use waiaas_core::services::KillSwitchView;

use super::ApiTags;
use super::transactions::TransactionDto;
use crate::ServerState;
use crate::auth::MasterAuth;
use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::wire::Wire;

/// What an activation did.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct ActivationEffectsDto {
    pub sessions_revoked: u64,
    pub agents_suspended: u64,
    pub transactions_cancelled: u64,
}

impl From<ActivationEffects> for ActivationEffectsDto {
    fn from(e: ActivationEffects) -> Self {
        ActivationEffectsDto {
            sessions_revoked: e.revoked_sessions.len() as u64,
            agents_suspended: e.suspended_agents.len() as u64,
            transactions_cancelled: u64::try_from(e.cancelled.len()).unwrap_or(u64::MAX),
        }
    }
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct KillSwitchDto {
    /// ACTIVE is normal operation; SUSPENDED and LOCKED refuse the agent API with SYSTEM_LOCKED.
    pub state: Wire<KillSwitchState>,
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// Unix seconds of the last change; absent if the switch never moved.
    #[oai(skip_serializing_if_is_none)]
    pub changed_at: Option<i64>,
    /// Present in the answer to an activation.
    #[oai(skip_serializing_if_is_none)]
    pub effects: Option<ActivationEffectsDto>,
}

impl From<KillSwitch> for KillSwitchDto {
    fn from(switch: KillSwitch) -> Self {
        KillSwitchDto {
            state: Wire(switch.state),
            reason: switch.reason,
            changed_at: switch.changed_at.map(|t| t.0),
            effects: None,
        }
    }
}

impl From<KillSwitchView> for KillSwitchDto {
    fn from(view: KillSwitchView) -> Self {
        KillSwitchDto { effects: view.effects.map(Into::into), ..view.switch.into() }
    }
}

#[derive(Object, Debug, Clone, PartialEq, Default)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct ActivateKillSwitchRequest {
    /// Recorded in the state and the audit log; null or absent for none.
    #[oai(nullable)]
    pub reason: Option<String>,
}

pub struct AdminApi;

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// The kill switch state. Public.
    #[oai(path = "/v1/admin/kill-switch", method = "get", operation_id = "getKillSwitch")]
    async fn kill_switch(&self, state: Data<&Arc<ServerState>>) -> ApiResult<Json<KillSwitchDto>> {
        Ok(Json(state.core.kill_switch().into()))
    }

    /// Trip the kill switch (ACTIVE → SUSPENDED, SUSPENDED → LOCKED): revokes every session, suspends every
    /// agent and cancels every unsigned transaction.
    #[oai(path = "/v1/admin/kill-switch", method = "post", operation_id = "activateKillSwitch")]
    async fn activate(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        body: JsonBody<ActivateKillSwitchRequest, false>,
    ) -> ApiResult<Json<KillSwitchDto>> {
        Ok(Json(state.core.activate_kill_switch(&auth.0, body.0.reason).await?.into()))
    }

    /// Return to ACTIVE. Sessions stay revoked and agents stay suspended until resumed.
    #[oai(path = "/v1/admin/recover", method = "post", operation_id = "recoverKillSwitch")]
    async fn recover(&self, auth: MasterAuth, state: Data<&Arc<ServerState>>) -> ApiResult<Json<KillSwitchDto>> {
        Ok(Json(state.core.recover_kill_switch(&auth.0).await?.into()))
    }

    /// Cancel any agent's transaction that is not signed yet: PENDING, QUEUED (waiting for its delay or an
    /// approval) or EXECUTING (being built, or waiting to retry). Audited as TX_CANCELLED with `details.by =
    /// "operator"`. A signature being made at that moment is dropped, never broadcast. A signed or final
    /// transaction is `INVALID_STATE_TRANSITION` (409); an unknown id `TX_NOT_FOUND`.
    #[oai(path = "/v1/admin/transactions/:id/cancel", method = "post", operation_id = "adminCancelTransaction")]
    async fn cancel_transaction(
        &self,
        auth: MasterAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TransactionDto>> {
        Ok(Json(state.core.admin_cancel_transaction(&auth.0, TxId::from_uuid(id.0)).await?.into()))
    }
}
