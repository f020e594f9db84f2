//! `SecretStore` on Secrets Manager: a team's secret `NAME` is the secret
//! `{prefix}{team}/{NAME}`.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::describe;
use crate::domain::event::format_time;
use crate::ports::{SecretInfo, SecretStore, SecretValue, StoreError, StoreResult};

pub struct SecretsManagerSecrets {
    client: Client,
    prefix: String,
}

impl SecretsManagerSecrets {
    /// `prefix` is `AUTOMATIONS_SECRETS_PREFIX` (default `automations/`).
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    fn id(&self, team: &str, name: &str) -> String {
        format!("{}{team}/{name}", self.prefix)
    }
}

fn failed(what: &str, e: impl std::error::Error + 'static) -> StoreError {
    StoreError::Backend(format!("Secrets Manager {what}: {}", describe(&e)))
}

#[async_trait]
impl SecretStore for SecretsManagerSecrets {
    async fn put_secret(&self, team: &str, name: &str, value: &SecretValue) -> StoreResult<()> {
        let id = self.id(team, name);
        let put = self
            .client
            .put_secret_value()
            .secret_id(&id)
            .secret_string(&value.0)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                let created = self
                    .client
                    .create_secret()
                    .name(&id)
                    .secret_string(&value.0)
                    .send()
                    .await;
                match created {
                    Ok(_) => Ok(()),
                    // Another request created it first: write this value over it.
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|s| s.is_resource_exists_exception()) =>
                    {
                        let put = self
                            .client
                            .put_secret_value()
                            .secret_id(&id)
                            .secret_string(&value.0);
                        put.send()
                            .await
                            .map(|_| ())
                            .map_err(|e| failed("PutSecretValue", e))
                    }
                    Err(e) => Err(failed("CreateSecret", e)),
                }
            }
            Err(e) => Err(failed("PutSecretValue", e)),
        }
    }

    async fn get_secret(&self, team: &str, name: &str) -> StoreResult<Option<SecretValue>> {
        match self
            .client
            .get_secret_value()
            .secret_id(self.id(team, name))
            .send()
            .await
        {
            Ok(out) => Ok(out.secret_string().map(|v| SecretValue(v.to_string()))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(failed("GetSecretValue", e)),
        }
    }

    async fn list_secrets(&self, team: &str) -> StoreResult<Vec<SecretInfo>> {
        let prefix = self.id(team, "");
        let filter = Filter::builder()
            .key(FilterNameStringType::Name)
            .values(&prefix)
            .build();
        let mut pages = self
            .client
            .list_secrets()
            .filters(filter)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| failed("ListSecrets", e))?;
            for entry in page.secret_list() {
                // The filter matches words anywhere in the name; keep exactly this team's.
                let Some(name) = entry.name().and_then(|n| n.strip_prefix(&prefix)) else {
                    continue;
                };
                if name.contains('/') || entry.deleted_date().is_some() {
                    continue;
                }
                let changed = entry.last_changed_date().or(entry.created_date());
                let updated_at = changed
                    .and_then(|d| time::OffsetDateTime::from_unix_timestamp(d.secs()).ok())
                    .map(format_time)
                    .unwrap_or_default();
                out.push(SecretInfo {
                    name: name.to_string(),
                    updated_at,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete_secret(&self, team: &str, name: &str) -> StoreResult<bool> {
        // A forced delete of a missing secret succeeds; whether it existed is asked first.
        if self.get_secret(team, name).await?.is_none() {
            return Ok(false);
        }
        let deleted = self
            .client
            .delete_secret()
            .secret_id(self.id(team, name))
            .force_delete_without_recovery(true)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(failed("DeleteSecret", e)),
        }
    }
}
