//! Addresses on the wire as documented string types: [`AnyAddress`] (EVM or Solana form) and [`SolanaAddress`]
//! (base58 only). Each carries its `pattern` in its schema, so the pattern is written once here instead of in a
//! validator literal on every field (poem-openapi's `validator(pattern = ...)` takes only a literal).
//!
//! The pattern is the document's promise about the form; which family an address must be of, and its checksum,
//! are the core's to check (it parses every address in its network's family).

use std::borrow::Cow;
use std::sync::LazyLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type};
use regex::Regex;
use serde_json::Value;

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

/// Declares a string newtype documented (and checked) with a pattern.
macro_rules! patterned_string {
    ($(#[$doc:meta])* $name:ident, $type_name:literal, $pattern:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub String);

        impl $name {
            fn check(text: String) -> Result<Self, String> {
                static RE: LazyLock<Regex> = LazyLock::new(|| Regex::new($pattern).expect("the pattern compiles"));
                // poem-openapi's own wording, which the error layer turns into "must match <pattern>".
                if RE.is_match(&text) { Ok(Self(text)) } else { Err(format!("verification failed. pattern(\"{}\")", $pattern)) }
            }
        }

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> Cow<'static, str> {
                $type_name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                MetaSchemaRef::Inline(Box::new(MetaSchema { pattern: Some($pattern.to_owned()), ..MetaSchema::new("string") }))
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                let text = String::parse_from_json(value).map_err(ParseError::propagate)?;
                Self::check(text).map_err(ParseError::custom)
            }
        }

        impl ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                Self::check(value.to_owned()).map_err(ParseError::custom)
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }
    };
}

patterned_string!(
    /// An address of either family, by [`ANY_ADDRESS_PATTERN`].
    AnyAddress,
    "string(address)",
    ANY_ADDRESS_PATTERN
);

patterned_string!(
    /// A Solana address, by [`SOLANA_ADDRESS_PATTERN`].
    SolanaAddress,
    "string(solana_address)",
    SOLANA_ADDRESS_PATTERN
);

#[cfg(test)]
mod tests {
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
