//! `automations executions list|show|retry`.

use reqwest::Method;
use serde_json::Value;

use super::{Client, Failure, Outcome, Table, short};

/// The executions of one automation (by name), or of every automation of the team, newest
/// first, at most `limit`, of one status if asked.
pub async fn list(
    client: &Client,
    automation: Option<&str>,
    status: Option<&str>,
    limit: usize,
) -> Outcome {
    let status = status.map(str::to_ascii_uppercase);
    if let Some(s) = &status
        && !["PENDING", "FINISHED", "FAILED"].contains(&s.as_str())
    {
        return Err(Failure::Usage(format!(
            "--status {s}: one of PENDING, FINISHED, FAILED"
        )));
    }
    let executions = match automation {
        // One automation's listing has no status filter: it is applied here.
        Some(name) => {
            let id = automation_id(client, name).await?;
            let path = client.team_path(&format!("automations/{id}/executions?limit=200"));
            page_through(client, &path, status.as_deref(), limit).await?
        }
        // The team's listing filters on the server, from an index.
        None => {
            let mut path = client.team_path("executions?limit=200");
            if let Some(s) = &status {
                path.push_str(&format!("&status={s}"));
            }
            page_through(client, &path, None, limit).await?
        }
    };
    let value = serde_json::json!({ "executions": executions });
    client.print(&value, |_| {
        let mut table = Table::new(&[
            "ID",
            "AUTOMATION",
            "STATUS",
            "TRIGGERED",
            "EVENT",
            "LAST ANSWER",
        ]);
        for e in &executions {
            table.row(vec![
                short(&e["id"], 26),
                short(&e["automation_name"], 32),
                short(&e["status"], 8),
                short(&e["triggered_at"], 24),
                short(&e["event"]["event_type"], 24),
                last_answer(e),
            ]);
        }
        if table.is_empty() {
            println!("no executions");
        } else {
            table.print();
        }
    });
    Ok(())
}

/// The id of the team's automation `name`.
async fn automation_id(client: &Client, name: &str) -> Outcome<String> {
    let listing = client
        .expect(Method::GET, &client.team_path("automations"), None)
        .await?;
    listing["automations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == name)
        .and_then(|a| a["id"].as_str())
        .map(str::to_string)
        .ok_or_else(|| {
            Failure::Refused(format!(
                "team {} has no automation named {name}",
                client.team
            ))
        })
}

/// The newest executions of a listing at `path` (of `status`, if given), up to `limit`,
/// page by page.
async fn page_through(
    client: &Client,
    path: &str,
    status: Option<&str>,
    limit: usize,
) -> Outcome<Vec<Value>> {
    let mut found = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut page_path = path.to_string();
        if let Some(cursor) = &before {
            page_path.push_str(&format!("&before={cursor}"));
        }
        let page = client.expect(Method::GET, &page_path, None).await?;
        for e in page["executions"].as_array().into_iter().flatten() {
            if status.is_none_or(|s| e["status"] == s) && found.len() < limit {
                found.push(e.clone());
            }
        }
        before = page["next_before"].as_str().map(str::to_string);
        if found.len() >= limit || before.is_none() {
            return Ok(found);
        }
    }
}

/// The last attempt's status code, or its error.
fn last_answer(execution: &Value) -> String {
    let Some(last) = execution["attempts"].as_array().and_then(|a| a.last()) else {
        return String::new();
    };
    if last["status_code"].is_number() {
        short(&last["status_code"], 3)
    } else {
        short(&last["error"], 40)
    }
}

pub async fn show(client: &Client, id: &str) -> Outcome {
    let execution = client
        .expect(
            Method::GET,
            &client.team_path(&format!("executions/{id}")),
            None,
        )
        .await?;
    client.print(&execution, |e| {
        let mut fields = Table::new(&["FIELD", "VALUE"]);
        for (label, value) in [
            ("id", &e["id"]),
            ("automation", &e["automation_name"]),
            ("status", &e["status"]),
            ("triggered at", &e["triggered_at"]),
            ("event", &e["event"]),
            ("action", &e["action"]),
            ("result", &e["result"]),
        ] {
            fields.row(vec![label.to_string(), short(value, 200)]);
        }
        fields.print();
        let mut attempts = Table::new(&["ATTEMPT AT", "STATUS", "DURATION MS", "ERROR"]);
        for a in e["attempts"].as_array().into_iter().flatten() {
            attempts.row(vec![
                short(&a["at"], 30),
                short(&a["status_code"], 3),
                short(&a["duration_ms"], 10),
                short(&a["error"], 80),
            ]);
        }
        if !attempts.is_empty() {
            println!();
            attempts.print();
        }
    });
    Ok(())
}

pub async fn retry(client: &Client, id: &str) -> Outcome {
    let path = client.team_path(&format!("executions/{id}/retry"));
    let execution = client.expect(Method::POST, &path, None).await?;
    client.print(&execution, |e| {
        println!(
            "execution {} of {} is sent again (status {})",
            short(&e["id"], 26),
            short(&e["automation_name"], 64),
            short(&e["status"], 8)
        );
    });
    Ok(())
}
