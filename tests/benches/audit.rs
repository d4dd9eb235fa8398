//! OPS-02 benchmark (`cargo bench -p waiaas-tests --bench audit`): audit-log queries through the real HTTP API
//! over 1,000,000 rows — the first page, page 1000, and a 3-filter query (agent + event type + period) — p50/p99
//! next to SPEC §7's figures. The rows are bulk-inserted into the daemon's own SQLite file (a benchmark fixture;
//! their hash chain is not meant to verify). `WAIAAS_BENCH_AUDIT_ROWS` changes the count.

// The end-to-end tests' harness, shared; the benchmarks use part of it.
#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use sqlx::Connection;
use support::EmbeddedDaemon;
use waiaas_client::types::{AuditLogFilter, CreateAgent};

const TYPES: [&str; 6] =
    ["TX_REQUESTED", "TX_CONFIRMED", "SESSION_CREATED", "POLICY_DENIED", "TX_SUBMITTED", "MASTER_AUTH_FAILED"];

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

fn row(name: &str, samples: Vec<Duration>, reference: &str) {
    let n = samples.len();
    let (p50, p99) = percentiles(samples);
    println!("{name:<40} n={n:<5} p50={p50:>8.3} ms  p99={p99:>8.3} ms   reference: {reference}");
}

fn time(n: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect()
}

fn main() {
    let rows: i64 = std::env::var("WAIAAS_BENCH_AUDIT_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let profile = if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" };
    println!("WAIaaS audit benchmark — {rows} rows — build profile: {profile}");
    let daemon = EmbeddedDaemon::start(&[("WAIAAS_RPC_EVM_ANVIL", "http://127.0.0.1:9")]);
    let admin = daemon.admin();
    let agents: Vec<String> =
        (0..4).map(|i| admin.create_agent(&CreateAgent::ethereum(format!("a{i}"), "anvil")).unwrap().id).collect();

    // Spread over 30 days ending now; each agent gets a quarter, types cycle.
    let now = daemon.now();
    let start = now - 30 * 86_400;
    let db = daemon.data_dir().join("data/waiaas.db");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let inserted = Instant::now();
    runtime.block_on(async {
        let url = format!("sqlite://{}", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open the daemon's database");
        let mut tx = conn.begin().await.unwrap();
        for i in 0..rows {
            sqlx::query(
                "INSERT INTO audit_logs (created_at, event_type, agent_id, session_id, tx_id, actor, severity, details, \
                 ip_address, prev_hash, hash) VALUES (?, ?, ?, NULL, NULL, 'system', 'info', '{}', NULL, ?, ?)",
            )
            .bind(start + i * 30 * 86_400 / rows)
            .bind(TYPES[(i % 6) as usize])
            .bind(&agents[(i % 4) as usize])
            .bind("0".repeat(64))
            .bind("0".repeat(64))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    });
    println!("{:<40} {:>8.1} s", "bulk insert", inserted.elapsed().as_secs_f64());

    let first = AuditLogFilter { limit: Some(50), ..Default::default() };
    row(
        "first page (limit 50)",
        time(300, || drop(admin.audit_logs(&first).unwrap())),
        "target p50 ≤ 2 ms; SQLite ≈ 0.17 ms",
    );

    let mut cursor = None;
    for _ in 0..999 {
        cursor = admin.audit_logs(&AuditLogFilter { cursor: cursor.clone(), ..first.clone() }).unwrap().next_cursor;
    }
    let deep = AuditLogFilter { cursor, ..first.clone() };
    row(
        "page 1000 (limit 50, keyset)",
        time(300, || drop(admin.audit_logs(&deep).unwrap())),
        "target p50 ≤ 2 ms at any depth; OFFSET ≈ 4 ms",
    );

    let filtered = AuditLogFilter {
        agent_id: Some(agents[1].clone()),
        event_types: vec!["TX_CONFIRMED".into()],
        from: Some(now - 10 * 86_400),
        to: Some(now - 5 * 86_400),
        limit: Some(50),
        ..Default::default()
    };
    let found = admin.audit_logs(&filtered).unwrap().data.len();
    row(
        &format!("agent + type + period ({found} rows/page)"),
        time(300, || drop(admin.audit_logs(&filtered).unwrap())),
        "target p50 ≤ 2 ms; SQLite ≈ 0.18 ms",
    );
}
