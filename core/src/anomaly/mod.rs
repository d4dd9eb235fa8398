//! OPS-06 anomaly detection, the pure part: the [`AnomalyRule`] trait, the [`AnomalyRegistry`] that drives every
//! registered rule (the five standard ones and any an embedding host adds), each agent's rolling
//! [`AgentActivity`], and the [`TierFloor`] a finding imposes.
//!
//! Evaluation is incremental: the activity is updated with each final transaction (or balance reading) and the
//! rules read only the activity's bounded buckets, never the agent's history. Nothing here knows where the
//! activity comes from or where findings go: [`crate::services::anomaly`] feeds it from the pipeline's events
//! and records what it finds. The rules' formulas are in `docs/anomaly.md`.

mod activity;
mod rules;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use activity::{
    AgentActivity, BUCKET_SECONDS, BalanceReading, HOUR_SECONDS, LEARNING_SECONDS, MAX_BALANCES, MAX_KNOWN_RECIPIENTS,
    Observation, SpendKey, Trigger, base_units,
};
pub use rules::{BalanceDrop, FrequencySpike, NewRecipients, SpendSpike, UnusualHour, standard_rules, trimmed_mean};

use crate::domain::Tier;
use crate::{AgentId, TxId, UnixSeconds};

/// A rule's tunable parameters: named numbers (`multiplier`, `min_usd`, ...). The rule's
/// [`AnomalyRule::default_params`] names every parameter it reads; configuration may only set those.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RuleParams(BTreeMap<String, f64>);

impl RuleParams {
    /// Parameters from `(name, value)` pairs.
    pub fn from_pairs(pairs: &[(&str, f64)]) -> Self {
        RuleParams(pairs.iter().map(|(name, value)| ((*name).to_owned(), *value)).collect())
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.get(name).copied()
    }

    /// Sets `name` to `value`.
    pub fn set(&mut self, name: &str, value: f64) {
        self.0.insert(name.to_owned(), value);
    }

    /// Every `(name, value)`, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(name, value)| (name.as_str(), *value))
    }

    /// These parameters over `defaults`: a name set here wins.
    pub fn over(&self, defaults: &RuleParams) -> RuleParams {
        let mut merged = defaults.clone();
        merged.0.extend(self.0.iter().map(|(k, v)| (k.clone(), *v)));
        merged
    }
}

/// What a rule found: the value it observed, the threshold it crossed, over which window, in which unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The rule's id (`A-01`, ...).
    pub rule: String,
    /// The observed value.
    pub observed: f64,
    /// The threshold it crossed.
    pub threshold: f64,
    /// The window the value is measured over, in seconds.
    pub window_seconds: u64,
    /// What the values count (`USD`, `native@anvil`, `transactions`, a share, ...).
    pub unit: String,
}

impl Finding {
    /// A finding of rule `rule`.
    pub fn new(rule: &str, observed: f64, threshold: f64, window_seconds: i64, unit: impl Into<String>) -> Self {
        Finding {
            rule: rule.to_owned(),
            observed,
            threshold,
            window_seconds: u64::try_from(window_seconds).unwrap_or(0),
            unit: unit.into(),
        }
    }
}

/// One anomaly rule: a pure function of an agent's activity, its parameters and the time.
pub trait AnomalyRule: Send + Sync {
    /// The rule's stable id (`A-01`; a host's own rule should use its own prefix). Also the metric label.
    fn id(&self) -> &str;
    /// Every parameter the rule reads, with its default.
    fn default_params(&self) -> RuleParams;
    /// A finding when the activity crosses the rule's threshold at `now`; `None` otherwise.
    fn evaluate(&self, activity: &AgentActivity, params: &RuleParams, now: UnixSeconds) -> Option<Finding>;
}

/// How one rule runs.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleConfig {
    /// Whether it is evaluated at all.
    pub enabled: bool,
    /// Detect and report, but raise no tier.
    pub shadow: bool,
    /// Parameters over the rule's defaults.
    pub params: RuleParams,
}

impl Default for RuleConfig {
    fn default() -> Self {
        RuleConfig { enabled: true, shadow: false, params: RuleParams::default() }
    }
}

/// Cold start: no verdict on an agent before it has this much history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColdStart {
    /// Final transactions in the last 7 days.
    pub min_transactions: u64,
    /// Seconds since its first observed transaction.
    pub min_history_seconds: i64,
}

impl Default for ColdStart {
    fn default() -> Self {
        ColdStart { min_transactions: 20, min_history_seconds: 86_400 }
    }
}

/// The `[anomaly]` settings: on/off, the floor a finding sets, cold start, and each rule's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalySettings {
    /// Whether anything is evaluated.
    pub enabled: bool,
    /// The tier floor a (non-shadow) finding sets.
    pub floor_tier: Tier,
    /// How long that floor lasts, in seconds (a repeated finding extends it).
    pub floor_ttl_seconds: i64,
    /// No verdict before this much history.
    pub cold_start: ColdStart,
    /// Per rule id; a rule without an entry runs enabled, not in shadow, with its default parameters.
    pub rules: BTreeMap<String, RuleConfig>,
}

impl Default for AnomalySettings {
    fn default() -> Self {
        AnomalySettings {
            enabled: true,
            floor_tier: Tier::Delay,
            floor_ttl_seconds: 86_400,
            cold_start: ColdStart::default(),
            rules: BTreeMap::new(),
        }
    }
}

/// A finding of one rule, in shadow mode or not.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// What the rule found.
    pub finding: Finding,
    /// In shadow mode: reported, raises no tier.
    pub shadow: bool,
}

/// The registered rules and how they run. A registered rule is evaluated: there is no other list.
#[derive(Clone)]
pub struct AnomalyRegistry {
    rules: Vec<Arc<dyn AnomalyRule>>,
    settings: AnomalySettings,
}

impl std::fmt::Debug for AnomalyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnomalyRegistry").field("rules", &self.rule_ids()).field("settings", &self.settings).finish()
    }
}

impl AnomalyRegistry {
    /// No rules yet.
    pub fn empty(settings: AnomalySettings) -> Self {
        AnomalyRegistry { rules: Vec::new(), settings }
    }

    /// The five standard rules A-01..A-05.
    pub fn standard(settings: AnomalySettings) -> Self {
        let mut registry = AnomalyRegistry::empty(settings);
        for rule in standard_rules() {
            registry.rules.push(rule);
        }
        registry
    }

    /// Adds a rule; a second rule with the same id is refused (returns false).
    pub fn register(&mut self, rule: Arc<dyn AnomalyRule>) -> bool {
        if self.rules.iter().any(|r| r.id() == rule.id()) {
            return false;
        }
        self.rules.push(rule);
        true
    }

    /// The ids of the registered rules, in registration order.
    pub fn rule_ids(&self) -> Vec<String> {
        self.rules.iter().map(|r| r.id().to_owned()).collect()
    }

    /// The settings in force.
    pub fn settings(&self) -> &AnomalySettings {
        &self.settings
    }

    /// Replaces the settings (SIGHUP); the rules stay registered.
    pub fn configure(&mut self, settings: AnomalySettings) {
        self.settings = settings;
    }

    /// How `rule` runs: its configuration with its parameters over the rule's defaults.
    pub fn config_of(&self, rule: &dyn AnomalyRule) -> RuleConfig {
        let configured = self.settings.rules.get(rule.id()).cloned().unwrap_or_default();
        RuleConfig { params: configured.params.over(&rule.default_params()), ..configured }
    }

    /// Whether an agent with `activity` is past the cold start at `now`.
    pub fn warmed_up(&self, activity: &AgentActivity, now: UnixSeconds) -> bool {
        let cold = self.settings.cold_start;
        activity.transactions_7d(now) >= cold.min_transactions
            && activity.first_seen().is_some_and(|first| now.seconds_since(first) >= cold.min_history_seconds)
    }

    /// Every enabled rule's finding on `activity` at `now`; nothing when detection is off or the agent is still
    /// in its cold start.
    pub fn evaluate(&self, activity: &AgentActivity, now: UnixSeconds) -> Vec<Detection> {
        if !self.settings.enabled || !self.warmed_up(activity, now) {
            return Vec::new();
        }
        self.rules
            .iter()
            .filter_map(|rule| {
                let config = self.config_of(rule.as_ref());
                if !config.enabled {
                    return None;
                }
                let finding = rule.evaluate(activity, &config.params, now)?;
                Some(Detection { finding, shadow: config.shadow })
            })
            .collect()
    }
}

/// A minimum tier imposed on an agent by a finding, until `expires_at` or until the operator clears it.
#[derive(Clone, Debug, PartialEq)]
pub struct TierFloor {
    /// The agent.
    pub agent_id: AgentId,
    /// No transaction of the agent is admitted below this tier.
    pub tier: Tier,
    /// When it stops applying (by the core's clock; an expired floor is ignored, not deleted).
    pub expires_at: UnixSeconds,
    /// The rule whose finding set or last extended it.
    pub rule: String,
    /// When it was set or last extended.
    pub updated_at: UnixSeconds,
}

impl TierFloor {
    /// Whether it applies at `now`.
    pub fn in_force(&self, now: UnixSeconds) -> bool {
        self.expires_at > now
    }

    /// The tier it imposes at `now`, if any.
    pub fn tier_at(floor: Option<&TierFloor>, now: UnixSeconds) -> Option<Tier> {
        floor.filter(|f| f.in_force(now)).map(|f| f.tier)
    }

    /// The floor after a new finding raises `raised` over `existing` at `now`: a floor in force is never lowered
    /// (the higher tier and the later expiry win); an expired one is replaced.
    pub fn merge(existing: Option<&TierFloor>, raised: TierFloor, now: UnixSeconds) -> TierFloor {
        match existing.filter(|f| f.in_force(now)) {
            None => raised,
            Some(current) => TierFloor {
                tier: current.tier.max(raised.tier),
                expires_at: current.expires_at.max(raised.expires_at),
                ..raised
            },
        }
    }
}

/// A stored finding.
#[derive(Clone, Debug, PartialEq)]
pub struct FindingRecord {
    /// Its sequence number (ascending in detection order).
    pub id: i64,
    /// The agent.
    pub agent_id: AgentId,
    /// The final transaction whose observation set it off, if any.
    pub tx_id: Option<TxId>,
    /// What was found.
    pub finding: Finding,
    /// Found in shadow mode (no floor was set).
    pub shadow: bool,
    /// When it was found.
    pub created_at: UnixSeconds,
}

#[cfg(test)]
mod tests;
