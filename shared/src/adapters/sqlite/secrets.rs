//! `SecretStore` on SQLite: values sealed with XChaCha20-Poly1305 under a key kept in its
//! own file, outside the database; the team and name are bound in as associated data.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use rusqlite::{OptionalExtension, params};

use super::{Database, DbError};
use crate::domain::event::format_time;
use crate::ports::{Clock, SecretInfo, SecretStore, SecretValue, StoreError, StoreResult};

/// The 32-byte key that seals secret values.
#[derive(Clone)]
pub struct SecretsKey([u8; 32]);

impl SecretsKey {
    /// Reads the key file, or creates it (mode 0600) with a random key.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    format!(
                        "{}: a secrets key file holds exactly 32 bytes",
                        path.display()
                    )
                })?;
                let mode = fs::metadata(path)
                    .map_err(|e| e.to_string())?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(format!(
                        "{}: the secrets key must not be readable by others (chmod 600)",
                        path.display()
                    ));
                }
                Ok(Self(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rng().fill_bytes(&mut key);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| {
                        format!("{}: cannot create the secrets key: {e}", path.display())
                    })?;
                file.write_all(&key)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| e.to_string())?;
                Ok(Self(key))
            }
            Err(e) => Err(format!(
                "{}: cannot read the secrets key: {e}",
                path.display()
            )),
        }
    }

    /// A random key that lives only in memory, for tests.
    pub fn ephemeral() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }
}

pub struct SqliteSecrets {
    db: Database,
    cipher: Arc<XChaCha20Poly1305>,
    clock: Arc<dyn Clock>,
}

impl SqliteSecrets {
    pub fn new(db: Database, key: &SecretsKey, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            cipher: Arc::new(XChaCha20Poly1305::new((&key.0).into())),
            clock,
        }
    }
}

fn aad(team: &str, name: &str) -> Vec<u8> {
    format!("{team}/{name}").into_bytes()
}

#[async_trait]
impl SecretStore for SqliteSecrets {
    async fn put_secret(&self, team: &str, name: &str, value: &SecretValue) -> StoreResult<()> {
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let aad = aad(team, name);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.0.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Backend("could not encrypt the secret".into()))?;
        let (team, name) = (team.to_string(), name.to_string());
        let at = format_time(self.clock.now());
        self.db
            .call(move |c| {
                c.execute(
                    "INSERT INTO secrets (team, name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (team, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext,
                     updated_at = excluded.updated_at",
                    params![team, name, nonce.to_vec(), sealed, at],
                )?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn get_secret(&self, team: &str, name: &str) -> StoreResult<Option<SecretValue>> {
        let (t, n) = (team.to_string(), name.to_string());
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .db
            .call(move |c| {
                Ok(c.prepare_cached(
                    "SELECT nonce, ciphertext FROM secrets WHERE team = ?1 AND name = ?2",
                )?
                .query_row([t, n], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
            })
            .await?;
        let Some((nonce, sealed)) = row else {
            return Ok(None);
        };
        if nonce.len() != 24 {
            return Err(StoreError::Backend(format!("secret {name} is damaged")));
        }
        let aad = aad(team, name);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| {
                StoreError::Backend(format!(
                    "secret {name} cannot be decrypted: wrong secrets key?"
                ))
            })?;
        String::from_utf8(plain)
            .map(|v| Some(SecretValue(v)))
            .map_err(|_| StoreError::Backend(format!("secret {name} is damaged")))
    }

    async fn list_secrets(&self, team: &str) -> StoreResult<Vec<SecretInfo>> {
        let team = team.to_string();
        Ok(self
            .db
            .call(move |c| {
                let mut stmt = c.prepare(
                    "SELECT name, updated_at FROM secrets WHERE team = ?1 ORDER BY name",
                )?;
                let rows = stmt.query_map([team], |r| {
                    Ok(SecretInfo {
                        name: r.get(0)?,
                        updated_at: r.get(1)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?)
    }

    async fn delete_secret(&self, team: &str, name: &str) -> StoreResult<bool> {
        let (team, name) = (team.to_string(), name.to_string());
        Ok(self
            .db
            .call(move |c| {
                Ok(c.execute(
                    "DELETE FROM secrets WHERE team = ?1 AND name = ?2",
                    [team, name],
                )? > 0)
            })
            .await
            .map_err(|e: DbError| StoreError::from(e))?)
    }
}
