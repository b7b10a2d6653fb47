//! The checks `CreateFunction` and the update operations make before anything is stored:
//! runtime, handler, execution role, limits, environment variables and the code zip, each
//! failure an `InvalidParameterValueException` that names the problem.

use std::collections::BTreeMap;

use ferrule_store::IamRoleRecord;
use serde_json::Value;

use super::error::LambdaError;
use crate::ApiState;

/// Timeout bounds in seconds, and the default.
pub(crate) const TIMEOUT: (i64, i64, i64) = (1, 900, 3);
/// Memory bounds in MB, and the default.
pub(crate) const MEMORY: (i64, i64, i64) = (128, 10_240, 128);
/// The combined size of the environment variables Lambda accepts.
const MAX_ENVIRONMENT_BYTES: usize = 4096;

/// What the runtimes Ferrule runs look like, for error messages.
const SUPPORTED_RUNTIMES: &str =
    "python3.N with N >= 8 (python3.8 ... python3.14), provided, provided.al2, provided.al2023";

/// Variables the Lambda environment sets itself, which AWS refuses to let a function override.
const RESERVED_VARIABLES: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_REGION",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

/// Whether `runtime` is one Ferrule runs, and whether it is Python (which needs a handler).
pub(crate) fn check_runtime(runtime: &str) -> Result<bool, LambdaError> {
    if matches!(runtime, "provided" | "provided.al2" | "provided.al2023") {
        return Ok(false);
    }
    let python_minor = runtime
        .strip_prefix("python3.")
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'))
        .and_then(|n| n.parse::<u32>().ok());
    match python_minor {
        Some(n) if n >= 8 => Ok(true),
        _ => Err(LambdaError::InvalidParameterValue(format!(
            "The runtime parameter of {runtime} is not supported by Ferrule. Supported runtimes: \
             {SUPPORTED_RUNTIMES}."
        ))),
    }
}

/// The handler: required for Python (`module.function`), at most 128 characters, no
/// whitespace.
pub(crate) fn check_handler(handler: &str, python: bool) -> Result<(), LambdaError> {
    if handler.is_empty() {
        if python {
            return Err(LambdaError::InvalidParameterValue(
                "Handler is required for the Python runtimes: give it as module.function, \
                 e.g. lambda_function.lambda_handler"
                    .to_owned(),
            ));
        }
        return Ok(());
    }
    if handler.chars().count() > 128 || handler.chars().any(char::is_whitespace) {
        return Err(LambdaError::InvalidParameterValue(format!(
            "Handler {handler:?} is not valid: at most 128 characters, without whitespace"
        )));
    }
    Ok(())
}

/// An integer member within bounds.
pub(crate) fn check_range(
    member: &str,
    value: i64,
    (min, max, _): (i64, i64, i64),
) -> Result<i64, LambdaError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(LambdaError::InvalidParameterValue(format!(
            "{member} must be from {min} to {max}, not {value}"
        )))
    }
}

/// The description: at most 256 characters.
pub(crate) fn check_description(description: &str) -> Result<(), LambdaError> {
    if description.chars().count() > 256 {
        return Err(LambdaError::InvalidParameterValue(
            "Description is longer than 256 characters".to_owned(),
        ));
    }
    Ok(())
}

/// Environment variable names (`[a-zA-Z][a-zA-Z0-9_]+`), the reserved names and the 4 KB
/// limit, with AWS's messages.
pub(crate) fn check_environment(variables: &BTreeMap<String, String>) -> Result<(), LambdaError> {
    if let Some(bad) = variables.keys().find(|k| !valid_variable_name(k)) {
        return Err(LambdaError::InvalidParameterValue(format!(
            "Environment variable name {bad:?} is not valid: it must match [a-zA-Z][a-zA-Z0-9_]+"
        )));
    }
    let reserved: Vec<&str> = variables
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_VARIABLES.contains(k) || k.starts_with("AWS_LAMBDA_"))
        .collect();
    if !reserved.is_empty() {
        return Err(LambdaError::InvalidParameterValue(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided contains reserved keys that are currently not supported \
             for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    let size = serde_json::to_string(variables).map_or(usize::MAX, |s| s.len());
    if size > MAX_ENVIRONMENT_BYTES {
        return Err(LambdaError::InvalidParameterValue(format!(
            "Lambda was unable to configure your environment variables because the environment \
             variables you have provided exceeded the 4KB limit. String measured: {size} bytes"
        )));
    }
    Ok(())
}

fn valid_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Decodes `Code.ZipFile`/`ZipFile` (base64 in the JSON body) and checks that it is a zip
/// archive: its end-of-central-directory record is where the format puts it.
pub(crate) fn zip_file(base64: &str) -> Result<Vec<u8>, LambdaError> {
    let zip = ferrule_sql::base64_decode(base64).ok_or_else(|| {
        LambdaError::InvalidParameterValue("ZipFile is not valid base64".to_owned())
    })?;
    if !has_end_of_central_directory(&zip) {
        return Err(LambdaError::InvalidParameterValue(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
                .to_owned(),
        ));
    }
    Ok(zip)
}

/// The end-of-central-directory record (`PK\x05\x06`, 22 bytes plus a comment of at most
/// 65535 bytes) ends the archive.
fn has_end_of_central_directory(zip: &[u8]) -> bool {
    const RECORD: usize = 22;
    if zip.len() < RECORD {
        return false;
    }
    let earliest = zip.len().saturating_sub(RECORD + usize::from(u16::MAX));
    (earliest..=zip.len() - RECORD).rev().any(|at| {
        zip.get(at..at + 4) == Some(b"PK\x05\x06".as_slice())
            && zip
                .get(at + 20..at + 22)
                .map(|n| usize::from(u16::from_le_bytes([n[0], n[1]])))
                .is_some_and(|comment| at + RECORD + comment == zip.len())
    })
}

/// `base64(SHA-256(zip))`, Lambda's `CodeSha256`.
pub(crate) fn code_sha256(zip: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, zip);
    ferrule_sql::base64_encode(digest.as_ref())
}

/// Checks that `role` is an IAM role ARN (the model's pattern), that the role exists in this
/// account and that its trust policy lets Lambda assume it.
pub(crate) async fn check_role(st: &ApiState, role: &str) -> Result<(), LambdaError> {
    let (account, path_and_name) = parse_role_arn(role).ok_or_else(|| {
        LambdaError::InvalidParameterValue(format!(
            "Role {role:?} is not valid: it must be an IAM role ARN, \
             arn:aws:iam::ACCOUNT:role/NAME"
        ))
    })?;
    let cannot_assume = || {
        LambdaError::InvalidParameterValue(
            "The role defined for the function cannot be assumed by Lambda.".to_owned(),
        )
    };
    if account != st.config().account_id {
        return Err(cannot_assume());
    }
    let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
    let found = st
        .registry()
        .get_iam_role(name)
        .await
        .map_err(|e| LambdaError::from_registry(e, role))?;
    match found {
        Some(r) if same_role(&r, path_and_name) && lambda_may_assume(&r.assume_role_policy) => {
            Ok(())
        }
        _ => Err(cannot_assume()),
    }
}

/// `(account, path-and-name)` of `arn:aws*:iam::ACCOUNT:role/PATH/NAME`, when `arn` matches
/// `arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`.
fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let partition_ok = partition.is_empty()
        || partition
            .strip_prefix("aws")
            .is_some_and(|p| p.chars().all(|c| c.is_ascii_alphabetic() || c == '-'));
    let rest = rest.strip_prefix("iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path_and_name = resource.strip_prefix("role")?;
    let path_and_name = path_and_name.strip_prefix('/').unwrap_or(path_and_name);
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@-_/".contains(c);
    let ok = partition_ok
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !path_and_name.is_empty()
        && path_and_name.chars().all(allowed)
        && !path_and_name.ends_with('/');
    ok.then_some((account, path_and_name))
}

/// Whether `path_and_name` (`iot/Ingest`) is `role`'s path and name (names ignore case, as IAM's
/// do).
fn same_role(role: &IamRoleRecord, path_and_name: &str) -> bool {
    let (path, name) = match path_and_name.rsplit_once('/') {
        Some((path, name)) => (format!("/{path}/"), name),
        None => ("/".to_owned(), path_and_name),
    };
    role.path == path && role.name.eq_ignore_ascii_case(name)
}

/// Whether a trust policy has an `Allow` statement for the principal `lambda.amazonaws.com`
/// (or `*`) and the action `sts:AssumeRole` (or a wildcard covering it).
pub(crate) fn lambda_may_assume(trust_policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(trust_policy) else {
        return false;
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => return false,
    };
    statements.into_iter().any(|s| {
        s.get("Effect").and_then(Value::as_str) == Some("Allow")
            && s.get("Condition").is_none()
            && principal_is_lambda(s.get("Principal"))
            && strings(s.get("Action")).iter().any(|a| {
                let a = a.to_ascii_lowercase();
                a == "*" || a == "sts:*" || a == "sts:assumerole"
            })
    })
}

fn principal_is_lambda(principal: Option<&Value>) -> bool {
    match principal {
        Some(Value::String(s)) => s == "*",
        Some(Value::Object(map)) => {
            strings(map.get("Service"))
                .iter()
                .any(|s| s == "lambda.amazonaws.com")
                || strings(map.get("AWS")).iter().any(|s| s == "*")
        }
        _ => false,
    }
}

/// A string or a list of strings.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn runtimes() {
        for ok in ["python3.8", "python3.12", "python3.14", "python3.20"] {
            assert_eq!(check_runtime(ok), Ok(true), "{ok}");
        }
        for ok in ["provided", "provided.al2", "provided.al2023"] {
            assert_eq!(check_runtime(ok), Ok(false), "{ok}");
        }
        for bad in [
            "python3.7",
            "python2.7",
            "python3.",
            "python3.012",
            "nodejs20.x",
            "java21",
            "",
        ] {
            let e = check_runtime(bad).unwrap_err();
            assert!(e.to_string().contains("provided.al2023"), "{e}");
        }
    }

    #[test]
    fn role_arns_follow_the_model_pattern() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/iot/Ingest"),
            Some(("123456789012", "iot/Ingest"))
        );
        assert_eq!(
            parse_role_arn("arn:aws-cn:iam::123456789012:role/r+=,.@-_"),
            Some(("123456789012", "r+=,.@-_"))
        );
        for bad in [
            "role/x",
            "arn:aws:iam::12345678901:role/x",
            "arn:aws:iam::123456789012:user/x",
            "arn:aws:iam:us-east-1:123456789012:role/x",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam::123456789012:role/a b",
        ] {
            assert_eq!(parse_role_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn trust_policies() {
        let allow = |principal: &str, action: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":{action}}}]}}"#
            )
        };
        assert!(lambda_may_assume(&allow(
            r#"{"Service":"lambda.amazonaws.com"}"#,
            r#""sts:AssumeRole""#
        )));
        assert!(lambda_may_assume(&allow(
            r#"{"Service":["iot.amazonaws.com","lambda.amazonaws.com"]}"#,
            r#"["sts:TagSession","sts:*"]"#
        )));
        assert!(lambda_may_assume(&allow(r#""*""#, r#""*""#)));
        assert!(!lambda_may_assume(&allow(
            r#"{"Service":"iot.amazonaws.com"}"#,
            r#""sts:AssumeRole""#
        )));
        assert!(!lambda_may_assume(&allow(
            r#"{"Service":"lambda.amazonaws.com"}"#,
            r#""sts:GetCallerIdentity""#
        )));
        assert!(!lambda_may_assume(
            r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"*"}}"#
        ));
        assert!(!lambda_may_assume("not json"));
    }

    #[test]
    fn environment_variables() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(check_environment(&env(&[("STAGE", "dev"), ("a1_", "x")])).is_ok());
        let e = check_environment(&env(&[("AWS_REGION", "x"), ("AWS_LAMBDA_X", "y")])).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("Reserved keys used in this request: AWS_LAMBDA_X, AWS_REGION"),
            "{e}"
        );
        for bad in ["1A", "A", "_HANDLER", "A-B"] {
            assert!(check_environment(&env(&[(bad, "x")])).is_err(), "{bad}");
        }
        let big = "x".repeat(4100);
        assert!(
            check_environment(&env(&[("BIG", &big)]))
                .unwrap_err()
                .to_string()
                .contains("4KB")
        );
    }

    #[test]
    fn zips_need_their_end_record() {
        let mut zip = b"PK\x03\x04 local file ...".to_vec();
        zip.extend_from_slice(b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x03\0abc");
        assert!(has_end_of_central_directory(&zip));
        assert!(!has_end_of_central_directory(&zip[..zip.len() - 1]));
        assert!(!has_end_of_central_directory(
            b"not a zip at all, not at all"
        ));
        assert!(!has_end_of_central_directory(b""));
        let e = zip_file(&ferrule_sql::base64_encode(b"hello")).unwrap_err();
        assert!(e.to_string().starts_with("Could not unzip uploaded file"));
        assert_eq!(
            code_sha256(b""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }
}
