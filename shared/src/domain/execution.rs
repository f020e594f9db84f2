//! Executions: one automation firing on one event, with every delivery attempt.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::event::EventType;
use super::limits::MAX_RECORDED_PAYLOAD_BYTES;
use super::template::TooLarge;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionStatus {
    Pending,
    Finished,
    Failed,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Finished, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRef {
    pub event_type: EventType,
    pub id: String,
}

/// What the execution does, as shown to users (secrets in `payload` are `***`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Why `payload` is not shown (it rendered larger than a record keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_omitted: Option<String>,
    /// `queue_job`: the queue, and the job once it is enqueued (`payload` shows its
    /// overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

impl ActionRecord {
    /// A record showing the payload as rendered for it (secrets masked), or why not: one
    /// that rendered larger than a record keeps (references can repeat a large value).
    pub fn showing(rendered: Result<Value, TooLarge>) -> Self {
        let (payload, payload_omitted) = match rendered {
            Ok(payload) => (Some(payload), None),
            Err(e) => (
                None,
                Some(format!(
                    "not shown: {e}; a record keeps payloads of up to {MAX_RECORDED_PAYLOAD_BYTES} bytes"
                )),
            ),
        };
        Self {
            kind: String::new(),
            integration: None,
            url: None,
            payload,
            payload_omitted,
            queue: None,
            job_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: String,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
    /// What the answer meant: `delivered`, `retry`, `failed`, or `disabled` (the
    /// destination is gone, and the integration was disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub status_code: Option<u16>,
    pub body: Option<String>,
    /// Why `body` is not kept, when a response came and was not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_withheld: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `queue_job`: the job, how it ended, its exit code and the end of its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// The stored execution. `template` and `vars` are what dispatch renders the payload
/// from; they never leave the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    pub team: String,
    pub automation_id: String,
    pub automation_name: String,
    pub triggered_at: String,
    /// `triggered_at` in unix milliseconds: executions are listed by it.
    pub triggered_at_ms: i64,
    pub status: ExecutionStatus,
    pub event: EventRef,
    pub action: ActionRecord,
    pub attempts: Vec<Attempt>,
    pub result: Option<ExecutionResult>,
    pub template: Value,
    pub vars: Map<String, Value>,
    /// Bumped by every update; updates are conditional on it.
    pub version: u64,
    /// While a retry waits: when it is due (unix ms).
    #[serde(default)]
    pub next_attempt_at_ms: Option<i64>,
    /// Index of the first attempt of the current round (a manual retry starts a new one).
    #[serde(default)]
    pub round_start: usize,
    /// Who holds the claim to make the current attempt (until `next_attempt_at_ms`).
    #[serde(default)]
    pub claimed_by: Option<String>,
}

impl Execution {
    /// The execution as the API shows it.
    pub fn public_view(&self) -> Value {
        json!({
            "id": self.id,
            "automation_id": self.automation_id,
            "automation_name": self.automation_name,
            "triggered_at": self.triggered_at,
            "status": self.status,
            "event": self.event,
            "action": self.action,
            "attempts": self.attempts,
            "result": self.result,
        })
    }
}
