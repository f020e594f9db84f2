//! `automations integrations test` and `automations secrets set`.

use std::io::{IsTerminal, Read};

use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Failure, Outcome, short};

/// Sends one real request through the integration named `name`; a receiver that does not
/// accept it fails the command.
pub async fn test(client: &Client, name: &str, payload: Option<&str>) -> Outcome {
    let payload = payload
        .map(|text| {
            serde_json::from_str::<Value>(text)
                .map_err(|e| Failure::Usage(format!("--payload is not JSON: {e}")))
        })
        .transpose()?;
    let id = client.id_of("integrations", name).await?;
    let body = match payload {
        Some(payload) => json!({ "payload": payload }),
        None => Value::Null,
    };
    let path = client.team_path(&format!("integrations/{id}/test"));
    let answer = client
        .expect(Method::POST, &path, (!body.is_null()).then_some(&body))
        .await?;
    client.print(&answer, |a| {
        let verdict = if a["ok"] == true { "ok" } else { "failed" };
        let status = if a["status"].is_null() {
            "no answer".to_string()
        } else {
            format!("status {}", short(&a["status"], 3))
        };
        println!("{name}: {verdict}, {status}");
        if !a["error"].is_null() {
            println!("error: {}", short(&a["error"], 400));
        }
        if !a["body"].is_null() {
            println!("body: {}", short(&a["body"], 400));
        }
    });
    if answer["ok"] == true {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "the receiver of integration {name} did not accept the test"
        )))
    }
}

/// Sets a team secret from stdin (never from the command line, where it would stay in the
/// shell's history and the process list). One trailing newline is dropped.
pub async fn set_secret(client: &Client, name: &str) -> Outcome {
    if std::io::stdin().is_terminal() {
        eprintln!("Type the value of {name}, then Enter and Ctrl-D:");
    }
    let mut value = String::new();
    std::io::stdin()
        .read_to_string(&mut value)
        .map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
    let value = value
        .strip_suffix("\r\n")
        .or_else(|| value.strip_suffix('\n'))
        .unwrap_or(&value);
    if value.is_empty() {
        return Err(Failure::Usage(format!(
            "the value of {name} is empty; pipe it on stdin, e.g. printf %s \"$TOKEN\" | automations secrets set {name}"
        )));
    }
    let path = client.team_path(&format!("secrets/{name}"));
    let answer = client
        .expect(Method::PUT, &path, Some(&json!({ "value": value })))
        .await?;
    client.print(&answer, |_| println!("secret {name} set"));
    Ok(())
}
