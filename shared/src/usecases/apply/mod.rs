//! Automations as code: a team's queues, integrations and automations as one document, in
//! which automations name their integration rather than give its id. Objects are matched
//! by name. [`apply`] compares a document with the team and, unless asked for a dry run,
//! makes the team match it; [`export`] writes the team as such a document.
//!
//! Everything is validated before the first write, by the same code for a dry run and for
//! an apply, so the check and the apply cannot disagree.

mod diff;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use diff::FieldChange;
use diff::{changes, without_nulls};

use super::{Engine, Error, jobs, manage};
use crate::domain::access::Actor;
use crate::domain::automation::{Automation, AutomationInput};
use crate::domain::integration::{Destination, Integration, IntegrationInput};
use crate::domain::job::{JobQueue, QueueInput};
use crate::domain::{Invalid, from_json};
use crate::ports::Listing;

/// What `automations apply` sends: each list holds objects in the API's own form, but an
/// automation's `action.integration` is the integration's name.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    #[serde(default)]
    pub queues: Vec<Value>,
    #[serde(default)]
    pub integrations: Vec<Value>,
    #[serde(default)]
    pub automations: Vec<Value>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Delete what the team has and the document does not.
    pub prune: bool,
    /// Validate and plan; write nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Queue,
    Integration,
    Automation,
}

impl Kind {
    /// The document's list of this kind.
    pub fn list(self) -> &'static str {
        match self {
            Kind::Queue => "queues",
            Kind::Integration => "integrations",
            Kind::Automation => "automations",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Queue => "queue",
            Kind::Integration => "integration",
            Kind::Automation => "automation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// One write of a plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub op: Op,
    pub kind: Kind,
    pub name: String,
    /// Where the object is in its list of the document (absent for a delete).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// An update's changed fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

/// An object the team has and the document does not, left alone without `prune`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Kept {
    pub kind: Kind,
    pub name: String,
}

/// The writes that make the team match the document, in the order they are made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// Objects of the document that the team already has as written.
    pub unchanged: usize,
    pub kept: Vec<Kept>,
    /// Whether the changes were made (false for a dry run).
    pub applied: bool,
}

/// What is wrong with one object of the document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub kind: Kind,
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The field within the object (empty for the object as a whole).
    pub field: String,
    pub message: String,
}

#[derive(Debug)]
pub enum ApplyError {
    /// Objects of the document are invalid: nothing was written.
    Invalid(Vec<Problem>),
    /// The team cannot be compared (a store failure, an unreadable object): nothing was
    /// written.
    Refused(Error),
    /// A write failed after `done` of `total` changes were made.
    Failed {
        done: usize,
        total: usize,
        error: Error,
    },
}

impl From<Error> for ApplyError {
    fn from(e: Error) -> Self {
        ApplyError::Refused(e)
    }
}

/// Compares `document` with the team and, unless `options.dry_run`, makes the changes:
/// queues, integrations and automations created or updated in that order, then (with
/// `options.prune`) the objects the document does not have deleted in the reverse order.
pub async fn apply(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    document: Document,
    options: Options,
) -> Result<Plan, ApplyError> {
    let current = Current::read(engine, team).await?;
    let desired = Desired::check(engine, team, document, &current, options.prune).await?;
    let plan = plan(&desired, &current, options.prune);
    if options.dry_run || plan.changes.is_empty() {
        return Ok(plan);
    }
    let mut integration_ids: HashMap<String, String> = current
        .integrations
        .iter()
        .map(|i| (i.name.clone(), i.id.clone()))
        .collect();
    let total = plan.changes.len();
    for (done, change) in plan.changes.iter().enumerate() {
        let written = write(
            engine,
            actor,
            team,
            change,
            &desired,
            &current,
            &mut integration_ids,
        )
        .await;
        written.map_err(|error| ApplyError::Failed { done, total, error })?;
    }
    Ok(Plan {
        applied: true,
        ..plan
    })
}

/// The team's objects as a [`Document`], sorted by name: applying it changes nothing.
pub async fn export(engine: &Engine, team: &str) -> Result<Document, Error> {
    let current = Current::read(engine, team).await?;
    let names = current.integration_names();
    let sorted = |mut specs: Vec<(String, Value)>| {
        specs.sort_by(|a, b| a.0.cmp(&b.0));
        specs.into_iter().map(|(_, spec)| spec).collect()
    };
    Ok(Document {
        queues: sorted(current.queues.iter().map(queue_spec).collect()),
        integrations: sorted(current.integrations.iter().map(integration_spec).collect()),
        automations: sorted(
            current
                .automations
                .iter()
                .map(|a| automation_spec(a, &names))
                .collect(),
        ),
    })
}

/// The team's objects now.
struct Current {
    queues: Vec<JobQueue>,
    integrations: Vec<Integration>,
    automations: Vec<Automation>,
}

impl Current {
    async fn read(engine: &Engine, team: &str) -> Result<Current, Error> {
        Ok(Current {
            queues: readable(jobs::list_queues(engine, team).await?)?,
            integrations: readable(engine.store.list_integrations(team).await?)?,
            automations: readable(engine.store.list_automations(team).await?)?,
        })
    }

    fn integration_names(&self) -> HashMap<&str, &str> {
        self.integrations
            .iter()
            .map(|i| (i.id.as_str(), i.name.as_str()))
            .collect()
    }

    fn integration(&self, name: &str) -> Option<&Integration> {
        self.integrations.iter().find(|i| i.name == name)
    }
}

/// Every item of the listing: one that cannot be read cannot be compared, so it stops the
/// apply (or the export) rather than be taken for absent.
fn readable<T>(listing: Listing<T>) -> Result<Vec<T>, Error> {
    if let Some(bad) = listing.unreadable().next() {
        return Err(Error::Conflict(format!(
            "{bad}; apply and export compare every object of the team: delete it, or restore it from a backup"
        )));
    }
    Ok(listing.entries.into_iter().filter_map(Result::ok).collect())
}

fn queue_spec(queue: &JobQueue) -> (String, Value) {
    (queue.name.clone(), json!({"name": queue.name}))
}

fn integration_spec(integration: &Integration) -> (String, Value) {
    let spec = destination_spec(
        &integration.name,
        &integration.destination,
        integration.enabled,
    );
    (integration.name.clone(), spec)
}

/// An integration as the document writes it: its name, type, settings and enabled state.
fn destination_spec(name: &str, destination: &Destination, enabled: bool) -> Value {
    let mut spec = without_nulls(serde_json::to_value(destination).unwrap_or_default());
    if let Value::Object(map) = &mut spec {
        map.insert("name".into(), json!(name));
        map.insert("enabled".into(), json!(enabled));
    }
    spec
}

/// An automation as the document writes it: its integration by name (by id when no
/// integration has that id any more).
fn automation_spec(
    automation: &Automation,
    integration_names: &HashMap<&str, &str>,
) -> (String, Value) {
    let mut spec = automation.spec.clone();
    if let Some(id) = &spec.action.integration
        && let Some(name) = integration_names.get(id.as_str())
    {
        spec.action.integration = Some((*name).to_string());
    }
    (automation.spec.name.clone(), input_spec(&spec))
}

fn input_spec(input: &AutomationInput) -> Value {
    without_nulls(serde_json::to_value(input).unwrap_or_default())
}

/// One valid object of the document.
struct Entry<T> {
    index: usize,
    name: String,
    input: T,
    /// The object as the document writes it, defaults filled in: what it is compared by.
    spec: Value,
}

/// The document's objects, each valid and each reference resolved.
struct Desired {
    queues: Vec<Entry<QueueInput>>,
    integrations: Vec<Entry<IntegrationInput>>,
    automations: Vec<Entry<AutomationInput>>,
}

/// Collects the problems of a document's objects.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, kind: Kind, index: usize, name: Option<&str>, invalid: Invalid) {
        self.0.push(Problem {
            kind,
            index,
            name: name.map(str::to_string),
            field: invalid.field,
            message: invalid.message,
        });
    }

    /// Records an invalid object; any other error stops the whole check.
    fn add_error(
        &mut self,
        kind: Kind,
        index: usize,
        name: &str,
        error: Error,
    ) -> Result<(), Error> {
        match error {
            Error::Invalid(invalid) | Error::Missing(invalid) => {
                self.add(kind, index, Some(name), invalid);
                Ok(())
            }
            other => Err(other),
        }
    }
}

impl Desired {
    /// Parses and validates every object, and resolves what automations refer to: against
    /// the document, and (without `prune`, which would delete the rest) the team.
    async fn check(
        engine: &Engine,
        team: &str,
        document: Document,
        current: &Current,
        prune: bool,
    ) -> Result<Desired, ApplyError> {
        let mut problems = Problems::default();
        let listed = |values: &[Value]| -> HashSet<String> {
            values
                .iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        };
        let written = Written {
            queues: listed(&document.queues),
            integrations: listed(&document.integrations),
        };
        let queues = parse_all::<QueueInput>(Kind::Queue, document.queues, &mut problems);
        let integrations =
            parse_all::<IntegrationInput>(Kind::Integration, document.integrations, &mut problems);
        let automations =
            parse_all::<AutomationInput>(Kind::Automation, document.automations, &mut problems);

        let queues = check_queues(queues, &mut problems);
        let (integrations, destinations) =
            check_integrations(engine, team, integrations, current, &mut problems).await?;
        let known_queues: HashSet<&str> = queues
            .iter()
            .map(|q| q.name.as_str())
            .chain(
                current
                    .queues
                    .iter()
                    .filter(|_| !prune)
                    .map(|q| q.name.as_str()),
            )
            .collect();
        let mut known_integrations: HashMap<&str, &Destination> = destinations
            .iter()
            .map(|(name, destination)| (name.as_str(), destination))
            .collect();
        if !prune {
            for i in &current.integrations {
                known_integrations
                    .entry(i.name.as_str())
                    .or_insert(&i.destination);
            }
        }
        let known = Known {
            queues: known_queues,
            integrations: known_integrations,
            written,
            prune,
        };
        let automations =
            check_automations(engine, team, automations, &known, &mut problems).await?;
        if !problems.0.is_empty() {
            return Err(ApplyError::Invalid(problems.0));
        }
        Ok(Desired {
            queues,
            integrations,
            automations,
        })
    }
}

/// Each object parsed into its input type; a name is unique in its list.
fn parse_all<T: serde::de::DeserializeOwned>(
    kind: Kind,
    values: Vec<Value>,
    problems: &mut Problems,
) -> Vec<(usize, String, T)> {
    let mut names = HashSet::new();
    let mut parsed = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let name = value
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string);
        if let Some(name) = &name
            && !names.insert(name.clone())
        {
            let message = format!("another {} of the document has this name", kind.noun());
            problems.add(kind, index, Some(name), Invalid::new("name", message));
            continue;
        }
        if !value.is_object() {
            let message = format!("each of {} must be an object", kind.list());
            problems.add(kind, index, None, Invalid::new("", message));
            continue;
        }
        match from_json::<T>(value) {
            Ok(input) => parsed.push((index, name.unwrap_or_default(), input)),
            Err(invalid) => problems.add(kind, index, name.as_deref(), invalid),
        }
    }
    parsed
}

fn check_queues(
    queues: Vec<(usize, String, QueueInput)>,
    problems: &mut Problems,
) -> Vec<Entry<QueueInput>> {
    let mut valid = Vec::new();
    for (index, name, input) in queues {
        match input.validate() {
            Ok(()) => valid.push(Entry {
                index,
                spec: json!({"name": name}),
                name,
                input,
            }),
            Err(invalid) => problems.add(Kind::Queue, index, Some(&name), invalid),
        }
    }
    valid
}

/// The valid integrations, and the destination of each by name.
async fn check_integrations(
    engine: &Engine,
    team: &str,
    integrations: Vec<(usize, String, IntegrationInput)>,
    current: &Current,
    problems: &mut Problems,
) -> Result<(Vec<Entry<IntegrationInput>>, Vec<(String, Destination)>), Error> {
    let mut valid = Vec::new();
    let mut destinations = Vec::new();
    for (index, name, input) in integrations {
        let checked = match input.clone().validate(&engine.settings.guard) {
            Ok(checked) => checked,
            Err(invalid) => {
                problems.add(Kind::Integration, index, Some(&name), invalid);
                continue;
            }
        };
        if let Some(existing) = current.integration(&name)
            && existing.destination.kind() != checked.destination.kind()
        {
            let message = format!(
                "integration {name} is a {} integration and a type cannot change; give the new one another name",
                existing.destination.kind()
            );
            problems.add(
                Kind::Integration,
                index,
                Some(&name),
                Invalid::new("type", message),
            );
            continue;
        }
        if let Err(e) = manage::check_integration_secrets(engine, team, &checked.destination).await
        {
            problems.add_error(Kind::Integration, index, &name, e)?;
            continue;
        }
        destinations.push((name.clone(), checked.destination.clone()));
        valid.push(Entry {
            index,
            spec: destination_spec(&checked.name, &checked.destination, checked.enabled),
            name,
            input,
        });
    }
    Ok((valid, destinations))
}

/// What the document's automations may refer to.
struct Known<'a> {
    queues: HashSet<&'a str>,
    integrations: HashMap<&'a str, &'a Destination>,
    /// Every name the document gives, valid or not: a reference to an invalid object is
    /// not reported again, since the object's own problem is.
    written: Written,
    prune: bool,
}

struct Written {
    queues: HashSet<String>,
    integrations: HashSet<String>,
}

impl Known<'_> {
    fn missing(&self, kind: &str, name: &str, team: &str) -> String {
        if self.prune {
            format!(
                "{kind} {name} is not in the document; with prune, the team keeps only the document's {kind}s"
            )
        } else {
            format!("{kind} {name} is neither in the document nor in team {team}")
        }
    }
}

async fn check_automations(
    engine: &Engine,
    team: &str,
    automations: Vec<(usize, String, AutomationInput)>,
    known: &Known<'_>,
    problems: &mut Problems,
) -> Result<Vec<Entry<AutomationInput>>, Error> {
    let mut valid = Vec::new();
    for (index, name, input) in automations {
        let refs = match input.validate() {
            Ok(refs) => refs,
            Err(invalid) => {
                problems.add(Kind::Automation, index, Some(&name), invalid);
                continue;
            }
        };
        if let Some(integration) = &refs.integration {
            let fits = match known.integrations.get(integration.as_str()) {
                Some(destination) => {
                    manage::check_integration_fits(&refs, integration, destination)
                }
                None if known.written.integrations.contains(integration) => Ok(()),
                None => Err(Invalid::new(
                    "action.integration",
                    known.missing("integration", integration, team),
                )),
            };
            if let Err(invalid) = fits {
                problems.add(Kind::Automation, index, Some(&name), invalid);
                continue;
            }
        }
        if let Some(queue) = &refs.queue
            && !known.queues.contains(queue.as_str())
            && !known.written.queues.contains(queue)
        {
            let invalid = Invalid::new("action.queue", known.missing("queue", queue, team));
            problems.add(Kind::Automation, index, Some(&name), invalid);
            continue;
        }
        if let Err(e) = manage::check_secrets_exist(engine, team, &refs).await {
            problems.add_error(Kind::Automation, index, &name, e)?;
            continue;
        }
        valid.push(Entry {
            index,
            spec: input_spec(&input),
            name,
            input,
        });
    }
    Ok(valid)
}

/// The changes that make the team match `desired`: creates and updates of queues,
/// integrations and automations in that order, then deletes in the reverse order.
fn plan(desired: &Desired, current: &Current, prune: bool) -> Plan {
    let names = current.integration_names();
    let sides = [
        (
            Kind::Queue,
            specs(&desired.queues),
            current.queues.iter().map(queue_spec).collect::<Vec<_>>(),
        ),
        (
            Kind::Integration,
            specs(&desired.integrations),
            current.integrations.iter().map(integration_spec).collect(),
        ),
        (
            Kind::Automation,
            specs(&desired.automations),
            current
                .automations
                .iter()
                .map(|a| automation_spec(a, &names))
                .collect(),
        ),
    ];
    let mut plan = Plan {
        changes: Vec::new(),
        unchanged: 0,
        kept: Vec::new(),
        applied: false,
    };
    let mut deletes = Vec::new();
    for (kind, wanted, have) in &sides {
        let have: HashMap<&str, &Value> = have.iter().map(|(n, s)| (n.as_str(), s)).collect();
        for (index, name, spec) in wanted {
            match have.get(name.as_str()) {
                None => plan.changes.push(Change {
                    op: Op::Create,
                    kind: *kind,
                    name: name.clone(),
                    index: Some(*index),
                    fields: Vec::new(),
                }),
                Some(old) if **old == *spec => plan.unchanged += 1,
                Some(old) => plan.changes.push(Change {
                    op: Op::Update,
                    kind: *kind,
                    name: name.clone(),
                    index: Some(*index),
                    fields: changes(old, spec),
                }),
            }
        }
        let wanted: HashSet<&str> = wanted.iter().map(|(_, n, _)| n.as_str()).collect();
        let mut gone: Vec<&str> = have
            .keys()
            .copied()
            .filter(|n| !wanted.contains(n))
            .collect();
        gone.sort_unstable();
        for name in gone {
            if prune {
                deletes.push(Change {
                    op: Op::Delete,
                    kind: *kind,
                    name: name.to_string(),
                    index: None,
                    fields: Vec::new(),
                });
            } else {
                plan.kept.push(Kept {
                    kind: *kind,
                    name: name.to_string(),
                });
            }
        }
    }
    deletes.sort_by_key(|c| std::cmp::Reverse(c.kind as u8));
    plan.changes.extend(deletes);
    plan
}

fn specs<T>(entries: &[Entry<T>]) -> Vec<(usize, String, Value)> {
    entries
        .iter()
        .map(|e| (e.index, e.name.clone(), e.spec.clone()))
        .collect()
}

/// Makes one change, through the same use cases (and audit) as the API's routes.
async fn write(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    change: &Change,
    desired: &Desired,
    current: &Current,
    integration_ids: &mut HashMap<String, String>,
) -> Result<(), Error> {
    let name = change.name.as_str();
    let unknown = || Error::NotFound(format!("{} {name} is gone", change.kind.noun()));
    let find = |kind: Kind| match kind {
        Kind::Queue => current
            .queues
            .iter()
            .find(|q| q.name == name)
            .map(|q| q.name.clone()),
        Kind::Integration => current.integration(name).map(|i| i.id.clone()),
        Kind::Automation => current
            .automations
            .iter()
            .find(|a| a.spec.name == name)
            .map(|a| a.id.clone()),
    };
    match (change.kind, change.op) {
        (Kind::Queue, Op::Create) => {
            let entry = entry(&desired.queues, name).ok_or_else(unknown)?;
            jobs::create_queue(engine, actor, team, entry.input.clone()).await?;
        }
        (Kind::Queue, Op::Update) => {}
        (Kind::Integration, op @ (Op::Create | Op::Update)) => {
            let entry = entry(&desired.integrations, name).ok_or_else(unknown)?;
            let input = entry.input.clone();
            let written = if op == Op::Create {
                manage::create_integration(engine, actor, team, input).await?
            } else {
                let id = find(Kind::Integration).ok_or_else(unknown)?;
                manage::replace_integration(engine, actor, team, &id, input).await?
            };
            integration_ids.insert(written.name, written.id);
        }
        (Kind::Automation, op @ (Op::Create | Op::Update)) => {
            let entry = entry(&desired.automations, name).ok_or_else(unknown)?;
            let mut input = entry.input.clone();
            if let Some(integration) = &input.action.integration {
                let id = integration_ids
                    .get(integration)
                    .cloned()
                    .ok_or_else(|| Error::NotFound(format!("integration {integration} is gone")))?;
                input.action.integration = Some(id);
            }
            if op == Op::Create {
                manage::create_automation(engine, actor, team, input).await?;
            } else {
                let id = find(Kind::Automation).ok_or_else(unknown)?;
                manage::replace_automation(engine, actor, team, &id, input).await?;
            }
        }
        (kind, Op::Delete) => {
            let id = find(kind).ok_or_else(unknown)?;
            match kind {
                Kind::Queue => jobs::delete_queue(engine, actor, team, &id).await?,
                Kind::Integration => manage::delete_integration(engine, actor, team, &id).await?,
                Kind::Automation => manage::delete_automation(engine, actor, team, &id).await?,
            }
        }
    }
    Ok(())
}

fn entry<'a, T>(entries: &'a [Entry<T>], name: &str) -> Option<&'a Entry<T>> {
    entries.iter().find(|e| e.name == name)
}
