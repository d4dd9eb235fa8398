//! The five standard rules (A-01..A-05). Each is a pure function of the agent's [`AgentActivity`], its
//! parameters and the time; the formulas are in `docs/anomaly.md`.

use std::sync::Arc;

use super::activity::{
    AgentActivity, BUCKET_SECONDS, BUCKETS_PER_HOUR, HOUR_SECONDS, LEARNING_SECONDS, SpendKey, Trigger, base_units,
};
use super::{AnomalyRule, Finding, RuleParams};
use crate::UnixSeconds;

/// The five standard rules, in id order.
pub fn standard_rules() -> Vec<Arc<dyn AnomalyRule>> {
    vec![
        Arc::new(SpendSpike),
        Arc::new(FrequencySpike),
        Arc::new(UnusualHour),
        Arc::new(NewRecipients),
        Arc::new(BalanceDrop),
    ]
}

/// The mean of `values` without their largest one: one outlier (an earlier spike) cannot dominate the baseline,
/// and unlike a median it does not fall to zero for an agent that is idle in most periods.
pub fn trimmed_mean(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return values.first().copied().unwrap_or(0.0);
    }
    let largest = values.iter().copied().fold(f64::MIN, f64::max);
    (values.iter().sum::<f64>() - largest) / (values.len() - 1) as f64
}

fn param(params: &RuleParams, name: &str, default: f64) -> f64 {
    params.get(name).unwrap_or(default)
}

/// A-01 spend spike: value spent in the last hour > `multiplier` × the (trimmed) hourly average of the 24 hours
/// before it, and above an absolute floor (`min_usd`, or `min_base_units` for an unpriced asset).
#[derive(Clone, Copy, Debug, Default)]
pub struct SpendSpike;

impl AnomalyRule for SpendSpike {
    fn id(&self) -> &str {
        "A-01"
    }

    fn default_params(&self) -> RuleParams {
        RuleParams::from_pairs(&[("multiplier", 5.0), ("min_usd", 50.0), ("min_base_units", 1e16)])
    }

    fn evaluate(&self, activity: &AgentActivity, params: &RuleParams, now: UnixSeconds) -> Option<Finding> {
        let multiplier = param(params, "multiplier", 5.0);
        let mut worst: Option<Finding> = None;
        for (key, observed) in activity.spend_last_hour(now) {
            let floor = match key {
                SpendKey::Usd => param(params, "min_usd", 50.0),
                SpendKey::Asset { .. } => param(params, "min_base_units", 1e16),
            };
            let baseline = trimmed_mean(&activity.hourly_spend_before_last_hour(now, &key));
            let threshold = (multiplier * baseline).max(floor);
            if observed > threshold && worst.as_ref().is_none_or(|w| observed / threshold > w.observed / w.threshold) {
                worst = Some(Finding::new(self.id(), observed, threshold, HOUR_SECONDS, key.unit()));
            }
        }
        worst
    }
}

/// A-02 frequency spike: transactions in the current 10-minute bucket > `multiplier` × the (trimmed) average of
/// the six buckets before it, and more than `floor`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrequencySpike;

impl AnomalyRule for FrequencySpike {
    fn id(&self) -> &str {
        "A-02"
    }

    fn default_params(&self) -> RuleParams {
        RuleParams::from_pairs(&[("multiplier", 3.0), ("floor", 5.0)])
    }

    fn evaluate(&self, activity: &AgentActivity, params: &RuleParams, now: UnixSeconds) -> Option<Finding> {
        let observed = f64::from(activity.count_in_bucket(now, 0));
        let before: Vec<f64> =
            (1..=BUCKETS_PER_HOUR).map(|back| f64::from(activity.count_in_bucket(now, back))).collect();
        let threshold = (param(params, "multiplier", 3.0) * trimmed_mean(&before)).max(param(params, "floor", 5.0));
        (observed > threshold).then(|| Finding::new(self.id(), observed, threshold, BUCKET_SECONDS, "transactions"))
    }
}

/// A-03 unusual hour: a transaction in a UTC hour of day that held less than `max_share` of the agent's
/// transactions over the last 7 days (the transaction itself not counted), once the agent has been observed for
/// `min_history_seconds`.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnusualHour;

impl AnomalyRule for UnusualHour {
    fn id(&self) -> &str {
        "A-03"
    }

    fn default_params(&self) -> RuleParams {
        RuleParams::from_pairs(&[("max_share", 0.02), ("min_history_seconds", 259_200.0)])
    }

    fn evaluate(&self, activity: &AgentActivity, params: &RuleParams, now: UnixSeconds) -> Option<Finding> {
        let Some(Trigger::Transaction(at)) = activity.trigger() else { return None };
        let learned = activity
            .first_seen()
            .is_some_and(|first| (now.seconds_since(first) as f64) >= param(params, "min_history_seconds", 259_200.0));
        if !learned {
            return None;
        }
        let counts = activity.hour_of_day_counts(now);
        let total: u64 = counts.iter().sum();
        let hour = at.0.div_euclid(HOUR_SECONDS).rem_euclid(24) as usize;
        if total < 2 || counts[hour] == 0 {
            return None;
        }
        let observed = (counts[hour] - 1) as f64 / (total - 1) as f64;
        let threshold = param(params, "max_share", 0.02);
        (observed < threshold)
            .then(|| Finding::new(self.id(), observed, threshold, LEARNING_SECONDS, "share of 7-day activity"))
    }
}

/// A-04 new-recipient concentration: at least `min_count` payments in the last hour and at least `share` of them
/// to recipients the agent had not paid in the 7 days before.
#[derive(Clone, Copy, Debug, Default)]
pub struct NewRecipients;

impl AnomalyRule for NewRecipients {
    fn id(&self) -> &str {
        "A-04"
    }

    fn default_params(&self) -> RuleParams {
        RuleParams::from_pairs(&[("share", 0.8), ("min_count", 5.0)])
    }

    fn evaluate(&self, activity: &AgentActivity, params: &RuleParams, now: UnixSeconds) -> Option<Finding> {
        let (payments, to_new) = activity.payments_last_hour(now);
        if f64::from(payments) < param(params, "min_count", 5.0) || payments == 0 {
            return None;
        }
        let observed = f64::from(to_new) / f64::from(payments);
        let threshold = param(params, "share", 0.8);
        (observed >= threshold).then(|| Finding::new(self.id(), observed, threshold, HOUR_SECONDS, "share of payments"))
    }
}

/// A-05 balance drop: the latest native balance reading is at least `drop` below the highest reading of the last
/// hour on the same network.
#[derive(Clone, Copy, Debug, Default)]
pub struct BalanceDrop;

impl AnomalyRule for BalanceDrop {
    fn id(&self) -> &str {
        "A-05"
    }

    fn default_params(&self) -> RuleParams {
        RuleParams::from_pairs(&[("drop", 0.5)])
    }

    fn evaluate(&self, activity: &AgentActivity, params: &RuleParams, now: UnixSeconds) -> Option<Finding> {
        let latest = activity.balances(now).last()?;
        let highest = activity
            .balances(now)
            .filter(|r| r.network == latest.network)
            .map(|r| base_units(r.amount))
            .fold(0.0, f64::max);
        if highest <= 0.0 {
            return None;
        }
        let observed = (highest - base_units(latest.amount)) / highest;
        let threshold = param(params, "drop", 0.5);
        (observed >= threshold).then(|| {
            Finding::new(self.id(), observed, threshold, HOUR_SECONDS, format!("share of native@{}", latest.network))
        })
    }
}
