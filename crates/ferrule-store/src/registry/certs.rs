//! Device certificates.

use crate::registry::db::{Db, Sql, Tx, new_generation_id, sql};
use crate::registry::error::RegistryError;
use crate::registry::paging::{self, SortKey};
use crate::registry::parse_column;
use crate::registry::records::{CertRecord, CertificateStatus, Page, PageRequest, RegistryChange};
use crate::registry::tags::{self, arn_suffix_is};

type Result<T> = std::result::Result<T, RegistryError>;

const KIND: &str = "Certificate";

macro_rules! select_cert {
    () => {
        "SELECT id, pem, ca_id, issuer_der, status, mode, owned_by, created_ms, modified_ms, \
         customer_version, generation_id, not_before_ms, not_after_ms FROM certificates"
    };
}

type CertRow = (
    String,
    String,
    Option<String>,
    Vec<u8>,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    i64,
    i64,
);

fn from_row(tx: &Tx<'_>, row: CertRow) -> Result<CertRecord> {
    let (
        id,
        pem,
        ca_id,
        issuer_der,
        status,
        mode,
        owned_by,
        created_ms,
        modified_ms,
        customer_version,
        generation_id,
        not_before_ms,
        not_after_ms,
    ) = row;
    let column = |name: &str| format!("certificates.{name} of {id:?}");
    Ok(CertRecord {
        status: parse_column(tx, &status, || column("status"))?,
        mode: parse_column(tx, &mode, || column("mode"))?,
        id,
        pem,
        ca_id,
        issuer_der,
        owned_by,
        created_ms,
        modified_ms,
        customer_version,
        generation_id,
        not_before_ms,
        not_after_ms,
    })
}

async fn fetch(tx: &mut Tx<'_>, sql: Sql) -> Result<Vec<CertRecord>> {
    let rows: Vec<CertRow> = tx.fetch_all(sql).await?;
    rows.into_iter().map(|row| from_row(tx, row)).collect()
}

async fn fetch_one(tx: &mut Tx<'_>, id: &str) -> Result<Option<CertRecord>> {
    Ok(
        fetch(tx, sql!(concat!(select_cert!(), " WHERE id = $1"), id))
            .await?
            .pop(),
    )
}

async fn fetch_existing(tx: &mut Tx<'_>, id: &str) -> Result<CertRecord> {
    fetch_one(tx, id)
        .await?
        .ok_or_else(|| RegistryError::NotFound {
            kind: KIND,
            id: id.to_owned(),
        })
}

pub(super) async fn insert_certificate(db: &Db, cert: &CertRecord) -> Result<()> {
    let mut tx = db
        .write(format!("registering the certificate {:?}", cert.id))
        .await?;
    let taken = tx
        .fetch_i64(sql!(
            "SELECT COUNT(*) FROM certificates WHERE id = $1",
            &cert.id
        ))
        .await?;
    if taken > 0 {
        return Err(RegistryError::AlreadyExists {
            kind: KIND,
            id: cert.id.clone(),
        });
    }
    if let Some(ca_id) = &cert.ca_id {
        let ca = tx
            .fetch_i64(sql!(
                "SELECT COUNT(*) FROM ca_certificates WHERE id = $1",
                ca_id
            ))
            .await?;
        if ca == 0 {
            return Err(RegistryError::NotFound {
                kind: "CA certificate",
                id: ca_id.clone(),
            });
        }
    }
    tx.execute(sql!(
        "INSERT INTO certificates (id, pem, ca_id, issuer_der, status, mode, owned_by, \
         created_ms, modified_ms, customer_version, generation_id, not_before_ms, \
         not_after_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &cert.id,
        &cert.pem,
        cert.ca_id.as_deref(),
        cert.issuer_der.as_slice(),
        cert.status.as_str(),
        cert.mode.as_str(),
        &cert.owned_by,
        cert.created_ms,
        cert.modified_ms,
        cert.customer_version,
        &cert.generation_id,
        cert.not_before_ms,
        cert.not_after_ms,
    ))
    .await?;
    tx.emit(RegistryChange::CertificateChanged {
        certificate_id: cert.id.clone(),
        status: cert.status,
        ca_id: cert.ca_id.clone(),
    });
    tx.commit().await
}

pub(super) async fn get_certificate(db: &Db, id: &str) -> Result<Option<CertRecord>> {
    let mut tx = db
        .read_one(format!("reading the certificate {id:?}"))
        .await?;
    fetch_one(&mut tx, id).await
}

pub(super) async fn update_certificate_status(
    db: &Db,
    id: &str,
    status: CertificateStatus,
    now_ms: i64,
) -> Result<CertRecord> {
    let mut tx = db
        .write(format!("setting the status of the certificate {id:?}"))
        .await?;
    let mut cert = fetch_existing(&mut tx, id).await?;
    if cert.status == status {
        return Ok(cert);
    }
    if cert.status == CertificateStatus::Revoked && status == CertificateStatus::Active {
        return Err(RegistryError::CertificateState(format!(
            "The certificate {id} is REVOKED and cannot be activated again"
        )));
    }
    cert.status = status;
    cert.modified_ms = now_ms;
    cert.customer_version += 1;
    cert.generation_id = new_generation_id();
    tx.execute(sql!(
        "UPDATE certificates SET status = $2, modified_ms = $3, customer_version = $4, \
         generation_id = $5 WHERE id = $1",
        id,
        cert.status.as_str(),
        cert.modified_ms,
        cert.customer_version,
        &cert.generation_id,
    ))
    .await?;
    tx.emit(RegistryChange::CertificateChanged {
        certificate_id: id.to_owned(),
        status,
        ca_id: cert.ca_id.clone(),
    });
    tx.commit().await?;
    Ok(cert)
}

async fn list(db: &Db, ca_id: Option<&str>, page: &PageRequest) -> Result<Page<CertRecord>> {
    const LIST: &str = "certificates";
    let mut sql = Sql::new(concat!(select_cert!(), " WHERE 1 = 1"));
    if let Some(ca_id) = ca_id {
        sql.push(" AND ca_id = ").bind(ca_id);
    }
    paging::tail(
        &mut sql,
        LIST,
        SortKey::TimeThenText("created_ms", "id"),
        page,
    )?;
    let mut tx = db.read("listing certificates").await?;
    let items = fetch(&mut tx, sql).await?;
    Ok(paging::finish(LIST, items, page, |cert| {
        vec![cert.created_ms.to_string(), cert.id.clone()]
    }))
}

pub(super) async fn list_certificates(db: &Db, page: &PageRequest) -> Result<Page<CertRecord>> {
    list(db, None, page).await
}

pub(super) async fn list_certificates_by_ca(
    db: &Db,
    ca_id: &str,
    page: &PageRequest,
) -> Result<Page<CertRecord>> {
    list(db, Some(ca_id), page).await
}

pub(super) async fn delete_certificate(db: &Db, id: &str, force: bool) -> Result<()> {
    let mut tx = db.write(format!("deleting the certificate {id:?}")).await?;
    let cert = fetch_existing(&mut tx, id).await?;
    if cert.status == CertificateStatus::Active {
        return Err(RegistryError::CertificateState(format!(
            "The certificate {id} is ACTIVE; deactivate it before deleting it"
        )));
    }
    let suffix = format!(":cert/{id}");
    let things = tx
        .fetch_i64(arn_suffix_is(
            "SELECT COUNT(*) FROM thing_principals \
             WHERE substr(principal, CAST(length(principal) - $2 + 1 AS INTEGER)) = $1",
            &suffix,
        ))
        .await?;
    if things > 0 {
        return Err(RegistryError::DeleteConflict(format!(
            "The certificate {id} is attached to {things} thing(s); detach it first"
        )));
    }
    let attachments: Vec<(String, String)> = tx
        .fetch_all(arn_suffix_is(
            "SELECT policy_name, target FROM policy_attachments \
             WHERE substr(target, CAST(length(target) - $2 + 1 AS INTEGER)) = $1 \
             ORDER BY policy_name, target",
            &suffix,
        ))
        .await?;
    if !attachments.is_empty() && !force {
        return Err(RegistryError::DeleteConflict(format!(
            "The certificate {id} has {} policy(ies) attached; detach them first or force \
             the deletion",
            attachments.len()
        )));
    }
    for (policy_name, target) in attachments {
        tx.execute(sql!(
            "DELETE FROM policy_attachments WHERE policy_name = $1 AND target = $2",
            &policy_name,
            &target
        ))
        .await?;
        tx.emit(RegistryChange::PolicyAttachmentChanged {
            policy_name,
            target,
        });
    }
    tags::delete_tags_of(&mut tx, &suffix).await?;
    tx.execute(sql!("DELETE FROM certificates WHERE id = $1", id))
        .await?;
    tx.emit(RegistryChange::CertificateDeleted {
        certificate_id: id.to_owned(),
    });
    tx.commit().await
}
