//! `automations agent`: runs the jobs of one queue on this machine. It claims a job (a
//! long poll of 20 s), runs the command with the job on its stdin and in the file named by
//! `AUTOMATIONS_JOB_FILE`, heartbeats while it runs, and reports the exit code and the last
//! 64 KiB of what it printed. SIGTERM (or Ctrl-C) stops the claims; the running jobs finish
//! and are reported, then the agent exits 0. A server that cannot be reached is tried again
//! with backoff, said on stderr; a key or queue the server refuses stops the agent.

use std::collections::VecDeque;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How long one claim waits on the server for a job (API Gateway allows 30 s).
const CLAIM_WAIT_SECONDS: u64 = 20;
/// The most output a completion reports: the end of it.
const OUTPUT_TAIL_BYTES: usize = 64 * 1024;
/// Backoff between failed calls: doubling from 1 s up to 30 s.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Tries of a completion before the agent gives up on reporting it.
const COMPLETE_TRIES: u32 = 12;

/// What `automations agent` was given.
pub struct Options {
    pub url: String,
    pub key: String,
    pub team: String,
    pub queue: String,
    pub concurrency: usize,
    /// The name the agent claims under (its host name unless given).
    pub name: String,
    /// Claim without waiting on the server, and look again after this long when no job
    /// was there (`None`: long polls of 20 s).
    pub poll_interval: Option<Duration>,
    pub command: Vec<String>,
}

/// An answer of the server that retrying will not change (a wrong key, an unknown queue).
struct Refused(String);

/// One call that did not succeed: refused for good, or to be tried again.
enum CallError {
    Refused(Refused),
    Retry(String),
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
    team: String,
}

impl Client {
    async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), CallError> {
        self.post_within(path, body, None).await
    }

    /// [`Client::post`], giving up after `timeout` when one is given.
    async fn post_within(
        &self,
        path: &str,
        body: &Value,
        timeout: Option<Duration>,
    ) -> Result<(u16, Value), CallError> {
        let url = format!("{}/v1/teams/{}{path}", self.base, self.team);
        let mut request = self.http.post(&url).bearer_auth(&self.key).json(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(|e| {
            CallError::Retry(format!("cannot reach {}: {}", self.base, error_chain(&e)))
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = value["error"]["message"]
            .as_str()
            .map_or_else(|| text.chars().take(300).collect(), str::to_string);
        match status {
            200..=299 => Ok((status, value)),
            // Lost leases are the caller's to read.
            409 => Ok((status, value)),
            408 | 429 | 500..=599 => Err(CallError::Retry(format!(
                "the server answered {status}: {message}"
            ))),
            _ => Err(CallError::Refused(Refused(format!(
                "the server answered {status}: {message}"
            )))),
        }
    }
}

/// The error and its sources, in one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Runs the agent until SIGTERM or Ctrl-C (then `Ok`), or until the server refuses it.
pub async fn run(options: Options) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        // A claim waits up to 20 s on the server.
        .timeout(Duration::from_secs(CLAIM_WAIT_SECONDS + 15))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let client = Client {
        http,
        base: options.url.trim_end_matches('/').to_string(),
        key: options.key.clone(),
        team: options.team.clone(),
    };
    let (stop_tx, stop) = watch::channel(false);
    let children = Children::default();
    let watched = children.clone();
    tokio::spawn(async move {
        if crate::wait_for_signal().await.is_ok() {
            stop_tx.send_replace(true);
        }
        // A second signal: stop now, and the running commands with it.
        if crate::wait_for_signal().await.is_ok() {
            eprintln!("agent: a second signal; stopping the running commands and exiting now");
            watched.kill_all();
            std::process::exit(1);
        }
    });
    let options = Arc::new(options);
    let slots = Arc::new(Semaphore::new(options.concurrency));
    let mut running = JoinSet::new();
    eprintln!(
        "agent {}: taking jobs of queue {} in team {} from {} ({} at a time)",
        options.name, options.queue, options.team, client.base, options.concurrency
    );
    let refused = claim_loop(&client, &options, &slots, &mut running, &children, stop).await;
    if !running.is_empty() {
        eprintln!(
            "agent {}: stopping; waiting for {} running job(s) to finish",
            options.name,
            running.len()
        );
    }
    while running.join_next().await.is_some() {}
    match refused {
        Some(Refused(why)) => Err(why),
        None => {
            eprintln!("agent {}: stopped", options.name);
            Ok(())
        }
    }
}

/// Claims jobs while there is a free slot, until told to stop (or refused).
async fn claim_loop(
    client: &Client,
    options: &Arc<Options>,
    slots: &Arc<Semaphore>,
    running: &mut JoinSet<()>,
    children: &Children,
    mut stop: watch::Receiver<bool>,
) -> Option<Refused> {
    let mut backoff = Duration::from_secs(1);
    let mut unreachable = false;
    let path = format!("/queues/{}/claim", options.queue);
    let wait = if options.poll_interval.is_some() {
        0
    } else {
        CLAIM_WAIT_SECONDS
    };
    let body = json!({"agent": options.name, "wait_seconds": wait});
    loop {
        // Reap the jobs that ended.
        while running.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.ok()?,
            _ = stop.wait_for(|s| *s) => return None,
        };
        // A claim cancelled by the stop is dropped: the job it may have been leased goes
        // to another agent once its lease runs out.
        let answer = tokio::select! {
            answer = client.post(&path, &body) => answer,
            _ = stop.wait_for(|s| *s) => return None,
        };
        match answer {
            Ok((200, answer)) => {
                if unreachable {
                    eprintln!("agent {}: the server answers again", options.name);
                    unreachable = false;
                }
                backoff = Duration::from_secs(1);
                let job = answer["job"].clone();
                if !job["id"].is_string() {
                    eprintln!(
                        "agent {}: the server answered a claim without a job id: {answer}; trying again in {} s",
                        options.name,
                        backoff.as_secs()
                    );
                    drop(slot);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                let (client, options, children) =
                    (client.clone(), options.clone(), children.clone());
                running.spawn(async move {
                    run_job(&client, &options, &children, job).await;
                    drop(slot);
                });
            }
            Ok((204, _)) => {
                // 204: no job came within the wait.
                if unreachable {
                    eprintln!("agent {}: the server answers again", options.name);
                    unreachable = false;
                }
                backoff = Duration::from_secs(1);
                if let Some(interval) = options.poll_interval {
                    drop(slot);
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = stop.wait_for(|s| *s) => return None,
                    }
                }
            }
            Err(CallError::Refused(refused)) => {
                return Some(Refused(format!(
                    "claiming on queue {}: {}",
                    options.queue, refused.0
                )));
            }
            // Not an answer a claim gives (a 409, another 2xx): wait as for an error.
            Ok((status, answer)) => {
                let why = format!("the server answered a claim with {status}: {answer}");
                eprintln!(
                    "agent {}: {why}; trying again in {} s",
                    options.name,
                    backoff.as_secs()
                );
                drop(slot);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return None,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(CallError::Retry(why)) => {
                unreachable = true;
                eprintln!(
                    "agent {}: {why}; trying again in {} s",
                    options.name,
                    backoff.as_secs()
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return None,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Runs one job's command, heartbeating while it runs, and reports how it ended.
async fn run_job(client: &Client, options: &Options, children: &Children, job: Value) {
    let id = job["id"].as_str().unwrap_or_default().to_string();
    let attempt = job["attempt"].as_u64().unwrap_or_default();
    let lease = Duration::from_secs(job["lease_seconds"].as_u64().unwrap_or(600).max(3));
    eprintln!(
        "agent {}: job {id} (attempt {attempt}) started",
        options.name
    );
    let lease_ref = json!({"attempt": attempt, "agent": options.name});
    let (lost_tx, mut lost) = watch::channel(false);
    let beats = tokio::spawn(heartbeats(
        client.clone(),
        format!("/jobs/{id}/heartbeat"),
        lease_ref.clone(),
        lease / 3,
        lost_tx,
    ));
    let outcome = run_command(&options.command, &job, children, &mut lost).await;
    let (status, exit_code, output) = match outcome {
        Ran::Exited { code, output } => {
            let status = if code == Some(0) {
                "FINISHED"
            } else {
                "FAILED"
            };
            (status, code, output)
        }
        Ran::CouldNotStart(why) => ("FAILED", None, why),
        Ran::LeaseLost => {
            beats.abort();
            eprintln!(
                "agent {}: job {id}: the lease was lost (another agent has the job now); the command was stopped and nothing is reported",
                options.name
            );
            return;
        }
    };
    let mut completion = lease_ref;
    completion["status"] = json!(status);
    completion["exit_code"] = json!(exit_code);
    completion["output"] = json!(output);
    // The lease is kept while the completion is tried.
    report(client, options, &id, &completion).await;
    beats.abort();
    eprintln!(
        "agent {}: job {id} {status}{}",
        options.name,
        exit_code.map_or(String::new(), |c| format!(" (exit code {c})"))
    );
}

/// Reports a completion, trying again while the server cannot be reached.
async fn report(client: &Client, options: &Options, id: &str, completion: &Value) {
    let path = format!("/jobs/{id}/complete");
    let mut backoff = Duration::from_secs(1);
    for _ in 0..COMPLETE_TRIES {
        match client.post(&path, completion).await {
            Ok((409, answer)) => {
                eprintln!(
                    "agent {}: job {id}: the completion was refused: {}",
                    options.name, answer["error"]["message"]
                );
                return;
            }
            Ok(_) => return,
            Err(CallError::Refused(why)) => {
                eprintln!(
                    "agent {}: job {id}: the completion was refused: {}",
                    options.name, why.0
                );
                return;
            }
            Err(CallError::Retry(why)) => {
                eprintln!(
                    "agent {}: job {id}: {why}; reporting again in {} s",
                    options.name,
                    backoff.as_secs()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    eprintln!(
        "agent {}: job {id}: gave up reporting its end; it goes to another agent once its lease runs out",
        options.name
    );
}

/// Extends the lease every `every` until aborted; says so on `lost` when the server
/// answers that the lease is gone.
async fn heartbeats(
    client: Client,
    path: String,
    lease: Value,
    every: Duration,
    lost: watch::Sender<bool>,
) {
    loop {
        tokio::time::sleep(every).await;
        match client.post_within(&path, &lease, Some(every)).await {
            Ok((409, _)) | Err(CallError::Refused(_)) => {
                lost.send_replace(true);
                return;
            }
            Ok(_) => {}
            // Unreachable for now: the next beat tries again, within the lease.
            Err(CallError::Retry(why)) => eprintln!("heartbeat: {why}"),
        }
    }
}

enum Ran {
    Exited { code: Option<i64>, output: String },
    CouldNotStart(String),
    LeaseLost,
}

/// The job as a file only its owner may read, removed when dropped.
struct JobFile(PathBuf);

impl JobFile {
    fn write(job: &Value) -> std::io::Result<Self> {
        use std::io::Write;
        let id = job["id"].as_str().unwrap_or("job");
        let attempt = job["attempt"].as_u64().unwrap_or_default();
        let name = format!("automations-job-{id}-{attempt}-{}.json", std::process::id());
        let path = std::env::temp_dir().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(job.to_string().as_bytes())?;
        Ok(Self(path))
    }
}

impl Drop for JobFile {
    fn drop(&mut self) {
        let _ignored = std::fs::remove_file(&self.0);
    }
}

/// Runs the command for `job` until it exits, or until `lost` says the lease is gone (then
/// it is stopped).
async fn run_command(
    command: &[String],
    job: &Value,
    children: &Children,
    lost: &mut watch::Receiver<bool>,
) -> Ran {
    let file = match JobFile::write(job) {
        Ok(file) => file,
        Err(e) => return Ran::CouldNotStart(format!("cannot write the job file: {e}")),
    };
    let mut child = match Command::new(&command[0])
        .args(&command[1..])
        .env("AUTOMATIONS_JOB_FILE", &file.0)
        .env("AUTOMATIONS_JOB_ID", job["id"].as_str().unwrap_or_default())
        .env(
            "AUTOMATIONS_EXECUTION_ID",
            job["execution_id"].as_str().unwrap_or_default(),
        )
        // The agent's key is not the job's: a command gets only the job.
        .env_remove("AUTOMATIONS_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: a Ctrl-C meant for the agent lets the job finish, and a
        // lost lease stops whatever the command started too.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return Ran::CouldNotStart(format!("cannot start {}: {e}", command[0])),
    };
    let group = child.id();
    if let Some(group) = group {
        children.add(group);
    }
    // The job on stdin; a command that does not read it is fine.
    if let Some(mut stdin) = child.stdin.take() {
        let bytes = job.to_string().into_bytes();
        tokio::spawn(async move {
            let _ignored = stdin.write_all(&bytes).await;
        });
    }
    let tail = Arc::new(Mutex::new(Tail::default()));
    let mut copies = JoinSet::new();
    if let Some(out) = child.stdout.take() {
        copies.spawn(copy(out, tokio::io::stdout(), tail.clone()));
    }
    if let Some(err) = child.stderr.take() {
        copies.spawn(copy(err, tokio::io::stderr(), tail.clone()));
    }
    let status = tokio::select! {
        status = child.wait() => Some(status),
        _ = lost.wait_for(|l| *l) => None,
    };
    let Some(status) = status else {
        if let Some(group) = group {
            kill_group(group);
            children.remove(group);
        }
        let _ignored = child.kill().await;
        return Ran::LeaseLost;
    };
    if let Some(group) = group {
        children.remove(group);
    }
    // What the command left running may hold its output open: read what comes within a
    // few seconds, then report without the rest.
    let drained = tokio::time::timeout(OUTPUT_DRAIN, async {
        while copies.join_next().await.is_some() {}
    })
    .await;
    let mut notes = Vec::new();
    if drained.is_err() {
        copies.abort_all();
        notes.push(
            "[the command exited; what it left running still held its output, which was not read further]"
                .to_string(),
        );
    }
    match status {
        Ok(status) => {
            if status.code().is_none() {
                notes.push(format!("[stopped by a signal: {status}]"));
            }
            let output = tail
                .lock()
                .map(|mut t| {
                    for note in &notes {
                        t.push(format!("\n{note}").as_bytes());
                    }
                    t.text()
                })
                .unwrap_or_default();
            Ran::Exited {
                code: status.code().map(i64::from),
                output,
            }
        }
        Err(e) => Ran::CouldNotStart(format!("waiting for {}: {e}", command[0])),
    }
}

/// How long output is read after the command exited.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// The process groups of the commands running now.
#[derive(Clone, Default)]
struct Children(Arc<Mutex<std::collections::HashSet<u32>>>);

impl Children {
    fn add(&self, group: u32) {
        if let Ok(mut groups) = self.0.lock() {
            groups.insert(group);
        }
    }

    fn remove(&self, group: u32) {
        if let Ok(mut groups) = self.0.lock() {
            groups.remove(&group);
        }
    }

    fn kill_all(&self) {
        if let Ok(groups) = self.0.lock() {
            for group in groups.iter() {
                kill_group(*group);
            }
        }
    }
}

/// SIGKILL to a command's process group: it and whatever it started.
fn kill_group(group: u32) {
    let _ignored = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// Passes what the command prints through to the agent's own output, keeping the end.
async fn copy(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    tail: Arc<Mutex<Tail>>,
) {
    let mut buffer = vec![0u8; 8192];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let _ignored = to.write_all(&buffer[..n]).await;
                if let Ok(mut tail) = tail.lock() {
                    tail.push(&buffer[..n]);
                }
            }
        }
    }
}

/// The last [`OUTPUT_TAIL_BYTES`] bytes of the output.
#[derive(Default)]
struct Tail(VecDeque<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
        let over = self.0.len().saturating_sub(OUTPUT_TAIL_BYTES);
        self.0.drain(..over);
    }

    /// The end as text, as much as the server keeps: invalid UTF-8 is replaced, and the
    /// text is cut to what takes 64 KiB inside a JSON string (the server's measure).
    fn text(&self) -> String {
        let bytes: Vec<u8> = self.0.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        shared::domain::job::json_tail(&text, OUTPUT_TAIL_BYTES).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_end_as_text() {
        let mut tail = Tail::default();
        tail.push(&vec![b'a'; OUTPUT_TAIL_BYTES]);
        tail.push(b"\xffEND");
        let text = tail.text();
        assert!(text.len() <= OUTPUT_TAIL_BYTES);
        assert!(
            text.ends_with("\u{fffd}END"),
            "{}",
            &text[text.len() - 10..]
        );
        // Colours and bells take 6 bytes each as JSON: the end kept is what fits there.
        tail.push(&b"\x1b".repeat(OUTPUT_TAIL_BYTES));
        let text = tail.text();
        assert_eq!(text.len(), OUTPUT_TAIL_BYTES / 6);
        assert!(shared::domain::job::json_text_len(&text) <= OUTPUT_TAIL_BYTES);
    }
}
