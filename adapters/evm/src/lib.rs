//! EVM chain adapter: JSON-RPC over HTTP with ureq, run on tokio's blocking pool so the async executor never
//! waits on a socket. Networks come from the `[rpc] evm_<name> = "<url>"` config keys; the chain id is read
//! from the node, never assumed.

mod rpc;

use std::collections::BTreeMap;
use std::sync::Arc;

use alloy_primitives::U256;
use async_trait::async_trait;
use waiaas_core::domain::EvmAddress;
use waiaas_core::ports::ChainAdapter;
use waiaas_core::{Amount, Error, ErrorCode, Result};

pub use rpc::RpcClient;

/// The EVM networks the operator configured, each reached through its own RPC client.
#[derive(Clone)]
pub struct EvmChain {
    networks: Arc<BTreeMap<String, RpcClient>>,
}

impl EvmChain {
    /// `networks`: (name, RPC URL) pairs from config.
    pub fn new(networks: impl IntoIterator<Item = (String, String)>) -> Self {
        let networks = networks.into_iter().map(|(name, url)| (name, RpcClient::new(url))).collect();
        EvmChain { networks: Arc::new(networks) }
    }

    pub fn client(&self, network: &str) -> Result<&RpcClient> {
        self.networks.get(network).ok_or_else(|| {
            Error::new(ErrorCode::NetworkNotConfigured, format!("network {network:?} is not configured"))
        })
    }
}

#[async_trait]
impl ChainAdapter for EvmChain {
    fn networks(&self) -> Vec<String> {
        self.networks.keys().cloned().collect()
    }

    async fn native_balance(&self, network: &str, address: EvmAddress) -> Result<Amount> {
        let client = self.client(network)?.clone();
        let params = serde_json::json!([address.0, "latest"]);
        let balance: U256 = client.call("eth_getBalance", params).await?;
        Ok(Amount(balance))
    }
}
