//! `waiaas mcp` through its front door: the rmcp client spawns the real `waiaas` binary as an MCP server over
//! stdio, pointed at a real daemon embedded in this process (the same `bind`/`run` as `waiaas start`, real HTTP
//! on an ephemeral loopback port, a real SQLite file) and, where a chain is involved, at a real anvil node.
//!
//! The binary is `target/<profile>/waiaas` (built by `cargo build --bins`; `scripts/test` does it); anvil is the
//! npm package pinned in `tests/evm/package.json` (`npm ci --prefix tests/evm`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use waiaas_cli::config::Config;
use waiaas_cli::daemon::{Overrides, bind};
use waiaas_client::{Client, CreateAgent, CreateSession, SimulationResult};
use waiaas_fs::DataDir;
use zeroize::Zeroizing;

const MASTER_PASSWORD: &str = "correct horse battery staple";
/// A recipient no test controls.
const RECIPIENT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
/// An RPC URL where nothing listens: agents can be created, chain reads fail with CHAIN_ERROR.
const DEAD_RPC: &str = "http://127.0.0.1:9";

// ----- support ----------------------------------------------------------------------------------------------------

/// The `waiaas` binary next to this test binary (`target/<profile>/deps/mcp-*` → `target/<profile>/waiaas`).
fn waiaas_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    let path = profile_dir.join("waiaas");
    assert!(path.exists(), "{} is missing: run `cargo build --bins` first (scripts/test does)", path.display());
    path
}

/// The daemon embedded in this process on a fresh data dir, serving until dropped.
struct Daemon {
    url: String,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl Daemon {
    fn start(rpc_url: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp data dir");
        let data_dir = DataDir::create(dir.path()).expect("data dir");
        let vars = [
            ("WAIAAS_DAEMON_PORT", "0"),
            ("WAIAAS_KEYSTORE_ARGON2_M_COST_KIB", "1024"),
            ("WAIAAS_KEYSTORE_ARGON2_P_COST", "1"),
            ("WAIAAS_KEYSTORE_ARGON2_T_COST", "1"),
            ("WAIAAS_PIPELINE_WORKER_INTERVAL_MS", "20"),
            ("WAIAAS_RPC_EVM_ANVIL", rpc_url),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = Config::load(None, vars).expect("test config");
        let (url_tx, url_rx) = mpsc::channel();
        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let password = Zeroizing::new(MASTER_PASSWORD.to_owned());
                let bound = match bind(&data_dir, &config, password, Overrides::default()).await {
                    Ok(bound) => bound,
                    Err(e) => {
                        let _ = url_tx.send(Err(format!("{e:#}")));
                        return;
                    }
                };
                let _ = url_tx.send(Ok(bound.base_url.clone()));
                bound
                    .run(async move {
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .expect("embedded daemon run");
            });
        });
        let url = url_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("embedded daemon did not start")
            .unwrap_or_else(|e| panic!("embedded daemon failed: {e}"));
        Daemon { url, shutdown: Some(shutdown), thread: Some(thread), _dir: dir }
    }

    /// Creates an agent on network `anvil` through the master API and issues it a session: (address, token).
    fn agent(&self) -> (String, String) {
        let admin = Client::new(&self.url).with_master_password(MASTER_PASSWORD);
        let agent = admin.create_agent(&CreateAgent::ethereum("mcp-bot", "anvil")).expect("create agent");
        let session = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("create session");
        (agent.address, session.token)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A real anvil node on a free loopback port.
struct Anvil {
    child: Child,
    url: String,
}

impl Anvil {
    fn start() -> Anvil {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/evm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        assert!(binary.exists(), "anvil is not installed: run `npm ci --prefix tests/evm` (scripts/test does)");
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn anvil");
        // The banner ends with `Listening on 127.0.0.1:<port>`; keep draining stdout so anvil never blocks.
        let stdout = child.stdout.take().expect("anvil stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(address.trim().to_owned());
                }
            }
        });
        let address = rx.recv_timeout(Duration::from_secs(30)).expect("anvil did not report its listening address");
        Anvil { child, url: format!("http://{address}") }
    }

    fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let mut response = ureq::post(&self.url).send_json(&body).expect("anvil rpc");
        let value: Value = response.body_mut().read_json().expect("anvil json");
        assert!(value.get("error").is_none(), "{method} failed: {value}");
        value["result"].clone()
    }

    fn balance(&self, address: &str) -> u128 {
        let hex = self.rpc("eth_getBalance", json!([address, "latest"]));
        u128::from_str_radix(hex.as_str().expect("hex").trim_start_matches("0x"), 16).expect("balance")
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `waiaas mcp` as a child process, driven by the rmcp client.
struct Mcp {
    client: RunningService<RoleClient, ()>,
}

impl Mcp {
    async fn spawn(url: &str, token: &str) -> Mcp {
        let mut command = tokio::process::Command::new(waiaas_binary());
        command
            .arg("mcp")
            .env("WAIAAS_MCP_URL", url)
            .env("WAIAAS_SESSION_TOKEN", token)
            .env_remove("WAIAAS_SESSION_TOKEN_FILE")
            .env("RUST_LOG", "warn");
        let transport = TokioChildProcess::new(command).expect("spawn waiaas mcp");
        let client = ().serve(transport).await.expect("MCP handshake with waiaas mcp");
        Mcp { client }
    }

    async fn try_call(&self, tool: &'static str, arguments: Value) -> Result<CallToolResult, ServiceError> {
        let Value::Object(arguments) = arguments else { panic!("tool arguments must be an object") };
        self.client.call_tool(CallToolRequestParams::new(tool).with_arguments(arguments)).await
    }

    /// Calls a tool and returns (is_error, the JSON of its text content).
    async fn call(&self, tool: &'static str, arguments: Value) -> (bool, Value) {
        let result = self.try_call(tool, arguments).await.unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
        let text = result
            .content
            .iter()
            .find_map(|c| c.as_text())
            .unwrap_or_else(|| panic!("{tool}: no text content in {result:?}"))
            .text
            .clone();
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{tool}: not JSON ({e}): {text}"));
        if let Some(structured) = &result.structured_content {
            assert_eq!(structured, &value, "{tool}: structured content differs from the text");
        }
        (result.is_error == Some(true), value)
    }

    async fn ok(&self, tool: &'static str, arguments: Value) -> Value {
        let (is_error, value) = self.call(tool, arguments).await;
        assert!(!is_error, "{tool} failed: {value}");
        value
    }

    /// Calls a tool that must fail as a tool error and returns its error JSON.
    async fn tool_error(&self, tool: &'static str, arguments: Value) -> Value {
        let (is_error, value) = self.call(tool, arguments).await;
        assert!(is_error, "{tool} should have failed: {value}");
        assert!(value["code"].is_string() && value["message"].is_string(), "{tool}: {value}");
        value
    }

    async fn close(self) {
        self.client.cancel().await.expect("close the MCP session");
    }
}

// ----- tests ------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn tools_relay_the_daemon_and_its_errors() {
    let daemon = Daemon::start(DEAD_RPC);
    let (address, token) = daemon.agent();
    let bot = Client::new(&daemon.url).with_session_token(&token);
    let mcp = Mcp::spawn(&daemon.url, &token).await;

    let info = mcp.client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().map(|i| i.name.as_str()), Some("waiaas"));
    let tools = mcp.client.list_all_tools().await.expect("list tools");
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "waiaas_get_address",
            "waiaas_get_balance",
            "waiaas_get_transaction",
            "waiaas_list_transactions",
            "waiaas_send_transaction",
            "waiaas_simulate_transaction",
        ]
    );
    for tool in &tools {
        assert_eq!(tool.input_schema.get("type"), Some(&json!("object")), "{}: {:?}", tool.name, tool.input_schema);
        assert!(tool.input_schema.get("properties").is_some_and(Value::is_object), "{}", tool.name);
    }
    let send = tools.iter().find(|t| t.name == "waiaas_send_transaction").expect("send tool");
    assert_eq!(send.input_schema["properties"]["type"]["enum"][0], "TRANSFER");

    // The agent's own wallet, as the daemon reports it.
    let wallet = mcp.ok("waiaas_get_address", json!({})).await;
    assert_eq!(wallet["address"], address.as_str());
    assert_eq!((wallet["chain"].as_str(), wallet["network"].as_str()), (Some("ethereum"), Some("anvil")));

    // A dead chain: the daemon's CHAIN_ERROR comes back as a tool error, not a protocol error.
    let error = mcp.tool_error("waiaas_get_balance", json!({})).await;
    assert_eq!(error["code"], "CHAIN_ERROR", "{error}");
    assert_eq!((error["status"].as_u64(), error["retryable"].as_bool()), (Some(502), Some(true)), "{error}");
    assert!(error["requestId"].is_string(), "{error}");

    // The send body reaches the daemon's strict parser unchanged: an unknown field is its VALIDATION_FAILED.
    let body = json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "dryRun": true});
    let error = mcp.tool_error("waiaas_send_transaction", body.clone()).await;
    assert_eq!(error["code"], "VALIDATION_FAILED", "{error}");
    assert!(error.to_string().contains("dryRun"), "the daemon names the field: {error}");
    let (status, code, _) = sdk_error(bot.send_transaction_raw(&body));
    assert_eq!((error["status"].as_u64(), error["code"].as_str()), (Some(u64::from(status)), Some(code.as_str())));
    let error = mcp.tool_error("waiaas_simulate_transaction", body).await;
    assert_eq!(error["code"], "VALIDATION_FAILED", "{error}");
    // Nothing was recorded.
    let page = mcp.ok("waiaas_list_transactions", json!({"limit": 10})).await;
    assert_eq!((page["data"].as_array().map(Vec::len), page["hasMore"].as_bool()), (Some(0), Some(false)), "{page}");

    // An unknown transaction: the same code the SDK gets.
    let error = mcp.tool_error("waiaas_get_transaction", json!({"id": "01900000-0000-7000-8000-000000000000"})).await;
    let (_, code, _) = sdk_error(bot.get_transaction("01900000-0000-7000-8000-000000000000"));
    assert_eq!(error["code"], code.as_str(), "{error}");

    // Arguments that do not fit the input schema never reach the daemon: a tool error in the same shape; a typo
    // does not silently read the native balance instead.
    let error = mcp.tool_error("waiaas_get_transaction", json!({})).await;
    assert_eq!(error["code"], "INVALID_ARGUMENTS", "{error}");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("id")), "{error}");
    let error = mcp.tool_error("waiaas_get_balance", json!({"tokn": RECIPIENT})).await;
    assert_eq!(error["code"], "INVALID_ARGUMENTS", "{error}");
    // An unknown tool is a protocol error.
    assert!(mcp.try_call("waiaas_sign_anything", json!({})).await.is_err());

    mcp.close().await;

    // A token the daemon does not know: its 401 comes back as a tool error too.
    let stale = Mcp::spawn(&daemon.url, "wai_sess_not-a-real-token").await;
    let error = stale.tool_error("waiaas_get_address", json!({})).await;
    assert_eq!(error["status"], 401, "{error}");
    stale.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_and_send_a_transfer_on_anvil() {
    let anvil = Anvil::start();
    let daemon = Daemon::start(&anvil.url);
    let (address, token) = daemon.agent();
    anvil.rpc("anvil_setBalance", json!([address, "0xde0b6b3a7640000"])); // 1 ETH
    let mcp = Mcp::spawn(&daemon.url, &token).await;

    let balance = mcp.ok("waiaas_get_balance", json!({})).await;
    assert_eq!(balance["balance"], "1000000000000000000", "{balance}");

    let body = json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1000"});
    let simulated = mcp.ok("waiaas_simulate_transaction", body.clone()).await;
    let result: SimulationResult = serde_json::from_value(simulated.clone()).expect("a SimulationResult");
    assert!(result.success, "{simulated}");
    assert!(result.policy.allowed && result.policy.tier == "INSTANT", "no policy → INSTANT: {simulated}");
    assert!(result.simulation.success, "{simulated}");
    assert!(result.fee.gas_limit >= 21_000, "{simulated}");
    assert_eq!(result.fee.fee_symbol, "ETH");
    assert_eq!((result.meta.network.as_str(), result.meta.transaction_type.as_str()), ("anvil", "TRANSFER"));
    let native = result.balance_changes.iter().find(|c| c.symbol == "ETH").expect("an ETH balance change");
    assert_eq!(native.current_balance, "1000000000000000000", "{simulated}");
    assert!(native.change_amount.starts_with('-'), "an outflow: {simulated}");
    // No side effects: nothing recorded, nothing sent.
    let page = mcp.ok("waiaas_list_transactions", json!({})).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(0), "{page}");
    assert_eq!(anvil.balance(RECIPIENT), 0);

    // The real send, then its progress through waiaas_get_transaction until the chain confirms it.
    let sent = mcp.ok("waiaas_send_transaction", body).await;
    let id = sent["id"].as_str().expect("transaction id").to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let confirmed = loop {
        let tx = mcp.ok("waiaas_get_transaction", json!({"id": id})).await;
        match tx["status"].as_str() {
            Some("CONFIRMED") => break tx,
            Some("FAILED" | "CANCELLED" | "EXPIRED") => panic!("the transfer did not go through: {tx}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "not confirmed in time: {tx}");
        // Polls another process (the daemon's worker and the chain); there is no event to await from here.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((confirmed["tier"].as_str(), confirmed["amount"].as_str()), (Some("INSTANT"), Some("1000")));
    assert!(confirmed["txHash"].is_string(), "{confirmed}");
    assert_eq!(anvil.balance(RECIPIENT), 1000);
    let page = mcp.ok("waiaas_list_transactions", json!({})).await;
    assert_eq!(page["data"][0]["id"], id.as_str(), "{page}");

    mcp.close().await;
}

/// The SDK's view of the same failing call: (status, code, details).
#[track_caller]
fn sdk_error<T: std::fmt::Debug>(result: waiaas_client::Result<T>) -> (u16, String, Option<Value>) {
    match result {
        Err(waiaas_client::ClientError::Api { status, code, details, .. }) => (status, code, details),
        other => panic!("expected an API error, got {other:?}"),
    }
}
