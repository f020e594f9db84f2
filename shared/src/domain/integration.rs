//! Integrations: where actions deliver. A webhook receiver at a URL, or a Slack or
//! Microsoft Teams channel whose webhook URL is a team secret (the URL is the credential).

use serde::{Deserialize, Serialize};

use super::template::is_secret_name;
use super::{Invalid, check_name, is_name_byte};
use crate::delivery::guard::OutboundGuard;

/// A team's integration. Secrets are referenced by name, never stored here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub id: String,
    pub team: String,
    pub name: String,
    /// The type and its settings (`type`, then `url`… or `webhook_url_secret`…).
    #[serde(flatten)]
    pub destination: Destination,
    pub enabled: bool,
    /// Why the engine disabled it (a 410, or a permanent Slack or Teams error), if it did.
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Where an integration delivers, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Destination {
    Webhook {
        url: String,
        #[serde(default)]
        access_token_secret: Option<String>,
        #[serde(default)]
        signing_secret: Option<String>,
    },
    /// A Slack incoming webhook.
    Slack {
        webhook_url_secret: String,
        /// Legacy webhooks post to this channel instead of their own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
    },
    /// A Microsoft Teams Workflows webhook ("Post to a channel when a webhook request is
    /// received").
    Teams { webhook_url_secret: String },
}

impl Destination {
    /// The type as the API names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Destination::Webhook { .. } => "webhook",
            Destination::Slack { .. } => "slack",
            Destination::Teams { .. } => "teams",
        }
    }

    /// Whether a `notification` action can deliver through it.
    pub fn takes_notifications(&self) -> bool {
        !matches!(self, Destination::Webhook { .. })
    }
}

/// The integration types, as the API names them.
pub const KINDS: [&str; 3] = ["webhook", "slack", "teams"];

/// An integration as a client creates or replaces it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub access_token_secret: Option<String>,
    #[serde(default)]
    pub signing_secret: Option<String>,
    #[serde(default)]
    pub webhook_url_secret: Option<String>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
}

fn enabled_by_default() -> bool {
    true
}

/// The parts of an integration that passed validation.
pub struct ValidIntegration {
    pub name: String,
    pub destination: Destination,
    pub enabled: bool,
}

impl IntegrationInput {
    /// Checks everything that can be checked without the secret store: the URL of a
    /// webhook through the guard here, the URL a Slack or Teams secret holds by the caller.
    pub fn validate(self, guard: &OutboundGuard) -> Result<ValidIntegration, Invalid> {
        check_name("name", &self.name)?;
        let destination = match self.kind.as_str() {
            "webhook" => {
                refuse(&self.webhook_url_secret, "webhook_url_secret", "webhook")?;
                refuse(&self.channel, "channel", "webhook")?;
                let url = self.url.as_deref().ok_or_else(|| {
                    Invalid::new(
                        "url",
                        "missing: the receiver's URL, e.g. https://ci.example.com/hook",
                    )
                })?;
                let url = guard
                    .check_url(url)
                    .map_err(|e| Invalid::new("url", e.to_string()))?;
                for (field, secret) in [
                    ("access_token_secret", &self.access_token_secret),
                    ("signing_secret", &self.signing_secret),
                ] {
                    check_secret_name(field, secret.as_deref())?;
                }
                Destination::Webhook {
                    url: url.to_string(),
                    access_token_secret: self.access_token_secret,
                    signing_secret: self.signing_secret,
                }
            }
            kind @ ("slack" | "teams") => {
                if self.url.is_some() {
                    return Err(Invalid::new(
                        "url",
                        format!(
                            "a {kind} webhook URL is a credential: store it as a team secret and name the secret in webhook_url_secret"
                        ),
                    ));
                }
                refuse(&self.access_token_secret, "access_token_secret", kind)?;
                refuse(&self.signing_secret, "signing_secret", kind)?;
                let secret = self.webhook_url_secret.ok_or_else(|| {
                    Invalid::new(
                        "webhook_url_secret",
                        "missing: the name of the team secret that holds the webhook URL",
                    )
                })?;
                check_secret_name("webhook_url_secret", Some(&secret))?;
                if kind == "slack" {
                    if let Some(channel) = &self.channel {
                        check_channel(channel)?;
                    }
                    Destination::Slack {
                        webhook_url_secret: secret,
                        channel: self.channel,
                    }
                } else {
                    refuse(&self.channel, "channel", kind)?;
                    Destination::Teams {
                        webhook_url_secret: secret,
                    }
                }
            }
            other => {
                return Err(Invalid::new(
                    "type",
                    format!(
                        "unknown integration type {other:?}; expected one of {}",
                        KINDS.join(", ")
                    ),
                ));
            }
        };
        Ok(ValidIntegration {
            name: self.name,
            destination,
            enabled: self.enabled,
        })
    }
}

fn refuse(value: &Option<String>, field: &str, kind: &str) -> Result<(), Invalid> {
    match value {
        Some(_) => Err(Invalid::new(
            field,
            format!("{kind} integrations take no {field}"),
        )),
        None => Ok(()),
    }
}

fn check_secret_name(field: &str, name: Option<&str>) -> Result<(), Invalid> {
    match name {
        Some(name) if !is_secret_name(name) => {
            Err(Invalid::new(field, "must name a team secret: [A-Z0-9_]+"))
        }
        _ => Ok(()),
    }
}

/// A Slack channel: `#name`, `@user` or an id, 1 to 80 of letters, digits, `.`, `_`, `-`.
fn check_channel(channel: &str) -> Result<(), Invalid> {
    let name = channel
        .strip_prefix('#')
        .or_else(|| channel.strip_prefix('@'))
        .unwrap_or(channel);
    if (1..=80).contains(&name.len()) && name.bytes().all(is_name_byte) {
        return Ok(());
    }
    Err(Invalid::new(
        "channel",
        "a Slack channel is #name, @user or a channel id: 1 to 80 letters, digits, '.', '_' or '-'",
    ))
}

impl Integration {
    /// The team secrets this integration uses.
    pub fn secrets(&self) -> Vec<&str> {
        match &self.destination {
            Destination::Webhook {
                access_token_secret,
                signing_secret,
                ..
            } => access_token_secret
                .iter()
                .chain(signing_secret.iter())
                .map(String::as_str)
                .collect(),
            Destination::Slack {
                webhook_url_secret, ..
            }
            | Destination::Teams { webhook_url_secret } => vec![webhook_url_secret.as_str()],
        }
    }

    /// The integration as the API shows it (the stored form holds no secret value).
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn validate(v: Value) -> Result<ValidIntegration, Invalid> {
        let input: IntegrationInput = serde_json::from_value(v).unwrap();
        input.validate(&OutboundGuard::default())
    }

    #[test]
    fn each_type_takes_its_own_fields_and_names_the_others() {
        let slack = validate(json!({"type": "slack", "name": "alerts",
            "webhook_url_secret": "SLACK_URL", "channel": "#ml-alerts"}))
        .unwrap();
        assert_eq!(
            slack.destination,
            Destination::Slack {
                webhook_url_secret: "SLACK_URL".into(),
                channel: Some("#ml-alerts".into())
            }
        );
        validate(json!({"type": "teams", "name": "t", "webhook_url_secret": "TEAMS_URL"})).unwrap();
        let refused = [
            (
                json!({"type": "slack", "name": "a", "url": "https://hooks.slack.com/x"}),
                "url",
            ),
            (json!({"type": "slack", "name": "a"}), "webhook_url_secret"),
            (
                json!({"type": "slack", "name": "a", "webhook_url_secret": "lower"}),
                "webhook_url_secret",
            ),
            (
                json!({"type": "slack", "name": "a", "webhook_url_secret": "S", "channel": "#a b"}),
                "channel",
            ),
            (
                json!({"type": "slack", "name": "a", "webhook_url_secret": "S", "signing_secret": "K"}),
                "signing_secret",
            ),
            (
                json!({"type": "teams", "name": "a", "webhook_url_secret": "S", "channel": "#x"}),
                "channel",
            ),
            (json!({"type": "webhook", "name": "a"}), "url"),
            (
                json!({"type": "webhook", "name": "a", "url": "https://x.example", "webhook_url_secret": "S"}),
                "webhook_url_secret",
            ),
            (json!({"type": "email", "name": "a"}), "type"),
        ];
        for (input, field) in refused {
            let err = validate(input.clone())
                .err()
                .unwrap_or_else(|| panic!("{input} passed"));
            assert_eq!(err.field, field, "{input}: {err}");
        }
    }

    #[test]
    fn stored_webhooks_read_back_and_every_type_round_trips() {
        // The form stored before Slack and Teams existed.
        let stored = json!({"id": "i1", "team": "acme", "type": "webhook", "name": "ci",
            "url": "https://ci.example.com/hook", "access_token_secret": null, "signing_secret": "KEY",
            "enabled": true, "disabled_reason": null, "created_at": "t", "updated_at": "t"});
        let integration: Integration = serde_json::from_value(stored.clone()).unwrap();
        assert_eq!(integration.secrets(), vec!["KEY"]);
        assert_eq!(serde_json::to_value(&integration).unwrap(), stored);
        for destination in [
            Destination::Slack {
                webhook_url_secret: "S".into(),
                channel: None,
            },
            Destination::Teams {
                webhook_url_secret: "T".into(),
            },
        ] {
            let integration = Integration {
                destination,
                ..integration.clone()
            };
            let back: Integration =
                serde_json::from_value(serde_json::to_value(&integration).unwrap()).unwrap();
            assert_eq!(back, integration);
        }
    }
}
