//! Bounded per-source counters for what an unauthenticated caller can trigger (failed master passwords, ACL
//! denials): whatever the number of source addresses, memory and audit rows stay bounded.
//!
//! - [`SourceWindows`] counts hits per source in fixed windows. Entries expire with their window, and the table
//!   never holds more than its cap: when full, expired entries are dropped, then the oldest window.
//! - [`AuditBudget`] lets at most a fixed number of audit rows of one kind through per window, counting the ones it
//!   held back so the next row written can say how many were suppressed.

use std::collections::HashMap;
use std::hash::Hash;

use crate::UnixSeconds;

/// Per-source hit counts in fixed windows, at most `cap` sources; see the module docs.
#[derive(Debug)]
pub struct SourceWindows<K> {
    entries: HashMap<K, (UnixSeconds, u32)>,
    window_seconds: i64,
    cap: usize,
}

impl<K: Eq + Hash + Clone> SourceWindows<K> {
    /// Windows of `window_seconds`, remembering at most `cap` sources.
    pub fn new(window_seconds: i64, cap: usize) -> Self {
        SourceWindows { entries: HashMap::new(), window_seconds: window_seconds.max(1), cap: cap.max(1) }
    }

    /// The live window of `key`: its start and count, if it has one that has not expired at `now`.
    pub fn get(&self, key: &K, now: UnixSeconds) -> Option<(UnixSeconds, u32)> {
        self.entries.get(key).copied().filter(|(start, _)| now.seconds_since(*start) < self.window_seconds)
    }

    /// Counts one hit of `key` at `now`; returns its count in the current window (1 for the first).
    pub fn hit(&mut self, key: K, now: UnixSeconds) -> u32 {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.cap {
            self.make_room(now);
        }
        let window = self.window_seconds;
        let entry = self.entries.entry(key).or_insert((now, 0));
        if now.seconds_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1
    }

    /// Sources held (expired ones included until room is needed).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most sources remembered at once.
    pub fn cap(&self) -> usize {
        self.cap
    }

    fn make_room(&mut self, now: UnixSeconds) {
        let window = self.window_seconds;
        self.entries.retain(|_, (start, _)| now.seconds_since(*start) < window);
        if self.entries.len() >= self.cap {
            // Every entry is live: drop the oldest tenth at once, so a flood costs one scan per many inserts.
            let mut starts: Vec<UnixSeconds> = self.entries.values().map(|(start, _)| *start).collect();
            let drop = (self.cap / 10).max(1).min(starts.len());
            let (_, cutoff, _) = starts.select_nth_unstable(drop - 1);
            let cutoff = *cutoff;
            let mut dropped = 0;
            self.entries.retain(|_, (start, _)| {
                if *start <= cutoff && dropped < drop {
                    dropped += 1;
                    false
                } else {
                    true
                }
            });
        }
    }
}

/// At most `per_window` rows per window; see the module docs.
#[derive(Debug)]
pub struct AuditBudget {
    window_seconds: i64,
    per_window: u32,
    window_start: Option<UnixSeconds>,
    written: u32,
    suppressed: u64,
}

impl AuditBudget {
    /// At most `per_window` rows per window of `window_seconds`.
    pub fn new(window_seconds: i64, per_window: u32) -> Self {
        AuditBudget { window_seconds: window_seconds.max(1), per_window, window_start: None, written: 0, suppressed: 0 }
    }

    /// `Some(n)` when a row may be written at `now` (`n` rows were held back since the last one written), `None`
    /// when this one is held back.
    pub fn admit(&mut self, now: UnixSeconds) -> Option<u64> {
        if self.window_start.is_none_or(|start| now.seconds_since(start) >= self.window_seconds) {
            self.window_start = Some(now);
            self.written = 0;
        }
        if self.written >= self.per_window {
            self.suppressed = self.suppressed.saturating_add(1);
            return None;
        }
        self.written += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_count_expire_and_stay_under_the_cap() {
        let mut w = SourceWindows::new(60, 100);
        assert_eq!(w.hit(0u32, UnixSeconds(0)), 1);
        assert_eq!(w.hit(0, UnixSeconds(59)), 2);
        assert_eq!(w.get(&0, UnixSeconds(59)), Some((UnixSeconds(0), 2)));
        assert_eq!(w.get(&0, UnixSeconds(60)), None);
        assert_eq!(w.hit(0, UnixSeconds(60)), 1);
        for i in 1..=10_000u32 {
            w.hit(i, UnixSeconds(100 + i64::from(i / 1000)));
            assert!(w.len() <= 100);
        }
        // The newest sources survive.
        assert_eq!(w.get(&10_000, UnixSeconds(110)), Some((UnixSeconds(110), 1)));
    }

    #[test]
    fn the_budget_holds_back_rows_and_counts_them() {
        let mut b = AuditBudget::new(60, 2);
        assert_eq!(b.admit(UnixSeconds(0)), Some(0));
        assert_eq!(b.admit(UnixSeconds(1)), Some(0));
        assert_eq!(b.admit(UnixSeconds(2)), None);
        assert_eq!(b.admit(UnixSeconds(3)), None);
        assert_eq!(b.admit(UnixSeconds(60)), Some(2));
        assert_eq!(b.admit(UnixSeconds(61)), Some(0));
        assert_eq!(b.admit(UnixSeconds(62)), None);
    }
}
