//! OPS-06 benchmark (`cargo bench -p waiaas-tests --bench anomaly`): what a final transaction costs the anomaly
//! task (update the agent's rolling activity and run the five rules) for an agent with 100,000 transactions of
//! history, next to one with 100 (the cost must not grow with the history); and the startup rebuild of 1,000
//! agents × 1,000 final transactions from the daemon's SQLite file (the rows are bulk-inserted as a fixture).
//! `WAIAAS_BENCH_ANOMALY_AGENTS` / `WAIAAS_BENCH_ANOMALY_TXS` change the rebuild's size.

use std::time::{Duration, Instant};

use sqlx::Connection;
use waiaas_core::anomaly::{AnomalyRegistry, AnomalySettings, Observation};
use waiaas_core::domain::{Address, EvmAddress, TxKind, TxStatus};
use waiaas_core::ports::testing::RecordingMetrics;
use waiaas_core::services::anomaly::AnomalyMonitor;
use waiaas_core::{AgentId, Amount, UnixSeconds};
use waiaas_sqlite::Database;

const NOW: i64 = 1_800_000_000;

fn address(n: u64) -> Address {
    format!("0x{n:040x}").parse::<EvmAddress>().expect("address").into()
}

fn observation(at: i64, n: u64) -> Observation {
    let kind = TxKind::Transfer { to: address(1 + n % 50), amount: Amount::from_u128(1_000_000_000_000_000) };
    Observation::of_final(TxStatus::Confirmed, UnixSeconds(at), None, "anvil", &kind).expect("final")
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

/// One observation + evaluation per sample, after `history` transactions spread over the 7 days before.
fn evaluation(history: u64) -> (f64, f64) {
    let monitor =
        AnomalyMonitor::new(AnomalyRegistry::standard(AnomalySettings::default()), &RecordingMetrics::default());
    let agent = AgentId::from_uuid(uuid::Uuid::from_u128(1));
    let span = 7 * 86_400;
    for i in 0..history {
        let at = NOW - span + (i as i64 * span) / history as i64;
        monitor.observe(agent, &observation(at, i), UnixSeconds(at));
    }
    let samples: Vec<Duration> = (0..20_000u64)
        .map(|i| {
            let at = NOW + i as i64 / 10;
            let observed = observation(at, i);
            let start = Instant::now();
            std::hint::black_box(monitor.observe(agent, &observed, UnixSeconds(at)));
            start.elapsed()
        })
        .collect();
    percentiles(samples)
}

fn main() {
    let profile = if cfg!(debug_assertions) { "debug (numbers are not representative)" } else { "release" };
    println!("WAIaaS anomaly benchmark — build profile: {profile}");
    for history in [100, 100_000] {
        let (p50, p99) = evaluation(history);
        println!("{:<52} p50={p50:>7.2} us  p99={p99:>7.2} us", format!("observe + 5 rules, {history} txs of history"));
    }

    let agents: u64 = std::env::var("WAIAAS_BENCH_ANOMALY_AGENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let per_agent: u64 = std::env::var("WAIAAS_BENCH_ANOMALY_TXS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("waiaas.db");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        Database::open(&path).await.expect("schema").close().await;
        let inserted = Instant::now();
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.expect("open");
        let mut tx = conn.begin().await.expect("begin");
        let request =
            serde_json::json!({"type": "TRANSFER", "to": address(7).to_string(), "amount": "1000"}).to_string();
        for a in 0..agents {
            let agent = uuid::Uuid::from_u128(u128::from(a) + 1).to_string();
            sqlx::query(
                "INSERT INTO agents (id, name, chain, network, address, status, created_at, updated_at) \
                 VALUES (?, ?, 'ethereum', 'anvil', ?, 'ACTIVE', 1, 1)",
            )
            .bind(&agent)
            .bind(format!("a{a}"))
            .bind(address(1_000_000 + a).to_string())
            .execute(&mut *tx)
            .await
            .expect("agent");
            for t in 0..per_agent {
                let at = NOW - 7 * 86_400 + 1 + (t * 7 * 86_400 / per_agent) as i64;
                sqlx::query(
                    "INSERT INTO transactions (id, agent_id, type, status, tier, network, request, reserved, \
                     created_at, updated_at) VALUES (?, ?, 'TRANSFER', 'CONFIRMED', 'INSTANT', 'anvil', ?, '[]', ?, ?)",
                )
                .bind(uuid::Uuid::from_u128((u128::from(a) << 32) + u128::from(t) + (1 << 100)).to_string())
                .bind(&agent)
                .bind(&request)
                .bind(at)
                .bind(at)
                .execute(&mut *tx)
                .await
                .expect("transaction");
            }
        }
        tx.commit().await.expect("commit");
        conn.close().await.expect("close");
        println!("{:<52} {:>8.1} s", "bulk insert (fixture)", inserted.elapsed().as_secs_f64());

        let db = Database::open(&path).await.expect("open");
        let monitor =
            AnomalyMonitor::new(AnomalyRegistry::standard(AnomalySettings::default()), &RecordingMetrics::default());
        let started = Instant::now();
        let rows = monitor.rebuild(db.anomalies().as_ref(), UnixSeconds(NOW)).await.expect("rebuild");
        let took = started.elapsed();
        println!(
            "{:<52} {:>8.2} s  ({rows} rows, {} agents, {:.2} us/row)",
            format!("startup rebuild, {agents} agents x {per_agent} txs"),
            took.as_secs_f64(),
            monitor.agents(),
            took.as_secs_f64() * 1e6 / rows.max(1) as f64
        );
        db.close().await;
    });
}
