//! Property tests of the strict body reader on arbitrary bytes: a JSON value, `VALIDATION_FAILED` or
//! `UNSUPPORTED_MEDIA_TYPE`, never a panic; it reads exactly what `serde_json` reads when no key repeats; a
//! repeated key is refused by path; nesting deeper than `serde_json`'s limit is an error, not a stack overflow.
//! The send/simulate pipeline (read_json, then `TxKind::parse`) is a request or `VALIDATION_FAILED`.

use proptest::prelude::*;
use serde_json::Value;
use waiaas_core::domain::{ChainFamily, TxKind};

use super::*;

const JSON: Option<&str> = Some("application/json");

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bytes that are JSON-ish more often than not: arbitrary bytes, JSON text cut or spliced, JSON-alphabet noise.
fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (json_value(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = serde_json::to_vec(&v).unwrap();
            text[..cut.index(text.len() + 1)].to_vec()
        }),
        "[\\[\\]{}:,\" 0-9a-z.eE+\\-\\\\]{0,80}".prop_map(String::into_bytes),
    ]
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

fn code(result: &Result<Value, ApiError>) -> Option<ErrorCode> {
    result.as_ref().err().map(|e| e.0.code)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes under any content type: `{}` for whitespace, 415 for a non-JSON type, else a value or
    /// `VALIDATION_FAILED`; a value is what `serde_json` reads from the same bytes.
    #[test]
    fn arbitrary_bytes_are_a_value_or_a_coded_error(
        bytes in body_bytes(),
        content_type in prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/problem+json; charset=utf-8".to_owned()),
            "\\PC{0,30}",
        ]),
    ) {
        let result = read_json(content_type.as_deref(), &bytes);
        if bytes.iter().all(u8::is_ascii_whitespace) {
            prop_assert_eq!(result.unwrap(), Value::Object(Default::default()));
        } else if !content_type.as_deref().is_some_and(is_json) {
            prop_assert_eq!(code(&result), Some(ErrorCode::UnsupportedMediaType));
        } else {
            match result {
                Ok(value) => prop_assert_eq!(Some(value), serde_json::from_slice::<Value>(&bytes).ok()),
                Err(e) => prop_assert_eq!(e.0.code, ErrorCode::ValidationFailed),
            }
        }
    }

    /// Any JSON document (keys unique by construction) reads back as `serde_json` reads it (floats may move by
    /// one ulp in both: serde_json's default number parser), and as itself when it holds no float.
    #[test]
    fn serialized_values_read_back_unchanged(value in json_value(), pretty in any::<bool>()) {
        let bytes = if pretty { serde_json::to_vec_pretty(&value) } else { serde_json::to_vec(&value) }.unwrap();
        let read = read_json(JSON, &bytes).unwrap();
        prop_assert_eq!(&read, &serde_json::from_slice::<Value>(&bytes).unwrap());
        if !has_float(&value) {
            prop_assert_eq!(read, value);
        }
    }

    /// A key written twice in an object, at any depth, is refused and named.
    #[test]
    fn a_repeated_key_is_refused_by_path(
        key in "[a-z]{1,8}",
        first in json_value(),
        second in json_value(),
        depth in 0usize..4,
    ) {
        let a = serde_json::to_string(&first).unwrap();
        let b = serde_json::to_string(&second).unwrap();
        let mut text = format!("{{{key:?}: {a}, {key:?}: {b}}}");
        let mut path = key.clone();
        for _ in 0..depth {
            text = format!("{{\"outer\": [{text}]}}");
            path = format!("outer[0].{path}");
        }
        let err = read_json(JSON, text.as_bytes()).unwrap_err();
        prop_assert_eq!(err.0.code, ErrorCode::ValidationFailed);
        prop_assert!(err.0.details.unwrap().to_string().contains(&path), "path {} not named", path);
    }

    /// Nesting far deeper than anything a request needs: an error, not a stack overflow.
    #[test]
    fn deep_nesting_is_an_error(depth in 129usize..20_000, object in any::<bool>()) {
        let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
        let text = format!("{}0{}", open.repeat(depth), close.repeat(depth));
        prop_assert_eq!(code(&read_json(JSON, text.as_bytes())), Some(ErrorCode::ValidationFailed));
    }

    /// The body of send and simulate, from bytes to a request: a request or `VALIDATION_FAILED`.
    #[test]
    fn send_and_simulate_bodies_are_a_request_or_validation_failed(
        bytes in prop_oneof![
            body_bytes(),
            json_value().prop_map(|v| serde_json::to_vec(&serde_json::json!({"type": "TRANSFER", "to": v, "amount": "1"})).unwrap()),
        ],
        solana in any::<bool>(),
    ) {
        let family = if solana { ChainFamily::Solana } else { ChainFamily::Evm };
        match read_json(JSON, &bytes) {
            Ok(value) => {
                if let Err(e) = TxKind::parse(&value, family) {
                    prop_assert_eq!(e.code, ErrorCode::ValidationFailed);
                }
            }
            Err(e) => prop_assert_eq!(e.0.code, ErrorCode::ValidationFailed),
        }
    }
}
