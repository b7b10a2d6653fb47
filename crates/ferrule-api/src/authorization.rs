//! TestAuthorization's evaluation, apart from HTTP and the registry: the policy context a
//! certificate principal connects with, and the decision for one `authInfo` with the
//! per-policy attribution AWS reports (`allowed`, `denied.explicitDeny`, `denied.implicitDeny`).
//!
//! The operation (`ops::test_authorization`) gathers the policies and the certificate, thing
//! and client id from the registry and the request; everything here is pure.

use std::fmt;
use std::str::FromStr;

use ferrule_policy::{Context, Decision, Policy, Request, evaluate};
use ferrule_store::ThingRecord;

/// `AuthInfo.actionType`: the MQTT operations TestAuthorization can simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ActionType {
    Publish,
    Subscribe,
    Receive,
    Connect,
}

impl ActionType {
    /// The policy action the broker checks for this operation.
    pub(crate) fn action(self) -> &'static str {
        match self {
            ActionType::Publish => "iot:Publish",
            ActionType::Subscribe => "iot:Subscribe",
            ActionType::Receive => "iot:Receive",
            ActionType::Connect => "iot:Connect",
        }
    }
}

impl fmt::Display for ActionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActionType::Publish => "PUBLISH",
            ActionType::Subscribe => "SUBSCRIBE",
            ActionType::Receive => "RECEIVE",
            ActionType::Connect => "CONNECT",
        })
    }
}

impl FromStr for ActionType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PUBLISH" => Ok(ActionType::Publish),
            "SUBSCRIBE" => Ok(ActionType::Subscribe),
            "RECEIVE" => Ok(ActionType::Receive),
            "CONNECT" => Ok(ActionType::Connect),
            other => Err(format!(
                "{other:?} is not valid; expected PUBLISH, SUBSCRIBE, RECEIVE or CONNECT"
            )),
        }
    }
}

/// `AuthResult.authDecision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthDecision {
    Allowed,
    ExplicitDeny,
    ImplicitDeny,
}

impl fmt::Display for AuthDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthDecision::Allowed => "ALLOWED",
            AuthDecision::ExplicitDeny => "EXPLICIT_DENY",
            AuthDecision::ImplicitDeny => "IMPLICIT_DENY",
        })
    }
}

/// The result for one `authInfo`. Every evaluated policy is named in exactly one of the three
/// lists, in the order the policies were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) decision: AuthDecision,
    /// Policies that allow at least one of the resources and deny none.
    pub(crate) allowed: Vec<String>,
    /// Policies that explicitly deny at least one of the resources.
    pub(crate) explicit_deny: Vec<String>,
    /// Policies that neither allow nor deny any of the resources.
    pub(crate) implicit_deny: Vec<String>,
}

/// Decides one `authInfo`: `action` on every one of `resources` (full ARNs, such as
/// `arn:aws:iot:us-east-1:123456789012:topic/a/b`), under `policies` (name, default version).
///
/// The rule, for several resources in one `authInfo`: the `authInfo` is allowed only if each
/// resource on its own would be allowed, as the broker checks each topic or client on its own.
/// So the decision is `EXPLICIT_DENY` if any policy explicitly denies any resource, else
/// `ALLOWED` if every resource is allowed by at least one policy, else `IMPLICIT_DENY` (also
/// for an empty list: nothing was allowed). For the attribution each policy is evaluated on
/// its own, so a Deny beats an Allow within one policy just as it does across policies.
pub(crate) fn authorize(
    policies: &[(String, Policy)],
    action: ActionType,
    resources: &[String],
    ctx: &Context,
) -> Outcome {
    let mut allowed = Vec::new();
    let mut explicit_deny = Vec::new();
    let mut implicit_deny = Vec::new();
    let mut resource_allowed = vec![false; resources.len()];
    for (name, policy) in policies {
        let mut allows = false;
        let mut denies = false;
        for (i, resource) in resources.iter().enumerate() {
            let req = Request {
                action: action.action(),
                resource,
            };
            match evaluate([(name.as_str(), policy)], &req, ctx) {
                Decision::Allow { .. } => {
                    allows = true;
                    resource_allowed[i] = true;
                }
                Decision::ExplicitDeny { .. } => denies = true,
                Decision::ImplicitDeny => {}
            }
        }
        let list = if denies {
            &mut explicit_deny
        } else if allows {
            &mut allowed
        } else {
            &mut implicit_deny
        };
        list.push(name.clone());
    }
    let decision = if !explicit_deny.is_empty() {
        AuthDecision::ExplicitDeny
    } else if !resources.is_empty() && resource_allowed.iter().all(|a| *a) {
        AuthDecision::Allowed
    } else {
        AuthDecision::ImplicitDeny
    };
    Outcome {
        decision,
        allowed,
        explicit_deny,
        implicit_deny,
    }
}

/// The policy context of a certificate principal connecting with `client_id`.
///
/// `iot:ClientId` is the client id, when given. `certificate` holds the certificate's policy
/// variables ([`ferrule_pki::ParsedCertificate::policy_variables`]). The thing variables are
/// set only when `thing` is attached to the principal (the caller's business) and its name is
/// the client id, AWS's rule; `iot:Connection.Thing.IsAttached` is `"true"` then and `"false"`
/// otherwise.
pub(crate) fn principal_context(
    client_id: Option<&str>,
    certificate: &[(String, Vec<String>)],
    thing: Option<&ThingRecord>,
) -> Context {
    let mut ctx = Context::default();
    if let Some(id) = client_id {
        ctx.set("iot:ClientId", id);
    }
    for (name, values) in certificate {
        ctx.set_certificate_attribute(name, values);
    }
    let thing = thing.filter(|t| client_id == Some(t.name.as_str()));
    match thing {
        Some(t) => {
            ctx.set("iot:Connection.Thing.ThingName", t.name.clone());
            if let Some(kind) = &t.thing_type_name {
                ctx.set("iot:Connection.Thing.ThingTypeName", kind.clone());
            }
            for (name, value) in &t.attributes {
                ctx.set(
                    format!("iot:Connection.Thing.Attributes[{name}]"),
                    value.clone(),
                );
            }
            ctx.set("iot:Connection.Thing.IsAttached", "true");
        }
        None => ctx.set("iot:Connection.Thing.IsAttached", "false"),
    }
    ctx
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    const ARN: &str = "arn:aws:iot:us-east-1:123456789012";

    fn policy(statements: &str) -> Policy {
        Policy::parse(&format!(
            r#"{{"Version":"2012-10-17","Statement":[{statements}]}}"#
        ))
        .unwrap()
    }

    fn stmt(effect: &str, action: &str, resource: &str) -> String {
        format!(r#"{{"Effect":"{effect}","Action":"{action}","Resource":"{ARN}:{resource}"}}"#)
    }

    fn topics(names: &[&str]) -> Vec<String> {
        names.iter().map(|t| format!("{ARN}:topic/{t}")).collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Allows `allowed/*`, denies `allowed/secret`, in one policy; `other` allows `x/*`.
    fn fixture() -> Vec<(String, Policy)> {
        vec![
            (
                "pubsub".to_owned(),
                policy(&format!(
                    "{},{}",
                    stmt("Allow", "iot:Publish", "topic/allowed/*"),
                    stmt("Deny", "iot:Publish", "topic/allowed/secret")
                )),
            ),
            (
                "other".to_owned(),
                policy(&stmt("Allow", "iot:Publish", "topic/x/*")),
            ),
        ]
    }

    #[test]
    fn one_resource_each_decision_with_attribution() {
        let p = fixture();
        let ctx = Context::default();
        let out = authorize(&p, ActionType::Publish, &topics(&["allowed/a"]), &ctx);
        assert_eq!(out.decision, AuthDecision::Allowed);
        assert_eq!(
            (out.allowed, out.explicit_deny, out.implicit_deny),
            (names(&["pubsub"]), vec![], names(&["other"]))
        );

        let out = authorize(&p, ActionType::Publish, &topics(&["allowed/secret"]), &ctx);
        assert_eq!(out.decision, AuthDecision::ExplicitDeny);
        assert_eq!(
            (out.allowed, out.explicit_deny, out.implicit_deny),
            (vec![], names(&["pubsub"]), names(&["other"]))
        );

        let out = authorize(&p, ActionType::Publish, &topics(&["elsewhere"]), &ctx);
        assert_eq!(out.decision, AuthDecision::ImplicitDeny);
        assert_eq!(
            (out.allowed, out.explicit_deny, out.implicit_deny),
            (vec![], vec![], names(&["pubsub", "other"]))
        );

        // The action counts: the policies say nothing about Subscribe.
        let filter = vec![format!("{ARN}:topicfilter/allowed/a")];
        let out = authorize(&p, ActionType::Subscribe, &filter, &ctx);
        assert_eq!(out.decision, AuthDecision::ImplicitDeny);
    }

    #[test]
    fn several_resources_are_decided_together() {
        let p = fixture();
        let ctx = Context::default();
        // Each allowed by a different policy: allowed, both credited.
        let out = authorize(
            &p,
            ActionType::Publish,
            &topics(&["allowed/a", "x/b"]),
            &ctx,
        );
        assert_eq!(out.decision, AuthDecision::Allowed);
        assert_eq!(out.allowed, names(&["pubsub", "other"]));
        // One resource nobody allows: the whole authInfo is implicitly denied, though a
        // policy allowed the other.
        let out = authorize(
            &p,
            ActionType::Publish,
            &topics(&["allowed/a", "nope"]),
            &ctx,
        );
        assert_eq!(out.decision, AuthDecision::ImplicitDeny);
        assert_eq!(out.allowed, names(&["pubsub"]));
        // One denied resource denies it all, and the denying policy is not listed as allowing.
        let out = authorize(
            &p,
            ActionType::Publish,
            &topics(&["x/b", "allowed/secret"]),
            &ctx,
        );
        assert_eq!(out.decision, AuthDecision::ExplicitDeny);
        assert_eq!(
            (out.allowed, out.explicit_deny),
            (names(&["other"]), names(&["pubsub"]))
        );
        // A policy allowing one resource and denying another is a denying policy.
        let out = authorize(
            &p,
            ActionType::Publish,
            &topics(&["allowed/a", "allowed/secret"]),
            &ctx,
        );
        assert_eq!(out.decision, AuthDecision::ExplicitDeny);
        assert_eq!(
            (out.allowed, out.explicit_deny),
            (vec![], names(&["pubsub"]))
        );
        // Nothing to decide is not an allow.
        let out = authorize(&p, ActionType::Publish, &[], &ctx);
        assert_eq!(out.decision, AuthDecision::ImplicitDeny);
        // No policies: implicit deny with empty lists.
        let out = authorize(&[], ActionType::Publish, &topics(&["allowed/a"]), &ctx);
        assert_eq!(out.decision, AuthDecision::ImplicitDeny);
        assert!(out.allowed.is_empty() && out.implicit_deny.is_empty());
    }

    #[test]
    fn a_deny_in_another_policy_wins() {
        let mut p = fixture();
        p.push((
            "lockdown".to_owned(),
            policy(&stmt("Deny", "iot:*", "topic/x/*")),
        ));
        let out = authorize(
            &p,
            ActionType::Publish,
            &topics(&["x/b"]),
            &Context::default(),
        );
        assert_eq!(out.decision, AuthDecision::ExplicitDeny);
        assert_eq!(
            (out.allowed, out.explicit_deny, out.implicit_deny),
            (names(&["other"]), names(&["lockdown"]), names(&["pubsub"]))
        );
    }

    /// The decision is the broker's: the per-resource `evaluate` over all policies together.
    #[test]
    fn decision_agrees_with_evaluating_all_policies_per_resource() {
        let mut p = fixture();
        p.push((
            "lockdown".to_owned(),
            policy(&stmt("Deny", "iot:Publish", "topic/x/locked")),
        ));
        let all = ["allowed/a", "allowed/secret", "x/b", "x/locked", "nope"];
        let ctx = Context::default();
        for a in all {
            for b in all {
                let resources = topics(&[a, b]);
                let each: Vec<Decision> = resources
                    .iter()
                    .map(|r| {
                        let req = Request {
                            action: "iot:Publish",
                            resource: r,
                        };
                        evaluate(p.iter().map(|(n, q)| (n.as_str(), q)), &req, &ctx)
                    })
                    .collect();
                let expected = if each
                    .iter()
                    .any(|d| matches!(d, Decision::ExplicitDeny { .. }))
                {
                    AuthDecision::ExplicitDeny
                } else if each.iter().all(Decision::is_allowed) {
                    AuthDecision::Allowed
                } else {
                    AuthDecision::ImplicitDeny
                };
                let got = authorize(&p, ActionType::Publish, &resources, &ctx).decision;
                assert_eq!(got, expected, "{a}, {b}");
            }
        }
    }

    fn thing(name: &str) -> ThingRecord {
        ThingRecord {
            name: name.to_owned(),
            thing_id: "id".to_owned(),
            thing_type_name: Some("thermometer".to_owned()),
            attributes: BTreeMap::from([("room".to_owned(), "kitchen".to_owned())]),
            version: 1,
            billing_group_name: None,
            created_ms: 0,
        }
    }

    #[test]
    fn context_has_client_certificate_and_thing_variables() {
        let t = thing("sensor-1");
        let ctx = principal_context(
            Some("sensor-1"),
            &[(
                "iot:Certificate.Subject.CommonName".to_owned(),
                vec!["device-cn".to_owned()],
            )],
            Some(&t),
        );
        assert_eq!(ctx.first("iot:ClientId"), Some("sensor-1"));
        assert_eq!(
            ctx.first("iot:Certificate.Subject.CommonName"),
            Some("device-cn")
        );
        assert_eq!(
            ctx.first("iot:Connection.Thing.ThingName"),
            Some("sensor-1")
        );
        assert_eq!(
            ctx.first("iot:Connection.Thing.ThingTypeName"),
            Some("thermometer")
        );
        assert_eq!(
            ctx.first("iot:Connection.Thing.Attributes[room]"),
            Some("kitchen")
        );
        assert_eq!(ctx.first("iot:Connection.Thing.IsAttached"), Some("true"));

        // A policy using them resolves through ferrule-policy's own names.
        let p = vec![(
            "vars".to_owned(),
            policy(&stmt(
                "Allow",
                "iot:Publish",
                "topic/${iot:Connection.Thing.Attributes[room]}/${iot:Certificate.Subject.CommonName}/${iot:ClientId}",
            )),
        )];
        let out = authorize(
            &p,
            ActionType::Publish,
            &topics(&["kitchen/device-cn/sensor-1"]),
            &ctx,
        );
        assert_eq!(out.decision, AuthDecision::Allowed);
    }

    #[test]
    fn thing_variables_need_the_client_id_to_be_the_thing_name() {
        let t = thing("sensor-1");
        for client in [Some("other"), None] {
            let ctx = principal_context(client, &[], Some(&t));
            assert_eq!(ctx.first("iot:Connection.Thing.ThingName"), None);
            assert_eq!(ctx.first("iot:Connection.Thing.Attributes[room]"), None);
            assert_eq!(ctx.first("iot:Connection.Thing.IsAttached"), Some("false"));
            assert_eq!(ctx.first("iot:Certificate.Subject.CommonName"), None);
        }
        let ctx = principal_context(Some("sensor-1"), &[], None);
        assert_eq!(ctx.first("iot:Connection.Thing.IsAttached"), Some("false"));
        assert_eq!(ctx.first("iot:ClientId"), Some("sensor-1"));
    }

    #[test]
    fn action_types_parse_and_name_their_actions() {
        for (text, action) in [
            ("PUBLISH", "iot:Publish"),
            ("SUBSCRIBE", "iot:Subscribe"),
            ("RECEIVE", "iot:Receive"),
            ("CONNECT", "iot:Connect"),
        ] {
            let t: ActionType = text.parse().unwrap();
            assert_eq!((t.action(), t.to_string().as_str()), (action, text));
        }
        assert!("publish".parse::<ActionType>().is_err());
        assert!(
            "RETAIN"
                .parse::<ActionType>()
                .unwrap_err()
                .contains("PUBLISH")
        );
    }
}
