//! moto's server, standing in for AWS's APIs. `AWS_ENDPOINT_URL` names a running one (CI
//! starts it); otherwise the first test that needs one starts it, and it stops when the test
//! process ends. Either way it runs through `tests/moto_server.py`, which takes DynamoDB's
//! requests one at a time so that conditional writes are atomic, as they are on DynamoDB.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

static STARTED: OnceLock<String> = OnceLock::new();

/// The endpoint of moto's server.
pub fn endpoint() -> String {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => STARTED.get_or_init(start).clone(),
    }
}

fn start() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = root.join(".venv/bin/python");
    let python = if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".to_string()
    };
    let server = root.join("tests/moto_server.py").display().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // The shell stops moto when this process's end closes its stdin.
    let script = format!(
        "\"{python}\" \"{server}\" -H 127.0.0.1 -p {port} >/dev/null 2>&1 & m=$!; cat >/dev/null; kill $m"
    );
    let child = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .spawn()
        .expect("start moto's server through sh");
    // Keep its stdin open for the life of the process.
    std::mem::forget(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto's server (tests/moto_server.py) did not start; install moto with: python3 -m venv .venv && .venv/bin/pip install 'moto[server]'"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// An SDK configuration for moto: its endpoint, a region, and dummy credentials.
pub async fn sdk_config() -> SdkConfig {
    sdk_config_at(&endpoint()).await
}

/// An SDK configuration for an endpoint that stands in for AWS (moto, or a proxy before it).
pub async fn sdk_config_at(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "moto",
        ))
        .load()
        .await
}

/// Creates an SQS queue named `name` (visibility timeout `visibility`) whose messages move
/// to the dead-letter queue `{name}-dlq` after `max_receives`; returns both URLs.
pub async fn queue_with_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility: Duration,
    max_receives: u32,
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await
        .expect("create the DLQ");
    let dlq_url = dlq.queue_url().expect("DLQ url").to_string();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&dlq_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("DLQ attributes");
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .expect("DLQ arn");
    let redrive =
        format!(r#"{{"deadLetterTargetArn":"{arn}","maxReceiveCount":"{max_receives}"}}"#);
    let main = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility.as_secs().to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .send()
        .await
        .expect("create the queue");
    (main.queue_url().expect("queue url").to_string(), dlq_url)
}

/// Writes items of the store's table around the store (see `shared::conformance::Tamper`).
pub struct DynamoTamper {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

#[async_trait::async_trait]
impl shared::conformance::Tamper for DynamoTamper {
    async fn overwrite_body(&self, kind: &str, team: &str, id: &str, body: &str) {
        use aws_sdk_dynamodb::types::AttributeValue;
        use shared::adapters::aws::dynamodb::{BODY, PARTITION_KEY, SORT_KEY};
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PARTITION_KEY, AttributeValue::S(format!("TEAM#{team}")))
            .key(
                SORT_KEY,
                AttributeValue::S(format!("{}#{id}", kind.to_ascii_uppercase())),
            )
            .update_expression("SET #b = :b")
            .condition_expression("attribute_exists(#b)")
            .expression_attribute_names("#b", BODY)
            .expression_attribute_values(":b", AttributeValue::S(body.to_string()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("overwrite {kind} {team}/{id}: {e:?}"));
    }
}
