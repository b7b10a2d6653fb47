//! TestAuthorization: would a certificate's policies let it publish, subscribe, receive or
//! connect on these resources?
//!
//! The policies are those attached to the certificate, plus `policyNamesToAdd`, minus
//! `policyNamesToSkip` (skipping wins when a name is in both), each at its default version.
//! The context is the one the certificate would connect with: `?clientId=`, its subject's
//! common name, and the thing variables when the client id names a thing attached to it. The
//! decision and attribution are [`crate::authorization`]'s.
//!
//! Ferrule authenticates devices by certificate only, so the principal must be a certificate
//! (its ARN, or its id); Cognito identities and `cognitoIdentityPoolId` are refused.
//! `missingContextValues` is not reported.

use std::collections::BTreeMap;
use std::str::FromStr;

use axum::extract::State;
use ferrule_pki::CertificateId;
use ferrule_policy::Policy;
use ferrule_store::{PageRequest, PolicyRecord, ThingRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::policies::check_policy_name;
use super::{MAX_PAGE_SIZE, Reply, reply};
use crate::ApiState;
use crate::arn::Resource;
use crate::authorization::{ActionType, Outcome, authorize, principal_context};
use crate::error::ApiError;
use crate::extract::{Call, parse_enum};

/// AWS's bounds on `authInfos`.
const MAX_AUTH_INFOS: usize = 10;
/// AWS's longest `Resource`.
const MAX_RESOURCE_CHARS: usize = 2048;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    principal: Option<String>,
    cognito_identity_pool_id: Option<String>,
    auth_infos: Option<Vec<AuthInfoBody>>,
    #[serde(default)]
    policy_names_to_add: Vec<String>,
    #[serde(default)]
    policy_names_to_skip: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthInfoBody {
    action_type: Option<String>,
    resources: Option<Vec<String>>,
}

/// One `authInfo`, parsed.
#[derive(Debug)]
struct AuthInfo {
    action: ActionType,
    resources: Vec<String>,
}

fn parse_auth_infos(raw: Option<Vec<AuthInfoBody>>) -> Result<Vec<AuthInfo>, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::missing("authInfos"))?;
    if raw.is_empty() || raw.len() > MAX_AUTH_INFOS {
        return Err(ApiError::InvalidRequest(format!(
            "authInfos must hold 1 to {MAX_AUTH_INFOS} items; {} were given",
            raw.len()
        )));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, info)| {
            let member = format!("authInfos[{i}]");
            let action = info
                .action_type
                .ok_or_else(|| ApiError::missing(&format!("{member}.actionType")))?;
            let action = parse_enum(&format!("{member}.actionType"), &action)?;
            let resources = info
                .resources
                .ok_or_else(|| ApiError::missing(&format!("{member}.resources")))?;
            if resources.is_empty() {
                return Err(ApiError::InvalidRequest(format!(
                    "{member}.resources must name at least one resource ARN"
                )));
            }
            if let Some(r) = resources
                .iter()
                .find(|r| r.is_empty() || r.chars().count() > MAX_RESOURCE_CHARS)
            {
                return Err(ApiError::InvalidRequest(format!(
                    "{member}.resources: {r:?} is not valid; a resource is 1 to {MAX_RESOURCE_CHARS} characters"
                )));
            }
            Ok(AuthInfo { action, resources })
        })
        .collect()
}

/// The certificate id a principal names: a certificate ARN of this account and region, or a
/// bare certificate id.
fn principal_certificate_id(st: &ApiState, principal: &str) -> Result<String, ApiError> {
    let not_a_certificate = || {
        ApiError::InvalidRequest(format!(
            "principal {principal:?} is not valid: give a certificate ARN of this account and region \
             (arn:aws:iot:REGION:ACCOUNT:cert/ID) or a certificate id; Ferrule has no Cognito identities"
        ))
    };
    let id = if principal.starts_with("arn:") {
        match st.arns().parse(principal) {
            Some(Resource::Certificate(id)) => id,
            _ => return Err(not_a_certificate()),
        }
    } else {
        principal.to_owned()
    };
    CertificateId::from_str(&id)
        .map(CertificateId::into_string)
        .map_err(|_| not_a_certificate())
}

/// Whether `thing_name` is one of the things attached to `principal`.
async fn attached_thing(
    st: &ApiState,
    principal: &str,
    thing_name: &str,
) -> Result<Option<ThingRecord>, ApiError> {
    let mut marker = None;
    loop {
        let page = st
            .registry()
            .list_principal_things(
                principal,
                &PageRequest {
                    marker,
                    page_size: usize::try_from(MAX_PAGE_SIZE).unwrap_or(1),
                    ascending: true,
                },
            )
            .await?;
        if page.items.iter().any(|t| t == thing_name) {
            return Ok(st.registry().get_thing(thing_name).await?);
        }
        match page.next_marker {
            Some(m) => marker = Some(m),
            None => return Ok(None),
        }
    }
}

/// The policies to evaluate, by name, each at its default version.
async fn chosen_policies(
    st: &ApiState,
    principal: &str,
    to_add: &[String],
    to_skip: &[String],
) -> Result<Vec<(String, Policy)>, ApiError> {
    for name in to_add.iter().chain(to_skip) {
        check_policy_name(name)?;
    }
    let mut chosen: BTreeMap<String, PolicyRecord> = st
        .registry()
        .policies_for_target(principal)
        .await?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    for name in to_add {
        if chosen.contains_key(name) {
            continue;
        }
        let p = st.registry().get_policy(name).await?.ok_or_else(|| {
            ApiError::ResourceNotFound(format!(
                "Policy not found (name={name}) in policyNamesToAdd"
            ))
        })?;
        chosen.insert(name.clone(), p);
    }
    for name in to_skip {
        chosen.remove(name);
    }
    chosen
        .into_values()
        .map(|p| {
            // Documents are validated when stored; one that no longer parses is our fault.
            let policy = Policy::parse(&p.document).map_err(|e| {
                tracing::error!(policy = p.name, error = %e, "a stored policy does not parse");
                ApiError::Internal(format!("the stored policy {} does not parse: {e}", p.name))
            })?;
            Ok((p.name, policy))
        })
        .collect()
}

pub(super) async fn test_authorization(State(st): State<ApiState>, call: Call) -> Reply {
    let body: Body = call.json()?;
    let infos = parse_auth_infos(body.auth_infos)?;
    if body.cognito_identity_pool_id.is_some() {
        return Err(ApiError::InvalidRequest(
            "cognitoIdentityPoolId: Ferrule has no Cognito identities; test a certificate principal".into(),
        ));
    }
    let principal = body
        .principal
        .ok_or_else(|| ApiError::missing("principal"))?;
    let id = principal_certificate_id(&st, &principal)?;
    let cert = st.registry().get_certificate(&id).await?.ok_or_else(|| {
        ApiError::ResourceNotFound(format!("The certificate {id} (principal) does not exist"))
    })?;
    // Attachments are stored under the certificate's ARN.
    let arn = st.arns().certificate(&id);
    let policies = chosen_policies(
        &st,
        &arn,
        &body.policy_names_to_add,
        &body.policy_names_to_skip,
    )
    .await?;

    let client_id = call.query("clientId");
    let parsed = ferrule_pki::parse_certificate_pem(&cert.pem).map_err(|e| {
        tracing::error!(certificate = id, error = %e, "a stored certificate does not parse");
        ApiError::Internal(format!("the stored certificate {id} does not parse: {e}"))
    })?;
    let thing = match client_id {
        Some(c) => attached_thing(&st, &arn, c).await?,
        None => None,
    };
    let ctx = principal_context(client_id, &parsed.policy_variables(), thing.as_ref());

    let results: Vec<Value> = infos
        .iter()
        .map(|info| {
            let outcome = authorize(&policies, info.action, &info.resources, &ctx);
            auth_result(&st, info, &outcome)
        })
        .collect();
    reply(json!({ "authResults": results }))
}

fn auth_result(st: &ApiState, info: &AuthInfo, outcome: &Outcome) -> Value {
    let list = |names: &[String]| -> Value {
        names
            .iter()
            .map(|n| json!({ "policyName": n, "policyArn": st.arns().policy(n) }))
            .collect()
    };
    json!({
        "authInfo": { "actionType": info.action.to_string(), "resources": info.resources },
        "allowed": { "policies": list(&outcome.allowed) },
        "denied": {
            "implicitDeny": { "policies": list(&outcome.implicit_deny) },
            "explicitDeny": { "policies": list(&outcome.explicit_deny) },
        },
        "authDecision": outcome.decision.to_string(),
    })
}
