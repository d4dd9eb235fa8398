//! The policy engine's outcome as a value: a tier or a denial with a structured reason code. A leaf of the
//! domain, so the ports (an admission returns its decision) and the engine share it without depending on each
//! other.

use super::Tier;
use crate::PolicyId;

/// Why a request is denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// A recipient is not on the WHITELIST.
    AddressNotWhitelisted,
    /// A token is not on ALLOWED_TOKENS (or none is in force under default deny).
    TokenNotAllowed,
    /// A called contract is not on CONTRACT_WHITELIST (or none is in force under default deny).
    ContractNotWhitelisted,
    /// A spender is not on APPROVED_SPENDERS (or none is in force under default deny).
    SpenderNotApproved,
    /// An approval of at least 2^255 without `allow_unlimited`.
    UnlimitedApproval,
    /// More requests in the window than RATE_LIMIT allows.
    RateLimitExceeded,
    /// Outside the hours or days of TIME_RESTRICTION.
    OutsideAllowedTime,
    /// An effect's kind is not in the session's `allowedTypes`.
    SessionTypeNotAllowed,
    /// An amount is above the session's `maxAmountPerTx` for its asset.
    SessionAmountExceeded,
    /// A counterparty is not in the session's `allowedRecipients`.
    SessionRecipientNotAllowed,
    /// The network is not in the session's `allowedNetworks`.
    SessionNetworkNotAllowed,
}

impl DenyReason {
    /// Every reason, for tables and round-trip tests.
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

    /// The stable wire code (`ADDRESS_NOT_WHITELISTED`, ...).
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

    /// The reason of a wire code.
    pub fn parse(s: &str) -> Option<DenyReason> {
        DenyReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Notes the engine attaches to an allowed decision.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyWarning {
    /// A USD threshold is in force but an asset has no price: the tier was raised to at least NOTIFY.
    OraclePriceUnavailable {
        /// The asset without a price.
        symbol: String,
    },
    /// The rolling 24 h USD spend would pass `daily_limit_usd`: the tier was raised to APPROVAL.
    CumulativeLimit {
        /// USD spent in the trailing 24 h.
        spent_usd: f64,
        /// USD value of this request.
        request_usd: f64,
        /// The policy's daily limit.
        limit_usd: f64,
    },
    /// An anomaly floor raised the tier.
    AnomalyTierRaised {
        /// The tier the policies gave.
        from: Tier,
        /// The floor applied.
        to: Tier,
    },
}

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The tier (meaningful when allowed).
    pub tier: Tier,
    /// The structured reason of a denial.
    pub reason_code: Option<DenyReason>,
    /// A readable explanation of a denial.
    pub reason: Option<String>,
    /// The policies that tiered or denied the request (none for a default deny or a constraint).
    pub matched_policy_ids: Vec<PolicyId>,
    /// Set when the tier is DELAY.
    pub delay_seconds: Option<u64>,
    /// APPROVAL was lowered to DELAY because the agent has no owner.
    pub downgraded: bool,
    /// Notes on an allowed decision (unknown price, daily limit, anomaly floor).
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
