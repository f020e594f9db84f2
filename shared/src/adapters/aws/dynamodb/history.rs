//! What happened in a team, newest first: its executions across automations (`by_time`,
//! and `by_status` for one status), and its evaluated events (`by_time`).
//!
//! | item | pk | sk | index keys |
//! |---|---|---|---|
//! | execution | `TEAM#{team}` | `EXECUTION#{id}` | `by_time`: `{team}#EXECUTIONS`; `by_status`: `{team}#EXECUTIONS#{status}`; both `{ms}#{id}` |
//! | evaluated event | `TEAM#{team}` | `EVALUATED#{id}` | `by_time`: `{team}#EVENTS`, `{ms}#{id}`; TTL `expires_at` |
//!
//! `by_time` and `by_status` project keys only: an execution's claim and attempts change
//! its body but not its index keys, so they cost no index write, and a listing reads the
//! page's items with one `BatchGetItem`. (Projecting whole items would cost every
//! execution write two more write units per index.)
//!
//! An evaluated event is an item of its own beside the event's de-duplication item
//! (`EVENT#{id}`), which ingest writes with a `BatchWriteItem` that cannot be conditional:
//! sharing one item, a late ingest write would wipe the evaluation.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use super::{
    BY_AUTOMATION, BY_TIME, DynamoStore, EXPIRES_AT, Item, PARTITION_KEY, SORT_KEY, STATUS_KEY,
    STATUS_SORT, TIME_KEY, TIME_SORT, backend, decode, execution_sort, n, s, team_pk, to_json,
};
use crate::domain::evaluation::EventRecord;
use crate::domain::execution::{Execution, ExecutionStatus};
use crate::ports::{Listing, StoreResult};

pub const BY_STATUS: &str = "by_status";

/// How many times a batch call is made for what DynamoDB left unprocessed.
const MAX_ROUNDS: u32 = 8;

/// Before `round` (0 for the first call) of a batch call: a wait growing from 25 ms with
/// jitter, or an error once [`MAX_ROUNDS`] calls left items unprocessed.
async fn back_off(call: &str, round: u32) -> StoreResult<()> {
    if round == 0 {
        return Ok(());
    }
    if round >= MAX_ROUNDS {
        return Err(crate::ports::StoreError::Backend(format!(
            "DynamoDB {call}: items still unprocessed (throttled) after {MAX_ROUNDS} calls"
        )));
    }
    let ms = 25u64 << (round - 1).min(5);
    let jitter = rand::Rng::random_range(&mut rand::rng(), 0..=ms);
    tokio::time::sleep(std::time::Duration::from_millis(ms / 2 + jitter)).await;
    Ok(())
}

/// The `by_time` partition of a team's executions.
pub fn executions_partition(team: &str) -> String {
    format!("{team}#EXECUTIONS")
}

/// The `by_status` partition of a team's executions of one status.
pub fn status_partition(team: &str, status: ExecutionStatus) -> String {
    format!("{team}#EXECUTIONS#{}", status.as_str())
}

fn events_partition(team: &str) -> String {
    format!("{team}#EVENTS")
}

/// The index keys an execution item carries besides its own.
pub fn execution_index_keys(execution: &Execution, item: &mut Item) {
    let sort = execution_sort(execution.triggered_at_ms, &execution.id);
    let team = &execution.team;
    item.insert(TIME_KEY.into(), s(executions_partition(team)));
    item.insert(TIME_SORT.into(), s(&sort));
    item.insert(
        STATUS_KEY.into(),
        s(status_partition(team, execution.status)),
    );
    item.insert(STATUS_SORT.into(), s(sort));
}

/// A query of one index partition, newest first.
pub struct NewestFirst<'a> {
    pub kind: &'static str,
    pub team: &'a str,
    pub index: &'static str,
    pub key: (&'static str, String),
    pub sort: &'static str,
    /// The table sort key of the item a page starts after (its index sort key is read
    /// from it), if any.
    pub before: Option<String>,
    pub limit: usize,
    /// Leave out items whose TTL passed (DynamoDB deletes them late).
    pub live_only: bool,
    /// The index projects keys only: the items are read from the table.
    pub keys_only: bool,
}

impl DynamoStore {
    /// Up to `limit` items of an index partition, newest first, after `before`: a cursor
    /// that names no item gives an empty page. Items that cannot be read are listed as such.
    pub(super) async fn newest_first<T: DeserializeOwned>(
        &self,
        q: NewestFirst<'_>,
    ) -> StoreResult<Listing<T>> {
        self.newest_first_keeping(q, |_: &T| true).await
    }

    /// [`Self::newest_first`] of the readable items `keep` keeps (and the unreadable ones).
    pub(super) async fn newest_first_keeping<T: DeserializeOwned>(
        &self,
        q: NewestFirst<'_>,
        keep: impl Fn(&T) -> bool,
    ) -> StoreResult<Listing<T>> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(q.index)
            .expression_attribute_names("#k", q.key.0)
            .expression_attribute_values(":k", s(q.key.1))
            .scan_index_forward(false)
            .limit(q.limit.clamp(1, 1000) as i32);
        query = match q.before {
            None => query.key_condition_expression("#k = :k"),
            Some(sk) => {
                // The cursor's index key, read as stored: an unreadable body is a cursor too.
                let cursor =
                    self.get(team_pk(q.team), sk)
                        .await?
                        .and_then(|item| match item.get(q.sort) {
                            Some(AttributeValue::S(sort)) => Some(sort.clone()),
                            _ => None,
                        });
                let Some(cursor) = cursor else {
                    return Ok(Listing::default());
                };
                query
                    .key_condition_expression("#k = :k AND #s < :before")
                    .expression_attribute_names("#s", q.sort)
                    .expression_attribute_values(":before", s(cursor))
            }
        };
        let now = self.clock.now().unix_timestamp();
        // A page stops at 1 MB: keep asking until `limit` items or the end.
        let mut out = Listing::default();
        let mut start = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend("Query", e))?;
            // A page holds at most `limit` entries (the query's limit), all read.
            let items = if q.keys_only {
                self.read_items(page.items().to_vec(), false).await?
            } else {
                page.items().to_vec()
            };
            for item in &items {
                // TTL deletes late: an expired item is gone.
                let expired = q.live_only
                    && matches!(item.get(EXPIRES_AT), Some(AttributeValue::N(t)) if t.parse::<i64>().is_ok_and(|t| t <= now));
                if expired || out.entries.len() >= q.limit {
                    continue;
                }
                let entry = decode(q.kind, item);
                if entry.as_ref().map_or(true, &keep) {
                    out.entries.push(entry);
                }
            }
            start = page.last_evaluated_key().cloned();
            if out.entries.len() >= q.limit || start.is_none() {
                return Ok(out);
            }
        }
    }

    /// The table's items that `keys` (items holding at least the table's keys) name, in
    /// their order, read `consistent`ly or not (one that does not exist is left out):
    /// `BatchGetItem`s of up to 100 keys, asking again for what comes back unprocessed.
    pub(super) async fn read_items(
        &self,
        keys: Vec<Item>,
        consistent: bool,
    ) -> StoreResult<Vec<Item>> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let key_of = |item: &Item| -> Option<(String, String)> {
            match (item.get(PARTITION_KEY), item.get(SORT_KEY)) {
                (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                    Some((pk.clone(), sk.clone()))
                }
                _ => None,
            }
        };
        let order: Vec<(String, String)> = keys.iter().filter_map(key_of).collect();
        let mut found: HashMap<(String, String), Item> = HashMap::new();
        for chunk in order.chunks(100) {
            let mut ask: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        (PARTITION_KEY.to_string(), s(pk)),
                        (SORT_KEY.to_string(), s(sk)),
                    ])
                })
                .collect();
            for round in 0.. {
                if ask.is_empty() {
                    break;
                }
                back_off("BatchGetItem", round).await?;
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut ask)))
                    .consistent_read(consistent)
                    .build()
                    .map_err(|e| backend("BatchGetItem", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| backend("BatchGetItem", e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(key) = key_of(item) {
                        found.insert(key, item.clone());
                    }
                }
                ask = out
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
        }
        Ok(order.into_iter().filter_map(|k| found.remove(&k)).collect())
    }

    pub(super) async fn automation_executions(
        &self,
        team: &str,
        automation_id: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>> {
        self.newest_first(NewestFirst {
            kind: "execution",
            team,
            index: BY_AUTOMATION,
            key: (super::AUTOMATION_KEY, format!("{team}#{automation_id}")),
            sort: super::AUTOMATION_SORT,
            before: before.map(|id| format!("EXECUTION#{id}")),
            limit,
            live_only: false,
            keys_only: false,
        })
        .await
    }

    pub(super) async fn team_executions(
        &self,
        team: &str,
        status: Option<ExecutionStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Execution>> {
        let (index, key, sort) = match status {
            None => (BY_TIME, (TIME_KEY, executions_partition(team)), TIME_SORT),
            Some(status) => (
                BY_STATUS,
                (STATUS_KEY, status_partition(team, status)),
                STATUS_SORT,
            ),
        };
        let query = NewestFirst {
            kind: "execution",
            team,
            index,
            key,
            sort,
            before: before.map(|id| format!("EXECUTION#{id}")),
            limit,
            live_only: false,
            keys_only: true,
        };
        // The index lags the table: an execution whose status just changed may still be
        // filed under its old one. Its body, read from the table, is what it is now.
        self.newest_first_keeping(query, |e: &Execution| {
            status.is_none_or(|wanted| e.status == wanted)
        })
        .await
    }

    pub(super) async fn put_event_records(
        &self,
        records: &[EventRecord],
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let mut requests = Vec::with_capacity(records.len());
        for record in records {
            let team = &record.event.team;
            let mut item = Self::base_item(team, format!("EVALUATED#{}", record.id()), {
                to_json(record)?
            });
            item.insert(EXPIRES_AT.into(), n(expires_at.unix_timestamp()));
            item.insert(TIME_KEY.into(), s(events_partition(team)));
            item.insert(
                TIME_SORT.into(),
                s(execution_sort(record.event.received_at_ms, record.id())),
            );
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| backend("BatchWriteItem", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        // One batch may not name an item twice: a redelivered event keeps its last record.
        let mut unique: HashMap<String, WriteRequest> = HashMap::new();
        for (record, request) in records.iter().zip(requests) {
            unique.insert(format!("{}/{}", record.event.team, record.id()), request);
        }
        self.batch_write(unique.into_values().collect()).await
    }

    pub(super) async fn event_records(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<EventRecord>> {
        self.newest_first(NewestFirst {
            kind: "event",
            team,
            index: BY_TIME,
            key: (TIME_KEY, events_partition(team)),
            sort: TIME_SORT,
            before: before.map(|id| format!("EVALUATED#{id}")),
            limit,
            live_only: true,
            keys_only: true,
        })
        .await
    }

    /// Writes `requests` in batches of 25, sending back what DynamoDB left unprocessed
    /// (throttled) after a growing, jittered wait, up to [`MAX_ROUNDS`] times.
    pub(super) async fn batch_write(&self, requests: Vec<WriteRequest>) -> StoreResult<()> {
        let mut requests = requests;
        while !requests.is_empty() {
            let rest = requests.split_off(requests.len().min(25));
            let mut batch = std::mem::replace(&mut requests, rest);
            for round in 0.. {
                if batch.is_empty() {
                    break;
                }
                back_off("BatchWriteItem", round).await?;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut batch))
                    .send()
                    .await
                    .map_err(|e| backend("BatchWriteItem", e))?;
                batch = out
                    .unprocessed_items()
                    .and_then(|u| u.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
            }
        }
        Ok(())
    }
}
