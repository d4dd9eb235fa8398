//! **Send → CONFIRMED latency** on an automining anvil: sequential native transfers through the HTTP API, each
//! timed from the request to the moment `GET /v1/transactions/{id}` first answers CONFIRMED, on a daemon with the
//! default worker interval (500 ms), so the figure shows the worker following a broadcast to its receipt rather
//! than waiting for its next round. Beside it, the chain's own share: the same transfer sent straight to the node
//! (`eth_sendTransaction` from an unlocked dev account) until its receipt is there, polled the same way.

use std::time::{Duration, Instant};

use serde_json::json;
use waiaas_client::types::{CreateAgent, CreateSession};

use crate::support::{Anvil, EmbeddedDaemon};
use crate::{RECIPIENT, row};

/// Transfers timed in each series.
const SENDS: usize = 30;
/// How often the status is asked for (the figures include up to this much polling delay).
const POLL: Duration = Duration::from_millis(1);

/// Prints the two rows.
pub fn report(anvil: &Anvil) {
    let daemon = EmbeddedDaemon::start(&[
        ("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str()),
        ("WAIAAS_PIPELINE_WORKER_INTERVAL_MS", "500"),
    ]);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("latency", "anvil")).expect("agent");
    anvil.fund(&agent.address, 1_000_000_000_000_000_000_000);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let wallet = daemon.client().with_session_token(&token);
    let transfer = json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1000"});

    let mut samples = Vec::with_capacity(SENDS);
    for _ in 0..SENDS + 3 {
        let started = Instant::now();
        let id = wallet.send_transaction_raw(&transfer).expect("send").id;
        loop {
            let status = wallet.get_transaction(&id).expect("get").status;
            match status.as_str() {
                "CONFIRMED" => break,
                "PENDING" | "EXECUTING" | "SUBMITTED" => std::thread::park_timeout(POLL),
                other => panic!("transfer ended {other}"),
            }
        }
        samples.push(started.elapsed());
    }
    row("send → CONFIRMED (HTTP, automining anvil)", samples.split_off(3), "target p50 ≤ 20 ms; was ≈ 500 ms");

    let from = anvil.rpc("eth_accounts", json!([]))[0].as_str().expect("dev account").to_owned();
    let mut chain = Vec::with_capacity(SENDS);
    for _ in 0..SENDS {
        let started = Instant::now();
        let hash = anvil.rpc("eth_sendTransaction", json!([{"from": from, "to": RECIPIENT, "value": "0x3e8"}]));
        while anvil.rpc("eth_getTransactionReceipt", json!([hash])).is_null() {
            std::thread::park_timeout(POLL);
        }
        chain.push(started.elapsed());
    }
    row("  of which the chain: send + receipt, direct", chain, "the node's own latency");
}
