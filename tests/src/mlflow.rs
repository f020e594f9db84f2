//! A real MLflow tracking server on loopback (SQLite backend store), from `.venv-mlflow`
//! (`tests/run.sh` installs `mlflow>=3.3` there), and `tests/mlflow_registry.py`, which
//! drives it with `MlflowClient`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Fernet key MLflow encrypts webhook secrets with (a test value: any 32 bytes,
/// URL-safe base64).
const SECRET_ENCRYPTION_KEY: &str = "2FY5HZ5iiDZ3UiTNzl1P2OaljOk83WhLQWaJkzXugMg=";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `.venv-mlflow/bin/{tool}`, or a panic that says how to install it.
fn tool(name: &str) -> PathBuf {
    let path = root().join(".venv-mlflow/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: `bash tests/run.sh` installs MLflow there, or run: python3 -m venv .venv-mlflow && .venv-mlflow/bin/pip install 'mlflow>=3.3,<4'",
        path.display()
    );
    path
}

/// A running `mlflow server`; stopped (with its workers) when dropped.
pub struct Mlflow {
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Mlflow {
    /// Starts `mlflow server` with one worker, allowed to send webhooks over http to
    /// loopback, reading its webhook list afresh every second; waits for `/health`.
    pub fn start() -> Mlflow {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("mlflow.log")).expect("log file");
        let child = Command::new(tool("mlflow"))
            .current_dir(dir.path())
            .args(["server", "--host", "127.0.0.1", "--workers", "1"])
            .args(["--port", &port.to_string()])
            .args([
                "--backend-store-uri",
                &format!("sqlite:///{}", dir.path().join("mlflow.db").display()),
            ])
            .args([
                "--default-artifact-root",
                &dir.path().join("artifacts").display().to_string(),
            ])
            .env("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
            .env("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
            .env(
                "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY",
                SECRET_ENCRYPTION_KEY,
            )
            .env("MLFLOW_WEBHOOK_CACHE_TTL", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            // Its own process group, so that dropping it stops the workers it spawns.
            .process_group(0)
            .spawn()
            .expect("start mlflow server");
        let mut mlflow = Mlflow {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
        };
        mlflow.wait_healthy(Duration::from_secs(120));
        mlflow
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let health = format!("{}/health", self.url);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("mlflow server exited ({status}):\n{}", self.log());
            }
            if self.answers_health() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "mlflow server did not answer {health} within {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Whether `GET /health` answers 200 now.
    fn answers_health(&self) -> bool {
        let Some(addr) = self.url.strip_prefix("http://") else {
            return false;
        };
        let Ok(mut stream) = TcpStream::connect(addr) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let request = format!("GET /health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        let mut answer = String::new();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.split(' ').nth(1) == Some("200")
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mlflow.log")).unwrap_or_default()
    }

    /// Runs `tests/mlflow_registry.py` against this server with `args` and returns the JSON
    /// it prints.
    pub fn drive(&self, args: &[&str]) -> Value {
        let script = root().join("tests/mlflow_registry.py");
        run_json(&tool("python"), &script, &self.url, args, &self.log())
    }
}

fn run_json(python: &Path, script: &Path, url: &str, args: &[&str], log: &str) -> Value {
    let out = Command::new(python)
        .arg(script)
        .arg(url)
        .args(args)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{}\nmlflow server log:\n{log}",
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
