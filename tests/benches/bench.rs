//! Benchmarks: numbers a person can rerun (`cargo bench -p waiaas-tests`), printed next to the reference figures
//! of SPEC §7. Not tests: nothing here asserts a time. Each run starts a local anvil and an embedded daemon
//! (real HTTP on loopback, real SQLite file), exactly as the end-to-end tests do.

// The end-to-end tests' harness, shared; the benchmarks use part of it.
#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;

mod metrics_overhead;

use std::time::{Duration, Instant};

use serde_json::json;
use support::{Anvil, EmbeddedDaemon};
use waiaas_client::types::{CreateAgent, CreatePolicy, CreateSession};
use waiaas_core::domain::{EvmAddress, TxKind};
use waiaas_core::ports::ChainAdapter;

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";

/// p50 and p99 of a set of durations, in milliseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect()
}

fn row(name: &str, samples: Vec<Duration>, reference: &str) {
    let n = samples.len();
    let (p50, p99) = percentiles(samples);
    println!("{name:<44} n={n:<6} p50={p50:>8.3} ms  p99={p99:>8.3} ms   reference: {reference}");
}

fn main() {
    let profile = if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" };
    println!("WAIaaS benchmarks — build profile: {profile}");
    let anvil = Anvil::start();
    let started = Instant::now();
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str())]);
    println!(
        "{:<44} {:>8.1} ms (embedded: unlock + migrations + bind)   reference: cold start ≤ 150 ms",
        "daemon start",
        started.elapsed().as_secs_f64() * 1e3
    );

    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("bench", "anvil")).expect("agent");
    anvil.fund(&agent.address, 1_000_000_000_000_000_000_000);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let wallet = daemon.client().with_session_token(&token);

    let public = daemon.client();
    row("GET /health", time(2_000, || public.health().expect("health")), "TS daemon p50 ≈ 1 ms");

    let transfer = json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1000"});
    for _ in 0..50 {
        wallet.simulate(&transfer).expect("warm-up");
    }
    let mut server_ms = Vec::new();
    let end_to_end = time(500, || {
        let result = wallet.simulate(&transfer).expect("simulate");
        server_ms.push(Duration::from_secs_f64(result.meta.duration_ms / 1e3));
    });
    row("POST /v1/transactions/simulate (end to end)", end_to_end, "target p50 ≤ 3 ms; TS 11–30 ms");

    // The RPC share: the same concurrent calls the daemon makes to build and simulate, issued directly.
    let chain = waiaas_evm::EvmChain::new([("anvil".to_owned(), anvil.url.clone())]);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let from: EvmAddress = agent.address.parse().expect("address");
    let kind =
        TxKind::Transfer { to: RECIPIENT.parse().expect("address"), amount: waiaas_core::Amount::from_u128(1000) };
    let rpc = time(500, || runtime.block_on(chain.prepare("anvil", from, &kind)).expect("prepare"));
    row("  of which RPC: build + simulate (concurrent)", rpc, "one anvil RPC ≈ 0.4 ms");
    let one_call = time(500, || runtime.block_on(chain.native_balance("anvil", from)).expect("balance"));
    row("  one RPC round trip (eth_getBalance)", one_call, "≈ 0.4 ms");

    // Admission throughput: policy-evaluated sends accepted into the pipeline, from 4 client threads. A
    // SPENDING_LIMIT queues them all (DELAY, one day), so the worker does not execute them meanwhile: this
    // measures the admission path (HTTP, session auth, gates, policy + reservation in one write transaction).
    admin
        .create_policy(&CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "SPENDING_LIMIT".into(),
            rules: json!({"instant_max": "0", "notify_max": "0", "delay_max": "1000000000000000000000000", "delay_seconds": 86_400}),
            enabled: None,
        })
        .expect("policy");
    let per_thread = 250;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..per_thread {
                    wallet.send_transaction_raw(&transfer).expect("send");
                }
            });
        }
    });
    let rate = (4 * per_thread) as f64 / started.elapsed().as_secs_f64();
    println!(
        "{:<44} {rate:>8.0} sends/s (4 threads, HTTP, queued by policy: no execution meanwhile)   target ≥ 1,000/s",
        "send admission throughput"
    );
    metrics_overhead::report(rate);
}
