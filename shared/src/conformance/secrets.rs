//! The `SecretStore` conformance suite.

use std::sync::Arc;

use crate::ports::{SecretStore, SecretValue};

/// Runs the secrets contract against an EMPTY secret store.
pub async fn secrets_suite(secrets: Arc<dyn SecretStore>) {
    let s = &*secrets;
    // GIVEN a secret THEN it reads back, and a rewrite replaces it
    put_secret(s, "acme", "API_TOKEN", "s3cret").await;
    assert_eq!(
        secret(s, "acme", "API_TOKEN").await.as_deref(),
        Some("s3cret")
    );
    put_secret(s, "acme", "API_TOKEN", "rotated").await;
    assert_eq!(
        secret(s, "acme", "API_TOKEN").await.as_deref(),
        Some("rotated")
    );
    assert_eq!(secret(s, "acme", "MISSING").await, None);

    // GIVEN more secrets THEN the list gives their names, sorted, and times
    put_secret(s, "acme", "ZED", "z").await;
    put_secret(s, "acme", "ALPHA", "a").await;
    assert_eq!(secret_names(s, "acme").await, ["ALPHA", "API_TOKEN", "ZED"]);
    let infos = s.list_secrets("acme").await.expect("list_secrets failed");
    assert!(infos.iter().all(|i| !i.updated_at.is_empty()), "{infos:?}");

    // AND teams do not see each other's secrets
    assert_eq!(secret(s, "globex", "API_TOKEN").await, None);
    assert!(secret_names(s, "globex").await.is_empty());
    put_secret(s, "globex", "API_TOKEN", "globex's").await;
    assert_eq!(
        secret(s, "acme", "API_TOKEN").await.as_deref(),
        Some("rotated")
    );

    // WHEN one is deleted THEN it is gone (once), in its team only
    let delete = |team| s.delete_secret(team, "API_TOKEN");
    assert!(delete("acme").await.expect("delete_secret failed"));
    assert!(!delete("acme").await.expect("delete_secret failed"));
    assert_eq!(secret(s, "acme", "API_TOKEN").await, None);
    assert_eq!(secret_names(s, "acme").await, ["ALPHA", "ZED"]);
    assert_eq!(
        secret(s, "globex", "API_TOKEN").await.as_deref(),
        Some("globex's")
    );

    // AND any text roundtrips: unicode, quotes, control characters, 16 KiB
    let unicode = "pässwörd 🔑 秘密 \"quoted\" \\ \n\t end";
    put_secret(s, "acme", "UNICODE", unicode).await;
    assert_eq!(secret(s, "acme", "UNICODE").await.as_deref(), Some(unicode));
    let large: String = (0..16 * 1024)
        .map(|i| char::from(b'!' + (i % 94) as u8))
        .collect();
    put_secret(s, "acme", "LARGE", &large).await;
    assert_eq!(secret(s, "acme", "LARGE").await, Some(large));
}

async fn put_secret(secrets: &dyn SecretStore, team: &str, name: &str, value: &str) {
    let value = SecretValue(value.to_string());
    if let Err(e) = secrets.put_secret(team, name, &value).await {
        panic!("put_secret {team}/{name}: {e}");
    }
}

async fn secret(secrets: &dyn SecretStore, team: &str, name: &str) -> Option<String> {
    let value = secrets.get_secret(team, name).await;
    value
        .unwrap_or_else(|e| panic!("get_secret {team}/{name}: {e}"))
        .map(|v| v.0)
}

async fn secret_names(secrets: &dyn SecretStore, team: &str) -> Vec<String> {
    let infos = secrets.list_secrets(team).await;
    infos
        .unwrap_or_else(|e| panic!("list_secrets {team}: {e}"))
        .into_iter()
        .map(|i| i.name)
        .collect()
}
