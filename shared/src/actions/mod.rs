//! What an execution sends, one module per action kind behind one interface ([`Action`]):
//! each turns an execution's template and variables into the request it sends, and the
//! same request with secrets masked (what a preview answers and a record shows), and reads
//! what came back. No I/O: the dispatch use case resolves the secrets and sends.
//!
//! - [`webhook`]: a JSON payload template, a bearer token, signatures.
//! - [`notification`]: a title, a message and a severity, rendered for Slack or Teams.
//! - [`job`]: a `queue_job` action sends no request: it builds the job that dispatch puts
//!   on a queue, for the team's agents to run.

pub mod job;
pub mod notification;
pub mod webhook;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::delivery::retry::Verdict;
use crate::domain::integration::Integration;
use crate::domain::limits::truncate;
use crate::ports::{Outbound, Response};

/// How a masked value is shown.
pub const MASK: &str = "***";

/// Why a response body is not kept.
pub const BODY_WITHHELD: &str =
    "not kept: the request carried team secrets, and a receiver may echo them back in any encoding";

/// Everything an action builds its request from.
pub struct Context<'a> {
    pub integration: &'a Integration,
    /// The execution's template: a webhook's payload, a notification's texts.
    pub template: &'a Value,
    /// The event's variables.
    pub vars: &'a Map<String, Value>,
    /// The values of the secrets [`Action::secrets`] named, by name.
    pub secrets: &'a BTreeMap<String, String>,
    /// The execution id: `webhook-id`, stable across retries.
    pub message_id: &'a str,
    /// Unix seconds of this attempt.
    pub timestamp: i64,
}

/// A request ready to send.
pub struct Built {
    pub request: Outbound,
    /// The request as shown: every secret value masked.
    pub shown: Shown,
    /// Whether a secret's value is in the request (a token header, a secret in the body,
    /// a URL that is a secret).
    ///
    /// The response to such a request is never kept or shown as it came. Redacting the
    /// values from it cannot be made safe: a receiver may echo them JSON-escaped,
    /// `\u`-escaped, URL-encoded, base64'd or re-decoded as Latin-1, and redacting whatever
    /// matches a secret tells the reader of the record which value they planted (an alias,
    /// say) equals it. Keeping nothing of what comes back depends on no secret at all. A
    /// signing secret is never sent, only the signatures made with it.
    pub carries_secrets: bool,
}

/// A request as a preview answers it and a record shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shown {
    pub method: &'static str,
    /// The URL, or [`MASK`] when it is a team secret.
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    /// The team secrets the request uses, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// What a response means, and what of it is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub verdict: Verdict,
    pub body: KeptBody,
}

impl Reading {
    /// The verdict's name, as an attempt records it.
    pub fn outcome(&self) -> &'static str {
        match self.verdict {
            Verdict::Delivered => "delivered",
            Verdict::Retry => "retry",
            Verdict::Fail(_) => "failed",
            Verdict::Disable(_) => "disabled",
        }
    }
}

/// A response body as an execution record or a test answer keeps it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeptBody {
    pub body: Option<String>,
    pub withheld: Option<String>,
}

/// What is kept of a response body: nothing when no response came, nothing (saying why)
/// when the request carried secrets (see [`Built::carries_secrets`]), else its first
/// `max` bytes.
pub fn kept_body(carries_secrets: bool, response: &Response, max: usize) -> KeptBody {
    match (response.status, carries_secrets) {
        (None, _) => KeptBody::default(),
        (Some(_), true) => KeptBody {
            body: None,
            withheld: Some(BODY_WITHHELD.to_string()),
        },
        (Some(_), false) => KeptBody {
            body: Some(truncate(&response.body, max).to_string()),
            withheld: None,
        },
    }
}

/// One action kind: what it needs, what it sends, and how it reads the answer.
pub trait Action: Sync {
    /// The team secrets [`Action::build`] needs the values of, or why the request cannot
    /// be built (a template this version cannot read).
    fn secrets(&self, integration: &Integration, template: &Value) -> Result<Vec<String>, String>;

    /// The request, or why it cannot be made (which retrying does not mend).
    fn build(&self, cx: &Context<'_>) -> Result<Built, String>;

    /// What `response` to a request built for `integration` means.
    fn read(
        &self,
        integration: &Integration,
        response: &Response,
        carries_secrets: bool,
        max_body: usize,
    ) -> Reading;
}

/// The action of an execution's kind, through `integration`; or why that integration
/// cannot carry it (its type changed, say).
pub fn of(kind: &str, integration: &Integration) -> Result<&'static dyn Action, String> {
    let takes_notifications = integration.destination.takes_notifications();
    match kind {
        "webhook" if !takes_notifications => Ok(&webhook::Webhook),
        "notification" if takes_notifications => Ok(&notification::Notification),
        "webhook" | "notification" => Err(format!(
            "integration {} is a {} integration, which cannot carry a {kind} action",
            integration.name,
            integration.destination.kind()
        )),
        other => Err(format!("{other} actions send nothing")),
    }
}

/// The value of secret `name`, which [`Action::secrets`] asked for.
fn secret<'a>(cx: &'a Context<'_>, name: &str) -> Result<&'a str, String> {
    cx.secrets
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| format!("secret {name} was not resolved"))
}
