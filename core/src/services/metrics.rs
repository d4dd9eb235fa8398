//! What the services record through the [`crate::ports::MetricsRegistry`] port (names in [`crate::metrics`]).
//!
//! - Transactions are counted once, when they reach a final status, with the tier they were admitted at (`none`
//!   for a denial); the duration histogram observes request → final by the core's clock.
//! - Policy evaluations are counted for sends only. Simulate never reaches this module (`simulate` is handed
//!   read-only capabilities, no registry), so a dry run moves no pipeline metric; only the HTTP request and the
//!   RPC reads it really makes are counted, by the edge and the chain adapter.
//! - Every counter and histogram whose labels the catalog enumerates ([`m::LabelValues::Known`]: tiers,
//!   statuses, results, chains, types) is exported at zero at unlock, from the catalog, so every family is on the
//!   first scrape and a new one cannot be forgotten (Prometheus' instrumentation guide: avoid missing metrics).
//! - The start time and the backup interval (set by the host's scheduler, 0 until then) let an alert on the last
//!   backup wait for the first interval and stay quiet when scheduled backups are off.
//! - State gauges (active sessions, active agents, non-final transactions by status, kill switch, last backup)
//!   are read at unlock and after every change that moves them, so they are right after a restart;
//!   [`Waiaas::refresh_state_gauges`] is also called periodically by the host (sessions expire and transactions
//!   move without an event this module sees).
//!
//! Every update is an in-memory write in the registry; the only reads are the three `COUNT`s after a session,
//! agent or kill-switch change.

use super::Waiaas;
use crate::domain::{AgentStatus, Chain, KillSwitchState, TxStatus};
use crate::metrics as m;
use crate::policy_engine::Tier;
use crate::ports::TxRecord;
use crate::{Result, UnixSeconds};

pub(crate) fn tier_label(tier: Option<Tier>) -> &'static str {
    match tier {
        None => "none",
        Some(Tier::Instant) => "instant",
        Some(Tier::Notify) => "notify",
        Some(Tier::Delay) => "delay",
        Some(Tier::Approval) => "approval",
    }
}

pub(crate) fn status_label(status: TxStatus) -> &'static str {
    match status {
        TxStatus::Pending => "pending",
        TxStatus::Queued => "queued",
        TxStatus::Executing => "executing",
        TxStatus::Submitted => "submitted",
        TxStatus::Confirmed => "confirmed",
        TxStatus::Failed => "failed",
        TxStatus::Cancelled => "cancelled",
        TxStatus::Expired => "expired",
    }
}

fn killswitch_value(state: KillSwitchState) -> f64 {
    match state {
        KillSwitchState::Active => 0.0,
        KillSwitchState::Suspended => 1.0,
        KillSwitchState::Locked => 2.0,
    }
}

impl Waiaas {
    /// Counts a transaction that reached `status` (final) and observes its request → final duration.
    pub(crate) fn record_final(&self, record: &TxRecord, chain: Chain, status: TxStatus) {
        let kind = record.kind.type_name().to_ascii_lowercase();
        let labels = [
            ("chain", chain.as_str()),
            ("type", kind.as_str()),
            ("tier", tier_label(record.tier)),
            ("status", status_label(status)),
        ];
        let metrics = &self.ports.metrics;
        metrics.increment_counter(m::TRANSACTIONS_TOTAL, &labels, 1);
        let seconds = (self.now().0 - record.created_at.0).max(0);
        metrics.observe_histogram(m::TRANSACTION_DURATION_SECONDS, &[], seconds as f64);
    }

    /// [`Waiaas::record_final`] for a row that only has its agent id (the chain is the agent's).
    pub(crate) async fn record_final_of(&self, record: &TxRecord, status: TxStatus) {
        let chain = match self.ports.agents.get(record.agent_id).await {
            Ok(Some(agent)) => agent.chain,
            // A vanished row must not lose the count: its network's family says the chain.
            _ => match self.ports.chain.networks().into_iter().find(|n| n.name == record.network).map(|n| n.family) {
                Some(crate::domain::ChainFamily::Solana) => Chain::Solana,
                _ => Chain::Ethereum,
            },
        };
        self.record_final(record, chain, status);
    }

    pub(crate) fn record_policy_evaluation(&self, tier: Option<Tier>, allowed: bool) {
        let result = if allowed { "allowed" } else { "denied" };
        self.ports.metrics.increment_counter(
            m::POLICY_EVALUATIONS_TOTAL,
            &[("tier", tier_label(tier)), ("result", result)],
            1,
        );
    }

    pub(crate) fn record_audit_write_failure(&self) {
        self.ports.metrics.increment_counter(m::AUDIT_WRITE_FAILURES_TOTAL, &[], 1);
    }

    pub(crate) fn set_killswitch_gauge(&self, state: KillSwitchState) {
        self.ports.metrics.set_gauge(m::KILLSWITCH_STATE, &[], killswitch_value(state));
    }

    /// Reads the active-session, active-agent and non-final transaction counts from the repositories into their
    /// gauges.
    pub async fn refresh_state_gauges(&self) -> Result<()> {
        let sessions = self.ports.sessions.count_active(self.now()).await?;
        let agents = self.ports.agents.count_by_status(AgentStatus::Active).await?;
        let non_final = self.ports.transactions.count_non_final().await?;
        self.ports.metrics.set_gauge(m::SESSIONS_ACTIVE, &[], sessions as f64);
        self.ports.metrics.set_gauge(m::AGENTS_ACTIVE, &[], agents as f64);
        for status in TxStatus::ALL.into_iter().filter(|s| !s.is_final()) {
            let count = non_final.iter().filter(|(s, _)| *s == status).map(|(_, n)| *n).sum::<u64>();
            self.ports.metrics.set_gauge(m::TRANSACTIONS_NON_FINAL, &[("status", status_label(status))], count as f64);
        }
        Ok(())
    }

    /// After a change: a failed refresh leaves the previous values (the periodic refresh repairs them).
    pub(crate) async fn refresh_state_gauges_quietly(&self) {
        let _ = self.refresh_state_gauges().await;
    }

    /// Initial values at unlock: every counter and histogram of the catalog whose label values it knows, at zero
    /// for each combination; the state gauges from the DB, the kill switch, the last backup (0 when none).
    pub(crate) async fn init_metrics(&self) -> Result<()> {
        for def in m::CATALOG.iter().filter(|d| d.kind != m::MetricKind::Gauge) {
            for labels in def.known_label_sets().unwrap_or_default() {
                self.ports.metrics.register(def.name, def.kind, &labels);
            }
        }
        self.set_killswitch_gauge(self.kill_switch_state().state);
        let last_backup = self.last_backup_success().await?.map_or(0.0, |at| at.0 as f64);
        self.ports.metrics.set_gauge(m::BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS, &[], last_backup);
        // Off until the host's backup scheduler says otherwise (`record_backup_interval`).
        self.ports.metrics.set_gauge(m::BACKUP_INTERVAL_SECONDS, &[], 0.0);
        self.ports.metrics.set_gauge(m::START_TIME_SECONDS, &[], self.now().0 as f64);
        // Read from the streams and the retry queue by the host's delivery task once webhooks are attached.
        self.ports.metrics.set_gauge(m::WEBHOOK_QUEUE_DEPTH, &[], 0.0);
        self.record_master_password_verifications();
        self.refresh_state_gauges().await
    }

    /// Sets the age of the oracle's quote for each of `symbols` (the configured ones: a bounded label set). Cheap:
    /// called at each scrape.
    pub fn refresh_oracle_ages(&self, symbols: &[String]) {
        let now = self.now();
        for symbol in symbols {
            if let Some(quote) = self.ports.prices.usd_price(crate::ports::PriceKey::Native { symbol }) {
                let age = (now.0 - quote.observed_at.0).max(0) as f64;
                self.ports.metrics.set_gauge(m::ORACLE_PRICE_AGE_SECONDS, &[("symbol", symbol)], age);
            }
        }
    }

    /// Records the backup scheduler's interval in seconds (0: scheduled backups are off), so an alert on the last
    /// success fires only when backups are due.
    pub fn record_backup_interval(&self, seconds: u64) {
        self.ports.metrics.set_gauge(m::BACKUP_INTERVAL_SECONDS, &[], seconds as f64);
    }

    /// Records a successful backup (`waiaas_backup_last_success_timestamp_seconds`).
    pub fn record_backup_success(&self, at: UnixSeconds) {
        self.ports.metrics.set_gauge(m::BACKUP_LAST_SUCCESS_TIMESTAMP_SECONDS, &[], at.0 as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Chain;

    /// The label values the services emit are the ones the catalog enumerates (and exports at zero at unlock).
    #[test]
    fn emitted_label_values_are_the_catalogs() {
        let tiers: Vec<_> = std::iter::once(None).chain(Tier::ALL.map(Some)).map(tier_label).collect();
        assert_eq!(tiers, m::TIERS);
        let (finals, non_finals): (Vec<_>, Vec<_>) = TxStatus::ALL.into_iter().partition(|s| s.is_final());
        assert_eq!(finals.into_iter().map(status_label).collect::<Vec<_>>(), m::FINAL_STATUSES);
        assert_eq!(non_finals.into_iter().map(status_label).collect::<Vec<_>>(), m::NON_FINAL_STATUSES);
        // A new chain does not compile until it is added here and, by this test, to the catalog.
        let chains = [Chain::Ethereum, Chain::Solana].map(|chain| match chain {
            Chain::Ethereum | Chain::Solana => chain.as_str(),
        });
        assert_eq!(chains, m::CHAINS);
    }
}
