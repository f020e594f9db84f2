//! Queued jobs: a `queue_job` action puts one job on a queue of its team, and the team's
//! agents claim it, run it on their own machines, and report how it ended. A claim is a
//! lease: a job whose lease runs out goes to the next claim with `attempt + 1`, until its
//! `max_attempts`. No I/O: the jobs use case stores what these rules decide.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::event::format_millis;
use super::{Invalid, check_name};

/// Attempts a job gets unless its action says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u64 = 3;
/// The most attempts an action may ask for.
pub const MAX_MAX_ATTEMPTS: u64 = 10;
/// How long a claim lasts unless the action says otherwise, and a heartbeat extends it by.
pub const DEFAULT_LEASE_SECONDS: u64 = 600;
/// The shortest and longest lease an action may ask for.
pub const MIN_LEASE_SECONDS: u64 = 10;
pub const MAX_LEASE_SECONDS: u64 = 24 * 3600;
/// The longest a claim waits for a job: inside API Gateway's 30 s.
pub const MAX_WAIT_SECONDS: u64 = 20;
/// The most output a completion may report (the agent sends the last 64 KiB).
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// How much of a job's output its execution shows (the end of it).
pub const RECORDED_OUTPUT_BYTES: usize = 4 * 1024;
/// The longest agent name.
pub const MAX_AGENT_BYTES: usize = 128;

/// A queue of a team, which its agents poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobQueue {
    pub team: String,
    pub name: String,
    pub created_at: String,
}

impl JobQueue {
    pub fn public_view(&self) -> Value {
        json!({"name": self.name, "created_at": self.created_at})
    }
}

/// `POST /v1/teams/{team}/queues`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueInput {
    pub name: String,
}

impl QueueInput {
    pub fn validate(&self) -> Result<(), Invalid> {
        check_name("name", &self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    Pending,
    Running,
    Finished,
    Failed,
}

impl JobStatus {
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Finished,
        JobStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Running => "RUNNING",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Pending or running: the job holds its queue open.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

/// What a `queue_job` action asks for, as its executions keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub queue: String,
    pub job: String,
    /// The overrides template (rendered with the event's variables when enqueued).
    pub overrides: Value,
    pub max_attempts: u64,
    pub lease_seconds: u64,
}

/// A job on a queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub team: String,
    pub queue: String,
    /// The job's name, as the action gives it (`eval-resnet`).
    pub job: String,
    pub overrides: Value,
    /// The event that fired it, as its variables.
    pub event: Value,
    pub execution_id: String,
    pub automation_id: String,
    pub status: JobStatus,
    /// The attempt being made or last made; 0 before the first claim.
    pub attempt: u64,
    pub max_attempts: u64,
    pub lease_seconds: u64,
    /// Who holds (or last held) the lease.
    #[serde(default)]
    pub agent: Option<String>,
    #[serde(default)]
    pub lease_expires_at_ms: Option<i64>,
    pub enqueued_at_ms: i64,
    #[serde(default)]
    pub ended_at_ms: Option<i64>,
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// The end of what the command printed (at most [`MAX_OUTPUT_BYTES`]).
    #[serde(default)]
    pub output: Option<String>,
    /// Why the job failed without a completion (its leases ran out).
    #[serde(default)]
    pub error: Option<String>,
    /// Bumped by every update; updates are conditional on it.
    #[serde(default)]
    pub version: u64,
}

/// Whether a claim may take a job now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimable {
    /// Pending, or its lease expired with attempts left.
    Yes,
    /// Its lease expired on its last attempt: it fails.
    Exhausted,
    /// Leased, or ended.
    No,
}

/// Which lease a heartbeat or completion speaks for: the attempt its claim answered, and
/// the agent that claimed it. What is left out is not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRef {
    #[serde(default)]
    pub attempt: Option<u64>,
    #[serde(default)]
    pub agent: Option<String>,
}

impl LeaseRef {
    pub fn validate(&self) -> Result<(), Invalid> {
        match &self.agent {
            Some(agent) => check_agent("agent", agent),
            None => Ok(()),
        }
    }
}

/// Why a heartbeat or completion was refused: the lease is no longer the caller's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LeaseLost(pub String);

/// `POST …/jobs/{id}/complete`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completion {
    pub status: String,
    #[serde(default)]
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub attempt: Option<u64>,
    #[serde(default)]
    pub agent: Option<String>,
}

impl Completion {
    /// The status it ends the job with, checked with the rest.
    pub fn validate(&self) -> Result<JobStatus, Invalid> {
        let status = match JobStatus::parse(&self.status) {
            Some(s @ (JobStatus::Finished | JobStatus::Failed)) => s,
            _ => {
                return Err(Invalid::new(
                    "status",
                    format!(
                        "{:?} does not end a job; expected FINISHED or FAILED",
                        self.status
                    ),
                ));
            }
        };
        if let Some(output) = &self.output {
            let len = json_text_len(output);
            if len > MAX_OUTPUT_BYTES {
                return Err(Invalid::new(
                    "output",
                    format!(
                        "is {len} bytes as JSON; at most {MAX_OUTPUT_BYTES} are kept: send the end of the output"
                    ),
                ));
            }
        }
        if let Some(agent) = &self.agent {
            check_agent("agent", agent)?;
        }
        Ok(status)
    }

    pub fn lease(&self) -> LeaseRef {
        LeaseRef {
            attempt: self.attempt,
            agent: self.agent.clone(),
        }
    }
}

/// `POST …/queues/{queue}/claim`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimInput {
    pub agent: String,
    #[serde(default)]
    pub wait_seconds: Option<u64>,
}

impl ClaimInput {
    /// How long the claim may wait for a job, checked with the agent's name.
    pub fn validate(&self) -> Result<u64, Invalid> {
        check_agent("agent", &self.agent)?;
        let wait = self.wait_seconds.unwrap_or(0);
        if wait > MAX_WAIT_SECONDS {
            return Err(Invalid::new(
                "wait_seconds",
                format!("is {wait}; a claim waits at most {MAX_WAIT_SECONDS} seconds"),
            ));
        }
        Ok(wait)
    }
}

/// An agent's name: 1 to 128 bytes of printable text (a host name, `box-1`).
pub fn check_agent(field: &str, agent: &str) -> Result<(), Invalid> {
    if agent.trim().is_empty()
        || agent.len() > MAX_AGENT_BYTES
        || agent.chars().any(char::is_control)
    {
        return Err(Invalid::new(
            field,
            format!(
                "must be 1 to {MAX_AGENT_BYTES} bytes of text without control characters, e.g. the host name"
            ),
        ));
    }
    Ok(())
}

/// The `queue_job` fields of an action, checked; `overrides` must be a JSON object.
pub fn check_spec(
    queue: Option<&str>,
    job: Option<&str>,
    max_attempts: Option<u64>,
    lease_seconds: Option<u64>,
) -> Result<(), Invalid> {
    let queue = queue.ok_or_else(|| {
        Invalid::new(
            "action.queue",
            "missing: the name of a queue of the team (POST /v1/teams/{team}/queues)",
        )
    })?;
    check_name("action.queue", queue)?;
    let job = job.ok_or_else(|| {
        Invalid::new(
            "action.job",
            "missing: the name of the job to run, e.g. \"eval-resnet\"",
        )
    })?;
    check_name("action.job", job)?;
    if let Some(n) = max_attempts
        && !(1..=MAX_MAX_ATTEMPTS).contains(&n)
    {
        return Err(Invalid::new(
            "action.max_attempts",
            format!("is {n}; must be 1 to {MAX_MAX_ATTEMPTS}"),
        ));
    }
    if let Some(s) = lease_seconds
        && !(MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS).contains(&s)
    {
        return Err(Invalid::new(
            "action.lease_seconds",
            format!("is {s}; must be {MIN_LEASE_SECONDS} to {MAX_LEASE_SECONDS} seconds"),
        ));
    }
    Ok(())
}

impl Job {
    /// The job an execution enqueues, before any claim.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        team: &str,
        spec: &JobSpec,
        overrides: Value,
        event: Value,
        execution_id: &str,
        automation_id: &str,
        now_ms: i64,
    ) -> Self {
        Self {
            id,
            team: team.to_string(),
            queue: spec.queue.clone(),
            job: spec.job.clone(),
            overrides,
            event,
            execution_id: execution_id.to_string(),
            automation_id: automation_id.to_string(),
            status: JobStatus::Pending,
            attempt: 0,
            max_attempts: spec.max_attempts,
            lease_seconds: spec.lease_seconds,
            agent: None,
            lease_expires_at_ms: None,
            enqueued_at_ms: now_ms,
            ended_at_ms: None,
            exit_code: None,
            output: None,
            error: None,
            version: 0,
        }
    }

    fn lease_expired(&self, now_ms: i64) -> bool {
        self.lease_expires_at_ms.is_some_and(|at| at <= now_ms)
    }

    pub fn claimable(&self, now_ms: i64) -> Claimable {
        match self.status {
            JobStatus::Pending => Claimable::Yes,
            JobStatus::Running if self.lease_expired(now_ms) => {
                if self.attempt < self.max_attempts {
                    Claimable::Yes
                } else {
                    Claimable::Exhausted
                }
            }
            _ => Claimable::No,
        }
    }

    /// Leases the job to `agent` for its next attempt.
    pub fn claim(&mut self, agent: &str, now_ms: i64) {
        self.status = JobStatus::Running;
        self.attempt += 1;
        self.agent = Some(agent.to_string());
        self.lease_expires_at_ms = Some(now_ms + self.lease_seconds as i64 * 1000);
    }

    /// Fails the job whose last lease ran out.
    pub fn expire(&mut self, now_ms: i64) {
        self.status = JobStatus::Failed;
        self.ended_at_ms = Some(now_ms);
        self.error = Some(format!(
            "lease expired: attempt {} of {} was not completed within its {} s lease",
            self.attempt, self.max_attempts, self.lease_seconds
        ));
    }

    /// Whether `lease` is the job's current lease (running, the same attempt and agent).
    pub fn check_lease(&self, lease: &LeaseRef) -> Result<(), LeaseLost> {
        if !self.status.is_open() || self.status == JobStatus::Pending {
            return Err(LeaseLost(match self.status {
                JobStatus::Pending => format!(
                    "job {} is not leased: its lease ran out and it waits for a claim",
                    self.id
                ),
                status => format!("job {} ended already ({})", self.id, status.as_str()),
            }));
        }
        if lease.attempt.is_some_and(|a| a != self.attempt) {
            return Err(LeaseLost(format!(
                "the lease of attempt {} was lost: job {} is on attempt {} now",
                lease.attempt.unwrap_or_default(),
                self.id,
                self.attempt
            )));
        }
        if let Some(agent) = &lease.agent
            && self.agent.as_ref() != Some(agent)
        {
            return Err(LeaseLost(format!(
                "job {} is leased to another agent",
                self.id
            )));
        }
        Ok(())
    }

    /// Extends the lease from now.
    pub fn heartbeat(&mut self, now_ms: i64) {
        self.lease_expires_at_ms = Some(now_ms + self.lease_seconds as i64 * 1000);
    }

    /// Ends the job as its agent reported.
    pub fn complete(
        &mut self,
        status: JobStatus,
        exit_code: Option<i64>,
        output: Option<String>,
        now_ms: i64,
    ) {
        self.status = status;
        self.exit_code = exit_code;
        self.output = output;
        self.ended_at_ms = Some(now_ms);
        self.lease_expires_at_ms = None;
    }

    /// Whether a completion repeats the one that ended the job (a retried request).
    pub fn ended_by(&self, status: JobStatus, lease: &LeaseRef) -> bool {
        self.status == status
            && lease.attempt.is_none_or(|a| a == self.attempt)
            && lease
                .agent
                .as_ref()
                .is_none_or(|agent| self.agent.as_ref() == Some(agent))
    }

    /// What a claim answers: the job to run.
    pub fn claim_view(&self) -> Value {
        json!({
            "id": self.id,
            "queue": self.queue,
            "job": self.job,
            "overrides": self.overrides,
            "event": self.event,
            "execution_id": self.execution_id,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "lease_seconds": self.lease_seconds,
            "lease_expires_at": self.lease_expires_at_ms.map(format_millis),
        })
    }

    /// The job as listings and reads show it.
    pub fn public_view(&self) -> Value {
        json!({
            "id": self.id,
            "queue": self.queue,
            "job": self.job,
            "status": self.status,
            "overrides": self.overrides,
            "event": self.event,
            "execution_id": self.execution_id,
            "automation_id": self.automation_id,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "lease_seconds": self.lease_seconds,
            "agent": self.agent,
            "lease_expires_at": self.lease_expires_at_ms.map(format_millis),
            "enqueued_at": format_millis(self.enqueued_at_ms),
            "ended_at": self.ended_at_ms.map(format_millis),
            "exit_code": self.exit_code,
            "output": self.output,
            "error": self.error,
        })
    }

    /// The end of its output that an execution record keeps.
    pub fn output_tail(&self) -> Option<String> {
        self.output
            .as_deref()
            .map(|o| json_tail(o, RECORDED_OUTPUT_BYTES).to_string())
    }
}

/// How many bytes `c` takes inside a JSON string.
fn json_char_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// How many bytes `text` takes inside a JSON string: the size a limit on output counts, so
/// that what is accepted fits where it is stored whatever it holds (a control character
/// takes 6 bytes there).
pub fn json_text_len(text: &str) -> usize {
    text.chars().map(json_char_len).sum()
}

/// The longest end of `text` that takes at most `max` bytes inside a JSON string.
pub fn json_tail(text: &str, max: usize) -> &str {
    let mut len = 0;
    for (at, c) in text.char_indices().rev() {
        len += json_char_len(c);
        if len > max {
            return &text[at + c.len_utf8()..];
        }
    }
    text
}

/// Why a queue holding open jobs is not deleted.
pub fn open_jobs_conflict(open: i64) -> String {
    let jobs = if open == 1 {
        "1 job is".to_string()
    } else {
        format!("{open} jobs are")
    };
    format!("{jobs} pending or running on this queue; delete it once they have ended")
}

/// The event a job carries: its variables, with the event's id.
pub fn job_event(event_id: &str, vars: &Map<String, Value>) -> Value {
    let mut event = vars.clone();
    event.insert("event_id".into(), Value::String(event_id.to_string()));
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        let spec = JobSpec {
            queue: "gpu".into(),
            job: "eval".into(),
            overrides: json!({}),
            max_attempts: 2,
            lease_seconds: 60,
        };
        Job::new(
            "j1".into(),
            "acme",
            &spec,
            json!({"lr": 0.1}),
            json!({}),
            "e1",
            "a1",
            1_000,
        )
    }

    #[test]
    fn a_lease_that_runs_out_hands_the_job_out_again_until_its_attempts_are_spent() {
        let mut job = job();
        assert_eq!(job.claimable(0), Claimable::Yes);
        job.claim("box-1", 10_000);
        assert_eq!((job.attempt, job.lease_expires_at_ms), (1, Some(70_000)));
        assert_eq!(job.claimable(69_999), Claimable::No);
        assert_eq!(job.claimable(70_000), Claimable::Yes);
        job.claim("box-2", 70_000);
        assert_eq!(job.attempt, 2);
        assert_eq!(job.claimable(130_000), Claimable::Exhausted);
        job.expire(130_000);
        assert_eq!(job.status, JobStatus::Failed);
        assert!(job.error.as_deref().unwrap().starts_with("lease expired"));
        assert_eq!(job.claimable(999_999), Claimable::No);
    }

    #[test]
    fn only_the_current_lease_may_heartbeat_or_complete() {
        let mut job = job();
        let first = LeaseRef {
            attempt: Some(1),
            agent: Some("box-1".into()),
        };
        assert!(job.check_lease(&first).is_err(), "pending: nobody holds it");
        job.claim("box-1", 0);
        assert_eq!(job.check_lease(&first), Ok(()));
        assert_eq!(job.check_lease(&LeaseRef::default()), Ok(()));
        // Expired but not claimed again: still the first agent's.
        assert_eq!(job.check_lease(&first), Ok(()));
        job.claim("box-2", 60_000);
        let lost = job.check_lease(&first).unwrap_err();
        assert!(lost.0.contains("attempt 2"), "{lost}");
        let other_agent = LeaseRef {
            attempt: None,
            agent: Some("box-1".into()),
        };
        assert!(job.check_lease(&other_agent).is_err());
        job.complete(JobStatus::Finished, Some(0), Some("ok".into()), 70_000);
        let second = LeaseRef {
            attempt: Some(2),
            agent: Some("box-2".into()),
        };
        assert!(job.check_lease(&second).unwrap_err().0.contains("ended"));
        assert!(job.ended_by(JobStatus::Finished, &second));
        assert!(!job.ended_by(JobStatus::Failed, &second));
        assert!(!job.ended_by(JobStatus::Finished, &first));
    }

    #[test]
    fn completions_and_claims_are_checked() {
        let done = |status: &str, output: Option<String>| Completion {
            status: status.into(),
            exit_code: Some(0),
            output,
            attempt: None,
            agent: None,
        };
        assert_eq!(done("FINISHED", None).validate(), Ok(JobStatus::Finished));
        assert_eq!(done("FAILED", None).validate(), Ok(JobStatus::Failed));
        for bad in ["RUNNING", "PENDING", "finished", ""] {
            assert_eq!(done(bad, None).validate().unwrap_err().field, "status");
        }
        let long = "x".repeat(MAX_OUTPUT_BYTES + 1);
        assert_eq!(
            done("FINISHED", Some(long)).validate().unwrap_err().field,
            "output"
        );
        let claim = |agent: &str, wait| ClaimInput {
            agent: agent.into(),
            wait_seconds: wait,
        };
        assert_eq!(claim("box-1", Some(20)).validate(), Ok(20));
        assert_eq!(claim("box-1", None).validate(), Ok(0));
        assert_eq!(
            claim("box-1", Some(21)).validate().unwrap_err().field,
            "wait_seconds"
        );
        for bad in ["", " ", "a\nb", &"a".repeat(129)] {
            assert_eq!(claim(bad, None).validate().unwrap_err().field, "agent");
        }
    }

    #[test]
    fn actions_name_a_queue_and_a_job_within_limits() {
        assert_eq!(check_spec(Some("gpu"), Some("eval"), None, None), Ok(()));
        let field = |r: Result<(), Invalid>| r.unwrap_err().field;
        assert_eq!(
            field(check_spec(None, Some("eval"), None, None)),
            "action.queue"
        );
        assert_eq!(
            field(check_spec(Some("a b"), Some("eval"), None, None)),
            "action.queue"
        );
        assert_eq!(
            field(check_spec(Some("gpu"), None, None, None)),
            "action.job"
        );
        for n in [0, 11] {
            assert_eq!(
                field(check_spec(Some("gpu"), Some("eval"), Some(n), None)),
                "action.max_attempts"
            );
        }
        for s in [9, 86_401] {
            assert_eq!(
                field(check_spec(Some("gpu"), Some("eval"), None, Some(s))),
                "action.lease_seconds"
            );
        }
    }

    #[test]
    fn output_is_measured_as_json() {
        for text in ["plain", "quote\" back\\ nl\n", "\u{1b}[31mred\u{7}", "é✓😀"] {
            let json = serde_json::to_string(text).unwrap();
            assert_eq!(json_text_len(text), json.len() - 2, "{text:?}");
        }
        let text = "ab\u{1b}cd";
        assert_eq!(json_tail(text, 2), "cd");
        assert_eq!(json_tail(text, 7), "cd", "the escape takes 6");
        assert_eq!(json_tail(text, 8), "\u{1b}cd");
        assert_eq!(json_tail(text, 100), text);
        let wide = "😀😀";
        assert_eq!(json_tail(wide, 5), "😀");
        let mut completion = Completion {
            status: "FINISHED".into(),
            exit_code: None,
            output: Some("\u{7}".repeat(MAX_OUTPUT_BYTES / 6 + 1)),
            attempt: None,
            agent: None,
        };
        assert_eq!(completion.validate().unwrap_err().field, "output");
        completion.output = Some("\u{7}".repeat(MAX_OUTPUT_BYTES / 6));
        assert_eq!(completion.validate(), Ok(JobStatus::Finished));
    }

    #[test]
    fn an_execution_keeps_the_end_of_the_output() {
        let mut job = job();
        job.claim("box", 0);
        let output = format!("{}END", "a".repeat(10_000));
        job.complete(JobStatus::Finished, Some(0), Some(output), 1);
        let tail = job.output_tail().unwrap();
        assert!(tail.len() <= RECORDED_OUTPUT_BYTES && tail.ends_with("END"));
    }
}
