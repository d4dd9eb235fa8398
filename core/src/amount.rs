//! Amounts in a chain's smallest unit as 256-bit unsigned integers, written as decimal strings on the wire.

use std::fmt;
use std::str::FromStr;

use alloy_primitives::U256;

/// A non-negative amount in the smallest unit of an asset (wei for ETH).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub U256);

/// Why a string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be a non-empty string of decimal digits")]
    /// The text is not a non-empty string of ASCII digits.
    NotDecimal,
    #[error("amount does not fit in 256 bits")]
    /// The value does not fit in 256 bits.
    Overflow,
}

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(U256::ZERO);
    /// The largest amount (2^256 - 1).
    pub const MAX: Amount = Amount(U256::MAX);

    /// An amount from a `u128`.
    pub fn from_u128(value: u128) -> Self {
        Amount(U256::from(value))
    }

    /// The sum, or None on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// The sum, capped at [`Amount::MAX`].
    pub fn saturating_add(self, other: Amount) -> Amount {
        Amount(self.0.saturating_add(other.0))
    }

    /// The difference, or None when `other` is larger.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// The difference, floored at zero.
    pub fn saturating_sub(self, other: Amount) -> Amount {
        Amount(self.0.saturating_sub(other.0))
    }

    /// The amount in whole units of an asset with `decimals` places, exactly, as people write it: `1.5` for
    /// 1500000000000000000 wei at 18 decimals, `0.000001`, `12` (no trailing zeros, no exponent, no rounding).
    pub fn to_units_string(self, decimals: u8) -> String {
        let digits = self.0.to_string();
        let places = usize::from(decimals);
        if places == 0 {
            return digits;
        }
        let padded = format!("{digits:0>width$}", width = places + 1);
        let (whole, fraction) = padded.split_at(padded.len() - places);
        let fraction = fraction.trim_end_matches('0');
        if fraction.is_empty() { whole.to_owned() } else { format!("{whole}.{fraction}") }
    }
}

impl FromStr for Amount {
    type Err = AmountError;

    /// Accepts exactly `^[0-9]+$`: no sign, no hex prefix, no whitespace, no exponent.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::NotDecimal);
        }
        U256::from_str_radix(s, 10).map(Amount).map_err(|_| AmountError::Overflow)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({})", self.0)
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Result<&str, AmountError>) {
        let got = input.parse::<Amount>().map(|a| a.to_string());
        assert_eq!(got, expected.map(str::to_owned), "input {input:?}");
    }

    #[test]
    fn parses_only_decimal_digits() {
        check("0", Ok("0"));
        check("000123", Ok("123"));
        check("1000000000000000000", Ok("1000000000000000000"));
        check(
            "115792089237316195423570985008687907853269984665640564039457584007913129639935",
            Ok("115792089237316195423570985008687907853269984665640564039457584007913129639935"),
        );
        check(
            "115792089237316195423570985008687907853269984665640564039457584007913129639936",
            Err(AmountError::Overflow),
        );
        check("", Err(AmountError::NotDecimal));
        check("-1", Err(AmountError::NotDecimal));
        check("0x10", Err(AmountError::NotDecimal));
        check(" 1", Err(AmountError::NotDecimal));
        check("1e18", Err(AmountError::NotDecimal));
    }

    #[test]
    fn units_are_exact_decimal_text() {
        let check = |amount: &str, decimals: u8, expected: &str| {
            assert_eq!(
                amount.parse::<Amount>().unwrap().to_units_string(decimals),
                expected,
                "{amount} / 10^{decimals}"
            )
        };
        check("1500000000000000000", 18, "1.5");
        check("1000000000000000000", 18, "1");
        check("1", 18, "0.000000000000000001");
        check("0", 18, "0");
        check("0", 0, "0");
        check("123", 0, "123");
        check("1234567", 6, "1.234567");
        check("100000", 6, "0.1");
        check(
            &Amount::MAX.to_string(),
            18,
            "115792089237316195423570985008687907853269984665640564039457.584007913129639935",
        );
    }

    #[test]
    fn compares_as_integers_not_strings() {
        let nine: Amount = "9".parse().unwrap();
        let ten: Amount = "10".parse().unwrap();
        assert!(nine < ten);
    }
}
