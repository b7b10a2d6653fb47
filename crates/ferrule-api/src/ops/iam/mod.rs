//! IAM on the query protocol: `POST /` with a form body (`Action=CreateRole&Version=2010-05-08
//! &RoleName=...`), answered with `<{Action}Response>` XML or an XML `ErrorResponse` (see
//! [`QueryError`]).
//!
//! Operations: CreateRole, GetRole, ListRoles, DeleteRole, Put/Get/List/DeleteRolePolicy,
//! CreateUser, GetUser, DeleteUser, CreateAccessKey, ListAccessKeys, DeleteAccessKey and
//! Put/Get/List/DeleteUserPolicy. Member names, limits and error codes are botocore's `iam`
//! model (2010-05-08). Policy documents travel URL-encoded in responses, as AWS sends them
//! (botocore decodes them).
//!
//! Access keys created here are stored with their secrets so that a later step can verify
//! SigV4 requests signed with them. Authorizing requests by identity policies is that next
//! step and is not done: the control plane still accepts only its configured admin
//! credentials.

mod form;
mod roles;
mod users;
mod xml;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use ferrule_store::RegistryError;

use crate::ApiState;
use crate::error::{ApiError, IAM_XMLNS, QueryError};

use form::Form;
use xml::Xml;

/// The result of an operation: the inner XML of `<{Action}Result>`, or `None` for operations
/// without output members.
type IamReply = Result<Option<Xml>, ApiError>;

/// Runs the action named by the form body's `Action`.
pub(super) async fn handle(st: &ApiState, body: &[u8], request_id: String) -> Response {
    let (action, result) = match Form::parse(body) {
        Ok(form) => {
            let action = form.get("Action").unwrap_or_default().to_owned();
            let result = dispatch(st, &action, &form).await;
            (action, result)
        }
        Err(e) => (String::new(), Err(e)),
    };
    match result {
        Ok(inner) => {
            let mut out = Xml::default();
            out.raw(&format!("<{action}Response xmlns=\"{IAM_XMLNS}\">"));
            if let Some(inner) = inner {
                out.raw(&format!("<{action}Result>"));
                out.append(inner);
                out.raw(&format!("</{action}Result>"));
            }
            out.open("ResponseMetadata")
                .text("RequestId", &request_id)
                .close("ResponseMetadata");
            out.raw(&format!("</{action}Response>"));
            let mut response = out.into_string().into_response();
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
            response
        }
        Err(error) => QueryError { error, request_id }.into_response(),
    }
}

async fn dispatch(st: &ApiState, action: &str, form: &Form) -> IamReply {
    use ferrule_store::IamEntity::{Role, User};
    match action {
        "CreateRole" => roles::create_role(st, form).await,
        "GetRole" => roles::get_role(st, form).await,
        "ListRoles" => roles::list_roles(st, form).await,
        "DeleteRole" => roles::delete_role(st, form).await,
        "PutRolePolicy" => roles::put_inline_policy(st, form, Role).await,
        "GetRolePolicy" => roles::get_inline_policy(st, form, Role).await,
        "ListRolePolicies" => roles::list_inline_policies(st, form, Role).await,
        "DeleteRolePolicy" => roles::delete_inline_policy(st, form, Role).await,
        "CreateUser" => users::create_user(st, form).await,
        "GetUser" => users::get_user(st, form).await,
        "DeleteUser" => users::delete_user(st, form).await,
        "CreateAccessKey" => users::create_access_key(st, form).await,
        "ListAccessKeys" => users::list_access_keys(st, form).await,
        "DeleteAccessKey" => users::delete_access_key(st, form).await,
        "PutUserPolicy" => roles::put_inline_policy(st, form, User).await,
        "GetUserPolicy" => roles::get_inline_policy(st, form, User).await,
        "ListUserPolicies" => roles::list_inline_policies(st, form, User).await,
        "DeleteUserPolicy" => roles::delete_inline_policy(st, form, User).await,
        "" => Err(ApiError::UnknownOperation {
            method: "POST".to_owned(),
            path: "/ (a form body without Action)".to_owned(),
        }),
        other => Err(ApiError::UnknownOperation {
            method: "POST".to_owned(),
            path: format!("/ (Action={other})"),
        }),
    }
}

/// IAM's messages for the registry's "not found" and "already exists".
fn iam_error(e: RegistryError) -> ApiError {
    match e {
        RegistryError::NotFound { kind, id } => ApiError::ResourceNotFound(match kind {
            "Access key" => format!("The Access Key with id {id} cannot be found."),
            kind => format!(
                "The {} with name {id} cannot be found.",
                kind.to_lowercase()
            ),
        }),
        RegistryError::AlreadyExists { kind, id } => ApiError::ResourceAlreadyExists {
            message: format!("{kind} with name {id} already exists."),
            resource_id: id,
            resource_arn: String::new(),
        },
        other => other.into(),
    }
}

/// `1 validation error detected: ...`, as AWS words a constraint failure.
fn validation(member: &str, value: &str, constraint: &str) -> ApiError {
    ApiError::InvalidRequest(format!(
        "1 validation error detected: Value '{value}' at '{}' failed to satisfy constraint: \
         Member must {constraint}",
        lower_first(member)
    ))
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A name of pattern `[\w+=,.@-]+` and 1 to `max` characters (role, user, policy names).
fn name(form: &Form, member: &str, max: usize) -> Result<String, ApiError> {
    let value = form.required(member)?;
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-');
    if value.chars().count() > max {
        return Err(validation(
            member,
            value,
            &format!("have length less than or equal to {max}"),
        ));
    }
    if !value.chars().all(allowed) {
        return Err(validation(
            member,
            value,
            "satisfy regular expression pattern: [\\w+=,.@-]+",
        ));
    }
    Ok(value.to_owned())
}

/// `Path`: `/`, or `/` + 1 or more of `[\u0021-\u007E]` + `/`, at most 512 characters.
fn path(form: &Form) -> Result<String, ApiError> {
    let Some(value) = form.get("Path") else {
        return Ok("/".to_owned());
    };
    let ok = value.len() <= 512
        && (value == "/"
            || (value.len() >= 3
                && value.starts_with('/')
                && value.ends_with('/')
                && value.bytes().all(|b| (0x21..=0x7e).contains(&b))));
    if !ok {
        return Err(validation(
            "Path",
            value,
            "satisfy regular expression pattern: (\\u002F)|(\\u002F[\\u0021-\\u007E]+\\u002F)",
        ));
    }
    Ok(value.to_owned())
}

/// Refuses members Ferrule does not implement rather than ignoring them.
fn unsupported(form: &Form, members: &[&str]) -> Result<(), ApiError> {
    for member in members {
        if form.has_prefix(member) {
            return Err(ApiError::InvalidRequest(format!(
                "{member} is not supported by Ferrule's IAM"
            )));
        }
    }
    Ok(())
}

/// A policy document: JSON (at most 131072 characters) with a `Statement` whose statements
/// each have an `Effect` of `Allow` or `Deny`, and a `Version`, if given, of `2012-10-17` or
/// `2008-10-17`. AWS checks far more (actions, resources, principals); Ferrule checks the
/// structure the control plane's authorization relies on.
fn policy_document(form: &Form, member: &str) -> Result<String, ApiError> {
    let text = form.required(member)?;
    if text.chars().count() > 131_072 {
        return Err(validation(
            member,
            "(the document)",
            "have length less than or equal to 131072",
        ));
    }
    let malformed = |m: &str| ApiError::MalformedPolicy(m.to_owned());
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|_| malformed("Syntax errors in policy."))?;
    let doc = doc
        .as_object()
        .ok_or_else(|| malformed("Syntax errors in policy."))?;
    if let Some(version) = doc.get("Version")
        && !matches!(version.as_str(), Some("2012-10-17" | "2008-10-17"))
    {
        return Err(malformed("The policy must contain a valid version string"));
    }
    let statements = match doc.get("Statement") {
        Some(serde_json::Value::Array(items)) if !items.is_empty() => items.iter().collect(),
        Some(item @ serde_json::Value::Object(_)) => vec![item],
        _ => return Err(malformed("Missing required field Statement")),
    };
    for statement in statements {
        match statement.get("Effect").and_then(|e| e.as_str()) {
            Some("Allow" | "Deny") => {}
            Some(_) => return Err(malformed("Invalid effect")),
            None => return Err(malformed("Missing required field Effect")),
        }
    }
    Ok(text.to_owned())
}

/// A document URL-encoded as IAM returns policy documents (botocore URL-decodes and parses
/// it): everything but letters, digits and `-._~` is escaped, spaces as `%20`, never `+`.
fn url_encoded(document: &str) -> String {
    const ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(document, ESCAPED).to_string()
}

/// ISO 8601 UTC with seconds (`2026-11-29T09:31:00Z`), as IAM writes `CreateDate`.
fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `Marker` and `MaxItems` (1 to 1000, default 100) over a list held in memory: the marker is
/// the offset of the next item.
fn page_of<T>(form: &Form, mut items: Vec<T>) -> Result<(Vec<T>, Option<String>), ApiError> {
    let max = usize::try_from(form.int("MaxItems", 1, 1000)?.unwrap_or(100)).unwrap_or(100);
    let start = match form.get("Marker") {
        None => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= items.len())
            .ok_or_else(|| ApiError::InvalidRequest(format!("Marker {m:?} is not valid")))?,
    };
    let rest = items.split_off(start);
    let mut rest = rest.into_iter();
    let page: Vec<T> = rest.by_ref().take(max).collect();
    let next = (rest.next().is_some()).then(|| (start + page.len()).to_string());
    Ok((page, next))
}

/// `<IsTruncated>` and, when truncated, `<Marker>`.
fn truncation(out: &mut Xml, marker: Option<&str>) {
    out.text(
        "IsTruncated",
        if marker.is_some() { "true" } else { "false" },
    );
    if let Some(marker) = marker {
        out.text("Marker", marker);
    }
}

/// An id of `prefix` and `len` random uppercase letters and digits (`AROA...`, `AKIA...`).
fn random_id(prefix: &str, len: usize) -> String {
    const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut id = prefix.to_owned();
    id.push_str(&random_from(UPPER_ALNUM, len));
    id
}

/// `len` characters drawn uniformly from `alphabet` (at most 256 symbols) by the operating
/// system's generator.
fn random_from(alphabet: &[u8], len: usize) -> String {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let n = alphabet.len().clamp(1, 256);
    // Bytes at or above the largest multiple of n are redrawn, so every symbol is equally likely.
    let limit = 256 - 256 % n;
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        if rng.fill(&mut buf).is_err() {
            // The operating system's generator does not fail on the platforms Ferrule runs on;
            // if it did, a retry is all there is to do.
            continue;
        }
        for b in buf.iter().map(|&b| usize::from(b)) {
            if b < limit && out.len() < len {
                out.extend(alphabet.get(b % n).map(|&c| char::from(c)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_formats_epoch_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_764_408_660_999), "2025-11-29T09:31:00Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn random_ids_have_aws_shapes() {
        let id = random_id("AKIA", 16);
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("AKIA"));
        assert!(
            id[4..]
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        assert_ne!(random_id("AKIA", 16), id);
    }

    #[test]
    fn policy_documents_are_url_encoded_without_plus() {
        assert_eq!(url_encoded("{\"a\": 1}"), "%7B%22a%22%3A%201%7D");
    }
}
