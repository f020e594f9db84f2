//! Sources: a team's admins create one per system that sends webhooks (an MLflow tracking
//! server), and that system's deliveries come in on the source's receive path. A
//! delivery is checked against the source's signing secret before anything else is
//! read; a verified one is mapped into an event and ingested like any other, its
//! delivery id as the event id, so the sender's retries make one set of executions.

use serde_json::Value;

use super::access::record;
use super::ingest::{IngestReport, ingest};
use super::{Engine, Error, Result};
use crate::domain::Invalid;
use crate::domain::access::{Actor, Target};
use crate::domain::event::format_time;
use crate::domain::ids::new_id;
use crate::domain::source::mlflow::{self, Delivery, Signed};
use crate::domain::source::{Source, SourceInput};
use crate::ports::{Listing, StoreError};

pub async fn create_source(
    engine: &Engine,
    actor: &Actor,
    team: &str,
    input: SourceInput,
) -> Result<Source> {
    let (name, kind) = input.validate()?;
    let secret = kind.signing_secret();
    if engine.secrets.get_secret(team, secret).await?.is_none() {
        return Err(Error::Invalid(Invalid::new(
            "signing_secret",
            format!(
                "secret {secret} does not exist; create it first with PUT /v1/teams/{team}/secrets/{secret}, then give MLflow the same value as its webhook's secret"
            ),
        )));
    }
    let source = Source {
        id: new_id(),
        team: team.to_string(),
        name,
        kind,
        created_at: format_time(engine.clock.now()),
    };
    engine.sources.create_source(&source).await?;
    let target = Target::new("source", &source.id, Some(&source.name));
    record(engine, actor, team, "source.create", target).await;
    Ok(source)
}

pub async fn list_sources(engine: &Engine, team: &str) -> Result<Listing<Source>> {
    Ok(engine.sources.list_sources(team).await?)
}

pub async fn get_source(engine: &Engine, team: &str, id: &str) -> Result<Source> {
    engine
        .sources
        .get_source(team, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("source {id} does not exist")))
}

pub async fn delete_source(engine: &Engine, actor: &Actor, team: &str, id: &str) -> Result<()> {
    let name = match engine.sources.get_source(team, id).await {
        Ok(found) => found.map(|s| s.name),
        Err(StoreError::Unreadable(_)) => None,
        Err(e) => return Err(e.into()),
    };
    if !engine.sources.delete_source(team, id).await? {
        return Err(Error::NotFound(format!("source {id} does not exist")));
    }
    let target = Target::new("source", id, name.as_deref());
    record(engine, actor, team, "source.delete", target).await;
    Ok(())
}

/// What a delivery became.
#[derive(Debug)]
pub enum Received {
    /// Its event was ingested (or had been: a retry of the same delivery is a duplicate).
    Ingested(IngestReport),
    /// Its event has no counterpart here (`entity.action`).
    Ignored(String),
}

/// Why a delivery was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The path names no source of the team.
    #[error("no source {0} in this team")]
    NoSource(String),
    /// Not signed by the source's secret, or not now: nothing of it is read or stored.
    #[error(transparent)]
    Unsigned(#[from] mlflow::Unsigned),
    /// The source's signing secret is gone, so no delivery can be verified.
    #[error(
        "this source cannot check signatures: its signing secret no longer exists; a team admin must set it again"
    )]
    NoSecret,
    /// Over the source's rate: try again after this long.
    #[error("over the source's rate limit")]
    RateLimited(std::time::Duration),
    #[error(transparent)]
    Engine(#[from] Error),
}

impl From<Invalid> for ReceiveError {
    fn from(e: Invalid) -> Self {
        ReceiveError::Engine(Error::Invalid(e))
    }
}

impl From<StoreError> for ReceiveError {
    fn from(e: StoreError) -> Self {
        ReceiveError::Engine(e.into())
    }
}

/// Takes one delivery to source `id` of `team`: verifies it, counts it against the
/// source's rate (`take`, which says how long to wait when it is over), maps it, and
/// ingests its event.
pub async fn receive(
    engine: &Engine,
    team: &str,
    id: &str,
    headers: &Signed<'_>,
    body: &[u8],
    take: impl FnOnce() -> Result<(), std::time::Duration>,
) -> Result<Received, ReceiveError> {
    // A path that no source could have is not looked up (nor sent to the store's keys).
    if super::manage::check_team_name(team).is_err() || crate::domain::check_name("id", id).is_err()
    {
        return Err(ReceiveError::NoSource(id.chars().take(128).collect()));
    }
    let source = match engine.sources.get_source(team, id).await {
        Ok(Some(source)) => source,
        Ok(None) => return Err(ReceiveError::NoSource(id.to_string())),
        Err(e) => return Err(e.into()),
    };
    let secret_name = source.kind.signing_secret();
    let Some(secret) = engine.secrets.get_secret(team, secret_name).await? else {
        tracing::error!(team, source = %source.id, secret = secret_name, "a source's signing secret is missing; its deliveries are refused");
        return Err(ReceiveError::NoSecret);
    };
    let now = engine.clock.now();
    let delivery_id = mlflow::verify(&secret.0, headers, body, now.unix_timestamp())?;
    take().map_err(ReceiveError::RateLimited)?;
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Invalid::new("body", format!("the delivery is not JSON: {e}")))?;
    let crate::domain::source::SourceKind::Mlflow { registry, .. } = &source.kind;
    let input = match mlflow::map(&value, registry, delivery_id)? {
        Delivery::Ignored(what) => return Ok(Received::Ignored(what)),
        Delivery::Event(input) => *input,
    };
    let event = input.validate(team, new_id(), now).map_err(|e| {
        if e.field == "id" {
            Invalid::new("X-MLflow-Delivery-Id", e.message)
        } else {
            e
        }
    })?;
    Ok(Received::Ingested(ingest(engine, team, vec![event]).await?))
}
