//! The policy engine: one pure function from (policies in force, request, in-flight reservations, history,
//! prices, time) to a [`Decision`]. Send and simulate call the same function; only send records what it used.
//! A denial is a value with a structured reason code, never an error.

use crate::domain::policy::SpendingLimit;
use crate::domain::{Asset, Policy, PolicyRules, PolicyType, TxKind};
use crate::ports::PriceOracle;
use crate::{Amount, PolicyId, UnixSeconds};

/// Delay used when a tier floor or a downgrade asks for DELAY and no spending limit names one.
pub const DEFAULT_DELAY_SECONDS: u64 = 300;

/// Security tiers, in increasing order of friction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Instant,
    Notify,
    Delay,
    Approval,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Instant, Tier::Notify, Tier::Delay, Tier::Approval];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Instant => "INSTANT",
            Tier::Notify => "NOTIFY",
            Tier::Delay => "DELAY",
            Tier::Approval => "APPROVAL",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Why a request is denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyReason {
    AddressNotWhitelisted,
    TokenNotAllowed,
    ContractNotWhitelisted,
    SpenderNotApproved,
    RateLimitExceeded,
    OutsideAllowedTime,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::AddressNotWhitelisted => "ADDRESS_NOT_WHITELISTED",
            DenyReason::TokenNotAllowed => "TOKEN_NOT_ALLOWED",
            DenyReason::ContractNotWhitelisted => "CONTRACT_NOT_WHITELISTED",
            DenyReason::SpenderNotApproved => "SPENDER_NOT_APPROVED",
            DenyReason::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            DenyReason::OutsideAllowedTime => "OUTSIDE_ALLOWED_TIME",
        }
    }
}

/// Notes the engine attaches to an allowed decision.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyWarning {
    /// A USD threshold is in force but an asset has no price: the tier was raised to at least NOTIFY.
    OraclePriceUnavailable { symbol: String },
    /// The rolling 24 h USD spend would pass `daily_limit_usd`: the tier was raised to APPROVAL.
    CumulativeLimit { spent_usd: f64, request_usd: f64, limit_usd: f64 },
    /// An anomaly floor raised the tier.
    AnomalyTierRaised { from: Tier, to: Tier },
}

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    pub tier: Tier,
    pub reason_code: Option<DenyReason>,
    pub reason: Option<String>,
    pub matched_policy_ids: Vec<PolicyId>,
    /// Set when the tier is DELAY.
    pub delay_seconds: Option<u64>,
    /// APPROVAL was lowered to DELAY because the agent has no owner.
    pub downgraded: bool,
    pub warnings: Vec<PolicyWarning>,
    /// USD value of the request, when every asset had a price.
    pub request_usd: Option<f64>,
}

impl Decision {
    fn deny(reason: DenyReason, policy: PolicyId, message: String) -> Decision {
        Decision {
            allowed: false,
            tier: Tier::Instant,
            reason_code: Some(reason),
            reason: Some(message),
            matched_policy_ids: vec![policy],
            delay_seconds: None,
            downgraded: false,
            warnings: Vec::new(),
            request_usd: None,
        }
    }
}

/// What the engine knows about the agent's recent activity (read from the store by the caller).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AgentHistory {
    /// When the agent's earlier requests were accepted into the pipeline (for RATE_LIMIT), any order.
    pub request_times: Vec<UnixSeconds>,
    /// USD value of the agent's transfers in the last 24 h (for `daily_limit_usd`).
    pub spent_usd_24h: f64,
}

/// Everything one evaluation reads. Nothing here is written by the engine.
pub struct Evaluation<'a> {
    /// Every enabled policy that applies to the agent: global ones and its own.
    pub policies: &'a [Policy],
    pub request: &'a TxKind,
    pub owner_set: bool,
    pub now: UnixSeconds,
    /// Amounts of the agent's other in-flight (reserved, not yet final) transactions, per asset.
    pub reserved: &'a [(Asset, Amount)],
    pub history: &'a AgentHistory,
    pub prices: &'a dyn PriceOracle,
    /// Minimum tier imposed by an active anomaly detection.
    pub tier_floor: Option<Tier>,
}

/// Native coin metadata for USD conversion.
const NATIVE_SYMBOL: &str = "ETH";
const NATIVE_DECIMALS: u8 = 18;

/// Per type, an agent's own policies replace the global ones.
fn in_force(policies: &[Policy], policy_type: PolicyType) -> Vec<&Policy> {
    let of_type: Vec<&Policy> = policies.iter().filter(|p| p.enabled && p.rules.policy_type() == policy_type).collect();
    let own: Vec<&Policy> = of_type.iter().copied().filter(|p| p.agent_id.is_some()).collect();
    if own.is_empty() { of_type } else { own }
}

/// How far back an evaluation under `policies` needs the agent's requests: the longest RATE_LIMIT window, or a
/// day when a daily USD limit is in force; `None` when neither is, so an admission reads no history.
pub fn history_since(policies: &[Policy], now: UnixSeconds) -> Option<UnixSeconds> {
    policies
        .iter()
        .filter(|p| p.enabled)
        .filter_map(|p| match &p.rules {
            PolicyRules::RateLimit(limit) => Some(i64::try_from(limit.window_seconds).unwrap_or(i64::MAX)),
            PolicyRules::SpendingLimit(limit) if limit.daily_limit_usd.is_some() => Some(DAY_SECONDS),
            _ => None,
        })
        .max()
        .map(|needed| now.plus_seconds(-needed))
}

/// The period of the daily USD limit.
pub const DAY_SECONDS: i64 = 86_400;

pub fn evaluate(input: &Evaluation<'_>) -> Decision {
    if let Some(denial) = first_denial(input) {
        return denial;
    }
    let mut matched = Vec::new();
    let mut warnings = Vec::new();
    let mut tier = Tier::Instant;
    let mut delay_seconds = None::<u64>;

    let outflows = with_reservations(input.request.outflows(), input.reserved);
    let usd = usd_value(input, &outflows);
    for policy in in_force(input.policies, PolicyType::SpendingLimit) {
        let PolicyRules::SpendingLimit(limit) = &policy.rules else { continue };
        matched.push(policy.id);
        let native = outflows.iter().find(|(a, _)| *a == Asset::Native).map(|(_, v)| *v).unwrap_or(Amount::ZERO);
        let mut policy_tier = wei_tier(limit, native);
        if has_usd_thresholds(limit) {
            match usd {
                Ok(value) => policy_tier = policy_tier.max(usd_tier(limit, value)),
                Err(ref symbol) => {
                    policy_tier = policy_tier.max(Tier::Notify);
                    push_unique(&mut warnings, PolicyWarning::OraclePriceUnavailable { symbol: symbol.clone() });
                }
            }
        }
        if let (Some(limit_usd), Ok(request_usd)) = (limit.daily_limit_usd, &usd)
            && input.history.spent_usd_24h + request_usd > limit_usd
        {
            policy_tier = Tier::Approval;
            warnings.push(PolicyWarning::CumulativeLimit {
                spent_usd: input.history.spent_usd_24h,
                request_usd: *request_usd,
                limit_usd,
            });
        }
        if policy_tier >= tier {
            delay_seconds = Some(delay_seconds.unwrap_or(0).max(limit.delay_seconds));
            tier = policy_tier;
        }
    }
    if let Some(floor) = input.tier_floor
        && floor > tier
    {
        warnings.push(PolicyWarning::AnomalyTierRaised { from: tier, to: floor });
        tier = floor;
    }
    let mut downgraded = false;
    if tier == Tier::Approval && !input.owner_set {
        tier = Tier::Delay;
        downgraded = true;
    }
    Decision {
        allowed: true,
        tier,
        reason_code: None,
        reason: None,
        matched_policy_ids: matched,
        delay_seconds: (tier == Tier::Delay).then(|| delay_seconds.unwrap_or(DEFAULT_DELAY_SECONDS)),
        downgraded,
        warnings,
        request_usd: usd.ok(),
    }
}

fn push_unique(warnings: &mut Vec<PolicyWarning>, warning: PolicyWarning) {
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

fn first_denial(input: &Evaluation<'_>) -> Option<Decision> {
    let leaves = input.request.leaves();
    for policy in in_force(input.policies, PolicyType::TimeRestriction) {
        let PolicyRules::TimeRestriction(rules) = &policy.rules else { continue };
        let (hour, weekday) = hour_and_weekday(input.now);
        if !rules.allowed_hours.contains(&hour) || !rules.allowed_days.contains(&weekday) {
            return Some(Decision::deny(
                DenyReason::OutsideAllowedTime,
                policy.id,
                format!("transfers are not allowed at hour {hour} (UTC) on weekday {weekday}"),
            ));
        }
    }
    let lists: [(PolicyType, DenyReason); 4] = [
        (PolicyType::Whitelist, DenyReason::AddressNotWhitelisted),
        (PolicyType::AllowedTokens, DenyReason::TokenNotAllowed),
        (PolicyType::ContractWhitelist, DenyReason::ContractNotWhitelisted),
        (PolicyType::ApprovedSpenders, DenyReason::SpenderNotApproved),
    ];
    for (policy_type, reason) in lists {
        for policy in in_force(input.policies, policy_type) {
            for leaf in &leaves {
                let (subject, allowed) = match (&policy.rules, leaf) {
                    (
                        PolicyRules::Whitelist { allowed_addresses },
                        TxKind::Transfer { to, .. } | TxKind::TokenTransfer { to, .. },
                    ) => (*to, allowed_addresses),
                    (
                        PolicyRules::AllowedTokens { tokens },
                        TxKind::TokenTransfer { token, .. } | TxKind::Approve { token, .. },
                    ) => (token.address, tokens),
                    (PolicyRules::ContractWhitelist { contracts }, TxKind::ContractCall { to, .. }) => (*to, contracts),
                    (PolicyRules::ApprovedSpenders { spenders }, TxKind::Approve { spender, .. }) => {
                        (*spender, spenders)
                    }
                    _ => continue,
                };
                if !allowed.contains(&subject) {
                    return Some(Decision::deny(
                        reason,
                        policy.id,
                        format!("{subject} is not allowed by the {} policy", policy_type.as_str()),
                    ));
                }
            }
        }
    }
    for policy in in_force(input.policies, PolicyType::RateLimit) {
        let PolicyRules::RateLimit(limit) = &policy.rules else { continue };
        let window_start = input.now.plus_seconds(-i64::try_from(limit.window_seconds).unwrap_or(i64::MAX));
        let recent = input.history.request_times.iter().filter(|t| **t > window_start).count();
        if recent >= usize::try_from(limit.max_requests).unwrap_or(usize::MAX) {
            return Some(Decision::deny(
                DenyReason::RateLimitExceeded,
                policy.id,
                format!("at most {} requests per {} s", limit.max_requests, limit.window_seconds),
            ));
        }
    }
    None
}

fn with_reservations(mut outflows: Vec<(Asset, Amount)>, reserved: &[(Asset, Amount)]) -> Vec<(Asset, Amount)> {
    for (asset, amount) in outflows.iter_mut() {
        if let Some((_, held)) = reserved.iter().find(|(a, _)| a == asset) {
            *amount = amount.saturating_add(*held);
        }
    }
    outflows
}

fn wei_tier(limit: &SpendingLimit, native: Amount) -> Tier {
    if native <= limit.instant_max {
        Tier::Instant
    } else if native <= limit.notify_max {
        Tier::Notify
    } else if native <= limit.delay_max {
        Tier::Delay
    } else {
        Tier::Approval
    }
}

fn has_usd_thresholds(limit: &SpendingLimit) -> bool {
    limit.instant_max_usd.is_some() || limit.notify_max_usd.is_some() || limit.delay_max_usd.is_some()
}

/// Each defined USD threshold that the value exceeds pushes the tier above that threshold's level.
fn usd_tier(limit: &SpendingLimit, usd: f64) -> Tier {
    let mut tier = Tier::Instant;
    for (threshold, above) in [
        (limit.instant_max_usd, Tier::Notify),
        (limit.notify_max_usd, Tier::Delay),
        (limit.delay_max_usd, Tier::Approval),
    ] {
        if threshold.is_some_and(|max| usd > max) {
            tier = tier.max(above);
        }
    }
    tier
}

/// USD value of the outflows, or the symbol of the first asset without a price.
fn usd_value(input: &Evaluation<'_>, outflows: &[(Asset, Amount)]) -> Result<f64, String> {
    let mut total = 0.0;
    for (asset, amount) in outflows {
        let (symbol, decimals) = match asset {
            Asset::Native => (NATIVE_SYMBOL.to_owned(), NATIVE_DECIMALS),
            Asset::Token(address) => match input.request.token(*asset) {
                Some(token) => (token.symbol.clone(), token.decimals),
                None => (address.to_string(), 18),
            },
        };
        let quote = input.prices.usd_price(&symbol).ok_or_else(|| symbol.clone())?;
        total += to_units(*amount, decimals) * quote.usd;
    }
    Ok(total)
}

/// `amount / 10^decimals` as a float (precision is ample for threshold comparisons in USD).
pub fn to_units(amount: Amount, decimals: u8) -> f64 {
    let text = amount.to_string();
    let value: f64 = text.parse().unwrap_or(f64::MAX);
    value / 10f64.powi(i32::from(decimals))
}

/// UTC hour (0–23) and weekday (0 = Sunday) of a Unix time.
fn hour_and_weekday(now: UnixSeconds) -> (u8, u8) {
    let seconds = now.0.rem_euclid(86_400);
    let days = now.0.div_euclid(86_400);
    // 1970-01-01 was a Thursday (4).
    let weekday = (days + 4).rem_euclid(7);
    (u8::try_from(seconds / 3600).unwrap_or(0), u8::try_from(weekday).unwrap_or(0))
}

#[cfg(test)]
mod tests;
