//! CA certificates.

use crate::registry::db::{Db, Sql, Tx, new_generation_id, sql};
use crate::registry::error::RegistryError;
use crate::registry::paging::{self, SortKey};
use crate::registry::records::{
    AutoRegistrationStatus, CaRecord, CaStatus, Page, PageRequest, RegistryChange,
};
use crate::registry::{parse_column, tags};

type Result<T> = std::result::Result<T, RegistryError>;

/// AWS's limit of registered CAs sharing one subject.
const MAX_CAS_PER_SUBJECT: i64 = 10;
const KIND: &str = "CA certificate";

macro_rules! select_ca {
    () => {
        "SELECT id, pem, subject_der, status, auto_registration, mode, registration_config, \
         owned_by, created_ms, modified_ms, customer_version, generation_id, not_before_ms, \
         not_after_ms FROM ca_certificates"
    };
}

type CaRow = (
    String,
    String,
    Vec<u8>,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
);

fn from_row(tx: &Tx<'_>, row: CaRow) -> Result<CaRecord> {
    let (
        id,
        pem,
        subject_der,
        status,
        auto_registration,
        mode,
        registration_config,
        owned_by,
        created_ms,
        modified_ms,
        customer_version,
        generation_id,
        not_before_ms,
        not_after_ms,
    ) = row;
    let column = |name: &str| format!("ca_certificates.{name} of {id:?}");
    Ok(CaRecord {
        status: parse_column(tx, &status, || column("status"))?,
        auto_registration: parse_column(tx, &auto_registration, || column("auto_registration"))?,
        mode: parse_column(tx, &mode, || column("mode"))?,
        id,
        pem,
        subject_der,
        registration_config,
        owned_by,
        created_ms,
        modified_ms,
        customer_version,
        generation_id,
        not_before_ms,
        not_after_ms,
    })
}

async fn fetch(tx: &mut Tx<'_>, sql: Sql) -> Result<Vec<CaRecord>> {
    let rows: Vec<CaRow> = tx.fetch_all(sql).await?;
    rows.into_iter().map(|row| from_row(tx, row)).collect()
}

async fn fetch_one(tx: &mut Tx<'_>, id: &str) -> Result<Option<CaRecord>> {
    Ok(fetch(tx, sql!(concat!(select_ca!(), " WHERE id = $1"), id))
        .await?
        .pop())
}

async fn fetch_existing(tx: &mut Tx<'_>, id: &str) -> Result<CaRecord> {
    fetch_one(tx, id)
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            kind: KIND,
            id: id.to_owned(),
        })
}

pub(super) async fn insert_ca(db: &Db, ca: &CaRecord) -> Result<()> {
    let mut tx = db
        .write(format!("registering the CA certificate {:?}", ca.id))
        .await?;
    let taken = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM ca_certificates WHERE id = $1",
            &ca.id
        ))
        .await?;
    if taken > 0 {
        return Err(RegistryError::AlreadyExists {
            kind: KIND,
            id: ca.id.clone(),
        });
    }
    let same_subject = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM ca_certificates WHERE subject_der = $1",
            ca.subject_der.as_slice()
        ))
        .await?;
    if same_subject >= MAX_CAS_PER_SUBJECT {
        return Err(RegistryError::LimitExceeded(format!(
            "At most {MAX_CAS_PER_SUBJECT} CA certificates with the same subject can be \
             registered; deregister one first"
        )));
    }
    tx.execute(sql!(
        "INSERT INTO ca_certificates (id, pem, subject_der, status, auto_registration, mode, \
         registration_config, owned_by, created_ms, modified_ms, customer_version, \
         generation_id, not_before_ms, not_after_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &ca.id,
        &ca.pem,
        ca.subject_der.as_slice(),
        ca.status.as_str(),
        ca.auto_registration.as_str(),
        ca.mode.as_str(),
        ca.registration_config.as_deref(),
        &ca.owned_by,
        ca.created_ms,
        ca.modified_ms,
        ca.customer_version,
        &ca.generation_id,
        ca.not_before_ms,
        ca.not_after_ms,
    ))
    .await?;
    tx.emit(RegistryChange::CaChanged {
        ca_id: ca.id.clone(),
    });
    tx.commit().await
}

pub(super) async fn get_ca(db: &Db, id: &str) -> Result<Option<CaRecord>> {
    let mut tx = db
        .read_one(format!("reading the CA certificate {id:?}"))
        .await?;
    fetch_one(&mut tx, id).await
}

pub(super) async fn all_cas(db: &Db) -> Result<Vec<CaRecord>> {
    let mut tx = db.read("reading every CA certificate").await?;
    fetch(
        &mut tx,
        sql!(concat!(select_ca!(), " ORDER BY created_ms, id")),
    )
    .await
}

pub(super) async fn cas_by_subject(db: &Db, subject_der: &[u8]) -> Result<Vec<CaRecord>> {
    let mut tx = db.read("looking CA certificates up by subject").await?;
    fetch(
        &mut tx,
        sql!(
            concat!(
                select_ca!(),
                " WHERE subject_der = $1 ORDER BY created_ms, id"
            ),
            subject_der
        ),
    )
    .await
}

pub(super) async fn list_cas(db: &Db, page: &PageRequest) -> Result<Page<CaRecord>> {
    const LIST: &str = "cas";
    let mut sql = Sql::new(concat!(select_ca!(), " WHERE 1 = 1"));
    paging::tail(
        &mut sql,
        LIST,
        SortKey::TimeThenText("created_ms", "id"),
        page,
    )?;
    let mut tx = db.read("listing CA certificates").await?;
    let items = fetch(&mut tx, sql).await?;
    Ok(paging::finish(LIST, items, page, |ca| {
        vec![ca.created_ms.to_string(), ca.id.clone()]
    }))
}

pub(super) async fn update_ca(
    db: &Db,
    id: &str,
    status: Option<CaStatus>,
    auto_registration: Option<AutoRegistrationStatus>,
    registration_config: Option<Option<String>>,
    now_ms: i64,
) -> Result<CaRecord> {
    let mut tx = db
        .write(format!("updating the CA certificate {id:?}"))
        .await?;
    let mut ca = fetch_existing(&mut tx, id).await?;
    if let Some(status) = status {
        ca.status = status;
    }
    if let Some(auto) = auto_registration {
        ca.auto_registration = auto;
    }
    if let Some(config) = registration_config {
        ca.registration_config = config;
    }
    ca.customer_version += 1;
    ca.modified_ms = now_ms;
    ca.generation_id = new_generation_id();
    tx.execute(sql!(
        "UPDATE ca_certificates SET status = $2, auto_registration = $3, \
         registration_config = $4, modified_ms = $5, customer_version = $6, \
         generation_id = $7 WHERE id = $1",
        id,
        ca.status.as_str(),
        ca.auto_registration.as_str(),
        ca.registration_config.as_deref(),
        ca.modified_ms,
        ca.customer_version,
        &ca.generation_id,
    ))
    .await?;
    tx.emit(RegistryChange::CaChanged {
        ca_id: id.to_owned(),
    });
    tx.commit().await?;
    Ok(ca)
}

pub(super) async fn delete_ca(db: &Db, id: &str) -> Result<()> {
    let mut tx = db
        .write(format!("deleting the CA certificate {id:?}"))
        .await?;
    let ca = fetch_existing(&mut tx, id).await?;
    if ca.status == CaStatus::Active {
        return Err(RegistryError::CertificateState(format!(
            "The CA certificate {id} is ACTIVE; set it INACTIVE before deleting it"
        )));
    }
    let registered = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM certificates WHERE ca_id = $1",
            id
        ))
        .await?;
    if registered > 0 {
        return Err(RegistryError::DeleteConflict(format!(
            "The CA certificate {id} still has {registered} device certificate(s) registered \
             under it; delete them first"
        )));
    }
    tags::delete_tags_of(&mut tx, &format!(":cacert/{id}")).await?;
    tx.execute(sql!("DELETE FROM ca_certificates WHERE id = $1", id))
        .await?;
    tx.emit(RegistryChange::CaChanged {
        ca_id: id.to_owned(),
    });
    tx.commit().await
}
