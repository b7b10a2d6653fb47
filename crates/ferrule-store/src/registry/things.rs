//! Things, their attributes, and the principals attached to them.

use std::collections::BTreeMap;

use crate::registry::db::{Db, Sql, Tx, sql};
use crate::registry::error::RegistryError;
use crate::registry::paging::{self, SortKey};
use crate::registry::records::{Page, PageRequest, RegistryChange, ThingRecord};
use crate::registry::tags;

type Result<T> = std::result::Result<T, RegistryError>;

const KIND: &str = "Thing";
/// How many things' attributes one query loads.
const ATTRIBUTE_BATCH: usize = 32;

macro_rules! select_thing {
    () => {
        "SELECT t.name, t.thing_id, t.thing_type_name, t.version, t.billing_group_name, \
         t.created_ms FROM things t"
    };
}

type ThingRow = (String, String, Option<String>, i64, Option<String>, i64);

/// Decodes thing rows and loads their attributes (one query per 32 things).
async fn fetch(tx: &mut Tx<'_>, sql: Sql) -> Result<Vec<ThingRecord>> {
    let rows: Vec<ThingRow> = tx.fetch_all(sql).await?;
    let mut by_thing: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for chunk in rows.chunks(ATTRIBUTE_BATCH) {
        let mut attributes =
            Sql::new("SELECT thing_name, key, value FROM thing_attributes WHERE thing_name IN (");
        // Always ATTRIBUTE_BATCH placeholders (a short chunk repeats its last name), so the
        // statement text, and with it the prepared statement each connection caches, is one.
        for i in 0..ATTRIBUTE_BATCH {
            if i > 0 {
                attributes.push(", ");
            }
            let row = chunk.get(i).or(chunk.last());
            attributes.bind(row.map_or("", |row| row.0.as_str()));
        }
        attributes.push(")");
        let attribute_rows: Vec<(String, String, String)> = tx.fetch_all(attributes).await?;
        for (thing, key, value) in attribute_rows {
            by_thing.entry(thing).or_default().insert(key, value);
        }
    }
    Ok(rows
        .into_iter()
        .map(
            |(name, thing_id, thing_type_name, version, billing_group_name, created_ms)| {
                ThingRecord {
                    attributes: by_thing.remove(&name).unwrap_or_default(),
                    name,
                    thing_id,
                    thing_type_name,
                    version,
                    billing_group_name,
                    created_ms,
                }
            },
        )
        .collect())
}

async fn fetch_one(tx: &mut Tx<'_>, name: &str) -> Result<Option<ThingRecord>> {
    Ok(fetch(
        tx,
        sql!(concat!(select_thing!(), " WHERE t.name = $1"), name),
    )
    .await?
    .pop())
}

fn not_found(name: &str) -> RegistryError {
    RegistryError::NotFound {
        kind: KIND,
        id: name.to_owned(),
    }
}

async fn require_thing(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let found = tx
        .fetch_i64(sql!("SELECT COUNT(*) FROM things WHERE name = $1", name))
        .await?;
    if found == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

fn check_version(thing: &ThingRecord, expected_version: Option<i64>) -> Result<()> {
    match expected_version {
        Some(expected) if expected != thing.version => {
            Err(RegistryError::VersionConflict(format!(
                "The version for thing {} does not match the expected version (expected {}, \
                 current {})",
                thing.name, expected, thing.version
            )))
        }
        _ => Ok(()),
    }
}

async fn insert_attribute(tx: &mut Tx<'_>, thing: &str, key: &str, value: &str) -> Result<()> {
    tx.execute(sql!(
        "INSERT INTO thing_attributes (thing_name, key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (thing_name, key) DO UPDATE SET value = excluded.value",
        thing,
        key,
        value
    ))
    .await?;
    Ok(())
}

pub(super) async fn create_thing(db: &Db, thing: &ThingRecord) -> Result<ThingRecord> {
    let name = thing.name.as_str();
    let mut tx = db.write(format!("creating the thing {name:?}")).await?;
    if let Some(existing) = fetch_one(&mut tx, name).await? {
        let same = existing.thing_type_name == thing.thing_type_name
            && existing.attributes == thing.attributes
            && existing.billing_group_name == thing.billing_group_name;
        if same {
            return Ok(existing);
        }
        return Err(RegistryError::AlreadyExists {
            kind: KIND,
            id: name.to_owned(),
        });
    }
    tx.execute(sql!(
        "INSERT INTO things (name, thing_id, thing_type_name, version, billing_group_name, \
         created_ms) VALUES ($1, $2, $3, 1, $4, $5)",
        name,
        &thing.thing_id,
        thing.thing_type_name.as_deref(),
        thing.billing_group_name.as_deref(),
        thing.created_ms
    ))
    .await?;
    for (key, value) in &thing.attributes {
        insert_attribute(&mut tx, name, key, value).await?;
    }
    tx.emit(RegistryChange::ThingChanged {
        thing_name: name.to_owned(),
    });
    tx.commit().await?;
    Ok(ThingRecord {
        version: 1,
        ..thing.clone()
    })
}

pub(super) async fn get_thing(db: &Db, name: &str) -> Result<Option<ThingRecord>> {
    let mut tx = db.read_one(format!("reading the thing {name:?}")).await?;
    fetch_one(&mut tx, name).await
}

pub(super) async fn update_thing(
    db: &Db,
    name: &str,
    thing_type_name: Option<Option<String>>,
    attributes: Option<BTreeMap<String, String>>,
    merge: bool,
    expected_version: Option<i64>,
) -> Result<ThingRecord> {
    let mut tx = db.write(format!("updating the thing {name:?}")).await?;
    let mut thing = fetch_one(&mut tx, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    check_version(&thing, expected_version)?;
    if let Some(thing_type_name) = thing_type_name {
        thing.thing_type_name = thing_type_name;
    }
    if let Some(attributes) = attributes {
        if !merge {
            tx.execute(sql!(
                "DELETE FROM thing_attributes WHERE thing_name = $1",
                name
            ))
            .await?;
            thing.attributes.clear();
        }
        for (key, value) in attributes {
            if merge && value.is_empty() {
                tx.execute(sql!(
                    "DELETE FROM thing_attributes WHERE thing_name = $1 AND key = $2",
                    name,
                    &key
                ))
                .await?;
                thing.attributes.remove(&key);
            } else {
                insert_attribute(&mut tx, name, &key, &value).await?;
                thing.attributes.insert(key, value);
            }
        }
    }
    thing.version += 1;
    tx.execute(sql!(
        "UPDATE things SET thing_type_name = $2, version = $3 WHERE name = $1",
        name,
        thing.thing_type_name.as_deref(),
        thing.version
    ))
    .await?;
    tx.emit(RegistryChange::ThingChanged {
        thing_name: name.to_owned(),
    });
    tx.commit().await?;
    Ok(thing)
}

pub(super) async fn delete_thing(db: &Db, name: &str, expected_version: Option<i64>) -> Result<()> {
    let mut tx = db.write(format!("deleting the thing {name:?}")).await?;
    let Some(thing) = fetch_one(&mut tx, name).await? else {
        return Ok(());
    };
    check_version(&thing, expected_version)?;
    let principals: Vec<(String,)> = tx
        .fetch_all(sql!(
            "SELECT principal FROM thing_principals WHERE thing_name = $1 ORDER BY principal",
            name
        ))
        .await?;
    tx.execute(sql!(
        "DELETE FROM thing_principals WHERE thing_name = $1",
        name
    ))
    .await?;
    tx.execute(sql!(
        "DELETE FROM thing_attributes WHERE thing_name = $1",
        name
    ))
    .await?;
    tx.execute(sql!("DELETE FROM things WHERE name = $1", name))
        .await?;
    tags::delete_tags_of(&mut tx, &format!(":thing/{name}")).await?;
    for (principal,) in principals {
        tx.emit(RegistryChange::ThingPrincipalChanged {
            thing_name: name.to_owned(),
            principal,
        });
    }
    tx.emit(RegistryChange::ThingChanged {
        thing_name: name.to_owned(),
    });
    tx.commit().await
}

pub(super) async fn list_things(
    db: &Db,
    attribute: Option<(String, String)>,
    thing_type_name: Option<String>,
    page: &PageRequest,
) -> Result<Page<ThingRecord>> {
    const LIST: &str = "things";
    let mut sql = Sql::new(concat!(select_thing!(), " WHERE 1 = 1"));
    if let Some(thing_type_name) = thing_type_name {
        sql.push(" AND t.thing_type_name = ").bind(thing_type_name);
    }
    if let Some((key, value)) = attribute {
        sql.push(
            " AND EXISTS (SELECT 1 FROM thing_attributes a WHERE a.thing_name = t.name \
             AND a.key = ",
        )
        .bind(key)
        .push(" AND a.value = ")
        .bind(value)
        .push(")");
    }
    paging::tail(&mut sql, LIST, SortKey::Text("t.name"), page)?;
    let mut tx = db.read("listing things").await?;
    let items = fetch(&mut tx, sql).await?;
    Ok(paging::finish(LIST, items, page, |t| vec![t.name.clone()]))
}

pub(super) async fn attach_thing_principal(
    db: &Db,
    thing: &str,
    principal: &str,
    exclusive: bool,
) -> Result<()> {
    let mut tx = db
        .write(format!("attaching {principal:?} to the thing {thing:?}"))
        .await?;
    require_thing(&mut tx, thing).await?;
    let others: Vec<(String, bool)> = tx
        .fetch_all(sql!(
            "SELECT thing_name, exclusive FROM thing_principals \
             WHERE principal = $1 AND thing_name <> $2 ORDER BY thing_name",
            principal,
            thing
        ))
        .await?;
    if let Some((other, _)) = others.iter().find(|(_, exclusive)| *exclusive) {
        return Err(RegistryError::InvalidRequest(format!(
            "The principal {principal} is attached exclusively to the thing {other}"
        )));
    }
    if let (true, Some((other, _))) = (exclusive, others.first()) {
        return Err(RegistryError::InvalidRequest(format!(
            "The principal {principal} cannot be attached exclusively to the thing {thing}: \
             it is attached to the thing {other}"
        )));
    }
    let current: Option<(bool,)> = tx
        .fetch_optional(sql!(
            "SELECT exclusive FROM thing_principals WHERE thing_name = $1 AND principal = $2",
            thing,
            principal
        ))
        .await?;
    match current {
        Some((was_exclusive,)) => {
            if exclusive && !was_exclusive {
                tx.execute(sql!(
                    "UPDATE thing_principals SET exclusive = $3 \
                     WHERE thing_name = $1 AND principal = $2",
                    thing,
                    principal,
                    true
                ))
                .await?;
            }
        }
        None => {
            tx.execute(sql!(
                "INSERT INTO thing_principals (thing_name, principal, exclusive) \
                 VALUES ($1, $2, $3)",
                thing,
                principal,
                exclusive
            ))
            .await?;
            tx.emit(RegistryChange::ThingPrincipalChanged {
                thing_name: thing.to_owned(),
                principal: principal.to_owned(),
            });
        }
    }
    tx.commit().await
}

pub(super) async fn detach_thing_principal(db: &Db, thing: &str, principal: &str) -> Result<()> {
    let mut tx = db
        .write(format!("detaching {principal:?} from the thing {thing:?}"))
        .await?;
    require_thing(&mut tx, thing).await?;
    let detached = tx
        .execute(sql!(
            "DELETE FROM thing_principals WHERE thing_name = $1 AND principal = $2",
            thing,
            principal
        ))
        .await?;
    if detached > 0 {
        tx.emit(RegistryChange::ThingPrincipalChanged {
            thing_name: thing.to_owned(),
            principal: principal.to_owned(),
        });
    }
    tx.commit().await
}

pub(super) async fn list_thing_principals(
    db: &Db,
    thing: &str,
    page: &PageRequest,
) -> Result<Page<String>> {
    const LIST: &str = "thing-principals";
    let mut sql = Sql::new("SELECT principal FROM thing_principals WHERE thing_name = ");
    sql.bind(thing);
    paging::tail(&mut sql, LIST, SortKey::Text("principal"), page)?;
    let mut tx = db
        .read(format!("listing the principals of the thing {thing:?}"))
        .await?;
    require_thing(&mut tx, thing).await?;
    let rows: Vec<(String,)> = tx.fetch_all(sql).await?;
    let items = rows.into_iter().map(|(p,)| p).collect();
    Ok(paging::finish(LIST, items, page, |p: &String| {
        vec![p.clone()]
    }))
}

pub(super) async fn list_principal_things(
    db: &Db,
    principal: &str,
    page: &PageRequest,
) -> Result<Page<String>> {
    const LIST: &str = "principal-things";
    let mut sql = Sql::new("SELECT thing_name FROM thing_principals WHERE principal = ");
    sql.bind(principal);
    paging::tail(&mut sql, LIST, SortKey::Text("thing_name"), page)?;
    let mut tx = db
        .read_one(format!("listing the things of {principal:?}"))
        .await?;
    let rows: Vec<(String,)> = tx.fetch_all(sql).await?;
    let items = rows.into_iter().map(|(t,)| t).collect();
    Ok(paging::finish(LIST, items, page, |t: &String| {
        vec![t.clone()]
    }))
}
