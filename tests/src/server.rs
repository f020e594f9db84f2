//! Starts, kills and restarts the `automations` binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// The operator key every test server uses.
pub const OPERATOR_KEY: &str = "test-operator-key-0123456789abcdef-0123";

/// Where the `automations` binary is: `AUTOMATIONS_BIN`, else beside the test executable's
/// target directory (`cargo test --workspace` builds it).
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("AUTOMATIONS_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let mut dir = exe.parent().expect("deps dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("automations");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p automations-local`",
        bin.display()
    );
    bin
}

#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub retry_schedule: String,
    pub allow_networks: String,
    pub binary: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            retry_schedule: "1,1,1".into(),
            allow_networks: "127.0.0.0/8".into(),
            binary: binary(),
            extra_env: Vec::new(),
        }
    }
}

/// A running `automations serve` with its own data directory.
pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    options: ServerOptions,
    _dir: Option<tempfile::TempDir>,
    port: u16,
}

impl Server {
    pub fn start(options: ServerOptions) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let (child, port) = spawn(&options, &data_dir, 0);
        Server {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            data_dir,
            options,
            _dir: Some(dir),
            port,
        }
    }

    pub fn api(&self) -> Api {
        Api::new(&self.base, OPERATOR_KEY)
    }

    /// SIGKILL: no shutdown of any kind.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("wait");
        }
    }

    /// SIGTERM and wait for the process to exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        child.wait().expect("wait").success()
    }

    /// Starts the binary again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill();
        let (child, _) = spawn(&self.options, &self.data_dir, self.port);
        self.child = Some(child);
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.with_file_name("server.log")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(options: &ServerOptions, data_dir: &Path, port: u16) -> (Child, u16) {
    let log_path = data_dir.with_file_name("server.log");
    let mut command = Command::new(&options.binary);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env("AUTOMATIONS_OPERATOR_KEY", OPERATOR_KEY)
        .env("AUTOMATIONS_RETRY_SCHEDULE", &options.retry_schedule)
        .env("AUTOMATIONS_ALLOW_NETWORKS", &options.allow_networks)
        .env(
            "RUST_LOG",
            std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(options.extra_env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", options.binary.display()));
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .ok();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(log) = log.as_mut() {
                use std::io::Write;
                let _ignored = writeln!(log, "{line}");
            }
            if let Some(address) = line.split("address=").nth(1) {
                let _ignored = tx.send(
                    address
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "automations did not start; see {}",
                data_dir.with_file_name("server.log").display()
            )
        });
    let port = address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in the address line");
    (child, port)
}

/// A small client of the API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            base: base.to_string(),
            key: key.to_string(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client"),
        }
    }

    /// Sends a request; returns the status and the body as it came over the wire.
    pub async fn call_raw(&self, method: &str, path: &str, body: Option<Value>) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Sends a request; returns the status and the JSON body (`Null` when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let (status, text) = self.call_raw(method, path, body).await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// The names of a team's automations, as listed.
    pub async fn automation_names(&self, team: &str) -> Vec<String> {
        let listed = self
            .expect(200, "GET", &format!("/v1/teams/{team}/automations"), None)
            .await;
        listed["automations"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|a| a["name"].as_str().expect("a name").to_string())
            .collect()
    }

    /// Like `call`, but panics unless the status is `expected`.
    pub async fn expect(
        &self,
        expected: u16,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let (status, value) = self.call(method, path, body).await;
        assert_eq!(
            status, expected,
            "{method} {path} answered {status}: {value}"
        );
        value
    }

    /// The same client with another key.
    pub fn with_key(&self, key: &str) -> Api {
        Api {
            key: key.to_string(),
            ..self.clone()
        }
    }

    /// Grants a key of `role` in `team` to `user`; returns its id and the key.
    pub async fn grant_key(&self, team: &str, user: &str, role: &str) -> (String, String) {
        let granted = self
            .expect(
                201,
                "POST",
                &format!("/v1/teams/{team}/api-keys"),
                Some(json!({"user": user, "role": role})),
            )
            .await;
        (
            granted["id"].as_str().expect("id").to_string(),
            granted["key"].as_str().expect("key").to_string(),
        )
    }

    pub async fn create_team(&self, team: &str) {
        self.expect(201, "POST", "/v1/teams", Some(json!({ "name": team })))
            .await;
    }

    pub async fn put_secret(&self, team: &str, name: &str, value: &str) {
        self.expect(
            200,
            "PUT",
            &format!("/v1/teams/{team}/secrets/{name}"),
            Some(json!({ "value": value })),
        )
        .await;
    }

    /// Creates a webhook integration and returns its id.
    pub async fn webhook(&self, team: &str, body: Value) -> String {
        let v = self
            .expect(
                201,
                "POST",
                &format!("/v1/teams/{team}/integrations"),
                Some(body),
            )
            .await;
        v["id"].as_str().expect("id").to_string()
    }

    /// Creates an automation and returns its id.
    pub async fn automation(&self, team: &str, body: Value) -> String {
        let v = self
            .expect(
                201,
                "POST",
                &format!("/v1/teams/{team}/automations"),
                Some(body),
            )
            .await;
        v["id"].as_str().expect("id").to_string()
    }

    pub async fn events(&self, team: &str, body: Value) -> Value {
        self.expect(202, "POST", &format!("/v1/teams/{team}/events"), Some(body))
            .await
    }

    pub async fn executions(&self, team: &str, automation: &str) -> Vec<Value> {
        let v = self
            .expect(
                200,
                "GET",
                &format!("/v1/teams/{team}/automations/{automation}/executions?limit=200"),
                None,
            )
            .await;
        v["executions"].as_array().cloned().unwrap_or_default()
    }

    /// Polls until `done` holds for the automation's executions (up to `timeout`).
    pub async fn wait_executions(
        &self,
        team: &str,
        automation: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let list = self.executions(team, automation).await;
            if done(&list) || tokio::time::Instant::now() > deadline {
                return list;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
