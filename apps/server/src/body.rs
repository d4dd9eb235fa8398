//! JSON request bodies that fail with field paths.
//!
//! [`JsonBody`] is used instead of poem-openapi's `Json` for request bodies: it documents the same schema, but
//! when a body does not parse it reports `VALIDATION_FAILED` with one issue per offending field (unknown fields,
//! missing required fields, wrong types, values outside an enumeration, malformed UUIDs), found by checking the
//! JSON against the DTO's own OpenAPI schema. A body the document declares required must be sent; an optional
//! one that is absent (empty) is read as `{}`; a non-empty body must be sent as `application/json`.
//!
//! [`RawJsonBody`] applies the same reading rules (size limit, content type, well-formed JSON) but hands the
//! handler the JSON value itself, for bodies the core parses (transaction requests: `TxKind::parse` is the one
//! parser of send and simulate). Its type parameter only documents the schema.
//!
//! Both read the JSON with [`read_json`], which refuses an object that names a key twice, at any depth
//! (`VALIDATION_FAILED`, one issue per duplicate, by path): parsers disagree on which of two values wins, so a
//! log, a proxy or a policy reviewer could read another amount or recipient than the one the daemon acts on.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use poem::Request;
use poem::error::ReadBodyError;
use poem::web::RequestBody;
use poem_openapi::registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use waiaas_core::error::Issue;
use waiaas_core::{Error, ErrorCode};

use crate::error::ApiError;

/// Largest request body accepted (requests here are small JSON documents).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON request body of type `T`. `REQUIRED = false` documents the body as optional (an absent body is `{}`).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonBody<T, const REQUIRED: bool = true>(pub T);

impl<'a, T: ParseFromJSON, const REQUIRED: bool> ApiExtractor<'a> for JsonBody<T, REQUIRED> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType { content_type: "application/json", schema: T::schema_ref() }],
            required: REQUIRED,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = read_bytes(body).await?;
        if REQUIRED {
            require(&bytes)?;
        }
        Ok(JsonBody(parse::<T>(request.content_type(), &bytes)?))
    }
}

/// A JSON request body handed over as a [`Value`] (an object, array or scalar: whoever consumes it decides),
/// documented in the OpenAPI document with the schema of `D`. Reading rules as for [`JsonBody`].
#[derive(Debug, Clone, PartialEq)]
pub struct RawJsonBody<D>(pub Value, PhantomData<fn() -> D>);

impl<D> RawJsonBody<D> {
    pub fn new(value: Value) -> Self {
        RawJsonBody(value, PhantomData)
    }

    pub fn into_inner(self) -> Value {
        self.0
    }
}

impl<'a, D: Type> ApiExtractor<'a> for RawJsonBody<D> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        D::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType { content_type: "application/json", schema: D::schema_ref() }],
            required: true,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let bytes = read_bytes(body).await?;
        require(&bytes)?;
        Ok(RawJsonBody::new(read_json(request.content_type(), &bytes)?))
    }
}

/// 413 `PAYLOAD_TOO_LARGE`: a body over [`MAX_BODY_BYTES`].
pub fn too_large() -> Error {
    Error::new(ErrorCode::PayloadTooLarge, format!("the request body is larger than {MAX_BODY_BYTES} bytes"))
}

/// 415 `UNSUPPORTED_MEDIA_TYPE`: a body that is not declared JSON.
pub fn unsupported_media_type(content_type: Option<&str>) -> Error {
    let declared = content_type.map_or_else(|| "no Content-Type".to_owned(), |t| format!("Content-Type {t:?}"));
    Error::new(
        ErrorCode::UnsupportedMediaType,
        format!("{declared}: send the body as `Content-Type: application/json`"),
    )
}

/// Takes the body, at most [`MAX_BODY_BYTES`].
async fn read_bytes(body: &mut RequestBody) -> Result<Vec<u8>, ApiError> {
    let body = body.take().map_err(|_| ApiError(Error::internal_msg("request body read twice")))?;
    let bytes = body.into_bytes_limit(MAX_BODY_BYTES).await.map_err(|e| match e {
        ReadBodyError::PayloadTooLarge => ApiError(too_large()),
        other => ApiError::invalid_field("body", other.to_string()),
    })?;
    Ok(bytes.into())
}

/// A body the document declares required is present: an empty one (or only whitespace) is `VALIDATION_FAILED`
/// on `body`, even where every field is optional (`{}` says "change nothing"; no body says nothing).
fn require(bytes: &[u8]) -> Result<(), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_field("body", "a JSON body is required (send `{}` for an object of defaults)"));
    }
    Ok(())
}

/// The body as JSON: empty (or only whitespace) is `{}`; anything else must be declared JSON, well formed and free
/// of duplicate keys.
pub fn read_json(content_type: Option<&str>, bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    if !content_type.is_some_and(is_json) {
        return Err(ApiError(unsupported_media_type(content_type)));
    }
    let duplicates = RefCell::new(Vec::new());
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { path: String::new(), duplicates: &duplicates }
        .deserialize(&mut reader)
        .and_then(|value| reader.end().map(|()| value))
        .map_err(|e| ApiError::invalid_field("body", format!("malformed JSON: {e}")))?;
    let mut duplicates = duplicates.into_inner();
    if duplicates.is_empty() {
        return Ok(value);
    }
    duplicates.dedup();
    let issues = duplicates
        .into_iter()
        .map(|path| Issue { path, message: "duplicate key: name each field once".to_owned() })
        .collect();
    Err(ApiError(Error::validation(issues)))
}

/// Reads one JSON value into a [`Value`] as `serde_json` does, and records the path of every key an object
/// repeats (the first value is kept, though the caller refuses the body anyway). Paths are written as the schema
/// check writes them: `a.b`, `a[0].b`, `body[1]`.
struct Strict<'a> {
    path: String,
    duplicates: &'a RefCell<Vec<String>>,
}

impl Strict<'_> {
    fn at(&self, path: String) -> Self {
        Strict { path, duplicates: self.duplicates }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        // As serde_json's own `Value` does (JSON text cannot spell a non-finite number anyway).
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.at(format!("{}[{}]", shown(&self.path), items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            let value = map.next_value_seed(self.at(path.clone()))?;
            if object.contains_key(&key) {
                self.duplicates.borrow_mut().push(path);
            } else {
                object.insert(key, value);
            }
        }
        Ok(Value::Object(object))
    }
}

/// Parses `bytes` as a `T`, or explains every offending field.
pub fn parse<T: ParseFromJSON>(content_type: Option<&str>, bytes: &[u8]) -> Result<T, ApiError> {
    let value = read_json(content_type, bytes)?;
    // The schema check comes first and is authoritative: poem-openapi's own parsing coerces some mismatches
    // (a number into a string field), which would silently accept a wrong type.
    let issues = diagnose::<T>(&value);
    if !issues.is_empty() {
        return Err(ApiError(Error::validation(issues)));
    }
    T::parse_from_json(Some(value))
        .map_err(|e| ApiError(Error::validation(vec![Issue { path: "body".into(), message: e.into_message() }])))
}

fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Checks `value` against `T`'s schema and lists what is wrong, field by field.
pub fn diagnose<T: Type>(value: &Value) -> Vec<Issue> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let mut issues = Vec::new();
    check(&registry, &T::schema_ref(), value, "", &mut issues);
    issues
}

/// The length and pattern rules of a string schema (the document's `minLength`, `maxLength`, `pattern`), so a
/// broken one is reported on its field rather than on the whole body.
fn string_rule_broken(schema: &MetaSchema, text: &str) -> Option<String> {
    let length = text.chars().count();
    if let Some(min) = schema.min_length.filter(|min| length < *min) {
        return Some(format!("must be at least {min} characters"));
    }
    if let Some(max) = schema.max_length.filter(|max| length > *max) {
        return Some(format!("must be at most {max} characters"));
    }
    let pattern = schema.pattern.as_deref()?;
    let matches = regex::Regex::new(pattern).map(|re| re.is_match(text)).unwrap_or(true);
    (!matches).then(|| format!("must match {pattern}"))
}

fn resolve<'r>(registry: &'r Registry, schema: &'r MetaSchemaRef) -> Option<&'r MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(schema) => Some(schema),
        MetaSchemaRef::Reference(name) => registry.schemas.get(name),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() { field.to_owned() } else { format!("{path}.{field}") }
}

fn shown(path: &str) -> String {
    if path.is_empty() { "body".to_owned() } else { path.to_owned() }
}

fn check(registry: &Registry, schema: &MetaSchemaRef, value: &Value, path: &str, issues: &mut Vec<Issue>) {
    let Some(schema) = resolve(registry, schema) else {
        return;
    };
    // A documented reference is rendered as `allOf: [ref]` plus the description.
    for inner in &schema.all_of {
        check(registry, inner, value, path, issues);
    }
    let mut fail = |message: String| issues.push(Issue { path: shown(path), message });
    if value.is_null() {
        if !schema.nullable && !schema.ty.is_empty() {
            fail(format!("must be {}, not null", expected(schema)));
        }
        return;
    }
    let type_ok = match schema.ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => integer_in_range(value, schema.format),
        _ => true,
    };
    if !type_ok {
        fail(format!("must be {}", expected(schema)));
        return;
    }
    if let Value::String(text) = value {
        if !schema.enum_items.is_empty() && !schema.enum_items.iter().any(|item| item.as_str() == Some(text)) {
            let allowed: Vec<&str> = schema.enum_items.iter().filter_map(Value::as_str).collect();
            fail(format!("{text:?} is not one of {}", allowed.join(", ")));
        } else if schema.format == Some("uuid") && uuid::Uuid::parse_str(text).is_err() {
            fail("must be a UUID".to_owned());
        } else if let Some(message) = string_rule_broken(schema, text) {
            fail(message);
        }
        return;
    }
    match value {
        // Only a schema that is itself an object type lists the allowed keys: the `{description}` member of a
        // documented reference's `allOf`, or a free-form value (`{}`), constrains no key.
        Value::Object(map)
            if schema.ty == "object" && (!schema.properties.is_empty() || schema.additional_properties.is_none()) =>
        {
            for (name, field_schema) in &schema.properties {
                match map.get(*name) {
                    Some(field_value) if !field_value.is_null() => {
                        check(registry, field_schema, field_value, &join(path, name), issues);
                    }
                    // A required nullable field is present when it is null (`Nullable`: null has a meaning).
                    Some(_) if resolve(registry, field_schema).is_some_and(|s| s.nullable) => {}
                    _ if schema.required.contains(name) => {
                        issues.push(Issue { path: join(path, name), message: "required".to_owned() });
                    }
                    _ => {}
                }
            }
            for key in map.keys().filter(|key| !schema.properties.iter().any(|(name, _)| name == key)) {
                issues.push(Issue { path: join(path, key), message: "unknown field".to_owned() });
            }
        }
        Value::Object(map) => {
            if let Some(inner) = &schema.additional_properties {
                for (key, field_value) in map {
                    check(registry, inner, field_value, &join(path, key), issues);
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = schema.min_items.filter(|min| items.len() < *min) {
                issues.push(Issue { path: shown(path), message: format!("must hold at least {min} items") });
            }
            if let Some(max) = schema.max_items.filter(|max| items.len() > *max) {
                issues.push(Issue { path: shown(path), message: format!("must hold at most {max} items") });
            }
            if let Some(inner) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    check(registry, inner, item, &format!("{}[{i}]", shown(path)), issues);
                }
            }
        }
        _ => {}
    }
}

fn expected(schema: &MetaSchema) -> String {
    match (schema.ty, schema.format) {
        ("object", _) => "an object".to_owned(),
        ("array", _) => "an array".to_owned(),
        ("boolean", _) => "a boolean".to_owned(),
        ("integer", Some(format)) => format!("an integer ({format})"),
        ("integer", None) => "an integer".to_owned(),
        ("number", _) => "a number".to_owned(),
        ("string", Some("uuid")) => "a UUID string".to_owned(),
        ("string", _) => "a string".to_owned(),
        (other, _) => format!("of type {other}"),
    }
}

fn integer_in_range(value: &Value, format: Option<&str>) -> bool {
    let (Some(signed), unsigned) = (value.as_i64().map(i128::from).or(value.as_u64().map(i128::from)), value.as_u64())
    else {
        return false;
    };
    match format {
        Some("uint64") => unsigned.is_some(),
        Some("uint32") => u32::try_from(signed).is_ok(),
        Some("uint16") => u16::try_from(signed).is_ok(),
        Some("int32") => i32::try_from(signed).is_ok(),
        Some("int16") => i16::try_from(signed).is_ok(),
        Some("int64") => i64::try_from(signed).is_ok(),
        _ => true,
    }
}

#[cfg(test)]
mod props;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use poem_openapi::Object;
    use serde_json::json;

    use super::*;
    use crate::wire::Wire;

    #[derive(Object, Debug)]
    #[oai(rename_all = "camelCase", deny_unknown_fields)]
    struct Sample {
        name: String,
        agent_id: Option<uuid::Uuid>,
        ttl_seconds: Option<u64>,
        #[oai(rename = "type")]
        policy_type: Wire<waiaas_core::domain::PolicyType>,
        rules: BTreeMap<String, Value>,
        enabled: Option<bool>,
    }

    #[track_caller]
    fn check_issues(body: &str, expected: &[(&str, &str)]) {
        let err = parse::<Sample>(Some("application/json"), body.as_bytes()).expect_err("must fail");
        let issues = err.0.details.expect("details")["issues"].clone();
        let got: Vec<(String, String)> = issues
            .as_array()
            .expect("issues array")
            .iter()
            .map(|i| (i["path"].as_str().unwrap().to_owned(), i["message"].as_str().unwrap().to_owned()))
            .collect();
        let expected: Vec<(String, String)> =
            expected.iter().map(|(p, m)| ((*p).to_owned(), (*m).to_owned())).collect();
        assert_eq!(got, expected, "body {body}");
    }

    const OK: &str = r#"{"name":"a","type":"WHITELIST","rules":{}}"#;

    #[test]
    fn accepts_a_valid_body() {
        let parsed = parse::<Sample>(Some("application/json; charset=utf-8"), OK.as_bytes()).unwrap();
        assert_eq!(parsed.name, "a");
        assert!(parsed.agent_id.is_none());
    }

    #[test]
    fn names_each_offending_field() {
        check_issues("{}", &[("name", "required"), ("type", "required"), ("rules", "required")]);
        check_issues(
            r#"{"name":1,"type":"WHITELIST","rules":{},"extra":true}"#,
            &[("name", "must be a string"), ("extra", "unknown field")],
        );
        check_issues(
            r#"{"name":"a","type":"NOPE","rules":{}}"#,
            &[(
                "type",
                "\"NOPE\" is not one of SPENDING_LIMIT, WHITELIST, ALLOWED_TOKENS, CONTRACT_WHITELIST, APPROVED_SPENDERS, RATE_LIMIT, TIME_RESTRICTION",
            )],
        );
        check_issues(r#"{"name":"a","type":"WHITELIST","rules":[]}"#, &[("rules", "must be an object")]);
        check_issues(r#"{"name":"a","type":"WHITELIST","rules":{},"agentId":"x"}"#, &[("agentId", "must be a UUID")]);
        check_issues(
            r#"{"name":"a","type":"WHITELIST","rules":{},"ttlSeconds":-1}"#,
            &[("ttlSeconds", "must be an integer (uint64)")],
        );
        check_issues(
            r#"{"name":"a","type":"WHITELIST","rules":{},"ttlSeconds":1.5}"#,
            &[("ttlSeconds", "must be an integer (uint64)")],
        );
        check_issues(
            r#"{"name":"a","type":"WHITELIST","rules":{},"enabled":"yes"}"#,
            &[("enabled", "must be a boolean")],
        );
        check_issues("[1]", &[("body", "must be an object")]);
        check_issues("{", &[("body", "malformed JSON: EOF while parsing an object at line 1 column 1")]);
    }

    #[test]
    fn empty_body_is_an_empty_object_and_content_type_is_checked() {
        let err = parse::<Sample>(None, b"").expect_err("fields missing");
        assert_eq!(err.0.details.unwrap()["issues"][0]["path"], "name");
        let err = parse::<Sample>(Some("text/plain"), OK.as_bytes()).expect_err("wrong content type");
        assert_eq!(err.0.code, waiaas_core::ErrorCode::UnsupportedMediaType);
        let err = parse::<Sample>(None, OK.as_bytes()).expect_err("no content type");
        assert_eq!(err.0.code, waiaas_core::ErrorCode::UnsupportedMediaType);
        assert!(parse::<Sample>(Some("application/merge-patch+json"), OK.as_bytes()).is_ok());
    }

    #[track_caller]
    fn check_duplicates(body: &str, paths: &[&str]) {
        let err = read_json(Some("application/json"), body.as_bytes()).expect_err("duplicates must be refused");
        assert_eq!(err.0.code, waiaas_core::ErrorCode::ValidationFailed);
        let issues = err.0.details.expect("details")["issues"].clone();
        let got: Vec<&str> = issues.as_array().expect("issues").iter().filter_map(|i| i["path"].as_str()).collect();
        assert_eq!(got, paths, "body {body}");
        assert!(
            issues.as_array().expect("issues").iter().all(|i| i["message"].as_str().unwrap().contains("duplicate"))
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth_by_path() {
        check_duplicates(r#"{"amount":"1","amount":"999"}"#, &["amount"]);
        check_duplicates(r#"{"amount":"1","to":"a","amount":"1"}"#, &["amount"]);
        check_duplicates(r#"{"rules":{"instant_max":"1","instant_max":"2"}}"#, &["rules.instant_max"]);
        check_duplicates(r#"{"a":[{"k":1},{"k":1,"k":2}]}"#, &["a[1].k"]);
        check_duplicates(r#"[{"k":1,"k":2}]"#, &["body[0].k"]);
        check_duplicates(r#"{"a":{"b":{"c":1,"c":{"d":1,"d":2}}},"a":0}"#, &["a.b.c.d", "a.b.c", "a"]);
        check_duplicates(r#"{"x":1,"x":2,"x":3}"#, &["x"]);
        check_duplicates(r#"{"":1,"":2}"#, &[""]);
        // A key escaped differently is the same key.
        check_duplicates(r#"{"to":"a","t\u006f":"b"}"#, &["to"]);
        // Through the typed reader too, before any schema check.
        let err =
            parse::<Sample>(Some("application/json"), br#"{"name":"a","type":"WHITELIST","rules":{},"name":"b"}"#)
                .expect_err("duplicate");
        assert_eq!(err.0.details.expect("details")["issues"][0]["path"], "name");
    }

    #[test]
    fn without_duplicates_the_value_is_what_serde_json_reads() {
        for body in [
            r#"{"a":1,"b":-2,"c":1.5,"d":18446744073709551615,"e":-9223372036854775808,"f":1e300,"g":null}"#,
            r#"{"s":"x\"y\u00e9","t":true,"u":false,"n":[],"o":{},"deep":[[[{"k":[1,{"k":2}]}]]]}"#,
            r#"[1,"two",{"three":3}]"#,
            r#""text""#,
            "42",
            " {\"same key in two objects\":{\"k\":1},\"k\":{\"k\":1}} ",
        ] {
            let strict = read_json(Some("application/json"), body.as_bytes()).expect("valid");
            let plain: Value = serde_json::from_str(body).expect("valid");
            assert_eq!(strict, plain, "{body}");
        }
        for malformed in [r#"{"a":1"#, r#"{"a":1}}"#, r#"{"a":1} x"#, r#"{"a":01}"#, "[1,]"] {
            let err = read_json(Some("application/json"), malformed.as_bytes()).expect_err(malformed);
            assert_eq!(err.0.details.expect("details")["issues"][0]["path"], "body", "{malformed}");
        }
    }

    #[test]
    fn json_value_checks() {
        assert_eq!(diagnose::<Sample>(&json!({"name":"a","type":"WHITELIST","rules":{"x":[1]}})), vec![]);
    }
}
