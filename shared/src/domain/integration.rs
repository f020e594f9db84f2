//! Integrations: where actions deliver (a webhook receiver today).

use serde::{Deserialize, Serialize};

use super::template::is_secret_name;
use super::{Invalid, check_name};
use crate::delivery::guard::OutboundGuard;

/// A team's webhook receiver. Secrets are referenced by name, never stored here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub id: String,
    pub team: String,
    #[serde(rename = "type")]
    pub kind: IntegrationKind,
    pub name: String,
    pub url: String,
    pub access_token_secret: Option<String>,
    pub signing_secret: Option<String>,
    pub enabled: bool,
    /// Why the engine disabled it (a 410 from the receiver), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    Webhook,
}

/// An integration as a client creates or replaces it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub access_token_secret: Option<String>,
    #[serde(default)]
    pub signing_secret: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// The parts of an integration that passed validation.
pub struct ValidIntegration {
    pub kind: IntegrationKind,
    pub name: String,
    pub url: String,
    pub access_token_secret: Option<String>,
    pub signing_secret: Option<String>,
    pub enabled: bool,
}

impl IntegrationInput {
    pub fn validate(self, guard: &OutboundGuard) -> Result<ValidIntegration, Invalid> {
        let kind = match self.kind.as_str() {
            "webhook" => IntegrationKind::Webhook,
            "slack" => {
                return Err(Invalid::new(
                    "type",
                    "slack integrations are not supported yet by this version; use a webhook",
                ));
            }
            other => {
                return Err(Invalid::new(
                    "type",
                    format!("unknown integration type {other:?}; expected \"webhook\""),
                ));
            }
        };
        check_name("name", &self.name)?;
        let url = guard
            .check_url(&self.url)
            .map_err(|e| Invalid::new("url", e.to_string()))?;
        for (field, secret) in [
            ("access_token_secret", &self.access_token_secret),
            ("signing_secret", &self.signing_secret),
        ] {
            if secret.as_deref().is_some_and(|name| !is_secret_name(name)) {
                return Err(Invalid::new(field, "must name a team secret: [A-Z0-9_]+"));
            }
        }
        Ok(ValidIntegration {
            kind,
            name: self.name,
            url: url.to_string(),
            access_token_secret: self.access_token_secret,
            signing_secret: self.signing_secret,
            enabled: self.enabled,
        })
    }
}

impl Integration {
    /// The secrets this integration uses.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.access_token_secret
            .iter()
            .chain(self.signing_secret.iter())
            .map(String::as_str)
    }
}
