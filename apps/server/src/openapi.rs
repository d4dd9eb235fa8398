//! The OpenAPI document: built from the `#[OpenApi]` impls, independent of where the server listens, committed
//! at `openapi/waiaas.json` and checked for drift by a test (`UPDATE_OPENAPI=1 cargo test -p waiaas-server
//! openapi` rewrites it).

use std::collections::HashMap;
use std::sync::OnceLock;

use poem_openapi::{ExtraHeader, OpenApi, OpenApiService};
use uuid::Uuid;

use crate::api::{Apis, apis};

mod normalize;

const DESCRIPTION: &str = "Self-hosted wallet daemon for AI agents. Operator endpoints take the master password \
(`X-Master-Password`); agent endpoints take a session token (`Authorization: Bearer wai_sess_...`). Every error \
is `{code, message, retryable, details?, requestId, hint?}`; ids are UUID strings, times Unix seconds, amounts \
decimal strings in the chain's smallest unit.";

/// The API as a poem-openapi service (routes and document).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "WAIaaS", env!("CARGO_PKG_VERSION"))
        .description(DESCRIPTION)
        .extra_response_header::<Uuid, _>(
            ExtraHeader::new("X-Request-Id").description("The request's id (also `requestId` in error bodies)."),
        )
}

/// The OpenAPI document as pretty JSON (ends with a newline): poem-openapi's rendering, rewritten in one place
/// ([`normalize`]) where poem-openapi cannot say what the server enforces in a form generators accept.
/// Deterministic: the same build always renders the same bytes.
pub fn openapi_document() -> String {
    let mut document: serde_json::Value = serde_json::from_str(&service().spec()).expect("poem renders JSON");
    normalize::normalize(&mut document);
    let mut text = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// The route pattern poem reports for a documented path: poem-openapi routes the i-th `{name}` of a path as
/// `:param{i}` (`/v1/agents/{id}` → `/v1/agents/:param0`).
pub fn routed_pattern(template: &str) -> String {
    let mut index = 0;
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                index += 1;
                format!(":param{}", index - 1)
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every documented operation: its path template, method and the status codes its responses name (the `default`
/// error response has none).
pub fn documented_operations() -> Vec<(String, poem::http::Method, Vec<u16>)> {
    <Apis as OpenApi>::meta()
        .into_iter()
        .flat_map(|api| api.paths)
        .flat_map(|path| {
            path.operations.into_iter().map(move |operation| {
                let statuses = operation.responses.responses.iter().filter_map(|r| r.status).collect();
                (path.path.clone(), operation.method, statuses)
            })
        })
        .collect()
}

/// Every documented path template, e.g. `/v1/agents/{id}`.
pub fn path_templates() -> Vec<String> {
    <Apis as OpenApi>::meta().into_iter().flat_map(|api| api.paths).map(|path| path.path.to_string()).collect()
}

/// The documented name of a path parameter. poem-openapi reports parse failures of the i-th `{name}` of an
/// operation's path under `param{i}`; this maps it back for error messages.
pub fn path_param_name(operation_id: &str, routed_name: &str) -> Option<String> {
    static TABLE: OnceLock<HashMap<&'static str, Vec<String>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for path in <Apis as OpenApi>::meta().into_iter().flat_map(|api| api.paths) {
            let names: Vec<String> = path
                .path
                .split('/')
                .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
                .map(str::to_owned)
                .collect();
            for operation in &path.operations {
                if let Some(id) = operation.operation_id {
                    table.insert(id, names.clone());
                }
            }
        }
        table
    });
    let index: usize = routed_name.strip_prefix("param")?.parse().ok()?;
    table.get(operation_id)?.get(index).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi/waiaas.json")
    }

    #[test]
    fn openapi_document_is_committed() {
        let generated = openapi_document();
        let path = committed_path();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write openapi/waiaas.json");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi/waiaas.json is out of date with the server's routes.\n\
             Regenerate it with `UPDATE_OPENAPI=1 cargo test -p waiaas-server openapi` and commit the result."
        );
    }

    #[test]
    fn document_is_deterministic_and_titled() {
        let document = openapi_document();
        assert_eq!(document, openapi_document());
        let json: serde_json::Value = serde_json::from_str(&document).expect("valid JSON");
        assert_eq!(json["info"]["title"], "WAIaaS");
        assert_eq!(json["info"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(json.get("servers").and_then(|s| s.as_array()).map(Vec::len).unwrap_or(0), 0);
        assert!(json["paths"]["/v1/agents/{id}"]["get"].is_object());
        assert!(json["components"]["schemas"]["ErrorBody"].is_object());
    }

    /// Every operation declares the error statuses its route class can answer, each with the error body, and no
    /// catch-all `default` (which would hide an undeclared status from clients and from schemathesis).
    #[test]
    fn every_operation_declares_its_error_statuses() {
        let document: serde_json::Value = serde_json::from_str(&openapi_document()).expect("valid JSON");
        let shared = &document["components"]["responses"];
        let mut operations = 0;
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                operations += 1;
                let name = format!("{} {path}", method.to_uppercase());
                let responses = operation["responses"].as_object().expect("responses");
                assert!(!responses.contains_key("default"), "{name} has a default response");
                let has = |status: u16| responses.contains_key(&status.to_string());
                let security = operation.get("security").and_then(|s| s.as_array()).map_or(0, Vec::len);
                let parameters = operation.get("parameters").and_then(|p| p.as_array()).cloned().unwrap_or_default();
                let body = operation.get("requestBody").is_some();
                assert!(has(403) && has(500), "{name}: the Host guard, the ACL and internal errors");
                assert_eq!(has(401), security > 0, "{name}: 401 exactly when authenticated");
                assert_eq!(has(413) && has(415), body, "{name}: 413 and 415 exactly when it takes a body");
                assert_eq!(has(400), body || !parameters.is_empty(), "{name}: 400 exactly when it takes input");
                if parameters.iter().any(|p| p["in"] == "path") {
                    assert!(has(404), "{name}: a path parameter names a resource that may not exist");
                }
                if operation["security"].to_string().contains("masterAuth") {
                    assert!(has(429), "{name}: master-password attempts are rate limited");
                }
                for (status, response) in responses.iter().filter(|(s, _)| !s.starts_with('2')) {
                    let reference = response["$ref"].as_str().unwrap_or_else(|| panic!("{name} {status}: a $ref"));
                    let shared_name = reference.strip_prefix("#/components/responses/").expect("a shared response");
                    let shared = &shared[shared_name];
                    assert_eq!(
                        shared["content"]["application/json; charset=utf-8"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{name} {status}"
                    );
                    let code = status.parse::<u16>().expect("a numeric status");
                    for listed in waiaas_core::ErrorCode::ALL.iter().filter(|c| c.info().http_status == code) {
                        let text = shared["description"].as_str().unwrap_or_default();
                        assert!(text.contains(listed.as_str()), "{name} {status} does not name {listed}");
                    }
                }
            }
        }
        assert!(operations > 40, "{operations} operations walked");
    }

    /// Cursors are base64url (the core's codec): the document says so, so a client can tell a mangled one.
    #[test]
    fn cursor_parameters_state_their_alphabet() {
        let document: serde_json::Value = serde_json::from_str(&openapi_document()).expect("valid JSON");
        let cursors: Vec<&serde_json::Value> = document["paths"]
            .as_object()
            .expect("paths")
            .values()
            .flat_map(|item| item.as_object().expect("path item").values())
            .flat_map(|operation| operation["parameters"].as_array().into_iter().flatten())
            .filter(|parameter| parameter["name"] == "cursor")
            .collect();
        assert!(cursors.len() >= 8, "{} cursor parameters", cursors.len());
        for cursor in cursors {
            assert_eq!(cursor["schema"]["pattern"], "^[A-Za-z0-9_-]+$");
            assert_eq!(cursor["schema"]["minLength"], 1);
        }
    }

    /// A field whose null has a meaning is required and nullable (found by schemathesis: the document made the
    /// owner optional while the server refuses a body without it).
    #[test]
    fn a_meaningful_null_is_required_and_nullable() {
        let document: serde_json::Value = serde_json::from_str(&openapi_document()).expect("valid JSON");
        let schema = &document["components"]["schemas"]["SetOwnerRequest"];
        assert_eq!(schema["required"], serde_json::json!(["ownerAddress"]));
        assert_eq!(schema["properties"]["ownerAddress"]["nullable"], true);
    }

    #[test]
    fn path_params_map_back_to_their_documented_names() {
        assert_eq!(path_param_name("getAgent", "param0").as_deref(), Some("id"));
        assert_eq!(path_param_name("renewSession", "param0").as_deref(), Some("id"));
        assert_eq!(path_param_name("getAgent", "param1"), None);
        assert_eq!(path_param_name("nope", "param0"), None);
        assert_eq!(routed_pattern("/v1/x/{a}/y/{b}"), "/v1/x/:param0/y/:param1");
        assert_eq!(routed_pattern("/v1/agents"), "/v1/agents");
        assert!(path_templates().iter().any(|t| t == "/v1/agents/{id}"));
    }
}
