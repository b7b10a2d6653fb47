//! Roles and the inline policies of roles and users.

use ferrule_store::{IamEntity, IamRoleRecord};

use super::form::Form;
use super::xml::Xml;
use super::{
    IamReply, iam_error, iso8601, name, page_of, path, policy_document, random_id, truncation,
    unsupported, url_encoded, validation,
};
use crate::ApiState;
use crate::error::ApiError;

/// `roleNameType`: at most 64 characters.
const ROLE_NAME_MAX: usize = 64;
/// `policyNameType`: at most 128 characters.
const POLICY_NAME_MAX: usize = 128;
/// `existingUserNameType`: at most 128 characters.
const EXISTING_USER_NAME_MAX: usize = 128;

fn role_xml(st: &ApiState, out: &mut Xml, role: &IamRoleRecord) {
    let account = &st.config().account_id;
    out.text("Path", &role.path)
        .text("RoleName", &role.name)
        .text("RoleId", &role.role_id)
        .text(
            "Arn",
            &format!("arn:aws:iam::{account}:role{}{}", role.path, role.name),
        )
        .text("CreateDate", &iso8601(role.created_ms))
        .text(
            "AssumeRolePolicyDocument",
            &url_encoded(&role.assume_role_policy),
        );
    if let Some(description) = &role.description {
        out.text("Description", description);
    }
    out.text("MaxSessionDuration", &role.max_session_duration.to_string());
}

fn role_result(st: &ApiState, role: &IamRoleRecord) -> IamReply {
    let mut out = Xml::default();
    out.open("Role");
    role_xml(st, &mut out, role);
    out.close("Role");
    Ok(Some(out))
}

/// `roleDescriptionType`: at most 1000 of tab, LF, CR, printable ASCII and Latin-1.
fn description(form: &Form) -> Result<Option<String>, ApiError> {
    let Some(value) = form.get("Description") else {
        return Ok(None);
    };
    let allowed =
        |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{7e}' | '\u{a1}'..='\u{ff}');
    if value.chars().count() > 1000 {
        return Err(validation(
            "Description",
            value,
            "have length less than or equal to 1000",
        ));
    }
    if !value.chars().all(allowed) {
        return Err(validation(
            "Description",
            value,
            "satisfy regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u007E\\u00A1-\\u00FF]*",
        ));
    }
    Ok(Some(value.to_owned()))
}

pub(super) async fn create_role(st: &ApiState, form: &Form) -> IamReply {
    unsupported(form, &["PermissionsBoundary", "Tags"])?;
    let role = IamRoleRecord {
        name: name(form, "RoleName", ROLE_NAME_MAX)?,
        role_id: random_id("AROA", 17),
        path: path(form)?,
        assume_role_policy: policy_document(form, "AssumeRolePolicyDocument")?,
        description: description(form)?,
        max_session_duration: form
            .int("MaxSessionDuration", 3600, 43_200)?
            .unwrap_or(3600),
        created_ms: crate::now_ms(),
    };
    st.registry()
        .create_iam_role(&role)
        .await
        .map_err(iam_error)?;
    role_result(st, &role)
}

pub(super) async fn get_role(st: &ApiState, form: &Form) -> IamReply {
    let role_name = name(form, "RoleName", ROLE_NAME_MAX)?;
    let role = st
        .registry()
        .get_iam_role(&role_name)
        .await
        .map_err(iam_error)?
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!("The role with name {role_name} cannot be found."))
        })?;
    role_result(st, &role)
}

pub(super) async fn list_roles(st: &ApiState, form: &Form) -> IamReply {
    let prefix = match form.get("PathPrefix") {
        None => None,
        Some(p)
            if p.starts_with('/')
                && p.len() <= 512
                && p.bytes().all(|b| (0x21..=0x7f).contains(&b)) =>
        {
            Some(p)
        }
        Some(p) => {
            return Err(validation(
                "PathPrefix",
                p,
                "satisfy regular expression pattern: \\u002F[\\u0021-\\u007F]*",
            ));
        }
    };
    let max = form.int("MaxItems", 1, 1000)?.unwrap_or(100);
    let page = ferrule_store::PageRequest {
        marker: form.get("Marker").map(str::to_owned),
        page_size: usize::try_from(max).unwrap_or(100),
        ascending: true,
    };
    let roles = st
        .registry()
        .list_iam_roles(prefix, &page)
        .await
        .map_err(iam_error)?;
    let mut out = Xml::default();
    out.open("Roles");
    for role in &roles.items {
        out.open("member");
        role_xml(st, &mut out, role);
        out.close("member");
    }
    out.close("Roles");
    truncation(&mut out, roles.next_marker.as_deref());
    Ok(Some(out))
}

pub(super) async fn delete_role(st: &ApiState, form: &Form) -> IamReply {
    let role_name = name(form, "RoleName", ROLE_NAME_MAX)?;
    st.registry()
        .delete_iam_role(&role_name)
        .await
        .map_err(iam_error)?;
    Ok(None)
}

/// The entity's name member (`RoleName`/`UserName`) and its value.
fn entity_name(form: &Form, entity: IamEntity) -> Result<(&'static str, String), ApiError> {
    let (member, max) = match entity {
        IamEntity::Role => ("RoleName", ROLE_NAME_MAX),
        IamEntity::User => ("UserName", EXISTING_USER_NAME_MAX),
    };
    Ok((member, name(form, member, max)?))
}

fn policy_not_found(entity: IamEntity, policy_name: &str) -> ApiError {
    let what = match entity {
        IamEntity::Role => "role",
        IamEntity::User => "user",
    };
    ApiError::ResourceNotFound(format!(
        "The {what} policy with name {policy_name} cannot be found."
    ))
}

pub(super) async fn put_inline_policy(st: &ApiState, form: &Form, entity: IamEntity) -> IamReply {
    let (_, entity_name) = entity_name(form, entity)?;
    let policy_name = name(form, "PolicyName", POLICY_NAME_MAX)?;
    let document = policy_document(form, "PolicyDocument")?;
    st.registry()
        .put_iam_inline_policy(entity, &entity_name, &policy_name, &document)
        .await
        .map_err(iam_error)?;
    Ok(None)
}

pub(super) async fn get_inline_policy(st: &ApiState, form: &Form, entity: IamEntity) -> IamReply {
    let (member, entity_name) = entity_name(form, entity)?;
    let policy_name = name(form, "PolicyName", POLICY_NAME_MAX)?;
    let document = st
        .registry()
        .get_iam_inline_policy(entity, &entity_name, &policy_name)
        .await
        .map_err(iam_error)?
        .ok_or_else(|| policy_not_found(entity, &policy_name))?;
    let mut out = Xml::default();
    out.text(member, &entity_name)
        .text("PolicyName", &policy_name)
        .text("PolicyDocument", &url_encoded(&document));
    Ok(Some(out))
}

pub(super) async fn list_inline_policies(
    st: &ApiState,
    form: &Form,
    entity: IamEntity,
) -> IamReply {
    let (_, entity_name) = entity_name(form, entity)?;
    let names = st
        .registry()
        .list_iam_inline_policies(entity, &entity_name)
        .await
        .map_err(iam_error)?;
    let (names, marker) = page_of(form, names)?;
    let mut out = Xml::default();
    out.open("PolicyNames");
    for n in &names {
        out.text("member", n);
    }
    out.close("PolicyNames");
    truncation(&mut out, marker.as_deref());
    Ok(Some(out))
}

pub(super) async fn delete_inline_policy(
    st: &ApiState,
    form: &Form,
    entity: IamEntity,
) -> IamReply {
    let (_, entity_name) = entity_name(form, entity)?;
    let policy_name = name(form, "PolicyName", POLICY_NAME_MAX)?;
    st.registry()
        .delete_iam_inline_policy(entity, &entity_name, &policy_name)
        .await
        .map_err(|e| match e {
            ferrule_store::RegistryError::NotFound {
                kind: "Role policy" | "User policy",
                ..
            } => policy_not_found(entity, &policy_name),
            other => iam_error(other),
        })?;
    Ok(None)
}
