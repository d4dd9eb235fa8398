//! One agent's rolling activity, the only input of the anomaly rules: updated incrementally with each final
//! transaction and each balance the daemon reads, in bounded memory whatever the agent's history.
//!
//! * 10-minute buckets over the last 25 hours (count, payments, payments to new recipients, value spent per
//!   [`SpendKey`]): the last hour, the 24 hours before it, the last 10 minutes and the hour before them;
//! * hourly buckets over the last 7 days (transaction counts): the agent's hour-of-day profile;
//! * the recipients it paid in the last 7 days, with when it last paid each (at most [`MAX_KNOWN_RECIPIENTS`]);
//! * its native balances read in the last hour (at most [`MAX_BALANCES`]).
//!
//! Windows are bucket-aligned: "the last hour" is the current 10-minute bucket and the five before it. The same
//! state comes out of replaying the last 7 days of final transactions (the daemon's rebuild at startup) as out of
//! observing them one by one.

use std::collections::{HashMap, VecDeque};

use crate::domain::{Address, Asset, TxKind, TxStatus};
use crate::{Amount, UnixSeconds};

/// Width of a short bucket.
pub const BUCKET_SECONDS: i64 = 600;
/// Short buckets per hour.
pub const BUCKETS_PER_HOUR: i64 = HOUR_SECONDS / BUCKET_SECONDS;
/// One hour.
pub const HOUR_SECONDS: i64 = 3_600;
/// How long the state remembers: the hour-of-day profile and the known recipients (the startup rebuild reads
/// this far back).
pub const LEARNING_SECONDS: i64 = 7 * 86_400;
/// Short buckets kept: 25 hours (the last hour and the 24 before it).
const SHORT_BUCKETS: usize = 150;
/// Hourly buckets kept: 7 days.
const HOURLY_BUCKETS: usize = 168;
/// Most balance readings kept (all within the last hour).
pub const MAX_BALANCES: usize = 64;
/// Most recipients remembered per agent; beyond it the ones paid longest ago are forgotten first.
pub const MAX_KNOWN_RECIPIENTS: usize = 16_384;

/// What a value is counted in: USD when the transaction had a price at admission, else the asset's base units
/// on its network (wei for the native coin).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SpendKey {
    /// US dollars.
    Usd,
    /// Base units of one asset on one network.
    Asset {
        /// The configured network.
        network: String,
        /// The asset.
        asset: Asset,
    },
}

impl SpendKey {
    /// How the unit is named in a finding: `USD`, `native@<network>`, `<token>@<network>` (base units).
    pub fn unit(&self) -> String {
        match self {
            SpendKey::Usd => "USD".to_owned(),
            SpendKey::Asset { network, asset: Asset::Native } => format!("native@{network}"),
            SpendKey::Asset { network, asset: Asset::Token(token) } => format!("{token}@{network}"),
        }
    }
}

/// One final transaction as the rules see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// When it reached its final status.
    pub at: UnixSeconds,
    /// What left the wallet (empty for a failed transaction).
    pub spend: Vec<(SpendKey, f64)>,
    /// Whom it paid (native or token recipients).
    pub payees: Vec<Address>,
}

impl Observation {
    /// The observation of a final row: CONFIRMED and FAILED transactions were executed and count; only a
    /// CONFIRMED one spent. Rows in any other status (cancelled, expired, denied, not final) are not activity.
    /// `at` is when it reached `status`; `usd_value` its value at admission, when every asset had a price.
    pub fn of_final(
        status: TxStatus,
        at: UnixSeconds,
        usd_value: Option<f64>,
        network: &str,
        kind: &TxKind,
    ) -> Option<Observation> {
        if !matches!(status, TxStatus::Confirmed | TxStatus::Failed) {
            return None;
        }
        let effects = kind.effects();
        let mut payees = Vec::new();
        for effect in &effects {
            if let crate::domain::Effect::NativeTransfer { to, .. } | crate::domain::Effect::TokenTransfer { to, .. } =
                effect
                && !payees.contains(to)
            {
                payees.push(*to);
            }
        }
        let spend = if status != TxStatus::Confirmed {
            Vec::new()
        } else if let Some(usd) = usd_value {
            vec![(SpendKey::Usd, usd)]
        } else {
            kind.movements()
                .into_iter()
                .map(|(asset, amount)| (SpendKey::Asset { network: network.to_owned(), asset }, base_units(amount)))
                .collect()
        };
        Some(Observation { at, spend, payees })
    }
}

/// An amount as a float, for statistics (exact below 2^53).
pub fn base_units(amount: Amount) -> f64 {
    f64::from(amount.0)
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Bucket {
    index: i64,
    count: u32,
    payments: u32,
    to_new: u32,
    spend: Vec<(SpendKey, f64)>,
}

/// What set off the latest evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A transaction reached a final status at this time.
    Transaction(UnixSeconds),
    /// The native balance was read at this time.
    Balance(UnixSeconds),
}

/// One native balance reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceReading {
    /// When it was read.
    pub at: UnixSeconds,
    /// The network.
    pub network: String,
    /// The balance, in base units.
    pub amount: Amount,
}

/// One agent's rolling activity (see the module documentation).
#[derive(Clone, Debug, PartialEq)]
pub struct AgentActivity {
    first_seen: Option<UnixSeconds>,
    short: Vec<Bucket>,
    hourly: Vec<(i64, u32)>,
    known: HashMap<Address, UnixSeconds>,
    balances: VecDeque<BalanceReading>,
    trigger: Option<Trigger>,
}

impl Default for AgentActivity {
    fn default() -> Self {
        AgentActivity::new()
    }
}

fn bucket_of(at: UnixSeconds) -> i64 {
    at.0.div_euclid(BUCKET_SECONDS)
}

fn hour_of(at: UnixSeconds) -> i64 {
    at.0.div_euclid(HOUR_SECONDS)
}

impl AgentActivity {
    /// An agent with no activity yet.
    pub fn new() -> Self {
        AgentActivity {
            first_seen: None,
            short: vec![Bucket { index: i64::MIN, ..Bucket::default() }; SHORT_BUCKETS],
            hourly: vec![(i64::MIN, 0); HOURLY_BUCKETS],
            known: HashMap::new(),
            balances: VecDeque::new(),
            trigger: None,
        }
    }

    /// Adds one final transaction. Returns whether it paid a recipient the agent had not paid in the last 7 days.
    pub fn record(&mut self, observation: &Observation) -> bool {
        let at = observation.at;
        self.first_seen = Some(self.first_seen.map_or(at, |first| first.min(at)));
        self.trigger = Some(Trigger::Transaction(at));
        let forgotten = at.plus_seconds(-LEARNING_SECONDS);
        let to_new = !observation.payees.is_empty()
            && observation.payees.iter().any(|payee| self.known.get(payee).is_none_or(|last| *last <= forgotten));
        for payee in &observation.payees {
            let last = self.known.entry(*payee).or_insert(at);
            *last = (*last).max(at);
        }
        if self.known.len() > MAX_KNOWN_RECIPIENTS {
            self.forget_recipients(forgotten);
        }
        if let Some(bucket) = slot(&mut self.short, bucket_of(at)) {
            bucket.count += 1;
            if !observation.payees.is_empty() {
                bucket.payments += 1;
                bucket.to_new += u32::from(to_new);
            }
            for (key, value) in &observation.spend {
                match bucket.spend.iter_mut().find(|(k, _)| k == key) {
                    Some((_, total)) => *total += value,
                    None => bucket.spend.push((key.clone(), *value)),
                }
            }
        }
        let hour = hour_of(at);
        let cell = &mut self.hourly[hour.rem_euclid(HOURLY_BUCKETS as i64) as usize];
        if cell.0 < hour {
            *cell = (hour, 0);
        }
        if cell.0 == hour {
            cell.1 += 1;
        }
        to_new
    }

    /// Recipients paid longest ago go first: those beyond the learning window, then the oldest half.
    fn forget_recipients(&mut self, forgotten: UnixSeconds) {
        self.known.retain(|_, last| *last > forgotten);
        if self.known.len() > MAX_KNOWN_RECIPIENTS {
            let mut times: Vec<UnixSeconds> = self.known.values().copied().collect();
            times.sort_unstable();
            let cut = times[times.len() / 2];
            self.known.retain(|_, last| *last > cut);
        }
    }

    /// Adds one native balance reading.
    pub fn record_balance(&mut self, reading: BalanceReading) {
        let at = reading.at;
        self.trigger = Some(Trigger::Balance(at));
        self.balances.retain(|r| r.at > at.plus_seconds(-HOUR_SECONDS));
        if self.balances.len() >= MAX_BALANCES {
            self.balances.pop_front();
        }
        self.balances.push_back(reading);
    }

    /// The time of the agent's first observed transaction (the oldest of the last 7 days after a rebuild).
    pub fn first_seen(&self) -> Option<UnixSeconds> {
        self.first_seen
    }

    /// What set off the latest update.
    pub fn trigger(&self) -> Option<Trigger> {
        self.trigger
    }

    /// Transactions in the 7 days up to `now`.
    pub fn transactions_7d(&self, now: UnixSeconds) -> u64 {
        let current = hour_of(now);
        self.hourly
            .iter()
            .filter(|(hour, _)| *hour > current - HOURLY_BUCKETS as i64 && *hour <= current)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }

    fn short_bucket(&self, index: i64) -> Option<&Bucket> {
        self.short.get(index.rem_euclid(SHORT_BUCKETS as i64) as usize).filter(|b| b.index == index)
    }

    /// Transactions in the 10-minute bucket `back` buckets before the one holding `now` (0 = the current one).
    pub fn count_in_bucket(&self, now: UnixSeconds, back: i64) -> u32 {
        self.short_bucket(bucket_of(now) - back).map_or(0, |b| b.count)
    }

    /// Value spent per key in the `buckets` short buckets starting `back` buckets before `now`'s, going back.
    fn spend_over(&self, now: UnixSeconds, back: i64, buckets: i64) -> Vec<(SpendKey, f64)> {
        let current = bucket_of(now);
        let mut totals: Vec<(SpendKey, f64)> = Vec::new();
        for index in (current - back - buckets + 1)..=(current - back) {
            for (key, value) in self.short_bucket(index).map(|b| b.spend.as_slice()).unwrap_or_default() {
                match totals.iter_mut().find(|(k, _)| k == key) {
                    Some((_, total)) => *total += value,
                    None => totals.push((key.clone(), *value)),
                }
            }
        }
        totals
    }

    /// Value spent per key in the last hour (the current short bucket and the five before it).
    pub fn spend_last_hour(&self, now: UnixSeconds) -> Vec<(SpendKey, f64)> {
        self.spend_over(now, 0, BUCKETS_PER_HOUR)
    }

    /// Value spent in `key` in each of the 24 hours before the last hour, the most recent first.
    pub fn hourly_spend_before_last_hour(&self, now: UnixSeconds, key: &SpendKey) -> [f64; 24] {
        let mut hours = [0.0; 24];
        for (i, hour) in hours.iter_mut().enumerate() {
            let back = BUCKETS_PER_HOUR * (1 + i as i64);
            *hour = self
                .spend_over(now, back, BUCKETS_PER_HOUR)
                .into_iter()
                .find(|(k, _)| k == key)
                .map_or(0.0, |(_, v)| v);
        }
        hours
    }

    /// Payments in the last hour and how many of them paid a recipient not paid in the 7 days before.
    pub fn payments_last_hour(&self, now: UnixSeconds) -> (u32, u32) {
        let current = bucket_of(now);
        ((current - BUCKETS_PER_HOUR + 1)..=current)
            .filter_map(|index| self.short_bucket(index))
            .fold((0, 0), |(payments, to_new), b| (payments + b.payments, to_new + b.to_new))
    }

    /// Transactions per UTC hour of day over the 7 days up to `now`.
    pub fn hour_of_day_counts(&self, now: UnixSeconds) -> [u64; 24] {
        let current = hour_of(now);
        let mut counts = [0u64; 24];
        for (hour, n) in &self.hourly {
            if *hour > current - HOURLY_BUCKETS as i64 && *hour <= current {
                counts[hour.rem_euclid(24) as usize] += u64::from(*n);
            }
        }
        counts
    }

    /// Native balance readings of the last hour up to `now`, oldest first.
    pub fn balances(&self, now: UnixSeconds) -> impl Iterator<Item = &BalanceReading> {
        self.balances.iter().filter(move |r| r.at > now.plus_seconds(-HOUR_SECONDS) && r.at <= now)
    }

    /// Recipients remembered (paid within the last 7 days, at most [`MAX_KNOWN_RECIPIENTS`]).
    pub fn known_recipients(&self) -> usize {
        self.known.len()
    }
}

/// The bucket for `index`, emptied when it held an older period; `None` when `index` is older than the ring.
fn slot(ring: &mut [Bucket], index: i64) -> Option<&mut Bucket> {
    let len = ring.len() as i64;
    let bucket = &mut ring[index.rem_euclid(len) as usize];
    if bucket.index < index {
        *bucket = Bucket { index, ..Bucket::default() };
    }
    (bucket.index == index).then_some(bucket)
}
