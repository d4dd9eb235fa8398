//! Policy soundness against a real anvil, tried as an attacker would: each bypass the engine once allowed is a
//! named test that sends through the HTTP API and checks on chain (`eth_getBalance`, `balanceOf`, `allowance`,
//! the agent's nonce) that no value moved. Judged by what a transaction does, never by its `type` label.

use alloy_primitives::U256;
use serde_json::{Value, json};
use waiaas_client::types::{CreateAgent, CreatePolicy, CreateSession, Transaction};

use crate::support::{
    Anvil, EmbeddedDaemon, FundedAgent, ONE_ETH, api_error, approve_calldata, eventually, transfer_calldata,
};

const LISTED: &str = "0x1111111111111111111111111111111111111111";
const UNLISTED: &str = "0x3333333333333333333333333333333333333333";
/// A funded agent and a test token it holds.
struct Setup {
    wallet: FundedAgent,
    token: String,
}

impl std::ops::Deref for Setup {
    type Target = FundedAgent;
    fn deref(&self) -> &FundedAgent {
        &self.wallet
    }
}

/// A funded agent holding 100 TUSD of a freshly deployed test token, priced at $1 by network + address.
fn setup() -> Setup {
    let anvil = Anvil::start();
    let token = anvil.deploy_token(1_000_000_000_000);
    let price_key = format!("WAIAAS_ORACLE_TOKEN_ANVIL_{}", token.to_uppercase());
    let wallet = FundedAgent::start(anvil, &[("WAIAAS_ORACLE_USD_ETH", "3000"), (price_key.as_str(), "1")], "policy");
    wallet.anvil.give_tokens(&token, &wallet.address, 100_000_000);
    Setup { wallet, token }
}

fn policy(s: &Setup, policy_type: &str, rules: Value) -> String {
    s.wallet.policy(policy_type, rules)
}

fn settled(s: &Setup, id: &str) -> Transaction {
    s.wallet.settled(id)
}

/// Sends `body`, expects `403 POLICY_DENIED` with `reason`, and that simulate predicted the same denial.
#[track_caller]
fn denied(s: &Setup, body: &Value, reason: &str) {
    let predicted = s.agent.simulate(body).unwrap();
    assert_eq!(predicted.policy.reason_code.as_deref(), Some(reason), "simulate: {body}");
    assert!(!predicted.success);
    let (status, code, details) = api_error(s.agent.send_transaction_raw(body));
    assert_eq!((status, code.as_str()), (403, "POLICY_DENIED"), "send: {body}");
    assert_eq!(details.unwrap()["reasonCode"], reason);
}

fn token_ref(s: &Setup, decimals: u8) -> Value {
    json!({"address": s.token, "decimals": decimals, "symbol": "TUSD"})
}

#[test]
fn contract_call_with_value_to_an_unlisted_eoa_is_denied_and_no_eth_moves() {
    let s = setup();
    policy(&s, "WHITELIST", json!({"allowed_addresses": [LISTED]}));
    let before = s.anvil.native_balance(UNLISTED);
    // Empty calldata: a native transfer whatever the label, so WHITELIST judges it (no CONTRACT_WHITELIST needed).
    let body = json!({"type": "CONTRACT_CALL", "to": UNLISTED, "calldata": "0x", "value": ONE_ETH.to_string()});
    denied(&s, &body, "ADDRESS_NOT_WHITELISTED");
    // Value on a call with calldata goes to `to` too.
    policy(&s, "CONTRACT_WHITELIST", json!({"contracts": [UNLISTED]}));
    let with_data = json!({"type": "CONTRACT_CALL", "to": UNLISTED, "calldata": "0xdeadbeef", "value": "1"});
    denied(&s, &with_data, "ADDRESS_NOT_WHITELISTED");
    assert_eq!(s.anvil.native_balance(UNLISTED), before, "no wei reached the unlisted address");
    assert_eq!(s.anvil.nonce(&s.address), 0, "nothing was signed");

    let allowed = json!({"type": "CONTRACT_CALL", "to": LISTED, "calldata": "0x", "value": "777"});
    let sent = s.agent.send_transaction_raw(&allowed).unwrap();
    assert_eq!(settled(&s, &sent.id).status, "CONFIRMED");
    assert_eq!(s.anvil.native_balance(LISTED), U256::from(777u64));
}

#[test]
fn erc20_transfer_calldata_is_judged_as_the_token_transfer_it_is() {
    let s = setup();
    let to_unlisted =
        json!({"type": "CONTRACT_CALL", "to": s.token, "calldata": transfer_calldata(UNLISTED, 1_000_000)});
    // Default deny: no CONTRACT_WHITELIST in force.
    denied(&s, &to_unlisted, "CONTRACT_NOT_WHITELISTED");
    policy(&s, "CONTRACT_WHITELIST", json!({"contracts": [s.token]}));
    // Still a token transfer: ALLOWED_TOKENS (default deny), then WHITELIST on the recipient in the calldata.
    denied(&s, &to_unlisted, "TOKEN_NOT_ALLOWED");
    policy(&s, "ALLOWED_TOKENS", json!({"tokens": [s.token]}));
    policy(&s, "WHITELIST", json!({"allowed_addresses": [LISTED]}));
    denied(&s, &to_unlisted, "ADDRESS_NOT_WHITELISTED");
    assert_eq!(s.anvil.token_balance(&s.token, UNLISTED), U256::ZERO, "no token moved");

    // A spending threshold on the token applies to the calldata form as well.
    policy(
        &s,
        "SPENDING_LIMIT",
        json!({"instant_max": "0", "notify_max": "0", "delay_max": "0",
               "token_limits": {s.token.clone(): {"instant_max": "2000000", "notify_max": "3000000", "delay_max": "4000000"}}}),
    );
    let small = json!({"type": "CONTRACT_CALL", "to": s.token, "calldata": transfer_calldata(LISTED, 1_000_000)});
    let sent = s.agent.send_transaction_raw(&small).unwrap();
    let done = settled(&s, &sent.id);
    assert_eq!((done.status.as_str(), done.tier.as_deref()), ("CONFIRMED", Some("INSTANT")));
    assert_eq!(s.anvil.token_balance(&s.token, LISTED), U256::from(1_000_000u64));
    let large = json!({"type": "CONTRACT_CALL", "to": s.token, "calldata": transfer_calldata(LISTED, 3_500_000)});
    let sent = s.agent.send_transaction_raw(&large).unwrap();
    assert_eq!(s.agent.get_transaction(&sent.id).unwrap().tier.as_deref(), Some("DELAY"));
}

#[test]
fn approve_calldata_needs_an_approved_spender_and_unlimited_needs_permission() {
    let s = setup();
    policy(&s, "CONTRACT_WHITELIST", json!({"contracts": [s.token]}));
    policy(&s, "ALLOWED_TOKENS", json!({"tokens": [s.token]}));
    let approve = |spender: &str, amount: U256| json!({"type": "CONTRACT_CALL", "to": s.token, "calldata": approve_calldata(spender, amount)});
    denied(&s, &approve(UNLISTED, U256::from(5u8)), "SPENDER_NOT_APPROVED");
    policy(&s, "APPROVED_SPENDERS", json!({"spenders": [LISTED]}));
    denied(&s, &approve(UNLISTED, U256::from(5u8)), "SPENDER_NOT_APPROVED");
    denied(&s, &approve(LISTED, U256::MAX), "UNLIMITED_APPROVAL");
    let typed =
        json!({"type": "APPROVE", "spender": LISTED, "amount": U256::MAX.to_string(), "token": token_ref(&s, 6)});
    denied(&s, &typed, "UNLIMITED_APPROVAL");
    assert_eq!(s.anvil.allowance(&s.token, &s.address, UNLISTED), U256::ZERO);
    assert_eq!(s.anvil.allowance(&s.token, &s.address, LISTED), U256::ZERO);
    assert_eq!(s.anvil.nonce(&s.address), 0, "nothing was signed");
}

#[test]
fn claimed_token_decimals_cannot_lower_the_tier() {
    let s = setup();
    policy(&s, "ALLOWED_TOKENS", json!({"tokens": [s.token]}));
    policy(
        &s,
        "SPENDING_LIMIT",
        json!({"instant_max": "1000000000000000000000", "notify_max": "1000000000000000000000",
               "delay_max": "1000000000000000000000", "instant_max_usd": 10.0, "notify_max_usd": 100.0,
               "daily_limit_usd": 1000.0, "delay_seconds": 60}),
    );
    // 4,000,000 units are 4 TUSD ($4) with the 6 decimals the chain reports; a claim of 36 decimals would make a
    // transfer of any size worth ≈ $0. The claim is refused, naming the field.
    let spoof = json!({"type": "TOKEN_TRANSFER", "to": LISTED, "amount": "4000000", "token": token_ref(&s, 36)});
    let (status, code, details) = api_error(s.agent.simulate(&spoof));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"));
    assert!(details.unwrap().to_string().contains("token.decimals"), "the field is named");
    let (status, code, _) = api_error(s.agent.send_transaction_raw(&spoof));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"));
    let wrong_symbol = json!({"type": "TOKEN_TRANSFER", "to": LISTED, "amount": "1", "token":
        {"address": s.token, "decimals": 6, "symbol": "USDC"}});
    let (_, _, details) = api_error(s.agent.send_transaction_raw(&wrong_symbol));
    assert!(details.unwrap().to_string().contains("token.symbol"));
    let not_a_token = json!({"type": "TOKEN_TRANSFER", "to": LISTED, "amount": "1", "token":
        {"address": UNLISTED, "decimals": 6, "symbol": "TUSD"}});
    let (status, _, details) = api_error(s.agent.send_transaction_raw(&not_a_token));
    assert_eq!(status, 400);
    assert!(details.unwrap().to_string().contains("token.address"));
    assert!(s.agent.list_transactions(&Default::default()).unwrap().data.is_empty(), "nothing was stored");

    // With the true decimals, 50 TUSD is $50: above the $10 instant maximum, so NOTIFY — priced by address.
    let honest = json!({"type": "TOKEN_TRANSFER", "to": LISTED, "amount": "50000000", "token": token_ref(&s, 6)});
    let sent = s.agent.send_transaction_raw(&honest).unwrap();
    let done = settled(&s, &sent.id);
    assert_eq!((done.status.as_str(), done.tier.as_deref()), ("CONFIRMED", Some("NOTIFY")));
    assert_eq!(s.anvil.token_balance(&s.token, LISTED), U256::from(50_000_000u64));
}

#[test]
fn delay_queued_transfer_is_cancelled_when_a_new_whitelist_excludes_its_recipient() {
    let s = setup();
    policy(
        &s,
        "SPENDING_LIMIT",
        json!({"instant_max": "0", "notify_max": "0", "delay_max": "1000000", "delay_seconds": 60}),
    );
    let sent = s.agent.send_transaction_raw(&json!({"type": "TRANSFER", "to": UNLISTED, "amount": "5000"})).unwrap();
    assert_eq!(sent.status, "QUEUED");
    // During the delay the operator restricts recipients.
    policy(&s, "WHITELIST", json!({"allowed_addresses": [LISTED]}));
    s.daemon.advance(61);
    let done = settled(&s, &sent.id);
    assert_eq!(done.status, "CANCELLED", "{done:?}");
    assert_eq!(done.reason_code.as_deref(), Some("ADDRESS_NOT_WHITELISTED"));
    assert_eq!(s.anvil.native_balance(UNLISTED), U256::ZERO, "nothing was sent");
    assert_eq!(s.anvil.nonce(&s.address), 0);
}

#[test]
fn max_amount_per_tx_constraint_denies_above_it_in_send_and_simulate() {
    let s = setup();
    let admin = s.daemon.admin();
    let with =
        |constraints: Value| CreateSession { constraints: Some(constraints), ..CreateSession::for_agent(&s.agent_id) };
    let (status, code, details) = api_error(admin.create_session(&with(json!({"maxAmount": "1000"}))));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"), "unknown keys are refused");
    assert!(details.unwrap().to_string().contains("maxAmount"));

    let capped_session = with(json!({"maxAmountPerTx": {"native": "1000"}, "allowedNetworks": ["anvil"]}));
    let token = admin.create_session(&capped_session).unwrap().token;
    let capped = s.daemon.client().with_session_token(&token);
    let over = json!({"type": "TRANSFER", "to": LISTED, "amount": "1001"});
    let predicted = capped.simulate(&over).unwrap();
    assert_eq!(predicted.policy.reason_code.as_deref(), Some("SESSION_AMOUNT_EXCEEDED"));
    let (status, _, details) = api_error(capped.send_transaction_raw(&over));
    assert_eq!(status, 403);
    assert_eq!(details.unwrap()["reasonCode"], "SESSION_AMOUNT_EXCEEDED");
    // The label does not matter: the same value as a CONTRACT_CALL is capped the same way.
    let as_call = json!({"type": "CONTRACT_CALL", "to": LISTED, "calldata": "0x", "value": "1001"});
    assert_eq!(api_error(capped.send_transaction_raw(&as_call)).0, 403);
    assert_eq!(s.anvil.native_balance(LISTED), U256::ZERO);

    let at_cap = capped.send_transaction_raw(&json!({"type": "TRANSFER", "to": LISTED, "amount": "1000"})).unwrap();
    assert!(capped.simulate(&json!({"type": "TRANSFER", "to": LISTED, "amount": "1000"})).unwrap().policy.allowed);
    let done = eventually(30, "confirmed", || {
        let t = capped.get_transaction(&at_cap.id).unwrap();
        (t.status == "CONFIRMED").then_some(t)
    });
    assert_eq!(done.tier.as_deref(), Some("INSTANT"));
    assert_eq!(s.anvil.native_balance(LISTED), U256::from(1000u64));
}

/// The native coin comes from the chain: a network whose node reports chain id 137 (Polygon) moves POL, shows POL
/// in the balance and the dry-run, and is valued at POL's price for USD thresholds.
#[test]
fn a_polygon_network_moves_and_values_pol() {
    let anvil = Anvil::with_chain_id(137);
    let daemon = EmbeddedDaemon::start(&[
        ("WAIAAS_RPC_EVM_POLYGON", anvil.url.as_str()),
        ("WAIAAS_ORACLE_USD_ETH", "3000"),
        ("WAIAAS_ORACLE_USD_POL", "0.5"),
    ]);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("polygon", "polygon")).unwrap();
    anvil.fund(&agent.address, 10 * ONE_ETH);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).unwrap().token;
    let client = daemon.client().with_session_token(&token);

    let balance = client.wallet_balance().unwrap();
    assert_eq!((balance.symbol.as_str(), balance.decimals), ("POL", 18));
    // $10 instant maximum: 2 POL ($1) is INSTANT; valued as ETH ($6000) it would not be.
    let create = CreatePolicy {
        agent_id: Some(agent.id.clone()),
        policy_type: "SPENDING_LIMIT".into(),
        rules: json!({"instant_max": "100000000000000000000", "notify_max": "100000000000000000000",
                      "delay_max": "100000000000000000000", "instant_max_usd": 10.0}),
        enabled: None,
    };
    admin.create_policy(&create).unwrap();
    let body = json!({"type": "TRANSFER", "to": LISTED, "amount": (2 * ONE_ETH).to_string()});
    let simulated = client.simulate(&body).unwrap();
    assert_eq!(simulated.policy.tier, "INSTANT");
    assert_eq!(simulated.fee.fee_symbol, "POL");
    assert_eq!(simulated.balance_changes[0].symbol, "POL");
    let fee: u128 = simulated.fee.estimated_fee.parse().unwrap();
    let fee_usd = simulated.fee.fee_usd.expect("priced");
    assert!((fee_usd - fee as f64 / 1e18 * 0.5).abs() < 1e-9, "the fee is valued at POL's price: {fee_usd}");
    let sent = client.send_transaction_raw(&body).unwrap();
    let done = eventually(30, "confirmed", || {
        let t = client.get_transaction(&sent.id).unwrap();
        (t.status == "CONFIRMED").then_some(t)
    });
    assert_eq!(done.tier.as_deref(), Some("INSTANT"));
    assert_eq!(anvil.native_balance(LISTED), U256::from(2 * ONE_ETH));
    // 30 POL ($15) passes the USD instant maximum.
    let larger = json!({"type": "TRANSFER", "to": LISTED, "amount": (30 * ONE_ETH).to_string()});
    assert_eq!(client.simulate(&larger).unwrap().policy.tier, "NOTIFY");
}
