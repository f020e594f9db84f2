//! Slack incoming webhooks: Block Kit with a `text` fallback, and the answer read by its
//! body, which names the error.
//!
//! Escaping: Slack's own escapes are `&amp;`, `&lt;` and `&gt;`, which stop mentions
//! (`<!channel>`, `<@U123>`) and links (`<https://evil|click>`). Slack has no escape for
//! the formatting characters `*`, `_`, `~` and `` ` ``; each one in a value becomes a date
//! whose format is invalid, `<!date^00000000^{_}|*>`, which every Slack client shows as
//! its fallback text, the character itself, without formatting (the technique jsx-slack
//! uses). `verbatim` stops Slack from turning bare URLs, `@here` and `#channel` into
//! links and mentions. The header and the context are plain text, which Slack never
//! parses.

use serde_json::{Value, json};

use super::{ELLIPSIS, Notice, TITLE_CHARS, cut, marked};
use crate::actions::{KeptBody, Reading};
use crate::delivery::retry::Verdict;
use crate::ports::Response;

/// A section's text is at most this many characters.
pub const SECTION_CHARS: usize = 3000;
/// The `text` fallback (notifications, screen readers) is cut here as well.
pub const FALLBACK_CHARS: usize = 3000;

/// Answers that fail the execution only: the request was wrong, not the destination.
pub const FAILS: [&str; 3] = ["invalid_payload", "no_text", "too_many_attachments"];
/// Answers that mean the destination is gone: the integration is disabled.
pub const DISABLES: [&str; 7] = [
    "channel_is_archived",
    "channel_not_found",
    "no_service",
    "no_active_hooks",
    "invalid_token",
    "action_prohibited",
    "posting_to_general_channel_denied",
];
/// Other answers Slack documents, kept in a record as they came.
const KNOWN: [&str; 6] = [
    "ok",
    "rate_limited",
    "rollup_error",
    "user_not_found",
    "invalid_blocks",
    "invalid_blocks_format",
];

/// Where `out` ends: inside a `<…>` the template opened (a link such as
/// `<https://wandb.ai/${project_name}|${project_name}>`), in its URL or in its label, or
/// outside one. A value's own `<` is always escaped and a date escape is closed, so an open
/// `<` is the author's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Text,
    LinkUrl,
    LinkLabel,
}

fn place(out: &str) -> Place {
    match out.rfind('<') {
        Some(open) if !out[open..].contains('>') => {
            if out[open..].contains('|') {
                Place::LinkLabel
            } else {
                Place::LinkUrl
            }
        }
        _ => Place::Text,
    }
}

/// A value inside a link's URL: percent-encoded, every byte but the unreserved ones, so
/// that it cannot end the URL, start the label or leave the link.
fn escape_url(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `&`, `<` and `>` as Slack's entities.
fn escape_entities(c: char, out: &mut String) -> bool {
    match c {
        '&' => out.push_str("&amp;"),
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        _ => return false,
    }
    true
}

/// Escapes a value for mrkdwn: in text, entities and date escapes; inside the author's
/// link, percent-encoded in the URL and entities in the label (Slack nests no `<…>`).
pub fn escape_mrkdwn(value: &str, out: &mut String) {
    match place(out) {
        Place::LinkUrl => return escape_url(value, out),
        Place::LinkLabel => {
            for c in value.chars() {
                if !escape_entities(c, out) {
                    out.push(c);
                }
            }
            return;
        }
        Place::Text => {}
    }
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '*' | '_' | '~' | '`' => {
                out.push_str("<!date^00000000^{_}|");
                out.push(c);
                out.push('>');
            }
            c => out.push(c),
        }
    }
}

/// Escapes a value for the `text` fallback: no mention, no link (inside the author's
/// link, percent-encoded in its URL).
pub fn escape_fallback(value: &str, out: &mut String) {
    if place(out) == Place::LinkUrl {
        return escape_url(value, out);
    }
    for c in value.chars() {
        if !escape_entities(c, out) {
            out.push(c);
        }
    }
}

/// Plain text is shown as it is.
fn plain(value: &str, out: &mut String) {
    out.push_str(value);
}

/// The message's body: fallback, header, section, context (and the channel of a legacy
/// webhook).
pub fn body(notice: &Notice<'_>, channel: Option<&str>) -> Value {
    let title = non_empty(
        cut(&marked(notice.title(&plain)), TITLE_CHARS, false),
        "(no title)",
    );
    let message = non_empty(
        cut(&marked(notice.message(&escape_mrkdwn)), SECTION_CHARS, true),
        "(no message)",
    );
    let fallback = format!(
        "[{}] {}: {}",
        notice.severity,
        marked(notice.title(&escape_fallback)),
        marked(notice.message(&escape_fallback))
    );
    let context = [
        format!("Severity: {}", notice.severity),
        format!("Event: {}", notice.event_type),
        format!("Scope: {}", notice.scope),
        format!("Automation: {}", notice.automation),
    ];
    let mut body = json!({
        "text": cut(&fallback, FALLBACK_CHARS, true),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": message, "verbatim": true}},
            {"type": "context", "elements": context
                .iter()
                .map(|text| json!({"type": "plain_text", "text": cut(text, 150, false), "emoji": false}))
                .collect::<Vec<_>>()},
        ],
    });
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    body
}

fn non_empty(text: String, instead: &str) -> String {
    if text.trim().is_empty() || text == ELLIPSIS.to_string() {
        instead.to_string()
    } else {
        text
    }
}

/// What Slack's answer means. Slack names its errors in the body (`invalid_payload`,
/// `channel_is_archived`, …), whatever the status.
pub fn read(response: &Response, max_body: usize) -> Reading {
    let token = response.body.trim();
    let named = |what: &str| match response.status {
        Some(status) => format!("Slack answered {status} {what}"),
        None => format!("Slack answered {what}"),
    };
    let verdict = match response.status {
        None if response.refused => Verdict::Fail(response.error.clone().unwrap_or_default()),
        None => Verdict::Retry,
        Some(_) if DISABLES.contains(&token) => Verdict::Disable(named(token)),
        Some(_) if FAILS.contains(&token) => Verdict::Fail(named(token)),
        Some(408 | 429 | 500..=599) => Verdict::Retry,
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Disable(named("410 Gone")),
        Some(status @ 300..=399) => Verdict::Fail(format!(
            "Slack answered {status}; redirects are not followed"
        )),
        Some(status) => Verdict::Fail(format!("Slack answered {status}")),
    };
    // The URL is a secret: only an answer Slack documents is kept (a fixed word, which
    // echoes nothing), anything else is withheld.
    let known = DISABLES.contains(&token) || FAILS.contains(&token) || KNOWN.contains(&token);
    let body = match response.status {
        None => KeptBody::default(),
        Some(_) if known => KeptBody {
            body: Some(crate::domain::limits::truncate(token, max_body).to_string()),
            withheld: None,
        },
        Some(_) => KeptBody {
            body: None,
            withheld: Some(crate::actions::BODY_WITHHELD.to_string()),
        },
    };
    Reading { verdict, body }
}
