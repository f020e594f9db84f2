#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
//! The signature verification snippets of docs/delivery.md, `docs/verify/verify_signature.py`
//! and `docs/verify/verify_signature.mjs`, run as their users run them (`python3` and
//! `node` from PATH) on real deliveries of `automations serve`: they accept a genuine
//! delivery, signed with a `whsec_` secret or a plain one, and refuse it once its body, its
//! id or its signature is changed, or when its timestamp is older than 5 minutes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use automations_tests::{Delivery, Receiver, Server, ServerOptions};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(20);
const WHSEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PLAIN_SECRET: &str = "a-plain-signing-secret-of-the-team";

/// The two scripts: the interpreter and the script's path.
fn scripts() -> [(&'static str, PathBuf); 2] {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("docs/verify");
    [
        ("python3", docs.join("verify_signature.py")),
        ("node", docs.join("verify_signature.mjs")),
    ]
}

/// The headers the scripts take, as `name: value` arguments.
struct Headers {
    id: String,
    timestamp: String,
    signature: String,
    wandb: String,
}

impl Headers {
    fn of(d: &Delivery) -> Headers {
        let header = |name: &str| {
            d.header(name)
                .unwrap_or_else(|| panic!("the delivery has no {name}: {:?}", d.headers))
                .to_string()
        };
        Headers {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            wandb: header("x-wandb-signature"),
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            format!("webhook-id: {}", self.id),
            format!("Webhook-Timestamp: {}", self.timestamp),
            format!("webhook-signature: {}", self.signature),
            format!("X-Wandb-Signature: {}", self.wandb),
        ]
    }
}

/// Runs each script on `body` and `headers` with `secret`; returns (script, exit code,
/// what it printed).
fn verify(secret: &str, body: &[u8], headers: &Headers) -> Vec<(String, i32, String)> {
    let dir = tempfile::tempdir().unwrap();
    let body_file = dir.path().join("body.json");
    std::fs::write(&body_file, body).unwrap();
    scripts()
        .into_iter()
        .map(|(interpreter, script)| {
            let output = Command::new(interpreter)
                .arg(&script)
                .arg(&body_file)
                .args(headers.args())
                .env("SIGNING_SECRET", secret)
                .output()
                .unwrap_or_else(|e| panic!("run {interpreter} (is it on PATH?): {e}"));
            let printed = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            (
                script.display().to_string(),
                output.status.code().unwrap_or(-1),
                printed,
            )
        })
        .collect()
}

fn assert_exit(results: &[(String, i32, String)], code: i32, case: &str) {
    for (script, got, printed) in results {
        assert_eq!(*got, code, "{script} on {case}: exit {got}: {printed}");
    }
}

fn hmac_b64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The Standard Webhooks key of a secret: the base64 after `whsec_`, else its bytes.
fn standard_key(secret: &str) -> Vec<u8> {
    match secret.strip_prefix("whsec_") {
        Some(encoded) => STANDARD.decode(encoded).unwrap(),
        None => secret.as_bytes().to_vec(),
    }
}

/// Checks both scripts on a genuine delivery signed with `secret`, and on tampered copies.
fn check_both_scripts(secret: &str, d: &Delivery) {
    let genuine = Headers::of(d);

    // A genuine delivery is accepted.
    assert_exit(&verify(secret, &d.body, &genuine), 0, "a genuine delivery");

    // A body changed by one byte is refused.
    let mut body = d.body.to_vec();
    let last = body.len() - 2;
    body[last] ^= 0x01;
    assert_exit(&verify(secret, &body, &genuine), 1, "a tampered body");

    // Another webhook-id is refused (the Standard Webhooks signature covers it).
    let other_id = Headers {
        id: format!("{}x", genuine.id),
        ..Headers::of(d)
    };
    assert_exit(
        &verify(secret, &d.body, &other_id),
        1,
        "a changed webhook-id",
    );

    // A wrong X-Wandb-Signature is refused, even with a valid webhook-signature.
    let wrong_wandb = Headers {
        wandb: hmac_b64(b"another secret", &d.body),
        ..Headers::of(d)
    };
    assert_exit(
        &verify(secret, &d.body, &wrong_wandb),
        1,
        "a wrong x-wandb-signature",
    );

    // A delivery signed correctly but 10 minutes ago is refused (a replay).
    let old = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 600;
    let signed = [
        genuine.id.as_bytes(),
        b".",
        old.to_string().as_bytes(),
        b".",
        &d.body,
    ]
    .concat();
    let replayed = Headers {
        timestamp: old.to_string(),
        signature: format!("v1,{}", hmac_b64(&standard_key(secret), &signed)),
        ..Headers::of(d)
    };
    assert_exit(
        &verify(secret, &d.body, &replayed),
        1,
        "a timestamp 10 minutes old",
    );

    // The same re-signing with the current timestamp is accepted: only the age refused it.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = [
        genuine.id.as_bytes(),
        b".",
        now.to_string().as_bytes(),
        b".",
        &d.body,
    ]
    .concat();
    let fresh = Headers {
        timestamp: now.to_string(),
        signature: format!("v1,{}", hmac_b64(&standard_key(secret), &signed)),
        ..Headers::of(d)
    };
    assert_exit(&verify(secret, &d.body, &fresh), 0, "a fresh re-signing");
}

#[tokio::test]
async fn the_verification_snippets_accept_real_deliveries_and_refuse_tampered_ones() {
    // GIVEN a server, a receiver, two webhook integrations to it (one signing with a
    // whsec_ secret, one with a plain secret) and an automation on each
    let server = Server::start(ServerOptions::default());
    let receiver = Receiver::start().await;
    let api = server.api();
    api.create_team("acme").await;
    api.put_secret("acme", "WHSEC_SIGNING", WHSEC_SECRET).await;
    api.put_secret("acme", "PLAIN_SIGNING", PLAIN_SECRET).await;
    for (name, secret) in [("whsec", "WHSEC_SIGNING"), ("plain", "PLAIN_SIGNING")] {
        let integration = api
            .webhook(
                "acme",
                json!({"type": "webhook", "name": name, "url": receiver.url, "signing_secret": secret}),
            )
            .await;
        api.automation(
            "acme",
            json!({"name": format!("deploy-{name}"),
                   "scope": {"type": "registry", "name": "model"},
                   "event": {"type": "ADD_ARTIFACT_ALIAS"},
                   "action": {"type": "webhook", "integration": integration,
                              "payload": {"via": name, "version": "${artifact_version_string}"}}}),
        )
        .await;
    }

    // WHEN an event fires both
    api.events(
        "acme",
        json!({"id": "evt-1", "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
               "artifact": {"collection": "resnet", "version": "v4", "alias": "production"}}),
    )
    .await;
    let deliveries = receiver.wait_for(2, WAIT).await;
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");

    // THEN both scripts accept each delivery with its secret, and refuse tampered copies
    for d in &deliveries {
        let secret = match d.json()["via"].as_str().unwrap() {
            "whsec" => WHSEC_SECRET,
            _ => PLAIN_SECRET,
        };
        check_both_scripts(secret, d);
        // AND a delivery checked with the other secret is refused
        let other = if secret == WHSEC_SECRET {
            PLAIN_SECRET
        } else {
            WHSEC_SECRET
        };
        assert_exit(
            &verify(other, &d.body, &Headers::of(d)),
            1,
            "another secret",
        );
    }
}
