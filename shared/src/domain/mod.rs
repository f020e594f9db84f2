//! Events, automations, integrations, executions and the rules between them. No I/O.

pub mod access;
pub mod automation;
pub mod evaluation;
pub mod event;
pub mod execution;
pub mod filter;
pub mod ids;
pub mod integration;
pub mod job;
pub mod limits;
pub mod metric;
pub mod source;
pub mod template;

use serde::Serialize;

/// A request field that failed validation: `field` is a dotted path into the request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field path, e.g. `alias` inside `event.filter` becomes `event.filter.alias`.
    pub fn within(mut self, parent: &str) -> Self {
        if parent.is_empty() {
            return self;
        }
        self.field = match self.field.as_str() {
            "" => parent.to_string(),
            f if f.starts_with('[') => format!("{parent}{f}"),
            f => format!("{parent}.{f}"),
        };
        self
    }
}

/// Deserializes a JSON value; the error names the field that did not fit.
pub fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.into_inner().to_string();
        // serde names a missing field in its words only: name it in the path too.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'));
        match missing {
            Some(field) if path.is_empty() => Invalid::new(field, message.clone()),
            Some(field) => Invalid::new(format!("{path}.{field}"), message.clone()),
            None => Invalid::new(path, message),
        }
    })
}

/// The longest collection name, in bytes.
pub const MAX_COLLECTION_BYTES: usize = 1024;

/// Checks a collection name: 1 to 1,024 bytes, not only whitespace, any characters
/// otherwise. The rule is MLflow's for registered model names (which may hold spaces,
/// `%`, `?`, any script, even tabs and newlines; MLflow refuses `/` and `:`, which are
/// allowed here), so that every model name becomes a collection exactly as MLflow spells
/// it, and a filter matches it as written. A collection never appears in a key's
/// delimiters or a URL path, so no character of it can change a lookup.
pub fn check_collection(field: &str, value: &str) -> Result<(), Invalid> {
    if value.trim().is_empty() {
        Err(Invalid::new(field, "must not be empty or only whitespace"))
    } else if value.len() > MAX_COLLECTION_BYTES {
        Err(Invalid::new(
            field,
            format!("longer than {MAX_COLLECTION_BYTES} bytes"),
        ))
    } else {
        Ok(())
    }
}

/// A byte names may hold: letters, digits, `.`, `_` and `-`.
pub fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

/// Checks a name used in a URL path or a scope: 1–128 of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn check_name(field: &str, value: &str) -> Result<(), Invalid> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with('.')
        && value.bytes().all(is_name_byte);
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            "must be 1 to 128 characters of letters, digits, '.', '_' or '-', not starting with '.'",
        ))
    }
}
