#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! `GET /openapi.json` of the real binary: every route of the router is in it, it needs no
//! key, and it is OpenAPI 3.1 with the bearer scheme.

use automations_tests::{Server, ServerOptions};

#[tokio::test]
async fn every_route_of_the_router_is_in_the_served_document() {
    let server = Server::start(ServerOptions::default());
    // (without a key: it is public, like /healthz)
    let response = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: serde_json::Value = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let routes = shared::http::routes();
    let mut operations = 0;
    for route in &routes {
        let method = route.method.as_str().to_ascii_lowercase();
        let op = &doc["paths"][route.path][&method];
        assert!(
            op.is_object(),
            "{} {} is not in /openapi.json",
            route.method,
            route.path
        );
        assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()));
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            route.access.is_some(),
            "{} {}",
            route.method,
            route.path
        );
        if route.access.is_some() {
            assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object());
        }
        operations += 1;
    }
    // AND the document holds nothing the router does not serve
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, operations);
}
