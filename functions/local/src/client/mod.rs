//! The `automations` binary as the API's client: automations as code, events, executions,
//! integrations and secrets. Every command reads the server, key and team from its flags
//! or their environment variables, prints a table (or JSON with `--output json`), and
//! exits 0 when it worked, 1 when the server refused, 2 on a usage error.

pub mod apply;
pub mod events;
pub mod executions;
pub mod integrations;
mod table;

use std::fmt;
use std::time::Duration;

use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::Value;

pub use table::Table;

/// Where the server is, who calls it, for which team, and how to print the answer.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The server's URL.
    #[arg(long, env = "AUTOMATIONS_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// An API key of the team (or the operator key).
    #[arg(long, env = "AUTOMATIONS_KEY", hide_env_values = true)]
    pub key: String,
    /// The team.
    #[arg(long, env = "AUTOMATIONS_TEAM")]
    pub team: String,
    /// How to print the answer.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub enum Failure {
    /// The server refused, or could not be reached: exit 1.
    Refused(String),
    /// The command was used wrongly (a file that cannot be read or parsed…): exit 2.
    Usage(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Refused(_) => 1,
            Failure::Usage(_) => 2,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Refused(m) | Failure::Usage(m) => f.write_str(m),
        }
    }
}

pub type Outcome<T = ()> = Result<T, Failure>;

/// An answer of the server.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    /// `Retry-After`, in seconds, when the server sent one.
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The server's own words: `400 invalid_request: <message>`.
    pub fn refusal(&self) -> String {
        let error = &self.body["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => format!("{} {code}: {message}", self.status),
            _ => format!("{} {}", self.status, self.body),
        }
    }
}

/// The API of one team, as one caller.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    pub team: String,
    pub output: Output,
}

impl Client {
    pub fn new(connection: &Connection) -> Outcome<Client> {
        let base = connection.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::Usage(format!(
                "--url {base}: give the server's http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Failure::Usage(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            key: connection.key.clone(),
            team: connection.team.clone(),
            output: connection.output,
        })
    }

    /// `path` under the team, e.g. `automations` → `/v1/teams/{team}/automations`.
    pub fn team_path(&self, path: &str) -> String {
        format!("/v1/teams/{}/{path}", self.team)
    }

    /// Calls the server; only a failure to reach it is an error.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Outcome<Answer> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Failure::Refused(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        let text = response
            .text()
            .await
            .map_err(|e| Failure::Refused(format!("the answer of {} was cut: {e}", self.base)))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    /// Calls the server and expects a 2xx; anything else is a refusal in its own words.
    pub async fn expect(&self, method: Method, path: &str, body: Option<&Value>) -> Outcome<Value> {
        let answer = self.call(method, path, body).await?;
        if answer.ok() {
            Ok(answer.body)
        } else {
            Err(Failure::Refused(answer.refusal()))
        }
    }

    /// The id of the team's object of this kind (`automations`, `integrations`) named
    /// `name`.
    pub async fn id_of(&self, kind: &str, name: &str) -> Outcome<String> {
        let listing = self
            .expect(Method::GET, &self.team_path(kind), None)
            .await?;
        listing[kind]
            .as_array()
            .into_iter()
            .flatten()
            .find(|item| item["name"] == name)
            .and_then(|item| item["id"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Failure::Refused(format!(
                    "team {} has no {} named {name}",
                    self.team,
                    kind.trim_end_matches('s')
                ))
            })
    }

    /// Prints `value` as JSON, or runs `table` to print it for a reader.
    pub fn print(&self, value: &Value, table: impl FnOnce(&Value)) {
        match self.output {
            Output::Json => println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            ),
            Output::Table => table(value),
        }
    }
}

/// A JSON value as one short line: strings without quotes, the rest as JSON, cut at `max`
/// characters.
pub fn short(value: &Value, max: usize) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace(['\n', '\r', '\t'], " ");
    if text.chars().count() <= max {
        text
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}
