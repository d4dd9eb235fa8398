//! Load over the whole pipeline (`cargo bench -p waiaas-tests --bench pipeline_load`): 50 agents send native
//! transfers concurrently for 60 s against anvil, each agent on one tier (INSTANT, NOTIFY, DELAY of 2 s,
//! APPROVAL approved by the owner at once, APPROVAL left to expire), then the daemon drains and the invariants are
//! asserted: every transaction reaches a final status; no nonce gap (each sender's nonce on chain equals its rows
//! that were broadcast); no double spend (each agent's recipient holds exactly the sum of its CONFIRMED rows).
//! Printed: admission latency p50/p99, throughput, the final statuses, and the process's resident memory sampled
//! every second while the agents send (after warm-up, last, max, and its curve, with the heap in use beside it),
//! printed before the drain.
//!
//! `-- --soak 600` (or `WAIAAS_LOAD_SECONDS=600`) runs the 10-minute soak instead; not run in CI.
//! `WAIAAS_LOAD_PAUSE_MS` is each agent's pause between two sends: 250 ms by default, which admits about twice
//! what the pipeline executes on the 2-core machine (the load run measures admission under a growing backlog);
//! 1,000 ms by default in a run of 5 minutes or more, below what it executes, so that a soak measures a steady
//! state rather than a backlog that grows for ten minutes.
//!
//! The daemon is embedded (real HTTP on loopback, real SQLite file) with a clock this benchmark moves one second
//! per second, and moves an hour at the end so the unanswered approvals expire; the memory figures are those of
//! this process: the daemon and the 50 client threads.

#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alloy_primitives::U256;
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use serde_json::json;
use support::{Anvil, EmbeddedDaemon, eventually};
use waiaas_client::Client;
use waiaas_client::types::{CreateAgent, CreatePolicy, CreateSession, ListParams, Transaction};

const AGENTS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Instant,
    Notify,
    Delay,
    Approved,
    Expiring,
}

impl Role {
    fn of(agent: usize) -> Role {
        [Role::Instant, Role::Notify, Role::Delay, Role::Approved, Role::Expiring][agent % 5]
    }

    /// The SPENDING_LIMIT that puts every send of the agent in its tier (whatever its reservations).
    fn rules(self) -> Option<serde_json::Value> {
        let huge = "1000000000000000000000000";
        match self {
            Role::Instant => None,
            Role::Notify => {
                Some(json!({"instant_max": "0", "notify_max": huge, "delay_max": huge, "delay_seconds": 2}))
            }
            Role::Delay => Some(json!({"instant_max": "0", "notify_max": "0", "delay_max": huge, "delay_seconds": 2})),
            Role::Approved | Role::Expiring => {
                Some(json!({"instant_max": "0", "notify_max": "0", "delay_max": "0", "delay_seconds": 2}))
            }
        }
    }
}

struct Agent {
    role: Role,
    address: String,
    recipient: String,
    wallet: Client,
    owner: PrivateKeySigner,
}

fn setup(daemon: &EmbeddedDaemon, anvil: &Anvil, index: usize) -> Agent {
    let admin = daemon.admin();
    let role = Role::of(index);
    let agent = admin.create_agent(&CreateAgent::ethereum(format!("load-{index}"), "anvil")).expect("agent");
    anvil.fund(&agent.address, 1_000_000_000_000_000_000_000);
    if let Some(rules) = role.rules() {
        let policy = CreatePolicy {
            agent_id: Some(agent.id.clone()),
            policy_type: "SPENDING_LIMIT".into(),
            rules,
            enabled: None,
        };
        admin.create_policy(&policy).expect("policy");
    }
    let owner = PrivateKeySigner::random();
    admin.set_owner(&agent.id, Some(&owner.address().to_checksum(None))).expect("owner");
    let token = admin.create_session(&CreateSession::for_agent(&agent.id)).expect("session").token;
    Agent {
        role,
        address: agent.address,
        // A distinct recipient per agent (decimal digits only: no checksum case), so balances are per agent.
        recipient: format!("0x{:040}", 7_000 + index),
        wallet: daemon.client().with_session_token(&token),
        owner,
    }
}

/// The owner approves `id` (EIP-191 over the approval message, with a fresh nonce).
fn approve(public: &Client, owner: &PrivateKeySigner, id: &str) {
    let nonce = public.nonce().expect("nonce").nonce;
    let message = waiaas_client::approval_message(id, true, &nonce);
    let signature = owner.sign_message_sync(message.as_bytes()).expect("sign");
    let signature = format!("0x{}", hex::encode(signature.as_bytes()));
    public.approve_transaction(id, &owner.address().to_checksum(None), &message, &signature).expect("approve");
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The heap in use, in KiB: what the allocator has handed out and not had back (glibc's `mallinfo2`, every
/// arena's small blocks plus the mmapped ones). Beside RSS it tells memory the process holds from memory the
/// allocator keeps after it was freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn heap_in_use_kib() -> u64 {
    // SAFETY: `mallinfo2` takes no argument and returns the allocator's counters by value.
    let info = unsafe { libc::mallinfo2() };
    ((info.uordblks + info.hblkhd) / 1024) as u64
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn heap_in_use_kib() -> u64 {
    0
}

fn all_transactions(wallet: &Client) -> Vec<Transaction> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = wallet.list_transactions(&ListParams { cursor, limit: Some(100) }).expect("list");
        out.extend(page.data);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

fn seconds_from_args() -> u64 {
    let args: Vec<String> = std::env::args().collect();
    let soak = args.iter().position(|a| a == "--soak").and_then(|i| args.get(i + 1)).and_then(|s| s.parse().ok());
    soak.or_else(|| std::env::var("WAIAAS_LOAD_SECONDS").ok().and_then(|s| s.parse().ok())).unwrap_or(60)
}

fn main() {
    let profile = if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" };
    let seconds = seconds_from_args();
    let default_pause = if seconds >= 300 { 1_000 } else { 250 };
    let pause = Duration::from_millis(
        std::env::var("WAIAAS_LOAD_PAUSE_MS").ok().and_then(|s| s.parse().ok()).unwrap_or(default_pause),
    );
    println!("WAIaaS pipeline load — build profile: {profile}; {AGENTS} agents for {seconds} s, pause {pause:?}");
    // anvil keeps no history it is not asked for: with all of it, a 10-minute soak's 100,000 transactions grew it
    // past 7 GiB, slowed it to a crawl, and the drain timed out on the node, not the daemon.
    let anvil = Anvil::start_with(0, &["--prune-history"]);
    let daemon = EmbeddedDaemon::start(&[
        ("WAIAAS_RPC_EVM_ANVIL", anvil.url.as_str()),
        ("WAIAAS_PIPELINE_WORKER_INTERVAL_MS", "500"),
    ]);
    let agents: Vec<Agent> = (0..AGENTS).map(|i| setup(&daemon, &anvil, i)).collect();
    let public = daemon.client();

    let stop = AtomicBool::new(false);
    let latencies = Mutex::new(Vec::<Duration>::new());
    let rss = Mutex::new(Vec::<(f64, u64, u64)>::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        // The daemon's clock follows real time (DELAY waits pass), checked every 100 ms.
        scope.spawn(|| {
            let mut moved = 0;
            while !stop.load(Ordering::Relaxed) {
                let due = started.elapsed().as_secs();
                if due > moved {
                    daemon.advance((due - moved) as i64);
                    moved = due;
                }
                std::thread::park_timeout(Duration::from_millis(100));
            }
        });
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                rss.lock().unwrap().push((started.elapsed().as_secs_f64(), rss_kib(), heap_in_use_kib()));
                std::thread::park_timeout(Duration::from_secs(1));
            }
        });
        let deadline = started + Duration::from_secs(seconds);
        let senders: Vec<_> = agents
            .iter()
            .enumerate()
            .map(|(i, agent)| {
                let (latencies, public) = (&latencies, &public);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    let mut n = 0u128;
                    while Instant::now() < deadline {
                        n += 1;
                        let body =
                            json!({"type": "TRANSFER", "to": agent.recipient, "amount": (1_000 + n % 7).to_string()});
                        let sent = Instant::now();
                        let id =
                            agent.wallet.send_transaction_raw(&body).unwrap_or_else(|e| panic!("agent {i}: {e}")).id;
                        mine.push(sent.elapsed());
                        if agent.role == Role::Approved {
                            approve(public, &agent.owner, &id);
                        }
                        std::thread::park_timeout(pause);
                    }
                    latencies.lock().unwrap().extend(mine);
                })
            })
            .collect();
        for sender in senders {
            sender.join().expect("sender");
        }
        let sent_for = started.elapsed();
        print_rss(&rss.lock().unwrap().clone(), seconds);
        // Drain: the unanswered approvals expire an hour later by the daemon's clock; everything else settles.
        daemon.advance(3_601);
        for agent in &agents {
            eventually(600.max(seconds), "every transaction final", || {
                let open = all_transactions(&agent.wallet)
                    .into_iter()
                    .filter(|t| !matches!(t.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED"))
                    .count();
                (open == 0).then_some(())
            });
        }
        println!(
            "sending for {:.1} s, drained {:.1} s later",
            sent_for.as_secs_f64(),
            (started.elapsed() - sent_for).as_secs_f64()
        );
        stop.store(true, Ordering::Relaxed);
    });

    // Invariants, per agent: final statuses only, no nonce gap, no double spend.
    let mut by_status: BTreeMap<(Role, String), usize> = BTreeMap::new();
    let mut total = 0;
    for agent in &agents {
        let rows = all_transactions(&agent.wallet);
        total += rows.len();
        let mut confirmed = U256::ZERO;
        let mut broadcast = 0u64;
        for row in &rows {
            assert!(
                matches!(row.status.as_str(), "CONFIRMED" | "FAILED" | "CANCELLED" | "EXPIRED"),
                "not final: {row:?}"
            );
            *by_status.entry((agent.role, row.status.clone())).or_default() += 1;
            if row.tx_hash.is_some() {
                broadcast += 1;
            }
            if row.status == "CONFIRMED" {
                confirmed += U256::from_str_radix(row.amount.as_deref().expect("amount"), 10).expect("amount");
            }
        }
        assert_eq!(anvil.nonce(&agent.address), broadcast, "nonce gap or extra transaction for {}", agent.address);
        assert_eq!(
            anvil.native_balance(&agent.recipient),
            confirmed,
            "double spend or lost transfer for {}",
            agent.address
        );
        let expected = if agent.role == Role::Expiring { "EXPIRED" } else { "CONFIRMED" };
        let off: Vec<_> = rows.iter().filter(|r| r.status != expected).collect();
        assert!(
            off.is_empty(),
            "{:?}: {} of {} rows not {expected}, the first: {:?}",
            agent.role,
            off.len(),
            rows.len(),
            &off[..off.len().min(3)]
        );
    }

    let mut samples = latencies.into_inner().unwrap();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{:<44} n={:<6} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        "admission latency (POST /v1/transactions/send)",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    println!("{:<44} {:>8.1} sends/s", "admitted", samples.len() as f64 / seconds as f64);
    println!("{:<44} {total}", "transactions, all final");
    for ((role, status), n) in &by_status {
        println!("  {:<12} {:<10} {n}", format!("{role:?}"), status);
    }
    println!("invariants hold: every transaction final, no nonce gap, no double spend");
}

/// The process's resident memory while the agents sent: after warm-up, last, max, and the curve (one sample a
/// minute, or every 10 s in a run shorter than 5 minutes), to tell flat from still growing; the heap in use
/// beside it.
fn print_rss(rss: &[(f64, u64, u64)], seconds: u64) {
    let warm = rss.iter().find(|(t, _, _)| *t >= 10.0).or(rss.first()).copied().unwrap_or_default();
    let last = rss.last().copied().unwrap_or_default();
    let max = rss.iter().map(|(_, k, _)| *k).max().unwrap_or(0);
    println!(
        "{:<44} after warm-up ({:.0} s) {:.1} MiB, last {:.1} MiB, max {:.1} MiB",
        "RSS (daemon + 50 clients, this process)",
        warm.0,
        warm.1 as f64 / 1024.0,
        last.1 as f64 / 1024.0,
        max as f64 / 1024.0
    );
    let step = if seconds >= 300 { 60.0 } else { 10.0 };
    let mut next = 0.0;
    let (mut resident, mut heap) = (Vec::new(), Vec::new());
    for (t, rss_kib, heap_kib) in rss {
        if *t >= next {
            resident.push(format!("{t:.0}s {:.0}", *rss_kib as f64 / 1024.0));
            heap.push(format!("{t:.0}s {:.0}", *heap_kib as f64 / 1024.0));
            next = t + step;
        }
    }
    println!("{:<44} {} (MiB)", "RSS over time", resident.join(", "));
    println!("{:<44} {} (MiB)", "heap in use over time (mallinfo2)", heap.join(", "));
}
