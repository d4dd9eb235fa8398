//! The calling agent's wallet (session token): its address, and its native balance read from the chain.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use uuid::Uuid;

use super::ApiTags;
use crate::ServerState;
use crate::auth::SessionAuth;
use crate::error::ApiResult;

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct WalletAddressDto {
    pub agent_id: Uuid,
    pub chain: String,
    pub network: String,
    /// EIP-55 checksummed address.
    pub address: String,
}

#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct WalletBalanceDto {
    pub agent_id: Uuid,
    pub network: String,
    pub address: String,
    /// In the smallest unit (wei), as a decimal string.
    pub balance: String,
    /// `ETH`.
    pub symbol: String,
    /// 18.
    pub decimals: u8,
}

pub struct WalletApi;

#[OpenApi(tag = "ApiTags::Wallet")]
impl WalletApi {
    /// The calling agent's address.
    #[oai(path = "/v1/wallet/address", method = "get", operation_id = "walletAddress")]
    async fn address(&self, auth: SessionAuth, state: Data<&Arc<ServerState>>) -> ApiResult<Json<WalletAddressDto>> {
        let agent = state.core.agent(auth.0.agent_id).await?;
        Ok(Json(WalletAddressDto {
            agent_id: agent.id.as_uuid(),
            chain: agent.chain.as_str().to_owned(),
            network: agent.network,
            address: agent.address.to_string(),
        }))
    }

    /// The calling agent's native balance on its network.
    #[oai(path = "/v1/wallet/balance", method = "get", operation_id = "walletBalance")]
    async fn balance(&self, auth: SessionAuth, state: Data<&Arc<ServerState>>) -> ApiResult<Json<WalletBalanceDto>> {
        let (agent, balance) = state.core.wallet_balance(&auth.0).await?;
        Ok(Json(WalletBalanceDto {
            agent_id: agent.id.as_uuid(),
            network: agent.network,
            address: agent.address.to_string(),
            balance: balance.to_string(),
            symbol: "ETH".to_owned(),
            decimals: 18,
        }))
    }
}
