//! IAM sessions: temporary credentials issued for a role (what STS `AssumeRole` returns). The
//! function runtime issues one for each function's execution role; SigV4 verification looks
//! them up by access key id.
//!
//! Sessions are stored as given and returned as stored, expired or not: whether a session is
//! still valid at a given time is the caller's business, and
//! [`Registry::delete_expired_iam_sessions`](crate::Registry::delete_expired_iam_sessions)
//! sweeps the expired ones. Sessions announce nothing on the change feed.

use std::fmt;

use crate::registry::db::{Db, sql};
use crate::registry::error::RegistryError;

type Result<T> = std::result::Result<T, RegistryError>;

const KIND: &str = "Session";

/// Temporary credentials issued for an IAM role. `Debug` shows neither the secret nor the
/// token.
#[derive(Clone, PartialEq, Eq)]
pub struct IamSessionRecord {
    /// The key id, `ASIA` and 16 upper-case alphanumerics; unique.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// The session token the client sends with its signed requests.
    pub session_token: String,
    /// The role's name (not its ARN).
    pub role_name: String,
    /// The session name given when the credentials were issued.
    pub session_name: String,
    /// Issue time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Expiry time, milliseconds since the Unix epoch.
    pub expires_ms: i64,
}

impl fmt::Debug for IamSessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamSessionRecord")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("role_name", &self.role_name)
            .field("session_name", &self.session_name)
            .field("created_ms", &self.created_ms)
            .field("expires_ms", &self.expires_ms)
            .finish()
    }
}

type SessionRow = (String, String, String, String, String, i64, i64);

pub(super) async fn create_session(db: &Db, s: &IamSessionRecord) -> Result<()> {
    let mut tx = db
        .write(format!(
            "creating an IAM session for the role {:?}",
            s.role_name
        ))
        .await?;
    let taken = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM iam_sessions WHERE access_key_id = $1",
            &s.access_key_id
        ))
        .await?;
    if taken > 0 {
        return Err(RegistryError::AlreadyExists {
            kind: KIND,
            id: s.access_key_id.clone(),
        });
    }
    tx.execute(sql!(
        "INSERT INTO iam_sessions (access_key_id, secret_access_key, session_token, role_name, \
         session_name, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &s.access_key_id,
        &s.secret_access_key,
        &s.session_token,
        &s.role_name,
        &s.session_name,
        s.created_ms,
        s.expires_ms
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn get_session(db: &Db, access_key_id: &str) -> Result<Option<IamSessionRecord>> {
    let mut tx = db.read("reading an IAM session").await?;
    let row: Option<SessionRow> = tx
        .fetch_optional(sql!(
            "SELECT access_key_id, secret_access_key, session_token, role_name, session_name, \
             created_ms, expires_ms FROM iam_sessions WHERE access_key_id = $1",
            access_key_id
        ))
        .await?;
    Ok(row.map(
        |(
            access_key_id,
            secret_access_key,
            session_token,
            role_name,
            session_name,
            created_ms,
            expires_ms,
        )| IamSessionRecord {
            access_key_id,
            secret_access_key,
            session_token,
            role_name,
            session_name,
            created_ms,
            expires_ms,
        },
    ))
}

pub(super) async fn delete_expired_sessions(db: &Db, now_ms: i64) -> Result<u64> {
    let mut tx = db.write("deleting expired IAM sessions").await?;
    let deleted = tx
        .execute(sql!(
            "DELETE FROM iam_sessions WHERE expires_ms <= $1",
            now_ms
        ))
        .await?;
    tx.commit().await?;
    Ok(deleted)
}
