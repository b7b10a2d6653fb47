//! IoT policies, their versions, and their attachments to targets.

use crate::registry::db::{Db, Sql, Tx, new_generation_id, sql};
use crate::registry::error::RegistryError;
use crate::registry::paging::{self, SortKey};
use crate::registry::records::{
    Page, PageRequest, PolicyRecord, PolicyVersionRecord, RegistryChange,
};
use crate::registry::tags;

type Result<T> = std::result::Result<T, RegistryError>;

/// AWS's limit of versions per policy.
const MAX_VERSIONS: i64 = 5;
/// AWS's limit of policies attached to one target.
const MAX_POLICIES_PER_TARGET: i64 = 10;
const KIND: &str = "Policy";

/// A policy joined with its default version. Callers append `WHERE ...`.
macro_rules! select_policy {
    () => {
        "SELECT p.name, p.default_version_id, v.document, p.created_ms, p.modified_ms, \
         p.generation_id FROM policies p JOIN policy_versions v \
         ON v.policy_name = p.name AND v.version_id = p.default_version_id"
    };
}

type PolicyRow = (String, i64, String, i64, i64, String);

fn from_row(row: PolicyRow) -> PolicyRecord {
    let (name, default_version_id, document, created_ms, modified_ms, generation_id) = row;
    PolicyRecord {
        name,
        default_version_id,
        document,
        created_ms,
        modified_ms,
        generation_id,
    }
}

async fn fetch(tx: &mut Tx<'_>, sql: Sql) -> Result<Vec<PolicyRecord>> {
    let rows: Vec<PolicyRow> = tx.fetch_all(sql).await?;
    Ok(rows.into_iter().map(from_row).collect())
}

async fn fetch_one(tx: &mut Tx<'_>, name: &str) -> Result<Option<PolicyRecord>> {
    Ok(fetch(
        tx,
        sql!(concat!(select_policy!(), " WHERE p.name = $1"), name),
    )
    .await?
    .pop())
}

/// The policy's `(default_version_id, next_version_id)`, or NotFound.
async fn version_ids(tx: &mut Tx<'_>, name: &str) -> Result<(i64, i64)> {
    tx.fetch_optional(sql!(
        "SELECT default_version_id, next_version_id FROM policies WHERE name = $1",
        name
    ))
    .await?
    .ok_or_else(|| not_found(name))
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound {
        kind: KIND,
        id: name.to_owned(),
    }
}

fn version_not_found(name: &str, version_id: i64) -> RegistryError {
    RegistryError::NotFound {
        kind: "Policy version",
        id: format!("{name}:{version_id}"),
    }
}

async fn fetch_version(
    tx: &mut Tx<'_>,
    name: &str,
    version_id: i64,
) -> Result<Option<(String, i64)>> {
    tx.fetch_optional(sql!(
        "SELECT document, created_ms FROM policy_versions \
         WHERE policy_name = $1 AND version_id = $2",
        name,
        version_id
    ))
    .await
}

pub(super) async fn create_policy(
    db: &Db,
    name: &str,
    document: &str,
    now_ms: i64,
) -> Result<PolicyRecord> {
    let mut tx = db.write(format!("creating the policy {name:?}")).await?;
    let taken = tx
        .fetch_i64(sql!("SELECT COUNT(*) FROM policies WHERE name = $1", name))
        .await?;
    if taken > 0 {
        return Err(RegistryError::AlreadyExists {
            kind: KIND,
            id: name.to_owned(),
        });
    }
    let policy = PolicyRecord {
        name: name.to_owned(),
        default_version_id: 1,
        document: document.to_owned(),
        created_ms: now_ms,
        modified_ms: now_ms,
        generation_id: new_generation_id(),
    };
    tx.execute(sql!(
        "INSERT INTO policies (name, default_version_id, next_version_id, created_ms, \
         modified_ms, generation_id) VALUES ($1, 1, 2, $2, $2, $3)",
        name,
        now_ms,
        &policy.generation_id
    ))
    .await?;
    tx.execute(sql!(
        "INSERT INTO policy_versions (policy_name, version_id, document, created_ms) \
         VALUES ($1, 1, $2, $3)",
        name,
        document,
        now_ms
    ))
    .await?;
    tx.emit(RegistryChange::PolicyChanged {
        policy_name: name.to_owned(),
    });
    tx.commit().await?;
    Ok(policy)
}

pub(super) async fn get_policy(db: &Db, name: &str) -> Result<Option<PolicyRecord>> {
    let mut tx = db.read(format!("reading the policy {name:?}")).await?;
    fetch_one(&mut tx, name).await
}

pub(super) async fn list_policies(db: &Db, page: &PageRequest) -> Result<Page<PolicyRecord>> {
    const LIST: &str = "policies";
    let mut sql = Sql::new(concat!(select_policy!(), " WHERE 1 = 1"));
    paging::tail(&mut sql, LIST, SortKey::Text("p.name"), page)?;
    let mut tx = db.read("listing policies").await?;
    let items = fetch(&mut tx, sql).await?;
    Ok(paging::finish(LIST, items, page, |p| vec![p.name.clone()]))
}

pub(super) async fn delete_policy(db: &Db, name: &str) -> Result<()> {
    let mut tx = db.write(format!("deleting the policy {name:?}")).await?;
    version_ids(&mut tx, name).await?;
    let targets = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM policy_attachments WHERE policy_name = $1",
            name
        ))
        .await?;
    if targets > 0 {
        return Err(RegistryError::DeleteConflict(format!(
            "The policy cannot be deleted as the policy is attached to one or more principals \
             (name={name})"
        )));
    }
    let versions = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM policy_versions WHERE policy_name = $1",
            name
        ))
        .await?;
    if versions > 1 {
        return Err(RegistryError::DeleteConflict(format!(
            "Cannot delete the policy because it has one or more policy versions attached to \
             it (name={name}); delete the non-default versions first"
        )));
    }
    tx.execute(sql!(
        "DELETE FROM policy_versions WHERE policy_name = $1",
        name
    ))
    .await?;
    tx.execute(sql!("DELETE FROM policies WHERE name = $1", name))
        .await?;
    tags::delete_tags_of(&mut tx, &format!(":policy/{name}")).await?;
    tx.emit(RegistryChange::PolicyChanged {
        policy_name: name.to_owned(),
    });
    tx.commit().await
}

pub(super) async fn create_policy_version(
    db: &Db,
    name: &str,
    document: &str,
    set_as_default: bool,
    now_ms: i64,
) -> Result<PolicyVersionRecord> {
    let mut tx = db
        .write(format!("creating a version of the policy {name:?}"))
        .await?;
    let (_, version_id) = version_ids(&mut tx, name).await?;
    let versions = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM policy_versions WHERE policy_name = $1",
            name
        ))
        .await?;
    if versions >= MAX_VERSIONS {
        return Err(RegistryError::VersionsLimitExceeded(format!(
            "The policy {name} already has the maximum number of versions ({MAX_VERSIONS}); \
             delete one first"
        )));
    }
    tx.execute(sql!(
        "INSERT INTO policy_versions (policy_name, version_id, document, created_ms) \
         VALUES ($1, $2, $3, $4)",
        name,
        version_id,
        document,
        now_ms
    ))
    .await?;
    tx.execute(sql!(
        "UPDATE policies SET next_version_id = $2 WHERE name = $1",
        name,
        version_id + 1
    ))
    .await?;
    if set_as_default {
        make_default(&mut tx, name, version_id, now_ms).await?;
    }
    tx.commit().await?;
    Ok(PolicyVersionRecord {
        policy_name: name.to_owned(),
        version_id,
        document: document.to_owned(),
        is_default: set_as_default,
        created_ms: now_ms,
    })
}

async fn make_default(tx: &mut Tx<'_>, name: &str, version_id: i64, now_ms: i64) -> Result<()> {
    tx.execute(sql!(
        "UPDATE policies SET default_version_id = $2, modified_ms = $3, generation_id = $4 \
         WHERE name = $1",
        name,
        version_id,
        now_ms,
        new_generation_id()
    ))
    .await?;
    tx.emit(RegistryChange::PolicyChanged {
        policy_name: name.to_owned(),
    });
    Ok(())
}

pub(super) async fn get_policy_version(
    db: &Db,
    name: &str,
    version_id: i64,
) -> Result<Option<PolicyVersionRecord>> {
    let mut tx = db
        .read(format!(
            "reading version {version_id} of the policy {name:?}"
        ))
        .await?;
    let default: Option<(i64,)> = tx
        .fetch_optional(sql!(
            "SELECT default_version_id FROM policies WHERE name = $1",
            name
        ))
        .await?;
    let Some((default_version_id,)) = default else {
        return Ok(None);
    };
    Ok(fetch_version(&mut tx, name, version_id)
        .await?
        .map(|(document, created_ms)| PolicyVersionRecord {
            policy_name: name.to_owned(),
            version_id,
            document,
            is_default: version_id == default_version_id,
            created_ms,
        }))
}

pub(super) async fn list_policy_versions(db: &Db, name: &str) -> Result<Vec<PolicyVersionRecord>> {
    let mut tx = db
        .read(format!("listing the versions of the policy {name:?}"))
        .await?;
    let (default_version_id, _) = version_ids(&mut tx, name).await?;
    let rows: Vec<(i64, String, i64)> = tx
        .fetch_all(sql!(
            "SELECT version_id, document, created_ms FROM policy_versions \
             WHERE policy_name = $1 ORDER BY version_id",
            name
        ))
        .await?;
    Ok(rows
        .into_iter()
        .map(|(version_id, document, created_ms)| PolicyVersionRecord {
            policy_name: name.to_owned(),
            version_id,
            document,
            is_default: version_id == default_version_id,
            created_ms,
        })
        .collect())
}

pub(super) async fn set_default_policy_version(
    db: &Db,
    name: &str,
    version_id: i64,
    now_ms: i64,
) -> Result<()> {
    let mut tx = db
        .write(format!(
            "setting the default version of the policy {name:?} to {version_id}"
        ))
        .await?;
    let (default_version_id, _) = version_ids(&mut tx, name).await?;
    if fetch_version(&mut tx, name, version_id).await?.is_none() {
        return Err(version_not_found(name, version_id));
    }
    if default_version_id == version_id {
        return Ok(());
    }
    make_default(&mut tx, name, version_id, now_ms).await?;
    tx.commit().await
}

pub(super) async fn delete_policy_version(db: &Db, name: &str, version_id: i64) -> Result<()> {
    let mut tx = db
        .write(format!(
            "deleting version {version_id} of the policy {name:?}"
        ))
        .await?;
    let (default_version_id, _) = version_ids(&mut tx, name).await?;
    if fetch_version(&mut tx, name, version_id).await?.is_none() {
        return Err(version_not_found(name, version_id));
    }
    if default_version_id == version_id {
        return Err(RegistryError::DeleteConflict(format!(
            "Cannot delete the default version {version_id} of the policy {name}; make \
             another version the default first"
        )));
    }
    tx.execute(sql!(
        "DELETE FROM policy_versions WHERE policy_name = $1 AND version_id = $2",
        name,
        version_id
    ))
    .await?;
    tx.commit().await
}

pub(super) async fn attach_policy(db: &Db, name: &str, target: &str) -> Result<()> {
    let mut tx = db
        .write(format!("attaching the policy {name:?} to {target:?}"))
        .await?;
    version_ids(&mut tx, name).await?;
    let attached = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM policy_attachments WHERE policy_name = $1 AND target = $2",
            name,
            target
        ))
        .await?;
    if attached > 0 {
        return Ok(());
    }
    let on_target = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM policy_attachments WHERE target = $1",
            target
        ))
        .await?;
    if on_target >= MAX_POLICIES_PER_TARGET {
        return Err(RegistryError::LimitExceeded(format!(
            "At most {MAX_POLICIES_PER_TARGET} policies can be attached to {target}; detach \
             one first"
        )));
    }
    tx.execute(sql!(
        "INSERT INTO policy_attachments (policy_name, target) VALUES ($1, $2)",
        name,
        target
    ))
    .await?;
    tx.emit(RegistryChange::PolicyAttachmentChanged {
        policy_name: name.to_owned(),
        target: target.to_owned(),
    });
    tx.commit().await
}

pub(super) async fn detach_policy(db: &Db, name: &str, target: &str) -> Result<()> {
    let mut tx = db
        .write(format!("detaching the policy {name:?} from {target:?}"))
        .await?;
    version_ids(&mut tx, name).await?;
    let detached = tx
        .execute(sql!(
            "DELETE FROM policy_attachments WHERE policy_name = $1 AND target = $2",
            name,
            target
        ))
        .await?;
    if detached == 0 {
        return Ok(());
    }
    tx.emit(RegistryChange::PolicyAttachmentChanged {
        policy_name: name.to_owned(),
        target: target.to_owned(),
    });
    tx.commit().await
}

pub(super) async fn list_attached_policies(
    db: &Db,
    target: &str,
    page: &PageRequest,
) -> Result<Page<PolicyRecord>> {
    const LIST: &str = "attached-policies";
    let mut sql = Sql::new(concat!(
        select_policy!(),
        " JOIN policy_attachments a ON a.policy_name = p.name WHERE a.target = "
    ));
    sql.bind(target);
    paging::tail(&mut sql, LIST, SortKey::Text("p.name"), page)?;
    let mut tx = db
        .read(format!("listing the policies attached to {target:?}"))
        .await?;
    let items = fetch(&mut tx, sql).await?;
    Ok(paging::finish(LIST, items, page, |p| vec![p.name.clone()]))
}

pub(super) async fn list_policy_targets(
    db: &Db,
    name: &str,
    page: &PageRequest,
) -> Result<Page<String>> {
    const LIST: &str = "policy-targets";
    let mut sql = Sql::new("SELECT target FROM policy_attachments WHERE policy_name = ");
    sql.bind(name);
    paging::tail(&mut sql, LIST, SortKey::Text("target"), page)?;
    let mut tx = db
        .read(format!("listing the targets of the policy {name:?}"))
        .await?;
    version_ids(&mut tx, name).await?;
    let rows: Vec<(String,)> = tx.fetch_all(sql).await?;
    let items = rows.into_iter().map(|(t,)| t).collect();
    Ok(paging::finish(LIST, items, page, |t: &String| {
        vec![t.clone()]
    }))
}

pub(super) async fn policies_for_target(db: &Db, target: &str) -> Result<Vec<PolicyRecord>> {
    let mut tx = db
        .read_one(format!("reading the policies attached to {target:?}"))
        .await?;
    fetch(
        &mut tx,
        sql!(
            concat!(
                select_policy!(),
                " JOIN policy_attachments a ON a.policy_name = p.name WHERE a.target = $1 \
                 ORDER BY p.name"
            ),
            target
        ),
    )
    .await
}
