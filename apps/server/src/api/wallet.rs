//! The calling agent's wallet (session token): its address, and its native or ERC-20 balance read from the
//! chain.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Union};
use uuid::Uuid;

use super::ApiTags;
use crate::ServerState;
use crate::auth::SessionAuth;
use crate::error::ApiResult;
use crate::wire::AnyAddress;

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

/// An ERC-20 balance of the calling agent (`balanceOf` on the token contract).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename_all = "camelCase")]
pub struct TokenBalanceDto {
    pub agent_id: Uuid,
    pub network: String,
    pub address: String,
    /// The token contract, EIP-55 checksummed.
    pub token: String,
    /// In the token's smallest unit, as a decimal string (the token's decimals and symbol are the caller's to
    /// know; the daemon does not read token metadata).
    pub balance: String,
}

/// The native balance (`WalletBalanceDto`, no `token` parameter) or an ERC-20 balance (`TokenBalanceDto`).
#[derive(Union, Debug, Clone, PartialEq)]
#[oai(one_of)]
pub enum BalanceDto {
    Native(WalletBalanceDto),
    Token(TokenBalanceDto),
}

pub struct WalletApi;

#[OpenApi(tag = "ApiTags::Wallet")]
impl WalletApi {
    /// The calling agent's address.
    #[oai(path = "/v1/wallet/address", method = "get", operation_id = "walletAddress")]
    async fn address(&self, auth: SessionAuth) -> ApiResult<Json<WalletAddressDto>> {
        let agent = auth.0.agent;
        Ok(Json(WalletAddressDto {
            agent_id: agent.id.as_uuid(),
            chain: agent.chain.as_str().to_owned(),
            network: agent.network,
            address: agent.address.to_string(),
        }))
    }

    /// The calling agent's balance on its network: the native coin, or with `token` that ERC-20 token.
    #[oai(path = "/v1/wallet/balance", method = "get", operation_id = "walletBalance")]
    async fn balance(
        &self,
        auth: SessionAuth,
        state: Data<&Arc<ServerState>>,
        /// An ERC-20 contract address (`0x` + 40 hex digits; mixed case must be a valid EIP-55 checksum), or an SPL
        /// mint (base58) for a Solana agent: answer that token's balance instead.
        token: Query<Option<AnyAddress>>,
    ) -> ApiResult<Json<BalanceDto>> {
        let Some(AnyAddress(token)) = token.0 else {
            let (agent, balance, native) = state.core.wallet_balance(&auth.0).await?;
            return Ok(Json(BalanceDto::Native(WalletBalanceDto {
                agent_id: agent.id.as_uuid(),
                network: agent.network,
                address: agent.address.to_string(),
                balance: balance.to_string(),
                symbol: native.symbol,
                decimals: native.decimals,
            })));
        };
        let (agent, token, balance) = state.core.wallet_token_balance(&auth.0, &token).await?;
        Ok(Json(BalanceDto::Token(TokenBalanceDto {
            agent_id: agent.id.as_uuid(),
            network: agent.network,
            address: agent.address.to_string(),
            token: token.to_string(),
            balance: balance.to_string(),
        })))
    }
}
