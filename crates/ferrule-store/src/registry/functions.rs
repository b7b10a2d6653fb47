//! Lambda functions: their configuration, their code zip, and their resource-policy
//! statements (permissions).
//!
//! The configuration and the zip are stored apart, so reading and listing configurations
//! never loads code. Names are case-sensitive, as in Lambda. The environment is stored as a
//! JSON object of strings. Creating, updating and deleting a function announce
//! [`RegistryChange::FunctionChanged`] (whoever runs functions reloads it, or finds it gone);
//! permissions announce nothing: they are read when a request is authorized.

use std::collections::BTreeMap;

use crate::registry::db::{Db, Sql, Tx, sql};
use crate::registry::error::RegistryError;
use crate::registry::paging::{self, SortKey};
use crate::registry::records::{Page, PageRequest, RegistryChange};

type Result<T> = std::result::Result<T, RegistryError>;

const KIND: &str = "Function";
const PERMISSION_KIND: &str = "Permission";

/// A Lambda function's configuration. Its code zip is stored beside it and fetched
/// separately ([`Registry::get_function_code`](crate::Registry::get_function_code)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRecord {
    /// The function name, unique (case-sensitive).
    pub name: String,
    /// The runtime, e.g. `python3.12`.
    pub runtime: String,
    /// The handler, `module.function`.
    pub handler: String,
    /// The execution role's ARN, as given.
    pub role: String,
    /// The description (empty if none was given).
    pub description: String,
    /// How long one invocation may run, in seconds.
    pub timeout_s: i64,
    /// The memory size, in MB.
    pub memory_mb: i64,
    /// The environment variables.
    pub environment: BTreeMap<String, String>,
    /// Base64 of the zip's SHA-256 (Lambda's `CodeSha256`), computed by the caller.
    pub code_sha256: String,
    /// The zip's size in bytes. The registry stores the length of the zip it was given,
    /// whatever this says on create.
    pub code_size: i64,
    /// Changes on every update; a UUID chosen by the caller.
    pub revision_id: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Time of the last update (of code or configuration), milliseconds since the Unix epoch.
    pub last_modified_ms: i64,
}

/// Callers append `WHERE ...`.
const SELECT_FUNCTION: &str = "SELECT name, runtime, handler, role, description, timeout_s, \
     memory_mb, environment, code_sha256, code_size, revision_id, created_ms, last_modified_ms \
     FROM functions";

/// The columns of [`SELECT_FUNCTION`], in order.
type FunctionRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    i64,
    String,
    i64,
    i64,
);

fn from_row(tx: &Tx<'_>, row: FunctionRow) -> Result<FunctionRecord> {
    let (
        name,
        runtime,
        handler,
        role,
        description,
        timeout_s,
        memory_mb,
        environment,
        code_sha256,
        code_size,
        revision_id,
        created_ms,
        last_modified_ms,
    ) = row;
    let environment = decode_environment(&environment).map_err(|e| {
        tx.corrupt(format!(
            "the environment of the function {name:?} is not a JSON object of strings: {e}"
        ))
    })?;
    Ok(FunctionRecord {
        name,
        runtime,
        handler,
        role,
        description,
        timeout_s,
        memory_mb,
        environment,
        code_sha256,
        code_size,
        revision_id,
        created_ms,
        last_modified_ms,
    })
}

fn encode_environment(environment: &BTreeMap<String, String>) -> Result<String> {
    serde_json::to_string(environment).map_err(|e| {
        // A map of strings always serialises; this is here so nothing can panic.
        RegistryError::InvalidRequest(format!("the environment cannot be stored: {e}"))
    })
}

fn decode_environment(text: &str) -> serde_json::Result<BTreeMap<String, String>> {
    serde_json::from_str(text)
}

fn zip_len(code_zip: &[u8]) -> Result<i64> {
    i64::try_from(code_zip.len())
        .map_err(|_| RegistryError::InvalidRequest("the code zip is too large".to_owned()))
}

async fn fetch_one(tx: &mut Tx<'_>, name: &str) -> Result<Option<FunctionRecord>> {
    let mut sql = Sql::new(SELECT_FUNCTION);
    sql.push(" WHERE name = ").bind(name);
    let row: Option<FunctionRow> = tx.fetch_optional(sql).await?;
    row.map(|row| from_row(tx, row)).transpose()
}

/// The stored function, or [`RegistryError::NotFound`].
async fn existing(tx: &mut Tx<'_>, name: &str) -> Result<FunctionRecord> {
    fetch_one(tx, name).await?.ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound {
        kind: KIND,
        id: name.to_owned(),
    }
}

fn changed(name: &str) -> RegistryChange {
    RegistryChange::FunctionChanged {
        function_name: name.to_owned(),
    }
}

pub(super) async fn create_function(db: &Db, f: &FunctionRecord, code_zip: &[u8]) -> Result<()> {
    let name = f.name.as_str();
    let environment = encode_environment(&f.environment)?;
    let code_size = zip_len(code_zip)?;
    let mut tx = db.write(format!("creating the function {name:?}")).await?;
    if fetch_one(&mut tx, name).await?.is_some() {
        return Err(RegistryError::AlreadyExists {
            kind: KIND,
            id: name.to_owned(),
        });
    }
    tx.execute(sql!(
        "INSERT INTO functions (name, runtime, handler, role, description, timeout_s, \
         memory_mb, environment, code_sha256, code_size, revision_id, created_ms, \
         last_modified_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        name,
        &f.runtime,
        &f.handler,
        &f.role,
        &f.description,
        f.timeout_s,
        f.memory_mb,
        environment,
        &f.code_sha256,
        code_size,
        &f.revision_id,
        f.created_ms,
        f.last_modified_ms
    ))
    .await?;
    tx.execute(sql!(
        "INSERT INTO function_code (function_name, zip) VALUES ($1, $2)",
        name,
        code_zip
    ))
    .await?;
    tx.emit(changed(name));
    tx.commit().await
}

pub(super) async fn get_function(db: &Db, name: &str) -> Result<Option<FunctionRecord>> {
    let mut tx = db.read(format!("reading the function {name:?}")).await?;
    fetch_one(&mut tx, name).await
}

pub(super) async fn get_function_code(db: &Db, name: &str) -> Result<Option<Vec<u8>>> {
    let mut tx = db
        .read(format!("reading the code of the function {name:?}"))
        .await?;
    let row: Option<(Vec<u8>,)> = tx
        .fetch_optional(sql!(
            "SELECT zip FROM function_code WHERE function_name = $1",
            name
        ))
        .await?;
    Ok(row.map(|(zip,)| zip))
}

pub(super) async fn list_functions(db: &Db, page: &PageRequest) -> Result<Page<FunctionRecord>> {
    const LIST: &str = "functions";
    let mut sql = Sql::new(SELECT_FUNCTION);
    sql.push(" WHERE 1 = 1");
    paging::tail(&mut sql, LIST, SortKey::Text("name"), page)?;
    let mut tx = db.read("listing functions").await?;
    let rows: Vec<FunctionRow> = tx.fetch_all(sql).await?;
    let items = rows
        .into_iter()
        .map(|row| from_row(&tx, row))
        .collect::<Result<Vec<_>>>()?;
    Ok(paging::finish(LIST, items, page, |f| vec![f.name.clone()]))
}

pub(super) async fn update_function_code(
    db: &Db,
    name: &str,
    code_zip: &[u8],
    code_sha256: &str,
    revision_id: &str,
    now_ms: i64,
) -> Result<FunctionRecord> {
    let code_size = zip_len(code_zip)?;
    let mut tx = db
        .write(format!("updating the code of the function {name:?}"))
        .await?;
    let current = existing(&mut tx, name).await?;
    tx.execute(sql!(
        "UPDATE functions SET code_sha256 = $2, code_size = $3, revision_id = $4, \
         last_modified_ms = $5 WHERE name = $1",
        name,
        code_sha256,
        code_size,
        revision_id,
        now_ms
    ))
    .await?;
    tx.execute(sql!(
        "UPDATE function_code SET zip = $2 WHERE function_name = $1",
        name,
        code_zip
    ))
    .await?;
    tx.emit(changed(name));
    tx.commit().await?;
    Ok(FunctionRecord {
        code_sha256: code_sha256.to_owned(),
        code_size,
        revision_id: revision_id.to_owned(),
        last_modified_ms: now_ms,
        ..current
    })
}

pub(super) async fn update_function_configuration(
    db: &Db,
    f: &FunctionRecord,
) -> Result<FunctionRecord> {
    let name = f.name.as_str();
    let environment = encode_environment(&f.environment)?;
    let mut tx = db
        .write(format!(
            "updating the configuration of the function {name:?}"
        ))
        .await?;
    let current = existing(&mut tx, name).await?;
    tx.execute(sql!(
        "UPDATE functions SET runtime = $2, handler = $3, role = $4, description = $5, \
         timeout_s = $6, memory_mb = $7, environment = $8, revision_id = $9, \
         last_modified_ms = $10 WHERE name = $1",
        name,
        &f.runtime,
        &f.handler,
        &f.role,
        &f.description,
        f.timeout_s,
        f.memory_mb,
        environment,
        &f.revision_id,
        f.last_modified_ms
    ))
    .await?;
    tx.emit(changed(name));
    tx.commit().await?;
    Ok(FunctionRecord {
        code_sha256: current.code_sha256,
        code_size: current.code_size,
        created_ms: current.created_ms,
        ..f.clone()
    })
}

pub(super) async fn delete_function(db: &Db, name: &str) -> Result<()> {
    let mut tx = db.write(format!("deleting the function {name:?}")).await?;
    let deleted = tx
        .execute(sql!("DELETE FROM functions WHERE name = $1", name))
        .await?;
    if deleted == 0 {
        return Err(not_found(name));
    }
    tx.execute(sql!(
        "DELETE FROM function_code WHERE function_name = $1",
        name
    ))
    .await?;
    tx.execute(sql!(
        "DELETE FROM function_permissions WHERE function_name = $1",
        name
    ))
    .await?;
    tx.emit(changed(name));
    tx.commit().await
}

// ----- permissions -----

pub(super) async fn add_function_permission(
    db: &Db,
    name: &str,
    sid: &str,
    statement_json: &str,
) -> Result<()> {
    let mut tx = db
        .write(format!(
            "adding the permission {sid:?} to the function {name:?}"
        ))
        .await?;
    existing(&mut tx, name).await?;
    let taken = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM function_permissions WHERE function_name = $1 AND sid = $2",
            name,
            sid
        ))
        .await?;
    if taken > 0 {
        return Err(RegistryError::AlreadyExists {
            kind: PERMISSION_KIND,
            id: sid.to_owned(),
        });
    }
    let last = tx
        .fetch_i64(sql!(
            "SELECT COALESCE(MAX(position), 0) FROM function_permissions \
             WHERE function_name = $1",
            name
        ))
        .await?;
    tx.execute(sql!(
        "INSERT INTO function_permissions (function_name, sid, statement, position) \
         VALUES ($1, $2, $3, $4)",
        name,
        sid,
        statement_json,
        last.saturating_add(1)
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn remove_function_permission(db: &Db, name: &str, sid: &str) -> Result<()> {
    let mut tx = db
        .write(format!(
            "removing the permission {sid:?} from the function {name:?}"
        ))
        .await?;
    existing(&mut tx, name).await?;
    let deleted = tx
        .execute(sql!(
            "DELETE FROM function_permissions WHERE function_name = $1 AND sid = $2",
            name,
            sid
        ))
        .await?;
    if deleted == 0 {
        return Err(RegistryError::NotFound {
            kind: PERMISSION_KIND,
            id: sid.to_owned(),
        });
    }
    tx.commit().await
}

pub(super) async fn list_function_permissions(
    db: &Db,
    name: &str,
) -> Result<Vec<(String, String)>> {
    let mut tx = db
        .read(format!("listing the permissions of the function {name:?}"))
        .await?;
    existing(&mut tx, name).await?;
    tx.fetch_all(sql!(
        "SELECT sid, statement FROM function_permissions WHERE function_name = $1 \
         ORDER BY position",
        name
    ))
    .await
}
