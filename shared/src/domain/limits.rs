//! The limits every door applies, in one place. Whatever passes them is stored, queued and
//! read back by every reader: each limit sits below what the readers take, with room for
//! the wrapping a record adds around the value.
//!
//! | what | limit | the reader it protects |
//! |---|---|---|
//! | nesting of free-form JSON (metadata, payloads, test payloads) | [`MAX_DEPTH`] levels | serde_json reads at most [`READER_DEPTH`] levels; a record wraps a value in at most [`RECORD_WRAPPING`] more |
//! | nesting of a filter | [`MAX_FILTER_DEPTH`] levels | the filter compiler |
//! | a request body | [`MAX_BODY_BYTES`] | the HTTP layer, both runtimes |
//! | an event as queued | [`MAX_EVENT_BYTES`] | an SQS message (256 KiB), a DynamoDB execution item (400 KB) |
//! | a payload template | [`MAX_TEMPLATE_BYTES`] | a DynamoDB automation and execution item (400 KB) |
//! | a filter | [`MAX_FILTER_BYTES`] | a DynamoDB automation item |
//! | a payload as recorded in an execution | [`MAX_RECORDED_PAYLOAD_BYTES`] | a DynamoDB execution item |
//! | a payload as rendered for delivery | [`MAX_RENDERED_PAYLOAD_BYTES`] | the sender's memory, the receiver |

use serde_json::Value;

use super::Invalid;

/// Deepest nesting of free-form JSON a client may send: `{}` is one level, `{"a": {}}` two.
pub const MAX_DEPTH: usize = 32;
/// Deepest nesting of a filter document.
pub const MAX_FILTER_DEPTH: usize = 16;
/// What every reader of stored and queued JSON accepts: serde_json's recursion limit.
pub const READER_DEPTH: usize = 128;
/// The most levels a record adds around a value a client sent (an execution keeps
/// metadata at `vars.artifact_metadata`, an automation its payload at `spec.action.payload`,
/// an API answer wraps a record once more).
pub const RECORD_WRAPPING: usize = 8;
/// Largest request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest event, as validated and queued.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Largest payload template (an automation's payload, an integration test's payload).
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Largest filter, serialized.
pub const MAX_FILTER_BYTES: usize = 16 * 1024;
/// Largest payload an execution record shows; a larger one is recorded as omitted.
pub const MAX_RECORDED_PAYLOAD_BYTES: usize = 64 * 1024;
/// Largest secret value.
pub const MAX_SECRET_BYTES: usize = 16 * 1024;
/// The most a secret's value takes in a rendered payload: its bytes JSON-escaped (at most
/// six each, `\u0000`) and its quotes.
pub const MAX_SECRET_JSON_BYTES: usize = 6 * MAX_SECRET_BYTES + 2;
/// Largest payload a delivery sends, as rendered: references can repeat a large value, so
/// rendering stops here (the execution fails, saying so) instead of building it whole.
pub const MAX_RENDERED_PAYLOAD_BYTES: usize = 1024 * 1024;

const _: () = assert!(MAX_DEPTH + RECORD_WRAPPING < READER_DEPTH);
const _: () = assert!(MAX_FILTER_DEPTH <= MAX_DEPTH);

/// How deeply `value` nests: 0 for a scalar, 1 for `{}` or `[1]`, 2 for `{"a": []}`.
/// Iterative, so that no value is too deep to measure.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(level);
                stack.extend(items.iter().map(|v| (v, level + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(level);
                stack.extend(map.values().map(|v| (v, level + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Refuses a value nested deeper than `max` levels; the error names `field`.
pub fn check_depth(field: &str, value: &Value, max: usize) -> Result<(), Invalid> {
    check_levels(field, depth(value), max)
}

/// Refuses `levels` of nesting beyond `max`; the error names `field`.
pub fn check_levels(field: &str, levels: usize, max: usize) -> Result<(), Invalid> {
    if levels > max {
        return Err(Invalid::new(
            field,
            format!("is nested {levels} levels deep; at most {max} levels are accepted"),
        ));
    }
    Ok(())
}

/// The length of `value` serialized as compact JSON.
pub fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        // Only a map with non-string keys fails, which serde_json values cannot hold.
        Err(_) => usize::MAX,
    }
}

/// Refuses a value longer than `max` bytes as JSON; the error names `field`.
pub fn check_size(field: &str, value: &impl serde::Serialize, max: usize) -> Result<(), Invalid> {
    let len = json_len(value);
    if len > max {
        return Err(Invalid::new(
            field,
            format!("is {len} bytes as JSON; at most {max} bytes are accepted"),
        ));
    }
    Ok(())
}

/// Checks free-form JSON a client sent: at most [`MAX_DEPTH`] levels and `max_bytes`.
pub fn check_json(field: &str, value: &Value, max_bytes: usize) -> Result<(), Invalid> {
    check_depth(field, value, MAX_DEPTH)?;
    check_size(field, value, max_bytes)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The last `max` bytes of `text` at most, starting on a character boundary.
pub fn truncate_start(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(any(test, feature = "conformance"))]
/// A value nested `levels` deep (`{"a": {"a": … {}}}`), for tests at the boundary.
pub fn nested(levels: usize) -> Value {
    let mut value = Value::Object(serde_json::Map::new());
    for _ in 1..levels {
        let mut map = serde_json::Map::new();
        map.insert("a".into(), value);
        value = Value::Object(map);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_counts_containers() {
        assert_eq!(depth(&json!(1)), 0);
        assert_eq!(depth(&json!({})), 1);
        assert_eq!(depth(&json!([1, {"a": [true]}])), 3);
        assert_eq!(depth(&nested(MAX_DEPTH)), MAX_DEPTH);
    }

    #[test]
    fn the_deepest_accepted_value_reads_back_inside_every_record_wrapping() {
        let value = nested(MAX_DEPTH);
        check_json("payload", &value, MAX_TEMPLATE_BYTES).unwrap();
        let mut wrapped = value.clone();
        for _ in 0..RECORD_WRAPPING {
            wrapped = json!({ "w": wrapped });
        }
        let text = serde_json::to_string(&wrapped).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, wrapped);
    }

    #[test]
    fn one_level_deeper_is_refused_naming_the_field() {
        let err = check_json("artifact.metadata", &nested(MAX_DEPTH + 1), 1 << 20).unwrap_err();
        assert_eq!(err.field, "artifact.metadata");
        assert!(err.message.contains("33 levels"), "{err}");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn sizes_are_measured_as_compact_json() {
        let value = json!({"a": "é"});
        assert_eq!(json_len(&value), serde_json::to_vec(&value).unwrap().len());
        assert!(check_size("p", &value, 10).is_ok());
        assert_eq!(check_size("p", &value, 9).unwrap_err().field, "p");
    }
}
