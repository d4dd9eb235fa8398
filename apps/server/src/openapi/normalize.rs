//! The one place where the document poem-openapi renders is rewritten, each step for a reason poem-openapi cannot
//! express in the DTOs themselves:
//!
//! - **Enum fields with a description.** poem-openapi renders a field whose type is a named schema and that has
//!   its own description as `allOf: [{$ref}, {description, nullable?}]`. Generators refuse `allOf` over an enum
//!   (openapi-python-client: "Cannot take allOf a non-object", and then drops every schema using it). A required
//!   field becomes `{$ref, description}` (the description is informative next to a `$ref`); a nullable one becomes
//!   `{oneOf: [{$ref}], nullable: true, description}`, which every mainstream generator reads as "this type or
//!   null".
//! - **Discriminated unions.** poem-openapi renders each variant as `allOf: [{type}, {$ref Variant}]`. The server
//!   refuses unknown fields, which `additionalProperties: false` cannot say across an `allOf` (each part would
//!   forbid the other's fields), so each variant is flattened into one object schema that holds `type` and the
//!   variant's fields; the variant schemas no longer referenced are dropped.
//! - **Unknown fields.** Every request body is parsed with unknown fields refused (`deny_unknown_fields` on the
//!   DTOs, the core's strict parser for send and simulate), which poem-openapi does not state: every object schema
//!   reachable from a request body that has fixed properties gets `additionalProperties: false`. New routes are
//!   covered without a list to maintain.
//! - **Policy rules.** A policy's `rules` depend on its `type`, which a free-form object cannot say:
//!   `CreatePolicyRequest` becomes a union on `type` with one variant per policy type, each with its rules schema
//!   (`crate::api::policies::rules`), and `UpdatePolicyRequest.rules` one of those schemas.
//! - **Unsigned integers.** poem-openapi renders Rust's unsigned types as `format: uint8` (…`uint64`), which JSON
//!   Schema does not read: each gets the `minimum` (0) and the `maximum` of its type, unless the field states a
//!   tighter bound.
//! - **UUIDs.** `format: uuid` is an annotation JSON Schema validators do not assert, so a fuzzer or a client
//!   takes any string for an id; every such string schema gets the `pattern` of exactly what the server parses
//!   (`uuid::Uuid::parse_str`: simple, hyphenated, braced or URN form, the URN prefix in any case).
//! - **Cursors.** Every `cursor` query parameter is the core's opaque cursor, base64url without padding
//!   (`core::services::cursor`): anything else is refused with `INVALID_CURSOR`, which the schema states.
//! - **Error responses.** Each operation's one `default` error response becomes the statuses it can answer, by
//!   route class ([`responses`]).
//! - **Links.** Each creating operation links to the operations that take its id ([`links`]).

mod links;
mod responses;

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

const SCHEMA_PREFIX: &str = "#/components/schemas/";

/// Applies every rewrite to the rendered document.
pub fn normalize(document: &mut Value) {
    flatten_union_variants(document);
    collapse_described_refs(document);
    describe_policy_rules(document);
    deny_unknown_request_fields(document);
    describe_cursors(document);
    bound_unsigned_integers(document);
    pattern_uuids(document);
    responses::declare_error_responses(document);
    links::add_links(document);
    drop_unreferenced_schemas(document);
}

fn schemas(document: &mut Value) -> &mut Map<String, Value> {
    document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .expect("the document has components.schemas")
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(SCHEMA_PREFIX)
}

/// `allOf: [{type: object, properties: {type}}, {$ref: Variant}]` → one object with both parts' fields.
fn flatten_union_variants(document: &mut Value) {
    let schemas = schemas(document);
    let names: Vec<String> = schemas.keys().cloned().collect();
    for name in names {
        let Some([tag, variant]) = schemas[&name].get("allOf").and_then(Value::as_array).map(Vec::as_slice) else {
            continue;
        };
        let Some(variant_name) = ref_name(variant) else { continue };
        let (Some(tag_properties), Some(variant_schema)) =
            (tag.get("properties").and_then(Value::as_object), schemas.get(variant_name))
        else {
            continue;
        };
        let mut properties = tag_properties.clone();
        properties.extend(variant_schema["properties"].as_object().cloned().unwrap_or_default());
        let mut required: Vec<Value> = tag.get("required").and_then(Value::as_array).cloned().unwrap_or_default();
        required.extend(variant_schema.get("required").and_then(Value::as_array).cloned().unwrap_or_default());
        let mut flat = json!({
            "type": "object",
            "title": name,
            "required": required,
            "properties": properties,
        });
        if let Some(description) = variant_schema.get("description").or_else(|| schemas[&name].get("description")) {
            flat["description"] = description.clone();
        }
        schemas.insert(name, flat);
    }
}

/// `{allOf: [{$ref}, {description, nullable?}], ...}` → `{$ref, description}` or
/// `{oneOf: [{$ref}], nullable: true, description}`.
fn collapse_described_refs(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let collapsible = match object.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                Some([reference, extra]) => {
                    ref_name(reference).is_some()
                        && extra.as_object().is_some_and(|e| e.keys().all(|k| k == "description" || k == "nullable"))
                }
                _ => false,
            };
            if collapsible {
                let reference = object["allOf"][0].clone();
                let nullable = object.get("nullable").and_then(Value::as_bool).unwrap_or(false);
                let description = object.get("description").cloned();
                object.clear();
                if nullable {
                    object.insert("oneOf".into(), json!([reference]));
                    object.insert("nullable".into(), Value::Bool(true));
                } else {
                    object.extend(reference.as_object().cloned().unwrap_or_default());
                }
                if let Some(description) = description {
                    object.insert("description".into(), description);
                }
            }
            object.values_mut().for_each(collapse_described_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(collapse_described_refs),
        _ => {}
    }
}

/// Every schema name reachable from `value` through `$ref`s, properties, items, unions (and the schemas behind
/// those names), into `found`.
fn reachable(schemas: &Map<String, Value>, value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) => {
            if let Some(name) = ref_name(value)
                && found.insert(name.to_owned())
                && let Some(schema) = schemas.get(name)
            {
                reachable(schemas, schema, found);
            }
            for inner in object.values() {
                reachable(schemas, inner, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| reachable(schemas, item, found)),
        _ => {}
    }
}

fn deny_unknown_request_fields(document: &mut Value) {
    let bodies: Vec<Value> = document["paths"]
        .as_object()
        .into_iter()
        .flat_map(|paths| paths.values())
        .filter_map(Value::as_object)
        .flat_map(|operations| operations.values())
        .filter_map(|operation| operation.get("requestBody").cloned())
        .collect();
    let mut names = BTreeSet::new();
    {
        let schemas = schemas(document);
        for body in &bodies {
            reachable(schemas, body, &mut names);
        }
    }
    let schemas = schemas(document);
    for name in names {
        if let Some(schema) = schemas.get_mut(&name).and_then(Value::as_object_mut) {
            close_object(schema);
        }
    }
}

/// `additionalProperties: false` on an object schema with fixed properties (and on the inline objects of its
/// properties), unless it already says what extra properties may be.
fn close_object(schema: &mut Map<String, Value>) {
    if schema.contains_key("properties") && !schema.contains_key("additionalProperties") {
        schema.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut().filter_map(Value::as_object_mut) {
            if property.get("type").and_then(Value::as_str) == Some("object") {
                close_object(property);
            }
        }
    }
}

/// `CreatePolicyRequest` as a union on `type`, `UpdatePolicyRequest.rules` as one of the rules schemas.
fn describe_policy_rules(document: &mut Value) {
    use waiaas_core::domain::PolicyType;

    use crate::api::policies::rules;
    let schemas = schemas(document);
    schemas.extend(rules::schemas());
    let reference = |name: &str| json!({ "$ref": format!("{SCHEMA_PREFIX}{name}") });
    if let Some(create) = schemas.get("CreatePolicyRequest").cloned() {
        let mut variants = Vec::new();
        let mut mapping = Map::new();
        for policy_type in PolicyType::ALL {
            let rules_name = rules::schema_name(policy_type);
            let variant_name = format!("CreatePolicyRequest_{}", rules_name.trim_end_matches("Rules"));
            let mut variant = create.clone();
            variant["title"] = json!(variant_name);
            variant["properties"]["type"] = json!({"type": "string", "enum": [policy_type.as_str()]});
            let description = create.pointer("/properties/rules/description").cloned();
            variant["properties"]["rules"] = reference(&rules_name);
            if let Some(description) = description {
                variant["properties"]["rules"]["description"] = description;
            }
            variants.push(reference(&variant_name));
            mapping.insert(policy_type.as_str().to_owned(), json!(format!("{SCHEMA_PREFIX}{variant_name}")));
            schemas.insert(variant_name, variant);
        }
        schemas.insert(
            "CreatePolicyRequest".into(),
            json!({"oneOf": variants, "discriminator": {"propertyName": "type", "mapping": mapping}}),
        );
    }
    if let Some(rules_property) =
        schemas.get_mut("UpdatePolicyRequest").and_then(|u| u.pointer_mut("/properties/rules"))
    {
        let one_of: Vec<Value> = PolicyType::ALL.into_iter().map(|t| reference(&rules::schema_name(t))).collect();
        let description = rules_property.get("description").cloned();
        *rules_property = json!({"oneOf": one_of, "nullable": true});
        if let Some(description) = description {
            rules_property["description"] = description;
        }
    }
}

/// `minimum` and `maximum` of every `format: uintN` integer schema, anywhere in the document.
fn bound_unsigned_integers(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let bits = match object.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(8),
                Some("uint16") => Some(16),
                Some("uint32") => Some(32),
                Some("uint64") => Some(64),
                _ => None,
            };
            if let Some(bits) = bits.filter(|_| object.get("type").and_then(Value::as_str) == Some("integer")) {
                let minimum = object.get("minimum").and_then(Value::as_f64);
                if minimum.is_none_or(|m| m < 0.0) {
                    object.insert("minimum".into(), json!(0));
                }
                if !object.contains_key("maximum") {
                    object.insert("maximum".into(), json!(u64::MAX >> (64 - bits)));
                }
            }
            object.values_mut().for_each(bound_unsigned_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_unsigned_integers),
        _ => {}
    }
}

/// What `uuid::Uuid::parse_str` accepts: 32 hex digits, or the hyphenated form bare, braced or after `urn:uuid:`
/// (in any case).
pub(crate) const UUID_PATTERN: &str = concat!(
    "^([0-9a-fA-F]{32}",
    "|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "|\\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\\}",
    "|[uU][rR][nN]:[uU][uU][iI][dD]:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"
);

/// The [`UUID_PATTERN`] on every `format: uuid` string schema without a pattern, anywhere in the document.
fn pattern_uuids(value: &mut Value) {
    match value {
        Value::Object(object) => {
            let uuid = object.get("format").and_then(Value::as_str) == Some("uuid")
                && object.get("type").and_then(Value::as_str) == Some("string");
            if uuid && !object.contains_key("pattern") {
                object.insert("pattern".into(), json!(UUID_PATTERN));
            }
            object.values_mut().for_each(pattern_uuids);
        }
        Value::Array(items) => items.iter_mut().for_each(pattern_uuids),
        _ => {}
    }
}

/// `minLength` and the base64url alphabet on every `cursor` query parameter.
fn describe_cursors(document: &mut Value) {
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    let operations = paths.values_mut().filter_map(Value::as_object_mut).flat_map(|o| o.values_mut());
    for operation in operations {
        let parameters = operation.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten();
        for parameter in parameters.filter(|p| p["in"] == "query" && p["name"] == "cursor") {
            if let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) {
                schema.insert("minLength".into(), json!(1));
                schema.insert("pattern".into(), json!("^[A-Za-z0-9_-]+$"));
            }
        }
    }
}

fn drop_unreferenced_schemas(document: &mut Value) {
    let mut used = BTreeSet::new();
    {
        let schemas = document["components"]["schemas"].as_object().cloned().unwrap_or_default();
        let mut without_schemas = document.clone();
        if let Some(components) = without_schemas.get_mut("components").and_then(Value::as_object_mut) {
            components.remove("schemas");
        }
        reachable(&schemas, &without_schemas, &mut used);
    }
    schemas(document).retain(|name, _| used.contains(name));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_uuid_pattern_is_what_the_server_parses() {
        let pattern = regex::Regex::new(super::UUID_PATTERN).unwrap();
        let id = "0193a000-0000-7000-8000-00000000000a";
        let forms = [
            id.to_owned(),
            id.replace('-', ""),
            id.to_uppercase(),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
            format!("{{{id}"),
            format!("{id}}}"),
            format!("urn:uuid:{id}}}"),
            format!("URN:UUID:{id}"),
            format!("Urn:uUid:{id}"),
            format!("urn:{id}"),
            format!("{{{}}}", id.replace('-', "")),
            id.replacen('-', "", 1),
            "None".to_owned(),
            String::new(),
            format!(" {id}"),
        ];
        for form in forms {
            assert_eq!(pattern.is_match(&form), uuid::Uuid::parse_str(&form).is_ok(), "{form:?}");
        }
    }

    use super::*;

    #[test]
    fn described_enum_refs_collapse_into_forms_generators_accept() {
        let mut value = json!({
            "a": {"allOf": [{"$ref": "#/components/schemas/Tier"}, {"description": "d"}], "description": "d"},
            "b": {"allOf": [{"$ref": "#/components/schemas/Tier"}, {"description": "d", "nullable": true}],
                  "description": "d", "nullable": true},
            "c": {"allOf": [{"$ref": "#/components/schemas/X"}, {"type": "object"}]},
        });
        collapse_described_refs(&mut value);
        assert_eq!(value["a"], json!({"$ref": "#/components/schemas/Tier", "description": "d"}));
        assert_eq!(
            value["b"],
            json!({"oneOf": [{"$ref": "#/components/schemas/Tier"}], "nullable": true, "description": "d"})
        );
        assert!(value["c"]["allOf"].is_array(), "other allOf forms are left alone");
    }

    #[test]
    fn unsigned_integers_get_their_bounds() {
        let mut value = json!({
            "a": {"type": "integer", "format": "uint8", "maximum": 36.0},
            "b": {"type": "integer", "format": "uint32"},
            "c": {"type": "integer", "format": "uint64", "minimum": 60.0},
            "d": {"type": "integer", "format": "int64"},
        });
        bound_unsigned_integers(&mut value);
        assert_eq!(value["a"], json!({"type": "integer", "format": "uint8", "minimum": 0, "maximum": 36.0}));
        assert_eq!(value["b"]["maximum"], json!(4294967295u64));
        assert_eq!(value["c"]["minimum"], json!(60.0));
        assert_eq!(value["c"]["maximum"], json!(u64::MAX));
        assert!(value["d"].get("minimum").is_none());
    }

    #[test]
    fn union_variants_are_flattened_and_closed() {
        let mut document = json!({
            "paths": {"/x": {"post": {"requestBody": {"content": {"application/json": {"schema":
                {"$ref": "#/components/schemas/U"}}}}}}},
            "components": {"schemas": {
                "U": {"oneOf": [{"$ref": "#/components/schemas/U_V"}],
                      "discriminator": {"propertyName": "type", "mapping": {"V": "#/components/schemas/U_V"}}},
                "U_V": {"allOf": [
                    {"type": "object", "required": ["type"], "properties": {"type": {"type": "string", "enum": ["V"]}}},
                    {"$ref": "#/components/schemas/V"}]},
                "V": {"type": "object", "required": ["to"], "properties": {"to": {"type": "string"}}},
                "Unused": {"type": "object", "properties": {}},
            }},
        });
        normalize(&mut document);
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["U_V"]["required"], json!(["type", "to"]));
        assert_eq!(schemas["U_V"]["additionalProperties"], json!(false));
        assert!(schemas.get("V").is_none() && schemas.get("Unused").is_none(), "{schemas}");
    }
}
