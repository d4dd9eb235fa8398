//! Policies: typed rules parsed from the operator's JSON. Unknown keys are refused, not ignored.

use serde::Deserialize;

use super::agent::EvmAddress;
use crate::error::{Error, Issue};
use crate::{AgentId, Amount, PolicyId, UnixSeconds};

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PolicyType {
    SpendingLimit,
    Whitelist,
    AllowedTokens,
    ContractWhitelist,
    ApprovedSpenders,
    RateLimit,
    TimeRestriction,
}

impl PolicyType {
    pub const ALL: [PolicyType; 7] = [
        PolicyType::SpendingLimit,
        PolicyType::Whitelist,
        PolicyType::AllowedTokens,
        PolicyType::ContractWhitelist,
        PolicyType::ApprovedSpenders,
        PolicyType::RateLimit,
        PolicyType::TimeRestriction,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::SpendingLimit => "SPENDING_LIMIT",
            PolicyType::Whitelist => "WHITELIST",
            PolicyType::AllowedTokens => "ALLOWED_TOKENS",
            PolicyType::ContractWhitelist => "CONTRACT_WHITELIST",
            PolicyType::ApprovedSpenders => "APPROVED_SPENDERS",
            PolicyType::RateLimit => "RATE_LIMIT",
            PolicyType::TimeRestriction => "TIME_RESTRICTION",
        }
    }

    pub fn parse(s: &str) -> Option<PolicyType> {
        PolicyType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// SPENDING_LIMIT: the tier by amount (wei thresholds, optional USD thresholds).
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpendingLimit {
    pub instant_max: Amount,
    pub notify_max: Amount,
    pub delay_max: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instant_max_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_max_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_max_usd: Option<f64>,
    #[serde(default = "default_delay_seconds")]
    pub delay_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_limit_usd: Option<f64>,
}

fn default_delay_seconds() -> u64 {
    300
}

/// Longest RATE_LIMIT window: the pipeline reads one day of history per admission.
pub const MAX_RATE_WINDOW_SECONDS: u64 = 86_400;

#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub max_requests: u32,
    pub window_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeRestriction {
    /// Hours of the day (UTC, 0–23) in which transfers are allowed.
    pub allowed_hours: Vec<u8>,
    /// Days of the week (0 = Sunday … 6 = Saturday) on which transfers are allowed.
    #[serde(default = "all_days")]
    pub allowed_days: Vec<u8>,
}

fn all_days() -> Vec<u8> {
    (0..7).collect()
}

/// The typed rules of one policy.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyRules {
    SpendingLimit(SpendingLimit),
    Whitelist { allowed_addresses: Vec<EvmAddress> },
    AllowedTokens { tokens: Vec<EvmAddress> },
    ContractWhitelist { contracts: Vec<EvmAddress> },
    ApprovedSpenders { spenders: Vec<EvmAddress> },
    RateLimit(RateLimit),
    TimeRestriction(TimeRestriction),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhitelistJson {
    allowed_addresses: Vec<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensJson {
    tokens: Vec<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractsJson {
    contracts: Vec<String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpendersJson {
    spenders: Vec<String>,
}

impl PolicyRules {
    pub fn policy_type(&self) -> PolicyType {
        match self {
            PolicyRules::SpendingLimit(_) => PolicyType::SpendingLimit,
            PolicyRules::Whitelist { .. } => PolicyType::Whitelist,
            PolicyRules::AllowedTokens { .. } => PolicyType::AllowedTokens,
            PolicyRules::ContractWhitelist { .. } => PolicyType::ContractWhitelist,
            PolicyRules::ApprovedSpenders { .. } => PolicyType::ApprovedSpenders,
            PolicyRules::RateLimit(_) => PolicyType::RateLimit,
            PolicyRules::TimeRestriction(_) => PolicyType::TimeRestriction,
        }
    }

    /// Parses and validates `rules` for `policy_type`; errors name the offending path under `rules`.
    pub fn parse(policy_type: PolicyType, rules: &serde_json::Value) -> Result<PolicyRules, Error> {
        fn de<T: serde::de::DeserializeOwned>(rules: &serde_json::Value) -> Result<T, Error> {
            T::deserialize(rules).map_err(|e| Error::invalid_field("rules", e.to_string()))
        }
        fn addresses(field: &str, raw: Vec<String>) -> Result<Vec<EvmAddress>, Error> {
            let mut issues = Vec::new();
            let mut out = Vec::with_capacity(raw.len());
            for (i, text) in raw.iter().enumerate() {
                match text.parse::<EvmAddress>() {
                    Ok(a) => out.push(a),
                    Err(message) => issues.push(Issue { path: format!("rules.{field}[{i}]"), message }),
                }
            }
            if issues.is_empty() { Ok(out) } else { Err(Error::validation(issues)) }
        }
        let parsed = match policy_type {
            PolicyType::SpendingLimit => {
                let limit: SpendingLimit = de(rules)?;
                if !(limit.instant_max <= limit.notify_max && limit.notify_max <= limit.delay_max) {
                    return Err(Error::invalid_field(
                        "rules",
                        "thresholds must satisfy instant_max <= notify_max <= delay_max",
                    ));
                }
                let usd = [limit.instant_max_usd, limit.notify_max_usd, limit.delay_max_usd, limit.daily_limit_usd];
                if usd.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
                    return Err(Error::invalid_field("rules", "USD thresholds must be finite and non-negative"));
                }
                PolicyRules::SpendingLimit(limit)
            }
            PolicyType::Whitelist => {
                let raw: WhitelistJson = de(rules)?;
                PolicyRules::Whitelist { allowed_addresses: addresses("allowed_addresses", raw.allowed_addresses)? }
            }
            PolicyType::AllowedTokens => {
                let raw: TokensJson = de(rules)?;
                PolicyRules::AllowedTokens { tokens: addresses("tokens", raw.tokens)? }
            }
            PolicyType::ContractWhitelist => {
                let raw: ContractsJson = de(rules)?;
                PolicyRules::ContractWhitelist { contracts: addresses("contracts", raw.contracts)? }
            }
            PolicyType::ApprovedSpenders => {
                let raw: SpendersJson = de(rules)?;
                PolicyRules::ApprovedSpenders { spenders: addresses("spenders", raw.spenders)? }
            }
            PolicyType::RateLimit => {
                let limit: RateLimit = de(rules)?;
                if limit.max_requests == 0 || limit.window_seconds == 0 {
                    return Err(Error::invalid_field("rules", "max_requests and window_seconds must be positive"));
                }
                if limit.window_seconds > MAX_RATE_WINDOW_SECONDS {
                    return Err(Error::invalid_field(
                        "rules.window_seconds",
                        format!("at most {MAX_RATE_WINDOW_SECONDS} (one day)"),
                    ));
                }
                PolicyRules::RateLimit(limit)
            }
            PolicyType::TimeRestriction => {
                let restriction: TimeRestriction = de(rules)?;
                if restriction.allowed_hours.iter().any(|h| *h > 23) {
                    return Err(Error::invalid_field("rules.allowed_hours", "hours are 0..=23"));
                }
                if restriction.allowed_days.iter().any(|d| *d > 6) {
                    return Err(Error::invalid_field("rules.allowed_days", "days are 0 (Sunday) ..= 6"));
                }
                PolicyRules::TimeRestriction(restriction)
            }
        };
        Ok(parsed)
    }

    /// The canonical JSON form (snake_case keys), as stored and returned.
    pub fn to_json(&self) -> serde_json::Value {
        fn list(key: &str, items: &[EvmAddress]) -> serde_json::Value {
            let values: Vec<String> = items.iter().map(ToString::to_string).collect();
            serde_json::json!({ key: values })
        }
        match self {
            PolicyRules::SpendingLimit(limit) => serde_json::to_value(limit).unwrap_or_default(),
            PolicyRules::Whitelist { allowed_addresses } => list("allowed_addresses", allowed_addresses),
            PolicyRules::AllowedTokens { tokens } => list("tokens", tokens),
            PolicyRules::ContractWhitelist { contracts } => list("contracts", contracts),
            PolicyRules::ApprovedSpenders { spenders } => list("spenders", spenders),
            PolicyRules::RateLimit(limit) => serde_json::to_value(limit).unwrap_or_default(),
            PolicyRules::TimeRestriction(restriction) => serde_json::to_value(restriction).unwrap_or_default(),
        }
    }
}

/// A policy: global when `agent_id` is `None`, otherwise for one agent (overriding a global one of its type).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    pub id: PolicyId,
    pub agent_id: Option<AgentId>,
    pub rules: PolicyRules,
    pub enabled: bool,
    pub created_at: UnixSeconds,
    pub updated_at: UnixSeconds,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check(policy_type: PolicyType, rules: serde_json::Value, ok: bool) {
        let result = PolicyRules::parse(policy_type, &rules);
        assert_eq!(result.is_ok(), ok, "{policy_type:?} {rules} → {result:?}");
        if let Ok(parsed) = result {
            assert_eq!(PolicyRules::parse(policy_type, &parsed.to_json()).unwrap(), parsed, "round trip");
        }
    }

    #[test]
    fn rules_are_validated_per_type() {
        use PolicyType::*;
        check(SpendingLimit, json!({"instant_max":"10","notify_max":"20","delay_max":"30","delay_seconds":60}), true);
        check(SpendingLimit, json!({"instant_max":"10","notify_max":"5","delay_max":"30"}), false);
        check(SpendingLimit, json!({"instant_max":"10","notify_max":"20","delay_max":"30","extra":1}), false);
        check(SpendingLimit, json!({"instant_max":10,"notify_max":"20","delay_max":"30"}), false);
        check(SpendingLimit, json!({"instant_max":"1","notify_max":"2","delay_max":"3","instant_max_usd":-1.0}), false);
        check(Whitelist, json!({"allowed_addresses":["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"]}), true);
        check(Whitelist, json!({"allowed_addresses":["nope"]}), false);
        check(AllowedTokens, json!({"tokens":[]}), true);
        check(ContractWhitelist, json!({"contracts":["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"]}), true);
        check(ApprovedSpenders, json!({"spenders":["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"]}), true);
        check(RateLimit, json!({"max_requests":5,"window_seconds":60}), true);
        check(RateLimit, json!({"max_requests":0,"window_seconds":60}), false);
        check(RateLimit, json!({"max_requests":1,"window_seconds":86_401}), false);
        check(TimeRestriction, json!({"allowed_hours":[9,10,11]}), true);
        check(TimeRestriction, json!({"allowed_hours":[24]}), false);
        check(TimeRestriction, json!({"allowed_hours":[1],"allowed_days":[7]}), false);
    }
}
