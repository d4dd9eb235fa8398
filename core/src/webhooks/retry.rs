//! The retry decision table of one delivery attempt, a pure function of the answer, how many attempts were made
//! and the schedule:
//!
//! | answer | verdict |
//! |---|---|
//! | 2xx | delivered |
//! | 410 Gone | the webhook is disabled (no more deliveries) |
//! | 408, 429, 5xx, timeout, connection error | retry after the schedule's next delay (429: its `Retry-After`, capped), or failed when the schedule is used up |
//! | any other status (other 4xx, 1xx, 3xx: redirects are not followed) | failed |
//! | target refused (its address is forbidden) | failed |
//!
//! Delays get up to [`JITTER`] more, from the entropy source, so many receivers failing together do not come
//! back together.

use crate::ports::{Entropy, WebhookResponse};

/// The largest fraction added to a scheduled delay.
pub const JITTER: f64 = 0.1;

/// The retry schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay before each retry, in milliseconds (its length is the number of retries).
    pub schedule_ms: Vec<u64>,
    /// The longest `Retry-After` honoured, in milliseconds; a longer one waits this long.
    pub retry_after_cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { schedule_ms: vec![1_000, 2_000, 4_000], retry_after_cap_ms: 3_600_000 }
    }
}

/// What happens after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver took it.
    Delivered,
    /// Try again after this many milliseconds.
    Retry {
        /// Milliseconds until the next attempt.
        delay_ms: u64,
    },
    /// Given up: final failure.
    Failed,
    /// The receiver said 410 Gone: the webhook is disabled.
    Disable,
}

impl Verdict {
    /// The label of `waiaas_webhook_deliveries_total{result}` and of the attempt's log status.
    pub fn result_label(self) -> &'static str {
        match self {
            Verdict::Delivered => "success",
            Verdict::Retry { .. } => "retry",
            Verdict::Failed => "failed",
            Verdict::Disable => "disabled",
        }
    }
}

/// The verdict on attempt number `attempt` (1 for the first) that got `response`.
pub fn decide(response: &WebhookResponse, attempt: u32, policy: &RetryPolicy, entropy: &dyn Entropy) -> Verdict {
    let retryable = match response {
        WebhookResponse::Status { code, .. } if (200..300).contains(code) => return Verdict::Delivered,
        WebhookResponse::Status { code: 410, .. } => return Verdict::Disable,
        WebhookResponse::Status { code, .. } => matches!(code, 408 | 429 | 500..=599),
        WebhookResponse::TransportError { .. } => true,
        WebhookResponse::Refused { .. } => false,
    };
    let next = attempt.saturating_sub(1) as usize;
    let Some(scheduled) = policy.schedule_ms.get(next).copied().filter(|_| retryable) else {
        return Verdict::Failed;
    };
    if let WebhookResponse::Status { code: 429, retry_after_seconds: Some(seconds), .. } = response {
        return Verdict::Retry { delay_ms: seconds.saturating_mul(1_000).min(policy.retry_after_cap_ms) };
    }
    Verdict::Retry { delay_ms: jittered(scheduled, entropy) }
}

/// `scheduled` milliseconds plus up to [`JITTER`] of it, from `entropy` (notifications use the same schedule
/// shape).
pub fn jittered(scheduled: u64, entropy: &dyn Entropy) -> u64 {
    let mut random = [0u8; 2];
    entropy.fill(&mut random);
    let fraction = f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) * JITTER;
    scheduled + (scheduled as f64 * fraction) as u64
}
