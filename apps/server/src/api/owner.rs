//! Owner decisions on APPROVAL-tier transactions: a public single-use nonce, and approve / reject with the
//! owner's signature (EIP-191 for an EVM owner, ed25519 for a Solana one) (the `ownerAuth` headers, see [`crate::auth`]).
//!
//! The owner signs exactly `WAIaaS: <approve|reject> transaction <id>\nNonce: <nonce>` (the core's
//! `approval_message`), so a signature is good for one transaction, one decision and one use. The core verifies
//! it against the transaction id of the path and consumes the nonce before the decision is applied; any flaw in
//! the signature, message or nonce is 401 `UNAUTHORIZED`, a signer who is not the agent's owner 403 `FORBIDDEN`.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;
use waiaas_core::TxId;

use super::ApiTags;
use super::transactions::TransactionDto;
use crate::ServerState;
use crate::auth::OwnerAuth;
use crate::error::ApiResult;

/// A single-use nonce for an owner's signed decision.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct NonceDto {
    /// 80 hex digits (random part, expiry, authentication tag); put it in the signed message as
    /// `Nonce: <nonce>`.
    pub nonce: String,
    /// Unix seconds; the nonce is refused after this time.
    pub expires_at: i64,
}

pub struct OwnerApi;

async fn decide(state: &ServerState, owner: OwnerAuth, id: Uuid, approve: bool) -> ApiResult<TransactionDto> {
    let tx_id = TxId::from_uuid(id);
    let signer =
        state.core.verify_owner_signature(&owner.address, &owner.message, &owner.signature, tx_id, approve).await?;
    Ok(state.core.approve_transaction(&signer, owner.ip, tx_id, approve).await?.into())
}

#[OpenApi(tag = "ApiTags::Owner")]
impl OwnerApi {
    /// Issue a nonce for an owner's signed approval or rejection (valid for a few minutes, single use).
    #[oai(path = "/v1/nonce", method = "get", operation_id = "getNonce")]
    async fn nonce(&self, state: Data<&Arc<ServerState>>) -> Json<NonceDto> {
        let (nonce, expires_at) = state.core.issue_nonce();
        Json(NonceDto { nonce, expires_at: expires_at.0 })
    }

    /// Approve a transaction waiting for the owner (APPROVAL tier); it executes on the worker's next round.
    /// Sign `WAIaaS: approve transaction <id>\nNonce: <nonce>`.
    #[oai(path = "/v1/transactions/:id/approve", method = "post", operation_id = "approveTransaction")]
    async fn approve(
        &self,
        owner: OwnerAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TransactionDto>> {
        Ok(Json(decide(&state, owner, id.0, true).await?))
    }

    /// Reject a transaction waiting for the owner (APPROVAL tier); it is cancelled.
    /// Sign `WAIaaS: reject transaction <id>\nNonce: <nonce>`.
    #[oai(path = "/v1/transactions/:id/reject", method = "post", operation_id = "rejectTransaction")]
    async fn reject(
        &self,
        owner: OwnerAuth,
        state: Data<&Arc<ServerState>>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<TransactionDto>> {
        Ok(Json(decide(&state, owner, id.0, false).await?))
    }
}
