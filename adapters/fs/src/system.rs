//! The operating system's clock and randomness behind the core's [`Clock`] and [`Entropy`] ports.
//!
//! [`SystemClock`] is the one place in the workspace allowed to read the wall clock; everything else asks the
//! `Clock` port (so tests can stand time still).

use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;
use rand::rngs::OsRng;
use waiaas_core::UnixSeconds;
use waiaas_core::ports::{Clock, Entropy};

/// Wall-clock time from the OS. A clock set before 1970 reads as the epoch.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    fn since_epoch() -> std::time::Duration {
        // The workspace bans `SystemTime::now` (clippy.toml) so that time flows through the `Clock` port; this
        // adapter *is* that port's production implementation.
        #[allow(clippy::disallowed_methods)]
        let now = SystemTime::now();
        now.duration_since(UNIX_EPOCH).unwrap_or_default()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> UnixSeconds {
        UnixSeconds(i64::try_from(Self::since_epoch().as_secs()).unwrap_or(i64::MAX))
    }

    fn now_millis(&self) -> u64 {
        u64::try_from(Self::since_epoch().as_millis()).unwrap_or(u64::MAX)
    }
}

/// Randomness from the OS CSPRNG (`getrandom`). Panics if the OS cannot provide randomness, which no secure
/// operation could survive anyway.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&self, dest: &mut [u8]) {
        OsRng.fill_bytes(dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_plausible_and_consistent() {
        let clock = SystemClock;
        let secs = clock.now().0;
        let millis = clock.now_millis();
        assert!(secs > 1_700_000_000, "{secs}");
        let diff = i64::try_from(millis / 1000).unwrap() - secs;
        assert!((0..=1).contains(&diff), "{millis} vs {secs}");
    }

    #[test]
    fn entropy_fills() {
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        OsEntropy.fill(&mut a);
        OsEntropy.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
