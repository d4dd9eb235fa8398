//! A JSON-RPC 2.0 client over HTTP, shared by the chain adapters (each names its chain and the methods it calls).
//! Transport failures become `CHAIN_ERROR` (retryable); a node's error answer is returned as an [`RpcFailure`] to
//! callers that need it (reverts carry their data there).
//!
//! The URL may carry an API key (in its path, query or user info), so it is never logged nor put in an error: a
//! failure is logged with the network's name and the endpoint's `scheme://host[:port]` only, and the transport
//! error's text is scrubbed of every secret part of the URL in case the HTTP library echoes it.
//!
//! Every call is counted in `waiaas_rpc_requests_total{chain,method,status}` (status `ok`, or `error` for a
//! transport failure or a node error answer) and timed in `waiaas_rpc_duration_seconds{method}`; the method is a
//! `&'static str` of the adapter's method list, so the label set is bounded; a client built with a registry
//! exports every method's series at zero at once, so they are on the first scrape.

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
    /// The `chain` label of the metrics.
    chain: &'static str,
    /// Every method the adapter calls (the `method` label's values).
    methods: &'static [&'static str],
    url: Arc<str>,
    /// The configured network name, for logs.
    network: Arc<str>,
    /// What of the URL may be logged: `scheme://host[:port]`.
    endpoint: Arc<str>,
    /// The parts of the URL that must never be logged (see [`secret_parts`]).
    secrets: Arc<[String]>,
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
    /// A client of a `chain` node calling `methods`, for `network` (its name, logged) at `url` (never logged).
    pub fn new(chain: &'static str, methods: &'static [&'static str], network: String, url: String) -> Self {
        Self::with_metrics(chain, methods, network, url, Arc::new(NoMetrics))
    }

    /// A client that counts and times its calls in `metrics` (every method's series exported at zero).
    pub fn with_metrics(
        chain: &'static str,
        methods: &'static [&'static str],
        network: String,
        url: String,
        metrics: Arc<dyn MetricsRegistry>,
    ) -> Self {
        for method in methods {
            for status in m::RPC_STATUSES {
                let labels = [("chain", chain), ("method", *method), ("status", *status)];
                metrics.register(m::RPC_REQUESTS_TOTAL, m::MetricKind::Counter, &labels);
            }
            metrics.register(m::RPC_DURATION_SECONDS, m::MetricKind::Histogram, &[("method", method)]);
        }
        let agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).max_redirects(0).build().into();
        RpcClient {
            chain,
            methods,
            endpoint: endpoint_of(&url).into(),
            secrets: secret_parts(&url).into(),
            network: network.into(),
            url: url.into(),
            agent,
            next_id: Arc::new(AtomicU64::new(1)),
            metrics,
        }
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
        debug_assert!(self.methods.contains(&method), "{method} is not one of the adapter's methods");
        let this = self.clone();
        let started = Instant::now();
        let outcome = tokio::task::spawn_blocking(move || this.call_blocking(method, params))
            .await
            .map_err(|e| Error::internal_msg(format!("rpc task failed: {e}")))
            .and_then(|r| r);
        let status = if matches!(outcome, Ok(Ok(_))) { "ok" } else { "error" };
        self.metrics.increment_counter(
            m::RPC_REQUESTS_TOTAL,
            &[("chain", self.chain), ("method", method), ("status", status)],
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
            let error = scrub(&e.to_string(), &self.secrets);
            tracing::warn!(network = %self.network, endpoint = %self.endpoint, method, error, "rpc request failed");
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

/// `scheme://host[:port]` of `url`: no user info, path, query or fragment.
fn endpoint_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("?", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

/// The parts of `url` that may hold a credential, longest first: the whole URL, everything after the host (path,
/// query, fragment), the path, the query and the user info. Parts shorter than 4 characters (`/`, `/v1`) are
/// kept: they cannot hide a key, and scrubbing them would garble the rest of a message.
fn secret_parts(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let tail = &rest[authority.len()..];
    let path = tail.split(['?', '#']).next().unwrap_or("");
    let query = tail.split_once('?').map_or("", |(_, q)| q);
    let userinfo = authority.rsplit_once('@').map_or("", |(info, _)| info);
    let mut parts: Vec<String> =
        [url, tail, path, query, userinfo].into_iter().filter(|p| p.len() >= 4).map(str::to_owned).collect();
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parts.dedup();
    parts
}

/// `text` with every secret part replaced by `<redacted>`.
fn scrub(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_owned(), |text, secret| text.replace(secret.as_str(), "<redacted>"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;

    use super::*;

    /// A log sink the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// Calls a node at `url` that cannot answer; returns the log text and the error the caller gets.
    fn failed_call(url: &str) -> (String, String) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt().with_writer(captured.clone()).with_ansi(false).finish();
        let client = RpcClient::new("ethereum", &["eth_chainId"], "mainnet".to_owned(), url.to_owned());
        let outcome = tracing::subscriber::with_default(subscriber, || {
            client.call_blocking::<serde_json::Value>("eth_chainId", serde_json::json!([]))
        });
        let error = match outcome {
            Err(e) => format!("{e} {:?}", e.details),
            Ok(answer) => panic!("a closed port answered {answer:?}"),
        };
        let log = String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("utf-8 log");
        (log, error)
    }

    /// A loopback port with nothing listening on it.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address").port()
    }

    #[track_caller]
    fn assert_no_secret(text: &str, secrets: &[&str]) {
        for secret in secrets {
            assert!(!text.contains(secret), "{secret:?} leaked into {text:?}");
        }
    }

    #[test]
    fn a_failed_call_logs_the_network_and_host_but_no_credential() {
        let port = closed_port();
        let url = format!("http://user:hunter2pass@127.0.0.1:{port}/v3/PATHKEY0123?apikey=QUERYKEY0123#FRAGKEY0123");
        let (log, error) = failed_call(&url);
        assert!(log.contains("rpc request failed"), "no warning logged: {log:?}");
        assert!(log.contains("network=mainnet"), "{log:?}");
        assert!(log.contains(&format!("endpoint=http://127.0.0.1:{port}")), "{log:?}");
        assert!(error.contains("the chain node did not answer eth_chainId"), "{error:?}");
        let secrets = ["hunter2pass", "user:", "PATHKEY0123", "QUERYKEY0123", "FRAGKEY0123", "/v3"];
        assert_no_secret(&log, &secrets);
        assert_no_secret(&error, &secrets);
    }

    #[test]
    fn a_url_the_http_library_rejects_is_not_echoed() {
        // ureq answers `bad uri: <the whole URL> is missing scheme` for this one: the scrub must catch it.
        let url = "/v3/PATHKEY0123?apikey=QUERYKEY0123";
        let (log, error) = failed_call(url);
        assert!(log.contains("rpc request failed"), "no warning logged: {log:?}");
        assert_no_secret(&log, &["KEY0123", "apikey"]);
        assert_no_secret(&error, &["KEY0123", "apikey"]);
    }

    #[test]
    fn endpoint_and_secret_parts_of_urls() {
        #[track_caller]
        fn check(url: &str, endpoint: &str, secrets: &[&str]) {
            assert_eq!(endpoint_of(url), endpoint);
            assert_eq!(secret_parts(url), secrets);
        }
        check("http://127.0.0.1:8545", "http://127.0.0.1:8545", &["http://127.0.0.1:8545"]);
        check("http://127.0.0.1:8545/", "http://127.0.0.1:8545", &["http://127.0.0.1:8545/"]);
        check(
            "https://eth-mainnet.g.alchemy.com/v2/abcdef",
            "https://eth-mainnet.g.alchemy.com",
            &["https://eth-mainnet.g.alchemy.com/v2/abcdef", "/v2/abcdef"],
        );
        check(
            "https://me:pw12@node.example/rpc?key=k1234",
            "https://node.example",
            &["https://me:pw12@node.example/rpc?key=k1234", "/rpc?key=k1234", "key=k1234", "me:pw12", "/rpc"],
        );
    }

    #[test]
    fn scrub_replaces_every_occurrence() {
        let secrets = secret_parts("https://node.example/v3/SECRETKEY");
        assert_eq!(
            scrub("bad uri https://node.example/v3/SECRETKEY, path /v3/SECRETKEY", &secrets),
            "bad uri <redacted>, path <redacted>"
        );
    }
}
