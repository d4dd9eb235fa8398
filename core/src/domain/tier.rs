//! Security tiers: how much friction a transaction meets before it executes. A leaf: the policy engine decides a
//! tier, the stored row and the ports carry it, and nothing here depends on either.

/// Security tiers, in increasing order of friction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Runs at once.
    Instant,
    /// Runs at once; the owner is told.
    Notify,
    /// Waits `delay_seconds`, cancellable.
    Delay,
    /// Waits for the owner's signature.
    Approval,
}

impl Tier {
    /// Every tier, lowest friction first.
    pub const ALL: [Tier; 4] = [Tier::Instant, Tier::Notify, Tier::Delay, Tier::Approval];

    /// The wire name (`INSTANT`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Instant => "INSTANT",
            Tier::Notify => "NOTIFY",
            Tier::Delay => "DELAY",
            Tier::Approval => "APPROVAL",
        }
    }

    /// The tier of a wire name.
    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}
