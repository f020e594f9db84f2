//! `GET /openapi.json`: an OpenAPI 3.1 document of the API, built from the router's own
//! route table, so that no route can be served without being in it. Each route's body,
//! answers and query are described in [`operations`], and the shapes in [`schemas`].

#[cfg(test)]
mod fields;
mod operations;
mod schemas;

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::routes::{RouteSpec, routes};
use operations::{Doc, Query};

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

fn build() -> Value {
    let mut paths = Map::new();
    for route in routes() {
        let doc = operations::describe(route.method.as_str(), route.path).unwrap_or(Doc {
            summary: "Not described yet.",
            body: None,
            ok: &[(200, None)],
            query: &[],
            conflict: false,
        });
        let item = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        item[route.method.as_str().to_ascii_lowercase()] = operation(&route, &doc);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "automations",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-driven automations for ML model registries and training runs. Every route but /healthz, /openapi.json and a source's receive path takes an API key as `Authorization: Bearer <key>`; errors are `{\"error\": {\"code\", \"message\", \"field\"?}}`.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"}
        },
        "paths": paths,
        "components": {
            "schemas": schemas::all(),
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A team's API key (atm_…), or the operator key."
            }}
        }
    })
}

/// Whether `route` is described in [`operations`] (a test holds every route to it).
pub fn is_described(route: &RouteSpec) -> bool {
    operations::describe(route.method.as_str(), route.path).is_some()
}

fn operation(route: &RouteSpec, doc: &Doc) -> Value {
    let path_params: Vec<&str> = route
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    let mut parameters: Vec<Value> = path_params
        .iter()
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "schema": {"type": "string", "minLength": 1}})
        })
        .collect();
    parameters.extend(doc.query.iter().map(|q| query(*q)));
    let mut op = json!({
        "operationId": operation_id(route),
        "summary": doc.summary,
        "tags": [tag(route.path)],
        "parameters": parameters,
        "responses": responses(route, doc, !path_params.is_empty()),
    });
    op["security"] = match route.access {
        Some(_) => json!([{"bearer": []}]),
        None => json!([]),
    };
    if let Some((schema, required)) = doc.body {
        op["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": schema_ref(schema)}}
        });
    }
    op
}

fn responses(route: &RouteSpec, doc: &Doc, has_params: bool) -> Value {
    let mut out = Map::new();
    for (status, schema) in doc.ok {
        let answer = match schema {
            Some(schema) => json!({"description": "Done.",
                "content": {"application/json": {"schema": schema_ref(schema)}}}),
            None => json!({"description": "Done; no content."}),
        };
        out.insert(status.to_string(), answer);
    }
    if route.path == "/healthz" || route.path == "/openapi.json" {
        return Value::Object(out);
    }
    let signed = route.access.is_none();
    let mut errors: Vec<(u16, &str)> = Vec::new();
    if doc.body.is_some() || !doc.query.is_empty() || has_params {
        errors.push((400, "Invalid input: the error names the field."));
    }
    if route.access.is_some() || signed {
        errors.push((
            401,
            "No key, an unknown or revoked key, or (a receive path) a bad signature.",
        ));
    }
    if route.access.is_some() {
        errors.push((403, "A key of another team, or a role that may not."));
    }
    errors.push((404, "No such team or item."));
    if doc.conflict {
        errors.push((
            409,
            "A name taken, an item in use or pending, or a lease lost.",
        ));
    }
    if doc.body.is_some() {
        errors.push((413, "A body over 1 MiB."));
        errors.push((415, "A body that is not application/json."));
    }
    if route.access == Some(crate::domain::access::Access::Send) {
        errors.push((
            429,
            "Over the key's event rate: nothing of the request was accepted; see Retry-After.",
        ));
    }
    errors.push((500, "A stored item this version cannot read."));
    errors.push((
        503,
        "Storage, the queue or the key store is unavailable; try again.",
    ));
    for (status, description) in errors {
        let mut answer = json!({"description": description,
            "content": {"application/json": {"schema": schema_ref("Error")}}});
        if status == 429 {
            answer["headers"] = json!({"Retry-After": {"description": "Seconds to wait.",
                "schema": {"type": "integer"}}});
        }
        out.insert(status.to_string(), answer);
    }
    Value::Object(out)
}

fn query(q: Query) -> Value {
    let (name, schema, description) = match q {
        Query::Limit => (
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 200, "default": 50}),
            "How many, at most.",
        ),
        Query::EventsLimit => (
            "limit",
            json!({"type": "integer", "minimum": 1, "maximum": 50, "default": 25}),
            "How many, at most.",
        ),
        Query::Before => (
            "before",
            json!({"type": "string"}),
            "The cursor of the page: a previous answer's next_before.",
        ),
        Query::JobStatus => (
            "status",
            json!({"enum": ["PENDING", "RUNNING", "FINISHED", "FAILED"]}),
            "Only those of this status.",
        ),
        Query::ExecutionStatus => (
            "status",
            json!({"enum": ["PENDING", "FINISHED", "FAILED"]}),
            "Only those of this status.",
        ),
        Query::DeadLetterQueue => (
            "queue",
            json!({"enum": ["events", "actions"]}),
            "Only this queue's.",
        ),
        Query::DryRun => (
            "dry_run",
            json!({"type": "boolean", "default": false}),
            "Validate and plan; change nothing.",
        ),
        Query::Prune => (
            "prune",
            json!({"type": "boolean", "default": false}),
            "Delete what the team has and the document does not.",
        ),
    };
    json!({"name": name, "in": "query", "required": false, "schema": schema,
           "description": description})
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// `post_teams_team_automations_id`: the method and the path's words.
fn operation_id(route: &RouteSpec) -> String {
    let words: Vec<String> = route
        .path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "v1")
        .map(|s| {
            s.trim_matches(|c| c == '{' || c == '}')
                .replace(['-', '.'], "_")
        })
        .collect();
    format!(
        "{}_{}",
        route.method.as_str().to_ascii_lowercase(),
        words.join("_")
    )
}

/// The resource a path is about: `automations` for `/v1/teams/{team}/automations/{id}`.
fn tag(path: &str) -> &str {
    let rest = path.strip_prefix("/v1/teams/{team}/").unwrap_or(path);
    let rest = rest.trim_start_matches("/v1/").trim_start_matches('/');
    match rest.split('/').next() {
        Some("") | None => "teams",
        Some("{team}") => "teams",
        Some(first) => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_router_is_described_in_the_document() {
        let doc = document();
        for route in routes() {
            assert!(
                is_described(&route),
                "{} {} has no description in openapi/operations.rs",
                route.method,
                route.path
            );
            let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            assert!(
                op.is_object(),
                "{} {} is not in the document",
                route.method,
                route.path
            );
        }
    }

    /// Each request schema names exactly the fields its input type takes.
    #[test]
    fn request_schemas_name_the_fields_of_their_input_types() {
        use crate::domain::{access, automation, integration, job, source};
        let checks: [(&str, Option<Vec<&str>>); 11] = [
            (
                "AutomationInput",
                fields::of::<automation::AutomationInput>(),
            ),
            ("Action", fields::of::<automation::Action>()),
            (
                "IntegrationInput",
                fields::of::<integration::IntegrationInput>(),
            ),
            ("QueueInput", fields::of::<job::QueueInput>()),
            ("Claim", fields::of::<job::ClaimInput>()),
            ("Lease", fields::of::<job::LeaseRef>()),
            ("Completion", fields::of::<job::Completion>()),
            ("ApiKeyInput", fields::of::<access::ApiKeyInput>()),
            ("SourceInput", fields::of::<source::SourceInput>()),
            (
                "PreviewRequest",
                fields::of::<crate::usecases::preview::PreviewRequest>(),
            ),
            ("Document", fields::of::<crate::usecases::apply::Document>()),
        ];
        let schemas = schemas::all();
        for (name, fields) in checks {
            let mut fields = fields.unwrap_or_else(|| panic!("{name}: not read as a struct"));
            fields.sort_unstable();
            let mut documented: Vec<&str> = schemas[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{name} has no properties"))
                .keys()
                .map(String::as_str)
                .collect();
            documented.sort_unstable();
            assert_eq!(documented, fields, "the schema {name} and its input type");
        }
    }

    #[test]
    fn every_schema_referred_to_exists() {
        let doc = document();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for part in text.split("#/components/schemas/").skip(1) {
            let name: String = part.chars().take_while(|c| c.is_alphanumeric()).collect();
            assert!(schemas.contains_key(&name), "no schema {name}");
        }
        let ids: std::collections::HashSet<String> = routes().iter().map(operation_id).collect();
        assert_eq!(ids.len(), routes().len(), "operation ids are unique");
    }
}
