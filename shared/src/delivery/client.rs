//! The guarded HTTP client: every destination passes the outbound guard, the connection goes
//! to the checked address only, no redirects, no proxies, a hard timeout, a bounded body.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;

use super::guard::{OutboundGuard, find_guard_error, guarded_client_builder};
use super::retry::parse_retry_after;
use crate::ports::{Outbound, Response, WebhookSender};

/// At most this much of a response body is read.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Default timeout of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

pub struct GuardedClient {
    http: reqwest::Client,
    guard: Arc<OutboundGuard>,
    timeout: Duration,
}

impl GuardedClient {
    pub fn new(guard: Arc<OutboundGuard>, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = guarded_client_builder(guard.clone())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("automations/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(256)
            .build()?;
        Ok(Self {
            http,
            guard,
            timeout,
        })
    }

    async fn try_send(&self, request: Outbound) -> Result<Response, Response> {
        let secret_url = request.secret_url;
        let refused = |e: super::guard::GuardError| {
            let message = if secret_url {
                format!(
                    "the destination URL (a team secret) is refused by the outbound guard: {}",
                    e.without_values()
                )
            } else {
                e.to_string()
            };
            failure(message, !e.is_transient())
        };
        let url = url::Url::parse(&request.url).map_err(|e| {
            let message = if secret_url {
                "the destination URL (a team secret) is not a valid URL".to_string()
            } else {
                format!("invalid url: {e}")
            };
            failure(message, true)
        })?;
        self.guard.check_target(&url).map_err(|e| {
            let mut response = refused(e);
            response.refused = true;
            response
        })?;
        let mut builder = self.http.post(url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let mut response =
            builder
                .body(request.body)
                .send()
                .await
                .map_err(|e| match find_guard_error(&e) {
                    Some(guard) => refused(guard.clone()),
                    None => self.describe(e, secret_url),
                })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if chunk.len() > room {
                        truncated = true;
                        break;
                    }
                }
                Ok(None) => break,
                // The status arrived; a body cut short does not change the verdict.
                Err(_) => break,
            }
        }
        Ok(Response {
            status: Some(status),
            body: String::from_utf8_lossy(&body).into_owned(),
            truncated,
            retry_after,
            ..Response::default()
        })
    }

    /// What went wrong, in the client's own words; for a secret URL without the cause,
    /// which may name its host or address.
    fn describe(&self, error: reqwest::Error, secret_url: bool) -> Response {
        let cause = if secret_url {
            "the cause is not shown: the URL is a team secret".to_string()
        } else {
            root_cause(&error)
        };
        let message = if error.is_timeout() {
            format!("no response within {} s", self.timeout.as_secs_f32())
        } else if error.is_connect() {
            format!("could not connect: {cause}")
        } else {
            format!("request failed: {cause}")
        };
        failure(message, false)
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut e = error;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

fn failure(message: String, refused: bool) -> Response {
    Response {
        error: Some(message),
        refused,
        ..Response::default()
    }
}

#[async_trait]
impl WebhookSender for GuardedClient {
    async fn send(&self, request: Outbound) -> Response {
        let started = Instant::now();
        let mut response = self.try_send(request).await.unwrap_or_else(|r| r);
        response.duration = started.elapsed();
        response
    }
}
