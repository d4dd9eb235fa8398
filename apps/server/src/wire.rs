//! Wire types shared by the DTOs: core enumerations as named OpenAPI string enums ([`Wire`]), strictly parsed
//! integer query parameters ([`StrictInt`]), the page size of every list ([`PageLimit`]) and strings documented
//! by their pattern ([`patterned`]: [`AnyAddress`], [`SolanaAddress`]).
//!
//! The enumerations are described from the core's own tables (`as_str`, `ALL`), so the OpenAPI document cannot
//! drift from what the core accepts and emits.

mod address;
pub(crate) mod patterned;

pub use address::{ANY_ADDRESS_PATTERN, AnyAddress, SolanaAddress};

use std::borrow::Cow;
use std::fmt::Display;
use std::str::FromStr;
use std::sync::OnceLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type};
use serde_json::Value;
use waiaas_core::ErrorCode;
use waiaas_core::domain::{AgentStatus, Chain, KillSwitchState, PolicyType, TxStatus};
use waiaas_core::event::{EventType, Severity};
use waiaas_core::policy_engine::Tier;
use waiaas_core::services::{MAX_PAGE_LIMIT, MIN_PAGE_LIMIT};

/// A core enumeration with a fixed set of SCREAMING_SNAKE_CASE (or lowercase) wire spellings.
pub trait WireEnum: Copy + Send + Sync + 'static {
    /// The schema name in the OpenAPI document.
    const NAME: &'static str;
    /// Every value, in the order the document lists them.
    fn all() -> &'static [Self];
    fn as_str(self) -> &'static str;
    /// A description for the schema (built once).
    fn description() -> Option<&'static str> {
        None
    }
}

/// A [`WireEnum`] as a string on the wire, documented as a named enum schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wire<E>(pub E);

impl<E: WireEnum> Type for Wire<E> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        E::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(E::NAME.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(E::NAME.to_owned(), |_| MetaSchema {
            description: E::description(),
            enum_items: E::all().iter().map(|v| Value::String(v.as_str().to_owned())).collect(),
            ..MetaSchema::new("string")
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<E: WireEnum> ParseFromJSON for Wire<E> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => E::all()
                .iter()
                .copied()
                .find(|v| v.as_str() == text)
                .map(Wire)
                .ok_or_else(|| ParseError::custom(format!("unknown value {text:?}"))),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<E: WireEnum> ParseFromParameter for Wire<E> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        E::all().iter().copied().find(|v| v.as_str() == value).map(Wire).ok_or_else(|| {
            let allowed: Vec<&str> = E::all().iter().map(|v| v.as_str()).collect();
            ParseError::custom(format!("unknown value {value:?}; one of {}", allowed.join(", ")))
        })
    }
}

impl<E: WireEnum> ToJSON for Wire<E> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.as_str().to_owned()))
    }
}

impl WireEnum for ErrorCode {
    const NAME: &'static str = "ErrorCode";

    fn all() -> &'static [Self] {
        ErrorCode::ALL
    }

    fn as_str(self) -> &'static str {
        ErrorCode::as_str(self)
    }

    /// The code → HTTP status table, generated from the core's table.
    fn description() -> Option<&'static str> {
        static TEXT: OnceLock<String> = OnceLock::new();
        let text = TEXT.get_or_init(|| {
            let rows: Vec<String> = ErrorCode::ALL
                .iter()
                .map(|code| {
                    let info = code.info();
                    let retry = if info.retryable { ", retryable" } else { "" };
                    format!("`{code}` {}{retry}", info.http_status)
                })
                .collect();
            format!("Machine-readable error code. HTTP status by code: {}.", rows.join("; "))
        });
        Some(text.as_str())
    }
}

impl WireEnum for Chain {
    const NAME: &'static str = "Chain";

    fn all() -> &'static [Self] {
        &[Chain::Ethereum, Chain::Solana]
    }

    fn as_str(self) -> &'static str {
        Chain::as_str(self)
    }

    fn description() -> Option<&'static str> {
        Some("The chain an agent's key is for.")
    }
}

impl WireEnum for AgentStatus {
    const NAME: &'static str = "AgentStatus";

    fn all() -> &'static [Self] {
        &[AgentStatus::Active, AgentStatus::Suspended, AgentStatus::Terminated]
    }

    fn as_str(self) -> &'static str {
        AgentStatus::as_str(self)
    }
}

impl WireEnum for KillSwitchState {
    const NAME: &'static str = "KillSwitchState";

    fn all() -> &'static [Self] {
        &[KillSwitchState::Active, KillSwitchState::Suspended, KillSwitchState::Locked]
    }

    fn as_str(self) -> &'static str {
        KillSwitchState::as_str(self)
    }
}

impl WireEnum for PolicyType {
    const NAME: &'static str = "PolicyType";

    fn all() -> &'static [Self] {
        &PolicyType::ALL
    }

    fn as_str(self) -> &'static str {
        PolicyType::as_str(self)
    }
}

impl WireEnum for EventType {
    const NAME: &'static str = "EventType";

    fn all() -> &'static [Self] {
        EventType::ALL
    }

    fn as_str(self) -> &'static str {
        EventType::as_str(self)
    }
}

/// One entry of a webhook's event filter: an event type name, or `*` for every event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFilterName {
    /// `*`.
    All,
    /// One event type.
    Event(EventType),
}

impl WireEnum for EventFilterName {
    const NAME: &'static str = "EventFilterName";

    fn all() -> &'static [Self] {
        static ALL: OnceLock<Vec<EventFilterName>> = OnceLock::new();
        ALL.get_or_init(|| {
            std::iter::once(EventFilterName::All)
                .chain(EventType::ALL.iter().copied().map(EventFilterName::Event))
                .collect()
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            EventFilterName::All => waiaas_core::webhooks::ALL_EVENTS,
            EventFilterName::Event(event_type) => event_type.as_str(),
        }
    }

    fn description() -> Option<&'static str> {
        Some("An event type name, or `*` for every event.")
    }
}

impl WireEnum for Severity {
    const NAME: &'static str = "Severity";

    fn all() -> &'static [Self] {
        &[Severity::Info, Severity::Warning, Severity::Critical]
    }

    fn as_str(self) -> &'static str {
        Severity::as_str(self)
    }
}

impl WireEnum for TxStatus {
    const NAME: &'static str = "TransactionStatus";

    fn all() -> &'static [Self] {
        &TxStatus::ALL
    }

    fn as_str(self) -> &'static str {
        TxStatus::as_str(self)
    }

    fn description() -> Option<&'static str> {
        Some(
            "PENDING → QUEUED (DELAY / APPROVAL wait) → EXECUTING → SUBMITTED → CONFIRMED, or one of the final \
             states FAILED, CANCELLED (by the agent, the owner, the kill switch, or a policy denial) and EXPIRED \
             (approval not given in time).",
        )
    }
}

impl WireEnum for Tier {
    const NAME: &'static str = "Tier";

    fn all() -> &'static [Self] {
        &Tier::ALL
    }

    fn as_str(self) -> &'static str {
        Tier::as_str(self)
    }

    fn description() -> Option<&'static str> {
        Some(
            "The policy tier: INSTANT (run now), NOTIFY (run now, tell the owner), DELAY (queued for the policy's \
             delay, cancellable), APPROVAL (waits for the owner's signature).",
        )
    }
}

/// An integer query parameter that accepts only `-?[0-9]+` (no `+`, spaces, fractions or exponents), documented
/// with the schema of `T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrictInt<T>(pub T);

impl<T: Type> Type for StrictInt<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T> ParseFromParameter for StrictInt<T>
where
    T: Type + FromStr,
    T::Err: Display,
{
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let digits = value.strip_prefix('-').unwrap_or(value);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::custom("must be an integer (decimal digits only)"));
        }
        value.parse::<T>().map(StrictInt).map_err(|e| ParseError::custom(format!("out of range: {e}")))
    }
}

/// The `limit` query parameter of every list: an integer from [`MIN_PAGE_LIMIT`] to [`MAX_PAGE_LIMIT`] (the core's
/// bounds), parsed strictly and documented with those bounds, so the document and the check are one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimit(pub u32);

impl Type for PageLimit {
    const IS_REQUIRED: bool = true;
    type RawValueType = u32;
    type RawElementValueType = u32;

    fn name() -> Cow<'static, str> {
        "integer(page_limit)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("int32"),
            minimum: Some(f64::from(MIN_PAGE_LIMIT)),
            maximum: Some(f64::from(MAX_PAGE_LIMIT)),
            default: Some(Value::from(50)),
            ..MetaSchema::new("integer")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromParameter for PageLimit {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let StrictInt(n) = StrictInt::<u32>::parse_from_parameter(value).map_err(ParseError::propagate)?;
        if (MIN_PAGE_LIMIT..=MAX_PAGE_LIMIT).contains(&n) {
            Ok(PageLimit(n))
        } else {
            Err(ParseError::custom(format!("must be between {MIN_PAGE_LIMIT} and {MAX_PAGE_LIMIT}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_u32(input: &str, expected: Option<u32>) {
        let got = StrictInt::<u32>::parse_from_parameter(input).ok().map(|v| v.0);
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn strict_integers() {
        check_u32("50", Some(50));
        check_u32("0", Some(0));
        check_u32("abc", None);
        check_u32("1.5", None);
        check_u32("+5", None);
        check_u32(" 5", None);
        check_u32("", None);
        check_u32("-1", None);
        check_u32("1e3", None);
        check_u32("99999999999", None);
        assert_eq!(StrictInt::<i64>::parse_from_parameter("-17").unwrap().0, -17);
        assert!(StrictInt::<i64>::parse_from_parameter("-").is_err());
    }

    #[test]
    fn page_limits_are_the_core_bounds() {
        let parse = |s: &str| PageLimit::parse_from_parameter(s).ok().map(|l| l.0);
        assert_eq!((parse("1"), parse("200"), parse("50")), (Some(1), Some(200), Some(50)));
        assert_eq!((parse("0"), parse("201"), parse("-1"), parse("1.0")), (None, None, None, None));
        let MetaSchemaRef::Inline(schema) = PageLimit::schema_ref() else { panic!("inline schema") };
        assert_eq!((schema.minimum, schema.maximum), (Some(1.0), Some(200.0)));
    }

    #[test]
    fn wire_enums_round_trip() {
        for code in ErrorCode::ALL {
            let json = Wire(*code).to_json();
            assert_eq!(Wire::<ErrorCode>::parse_from_json(json).unwrap().0, *code);
        }
        assert!(Wire::<PolicyType>::parse_from_json(Some(Value::String("NOPE".into()))).is_err());
        assert!(Wire::<PolicyType>::parse_from_json(Some(Value::from(1))).is_err());
    }
}

/// A body field that must be present and may be null (null has a meaning, e.g. "clear the owner"): the document
/// lists it as required and nullable, which `Option` (optional) and `MaybeUndefined` (optional) cannot say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nullable<T>(pub Option<T>);

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable<{}>", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None => Err(ParseError::custom("required (null clears it)")),
            Some(Value::Null) => Ok(Nullable(None)),
            Some(value) => T::parse_from_json(Some(value)).map(|v| Nullable(Some(v))).map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.as_ref().and_then(ToJSON::to_json).unwrap_or(Value::Null))
    }
}
