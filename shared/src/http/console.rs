//! The web console: static files built into the binary (no CDN, works offline), served at
//! `GET /` and `GET /console/{file}` with no key. The page asks for a key and calls the API
//! with it, so it can do nothing its key's role may not.
//!
//! Every answer carries a strict Content-Security-Policy: scripts and styles only from this
//! origin's files (no inline script, no `eval`), requests only to this origin, no frames.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::ApiError;

/// The policy of every console answer.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's files: name, content type, content.
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("../../console/index.html")),
    ("style.css", CSS, include_str!("../../console/style.css")),
    ("app.js", JS, include_str!("../../console/app.js")),
    ("api.js", JS, include_str!("../../console/api.js")),
    ("dom.js", JS, include_str!("../../console/dom.js")),
    ("form.js", JS, include_str!("../../console/form.js")),
    (
        "automations.js",
        JS,
        include_str!("../../console/automations.js"),
    ),
    (
        "integrations.js",
        JS,
        include_str!("../../console/integrations.js"),
    ),
    ("secrets.js", JS, include_str!("../../console/secrets.js")),
    (
        "executions.js",
        JS,
        include_str!("../../console/executions.js"),
    ),
    ("events.js", JS, include_str!("../../console/events.js")),
    ("queues.js", JS, include_str!("../../console/queues.js")),
    ("audit.js", JS, include_str!("../../console/audit.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// `GET /` and `GET /console/{file}`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { file("index.html") }))
        .route(
            "/console/{file}",
            get(|Path(name): Path<String>| async move { file(&name) }),
        )
}

/// The names of the console's files.
pub fn files() -> impl Iterator<Item = &'static str> {
    FILES.iter().map(|(name, _, _)| *name)
}

fn file(name: &str) -> Response {
    let Some((_, kind, content)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::not_found("the console has no such file").into_response();
    };
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(kind)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // The files change with the binary: a browser asks again each time.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (StatusCode::OK, headers, *content).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_scripts_import_is_served() {
        for (name, _, content) in FILES {
            for line in content.lines() {
                let Some(from) = line.split(" from \"./").nth(1) else {
                    continue;
                };
                let imported = from.split('"').next().unwrap_or_default();
                assert!(
                    files().any(|f| f == imported),
                    "{name} imports {imported}, which is not served"
                );
            }
        }
    }

    #[test]
    fn no_script_writes_markup() {
        // Values are shown as text: no file builds HTML from strings.
        for (name, _, content) in FILES.iter().filter(|(_, kind, _)| *kind == JS) {
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
                "new Function",
            ] {
                assert!(!content.contains(banned), "{name} uses {banned}");
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let (_, _, html) = FILES[0];
        assert!(!html.contains("<script>"), "an inline script");
        assert!(!html.contains("style="), "an inline style");
        assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    }
}
