//! `MetricStore` on the same table: one item per (team, run, metric).
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | metric state | `RUN#{team}#{run}` | `METRIC#{metric}` | body, `version`, TTL `expires_at` |
//!
//! A run is its own partition, so that one team's busy runs do not share one. Team names
//! hold no `#`, and the run and the metric each end their key, so no two keys collide.
//! Writes are conditional on the version read (or, for the first, on there being no item
//! or only an expired one).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use super::{
    BODY, EXPIRES_AT, Item, PARTITION_KEY, SORT_KEY, VERSION, backend, body, condition_failed,
    get_item, n, s, to_json,
};
use crate::domain::metric::MetricState;
use crate::ports::{Clock, MetricStore, StoreError, StoreResult, Versioned};

pub struct DynamoMetrics {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

impl DynamoMetrics {
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }
}

fn run_pk(team: &str, run: &str) -> AttributeValue {
    s(format!("RUN#{team}#{run}"))
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

#[async_trait]
impl MetricStore for DynamoMetrics {
    async fn get_metric_state(
        &self,
        team: &str,
        run: &str,
        metric: &str,
    ) -> StoreResult<Option<Versioned<MetricState>>> {
        let sk = format!("METRIC#{metric}");
        let Some(item) = get_item(&self.client, &self.table, run_pk(team, run), sk).await? else {
            return Ok(None);
        };
        // TTL deletes late: an expired state is gone.
        let now = self.clock.now().unix_timestamp();
        if number(&item, EXPIRES_AT).is_none_or(|at| at <= now) {
            return Ok(None);
        }
        let value: MetricState = body("metric state", &item)?;
        let version = number(&item, VERSION).unwrap_or_default().max(0) as u64;
        Ok(Some(Versioned { value, version }))
    }

    async fn put_metric_state(
        &self,
        team: &str,
        run: &str,
        metric: &str,
        state: &MetricState,
        version: u64,
        expires_at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let next = version + 1;
        let item: Item = HashMap::from([
            (PARTITION_KEY.to_string(), run_pk(team, run)),
            (SORT_KEY.to_string(), s(format!("METRIC#{metric}"))),
            (BODY.to_string(), s(to_json(state)?)),
            (VERSION.to_string(), n(next)),
            (EXPIRES_AT.to_string(), n(expires_at.unix_timestamp())),
        ]);
        let now = self.clock.now().unix_timestamp();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .expression_attribute_names("#exp", EXPIRES_AT)
            .expression_attribute_values(":now", n(now));
        let put = if version == 0 {
            put.condition_expression("attribute_not_exists(#pk) OR #exp <= :now")
                .expression_attribute_names("#pk", PARTITION_KEY)
        } else {
            put.condition_expression("#v = :v AND #exp > :now")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", n(version))
        };
        match put.send().await {
            Ok(_) => Ok(next),
            Err(e) if condition_failed(&e) => Err(StoreError::Stale),
            Err(e) => Err(backend("PutItem", e)),
        }
    }
}
