//! Identifiers. Execution ids are derived from (team, event, automation) so that a
//! redelivered event can never create a second execution.

use sha2::{Digest, Sha256};
use ulid::Ulid;

/// A new random, time-ordered id.
pub fn new_id() -> String {
    Ulid::new().to_string().to_ascii_lowercase()
}

/// A new API key: a prefix and 32 random bytes in URL-safe base64 (43 characters).
pub fn new_api_key(prefix: &str) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The execution id of `automation_id` firing on `event_id`: a ULID whose time part is the
/// moment the event was received and whose random part is a hash of the triple.
pub fn execution_id(
    team: &str,
    event_id: &str,
    automation_id: &str,
    received_at_ms: i64,
) -> String {
    let digest = Sha256::new()
        .chain_update(team.as_bytes())
        .chain_update([0])
        .chain_update(event_id.as_bytes())
        .chain_update([0])
        .chain_update(automation_id.as_bytes())
        .finalize();
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&digest[..10]);
    let ulid = Ulid::from_parts(received_at_ms.max(0) as u64, u128::from_be_bytes(random));
    ulid.to_string().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_ids_are_deterministic_and_distinct() {
        let a = execution_id("acme", "e1", "a1", 1_700_000_000_000);
        assert_eq!(a, execution_id("acme", "e1", "a1", 1_700_000_000_000));
        assert_ne!(a, execution_id("acme", "e1", "a2", 1_700_000_000_000));
        assert_ne!(a, execution_id("acme", "e2", "a1", 1_700_000_000_000));
        assert_ne!(a, execution_id("other", "e1", "a1", 1_700_000_000_000));
        assert_eq!(a.len(), 26);
    }

    #[test]
    fn execution_ids_sort_by_receive_time() {
        let early = execution_id("acme", "zzz", "a1", 1_000);
        let late = execution_id("acme", "aaa", "a1", 2_000);
        assert!(early < late);
    }
}
