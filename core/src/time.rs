//! Unix-second timestamps, the only time representation in the domain.

use std::fmt;

/// Seconds since the Unix epoch. Stored as INTEGER in the DB and sent as an integer on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UnixSeconds(pub i64);

impl UnixSeconds {
    /// This time plus `seconds` (saturating).
    pub fn plus_seconds(self, seconds: i64) -> Self {
        UnixSeconds(self.0.saturating_add(seconds))
    }

    /// Seconds from `earlier` to this time (negative when `earlier` is later).
    pub fn seconds_since(self, earlier: UnixSeconds) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for UnixSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for UnixSeconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}
