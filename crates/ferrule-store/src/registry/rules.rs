//! Topic rules: stored whole, listed by name, filtered by their FROM topic filter and
//! whether they are disabled.

use crate::registry::db::{Db, Sql, Tx, sql};
use crate::registry::error::RegistryError;
use crate::registry::paging::{self, SortKey};
use crate::registry::records::{Page, PageRequest, RegistryChange, RuleRecord};
use crate::registry::tags;

type Result<T> = std::result::Result<T, RegistryError>;

const KIND: &str = "Rule";

/// Callers append `WHERE ...`.
const SELECT_RULE: &str =
    "SELECT name, topic_pattern, payload, disabled, created_ms FROM topic_rules";

type RuleRow = (String, String, String, bool, i64);

fn from_row(row: RuleRow) -> RuleRecord {
    let (name, topic_pattern, payload, disabled, created_ms) = row;
    RuleRecord {
        name,
        topic_pattern,
        payload,
        disabled,
        created_ms,
    }
}

async fn fetch_one(tx: &mut Tx<'_>, name: &str) -> Result<Option<RuleRecord>> {
    let mut sql = Sql::new(SELECT_RULE);
    sql.push(" WHERE name = ").bind(name);
    let row: Option<RuleRow> = tx.fetch_optional(sql).await?;
    Ok(row.map(from_row))
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound {
        kind: KIND,
        id: name.to_owned(),
    }
}

fn changed(name: &str) -> RegistryChange {
    RegistryChange::RuleChanged {
        rule_name: name.to_owned(),
    }
}

pub(super) async fn create_rule(db: &Db, rule: &RuleRecord) -> Result<()> {
    let name = rule.name.as_str();
    let mut tx = db.write(format!("creating the rule {name:?}")).await?;
    if fetch_one(&mut tx, name).await?.is_some() {
        return Err(RegistryError::AlreadyExists {
            kind: KIND,
            id: name.to_owned(),
        });
    }
    tx.execute(sql!(
        "INSERT INTO topic_rules (name, topic_pattern, payload, disabled, created_ms) \
         VALUES ($1, $2, $3, $4, $5)",
        name,
        &rule.topic_pattern,
        &rule.payload,
        rule.disabled,
        rule.created_ms
    ))
    .await?;
    tx.emit(changed(name));
    tx.commit().await
}

pub(super) async fn get_rule(db: &Db, name: &str) -> Result<Option<RuleRecord>> {
    let mut tx = db.read(format!("reading the rule {name:?}")).await?;
    fetch_one(&mut tx, name).await
}

pub(super) async fn list_rules(
    db: &Db,
    topic_pattern: Option<&str>,
    disabled: Option<bool>,
    page: &PageRequest,
) -> Result<Page<RuleRecord>> {
    const LIST: &str = "rules";
    let mut sql = Sql::new(SELECT_RULE);
    sql.push(" WHERE 1 = 1");
    if let Some(topic_pattern) = topic_pattern {
        sql.push(" AND topic_pattern = ").bind(topic_pattern);
    }
    if let Some(disabled) = disabled {
        sql.push(" AND disabled = ").bind(disabled);
    }
    paging::tail(&mut sql, LIST, SortKey::Text("name"), page)?;
    let mut tx = db.read("listing rules").await?;
    let rows: Vec<RuleRow> = tx.fetch_all(sql).await?;
    let items = rows.into_iter().map(from_row).collect();
    Ok(paging::finish(LIST, items, page, |r| vec![r.name.clone()]))
}

pub(super) async fn replace_rule(db: &Db, rule: &RuleRecord) -> Result<RuleRecord> {
    let name = rule.name.as_str();
    let mut tx = db.write(format!("replacing the rule {name:?}")).await?;
    let current = fetch_one(&mut tx, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    tx.execute(sql!(
        "UPDATE topic_rules SET topic_pattern = $2, payload = $3, disabled = $4 WHERE name = $1",
        name,
        &rule.topic_pattern,
        &rule.payload,
        rule.disabled
    ))
    .await?;
    tx.emit(changed(name));
    tx.commit().await?;
    Ok(RuleRecord {
        created_ms: current.created_ms,
        ..rule.clone()
    })
}

pub(super) async fn set_rule_disabled(db: &Db, name: &str, disabled: bool) -> Result<()> {
    let verb = if disabled { "disabling" } else { "enabling" };
    let mut tx = db.write(format!("{verb} the rule {name:?}")).await?;
    let current = fetch_one(&mut tx, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    if current.disabled == disabled {
        // Nothing changes, so nothing is announced; dropping the transaction ends it.
        return Ok(());
    }
    tx.execute(sql!(
        "UPDATE topic_rules SET disabled = $2 WHERE name = $1",
        name,
        disabled
    ))
    .await?;
    tx.emit(changed(name));
    tx.commit().await
}

pub(super) async fn delete_rule(db: &Db, name: &str) -> Result<()> {
    let mut tx = db.write(format!("deleting the rule {name:?}")).await?;
    let deleted = tx
        .execute(sql!("DELETE FROM topic_rules WHERE name = $1", name))
        .await?;
    if deleted == 0 {
        return Err(not_found(name));
    }
    tags::delete_tags_of(&mut tx, &format!(":rule/{name}")).await?;
    tx.emit(changed(name));
    tx.commit().await
}
