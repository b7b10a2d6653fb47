//! Properties of evaluation over random policies and requests: an applicable Deny always wins,
//! the order of policies and statements does not matter, adding an Allow only ever allows more,
//! and the resource glob agrees with an independent matcher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ARN, check};
use ferrule_policy::{Context, Decision, Policy, glob_match};
use proptest::prelude::*;

/// The outcome without the names of the deciding policy and statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Allow,
    ExplicitDeny,
    ImplicitDeny,
}

fn kind(d: &Decision) -> Kind {
    match d {
        Decision::Allow { .. } => Kind::Allow,
        Decision::ExplicitDeny { .. } => Kind::ExplicitDeny,
        Decision::ImplicitDeny => Kind::ImplicitDeny,
    }
}

const ACTIONS: [&str; 4] = ["iot:Publish", "iot:Subscribe", "iot:Receive", "iot:Connect"];

/// One statement as JSON: a small action and resource vocabulary (with wildcards, MQTT
/// wildcard characters and a variable), sometimes NotAction / NotResource, sometimes a
/// condition, so that random statements apply often enough to be interesting.
fn statement(effect: &'static str) -> impl Strategy<Value = String> {
    let action = prop_oneof![
        Just("\"iot:*\"".to_owned()),
        Just("\"*\"".to_owned()),
        Just("\"iot:Publish\"".to_owned()),
        Just("\"iot:Sub*\"".to_owned()),
        Just("[\"iot:Receive\",\"iot:Publish\"]".to_owned()),
        Just("\"iot:Connec?\"".to_owned()),
    ];
    let resource = prop_oneof![
        Just("*".to_owned()),
        "[ab/*?+#]{0,5}".prop_map(|p| format!("{ARN}:topic/{p}")),
        "[ab/*?+#]{0,5}".prop_map(|p| format!("{ARN}:topicfilter/{p}")),
        "[ab/*]{0,3}".prop_map(|p| format!("{ARN}:topic/{p}${{iot:ClientId}}*")),
        Just(format!("{ARN}:client/${{iot:ClientId}}")),
        Just(format!("{ARN}:*")),
    ];
    let condition = prop_oneof![
        3 => Just(String::new()),
        1 => Just(r#","Condition":{"StringEquals":{"iot:ClientId":"a"}}"#.to_owned()),
        1 => Just(r#","Condition":{"Bool":{"iot:Connection.Thing.IsAttached":"true"}}"#.to_owned()),
        1 => Just(r#","Condition":{"StringLike":{"iot:ClientId":"${iot:Connection.Thing.ThingName}*"}}"#.to_owned()),
    ];
    (action, any::<bool>(), resource, any::<bool>(), condition).prop_map(
        move |(action, not_action, resource, not_resource, condition)| {
            let action_key = if not_action { "NotAction" } else { "Action" };
            let resource_key = if not_resource { "NotResource" } else { "Resource" };
            format!(
                r#"{{"Effect":"{effect}","{action_key}":{action},"{resource_key}":"{resource}"{condition}}}"#
            )
        },
    )
}

fn any_statement() -> impl Strategy<Value = String> {
    prop_oneof![3 => statement("Allow"), 1 => statement("Deny")]
}

/// The statements of one policy, kept as text so that they can be reordered.
fn policy_statements() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(any_statement(), 1..4)
}

fn parse(statements: &[String]) -> Policy {
    let doc = format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    );
    Policy::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

/// A request: action, resource after the ARN prefix, and a context.
#[derive(Debug, Clone)]
struct Req {
    action: &'static str,
    resource: String,
    ctx: Context,
}

fn request() -> impl Strategy<Value = Req> {
    let resource = prop_oneof![
        "[ab/+#]{0,5}".prop_map(|t| format!("topic/{t}")),
        "[ab/+#]{0,5}".prop_map(|t| format!("topicfilter/{t}")),
        "[ab]{0,2}".prop_map(|c| format!("client/{c}")),
    ];
    (
        prop::sample::select(ACTIONS.to_vec()),
        resource,
        prop::option::of("[ab+]{0,2}"),
        prop::option::of("[ab]{1,2}"),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(action, resource, client_id, thing, attached)| {
            let mut ctx = Context::default();
            if let Some(c) = client_id {
                ctx.set("iot:ClientId", c);
            }
            if let Some(t) = thing {
                ctx.set("iot:Connection.Thing.ThingName", t);
            }
            if let Some(a) = attached {
                ctx.set("iot:Connection.Thing.IsAttached", a.to_string());
            }
            Req {
                action,
                resource,
                ctx,
            }
        })
}

fn decide(policies: &[Policy], req: &Req) -> Decision {
    let named: Vec<(String, &Policy)> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("p{i}"), p))
        .collect();
    let refs: Vec<(&str, &Policy)> = named.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    check(&refs, req.action, &req.resource, &req.ctx)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Adding a policy with a Deny statement that applies to the request makes the decision
    /// ExplicitDeny, wherever the policy goes and whatever the others say; a Deny that does not
    /// apply changes nothing.
    #[test]
    fn an_applicable_deny_overrides_everything(
        policies in prop::collection::vec(policy_statements(), 0..4),
        deny in statement("Deny"),
        at in any::<prop::sample::Index>(),
        req in request(),
    ) {
        let parsed: Vec<Policy> = policies.iter().map(|s| parse(s)).collect();
        let before = decide(&parsed, &req);
        let deny = parse(&[deny]);
        let applies = kind(&decide(std::slice::from_ref(&deny), &req)) == Kind::ExplicitDeny;
        let mut with = parsed.clone();
        with.insert(at.index(parsed.len() + 1), deny);
        let after = decide(&with, &req);
        if applies {
            prop_assert_eq!(kind(&after), Kind::ExplicitDeny);
        } else {
            prop_assert_eq!(kind(&after), kind(&before));
        }
    }

    /// (a) again, with a Deny built to apply: its resource is the request's own, some characters
    /// replaced by wildcards.
    #[test]
    fn a_deny_naming_the_resource_always_wins(
        policies in prop::collection::vec(policy_statements(), 0..4),
        req in request(),
        masks in prop::collection::vec(0u8..4, 0..16),
        at in any::<prop::sample::Index>(),
    ) {
        let resource: String = req
            .resource
            .chars()
            .enumerate()
            .map(|(i, c)| match masks.get(i) {
                Some(1) => "?".to_owned(),
                Some(2) => "*".to_owned(),
                _ => c.to_string(),
            })
            .collect();
        let deny = parse(&[format!(
            r#"{{"Effect":"Deny","Action":"{}","Resource":"{ARN}:{resource}"}}"#,
            req.action
        )]);
        let mut parsed: Vec<Policy> = policies.iter().map(|s| parse(s)).collect();
        parsed.insert(at.index(parsed.len() + 1), deny);
        prop_assert_eq!(kind(&decide(&parsed, &req)), Kind::ExplicitDeny);
    }

    /// (b) Shuffling the policies, and the statements inside each, does not change whether the
    /// request is allowed, denied explicitly or denied implicitly.
    #[test]
    fn order_does_not_matter(
        (policies, shuffled) in prop::collection::vec(policy_statements(), 0..5)
            .prop_flat_map(|ps| {
                let inner: Vec<_> = ps.iter().map(|s| Just(s.clone()).prop_shuffle()).collect();
                (Just(ps), inner.prop_shuffle())
            }),
        req in request(),
    ) {
        let a: Vec<Policy> = policies.iter().map(|s| parse(s)).collect();
        let b: Vec<Policy> = shuffled.iter().map(|s| parse(s)).collect();
        prop_assert_eq!(kind(&decide(&a, &req)), kind(&decide(&b, &req)));
    }

    /// (c) Adding an Allow never turns an ExplicitDeny into an Allow and never turns an Allow
    /// into a deny; it turns an ImplicitDeny into an Allow exactly when it applies.
    #[test]
    fn adding_an_allow_only_allows_more(
        policies in prop::collection::vec(policy_statements(), 0..4),
        allow in prop::collection::vec(statement("Allow"), 1..3),
        at in any::<prop::sample::Index>(),
        req in request(),
    ) {
        let parsed: Vec<Policy> = policies.iter().map(|s| parse(s)).collect();
        let before = kind(&decide(&parsed, &req));
        let allow = parse(&allow);
        let applies = kind(&decide(std::slice::from_ref(&allow), &req)) == Kind::Allow;
        let mut with = parsed.clone();
        with.insert(at.index(parsed.len() + 1), allow);
        let after = kind(&decide(&with, &req));
        match before {
            Kind::ExplicitDeny => prop_assert_eq!(after, Kind::ExplicitDeny),
            Kind::Allow => prop_assert_eq!(after, Kind::Allow),
            Kind::ImplicitDeny if applies => prop_assert_eq!(after, Kind::Allow),
            Kind::ImplicitDeny => prop_assert_eq!(after, Kind::ImplicitDeny),
        }
    }

    /// (d) The glob agrees with a naive backtracking matcher written from the rules (`*` any
    /// run, `?` one character, everything else literal, `+` and `#` included).
    #[test]
    fn glob_agrees_with_a_reference_matcher(
        pattern in "[ab/+#*?é$]{0,10}",
        value in "[ab/+#*?é$]{0,10}",
    ) {
        prop_assert_eq!(
            glob_match(&pattern, &value),
            reference_glob(&pattern, &value),
            "pattern {:?} value {:?}", pattern, value
        );
    }

    /// (d) again, with values built to match: every pattern matches the value obtained by
    /// replacing its wildcards, and a pattern without `*` matches nothing longer.
    #[test]
    fn glob_matches_its_own_instances(
        pattern in "[ab/+#*?]{0,10}",
        fills in prop::collection::vec("[ab/+#]{0,3}", 10),
    ) {
        let mut value = String::new();
        for (c, fill) in pattern.chars().zip(&fills) {
            match c {
                '*' => value.push_str(fill),
                '?' => value.push(fill.chars().next().unwrap_or('x')),
                c => value.push(c),
            }
        }
        prop_assert!(glob_match(&pattern, &value), "pattern {:?} value {:?}", pattern, value);
        prop_assert!(reference_glob(&pattern, &value));
        if !pattern.contains('*') {
            let longer = format!("{value}z");
            prop_assert!(!glob_match(&pattern, &longer), "pattern {:?} value {:?}", pattern, longer);
        }
    }
}

/// Glob matching by plain recursion over characters: exponential in the worst case, obviously
/// right, and sharing no code with the implementation.
fn reference_glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[char], v: &[char]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some(('*', rest)) => (0..=v.len()).any(|k| go(rest, &v[k..])),
            Some(('?', rest)) => !v.is_empty() && go(rest, &v[1..]),
            Some((c, rest)) => v.first() == Some(c) && go(rest, &v[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    go(&p, &v)
}

#[test]
fn the_reference_matcher_knows_the_rules() {
    assert!(reference_glob("a*", "a/b/c"));
    assert!(reference_glob("a?c", "a/c"));
    assert!(!reference_glob("a?c", "ac"));
    assert!(reference_glob("a/+/#", "a/+/#"));
    assert!(!reference_glob("a/+", "a/b"));
    assert!(reference_glob("", ""));
    assert!(!reference_glob("", "x"));
}
