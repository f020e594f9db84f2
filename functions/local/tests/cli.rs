#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The `automations` command line: configuration errors name what to fix, the operator key
//! is generated once, and one data directory serves one process.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_automations");

fn serve(data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("AUTOMATIONS_OPERATOR_KEY")
        .env_remove("AUTOMATIONS_RETRY_SCHEDULE")
        .env_remove("AUTOMATIONS_ALLOW_NETWORKS")
        .envs(env.iter().copied());
    c
}

/// Starts `serve`, waits until it listens, kills it; returns what it printed on stdout.
fn start(data_dir: &Path) -> String {
    let mut child = serve(data_dir, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("automations serving") {
                let _ignored = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server started");
    let mut stdout = child.stdout.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    out
}

#[test]
fn configuration_errors_name_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, needle) in [
        (
            "AUTOMATIONS_OPERATOR_KEY",
            "short",
            "AUTOMATIONS_OPERATOR_KEY must be at least 32 characters",
        ),
        (
            "AUTOMATIONS_RETRY_SCHEDULE",
            "5,soon",
            "AUTOMATIONS_RETRY_SCHEDULE: \"soon\"",
        ),
        (
            "AUTOMATIONS_ALLOW_NETWORKS",
            "10.0.0.0/8,banana",
            "AUTOMATIONS_ALLOW_NETWORKS",
        ),
    ] {
        let out = serve(dir.path(), &[(var, value)]).output().unwrap();
        assert!(!out.status.success(), "{var}={value} must stop the server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
    }
}

#[test]
fn the_operator_key_is_generated_once_and_kept_private() {
    let dir = tempfile::tempdir().unwrap();
    let first = start(dir.path());
    let key_file = dir.path().join("operator-key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.len() >= 32);
    assert!(first.contains(&key), "printed on first start: {first}");
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let second = start(dir.path());
    assert!(!second.contains(&key), "printed only once");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
}

#[test]
fn one_data_directory_serves_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = serve(dir.path(), &[])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = first.stderr.take().unwrap();
    let line = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("automations serving"));
    assert!(line.is_some());
    let second = serve(dir.path(), &[]).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another automations process"));
}

#[test]
fn help_describes_serve() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
}
