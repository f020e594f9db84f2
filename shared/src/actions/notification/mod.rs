//! The `notification` action: a title, a message and a severity, text templates over the
//! event's variables, posted to a Slack channel ([`slack`]) or a Microsoft Teams channel
//! ([`teams`]). The template's own text is the author's, markup included; every value
//! substituted into it is escaped for the destination, so that no event value can add a
//! mention, a link or formatting.

pub mod slack;
pub mod teams;

use serde_json::{Map, Value, json};

use super::{Action, Built, Context, MASK, Reading, Shown, secret};
use crate::domain::automation::{self, SEVERITIES};
use crate::domain::integration::{Destination, Integration};
use crate::domain::template::{self, RenderedText, lookup};
use crate::ports::{Outbound, Response};

/// At most this much of a text template and its values is rendered (before escaping):
/// more than any destination shows, and a bound however often a large value is repeated.
pub const RENDER_BYTES: usize = 32 * 1024;

/// Where a text is cut, as every destination marks it.
pub const ELLIPSIS: char = '…';

/// Titles are cut at this many characters on every destination (Slack's header limit).
pub const TITLE_CHARS: usize = 150;

pub struct Notification;

/// A notification's texts as an execution keeps them: the action's templates, and the
/// scope the event happened in (for the context line).
pub fn template(action: &automation::Action, scope: &str) -> Value {
    json!({
        "title": action.title,
        "message": action.message,
        "severity": action.severity,
        "scope": scope,
    })
}

/// A notification about to be rendered: its templates, the event's variables, and the
/// facts of its context line.
pub struct Notice<'a> {
    title: &'a str,
    message: &'a str,
    vars: &'a Map<String, Value>,
    pub severity: String,
    pub event_type: String,
    pub scope: String,
    pub automation: String,
}

impl<'a> Notice<'a> {
    /// Reads an execution's notification template.
    pub fn new(template: &'a Value, vars: &'a Map<String, Value>) -> Result<Self, String> {
        let text = |field: &str| template.get(field).and_then(Value::as_str);
        let (Some(title), Some(message)) = (text("title"), text("message")) else {
            return Err("the notification's template has no title or message".into());
        };
        let var = |name: &str| {
            vars.get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut notice = Notice {
            title,
            message,
            vars,
            severity: String::new(),
            event_type: var("event_type"),
            scope: text("scope").unwrap_or_default().to_string(),
            automation: var("automation_name"),
        };
        notice.severity = match text("severity") {
            Some(severity) => notice.severity_of(severity),
            None => "INFO".into(),
        };
        Ok(notice)
    }

    /// The title, each value through `escape`.
    pub fn title(&self, escape: &dyn Fn(&str, &mut String)) -> RenderedText {
        self.render(self.title, escape)
    }

    /// The message, each value through `escape`.
    pub fn message(&self, escape: &dyn Fn(&str, &mut String)) -> RenderedText {
        self.render(self.message, escape)
    }

    fn render(&self, text: &str, escape: &dyn Fn(&str, &mut String)) -> RenderedText {
        template::render_text(text, RENDER_BYTES, &mut |v| lookup(self.vars, v), escape)
    }

    /// A rendered severity: one of [`SEVERITIES`] (in any case, around spaces), else
    /// `INFO`. Only those three words are ever sent, so a value cannot put anything else
    /// where the severity goes.
    fn severity_of(&self, template: &str) -> String {
        let rendered = self.render(template, &|v, out| out.push_str(v)).text;
        let rendered = rendered.trim().to_uppercase();
        SEVERITIES
            .iter()
            .find(|s| **s == rendered)
            .unwrap_or(&"INFO")
            .to_string()
    }
}

/// `text` cut to at most `max` characters, the last of them [`ELLIPSIS`]. With `markup`,
/// never inside an `&entity;` or a `<…>` sequence: the cut moves before it.
pub fn cut(text: &str, max: usize, markup: bool) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let end = text
        .char_indices()
        .nth(max.saturating_sub(1))
        .map_or(text.len(), |(i, _)| i);
    let mut kept = &text[..end];
    if markup {
        if let Some(open) = kept.rfind('<')
            && kept.rfind('>').is_none_or(|close| close < open)
        {
            kept = &kept[..open];
        }
        if let Some(amp) = kept.rfind('&')
            && kept[amp..].len() <= 8
            && !kept[amp..].contains(';')
        {
            kept = &kept[..amp];
        }
    }
    let mut out = String::with_capacity(kept.len() + 3);
    out.push_str(kept);
    out.push(ELLIPSIS);
    out
}

/// A rendered text, with [`ELLIPSIS`] when the rendering stopped at its limit.
fn marked(rendered: RenderedText) -> String {
    let mut text = rendered.text;
    if rendered.cut {
        text.push(ELLIPSIS);
    }
    text
}

fn url_secret(integration: &Integration) -> Result<&str, String> {
    match &integration.destination {
        Destination::Slack {
            webhook_url_secret, ..
        }
        | Destination::Teams { webhook_url_secret } => Ok(webhook_url_secret),
        Destination::Webhook { .. } => Err(format!(
            "integration {} is a webhook integration; notifications go to slack or teams integrations",
            integration.name
        )),
    }
}

impl Action for Notification {
    fn secrets(&self, integration: &Integration, _: &Value) -> Result<Vec<String>, String> {
        Ok(vec![url_secret(integration)?.to_string()])
    }

    fn build(&self, cx: &Context<'_>) -> Result<Built, String> {
        let name = url_secret(cx.integration)?;
        let url = secret(cx, name)?.trim().to_string();
        let notice = Notice::new(cx.template, cx.vars)?;
        let body = match &cx.integration.destination {
            Destination::Slack { channel, .. } => slack::body(&notice, channel.as_deref()),
            Destination::Teams { .. } => teams::body(&notice),
            Destination::Webhook { .. } => unreachable!("url_secret refused webhooks"),
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        let content_type = ("content-type".to_string(), "application/json".to_string());
        Ok(Built {
            request: Outbound {
                url,
                headers: vec![content_type.clone()],
                body: bytes,
                secret_url: true,
            },
            shown: Shown {
                method: "POST",
                url: MASK.into(),
                headers: [content_type].into_iter().collect(),
                body,
                secrets: vec![name.to_string()],
            },
            carries_secrets: true,
        })
    }

    fn read(
        &self,
        integration: &Integration,
        response: &Response,
        _: bool,
        max_body: usize,
    ) -> Reading {
        match integration.destination {
            Destination::Teams { .. } => teams::read(response),
            _ => slack::read(response, max_body),
        }
    }
}

/// The confirmation an integration test posts.
pub fn test_template(team: &str) -> (Value, Map<String, Value>) {
    let template = json!({
        "title": "Test from automations",
        "message": format!("This channel will get the notifications of team {team}'s automations."),
        "severity": "INFO",
        "scope": format!("team {team}"),
    });
    let mut vars = Map::new();
    vars.insert("event_type".into(), json!("TEST"));
    vars.insert("entity_name".into(), json!(team));
    vars.insert("automation_name".into(), json!("integration test"));
    (template, vars)
}

#[cfg(test)]
mod tests;
