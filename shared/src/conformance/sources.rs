//! The `SourceStore` conformance suite: a source reads back as written (a name with
//! every character a collection may hold does too), names are unique within a team but
//! not across teams, listings hold a team's sources only, and a delete frees the name.

use crate::domain::source::{Source, SourceKind};
use crate::ports::{SourceStore, StoreError};

fn source(team: &str, id: &str, name: &str) -> Source {
    Source {
        id: id.into(),
        team: team.into(),
        name: name.into(),
        kind: SourceKind::Mlflow {
            signing_secret: "MLFLOW_SIGNING".into(),
            registry: "mlflow".into(),
        },
        created_at: "2027-01-15T08:00:00Z".into(),
    }
}

/// Runs the source-store contract against an EMPTY store.
pub async fn sources_suite(store: &dyn SourceStore) {
    // GIVEN a source of acme
    let prod = source("acme", "01SRCPROD", "mlflow-prod");
    store.create_source(&prod).await.expect("create_source");

    // THEN it reads back as written, in its team only
    assert_eq!(
        store
            .get_source("acme", "01SRCPROD")
            .await
            .expect("the store answers"),
        Some(prod.clone()),
        "a source reads back as written"
    );
    assert_eq!(
        store
            .get_source("globex", "01SRCPROD")
            .await
            .expect("the store answers"),
        None,
        "another team does not see it"
    );
    assert_eq!(
        store
            .get_source("acme", "01NOSUCH")
            .await
            .expect("the store answers"),
        None
    );

    // AND its name is unique in the team, not across teams
    let twin = source("acme", "01SRCTWIN", "mlflow-prod");
    match store.create_source(&twin).await {
        Err(StoreError::Conflict(message)) => {
            assert!(message.contains("mlflow-prod"), "{message}")
        }
        other => panic!("a second source named mlflow-prod: {other:?}"),
    }
    assert_eq!(
        store
            .get_source("acme", "01SRCTWIN")
            .await
            .expect("the store answers"),
        None
    );
    store
        .create_source(&source("globex", "01SRCGLOBEX", "mlflow-prod"))
        .await
        .expect("another team may use the name");

    // AND a listing holds the team's sources only
    let staging = source("acme", "01SRCSTAGING", "mlflow-staging");
    store
        .create_source(&staging)
        .await
        .expect("the store answers");
    let listed: Vec<Source> = store
        .list_sources("acme")
        .await
        .expect("the store answers")
        .into_items("acme");
    assert_eq!(listed, vec![prod.clone(), staging.clone()]);
    assert!(
        store
            .list_sources("initech")
            .await
            .expect("the store answers")
            .entries
            .is_empty()
    );

    // WHEN one is deleted
    assert!(
        store
            .delete_source("acme", "01SRCPROD")
            .await
            .expect("the store answers")
    );
    // THEN it is gone, a second delete finds nothing, and the name is free again
    assert_eq!(
        store
            .get_source("acme", "01SRCPROD")
            .await
            .expect("the store answers"),
        None
    );
    assert!(
        !store
            .delete_source("acme", "01SRCPROD")
            .await
            .expect("the store answers")
    );
    store
        .create_source(&source("acme", "01SRCPROD2", "mlflow-prod"))
        .await
        .expect("a deleted source's name can be taken again");
    assert_eq!(
        store
            .list_sources("globex")
            .await
            .expect("the store answers")
            .into_items("globex")
            .len(),
        1,
        "a delete leaves other teams' sources alone"
    );
}
