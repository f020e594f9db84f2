//! Identifiers. Execution ids are derived from (team, event, automation) so that a
//! redelivered event can never create a second execution.

use std::sync::Mutex;

use sha2::{Digest, Sha256};
use ulid::Ulid;

/// A new random, time-ordered id. Ids made by one process also sort in the order they were
/// made, within a millisecond too (a listing newest first is descending id).
pub fn new_id() -> String {
    static GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);
    let mut generator = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
    let generator = generator.get_or_insert_with(ulid::Generator::new);
    // The generator runs out only after 2^80 ids in one millisecond.
    let id = generator.generate().unwrap_or_else(|_| Ulid::new());
    id.to_string().to_ascii_lowercase()
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

/// The execution id of `automation_id` firing on `event_id`: derived from the triple alone,
/// so however often (or concurrently) an event is delivered, it names one execution.
pub fn execution_id(team: &str, event_id: &str, automation_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(team.as_bytes())
        .chain_update([0])
        .chain_update(event_id.as_bytes())
        .chain_update([0])
        .chain_update(automation_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Ulid(u128::from_be_bytes(bytes))
        .to_string()
        .to_ascii_lowercase()
}

/// The job an execution enqueues in its round (a manual retry starts a new round, and
/// with it a new job): derived, so that a redelivered action message names the same job.
pub fn job_id(team: &str, execution_id: &str, round: usize) -> String {
    let round = round.to_string();
    derived_id(&[team, execution_id, "job", &round])
}

fn derived_id(parts: &[&str]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update(part.as_bytes());
        digest.update([0]);
    }
    let digest = digest.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    Ulid(u128::from_be_bytes(bytes))
        .to_string()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_ids_are_deterministic_and_distinct() {
        let a = execution_id("acme", "e1", "a1");
        assert_eq!(a, execution_id("acme", "e1", "a1"));
        assert_ne!(a, execution_id("acme", "e1", "a2"));
        assert_ne!(a, execution_id("acme", "e2", "a1"));
        assert_ne!(a, execution_id("other", "e1", "a1"));
        assert_ne!(execution_id("a", "bc", "d"), execution_id("ab", "c", "d"));
        assert_eq!(job_id("acme", &a, 0), job_id("acme", &a, 0));
        assert_ne!(job_id("acme", &a, 0), job_id("acme", &a, 1));
        assert_ne!(job_id("acme", &a, 0), a);
        assert_eq!(a.len(), 26);
    }

    #[test]
    fn new_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
