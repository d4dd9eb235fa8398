//! Policies: typed rules parsed from the operator's JSON. Unknown keys are refused, not ignored.

use serde::Deserialize;

use super::address::Address;
use crate::error::{Error, Issue};
use crate::{AgentId, Amount, PolicyId, UnixSeconds};

/// The kind of a policy; on the wire it is the SCREAMING_SNAKE_CASE name ([`PolicyType::as_str`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum PolicyType {
    /// `SPENDING_LIMIT`: tiers a request by the amounts and USD value it moves.
    SpendingLimit,
    /// `WHITELIST`: the recipients native and token transfers may go to.
    Whitelist,
    /// `ALLOWED_TOKENS`: the tokens that may be transferred or approved.
    AllowedTokens,
    /// `CONTRACT_WHITELIST`: the contracts that may be called.
    ContractWhitelist,
    /// `APPROVED_SPENDERS`: the spenders a token approval may name.
    ApprovedSpenders,
    /// `RATE_LIMIT`: how many requests an agent may make per window.
    RateLimit,
    /// `TIME_RESTRICTION`: the UTC hours and weekdays in which requests are allowed.
    TimeRestriction,
}

impl PolicyType {
    /// Every type, in the order the engine applies the list policies.
    pub const ALL: [PolicyType; 7] = [
        PolicyType::SpendingLimit,
        PolicyType::Whitelist,
        PolicyType::AllowedTokens,
        PolicyType::ContractWhitelist,
        PolicyType::ApprovedSpenders,
        PolicyType::RateLimit,
        PolicyType::TimeRestriction,
    ];

    /// The wire name, e.g. `SPENDING_LIMIT`.
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

    /// The type with this wire name (exact, upper case); `None` for an unknown name.
    pub fn parse(s: &str) -> Option<PolicyType> {
        PolicyType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Tier thresholds for one asset, in its smallest unit: ≤ instant_max → INSTANT, ≤ notify_max → NOTIFY,
/// ≤ delay_max → DELAY, else APPROVAL.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Amounts up to this are INSTANT.
    pub instant_max: Amount,
    /// Amounts up to this (and above `instant_max`) are NOTIFY; at least `instant_max`.
    pub notify_max: Amount,
    /// Amounts up to this (and above `notify_max`) are DELAY, larger ones APPROVAL; at least `notify_max`.
    pub delay_max: Amount,
}

impl Thresholds {
    fn ordered(&self) -> bool {
        self.instant_max <= self.notify_max && self.notify_max <= self.delay_max
    }
}

/// SPENDING_LIMIT: the tier by amount — native thresholds in wei, optional per-token thresholds in each
/// token's smallest unit, optional USD thresholds and a rolling daily USD limit.
#[derive(Clone, Debug, PartialEq)]
pub struct SpendingLimit {
    /// Thresholds of the native coin (`instant_max`, `notify_max`, `delay_max` in the rules).
    pub native: Thresholds,
    /// A USD value above this (the request with the agent's in-flight ones) is at least NOTIFY.
    pub instant_max_usd: Option<f64>,
    /// A USD value above this is at least DELAY.
    pub notify_max_usd: Option<f64>,
    /// A USD value above this is APPROVAL.
    pub delay_max_usd: Option<f64>,
    /// How long a request tiered DELAY by this policy waits before it executes, in seconds (default 300).
    pub delay_seconds: u64,
    /// Rolling 24 h USD limit: a request that would take the agent's spending past it needs APPROVAL.
    pub daily_limit_usd: Option<f64>,
    /// Per-token thresholds (`token_limits: {"<token address>": {instant_max, notify_max, delay_max}}`).
    pub token_limits: Vec<(Address, Thresholds)>,
}

/// The JSON form of SPENDING_LIMIT rules (snake_case keys, unknown keys refused).
#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct SpendingLimitJson {
    instant_max: Amount,
    notify_max: Amount,
    delay_max: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instant_max_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notify_max_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delay_max_usd: Option<f64>,
    #[serde(default = "default_delay_seconds")]
    delay_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    daily_limit_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    token_limits: std::collections::BTreeMap<String, Thresholds>,
}

fn default_delay_seconds() -> u64 {
    300
}

/// Longest RATE_LIMIT window: the pipeline reads one day of history per admission.
pub const MAX_RATE_WINDOW_SECONDS: u64 = 86_400;

/// RATE_LIMIT rules: at most `max_requests` admitted requests in any sliding window of `window_seconds`.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Most requests (denied ones not counted) within one window; at least 1.
    pub max_requests: u32,
    /// The window's length in seconds, 1..=[`MAX_RATE_WINDOW_SECONDS`].
    pub window_seconds: u64,
}

/// TIME_RESTRICTION rules: requests outside these UTC hours and weekdays are denied.
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
    /// `SPENDING_LIMIT` rules.
    SpendingLimit(SpendingLimit),
    /// `WHITELIST`: native and token transfers to any other recipient are denied.
    Whitelist {
        /// The recipients allowed.
        allowed_addresses: Vec<Address>,
    },
    /// `ALLOWED_TOKENS`: transfers and approvals of any other token are denied.
    AllowedTokens {
        /// The token contracts allowed.
        tokens: Vec<Address>,
    },
    /// `CONTRACT_WHITELIST`: calls to any other contract are denied.
    ContractWhitelist {
        /// The contracts that may be called.
        contracts: Vec<Address>,
    },
    /// `allow_unlimited`: approvals of at least 2^255 to a listed spender are allowed (denied otherwise).
    ApprovedSpenders {
        /// The spenders approvals may name.
        spenders: Vec<Address>,
        /// Whether an approval of at least 2^255 to a listed spender is allowed.
        allow_unlimited: bool,
    },
    /// `RATE_LIMIT` rules.
    RateLimit(RateLimit),
    /// `TIME_RESTRICTION` rules.
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
    #[serde(default)]
    allow_unlimited: bool,
}

impl PolicyRules {
    /// The type these rules are of.
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
        fn addresses(field: &str, raw: Vec<String>) -> Result<Vec<Address>, Error> {
            let mut issues = Vec::new();
            let mut out = Vec::with_capacity(raw.len());
            for (i, text) in raw.iter().enumerate() {
                match Address::parse_any(text) {
                    Ok(a) => out.push(a),
                    Err(message) => issues.push(Issue { path: format!("rules.{field}[{i}]"), message }),
                }
            }
            if issues.is_empty() { Ok(out) } else { Err(Error::validation(issues)) }
        }
        let parsed = match policy_type {
            PolicyType::SpendingLimit => {
                let raw: SpendingLimitJson = de(rules)?;
                let native =
                    Thresholds { instant_max: raw.instant_max, notify_max: raw.notify_max, delay_max: raw.delay_max };
                if !native.ordered() {
                    return Err(Error::invalid_field(
                        "rules",
                        "thresholds must satisfy instant_max <= notify_max <= delay_max",
                    ));
                }
                let usd = [raw.instant_max_usd, raw.notify_max_usd, raw.delay_max_usd, raw.daily_limit_usd];
                if usd.iter().flatten().any(|v| !v.is_finite() || *v < 0.0) {
                    return Err(Error::invalid_field("rules", "USD thresholds must be finite and non-negative"));
                }
                let mut token_limits = Vec::with_capacity(raw.token_limits.len());
                for (key, thresholds) in raw.token_limits {
                    let path = format!("rules.token_limits.{key}");
                    let token = Address::parse_any(&key).map_err(|m| Error::invalid_field(&path, m))?;
                    if !thresholds.ordered() {
                        return Err(Error::invalid_field(&path, "must satisfy instant_max <= notify_max <= delay_max"));
                    }
                    if token_limits.iter().any(|(t, _)| *t == token) {
                        return Err(Error::invalid_field(&path, "the same token is named twice"));
                    }
                    token_limits.push((token, thresholds));
                }
                PolicyRules::SpendingLimit(SpendingLimit {
                    native,
                    instant_max_usd: raw.instant_max_usd,
                    notify_max_usd: raw.notify_max_usd,
                    delay_max_usd: raw.delay_max_usd,
                    delay_seconds: raw.delay_seconds,
                    daily_limit_usd: raw.daily_limit_usd,
                    token_limits,
                })
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
                PolicyRules::ApprovedSpenders {
                    spenders: addresses("spenders", raw.spenders)?,
                    allow_unlimited: raw.allow_unlimited,
                }
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
        fn list(key: &str, items: &[Address]) -> serde_json::Value {
            let values: Vec<String> = items.iter().map(ToString::to_string).collect();
            serde_json::json!({ key: values })
        }
        match self {
            PolicyRules::SpendingLimit(limit) => serde_json::to_value(SpendingLimitJson {
                instant_max: limit.native.instant_max,
                notify_max: limit.native.notify_max,
                delay_max: limit.native.delay_max,
                instant_max_usd: limit.instant_max_usd,
                notify_max_usd: limit.notify_max_usd,
                delay_max_usd: limit.delay_max_usd,
                delay_seconds: limit.delay_seconds,
                daily_limit_usd: limit.daily_limit_usd,
                token_limits: limit.token_limits.iter().map(|(t, th)| (t.to_string(), th.clone())).collect(),
            })
            .unwrap_or_default(),
            PolicyRules::Whitelist { allowed_addresses } => list("allowed_addresses", allowed_addresses),
            PolicyRules::AllowedTokens { tokens } => list("tokens", tokens),
            PolicyRules::ContractWhitelist { contracts } => list("contracts", contracts),
            PolicyRules::ApprovedSpenders { spenders, allow_unlimited } => {
                let mut json = list("spenders", spenders);
                if *allow_unlimited {
                    json["allow_unlimited"] = serde_json::Value::Bool(true);
                }
                json
            }
            PolicyRules::RateLimit(limit) => serde_json::to_value(limit).unwrap_or_default(),
            PolicyRules::TimeRestriction(restriction) => serde_json::to_value(restriction).unwrap_or_default(),
        }
    }
}

/// A policy: global when `agent_id` is `None`, otherwise for one agent (overriding a global one of its type).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// The policy's id.
    pub id: PolicyId,
    /// The agent it applies to; `None` for a global policy.
    pub agent_id: Option<AgentId>,
    /// What it allows or how it tiers, by type.
    pub rules: PolicyRules,
    /// A disabled policy is kept but never in force.
    pub enabled: bool,
    /// When it was created.
    pub created_at: UnixSeconds,
    /// When it was last changed.
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
        check(
            ApprovedSpenders,
            json!({"spenders":["0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"],"allow_unlimited":true}),
            true,
        );
        let token = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed";
        let limits = |inner: serde_json::Value| json!({"instant_max":"1","notify_max":"2","delay_max":"3","token_limits":{token: inner}});
        check(SpendingLimit, limits(json!({"instant_max":"10","notify_max":"20","delay_max":"30"})), true);
        check(SpendingLimit, limits(json!({"instant_max":"30","notify_max":"20","delay_max":"30"})), false);
        check(SpendingLimit, limits(json!({"instant_max":"10","notify_max":"20"})), false);
        check(
            SpendingLimit,
            json!({"instant_max":"1","notify_max":"2","delay_max":"3",
                   "token_limits":{"0x12":{"instant_max":"1","notify_max":"2","delay_max":"3"}}}),
            false,
        );
        check(RateLimit, json!({"max_requests":5,"window_seconds":60}), true);
        check(RateLimit, json!({"max_requests":0,"window_seconds":60}), false);
        check(RateLimit, json!({"max_requests":1,"window_seconds":86_401}), false);
        check(TimeRestriction, json!({"allowed_hours":[9,10,11]}), true);
        check(TimeRestriction, json!({"allowed_hours":[24]}), false);
        check(TimeRestriction, json!({"allowed_hours":[1],"allowed_days":[7]}), false);
    }
}
