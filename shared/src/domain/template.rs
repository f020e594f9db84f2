//! Payload templates: `${name}` is substituted inside JSON strings only, so no event value
//! can change the payload's structure. A string that is exactly `"${name}"` takes the
//! value's own JSON type. `${` not followed by a valid name and `}` stays literal, so
//! expressions such as GitHub's `${{ github.sha }}` pass through untouched.

use std::collections::BTreeSet;

use serde_json::Value;

use super::Invalid;
use super::limits::json_len;

/// Variables a template may use besides `artifact_metadata.KEY` and team secrets.
pub const VARIABLES: &[&str] = &[
    "event_type",
    "event_author",
    "entity_name",
    "project_name",
    "artifact_version",
    "artifact_version_string",
    "artifact_collection_name",
    "alias",
    "tag",
    "run_id",
    "run_name",
    "run_user",
    "run_state",
    "metric_name",
    "metric_value",
    "automation_name",
    "execution_id",
];

const METADATA_PREFIX: &str = "artifact_metadata.";

/// What a `${name}` refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var<'a> {
    /// One of [`VARIABLES`].
    Event(&'a str),
    /// `artifact_metadata.KEY`: a key of the artifact's metadata.
    Metadata(&'a str),
    /// A team secret (names are `[A-Z0-9_]+`).
    Secret(&'a str),
}

impl<'a> Var<'a> {
    fn classify(name: &'a str) -> Result<Self, String> {
        if let Some(key) = name.strip_prefix(METADATA_PREFIX) {
            return Ok(Var::Metadata(key));
        }
        if is_secret_name(name) {
            return Ok(Var::Secret(name));
        }
        if VARIABLES.contains(&name) {
            return Ok(Var::Event(name));
        }
        Err(format!(
            "unknown variable ${{{name}}}; use one of {}, artifact_metadata.KEY, or a team secret's NAME",
            VARIABLES.join(", ")
        ))
    }
}

/// Looks an event variable up in `vars` (an execution's variables); secrets are not in
/// there.
pub fn lookup(vars: &serde_json::Map<String, Value>, var: Var<'_>) -> Option<Value> {
    match var {
        Var::Event(name) => vars.get(name).cloned(),
        Var::Metadata(key) => vars
            .get("artifact_metadata")
            .and_then(|m| m.get(key))
            .cloned(),
        Var::Secret(_) => None,
    }
}

/// Secret names are `[A-Z0-9_]+`, at most 128 characters.
pub fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits a string into literal text and `${name}` references.
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    let mut literal_start = 0;
    let mut offset = 0;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        match after
            .find('}')
            .map(|end| &after[..end])
            .filter(|n| is_reference(n))
        {
            Some(name) => {
                let abs = offset + start;
                if abs > literal_start {
                    out.push(Piece::Text(&s[literal_start..abs]));
                }
                out.push(Piece::Var(name));
                let consumed = start + 2 + name.len() + 1;
                offset += consumed;
                literal_start = offset;
                rest = &rest[consumed..];
            }
            None => {
                offset += start + 2;
                rest = &rest[start + 2..];
            }
        }
    }
    if literal_start < s.len() {
        out.push(Piece::Text(&s[literal_start..]));
    }
    out
}

fn is_reference(name: &str) -> bool {
    let (head, key) = match name.split_once('.') {
        Some((h, k)) => (h, Some(k)),
        None => (name, None),
    };
    !head.is_empty()
        && head.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && key.is_none_or(|k| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

/// Checks every reference of a payload template and returns the secrets it uses.
/// Errors name the place in the payload, e.g. `client_payload.version`.
pub fn check(payload: &Value) -> Result<BTreeSet<String>, Invalid> {
    let mut secrets = BTreeSet::new();
    check_value(payload, "", &mut secrets)?;
    Ok(secrets)
}

fn check_value(value: &Value, path: &str, secrets: &mut BTreeSet<String>) -> Result<(), Invalid> {
    match value {
        Value::String(s) => check_string(s, path, secrets),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_value(v, &format!("{path}[{i}]"), secrets)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            let child = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            check_value(v, &child, secrets)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// Checks every reference of a text template (a notification's title, message or
/// severity) and returns the secrets it uses. Errors name no field: the caller's is the
/// template's.
pub fn check_text(text: &str) -> Result<BTreeSet<String>, Invalid> {
    let mut secrets = BTreeSet::new();
    check_string(text, "", &mut secrets)?;
    Ok(secrets)
}

/// A text template as rendered: `cut` when it reached the rendering's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedText {
    pub text: String,
    pub cut: bool,
}

/// Renders a text template: its literal text as written (the author's own markup), each
/// value passed through `escape` for the destination, so that no event value adds markup.
/// A string value is its text, `null` or a missing value nothing, any other value its
/// JSON. At most `max_bytes` of literal text and values are rendered (before escaping),
/// since references can repeat a large value; a longer rendering stops there, `cut`.
pub fn render_text(
    text: &str,
    max_bytes: usize,
    resolve: &mut dyn FnMut(Var<'_>) -> Option<Value>,
    escape: &dyn Fn(&str, &mut String),
) -> RenderedText {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    let mut left = max_bytes;
    // Takes as much of `piece` as the budget leaves; false once the budget is spent.
    let mut take = |piece: &str, escaped: bool, out: &mut String| -> bool {
        let fits = piece.len() <= left;
        let piece = if fits {
            piece
        } else {
            let mut end = left;
            while !piece.is_char_boundary(end) {
                end -= 1;
            }
            &piece[..end]
        };
        left -= piece.len();
        if escaped {
            escape(piece, out);
        } else {
            out.push_str(piece);
        }
        fits
    };
    for piece in pieces(text) {
        let whole = match piece {
            Piece::Text(t) => take(t, false, &mut out),
            Piece::Var(name) => match Var::classify(name).ok().and_then(&mut *resolve) {
                Some(Value::String(v)) => take(&v, true, &mut out),
                Some(Value::Null) | None => true,
                Some(other) => take(&other.to_string(), true, &mut out),
            },
        };
        if !whole {
            return RenderedText {
                text: out,
                cut: true,
            };
        }
    }
    RenderedText {
        text: out,
        cut: false,
    }
}

/// How many references to team secrets a checked template holds (each counted as often as
/// it appears).
pub fn secret_references(payload: &Value) -> usize {
    let mut count = 0;
    let mut stack = vec![payload];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) => {
                count += pieces(s)
                    .iter()
                    .filter(|p| {
                        matches!(p, Piece::Var(name) if matches!(Var::classify(name), Ok(Var::Secret(_))))
                    })
                    .count();
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    count
}

fn check_string(s: &str, path: &str, secrets: &mut BTreeSet<String>) -> Result<(), Invalid> {
    for piece in pieces(s) {
        if let Piece::Var(name) = piece {
            match Var::classify(name).map_err(|m| Invalid::new(path, m))? {
                Var::Secret(n) => {
                    secrets.insert(n.to_string());
                }
                Var::Event(_) | Var::Metadata(_) => {}
            }
        }
    }
    Ok(())
}

/// A rendering stopped because the payload would have grown past its limit: references can
/// repeat one large value many times, so the result is bounded as it is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the payload renders to more than {max} bytes of JSON; reference large values fewer times")]
pub struct TooLarge {
    pub max: usize,
}

/// Renders a checked template, stopping once its JSON would pass `max_bytes`. `resolve`
/// answers each reference; `None` renders as `null` for a whole-string reference and as
/// nothing inside a longer string.
pub fn render(
    payload: &Value,
    max_bytes: usize,
    resolve: &mut dyn FnMut(Var<'_>) -> Option<Value>,
) -> Result<Value, TooLarge> {
    let mut budget = Budget {
        left: max_bytes,
        max: max_bytes,
    };
    render_value(payload, &mut budget, resolve)
}

/// What is left of a rendering's size limit.
struct Budget {
    left: usize,
    max: usize,
}

impl Budget {
    fn spend(&mut self, bytes: usize) -> Result<(), TooLarge> {
        self.left = self
            .left
            .checked_sub(bytes)
            .ok_or(TooLarge { max: self.max })?;
        Ok(())
    }
}

fn render_value(
    payload: &Value,
    budget: &mut Budget,
    resolve: &mut dyn FnMut(Var<'_>) -> Option<Value>,
) -> Result<Value, TooLarge> {
    Ok(match payload {
        Value::String(s) => render_string(s, budget, resolve)?,
        Value::Array(items) => {
            // Brackets and commas.
            budget.spend(2 + items.len().saturating_sub(1))?;
            Value::Array(
                items
                    .iter()
                    .map(|v| render_value(v, budget, resolve))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Object(map) => {
            // Braces, then each key with its colon and, after the first, a comma.
            budget.spend(2 + map.len().saturating_sub(1))?;
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                budget.spend(json_len(k) + 1)?;
                out.insert(k.clone(), render_value(v, budget, resolve)?);
            }
            Value::Object(out)
        }
        other => {
            budget.spend(json_len(other))?;
            other.clone()
        }
    })
}

fn render_string(
    s: &str,
    budget: &mut Budget,
    resolve: &mut dyn FnMut(Var<'_>) -> Option<Value>,
) -> Result<Value, TooLarge> {
    let parts = pieces(s);
    let lookup =
        |name: &str, resolve: &mut dyn FnMut(Var<'_>) -> Option<Value>| match Var::classify(name) {
            Ok(var) => resolve(var),
            Err(_) => None,
        };
    if let [Piece::Var(name)] = parts.as_slice() {
        let value = lookup(name, resolve).unwrap_or(Value::Null);
        budget.spend(json_len(&value))?;
        return Ok(value);
    }
    // Quotes, then each piece as it would be escaped.
    budget.spend(2)?;
    let mut out = String::with_capacity(s.len());
    let mut push = |text: &str, out: &mut String| -> Result<(), TooLarge> {
        budget.spend(json_len(text) - 2)?;
        out.push_str(text);
        Ok(())
    };
    for piece in parts {
        match piece {
            Piece::Text(t) => push(t, &mut out)?,
            Piece::Var(name) => match lookup(name, resolve) {
                Some(Value::String(v)) => push(&v, &mut out)?,
                Some(Value::Null) | None => {}
                Some(other) => push(&other.to_string(), &mut out)?,
            },
        }
    }
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(var: Var<'_>) -> Option<Value> {
        match var {
            Var::Event("event_type") => Some(json!("ADD_ARTIFACT_ALIAS")),
            Var::Event("event_author") => Some(json!("ali\"ce\\ ${TOKEN} }{ \u{1F600}\n")),
            Var::Event("metric_value") => Some(json!(0.25)),
            Var::Event("tag") => None,
            Var::Metadata("params") => Some(json!({"layers": 50})),
            Var::Secret("TOKEN") => Some(json!("s3cr3t")),
            _ => Some(json!("x")),
        }
    }

    fn render_with(payload: Value) -> Value {
        render(&payload, usize::MAX, &mut vars).unwrap()
    }

    #[test]
    fn substitutes_inside_strings_with_json_escaping() {
        let out = render_with(json!({"text": "by ${event_author}!"}));
        let text = serde_json::to_string(&out).unwrap();
        assert_eq!(out["text"], "by ali\"ce\\ ${TOKEN} }{ \u{1F600}\n!");
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            out,
            "the rendered payload stays valid JSON"
        );
        assert_eq!(
            out.as_object().unwrap().len(),
            1,
            "a hostile value cannot add keys"
        );
    }

    #[test]
    fn values_are_not_expanded_twice() {
        let out = render_with(json!("${event_author}"));
        assert!(out.as_str().unwrap().contains("${TOKEN}"));
        assert!(!out.as_str().unwrap().contains("s3cr3t"));
    }

    #[test]
    fn whole_string_reference_keeps_the_type() {
        let out = render_with(
            json!({"v": "${metric_value}", "m": "${artifact_metadata.params}", "t": "${tag}",
                                     "s": "v=${metric_value}", "n": 3, "b": true}),
        );
        assert_eq!(
            out,
            json!({"v": 0.25, "m": {"layers": 50}, "t": null, "s": "v=0.25", "n": 3, "b": true})
        );
    }

    #[test]
    fn non_references_stay_literal() {
        let payload = json!([
            "${{ github.sha }}",
            "${ event_type }",
            "$event_type",
            "${",
            "}${",
            "${}",
            "a${event_type"
        ]);
        assert_eq!(render_with(payload.clone()), payload);
        assert!(check(&payload).unwrap().is_empty());
    }

    #[test]
    fn keys_are_never_substituted() {
        let out = render_with(json!({"${event_type}": "${event_type}"}));
        assert_eq!(out, json!({"${event_type}": "ADD_ARTIFACT_ALIAS"}));
    }

    #[test]
    fn check_collects_secrets_and_rejects_unknown_variables() {
        let secrets =
            check(&json!({"auth": "Bearer ${TOKEN}", "x": ["${OTHER_1}", "${event_type}"]}))
                .unwrap();
        assert_eq!(
            secrets.into_iter().collect::<Vec<_>>(),
            vec!["OTHER_1", "TOKEN"]
        );
        let err = check(&json!({"client_payload": {"v": "${artifact_versoin}"}})).unwrap_err();
        assert_eq!(err.field, "client_payload.v");
        assert!(
            err.message.contains("unknown variable ${artifact_versoin}"),
            "{err}"
        );
        let err = check(&json!({"list": [1, "${Token}"]})).unwrap_err();
        assert_eq!(err.field, "list[1]");
    }

    #[test]
    fn a_rendering_stops_at_its_limit_however_often_a_value_is_repeated() {
        let large = "x".repeat(10_000);
        let mut resolve = |_: Var<'_>| Some(json!(large));
        let template = json!({"copies": vec!["${alias}"; 1000], "inline": "${alias}${alias}"});
        let err = render(&template, 1 << 20, &mut resolve).unwrap_err();
        assert_eq!(err, TooLarge { max: 1 << 20 });
        let out = render(&json!({"one": "a ${alias} b"}), 10_020, &mut resolve).unwrap();
        assert_eq!(out["one"].as_str().unwrap().len(), 10_004);
        // The limit is on the payload as JSON: exactly at it is fine, one byte less is not.
        let len = crate::domain::limits::json_len(&out);
        assert!(render(&json!({"one": "a ${alias} b"}), len, &mut resolve).is_ok());
        assert!(render(&json!({"one": "a ${alias} b"}), len - 1, &mut resolve).is_err());
    }

    #[test]
    fn unicode_around_references_is_kept() {
        let out = render_with(json!("ünï ${event_type} 日本 ${event_type}"));
        assert_eq!(out, json!("ünï ADD_ARTIFACT_ALIAS 日本 ADD_ARTIFACT_ALIAS"));
    }

    #[test]
    fn text_templates_escape_only_the_values_and_stop_at_their_limit() {
        let brackets = |v: &str, out: &mut String| {
            out.push('[');
            out.push_str(v);
            out.push(']');
        };
        let out = render_text(
            "*${event_type}* by ${event_author}: ${metric_value} ${tag}${artifact_metadata.params}",
            usize::MAX,
            &mut vars,
            &brackets,
        );
        assert_eq!(
            out.text,
            "*[ADD_ARTIFACT_ALIAS]* by [ali\"ce\\ ${TOKEN} }{ \u{1F600}\n]: [0.25] [{\"layers\":50}]"
        );
        assert!(!out.cut);
        // A value repeated past the limit stops the rendering at a character boundary.
        let mut large = |_: Var<'_>| Some(json!("é".repeat(10_000)));
        let out = render_text("a ${alias}${alias}", 101, &mut large, &|v, o| o.push_str(v));
        assert!(out.cut);
        assert_eq!(out.text.len(), 100);
        assert!(out.text.starts_with("a éé"));
        assert_eq!(
            check_text("${run_name} ${GH_TOKEN}")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["GH_TOKEN"]
        );
        assert!(
            check_text("${run_nmae}")
                .unwrap_err()
                .message
                .contains("run_nmae")
        );
    }

    #[test]
    fn secret_names() {
        assert!(is_secret_name("GITHUB_TOKEN_2"));
        assert!(!is_secret_name("github_token"));
        assert!(!is_secret_name(""));
        assert!(!is_secret_name("A-B"));
    }
}
