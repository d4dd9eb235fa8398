//! The [`MetricsRegistry`] port over `metrics` + `metrics-exporter-prometheus`.
//!
//! [`PrometheusMetrics`] owns its `PrometheusRecorder`: it is never installed as the process-global recorder, so
//! several daemons in one process (tests, an embedding host) keep separate series. Every metric of the core's
//! catalog ([`waiaas_core::metrics::CATALOG`]) is described at construction (HELP text) and every histogram gets
//! its explicit buckets, so the exposition has real `_bucket` series, not summaries. Recording is an in-memory
//! update (a registry lookup and an atomic add); [`PrometheusMetrics::render`] produces the classic text format
//! (`text/plain; version=0.0.4`) that `promtool check metrics` accepts.
//!
//! Invariant: this crate knows metric names only through the core's catalog and never invents label values; the
//! callers pass bounded enumerations.

use std::sync::Arc;

use metrics::{Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use waiaas_core::metrics::{BUILD_INFO, CATALOG, MetricKind};
use waiaas_core::ports::{Labels, MetricsRegistry};

/// The content type of [`PrometheusMetrics::render`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A Prometheus registry of one daemon.
#[derive(Clone)]
pub struct PrometheusMetrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for PrometheusMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusMetrics").finish_non_exhaustive()
    }
}

static METADATA: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

fn key(name: &'static str, labels: Labels<'_>) -> Key {
    let labels: Vec<Label> = labels.iter().map(|(k, v)| Label::new(*k, (*v).to_owned())).collect();
    Key::from_parts(name, labels)
}

impl PrometheusMetrics {
    /// A registry with every catalog metric described and `waiaas_build_info{version}` set to 1.
    pub fn new(version: &str) -> Self {
        let mut builder = PrometheusBuilder::new();
        for def in CATALOG.iter().filter(|d| d.kind == MetricKind::Histogram) {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(def.name.to_owned()), def.buckets)
                .expect("catalog buckets are non-empty");
        }
        let recorder = builder.build_recorder();
        for def in CATALOG {
            let name = metrics::KeyName::from_const_str(def.name);
            let help = metrics::SharedString::const_str(def.help);
            match def.kind {
                MetricKind::Counter => recorder.describe_counter(name, None, help),
                MetricKind::Gauge => recorder.describe_gauge(name, None, help),
                MetricKind::Histogram => recorder.describe_histogram(name, None, help),
            }
        }
        let handle = recorder.handle();
        let metrics = PrometheusMetrics { recorder: Arc::new(recorder), handle };
        metrics.set_gauge(BUILD_INFO, &[("version", version)], 1.0);
        metrics
    }

    /// The exposition in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets (render does it too); a host that is rarely scraped
    /// calls this periodically so samples do not pile up.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

impl MetricsRegistry for PrometheusMetrics {
    /// Registering creates the series: a counter renders 0, a gauge 0, a histogram empty buckets.
    fn register<'a>(&self, name: &'static str, kind: MetricKind, labels: Labels<'a>) {
        let key = key(name, labels);
        match kind {
            MetricKind::Counter => drop(self.recorder.register_counter(&key, &METADATA)),
            MetricKind::Gauge => drop(self.recorder.register_gauge(&key, &METADATA)),
            MetricKind::Histogram => drop(self.recorder.register_histogram(&key, &METADATA)),
        }
    }

    fn increment_counter<'a>(&self, name: &'static str, labels: Labels<'a>, by: u64) {
        self.recorder.register_counter(&key(name, labels), &METADATA).increment(by);
    }

    fn set_gauge<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64) {
        self.recorder.register_gauge(&key(name, labels), &METADATA).set(value);
    }

    fn observe_histogram<'a>(&self, name: &'static str, labels: Labels<'a>, value: f64) {
        self.recorder.register_histogram(&key(name, labels), &METADATA).record(value);
    }
}

#[cfg(test)]
mod tests {
    use waiaas_core::metrics as m;

    use super::*;

    #[test]
    fn counters_gauges_and_histograms_render_with_help_type_and_buckets() {
        let metrics = PrometheusMetrics::new("1.2.3");
        let labels = [("chain", "ethereum"), ("type", "transfer"), ("tier", "instant"), ("status", "confirmed")];
        metrics.increment_counter(m::TRANSACTIONS_TOTAL, &labels, 1);
        metrics.increment_counter(m::TRANSACTIONS_TOTAL, &labels, 2);
        metrics.set_gauge(m::SESSIONS_ACTIVE, &[], 4.0);
        metrics.observe_histogram(m::TRANSACTION_DURATION_SECONDS, &[], 3.0);
        let text = metrics.render();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        has("# TYPE waiaas_transactions_total counter");
        has(&format!("# HELP waiaas_transactions_total {}", m::lookup(m::TRANSACTIONS_TOTAL).unwrap().help));
        has(r#"waiaas_transactions_total{chain="ethereum",type="transfer",tier="instant",status="confirmed"} 3"#);
        has("# TYPE waiaas_sessions_active gauge");
        has("waiaas_sessions_active 4");
        has("# TYPE waiaas_transaction_duration_seconds histogram");
        has(r#"waiaas_transaction_duration_seconds_bucket{le="2"} 0"#);
        has(r#"waiaas_transaction_duration_seconds_bucket{le="5"} 1"#);
        has(r#"waiaas_transaction_duration_seconds_bucket{le="+Inf"} 1"#);
        has("waiaas_transaction_duration_seconds_count 1");
        has(r#"waiaas_build_info{version="1.2.3"} 1"#);
        assert!(!text.contains("quantile"), "histograms must not be summaries");
    }

    #[test]
    fn registered_series_render_at_zero_before_any_update() {
        let metrics = PrometheusMetrics::new("1");
        metrics.register(m::POLICY_EVALUATIONS_TOTAL, MetricKind::Counter, &[("tier", "none"), ("result", "denied")]);
        metrics.register(m::RPC_DURATION_SECONDS, MetricKind::Histogram, &[("method", "eth_call")]);
        let text = metrics.render();
        let has = |line: &str| assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        has("# TYPE waiaas_policy_evaluations_total counter");
        has(r#"waiaas_policy_evaluations_total{tier="none",result="denied"} 0"#);
        has("# TYPE waiaas_rpc_duration_seconds histogram");
        has(r#"waiaas_rpc_duration_seconds_bucket{method="eth_call",le="+Inf"} 0"#);
        has(r#"waiaas_rpc_duration_seconds_count{method="eth_call"} 0"#);
    }

    #[test]
    fn registries_are_independent() {
        let a = PrometheusMetrics::new("1");
        let b = PrometheusMetrics::new("1");
        a.increment_counter(m::AUDIT_WRITE_FAILURES_TOTAL, &[], 1);
        assert!(a.render().contains("waiaas_audit_write_failures_total 1"));
        assert!(!b.render().contains("waiaas_audit_write_failures_total 1"));
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = PrometheusMetrics::new("1");
        metrics.set_gauge(m::ORACLE_PRICE_AGE_SECONDS, &[("symbol", "E\"T\\H")], 1.0);
        assert!(
            metrics.render().contains(r#"waiaas_oracle_price_age_seconds{symbol="E\"T\\H"} 1"#),
            "{}",
            metrics.render()
        );
    }
}
