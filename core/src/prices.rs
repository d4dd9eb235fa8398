//! A fixed USD price table (the `[oracle]` config section): prices that work offline and never go stale by
//! surprise. It is a [`PriceOracle`]. Native coins are priced by symbol (`usd_eth`); ERC-20 tokens by network and
//! contract address (`token_<network>_<address>`), never by a symbol a request names. An asset missing from the
//! table has no price (never zero).

use std::collections::HashMap;

use crate::UnixSeconds;
use crate::domain::Address;
use crate::ports::{PriceKey, PriceOracle, PriceQuote};

#[derive(Clone, Debug, Default, PartialEq)]
/// A price oracle over fixed USD prices from the configuration (`[oracle]`), all observed at load time.
pub struct StaticPriceTable {
    natives: HashMap<String, f64>,
    tokens: HashMap<(String, Address), f64>,
    /// When the table was loaded: the age of every quote.
    loaded_at: UnixSeconds,
}

impl StaticPriceTable {
    /// Native coin prices by symbol (case-insensitive), e.g. `("ETH", 3000.0)`.
    pub fn new(prices: impl IntoIterator<Item = (String, f64)>, loaded_at: UnixSeconds) -> Self {
        let natives = prices.into_iter().map(|(symbol, usd)| (symbol.to_uppercase(), usd)).collect();
        StaticPriceTable { natives, tokens: HashMap::new(), loaded_at }
    }

    /// Adds token prices by (network, contract address).
    pub fn with_tokens(mut self, tokens: impl IntoIterator<Item = ((String, Address), f64)>) -> Self {
        self.tokens.extend(tokens);
        self
    }
}

impl PriceOracle for StaticPriceTable {
    fn usd_price<'a>(&self, asset: PriceKey<'a>) -> Option<PriceQuote> {
        let usd = match asset {
            PriceKey::Native { symbol } => self.natives.get(&symbol.to_uppercase()),
            PriceKey::Token { network, address } => self.tokens.get(&(network.to_owned(), address)),
        };
        usd.map(|usd| PriceQuote { usd: *usd, observed_at: self.loaded_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natives_by_symbol_tokens_by_network_and_address() {
        let token: Address = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse().unwrap();
        let table = StaticPriceTable::new([("eth".to_owned(), 3000.0)], UnixSeconds(5))
            .with_tokens([(("anvil".to_owned(), token), 1.0)]);
        let quote = |usd| Some(PriceQuote { usd, observed_at: UnixSeconds(5) });
        assert_eq!(table.usd_price(PriceKey::Native { symbol: "ETH" }), quote(3000.0));
        assert_eq!(table.usd_price(PriceKey::Native { symbol: "USDC" }), None);
        assert_eq!(table.usd_price(PriceKey::Token { network: "anvil", address: token }), quote(1.0));
        assert_eq!(table.usd_price(PriceKey::Token { network: "base", address: token }), None, "per network");
    }
}
