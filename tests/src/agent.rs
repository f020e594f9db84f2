//! Starts and stops `automations agent` processes, keeping what they print.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::server::binary;

/// A running `automations agent`, its stdout and stderr in one log file.
pub struct Agent {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// `automations agent --url URL --team acme --queue QUEUE ARGS… -- COMMAND…` with `key`.
    pub fn start(url: &str, key: &str, queue: &str, args: &[&str], command: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("agent.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(binary())
            .args(["agent", "--url", url, "--team", "acme", "--queue", queue])
            .args(args)
            .arg("--")
            .args(command)
            .env("AUTOMATIONS_KEY", key)
            .env_remove("AUTOMATIONS_URL")
            .env_remove("AUTOMATIONS_TEAM")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .expect("start automations agent");
        Agent {
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// What it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits up to `timeout` for `needle` in its log.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// SIGKILL: the agent stops at once, its job unreported.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    /// Sends SIGTERM, without waiting.
    pub fn signal_term(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`STOP`, `CONT`, …), without waiting.
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }

    /// Waits up to `timeout` for the agent to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}
