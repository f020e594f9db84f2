//! MLflow's model registry webhooks (MLflow 3.3 and later): how a delivery is signed, and
//! which of its events become which events here.
//!
//! A delivery carries `X-MLflow-Delivery-Id`, `X-MLflow-Timestamp` (unix seconds) and
//! `X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "{delivery_id}.{timestamp}.{body}")>`,
//! the secret being the one the webhook was created with, as UTF-8 bytes. Its body is
//! `{"entity", "action", "timestamp", "data"}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::Invalid;
use crate::domain::event::{Artifact, EventInput};

pub const DELIVERY_ID_HEADER: &str = "x-mlflow-delivery-id";
pub const TIMESTAMP_HEADER: &str = "x-mlflow-timestamp";
pub const SIGNATURE_HEADER: &str = "x-mlflow-signature";

/// How far a delivery's timestamp may be from now, either way.
pub const TOLERANCE_SECONDS: i64 = 300;

/// Why a delivery is not taken as authentic. Each is a 401; none says anything about the
/// secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsigned {
    #[error("the {0} header is missing")]
    MissingHeader(&'static str),
    #[error("X-MLflow-Timestamp must be unix seconds")]
    BadTimestamp,
    #[error(
        "X-MLflow-Timestamp is more than {TOLERANCE_SECONDS} s from now: a stale or replayed delivery, or a clock that is off"
    )]
    Stale,
    #[error(
        "X-MLflow-Signature does not verify with the source's signing secret: the MLflow webhook's secret must be the value of that team secret"
    )]
    Mismatch,
}

impl Unsigned {
    /// The header at fault, as MLflow spells it.
    pub fn header(&self) -> &'static str {
        match self {
            Unsigned::MissingHeader(name) => name,
            Unsigned::BadTimestamp | Unsigned::Stale => "X-MLflow-Timestamp",
            Unsigned::Mismatch => "X-MLflow-Signature",
        }
    }
}

/// The headers of one delivery, as received (`None` where absent or not text).
#[derive(Debug, Clone, Default)]
pub struct Signed<'a> {
    pub delivery_id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// The signature MLflow computes for a delivery: `v1,` + base64 of the HMAC-SHA256.
pub fn signature(secret: &str, delivery_id: &str, timestamp: &str, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(mac(secret, delivery_id, timestamp, body))
    )
}

fn mac(secret: &str, delivery_id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    };
    for part in [
        delivery_id.as_bytes(),
        b".",
        timestamp.as_bytes(),
        b".",
        body,
    ] {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Checks a delivery received at `now` (unix seconds): the timestamp within
/// [`TOLERANCE_SECONDS`], and one of the header's signatures (space-separated `v1,…`)
/// equal, in constant time, to the one `secret` makes. Returns the delivery id.
pub fn verify<'a>(
    secret: &str,
    headers: &Signed<'a>,
    body: &[u8],
    now: i64,
) -> Result<&'a str, Unsigned> {
    let delivery_id = headers
        .delivery_id
        .ok_or(Unsigned::MissingHeader("X-MLflow-Delivery-Id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(Unsigned::MissingHeader("X-MLflow-Timestamp"))?;
    let signatures = headers
        .signature
        .ok_or(Unsigned::MissingHeader("X-MLflow-Signature"))?;
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Unsigned::BadTimestamp)?;
    if now.abs_diff(sent) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(Unsigned::Stale);
    }
    let expected = mac(secret, delivery_id, timestamp, body);
    let mut matched = subtle::Choice::from(0);
    for candidate in signatures.split_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue;
        };
        if let Ok(decoded) = STANDARD.decode(encoded) {
            matched |= decoded.as_slice().ct_eq(&expected);
        }
    }
    if bool::from(matched) {
        Ok(delivery_id)
    } else {
        Err(Unsigned::Mismatch)
    }
}

/// What a delivery's body says.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// An event of ours, to validate and ingest like any other.
    Event(Box<EventInput>),
    /// An MLflow event with no counterpart here (`entity.action`).
    Ignored(String),
}

/// Maps a delivery's body into an event of `registry` with the delivery id as its id:
/// `model_version.created` → `LINK_ARTIFACT`, `model_version_alias.created` →
/// `ADD_ARTIFACT_ALIAS`, `model_version_tag.set` → `ADD_ARTIFACT_TAG`,
/// `model_version_tag.deleted` → `REMOVE_ARTIFACT_TAG`. The collection is the model's
/// name as MLflow spells it; the version `v{version}`; the URI `models:/{name}/{version}`
/// (control characters of the name percent-encoded);
/// what else MLflow sends of the version (`source`, `run_id`, `description`, `tags`, a tag's
/// `value` as `tag_value`) goes in the metadata.
pub fn map(body: &Value, registry: &str, delivery_id: &str) -> Result<Delivery, Invalid> {
    let text = |value: &Value, field: &str| -> Result<String, Invalid> {
        match value.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err(Invalid::new(field, "must be a string")),
            None => Err(Invalid::new(field, "missing")),
        }
    };
    let Value::Object(_) = body else {
        return Err(Invalid::new(
            "",
            "an MLflow delivery is a JSON object with entity, action and data",
        ));
    };
    let word = |field: &str| match body.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Invalid::new(field, "must be a string")),
        None => Err(Invalid::new(field, "missing")),
    };
    let entity = word("entity")?;
    let action = word("action")?;
    let event_type = match (entity.as_str(), action.as_str()) {
        ("model_version", "created") => "LINK_ARTIFACT",
        ("model_version_alias", "created") => "ADD_ARTIFACT_ALIAS",
        ("model_version_tag", "set") => "ADD_ARTIFACT_TAG",
        ("model_version_tag", "deleted") => "REMOVE_ARTIFACT_TAG",
        _ => return Ok(Delivery::Ignored(format!("{entity}.{action}"))),
    };
    let data = match body.get("data") {
        Some(data @ Value::Object(_)) => data,
        _ => return Err(Invalid::new("data", "must be an object")),
    };
    let within = |e: Invalid| e.within("data");
    let name = text(data, "name").map_err(within)?;
    // MLflow echoes a version as its client sent it (`"01"`, `" 1"`) but stores the number.
    let version: u64 = text(data, "version")
        .map_err(within)?
        .trim()
        .parse()
        .map_err(|_| Invalid::new("data.version", "must be a model version number"))?;
    let mut metadata = Map::new();
    for field in ["source", "run_id", "description", "tags"] {
        if let Some(value) = data.get(field).filter(|v| !v.is_null()) {
            metadata.insert(field.to_string(), value.clone());
        }
    }
    let (alias, tag) = match event_type {
        "ADD_ARTIFACT_ALIAS" => (Some(text(data, "alias").map_err(within)?), None),
        "ADD_ARTIFACT_TAG" | "REMOVE_ARTIFACT_TAG" => {
            if let Some(value) = data.get("value").filter(|v| !v.is_null()) {
                metadata.insert("tag_value".into(), value.clone());
            }
            (None, Some(text(data, "key").map_err(within)?))
        }
        _ => (None, None),
    };
    // When MLflow made the event; one in another form is left for the time of receipt.
    let timestamp = match body.get("timestamp") {
        Some(Value::String(ts)) if OffsetDateTime::parse(ts, &Rfc3339).is_ok() => Some(ts.clone()),
        _ => None,
    };
    Ok(Delivery::Event(Box::new(EventInput {
        id: Some(delivery_id.to_string()),
        event_type: event_type.to_string(),
        project: None,
        registry: Some(registry.to_string()),
        author: None,
        timestamp,
        artifact: Some(Artifact {
            uri: Some(format!("models:/{}/{version}", encode_controls(&name))),
            collection: name,
            version: format!("v{version}"),
            kind: Some("model".into()),
            alias,
            tag,
            metadata,
        }),
        run: None,
        metrics: None,
        step: None,
    })))
}

/// The name with each control character percent-encoded (a URI holds none raw).
fn encode_controls(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() {
            let mut bytes = [0; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A delivery a real MLflow 3.17 server sent (its webhook's secret was
    /// `my-webhook-secret-Ünïcødé`): the signature is MLflow's own, not computed here.
    const MLFLOW_ID: &str = "bfd20cbb-6e51-471a-b54b-24c2835d91ca";
    const MLFLOW_TS: &str = "1796215198";
    const MLFLOW_SECRET: &str = "my-webhook-secret-Ünïcødé";
    const MLFLOW_SIGNATURE: &str = "v1,adhrislQrwjxkN77YFXzXJmtoFfiD/3OnD1zShYx+Oc=";
    const MLFLOW_BODY: &str = r#"{"entity": "model_version", "action": "created", "timestamp": "2026-12-02T12:39:58.642076+00:00", "data": {"name": "My Model v2", "version": "1", "source": "s3://bucket/path", "run_id": null, "tags": {"k": "v"}, "description": "d"}}"#;

    fn signed<'a>(id: &'a str, ts: &'a str, signature: &'a str) -> Signed<'a> {
        Signed {
            delivery_id: Some(id),
            timestamp: Some(ts),
            signature: Some(signature),
        }
    }

    fn at(ts: &str) -> i64 {
        ts.parse().unwrap()
    }

    #[test]
    fn a_delivery_signed_by_mlflow_verifies() {
        let headers = signed(MLFLOW_ID, MLFLOW_TS, MLFLOW_SIGNATURE);
        let id = verify(
            MLFLOW_SECRET,
            &headers,
            MLFLOW_BODY.as_bytes(),
            at(MLFLOW_TS) + 5,
        );
        assert_eq!(id, Ok(MLFLOW_ID));
        assert_eq!(
            signature(MLFLOW_SECRET, MLFLOW_ID, MLFLOW_TS, MLFLOW_BODY.as_bytes()),
            MLFLOW_SIGNATURE
        );
    }

    #[test]
    fn the_signature_matches_openssl() {
        // printf '%s' 'msg_1.1796215198.{"a": 1}' | openssl dgst -sha256 -hmac 'whsec-plain' -binary | base64
        assert_eq!(
            signature("whsec-plain", "msg_1", "1796215198", br#"{"a": 1}"#),
            "v1,06KkwYDBhHlibP9iWCk020DDCQ+mKTdDXyIQbI0fDqA="
        );
    }

    #[test]
    fn a_changed_body_id_timestamp_or_secret_does_not_verify() {
        let now = at(MLFLOW_TS);
        let body = MLFLOW_BODY.as_bytes();
        let good = signed(MLFLOW_ID, MLFLOW_TS, MLFLOW_SIGNATURE);
        let tampered = MLFLOW_BODY.replace("My Model v2", "My Model v3");
        assert_eq!(
            verify(MLFLOW_SECRET, &good, tampered.as_bytes(), now),
            Err(Unsigned::Mismatch)
        );
        assert_eq!(
            verify("another-secret", &good, body, now),
            Err(Unsigned::Mismatch)
        );
        let other_id = signed(
            "c22d637a-faa9-4785-af18-e6b54c8bdfe3",
            MLFLOW_TS,
            MLFLOW_SIGNATURE,
        );
        assert_eq!(
            verify(MLFLOW_SECRET, &other_id, body, now),
            Err(Unsigned::Mismatch)
        );
        // A replay under a fresh timestamp needs a signature only the secret can make.
        let fresh = signed(MLFLOW_ID, "1796215298", MLFLOW_SIGNATURE);
        assert_eq!(
            verify(MLFLOW_SECRET, &fresh, body, now + 100),
            Err(Unsigned::Mismatch)
        );
        for bad in [
            "",
            "v1,",
            "v1,!!!",
            "v0,adhrislQrwjxkN77YFXzXJmtoFfiD/3OnD1zShYx+Oc=",
            "adhrislQrwjxkN77YFXzXJmtoFfiD/3OnD1zShYx+Oc=",
            "v1,adhrislQ",
        ] {
            assert_eq!(
                verify(MLFLOW_SECRET, &signed(MLFLOW_ID, MLFLOW_TS, bad), body, now),
                Err(Unsigned::Mismatch),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn one_good_signature_among_several_verifies() {
        let several = format!("v1,bm90IGl0 {MLFLOW_SIGNATURE} v2,whatever");
        let headers = signed(MLFLOW_ID, MLFLOW_TS, &several);
        assert!(
            verify(
                MLFLOW_SECRET,
                &headers,
                MLFLOW_BODY.as_bytes(),
                at(MLFLOW_TS)
            )
            .is_ok()
        );
    }

    #[test]
    fn a_timestamp_outside_five_minutes_is_stale_either_way() {
        let headers = signed(MLFLOW_ID, MLFLOW_TS, MLFLOW_SIGNATURE);
        let body = MLFLOW_BODY.as_bytes();
        let sent = at(MLFLOW_TS);
        for now in [sent + 300, sent - 300] {
            assert!(verify(MLFLOW_SECRET, &headers, body, now).is_ok(), "{now}");
        }
        for now in [sent + 301, sent - 301, sent + 86_400] {
            assert_eq!(
                verify(MLFLOW_SECRET, &headers, body, now),
                Err(Unsigned::Stale),
                "{now}"
            );
        }
        for ts in ["", "soon", "1796215198.5", "99999999999999999999999"] {
            assert_eq!(
                verify(
                    MLFLOW_SECRET,
                    &signed(MLFLOW_ID, ts, MLFLOW_SIGNATURE),
                    body,
                    sent
                ),
                Err(Unsigned::BadTimestamp),
                "{ts:?}"
            );
        }
    }

    #[test]
    fn missing_headers_are_named() {
        let body = MLFLOW_BODY.as_bytes();
        let now = at(MLFLOW_TS);
        let mut headers = signed(MLFLOW_ID, MLFLOW_TS, MLFLOW_SIGNATURE);
        headers.signature = None;
        assert_eq!(
            verify(MLFLOW_SECRET, &headers, body, now),
            Err(Unsigned::MissingHeader("X-MLflow-Signature"))
        );
        headers.timestamp = None;
        assert_eq!(
            verify(MLFLOW_SECRET, &headers, body, now),
            Err(Unsigned::MissingHeader("X-MLflow-Timestamp"))
        );
        headers.delivery_id = None;
        assert_eq!(
            verify(MLFLOW_SECRET, &headers, body, now),
            Err(Unsigned::MissingHeader("X-MLflow-Delivery-Id"))
        );
    }

    fn event(body: Value) -> EventInput {
        match map(&body, "mlflow", "d-1").unwrap() {
            Delivery::Event(input) => *input,
            Delivery::Ignored(what) => panic!("ignored {what}"),
        }
    }

    #[test]
    fn a_new_version_is_linked_with_what_mlflow_knows_of_it() {
        let input = event(serde_json::from_str(MLFLOW_BODY).unwrap());
        assert_eq!(input.id.as_deref(), Some("d-1"));
        assert_eq!(input.event_type, "LINK_ARTIFACT");
        assert_eq!(input.registry.as_deref(), Some("mlflow"));
        assert_eq!(
            input.timestamp.as_deref(),
            Some("2026-12-02T12:39:58.642076+00:00")
        );
        let a = input.artifact.unwrap();
        assert_eq!(a.collection, "My Model v2");
        assert_eq!(a.version, "v1");
        assert_eq!(a.uri.as_deref(), Some("models:/My Model v2/1"));
        assert_eq!(a.kind.as_deref(), Some("model"));
        assert_eq!(
            Value::Object(a.metadata),
            json!({"source": "s3://bucket/path", "tags": {"k": "v"}, "description": "d"}),
            "a null run_id is left out"
        );
    }

    #[test]
    fn aliases_and_tags_map_to_their_events() {
        let alias = event(json!({"entity": "model_version_alias", "action": "created",
            "timestamp": "2026-12-02T12:39:59.544891+00:00",
            "data": {"name": "My Model v2", "alias": "production", "version": "1"}}));
        assert_eq!(alias.event_type, "ADD_ARTIFACT_ALIAS");
        let a = alias.artifact.unwrap();
        assert_eq!(
            (a.alias.as_deref(), a.version.as_str()),
            (Some("production"), "v1")
        );

        let set = event(json!({"entity": "model_version_tag", "action": "set",
            "data": {"name": "m", "version": " 01", "key": "stage", "value": "blue"}}));
        assert_eq!(set.event_type, "ADD_ARTIFACT_TAG");
        assert_eq!(set.timestamp, None, "no timestamp: the time of receipt");
        let a = set.artifact.unwrap();
        assert_eq!(a.tag.as_deref(), Some("stage"));
        assert_eq!(a.version, "v1", "MLflow's \" 01\" is version 1");
        assert_eq!(a.metadata["tag_value"], "blue");

        let deleted = event(json!({"entity": "model_version_tag", "action": "deleted",
            "timestamp": "not a date", "data": {"name": "m", "version": "3", "key": "stage"}}));
        assert_eq!(deleted.event_type, "REMOVE_ARTIFACT_TAG");
        assert_eq!(
            deleted.timestamp, None,
            "a timestamp in another form is left out"
        );
        assert_eq!(deleted.artifact.unwrap().tag.as_deref(), Some("stage"));
    }

    #[test]
    fn other_mlflow_events_are_ignored_by_name() {
        for (entity, action) in [
            ("registered_model", "created"),
            ("model_version_alias", "deleted"),
            ("prompt", "created"),
            ("prompt_version_tag", "set"),
            ("budget_policy", "exceeded"),
        ] {
            let body = json!({"entity": entity, "action": action, "data": {"name": "x"}});
            match map(&body, "mlflow", "d-1").unwrap() {
                Delivery::Ignored(what) => assert_eq!(what, format!("{entity}.{action}")),
                Delivery::Event(e) => panic!("{entity}.{action} became {}", e.event_type),
            }
        }
    }

    #[test]
    fn malformed_deliveries_name_the_field() {
        let field = |body: Value| map(&body, "mlflow", "d-1").unwrap_err().field;
        assert_eq!(field(json!([1, 2])), "");
        assert_eq!(field(json!({"action": "created"})), "entity");
        assert_eq!(
            field(json!({"entity": "model_version", "action": 7})),
            "action"
        );
        assert_eq!(
            field(json!({"entity": "model_version", "action": "created"})),
            "data"
        );
        let version = |data: Value| {
            field(json!({"entity": "model_version", "action": "created", "data": data}))
        };
        assert_eq!(version(json!({"version": "1"})), "data.name");
        assert_eq!(version(json!({"name": "m"})), "data.version");
        assert_eq!(
            version(json!({"name": "m", "version": "1.0"})),
            "data.version"
        );
        assert_eq!(
            version(json!({"name": {"x": 1}, "version": "1"})),
            "data.name"
        );
        assert_eq!(
            field(json!({"entity": "model_version_alias", "action": "created",
                "data": {"name": "m", "version": "1"}})),
            "data.alias"
        );
        assert_eq!(
            field(json!({"entity": "model_version_tag", "action": "set",
                "data": {"name": "m", "version": "1", "value": "v"}})),
            "data.key"
        );
    }
}
