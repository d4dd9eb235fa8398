//! Solana chain adapter: JSON-RPC over HTTP with ureq, run on tokio's blocking pool, one client per configured
//! network (`[rpc] solana_<name> = "<url>"`). Types, instructions, messages and transactions come from the
//! `solana-*` component crates and the SPL interface crates; nothing of the wire format is written by hand.
//!
//! How the chain-neutral ports map onto Solana:
//!
//! * `prepare` builds a legacy message paid by the agent: a compute-budget price (the recent prioritization fees'
//!   median) and limit, then the request's instructions — System `transfer`, SPL Token `transfer_checked` (with an
//!   idempotent associated-token-account creation for a recipient without one; its rent is counted as fee),
//!   `approve_checked`, or a program call — over a recent blockhash at `confirmed`. The message bytes are what
//!   the key signs ([`PreparedTx::signing_payload`]); `simulateTransaction` runs it from the agent's account.
//! * Fees: Solana charges per signature and compute-unit price, not per gas, so a prepared transaction carries
//!   its whole fee in lamports as one "gas unit" (`gas_limit` 1, `max_fee_per_gas` = the fee): `getFeeForMessage`
//!   plus the rent of the accounts it creates.
//! * Expiry: the transaction's `nonce` is its blockhash's `lastValidBlockHeight` and [`ChainAdapter::account_nonce`]
//!   is the current block height, so the worker's "nonce provably taken" rule reads "the blockhash expired with the
//!   signature unseen" — and rebuilds. A broadcast refused with `BlockhashNotFound` answers
//!   [`Broadcast::NonceAlreadyUsed`].
//! * Status: `getSignatureStatuses` at the `confirmed` commitment; the token movements of an included transaction
//!   come from its pre/post token balances (`getTransaction`), so the core's "confirmed means it happened" check
//!   holds for SPL transfers and approvals too.
//!
//! [`SolanaChain`] implements both [`ChainAdapter`] and [`TxBroadcaster`].

mod rpc;
mod tx;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use waiaas_core::domain::{Address, TxKind};
use waiaas_core::ports::{
    Broadcast, ChainAdapter, MetricsRegistry, NativeAsset, Network, NoMetrics, PreparedTx, SignedTx, TokenMetadata,
    TxBroadcaster, TxOnChain,
};
use waiaas_core::{Amount, Error, ErrorCode, Result};

pub use rpc::{METHODS, RpcClient, RpcFailure};

/// Symbol of Solana's native coin.
pub const SOL_SYMBOL: &str = "SOL";
/// Decimals of SOL: one SOL is 10^9 lamports.
pub const SOL_DECIMALS: u8 = 9;

/// The Solana networks the operator configured, each reached through its own RPC client.
#[derive(Clone)]
pub struct SolanaChain {
    networks: Arc<BTreeMap<String, RpcClient>>,
}

impl SolanaChain {
    /// `networks`: (name, RPC URL) pairs from config.
    pub fn new(networks: impl IntoIterator<Item = (String, String)>) -> Self {
        Self::with_metrics(networks, Arc::new(NoMetrics))
    }

    /// As [`SolanaChain::new`], counting and timing every RPC call in `metrics` (`chain="solana"`).
    pub fn with_metrics(
        networks: impl IntoIterator<Item = (String, String)>,
        metrics: Arc<dyn MetricsRegistry>,
    ) -> Self {
        let networks = networks
            .into_iter()
            .map(|(name, url)| (name.clone(), rpc::client(name, url, Arc::clone(&metrics))))
            .collect();
        SolanaChain { networks: Arc::new(networks) }
    }

    fn client(&self, network: &str) -> Result<&RpcClient> {
        self.networks.get(network).ok_or_else(|| {
            Error::new(ErrorCode::NetworkNotConfigured, format!("network {network:?} is not configured"))
        })
    }
}

#[async_trait]
impl ChainAdapter for SolanaChain {
    fn networks(&self) -> Vec<Network> {
        self.networks.keys().map(Network::solana).collect()
    }

    async fn native_balance(&self, network: &str, address: Address) -> Result<Amount> {
        tx::native_balance(self.client(network)?, tx::solana(&address)?).await
    }

    async fn native_asset(&self, _network: &str) -> Result<NativeAsset> {
        Ok(NativeAsset { symbol: SOL_SYMBOL.to_owned(), decimals: SOL_DECIMALS })
    }

    async fn token_balance(&self, network: &str, token: Address, owner: Address) -> Result<Amount> {
        tx::token_balance(self.client(network)?, tx::solana(&token)?, tx::solana(&owner)?).await
    }

    async fn token_metadata(&self, network: &str, token: Address) -> Result<Option<TokenMetadata>> {
        Ok(tx::mint(self.client(network)?, &tx::solana(&token)?)
            .await?
            .map(|mint| TokenMetadata { decimals: mint.decimals, symbol: None }))
    }

    async fn prepare(&self, network: &str, from: Address, kind: &TxKind) -> Result<PreparedTx> {
        tx::prepare(self.client(network)?, network, tx::solana(&from)?, kind).await
    }

    fn attach_signature(&self, prepared: &PreparedTx, signature: &[u8]) -> Result<SignedTx> {
        tx::attach_signature(prepared, signature)
    }

    async fn status(&self, network: &str, hash: &str) -> Result<TxOnChain> {
        tx::status(self.client(network)?, hash).await
    }

    async fn account_nonce(&self, network: &str, _address: Address) -> Result<u64> {
        tx::block_height(self.client(network)?).await
    }
}

#[async_trait]
impl TxBroadcaster for SolanaChain {
    async fn broadcast(&self, network: &str, signed: &SignedTx) -> Result<Broadcast> {
        tx::broadcast(self.client(network)?, signed).await
    }
}
