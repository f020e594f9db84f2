//! What evaluation made of an event: the executions it created and, for each automation of
//! its scope and type that did not fire, why. Kept as long as the event's id is remembered
//! for de-duplication, so that "why did (or didn't) it fire?" has an answer.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::automation::Mismatch;
use super::event::{Event, ScopeKind, format_millis};

/// The most automations a record names; the others are counted in `omitted`. With the
/// largest event (64 KiB) and messages of a few hundred bytes a record stays far below a
/// DynamoDB item (400 KB).
pub const MAX_RECORDED_AUTOMATIONS: usize = 100;

/// An automation that fired on the event, with the execution it created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    pub automation_id: String,
    pub automation_name: String,
    pub execution_id: String,
}

/// An automation of the event's scope and type that did not fire, and why: `reason` is
/// `disabled`, `filter`, `states`, `metric` (its rule did not fire on this value) or
/// `cooldown`; `field` the event's field that decided, where one did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotFired {
    pub automation_id: String,
    pub automation_name: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl NotFired {
    pub fn new(automation_id: &str, automation_name: &str, why: Mismatch) -> Self {
        Self {
            automation_id: automation_id.to_string(),
            automation_name: automation_name.to_string(),
            reason: why.reason.to_string(),
            field: why.field,
            message: why.message,
        }
    }
}

/// An evaluated event, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub event: Event,
    pub evaluated_at_ms: i64,
    pub fired: Vec<Fired>,
    pub not_fired: Vec<NotFired>,
    /// Automations left out of `fired` and `not_fired` past [`MAX_RECORDED_AUTOMATIONS`].
    #[serde(default)]
    pub omitted: usize,
}

impl EventRecord {
    /// The record of `event`, keeping at most [`MAX_RECORDED_AUTOMATIONS`] automations
    /// (those that fired first).
    pub fn new(
        event: Event,
        evaluated_at_ms: i64,
        mut fired: Vec<Fired>,
        mut not_fired: Vec<NotFired>,
    ) -> Self {
        let total = fired.len() + not_fired.len();
        fired.sort_by(|a, b| a.automation_name.cmp(&b.automation_name));
        not_fired.sort_by(|a, b| a.automation_name.cmp(&b.automation_name));
        fired.truncate(MAX_RECORDED_AUTOMATIONS);
        not_fired.truncate(MAX_RECORDED_AUTOMATIONS - fired.len());
        let omitted = total - fired.len() - not_fired.len();
        Self {
            event,
            evaluated_at_ms,
            fired,
            not_fired,
            omitted,
        }
    }

    pub fn id(&self) -> &str {
        &self.event.id
    }

    /// The record as the API shows it: the event as its producer sent it (with the time it
    /// was received) and its evaluation.
    pub fn public_view(&self) -> Value {
        let e = &self.event;
        let mut event = json!({
            "id": e.id,
            "event_type": e.event_type.as_str(),
            "author": e.author,
            "timestamp": e.timestamp,
            "received_at": format_millis(e.received_at_ms),
        });
        let scope = match e.scope {
            ScopeKind::Project => "project",
            ScopeKind::Registry => "registry",
        };
        event[scope] = json!(e.scope_name);
        if let Some(artifact) = &e.artifact {
            event["artifact"] = json!(artifact);
        }
        if let Some(run) = &e.run {
            event["run"] = json!(run);
        }
        if let Some(step) = e.step {
            event["step"] = json!(step);
        }
        if let Some(metrics) = &e.metrics {
            event["metrics"] = json!(metrics);
        }
        json!({
            "id": e.id,
            "event": event,
            "evaluation": {
                "evaluated_at": format_millis(self.evaluated_at_ms),
                "fired": self.fired,
                "not_fired": self.not_fired,
                "omitted": self.omitted,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::EventInput;

    fn event() -> Event {
        let input: EventInput = serde_json::from_value(json!({
            "event_type": "ADD_ARTIFACT_ALIAS", "registry": "model",
            "artifact": {"collection": "resnet", "version": "v4", "alias": "staging"}
        }))
        .unwrap();
        input
            .validate("acme", "e-1".into(), time::OffsetDateTime::UNIX_EPOCH)
            .unwrap()
    }

    fn not_fired(name: &str) -> NotFired {
        NotFired::new(
            name,
            name,
            Mismatch::new("filter", Some("alias".into()), "no"),
        )
    }

    #[test]
    fn a_record_keeps_the_fired_first_and_counts_what_it_leaves_out() {
        let fired: Vec<Fired> = (0..30)
            .map(|i| Fired {
                automation_id: format!("a{i}"),
                automation_name: format!("f{i:03}"),
                execution_id: format!("x{i}"),
            })
            .collect();
        let skipped = (0..90).map(|i| not_fired(&format!("n{i:03}"))).collect();
        let record = EventRecord::new(event(), 5, fired, skipped);
        assert_eq!(record.fired.len(), 30);
        assert_eq!(record.not_fired.len(), 70);
        assert_eq!(record.omitted, 20);
        assert_eq!(record.not_fired[0].automation_name, "n000");
    }

    #[test]
    fn the_view_shows_the_event_as_sent_and_its_reasons() {
        let record = EventRecord::new(event(), 1_000, vec![], vec![not_fired("deploy")]);
        let view = record.public_view();
        assert_eq!(view["id"], "e-1");
        assert_eq!(view["event"]["registry"], "model");
        assert_eq!(view["event"]["artifact"]["alias"], "staging");
        assert_eq!(view["event"]["received_at"], "1970-01-01T00:00:00Z");
        assert_eq!(view["evaluation"]["not_fired"][0]["field"], "alias");
        assert_eq!(view["evaluation"]["fired"], json!([]));
        let back: EventRecord = serde_json::from_str(&serde_json::to_string(&record).unwrap())
            .expect("a record reads back");
        assert_eq!(back, record);
    }
}
