//! EVM chain adapter: JSON-RPC over HTTP with ureq, run on tokio's blocking pool so the async executor never
//! waits on a socket. Networks come from the `[rpc] evm_<name> = "<url>"` config keys; each network's chain id is
//! read from its node (once) and never assumed.
//!
//! [`EvmChain`] implements both the read/build port [`ChainAdapter`] and the send port [`TxBroadcaster`]; the
//! core hands the latter only to the execute stage.

mod rpc;
mod tx;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use alloy_primitives::U256;
use async_trait::async_trait;
use waiaas_core::domain::{Address, TxKind};
use waiaas_core::ports::{
    Broadcast, ChainAdapter, NativeAsset, Network, PreparedTx, SignedTx, TokenMetadata, TxBroadcaster, TxOnChain,
};
use waiaas_core::{Amount, Error, ErrorCode, Result};

pub use rpc::{RpcClient, RpcFailure};

/// The EVM networks the operator configured, each reached through its own RPC client.
#[derive(Clone)]
pub struct EvmChain {
    networks: Arc<BTreeMap<String, RpcClient>>,
    chain_ids: Arc<Mutex<HashMap<String, u64>>>,
    /// Native coin symbols set by the operator (`[rpc] native_<network>`), over the chain-id registry.
    native_overrides: Arc<BTreeMap<String, String>>,
}

/// Decimals of every EVM network's native coin (the protocol counts value in wei, 10^-18 of a coin).
pub const EVM_NATIVE_DECIMALS: u8 = 18;

/// The native coin symbol of an EVM chain by its id, from `alloy-chains`' registry (`ETH` when it names none).
pub fn native_symbol(chain_id: u64) -> &'static str {
    alloy_chains::Chain::from_id(chain_id).named().and_then(|named| named.native_currency_symbol()).unwrap_or("ETH")
}

impl EvmChain {
    /// `networks`: (name, RPC URL) pairs from config.
    pub fn new(networks: impl IntoIterator<Item = (String, String)>) -> Self {
        Self::with_metrics(networks, Arc::new(waiaas_core::ports::NoMetrics))
    }

    /// As [`EvmChain::new`], counting and timing every RPC call in `metrics`.
    pub fn with_metrics(
        networks: impl IntoIterator<Item = (String, String)>,
        metrics: Arc<dyn waiaas_core::ports::MetricsRegistry>,
    ) -> Self {
        let networks = networks
            .into_iter()
            .map(|(name, url)| (name.clone(), rpc::client(name, url, Arc::clone(&metrics))))
            .collect();
        EvmChain { networks: Arc::new(networks), chain_ids: Arc::default(), native_overrides: Arc::default() }
    }

    /// Sets the native coin symbol of some networks, over what the chain id says (e.g. a chain the registry does
    /// not know).
    pub fn with_native_symbols(mut self, symbols: impl IntoIterator<Item = (String, String)>) -> Self {
        self.native_overrides = Arc::new(symbols.into_iter().collect());
        self
    }

    fn client(&self, network: &str) -> Result<&RpcClient> {
        self.networks.get(network).ok_or_else(|| {
            Error::new(ErrorCode::NetworkNotConfigured, format!("network {network:?} is not configured"))
        })
    }

    /// The network's chain id, asked of the node the first time and remembered.
    async fn chain_id(&self, network: &str) -> Result<u64> {
        if let Some(id) = self.chain_ids.lock().ok().and_then(|ids| ids.get(network).copied()) {
            return Ok(id);
        }
        let id = tx::chain_id(self.client(network)?).await?;
        if let Ok(mut ids) = self.chain_ids.lock() {
            ids.insert(network.to_owned(), id);
        }
        Ok(id)
    }
}

#[async_trait]
impl ChainAdapter for EvmChain {
    fn networks(&self) -> Vec<Network> {
        self.networks.keys().map(Network::evm).collect()
    }

    async fn native_balance(&self, network: &str, address: Address) -> Result<Amount> {
        let address = tx::evm(&address)?;
        let balance: U256 =
            self.client(network)?.call("eth_getBalance", serde_json::json!([address.0, "latest"])).await?;
        Ok(Amount(balance))
    }

    async fn native_asset(&self, network: &str) -> Result<NativeAsset> {
        let symbol = match self.native_overrides.get(network) {
            Some(symbol) => symbol.clone(),
            None => native_symbol(self.chain_id(network).await?).to_owned(),
        };
        Ok(NativeAsset { symbol, decimals: EVM_NATIVE_DECIMALS })
    }

    async fn token_balance(&self, network: &str, token: Address, owner: Address) -> Result<Amount> {
        tx::token_balance(self.client(network)?, network, tx::evm(&token)?, tx::evm(&owner)?).await
    }

    async fn token_metadata(&self, network: &str, token: Address) -> Result<Option<TokenMetadata>> {
        tx::token_metadata(self.client(network)?, network, tx::evm(&token)?).await
    }

    async fn prepare(&self, network: &str, from: Address, kind: &TxKind) -> Result<PreparedTx> {
        let from = tx::evm(&from)?;
        let chain_id = self.chain_id(network).await?;
        tx::prepare(self.client(network)?, network, chain_id, from, kind).await
    }

    fn attach_signature(&self, prepared: &PreparedTx, signature: &[u8]) -> Result<SignedTx> {
        tx::attach_signature(prepared, signature)
    }

    async fn status(&self, network: &str, hash: &str) -> Result<TxOnChain> {
        tx::status(self.client(network)?, hash).await
    }

    async fn account_nonce(&self, network: &str, address: Address) -> Result<u64> {
        tx::account_nonce(self.client(network)?, tx::evm(&address)?).await
    }
}

#[async_trait]
impl TxBroadcaster for EvmChain {
    async fn broadcast(&self, network: &str, signed: &SignedTx) -> Result<Broadcast> {
        tx::broadcast(self.client(network)?, signed).await
    }
}

#[cfg(test)]
mod tests {
    use super::native_symbol;

    #[test]
    fn the_native_coin_follows_the_chain_id() {
        assert_eq!(native_symbol(1), "ETH");
        assert_eq!(native_symbol(137), "POL");
        assert_eq!(native_symbol(8453), "ETH", "Base");
        assert_eq!(native_symbol(56), "BNB");
        assert_eq!(native_symbol(31337), "ETH", "anvil");
        assert_eq!(native_symbol(987_654_321), "ETH", "unknown chains default to ETH");
    }
}
