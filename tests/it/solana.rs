//! Solana acceptance (issue 18) through the HTTP API of the real daemon on a real Solana runtime (the helper
//! `tools/solana-node`, an embedded Surfnet started per test on a free loopback port), checking balances on chain:
//! a Solana agent funded by airdrop, SOL and SPL transfers (the recipient's token account created), SPL approve,
//! SPENDING_LIMIT tiers by lamports and USD, WHITELIST / ALLOWED_TOKENS / CONTRACT_WHITELIST denials that move
//! nothing, simulate (T-01/T-02/T-03 for Solana), a blockhash that expires while the request waits in DELAY or
//! after it was signed (rebuilt and signed again), the kill switch during a DELAY, an APPROVAL its Solana owner
//! signs with ed25519, and a backup restored onto a fresh data dir whose Solana key still signs.

use serde_json::{Value, json};
use waiaas_client::Client;
use waiaas_client::types::{AuditLogFilter, CreateAgent, CreatePolicy, CreateSession, Transaction};

use crate::support::{
    Daemon, DaemonOptions, EmbeddedDaemon, Fault, MASTER_PASSWORD, RpcProxy, SolanaNode, api_error, eventually,
    fresh_address, run_cli,
};

const ONE_SOL: u64 = 1_000_000_000;
/// The SPL Memo program: a real program every Solana runtime has, callable with no accounts.
const MEMO_PROGRAM: &str = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr";

struct Wallet {
    id: String,
    address: String,
    agent: Client,
}

fn daemon(node: &SolanaNode, extra: &[(&str, &str)]) -> EmbeddedDaemon {
    let mut settings = vec![("WAIAAS_RPC_SOLANA_LOCAL", node.url.as_str())];
    settings.extend_from_slice(extra);
    EmbeddedDaemon::start(&settings)
}

fn wallet(daemon: &EmbeddedDaemon, node: &SolanaNode, lamports: u64) -> Wallet {
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::solana("sol-agent", "local")).expect("create a Solana agent");
    assert_eq!(agent.chain, "solana");
    assert!(!agent.address.starts_with("0x") && bs58::decode(&agent.address).into_vec().unwrap().len() == 32);
    node.airdrop(&agent.address, lamports);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    Wallet { id: agent.id, address: agent.address, agent: daemon.client().with_session_token(&token) }
}

/// A Solana agent holding `lamports` and 1,000,000 units of a fresh 6-decimal mint, with two fresh addresses (one
/// to list in a policy, one to leave out). Bind every field: an unbound node or daemon would stop at once.
struct Minted {
    node: SolanaNode,
    daemon: EmbeddedDaemon,
    w: Wallet,
    mint: String,
    listed: String,
    unlisted: String,
}

fn minted(lamports: u64) -> Minted {
    let node = SolanaNode::start();
    let daemon = daemon(&node, &[]);
    let w = wallet(&daemon, &node, lamports);
    let mint = node.create_mint(6);
    node.mint_to(&mint, &w.address, 1_000_000);
    Minted { node, daemon, w, mint, listed: fresh_address(), unlisted: fresh_address() }
}

fn policy(admin: &Client, agent_id: &str, policy_type: &str, rules: Value) {
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent_id.to_owned()),
            policy_type: policy_type.into(),
            rules,
            enabled: None,
        })
        .expect("create policy");
}

fn transfer(to: &str, lamports: u64) -> Value {
    json!({"type": "TRANSFER", "to": to, "amount": lamports.to_string()})
}

fn token_transfer(mint: &str, to: &str, amount: u64) -> Value {
    json!({"type": "TOKEN_TRANSFER", "to": to, "amount": amount.to_string(),
           "token": {"address": mint, "decimals": 6, "symbol": "TST"}})
}

fn send(w: &Wallet, body: &Value) -> String {
    w.agent.send_transaction_raw(body).unwrap_or_else(|e| panic!("send {body}: {e:?}")).id
}

fn tx(w: &Wallet, id: &str) -> Transaction {
    w.agent.get_transaction(id).expect("get transaction")
}

fn settled(w: &Wallet, id: &str) -> Transaction {
    eventually(60, "a final status", || {
        let t = tx(w, id);
        matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED").then_some(t)
    })
}

#[track_caller]
fn denied(w: &Wallet, body: &Value, reason: &str) {
    let (status, code, details) = api_error(w.agent.send_transaction_raw(body));
    assert_eq!((status, code.as_str()), (403, "POLICY_DENIED"), "{body}: {details:?}");
    assert_eq!(details.expect("details")["reasonCode"], reason, "{body}");
}

#[test]
fn a_solana_agent_funded_by_airdrop_sends_sol_and_spl_tokens_that_land_on_chain() {
    let node = SolanaNode::start();
    let daemon = daemon(&node, &[]);
    let w = wallet(&daemon, &node, 5 * ONE_SOL);
    assert_eq!(node.balance(&w.address), 5 * ONE_SOL);

    // SOL to a fresh address: the exact amount arrives, the agent pays it plus the fee.
    let recipient = fresh_address();
    let id = send(&w, &transfer(&recipient, ONE_SOL));
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    let signature = done.tx_hash.clone().expect("signature");
    assert_eq!(bs58::decode(&signature).into_vec().unwrap().len(), 64, "the id is the base58 signature");
    assert_eq!(node.balance(&recipient), ONE_SOL);
    let after_sol = node.balance(&w.address);
    let fee = 4 * ONE_SOL - after_sol;
    assert!(fee > 0 && fee < 100_000, "paid {fee} lamports in fees");

    // SPL: a mint with 6 decimals, 1000 tokens for the agent, 250 to a fresh recipient who has no token account.
    let admin = daemon.admin();
    let mint = node.create_mint(6);
    node.mint_to(&mint, &w.address, 1_000_000_000);
    policy(&admin, &w.id, "ALLOWED_TOKENS", json!({"tokens": [mint]}));
    let holder = fresh_address();
    assert_eq!(node.token_balance(&mint, &holder), None, "no token account yet");
    let id = send(&w, &token_transfer(&mint, &holder, 250_000_000));
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(node.token_balance(&mint, &holder), Some(250_000_000), "its token account was created and credited");
    assert_eq!(node.token_balance(&mint, &w.address), Some(750_000_000));
    // The API reads the same balance by mint.
    let balance = w.agent.wallet_token_balance(&mint).expect("SPL balance by mint");
    assert_eq!((balance.balance.as_str(), balance.token.as_str()), ("750000000", mint.as_str()), "{balance:?}");
    // The rent of the created account is paid by the agent, as part of its fee.
    let spent = after_sol - node.balance(&w.address);
    assert!(spent > 2_000_000, "the account's rent (~0.002 SOL) was paid: {spent}");

    // SPL approve: the delegate is set on the agent's token account.
    let delegate = fresh_address();
    policy(&admin, &w.id, "APPROVED_SPENDERS", json!({"spenders": [delegate]}));
    let id = send(&w, &approve(&mint, &delegate, 5_000_000));
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(node.delegation(&mint, &w.address), Some((delegate, 5_000_000)));

    // Decimals come from the mint, never from the request.
    let (status, code, _) = api_error(w.agent.send_transaction_raw(&json!({
        "type": "TOKEN_TRANSFER", "to": holder, "amount": "1",
        "token": {"address": mint, "decimals": 9, "symbol": "TST"}})));
    assert_eq!(status, 400, "{code}");
    assert_eq!(node.token_balance(&mint, &holder), Some(250_000_000));
}

#[test]
fn policies_judge_solana_recipients_mints_and_programs_and_denials_move_nothing() {
    let Minted { node, daemon, w, mint, listed, unlisted } = minted(5 * ONE_SOL);
    let admin = daemon.admin();
    let other_mint = node.create_mint(6);
    node.mint_to(&other_mint, &w.address, 1_000_000);
    policy(&admin, &w.id, "WHITELIST", json!({"allowed_addresses": [listed]}));
    policy(&admin, &w.id, "ALLOWED_TOKENS", json!({"tokens": [mint]}));
    let before = node.balance(&w.address);

    denied(&w, &transfer(&unlisted, 1_000), "ADDRESS_NOT_WHITELISTED");
    denied(&w, &token_transfer(&mint, &unlisted, 1_000), "ADDRESS_NOT_WHITELISTED");
    denied(&w, &token_transfer(&other_mint, &listed, 1_000), "TOKEN_NOT_ALLOWED");
    // A program call is denied unless CONTRACT_WHITELIST lists the program id.
    let memo = json!({"type": "CONTRACT_CALL", "to": MEMO_PROGRAM, "calldata": "0x68656c6c6f"});
    denied(&w, &memo, "CONTRACT_NOT_WHITELISTED");
    policy(&admin, &w.id, "CONTRACT_WHITELIST", json!({"contracts": [fresh_address()]}));
    denied(&w, &memo, "CONTRACT_NOT_WHITELISTED");
    let listed_program = wallet(&daemon, &node, ONE_SOL);
    policy(&admin, &listed_program.id, "CONTRACT_WHITELIST", json!({"contracts": [MEMO_PROGRAM]}));

    assert_eq!(node.balance(&unlisted), 0);
    assert_eq!(node.token_balance(&mint, &unlisted), None);
    assert_eq!(node.token_balance(&other_mint, &listed), None);
    assert_eq!(node.balance(&w.address), before, "nothing was signed: not even a fee left the wallet");

    // What is listed goes through: SOL to the listed address.
    let id = send(&w, &transfer(&listed, 1_000_000));
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
    assert_eq!(node.balance(&listed), 1_000_000);
    // The Memo program runs for an agent whose CONTRACT_WHITELIST lists it.
    let id = send(&listed_program, &memo);
    let done = settled(&listed_program, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
}

fn approve(mint: &str, spender: &str, amount: u64) -> Value {
    json!({"type": "APPROVE", "spender": spender, "amount": amount.to_string(),
           "token": {"address": mint, "decimals": 6, "symbol": "TST"}})
}

#[test]
fn approved_spenders_denies_an_spl_approve_to_an_unlisted_delegate_and_allows_a_listed_one() {
    let Minted { node, daemon, w, mint, listed, unlisted } = minted(2 * ONE_SOL);
    let admin = daemon.admin();
    policy(&admin, &w.id, "ALLOWED_TOKENS", json!({"tokens": [mint]}));
    // With no APPROVED_SPENDERS in force, approvals are denied by default.
    denied(&w, &approve(&mint, &listed, 1_000), "SPENDER_NOT_APPROVED");
    policy(&admin, &w.id, "APPROVED_SPENDERS", json!({"spenders": [listed]}));
    let before = node.balance(&w.address);

    denied(&w, &approve(&mint, &unlisted, 1_000), "SPENDER_NOT_APPROVED");
    assert_eq!(node.delegation(&mint, &w.address), None, "the token account's delegate stays unset");
    assert_eq!(node.balance(&w.address), before, "nothing was signed");

    let id = send(&w, &approve(&mint, &listed, 1_000));
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(node.delegation(&mint, &w.address), Some((listed, 1_000)));
}

#[test]
fn spending_limit_tiers_by_lamports_and_by_usd() {
    let node = SolanaNode::start();
    let daemon = daemon(&node, &[("WAIAAS_ORACLE_USD_SOL", "100")]);
    let admin = daemon.admin();
    let w = wallet(&daemon, &node, 10 * ONE_SOL);
    policy(
        &admin,
        &w.id,
        "SPENDING_LIMIT",
        json!({"instant_max": "1000000", "notify_max": "2000000", "delay_max": "3000000000", "delay_seconds": 60,
               "instant_max_usd": 1.0, "notify_max_usd": 1000.0}),
    );
    let to = fresh_address();
    // 1,000,000 lamports = 0.001 SOL = $0.10: INSTANT by both; 1,000,001 lamports: NOTIFY by lamports.
    // Each settles before the next: what is in flight counts toward the next request's tier.
    for (amount, tier) in [(1_000_000u64, "INSTANT"), (1_000_001, "NOTIFY"), (2_000_001, "DELAY")] {
        let id = send(&w, &transfer(&to, amount));
        assert_eq!(tx(&w, &id).tier.as_deref(), Some(tier), "{amount} lamports");
        if tier != "DELAY" {
            assert_eq!(settled(&w, &id).status, "CONFIRMED");
        }
    }
    // USD: raise the lamport tiers out of the way; 0.02 SOL = $2 is over instant_max_usd.
    let usd_only = daemon_with_usd_policy(&daemon, &node);
    let id = send(&usd_only, &transfer(&to, 20_000_000));
    assert_eq!(tx(&usd_only, &id).tier.as_deref(), Some("NOTIFY"), "$2 > instant_max_usd $1");
    assert_eq!(settled(&usd_only, &id).status, "CONFIRMED");
    let id = send(&usd_only, &transfer(&to, 5_000_000));
    assert_eq!(tx(&usd_only, &id).tier.as_deref(), Some("INSTANT"), "$0.50");
    assert_eq!(settled(&usd_only, &id).status, "CONFIRMED");
}

fn daemon_with_usd_policy(daemon: &EmbeddedDaemon, node: &SolanaNode) -> Wallet {
    let w = wallet(daemon, node, 10 * ONE_SOL);
    policy(
        &daemon.admin(),
        &w.id,
        "SPENDING_LIMIT",
        json!({"instant_max": "1000000000000", "notify_max": "2000000000000", "delay_max": "3000000000000",
               "delay_seconds": 60, "instant_max_usd": 1.0, "notify_max_usd": 1000.0}),
    );
    w
}

#[test]
fn simulate_solana_t01_t02_t03_and_parity_with_send() {
    let node = SolanaNode::start();
    let daemon = daemon(&node, &[("WAIAAS_ORACLE_USD_SOL", "100")]);
    let w = wallet(&daemon, &node, 2 * ONE_SOL);
    let to = fresh_address();
    let before = node.balance(&w.address);

    // T-01: tier, a positive fee, the balance change.
    let result = w.agent.simulate(&transfer(&to, ONE_SOL / 2)).expect("simulate");
    assert!(result.success, "{result:?}");
    assert_eq!((result.policy.allowed, result.policy.tier.as_str()), (true, "INSTANT"));
    let fee: u64 = result.fee.estimated_fee.parse().unwrap();
    assert!((5_000..100_000).contains(&fee), "{:?}", result.fee);
    let native = &result.balance_changes[0];
    assert_eq!(native.current_balance, before.to_string());
    assert_eq!(native.after_balance, (before - ONE_SOL / 2 - fee).to_string(), "{native:?}");

    // T-02: more than the wallet holds.
    let result = w.agent.simulate(&transfer(&to, 3 * ONE_SOL)).expect("simulate");
    assert!(!result.success, "{result:?}");
    assert!(result.warnings.iter().any(|warning| warning.code == "INSUFFICIENT_BALANCE"), "{result:?}");

    // T-03: simulations change nothing on chain.
    for _ in 0..10 {
        w.agent.simulate(&transfer(&to, 1_000)).expect("simulate");
    }
    assert_eq!(node.balance(&to), 0);
    assert_eq!(node.balance(&w.address), before);

    // Parity: the send does what the simulation said, for the fee it said.
    let sent = send(&w, &transfer(&to, ONE_SOL / 2));
    assert_eq!(settled(&w, &sent).status, "CONFIRMED");
    assert_eq!(node.balance(&w.address), before - ONE_SOL / 2 - fee, "the fee paid is the fee simulated");
    assert_eq!(node.balance(&to), ONE_SOL / 2);
}

#[test]
fn a_blockhash_that_expires_while_the_request_waits_in_delay_does_not_stop_it() {
    let node = SolanaNode::start();
    let daemon = daemon(&node, &[]);
    let admin = daemon.admin();
    let w = wallet(&daemon, &node, 2 * ONE_SOL);
    policy(
        &admin,
        &w.id,
        "SPENDING_LIMIT",
        json!({"instant_max": "1", "notify_max": "2", "delay_max": "100000000000", "delay_seconds": 60}),
    );
    let to = fresh_address();
    let id = send(&w, &transfer(&to, 7_000_000));
    assert_eq!(tx(&w, &id).status, "QUEUED");
    // Every blockhash of before the wait expires (150 blocks) while the request is queued.
    let expired_from = node.block_height();
    node.advance_blocks(160);
    assert!(node.block_height() > expired_from + 150);
    daemon.advance(61);
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(node.balance(&to), 7_000_000);
}

/// A signed transfer whose broadcasts never reach the node (a proxy answers `sendTransaction` with garbage) until
/// its blockhash has expired: the signature can no longer land, so the worker rebuilds it over a fresh blockhash
/// and signs again; once the node is reachable the new transaction lands, and the recipient is paid once.
#[test]
fn a_signed_transfer_whose_blockhash_expires_unbroadcast_is_rebuilt_and_lands_once() {
    let node = SolanaNode::start();
    let proxy = RpcProxy::start(&node.url);
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_SOLANA_LOCAL", proxy.url.as_str())]);
    let w = wallet(&daemon, &node, 2 * ONE_SOL);
    proxy.set("sendTransaction", Fault::Garbage);
    let to = fresh_address();
    let id = send(&w, &transfer(&to, 7_000_000));
    let first = eventually(30, "a signed, unbroadcast attempt", || {
        let t = tx(&w, &id);
        (t.attempts.unwrap_or(0) >= 1 && t.tx_hash.is_some()).then_some(t)
    });
    assert_ne!(first.status, "CONFIRMED");
    let first_hash = first.tx_hash.clone().expect("signed");

    node.advance_blocks(160);
    proxy.set("sendTransaction", Fault::Forward);
    daemon.advance(120);
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_ne!(done.tx_hash.as_deref(), Some(first_hash.as_str()), "rebuilt over a fresh blockhash: {done:?}");
    assert_eq!(node.balance(&to), 7_000_000, "paid once");
}

#[test]
fn the_kill_switch_during_a_delay_cancels_the_solana_transfer() {
    let node = SolanaNode::start();
    let daemon = daemon(&node, &[]);
    let admin = daemon.admin();
    let w = wallet(&daemon, &node, 2 * ONE_SOL);
    policy(
        &admin,
        &w.id,
        "SPENDING_LIMIT",
        json!({"instant_max": "1", "notify_max": "2", "delay_max": "100000000000", "delay_seconds": 60}),
    );
    let to = fresh_address();
    let id = send(&w, &transfer(&to, 7_000_000));
    assert_eq!(tx(&w, &id).status, "QUEUED");
    let before = node.balance(&w.address);
    let switch = admin.activate_kill_switch(Some("test")).unwrap();
    assert_eq!(switch.effects.unwrap().transactions_cancelled, 1);
    daemon.advance(120);
    let rows = admin
        .audit_logs(&AuditLogFilter { tx_id: Some(id.clone()), limit: Some(50), ..Default::default() })
        .unwrap()
        .data;
    let kinds: Vec<&str> = rows.iter().map(|r| r.event_type.as_str()).collect();
    assert_eq!(kinds, ["TX_CANCELLED", "TX_QUEUED", "TX_REQUESTED"], "cancelled while it waited, never submitted");
    assert_eq!(node.balance(&to), 0);
    assert_eq!(node.balance(&w.address), before, "never signed");
}

/// The owner signs `WAIaaS: <decision> transaction <id>` with a fresh nonce, as a Solana wallet's `signMessage`
/// does (ed25519 over the bytes), base58.
fn owner_decision(public: &Client, owner: &solana_keypair::Keypair, id: &str, approve: bool) -> (String, String) {
    use solana_signer::Signer;
    let nonce = public.nonce().expect("nonce").nonce;
    let message = waiaas_client::approval_message(id, approve, &nonce);
    (message.clone(), owner.sign_message(message.as_bytes()).to_string())
}

/// APPROVAL for a Solana agent: its owner is a Solana address and approves with an ed25519 signature; the approved
/// transfer lands, a stranger's or a forged signature moves nothing, and the rejected one is never signed.
#[test]
fn an_approval_tier_solana_transfer_waits_for_its_owners_ed25519_signature() {
    use solana_signer::Signer;
    let node = SolanaNode::start();
    let daemon = daemon(&node, &[]);
    let admin = daemon.admin();
    let public = daemon.client();
    let w = wallet(&daemon, &node, 2 * ONE_SOL);
    policy(&admin, &w.id, "SPENDING_LIMIT", json!({"instant_max": "1", "notify_max": "2", "delay_max": "3"}));

    // The owner signs with a key of the agent's chain family.
    let (status, code, details) = api_error(admin.set_owner(&w.id, Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"), "{details:?}");
    let owner = solana_keypair::Keypair::new();
    let owner_address = owner.pubkey().to_string();
    assert_eq!(
        admin.set_owner(&w.id, Some(&owner_address)).unwrap().owner_address.as_deref(),
        Some(owner_address.as_str())
    );

    let to = fresh_address();
    let id = send(&w, &transfer(&to, 5_000_000));
    let t = tx(&w, &id);
    assert_eq!((t.tier.as_deref(), t.status.as_str()), (Some("APPROVAL"), "QUEUED"));
    let stranger = solana_keypair::Keypair::new();
    let (message, signature) = owner_decision(&public, &stranger, &id, true);
    let (status, _, _) =
        api_error(public.approve_transaction(&id, &stranger.pubkey().to_string(), &message, &signature));
    assert_eq!(status, 403, "only the agent's owner may approve");
    let (message, signature) = owner_decision(&public, &owner, &id, true);
    let (status, _, _) = api_error(public.approve_transaction(
        &id,
        &owner_address,
        &message,
        &stranger.sign_message(message.as_bytes()).to_string(),
    ));
    assert_eq!(status, 401, "a signature by another key is refused");
    let (status, _, _) =
        api_error(public.approve_transaction(&id, &owner_address, &message, &format!("0x{}", "11".repeat(65))));
    assert_eq!(status, 401, "an EVM-form signature is refused");
    daemon.advance(5);
    assert_eq!(
        (tx(&w, &id).status.as_str(), node.balance(&to)),
        ("QUEUED", 0),
        "nothing moves before the owner approves"
    );
    public.approve_transaction(&id, &owner_address, &message, &signature).expect("approve");
    assert_eq!(settled(&w, &id).status, "CONFIRMED");
    assert_eq!(node.balance(&to), 5_000_000);
    let (status, _, _) = api_error(public.approve_transaction(&id, &owner_address, &message, &signature));
    assert_eq!(status, 401, "a nonce is single use");

    // Rejected: cancelled and never signed.
    let before = node.balance(&w.address);
    let id = send(&w, &transfer(&to, 5_000_000));
    let (message, signature) = owner_decision(&public, &owner, &id, false);
    assert_eq!(public.reject_transaction(&id, &owner_address, &message, &signature).unwrap().status, "CANCELLED");
    daemon.advance(5);
    assert_eq!(
        (node.balance(&to), node.balance(&w.address)),
        (5_000_000, before),
        "the rejected transfer moved nothing"
    );
}

/// The real binary: an online backup of a data dir holding a Solana agent, restored into a fresh data dir; the
/// restored daemon's ed25519 key signs a SOL transfer that confirms on chain.
#[test]
fn backup_and_restore_carry_a_solana_key_that_still_signs() {
    let node = SolanaNode::start();
    let options = DaemonOptions {
        networks: Vec::new(),
        extra_env: vec![("WAIAAS_RPC_SOLANA_LOCAL".into(), node.url.clone())],
        ..Default::default()
    };
    let mut source = Daemon::start_with(options.clone());
    let admin = source.admin();
    let agent = admin.create_agent(&CreateAgent::solana("sol-backup", "local")).expect("create a Solana agent");
    node.airdrop(&agent.address, 2 * ONE_SOL);
    let password = [("WAIAAS_MASTER_PASSWORD", MASTER_PASSWORD)];
    let out = run_cli(source.data_dir(), &["backup"], &password);
    assert!(out.status.success(), "backup: {}", String::from_utf8_lossy(&out.stderr));
    let archive = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    source.stop();

    let fresh = tempfile::tempdir().unwrap();
    let out = run_cli(fresh.path(), &["restore", "--from", &archive], &password);
    assert!(out.status.success(), "restore: {}", String::from_utf8_lossy(&out.stderr));
    let restored = Daemon::start_on(fresh, options);
    let token = restored.admin().create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let w = Wallet { id: agent.id, address: agent.address, agent: restored.client().with_session_token(&token) };
    assert_eq!(w.agent.wallet_address().unwrap().address, w.address, "the same Solana address after restore");
    let to = fresh_address();
    let before = node.balance(&w.address);
    let id = send(&w, &transfer(&to, ONE_SOL / 4));
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(node.balance(&to), ONE_SOL / 4, "the restored key signed a transfer the chain accepted");
    assert!(node.balance(&w.address) < before - ONE_SOL / 4, "paid from the restored agent's account");
}

/// A CONTRACT_CALL body for one Solana instruction: its program, data and accounts.
fn program_call(instruction: &solana_instruction::Instruction) -> Value {
    let accounts: Vec<Value> = instruction
        .accounts
        .iter()
        .map(|m| json!({"pubkey": m.pubkey.to_string(), "signer": m.is_signer, "writable": m.is_writable}))
        .collect();
    json!({"type": "CONTRACT_CALL", "to": instruction.program_id.to_string(),
           "calldata": format!("0x{}", hex::encode(&instruction.data)), "accounts": accounts})
}

/// "Judge what a transaction does, not what it is called": a System transfer or an SPL `transfer_checked`
/// sent as a CONTRACT_CALL of that program meets the same WHITELIST as a TRANSFER / TOKEN_TRANSFER, even with
/// the program itself on CONTRACT_WHITELIST.
#[test]
fn a_direct_system_or_token_program_call_is_judged_as_the_transfer_it_performs() {
    use solana_pubkey::Pubkey;
    use std::str::FromStr;
    let Minted { node, daemon, w, mint, listed, unlisted } = minted(2 * ONE_SOL);
    let admin = daemon.admin();
    let key = |text: &str| Pubkey::from_str(text).unwrap();
    let (agent, token) = (key(&w.address), spl_token_interface::id());
    let ata = |owner: &str| {
        spl_associated_token_account_interface::address::get_associated_token_address(&key(owner), &key(&mint))
    };
    // A direct `transfer_checked` names the destination token account: that is what WHITELIST must list.
    policy(&admin, &w.id, "WHITELIST", json!({"allowed_addresses": [listed, ata(&listed).to_string()]}));
    policy(
        &admin,
        &w.id,
        "CONTRACT_WHITELIST",
        json!({"contracts": [solana_system_interface::program::ID.to_string(), token.to_string()]}),
    );
    policy(&admin, &w.id, "ALLOWED_TOKENS", json!({"tokens": [mint]}));
    let before = node.balance(&w.address);

    let to_unlisted = solana_system_interface::instruction::transfer(&agent, &key(&unlisted), ONE_SOL / 10);
    denied(&w, &program_call(&to_unlisted), "ADDRESS_NOT_WHITELISTED");
    let source = ata(&w.address);
    let tokens_out = |destination: Pubkey| {
        spl_token_interface::instruction::transfer_checked(
            &token,
            &source,
            &key(&mint),
            &destination,
            &agent,
            &[],
            1_000,
            6,
        )
        .unwrap()
    };
    node.mint_to(&mint, &unlisted, 1);
    denied(&w, &program_call(&tokens_out(ata(&unlisted))), "ADDRESS_NOT_WHITELISTED");
    // Instructions that would hand the account away, or need a key the daemon does not hold, are refused.
    let assign = solana_system_interface::instruction::assign(&agent, &key(&unlisted));
    let (status, code, _) = api_error(w.agent.send_transaction_raw(&program_call(&assign)));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"));
    let someone = solana_system_interface::instruction::transfer(&key(&unlisted), &key(&listed), 1);
    let (status, code, _) = api_error(w.agent.send_transaction_raw(&program_call(&someone)));
    assert_eq!((status, code.as_str()), (400, "VALIDATION_FAILED"), "another account cannot sign");
    assert_eq!(node.balance(&unlisted), 0, "no lamports moved");
    assert_eq!(node.token_balance(&mint, &unlisted), Some(1), "no tokens moved");
    assert_eq!(node.balance(&w.address), before, "nothing was signed");

    // The same instruction to a listed address goes through, with its accounts.
    let to_listed = solana_system_interface::instruction::transfer(&agent, &key(&listed), ONE_SOL / 10);
    let id = send(&w, &program_call(&to_listed));
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(node.balance(&listed), ONE_SOL / 10);
    node.mint_to(&mint, &listed, 1);
    let id = send(&w, &program_call(&tokens_out(ata(&listed))));
    let done = settled(&w, &id);
    assert_eq!(done.status, "CONFIRMED", "{done:?}");
    assert_eq!(node.token_balance(&mint, &listed), Some(1_001));
}
