//! Timing helpers shared by the latency benchmarks: run a closure n times, report p50/p99 in milliseconds.

use std::time::{Duration, Instant};

pub fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.50), at(0.99))
}

pub fn time<T>(n: usize, mut f: impl FnMut() -> T) -> Vec<Duration> {
    (0..n)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed()
        })
        .collect()
}

pub fn row(name: &str, samples: Vec<Duration>, reference: &str) {
    let n = samples.len();
    let (p50, p99) = percentiles(samples);
    println!("{name:<44} n={n:<6} p50={p50:>8.3} ms  p99={p99:>8.3} ms   reference: {reference}");
}
