#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The README's walkthrough, `docs/walkthrough.sh`, runs whole against the built
//! `automations` binary and succeeds: every step it checks (the webhooks arrive, the
//! execution finishes, the retry is delivered, a second apply changes nothing, the ingest
//! key gets 403 and, revoked, 401) holds.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use automations_tests::server::binary;

/// A port nothing listens on now (the OS picks it for a socket bound to port 0).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn the_walkthrough_script_runs_whole_and_succeeds() {
    // GIVEN the built binary first on PATH, two free ports and an empty data directory
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bin_dir = binary().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let (server_port, receiver_port) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();

    // WHEN the script runs from the repository's root
    let output = Command::new("bash")
        .arg("docs/walkthrough.sh")
        .current_dir(root)
        .env("PATH", path)
        .env("AUTOMATIONS_PORT", server_port.to_string())
        .env("RECEIVER_PORT", receiver_port.to_string())
        .env("WALKTHROUGH_DATA_DIR", dir.path().join("data"))
        .env_remove("AUTOMATIONS_URL")
        .env_remove("AUTOMATIONS_KEY")
        .env_remove("AUTOMATIONS_TEAM")
        .output()
        .unwrap();

    // THEN it exits 0, having gone through to its last step
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "docs/walkthrough.sh exited {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(
        stdout.contains("The walkthrough worked."),
        "--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
}
