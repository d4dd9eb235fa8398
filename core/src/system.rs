//! What every part of the core may need from its host: the time and randomness. A leaf (the backup format and
//! the ports both use it); [`crate::ports`] re-exports both traits with the other ports.

#[cfg(any(test, feature = "mocks"))]
use mockall::automock;

use crate::UnixSeconds;

/// Wall-clock time. The only source of "now" in the core.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait Clock: Send + Sync {
    /// The current time, Unix seconds.
    fn now(&self) -> UnixSeconds;
    /// Milliseconds since the epoch (for UUID v7 ordering within a second).
    fn now_millis(&self) -> u64;
}

/// Cryptographically secure randomness.
#[cfg_attr(any(test, feature = "mocks"), automock)]
pub trait Entropy: Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]);
}
