//! IAM roles, users, their access keys and inline policies.
//!
//! Role and user names are unique and looked up case-insensitively, as in AWS (the lowercased
//! name is the key; the name keeps the case it was created with). Inline policy names are
//! case-sensitive. IAM writes announce nothing on the change feed: nothing caches them yet.

use crate::registry::db::{Db, Sql, Tx, sql};
use crate::registry::error::RegistryError;
use crate::registry::paging::{self, SortKey};
use crate::registry::records::{Page, PageRequest};

type Result<T> = std::result::Result<T, RegistryError>;

/// How many access keys one user may have, as in AWS.
pub const MAX_ACCESS_KEYS_PER_USER: i64 = 2;

/// An IAM role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamRoleRecord {
    /// The role name, in the case it was created with (unique ignoring case).
    pub name: String,
    /// The stable id (`AROA...`), chosen by the caller.
    pub role_id: String,
    /// The path (`/` or `/a/b/`).
    pub path: String,
    /// The trust policy as JSON text (not URL-encoded).
    pub assume_role_policy: String,
    /// The description, if one was given.
    pub description: Option<String>,
    /// The maximum session duration in seconds.
    pub max_session_duration: i64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// An IAM user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamUserRecord {
    /// The user name, in the case it was created with (unique ignoring case).
    pub name: String,
    /// The stable id (`AIDA...`), chosen by the caller.
    pub user_id: String,
    /// The path (`/` or `/a/b/`).
    pub path: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// An access key of an IAM user.
///
/// The secret is stored so that SigV4 requests signed with the key can be verified; the control
/// plane then authorizes them by the user's inline policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamAccessKeyRecord {
    /// The key id (`AKIA...`), unique.
    pub access_key_id: String,
    /// The owning user's name, as stored on the user.
    pub user_name: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// `Active` or `Inactive`.
    pub status: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// What an inline policy is embedded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamEntity {
    /// An IAM role.
    Role,
    /// An IAM user.
    User,
}

impl IamEntity {
    fn column_value(self) -> &'static str {
        match self {
            IamEntity::Role => "role",
            IamEntity::User => "user",
        }
    }

    /// The `kind` of [`RegistryError::NotFound`] for the entity itself.
    fn kind(self) -> &'static str {
        match self {
            IamEntity::Role => "Role",
            IamEntity::User => "User",
        }
    }

    /// The `kind` of [`RegistryError::NotFound`] for one of its inline policies.
    fn policy_kind(self) -> &'static str {
        match self {
            IamEntity::Role => "Role policy",
            IamEntity::User => "User policy",
        }
    }
}

fn key(name: &str) -> String {
    name.to_lowercase()
}

fn not_found(kind: &'static str, id: &str) -> RegistryError {
    RegistryError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

const SELECT_ROLE: &str = "SELECT name, role_id, path, assume_role_policy, description, \
     max_session_duration, created_ms FROM iam_roles";

type RoleRow = (String, String, String, String, Option<String>, i64, i64);

fn role_from_row(row: RoleRow) -> IamRoleRecord {
    let (name, role_id, path, assume_role_policy, description, max_session_duration, created_ms) =
        row;
    IamRoleRecord {
        name,
        role_id,
        path,
        assume_role_policy,
        description,
        max_session_duration,
        created_ms,
    }
}

async fn fetch_role(tx: &mut Tx<'_>, name: &str) -> Result<Option<IamRoleRecord>> {
    let mut sql = Sql::new(SELECT_ROLE);
    sql.push(" WHERE name_key = ").bind(key(name));
    let row: Option<RoleRow> = tx.fetch_optional(sql).await?;
    Ok(row.map(role_from_row))
}

const SELECT_USER: &str = "SELECT name, user_id, path, created_ms FROM iam_users";

type UserRow = (String, String, String, i64);

async fn fetch_user(tx: &mut Tx<'_>, name: &str) -> Result<Option<IamUserRecord>> {
    let mut sql = Sql::new(SELECT_USER);
    sql.push(" WHERE name_key = ").bind(key(name));
    let row: Option<UserRow> = tx.fetch_optional(sql).await?;
    Ok(row.map(|(name, user_id, path, created_ms)| IamUserRecord {
        name,
        user_id,
        path,
        created_ms,
    }))
}

/// The stored name of the entity, or [`RegistryError::NotFound`].
async fn entity_name(tx: &mut Tx<'_>, entity: IamEntity, name: &str) -> Result<String> {
    let found = match entity {
        IamEntity::Role => fetch_role(tx, name).await?.map(|r| r.name),
        IamEntity::User => fetch_user(tx, name).await?.map(|u| u.name),
    };
    found.ok_or_else(|| not_found(entity.kind(), name))
}

// ----- roles -----

pub(super) async fn create_role(db: &Db, role: &IamRoleRecord) -> Result<()> {
    let name = role.name.as_str();
    let mut tx = db.write(format!("creating the IAM role {name:?}")).await?;
    if let Some(existing) = fetch_role(&mut tx, name).await? {
        return Err(RegistryError::AlreadyExists {
            kind: "Role",
            id: existing.name,
        });
    }
    tx.execute(sql!(
        "INSERT INTO iam_roles (name_key, name, role_id, path, assume_role_policy, description, \
         max_session_duration, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        key(name),
        name,
        &role.role_id,
        &role.path,
        &role.assume_role_policy,
        role.description.as_deref(),
        role.max_session_duration,
        role.created_ms
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn get_role(db: &Db, name: &str) -> Result<Option<IamRoleRecord>> {
    let mut tx = db.read(format!("reading the IAM role {name:?}")).await?;
    fetch_role(&mut tx, name).await
}

pub(super) async fn list_roles(
    db: &Db,
    path_prefix: Option<&str>,
    page: &PageRequest,
) -> Result<Page<IamRoleRecord>> {
    const LIST: &str = "iam-roles";
    let mut sql = Sql::new(SELECT_ROLE);
    sql.push(" WHERE 1 = 1");
    if let Some(prefix) = path_prefix {
        let len = i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX);
        sql.push(" AND substr(path, 1, CAST(")
            .bind(len)
            .push(" AS INTEGER)) = ")
            .bind(prefix);
    }
    paging::tail(&mut sql, LIST, SortKey::Text("name"), page)?;
    let mut tx = db.read("listing IAM roles").await?;
    let rows: Vec<RoleRow> = tx.fetch_all(sql).await?;
    let items = rows.into_iter().map(role_from_row).collect();
    Ok(paging::finish(LIST, items, page, |r| vec![r.name.clone()]))
}

pub(super) async fn delete_role(db: &Db, name: &str) -> Result<()> {
    let mut tx = db.write(format!("deleting the IAM role {name:?}")).await?;
    let role = fetch_role(&mut tx, name)
        .await?
        .ok_or_else(|| not_found("Role", name))?;
    let policies = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM iam_inline_policies WHERE entity = $1 AND entity_key = $2",
            IamEntity::Role.column_value(),
            key(name)
        ))
        .await?;
    if policies > 0 {
        return Err(RegistryError::DeleteConflict(format!(
            "Cannot delete entity, must delete policies first. The role {} has {policies} \
             inline policies.",
            role.name
        )));
    }
    tx.execute(sql!("DELETE FROM iam_roles WHERE name_key = $1", key(name)))
        .await?;
    tx.commit().await
}

// ----- users and access keys -----

pub(super) async fn create_user(db: &Db, user: &IamUserRecord) -> Result<()> {
    let name = user.name.as_str();
    let mut tx = db.write(format!("creating the IAM user {name:?}")).await?;
    if let Some(existing) = fetch_user(&mut tx, name).await? {
        return Err(RegistryError::AlreadyExists {
            kind: "User",
            id: existing.name,
        });
    }
    tx.execute(sql!(
        "INSERT INTO iam_users (name_key, name, user_id, path, created_ms) \
         VALUES ($1, $2, $3, $4, $5)",
        key(name),
        name,
        &user.user_id,
        &user.path,
        user.created_ms
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn delete_user(db: &Db, name: &str) -> Result<()> {
    let mut tx = db.write(format!("deleting the IAM user {name:?}")).await?;
    let user = fetch_user(&mut tx, name)
        .await?
        .ok_or_else(|| not_found("User", name))?;
    let keys = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM iam_access_keys WHERE user_key = $1",
            key(name)
        ))
        .await?;
    let policies = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM iam_inline_policies WHERE entity = $1 AND entity_key = $2",
            IamEntity::User.column_value(),
            key(name)
        ))
        .await?;
    if keys > 0 || policies > 0 {
        return Err(RegistryError::DeleteConflict(format!(
            "Cannot delete entity, must delete access keys and policies first. The user {} \
             has {keys} access keys and {policies} inline policies.",
            user.name
        )));
    }
    tx.execute(sql!("DELETE FROM iam_users WHERE name_key = $1", key(name)))
        .await?;
    tx.commit().await
}

pub(super) async fn get_user(db: &Db, name: &str) -> Result<Option<IamUserRecord>> {
    let mut tx = db.read(format!("reading the IAM user {name:?}")).await?;
    fetch_user(&mut tx, name).await
}

const SELECT_KEY: &str = "SELECT k.access_key_id, u.name, k.secret_access_key, k.status, \
     k.created_ms FROM iam_access_keys k JOIN iam_users u ON u.name_key = k.user_key";

type KeyRow = (String, String, String, String, i64);

fn key_from_row(row: KeyRow) -> IamAccessKeyRecord {
    let (access_key_id, user_name, secret_access_key, status, created_ms) = row;
    IamAccessKeyRecord {
        access_key_id,
        user_name,
        secret_access_key,
        status,
        created_ms,
    }
}

pub(super) async fn create_access_key(db: &Db, access_key: &IamAccessKeyRecord) -> Result<()> {
    let user = access_key.user_name.as_str();
    let mut tx = db
        .write(format!("creating an access key for the IAM user {user:?}"))
        .await?;
    entity_name(&mut tx, IamEntity::User, user).await?;
    let keys = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM iam_access_keys WHERE user_key = $1",
            key(user)
        ))
        .await?;
    if keys >= MAX_ACCESS_KEYS_PER_USER {
        return Err(RegistryError::LimitExceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: {MAX_ACCESS_KEYS_PER_USER}"
        )));
    }
    let mut exists = Sql::new("SELECT COUNT(*) FROM iam_access_keys WHERE access_key_id = ");
    exists.bind(&access_key.access_key_id);
    if tx.fetch_i64(exists).await? > 0 {
        return Err(RegistryError::AlreadyExists {
            kind: "Access key",
            id: access_key.access_key_id.clone(),
        });
    }
    tx.execute(sql!(
        "INSERT INTO iam_access_keys (access_key_id, user_key, secret_access_key, status, \
         created_ms) VALUES ($1, $2, $3, $4, $5)",
        &access_key.access_key_id,
        key(user),
        &access_key.secret_access_key,
        &access_key.status,
        access_key.created_ms
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn get_access_key(
    db: &Db,
    access_key_id: &str,
) -> Result<Option<IamAccessKeyRecord>> {
    let mut tx = db.read("reading an IAM access key").await?;
    let mut sql = Sql::new(SELECT_KEY);
    sql.push(" WHERE k.access_key_id = ").bind(access_key_id);
    let row: Option<KeyRow> = tx.fetch_optional(sql).await?;
    Ok(row.map(key_from_row))
}

pub(super) async fn list_access_keys(db: &Db, user: &str) -> Result<Vec<IamAccessKeyRecord>> {
    let mut tx = db
        .read(format!("listing the access keys of the IAM user {user:?}"))
        .await?;
    entity_name(&mut tx, IamEntity::User, user).await?;
    let mut sql = Sql::new(SELECT_KEY);
    sql.push(" WHERE k.user_key = ")
        .bind(key(user))
        .push(" ORDER BY k.created_ms, k.access_key_id");
    let rows: Vec<KeyRow> = tx.fetch_all(sql).await?;
    Ok(rows.into_iter().map(key_from_row).collect())
}

pub(super) async fn delete_access_key(db: &Db, user: &str, access_key_id: &str) -> Result<()> {
    let mut tx = db
        .write(format!("deleting an access key of the IAM user {user:?}"))
        .await?;
    entity_name(&mut tx, IamEntity::User, user).await?;
    let deleted = tx
        .execute(sql!(
            "DELETE FROM iam_access_keys WHERE access_key_id = $1 AND user_key = $2",
            access_key_id,
            key(user)
        ))
        .await?;
    if deleted == 0 {
        return Err(not_found("Access key", access_key_id));
    }
    tx.commit().await
}

// ----- inline policies -----

pub(super) async fn put_inline_policy(
    db: &Db,
    entity: IamEntity,
    name: &str,
    policy_name: &str,
    document: &str,
) -> Result<()> {
    let mut tx = db
        .write(format!(
            "putting the inline policy {policy_name:?} on {name:?}"
        ))
        .await?;
    entity_name(&mut tx, entity, name).await?;
    let updated = tx
        .execute(sql!(
            "UPDATE iam_inline_policies SET document = $4 \
             WHERE entity = $1 AND entity_key = $2 AND policy_name = $3",
            entity.column_value(),
            key(name),
            policy_name,
            document
        ))
        .await?;
    if updated == 0 {
        tx.execute(sql!(
            "INSERT INTO iam_inline_policies (entity, entity_key, policy_name, document) \
             VALUES ($1, $2, $3, $4)",
            entity.column_value(),
            key(name),
            policy_name,
            document
        ))
        .await?;
    }
    tx.commit().await
}

pub(super) async fn get_inline_policy(
    db: &Db,
    entity: IamEntity,
    name: &str,
    policy_name: &str,
) -> Result<Option<String>> {
    let mut tx = db
        .read(format!(
            "reading the inline policy {policy_name:?} of {name:?}"
        ))
        .await?;
    entity_name(&mut tx, entity, name).await?;
    let row: Option<(String,)> = tx
        .fetch_optional(sql!(
            "SELECT document FROM iam_inline_policies \
             WHERE entity = $1 AND entity_key = $2 AND policy_name = $3",
            entity.column_value(),
            key(name),
            policy_name
        ))
        .await?;
    Ok(row.map(|(d,)| d))
}

pub(super) async fn list_inline_policies(
    db: &Db,
    entity: IamEntity,
    name: &str,
) -> Result<Vec<String>> {
    let mut tx = db
        .read(format!("listing the inline policies of {name:?}"))
        .await?;
    entity_name(&mut tx, entity, name).await?;
    let rows: Vec<(String,)> = tx
        .fetch_all(sql!(
            "SELECT policy_name FROM iam_inline_policies \
             WHERE entity = $1 AND entity_key = $2 ORDER BY policy_name",
            entity.column_value(),
            key(name)
        ))
        .await?;
    Ok(rows.into_iter().map(|(n,)| n).collect())
}

pub(super) async fn delete_inline_policy(
    db: &Db,
    entity: IamEntity,
    name: &str,
    policy_name: &str,
) -> Result<()> {
    let mut tx = db
        .write(format!(
            "deleting the inline policy {policy_name:?} of {name:?}"
        ))
        .await?;
    entity_name(&mut tx, entity, name).await?;
    let deleted = tx
        .execute(sql!(
            "DELETE FROM iam_inline_policies \
             WHERE entity = $1 AND entity_key = $2 AND policy_name = $3",
            entity.column_value(),
            key(name),
            policy_name
        ))
        .await?;
    if deleted == 0 {
        return Err(not_found(entity.policy_kind(), policy_name));
    }
    tx.commit().await
}
