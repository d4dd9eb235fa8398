//! Benchmarks: numbers a person can rerun (`cargo bench -p waiaas-tests`), printed next to the reference figures
//! of SPEC §7. Not tests: nothing here asserts a time. Each run starts a local anvil and an embedded daemon
//! (real HTTP on loopback, real SQLite file), exactly as the end-to-end tests do.

// The end-to-end tests' harness, shared; the benchmarks use part of it.
#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;
mod timing;

mod acl_cost;
mod confirmation;
mod load;
mod metrics_overhead;

use std::time::{Duration, Instant};

use load::admission_rate;
use serde_json::json;
use support::{Anvil, Daemon, DaemonOptions, EmbeddedDaemon, run_cli};
use timing::{row, time};
use waiaas_client::types::{CreateAgent, CreateSession};
use waiaas_core::domain::{Address, TxKind};
use waiaas_core::ports::ChainAdapter;

const RECIPIENT: &str = "0x1111111111111111111111111111111111111111";

/// p50 and p99 of a set of durations, in milliseconds.
fn main() {
    let profile = if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" };
    println!("WAIaaS benchmarks — build profile: {profile}");
    real_binary_start_and_memory();
    acl_cost::report();
    let anvil = Anvil::start();
    real_binary_idle_cpu(&anvil);
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
    let from: Address = agent.address.parse().expect("address");
    let kind =
        TxKind::Transfer { to: RECIPIENT.parse().expect("address"), amount: waiaas_core::Amount::from_u128(1000) };
    let rpc = time(500, || runtime.block_on(chain.prepare("anvil", from, &kind)).expect("prepare"));
    row("  of which RPC: build + simulate (concurrent)", rpc, "one anvil RPC ≈ 0.4 ms");
    let one_call = time(500, || runtime.block_on(chain.native_balance("anvil", from)).expect("balance"));
    row("  one RPC round trip (eth_getBalance)", one_call, "≈ 0.4 ms");
    confirmation::report(&anvil);

    // Admission throughput: policy-evaluated sends accepted into the pipeline by concurrent clients (each thread
    // sends one request after the other). A SPENDING_LIMIT queues them all (DELAY, one day), so the worker does
    // not execute them meanwhile: this measures the admission path (HTTP, session auth, gates, policy +
    // reservation + audit in the grouped write transaction).
    for clients in [4, 16] {
        let rate = admission_rate(&daemon, &anvil, clients, 3_000);
        println!(
            "{:<44} {rate:>8.0} sends/s ({clients} clients, HTTP, queued by policy)   target ≥ 1,000/s",
            "send admission throughput"
        );
    }
    // Pipeline throughput with metrics collection on and off (`[metrics] enabled = false` wires a registry that
    // records nothing): two fresh daemons, rounds alternating between them so drift and table growth hit both.
    let fresh = |metrics: &str| {
        EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str()), ("WAIAAS_METRICS_ENABLED", metrics)])
    };
    let (with, without) = (fresh("true"), fresh("false"));
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        on.push(admission_rate(&with, &anvil, 16, 2_000));
        off.push(admission_rate(&without, &anvil, 16, 2_000));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (on, off) = (median(on), median(off));
    println!(
        "{:<44} on {on:>6.0} / off {off:>6.0} sends/s (16 clients, median of 5): {:+.1} %   target ≤ 1 %",
        "admission throughput, metrics on vs off",
        (off - on) / off * 100.0
    );
    let rate = on;
    metrics_overhead::report(rate);
}

/// A data dir made by the release `waiaas init`, for a measurement of the real binary; `None` (and `what` said
/// skipped) when the release binary is not built.
fn release_data_dir(what: &str) -> Option<tempfile::TempDir> {
    let exe = std::env::current_exe().expect("bench path");
    if !exe.parent().and_then(std::path::Path::parent).is_some_and(|dir| dir.join("waiaas").exists()) {
        println!("{what}: skipped (run `cargo build --release --bins` first)");
        return None;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(run_cli(dir.path(), &["init"], &[]).status.success(), "waiaas init");
    Some(dir)
}

/// The release `waiaas` binary (`cargo build --release --bins`): time from spawning `waiaas start` to its
/// listening line (unlock with the master password's Argon2id, migrations, bind), and its resident memory after
/// serving 100 health checks.
fn real_binary_start_and_memory() {
    let Some(dir) = release_data_dir("daemon cold start / idle RSS") else { return };
    let started = Instant::now();
    let daemon = Daemon::start_on(dir, DaemonOptions::default());
    let cold = started.elapsed();
    let client = daemon.client();
    for _ in 0..100 {
        client.health().expect("health");
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid().expect("running"))).expect("status");
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    println!(
        "{:<44} {:>8.1} ms (real binary: spawn to listening line)   reference: cold start ≤ 150 ms",
        "daemon cold start",
        cold.as_secs_f64() * 1e3
    );
    println!("{:<44} {:>8.1} MiB   reference: idle RSS ≤ 30 MB", "daemon idle RSS", rss_kib as f64 / 1024.0);
}

/// CPU time of every thread of process `pid`, in nanoseconds (`/proc/<pid>/task/*/schedstat`, first field).
fn cpu_ns(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The release binary with a live network, after an agent's transfer confirmed and everything settled: the CPU
/// its threads use over 10 idle seconds (the pipeline worker, the webhook, notification, anomaly and backup tasks
/// all running). A busy loop would show as a share of a core; an idle daemon uses next to none.
fn real_binary_idle_cpu(anvil: &Anvil) {
    let Some(dir) = release_data_dir("daemon idle CPU") else { return };
    let options = DaemonOptions { networks: vec![("anvil".to_owned(), anvil.url.clone())], ..DaemonOptions::default() };
    let daemon = Daemon::start_on(dir, options);
    let admin = daemon.admin();
    let agent = admin.create_agent(&CreateAgent::ethereum("idle", "anvil")).expect("agent");
    anvil.fund(&agent.address, 1_000_000_000_000_000_000);
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    let wallet = daemon.client().with_session_token(&token);
    let id =
        wallet.send_transaction_raw(&json!({"type": "TRANSFER", "to": RECIPIENT, "amount": "1"})).expect("send").id;
    support::eventually(30, "the transfer confirmed", || {
        (wallet.get_transaction(&id).expect("get").status == "CONFIRMED").then_some(())
    });
    let pid = daemon.pid().expect("running");
    // Settle (the confirmation's events, webhook and anomaly reads), then measure.
    std::thread::park_timeout(Duration::from_secs(2));
    let (before, started) = (cpu_ns(pid), Instant::now());
    let window = Duration::from_secs(10);
    while started.elapsed() < window {
        std::thread::park_timeout(window - started.elapsed());
    }
    let used_ms = (cpu_ns(pid) - before) as f64 / 1e6;
    println!(
        "{:<44} {used_ms:>8.1} ms of CPU in 10 s idle ({:.2} % of a core)   target ≈ 0 (no busy loop)",
        "daemon idle CPU (real binary, live network)",
        used_ms / 100.0
    );
}
