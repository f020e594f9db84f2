//! `AutomationStore` on one DynamoDB table.
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | team | `TEAM#{team}` | `TEAM` | |
//! | team, as listed | `TEAMS` | `TEAM#{team}` | |
//! | automation | `TEAM#{team}` | `AUTOMATION#{id}` | `by_trigger`: `{team}#{event type}#{scope}`, id; `coll` |
//! | automation name lock | `TEAM#{team}` | `AUTOMATION_NAME#{name}` | |
//! | integration (and its name lock) | `TEAM#{team}` | `INTEGRATION#{id}` (`INTEGRATION_NAME#{name}`) | |
//! | source (and its name lock) | `TEAM#{team}` | `SOURCE#{id}` (`SOURCE_NAME#{name}`) | |
//! | seen event | `TEAM#{team}` | `EVENT#{id}` | TTL `expires_at` |
//! | execution | `TEAM#{team}` | `EXECUTION#{id}` | `by_automation`: `{team}#{automation}`, `{ms}#{id}`; `by_time`, `by_status` ([`history`]) |
//! | evaluated event | `TEAM#{team}` | `EVALUATED#{id}` | `by_time` ([`history`]); TTL `expires_at` |
//!
//! Keys and the audit trail live in the same table ([`access`]), and so do the runs'
//! metric windows ([`metrics`]) and the job queues ([`jobs`]).
//!
//! Items keep the domain value as JSON in `body`; key attributes sit beside it. Unique
//! names are lock items written in the same transaction; creates and updates are
//! conditional writes.

mod access;
mod history;
mod jobs;
mod metrics;
mod sources;

pub use access::{DynamoAccess, KEY_HASH};
pub use history::BY_STATUS;
pub use jobs::{BY_QUEUE, DynamoJobs, QUEUE_KEY, QUEUE_SORT};
pub use metrics::DynamoMetrics;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::describe;
use crate::domain::automation::{Automation, Scope};
use crate::domain::evaluation::EventRecord;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::domain::integration::Integration;
use crate::ports::{
    AutomationStore, Clock, Listing, Lookup, StoreError, StoreResult, Team, Unreadable,
};

pub const PARTITION_KEY: &str = "pk";
pub const SORT_KEY: &str = "sk";
pub const BODY: &str = "body";
pub const VERSION: &str = "version";
pub const EXPIRES_AT: &str = "expires_at";
pub const COLLECTION: &str = "coll";
pub const ID: &str = "id";
pub const NAME: &str = "name";
pub const BY_TRIGGER: &str = "by_trigger";
pub const TRIGGER_KEY: &str = "trigger_pk";
pub const TRIGGER_SORT: &str = "trigger_sk";
pub const BY_AUTOMATION: &str = "by_automation";
pub const AUTOMATION_KEY: &str = "automation_pk";
pub const AUTOMATION_SORT: &str = "automation_sk";
pub const BY_TIME: &str = "by_time";
pub const TIME_KEY: &str = "time_pk";
pub const TIME_SORT: &str = "time_sk";
pub const STATUS_KEY: &str = "status_pk";
pub const STATUS_SORT: &str = "status_sk";

/// The partition that lists every team (operator-only, rare reads).
pub const TEAMS_PARTITION: &str = "TEAMS";

/// How long DynamoDB keeps an execution (its TTL), from when it was triggered.
pub const EXECUTION_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

type Item = HashMap<String, AttributeValue>;

/// Trigger-index queries in flight at once for one batch of lookups.
const MAX_CONCURRENT_QUERIES: usize = 16;

pub struct DynamoStore {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn team_pk(team: &str) -> AttributeValue {
    s(format!("TEAM#{team}"))
}

fn backend(what: &str, e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Backend(format!("DynamoDB {what}: {}", describe(&e)))
}

/// Whether a conditional write (or a transaction) failed on its condition.
fn condition_failed<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|s| s.code())
        .is_some_and(|code| {
            matches!(
                code,
                "ConditionalCheckFailedException" | "TransactionCanceledException"
            )
        })
}

/// The id of an item: its sort key after `KIND#`, or for a team its partition's name.
fn item_id(item: &Item) -> String {
    let after_hash = |key: &str| match item.get(key) {
        Some(AttributeValue::S(k)) => k.split_once('#').map(|(_, id)| id.to_string()),
        _ => None,
    };
    after_hash(SORT_KEY)
        .or_else(|| after_hash(PARTITION_KEY))
        .unwrap_or_default()
}

/// The domain value an item keeps, or why it cannot be read.
fn decode<T: DeserializeOwned>(kind: &'static str, item: &Item) -> Result<T, Unreadable> {
    match item.get(BODY) {
        Some(AttributeValue::S(json)) => Unreadable::decode(kind, &item_id(item), json),
        _ => Err(Unreadable {
            kind,
            id: item_id(item),
            error: "the item has no body".into(),
        }),
    }
}

fn body<T: DeserializeOwned>(kind: &'static str, item: &Item) -> StoreResult<T> {
    decode(kind, item).map_err(StoreError::Unreadable)
}

fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(e.to_string()))
}

/// The trigger index key of an automation: team, event type and the scope without its collection.
fn trigger_key(team: &str, event_type: &str, scope_base: &str) -> String {
    format!("{team}#{event_type}#{scope_base}")
}

/// An automation's scope as (base, collection): `registry/model` and `resnet`, or `team` and "".
fn scope_parts(scope: &Scope) -> (String, String) {
    let key = scope.key();
    split_scope_key(&key)
}

fn split_scope_key(key: &str) -> (String, String) {
    let mut parts = key.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(name), collection) => (
            format!("{kind}/{name}"),
            collection.unwrap_or_default().to_string(),
        ),
        _ => (key.to_string(), String::new()),
    }
}

/// Items with a name unique in their team: automations, integrations and sources.
struct Named<'a> {
    kind: &'static str,
    team: &'a str,
    id: &'a str,
    name: &'a str,
    item: Item,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    /// Creates the table with its indexes and TTL, as `infra/template.yaml` defines it
    /// (for tests and local tooling; deployments get it from the template).
    pub async fn create_table(client: &Client, table: &str) -> StoreResult<()> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| backend("CreateTable", e))
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| backend("CreateTable", e))
        };
        let projected = |name: &str, pk: &str, sk: &str, projection: ProjectionType| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash)?)
                .key_schema(key(sk, KeyType::Range)?)
                .projection(Projection::builder().projection_type(projection).build())
                .build()
                .map_err(|e| backend("CreateTable", e))
        };
        let index = |name: &str, pk: &str, sk: &str| projected(name, pk, sk, ProjectionType::All);
        let keys_only =
            |name: &str, pk: &str, sk: &str| projected(name, pk, sk, ProjectionType::KeysOnly);
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_attribute_definitions(Some(vec![
                attr(PARTITION_KEY)?,
                attr(SORT_KEY)?,
                attr(TRIGGER_KEY)?,
                attr(TRIGGER_SORT)?,
                attr(AUTOMATION_KEY)?,
                attr(AUTOMATION_SORT)?,
                attr(QUEUE_KEY)?,
                attr(QUEUE_SORT)?,
                attr(TIME_KEY)?,
                attr(TIME_SORT)?,
                attr(STATUS_KEY)?,
                attr(STATUS_SORT)?,
            ]))
            .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
            .key_schema(key(SORT_KEY, KeyType::Range)?)
            .global_secondary_indexes(index(BY_TRIGGER, TRIGGER_KEY, TRIGGER_SORT)?)
            .global_secondary_indexes(index(BY_AUTOMATION, AUTOMATION_KEY, AUTOMATION_SORT)?)
            .global_secondary_indexes(index(BY_QUEUE, QUEUE_KEY, QUEUE_SORT)?)
            .global_secondary_indexes(keys_only(BY_TIME, TIME_KEY, TIME_SORT)?)
            .global_secondary_indexes(keys_only(BY_STATUS, STATUS_KEY, STATUS_SORT)?)
            .send()
            .await
            .map_err(|e| backend("CreateTable", e))?;
        let ttl = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(EXPIRES_AT)
            .build()
            .map_err(|e| backend("UpdateTimeToLive", e))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(ttl)
            .send()
            .await
            .map_err(|e| backend("UpdateTimeToLive", e))?;
        Ok(())
    }

    async fn get(&self, pk: AttributeValue, sk: String) -> StoreResult<Option<Item>> {
        get_item(&self.client, &self.table, pk, sk).await
    }

    /// The domain value kept in a team's item `sk`.
    async fn get_body<T: DeserializeOwned>(
        &self,
        kind: &'static str,
        team: &str,
        sk: String,
    ) -> StoreResult<Option<T>> {
        self.get(team_pk(team), sk)
            .await?
            .map(|i| body(kind, &i))
            .transpose()
    }

    /// Every item of a team whose sort key starts with `prefix`.
    async fn query_prefix(&self, team: &str, prefix: &str) -> StoreResult<Vec<Item>> {
        query_prefix(&self.client, &self.table, team, prefix).await
    }

    /// A conditional Put; with `expect_name`, it also requires the stored item to still
    /// carry that name (a rename or delete in between makes the transaction fail).
    fn put(
        &self,
        item: Item,
        condition: &str,
        expect_name: Option<&str>,
    ) -> StoreResult<TransactWriteItem> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .expression_attribute_names("#pk", PARTITION_KEY);
        put = match expect_name {
            Some(name) => put
                .condition_expression(format!("{condition} AND #name = :name"))
                .expression_attribute_names("#name", NAME)
                .expression_attribute_values(":name", s(name)),
            None => put.condition_expression(condition),
        };
        let put = put.build().map_err(|e| backend("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A Delete; with `expect_name`, only while the item still carries that name.
    fn delete(
        &self,
        team: &str,
        sk: String,
        expect_name: Option<&str>,
    ) -> StoreResult<TransactWriteItem> {
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, team_pk(team))
            .key(SORT_KEY, s(sk));
        if let Some(name) = expect_name {
            delete = delete
                .condition_expression("#name = :name")
                .expression_attribute_names("#name", NAME)
                .expression_attribute_values(":name", s(name));
        }
        let delete = delete
            .build()
            .map_err(|e| backend("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn lock(&self, named: &Named<'_>, name: &str) -> Item {
        HashMap::from([
            (PARTITION_KEY.to_string(), team_pk(named.team)),
            (
                SORT_KEY.to_string(),
                s(format!("{}_NAME#{name}", named.kind)),
            ),
            (ID.to_string(), s(named.id)),
        ])
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        conflict: impl FnOnce() -> String,
    ) -> StoreResult<()> {
        if transact(&self.client, items).await? {
            Ok(())
        } else {
            Err(StoreError::Conflict(conflict()))
        }
    }

    /// Creates or replaces a named item, moving its name lock along in one transaction.
    async fn put_named(&self, named: Named<'_>, create: bool) -> StoreResult<()> {
        let noun = named.kind.to_ascii_lowercase();
        let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        let taken = || {
            format!(
                "{article} {noun} named {} exists in this team, or {noun} {} changed meanwhile",
                named.name, named.id
            )
        };
        let sk = format!("{}#{}", named.kind, named.id);
        if create {
            let items = vec![
                self.put(named.item.clone(), "attribute_not_exists(#pk)", None)?,
                self.put(
                    self.lock(&named, named.name),
                    "attribute_not_exists(#pk)",
                    None,
                )?,
            ];
            return self.transact(items, taken).await;
        }
        let Some(current) = self.get(team_pk(named.team), sk).await? else {
            return Err(StoreError::Conflict(format!(
                "{noun} {} does not exist",
                named.id
            )));
        };
        let old_name = match current.get(NAME) {
            Some(AttributeValue::S(n)) => n.clone(),
            _ => String::new(),
        };
        let mut items =
            vec![self.put(named.item.clone(), "attribute_exists(#pk)", Some(&old_name))?];
        if old_name != named.name {
            items.push(self.delete(named.team, format!("{}_NAME#{old_name}", named.kind), None)?);
            items.push(self.put(
                self.lock(&named, named.name),
                "attribute_not_exists(#pk)",
                None,
            )?);
        }
        self.transact(items, taken).await
    }

    async fn delete_named(&self, kind: &str, team: &str, id: &str) -> StoreResult<bool> {
        let Some(current) = self.get(team_pk(team), format!("{kind}#{id}")).await? else {
            return Ok(false);
        };
        let name = match current.get(NAME) {
            Some(AttributeValue::S(n)) => n.clone(),
            _ => String::new(),
        };
        let items = vec![
            self.delete(team, format!("{kind}#{id}"), Some(&name))?,
            self.delete(team, format!("{kind}_NAME#{name}"), None)?,
        ];
        self.transact(items, || {
            format!(
                "{} {id} changed meanwhile; try again",
                kind.to_ascii_lowercase()
            )
        })
        .await?;
        Ok(true)
    }

    fn base_item(team: &str, sk: String, body: String) -> Item {
        HashMap::from([
            (PARTITION_KEY.to_string(), team_pk(team)),
            (SORT_KEY.to_string(), s(sk)),
            (BODY.to_string(), s(body)),
        ])
    }

    fn execution_item(execution: &Execution) -> StoreResult<Item> {
        let mut item = Self::base_item(
            &execution.team,
            format!("EXECUTION#{}", execution.id),
            to_json(execution)?,
        );
        item.insert(VERSION.into(), n(execution.version));
        let expires = execution.triggered_at_ms / 1000 + EXECUTION_RETENTION.as_secs() as i64;
        item.insert(EXPIRES_AT.into(), n(expires));
        item.insert(
            AUTOMATION_KEY.into(),
            s(format!("{}#{}", execution.team, execution.automation_id)),
        );
        item.insert(
            AUTOMATION_SORT.into(),
            s(execution_sort(execution.triggered_at_ms, &execution.id)),
        );
        history::execution_index_keys(execution, &mut item);
        Ok(item)
    }
}

/// The item `pk`/`sk`, read consistently.
async fn get_item(
    client: &Client,
    table: &str,
    pk: AttributeValue,
    sk: String,
) -> StoreResult<Option<Item>> {
    let out = client
        .get_item()
        .table_name(table)
        .key(PARTITION_KEY, pk)
        .key(SORT_KEY, s(sk))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| backend("GetItem", e))?;
    Ok(out.item)
}

/// Every item of a team whose sort key starts with `prefix`, read consistently.
async fn query_prefix(
    client: &Client,
    table: &str,
    team: &str,
    prefix: &str,
) -> StoreResult<Vec<Item>> {
    client
        .query()
        .table_name(table)
        .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
        .expression_attribute_names("#pk", PARTITION_KEY)
        .expression_attribute_names("#sk", SORT_KEY)
        .expression_attribute_values(":pk", team_pk(team))
        .expression_attribute_values(":prefix", s(prefix))
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .map_err(|e| backend("Query", e))
}

/// Writes `items` in one transaction: `false` when a condition failed (nothing written). A
/// transaction cancelled for another reason (a conflict with another transaction,
/// throttling) is an error to retry, not a failed condition.
async fn transact(client: &Client, items: Vec<TransactWriteItem>) -> StoreResult<bool> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    let e = match client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
    {
        Ok(_) => return Ok(true),
        Err(e) => e,
    };
    if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
        e.as_service_error()
    {
        let codes: Vec<&str> = cancelled
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None"))
            .collect();
        if cancelled_by_a_condition(&codes) {
            return Ok(false);
        }
        return Err(StoreError::Backend(format!(
            "DynamoDB TransactWriteItems was cancelled ({}); try again",
            codes.join(", ")
        )));
    }
    if condition_failed(&e) {
        return Ok(false);
    }
    Err(backend("TransactWriteItems", e))
}

/// Whether a transaction cancelled with these reasons (one per item, `None` for the items
/// that were fine) failed on a condition. An answer without reasons is read as one.
fn cancelled_by_a_condition(codes: &[&str]) -> bool {
    codes.is_empty() || codes.contains(&"ConditionalCheckFailed")
}

fn execution_sort(triggered_ms: i64, id: &str) -> String {
    format!("{:015}#{id}", triggered_ms.max(0))
}

#[async_trait]
impl AutomationStore for DynamoStore {
    async fn create_team(&self, team: &Team) -> StoreResult<()> {
        // The team, and its entry in the one partition that lists teams, in one transaction.
        let json = to_json(team)?;
        let item = Self::base_item(&team.name, "TEAM".into(), json.clone());
        let listed = HashMap::from([
            (PARTITION_KEY.to_string(), s(TEAMS_PARTITION)),
            (SORT_KEY.to_string(), s(format!("TEAM#{}", team.name))),
            (BODY.to_string(), s(json)),
        ]);
        let items = vec![
            self.put(item, "attribute_not_exists(#pk)", None)?,
            self.put(listed, "attribute_not_exists(#pk)", None)?,
        ];
        self.transact(items, || "a team with this name exists".into())
            .await
    }

    async fn get_team(&self, name: &str) -> StoreResult<Option<Team>> {
        self.get_body("team", name, "TEAM".into()).await
    }

    async fn list_teams(&self) -> StoreResult<Vec<Team>> {
        // Operator-only: one Query of the partition that lists teams, in name order.
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":pk", s(TEAMS_PARTITION))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .map_err(|e| backend("Query", e))?;
        items.iter().map(|item| body("team", item)).collect()
    }

    async fn put_automation(&self, automation: &Automation, create: bool) -> StoreResult<()> {
        let a = automation;
        let (base, collection) = scope_parts(&a.spec.scope);
        let mut item = Self::base_item(&a.team, format!("AUTOMATION#{}", a.id), to_json(a)?);
        item.insert(NAME.into(), s(&a.spec.name));
        item.insert(
            TRIGGER_KEY.into(),
            s(trigger_key(&a.team, a.spec.index_type(), &base)),
        );
        item.insert(TRIGGER_SORT.into(), s(&a.id));
        item.insert(COLLECTION.into(), s(collection));
        let named = Named {
            kind: "AUTOMATION",
            team: &a.team,
            id: &a.id,
            name: &a.spec.name,
            item,
        };
        self.put_named(named, create).await
    }

    async fn get_automation(&self, team: &str, id: &str) -> StoreResult<Option<Automation>> {
        self.get_body("automation", team, format!("AUTOMATION#{id}"))
            .await
    }

    async fn list_automations(&self, team: &str) -> StoreResult<Listing<Automation>> {
        Ok(self
            .query_prefix(team, "AUTOMATION#")
            .await?
            .iter()
            .map(|item| decode("automation", item))
            .collect())
    }

    async fn delete_automation(&self, team: &str, id: &str) -> StoreResult<bool> {
        self.delete_named("AUTOMATION", team, id).await
    }

    async fn matching_automations(&self, lookups: &[Lookup]) -> StoreResult<Vec<Vec<Automation>>> {
        // One query per trigger partition (team, event type and scope base: the team, a
        // project or a registry), shared by all the lookups of the call; the collection is
        // a filter within the partition. Queries run concurrently.
        let mut wanted = Vec::with_capacity(lookups.len());
        let mut partitions = HashSet::new();
        for lookup in lookups {
            let keys: Vec<(String, String)> = lookup
                .scope_keys
                .iter()
                .map(|key| {
                    let (base, collection) = split_scope_key(key);
                    (
                        trigger_key(&lookup.team, lookup.event_type.as_str(), &base),
                        collection,
                    )
                })
                .collect();
            partitions.extend(keys.iter().map(|(partition, _)| partition.clone()));
            wanted.push(keys);
        }
        let mut filed: HashMap<String, Vec<(String, Automation)>> = HashMap::new();
        let mut queries = tokio::task::JoinSet::new();
        let mut partitions = partitions.into_iter();
        loop {
            while queries.len() < MAX_CONCURRENT_QUERIES {
                let Some(partition) = partitions.next() else {
                    break;
                };
                let query = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(BY_TRIGGER)
                    .key_condition_expression("#k = :k")
                    .expression_attribute_names("#k", TRIGGER_KEY)
                    .expression_attribute_values(":k", s(&partition));
                queries.spawn(async move {
                    let items = query
                        .into_paginator()
                        .items()
                        .send()
                        .collect::<Result<Vec<_>, _>>()
                        .await;
                    (partition, items)
                });
            }
            let Some(done) = queries.join_next().await else {
                break;
            };
            let (partition, items) =
                done.map_err(|e| StoreError::Backend(format!("DynamoDB Query task: {e}")))?;
            let items = items.map_err(|e| backend("Query", e))?;
            let mut automations = Vec::with_capacity(items.len());
            let team = partition.split('#').next().unwrap_or_default();
            for item in &items {
                let collection = match item.get(COLLECTION) {
                    Some(AttributeValue::S(c)) => c.clone(),
                    _ => String::new(),
                };
                match decode("automation", item) {
                    Ok(automation) => automations.push((collection, automation)),
                    // The others of the partition still match.
                    Err(bad) => bad.log_skipped(team),
                }
            }
            filed.insert(partition, automations);
        }
        Ok(wanted
            .into_iter()
            .map(|keys| {
                keys.iter()
                    .flat_map(|(partition, collection)| {
                        filed
                            .get(partition)
                            .into_iter()
                            .flatten()
                            .filter(move |(c, _)| c == collection)
                            .map(|(_, a)| a.clone())
                    })
                    .collect()
            })
            .collect())
    }

    async fn put_integration(&self, integration: &Integration, create: bool) -> StoreResult<()> {
        let i = integration;
        let mut item = Self::base_item(&i.team, format!("INTEGRATION#{}", i.id), to_json(i)?);
        item.insert(NAME.into(), s(&i.name));
        let named = Named {
            kind: "INTEGRATION",
            team: &i.team,
            id: &i.id,
            name: &i.name,
            item,
        };
        self.put_named(named, create).await
    }

    async fn get_integration(&self, team: &str, id: &str) -> StoreResult<Option<Integration>> {
        self.get_body("integration", team, format!("INTEGRATION#{id}"))
            .await
    }

    async fn list_integrations(&self, team: &str) -> StoreResult<Listing<Integration>> {
        Ok(self
            .query_prefix(team, "INTEGRATION#")
            .await?
            .iter()
            .map(|item| decode("integration", item))
            .collect())
    }

    async fn delete_integration(&self, team: &str, id: &str) -> StoreResult<bool> {
        self.delete_named("INTEGRATION", team, id).await
    }

    async fn seen_events(&self, team: &str, ids: &[String]) -> StoreResult<HashSet<String>> {
        let now = self.clock.now().unix_timestamp();
        let unique: HashSet<&String> = ids.iter().collect();
        let keys: Vec<Item> = unique
            .into_iter()
            .map(|id| {
                HashMap::from([
                    (PARTITION_KEY.to_string(), team_pk(team)),
                    (SORT_KEY.to_string(), s(format!("EVENT#{id}"))),
                ])
            })
            .collect();
        let mut seen = HashSet::new();
        for item in self.read_items(keys, true).await? {
            // TTL deletes late: an expired item is not a sighting.
            let live = matches!(item.get(EXPIRES_AT), Some(AttributeValue::N(t)) if t.parse::<i64>().is_ok_and(|t| t > now));
            if let (true, Some(AttributeValue::S(sk))) = (live, item.get(SORT_KEY)) {
                seen.insert(sk.trim_start_matches("EVENT#").to_string());
            }
        }
        Ok(seen)
    }

    async fn record_events(
        &self,
        team: &str,
        ids: &[String],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let unique: Vec<&String> = ids.iter().collect::<HashSet<_>>().into_iter().collect();
        let requests = unique
            .iter()
            .map(|id| {
                let item = HashMap::from([
                    (PARTITION_KEY.to_string(), team_pk(team)),
                    (SORT_KEY.to_string(), s(format!("EVENT#{id}"))),
                    (EXPIRES_AT.to_string(), n(expires_at.unix_timestamp())),
                ]);
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| backend("BatchWriteItem", e))?;
        self.batch_write(requests).await
    }

    async fn record_evaluations(
        &self,
        records: &[EventRecord],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.put_event_records(records, expires_at).await
    }

    async fn list_events(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<EventRecord>> {
        self.event_records(team, limit, before).await
    }

    async fn create_executions(&self, executions: &[Execution]) -> Vec<StoreResult<bool>> {
        // Conditional puts cannot be batched; they go out concurrently instead, and each
        // answers for its own execution.
        let mut created: Vec<Option<StoreResult<bool>>> = executions.iter().map(|_| None).collect();
        let mut puts = tokio::task::JoinSet::new();
        for (index, execution) in executions.iter().enumerate() {
            let item = match Self::execution_item(execution) {
                Ok(item) => item,
                Err(e) => {
                    created[index] = Some(Err(e));
                    continue;
                }
            };
            let (client, table) = (self.client.clone(), self.table.clone());
            puts.spawn(async move {
                let put = client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PARTITION_KEY)
                    .send()
                    .await;
                let created = match put {
                    Ok(_) => Ok(true),
                    Err(e) if condition_failed(&e) => Ok(false),
                    Err(e) => Err(backend("PutItem", e)),
                };
                (index, created)
            });
        }
        let mut lost = String::new();
        while let Some(joined) = puts.join_next().await {
            match joined {
                Ok((index, result)) => created[index] = Some(result),
                Err(e) => lost = e.to_string(),
            }
        }
        // A put task that failed cannot say which it was: the unanswered ones failed.
        created
            .into_iter()
            .map(|answer| {
                answer
                    .unwrap_or_else(|| Err(StoreError::Backend(format!("put task failed: {lost}"))))
            })
            .collect()
    }

    async fn get_execution(&self, team: &str, id: &str) -> StoreResult<Option<Execution>> {
        self.get_body("execution", team, format!("EXECUTION#{id}"))
            .await
    }

    async fn update_execution(&self, execution: &mut Execution) -> StoreResult<()> {
        let expected = execution.version;
        let mut next = execution.clone();
        next.version = expected + 1;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(Self::execution_item(&next)?))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":expected", n(expected))
            .send()
            .await;
        match put {
            Ok(_) => {
                execution.version = expected + 1;
                Ok(())
            }
            Err(e) if condition_failed(&e) => Err(StoreError::Stale),
            Err(e) => Err(backend("PutItem", e)),
        }
    }

    async fn list_executions(
        &self,
        team: &str,
        automation_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>> {
        self.automation_executions(team, automation_id, limit, before)
            .await
    }

    async fn list_team_executions(
        &self,
        team: &str,
        status: Option<ExecutionStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>> {
        self.team_executions(team, status, limit, before).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_condition_reads_as_one() {
        assert!(cancelled_by_a_condition(&[
            "None",
            "ConditionalCheckFailed"
        ]));
        assert!(cancelled_by_a_condition(&[]));
        assert!(!cancelled_by_a_condition(&["TransactionConflict", "None"]));
        assert!(!cancelled_by_a_condition(&["ThrottlingError"]));
    }

    #[test]
    fn scope_keys_split_into_base_and_collection() {
        assert_eq!(
            split_scope_key("registry/model/resnet"),
            ("registry/model".into(), "resnet".into())
        );
        assert_eq!(
            split_scope_key("project/p"),
            ("project/p".into(), String::new())
        );
        assert_eq!(split_scope_key("team"), ("team".into(), String::new()));
    }
}
