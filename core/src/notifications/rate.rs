//! The per-channel rate limit: a token bucket of `max` messages per `window`, refilled continuously (one token
//! every `window / max`), full at the start. A message that finds no token is held back and counted in the
//! channel's next digest; the digest goes out as soon as a token is back. Critical events are never held back:
//! they take a token when there is one and go anyway. Time is the caller's (the core's clock, in milliseconds).

/// `max` messages per `window_ms` milliseconds; `max = 0` turns the limit off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Messages per window (the bucket's size).
    pub max: u32,
    /// The window, milliseconds.
    pub window_ms: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit { max: 10, window_ms: 60_000 }
    }
}

/// One channel's bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    at_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(limit: RateLimit, now_ms: u64) -> Self {
        TokenBucket { limit, tokens: f64::from(limit.max), at_ms: now_ms }
    }

    fn refill(&mut self, now_ms: u64) {
        if self.limit.max == 0 || self.limit.window_ms == 0 {
            return;
        }
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        let rate = f64::from(self.limit.max) / self.limit.window_ms as f64;
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(self.limit.max));
        self.at_ms = self.at_ms.max(now_ms);
    }

    /// Whether a message may go now (without taking a token).
    pub fn has_token(&mut self, now_ms: u64) -> bool {
        if self.limit.max == 0 {
            return true;
        }
        self.refill(now_ms);
        self.tokens >= 1.0
    }

    /// Takes a token when there is one; false when the limit holds the message back.
    pub fn try_take(&mut self, now_ms: u64) -> bool {
        if !self.has_token(now_ms) {
            return false;
        }
        if self.limit.max > 0 {
            self.tokens -= 1.0;
        }
        true
    }

    /// Takes a token if there is one, and never refuses (a critical event).
    pub fn take_anyway(&mut self, now_ms: u64) {
        let _ = self.try_take(now_ms);
    }

    /// When the next token is there, Unix milliseconds (now when there is one).
    pub fn next_token_ms(&mut self, now_ms: u64) -> u64 {
        if self.has_token(now_ms) {
            return now_ms;
        }
        let per_token = self.limit.window_ms as f64 / f64::from(self.limit.max);
        now_ms + ((1.0 - self.tokens) * per_token).ceil() as u64
    }
}
