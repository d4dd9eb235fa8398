//! The EVM adapter's JSON-RPC: the methods it calls, over the shared client ([`waiaas_http::jsonrpc`]) with
//! `chain="ethereum"` in the metrics.

use std::sync::Arc;

use waiaas_core::ports::MetricsRegistry;
pub use waiaas_http::jsonrpc::{RpcClient, RpcFailure};

/// Every JSON-RPC method this crate calls (the `method` label's values).
pub const METHODS: &[&str] = &[
    "eth_chainId",
    "eth_getBalance",
    "eth_call",
    "eth_getTransactionCount",
    "eth_getBlockByNumber",
    "eth_maxPriorityFeePerGas",
    "eth_estimateGas",
    "eth_sendRawTransaction",
    "eth_getTransactionReceipt",
    "eth_getTransactionByHash",
    "eth_simulateV1",
];

/// A client of the EVM node of `network` at `url`, counted in `metrics`.
pub fn client(network: String, url: String, metrics: Arc<dyn MetricsRegistry>) -> RpcClient {
    RpcClient::with_metrics("ethereum", METHODS, network, url, metrics)
}
