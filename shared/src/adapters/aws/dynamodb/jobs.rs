//! `JobStore` on the same table.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | queue | `TEAM#{team}` | `QUEUE#{name}` | body, `open_jobs` |
//! | job | `TEAM#{team}` | `JOB#{id}` | body, `version`, `status`, `lease_ms`; `by_queue`: `{team}#{queue}#{status}`, `{enqueued ms}#{id}`; TTL `expires_at` once ended |
//!
//! A claim reads the `RUNNING` partition of its queue in `by_queue` for expired leases (a
//! queue has as many running jobs as its agents run at once) and the first items of the
//! `PENDING` one, in enqueue order; no scans. Adding a job and ending one move the queue's
//! `open_jobs` in the same transaction, and a queue is deleted only while that is 0.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::{
    BODY, EXECUTION_RETENTION, EXPIRES_AT, Item, PARTITION_KEY, SORT_KEY, VERSION, backend, body,
    condition_failed, decode, get_item, n, query_prefix, s, team_pk, to_json, transact,
};
use crate::domain::job::{Job, JobQueue, JobStatus, open_jobs_conflict};
use crate::ports::{Enqueued, JobStore, Listing, StoreError, StoreResult};

pub const BY_QUEUE: &str = "by_queue";
pub const QUEUE_KEY: &str = "queue_pk";
pub const QUEUE_SORT: &str = "queue_sk";
const OPEN_JOBS: &str = "open_jobs";
const STATUS: &str = "status";
const LEASE: &str = "lease_ms";

pub struct DynamoJobs {
    client: Client,
    table: String,
}

impl DynamoJobs {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn queue_key(&self, team: &str, queue: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (PARTITION_KEY.to_string(), team_pk(team)),
            (SORT_KEY.to_string(), s(format!("QUEUE#{queue}"))),
        ])
    }

    /// Moves a queue's open count by `delta` (the queue must exist).
    fn count(&self, team: &str, queue: &str, delta: i64) -> StoreResult<TransactWriteItem> {
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(self.queue_key(team, queue)))
            .update_expression("SET #open = #open + :delta")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#open", OPEN_JOBS)
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_values(":delta", n(delta))
            .build()
            .map_err(|e| backend("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    fn job_item(&self, job: &Job) -> StoreResult<Item> {
        let mut item = HashMap::from([
            (PARTITION_KEY.to_string(), team_pk(&job.team)),
            (SORT_KEY.to_string(), s(format!("JOB#{}", job.id))),
            (BODY.to_string(), s(to_json(job)?)),
            (VERSION.to_string(), n(job.version)),
            (STATUS.to_string(), s(job.status.as_str())),
            (
                QUEUE_KEY.to_string(),
                s(queue_partition(&job.team, &job.queue, job.status)),
            ),
            (QUEUE_SORT.to_string(), s(job_sort(job))),
        ]);
        if let Some(lease) = job.lease_expires_at_ms {
            item.insert(LEASE.to_string(), n(lease));
        }
        if let Some(ended) = job.ended_at_ms {
            let expires = ended / 1000 + EXECUTION_RETENTION.as_secs() as i64;
            item.insert(EXPIRES_AT.to_string(), n(expires));
        }
        Ok(item)
    }

    /// Up to `limit` items of one partition of `by_queue`, newest or oldest first, beyond
    /// the sort key `beyond` in that order; with `expired_by`, only leases expired by then.
    async fn query_queue(
        &self,
        partition: String,
        newest_first: bool,
        beyond: Option<&str>,
        limit: usize,
        expired_by: Option<i64>,
    ) -> StoreResult<Vec<Item>> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(BY_QUEUE)
            .expression_attribute_names("#qpk", QUEUE_KEY)
            .expression_attribute_values(":qpk", s(partition))
            .scan_index_forward(!newest_first);
        query = match beyond {
            Some(sort) => query
                .key_condition_expression(if newest_first {
                    "#qpk = :qpk AND #qsk < :beyond"
                } else {
                    "#qpk = :qpk AND #qsk > :beyond"
                })
                .expression_attribute_names("#qsk", QUEUE_SORT)
                .expression_attribute_values(":beyond", s(sort)),
            None => query.key_condition_expression("#qpk = :qpk"),
        };
        query = match expired_by {
            // The filter applies after each page's limit: read pages until enough matched.
            Some(now) => query
                .filter_expression("#lease <= :now")
                .expression_attribute_names("#lease", LEASE)
                .expression_attribute_values(":now", n(now)),
            None => query.limit(limit as i32),
        };
        let mut items = Vec::new();
        let mut pages = query.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| backend("Query", e))?;
            items.extend(page.items.unwrap_or_default());
            if items.len() >= limit {
                break;
            }
        }
        items.truncate(limit);
        Ok(items)
    }
}

fn queue_partition(team: &str, queue: &str, status: JobStatus) -> String {
    format!("{team}#{queue}#{}", status.as_str())
}

fn job_sort(job: &Job) -> String {
    format!("{:015}#{}", job.enqueued_at_ms.max(0), job.id)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl JobStore for DynamoJobs {
    async fn create_queue(&self, queue: &JobQueue) -> StoreResult<()> {
        let mut item = self.queue_key(&queue.team, &queue.name);
        item.insert(BODY.to_string(), s(to_json(queue)?));
        item.insert(OPEN_JOBS.to_string(), n(0));
        match self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Err(StoreError::Conflict(format!(
                "a queue named {} exists in this team",
                queue.name
            ))),
            Err(e) => Err(backend("PutItem", e)),
        }
    }

    async fn get_queue(&self, team: &str, name: &str) -> StoreResult<Option<JobQueue>> {
        get_item(
            &self.client,
            &self.table,
            team_pk(team),
            format!("QUEUE#{name}"),
        )
        .await?
        .map(|item| body("queue", &item))
        .transpose()
    }

    async fn list_queues(&self, team: &str) -> StoreResult<Listing<JobQueue>> {
        let items = query_prefix(&self.client, &self.table, team, "QUEUE#").await?;
        Ok(items.iter().map(|item| decode("queue", item)).collect())
    }

    async fn delete_queue(&self, team: &str, name: &str) -> StoreResult<bool> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.queue_key(team, name)))
            .condition_expression("#open = :zero")
            .expression_attribute_names("#open", OPEN_JOBS)
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => {
                let item = get_item(
                    &self.client,
                    &self.table,
                    team_pk(team),
                    format!("QUEUE#{name}"),
                )
                .await?;
                match item {
                    None => Ok(false),
                    Some(item) => Err(StoreError::Conflict(open_jobs_conflict(
                        number(&item, OPEN_JOBS).unwrap_or_default(),
                    ))),
                }
            }
            Err(e) => Err(backend("DeleteItem", e)),
        }
    }

    async fn enqueue(&self, job: &Job) -> StoreResult<Enqueued> {
        let mut stored = job.clone();
        stored.version = 1;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(self.job_item(&stored)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .build()
            .map_err(|e| backend("TransactWriteItems", e))?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            self.count(&job.team, &job.queue, 1)?,
        ];
        if transact(&self.client, items).await? {
            return Ok(Enqueued::Created);
        }
        // A condition failed: the job exists, or the queue does not.
        if self.get_job(&job.team, &job.id).await?.is_some() {
            return Ok(Enqueued::Existed);
        }
        match self.get_queue(&job.team, &job.queue).await? {
            None => Ok(Enqueued::NoQueue),
            Some(_) => Err(StoreError::Backend(
                "DynamoDB TransactWriteItems failed a condition that holds now; try again".into(),
            )),
        }
    }

    async fn get_job(&self, team: &str, id: &str) -> StoreResult<Option<Job>> {
        get_item(
            &self.client,
            &self.table,
            team_pk(team),
            format!("JOB#{id}"),
        )
        .await?
        .map(|item| body("job", &item))
        .transpose()
    }

    async fn claimable_jobs(
        &self,
        team: &str,
        queue: &str,
        now_ms: i64,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        let running = queue_partition(team, queue, JobStatus::Running);
        let mut items = self
            .query_queue(running, false, None, limit, Some(now_ms))
            .await?;
        if items.len() < limit {
            let pending = queue_partition(team, queue, JobStatus::Pending);
            let left = limit - items.len();
            items.extend(self.query_queue(pending, false, None, left, None).await?);
        }
        // The index is eventually consistent: the claim's conditional write decides.
        let listing: Listing<Job> = items.iter().map(|item| decode("job", item)).collect();
        Ok(listing.into_items(team))
    }

    async fn update_job(&self, job: &mut Job) -> StoreResult<()> {
        let expected = job.version;
        let mut next = job.clone();
        next.version = expected + 1;
        let item = self.job_item(&next)?;
        // Only an open job of the version read is replaced.
        const OPEN_AND_READ: &str = "#v = :v AND (#st = :pending OR #st = :running)";
        let names = HashMap::from([
            ("#v".to_string(), VERSION.to_string()),
            ("#st".to_string(), STATUS.to_string()),
        ]);
        let values = HashMap::from([
            (":v".to_string(), n(expected)),
            (":pending".to_string(), s(JobStatus::Pending.as_str())),
            (":running".to_string(), s(JobStatus::Running.as_str())),
        ]);
        let written = if next.status.is_open() {
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(OPEN_AND_READ)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values));
            match put.send().await {
                Ok(_) => true,
                Err(e) if condition_failed(&e) => false,
                Err(e) => return Err(backend("PutItem", e)),
            }
        } else {
            // Ended: the queue's open count goes down in the same transaction.
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(OPEN_AND_READ)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(|e| backend("TransactWriteItems", e))?;
            let items = vec![
                TransactWriteItem::builder().put(put).build(),
                self.count(&next.team, &next.queue, -1)?,
            ];
            transact(&self.client, items).await?
        };
        if !written {
            return Err(StoreError::Stale);
        }
        job.version = expected + 1;
        Ok(())
    }

    async fn list_jobs(
        &self,
        team: &str,
        queue: &str,
        status: Option<JobStatus>,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<Job>> {
        // The cursor's place in the index, from its item's key attribute: an item that
        // cannot be decoded still has one. A cursor that names no job ends the listing.
        let beyond = match before {
            None => None,
            Some(id) => {
                let item = get_item(
                    &self.client,
                    &self.table,
                    team_pk(team),
                    format!("JOB#{id}"),
                )
                .await?;
                match item.as_ref().and_then(|item| item.get(QUEUE_SORT)) {
                    Some(AttributeValue::S(sort)) => Some(sort.clone()),
                    _ => return Ok(Listing::default()),
                }
            }
        };
        let statuses: Vec<JobStatus> = match status {
            Some(status) => vec![status],
            None => JobStatus::ALL.to_vec(),
        };
        // Each status is its own partition: the newest `limit` of each, merged.
        let mut items = Vec::new();
        for status in statuses {
            let partition = queue_partition(team, queue, status);
            items.extend(
                self.query_queue(partition, true, beyond.as_deref(), limit, None)
                    .await?,
            );
        }
        let sort = |item: &Item| match item.get(QUEUE_SORT) {
            Some(AttributeValue::S(v)) => v.clone(),
            _ => String::new(),
        };
        items.sort_by_key(|item| std::cmp::Reverse(sort(item)));
        items.truncate(limit);
        Ok(items.iter().map(|item| decode("job", item)).collect())
    }
}
