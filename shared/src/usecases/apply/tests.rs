use serde_json::json;

use super::*;
use crate::domain::automation::{Action, Scope, Trigger};

fn queue(name: &str) -> JobQueue {
    JobQueue {
        team: "acme".into(),
        name: name.into(),
        created_at: "2026-12-01T00:00:00Z".into(),
    }
}

fn integration(name: &str, url: &str) -> Integration {
    Integration {
        id: format!("id-{name}"),
        team: "acme".into(),
        name: name.into(),
        destination: Destination::Webhook {
            url: url.into(),
            access_token_secret: None,
            signing_secret: None,
        },
        enabled: true,
        disabled_reason: None,
        created_at: String::new(),
        updated_at: String::new(),
    }
}

fn automation_input(name: &str, integration: &str) -> AutomationInput {
    AutomationInput {
        name: name.into(),
        description: None,
        enabled: true,
        scope: Scope::Project {
            name: "detector".into(),
            collection: None,
        },
        event: Trigger {
            event_type: "LINK_ARTIFACT".into(),
            filter: None,
            states: None,
            rule: Default::default(),
        },
        action: Action {
            kind: "webhook".into(),
            integration: Some(integration.into()),
            payload: Some(json!({"v": "${artifact_version_string}"})),
            ..Action::default()
        },
    }
}

fn entry<T>(index: usize, name: &str, input: T, spec: Value) -> Entry<T> {
    Entry {
        index,
        name: name.into(),
        input,
        spec,
    }
}

#[test]
fn a_plan_creates_and_updates_in_dependency_order_then_deletes_in_reverse() {
    // GIVEN a team with a queue, an integration and an automation that uses it (by id)
    let mut stored = automation_input("deploy", "id-ci");
    stored.enabled = false;
    let current = Current {
        queues: vec![queue("old-queue")],
        integrations: vec![
            integration("ci", "https://ci.example.com/a"),
            integration("gone", "https://x.example.com"),
        ],
        automations: vec![Automation {
            id: "a1".into(),
            team: "acme".into(),
            spec: stored,
            created_at: String::new(),
            updated_at: String::new(),
        }],
    };
    // AND a document that names the integration (by name), enables the automation and adds
    // a queue
    let deploy = automation_input("deploy", "ci");
    let desired = Desired {
        queues: vec![entry(
            0,
            "gpu",
            QueueInput { name: "gpu".into() },
            json!({"name": "gpu"}),
        )],
        integrations: vec![],
        automations: vec![entry(0, "deploy", deploy.clone(), input_spec(&deploy))],
    };
    // WHEN it is planned with prune
    let plan = plan(&desired, &current, true);
    // THEN the queue is created, the automation's one changed field updated, and what the
    // document lacks deleted: automations before integrations before queues
    let ops: Vec<(Op, Kind, &str)> = plan
        .changes
        .iter()
        .map(|c| (c.op, c.kind, c.name.as_str()))
        .collect();
    assert_eq!(
        ops,
        [
            (Op::Create, Kind::Queue, "gpu"),
            (Op::Update, Kind::Automation, "deploy"),
            (Op::Delete, Kind::Integration, "ci"),
            (Op::Delete, Kind::Integration, "gone"),
            (Op::Delete, Kind::Queue, "old-queue"),
        ]
    );
    assert_eq!(
        plan.changes[1].fields,
        [FieldChange {
            field: "enabled".into(),
            from: Some(json!(false)),
            to: Some(json!(true)),
        }]
    );
    assert_eq!(plan.unchanged, 0);

    // AND without prune nothing is deleted: what the document lacks is kept and named
    let plan = super::plan(&desired, &current, false);
    assert_eq!(plan.changes.len(), 2);
    let kept: Vec<&str> = plan.kept.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kept, ["old-queue", "ci", "gone"]);
}

#[test]
fn an_export_of_the_stored_spec_is_what_the_document_compares() {
    let stored = integration("ci", "https://ci.example.com/a");
    let (_, spec) = integration_spec(&stored);
    assert_eq!(
        spec,
        json!({"name": "ci", "type": "webhook", "url": "https://ci.example.com/a", "enabled": true})
    );
    let input: IntegrationInput = from_json(spec).unwrap();
    let valid = input.validate(&Default::default()).unwrap();
    assert_eq!(
        destination_spec(&valid.name, &valid.destination, valid.enabled),
        integration_spec(&stored).1
    );
}
