//! The metric catalog: every metric the daemon exports, with its kind, HELP text and (for histograms) buckets.
//! Emitters (core services, the EVM adapter, the HTTP middleware) name metrics by these constants and record
//! through the [`crate::ports::MetricsRegistry`] port; the metrics adapter describes every entry at start so each
//! metric has HELP text and explicit buckets.
//!
//! Label values come only from bounded enumerations (chain, transaction type, tier, status, RPC method, route
//! template, HTTP method, status code): never an id, address, token or raw path.
//!
//! Transactions are counted once, when they reach a final status (confirmed, failed, cancelled, expired),
//! labelled with the tier they were admitted at (`none` for a policy denial, which is stored as cancelled).

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// One catalog entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    /// Histogram bucket upper bounds (seconds); empty for counters and gauges.
    pub buckets: &'static [f64],
}

pub const TRANSACTIONS_TOTAL: &str = "waiaas_transactions_total";
pub const TRANSACTION_DURATION_SECONDS: &str = "waiaas_transaction_duration_seconds";
pub const POLICY_EVALUATIONS_TOTAL: &str = "waiaas_policy_evaluations_total";
pub const SESSIONS_ACTIVE: &str = "waiaas_sessions_active";
pub const AGENTS_ACTIVE: &str = "waiaas_agents_active";
pub const KILLSWITCH_STATE: &str = "waiaas_killswitch_state";
pub const AUDIT_WRITE_FAILURES_TOTAL: &str = "waiaas_audit_write_failures_total";
pub const ORACLE_PRICE_AGE_SECONDS: &str = "waiaas_oracle_price_age_seconds";
pub const BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "waiaas_backup_last_success_timestamp_seconds";
pub const RPC_REQUESTS_TOTAL: &str = "waiaas_rpc_requests_total";
pub const RPC_DURATION_SECONDS: &str = "waiaas_rpc_duration_seconds";
pub const HTTP_REQUESTS_TOTAL: &str = "waiaas_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "waiaas_http_request_duration_seconds";
pub const BUILD_INFO: &str = "waiaas_build_info";

/// Request → final status: seconds to hours (DELAY queues and owner approvals).
const TX_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0];
/// Sub-millisecond local calls to slow remote nodes.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the daemon exports.
pub const CATALOG: &[MetricDef] = &[
    def(
        TRANSACTIONS_TOTAL,
        MetricKind::Counter,
        "Transactions that reached a final status, by chain, type, admitted tier (none when denied) and status.",
    ),
    MetricDef {
        name: TRANSACTION_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        help: "Seconds from a transaction's request to its final status, by the daemon's clock.",
        buckets: TX_BUCKETS,
    },
    def(
        POLICY_EVALUATIONS_TOTAL,
        MetricKind::Counter,
        "Policy evaluations of sent transactions, by tier (none when denied) and result (allowed or denied).",
    ),
    def(SESSIONS_ACTIVE, MetricKind::Gauge, "Sessions that are neither revoked nor expired."),
    def(AGENTS_ACTIVE, MetricKind::Gauge, "Agents in the ACTIVE status."),
    def(KILLSWITCH_STATE, MetricKind::Gauge, "Kill-switch state: 0 = ACTIVE, 1 = SUSPENDED, 2 = LOCKED."),
    def(AUDIT_WRITE_FAILURES_TOTAL, MetricKind::Counter, "Audit-log appends that failed."),
    def(
        ORACLE_PRICE_AGE_SECONDS,
        MetricKind::Gauge,
        "Age in seconds of the price oracle's quote, by configured symbol (refreshed at each scrape).",
    ),
    def(
        BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS,
        MetricKind::Gauge,
        "Unix time of the last successful backup (0 when there has been none).",
    ),
    def(RPC_REQUESTS_TOTAL, MetricKind::Counter, "Chain JSON-RPC requests, by chain, method and status (ok or error)."),
    MetricDef {
        name: RPC_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        help: "Chain JSON-RPC request duration in seconds, by method.",
        buckets: LATENCY_BUCKETS,
    },
    def(
        HTTP_REQUESTS_TOTAL,
        MetricKind::Counter,
        "HTTP requests, by route template (unmatched for unknown routes), method and status code.",
    ),
    MetricDef {
        name: HTTP_REQUEST_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        help: "HTTP request duration in seconds, by route template.",
        buckets: LATENCY_BUCKETS,
    },
    def(BUILD_INFO, MetricKind::Gauge, "Build information; the value is always 1."),
];

const fn def(name: &'static str, kind: MetricKind, help: &'static str) -> MetricDef {
    MetricDef { name, kind, help, buckets: &[] }
}

/// The catalog entry of `name`.
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_prefixed_and_histograms_have_buckets() {
        for (i, d) in CATALOG.iter().enumerate() {
            assert!(d.name.starts_with("waiaas_"), "{}", d.name);
            assert!(CATALOG[..i].iter().all(|o| o.name != d.name), "duplicate {}", d.name);
            assert!(!d.help.is_empty());
            assert_eq!(d.kind == MetricKind::Histogram, !d.buckets.is_empty(), "{}", d.name);
            assert!(d.buckets.windows(2).all(|w| w[0] < w[1]), "{} buckets not increasing", d.name);
            assert_eq!(d.kind == MetricKind::Counter, d.name.ends_with("_total"), "{}", d.name);
        }
        assert_eq!(lookup(TRANSACTIONS_TOTAL).map(|d| d.kind), Some(MetricKind::Counter));
        assert_eq!(lookup("nope"), None);
    }
}
