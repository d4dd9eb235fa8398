//! The metric catalog: every metric the daemon exports, with its kind, HELP text and (for histograms) buckets.
//! Emitters (core services, the EVM adapter, the HTTP middleware) name metrics by these constants and record
//! through the [`crate::ports::MetricsRegistry`] port; the metrics adapter describes every entry at start so each
//! metric has HELP text and explicit buckets.
//!
//! Label values come only from bounded enumerations (chain, transaction type, tier, status, RPC method, route
//! template, HTTP method, status code): never an id, address, token or raw path.
//!
//! Each entry also lists its label keys and where their values come from ([`LabelValues`]): values the core knows
//! (tiers, statuses, results, chains, types) are exported at zero from the first scrape; values only an emitter
//! knows (route templates, RPC methods) are exported at zero by that emitter when it is built.
//!
//! Transactions are counted once, when they reach a final status (confirmed, failed, cancelled, expired),
//! labelled with the tier they were admitted at (`none` for a policy denial, which is stored as cancelled).

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A monotonically increasing total (name ends in `_total`).
    Counter,
    /// A value that can go up and down, set to its latest reading.
    Gauge,
    /// A distribution of observations over fixed buckets.
    Histogram,
}

/// One catalog entry.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricDef {
    /// The exported metric name, prefixed `waiaas_`.
    pub name: &'static str,
    /// What kind of series it is.
    pub kind: MetricKind,
    /// The HELP text exported with it.
    pub help: &'static str,
    /// Histogram bucket upper bounds (seconds); empty for counters and gauges.
    pub buckets: &'static [f64],
    /// The label keys, in the order emitters pass them, with where their values come from.
    pub labels: &'static [LabelDef],
}

/// One label key of a metric and its values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LabelDef {
    /// The label name.
    pub key: &'static str,
    /// Its values, or that the emitter supplies them.
    pub values: LabelValues,
}

/// Where a label's values come from. Either way they are a bounded set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LabelValues {
    /// Every value, known to the core: `Waiaas::init_metrics` exports every combination at zero at unlock (as
    /// Prometheus' instrumentation guide advises), so a `rate()` works before the first event.
    Known(&'static [&'static str]),
    /// Known only to the emitter outside the core (route templates, RPC methods, configured symbols, the
    /// version): the emitter exports its series when it is built.
    Emitter,
}

/// `chain` label values.
pub const CHAINS: &[&str] = &["ethereum", "solana"];
/// `type` label values: the transaction kinds, lower case.
pub const TX_TYPES: &[&str] = &["transfer", "token_transfer", "contract_call", "approve", "batch"];
/// `tier` label values: the tier a transaction was admitted at, `none` for a denial.
pub const TIERS: &[&str] = &["none", "instant", "notify", "delay", "approval"];
/// `status` label values of counted (final) transactions.
pub const FINAL_STATUSES: &[&str] = &["confirmed", "failed", "cancelled", "expired"];
/// `status` label values of the non-final transaction gauge.
pub const NON_FINAL_STATUSES: &[&str] = &["pending", "queued", "executing", "submitted"];
/// `result` label values of policy evaluations.
pub const RESULTS: &[&str] = &["allowed", "denied"];
/// `status` label values of RPC requests.
pub const RPC_STATUSES: &[&str] = &["ok", "error"];

const fn known(key: &'static str, values: &'static [&'static str]) -> LabelDef {
    LabelDef { key, values: LabelValues::Known(values) }
}

const fn emitter(key: &'static str) -> LabelDef {
    LabelDef { key, values: LabelValues::Emitter }
}

/// Counter: transactions that reached a final status, by chain, type, admitted tier and status.
pub const TRANSACTIONS_TOTAL: &str = "waiaas_transactions_total";
/// Gauge: transactions not yet in a final status, by status.
pub const TRANSACTIONS_NON_FINAL: &str = "waiaas_transactions_non_final";
/// Histogram: seconds from a transaction's request to its final status.
pub const TRANSACTION_DURATION_SECONDS: &str = "waiaas_transaction_duration_seconds";
/// Counter: policy evaluations of sent transactions, by tier and result.
pub const POLICY_EVALUATIONS_TOTAL: &str = "waiaas_policy_evaluations_total";
/// Gauge: sessions neither revoked nor expired.
pub const SESSIONS_ACTIVE: &str = "waiaas_sessions_active";
/// Gauge: agents in the ACTIVE status.
pub const AGENTS_ACTIVE: &str = "waiaas_agents_active";
/// Gauge: the kill-switch state, 0 = ACTIVE, 1 = SUSPENDED, 2 = LOCKED.
pub const KILLSWITCH_STATE: &str = "waiaas_killswitch_state";
/// Counter: audit-log appends that failed.
pub const AUDIT_WRITE_FAILURES_TOTAL: &str = "waiaas_audit_write_failures_total";
/// Gauge: age in seconds of the price oracle's quote, by configured symbol.
pub const ORACLE_PRICE_AGE_SECONDS: &str = "waiaas_oracle_price_age_seconds";
/// Gauge: Unix time of the last successful backup, 0 when there has been none.
pub const BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "waiaas_backup_last_success_timestamp_seconds";
/// Gauge: seconds between scheduled backups, 0 when they are off.
pub const BACKUP_INTERVAL_SECONDS: &str = "waiaas_backup_interval_seconds";
/// Gauge: Unix time the daemon started (unlocked).
pub const START_TIME_SECONDS: &str = "waiaas_start_time_seconds";
/// Counter: chain JSON-RPC requests, by chain, method and status.
pub const RPC_REQUESTS_TOTAL: &str = "waiaas_rpc_requests_total";
/// Histogram: chain JSON-RPC request duration in seconds, by method.
pub const RPC_DURATION_SECONDS: &str = "waiaas_rpc_duration_seconds";
/// Counter: HTTP requests, by route template, method and status code.
pub const HTTP_REQUESTS_TOTAL: &str = "waiaas_http_requests_total";
/// Histogram: HTTP request duration in seconds, by route template.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "waiaas_http_request_duration_seconds";
/// Gauge: always 1, labelled with the daemon's version.
pub const BUILD_INFO: &str = "waiaas_build_info";
/// Counter: anomaly findings (shadow ones included), by rule.
pub const ANOMALY_DETECTIONS_TOTAL: &str = "waiaas_anomaly_detections_total";
/// Counter: requests refused by the IP ACL, by endpoint class.
pub const ACL_DENIED_TOTAL: &str = "waiaas_acl_denied_total";
/// Counter: Argon2id verifications of a master password against its stored hash (the unlock; a request never
/// runs one, see [`crate::services::master_auth`]).
pub const MASTER_PASSWORD_ARGON2_VERIFICATIONS_TOTAL: &str = "waiaas_master_password_argon2_verifications_total";

/// Counter: webhook delivery attempts, by result.
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "waiaas_webhook_deliveries_total";
/// Histogram: seconds from sending a webhook POST to its answer or failure.
pub const WEBHOOK_DELIVERY_DURATION_SECONDS: &str = "waiaas_webhook_delivery_duration_seconds";
/// Gauge: webhook deliveries queued (due, waiting for a retry, or in flight).
pub const WEBHOOK_QUEUE_DEPTH: &str = "waiaas_webhook_queue_depth";
/// `result` label values of webhook delivery attempts ([`crate::webhooks::retry::Verdict::result_label`]).
pub const WEBHOOK_RESULTS: &[&str] = &["success", "retry", "failed", "disabled"];

/// Counter: messages to people, by channel and result (sent, failed attempt, held back by the rate limit).
pub const NOTIFICATIONS_TOTAL: &str = "waiaas_notifications_total";

/// Request → final status: seconds to hours (DELAY queues and owner approvals).
const TX_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0];
/// Sub-millisecond local calls to slow remote nodes.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every metric the daemon exports.
pub const CATALOG: &[MetricDef] = &[
    MetricDef {
        name: TRANSACTIONS_TOTAL,
        kind: MetricKind::Counter,
        help: "Transactions that reached a final status, by chain, type, admitted tier (none when denied) and status.",
        buckets: &[],
        labels: &[
            known("chain", CHAINS),
            known("type", TX_TYPES),
            known("tier", TIERS),
            known("status", FINAL_STATUSES),
        ],
    },
    MetricDef {
        name: TRANSACTIONS_NON_FINAL,
        kind: MetricKind::Gauge,
        help: "Transactions not yet in a final status, by status (read from the database with the other state gauges).",
        buckets: &[],
        labels: &[known("status", NON_FINAL_STATUSES)],
    },
    MetricDef {
        name: TRANSACTION_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        help: "Seconds from a transaction's request to its final status, by the daemon's clock.",
        buckets: TX_BUCKETS,
        labels: &[],
    },
    MetricDef {
        name: POLICY_EVALUATIONS_TOTAL,
        kind: MetricKind::Counter,
        help: "Policy evaluations of sent transactions, by tier (none when denied) and result (allowed or denied).",
        buckets: &[],
        labels: &[known("tier", TIERS), known("result", RESULTS)],
    },
    def(SESSIONS_ACTIVE, MetricKind::Gauge, "Sessions that are neither revoked nor expired."),
    def(AGENTS_ACTIVE, MetricKind::Gauge, "Agents in the ACTIVE status."),
    def(KILLSWITCH_STATE, MetricKind::Gauge, "Kill-switch state: 0 = ACTIVE, 1 = SUSPENDED, 2 = LOCKED."),
    def(AUDIT_WRITE_FAILURES_TOTAL, MetricKind::Counter, "Audit-log appends that failed."),
    MetricDef {
        name: ORACLE_PRICE_AGE_SECONDS,
        kind: MetricKind::Gauge,
        help: "Age in seconds of the price oracle's quote, by configured symbol (refreshed at each scrape).",
        buckets: &[],
        labels: &[emitter("symbol")],
    },
    def(
        BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS,
        MetricKind::Gauge,
        "Unix time of the last successful backup (0 when there has been none).",
    ),
    def(
        BACKUP_INTERVAL_SECONDS,
        MetricKind::Gauge,
        "Seconds between scheduled backups ([backup] interval); 0 when scheduled backups are off.",
    ),
    def(START_TIME_SECONDS, MetricKind::Gauge, "Unix time the daemon started (unlocked), by its clock."),
    MetricDef {
        name: RPC_REQUESTS_TOTAL,
        kind: MetricKind::Counter,
        help: "Chain JSON-RPC requests, by chain, method and status (ok or error).",
        buckets: &[],
        labels: &[known("chain", CHAINS), emitter("method"), known("status", RPC_STATUSES)],
    },
    MetricDef {
        name: RPC_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        help: "Chain JSON-RPC request duration in seconds, by method.",
        buckets: LATENCY_BUCKETS,
        labels: &[emitter("method")],
    },
    MetricDef {
        name: HTTP_REQUESTS_TOTAL,
        kind: MetricKind::Counter,
        help: "HTTP requests, by route template (unmatched for unknown routes), method and status code.",
        buckets: &[],
        labels: &[emitter("route"), emitter("method"), emitter("status")],
    },
    MetricDef {
        name: HTTP_REQUEST_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        help: "HTTP request duration in seconds, by route template.",
        buckets: LATENCY_BUCKETS,
        labels: &[emitter("route")],
    },
    MetricDef {
        name: ACL_DENIED_TOTAL,
        kind: MetricKind::Counter,
        help: "Requests refused by the IP access control (403 ACCESS_DENIED_IP), by endpoint class.",
        buckets: &[],
        labels: &[known("class", crate::acl::EndpointClass::DENIABLE)],
    },
    def(
        MASTER_PASSWORD_ARGON2_VERIFICATIONS_TOTAL,
        MetricKind::Counter,
        "Argon2id verifications of a master password against its stored hash: one at unlock; requests compare an \
         HMAC and never run Argon2, so a flood of wrong passwords leaves it unchanged.",
    ),
    MetricDef {
        name: WEBHOOK_DELIVERIES_TOTAL,
        kind: MetricKind::Counter,
        help: "Webhook delivery attempts, by result (success, retry: failed and rescheduled, failed: given up, disabled: 410 Gone).",
        buckets: &[],
        labels: &[known("result", WEBHOOK_RESULTS)],
    },
    MetricDef {
        name: WEBHOOK_DELIVERY_DURATION_SECONDS,
        kind: MetricKind::Histogram,
        help: "Seconds from sending a webhook POST to its answer or failure.",
        buckets: LATENCY_BUCKETS,
        labels: &[],
    },
    def(
        WEBHOOK_QUEUE_DEPTH,
        MetricKind::Gauge,
        "Webhook deliveries queued: due, waiting for a retry, or in flight (0 on a host without webhooks).",
    ),
    MetricDef {
        name: NOTIFICATIONS_TOTAL,
        kind: MetricKind::Counter,
        help: "Notification messages to people, by channel and result (sent; failed: one failed attempt; held: held \
               back by the channel's rate limit, counted in its next digest). Digests and test messages included.",
        buckets: &[],
        labels: &[known("channel", crate::notifications::CHANNELS), known("result", crate::notifications::RESULTS)],
    },
    MetricDef {
        name: ANOMALY_DETECTIONS_TOTAL,
        kind: MetricKind::Counter,
        help: "Anomaly findings (OPS-06), shadow ones included, by rule id (every registered rule from the first scrape).",
        buckets: &[],
        labels: &[emitter("rule")],
    },
    MetricDef {
        name: BUILD_INFO,
        kind: MetricKind::Gauge,
        help: "Build information; the value is always 1.",
        buckets: &[],
        labels: &[emitter("version")],
    },
];

/// An unlabelled counter or gauge.
const fn def(name: &'static str, kind: MetricKind, help: &'static str) -> MetricDef {
    MetricDef { name, kind, help, buckets: &[], labels: &[] }
}

impl MetricDef {
    /// Every combination of this metric's labels when all of them are [`LabelValues::Known`] (one empty set for
    /// an unlabelled metric); `None` when an emitter supplies some values.
    pub fn known_label_sets(&self) -> Option<Vec<Vec<(&'static str, &'static str)>>> {
        let mut sets = vec![Vec::new()];
        for label in self.labels {
            let LabelValues::Known(values) = label.values else { return None };
            sets = sets
                .into_iter()
                .flat_map(|set| {
                    values.iter().map(move |value| {
                        let mut next = set.clone();
                        next.push((label.key, *value));
                        next
                    })
                })
                .collect();
        }
        Some(sets)
    }
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

    #[test]
    fn known_label_sets_are_the_product_of_the_known_values() {
        let sets = lookup(POLICY_EVALUATIONS_TOTAL).unwrap().known_label_sets().unwrap();
        assert_eq!(sets.len(), TIERS.len() * RESULTS.len());
        assert!(sets.contains(&vec![("tier", "none"), ("result", "denied")]));
        let tx = lookup(TRANSACTIONS_TOTAL).unwrap().known_label_sets().unwrap();
        assert_eq!(tx.len(), CHAINS.len() * TX_TYPES.len() * TIERS.len() * FINAL_STATUSES.len());
        assert_eq!(lookup(AUDIT_WRITE_FAILURES_TOTAL).unwrap().known_label_sets(), Some(vec![vec![]]));
        assert_eq!(lookup(HTTP_REQUESTS_TOTAL).unwrap().known_label_sets(), None);
        for d in CATALOG {
            let keys: Vec<_> = d.labels.iter().map(|l| l.key).collect();
            assert!(keys.iter().enumerate().all(|(i, k)| !keys[..i].contains(k)), "{} repeats a label", d.name);
            for label in d.labels {
                if let LabelValues::Known(values) = label.values {
                    assert!(!values.is_empty(), "{} {}", d.name, label.key);
                }
            }
        }
    }
}
