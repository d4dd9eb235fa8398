//! OpenAPI `links` from each creating operation to the operations that take what it created, so a client (or a
//! fuzzer's stateful phase) can follow a created id instead of guessing one. Derived from the paths, never from a
//! list of operations:
//!
//! - A **creator** answers 201 with an object that has an `id`. Its **collection** is its path
//!   (`POST /v1/agents`), or the parent of its path when that path ends in an action (`POST /v1/transactions/send`
//!   creates in `/v1/transactions`).
//! - Every operation under `<collection>/{param}` gets `param` from `$response.body#/id`, except a DELETE
//!   below it (`DELETE /v1/agents/{id}/tier-floor` removes what the creation did not make).
//!
//! A link's `requestBody` cannot fill one field of a body (openapi-generator's validator only takes a runtime
//! expression for the whole body there), so ids that go into bodies (`agentId`) are not linked.

use serde_json::{Map, Value, json};

/// An operation: its path and operation id.
struct Operation {
    path: String,
    method: String,
    operation_id: String,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, operations) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in operations.as_object().into_iter().flatten() {
            let Some(operation_id) = operation.get("operationId").and_then(Value::as_str) else { continue };
            found.push(Operation { path: path.clone(), method: method.clone(), operation_id: operation_id.to_owned() });
        }
    }
    found
}

/// Whether the 201 answer of `operation` is an object with an `id`.
fn creates_with_id(operation: &Value, schemas: &Map<String, Value>) -> bool {
    let Some(schema) = operation
        .pointer("/responses/201/content")
        .and_then(Value::as_object)
        .and_then(|content| content.values().find_map(|media| media.get("schema")))
    else {
        return false;
    };
    let resolved = super::ref_name(schema).and_then(|n| schemas.get(n)).unwrap_or(schema);
    resolved.pointer("/properties/id").is_some()
}

/// The first path parameter of `path` directly under `collection`, e.g. `id` for `/v1/agents/{id}/owner` under
/// `/v1/agents`.
fn param_under<'a>(path: &'a str, collection: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(collection)?.strip_prefix("/{")?;
    rest.split_once('}').map(|(name, _)| name)
}

/// Adds the links of every creator (see the module docs).
pub fn add_links(document: &mut Value) {
    let schemas = document["components"]["schemas"].as_object().cloned().unwrap_or_default();
    let all = operations(document);
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else { return };
    for (path, path_item) in paths.iter_mut() {
        for operation in path_item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            if !creates_with_id(operation, &schemas) {
                continue;
            }
            let parent = path.rsplit_once('/').map(|(parent, _)| parent).unwrap_or_default();
            let Some(collection) = [path.as_str(), parent]
                .into_iter()
                .find(|candidate| all.iter().any(|target| param_under(&target.path, candidate).is_some()))
            else {
                continue;
            };
            let mut links = Map::new();
            for target in &all {
                let deletes_below =
                    target.method == "delete" && target.path.matches('/').count() > 1 + collection.matches('/').count();
                if let Some(param) = param_under(&target.path, collection).filter(|_| !deletes_below) {
                    links.insert(
                        target.operation_id.clone(),
                        json!({"operationId": target.operation_id, "parameters": {param: "$response.body#/id"}}),
                    );
                }
            }
            if !links.is_empty() {
                operation["responses"]["201"]["links"] = Value::Object(links);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creators_link_to_what_takes_their_id() {
        let created = json!({"201": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}});
        let mut document = json!({
            "paths": {
                "/v1/agents": {"post": {"operationId": "createAgent", "responses": created}},
                "/v1/agents/{id}/suspend": {"post": {"operationId": "suspendAgent", "responses": {}}},
                "/v1/agents/{id}": {"delete": {"operationId": "terminateAgent", "responses": {}}},
                "/v1/agents/{id}/tier-floor": {"delete": {"operationId": "clearTierFloor", "responses": {}}},
                "/v1/transactions/send": {"post": {"operationId": "send", "responses": created}},
                "/v1/transactions/{id}": {"get": {"operationId": "getTransaction", "responses": {}}},
            },
            "components": {"schemas": {"A": {"type": "object", "properties": {"id": {"type": "string"}}}}},
        });
        add_links(&mut document);
        let agent_links = &document["paths"]["/v1/agents"]["post"]["responses"]["201"]["links"];
        assert_eq!(agent_links["suspendAgent"]["parameters"], json!({"id": "$response.body#/id"}));
        assert!(agent_links.get("terminateAgent").is_some());
        assert!(agent_links.get("clearTierFloor").is_none(), "{agent_links}");
        assert!(agent_links.get("getTransaction").is_none());
        let send_links = &document["paths"]["/v1/transactions/send"]["post"]["responses"]["201"]["links"];
        assert_eq!(send_links["getTransaction"]["parameters"], json!({"id": "$response.body#/id"}));
    }
}
