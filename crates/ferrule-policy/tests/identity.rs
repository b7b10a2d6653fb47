//! IAM identity policies (`Policy::parse_identity`), as the control plane evaluates them for
//! IAM users and role sessions: any service's actions, matched ignoring case; wildcards in
//! actions and resources; case-insensitive condition keys and policy variables.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrule_policy::{Context, Decision, Policy, Request, evaluate};

const CERT: &str = "arn:aws:iot:us-east-1:123456789012:cert/abc";

fn identity(statements: &str) -> Policy {
    let doc = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    Policy::parse_identity(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

fn decide(policy: &Policy, action: &str, resource: &str, ctx: &Context) -> Decision {
    evaluate([("p", policy)], &Request { action, resource }, ctx)
}

fn allowed(policy: &Policy, action: &str, resource: &str) -> bool {
    decide(policy, action, resource, &Context::default()).is_allowed()
}

#[test]
fn any_service_is_accepted_and_iot_policies_still_refuse_them() {
    let p = identity(
        r#"{"Effect":"Allow","Action":["lambda:InvokeFunction","logs:*","iam:Get*","iot:List*"],"Resource":"*"}"#,
    );
    assert!(allowed(&p, "lambda:InvokeFunction", "*"));
    assert!(allowed(&p, "logs:PutLogEvents", "*"));
    assert!(allowed(&p, "iam:GetRole", "*"));
    assert!(!allowed(&p, "iam:DeleteRole", "*"));
    let iot_only = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"lambda:*","Resource":"*"}}"#;
    assert!(Policy::parse(iot_only).is_err());
    assert!(Policy::parse_identity(iot_only).is_ok());
    for bad in [
        "lambda",
        "lambda:",
        ":Invoke",
        "lam bda:Invoke",
        "lambda:Invoke-Function",
    ] {
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"{bad}","Resource":"*"}}}}"#
        );
        assert!(Policy::parse_identity(&doc).is_err(), "{bad}");
    }
}

#[test]
fn identity_documents_are_not_held_to_iot_size_limit() {
    let resources: Vec<String> = (0..200)
        .map(|i| format!("\"arn:aws:iot:us-east-1:123456789012:thing/thing-{i}\""))
        .collect();
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"iot:DescribeThing","Resource":[{}]}}}}"#,
        resources.join(",")
    );
    assert!(Policy::parse(&doc).is_err());
    let p = Policy::parse_identity(&doc).unwrap();
    assert!(allowed(
        &p,
        "iot:DescribeThing",
        "arn:aws:iot:us-east-1:123456789012:thing/thing-199"
    ));
}

#[test]
fn actions_match_ignoring_case_with_wildcards() {
    let exact = identity(r#"{"Effect":"Allow","Action":"IoT:updatecertificate","Resource":"*"}"#);
    assert!(allowed(&exact, "iot:UpdateCertificate", CERT));
    assert!(allowed(&exact, "IOT:UPDATECERTIFICATE", CERT));
    assert!(!allowed(&exact, "iot:UpdateCertificates", CERT));
    let prefix = identity(r#"{"Effect":"Allow","Action":"iot:Update*","Resource":"*"}"#);
    assert!(allowed(&prefix, "iot:UpdateCertificate", CERT));
    assert!(allowed(&prefix, "iot:updateCACertificate", CERT));
    assert!(!allowed(&prefix, "iot:CreatePolicy", CERT));
    let one = identity(r#"{"Effect":"Allow","Action":"iot:?etPolicy","Resource":"*"}"#);
    assert!(allowed(&one, "iot:GetPolicy", CERT));
    assert!(!allowed(&one, "iot:ListPolicy", CERT));
    let service = identity(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#);
    assert!(allowed(&service, "iot:DeleteThing", CERT));
    assert!(!allowed(&service, "iotdata:Publish", CERT));
    assert!(!allowed(&service, "lambda:InvokeFunction", CERT));
}

#[test]
fn resources_match_case_sensitively_with_wildcards() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"iot:*","Resource":["arn:aws:iot:us-east-1:123456789012:cert/abc","arn:aws:iot:*:123456789012:thing/sensor-*"]}"#,
    );
    assert!(allowed(&p, "iot:UpdateCertificate", CERT));
    assert!(!allowed(
        &p,
        "iot:UpdateCertificate",
        "arn:aws:iot:us-east-1:123456789012:cert/ABC"
    ));
    assert!(!allowed(
        &p,
        "iot:UpdateCertificate",
        "arn:aws:iot:us-east-1:123456789012:cert/abd"
    ));
    assert!(allowed(
        &p,
        "iot:DescribeThing",
        "arn:aws:iot:eu-west-1:123456789012:thing/sensor-7"
    ));
    assert!(!allowed(
        &p,
        "iot:DescribeThing",
        "arn:aws:iot:eu-west-1:123456789012:thing/pump-7"
    ));
}

#[test]
fn explicit_deny_wins_over_allow() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"},
           {"Sid":"NoDeletes","Effect":"Deny","Action":"iot:Delete*","Resource":"*"}"#,
    );
    assert!(allowed(&p, "iot:CreateThing", "*"));
    assert_eq!(
        decide(&p, "iot:DeleteThing", "*", &Context::default()),
        Decision::ExplicitDeny {
            policy: "p".into(),
            sid: Some("NoDeletes".into())
        }
    );
    assert_eq!(
        decide(&p, "lambda:GetFunction", "*", &Context::default()),
        Decision::ImplicitDeny
    );
}

#[test]
fn condition_keys_and_variables_ignore_case() {
    let p = identity(
        r#"{"Effect":"Allow","Action":"iam:*","Resource":"arn:aws:iam::123456789012:user/${AWS:UserName}",
            "Condition":{"IpAddress":{"AWS:SOURCEIP":"10.0.0.0/8"},
                         "StringLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/${aws:username}"}}}"#,
    );
    let mut ctx = Context::default();
    ctx.set("aws:sourceip", "10.1.2.3");
    ctx.set("aws:username", "alice");
    ctx.set("aws:principalarn", "arn:aws:iam::123456789012:user/alice");
    let own = "arn:aws:iam::123456789012:user/alice";
    assert!(decide(&p, "iam:GetUser", own, &ctx).is_allowed());
    assert!(
        !decide(
            &p,
            "iam:GetUser",
            "arn:aws:iam::123456789012:user/bob",
            &ctx
        )
        .is_allowed()
    );
    ctx.set("aws:sourceip", "192.168.1.1");
    assert!(!decide(&p, "iam:GetUser", own, &ctx).is_allowed());
    ctx.set("aws:sourceip", "10.1.2.3");
    ctx.set("aws:principalarn", "arn:aws:iam::123456789012:user/bob");
    assert!(!decide(&p, "iam:GetUser", own, &ctx).is_allowed());
    ctx.remove("aws:sourceip");
    ctx.set("aws:principalarn", "arn:aws:iam::123456789012:user/alice");
    assert!(!decide(&p, "iam:GetUser", own, &ctx).is_allowed());
}
