//! Node faults: the node killed and restarted mid-pipeline, a node answering garbage or hanging (through the
//! test's proxy), and a node failing while a signed transaction waits for its receipt.

use alloy_primitives::U256;
use serde_json::json;
use waiaas_client::Client;
use waiaas_client::types::CreatePolicy;

use super::{RECIPIENT, assert_consistent, funded_agent, reaches, settled, transfer, tx_rows};
use crate::support::{Anvil, Daemon, DaemonOptions, EmbeddedDaemon, Fault, RpcProxy, eventually};

/// The node is stopped while a signed transfer sits in its pool (automine off) and started again from its saved
/// state (`anvil --state`: the chain is kept, the pool may not be). The daemon rides out the dead node (retryable
/// errors, backoff) and, finding the transaction unknown or pending, re-broadcasts its stored bytes: the transfer
/// is CONFIRMED exactly once, with its original hash.
#[test]
fn the_node_restarted_mid_pipeline_confirms_the_transfer_once() {
    let state = tempfile::tempdir().expect("state dir");
    let state_file = state.path().join("anvil-state.json");
    let state_arg = state_file.to_str().expect("utf-8 path");
    let mut anvil = Anvil::start_with(0, &["--state", state_arg]);
    let port = anvil.port();
    let mut daemon =
        Daemon::start_with(DaemonOptions { networks: vec![("anvil".into(), anvil.url.clone())], ..Default::default() });
    let agent = funded_agent(&daemon.admin(), &anvil, "node-restart");
    let wallet = daemon.client().with_session_token(&agent.token);
    anvil.rpc("evm_setAutomine", json!([false]));
    let id = wallet.send_transaction_raw(&transfer(2_468)).expect("send").id;
    let hash = reaches(&wallet, &id, "SUBMITTED").tx_hash.expect("hash");
    eventually(30, "the transaction in the node's pool", || {
        (!anvil.rpc("eth_getTransactionByHash", json!([hash])).is_null()).then_some(())
    });

    anvil.terminate();
    assert!(state_file.exists(), "anvil saved its state");
    let anvil = Anvil::start_with(port, &["--state", state_arg]);
    assert_eq!(anvil.nonce(&agent.address), 0, "nothing of the agent's was mined before the restart");
    assert!(anvil.native_balance(&agent.address) > U256::ZERO, "the chain came back with its state");
    let done = eventually(90, "the transfer confirmed on the restarted node", || {
        anvil.rpc("evm_mine", json!([]));
        let t = wallet.get_transaction(&id).expect("get");
        (t.status != "SUBMITTED").then_some(t)
    });
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(done.tx_hash.as_deref(), Some(hash.as_str()), "the stored transaction, not a rebuilt one");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(2_468u64));
    assert_eq!(anvil.nonce(&agent.address), 1);
    let rows = tx_rows(&daemon.admin(), &id);
    assert_eq!(rows.iter().filter(|r| *r == "TX_SUBMITTED").count(), 1, "{rows:?}");
    daemon.stop();
    assert_consistent(daemon.data_dir());
}

/// The API error a call got: (HTTP status, code, retryable).
#[track_caller]
fn api_error<T: std::fmt::Debug>(result: waiaas_client::Result<T>) -> (u16, String, bool) {
    match result {
        Err(waiaas_client::ClientError::Api { status, code, retryable, .. }) => (status, code, retryable),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn attempts(wallet: &Client, id: &str) -> u32 {
    wallet.get_transaction(id).expect("get").attempts.unwrap_or(0)
}

/// A node that answers garbage (HTML, a result of the wrong type, a truncated body, a 500), then one that hangs:
/// reads answer `502 CHAIN_ERROR`, retryable, at once or after the RPC timeout (nothing waits forever); queued
/// transfers stay EXECUTING with the error visible and a retry counted, none is signed; once the node is healthy
/// the queue drains, each transfer paid once.
#[test]
fn a_node_answering_garbage_then_hanging_gives_clear_errors_and_the_queue_drains() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", proxy.url.as_str())]);
    let agent = funded_agent(&daemon.admin(), &anvil, "garbage");
    let wallet = daemon.client().with_session_token(&agent.token);
    wallet.simulate(&transfer(1)).expect("a healthy node first (the network's coin is cached)");

    proxy.set_all(Fault::Garbage);
    for form in 0..4 {
        assert_eq!(api_error(wallet.simulate(&transfer(1))), (502, "CHAIN_ERROR".into(), true), "garbage {form}");
    }
    assert_eq!(api_error(wallet.wallet_balance()), (502, "CHAIN_ERROR".into(), true));
    let ids: Vec<String> =
        [1_000, 2_000].iter().map(|a| wallet.send_transaction_raw(&transfer(*a)).expect("admitted").id).collect();
    for id in &ids {
        let t = eventually(30, "a failed attempt", || {
            let t = wallet.get_transaction(id).expect("get");
            (t.attempts.unwrap_or(0) >= 1).then_some(t)
        });
        assert_eq!(t.status, "EXECUTING", "kept for a retry: {t:?}");
        assert!(t.error.as_deref().unwrap_or_default().contains("did not answer"), "{t:?}");
    }

    proxy.set_all(Fault::Hang);
    assert_eq!(api_error(wallet.simulate(&transfer(1))), (502, "CHAIN_ERROR".into(), true), "a hanging node");
    daemon.advance(30);
    for id in &ids {
        eventually(60, "an attempt against the hanging node", || (attempts(&wallet, id) >= 2).then_some(()));
    }
    assert_eq!(anvil.nonce(&agent.address), 0, "nothing was sent meanwhile");

    proxy.set_all(Fault::Forward);
    proxy.release();
    daemon.advance(60);
    for id in &ids {
        let done = settled(&wallet, id, 60);
        assert_eq!((done.status.as_str(), done.error.as_deref()), ("CONFIRMED", None), "{done:?}");
    }
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(3_000u64));
    assert_eq!(anvil.nonce(&agent.address), 2);
}

/// A node that lost the block "latest" named (as anvil pruning history does when a block is mined in between,
/// which the 10-minute soak met): every `eth_call` answers `BlockOutOfRangeError`. That is the node failing, not
/// the call: a dry-run answers `502 CHAIN_ERROR` (retryable) instead of a failed simulation, a token transfer is
/// not refused as "not an ERC-20", and a transfer stays EXECUTING for a retry, unsigned. When the node answers
/// again, both transfers confirm, each paid once.
#[test]
fn a_node_that_lost_its_block_is_retried_not_taken_for_a_failing_call() {
    let anvil = Anvil::start();
    let token = anvil.deploy_token(1_000_000);
    let proxy = RpcProxy::start(&anvil.url);
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", proxy.url.as_str())]);
    let agent = funded_agent(&daemon.admin(), &anvil, "lost-block");
    anvil.give_tokens(&token, &agent.address, 100);
    let allowed = json!({"tokens": [token]});
    let policy = CreatePolicy { agent_id: None, policy_type: "ALLOWED_TOKENS".into(), rules: allowed, enabled: None };
    daemon.admin().create_policy(&policy).expect("allow the token");
    let wallet = daemon.client().with_session_token(&agent.token);
    wallet.simulate(&transfer(1)).expect("a healthy node first (the network's coin is cached)");
    let erc20 = json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "10",
                       "token": {"address": token, "decimals": 6, "symbol": "TUSD"}});

    proxy.set("eth_call", Fault::LostBlock);
    assert_eq!(api_error(wallet.simulate(&transfer(1))), (502, "CHAIN_ERROR".into(), true), "dry-run");
    assert_eq!(api_error(wallet.send_transaction_raw(&erc20)), (502, "CHAIN_ERROR".into(), true), "token metadata");
    let id = wallet.send_transaction_raw(&transfer(1_000)).expect("admitted").id;
    let waiting = eventually(30, "a failed attempt", || {
        let t = wallet.get_transaction(&id).expect("get");
        (t.attempts.unwrap_or(0) >= 1).then_some(t)
    });
    assert_eq!(waiting.status, "EXECUTING", "kept for a retry: {waiting:?}");
    assert!(waiting.error.as_deref().unwrap_or_default().contains("BlockOutOfRange"), "{waiting:?}");
    assert_eq!(anvil.nonce(&agent.address), 0, "nothing was signed meanwhile");

    proxy.set("eth_call", Fault::Forward);
    daemon.advance(60);
    let done = settled(&wallet, &id, 60);
    assert_eq!((done.status.as_str(), done.error.as_deref()), ("CONFIRMED", None), "{done:?}");
    let token_id = wallet.send_transaction_raw(&erc20).expect("admitted once the node answers").id;
    assert_eq!(settled(&wallet, &token_id, 60).status, "CONFIRMED");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(1_000u64));
    assert_eq!(anvil.token_balance(&token, RECIPIENT), U256::from(10u64));
    assert_eq!(anvil.nonce(&agent.address), 2, "one transaction each");
}

/// A signed, broadcast transfer waits for its receipt (automine off) while the node fails for longer than every
/// retry of the pipeline: the row stays SUBMITTED (the transaction can still be included, so FAILED would tell
/// the agent it did not pay when it may have), checked on a bounded backoff; when the node recovers and mines it,
/// the row is CONFIRMED and paid once.
#[test]
fn a_submitted_transfer_is_never_failed_while_it_could_still_land() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", proxy.url.as_str())]);
    let agent = funded_agent(&daemon.admin(), &anvil, "in-flight");
    let wallet = daemon.client().with_session_token(&agent.token);
    anvil.rpc("evm_setAutomine", json!([false]));
    let id = wallet.send_transaction_raw(&transfer(777)).expect("send").id;
    let hash = reaches(&wallet, &id, "SUBMITTED").tx_hash.expect("hash");
    eventually(30, "the transaction in the node's pool", || {
        (!anvil.rpc("eth_getTransactionByHash", json!([hash])).is_null()).then_some(())
    });

    proxy.set_all(Fault::Garbage);
    for _ in 0..8 {
        let seen = attempts(&wallet, &id);
        daemon.advance(20);
        eventually(30, "another failed check", || {
            let t = wallet.get_transaction(&id).expect("get");
            (t.attempts.unwrap_or(0) > seen || t.status != "SUBMITTED").then_some(())
        });
    }
    let waiting = wallet.get_transaction(&id).expect("get");
    assert_eq!(waiting.status, "SUBMITTED", "a transaction that can still land was given up: {waiting:?}");
    assert!(waiting.error.is_some(), "the node's failure is visible meanwhile: {waiting:?}");

    proxy.set_all(Fault::Forward);
    anvil.rpc("evm_mine", json!([]));
    anvil.rpc("evm_setAutomine", json!([true]));
    daemon.advance(20);
    let done = settled(&wallet, &id, 30);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(777u64));
    assert_eq!(anvil.nonce(&agent.address), 1);
}
