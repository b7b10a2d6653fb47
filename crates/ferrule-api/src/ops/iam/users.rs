//! Users and their access keys.

use ferrule_store::{IamAccessKeyRecord, IamUserRecord};

use super::form::Form;
use super::xml::Xml;
use super::{
    IamReply, iam_error, iso8601, name, page_of, path, random_from, random_id, truncation,
    unsupported,
};
use crate::ApiState;
use crate::error::ApiError;

/// `userNameType`: at most 64 characters.
const USER_NAME_MAX: usize = 64;
/// `existingUserNameType`: at most 128 characters.
const EXISTING_USER_NAME_MAX: usize = 128;
/// The characters of a secret access key.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn user_result(st: &ApiState, user: &IamUserRecord) -> IamReply {
    let account = &st.config().account_id;
    let mut out = Xml::default();
    out.open("User")
        .text("Path", &user.path)
        .text("UserName", &user.name)
        .text("UserId", &user.user_id)
        .text(
            "Arn",
            &format!("arn:aws:iam::{account}:user{}{}", user.path, user.name),
        )
        .text("CreateDate", &iso8601(user.created_ms))
        .close("User");
    Ok(Some(out))
}

/// `UserName` of the operations that default to the caller's own user. The admin
/// credentials are not an IAM user, so Ferrule requires it.
fn existing_user(form: &Form) -> Result<String, ApiError> {
    if form.get("UserName").is_none() {
        return Err(ApiError::InvalidRequest(
            "UserName is required: the credentials that signed this request are not an IAM \
             user"
                .to_owned(),
        ));
    }
    name(form, "UserName", EXISTING_USER_NAME_MAX)
}

pub(super) async fn create_user(st: &ApiState, form: &Form) -> IamReply {
    unsupported(form, &["PermissionsBoundary", "Tags"])?;
    let user = IamUserRecord {
        name: name(form, "UserName", USER_NAME_MAX)?,
        user_id: random_id("AIDA", 17),
        path: path(form)?,
        created_ms: crate::now_ms(),
    };
    st.registry()
        .create_iam_user(&user)
        .await
        .map_err(iam_error)?;
    user_result(st, &user)
}

pub(super) async fn get_user(st: &ApiState, form: &Form) -> IamReply {
    let user_name = existing_user(form)?;
    let user = st
        .registry()
        .get_iam_user(&user_name)
        .await
        .map_err(iam_error)?
        .ok_or_else(|| {
            ApiError::ResourceNotFound(format!("The user with name {user_name} cannot be found."))
        })?;
    user_result(st, &user)
}

pub(super) async fn delete_user(st: &ApiState, form: &Form) -> IamReply {
    let user_name = name(form, "UserName", EXISTING_USER_NAME_MAX)?;
    st.registry()
        .delete_iam_user(&user_name)
        .await
        .map_err(iam_error)?;
    Ok(None)
}

fn key_xml(out: &mut Xml, key: &IamAccessKeyRecord, with_secret: bool) {
    out.text("UserName", &key.user_name)
        .text("AccessKeyId", &key.access_key_id)
        .text("Status", &key.status);
    if with_secret {
        out.text("SecretAccessKey", &key.secret_access_key);
    }
    out.text("CreateDate", &iso8601(key.created_ms));
}

pub(super) async fn create_access_key(st: &ApiState, form: &Form) -> IamReply {
    let user_name = existing_user(form)?;
    let mut key = IamAccessKeyRecord {
        access_key_id: random_id("AKIA", 16),
        user_name,
        secret_access_key: random_from(SECRET_ALPHABET, 40),
        status: "Active".to_owned(),
        created_ms: crate::now_ms(),
    };
    st.registry()
        .create_iam_access_key(&key)
        .await
        .map_err(iam_error)?;
    // The reply names the user as stored, whatever case the caller used.
    if let Some(stored) = st
        .registry()
        .get_iam_access_key(&key.access_key_id)
        .await
        .map_err(iam_error)?
    {
        key = stored;
    }
    let mut out = Xml::default();
    out.open("AccessKey");
    key_xml(&mut out, &key, true);
    out.close("AccessKey");
    Ok(Some(out))
}

pub(super) async fn list_access_keys(st: &ApiState, form: &Form) -> IamReply {
    let user_name = existing_user(form)?;
    let keys = st
        .registry()
        .list_iam_access_keys(&user_name)
        .await
        .map_err(iam_error)?;
    let (keys, marker) = page_of(form, keys)?;
    let mut out = Xml::default();
    out.open("AccessKeyMetadata");
    for key in &keys {
        out.open("member");
        key_xml(&mut out, key, false);
        out.close("member");
    }
    out.close("AccessKeyMetadata");
    truncation(&mut out, marker.as_deref());
    Ok(Some(out))
}

pub(super) async fn delete_access_key(st: &ApiState, form: &Form) -> IamReply {
    let user_name = existing_user(form)?;
    let access_key_id = form.required("AccessKeyId")?;
    if access_key_id.len() < 16
        || access_key_id.len() > 128
        || !access_key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(super::validation(
            "AccessKeyId",
            access_key_id,
            "satisfy regular expression pattern: [\\w]+ and have length from 16 to 128",
        ));
    }
    st.registry()
        .delete_iam_access_key(&user_name, access_key_id)
        .await
        .map_err(iam_error)?;
    Ok(None)
}
