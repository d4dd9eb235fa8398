//! Every operation of the OpenAPI document that takes a JSON body refuses a key named twice with 400
//! `VALIDATION_FAILED` naming the key's path: no route reads a body around `body::read_json`, and a route added
//! later is swept in by this test.

use super::*;

#[tokio::test]
async fn every_json_body_route_refuses_duplicate_keys() {
    let document: Value = serde_json::from_str(&crate::openapi::openapi_document()).expect("OpenAPI document");
    let agent_id = AgentId::from_uuid(uuid::Uuid::from_u128(21));
    let mut mocks = Mocks::default();
    agent_with_transactions(&mut mocks, agent(agent_id));
    let cli = client(mocks).await;
    let bearer = token_for(&cli, agent_id).await;
    let mut checked = Vec::new();
    for (template, operations) in document["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            if operation.get("requestBody").is_none() {
                continue;
            }
            let route = format!("{method} {template}");
            let path = template
                .split('/')
                .map(|part| if part.starts_with('{') { "0190a000-0000-7000-8000-000000000000" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            let request = match method.as_str() {
                "post" => cli.post(path),
                "put" => cli.put(path),
                "patch" => cli.patch(path),
                "delete" => cli.delete(path),
                other => panic!("{route}: a body on {other}"),
            }
            .content_type("application/json")
            .body(r#"{"x":{"y":1,"y":2}}"#);
            let scheme = operation["security"][0].as_object().and_then(|s| s.keys().next().cloned());
            let request = match scheme.as_deref() {
                Some("masterAuth") => master(request),
                Some("sessionAuth") => request.header("authorization", bearer.as_str()),
                other => panic!("{route}: no credentials known for {other:?}"),
            };
            let got = send(request).await;
            assert_eq!(got.0, StatusCode::BAD_REQUEST, "{route}: {}", got.2);
            assert_error(&got, 400, "VALIDATION_FAILED");
            assert_eq!(
                got.2["details"]["issues"],
                json!([{ "path": "x.y", "message": "duplicate key: name each field once" }]),
                "{route}"
            );
            checked.push(route);
        }
    }
    for route in
        ["post /v1/transactions/send", "post /v1/transactions/simulate", "post /v1/agents", "post /v1/policies"]
    {
        assert!(checked.iter().any(|r| r == route), "{route} not swept: {checked:?}");
    }
}
