//! Addresses on the wire as documented string types ([`super::patterned`]): [`AnyAddress`] (EVM or Solana form)
//! and [`SolanaAddress`] (base58 only).
//!
//! The pattern is the document's promise about the form; which family an address must be of, and its checksum,
//! are the core's to check (it parses every address in its network's family).

use super::patterned::patterned_string;

/// Base58 of 32 bytes: 32 to 44 characters, written as 32 plus twelve optional ones because the Go client
/// generator's validator tags split `{32,44}` on its comma.
macro_rules! base58_32 {
    () => {
        "[1-9A-HJ-NP-Za-km-z]{32}[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?\
         [1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?\
         [1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?"
    };
}

/// An EVM address (`0x` + 40 hex digits; mixed case must be a valid EIP-55 checksum) or a Solana address (base58,
/// 32 bytes).
pub const ANY_ADDRESS_PATTERN: &str = concat!("^(0x[0-9a-fA-F]{40}|", base58_32!(), ")$");

/// A Solana address (base58, 32 bytes).
pub const SOLANA_ADDRESS_PATTERN: &str = concat!("^", base58_32!(), "$");

patterned_string!(
    /// An address of either family, by [`ANY_ADDRESS_PATTERN`].
    AnyAddress,
    "string(address)",
    ANY_ADDRESS_PATTERN,
    None
);

patterned_string!(
    /// A Solana address, by [`SOLANA_ADDRESS_PATTERN`].
    SolanaAddress,
    "string(solana_address)",
    SOLANA_ADDRESS_PATTERN,
    None
);

#[cfg(test)]
mod tests {
    use poem_openapi::registry::MetaSchemaRef;
    use poem_openapi::types::{ParseFromJSON, ParseFromParameter, Type};
    use serde_json::Value;

    use super::*;

    #[test]
    fn the_patterns_take_both_forms_and_refuse_the_rest() {
        let evm = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";
        let solana = "11111111111111111111111111111111";
        let solana_44 = "So11111111111111111111111111111111111111112";
        let too_long = "1".repeat(45);
        for (text, any, sol) in [
            (evm, true, false),
            (solana, true, true),
            (solana_44, true, true),
            ("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", false, false),
            ("0OIl1111111111111111111111111111", false, false),
            (too_long.as_str(), false, false),
            ("", false, false),
        ] {
            assert_eq!(AnyAddress::parse_from_parameter(text).is_ok(), any, "{text}");
            assert_eq!(SolanaAddress::parse_from_json(Some(Value::String(text.into()))).is_ok(), sol, "{text}");
        }
    }

    #[test]
    fn the_schema_carries_the_pattern() {
        let MetaSchemaRef::Inline(schema) = AnyAddress::schema_ref() else { panic!("inline") };
        assert_eq!((schema.ty, schema.pattern.as_deref()), ("string", Some(ANY_ADDRESS_PATTERN)));
    }
}
