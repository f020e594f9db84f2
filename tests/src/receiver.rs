//! A webhook receiver on 127.0.0.1: records every request and answers with scripted statuses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use tokio::sync::Notify;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

type Answer = (u16, String, Vec<(String, String)>);

/// Response headers of a scripted answer: (name, value).
pub type Headers<'a> = &'a [(&'a str, &'a str)];

#[derive(Default)]
struct Inner {
    deliveries: Mutex<Vec<Delivery>>,
    /// Answers (status, body, headers), in order; 200 `ok` once they run out.
    script: Mutex<VecDeque<Answer>>,
    arrived: Notify,
    /// When set, requests are answered one at a time, each after this delay.
    slow: Option<(Duration, tokio::sync::Mutex<()>)>,
    /// Answer with the request echoed back in many encodings (see [`echo`]).
    echo: bool,
}

/// The receiver; `url` is where it listens.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::serve(Inner::default()).await
    }

    /// A receiver that handles one request at a time and takes `delay` for each.
    pub async fn start_slow(delay: Duration) -> Receiver {
        Self::serve(Inner {
            slow: Some((delay, tokio::sync::Mutex::new(()))),
            ..Inner::default()
        })
        .await
    }

    /// A receiver that answers with each request echoed back (see [`echo`]), with the
    /// scripted statuses first, then 200.
    pub async fn start_echo() -> Receiver {
        Self::serve(Inner {
            echo: true,
            ..Inner::default()
        })
        .await
    }

    async fn serve(inner: Inner) -> Receiver {
        let inner = Arc::new(inner);
        let app = Router::new().fallback(record).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, inner }
    }

    /// Answers the next requests with these statuses (and bodies), then 200s.
    pub fn script(&self, answers: &[(u16, &str)]) {
        let mut script = self.inner.script.lock().expect("lock");
        script.extend(answers.iter().map(|(s, b)| (*s, b.to_string(), Vec::new())));
    }

    /// Answers the next requests with these statuses, bodies and headers, then 200s.
    pub fn script_with_headers(&self, answers: &[(u16, &str, Headers<'_>)]) {
        let mut script = self.inner.script.lock().expect("lock");
        script.extend(answers.iter().map(|(s, b, h)| {
            let headers = h.iter().map(|(n, v)| (n.to_string(), v.to_string()));
            (*s, b.to_string(), headers.collect())
        }));
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.inner.deliveries.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.inner.deliveries.lock().expect("lock").len()
    }

    /// Waits until at least `n` requests arrived, or `timeout`; returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            if self.count() >= n {
                return self.deliveries();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.deliveries();
            }
        }
    }
}

async fn record(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let _one_at_a_time = match &inner.slow {
        Some((delay, lock)) => {
            let guard = lock.lock().await;
            tokio::time::sleep(*delay).await;
            Some(guard)
        }
        None => None,
    };
    let mut answer = inner.script.lock().expect("lock").pop_front();
    if inner.echo {
        // The scripted status (200 when none is left), with the echo as the body.
        let status = answer.map_or(200, |(status, _, _)| status);
        answer = Some((status, echo(&headers, &body), Vec::new()));
    }
    inner.deliveries.lock().expect("lock").push(Delivery {
        headers,
        body,
        at: Instant::now(),
    });
    inner.arrived.notify_waiters();
    let (status, body, extra) = answer.unwrap_or((200, "ok".to_string(), Vec::new()));
    let mut response_headers = HeaderMap::new();
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response_headers.insert(name, value);
        }
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        response_headers,
        body,
    )
}

/// The request's header values and body as a hostile receiver may echo them: raw, then
/// JSON-escaped, `\u`-escaped, URL-encoded, base64'd and re-decoded as Latin-1, each part
/// on its own and all together.
pub fn echo(headers: &HeaderMap, body: &[u8]) -> String {
    let mut parts: Vec<Vec<u8>> = headers.values().map(|v| v.as_bytes().to_vec()).collect();
    parts.push(body.to_vec());
    let mut out = String::new();
    for part in &parts {
        out.push_str(&encodings(part).join("\n"));
        out.push('\n');
    }
    out
}

/// One text in every encoding [`echo`] uses.
pub fn encodings(raw: &[u8]) -> Vec<String> {
    use base64::Engine;
    let text = String::from_utf8_lossy(raw).into_owned();
    let json = serde_json::to_string(&text).unwrap_or_default();
    let json = json[1..json.len() - 1].to_string();
    let unicode: String = text
        .encode_utf16()
        .map(|unit| format!("\\u{unit:04x}"))
        .collect();
    let url: String = raw
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (*b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    let base64 = base64::engine::general_purpose::STANDARD.encode(raw);
    let latin1: String = raw.iter().map(|b| *b as char).collect();
    vec![text, json, unicode, url, base64, latin1]
}
