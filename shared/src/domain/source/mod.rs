//! Sources: another system's webhooks, turned into events of a team. A source has a
//! receive path that takes no API key; each delivery is authenticated by its signature,
//! made with a team secret the source names. No I/O.

pub mod mlflow;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::template::is_secret_name;
use super::{Invalid, check_name};

/// A team's source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub team: String,
    pub name: String,
    /// The type and its settings (`type`, then `signing_secret`, `registry`).
    #[serde(flatten)]
    pub kind: SourceKind,
    pub created_at: String,
}

/// What sends to a source, by type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceKind {
    /// An MLflow tracking server's model registry webhooks (MLflow 3.3 and later).
    Mlflow {
        /// The team secret that the MLflow webhook was created with.
        signing_secret: String,
        /// The registry its events belong to.
        registry: String,
    },
}

impl SourceKind {
    /// The secret that authenticates deliveries.
    pub fn signing_secret(&self) -> &str {
        match self {
            SourceKind::Mlflow { signing_secret, .. } => signing_secret,
        }
    }
}

impl Source {
    /// Where the other system sends its webhooks.
    pub fn receive_path(&self) -> String {
        format!("/v1/teams/{}/sources/{}/receive", self.team, self.id)
    }

    /// The source as the API shows it: settings and secret names, never a value.
    pub fn public_view(&self) -> Value {
        let mut view = json!({
            "id": self.id,
            "name": self.name,
            "created_at": self.created_at,
            "receive_path": self.receive_path(),
        });
        match &self.kind {
            SourceKind::Mlflow {
                signing_secret,
                registry,
            } => {
                view["type"] = json!("mlflow");
                view["signing_secret"] = json!(signing_secret);
                view["registry"] = json!(registry);
            }
        }
        view
    }
}

/// `POST /v1/teams/{team}/sources`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInput {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub signing_secret: String,
    pub registry: String,
}

impl SourceInput {
    /// The source's name and settings, checked.
    pub fn validate(self) -> Result<(String, SourceKind), Invalid> {
        if self.kind != "mlflow" {
            return Err(Invalid::new(
                "type",
                format!("unknown source type {:?}; expected mlflow", self.kind),
            ));
        }
        check_name("name", &self.name)?;
        if !is_secret_name(&self.signing_secret) {
            return Err(Invalid::new(
                "signing_secret",
                "must name a team secret: 1 to 128 of A-Z, 0-9 and _",
            ));
        }
        check_name("registry", &self.registry)?;
        Ok((
            self.name,
            SourceKind::Mlflow {
                signing_secret: self.signing_secret,
                registry: self.registry,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::from_json;

    fn input(value: Value) -> Result<(String, SourceKind), Invalid> {
        from_json::<SourceInput>(value)?.validate()
    }

    #[test]
    fn an_mlflow_source_names_its_secret_and_registry() {
        let (name, kind) = input(json!({"type": "mlflow", "name": "mlflow-prod",
            "signing_secret": "MLFLOW_WEBHOOK", "registry": "mlflow"}))
        .unwrap();
        assert_eq!(name, "mlflow-prod");
        assert_eq!(kind.signing_secret(), "MLFLOW_WEBHOOK");
        let source = Source {
            id: "01J".into(),
            team: "acme".into(),
            name,
            kind,
            created_at: "2026-12-02T00:00:00Z".into(),
        };
        assert_eq!(source.receive_path(), "/v1/teams/acme/sources/01J/receive");
        let view = source.public_view();
        assert_eq!(view["type"], "mlflow");
        assert_eq!(view["registry"], "mlflow");
        let stored: Source =
            serde_json::from_str(&serde_json::to_string(&source).unwrap()).unwrap();
        assert_eq!(stored, source);
    }

    #[test]
    fn bad_sources_name_the_field() {
        let base = json!({"type": "mlflow", "name": "m", "signing_secret": "S", "registry": "r"});
        let with = |field: &str, value: Value| {
            let mut v = base.clone();
            v[field] = value;
            input(v).unwrap_err().field
        };
        assert_eq!(with("type", json!("github")), "type");
        assert_eq!(with("name", json!("has space")), "name");
        assert_eq!(with("signing_secret", json!("lower")), "signing_secret");
        assert_eq!(with("registry", json!("")), "registry");
        assert_eq!(with("url", json!("x")), "url");
        let mut missing = base.clone();
        missing.as_object_mut().unwrap().remove("registry");
        assert_eq!(input(missing).unwrap_err().field, "registry");
    }
}
