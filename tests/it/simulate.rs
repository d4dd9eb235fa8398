//! OPS-01 dry-run acceptance against a real anvil: T-01, T-02, T-03, S-01, ERC-20 simulation from the agent's
//! own address, and parity — for a table of requests, what simulate predicts equals what send does in the same
//! state, on EVM (anvil) and on Solana (the helper runtime of tools/solana-node).

use alloy_primitives::U256;
use serde_json::{Value, json};
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreatePolicy, CreateSession, ListParams, Transaction};
use waiaas_client::{Client, ClientError};

use crate::support::{
    Anvil, EmbeddedDaemon, FundedAgent, ONE_ETH, SolanaNode, eventually, fail_calldata, fresh_address,
    transfer_calldata,
};

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";
const OTHER: &str = "0x2222222222222222222222222222222222222222";
const ONE_SOL: u64 = 1_000_000_000;
/// The SPL Memo program: every Solana runtime has it; it fails on data that is not UTF-8.
const SOLANA_MEMO: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";
/// The dry-run fixture: a funded agent, ETH priced at $3000.
type Setup = FundedAgent;

fn setup() -> Setup {
    FundedAgent::start(Anvil::start(), &[("WAIAAS_ORACLE_USD_ETH", "3000")], "sim")
}

fn policy(s: &Setup, policy_type: &str, rules: Value) {
    s.policy(policy_type, rules);
}

fn final_status(s: &Setup, id: &str) -> waiaas_client::types::Transaction {
    s.settled(id)
}

fn transfer(to: &str, amount: u128) -> Value {
    json!({"type": "TRANSFER", "to": to, "amount": amount.to_string()})
}

/// T-01: tier, a positive fee consistent with the real send, and the balance change.
#[test]
fn t01_normal_simulation_reports_tier_fee_and_balance_change() {
    let s = setup();
    let result = s.agent.simulate(&transfer(RECIPIENT, ONE_ETH)).expect("simulate");
    assert!(result.success, "{result:?}");
    assert_eq!((result.policy.allowed, result.policy.tier.as_str()), (true, "INSTANT"));
    let fee: u128 = result.fee.estimated_fee.parse().unwrap();
    assert!(fee > 0 && result.fee.gas_limit >= 21_000, "{:?}", result.fee);
    assert!(result.fee.fee_usd.is_some_and(|usd| usd > 0.0), "priced with [oracle] usd_eth");
    assert_eq!(result.simulation.gas_used, Some(21_000));
    let native = &result.balance_changes[0];
    assert_eq!((native.asset.as_str(), native.current_balance.as_str()), ("native", "10000000000000000000"));
    let out: u128 = native.change_amount.trim_start_matches('-').parse().unwrap();
    assert!(native.change_amount.starts_with('-') && out == ONE_ETH + fee, "{native:?}");
    assert_eq!(native.after_balance, (10 * ONE_ETH - ONE_ETH - fee).to_string());
    assert_eq!(result.meta.transaction_type, "TRANSFER");
    let head = crate::support::hex_u256(&s.anvil.rpc("eth_blockNumber", json!([])));
    assert_eq!(U256::from(result.meta.block_number), head, "simulated at the latest block");

    // The real send uses what was predicted, within the stated margin: the same gas, a fee no larger than the
    // estimate's worst case.
    let sent = s.agent.send_transaction_raw(&transfer(RECIPIENT, ONE_ETH)).unwrap();
    let done = final_status(&s, &sent.id);
    assert_eq!(done.status, "CONFIRMED");
    let receipt = s.anvil.rpc("eth_getTransactionReceipt", json!([done.tx_hash.unwrap()]));
    let gas_used = u64::from_str_radix(receipt["gasUsed"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    assert_eq!(Some(gas_used), result.simulation.gas_used);
    let price =
        u128::from_str_radix(receipt["effectiveGasPrice"].as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
    let paid = u128::from(gas_used) * price;
    assert!(paid <= fee * 2 && fee <= paid * 2, "estimated {fee} wei, paid {paid} wei (margin ×2)");
}

/// T-02: more than the wallet holds → INSUFFICIENT_BALANCE with severity error and success false.
#[test]
fn t02_insufficient_balance_is_an_error_warning() {
    let s = setup();
    let result = s.agent.simulate(&transfer(RECIPIENT, 11 * ONE_ETH)).unwrap();
    assert!(!result.success);
    let warning = result.warnings.iter().find(|w| w.code == "INSUFFICIENT_BALANCE").expect("warning");
    assert_eq!(warning.severity, "error");
    assert!(result.policy.allowed, "policy alone would accept it");

    // All but the fee: the amount fits, the fee does not.
    let result = s.agent.simulate(&transfer(RECIPIENT, 10 * ONE_ETH - 1)).unwrap();
    assert!(!result.success);
    assert!(result.has_warning("INSUFFICIENT_BALANCE_WITH_FEE"), "{:?}", result.warnings);
}

fn database_bytes(s: &Setup) -> Vec<u8> {
    let data = s.daemon.data_dir().join("data");
    let mut bytes = std::fs::read(data.join("waiaas.db")).unwrap();
    bytes.extend(std::fs::read(data.join("waiaas.db-wal")).unwrap_or_default());
    bytes
}

/// T-03: 100 simulations change no byte of the database, send nothing to the chain and emit no event.
#[test]
fn t03_simulation_has_no_side_effects() {
    let s = setup();
    policy(&s, "SPENDING_LIMIT", json!({"instant_max": "100", "notify_max": "200", "delay_max": "300"}));
    policy(&s, "RATE_LIMIT", json!({"max_requests": 3, "window_seconds": 3600}));
    // An in-flight reservation the simulations must see but not add to.
    let queued = s.agent.send_transaction_raw(&transfer(RECIPIENT, 250)).unwrap();
    let audit_before = s.daemon.admin().audit_logs(&AuditLogFilter { limit: Some(200), ..Default::default() }).unwrap();
    let txs_before = s.agent.list_transactions(&ListParams::default()).unwrap();
    let bytes_before = database_bytes(&s);
    let nonce_before = s.anvil.nonce(&s.address);
    let block_before = s.anvil.rpc("eth_blockNumber", json!([]));

    let bodies = [transfer(RECIPIENT, 40), transfer(RECIPIENT, 5 * ONE_ETH), transfer(OTHER, 1)];
    for i in 0..100 {
        let result = s.agent.simulate(&bodies[i % bodies.len()]).unwrap();
        if i % bodies.len() == 0 {
            assert_eq!(result.policy.tier, "DELAY", "sees the 250 reserved: 250 + 40 > notify_max");
        }
    }

    assert_eq!(database_bytes(&s), bytes_before, "the database files are byte-identical");
    assert_eq!(
        s.daemon.admin().audit_logs(&AuditLogFilter { limit: Some(200), ..Default::default() }).unwrap(),
        audit_before
    );
    assert_eq!(s.agent.list_transactions(&ListParams::default()).unwrap(), txs_before);
    assert_eq!(s.anvil.nonce(&s.address), nonce_before);
    assert_eq!(s.anvil.rpc("eth_blockNumber", json!([])), block_before, "no block was mined");
    assert_eq!(s.agent.get_transaction(&queued.id).unwrap().status, "QUEUED");
}

/// S-01: simulate cannot bypass policy, does not consume limits, and its answer cannot be replayed.
#[test]
fn s01_simulation_cannot_bypass_or_consume_policy() {
    let s = setup();
    policy(&s, "WHITELIST", json!({"allowed_addresses": [RECIPIENT]}));
    policy(&s, "RATE_LIMIT", json!({"max_requests": 2, "window_seconds": 3600}));

    let denied = s.agent.simulate(&transfer(OTHER, 1)).unwrap();
    assert!(!denied.success && !denied.policy.allowed);
    assert_eq!(denied.policy.reason_code.as_deref(), Some("ADDRESS_NOT_WHITELISTED"));
    let Err(ClientError::Api { code, .. }) = s.agent.send_transaction_raw(&transfer(OTHER, 1)) else {
        panic!("a denied request must stay denied on send")
    };
    assert_eq!(code, "POLICY_DENIED");

    for _ in 0..20 {
        assert!(s.agent.simulate(&transfer(RECIPIENT, 1)).unwrap().success);
    }
    for _ in 0..2 {
        s.agent.send_transaction_raw(&transfer(RECIPIENT, 1)).expect("simulations consumed no rate limit");
    }
    let third = s.agent.simulate(&transfer(RECIPIENT, 1)).unwrap();
    assert_eq!(third.policy.reason_code.as_deref(), Some("RATE_LIMIT_EXCEEDED"), "and it sees the real sends");

    // The answer carries nothing that executes: sending it back is refused as an unknown body.
    let replay = serde_json::to_value(&third).unwrap();
    let Err(ClientError::Api { code, .. }) = s.agent.send_transaction_raw(&replay) else { panic!("replay accepted") };
    assert_eq!(code, "VALIDATION_FAILED");
    let mut flagged = transfer(RECIPIENT, 1);
    flagged["dryRun"] = json!(true);
    let Err(ClientError::Api { code, .. }) = s.agent.send_transaction_raw(&flagged) else { panic!("dryRun accepted") };
    assert_eq!(code, "VALIDATION_FAILED", "an unknown flag fails closed; it never falls through to a real send");
}

/// What a request leads to, in terms both endpoints can express.
#[derive(Debug, PartialEq)]
pub(crate) enum Verdict {
    /// Accepted by policy with this tier; `executes` is whether the transaction can succeed on chain.
    Tier(String, bool),
    Denied(String),
    Refused(String),
}

fn simulated(agent: &Client, body: &Value) -> Verdict {
    match agent.simulate(body) {
        Ok(r) if r.policy.allowed => Verdict::Tier(r.policy.tier, r.success),
        Ok(r) => Verdict::Denied(r.policy.reason_code.unwrap_or_default()),
        Err(ClientError::Api { code, .. }) => Verdict::Refused(code),
        Err(e) => panic!("simulate {body}: {e:?}"),
    }
}

fn sent(agent: &Client, body: &Value) -> Verdict {
    match agent.send_transaction_raw(body) {
        Ok(result) => {
            let tx = agent.get_transaction(&result.id).unwrap();
            let tier = tx.tier.clone().expect("an admitted request has a tier");
            // Only INSTANT/NOTIFY execute without waiting; their outcome shows whether the chain accepted them.
            let executes = if matches!(tier.as_str(), "INSTANT" | "NOTIFY") {
                settled(agent, &result.id).status == "CONFIRMED"
            } else {
                true
            };
            Verdict::Tier(tier, executes)
        }
        Err(ClientError::Api { code, details, .. }) if code == "POLICY_DENIED" => {
            Verdict::Denied(details.unwrap()["reasonCode"].as_str().unwrap().to_owned())
        }
        Err(ClientError::Api { code, .. }) => Verdict::Refused(code),
        Err(e) => panic!("send {body}: {e:?}"),
    }
}

/// Waits until `agent`'s transaction `id` reaches a final status.
fn settled(agent: &Client, id: &str) -> Transaction {
    eventually(60, "a final status", || {
        let t = agent.get_transaction(id).expect("get transaction");
        matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t)
    })
}

/// Simulates, then sends the same request in the same state as `agent` (its session client, on any chain), and
/// checks both agree with `expected`.
#[track_caller]
pub(crate) fn check_parity(agent: &Client, name: &str, body: &Value, expected: Verdict) {
    let predicted = simulated(agent, body);
    let actual = sent(agent, body);
    assert_eq!(predicted, actual, "{name}: simulate and send disagree on {body}");
    assert_eq!(actual, expected, "{name}");
}

#[test]
fn parity_simulate_predicts_what_send_does() {
    use Verdict::*;
    let s = setup();
    let tier = |t: &str| Tier(t.to_owned(), true);
    let (token, reverter) = (s.anvil.deploy_token(1_000_000_000), s.anvil.deploy_reverter());
    s.anvil.give_tokens(&token, &s.address, 1_000);
    let token_ref = json!({"address": token, "decimals": 6, "symbol": "TUSD"});
    policy(
        &s,
        "SPENDING_LIMIT",
        json!({"instant_max": "100", "notify_max": "200", "delay_max": "300", "delay_seconds": 60}),
    );
    policy(&s, "WHITELIST", json!({"allowed_addresses": [RECIPIENT, OTHER]}));
    // Default deny: contract calls, token transfers and approvals each need a policy that lists them.
    policy(&s, "CONTRACT_WHITELIST", json!({"contracts": [reverter, token]}));
    policy(&s, "ALLOWED_TOKENS", json!({"tokens": [token]}));
    policy(&s, "APPROVED_SPENDERS", json!({"spenders": [OTHER]}));

    // Nothing in flight yet.
    check_parity(&s.agent, "zero", &transfer(RECIPIENT, 0), tier("INSTANT"));
    check_parity(&s.agent, "instant boundary", &transfer(RECIPIENT, 100), tier("INSTANT"));
    check_parity(&s.agent, "notify lower", &transfer(RECIPIENT, 101), tier("NOTIFY"));
    check_parity(&s.agent, "notify boundary", &transfer(RECIPIENT, 200), tier("NOTIFY"));
    let erc20 = json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "10", "token": token_ref});
    check_parity(&s.agent, "erc-20 transfer from the agent's address", &erc20, tier("INSTANT"));
    let approve = json!({"type": "APPROVE", "spender": OTHER, "amount": "5", "token": token_ref});
    check_parity(&s.agent, "erc-20 approve", &approve, tier("INSTANT"));
    let too_much = json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "100000", "token": token_ref});
    check_parity(&s.agent, "erc-20 above the token balance", &too_much, Tier("INSTANT".into(), false));
    let revert = json!({"type": "CONTRACT_CALL", "to": reverter, "calldata": fail_calldata()});
    check_parity(&s.agent, "reverting contract call", &revert, Tier("INSTANT".into(), false));
    let unlisted = "0x3333333333333333333333333333333333333333";
    let not_listed = transfer(unlisted, 1);
    check_parity(&s.agent, "not whitelisted", &not_listed, Denied("ADDRESS_NOT_WHITELISTED".into()));
    // Judged by what it does: value on a call, and ERC-20 calldata, meet the same WHITELIST.
    let value_call = json!({"type": "CONTRACT_CALL", "to": unlisted, "calldata": "0x", "value": "1"});
    check_parity(&s.agent, "call with value to an unlisted EOA", &value_call, Denied("ADDRESS_NOT_WHITELISTED".into()));
    let token_call = |to: &str| json!({"type": "CONTRACT_CALL", "to": token, "calldata": transfer_calldata(to, 3)});
    check_parity(
        &s.agent,
        "erc-20 calldata to an unlisted recipient",
        &token_call(unlisted),
        Denied("ADDRESS_NOT_WHITELISTED".into()),
    );
    check_parity(&s.agent, "erc-20 calldata to a listed recipient", &token_call(RECIPIENT), tier("INSTANT"));
    let unlimited = json!({"type": "APPROVE", "spender": OTHER, "amount": U256::MAX.to_string(), "token": token_ref});
    check_parity(&s.agent, "unlimited approval", &unlimited, Denied("UNLIMITED_APPROVAL".into()));
    let spoofed = json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "10",
        "token": {"address": token, "decimals": 36, "symbol": "TUSD"}});
    check_parity(&s.agent, "claimed decimals differ from the chain's", &spoofed, Refused("VALIDATION_FAILED".into()));
    let flagged = json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "dryRun": true});
    check_parity(&s.agent, "unknown field", &flagged, Refused("VALIDATION_FAILED".into()));
    let elsewhere = json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1", "network": "mainnet"});
    check_parity(&s.agent, "unknown network", &elsewhere, Refused("NETWORK_NOT_CONFIGURED".into()));
    let batch = json!({"type": "BATCH", "instructions": [transfer(RECIPIENT, 1), transfer(RECIPIENT, 1)]});
    check_parity(&s.agent, "batch on EVM", &batch, Refused("VALIDATION_FAILED".into()));

    // Waiting work is reserved and counts toward the next request's tier.
    check_parity(&s.agent, "delay lower", &transfer(RECIPIENT, 201), tier("DELAY"));
    check_parity(&s.agent, "delay boundary with 201 reserved", &transfer(RECIPIENT, 99), tier("DELAY"));
    check_parity(&s.agent, "owner absent: approval downgraded", &transfer(RECIPIENT, 301), tier("DELAY"));
    let admin = s.daemon.admin();
    admin.set_owner(&s.agent_id, Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")).unwrap();
    check_parity(&s.agent, "approval with an owner", &transfer(RECIPIENT, 1_000), tier("APPROVAL"));

    // Each deny policy.
    policy(&s, "CONTRACT_WHITELIST", json!({"contracts": [token]}));
    let call = json!({"type": "CONTRACT_CALL", "to": reverter, "calldata": fail_calldata()});
    check_parity(&s.agent, "contract not whitelisted", &call, Denied("CONTRACT_NOT_WHITELISTED".into()));
    policy(&s, "APPROVED_SPENDERS", json!({"spenders": [RECIPIENT]}));
    check_parity(&s.agent, "spender not approved", &approve, Denied("SPENDER_NOT_APPROVED".into()));
    policy(&s, "ALLOWED_TOKENS", json!({"tokens": [RECIPIENT]}));
    check_parity(&s.agent, "token not allowed", &erc20, Denied("TOKEN_NOT_ALLOWED".into()));
    policy(&s, "TIME_RESTRICTION", json!({"allowed_hours": [], "allowed_days": []}));
    check_parity(&s.agent, "outside allowed hours", &transfer(RECIPIENT, 1), Denied("OUTSIDE_ALLOWED_TIME".into()));

    // The agent and the daemon.
    admin.suspend_agent(&s.agent_id).unwrap();
    check_parity(&s.agent, "suspended agent", &transfer(RECIPIENT, 1), Refused("AGENT_SUSPENDED".into()));
    admin.resume_agent(&s.agent_id).unwrap();
    admin.activate_kill_switch(None).unwrap();
    check_parity(&s.agent, "kill switch on", &transfer(RECIPIENT, 1), Refused("SYSTEM_LOCKED".into()));
}

#[test]
fn session_constraint_parity() {
    use Verdict::*;
    let s = setup();
    let token = s
        .daemon
        .admin()
        .create_session(&CreateSession {
            constraints: Some(json!({"maxAmountPerTx": {"native": "100"}, "allowedRecipients": [RECIPIENT],
                                     "allowedTypes": ["TRANSFER"]})),
            ..CreateSession::for_agent(&s.agent_id)
        })
        .unwrap()
        .token;
    let capped = Setup { agent: s.daemon.client().with_session_token(&token), ..s };
    check_parity(&capped.agent, "at the cap", &transfer(RECIPIENT, 100), Tier("INSTANT".into(), true));
    check_parity(&capped.agent, "above the cap", &transfer(RECIPIENT, 101), Denied("SESSION_AMOUNT_EXCEEDED".into()));
    check_parity(&capped.agent, "other recipient", &transfer(OTHER, 1), Denied("SESSION_RECIPIENT_NOT_ALLOWED".into()));
    let call = json!({"type": "CONTRACT_CALL", "to": RECIPIENT, "calldata": "0xdeadbeef"});
    check_parity(&capped.agent, "type not allowed", &call, Denied("SESSION_TYPE_NOT_ALLOWED".into()));
}

#[test]
fn rate_limit_parity_and_insufficient_native_balance() {
    use Verdict::*;
    let s = setup();
    policy(&s, "RATE_LIMIT", json!({"max_requests": 1, "window_seconds": 60}));
    check_parity(&s.agent, "first request", &transfer(RECIPIENT, 1), Tier("INSTANT".into(), true));
    check_parity(&s.agent, "over the rate limit", &transfer(RECIPIENT, 1), Denied("RATE_LIMIT_EXCEEDED".into()));
    s.daemon.advance(61);
    check_parity(
        &s.agent,
        "more than the wallet holds",
        &transfer(RECIPIENT, 20 * ONE_ETH),
        Tier("INSTANT".into(), false),
    );
    assert_eq!(s.anvil.native_balance(RECIPIENT), U256::from(1u64));
}

/// Simulate and send agree on a token that answers `true` and moves nothing (SilentToken): the simulated
/// execution's logs (`eth_simulateV1`) show no `Transfer` / `Approval`, so simulate reports EFFECT_NOT_OBSERVED
/// (error severity, not successful) and send fails the row with the same code before signing anything (the
/// nonce does not move: no fee paid). A real token's transfer simulates successfully and confirms.
#[test]
fn simulate_and_send_agree_on_a_token_that_moves_nothing() {
    let s = setup();
    let silent = s.anvil.deploy_silent_token();
    let real = s.anvil.deploy_token(1_000_000_000);
    s.anvil.give_tokens(&real, &s.address, 5_000_000);
    policy(&s, "ALLOWED_TOKENS", json!({"tokens": [silent, real]}));
    policy(&s, "APPROVED_SPENDERS", json!({"spenders": [OTHER]}));
    let silent_ref = json!({"address": silent, "decimals": 6, "symbol": "SLNT"});
    for body in [
        json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "1250000", "token": silent_ref}),
        json!({"type": "APPROVE", "spender": OTHER, "amount": "777", "token": silent_ref}),
    ] {
        let result = s.agent.simulate(&body).expect("simulate");
        assert!(!result.success, "{body}: {result:?}");
        let warning = result.warnings.iter().find(|w| w.code == "EFFECT_NOT_OBSERVED").expect("the warning");
        assert_eq!(warning.severity, "error", "{warning:?}");
        let nonce = s.anvil.nonce(&s.address);
        let id = s.agent.send_transaction_raw(&body).expect("admitted").id;
        let done = final_status(&s, &id);
        assert_eq!(done.status, "FAILED", "{body}: {done:?}");
        assert!(done.error.as_deref().unwrap_or_default().contains("simulated execution logs no"), "{done:?}");
        assert_eq!(s.anvil.nonce(&s.address), nonce, "{body}: signed and sent although nothing would move");
        let failed = s
            .daemon
            .admin()
            .audit_logs(&AuditLogFilter {
                tx_id: Some(id),
                event_types: vec!["TX_FAILED".into()],
                ..Default::default()
            })
            .expect("audit")
            .data;
        assert_eq!(failed[0].details["code"], "EFFECT_NOT_OBSERVED");
    }
    let body = json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "1000",
                      "token": {"address": real, "decimals": 6, "symbol": "TUSD"}});
    let result = s.agent.simulate(&body).expect("simulate");
    assert!(result.success && !result.has_warning("EFFECT_NOT_OBSERVED"), "{result:?}");
    let id = s.agent.send_transaction_raw(&body).expect("send").id;
    assert_eq!(final_status(&s, &id).status, "CONFIRMED");
    assert_eq!(s.anvil.token_balance(&real, RECIPIENT), U256::from(1_000u64));
}

/// The same parity table for a Solana agent on the real Solana runtime: SOL, SPL (the recipient's token account
/// created), SPL approve, program calls, batches, and each policy that judges them.
#[test]
fn solana_parity_simulate_predicts_what_send_does() {
    use Verdict::*;
    let node = SolanaNode::start();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_SOLANA_LOCAL", node.url.as_str())]);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::solana("sol-sim", "local")).expect("agent");
    node.airdrop(&agent.address, 10 * ONE_SOL);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let s = daemon.client().with_session_token(&token);
    let policy = |policy_type: &str, rules: Value| {
        let create =
            CreatePolicy { agent_id: Some(agent.id.clone()), policy_type: policy_type.into(), rules, enabled: None };
        admin.create_policy(&create).expect("policy");
    };
    let tier = |t: &str| Tier(t.to_owned(), true);
    let (mint, other_mint) = (node.create_mint(6), node.create_mint(6));
    node.mint_to(&mint, &agent.address, 1_000);
    let spl = |mint: &str, to: &str, amount: u64| {
        json!({"type": "TOKEN_TRANSFER", "to": to, "amount": amount.to_string(),
               "token": {"address": mint, "decimals": 6, "symbol": "TST"}})
    };
    let approve = |spender: &str, amount: &str| {
        json!({"type": "APPROVE", "spender": spender, "amount": amount,
               "token": {"address": mint, "decimals": 6, "symbol": "TST"}})
    };
    let memo = |data: &str| json!({"type": "CONTRACT_CALL", "to": SOLANA_MEMO, "calldata": data});
    let (listed, other, unfunded, unlisted) = (fresh_address(), fresh_address(), fresh_address(), fresh_address());
    policy(
        "SPENDING_LIMIT",
        json!({"instant_max": "1000000", "notify_max": "2000000", "delay_max": "3000000", "delay_seconds": 60}),
    );
    policy("WHITELIST", json!({"allowed_addresses": [listed, other, unfunded]}));
    policy("CONTRACT_WHITELIST", json!({"contracts": [SOLANA_MEMO]}));
    policy("ALLOWED_TOKENS", json!({"tokens": [mint]}));
    policy("APPROVED_SPENDERS", json!({"spenders": [other]}));

    check_parity(&s, "zero", &transfer(&listed, 0), tier("INSTANT"));
    check_parity(&s, "instant boundary", &transfer(&listed, 1_000_000), tier("INSTANT"));
    check_parity(&s, "notify lower", &transfer(&listed, 1_000_001), tier("NOTIFY"));
    // A new account must hold its rent exemption (~0.00089 SOL): less fails on chain, and simulate says so.
    check_parity(
        &s,
        "below rent exemption to a new account",
        &transfer(&unfunded, 1_000),
        Tier("INSTANT".into(), false),
    );
    check_parity(&s, "spl to a recipient without a token account", &spl(&mint, &listed, 10), tier("INSTANT"));
    check_parity(&s, "spl above the token balance", &spl(&mint, &listed, 5_000), Tier("INSTANT".into(), false));
    check_parity(&s, "spl approve", &approve(&other, "5"), tier("INSTANT"));
    check_parity(&s, "program call", &memo("0x68656c6c6f"), tier("INSTANT"));
    check_parity(&s, "failing program call (memo of invalid UTF-8)", &memo("0xff"), Tier("INSTANT".into(), false));
    let batch = json!({"type": "BATCH", "instructions": [transfer(&listed, 1), spl(&mint, &other, 1)]});
    check_parity(&s, "batch: SOL and SPL in one transaction", &batch, tier("INSTANT"));
    check_parity(&s, "sol to an unlisted address", &transfer(&unlisted, 1), Denied("ADDRESS_NOT_WHITELISTED".into()));
    check_parity(&s, "spl to an unlisted address", &spl(&mint, &unlisted, 1), Denied("ADDRESS_NOT_WHITELISTED".into()));
    check_parity(&s, "unlisted mint", &spl(&other_mint, &listed, 1), Denied("TOKEN_NOT_ALLOWED".into()));
    let unlisted_program = json!({"type": "CONTRACT_CALL", "to": unlisted, "calldata": "0x01"});
    check_parity(&s, "unlisted program", &unlisted_program, Denied("CONTRACT_NOT_WHITELISTED".into()));
    check_parity(&s, "unlisted delegate", &approve(&listed, "5"), Denied("SPENDER_NOT_APPROVED".into()));
    let unlimited = approve(&other, &U256::MAX.to_string());
    check_parity(&s, "unlimited approval", &unlimited, Denied("UNLIMITED_APPROVAL".into()));
    let largest = approve(&other, &u64::MAX.to_string());
    check_parity(&s, "u64::MAX is unlimited on SPL", &largest, Denied("UNLIMITED_APPROVAL".into()));
    let spoofed = json!({"type": "TOKEN_TRANSFER", "to": listed, "amount": "1",
        "token": {"address": mint, "decimals": 9, "symbol": "TST"}});
    check_parity(&s, "claimed decimals differ from the mint's", &spoofed, Refused("VALIDATION_FAILED".into()));
    check_parity(&s, "an EVM address", &transfer(RECIPIENT, 1), Refused("VALIDATION_FAILED".into()));

    // Waiting work is reserved and counts toward the next request's tier.
    check_parity(&s, "delay lower", &transfer(&listed, 2_000_001), tier("DELAY"));
    check_parity(&s, "delay with 2000001 reserved", &transfer(&listed, 1), tier("DELAY"));
    admin.activate_kill_switch(None).unwrap();
    check_parity(&s, "kill switch on", &transfer(&listed, 1), Refused("SYSTEM_LOCKED".into()));
}
