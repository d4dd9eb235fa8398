//! `waiaas mcp` through its front door: the rmcp client spawns the real `waiaas` binary as an MCP server over
//! stdio, pointed at a daemon embedded in this process (real HTTP on an ephemeral loopback port, a real SQLite
//! file) and, where a chain is involved, at a real anvil node or Solana runtime.

use std::time::{Duration, Instant};

use alloy_primitives::U256;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde_json::{Value, json};
use waiaas_client::types::{CreateAgent, CreateSession, SimulationResult};

use crate::support::{Anvil, EmbeddedDaemon, SolanaNode, api_error, binary, fresh_address};

/// A recipient no test controls.
const RECIPIENT: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
/// An RPC URL where nothing listens: agents can be created, chain reads fail with CHAIN_ERROR.
const DEAD_RPC: &str = "http://127.0.0.1:9";

/// Creates an agent on network `anvil` through the master API and issues it a session: (address, token).
fn agent(daemon: &EmbeddedDaemon) -> (String, String) {
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("mcp-bot", "anvil")).expect("create agent");
    let session = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("create session");
    (agent.address, session.token)
}

/// `waiaas mcp` as a child process, driven by the rmcp client.
struct Mcp {
    client: RunningService<RoleClient, ()>,
}

impl Mcp {
    async fn spawn(url: &str, token: &str) -> Mcp {
        let mut command = tokio::process::Command::new(binary());
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
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", DEAD_RPC)]);
    let (address, token) = agent(&daemon);
    let bot = daemon.client().with_session_token(&token);
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
    let (status, code, _) = api_error(bot.send_transaction_raw(&body));
    assert_eq!((error["status"].as_u64(), error["code"].as_str()), (Some(u64::from(status)), Some(code.as_str())));
    let error = mcp.tool_error("waiaas_simulate_transaction", body).await;
    assert_eq!(error["code"], "VALIDATION_FAILED", "{error}");
    // Nothing was recorded.
    let page = mcp.ok("waiaas_list_transactions", json!({"limit": 10})).await;
    assert_eq!((page["data"].as_array().map(Vec::len), page["hasMore"].as_bool()), (Some(0), Some(false)), "{page}");

    // An unknown transaction: the same code the SDK gets.
    let error = mcp.tool_error("waiaas_get_transaction", json!({"id": "01900000-0000-7000-8000-000000000000"})).await;
    let (_, code, _) = api_error(bot.get_transaction("01900000-0000-7000-8000-000000000000"));
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

impl Mcp {
    /// Polls `waiaas_get_transaction` until the chain confirms transaction `id`; panics on another final status.
    async fn confirmed(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let tx = self.ok("waiaas_get_transaction", json!({"id": id})).await;
            match tx["status"].as_str() {
                Some("CONFIRMED") => return tx,
                Some("FAILED" | "CANCELLED" | "EXPIRED") => panic!("the transfer did not go through: {tx}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "not confirmed in time: {tx}");
            // Polls another process (the daemon's worker and the chain); there is no event to await from here.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_and_send_a_transfer_on_anvil() {
    let anvil = Anvil::start();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str())]);
    let (address, token) = agent(&daemon);
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
    assert_eq!(anvil.native_balance(RECIPIENT), U256::ZERO);

    // The real send, then its progress through waiaas_get_transaction until the chain confirms it.
    let sent = mcp.ok("waiaas_send_transaction", body).await;
    let id = sent["id"].as_str().expect("transaction id").to_owned();
    let confirmed = mcp.confirmed(&id).await;
    assert_eq!((confirmed["tier"].as_str(), confirmed["amount"].as_str()), (Some("INSTANT"), Some("1000")));
    assert!(confirmed["txHash"].is_string(), "{confirmed}");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(1000u64));
    let page = mcp.ok("waiaas_list_transactions", json!({})).await;
    assert_eq!(page["data"][0]["id"], id.as_str(), "{page}");

    mcp.close().await;
}

/// The same tools serve a Solana agent: its balance in lamports, a simulation priced in SOL, and a send that lands
/// on a real Solana runtime.
#[tokio::test(flavor = "multi_thread")]
async fn simulate_and_send_a_sol_transfer_on_a_solana_runtime() {
    let node = SolanaNode::start();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_SOLANA_LOCAL", node.url.as_str())]);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::solana("mcp-sol", "local")).expect("create a Solana agent");
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("create session").token;
    node.airdrop(&agent.address, 1_000_000_000);
    let mcp = Mcp::spawn(&daemon.url, &token).await;

    let balance = mcp.ok("waiaas_get_balance", json!({})).await;
    assert_eq!(
        (balance["balance"].as_str(), balance["symbol"].as_str()),
        (Some("1000000000"), Some("SOL")),
        "{balance}"
    );
    let to = fresh_address();
    let body = json!({"type": "TRANSFER", "to": to, "amount": "2000000"});
    let simulated = mcp.ok("waiaas_simulate_transaction", body.clone()).await;
    let result: SimulationResult = serde_json::from_value(simulated.clone()).expect("a SimulationResult");
    assert!(result.success && result.simulation.success, "{simulated}");
    assert_eq!((result.fee.fee_symbol.as_str(), result.meta.network.as_str()), ("SOL", "local"));
    assert_eq!(node.balance(&to), 0, "simulation moves nothing");

    let sent = mcp.ok("waiaas_send_transaction", body).await;
    let confirmed = mcp.confirmed(sent["id"].as_str().expect("transaction id")).await;
    assert!(confirmed["txHash"].is_string(), "{confirmed}");
    assert_eq!(node.balance(&to), 2_000_000);
    mcp.close().await;
}

/// The balance tool, asked for something that is no ERC-20, relays the daemon's final NOT_A_TOKEN: an agent
/// reading `retryable` does not retry it.
#[tokio::test(flavor = "multi_thread")]
async fn the_balance_of_what_is_no_token_is_a_final_tool_error() {
    let anvil = Anvil::start();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str())]);
    let (_, token) = agent(&daemon);
    let reverter = anvil.deploy_reverter();
    let mcp = Mcp::spawn(&daemon.url, &token).await;
    for address in [RECIPIENT, reverter.as_str()] {
        let error = mcp.tool_error("waiaas_get_balance", json!({"token": address})).await;
        assert_eq!(error["code"], "NOT_A_TOKEN", "{error}");
        assert_eq!((error["status"].as_u64(), error["retryable"].as_bool()), (Some(400), Some(false)), "{error}");
        assert!(error["hint"].is_string(), "{error}");
    }
    mcp.close().await;
}

/// The pinned Python venv with `jsonschema` (scripts/check-clients creates it; scripts/test runs that first).
fn venv_python() -> std::path::PathBuf {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = workspace.join("target/tools/clients-venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/check-clients first", python.display());
    python
}

/// Every tool's input schema is valid JSON Schema 2020-12 stating the daemon's constraints (checked by the
/// `jsonschema` package: each edge value below validates, each invalid one does not), and each tool called with
/// either gets the daemon's own answer.
#[tokio::test(flavor = "multi_thread")]
async fn tool_schemas_state_the_daemons_rules_and_edge_values_get_its_answer() {
    let anvil = Anvil::start();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str())]);
    let (address, token) = agent(&daemon);
    anvil.rpc("anvil_setBalance", json!([address, "0xde0b6b3a7640000"])); // 1 ETH
    let erc20 = anvil.deploy_token(1_000).to_lowercase();
    let mcp = Mcp::spawn(&daemon.url, &token).await;
    let unknown_id = "00000000-0000-0000-0000-000000000000";
    let transfer = |to: &str, amount: &str| json!({"type": "TRANSFER", "to": to, "amount": amount});

    // (tool, schema-valid edge values, schema-invalid values)
    let cases: Vec<(&str, Vec<Value>, Vec<Value>)> = vec![
        ("waiaas_get_balance", vec![json!({}), json!({"token": erc20})], vec![json!({"token": "0x123"})]),
        ("waiaas_get_transaction", vec![json!({"id": unknown_id})], vec![json!({"id": "not-a-uuid"})]),
        (
            "waiaas_list_transactions",
            vec![json!({"limit": 1}), json!({"limit": 200})],
            vec![json!({"limit": 0}), json!({"limit": 201})],
        ),
        (
            "waiaas_simulate_transaction",
            vec![
                transfer(RECIPIENT, "0"),
                json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "network": null}),
            ],
            vec![transfer("0x12", "1"), json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "dryRun": true})],
        ),
        (
            "waiaas_send_transaction",
            vec![transfer(RECIPIENT, "0")],
            vec![transfer(RECIPIENT, "-1"), json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "memo": "x"})],
        ),
    ];

    let tools = mcp.client.list_all_tools().await.expect("list tools");
    let checked: Vec<Value> = cases
        .iter()
        .map(|(name, valid, invalid)| {
            let tool = tools.iter().find(|t| t.name == *name).unwrap_or_else(|| panic!("no tool {name}"));
            json!({"name": name, "schema": Value::Object((*tool.input_schema).clone()), "valid": valid, "invalid": invalid})
        })
        .collect();
    let list = tools.iter().find(|t| t.name == "waiaas_list_transactions").expect("list tool");
    assert_eq!(list.input_schema["properties"]["limit"]["minimum"], 1, "{:?}", list.input_schema);
    let mut python = std::process::Command::new(venv_python())
        .arg("tests/clients/check_tool_schemas.py")
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the schema check");
    {
        use std::io::Write;
        let mut stdin = python.stdin.take().expect("stdin");
        stdin.write_all(Value::Array(checked).to_string().as_bytes()).expect("write the schemas");
    }
    let output = python.wait_with_output().expect("schema check output");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && stdout.contains("schemas: ok"), "jsonschema check failed:\n{stdout}\n{stderr}");

    // The daemon answers every value, valid or not; the invalid ones with its own VALIDATION_FAILED wording.
    let balance = mcp.ok("waiaas_get_balance", json!({"token": erc20})).await;
    assert_eq!(balance["balance"], "0", "{balance}");
    let error = mcp.tool_error("waiaas_get_balance", json!({"token": "0x123"})).await;
    assert_eq!((error["code"].as_str(), error["status"].as_u64()), (Some("VALIDATION_FAILED"), Some(400)), "{error}");
    assert_eq!(error["details"]["issues"][0]["path"], "token", "{error}");

    let error = mcp.tool_error("waiaas_get_transaction", json!({"id": unknown_id})).await;
    assert_eq!(error["code"], "TX_NOT_FOUND", "{error}");
    let error = mcp.tool_error("waiaas_get_transaction", json!({"id": "not-a-uuid"})).await;
    assert_eq!(error["code"], "VALIDATION_FAILED", "{error}");
    assert_eq!(error["details"]["issues"][0], json!({"path": "id", "message": "must be a UUID"}), "{error}");
    assert!(!error.to_string().contains("string_uuid"), "no internal type name: {error}");

    for limit in [1, 200] {
        let page = mcp.ok("waiaas_list_transactions", json!({"limit": limit})).await;
        assert!(page["data"].is_array(), "{page}");
    }
    for limit in [0, 201] {
        let error = mcp.tool_error("waiaas_list_transactions", json!({"limit": limit})).await;
        assert_eq!(error["code"], "VALIDATION_FAILED", "{limit}: {error}");
        assert_eq!(error["details"]["issues"][0]["message"], "must be between 1 and 200", "{error}");
    }

    let simulated = mcp.ok("waiaas_simulate_transaction", transfer(RECIPIENT, "0")).await;
    assert_eq!(simulated["success"], true, "{simulated}");
    let body = json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "network": null});
    assert_eq!(mcp.ok("waiaas_simulate_transaction", body).await["meta"]["network"], "anvil");
    for (body, field) in [
        (transfer("0x12", "1"), "to"),
        (json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "dryRun": true}), "dryRun"),
    ] {
        let error = mcp.tool_error("waiaas_simulate_transaction", body).await;
        assert_eq!(error["code"], "VALIDATION_FAILED", "{error}");
        assert_eq!(error["details"]["issues"][0]["path"], field, "{error}");
    }

    let sent = mcp.ok("waiaas_send_transaction", transfer(RECIPIENT, "0")).await;
    assert!(sent["id"].is_string(), "{sent}");
    for (body, field) in [
        (transfer(RECIPIENT, "-1"), "amount"),
        (json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "memo": "x"}), "memo"),
    ] {
        let error = mcp.tool_error("waiaas_send_transaction", body).await;
        assert_eq!(error["code"], "VALIDATION_FAILED", "{error}");
        assert_eq!(error["details"]["issues"][0]["path"], field, "{error}");
    }
    mcp.close().await;
}
