//! Account-level values: the CA registration code and settings created once per server.

use crate::registry::db::{Db, sql};
use crate::registry::error::RegistryError;

type Result<T> = std::result::Result<T, RegistryError>;

pub(super) async fn registration_code(db: &Db) -> Result<Option<String>> {
    let mut tx = db.read("reading the registration code").await?;
    let row: Option<(String,)> = tx
        .fetch_optional(sql!("SELECT code FROM registration_code WHERE id = 1"))
        .await?;
    Ok(row.map(|(code,)| code))
}

pub(super) async fn get_or_create_registration_code(db: &Db, candidate: &str) -> Result<String> {
    let mut tx = db.write("creating the registration code").await?;
    tx.execute(sql!(
        "INSERT INTO registration_code (id, code) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        candidate
    ))
    .await?;
    let (code,): (String,) = tx
        .fetch_optional(sql!("SELECT code FROM registration_code WHERE id = 1"))
        .await?
        .ok_or_else(|| tx.corrupt("registration_code has no row right after insert".into()))?;
    tx.commit().await?;
    Ok(code)
}

pub(super) async fn delete_registration_code(db: &Db) -> Result<bool> {
    let mut tx = db.write("deleting the registration code").await?;
    let deleted = tx
        .execute(sql!("DELETE FROM registration_code WHERE id = 1"))
        .await?;
    tx.commit().await?;
    Ok(deleted > 0)
}

pub(super) async fn get_or_create_setting(db: &Db, key: &str, candidate: &str) -> Result<String> {
    let mut tx = db.write(format!("creating the setting {key:?}")).await?;
    tx.execute(sql!(
        "INSERT INTO registry_settings (key, value) VALUES ($1, $2) \
         ON CONFLICT (key) DO NOTHING",
        key,
        candidate
    ))
    .await?;
    let (value,): (String,) = tx
        .fetch_optional(sql!(
            "SELECT value FROM registry_settings WHERE key = $1",
            key
        ))
        .await?
        .ok_or_else(|| {
            tx.corrupt(format!(
                "registry_settings has no {key:?} right after insert"
            ))
        })?;
    tx.commit().await?;
    Ok(value)
}
