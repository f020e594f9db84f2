//! `AccessStore` on the same table.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | key, found by its hash | `KEY#{sha256 hex}` | `KEY` | body |
//! | key, listed in its team | `TEAM#{team}` | `API_KEY#{id}` | body, `key_hash` |
//! | audit entry | `TEAM#{team}` | `AUDIT#{id}` | body, TTL `expires_at` |
//!
//! A key's two items are written and deleted in one transaction, so a key is either found
//! by its hash and listed, or neither.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use time::OffsetDateTime;

use super::{
    BODY, EXPIRES_AT, Item, PARTITION_KEY, SORT_KEY, backend, body, decode, get_item, n,
    query_prefix, s, team_pk, to_json, transact,
};
use crate::domain::access::{ApiKey, AuditEntry, KeyHash, StoredKey};
use crate::ports::{AccessStore, Clock, KeyLookup, Listing, StoreError, StoreResult, Unreadable};

/// The attribute of a key's team item that names its hash item.
pub const KEY_HASH: &str = "key_hash";

pub struct DynamoAccess {
    client: Client,
    table: String,
    clock: Arc<dyn Clock>,
}

fn hash_pk(hex: &str) -> AttributeValue {
    s(format!("KEY#{hex}"))
}

impl DynamoAccess {
    pub fn new(client: Client, table: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            table: table.into(),
            clock,
        }
    }

    async fn get(&self, pk: AttributeValue, sk: String) -> StoreResult<Option<Item>> {
        get_item(&self.client, &self.table, pk, sk).await
    }

    fn put(&self, item: Item) -> StoreResult<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .build()
            .map_err(|e| backend("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(&self, pk: AttributeValue, sk: &str) -> StoreResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key(PARTITION_KEY, pk)
            .key(SORT_KEY, s(sk))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PARTITION_KEY)
            .build()
            .map_err(|e| backend("TransactWriteItems", e))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> StoreResult<bool> {
        transact(&self.client, items).await
    }
}

#[async_trait]
impl AccessStore for DynamoAccess {
    async fn create_key(&self, key: &ApiKey, hash: &KeyHash) -> StoreResult<()> {
        let (hex, json) = (hash.to_hex(), to_json(key)?);
        let by_hash: Item = HashMap::from([
            (PARTITION_KEY.to_string(), hash_pk(&hex)),
            (SORT_KEY.to_string(), s("KEY")),
            (BODY.to_string(), s(&json)),
        ]);
        let in_team: Item = HashMap::from([
            (PARTITION_KEY.to_string(), team_pk(&key.team)),
            (SORT_KEY.to_string(), s(format!("API_KEY#{}", key.id))),
            (BODY.to_string(), s(json)),
            (KEY_HASH.to_string(), s(hex)),
        ]);
        if self
            .transact(vec![self.put(by_hash)?, self.put(in_team)?])
            .await?
        {
            Ok(())
        } else {
            Err(StoreError::Conflict("this key or key id exists".into()))
        }
    }

    async fn key_by_hash(
        &self,
        hash: &KeyHash,
        _lookup: KeyLookup,
    ) -> StoreResult<Option<StoredKey>> {
        let Some(item) = self.get(hash_pk(&hash.to_hex()), "KEY".into()).await? else {
            return Ok(None);
        };
        let key: ApiKey = body("api key", &item)?;
        let stored = match item.get(PARTITION_KEY) {
            Some(AttributeValue::S(pk)) => pk.strip_prefix("KEY#").and_then(KeyHash::from_hex),
            _ => None,
        };
        let hash = stored.ok_or_else(|| {
            StoreError::Unreadable(Unreadable {
                kind: "api key",
                id: key.id.clone(),
                error: "its hash is not 64 hex digits".into(),
            })
        })?;
        Ok(Some(StoredKey { key, hash }))
    }

    async fn list_keys(&self, team: &str) -> StoreResult<Listing<ApiKey>> {
        let items = query_prefix(&self.client, &self.table, team, "API_KEY#").await?;
        Ok(items.iter().map(|item| decode("api key", item)).collect())
    }

    async fn get_key(&self, team: &str, id: &str) -> StoreResult<Option<ApiKey>> {
        self.get(team_pk(team), format!("API_KEY#{id}"))
            .await?
            .map(|item| body("api key", &item))
            .transpose()
    }

    async fn revoke_key(&self, team: &str, id: &str) -> StoreResult<bool> {
        let sk = format!("API_KEY#{id}");
        let Some(item) = self.get(team_pk(team), sk.clone()).await? else {
            return Ok(false);
        };
        let Some(AttributeValue::S(hex)) = item.get(KEY_HASH) else {
            return Err(StoreError::Backend(format!(
                "API key {id} of team {team} has no {KEY_HASH}"
            )));
        };
        let items = vec![
            self.delete(team_pk(team), &sk)?,
            self.delete(hash_pk(hex), "KEY")?,
        ];
        // Failed on its condition: revoked meanwhile by someone else.
        self.transact(items).await
    }

    async fn append_audit(
        &self,
        entry: &AuditEntry,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let item: Item = HashMap::from([
            (PARTITION_KEY.to_string(), team_pk(&entry.team)),
            (SORT_KEY.to_string(), s(format!("AUDIT#{}", entry.id))),
            (BODY.to_string(), s(to_json(entry)?)),
            (EXPIRES_AT.to_string(), n(expires_at.unix_timestamp())),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| backend("PutItem", e))?;
        Ok(())
    }

    async fn list_audit(
        &self,
        team: &str,
        limit: usize,
        before: Option<&str>,
    ) -> StoreResult<Listing<AuditEntry>> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_names("#pk", PARTITION_KEY)
            .expression_attribute_names("#sk", SORT_KEY)
            .expression_attribute_values(":pk", team_pk(team))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit((limit + 1).clamp(1, 1000) as i32);
        let cursor = before.map(|id| format!("AUDIT#{id}"));
        query = match &cursor {
            None => query
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_values(":prefix", s("AUDIT#")),
            // BETWEEN takes its bounds in: the cursor itself is skipped below.
            Some(cursor) => query
                .key_condition_expression("#pk = :pk AND #sk BETWEEN :low AND :cursor")
                .expression_attribute_values(":low", s("AUDIT#"))
                .expression_attribute_values(":cursor", s(cursor)),
        };
        let now = self.clock.now().unix_timestamp();
        let mut out = Listing::default();
        let mut start = None;
        loop {
            let page = query
                .clone()
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| backend("Query", e))?;
            for item in page.items() {
                let is_cursor = matches!(
                    (item.get(SORT_KEY), &cursor),
                    (Some(AttributeValue::S(sk)), Some(c)) if sk == c
                );
                // TTL deletes late: an expired entry is gone.
                let expired = matches!(item.get(EXPIRES_AT), Some(AttributeValue::N(t)) if t.parse::<i64>().is_ok_and(|t| t <= now));
                if is_cursor || expired || out.entries.len() >= limit {
                    continue;
                }
                out.entries
                    .push(decode("audit entry", item).map(|mut e: AuditEntry| {
                        e.team = team.to_string();
                        e
                    }));
            }
            start = page.last_evaluated_key().cloned();
            if out.entries.len() >= limit || start.is_none() {
                return Ok(out);
            }
        }
    }
}
