//! String types documented (and checked) by a pattern and an optional maximum length, declared with
//! [`patterned_string!`]. A field of such a type carries its rule in its schema, so the rule is written once
//! instead of in a validator literal on every field that takes it (poem-openapi's `validator(pattern = ...)`
//! takes only a literal).
//!
//! Request bodies are checked against their schema first (`crate::body`), so a broken rule is reported on its
//! field there; the type's own parse checks the same rule for query parameters and as a last guard, in
//! poem-openapi's wording, which the error layer turns into "must match <pattern>".

/// Declares `pub struct $name(pub String)` with the schema `{type: string, pattern, maxLength?}`, parsed from
/// JSON and from a parameter by that rule.
macro_rules! patterned_string {
    ($(#[$doc:meta])* $name:ident, $type_name:literal, $pattern:expr, $max_length:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub String);

        impl $name {
            fn check(text: String) -> Result<Self, String> {
                static RE: std::sync::LazyLock<regex::Regex> =
                    std::sync::LazyLock::new(|| regex::Regex::new($pattern).expect("the pattern compiles"));
                let max: Option<usize> = $max_length;
                if let Some(max) = max.filter(|max| text.chars().count() > *max) {
                    return Err(format!("verification failed. maxLength({max})"));
                }
                if RE.is_match(&text) {
                    Ok(Self(text))
                } else {
                    Err(format!("verification failed. pattern(\"{}\")", $pattern))
                }
            }
        }

        impl poem_openapi::types::Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> std::borrow::Cow<'static, str> {
                $type_name.into()
            }

            fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
                poem_openapi::registry::MetaSchemaRef::Inline(Box::new(poem_openapi::registry::MetaSchema {
                    pattern: Some($pattern.to_owned()),
                    max_length: $max_length,
                    ..poem_openapi::registry::MetaSchema::new("string")
                }))
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }

        impl poem_openapi::types::ParseFromJSON for $name {
            fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
                let text = <String as poem_openapi::types::ParseFromJSON>::parse_from_json(value)
                    .map_err(poem_openapi::types::ParseError::propagate)?;
                Self::check(text).map_err(poem_openapi::types::ParseError::custom)
            }
        }

        impl poem_openapi::types::ParseFromParameter for $name {
            fn parse_from_parameter(value: &str) -> poem_openapi::types::ParseResult<Self> {
                Self::check(value.to_owned()).map_err(poem_openapi::types::ParseError::custom)
            }
        }

        impl poem_openapi::types::ToJSON for $name {
            fn to_json(&self) -> Option<serde_json::Value> {
                Some(serde_json::Value::String(self.0.clone()))
            }
        }
    };
}

pub(crate) use patterned_string;
