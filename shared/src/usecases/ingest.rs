//! Ingest: validate events, give them ids, drop the ones already seen, queue the rest.
//! Answers only after the events are durably queued.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

use super::{Engine, Error, Result};
use crate::domain::event::{Event, EventInput, MAX_BATCH};
use crate::domain::ids::new_id;
use crate::domain::{Invalid, from_json};

/// How long an event id is remembered for de-duplication.
pub const DEDUP_WINDOW: Duration = Duration::days(7);

#[derive(Debug, Serialize)]
pub struct IngestReport {
    /// Ids of the events queued now.
    pub accepted: Vec<String>,
    /// Ids sent before (or twice in this request): accepted once, not queued again.
    pub duplicates: Vec<String>,
}

/// Parses one event or `{"events": [...]}` received at `now`; nothing of a batch with an
/// invalid event is kept.
pub fn parse_events(team: &str, body: Value, now: OffsetDateTime) -> Result<Vec<Event>, Invalid> {
    let parse_one = |value: Value, prefix: &str| -> Result<Event, Invalid> {
        let input: EventInput = from_json(value).map_err(|e| e.within(prefix))?;
        input
            .validate(team, new_id(), now)
            .map_err(|e| e.within(prefix))
    };
    match body {
        Value::Object(mut map) if map.contains_key("events") => {
            if map.len() > 1 {
                return Err(Invalid::new(
                    "",
                    "a batch is {\"events\": [...]} with no other fields",
                ));
            }
            let Some(Value::Array(items)) = map.remove("events") else {
                return Err(Invalid::new("events", "must be an array of events"));
            };
            if items.is_empty() || items.len() > MAX_BATCH {
                return Err(Invalid::new(
                    "events",
                    format!("must hold 1 to {MAX_BATCH} events, got {}", items.len()),
                ));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| parse_one(item, &format!("events[{i}]")))
                .collect()
        }
        value @ Value::Object(_) => parse_one(value, "").map(|e| vec![e]),
        _ => Err(Invalid::new(
            "",
            "the body must be an event object or {\"events\": [...]}",
        )),
    }
}

/// Queues the events that were not seen before and remembers their ids.
pub async fn ingest(engine: &Engine, team: &str, events: Vec<Event>) -> Result<IngestReport> {
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let seen = engine.store.seen_events(team, &ids).await?;
    let mut fresh = Vec::with_capacity(events.len());
    let mut in_request = HashSet::new();
    let mut duplicates = Vec::new();
    for event in events {
        if seen.contains(&event.id) || !in_request.insert(event.id.clone()) {
            duplicates.push(event.id);
        } else {
            fresh.push(event);
        }
    }
    let bodies = fresh
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Queue(crate::ports::QueueError(e.to_string())))?;
    // Queue first, then remember: a crash in between re-queues on the client's retry, and
    // evaluation's deterministic execution ids keep that from firing twice.
    if !bodies.is_empty() {
        engine.events.send_batch(&bodies).await?;
    }
    let accepted: Vec<String> = fresh.into_iter().map(|e| e.id).collect();
    if !accepted.is_empty() {
        engine
            .store
            .record_events(team, &accepted, engine.clock.now() + DEDUP_WINDOW)
            .await?;
    }
    Ok(IngestReport {
        accepted,
        duplicates,
    })
}
