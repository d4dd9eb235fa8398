//! Solana benchmark (`cargo bench -p waiaas-tests --bench solana`): `POST /v1/transactions/simulate` for a SOL
//! transfer end to end, p50/p99, with the RPC share (the adapter's build + `simulateTransaction`, issued
//! directly) — the Solana counterpart of the EVM line of the main bench. Runs against the helper runtime of
//! tools/solana-node (an embedded Surfnet on loopback; built by scripts/test) and an embedded daemon.

// The end-to-end tests' harness, shared; the benchmark uses part of it.
#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;
mod timing;

use serde_json::json;
use support::{EmbeddedDaemon, SolanaNode, fresh_address};
use timing::{row, time};
use waiaas_client::types::{CreateAgent, CreateSession};
use waiaas_core::domain::{Address, ChainFamily, TxKind};
use waiaas_core::ports::ChainAdapter;

fn main() {
    let profile = if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" };
    println!("WAIaaS Solana benchmark — build profile: {profile}");
    let node = SolanaNode::start();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_SOLANA_LOCAL", node.url.as_str())]);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::solana("bench", "local")).expect("agent");
    node.airdrop(&agent.address, 100_000_000_000);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let wallet = daemon.client().with_session_token(&token);

    // To an account that exists (a new one must receive at least its rent exemption).
    let recipient = fresh_address();
    node.airdrop(&recipient, 1_000_000_000);
    let transfer = json!({"type": "TRANSFER", "to": recipient, "amount": "1000"});
    for _ in 0..50 {
        assert!(wallet.simulate(&transfer).expect("warm-up").success);
    }
    let end_to_end = time(500, || wallet.simulate(&transfer).expect("simulate"));
    row("POST /v1/transactions/simulate, SOL transfer (end to end)", end_to_end, "EVM line: p50 1.5–1.8 ms");

    // The RPC share: what the adapter asks the node to build and simulate the same transfer, issued directly.
    let chain = waiaas_solana::SolanaChain::new([("local".to_owned(), node.url.clone())]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let from = Address::parse(ChainFamily::Solana, &agent.address).expect("address");
    let to = Address::parse(ChainFamily::Solana, &recipient).expect("address");
    let kind = TxKind::Transfer { to, amount: waiaas_core::Amount::from_u128(1000) };
    let rpc = time(500, || runtime.block_on(chain.prepare("local", from, &kind)).expect("prepare"));
    row("  of which RPC: build + simulateTransaction", rpc, "EVM line: 0.7–0.8 ms");
    let one_call = time(500, || runtime.block_on(chain.native_balance("local", from)).expect("balance"));
    row("  one RPC round trip (getBalance)", one_call, "one anvil RPC ≈ 0.4 ms");
}
