//! Registration code and CA certificates: GetRegistrationCode, DeleteRegistrationCode,
//! RegisterCACertificate (with proof of possession), DescribeCACertificate,
//! UpdateCACertificate, ListCACertificates, DeleteCACertificate.

use axum::extract::State;
use ferrule_pki::{ParsedCertificate, PossessionError};
use ferrule_store::{AutoRegistrationStatus, CaRecord, CaStatus, CertificateMode, RegistryError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Reply, Tag, certificate_id, empty, marker_page, reply, secs, tag_pairs};
use crate::ApiState;
use crate::error::ApiError;
use crate::extract::{Call, parse_enum};

pub(super) async fn get_registration_code(State(st): State<ApiState>) -> Reply {
    let candidate = ferrule_pki::random_hex(32);
    let code = st
        .registry()
        .get_or_create_registration_code(&candidate)
        .await?;
    reply(json!({ "registrationCode": code }))
}

pub(super) async fn delete_registration_code(State(st): State<ApiState>) -> Reply {
    if !st.registry().delete_registration_code().await? {
        return Err(ApiError::ResourceNotFound(
            "The registration code does not exist".into(),
        ));
    }
    empty()
}

/// `RegistrationConfig`: the JITP template of a CA. Stored as this JSON.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RegistrationConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    template_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    template_name: Option<String>,
}

impl RegistrationConfig {
    fn check(&self) -> Result<(), ApiError> {
        let too_long = |name: &str, v: &Option<String>, min: usize, max: usize| match v {
            Some(s) if s.chars().count() < min || s.chars().count() > max => {
                Err(ApiError::InvalidRequest(format!(
                    "registrationConfig.{name} must be {min} to {max} characters"
                )))
            }
            _ => Ok(()),
        };
        too_long("templateBody", &self.template_body, 0, 10240)?;
        too_long("roleArn", &self.role_arn, 20, 2048)?;
        too_long("templateName", &self.template_name, 1, 36)?;
        Ok(())
    }

    fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegisterCaBody {
    ca_certificate: String,
    verification_certificate: Option<String>,
    registration_config: Option<RegistrationConfig>,
    #[serde(default)]
    tags: Vec<Tag>,
    certificate_mode: Option<String>,
}

pub(super) async fn register_ca_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let body: RegisterCaBody = call.json()?;
    let set_as_active = call.query_bool("setAsActive")?.unwrap_or(false);
    let allow_auto = call.query_bool("allowAutoRegistration")?.unwrap_or(false);
    let mode: CertificateMode = match &body.certificate_mode {
        Some(m) => parse_enum("certificateMode", m)?,
        None => CertificateMode::Default,
    };
    if let Some(config) = &body.registration_config {
        config.check()?;
    }
    let tags = tag_pairs(&body.tags)?;
    let ca = parse_certificate(&body.ca_certificate, "caCertificate")?;
    let now_ms = crate::now_ms();
    match (mode, &body.verification_certificate) {
        (CertificateMode::Default, None) => {
            return Err(ApiError::InvalidRequest(
                "verificationCertificate is required to register a CA certificate in DEFAULT mode"
                    .into(),
            ));
        }
        (CertificateMode::SniOnly, Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "verificationCertificate must not be given to register a CA certificate in SNI_ONLY mode".into(),
            ));
        }
        (CertificateMode::Default, Some(verification_pem)) => {
            let verification = parse_certificate(verification_pem, "verificationCertificate")?;
            let Some(code) = st.registry().registration_code().await? else {
                if !ca.is_ca {
                    return Err(ApiError::CertificateValidation(
                        PossessionError::NotACa.to_string(),
                    ));
                }
                return Err(ApiError::RegistrationCodeValidation(
                    "There is no registration code; get one with GetRegistrationCode and use it as the CN of the \
                     verification certificate"
                        .into(),
                ));
            };
            ferrule_pki::check_proof_of_possession(
                &ca,
                &verification,
                &code,
                now_ms.div_euclid(1000),
            )
            .map_err(|e| match e {
                PossessionError::CodeMismatch { .. } => {
                    ApiError::RegistrationCodeValidation(e.to_string())
                }
                other => ApiError::CertificateValidation(other.to_string()),
            })?;
        }
        (CertificateMode::SniOnly, None) => {
            if !ca.is_ca {
                return Err(ApiError::CertificateValidation(
                    PossessionError::NotACa.to_string(),
                ));
            }
        }
    }

    let id = ca.id.as_str().to_owned();
    let arn = st.arns().ca_certificate(&id);
    let record = CaRecord {
        id: id.clone(),
        pem: ca.pem(),
        subject_der: ca.subject_der.clone(),
        status: if set_as_active {
            CaStatus::Active
        } else {
            CaStatus::Inactive
        },
        auto_registration: if allow_auto {
            AutoRegistrationStatus::Enable
        } else {
            AutoRegistrationStatus::Disable
        },
        mode,
        registration_config: body
            .registration_config
            .as_ref()
            .map(RegistrationConfig::to_json),
        owned_by: st.config().account_id.clone(),
        created_ms: now_ms,
        modified_ms: now_ms,
        customer_version: 1,
        generation_id: ferrule_pki::random_hex(16),
        not_before_ms: ca.not_before_unix.saturating_mul(1000),
        not_after_ms: ca.not_after_unix.saturating_mul(1000),
    };
    st.registry()
        .insert_ca(&record)
        .await
        .map_err(|e| match e {
            RegistryError::AlreadyExists { .. } => ApiError::ResourceAlreadyExists {
                message: "The CA certificate is already registered".into(),
                resource_id: id.clone(),
                resource_arn: arn.clone(),
            },
            other => other.into(),
        })?;
    if !tags.is_empty() {
        st.registry().tag_resource(&arn, &tags).await?;
    }
    tracing::info!(ca_id = %id, subject = %ca.subject, status = %record.status, "CA certificate registered");
    reply(json!({ "certificateArn": arn, "certificateId": id }))
}

/// Parses a PEM member; anything wrong is `CertificateValidationException`.
pub(super) fn parse_certificate(pem: &str, member: &str) -> Result<ParsedCertificate, ApiError> {
    ferrule_pki::parse_certificate_pem(pem)
        .map_err(|e| ApiError::CertificateValidation(format!("{member}: {e}")))
}

pub(super) async fn describe_ca_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let id = certificate_id(&call, "caCertificateId")?;
    let ca = get_ca(&st, &id).await?;
    let config = ca
        .registration_config
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok());
    reply(
        json!({ "certificateDescription": ca_description(&st, &ca), "registrationConfig": config }),
    )
}

async fn get_ca(st: &ApiState, id: &str) -> Result<CaRecord, ApiError> {
    st.registry().get_ca(id).await?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!("The CA certificate {id} does not exist"))
    })
}

fn ca_description(st: &ApiState, ca: &CaRecord) -> Value {
    json!({
        "certificateArn": st.arns().ca_certificate(&ca.id),
        "certificateId": ca.id,
        "status": ca.status.as_str(),
        "certificatePem": ca.pem,
        "ownedBy": ca.owned_by,
        "creationDate": secs(ca.created_ms),
        "autoRegistrationStatus": ca.auto_registration.as_str(),
        "lastModifiedDate": secs(ca.modified_ms),
        "customerVersion": ca.customer_version,
        "generationId": ca.generation_id,
        "validity": { "notBefore": secs(ca.not_before_ms), "notAfter": secs(ca.not_after_ms) },
        "certificateMode": ca.mode.as_str(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateCaBody {
    registration_config: Option<RegistrationConfig>,
    remove_auto_registration: Option<bool>,
}

pub(super) async fn update_ca_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let id = certificate_id(&call, "caCertificateId")?;
    let status: Option<CaStatus> = call.query_enum("newStatus")?;
    let auto: Option<AutoRegistrationStatus> = call.query_enum("newAutoRegistrationStatus")?;
    let body: UpdateCaBody = call.json()?;
    let config = match (
        body.remove_auto_registration.unwrap_or(false),
        body.registration_config,
    ) {
        (true, Some(_)) => {
            return Err(ApiError::InvalidRequest(
                "registrationConfig and removeAutoRegistration cannot be given together".into(),
            ));
        }
        (true, None) => Some(None),
        (false, Some(config)) => {
            config.check()?;
            Some(Some(config.to_json()))
        }
        (false, None) => None,
    };
    let ca = st
        .registry()
        .update_ca(&id, status, auto, config, crate::now_ms())
        .await?;
    tracing::info!(ca_id = %id, status = %ca.status, auto_registration = %ca.auto_registration, "CA certificate updated");
    empty()
}

pub(super) async fn list_ca_certificates(State(st): State<ApiState>, call: Call) -> Reply {
    let page = marker_page(&call)?;
    let template = call.query("templateName");
    let listed = st.registry().list_cas(&page).await?;
    let certificates: Vec<Value> = listed
        .items
        .iter()
        .filter(|ca| template.is_none_or(|t| template_name(ca).as_deref() == Some(t)))
        .map(|ca| {
            json!({
                "certificateArn": st.arns().ca_certificate(&ca.id),
                "certificateId": ca.id,
                "status": ca.status.as_str(),
                "creationDate": secs(ca.created_ms),
            })
        })
        .collect();
    reply(json!({ "certificates": certificates, "nextMarker": listed.next_marker }))
}

fn template_name(ca: &CaRecord) -> Option<String> {
    let config: RegistrationConfig =
        serde_json::from_str(ca.registration_config.as_deref()?).ok()?;
    config.template_name
}

pub(super) async fn delete_ca_certificate(State(st): State<ApiState>, call: Call) -> Reply {
    let id = certificate_id(&call, "caCertificateId")?;
    st.registry().delete_ca(&id).await.map_err(|e| match e {
        // DeleteCACertificate's modeled errors have no DeleteConflict; a CA that still has
        // device certificates is a state that forbids the deletion.
        RegistryError::DeleteConflict(m) => ApiError::CertificateState(m),
        other => other.into(),
    })?;
    tracing::info!(ca_id = %id, "CA certificate deleted");
    empty()
}
