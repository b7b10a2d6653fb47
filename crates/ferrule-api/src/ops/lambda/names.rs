//! Function names as Lambda accepts them, and the ARNs Ferrule answers with.
//!
//! A `FunctionName` may be the name (`my-function`), a partial ARN
//! (`123456789012:function:my-function`) or a full ARN
//! (`arn:aws:lambda:us-east-1:123456789012:function:my-function`), each optionally followed by
//! `:QUALIFIER`; the qualifier may also come as `?Qualifier=`. Ferrule has no versions or
//! aliases, so the only qualifier is `$LATEST`.

use super::error::LambdaError;
use crate::ApiState;

/// The only version a Ferrule function has.
pub(crate) const LATEST: &str = "$LATEST";

/// The longest plain function name (the model's 140/256 characters are for ARNs).
const MAX_NAME: usize = 64;

/// The ARN of the function `name` in this region and account.
pub(crate) fn function_arn(st: &ApiState, name: &str) -> String {
    let config = st.config();
    format!(
        "arn:{}:lambda:{}:{}:function:{name}",
        partition(&config.region),
        config.region,
        config.account_id
    )
}

/// The AWS partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub(crate) fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// Whether `c` may appear in a function name (`[a-zA-Z0-9-_]`).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Checks the name a function is created with.
pub(crate) fn check_new_name(name: &str) -> Result<(), LambdaError> {
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(name_char) {
        return Err(LambdaError::InvalidParameterValue(format!(
            "FunctionName {name:?} is not valid: a function name is 1 to {MAX_NAME} characters \
             of a-z, A-Z, 0-9, hyphen and underscore"
        )));
    }
    Ok(())
}

/// The plain name `raw` (any accepted form) refers to, with `qualifier` (`?Qualifier=`)
/// checked against its own `:QUALIFIER`. Malformed names are `InvalidParameterValueException`;
/// ARNs of another region or account, and qualifiers other than `$LATEST`, are
/// `ResourceNotFoundException`, as functions that do not exist here.
pub(crate) fn resolve(
    st: &ApiState,
    raw: &str,
    qualifier: Option<&str>,
) -> Result<String, LambdaError> {
    let invalid = || {
        LambdaError::InvalidParameterValue(format!(
            "FunctionName {raw:?} is not valid: give a function name, \
             ACCOUNT:function:NAME or arn:aws:lambda:REGION:ACCOUNT:function:NAME, \
             optionally followed by :$LATEST"
        ))
    };
    if raw.is_empty() || raw.len() > 256 {
        return Err(invalid());
    }
    let parts: Vec<&str> = raw.split(':').collect();
    let (name, own_qualifier) = if raw.starts_with("arn:") {
        let (head, rest) = parts.split_at_checked(6).ok_or_else(invalid)?;
        let [_, partition_, service, region, account, kind] = head else {
            return Err(invalid());
        };
        if !partition_.starts_with("aws") || *service != "lambda" || *kind != "function" {
            return Err(invalid());
        }
        let config = st.config();
        if *region != config.region || *account != config.account_id {
            return Err(LambdaError::ResourceNotFound(format!(
                "Function not found: {raw} (this endpoint serves region {} of account {})",
                config.region, config.account_id
            )));
        }
        split_qualifier(rest).ok_or_else(invalid)?
    } else if parts.len() >= 3
        && parts[1] == "function"
        && parts[0].len() == 12
        && parts[0].bytes().all(|b| b.is_ascii_digit())
    {
        let account = &st.config().account_id;
        if parts[0] != account {
            return Err(LambdaError::ResourceNotFound(format!(
                "Function not found: {raw} (this endpoint serves account {account})"
            )));
        }
        split_qualifier(&parts[2..]).ok_or_else(invalid)?
    } else {
        split_qualifier(&parts).ok_or_else(invalid)?
    };
    if name.is_empty() || !name.chars().all(|c| name_char(c) || c == '.') {
        return Err(invalid());
    }
    let qualifier = match (own_qualifier, qualifier) {
        (Some(a), Some(b)) if a != b => {
            return Err(LambdaError::InvalidParameterValue(format!(
                "The derived qualifier from the function name ({a}) does not match the \
                 specified qualifier ({b})."
            )));
        }
        (a, b) => a.or(b),
    };
    match qualifier {
        None | Some(LATEST) => Ok(name.to_owned()),
        Some(q) => Err(LambdaError::function_not_found(&format!(
            "{}:{q}",
            function_arn(st, name)
        ))),
    }
}

/// `[name]` or `[name, qualifier]`.
fn split_qualifier<'a>(parts: &[&'a str]) -> Option<(&'a str, Option<&'a str>)> {
    match parts {
        [name] => Some((name, None)),
        [name, qualifier] if !qualifier.is_empty() => Some((name, Some(qualifier))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    async fn state() -> (ApiState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let registry = ferrule_store::Registry::open_sqlite(&dir.path().join("f.db"))
            .await
            .unwrap();
        let issuer = std::sync::Arc::new(ferrule_pki::Issuer::load_or_create(dir.path()).unwrap());
        let config = crate::ApiConfig {
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            mqtt_endpoint: "localhost:8883".into(),
            credentials: vec![],
        };
        (ApiState::new(config, registry, issuer), dir)
    }

    #[tokio::test]
    async fn every_form_of_a_function_name_resolves() {
        let (st, _dir) = state().await;
        let ok = [
            ("f-1_x", None),
            ("f-1_x:$LATEST", None),
            ("f-1_x", Some("$LATEST")),
            ("123456789012:function:f-1_x", None),
            ("123456789012:function:f-1_x:$LATEST", Some("$LATEST")),
            ("arn:aws:lambda:eu-west-1:123456789012:function:f-1_x", None),
            (
                "arn:aws:lambda:eu-west-1:123456789012:function:f-1_x:$LATEST",
                None,
            ),
        ];
        for (raw, q) in ok {
            assert_eq!(resolve(&st, raw, q).unwrap(), "f-1_x", "{raw}");
        }
        assert_eq!(
            function_arn(&st, "f"),
            "arn:aws:lambda:eu-west-1:123456789012:function:f"
        );
    }

    #[tokio::test]
    async fn bad_names_and_other_versions_are_refused() {
        let (st, _dir) = state().await;
        let not_found = [
            ("f:1", None),
            ("f", Some("prod")),
            ("arn:aws:lambda:us-east-1:123456789012:function:f", None),
            ("999999999999:function:f", None),
        ];
        for (raw, q) in not_found {
            let e = resolve(&st, raw, q).unwrap_err();
            assert_eq!(e.code(), "ResourceNotFoundException", "{raw}: {e}");
            assert!(e.to_string().starts_with("Function not found: "), "{e}");
        }
        let invalid = [
            ("", None),
            ("a b", None),
            ("f:$LATEST:x", None),
            ("f:", None),
            ("arn:aws:s3:eu-west-1:123456789012:function:f", None),
            ("arn:aws:lambda:eu-west-1", None),
            ("f:$LATEST", Some("1")),
        ];
        for (raw, q) in invalid {
            let e = resolve(&st, raw, q).unwrap_err();
            assert_eq!(e.code(), "InvalidParameterValueException", "{raw}: {e}");
        }
        assert!(check_new_name("ok-Name_1").is_ok());
        assert!(check_new_name(&"x".repeat(64)).is_ok());
        for bad in ["", "a.b", "a:b", &"x".repeat(65)] {
            assert!(check_new_name(bad).is_err(), "{bad}");
        }
    }
}
