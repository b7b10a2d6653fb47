//! Device certificates: RegisterCertificate, RegisterCertificateWithoutCA,
//! DescribeCertificate, UpdateCertificate, ListCertificates, ListCertificatesByCA,
//! DeleteCertificate, CreateKeysAndCertificate, CreateCertificateFromCsr.

use axum::extract::State;
use ferrule_pki::ParsedCertificate;
use ferrule_store::{CaRecord, CertRecord, CertificateMode, CertificateStatus, RegistryError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::cas::parse_certificate;
use super::{Reply, certificate_id, empty, marker_page, reply, secs};
use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{Call, parse_enum};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterBody {
    certificate_pem: String,
    ca_certificate_pem: Option<String>,
    status: Option<String>,
}

/// The status a caller may register a certificate with: ACTIVE, INACTIVE or REVOKED.
fn registration_status(
    status: Option<&str>,
    set_as_active: Option<bool>,
) -> Result<CertificateStatus, ApiError> {
    let Some(status) = status else {
        return Ok(if set_as_active == Some(true) {
            CertificateStatus::Active
        } else {
            CertificateStatus::Inactive
        });
    };
    match parse_enum::<CertificateStatus>("status", status)? {
        s @ (CertificateStatus::Active
        | CertificateStatus::Inactive
        | CertificateStatus::Revoked) => Ok(s),
        CertificateStatus::PendingActivation => Err(ApiError::CertificateState(
            "Not allowed to register certificate with PENDING_ACTIVATION status".into(),
        )),
        other => Err(ApiError::InvalidRequest(format!(
            "status: a certificate cannot be registered as {other}; use ACTIVE, INACTIVE or REVOKED"
        ))),
    }
}

pub(super) async fn register_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let body: RegisterBody = call.json()?;
    let status = registration_status(body.status.as_deref(), call.query_bool("setAsActive")?)?;
    let cert = parse_certificate(&body.certificate_pem, "certificatePem")?;
    let ca = match &body.ca_certificate_pem {
        Some(pem) => {
            let given = parse_certificate(pem, "caCertificatePem")?;
            let ca = st.registry().get_ca(given.id.as_str()).await?.ok_or_else(|| {
                ApiError::CertificateValidation(format!(
                    "caCertificatePem: the CA certificate {} is not registered; register it with \
                     RegisterCACertificate first",
                    given.id
                ))
            })?;
            ferrule_pki::verify_signed_by(&cert, &given).map_err(|e| {
                ApiError::CertificateValidation(format!(
                    "The certificate is not signed by the given CA certificate: {e}"
                ))
            })?;
            ca
        }
        None => find_issuer(&st, &cert).await?,
    };
    let record = new_record(&st, &cert, Some(&ca.id), status, ca.mode);
    insert(&st, record).await
}

/// The one registered CA whose subject is the certificate's issuer and whose key signed it.
async fn find_issuer(st: &ApiState, cert: &ParsedCertificate) -> Result<CaRecord, ApiError> {
    let candidates = st.registry().cas_by_subject(&cert.issuer_der).await?;
    let mut signers = Vec::new();
    for ca in candidates {
        let Ok(parsed) = ferrule_pki::parse_certificate_pem(&ca.pem) else {
            continue;
        };
        if ferrule_pki::verify_signed_by(cert, &parsed).is_ok() {
            signers.push(ca);
        }
    }
    match signers.len() {
        0 => Err(ApiError::CertificateValidation(format!(
            "The certificate's issuer ({}) is not a registered CA certificate, or no registered CA with that \
             subject signed it; register its CA with RegisterCACertificate, pass caCertificatePem, or use \
             RegisterCertificateWithoutCA",
            cert.issuer
        ))),
        1 => Ok(signers.remove(0)),
        n => Err(ApiError::CertificateConflict(format!(
            "{n} registered CA certificates share the subject and key that signed this certificate; pass \
             caCertificatePem to say which one"
        ))),
    }
}

pub(super) async fn register_certificate_without_ca(
    State(st): State<ApiState>,
    call: Call,
) -> Reply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        certificate_pem: String,
        status: Option<String>,
    }
    let body: Body = call.json()?;
    let status = registration_status(body.status.as_deref(), None)?;
    let cert = parse_certificate(&body.certificate_pem, "certificatePem")?;
    let record = new_record(&st, &cert, None, status, CertificateMode::SniOnly);
    insert(&st, record).await
}

fn new_record(
    st: &ApiState,
    cert: &ParsedCertificate,
    ca_id: Option<&str>,
    status: CertificateStatus,
    mode: CertificateMode,
) -> CertRecord {
    let now = crate::now_ms();
    CertRecord {
        id: cert.id.as_str().to_owned(),
        pem: cert.pem(),
        ca_id: ca_id.map(str::to_owned),
        issuer_der: cert.issuer_der.clone(),
        status,
        mode,
        owned_by: st.config().account_id.clone(),
        created_ms: now,
        modified_ms: now,
        customer_version: 1,
        generation_id: ferrule_pki::random_hex(16),
        not_before_ms: cert.not_before_unix.saturating_mul(1000),
        not_after_ms: cert.not_after_unix.saturating_mul(1000),
    }
}

async fn insert(st: &ApiState, record: CertRecord) -> Reply {
    let arn = st.arns().certificate(&record.id);
    insert_record(st, &record).await?;
    reply(json!({ "certificateArn": arn, "certificateId": record.id }))
}

async fn insert_record(st: &ApiState, record: &CertRecord) -> Result<(), ApiError> {
    st.registry()
        .insert_certificate(record)
        .await
        .map_err(|e| match e {
            RegistryError::AlreadyExists { .. } => ApiError::ResourceAlreadyExists {
                message: "The certificate is already provisioned or registered".into(),
                resource_id: record.id.clone(),
                resource_arn: st.arns().certificate(&record.id),
            },
            other => other.into(),
        })?;
    tracing::info!(certificate_id = %record.id, status = %record.status, ca_id = ?record.ca_id, "certificate registered");
    Ok(())
}

pub(super) async fn describe_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let id = certificate_id(&call, "certificateId")?;
    let cert = st.registry().get_certificate(&id).await?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!("The certificate {id} does not exist"))
    })?;
    reply(json!({
        "certificateDescription": {
            "certificateArn": st.arns().certificate(&cert.id),
            "certificateId": cert.id,
            "caCertificateId": cert.ca_id,
            "status": cert.status.as_str(),
            "certificatePem": cert.pem,
            "ownedBy": cert.owned_by,
            "creationDate": secs(cert.created_ms),
            "lastModifiedDate": secs(cert.modified_ms),
            "customerVersion": cert.customer_version,
            "transferData": {},
            "generationId": cert.generation_id,
            "validity": { "notBefore": secs(cert.not_before_ms), "notAfter": secs(cert.not_after_ms) },
            "certificateMode": cert.mode.as_str(),
        }
    }))
}

pub(super) async fn update_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let id = certificate_id(&call, "certificateId")?;
    let status: CertificateStatus = call
        .query_enum("newStatus")?
        .ok_or_else(|| ApiError::missing("newStatus"))?;
    if !matches!(
        status,
        CertificateStatus::Active | CertificateStatus::Inactive | CertificateStatus::Revoked
    ) {
        return Err(ApiError::InvalidRequest(format!(
            "newStatus: {status} cannot be set by UpdateCertificate; use ACTIVE, INACTIVE or REVOKED"
        )));
    }
    let cert = st
        .registry()
        .update_certificate_status(&id, status, crate::now_ms())
        .await?;
    tracing::info!(certificate_id = %id, status = %cert.status, "certificate status updated");
    empty()
}

fn list_item(st: &ApiState, cert: &CertRecord) -> Value {
    json!({
        "certificateArn": st.arns().certificate(&cert.id),
        "certificateId": cert.id,
        "status": cert.status.as_str(),
        "certificateMode": cert.mode.as_str(),
        "creationDate": secs(cert.created_ms),
    })
}

pub(super) async fn list_certificates(State(st): State<ApiState>, call: Call) -> Reply {
    let page = st
        .registry()
        .list_certificates(&marker_page(&call)?)
        .await?;
    let certificates: Vec<Value> = page.items.iter().map(|c| list_item(&st, c)).collect();
    reply(json!({ "certificates": certificates, "nextMarker": page.next_marker }))
}

pub(super) async fn list_certificates_by_ca(State(st): State<ApiState>, call: Call) -> Reply {
    let ca_id = certificate_id(&call, "caCertificateId")?;
    let page = st
        .registry()
        .list_certificates_by_ca(&ca_id, &marker_page(&call)?)
        .await?;
    let certificates: Vec<Value> = page.items.iter().map(|c| list_item(&st, c)).collect();
    reply(json!({ "certificates": certificates, "nextMarker": page.next_marker }))
}

pub(super) async fn delete_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let id = certificate_id(&call, "certificateId")?;
    let force = call.query_bool("forceDelete")?.unwrap_or(false);
    st.registry().delete_certificate(&id, force).await?;
    tracing::info!(certificate_id = %id, force, "certificate deleted");
    empty()
}

pub(super) async fn create_keys_and_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let status = if call.query_bool("setAsActive")?.unwrap_or(false) {
        CertificateStatus::Active
    } else {
        CertificateStatus::Inactive
    };
    let issuer = st.issuer();
    let now = crate::now_ms().div_euclid(1000);
    // RSA key generation takes a noticeable fraction of a second: keep it off the runtime.
    let keys = tokio::task::spawn_blocking(move || issuer.create_keys_and_certificate(now))
        .await
        .map_err(|e| ApiError::Internal(format!("key generation task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("issuing a certificate failed: {e}")))?;
    let cert = issued(&keys.certificate_pem)?;
    let record = new_record(&st, &cert, None, status, CertificateMode::Default);
    insert_record(&st, &record).await?;
    reply(json!({
        "certificateArn": st.arns().certificate(&record.id),
        "certificateId": record.id,
        "certificatePem": keys.certificate_pem,
        "keyPair": { "PublicKey": keys.public_key_pem, "PrivateKey": keys.private_key_pem },
    }))
}

pub(super) async fn create_certificate_from_csr(State(st): State<ApiState>, call: Call) -> Reply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        certificate_signing_request: String,
    }
    let body: Body = call.json()?;
    if body.certificate_signing_request.chars().count() > 4096 {
        return Err(ApiError::InvalidRequest(
            "certificateSigningRequest is longer than 4096 characters".into(),
        ));
    }
    let status = if call.query_bool("setAsActive")?.unwrap_or(false) {
        CertificateStatus::Active
    } else {
        CertificateStatus::Inactive
    };
    let csr = ferrule_pki::parse_csr_pem(&body.certificate_signing_request)
        .map_err(|e| ApiError::InvalidRequest(format!("certificateSigningRequest: {e}")))?;
    let issuer = st.issuer();
    let now = crate::now_ms().div_euclid(1000);
    let pem = tokio::task::spawn_blocking(move || issuer.issue_from_csr(&csr, now))
        .await
        .map_err(|e| ApiError::Internal(format!("issuing task failed: {e}")))?
        .map_err(|e| ApiError::InvalidRequest(format!("certificateSigningRequest: {e}")))?;
    let cert = issued(&pem)?;
    let record = new_record(&st, &cert, None, status, CertificateMode::Default);
    insert_record(&st, &record).await?;
    reply(json!({
        "certificateArn": st.arns().certificate(&record.id),
        "certificateId": record.id,
        "certificatePem": pem,
    }))
}

fn issued(pem: &str) -> Result<ParsedCertificate, ApiError> {
    ferrule_pki::parse_certificate_pem(pem)
        .map_err(|e| ApiError::Internal(format!("the certificate just issued does not parse: {e}")))
}
