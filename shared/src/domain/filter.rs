//! Mongo-style filters that decide whether an automation fires for an event.
//!
//! A filter is a JSON object compiled once with [`Filter::compile`] and then
//! evaluated against the JSON document built from an event with
//! [`Filter::matches`]. Compilation validates everything up front, so
//! evaluation never fails.
//!
//! # Shape
//!
//! - A filter document is a JSON object whose entries are ANDed; `{}` matches
//!   everything.
//! - A key starting with `$` must be a logical operator: `$and`, `$or`, `$nor`
//!   (each a non-empty array of filter documents) or `$not` (one filter
//!   document).
//! - Any other key is a dotted field path such as `artifact.metadata.framework`.
//!   Each segment looks up an object key; on an array, a segment that is a
//!   non-negative integer indexes it (`artifact.metadata.tags.0`). Arrays are
//!   not fanned out across the remaining path.
//! - A field's value is either an operator object, where every key starts with
//!   `$` (mixing `$` and plain keys is an error), or any other JSON value,
//!   which means `$eq` that value. Operators in one object are ANDed.
//!
//! # Field operators
//!
//! A missing field and a JSON `null` are treated alike ("absent").
//!
//! - `$eq v`: JSON equality, numbers compared as `f64` (`1 == 1.0`), also
//!   inside arrays and objects. If the field is an array it also matches when
//!   any element equals `v`. An absent field equals only `null`.
//! - `$ne v`: exactly `!($eq v)`, so an absent field matches any non-null `v`.
//! - `$gt`, `$gte`, `$lt`, `$lte`: the operand must be a number or a string.
//!   Numbers compare with numbers, strings with strings (byte-wise, which is
//!   code point order); any other pairing, arrays and absent fields included,
//!   never matches.
//! - `$in [..]`: matches if `$eq` matches any element; `$nin` is its negation.
//!   So `$in [null]` matches an absent field and `$nin` matches it otherwise.
//! - `$exists b`: `true` matches a present, non-null field; `false` matches an
//!   absent one.
//! - `$regex p`: `p` is compiled once, with the `regex` crate's syntax and
//!   inline flags such as `(?i)`; unanchored unless `p` anchors itself. It
//!   matches a string field, or an array field with any string element that
//!   matches. Patterns are limited to 1000 characters and 1 MiB compiled.
//! - `$contains v`: a string field contains `v` as a literal substring (when
//!   `v` is a string), or an array field has an element equal to `v`.
//! - `$not`: an operator object or a regex string; it negates the result, so
//!   `{"alias": {"$not": {"$regex": "^dev"}}}` matches an absent `alias`.
//!
//! # Limits
//!
//! Nesting is at most 16 levels (each filter document, operator object and
//! field-level `$not` operand is one level, the root being level 1), and a
//! filter holds at most 256 operators (each logical operator, each field
//! operator, and each implicit `$eq` counts one). Exceeding either is a
//! compile error.
//!
//! # Errors
//!
//! A [`FilterError`] carries the dotted path of the offending entry from the
//! filter root, such as `alias.$regx` or `$or[1].run.name.$in` (`""` for the
//! root), and a message; unknown operators suggest the closest known one.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};
use serde_json::{Map, Value};

const MAX_DEPTH: usize = 16;
const MAX_NODES: usize = 256;
const MAX_REGEX_CHARS: usize = 1000;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

const LOGICAL_OPS: [&str; 4] = ["$and", "$or", "$nor", "$not"];
const FIELD_OPS: [&str; 12] = [
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "$contains",
    "$not",
];

/// A filter that failed to compile: where (`path`, dotted from the filter
/// root, `""` for the root) and why (`message`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    /// Location of the problem, e.g. `alias.$regx` or `$or[1].run.name.$in`.
    pub path: String,
    /// Human-readable description of the problem.
    pub message: String,
}

/// A compiled filter, cheap to evaluate against many documents.
#[derive(Debug, Clone)]
pub struct Filter {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Nor(Vec<Node>),
    Not(Box<Node>),
    Field {
        path: String,
        segments: Vec<String>,
        conds: Vec<Cond>,
    },
}

#[derive(Debug, Clone)]
enum Cond {
    Eq(Value),
    Ne(Value),
    Cmp(CmpOp, Bound),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Regex(Regex),
    Contains(Value),
    Not(Vec<Cond>),
}

#[derive(Debug, Clone, Copy)]
enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Debug, Clone)]
enum Bound {
    Num(f64),
    Str(String),
}

impl Filter {
    /// Compiles a filter document (must be a JSON object). `{}` matches everything.
    pub fn compile(spec: &Value) -> Result<Filter, FilterError> {
        if !spec.is_object() {
            return Err(error(
                "",
                format!("filter must be a JSON object, got {}", kind(spec)),
            ));
        }
        let root = Compiler { nodes: 0 }.document(spec, "", 1)?;
        Ok(Filter { root })
    }

    /// Whether `doc` satisfies the filter.
    pub fn matches(&self, doc: &Value) -> bool {
        self.root.eval(doc)
    }

    /// Why `doc` does not satisfy the filter: the dotted path of the first field whose
    /// conditions fail, or for `$or`, `$nor` and `$not`, which no single field decides,
    /// the operator. `None` when it matches.
    pub fn mismatch(&self, doc: &Value) -> Option<String> {
        self.root.mismatch(doc)
    }

    /// Dotted field paths the filter reads, for diagnostics.
    ///
    /// Each path appears once, in the order first met while walking the filter.
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.root.collect_fields(&mut out);
        out
    }
}

struct Compiler {
    nodes: usize,
}

impl Compiler {
    fn document(&mut self, spec: &Value, path: &str, depth: usize) -> Result<Node, FilterError> {
        check_depth(path, depth)?;
        let Value::Object(map) = spec else {
            return Err(error(
                path,
                format!(
                    "expected a filter document (a JSON object), got {}",
                    kind(spec)
                ),
            ));
        };
        let mut children = Vec::with_capacity(map.len());
        for (key, value) in map {
            let child = if key.starts_with('$') {
                self.logical(key, value, &join(path, key), depth)?
            } else {
                self.field(key, value, path, depth)?
            };
            children.push(child);
        }
        Ok(Node::And(children))
    }

    fn logical(
        &mut self,
        op: &str,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Node, FilterError> {
        match op {
            "$and" | "$or" | "$nor" => {
                self.count(path)?;
                let items = match value {
                    Value::Array(items) if !items.is_empty() => items,
                    other => {
                        let got = match other {
                            Value::Array(_) => "an empty array",
                            _ => kind(other),
                        };
                        return Err(error(
                            path,
                            format!(
                                "{op} expects a non-empty array of filter documents, got {got}"
                            ),
                        ));
                    }
                };
                let children = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.document(item, &format!("{path}[{i}]"), depth + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(match op {
                    "$and" => Node::And(children),
                    "$or" => Node::Or(children),
                    _ => Node::Nor(children),
                })
            }
            "$not" => {
                self.count(path)?;
                Ok(Node::Not(Box::new(self.document(
                    value,
                    path,
                    depth + 1,
                )?)))
            }
            _ if FIELD_OPS.contains(&op) => Err(error(
                path,
                format!(
                    "{op} is a field operator and must be applied to a field, \
                     e.g. {{\"field\": {{\"{op}\": ...}}}}"
                ),
            )),
            _ => Err(unknown_operator(op, &LOGICAL_OPS, path)),
        }
    }

    fn field(
        &mut self,
        key: &str,
        value: &Value,
        parent: &str,
        depth: usize,
    ) -> Result<Node, FilterError> {
        let path = join(parent, key);
        let segments: Vec<String> = key.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(error(&path, "field path has an empty segment"));
        }
        let conds = match operator_object(value, &path)? {
            Some(ops) => self.operators(ops, &path, depth + 1)?,
            None => {
                self.count(&path)?;
                vec![Cond::Eq(value.clone())]
            }
        };
        Ok(Node::Field {
            path: key.to_owned(),
            segments,
            conds,
        })
    }

    fn operators(
        &mut self,
        ops: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Cond>, FilterError> {
        check_depth(path, depth)?;
        ops.iter()
            .map(|(op, arg)| self.operator(op, arg, &join(path, op), depth))
            .collect()
    }

    fn operator(
        &mut self,
        op: &str,
        arg: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Cond, FilterError> {
        self.count(path)?;
        Ok(match op {
            "$eq" => Cond::Eq(arg.clone()),
            "$ne" => Cond::Ne(arg.clone()),
            "$gt" | "$gte" | "$lt" | "$lte" => {
                let bound = match arg {
                    Value::Number(n) => Bound::Num(n.as_f64().unwrap_or(f64::NAN)),
                    Value::String(s) => Bound::Str(s.clone()),
                    other => {
                        return Err(error(
                            path,
                            format!("{op} expects a number or a string, got {}", kind(other)),
                        ));
                    }
                };
                let cmp = match op {
                    "$gt" => CmpOp::Gt,
                    "$gte" => CmpOp::Gte,
                    "$lt" => CmpOp::Lt,
                    _ => CmpOp::Lte,
                };
                Cond::Cmp(cmp, bound)
            }
            "$in" | "$nin" => {
                let Value::Array(items) = arg else {
                    return Err(error(
                        path,
                        format!("{op} expects an array of values, got {}", kind(arg)),
                    ));
                };
                if op == "$in" {
                    Cond::In(items.clone())
                } else {
                    Cond::Nin(items.clone())
                }
            }
            "$exists" => match arg {
                Value::Bool(b) => Cond::Exists(*b),
                other => {
                    return Err(error(
                        path,
                        format!("$exists expects a boolean, got {}", kind(other)),
                    ));
                }
            },
            "$regex" => match arg {
                Value::String(pattern) => Cond::Regex(compile_regex(pattern, path)?),
                other => {
                    return Err(error(
                        path,
                        format!("$regex expects a pattern string, got {}", kind(other)),
                    ));
                }
            },
            "$contains" => Cond::Contains(arg.clone()),
            "$not" => {
                let expected = "$not expects an operator object or a regex string";
                match arg {
                    Value::String(pattern) => {
                        self.count(path)?;
                        Cond::Not(vec![Cond::Regex(compile_regex(pattern, path)?)])
                    }
                    Value::Object(map) if map.is_empty() => {
                        return Err(error(path, format!("{expected}, got an empty object")));
                    }
                    _ => match operator_object(arg, path)? {
                        Some(ops) => Cond::Not(self.operators(ops, path, depth + 1)?),
                        None => {
                            return Err(error(path, format!("{expected}, got {}", kind(arg))));
                        }
                    },
                }
            }
            _ if LOGICAL_OPS.contains(&op) => {
                return Err(error(
                    path,
                    format!(
                        "{op} is a logical operator and can only appear at the top level \
                         of a filter document"
                    ),
                ));
            }
            _ => return Err(unknown_operator(op, &FIELD_OPS, path)),
        })
    }

    fn count(&mut self, path: &str) -> Result<(), FilterError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(error(
                path,
                format!("filter has too many operators (max {MAX_NODES})"),
            ));
        }
        Ok(())
    }
}

impl Node {
    fn eval(&self, doc: &Value) -> bool {
        match self {
            Node::And(nodes) => nodes.iter().all(|n| n.eval(doc)),
            Node::Or(nodes) => nodes.iter().any(|n| n.eval(doc)),
            Node::Nor(nodes) => !nodes.iter().any(|n| n.eval(doc)),
            Node::Not(node) => !node.eval(doc),
            Node::Field {
                segments, conds, ..
            } => {
                let value = resolve(doc, segments);
                conds.iter().all(|c| c.eval(value))
            }
        }
    }

    fn mismatch(&self, doc: &Value) -> Option<String> {
        if self.eval(doc) {
            return None;
        }
        match self {
            Node::And(nodes) => nodes.iter().find_map(|n| n.mismatch(doc)),
            Node::Or(_) => Some("$or".into()),
            Node::Nor(_) => Some("$nor".into()),
            Node::Not(_) => Some("$not".into()),
            Node::Field { path, .. } => Some(path.clone()),
        }
    }

    fn collect_fields(&self, out: &mut Vec<String>) {
        match self {
            Node::And(nodes) | Node::Or(nodes) | Node::Nor(nodes) => {
                nodes.iter().for_each(|n| n.collect_fields(out));
            }
            Node::Not(node) => node.collect_fields(out),
            Node::Field { path, .. } => {
                if !out.contains(path) {
                    out.push(path.clone());
                }
            }
        }
    }
}

impl Cond {
    /// `field` is `None` when the field is missing or null.
    fn eval(&self, field: Option<&Value>) -> bool {
        match self {
            Cond::Eq(v) => eq_match(field, v),
            Cond::Ne(v) => !eq_match(field, v),
            Cond::Cmp(op, bound) => {
                field
                    .and_then(|v| compare(v, bound))
                    .is_some_and(|ord| match op {
                        CmpOp::Gt => ord == Ordering::Greater,
                        CmpOp::Gte => ord != Ordering::Less,
                        CmpOp::Lt => ord == Ordering::Less,
                        CmpOp::Lte => ord != Ordering::Greater,
                    })
            }
            Cond::In(items) => items.iter().any(|v| eq_match(field, v)),
            Cond::Nin(items) => !items.iter().any(|v| eq_match(field, v)),
            Cond::Exists(wanted) => field.is_some() == *wanted,
            Cond::Regex(re) => match field {
                Some(Value::String(s)) => re.is_match(s),
                Some(Value::Array(items)) => items
                    .iter()
                    .any(|e| e.as_str().is_some_and(|s| re.is_match(s))),
                _ => false,
            },
            Cond::Contains(needle) => match field {
                Some(Value::String(s)) => needle.as_str().is_some_and(|n| s.contains(n)),
                Some(Value::Array(items)) => items.iter().any(|e| json_eq(e, needle)),
                _ => false,
            },
            Cond::Not(conds) => !conds.iter().all(|c| c.eval(field)),
        }
    }
}

fn resolve<'a>(doc: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut current = doc;
    for segment in segments {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!current.is_null()).then_some(current)
}

fn eq_match(field: Option<&Value>, expected: &Value) -> bool {
    match field {
        None => expected.is_null(),
        Some(value) => {
            json_eq(value, expected)
                || matches!(value, Value::Array(items) if items.iter().any(|e| json_eq(e, expected)))
        }
    }
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(xs), Value::Array(ys)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(xs), Value::Object(ys)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| json_eq(x, y)))
        }
        _ => a == b,
    }
}

fn compare(value: &Value, bound: &Bound) -> Option<Ordering> {
    match (value, bound) {
        (Value::Number(n), Bound::Num(b)) => n.as_f64()?.partial_cmp(b),
        (Value::String(s), Bound::Str(b)) => Some(s.as_str().cmp(b.as_str())),
        _ => None,
    }
}

fn operator_object<'a>(
    value: &'a Value,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, FilterError> {
    let Value::Object(map) = value else {
        return Ok(None);
    };
    let operator = map.keys().find(|k| k.starts_with('$'));
    let literal = map.keys().find(|k| !k.starts_with('$'));
    match (operator, literal) {
        (Some(op), Some(lit)) => Err(error(
            path,
            format!("cannot mix operators and literal keys in one object (found {op} and {lit})"),
        )),
        (Some(_), None) => Ok(Some(map)),
        _ => Ok(None),
    }
}

fn compile_regex(pattern: &str, path: &str) -> Result<Regex, FilterError> {
    let chars = pattern.chars().count();
    if chars > MAX_REGEX_CHARS {
        return Err(error(
            path,
            format!("regex is too long ({chars} characters, max {MAX_REGEX_CHARS})"),
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => error(
                path,
                format!("regex is too large once compiled (limit {limit} bytes)"),
            ),
            other => error(path, format!("invalid regex: {other}")),
        })
}

fn check_depth(path: &str, depth: usize) -> Result<(), FilterError> {
    if depth > MAX_DEPTH {
        return Err(error(
            path,
            format!("filter is nested too deeply (max depth {MAX_DEPTH})"),
        ));
    }
    Ok(())
}

fn unknown_operator(op: &str, known: &[&str], path: &str) -> FilterError {
    let lowered = op.to_lowercase();
    let closest = known
        .iter()
        .map(|k| (edit_distance(&lowered, k), *k))
        .min_by_key(|(d, _)| *d)
        .filter(|(d, _)| *d <= 2);
    let message = match closest {
        Some((_, k)) => format!("unknown operator {op}; did you mean {k}?"),
        None => format!(
            "unknown operator {op}; expected one of {}",
            known.join(", ")
        ),
    };
    error(path, message)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn error(path: &str, message: impl Into<String>) -> FilterError {
    FilterError {
        path: path.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;

    fn event() -> Value {
        json!({
            "event_type": "ADD_ARTIFACT_ALIAS",
            "author": "alice",
            "project": null,
            "registry": "model",
            "alias": "production",
            "tag": null,
            "artifact": {
                "collection": "resnet",
                "version": "v4",
                "type": "model",
                "alias": "production",
                "tag": null,
                "metadata": {
                    "framework": "torch",
                    "params": 12000000,
                    "lr": 0.001,
                    "tags": ["a", "b"],
                    "scores": [1, 2.5, 3],
                    "nested": [{"k": 1}, {"k": 2}],
                    "blurb": "ünïcödé 日本語 text",
                    "special": "price: $5.00 (approx) [a-z]*"
                }
            },
            "run": {"id": "3kx9", "name": "sunny-1", "user": "alice", "state": "FAILED"}
        })
    }

    fn compile(spec: Value) -> Filter {
        match Filter::compile(&spec) {
            Ok(f) => f,
            Err(e) => panic!("{spec} should compile, got {e}"),
        }
    }

    fn check(cases: &[(Value, bool)]) {
        let doc = event();
        for (spec, expected) in cases {
            assert_eq!(
                compile(spec.clone()).matches(&doc),
                *expected,
                "filter {spec}"
            );
        }
    }

    fn compile_err(spec: Value) -> FilterError {
        match Filter::compile(&spec) {
            Ok(f) => panic!("{spec} should not compile, got {f:?}"),
            Err(e) => e,
        }
    }

    fn nested_and(levels: usize, leaf: Value) -> Value {
        (0..levels).fold(leaf, |inner, _| json!({"$and": [inner]}))
    }

    #[test]
    fn empty_filter_matches_everything() {
        let f = compile(json!({}));
        assert!(f.matches(&event()));
        assert!(f.matches(&json!({})));
        assert!(f.matches(&json!(null)));
        assert!(f.fields().is_empty());
    }

    #[test]
    fn implicit_eq() {
        check(&[
            (json!({"artifact.collection": "resnet"}), true),
            (json!({"artifact.collection": "vgg"}), false),
            (json!({"alias": "production", "author": "alice"}), true),
            (json!({"alias": "production", "author": "bob"}), false),
            (json!({"artifact.metadata.params": 12000000.0}), true),
            (json!({"artifact.metadata.tags": "a"}), true),
            (json!({"artifact.metadata.tags": ["a", "b"]}), true),
            (json!({"artifact.metadata.tags": ["b", "a"]}), false),
            (json!({"artifact.metadata.nested": {"k": 2.0}}), true),
            (
                json!({"run": {"id": "3kx9", "name": "sunny-1", "user": "alice", "state": "FAILED"}}),
                true,
            ),
            (json!({"run": {"id": "3kx9"}}), false),
            (json!({"project": null}), true),
            (json!({"nope": null}), true),
            (json!({"alias": null}), false),
        ]);
    }

    #[test]
    fn eq_and_ne() {
        check(&[
            (json!({"registry": {"$eq": "model"}}), true),
            (json!({"registry": {"$eq": "dataset"}}), false),
            (json!({"registry": {"$ne": "dataset"}}), true),
            (json!({"registry": {"$ne": "model"}}), false),
            (json!({"artifact.metadata.params": {"$eq": 12000000}}), true),
            (
                json!({"artifact.metadata.params": {"$eq": "12000000"}}),
                false,
            ),
            (json!({"artifact.metadata.scores": {"$eq": 2.5}}), true),
            (json!({"artifact.metadata.scores": {"$eq": 1.0}}), true),
            (json!({"artifact.metadata.scores": {"$ne": 3}}), false),
            (json!({"artifact.metadata.scores": {"$ne": 4}}), true),
            (json!({"artifact.metadata.tags": {"$eq": "c"}}), false),
            (json!({"tag": {"$eq": null}}), true),
            (json!({"tag": {"$ne": null}}), false),
            (json!({"alias": {"$ne": null}}), true),
            (json!({"missing": {"$eq": "x"}}), false),
            (json!({"missing": {"$ne": "x"}}), true),
            (json!({"tag": {"$ne": "x"}}), true),
            (json!({"run.state": {"$eq": true}}), false),
        ]);
    }

    #[test]
    fn numbers_compare_as_f64() {
        let f = compile(json!({"n": 1}));
        assert!(f.matches(&json!({"n": 1.0})));
        assert!(f.matches(&json!({"n": 1})));
        assert!(!f.matches(&json!({"n": 1.5})));
        assert!(!f.matches(&json!({"n": "1"})));
        assert!(compile(json!({"n": -3})).matches(&json!({"n": -3.0})));
        assert!(
            compile(json!({"o": {"a": [1, {"b": 2}]}}))
                .matches(&json!({"o": {"a": [1.0, {"b": 2.0}]}}))
        );
    }

    #[test]
    fn ordering_operators() {
        check(&[
            (
                json!({"artifact.metadata.params": {"$gte": 1000000, "$lt": 5e7}}),
                true,
            ),
            (
                json!({"artifact.metadata.params": {"$gt": 12000000}}),
                false,
            ),
            (
                json!({"artifact.metadata.params": {"$gte": 12000000}}),
                true,
            ),
            (
                json!({"artifact.metadata.params": {"$lt": 12000000}}),
                false,
            ),
            (
                json!({"artifact.metadata.params": {"$lte": 12000000.0}}),
                true,
            ),
            (json!({"artifact.metadata.params": {"$gt": 1e8}}), false),
            (
                json!({"artifact.metadata.lr": {"$lt": 0.01, "$gt": 0}}),
                true,
            ),
            (json!({"artifact.metadata.lr": {"$gt": -1}}), true),
            (json!({"artifact.version": {"$gt": "v3"}}), true),
            (json!({"artifact.version": {"$gt": "v4"}}), false),
            (json!({"artifact.version": {"$gte": "v4"}}), true),
            (json!({"artifact.version": {"$lt": "v5"}}), true),
            (json!({"artifact.version": {"$lte": "v39"}}), false),
            (json!({"run.name": {"$gt": "a", "$lt": "t"}}), true),
            (json!({"run.name": {"$gt": "Z"}}), true),
        ]);
    }

    #[test]
    fn ordering_across_types_never_matches() {
        check(&[
            (json!({"artifact.metadata.params": {"$gt": "1"}}), false),
            (json!({"artifact.metadata.params": {"$lt": "zzz"}}), false),
            (json!({"artifact.version": {"$gt": 0}}), false),
            (json!({"artifact.version": {"$lt": 1e300}}), false),
            (json!({"artifact.metadata.scores": {"$gt": 0}}), false),
            (json!({"artifact.metadata": {"$gt": 0}}), false),
            (json!({"missing": {"$gt": 0}}), false),
            (json!({"missing": {"$lte": "z"}}), false),
            (json!({"tag": {"$gte": ""}}), false),
        ]);
    }

    #[test]
    fn in_and_nin() {
        check(&[
            (json!({"run.user": {"$in": ["alice", "bob"]}}), true),
            (json!({"run.user": {"$in": ["carol", "bob"]}}), false),
            (json!({"run.user": {"$in": []}}), false),
            (json!({"run.user": {"$nin": ["carol", "bob"]}}), true),
            (json!({"run.user": {"$nin": ["alice"]}}), false),
            (json!({"run.user": {"$nin": []}}), true),
            (
                json!({"artifact.metadata.params": {"$in": [1, 12000000.0]}}),
                true,
            ),
            (json!({"artifact.metadata.tags": {"$in": ["z", "b"]}}), true),
            (
                json!({"artifact.metadata.tags": {"$nin": ["z", "b"]}}),
                false,
            ),
            (
                json!({"artifact.metadata.tags": {"$in": [["a", "b"]]}}),
                true,
            ),
            (json!({"missing": {"$in": ["x"]}}), false),
            (json!({"missing": {"$in": ["x", null]}}), true),
            (json!({"missing": {"$nin": ["x"]}}), true),
            (json!({"tag": {"$nin": [null]}}), false),
        ]);
    }

    #[test]
    fn exists() {
        check(&[
            (json!({"alias": {"$exists": true}}), true),
            (json!({"alias": {"$exists": false}}), false),
            (json!({"tag": {"$exists": true}}), false),
            (json!({"tag": {"$exists": false}}), true),
            (json!({"missing": {"$exists": false}}), true),
            (json!({"missing": {"$exists": true}}), false),
            (json!({"artifact.metadata": {"$exists": true}}), true),
            (
                json!({"artifact.metadata.missing.deeper": {"$exists": false}}),
                true,
            ),
            (json!({"alias.deeper": {"$exists": true}}), false),
        ]);
    }

    #[test]
    fn regex() {
        check(&[
            (json!({"alias": {"$regex": "^prod"}}), true),
            (json!({"alias": {"$regex": "^dev"}}), false),
            (json!({"alias": {"$regex": "duct"}}), true),
            (json!({"alias": {"$regex": "^PROD"}}), false),
            (json!({"alias": {"$regex": "(?i)^PROD"}}), true),
            (json!({"run.name": {"$regex": "^sunny-\\d+$"}}), true),
            (json!({"artifact.metadata.tags": {"$regex": "^b$"}}), true),
            (json!({"artifact.metadata.tags": {"$regex": "^c$"}}), false),
            (json!({"artifact.metadata.params": {"$regex": "12"}}), false),
            (json!({"artifact.metadata.scores": {"$regex": "1"}}), false),
            (json!({"missing": {"$regex": ".*"}}), false),
            (json!({"tag": {"$regex": ""}}), false),
        ]);
    }

    #[test]
    fn contains() {
        check(&[
            (json!({"run.name": {"$contains": "sunny"}}), true),
            (json!({"run.name": {"$contains": "sweep"}}), false),
            (json!({"run.name": {"$contains": ""}}), true),
            (json!({"artifact.metadata.tags": {"$contains": "a"}}), true),
            (json!({"artifact.metadata.tags": {"$contains": "c"}}), false),
            (
                json!({"artifact.metadata.scores": {"$contains": 2.5}}),
                true,
            ),
            (
                json!({"artifact.metadata.scores": {"$contains": 1.0}}),
                true,
            ),
            (
                json!({"artifact.metadata.scores": {"$contains": "1"}}),
                false,
            ),
            (
                json!({"artifact.metadata.nested": {"$contains": {"k": 2}}}),
                true,
            ),
            (
                json!({"artifact.metadata.params": {"$contains": 12}}),
                false,
            ),
            (
                json!({"artifact.metadata.params": {"$contains": "12"}}),
                false,
            ),
            (json!({"run.name": {"$contains": 1}}), false),
            (json!({"missing": {"$contains": "x"}}), false),
            (json!({"tag": {"$contains": ""}}), false),
        ]);
    }

    #[test]
    fn contains_treats_regex_syntax_literally() {
        check(&[
            (
                json!({"artifact.metadata.special": {"$contains": "$5.00 (approx)"}}),
                true,
            ),
            (
                json!({"artifact.metadata.special": {"$contains": "[a-z]*"}}),
                true,
            ),
            (
                json!({"artifact.metadata.special": {"$contains": ".*"}}),
                false,
            ),
            (
                json!({"artifact.metadata.special": {"$contains": "$5.0."}}),
                false,
            ),
            (json!({"run.name": {"$contains": "sun.y"}}), false),
            (json!({"run.name": {"$contains": "^sunny"}}), false),
        ]);
    }

    #[test]
    fn unicode_values_and_patterns() {
        check(&[
            (
                json!({"artifact.metadata.blurb": {"$contains": "日本語"}}),
                true,
            ),
            (
                json!({"artifact.metadata.blurb": {"$contains": "ünï"}}),
                true,
            ),
            (
                json!({"artifact.metadata.blurb": {"$contains": "uni"}}),
                false,
            ),
            (
                json!({"artifact.metadata.blurb": {"$regex": "^ünïcödé"}}),
                true,
            ),
            (
                json!({"artifact.metadata.blurb": {"$regex": "(?i)^ÜNÏCÖDÉ"}}),
                true,
            ),
            (
                json!({"artifact.metadata.blurb": {"$regex": "^ÜNÏCÖDÉ"}}),
                false,
            ),
            (
                json!({"artifact.metadata.blurb": {"$regex": "\\p{Han}{3}"}}),
                true,
            ),
            (
                json!({"artifact.metadata.blurb": {"$regex": "^.{7} "}}),
                true,
            ),
            (json!({"artifact.metadata.blurb": {"$gt": "ü"}}), true),
            (
                json!({"artifact.metadata.blurb": "ünïcödé 日本語 text"}),
                true,
            ),
        ]);
        let f = compile(json!({"名前.ключ": "値"}));
        assert!(f.matches(&json!({"名前": {"ключ": "値"}})));
        assert!(!f.matches(&json!({"名前": {"ключ": "值"}})));
    }

    #[test]
    fn missing_and_null_fields() {
        for field in [
            "missing",
            "tag",
            "project",
            "artifact.tag",
            "artifact.nothing.here",
            "alias.sub",
        ] {
            let cases = [
                (json!({field: null}), true),
                (json!({field: {"$eq": null}}), true),
                (json!({field: {"$exists": false}}), true),
                (json!({field: {"$ne": "x"}}), true),
                (json!({field: {"$nin": ["x", 1]}}), true),
                (json!({field: "x"}), false),
                (json!({field: {"$exists": true}}), false),
                (json!({field: {"$ne": null}}), false),
                (json!({field: {"$in": ["x"]}}), false),
                (json!({field: {"$gt": 0}}), false),
                (json!({field: {"$lte": "zzz"}}), false),
                (json!({field: {"$regex": ""}}), false),
                (json!({field: {"$contains": ""}}), false),
            ];
            check(&cases);
        }
    }

    #[test]
    fn array_index_paths() {
        check(&[
            (json!({"artifact.metadata.tags.0": "a"}), true),
            (json!({"artifact.metadata.tags.1": "a"}), false),
            (
                json!({"artifact.metadata.tags.2": {"$exists": false}}),
                true,
            ),
            (json!({"artifact.metadata.nested.1.k": 2}), true),
            (
                json!({"artifact.metadata.nested.k": {"$exists": false}}),
                true,
            ),
            (
                json!({"artifact.metadata.tags.x": {"$exists": false}}),
                true,
            ),
        ]);
    }

    #[test]
    fn non_object_documents() {
        let f = compile(json!({"a": {"$exists": false}}));
        for doc in [json!(null), json!(1), json!("a"), json!([1, 2])] {
            assert!(f.matches(&doc), "{doc}");
            assert!(!compile(json!({"a": 1})).matches(&doc), "{doc}");
        }
    }

    #[test]
    fn logical_operators() {
        check(&[
            (
                json!({"$and": [{"alias": "production"}, {"run.state": "FAILED"}]}),
                true,
            ),
            (
                json!({"$and": [{"alias": "production"}, {"run.state": "FINISHED"}]}),
                false,
            ),
            (
                json!({"$or": [{"run.name": {"$contains": "sweep"}}, {"run.user": {"$in": ["alice", "bob"]}}]}),
                true,
            ),
            (
                json!({"$or": [{"run.name": {"$contains": "sweep"}}, {"run.user": "bob"}]}),
                false,
            ),
            (json!({"$or": [{"alias": "production"}]}), true),
            (
                json!({"$nor": [{"alias": "staging"}, {"run.user": "bob"}]}),
                true,
            ),
            (
                json!({"$nor": [{"alias": "staging"}, {"run.user": "alice"}]}),
                false,
            ),
            (json!({"$and": [{}]}), true),
            (json!({"$or": [{}]}), true),
            (json!({"$nor": [{}]}), false),
            (json!({"$or": [{"alias": "x"}], "registry": "model"}), false),
            (
                json!({"$or": [{"alias": "production"}], "registry": "model"}),
                true,
            ),
        ]);
    }

    #[test]
    fn nested_logical_operators() {
        check(&[
            (
                json!({"$and": [
                    {"$or": [{"alias": "staging"}, {"artifact.metadata.framework": "torch"}]},
                    {"$nor": [{"run.state": "RUNNING"}, {"$and": [{"tag": null}, {"author": "bob"}]}]}
                ]}),
                true,
            ),
            (
                json!({"$and": [
                    {"$or": [{"alias": "staging"}, {"artifact.metadata.framework": "torch"}]},
                    {"$nor": [{"run.state": "RUNNING"}, {"$and": [{"tag": null}, {"author": "alice"}]}]}
                ]}),
                false,
            ),
            (
                json!({"$not": {"$or": [{"alias": "staging"}, {"alias": "dev"}]}}),
                true,
            ),
            (json!({"$not": {"$not": {"alias": "production"}}}), true),
            (
                json!({"$or": [{"$not": {"alias": "production"}}, {"$nor": [{"registry": "model"}]}]}),
                false,
            ),
        ]);
    }

    #[test]
    fn top_level_not() {
        check(&[
            (json!({"$not": {"alias": "staging"}}), true),
            (json!({"$not": {"alias": "production"}}), false),
            (
                json!({"$not": {"alias": "production", "author": "bob"}}),
                true,
            ),
            (json!({"$not": {}}), false),
            (json!({"$not": {"missing": {"$exists": true}}}), true),
        ]);
    }

    #[test]
    fn field_level_not() {
        check(&[
            (json!({"alias": {"$not": {"$regex": "^dev"}}}), true),
            (json!({"alias": {"$not": {"$regex": "^prod"}}}), false),
            (json!({"alias": {"$not": "^dev"}}), true),
            (json!({"alias": {"$not": "^prod"}}), false),
            (json!({"alias": {"$not": "(?i)^PROD"}}), false),
            (json!({"missing": {"$not": {"$regex": "^dev"}}}), true),
            (
                json!({"artifact.metadata.params": {"$not": {"$gt": 1, "$lt": 2}}}),
                true,
            ),
            (
                json!({"artifact.metadata.params": {"$not": {"$gt": 1, "$lt": 2e7}}}),
                false,
            ),
            (json!({"run.user": {"$not": {"$in": ["alice"]}}}), false),
            (
                json!({"run.user": {"$not": {"$not": {"$eq": "alice"}}}}),
                true,
            ),
            (
                json!({"run.user": {"$not": {"$eq": "bob"}, "$regex": "^a"}}),
                true,
            ),
        ]);
    }

    #[test]
    fn literal_objects_are_eq() {
        let f = compile(json!({"meta": {"a": 1, "b": [true]}}));
        assert!(f.matches(&json!({"meta": {"b": [true], "a": 1.0}})));
        assert!(!f.matches(&json!({"meta": {"a": 1}})));
        assert!(compile(json!({"meta": {}})).matches(&json!({"meta": {}})));
        assert!(!compile(json!({"meta": {}})).matches(&json!({"meta": {"a": 1}})));
        assert!(compile(json!({"meta": {"$eq": {"$x": 1}}})).matches(&json!({"meta": {"$x": 1}})));
        assert!(compile(json!({"a": {"b$": 1}})).matches(&json!({"a": {"b$": 1}})));
    }

    #[test]
    fn mismatch_names_the_first_failing_field_or_the_logical_operator() {
        let f = compile(json!({"alias": {"$regex": "^prod"}, "artifact.collection": "resnet"}));
        let doc = json!({"alias": "production", "artifact": {"collection": "bert"}});
        assert_eq!(f.mismatch(&doc).as_deref(), Some("artifact.collection"));
        assert_eq!(
            f.mismatch(&json!({"alias": "dev"})).as_deref(),
            Some("alias")
        );
        let matching = json!({"alias": "prod", "artifact": {"collection": "resnet"}});
        assert_eq!(f.mismatch(&matching), None);
        let f = compile(json!({"$or": [{"tag": "a"}, {"tag": "b"}]}));
        assert_eq!(f.mismatch(&json!({"tag": "c"})).as_deref(), Some("$or"));
        let f = compile(json!({"$and": [{"tag": "a"}, {"run.user": "x"}]}));
        assert_eq!(
            f.mismatch(&json!({"tag": "a"})).as_deref(),
            Some("run.user")
        );
    }

    #[test]
    fn fields_lists_each_path_once_in_order() {
        let f = compile(json!({
            "$or": [{"run.user": "a"}, {"run.name": {"$not": "^x"}}],
            "alias": {"$regex": "^prod"},
            "$not": {"run.user": "b", "artifact.metadata.params": {"$gt": 1}}
        }));
        let mut fields = f.fields();
        let expected = ["run.user", "run.name", "alias", "artifact.metadata.params"];
        assert_eq!(fields.len(), expected.len(), "{fields:?}");
        fields.sort();
        let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
        expected.sort();
        assert_eq!(fields, expected);
        assert_eq!(
            compile(json!({"$and": [{"b": 1}, {"a": 1}, {"b": 2}]})).fields(),
            ["b", "a"]
        );
    }

    #[test]
    fn filter_is_reusable_and_cloneable() {
        let f = compile(json!({"run.user": {"$in": ["alice", "bob"]}}));
        let g = f.clone();
        assert!(f.matches(&event()));
        assert!(g.matches(&json!({"run": {"user": "bob"}})));
        assert!(!g.matches(&json!({"run": {"user": "carol"}})));
    }

    #[test]
    fn root_must_be_object() {
        for spec in [json!(null), json!(true), json!(1), json!("x"), json!([{}])] {
            let e = compile_err(spec.clone());
            assert_eq!(e.path, "", "{spec}");
            assert!(
                e.message.starts_with("filter must be a JSON object, got "),
                "{e}"
            );
        }
        assert_eq!(
            compile_err(json!([])).message,
            "filter must be a JSON object, got an array"
        );
        assert_eq!(
            compile_err(json!("x")).to_string(),
            ": filter must be a JSON object, got a string"
        );
    }

    #[test]
    fn unknown_operator_suggestions() {
        let cases = [
            (
                json!({"alias": {"$regx": "^p"}}),
                "alias.$regx",
                "unknown operator $regx; did you mean $regex?",
            ),
            (
                json!({"alias": {"$REGEX": "^p"}}),
                "alias.$REGEX",
                "unknown operator $REGEX; did you mean $regex?",
            ),
            (
                json!({"a": {"$gtee": 1}}),
                "a.$gtee",
                "unknown operator $gtee; did you mean $gte?",
            ),
            (
                json!({"a": {"$exist": true}}),
                "a.$exist",
                "unknown operator $exist; did you mean $exists?",
            ),
            (
                json!({"a": {"$contain": "x"}}),
                "a.$contain",
                "unknown operator $contain; did you mean $contains?",
            ),
            (
                json!({"a": {"$nin2": []}}),
                "a.$nin2",
                "unknown operator $nin2; did you mean $nin?",
            ),
            (
                json!({"$andd": []}),
                "$andd",
                "unknown operator $andd; did you mean $and?",
            ),
            (
                json!({"$OR": []}),
                "$OR",
                "unknown operator $OR; did you mean $or?",
            ),
            (
                json!({"$or": [{}, {"x": {"$inn": [1]}}]}),
                "$or[1].x.$inn",
                "unknown operator $inn; did you mean $in?",
            ),
        ];
        for (spec, path, message) in cases {
            let e = compile_err(spec);
            assert_eq!((e.path.as_str(), e.message.as_str()), (path, message));
        }
    }

    #[test]
    fn unknown_operator_without_close_match() {
        let e = compile_err(json!({"a": {"$options": "i"}}));
        assert_eq!(e.path, "a.$options");
        assert!(
            e.message
                .starts_with("unknown operator $options; expected one of $eq, "),
            "{e}"
        );
        let e = compile_err(json!({"$where": "1"}));
        assert_eq!(e.path, "$where");
        assert_eq!(
            e.message,
            "unknown operator $where; expected one of $and, $or, $nor, $not"
        );
    }

    #[test]
    fn misplaced_operators() {
        let e = compile_err(json!({"$regex": "^a"}));
        assert_eq!(e.path, "$regex");
        assert!(e.message.contains("field operator"), "{e}");
        let e = compile_err(json!({"alias": {"$or": [{"a": 1}]}}));
        assert_eq!(e.path, "alias.$or");
        assert!(e.message.contains("logical operator"), "{e}");
    }

    #[test]
    fn operand_type_errors() {
        let cases = [
            (
                json!({"$or": [{}, {"run.name": {"$in": "alice"}}]}),
                "$or[1].run.name.$in",
                "$in expects an array of values, got a string",
            ),
            (
                json!({"a": {"$nin": {"x": 1}}}),
                "a.$nin",
                "$nin expects an array of values, got an object",
            ),
            (
                json!({"a": {"$exists": 1}}),
                "a.$exists",
                "$exists expects a boolean, got a number",
            ),
            (
                json!({"a": {"$exists": "true"}}),
                "a.$exists",
                "$exists expects a boolean, got a string",
            ),
            (
                json!({"a": {"$gt": true}}),
                "a.$gt",
                "$gt expects a number or a string, got a boolean",
            ),
            (
                json!({"a": {"$lte": null}}),
                "a.$lte",
                "$lte expects a number or a string, got null",
            ),
            (
                json!({"a": {"$lt": [1]}}),
                "a.$lt",
                "$lt expects a number or a string, got an array",
            ),
            (
                json!({"a": {"$regex": 5}}),
                "a.$regex",
                "$regex expects a pattern string, got a number",
            ),
            (
                json!({"a": {"$not": 5}}),
                "a.$not",
                "$not expects an operator object or a regex string, got a number",
            ),
            (
                json!({"a": {"$not": {}}}),
                "a.$not",
                "$not expects an operator object or a regex string, got an empty object",
            ),
            (
                json!({"a": {"$not": {"b": 1}}}),
                "a.$not",
                "$not expects an operator object or a regex string, got an object",
            ),
            (
                json!({"$and": []}),
                "$and",
                "$and expects a non-empty array of filter documents, got an empty array",
            ),
            (
                json!({"$or": {"a": 1}}),
                "$or",
                "$or expects a non-empty array of filter documents, got an object",
            ),
            (
                json!({"$nor": "x"}),
                "$nor",
                "$nor expects a non-empty array of filter documents, got a string",
            ),
            (
                json!({"$and": [{}, 3]}),
                "$and[1]",
                "expected a filter document (a JSON object), got a number",
            ),
            (
                json!({"$not": [{"a": 1}]}),
                "$not",
                "expected a filter document (a JSON object), got an array",
            ),
        ];
        for (spec, path, message) in cases {
            let e = compile_err(spec);
            assert_eq!((e.path.as_str(), e.message.as_str()), (path, message));
        }
    }

    #[test]
    fn mixed_operator_and_literal_keys() {
        let e = compile_err(json!({"alias": {"$regex": "^p", "name": "x"}}));
        assert_eq!(e.path, "alias");
        assert_eq!(
            e.message,
            "cannot mix operators and literal keys in one object (found $regex and name)"
        );
        let e = compile_err(json!({"alias": {"$not": {"$regex": "^p", "x": 1}}}));
        assert_eq!(e.path, "alias.$not");
        assert!(e.message.starts_with("cannot mix operators"), "{e}");
    }

    #[test]
    fn empty_path_segments_are_rejected() {
        for key in ["", "a..b", ".a", "a."] {
            let e = compile_err(json!({key: 1}));
            assert_eq!(e.path, key);
            assert_eq!(e.message, "field path has an empty segment");
        }
    }

    #[test]
    fn invalid_regex() {
        let e = compile_err(json!({"alias": {"$regex": "(unclosed"}}));
        assert_eq!(e.path, "alias.$regex");
        assert!(e.message.starts_with("invalid regex: "), "{e}");
        assert!(e.message.contains("unclosed group"), "{e}");
        let e = compile_err(json!({"$or": [{"a": {"$not": "[z-a]"}}]}));
        assert_eq!(e.path, "$or[0].a.$not");
        assert!(e.message.starts_with("invalid regex: "), "{e}");
        let e = compile_err(json!({"a": {"$regex": "(?<name"}}));
        assert!(e.message.starts_with("invalid regex: "), "{e}");
    }

    #[test]
    fn regex_length_limit() {
        let ok = "a".repeat(MAX_REGEX_CHARS);
        assert!(compile(json!({"a": {"$regex": ok}})).matches(&json!({"a": "a".repeat(1200)})));
        let unicode_ok = "é".repeat(MAX_REGEX_CHARS);
        assert!(Filter::compile(&json!({"a": {"$regex": unicode_ok}})).is_ok());
        let e = compile_err(json!({"a": {"$regex": "a".repeat(MAX_REGEX_CHARS + 1)}}));
        assert_eq!(e.path, "a.$regex");
        assert_eq!(e.message, "regex is too long (1001 characters, max 1000)");
        let e = compile_err(json!({"a": {"$not": "b".repeat(5000)}}));
        assert_eq!(e.path, "a.$not");
        assert!(e.message.starts_with("regex is too long"), "{e}");
    }

    #[test]
    fn huge_regex_repetition_is_rejected_quickly() {
        let start = Instant::now();
        for pattern in ["(a{1000}){1000}", "\\w{1000}{1000}", "((a{100}){100}){100}"] {
            let e = compile_err(json!({"a": {"$regex": pattern}}));
            assert_eq!(e.path, "a.$regex");
            assert!(
                e.message.starts_with("regex is too large once compiled"),
                "{pattern}: {e}"
            );
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn pathological_regex_matches_in_linear_time() {
        let f = compile(json!({"a": {"$regex": "^(a+)+$"}}));
        let mut text = "a".repeat(100_000);
        text.push('b');
        let start = Instant::now();
        assert!(!f.matches(&json!({"a": text})));
        assert!(f.matches(&json!({"a": "aaaa"})));
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn nesting_depth_limit() {
        let leaf = json!({"alias": "production"});
        assert!(compile(nested_and(MAX_DEPTH - 1, leaf.clone())).matches(&event()));
        let e = compile_err(nested_and(MAX_DEPTH, leaf));
        assert_eq!(e.message, "filter is nested too deeply (max depth 16)");
        assert!(e.path.starts_with("$and[0].$and[0]."), "{}", e.path);

        let ops = json!({"alias": {"$regex": "^p"}});
        assert!(Filter::compile(&nested_and(MAX_DEPTH - 2, ops.clone())).is_ok());
        let e = compile_err(nested_and(MAX_DEPTH - 1, ops));
        assert!(e.path.ends_with("$and[0].alias"), "{}", e.path);

        let mut not = json!({"$regex": "^p"});
        for _ in 0..MAX_DEPTH {
            not = json!({"$not": not});
        }
        let e = compile_err(json!({"alias": not}));
        assert!(e.message.starts_with("filter is nested too deeply"), "{e}");

        let mut top_not = json!({"a": 1});
        for _ in 0..MAX_DEPTH {
            top_not = json!({"$not": top_not});
        }
        assert!(
            compile_err(top_not)
                .message
                .starts_with("filter is nested too deeply")
        );
    }

    #[test]
    fn node_count_limit() {
        let fields = |n: usize| -> Value {
            Value::Object((0..n).map(|i| (format!("f{i}"), json!(i))).collect())
        };
        let f = compile(fields(MAX_NODES));
        let doc = fields(MAX_NODES);
        assert!(f.matches(&doc));
        assert_eq!(f.fields().len(), MAX_NODES);
        let e = compile_err(fields(MAX_NODES + 1));
        assert_eq!(e.message, "filter has too many operators (max 256)");

        let ors: Vec<Value> = (0..200)
            .map(|i| json!({"a": {"$gt": i, "$lt": 1000}}))
            .collect();
        let e = compile_err(json!({"$or": ors}));
        assert!(e.path.starts_with("$or["), "{}", e.path);
        assert!(
            e.message.starts_with("filter has too many operators"),
            "{e}"
        );
    }

    #[test]
    fn large_in_lists_are_values_not_operators() {
        let values: Vec<Value> = (0..10_000).map(|i| json!(format!("user{i}"))).collect();
        let f = compile(json!({"run.user": {"$in": values}}));
        assert!(f.matches(&json!({"run": {"user": "user9999"}})));
        assert!(!f.matches(&event()));
    }

    #[test]
    fn edit_distance_basics() {
        let cases = [
            ("", "", 0),
            ("abc", "", 3),
            ("", "abc", 3),
            ("$regx", "$regex", 1),
            ("kitten", "sitting", 3),
            ("$in", "$nin", 1),
            ("flaw", "lawn", 2),
            ("日本", "日本語", 1),
        ];
        for (a, b, d) in cases {
            assert_eq!(edit_distance(a, b), d, "{a} -> {b}");
            assert_eq!(edit_distance(b, a), d, "{b} -> {a}");
        }
    }
}
