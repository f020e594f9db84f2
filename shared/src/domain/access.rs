//! Who may do what: API keys, roles, the access each route needs, and the audit trail's
//! entries. No I/O: the HTTP layer finds the caller, these rules decide.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Invalid;

/// What every team key starts with, so that secret scanners can spot one.
pub const KEY_PREFIX: &str = "atm_";

/// A team key's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything in the team: secrets, integrations, automations and keys.
    Admin,
    /// Reads automations, integrations, secret names and executions; sends events.
    Member,
    /// Sends events, nothing else.
    Ingest,
    /// Claims, heartbeats and completes the jobs of the team's queues, nothing else.
    Agent,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Member, Role::Ingest, Role::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Ingest => "ingest",
            Role::Agent => "agent",
        }
    }

    /// Reads a role as a client names it; the error names `field` and the roles there are.
    pub fn parse(field: &str, value: &str) -> Result<Role, Invalid> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == value)
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    format!("unknown role {value:?}; expected admin, member, ingest or agent"),
                )
            })
    }
}

/// What a route needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// The operator alone: teams and the runtime's dead letters.
    Operator,
    /// A team's admin (or the operator): changes in the team, keys, the audit trail.
    Admin,
    /// Reading the team's automations, integrations, secret names and executions.
    Read,
    /// Sending events to the team.
    Send,
    /// Claiming, heartbeating and completing the jobs of the team's queues.
    Work,
}

impl Access {
    /// Whether a key of `role` may do this in its own team.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Operator => false,
            Access::Admin => role == Role::Admin,
            Access::Read => matches!(role, Role::Admin | Role::Member),
            Access::Send => matches!(role, Role::Admin | Role::Member | Role::Ingest),
            Access::Work => matches!(role, Role::Admin | Role::Agent),
        }
    }
}

/// Who sent a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The holder of the operator key: manages teams, and acts as admin in any team.
    Operator,
    Key(ApiKey),
}

/// Why a caller may not use a route. Every refusal of a team the caller is not in reads
/// the same, whether the team exists or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// The route is the operator's.
    OperatorOnly,
    /// The caller's key is of another team (or the team does not exist).
    OtherTeam,
    /// The caller's role does not allow it.
    Role { role: Role, needs: Access },
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::OperatorOnly => f.write_str("only the operator key may do this"),
            Denied::OtherTeam => f.write_str("this key may not act in that team"),
            Denied::Role { role, needs } => {
                let who = match needs {
                    Access::Operator => "the operator",
                    Access::Admin => "an admin key",
                    Access::Read => "an admin or member key",
                    Access::Send => "an admin, member or ingest key",
                    Access::Work => "an admin or agent key",
                };
                write!(
                    f,
                    "a key of role {} may not do this; it needs {who}",
                    role.as_str()
                )
            }
        }
    }
}

impl Caller {
    /// Whether the caller may use a route that needs `access`, in `team` where the route is
    /// a team's.
    pub fn authorize(&self, access: Access, team: Option<&str>) -> Result<(), Denied> {
        let key = match self {
            Caller::Operator => return Ok(()),
            Caller::Key(key) => key,
        };
        match team {
            None => Err(Denied::OperatorOnly),
            Some(team) if team != key.team => Err(Denied::OtherTeam),
            Some(_) if access == Access::Operator => Err(Denied::OperatorOnly),
            Some(_) if access.allows(key.role) => Ok(()),
            Some(_) => Err(Denied::Role {
                role: key.role,
                needs: access,
            }),
        }
    }

    /// The caller as the audit trail names it.
    pub fn actor(&self) -> Actor {
        match self {
            Caller::Operator => Actor::operator(),
            Caller::Key(key) => Actor {
                key_id: key.id.clone(),
                user: key.user.clone(),
                role: key.role.as_str().into(),
            },
        }
    }

    /// What the rate limit counts the caller's requests under.
    pub fn bucket(&self) -> String {
        match self {
            Caller::Operator => "operator".into(),
            Caller::Key(key) => key.id.clone(),
        }
    }
}

/// A team key as stored and listed: never the key itself, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub team: String,
    pub user: String,
    pub role: Role,
    pub created_at: String,
    /// The `key_id` of whoever granted it (`operator` for the operator).
    pub created_by: String,
}

/// A key as a team admin asks for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    pub user: String,
    pub role: String,
}

/// Longest user name a key is granted to.
pub const MAX_USER_BYTES: usize = 128;

impl ApiKeyInput {
    /// The user and role, or the field that is wrong.
    pub fn validate(&self) -> Result<(String, Role), Invalid> {
        let user = self.user.trim();
        if user.is_empty() {
            return Err(Invalid::new(
                "user",
                "must name who or what the key is for, e.g. \"alice\" or \"training-ci\"",
            ));
        }
        if user.len() > MAX_USER_BYTES || user.chars().any(char::is_control) {
            return Err(Invalid::new(
                "user",
                format!("must be at most {MAX_USER_BYTES} bytes without control characters"),
            ));
        }
        Ok((user.to_string(), Role::parse("role", &self.role)?))
    }
}

/// A key as found by its hash: the key, and the hash it is stored under (compared with
/// the presented key's in constant time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key: ApiKey,
    pub hash: KeyHash,
}

/// The SHA-256 of a key: what is stored and looked up, never the key. Keys are 256 random
/// bits, so a fast hash is as good as a slow one: there is nothing to guess.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a hash written by [`KeyHash::to_hex`].
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// Compares in constant time.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(…)")
    }
}

/// Whether `key` has the form of a team key: the prefix and 43 URL-safe base64
/// characters. Anything else is refused without a lookup.
pub fn is_team_key_form(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Who did something, as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub key_id: String,
    pub user: String,
    pub role: String,
}

impl Actor {
    /// The operator, as the trail names it.
    pub fn operator() -> Self {
        Actor {
            key_id: "operator".into(),
            user: "operator".into(),
            role: "operator".into(),
        }
    }
}

/// What an audited action was done to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: Option<String>,
}

impl Target {
    pub fn new(kind: &str, id: &str, name: Option<&str>) -> Self {
        Self {
            kind: kind.to_string(),
            id: id.to_string(),
            name: name.map(str::to_string),
        }
    }
}

/// One entry of a team's audit trail: who did what to which item, when. It holds names
/// and ids only, never a secret value or a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Time-ordered: newest first is descending id.
    pub id: String,
    #[serde(skip)]
    pub team: String,
    pub at: String,
    pub actor: Actor,
    /// `<target type>.<verb>`, e.g. `automation.create`, `api_key.revoke`.
    pub action: String,
    pub target: Target,
}

/// How long an audit entry is kept.
pub const AUDIT_RETENTION: std::time::Duration = std::time::Duration::from_secs(400 * 24 * 3600);

/// A rate and a burst, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests a second, on average.
    pub rate: f64,
    /// Requests at once, after a quiet spell.
    pub burst: f64,
}

impl Default for RateLimit {
    /// 100 requests a second with a burst of 200.
    fn default() -> Self {
        Self {
            rate: 100.0,
            burst: 200.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(team: &str, role: Role) -> Caller {
        Caller::Key(ApiKey {
            id: "k1".into(),
            team: team.into(),
            user: "alice".into(),
            role,
            created_at: String::new(),
            created_by: "operator".into(),
        })
    }

    #[test]
    fn roles_allow_what_the_contract_says() {
        use Access::*;
        let table = [
            (Role::Admin, [false, true, true, true, true]),
            (Role::Member, [false, false, true, true, false]),
            (Role::Ingest, [false, false, false, true, false]),
            (Role::Agent, [false, false, false, false, true]),
        ];
        for (role, allowed) in table {
            for (access, allowed) in [Operator, Admin, Read, Send, Work].into_iter().zip(allowed) {
                assert_eq!(
                    key("acme", role).authorize(access, Some("acme")).is_ok(),
                    allowed,
                    "{role:?} on {access:?}"
                );
            }
        }
    }

    #[test]
    fn a_key_is_refused_alike_in_every_other_team_and_outside_teams() {
        let admin = key("acme", Role::Admin);
        for access in [Access::Admin, Access::Read, Access::Send, Access::Work] {
            assert_eq!(
                admin.authorize(access, Some("beta")),
                Err(Denied::OtherTeam)
            );
            assert_eq!(
                admin.authorize(access, Some("no-such-team")),
                Err(Denied::OtherTeam)
            );
        }
        assert_eq!(
            admin.authorize(Access::Operator, None),
            Err(Denied::OperatorOnly)
        );
        for access in [
            Access::Operator,
            Access::Admin,
            Access::Read,
            Access::Send,
            Access::Work,
        ] {
            assert!(Caller::Operator.authorize(access, Some("any")).is_ok());
            assert!(Caller::Operator.authorize(access, None).is_ok());
        }
    }

    #[test]
    fn key_inputs_name_the_field_that_is_wrong() {
        let input = |user: &str, role: &str| ApiKeyInput {
            user: user.into(),
            role: role.into(),
        };
        assert_eq!(input("  ", "admin").validate().unwrap_err().field, "user");
        assert_eq!(input("a\nb", "admin").validate().unwrap_err().field, "user");
        assert_eq!(
            input(&"u".repeat(129), "admin")
                .validate()
                .unwrap_err()
                .field,
            "user"
        );
        let unknown = input("alice", "root").validate().unwrap_err();
        assert_eq!(unknown.field, "role");
        assert!(unknown.message.contains("\"root\""), "{unknown}");
        assert_eq!(
            input(" alice ", "ingest").validate(),
            Ok(("alice".into(), Role::Ingest))
        );
    }

    #[test]
    fn only_well_formed_team_keys_are_looked_up() {
        let key = super::super::ids::new_api_key("atm");
        assert!(is_team_key_form(&key), "{key}");
        assert!(!is_team_key_form("atm_short"));
        assert!(!is_team_key_form(&key.replace("atm_", "op_x")));
        assert!(!is_team_key_form(&format!("{key}=")));
    }

    #[test]
    fn hashes_compare_and_never_show() {
        let a = KeyHash::of("atm_a");
        assert!(a.matches(&KeyHash::of("atm_a")));
        assert!(!a.matches(&KeyHash::of("atm_b")));
        assert_eq!(a.to_hex().len(), 64);
        assert_eq!(KeyHash::from_hex(&a.to_hex()), Some(a.clone()));
        assert_eq!(KeyHash::from_hex("ab"), None);
        assert_eq!(KeyHash::from_hex(&"zz".repeat(32)), None);
        assert_eq!(format!("{a:?}"), "KeyHash(…)");
    }
}
