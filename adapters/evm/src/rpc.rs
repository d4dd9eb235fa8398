//! A JSON-RPC 2.0 client over HTTP. Transport failures become `CHAIN_ERROR` (retryable); a node's error answer is
//! returned as an [`RpcFailure`] to callers that need it (reverts carry their data there). The URL is kept out of
//! client-facing messages (it may carry an API key) and only logged.
//!
//! Every call is counted in `waiaas_rpc_requests_total{chain,method,status}` (status `ok`, or `error` for a
//! transport failure or a node error answer) and timed in `waiaas_rpc_duration_seconds{method}`; the method is a
//! `&'static str` of this crate, so the label set is bounded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use waiaas_core::metrics as m;
use waiaas_core::ports::{MetricsRegistry, NoMetrics};
use waiaas_core::{Error, ErrorCode, Result};

/// One network's RPC endpoint.
#[derive(Clone)]
pub struct RpcClient {
    url: Arc<str>,
    agent: ureq::Agent,
    next_id: Arc<AtomicU64>,
    metrics: Arc<dyn MetricsRegistry>,
}

/// An error object answered by the node.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct RpcFailure {
    pub code: i64,
    pub message: String,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RpcResponse {
    /// `null` is a valid result (e.g. the receipt of a pending transaction).
    #[serde(default)]
    result: serde_json::Value,
    error: Option<RpcFailure>,
}

impl RpcClient {
    pub fn new(url: String) -> Self {
        Self::with_metrics(url, Arc::new(NoMetrics))
    }

    /// A client that counts and times its calls in `metrics`.
    pub fn with_metrics(url: String, metrics: Arc<dyn MetricsRegistry>) -> Self {
        let agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).max_redirects(0).build().into();
        RpcClient { url: url.into(), agent, next_id: Arc::new(AtomicU64::new(1)), metrics }
    }

    /// Calls `method`; a node error becomes `CHAIN_ERROR` with the node's message.
    pub async fn call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<T> {
        self.try_call(method, params).await?.map_err(|failure| {
            Error::new(ErrorCode::ChainError, format!("{method} failed: {}", failure.message))
                .with_details(serde_json::json!({ "rpcCode": failure.code }))
        })
    }

    /// Calls `method`; the outer error is a transport failure, the inner one the node's error answer.
    pub async fn try_call<T: DeserializeOwned + Send + 'static>(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<Result<T, RpcFailure>> {
        let this = self.clone();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || this.call_blocking(method, params))
            .await
            .map_err(|e| Error::internal_msg(format!("rpc task failed: {e}")))
            .and_then(|r| r);
        let status = if matches!(outcome, Ok(Ok(_))) { "ok" } else { "error" };
        self.metrics.increment_counter(
            m::RPC_REQUESTS_TOTAL,
            &[("chain", "ethereum"), ("method", method), ("status", status)],
            1,
        );
        self.metrics.observe_histogram(m::RPC_DURATION_SECONDS, &[("method", method)], started.elapsed().as_secs_f64());
        outcome
    }

    fn call_blocking<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<Result<T, RpcFailure>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let unreachable = |e: &dyn std::fmt::Display| {
            tracing::warn!(method, url = %self.url, error = %e, "rpc request failed");
            Error::new(ErrorCode::ChainError, format!("the chain node did not answer {method}"))
        };
        let mut response = self.agent.post(&*self.url).send_json(&request).map_err(|e| unreachable(&e))?;
        let body: RpcResponse = response.body_mut().read_json().map_err(|e| unreachable(&e))?;
        match body.error {
            Some(failure) => Ok(Err(failure)),
            None => serde_json::from_value(body.result).map(Ok).map_err(|e| unreachable(&e)),
        }
    }
}
