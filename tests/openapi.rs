//! The OpenAPI document (`src/http/openapi.json`, served at `/openapi.json`) is well formed
//! enough to generate clients from: every route of the router is one operation, with a unique
//! operationId and declared tags, every reference resolves, and every success answer has a
//! schema. tests/openapi_schemathesis.rs checks that the server does what it describes.

mod support;

use std::collections::{BTreeSet, HashSet};

use modelgate::auth::Scope;
use serde_json::Value;
use support::{Backend, TestApp};

/// Every route the router serves (src/http/mod.rs, and status.rs for the status page).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/models/{id}/predict"),
    ("get", "/api/v1/models"),
    ("get", "/api/v1/models/{id}"),
    ("get", "/api/v1/models/{id}/info"),
    ("get", "/api/v1/models/{id}/ready"),
    ("post", "/api/v1/models/{id}/versions/{version}/predict"),
    ("post", "/api/v1/admin/models/reload"),
    ("post", "/api/v1/outcomes"),
    ("post", "/api/v1/keys"),
    ("get", "/api/v1/keys"),
    ("delete", "/api/v1/keys/{id}"),
    ("post", "/api/v1/keys/{id}/topup"),
    ("get", "/health"),
    ("get", "/health/live"),
    ("get", "/live"),
    ("get", "/health/ready"),
    ("get", "/ready"),
    ("get", "/version"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
    ("get", "/status"),
    ("get", "/status/stats"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{id}"),
    ("get", "/v2/models/{id}/versions/{version}"),
    ("get", "/v2/models/{id}/ready"),
    ("get", "/v2/models/{id}/versions/{version}/ready"),
    ("post", "/v2/models/{id}/infer"),
    ("post", "/v2/models/{id}/versions/{version}/infer"),
];

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(include_str!("../src/http/openapi.json")).expect("the document is JSON")
}

/// (method, path, operation) for every operation of the document.
fn operations(document: &Value) -> Vec<(String, String, Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            found.push((method.clone(), path.clone(), operation.clone()));
        }
    }
    found
}

/// `value` itself, or what its `$ref` points to.
fn resolved<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => document
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("{reference} does not resolve")),
        None => value,
    }
}

#[test]
fn every_route_is_one_operation_with_an_id_and_tags() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let tags: HashSet<&str> = document["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|tag| tag["name"].as_str())
        .collect();
    let mut ids = HashSet::new();
    let mut documented = BTreeSet::new();
    for (method, path, operation) in operations(&document) {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
        let op_tags = operation["tags"].as_array().expect("tags");
        assert!(!op_tags.is_empty(), "{method} {path} has no tags");
        for tag in op_tags {
            let tag = tag.as_str().expect("tag");
            assert!(
                tags.contains(tag),
                "{method} {path}: tag {tag} is not declared"
            );
        }
        documented.insert((method, path));
    }
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn every_reference_resolves() {
    fn walk(document: &Value, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(_)) = map.get("$ref") {
                    resolved(document, value);
                }
                map.values().for_each(|v| walk(document, v));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(document, v)),
            _ => {}
        }
    }
    let document = document();
    walk(&document, &document);
}

#[test]
fn every_answer_is_described_and_success_has_a_schema() {
    let document = document();
    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} has no success answer"
        );
        for (status, response) in responses {
            let response = resolved(&document, response);
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}"
            );
            assert!(
                response["headers"]["X-Request-Id"].is_object(),
                "{method} {path} {status} does not name X-Request-Id"
            );
            if status.starts_with('2') || status.starts_with('4') || status.starts_with('5') {
                let content = response["content"]
                    .as_object()
                    .unwrap_or_else(|| panic!("{method} {path} {status} describes no body"));
                for (media, body) in content {
                    assert!(
                        body["schema"].is_object(),
                        "{method} {path} {status} {media} has no schema"
                    );
                }
            }
        }
        // Routes that read a body answer the body's errors.
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} takes a body but does not describe {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_listed_routes_are_the_routers_and_the_document_is_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.key(&[Scope::Admin]).await;
    for (method, path) in ROUTES {
        let concrete = if path.starts_with("/api/v1/models/") {
            path.replace("{id}", "21").replace("{version}", "1.0.0")
        } else {
            path.replace("{id}", "key_00000000000000000000000000000000")
        };
        let response = app
            .client
            .request(
                method.to_uppercase().parse().expect("method"),
                app.url(&concrete),
            )
            .bearer_auth(&admin)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let code = serde_json::from_str::<Value>(&text).map_or(Value::Null, |v| v["code"].clone());
        assert_ne!(status, 405, "{method} {path} is not routed: {text}");
        assert_ne!(code, "not_found", "{method} {path} is not routed: {text}");
    }
    let served: Value = app
        .get("/openapi.json", None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(served, document());
    app.stop().await;
}

/// What schemathesis cannot send (it encodes paths as UTF-8): a percent-encoded id that is not
/// UTF-8 gets the problem the document describes, not the framework's plain text.
#[tokio::test]
async fn a_path_id_that_is_not_utf8_is_a_problem() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.key(&[Scope::Admin]).await;
    for (method, path) in [
        ("GET", "/api/v1/models/%FF/info"),
        ("POST", "/api/v1/models/%FF/predict"),
        ("DELETE", "/api/v1/keys/%FF%FE"),
        ("POST", "/api/v1/keys/%C3%28/topup"),
    ] {
        let response = app
            .client
            .request(method.parse().expect("method"), app.url(path))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"inputs": {}, "credits": 1}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 400, "{method} {path}");
        let body = support::problem(response).await;
        assert_eq!(body["code"], "invalid_path", "{method} {path}: {body}");
    }
    app.stop().await;
}
