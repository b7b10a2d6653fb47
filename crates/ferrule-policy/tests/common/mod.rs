//! Helpers shared by the policy test suites: policies from statement text, requests against the
//! test account's ARNs.

#![allow(dead_code, unreachable_pub)]

use ferrule_policy::{Context, Decision, Policy, Request, evaluate};

/// The ARN prefix of every resource in these tests.
pub const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

/// A 2012-10-17 policy with these statements (comma-separated JSON objects).
pub fn policy(statements: &str) -> Policy {
    let doc = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    Policy::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

/// A policy allowing `action` on `{ARN}:{resource}` (JSON-escaped by the caller if needed).
pub fn allow(action: &str, resource: &str) -> Policy {
    policy(&format!(
        r#"{{"Effect":"Allow","Action":"{action}","Resource":"{ARN}:{resource}"}}"#
    ))
}

/// A policy allowing `action` on every resource when `condition` (a JSON object) holds.
pub fn allow_if(action: &str, condition: &str) -> Policy {
    policy(&format!(
        r#"{{"Effect":"Allow","Action":"{action}","Resource":"*","Condition":{condition}}}"#
    ))
}

/// Evaluates `action` on `{ARN}:{resource}`.
pub fn check(
    policies: &[(&str, &Policy)],
    action: &str,
    resource: &str,
    ctx: &Context,
) -> Decision {
    evaluate(
        policies.iter().map(|(n, p)| (*n, *p)),
        &Request {
            action,
            resource: &format!("{ARN}:{resource}"),
        },
        ctx,
    )
}

/// Whether the single policy `p` allows `action` on `{ARN}:{resource}`.
pub fn allows(p: &Policy, action: &str, resource: &str, ctx: &Context) -> bool {
    check(&[("p", p)], action, resource, ctx).is_allowed()
}
