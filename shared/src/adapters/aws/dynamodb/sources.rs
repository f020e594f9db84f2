//! `SourceStore` on the table: a source is an item `TEAM#{team}` / `SOURCE#{id}`, its name
//! kept unique by a lock item `SOURCE_NAME#{name}` written in the same transaction.

use async_trait::async_trait;

use super::{DynamoStore, NAME, Named, decode, s, to_json};
use crate::domain::source::Source;
use crate::ports::{Listing, SourceStore, StoreResult};

#[async_trait]
impl SourceStore for DynamoStore {
    async fn create_source(&self, source: &Source) -> StoreResult<()> {
        let mut item = Self::base_item(
            &source.team,
            format!("SOURCE#{}", source.id),
            to_json(source)?,
        );
        item.insert(NAME.into(), s(&source.name));
        let named = Named {
            kind: "SOURCE",
            team: &source.team,
            id: &source.id,
            name: &source.name,
            item,
        };
        self.put_named(named, true).await
    }

    async fn get_source(&self, team: &str, id: &str) -> StoreResult<Option<Source>> {
        self.get_body("source", team, format!("SOURCE#{id}")).await
    }

    async fn list_sources(&self, team: &str) -> StoreResult<Listing<Source>> {
        Ok(self
            .query_prefix(team, "SOURCE#")
            .await?
            .iter()
            .map(|item| decode("source", item))
            .collect())
    }

    async fn delete_source(&self, team: &str, id: &str) -> StoreResult<bool> {
        self.delete_named("SOURCE", team, id).await
    }
}
