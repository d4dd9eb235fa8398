//! Every error status an operation can answer, declared per route class instead of one `default` response.
//!
//! poem-openapi renders the handlers' error type as a single `default` response, which says nothing about what
//! a route can answer (and which makes schemathesis's `status_code_conformance` check skip the route). The
//! statuses follow from what the route is, never from a list of operations, so a new route gets the same
//! treatment:
//!
//! | the route … | statuses | why |
//! |---|---|---|
//! | any | 403, 500 | the Host guard (`HOST_NOT_ALLOWED`) and the IP ACL (`ACCESS_DENIED_IP`); `INTERNAL_ERROR` |
//! | takes parameters or a body | 400 | `VALIDATION_FAILED`, `INVALID_CURSOR`, a value the chain or the config refuses |
//! | names a resource (a path parameter, a `uuid` field of its body) | 404 | the resource's `*_NOT_FOUND` |
//! | takes a body | 413, 415 | over 1 MiB; not declared JSON |
//! | is authenticated | 401 | missing, wrong, expired or revoked credential; a credential of the wrong kind |
//! | takes the master password | 429 | too many failed master-password attempts from the client |
//! | is authenticated and changes state, or acts for an agent (session, owner) | 409, 503 | the agent's or the transaction's state; the kill switch |
//! | acts for an agent (session, owner) | 422, 502 | a call the chain refuses or whose effect is not observed; the node failing |
//!
//! Each error response has the `ErrorBody` schema and lists, in its description, the error codes of that status.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};
use waiaas_core::ErrorCode;

const ERROR_BODY: &str = "#/components/schemas/ErrorBody";
const ERROR_MEDIA_TYPE: &str = "application/json; charset=utf-8";

/// The error statuses of one operation (see the module docs).
pub fn error_statuses(method: &str, operation: &Value, schemas: &Map<String, Value>) -> BTreeSet<u16> {
    let schemes: Vec<&str> = operation
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|requirement| requirement.keys().map(String::as_str))
        .collect();
    let parameters = operation.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
    let body = operation.get("requestBody");
    let authenticated = !schemes.is_empty();
    let for_agent = schemes.iter().any(|s| *s == "sessionAuth" || *s == "ownerAuth");
    let changes_state = method != "get";
    let names_resource =
        parameters.iter().any(|p| p["in"] == "path") || body.is_some_and(|b| body_names_id(b, schemas));

    let mut statuses = BTreeSet::from([403, 500]);
    let mut add = |condition: bool, codes: &[u16]| {
        if condition {
            statuses.extend(codes);
        }
    };
    add(!parameters.is_empty() || body.is_some(), &[400]);
    add(names_resource, &[404]);
    add(body.is_some(), &[413, 415]);
    add(authenticated, &[401]);
    add(schemes.contains(&"masterAuth"), &[429]);
    add((authenticated && changes_state) || for_agent, &[409, 503]);
    add(for_agent, &[422, 502]);
    statuses
}

/// Whether the request body's schema has a top-level `uuid` property (a reference to another resource).
fn body_names_id(body: &Value, schemas: &Map<String, Value>) -> bool {
    let Some(content) = body.get("content").and_then(Value::as_object) else { return false };
    content.values().filter_map(|media| media.get("schema")).any(|schema| {
        let resolved = super::ref_name(schema).and_then(|name| schemas.get(name)).unwrap_or(schema);
        let mut variants = vec![resolved];
        for union in ["oneOf", "anyOf"] {
            for variant in resolved.get(union).and_then(Value::as_array).into_iter().flatten() {
                variants.push(super::ref_name(variant).and_then(|name| schemas.get(name)).unwrap_or(variant));
            }
        }
        variants
            .iter()
            .filter_map(|v| v.get("properties").and_then(Value::as_object))
            .any(|properties| properties.values().any(|p| p.get("format").and_then(Value::as_str) == Some("uuid")))
    })
}

/// The description of an error response: the codes that answer with `status`.
fn description(status: u16) -> String {
    let codes: Vec<String> = ErrorCode::ALL
        .iter()
        .filter(|code| code.info().http_status == status)
        .map(|code| format!("`{}`", code.as_str()))
        .collect();
    format!("Error: `code` is one of {} (see the ErrorCode schema).", codes.join(", "))
}

/// The name of the shared response of `status` under `components.responses`.
fn response_name(status: u16) -> String {
    format!("Error{status}")
}

/// Replaces each operation's `default` response with references to the shared error responses of its statuses
/// (`components.responses.Error<status>`, each with the `X-Request-Id` header of the success responses).
pub fn declare_error_responses(document: &mut Value) {
    let schemas = document["components"]["schemas"].as_object().cloned().unwrap_or_default();
    let mut used = BTreeSet::new();
    let mut headers = None;
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for operations in paths.values_mut().filter_map(Value::as_object_mut) {
        for (method, operation) in operations.iter_mut() {
            let statuses = error_statuses(method, operation, &schemas);
            let Some(responses) = operation.get_mut("responses").and_then(Value::as_object_mut) else { continue };
            if headers.is_none() {
                headers = responses.get("default").and_then(|r| r.get("headers")).cloned();
            }
            responses.remove("default");
            for status in statuses {
                let reference = format!("#/components/responses/{}", response_name(status));
                responses.insert(status.to_string(), json!({ "$ref": reference }));
                used.insert(status);
            }
        }
    }
    let shared: Map<String, Value> = used
        .into_iter()
        .map(|status| {
            let mut response = json!({
                "description": description(status),
                "content": {ERROR_MEDIA_TYPE: {"schema": {"$ref": ERROR_BODY}}},
            });
            if let Some(headers) = &headers {
                response["headers"] = headers.clone();
            }
            (response_name(status), response)
        })
        .collect();
    document["components"]["responses"] = Value::Object(shared);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(method: &str, operation: Value) -> Vec<u16> {
        error_statuses(method, &operation, &Map::new()).into_iter().collect()
    }

    #[test]
    fn statuses_follow_the_route_class() {
        assert_eq!(statuses("get", json!({})), [403, 500], "a public route without inputs");
        assert_eq!(
            statuses(
                "get",
                json!({"security": [{"masterAuth": []}], "parameters": [{"in": "query", "name": "limit"}]})
            ),
            [400, 401, 403, 429, 500]
        );
        assert_eq!(
            statuses(
                "post",
                json!({"security": [{"masterAuth": []}], "requestBody": {"content": {"application/json":
                    {"schema": {"properties": {"agentId": {"type": "string", "format": "uuid"}}}}}}})
            ),
            [400, 401, 403, 404, 409, 413, 415, 429, 500, 503]
        );
        assert_eq!(
            statuses("get", json!({"security": [{"sessionAuth": []}], "parameters": [{"in": "path", "name": "id"}]})),
            [400, 401, 403, 404, 409, 422, 500, 502, 503]
        );
    }

    #[test]
    fn descriptions_name_the_codes_of_the_status() {
        let text = description(401);
        assert!(text.contains("`UNAUTHORIZED`") && text.contains("`WRONG_AUTH`"), "{text}");
        assert!(!text.contains("`NOT_FOUND`"), "{text}");
    }
}
