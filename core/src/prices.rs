//! A fixed USD price table (the `[oracle]` config section): prices that work offline and never go stale by
//! surprise. It is a [`PriceOracle`]; an asset missing from the table has no price (never zero).

use std::collections::HashMap;

use crate::UnixSeconds;
use crate::ports::{PriceOracle, PriceQuote};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StaticPriceTable {
    prices: HashMap<String, f64>,
    /// When the table was loaded: the age of every quote.
    loaded_at: UnixSeconds,
}

impl StaticPriceTable {
    /// Prices by symbol (case-insensitive), e.g. `("ETH", 3000.0)`.
    pub fn new(prices: impl IntoIterator<Item = (String, f64)>, loaded_at: UnixSeconds) -> Self {
        let prices = prices.into_iter().map(|(symbol, usd)| (symbol.to_uppercase(), usd)).collect();
        StaticPriceTable { prices, loaded_at }
    }
}

impl PriceOracle for StaticPriceTable {
    fn usd_price(&self, symbol: &str) -> Option<PriceQuote> {
        self.prices.get(&symbol.to_uppercase()).map(|usd| PriceQuote { usd: *usd, observed_at: self.loaded_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_missing_is_none() {
        let table = StaticPriceTable::new([("eth".to_owned(), 3000.0)], UnixSeconds(5));
        assert_eq!(table.usd_price("ETH"), Some(PriceQuote { usd: 3000.0, observed_at: UnixSeconds(5) }));
        assert_eq!(table.usd_price("USDC"), None);
    }
}
