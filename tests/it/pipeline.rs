//! Transaction pipeline acceptance against a real anvil node: native and ERC-20 transfers, approvals, every
//! SPENDING_LIMIT tier with DELAY and owner APPROVAL (a test clock moves time), denials that never reach the
//! chain, concurrency under a limit, reverts, a dead node, a restart with queued work, the kill switch and a
//! suspension stopping work that waits for a retry, the operator's cancel, and agent status changes racing.

use alloy_primitives::U256;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use serde_json::{Value, json};
use waiaas_client::Client;
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreatePolicy, CreateSession, ListParams, Transaction};
use waiaas_core::ports::Clock;

use crate::support::{
    Anvil, Daemon, DaemonOptions, EmbeddedDaemon, Fault, RpcProxy, api_error, eventually, fail_calldata, store_calldata,
};

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";
const OTHER: &str = "0x2222222222222222222222222222222222222222";
const ONE_ETH: u128 = 1_000_000_000_000_000_000;

/// An agent with a funded wallet and a session, on a daemon pointed at `anvil`.
struct Wallet {
    id: String,
    address: String,
    token: String,
    agent: Client,
}

fn wallet(admin: &Client, base: &Client, anvil: &Anvil) -> Wallet {
    let agent = admin.create_agent(&CreateAgent::ethereum("agent", "anvil")).expect("create agent");
    anvil.fund(&agent.address, 10 * ONE_ETH);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    Wallet { id: agent.id, address: agent.address, agent: base.clone().with_session_token(&token), token }
}

fn policy(admin: &Client, agent_id: Option<&str>, policy_type: &str, rules: Value) -> String {
    admin
        .create_policy(&CreatePolicy {
            agent_id: agent_id.map(str::to_owned),
            policy_type: policy_type.into(),
            rules,
            enabled: None,
        })
        .expect("create policy")
        .id
}

fn transfer(to: &str, amount: u128) -> Value {
    json!({"type": "TRANSFER", "to": to, "amount": amount.to_string()})
}

fn send(wallet: &Wallet, body: &Value) -> String {
    wallet.agent.send_transaction_raw(body).unwrap_or_else(|e| panic!("send {body}: {e:?}")).id
}

fn tx(wallet: &Wallet, id: &str) -> Transaction {
    wallet.agent.get_transaction(id).expect("get transaction")
}

/// Waits until the transaction reaches a final status and returns it.
fn settled(wallet: &Wallet, id: &str) -> Transaction {
    eventually(30, "a final status", || {
        let t = tx(wallet, id);
        matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t)
    })
}

/// Checks that `holds` stays true over many worker rounds (the embedded daemon's worker runs every 20 ms).
#[track_caller]
fn stays_for_a_while(holds: impl Fn() -> bool, failure: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
    while std::time::Instant::now() < until {
        assert!(holds(), "{failure}");
        std::thread::park_timeout(std::time::Duration::from_millis(10));
    }
}

fn spending_limit(admin: &Client, agent_id: &str) {
    policy(
        admin,
        Some(agent_id),
        "SPENDING_LIMIT",
        json!({"instant_max": "100", "notify_max": "200", "delay_max": "300", "delay_seconds": 60}),
    );
}

fn embedded_with(anvil: &Anvil) -> EmbeddedDaemon {
    EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str())])
}

#[test]
fn instant_native_transfer_confirms_and_moves_exactly_the_amount() {
    let anvil = Anvil::start();
    let daemon =
        Daemon::start_with(DaemonOptions { networks: vec![("anvil".into(), anvil.url.clone())], ..Default::default() });
    let w = wallet(&daemon.admin(), &daemon.client(), &anvil);
    let before = anvil.native_balance(RECIPIENT);
    let sent = w.agent.send_transaction_raw(&transfer(RECIPIENT, 12_345)).expect("send");
    assert!(matches!(sent.status.as_str(), "PENDING" | "EXECUTING" | "SUBMITTED" | "CONFIRMED"), "{}", sent.status);
    let done = settled(&w, &sent.id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(done.tier.as_deref(), Some("INSTANT"));
    assert!(done.tx_hash.as_deref().is_some_and(|h| h.starts_with("0x") && h.len() == 66));
    assert_eq!(anvil.native_balance(RECIPIENT) - before, U256::from(12_345u64));
    assert_eq!(anvil.nonce(&w.address), 1);

    let events: Vec<String> = daemon
        .admin()
        .audit_logs(&AuditLogFilter { tx_id: Some(sent.id.clone()), limit: Some(50), ..Default::default() })
        .unwrap()
        .data
        .into_iter()
        .map(|row| row.event_type)
        .collect();
    assert_eq!(events, ["TX_CONFIRMED", "TX_SUBMITTED", "TX_REQUESTED"], "newest first");
}

/// The worker follows a broadcast to its receipt on a short backoff instead of the next interval: with an interval
/// of a minute, each of ten sequential transfers still settles well inside the 20 s the test waits (before, each
/// waited for the next tick; and a backoff that kept doubling across transfers instead of starting over with new
/// work would reach the minute within ten). The chain effect is checked too: ten transfers, ten nonces.
#[test]
fn a_broadcast_is_followed_to_its_receipt_without_waiting_for_the_worker_interval() {
    let anvil = Anvil::start();
    let daemon = Daemon::start_with(DaemonOptions {
        networks: vec![("anvil".into(), anvil.url.clone())],
        extra_env: vec![("WAIAAS_PIPELINE_WORKER_INTERVAL_MS".into(), "60000".into())],
        ..Default::default()
    });
    let w = wallet(&daemon.admin(), &daemon.client(), &anvil);
    let before = anvil.native_balance(RECIPIENT);
    for n in 1..=10u64 {
        let id = send(&w, &transfer(RECIPIENT, 1_000));
        let done = eventually(20, "CONFIRMED without waiting a worker interval", || {
            let t = tx(&w, &id);
            (t.status != "PENDING" && t.status != "EXECUTING" && t.status != "SUBMITTED").then_some(t)
        });
        assert_eq!(done.status, "CONFIRMED", "{done:?}");
        assert_eq!(anvil.nonce(&w.address), n);
    }
    assert_eq!(anvil.native_balance(RECIPIENT) - before, U256::from(10_000u64));
}

#[test]
fn erc20_transfer_and_approve_reach_the_chain() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let w = wallet(&daemon.admin(), &daemon.client(), &anvil);
    let token = anvil.deploy_token(1_000_000_000);
    anvil.give_tokens(&token, &w.address, 5_000_000);
    let token_ref = json!({"address": token, "decimals": 6, "symbol": "TUSD"});
    // Token transfers and approvals are denied by default: the operator allows this token and this spender.
    policy(&daemon.admin(), Some(&w.id), "ALLOWED_TOKENS", json!({"tokens": [token]}));
    policy(&daemon.admin(), Some(&w.id), "APPROVED_SPENDERS", json!({"spenders": [OTHER]}));

    let id = send(&w, &json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "1250000", "token": token_ref}));
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
    assert_eq!(anvil.token_balance(&token, RECIPIENT), U256::from(1_250_000u64));
    assert_eq!(anvil.token_balance(&token, &w.address), U256::from(3_750_000u64));
    assert_eq!(w.agent.wallet_token_balance(&token).unwrap().balance, "3750000");

    let id = send(&w, &json!({"type": "APPROVE", "spender": OTHER, "amount": "777", "token": token_ref}));
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
    assert_eq!(anvil.allowance(&token, &w.address, OTHER), U256::from(777u64));

    // More than the agent holds: the simulation (from the agent's own address) reverts and nothing is sent.
    let nonce = anvil.nonce(&w.address);
    let id = send(&w, &json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "9999999999", "token": token_ref}));
    let failed = settled(&w, &id);
    assert_eq!(failed.status, "FAILED");
    assert!(failed.error.as_deref().unwrap_or_default().contains("exceeds balance"), "{failed:?}");
    assert_eq!(anvil.nonce(&w.address), nonce, "a failed simulation sends nothing");
}

/// A token that says `true` and moves nothing, on a node that cannot report a simulation's logs (the proxy
/// answers `eth_simulateV1` "method not found", so send cannot refuse it beforehand, as it does on anvil: see
/// `simulate::simulate_and_send_agree_on_a_token_that_moves_nothing`): the receipt has status 1 but no `Transfer`
/// (or `Approval`) log, so the row is FAILED with `EFFECT_NOT_OBSERVED`, not CONFIRMED — the agent is not told it
/// paid. A real token's transfer in the same daemon still confirms (its log is there).
#[test]
fn a_token_that_logs_no_transfer_is_failed_not_confirmed() {
    let anvil = Anvil::start();
    let proxy = RpcProxy::start(&anvil.url);
    proxy.set("eth_simulateV1", Fault::Unsupported);
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", proxy.url.as_str())]);
    let w = wallet(&daemon.admin(), &daemon.client(), &anvil);
    let silent = anvil.deploy_silent_token();
    let real = anvil.deploy_token(1_000_000_000);
    anvil.give_tokens(&real, &w.address, 5_000_000);
    policy(&daemon.admin(), Some(&w.id), "ALLOWED_TOKENS", json!({"tokens": [silent, real]}));
    policy(&daemon.admin(), Some(&w.id), "APPROVED_SPENDERS", json!({"spenders": [OTHER]}));
    let silent_ref = json!({"address": silent, "decimals": 6, "symbol": "SLNT"});

    for body in [
        json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "1250000", "token": silent_ref}),
        json!({"type": "APPROVE", "spender": OTHER, "amount": "777", "token": silent_ref}),
    ] {
        let nonce = anvil.nonce(&w.address);
        let id = send(&w, &body);
        let done = settled(&w, &id);
        assert_eq!(done.status, "FAILED", "{body}: {done:?}");
        assert!(done.error.as_deref().unwrap_or_default().contains("no log shows"), "{done:?}");
        assert_eq!(anvil.nonce(&w.address), nonce + 1, "it was sent and mined: the receipt alone said success");
        let failed = daemon
            .admin()
            .audit_logs(&AuditLogFilter {
                tx_id: Some(id.clone()),
                event_types: vec!["TX_FAILED".into()],
                ..Default::default()
            })
            .unwrap()
            .data;
        assert_eq!(failed[0].details["code"], "EFFECT_NOT_OBSERVED", "{:?}", failed[0].details);
    }

    let real_ref = json!({"address": real, "decimals": 6, "symbol": "TUSD"});
    let id = send(&w, &json!({"type": "TOKEN_TRANSFER", "to": RECIPIENT, "amount": "1000", "token": real_ref}));
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
    assert_eq!(anvil.token_balance(&real, RECIPIENT), U256::from(1_000u64));
}

#[test]
fn spending_limit_tiers_and_delay_execution_by_the_clock() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    spending_limit(&admin, &w.id);

    let tiers: Vec<(u128, &str)> =
        vec![(100, "INSTANT"), (101, "NOTIFY"), (200, "NOTIFY"), (201, "DELAY"), (300, "DELAY")];
    let mut delayed = Vec::new();
    for (amount, expected) in tiers {
        let id = send(&w, &transfer(RECIPIENT, amount));
        let t = tx(&w, &id);
        assert_eq!(t.tier.as_deref(), Some(expected), "amount {amount}: {t:?}");
        if expected == "DELAY" {
            assert_eq!(t.status, "QUEUED");
            delayed.push(id);
        } else {
            assert_eq!(settled(&w, &id).status, "CONFIRMED");
        }
    }
    // Above delay_max with no owner: APPROVAL is downgraded to DELAY.
    let id = send(&w, &transfer(RECIPIENT, 301));
    assert_eq!(tx(&w, &id).tier.as_deref(), Some("DELAY"));
    delayed.push(id);

    // Cancel one before it is due: never signed.
    let cancelled = delayed.remove(0);
    assert_eq!(w.agent.cancel_transaction(&cancelled).unwrap().status, "CANCELLED");
    let before = anvil.nonce(&w.address);
    daemon.advance(59);
    stays_for_a_while(|| delayed.iter().all(|id| tx(&w, id).status == "QUEUED"), "DELAY rows run before delay_seconds");
    daemon.advance(2);
    for id in &delayed {
        assert_eq!(settled(&w, id).status, "CONFIRMED");
    }
    assert_eq!(anvil.nonce(&w.address), before + delayed.len() as u64);
    assert_eq!(tx(&w, &cancelled).status, "CANCELLED");
    let (status, code, _) = api_error(w.agent.cancel_transaction(&delayed[0]));
    assert_eq!((status, code.as_str()), (409, "INVALID_STATE_TRANSITION"), "only DELAY-queued rows can be cancelled");
}

/// The owner signs `WAIaaS: <decision> transaction <id>` with a fresh nonce (EIP-191).
pub fn owner_decision(client: &Client, owner: &PrivateKeySigner, id: &str, approve: bool) -> (String, String) {
    let nonce = client.nonce().expect("nonce").nonce;
    let message = waiaas_client::approval_message(id, approve, &nonce);
    let signature = owner.sign_message_sync(message.as_bytes()).unwrap();
    (message, format!("0x{}", hex::encode(signature.as_bytes())))
}

#[test]
fn approval_tier_waits_for_the_owner_signature() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    spending_limit(&admin, &w.id);
    let owner = PrivateKeySigner::random();
    let owner_address = owner.address().to_checksum(None);
    admin.set_owner(&w.id, Some(&owner_address)).unwrap();
    let public = daemon.client();

    // Approved → executes.
    let id = send(&w, &transfer(RECIPIENT, 1_000));
    let t = tx(&w, &id);
    assert_eq!((t.tier.as_deref(), t.status.as_str()), (Some("APPROVAL"), "QUEUED"));
    let stranger = PrivateKeySigner::random();
    let (message, signature) = owner_decision(&public, &stranger, &id, true);
    let (status, _, _) =
        api_error(public.approve_transaction(&id, &stranger.address().to_checksum(None), &message, &signature));
    assert_eq!(status, 403, "only the agent's owner may approve");
    let (message, signature) = owner_decision(&public, &owner, &id, true);
    let (status, _, _) =
        api_error(public.approve_transaction(&id, &owner_address, &message, &format!("0x{}", "11".repeat(65))));
    assert_eq!(status, 401, "a bad signature is refused");
    public.approve_transaction(&id, &owner_address, &message, &signature).expect("approve");
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
    let (status, _, _) = api_error(public.approve_transaction(&id, &owner_address, &message, &signature));
    assert_eq!(status, 401, "a nonce is single-use");

    // Rejected → cancelled, never signed.
    let nonce = anvil.nonce(&w.address);
    let id = send(&w, &transfer(RECIPIENT, 1_000));
    let (message, signature) = owner_decision(&public, &owner, &id, true);
    let (status, _, _) = api_error(public.reject_transaction(&id, &owner_address, &message, &signature));
    assert_eq!(status, 401, "an approve signature cannot reject");
    let (message, signature) = owner_decision(&public, &owner, &id, false);
    assert_eq!(public.reject_transaction(&id, &owner_address, &message, &signature).unwrap().status, "CANCELLED");

    // Unanswered → expires after the approval timeout; a signature arriving later is refused.
    let id = send(&w, &transfer(RECIPIENT, 1_000));
    daemon.advance(3_601);
    let (message, signature) = owner_decision(&public, &owner, &id, true);
    let (status, code, _) = api_error(public.approve_transaction(&id, &owner_address, &message, &signature));
    assert_eq!((status, code.as_str()), (409, "INVALID_STATE_TRANSITION"), "too late to approve");
    assert_eq!(settled(&w, &id).status, "EXPIRED");
    assert_eq!(anvil.nonce(&w.address), nonce, "rejected and expired requests are never signed");
}

#[test]
fn denials_are_recorded_with_reason_codes_and_never_reach_the_chain() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    let contract = anvil.deploy_reverter();
    let whitelist = policy(&admin, Some(&w.id), "WHITELIST", json!({"allowed_addresses": [RECIPIENT]}));
    policy(&admin, Some(&w.id), "CONTRACT_WHITELIST", json!({"contracts": [OTHER]}));
    policy(&admin, Some(&w.id), "RATE_LIMIT", json!({"max_requests": 2, "window_seconds": 3600}));

    let cases = [
        (transfer(OTHER, 1), "ADDRESS_NOT_WHITELISTED"),
        (json!({"type": "CONTRACT_CALL", "to": contract, "calldata": store_calldata(1)}), "CONTRACT_NOT_WHITELISTED"),
    ];
    for (body, reason) in cases {
        let (status, code, details) = api_error(w.agent.send_transaction_raw(&body));
        assert_eq!((status, code.as_str()), (403, "POLICY_DENIED"), "{body}");
        let details = details.expect("denial details");
        assert_eq!(details["reasonCode"], reason);
        let id = details["transactionId"].as_str().expect("the denied request is recorded").to_owned();
        let row = tx(&w, &id);
        assert_eq!((row.status.as_str(), row.reason_code.as_deref()), ("CANCELLED", Some(reason)));
        if reason == "ADDRESS_NOT_WHITELISTED" {
            assert_eq!(details["matchedPolicyIds"], json!([whitelist]));
        }
    }
    // Two allowed requests use up the rate limit; denied ones above did not count.
    for _ in 0..2 {
        let id = send(&w, &transfer(RECIPIENT, 1));
        assert_eq!(settled(&w, &id).status, "CONFIRMED");
    }
    let (_, code, details) = api_error(w.agent.send_transaction_raw(&transfer(RECIPIENT, 1)));
    assert_eq!(
        (code.as_str(), details.unwrap()["reasonCode"].as_str()),
        ("POLICY_DENIED", Some("RATE_LIMIT_EXCEEDED"))
    );
    assert_eq!(anvil.nonce(&w.address), 2, "only the two allowed transfers reached the chain");
    let denied = admin
        .audit_logs(&AuditLogFilter {
            event_types: vec!["POLICY_DENIED".into()],
            agent_id: Some(w.id.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(denied.data.len(), 3);
}

/// A body that names a key twice is refused before anything is read from it: with `"amount":"1","amount":"<1 ETH>"`
/// a log or a proxy would see one amount and the daemon act on the other. Nothing is stored or audited.
#[test]
fn a_send_body_with_a_duplicated_key_is_refused_and_stores_nothing() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    let bearer = format!("Bearer {}", w.token);
    let post = |path: &str, body: &str| {
        let headers = [("authorization", bearer.as_str()), ("content-type", "application/json")];
        let (status, _, bytes) = w.agent.request_raw("POST", path, &headers, Some(body.as_bytes())).expect("transport");
        (status, serde_json::from_slice::<Value>(&bytes).expect("JSON answer"))
    };
    let requested = || {
        let filter = AuditLogFilter { event_types: vec!["TX_REQUESTED".into()], ..Default::default() };
        admin.audit_logs(&filter).expect("audit").data.len()
    };
    let duplicated = format!(r#"{{"type":"TRANSFER","to":"{RECIPIENT}","amount":"1","amount":"{ONE_ETH}"}}"#);
    for path in ["/v1/transactions/simulate", "/v1/transactions/send"] {
        let (status, error) = post(path, &duplicated);
        assert_eq!((status, error["code"].as_str()), (400, Some("VALIDATION_FAILED")), "{path}: {error}");
        let issues = json!([{"path": "amount", "message": "duplicate key: name each field once"}]);
        assert_eq!(error["details"]["issues"], issues, "{path}");
    }
    assert_eq!(w.agent.list_transactions(&ListParams::default()).expect("list").data.len(), 0, "a row was stored");
    assert_eq!(requested(), 0, "TX_REQUESTED was audited");

    // The same body naming the amount once is stored with that amount (so the checks above can fail).
    let (status, sent) =
        post("/v1/transactions/send", &format!(r#"{{"type":"TRANSFER","to":"{RECIPIENT}","amount":"1"}}"#));
    assert_eq!(status, 201, "{sent}");
    let stored = tx(&w, sent["id"].as_str().expect("id"));
    assert_eq!(stored.amount.as_deref(), Some("1"));
    assert_eq!(w.agent.list_transactions(&ListParams::default()).expect("list").data.len(), 1);
    assert_eq!(requested(), 1);
}

/// N concurrent sends against a cap that admits exactly K at INSTANT: exactly K are INSTANT and N − K NOTIFY,
/// whatever the interleaving. Each admission sees the reservations of every earlier one because none of them can
/// reach a final status (and release its hold) during the burst: the node mines nothing until the burst is over.
#[test]
fn concurrent_sends_cannot_all_slip_under_a_limit() {
    const N: usize = 12;
    /// 3 × 30 ≤ instant_max 100 < 4 × 30.
    const K: usize = 3;
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    policy(
        &admin,
        Some(&w.id),
        "SPENDING_LIMIT",
        json!({"instant_max": "100", "notify_max": "1000", "delay_max": "2000"}),
    );
    let before = anvil.native_balance(RECIPIENT);
    anvil.rpc("evm_setAutomine", json!([false]));
    let ids: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..N).map(|_| scope.spawn(|| send(&w, &transfer(RECIPIENT, 30)))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let tiers: Vec<Option<String>> = ids.iter().map(|id| tx(&w, id).tier).collect();
    let count = |tier: &str| tiers.iter().filter(|t| t.as_deref() == Some(tier)).count();
    assert_eq!((count("INSTANT"), count("NOTIFY")), (K, N - K), "{N} × 30 against instant_max 100: {tiers:?}");

    // Once the node mines again, every one of them goes through.
    anvil.rpc("evm_setAutomine", json!([true]));
    anvil.rpc("evm_mine", json!([]));
    for id in &ids {
        assert_eq!(settled(&w, id).status, "CONFIRMED");
    }
    assert_eq!(anvil.native_balance(RECIPIENT), before + U256::from(30 * N));
}

#[test]
fn a_reverting_call_fails_with_the_revert_reason() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let w = wallet(&daemon.admin(), &daemon.client(), &anvil);
    let contract = anvil.deploy_reverter();
    policy(&daemon.admin(), Some(&w.id), "CONTRACT_WHITELIST", json!({"contracts": [contract]}));
    let id = send(&w, &json!({"type": "CONTRACT_CALL", "to": contract, "calldata": fail_calldata()}));
    let failed = settled(&w, &id);
    assert_eq!(failed.status, "FAILED");
    assert!(failed.error.as_deref().unwrap_or_default().contains("always fails"), "{failed:?}");
    let id = send(&w, &json!({"type": "CONTRACT_CALL", "to": contract, "calldata": store_calldata(42), "value": "5"}));
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
}

#[test]
fn a_dead_node_is_retried_with_backoff_then_fails_cleanly() {
    let mut anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let w = wallet(&daemon.admin(), &daemon.client(), &anvil);
    anvil.stop();
    let id = send(&w, &transfer(RECIPIENT, 1));
    let attempts = |t: &Transaction| t.attempts.unwrap_or(0);
    eventually(30, "the first failed attempt", || (attempts(&tx(&w, &id)) >= 1).then_some(()));
    let t = tx(&w, &id);
    assert_eq!(t.status, "EXECUTING", "kept for a retry, not lost: {t:?}");
    stays_for_a_while(|| attempts(&tx(&w, &id)) == 1, "retried before the backoff passed");
    for _ in 0..5 {
        let seen = attempts(&tx(&w, &id));
        daemon.advance(20);
        eventually(30, "the next attempt", || {
            let t = tx(&w, &id);
            (attempts(&t) > seen || t.status == "FAILED").then_some(())
        });
    }
    let failed = settled(&w, &id);
    assert_eq!(failed.status, "FAILED");
    assert!(failed.error.as_deref().unwrap_or_default().contains("gave up"), "{failed:?}");
}

#[test]
fn a_node_that_comes_back_gets_the_retry_and_no_stale_error_remains() {
    let mut anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let w = wallet(&daemon.admin(), &daemon.client(), &anvil);
    let port = anvil.port();
    anvil.stop();
    let id = send(&w, &transfer(RECIPIENT, 7));
    let failed_once = eventually(30, "a failed attempt", || {
        let t = tx(&w, &id);
        (t.attempts.unwrap_or(0) >= 1).then_some(t)
    });
    assert!(failed_once.error.is_some(), "the transient error is visible while it retries: {failed_once:?}");
    let anvil = Anvil::start_on(port);
    anvil.fund(&w.address, ONE_ETH);
    daemon.advance(3);
    let done = settled(&w, &id);
    assert_eq!((done.status.as_str(), done.error.as_deref()), ("CONFIRMED", None), "{done:?}");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(7u64));
}

#[test]
fn queued_work_survives_a_restart() {
    let anvil = Anvil::start();
    let mut daemon =
        Daemon::start_with(DaemonOptions { networks: vec![("anvil".into(), anvil.url.clone())], ..Default::default() });
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    policy(
        &admin,
        Some(&w.id),
        "SPENDING_LIMIT",
        json!({"instant_max": "0", "notify_max": "0", "delay_max": "1000", "delay_seconds": 1}),
    );
    let id = send(&w, &transfer(RECIPIENT, 500));
    assert_eq!(tx(&w, &id).status, "QUEUED");
    daemon.restart();
    let w = Wallet { agent: Client::new(&daemon.url).with_session_token(&w.token), ..w };
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(500u64));
}

#[test]
fn kill_switch_cancels_waiting_work_before_it_is_signed() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    spending_limit(&admin, &w.id);
    let id = send(&w, &transfer(RECIPIENT, 250));
    assert_eq!(tx(&w, &id).status, "QUEUED");
    let switch = admin.activate_kill_switch(Some("test")).unwrap();
    assert_eq!(switch.effects.unwrap().transactions_cancelled, 1);
    daemon.advance(120);
    admin.recover().unwrap();
    admin.resume_agent(&w.id).unwrap();
    let fresh = admin.create_session(&CreateSession::for_agent(&w.id)).unwrap().token;
    let w = Wallet { agent: daemon.client().with_session_token(fresh), ..w };
    assert_eq!(tx(&w, &id).status, "CANCELLED");
    assert_eq!(anvil.nonce(&w.address), 0, "never signed");
    let rows = admin
        .audit_logs(&AuditLogFilter { event_types: vec!["KILL_SWITCH_ACTIVATED".into()], ..Default::default() })
        .unwrap();
    assert_eq!(rows.data[0].details["effects"]["transactionsCancelled"], 1, "the audit row records the effects");
    let cancelled = admin.audit_logs(&AuditLogFilter { tx_id: Some(id.clone()), ..Default::default() }).unwrap();
    let kinds: Vec<&str> = cancelled.data.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(kinds, ["TX_CANCELLED", "TX_QUEUED", "TX_REQUESTED"], "the cancellation is recorded per transaction");
    assert_eq!(cancelled.data[0].details["by"], "kill_switch");
}

#[test]
fn a_taken_nonce_is_rebuilt_with_a_fresh_one() {
    let anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    anvil.rpc("evm_setAutomine", json!([false]));
    let id = send(&w, &transfer(RECIPIENT, 4_000));
    eventually(30, "the transfer to be submitted", || (tx(&w, &id).status == "SUBMITTED").then_some(()));
    let first_hash = tx(&w, &id).tx_hash.expect("hash");

    // Someone else holding the key (impersonated here) replaces it in the pool with a pricier transaction that
    // uses the same nonce, and that one is mined.
    anvil.rpc("anvil_impersonateAccount", json!([w.address]));
    anvil.rpc(
        "eth_sendTransaction",
        json!([{"from": w.address, "to": OTHER, "value": "0x1", "nonce": "0x0",
                "maxFeePerGas": "0x2540be4000", "maxPriorityFeePerGas": "0x174876e800"}]),
    );
    anvil.rpc("evm_mine", json!([]));
    anvil.rpc("evm_setAutomine", json!([true]));

    // A (re)broadcast that met the replacement in the pool is refused as underpriced and parked until its retry
    // time on the daemon's clock: the test moves the clock there, as time would.
    let done = eventually(30, "a final status", || {
        let t = tx(&w, &id);
        let parked_for = t.execute_after.map_or(0, |after| after - daemon.clock.now().0);
        if parked_for > 0 {
            daemon.advance(parked_for);
        }
        matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t)
    });
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_ne!(done.tx_hash.as_deref(), Some(first_hash.as_str()), "rebuilt as a new transaction");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(4_000u64));
    assert_eq!(anvil.nonce(&w.address), 2);
    let submitted = admin
        .audit_logs(&AuditLogFilter { tx_id: Some(id), event_types: vec!["TX_SUBMITTED".into()], ..Default::default() })
        .unwrap();
    assert_eq!(submitted.data.len(), 2, "both submissions are on record");
}

/// What stops an agent's work while one of its transfers waits in EXECUTING for a retry.
#[derive(Clone, Copy, Debug)]
enum Stop {
    KillSwitch,
    Suspension,
}

/// A transfer waits in EXECUTING for its retry (its node is down) when `stop` happens: the row ends CANCELLED
/// in that same write, one TX_CANCELLED records it, and once the node is back, the switch recovered and the
/// agent resumed, nothing of it is ever broadcast (the recipient's balance and the account nonce stay), while
/// new work confirms.
fn unsigned_work_waiting_for_a_retry_is_cancelled_by(stop: Stop) {
    let mut anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    let port = anvil.port();
    anvil.stop();
    let id = send(&w, &transfer(RECIPIENT, 7));
    let waiting = eventually(30, "a failed attempt", || {
        let t = tx(&w, &id);
        (t.attempts.unwrap_or(0) >= 1).then_some(t)
    });
    assert_eq!(waiting.status, "EXECUTING", "waiting for its retry: {waiting:?}");

    let (by, error) = match stop {
        Stop::KillSwitch => {
            let switch = admin.activate_kill_switch(Some("test")).unwrap();
            assert_eq!(switch.effects.unwrap().transactions_cancelled, 1, "the EXECUTING row counts");
            ("kill_switch", "kill switch activated")
        }
        Stop::Suspension => {
            admin.suspend_agent(&w.id).unwrap();
            ("agent_suspended", "agent suspended")
        }
    };
    let cancelled = admin.audit_logs(&AuditLogFilter { tx_id: Some(id.clone()), ..Default::default() }).unwrap();
    let kinds: Vec<&str> = cancelled.data.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(kinds, ["TX_CANCELLED", "TX_REQUESTED"], "one TX_CANCELLED, written with the {stop:?}");
    assert_eq!(cancelled.data[0].details["by"], by);

    let anvil = Anvil::start_on(port);
    anvil.fund(&w.address, ONE_ETH);
    if let Stop::KillSwitch = stop {
        admin.recover().unwrap();
    }
    admin.resume_agent(&w.id).unwrap();
    let fresh = admin.create_session(&CreateSession::for_agent(&w.id)).unwrap().token;
    let w = Wallet { agent: daemon.client().with_session_token(fresh), ..w };
    let row = tx(&w, &id);
    assert_eq!((row.status.as_str(), row.error.as_deref()), ("CANCELLED", Some(error)), "{row:?}");
    for _ in 0..3 {
        daemon.advance(60);
        stays_for_a_while(
            || tx(&w, &id).status == "CANCELLED" && anvil.nonce(&w.address) == 0,
            "the cancelled transfer was signed after all",
        );
    }
    let next = send(&w, &transfer(RECIPIENT, 11));
    assert_eq!(settled(&w, &next).status, "CONFIRMED", "the worker runs");
    assert_eq!(anvil.native_balance(RECIPIENT), U256::from(11u64), "only the new transfer arrived");
    assert_eq!(anvil.nonce(&w.address), 1);
}

#[test]
fn kill_switch_during_a_retry_backoff_cancels_the_row_and_nothing_is_broadcast_after_recovery() {
    unsigned_work_waiting_for_a_retry_is_cancelled_by(Stop::KillSwitch);
}

#[test]
fn suspending_the_agent_during_a_retry_backoff_cancels_the_row() {
    unsigned_work_waiting_for_a_retry_is_cancelled_by(Stop::Suspension);
}

#[test]
fn the_operator_cancels_any_unsigned_transaction_and_the_agent_only_queued_ones() {
    let mut anvil = Anvil::start();
    let daemon = embedded_with(&anvil);
    let admin = daemon.admin();
    let w = wallet(&admin, &daemon.client(), &anvil);
    spending_limit(&admin, &w.id);
    let owner = PrivateKeySigner::random();
    admin.set_owner(&w.id, Some(&owner.address().to_checksum(None))).unwrap();

    // Signed and final: refused.
    let confirmed = send(&w, &transfer(RECIPIENT, 100));
    assert_eq!(settled(&w, &confirmed).status, "CONFIRMED");
    let (status, code, _) = api_error(admin.admin_cancel_transaction(&confirmed));
    assert_eq!((status, code.as_str()), (409, "INVALID_STATE_TRANSITION"));
    let unknown = "01900000-0000-7000-8000-000000000042";
    let (status, code, _) = api_error(admin.admin_cancel_transaction(unknown));
    assert_eq!((status, code.as_str()), (404, "TX_NOT_FOUND"));
    let (status, _, _) = api_error(daemon.client().admin_cancel_transaction(&confirmed));
    assert_eq!(status, 401, "the master password is required");

    // QUEUED for its delay: the operator cancels it, on record as the operator.
    let delayed = send(&w, &transfer(RECIPIENT, 250));
    assert_eq!(tx(&w, &delayed).status, "QUEUED");
    let cancelled = admin.admin_cancel_transaction(&delayed).unwrap();
    assert_eq!((cancelled.status.as_str(), cancelled.id.as_str()), ("CANCELLED", delayed.as_str()));
    let rows = admin
        .audit_logs(&AuditLogFilter {
            tx_id: Some(delayed.clone()),
            event_types: vec!["TX_CANCELLED".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.data.len(), 1);
    assert_eq!((rows.data[0].actor.as_str(), &rows.data[0].details["by"]), ("master", &json!("operator")));

    // QUEUED for the owner's approval: the agent may cancel it itself.
    let awaiting = send(&w, &transfer(RECIPIENT, 1_000));
    assert_eq!(tx(&w, &awaiting).tier.as_deref(), Some("APPROVAL"));
    assert_eq!(w.agent.cancel_transaction(&awaiting).unwrap().status, "CANCELLED");

    // EXECUTING, waiting for a retry: not the agent's to cancel, the operator's.
    let port = anvil.port();
    anvil.stop();
    let executing = send(&w, &transfer(RECIPIENT, 5));
    eventually(30, "a failed attempt", || (tx(&w, &executing).attempts.unwrap_or(0) >= 1).then_some(()));
    let (status, code, _) = api_error(w.agent.cancel_transaction(&executing));
    assert_eq!((status, code.as_str()), (409, "INVALID_STATE_TRANSITION"), "the agent cannot cancel EXECUTING");
    assert_eq!(admin.admin_cancel_transaction(&executing).unwrap().status, "CANCELLED");
    let (status, _, _) = api_error(admin.admin_cancel_transaction(&executing));
    assert_eq!(status, 409, "cancelled is final");

    let anvil = Anvil::start_on(port);
    anvil.fund(&w.address, ONE_ETH);
    daemon.advance(60);
    stays_for_a_while(
        || tx(&w, &executing).status == "CANCELLED" && anvil.nonce(&w.address) == 0,
        "the cancelled transfer was signed after all",
    );
    daemon.advance(120);
    for id in [&delayed, &awaiting, &executing] {
        assert_eq!(tx(&w, id).status, "CANCELLED");
    }
    assert_eq!(anvil.native_balance(RECIPIENT), U256::ZERO, "nothing cancelled reached the new node");
}

#[test]
fn a_resume_racing_a_terminate_never_revives_the_agent() {
    // No chain is contacted: creating, suspending, resuming and terminating agents only needs a configured network.
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9")]);
    let admin = daemon.admin();
    let agents: Vec<String> = (0..16)
        .map(|i| {
            let agent = admin.create_agent(&CreateAgent::ethereum(format!("racer {i}"), "anvil")).unwrap();
            admin.suspend_agent(&agent.id).unwrap();
            agent.id
        })
        .collect();
    // Whether a status change went through; the one that lost the race is a 409.
    let went_through = |result: waiaas_client::Result<waiaas_client::types::Agent>| match result {
        Ok(_) => true,
        Err(error) => {
            let (status, code, _) = api_error::<()>(Err(error));
            assert_eq!((status, code.as_str()), (409, "INVALID_STATE_TRANSITION"));
            false
        }
    };
    let outcomes: Vec<(bool, bool)> = std::thread::scope(|scope| {
        let races: Vec<_> = agents
            .iter()
            .map(|id| {
                let start = std::sync::Arc::new(std::sync::Barrier::new(2));
                let (go_resume, go_terminate) = (start.clone(), start);
                let (resumer, terminator) = (admin.clone(), admin.clone());
                let resume = scope.spawn(move || {
                    go_resume.wait();
                    went_through(resumer.resume_agent(id))
                });
                let terminate = scope.spawn(move || {
                    go_terminate.wait();
                    went_through(terminator.terminate_agent(id))
                });
                (resume, terminate)
            })
            .collect();
        races.into_iter().map(|(resume, terminate)| (resume.join().unwrap(), terminate.join().unwrap())).collect()
    });
    for (id, (resumed, terminated)) in agents.iter().zip(outcomes) {
        let status = admin.get_agent(id).unwrap().status;
        if terminated {
            assert_eq!(status, "TERMINATED", "a terminated agent stays terminated (resume went through: {resumed})");
        } else {
            assert!(resumed, "one of the two goes through");
            assert_eq!(status, "ACTIVE");
        }
        let rows = admin
            .audit_logs(&AuditLogFilter {
                agent_id: Some(id.clone()),
                event_types: vec!["AGENT_RESUMED".into(), "AGENT_TERMINATED".into()],
                ..Default::default()
            })
            .unwrap();
        let newest_first: Vec<&str> = rows.data.iter().map(|r| r.event_type.as_str()).collect();
        assert!(newest_first.iter().filter(|e| **e == "AGENT_TERMINATED").count() <= 1, "{newest_first:?}");
        if let Some(at) = newest_first.iter().position(|e| *e == "AGENT_TERMINATED") {
            assert!(!newest_first[..at].contains(&"AGENT_RESUMED"), "resumed after terminated: {newest_first:?}");
        }
    }
}
