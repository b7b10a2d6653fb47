//! Policy evaluation as the broker uses it: AWS's documented policies, every variable, and the
//! deny-overrides rule.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ferrule_policy::{Context, Decision, Policy, Request, evaluate, glob_match};
use proptest::prelude::*;

const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

fn policy(statements: &str) -> Policy {
    let doc = format!(r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#);
    Policy::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

fn check(policies: &[(&str, &Policy)], action: &str, resource: &str, ctx: &Context) -> Decision {
    evaluate(
        policies.iter().map(|(n, p)| (*n, *p)),
        &Request {
            action,
            resource: &format!("{ARN}:{resource}"),
        },
        ctx,
    )
}

fn device_ctx() -> Context {
    let mut ctx = Context::default();
    ctx.set("iot:ClientId", "sensor-1");
    ctx.set("iot:Connection.Thing.ThingName", "sensor-1");
    ctx.set("iot:Connection.Thing.ThingTypeName", "thermometer");
    ctx.set("iot:Connection.Thing.Attributes[room]", "kitchen");
    ctx.set("iot:Connection.Thing.IsAttached", "true");
    ctx.set_certificate_attribute("iot:Certificate.Subject.CommonName", &["sensor-1".into()]);
    ctx.set_certificate_attribute(
        "iot:Certificate.Subject.Organization",
        &["Acme".into(), "Acme Labs".into()],
    );
    ctx.set_certificate_attribute("iot:Certificate.Issuer.CommonName", &["Acme Root".into()]);
    ctx.set("iot:Certificate.SerialNumber", "0a1b");
    ctx.set("aws:SourceIp", "127.0.0.1");
    ctx
}

#[test]
fn nothing_is_allowed_without_a_statement() {
    let ctx = device_ctx();
    assert_eq!(
        check(&[], "iot:Connect", "client/sensor-1", &ctx),
        Decision::ImplicitDeny
    );
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:topic/a"}}"#
    ));
    assert_eq!(
        check(&[("p", &p)], "iot:Connect", "client/sensor-1", &ctx),
        Decision::ImplicitDeny
    );
    assert!(check(&[("p", &p)], "iot:Publish", "topic/a", &ctx).is_allowed());
    assert!(!check(&[("p", &p)], "iot:Publish", "topic/a/b", &ctx).is_allowed());
}

#[test]
fn explicit_deny_wins_over_any_allow_in_any_policy() {
    let ctx = device_ctx();
    let allow_all = policy(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#);
    let deny = policy(&format!(
        r#"{{"Sid":"no-admin","Effect":"Deny","Action":"iot:Publish","Resource":"{ARN}:topic/admin/*"}}"#
    ));
    for order in [
        [("all", &allow_all), ("deny", &deny)],
        [("deny", &deny), ("all", &allow_all)],
    ] {
        assert_eq!(
            check(&order, "iot:Publish", "topic/admin/reboot", &ctx),
            Decision::ExplicitDeny {
                policy: "deny".into(),
                sid: Some("no-admin".into())
            }
        );
        assert!(check(&order, "iot:Publish", "topic/data", &ctx).is_allowed());
    }
}

#[test]
fn actions_match_case_insensitively_and_with_wildcards() {
    let ctx = device_ctx();
    let p = policy(r#"{"Effect":"Allow","Action":["iot:Get*","iot:receive"],"Resource":"*"}"#);
    let ps = [("p", &p)];
    assert!(check(&ps, "iot:GetThingShadow", "thing/x", &ctx).is_allowed());
    assert!(check(&ps, "iot:Receive", "topic/x", &ctx).is_allowed());
    assert!(!check(&ps, "iot:Publish", "topic/x", &ctx).is_allowed());
}

#[test]
fn topic_filters_are_literal_in_subscribe_resources() {
    let ctx = device_ctx();
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Subscribe","Resource":["{ARN}:topicfilter/a/+/b","{ARN}:topicfilter/data/*"]}}"#
    ));
    let ps = [("p", &p)];
    assert!(check(&ps, "iot:Subscribe", "topicfilter/a/+/b", &ctx).is_allowed());
    assert!(!check(&ps, "iot:Subscribe", "topicfilter/a/x/b", &ctx).is_allowed());
    assert!(!check(&ps, "iot:Subscribe", "topicfilter/a/#", &ctx).is_allowed());
    assert!(check(&ps, "iot:Subscribe", "topicfilter/data/#", &ctx).is_allowed());
}

#[test]
fn every_documented_variable_substitutes() {
    let ctx = device_ctx();
    let cases = [
        ("client/${iot:ClientId}", "client/sensor-1"),
        (
            "topic/${iot:Connection.Thing.ThingName}/t",
            "topic/sensor-1/t",
        ),
        (
            "topic/${iot:Connection.Thing.ThingTypeName}",
            "topic/thermometer",
        ),
        (
            "topic/${iot:Connection.Thing.Attributes[room]}",
            "topic/kitchen",
        ),
        (
            "topic/${iot:Certificate.Subject.CommonName}",
            "topic/sensor-1",
        ),
        (
            "topic/${iot:Certificate.Subject.Organization}",
            "topic/Acme",
        ),
        (
            "topic/${iot:Certificate.Subject.Organization.1}",
            "topic/Acme Labs",
        ),
        (
            "topic/${iot:Certificate.Issuer.CommonName}",
            "topic/Acme Root",
        ),
        ("topic/${iot:Certificate.SerialNumber}", "topic/0a1b"),
    ];
    for (pattern, resource) in cases {
        let p = policy(&format!(
            r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"{ARN}:{pattern}"}}"#
        ));
        assert!(
            check(&[("p", &p)], "iot:Publish", resource, &ctx).is_allowed(),
            "{pattern}"
        );
        assert!(
            !check(&[("p", &p)], "iot:Publish", &format!("{resource}x"), &ctx).is_allowed(),
            "{pattern}"
        );
    }
}

#[test]
fn a_variable_without_a_value_matches_nothing() {
    let mut ctx = device_ctx();
    ctx.remove("iot:Connection.Thing.ThingName");
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/${{iot:Connection.Thing.ThingName}}"}}"#
    ));
    assert!(!check(&[("p", &p)], "iot:Connect", "client/sensor-1", &ctx).is_allowed());
    assert!(!check(&[("p", &p)], "iot:Connect", "client/", &ctx).is_allowed());
}

#[test]
fn the_2008_version_keeps_variables_literal() {
    let ctx = device_ctx();
    let p = Policy::parse(&format!(
        r#"{{"Version":"2008-10-17","Statement":{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/${{iot:ClientId}}"}}}}"#
    ))
    .unwrap();
    assert!(!check(&[("p", &p)], "iot:Connect", "client/sensor-1", &ctx).is_allowed());
    assert!(check(&[("p", &p)], "iot:Connect", "client/${iot:ClientId}", &ctx).is_allowed());
}

#[test]
fn thing_attachment_condition_as_aws_documents_it() {
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
            "Condition":{{"Bool":{{"iot:Connection.Thing.IsAttached":"true"}}}}}}"#
    ));
    let mut ctx = device_ctx();
    assert!(check(&[("p", &p)], "iot:Connect", "client/sensor-1", &ctx).is_allowed());
    ctx.set("iot:Connection.Thing.IsAttached", "false");
    assert!(!check(&[("p", &p)], "iot:Connect", "client/sensor-1", &ctx).is_allowed());
}

#[test]
fn not_action_and_not_resource() {
    let ctx = device_ctx();
    let p = policy(&format!(
        r#"{{"Effect":"Allow","NotAction":"iot:Publish","Resource":"*"}},
           {{"Effect":"Deny","Action":"iot:Receive","NotResource":"{ARN}:topic/public/*"}}"#
    ));
    let ps = [("p", &p)];
    assert!(check(&ps, "iot:Connect", "client/x", &ctx).is_allowed());
    assert!(!check(&ps, "iot:Publish", "topic/x", &ctx).is_allowed());
    assert!(check(&ps, "iot:Receive", "topic/public/news", &ctx).is_allowed());
    assert!(matches!(
        check(&ps, "iot:Receive", "topic/private/x", &ctx),
        Decision::ExplicitDeny { .. }
    ));
}

#[test]
fn connect_attributes_condition() {
    let p = policy(&format!(
        r#"{{"Effect":"Allow","Action":"iot:Connect","Resource":"{ARN}:client/*",
            "Condition":{{"ForAllValues:StringEquals":{{"iot:ConnectAttributes":["PersistentConnect"]}}}}}}"#
    ));
    let mut ctx = device_ctx();
    ctx.set_multi("iot:ConnectAttributes", ["PersistentConnect"]);
    assert!(check(&[("p", &p)], "iot:Connect", "client/a", &ctx).is_allowed());
    ctx.set_multi("iot:ConnectAttributes", ["PersistentConnect", "LastWill"]);
    assert!(!check(&[("p", &p)], "iot:Connect", "client/a", &ctx).is_allowed());
}

fn literal() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-c/+#]{0,6}").expect("regex")
}

proptest! {
    /// Adding a policy never turns a Deny into an Allow unless it allows, and a Deny-everything
    /// policy always wins.
    #[test]
    fn deny_everything_wins(topic in literal(), allow_pattern in "[a-c/*?]{0,6}") {
        let ctx = Context::default();
        let allow = policy(&format!(r#"{{"Effect":"Allow","Action":"iot:*","Resource":"{ARN}:topic/{allow_pattern}"}}"#));
        let deny = policy(r#"{"Effect":"Deny","Action":"*","Resource":"*"}"#);
        let d = check(&[("allow", &allow), ("deny", &deny)], "iot:Publish", &format!("topic/{topic}"), &ctx);
        let denied = matches!(d, Decision::ExplicitDeny { .. });
        prop_assert!(denied);
    }

    /// The glob agrees with a regex built from the same pattern.
    #[test]
    fn glob_agrees_with_regex_oracle(pattern in "[ab/*?]{0,8}", value in "[ab/]{0,8}") {
        let mut re = String::from("^");
        for c in pattern.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                '/' => re.push('/'),
                c => re.push(c),
            }
        }
        re.push('$');
        let expected = regex_lite_match(&re, &value);
        prop_assert_eq!(glob_match(&pattern, &value), expected, "pattern {} value {}", pattern, value);
    }
}

/// A tiny backtracking matcher for the regex subset above (`^`, `$`, `.`, `.*`, literals), so the
/// oracle does not share code with the implementation.
fn regex_lite_match(re: &str, value: &str) -> bool {
    fn go(re: &[u8], v: &[u8]) -> bool {
        match re {
            [b'$'] => v.is_empty(),
            [b'.', b'*', rest @ ..] => (0..=v.len()).any(|k| go(rest, &v[k..])),
            [b'.', rest @ ..] => !v.is_empty() && go(rest, &v[1..]),
            [c, rest @ ..] => v.first() == Some(c) && go(rest, &v[1..]),
            [] => v.is_empty(),
        }
    }
    go(&re.as_bytes()[1..], value.as_bytes())
}
