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
    serve_on("127.0.0.1:0", data_dir, env)
}

fn serve_on(listen: &str, data_dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .env_remove("AUTOMATIONS_OPERATOR_KEY")
        .env_remove("AUTOMATIONS_RETRY_SCHEDULE")
        .env_remove("AUTOMATIONS_ALLOW_NETWORKS")
        .envs(env.iter().copied());
    c
}

/// Starts `serve`, waits until it listens, kills it; returns what it printed on stdout.
fn start(data_dir: &Path) -> String {
    start_logged(data_dir).0
}

/// Like [`start`], also returning the log lines up to "automations serving".
fn start_logged(data_dir: &Path) -> (String, Vec<String>) {
    start_with(data_dir, &[])
}

/// Like [`start_logged`], with these environment variables.
fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut child = serve(data_dir, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let serving = line.contains("automations serving");
            lines.push(line);
            if serving {
                let _ignored = tx.send(std::mem::take(&mut lines));
            }
        }
    });
    let logged = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server started");
    let mut stdout = child.stdout.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    (out, logged)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn state_files_are_private_and_an_open_data_directory_is_reported() {
    // GIVEN a new data directory
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let (_, logged) = start_logged(&dir);
    // THEN it and every file in it are its owner's only, and nothing was reported
    assert_eq!(mode(&dir), 0o700);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names.sort();
    for expected in ["automations.db", "lock", "operator-key", "secrets.key"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert!(
        !logged.iter().any(|l| l.contains("other users")),
        "{logged:?}"
    );

    // WHEN the directory and the database are opened to others
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.join("automations.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_, logged) = start_logged(&dir);
    // THEN the start says so, and narrows the database back
    assert!(
        logged
            .iter()
            .any(|l| l.contains("data directory is open to other users")),
        "{logged:?}"
    );
    assert_eq!(mode(&db), 0o600);

    // WHEN the operator key is readable by others, the server does not start
    let key = dir.join("operator-key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = serve(&dir, &[]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("operator-key") && stderr.contains("chmod 600"),
        "{stderr}"
    );
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
        (
            "AUTOMATIONS_INGEST_RATE",
            "0",
            "AUTOMATIONS_INGEST_RATE must be a whole number from 1 to 1000000",
        ),
        (
            "AUTOMATIONS_INGEST_BURST",
            "lots",
            "AUTOMATIONS_INGEST_BURST must be a whole number from 1 to 1000000",
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

#[test]
fn the_agent_says_how_it_is_used_and_refuses_a_missing_command() {
    let out = Command::new(BIN)
        .args(["agent", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("automations agent --team acme --queue gpu -- python eval.py"));
    assert!(help.contains("AUTOMATIONS_JOB_FILE"));
    // A usage error exits 2, naming what is missing.
    let out = Command::new(BIN)
        .args([
            "agent", "--queue", "gpu", "--team", "acme", "--key", "atm_x",
        ])
        .env_remove("AUTOMATIONS_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("COMMAND"));
    let out = Command::new(BIN)
        .args([
            "agent",
            "--queue",
            "gpu",
            "--team",
            "acme",
            "--concurrency",
            "0",
            "--",
            "true",
        ])
        .env("AUTOMATIONS_KEY", "atm_x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--concurrency"));
}

/// The log line that says which operator key is in force.
fn key_source(logged: &[String]) -> &str {
    logged
        .iter()
        .find(|l| l.contains("operator key") && l.contains("in force"))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no line says which operator key is in force: {logged:?}"))
}

#[test]
fn the_start_says_which_operator_key_is_in_force_and_never_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    // First start: generated, saved, printed once on stdout, not in the logs.
    let (printed, logged) = start_with(dir.path(), &[]);
    let saved = std::fs::read_to_string(dir.path().join("operator-key")).unwrap();
    assert!(printed.contains(&saved));
    assert!(key_source(&logged).contains("generated"), "{logged:?}");
    // Then: the file.
    let (_, logged) = start_with(dir.path(), &[]);
    assert!(key_source(&logged).contains("operator-key"), "{logged:?}");
    // The variable, with the file holding the same key: no warning.
    let (_, logged) = start_with(dir.path(), &[("AUTOMATIONS_OPERATOR_KEY", &saved)]);
    assert!(
        key_source(&logged).contains("AUTOMATIONS_OPERATOR_KEY"),
        "{logged:?}"
    );
    assert!(
        !logged.iter().any(|l| l.contains("another operator key")),
        "{logged:?}"
    );
    // The variable, with the file holding another key: said so.
    let other = "another-operator-key-0123456789-abcdef";
    let (_, logged) = start_with(dir.path(), &[("AUTOMATIONS_OPERATOR_KEY", other)]);
    assert!(
        key_source(&logged).contains("AUTOMATIONS_OPERATOR_KEY"),
        "{logged:?}"
    );
    assert!(
        logged
            .iter()
            .any(|l| l.contains("another operator key") && l.contains("not accepted")),
        "{logged:?}"
    );
    let all = logged.join("\n");
    assert!(
        !all.contains(other) && !all.contains(&saved),
        "a key in the logs: {all}"
    );
}

#[test]
fn no_key_is_made_when_the_address_cannot_be_bound() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let out = serve_on(&address, &dir, &[]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("--listen {address}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout.is_empty(),
        "printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!dir.join("operator-key").exists());
}
