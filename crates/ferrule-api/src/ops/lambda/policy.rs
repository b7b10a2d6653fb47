//! A function's resource-based policy: `AddPermission`, `GetPolicy`, `RemovePermission`.
//!
//! Each permission is stored as the policy statement Lambda writes for it (the `Statement`
//! that `AddPermission` returns), so `GetPolicy` only wraps the stored statements in
//! `{"Version": "2012-10-17", "Id": "default", "Statement": [...]}`. The statements are kept
//! for the record and for tools that read them; Ferrule's own callers (the rules engine) are
//! trusted, so nothing evaluates them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::error::LambdaError;
use super::{LambdaReply, body, call, check_revision, function_name, json_reply, load};
use crate::ApiState;
use crate::error::ApiError;
use crate::extract::Call;

/// `POST /2015-03-31/functions/{FunctionName}/policy` (201).
pub(in crate::ops) async fn add_permission(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Input {
        statement_id: Option<String>,
        action: Option<String>,
        principal: Option<String>,
        source_arn: Option<String>,
        source_account: Option<String>,
        event_source_token: Option<String>,
        revision_id: Option<String>,
        #[serde(rename = "PrincipalOrgID")]
        principal_org_id: Option<String>,
        function_url_auth_type: Option<String>,
    }
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let input: Input = body(&req)?;
    let required = |member: &str| {
        LambdaError::InvalidParameterValue(format!("{member} is required but was not given"))
    };
    let sid = input.statement_id.ok_or_else(|| required("StatementId"))?;
    check_statement_id(&sid, false)?;
    let action = input.action.ok_or_else(|| required("Action"))?;
    check_action(&action)?;
    let principal = principal(&input.principal.ok_or_else(|| required("Principal"))?)?;

    let mut condition = Map::new();
    let mut string_equals = Map::new();
    if let Some(arn) = input.source_arn {
        if !arn.starts_with("arn:") || arn.chars().any(char::is_whitespace) {
            return Err(LambdaError::InvalidParameterValue(format!(
                "SourceArn {arn:?} is not an ARN"
            )));
        }
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
    }
    if let Some(account) = input.source_account {
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(LambdaError::InvalidParameterValue(format!(
                "SourceAccount {account:?} is not a 12-digit account id"
            )));
        }
        string_equals.insert("AWS:SourceAccount".into(), account.into());
    }
    if let Some(token) = input.event_source_token {
        string_equals.insert("lambda:EventSourceToken".into(), token.into());
    }
    if let Some(org) = input.principal_org_id {
        string_equals.insert("aws:PrincipalOrgID".into(), org.into());
    }
    if let Some(auth) = input.function_url_auth_type {
        if auth != "NONE" && auth != "AWS_IAM" {
            return Err(LambdaError::InvalidParameterValue(format!(
                "FunctionUrlAuthType must be NONE or AWS_IAM, not {auth:?}"
            )));
        }
        string_equals.insert("lambda:FunctionUrlAuthType".into(), auth.into());
    }
    if !string_equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(string_equals));
    }

    let f = load(&st, &name).await?;
    check_revision(&f, input.revision_id.as_deref())?;
    let arn = super::function_arn(&st, &name);
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": action,
        "Resource": arn,
    });
    if !condition.is_empty() {
        statement["Condition"] = Value::Object(condition);
    }
    let text = statement.to_string();
    st.registry()
        .add_function_permission(&name, &sid, &text)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?;
    json_reply(StatusCode::CREATED, json!({ "Statement": text }))
}

/// `GET /2015-03-31/functions/{FunctionName}/policy`: `ResourceNotFoundException` when the
/// function has no permissions, as Lambda answers.
pub(in crate::ops) async fn get_policy(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let f = load(&st, &name).await?;
    let arn = super::function_arn(&st, &name);
    let statements: Vec<Value> = st
        .registry()
        .list_function_permissions(&name)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?
        .into_iter()
        .map(|(sid, text)| {
            serde_json::from_str(&text).unwrap_or_else(|e| {
                tracing::warn!(function = %name, sid, error = %e, "stored statement is not JSON");
                json!({ "Sid": sid })
            })
        })
        .collect();
    if statements.is_empty() {
        return Err(LambdaError::ResourceNotFound(
            "The resource you requested does not exist.".to_owned(),
        ));
    }
    let policy = json!({ "Version": "2012-10-17", "Id": "default", "Statement": statements });
    json_reply(
        StatusCode::OK,
        json!({ "Policy": policy.to_string(), "RevisionId": f.revision_id }),
    )
}

/// `DELETE /2015-03-31/functions/{FunctionName}/policy/{StatementId}` (204).
pub(in crate::ops) async fn remove_permission(
    State(st): State<ApiState>,
    req: Result<Call, ApiError>,
) -> LambdaReply {
    let req = call(req)?;
    let name = function_name(&st, &req)?;
    let sid = req.label("StatementId")?;
    check_statement_id(sid, true)?;
    let f = load(&st, &name).await?;
    check_revision(&f, req.query("RevisionId"))?;
    let arn = super::function_arn(&st, &name);
    st.registry()
        .remove_function_permission(&name, sid)
        .await
        .map_err(|e| LambdaError::from_registry(e, &arn))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `StatementId`: 1 to 100 of `[a-zA-Z0-9-_]` (and `.` when naming an existing statement).
fn check_statement_id(sid: &str, allow_dot: bool) -> Result<(), LambdaError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (allow_dot && c == '.');
    if sid.is_empty() || sid.len() > 100 || !sid.chars().all(ok) {
        return Err(LambdaError::InvalidParameterValue(format!(
            "StatementId {sid:?} is not valid: 1 to 100 characters of a-z, A-Z, 0-9, - and _"
        )));
    }
    Ok(())
}

/// `Action`: `lambda:*`, `lambda:Operation` or `*`.
fn check_action(action: &str) -> Result<(), LambdaError> {
    let ok = action == "*"
        || action.strip_prefix("lambda:").is_some_and(|op| {
            op == "*" || (!op.is_empty() && op.chars().all(|c| c.is_ascii_alphabetic()))
        });
    if ok {
        Ok(())
    } else {
        Err(LambdaError::InvalidParameterValue(format!(
            "Action {action:?} is not valid: give lambda:InvokeFunction, another lambda:Operation, \
             lambda:* or *"
        )))
    }
}

/// The statement's `Principal` for the `Principal` parameter: a service
/// (`iot.amazonaws.com`), an account id, an ARN, or `*`.
fn principal(p: &str) -> Result<Value, LambdaError> {
    if p == "*" {
        return Ok(json!("*"));
    }
    if p.len() == 12 && p.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(json!({ "AWS": format!("arn:aws:iam::{p}:root") }));
    }
    if p.starts_with("arn:") && !p.chars().any(char::is_whitespace) {
        return Ok(json!({ "AWS": p }));
    }
    let service_char = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-';
    if p.contains('.') && p.chars().all(service_char) {
        return Ok(json!({ "Service": p }));
    }
    Err(LambdaError::InvalidParameterValue(format!(
        "Principal {p:?} is not valid: give a service (iot.amazonaws.com), an account id, an ARN or *"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn principals_actions_and_ids() {
        assert_eq!(
            principal("iot.amazonaws.com").unwrap(),
            json!({ "Service": "iot.amazonaws.com" })
        );
        assert_eq!(
            principal("123456789012").unwrap(),
            json!({ "AWS": "arn:aws:iam::123456789012:root" })
        );
        assert_eq!(principal("*").unwrap(), json!("*"));
        assert!(principal("not a principal").is_err());
        assert!(principal("bob").is_err());
        for ok in ["lambda:InvokeFunction", "lambda:*", "*"] {
            assert!(check_action(ok).is_ok(), "{ok}");
        }
        for bad in ["lambda:", "iot:Publish", "lambda:Invoke-Function"] {
            assert!(check_action(bad).is_err(), "{bad}");
        }
        assert!(check_statement_id("iot-rule_1", false).is_ok());
        assert!(check_statement_id("a.b", false).is_err());
        assert!(check_statement_id("a.b", true).is_ok());
        assert!(check_statement_id(&"x".repeat(101), false).is_err());
    }
}
