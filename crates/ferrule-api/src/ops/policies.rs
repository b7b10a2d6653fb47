//! IoT policies: CreatePolicy, GetPolicy, ListPolicies, DeletePolicy, the version operations,
//! attachments through both APIs (AttachPolicy/DetachPolicy with a body target, and the
//! deprecated *PrincipalPolicy with the `x-amzn-iot-principal` header), and the lists of
//! attachments.

use axum::extract::State;
use ferrule_store::{PolicyRecord, RegistryError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Reply, Tag, check_name, empty, marker_page, reply, secs, tag_pairs};
use crate::ApiState;
use crate::arn::Resource;
use crate::error::ApiError;
use crate::extract::Call;
use crate::policy_doc;

const PRINCIPAL_HEADER: &str = "x-amzn-iot-principal";
const POLICY_HEADER: &str = "x-amzn-iot-policy";

fn policy_name(call: &Call) -> Result<&str, ApiError> {
    let name = call.label("policyName")?;
    check_policy_name(name)?;
    Ok(name)
}

pub(super) fn check_policy_name(name: &str) -> Result<(), ApiError> {
    check_name(
        "policyName",
        name,
        128,
        |c| c.is_alphanumeric() || "_+=,.@-".contains(c),
        "[\\w+=,.@-]+",
    )
}

fn version_id(call: &Call) -> Result<i64, ApiError> {
    let raw = call.label("policyVersionId")?;
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v >= 1 && raw.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "policyVersionId must be a version number, not {raw:?}"
            ))
        })
}

fn check_document(document: &str) -> Result<(), ApiError> {
    policy_doc::validate(document).map_err(ApiError::MalformedPolicy)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePolicyBody {
    policy_document: String,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub(super) async fn create_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let body: CreatePolicyBody = call.json()?;
    let tags = tag_pairs(&body.tags)?;
    check_document(&body.policy_document)?;
    let arn = st.arns().policy(name);
    let policy = st
        .registry()
        .create_policy(name, &body.policy_document, crate::now_ms())
        .await
        .map_err(|e| match e {
            RegistryError::AlreadyExists { .. } => ApiError::ResourceAlreadyExists {
                message: format!("Policy cannot be created - name already exists (name={name})"),
                resource_id: name.to_owned(),
                resource_arn: arn.clone(),
            },
            other => other.into(),
        })?;
    if !tags.is_empty() {
        st.registry().tag_resource(&arn, &tags).await?;
    }
    reply(json!({
        "policyName": policy.name,
        "policyArn": arn,
        "policyDocument": policy.document,
        "policyVersionId": policy.default_version_id.to_string(),
    }))
}

async fn get_policy_record(st: &ApiState, name: &str) -> Result<PolicyRecord, ApiError> {
    st.registry()
        .get_policy(name)
        .await?
        .ok_or_else(|| ApiError::ResourceNotFound(format!("Policy not found (name={name})")))
}

pub(super) async fn get_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let p = get_policy_record(&st, name).await?;
    reply(json!({
        "policyName": p.name,
        "policyArn": st.arns().policy(&p.name),
        "policyDocument": p.document,
        "defaultVersionId": p.default_version_id.to_string(),
        "creationDate": secs(p.created_ms),
        "lastModifiedDate": secs(p.modified_ms),
        "generationId": p.generation_id,
    }))
}

fn policy_list(st: &ApiState, policies: &[PolicyRecord]) -> Vec<Value> {
    policies
        .iter()
        .map(|p| json!({ "policyName": p.name, "policyArn": st.arns().policy(&p.name) }))
        .collect()
}

pub(super) async fn list_policies(State(st): State<ApiState>, call: Call) -> Reply {
    let page = st.registry().list_policies(&marker_page(&call)?).await?;
    reply(json!({ "policies": policy_list(&st, &page.items), "nextMarker": page.next_marker }))
}

pub(super) async fn delete_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    st.registry().delete_policy(name).await?;
    empty()
}

pub(super) async fn create_policy_version(State(st): State<ApiState>, call: Call) -> Reply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Body {
        policy_document: String,
    }
    let name = policy_name(&call)?;
    let set_as_default = call.query_bool("setAsDefault")?.unwrap_or(false);
    let body: Body = call.json()?;
    check_document(&body.policy_document)?;
    let v = st
        .registry()
        .create_policy_version(name, &body.policy_document, set_as_default, crate::now_ms())
        .await?;
    reply(json!({
        "policyArn": st.arns().policy(name),
        "policyDocument": v.document,
        "policyVersionId": v.version_id.to_string(),
        "isDefaultVersion": v.is_default,
    }))
}

pub(super) async fn get_policy_version(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let version = version_id(&call)?;
    let not_found = || {
        ApiError::ResourceNotFound(format!(
            "Policy version not found (name={name}, version={version})"
        ))
    };
    let v = st
        .registry()
        .get_policy_version(name, version)
        .await?
        .ok_or_else(not_found)?;
    let policy = st
        .registry()
        .get_policy(name)
        .await?
        .ok_or_else(not_found)?;
    reply(json!({
        "policyArn": st.arns().policy(name),
        "policyName": name,
        "policyDocument": v.document,
        "policyVersionId": v.version_id.to_string(),
        "isDefaultVersion": v.is_default,
        "creationDate": secs(v.created_ms),
        "lastModifiedDate": secs(v.created_ms),
        "generationId": policy.generation_id,
    }))
}

pub(super) async fn list_policy_versions(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let versions = st.registry().list_policy_versions(name).await?;
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "versionId": v.version_id.to_string(), "isDefaultVersion": v.is_default, "createDate": secs(v.created_ms) }))
        .collect();
    reply(json!({ "policyVersions": versions }))
}

pub(super) async fn set_default_policy_version(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let version = version_id(&call)?;
    st.registry()
        .set_default_policy_version(name, version, crate::now_ms())
        .await?;
    empty()
}

pub(super) async fn delete_policy_version(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let version = version_id(&call)?;
    st.registry().delete_policy_version(name, version).await.map_err(|e| match e {
        // The default version: AWS answers InvalidRequestException (moto agrees; reference
        // §13), and points at DeletePolicy.
        RegistryError::DeleteConflict(_) => ApiError::InvalidRequest(
            "Cannot delete the default version of a policy; set another version as the default, or use \
             DeletePolicy"
                .into(),
        ),
        other => other.into(),
    })?;
    empty()
}

/// A policy target or principal: a certificate ARN of this account must name a registered
/// certificate; other targets (thing groups, Cognito identities) are taken as given.
pub(super) async fn check_target(
    st: &ApiState,
    member: &str,
    target: &str,
) -> Result<(), ApiError> {
    if target.is_empty() {
        return Err(ApiError::missing(member));
    }
    if let Some(Resource::Certificate(id)) = st.arns().parse(target)
        && st.registry().get_certificate(&id).await?.is_none()
    {
        return Err(ApiError::ResourceNotFound(format!(
            "The certificate {id} ({member}) does not exist"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct TargetBody {
    target: String,
}

pub(super) async fn attach_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let body: TargetBody = call.json()?;
    attach(&st, name, "target", &body.target).await
}

pub(super) async fn attach_principal_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let principal = call.required_header(PRINCIPAL_HEADER)?;
    attach(&st, name, "principal", principal).await
}

async fn attach(st: &ApiState, name: &str, member: &str, target: &str) -> Reply {
    check_target(st, member, target).await?;
    st.registry().attach_policy(name, target).await?;
    tracing::info!(policy = name, target, "policy attached");
    empty()
}

pub(super) async fn detach_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let body: TargetBody = call.json()?;
    detach(&st, name, "target", &body.target).await
}

pub(super) async fn detach_principal_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let principal = call.required_header(PRINCIPAL_HEADER)?;
    detach(&st, name, "principal", principal).await
}

async fn detach(st: &ApiState, name: &str, member: &str, target: &str) -> Reply {
    if target.is_empty() {
        return Err(ApiError::missing(member));
    }
    st.registry().detach_policy(name, target).await?;
    tracing::info!(policy = name, target, "policy detached");
    empty()
}

pub(super) async fn list_attached_policies(State(st): State<ApiState>, call: Call) -> Reply {
    let target = call.label("target")?;
    // `recursive` walks thing-group hierarchies, which Ferrule does not have; it is accepted
    // and changes nothing.
    call.query_bool("recursive")?;
    check_target(&st, "target", target).await?;
    let page = st
        .registry()
        .list_attached_policies(target, &marker_page(&call)?)
        .await?;
    reply(json!({ "policies": policy_list(&st, &page.items), "nextMarker": page.next_marker }))
}

pub(super) async fn list_principal_policies(State(st): State<ApiState>, call: Call) -> Reply {
    let principal = call.required_header(PRINCIPAL_HEADER)?;
    check_target(&st, "principal", principal).await?;
    let page = st
        .registry()
        .list_attached_policies(principal, &marker_page(&call)?)
        .await?;
    reply(json!({ "policies": policy_list(&st, &page.items), "nextMarker": page.next_marker }))
}

pub(super) async fn list_targets_for_policy(State(st): State<ApiState>, call: Call) -> Reply {
    let name = policy_name(&call)?;
    let page = st
        .registry()
        .list_policy_targets(name, &marker_page(&call)?)
        .await?;
    reply(json!({ "targets": page.items, "nextMarker": page.next_marker }))
}

pub(super) async fn list_policy_principals(State(st): State<ApiState>, call: Call) -> Reply {
    let name = call.required_header(POLICY_HEADER)?;
    check_policy_name(name)?;
    let page = st
        .registry()
        .list_policy_targets(name, &marker_page(&call)?)
        .await?;
    reply(json!({ "principals": page.items, "nextMarker": page.next_marker }))
}
