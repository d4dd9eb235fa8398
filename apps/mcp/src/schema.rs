//! Tool input schemas taken from the daemon's own OpenAPI document (`openapi/waiaas.json`, generated from the
//! server's types and checked for drift by the server's tests), so a tool states exactly the constraints the
//! daemon enforces on the REST call it relays: the page limit's bounds, address and amount patterns, the request
//! union with `additionalProperties: false` on each variant.
//!
//! The document is OpenAPI 3.0; MCP tool schemas are JSON Schema 2020-12. [`json_schema`] converts one schema:
//! references are inlined (no `$defs` to collide with the generator's), `nullable: true` becomes a `null` type,
//! OpenAPI's own keywords (`discriminator`, `example`) are dropped, and so is any `format` that 2020-12 does not
//! define (`int32`, `uint8`: the bounds say it).

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The committed OpenAPI document of the daemon this crate relays to.
const DOCUMENT: &str = include_str!("../../../openapi/waiaas.json");

/// The `format` values JSON Schema 2020-12 defines; any other is an OpenAPI extension and is dropped.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// How deep references may nest before the conversion stops (the document has no recursive schema; this only
/// guards against one).
const MAX_DEPTH: usize = 32;

fn document() -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    PARSED.get_or_init(|| serde_json::from_str(DOCUMENT).expect("openapi/waiaas.json is JSON"))
}

fn operation(path: &str, method: &str) -> &'static Value {
    let operation = &document()["paths"][path][method];
    assert!(operation.is_object(), "the OpenAPI document has no {method} {path}");
    operation
}

/// The schema of the `name` parameter of `method path`, as JSON Schema 2020-12, with the parameter's description.
pub fn parameter(path: &str, method: &str, name: &str) -> Value {
    let parameters = operation(path, method)["parameters"].as_array().into_iter().flatten();
    let parameter = parameters
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    let mut schema = json_schema(&parameter["schema"]);
    if let (Some(description), Some(object)) = (parameter.get("description"), schema.as_object_mut()) {
        object.entry("description").or_insert_with(|| description.clone());
    }
    schema
}

/// Whether the `name` parameter of `method path` is required.
pub fn parameter_required(path: &str, method: &str, name: &str) -> bool {
    let parameters = operation(path, method)["parameters"].as_array().into_iter().flatten();
    parameters.into_iter().any(|p| p["name"] == name && p["required"] == true)
}

/// The JSON request body schema of `method path`, as JSON Schema 2020-12.
pub fn request_body(path: &str, method: &str) -> Value {
    json_schema(&operation(path, method)["requestBody"]["content"]["application/json"]["schema"])
}

/// An object schema over `properties` (name → schema, required or not) that refuses unknown fields, as the
/// tools' typed inputs do.
pub fn object(description: Option<&str>, properties: Vec<(&str, Value, bool)>) -> Value {
    let required: Vec<&str> = properties.iter().filter(|(_, _, required)| *required).map(|(name, ..)| *name).collect();
    let properties: Map<String, Value> =
        properties.into_iter().map(|(name, schema, _)| (name.to_owned(), schema)).collect();
    let mut schema = json!({"type": "object", "properties": properties, "additionalProperties": false});
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    if let Some(description) = description {
        schema["description"] = json!(description);
    }
    schema
}

/// One OpenAPI 3.0 schema of the document as JSON Schema 2020-12 (references inlined).
pub fn json_schema(schema: &Value) -> Value {
    convert(schema, 0)
}

fn convert(schema: &Value, depth: usize) -> Value {
    let Some(object) = schema.as_object() else { return schema.clone() };
    assert!(depth < MAX_DEPTH, "the OpenAPI document's schemas nest deeper than {MAX_DEPTH}");
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("reference {reference}"));
        let target = &document()["components"]["schemas"][name];
        assert!(target.is_object(), "{reference} names no schema");
        return convert(target, depth + 1);
    }
    let mut out = Map::new();
    for (key, value) in object {
        let converted = match key.as_str() {
            "discriminator" | "example" | "nullable" | "xml" | "externalDocs" => continue,
            "format" if !value.as_str().is_some_and(|f| STANDARD_FORMATS.contains(&f)) => continue,
            "properties" | "patternProperties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, schema)| (name.clone(), convert(schema, depth + 1)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" => convert(value, depth + 1),
            "oneOf" | "anyOf" | "allOf" => {
                Value::Array(value.as_array().into_iter().flatten().map(|s| convert(s, depth + 1)).collect())
            }
            "minimum" | "maximum" | "multipleOf" => whole(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if object.get("nullable") == Some(&Value::Bool(true)) {
        return nullable(out);
    }
    Value::Object(out)
}

/// `200.0` as `200`: the document writes every bound as a float.
fn whole(value: &Value) -> Value {
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => json!(n as i64),
        _ => value.clone(),
    }
}

/// A schema that also accepts `null`: `"type": [t, "null"]` when it names one type, else `anyOf` with `null`.
fn nullable(mut schema: Map<String, Value>) -> Value {
    if let Some(Value::String(single)) = schema.get("type").cloned() {
        schema.insert("type".into(), json!([single, "null"]));
        if let Some(Value::Array(values)) = schema.get_mut("enum") {
            values.push(Value::Null);
        }
        return Value::Object(schema);
    }
    let description = schema.remove("description");
    let mut wrapped = json!({"anyOf": [Value::Object(schema), {"type": "null"}]});
    if let Some(description) = description {
        wrapped["description"] = description;
    }
    wrapped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_nullables_and_formats_become_json_schema() {
        let body = request_body("/v1/transactions/send", "post");
        let text = body.to_string();
        for openapi_only in ["$ref", "nullable", "discriminator", "\"example\"", "uint8", "int32"] {
            assert!(!text.contains(openapi_only), "{openapi_only} left in {text}");
        }
        let transfer = &body["oneOf"][0];
        assert_eq!(transfer["properties"]["type"]["enum"], json!(["TRANSFER"]));
        assert_eq!(transfer["additionalProperties"], false);
        assert_eq!(transfer["properties"]["network"]["type"], json!(["string", "null"]));
        assert_eq!(
            transfer["properties"]["to"]["pattern"],
            "^(0x[0-9a-fA-F]{40}|[1-9A-HJ-NP-Za-km-z]{32}[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?[1-9A-HJ-NP-Za-km-z]?)$"
        );
        let token = &body["oneOf"][1]["properties"]["token"];
        assert_eq!(
            (token["type"].as_str(), token["properties"]["decimals"]["maximum"].as_i64()),
            (Some("object"), Some(36))
        );
    }

    #[test]
    fn parameters_keep_their_bounds_and_descriptions() {
        let limit = parameter("/v1/transactions", "get", "limit");
        assert_eq!((limit["minimum"].as_i64(), limit["maximum"].as_i64()), (Some(1), Some(200)));
        assert!(limit.get("format").is_none(), "{limit}");
        assert!(limit["description"].is_string(), "{limit}");
        assert_eq!(parameter("/v1/transactions/{id}", "get", "id")["format"], "uuid");
        assert!(parameter_required("/v1/transactions/{id}", "get", "id"));
        assert!(!parameter_required("/v1/transactions", "get", "limit"));
    }

    #[test]
    fn a_nullable_union_is_an_any_of_with_null() {
        let converted = json_schema(&json!({"nullable": true, "description": "d", "oneOf": [{"type": "integer"}]}));
        assert_eq!(
            converted,
            json!({"description": "d", "anyOf": [{"oneOf": [{"type": "integer"}]}, {"type": "null"}]})
        );
        let converted = json_schema(&json!({"nullable": true, "type": "string", "enum": ["A"]}));
        assert_eq!(converted, json!({"type": ["string", "null"], "enum": ["A", null]}));
    }
}
