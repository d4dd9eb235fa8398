//! A JSON-RPC 2.0 client over HTTP. Transport failures and node errors become `CHAIN_ERROR` (retryable); the
//! URL is kept out of client-facing messages (it may carry an API key) and only logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use waiaas_core::{Error, ErrorCode, Result};

/// One network's RPC endpoint.
#[derive(Clone)]
pub struct RpcClient {
    url: Arc<str>,
    agent: ureq::Agent,
    next_id: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct RpcResponse<T> {
    result: Option<T>,
    error: Option<RpcErrorBody>,
}

#[derive(Deserialize)]
struct RpcErrorBody {
    code: i64,
    message: String,
}

impl RpcClient {
    pub fn new(url: String) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .max_redirects(0)
            .build()
            .into();
        RpcClient { url: url.into(), agent, next_id: Arc::new(AtomicU64::new(1)) }
    }

    /// Calls `method` with `params` and decodes the `result`.
    pub async fn call<T: DeserializeOwned + Send + 'static>(&self, method: &'static str, params: serde_json::Value) -> Result<T> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.call_blocking(method, params))
            .await
            .map_err(|e| Error::internal_msg(format!("rpc task failed: {e}")))?
    }

    fn call_blocking<T: DeserializeOwned>(&self, method: &'static str, params: serde_json::Value) -> Result<T> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request = serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let unreachable = |e: &dyn std::fmt::Display| {
            tracing::warn!(method, url = %self.url, error = %e, "rpc request failed");
            Error::new(ErrorCode::ChainError, format!("the chain node did not answer {method}"))
        };
        let mut response = self.agent.post(&*self.url).send_json(&request).map_err(|e| unreachable(&e))?;
        let body: RpcResponse<T> = response.body_mut().read_json().map_err(|e| unreachable(&e))?;
        match (body.result, body.error) {
            (_, Some(error)) => Err(Error::new(ErrorCode::ChainError, format!("{method} failed: {}", error.message))
                .with_details(serde_json::json!({ "rpcCode": error.code }))),
            (Some(result), None) => Ok(result),
            (None, None) => Err(unreachable(&"response has neither result nor error")),
        }
    }
}
