//! The policy engine's outcome as a value: a tier or a denial with a structured reason code. A leaf of the
//! domain, so the ports (an admission returns its decision) and the engine share it without depending on each
//! other.

use super::Tier;
use crate::PolicyId;

/// Why a request is denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyReason {
    AddressNotWhitelisted,
    TokenNotAllowed,
    ContractNotWhitelisted,
    SpenderNotApproved,
    UnlimitedApproval,
    RateLimitExceeded,
    OutsideAllowedTime,
    SessionTypeNotAllowed,
    SessionAmountExceeded,
    SessionRecipientNotAllowed,
    SessionNetworkNotAllowed,
}

impl DenyReason {
    pub const ALL: [DenyReason; 11] = [
        DenyReason::AddressNotWhitelisted,
        DenyReason::TokenNotAllowed,
        DenyReason::ContractNotWhitelisted,
        DenyReason::SpenderNotApproved,
        DenyReason::UnlimitedApproval,
        DenyReason::RateLimitExceeded,
        DenyReason::OutsideAllowedTime,
        DenyReason::SessionTypeNotAllowed,
        DenyReason::SessionAmountExceeded,
        DenyReason::SessionRecipientNotAllowed,
        DenyReason::SessionNetworkNotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::AddressNotWhitelisted => "ADDRESS_NOT_WHITELISTED",
            DenyReason::TokenNotAllowed => "TOKEN_NOT_ALLOWED",
            DenyReason::ContractNotWhitelisted => "CONTRACT_NOT_WHITELISTED",
            DenyReason::SpenderNotApproved => "SPENDER_NOT_APPROVED",
            DenyReason::UnlimitedApproval => "UNLIMITED_APPROVAL",
            DenyReason::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            DenyReason::OutsideAllowedTime => "OUTSIDE_ALLOWED_TIME",
            DenyReason::SessionTypeNotAllowed => "SESSION_TYPE_NOT_ALLOWED",
            DenyReason::SessionAmountExceeded => "SESSION_AMOUNT_EXCEEDED",
            DenyReason::SessionRecipientNotAllowed => "SESSION_RECIPIENT_NOT_ALLOWED",
            DenyReason::SessionNetworkNotAllowed => "SESSION_NETWORK_NOT_ALLOWED",
        }
    }

    pub fn parse(s: &str) -> Option<DenyReason> {
        DenyReason::ALL.into_iter().find(|r| r.as_str() == s)
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
    /// USD value of the request alone (without other in-flight reservations), when every asset had a price.
    pub request_usd: Option<f64>,
}

impl Decision {
    /// A denial; `policy` is None when no policy matched (a default deny or a session constraint).
    pub(crate) fn deny(reason: DenyReason, policy: Option<PolicyId>, message: String) -> Decision {
        Decision {
            allowed: false,
            tier: Tier::Instant,
            reason_code: Some(reason),
            reason: Some(message),
            matched_policy_ids: policy.into_iter().collect(),
            delay_seconds: None,
            downgraded: false,
            warnings: Vec::new(),
            request_usd: None,
        }
    }
}
