//! OPS-05 benchmarks (called from the bench binary; prints numbers, asserts nothing):
//!
//! - **metrics overhead per send**: the metric updates one transaction causes from request to CONFIRMED (the
//!   HTTP request counter + histogram, the policy-evaluation counter, the final transaction counter + duration
//!   histogram, and about eight RPC calls each counted and timed) recorded into the real Prometheus registry,
//!   minus the same calls into a no-op registry: that difference is exactly what "metrics on" adds to the
//!   pipeline. It is printed as a share of one send's admission time (from the measured admission throughput)
//!   against the SPEC §7 target of ≤ 1 %.
//! - **scrape latency with 10,000 series**: rendering a registry holding 10,000 counter series (synthetic label
//!   values: real labels are bounded enumerations far below that), p50/p99.

use std::sync::Arc;
use std::time::{Duration, Instant};

use waiaas_core::metrics as m;
use waiaas_core::ports::{MetricsRegistry, NoMetrics};
use waiaas_metrics::PrometheusMetrics;

/// RPC calls of one native transfer from prepare to receipt (nonce, fees, block, estimate, call, send, receipt).
const RPC_METHODS: [&str; 8] = [
    "eth_getTransactionCount",
    "eth_maxPriorityFeePerGas",
    "eth_getBlockByNumber",
    "eth_estimateGas",
    "eth_call",
    "eth_sendRawTransaction",
    "eth_getTransactionReceipt",
    "eth_getBalance",
];

/// Every metric update one send causes, request to CONFIRMED.
fn one_send(registry: &dyn MetricsRegistry) {
    let route = [("route", "/v1/transactions/send"), ("method", "POST"), ("status", "201")];
    registry.increment_counter(m::HTTP_REQUESTS_TOTAL, &route, 1);
    registry.observe_histogram(m::HTTP_REQUEST_DURATION_SECONDS, &[("route", "/v1/transactions/send")], 0.002);
    registry.increment_counter(m::POLICY_EVALUATIONS_TOTAL, &[("tier", "instant"), ("result", "allowed")], 1);
    for method in RPC_METHODS {
        registry.increment_counter(
            m::RPC_REQUESTS_TOTAL,
            &[("chain", "ethereum"), ("method", method), ("status", "ok")],
            1,
        );
        registry.observe_histogram(m::RPC_DURATION_SECONDS, &[("method", method)], 0.0004);
    }
    let tx = [("chain", "ethereum"), ("type", "transfer"), ("tier", "instant"), ("status", "confirmed")];
    registry.increment_counter(m::TRANSACTIONS_TOTAL, &tx, 1);
    registry.observe_histogram(m::TRANSACTION_DURATION_SECONDS, &[], 1.0);
}

/// Mean time of one `one_send` over `n` runs on one thread (the CPU time a send spends in metrics).
fn per_send(registry: Arc<dyn MetricsRegistry>, n: usize) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        one_send(std::hint::black_box(registry.as_ref()));
    }
    started.elapsed() / n as u32
}

/// Prints the OPS-05 numbers. `admission_sends_per_second`: the measured send admission throughput (the
/// overhead is reported as a share of one send's time at that rate); pass 0 to skip the share.
pub fn report(admission_sends_per_second: f64) {
    let n = 200_000;
    let prometheus: Arc<dyn MetricsRegistry> = Arc::new(PrometheusMetrics::new("bench"));
    let noop: Arc<dyn MetricsRegistry> = Arc::new(NoMetrics);
    // Warm up (first registration of every series).
    one_send(prometheus.as_ref());
    let on = per_send(Arc::clone(&prometheus), n);
    let off = per_send(noop, n);
    let added = on.saturating_sub(off);
    println!(
        "{:<44} {:>8.2} µs per send (on {:.2} µs, no-op {:.2} µs; {} updates)",
        "metrics work per transaction",
        added.as_secs_f64() * 1e6,
        on.as_secs_f64() * 1e6,
        off.as_secs_f64() * 1e6,
        5 + 2 * RPC_METHODS.len()
    );
    if admission_sends_per_second > 0.0 {
        let share = added.as_secs_f64() * admission_sends_per_second * 100.0;
        println!(
            "{:<44} {share:>8.3} % of one send at {admission_sends_per_second:.0} sends/s   target ≤ 1 %",
            "metrics overhead"
        );
    }

    let big = PrometheusMetrics::new("bench");
    for i in 0..10_000 {
        let route = format!("/synthetic/{i}");
        big.increment_counter(m::HTTP_REQUESTS_TOTAL, &[("route", &route), ("method", "GET"), ("status", "200")], 1);
    }
    let mut samples: Vec<Duration> = (0..50)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(big.render());
            started.elapsed()
        })
        .collect();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{:<44} n=50     p50={:>8.3} ms  p99={:>8.3} ms   ({} bytes)",
        "scrape render, 10,000 series",
        at(0.5),
        at(0.99),
        big.render().len()
    );
}
