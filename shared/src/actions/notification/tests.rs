use std::time::Duration;

use serde_json::{Map, Value, json};

use super::*;
use crate::delivery::retry::Verdict;

fn vars(value: &str) -> Map<String, Value> {
    let mut vars = Map::new();
    for name in ["run_name", "alias", "tag", "event_author"] {
        vars.insert(name.into(), json!(value));
    }
    vars.insert("event_type".into(), json!("RUN_STATE"));
    vars.insert("automation_name".into(), json!("notify_on_fail"));
    vars.insert("metric_value".into(), json!(0.5));
    vars
}

fn texts(title: &str, message: &str, severity: Option<&str>) -> Value {
    json!({"title": title, "message": message, "severity": severity, "scope": "project mnist"})
}

fn slack_body(template: &Value, vars: &Map<String, Value>) -> Value {
    slack::body(&Notice::new(template, vars).unwrap(), None)
}

fn teams_body(template: &Value, vars: &Map<String, Value>) -> Value {
    teams::body(&Notice::new(template, vars).unwrap())
}

/// The text with every date escape replaced by the character it shows.
fn unescape_dates(text: &str) -> String {
    let mut out = text.to_string();
    for c in ['*', '_', '~', '`'] {
        out = out.replace(&format!("<!date^00000000^{{_}}|{c}>"), "");
    }
    out
}

const HOSTILE: &str = "<!channel> <@U024BE7LH> <https://evil.example|click> *bold* _it_ ~s~ `code` &amp; \"q\" \\ \n> quote 日本 \u{1F600}";

#[test]
fn slack_shows_hostile_values_as_literal_text_and_keeps_the_author_s_markup() {
    let template = texts(
        "Run ${run_name} failed",
        "*Run* ${run_name} by ${event_author}",
        Some("ERROR"),
    );
    let body = slack_body(&template, &vars(HOSTILE));
    let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert_eq!(body["blocks"][1]["text"]["type"], "mrkdwn");
    assert_eq!(body["blocks"][1]["text"]["verbatim"], true);
    assert!(
        section.starts_with("*Run* "),
        "the template's own markup stays: {section}"
    );
    let rest = unescape_dates(&section["*Run* ".len()..]);
    for markup in ['<', '>', '*', '_', '~', '`'] {
        assert!(
            !rest.contains(markup),
            "{markup:?} in a value reached Slack as markup: {section}"
        );
    }
    assert!(section.contains("&lt;!channel&gt;"));
    assert!(section.contains("&lt;https://evil.example|click&gt;"));
    assert!(section.contains("<!date^00000000^{_}|*>bold<!date^00000000^{_}|*>"));
    assert!(
        section.contains("&amp;amp;"),
        "an entity in a value stays literal"
    );
    // The header is plain text: shown as it is, never parsed.
    assert_eq!(body["blocks"][0]["type"], "header");
    assert_eq!(body["blocks"][0]["text"]["type"], "plain_text");
    assert!(
        body["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("<!channel>")
    );
    // The fallback carries no mention or link either.
    let text = body["text"].as_str().unwrap();
    assert!(text.starts_with("[ERROR] Run "), "{text}");
    assert!(
        !text.contains("<!channel>") && !text.contains("<https://"),
        "{text}"
    );
    // The context: severity, event type, scope, automation, as plain text.
    let context: Vec<&str> = body["blocks"][2]["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "plain_text");
            e["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        context,
        [
            "Severity: ERROR",
            "Event: RUN_STATE",
            "Scope: project mnist",
            "Automation: notify_on_fail"
        ]
    );
}

#[test]
fn slack_cuts_long_values_at_its_limits_and_marks_the_cuts() {
    for long in [
        "x".repeat(10_000),
        "*".repeat(10_000),
        "<&>".repeat(4_000),
        "é\u{1F600}".repeat(5_000),
    ] {
        let template = texts("${run_name}", "before ${run_name} after", None);
        let body = slack_body(&template, &vars(&long));
        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            body,
            "valid JSON"
        );
        let header = body["blocks"][0]["text"]["text"].as_str().unwrap();
        let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
        let fallback = body["text"].as_str().unwrap();
        assert_eq!(header.chars().count(), TITLE_CHARS);
        assert!(header.ends_with('…'));
        assert!(
            section.chars().count() <= slack::SECTION_CHARS,
            "{}",
            section.chars().count()
        );
        assert!(section.ends_with('…') && !section.contains("after"));
        assert!(fallback.chars().count() <= slack::FALLBACK_CHARS);
        // No cut splits an escape.
        let open = section.matches('<').count();
        assert_eq!(open, section.matches('>').count(), "{section}");
        let tail: String = section
            .chars()
            .rev()
            .take(8)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        assert!(!tail.contains('&') || tail.contains(';'), "{tail}");
        assert_eq!(body["blocks"][2]["elements"][0]["text"], "Severity: INFO");
    }
}

#[test]
fn teams_card_is_the_adaptive_card_envelope_with_values_escaped() {
    let template = texts(
        "Run ${run_name} failed",
        "**Run** ${run_name}",
        Some("${tag}"),
    );
    let mut vars = vars("[click](https://evil.example) **b** _i_ <at>all</at>");
    vars.insert("tag".into(), json!("warn"));
    let body = teams_body(&template, &vars);
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachment["contentUrl"], Value::Null);
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["type"], "TextBlock");
    assert_eq!(card["body"][0]["weight"], "Bolder");
    assert_eq!(
        card["body"][0]["color"], "Warning",
        "a rendered severity, in any case"
    );
    assert_eq!(card["body"][1]["wrap"], true);
    let message = card["body"][1]["text"].as_str().unwrap();
    assert_eq!(
        message,
        "**Run** \\[click\\]\\(https://evil.example\\) \\*\\*b\\*\\* \\_i\\_ \\<at\\>all\\</at\\>"
    );
    let facts = card["body"][2]["facts"].as_array().unwrap();
    assert_eq!(card["body"][2]["type"], "FactSet");
    assert_eq!(facts[0], json!({"title": "Severity", "value": "WARN"}));
    assert_eq!(
        facts[3],
        json!({"title": "Automation", "value": "notify\\_on\\_fail"})
    );
}

#[test]
fn teams_cuts_the_message_so_the_body_stays_under_28_kb() {
    for long in [
        "x".repeat(30_000),
        "\"\\\u{1}".repeat(9_000),
        "日本語".repeat(9_000),
        "*".repeat(30_000),
    ] {
        let template = texts("${run_name}", "${run_name}${run_name}", None);
        let body = teams_body(&template, &vars(&long));
        let json = serde_json::to_string(&body).unwrap();
        assert!(json.len() < teams::MAX_BODY_BYTES, "{} bytes", json.len());
        assert!(
            json.len() > teams::MAX_BODY_BYTES - 64,
            "the message fills the room: {}",
            json.len()
        );
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), body);
        let card = &body["attachments"][0]["content"];
        let message = card["body"][1]["text"].as_str().unwrap();
        assert!(message.ends_with('…'));
        let before_mark = &message[..message.len() - '…'.len_utf8()];
        let trailing = before_mark.chars().rev().take_while(|c| *c == '\\').count();
        assert_eq!(trailing % 2, 0, "no half escape before the mark");
        assert!(card["body"][0]["text"].as_str().unwrap().chars().count() <= TITLE_CHARS);
        assert_eq!(
            card["body"][2]["facts"].as_array().unwrap().len(),
            4,
            "the card is never cut"
        );
    }
    // A short message is not cut.
    let body = teams_body(&texts("t", "short", None), &vars("v"));
    assert_eq!(
        body["attachments"][0]["content"]["body"][1]["text"],
        "short"
    );
}

#[test]
fn cuts_never_split_an_entity_or_a_sequence() {
    let text = "ab &amp; <!date^00000000^{_}|*> cd";
    for max in 1..text.chars().count() + 2 {
        let cut = cut(text, max, true);
        assert!(cut.chars().count() <= max.max(1), "{max}: {cut}");
        assert_eq!(
            cut.matches('<').count(),
            cut.matches('>').count(),
            "{max}: {cut}"
        );
        if let Some(amp) = cut.rfind('&') {
            assert!(cut[amp..].contains(';'), "{max}: {cut}");
        }
    }
    assert_eq!(cut("abc", 3, true), "abc");
    assert_eq!(cut("abcd", 3, false), "ab…");
}

#[test]
fn severities_render_from_their_templates() {
    let vars = vars("error");
    let severity = |s: Option<&str>| Notice::new(&texts("t", "m", s), &vars).unwrap().severity;
    assert_eq!(severity(None), "INFO");
    assert_eq!(severity(Some("WARN")), "WARN");
    assert_eq!(severity(Some("${run_name}")), "ERROR");
    assert_eq!(severity(Some(" ${run_name} ")), "ERROR");
    assert_eq!(
        severity(Some("${tag} level")),
        "INFO",
        "anything else is INFO"
    );
    assert_eq!(severity(Some("${automation_name}")), "INFO");
    // A value cannot put a mention where the severity goes.
    let hostile = super::tests::vars("<@U0123ABCD> <http://evil.example|x>");
    let template = texts("t", "m", Some("${run_name}"));
    let notice = Notice::new(&template, &hostile).unwrap();
    assert_eq!(notice.severity, "INFO");
    assert!(
        slack::body(&notice, None)["text"]
            .as_str()
            .unwrap()
            .starts_with("[INFO] t: m")
    );
}

fn response(status: Option<u16>, body: &str) -> Response {
    Response {
        status,
        body: body.to_string(),
        retry_after: Some(Duration::from_secs(1)),
        ..Response::default()
    }
}

#[test]
fn slack_answers_are_read_by_their_body() {
    let cases: [(Option<u16>, &str, &str); 12] = [
        (Some(200), "ok", "delivered"),
        (Some(429), "rate_limited", "retry"),
        (Some(500), "rollup_error", "retry"),
        (Some(503), "", "retry"),
        (None, "", "retry"),
        (Some(400), "invalid_payload", "failed"),
        (Some(400), "no_text", "failed"),
        (Some(410), "channel_is_archived", "disabled"),
        (Some(404), "channel_not_found", "disabled"),
        (Some(403), "invalid_token", "disabled"),
        (Some(404), "no_service", "disabled"),
        (Some(403), "something new", "failed"),
    ];
    for (status, body, outcome) in cases {
        let reading = slack::read(&response(status, body), 1024);
        assert_eq!(reading.outcome(), outcome, "{status:?} {body}");
    }
    let archived = slack::read(&response(Some(410), "channel_is_archived\n"), 1024);
    assert_eq!(
        archived.verdict,
        Verdict::Disable("Slack answered 410 channel_is_archived".into())
    );
    assert_eq!(archived.body.body.as_deref(), Some("channel_is_archived"));
    // An answer Slack does not document is not kept: the URL is a secret it may echo.
    let unknown = slack::read(
        &response(Some(400), "https://hooks.slack.com/services/T/B/x"),
        1024,
    );
    assert_eq!(unknown.body.body, None);
    assert!(unknown.body.withheld.is_some());
}

#[test]
fn teams_answers_are_read_by_their_status() {
    for (status, outcome) in [
        (Some(202), "delivered"),
        (Some(200), "delivered"),
        (Some(429), "retry"),
        (Some(502), "retry"),
        (None, "retry"),
        (Some(400), "disabled"),
        (Some(401), "disabled"),
        (Some(403), "disabled"),
        (Some(404), "disabled"),
        (Some(413), "failed"),
        (Some(302), "failed"),
    ] {
        let reading = teams::read(&response(status, "whatever"));
        assert_eq!(reading.outcome(), outcome, "{status:?}");
        assert_eq!(reading.body.body, None, "nothing of a Teams answer is kept");
    }
}

#[test]
fn values_inside_the_author_s_slack_links_keep_the_link_working() {
    let template = texts(
        "t",
        "<https://wandb.ai/${run_name}/runs|${run_name}> *${run_name}*",
        None,
    );
    let body = slack_body(&template, &vars("my_run|x>y z"));
    let section = body["blocks"][1]["text"]["text"].as_str().unwrap();
    assert_eq!(
        section,
        "<https://wandb.ai/my_run%7Cx%3Ey%20z/runs|my_run|x&gt;y z> *my<!date^00000000^{_}|_>run|x&gt;y z*"
    );
    let fallback = body["text"].as_str().unwrap();
    assert!(
        fallback.contains("<https://wandb.ai/my_run%7Cx%3Ey%20z/runs|my_run|x&gt;y z>"),
        "{fallback}"
    );
}

#[test]
fn teams_values_cannot_start_lists_or_headings() {
    let template = texts("t", "${run_name}", None);
    let body = teams_body(
        &template,
        &vars("a\n- item\n+ b\n  12. x\n3) y\n# h\nv1.2 - ok"),
    );
    let message = body["attachments"][0]["content"]["body"][1]["text"]
        .as_str()
        .unwrap();
    assert_eq!(
        message,
        "a\n\\- item\n\\+ b\n  12\\. x\n3\\) y\n\\# h\nv1.2 - ok"
    );
}
