//! The rules of each policy type as documented schemas. The core parses rules (`PolicyRules::parse`, snake_case
//! keys, unknown keys refused); these types only describe that parser to clients, so the document can say which
//! rules go with which `type` (the normalizer makes `CreatePolicyRequest` a union on `type` over them). schemathesis
//! (`scripts/fuzz-api`) checks both ways that the parser and these schemas agree: rules valid here must be accepted,
//! rules invalid here refused.

use std::collections::BTreeMap;

use poem_openapi::Object;
use poem_openapi::registry::Registry;
use poem_openapi::types::Type;
use waiaas_core::domain::PolicyType;

use crate::wire::AnyAddress;

/// Tier thresholds of one asset in its smallest unit, decimal strings: `instant_max <= notify_max <= delay_max`.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct ThresholdRules {
    /// Amounts up to this are INSTANT.
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub instant_max: String,
    /// Amounts up to this are NOTIFY.
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub notify_max: String,
    /// Amounts up to this are DELAY, larger ones APPROVAL.
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub delay_max: String,
}

/// SPENDING_LIMIT: the tier by amount (native thresholds in wei, optional per-token and USD thresholds).
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct SpendingLimitRules {
    /// Native amounts up to this are INSTANT (wei, a decimal string).
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub instant_max: String,
    /// Up to this NOTIFY; at least `instant_max`.
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub notify_max: String,
    /// Up to this DELAY, above APPROVAL; at least `notify_max`.
    #[oai(validator(pattern = "^[0-9]+$"))]
    pub delay_max: String,
    /// A USD value above this is at least NOTIFY.
    #[oai(nullable, validator(minimum(value = "0")))]
    pub instant_max_usd: Option<f64>,
    /// A USD value above this is at least DELAY.
    #[oai(nullable, validator(minimum(value = "0")))]
    pub notify_max_usd: Option<f64>,
    /// A USD value above this is APPROVAL.
    #[oai(nullable, validator(minimum(value = "0")))]
    pub delay_max_usd: Option<f64>,
    /// How long a DELAY-tier request waits, in seconds (default 300).
    pub delay_seconds: Option<u64>,
    /// Rolling 24 h USD limit: a request that would pass it needs APPROVAL.
    #[oai(nullable, validator(minimum(value = "0")))]
    pub daily_limit_usd: Option<f64>,
    /// Thresholds per token, keyed by the token's address.
    pub token_limits: Option<BTreeMap<String, ThresholdRules>>,
}

/// WHITELIST: native and token transfers to any other recipient are denied.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct WhitelistRules {
    pub allowed_addresses: Vec<AnyAddress>,
}

/// ALLOWED_TOKENS: transfers and approvals of any other token are denied.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct AllowedTokensRules {
    pub tokens: Vec<AnyAddress>,
}

/// CONTRACT_WHITELIST: calls to any other contract are denied.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct ContractWhitelistRules {
    pub contracts: Vec<AnyAddress>,
}

/// APPROVED_SPENDERS: approvals to any other spender are denied.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct ApprovedSpendersRules {
    pub spenders: Vec<AnyAddress>,
    /// Whether an approval of at least 2^255 to a listed spender is allowed (default false).
    pub allow_unlimited: Option<bool>,
}

/// RATE_LIMIT: at most `max_requests` admitted requests in any sliding window of `window_seconds`.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct RateLimitRules {
    #[oai(validator(minimum(value = "1")))]
    pub max_requests: u32,
    /// 1 to 86400 (one day).
    #[oai(validator(minimum(value = "1"), maximum(value = "86400")))]
    pub window_seconds: u64,
}

/// TIME_RESTRICTION: requests outside these UTC hours and weekdays are denied.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(deny_unknown_fields)]
pub struct TimeRestrictionRules {
    /// Hours of the day (UTC, 0 to 23) in which transfers are allowed.
    #[oai(validator(maximum(value = "23")))]
    pub allowed_hours: Vec<u8>,
    /// Days of the week (0 = Sunday to 6 = Saturday); default every day.
    #[oai(validator(maximum(value = "6")))]
    pub allowed_days: Option<Vec<u8>>,
}

/// The rules schema of a policy type: its name in `components.schemas`.
pub fn schema_name(policy_type: PolicyType) -> String {
    fn name<T: Type>() -> String {
        T::name().into_owned()
    }
    match policy_type {
        PolicyType::SpendingLimit => name::<SpendingLimitRules>(),
        PolicyType::Whitelist => name::<WhitelistRules>(),
        PolicyType::AllowedTokens => name::<AllowedTokensRules>(),
        PolicyType::ContractWhitelist => name::<ContractWhitelistRules>(),
        PolicyType::ApprovedSpenders => name::<ApprovedSpendersRules>(),
        PolicyType::RateLimit => name::<RateLimitRules>(),
        PolicyType::TimeRestriction => name::<TimeRestrictionRules>(),
    }
}

/// Every rules schema (and what they reference), rendered as JSON by name.
pub fn schemas() -> BTreeMap<String, serde_json::Value> {
    let mut registry = Registry::new();
    SpendingLimitRules::register(&mut registry);
    WhitelistRules::register(&mut registry);
    AllowedTokensRules::register(&mut registry);
    ContractWhitelistRules::register(&mut registry);
    ApprovedSpendersRules::register(&mut registry);
    RateLimitRules::register(&mut registry);
    TimeRestrictionRules::register(&mut registry);
    registry
        .schemas
        .into_iter()
        .map(|(name, schema)| (name, serde_json::to_value(schema).expect("a schema serializes")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type has a schema, and address lists document the address pattern (policy lists serve every network).
    #[test]
    fn every_policy_type_has_a_rules_schema() {
        let schemas = schemas();
        for policy_type in PolicyType::ALL {
            assert!(schemas.contains_key(&schema_name(policy_type)), "{policy_type:?}");
        }
        assert_eq!(
            schemas["WhitelistRules"]["properties"]["allowed_addresses"]["items"]["pattern"],
            crate::wire::ANY_ADDRESS_PATTERN
        );
    }

    /// An example of each type's rules, valid by its schema, is accepted by the core's parser.
    #[test]
    fn documented_rules_parse_in_the_core() {
        let a = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let examples = [
            (
                PolicyType::SpendingLimit,
                serde_json::json!({"instant_max": "1", "notify_max": "2", "delay_max": "3",
                "instant_max_usd": 1.5, "delay_seconds": 60, "token_limits": {a: {"instant_max": "1", "notify_max": "1", "delay_max": "1"}}}),
            ),
            (PolicyType::Whitelist, serde_json::json!({"allowed_addresses": [a]})),
            (PolicyType::AllowedTokens, serde_json::json!({"tokens": [a]})),
            (PolicyType::ContractWhitelist, serde_json::json!({"contracts": []})),
            (PolicyType::ApprovedSpenders, serde_json::json!({"spenders": [a], "allow_unlimited": true})),
            (PolicyType::RateLimit, serde_json::json!({"max_requests": 1, "window_seconds": 86400})),
            (PolicyType::TimeRestriction, serde_json::json!({"allowed_hours": [0, 23], "allowed_days": [6]})),
        ];
        for (policy_type, rules) in examples {
            waiaas_core::domain::policy::PolicyRules::parse(policy_type, &rules)
                .unwrap_or_else(|e| panic!("{policy_type:?} {rules}: {e:?}"));
        }
    }
}
