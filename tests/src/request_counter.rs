//! A counting proxy in front of moto's server: every AWS API request that passes through it
//! is forwarded as it came and counted by its operation (the `X-Amz-Target` header that
//! DynamoDB, SQS and Secrets Manager's JSON protocols carry, e.g. `DynamoDB_20120810.Query`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

struct Inner {
    upstream: String,
    client: reqwest::Client,
    counts: Mutex<BTreeMap<String, u64>>,
}

/// The proxy; point an SDK configuration at `url`.
pub struct RequestCounter {
    pub url: String,
    inner: Arc<Inner>,
}

impl RequestCounter {
    /// Listens on a free loopback port and forwards to `upstream` (e.g. moto's endpoint).
    pub async fn start(upstream: &str) -> RequestCounter {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            counts: Mutex::new(BTreeMap::new()),
        });
        let app = Router::new().fallback(forward).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the request counter");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        RequestCounter { url, inner }
    }

    /// The counts since the last `take`, by operation (`service.Operation`), and resets them.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.inner.counts.lock().expect("lock"))
    }
}

/// `DynamoDB_20120810.Query` → `DynamoDB.Query`, `AmazonSQS.SendMessageBatch` → `SQS.SendMessageBatch`,
/// `secretsmanager.GetSecretValue` → `SecretsManager.GetSecretValue`.
fn operation(headers: &HeaderMap) -> String {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown.unknown");
    let (service, op) = target.split_once('.').unwrap_or(("unknown", target));
    let service = match service {
        s if s.starts_with("DynamoDB") => "DynamoDB",
        "AmazonSQS" => "SQS",
        "secretsmanager" => "SecretsManager",
        other => other,
    };
    format!("{service}.{op}")
}

async fn forward(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *inner
        .counts
        .lock()
        .expect("lock")
        .entry(operation(&headers))
        .or_default() += 1;
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = inner
        .client
        .request(method, format!("{}{path}", inner.upstream))
        .body(body);
    for (name, value) in &headers {
        if !matches!(name.as_str(), "host" | "content-length" | "connection") {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let mut out = HeaderMap::new();
            for (name, value) in upstream.headers() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                ) {
                    out.insert(name, value.clone());
                }
            }
            let bytes = upstream.bytes().await.unwrap_or_default();
            (status, out, Body::from(bytes)).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}
