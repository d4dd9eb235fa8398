//! The policy engine: one pure function from (policies in force, session constraints, request, in-flight
//! reservations, history, prices, time) to a [`Decision`]. Send and simulate call the same function; only send
//! records what it used. A denial is a value with a structured reason code, never an error.
//!
//! Policies judge what a request does on chain ([`Effect`]), never its `type` label: which policy concerns which
//! effect is one exhaustive table ([`concern`]). `docs/policies.md` describes every policy type for operators.

pub use crate::domain::Tier;
pub use crate::domain::decision::{Decision, DenyReason, PolicyWarning};
use crate::domain::effect::is_unlimited_approval;
use crate::domain::policy::{SpendingLimit, Thresholds};
use crate::domain::session::SessionConstraints;
use crate::domain::{Address, Asset, Effect, Policy, PolicyRules, PolicyType, TxKind};
use crate::ports::{NativeAsset, PriceKey, PriceOracle, TokenMetadata};
use crate::{Amount, UnixSeconds};

/// Delay used when a tier floor or a downgrade asks for DELAY and no spending limit names one.
pub const DEFAULT_DELAY_SECONDS: u64 = 300;

/// What holds when no policy of a type is in force (`[policy]` config). Default deny, as the custody products
/// this daemon is compared with do: a contract call needs a CONTRACT_WHITELIST, a token transfer an
/// ALLOWED_TOKENS, an approval an APPROVED_SPENDERS entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyDefaults {
    /// Deny contract calls when no CONTRACT_WHITELIST is in force.
    pub deny_contracts: bool,
    /// Deny token transfers when no ALLOWED_TOKENS is in force.
    pub deny_tokens: bool,
    /// Deny token approvals when no APPROVED_SPENDERS is in force.
    pub deny_spenders: bool,
}

impl Default for PolicyDefaults {
    fn default() -> Self {
        PolicyDefaults { deny_contracts: true, deny_tokens: true, deny_spenders: true }
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
    /// The request judged.
    pub request: &'a TxKind,
    /// The network the request runs on.
    pub network: &'a str,
    /// The constraints of the session that sent the request.
    pub constraints: Option<&'a SessionConstraints>,
    /// What holds when no policy of a type is in force.
    pub defaults: &'a PolicyDefaults,
    /// Whether the agent has an owner; without one an APPROVAL tier is lowered to DELAY.
    pub owner_set: bool,
    /// The time of the decision (TIME_RESTRICTION, RATE_LIMIT windows).
    pub now: UnixSeconds,
    /// Amounts of the agent's other in-flight (reserved, not yet final) transactions, per asset.
    pub reserved: &'a [(Asset, Amount)],
    /// The agent's recent requests and 24 h spending.
    pub history: &'a AgentHistory,
    /// USD prices for the USD thresholds and the daily limit.
    pub prices: &'a dyn PriceOracle,
    /// Metadata of the request's tokens as read from the chain (never as the agent wrote it).
    pub tokens: &'a [(Address, TokenMetadata)],
    /// The network's native coin, as the chain adapter reports it; `None` when the node could not be asked (then
    /// the native coin has no price: never zero).
    pub native: Option<&'a NativeAsset>,
    /// Minimum tier imposed by an active anomaly detection.
    pub tier_floor: Option<Tier>,
}

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

/// Decides one request at admission: the first denial of the deny rules, else the tier (SPENDING_LIMIT over the
/// request plus the in-flight reservations, the daily USD limit, the anomaly floor), APPROVAL lowered to DELAY
/// when the agent has no owner.
pub fn evaluate(input: &Evaluation<'_>) -> Decision {
    if let Some(denial) = first_denial(input, Scope::Admission) {
        return denial;
    }
    let mut matched = Vec::new();
    let mut warnings = Vec::new();
    let mut tier = Tier::Instant;
    let mut delay_seconds = None::<u64>;

    let request = input.request.outflows();
    let with_reserved = with_reservations(request.clone(), input.reserved);
    // The tier judges this request together with the agent's other in-flight ones; the daily limit adds the
    // request alone to what the 24 h history (which already holds the in-flight rows) counts.
    let usd_with_reserved = usd_value(input, &with_reserved);
    let usd_alone = usd_value(input, &request);
    for policy in in_force(input.policies, PolicyType::SpendingLimit) {
        let PolicyRules::SpendingLimit(limit) = &policy.rules else { continue };
        matched.push(policy.id);
        let mut policy_tier = Tier::Instant;
        for (asset, amount) in &with_reserved {
            let thresholds = match asset {
                Asset::Native => Some(&limit.native),
                Asset::Token(token) => limit.token_limits.iter().find(|(t, _)| t == token).map(|(_, th)| th),
            };
            if let Some(thresholds) = thresholds {
                policy_tier = policy_tier.max(amount_tier(thresholds, *amount));
            }
        }
        if has_usd_thresholds(limit) {
            match usd_with_reserved {
                Ok(value) => policy_tier = policy_tier.max(usd_tier(limit, value)),
                Err(ref asset) => {
                    policy_tier = policy_tier.max(Tier::Notify);
                    push_unique(&mut warnings, PolicyWarning::OraclePriceUnavailable { symbol: asset.clone() });
                }
            }
        }
        if let Some(limit_usd) = limit.daily_limit_usd {
            match usd_alone {
                Ok(request_usd) if input.history.spent_usd_24h + request_usd > limit_usd => {
                    policy_tier = Tier::Approval;
                    warnings.push(PolicyWarning::CumulativeLimit {
                        spent_usd: input.history.spent_usd_24h,
                        request_usd,
                        limit_usd,
                    });
                }
                Ok(_) => {}
                Err(ref asset) => {
                    policy_tier = policy_tier.max(Tier::Notify);
                    push_unique(&mut warnings, PolicyWarning::OraclePriceUnavailable { symbol: asset.clone() });
                }
            }
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
        request_usd: usd_alone.ok(),
    }
}

/// The deny rules alone, for work that leaves a wait (DELAY, APPROVAL, a retry backoff): the policies and
/// session constraints in force *now* are applied again, except RATE_LIMIT (the request was counted when it was
/// admitted). Never lowers a tier: it only answers whether the request is now denied.
pub fn recheck(input: &Evaluation<'_>) -> Option<Decision> {
    first_denial(input, Scope::LeavingWait)
}

fn push_unique(warnings: &mut Vec<PolicyWarning>, warning: PolicyWarning) {
    if !warnings.contains(&warning) {
        warnings.push(warning);
    }
}

/// Where the deny rules run: at admission, or again when queued work leaves its wait.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Admission,
    LeavingWait,
}

/// How one policy concerns one effect of a request.
#[derive(Debug, PartialEq)]
pub enum Concern<'a> {
    /// The subject must be on the policy's list.
    Listed {
        /// The address judged: recipient, token or contract.
        subject: Address,
        /// The policy's list.
        list: &'a [Address],
        /// The denial's reason when `subject` is not on it.
        reason: DenyReason,
    },
    /// An approval: the spender must be listed, and an unlimited amount needs the policy's `allow_unlimited`.
    Spender {
        /// The approval's spender.
        spender: Address,
        /// The approved amount, in the token's smallest unit.
        amount: Amount,
        /// The policy's spenders.
        list: &'a [Address],
        /// Whether the policy allows an unlimited (at least 2^255) approval.
        allow_unlimited: bool,
    },
    /// The policy tiers the amount (SPENDING_LIMIT).
    Amount,
    /// The policy judges the request as a whole (RATE_LIMIT, TIME_RESTRICTION), whatever it does.
    Request,
    /// Not this policy's business.
    Unconcerned,
}

/// The table of which policy concerns which effect. One exhaustive match without a wildcard arm: a new policy
/// type or a new kind of effect does not compile until its cells are classified here.
pub fn concern<'a>(rules: &'a PolicyRules, effect: &Effect) -> Concern<'a> {
    use DenyReason as R;
    use Effect as E;
    use PolicyRules as P;
    match (rules, effect) {
        (P::SpendingLimit(_), E::NativeTransfer { .. } | E::TokenTransfer { .. } | E::TokenApproval { .. }) => {
            Concern::Amount
        }
        (P::SpendingLimit(_), E::ContractCall { .. }) => Concern::Unconcerned,
        (P::Whitelist { allowed_addresses }, E::NativeTransfer { to, .. } | E::TokenTransfer { to, .. }) => {
            Concern::Listed { subject: *to, list: allowed_addresses, reason: R::AddressNotWhitelisted }
        }
        (P::Whitelist { .. }, E::TokenApproval { .. } | E::ContractCall { .. }) => Concern::Unconcerned,
        (P::AllowedTokens { tokens }, E::TokenTransfer { token, .. } | E::TokenApproval { token, .. }) => {
            Concern::Listed { subject: *token, list: tokens, reason: R::TokenNotAllowed }
        }
        (P::AllowedTokens { .. }, E::NativeTransfer { .. } | E::ContractCall { .. }) => Concern::Unconcerned,
        (P::ContractWhitelist { contracts }, E::ContractCall { contract }) => {
            Concern::Listed { subject: *contract, list: contracts, reason: R::ContractNotWhitelisted }
        }
        (P::ContractWhitelist { .. }, E::NativeTransfer { .. } | E::TokenTransfer { .. } | E::TokenApproval { .. }) => {
            Concern::Unconcerned
        }
        (P::ApprovedSpenders { spenders, allow_unlimited }, E::TokenApproval { spender, amount, .. }) => {
            Concern::Spender { spender: *spender, amount: *amount, list: spenders, allow_unlimited: *allow_unlimited }
        }
        (P::ApprovedSpenders { .. }, E::NativeTransfer { .. } | E::TokenTransfer { .. } | E::ContractCall { .. }) => {
            Concern::Unconcerned
        }
        (
            P::RateLimit(_) | P::TimeRestriction(_),
            E::NativeTransfer { .. } | E::TokenTransfer { .. } | E::TokenApproval { .. } | E::ContractCall { .. },
        ) => Concern::Request,
    }
}

/// The policy type an effect needs under default deny, with the reason of a denial for want of it.
fn required_policy(effect: &Effect, defaults: &PolicyDefaults) -> Option<(PolicyType, DenyReason)> {
    match effect {
        Effect::NativeTransfer { .. } => None,
        Effect::TokenTransfer { .. } => {
            defaults.deny_tokens.then_some((PolicyType::AllowedTokens, DenyReason::TokenNotAllowed))
        }
        Effect::TokenApproval { .. } => {
            defaults.deny_spenders.then_some((PolicyType::ApprovedSpenders, DenyReason::SpenderNotApproved))
        }
        Effect::ContractCall { .. } => {
            defaults.deny_contracts.then_some((PolicyType::ContractWhitelist, DenyReason::ContractNotWhitelisted))
        }
    }
}

/// Deny rules in order: session constraints, TIME_RESTRICTION, then per effect the default deny and the list
/// policies (by type), then RATE_LIMIT (admission only).
fn first_denial(input: &Evaluation<'_>, scope: Scope) -> Option<Decision> {
    let effects = input.request.effects();
    if let Some(constraints) = input.constraints
        && let Some(denial) = constraint_denial(constraints, input, &effects)
    {
        return Some(denial);
    }
    for policy in in_force(input.policies, PolicyType::TimeRestriction) {
        let PolicyRules::TimeRestriction(rules) = &policy.rules else { continue };
        let (hour, weekday) = hour_and_weekday(input.now);
        if !rules.allowed_hours.contains(&hour) || !rules.allowed_days.contains(&weekday) {
            return Some(Decision::deny(
                DenyReason::OutsideAllowedTime,
                Some(policy.id),
                format!("transfers are not allowed at hour {hour} (UTC) on weekday {weekday}"),
            ));
        }
    }
    for effect in &effects {
        if let Some((policy_type, reason)) = required_policy(effect, input.defaults)
            && in_force(input.policies, policy_type).is_empty()
        {
            return Some(Decision::deny(
                reason,
                None,
                format!(
                    "{} {} is denied by default: no {} policy is in force",
                    effect.kind().as_str(),
                    effect.counterparty(),
                    policy_type.as_str()
                ),
            ));
        }
        let mut unlimited_allowed = false;
        for policy_type in PolicyType::ALL {
            for policy in in_force(input.policies, policy_type) {
                match concern(&policy.rules, effect) {
                    Concern::Listed { subject, list, reason } if !list.contains(&subject) => {
                        return Some(Decision::deny(
                            reason,
                            Some(policy.id),
                            format!("{subject} is not allowed by the {} policy", policy_type.as_str()),
                        ));
                    }
                    Concern::Spender { spender, list, .. } if !list.contains(&spender) => {
                        return Some(Decision::deny(
                            DenyReason::SpenderNotApproved,
                            Some(policy.id),
                            format!("{spender} is not allowed by the APPROVED_SPENDERS policy"),
                        ));
                    }
                    Concern::Spender { amount, allow_unlimited: false, .. }
                        if effect.token().is_some_and(|token| is_unlimited_approval(token, amount)) =>
                    {
                        return Some(Decision::deny(
                            DenyReason::UnlimitedApproval,
                            Some(policy.id),
                            "an unlimited approval (at least 2^255) needs allow_unlimited in APPROVED_SPENDERS".into(),
                        ));
                    }
                    Concern::Spender { allow_unlimited: true, .. } => unlimited_allowed = true,
                    Concern::Listed { .. }
                    | Concern::Spender { .. }
                    | Concern::Amount
                    | Concern::Request
                    | Concern::Unconcerned => {}
                }
            }
        }
        if let Effect::TokenApproval { token, amount, .. } = effect
            && is_unlimited_approval(*token, *amount)
            && !unlimited_allowed
        {
            return Some(Decision::deny(
                DenyReason::UnlimitedApproval,
                None,
                "an unlimited approval (at least 2^255) needs an APPROVED_SPENDERS policy with allow_unlimited".into(),
            ));
        }
    }
    if scope == Scope::Admission {
        for policy in in_force(input.policies, PolicyType::RateLimit) {
            let PolicyRules::RateLimit(limit) = &policy.rules else { continue };
            let window_start = input.now.plus_seconds(-i64::try_from(limit.window_seconds).unwrap_or(i64::MAX));
            let recent = input.history.request_times.iter().filter(|t| **t > window_start).count();
            if recent >= usize::try_from(limit.max_requests).unwrap_or(usize::MAX) {
                return Some(Decision::deny(
                    DenyReason::RateLimitExceeded,
                    Some(policy.id),
                    format!("at most {} requests per {} s", limit.max_requests, limit.window_seconds),
                ));
            }
        }
    }
    None
}

/// The session's constraints, judged on the request's effects.
fn constraint_denial(constraints: &SessionConstraints, input: &Evaluation<'_>, effects: &[Effect]) -> Option<Decision> {
    let deny = |reason, message: String| Some(Decision::deny(reason, None, message));
    if let Some(networks) = &constraints.allowed_networks
        && !networks.iter().any(|n| n == input.network)
    {
        return deny(
            DenyReason::SessionNetworkNotAllowed,
            format!("this session may not use network {}", input.network),
        );
    }
    for effect in effects {
        if let Some(kinds) = &constraints.allowed_types
            && !kinds.contains(&effect.kind())
        {
            return deny(
                DenyReason::SessionTypeNotAllowed,
                format!("this session may not make a {} (the request does one)", effect.kind().as_str()),
            );
        }
        if let Some(recipients) = &constraints.allowed_recipients
            && !recipients.contains(&effect.counterparty())
        {
            return deny(
                DenyReason::SessionRecipientNotAllowed,
                format!("this session may not pay, approve or call {}", effect.counterparty()),
            );
        }
    }
    if let Some(caps) = &constraints.max_amount_per_tx {
        for (asset, amount) in input.request.outflows() {
            if let Some((_, cap)) = caps.iter().find(|(a, _)| *a == asset)
                && amount > *cap
            {
                return deny(
                    DenyReason::SessionAmountExceeded,
                    format!("this session may move at most {cap} of {} per request, not {amount}", asset_name(asset)),
                );
            }
        }
    }
    None
}

fn asset_name(asset: Asset) -> String {
    match asset {
        Asset::Native => "the native coin".into(),
        Asset::Token(address) => format!("token {address}"),
    }
}

fn with_reservations(mut outflows: Vec<(Asset, Amount)>, reserved: &[(Asset, Amount)]) -> Vec<(Asset, Amount)> {
    for (asset, amount) in outflows.iter_mut() {
        if let Some((_, held)) = reserved.iter().find(|(a, _)| a == asset) {
            *amount = amount.saturating_add(*held);
        }
    }
    outflows
}

/// The tier of an amount under one set of thresholds (in the asset's smallest unit).
fn amount_tier(limit: &Thresholds, amount: Amount) -> Tier {
    if amount <= limit.instant_max {
        Tier::Instant
    } else if amount <= limit.notify_max {
        Tier::Notify
    } else if amount <= limit.delay_max {
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

/// USD value of the outflows, or the name of the first asset without a price. A token is priced by its network
/// and address with the decimals the chain reports; a token whose metadata is unknown has no price.
fn usd_value(input: &Evaluation<'_>, outflows: &[(Asset, Amount)]) -> Result<f64, String> {
    let mut total = 0.0;
    for (asset, amount) in outflows {
        if *amount == Amount::ZERO {
            continue;
        }
        let (key, decimals) = match asset {
            Asset::Native => {
                let Some(native) = input.native else { return Err(format!("the native coin of {}", input.network)) };
                (PriceKey::Native { symbol: &native.symbol }, native.decimals)
            }
            Asset::Token(address) => {
                let decimals = input.tokens.iter().find(|(t, _)| t == address).map(|(_, meta)| meta.decimals);
                let Some(decimals) = decimals else { return Err(address.to_string()) };
                (PriceKey::Token { network: input.network, address: *address }, decimals)
            }
        };
        let quote = input.prices.usd_price(key).ok_or_else(|| match asset {
            Asset::Native => input.native.map_or_else(|| "the native coin".to_owned(), |n| n.symbol.clone()),
            Asset::Token(address) => address.to_string(),
        })?;
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
