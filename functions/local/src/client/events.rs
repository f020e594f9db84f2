//! `automations events send`: events from a file or stdin (one JSON event, a JSON array,
//! `{"events": [...]}`, or NDJSON), sent in batches of up to 1,000.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Failure, Outcome};

/// Events per request: the most the events route takes.
const BATCH: usize = 1000;
/// Bytes per request, below the server's 1 MiB body limit with room for the wrapper.
const BATCH_BYTES: usize = 900 * 1024;
/// How often a request the server could not take now (429, 503) is sent again.
const TRIES: u32 = 6;

/// One event to send, with where it was in the input (1-based).
struct Pending {
    position: usize,
    event: Value,
    bytes: usize,
}

#[derive(Default)]
struct Summary {
    accepted: usize,
    duplicates: usize,
    refused: Vec<(usize, String)>,
}

pub async fn send(client: &Client, source: Option<&Path>) -> Outcome {
    let text = read_input(source)?;
    let events = parse(&text)?;
    if events.is_empty() {
        return Err(Failure::Usage("no events in the input".into()));
    }
    let bar = progress(events.len());
    let mut summary = Summary::default();
    for batch in batches(events) {
        send_batch(client, batch, &mut summary, &bar).await?;
    }
    bar.finish_and_clear();
    report(client, &summary);
    if summary.refused.is_empty() {
        Ok(())
    } else {
        Err(Failure::Refused(format!(
            "the server refused {} event{}",
            summary.refused.len(),
            if summary.refused.len() == 1 { "" } else { "s" }
        )))
    }
}

fn read_input(source: Option<&Path>) -> Outcome<String> {
    match source {
        Some(path) if path != Path::new("-") => std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("{}: {e}", path.display()))),
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure::Usage(format!("stdin: {e}")))?;
            Ok(text)
        }
    }
}

/// The events of the input: a stream of JSON values, each an event, an array of events, or
/// `{"events": [...]}`. A value that does not parse is named by its line.
fn parse(text: &str) -> Outcome<Vec<Pending>> {
    let mut events = Vec::new();
    let mut push = |event: Value| {
        let bytes = event.to_string().len();
        events.push(Pending {
            position: events.len() + 1,
            event,
            bytes,
        });
    };
    for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
        let value = value.map_err(|e| {
            Failure::Usage(format!(
                "the input is not JSON, a JSON array or NDJSON: line {}, column {}: {e}",
                e.line(),
                e.column()
            ))
        })?;
        match value {
            Value::Array(items) => items.into_iter().for_each(&mut push),
            Value::Object(mut map) if map.len() == 1 && map.contains_key("events") => {
                match map.remove("events") {
                    Some(Value::Array(items)) => items.into_iter().for_each(&mut push),
                    _ => return Err(Failure::Usage("\"events\" must be an array".into())),
                }
            }
            other => push(other),
        }
    }
    Ok(events)
}

/// Consecutive runs of at most [`BATCH`] events and [`BATCH_BYTES`] bytes.
fn batches(events: Vec<Pending>) -> Vec<Vec<Pending>> {
    let mut out: Vec<Vec<Pending>> = Vec::new();
    let mut bytes = 0;
    for event in events {
        let full = out
            .last()
            .is_none_or(|b| b.len() >= BATCH || bytes + event.bytes > BATCH_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += event.bytes + 1;
        if let Some(batch) = out.last_mut() {
            batch.push(event);
        }
    }
    out
}

fn progress(total: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// Sends one batch. An event the server refuses (a 400 naming `events[i]`) is set aside
/// with the reason and the rest sent again, so one bad event fails only itself; a 429 or a
/// 503 is waited out and sent again.
async fn send_batch(
    client: &Client,
    mut batch: Vec<Pending>,
    summary: &mut Summary,
    bar: &ProgressBar,
) -> Outcome {
    let path = client.team_path("events");
    let mut tries = 0;
    while !batch.is_empty() {
        let events: Vec<&Value> = batch.iter().map(|p| &p.event).collect();
        let answer = client
            .call(Method::POST, &path, Some(&json!({ "events": events })))
            .await?;
        if answer.ok() {
            let count = |key: &str| answer.body[key].as_array().map_or(0, Vec::len);
            summary.accepted += count("accepted");
            summary.duplicates += count("duplicates");
            bar.inc(batch.len() as u64);
            return Ok(());
        }
        if answer.status == 400
            && let Some(i) = refused_index(&answer.body)
            && i < batch.len()
        {
            let bad = batch.remove(i);
            let message = answer.body["error"]["message"].as_str().unwrap_or_default();
            let reason = message
                .strip_prefix(&format!("events[{i}]"))
                .map_or_else(|| message.to_string(), |rest| format!("event{rest}"));
            summary.refused.push((bad.position, reason));
            bar.inc(1);
            continue;
        }
        if matches!(answer.status, 429 | 503) && tries < TRIES {
            tries += 1;
            let wait = answer.retry_after.unwrap_or(1).clamp(1, 60);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        return Err(Failure::Refused(answer.refusal()));
    }
    Ok(())
}

/// `i` of a refusal whose field is `events[i]…`.
fn refused_index(body: &Value) -> Option<usize> {
    let field = body["error"]["field"].as_str()?;
    let rest = field.strip_prefix("events[")?;
    rest[..rest.find(']')?].parse().ok()
}

fn report(client: &Client, summary: &Summary) {
    let refused: Vec<Value> = summary
        .refused
        .iter()
        .map(|(position, reason)| json!({"position": position, "reason": reason}))
        .collect();
    let value = json!({
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "refused": refused,
    });
    client.print(&value, |_| {
        println!(
            "{} accepted, {} duplicate, {} refused",
            summary.accepted,
            summary.duplicates,
            summary.refused.len()
        );
        for (position, reason) in &summary.refused {
            println!("  event {position}: {reason}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_arrays_and_batches_read_alike() {
        let ndjson = "{\"a\":1}\n{\"a\":2}\n";
        let array = "[{\"a\":1},{\"a\":2}]";
        let batch = "{\"events\":[{\"a\":1},{\"a\":2}]}";
        for text in [ndjson, array, batch] {
            let events = parse(text).unwrap();
            let positions: Vec<usize> = events.iter().map(|e| e.position).collect();
            assert_eq!(positions, [1, 2], "{text}");
            assert_eq!(events[1].event, json!({"a": 2}));
        }
        let Err(Failure::Usage(message)) = parse("{\"a\":1}\n{\"a\":") else {
            panic!("a cut line is a usage error");
        };
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn batches_hold_at_most_a_thousand_events() {
        let events = (0..2500)
            .map(|i| Pending {
                position: i + 1,
                event: json!({}),
                bytes: 2,
            })
            .collect();
        let sizes: Vec<usize> = batches(events).iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
    }

    #[test]
    fn a_refusal_names_the_event_by_its_index() {
        let body = json!({"error": {"field": "events[17].artifact.version"}});
        assert_eq!(refused_index(&body), Some(17));
        assert_eq!(refused_index(&json!({"error": {"field": "events"}})), None);
    }
}
