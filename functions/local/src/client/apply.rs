//! `automations apply` and `automations export`: a team's queues, integrations and
//! automations as YAML files. The server plans and validates the whole set (`POST
//! …/apply`); this side reads the files, says where each object came from, and prints the
//! plan.

use std::fs;
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde_json::{Map, Value};

use super::{Client, Failure, Outcome, short};

/// The lists a file may hold, in the order the server applies them.
const LISTS: [&str; 3] = ["queues", "integrations", "automations"];

/// Where an object of the document came from.
struct Origin {
    file: PathBuf,
    /// Its position in its list of that file.
    index: usize,
}

/// The files' objects as one document, and where each came from, per list.
struct Files {
    document: Map<String, Value>,
    origins: [Vec<Origin>; 3],
}

pub async fn apply(client: &Client, path: &Path, dry_run: bool, prune: bool) -> Outcome {
    let files = read_files(path)?;
    let query = format!("apply?dry_run={dry_run}&prune={prune}");
    let answer = client
        .call(
            Method::POST,
            &client.team_path(&query),
            Some(&Value::Object(files.document.clone())),
        )
        .await?;
    if answer.status == 400 && answer.body["problems"].is_array() {
        return Err(Failure::Refused(problems(&files, &answer.body["problems"])));
    }
    if !answer.ok() {
        return Err(Failure::Refused(answer.refusal()));
    }
    client.print(&answer.body, |plan| print_plan(plan, &files, dry_run));
    Ok(())
}

/// The YAML files at `path`: the file itself, or every `.yaml` and `.yml` file under the
/// directory, in name order.
fn read_files(path: &Path) -> Outcome<Files> {
    let paths = yaml_files(path)?;
    let mut files = Files {
        document: Map::new(),
        origins: Default::default(),
    };
    let mut lists: [Vec<Value>; 3] = Default::default();
    for file in paths {
        let text = fs::read_to_string(&file)
            .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
        let parsed: Value = serde_norway::from_str(&text)
            .map_err(|e| Failure::Usage(format!("{}: not valid YAML: {e}", file.display())))?;
        let map = match parsed {
            Value::Null => continue,
            Value::Object(map) => map,
            _ => {
                return Err(Failure::Usage(format!(
                    "{}: a file holds a mapping with the lists queues:, integrations: and automations:",
                    file.display()
                )));
            }
        };
        for (key, value) in map {
            let Some(slot) = LISTS.iter().position(|l| *l == key) else {
                return Err(Failure::Usage(format!(
                    "{}: unknown list {key:?}; a file holds queues:, integrations: and automations:",
                    file.display()
                )));
            };
            let items = match value {
                Value::Null => Vec::new(),
                Value::Array(items) => items,
                _ => {
                    return Err(Failure::Usage(format!(
                        "{}: {key} must be a list",
                        file.display()
                    )));
                }
            };
            for (index, item) in items.into_iter().enumerate() {
                files.origins[slot].push(Origin {
                    file: file.clone(),
                    index,
                });
                lists[slot].push(item);
            }
        }
    }
    for (name, items) in LISTS.iter().zip(lists) {
        files.document.insert(name.to_string(), Value::Array(items));
    }
    Ok(files)
}

fn yaml_files(path: &Path) -> Outcome<Vec<PathBuf>> {
    let meta =
        fs::metadata(path).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut found = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            fs::read_dir(&dir).map_err(|e| Failure::Usage(format!("{}: {e}", dir.display())))?;
        for entry in entries {
            let entry = entry.map_err(|e| Failure::Usage(format!("{}: {e}", dir.display())))?;
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                found.push(path);
            }
        }
    }
    found.sort();
    if found.is_empty() {
        return Err(Failure::Usage(format!(
            "{}: no .yaml or .yml file in this directory",
            path.display()
        )));
    }
    Ok(found)
}

/// Each problem the server found, as `file: kind "name" (list[index]): field: message`.
fn problems(files: &Files, problems: &Value) -> String {
    let mut lines = vec!["nothing was changed; the files have these problems:".to_string()];
    for problem in problems.as_array().into_iter().flatten() {
        let kind = problem["kind"].as_str().unwrap_or("object");
        let slot = LISTS
            .iter()
            .position(|l| l.trim_end_matches('s') == kind)
            .unwrap_or(0);
        let index = problem["index"].as_u64().unwrap_or(0) as usize;
        let origin = files.origins[slot].get(index);
        let place = origin.map_or_else(
            || format!("{}[{index}]", LISTS[slot]),
            |o| format!("{}: {}[{}]", o.file.display(), LISTS[slot], o.index),
        );
        let name = problem["name"]
            .as_str()
            .map_or_else(String::new, |n| format!(" {kind} {n:?}"));
        let field = problem["field"].as_str().unwrap_or_default();
        let field = if field.is_empty() {
            String::new()
        } else {
            format!(" {field}:")
        };
        let message = problem["message"].as_str().unwrap_or_default();
        lines.push(format!("  {place}{name}:{field} {message}"));
    }
    lines.join("\n")
}

fn print_plan(plan: &Value, files: &Files, dry_run: bool) {
    let changes = plan["changes"].as_array().cloned().unwrap_or_default();
    for change in &changes {
        let kind = change["kind"].as_str().unwrap_or_default();
        let name = change["name"].as_str().unwrap_or_default();
        let (sign, verb) = match change["op"].as_str() {
            Some("create") => ('+', "create"),
            Some("update") => ('~', "update"),
            _ => ('-', "delete"),
        };
        let from = change["index"].as_u64().and_then(|i| {
            let slot = LISTS.iter().position(|l| l.trim_end_matches('s') == kind)?;
            files.origins[slot].get(i as usize)
        });
        let from = from.map_or_else(String::new, |o| format!("  ({})", o.file.display()));
        println!("{sign} {verb} {kind} {name}{from}");
        for field in change["fields"].as_array().into_iter().flatten() {
            let shown = |v: &Value| {
                if v.is_null() {
                    "(not set)".to_string()
                } else {
                    short(v, 60)
                }
            };
            println!(
                "    {}: {} → {}",
                field["field"].as_str().unwrap_or_default(),
                shown(&field["from"]),
                shown(&field["to"])
            );
        }
    }
    let kept = plan["kept"].as_array().cloned().unwrap_or_default();
    if !kept.is_empty() {
        let names: Vec<String> = kept
            .iter()
            .map(|k| {
                format!(
                    "{} {}",
                    k["kind"].as_str().unwrap_or_default(),
                    k["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        println!(
            "  not in the files, kept (--prune deletes them): {}",
            names.join(", ")
        );
    }
    println!("{} unchanged", plan["unchanged"].as_u64().unwrap_or(0));
    let count = changes.len();
    let plural = if count == 1 { "" } else { "s" };
    if count == 0 {
        println!("No changes: the team matches the files.");
    } else if dry_run {
        println!("Dry run: {count} change{plural} planned, none made.");
    } else {
        println!("Applied {count} change{plural}.");
    }
}

/// `automations export`: the team as a file `apply` takes back with no changes.
pub async fn export(client: &Client, out: Option<&Path>) -> Outcome {
    let document = client
        .expect(Method::GET, &client.team_path("export"), None)
        .await?;
    let text = match client.output {
        super::Output::Json => serde_json::to_string_pretty(&document).unwrap_or_default() + "\n",
        super::Output::Table => {
            let yaml = serde_norway::to_string(&readable(&document))
                .map_err(|e| Failure::Refused(format!("cannot write the export as YAML: {e}")))?;
            format!(
                "# The queues, integrations and automations of team {}, as `automations export` wrote them.\n# Apply with: automations apply -f <this file>\n{yaml}",
                client.team
            )
        }
    };
    match out {
        Some(path) => {
            fs::write(path, text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Keys first in the order a reader looks for them, then the rest by name.
const FIRST_KEYS: [&str; 8] = [
    "name",
    "type",
    "description",
    "enabled",
    "scope",
    "event",
    "action",
    "url",
];

/// The document as YAML values, keys in [`FIRST_KEYS`] order.
fn readable(value: &Value) -> serde_norway::Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by_key(|k| {
                (
                    FIRST_KEYS
                        .iter()
                        .position(|f| f == k)
                        .unwrap_or(FIRST_KEYS.len()),
                    k.as_str(),
                )
            });
            let mut mapping = serde_norway::Mapping::new();
            for key in keys {
                mapping.insert(
                    serde_norway::Value::String(key.clone()),
                    readable(&map[key]),
                );
            }
            serde_norway::Value::Mapping(mapping)
        }
        Value::Array(items) => serde_norway::Value::Sequence(items.iter().map(readable).collect()),
        other => serde_norway::to_value(other).unwrap_or(serde_norway::Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Hostile files fail fast with a usage error naming the file: an alias bomb (a
    /// billion laughs), nesting far deeper than any object takes, a list that is not one.
    #[test]
    fn hostile_yaml_is_a_usage_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut bomb = String::from(
            "a: &a [\"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\", \"lol\"]\n",
        );
        for (name, previous) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            bomb.push_str(&format!("{name}: &{name} [*{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}, *{previous}]\n"));
        }
        let deep = format!("automations: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        for (name, text) in [
            ("bomb.yaml", bomb.as_str()),
            ("deep.yaml", deep.as_str()),
            ("scalar.yaml", "automations: 3\n"),
            ("list.yaml", "- name: x\n"),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            match read_files(&path) {
                Err(Failure::Usage(message)) => assert!(message.contains(name), "{message}"),
                Err(other) => panic!("{name}: {other}"),
                Ok(_) => panic!("{name} was read"),
            }
        }
    }

    #[test]
    fn an_export_puts_the_name_first_and_reads_back_as_the_same_json() {
        let document = json!({"automations": [{"scope": {"type": "team"}, "name": "a",
            "action": {"type": "no_op"}, "enabled": true, "event": {"type": "LINK_ARTIFACT"}}]});
        let yaml = serde_norway::to_string(&readable(&document)).unwrap();
        assert!(yaml.starts_with("automations:\n- name: a\n"), "{yaml}");
        let back: Value = serde_norway::from_str(&yaml).unwrap();
        assert_eq!(back, document);
    }
}
