//! The Solana adapter's JSON-RPC: the methods it calls, over the shared client ([`waiaas_http::jsonrpc`]) with
//! `chain="solana"` in the metrics.

use std::sync::Arc;

use waiaas_core::ports::MetricsRegistry;
pub use waiaas_http::jsonrpc::{RpcClient, RpcFailure};

/// Every JSON-RPC method this crate calls (the `method` label's values).
pub const METHODS: &[&str] = &[
    "getBalance",
    "getAccountInfo",
    "getTokenAccountBalance",
    "getLatestBlockhash",
    "getRecentPrioritizationFees",
    "getMinimumBalanceForRentExemption",
    "getFeeForMessage",
    "simulateTransaction",
    "sendTransaction",
    "getSignatureStatuses",
    "getTransaction",
    "getBlockHeight",
];

/// A client of the Solana node of `network` at `url`, counted in `metrics`.
pub fn client(network: String, url: String, metrics: Arc<dyn MetricsRegistry>) -> RpcClient {
    RpcClient::with_metrics("solana", METHODS, network, url, metrics)
}
