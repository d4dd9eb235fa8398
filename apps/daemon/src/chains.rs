//! The composite chain adapter: one [`ChainAdapter`] and [`TxBroadcaster`] over every configured family, each
//! network routed to its family's adapter (`[rpc] evm_<name>` to the EVM adapter, `solana_<name>` to the Solana
//! one). The core sees one chain port; which family a network is comes from the adapters' own `networks()`.

use async_trait::async_trait;
use waiaas_core::domain::{Address, ChainFamily, TxKind};
use waiaas_core::ports::{
    Broadcast, ChainAdapter, NativeAsset, Network, PreparedTx, SignedTx, TokenMetadata, TxBroadcaster, TxOnChain,
};
use waiaas_core::{Amount, Error, ErrorCode, Result};
use waiaas_evm::EvmChain;
use waiaas_solana::SolanaChain;

/// Every configured network, routed by family.
#[derive(Clone)]
pub struct Chains {
    evm: EvmChain,
    solana: SolanaChain,
}

impl Chains {
    /// The EVM and Solana adapters; network names are unique across them (the config refuses a name in both).
    pub fn new(evm: EvmChain, solana: SolanaChain) -> Self {
        Chains { evm, solana }
    }

    fn route(&self, network: &str) -> Result<&dyn Routed> {
        match self.networks().into_iter().find(|n| n.name == network).map(|n| n.family) {
            Some(ChainFamily::Evm) => Ok(&self.evm),
            Some(ChainFamily::Solana) => Ok(&self.solana),
            None => Err(Error::new(ErrorCode::NetworkNotConfigured, format!("network {network:?} is not configured"))),
        }
    }
}

/// A family's adapter: both ports.
trait Routed: ChainAdapter + TxBroadcaster {}
impl<T: ChainAdapter + TxBroadcaster> Routed for T {}

#[async_trait]
impl ChainAdapter for Chains {
    fn networks(&self) -> Vec<Network> {
        let mut networks = self.evm.networks();
        networks.extend(self.solana.networks());
        networks
    }

    async fn native_balance(&self, network: &str, address: Address) -> Result<Amount> {
        self.route(network)?.native_balance(network, address).await
    }

    async fn native_asset(&self, network: &str) -> Result<NativeAsset> {
        self.route(network)?.native_asset(network).await
    }

    async fn token_balance(&self, network: &str, token: Address, owner: Address) -> Result<Amount> {
        self.route(network)?.token_balance(network, token, owner).await
    }

    async fn token_metadata(&self, network: &str, token: Address) -> Result<Option<TokenMetadata>> {
        self.route(network)?.token_metadata(network, token).await
    }

    async fn prepare(&self, network: &str, from: Address, kind: &TxKind) -> Result<PreparedTx> {
        self.route(network)?.prepare(network, from, kind).await
    }

    fn attach_signature(&self, prepared: &PreparedTx, signature: &[u8]) -> Result<SignedTx> {
        self.route(&prepared.network)?.attach_signature(prepared, signature)
    }

    async fn status(&self, network: &str, hash: &str) -> Result<TxOnChain> {
        self.route(network)?.status(network, hash).await
    }

    async fn account_nonce(&self, network: &str, address: Address) -> Result<u64> {
        self.route(network)?.account_nonce(network, address).await
    }
}

#[async_trait]
impl TxBroadcaster for Chains {
    async fn broadcast(&self, network: &str, signed: &SignedTx) -> Result<Broadcast> {
        self.route(network)?.broadcast(network, signed).await
    }
}
