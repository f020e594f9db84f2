//! Microsoft Teams Workflows webhooks: an Adaptive Card 1.4 in a message envelope, under
//! 28 KB, and the answer read by its status.
//!
//! Escaping: a TextBlock reads a subset of Markdown (emphasis, lists, `[links](…)`), and
//! a FactSet's values too. Each Markdown character in a value is escaped with a backslash
//! (CommonMark's escape), so that a value cannot add a link or formatting.

use serde_json::{Value, json};

use super::{ELLIPSIS, Notice, TITLE_CHARS, cut, marked};
use crate::actions::{BODY_WITHHELD, KeptBody, Reading};
use crate::delivery::retry::Verdict;
use crate::domain::limits::json_len;
use crate::ports::Response;

/// The whole body stays under this many bytes (Teams refuses 28 KB and more).
pub const MAX_BODY_BYTES: usize = 28_000;

/// The characters a value's Markdown could use.
const MARKDOWN: &[char] = &[
    '\\', '*', '_', '[', ']', '(', ')', '~', '`', '<', '>', '#', '!', '|',
];

/// Escapes a value for a TextBlock or a fact: every Markdown character, and what would
/// start a list or a heading at the start of a line (`-`, `+`, `1.`, `1)`).
pub fn escape_markdown(value: &str, out: &mut String) {
    #[derive(PartialEq)]
    enum At {
        LineStart,
        Digits,
        Inside,
    }
    let mut at = if out.is_empty() || out.ends_with('\n') {
        At::LineStart
    } else {
        At::Inside
    };
    for c in value.chars() {
        let starts_block = match at {
            At::LineStart => matches!(c, '-' | '+' | '='),
            At::Digits => matches!(c, '.' | ')'),
            At::Inside => false,
        };
        if MARKDOWN.contains(&c) || starts_block {
            out.push('\\');
        }
        out.push(c);
        at = match (at, c) {
            (_, '\n') => At::LineStart,
            (At::LineStart, ' ' | '\t') => At::LineStart,
            (At::LineStart | At::Digits, '0'..='9') => At::Digits,
            _ => At::Inside,
        };
    }
}

fn escaped(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    escape_markdown(value, &mut out);
    out
}

/// The card: the title (bolder), the message (wrapped), the facts; the message is cut
/// until the whole body is under [`MAX_BODY_BYTES`].
pub fn body(notice: &Notice<'_>) -> Value {
    let title = cut(&marked(notice.title(&escape_markdown)), TITLE_CHARS, false);
    let title = strip_dangling_escape(title);
    let message = marked(notice.message(&escape_markdown));
    let color = match notice.severity.as_str() {
        "ERROR" => "Attention",
        "WARN" => "Warning",
        _ => "Default",
    };
    let facts = [
        ("Severity", &notice.severity),
        ("Event", &notice.event_type),
        ("Scope", &notice.scope),
        ("Automation", &notice.automation),
    ];
    let card = |message: &str| {
        json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": null,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium",
                         "color": color, "wrap": true},
                        {"type": "TextBlock", "text": message, "wrap": true},
                        {"type": "FactSet", "facts": facts
                            .iter()
                            .map(|(name, value)| json!({"title": name, "value": escaped(&cut(value, 150, false))}))
                            .collect::<Vec<_>>()},
                    ],
                },
            }],
        })
    };
    let whole = card(&message);
    if json_len(&whole) < MAX_BODY_BYTES {
        return whole;
    }
    // Room for the message: the limit less the card around an empty one, less the mark.
    let room = MAX_BODY_BYTES - 1 - json_len(&card("")) - ELLIPSIS.len_utf8();
    card(&fit(&message, room))
}

/// The longest start of `text` whose JSON string content takes at most `room` bytes,
/// never ending in half an escape, marked with [`ELLIPSIS`].
fn fit(text: &str, room: usize) -> String {
    let mut used = 0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let len = json_len(&c.to_string()) - 2;
        if used + len > room {
            break;
        }
        used += len;
        end = i + c.len_utf8();
    }
    let mut kept = strip_dangling_escape(text[..end].to_string());
    kept.push(ELLIPSIS);
    kept
}

/// Drops a final backslash that escaped the character a cut removed.
fn strip_dangling_escape(mut text: String) -> String {
    let marked = text.ends_with(ELLIPSIS);
    if marked {
        text.pop();
    }
    let trailing = text.chars().rev().take_while(|c| *c == '\\').count();
    if trailing % 2 == 1 {
        text.pop();
    }
    if marked {
        text.push(ELLIPSIS);
    }
    text
}

/// What Teams' answer means: 200 or 202 delivered; 429 and 5xx retried; 400, 401, 403,
/// 404 and 410 mean the workflow or its channel is gone (the integration is disabled).
/// Nothing of the body is kept: the URL is a secret, and an answer may echo it.
pub fn read(response: &Response) -> Reading {
    let verdict = match response.status {
        None if response.refused => Verdict::Fail(response.error.clone().unwrap_or_default()),
        None | Some(408 | 429 | 500..=599) => Verdict::Retry,
        Some(200..=299) => Verdict::Delivered,
        Some(status @ (400 | 401 | 403 | 404 | 410)) => {
            Verdict::Disable(format!("Teams answered {status}"))
        }
        Some(status @ 300..=399) => Verdict::Fail(format!(
            "Teams answered {status}; redirects are not followed"
        )),
        Some(status) => Verdict::Fail(format!("Teams answered {status}")),
    };
    let body = match response.status {
        None => KeptBody::default(),
        Some(_) => KeptBody {
            body: None,
            withheld: Some(BODY_WITHHELD.to_string()),
        },
    };
    Reading { verdict, body }
}
