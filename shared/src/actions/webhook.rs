//! The `webhook` action: the payload template rendered as JSON, a bearer token when the
//! integration has one, and the signatures of the body.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Action, Built, Context, MASK, Reading, Shown, kept_body, secret};
use crate::delivery::retry::{Verdict, classify};
use crate::delivery::signing::{
    standard_webhooks_key, standard_webhooks_signature, wandb_signature,
};
use crate::domain::integration::{Destination, Integration};
use crate::domain::limits::{MAX_RENDERED_PAYLOAD_BYTES, MAX_SECRET_JSON_BYTES};
use crate::domain::template::{self, Var, lookup};
use crate::ports::{Outbound, Response};

pub struct Webhook;

/// A webhook integration's settings.
struct Settings<'a> {
    url: &'a str,
    token: Option<&'a str>,
    signing: Option<&'a str>,
}

fn settings(integration: &Integration) -> Result<Settings<'_>, String> {
    match &integration.destination {
        Destination::Webhook {
            url,
            access_token_secret,
            signing_secret,
        } => Ok(Settings {
            url,
            token: access_token_secret.as_deref(),
            signing: signing_secret.as_deref(),
        }),
        other => Err(format!(
            "integration {} is a {} integration, not a webhook",
            integration.name,
            other.kind()
        )),
    }
}

impl Action for Webhook {
    fn secrets(&self, integration: &Integration, template: &Value) -> Result<Vec<String>, String> {
        let settings = settings(integration)?;
        let mut needed: Vec<String> = template::check(template)
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
        for name in settings.token.into_iter().chain(settings.signing) {
            if !needed.iter().any(|n| n == name) {
                needed.push(name.to_string());
            }
        }
        Ok(needed)
    }

    fn build(&self, cx: &Context<'_>) -> Result<Built, String> {
        let settings = settings(cx.integration)?;
        let in_payload = template::check(cx.template).map_err(|e| e.to_string())?;
        let mut real = |var: Var<'_>| match var {
            Var::Secret(name) => cx.secrets.get(name).cloned().map(Value::String),
            other => lookup(cx.vars, other),
        };
        // With secrets in the payload, whether it is too large is decided on the masked
        // rendering, so that the answer depends on no secret's length (a caller could
        // otherwise learn one by padding a payload up to the limit); the real rendering
        // then has room for every reference at a secret's largest.
        let masked = if in_payload.is_empty() {
            None
        } else {
            let masked =
                template::render(
                    cx.template,
                    MAX_RENDERED_PAYLOAD_BYTES,
                    &mut |var| match var {
                        Var::Secret(_) => Some(Value::String(MASK.into())),
                        other => lookup(cx.vars, other),
                    },
                )
                .map_err(|e| e.to_string())?;
            Some(masked)
        };
        let room = MAX_RENDERED_PAYLOAD_BYTES
            + template::secret_references(cx.template) * MAX_SECRET_JSON_BYTES;
        let payload = template::render(cx.template, room, &mut real).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
        // The body as shown: the masked rendering, or the payload itself when it uses none.
        let shown_body = masked.unwrap_or(payload);
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        let mut shown_headers =
            BTreeMap::from([("content-type".to_string(), "application/json".to_string())]);
        let mut carries_secrets = !in_payload.is_empty();
        if let Some(name) = settings.token {
            let token = secret(cx, name)?;
            check_header_value(name, token)?;
            headers.push(("authorization".into(), format!("Bearer {token}")));
            shown_headers.insert("authorization".into(), format!("Bearer {MASK}"));
            carries_secrets = true;
        }
        headers.push(("webhook-id".into(), cx.message_id.to_string()));
        headers.push(("webhook-timestamp".into(), cx.timestamp.to_string()));
        shown_headers.insert("webhook-id".into(), cx.message_id.to_string());
        shown_headers.insert("webhook-timestamp".into(), cx.timestamp.to_string());
        if let Some(name) = settings.signing {
            let key = secret(cx, name)?;
            headers.push(("x-wandb-signature".into(), wandb_signature(key, &body)));
            let standard = standard_webhooks_key(key);
            headers.push((
                "webhook-signature".into(),
                standard_webhooks_signature(&standard, cx.message_id, cx.timestamp, &body),
            ));
            // Signatures are made with the secret over the body as sent, not as shown.
            shown_headers.insert("x-wandb-signature".into(), MASK.into());
            shown_headers.insert("webhook-signature".into(), format!("v1,{MASK}"));
        }
        let mut secrets: Vec<String> = in_payload.into_iter().collect();
        secrets.extend(settings.token.into_iter().map(String::from));
        secrets.extend(settings.signing.into_iter().map(String::from));
        secrets.sort();
        secrets.dedup();
        Ok(Built {
            request: Outbound {
                url: settings.url.to_string(),
                headers,
                body,
                secret_url: false,
            },
            shown: Shown {
                method: "POST",
                url: settings.url.to_string(),
                headers: shown_headers,
                body: shown_body,
                secrets,
            },
            carries_secrets,
        })
    }

    fn read(
        &self,
        _: &Integration,
        response: &Response,
        carries_secrets: bool,
        max_body: usize,
    ) -> Reading {
        let verdict = if response.refused {
            Verdict::Fail(response.error.clone().unwrap_or_default())
        } else {
            classify(response.status)
        };
        Reading {
            verdict,
            body: kept_body(carries_secrets, response, max_body),
        }
    }
}

/// A token goes into a header: a line break or another control character there can never
/// be sent, so it fails the execution at once, naming the secret (never its value).
pub fn check_header_value(secret: &str, value: &str) -> Result<(), String> {
    if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "secret {secret} holds a line break or another control character, which an HTTP header cannot carry; set it again without one"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    #[test]
    fn tokens_with_control_characters_are_refused_by_name() {
        for bad in ["ghp_x\r\nX-Injected: 1", "tok\n", "a\u{0}b", "del\u{7f}"] {
            let err = check_header_value("GH_TOKEN", bad).unwrap_err();
            assert!(err.contains("GH_TOKEN"), "{err}");
            assert!(!err.contains(bad), "the value is never named: {err}");
        }
        check_header_value("GH_TOKEN", "ghp_abc def\tok é").unwrap();
    }

    fn integration() -> Integration {
        Integration {
            id: "i".into(),
            team: "acme".into(),
            name: "ci".into(),
            destination: Destination::Webhook {
                url: "https://ci.example.com/hook".into(),
                access_token_secret: None,
                signing_secret: None,
            },
            enabled: true,
            disabled_reason: None,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn whether_a_payload_is_too_large_depends_on_no_secret_s_length() {
        let integration = integration();
        let template = json!({"pad": "${alias}", "t": "${TOKEN}", "again": "${TOKEN}"});
        let build = |pad: usize, token: &str| {
            let mut vars = Map::new();
            vars.insert("alias".into(), json!("x".repeat(pad)));
            let secrets = BTreeMap::from([("TOKEN".to_string(), token.to_string())]);
            Webhook
                .build(&Context {
                    integration: &integration,
                    template: &template,
                    vars: &vars,
                    secrets: &secrets,
                    message_id: "ex",
                    timestamp: 0,
                })
                .is_ok()
        };
        let longest = "\u{1}".repeat(crate::domain::limits::MAX_SECRET_BYTES);
        // Just under the limit as masked, just over it: the same answer for a one-byte
        // secret and for the longest one.
        let fits = MAX_RENDERED_PAYLOAD_BYTES - 40;
        for (pad, expected) in [(fits, true), (fits + 100, false)] {
            assert_eq!(build(pad, "a"), expected, "{pad}");
            assert_eq!(build(pad, &longest), expected, "{pad}");
        }
    }

    #[test]
    fn the_shown_request_masks_every_secret_and_the_sent_one_carries_them() {
        let integration = Integration {
            id: "i".into(),
            team: "acme".into(),
            name: "ci".into(),
            destination: Destination::Webhook {
                url: "https://ci.example.com/hook".into(),
                access_token_secret: Some("TOKEN".into()),
                signing_secret: Some("KEY".into()),
            },
            enabled: true,
            disabled_reason: None,
            created_at: String::new(),
            updated_at: String::new(),
        };
        let template = json!({"auth": "${TOKEN}", "alias": "${alias}"});
        let mut vars = Map::new();
        vars.insert("alias".into(), json!("prod"));
        let secrets = BTreeMap::from([
            ("TOKEN".to_string(), "tok-123".to_string()),
            ("KEY".to_string(), "whsec_c2VjcmV0".to_string()),
        ]);
        assert_eq!(
            Webhook.secrets(&integration, &template).unwrap(),
            vec!["TOKEN", "KEY"]
        );
        let built = Webhook
            .build(&Context {
                integration: &integration,
                template: &template,
                vars: &vars,
                secrets: &secrets,
                message_id: "ex_1",
                timestamp: 1_700_000_000,
            })
            .unwrap();
        assert!(built.carries_secrets);
        let sent: Value = serde_json::from_slice(&built.request.body).unwrap();
        assert_eq!(sent, json!({"auth": "tok-123", "alias": "prod"}));
        let shown = serde_json::to_string(&built.shown).unwrap();
        for value in ["tok-123", "whsec_c2VjcmV0", "c2VjcmV0"] {
            assert!(!shown.contains(value), "{shown}");
        }
        assert_eq!(built.shown.body, json!({"auth": "***", "alias": "prod"}));
        assert_eq!(built.shown.headers["authorization"], "Bearer ***");
        assert_eq!(built.shown.headers["webhook-id"], "ex_1");
        assert_eq!(built.shown.secrets, vec!["KEY", "TOKEN"]);
    }
}
